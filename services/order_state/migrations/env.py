from services.order_state.tables import SCHEMA, metadata
from services.runtime.migrations import run_env

run_env(SCHEMA, metadata)
