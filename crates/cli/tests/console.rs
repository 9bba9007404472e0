//! The web console in a real headless Chromium: `sagaflow server` (with an
//! auth token, so the console's sign-in is exercised) and `travel-services`
//! as real processes, the travel saga and two sagas with a callback step
//! deployed, an ASL machine (a Task bound to the travel services' Lambda
//! functions, a Choice, a Parallel, a Map) and a durable function
//! (`console/durable_trip`, hosted by the server), and
//! `console/console_e2e.py` (Playwright for Python) clicking through the
//! console: starting executions with its Start form, reading a compensated
//! saga's graph, watching an execution finish live, answering a callback
//! (success and failure), cancelling, redriving, filtering the list by start
//! time and paging it, the failure explorer's prediction, the ASL machine's
//! frames and Map iterations, the durable function's operation tree and
//! invocations.
//!
//! It needs `SAGAFLOW_PYTHON` (an interpreter with `playwright`) and
//! `SAGAFLOW_CHROMIUM` (a Chromium executable; Playwright's own browsers
//! are never downloaded). Without them the test says why and passes,
//! unless `CI` is set: then it fails. The durable function needs
//! `aws-durable-execution-sdk-python` and `awslambdaric` in the same
//! interpreter (as `.ci/run` installs); without them only its check is
//! skipped, unless `CI` is set. Screenshots go to
//! `target/console-screenshots`.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{run, start_server, workspace, KeptOnFailure, Travel, TRAVEL_SAGA};

/// The token the server requires and the console signs in with.
const TOKEN: &str = "console-e2e-token";

/// A trip that waits for an approval (a callback step, acknowledged by the
/// car reservation) between the hotel and the payment.
const APPROVAL_SAGA: &str = r#"
name: trip-approval
steps:
  - name: reserve_hotel
    action: { http: { url: "${TRAVEL_URL}/hotel/reserve" } }
    compensation: { http: { url: "${TRAVEL_URL}/hotel/cancel" } }
  - name: approve
    callback: true
    timeout: 600s
    action: { http: { url: "${TRAVEL_URL}/car/reserve" } }
    compensation: { http: { url: "${TRAVEL_URL}/car/cancel" } }
  - name: take_payment
    pivot: true
    action: { http: { url: "${TRAVEL_URL}/payment/charge" } }
"#;

/// A payment taken by a callback that must answer within 15 s: a pivot
/// that times out may have taken effect, so the execution ends `failed`
/// (not compensated) and waits for a human to redrive it.
const PIVOT_CALLBACK_SAGA: &str = r#"
name: charge-by-callback
steps:
  - name: reserve_hotel
    action: { http: { url: "${TRAVEL_URL}/hotel/reserve" } }
    compensation: { http: { url: "${TRAVEL_URL}/hotel/cancel" } }
  - name: charge
    pivot: true
    callback: true
    timeout: 15s
    retry: { max_attempts: 1 }
    action: { http: { url: "${TRAVEL_URL}/payment/charge" } }
"#;

/// A Step Functions machine drawn as the AWS console does: a Task (the
/// cdk-patterns sample's hotel reservation, through the resource map), a
/// Choice on its answer, a Parallel of two branches and a Map over the
/// trip's three nights.
const ASL_MACHINE: &str = r#"{
  "Comment": "Reserve a hotel, then prepare the trip in parallel and price each night",
  "StartAt": "ReserveHotel",
  "States": {
    "ReserveHotel": {
      "Type": "Task",
      "Resource": "arn:aws:lambda:us-east-1:123456789012:function:reserveHotelLambdaHandler020AE24A",
      "ResultPath": "$.ReserveHotelResult",
      "Next": "IsReserved"
    },
    "IsReserved": {
      "Type": "Choice",
      "Choices": [
        { "Variable": "$.ReserveHotelResult.status", "StringEquals": "ok", "Next": "Prepare" }
      ],
      "Default": "NotReserved"
    },
    "NotReserved": { "Type": "Fail", "Error": "NotReserved", "Cause": "the hotel was not reserved" },
    "Prepare": {
      "Type": "Parallel",
      "ResultPath": "$.prepared",
      "Next": "PriceNights",
      "Branches": [
        { "StartAt": "Invoice", "States": { "Invoice": { "Type": "Pass", "Result": { "invoice": "INV-1" }, "End": true } } },
        { "StartAt": "Notify", "States": {
            "Notify": { "Type": "Pass", "Result": { "notified": true }, "Next": "Remind" },
            "Remind": { "Type": "Pass", "Result": { "reminder": "the day before" }, "End": true } } }
      ]
    },
    "PriceNights": {
      "Type": "Map",
      "ItemsPath": "$.nights",
      "ResultPath": "$.prices",
      "ItemProcessor": {
        "ProcessorConfig": { "Mode": "INLINE" },
        "StartAt": "PriceNight",
        "States": { "PriceNight": { "Type": "Pass", "Parameters": { "night.$": "$", "price": 150 }, "End": true } }
      },
      "Next": "Booked"
    },
    "Booked": { "Type": "Succeed" }
  }
}"#;

/// The cheapest machine there is: the list's paging is checked on its executions.
const TICK_MACHINE: &str =
    r#"{"StartAt": "Tick", "States": {"Tick": {"Type": "Pass", "End": true}}}"#;

/// The server's config hosting `console/durable_trip` as the durable
/// function `console-trip`.
fn durable_config(dir: &std::path::Path, python: &std::path::Path) -> PathBuf {
    let code = workspace().join("crates/cli/tests/console/durable_trip");
    let config = format!(
        r#"[lambda]
python = {python}
region = "us-east-1"
account_id = "123456789012"

[[lambda.functions]]
name = "console-trip"
runtime = "python"
code = {code}
handler = "index.lambda_handler"
timeout_seconds = 60
[lambda.functions.durable]
execution_timeout_seconds = 600
retention_days = 1
"#,
        python = common::toml_str(&python.to_string_lossy()),
        code = common::toml_str(&code.to_string_lossy()),
    );
    let path = dir.join("sagaflow.toml");
    std::fs::write(&path, config).expect("the config can be written");
    path
}

/// Whether `python` can host a Python durable function (the durable
/// execution SDK and the runtime interface client); if not, says why (and
/// under `CI` fails).
fn hosts_durable_functions(python: &std::path::Path) -> bool {
    let probe = run(
        {
            let mut cmd = common::clean_command(python);
            cmd.args([
                "-c",
                "import aws_durable_execution_sdk_python, awslambdaric",
            ]);
            cmd
        },
        Duration::from_secs(60),
    );
    if probe.status.success() {
        return true;
    }
    let why = format!(
        "{} cannot host a durable function ({}): pip install aws-durable-execution-sdk-python \
         awslambdaric (see .ci/run); the console's durable function check is skipped",
        python.display(),
        String::from_utf8_lossy(&probe.stderr).trim()
    );
    assert!(std::env::var_os("CI").is_none(), "{why}");
    eprintln!("skipped: {why}");
    false
}

/// What the browser suite needs, or `None` after saying why it is skipped
/// (under `CI` a missing piece fails the test instead).
fn browser() -> Option<(PathBuf, PathBuf)> {
    let skip = |why: String| {
        assert!(std::env::var_os("CI").is_none(), "{why}");
        eprintln!("skipped: {why}");
        None
    };
    let python = match std::env::var_os("SAGAFLOW_PYTHON") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => {
            return skip(
                "SAGAFLOW_PYTHON is not set: the console's browser test needs an interpreter \
                 with playwright (see .ci/run)"
                    .to_string(),
            )
        }
    };
    let chromium = match std::env::var_os("SAGAFLOW_CHROMIUM") {
        Some(p) if !p.is_empty() && PathBuf::from(&p).exists() => PathBuf::from(p),
        other => {
            return skip(format!(
                "SAGAFLOW_CHROMIUM is {other:?}, not a Chromium executable: the console's \
                 browser test drives one (Debian: apt-get install chromium; see .ci/run)"
            ))
        }
    };
    let probe = run(
        {
            let mut cmd = common::clean_command(&python);
            cmd.args(["-c", "import playwright.sync_api"]);
            cmd
        },
        Duration::from_secs(60),
    );
    if !probe.status.success() {
        return skip(format!(
            "{} cannot import playwright ({}): pip install playwright (see .ci/run)",
            python.display(),
            String::from_utf8_lossy(&probe.stderr).trim()
        ));
    }
    Some((python, chromium))
}

/// `PUT /v1/definitions/{name}` with the token.
fn deploy(base: &str, name: &str, yaml: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let (status, body) = rt.block_on(async {
        let resp = reqwest::Client::new()
            .put(format!("{base}/v1/definitions/{name}"))
            .bearer_auth(TOKEN)
            .header("content-type", "application/yaml")
            .body(yaml.to_string())
            .send()
            .await
            .expect("the server answers");
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap_or_default())
    });
    assert!(
        (200..300).contains(&status),
        "deploying {name} with the token succeeds: {status} {body}"
    );
}

#[test]
fn the_console_shows_starts_explains_and_repairs_executions_in_a_real_browser() {
    let Some((python, chromium)) = browser() else {
        return;
    };
    let dir = KeptOnFailure::new();
    let travel = Travel::start(dir.path(), 0.0, 0);
    let resource = format!(
        "arn:aws:lambda:*:*:function:{{name}}={}/lambda/{{name}}",
        travel.url()
    );
    let durable = hosts_durable_functions(&python);
    let config = durable.then(|| durable_config(dir.path(), &python));
    let mut args = vec!["--auth-token", TOKEN, "--resource", &resource];
    if let Some(config) = &config {
        args.extend(["--config", config.to_str().expect("a UTF-8 path")]);
    }
    let server = start_server(&dir.path().join("data"), travel.url(), &args);
    deploy(&server.url, "trip-booking", TRAVEL_SAGA);
    deploy(&server.url, "trip-approval", APPROVAL_SAGA);
    deploy(&server.url, "charge-by-callback", PIVOT_CALLBACK_SAGA);
    deploy(&server.url, "hotel-nights", ASL_MACHINE);
    deploy(&server.url, "tick", TICK_MACHINE);

    let screenshots = workspace().join("target/console-screenshots");
    std::fs::create_dir_all(&screenshots).expect("the screenshot folder can be created");
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).expect("a scratch directory");
    let mut script = common::python_script(
        &python,
        &workspace().join("crates/cli/tests/console/console_e2e.py"),
        &work,
    );
    script
        .env("CONSOLE_URL", format!("{}/console/", server.url))
        .env("CONSOLE_TOKEN", TOKEN)
        .env("CONSOLE_CHROMIUM", &chromium)
        .env("CONSOLE_DURABLE", if durable { "console-trip" } else { "" })
        .env("CONSOLE_SCREENSHOTS", &screenshots)
        .env(
            "CONSOLE_TRIP",
            workspace().join("examples/trip-success.json"),
        );
    let out = run(script, Duration::from_secs(600));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "the console's browser checks pass ({}):\n{stdout}\n--- stderr:\n{stderr}\n\
         --- screenshots in {}\n--- server log tail:\n{}\n--- travel-services log tail:\n{}",
        out.status,
        screenshots.display(),
        server.log_tail(),
        travel.log_tail()
    );
}
