"""`oms`: run the embedded stack, run one service, publish sample orders, operate topics."""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from services.invoicing.cli_invoice import invoice_app
from services.order_state.cli_order import matrix, order_app
from services.order_state.cli_process import process_app
from services.runtime.cli_support import CliError, publish_events, settings_or_error
from services.runtime.settings import SERVICES, Settings
from services.shipping.cli_shipment import shipment_app

app = typer.Typer(
    help="Order management system: worker services on Kafka and PostgreSQL.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
schemas_app = typer.Typer(help="Event contracts.", no_args_is_help=True)
topics_app = typer.Typer(help="Kafka topics.", no_args_is_help=True)
app.add_typer(schemas_app, name="schemas")
app.add_typer(topics_app, name="topics")
app.add_typer(process_app, name="process")
app.add_typer(order_app, name="order")
app.add_typer(shipment_app, name="shipment")
app.add_typer(invoice_app, name="invoice")
app.command("matrix")(matrix)

log = logging.getLogger("oms")


def _configure_logging(settings: Settings, name: str = "oms") -> None:
    logging.basicConfig(
        level=settings.log_level.upper(),
        format=f"%(asctime)s %(levelname)s {name} %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("aiokafka", "alembic", "mail.log"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _settings() -> Settings:
    return settings_or_error()


def _check_service(name: str) -> str:
    if name not in SERVICES:
        raise CliError(f"unknown service {name!r}; choose one of: {', '.join(SERVICES)}")
    return name


def service_definition(name: str):  # noqa: ANN201 - ServiceDefinition, imported lazily
    from services.runtime.service import definition_of

    return definition_of(_check_service(name))


@app.command()
def service(
    name: Annotated[str, typer.Argument(help=f"One of: {', '.join(SERVICES)}")],
    migrate: Annotated[bool, typer.Option(help="Apply the service's migrations first.")] = False,
    create_topics: Annotated[bool, typer.Option(help="Create missing topics first.")] = True,
) -> None:
    """Run one service against the Kafka and PostgreSQL given by the OMS_* settings."""
    settings = _settings()
    _check_service(name)
    _configure_logging(settings, name)
    from services.runtime.migrations import upgrade
    from services.runtime.topics import ensure_topics

    module = importlib.import_module(f"services.{name}.app")

    async def run() -> None:
        if migrate:
            await asyncio.to_thread(upgrade, settings, name)
        if create_topics:
            await _retry(lambda: ensure_topics(settings), "Kafka")
        try:
            app = module.build(settings)
        except (LookupError, ValueError) as exc:  # processes, templates: what the operator configured
            raise CliError(f"{name} cannot start: {exc}") from exc
        await app.run()

    asyncio.run(run())


async def _retry(make, what: str, timeout: float = 60) -> object:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    delay = 0.2
    while True:
        try:
            return await make()
        except Exception as exc:
            if time.monotonic() > deadline:
                raise CliError(f"cannot reach {what}: {exc}") from exc
            log.warning("waiting for %s: %s", what, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5)


@app.command()
def migrate(
    services: Annotated[list[str] | None, typer.Argument(help="Services to migrate (default: all).")] = None,
) -> None:
    """Apply the Alembic migrations of the services (each in its own schema)."""
    settings = _settings()
    _configure_logging(settings)
    from services.runtime.migrations import upgrade_all

    chosen = tuple(_check_service(name) for name in services) if services else SERVICES
    try:
        asyncio.run(upgrade_all(settings, chosen))
    except (OSError, ConnectionError) as exc:
        raise CliError(f"cannot reach PostgreSQL at {settings.database_url.split('@')[-1]}: {exc}") from exc
    typer.echo(f"migrated: {', '.join(chosen)}")


@topics_app.command("create")
def topics_create() -> None:
    """Create every topic the services use (missing ones only)."""
    settings = _settings()
    from services.runtime.topics import ensure_topics

    created = asyncio.run(_retry(lambda: ensure_topics(settings), "Kafka", timeout=15))
    typer.echo(f"created: {', '.join(created)}" if created else "all topics exist")


async def publish_samples_async(settings: Settings, count: int) -> list[str]:
    from services.samples import sample_order

    run = os.urandom(3).hex().upper()
    orders = [sample_order(number, run=run) for number in range(1, count + 1)]
    await publish_events(settings, orders)
    return [order.order_reference for order in orders]


@app.command("publish-samples")
def publish_samples(count: Annotated[int, typer.Option(min=1, max=100_000)] = 3) -> None:
    """Publish sample `order.placed` events, as a checkout would."""
    settings = _settings()
    references = asyncio.run(_retry(lambda: publish_samples_async(settings, count), "Kafka", timeout=15))
    typer.echo(
        f"published {len(references)} orders: {', '.join(references[:10])}" + (" ..." if len(references) > 10 else "")
    )


@app.command()
def replay(
    services: Annotated[list[str], typer.Argument(help="Services whose consumer groups start over.")],
) -> None:
    """Rewind the consumer groups of stopped services to the start of their topics.

    When the services start again they re-read everything; the inbox makes that a no-op for what
    was already processed."""
    settings = _settings()
    from services.runtime.replay import GroupBusy, rewind_group
    from services.runtime.service import subscriptions

    async def rewind() -> None:
        for name in services:
            topics = list(await subscriptions(service_definition(name), settings))
            group = settings.group_id(name)
            try:
                partitions = await rewind_group(settings, group, topics)
            except GroupBusy as exc:
                raise CliError(str(exc)) from exc
            typer.echo(f"{name}: group {group} rewound to the start of {partitions} partitions")

    asyncio.run(rewind())


@schemas_app.command("export")
def schemas_export(
    check: Annotated[bool, typer.Option(help="Only check that the committed files are current.")] = False,
) -> None:
    """Write the JSON Schema files under schemas/json from the models, and the services' AsyncAPI document
    (schemas/asyncapi.json)."""
    from schemas.export import SCHEMA_DIR, render_all, write_all
    from services.runtime.asyncapi import ASYNCAPI_FILE, render

    document = render()
    if check:
        stale = [
            name
            for name, text in render_all().items()
            if not (SCHEMA_DIR / name).exists() or (SCHEMA_DIR / name).read_text() != text
        ]
        if not ASYNCAPI_FILE.exists() or ASYNCAPI_FILE.read_text() != document:
            stale.append(ASYNCAPI_FILE.name)
        if stale:
            raise CliError(f"contract files out of date: {', '.join(stale)}; run `oms schemas export`")
        typer.echo("JSON Schema files and the AsyncAPI document are current")
        return
    for path in write_all():
        typer.echo(f"wrote {path}")
    ASYNCAPI_FILE.write_text(document)
    typer.echo(f"wrote {ASYNCAPI_FILE}")


@app.command()
def up(
    data_dir: Annotated[Path, typer.Option(help="Where data, e-mails and logs go.")] = Path(".oms"),
    samples: Annotated[int, typer.Option(min=0, help="Sample orders to publish once running.")] = 3,
    kafka_port: Annotated[int, typer.Option(help="0 picks a free port.")] = 19092,
    postgres_port: Annotated[int, typer.Option(help="0 picks a free port.")] = 15432,
    smtp_port: Annotated[int, typer.Option(help="0 picks a free port.")] = 11025,
    keep_data: Annotated[
        bool, typer.Option(help="Keep the database of the last run (the broker never keeps data).")
    ] = False,
    replicas: Annotated[
        list[str] | None,
        typer.Option(
            "--replicas",
            metavar="SERVICE=N",
            help="Run N processes of SERVICE in its consumer groups, e.g. order_state=2 (one per CPU core pays).",
        ),
    ] = None,
) -> None:
    """Run everything on this machine: PostgreSQL, a Kafka-compatible broker, an SMTP sink, all services."""
    counts = _replica_counts(replicas or [])
    from services.runtime.embedded import REPLICA_STAGGER_SECONDS, EmbeddedStack, ServiceProcess
    from services.runtime.migrations import upgrade_all
    from services.runtime.topics import ensure_topics

    stopping = False

    def request_stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    stack = EmbeddedStack(
        data_dir,
        kafka_port=kafka_port or None,
        postgres_port=postgres_port or None,
        smtp_port=smtp_port or None,
        fresh=not keep_data,
    )
    processes: list[ServiceProcess] = []
    typer.echo("starting PostgreSQL, the Tansu broker and the SMTP sink ...")
    stack.start()
    try:
        env = stack.environment()
        os.environ.update(env)
        settings = Settings()
        _configure_logging(settings)
        asyncio.run(upgrade_all(settings))
        asyncio.run(ensure_topics(settings))
        for name in SERVICES:
            for replica in range(counts.get(name, 1)):
                if replica:  # see REPLICA_STAGGER_SECONDS
                    time.sleep(REPLICA_STAGGER_SECONDS)
                log_name = f"{name}.log" if replica == 0 else f"{name}-{replica + 1}.log"
                process = ServiceProcess(name, env, stack.logs_dir / log_name)
                process.start()
                processes.append(process)
        references: list[str] = []
        if samples:
            references = asyncio.run(publish_samples_async(settings, samples))
        typer.echo(
            "\n".join(
                [
                    "",
                    "OMS is running.",
                    f"  Kafka bootstrap : {env['OMS_KAFKA_BOOTSTRAP_SERVERS']}",
                    f"  PostgreSQL      : {env['OMS_DATABASE_URL']}",
                    f"  SMTP sink       : 127.0.0.1:{stack.smtp.port}",
                    f"  e-mails         : {stack.smtp.mail_dir}",
                    f"  data            : {stack.postgres.data_dir}",
                    f"  logs            : {stack.logs_dir}",
                    f"  sample orders   : {', '.join(references) or 'none'}",
                    "",
                    "Settings for other terminals:",
                    *[f"  export {key}={value}" for key, value in env.items()],
                    "",
                    "Press Ctrl-C to stop.",
                ]
            )
        )
        while not stopping:
            for process in processes:
                if not process.running and not stopping:
                    typer.echo(
                        f"{process.service} exited ({process.process.returncode}); restarting, see {process.log_file}",
                        err=True,
                    )
                    process.start()
            time.sleep(0.5)
    finally:
        typer.echo("stopping ...")
        for process in processes:
            process.stop()
        stack.stop()
        typer.echo("stopped.")


def _replica_counts(options: list[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for option in options:
        name, _, number = option.partition("=")
        if name not in SERVICES:
            raise CliError(f"--replicas {option!r}: unknown service {name!r}; one of: {', '.join(SERVICES)}")
        if not number.isdigit() or not 1 <= int(number) <= 16:
            raise CliError(f"--replicas {option!r}: give SERVICE=N with N from 1 to 16")
        counts[name] = int(number)
    return counts


def main() -> None:
    try:
        app()
    except CliError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
