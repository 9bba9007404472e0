//! Executions and definitions as graphs, for the console: nodes (saga
//! steps and their compensations, ASL states, durable operations), the
//! groups they sit in (a parallel stage, a Parallel branch, a Map
//! processor, a child context), edges, and — for an execution — each
//! node's state, read from the same fold of the history that runs it.
//!
//! Pure like the rest of the core: the API renders [`Graph`] as JSON
//! (`GET /v1/definitions/{name}/graph`, `GET /v1/executions/{id}/graph`);
//! layout is the console's business.

mod asl;
mod durable;
mod saga;

use serde::Serialize;
use serde_json::Value;

use crate::event::{ErrorInfo, Event, Millis, Status};
use crate::plan::{Plan, Program};
use crate::saga::StuckPolicy;
use crate::{Error, Execution, Violation};

/// A definition or execution drawn as nodes and edges.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Graph {
    /// `saga`, `asl` or `durable`.
    pub kind: &'static str,
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
}

/// One box of the drawing.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct Node {
    /// Unique in the graph: a step's or state's name, `<step>/compensation`,
    /// an operation id, `<state>/branch<i>`.
    pub id: String,
    pub label: String,
    /// `step`, `compensation`, `stage`, `start`, `end`; an ASL state's
    /// `Type` or `branch`; a durable operation's type (`STEP` …).
    #[serde(rename = "type")]
    pub node_type: String,
    pub sub_type: Option<String>,
    /// The group node it is drawn in.
    pub parent: Option<String>,
    pub pivot: bool,
    /// `None` in a definition's graph.
    pub state: Option<NodeState>,
    pub attempts: u32,
    pub error: Option<ErrorInfo>,
    pub started_at: Option<Millis>,
    pub ended_at: Option<Millis>,
    pub input: Option<Value>,
    pub output: Option<Value>,
    /// What answers the callback it is parked on:
    /// `POST /v1/callbacks/{task_token}/success|failure`.
    pub task_token: Option<String>,
    /// Where it is in the definition (`steps[2]`, `/States/Pay`), so a
    /// validation problem can be shown on it.
    pub location: Option<String>,
    /// A Map state's iterations, by index.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub iterations: Vec<Iteration>,
}

/// The state a node is drawn in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeState {
    Pending,
    Running,
    Retrying,
    Succeeded,
    Failed,
    Compensating,
    Compensated,
    /// Waiting for a callback (a task token or a durable callback).
    Parked,
    /// A compensation that keeps failing: it needs a human.
    Stuck,
    Cancelled,
    TimedOut,
}

/// One iteration of a Map state.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Iteration {
    pub index: usize,
    pub state: NodeState,
}

/// An arrow between two nodes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Edge {
    pub from: String,
    pub to: String,
    pub kind: EdgeKind,
    pub label: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EdgeKind {
    /// The normal flow.
    Next,
    /// From a step to its compensation.
    Undo,
    /// From one compensation to the one that runs after it.
    Compensation,
    /// A Choice rule and where it leads.
    Choice,
    /// A Choice's `Default`.
    Default,
    /// A `Catch` and where it leads.
    Catch,
}

/// An execution's graph, with a sentence saying why it is not
/// `succeeded` (when it is not) and, for a durable function, its
/// invocations.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExecutionGraph {
    #[serde(flatten)]
    pub graph: Graph,
    pub why: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub invocations: Vec<Invocation>,
}

/// One invocation of a durable function, for its timeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Invocation {
    pub number: u32,
    pub started_at: Millis,
    pub ended_at: Option<Millis>,
    /// `running`, `pending` (suspended), `succeeded`, `failed`, or the
    /// error type of an invocation that errored.
    pub outcome: String,
}

/// A validated definition's graph.
pub fn of_plan(plan: &Plan) -> Graph {
    match &plan.program {
        Program::Saga(s) => saga::definition(s),
        Program::Asl(m) => asl::definition(m),
        Program::Durable(_) => durable::definition(&plan.name),
    }
}

/// An execution's graph: its plan's, each node in the state the history
/// leaves it in. `stuck` says when a failing compensation counts as stuck.
pub fn of_execution(
    plan: &Plan,
    events: &[Event],
    stuck: &StuckPolicy,
) -> Result<ExecutionGraph, Error> {
    let execution = Execution::replay(plan, events)?;
    let (graph, invocations) = match &plan.program {
        Program::Saga(s) => (
            saga::execution(plan, s, &execution, events, stuck),
            Vec::new(),
        ),
        Program::Asl(m) => (asl::execution(m, plan, events)?, Vec::new()),
        Program::Durable(_) => durable::execution(&plan.name, &execution, events),
    };
    let why = why(&graph, &execution, events);
    Ok(ExecutionGraph {
        graph,
        why,
        invocations,
    })
}

/// The best graph that can be drawn of a definition that does not
/// validate, its problems each placed on the node they concern.
pub fn of_invalid(source: &str, problems: &[Violation]) -> (Graph, Vec<Option<String>>) {
    let graph = match crate::document::parse(source) {
        Ok(doc) if doc.get("States").is_some() => asl::loose(&doc),
        Ok(doc) => saga::loose(&doc),
        Err(_) => Graph {
            kind: "saga",
            nodes: Vec::new(),
            edges: Vec::new(),
        },
    };
    let placed = problems
        .iter()
        .map(|p| node_at(&graph, &p.location))
        .collect();
    (graph, placed)
}

/// The node whose location is the longest prefix of `location`.
pub fn node_at(graph: &Graph, location: &str) -> Option<String> {
    graph
        .nodes
        .iter()
        .filter_map(|n| {
            let at = n.location.as_deref()?;
            let inside = location == at
                || location
                    .strip_prefix(at)
                    .is_some_and(|rest| rest.starts_with(['.', '/', '[']));
            inside.then_some((at.len(), &n.id))
        })
        .max_by_key(|(len, _)| *len)
        .map(|(_, id)| id.clone())
}

/// Why the execution is not `succeeded`, in one sentence (`None` when it is).
fn why(graph: &Graph, execution: &Execution, events: &[Event]) -> Option<String> {
    let env = execution.envelope();
    let named = |state: NodeState| -> Vec<&str> {
        graph
            .nodes
            .iter()
            .filter(|n| n.state == Some(state) && n.node_type != "compensation")
            .map(|n| n.label.as_str())
            .collect()
    };
    let error = |e: &ErrorInfo| {
        if e.cause.is_empty() {
            format!("`{}`", e.error)
        } else {
            format!("`{}` ({})", e.error, e.cause)
        }
    };
    let list = |names: Vec<&str>| {
        names
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let compensated: Vec<&str> = compensation_order(events);
    let sentence = match env.status {
        Status::Succeeded => return None,
        Status::Running => {
            let parked = named(NodeState::Parked);
            let retrying = named(NodeState::Retrying);
            let running = named(NodeState::Running);
            if !parked.is_empty() {
                format!("Running: waiting for the callback of {}.", list(parked))
            } else if !retrying.is_empty() {
                format!("Running: {} failed and will be retried.", list(retrying))
            } else if !running.is_empty() {
                format!("Running: {}.", list(running))
            } else {
                "Running.".to_string()
            }
        }
        Status::Compensating => {
            let stuck = named(NodeState::Stuck);
            let cause = rollback_cause(events).unwrap_or_else(|| "a failure".into());
            if stuck.is_empty() {
                format!("Compensating after {cause}.")
            } else {
                format!(
                    "Compensating after {cause}; the compensation of {} keeps failing and needs a human (fix it, then let it retry).",
                    list(stuck)
                )
            }
        }
        Status::Compensated => {
            let cause = rollback_cause(events).unwrap_or_else(|| "a failure".into());
            if compensated.is_empty() {
                format!("Compensated after {cause}; nothing had to be undone.")
            } else {
                format!(
                    "Compensated after {cause}: undone in this order: {}.",
                    list(compensated)
                )
            }
        }
        Status::Failed => match &env.error {
            Some(e) => format!("Failed with {}.", error(e)),
            None => "Failed.".to_string(),
        },
        Status::Cancelled => match &env.error {
            Some(e) => format!("Cancelled: {}.", error(e)),
            None => "Cancelled.".to_string(),
        },
        Status::TimedOut => "Timed out: the execution ran past its timeout.".to_string(),
    };
    Some(sentence)
}

/// What a saga rolled back for, from its history: the failed step, a
/// cancel, or the timeout.
fn rollback_cause(events: &[Event]) -> Option<String> {
    use crate::event::EventKind as K;
    events.iter().rev().find_map(|e| match &e.kind {
        K::RollbackStarted { step, error } => Some(format!(
            "step `{step}` failed with `{}`{}",
            error.error,
            if error.cause.is_empty() {
                String::new()
            } else {
                format!(" ({})", error.cause)
            }
        )),
        K::CancelRequested { reason } => Some(format!("a cancel ({reason})")),
        K::ExecutionTimedOut {} => Some("the execution timed out".into()),
        _ => None,
    })
}

/// The steps whose compensation succeeded, in the order they did.
fn compensation_order(events: &[Event]) -> Vec<&str> {
    use crate::event::EventKind as K;
    events
        .iter()
        .filter_map(|e| match &e.kind {
            K::CompensationSucceeded { step, .. } => Some(step.as_str()),
            _ => None,
        })
        .collect()
}

/// Reads a payload as JSON, or keeps it as a string.
fn payload(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
}

fn node(id: impl Into<String>, label: impl Into<String>, node_type: impl Into<String>) -> Node {
    Node {
        id: id.into(),
        label: label.into(),
        node_type: node_type.into(),
        ..Node::default()
    }
}

fn edge(from: impl Into<String>, to: impl Into<String>, kind: EdgeKind) -> Edge {
    Edge {
        from: from.into(),
        to: to.into(),
        kind,
        label: None,
    }
}
