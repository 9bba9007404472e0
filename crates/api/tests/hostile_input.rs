//! Hostile definitions and bodies, over real HTTP on loopback: a definition
//! nested to cost minutes is refused in milliseconds while `/healthz` keeps
//! answering; keys given twice are refused with their location; escaped
//! surrogate pairs read as the character they encode; and a body past the
//! limit, sent slowly, still gets its 413 and JSON error.

mod loopback;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use loopback::{Server, DEADLINE};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A generous bound for a refusal that costs milliseconds (the defect: 17 s).
const QUICK: Duration = Duration::from_secs(2);

/// Definitions just under the 1 MiB body limit, nested as deep as that allows.
fn hostile_definitions() -> Vec<(&'static str, String)> {
    let n = 450_000;
    vec![
        (
            "json",
            format!(
                r#"{{"name": "x", "steps": {}1{}}}"#,
                "[".repeat(n),
                "]".repeat(n)
            ),
        ),
        (
            "yaml-flow",
            format!("name: x\nsteps: {}", "[".repeat(2 * n)),
        ),
        (
            "yaml-maps",
            format!("name: x\nsteps: {}", "{a: ".repeat(n / 2)),
        ),
        (
            "yaml-block",
            format!("name: x\nsteps:\n{}a", "- ".repeat(n)),
        ),
    ]
}

/// Polls `/healthz` until stopped; returns how many answered and the slowest.
fn poll_health(
    server: &Server,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<(usize, Duration)> {
    let url = format!("{}/healthz", server.base);
    let http = reqwest::Client::new();
    tokio::spawn(async move {
        let (mut answered, mut slowest) = (0, Duration::ZERO);
        while !stop.load(Ordering::SeqCst) {
            let started = Instant::now();
            let r = tokio::time::timeout(DEADLINE, http.get(&url).send())
                .await
                .expect("healthz answers before the deadline")
                .expect("healthz answers");
            assert_eq!(r.status(), 200);
            slowest = slowest.max(started.elapsed());
            answered += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        (answered, slowest)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_definition_is_refused_in_milliseconds_while_healthz_keeps_answering() {
    let server = Arc::new(Server::start().await);
    let stop = Arc::new(AtomicBool::new(false));
    let health = poll_health(&server, stop.clone());
    let mut uploads = Vec::new();
    for (kind, text) in hostile_definitions() {
        assert!(text.len() < 1024 * 1024, "{kind} fits in the body limit");
        // Twice each, in parallel, through both APIs.
        for api in ["native", "aws"] {
            for _ in 0..2 {
                let (server, text) = (server.clone(), text.clone());
                uploads.push(tokio::spawn(async move {
                    let r = if api == "native" {
                        server.put_definition("hostile", text).await
                    } else {
                        let body = json!({"name": "hostile", "definition": text, "roleArn": "arn:aws:iam::1:role/r"});
                        server.aws("CreateStateMachine", body.to_string()).await
                    };
                    (kind, api, r)
                }));
            }
        }
    }
    for upload in uploads {
        let (kind, api, r) = upload.await.unwrap();
        assert_eq!(r.status, 400, "{kind} via {api}: {}", r.body);
        assert!(r.took < QUICK, "{kind} via {api} took {:?}", r.took);
        if api == "native" {
            let violation = &r.body["error"]["details"]["violations"][0];
            assert_eq!(violation["code"], "nesting_too_deep", "{kind}: {}", r.body);
            assert!(
                violation["message"]
                    .as_str()
                    .unwrap()
                    .contains("at most 100"),
                "{violation}"
            );
        } else if kind == "json" {
            let message = r.body["message"].as_str().unwrap();
            assert!(message.contains("NESTING_TOO_DEEP"), "{message}");
        }
    }
    stop.store(true, Ordering::SeqCst);
    let (answered, slowest) = health.await.unwrap();
    assert!(answered > 0);
    assert!(slowest < QUICK, "the slowest /healthz took {slowest:?}");
}

const DUPLICATE_STATE: &str = r#"{"StartAt": "A", "States": {
  "A": {"Type": "Pass", "End": true},
  "A": {"Type": "Succeed"}
}}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_given_twice_is_refused_with_its_location_by_both_apis() {
    let server = Server::start().await;
    let saga = "name: twice\nsteps:\n  - name: a\n    action: {handler: a}\n    name: b\n";
    for (text, location) in [(saga, "steps[0].name"), (DUPLICATE_STATE, "/States/A")] {
        let r = server.put_definition("twice", text).await;
        assert_eq!(r.status, 400, "{}", r.body);
        assert_eq!(r.body["error"]["code"], "invalid_definition");
        let violation = &r.body["error"]["details"]["violations"][0];
        assert_eq!(violation["code"], "duplicate_key", "{}", r.body);
        assert_eq!(violation["location"], location, "{}", r.body);
    }
    let body =
        json!({"name": "twice", "definition": DUPLICATE_STATE, "roleArn": "arn:aws:iam::1:role/r"});
    let r = server.aws("CreateStateMachine", body.to_string()).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.body["__type"], "com.amazonaws.states#InvalidDefinition");
    let message = r.body["message"].as_str().unwrap();
    assert!(message.contains("DUPLICATE_KEY at /States/A"), "{message}");
    assert_eq!(server.healthz().await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_definition_stored_with_a_key_twice_before_the_upgrade_still_runs() {
    let server = Server::start().await;
    let twice = r#"{"StartAt": "A", "States": {"A": {"Type": "Pass", "Result": {"x": 1, "x": 2}, "End": true}}}"#;
    // Stored as an earlier version accepted it.
    server
        .engine
        .store()
        .put_definition("old", "asl", twice, "digest-of-old", 1)
        .await
        .unwrap();
    let arn = "arn:aws:states:us-east-1:123456789012:stateMachine:old";
    let start = json!({"stateMachineArn": arn, "input": "{}"});
    let r = server.aws("StartSyncExecution", start.to_string()).await;
    assert_eq!(r.body["status"], "SUCCEEDED", "{}", r.body);
    assert_eq!(r.body["output"], "{\"x\":2}");
}

/// What Python's `json.dumps` writes for the emoji U+1F197 (🆗).
const ESCAPED: &str = r"\ud83c\udd97";
const EMOJI: &str = "\u{1f197}";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_escaped_emoji_in_a_json_definition_is_one_character_in_names_and_results() {
    let server = Server::start().await;
    let machine = format!(
        r#"{{"StartAt": "Say {ESCAPED}", "States": {{"Say {ESCAPED}": {{"Type": "Pass", "Result": {{"emoji": "{ESCAPED}"}}, "End": true}}}}}}"#
    );
    // The native API, then the Step Functions API.
    let r = server.put_definition("emoji", machine.clone()).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let body =
        json!({"name": "emoji-aws", "definition": machine, "roleArn": "arn:aws:iam::1:role/r"});
    let r = server.aws("CreateStateMachine", body.to_string()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    for machine in ["emoji", "emoji-aws"] {
        let arn = format!("arn:aws:states:us-east-1:123456789012:stateMachine:{machine}");
        let start = json!({"stateMachineArn": arn, "input": "{}"});
        let r = server.aws("StartSyncExecution", start.to_string()).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["status"], "SUCCEEDED", "{}", r.body);
        let output: Value = serde_json::from_str(r.body["output"].as_str().unwrap()).unwrap();
        assert_eq!(output, json!({"emoji": EMOJI}));
        let history = json!({"executionArn": r.body["executionArn"]});
        let h = server.aws("GetExecutionHistory", history.to_string()).await;
        let entered = h.body["events"].as_array().unwrap().iter().find_map(|e| {
            e["stateEnteredEventDetails"]["name"]
                .as_str()
                .map(String::from)
        });
        assert_eq!(entered.as_deref(), Some(format!("Say {EMOJI}").as_str()));
    }
    // A saga written as JSON: the emoji in its description.
    let saga = format!(
        r#"{{"name": "emoji-saga", "description": "{ESCAPED}", "steps": [{{"name": "a", "action": {{"handler": "a"}}}}]}}"#
    );
    let r = server.put_definition("emoji-saga", saga).await;
    assert_eq!(r.status, 201, "{}", r.body);
}

/// Sends a request with a body larger than the limit slowly, in pieces,
/// then reads the answer: the whole answer, not a reset.
async fn send_slowly(server: &Server, head: &str, chunked: bool) -> (String, Value) {
    let total = 3 * 1024 * 1024;
    let piece = vec![b'x'; 64 * 1024];
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let framing = if chunked {
        "Transfer-Encoding: chunked".to_string()
    } else {
        format!("Content-Length: {total}")
    };
    let head = format!("{head}\r\nHost: sagaflow\r\n{framing}\r\n\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut sent = 0;
    while sent < total {
        if chunked {
            stream
                .write_all(format!("{:x}\r\n", piece.len()).as_bytes())
                .await
                .expect("the server reads the body");
        }
        stream
            .write_all(&piece)
            .await
            .expect("the server reads the body");
        if chunked {
            stream.write_all(b"\r\n").await.unwrap();
        }
        sent += piece.len();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    if chunked {
        stream.write_all(b"0\r\n\r\n").await.unwrap();
    }
    let mut answer = Vec::new();
    tokio::time::timeout(DEADLINE, stream.read_to_end(&mut answer))
        .await
        .expect("the answer before the deadline")
        .expect("the answer, not a reset");
    let answer = String::from_utf8_lossy(&answer).to_string();
    let (head, body) = answer.split_once("\r\n\r\n").expect("a complete answer");
    let body = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {answer:.300}"));
    (head.to_string(), body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_body_sent_slowly_still_gets_its_413_and_json_error() {
    let server = Server::start().await;
    for chunked in [false, true] {
        let head = "PUT /v1/definitions/big HTTP/1.1\r\nConnection: close";
        let (head, body) = send_slowly(&server, head, chunked).await;
        assert!(head.starts_with("HTTP/1.1 413"), "{head}");
        assert_eq!(body["error"]["code"], "payload_too_large", "{body}");
        let head = "POST / HTTP/1.1\r\nConnection: close\r\nX-Amz-Target: AWSStepFunctions.CreateStateMachine";
        let (head, body) = send_slowly(&server, head, chunked).await;
        assert!(head.starts_with("HTTP/1.1 400"), "{head}");
        assert_eq!(
            body["__type"], "com.amazonaws.states#ValidationException",
            "{body}"
        );
    }
    assert_eq!(server.healthz().await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_body_announced_with_expect_100_continue_is_refused_before_it_is_sent() {
    let server = Server::start().await;
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let head = "PUT /v1/definitions/big HTTP/1.1\r\nHost: sagaflow\r\nContent-Length: 3145728\r\nExpect: 100-continue\r\n\r\n";
    stream.write_all(head.as_bytes()).await.unwrap();
    // Nothing of the body is sent: the answer comes anyway.
    let mut answer = Vec::new();
    tokio::time::timeout(DEADLINE, stream.read_to_end(&mut answer))
        .await
        .expect("the answer before the deadline")
        .expect("the answer");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer:.300}");
    assert!(answer.contains("payload_too_large"), "{answer:.300}");
}
