//! Sagaflow's pure core: saga definitions and their validation, the compiled
//! plan, history events, and the execution state machine.
//!
//! Nothing in this crate performs I/O. The runtime feeds it inputs (a participant
//! answered, a timer fired, a user cancelled) and gets back events to make
//! durable; applying those events yields effects (invoke a participant, arm a
//! timer) as plain data. Recovery replays the same events through the same
//! [`Execution::apply`], so live runs and replays cannot diverge.

pub mod asl;
pub mod definition;
pub mod document;
pub mod event;
pub mod execution;
pub mod keys;
pub mod path;
pub mod retry;

pub use definition::{compile, Participant, Plan, Role, Stage, Step, Task, Violation};
pub use event::{ErrorInfo, Event, EventKind, Status, TaskKind};
pub use execution::{
    parse_task_token, task_token, Applied, CallbackRefused, Ctx, Decision, Effect, Execution,
    Input, Request, Stuck, StuckPolicy, TaskToken,
};
pub use keys::KeyScheme;
pub use retry::RetryPolicy;

/// Compiles a definition of either format: an Amazon States Language
/// document (JSON with `StartAt` and `States`) runs on the ASL interpreter,
/// anything else is a saga definition (YAML or JSON). `resources` binds ASL
/// Task resources to participants.
pub fn compile_definition(
    source: &str,
    name_hint: Option<&str>,
    resources: &asl::ResourceMap,
) -> Result<Plan, Error> {
    let doc = definition::parse_document(source)?;
    compile_parsed(&doc, name_hint, resources, false)
}

/// Compiles a definition stored earlier, read as it was when it was
/// accepted (see [`document::parse_stored`]): executions of a definition
/// stored before the stricter reading keep running.
pub fn compile_stored_definition(
    source: &str,
    name_hint: Option<&str>,
    resources: &asl::ResourceMap,
) -> Result<Plan, Error> {
    let doc = document::parse_stored(source)?;
    compile_parsed(&doc, name_hint, resources, true)
}

fn compile_parsed(
    doc: &serde_json::Value,
    name_hint: Option<&str>,
    resources: &asl::ResourceMap,
    stored: bool,
) -> Result<Plan, Error> {
    if asl::is_asl(doc) {
        asl::compile_plan(doc, name_hint, resources)
    } else {
        definition::compile_document_as(doc, name_hint, stored)
    }
}

/// Errors of the core: an invalid definition, or an input/event the execution's
/// current state does not allow. Never a panic.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum Error {
    /// The definition could not be parsed or failed validation; every problem is listed.
    #[error("invalid definition: {}", .0.iter().map(|v| v.to_string()).collect::<Vec<_>>().join("; "))]
    InvalidDefinition(Vec<Violation>),
    /// An event does not fit the execution's state (corrupt or foreign history).
    #[error("illegal transition: {event} in state {state}")]
    IllegalTransition { event: String, state: String },
    /// A user request (cancel, redrive) that the execution's status does not allow.
    #[error("{message}")]
    NotAllowed { code: &'static str, message: String },
}

impl Error {
    /// Stable machine-readable code for users and API clients.
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidDefinition(_) => "invalid_definition",
            Error::IllegalTransition { .. } => "illegal_transition",
            Error::NotAllowed { code, .. } => code,
        }
    }
}
