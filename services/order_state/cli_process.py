"""`oms process ...`: validate and draw process definitions."""

from __future__ import annotations

import typer

process_app = typer.Typer(help="Order item processes (Spryker OMS XML).", no_args_is_help=True)
