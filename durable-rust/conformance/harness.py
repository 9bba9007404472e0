#!/usr/bin/env python3
"""The conformance harness: runs AWS's durable-function conformance cases
(`cases/<category>/<case>.yaml`) against a real Sagaflow server that hosts
their handlers, written with AWS's official Rust SDK (the `bootstrap` of this
crate), and compares each execution's result and history with the case's.

    python harness.py [--only 'step/*'] [--jobs 8] [--report report.json]

It starts `sagaflow server` itself (SQLite in a temporary directory, every
function of `bootstrap --list` under `[lambda]`), drives it only through the
Lambda API with boto3, and answers the cases' `CallbackActions` with boto3's
callback calls. A case passes when:

* the execution ends with `ExpectedResult.ExecutionStatus`, and with
  `ExpectedResult.Result` (JSON-decoded) when the case gives a `Result` key;
* every event of `ExpectedExecutionHistory` matches the event of the
  recorded history with the same `EventId`. Events the case does not list are
  not asserted (AWS's matcher ignores them too: case map/9-11 says so). A
  mapping matches when each of its keys matches (extra keys are fine), `'*'`
  matches any value, a `${NAME}` that is not one of the case's `Variables`
  binds to the value it first meets (one name, one value; two names, two
  values), a `${/REGEX/}` matches a value whose text REGEX finds, and two
  strings that are both JSON match when they decode alike.

`known-failures.toml` lists the cases that do not pass, each with its reason.
The run fails when a case fails that is not listed there, or when a listed
case passes (so the list, and the README's pass rate, stay true).
"""

import argparse
import concurrent.futures
import fnmatch
import json
import os
import random
import re
import shutil
import signal
import socket
import string
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
import traceback
import uuid
from pathlib import Path

import boto3
import botocore.config
import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
REGION = "us-east-1"
ACCOUNT = "123456789012"
# Generous: some cases wait for callback timeouts and retry backoffs.
CASE_DEADLINE_SECONDS = 180
TERMINAL = {"SUCCEEDED", "FAILED", "TIMED_OUT", "STOPPED"}
PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_]+)(?::(\d+))?\}")
# `${/REGEX/}`: the value (a number as its decimal text) must match REGEX
# (searched, as AWS's matcher does: the cases anchor it with ^ and $).
PATTERN = re.compile(r"\$\{/(.*)/\}", re.S)


# ------------------------------------------------------------------- server


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def toml_str(text):
    return json.dumps(str(text))


def served_functions(bootstrap):
    out = subprocess.run([str(bootstrap), "--list"], check=True, capture_output=True, text=True)
    functions = []
    for line in out.stdout.splitlines():
        name, kind = line.split()
        functions.append((name, kind == "durable"))
    return functions


def write_config(work, bootstrap, functions):
    port = free_port()
    lines = [
        f'listen = "127.0.0.1:{port}"',
        f"data_dir = {toml_str(work / 'data')}",
        "",
        "[lambda]",
        f'region = "{REGION}"',
        f'account_id = "{ACCOUNT}"',
        f"log_dir = {toml_str(work / 'functions')}",
    ]
    for name, durable in functions:
        lines += [
            "",
            "[[lambda.functions]]",
            f'name = "{name}"',
            'runtime = "provided"',
            f"code = {toml_str(bootstrap.parent)}",
            f"handler = {toml_str(bootstrap.name)}",
            "timeout_seconds = 60",
            "workers = 4",
            # The SDK logs to stdout; keep the logs readable per function.
            "[lambda.functions.environment]",
            'RUST_LOG = "info"',
        ]
        if durable:
            lines += [
                "[lambda.functions.durable]",
                "execution_timeout_seconds = 600",
                "retention_days = 1",
            ]
    config = work / "sagaflow.toml"
    config.write_text("\n".join(lines) + "\n")
    return config, f"http://127.0.0.1:{port}"


class Server:
    """`sagaflow server --config …`, stopped (SIGTERM, then SIGKILL) on exit."""

    def __init__(self, sagaflow, config, url, log):
        self.url = url
        self.log = log
        self.proc = subprocess.Popen(
            [str(sagaflow), "server", "--config", str(config)],
            stdout=open(log, "wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        import urllib.request

        while True:
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            if self.proc.poll() is not None:
                raise SystemExit(f"sagaflow server exited early; its log:\n{self.tail()}")
            if time.monotonic() > deadline:
                raise SystemExit(f"sagaflow server not healthy in 60s; its log:\n{self.tail()}")
            time.sleep(0.05)

    def tail(self, lines=40):
        try:
            return "\n".join(Path(self.log).read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


# -------------------------------------------------------------------- cases


def load_case(path):
    case = yaml.safe_load(path.read_text())
    case["_id"] = f"{path.parent.name}/{path.stem}"
    return case


def function_of(case_id):
    category, case = case_id.split("/")
    return f"conf-{category.replace('_', '-')}-{case}"


def generate(variables):
    """`Variables: {NAME: ${GEN_STR:N}}` → {NAME: a random string of N}."""
    values = {}
    for name, spec in (variables or {}).items():
        m = PLACEHOLDER.fullmatch(str(spec))
        if m and m.group(1) == "GEN_STR":
            n = int(m.group(2) or 8)
            values[name] = "".join(random.choices(string.ascii_lowercase + string.digits, k=n))
        else:
            values[name] = substitute(spec, values)
    return values


def substitute(value, variables):
    """Replaces `${NAME}` of the case's variables (not the ID bindings)."""
    if isinstance(value, str):
        whole = PLACEHOLDER.fullmatch(value)
        if whole and whole.group(1) in variables:
            return variables[whole.group(1)]
        return PLACEHOLDER.sub(
            lambda m: str(variables[m.group(1)]) if m.group(1) in variables else m.group(0), value
        )
    if isinstance(value, list):
        return [substitute(v, variables) for v in value]
    if isinstance(value, dict):
        return {k: substitute(v, variables) for k, v in value.items()}
    return value


class Mismatch(Exception):
    pass


class Matcher:
    """Subset matching with `'*'` and `${NAME}` bindings (see the header)."""

    def __init__(self):
        self.bound = {}

    def match(self, expected, actual, where):
        if expected == "*":
            if actual is None:
                raise Mismatch(f"{where}: expected a value, found none")
            return
        if isinstance(expected, str):
            pattern = PATTERN.fullmatch(expected)
            if pattern:
                text = actual if isinstance(actual, str) else json.dumps(actual)
                if actual is None or not re.search(pattern.group(1), text):
                    raise Mismatch(f"{where}: expected a match of /{pattern.group(1)}/, found {actual!r}")
                return
            whole = PLACEHOLDER.fullmatch(expected)
            if whole:
                self.bind(whole.group(1), actual, where)
                return
            if "${" in expected:
                self.match_template(expected, actual, where)
                return
        if isinstance(expected, dict):
            if not isinstance(actual, dict):
                raise Mismatch(f"{where}: expected an object, found {actual!r}")
            for key, value in expected.items():
                if key not in actual:
                    if value is None:
                        continue
                    raise Mismatch(f"{where}.{key}: missing (expected {value!r})")
                self.match(value, actual[key], f"{where}.{key}")
            return
        if isinstance(expected, list):
            if not isinstance(actual, list) or len(actual) != len(expected):
                raise Mismatch(f"{where}: expected {expected!r}, found {actual!r}")
            for i, (e, a) in enumerate(zip(expected, actual)):
                self.match(e, a, f"{where}[{i}]")
            return
        if expected == actual:
            return
        if isinstance(expected, str) and isinstance(actual, str) and json_equal(expected, actual):
            return
        if isinstance(expected, (int, float)) and isinstance(actual, (int, float)) and expected == actual:
            return
        raise Mismatch(f"{where}: expected {expected!r}, found {actual!r}")

    def bind(self, name, actual, where):
        if actual is None:
            raise Mismatch(f"{where}: expected ${{{name}}}, found none")
        if name in self.bound:
            if self.bound[name] != actual:
                raise Mismatch(f"{where}: ${{{name}}} is {self.bound[name]!r} elsewhere, here {actual!r}")
            return
        for other, value in self.bound.items():
            if value == actual:
                raise Mismatch(f"{where}: ${{{name}}} and ${{{other}}} are both {actual!r}")
        self.bound[name] = actual

    def match_template(self, expected, actual, where):
        """A string with placeholders inside: each binds one run of text."""
        if not isinstance(actual, str):
            raise Mismatch(f"{where}: expected {expected!r}, found {actual!r}")
        pattern, names = "", []
        last = 0
        for m in PLACEHOLDER.finditer(expected):
            pattern += re.escape(expected[last : m.start()])
            if m.group(1) in self.bound:
                pattern += re.escape(str(self.bound[m.group(1)]))
            else:
                pattern += "(.+?)"
                names.append(m.group(1))
            last = m.end()
        pattern += re.escape(expected[last:])
        found = re.fullmatch(pattern, actual, re.S)
        if not found:
            raise Mismatch(f"{where}: expected {expected!r}, found {actual!r}")
        for name, value in zip(names, found.groups()):
            self.bind(name, value, where)


def json_equal(a, b):
    try:
        return json.loads(a) == json.loads(b)
    except (ValueError, TypeError):
        return False


# --------------------------------------------------------------- execution


class Runner:
    def __init__(self, endpoint):
        self.client = boto3.client(
            "lambda",
            endpoint_url=endpoint,
            region_name=REGION,
            aws_access_key_id="conformance",
            aws_secret_access_key="conformance",
            config=botocore.config.Config(
                read_timeout=CASE_DEADLINE_SECONDS, retries={"max_attempts": 1}, max_pool_connections=32
            ),
        )

    def history(self, arn):
        events, kwargs = [], {"DurableExecutionArn": arn, "IncludeExecutionData": True}
        while True:
            page = self.client.get_durable_execution_history(**kwargs)
            events.extend(page["Events"])
            if not page.get("NextMarker"):
                return events
            kwargs["Marker"] = page["NextMarker"]

    def wait_done(self, arn, deadline):
        while True:
            ex = self.client.get_durable_execution(DurableExecutionArn=arn)
            if ex["Status"] in TERMINAL:
                return ex
            if time.monotonic() > deadline:
                raise Mismatch(f"still {ex['Status']} after {CASE_DEADLINE_SECONDS}s")
            time.sleep(0.1)

    def wait_events(self, arn, expected, deadline):
        """Polls until the history has every `EventId` of `expected` (or the
        execution ended); returns the execution as it is then."""
        wanted = {e.get("EventId") for e in expected}
        while True:
            ex = self.client.get_durable_execution(DurableExecutionArn=arn)
            have = {e["EventId"] for e in self.history(arn)}
            if wanted <= have or ex["Status"] in TERMINAL:
                return ex
            if time.monotonic() > deadline:
                raise Mismatch(f"history still lacks events {sorted(wanted - have)} after {CASE_DEADLINE_SECONDS}s")
            time.sleep(0.1)

    def callback_id(self, arn, name, used, deadline):
        """The CallbackId of the callback named `name` (or of its
        wait_for_callback context), or of any callback not answered yet."""
        while True:
            events = self.history(arn)
            names = {e.get("Id"): e.get("Name") for e in events}
            for e in events:
                if e["EventType"] != "CallbackStarted":
                    continue
                cid = e["CallbackStartedDetails"]["CallbackId"]
                if name == "*":
                    if cid not in used:
                        return cid
                elif name in (e.get("Name"), names.get(e.get("ParentId"))):
                    return cid
            if time.monotonic() > deadline:
                raise Mismatch(f"no callback named {name!r} started")
            time.sleep(0.1)

    def act(self, arn, actions, deadline, errors, used):
        """Performs one callback's actions in order (see `act_all`)."""
        try:
            for action in actions:
                cid = self.callback_id(arn, action.get("CallbackName", "*"), used, deadline)
                time.sleep(float(action.get("Delay") or 0))
                op = action["Operation"]
                if op == "success":
                    payload = action.get("Payload")
                    self.client.send_durable_execution_callback_success(
                        CallbackId=cid, Result=json.dumps(payload).encode()
                    )
                    used.add(cid)
                elif op == "failure":
                    self.client.send_durable_execution_callback_failure(
                        CallbackId=cid, Error=dict(action.get("Payload") or {})
                    )
                    used.add(cid)
                elif op == "heartbeat":
                    self.client.send_durable_execution_callback_heartbeat(CallbackId=cid)
                else:
                    raise Mismatch(f"unknown callback operation {op!r}")
        except Exception as err:  # reported with the case
            errors.append(f"callback action: {err}")

    def act_all(self, arn, actions, deadline, errors):
        """Performs the case's `CallbackActions`: one thread per
        `CallbackName`, each doing its callback's actions in order, each
        action once its callback has started and its `Delay` has passed.
        Callbacks are answered independently, as AWS's runner does: case
        callback/4-19 lists B (Delay 4) before A (Delay 1) and expects A to
        succeed first. `'*'` actions (any callback not answered yet) are one
        ordered group, since they cannot tell their callbacks apart."""
        groups = {}
        for action in actions:
            groups.setdefault(action.get("CallbackName", "*"), []).append(action)
        used = set()
        threads = [
            threading.Thread(target=self.act, args=(arn, group, deadline, errors, used))
            for group in groups.values()
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def run(self, case):
        variables = generate(case.get("Variables"))
        payload = substitute(case.get("Input"), variables)
        deadline = time.monotonic() + CASE_DEADLINE_SECONDS
        resp = self.client.invoke(
            FunctionName=function_of(case["_id"]),
            InvocationType="Event" if case.get("AsyncInvoke") else "RequestResponse",
            Payload=json.dumps(payload).encode(),
            DurableExecutionName=f"{case['_id'].replace('/', '-')}-{uuid.uuid4().hex[:8]}",
        )
        arn = resp["DurableExecutionArn"]
        errors = []
        actor = None
        if case.get("CallbackActions"):
            actions = substitute(case["CallbackActions"], variables)
            actor = threading.Thread(target=self.act_all, args=(arn, actions, deadline, errors))
            actor.start()
        if "ExpectedResult" in case:
            execution = self.wait_done(arn, deadline)
        else:
            # No ExpectedResult (wait/2-5 waits an hour): the case asserts
            # only the history's start, so wait for its listed events
            # rather than for the execution's end.
            execution = self.wait_events(arn, case.get("ExpectedExecutionHistory") or [], deadline)
        if actor:
            actor.join(max(0.0, deadline - time.monotonic()))
        events = self.history(arn)
        problems = list(errors)
        expected = case.get("ExpectedResult") or {}
        matcher = Matcher()
        try:
            if "ExecutionStatus" in expected and execution["Status"] != expected["ExecutionStatus"]:
                raise Mismatch(
                    f"status {execution['Status']}, expected {expected['ExecutionStatus']}"
                    f" (error: {execution.get('Error')})"
                )
            if "Result" in expected:
                raw = execution.get("Result")
                actual = json.loads(raw) if raw not in (None, "") else None
                matcher.match(substitute(expected["Result"], variables), actual, "Result")
        except Mismatch as m:
            problems.append(str(m))
        by_id = {e["EventId"]: e for e in events}
        for want in case.get("ExpectedExecutionHistory") or []:
            want = substitute(want, variables)
            got = by_id.get(want.get("EventId"))
            where = f"event {want.get('EventId')} ({want.get('EventType')})"
            if got is None:
                problems.append(f"{where}: the history has no such event")
                continue
            try:
                matcher.match(json.loads(json.dumps(want, default=str)), jsonable(got), where)
            except Mismatch as m:
                problems.append(str(m))
        return arn, problems, events, execution


def jsonable(event):
    return json.loads(json.dumps(event, default=str))


def brief(events):
    return "\n".join(
        f"      {e['EventId']:>3} {e['EventType']:<22} {e.get('SubType', ''):<16} "
        f"id={e.get('Id', '')} parent={e.get('ParentId', '')} name={e.get('Name', '')} "
        f"{json.dumps({k: v for k, v in e.items() if k.endswith('Details')}, default=str)[:160]}"
        for e in events
    )


# --------------------------------------------------------------------- main


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sagaflow", type=Path, default=REPO / "target/debug/sagaflow")
    parser.add_argument("--bootstrap", type=Path, default=HERE.parent / "target/debug/bootstrap")
    parser.add_argument("--cases", type=Path, default=HERE / "cases")
    parser.add_argument("--extra", type=Path, default=HERE / "extra")
    parser.add_argument("--known-failures", type=Path, default=HERE / "known-failures.toml")
    parser.add_argument("--only", action="append", help="glob over CATEGORY/CASE, e.g. 'map/*'")
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--report", type=Path, help="write every case's outcome here (JSON)")
    parser.add_argument("--keep", action="store_true", help="keep the server's directory")
    parser.add_argument("--verbose", action="store_true", help="print the history of failing cases")
    args = parser.parse_args()

    for path in (args.sagaflow, args.bootstrap):
        if not path.exists():
            raise SystemExit(f"{path} does not exist: build it first (see the README)")
    # AWS's cases, then Sagaflow's own in the same format (`extra/`: what
    # AWS's cases leave out, such as state paged past 1,000 operations).
    cases = sorted(
        (load_case(p) for p in [*args.cases.glob("*/*.yaml"), *args.extra.glob("*/*.yaml")]),
        key=lambda c: (c["_id"].split("/")[0], [int(x) for x in c["_id"].split("/")[1].split("-")]),
    )
    own = {c["_id"] for c in cases if c["_id"].startswith("sagaflow/")}
    if args.only:
        cases = [c for c in cases if any(fnmatch.fnmatch(c["_id"], g) for g in args.only)]
    known = tomllib.loads(args.known_failures.read_text()) if args.known_failures.exists() else {}
    known = {f"{cat}/{case}": reason for cat, table in known.items() for case, reason in table.items()}

    served = served_functions(args.bootstrap.resolve())
    served_names = {name for name, _ in served}
    work = Path(tempfile.mkdtemp(prefix="sagaflow-conformance-"))
    config, url = write_config(work, args.bootstrap.resolve(), served)
    server = Server(args.sagaflow.resolve(), config, url, work / "server.log")
    print(f"server {url}, directory {work}", flush=True)
    runner = Runner(url)
    outcomes = {}
    lock = threading.Lock()

    def one(case):
        cid = case["_id"]
        started = time.monotonic()
        if function_of(cid) not in served_names:
            outcome = {"passed": False, "problems": ["no handler: bootstrap does not serve " + function_of(cid)]}
        else:
            try:
                arn, problems, events, execution = runner.run(case)
                outcome = {"passed": not problems, "problems": problems, "arn": arn}
                if problems and args.verbose:
                    outcome["history"] = brief(events)
                    outcome["execution"] = {k: execution.get(k) for k in ("Status", "Result", "Error")}
            except Exception as err:
                outcome = {"passed": False, "problems": [f"{type(err).__name__}: {err}"]}
                if args.verbose:
                    outcome["trace"] = traceback.format_exc()
        outcome["seconds"] = round(time.monotonic() - started, 1)
        with lock:
            outcomes[cid] = outcome
            mark = "pass" if outcome["passed"] else ("FAIL (known)" if cid in known else "FAIL")
            print(f"{mark:<12} {cid:<24} {outcome['seconds']:>5}s  {case['description'][:70]}", flush=True)
            if not outcome["passed"]:
                for p in outcome["problems"]:
                    print(f"      {p}", flush=True)
                for key in ("execution", "history", "trace"):
                    if key in outcome:
                        print(f"    {key}:\n{outcome[key]}", flush=True)

    try:
        with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
            list(pool.map(one, cases))
    finally:
        server.stop()

    passed = sorted(c for c, o in outcomes.items() if o["passed"])
    failed = sorted(c for c, o in outcomes.items() if not o["passed"])
    unexpected = [c for c in failed if c not in known]
    stale = [c for c in passed if c in known]
    aws = [c for c in outcomes if c not in own]
    print(
        f"\nconformance: {sum(outcomes[c]['passed'] for c in aws)} of {len(aws)} of AWS's cases pass"
        f"; Sagaflow's own: {sum(outcomes[c]['passed'] for c in own if c in outcomes)} of"
        f" {len(own & outcomes.keys())}",
        flush=True,
    )
    for c in failed:
        print(f"  not passing: {c}: {known.get(c, 'NOT IN known-failures.toml')}")
    if args.report:
        args.report.write_text(json.dumps(outcomes, indent=2, sort_keys=True))
    if unexpected:
        print(f"\nunexpected failures (not in {args.known_failures.name}): {' '.join(unexpected)}")
        print(f"server log: {work / 'server.log'}; function logs: {work / 'functions'}")
    if stale:
        print(f"\nlisted in {args.known_failures.name} but passing now: {' '.join(stale)}")
    if unexpected or stale:
        sys.exit(1)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
