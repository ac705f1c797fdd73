"""Placement throughput through order_state, and the time to store a 100,000-unit order, each next to a
baseline measured in the same run.

    .venv/bin/python -m bench.bench_placement [--orders 40000] [--baseline-orders 2000] [--replicas 1,2] [--runs 3]
        [--warmup 10000]

Runs on the embedded stack (PostgreSQL + Tansu, topics with 6 partitions). Throughput: ordinary orders (5
lines: splittable lines of 1-3 units and one non-splittable pallet line) arrive in order.placed as one burst
and the real order_state service (`oms service order_state`: batches, inbox, set-based writes, outbox, relay)
drains them, with one process and with two replicas in one consumer group (how the service scales out). Each
run starts fresh processes on a warm-up burst (not counted), waits until every replica has joined its consumer
groups and the rebalance has settled, then publishes the N measured orders; the machine is shared and noisy,
so the median of several runs is reported with every run, and before and after each run the raw
broker+database limit (a run's share is of the mean of the two): what two plain Kafka consumers manage when
they only COPY each order into a table as it came (the ceiling under which every rate here sits). Rates come
from the database's clock: "stored" from the start of the first batch that began after the bench's producer
had published the whole burst (the replicas start on it while it is being published, and the producer shares
the machine) to the last batch's start, "published" from that first batch's start until the outbox is empty
(every order.created and item.state_changed handed to Kafka). On Linux each run also reports the CPU time per
order of the order_state processes, of PostgreSQL's server processes (those that ended meanwhile too) and of
the broker, from the moment the burst is published until the outbox is empty (the bench's own polling of the
database, a few index lookups a second, counts as PostgreSQL's). PostgreSQL checkpoints just before each run
and each raw limit, so that its timed checkpoint (every 5 minutes) does not fall within some windows and not
others; what a run wrote is checkpointed after it, and that CPU is printed apart. Each run is printed with a
probe of the machine's speed taken just before it (the time to validate one order.placed on one core): this
shared virtual machine's speed moves by a third or more within the hour, and the probe shows when a slow run
met a slow machine. With it, the share of the
machine's cores that stayed idle and that the host stole (time the virtual cores could have run but the host
ran something else: 0 most of the time, 8-25% in some runs of 2026-12-03), from the moment the burst is
published until the outbox is empty.
Baseline: a consumer of the same topic that handles one message per transaction with one INSERT per row
(order with its lines, items, history, outbox) and commits the offset after each message. Big order:
order_state's placement handler on an order with a splittable line of 100,000 units and a
non-splittable line of 1,000,000, next to inserting its 100,001 item rows one INSERT at a time in one
transaction.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import signal
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import ConsumerRecord
from sqlalchemy import text

from schemas import OrderPlaced
from services.order_state import handlers
from services.order_state.process_catalog import ProcessCatalog
from services.order_state.tables import outbox
from services.runtime.consumer import Incoming
from services.runtime.db import asyncpg_dsn, create_engine, driver_connection
from services.runtime.documents import document_validator
from services.runtime.embedded import REPLICA_STAGGER_SECONDS, EmbeddedStack, ServiceProcess
from services.runtime.migrations import upgrade_all
from services.runtime.relay import partition_for, send_in_batches
from services.runtime.service import STARTUP_TIMEOUT_EXIT
from services.runtime.settings import Settings
from services.runtime.topics import all_topics, ensure_topics
from services.runtime.unit_of_work import UnitOfWork
from services.runtime.wire import document_decoder
from services.samples import sample_order


def ordinary_order(number: int, run: str, topic_run: str) -> dict:
    order = json.loads(sample_order(3, run=run).model_dump_json())
    order["order_reference"] = f"DE--{topic_run}-{number}"
    template = order["lines"][0]
    order["lines"] = [
        dict(template, sku=f"SKU-{n}", quantity=1 + n % 3, is_quantity_splittable=n != 4) for n in range(5)
    ]
    order["totals"]["subtotal"] = sum(line["unit_price"] * line["quantity"] for line in order["lines"])
    order["event_id"] = str(uuid.uuid4())
    return order


def partition_ends(prefix: str, count: int, partitions: int) -> tuple[list[str], list[str]]:
    """The references of the first and of the last of `count` orders of `prefix` in each partition of
    order.placed (where the producer's default partitioner puts them)."""
    firsts: dict[int, str] = {}
    lasts: dict[int, str] = {}
    for number in range(count):
        reference = f"DE--{prefix}-{number}"
        partition = partition_for(reference.encode(), list(range(partitions)))
        firsts.setdefault(partition, reference)
        lasts[partition] = reference
    return list(firsts.values()), list(lasts.values())


# After the last replica has joined, the others learn of the rebalance at their next heartbeat and join again.
GROUP_SETTLE_SECONDS = 3.0


def encoded(orders: list[dict]) -> list[tuple[bytes, bytes]]:
    """Orders as Kafka messages: (key, value)."""
    return [(order["order_reference"].encode(), json.dumps(order).encode()) for order in orders]


async def publish(settings: Settings, topic: str, orders: list[dict] | list[tuple[bytes, bytes]]) -> None:
    """Publish orders (dicts, or messages already encoded) to `topic`, keyed by order reference."""
    messages = encoded(orders) if orders and isinstance(orders[0], dict) else orders
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers, linger_ms=5, max_batch_size=512 * 1024
    )
    await producer.start()
    try:
        # Record batches, one partition at a time, as the relays send them: a send() per message would cost the
        # machine the bench measures on several times as much CPU.
        partitions = sorted(await producer.partitions_for(topic))
        by_partition: dict[int, list[tuple[bytes, bytes, list[tuple[str, bytes]]]]] = {}
        for key, value in messages:
            by_partition.setdefault(partition_for(key, partitions), []).append((key, value, []))
        futures = []
        for partition, batch_messages in by_partition.items():
            futures += await send_in_batches(producer, topic, partition, batch_messages)
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def start_and_join(services: Sequence[ServiceProcess], timeout: float = 300) -> None:
    """Start the services (replicas a few seconds apart) and wait until each has joined all its consumer groups
    (it logs "ready: consuming"). One that gives up on a join that hangs on the embedded broker (status 75,
    see OMS_STARTUP_TIMEOUT_SECONDS) is started again, as `oms up` would."""
    for number, service in enumerate(services):
        if number:
            await asyncio.sleep(REPLICA_STAGGER_SECONDS)  # simultaneous joins can hang on the embedded broker
        service.start()
    deadline = time.monotonic() + timeout
    waiting = list(services)
    while waiting:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(waiting)} of {len(services)} services did not join their consumer groups")
        for service in list(waiting):
            if "ready: consuming" in service.log_file.read_text(errors="replace"):
                waiting.remove(service)
            elif not service.running:
                assert service.process is not None
                if service.process.returncode != STARTUP_TIMEOUT_EXIT:
                    tail = service.log_file.read_text(errors="replace").splitlines()[-15:]
                    raise RuntimeError(f"{service.service} stopped; the end of its log:\n" + "\n".join(tail))
                service.start()
        await asyncio.sleep(0.2)


@dataclass(frozen=True)
class Throughput:
    stored: float  # orders/s written (order, lines, items, history, timeouts, outbox) and committed
    published: float | None  # orders/s until every order's events had left the outbox for Kafka
    cpu: dict[str, float] | None = None  # CPU microseconds per order by process group, where /proc tells
    raw: float | None = None  # orders/s the broker and database managed with no order logic, just before
    raw_after: float | None = None  # the same, just after (the machine's speed moves within a minute)
    probe: float | None = None  # the machine's speed just before: see machine_probe()
    machine: dict[str, float] | None = None  # shares of the machine's CPU time during the run: see machine_times()
    checkpoint_after: float | None = None  # PostgreSQL CPU per order, checkpointing what the run wrote


def machine_times() -> list[int] | None:
    """The machine's CPU time so far by kind (Linux /proc/stat: user, nice, system, idle, iowait, irq, softirq,
    steal), in ticks. Steal is time the virtual machine's cores were runnable but the host ran something
    else: on a shared host it takes from a run what no change of the code gives back."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
    except OSError:
        return None
    return [int(field) for field in fields]


def machine_shares(before: list[int] | None, after: list[int] | None) -> dict[str, float] | None:
    if before is None or after is None:
        return None
    spent = [a - b for a, b in zip(after, before, strict=True)]
    total = sum(spent) or 1
    return {"idle": spent[3] / total, "steal": spent[7] / total}


def stat_fields(stat: Path) -> list[str]:
    """The fields of a Linux /proc/<pid>/stat file after the process name (state, parent, ..., utime at 11,
    stime at 12, cutime at 13, cstime at 14); OSError when the process is gone."""
    return stat.read_text().rsplit(")", 1)[1].split()


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU time of these processes so far (Linux /proc; 0 for processes gone)."""
    ticks = 0
    for pid in pids:
        try:
            fields = stat_fields(Path(f"/proc/{pid}/stat"))
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def reaped_children_seconds(pid: int) -> float:
    """CPU time of the children of `pid` that have exited and been waited for (Linux /proc: cutime + cstime):
    PostgreSQL's autovacuum workers and backends come and go, and a live-process sum alone would lose what one
    that ended spent (and go down when one that had run before the window ends within it)."""
    try:
        fields = stat_fields(Path(f"/proc/{pid}/stat"))
    except OSError:
        return 0.0
    return (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")


def with_children(root: int) -> list[int]:
    """`root` and its child processes (PostgreSQL's server processes under the postmaster)."""
    pids = [root]
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat_fields(stat)[1]) == root:
                pids.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return pids


@dataclass(frozen=True)
class CpuGroups:
    """The processes whose CPU a run accounts for: the services, PostgreSQL (its server processes), the broker."""

    services: list[int]
    postmaster: int
    broker: int

    def sample(self) -> dict[str, float]:
        return {
            "order_state": cpu_seconds(self.services),
            "PostgreSQL": cpu_seconds(with_children(self.postmaster)) + reaped_children_seconds(self.postmaster),
            "broker": cpu_seconds([self.broker]),
        }


def cpu_groups(stack: EmbeddedStack, services: Sequence[ServiceProcess]) -> CpuGroups | None:
    if not os.path.exists("/proc/self/stat") or stack.postgres.process is None or stack.kafka.process is None:
        return None  # not Linux: rates only
    return CpuGroups(
        [service.process.pid for service in services if service.process],
        stack.postgres.process.pid,
        stack.kafka.process.pid,
    )


async def throughput(
    settings: Settings,
    prefix: str,
    count: int,
    *,
    published: bool = True,
    timeout: float = 600,
    services: Sequence[ServiceProcess] = (),
    cpu: CpuGroups | None = None,
    from_now: bool = False,
) -> Throughput:
    """Waits until `count` orders of `prefix` are stored (and their events published), then computes the rates
    from the database's own clock: each batch's orders carry its transaction's start time (created_at), so
    the orders of all batches that started from the first batch of `prefix` until its last took that long.
    With `from_now` (the orders are all published already), only batches that start from now on count, and
    the CPU time is measured from now."""
    import asyncpg

    conn = await asyncpg.connect(asyncpg_dsn(settings.database_url))
    try:
        # A key range, not LIKE $1: a prepared LIKE with a parameter ends up scanning the whole (growing)
        # table every poll, which would steal the service's CPU.
        low, high = f"DE--{prefix}-", f"DE--{prefix}."
        # Polling must not steal the CPU being measured: counting the run's orders takes tens of milliseconds
        # once there are tens of thousands, a few index lookups do not. Each partition's orders are stored in
        # the order they were published, so the run has started when any partition's first order is stored
        # and is done when every partition's last one is (then counted once, to be sure).
        firsts, lasts = partition_ends(prefix, count, settings.kafka_topic_partitions)
        present = "SELECT count(*) FROM order_state.sales_order WHERE order_reference = ANY($1::text[])"
        counted = "SELECT count(*) FROM order_state.sales_order WHERE order_reference >= $1 AND order_reference < $2"
        deadline = time.monotonic() + timeout
        total = "SELECT count(*) FROM order_state.sales_order"
        cpu_before: dict[str, float] | None = None
        orders_before = 0
        since = None
        machine_before = machine_times()
        if from_now:
            since, orders_before = await conn.fetchval("SELECT clock_timestamp()"), await conn.fetchval(total)
            cpu_before = cpu.sample() if cpu is not None else None
        while True:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the last of {count} orders were not all stored")
            for service in services:
                if not service.running:
                    tail = service.log_file.read_text(errors="replace").splitlines()[-15:]
                    raise RuntimeError(f"{service.service} stopped; the end of its log:\n" + "\n".join(tail))
            await asyncio.sleep(0.25)
            if cpu is not None and cpu_before is None and await conn.fetchval(present, firsts):
                # the measured orders have started
                orders_before = await conn.fetchval(total)
                cpu_before = cpu.sample()
            if await conn.fetchval(present, lasts) == len(lasts):
                break
        # The first row by key: the index skips the relays' deleted rows that a scan of the table would read.
        while published and await conn.fetchval("SELECT EXISTS (SELECT 1 FROM order_state.outbox ORDER BY id LIMIT 1)"):
            if time.monotonic() > deadline:
                raise TimeoutError("the outbox did not drain")
            await asyncio.sleep(0.05)
        # The window closes here: the counts below read every order of the run (the first reader of a new row
        # also sets its hint bits, a few hundred ms of PostgreSQL's CPU for 40,000 orders) and are the bench's work.
        drained = await conn.fetchval("SELECT clock_timestamp()")
        machine = machine_shares(machine_before, machine_times())
        spent = cpu.sample() if cpu_before is not None and cpu is not None else None
        while (stored := await conn.fetchval(counted, low, high)) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {stored} of {count} orders stored")
            await asyncio.sleep(0.25)
        per_order = None
        if spent is not None and cpu_before is not None:
            done = await conn.fetchval(total) - orders_before
            per_order = {name: 1e6 * (spent[name] - cpu_before[name]) / done for name in spent}
        first, last = await conn.fetchrow(
            """SELECT min(created_at), max(created_at) FROM order_state.sales_order
               WHERE order_reference >= $1 AND order_reference < $2 AND created_at >= $3""",
            low,
            high,
            since or datetime.min.replace(tzinfo=UTC),
        )
        if first is None or first == last:
            raise RuntimeError(f"the {count:,} orders were drained before they were all published: use more of them")
        # Every order stored in the window counts, whatever its burst: a batch can mix the warm-up's last
        # orders with the first measured ones, and both are work done.
        in_window, since_first = await conn.fetchrow(
            """SELECT count(*) FILTER (WHERE created_at < $2), count(*) FROM order_state.sales_order
               WHERE created_at >= $1""",
            first,
            last,
        )
        stored_rate = in_window / (last - first).total_seconds()
        return Throughput(
            stored_rate,
            since_first / (drained - first).total_seconds() if published else None,
            per_order,
            machine=machine,
        )
    finally:
        await conn.close()


async def checkpoint(settings: Settings) -> None:
    """A PostgreSQL checkpoint now, before a measured window: PostgreSQL takes one every 5 minutes
    (checkpoint_timeout), writing out everything written since the last one, and a timed one that fell within a
    run's few seconds doubled PostgreSQL's CPU per order in that run (33-36 us per order in runs without one vs
    54-69 with one, 2026-12-04), whichever code ran. Each run (and each raw limit) starts just after one instead,
    and what the run wrote is checkpointed after it, measured apart (`checkpoint_after`)."""
    import asyncpg

    conn = await asyncpg.connect(asyncpg_dsn(settings.database_url))
    try:
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()


async def checkpoint_cost(settings: Settings, cpu: CpuGroups | None, orders: int) -> float | None:
    """PostgreSQL's CPU, in us per order, to checkpoint what a run of `orders` orders wrote (its share of the
    checkpoints a longer run would have paid within its window)."""
    if cpu is None:
        return None
    before = cpu.sample()["PostgreSQL"]
    await checkpoint(settings)
    return 1e6 * (cpu.sample()["PostgreSQL"] - before) / orders


def machine_probe(orders: Sequence[bytes]) -> float:
    """The machine's speed at this moment, in microseconds to validate one order.placed against its contract on
    one core (the fastest of three passes over `orders`), timed while nothing else of the bench runs. The same
    code takes a third longer or more when the machine (shared, virtual) is slow: next to each run's rate, it
    tells a slow run of the machine from a slow run of the code."""
    validator = document_validator(OrderPlaced)
    passes = []
    for _ in range(3):
        started = time.perf_counter()
        for order in orders:
            validator.validate_json(order)
        passes.append(time.perf_counter() - started)
    return 1e6 * min(passes) / len(orders)


async def ours(
    stack: EmbeddedStack, settings: Settings, env: dict[str, str], orders: int, replicas: int, runs: int, warmup: int
) -> list[Throughput]:
    """Each run: `replicas` fresh order_state processes start on a warm-up burst and join their consumer group
    (all of them, and the rebalance that follows settled: a replica that joins while another drains the orders
    alone would measure one replica plus a rebalance); then the N measured orders are published, as one
    burst, and drained."""
    results = []
    for run in range(runs):
        prefix = f"OURS{replicas}R{run}"
        raw = await raw_limit(settings, orders, f"RAW{replicas}R{run}")
        measured = await drain_burst(
            stack, settings, env, prefix, orders, f"WARM{replicas}R{run}", warmup, replicas, probe=True
        )
        # Again once the replicas are gone: a limit taken a minute before a run can be a third off by its end.
        raw_after = await raw_limit(settings, orders, f"RAWAFTER{replicas}R{run}")
        results.append(dataclasses.replace(measured, raw=raw, raw_after=raw_after))
    return results


async def drain_burst(
    stack: EmbeddedStack,
    settings: Settings,
    env: dict[str, str],
    prefix: str,
    orders: int,
    warm: str,
    warmup: int,
    replicas: int,
    *,
    probe: bool = False,
) -> Throughput:
    """One measured burst: `replicas` fresh order_state processes (run with `env`) start on a warm-up burst of
    `warmup` orders (`warm`) and join their consumer group; once the rebalance has settled and PostgreSQL has
    checkpointed, `orders` orders of `prefix` are published as one burst and drained. With `probe`, the machine's
    speed is taken just before the burst (see machine_probe)."""
    measured_orders = encoded([ordinary_order(n, "B", prefix) for n in range(orders)])
    await publish(settings, "order.placed", [ordinary_order(n, "B", warm) for n in range(warmup)])
    services = [
        ServiceProcess("order_state", env, stack.logs_dir / f"order_state-{prefix}-{n}.log") for n in range(replicas)
    ]
    try:
        await start_and_join(services)
        await throughput(settings, warm, warmup, published=True)  # the warm-up drained
        await asyncio.sleep(GROUP_SETTLE_SECONDS)
        await checkpoint(settings)
        # The replicas are idle, waiting for the burst.
        speed = machine_probe([value for _, value in measured_orders[:2000]]) if probe else None
        # The replicas start on the burst while it is being published: what counts starts once the bench's own
        # producer, which shares the machine, has finished.
        await publish(settings, "order.placed", measured_orders)
        cpu = cpu_groups(stack, services)
        measured = await throughput(settings, prefix, orders, services=services, cpu=cpu, from_now=True)
        return dataclasses.replace(measured, probe=speed, checkpoint_after=await checkpoint_cost(settings, cpu, orders))
    finally:
        for service in services:
            service.stop(signal.SIGTERM)


# The baselines' items: a row per item (order_state keeps them as groups, migration 0014), as the items were
# before that and as most shop systems keep them.
NAIVE_ITEMS = """CREATE TABLE IF NOT EXISTS public.bench_naive_item (
    id bigint GENERATED BY DEFAULT AS IDENTITY, order_id bigint NOT NULL, line_number integer NOT NULL,
    sku text NOT NULL, quantity integer NOT NULL, state text NOT NULL,
    state_changed_at timestamptz NOT NULL DEFAULT now(), shipment_id bigint, PRIMARY KEY (order_id, id))"""


async def baseline(settings: Settings, orders: int) -> Throughput:
    """One message, one transaction, one INSERT per row, offset committed after each message."""
    import asyncpg

    await publish(settings, "bench.naive_placed", [ordinary_order(n, "N", "BASE") for n in range(orders)])
    conn = await asyncpg.connect(asyncpg_dsn(settings.database_url))
    await conn.execute(NAIVE_ITEMS)
    consumer = AIOKafkaConsumer(
        "bench.naive_placed",
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id="bench-naive",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=1000,
        heartbeat_interval_ms=300,
    )
    await consumer.start()

    async def consume() -> None:
        done = 0
        async for record in consumer:
            order = OrderPlaced.model_validate_json(record.value)
            async with conn.transaction():
                await conn.execute(
                    "INSERT INTO order_state.inbox (consumer, event_id) VALUES ('naive', $1)", order.event_id
                )
                order_id = await conn.fetchval(
                    # Each line with its shipment, as the naive way keeps them (no shipments of their own).
                    """INSERT INTO order_state.sales_order (order_reference, store, locale, currency, price_mode,
                           customer, billing_address, payment_method, process_name, totals, lines, shipments,
                           placed_at, placed_event_id)
                       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'OmsDefault01', $9, $10, '[]', now(), $11)
                       RETURNING id""",
                    order.order_reference,
                    order.store,
                    order.locale,
                    order.currency,
                    order.price_mode,
                    order.customer.model_dump_json(),
                    order.billing_address.model_dump_json(),
                    order.payment_method,
                    order.totals.model_dump_json(),
                    json.dumps([line.model_dump(mode="json") for line in order.lines]),
                    order.event_id,
                )
                for number, line in enumerate(order.lines, start=1):
                    for _ in range(line.quantity if line.is_quantity_splittable else 1):
                        item_id = await conn.fetchval(
                            """INSERT INTO public.bench_naive_item (order_id, line_number, sku, quantity, state)
                               VALUES ($1, $2, $3, $4, 'new') RETURNING id""",
                            order_id,
                            number,
                            line.sku,
                            1 if line.is_quantity_splittable else line.quantity,
                        )
                        await conn.execute(
                            """INSERT INTO order_state.sales_order_item_state_history
                                   (order_id, item_ids, item_count, to_state, changed_at)
                               VALUES ($1, int8multirange(int8range($2::bigint, $2::bigint + 1)), 1, 'new', now())""",
                            order_id,
                            item_id,
                        )
                await conn.execute(
                    "INSERT INTO order_state.outbox (topic, key, value) VALUES ('bench', $1, $2)",
                    order.order_reference.encode(),
                    record.value,
                )
            await consumer.commit()
            done += 1
            if done == orders:
                return

    task = asyncio.create_task(consume())
    counted = asyncio.create_task(throughput(settings, "BASE", orders, published=False))
    try:
        # The consumer failing ends the wait at once (with its error), not when the count gives up.
        await asyncio.wait((task, counted), return_when=asyncio.FIRST_EXCEPTION)
        if task.done() and task.exception() is not None:
            counted.cancel()
        return await counted
    finally:
        await task
        await consumer.stop()
        await conn.execute("DELETE FROM order_state.outbox WHERE topic = 'bench'")  # nobody relays these
        await conn.close()


async def raw_limit(settings: Settings, orders: int, run: str, consumers: int = 2) -> float:
    """What the broker and the database can do with these orders when nothing is done with them: `consumers`
    Kafka consumers in this process (the partitions of a topic split between them, as between replicas) read
    the orders in batches, COPY each batch into a table as one row per order (reference and JSON), commit,
    then commit their offsets. Returns orders/s. The ceiling every order-management rate here sits under,
    measured next to it because the machine's speed moves from one minute to the next."""
    import asyncpg
    from aiokafka import TopicPartition

    # A topic of its own, deleted afterwards: the embedded broker keeps every topic in memory, and a topic
    # holding every raw limit's orders (150 MB each time) made the broker slower in the runs measured next.
    topic = "bench.raw_placed." + "".join(c if c.isalnum() else "-" for c in run)
    await ensure_topics(settings, [topic])
    await publish(settings, topic, [ordinary_order(n, "R", run) for n in range(orders)])
    setup = await asyncpg.connect(asyncpg_dsn(settings.database_url))
    # Emptied after each measurement and never vacuumed: autovacuum working through the last run's 80 MB of
    # raw orders would land in the order_state run measured next and take its CPU.
    await setup.execute(
        """CREATE TABLE IF NOT EXISTS public.bench_raw (reference text NOT NULL, body json NOT NULL)
           WITH (autovacuum_enabled = off)"""
    )
    await checkpoint(settings)
    partitions = list(range(settings.kafka_topic_partitions))
    done = 0
    started: float | None = None

    async def drain(mine: list[int]) -> None:
        nonlocal done, started
        conn = await asyncpg.connect(asyncpg_dsn(settings.database_url))
        consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            group_id=f"bench-raw-{run}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            # Fetched as order_state's consumer fetches (see Settings): the limit is of the broker and the
            # database, not of a consumer's settings.
            max_partition_fetch_bytes=settings.consumer_max_partition_fetch_bytes,
            fetch_max_wait_ms=settings.consumer_fetch_max_wait_ms,
        )
        await consumer.start()
        try:
            consumer.assign([TopicPartition(topic, p) for p in mine])
            while done < orders:
                batches = await consumer.getmany(timeout_ms=200, max_records=1_000)
                records = [record for batch in batches.values() for record in batch]
                if not records:
                    continue
                started = started or time.perf_counter()
                async with conn.transaction():
                    await conn.copy_records_to_table(
                        "bench_raw",
                        schema_name="public",
                        columns=("reference", "body"),
                        records=[(record.key.decode(), record.value.decode()) for record in records],
                    )
                await consumer.commit()
                done += len(records)
        finally:
            await consumer.stop()
            await conn.close()

    shares = [partitions[n::consumers] for n in range(consumers)]
    try:
        await asyncio.wait_for(asyncio.gather(*(drain(mine) for mine in shares)), timeout=600)
        assert started is not None
        return orders / (time.perf_counter() - started)
    finally:
        await setup.execute("TRUNCATE public.bench_raw")
        await setup.close()
        admin = AIOKafkaAdminClient(**settings.kafka_client_options(), client_id="bench-admin")
        await admin.start()
        try:
            await admin.delete_topics([topic])
        finally:
            await admin.close()


async def big_order(settings: Settings) -> tuple[float, float]:
    document = ordinary_order(0, "G", "BIG")
    document["lines"] = document["lines"][:2]
    document["lines"][0].update(quantity=100_000, is_quantity_splittable=True)
    document["lines"][1].update(quantity=1_000_000, is_quantity_splittable=False)
    document["totals"]["subtotal"] = sum(line["unit_price"] * line["quantity"] for line in document["lines"])
    order = document_decoder(OrderPlaced).validate_python(document)
    engine = create_engine(settings, "order_state")
    catalog = ProcessCatalog.load(settings)
    record = ConsumerRecord("order.placed", 0, 0, 0, 0, b"k", b"{}", None, 0, 0, [])
    try:
        started = time.perf_counter()
        async with engine.begin() as conn:
            uow = UnitOfWork(conn, outbox, "order_state")
            await handlers.place_orders(uow, [Incoming(order, record)], catalog)
            await uow.flush()
        ours_seconds = time.perf_counter() - started
        async with engine.connect() as conn:
            order_id = (
                await conn.execute(
                    text("SELECT id FROM order_state.sales_order WHERE order_reference = :r"),
                    {"r": order["order_reference"]},
                )
            ).scalar_one()
        started = time.perf_counter()
        async with engine.begin() as conn:
            raw = await driver_connection(conn)  # in the transaction: the 100,001 inserts commit once, at the end
            await raw.execute(NAIVE_ITEMS)
            insert = await raw.prepare(
                """INSERT INTO public.bench_naive_item (order_id, line_number, sku, quantity, state)
                   VALUES ($1, $2, $3, $4, 'new')"""
            )
            for _ in range(100_000):
                await insert.fetch(order_id, 1, "SKU-0", 1)
            await insert.fetch(order_id, 2, "SKU-1", 1_000_000)
        base_seconds = time.perf_counter() - started
    finally:
        await engine.dispose()
    return ours_seconds, base_seconds


@contextlib.asynccontextmanager
async def bench_stack(*topics: str) -> AsyncIterator[tuple[EmbeddedStack, dict[str, str], Settings]]:
    """The embedded stack the placement benches run on (PostgreSQL migrated, the services' topics and `topics`
    created), the environment its services run with, and its settings; stopped and deleted afterwards."""
    with tempfile.TemporaryDirectory(prefix="oms-bench-") as base:
        stack = EmbeddedStack(Path(base) / "stack")
        stack.start()
        try:
            env = {
                **stack.environment(),
                "OMS_KAFKA_GROUP_PREFIX": "bench",
                "OMS_LOG_LEVEL": "INFO",  # "ready: consuming" says a service has joined (a few lines per batch)
                # Six partitions (the production default), so that replicas share order.placed evenly.
                "OMS_KAFKA_TOPIC_PARTITIONS": "6",
            }
            os.environ.update(env)
            settings = Settings()
            await upgrade_all(settings)
            await ensure_topics(settings, [*all_topics(), *topics])
            yield stack, env, settings
        finally:
            stack.stop()


async def run(args: argparse.Namespace) -> None:
    async with bench_stack("bench.naive_placed") as (stack, env, settings):
        base_rate = await baseline(settings, args.baseline_orders)
        rates = {
            replicas: await ours(stack, settings, env, args.orders, replicas, args.runs, args.warmup)
            for replicas in args.replicas
        }
        big_ours, big_base = await big_order(settings)
    print(f"ordinary orders (5 lines), {args.orders:,} per run, on {os.cpu_count()} CPU cores:")
    print(
        f"  baseline, one transaction per message, one INSERT per row : {base_rate.stored:,.0f} orders/s stored "
        f"({args.baseline_orders:,} orders)"
    )
    for replicas, runs in rates.items():
        stored = sorted(rate.stored for rate in runs)
        published = sorted(rate.published or 0.0 for rate in runs)
        median = statistics.median(stored)
        print(
            f"  order_state, {replicas} replica{'s' if replicas > 1 else ' '}, median of {len(runs)} runs"
            f"{' ' * (17 - len(str(replicas)) - len(str(len(runs))))}: {median:,.0f} orders/s stored "
            f"({median / base_rate.stored:.1f}x baseline; runs {', '.join(f'{rate:,.0f}' for rate in stored)}), "
            f"{statistics.median(published):,.0f} orders/s with their events published"
        )
        measured = [rate.cpu for rate in runs if rate.cpu]
        if measured:
            print(
                "      CPU per order (median): "
                + ", ".join(f"{name} {statistics.median(m[name] for m in measured):,.0f} us" for name in measured[0])
                + f" = {statistics.median(sum(m.values()) for m in measured):,.0f} us"
            )
        raws = [(rate.stored, rate.raw, rate.raw_after) for rate in runs if rate.raw and rate.raw_after]
        if raws:
            shares = sorted(stored / ((before + after) / 2) for stored, before, after in raws)
            print(
                f"      raw broker+database limit just before / just after each run (consume, COPY, no logic): "
                f"{', '.join(f'{before:,.0f} / {after:,.0f}' for _, before, after in raws)} orders/s; order_state "
                f"at {statistics.median(shares):.0%} of their mean (runs {', '.join(f'{s:.0%}' for s in shares)})"
            )
        # Run by run, in the order they ran: a run at a low rate with a slow machine probe (and a high CPU time
        # per order for the same work) met a slow machine, not slower code.
        for number, rate in enumerate(runs, start=1):
            print(
                f"      run {number}: {rate.stored:,.0f} orders/s"
                + (f", CPU per order {sum(rate.cpu.values()):,.0f} us" if rate.cpu else "")
                + (
                    f" (+{rate.checkpoint_after:,.0f} us of PostgreSQL to checkpoint it after)"
                    if rate.checkpoint_after is not None
                    else ""
                )
                + (f", machine probe {rate.probe:.1f} us per order.placed validated" if rate.probe else "")
                + (
                    f", cores idle {rate.machine['idle']:.0%}, stolen by the host {rate.machine['steal']:.0%}"
                    if rate.machine
                    else ""
                )
            )
    print(f"100,000 + 1,000,000-unit order stored          : {big_ours:.3f} s")
    print(f"baseline, its 100,001 items one INSERT each    : {big_base:.3f} s")
    print(f"ratio                                          : {big_base / big_ours:.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    # The rate is taken between the first and the last batch to start (see throughput()): with batches of up to
    # 2,000 orders, 20,000 orders are five batches per replica, and where one replica's batches fall against
    # the other's moves a run's rate by up to a tenth either way; 40,000 halve that.
    parser.add_argument("--orders", type=int, default=40_000)
    parser.add_argument("--baseline-orders", type=int, default=2_000)
    parser.add_argument(
        "--replicas",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[1, 2],
        help="order_state replicas (consumer-group members) per run, comma-separated (default 1,2)",
    )
    parser.add_argument("--runs", type=int, default=3, help="runs per replica count; the median is reported")
    parser.add_argument(
        "--warmup", type=int, default=10_000, help="orders before each run's measured ones, not counted"
    )
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
