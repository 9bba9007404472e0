//! Callbacks of a durable execution: completing one through the API
//! (`SendDurableExecutionCallbackSuccess` / `…Failure` / `…Heartbeat`, by
//! its `CallbackId`) and its two clocks (`TimeoutSeconds` from the start,
//! `HeartbeatTimeoutSeconds` from the start or the last heartbeat; 0 means
//! none). A callback that timed out or already ended is refused with code
//! `callback_closed` (the API's `CallbackTimeoutException`), an unknown id
//! with `callback_not_found` (`ResourceNotFoundException`).

use serde::{Deserialize, Serialize};

use super::event::{CallbackOutcome, OperationEvent, Timer};
use super::model::{ErrorObject, OperationStatus};
use super::operations::{Operations, Refusal};
use crate::event::Millis;

/// A callback's clocks, as recorded when it started and by heartbeats.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallbackWatch {
    /// Seconds from the start; 0: none.
    pub timeout_seconds: u64,
    /// Seconds from the start or the last heartbeat; 0: none.
    pub heartbeat_timeout_seconds: u64,
    pub started_at: Millis,
    pub last_heartbeat: Millis,
}

impl CallbackWatch {
    /// When the callback times out, if it can.
    pub fn timeout_at(&self) -> Option<Millis> {
        (self.timeout_seconds > 0).then(|| {
            self.started_at
                .saturating_add(self.timeout_seconds.saturating_mul(1000))
        })
    }

    /// When the callback misses its heartbeat, if it has one.
    pub fn heartbeat_due(&self) -> Option<Millis> {
        (self.heartbeat_timeout_seconds > 0).then(|| {
            self.last_heartbeat
                .saturating_add(self.heartbeat_timeout_seconds.saturating_mul(1000))
        })
    }

    /// The timers to arm for it now.
    pub fn timers(&self, id: &str) -> Vec<Timer> {
        let timeout = self.timeout_at().map(|at| Timer::CallbackTimeout {
            id: id.to_string(),
            at,
        });
        let heartbeat = self.heartbeat_due().map(|at| Timer::CallbackHeartbeat {
            id: id.to_string(),
            at,
        });
        timeout.into_iter().chain(heartbeat).collect()
    }
}

impl Operations {
    /// The id of the callback operation a `CallbackId` names, if it is open:
    /// refusals say whether it is unknown or already closed.
    fn open_callback(&self, callback_id: &str) -> Result<String, Refusal> {
        let id = self.callback_op(callback_id).ok_or_else(|| {
            Refusal::new(
                "callback_not_found",
                format!("Callback {callback_id} not found."),
            )
        })?;
        let open = self
            .get(id)
            .is_some_and(|op| op.status == OperationStatus::Started);
        if !open || self.is_ended() {
            return Err(Refusal::new(
                "callback_closed",
                format!("Callback {callback_id} has timed out or already completed."),
            ));
        }
        Ok(id.to_string())
    }

    /// `SendDurableExecutionCallbackSuccess`/`…Failure`: the fact to record.
    pub fn complete_callback(
        &self,
        callback_id: &str,
        outcome: CallbackOutcome,
        now: Millis,
    ) -> Result<OperationEvent, Refusal> {
        let id = self.open_callback(callback_id)?;
        Ok(OperationEvent::CallbackEnded {
            id,
            outcome,
            at: now,
        })
    }

    /// `SendDurableExecutionCallbackHeartbeat`: the fact to record and the
    /// heartbeat timer to arm again.
    pub fn heartbeat_callback(
        &self,
        callback_id: &str,
        now: Millis,
    ) -> Result<(OperationEvent, Option<Timer>), Refusal> {
        let id = self.open_callback(callback_id)?;
        let timer = self.callback_watch(&id).and_then(|w| {
            let watch = CallbackWatch {
                last_heartbeat: now,
                ..w.clone()
            };
            watch
                .heartbeat_due()
                .map(|at| Timer::CallbackHeartbeat { id: id.clone(), at })
        });
        Ok((OperationEvent::CallbackHeartbeat { id, at: now }, timer))
    }

    /// A callback's timer fired: `CallbackEnded` timed out, if a clock ran
    /// out (the overall timeout first).
    pub(super) fn fire_callback_timer(&self, id: &str, now: Millis) -> Option<OperationEvent> {
        let watch = self.callback_watch(id)?;
        let error_type = if watch.timeout_at().is_some_and(|at| at <= now) {
            "Callback.Timeout"
        } else if watch.heartbeat_due().is_some_and(|at| at <= now) {
            "Callback.Heartbeat"
        } else {
            return None;
        };
        let error = ErrorObject {
            error_type: Some(error_type.into()),
            error_message: Some("The callback timed out.".into()),
            ..Default::default()
        };
        Some(OperationEvent::CallbackEnded {
            id: id.to_string(),
            outcome: CallbackOutcome::TimedOut { error },
            at: now,
        })
    }
}

/// The execution a `CallbackId` belongs to (its route names it), if it is
/// one of this service's ids. Whether it is still open is the execution's
/// to say.
pub fn callback_execution(callback_id: &str) -> Option<String> {
    use base64::Engine as _;
    let (route, nonce) = callback_id.split_once('/')?;
    if nonce.len() != 16 || !nonce.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(route)
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (execution, _op) = text.split_once('\n')?;
    Some(execution.to_string())
}
