//! Callback tasks: a step with `callback: true` is acknowledged by its
//! participant and completes only when its task token comes back.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sagaflow_core::{ErrorInfo, Status};
use sagaflow_runtime::{handler_fn, Config, Engine, Error};
use sagaflow_store::memory::MemoryStore;
use sagaflow_store::Query;
use serde_json::{json, Value};
use tokio::sync::mpsc;

const APPROVAL: &str = r#"
name: approval
steps:
  - name: reserve
    action: { handler: ok }
    compensation: { handler: undo }
  - name: approve
    callback: true
    timeout: 30s
    action: { handler: ask }
    compensation: { handler: undo }
  - name: book
    action: { handler: ok }
    input: { decision: "$.steps.approve.output.decision" }
"#;

struct World {
    engine: Engine,
    store: Arc<MemoryStore>,
    tokens: mpsc::UnboundedReceiver<String>,
    undone: Arc<Mutex<Vec<String>>>,
    booked_with: Arc<Mutex<Vec<Value>>>,
}

async fn world(definition: &str) -> World {
    let store = Arc::new(MemoryStore::new());
    // Unbounded: a participant never waits for the test to read a token
    // (a test reads only those it needs).
    let (tx, tokens) = mpsc::unbounded_channel();
    let undone = Arc::new(Mutex::new(Vec::new()));
    let booked_with = Arc::new(Mutex::new(Vec::new()));
    let (u, b) = (undone.clone(), booked_with.clone());
    let engine = Engine::builder(store.clone())
        .config(Config {
            timer_poll: Duration::from_millis(50),
            ..Config::default()
        })
        .handler(
            "ok",
            handler_fn(move |req| {
                let b = b.clone();
                async move {
                    if req.step == "book" {
                        b.lock().unwrap().push(req.input.clone());
                    }
                    Ok(json!({ "ok": req.step }))
                }
            }),
        )
        .handler(
            "ask",
            handler_fn(move |req| {
                let tx = tx.clone();
                async move {
                    let token = req.task_token.clone().ok_or_else(|| {
                        ErrorInfo::new("NoToken", "a callback task must carry a token")
                    })?;
                    let _ = tx.send(token);
                    Ok(Value::Null)
                }
            }),
        )
        .handler(
            "undo",
            handler_fn(move |req| {
                let u = u.clone();
                async move {
                    u.lock().unwrap().push(req.step.clone());
                    Ok(Value::Null)
                }
            }),
        )
        .build();
    engine.start().await.unwrap();
    engine.deploy(None, definition).await.unwrap();
    World {
        engine,
        store,
        tokens,
        undone,
        booked_with,
    }
}

async fn token(w: &mut World) -> String {
    tokio::time::timeout(Duration::from_secs(10), w.tokens.recv())
        .await
        .expect("the participant was asked")
        .expect("token")
}

#[tokio::test]
async fn a_callback_step_waits_for_its_token_and_its_output_flows_on() {
    let mut w = world(APPROVAL).await;
    let (rec, _) = w
        .engine
        .start_execution("approval", json!({}), Some("ex-1".into()))
        .await
        .unwrap();
    let token = token(&mut w).await;
    let parked = w.engine.get(&rec.id).await.unwrap();
    assert_eq!(
        parked.status,
        Status::Running,
        "the execution waits for the callback"
    );
    w.engine
        .callback(&token, Some(Ok(json!({ "decision": "yes" }))))
        .await
        .unwrap();
    let done = w
        .engine
        .wait(&rec.id, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(done.status, Status::Succeeded);
    assert_eq!(
        *w.booked_with.lock().unwrap(),
        vec![json!({ "decision": "yes" })]
    );
}

#[tokio::test]
async fn a_failure_sent_through_the_token_rolls_the_saga_back() {
    let mut w = world(APPROVAL).await;
    let (rec, _) = w
        .engine
        .start_execution("approval", json!({}), None)
        .await
        .unwrap();
    let token = token(&mut w).await;
    w.engine
        .callback(
            &token,
            Some(Err(ErrorInfo::new("Rejected", "the manager said no"))),
        )
        .await
        .unwrap();
    let done = w
        .engine
        .wait(&rec.id, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(done.status, Status::Compensated);
    assert_eq!(done.error.unwrap().error, "Rejected");
    assert_eq!(*w.undone.lock().unwrap(), vec!["reserve".to_string()]);
}

#[tokio::test]
async fn a_callback_failure_named_like_an_engine_timeout_is_a_refusal_and_is_not_compensated() {
    let mut w = world(APPROVAL).await;
    let (rec, _) = w
        .engine
        .start_execution("approval", json!({}), None)
        .await
        .unwrap();
    let token = token(&mut w).await;
    w.engine
        .callback(
            &token,
            Some(Err(ErrorInfo::new("States.Timeout", "not my problem"))),
        )
        .await
        .unwrap();
    let done = w
        .engine
        .wait(&rec.id, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(done.status, Status::Compensated);
    let error = done.error.unwrap();
    assert_eq!(error.error, sagaflow_core::error_name::RESERVED_ERROR_NAME);
    assert!(error.cause.contains("`States.Timeout`"), "{}", error.cause);
    // Taken for a timeout, the approval would be undone too.
    assert_eq!(*w.undone.lock().unwrap(), vec!["reserve".to_string()]);
}

#[tokio::test]
async fn a_callback_that_never_comes_times_out_and_the_step_is_compensated_too() {
    let mut w = world(&APPROVAL.replace(
        "timeout: 30s",
        "timeout: 100ms\n    retry: { max_attempts: 1 }",
    ))
    .await;
    let (rec, _) = w
        .engine
        .start_execution("approval", json!({}), None)
        .await
        .unwrap();
    let _ = token(&mut w).await;
    let done = w
        .engine
        .wait(&rec.id, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(done.status, Status::Compensated);
    assert_eq!(done.error.unwrap().error, "States.Timeout");
    // The approval may have been acted on: it is undone before the reservation.
    assert_eq!(
        *w.undone.lock().unwrap(),
        vec!["approve".to_string(), "reserve".to_string()]
    );
}

#[tokio::test]
async fn a_token_is_accepted_once_and_a_forged_one_is_refused() {
    let mut w = world(APPROVAL).await;
    let (rec, _) = w
        .engine
        .start_execution("approval", json!({}), None)
        .await
        .unwrap();
    let token = token(&mut w).await;
    w.engine
        .callback(&token, None)
        .await
        .expect("a heartbeat while waiting is accepted");
    w.engine
        .callback(&token, Some(Ok(json!({ "decision": "yes" }))))
        .await
        .unwrap();
    w.engine
        .wait(&rec.id, Duration::from_secs(10))
        .await
        .unwrap();
    let again = w
        .engine
        .callback(&token, Some(Ok(json!({}))))
        .await
        .unwrap_err();
    assert_eq!(again.code(), "callback_not_waiting");
    let forged = w
        .engine
        .callback("not-a-token", Some(Ok(json!({}))))
        .await
        .unwrap_err();
    assert!(matches!(forged, Error::InvalidTaskToken(_)), "{forged:?}");
    let history = w.store.history(&rec.id, 0).await.unwrap();
    let successes = history
        .iter()
        .filter(|h| {
            h.event.kind.name() == "step_succeeded" && h.event.kind.step() == Some("approve")
        })
        .count();
    assert_eq!(successes, 1, "the second callback changed nothing");
}

#[tokio::test]
async fn a_token_rebuilt_from_the_execution_id_and_step_without_its_nonce_is_refused() {
    let mut w = world(APPROVAL).await;
    let (rec, _) = w
        .engine
        .start_execution("approval", json!({}), None)
        .await
        .unwrap();
    let real = token(&mut w).await;
    let parsed = sagaflow_core::parse_task_token(&real).expect("a real token parses");
    let forged = sagaflow_core::task_token(
        &rec.id,
        "approve",
        parsed.task,
        parsed.attempt,
        "0000000000000000",
    );
    assert_ne!(forged, real);
    let err = w
        .engine
        .callback(&forged, Some(Ok(json!({}))))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "invalid_task_token");
    w.engine
        .callback(&real, Some(Ok(json!({ "decision": "yes" }))))
        .await
        .unwrap();
    let done = w
        .engine
        .wait(&rec.id, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(done.status, Status::Succeeded);
}

const HEARTBEATS: &str = r#"
name: approval
steps:
  - name: reserve
    action: { handler: ok }
    compensation: { handler: undo }
  - name: approve
    callback: true
    timeout: 1h
    heartbeat: 1s
    retry: { max_attempts: 1 }
    action: { handler: ask }
    compensation: { handler: undo }
  - name: book
    action: { handler: ok }
    input: { decision: "$.steps.approve.output.decision" }
"#;

#[tokio::test]
async fn heartbeats_keep_a_long_callback_alive_past_its_heartbeat_interval() {
    let mut w = world(HEARTBEATS).await;
    let (rec, _) = w
        .engine
        .start_execution("approval", json!({}), None)
        .await
        .unwrap();
    let token = token(&mut w).await;
    // Three heartbeat intervals pass with a heartbeat every 100ms.
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        w.engine
            .callback(&token, None)
            .await
            .expect("still waiting");
    }
    w.engine
        .callback(&token, Some(Ok(json!({ "decision": "yes" }))))
        .await
        .unwrap();
    let done = w
        .engine
        .wait(&rec.id, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(done.status, Status::Succeeded);
}

#[tokio::test]
async fn a_silent_callback_fails_at_its_heartbeat_long_before_its_timeout() {
    let mut w = world(HEARTBEATS).await;
    let (rec, _) = w
        .engine
        .start_execution("approval", json!({}), None)
        .await
        .unwrap();
    let _ = token(&mut w).await;
    let done = w
        .engine
        .wait(&rec.id, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(done.status, Status::Compensated);
    let error = done.error.unwrap();
    assert_eq!(error.error, "States.Timeout");
    assert!(error.cause.contains("no heartbeat"), "{}", error.cause);
    assert_eq!(
        *w.undone.lock().unwrap(),
        vec!["approve".to_string(), "reserve".to_string()]
    );
}

#[tokio::test]
async fn every_waiter_hears_the_outcome_and_a_waiter_that_gives_up_gets_the_current_state() {
    let mut w = world(APPROVAL).await;
    let (rec, _) = w
        .engine
        .start_execution("approval", json!({}), None)
        .await
        .unwrap();
    let token = token(&mut w).await;
    let impatient = w
        .engine
        .wait(&rec.id, Duration::from_millis(50))
        .await
        .unwrap();
    assert_eq!(
        impatient.status,
        Status::Running,
        "the approval has not come yet"
    );
    let waiters: Vec<_> = (0..50)
        .map(|_| {
            let (engine, id) = (w.engine.clone(), rec.id.clone());
            tokio::spawn(async move { engine.wait(&id, Duration::from_secs(30)).await })
        })
        .collect();
    w.engine
        .callback(&token, Some(Ok(json!({ "decision": "yes" }))))
        .await
        .unwrap();
    for waiter in waiters {
        assert_eq!(waiter.await.unwrap().unwrap().status, Status::Succeeded);
    }
}

#[tokio::test]
async fn a_server_shutting_down_refuses_new_executions_as_shutting_down() {
    let w = world(APPROVAL).await;
    w.engine.shutdown(Duration::ZERO).await;
    let refused = w
        .engine
        .start_execution("approval", json!({}), None)
        .await
        .unwrap_err();
    assert!(matches!(refused, Error::ShuttingDown), "{refused:?}");
    assert_eq!(refused.code(), "shutting_down");
}
