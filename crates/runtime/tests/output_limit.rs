//! A participant's answer becomes part of the history, so its size is bounded.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::routing::post;
use axum::Router;
use sagaflow_core::Status;
use sagaflow_runtime::{Config, Engine};
use sagaflow_store::memory::MemoryStore;
use serde_json::json;

#[tokio::test]
async fn an_answer_larger_than_the_limit_fails_the_step_and_the_saga_rolls_back() {
    let app = Router::new()
        .route(
            "/small",
            post(|| async { axum::Json(json!({ "ok": true })) }),
        )
        .route("/huge", post(|| async { "x".repeat(64 * 1024) }))
        .route("/undo", post(|| async { axum::Json(json!({})) }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let engine = Engine::builder(Arc::new(MemoryStore::new()))
        .config(Config {
            variables: HashMap::from([("SVC".to_string(), url)]),
            max_output_bytes: 16 * 1024,
            ..Config::default()
        })
        .build();
    engine.start().await.unwrap();
    engine
        .deploy(
            None,
            r#"
name: big
steps:
  - name: first
    action: { http: { url: "${SVC}/small" } }
    compensation: { http: { url: "${SVC}/undo" } }
  - name: second
    action: { http: { url: "${SVC}/huge" } }
"#,
        )
        .await
        .unwrap();
    let (rec, _) = engine
        .start_execution("big", json!({}), None)
        .await
        .unwrap();
    let done = engine.wait(&rec.id, Duration::from_secs(20)).await.unwrap();
    assert_eq!(done.status, Status::Compensated);
    let error = done.error.unwrap();
    assert_eq!(error.error, sagaflow_runtime::invoke::OUTPUT_TOO_LARGE);
    assert!(error.cause.contains("16384 bytes"), "{}", error.cause);
}
