//! A definition's own headers and its `${VAR}`s: filled at call time from
//! the variables and secrets, checked at deploy, and secrets kept out of
//! every recorded cause.

mod support;
mod tls_support;

use std::collections::HashMap;
use std::sync::Arc;

use sagaflow_core::error_name::TASK_FAILED;
use sagaflow_core::{EventKind, Status};
use sagaflow_runtime::{Config, Engine, Error, Secret, TlsConfig};
use sagaflow_store::memory::MemoryStore;
use serde_json::json;
use support::{history, WAIT};
use tls_support::{Ca, HttpsServer};

async fn engine(config: Config) -> (Arc<MemoryStore>, Engine) {
    let store = Arc::new(MemoryStore::new());
    let engine = Engine::builder(store.clone()).config(config).build();
    engine.start().await.expect("engine starts");
    (store, engine)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_variable_in_a_header_is_refused_at_deploy_with_its_location() {
    let (_, engine) = engine(Config::default()).await;
    let err = engine
        .deploy(
            None,
            r#"
name: h
steps:
  - name: a
    action: { http: { url: "http://svc/a", headers: { Authorization: "Bearer ${NOPE}" } } }
"#,
        )
        .await
        .expect_err("refused");
    let Error::Invalid(sagaflow_core::Error::InvalidDefinition(violations)) = err else {
        panic!("an invalid definition: {err:?}");
    };
    assert_eq!(violations.len(), 1, "{violations:?}");
    assert_eq!(violations[0].code, "unknown_variable");
    assert_eq!(
        violations[0].location,
        "steps[0].action.http.headers.Authorization"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_variables_and_secrets_are_filled_when_the_participant_is_called() {
    let ca = Ca::new("test CA");
    let server = HttpsServer::start(&ca.issue(&["127.0.0.1"]), None).await;
    let (_, engine) = engine(Config {
        variables: HashMap::from([
            ("SVC".into(), server.base_url.clone()),
            ("TENANT".into(), "acme/".into()),
        ]),
        secrets: HashMap::from([("TOKEN".into(), Secret::new("t0k3n"))]),
        tls: TlsConfig {
            ca_pem: Some(ca.cert_pem().into_bytes()),
            identity_pem: None,
        },
        ..Config::default()
    })
    .await;
    engine
        .deploy(
            None,
            r#"
name: h
steps:
  - name: a
    action:
      http:
        url: "${SVC}/a"
        headers: { Authorization: "Bearer ${TOKEN}", X-Tenant: "${TENANT}", X-Fixed: "1" }
"#,
        )
        .await
        .unwrap();
    let (rec, _) = engine.start_execution("h", json!({}), None).await.unwrap();
    let done = engine.wait(&rec.id, WAIT).await.unwrap();

    assert_eq!(done.status, Status::Succeeded);
    let headers = &server.received()[0].headers;
    assert_eq!(headers["authorization"], "Bearer t0k3n");
    // A header value is used as configured (a URL base loses its trailing `/`).
    assert_eq!(headers["x-tenant"], "acme/");
    assert_eq!(headers["x-fixed"], "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_in_a_url_is_shown_as_its_placeholder_in_the_recorded_cause() {
    // Nothing listens on port 1: the call is refused, and its cause names the URL.
    let (store, engine) = engine(Config {
        secrets: HashMap::from([("KEY".into(), Secret::new("k3y-value"))]),
        ..Config::default()
    })
    .await;
    engine
        .deploy(
            None,
            r#"
name: u
steps:
  - name: a
    action: { http: { url: "http://127.0.0.1:1/a?key=${KEY}" } }
    retry: { max_attempts: 1 }
"#,
        )
        .await
        .unwrap();
    let (rec, _) = engine.start_execution("u", json!({}), None).await.unwrap();
    engine.wait(&rec.id, WAIT).await.unwrap();

    let causes: Vec<_> = history(&store, &rec.id)
        .await
        .into_iter()
        .filter_map(|e| match e {
            EventKind::StepFailed { error, .. } => Some(error),
            _ => None,
        })
        .collect();
    assert_eq!(causes.len(), 1, "{causes:?}");
    assert_eq!(causes[0].error, TASK_FAILED);
    assert!(
        causes[0]
            .cause
            .starts_with("POST http://127.0.0.1:1/a?key=${KEY}: "),
        "{causes:?}"
    );
    assert!(!causes[0].cause.contains("k3y-value"), "{causes:?}");
}
