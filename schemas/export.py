"""JSON Schema files for non-Python consumers, generated from the models."""

from __future__ import annotations

import json
from pathlib import Path

from schemas.registry import EVENT_MODELS

SCHEMA_DIR = Path(__file__).parent / "json"


def render_all() -> dict[str, str]:
    """File name -> JSON Schema text for every event contract."""
    files = {}
    for topic, model in sorted(EVENT_MODELS.items()):
        schema = model.model_json_schema(mode="validation")
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"urn:oms:event:{topic}:v{model.SCHEMA_VERSION}"
        files[f"{topic}.schema.json"] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    return files


def write_all(directory: Path = SCHEMA_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_all().items():
        path = directory / name
        path.write_text(text)
        written.append(path)
    return written
