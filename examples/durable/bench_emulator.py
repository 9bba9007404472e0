"""Throughput of saga/index.py on AWS's local emulator, for comparison with
`sagaflow bench --workload durable`.

Runs the orchestrator on aws-durable-execution-sdk-python-testing's local
runner (``DurableFunctionTestRunner``: the emulated durable-execution
service, its executor and checkpoint processor, in this process) with a
disk-backed store (its ``SQLiteExecutionStore``, WAL, ``synchronous=NORMAL``;
``--store memory`` or ``filesystem`` for the others), ``--concurrency``
threads each running one execution after another (``runner.run``: start,
then wait until complete), after a warm-up.

The six saga-* functions the orchestrator invokes are answered by the travel
services over HTTP (``--services http://127.0.0.1:8081``: each chained
invoke is a POST to ``/lambda/saga-*``, as Sagaflow's resource rules send
them), or with ``--services inprocess`` by the in-memory stand-ins of
test_saga_offline.py.

    python3 -m venv /tmp/emu && /tmp/emu/bin/pip install aws-durable-execution-sdk-python-testing
    travel-services --listen 127.0.0.1:8081 --db /tmp/travel.db &
    /tmp/emu/bin/python examples/durable/bench_emulator.py --services http://127.0.0.1:8081 \\
        --executions 50 --concurrency 4 [--json]
"""

import argparse
import http.client
import json
import logging
import pathlib
import statistics
import sys
import tempfile
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "saga"))
sys.path.insert(0, str(HERE))

from aws_durable_execution_sdk_python.execution import InvocationStatus  # noqa: E402
from aws_durable_execution_sdk_python_testing.runner import DurableFunctionTestRunner  # noqa: E402
from aws_durable_execution_sdk_python_testing.stores.filesystem import (  # noqa: E402
    FileSystemExecutionStore,
)
from aws_durable_execution_sdk_python_testing.stores.memory import (  # noqa: E402
    InMemoryExecutionStore,
)
from aws_durable_execution_sdk_python_testing.stores.sqlite import (  # noqa: E402
    SQLiteExecutionStore,
)

import index  # noqa: E402

FUNCTIONS = [f"saga-{verb}-{service}" for service in ("flight", "hotel", "car") for verb in ("reserve", "cancel")]


class HttpServices:
    """The six functions as the travel services serve them: POST
    /lambda/saga-*; a 422 {"error", "cause"} is the function's error."""

    def __init__(self, base):
        url = urllib.parse.urlsplit(base)
        self.host, self.port = url.hostname, url.port or 80
        self.local = threading.local()

    def connection(self):
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
            self.local.conn = conn
        return conn

    def post(self, name, event):
        body = json.dumps(event)
        for attempt in (0, 1):
            conn = self.connection()
            try:
                conn.request("POST", f"/lambda/{name}", body, {"content-type": "application/json"})
                resp = conn.getresponse()
                data = resp.read()
                break
            except (http.client.HTTPException, OSError):
                conn.close()
                self.local.conn = None
                if attempt:
                    raise
        answer = json.loads(data) if data else None
        if resp.status >= 400:
            error = (answer or {}).get("error", "Exception")
            cause = (answer or {}).get("cause", "")
            raise (RuntimeError if error == "RuntimeError" else Exception)(cause)
        return answer

    def handler(self, name):
        return lambda event, _context: self.post(name, event)


def make_store(kind, directory):
    if kind == "sqlite":
        return SQLiteExecutionStore.create_and_initialize(pathlib.Path(directory) / "executions.db")
    if kind == "filesystem":
        return FileSystemExecutionStore.create(str(pathlib.Path(directory) / "executions"))
    return InMemoryExecutionStore()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--executions", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=None, help="[default: 2 x concurrency]")
    parser.add_argument("--store", choices=["sqlite", "filesystem", "memory"], default="sqlite")
    parser.add_argument("--services", default="inprocess", help="the travel services' URL, or `inprocess`")
    parser.add_argument("--fail-car-rate", type=float, default=0.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)  # the saga's log lines, per operation

    success = (HERE / "inputs" / "success.json").read_text()
    fail_car = (HERE / "inputs" / "fail-car-booking.json").read_text()
    tmp = tempfile.TemporaryDirectory(prefix="emulator-bench-")
    store = make_store(args.store, tmp.name)
    runner = DurableFunctionTestRunner(handler=index.lambda_handler, region="us-east-1", store=store)
    if args.services == "inprocess":
        from test_saga_offline import Services

        services = Services()
        for service in ("flight", "hotel", "car"):
            runner.register_function(f"saga-reserve-{service}", services.reserve(service))
            runner.register_function(f"saga-cancel-{service}", services.cancel(service))
        services_text = "in-process Python stand-ins (test_saga_offline.Services)"
    else:
        services = HttpServices(args.services)
        for name in FUNCTIONS:
            runner.register_function(name, services.handler(name))
        services_text = f"the travel services over HTTP ({args.services}/lambda/saga-*)"

    counter = iter(range(10**9))
    lock = threading.Lock()

    def one(i, expected_fail):
        with lock:
            n = next(counter)
        payload = fail_car if expected_fail else success
        started = time.perf_counter()
        result = runner.run(
            input=payload,
            execution_timeout=120,
            function_name="saga-durable-function",
            execution_name=f"bench-{n}",
        )
        latency = time.perf_counter() - started
        want = InvocationStatus.FAILED if expected_fail else InvocationStatus.SUCCEEDED
        return result.status == want, latency, result.status

    def fails(i):
        # The same seeded share as the bench's, approximately: every k-th.
        return args.fail_car_rate > 0 and (i * args.fail_car_rate) % 1 + args.fail_car_rate >= 1

    def batch(count):
        with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
            return list(pool.map(lambda i: one(i, fails(i)), range(count)))

    warm = batch(args.warmup if args.warmup is not None else 2 * args.concurrency)
    started = time.perf_counter()
    cpu = time.process_time()
    results = batch(args.executions)
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu
    runner.close()
    bad = [r[2] for r in results + warm if not r[0]]
    latencies = sorted(r[1] for r in results)
    report = {
        "emulator": "aws-durable-execution-sdk-python-testing DurableFunctionTestRunner",
        "store": {
            "sqlite": "SQLiteExecutionStore (WAL, synchronous=NORMAL; one row per execution, rewritten on every update)",
            "filesystem": "FileSystemExecutionStore (one JSON file per execution)",
            "memory": "InMemoryExecutionStore (nothing on disk)",
        }[args.store],
        "services": services_text,
        "executions": len(results),
        "concurrency": args.concurrency,
        "wall_s": wall,
        "executions_per_s": len(results) / wall,
        "latency_ms": {
            "p50": statistics.median(latencies) * 1e3,
            "p99": latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] * 1e3,
        },
        "cpu_s": cpu,
        "unexpected": len(bad),
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for key, value in report.items():
            print(f"{key:<18}{value}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
