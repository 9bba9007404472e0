//! End to end: every durable primitive of the Python SDK, each in a durable
//! function of its own (`durable/fixtures/primitives`), hosted by
//! `sagaflow server` and driven with the real AWS SDK for Python (boto3).
//!
//! The checks are in `durable/test_primitives.py`, run by the interpreter in
//! `SAGAFLOW_PYTHON` (as for `durable.rs`): each checks an execution's
//! result and its history as GetDurableExecutionHistory returns it. Without
//! `SAGAFLOW_PYTHON` the test says why and passes, unless `CI` is set.
//!
//! One server serves the whole suite; one Python process prints
//! `ok:`/`FAIL:` per check.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{free_port, run, sagaflow, workspace, KeptOnFailure, Proc};

/// The durable functions: (name, handler in `index.py`, execution timeout).
const DURABLE: &[(&str, &str, u64)] = &[
    ("prims-step-retries", "step_retries", 3600),
    ("prims-step-exhausted", "step_exhausted", 3600),
    ("prims-at-most-once", "at_most_once", 3600),
    ("prims-wait", "wait_briefly", 3600),
    ("prims-wait-long", "wait_long", 3600),
    // Times out long before its 30 s wait ends.
    ("prims-execution-timeout", "wait_long", 3),
    ("prims-callback", "callback", 3600),
    ("prims-wait-for-callback", "wait_for_callback", 3600),
    ("prims-child-context", "child_context", 3600),
    ("prims-parallel", "parallel", 3600),
    ("prims-map", "map_items", 3600),
    ("prims-wait-for-condition", "wait_for_condition", 3600),
    ("prims-invoker", "invoker", 3600),
    ("prims-doubler", "doubler", 3600),
    ("prims-large-result", "large_result", 3600),
];

/// The server's config: every fixture function, and `prims-plain`, a plain
/// (not durable) function.
fn write_config(dir: &Path, python: &Path, fixture_dir: &Path) -> PathBuf {
    let code = workspace().join("crates/cli/tests/durable/fixtures/primitives");
    let code = common::toml_str(&code.to_string_lossy());
    let env = format!(
        "[lambda.functions.environment]\nFIXTURE_DIR = {}\n",
        common::toml_str(&fixture_dir.to_string_lossy())
    );
    let mut config = format!(
        r#"listen = "127.0.0.1:{port}"
data_dir = {data}

[lambda]
python = {python}
region = "us-east-1"
account_id = "123456789012"

[[lambda.functions]]
name = "prims-plain"
runtime = "python"
code = {code}
handler = "plain.handler"
timeout_seconds = 60
{env}"#,
        port = free_port(),
        data = common::toml_str(&dir.join("data").to_string_lossy()),
        python = common::toml_str(&python.to_string_lossy()),
    );
    for (name, handler, timeout) in DURABLE {
        config.push_str(&format!(
            r#"
[[lambda.functions]]
name = "{name}"
runtime = "python"
code = {code}
handler = "index.{handler}"
timeout_seconds = 60
{env}[lambda.functions.durable]
execution_timeout_seconds = {timeout}
retention_days = 1
"#
        ));
    }
    let path = dir.join("sagaflow.toml");
    std::fs::write(&path, config).expect("the config can be written");
    path
}

#[test]
fn every_durable_primitive_runs_and_records_the_history_aws_records() {
    let Some(python) = common::durable_python("the durable primitives suite") else {
        return;
    };
    let dir = KeptOnFailure::new();
    let logs = dir.path().join("logs");
    let fixture_dir = dir.path().join("fixture");
    std::fs::create_dir_all(&fixture_dir).expect("a fixture directory");
    let config = write_config(dir.path(), &python, &fixture_dir);
    let mut cmd = sagaflow();
    cmd.arg("server").arg("--config").arg(&config);
    let server = Proc::spawn("sagaflow-server", cmd, &logs);

    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).expect("a scratch directory");
    let mut script = common::python_script(
        &python,
        &workspace().join("crates/cli/tests/durable/test_primitives.py"),
        &work,
    );
    script
        .env("SAGAFLOW_ENDPOINT", &server.url)
        .env("FIXTURE_DIR", &fixture_dir);
    let out = run(script, Duration::from_secs(600));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "the durable primitive checks pass ({}):\n{stdout}\n--- stderr:\n{stderr}\n\
         --- server log tail:\n{}",
        out.status,
        server.log_tail(),
    );
}
