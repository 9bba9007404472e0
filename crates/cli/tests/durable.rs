//! End to end: the travel saga as a Lambda durable function
//! (`examples/durable/saga`), hosted by `sagaflow server` and driven with the
//! real AWS SDK for Python (boto3) and the AWS CLI, with `travel-services` as
//! the target of its chained invokes.
//!
//! The checks are in `durable/test_durable.py`, run by the interpreter in
//! `SAGAFLOW_PYTHON` (one with boto3, awscli, aws-durable-execution-sdk-python
//! and awslambdaric: it also hosts the functions). Without it the test says
//! why and passes, unless `CI` is set: then it fails.
//!
//! One server serves the whole suite: every scenario runs in one Python
//! process, which prints `ok:`/`FAIL:` per check.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{free_port, run, sagaflow, workspace, KeptOnFailure, Proc, Travel};

/// The server's config: the saga as `saga-durable-function`, the waiter
/// fixture as `durable-waiter`, the saga's targets at the travel services.
fn write_config(dir: &Path, python: &Path, travel_url: &str) -> PathBuf {
    let saga = workspace().join("examples/durable/saga");
    let waiter = workspace().join("crates/cli/tests/durable/fixtures/waiter");
    let config = format!(
        r#"listen = "127.0.0.1:{port}"
data_dir = {data}

[lambda]
python = {python}
region = "us-east-1"
account_id = "123456789012"

[[lambda.functions]]
name = "saga-durable-function"
runtime = "python"
code = {saga}
handler = "index.lambda_handler"
timeout_seconds = 60
[lambda.functions.durable]
execution_timeout_seconds = 3600
retention_days = 30

[[lambda.functions]]
name = "durable-waiter"
runtime = "python"
code = {waiter}
handler = "index.lambda_handler"
timeout_seconds = 60
[lambda.functions.durable]
execution_timeout_seconds = 3600
retention_days = 1

[[resources]]
pattern = "arn:aws:lambda:*:*:function:saga-{{name}}"
target = {target}
"#,
        port = free_port(),
        data = common::toml_str(&dir.join("data").to_string_lossy()),
        python = common::toml_str(&python.to_string_lossy()),
        saga = common::toml_str(&saga.to_string_lossy()),
        waiter = common::toml_str(&waiter.to_string_lossy()),
        target = common::toml_str(&format!("{travel_url}/lambda/saga-{{name}}")),
    );
    let path = dir.join("sagaflow.toml");
    std::fs::write(&path, config).expect("the config can be written");
    path
}

#[test]
fn the_travel_saga_runs_as_a_durable_function_as_the_aws_sdk_and_cli_expect() {
    let Some(python) = common::durable_python("the durable function suite") else {
        return;
    };
    let dir = KeptOnFailure::new();
    let logs = dir.path().join("logs");
    let travel = Travel::start(dir.path(), 0.0, 0);
    let config = write_config(dir.path(), &python, travel.url());
    let mut cmd = sagaflow();
    cmd.arg("server").arg("--config").arg(&config);
    let server = Proc::spawn("sagaflow-server", cmd, &logs);

    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).expect("a scratch directory");
    let mut script = common::python_script(
        &python,
        &workspace().join("crates/cli/tests/durable/test_durable.py"),
        &work,
    );
    script
        .env("SAGAFLOW_ENDPOINT", &server.url)
        .env("TRAVEL_URL", travel.url())
        .env(
            "SAGAFLOW_INPUTS",
            workspace().join("examples/durable/inputs"),
        )
        .env("SAGAFLOW_BIN", common::sagaflow_bin())
        .env("WORK_DIR", &work);
    let out = run(script, Duration::from_secs(900));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "the durable function checks pass ({}):\n{stdout}\n--- stderr:\n{stderr}\n\
         --- server log tail:\n{}\n--- travel-services log tail:\n{}",
        out.status,
        server.log_tail(),
        travel.log_tail()
    );
}
