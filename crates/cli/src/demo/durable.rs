//! The demo's second half: the same travel saga as **code**, an AWS Lambda
//! durable function (`examples/durable/saga/index.py`, written with AWS's
//! Python SDK) hosted by the demo's server, started and read through the
//! Lambda API as boto3 would.
//!
//! It needs a Python (3.11 or newer) with `aws-durable-execution-sdk-python`
//! and `awslambdaric`; without one the demo says how to get it and skips
//! this part.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::Value;

use crate::functions::LambdaSettings;

/// The orchestrator, written where the demo's server runs it.
const SAGA: &str = include_str!("../../../../examples/durable/saga/index.py");
/// The function's name (the sample's).
pub const FUNCTION: &str = "saga-durable-function";

/// What an input must end as: `None` succeeds, `Some((error,
/// compensations))` fails with that original error after those cancels.
type Expected = Option<(&'static str, &'static [&'static str])>;

/// The four inputs: name, payload, expected end.
const SCENARIOS: &[(&str, &str, Expected)] = &[
    (
        "success",
        include_str!("../../../../examples/durable/inputs/success.json"),
        None,
    ),
    (
        "fail-flight-booking",
        include_str!("../../../../examples/durable/inputs/fail-flight-booking.json"),
        Some((
            "Simulated flight booking failure for testing saga compensation",
            &[],
        )),
    ),
    (
        "fail-hotel-booking",
        include_str!("../../../../examples/durable/inputs/fail-hotel-booking.json"),
        Some((
            "Simulated hotel reservation failure for testing saga compensation",
            &["flight"],
        )),
    ),
    (
        "fail-car-booking",
        include_str!("../../../../examples/durable/inputs/fail-car-booking.json"),
        Some((
            "Simulated car rental failure for testing saga compensation",
            &["hotel", "flight"],
        )),
    ),
];

/// A Python that can run durable functions: `SAGAFLOW_PYTHON`, then
/// `.fnenv/bin/python`; `Err` says what is missing and how to get it.
pub fn python() -> Result<PathBuf, String> {
    let candidates: Vec<PathBuf> = std::env::var_os("SAGAFLOW_PYTHON")
        .map(PathBuf::from)
        .into_iter()
        .chain([PathBuf::from(".fnenv/bin/python")])
        .collect();
    for p in &candidates {
        let ok = std::process::Command::new(p)
            .args([
                "-c",
                "import aws_durable_execution_sdk_python, awslambdaric",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            // Absolute (workers run in their code directory), without
            // resolving links: a venv's python is a link to the base one.
            let cwd = std::env::current_dir().unwrap_or_default();
            return Ok(cwd.join(p));
        }
    }
    Err("no Python with aws-durable-execution-sdk-python and awslambdaric (looked at $SAGAFLOW_PYTHON and .fnenv/bin/python); to run it: python3 -m venv .fnenv && .fnenv/bin/pip install aws-durable-execution-sdk-python awslambdaric".into())
}

/// The `[lambda]` settings that host the saga, its code written to `dir`.
pub fn settings(python: PathBuf, dir: &Path) -> anyhow::Result<LambdaSettings> {
    let code = dir.join("durable-saga");
    std::fs::create_dir_all(&code).with_context(|| format!("creating {}", code.display()))?;
    std::fs::write(code.join("index.py"), SAGA).context("writing the durable saga's code")?;
    let function: sagaflow_functions::FunctionConfig = toml::from_str(&format!(
        "name = \"{FUNCTION}\"\nruntime = \"python\"\ncode = {code:?}\nhandler = \"index.lambda_handler\"\n[durable]\nexecution_timeout_seconds = 600\nretention_days = 1\n",
        code = code.display().to_string()
    ))
    .context("the durable saga's function configuration")?;
    Ok(LambdaSettings {
        python,
        region: "us-east-1".into(),
        account_id: "123456789012".into(),
        log_dir: Some(dir.join("function-logs")),
        functions: vec![function],
    })
}

/// Runs the four inputs through `Invoke` (synchronous) and prints each
/// history as GetDurableExecutionHistory gives it; returns how many did
/// not end as the saga promises.
pub async fn run(base: &str, run: u128) -> anyhow::Result<usize> {
    let http = reqwest::Client::new();
    let mut failures = 0;
    for (name, payload, expected) in SCENARIOS {
        println!("━━ Durable function: {name} ━━");
        let Invoked {
            function_error,
            body,
            history,
            ..
        } = invoke(
            &http,
            base,
            FUNCTION,
            &format!("demo-{run}-{name}"),
            payload,
        )
        .await?;
        for e in history["Events"].as_array().into_iter().flatten() {
            println!(
                "   {:>2} {:<24} {}",
                e["EventId"],
                e["EventType"].as_str().unwrap_or(""),
                e["Name"].as_str().unwrap_or("")
            );
        }
        let problem = check(*expected, function_error, &body);
        match problem {
            None => println!("   ✔ as expected\n"),
            Some(p) => {
                failures += 1;
                println!("   ✘ {p}\n");
            }
        }
    }
    Ok(failures)
}

/// A synchronous `Invoke` of a durable function and what the Lambda API
/// says of the execution afterwards.
pub(super) struct Invoked {
    pub function_error: bool,
    /// The invocation's answer (the result, or the error).
    pub body: Value,
    /// `GetDurableExecution`.
    pub execution: Value,
    /// `GetDurableExecutionHistory`.
    pub history: Value,
}

/// Invokes `function` synchronously as execution `name` with `payload`,
/// then reads the execution and its history.
pub(super) async fn invoke(
    http: &reqwest::Client,
    base: &str,
    function: &str,
    name: &str,
    payload: &str,
) -> anyhow::Result<Invoked> {
    let resp = http
        .post(format!(
            "{base}/2015-03-31/functions/{function}/invocations"
        ))
        .header("X-Amz-Durable-Execution-Name", name)
        .body(payload.to_string())
        .send()
        .await
        .with_context(|| format!("invoking {function}"))?;
    let arn = resp
        .headers()
        .get("x-amz-durable-execution-arn")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let function_error = resp.headers().contains_key("x-amz-function-error");
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    let path = format!("{base}/2025-12-01/durable-executions/{}", enc(&arn));
    let read = |url: String| async {
        let value: Value = http
            .get(url)
            .send()
            .await?
            .json()
            .await
            .unwrap_or(Value::Null);
        anyhow::Ok(value)
    };
    Ok(Invoked {
        function_error,
        body,
        execution: read(path.clone()).await?,
        history: read(format!("{path}/history")).await?,
    })
}

/// What is wrong with an answer, if anything.
fn check(expected: Option<(&str, &[&str])>, function_error: bool, body: &Value) -> Option<String> {
    match expected {
        None if function_error => Some(format!("expected success, got {body}")),
        None if body["success"] != true => Some(format!("expected success: true, got {body}")),
        None => {
            println!("   succeeded: transaction {}", body["transactionId"]);
            None
        }
        Some(_) if !function_error => Some(format!("expected a failure, got {body}")),
        Some((error, cancels)) => {
            let message = body["errorMessage"].as_str().unwrap_or("");
            let details: Value = message
                .split_once("Details: ")
                .and_then(|(_, d)| serde_json::from_str(d).ok())
                .unwrap_or(Value::Null);
            let cancelled: Vec<String> = details["compensations"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c.as_object()?.keys().find(|k| !k.ends_with("Id")).cloned())
                .collect();
            println!(
                "   failed: {} — compensated: {}",
                details["originalError"],
                if cancelled.is_empty() {
                    "nothing".into()
                } else {
                    cancelled.join(" → ")
                }
            );
            if details["originalError"] != error {
                Some(format!("expected the original error {error:?}"))
            } else if cancelled != *cancels {
                Some(format!(
                    "expected compensations {cancels:?}, got {cancelled:?}"
                ))
            } else {
                None
            }
        }
    }
}

/// An ARN as one path segment.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
