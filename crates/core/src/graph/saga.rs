//! A native saga as a graph: its stages left to right (a parallel stage a
//! group of its steps), each compensation below its step, the
//! compensations linked in the reverse order they run in.

use serde_json::Value;

use super::{edge, node, EdgeKind, Graph, Node, NodeState};
use crate::event::{Event, EventKind};
use crate::exchange::task_token;
use crate::saga::{Role, Saga, StuckPolicy, TaskProgress, TaskState};
use crate::{Execution, Plan, TaskKind};

/// What a step's name is followed by in its compensation node's id.
const COMPENSATION_SUFFIX: &str = "/compensation";

/// The id of a step's compensation node.
fn compensation_id(step: &str) -> String {
    format!("{step}{COMPENSATION_SUFFIX}")
}

fn stage_id(stage: &str) -> String {
    format!("stage:{stage}")
}

pub(super) fn definition(saga: &Saga) -> Graph {
    let mut nodes = vec![node("start", "Start", "start")];
    let mut edges = Vec::new();
    let mut previous: Vec<String> = vec!["start".into()];
    // Compensations of the stage before, to link compensations backwards.
    let mut previous_undo: Vec<String> = Vec::new();
    for stage in &saga.stages {
        let group = (stage.parallel && stage.steps.len() > 1).then(|| {
            let mut g = node(stage_id(&stage.name), &stage.name, "stage");
            g.sub_type = Some("parallel".into());
            nodes.push(g);
            stage_id(&stage.name)
        });
        let mut this: Vec<String> = Vec::new();
        let mut undo: Vec<String> = Vec::new();
        for &i in &stage.steps {
            let step = &saga.steps[i];
            let mut n = node(&step.name, &step.name, "step");
            n.parent = group.clone();
            n.pivot = step.role == Role::Pivot;
            n.sub_type = Some(role_name(step.role).into());
            n.location = Some(format!("steps[{i}]"));
            nodes.push(n);
            for p in &previous {
                edges.push(edge(p.clone(), step.name.clone(), EdgeKind::Next));
            }
            if step.compensation.is_some() {
                let id = compensation_id(&step.name);
                let mut c = node(&id, format!("undo {}", step.name), "compensation");
                c.parent = group.clone().map(|g| format!("{g}/compensation"));
                c.location = Some(format!("steps[{i}].compensation"));
                nodes.push(c);
                edges.push(edge(step.name.clone(), id.clone(), EdgeKind::Undo));
                for p in &previous_undo {
                    edges.push(edge(id.clone(), p.clone(), EdgeKind::Compensation));
                }
                undo.push(id);
            }
            this.push(step.name.clone());
        }
        previous = this;
        if !undo.is_empty() {
            previous_undo = undo;
        }
    }
    nodes.push(node("end", "End", "end"));
    for p in previous {
        edges.push(edge(p, "end", EdgeKind::Next));
    }
    // A parallel stage's compensations are a group of their own below it.
    let groups: Vec<Node> = nodes
        .iter()
        .filter(|n| n.node_type == "stage")
        .filter(|g| {
            nodes
                .iter()
                .any(|c| c.parent.as_deref() == Some(&format!("{}/compensation", g.id)))
        })
        .map(|g| {
            let mut c = node(
                format!("{}/compensation", g.id),
                format!("undo {}", g.label),
                "stage",
            );
            c.sub_type = Some("parallel".into());
            c
        })
        .collect();
    nodes.extend(groups);
    Graph {
        kind: "saga",
        nodes,
        edges,
    }
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Compensatable => "compensatable",
        Role::Pivot => "pivot",
        Role::Retriable => "retriable",
    }
}

pub(super) fn execution(
    plan: &Plan,
    saga: &Saga,
    execution: &Execution,
    events: &[Event],
    policy: &StuckPolicy,
) -> Graph {
    let mut graph = definition(saga);
    let Some(progress) = execution.saga() else {
        return graph;
    };
    let stuck = progress
        .stuck_compensation(saga, policy)
        .map(|s| s.step)
        .unwrap_or_default();
    let id = &execution.envelope().id;
    for n in &mut graph.nodes {
        let (name, task) = match n.node_type.as_str() {
            "step" => (n.id.clone(), TaskKind::Action),
            "compensation" => match n.id.strip_suffix(COMPENSATION_SUFFIX) {
                Some(step) => (step.to_string(), TaskKind::Compensation),
                None => continue,
            },
            _ => continue,
        };
        let Some(i) = saga.step_index(&name) else {
            continue;
        };
        let p = progress.task(i, task);
        let compensation = &progress.steps[i].compensation;
        n.state = Some(match task {
            TaskKind::Action => match compensation.state {
                TaskState::Succeeded { .. } => NodeState::Compensated,
                TaskState::Running { .. } | TaskState::WaitingRetry { .. } if stuck == name => {
                    NodeState::Stuck
                }
                TaskState::Running { .. } | TaskState::WaitingRetry { .. } => {
                    NodeState::Compensating
                }
                _ => task_state(p, NodeState::Running),
            },
            TaskKind::Compensation => match p.state {
                TaskState::Running { .. } | TaskState::WaitingRetry { .. } if stuck == name => {
                    NodeState::Stuck
                }
                TaskState::Succeeded { .. } => NodeState::Compensated,
                _ => task_state(p, NodeState::Compensating),
            },
        });
        n.attempts = p.attempts;
        n.output = match task {
            TaskKind::Action => progress.steps[i].output.clone(),
            TaskKind::Compensation => None,
        };
        if let (true, Some(nonce), TaskState::Running { attempt, .. }) =
            (p.parked, &p.nonce, &p.state)
        {
            n.task_token = Some(task_token(id, &name, task, *attempt, nonce));
        }
        if let Ok(request) = execution.request(plan, &name, task) {
            n.input = Some(request.input);
        }
        times(n, &name, task, events);
    }
    graph
}

/// A task's state when nothing about its compensation decides it.
fn task_state(p: &TaskProgress, running: NodeState) -> NodeState {
    match &p.state {
        TaskState::Idle => NodeState::Pending,
        TaskState::Running { .. } if p.parked => NodeState::Parked,
        TaskState::Running { .. } => running,
        TaskState::WaitingRetry { .. } => NodeState::Retrying,
        TaskState::Succeeded { .. } => NodeState::Succeeded,
        TaskState::Failed { .. } => NodeState::Failed,
        TaskState::Abandoned => NodeState::Cancelled,
    }
}

/// A task's first start, last end and last error, from the history.
fn times(n: &mut Node, step: &str, task: TaskKind, events: &[Event]) {
    for e in events {
        let (s, started, ended, error) = match (&e.kind, task) {
            (EventKind::StepScheduled { step, .. }, TaskKind::Action) => (step, true, false, None),
            (EventKind::StepSucceeded { step, .. }, TaskKind::Action) => (step, false, true, None),
            (EventKind::StepFailed { step, error, .. }, TaskKind::Action) => {
                (step, false, true, Some(error))
            }
            (EventKind::CompensationScheduled { step, .. }, TaskKind::Compensation) => {
                (step, true, false, None)
            }
            (EventKind::CompensationSucceeded { step, .. }, TaskKind::Compensation) => {
                (step, false, true, None)
            }
            (EventKind::CompensationFailed { step, error, .. }, TaskKind::Compensation) => {
                (step, false, true, Some(error))
            }
            _ => continue,
        };
        if s != step {
            continue;
        }
        if started {
            n.started_at.get_or_insert(e.at);
            n.ended_at = None;
        }
        if ended {
            n.ended_at = Some(e.at);
        }
        if let Some(error) = error {
            n.error = Some(error.clone());
        }
    }
}

/// A saga document that does not validate, drawn as far as it can be: its
/// steps in order, by name where they have one.
pub(super) fn loose(doc: &Value) -> Graph {
    let mut nodes = vec![node("start", "Start", "start")];
    let mut edges = Vec::new();
    let mut previous = "start".to_string();
    let steps = doc.get("steps").and_then(Value::as_array);
    for (i, step) in steps.into_iter().flatten().enumerate() {
        let name = step
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty() && !nodes.iter().any(|m: &Node| m.id == *n))
            .map(str::to_string)
            .unwrap_or_else(|| format!("steps[{i}]"));
        let mut n = node(&name, &name, "step");
        n.location = Some(format!("steps[{i}]"));
        nodes.push(n);
        edges.push(edge(previous, name.clone(), EdgeKind::Next));
        previous = name;
    }
    nodes.push(node("end", "End", "end"));
    edges.push(edge(previous, "end", EdgeKind::Next));
    Graph {
        kind: "saga",
        nodes,
        edges,
    }
}
