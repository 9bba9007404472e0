//! The travel saga as a Rust durable function: reserve the hotel, the
//! flight and the car (each with its cancellation), take the payment (the
//! pivot), then confirm the three bookings, retried forward until they
//! succeed. The same participants and order as the native saga
//! (`examples/travel-saga.yaml`): the travel services' `/hotel/reserve`,
//! `/hotel/cancel`, `/hotel/confirm`, …, reached by chained invokes of
//! `travel-hotel-reserve`, … bound to them by `[[resources]]` (see
//! `examples/sagaflow.toml` next to this file).
//!
//! The input is the travel trip (`examples/trip-success.json`), sent as is
//! to every participant: its `trip_id` keys the bookings and its
//! `run_type` injects the failures (`failHotelReservation`, …,
//! `failPayment`, `failHotelConfirmation`, …); an optional `hold_seconds`
//! holds the bookings that long before the payment, when a cancel undoes
//! them. The output is
//! `{"trip_id", "status": "succeeded", "hotel", "flight", "car", "payment"}`
//! (the participants' answers); a compensated or failed saga fails the
//! execution with `SagaCompensated` / `SagaFailed` (see the crate docs).
//!
//! Build: `cd durable-rust && cargo build -p sagaflow-saga --example travel`
//! gives `target/debug/examples/travel`, a `bootstrap` for Sagaflow's
//! `runtime = "provided"`.

use std::time::Duration;

use aws_durable_execution_sdk as durable;
use sagaflow_saga::{Backoff, Policy, Saga, Undo};
use serde_json::{Value, json};

/// The participants that can be undone, in booking order:
/// (service, the name of its function family `travel-SERVICE-ACTION`).
const BOOKINGS: [&str; 3] = ["hotel", "flight", "car"];

fn function(service: &str, action: &str) -> String {
    format!("travel-{service}-{action}")
}

/// Cancellations retried every 1 s, 2 s, … at most 5 s, 30 times;
/// confirmations after the payment until they succeed.
fn policy() -> Policy {
    let backoff = Backoff {
        initial: Duration::from_secs(1),
        multiplier: 2.0,
        max: Duration::from_secs(5),
    };
    Policy {
        compensation: backoff.clone(),
        compensation_attempts: 30,
        forward: backoff,
        forward_attempts: None,
    }
}

async fn travel(trip: Value, ctx: durable::DurableContext) -> Result<Value, durable::BoxError> {
    sagaflow_saga::run(&ctx, policy(), |saga: Saga| async move {
        let mut booked = serde_json::Map::new();
        for service in BOOKINGS {
            let cancel = trip.clone();
            let booking: Value = saga
                .invoke(
                    format!("reserve_{service}"),
                    function(service, "reserve"),
                    &trip,
                )
                .undo(move |_| {
                    Undo::invoke(
                        format!("cancel_{service}"),
                        function(service, "cancel"),
                        cancel,
                    )
                })
                .await?;
            booked.insert(service.to_owned(), booking);
        }
        // An optional hold before the payment (`"hold_seconds": N` in the
        // trip): the customer may still cancel (`sagaflow cancel`), and the
        // saga then undoes the three bookings.
        if let Some(seconds) = trip.get("hold_seconds").and_then(Value::as_u64) {
            saga.wait("hold", Duration::from_secs(seconds)).await?;
        }
        let payment: Value = saga
            .invoke("take_payment", function("payment", "charge"), &trip)
            .pivot()
            .await?;
        booked.insert("payment".to_owned(), payment);
        for service in BOOKINGS {
            let _: Value = saga
                .invoke(
                    format!("confirm_{service}"),
                    function(service, "confirm"),
                    &trip,
                )
                .await?;
        }
        let mut out = json!({ "trip_id": trip.get("trip_id"), "status": "succeeded" });
        if let Some(out) = out.as_object_mut() {
            out.extend(booked);
        }
        Ok(out)
    })
    .await
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    durable::run(travel).await
}
