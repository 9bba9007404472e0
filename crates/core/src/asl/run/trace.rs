//! The Step-Functions-shaped view of an execution: one [`Trace`] entry per
//! event of AWS's history (`TaskStateEntered`, `MapRunStarted`,
//! `EvaluationFailed`, …), recorded by the interpreter while it replays the
//! stored events with tracing on, each labelled with the map run child
//! execution whose history shows it.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::event::{ErrorInfo, Millis};

/// One entry of the Step-Functions-shaped view of a history, rendered by
/// replaying the stored events with tracing on (see [`crate::trace`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trace {
    pub at: Millis,
    pub kind: TraceKind,
    /// The map run child execution (map run index, item index) whose
    /// thread recorded it: AWS shows it in that child's own history.
    /// `None`: the execution's own. Not serialized: the native trace is
    /// unchanged by it.
    #[serde(skip)]
    pub child: Child,
}

/// A map run child execution: the index of its map run in
/// [`Run::map_runs`](super::Run::map_runs) and its item's (or batch's) index there.
pub type Child = Option<(usize, usize)>;

impl Trace {
    /// Whether the execution's own history shows it: not an entry of a map
    /// run child execution, which has a history of its own (as on AWS,
    /// where the parent shows only the `MapRun…` events).
    pub fn is_own(&self) -> bool {
        self.child.is_none()
    }
}

/// What the Step Functions history would show. `name` is the state name;
/// `Type`-specific event names are built from `type_name` (`TaskStateEntered`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type")]
pub enum TraceKind {
    ExecutionStarted {
        input: Value,
    },
    ExecutionSucceeded {
        output: Value,
    },
    ExecutionFailed {
        error: ErrorInfo,
    },
    ExecutionAborted {
        reason: String,
    },
    ExecutionTimedOut {
        error: ErrorInfo,
    },
    ExecutionRedriven {},
    StateEntered {
        name: String,
        type_name: &'static str,
        input: Value,
    },
    StateExited {
        name: String,
        type_name: &'static str,
        output: Value,
        /// AWS's `assignedVariables` (name → value as JSON text) of a
        /// state with an `Assign`.
        #[serde(skip_serializing_if = "Option::is_none")]
        assigned: Option<BTreeMap<String, String>>,
    },
    /// A Task attempt was scheduled; `parameters` is the rendered request body.
    TaskScheduled {
        name: String,
        resource: String,
        parameters: Value,
    },
    TaskStarted {
        name: String,
        resource: String,
    },
    /// A `.waitForTaskToken` task's participant took the token.
    TaskSubmitted {
        name: String,
        resource: String,
    },
    TaskSucceeded {
        name: String,
        resource: String,
        output: Value,
    },
    TaskFailed {
        name: String,
        resource: String,
        error: ErrorInfo,
    },
    TaskTimedOut {
        name: String,
        resource: String,
        error: ErrorInfo,
    },
    WaitStateAborted {
        name: String,
    },
    ParallelStateStarted {
        name: String,
    },
    ParallelStateSucceeded {
        name: String,
    },
    ParallelStateFailed {
        name: String,
        error: ErrorInfo,
    },
    ParallelStateAborted {
        name: String,
    },
    MapStateStarted {
        name: String,
        length: usize,
    },
    MapIterationStarted {
        name: String,
        index: usize,
    },
    MapIterationSucceeded {
        name: String,
        index: usize,
    },
    MapIterationFailed {
        name: String,
        index: usize,
    },
    MapIterationAborted {
        name: String,
        index: usize,
    },
    MapStateSucceeded {
        name: String,
    },
    MapStateFailed {
        name: String,
        error: ErrorInfo,
    },
    MapStateAborted {
        name: String,
    },
    /// A distributed Map's map run (see [`MapRun`](super::MapRun)).
    MapRunStarted {
        arn: String,
    },
    MapRunSucceeded {},
    MapRunFailed {
        error: ErrorInfo,
    },
    MapRunAborted {},
    MapRunRedriven {
        arn: String,
        redrive_count: u32,
    },
    /// A JSONata expression of state `state` failed (AWS's
    /// `EvaluationFailed`): `location` is the field that held it.
    EvaluationFailed {
        state: String,
        error: ErrorInfo,
        location: Option<String>,
    },
}
