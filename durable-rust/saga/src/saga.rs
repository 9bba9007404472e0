//! The saga: its actions ([`Saga::step`], [`Saga::invoke`]), the undos
//! they register, the pivot, and [`Saga::run`], which compensates a failed
//! body or reports why it cannot.

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use aws_durable_execution_sdk::{BoxError, DurableContext, RetryDecision, StepContext};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::attempts::{CANCELLED, attempt, describe, is_cancelled};
use crate::outcome::{Report, SagaError, Status, StepFailed, Unfinished};
use crate::policy::Policy;
use crate::undo::Undo;

/// A saga in progress: a cheap handle (clone it into the body's closures)
/// on the durable context, the undos registered so far and whether the
/// pivot succeeded.
#[derive(Clone, Debug)]
pub struct Saga {
    ctx: DurableContext,
    policy: Arc<Policy>,
    state: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    /// In registration order.
    undos: Vec<Undo>,
    pivoted: bool,
}

type StepFn<O> = Arc<
    dyn Fn(StepContext) -> Pin<Box<dyn Future<Output = Result<O, BoxError>> + Send>> + Send + Sync,
>;

/// Builds an action's undo from its result.
type UndoFrom<O> = Box<dyn FnOnce(&O) -> Undo + Send>;

enum Call<O> {
    Step(StepFn<O>),
    Invoke { function: String, payload: Value },
}

/// One action of a saga, run by awaiting it: a step or a chained invoke,
/// with the undo it registers and whether it is the pivot.
#[must_use = "an action does nothing until it is awaited"]
pub struct Action<O> {
    saga: Saga,
    name: String,
    call: Call<O>,
    undo: Option<UndoFrom<O>>,
    pivot: bool,
    /// Attempts before the pivot (default 1).
    attempts: u32,
}

impl<O> std::fmt::Debug for Action<O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Action")
            .field("name", &self.name)
            .field("pivot", &self.pivot)
            .field("undo", &self.undo.is_some())
            .finish_non_exhaustive()
    }
}

impl Saga {
    /// A saga on `ctx` (usually the handler's) under `policy`.
    #[must_use]
    pub fn new(ctx: &DurableContext, policy: Policy) -> Saga {
        Saga {
            ctx: ctx.clone(),
            policy: Arc::new(policy),
            state: Arc::default(),
        }
    }

    /// The durable context, for operations that are not saga actions.
    #[must_use]
    pub fn context(&self) -> &DurableContext {
        &self.ctx
    }

    /// Whether the pivot succeeded: from then on nothing is compensated.
    #[must_use]
    pub fn is_past_pivot(&self) -> bool {
        self.state().pivoted
    }

    /// A step named `name` running `body` (called again for each attempt).
    /// Before the pivot it is attempted once unless [`Action::attempts`]
    /// says more.
    pub fn step<O, F, Fut>(&self, name: impl Into<String>, body: F) -> Action<O>
    where
        F: Fn(StepContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, BoxError>> + Send + 'static,
    {
        self.action(name, Call::Step(Arc::new(move |sc| Box::pin(body(sc)))))
    }

    /// A chained invoke named `name` of `function` with `payload` (a
    /// payload that does not serialize is sent as `null`). Before the
    /// pivot it is attempted once unless [`Action::attempts`] says more.
    pub fn invoke<O>(
        &self,
        name: impl Into<String>,
        function: impl Into<String>,
        payload: impl Serialize,
    ) -> Action<O> {
        self.action(
            name,
            Call::Invoke {
                function: function.into(),
                payload: serde_json::to_value(payload).unwrap_or(Value::Null),
            },
        )
    }

    /// A durable wait named `name` between actions (a hold before the
    /// payment, a cooling-off period). Sagaflow's cancel ends it: the saga
    /// then fails as if an action named `name` had failed with
    /// `Sagaflow.Cancelled` and, before the pivot, compensates.
    ///
    /// # Errors
    ///
    /// A [`StepFailed`] named `name` when the wait did not end normally.
    pub async fn wait(
        &self,
        name: impl Into<String>,
        duration: Duration,
    ) -> Result<(), StepFailed> {
        let name = name.into();
        self.ctx
            .wait(duration)
            .name(name.clone())
            .await
            .map_err(|err| StepFailed {
                error: if is_cancelled(&err) {
                    format!("{CANCELLED}: the execution was cancelled")
                } else {
                    describe(&err)
                },
                step: name,
            })
    }

    fn action<O>(&self, name: impl Into<String>, call: Call<O>) -> Action<O> {
        Action {
            saga: self.clone(),
            name: name.into(),
            call,
            undo: None,
            pivot: false,
            attempts: 1,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // No code panics while holding the lock: a poisoned one is whole.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs the saga's `body`. Its `Ok` is the saga's output (`succeeded`).
    /// Its `Err` (a [`StepFailed`] from an action, or any other error)
    /// before the pivot runs the registered undos newest first in the child
    /// context `compensate` (`compensated`, or `failed` naming the undo
    /// that could not finish); after the pivot the saga is `failed` with
    /// nothing compensated.
    ///
    /// # Errors
    ///
    /// A [`SagaError`] with the [`Report`] of a saga that did not succeed.
    pub async fn run<O, F, Fut>(self, body: F) -> Result<O, SagaError>
    where
        F: FnOnce(Saga) -> Fut,
        Fut: Future<Output = Result<O, BoxError>>,
    {
        let err = match body(self.clone()).await {
            Ok(output) => return Ok(output),
            Err(err) => err,
        };
        let (failed_step, error) = match err.downcast_ref::<StepFailed>() {
            Some(f) => (f.step.clone(), f.error.clone()),
            None => ("(saga body)".to_owned(), err.to_string()),
        };
        let (pivoted, undos) = {
            let state = self.state();
            (state.pivoted, state.undos.clone())
        };
        let mut report = Report {
            status: Status::Failed,
            failed_step,
            error,
            after_pivot: pivoted,
            compensated: Vec::new(),
            unfinished: None,
            not_run: Vec::new(),
        };
        if !pivoted {
            let done = self.compensate(undos).await;
            report.status = if done.unfinished.is_none() {
                Status::Compensated
            } else {
                Status::Failed
            };
            report.compensated = done.compensated;
            report.unfinished = done.unfinished;
            report.not_run = done.not_run;
        }
        Err(SagaError { report })
    }

    /// Runs `undos` newest first in the child context `compensate`; its
    /// recorded result is what a replay reads back.
    async fn compensate(&self, undos: Vec<Undo>) -> Compensation {
        let backoff = self.policy.compensation.clone();
        let limit = self.policy.compensation_attempts.max(1);
        let outcome = self
            .ctx
            .run_in_child_context(move |child| async move {
                let mut done = Compensation::default();
                let mut pending = undos.into_iter().rev();
                for undo in pending.by_ref() {
                    let tried = attempt(&child, undo.name(), &backoff, Some(limit), |op_name| {
                        undo.attempt(&child, op_name)
                    })
                    .await;
                    match tried {
                        Ok(()) => done.compensated.push(undo.name().to_owned()),
                        Err(gave_up) => {
                            done.unfinished = Some(Unfinished {
                                name: undo.name().to_owned(),
                                attempts: gave_up.attempts,
                                error: gave_up.error,
                            });
                            break;
                        }
                    }
                }
                done.not_run = pending.map(|u| u.name().to_owned()).collect();
                Ok(done)
            })
            .name("compensate")
            .await;
        outcome.unwrap_or_else(|err| Compensation {
            unfinished: Some(Unfinished {
                name: "compensate".to_owned(),
                attempts: 1,
                error: describe(&err),
            }),
            ..Compensation::default()
        })
    }
}

/// The recorded result of the `compensate` child context.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Compensation {
    compensated: Vec<String>,
    unfinished: Option<Unfinished>,
    not_run: Vec<String>,
}

impl<O> Action<O>
where
    O: Serialize + DeserializeOwned + Send + 'static,
{
    /// Registers, when the action succeeds before the pivot, the undo
    /// `undo` builds from its result. After the pivot nothing is
    /// compensated, so it is not registered.
    pub fn undo<U>(mut self, undo: U) -> Action<O>
    where
        U: FnOnce(&O) -> Undo + Send + 'static,
    {
        self.undo = Some(Box::new(undo));
        self
    }

    /// Makes this action the pivot: if it fails, the saga compensates; once
    /// it succeeded, nothing is compensated and every later action is
    /// retried forward.
    pub fn pivot(mut self) -> Action<O> {
        self.pivot = true;
        self
    }

    /// Before the pivot, attempts the action up to `attempts` times (with
    /// the [`Policy::forward`] backoff) before its failure is the saga's;
    /// the default is once. After the pivot [`Policy::forward_attempts`]
    /// applies instead.
    pub fn attempts(mut self, attempts: u32) -> Action<O> {
        self.attempts = attempts.max(1);
        self
    }

    async fn perform(self) -> Result<O, StepFailed> {
        let Action {
            saga,
            name,
            call,
            undo,
            pivot,
            attempts,
        } = self;
        let forward = saga.is_past_pivot();
        let policy = Arc::clone(&saga.policy);
        let once = |op_name: String| {
            let ctx = saga.ctx.clone();
            let call = match &call {
                Call::Step(body) => Call::Step(Arc::clone(body)),
                Call::Invoke { function, payload } => Call::Invoke {
                    function: function.clone(),
                    payload: payload.clone(),
                },
            };
            async move {
                match call {
                    Call::Step(body) => {
                        ctx.step(move |sc| body(sc))
                            .name(op_name)
                            // One attempt per step: the saga's loop retries.
                            .retry_strategy(|_, _| RetryDecision::Stop)
                            .await
                    }
                    Call::Invoke { function, payload } => {
                        ctx.invoke::<O, Value>(function, payload)
                            .name(op_name)
                            .await
                    }
                }
            }
        };
        let limit = if forward {
            policy.forward_attempts
        } else {
            Some(attempts)
        };
        let output = attempt(&saga.ctx, &name, &policy.forward, limit, once)
            .await
            .map_err(|gave_up| StepFailed {
                step: name.clone(),
                error: gave_up.error,
            })?;
        if !forward {
            let mut state = saga.state();
            if let Some(undo) = undo {
                state.undos.push(undo(&output));
            }
            state.pivoted |= pivot;
        }
        Ok(output)
    }
}

impl<O> IntoFuture for Action<O>
where
    O: Serialize + DeserializeOwned + Send + 'static,
{
    type Output = Result<O, StepFailed>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<O, StepFailed>> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.perform())
    }
}
