//! Sagas as code on AWS's Rust durable-execution SDK
//! (`aws-durable-execution-sdk`), with compensation as a primitive.
//!
//! A saga is an ordinary durable handler whose participant calls go
//! through a [`Saga`]:
//!
//! - [`Saga::step`] (a checkpointed step) and [`Saga::invoke`] (a chained
//!   invoke) return an [`Action`]; [`Action::undo`] registers, when the
//!   action succeeds, the [`Undo`] built from its recorded result;
//! - [`Action::pivot`] makes an action the pivot: once it succeeded nothing
//!   is compensated any more, and every later action is retried forward
//!   ([`Policy::forward`]) instead of failing the saga;
//! - [`Saga::run`] runs the saga's body; when it fails before the pivot, the
//!   registered undos run newest first inside a child context named
//!   `compensate`, each retried with backoff up to
//!   [`Policy::compensation_attempts`].
//!
//! # Outcome
//!
//! The saga ends in one of Sagaflow's saga statuses ([`Status`]):
//!
//! | status | durable execution | result / error |
//! |---|---|---|
//! | `succeeded` | `SUCCEEDED` | the body's output |
//! | `compensated` | `FAILED` | `ErrorType` `SagaCompensated`, `ErrorMessage` `SagaCompensated: {report}` |
//! | `failed` | `FAILED` | `ErrorType` `SagaFailed`, `ErrorMessage` `SagaFailed: {report}` |
//!
//! `{report}` is the JSON of a [`Report`] (which action failed and why,
//! the undos that ran in order, the compensation that could not finish):
//! [`Report::from_error_message`] reads it back. A compensated saga is a
//! failed execution because it did not do what it was asked: a caller
//! waiting on the execution (`Invoke` `RequestResponse`, an orchestrator's
//! chained invoke) sees an error, as with the Python travel saga, and tells
//! `compensated` (everything undone, safe to retry) from `failed` (needs a
//! human: a compensation could not finish, or a forward action after the
//! pivot gave up) by the `ErrorType`.
//!
//! # Replay
//!
//! Undo registrations are rebuilt on every replay from the recorded results
//! (an action returns its checkpointed result, and the undo is built from
//! it), and the compensation's attempts, waits and outcome are durable
//! operations of the `compensate` child context, so a replay takes the same
//! path without calling a participant twice.
//!
//! # Stop and cancel
//!
//! `StopDurableExecution` ends an execution at once on AWS (and on
//! Sagaflow): the handler never runs again, so nothing is compensated.
//! Sagaflow's **cancel** (`sagaflow cancel ID`, `POST
//! /v1/executions/{id}/cancel`) asks the code to compensate instead: it
//! ends what the suspended code waits on (a wait, a callback, a step's
//! retry delay) with `Sagaflow.Cancelled` and invokes it again (a cancel
//! that comes while the code runs, or waits on a chained invoke, is
//! delivered at its next such wait). A [`Saga::wait`] so ended fails the
//! saga as a failed action does, so before the pivot the registered undos
//! run; the undos' own backoff waits and the forward retries after the
//! pivot are not cut short by a cancel (only their delay is).
//!
//! # Example
//!
//! ```no_run
//! use aws_durable_execution_sdk as durable;
//! use sagaflow_saga::{Policy, Saga, Undo};
//! use serde_json::{Value, json};
//!
//! async fn handler(trip: Value, ctx: durable::DurableContext) -> Result<Value, durable::BoxError> {
//!     sagaflow_saga::run(&ctx, Policy::default(), |saga: Saga| async move {
//!         let hotel: Value = saga
//!             .invoke("reserve_hotel", "travel-hotel-reserve", trip.clone())
//!             .undo({
//!                 let trip = trip.clone();
//!                 move |_| Undo::invoke("cancel_hotel", "travel-hotel-cancel", trip)
//!             })
//!             .await?;
//!         let _: Value = saga
//!             .invoke("take_payment", "travel-payment-charge", trip.clone())
//!             .pivot()
//!             .await?;
//!         Ok(json!({ "hotel": hotel }))
//!     })
//!     .await
//! }
//! ```

mod attempts;
mod outcome;
mod policy;
mod saga;
mod undo;

use std::future::Future;

use aws_durable_execution_sdk::{BoxError, DurableContext};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use outcome::{Report, SagaError, Status, StepFailed, Unfinished};
pub use policy::{Backoff, Policy};
pub use saga::{Action, Saga};
pub use undo::Undo;

/// Runs `body` as a saga on `ctx` under `policy`, with the outcome as a
/// durable handler returns it: the body's output, or the
/// `SagaCompensated` / `SagaFailed` error of the module docs.
pub async fn run<O, F, Fut>(ctx: &DurableContext, policy: Policy, body: F) -> Result<O, BoxError>
where
    O: Serialize + DeserializeOwned + Send + 'static,
    F: FnOnce(Saga) -> Fut,
    Fut: Future<Output = Result<O, BoxError>>,
{
    Saga::new(ctx, policy)
        .run(body)
        .await
        .map_err(SagaError::into_durable)
}
