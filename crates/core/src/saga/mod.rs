//! Native sagas: the program a saga definition compiles to ([`Saga`]: its
//! steps in stages) and its interpreter ([`run`]). The compiler from YAML or
//! JSON is [`crate::definition`].

pub mod run;

use serde::Serialize;
use serde_json::Value;

use crate::exchange::Participant;
use crate::retry::RetryPolicy;

pub use run::{Progress, StepProgress, Stuck, StuckPolicy, TaskProgress, TaskState};

/// Where a step sits in the compensatable → pivot → retriable structure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Before the pivot: undone by its compensation when the saga rolls back.
    Compensatable,
    /// The point of no return: once it succeeds the saga only moves forward.
    Pivot,
    /// After the pivot: retried until it succeeds (forward recovery).
    Retriable,
}

/// An action or a compensation: participant, retry policy, timeout, input template.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Task {
    pub participant: Participant,
    pub retry: RetryPolicy,
    pub timeout_ms: u64,
    /// Template rendered against `{input, steps, execution}`; `None` = the
    /// execution input (for an action) or the action's input (for a compensation).
    pub input: Option<Value>,
    /// The participant's answer only acknowledges the work; the task completes
    /// when its task token is sent to `/v1/callbacks/{token}/…` (or times out).
    pub callback: bool,
    /// For a callback task: fail with `States.Timeout` if no heartbeat (or
    /// answer) arrives within this long, well before the overall `timeout`.
    pub heartbeat_ms: Option<u64>,
}

/// A compiled step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    pub name: String,
    pub stage: usize,
    pub role: Role,
    pub action: Task,
    pub compensation: Option<Task>,
}

/// A stage runs after the previous one completed: one step, or a parallel group.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stage {
    pub name: String,
    pub parallel: bool,
    /// Indices into [`Saga::steps`].
    pub steps: Vec<usize>,
}

/// A compiled saga: its steps, and the stages they run in.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Saga {
    pub steps: Vec<Step>,
    pub stages: Vec<Stage>,
}

impl Saga {
    /// Index of the step with this name.
    pub fn step_index(&self, name: &str) -> Option<usize> {
        self.steps.iter().position(|s| s.name == name)
    }
}
