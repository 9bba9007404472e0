//! The compiled form of a definition: the fields every kind of program
//! shares, and the [`Program`] itself (a saga, or an Amazon States Language
//! machine, or a Lambda durable function).
//!
//! The runtime holds a [`Plan`] and never looks inside its program: what
//! differs between kinds of programs is decided by the interpreters, behind
//! [`crate::Execution`].

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::asl::Machine;
use crate::durable::DurableFunction;
use crate::saga::Saga;

/// A validated, compiled definition: what an execution runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub name: String,
    pub description: Option<String>,
    /// The whole execution's time limit (a saga that has not reached its
    /// pivot is then rolled back; an ASL machine ends `timed_out`).
    pub timeout_ms: Option<u64>,
    /// `${VAR}` names used in URLs and header values; the runtime must know them all.
    pub variables: BTreeSet<String>,
    /// Where each `${VAR}` is used: `(name, location)`, for precise errors.
    pub variable_uses: Vec<(String, String)>,
    /// SHA-256 of the canonical JSON form; a changed digest is a new version.
    pub digest: String,
    pub program: Program,
}

/// What an execution interprets. Each variant has its interpreter in its own
/// module, and its own [`crate::execution::Body`].
#[derive(Debug, Clone, PartialEq)]
pub enum Program {
    /// A native saga definition (YAML or JSON).
    Saga(Saga),
    /// An Amazon States Language machine (shared: a Map's iterations and
    /// every execution of the definition use the same one).
    Asl(Arc<Machine>),
    /// A Lambda durable function: its code runs elsewhere (hosted by the
    /// runtime) and reports operations through checkpoints.
    Durable(Arc<DurableFunction>),
}

/// The limits a runtime sets on every execution it runs, whatever the
/// definition says (see [`Plan::limit`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The most events one history may hold.
    pub max_history_events: u64,
}

impl Plan {
    /// The stored format name: `asl`, `saga` or `durable`.
    pub fn format(&self) -> &'static str {
        match self.program {
            Program::Saga(_) => "saga",
            Program::Asl(_) => "asl",
            Program::Durable(_) => "durable",
        }
    }

    /// The saga program, for a plan compiled from a saga definition.
    pub fn saga(&self) -> Option<&Saga> {
        match &self.program {
            Program::Saga(s) => Some(s),
            Program::Asl(_) | Program::Durable(_) => None,
        }
    }

    /// Applies this engine's limits to the program. Sagas have no history
    /// quota (their histories are bounded by their steps and retry
    /// policies); an ASL machine ends at AWS's quota, or the engine's.
    pub fn limit(&mut self, limits: Limits) {
        match &mut self.program {
            Program::Saga(_) | Program::Durable(_) => {}
            Program::Asl(m) => Arc::make_mut(m).max_history_events = limits.max_history_events,
        }
    }
}
