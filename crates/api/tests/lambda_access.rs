//! Who may use the Lambda API: a hosted function's worker credentials reach
//! only the checkpoints and state of that function's own durable
//! executions (least privilege), with or without server tokens; with
//! tokens, every other client needs one as its access key id.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use sagaflow_api::ApiConfig;
use sagaflow_runtime::Engine;
use sagaflow_store::memory::MemoryStore;

/// The worker key of `saga-durable-function`.
const WORKER: &str = "SFFNWORKERKEY";
/// A server token.
const TOKEN: &str = "server-token";

fn arn(function: &str) -> String {
    format!(
        "arn:aws:lambda:us-east-1:123456789012:function:{function}:$LATEST/durable-execution/trip-1/0b6f3c9e-1d2a-4c5b-8e7f-9a0b1c2d3e4f"
    )
}

/// One path segment, as botocore encodes an ARN label.
fn seg(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// SigV4's header, which carries the access key id in clear.
fn signed(key: &str) -> String {
    format!("AWS4-HMAC-SHA256 Credential={key}/20261207/us-east-1/lambda/aws4_request, SignedHeaders=host, Signature=00")
}

async fn server(auth_tokens: &[&str]) -> String {
    let engine = Engine::builder(Arc::new(MemoryStore::new())).build();
    let config = ApiConfig {
        auth_tokens: auth_tokens
            .iter()
            .map(|t| t.to_string())
            .collect::<HashSet<_>>(),
        function_tokens: HashMap::from([(WORKER.to_string(), "saga-durable-function".to_string())]),
        ..ApiConfig::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(sagaflow_api::serve(
        engine,
        config,
        listener,
        std::future::pending(),
    ));
    base
}

/// The status and `X-Amzn-ErrorType` of a request signed with `key`.
async fn ask(method: reqwest::Method, url: &str, key: Option<&str>) -> (u16, String) {
    let mut req = reqwest::Client::new()
        .request(method, url)
        .body(r#"{"CheckpointToken": "x"}"#);
    if let Some(key) = key {
        req = req.header("Authorization", signed(key));
    }
    let resp = req.send().await.unwrap();
    let code = resp
        .headers()
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    (resp.status().as_u16(), code)
}

#[tokio::test]
async fn a_worker_reaches_its_own_functions_checkpoints_and_state_and_nothing_else() {
    for tokens in [&[][..], &[TOKEN][..]] {
        let base = server(tokens).await;
        let own = seg(&arn("saga-durable-function"));
        let other = seg(&arn("another-function"));
        let post = reqwest::Method::POST;
        let get = reqwest::Method::GET;
        // Its own executions: past authorization (the execution does not
        // exist here, so the answer is the API's, not a refusal of access).
        let checkpoint = format!("{base}/2025-12-01/durable-executions/{own}/checkpoint");
        assert_eq!(
            ask(post.clone(), &checkpoint, Some(WORKER)).await,
            (404, "ResourceNotFoundException".into()),
            "tokens {tokens:?}"
        );
        let state = format!("{base}/2025-12-01/durable-executions/{own}/state?CheckpointToken=x");
        assert_eq!(
            ask(get.clone(), &state, Some(WORKER)).await,
            (404, "ResourceNotFoundException".into())
        );
        // Everything else is denied.
        let denied = (403, "AccessDeniedException".to_string());
        for (method, url) in [
            (
                post.clone(),
                format!("{base}/2025-12-01/durable-executions/{other}/checkpoint"),
            ),
            (
                get.clone(),
                format!("{base}/2025-12-01/durable-executions/{other}/state?CheckpointToken=x"),
            ),
            (
                get.clone(),
                format!("{base}/2025-12-01/durable-executions/{own}"),
            ),
            (
                get.clone(),
                format!("{base}/2025-12-01/durable-executions/{own}/history"),
            ),
            (
                post.clone(),
                format!("{base}/2025-12-01/durable-executions/{own}/stop"),
            ),
            (
                get.clone(),
                format!("{base}/2025-12-01/functions/saga-durable-function/durable-executions"),
            ),
            (
                post.clone(),
                format!("{base}/2015-03-31/functions/saga-durable-function/invocations"),
            ),
            (get.clone(), format!("{base}/v1/executions")),
        ] {
            assert_eq!(ask(method, &url, Some(WORKER)).await, denied, "{url}");
        }
    }
}

#[tokio::test]
async fn with_server_tokens_the_lambda_api_needs_one_as_the_access_key_id() {
    let base = server(&[TOKEN]).await;
    let list = format!("{base}/2025-12-01/functions/saga-durable-function/durable-executions");
    let refused = (400, "UnrecognizedClientException".to_string());
    assert_eq!(ask(reqwest::Method::GET, &list, None).await, refused);
    assert_eq!(
        ask(reqwest::Method::GET, &list, Some("not-a-token")).await,
        refused
    );
    // Accepted: then the API answers (no such hosted function here).
    assert_eq!(
        ask(reqwest::Method::GET, &list, Some(TOKEN)).await,
        (404, "ResourceNotFoundException".into())
    );
}
