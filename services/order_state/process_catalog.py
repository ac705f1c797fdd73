"""The processes order_state runs: loaded once at start, chosen per order."""

from __future__ import annotations

import logging
from pathlib import Path

from services.order_state.domain.process.engine import Engine
from services.order_state.domain.process.loader import load_process, main_process_files
from services.order_state.domain.process.model import Process
from services.order_state.domain.process.plugins import PluginRegistry, default_registry
from services.runtime.settings import Settings

log = logging.getLogger(__name__)

BUILTIN_PROCESS_DIR = Path(__file__).parent / "processes"


class UnknownProcess(LookupError):
    pass


class ProcessCatalog:
    def __init__(self, processes: dict[str, Process], plugins: PluginRegistry, settings: Settings) -> None:
        self.processes = processes
        self.plugins = plugins
        self.settings = settings
        self._engines = {name: Engine(process, plugins) for name, process in processes.items()}
        missing = [
            name
            for name in {settings.default_process, *settings.payment_method_processes.values()}
            if name not in processes
        ]
        if missing:
            raise UnknownProcess(
                f"settings name processes that are not loaded: {', '.join(sorted(missing))}; "
                f"loaded: {', '.join(sorted(processes)) or 'none'}"
            )

    @classmethod
    def load(cls, settings: Settings, plugins: PluginRegistry | None = None) -> ProcessCatalog:
        plugins = plugins or default_registry()
        processes: dict[str, Process] = {}
        for directory in [BUILTIN_PROCESS_DIR, *map(Path, settings.process_dirs)]:
            for path in main_process_files(directory):
                process = load_process(path, plugins=plugins)
                processes[process.name] = process
        log.info("processes loaded: %s", ", ".join(sorted(processes)))
        return cls(processes, plugins, settings)

    def choose(self, requested: str | None, payment_method: str) -> str:
        """The name in order.placed if given, else the payment method's mapping, else the default."""
        if requested:
            if requested not in self.processes:
                raise UnknownProcess(f"unknown process {requested!r}; known: {', '.join(sorted(self.processes))}")
            return requested
        return self.settings.payment_method_processes.get(payment_method, self.settings.default_process)

    def engine(self, name: str) -> Engine:
        try:
            return self._engines[name]
        except KeyError:
            raise UnknownProcess(f"unknown process {name!r}; known: {', '.join(sorted(self.processes))}") from None
