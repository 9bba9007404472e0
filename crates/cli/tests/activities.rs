//! Crash test of Step Functions activities with real processes: a
//! `sagaflow server` killed with SIGKILL while executions wait in activity
//! Tasks, restarted on the same data directory, and a worker that speaks the
//! AWS JSON 1.0 protocol over HTTP (`POST /` with `X-Amz-Target:
//! AWSStepFunctions.GetActivityTask` and the task-token actions), as an SDK
//! does.
//!
//! - A task scheduled before the crash and not yet handed out is handed out
//!   after the restart (its offer is stored, and offered again when the
//!   server recovers the execution), and
//!   the worker's answer completes its execution.
//! - A task handed out before the crash is not handed out again after it
//!   (the hand-out is recorded before it is answered): it is handed out
//!   exactly once and ends by its `TimeoutSeconds` (`States.Timeout`).
//!
//! And with two `sagaflow server --cluster` nodes on one PostgreSQL schema
//! (skipped with a notice when `DATABASE_URL` is unset; CI sets it): a worker
//! that polls one node gets the tasks of executions the other node runs,
//! whether that node holds the execution in memory or it parked, and its
//! heartbeat and answer through the node it polls complete them.

mod common;

use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{database_url, start_node, start_server, KeptOnFailure, PgSchema, Proc};
use serde_json::{json, Value};

/// How long an execution may take to reach a state (a deadline, not a
/// timing assertion).
const DEADLINE: Duration = Duration::from_secs(120);

/// The task handed out before the crash times out after this many seconds:
/// long enough to outlive the restart, so that the worker polls while it
/// still waits.
const HELD_TIMEOUT_SECS: u64 = 20;

const ACTIVITY: &str = "arn:aws:states:us-east-1:123456789012:activity:crash-work";

/// A blocking client of the Step Functions API (reqwest driven by its own
/// single-threaded runtime). The timeout outlasts a GetActivityTask long
/// poll (60 s).
struct Sfn {
    base: String,
    http: reqwest::Client,
    rt: tokio::runtime::Runtime,
}

impl Sfn {
    fn new(base: &str) -> Sfn {
        Sfn {
            base: base.trim_end_matches('/').to_string(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(90))
                .build()
                .expect("an HTTP client"),
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a tokio runtime"),
        }
    }

    /// `POST /` as an AWS SDK sends it: the status and the JSON answer.
    fn call(&self, action: &str, body: Value) -> (u16, Value) {
        self.rt.block_on(async {
            let resp = self
                .http
                .post(format!("{}/", self.base))
                .header("X-Amz-Target", format!("AWSStepFunctions.{action}"))
                .header("Content-Type", "application/x-amz-json-1.0")
                .body(body.to_string())
                .send()
                .await
                .unwrap_or_else(|e| panic!("{action} reaches the server: {e}"));
            let status = resp.status().as_u16();
            let text = resp.text().await.expect("the answer is read");
            let body = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{action}: the answer is not JSON ({e}): {text}"));
            (status, body)
        })
    }

    /// An action that must succeed; its answer.
    fn ok(&self, action: &str, body: Value) -> Value {
        let (status, answer) = self.call(action, body);
        assert_eq!(status, 200, "{action} succeeds: {answer}");
        answer
    }

    /// An action that must fail with the AWS error `name`.
    fn fails(&self, action: &str, body: Value, name: &str) {
        let (status, answer) = self.call(action, body);
        assert_eq!(status, 400, "{action} fails: {answer}");
        assert_eq!(
            answer["__type"],
            json!(format!("com.amazonaws.states#{name}")),
            "{action}: {answer}"
        );
    }

    fn start(&self, machine: &str, name: &str, input: Value) -> String {
        let arn = format!("arn:aws:states:us-east-1:123456789012:stateMachine:{machine}");
        let started = self.ok(
            "StartExecution",
            json!({"stateMachineArn": arn, "name": name, "input": input.to_string()}),
        );
        started["executionArn"].as_str().unwrap().to_string()
    }

    fn describe(&self, execution: &str) -> Value {
        self.ok("DescribeExecution", json!({ "executionArn": execution }))
    }

    /// The execution's description once it is no longer RUNNING.
    fn finished(&self, execution: &str) -> Value {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let d = self.describe(execution);
            if d["status"] != "RUNNING" {
                return d;
            }
            assert!(Instant::now() < deadline, "{execution} ends: {d}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until the execution's history has an `ActivityScheduled` event
    /// (its activity task is queued).
    fn scheduled(&self, execution: &str) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let h = self.ok("GetExecutionHistory", json!({ "executionArn": execution }));
            let events = h["events"].as_array().unwrap();
            if events.iter().any(|e| e["type"] == "ActivityScheduled") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{execution} schedules its task: {h}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// One long poll: the task's token and input, or `None` when the answer
    /// has no `taskToken`.
    fn poll(&self, worker: &str) -> Option<(String, Value)> {
        let task = self.ok(
            "GetActivityTask",
            json!({"activityArn": ACTIVITY, "workerName": worker}),
        );
        let token = task.get("taskToken")?.as_str().unwrap().to_string();
        let input = serde_json::from_str(task["input"].as_str().unwrap()).unwrap();
        Some((token, input))
    }
}

/// A machine whose Task is the activity, with this timeout.
fn machine(timeout_secs: u64) -> Value {
    json!({
        "StartAt": "Work",
        "States": {
            "Work": {
                "Type": "Task",
                "Resource": ACTIVITY,
                "TimeoutSeconds": timeout_secs,
                "ResultPath": "$.result",
                "End": true
            }
        }
    })
}

/// Creates state machine `name` (through `sfn`) from `definition`.
fn create_machine(sfn: &Sfn, name: &str, definition: &Value) {
    sfn.ok(
        "CreateStateMachine",
        json!({
            "name": name,
            "definition": definition.to_string(),
            "roleArn": "arn:aws:iam::123456789012:role/any",
        }),
    );
}

fn server(data: &Path) -> Proc {
    start_server(data, "http://127.0.0.1:9", &[])
}

#[test]
fn activity_tasks_survive_a_server_crash_and_a_handed_out_task_is_not_handed_out_again() {
    let dir = KeptOnFailure::new();
    let data = dir.path().join("data");
    let proc = server(&data);
    let sfn = Sfn::new(&proc.url);

    sfn.ok("CreateActivity", json!({"name": "crash-work"}));
    for (name, timeout) in [("held", HELD_TIMEOUT_SECS), ("work", 600)] {
        create_machine(&sfn, name, &machine(timeout));
    }

    // A task handed out before the crash: its worker dies with it.
    let held = sfn.start("held", "held-1", json!({"job": "held"}));
    let (held_token, held_input) = sfn.poll("doomed").expect("the held task is handed out");
    assert_eq!(held_input, json!({"job": "held"}));
    // A task queued before the crash, not handed out.
    let queued = sfn.start("work", "work-1", json!({"job": "queued"}));
    sfn.scheduled(&queued);

    proc.sigkill();
    let proc = server(&data);
    let sfn = Sfn::new(&proc.url);
    assert_eq!(sfn.describe(&held)["status"], "RUNNING");
    assert_eq!(sfn.describe(&queued)["status"], "RUNNING");

    // The worker after the crash: it polls without pause (one long poll is
    // always outstanding while the held task still waits), heartbeats and
    // answers each task it gets, and stops after the task of `last`.
    let (handed, got) = mpsc::channel::<(String, Value)>();
    let url = proc.url.clone();
    let worker = std::thread::spawn(move || {
        let sfn = Sfn::new(&url);
        loop {
            let Some((token, input)) = sfn.poll("survivor") else {
                continue;
            };
            sfn.ok("SendTaskHeartbeat", json!({ "taskToken": token }));
            let output = json!({ "done": input["job"] });
            sfn.ok(
                "SendTaskSuccess",
                json!({"taskToken": token, "output": output.to_string()}),
            );
            let last = input["job"] == "last";
            handed.send((token, input)).unwrap();
            if last {
                return;
            }
        }
    });

    // The queued task was handed out after the restart and answered.
    let d = sfn.finished(&queued);
    assert_eq!(d["status"], "SUCCEEDED", "{d}");
    assert_eq!(
        serde_json::from_str::<Value>(d["output"].as_str().unwrap()).unwrap(),
        json!({"job": "queued", "result": {"done": "queued"}})
    );

    // The held task is not handed out again: it ends by its timeout.
    let d = sfn.finished(&held);
    assert_eq!(d["status"], "FAILED", "{d}");
    assert_eq!(d["error"], "States.Timeout", "{d}");
    sfn.fails(
        "SendTaskSuccess",
        json!({"taskToken": held_token, "output": "{}"}),
        "TaskTimedOut",
    );

    // The worker is still polling: a new task goes to it, which stops it.
    let last = sfn.start("work", "work-last", json!({"job": "last"}));
    assert_eq!(sfn.finished(&last)["status"], "SUCCEEDED");
    worker.join().expect("the worker ends");
    let after: Vec<(String, Value)> = got.try_iter().collect();
    let jobs: Vec<&Value> = after.iter().map(|(_, input)| &input["job"]).collect();
    assert_eq!(
        jobs,
        [&json!("queued"), &json!("last")],
        "after the crash the worker got the queued task and the last one, never the held one"
    );
    assert!(after.iter().all(|(token, _)| *token != held_token));
    drop(proc);
}

#[test]
fn a_worker_polling_one_node_of_a_cluster_gets_and_answers_the_tasks_of_executions_the_other_node_runs(
) {
    let Some(url) = database_url() else {
        return;
    };
    let schema = PgSchema::create(&url);
    let dir = KeptOnFailure::new();
    let db = schema.server_url();
    let a = start_node(&db, dir.path(), "http://127.0.0.1:9", "node-a", "5s");
    let b = start_node(&db, dir.path(), "http://127.0.0.1:9", "node-b", "5s");
    let (on_a, on_b) = (Sfn::new(&a.url), Sfn::new(&b.url));

    on_a.ok("CreateActivity", json!({"name": "crash-work"}));
    // With a heartbeat the execution stays in node A's memory (its actor
    // watches the silence); without one it parks and gives up its lease.
    let mut resident = machine(600);
    resident["States"]["Work"]["HeartbeatSeconds"] = json!(120);
    create_machine(&on_a, "resident", &resident);
    create_machine(&on_a, "parked", &machine(600));

    let held = on_a.start("resident", "held-by-a", json!({"job": "resident"}));
    on_a.scheduled(&held);
    assert_eq!(
        schema.lease_owner("held-by-a").as_deref(),
        Some("node-a"),
        "node A runs the execution"
    );
    let (token, input) = on_b.poll("far").expect("node B hands out node A's task");
    assert_eq!(input, json!({"job": "resident"}));
    on_b.ok("SendTaskHeartbeat", json!({ "taskToken": token }));
    on_b.ok(
        "SendTaskSuccess",
        json!({"taskToken": token, "output": json!({"done": 1}).to_string()}),
    );
    let d = on_b.finished(&held);
    assert_eq!(d["status"], "SUCCEEDED", "{d}");
    assert_eq!(
        serde_json::from_str::<Value>(d["output"].as_str().unwrap()).unwrap(),
        json!({"job": "resident", "result": {"done": 1}})
    );
    let history = on_a.ok("GetExecutionHistory", json!({ "executionArn": held }));
    let types: Vec<&str> = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["type"].as_str())
        .filter(|t| t.starts_with("Activity"))
        .collect();
    assert_eq!(
        types,
        ["ActivityScheduled", "ActivityStarted", "ActivitySucceeded"]
    );

    let parked = on_a.start("parked", "parked-on-a", json!({"job": "parked"}));
    on_a.scheduled(&parked);
    let (token, input) = on_b.poll("far").expect("node B hands out the parked task");
    assert_eq!(input, json!({"job": "parked"}));
    on_b.ok(
        "SendTaskSuccess",
        json!({"taskToken": token, "output": "2"}),
    );
    let d = on_a.finished(&parked);
    assert_eq!(d["status"], "SUCCEEDED", "{d}");
    // Answered, so no longer a task to hand out: node A's worker gets none
    // of them again (a new one only).
    on_b.start("parked", "last", json!({"job": "last"}));
    let (_, input) = on_a.poll("near").expect("node A hands out node B's task");
    assert_eq!(input, json!({"job": "last"}));
    drop((a, b));
}
