"""The JavaScript durable functions of examples/durable-node, hosted unchanged.

Run by crates/cli/tests/durable_node.rs against one `sagaflow server` that
hosts examples/durable-node (AWS's durable-execution SDK for JavaScript
behind AWS's Node.js runtime interface client, `runtime = "provided"`) as
`node-order` and `node-doubler`. Each check starts an execution with boto3
and compares its result and its history (GetDurableExecutionHistory) with
what the SDK records on AWS Lambda. Plain asserts, no pytest: every check
runs, each failure is printed, and the exit status is 1 if any failed.

Environment:
  SAGAFLOW_ENDPOINT  the server's URL
"""

import json
import os
import sys
import time
import traceback
import uuid

import boto3
import botocore.config

ENDPOINT = os.environ["SAGAFLOW_ENDPOINT"]
DEADLINE_SECONDS = 60
RUN = uuid.uuid4().hex[:8]

LAMBDA = boto3.client(
    "lambda",
    endpoint_url=ENDPOINT,
    region_name="us-east-1",
    aws_access_key_id="x",
    aws_secret_access_key="x",
    config=botocore.config.Config(read_timeout=DEADLINE_SECONDS, retries={"max_attempts": 1}),
)

ORDER = {
    "items": [{"price": 10, "quantity": 3}, {"price": 5, "quantity": 2}],
}


def start(order_id):
    """Starts an order (an Event invoke) and returns its ARN."""
    resp = LAMBDA.invoke(
        FunctionName="node-order",
        InvocationType="Event",
        Payload=json.dumps({"orderId": order_id, **ORDER}).encode(),
        DurableExecutionName=f"{RUN}-{order_id}",
    )
    assert resp["StatusCode"] == 202, resp
    return resp["DurableExecutionArn"]


def history(arn):
    events = []
    kwargs = {"DurableExecutionArn": arn, "IncludeExecutionData": True}
    while True:
        page = LAMBDA.get_durable_execution_history(**kwargs)
        events.extend(page["Events"])
        if not page.get("NextMarker"):
            return events
        kwargs["Marker"] = page["NextMarker"]


def wait_until(arn, ready, what):
    end = time.monotonic() + DEADLINE_SECONDS
    while True:
        events = history(arn)
        if ready(events):
            return events
        assert time.monotonic() < end, f"{arn}: no {what} after {DEADLINE_SECONDS}s: {types(events)}"
        time.sleep(0.2)


def wait_done(arn):
    end = time.monotonic() + DEADLINE_SECONDS
    while True:
        ex = LAMBDA.get_durable_execution(DurableExecutionArn=arn)
        if ex["Status"] != "RUNNING":
            return ex
        assert time.monotonic() < end, f"{arn} still RUNNING after {DEADLINE_SECONDS}s"
        time.sleep(0.2)


def types(events):
    return [e["EventType"] for e in events]


def details(event):
    return event[event["EventType"] + "Details"]


def callback_id(arn):
    """The approval callback's id, once the invocation that created it has
    ended (the handler suspended on it)."""

    def suspended(events):
        t = types(events)
        return "CallbackStarted" in t and t[-1] == "InvocationCompleted"

    events = wait_until(arn, suspended, "suspension on the callback")
    return details(next(e for e in events if e["EventType"] == "CallbackStarted"))["CallbackId"]


# Every operation event up to the callback, as (EventType, SubType, Name,
# parent's Name), with the invocations that end at the wait, the chained
# invoke and the callback: each of those suspends the handler, and the next
# invocation replays what came before.
BEFORE_CALLBACK = [
    ("ExecutionStarted", None, None, None),
    ("StepStarted", "Step", "reserve", None),
    ("StepSucceeded", "Step", "reserve", None),
    ("WaitStarted", "Wait", "cool-off", None),
    ("InvocationCompleted", None, None, None),
    ("WaitSucceeded", "Wait", "cool-off", None),
    ("ContextStarted", "RunInChildContext", "pricing", None),
    ("StepStarted", "Step", "tax", "pricing"),
    ("StepSucceeded", "Step", "tax", "pricing"),
    ("ChainedInvokeStarted", "ChainedInvoke", "double-total", "pricing"),
    ("InvocationCompleted", None, None, None),
    ("ChainedInvokeSucceeded", "ChainedInvoke", "double-total", "pricing"),
    ("ContextSucceeded", "RunInChildContext", "pricing", None),
    ("CallbackStarted", "Callback", "approval", None),
    ("InvocationCompleted", None, None, None),
]


def shape(events):
    names = {e["Id"]: e.get("Name") for e in events if "Id" in e}
    return [
        (e["EventType"], e.get("SubType"), e.get("Name"), names.get(e.get("ParentId")))
        for e in events
    ]


def payload(events, event_type, name=None):
    (e,) = [e for e in events if e["EventType"] == event_type and e.get("Name") == name]
    d = details(e)
    return (d.get("Result") or d.get("Input") or d.get("Error"))["Payload"]


def check_common(events):
    """What both orders record before the approval's answer."""
    assert [e["EventId"] for e in events] == list(range(1, len(events) + 1)), types(events)
    assert shape(events)[: len(BEFORE_CALLBACK)] == BEFORE_CALLBACK, shape(events)
    assert json.loads(payload(events, "StepSucceeded", "reserve")) == {
        "orderId": events_order_id(events),
        "total": 40,
    }
    assert payload(events, "StepSucceeded", "tax") == "4"
    invoke = details(next(e for e in events if e["EventType"] == "ChainedInvokeStarted"))
    assert invoke["FunctionName"] == "node-doubler", invoke
    assert json.loads(invoke["Input"]["Payload"]) == {"value": 44}, invoke
    assert payload(events, "ChainedInvokeSucceeded", "double-total") == "88"
    assert json.loads(payload(events, "ContextSucceeded", "pricing")) == {"tax": 4, "doubled": 88}


def events_order_id(events):
    return json.loads(details(events[0])["Input"]["Payload"])["orderId"]


# -------------------------------------------------------------------- checks


def test_an_approved_order_runs_every_operation_once_across_four_invocations():
    arn = start("approved")
    LAMBDA.send_durable_execution_callback_success(
        CallbackId=callback_id(arn),
        Result=json.dumps({"approved": True, "approver": "ana"}).encode(),
    )
    ex = wait_done(arn)
    assert ex["Status"] == "SUCCEEDED", ex
    expected = {
        "orderId": "approved",
        "total": 40,
        "tax": 4,
        "doubled": 88,
        "approvedBy": "ana",
        "status": "CONFIRMED",
    }
    assert json.loads(ex["Result"]) == expected, ex
    events = history(arn)
    check_common(events)
    assert shape(events)[len(BEFORE_CALLBACK) :] == [
        ("CallbackSucceeded", "Callback", "approval", None),
        ("StepStarted", "Step", "confirm", None),
        ("StepSucceeded", "Step", "confirm", None),
        ("InvocationCompleted", None, None, None),
        ("ExecutionSucceeded", None, None, None),
    ], shape(events)
    assert json.loads(payload(events, "CallbackSucceeded", "approval")) == {
        "approved": True,
        "approver": "ana",
    }
    # The SDK's own serialization of the result, byte for byte.
    assert json.loads(payload(events, "ExecutionSucceeded")) == expected
    assert payload(events, "ExecutionSucceeded") == payload(events, "StepSucceeded", "confirm")


def test_the_chained_invoke_ran_the_doubler_as_a_durable_execution_of_its_own():
    runs = LAMBDA.list_durable_executions_by_function(FunctionName="node-doubler")
    runs = runs["DurableExecutions"]
    assert runs and all(r["Status"] == "SUCCEEDED" for r in runs), runs
    ex = LAMBDA.get_durable_execution(DurableExecutionArn=runs[0]["DurableExecutionArn"])
    assert json.loads(ex["Result"]) == 88, ex
    assert json.loads(ex["InputPayload"]) == {"value": 44}, ex
    events = history(ex["DurableExecutionArn"])
    assert shape(events) == [
        ("ExecutionStarted", None, None, None),
        ("StepStarted", "Step", "double", None),
        ("StepSucceeded", "Step", "double", None),
        ("InvocationCompleted", None, None, None),
        ("ExecutionSucceeded", None, None, None),
    ], shape(events)


def test_a_rejected_approval_fails_the_order_with_the_sdks_callback_error():
    arn = start("rejected")
    LAMBDA.send_durable_execution_callback_failure(
        CallbackId=callback_id(arn),
        Error={"ErrorType": "Rejected", "ErrorMessage": "over budget"},
    )
    ex = wait_done(arn)
    assert ex["Status"] == "FAILED", ex
    assert ex["Error"]["ErrorMessage"] == "over budget", ex
    events = history(arn)
    check_common(events)
    assert shape(events)[len(BEFORE_CALLBACK) :] == [
        ("CallbackFailed", "Callback", "approval", None),
        ("InvocationCompleted", None, None, None),
        ("ExecutionFailed", None, None, None),
    ], shape(events)
    assert payload(events, "CallbackFailed", "approval") == {
        "ErrorType": "Rejected",
        "ErrorMessage": "over budget",
    }
    # The execution fails with the error the SDK raised for the callback.
    assert details(events[-1])["Error"]["Payload"] == ex["Error"], (events[-1], ex)


def main():
    checks = [f for n, f in globals().items() if n.startswith("test_")]
    failed = []
    for check in checks:
        name = check.__name__.removeprefix("test_").replace("_", " ")
        began = time.monotonic()
        try:
            check()
        except Exception:  # noqa: BLE001 - every failure is reported
            failed.append(name)
            print(f"FAIL: {name}\n{traceback.format_exc()}", flush=True)
        else:
            print(f"ok: {name} ({time.monotonic() - began:.1f}s)", flush=True)
    if failed:
        print(f"\n{len(failed)} of {len(checks)} checks failed: {failed}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
