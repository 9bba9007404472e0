//! The demo's third part: the travel saga written in **Rust** with
//! `sagaflow-saga` (`durable-rust/saga/examples/travel.rs`, on AWS's Rust
//! durable SDK), hosted by the demo's server as a custom-runtime
//! (`provided`) durable function. Its chained invokes of
//! `travel-SERVICE-ACTION` reach the same travel services as the saga
//! definition, and each run type must end as it does there: the same
//! status, the same compensations in the same order, the same rows.
//!
//! The executable is built in its own workspace (the AWS SDK it pulls in
//! stays out of the main build): `SAGAFLOW_RUST_SAGA`, else
//! `durable-rust/target/{release,debug}/examples/travel`. Without it the
//! demo says how to build it and skips this part.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::{json, Value};

use super::Scenario;
use sagaflow_core::asl::ResourceRule;
use sagaflow_functions::FunctionConfig;

/// The function's name (the one in `durable-rust/saga/examples/sagaflow.toml`).
pub const FUNCTION: &str = "travel-saga-rust";

/// The travel saga's executable, or why there is none.
pub fn executable() -> Result<PathBuf, String> {
    let candidates: Vec<PathBuf> = std::env::var_os("SAGAFLOW_RUST_SAGA")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .into_iter()
        .chain([
            PathBuf::from("durable-rust/target/release/examples/travel"),
            PathBuf::from("durable-rust/target/debug/examples/travel"),
        ])
        .collect();
    match candidates.iter().find(|p| p.is_file()) {
        Some(p) => {
            let cwd = std::env::current_dir().unwrap_or_default();
            Ok(cwd.join(p))
        }
        None => Err("no Rust travel saga executable (looked at $SAGAFLOW_RUST_SAGA and durable-rust/target/{release,debug}/examples/travel); to build it: (cd durable-rust && cargo build -p sagaflow-saga --example travel)".into()),
    }
}

/// The function hosting `exe`.
pub fn function(exe: &Path) -> anyhow::Result<FunctionConfig> {
    let code = exe.parent().context("the executable is in a directory")?;
    let handler = exe.file_name().context("the executable has a name")?;
    toml::from_str(&format!(
        "name = \"{FUNCTION}\"\nruntime = \"provided\"\ncode = {code:?}\nhandler = {handler:?}\n[durable]\nexecution_timeout_seconds = 600\nretention_days = 1\n",
        code = code.display().to_string(),
        handler = handler.to_string_lossy(),
    ))
    .context("the Rust travel saga's function configuration")
}

/// `travel-SERVICE-ACTION` → the travel services' `/SERVICE/ACTION`.
pub fn resource_rules(travel_url: &str) -> Vec<ResourceRule> {
    ["hotel", "flight", "car", "payment"]
        .into_iter()
        .map(|service| ResourceRule {
            pattern: format!("arn:aws:lambda:*:*:function:travel-{service}-{{name}}"),
            target: format!("{travel_url}/{service}/{{name}}"),
        })
        .collect()
}

/// Runs `scenarios` through a synchronous `Invoke` each and checks them as
/// the saga definition's are checked; returns how many did not end as
/// promised.
pub async fn run(
    base: &str,
    run: u128,
    scenarios: &[&Scenario],
    travel_db: &Path,
) -> anyhow::Result<usize> {
    let http = reqwest::Client::new();
    let input: Value =
        serde_json::from_str(include_str!("../../../../examples/trip-success.json"))?;
    let mut failures = 0;
    for (n, sc) in scenarios.iter().enumerate() {
        let trip_id = format!("trip-{run}-rust-{}", n + 1);
        let mut input = input.clone();
        input["trip_id"] = json!(trip_id);
        input["run_type"] = json!(sc.run_type);
        println!("━━ Rust saga: {} — {} ━━", sc.run_type, sc.what);
        let invoked =
            super::durable::invoke(&http, base, FUNCTION, &trip_id, &input.to_string()).await?;
        let (ex, history) = (invoked.execution, invoked.history);
        for e in history["Events"].as_array().into_iter().flatten() {
            let kind = e["EventType"].as_str().unwrap_or("");
            if kind.starts_with("ChainedInvoke") && kind != "ChainedInvokeStarted" {
                println!("   {kind:<24} {}", e["Name"].as_str().unwrap_or(""));
            }
        }
        let (status, compensated) = outcome(&ex);
        let rows = travel_services::trip_rows(travel_db, &trip_id)?;
        println!(
            "   status: {status}   compensations: {}   travel database: {} rows",
            if compensated.is_empty() {
                "none".into()
            } else {
                compensated.join(" → ")
            },
            rows.len()
        );
        let mut problems = Vec::new();
        if status != sc.status {
            problems.push(format!("expected status {}, got {status}", sc.status));
        }
        if compensated != sc.compensated {
            problems.push(format!(
                "expected compensations {:?}, got {compensated:?}",
                sc.compensated
            ));
        }
        problems.extend(super::row_problems(sc, &rows));
        failures += super::report(&problems);
    }
    Ok(failures)
}

/// The saga status and the compensated steps (as the saga definition names
/// them: `reserve_hotel` for `cancel_hotel`) of a described execution: a
/// compensated saga is a FAILED execution whose error is `SagaCompensated`
/// with the saga's report after the prefix.
fn outcome(ex: &Value) -> (String, Vec<String>) {
    match ex["Status"].as_str() {
        Some("SUCCEEDED") => ("succeeded".into(), Vec::new()),
        Some("FAILED") => {
            let message = ex["Error"]["ErrorMessage"].as_str().unwrap_or("");
            let report: Value = message
                .split_once(": ")
                .and_then(|(_, r)| serde_json::from_str(r).ok())
                .unwrap_or(Value::Null);
            let compensated = report["compensated"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(|c| c.replacen("cancel_", "reserve_", 1))
                .collect();
            let status = report["status"].as_str().unwrap_or("failed").to_string();
            (status, compensated)
        }
        other => (other.unwrap_or("?").to_lowercase(), Vec::new()),
    }
}
