"""Every durable primitive, each in a durable function of its own.

Run by crates/cli/tests/durable_primitives.rs against one `sagaflow server`
hosting fixtures/primitives: `index.NAME` as `prims-*` durable functions and
`plain.handler` as `prims-plain`, a plain function. Each check starts
executions with boto3 and compares their result and their history
(GetDurableExecutionHistory) with what AWS records (event types, names,
SubTypes, order where it is deterministic). Plain asserts, no pytest: every
check runs, each failure is printed, and the exit status is 1 if any failed.

Environment:
  SAGAFLOW_ENDPOINT  the server's URL
  FIXTURE_DIR        the functions' scratch directory
"""

import base64
import json
import os
import sys
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request
import uuid

import boto3
import botocore.config
import botocore.exceptions

ENDPOINT = os.environ["SAGAFLOW_ENDPOINT"]
REGION = "us-east-1"
ACCOUNT = "123456789012"
DEADLINE_SECONDS = 60
RUN = uuid.uuid4().hex[:8]

LAMBDA = boto3.client(
    "lambda",
    endpoint_url=ENDPOINT,
    region_name=REGION,
    aws_access_key_id="x",
    aws_secret_access_key="x",
    config=botocore.config.Config(read_timeout=DEADLINE_SECONDS, retries={"max_attempts": 1}),
)


# ------------------------------------------------------------------- helpers


def error_code(err):
    return err.response.get("Error", {}).get("Code")


def expect_error(code, call, *args, **kwargs):
    """Calls `call` and returns the ClientError, which must have `code`."""
    try:
        got = call(*args, **kwargs)
    except botocore.exceptions.ClientError as err:
        assert error_code(err) == code, f"expected {code}, got {err.response}"
        return err
    raise AssertionError(f"expected {code}, got an answer: {got}")


def start(function, payload, label):
    """Starts an execution (an Event invoke) and returns its ARN."""
    resp = LAMBDA.invoke(
        FunctionName=function,
        InvocationType="Event",
        Payload=json.dumps(payload).encode(),
        DurableExecutionName=f"{RUN}-{label}",
    )
    assert resp["StatusCode"] == 202, resp
    return resp["DurableExecutionArn"]


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


def wait_for_event(arn, event_type, deadline=DEADLINE_SECONDS):
    """Polls the history until it has an `event_type`; returns that event."""
    end = time.monotonic() + deadline
    while True:
        found = [e for e in history(arn) if e["EventType"] == event_type]
        if found:
            return found[0]
        assert time.monotonic() < end, f"{arn}: no {event_type} after {deadline}s"
        time.sleep(0.2)


def run(function, payload, label, status="SUCCEEDED"):
    """Starts an execution, waits for its end, checks its status and the
    shape every history has; returns (execution, events)."""
    arn = start(function, payload, label)
    ex = wait_done(arn)
    assert ex["Status"] == status, f"{label}: {status}: {ex}"
    return ex, checked_history(label, arn, status)


LAST_EVENT = {
    "SUCCEEDED": "ExecutionSucceeded",
    "FAILED": "ExecutionFailed",
    "TIMED_OUT": "ExecutionTimedOut",
    "STOPPED": "ExecutionStopped",
}


def checked_history(label, arn, status):
    events = history(arn)
    ids = [e["EventId"] for e in events]
    assert ids == list(range(1, len(events) + 1)), f"{label}: EventIds 1..n: {ids}"
    assert events[0]["EventType"] == "ExecutionStarted", f"{label}: {types(events)}"
    assert events[-1]["EventType"] == LAST_EVENT[status], f"{label}: {types(events)}"
    return events


def types(events):
    return [e["EventType"] for e in events]


def shape(events, *, parents=False):
    """The operation events as (EventType, SubType, Name), execution and
    invocation events left out; with `parents`, each one's parent's Name."""
    names = {e["Id"]: e.get("Name") for e in events if "Id" in e}
    out = []
    for e in events:
        t = e["EventType"]
        if t.startswith("Execution") or t == "InvocationCompleted":
            continue
        row = (t, e.get("SubType"), e.get("Name"))
        if parents:
            row += (names.get(e.get("ParentId")),)
        out.append(row)
    return out


def result_of(ex):
    return json.loads(ex["Result"])


def details(event):
    """An event's `…Details` structure."""
    return event[event["EventType"] + "Details"]


def payload(event, field="Result"):
    return details(event)[field]["Payload"]


def callback_id(arn):
    """The id of the execution's callback, once the invocation that created
    it has ended (the handler suspended): what it gets next is in the
    history after that InvocationCompleted, as in the conformance cases."""
    cid = details(wait_for_event(arn, "CallbackStarted"))["CallbackId"]
    wait_for_event(arn, "InvocationCompleted")
    return cid


# --------------------------------------------------------------------- steps


def test_a_step_is_retried_by_its_retry_strategy_until_it_succeeds():
    ex, events = run("prims-step-retries", {"key": RUN}, "step-retries")
    assert result_of(ex) == {"attempts": 3}, ex
    step = [("StepStarted", "Step", "flaky"), ("StepFailed", "Step", "flaky")]
    assert shape(events) == step + step + [
        ("StepStarted", "Step", "flaky"),
        ("StepSucceeded", "Step", "flaky"),
    ], types(events)
    failed = [details(e) for e in events if e["EventType"] == "StepFailed"]
    for attempt, d in enumerate(failed, 1):
        assert d["Error"]["Payload"] == {
            "ErrorType": "RuntimeError",
            "ErrorMessage": f"flaky attempt {attempt}",
        }, d
        # PENDING until the delay passes (then READY, then re-invoked).
        assert d["RetryDetails"] == {"CurrentAttempt": attempt, "NextAttemptDelaySeconds": 1}, d
    done = details(events[-3])
    assert done["Result"]["Payload"] == "3", done
    assert done["RetryDetails"]["CurrentAttempt"] == 3, done
    # Each retry is a new invocation: one ends with each StepFailed.
    assert types(events).count("InvocationCompleted") == 3, types(events)


def test_a_step_whose_retries_are_exhausted_fails_the_execution_with_its_error():
    ex, events = run("prims-step-exhausted", {}, "step-exhausted", "FAILED")
    assert shape(events) == [
        ("StepStarted", "Step", "broken"),
        ("StepFailed", "Step", "broken"),
    ] * 2, types(events)
    failed = [details(e) for e in events if e["EventType"] == "StepFailed"]
    assert failed[0]["RetryDetails"] == {"CurrentAttempt": 1, "NextAttemptDelaySeconds": 1}
    # The last attempt: no next one.
    assert failed[1]["RetryDetails"] == {"CurrentAttempt": 2}, failed[1]
    for d in failed:
        assert d["Error"]["Payload"] == {"ErrorType": "ValueError", "ErrorMessage": "always broken"}
    # The handler did not catch the SDK's StepError: the execution's error.
    want = {
        "ErrorType": "aws_durable_execution_sdk_python.exceptions.StepError",
        "ErrorMessage": "always broken",
    }
    assert ex["Error"] == want, ex
    assert details(events[-1])["Error"]["Payload"] == want, events[-1]


def test_an_at_most_once_per_retry_step_starts_then_succeeds():
    ex, events = run("prims-at-most-once", {}, "at-most-once")
    assert result_of(ex) == {"once": "once"}, ex
    # AT_MOST_ONCE_PER_RETRY checkpoints the start before running the step.
    assert shape(events) == [
        ("StepStarted", "Step", "once"),
        ("StepSucceeded", "Step", "once"),
    ], types(events)
    assert payload(events[2]) == '"once"', events[2]


# --------------------------------------------------------------------- waits


def test_a_wait_starts_then_succeeds_in_a_later_invocation():
    ex, events = run("prims-wait", {}, "wait")
    assert result_of(ex) == {"waited": 1}, ex
    assert types(events) == [
        "ExecutionStarted",
        "WaitStarted",
        "InvocationCompleted",
        "WaitSucceeded",
        "InvocationCompleted",
        "ExecutionSucceeded",
    ], types(events)
    started, done = events[1], events[3]
    assert (started["SubType"], started["Name"]) == ("Wait", "pause"), started
    assert details(started)["Duration"] == 1, started
    assert "ScheduledEndTimestamp" in details(started), started
    assert (done["SubType"], done["Name"], done["Id"]) == ("Wait", "pause", started["Id"]), done
    assert details(done)["Duration"] == 1, done


def test_a_wait_cannot_be_cancelled_by_the_python_sdk():
    # The SDK has no way to cancel a wait (no WaitCancelled from it); a
    # waiting execution is stopped instead (see the stop checks).
    import aws_durable_execution_sdk_python.context as context

    assert not hasattr(context.DurableContext, "cancel_wait"), "the SDK cancels waits now"
    print("skipped: the Python SDK cannot cancel a wait")


# ----------------------------------------------------------------- callbacks


def callback_execution(label, **config):
    return start("prims-callback", {"name": label, **config}, label)


def test_a_callback_completed_with_success_returns_its_result():
    label = "cb-success"
    arn = callback_execution(label, timeout=60)
    cid = callback_id(arn)
    LAMBDA.send_durable_execution_callback_success(CallbackId=cid, Result=b'"approved"')
    ex = wait_done(arn)
    assert ex["Status"] == "SUCCEEDED", ex
    # CallbackConfig without serdes: the handler gets the payload as sent.
    assert result_of(ex) == {"result": '"approved"'}, ex
    events = checked_history(label, arn, "SUCCEEDED")
    assert shape(events) == [
        ("CallbackStarted", "Callback", label),
        ("CallbackSucceeded", "Callback", label),
    ], types(events)
    assert types(events)[2] == "InvocationCompleted", types(events)
    assert details(events[1])["CallbackId"] == cid, events[1]
    assert details(events[1])["Timeout"] == 60, events[1]
    assert payload(events[3]) == '"approved"', events[3]
    # A second success: the callback is closed.
    expect_error(
        "CallbackTimeoutException",
        LAMBDA.send_durable_execution_callback_success,
        CallbackId=cid,
        Result=b'"again"',
    )


def test_a_callback_completed_with_failure_raises_its_error_in_the_handler():
    label = "cb-failure"
    arn = callback_execution(label, timeout=60)
    cid = callback_id(arn)
    LAMBDA.send_durable_execution_callback_failure(
        CallbackId=cid, Error={"ErrorType": "Rejected", "ErrorMessage": "no way"}
    )
    ex = wait_done(arn)
    assert ex["Status"] == "SUCCEEDED", ex
    # The SDK raises its CallbackExternalError with the message (its
    # error_type is its own class); the history keeps the sent ErrorType.
    got = result_of(ex)
    assert (got["caught"], got["message"]) == ("CallbackExternalError", "no way"), ex
    events = checked_history(label, arn, "SUCCEEDED")
    assert shape(events) == [
        ("CallbackStarted", "Callback", label),
        ("CallbackFailed", "Callback", label),
    ], types(events)
    error = payload(events[3], "Error")
    assert (error["ErrorType"], error["ErrorMessage"]) == ("Rejected", "no way"), events[3]


def test_a_heartbeat_keeps_a_callback_open_until_its_success():
    label = "cb-heartbeat"
    arn = callback_execution(label, timeout=60, heartbeat=30)
    cid = callback_id(arn)
    LAMBDA.send_durable_execution_callback_heartbeat(CallbackId=cid)
    LAMBDA.send_durable_execution_callback_success(CallbackId=cid, Result=b'{"beat": true}')
    ex = wait_done(arn)
    assert ex["Status"] == "SUCCEEDED", ex
    assert json.loads(result_of(ex)["result"]) == {"beat": True}, ex
    events = checked_history(label, arn, "SUCCEEDED")
    started = details(events[1])
    assert started["HeartbeatTimeout"] == 30 and started["Timeout"] == 60, started
    assert shape(events)[-1] == ("CallbackSucceeded", "Callback", label), types(events)
    # No heartbeat to a closed callback.
    expect_error(
        "CallbackTimeoutException", LAMBDA.send_durable_execution_callback_heartbeat, CallbackId=cid
    )


def test_a_callback_that_times_out_raises_a_timeout_in_the_handler_and_refuses_a_late_success():
    label = "cb-timeout"
    arn = callback_execution(label, timeout=1)
    cid = callback_id(arn)
    ex = wait_done(arn)
    assert ex["Status"] == "SUCCEEDED", ex
    got = result_of(ex)
    assert got["caught"] == "CallbackTimeoutError", ex
    events = checked_history(label, arn, "SUCCEEDED")
    assert shape(events) == [
        ("CallbackStarted", "Callback", label),
        ("CallbackTimedOut", "Callback", label),
    ], types(events)
    error = payload(events[3], "Error")
    assert error["ErrorType"] == "Callback.Timeout", events[3]
    assert got["message"] == error["ErrorMessage"], (got, error)
    expect_error(
        "CallbackTimeoutException",
        LAMBDA.send_durable_execution_callback_success,
        CallbackId=cid,
        Result=b'"late"',
    )


def test_a_callback_without_a_heartbeat_in_time_times_out_as_a_heartbeat_timeout():
    label = "cb-heartbeat-timeout"
    arn = callback_execution(label, timeout=60, heartbeat=1)
    cid = callback_id(arn)
    ex = wait_done(arn)
    assert ex["Status"] == "SUCCEEDED", ex
    got = result_of(ex)
    assert got["caught"] == "CallbackTimeoutError", ex
    events = checked_history(label, arn, "SUCCEEDED")
    assert shape(events) == [
        ("CallbackStarted", "Callback", label),
        ("CallbackTimedOut", "Callback", label),
    ], types(events)
    assert details(events[1])["HeartbeatTimeout"] == 1, events[1]
    error = payload(events[3], "Error")
    assert error["ErrorType"] == "Callback.Heartbeat", events[3]
    expect_error(
        "CallbackTimeoutException", LAMBDA.send_durable_execution_callback_heartbeat, CallbackId=cid
    )


def test_an_unknown_callback_id_is_not_found():
    expect_error(
        "ResourceNotFoundException",
        LAMBDA.send_durable_execution_callback_success,
        CallbackId="no-such-callback",
        Result=b"1",
    )


# Sagaflow's own callback route completes a durable function's callback too.


def native_callback(cid, outcome, body=b""):
    """POST /v1/callbacks/{CallbackId}/{outcome} (the id percent-encoded:
    it holds a `/`); returns (status, JSON body)."""
    url = f"{ENDPOINT}/v1/callbacks/{urllib.parse.quote(cid, safe='')}/{outcome}"
    req = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=DEADLINE_SECONDS) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def native_ok(arn, cid, outcome, body=b""):
    """A native callback call that succeeds: it answers the execution."""
    status, got = native_callback(cid, outcome, body)
    assert status == 200, (outcome, status, got)
    assert got["id"] == arn.rsplit("/", 1)[1], got
    return got


def native_refused(cid, outcome, status, code, body=b""):
    got_status, got = native_callback(cid, outcome, body)
    assert (got_status, got["error"]["code"]) == (status, code), (outcome, got_status, got)


def test_the_native_callback_route_completes_a_durable_callback_with_success():
    label = "cb-native-success"
    arn = callback_execution(label, timeout=60)
    cid = callback_id(arn)
    native_ok(arn, cid, "success", b'"approved"')
    ex = wait_done(arn)
    assert ex["Status"] == "SUCCEEDED", ex
    # The body as sent, as from SendDurableExecutionCallbackSuccess.
    assert result_of(ex) == {"result": '"approved"'}, ex
    events = checked_history(label, arn, "SUCCEEDED")
    assert shape(events) == [
        ("CallbackStarted", "Callback", label),
        ("CallbackSucceeded", "Callback", label),
    ], types(events)
    assert payload(events[3]) == '"approved"', events[3]
    # Closed now: the native API's code for a callback that no longer waits.
    native_refused(cid, "success", 409, "callback_not_waiting", b'"again"')
    native_refused(cid, "heartbeat", 409, "callback_not_waiting")
    expect_error(
        "CallbackTimeoutException",
        LAMBDA.send_durable_execution_callback_success,
        CallbackId=cid,
        Result=b'"again"',
    )


def test_the_native_callback_route_fails_a_durable_callback_with_its_error():
    label = "cb-native-failure"
    arn = callback_execution(label, timeout=60)
    cid = callback_id(arn)
    # Not JSON: refused, and the callback stays open.
    native_refused(cid, "failure", 400, "malformed_json", b"{not json")
    native_ok(arn, cid, "failure", json.dumps({"error": "Rejected", "cause": "no way"}).encode())
    ex = wait_done(arn)
    assert ex["Status"] == "SUCCEEDED", ex
    got = result_of(ex)
    assert (got["caught"], got["message"]) == ("CallbackExternalError", "no way"), ex
    events = checked_history(label, arn, "SUCCEEDED")
    assert shape(events) == [
        ("CallbackStarted", "Callback", label),
        ("CallbackFailed", "Callback", label),
    ], types(events)
    error = payload(events[3], "Error")
    assert (error["ErrorType"], error["ErrorMessage"]) == ("Rejected", "no way"), events[3]
    native_refused(cid, "failure", 409, "callback_not_waiting")


def test_the_native_callback_route_keeps_a_durable_callback_open_with_heartbeats():
    label = "cb-native-heartbeat"
    # Without a heartbeat the callback times out 4 s after it started:
    # heartbeats every second for 6 s keep it open, then a success ends it.
    arn = callback_execution(label, timeout=60, heartbeat=4)
    cid = callback_id(arn)
    for _ in range(6):
        got = native_ok(arn, cid, "heartbeat")
        assert got["status"] == "running", got
        time.sleep(1)
    native_ok(arn, cid, "success", b'{"beat": true}')
    ex = wait_done(arn)
    assert ex["Status"] == "SUCCEEDED", ex
    assert json.loads(result_of(ex)["result"]) == {"beat": True}, ex
    events = checked_history(label, arn, "SUCCEEDED")
    assert shape(events) == [
        ("CallbackStarted", "Callback", label),
        ("CallbackSucceeded", "Callback", label),
    ], types(events)
    assert details(events[1])["HeartbeatTimeout"] == 4, events[1]


def test_the_native_callback_route_does_not_find_an_unknown_callback_id():
    # Shaped like a CallbackId, of an execution that does not exist.
    route = base64.b64encode(b"no-such-execution\n1").decode().rstrip("=")
    native_refused(f"{route}/0123456789abcdef", "success", 404, "callback_not_found", b"1")
    # Neither a CallbackId nor a task token.
    native_refused("no-such-callback", "success", 404, "invalid_task_token", b"1")


def test_wait_for_callback_runs_its_submitter_and_the_callback_in_a_context():
    label = "wait-for-callback"
    arn = start("prims-wait-for-callback", {}, label)
    cid = callback_id(arn)
    LAMBDA.send_durable_execution_callback_success(CallbackId=cid, Result=b'"ok"')
    ex = wait_done(arn)
    assert ex["Status"] == "SUCCEEDED", ex
    assert result_of(ex) == {"result": '"ok"'}, ex
    events = checked_history(label, arn, "SUCCEEDED")
    # As in the conformance cases: the callback starts before its submitter
    # step runs, both inside the WaitForCallback context.
    assert types(events) == [
        "ExecutionStarted",
        "ContextStarted",
        "CallbackStarted",
        "StepStarted",
        "StepSucceeded",
        "InvocationCompleted",
        "CallbackSucceeded",
        "ContextSucceeded",
        "InvocationCompleted",
        "ExecutionSucceeded",
    ], types(events)
    rows = [r[1:] for r in shape(events, parents=True)]
    assert rows == [
        ("WaitForCallback", "approval", None),
        # The SDK names them after the operation.
        ("Callback", "approval create callback id", "approval"),
        ("Step", "approval submitter", "approval"),
        ("Step", "approval submitter", "approval"),
        ("Callback", "approval create callback id", "approval"),
        ("WaitForCallback", "approval", None),
    ], rows
    ok = next(e for e in events if e["EventType"] == "CallbackSucceeded")
    assert payload(ok) == '"ok"', ok


# ------------------------------------------------------ child context, batches


def test_a_child_context_runs_its_step_inside_it():
    ex, events = run("prims-child-context", {}, "child-context")
    assert result_of(ex) == {"child": "inner"}, ex
    assert shape(events, parents=True) == [
        ("ContextStarted", "RunInChildContext", "child", None),
        ("StepStarted", "Step", "inner", "child"),
        ("StepSucceeded", "Step", "inner", "child"),
        ("ContextSucceeded", "RunInChildContext", "child", None),
    ], types(events)
    done = [e for e in events if e["EventType"] == "ContextSucceeded"][0]
    assert payload(done) == '"inner"', done


def batch_checks(label, events, kind, sub, names, steps, results, failed_error):
    """A parallel or a map whose last branch failed, tolerated: the batch
    context (`kind`), one child context (`sub`) per branch with its step.
    The branches run concurrently: their events interleave in any order."""
    rows = shape(events, parents=True)
    assert rows[0] == ("ContextStarted", kind, label, None), rows
    assert rows[-1] == ("ContextSucceeded", kind, label, None), rows
    started = [r[2] for r in rows if r[:2] == ("ContextStarted", sub)]
    assert sorted(started) == names, rows
    last = len(steps) - 1
    for i, (branch, step) in enumerate(zip(names, steps)):
        end = "ContextFailed" if i == last else "ContextSucceeded"
        outcome = "StepFailed" if i == last else "StepSucceeded"
        for row in [
            ("ContextStarted", sub, branch, label),
            ("StepStarted", "Step", step, branch),
            (outcome, "Step", step, branch),
            (end, sub, branch, label),
        ]:
            assert row in rows, (row, rows)
    ended = {e["Name"]: e for e in events if e.get("SubType") == sub}
    got = [payload(ended[n]) for n in names[:last]]
    assert got == results, f"the branches' results {got}: {rows}"
    assert payload(ended[names[last]], "Error")["ErrorMessage"] == failed_error, ended


def test_parallel_runs_each_branch_in_a_context_of_its_own_and_tolerates_a_failed_one():
    ex, events = run("prims-parallel", {}, "parallel")
    assert result_of(ex) == {
        "results": [1, 2],
        "errors": [[2, "aws_durable_execution_sdk_python.exceptions.StepError", "branch boom"]],
    }, ex
    batch_checks(
        "par",
        events,
        "Parallel",
        "ParallelBranch",
        ["parallel-branch-0", "parallel-branch-1", "parallel-branch-2"],
        ["a", "b", "boom"],
        ["1", "2"],
        "branch boom",
    )


def test_map_runs_each_item_in_an_iteration_context_and_tolerates_a_failed_one():
    ex, events = run("prims-map", {}, "map")
    assert result_of(ex) == {
        "results": [10, 20],
        "errors": [[2, "aws_durable_execution_sdk_python.exceptions.StepError", "item 3 is bad"]],
    }, ex
    batch_checks(
        "mapper",
        events,
        "Map",
        "MapIteration",
        ["map-item-0", "map-item-1", "map-item-2"],
        ["m0", "m1", "m2"],
        ["10", "20"],
        "item 3 is bad",
    )


def test_wait_for_condition_carries_its_state_across_attempts():
    ex, events = run("prims-wait-for-condition", {}, "wait-for-condition")
    assert result_of(ex) == {"state": 3}, ex
    attempt = [
        ("StepStarted", "WaitForCondition", "poll"),
        ("StepSucceeded", "WaitForCondition", "poll"),
    ]
    assert shape(events) == attempt * 3, types(events)
    done = [details(e) for e in events if e["EventType"] == "StepSucceeded"]
    assert [d["Result"]["Payload"] for d in done] == ["1", "2", "3"], done
    assert [d["RetryDetails"] for d in done] == [
        {"CurrentAttempt": 1, "NextAttemptDelaySeconds": 1},
        {"CurrentAttempt": 2, "NextAttemptDelaySeconds": 1},
        {"CurrentAttempt": 3},
    ], done


# ------------------------------------------------------------ chained invokes


def invoke_checks(label, events, target, payload_in, outcome):
    assert shape(events) == [
        ("ChainedInvokeStarted", "ChainedInvoke", "call"),
        (outcome, "ChainedInvoke", "call"),
    ], types(events)
    started = details(events[1])
    assert started["FunctionName"] == target, started
    assert json.loads(started["Input"]["Payload"]) == payload_in, started
    return next(e for e in events if e["EventType"] == outcome)


def test_a_chained_invoke_of_a_durable_function_runs_it_as_a_child_execution():
    ex, events = run(
        "prims-invoker", {"target": "prims-doubler", "payload": {"x": 21}}, "invoke-durable"
    )
    assert result_of(ex) == {"result": {"doubled": 42}}, ex
    done = invoke_checks(
        "invoke-durable", events, "prims-doubler", {"x": 21}, "ChainedInvokeSucceeded"
    )
    assert json.loads(payload(done)) == {"doubled": 42}, done
    # The child is an execution of the target function, with its own history.
    children = LAMBDA.list_durable_executions_by_function(FunctionName="prims-doubler")[
        "DurableExecutions"
    ]
    assert len(children) == 1, children
    child = children[0]
    assert child["Status"] == "SUCCEEDED", child
    # As on AWS, the started event names the child and the version it runs.
    started = details(events[1])
    assert started["DurableExecutionArn"] == child["DurableExecutionArn"], started
    assert started["ExecutedVersion"] == "$LATEST", started
    child_events = checked_history("doubler", child["DurableExecutionArn"], "SUCCEEDED")
    assert json.loads(payload(child_events[0], "Input")) == {"x": 21}, child_events[0]
    assert json.loads(payload(child_events[-1])) == {"doubled": 42}, child_events[-1]
    assert shape(child_events) == [
        ("StepStarted", "Step", "double"),
        ("StepSucceeded", "Step", "double"),
    ], types(child_events)


def plain_invocations(event):
    """How many times prims-plain was invoked with `event`."""
    with open(os.path.join(os.environ["FIXTURE_DIR"], "plain-invocations")) as f:
        return [json.loads(line) for line in f].count(event)


def test_a_chained_invoke_of_a_plain_function_returns_its_result():
    ex, events = run(
        "prims-invoker", {"target": "prims-plain", "payload": {"a": 1}}, "invoke-plain"
    )
    assert result_of(ex) == {"result": {"echo": {"a": 1}}}, ex
    done = invoke_checks("invoke-plain", events, "prims-plain", {"a": 1}, "ChainedInvokeSucceeded")
    assert json.loads(payload(done)) == {"echo": {"a": 1}}, done
    # One invocation of the function (it logs each one), and no retry.
    assert plain_invocations({"a": 1}) == 1


def test_a_chained_invoke_of_a_failing_plain_function_fails_with_its_error():
    ex, events = run(
        "prims-invoker", {"target": "prims-plain", "payload": {"fail": "no"}}, "invoke-plain-fails"
    )
    assert result_of(ex) == {
        "caught": "InvokeError",
        "error_type": "ValueError",
        "message": "plain failure: no",
    }, ex
    failed = invoke_checks(
        "invoke-plain-fails", events, "prims-plain", {"fail": "no"}, "ChainedInvokeFailed"
    )
    error = payload(failed, "Error")
    assert (error["ErrorType"], error["ErrorMessage"]) == ("ValueError", "plain failure: no"), error
    assert plain_invocations({"fail": "no"}) == 1


def test_a_chained_invoke_of_an_unknown_function_fails_as_not_found():
    ex, events = run("prims-invoker", {"target": "prims-nope", "payload": {}}, "invoke-unknown")
    got = result_of(ex)
    assert (got["caught"], got["error_type"]) == ("InvokeError", "ResourceNotFoundException"), ex
    failed = invoke_checks("invoke-unknown", events, "prims-nope", {}, "ChainedInvokeFailed")
    assert payload(failed, "Error")["ErrorType"] == "ResourceNotFoundException", failed


# ------------------------------------------------------ timeout, stop, size


def test_an_execution_past_its_execution_timeout_times_out():
    label = "execution-timeout"
    arn = start("prims-execution-timeout", {}, label)
    ex = wait_done(arn)
    assert ex["Status"] == "TIMED_OUT", ex
    events = checked_history(label, arn, "TIMED_OUT")
    assert details(events[0])["ExecutionTimeout"] == 3, events[0]
    # The same error in GetDurableExecution and in the history's last event.
    assert ex["Error"]["ErrorType"] == "States.Timeout", ex
    assert payload(events[-1], "Error") == ex["Error"], events[-1]
    assert ("WaitStarted", "Wait", "wait-30s") in shape(events), types(events)
    assert "WaitSucceeded" not in types(events), types(events)


def test_stopping_a_waiting_execution_stops_it_and_a_second_stop_conflicts():
    label = "stop"
    arn = start("prims-wait-long", {}, label)
    wait_for_event(arn, "WaitStarted")
    stopped = LAMBDA.stop_durable_execution(
        DurableExecutionArn=arn, Error={"ErrorType": "Stopped", "ErrorMessage": "by the test"}
    )
    assert "StopTimestamp" in stopped, stopped
    ex = wait_done(arn)
    assert ex["Status"] == "STOPPED", ex
    assert ex["Error"] == {"ErrorType": "Stopped", "ErrorMessage": "by the test"}, ex
    events = checked_history(label, arn, "STOPPED")
    assert payload(events[-1], "Error") == ex["Error"], events[-1]
    assert "WaitSucceeded" not in types(events), types(events)
    expect_error(
        "ResourceConflictException", LAMBDA.stop_durable_execution, DurableExecutionArn=arn
    )


def test_a_result_of_a_mebibyte_round_trips():
    ex, events = run("prims-large-result", {}, "large-result")
    want = {"blob": "x" * (1024 * 1024)}
    assert result_of(ex) == want, len(ex.get("Result", ""))
    assert json.loads(payload(events[-1])) == want, "ExecutionSucceeded's result"
    # And as a synchronous invoke's response payload.
    resp = LAMBDA.invoke(
        FunctionName="prims-large-result", Payload=b"{}", DurableExecutionName=f"{RUN}-large-sync"
    )
    assert "FunctionError" not in resp, resp
    assert json.loads(resp["Payload"].read()) == want, "the sync invoke's payload"


TESTS = [
    test_a_step_is_retried_by_its_retry_strategy_until_it_succeeds,
    test_a_step_whose_retries_are_exhausted_fails_the_execution_with_its_error,
    test_an_at_most_once_per_retry_step_starts_then_succeeds,
    test_a_wait_starts_then_succeeds_in_a_later_invocation,
    test_a_wait_cannot_be_cancelled_by_the_python_sdk,
    test_a_callback_completed_with_success_returns_its_result,
    test_a_callback_completed_with_failure_raises_its_error_in_the_handler,
    test_a_heartbeat_keeps_a_callback_open_until_its_success,
    test_a_callback_that_times_out_raises_a_timeout_in_the_handler_and_refuses_a_late_success,
    test_a_callback_without_a_heartbeat_in_time_times_out_as_a_heartbeat_timeout,
    test_an_unknown_callback_id_is_not_found,
    test_the_native_callback_route_completes_a_durable_callback_with_success,
    test_the_native_callback_route_fails_a_durable_callback_with_its_error,
    test_the_native_callback_route_keeps_a_durable_callback_open_with_heartbeats,
    test_the_native_callback_route_does_not_find_an_unknown_callback_id,
    test_wait_for_callback_runs_its_submitter_and_the_callback_in_a_context,
    test_a_child_context_runs_its_step_inside_it,
    test_parallel_runs_each_branch_in_a_context_of_its_own_and_tolerates_a_failed_one,
    test_map_runs_each_item_in_an_iteration_context_and_tolerates_a_failed_one,
    test_wait_for_condition_carries_its_state_across_attempts,
    test_a_chained_invoke_of_a_durable_function_runs_it_as_a_child_execution,
    test_a_chained_invoke_of_a_plain_function_returns_its_result,
    test_a_chained_invoke_of_a_failing_plain_function_fails_with_its_error,
    test_a_chained_invoke_of_an_unknown_function_fails_as_not_found,
    test_an_execution_past_its_execution_timeout_times_out,
    test_stopping_a_waiting_execution_stops_it_and_a_second_stop_conflicts,
    test_a_result_of_a_mebibyte_round_trips,
]


def main():
    only = sys.argv[1:]
    failed = []
    for test in TESTS:
        if only and test.__name__ not in only:
            continue
        name = test.__name__.removeprefix("test_").replace("_", " ")
        began = time.monotonic()
        try:
            test()
        except Exception:  # noqa: BLE001 - every failure is reported
            failed.append(name)
            print(f"FAIL: {name}\n{traceback.format_exc()}", flush=True)
        else:
            print(f"ok: {name} ({time.monotonic() - began:.1f}s)", flush=True)
    if failed:
        print(f"\n{len(failed)} of {len(TESTS)} checks failed: {failed}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
