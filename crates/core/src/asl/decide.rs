//! The ASL interpreter behind the envelope: records each input, then
//! whatever the interpreter ([`Run`]) asks to be recorded — attempts to
//! schedule, retry due times with their jitter, the end. The fold itself is
//! [`Run::apply`]; what every program shares is the envelope's.

use crate::asl::run::{callback_slot, Run, TimerMeaning, Todo};
use crate::asl::Machine;
use crate::envelope::{Decider, Envelope, Interpreter};
use crate::error_name::{CANCELLED, HEARTBEAT_TIMEOUT, TIMEOUT};
use crate::event::{ErrorInfo, Event, EventKind, Status, TaskKind};
use crate::exchange::{nonce, Effect, Input, Request, TaskToken};
use crate::Error;

impl Interpreter for Machine {
    type State = Run;

    fn apply(
        &self,
        run: &mut Run,
        _env: &mut Envelope,
        event: &Event,
        fx: &mut Vec<Effect>,
    ) -> Result<(), Error> {
        run.apply(self, event, fx)
    }

    fn decide(&self, d: &mut Decider<'_, Machine>, input: Input) -> Result<(), Error> {
        match input {
            // The envelope decides a start; durable inputs are not ours.
            Input::Start { .. } | Input::Durable(_) => return Ok(()),
            Input::TaskSucceeded {
                step,
                attempt,
                output,
                ..
            } => {
                if !d.state.is_running(&step, attempt) {
                    return Ok(()); // stale: a late or duplicate answer
                }
                d.emit(EventKind::StepSucceeded {
                    step,
                    attempt,
                    output,
                })?;
            }
            Input::TaskFailed {
                step,
                attempt,
                error,
                ..
            } => {
                if !d.state.is_running(&step, attempt) {
                    return Ok(());
                }
                d.emit(EventKind::StepFailed {
                    step,
                    attempt,
                    error,
                })?;
            }
            Input::HeartbeatStopped {
                step,
                attempt,
                silence_ms,
                ..
            } => {
                if !d.state.is_running(&step, attempt) {
                    return Ok(());
                }
                // Step Functions names a stopped heartbeat apart from a deadline.
                let error = ErrorInfo::new(
                    HEARTBEAT_TIMEOUT,
                    format!("`{step}`: no heartbeat for {silence_ms} ms"),
                );
                d.emit(EventKind::StepFailed {
                    step,
                    attempt,
                    error,
                })?;
            }
            Input::TaskParked { step, attempt, .. } => {
                if !d.state.is_running(&step, attempt) || d.state.is_parked_task(&step, attempt) {
                    return Ok(());
                }
                d.emit(EventKind::TaskParked {
                    step,
                    task: TaskKind::Action,
                    attempt,
                })?;
            }
            Input::TimerFired { step, attempt, .. } => {
                match d.state.timer(self, &step, attempt, d.ctx.now) {
                    TimerMeaning::Fire => d.emit(EventKind::TimerFired { step, attempt })?,
                    // The due retry is scheduled by the drain below.
                    TimerMeaning::Reschedule => schedule(d, &step, attempt)?,
                    TimerMeaning::Deadline => {
                        let error = ErrorInfo::new(
                            TIMEOUT,
                            format!("`{step}` got no answer before its deadline"),
                        );
                        d.emit(EventKind::StepFailed {
                            step,
                            attempt,
                            error,
                        })?;
                    }
                    TimerMeaning::Stale => return Ok(()),
                }
            }
            Input::Cancel { reason } => {
                d.emit(EventKind::CancelRequested {
                    reason: reason.clone(),
                })?;
                d.finish(
                    Status::Cancelled,
                    Some(ErrorInfo::new(CANCELLED, reason)),
                    None,
                )?;
            }
            Input::DeadlinePassed => {
                let limit = self.timeout_seconds.unwrap_or_default();
                d.emit(EventKind::ExecutionTimedOut {})?;
                d.finish(
                    Status::TimedOut,
                    Some(ErrorInfo::new(
                        TIMEOUT,
                        format!(
                            "the execution did not finish within its TimeoutSeconds of {limit}"
                        ),
                    )),
                    None,
                )?;
            }
            Input::UpdateMapRun(update) => {
                if let Some(refusal) = d.state.refuse_map_run_update(&update) {
                    return Err(refusal);
                }
                d.emit(EventKind::MapRunUpdated { update })?;
            }
            Input::Redrive => {
                refuse_redrive(d)?;
                d.emit(EventKind::ExecutionRedriven {})?;
            }
        }
        drain(d)
    }

    fn proceed(&self, d: &mut Decider<'_, Machine>) -> Result<(), Error> {
        drain(d)
    }

    /// AWS's quota, or the engine's (see [`crate::plan::Limits`]).
    fn history_limit(&self) -> Option<u64> {
        Some(self.max_history_events)
    }

    /// A distributed Map's children are threads of this log, but each is an
    /// execution of its own on AWS, with its own quota: their events do not
    /// count against the parent's.
    fn history_size(&self, run: &Run, env: &Envelope) -> u64 {
        env.events.saturating_sub(run.child_events())
    }

    /// As Step Functions: failed, aborted and timed-out executions.
    fn redrives(&self, status: Status) -> bool {
        matches!(
            status,
            Status::Failed | Status::Cancelled | Status::TimedOut
        )
    }

    fn redrivable_statuses(&self) -> &'static str {
        "only a failed, aborted or timed-out execution can be redriven"
    }

    fn watches_deadline(&self, _run: &Run) -> bool {
        true
    }

    fn outstanding(&self, run: &Run, _env: &Envelope) -> Vec<Effect> {
        run.outstanding()
    }

    fn is_parked(&self, run: &Run) -> bool {
        run.is_parked(self)
    }

    fn request(
        &self,
        run: &Run,
        _env: &Envelope,
        step: &str,
        _task: TaskKind,
    ) -> Result<Request, ErrorInfo> {
        run.request(self, step)
    }

    fn callback_slot(
        &self,
        run: &Run,
        token: &TaskToken,
    ) -> Option<(u32, Option<String>, bool, bool)> {
        let (attempt, nonce, running) = callback_slot(run, &token.step)?;
        Some((attempt, nonce.map(str::to_string), running, nonce.is_some()))
    }

    fn attempts(&self, run: &Run, step: &str, _task: TaskKind) -> u32 {
        callback_slot(run, step).map_or(0, |(a, _, _)| a)
    }
}

/// Refuses a redrive AWS refuses (the envelope checked the status): a
/// history at (or next to) its quota, or a failure in a `Fail` state.
fn refuse_redrive(d: &Decider<'_, Machine>) -> Result<(), Error> {
    let m = d.program;
    let size = m.history_size(d.state, d.env);
    if size.saturating_add(2) >= m.max_history_events {
        return Err(Error::NotAllowed {
            code: "not_redrivable",
            message: format!(
                "`{}` has {} history events, the limit is {}: it cannot be redriven",
                d.env.id, size, m.max_history_events
            ),
        });
    }
    if !d.state.can_redrive() {
        return Err(Error::NotAllowed {
            code: "not_redrivable",
            message: format!(
                "an execution that failed in a Fail state (or whose failure's own handling failed) cannot be redriven; `{}` is {}",
                d.env.id,
                d.env.status.as_str()
            ),
        });
    }
    Ok(())
}

fn schedule(d: &mut Decider<'_, Machine>, step: &str, attempt: u32) -> Result<(), Error> {
    let Some((timeout_ms, callback)) = d.state.schedule_spec(d.program, step) else {
        return Ok(());
    };
    record(
        d,
        Todo::Schedule {
            step: step.to_string(),
            attempt,
            timeout_ms,
            callback,
        },
    )
}

/// Records what the interpreter asks for until it asks for nothing.
fn drain(d: &mut Decider<'_, Machine>) -> Result<(), Error> {
    // Each todo is consumed by the event that records it; the bound only
    // guards against a bug turning into an endless loop.
    for _ in 0..1_000_000 {
        let Some(todo) = d.state.next_todo(d.program) else {
            return Ok(());
        };
        record(d, todo)?;
    }
    Err(Error::IllegalTransition {
        event: "decision".into(),
        state: "the ASL interpreter keeps asking for the same event".into(),
    })
}

fn record(d: &mut Decider<'_, Machine>, todo: Todo) -> Result<(), Error> {
    match todo {
        Todo::Schedule {
            step,
            attempt,
            timeout_ms,
            callback,
        } => {
            let nonce = callback.then(|| {
                let salt = step.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
                    (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
                }) ^ u64::from(attempt);
                nonce(d.ctx.entropy, salt)
            });
            d.emit(EventKind::StepScheduled {
                step,
                attempt,
                deadline: d.ctx.now.saturating_add(timeout_ms),
                nonce,
            })
        }
        Todo::Retry {
            step,
            attempt,
            delay_ms,
            jitter,
        } => {
            let delay = if jitter {
                (delay_ms as f64 * d.ctx.random) as u64
            } else {
                delay_ms
            };
            d.emit(EventKind::RetryScheduled {
                step,
                task: TaskKind::Action,
                attempt,
                fire_at: d.ctx.now.saturating_add(delay),
            })
        }
        Todo::Finish {
            status,
            output,
            error,
        } => d.finish(status, error, output),
    }
}
