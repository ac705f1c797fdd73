"""Draining a burst of order.placed with the consumers' fetch wait at Kafka's default vs what order_state uses.

    .venv/bin/python -m bench.bench_fetch_wait [--orders 40000] [--waits 500,100] [--rounds 3] [--replicas 2]

A consumer has one fetch in flight per broker and leaves out of it the partitions whose fetched records it is
still handling. Once one of its partitions is drained, its next fetch asks for that one alone, and the broker
holds it for the fetch wait (`fetch_max_wait_ms`) before the consumer may ask for the others again. This bench
measures what that costs a burst: on one embedded stack (PostgreSQL + Tansu, 6 partitions), round after round
and wait after wait (alternating, because the machine's speed moves from one minute to the next), fresh
order_state replicas start on a warm-up burst, join their consumer group, then drain N ordinary orders
(bench_placement's: 5 lines) published at once; the stored rate comes from the database's clock as in
bench_placement. Each round also takes the raw broker+database limit with the same fetch settings. The first
wait is the baseline: each other wait's median is printed with its ratio to it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
from collections import defaultdict

from bench.bench_placement import (
    Throughput,
    bench_stack,
    drain_burst,
    raw_limit,
)
from services.runtime.embedded import EmbeddedStack
from services.runtime.settings import Settings

WARMUP = 5_000


async def one_round(
    stack: EmbeddedStack, env: dict[str, str], orders: int, replicas: int, wait: int, name: str
) -> tuple[Throughput, float]:
    env = {**env, "OMS_CONSUMER_FETCH_MAX_WAIT_MS": str(wait)}
    os.environ.update(env)
    settings = Settings()
    raw = await raw_limit(settings, orders, f"RAW{name}")
    rate = await drain_burst(stack, settings, env, name, orders, f"WARM{name}", WARMUP, replicas)
    return rate, raw


async def run(args: argparse.Namespace) -> None:
    results: dict[int, list[tuple[Throughput, float]]] = defaultdict(list)
    async with bench_stack() as (stack, env, _):
        for number in range(args.rounds):
            for wait in args.waits:
                rate, raw = await one_round(stack, env, args.orders, args.replicas, wait, f"W{wait}R{number}")
                results[wait].append((rate, raw))
                print(
                    f"round {number + 1}, fetch wait {wait} ms: {rate.stored:,.0f} orders/s stored, raw limit "
                    f"{raw:,.0f}" + (f", cores idle {rate.machine['idle']:.0%}" if rate.machine else ""),
                    flush=True,
                )
    print(f"{args.orders:,} ordinary orders drained by {args.replicas} order_state replicas, {args.rounds} rounds:")
    base = statistics.median(rate.stored for rate, _ in results[args.waits[0]])
    for wait in args.waits:
        stored = [rate.stored for rate, _ in results[wait]]
        shares = [rate.stored / raw for rate, raw in results[wait]]
        idle = [rate.machine["idle"] for rate, _ in results[wait] if rate.machine]
        median = statistics.median(stored)
        print(
            f"  fetch wait {wait:>4} ms: median {median:,.0f} orders/s (runs {', '.join(f'{s:,.0f}' for s in stored)})"
            f", {statistics.median(shares):.0%} of the raw limit"
            + (f", cores idle {statistics.median(idle):.0%}" if idle else "")
            + (f", {median / base:.2f}x the {args.waits[0]} ms baseline" if wait != args.waits[0] else " (baseline)")
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=40_000)
    parser.add_argument(
        "--waits",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[500, 100],
        help="fetch waits in ms, comma-separated; the first is the baseline (default 500,100)",
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--replicas", type=int, default=2)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
