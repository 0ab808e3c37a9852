"""The peer for Benchmarks/queue.sh: how fast pgqueuer drains N queued no-op jobs.

    python3 -m venv /tmp/peers-venv && /tmp/peers-venv/bin/pip install pgqueuer asyncpg
    /tmp/peers-venv/bin/python Benchmarks/pgqueuer_drain.py postgres://postgres@127.0.0.1:55432/pgq --jobs 2000 --batch-size 10

Installs pgqueuer's schema if needed, enqueues the jobs, then times one QueueManager draining them.
"""
import argparse
import asyncio
import subprocess
import sys
import time

import asyncpg
from pgqueuer.db import AsyncpgDriver
from pgqueuer.qm import QueueManager
from pgqueuer.queries import Queries


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("dsn")
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=10)
    args = parser.parse_args()

    subprocess.run([sys.executable, "-m", "pgqueuer", "--pg-dsn", args.dsn, "install"], capture_output=True)
    connection = await asyncpg.connect(args.dsn)
    driver = AsyncpgDriver(connection)
    queries = Queries(driver)
    await queries.clear_queue()
    await queries.enqueue(["noop"] * args.jobs, [None] * args.jobs, [0] * args.jobs)

    manager = QueueManager(queries)
    done = 0

    @manager.entrypoint("noop")
    async def noop(job) -> None:
        nonlocal done
        done += 1
        if done == args.jobs:
            manager.shutdown.set()

    start = time.perf_counter()
    await manager.run(batch_size=args.batch_size)
    elapsed = time.perf_counter() - start
    print(f"pgqueuer jobs {done} batch_size {args.batch_size} drain_s {elapsed:.3f} jobs_per_s {done / elapsed:.0f}")
    await connection.close()


asyncio.run(main())
