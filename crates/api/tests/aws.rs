//! The Step Functions API (AWS JSON 1.0 on `POST /`), exercised over real HTTP.
//!
//! Each test runs an [`Engine`] on a [`SqliteStore`] in a temporary
//! directory, served by [`sagaflow_api::serve`] on 127.0.0.1:0, and sends
//! what an AWS SDK sends: `POST /` with `X-Amz-Target:
//! AWSStepFunctions.<Action>` and a JSON body. Task states reach a small
//! axum participant in the test through the resource map
//! (`arn:aws:lambda:*:*:function:{name}` → `/fn/{name}`), whose functions
//! echo (`echo`), refuse with a business error (`reject`), fail until the
//! test makes them healthy (`flaky`) or hand the task token of a
//! `.waitForTaskToken` task back to the test (`park`).
//!
//! Every error answer is checked for HTTP 400 (403 for a missing credential),
//! `__type` `com.amazonaws.states#<Name>`, a message, the `x-amzn-ErrorType`
//! header and the JSON 1.0 content type, and is followed by a request showing
//! that the server still serves.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use sagaflow_api::ApiConfig;
use sagaflow_core::asl::run::{execution_arn, state_machine_arn};
use sagaflow_core::asl::{ResourceMap, ResourceRule};
use sagaflow_runtime::{Config, Engine, Secret};
use sagaflow_store::sqlite::SqliteStore;
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

/// Deadline of any request or wait (a deadline, never a timing assertion).
const DEADLINE: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------
// State machines
// ---------------------------------------------------------------------------

const PASS: &str = r#"{
  "Comment": "Says hello",
  "StartAt": "Hello",
  "States": { "Hello": { "Type": "Pass", "Result": { "hello": "world" }, "ResultPath": "$.greeting", "End": true } }
}"#;

/// Succeeds when the input says `ok`, fails with `Refused` otherwise.
const CHOOSE: &str = r#"{
  "StartAt": "Check",
  "States": {
    "Check": { "Type": "Choice", "Choices": [ { "Variable": "$.ok", "BooleanEquals": true, "Next": "Yes" } ], "Default": "No" },
    "Yes": { "Type": "Succeed" },
    "No": { "Type": "Fail", "Error": "Refused", "Cause": "not ok" }
  }
}"#;

/// Calls `echo` through the optimized Lambda integration.
const INVOKE: &str = r#"{
  "StartAt": "Echo",
  "States": {
    "Echo": {
      "Type": "Task",
      "Resource": "arn:aws:states:::lambda:invoke",
      "Parameters": { "FunctionName": "echo", "Payload.$": "$" },
      "ResultSelector": { "echoed.$": "$.Payload.echoed" },
      "End": true
    }
  }
}"#;

/// Calls `echo` by its Lambda ARN.
const FUNCTION: &str = r#"{
  "StartAt": "Echo",
  "States": {
    "Echo": { "Type": "Task", "Resource": "arn:aws:lambda:us-east-1:123456789012:function:echo", "End": true }
  }
}"#;

/// Waits for its task token; a `Refused` failure is caught and refunded.
const APPROVAL: &str = r#"{
  "StartAt": "Approve",
  "States": {
    "Approve": {
      "Type": "Task",
      "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
      "Parameters": { "FunctionName": "park", "Payload": { "token.$": "$$.Task.Token", "order.$": "$.order" } },
      "TimeoutSeconds": 120,
      "Catch": [ { "ErrorEquals": ["Refused"], "ResultPath": "$.refusal", "Next": "Refund" } ],
      "Next": "Approved"
    },
    "Approved": { "Type": "Succeed" },
    "Refund": { "Type": "Pass", "Result": "refunded", "ResultPath": "$.outcome", "End": true }
  }
}"#;

/// Waits ten minutes: long enough to be stopped.
const WAIT: &str = r#"{
  "StartAt": "Sleep",
  "States": { "Sleep": { "Type": "Wait", "Seconds": 600, "End": true } }
}"#;

/// Calls `flaky` once: fails while it is down.
const FLAKY: &str = r#"{
  "StartAt": "Call",
  "States": {
    "Call": { "Type": "Task", "Resource": "arn:aws:lambda:us-east-1:123456789012:function:flaky", "End": true }
  }
}"#;

/// A native saga definition, for the mixed cases.
const SAGA: &str = r#"
name: native
steps:
  - name: reserve
    action: { http: { url: "${SVC}/fn/echo" } }
"#;

// ---------------------------------------------------------------------------
// The participant
// ---------------------------------------------------------------------------

struct Svc {
    healthy: AtomicBool,
    calls: Mutex<Vec<String>>,
    /// Bodies received by `park` (they hold the task token).
    parked: mpsc::UnboundedSender<Value>,
}

async fn function(
    State(svc): State<Arc<Svc>>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    svc.calls.lock().unwrap().push(name.clone());
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    match name.as_str() {
        "reject" => (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "Rejected", "cause": "the participant said no"})),
        )
            .into_response(),
        "flaky" if !svc.healthy.load(Ordering::SeqCst) => {
            (StatusCode::SERVICE_UNAVAILABLE, "down for now").into_response()
        }
        "park" => {
            let _ = svc.parked.send(body);
            Json(json!({"acknowledged": true})).into_response()
        }
        _ => Json(json!({"echoed": body})).into_response(),
    }
}

// ---------------------------------------------------------------------------
// The server under test
// ---------------------------------------------------------------------------

struct Aws {
    base: String,
    http: reqwest::Client,
    engine: Engine,
    svc: Arc<Svc>,
    parked: tokio::sync::Mutex<mpsc::UnboundedReceiver<Value>>,
    _stop: oneshot::Sender<()>,
    _dir: tempfile::TempDir,
}

/// An answer: status, headers and JSON body.
#[derive(Debug)]
struct Reply {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl Aws {
    async fn start() -> Aws {
        Aws::with_config(ApiConfig::default()).await
    }

    /// GetActivityTask waits at most a second for a task.
    async fn start_with_short_polls() -> Aws {
        Aws::with_config(ApiConfig {
            max_wait_secs: 1,
            ..ApiConfig::default()
        })
        .await
    }

    async fn with_config(config: ApiConfig) -> Aws {
        // Unbounded: a participant never waits for the test to read what
        // it reports (a test reads only what it needs).
        let (parked_tx, parked) = mpsc::unbounded_channel();
        let svc = Arc::new(Svc {
            healthy: AtomicBool::new(false),
            calls: Mutex::new(Vec::new()),
            parked: parked_tx,
        });
        let svc_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let svc_url = format!("http://{}", svc_listener.local_addr().unwrap());
        let app = Router::new()
            .route("/fn/{name}", post(function))
            .with_state(svc.clone());
        tokio::spawn(async move { axum::serve(svc_listener, app).await });

        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("sagaflow.db")).unwrap();
        let engine = Engine::builder(Arc::new(store))
            .config(Config {
                variables: HashMap::from([("SVC".to_string(), svc_url.clone())]),
                // A secret in the participants' URL: TestState's TRACE
                // shows it as `${SVC_KEY}` unless asked to reveal it.
                secrets: HashMap::from([("SVC_KEY".to_string(), Secret::new("s3cr3t-key"))]),
                resources: ResourceMap {
                    rules: vec![ResourceRule {
                        pattern: "arn:aws:lambda:*:*:function:{name}".into(),
                        target: format!("{svc_url}/fn/{{name}}?key=${{SVC_KEY}}"),
                    }],
                },
                ..Config::default()
            })
            .build();
        engine.start().await.unwrap();

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(sagaflow_api::serve(
            engine.clone(),
            config,
            listener,
            async move {
                let _ = stopped.await;
            },
        ));
        Aws {
            base,
            http: reqwest::Client::new(),
            engine,
            svc,
            parked: tokio::sync::Mutex::new(parked),
            _stop: stop,
            _dir: dir,
        }
    }

    async fn send(&self, rb: reqwest::RequestBuilder) -> Reply {
        let resp = tokio::time::timeout(DEADLINE, rb.send())
            .await
            .expect("request deadline")
            .expect("request failed");
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("reading the body");
        let body = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{status}: the body is not JSON ({e}): {text}"));
        Reply {
            status,
            headers,
            body,
        }
    }

    /// `POST /` as an AWS SDK sends it.
    fn request(&self, action: &str) -> reqwest::RequestBuilder {
        self.http
            .post(format!("{}/", self.base))
            .header("X-Amz-Target", format!("AWSStepFunctions.{action}"))
            .header("Content-Type", "application/x-amz-json-1.0")
    }

    async fn call(&self, action: &str, body: Value) -> Reply {
        self.send(self.request(action).body(body.to_string())).await
    }

    /// An action that must succeed; its answer.
    async fn ok(&self, action: &str, body: Value) -> Value {
        let r = self.call(action, body).await;
        assert_eq!(r.status, StatusCode::OK, "{action}: {}", r.body);
        assert_eq!(
            r.header("content-type"),
            Some("application/x-amz-json-1.0"),
            "{action}"
        );
        assert!(
            r.header("x-amzn-requestid").is_some(),
            "{action}: a request id"
        );
        r.body
    }

    /// Checks an error answer's shape and name, and that the server still
    /// serves; returns its message.
    async fn expect_error(&self, reply: Reply, name: &str) -> String {
        let expected = if name == "MissingAuthenticationTokenException" {
            StatusCode::FORBIDDEN
        } else {
            StatusCode::BAD_REQUEST
        };
        assert_eq!(reply.status, expected, "expected {name}: {}", reply.body);
        assert_eq!(
            reply.body["__type"],
            format!("com.amazonaws.states#{name}"),
            "{}",
            reply.body
        );
        assert_eq!(reply.header("x-amzn-errortype"), Some(name));
        assert_eq!(
            reply.header("content-type"),
            Some("application/x-amz-json-1.0")
        );
        let message = reply.body["message"].as_str().unwrap_or_default();
        assert!(!message.is_empty(), "a message for people: {}", reply.body);
        assert_eq!(
            reply.body.as_object().map(|o| o.len()),
            Some(2),
            "only `__type` and `message`: {}",
            reply.body
        );
        let health = self
            .http
            .get(format!("{}/healthz", self.base))
            .send()
            .await
            .expect("the server still serves");
        assert_eq!(health.status(), StatusCode::OK);
        message.to_string()
    }

    async fn error(&self, action: &str, body: Value, name: &str) -> String {
        let r = self.call(action, body).await;
        self.expect_error(r, name).await
    }

    /// Each `(body, name)`: `action` with `body` is refused with the AWS
    /// error `name`.
    async fn refuses(&self, action: &str, cases: impl IntoIterator<Item = (Value, &str)>) {
        for (body, name) in cases {
            self.error(action, body, name).await;
        }
    }

    /// Creates a state machine that must be valid; returns its ARN.
    async fn create(&self, name: &str, definition: &str) -> String {
        let r = self
            .ok(
                "CreateStateMachine",
                json!({"name": name, "definition": definition, "roleArn": "arn:aws:iam::123456789012:role/x"}),
            )
            .await;
        let arn = r["stateMachineArn"].as_str().expect("an ARN").to_string();
        assert_eq!(arn, state_machine_arn(name));
        assert!(r["creationDate"].is_f64(), "{r}");
        arn
    }

    /// Starts an execution; returns its ARN.
    async fn start_execution(&self, machine: &str, name: &str, input: Value) -> String {
        let r = self
            .ok(
                "StartExecution",
                json!({"stateMachineArn": state_machine_arn(machine), "name": name, "input": input.to_string()}),
            )
            .await;
        assert!(r["startDate"].is_f64(), "{r}");
        r["executionArn"].as_str().expect("an ARN").to_string()
    }

    /// Waits (through the engine) until the execution has finished, then
    /// describes it through the API.
    async fn finished(&self, arn: &str) -> Value {
        let id = arn.rsplit(':').next().unwrap();
        let rec = self.engine.wait(id, DEADLINE).await.expect("wait");
        assert!(rec.status.is_terminal(), "{id} did not finish: {rec:?}");
        self.ok("DescribeExecution", json!({"executionArn": arn}))
            .await
    }

    async fn history(&self, arn: &str) -> Vec<Value> {
        let h = self
            .ok(
                "GetExecutionHistory",
                json!({"executionArn": arn, "maxResults": 1000}),
            )
            .await;
        h["events"].as_array().cloned().unwrap_or_default()
    }

    /// Waits until the execution's history shows its task was submitted:
    /// the participant's acknowledgement is recorded (`task_parked`) after
    /// `park` got the call, and a callback that overtakes it finds the
    /// acknowledgement stale (the task completes without a `TaskSubmitted`).
    async fn submitted(&self, arn: &str) {
        let until = tokio::time::Instant::now() + DEADLINE;
        while !types(&self.history(arn).await).contains(&"TaskSubmitted") {
            assert!(
                tokio::time::Instant::now() < until,
                "{arn}: never submitted"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    /// The body the next `.waitForTaskToken` call handed to `park`.
    async fn next_parked(&self) -> Value {
        tokio::time::timeout(DEADLINE, async { self.parked.lock().await.recv().await })
            .await
            .expect("the task is called")
            .expect("a parked call")
    }
}

fn types(events: &[Value]) -> Vec<&str> {
    events.iter().filter_map(|e| e["type"].as_str()).collect()
}

fn parsed(text: &Value) -> Value {
    serde_json::from_str(text.as_str().expect("a JSON string")).expect("JSON in the string")
}

// ---------------------------------------------------------------------------
// State machines
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_machine_is_created_described_listed_and_deleted() {
    let aws = Aws::start().await;
    let arn = aws.create("hello", PASS).await;
    assert_eq!(
        arn,
        "arn:aws:states:us-east-1:123456789012:stateMachine:hello"
    );

    let d = aws
        .ok("DescribeStateMachine", json!({"stateMachineArn": arn}))
        .await;
    assert_eq!(d["name"], "hello");
    assert_eq!(d["stateMachineArn"], arn);
    assert_eq!(d["status"], "ACTIVE");
    assert_eq!(d["type"], "STANDARD");
    assert_eq!(d["definition"], PASS, "the definition as it was given");
    assert!(d["roleArn"]
        .as_str()
        .is_some_and(|r| r.starts_with("arn:aws:iam::")));
    assert!(d["creationDate"].is_f64());

    aws.create("other", CHOOSE).await;
    let list = aws.ok("ListStateMachines", json!({})).await;
    let names: Vec<_> = list["stateMachines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["hello", "other"]);
    assert_eq!(list["stateMachines"][0]["stateMachineArn"], arn);
    assert_eq!(list["stateMachines"][0]["type"], "STANDARD");
    assert!(list["stateMachines"][0]["creationDate"].is_f64());
    assert!(list.get("nextToken").is_none());

    assert_eq!(
        aws.ok("DeleteStateMachine", json!({"stateMachineArn": arn}))
            .await,
        json!({})
    );
    let message = aws
        .error(
            "DescribeStateMachine",
            json!({"stateMachineArn": arn}),
            "StateMachineDoesNotExist",
        )
        .await;
    assert!(message.contains(&arn), "{message}");
    let list = aws.ok("ListStateMachines", json!({})).await;
    assert_eq!(list["stateMachines"].as_array().unwrap().len(), 1);
    // Deleting is idempotent, as in AWS.
    aws.ok("DeleteStateMachine", json!({"stateMachineArn": arn}))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creating_again_returns_the_same_machine_and_another_definition_is_state_machine_already_exists(
) {
    let aws = Aws::start().await;
    let first = aws
        .ok(
            "CreateStateMachine",
            json!({"name": "hello", "definition": PASS, "roleArn": "r"}),
        )
        .await;
    // The same document, formatted differently: the same machine.
    let compact = serde_json::from_str::<Value>(PASS).unwrap().to_string();
    let again = aws
        .ok(
            "CreateStateMachine",
            json!({"name": "hello", "definition": compact, "roleArn": "r", "type": "EXPRESS"}),
        )
        .await;
    assert_eq!(again, first);

    let message = aws
        .error(
            "CreateStateMachine",
            json!({"name": "hello", "definition": CHOOSE, "roleArn": "r"}),
            "StateMachineAlreadyExists",
        )
        .await;
    assert!(message.contains(&state_machine_arn("hello")), "{message}");

    // A deleted name can be created afresh, with another definition.
    aws.ok(
        "DeleteStateMachine",
        json!({"stateMachineArn": state_machine_arn("hello")}),
    )
    .await;
    aws.create("hello", CHOOSE).await;
    let d = aws
        .ok(
            "DescribeStateMachine",
            json!({"stateMachineArn": state_machine_arn("hello")}),
        )
        .await;
    assert_eq!(d["definition"], CHOOSE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_definition_is_refused_with_every_violation_and_its_location() {
    let aws = Aws::start().await;
    let broken = r#"{
      "StartAt": "First",
      "States": {
        "First": { "Type": "Pass", "Next": "Nowhere" },
        "Second": { "Type": "Teleport", "End": true }
      }
    }"#;
    let message = aws
        .error(
            "CreateStateMachine",
            json!({"name": "broken", "definition": broken, "roleArn": "r"}),
            "InvalidDefinition",
        )
        .await;
    assert!(
        message.starts_with("Invalid State Machine Definition: '"),
        "{message}"
    );
    for location in ["/States/First/Next", "/States/Second/Type"] {
        assert!(message.contains(location), "names {location}: {message}");
    }

    for (definition, hint) in [
        ("{not json", "INVALID_JSON_DESCRIPTION"),
        (r#"{"Comment": "no states"}"#, "StartAt and States"),
        ("name: saga\nsteps: []", "INVALID_JSON_DESCRIPTION"),
    ] {
        let message = aws
            .error(
                "CreateStateMachine",
                json!({"name": "broken", "definition": definition, "roleArn": "r"}),
                "InvalidDefinition",
            )
            .await;
        assert!(message.contains(hint), "{definition}: {message}");
    }
    // Nothing was created.
    let list = aws.ok("ListStateMachines", json!({})).await;
    assert_eq!(list["stateMachines"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_state_machine_definition_reports_the_parsers_violations_as_diagnostics() {
    let aws = Aws::start().await;
    let ok = aws
        .ok(
            "ValidateStateMachineDefinition",
            json!({"definition": PASS, "type": "STANDARD"}),
        )
        .await;
    assert_eq!(
        ok,
        json!({"result": "OK", "diagnostics": [], "truncated": false})
    );

    let broken = r#"{
      "StartAt": "First",
      "States": {
        "First": { "Type": "Pass", "Next": "Nowhere" },
        "Second": { "Type": "Teleport", "End": true }
      }
    }"#;
    let fail = aws
        .ok(
            "ValidateStateMachineDefinition",
            json!({"definition": broken, "severity": "WARNING"}),
        )
        .await;
    assert_eq!(fail["result"], "FAIL", "{fail}");
    assert_eq!(fail["truncated"], false);
    let diagnostics = fail["diagnostics"].as_array().unwrap();
    let locations: Vec<_> = diagnostics
        .iter()
        .map(|d| d["location"].as_str().unwrap())
        .collect();
    for location in ["/States/First/Next", "/States/Second/Type"] {
        assert!(locations.contains(&location), "{location}: {fail}");
    }
    for d in diagnostics {
        assert_eq!(d["severity"], "ERROR", "{d}");
        let code = d["code"].as_str().unwrap();
        assert!(
            !code.is_empty() && code == code.to_uppercase(),
            "an AWS-style code: {d}"
        );
        assert!(!d["message"].as_str().unwrap().is_empty(), "{d}");
    }
    // The same problems CreateStateMachine refuses the document with.
    let message = aws
        .error(
            "CreateStateMachine",
            json!({"name": "broken", "definition": broken, "roleArn": "r"}),
            "InvalidDefinition",
        )
        .await;
    for d in diagnostics {
        let problem = format!(
            "{} at {}",
            d["code"].as_str().unwrap(),
            d["location"].as_str().unwrap()
        );
        assert!(message.contains(&problem), "{problem}: {message}");
    }

    // At most maxResults diagnostics, and `truncated` says some were left out.
    let one = aws
        .ok(
            "ValidateStateMachineDefinition",
            json!({"definition": broken, "maxResults": 1}),
        )
        .await;
    assert_eq!(one["diagnostics"].as_array().unwrap().len(), 1);
    assert_eq!(one["truncated"], true);
    assert_eq!(one["result"], "FAIL");

    for (definition, code) in [
        ("{not json", "INVALID_JSON_DESCRIPTION"),
        (r#"{"Comment": "no states"}"#, "SCHEMA_VALIDATION_FAILED"),
        ("name: saga\nsteps: []", "INVALID_JSON_DESCRIPTION"),
    ] {
        let r = aws
            .ok(
                "ValidateStateMachineDefinition",
                json!({"definition": definition}),
            )
            .await;
        assert_eq!(r["result"], "FAIL", "{definition}: {r}");
        assert_eq!(r["diagnostics"][0]["code"], code, "{definition}: {r}");
        assert_eq!(r["diagnostics"][0]["location"], "/", "{r}");
    }

    for body in [
        json!({}),
        json!({"definition": PASS, "severity": "FATAL"}),
        json!({"definition": PASS, "type": "FAST"}),
        json!({"definition": PASS, "maxResults": 101}),
        json!({"definition": PASS, "maxResults": "ten"}),
        json!({"definition": 7}),
    ] {
        aws.error(
            "ValidateStateMachineDefinition",
            body,
            "ValidationException",
        )
        .await;
    }
    // Validating stores nothing.
    let list = aws.ok("ListStateMachines", json!({})).await;
    assert_eq!(list["stateMachines"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_state_machine_stores_a_new_version_and_executions_keep_theirs() {
    let aws = Aws::start().await;
    let arn = aws.create("hello", PASS).await;
    let d = aws
        .ok("DescribeStateMachine", json!({"stateMachineArn": arn}))
        .await;
    assert_eq!(d["revisionId"], "1");
    let first = aws.start_execution("hello", "before", json!({})).await;
    aws.finished(&first).await;

    let u = aws
        .ok(
            "UpdateStateMachine",
            json!({"stateMachineArn": arn, "definition": CHOOSE}),
        )
        .await;
    assert!(u["updateDate"].is_f64(), "{u}");
    assert_eq!(u["revisionId"], "2");
    assert!(u.get("stateMachineVersionArn").is_none(), "{u}");
    let d = aws
        .ok("DescribeStateMachine", json!({"stateMachineArn": arn}))
        .await;
    assert_eq!(d["definition"], CHOOSE);
    assert_eq!(d["revisionId"], "2");
    // As a PUT of a changed definition: version 2 in the native API too.
    let native: Value = aws
        .http
        .get(format!("{}/v1/definitions/hello", aws.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(native["version"], 2, "{native}");

    // The execution before ran on version 1, the one after on version 2.
    let second = aws
        .start_execution("hello", "after", json!({"ok": true}))
        .await;
    assert_eq!(aws.finished(&second).await["status"], "SUCCEEDED");
    for (execution, definition, revision) in [(&first, PASS, "1"), (&second, CHOOSE, "2")] {
        let f = aws
            .ok(
                "DescribeStateMachineForExecution",
                json!({"executionArn": execution, "includedData": "ALL_DATA"}),
            )
            .await;
        assert_eq!(f["definition"], definition, "{execution}");
        assert_eq!(f["revisionId"], revision, "{execution}");
        assert_eq!(f["stateMachineArn"], arn);
        assert_eq!(f["name"], "hello");
        assert!(f["updateDate"].is_f64());
        assert!(f["roleArn"]
            .as_str()
            .is_some_and(|r| r.starts_with("arn:aws:iam::")));
        assert_eq!(f["loggingConfiguration"]["level"], "OFF");
        assert_eq!(f["tracingConfiguration"]["enabled"], false);
    }

    // The same definition again: no new version. Publishing names the version.
    let same = aws
        .ok(
            "UpdateStateMachine",
            json!({"stateMachineArn": arn, "definition": CHOOSE, "publish": true, "versionDescription": "v2"}),
        )
        .await;
    assert_eq!(same["revisionId"], "2");
    assert_eq!(same["stateMachineVersionArn"], format!("{arn}:2"));
    // A role alone is accepted (and not kept): the revision stays.
    let role = aws
        .ok(
            "UpdateStateMachine",
            json!({"stateMachineArn": arn, "roleArn": "arn:aws:iam::123456789012:role/other"}),
        )
        .await;
    assert_eq!(role["revisionId"], "2");

    // Refusals.
    aws.refuses(
        "UpdateStateMachine",
        [
            (json!({"stateMachineArn": arn}), "MissingRequiredParameter"),
            (
                json!({"stateMachineArn": state_machine_arn("nobody"), "definition": PASS}),
                "StateMachineDoesNotExist",
            ),
            (
                json!({"stateMachineArn": "hello", "definition": PASS}),
                "InvalidArn",
            ),
        ],
    )
    .await;
    let message = aws
        .error(
            "UpdateStateMachine",
            json!({"stateMachineArn": arn, "definition": r#"{"StartAt": "X", "States": {}}"#}),
            "InvalidDefinition",
        )
        .await;
    assert!(message.contains("at /States"), "{message}");
    for body in [
        json!({"stateMachineArn": arn, "definition": PASS, "versionDescription": "no publish"}),
        json!({"stateMachineArn": arn, "definition": PASS, "publish": true, "versionDescription": "x".repeat(257)}),
        json!({"stateMachineArn": arn, "definition": PASS, "publish": "yes"}),
        json!({"stateMachineArn": arn, "loggingConfiguration": "OFF"}),
        json!({"definition": PASS}),
    ] {
        aws.error("UpdateStateMachine", body, "ValidationException")
            .await;
    }
    // Nothing refused changed the machine.
    let d = aws
        .ok("DescribeStateMachine", json!({"stateMachineArn": arn}))
        .await;
    assert_eq!(
        (d["definition"].as_str(), d["revisionId"].as_str()),
        (Some(CHOOSE), Some("2"))
    );

    // A deleted machine's executions still describe the version they ran.
    aws.ok("DeleteStateMachine", json!({"stateMachineArn": arn}))
        .await;
    let f = aws
        .ok(
            "DescribeStateMachineForExecution",
            json!({"executionArn": first}),
        )
        .await;
    assert_eq!(f["definition"], PASS);
    aws.error(
        "UpdateStateMachine",
        json!({"stateMachineArn": arn, "definition": PASS}),
        "StateMachineDoesNotExist",
    )
    .await;
    aws.refuses(
        "DescribeStateMachineForExecution",
        [
            (
                json!({"executionArn": execution_arn("hello", "never")}),
                "ExecutionDoesNotExist",
            ),
            (json!({"executionArn": arn}), "InvalidArn"),
            (
                json!({"executionArn": first, "includedData": "SOME"}),
                "ValidationException",
            ),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_machines_tags_are_kept_listed_removed_bounded_and_deleted_with_it() {
    let aws = Aws::start().await;
    let arn = state_machine_arn("tagged");
    aws.ok(
        "CreateStateMachine",
        json!({"name": "tagged", "definition": PASS, "roleArn": "r", "tags": [{"key": "team", "value": "payments"}]}),
    )
    .await;
    let list = |v: Value| v["tags"].clone();
    assert_eq!(
        list(
            aws.ok("ListTagsForResource", json!({"resourceArn": arn}))
                .await
        ),
        json!([{"key": "team", "value": "payments"}])
    );
    aws.ok(
        "TagResource",
        json!({"resourceArn": arn, "tags": [{"key": "env", "value": "dev"}, {"key": "team", "value": "travel"}, {"key": "empty"}]}),
    )
    .await;
    assert_eq!(
        list(
            aws.ok("ListTagsForResource", json!({"resourceArn": arn}))
                .await
        ),
        json!([{"key": "empty", "value": ""}, {"key": "env", "value": "dev"}, {"key": "team", "value": "travel"}])
    );
    aws.ok(
        "UntagResource",
        json!({"resourceArn": arn, "tagKeys": ["env", "not-there"]}),
    )
    .await;
    // A new version keeps the machine's tags; they are stored, not cached.
    aws.ok(
        "UpdateStateMachine",
        json!({"stateMachineArn": arn, "definition": CHOOSE}),
    )
    .await;
    let tags = aws
        .engine
        .store()
        .definition_tags("tagged")
        .await
        .expect("stored tags");
    assert_eq!(
        tags.into_iter().collect::<Vec<_>>(),
        [
            ("empty".to_string(), String::new()),
            ("team".to_string(), "travel".to_string())
        ]
    );

    // The longest key and value AWS allows.
    let answer = aws
        .ok(
            "TagResource",
            json!({"resourceArn": arn, "tags": [{"key": "k".repeat(128), "value": "v".repeat(256)}]}),
        )
        .await;
    assert_eq!(answer, json!({}));

    // At most 50: 47 more fit, one more does not and changes nothing.
    let more: Vec<Value> = (0..47)
        .map(|i| json!({"key": format!("k{i}"), "value": "v"}))
        .collect();
    aws.ok("TagResource", json!({"resourceArn": arn, "tags": more}))
        .await;
    let message = aws
        .error(
            "TagResource",
            json!({"resourceArn": arn, "tags": [{"key": "one-too-many", "value": "v"}]}),
            "TooManyTags",
        )
        .await;
    assert!(message.contains(&arn), "{message}");
    let listed = aws
        .ok("ListTagsForResource", json!({"resourceArn": arn}))
        .await;
    assert_eq!(listed["tags"].as_array().unwrap().len(), 50);
    // Replacing a value at the limit is fine.
    aws.ok(
        "TagResource",
        json!({"resourceArn": arn, "tags": [{"key": "team", "value": "ops"}]}),
    )
    .await;
    let too_many: Vec<Value> = (0..51)
        .map(|i| json!({"key": format!("n{i}"), "value": "v"}))
        .collect();
    aws.error(
        "CreateStateMachine",
        json!({"name": "crowded", "definition": PASS, "roleArn": "r", "tags": too_many}),
        "TooManyTags",
    )
    .await;

    // AWS's constraints on keys and values.
    for tags in [
        json!([{"key": "", "value": "v"}]),
        json!([{"key": "k".repeat(129), "value": "v"}]),
        json!([{"key": "k", "value": "v".repeat(257)}]),
        json!([{"value": "v"}]),
        json!(["k"]),
        json!({"k": "v"}),
    ] {
        aws.error(
            "TagResource",
            json!({"resourceArn": arn, "tags": tags}),
            "ValidationException",
        )
        .await;
    }
    for body in [
        json!({"resourceArn": arn}),
        json!({"resourceArn": arn, "tagKeys": [""]}),
        json!({"resourceArn": arn, "tagKeys": "team"}),
    ] {
        aws.error("UntagResource", body, "ValidationException")
            .await;
    }
    aws.error("TagResource", json!({"tags": []}), "ValidationException")
        .await;

    // Unknown resources and ARNs that name no taggable resource.
    let nobody = state_machine_arn("nobody");
    let activity = "arn:aws:states:us-east-1:123456789012:activity:review";
    for resource in [nobody.as_str(), activity] {
        aws.error(
            "ListTagsForResource",
            json!({"resourceArn": resource}),
            "ResourceNotFound",
        )
        .await;
        aws.error(
            "TagResource",
            json!({"resourceArn": resource, "tags": [{"key": "a", "value": "b"}]}),
            "ResourceNotFound",
        )
        .await;
        aws.error(
            "UntagResource",
            json!({"resourceArn": resource, "tagKeys": ["a"]}),
            "ResourceNotFound",
        )
        .await;
    }
    for bad in [
        "tagged",
        "arn:aws:states:us-east-1:123456789012:execution:tagged:x",
    ] {
        aws.error(
            "ListTagsForResource",
            json!({"resourceArn": bad}),
            "InvalidArn",
        )
        .await;
    }

    // Deleting the machine deletes its tags: created again, it has none.
    aws.ok("DeleteStateMachine", json!({"stateMachineArn": arn}))
        .await;
    aws.error(
        "ListTagsForResource",
        json!({"resourceArn": arn}),
        "ResourceNotFound",
    )
    .await;
    aws.create("tagged", PASS).await;
    assert_eq!(
        list(
            aws.ok("ListTagsForResource", json!({"resourceArn": arn}))
                .await
        ),
        json!([])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_names_arns_and_types_are_refused() {
    let aws = Aws::start().await;
    aws.create("hello", PASS).await;
    for name in ["has space", "a/b", "", "x".repeat(81).as_str(), "ünï"] {
        aws.error(
            "CreateStateMachine",
            json!({"name": name, "definition": PASS, "roleArn": "r"}),
            "InvalidName",
        )
        .await;
    }
    for name in ["a:b", "a b", "x".repeat(81).as_str()] {
        aws.error(
            "StartExecution",
            json!({"stateMachineArn": state_machine_arn("hello"), "name": name}),
            "InvalidName",
        )
        .await;
    }
    aws.error(
        "CreateStateMachine",
        json!({"name": "t", "definition": PASS, "roleArn": "r", "type": "FAST"}),
        "ValidationException",
    )
    .await;
    for (action, field, arn) in [
        ("DescribeStateMachine", "stateMachineArn", "hello"),
        (
            "DescribeStateMachine",
            "stateMachineArn",
            "arn:aws:states:us-east-1:123456789012:execution:hello:x",
        ),
        (
            "StartExecution",
            "stateMachineArn",
            "arn:aws:states:us-east-1:123456789012:stateMachine:hello:0",
        ),
        ("DeleteStateMachine", "stateMachineArn", "arn:aws:sqs:x"),
        ("ListExecutions", "stateMachineArn", ""),
        (
            "DescribeExecution",
            "executionArn",
            state_machine_arn("hello").as_str(),
        ),
        ("StopExecution", "executionArn", "nope"),
        (
            "GetExecutionHistory",
            "executionArn",
            "arn:aws:states:::execution:hello",
        ),
        ("RedriveExecution", "executionArn", "x"),
    ] {
        let message = aws.error(action, json!({ field: arn }), "InvalidArn").await;
        assert!(message.contains("Invalid Arn"), "{action}: {message}");
    }
}

// ---------------------------------------------------------------------------
// Executions
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_execution_runs_to_success_and_is_described_with_its_input_and_output() {
    let aws = Aws::start().await;
    aws.create("hello", PASS).await;
    let arn = aws
        .start_execution("hello", "first", json!({"who": "me"}))
        .await;
    assert_eq!(arn, execution_arn("hello", "first"));

    let d = aws.finished(&arn).await;
    assert_eq!(d["executionArn"], arn);
    assert_eq!(d["stateMachineArn"], state_machine_arn("hello"));
    assert_eq!(d["name"], "first");
    assert_eq!(d["status"], "SUCCEEDED");
    assert_eq!(parsed(&d["input"]), json!({"who": "me"}));
    assert_eq!(
        parsed(&d["output"]),
        json!({"who": "me", "greeting": {"hello": "world"}})
    );
    assert!(d["startDate"].as_f64().unwrap() <= d["stopDate"].as_f64().unwrap());
    assert!(d.get("error").is_none());
    assert_eq!(d["redriveStatus"], "NOT_REDRIVABLE");

    // Without a name or an input: a generated name, `{}` as the input.
    let r = aws
        .ok(
            "StartExecution",
            json!({"stateMachineArn": state_machine_arn("hello")}),
        )
        .await;
    let d = aws.finished(r["executionArn"].as_str().unwrap()).await;
    assert_eq!(parsed(&d["input"]), json!({}));
    assert!(!d["name"].as_str().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_execution_is_described_with_its_error_and_cause() {
    let aws = Aws::start().await;
    aws.create("choose", CHOOSE).await;
    let arn = aws
        .start_execution("choose", "no", json!({"ok": false}))
        .await;
    let d = aws.finished(&arn).await;
    assert_eq!(d["status"], "FAILED");
    assert_eq!(
        (&d["error"], &d["cause"]),
        (&json!("Refused"), &json!("not ok"))
    );
    assert!(d.get("output").is_none());
    assert!(d["stopDate"].is_f64());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starting_again_with_the_same_name_and_input_returns_the_same_execution_and_another_input_is_execution_already_exists(
) {
    let aws = Aws::start().await;
    aws.create("hello", PASS).await;
    aws.create("other", PASS).await;
    let first = aws
        .ok(
            "StartExecution",
            json!({"stateMachineArn": state_machine_arn("hello"), "name": "once", "input": "{\"a\": 1}"}),
        )
        .await;
    let again = aws
        .ok(
            "StartExecution",
            json!({"stateMachineArn": state_machine_arn("hello"), "name": "once", "input": "{\"a\":1}"}),
        )
        .await;
    assert_eq!(again, first);

    let message = aws
        .error(
            "StartExecution",
            json!({"stateMachineArn": state_machine_arn("hello"), "name": "once", "input": "{\"a\": 2}"}),
            "ExecutionAlreadyExists",
        )
        .await;
    assert!(
        message.contains(&execution_arn("hello", "once")),
        "{message}"
    );
    // Names are unique across machines here.
    aws.error(
        "StartExecution",
        json!({"stateMachineArn": state_machine_arn("other"), "name": "once", "input": "{\"a\": 1}"}),
        "ExecutionAlreadyExists",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_input_that_is_not_json_is_invalid_execution_input() {
    let aws = Aws::start().await;
    aws.create("hello", PASS).await;
    for input in ["{", "not json", ""] {
        aws.error(
            "StartExecution",
            json!({"stateMachineArn": state_machine_arn("hello"), "input": input}),
            "InvalidExecutionInput",
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_or_deleted_machine_starts_nothing_but_its_executions_stay_readable() {
    let aws = Aws::start().await;
    aws.error(
        "StartExecution",
        json!({"stateMachineArn": state_machine_arn("nope")}),
        "StateMachineDoesNotExist",
    )
    .await;
    aws.error(
        "ListExecutions",
        json!({"stateMachineArn": state_machine_arn("nope")}),
        "StateMachineDoesNotExist",
    )
    .await;

    aws.create("hello", PASS).await;
    let arn = aws.start_execution("hello", "kept", json!({})).await;
    aws.finished(&arn).await;
    aws.ok(
        "DeleteStateMachine",
        json!({"stateMachineArn": state_machine_arn("hello")}),
    )
    .await;
    aws.error(
        "StartExecution",
        json!({"stateMachineArn": state_machine_arn("hello"), "name": "after"}),
        "StateMachineDoesNotExist",
    )
    .await;
    let d = aws
        .ok("DescribeExecution", json!({"executionArn": arn}))
        .await;
    assert_eq!(d["status"], "SUCCEEDED");
    let history = aws.history(&arn).await;
    assert_eq!(types(&history).last(), Some(&"ExecutionSucceeded"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_execution_or_one_of_another_machine_is_execution_does_not_exist() {
    let aws = Aws::start().await;
    aws.create("hello", PASS).await;
    aws.create("other", PASS).await;
    let arn = aws.start_execution("hello", "mine", json!({})).await;
    aws.finished(&arn).await;
    for missing in [
        execution_arn("hello", "nope"),
        execution_arn("other", "mine"),
    ] {
        for action in [
            "DescribeExecution",
            "GetExecutionHistory",
            "StopExecution",
            "RedriveExecution",
        ] {
            let message = aws
                .error(
                    action,
                    json!({"executionArn": missing}),
                    "ExecutionDoesNotExist",
                )
                .await;
            assert!(message.contains(&missing), "{action}: {message}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_sync_execution_answers_with_the_outcome() {
    let aws = Aws::start().await;
    aws.create("choose", CHOOSE).await;
    let ok = aws
        .ok(
            "StartSyncExecution",
            json!({"stateMachineArn": state_machine_arn("choose"), "name": "yes", "input": "{\"ok\": true}"}),
        )
        .await;
    assert_eq!(ok["status"], "SUCCEEDED");
    assert_eq!(ok["executionArn"], execution_arn("choose", "yes"));
    assert_eq!(ok["stateMachineArn"], state_machine_arn("choose"));
    assert_eq!(parsed(&ok["output"]), json!({"ok": true}));
    assert_eq!(parsed(&ok["input"]), json!({"ok": true}));
    assert!(ok["startDate"].is_f64() && ok["stopDate"].is_f64());

    let failed = aws
        .ok(
            "StartSyncExecution",
            json!({"stateMachineArn": state_machine_arn("choose"), "input": "{\"ok\": false}"}),
        )
        .await;
    assert_eq!(failed["status"], "FAILED");
    assert_eq!(
        (&failed["error"], &failed["cause"]),
        (&json!("Refused"), &json!("not ok"))
    );
    assert!(failed.get("output").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executions_are_listed_newest_first_filtered_by_status_and_paged() {
    let aws = Aws::start().await;
    aws.create("choose", CHOOSE).await;
    aws.create("other", PASS).await;
    let mut arns = Vec::new();
    for (name, ok) in [("a", true), ("b", false), ("c", true), ("d", true)] {
        let arn = aws
            .start_execution("choose", name, json!({ "ok": ok }))
            .await;
        aws.finished(&arn).await;
        arns.push(arn);
    }
    aws.finished(&aws.start_execution("other", "elsewhere", json!({})).await)
        .await;

    let names = |page: &Value| -> Vec<String> {
        page["executions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap().to_string())
            .collect()
    };
    let all = aws
        .ok(
            "ListExecutions",
            json!({"stateMachineArn": state_machine_arn("choose")}),
        )
        .await;
    assert_eq!(names(&all), ["d", "c", "b", "a"]);
    let first = &all["executions"][0];
    assert_eq!(first["executionArn"], arns[3]);
    assert_eq!(first["stateMachineArn"], state_machine_arn("choose"));
    assert_eq!(first["status"], "SUCCEEDED");
    assert!(first["startDate"].is_f64() && first["stopDate"].is_f64());

    let failed = aws
        .ok(
            "ListExecutions",
            json!({"stateMachineArn": state_machine_arn("choose"), "statusFilter": "FAILED"}),
        )
        .await;
    assert_eq!(names(&failed), ["b"]);
    let running = aws
        .ok(
            "ListExecutions",
            json!({"stateMachineArn": state_machine_arn("choose"), "statusFilter": "RUNNING"}),
        )
        .await;
    assert_eq!(running["executions"], json!([]));

    // Pages of two, following nextToken.
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut req = json!({"stateMachineArn": state_machine_arn("choose"), "statusFilter": "SUCCEEDED", "maxResults": 2});
        if let Some(t) = &token {
            req["nextToken"] = json!(t);
        }
        let page = aws.ok("ListExecutions", req).await;
        assert!(names(&page).len() <= 2);
        seen.extend(names(&page));
        match page["nextToken"].as_str() {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
    }
    assert_eq!(seen, ["d", "c", "a"]);

    aws.refuses(
        "ListExecutions",
        [
            (
                json!({"stateMachineArn": state_machine_arn("choose"), "statusFilter": "DONE"}),
                "ValidationException",
            ),
            (
                json!({"stateMachineArn": state_machine_arn("choose"), "nextToken": "garbage!"}),
                "InvalidToken",
            ),
        ],
    )
    .await;
    for max in [json!(1001), json!(-1), json!("ten")] {
        aws.error(
            "ListExecutions",
            json!({"stateMachineArn": state_machine_arn("choose"), "maxResults": max}),
            "ValidationException",
        )
        .await;
    }
    aws.error("ListExecutions", json!({}), "ValidationException")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_machines_are_paged_by_name() {
    let aws = Aws::start().await;
    for name in ["c", "a", "b"] {
        aws.create(name, PASS).await;
    }
    let first = aws.ok("ListStateMachines", json!({"maxResults": 2})).await;
    let token = first["nextToken"]
        .as_str()
        .expect("a next page")
        .to_string();
    let second = aws
        .ok(
            "ListStateMachines",
            json!({"maxResults": 2, "nextToken": token}),
        )
        .await;
    let names = |page: &Value| -> Vec<String> {
        page["stateMachines"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(&first), ["a", "b"]);
    assert_eq!(names(&second), ["c"]);
    assert!(second.get("nextToken").is_none());
}

// ---------------------------------------------------------------------------
// History
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_history_of_a_task_execution_has_aws_event_types_and_details() {
    let aws = Aws::start().await;
    aws.create("invoke", INVOKE).await;
    let arn = aws.start_execution("invoke", "h", json!({"trip": 7})).await;
    assert_eq!(aws.finished(&arn).await["status"], "SUCCEEDED");

    let events = aws.history(&arn).await;
    assert_eq!(
        types(&events),
        [
            "ExecutionStarted",
            "TaskStateEntered",
            "TaskScheduled",
            "TaskStarted",
            "TaskSucceeded",
            "TaskStateExited",
            "ExecutionSucceeded"
        ]
    );
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e["id"], json!(i + 1));
        assert_eq!(e["previousEventId"], json!(i));
        assert!(e["timestamp"].is_f64(), "{e}");
    }
    let started = &events[0]["executionStartedEventDetails"];
    assert_eq!(parsed(&started["input"]), json!({"trip": 7}));
    assert!(started["roleArn"].is_string());
    let entered = &events[1]["stateEnteredEventDetails"];
    assert_eq!(entered["name"], "Echo");
    assert_eq!(parsed(&entered["input"]), json!({"trip": 7}));
    let scheduled = &events[2]["taskScheduledEventDetails"];
    assert_eq!(scheduled["resourceType"], "lambda");
    assert_eq!(scheduled["resource"], "invoke");
    assert_eq!(scheduled["region"], "us-east-1");
    // The rendered Parameters, as AWS shows them (the participant got the `Payload`).
    let parameters = parsed(&scheduled["parameters"]);
    assert_eq!(parameters["Payload"], json!({"trip": 7}));
    assert!(parameters["FunctionName"].is_string(), "{parameters}");
    assert_eq!(
        events[3]["taskStartedEventDetails"],
        json!({"resourceType": "lambda", "resource": "invoke"})
    );
    let succeeded = &events[4]["taskSucceededEventDetails"];
    // What lambda:invoke returned: the participant's answer under `Payload`.
    let output = parsed(&succeeded["output"]);
    assert_eq!(output["Payload"], json!({"echoed": {"trip": 7}}));
    assert_eq!(output["StatusCode"], 200);
    let exited = &events[5]["stateExitedEventDetails"];
    assert_eq!(exited["name"], "Echo");
    assert_eq!(parsed(&exited["output"]), json!({"echoed": {"trip": 7}}));
    assert_eq!(
        parsed(&events[6]["executionSucceededEventDetails"]["output"]),
        json!({"echoed": {"trip": 7}})
    );
}

/// A JSONata expression that fails shows in the history as AWS shows it:
/// an `EvaluationFailed` event naming the state and the field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_jsonata_expression_is_an_evaluation_failed_event() {
    let aws = Aws::start().await;
    let machine = json!({"QueryLanguage": "JSONata", "StartAt": "Shape", "States": {
        "Shape": {"Type": "Pass", "Output": {"total": "{% $sum($states.input.prices) + 'x' %}"}, "End": true}}});
    aws.create("shape", &machine.to_string()).await;
    let arn = aws
        .start_execution("shape", "bad", json!({"prices": [1, 2]}))
        .await;
    assert_eq!(aws.finished(&arn).await["status"], "FAILED");
    let events = aws.history(&arn).await;
    assert_eq!(
        types(&events),
        [
            "ExecutionStarted",
            "PassStateEntered",
            "EvaluationFailed",
            "ExecutionFailed"
        ]
    );
    let details = &events[2]["evaluationFailedEventDetails"];
    assert_eq!(details["state"], "Shape", "{details}");
    assert_eq!(details["error"], "States.QueryEvaluationError", "{details}");
    assert_eq!(details["location"], "Output/total", "{details}");
    assert!(
        details["cause"]
            .as_str()
            .unwrap()
            .contains("threw an error"),
        "{details}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_history_pages_reverses_and_leaves_out_data_on_request() {
    let aws = Aws::start().await;
    aws.create("invoke", INVOKE).await;
    let arn = aws.start_execution("invoke", "h", json!({"trip": 7})).await;
    aws.finished(&arn).await;
    let all = aws.history(&arn).await;
    assert_eq!(all.len(), 7);

    let mut paged = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut req = json!({"executionArn": arn, "maxResults": 3, "reverseOrder": true});
        if let Some(t) = &token {
            req["nextToken"] = json!(t);
        }
        let page = aws.ok("GetExecutionHistory", req).await;
        paged.extend(page["events"].as_array().unwrap().iter().cloned());
        match page["nextToken"].as_str() {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
    }
    let mut reversed = all.clone();
    reversed.reverse();
    assert_eq!(paged, reversed);

    let bare = aws
        .ok(
            "GetExecutionHistory",
            json!({"executionArn": arn, "includeExecutionData": false}),
        )
        .await;
    let started = &bare["events"][0]["executionStartedEventDetails"];
    assert!(started.get("input").is_none(), "{started}");
    assert!(bare["events"][2]["taskScheduledEventDetails"]
        .get("parameters")
        .is_none());

    aws.refuses(
        "GetExecutionHistory",
        [
            (
                json!({"executionArn": arn, "nextToken": "x"}),
                "InvalidToken",
            ),
            (
                json!({"executionArn": arn, "reverseOrder": "yes"}),
                "ValidationException",
            ),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lambda_function_resource_shows_as_lambda_function_events() {
    let aws = Aws::start().await;
    aws.create("function", FUNCTION).await;
    let arn = aws.start_execution("function", "f", json!({"n": 1})).await;
    assert_eq!(aws.finished(&arn).await["status"], "SUCCEEDED");
    let events = aws.history(&arn).await;
    assert_eq!(
        types(&events),
        [
            "ExecutionStarted",
            "TaskStateEntered",
            "LambdaFunctionScheduled",
            "LambdaFunctionStarted",
            "LambdaFunctionSucceeded",
            "TaskStateExited",
            "ExecutionSucceeded"
        ]
    );
    let scheduled = &events[2]["lambdaFunctionScheduledEventDetails"];
    assert_eq!(
        scheduled["resource"],
        "arn:aws:lambda:us-east-1:123456789012:function:echo"
    );
    assert_eq!(parsed(&scheduled["input"]), json!({"n": 1}));
    assert_eq!(
        parsed(&events[4]["lambdaFunctionSucceededEventDetails"]["output"]),
        json!({"echoed": {"n": 1}})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_history_of_a_saga_format_execution_is_refused_and_names_the_native_route() {
    let aws = Aws::start().await;
    let r = aws
        .http
        .put(format!("{}/v1/definitions/native", aws.base))
        .body(SAGA)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    // Saga definitions are state machines too: listed, described, started.
    let list = aws.ok("ListStateMachines", json!({})).await;
    assert_eq!(list["stateMachines"][0]["name"], "native");
    let arn = aws.start_execution("native", "saga-1", json!({})).await;
    assert_eq!(aws.finished(&arn).await["status"], "SUCCEEDED");
    let message = aws
        .error(
            "GetExecutionHistory",
            json!({"executionArn": arn}),
            "ValidationException",
        )
        .await;
    assert!(
        message.contains("/v1/executions/saga-1/history"),
        "{message}"
    );
    // CreateStateMachine never replaces it.
    aws.error(
        "CreateStateMachine",
        json!({"name": "native", "definition": PASS, "roleArn": "r"}),
        "StateMachineAlreadyExists",
    )
    .await;
}

// ---------------------------------------------------------------------------
// Task tokens
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_for_task_token_task_completes_with_send_task_success() {
    let aws = Aws::start().await;
    aws.create("approval", APPROVAL).await;
    let arn = aws
        .start_execution("approval", "ok", json!({"order": 1}))
        .await;
    let parked = aws.next_parked().await;
    assert_eq!(parked["order"], 1);
    let token = parked["token"].as_str().expect("the token").to_string();
    aws.submitted(&arn).await;

    assert_eq!(
        aws.ok("SendTaskHeartbeat", json!({"taskToken": token}))
            .await,
        json!({})
    );
    let d = aws
        .ok("DescribeExecution", json!({"executionArn": arn}))
        .await;
    assert_eq!(d["status"], "RUNNING");

    assert_eq!(
        aws.ok(
            "SendTaskSuccess",
            json!({"taskToken": token, "output": "{\"approved\": true}"}),
        )
        .await,
        json!({})
    );
    let d = aws.finished(&arn).await;
    assert_eq!(d["status"], "SUCCEEDED");
    assert_eq!(parsed(&d["output"]), json!({"approved": true}));
    let history = aws.history(&arn).await;
    let kinds = types(&history);
    assert!(kinds.contains(&"TaskSubmitted"), "{kinds:?}");
    let submitted = history
        .iter()
        .find(|e| e["type"] == "TaskSubmitted")
        .unwrap();
    assert_eq!(
        submitted["taskSubmittedEventDetails"]["resource"],
        "invoke.waitForTaskToken"
    );

    // The token is spent.
    aws.error(
        "SendTaskSuccess",
        json!({"taskToken": token, "output": "{}"}),
        "TaskTimedOut",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_task_failure_is_caught_by_the_catch() {
    let aws = Aws::start().await;
    aws.create("approval", APPROVAL).await;
    let arn = aws
        .start_execution("approval", "no", json!({"order": 2}))
        .await;
    let token = aws.next_parked().await["token"]
        .as_str()
        .unwrap()
        .to_string();
    aws.ok(
        "SendTaskFailure",
        json!({"taskToken": token, "error": "Refused", "cause": "over budget"}),
    )
    .await;
    let d = aws.finished(&arn).await;
    assert_eq!(d["status"], "SUCCEEDED");
    assert_eq!(
        parsed(&d["output"]),
        json!({"order": 2, "refusal": {"Error": "Refused", "Cause": "over budget"}, "outcome": "refunded"})
    );
    let history = aws.history(&arn).await;
    let failed = history
        .iter()
        .find(|e| e["type"] == "TaskFailed")
        .expect("a TaskFailed event");
    assert_eq!(
        (
            &failed["taskFailedEventDetails"]["error"],
            &failed["taskFailedEventDetails"]["cause"]
        ),
        (&json!("Refused"), &json!("over budget"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_token_errors_have_their_aws_names() {
    let aws = Aws::start().await;
    aws.create("approval", APPROVAL).await;
    aws.start_execution("approval", "t", json!({"order": 3}))
        .await;
    let token = aws.next_parked().await["token"]
        .as_str()
        .unwrap()
        .to_string();

    for garbage in ["nope", "zz.yy", ""] {
        aws.error(
            "SendTaskSuccess",
            json!({"taskToken": garbage, "output": "{}"}),
            "InvalidToken",
        )
        .await;
    }
    let unknown = sagaflow_core::task_token(
        "missing",
        "Approve",
        sagaflow_core::TaskKind::Action,
        1,
        "n0nce",
    );
    for action in ["SendTaskSuccess", "SendTaskFailure", "SendTaskHeartbeat"] {
        aws.error(
            action,
            json!({"taskToken": unknown, "output": "{}"}),
            "TaskDoesNotExist",
        )
        .await;
    }
    aws.refuses(
        "SendTaskSuccess",
        [
            (
                json!({"taskToken": token, "output": "{not json"}),
                "InvalidOutput",
            ),
            (json!({"taskToken": token}), "ValidationException"),
        ],
    )
    .await;
    // None of these touched the task: it still completes.
    aws.ok(
        "SendTaskSuccess",
        json!({"taskToken": token, "output": "{}"}),
    )
    .await;
}

// ---------------------------------------------------------------------------
// Stop and redrive
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_execution_aborts_a_running_execution() {
    let aws = Aws::start().await;
    aws.create("wait", WAIT).await;
    let arn = aws.start_execution("wait", "long", json!({})).await;
    let stopped = aws
        .ok(
            "StopExecution",
            json!({"executionArn": arn, "error": "Operator", "cause": "not needed"}),
        )
        .await;
    assert!(stopped["stopDate"].is_f64(), "{stopped}");
    let d = aws.finished(&arn).await;
    assert_eq!(d["status"], "ABORTED");
    let history = aws.history(&arn).await;
    let last = history.last().unwrap();
    assert_eq!(last["type"], "ExecutionAborted");
    let cause = last["executionAbortedEventDetails"]["cause"]
        .as_str()
        .unwrap_or_default();
    assert!(cause.contains("not needed"), "{last}");

    let aborted = aws
        .ok(
            "ListExecutions",
            json!({"stateMachineArn": state_machine_arn("wait"), "statusFilter": "ABORTED"}),
        )
        .await;
    assert_eq!(aborted["executions"][0]["executionArn"], arn);

    // Stopping a finished execution is refused.
    aws.error(
        "StopExecution",
        json!({"executionArn": arn}),
        "ValidationException",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_execution_is_redriven_to_success() {
    let aws = Aws::start().await;
    aws.create("flaky", FLAKY).await;
    let arn = aws.start_execution("flaky", "r", json!({"n": 1})).await;
    let d = aws.finished(&arn).await;
    assert_eq!(d["status"], "FAILED", "{d}");
    assert_eq!(d["redriveStatus"], "REDRIVABLE");
    assert_eq!(d["redriveCount"], 0);
    assert!(d.get("redriveDate").is_none(), "{d}");

    aws.svc.healthy.store(true, Ordering::SeqCst);
    let r = aws
        .ok("RedriveExecution", json!({"executionArn": arn}))
        .await;
    assert!(r["redriveDate"].is_f64(), "{r}");
    let d = aws.finished(&arn).await;
    assert_eq!(d["status"], "SUCCEEDED", "{d}");
    assert_eq!(parsed(&d["output"]), json!({"echoed": {"n": 1}}));
    assert_eq!(
        aws.svc
            .calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| *c == "flaky")
            .count(),
        2
    );
    let history = aws.history(&arn).await;
    let redriven = history
        .iter()
        .find(|e| e["type"] == "ExecutionRedriven")
        .expect("an ExecutionRedriven event");
    assert_eq!(redriven["executionRedrivenEventDetails"]["redriveCount"], 1);
    let d = aws
        .ok("DescribeExecution", json!({"executionArn": arn}))
        .await;
    assert_eq!(d["redriveCount"], 1);
    assert!(d["redriveDate"].is_f64(), "{d}");
    assert_eq!(d["redriveStatus"], "NOT_REDRIVABLE");
    assert_eq!(
        d["redriveStatusReason"],
        "Execution is SUCCEEDED and cannot be redriven."
    );

    aws.error(
        "RedriveExecution",
        json!({"executionArn": arn}),
        "ExecutionNotRedrivable",
    )
    .await;

    // ListExecutions counts the redrives and filters by them.
    aws.svc.healthy.store(true, Ordering::SeqCst);
    let plain = aws.start_execution("flaky", "plain", json!({"n": 2})).await;
    assert_eq!(aws.finished(&plain).await["status"], "SUCCEEDED");
    let listed = |filter: Option<&str>| {
        let mut body = json!({"stateMachineArn": state_machine_arn("flaky")});
        if let Some(f) = filter {
            body["redriveFilter"] = json!(f);
        }
        body
    };
    let all = aws.ok("ListExecutions", listed(None)).await;
    let counts: Vec<(String, Value)> = all["executions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_string(),
                e["redriveCount"].clone(),
            )
        })
        .collect();
    assert!(counts.contains(&("r".into(), json!(1))), "{all}");
    assert!(counts.contains(&("plain".into(), json!(0))), "{all}");
    let names = |v: &Value| -> Vec<String> {
        v["executions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap().to_string())
            .collect()
    };
    let redriven = aws.ok("ListExecutions", listed(Some("REDRIVEN"))).await;
    assert_eq!(names(&redriven), ["r"]);
    assert!(
        redriven["executions"][0]["redriveDate"].is_f64(),
        "{redriven}"
    );
    assert_eq!(
        names(&aws.ok("ListExecutions", listed(Some("NOT_REDRIVEN"))).await),
        ["plain"]
    );
    aws.error(
        "ListExecutions",
        listed(Some("SOMETIMES")),
        "ValidationException",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aborted_execution_is_redriven_as_step_functions_allows() {
    let aws = Aws::start().await;
    aws.create("wait", WAIT).await;
    let arn = aws.start_execution("wait", "stopped", json!({})).await;
    aws.ok("StopExecution", json!({"executionArn": arn})).await;
    let d = aws.finished(&arn).await;
    assert_eq!(d["status"], "ABORTED");
    assert_eq!(d["redriveStatus"], "REDRIVABLE", "{d}");

    aws.ok("RedriveExecution", json!({"executionArn": arn}))
        .await;
    let d = aws
        .ok("DescribeExecution", json!({"executionArn": arn}))
        .await;
    assert_eq!(d["status"], "RUNNING", "{d}");
    assert_eq!(d["redriveCount"], 1);
    assert_eq!(
        d["redriveStatusReason"],
        "Execution is RUNNING and cannot be redriven."
    );
    let history = aws.history(&arn).await;
    let types: Vec<&str> = history.iter().filter_map(|e| e["type"].as_str()).collect();
    let at = types
        .iter()
        .position(|t| *t == "ExecutionRedriven")
        .expect("an ExecutionRedriven event");
    assert_eq!(types[at - 1], "ExecutionAborted", "{types:?}");
    assert_eq!(types[at + 1], "WaitStateEntered", "{types:?}");
    aws.ok("StopExecution", json!({"executionArn": arn})).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_machine_that_failed_in_a_fail_state_is_described_as_not_redrivable() {
    let aws = Aws::start().await;
    aws.create(
        "fails",
        r#"{"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "No", "Cause": "never"}}}"#,
    )
    .await;
    let arn = aws.start_execution("fails", "f", json!({})).await;
    let d = aws.finished(&arn).await;
    assert_eq!(d["status"], "FAILED");
    assert_eq!(d["redriveStatus"], "NOT_REDRIVABLE");
    let reason = d["redriveStatusReason"].as_str().unwrap_or_default();
    assert!(reason.contains("Fail state"), "{d}");
    aws.error(
        "RedriveExecution",
        json!({"executionArn": arn}),
        "ExecutionNotRedrivable",
    )
    .await;
}

// ---------------------------------------------------------------------------
// The protocol
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_errors_have_the_aws_json_shape_and_never_a_500() {
    let aws = Aws::start().await;

    for target in [
        "AWSStepFunctions.ListMapRunz",
        "AWSStepFunctions.",
        "DynamoDB_20120810.ListTables",
        "",
    ] {
        let r = aws
            .send(
                aws.http
                    .post(format!("{}/", aws.base))
                    .header("X-Amz-Target", target)
                    .body("{}"),
            )
            .await;
        aws.expect_error(r, "UnknownOperationException").await;
    }
    for body in ["{", "[1, 2]", "\"text\"", "null"] {
        let r = aws.send(aws.request("ListStateMachines").body(body)).await;
        aws.expect_error(r, "SerializationException").await;
    }
    // Any content type, and an empty body is `{}`.
    let r = aws
        .send(
            aws.http
                .post(format!("{}/", aws.base))
                .header("X-Amz-Target", "AWSStepFunctions.ListStateMachines")
                .header("Content-Type", "text/plain"),
        )
        .await;
    assert_eq!(
        (r.status, r.body),
        (StatusCode::OK, json!({"stateMachines": []}))
    );

    let message = aws
        .error(
            "CreateStateMachine",
            json!({"definition": PASS}),
            "ValidationException",
        )
        .await;
    assert!(message.contains("'name'"), "{message}");
    aws.error(
        "CreateStateMachine",
        json!({"name": 7, "definition": PASS}),
        "ValidationException",
    )
    .await;
    aws.error("DescribeStateMachine", json!({}), "ValidationException")
        .await;

    let big = "x".repeat(ApiConfig::default().body_limit + 1);
    let r = aws.send(aws.request("ListStateMachines").body(big)).await;
    aws.expect_error(r, "ValidationException").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_without_an_amz_target_is_no_route() {
    let aws = Aws::start().await;
    for method in [reqwest::Method::POST, reqwest::Method::PUT] {
        let r = aws
            .send(aws.http.request(method.clone(), format!("{}/", aws.base)))
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{method}");
        assert_eq!(r.body["error"]["code"], "route_not_found", "{method}");
    }
    // A browser's `GET /` is sent to the console.
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = browser.get(format!("{}/", aws.base)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::PERMANENT_REDIRECT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_tokens_configured_an_aws_client_authenticates_with_its_access_key_id() {
    let aws = Aws::with_config(ApiConfig {
        auth_tokens: ["s3cret".to_string()].into(),
        ..ApiConfig::default()
    })
    .await;
    let signed = |key: &str| {
        format!("AWS4-HMAC-SHA256 Credential={key}/20250101/us-east-1/states/aws4_request, SignedHeaders=host;x-amz-date;x-amz-target, Signature=0123abcd")
    };

    let r = aws
        .send(
            aws.request("ListStateMachines")
                .header("Authorization", signed("s3cret"))
                .body("{}"),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = aws
        .send(
            aws.request("ListStateMachines")
                .header("Authorization", "Bearer s3cret")
                .body("{}"),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);

    for wrong in [
        signed("other"),
        "Bearer other".to_string(),
        "Basic eA==".into(),
    ] {
        let r = aws
            .send(
                aws.request("ListStateMachines")
                    .header("Authorization", wrong)
                    .body("{}"),
            )
            .await;
        aws.expect_error(r, "UnrecognizedClientException").await;
    }
    let r = aws.send(aws.request("ListStateMachines").body("{}")).await;
    aws.expect_error(r, "MissingAuthenticationTokenException")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_points_at_the_endpoint_and_lists_every_action_served() {
    let aws = Aws::start().await;
    let doc: Value = aws
        .http
        .get(format!("{}/openapi.json", aws.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let sfn = &doc["x-step-functions"];
    assert_eq!(sfn["endpoint"], "POST /");
    let actions = sfn["actions"].as_array().expect("actions");
    assert_eq!(actions.len(), 37);
    for action in actions {
        let action = action.as_str().unwrap();
        // Served: whatever an empty request gets, it is not an unknown operation.
        let r = aws.call(action, json!({})).await;
        assert_ne!(
            r.body["__type"], "com.amazonaws.states#UnknownOperationException",
            "{action}"
        );
        assert!(r.status.as_u16() < 500, "{action}: {} {}", r.status, r.body);
    }
}

/// Doubles nothing, but fans out: a Map over the items, then a Parallel.
const FAN_OUT: &str = r#"{
  "StartAt": "Each",
  "States": {
    "Each": {
      "Type": "Map",
      "ItemsPath": "$.items",
      "ItemProcessor": { "StartAt": "Item", "States": { "Item": { "Type": "Pass", "End": true } } },
      "ResultPath": "$.mapped",
      "Next": "Both"
    },
    "Both": {
      "Type": "Parallel",
      "Branches": [
        { "StartAt": "Left", "States": { "Left": { "Type": "Pass", "Result": "l", "End": true } } },
        { "StartAt": "Right", "States": { "Right": { "Type": "Pass", "Result": "r", "End": true } } }
      ],
      "End": true
    }
  }
}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn map_and_parallel_states_show_their_aws_events_and_details() {
    let aws = Aws::start().await;
    aws.create("fan-out", FAN_OUT).await;
    let arn = aws
        .start_execution("fan-out", "f", json!({"items": [10, 20]}))
        .await;
    let d = aws.finished(&arn).await;
    assert_eq!(d["status"], "SUCCEEDED", "{d}");
    assert_eq!(parsed(&d["output"]), json!(["l", "r"]));

    let events = aws.history(&arn).await;
    let kinds = types(&events);
    for expected in [
        "MapStateEntered",
        "MapStateStarted",
        "MapIterationStarted",
        "MapIterationSucceeded",
        "MapStateSucceeded",
        "MapStateExited",
        "ParallelStateEntered",
        "ParallelStateStarted",
        "ParallelStateSucceeded",
        "ParallelStateExited",
    ] {
        assert!(kinds.contains(&expected), "{expected} in {kinds:?}");
    }
    let started = events
        .iter()
        .find(|e| e["type"] == "MapStateStarted")
        .unwrap();
    assert_eq!(started["mapStateStartedEventDetails"], json!({"length": 2}));
    let iterations: Vec<_> = events
        .iter()
        .filter(|e| e["type"] == "MapIterationStarted")
        .map(|e| e["mapIterationStartedEventDetails"].clone())
        .collect();
    assert_eq!(
        iterations,
        [
            json!({"name": "Each", "index": 0}),
            json!({"name": "Each", "index": 1})
        ]
    );
    let ids: Vec<_> = events.iter().map(|e| e["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, (1..=events.len() as u64).collect::<Vec<_>>());
}

// ---------------------------------------------------------------------------
// The native API takes ASL too
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_native_api_deploys_runs_and_refuses_asl_machines() {
    let aws = Aws::start().await;
    let put = aws
        .http
        .put(format!("{}/v1/definitions/native-invoke", aws.base))
        .body(INVOKE)
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 201);
    let body: Value = put.json().await.unwrap();
    assert_eq!(body["format"], "asl");

    let started = aws
        .http
        .post(format!("{}/v1/executions?wait=30", aws.base))
        .json(&json!({"definition": "native-invoke", "input": {"trip": 1}}))
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 201);
    let ex: Value = started.json().await.unwrap();
    assert_eq!(ex["status"], "succeeded", "{ex}");
    assert_eq!(ex["output"], json!({"echoed": {"trip": 1}}));

    // The same machine is a Step Functions state machine.
    let described = aws
        .call(
            "DescribeStateMachine",
            json!({"stateMachineArn": state_machine_arn("native-invoke")}),
        )
        .await;
    assert_eq!(described.status, 200, "{:?}", described.body);

    let broken = aws
        .http
        .put(format!("{}/v1/definitions/broken", aws.base))
        .body(r#"{"StartAt": "Nope", "States": {"A": {"Type": "Pass", "Next": "Gone"}}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(broken.status(), 400);
    let err: Value = broken.json().await.unwrap();
    assert_eq!(err["error"]["code"], "invalid_definition");
    let locations: Vec<&str> = err["error"]["details"]["violations"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["location"].as_str())
        .collect();
    assert!(locations.contains(&"/StartAt"), "{locations:?}");
    assert!(locations.contains(&"/States/A/Next"), "{locations:?}");
}

// ---------------------------------------------------------------------------
// Versions and aliases
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_are_published_listed_described_started_and_deleted() {
    let aws = Aws::start().await;
    let created = aws
        .ok(
            "CreateStateMachine",
            json!({"name": "ver", "definition": PASS, "roleArn": "arn:aws:iam::123456789012:role/x", "publish": true, "versionDescription": "first"}),
        )
        .await;
    let arn = state_machine_arn("ver");
    let (v1, v2) = (format!("{arn}:1"), format!("{arn}:2"));
    assert_eq!(created["stateMachineVersionArn"], v1);
    aws.ok(
        "UpdateStateMachine",
        json!({"stateMachineArn": arn, "definition": CHOOSE}),
    )
    .await;
    let listed = aws
        .ok("ListStateMachineVersions", json!({"stateMachineArn": arn}))
        .await;
    assert_eq!(listed["stateMachineVersions"].as_array().unwrap().len(), 1);
    assert_eq!(
        listed["stateMachineVersions"][0]["stateMachineVersionArn"],
        v1
    );

    // revisionId must be the current revision.
    let message = aws
        .error(
            "PublishStateMachineVersion",
            json!({"stateMachineArn": arn, "revisionId": "1"}),
            "ConflictException",
        )
        .await;
    assert!(message.contains("revision is 2"), "{message}");
    let p = aws
        .ok(
            "PublishStateMachineVersion",
            json!({"stateMachineArn": arn, "revisionId": "2", "description": "second"}),
        )
        .await;
    assert_eq!(p["stateMachineVersionArn"], v2);
    assert!(p["creationDate"].is_f64(), "{p}");
    // Again: the same version, as published.
    let again = aws
        .ok(
            "PublishStateMachineVersion",
            json!({"stateMachineArn": arn}),
        )
        .await;
    assert_eq!(again, p);

    // Newest first, paged.
    let first = aws
        .ok(
            "ListStateMachineVersions",
            json!({"stateMachineArn": arn, "maxResults": 1}),
        )
        .await;
    assert_eq!(
        first["stateMachineVersions"][0]["stateMachineVersionArn"],
        v2
    );
    let token = first["nextToken"]
        .as_str()
        .expect("a next page")
        .to_string();
    let second = aws
        .ok(
            "ListStateMachineVersions",
            json!({"stateMachineArn": arn, "maxResults": 1, "nextToken": token}),
        )
        .await;
    assert_eq!(
        second["stateMachineVersions"][0]["stateMachineVersionArn"],
        v1
    );
    assert!(second.get("nextToken").is_none(), "{second}");
    aws.error(
        "ListStateMachineVersions",
        json!({"stateMachineArn": arn, "nextToken": "nope"}),
        "InvalidToken",
    )
    .await;

    // A version describes its own definition, revision and description.
    for (version, definition, revision, description) in
        [(&v1, PASS, "1", "first"), (&v2, CHOOSE, "2", "second")]
    {
        let d = aws
            .ok("DescribeStateMachine", json!({"stateMachineArn": version}))
            .await;
        assert_eq!(d["stateMachineArn"], *version);
        assert_eq!(d["name"], "ver");
        assert_eq!(d["definition"], definition);
        assert_eq!(d["revisionId"], revision);
        assert_eq!(d["description"], description);
        assert_eq!(d["status"], "ACTIVE");
    }
    aws.error(
        "DescribeStateMachine",
        json!({"stateMachineArn": format!("{arn}:3")}),
        "StateMachineDoesNotExist",
    )
    .await;

    // Started by its ARN, an execution runs that version and says so.
    let run = aws
        .ok(
            "StartExecution",
            json!({"stateMachineArn": v1, "name": "on-v1", "input": "{\"ok\": false}"}),
        )
        .await;
    let run = run["executionArn"].as_str().unwrap().to_string();
    assert_eq!(run, execution_arn("ver", "on-v1"));
    let d = aws.finished(&run).await;
    assert_eq!(d["status"], "SUCCEEDED", "{d}");
    assert_eq!(d["stateMachineArn"], arn);
    assert_eq!(d["stateMachineVersionArn"], v1);
    assert!(d.get("stateMachineAliasArn").is_none(), "{d}");
    let f = aws
        .ok(
            "DescribeStateMachineForExecution",
            json!({"executionArn": run}),
        )
        .await;
    assert_eq!(f["revisionId"], "1");
    // Unqualified: the latest revision (CHOOSE refuses `ok: false`), no version.
    let latest = aws
        .start_execution("ver", "on-latest", json!({"ok": false}))
        .await;
    let d = aws.finished(&latest).await;
    assert_eq!(d["status"], "FAILED", "{d}");
    assert!(d.get("stateMachineVersionArn").is_none(), "{d}");
    aws.error(
        "StartExecution",
        json!({"stateMachineArn": format!("{arn}:3")}),
        "StateMachineDoesNotExist",
    )
    .await;

    // Deleting a version unpublishes it (idempotent); its executions stay.
    for _ in 0..2 {
        aws.ok(
            "DeleteStateMachineVersion",
            json!({"stateMachineVersionArn": v1}),
        )
        .await;
    }
    let listed = aws
        .ok("ListStateMachineVersions", json!({"stateMachineArn": arn}))
        .await;
    assert_eq!(listed["stateMachineVersions"].as_array().unwrap().len(), 1);
    aws.error(
        "StartExecution",
        json!({"stateMachineArn": v1}),
        "StateMachineDoesNotExist",
    )
    .await;
    aws.error(
        "DescribeStateMachine",
        json!({"stateMachineArn": v1}),
        "StateMachineDoesNotExist",
    )
    .await;
    assert_eq!(aws.finished(&run).await["stateMachineVersionArn"], v1);

    // Refusals.
    aws.error(
        "DeleteStateMachineVersion",
        json!({"stateMachineVersionArn": arn}),
        "InvalidArn",
    )
    .await;
    aws.refuses(
        "PublishStateMachineVersion",
        [
            (
                json!({"stateMachineArn": state_machine_arn("nobody")}),
                "StateMachineDoesNotExist",
            ),
            (
                json!({"stateMachineArn": arn, "description": "x".repeat(257)}),
                "ValidationException",
            ),
        ],
    )
    .await;
    aws.error(
        "ListStateMachineVersions",
        json!({"stateMachineArn": state_machine_arn("nobody")}),
        "StateMachineDoesNotExist",
    )
    .await;
    aws.error(
        "CreateStateMachine",
        json!({"name": "unpublished", "definition": PASS, "roleArn": "arn:aws:iam::1:role/x", "versionDescription": "d"}),
        "ValidationException",
    )
    .await;

    // Deleting the machine deletes its versions.
    aws.ok("DeleteStateMachine", json!({"stateMachineArn": arn}))
        .await;
    aws.error(
        "DescribeStateMachine",
        json!({"stateMachineArn": v2}),
        "StateMachineDoesNotExist",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aliases_route_executions_to_their_versions_by_weight() {
    let aws = Aws::start().await;
    let arn = state_machine_arn("routed");
    aws.ok(
        "CreateStateMachine",
        json!({"name": "routed", "definition": PASS, "roleArn": "arn:aws:iam::1:role/x", "publish": true}),
    )
    .await;
    aws.ok(
        "UpdateStateMachine",
        json!({"stateMachineArn": arn, "definition": CHOOSE, "publish": true}),
    )
    .await;
    let (v1, v2) = (format!("{arn}:1"), format!("{arn}:2"));
    let half = json!([
        {"stateMachineVersionArn": v1, "weight": 50},
        {"stateMachineVersionArn": v2, "weight": 50},
    ]);
    let created = aws
        .ok(
            "CreateStateMachineAlias",
            json!({"name": "prod", "description": "live", "routingConfiguration": half}),
        )
        .await;
    let prod = format!("{arn}:prod");
    assert_eq!(created["stateMachineAliasArn"], prod);
    // The same alias again is the existing one; another is a conflict.
    let again = aws
        .ok(
            "CreateStateMachineAlias",
            json!({"name": "prod", "description": "live", "routingConfiguration": half}),
        )
        .await;
    assert_eq!(again, created);
    aws.error(
        "CreateStateMachineAlias",
        json!({"name": "prod", "routingConfiguration": [{"stateMachineVersionArn": v1, "weight": 100}]}),
        "ConflictException",
    )
    .await;
    let d = aws
        .ok(
            "DescribeStateMachineAlias",
            json!({"stateMachineAliasArn": prod}),
        )
        .await;
    assert_eq!(d["name"], "prod");
    assert_eq!(d["description"], "live");
    assert_eq!(d["routingConfiguration"], half);
    assert_eq!(d["creationDate"], created["creationDate"]);
    assert!(d["updateDate"].is_f64(), "{d}");

    // Each execution runs the version drawn for it, and records it: with
    // 40 draws at 50/50 both versions run (all alike: 2^-39).
    let mut seen = std::collections::BTreeSet::new();
    for i in 0..40 {
        let r = aws
            .ok(
                "StartExecution",
                json!({"stateMachineArn": prod, "name": format!("a{i}"), "input": "{\"ok\": true}"}),
            )
            .await;
        let e = r["executionArn"].as_str().unwrap().to_string();
        let d = aws.finished(&e).await;
        assert_eq!(d["status"], "SUCCEEDED", "{d}");
        assert_eq!(d["stateMachineAliasArn"], prod);
        let version = d["stateMachineVersionArn"].as_str().unwrap().to_string();
        let f = aws
            .ok(
                "DescribeStateMachineForExecution",
                json!({"executionArn": e}),
            )
            .await;
        // PASS (version 1) adds a greeting, CHOOSE (version 2) does not.
        let output: Value = serde_json::from_str(d["output"].as_str().unwrap()).unwrap();
        if version == v1 {
            assert_eq!(
                (f["revisionId"].as_str(), f["definition"].as_str()),
                (Some("1"), Some(PASS))
            );
            assert!(output.get("greeting").is_some(), "{output}");
        } else {
            assert_eq!(version, v2);
            assert_eq!(
                (f["revisionId"].as_str(), f["definition"].as_str()),
                (Some("2"), Some(CHOOSE))
            );
            assert!(output.get("greeting").is_none(), "{output}");
        }
        seen.insert(version);
    }
    assert_eq!(seen.len(), 2, "{seen:?}");

    // A routed version cannot be deleted.
    let message = aws
        .error(
            "DeleteStateMachineVersion",
            json!({"stateMachineVersionArn": v2}),
            "ConflictException",
        )
        .await;
    assert!(message.contains(&prod), "{message}");

    // Updated to version 2 alone, every execution runs version 2.
    let u = aws
        .ok(
            "UpdateStateMachineAlias",
            json!({"stateMachineAliasArn": prod, "routingConfiguration": [{"stateMachineVersionArn": v2, "weight": 100}]}),
        )
        .await;
    assert!(u["updateDate"].is_f64(), "{u}");
    let d = aws
        .ok(
            "DescribeStateMachineAlias",
            json!({"stateMachineAliasArn": prod}),
        )
        .await;
    assert_eq!(d["description"], "live");
    assert_eq!(d["routingConfiguration"][0]["stateMachineVersionArn"], v2);
    for i in 0..3 {
        let r = aws
            .ok(
                "StartExecution",
                json!({"stateMachineArn": prod, "name": format!("b{i}"), "input": "{\"ok\": true}"}),
            )
            .await;
        let d = aws.finished(r["executionArn"].as_str().unwrap()).await;
        assert_eq!(d["stateMachineVersionArn"], v2);
    }

    // Listed by name, paged.
    aws.ok(
        "CreateStateMachineAlias",
        json!({"name": "beta", "routingConfiguration": [{"stateMachineVersionArn": v1, "weight": 100}]}),
    )
    .await;
    let page = aws
        .ok(
            "ListStateMachineAliases",
            json!({"stateMachineArn": arn, "maxResults": 1}),
        )
        .await;
    assert_eq!(
        page["stateMachineAliases"][0]["stateMachineAliasArn"],
        format!("{arn}:beta")
    );
    let next = aws
        .ok(
            "ListStateMachineAliases",
            json!({"stateMachineArn": arn, "nextToken": page["nextToken"]}),
        )
        .await;
    assert_eq!(next["stateMachineAliases"][0]["stateMachineAliasArn"], prod);
    assert!(next.get("nextToken").is_none(), "{next}");

    // Refusals.
    for (body, name) in [
        (
            json!({"name": "x", "routingConfiguration": [{"stateMachineVersionArn": v1, "weight": 60}]}),
            "ValidationException",
        ),
        (
            json!({"name": "x", "routingConfiguration": []}),
            "ValidationException",
        ),
        (
            json!({"name": "x", "routingConfiguration": [
            {"stateMachineVersionArn": v1, "weight": 50}, {"stateMachineVersionArn": v1, "weight": 50}]}),
            "ValidationException",
        ),
        (
            json!({"name": "x", "routingConfiguration": [{"stateMachineVersionArn": v1, "weight": 101}]}),
            "ValidationException",
        ),
        (json!({"name": "x"}), "ValidationException"),
        (
            json!({"name": "x", "routingConfiguration": [{"stateMachineVersionArn": arn, "weight": 100}]}),
            "InvalidArn",
        ),
        (
            json!({"name": "123", "routingConfiguration": [{"stateMachineVersionArn": v1, "weight": 100}]}),
            "InvalidName",
        ),
        (
            json!({"name": "x", "routingConfiguration": [{"stateMachineVersionArn": format!("{arn}:7"), "weight": 100}]}),
            "ResourceNotFound",
        ),
    ] {
        aws.error("CreateStateMachineAlias", body, name).await;
    }
    aws.error(
        "UpdateStateMachineAlias",
        json!({"stateMachineAliasArn": prod}),
        "ValidationException",
    )
    .await;
    aws.refuses(
        "UpdateStateMachineAlias",
        [
            (json!({"stateMachineAliasArn": prod, "routingConfiguration": [{"stateMachineVersionArn": format!("{}:1", state_machine_arn("other")), "weight": 100}]}), "ValidationException"),
            (json!({"stateMachineAliasArn": format!("{arn}:nope"), "description": "d"}), "ResourceNotFound"),
        ],
    )
    .await;
    aws.error(
        "DescribeStateMachineAlias",
        json!({"stateMachineAliasArn": v1}),
        "InvalidArn",
    )
    .await;

    // Deleted, an alias starts nothing; its versions can be deleted then.
    aws.ok(
        "DeleteStateMachineAlias",
        json!({"stateMachineAliasArn": prod}),
    )
    .await;
    aws.error(
        "DeleteStateMachineAlias",
        json!({"stateMachineAliasArn": prod}),
        "ResourceNotFound",
    )
    .await;
    aws.error(
        "DescribeStateMachineAlias",
        json!({"stateMachineAliasArn": prod}),
        "ResourceNotFound",
    )
    .await;
    aws.error(
        "StartExecution",
        json!({"stateMachineArn": prod}),
        "StateMachineDoesNotExist",
    )
    .await;
    aws.ok(
        "DeleteStateMachineVersion",
        json!({"stateMachineVersionArn": v2}),
    )
    .await;
    // Executions started through it still describe it.
    let d = aws
        .ok(
            "DescribeExecution",
            json!({"executionArn": execution_arn("routed", "b0")}),
        )
        .await;
    assert_eq!(d["stateMachineAliasArn"], prod);

    // Deleting the machine deletes its aliases.
    aws.ok("DeleteStateMachine", json!({"stateMachineArn": arn}))
        .await;
    aws.error(
        "ListStateMachineAliases",
        json!({"stateMachineArn": arn}),
        "StateMachineDoesNotExist",
    )
    .await;
    aws.error(
        "DescribeStateMachineAlias",
        json!({"stateMachineAliasArn": format!("{arn}:beta")}),
        "ResourceNotFound",
    )
    .await;
}

// ---------------------------------------------------------------------------
// Activities
// ---------------------------------------------------------------------------

const ACTIVITY_ARN: &str = "arn:aws:states:us-east-1:123456789012:activity:review";

/// Sends its Parameters to the `review` activity; a `Refused` failure is
/// caught.
const REVIEW: &str = r#"{
  "StartAt": "Review",
  "States": {
    "Review": {
      "Type": "Task",
      "Resource": "arn:aws:states:us-east-1:123456789012:activity:review",
      "InputPath": "$.doc",
      "Parameters": { "title.$": "$.title", "pages": 3 },
      "TimeoutSeconds": 300,
      "Catch": [ { "ErrorEquals": ["Refused"], "ResultPath": "$.refusal", "Next": "Rejected" } ],
      "ResultPath": "$.review",
      "End": true
    },
    "Rejected": { "Type": "Pass", "Result": "rejected", "ResultPath": "$.outcome", "End": true }
  }
}"#;

/// A review that must hear a heartbeat every second.
const HEARTBEAT_REVIEW: &str = r#"{
  "StartAt": "Review",
  "States": {
    "Review": {
      "Type": "Task",
      "Resource": "arn:aws:states:us-east-1:123456789012:activity:review",
      "HeartbeatSeconds": 1,
      "TimeoutSeconds": 300,
      "End": true
    }
  }
}"#;

impl Aws {
    /// GetActivityTask for `review` until it hands a task out.
    async fn poll_review(&self, worker: &str) -> Value {
        let until = tokio::time::Instant::now() + DEADLINE;
        loop {
            let task = self
                .ok(
                    "GetActivityTask",
                    json!({"activityArn": ACTIVITY_ARN, "workerName": worker}),
                )
                .await;
            if task.get("taskToken").is_some() {
                return task;
            }
            assert!(tokio::time::Instant::now() < until, "no task handed out");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activities_are_created_described_listed_tagged_and_deleted() {
    let aws = Aws::start().await;
    let created = aws
        .ok(
            "CreateActivity",
            json!({"name": "review", "tags": [{"key": "team", "value": "legal"}]}),
        )
        .await;
    assert_eq!(created["activityArn"], ACTIVITY_ARN);
    assert!(created["creationDate"].is_f64(), "{created}");
    // Idempotent: the same activity again.
    assert_eq!(
        aws.ok("CreateActivity", json!({"name": "review"})).await,
        created
    );
    let d = aws
        .ok("DescribeActivity", json!({"activityArn": ACTIVITY_ARN}))
        .await;
    assert_eq!(
        (&d["activityArn"], &d["name"], &d["creationDate"]),
        (
            &json!(ACTIVITY_ARN),
            &json!("review"),
            &created["creationDate"]
        )
    );
    for name in ["approve", "audit"] {
        aws.ok("CreateActivity", json!({"name": name})).await;
    }
    // Listed by name, paged.
    let first = aws.ok("ListActivities", json!({"maxResults": 2})).await;
    let names = |page: &Value| -> Vec<String> {
        page["activities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(&first), ["approve", "audit"]);
    let rest = aws
        .ok(
            "ListActivities",
            json!({"maxResults": 2, "nextToken": first["nextToken"]}),
        )
        .await;
    assert_eq!(names(&rest), ["review"]);
    assert!(rest.get("nextToken").is_none(), "{rest}");
    aws.error(
        "ListActivities",
        json!({"nextToken": "not ours"}),
        "InvalidToken",
    )
    .await;

    // Tags through the tag actions.
    let tags = aws
        .ok("ListTagsForResource", json!({"resourceArn": ACTIVITY_ARN}))
        .await;
    assert_eq!(tags["tags"], json!([{"key": "team", "value": "legal"}]));
    aws.ok(
        "TagResource",
        json!({"resourceArn": ACTIVITY_ARN, "tags": [{"key": "env", "value": "prod"}]}),
    )
    .await;
    aws.ok(
        "UntagResource",
        json!({"resourceArn": ACTIVITY_ARN, "tagKeys": ["team"]}),
    )
    .await;
    let tags = aws
        .ok("ListTagsForResource", json!({"resourceArn": ACTIVITY_ARN}))
        .await;
    assert_eq!(tags["tags"], json!([{"key": "env", "value": "prod"}]));

    // Refusals.
    for name in ["with space", "a:b", "", &"x".repeat(81)] {
        aws.error("CreateActivity", json!({"name": name}), "InvalidName")
            .await;
    }
    let many: Vec<Value> = (0..51)
        .map(|i| json!({"key": format!("k{i}"), "value": ""}))
        .collect();
    aws.error(
        "CreateActivity",
        json!({"name": "crowded", "tags": many}),
        "TooManyTags",
    )
    .await;
    for action in ["DescribeActivity", "DeleteActivity", "GetActivityTask"] {
        aws.error(
            action,
            json!({"activityArn": state_machine_arn("review")}),
            "InvalidArn",
        )
        .await;
    }
    let nobody = "arn:aws:states:us-east-1:123456789012:activity:nobody";
    for action in ["DescribeActivity", "GetActivityTask"] {
        aws.error(
            action,
            json!({"activityArn": nobody}),
            "ActivityDoesNotExist",
        )
        .await;
    }

    // Deleting is idempotent; a deleted activity is gone.
    aws.ok("DeleteActivity", json!({"activityArn": ACTIVITY_ARN}))
        .await;
    aws.ok("DeleteActivity", json!({"activityArn": ACTIVITY_ARN}))
        .await;
    aws.error(
        "DescribeActivity",
        json!({"activityArn": ACTIVITY_ARN}),
        "ActivityDoesNotExist",
    )
    .await;
    assert_eq!(
        names(&aws.ok("ListActivities", json!({})).await),
        ["approve", "audit"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_activity_task_is_polled_once_and_answered_end_to_end() {
    let aws = Aws::start_with_short_polls().await;
    aws.ok("CreateActivity", json!({"name": "review"})).await;
    // Nothing waits: the poll answers empty once its wait is over.
    assert_eq!(
        aws.ok("GetActivityTask", json!({"activityArn": ACTIVITY_ARN}))
            .await,
        json!({})
    );
    aws.create("reviews", REVIEW).await;
    let arn = aws
        .start_execution(
            "reviews",
            "good",
            json!({"doc": {"title": "Terms"}, "id": 7}),
        )
        .await;
    let task = aws.poll_review("w1").await;
    // The state's effective input, after InputPath and Parameters.
    assert_eq!(
        parsed(&task["input"]),
        json!({"title": "Terms", "pages": 3})
    );
    let token = task["taskToken"].as_str().unwrap().to_string();
    // Handed to one worker only.
    assert_eq!(
        aws.ok("GetActivityTask", json!({"activityArn": ACTIVITY_ARN}))
            .await,
        json!({})
    );
    assert_eq!(
        aws.ok("SendTaskHeartbeat", json!({"taskToken": token}))
            .await,
        json!({})
    );
    aws.ok(
        "SendTaskSuccess",
        json!({"taskToken": token, "output": "{\"approved\": true}"}),
    )
    .await;
    let d = aws.finished(&arn).await;
    assert_eq!(d["status"], "SUCCEEDED");
    assert_eq!(
        parsed(&d["output"]),
        json!({"doc": {"title": "Terms"}, "id": 7, "review": {"approved": true}})
    );
    aws.error(
        "SendTaskSuccess",
        json!({"taskToken": token, "output": "{}"}),
        "TaskTimedOut",
    )
    .await;
    // Answered, its record of being taken goes (the actor drops it after
    // recording the answer): the store takes a claim of that token again.
    let claim = sagaflow_store::ActivityTaskClaim {
        token: token.clone(),
        execution_id: "good".into(),
        worker: "check".into(),
        claimed_at: 1,
        expires_at: u64::MAX,
    };
    let until = tokio::time::Instant::now() + DEADLINE;
    while !aws
        .engine
        .store()
        .claim_activity_task(&claim)
        .await
        .expect("claim")
    {
        assert!(tokio::time::Instant::now() < until, "the claim stays");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A failure sent by the worker goes to the Catch.
    let arn = aws
        .start_execution("reviews", "bad", json!({"doc": {"title": "Spam"}}))
        .await;
    let token = aws.poll_review("w2").await["taskToken"]
        .as_str()
        .unwrap()
        .to_string();
    aws.ok(
        "SendTaskFailure",
        json!({"taskToken": token, "error": "Refused", "cause": "spam"}),
    )
    .await;
    let d = aws.finished(&arn).await;
    assert_eq!(d["status"], "SUCCEEDED");
    assert_eq!(parsed(&d["output"])["outcome"], "rejected");
    assert_eq!(
        parsed(&d["output"])["refusal"],
        json!({"Error": "Refused", "Cause": "spam"})
    );

    // A task of an activity that does not exist fails (States.TaskFailed).
    aws.ok("DeleteActivity", json!({"activityArn": ACTIVITY_ARN}))
        .await;
    let arn = aws
        .start_execution("reviews", "orphan", json!({"doc": {"title": "x"}}))
        .await;
    let d = aws.finished(&arn).await;
    assert_eq!(d["status"], "FAILED");
    assert_eq!(d["error"], "States.TaskFailed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_activity_task_without_heartbeats_times_out_with_states_heartbeat_timeout() {
    let aws = Aws::start_with_short_polls().await;
    aws.ok("CreateActivity", json!({"name": "review"})).await;
    aws.create("beats", HEARTBEAT_REVIEW).await;
    let arn = aws
        .start_execution("beats", "silent", json!({"n": 1}))
        .await;
    let token = aws.poll_review("quiet").await["taskToken"]
        .as_str()
        .unwrap()
        .to_string();
    // The worker never beats: the task fails.
    let d = aws.finished(&arn).await;
    assert_eq!(d["status"], "FAILED");
    assert_eq!(d["error"], "States.HeartbeatTimeout");
    aws.error(
        "SendTaskSuccess",
        json!({"taskToken": token, "output": "{}"}),
        "TaskTimedOut",
    )
    .await;
}

// ---------------------------------------------------------------------------
// TestState
// ---------------------------------------------------------------------------

impl Aws {
    async fn test_state(&self, body: Value) -> Value {
        self.ok("TestState", body).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_state_runs_pass_wait_succeed_and_fail_states_in_both_languages() {
    let aws = Aws::start().await;
    // JSONPath Pass, DEBUG: every step of the data flow.
    let pass = json!({"Type": "Pass", "InputPath": "$.a", "Parameters": {"x.$": "$.b"},
                      "ResultPath": "$.out", "Next": "After"});
    let r = aws
        .test_state(
            json!({"definition": pass.to_string(), "input": r#"{"a": {"b": 7}}"#,
                           "inspectionLevel": "DEBUG"}),
        )
        .await;
    assert_eq!(r["status"], "SUCCEEDED", "{r}");
    assert_eq!(r["nextState"], "After");
    assert_eq!(
        parsed(&r["output"]),
        json!({"a": {"b": 7}, "out": {"x": 7}})
    );
    let d = &r["inspectionData"];
    assert_eq!(parsed(&d["input"]), json!({"a": {"b": 7}}));
    assert_eq!(parsed(&d["afterInputPath"]), json!({"b": 7}));
    assert_eq!(parsed(&d["afterParameters"]), json!({"x": 7}));
    assert_eq!(parsed(&d["result"]), json!({"x": 7}));
    assert_eq!(
        parsed(&d["afterResultPath"]),
        json!({"a": {"b": 7}, "out": {"x": 7}})
    );
    // INFO: no inspection data; End: no next state.
    let r = aws
        .test_state(json!({"definition": r#"{"Type": "Pass", "Result": 1, "End": true}"#}))
        .await;
    assert_eq!(r["status"], "SUCCEEDED");
    assert_eq!(parsed(&r["output"]), json!(1));
    assert!(
        r.get("nextState").is_none() && r.get("inspectionData").is_none(),
        "{r}"
    );

    // JSONata Pass with variables in and Assign out.
    let jsonata = json!({"Type": "Pass", "QueryLanguage": "JSONata",
        "Output": "{% $states.input.n + $base %}", "Assign": {"seen": "{% $base * 2 %}"}, "Next": "N"});
    let r = aws
        .test_state(
            json!({"definition": jsonata.to_string(), "input": r#"{"n": 1}"#,
                           "variables": r#"{"base": 10}"#, "inspectionLevel": "DEBUG"}),
        )
        .await;
    assert_eq!(r["status"], "SUCCEEDED", "{r}");
    assert_eq!(parsed(&r["output"]), json!(11));
    assert_eq!(r["nextState"], "N");
    assert_eq!(
        parsed(&r["inspectionData"]["variables"]),
        json!({"base": 10, "seen": 20})
    );
    // A JSONata state of a JSONata machine, by stateName.
    let machine = json!({"QueryLanguage": "JSONata", "StartAt": "A", "States": {
        "A": {"Type": "Pass", "Output": "{% $states.input.v & '!' %}", "Next": "B"},
        "B": {"Type": "Succeed"}}});
    let r = aws
        .test_state(json!({"definition": machine.to_string(), "stateName": "A",
                           "input": r#"{"v": "hi"}"#}))
        .await;
    assert_eq!(parsed(&r["output"]), json!("hi!"), "{r}");
    assert_eq!(r["nextState"], "B");

    // Wait does not wait.
    let started = std::time::Instant::now();
    let r = aws
        .test_state(
            json!({"definition": r#"{"Type": "Wait", "Seconds": 3600, "Next": "Later"}"#,
                           "input": "{\"k\": 1}"}),
        )
        .await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(r["status"], "SUCCEEDED");
    assert_eq!(r["nextState"], "Later");
    assert_eq!(parsed(&r["output"]), json!({"k": 1}));

    let r = aws
        .test_state(
            json!({"definition": r#"{"Type": "Succeed", "OutputPath": "$.k"}"#,
                           "input": "{\"k\": 2}"}),
        )
        .await;
    assert_eq!(
        (r["status"].as_str(), parsed(&r["output"])),
        (Some("SUCCEEDED"), json!(2))
    );

    let r = aws
        .test_state(
            json!({"definition": r#"{"Type": "Fail", "Error": "Bad", "Cause": "because"}"#}),
        )
        .await;
    assert_eq!(r["status"], "FAILED");
    assert_eq!(
        (r["error"].as_str(), r["cause"].as_str()),
        (Some("Bad"), Some("because"))
    );
    assert!(
        r.get("output").is_none() && r.get("nextState").is_none(),
        "{r}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_state_choice_goes_to_the_matching_rule_or_fails() {
    let aws = Aws::start().await;
    let choice = json!({"Type": "Choice", "Choices": [
        {"Variable": "$.n", "NumericGreaterThan": 10, "Next": "Big"},
        {"Variable": "$.n", "NumericLessThan": 0, "Next": "Negative"}],
        "Default": "Small"});
    for (n, next) in [(50, "Big"), (-1, "Negative"), (3, "Small")] {
        let r = aws
            .test_state(
                json!({"definition": choice.to_string(), "input": json!({"n": n}).to_string()}),
            )
            .await;
        assert_eq!(r["status"], "SUCCEEDED", "{r}");
        assert_eq!(r["nextState"], next, "{n}");
    }
    // JSONata Condition; a Choice that loops back to itself.
    let loop_choice = json!({"Type": "Choice", "QueryLanguage": "JSONata", "Choices": [
        {"Condition": "{% $states.input.again %}", "Next": "TestState"}], "Default": "Done"});
    let r = aws
        .test_state(json!({"definition": loop_choice.to_string(), "input": r#"{"again": true}"#}))
        .await;
    assert_eq!(r["nextState"], "TestState", "{r}");
    // No rule and no Default.
    let strict = json!({"Type": "Choice", "Choices": [
        {"Variable": "$.n", "NumericEquals": 1, "Next": "One"}]});
    let r = aws
        .test_state(json!({"definition": strict.to_string(), "input": r#"{"n": 2}"#}))
        .await;
    assert_eq!(r["status"], "FAILED");
    assert_eq!(r["error"], "States.NoChoiceMatched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_state_calls_a_task_or_its_mock_and_reports_retry_and_catch() {
    let aws = Aws::start().await;
    let echo = json!({"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:123456789012:function:echo",
        "Parameters": {"v.$": "$.v"}, "ResultSelector": {"got.$": "$.echoed.v"},
        "ResultPath": "$.r", "Next": "After"});
    let r = aws
        .test_state(
            json!({"definition": echo.to_string(), "input": r#"{"v": 5}"#,
                           "inspectionLevel": "DEBUG"}),
        )
        .await;
    assert_eq!(r["status"], "SUCCEEDED", "{r}");
    assert_eq!(parsed(&r["output"]), json!({"v": 5, "r": {"got": 5}}));
    let d = &r["inspectionData"];
    assert_eq!(parsed(&d["afterParameters"]), json!({"v": 5}));
    assert_eq!(parsed(&d["result"]), json!({"echoed": {"v": 5}}));
    assert_eq!(parsed(&d["afterResultSelector"]), json!({"got": 5}));
    assert_eq!(
        parsed(&d["afterResultPath"]),
        json!({"v": 5, "r": {"got": 5}})
    );
    assert_eq!(
        aws.svc.calls.lock().unwrap().clone(),
        vec!["echo".to_string()]
    );

    // TRACE: the participant's HTTP exchange, its secret shown by name
    // unless revealed.
    let traced = |reveal: bool| {
        json!({"definition": echo.to_string(), "input": r#"{"v": 5}"#,
            "inspectionLevel": "TRACE", "revealSecrets": reveal})
    };
    let r = aws.test_state(traced(false)).await;
    let request = &r["inspectionData"]["request"];
    assert_eq!(
        (&request["protocol"], &request["method"]),
        (&json!("http"), &json!("POST")),
        "{r}"
    );
    let url = request["url"].as_str().unwrap();
    assert!(url.ends_with("/fn/echo?key=${SVC_KEY}"), "{url}");
    assert_eq!(parsed(&request["body"]), json!({"v": 5}));
    assert!(
        request["headers"]
            .as_str()
            .unwrap()
            .contains("idempotency-key: "),
        "{request}"
    );
    let response = &r["inspectionData"]["response"];
    assert_eq!(
        (&response["statusCode"], &response["statusMessage"]),
        (&json!("200"), &json!("OK")),
        "{r}"
    );
    assert_eq!(parsed(&response["body"]), json!({"echoed": {"v": 5}}));
    assert_eq!(
        parsed(&r["inspectionData"]["afterResultSelector"]),
        json!({"got": 5}),
        "TRACE has DEBUG's data too"
    );
    let r = aws.test_state(traced(true)).await;
    let url = r["inspectionData"]["request"]["url"].as_str().unwrap();
    assert!(url.ends_with("/fn/echo?key=s3cr3t-key"), "{url}");
    let r = aws
        .test_state(
            json!({"definition": echo.to_string(), "input": r#"{"v": 5}"#,
            "inspectionLevel": "DEBUG"}),
        )
        .await;
    assert!(r["inspectionData"].get("request").is_none(), "DEBUG: {r}");

    // A JSONata task with Arguments.
    let args = json!({"Type": "Task", "QueryLanguage": "JSONata",
        "Resource": "arn:aws:lambda:us-east-1:123456789012:function:echo",
        "Arguments": {"w": "{% $states.input.v * 2 %}"}, "Output": "{% $states.result.echoed.w %}", "End": true});
    let r = aws
        .test_state(
            json!({"definition": args.to_string(), "input": r#"{"v": 4}"#,
                           "inspectionLevel": "DEBUG"}),
        )
        .await;
    assert_eq!(parsed(&r["output"]), json!(8), "{r}");
    assert_eq!(
        parsed(&r["inspectionData"]["afterArguments"]),
        json!({"w": 8})
    );

    // A participant's error with a matching retrier: RETRIABLE, not retried.
    let reject = json!({"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:123456789012:function:reject",
        "Retry": [{"ErrorEquals": ["Other"]}, {"ErrorEquals": ["Rejected"], "IntervalSeconds": 2, "MaxAttempts": 2}],
        "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Handle"}], "End": true});
    let r = aws
        .test_state(json!({"definition": reject.to_string(), "inspectionLevel": "DEBUG"}))
        .await;
    assert_eq!(r["status"], "RETRIABLE", "{r}");
    assert_eq!(r["error"], "Rejected");
    assert_eq!(r["cause"], "the participant said no");
    assert_eq!(
        r["inspectionData"]["errorDetails"],
        json!({"retryIndex": 1, "retryBackoffIntervalSeconds": 2})
    );
    let rejects = || {
        aws.svc
            .calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| *c == "reject")
            .count()
    };
    assert_eq!(rejects(), 1);
    // Its retries spent: the catcher.
    let r = aws
        .test_state(
            json!({"definition": reject.to_string(), "inspectionLevel": "DEBUG",
                           "stateConfiguration": {"retrierRetryCount": 2}}),
        )
        .await;
    assert_eq!(r["status"], "CAUGHT_ERROR", "{r}");
    assert_eq!(r["nextState"], "Handle");
    assert_eq!(r["error"], "Rejected");
    assert_eq!(
        r["inspectionData"]["errorDetails"],
        json!({"catchIndex": 0})
    );
    assert_eq!(parsed(&r["output"])["Error"], "Rejected");
    assert_eq!(rejects(), 2, "one call per test");

    // A mocked task calls nobody, whatever its resource.
    let mocked = json!({"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
        "Parameters": {"FunctionName": "nowhere", "Payload": {"token.$": "$$.Task.Token"}},
        "Catch": [{"ErrorEquals": ["Boom"], "ResultPath": "$.err", "Next": "Recover"}], "Next": "Go"});
    let r = aws
        .test_state(json!({"definition": mocked.to_string(), "input": "{}",
                           "mock": {"result": r#"{"ok": true}"#}}))
        .await;
    assert_eq!(
        (r["status"].as_str(), r["nextState"].as_str()),
        (Some("SUCCEEDED"), Some("Go")),
        "{r}"
    );
    assert_eq!(parsed(&r["output"]), json!({"ok": true}));
    let r = aws
        .test_state(json!({"definition": mocked.to_string(), "input": "{}",
                           "mock": {"errorOutput": {"error": "Boom", "cause": "mocked"}}}))
        .await;
    assert_eq!(r["status"], "CAUGHT_ERROR", "{r}");
    assert_eq!(r["nextState"], "Recover");
    assert_eq!(
        parsed(&r["output"])["err"],
        json!({"Error": "Boom", "Cause": "mocked"})
    );
    // Uncaught: FAILED.
    let r = aws
        .test_state(json!({"definition": mocked.to_string(),
                           "mock": {"errorOutput": {"error": "Other", "cause": "c"}}}))
        .await;
    assert_eq!(
        (r["status"].as_str(), r["error"].as_str()),
        (Some("FAILED"), Some("Other")),
        "{r}"
    );
}

/// AWS's TestState runs a Parallel or Map only with a mock: its result
/// stands for the branches' or items', and the state's data flow, Retry
/// and Catch apply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_state_runs_a_mocked_map_or_parallel_through_its_data_flow_and_catch() {
    let aws = Aws::start().await;
    let map = json!({"Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": 2,
        "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}},
        "ResultSelector": {"count.$": "States.ArrayLength($)"}, "ResultPath": "$.done", "End": true});
    let r = aws
        .test_state(
            json!({"definition": map.to_string(), "input": r#"{"items": [1, 2, 3]}"#,
            "mock": {"result": "[10, 20, 30]"}}),
        )
        .await;
    assert_eq!(r["status"], "SUCCEEDED", "{r}");
    assert_eq!(
        parsed(&r["output"]),
        json!({"items": [1, 2, 3], "done": {"count": 3}})
    );

    let parallel = json!({"Type": "Parallel",
        "Branches": [{"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}],
        "Catch": [{"ErrorEquals": ["Branch.Failed"], "ResultPath": "$.error", "Next": "Undo"}],
        "Next": "Done"});
    let r = aws
        .test_state(json!({"definition": parallel.to_string(), "input": "{}",
            "mock": {"errorOutput": {"error": "Branch.Failed", "cause": "the car"}}}))
        .await;
    assert_eq!(r["status"], "CAUGHT_ERROR", "{r}");
    assert_eq!(r["nextState"], "Undo", "{r}");
    assert_eq!(
        parsed(&r["output"]),
        json!({"error": {"Error": "Branch.Failed", "Cause": "the car"}})
    );
    assert!(aws.svc.calls.lock().unwrap().is_empty());
}

/// A mocked Map at DEBUG shows what it would start, as AWS's TestState
/// does: the items its `ItemsPath` selects, each one's `ItemSelector`
/// input, the batches and its limits; `mapIterationFailureCount` beyond its
/// tolerance fails it with `States.ExceedToleratedFailureThreshold`, and
/// `mapItemReaderData` stands for what its ItemReader reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_state_shows_a_mocked_maps_items_batches_and_limits_and_applies_its_configuration() {
    let aws = Aws::start().await;
    let map = json!({"Type": "Map", "ItemsPath": "$.trips", "MaxConcurrency": 4,
        "ToleratedFailureCount": 1,
        "ItemSelector": {"city.$": "$$.Map.Item.Value", "n.$": "$$.Map.Item.Index"},
        "ItemBatcher": {"MaxItemsPerBatch": 2},
        "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}},
        "Catch": [{"ErrorEquals": ["States.ExceedToleratedFailureThreshold"], "Next": "TooMany"}],
        "Next": "Done"});
    let body = |extra: Value| {
        let mut b = json!({"definition": map.to_string(), "inspectionLevel": "DEBUG",
            "input": r#"{"trips": ["Oslo", "Rome", "Lima"]}"#, "mock": {"result": "[]"}});
        b.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        b
    };
    let r = aws.test_state(body(json!({}))).await;
    assert_eq!(r["status"], "SUCCEEDED", "{r}");
    let data = &r["inspectionData"];
    assert_eq!(
        parsed(&data["afterItemsPath"]),
        json!(["Oslo", "Rome", "Lima"])
    );
    assert_eq!(
        parsed(&data["afterItemSelector"]),
        json!([{"city": "Oslo", "n": 0}, {"city": "Rome", "n": 1}, {"city": "Lima", "n": 2}])
    );
    assert_eq!(
        parsed(&data["afterItemBatcher"]),
        json!([{"Items": [{"city": "Oslo", "n": 0}, {"city": "Rome", "n": 1}]},
               {"Items": [{"city": "Lima", "n": 2}]}])
    );
    assert_eq!(
        (&data["maxConcurrency"], &data["toleratedFailureCount"]),
        (&json!(4), &json!(1))
    );

    // One of two batches failing is tolerated; two are not.
    let r = aws
        .test_state(body(
            json!({"stateConfiguration": {"mapIterationFailureCount": 1}}),
        ))
        .await;
    assert_eq!(r["status"], "SUCCEEDED", "{r}");
    let r = aws
        .test_state(body(
            json!({"stateConfiguration": {"mapIterationFailureCount": 2}}),
        ))
        .await;
    assert_eq!(r["status"], "CAUGHT_ERROR", "{r}");
    assert_eq!(r["nextState"], "TooMany", "{r}");
    assert_eq!(r["error"], "States.ExceedToleratedFailureThreshold", "{r}");
    let message = aws
        .error(
            "TestState",
            body(json!({"stateConfiguration": {"mapIterationFailureCount": 3}})),
            "ValidationException",
        )
        .await;
    assert!(message.contains("mapIterationFailureCount"), "{message}");
    let message = aws
        .error(
            "TestState",
            body(json!({"stateConfiguration": {"errorCausedByState": "Nowhere"}})),
            "ValidationException",
        )
        .await;
    assert!(message.contains("Nowhere"), "{message}");

    // A distributed Map's reader data, read as its ReaderConfig says.
    let reading = json!({"Type": "Map",
        "ItemReader": {"Resource": "arn:aws:states:::s3:getObject",
            "ReaderConfig": {"InputType": "CSV", "CSVHeaderLocation": "FIRST_ROW", "MaxItems": 2},
            "Parameters": {"Bucket": "trips", "Key": "today.csv"}},
        "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
            "StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}},
        "End": true});
    let r = aws
        .test_state(
            json!({"definition": reading.to_string(), "inspectionLevel": "DEBUG",
            "input": "{}", "mock": {"result": "{}"},
            "stateConfiguration": {"mapItemReaderData": "city,nights\nOslo,2\nRome,1\nLima,4\n"}}),
        )
        .await;
    assert_eq!(r["status"], "SUCCEEDED", "{r}");
    assert_eq!(
        parsed(&r["inspectionData"]["afterItemSelector"]),
        json!([{"city": "Oslo", "nights": "2"}, {"city": "Rome", "nights": "1"}])
    );
    assert!(aws.svc.calls.lock().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_state_refuses_invalid_definitions_and_parameters() {
    let aws = Aws::start().await;
    let m = aws
        .expect_error(
            aws.call(
                "TestState",
                json!({"definition": r#"{"Type": "Pass", "Next": "X", "End": true}"#}),
            )
            .await,
            "InvalidDefinition",
        )
        .await;
    assert!(m.contains("End"), "{m}");
    let m = aws
        .expect_error(
            aws.call("TestState", json!({"definition": "{not json"}))
                .await,
            "InvalidDefinition",
        )
        .await;
    assert!(m.contains("JSON"), "{m}");
    let cases = [
        json!({"definition": r#"{"Type": "Pass", "End": true}"#, "inspectionLevel": "LOUD"}),
        json!({"definition": r#"{"Type": "Pass", "End": true}"#, "variables": "[1]"}),
        json!({"definition": r#"{"Type": "Pass", "End": true}"#, "mock": {"result": "1"}}),
        json!({"definition": r#"{"Type": "Pass", "End": true}"#, "stateName": "A"}),
        json!({"definition": PASS}),
        json!({"definition": PASS, "stateName": "Nope"}),
        json!({"definition": r#"{"Type": "Parallel", "Branches": [], "End": true}"#}),
        json!({"definition": r#"{"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken", "End": true}"#}),
    ];
    for body in cases {
        aws.expect_error(
            aws.call("TestState", body.clone()).await,
            "ValidationException",
        )
        .await;
    }
    aws.expect_error(
        aws.call(
            "TestState",
            json!({"definition": r#"{"Type": "Pass", "End": true}"#, "input": "{"}),
        )
        .await,
        "InvalidExecutionInput",
    )
    .await;
}

// ---------------------------------------------------------------------------
// Map run child executions
// ---------------------------------------------------------------------------

/// A distributed Map, one item at a time: an item that is `ok` is echoed,
/// another fails in `No` (one failure is tolerated).
const DISTRIBUTED: &str = r#"{
  "StartAt": "Orders",
  "States": {
    "Orders": {
      "Type": "Map", "Label": "Orders", "MaxConcurrency": 1, "ToleratedFailureCount": 1,
      "ItemsPath": "$.orders",
      "ItemProcessor": {
        "ProcessorConfig": { "Mode": "DISTRIBUTED", "ExecutionType": "STANDARD" },
        "StartAt": "Check",
        "States": {
          "Check": { "Type": "Choice", "Choices": [ { "Variable": "$.ok", "BooleanEquals": true, "Next": "Echo" } ], "Default": "No" },
          "Echo": { "Type": "Task", "Resource": "arn:aws:lambda:us-east-1:123456789012:function:echo", "End": true },
          "No": { "Type": "Fail", "Error": "Refused", "Cause": "not ok" }
        }
      },
      "End": true
    }
  }
}"#;

/// A distributed Map whose items wait for their task token, one at a time.
const PARKED_ITEMS: &str = r#"{
  "StartAt": "Orders",
  "States": {
    "Orders": {
      "Type": "Map", "Label": "Orders", "MaxConcurrency": 1, "ItemsPath": "$.orders",
      "ItemProcessor": {
        "ProcessorConfig": { "Mode": "DISTRIBUTED", "ExecutionType": "STANDARD" },
        "StartAt": "Approve",
        "States": {
          "Approve": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
            "Parameters": { "FunctionName": "park", "Payload": { "token.$": "$$.Task.Token", "order.$": "$.order" } },
            "End": true
          }
        }
      },
      "End": true
    }
  }
}"#;

impl Aws {
    /// The ARN of execution `arn`'s first map run.
    async fn first_map_run(&self, arn: &str) -> String {
        let runs = self.ok("ListMapRuns", json!({"executionArn": arn})).await;
        runs["mapRuns"][0]["mapRunArn"]
            .as_str()
            .expect("a map run")
            .to_string()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_map_run_child_execution_is_described_with_its_item_and_its_output_or_error() {
    let aws = Aws::start().await;
    aws.create("dmap", DISTRIBUTED).await;
    // Read, not built: `json!` would shorten `1.10` to `1.1`.
    let input: Value =
        serde_json::from_str(r#"{"orders": [{"ok": true, "n": 1.10}, {"ok": false, "n": 2}]}"#)
            .unwrap();
    let arn = aws.start_execution("dmap", "d", input).await;
    assert_eq!(aws.finished(&arn).await["status"], "SUCCEEDED");
    let run = aws.first_map_run(&arn).await;
    let listed = aws.ok("ListExecutions", json!({"mapRunArn": run})).await;
    let children: Vec<&str> = listed["executions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["executionArn"].as_str().unwrap())
        .collect();
    assert_eq!(children.len(), 2);

    let ok = aws
        .ok("DescribeExecution", json!({"executionArn": children[0]}))
        .await;
    assert_eq!(ok["executionArn"], children[0]);
    assert_eq!(ok["mapRunArn"], run);
    assert_eq!(
        ok["stateMachineArn"],
        format!("{}/Orders", state_machine_arn("dmap"))
    );
    assert_eq!(ok["name"], "d_0_0");
    assert_eq!(ok["status"], "SUCCEEDED");
    assert!(ok["startDate"].is_f64() && ok["stopDate"].is_f64(), "{ok}");
    // The item as written: its number keeps its digits.
    assert_eq!(ok["input"], r#"{"ok":true,"n":1.10}"#);
    assert_eq!(ok["output"], r#"{"echoed":{"ok":true,"n":1.10}}"#);
    assert!(ok.get("error").is_none(), "{ok}");

    let refused = aws
        .ok("DescribeExecution", json!({"executionArn": children[1]}))
        .await;
    assert_eq!(refused["status"], "FAILED");
    assert_eq!(parsed(&refused["input"]), json!({"ok": false, "n": 2}));
    assert_eq!(refused["error"], "Refused");
    assert_eq!(refused["cause"], "not ok");
    assert!(refused.get("output").is_none(), "{refused}");

    // Its machine is the Map's item processor, as AWS describes it.
    let machine = aws
        .ok(
            "DescribeStateMachineForExecution",
            json!({"executionArn": children[0]}),
        )
        .await;
    assert_eq!(
        machine["stateMachineArn"],
        format!("{}/Orders", state_machine_arn("dmap"))
    );
    assert_eq!(machine["name"], "dmap/Orders");
    assert_eq!(
        (&machine["mapRunArn"], &machine["label"]),
        (&json!(run), &json!("Orders"))
    );
    let processor = parsed(&machine["definition"]);
    let whole: Value = serde_json::from_str(DISTRIBUTED).unwrap();
    let expected = whole["States"]
        .as_object()
        .unwrap()
        .values()
        .find_map(|s| s.get("ItemProcessor"))
        .unwrap();
    assert_eq!(&processor, expected);
    assert!(
        machine["roleArn"].is_string() && machine["updateDate"].is_f64(),
        "{machine}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_map_run_child_execution_has_its_own_history_and_the_parents_is_unchanged() {
    let aws = Aws::start().await;
    aws.create("dmap", DISTRIBUTED).await;
    let orders = json!([{"ok": true}, {"ok": false}]);
    let arn = aws
        .start_execution("dmap", "d", json!({"orders": orders}))
        .await;
    aws.finished(&arn).await;
    let run = aws.first_map_run(&arn).await;
    let child = |i: usize| format!("{}_{i}", run.replace(":mapRun:", ":execution:"));

    let events = aws.history(&child(0)).await;
    assert_eq!(
        types(&events),
        [
            "ExecutionStarted",
            "ChoiceStateEntered",
            "ChoiceStateExited",
            "TaskStateEntered",
            "LambdaFunctionScheduled",
            "LambdaFunctionStarted",
            "LambdaFunctionSucceeded",
            "TaskStateExited",
            "ExecutionSucceeded"
        ]
    );
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e["id"], json!(i + 1));
        assert_eq!(e["previousEventId"], json!(i));
    }
    let started = &events[0]["executionStartedEventDetails"];
    assert_eq!(parsed(&started["input"]), json!({"ok": true}));
    assert_eq!(
        parsed(&events[8]["executionSucceededEventDetails"]["output"]),
        json!({"echoed": {"ok": true}})
    );

    let failed = aws.history(&child(1)).await;
    assert_eq!(
        types(&failed),
        [
            "ExecutionStarted",
            "ChoiceStateEntered",
            "ChoiceStateExited",
            "FailStateEntered",
            "ExecutionFailed"
        ]
    );
    assert_eq!(
        failed[4]["executionFailedEventDetails"],
        json!({"error": "Refused", "cause": "not ok"})
    );

    // Paged, reversed and without data, as an execution's history is.
    let page = aws
        .ok(
            "GetExecutionHistory",
            json!({"executionArn": child(0), "maxResults": 2, "reverseOrder": true, "includeExecutionData": false}),
        )
        .await;
    assert_eq!(
        types(page["events"].as_array().unwrap()),
        ["ExecutionSucceeded", "TaskStateExited"]
    );
    assert_eq!(page["events"][0]["id"], 9);
    assert!(page["events"][0]["executionSucceededEventDetails"]
        .get("output")
        .is_none());
    let next = aws
        .ok(
            "GetExecutionHistory",
            json!({"executionArn": child(0), "maxResults": 2, "reverseOrder": true, "nextToken": page["nextToken"]}),
        )
        .await;
    assert_eq!(
        types(next["events"].as_array().unwrap()),
        ["LambdaFunctionSucceeded", "LambdaFunctionStarted"]
    );

    // The parent has one start and one end: its children's are theirs.
    let parent = aws.history(&arn).await;
    let kinds = types(&parent);
    assert_eq!(
        kinds.iter().filter(|k| k.starts_with("Execution")).count(),
        2,
        "{kinds:?}"
    );
    assert_eq!(kinds.first(), Some(&"ExecutionStarted"));
    assert_eq!(kinds.last(), Some(&"ExecutionSucceeded"));
    assert!(kinds.contains(&"MapRunStarted") && kinds.contains(&"MapRunSucceeded"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_arn_that_names_no_started_child_is_execution_does_not_exist() {
    let aws = Aws::start().await;
    aws.create("parked", PARKED_ITEMS).await;
    let orders = json!([{"order": "a"}, {"order": "b"}]);
    let arn = aws
        .start_execution("parked", "p", json!({"orders": orders}))
        .await;
    let parked = aws.next_parked().await;
    let run = aws.first_map_run(&arn).await;
    let child = |i: usize| format!("{}_{i}", run.replace(":mapRun:", ":execution:"));

    let running = aws
        .ok("DescribeExecution", json!({"executionArn": child(0)}))
        .await;
    assert_eq!(running["status"], "RUNNING");
    assert_eq!(parsed(&running["input"]), json!({"order": "a"}));
    assert!(running.get("stopDate").is_none() && running.get("output").is_none());

    let missing = [
        // Pending behind MaxConcurrency: no execution yet.
        child(1),
        child(2),
        // No map run 7 in `p`, no execution `none`.
        child(0).replace(":p_0_", ":p_7_"),
        "arn:aws:states:us-east-1:123456789012:execution:nope/Orders:none_0_0".to_string(),
    ];
    for missing in missing {
        for action in [
            "DescribeExecution",
            "GetExecutionHistory",
            "DescribeStateMachineForExecution",
        ] {
            let message = aws
                .error(
                    action,
                    json!({"executionArn": missing}),
                    "ExecutionDoesNotExist",
                )
                .await;
            assert_eq!(
                message,
                format!("Execution Does Not Exist: '{missing}'"),
                "{action}"
            );
        }
    }

    let token = parked["token"].as_str().unwrap();
    aws.ok(
        "SendTaskSuccess",
        json!({"taskToken": token, "output": "{}"}),
    )
    .await;
    let parked = aws.next_parked().await;
    assert_eq!(parked["order"], "b");
    let next = aws
        .ok("DescribeExecution", json!({"executionArn": child(1)}))
        .await;
    assert_eq!(next["status"], "RUNNING");
}
