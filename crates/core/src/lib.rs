//! Sagaflow's pure core: definitions and their validation, the compiled
//! plan, history events, and the execution state machine — one envelope
//! (`envelope`) around one interpreter per kind of program ([`saga`],
//! [`asl`]). [`durable`] models AWS Lambda durable functions' operations
//! (checkpoints, tokens, timers); it is not hosted as a program yet.
//!
//! Nothing in this crate performs I/O. The runtime feeds it inputs (a participant
//! answered, a timer fired, a user cancelled) and gets back events to make
//! durable; applying those events yields effects (invoke a participant, arm a
//! timer) as plain data. Recovery replays the same events through the same
//! [`Execution::apply`], so live runs and replays cannot diverge.

pub mod asl;
pub mod definition;
pub mod document;
pub mod durable;
mod envelope;
pub mod error_name;
pub mod event;
pub mod exchange;
pub mod execution;
pub mod explain;
pub mod function_name;
pub mod graph;
pub mod keys;
pub mod path;
pub mod plan;
pub mod retry;
pub mod saga;
pub mod test_state;

pub use envelope::{Envelope, Stop};
pub use event::{ErrorInfo, Event, EventKind, Status, TaskKind};
pub use exchange::{
    activity_name, activity_name_ok, parse_task_token, task_token, Applied, CallbackRefused, Ctx,
    Effect, Input, Participant, Request, TaskToken,
};
pub use execution::{child_trace, trace, Body, Decision, Execution};
pub use keys::KeyScheme;
pub use plan::{Limits, Plan, Program};
pub use retry::RetryPolicy;
pub use saga::{Role, Saga, Stage, Step, Stuck, StuckPolicy, Task};

/// Compiles a saga definition (YAML or JSON); see [`definition::compile`].
pub use definition::compile;

/// Compiles a definition of either format: an Amazon States Language
/// document (JSON with `StartAt` and `States`) runs on the ASL interpreter,
/// a durable function's definition (`{"DurableFunction": …}`) runs its
/// hosted code; anything else is a saga definition (YAML or JSON). `resources` binds ASL
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
        compile_asl(doc, name_hint, resources)
    } else if durable::is_durable(doc) {
        durable::compile_function(doc, name_hint)
    } else {
        definition::compile_document_as(doc, name_hint, stored)
    }
}

/// One validation problem: a stable code, where it is, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Violation {
    pub code: String,
    pub location: String,
    pub message: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at {}: {}", self.code, self.location, self.message)
    }
}

/// Compiles an ASL document into a [`Plan`] that runs on the ASL
/// interpreter. ASL has no name field: it comes from where it is deployed.
fn compile_asl(
    doc: &serde_json::Value,
    name: Option<&str>,
    resources: &asl::ResourceMap,
) -> Result<Plan, Error> {
    let machine = asl::compile(doc, resources);
    let name = name.filter(|n| definition::valid_name(n));
    let (machine, name) = match (machine, name) {
        (Ok(m), Some(n)) => (m, n),
        (result, name) => {
            let mut violations = match result {
                Err(Error::InvalidDefinition(v)) => v,
                Err(other) => return Err(other),
                Ok(_) => Vec::new(),
            };
            if name.is_none() {
                violations.insert(
                    0,
                    Violation {
                        code: "invalid_name".into(),
                        location: "name".into(),
                        message: "an ASL state machine needs a name of 1 to 80 letters, digits, `-` or `_` (given where it is deployed)".into(),
                    },
                );
            }
            return Err(Error::InvalidDefinition(violations));
        }
    };
    Ok(Plan {
        name: name.to_string(),
        description: machine.comment.clone(),
        timeout_ms: machine.timeout_seconds.map(|s| s.saturating_mul(1000)),
        variables: Default::default(),
        variable_uses: Vec::new(),
        digest: document::digest(doc),
        program: Program::Asl(std::sync::Arc::new(machine)),
    })
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
