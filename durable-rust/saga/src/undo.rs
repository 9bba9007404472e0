//! What undoes an action: a step or a chained invoke, built from the
//! action's result when it succeeds ([`Action::undo`](crate::Action::undo)).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use aws_durable_execution_sdk::{BoxError, DurableContext, OperationError, RetryDecision};
use serde::Serialize;
use serde_json::Value;

type UndoFn = dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>> + Send + Sync;

/// A compensation: a named step or chained invoke. Each attempt is a
/// durable operation of its own (see the crate docs for the names).
#[derive(Clone)]
pub struct Undo {
    name: String,
    how: How,
}

#[derive(Clone)]
enum How {
    Step(Arc<UndoFn>),
    Invoke { function: String, payload: Value },
}

impl std::fmt::Debug for Undo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.how {
            How::Step(_) => write!(f, "Undo::step({:?})", self.name),
            How::Invoke { function, .. } => {
                write!(f, "Undo::invoke({:?}, {function:?})", self.name)
            }
        }
    }
}

impl Undo {
    /// A step named `name` running `body` (called again for each attempt).
    pub fn step<F, Fut>(name: impl Into<String>, body: F) -> Undo
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
    {
        Undo {
            name: name.into(),
            how: How::Step(Arc::new(move || Box::pin(body()))),
        }
    }

    /// A chained invoke named `name` of `function` with `payload`. A
    /// payload that does not serialize is sent as `null`.
    pub fn invoke(
        name: impl Into<String>,
        function: impl Into<String>,
        payload: impl Serialize,
    ) -> Undo {
        Undo {
            name: name.into(),
            how: How::Invoke {
                function: function.into(),
                payload: serde_json::to_value(payload).unwrap_or(Value::Null),
            },
        }
    }

    /// The undo's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// One attempt, as the operation `op_name` of `ctx`.
    pub(crate) async fn attempt(
        &self,
        ctx: &DurableContext,
        op_name: String,
    ) -> Result<(), OperationError> {
        match &self.how {
            How::Step(body) => {
                let body = Arc::clone(body);
                ctx.step(move |_| body())
                    .name(op_name)
                    // The saga's loop retries, each attempt its own step.
                    .retry_strategy(|_, _| RetryDecision::Stop)
                    .await
            }
            How::Invoke { function, payload } => ctx
                .invoke::<Value, Value>(function.clone(), payload.clone())
                .name(op_name)
                .await
                .map(drop),
        }
    }
}
