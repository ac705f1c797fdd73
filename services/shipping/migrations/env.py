from services.runtime.migrations import run_env
from services.shipping.tables import SCHEMA, metadata

run_env(SCHEMA, metadata)
