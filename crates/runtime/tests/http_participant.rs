//! Sagas against a real HTTP participant.
//!
//! Each test starts a small axum server on 127.0.0.1:0 whose answers are
//! scripted per route and which records every request (`Idempotency-Key`,
//! `Sagaflow-Attempt`, body). Definitions point at it through `${SVC}`, and
//! the engine runs on an in-memory store. Outcomes are awaited with
//! `Engine::wait`; the only timeouts are test deadlines.

mod support;

use std::sync::Arc;

use sagaflow_core::{EventKind, Status};
use sagaflow_runtime::Error;
use sagaflow_store::memory::MemoryStore;
use sagaflow_store::Query;
use serde_json::json;
use support::{describe, engine_on, history, Gate, Participant, Reply, WAIT};

async fn setup() -> (Participant, Arc<MemoryStore>, sagaflow_runtime::Engine) {
    let p = Participant::start().await;
    let store = Arc::new(MemoryStore::new());
    let engine = engine_on(store.clone(), &p.base_url).await;
    (p, store, engine)
}

/// Compensation calls as routes, in the order they arrived.
fn cancels(p: &Participant) -> Vec<String> {
    p.paths()
        .into_iter()
        .filter(|path| path.ends_with("/cancel"))
        .collect()
}

const TRIP: &str = r#"
name: trip
steps:
  - name: reserve_hotel
    action: { http: { url: "${SVC}/hotel/reserve" } }
    compensation: { http: { url: "${SVC}/hotel/cancel" } }
    input: { trip_id: "$.input.trip_id" }
  - name: take_payment
    pivot: true
    action: { http: { url: "${SVC}/payment/charge" } }
    input: { trip_id: "$.input.trip_id", amount: "$.input.amount" }
  - name: confirm_hotel
    action: { http: { url: "${SVC}/hotel/confirm" } }
    input:
      booking_id: "$.steps.reserve_hotel.output.booking_id"
      payment_id: "$.steps.take_payment.output.payment_id"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_successful_saga_passes_step_outputs_to_later_steps() {
    let (p, store, engine) = setup().await;
    p.script("/hotel/reserve", [Reply::ok(json!({"booking_id": "H-42"}))]);
    p.script("/payment/charge", [Reply::ok(json!({"payment_id": "P-7"}))]);
    p.script("/hotel/confirm", [Reply::ok(json!({"confirmed": true}))]);
    engine.deploy(None, TRIP).await.unwrap();

    let input = json!({"trip_id": "T-1", "amount": 120});
    let (rec, created) = engine
        .start_execution("trip", input, Some("trip-ok".into()))
        .await
        .unwrap();
    assert!(created);
    let done = engine.wait(&rec.id, WAIT).await.unwrap();

    assert_eq!(done.status, Status::Succeeded, "{done:?}");
    assert_eq!(
        p.paths(),
        ["/hotel/reserve", "/payment/charge", "/hotel/confirm"]
    );
    assert_eq!(
        p.calls_to("/hotel/reserve")[0].body,
        json!({"trip_id": "T-1"})
    );
    assert_eq!(
        p.calls_to("/payment/charge")[0].body,
        json!({"trip_id": "T-1", "amount": 120})
    );
    assert_eq!(
        p.calls_to("/hotel/confirm")[0].body,
        json!({"booking_id": "H-42", "payment_id": "P-7"})
    );
    assert!(p.calls().iter().all(|c| c.execution_id == "trip-ok"));
    assert_eq!(
        done.output,
        Some(json!({
            "reserve_hotel": {"booking_id": "H-42"},
            "take_payment": {"payment_id": "P-7"},
            "confirm_hotel": {"confirmed": true},
        }))
    );
    assert!(cancels(&p).is_empty());
    let h = history(&store, &rec.id).await;
    assert_eq!(
        describe(&h),
        [
            "execution_started",
            "step_scheduled reserve_hotel",
            "step_succeeded reserve_hotel",
            "step_scheduled take_payment",
            "step_succeeded take_payment",
            "step_scheduled confirm_hotel",
            "step_succeeded confirm_hotel",
            "execution_finished",
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_participant_answering_503_twice_succeeds_on_attempt_3_with_one_idempotency_key() {
    let (p, store, engine) = setup().await;
    p.script(
        "/flight/reserve",
        [
            Reply::failure(503),
            Reply::failure(503),
            Reply::ok(json!({"seat": "12A"})),
        ],
    );
    engine
        .deploy(
            None,
            r#"
name: flight
steps:
  - name: reserve_flight
    action: { http: { url: "${SVC}/flight/reserve" } }
    retry: { initial_delay: 10ms, max_delay: 20ms }
"#,
        )
        .await
        .unwrap();

    let (rec, _) = engine
        .start_execution("flight", json!({}), None)
        .await
        .unwrap();
    let done = engine.wait(&rec.id, WAIT).await.unwrap();

    assert_eq!(done.status, Status::Succeeded, "{done:?}");
    let calls = p.calls_to("/flight/reserve");
    assert_eq!(
        calls.iter().map(|c| c.attempt).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(
        calls[0].idempotency_key,
        format!("{}:reserve_flight:action", rec.id)
    );
    assert!(calls
        .iter()
        .all(|c| c.idempotency_key == calls[0].idempotency_key));
    let h = history(&store, &rec.id).await;
    let failures: Vec<_> = h
        .iter()
        .filter_map(|e| match e {
            EventKind::StepFailed { error, .. } => Some(error.error.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(failures, ["States.TaskFailed", "States.TaskFailed"]);
    assert_eq!(
        done.output,
        Some(json!({"reserve_flight": {"seat": "12A"}}))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_business_error_fails_the_step_without_retries_and_compensates_earlier_steps_in_reverse_order(
) {
    let (p, store, engine) = setup().await;
    p.script(
        "/hotel/reserve",
        [Reply::business(409, "HotelFull", "no rooms left in Lisbon")],
    );
    engine
        .deploy(
            None,
            r#"
name: booking
steps:
  - name: reserve_flight
    action: { http: { url: "${SVC}/flight/reserve" } }
    compensation: { http: { url: "${SVC}/flight/cancel" } }
  - name: reserve_car
    action: { http: { url: "${SVC}/car/reserve" } }
    compensation: { http: { url: "${SVC}/car/cancel" } }
  - name: reserve_hotel
    action: { http: { url: "${SVC}/hotel/reserve" } }
    compensation: { http: { url: "${SVC}/hotel/cancel" } }
    retry: { initial_delay: 10ms }
  - name: take_payment
    action: { http: { url: "${SVC}/payment/charge" } }
"#,
        )
        .await
        .unwrap();

    let (rec, _) = engine
        .start_execution("booking", json!({"trip": 1}), None)
        .await
        .unwrap();
    let done = engine.wait(&rec.id, WAIT).await.unwrap();

    assert_eq!(done.status, Status::Compensated, "{done:?}");
    let error = done.error.expect("a compensated execution says why");
    assert_eq!(error.error, "HotelFull");
    assert_eq!(error.cause, "no rooms left in Lisbon");
    assert_eq!(
        p.calls_to("/hotel/reserve").len(),
        1,
        "a business error is not retried"
    );
    assert_eq!(cancels(&p), ["/car/cancel", "/flight/cancel"]);
    assert!(p.calls_to("/payment/charge").is_empty());
    let h = history(&store, &rec.id).await;
    assert!(
        h.iter().any(|e| matches!(e,
            EventKind::RollbackStarted { step, error } if step == "reserve_hotel" && error.error == "HotelFull")),
        "{:?}",
        describe(&h)
    );
    // The compensations got their own key, and the action's input by default.
    let car_cancel = &p.calls_to("/car/cancel")[0];
    assert_eq!(
        car_cancel.idempotency_key,
        format!("{}:reserve_car:compensation", rec.id)
    );
    assert_eq!(car_cancel.body, json!({"trip": 1}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_participant_slower_than_the_timeout_times_out_and_the_timed_out_step_is_compensated_too()
{
    let (p, store, engine) = setup().await;
    // The hotel takes the booking but never answers: the outcome is unknown.
    p.script(
        "/hotel/reserve",
        [Reply::ok(json!({"booking_id": "H-1"})).never()],
    );
    engine
        .deploy(
            None,
            r#"
name: slow
steps:
  - name: reserve_flight
    action: { http: { url: "${SVC}/flight/reserve" } }
    compensation: { http: { url: "${SVC}/flight/cancel" } }
  - name: reserve_hotel
    action: { http: { url: "${SVC}/hotel/reserve" } }
    compensation: { http: { url: "${SVC}/hotel/cancel" } }
    timeout: 300ms
    retry: { max_attempts: 1 }
"#,
        )
        .await
        .unwrap();

    let (rec, _) = engine
        .start_execution("slow", json!({}), None)
        .await
        .unwrap();
    let done = engine.wait(&rec.id, WAIT).await.unwrap();

    assert_eq!(done.status, Status::Compensated, "{done:?}");
    assert_eq!(
        done.error.as_ref().map(|e| e.error.as_str()),
        Some("States.Timeout")
    );
    assert_eq!(p.calls_to("/hotel/reserve").len(), 1);
    // The ambiguous step is undone first, then the one before it.
    assert_eq!(cancels(&p), ["/hotel/cancel", "/flight/cancel"]);
    let h = history(&store, &rec.id).await;
    assert!(
        h.iter().any(|e| matches!(e,
            EventKind::StepFailed { step, error, .. } if step == "reserve_hotel" && error.error == "States.Timeout")),
        "{:?}",
        describe(&h)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_branch_still_running_when_its_sibling_fails_is_awaited_and_compensated_if_it_timed_out()
{
    let (p, store, engine) = setup().await;
    // The flight is booked but the answer never comes; the car is refused.
    p.script(
        "/flight/reserve",
        [Reply::ok(json!({"seat": "1A"})).never()],
    );
    p.script(
        "/car/reserve",
        [Reply::business(422, "NoCars", "none left")],
    );
    engine
        .deploy(
            None,
            r#"
name: transport
steps:
  - name: reserve_hotel
    action: { http: { url: "${SVC}/hotel/reserve" } }
    compensation: { http: { url: "${SVC}/hotel/cancel" } }
  - parallel:
      name: travel
      branches:
        - name: reserve_flight
          action: { http: { url: "${SVC}/flight/reserve" } }
          compensation: { http: { url: "${SVC}/flight/cancel" } }
          timeout: 300ms
          retry: { max_attempts: 1 }
        - name: reserve_car
          action: { http: { url: "${SVC}/car/reserve" } }
          compensation: { http: { url: "${SVC}/car/cancel" } }
"#,
        )
        .await
        .unwrap();

    let (rec, _) = engine
        .start_execution("transport", json!({}), None)
        .await
        .unwrap();
    let done = engine.wait(&rec.id, WAIT).await.unwrap();

    assert_eq!(done.status, Status::Compensated, "{done:?}");
    assert_eq!(
        done.error.as_ref().map(|e| e.error.as_str()),
        Some("NoCars")
    );
    // The refused car is not undone; the flight, whose outcome is unknown, is.
    assert_eq!(cancels(&p), ["/flight/cancel", "/hotel/cancel"]);
    let h = history(&store, &rec.id).await;
    let rollback = h
        .iter()
        .position(|e| matches!(e, EventKind::RollbackStarted { .. }))
        .expect("rollback");
    let timeout = h
        .iter()
        .position(|e| matches!(e,
            EventKind::StepFailed { step, error, .. } if step == "reserve_flight" && error.error == "States.Timeout"))
        .expect("the flight timed out");
    assert!(rollback < timeout, "{:?}", describe(&h));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compensation_failing_with_500_is_retried_until_it_succeeds() {
    let (p, _store, engine) = setup().await;
    p.script(
        "/hotel/reserve",
        [Reply::business(409, "HotelFull", "full")],
    );
    p.script(
        "/flight/cancel",
        [
            Reply::failure(500),
            Reply::failure(500),
            Reply::failure(500),
            Reply::ok(json!({"cancelled": true})),
        ],
    );
    engine
        .deploy(
            None,
            r#"
name: comp-retry
steps:
  - name: reserve_flight
    action: { http: { url: "${SVC}/flight/reserve" } }
    compensation:
      http: { url: "${SVC}/flight/cancel" }
      retry: { initial_delay: 10ms, max_delay: 20ms }
  - name: reserve_hotel
    action: { http: { url: "${SVC}/hotel/reserve" } }
"#,
        )
        .await
        .unwrap();

    let (rec, _) = engine
        .start_execution("comp-retry", json!({}), None)
        .await
        .unwrap();
    let done = engine.wait(&rec.id, WAIT).await.unwrap();

    assert_eq!(done.status, Status::Compensated, "{done:?}");
    let calls = p.calls_to("/flight/cancel");
    assert_eq!(
        calls.iter().map(|c| c.attempt).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    assert!(calls
        .iter()
        .all(|c| c.idempotency_key == calls[0].idempotency_key));
    assert_eq!(p.effects_at("/flight/cancel"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compensation_that_exhausts_its_retries_fails_the_execution_and_a_redrive_finishes_the_rollback(
) {
    let (p, store, engine) = setup().await;
    p.script(
        "/hotel/reserve",
        [Reply::business(409, "HotelFull", "full")],
    );
    p.script("/flight/cancel", [Reply::failure(500)]);
    engine
        .deploy(
            None,
            r#"
name: stuck
steps:
  - name: reserve_flight
    action: { http: { url: "${SVC}/flight/reserve" } }
    compensation:
      http: { url: "${SVC}/flight/cancel" }
      retry: { max_attempts: 2, initial_delay: 10ms, max_delay: 20ms }
  - name: reserve_hotel
    action: { http: { url: "${SVC}/hotel/reserve" } }
"#,
        )
        .await
        .unwrap();

    let (rec, _) = engine
        .start_execution("stuck", json!({}), None)
        .await
        .unwrap();
    let failed = engine.wait(&rec.id, WAIT).await.unwrap();

    assert_eq!(failed.status, Status::Failed, "{failed:?}");
    assert_eq!(
        failed.error.as_ref().map(|e| e.error.as_str()),
        Some("States.TaskFailed")
    );
    assert_eq!(p.calls_to("/flight/cancel").len(), 2);

    // The flight service recovers; the operator redrives.
    p.script("/flight/cancel", [Reply::ok(json!({"cancelled": true}))]);
    let redriven = engine.redrive(&rec.id).await.unwrap();
    assert!(!redriven.status.is_terminal(), "{redriven:?}");
    let done = engine.wait(&rec.id, WAIT).await.unwrap();

    assert_eq!(done.status, Status::Compensated, "{done:?}");
    assert_eq!(
        done.error.as_ref().map(|e| e.error.as_str()),
        Some("HotelFull")
    );
    let calls = p.calls_to("/flight/cancel");
    assert_eq!(
        calls.iter().map(|c| c.attempt).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert!(calls
        .iter()
        .all(|c| c.idempotency_key == calls[0].idempotency_key));
    let h = history(&store, &rec.id).await;
    assert!(h
        .iter()
        .any(|e| matches!(e, EventKind::ExecutionRedriven {})));
    // Redriving a finished execution again is refused.
    let again = engine.redrive(&rec.id).await.unwrap_err();
    assert_eq!(again.code(), "not_redrivable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retriable_step_after_the_pivot_that_fails_3_times_is_retried_forward_to_success() {
    let (p, _store, engine) = setup().await;
    p.script(
        "/hotel/confirm",
        [
            Reply::failure(503),
            Reply::business(409, "NotReady", "booking still pending"),
            Reply::failure(500),
            Reply::ok(json!({"confirmed": true})),
        ],
    );
    engine
        .deploy(
            None,
            r#"
name: forward
steps:
  - name: reserve_hotel
    action: { http: { url: "${SVC}/hotel/reserve" } }
    compensation: { http: { url: "${SVC}/hotel/cancel" } }
  - name: take_payment
    pivot: true
    action: { http: { url: "${SVC}/payment/charge" } }
  - name: confirm_hotel
    action: { http: { url: "${SVC}/hotel/confirm" } }
    retry: { initial_delay: 5ms, max_delay: 10ms }
"#,
        )
        .await
        .unwrap();

    let (rec, _) = engine
        .start_execution("forward", json!({}), None)
        .await
        .unwrap();
    let done = engine.wait(&rec.id, WAIT).await.unwrap();

    assert_eq!(done.status, Status::Succeeded, "{done:?}");
    assert_eq!(
        p.calls_to("/hotel/confirm")
            .iter()
            .map(|c| c.attempt)
            .collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    assert!(
        cancels(&p).is_empty(),
        "no compensation after the pivot: {:?}",
        p.paths()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_saga_waiting_on_a_slow_step_compensates_the_completed_steps() {
    let (p, store, engine) = setup().await;
    let gate = Gate::new();
    p.script(
        "/hotel/reserve",
        [Reply::ok(json!({"booking_id": "H-9"})).when(&gate)],
    );
    engine
        .deploy(
            None,
            r#"
name: cancellable
steps:
  - name: reserve_flight
    action: { http: { url: "${SVC}/flight/reserve" } }
    compensation: { http: { url: "${SVC}/flight/cancel" } }
  - name: reserve_hotel
    action: { http: { url: "${SVC}/hotel/reserve" } }
    compensation: { http: { url: "${SVC}/hotel/cancel" } }
  - name: reserve_car
    action: { http: { url: "${SVC}/car/reserve" } }
    compensation: { http: { url: "${SVC}/car/cancel" } }
"#,
        )
        .await
        .unwrap();

    let (rec, _) = engine
        .start_execution("cancellable", json!({}), None)
        .await
        .unwrap();
    p.wait_for_calls("/hotel/reserve", 1).await;
    let cancelling = engine
        .cancel(&rec.id, "customer changed their mind")
        .await
        .unwrap();
    assert_eq!(cancelling.status, Status::Compensating);
    // The hotel answers late: its booking is undone too, before the flight's.
    gate.open();
    let done = engine.wait(&rec.id, WAIT).await.unwrap();

    assert_eq!(done.status, Status::Cancelled, "{done:?}");
    assert!(p.calls_to("/car/reserve").is_empty());
    assert_eq!(cancels(&p), ["/hotel/cancel", "/flight/cancel"]);
    let h = history(&store, &rec.id).await;
    assert!(
        h.iter().any(|e| matches!(e,
            EventKind::CancelRequested { reason } if reason == "customer changed their mind")),
        "{:?}",
        describe(&h)
    );
    // Cancelling a finished execution is refused.
    let again = engine.cancel(&rec.id, "again").await.unwrap_err();
    assert_eq!(again.code(), "execution_finished");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_after_the_pivot_is_refused_with_past_pivot() {
    let (p, _store, engine) = setup().await;
    let gate = Gate::new();
    p.script("/hotel/reserve", [Reply::ok(json!({"booking_id": "H-1"}))]);
    p.script("/payment/charge", [Reply::ok(json!({"payment_id": "P-1"}))]);
    p.script(
        "/hotel/confirm",
        [Reply::ok(json!({"confirmed": true})).when(&gate)],
    );
    engine.deploy(None, TRIP).await.unwrap();

    let (rec, _) = engine
        .start_execution("trip", json!({"trip_id": "T-2", "amount": 5}), None)
        .await
        .unwrap();
    p.wait_for_calls("/hotel/confirm", 1).await;
    let err = engine.cancel(&rec.id, "too late").await.unwrap_err();

    assert_eq!(err.code(), "past_pivot", "{err}");
    assert!(matches!(err, Error::NotAllowed(_)), "{err:?}");
    gate.open();
    let done = engine.wait(&rec.id, WAIT).await.unwrap();
    assert_eq!(done.status, Status::Succeeded, "{done:?}");
    assert!(cancels(&p).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starting_twice_with_one_id_returns_the_existing_execution_and_a_different_input_conflicts()
{
    let (p, _store, engine) = setup().await;
    engine
        .deploy(
            None,
            r#"
name: once
steps:
  - name: charge
    action: { http: { url: "${SVC}/payment/charge" } }
"#,
        )
        .await
        .unwrap();
    let id = Some("order-17".to_string());

    let (first, created) = engine
        .start_execution("once", json!({"amount": 10}), id.clone())
        .await
        .unwrap();
    assert!(created);
    let (second, created_again) = engine
        .start_execution("once", json!({"amount": 10}), id.clone())
        .await
        .unwrap();
    assert!(!created_again);
    assert_eq!(second.id, first.id);
    assert_eq!(second.started_at, first.started_at);

    let conflict = engine
        .start_execution("once", json!({"amount": 11}), id.clone())
        .await
        .unwrap_err();
    assert!(
        matches!(conflict, Error::ExecutionConflict { .. }),
        "{conflict:?}"
    );
    assert_eq!(conflict.code(), "execution_conflict");

    let done = engine.wait("order-17", WAIT).await.unwrap();
    assert_eq!(done.status, Status::Succeeded, "{done:?}");
    // Still the same execution after it finished.
    let (third, created_late) = engine
        .start_execution("once", json!({"amount": 10}), id)
        .await
        .unwrap();
    assert!(!created_late);
    assert_eq!(third.status, Status::Succeeded);
    assert_eq!(p.calls_to("/payment/charge").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_definition_version_does_not_change_an_execution_started_on_the_old_one() {
    let (p, store, engine) = setup().await;
    let gate = Gate::new();
    p.script(
        "/v1/hotel/reserve",
        [Reply::ok(json!({"v": 1})).when(&gate)],
    );
    let v1 = engine
        .deploy(
            None,
            r#"
name: versioned
steps:
  - name: reserve_hotel
    action: { http: { url: "${SVC}/v1/hotel/reserve" } }
  - name: confirm_hotel
    action: { http: { url: "${SVC}/v1/hotel/confirm" } }
"#,
        )
        .await
        .unwrap();
    assert_eq!(v1.record.version, 1);

    let (old, _) = engine
        .start_execution("versioned", json!({}), None)
        .await
        .unwrap();
    p.wait_for_calls("/v1/hotel/reserve", 1).await;
    let v2 = engine
        .deploy(
            None,
            r#"
name: versioned
steps:
  - name: reserve_hotel
    action: { http: { url: "${SVC}/v2/hotel/reserve" } }
  - name: confirm_hotel
    action: { http: { url: "${SVC}/v2/hotel/confirm" } }
"#,
        )
        .await
        .unwrap();
    assert!(v2.created);
    assert_eq!(v2.record.version, 2);
    gate.open();
    let done = engine.wait(&old.id, WAIT).await.unwrap();

    assert_eq!(done.status, Status::Succeeded, "{done:?}");
    assert_eq!(done.version, 1);
    assert_eq!(store.get_execution(&old.id).await.unwrap().version, 1);
    assert_eq!(p.paths(), ["/v1/hotel/reserve", "/v1/hotel/confirm"]);

    // A new execution runs the new version.
    let (new, _) = engine
        .start_execution("versioned", json!({}), None)
        .await
        .unwrap();
    let done_new = engine.wait(&new.id, WAIT).await.unwrap();
    assert_eq!(done_new.status, Status::Succeeded, "{done_new:?}");
    assert_eq!(done_new.version, 2);
    assert_eq!(
        p.calls()
            .iter()
            .filter(|c| c.execution_id == new.id)
            .map(|c| c.path.as_str())
            .collect::<Vec<_>>(),
        ["/v2/hotel/reserve", "/v2/hotel/confirm"]
    );
}
