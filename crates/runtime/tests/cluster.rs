//! Several nodes on one store: each node is an engine on its own tokio
//! runtime, built with `Engine::cluster_builder`, all sharing one `Arc<MemoryStore>` (which
//! implements leases like PostgreSQL, on the host clock). A crash is
//! `Runtime::shutdown_background()`: the node's tasks vanish, its leases
//! stay until they run out.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sagaflow_core::{EventKind, Status};
use sagaflow_runtime::{handler_fn, Config, Engine, Error, NodeConfig};
use sagaflow_store::memory::MemoryStore;
use sagaflow_store::Executor;
use serde_json::{json, Value};
use tokio::runtime::Runtime;
use tokio::sync::mpsc;

const TTL: Duration = Duration::from_millis(400);

const PAY: &str = r#"
name: pay
steps:
  - name: reserve
    action: { handler: work }
    compensation: { handler: work }
  - name: charge
    action: { handler: work }
"#;

/// A saga whose step after the pivot fails its first call and has no
/// retries left: it ends `failed`, and a redrive finishes it.
const FLAKY: &str = r#"
name: flaky
steps:
  - name: charge
    pivot: true
    action: { handler: work }
  - name: confirm
    action: { handler: flaky }
    retry: { max_attempts: 1 }
"#;

/// A saga whose second step waits for a token; with a heartbeat the
/// execution stays resident on its node, without one it parks.
fn approval(heartbeat: bool) -> String {
    format!(
        r#"
name: approval{}
steps:
  - name: reserve
    action: {{ handler: work }}
    compensation: {{ handler: work }}
  - name: approve
    callback: true
    timeout: 60s
{}    action: {{ handler: ask }}
"#,
        if heartbeat { "_hb" } else { "" },
        if heartbeat {
            "    heartbeat: 30s\n"
        } else {
            ""
        }
    )
}

struct Node {
    rt: Runtime,
    engine: Engine,
    calls: Arc<AtomicUsize>,
    tokens: mpsc::UnboundedReceiver<String>,
}

/// Boots a node. `answers: false` makes its `work` handler hang forever
/// (the node dies with the call in flight).
fn boot(store: &Arc<MemoryStore>, id: &str, answers: bool) -> Node {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let calls = Arc::new(AtomicUsize::new(0));
    // Unbounded: a participant never waits for the test to read a token
    // (a test reads only those it needs).
    let (tx, tokens) = mpsc::unbounded_channel();
    let c = calls.clone();
    let node = NodeConfig {
        id: id.into(),
        address: format!("http://{id}.invalid"),
        lease_ttl: TTL,
    };
    let engine = Engine::cluster_builder(store.clone(), node)
        .config(Config {
            timer_poll: Duration::from_millis(50),
            ..Config::default()
        })
        .handler(
            "work",
            handler_fn(move |_req| {
                let c = c.clone();
                async move {
                    c.fetch_add(1, Ordering::SeqCst);
                    if !answers {
                        std::future::pending::<()>().await;
                    }
                    Ok(json!({"ok": true}))
                }
            }),
        )
        .handler("flaky", {
            let failed_once = Arc::new(AtomicUsize::new(0));
            handler_fn(move |_req| {
                let failed_once = failed_once.clone();
                async move {
                    if failed_once.fetch_add(1, Ordering::SeqCst) == 0 {
                        return Err(sagaflow_core::ErrorInfo::new("Declined", "first try"));
                    }
                    Ok(json!({"charged": true}))
                }
            })
        })
        .handler(
            "ask",
            handler_fn(move |req| {
                let tx = tx.clone();
                async move {
                    if let Some(t) = req.task_token {
                        let _ = tx.send(t);
                    }
                    Ok(Value::Null)
                }
            }),
        )
        .build();
    rt.block_on(async {
        engine.start().await.expect("node starts");
        for d in [
            PAY.to_string(),
            FLAKY.to_string(),
            approval(false),
            approval(true),
        ] {
            engine.deploy(None, &d).await.expect("deploys");
        }
    });
    Node {
        rt,
        engine,
        calls,
        tokens,
    }
}

fn crash(node: Node) {
    let Node { rt, engine, .. } = node;
    drop(engine);
    rt.shutdown_background();
}

fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_dead_nodes_execution_is_taken_over_once_its_lease_runs_out() {
    let store = Arc::new(MemoryStore::new());
    let a = boot(&store, "a", false);
    let b = boot(&store, "b", true);
    a.rt.block_on(async {
        a.engine
            .start_execution("pay", json!({}), Some("t1".into()))
            .await
            .unwrap();
    });
    wait_until("node a called the participant", || {
        a.calls.load(Ordering::SeqCst) == 1
    });
    crash(a);
    let rec =
        b.rt.block_on(async { b.engine.wait("t1", Duration::from_secs(15)).await.unwrap() });
    assert_eq!(rec.status, Status::Succeeded);
    // Node b re-invoked the step a had scheduled (same attempt, same key),
    // then ran the rest.
    let history = b.rt.block_on(store.load_history("t1")).unwrap();
    let scheduled = history
        .iter()
        .filter(|e| matches!(&e.kind, EventKind::StepScheduled { step, .. } if step == "reserve"))
        .count();
    assert_eq!(scheduled, 1, "the attempt was not scheduled again");
    assert_eq!(b.calls.load(Ordering::SeqCst), 2);
}

#[test]
fn a_callback_for_a_resident_execution_of_another_node_names_its_owner() {
    let store = Arc::new(MemoryStore::new());
    let mut a = boot(&store, "a", true);
    let b = boot(&store, "b", true);
    let token = a.rt.block_on(async {
        a.engine
            .start_execution("approval_hb", json!({}), Some("h1".into()))
            .await
            .unwrap();
        a.tokens.recv().await.expect("a token")
    });
    let refused =
        b.rt.block_on(b.engine.callback(&token, Some(Ok(json!({})))));
    match refused {
        Err(Error::OwnedElsewhere { node, address, .. }) => {
            assert_eq!(node, "a");
            assert_eq!(address.as_deref(), Some("http://a.invalid"));
        }
        other => panic!("expected OwnedElsewhere, got {other:?}"),
    }
    // The owner itself takes it.
    let rec =
        a.rt.block_on(a.engine.callback(&token, Some(Ok(json!({"yes": 1})))))
            .expect("the owner accepts the token");
    assert_ne!(rec.status, Status::Failed);
    let rec =
        a.rt.block_on(a.engine.wait("h1", Duration::from_secs(10)))
            .unwrap();
    assert_eq!(rec.status, Status::Succeeded);
}

#[test]
fn a_parked_execution_can_be_completed_through_any_node() {
    let store = Arc::new(MemoryStore::new());
    let mut a = boot(&store, "a", true);
    let b = boot(&store, "b", true);
    let token = a.rt.block_on(async {
        a.engine
            .start_execution("approval", json!({}), Some("p1".into()))
            .await
            .unwrap();
        a.tokens.recv().await.expect("a token")
    });
    // Parked: it left node a's memory and released its lease.
    wait_until("the execution parked on node a", || a.engine.active() == 0);
    b.rt.block_on(b.engine.callback(&token, Some(Ok(json!({"yes": 1})))))
        .expect("node b takes the parked execution's callback");
    let rec =
        b.rt.block_on(b.engine.wait("p1", Duration::from_secs(10)))
            .unwrap();
    assert_eq!(rec.status, Status::Succeeded);
    crash(a);
}

#[test]
fn a_failed_execution_redriven_on_another_node_is_leased_there_and_finishes() {
    let store = Arc::new(MemoryStore::new());
    let a = boot(&store, "a", true);
    let b = boot(&store, "b", true);
    let rec = a.rt.block_on(async {
        a.engine
            .start_execution("flaky", json!({}), Some("f1".into()))
            .await
            .unwrap();
        a.engine.wait("f1", Duration::from_secs(10)).await.unwrap()
    });
    assert_eq!(rec.status, Status::Failed);
    // Node b has not failed once yet: its handler declines the first call too,
    // so the redrive on b fails again, and a second redrive on b succeeds.
    let rec = b.rt.block_on(async {
        b.engine.redrive("f1").await.expect("b redrives it");
        b.engine.wait("f1", Duration::from_secs(10)).await.unwrap()
    });
    assert_eq!(rec.status, Status::Failed);
    let rec = b.rt.block_on(async {
        b.engine.redrive("f1").await.expect("b redrives it again");
        b.engine.wait("f1", Duration::from_secs(10)).await.unwrap()
    });
    assert_eq!(rec.status, Status::Succeeded);
}
