"""The travel saga as a Lambda durable function, driven with the real AWS SDK.

Run by crates/cli/tests/durable.rs against one `sagaflow server` hosting
examples/durable/saga as `saga-durable-function` and the fixture
fixtures/waiter as `durable-waiter`, with travel-services as the target of
the saga's chained invokes. Plain asserts, no pytest: every check runs,
each failure is printed, and the exit status is 1 if any failed.

Environment:
  SAGAFLOW_ENDPOINT  the server's URL (the Lambda API and the native /v1 API)
  TRAVEL_URL         the travel services' URL
  SAGAFLOW_INPUTS    examples/durable/inputs
  SAGAFLOW_BIN       the sagaflow binary (the client commands)
  WORK_DIR           a scratch directory
"""

import importlib.util
import json
import os
import subprocess
import sys
import time
import traceback
import urllib.request
import uuid

import boto3
import botocore.config
import botocore.exceptions

ENDPOINT = os.environ["SAGAFLOW_ENDPOINT"]
TRAVEL_URL = os.environ["TRAVEL_URL"]
INPUTS = os.environ["SAGAFLOW_INPUTS"]
SAGAFLOW_BIN = os.environ["SAGAFLOW_BIN"]
WORK_DIR = os.environ["WORK_DIR"]

FUNCTION = "saga-durable-function"
WAITER = "durable-waiter"
REGION = "us-east-1"
ACCOUNT = "123456789012"
# Generous: each saga takes a few worker invocations, each well under a second.
DEADLINE_SECONDS = 120

PREFIX = "Saga transaction failed and compensated. Details: "

# Each input: (file, the simulated failure's message or None, the invoke
# names in order with whether they succeeded, the compensations' services).
SCENARIOS = {
    "success": (
        "success.json",
        None,
        [("reserve_flight", True), ("reserve_hotel", True), ("reserve_car", True)],
        [],
    ),
    "fail-flight": (
        "fail-flight-booking.json",
        "Simulated flight booking failure for testing saga compensation",
        [("reserve_flight", False)],
        [],
    ),
    "fail-hotel": (
        "fail-hotel-booking.json",
        "Simulated hotel reservation failure for testing saga compensation",
        [("reserve_flight", True), ("reserve_hotel", False), ("cancel_flight", True)],
        ["flight"],
    ),
    "fail-car": (
        "fail-car-booking.json",
        "Simulated car rental failure for testing saga compensation",
        [
            ("reserve_flight", True),
            ("reserve_hotel", True),
            ("reserve_car", False),
            ("cancel_hotel", True),
            ("cancel_flight", True),
        ],
        ["hotel", "flight"],
    ),
}
ID_FIELDS = {"flight": "bookingId", "hotel": "reservationId", "car": "rentalId"}

# A prefix of this run's execution names, so that a name is never reused
# across runs of the suite against the same data directory.
RUN = uuid.uuid4().hex[:8]


def client():
    return boto3.client(
        "lambda",
        endpoint_url=ENDPOINT,
        region_name=REGION,
        aws_access_key_id="x",
        aws_secret_access_key="x",
        # A sync invoke waits for the whole saga: no client-side retry of it.
        config=botocore.config.Config(
            read_timeout=DEADLINE_SECONDS, retries={"max_attempts": 1}
        ),
    )


LAMBDA = client()


def read_input(file):
    with open(os.path.join(INPUTS, file), "rb") as f:
        return f.read()


def http_json(url, method="GET", body=None):
    req = urllib.request.Request(url, method=method, data=body)
    if body is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.loads(resp.read() or b"null")


def error_code(err):
    return err.response.get("Error", {}).get("Code")


def error_message(err):
    return err.response.get("Error", {}).get("Message") or ""


def expect_error(code, call, *args, **kwargs):
    """Calls `call` and returns the ClientError, which must have `code`."""
    try:
        got = call(*args, **kwargs)
    except botocore.exceptions.ClientError as err:
        assert error_code(err) == code, f"expected {code}, got {err.response}"
        return err
    raise AssertionError(f"expected {code}, got an answer: {got}")


def wait_done(arn, deadline=DEADLINE_SECONDS):
    """Polls GetDurableExecution until the execution is not RUNNING."""
    end = time.monotonic() + deadline
    while True:
        ex = LAMBDA.get_durable_execution(DurableExecutionArn=arn)
        if ex["Status"] != "RUNNING":
            return ex
        assert time.monotonic() < end, f"{arn} still RUNNING after {deadline}s"
        time.sleep(0.2)


def history(arn):
    events = []
    kwargs = {"DurableExecutionArn": arn, "IncludeExecutionData": True}
    while True:
        page = LAMBDA.get_durable_execution_history(**kwargs)
        events.extend(page["Events"])
        if not page.get("NextMarker"):
            return events
        kwargs["Marker"] = page["NextMarker"]


def arn_names_execution(arn, name, function=FUNCTION):
    prefix = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function}:$LATEST/durable-execution/{name}/"
    assert arn.startswith(prefix), f"{arn} starts with {prefix}"
    assert len(arn) > len(prefix), f"{arn} ends with an invocation id"


def invoke_names(events):
    """The chained invokes, in start order, with whether each succeeded."""
    names = []
    for e in events:
        t = e["EventType"]
        if t in ("ChainedInvokeSucceeded", "ChainedInvokeFailed"):
            name = e["Name"].removesuffix("_invocation")
            names.append((name, t == "ChainedInvokeSucceeded"))
    return names


def check_history(label, events, succeeded):
    """Scenario 6: the shape every history must have."""
    ids = [e["EventId"] for e in events]
    assert ids == list(range(1, len(events) + 1)), f"{label}: EventIds 1..n: {ids}"
    types = [e["EventType"] for e in events]
    assert types[0] == "ExecutionStarted", f"{label}: first event: {types}"
    last = "ExecutionSucceeded" if succeeded else "ExecutionFailed"
    assert types[-1] == last, f"{label}: last event {last}: {types}"
    assert types[-2] == "InvocationCompleted", f"{label}: the last invocation ends first: {types}"
    # Each ChainedInvokeStarted is followed by an InvocationCompleted
    # before its outcome event.
    for i, e in enumerate(events):
        if e["EventType"] != "ChainedInvokeStarted":
            continue
        op = e["Id"]
        outcome = next(
            (
                j
                for j in range(i + 1, len(events))
                if events[j].get("Id") == op
                and events[j]["EventType"].startswith("ChainedInvoke")
                and events[j]["EventType"] != "ChainedInvokeStarted"
            ),
            None,
        )
        assert outcome is not None, f"{label}: {e['Name']} has an outcome: {types}"
        between = types[i + 1 : outcome]
        assert "InvocationCompleted" in between, (
            f"{label}: {e['Name']}'s outcome comes after an InvocationCompleted: {types}"
        )
    steps = [e for e in events if e["EventType"] == "StepSucceeded" and e["Name"] == "generate-ids"]
    assert len(steps) == 1, f"{label}: generate-ids StepSucceeded once: {types}"
    started = [e["Name"] for e in events if e["EventType"] == "ChainedInvokeStarted"]
    assert len(started) == len(set(started)), f"{label}: no chained invoke twice: {started}"
    return decode(json.loads(steps[0]["StepSucceededDetails"]["Result"]["Payload"]))


def decode(envelope):
    """A step result as the SDK checkpoints it: `{"t": tag, "v": value}`,
    maps (`m`) and lists (`l`, tuples `t`) of envelopes inside."""
    tag, value = envelope["t"], envelope["v"]
    if tag == "m":
        return {k: decode(v) for k, v in value.items()}
    if tag in ("l", "t"):
        return [decode(v) for v in value]
    return value


def check_outcome(label, scenario, ex, result_payload, error):
    """Scenario 1: the status, and the result or the error with its details.
    Returns the transactionId."""
    _, failure, _, compensated = SCENARIOS[scenario]
    if failure is None:
        assert ex["Status"] == "SUCCEEDED", f"{label}: {ex}"
        result = json.loads(result_payload)
        assert set(result) == {"success", "transactionId", "message", "bookings"}, result
        assert result["success"] is True, result
        assert result["message"] == "All travel arrangements completed successfully", result
        assert set(result["bookings"]) == {"flight", "hotel", "car"}, result
        assert all(result["bookings"].values()), result
        assert json.loads(ex["Result"]) == result, f"{label}: GetDurableExecution.Result: {ex}"
        return result["transactionId"], result
    assert ex["Status"] == "FAILED", f"{label}: {ex}"
    assert error["ErrorType"] == "Exception", f"{label}: {error}"
    message = error["ErrorMessage"]
    assert message.startswith(PREFIX), f"{label}: {message}"
    details = json.loads(message[len(PREFIX) :])
    assert details["originalError"] == failure, f"{label}: {details}"
    assert details["message"] == f"Transaction failed and rolled back: {failure}", details
    services = [next(iter(c)) for c in details["compensations"]]
    assert services == compensated, f"{label}: compensations in reverse order: {details}"
    for c in details["compensations"]:
        service = next(iter(c))
        assert c[service] == "cancelled", f"{label}: {c}"
        assert c[ID_FIELDS[service]], f"{label}: {c}"
    gde_error = ex["Error"]
    assert gde_error["ErrorType"] == "Exception", f"{label}: {ex}"
    assert gde_error["ErrorMessage"] == message, f"{label}: {ex}"
    return details["transactionId"], details


# Every execution the saga scenarios started: (label, scenario, arn, outcome details).
STARTED = []


def run_saga(scenario, mode):
    file, _, invokes, _ = SCENARIOS[scenario]
    payload = read_input(file)
    name = f"{RUN}-{scenario}-{mode}"
    label = f"{scenario} ({mode})"
    if mode == "sync":
        resp = LAMBDA.invoke(
            FunctionName=FUNCTION,
            InvocationType="RequestResponse",
            Payload=payload,
            DurableExecutionName=name,
        )
        assert resp["StatusCode"] == 200, f"{label}: {resp}"
        body = resp["Payload"].read()
        arn = resp["DurableExecutionArn"]
        ex = LAMBDA.get_durable_execution(DurableExecutionArn=arn)
        if SCENARIOS[scenario][1] is None:
            assert "FunctionError" not in resp, f"{label}: {resp}"
            txn, outcome = check_outcome(label, scenario, ex, body, None)
        else:
            assert resp.get("FunctionError") == "Unhandled", f"{label}: {resp}"
            error = json.loads(body)
            assert set(error) >= {"errorType", "errorMessage"}, f"{label}: {error}"
            txn, outcome = check_outcome(
                label,
                scenario,
                ex,
                None,
                {"ErrorType": error["errorType"], "ErrorMessage": error["errorMessage"]},
            )
    else:
        resp = LAMBDA.invoke(
            FunctionName=FUNCTION,
            InvocationType="Event",
            Payload=payload,
            DurableExecutionName=name,
        )
        assert resp["StatusCode"] == 202, f"{label}: {resp}"
        assert resp["Payload"].read() == b"", f"{label}: an Event invoke has an empty body"
        arn = resp["DurableExecutionArn"]
        ex = wait_done(arn)
        txn, outcome = check_outcome(label, scenario, ex, ex.get("Result"), ex.get("Error"))
    arn_names_execution(arn, name)
    events = history(arn)
    ids = check_history(label, events, SCENARIOS[scenario][1] is None)
    assert invoke_names(events) == invokes, f"{label}: invokes {invoke_names(events)}, not {invokes}"
    # Spec 4.11: one invocation per chained invoke plus the last one.
    want = {"success": 14, "fail-flight": 8, "fail-hotel": 14, "fail-car": 20}[scenario]
    assert len(events) == want, f"{label}: {want} events: {[e['EventType'] for e in events]}"
    last = events[-1]
    if SCENARIOS[scenario][1] is None:
        result = json.loads(last["ExecutionSucceededDetails"]["Result"]["Payload"])
        assert result == outcome, f"{label}: ExecutionSucceeded's result: {last}"
    else:
        error = last["ExecutionFailedDetails"]["Error"]["Payload"]
        assert error["ErrorType"] == "Exception", f"{label}: {last}"
        assert error["ErrorMessage"].startswith(PREFIX), f"{label}: {last}"
    # Determinism: the transaction id comes from the checkpointed step.
    assert txn == ids["transaction_id"], f"{label}: transactionId {txn} is generate-ids' {ids}"
    for e in events:
        if e["EventType"] == "ChainedInvokeSucceeded":
            result = json.loads(e["ChainedInvokeSucceededDetails"]["Result"]["Payload"])
            want = "RESERVED" if e["Name"].startswith("reserve_") else "CANCELLED"
            assert result["status"] == want, f"{label}: {e['Name']} answered {result}"
        if e["EventType"] == "ChainedInvokeFailed":
            # An ErrorObject structure in the model, not a JSON string.
            err = e["ChainedInvokeFailedDetails"]["Error"]["Payload"]
            assert err["ErrorType"] == "RuntimeError", f"{label}: {err}"
            assert err["ErrorMessage"] == SCENARIOS[scenario][1], f"{label}: {err}"
    STARTED.append((label, scenario, arn, outcome, ids))


# ---------------------------------------------------------------------- tests


def run_every_saga(mode):
    """Every input, each checked even when another one failed."""
    failures = []
    for scenario in SCENARIOS:
        try:
            run_saga(scenario, mode)
        except Exception:  # noqa: BLE001 - reported with the others
            failures.append(traceback.format_exc())
    assert not failures, "\n".join(failures)


def test_every_input_ends_as_the_sample_promises_when_invoked_synchronously():
    run_every_saga("sync")


def test_every_input_ends_as_the_sample_promises_when_invoked_as_an_event():
    run_every_saga("event")


def test_the_travel_database_holds_the_bookings_of_the_succeeded_sagas_only():
    rows = http_json(f"{TRAVEL_URL}/trips")
    booked = {r["pk"] for r in rows} if isinstance(rows, list) else set(rows)
    expected = set()
    made = set()
    for label, scenario, _, outcome, ids in STARTED:
        made |= {ids["booking_id"], ids["reservation_id"], ids["rental_id"]}
        if scenario == "success":
            expected |= set(outcome["bookings"].values())
            assert outcome["bookings"]["flight"] == ids["booking_id"], f"{label}: {outcome}"
            assert outcome["bookings"]["hotel"] == ids["reservation_id"], f"{label}: {outcome}"
            assert outcome["bookings"]["car"] == ids["rental_id"], f"{label}: {outcome}"
    assert booked & made == expected, (
        f"the succeeded sagas' bookings remain and no compensated one's: {rows}"
    )


def test_each_service_function_was_executed_once_per_operation():
    effects = http_json(f"{TRAVEL_URL}/effects")
    repeated = [e for e in effects if e["count"] != 1]
    assert not repeated, f"each (route, Idempotency-Key) executed once: {repeated}"
    # The Idempotency-Key is `{execution id}:{operation id}`. A failed
    # reserve raises before touching the table and is not remembered: every
    # succeeded invoke is exactly one effect.
    for label, scenario, arn, _, _ in STARTED:
        ex_id = arn.rsplit("/", 1)[1]
        routes = sorted(e["route"] for e in effects if e["key"].startswith(f"{ex_id}:"))
        want = sorted(
            "lambda/saga-" + name.replace("_", "-") for name, ok in SCENARIOS[scenario][2] if ok
        )
        assert routes == want, f"{label}: executed {routes}, not {want}"
    # And the calls, failed ones included: one per chained invoke.
    calls = http_json(f"{TRAVEL_URL}/stats")["calls"]
    for fn in ("reserve-flight", "reserve-hotel", "reserve-car", "cancel-flight", "cancel-hotel"):
        want = sum(
            1
            for _, scenario, _, _, _ in STARTED
            for name, _ in SCENARIOS[scenario][2]
            if name == fn.replace("-", "_")
        )
        got = calls.get(f"lambda/saga-{fn}", 0)
        assert got == want, f"saga-{fn} was called {got} times, not {want}: {calls}"
    assert calls.get("lambda/saga-cancel-car", 0) == 0, f"no car is ever cancelled: {calls}"


def test_unknown_functions_and_executions_are_not_found():
    expect_error(
        "ResourceNotFoundException", LAMBDA.invoke, FunctionName="no-such-function", Payload=b"{}"
    )
    missing = (
        f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{FUNCTION}:$LATEST"
        f"/durable-execution/never-started/{uuid.uuid4()}"
    )
    expect_error("ResourceNotFoundException", LAMBDA.get_durable_execution, DurableExecutionArn=missing)
    expect_error(
        "ResourceNotFoundException",
        LAMBDA.get_durable_execution_history,
        DurableExecutionArn=missing,
    )


def test_a_bogus_checkpoint_token_is_an_invalid_parameter():
    arn = STARTED[0][2]
    err = expect_error(
        "InvalidParameterValueException",
        LAMBDA.checkpoint_durable_execution,
        DurableExecutionArn=arn,
        CheckpointToken="bogus-token",
        Updates=[],
    )
    assert error_message(err).startswith("Invalid checkpoint token"), err.response
    expect_error(
        "InvalidParameterValueException",
        LAMBDA.get_durable_execution_state,
        DurableExecutionArn=arn,
        CheckpointToken="bogus-token",
    )


def test_the_same_name_and_payload_finds_the_same_execution_and_another_payload_is_refused():
    payload = read_input("success.json")
    name = f"{RUN}-again"
    first = LAMBDA.invoke(
        FunctionName=FUNCTION, InvocationType="Event", Payload=payload, DurableExecutionName=name
    )
    arn = first["DurableExecutionArn"]
    wait_done(arn)
    calls = http_json(f"{TRAVEL_URL}/stats")["calls"]
    again = LAMBDA.invoke(
        FunctionName=FUNCTION, InvocationType="Event", Payload=payload, DurableExecutionName=name
    )
    assert again["DurableExecutionArn"] == arn, f"the same ARN: {again} vs {arn}"
    sync = LAMBDA.invoke(FunctionName=FUNCTION, Payload=payload, DurableExecutionName=name)
    assert sync["DurableExecutionArn"] == arn, f"a sync invoke attaches to it: {sync}"
    assert "FunctionError" not in sync, sync
    expect_error(
        "DurableExecutionAlreadyStartedException",
        LAMBDA.invoke,
        FunctionName=FUNCTION,
        InvocationType="Event",
        Payload=read_input("fail-car-booking.json"),
        DurableExecutionName=name,
    )
    listed = LAMBDA.list_durable_executions_by_function(
        FunctionName=FUNCTION, DurableExecutionName=name
    )["DurableExecutions"]
    assert [e["DurableExecutionArn"] for e in listed] == [arn], f"one execution named {name}: {listed}"
    assert http_json(f"{TRAVEL_URL}/stats")["calls"] == calls, "no function was called again"
    STARTED.append(("again", "success", arn, None, None))


def all_executions(**filters):
    seen, pages, marker = [], 0, None
    while True:
        kwargs = dict(FunctionName=FUNCTION, MaxItems=2, **filters)
        if marker:
            kwargs["Marker"] = marker
        page = LAMBDA.list_durable_executions_by_function(**kwargs)
        pages += 1
        assert len(page["DurableExecutions"]) <= 2, page
        seen.extend(page["DurableExecutions"])
        marker = page.get("NextMarker")
        if not marker:
            return seen, pages
        assert pages < 100, "paging ends"


def test_listing_by_function_pages_through_every_execution_and_filters_by_status():
    mine = {arn for _, _, arn, _, _ in STARTED}
    seen, pages = all_executions()
    arns = [e["DurableExecutionArn"] for e in seen]
    assert len(arns) == len(set(arns)), f"no duplicates: {arns}"
    assert pages >= 2, f"{pages} pages"
    assert set(arns) == mine, f"every execution started, and no other: {set(arns) ^ mine}"
    assert len(arns) == len(mine)
    succeeded, _ = all_executions(Statuses=["SUCCEEDED"])
    assert succeeded and all(e["Status"] == "SUCCEEDED" for e in succeeded), succeeded
    want = {arn for _, scenario, arn, _, _ in STARTED if scenario == "success"}
    assert {e["DurableExecutionArn"] for e in succeeded} == want, succeeded


def aws(*args):
    env = dict(
        os.environ,
        AWS_ACCESS_KEY_ID="x",
        AWS_SECRET_ACCESS_KEY="x",
        AWS_DEFAULT_REGION=REGION,
        AWS_PAGER="",
    )
    out = subprocess.run(
        [sys.executable, "-m", "awscli", "--endpoint-url", ENDPOINT, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=WORK_DIR,
        timeout=120,
    )
    assert out.returncode == 0, f"aws {args} exits 0: {out.stdout}\n{out.stderr}"
    return out.stdout


def test_the_aws_cli_invokes_and_reads_a_durable_execution():
    if importlib.util.find_spec("awscli") is None:
        # CI installs it (.ci/run); elsewhere say why this check is skipped.
        assert not os.environ.get("CI"), f"awscli is not installed for {sys.executable}"
        print(f"skipped: awscli is not installed for {sys.executable}")
        return
    # awscli v1 (what pip installs) sends a file:// payload as it is and
    # has no --cli-binary-format (v2's option to do the same).
    payload = os.path.join(INPUTS, "fail-hotel-booking.json")
    out_file = os.path.join(WORK_DIR, "cli-out.json")
    answer = json.loads(
        aws(
            "lambda",
            "invoke",
            "--function-name",
            FUNCTION,
            "--invocation-type",
            "Event",
            "--payload",
            f"file://{payload}",
            out_file,
        )
    )
    assert answer["StatusCode"] == 202, answer
    arn = answer["DurableExecutionArn"]
    STARTED.append(("aws cli", "fail-hotel", arn, None, None))
    # This AWS CLI (v1, from the same botocore as boto3) has the durable commands.
    end = time.monotonic() + DEADLINE_SECONDS
    while True:
        ex = json.loads(aws("lambda", "get-durable-execution", "--durable-execution-arn", arn))
        if ex["Status"] != "RUNNING":
            break
        assert time.monotonic() < end, f"{arn} ends"
        time.sleep(0.5)
    assert ex["Status"] == "FAILED", ex


def sagaflow(command, *args):
    out = subprocess.run(
        [SAGAFLOW_BIN, command, "--server", ENDPOINT, *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return out


def test_the_native_api_and_the_client_commands_show_durable_executions():
    listed = http_json(f"{ENDPOINT}/v1/executions?definition={FUNCTION}&limit=100")
    items = listed["items"]
    assert len(items) == len(STARTED), f"{len(STARTED)} executions listed: {listed}"
    arn = STARTED[0][2]
    ex_id = arn.rsplit("/", 1)[1]
    assert ex_id in {i["id"] for i in items}, f"{ex_id} is listed: {items}"
    ex = LAMBDA.get_durable_execution(DurableExecutionArn=arn)
    native = http_json(f"{ENDPOINT}/v1/executions/{ex_id}")
    assert native["definition"] == FUNCTION, native
    assert native["status"] == ex["Status"].lower(), f"{native} vs {ex}"
    out = sagaflow("show", ex_id)
    assert out.returncode == 0, f"sagaflow show {ex_id}: {out.stdout}\n{out.stderr}"
    assert ex_id in out.stdout and FUNCTION in out.stdout, f"sagaflow show: {out.stdout}"
    out = sagaflow("history", ex_id)
    assert out.returncode == 0, f"sagaflow history {ex_id}: {out.stdout}\n{out.stderr}"
    lines = out.stdout.strip().splitlines()
    assert FUNCTION in lines[0], f"sagaflow history starts with the start: {out.stdout}"
    assert f"finished: {native['status']}" in lines[-1], f"and ends with the end: {out.stdout}"
    # The durable events name their operations.
    for what in ("step started generate-ids", "reserve_flight_invocation", "invocation 1"):
        assert what in out.stdout, f"sagaflow history shows {what!r}: {out.stdout}"


def test_cancelling_a_waiting_execution_ends_its_wait_and_stops_it_when_the_code_suspends_again():
    resp = LAMBDA.invoke(
        FunctionName=WAITER,
        InvocationType="Event",
        Payload=b"{}",
        DurableExecutionName=f"{RUN}-waiter",
    )
    arn = resp["DurableExecutionArn"]
    arn_names_execution(arn, f"{RUN}-waiter", WAITER)
    # Once it waits, it is RUNNING with a WaitStarted in its history.
    end = time.monotonic() + DEADLINE_SECONDS
    while not any(e["EventType"] == "WaitStarted" for e in history(arn)):
        assert time.monotonic() < end, f"the waiter starts waiting: {history(arn)}"
        time.sleep(0.2)
    assert LAMBDA.get_durable_execution(DurableExecutionArn=arn)["Status"] == "RUNNING"
    ex_id = arn.rsplit("/", 1)[1]
    out = sagaflow("cancel", ex_id)
    assert out.returncode == 0, f"sagaflow cancel {ex_id}: {out.stdout}\n{out.stderr}"
    # Sagaflow's cancel (not AWS's stop) ends what the code waits on; the
    # Python SDK suspends on a cancelled wait again, and with nothing left
    # to wake it the execution is stopped.
    ex = wait_done(arn)
    assert ex["Status"] == "STOPPED", ex
    assert ex["Error"]["ErrorType"] == "Sagaflow.Cancelled", ex
    events = history(arn)
    assert any(
        e["EventType"] == "WaitCancelled" and e.get("Name") == "wait-30s" for e in events
    ), events
    assert events[-1]["EventType"] == "ExecutionStopped", events


TESTS = [
    test_every_input_ends_as_the_sample_promises_when_invoked_synchronously,
    test_every_input_ends_as_the_sample_promises_when_invoked_as_an_event,
    test_the_travel_database_holds_the_bookings_of_the_succeeded_sagas_only,
    test_each_service_function_was_executed_once_per_operation,
    test_unknown_functions_and_executions_are_not_found,
    test_a_bogus_checkpoint_token_is_an_invalid_parameter,
    test_the_same_name_and_payload_finds_the_same_execution_and_another_payload_is_refused,
    test_the_aws_cli_invokes_and_reads_a_durable_execution,
    test_listing_by_function_pages_through_every_execution_and_filters_by_status,
    test_the_native_api_and_the_client_commands_show_durable_executions,
    test_cancelling_a_waiting_execution_ends_its_wait_and_stops_it_when_the_code_suspends_again,
]


def main():
    only = sys.argv[1:]
    failed = []
    for test in TESTS:
        if only and test.__name__ not in only:
            continue
        name = test.__name__.removeprefix("test_").replace("_", " ")
        try:
            test()
        except Exception:  # noqa: BLE001 - every failure is reported
            failed.append(name)
            print(f"FAIL: {name}\n{traceback.format_exc()}", flush=True)
        else:
            print(f"ok: {name}", flush=True)
    if failed:
        print(f"\n{len(failed)} of {len(TESTS)} checks failed: {failed}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
