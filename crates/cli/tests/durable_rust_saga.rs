//! End to end: the travel saga written in Rust with `sagaflow-saga`
//! (`durable-rust/saga/examples/travel.rs`, on AWS's Rust durable SDK),
//! hosted by `sagaflow server` as a custom-runtime (`provided`) durable
//! function whose chained invokes reach `travel-services` through
//! `[[resources]]`.
//!
//! A failure is injected at every step (the travel `run_type`s, with the
//! cancellations failing at random and the confirmations failing twice
//! before succeeding); each execution must end as its run type promises
//! (`succeeded`, or `compensated`: a FAILED execution with `SagaCompensated`
//! and the cancellations newest first), its history must show the
//! participants called in order, each once, and the travel database must
//! hold the confirmed bookings of the succeeded trips only, each call
//! executed once per idempotency key.
//!
//! The executable comes from `SAGAFLOW_RUST_SAGA` (built with
//! `cd durable-rust && cargo build -p sagaflow-saga --example travel`:
//! `durable-rust/target/debug/examples/travel`). Without it the test says
//! why and passes, unless `CI` is set: then it fails.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{free_port, sagaflow, KeptOnFailure, Proc, Travel, RUN_TYPES};
use serde_json::{json, Value};

const FUNCTION: &str = "travel-saga-rust";

/// `SAGAFLOW_RUST_SAGA`, or `None` after saying why the test does nothing.
fn rust_saga() -> Option<PathBuf> {
    match std::env::var_os("SAGAFLOW_RUST_SAGA") {
        Some(p) if !p.is_empty() => Some(PathBuf::from(p)),
        _ => {
            let why = "SAGAFLOW_RUST_SAGA is not set: the Rust travel saga test needs the \
                       executable built by `cd durable-rust && cargo build -p sagaflow-saga \
                       --example travel` (durable-rust/target/debug/examples/travel)";
            assert!(std::env::var_os("CI").is_none(), "{why}");
            eprintln!("skipped: {why}");
            None
        }
    }
}

/// The server's config: the saga as `travel-saga-rust`, its
/// `travel-SERVICE-ACTION` functions at the travel services' routes.
fn write_config(dir: &Path, exe: &Path, travel_url: &str) -> PathBuf {
    let code = exe.parent().expect("the executable is in a directory");
    let handler = exe.file_name().expect("the executable has a name");
    let mut config = format!(
        r#"listen = "127.0.0.1:{port}"
data_dir = {data}

[lambda]
region = "us-east-1"
account_id = "123456789012"
log_dir = {logs}

[[lambda.functions]]
name = "{FUNCTION}"
runtime = "provided"
code = {code}
handler = {handler}
timeout_seconds = 60
[lambda.functions.durable]
execution_timeout_seconds = 600
retention_days = 1
"#,
        port = free_port(),
        data = common::toml_str(&dir.join("data").to_string_lossy()),
        logs = common::toml_str(&dir.join("function-logs").to_string_lossy()),
        code = common::toml_str(&code.to_string_lossy()),
        handler = common::toml_str(&handler.to_string_lossy()),
    );
    for service in ["hotel", "flight", "car", "payment"] {
        config.push_str(&format!(
            "\n[[resources]]\npattern = \"arn:aws:lambda:*:*:function:travel-{service}-{{name}}\"\n\
             target = {}\n",
            common::toml_str(&format!("{travel_url}/{service}/{{name}}"))
        ));
    }
    let path = dir.join("sagaflow.toml");
    std::fs::write(&path, config).expect("the config can be written");
    path
}

fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A small blocking client of the Lambda API (rest-json).
struct Lambda {
    base: String,
    http: reqwest::Client,
    rt: tokio::runtime::Runtime,
}

/// An answer: status, `X-Amz-Durable-Execution-Arn`, `X-Amz-Function-Error`, body.
struct Answer {
    status: u16,
    arn: Option<String>,
    function_error: Option<String>,
    body: Value,
}

impl Lambda {
    fn new(base: &str) -> Lambda {
        Lambda {
            base: base.trim_end_matches('/').to_string(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(120))
                .build()
                .expect("an HTTP client"),
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a tokio runtime"),
        }
    }

    fn send(&self, rb: reqwest::RequestBuilder) -> Answer {
        self.rt.block_on(async {
            let resp = rb.send().await.expect("the server answers");
            let header = |name: &str| {
                resp.headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            let (arn, function_error) = (
                header("x-amz-durable-execution-arn"),
                header("x-amz-function-error"),
            );
            let status = resp.status().as_u16();
            let text = resp.text().await.unwrap_or_default();
            Answer {
                status,
                arn,
                function_error,
                body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
            }
        })
    }

    /// Invokes the saga as execution `name`, `Event` or `RequestResponse`.
    fn invoke(&self, name: &str, invocation_type: &str, payload: &Value) -> Answer {
        let url = format!("{}/2015-03-31/functions/{FUNCTION}/invocations", self.base);
        self.send(
            self.http
                .post(url)
                .header("X-Amz-Invocation-Type", invocation_type)
                .header("X-Amz-Durable-Execution-Name", name)
                .body(payload.to_string()),
        )
    }

    fn get(&self, path: &str) -> Value {
        let a = self.send(self.http.get(format!("{}{path}", self.base)));
        assert_eq!(a.status, 200, "GET {path} answers 200: {}", a.body);
        a.body
    }

    fn describe(&self, arn: &str) -> Value {
        self.get(&format!("/2025-12-01/durable-executions/{}", encode(arn)))
    }

    fn history(&self, arn: &str) -> Vec<Value> {
        let mut events = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let mut path = format!(
                "/2025-12-01/durable-executions/{}/history?IncludeExecutionData=true",
                encode(arn)
            );
            if let Some(m) = &marker {
                path.push_str(&format!("&Marker={}", encode(m)));
            }
            let page = self.get(&path);
            events.extend(page["Events"].as_array().cloned().unwrap_or_default());
            match page["NextMarker"].as_str() {
                Some(m) => marker = Some(m.to_string()),
                None => return events,
            }
        }
    }

    /// Waits (at most 120 s) until the execution has ended.
    fn wait_ended(&self, arn: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let d = self.describe(arn);
            if d["Status"].as_str().is_some_and(|s| s != "RUNNING") {
                return d;
            }
            assert!(Instant::now() < deadline, "{arn} ends within 120s: {d}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// The chained invokes a run type makes, in order, with whether each
/// succeeded, and the cancellations its report names.
fn expected(run_type: &str) -> (Vec<(&'static str, bool)>, Vec<&'static str>) {
    let reserves = [
        "reserve_hotel",
        "reserve_flight",
        "reserve_car",
        "take_payment",
    ];
    let failing = match run_type {
        "failHotelReservation" => Some(0),
        "failFlightsReservation" => Some(1),
        "failCarReservation" => Some(2),
        "failPayment" => Some(3),
        _ => None,
    };
    match failing {
        None => {
            let calls = reserves
                .iter()
                .chain(&["confirm_hotel", "confirm_flight", "confirm_car"])
                .map(|n| (*n, true))
                .collect();
            (calls, Vec::new())
        }
        Some(f) => {
            let cancels: Vec<&'static str> = ["cancel_hotel", "cancel_flight", "cancel_car"]
                [..f.min(3)]
                .iter()
                .rev()
                .copied()
                .collect();
            let mut calls: Vec<(&str, bool)> = reserves[..f].iter().map(|n| (*n, true)).collect();
            calls.push((reserves[f], false));
            calls.extend(cancels.iter().map(|n| (*n, true)));
            (calls, cancels)
        }
    }
}

/// The chained invokes of a history, in end order, with whether each succeeded.
fn invokes(events: &[Value]) -> Vec<(String, bool)> {
    events
        .iter()
        .filter_map(|e| match e["EventType"].as_str() {
            Some(t @ ("ChainedInvokeSucceeded" | "ChainedInvokeFailed")) => Some((
                e["Name"].as_str().unwrap_or("?").to_string(),
                t == "ChainedInvokeSucceeded",
            )),
            _ => None,
        })
        .collect()
}

/// What is wrong with one ended execution of `run_type`.
fn problems(
    run_type: &str,
    trip_id: &str,
    ex: &Value,
    events: &[Value],
    travel: &Travel,
) -> Vec<String> {
    let mut problems = Vec::new();
    let status = common::expected_status(run_type);
    let (calls, cancels) = expected(run_type);
    if status == "succeeded" {
        if ex["Status"] != "SUCCEEDED" {
            problems.push(format!("SUCCEEDED, not {}", ex["Status"]));
        }
        let result: Value = ex["Result"]
            .as_str()
            .and_then(|r| serde_json::from_str(r).ok())
            .unwrap_or(Value::Null);
        if result["status"] != "succeeded" || result["trip_id"] != trip_id {
            problems.push(format!("the result is the succeeded trip: {result}"));
        }
        for service in ["hotel", "flight", "car", "payment"] {
            if result[service].is_null() {
                problems.push(format!("the result holds the {service}: {result}"));
            }
        }
    } else {
        if ex["Status"] != "FAILED" {
            problems.push(format!("FAILED, not {}", ex["Status"]));
        }
        let error = &ex["Error"];
        if error["ErrorType"] != "SagaCompensated" {
            problems.push(format!("ErrorType SagaCompensated: {error}"));
        }
        let message = error["ErrorMessage"].as_str().unwrap_or("");
        let report: Value = message
            .strip_prefix("SagaCompensated: ")
            .and_then(|r| serde_json::from_str(r).ok())
            .unwrap_or(Value::Null);
        let (failed_step, _) = calls
            .iter()
            .find(|(_, ok)| !ok)
            .copied()
            .unwrap_or(("?", false));
        if report["status"] != "compensated"
            || report["failed_step"] != failed_step
            || report["compensated"] != json!(cancels)
            || !report["unfinished"].is_null()
        {
            problems.push(format!(
                "the report names {failed_step} and the cancellations {cancels:?} newest first: {message}"
            ));
        }
    }
    let ids: Vec<u64> = events
        .iter()
        .filter_map(|e| e["EventId"].as_u64())
        .collect();
    if ids != (1..=events.len() as u64).collect::<Vec<_>>() {
        problems.push(format!("EventIds 1..n: {ids:?}"));
    }
    if events.first().and_then(|e| e["EventType"].as_str()) != Some("ExecutionStarted") {
        problems.push("the history starts with ExecutionStarted".to_string());
    }
    let got = invokes(events);
    let want: Vec<(String, bool)> = calls.iter().map(|(n, ok)| (n.to_string(), *ok)).collect();
    if got != want {
        problems.push(format!("chained invokes {got:?}, not {want:?}"));
    }
    let started: Vec<&str> = events
        .iter()
        .filter(|e| e["EventType"] == "ChainedInvokeStarted")
        .filter_map(|e| e["Name"].as_str())
        .collect();
    let mut unique = started.clone();
    unique.sort_unstable();
    unique.dedup();
    if unique.len() != started.len() {
        problems.push(format!("no chained invoke twice: {started:?}"));
    }
    if events.last().and_then(|e| e["EventType"].as_str())
        != Some(if status == "succeeded" {
            "ExecutionSucceeded"
        } else {
            "ExecutionFailed"
        })
    {
        problems.push("the history ends with the execution's end".to_string());
    }
    problems.extend(common::trip_problems(status, &travel.rows(trip_id)));
    problems
}

#[test]
fn the_rust_travel_saga_compensates_every_injected_failure_newest_first_and_leaves_only_succeeded_trips_booked(
) {
    let Some(exe) = rust_saga() else {
        return;
    };
    assert!(
        exe.is_file(),
        "SAGAFLOW_RUST_SAGA names a file: {}",
        exe.display()
    );
    let dir = KeptOnFailure::new();
    let logs = dir.path().join("logs");
    // Cancellations fail half the time (retried), confirmations twice.
    let travel = Travel::start(dir.path(), 0.5, 2);
    let config = write_config(dir.path(), &exe, travel.url());
    let mut cmd = sagaflow();
    cmd.arg("server").arg("--config").arg(&config);
    let server = Proc::spawn("sagaflow-server", cmd, &logs);
    let lambda = Lambda::new(&server.url);
    let run = format!("{:08x}", std::process::id());

    let mut failures = Vec::new();
    for mode in ["Event", "RequestResponse"] {
        for (run_type, status) in RUN_TYPES {
            let trip_id = format!("{run}-{mode}-{run_type}");
            let input = common::trip_input(&trip_id, run_type);
            let answer = lambda.invoke(&trip_id, mode, &input);
            let arn = answer.arn.clone().unwrap_or_default();
            let mut found = Vec::new();
            if mode == "Event" {
                if answer.status != 202 {
                    found.push(format!("an Event invoke answers 202: {}", answer.status));
                }
            } else {
                // A sync invoke answers the execution's outcome.
                let failed = *status != "succeeded";
                if answer.status != 200 || answer.function_error.is_some() != failed {
                    found.push(format!(
                        "a sync invoke answers 200{}: {} {:?} {}",
                        if failed { " with FunctionError" } else { "" },
                        answer.status,
                        answer.function_error,
                        answer.body
                    ));
                }
                if failed && answer.body["errorType"] != "SagaCompensated" {
                    found.push(format!("errorType SagaCompensated: {}", answer.body));
                }
            }
            if arn.is_empty() {
                found.push("an X-Amz-Durable-Execution-Arn".to_string());
            } else {
                let ex = lambda.wait_ended(&arn);
                let events = lambda.history(&arn);
                found.extend(problems(run_type, &trip_id, &ex, &events, &travel));
            }
            println!(
                "{mode} {run_type}: {}",
                if found.is_empty() { "ok" } else { "FAIL" }
            );
            if !found.is_empty() {
                failures.push(format!(
                    "{mode} {run_type} ({arn}):\n  {}",
                    found.join("\n  ")
                ));
            }
        }
    }

    // Every participant call executed once per idempotency key, whatever
    // the random cancellation failures and the confirmations' retries.
    let repeated: Vec<String> = travel
        .effects()
        .into_iter()
        .filter(|e| e.count != 1)
        .map(|e| format!("{e:?}"))
        .collect();
    if !repeated.is_empty() {
        failures.push(format!("calls executed more than once: {repeated:?}"));
    }
    assert!(
        failures.is_empty(),
        "{}\n--- server log tail:\n{}\n--- travel-services log tail:\n{}",
        failures.join("\n"),
        server.log_tail(),
        travel.log_tail()
    );
}

#[test]
fn the_demo_runs_the_rust_travel_saga_through_every_scenario_of_the_saga_definition() {
    let Some(exe) = rust_saga() else {
        return;
    };
    let dir = KeptOnFailure::new();
    let mut cmd = sagaflow();
    cmd.args(["demo", "--only", "rust"])
        .current_dir(dir.path())
        .env("SAGAFLOW_RUST_SAGA", &exe);
    let out = common::run(cmd, Duration::from_secs(240));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success()
            && stdout.contains("Rust saga: failPayment")
            && stdout.contains("All 7 scenarios ended as the saga promises."),
        "sagaflow demo --only rust: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_cancel_during_the_hold_before_the_payment_undoes_the_three_bookings_newest_first() {
    let Some(exe) = rust_saga() else {
        return;
    };
    let dir = KeptOnFailure::new();
    let logs = dir.path().join("logs");
    let travel = Travel::start(dir.path(), 0.0, 0);
    let config = write_config(dir.path(), &exe, travel.url());
    let mut cmd = sagaflow();
    cmd.arg("server").arg("--config").arg(&config);
    let server = Proc::spawn("sagaflow-server", cmd, &logs);
    let lambda = Lambda::new(&server.url);

    let trip_id = format!("{:08x}-held", std::process::id());
    let mut input = common::trip_input(&trip_id, "success");
    input["hold_seconds"] = json!(600);
    let answer = lambda.invoke(&trip_id, "Event", &input);
    assert_eq!(answer.status, 202, "an Event invoke answers 202");
    let arn = answer.arn.expect("the answer names the execution");
    // The saga holds the three bookings before the payment.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !lambda
        .history(&arn)
        .iter()
        .any(|e| e["EventType"] == "WaitStarted" && e["Name"] == "hold")
    {
        assert!(Instant::now() < deadline, "the saga reaches its hold");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(travel.rows(&trip_id).len(), 3, "three bookings are held");

    let id = arn.rsplit('/').next().expect("the ARN ends with the id");
    let cancelled = lambda.send(
        lambda
            .http
            .post(format!("{}/v1/executions/{id}/cancel", lambda.base))
            .body(r#"{"reason": "the customer changed plans"}"#),
    );
    assert_eq!(
        cancelled.status, 200,
        "the cancel is accepted: {}",
        cancelled.body
    );

    let ex = lambda.wait_ended(&arn);
    assert_eq!(ex["Status"], "FAILED", "{ex}");
    assert_eq!(ex["Error"]["ErrorType"], "SagaCompensated", "{ex}");
    let message = ex["Error"]["ErrorMessage"].as_str().unwrap_or("");
    let report: Value = message
        .strip_prefix("SagaCompensated: ")
        .and_then(|r| serde_json::from_str(r).ok())
        .unwrap_or(Value::Null);
    assert_eq!(report["failed_step"], "hold", "{message}");
    assert!(
        report["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("Sagaflow.Cancelled")),
        "{message}"
    );
    assert_eq!(
        report["compensated"],
        json!(["cancel_car", "cancel_flight", "cancel_hotel"]),
        "{message}"
    );
    let events = lambda.history(&arn);
    assert!(
        events
            .iter()
            .any(|e| e["EventType"] == "WaitCancelled" && e["Name"] == "hold"),
        "the history shows the hold cancelled"
    );
    assert!(
        !events.iter().any(|e| e["Name"] == "take_payment"),
        "no payment is taken"
    );
    let native = lambda.get(&format!("/v1/executions/{id}"));
    assert_eq!(native["status"], "compensated", "{native}");
    assert_eq!(
        common::trip_problems("compensated", &travel.rows(&trip_id)),
        Vec::<String>::new()
    );
}
