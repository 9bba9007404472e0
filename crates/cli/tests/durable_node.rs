//! End to end: a Lambda durable function in JavaScript
//! (`examples/durable-node`: AWS's durable-execution SDK for JavaScript),
//! hosted unchanged by `sagaflow server` as a `provided` runtime whose
//! `bootstrap` runs AWS's Node.js runtime interface client (aws-lambda-ric),
//! and driven with the real AWS SDK for Python (boto3).
//!
//! The checks are in `durable/test_node.py` (a step, a wait, a child context
//! holding a step and a chained invoke of a second durable function, a
//! callback, each execution's result and history), run by the interpreter
//! in `SAGAFLOW_PYTHON` as for `durable.rs`. The function needs its
//! `node_modules`: `SAGAFLOW_NODE_FUNCTION_DIR` names the example directory
//! once `npm ci` has run in it. Without either variable the test says why
//! and passes, unless `CI` is set: then it fails.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{free_port, run, sagaflow, workspace, KeptOnFailure, Proc};

/// `SAGAFLOW_NODE_FUNCTION_DIR` (examples/durable-node after `npm ci`), or
/// `None` after saying why the suite does nothing. Under `CI` its absence
/// fails the test, as `SAGAFLOW_PYTHON`'s does.
fn node_function_dir() -> Option<PathBuf> {
    match std::env::var_os("SAGAFLOW_NODE_FUNCTION_DIR") {
        Some(p) if !p.is_empty() => {
            let dir = PathBuf::from(p);
            assert!(
                dir.join("node_modules/aws-lambda-ric").is_dir()
                    && dir
                        .join("node_modules/@aws/durable-execution-sdk-js")
                        .is_dir(),
                "SAGAFLOW_NODE_FUNCTION_DIR={} has no node_modules with aws-lambda-ric and \
                 @aws/durable-execution-sdk-js: run `npm ci` in it",
                dir.display()
            );
            Some(dir)
        }
        _ => {
            let why = "SAGAFLOW_NODE_FUNCTION_DIR is not set: the Node.js durable function \
                       suite needs examples/durable-node with its node_modules \
                       (`npm ci` in it; see examples/durable-node/README.md)";
            assert!(std::env::var_os("CI").is_none(), "{why}");
            eprintln!("skipped: {why}");
            None
        }
    }
}

/// The server's config: the example's two handlers as `node-order` and
/// `node-doubler`, both `provided`, both durable.
fn write_config(dir: &Path, code: &Path) -> PathBuf {
    let code = common::toml_str(&code.to_string_lossy());
    let mut config = format!(
        r#"listen = "127.0.0.1:{port}"
data_dir = {data}

[lambda]
region = "us-east-1"
account_id = "123456789012"
"#,
        port = free_port(),
        data = common::toml_str(&dir.join("data").to_string_lossy()),
    );
    for (name, handler) in [
        ("node-order", "index.handler"),
        ("node-doubler", "index.doubler"),
    ] {
        config.push_str(&format!(
            r#"
[[lambda.functions]]
name = "{name}"
runtime = "provided"
code = {code}
timeout_seconds = 60
[lambda.functions.environment]
_HANDLER = "{handler}"
[lambda.functions.durable]
execution_timeout_seconds = 3600
retention_days = 1
"#
        ));
    }
    let path = dir.join("sagaflow.toml");
    std::fs::write(&path, config).expect("the config can be written");
    path
}

#[test]
fn a_javascript_durable_function_runs_unchanged_behind_aws_node_runtime_interface_client() {
    let Some(python) = common::durable_python("the Node.js durable function suite") else {
        return;
    };
    let Some(code) = node_function_dir() else {
        return;
    };
    let dir = KeptOnFailure::new();
    let logs = dir.path().join("logs");
    let config = write_config(dir.path(), &code);
    let mut cmd = sagaflow();
    cmd.arg("server").arg("--config").arg(&config);
    let server = Proc::spawn("sagaflow-server", cmd, &logs);

    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).expect("a scratch directory");
    let mut script = common::python_script(
        &python,
        &workspace().join("crates/cli/tests/durable/test_node.py"),
        &work,
    );
    script.env("SAGAFLOW_ENDPOINT", &server.url);
    let out = run(script, Duration::from_secs(300));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "the Node.js durable function checks pass ({}):\n{stdout}\n--- stderr:\n{stderr}\n\
         --- server log tail:\n{}",
        out.status,
        server.log_tail(),
    );

    // The workers' output is in the server's log. What served both handlers
    // is AWS's runtime interface client (this is its first line).
    let log = std::fs::read_to_string(server.log_path()).expect("the server log is readable");
    for handler in ["index.handler", "index.doubler"] {
        assert!(
            log.contains(&format!("Executing '{handler}' in function directory")),
            "aws-lambda-ric served {handler}; the server log:\n{}",
            server.log_tail()
        );
    }
    // Replay: the approved order took four invocations, yet the code of its
    // first step ran once.
    let ran = log.matches("reserving order approved").count();
    assert_eq!(
        ran,
        1,
        "the `reserve` step of the approved order ran once across its invocations; \
         the server log:\n{}",
        server.log_tail()
    );
}
