//! Where a chained invoke goes: its `FunctionName` resolved, purely, in
//! the order of the service's spec:
//!
//! 1. a function the server hosts ([`HostedFunctions`], a lookup the host
//!    passes in): a durable one becomes a child durable execution
//!    ([`Resolved::DurableChild`]), a plain one exactly one invocation
//!    ([`Resolved::Plain`]);
//! 2. the resource map, with the same name normalisation as the ASL
//!    `lambda:invoke` ([`ResourceMap::resolve`]): a participant called with
//!    the idempotency key `{execution}:{operation Id}`
//!    ([`Resolved::Participant`]);
//! 3. neither: the operation fails with `ResourceNotFoundException`
//!    `Function not found: NAME` ([`function_not_found`]).
//!
//! A malformed name fails the operation with Lambda's validation message
//! (`InvalidParameterValueException`).

use serde::{Deserialize, Serialize};

use super::event::InvokeTarget;
use super::model::ErrorObject;
use crate::asl::ResourceMap;
use crate::exchange::Participant;
use crate::function_name::{FunctionName, FunctionNameError};
use crate::keys::chained_invoke_key;

/// The error type of a chained invoke whose target is nowhere.
pub const RESOURCE_NOT_FOUND: &str = "ResourceNotFoundException";

/// How the server hosts a function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Hosting {
    /// A durable function: a call starts a child durable execution.
    Durable,
    /// A plain function: a call is one invocation.
    Plain,
}

/// The functions the server hosts, as the host knows them. Any
/// `Fn(&FunctionName) -> Option<Hosting>` is one.
pub trait HostedFunctions {
    /// How `function` (its name and qualifier) is hosted, if it is.
    fn hosting(&self, function: &FunctionName) -> Option<Hosting>;
}

impl<F> HostedFunctions for F
where
    F: Fn(&FunctionName) -> Option<Hosting>,
{
    fn hosting(&self, function: &FunctionName) -> Option<Hosting> {
        self(function)
    }
}

/// No hosted functions at all.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHostedFunctions;

impl HostedFunctions for NoHostedFunctions {
    fn hosting(&self, _: &FunctionName) -> Option<Hosting> {
        None
    }
}

/// What to call for a chained invoke, with its input (the update's
/// `Payload` as sent, `{}` when absent).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Resolved {
    /// Start a child durable execution of a hosted durable function; its
    /// outcome is the operation's, its ARN goes into the started details.
    DurableChild {
        function: FunctionName,
        tenant_id: Option<String>,
        input: String,
    },
    /// Invoke a hosted plain function once (no key: at least once across
    /// a restart).
    Plain {
        function: FunctionName,
        tenant_id: Option<String>,
        input: String,
    },
    /// Call a participant of the resource map with `Idempotency-Key`.
    Participant {
        participant: Participant,
        idempotency_key: String,
        input: String,
    },
}

impl InvokeTarget {
    /// The target's input: the update's `Payload` exactly as sent, `{}`
    /// when absent.
    pub fn input(&self) -> String {
        self.payload.clone().unwrap_or_else(|| "{}".to_string())
    }
}

/// The error a chained invoke to an unknown function fails with.
pub fn function_not_found(function_name: &str) -> ErrorObject {
    ErrorObject {
        error_type: Some(RESOURCE_NOT_FOUND.to_string()),
        error_message: Some(format!("Function not found: {function_name}")),
        error_data: None,
        stack_trace: None,
    }
}

/// The error a chained invoke to a malformed name fails with.
pub fn invalid_function_name(error: &FunctionNameError) -> ErrorObject {
    ErrorObject {
        error_type: Some(FunctionNameError::ERROR_TYPE.to_string()),
        error_message: Some(error.to_string()),
        error_data: None,
        stack_trace: None,
    }
}

/// Resolves chained invoke `operation_id` of execution `execution` (its
/// ARN or id, as the host keys it) in the spec's order: a hosted function,
/// then the resource map, else `Err` with the error the operation fails
/// with (record it with [`super::Operations::end_chained_invoke`] and
/// [`super::InvokeOutcome::Failed`]).
pub fn resolve_target(
    target: &InvokeTarget,
    execution: &str,
    operation_id: &str,
    hosted: &dyn HostedFunctions,
    resources: &ResourceMap,
) -> Result<Resolved, ErrorObject> {
    let function =
        FunctionName::parse(&target.function_name).map_err(|e| invalid_function_name(&e))?;
    let input = target.input();
    let tenant_id = target.tenant_id.clone();
    match hosted.hosting(&function) {
        Some(Hosting::Durable) => {
            return Ok(Resolved::DurableChild {
                function,
                tenant_id,
                input,
            })
        }
        Some(Hosting::Plain) => {
            return Ok(Resolved::Plain {
                function,
                tenant_id,
                input,
            })
        }
        None => {}
    }
    match resources.resolve(&target.function_name) {
        Some(participant) => Ok(Resolved::Participant {
            participant,
            idempotency_key: chained_invoke_key(execution, operation_id),
            input,
        }),
        None => Err(function_not_found(&target.function_name)),
    }
}
