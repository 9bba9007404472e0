#!/usr/bin/env python3
"""Sagaflow's Step Functions API through boto3, the real AWS SDK for Python.

Run by crates/api/tests/boto3.rs against a live server (plain unittest, no
pytest needed):

- SAGAFLOW_ENDPOINT: the Sagaflow server's URL;
- SAGAFLOW_PARTICIPANT: the test participant's URL. Its Lambda functions are
  bound by the server's resource map: `park` records the body it receives
  (with the task token of a `.waitForTaskToken` task), `GET /tokens` lists
  the recorded bodies, and any other function echoes its input;
- SAGAFLOW_POLL_SECS: how long the server holds a GetActivityTask that finds
  no task (its `max_wait_secs`, short so that the suite stays fast).

Each test uses state machines of its own, so the order does not matter.
The AWS CLI test runs the README's `aws stepfunctions` example as written
there (its machine `hello` and execution `first` are its own).
"""

import datetime
import importlib.util
import json
import os
import shlex
import subprocess
import sys
import threading
import time
import unittest
import urllib.request

import boto3
from botocore.config import Config

ENDPOINT = os.environ["SAGAFLOW_ENDPOINT"]
PARTICIPANT = os.environ["SAGAFLOW_PARTICIPANT"]
# Seconds to wait for an execution or a participant call (a deadline only).
DEADLINE = 60
ROLE = "arn:aws:iam::123456789012:role/test"


def client(**config):
    return boto3.client(
        "stepfunctions",
        endpoint_url=ENDPOINT,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=Config(retries={"max_attempts": 1}, **config),
    )


SFN = client()
# How long an empty GetActivityTask is held by the server.
POLL_SECS = int(os.environ.get("SAGAFLOW_POLL_SECS", "60"))
# StartSyncExecution's endpoint carries the host prefix `sync-`, which a
# local endpoint has no name for: this client leaves it out.
SYNC = client(inject_host_prefix=False)

PASS = {
    "StartAt": "Hello",
    "States": {
        "Hello": {
            "Type": "Pass",
            "Result": {"hello": "world"},
            "ResultPath": "$.greeting",
            "End": True,
        }
    },
}

CHOOSE = {
    "StartAt": "Check",
    "States": {
        "Check": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.ok", "BooleanEquals": True, "Next": "Yes"}],
            "Default": "No",
        },
        "Yes": {"Type": "Succeed"},
        "No": {"Type": "Fail", "Error": "Refused", "Cause": "not ok"},
    },
}

WAIT = {
    "StartAt": "Sleep",
    "States": {"Sleep": {"Type": "Wait", "Seconds": 600, "End": True}},
}

# The participant gets the token in its request body; a `Refused` failure
# is caught and refunded.
APPROVAL = {
    "StartAt": "Approve",
    "States": {
        "Approve": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
            "Parameters": {
                "FunctionName": "park",
                "Payload": {"token.$": "$$.Task.Token", "order.$": "$.order"},
            },
            "TimeoutSeconds": 300,
            "Catch": [
                {"ErrorEquals": ["Refused"], "ResultPath": "$.refusal", "Next": "Refund"}
            ],
            "Next": "Approved",
        },
        "Approved": {"Type": "Succeed"},
        "Refund": {
            "Type": "Pass",
            "Result": "refunded",
            "ResultPath": "$.outcome",
            "End": True,
        },
    },
}

# Calls the participant's `echo` function by its Lambda ARN.
ECHO = {
    "StartAt": "Echo",
    "States": {
        "Echo": {
            "Type": "Task",
            "Resource": "arn:aws:lambda:us-east-1:123456789012:function:echo",
            "End": True,
        }
    },
}


def create(name, definition):
    return SFN.create_state_machine(
        name=name, definition=json.dumps(definition), roleArn=ROLE
    )["stateMachineArn"]


def finished(execution_arn):
    """Describes the execution once it is no longer RUNNING."""
    deadline = time.monotonic() + DEADLINE
    while True:
        d = SFN.describe_execution(executionArn=execution_arn)
        if d["status"] != "RUNNING":
            return d
        if time.monotonic() > deadline:
            raise AssertionError(f"{execution_arn} is still running")
        time.sleep(0.05)


def parked_token(order):
    """The task token `park` received for the execution with this order."""
    deadline = time.monotonic() + DEADLINE
    while True:
        with urllib.request.urlopen(f"{PARTICIPANT}/tokens", timeout=DEADLINE) as r:
            for body in json.load(r):
                if body.get("order") == order:
                    return body["token"]
        if time.monotonic() > deadline:
            raise AssertionError(f"no task token for order {order}")
        time.sleep(0.05)


def types(events):
    return [e["type"] for e in events]


class Lifecycle(unittest.TestCase):
    def test_create_describe_start_describe_history_list_stop_and_delete(self):
        arn = create("lifecycle", PASS)
        self.assertEqual(
            arn, "arn:aws:states:us-east-1:123456789012:stateMachine:lifecycle"
        )

        machine = SFN.describe_state_machine(stateMachineArn=arn)
        self.assertEqual(machine["name"], "lifecycle")
        self.assertEqual(machine["status"], "ACTIVE")
        self.assertEqual(machine["type"], "STANDARD")
        self.assertEqual(json.loads(machine["definition"]), PASS)
        self.assertIsInstance(machine["creationDate"], datetime.datetime)

        started = SFN.start_execution(
            stateMachineArn=arn, name="lifecycle-1", input=json.dumps({"who": "boto3"})
        )
        execution_arn = started["executionArn"]
        self.assertEqual(
            execution_arn,
            "arn:aws:states:us-east-1:123456789012:execution:lifecycle:lifecycle-1",
        )
        self.assertIsInstance(started["startDate"], datetime.datetime)

        d = finished(execution_arn)
        self.assertEqual(d["status"], "SUCCEEDED")
        self.assertEqual(d["name"], "lifecycle-1")
        self.assertEqual(d["stateMachineArn"], arn)
        self.assertEqual(json.loads(d["input"]), {"who": "boto3"})
        self.assertEqual(
            json.loads(d["output"]), {"who": "boto3", "greeting": {"hello": "world"}}
        )
        self.assertLessEqual(d["startDate"], d["stopDate"])

        history = SFN.get_execution_history(executionArn=execution_arn)["events"]
        self.assertEqual(
            types(history),
            ["ExecutionStarted", "PassStateEntered", "PassStateExited", "ExecutionSucceeded"],
        )
        self.assertEqual([e["id"] for e in history], [1, 2, 3, 4])
        self.assertEqual(history[1]["stateEnteredEventDetails"]["name"], "Hello")
        self.assertEqual(
            json.loads(history[0]["executionStartedEventDetails"]["input"]),
            {"who": "boto3"},
        )
        self.assertIsInstance(history[0]["timestamp"], datetime.datetime)
        # botocore's paginator follows nextToken, newest first on request.
        pages = SFN.get_paginator("get_execution_history").paginate(
            executionArn=execution_arn,
            reverseOrder=True,
            PaginationConfig={"PageSize": 1},
        )
        self.assertEqual(
            [e["id"] for page in pages for e in page["events"]], [4, 3, 2, 1]
        )

        listed = SFN.list_executions(stateMachineArn=arn)["executions"]
        self.assertEqual([e["name"] for e in listed], ["lifecycle-1"])
        self.assertEqual(listed[0]["status"], "SUCCEEDED")
        names = [m["name"] for m in SFN.list_state_machines()["stateMachines"]]
        self.assertIn("lifecycle", names)

        waiting = create("lifecycle-wait", WAIT)
        long_run = SFN.start_execution(stateMachineArn=waiting, name="long")
        self.assertEqual(
            SFN.describe_execution(executionArn=long_run["executionArn"])["status"],
            "RUNNING",
        )
        running = SFN.list_executions(stateMachineArn=waiting, statusFilter="RUNNING")
        self.assertEqual([e["name"] for e in running["executions"]], ["long"])
        stopped = SFN.stop_execution(
            executionArn=long_run["executionArn"], error="Operator", cause="not needed"
        )
        self.assertIsInstance(stopped["stopDate"], datetime.datetime)
        self.assertEqual(finished(long_run["executionArn"])["status"], "ABORTED")
        aborted = SFN.list_executions(stateMachineArn=waiting, statusFilter="ABORTED")
        self.assertEqual([e["name"] for e in aborted["executions"]], ["long"])

        SFN.delete_state_machine(stateMachineArn=waiting)
        with self.assertRaises(SFN.exceptions.StateMachineDoesNotExist):
            SFN.describe_state_machine(stateMachineArn=waiting)
        # Its executions stay readable.
        self.assertEqual(
            SFN.describe_execution(executionArn=long_run["executionArn"])["status"],
            "ABORTED",
        )

    def test_a_lambda_task_runs_on_the_participant(self):
        arn = create("echo", ECHO)
        started = SFN.start_execution(stateMachineArn=arn, input='{"n": 1}')
        d = finished(started["executionArn"])
        self.assertEqual(d["status"], "SUCCEEDED")
        self.assertEqual(json.loads(d["output"]), {"echoed": {"n": 1}})

    def test_start_sync_execution_answers_with_the_outcome(self):
        arn = create("sync", CHOOSE)
        ok = SYNC.start_sync_execution(stateMachineArn=arn, input='{"ok": true}')
        self.assertEqual(ok["status"], "SUCCEEDED")
        self.assertEqual(json.loads(ok["output"]), {"ok": True})
        failed = SYNC.start_sync_execution(stateMachineArn=arn, input='{"ok": false}')
        self.assertEqual(failed["status"], "FAILED")
        self.assertEqual((failed["error"], failed["cause"]), ("Refused", "not ok"))


class TaskTokens(unittest.TestCase):
    def test_send_task_success_completes_a_wait_for_task_token_task(self):
        arn = create("approval-ok", APPROVAL)
        started = SFN.start_execution(stateMachineArn=arn, input='{"order": "ok-1"}')
        token = parked_token("ok-1")
        SFN.send_task_heartbeat(taskToken=token)
        SFN.send_task_success(taskToken=token, output=json.dumps({"approved": True}))
        d = finished(started["executionArn"])
        self.assertEqual(d["status"], "SUCCEEDED")
        self.assertEqual(json.loads(d["output"]), {"approved": True})
        history = SFN.get_execution_history(executionArn=started["executionArn"])
        self.assertIn("TaskSubmitted", types(history["events"]))
        with self.assertRaises(SFN.exceptions.TaskTimedOut):
            SFN.send_task_success(taskToken=token, output="{}")

    def test_send_task_failure_is_caught_by_the_catch(self):
        arn = create("approval-no", APPROVAL)
        started = SFN.start_execution(stateMachineArn=arn, input='{"order": "no-1"}')
        token = parked_token("no-1")
        SFN.send_task_failure(taskToken=token, error="Refused", cause="over budget")
        d = finished(started["executionArn"])
        self.assertEqual(d["status"], "SUCCEEDED")
        self.assertEqual(
            json.loads(d["output"]),
            {
                "order": "no-1",
                "refusal": {"Error": "Refused", "Cause": "over budget"},
                "outcome": "refunded",
            },
        )
        events = SFN.get_execution_history(executionArn=started["executionArn"])["events"]
        failed = [e for e in events if e["type"] == "TaskFailed"]
        self.assertEqual(len(failed), 1)
        self.assertEqual(failed[0]["taskFailedEventDetails"]["error"], "Refused")

    def test_a_token_that_is_not_ours_is_invalid_token(self):
        with self.assertRaises(SFN.exceptions.InvalidToken):
            SFN.send_task_success(taskToken="not-a-token", output="{}")


class Errors(unittest.TestCase):
    def test_a_missing_machine_is_state_machine_does_not_exist(self):
        missing = "arn:aws:states:us-east-1:123456789012:stateMachine:missing"
        with self.assertRaises(SFN.exceptions.StateMachineDoesNotExist):
            SFN.describe_state_machine(stateMachineArn=missing)
        with self.assertRaises(SFN.exceptions.StateMachineDoesNotExist):
            SFN.start_execution(stateMachineArn=missing)

    def test_an_invalid_definition_is_invalid_definition_naming_each_problem(self):
        broken = {
            "StartAt": "First",
            "States": {
                "First": {"Type": "Pass", "Next": "Nowhere"},
                "Second": {"Type": "Teleport", "End": True},
            },
        }
        with self.assertRaises(SFN.exceptions.InvalidDefinition) as caught:
            create("broken", broken)
        error = caught.exception.response["Error"]
        self.assertEqual(error["Code"], "InvalidDefinition")
        self.assertIn("/States/First/Next", error["Message"])
        self.assertIn("/States/Second/Type", error["Message"])

    def test_a_duplicate_execution_name_with_another_input_is_execution_already_exists(self):
        arn = create("dupe", PASS)
        first = SFN.start_execution(stateMachineArn=arn, name="same", input='{"a": 1}')
        again = SFN.start_execution(stateMachineArn=arn, name="same", input='{"a": 1}')
        self.assertEqual(again["executionArn"], first["executionArn"])
        with self.assertRaises(SFN.exceptions.ExecutionAlreadyExists):
            SFN.start_execution(stateMachineArn=arn, name="same", input='{"a": 2}')

    def test_other_errors_have_their_aws_names(self):
        arn = create("errors", PASS)
        with self.assertRaises(SFN.exceptions.StateMachineAlreadyExists):
            create("errors", CHOOSE)
        with self.assertRaises(SFN.exceptions.InvalidArn):
            SFN.describe_execution(executionArn="not-an-arn")
        with self.assertRaises(SFN.exceptions.ExecutionDoesNotExist):
            SFN.describe_execution(
                executionArn="arn:aws:states:us-east-1:123456789012:execution:errors:none"
            )
        with self.assertRaises(SFN.exceptions.InvalidExecutionInput):
            SFN.start_execution(stateMachineArn=arn, input="{not json")
        with self.assertRaises(SFN.exceptions.InvalidName):
            SFN.start_execution(stateMachineArn=arn, name="no spaces please")
        done = SFN.start_execution(stateMachineArn=arn)
        finished(done["executionArn"])
        with self.assertRaises(SFN.exceptions.ExecutionNotRedrivable):
            SFN.redrive_execution(executionArn=done["executionArn"])



class Definitions(unittest.TestCase):
    def test_validate_state_machine_definition_answers_ok_or_fail_with_diagnostics(self):
        ok = SFN.validate_state_machine_definition(definition=json.dumps(PASS))
        self.assertEqual(ok["result"], "OK")
        self.assertEqual(ok["diagnostics"], [])
        broken = {
            "StartAt": "First",
            "States": {
                "First": {"Type": "Pass", "Next": "Nowhere"},
                "Second": {"Type": "Teleport", "End": True},
            },
        }
        fail = SFN.validate_state_machine_definition(
            definition=json.dumps(broken), type="STANDARD", severity="ERROR"
        )
        self.assertEqual(fail["result"], "FAIL")
        self.assertFalse(fail["truncated"])
        locations = [d["location"] for d in fail["diagnostics"]]
        self.assertIn("/States/First/Next", locations)
        self.assertIn("/States/Second/Type", locations)
        self.assertEqual({d["severity"] for d in fail["diagnostics"]}, {"ERROR"})
        one = SFN.validate_state_machine_definition(
            definition=json.dumps(broken), maxResults=1
        )
        self.assertEqual(len(one["diagnostics"]), 1)
        self.assertTrue(one["truncated"])
        bad_json = SFN.validate_state_machine_definition(definition="{not json")
        self.assertEqual(bad_json["diagnostics"][0]["code"], "INVALID_JSON_DESCRIPTION")

    def test_test_state_runs_one_state_with_its_inspection_data(self):
        # TestState has the host prefix "sync-": the client without it.
        choice = {
            "Type": "Choice",
            "Choices": [{"Variable": "$.n", "NumericGreaterThan": 1, "Next": "Big"}],
            "Default": "Small",
        }
        r = SYNC.test_state(definition=json.dumps(choice), input=json.dumps({"n": 5}))
        self.assertEqual((r["status"], r["nextState"]), ("SUCCEEDED", "Big"))
        self.assertEqual(json.loads(r["output"]), {"n": 5})
        p = SYNC.test_state(
            definition=json.dumps(
                {"Type": "Pass", "QueryLanguage": "JSONata",
                 "Output": "{% $states.input.n * $k %}", "End": True}
            ),
            roleArn="arn:aws:iam::123456789012:role/any",
            input=json.dumps({"n": 5}),
            variables=json.dumps({"k": 3}),
            inspectionLevel="DEBUG",
        )
        self.assertEqual(json.loads(p["output"]), 15)
        self.assertEqual(json.loads(p["inspectionData"]["variables"]), {"k": 3})
        self.assertNotIn("nextState", p)
        with self.assertRaises(SYNC.exceptions.InvalidDefinition):
            SYNC.test_state(definition=json.dumps({"Type": "Teleport", "End": True}))

    def test_update_state_machine_makes_a_new_revision_and_executions_keep_theirs(self):
        arn = create("updated", PASS)
        before = SFN.start_execution(stateMachineArn=arn, input="{}")["executionArn"]
        finished(before)
        u = SFN.update_state_machine(stateMachineArn=arn, definition=json.dumps(CHOOSE))
        self.assertIsInstance(u["updateDate"], datetime.datetime)
        self.assertEqual(u["revisionId"], "2")
        d = SFN.describe_state_machine(stateMachineArn=arn)
        self.assertEqual(json.loads(d["definition"]), CHOOSE)
        self.assertEqual(d["revisionId"], "2")
        after = SFN.start_execution(stateMachineArn=arn, input='{"ok": true}')["executionArn"]
        self.assertEqual(finished(after)["status"], "SUCCEEDED")
        old = SFN.describe_state_machine_for_execution(executionArn=before)
        self.assertEqual(json.loads(old["definition"]), PASS)
        self.assertEqual(old["revisionId"], "1")
        self.assertEqual(old["stateMachineArn"], arn)
        self.assertIsInstance(old["updateDate"], datetime.datetime)
        new = SFN.describe_state_machine_for_execution(executionArn=after)
        self.assertEqual(json.loads(new["definition"]), CHOOSE)
        published = SFN.update_state_machine(
            stateMachineArn=arn, roleArn=ROLE, publish=True, versionDescription="two"
        )
        self.assertEqual(published["stateMachineVersionArn"], arn + ":2")
        with self.assertRaises(SFN.exceptions.MissingRequiredParameter):
            SFN.update_state_machine(stateMachineArn=arn)
        with self.assertRaises(SFN.exceptions.InvalidDefinition):
            SFN.update_state_machine(
                stateMachineArn=arn, definition=json.dumps({"StartAt": "X", "States": {}})
            )
        with self.assertRaises(SFN.exceptions.StateMachineDoesNotExist):
            SFN.update_state_machine(
                stateMachineArn=arn.replace(":updated", ":nobody"), definition=json.dumps(PASS)
            )
        with self.assertRaises(SFN.exceptions.ExecutionDoesNotExist):
            SFN.describe_state_machine_for_execution(
                executionArn="arn:aws:states:us-east-1:123456789012:execution:updated:none"
            )


class Tags(unittest.TestCase):
    def test_tags_are_kept_listed_removed_and_bounded(self):
        arn = SFN.create_state_machine(
            name="tags",
            definition=json.dumps(PASS),
            roleArn=ROLE,
            tags=[{"key": "team", "value": "payments"}],
        )["stateMachineArn"]
        SFN.tag_resource(resourceArn=arn, tags=[{"key": "env", "value": "dev"}])
        listed = SFN.list_tags_for_resource(resourceArn=arn)["tags"]
        self.assertEqual(
            listed, [{"key": "env", "value": "dev"}, {"key": "team", "value": "payments"}]
        )
        SFN.untag_resource(resourceArn=arn, tagKeys=["team"])
        self.assertEqual(
            SFN.list_tags_for_resource(resourceArn=arn)["tags"],
            [{"key": "env", "value": "dev"}],
        )
        with self.assertRaises(SFN.exceptions.TooManyTags):
            SFN.tag_resource(
                resourceArn=arn,
                tags=[{"key": f"k{i}", "value": "v"} for i in range(50)],
            )
        missing = arn.replace(":tags", ":no-such-machine")
        with self.assertRaises(SFN.exceptions.ResourceNotFound):
            SFN.list_tags_for_resource(resourceArn=missing)
        with self.assertRaises(SFN.exceptions.InvalidArn):
            SFN.tag_resource(resourceArn="not-an-arn", tags=[{"key": "a", "value": "b"}])
        SFN.delete_state_machine(stateMachineArn=arn)
        with self.assertRaises(SFN.exceptions.ResourceNotFound):
            SFN.list_tags_for_resource(resourceArn=arn)


class Versions(unittest.TestCase):
    def test_versions_are_published_listed_described_started_and_deleted(self):
        created = SFN.create_state_machine(
            name="versions",
            definition=json.dumps(PASS),
            roleArn=ROLE,
            publish=True,
            versionDescription="first",
        )
        arn = created["stateMachineArn"]
        v1, v2 = arn + ":1", arn + ":2"
        self.assertEqual(created["stateMachineVersionArn"], v1)
        SFN.update_state_machine(stateMachineArn=arn, definition=json.dumps(CHOOSE))
        with self.assertRaises(SFN.exceptions.ConflictException):
            SFN.publish_state_machine_version(stateMachineArn=arn, revisionId="1")
        p = SFN.publish_state_machine_version(
            stateMachineArn=arn, revisionId="2", description="second"
        )
        self.assertEqual(p["stateMachineVersionArn"], v2)
        self.assertIsInstance(p["creationDate"], datetime.datetime)
        listed = SFN.list_state_machine_versions(stateMachineArn=arn)["stateMachineVersions"]
        self.assertEqual([v["stateMachineVersionArn"] for v in listed], [v2, v1])
        first = SFN.list_state_machine_versions(stateMachineArn=arn, maxResults=1)
        second = SFN.list_state_machine_versions(
            stateMachineArn=arn, maxResults=1, nextToken=first["nextToken"]
        )
        paged = first["stateMachineVersions"] + second["stateMachineVersions"]
        self.assertEqual([v["stateMachineVersionArn"] for v in paged], [v2, v1])
        self.assertNotIn("nextToken", second)
        d = SFN.describe_state_machine(stateMachineArn=v1)
        self.assertEqual(
            (d["stateMachineArn"], json.loads(d["definition"]), d["revisionId"], d["description"]),
            (v1, PASS, "1", "first"),
        )
        run = SFN.start_execution(stateMachineArn=v1, input='{"ok": false}')["executionArn"]
        d = finished(run)
        self.assertEqual(d["status"], "SUCCEEDED")
        self.assertEqual(d["stateMachineVersionArn"], v1)
        self.assertNotIn("stateMachineAliasArn", d)
        self.assertEqual(SFN.describe_state_machine_for_execution(executionArn=run)["revisionId"], "1")
        SFN.delete_state_machine_version(stateMachineVersionArn=v1)
        SFN.delete_state_machine_version(stateMachineVersionArn=v1)
        with self.assertRaises(SFN.exceptions.StateMachineDoesNotExist):
            SFN.start_execution(stateMachineArn=v1)
        with self.assertRaises(SFN.exceptions.InvalidArn):
            SFN.delete_state_machine_version(stateMachineVersionArn=arn)

    def test_aliases_route_executions_by_weight(self):
        arn = SFN.create_state_machine(
            name="aliased", definition=json.dumps(PASS), roleArn=ROLE, publish=True
        )["stateMachineArn"]
        SFN.update_state_machine(stateMachineArn=arn, definition=json.dumps(CHOOSE), publish=True)
        v1, v2 = arn + ":1", arn + ":2"
        routing = [
            {"stateMachineVersionArn": v1, "weight": 50},
            {"stateMachineVersionArn": v2, "weight": 50},
        ]
        alias = SFN.create_state_machine_alias(
            name="live", description="d", routingConfiguration=routing
        )["stateMachineAliasArn"]
        self.assertEqual(alias, arn + ":live")
        d = SFN.describe_state_machine_alias(stateMachineAliasArn=alias)
        self.assertEqual((d["name"], d["description"], d["routingConfiguration"]), ("live", "d", routing))
        with self.assertRaises(SFN.exceptions.ConflictException):
            SFN.create_state_machine_alias(
                name="live", routingConfiguration=[{"stateMachineVersionArn": v1, "weight": 100}]
            )
        with self.assertRaises(SFN.exceptions.ValidationException):
            SFN.create_state_machine_alias(
                name="other", routingConfiguration=[{"stateMachineVersionArn": v1, "weight": 60}]
            )
        with self.assertRaises(SFN.exceptions.ResourceNotFound):
            SFN.create_state_machine_alias(
                name="other", routingConfiguration=[{"stateMachineVersionArn": arn + ":9", "weight": 100}]
            )
        # 40 draws at 50/50 run both versions (all alike: 2^-39).
        seen = set()
        for _ in range(40):
            run = SFN.start_execution(stateMachineArn=alias, input='{"ok": true}')["executionArn"]
            d = finished(run)
            self.assertEqual(d["status"], "SUCCEEDED")
            self.assertEqual(d["stateMachineAliasArn"], alias)
            revision = SFN.describe_state_machine_for_execution(executionArn=run)["revisionId"]
            self.assertEqual(d["stateMachineVersionArn"], f"{arn}:{revision}")
            seen.add(revision)
        self.assertEqual(seen, {"1", "2"})
        with self.assertRaises(SFN.exceptions.ConflictException):
            SFN.delete_state_machine_version(stateMachineVersionArn=v1)
        SFN.update_state_machine_alias(
            stateMachineAliasArn=alias,
            routingConfiguration=[{"stateMachineVersionArn": v2, "weight": 100}],
        )
        run = SFN.start_execution(stateMachineArn=alias, input='{"ok": true}')["executionArn"]
        self.assertEqual(finished(run)["stateMachineVersionArn"], v2)
        # ListExecutions by the alias lists the 41 it started; by a version,
        # those that ran it; an unqualified start is listed by neither.
        plain = SFN.start_execution(stateMachineArn=arn, input='{"ok": true}')["executionArn"]
        finished(plain)
        by_alias = SFN.list_executions(stateMachineArn=alias, maxResults=1000)["executions"]
        self.assertEqual(len(by_alias), 41)
        self.assertNotIn(plain, [e["executionArn"] for e in by_alias])
        # Each item says how it was started, as AWS's ExecutionListItem does.
        self.assertTrue(all(e["stateMachineAliasArn"] == alias for e in by_alias))
        self.assertTrue(all(e["redriveCount"] == 0 for e in by_alias))
        by_v1 = SFN.list_executions(stateMachineArn=v1, maxResults=1000)["executions"]
        by_v2 = SFN.list_executions(stateMachineArn=v2, maxResults=1000)["executions"]
        self.assertEqual(len(by_v1) + len(by_v2), 41)
        self.assertIn(run, [e["executionArn"] for e in by_v2])
        listed = SFN.list_state_machine_aliases(stateMachineArn=arn)["stateMachineAliases"]
        self.assertEqual([a["stateMachineAliasArn"] for a in listed], [alias])
        SFN.delete_state_machine_alias(stateMachineAliasArn=alias)
        with self.assertRaises(SFN.exceptions.ResourceNotFound):
            SFN.describe_state_machine_alias(stateMachineAliasArn=alias)
        SFN.delete_state_machine_version(stateMachineVersionArn=v1)
        self.assertEqual(
            [v["stateMachineVersionArn"] for v in SFN.list_state_machine_versions(stateMachineArn=arn)["stateMachineVersions"]],
            [v2],
        )


def activity_machine(activity_arn, heartbeat_seconds):
    """A Task on the activity whose `Declined` failure is caught."""
    return {
        "StartAt": "Work",
        "States": {
            "Work": {
                "Type": "Task",
                "Resource": activity_arn,
                "Parameters": {"n.$": "$.n", "mode.$": "$.mode"},
                "ResultPath": "$.result",
                "HeartbeatSeconds": heartbeat_seconds,
                "TimeoutSeconds": 300,
                "Catch": [
                    {"ErrorEquals": ["Declined"], "ResultPath": "$.declined", "Next": "Declined"}
                ],
                "End": True,
            },
            "Declined": {
                "Type": "Pass",
                "Result": "compensated",
                "ResultPath": "$.outcome",
                "End": True,
            },
        },
    }


class Worker(threading.Thread):
    """An activity worker as one would write it with boto3: it long-polls
    GetActivityTask, sends a heartbeat, then answers with SendTaskSuccess
    (`mode` "ok") or SendTaskFailure (any other mode), until stopped."""

    def __init__(self, activity_arn, name):
        super().__init__(daemon=True)
        self.activity_arn = activity_arn
        self.name_ = name
        self.stop = threading.Event()
        self.tokens = []
        self.empty_polls = 0
        self.error = None
        # Its own client, with a read timeout above the long poll (60 s on AWS).
        self.sfn = client(read_timeout=POLL_SECS + 30)

    def run(self):
        try:
            while not self.stop.is_set():
                task = self.sfn.get_activity_task(
                    activityArn=self.activity_arn, workerName=self.name_
                )
                token = task.get("taskToken")
                if not token:
                    self.empty_polls += 1
                    continue
                self.tokens.append(token)
                work = json.loads(task["input"])
                self.sfn.send_task_heartbeat(taskToken=token)
                if work["mode"] == "ok":
                    self.sfn.send_task_success(
                        taskToken=token,
                        output=json.dumps({"doubled": work["n"] * 2, "by": self.name_}),
                    )
                else:
                    self.sfn.send_task_failure(
                        taskToken=token, error="Declined", cause=f"n={work['n']}"
                    )
        except Exception as e:  # reported by the test that waits for it
            self.error = e

    def finish(self, test):
        self.stop.set()
        self.join(POLL_SECS + DEADLINE)
        test.assertFalse(self.is_alive(), "the worker stops after its last poll")
        test.assertIsNone(self.error)


class Activities(unittest.TestCase):
    def test_a_boto3_worker_polls_heartbeats_and_answers_activity_tasks(self):
        created = SFN.create_activity(name="boto3-work", tags=[{"key": "team", "value": "ops"}])
        activity = created["activityArn"]
        self.assertEqual(activity, "arn:aws:states:us-east-1:123456789012:activity:boto3-work")
        self.assertIsInstance(created["creationDate"], datetime.datetime)
        # Idempotent: the same name answers the same activity.
        self.assertEqual(SFN.create_activity(name="boto3-work")["activityArn"], activity)
        self.assertEqual(SFN.describe_activity(activityArn=activity)["name"], "boto3-work")
        listed = [a["activityArn"] for a in SFN.list_activities()["activities"]]
        self.assertIn(activity, listed)
        self.assertEqual(
            SFN.list_tags_for_resource(resourceArn=activity)["tags"],
            [{"key": "team", "value": "ops"}],
        )

        arn = create("activity-work", activity_machine(activity, 30))
        runs = {
            mode_n: SFN.start_execution(
                stateMachineArn=arn,
                input=json.dumps({"n": mode_n[1], "mode": mode_n[0]}),
            )["executionArn"]
            for mode_n in [("ok", 1), ("ok", 2), ("no", 3)]
        }
        worker = Worker(activity, "boto3-worker")
        worker.start()
        try:
            outcomes = {key: finished(run) for key, run in runs.items()}
        finally:
            worker.finish(self)

        for n in (1, 2):
            d = outcomes[("ok", n)]
            self.assertEqual(d["status"], "SUCCEEDED")
            self.assertEqual(
                json.loads(d["output"]),
                {"n": n, "mode": "ok", "result": {"doubled": n * 2, "by": "boto3-worker"}},
            )
        d = outcomes[("no", 3)]
        self.assertEqual(d["status"], "SUCCEEDED")
        self.assertEqual(
            json.loads(d["output"]),
            {
                "n": 3,
                "mode": "no",
                "declined": {"Error": "Declined", "Cause": "n=3"},
                "outcome": "compensated",
            },
        )
        # Each task went to the worker once.
        self.assertEqual(len(worker.tokens), 3)
        self.assertEqual(len(set(worker.tokens)), 3)
        # An answered task is answered for good.
        with self.assertRaises(SFN.exceptions.TaskTimedOut):
            SFN.send_task_success(taskToken=worker.tokens[0], output="{}")
        # The history names them as AWS's does: Activity… events.
        events = SFN.get_execution_history(executionArn=runs[("no", 3)])["events"]
        self.assertIn("ActivityScheduled", types(events))
        self.assertIn("ActivityStarted", types(events))
        self.assertNotIn("TaskScheduled", types(events))
        failed = [e for e in events if e["type"] == "ActivityFailed"]
        self.assertEqual(len(failed), 1)
        self.assertEqual(failed[0]["activityFailedEventDetails"]["error"], "Declined")
        scheduled = [e for e in events if e["type"] == "ActivityScheduled"][0]
        self.assertEqual(scheduled["activityScheduledEventDetails"]["resource"], activity)

    def test_a_poll_with_nothing_queued_answers_without_a_task_token(self):
        activity = SFN.create_activity(name="boto3-idle")["activityArn"]
        worker_client = client(read_timeout=POLL_SECS + 30)
        # Held by the server for its wait, then answered `{}`.
        task = worker_client.get_activity_task(activityArn=activity, workerName="idle")
        self.assertNotIn("taskToken", task)
        self.assertNotIn("input", task)

    def test_a_task_without_heartbeats_ends_by_its_heartbeat_timeout(self):
        activity = SFN.create_activity(name="boto3-silent")["activityArn"]
        arn = create("activity-silent", activity_machine(activity, 3))
        run = SFN.start_execution(stateMachineArn=arn, input='{"n": 4, "mode": "ok"}')
        task = client(read_timeout=POLL_SECS + 30).get_activity_task(
            activityArn=activity, workerName="silent"
        )
        self.assertEqual(json.loads(task["input"]), {"n": 4, "mode": "ok"})
        # The worker never heartbeats nor answers.
        d = finished(run["executionArn"])
        self.assertEqual(d["status"], "FAILED")
        self.assertEqual(d["error"], "States.HeartbeatTimeout")
        with self.assertRaises(SFN.exceptions.TaskTimedOut):
            SFN.send_task_success(taskToken=task["taskToken"], output="{}")

    def test_an_activity_that_does_not_exist_is_activity_does_not_exist(self):
        missing = "arn:aws:states:us-east-1:123456789012:activity:boto3-missing"
        with self.assertRaises(SFN.exceptions.ActivityDoesNotExist):
            SFN.describe_activity(activityArn=missing)
        with self.assertRaises(SFN.exceptions.ActivityDoesNotExist):
            SFN.get_activity_task(activityArn=missing, workerName="nobody")
        gone = SFN.create_activity(name="boto3-gone")["activityArn"]
        SFN.delete_activity(activityArn=gone)
        SFN.delete_activity(activityArn=gone)
        with self.assertRaises(SFN.exceptions.ActivityDoesNotExist):
            SFN.describe_activity(activityArn=gone)


README = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../../../README.md")
# The endpoint the README's examples name.
README_ENDPOINT = "http://127.0.0.1:8080"


def readme_cli_commands():
    """The `aws` commands of the README's first `sh` example of the Step
    Functions API section, each as its argument list (without `aws`)."""
    with open(README) as f:
        text = f.read()
    section = text[text.index("## Step Functions API") :]
    block = section[section.index("```sh\n") + len("```sh\n") :]
    block = block[: block.index("```")]
    commands = []
    for line in block.replace("\\\n", " ").splitlines():
        words = shlex.split(line)
        if words and words[0] == "aws":
            commands.append(words[1:])
    return commands


# A distributed Map whose items park on `park` until their token is sent.
DISTRIBUTED = {
    "StartAt": "Orders",
    "States": {
        "Orders": {
            "Type": "Map",
            "Label": "Orders",
            "MaxConcurrency": 1,
            "ItemsPath": "$.orders",
            "ItemProcessor": {
                "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                "StartAt": "Approve",
                "States": {
                    "Approve": {
                        "Type": "Task",
                        "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
                        "Parameters": {
                            "FunctionName": "park",
                            "Payload": {"token.$": "$$.Task.Token", "order.$": "$.order"},
                        },
                        "End": True,
                    }
                },
            },
            "End": True,
        }
    },
}


def until(check, what):
    """Polls `check` until it answers something true; returns that."""
    deadline = time.monotonic() + DEADLINE
    while True:
        answer = check()
        if answer:
            return answer
        if time.monotonic() > deadline:
            raise AssertionError(f"never: {what}")
        time.sleep(0.05)


class MapRuns(unittest.TestCase):
    def test_a_distributed_map_run_is_listed_described_updated_and_its_children_described_with_their_history(self):
        arn = create("distributed", DISTRIBUTED)
        orders = [{"order": f"dm-{i}"} for i in range(3)]
        ex = SFN.start_execution(
            stateMachineArn=arn, name="dm", input=json.dumps({"orders": orders})
        )["executionArn"]
        runs = until(lambda: SFN.list_map_runs(executionArn=ex)["mapRuns"], "a map run")
        self.assertEqual(len(runs), 1)
        run_arn = runs[0]["mapRunArn"]
        self.assertIn(":mapRun:distributed/Orders:", run_arn)
        self.assertEqual(runs[0]["executionArn"], ex)

        described = SFN.describe_map_run(mapRunArn=run_arn)
        self.assertEqual(described["status"], "RUNNING")
        self.assertEqual(described["maxConcurrency"], 1)
        self.assertEqual(described["itemCounts"]["total"], 3)
        self.assertEqual(described["itemCounts"]["running"], 1)
        self.assertEqual(described["itemCounts"]["pending"], 2)

        # One at a time, then all three at once.
        parked_token("dm-0")
        SFN.update_map_run(mapRunArn=run_arn, maxConcurrency=3, toleratedFailureCount=1)
        described = SFN.describe_map_run(mapRunArn=run_arn)
        self.assertEqual(described["maxConcurrency"], 3)
        self.assertEqual(described["toleratedFailureCount"], 1)
        self.assertEqual(described["itemCounts"]["running"], 3)
        children = SFN.list_executions(mapRunArn=run_arn)["executions"]
        self.assertEqual([c["status"] for c in children], ["RUNNING"] * 3)
        self.assertTrue(all(c["mapRunArn"] == run_arn for c in children))

        for order in orders:
            SFN.send_task_success(taskToken=parked_token(order["order"]), output=json.dumps(order))
        d = finished(ex)
        self.assertEqual(d["status"], "SUCCEEDED", d)
        self.assertEqual(json.loads(d["output"]), orders)
        described = SFN.describe_map_run(mapRunArn=run_arn)
        self.assertEqual(described["status"], "SUCCEEDED")
        self.assertEqual(described["itemCounts"]["succeeded"], 3)
        self.assertIn("stopDate", described)
        events = types(SFN.get_execution_history(executionArn=ex)["events"])
        self.assertIn("MapRunStarted", events)
        self.assertIn("MapRunSucceeded", events)
        with self.assertRaises(SFN.exceptions.ValidationException):
            SFN.update_map_run(mapRunArn=run_arn, maxConcurrency=5)

        # A child is an execution of its own: described, with its history.
        first = children[0]["executionArn"]
        child = SFN.describe_execution(executionArn=first)
        self.assertEqual(child["status"], "SUCCEEDED")
        self.assertEqual(child["mapRunArn"], run_arn)
        self.assertEqual(child["stateMachineArn"], arn + "/Orders")
        self.assertEqual(json.loads(child["input"]), orders[0])
        self.assertEqual(json.loads(child["output"]), orders[0])
        history = SFN.get_execution_history(executionArn=first)["events"]
        # TaskSubmitted only if the participant's acknowledgement was
        # recorded before the token came back.
        self.assertEqual(
            [t for t in types(history) if t != "TaskSubmitted"],
            [
                "ExecutionStarted",
                "TaskStateEntered",
                "TaskScheduled",
                "TaskStarted",
                "TaskSucceeded",
                "TaskStateExited",
                "ExecutionSucceeded",
            ],
        )
        self.assertEqual([e["id"] for e in history], list(range(1, len(history) + 1)))
        started = history[0]["executionStartedEventDetails"]
        self.assertEqual(json.loads(started["input"]), orders[0])
        with self.assertRaises(SFN.exceptions.ExecutionDoesNotExist):
            SFN.describe_execution(executionArn=first[: -len("_0")] + "_9")
        with self.assertRaises(SFN.exceptions.ExecutionDoesNotExist):
            SFN.get_execution_history(executionArn=first[: -len("_0")] + "_9")

    def test_a_map_run_that_does_not_exist_is_resource_not_found(self):
        missing = "arn:aws:states:us-east-1:123456789012:mapRun:nope/Orders:none_0"
        with self.assertRaises(SFN.exceptions.ResourceNotFound):
            SFN.describe_map_run(mapRunArn=missing)
        with self.assertRaises(SFN.exceptions.InvalidArn):
            SFN.describe_map_run(mapRunArn="not-a-map-run")


class AwsCli(unittest.TestCase):
    def test_the_readme_aws_cli_example_runs(self):
        if importlib.util.find_spec("awscli") is None:
            # CI installs it (.ci/run); elsewhere say why this check is skipped.
            self.assertFalse(os.environ.get("CI"), f"awscli is not installed for {sys.executable}")
            self.skipTest(f"awscli is not installed for {sys.executable}")
        commands = readme_cli_commands()
        self.assertEqual(
            [c[:3] for c in commands],
            [
                ["stepfunctions", "--endpoint-url", README_ENDPOINT],
                ["stepfunctions", "--endpoint-url", README_ENDPOINT],
                ["stepfunctions", "--endpoint-url", README_ENDPOINT],
            ],
        )
        self.assertEqual(
            [c[3] for c in commands],
            ["create-state-machine", "start-execution", "describe-execution"],
        )
        env = dict(
            os.environ,
            AWS_ACCESS_KEY_ID="x",
            AWS_SECRET_ACCESS_KEY="x",
            AWS_DEFAULT_REGION="us-east-1",
            AWS_PAGER="",
        )

        def aws(args):
            args = [ENDPOINT if a == README_ENDPOINT else a for a in args]
            out = subprocess.run(
                [sys.executable, "-m", "awscli", *args],
                capture_output=True,
                text=True,
                env=env,
                timeout=DEADLINE,
            )
            self.assertEqual(out.returncode, 0, f"aws {args}: {out.stdout}\n{out.stderr}")
            return json.loads(out.stdout)

        created, started, described = [aws(c) for c in commands]
        machine = "arn:aws:states:us-east-1:123456789012:stateMachine:hello"
        execution = "arn:aws:states:us-east-1:123456789012:execution:hello:first"
        self.assertEqual(created["stateMachineArn"], machine)
        self.assertEqual(started["executionArn"], execution)
        self.assertIn(described["status"], ["RUNNING", "SUCCEEDED"])
        self.assertEqual(described["stateMachineArn"], machine)
        # The same describe-execution, once the execution is over.
        d = finished(execution)
        self.assertEqual(d["status"], "SUCCEEDED")
        self.assertEqual(aws(commands[2])["status"], "SUCCEEDED")
        self.assertEqual(json.loads(aws(commands[2])["output"]), {"n": 1})


if __name__ == "__main__":
    unittest.main(verbosity=2)
