//! HTTPS participants: real HTTPS servers on 127.0.0.1 with certificates
//! made in the test (`rcgen`), and an engine trusting a CA given in its
//! configuration, presenting a client certificate (mTLS), or neither.

mod support;
mod tls_support;

use std::collections::HashMap;
use std::sync::Arc;

use sagaflow_core::error_name::TASK_FAILED;
use sagaflow_core::{EventKind, Status};
use sagaflow_runtime::{Config, Engine, TlsConfig};
use sagaflow_store::memory::MemoryStore;
use serde_json::json;
use support::{history, WAIT};
use tls_support::{Ca, HttpsServer};

/// Reserves, then fails for good at `charge` (a business refusal): the
/// reservation is compensated.
const RESERVE_THEN_FAIL: &str = r#"
name: secure
steps:
  - name: reserve
    action: { http: { url: "${SVC}/reserve" } }
    compensation: { http: { url: "${SVC}/cancel" } }
  - name: charge
    action: { http: { url: "${SVC}/charge/fail" } }
"#;

/// One step, tried twice.
const ONE_STEP: &str = r#"
name: one
steps:
  - name: call
    action: { http: { url: "${SVC}/call" } }
    retry: { max_attempts: 2, initial_delay: 10ms }
"#;

async fn engine(base_url: &str, tls: TlsConfig) -> (Arc<MemoryStore>, Engine) {
    let store = Arc::new(MemoryStore::new());
    let config = Config {
        variables: HashMap::from([("SVC".to_string(), base_url.to_string())]),
        tls,
        ..Config::default()
    };
    let engine = Engine::builder(store.clone())
        .config(config)
        .try_build()
        .expect("valid TLS settings");
    engine.start().await.expect("engine starts");
    (store, engine)
}

fn trusting(ca: &Ca) -> TlsConfig {
    TlsConfig {
        ca_pem: Some(ca.cert_pem().into_bytes()),
        identity_pem: None,
    }
}

/// Runs `definition` once and returns how it ended and its history.
async fn run(engine: &Engine, store: &MemoryStore, definition: &str) -> (Status, Vec<EventKind>) {
    let deployed = engine.deploy(None, definition).await.expect("deploys");
    let (rec, _) = engine
        .start_execution(&deployed.record.name, json!({"n": 1}), None)
        .await
        .expect("starts");
    let done = engine.wait(&rec.id, WAIT).await.expect("finishes");
    (done.status, history(store, &rec.id).await)
}

/// Every failed attempt of a step: (error name, cause).
fn failures(events: &[EventKind]) -> Vec<(String, String)> {
    events
        .iter()
        .filter_map(|e| match e {
            EventKind::StepFailed { error, .. } => Some((error.error.clone(), error.cause.clone())),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_participant_and_its_compensation_work_with_a_ca_given_in_the_configuration() {
    let ca = Ca::new("sagaflow test CA");
    let server = HttpsServer::start(&ca.issue(&["127.0.0.1"]), None).await;
    let (store, engine) = engine(&server.base_url, trusting(&ca)).await;

    let (status, events) = run(&engine, &store, RESERVE_THEN_FAIL).await;

    assert_eq!(status, Status::Compensated, "{events:#?}");
    assert_eq!(server.paths(), ["/reserve", "/charge/fail", "/cancel"]);
    let reserve = &server.received()[0];
    assert!(
        reserve.headers["idempotency-key"]
            .to_str()
            .unwrap()
            .ends_with("action"),
        "the protocol's headers travel over TLS: {:?}",
        reserve.headers
    );
    assert_eq!(reserve.body, json!({"n": 1}));
    assert!(server.handshake_errors().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_certificate_fails_the_attempt_as_a_task_failure_that_says_it_is_not_trusted()
{
    // Signed by a CA the engine was not told about (nor the system).
    let unknown = Ca::new("someone else's CA");
    let server = HttpsServer::start(&unknown.issue(&["127.0.0.1"]), None).await;
    let (store, engine) = engine(&server.base_url, TlsConfig::default()).await;

    let (status, events) = run(&engine, &store, ONE_STEP).await;

    // Nothing was delivered: both attempts are plain, non-ambiguous failures,
    // so nothing is compensated around a possible effect.
    assert_eq!(status, Status::Compensated, "{events:#?}");
    let failed = failures(&events);
    assert_eq!(failed.len(), 2, "{failed:#?}");
    for (error, cause) in &failed {
        assert_eq!(error, TASK_FAILED, "{cause}");
        assert!(
            cause.contains("the server's certificate is not trusted")
                && cause.contains("not signed by a trusted certificate authority"),
            "{cause}"
        );
        assert!(
            cause.starts_with(&format!("POST {}/call: ", server.base_url)),
            "{cause}"
        );
    }
    assert!(server.received().is_empty());
    // The server sees each refused handshake too (a little after the client).
    let deadline = std::time::Instant::now() + WAIT;
    while server.handshake_errors().len() < 2 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(server.handshake_errors().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_for_another_host_name_is_not_trusted_either() {
    let ca = Ca::new("sagaflow test CA");
    let server = HttpsServer::start(&ca.issue(&["svc.example"]), None).await;
    let (store, engine) = engine(&server.base_url, trusting(&ca)).await;

    let (_, events) = run(&engine, &store, ONE_STEP).await;

    let (error, cause) = &failures(&events)[0];
    assert_eq!(error, TASK_FAILED);
    assert!(
        cause.contains("certificate is not trusted: it is not valid for this host name"),
        "{cause}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_requiring_a_client_certificate_accepts_the_configured_one() {
    let ca = Ca::new("sagaflow test CA");
    let clients = Ca::new("client CA");
    let server = HttpsServer::start(&ca.issue(&["127.0.0.1"]), Some(&clients)).await;
    let client = clients.issue(&["sagaflow-client"]);
    let tls = TlsConfig {
        identity_pem: Some(format!("{}\n{}", client.cert_pem, client.key_pem).into_bytes()),
        ..trusting(&ca)
    };
    let (store, engine) = engine(&server.base_url, tls).await;

    let (status, events) = run(&engine, &store, RESERVE_THEN_FAIL).await;

    assert_eq!(status, Status::Compensated, "{events:#?}");
    assert_eq!(server.paths(), ["/reserve", "/charge/fail", "/cancel"]);
    assert!(server.handshake_errors().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_client_certificate_an_mtls_server_refuses_the_handshake_and_nothing_is_delivered(
) {
    let ca = Ca::new("sagaflow test CA");
    let clients = Ca::new("client CA");
    let server = HttpsServer::start(&ca.issue(&["127.0.0.1"]), Some(&clients)).await;
    let (store, engine) = engine(&server.base_url, trusting(&ca)).await;

    let (status, events) = run(&engine, &store, ONE_STEP).await;

    assert_eq!(status, Status::Compensated, "{events:#?}");
    let failed = failures(&events);
    assert_eq!(failed.len(), 2, "{failed:#?}");
    for (error, cause) in &failed {
        assert_eq!(error, TASK_FAILED, "{cause}");
        assert!(
            cause.contains("TLS handshake failed: the server requires a client certificate"),
            "{cause}"
        );
    }
    assert!(server.received().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_from_a_ca_the_server_does_not_trust_is_refused_with_a_clear_cause() {
    let ca = Ca::new("sagaflow test CA");
    let clients = Ca::new("client CA");
    let server = HttpsServer::start(&ca.issue(&["127.0.0.1"]), Some(&clients)).await;
    let stranger = Ca::new("another client CA").issue(&["sagaflow-client"]);
    let tls = TlsConfig {
        identity_pem: Some(format!("{}\n{}", stranger.cert_pem, stranger.key_pem).into_bytes()),
        ..trusting(&ca)
    };
    let (store, engine) = engine(&server.base_url, tls).await;

    let (_, events) = run(&engine, &store, ONE_STEP).await;

    let (error, cause) = &failures(&events)[0];
    assert_eq!(error, TASK_FAILED, "{cause}");
    assert!(
        cause.contains("the server refused this client's certificate"),
        "{cause}"
    );
    assert!(server.received().is_empty());
}

#[test]
fn a_client_certificate_without_its_key_or_an_empty_ca_bundle_is_refused_when_the_engine_is_built()
{
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("client.pem");
    std::fs::write(&cert, Ca::new("x").issue(&["c"]).cert_pem).unwrap();
    let err = TlsConfig::from_files(None, Some(&cert), None).unwrap_err();
    assert!(err.to_string().contains("private key"), "{err}");

    let missing = dir.path().join("missing.pem");
    let err = TlsConfig::from_files(Some(&missing), None, None).unwrap_err();
    assert!(err.to_string().contains("missing.pem"), "{err}");

    let empty = TlsConfig {
        ca_pem: Some(b"not a certificate".to_vec()),
        identity_pem: None,
    };
    let built = Engine::builder(Arc::new(MemoryStore::new()))
        .config(Config {
            tls: empty,
            ..Config::default()
        })
        .try_build();
    let err = built.err().expect("an empty CA bundle is refused");
    assert!(err.to_string().contains("no PEM certificate"), "{err}");
}
