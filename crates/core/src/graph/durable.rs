//! A durable function's execution as its operation tree: each operation
//! (step, wait, callback, chained invoke, child context with its
//! `sub_type`: parallel, map, …) under its parent context, siblings in the
//! order they started; plus its invocations for a timeline. A durable
//! function has no graph before it runs: its code decides the shape.

use super::{edge, node, payload, EdgeKind, Graph, Invocation, Node, NodeState};
use crate::durable::{
    Details, ErrorObject, InvocationEvent, InvocationOutcome, Operation, OperationStatus,
    OperationType,
};
use crate::event::{ErrorInfo, Event, EventKind};
use crate::Execution;

pub(super) fn definition(function: &str) -> Graph {
    let mut n = node(function, function, "function");
    n.sub_type = Some("durable".into());
    Graph {
        kind: "durable",
        nodes: vec![n],
        edges: Vec::new(),
    }
}

pub(super) fn execution(
    function: &str,
    execution: &Execution,
    events: &[Event],
) -> (Graph, Vec<Invocation>) {
    let mut g = definition(function);
    let Some(run) = execution.durable() else {
        return (g, Vec::new());
    };
    let ops = run.operations();
    let mut last_child: std::collections::BTreeMap<Option<String>, String> = Default::default();
    for op in ops
        .iter()
        .filter(|op| op.op_type() != OperationType::Execution)
    {
        g.nodes.push(operation(op));
        // Siblings are drawn in the order they started.
        if let Some(before) = last_child.insert(op.parent_id.clone(), op.id.clone()) {
            g.edges.push(edge(before, op.id.clone(), EdgeKind::Next));
        }
    }
    let root = &mut g.nodes[0];
    root.state = Some(match execution.envelope().status {
        crate::Status::Running => NodeState::Running,
        crate::Status::Succeeded => NodeState::Succeeded,
        crate::Status::Cancelled => NodeState::Cancelled,
        crate::Status::TimedOut => NodeState::TimedOut,
        crate::Status::Compensating => NodeState::Compensating,
        crate::Status::Compensated => NodeState::Compensated,
        crate::Status::Failed => NodeState::Failed,
    });
    root.input = Some(execution.envelope().input.clone());
    root.output = execution.envelope().output.clone();
    root.error = execution.envelope().error.clone();
    root.started_at = Some(execution.envelope().started_at);
    (g, invocations(events))
}

fn operation(op: &Operation) -> Node {
    let label = op.name.clone().unwrap_or_else(|| op.id.clone());
    let mut n = node(&op.id, label, op.op_type().to_string());
    n.sub_type = op.sub_type.clone();
    n.parent = op.parent_id.clone();
    n.started_at = Some(op.start_timestamp);
    n.ended_at = op.end_timestamp;
    let (result, error) = match &op.details {
        Details::Step(d) => {
            n.attempts = d.attempt.max(1);
            (&d.result, &d.error)
        }
        Details::Callback(d) => {
            if op.status == OperationStatus::Started {
                n.task_token = d.callback_id.clone();
            }
            (&d.result, &d.error)
        }
        Details::ChainedInvoke(d) => (&d.result, &d.error),
        Details::Context(d) => (&d.result, &d.error),
        Details::Wait(_) | Details::Execution(_) => (&None, &None),
    };
    n.output = result.as_deref().map(payload);
    n.error = error.as_ref().map(error_info);
    n.state = Some(match op.status {
        OperationStatus::Started if op.op_type() == OperationType::Callback => NodeState::Parked,
        OperationStatus::Started => NodeState::Running,
        OperationStatus::Pending | OperationStatus::Ready => NodeState::Retrying,
        OperationStatus::Succeeded => NodeState::Succeeded,
        OperationStatus::Failed => NodeState::Failed,
        OperationStatus::Cancelled | OperationStatus::Stopped => NodeState::Cancelled,
        OperationStatus::TimedOut => NodeState::TimedOut,
    });
    n
}

fn error_info(e: &ErrorObject) -> ErrorInfo {
    ErrorInfo::new(
        e.error_type.clone().unwrap_or_default(),
        e.error_message.clone().unwrap_or_default(),
    )
}

/// The invocations, from their recorded facts.
fn invocations(events: &[Event]) -> Vec<Invocation> {
    let mut out: Vec<Invocation> = Vec::new();
    for e in events {
        let EventKind::DurableInvocation { fact } = &e.kind else {
            continue;
        };
        match fact {
            InvocationEvent::InvocationStarted { number, at, .. } => out.push(Invocation {
                number: *number,
                started_at: *at,
                ended_at: None,
                outcome: "running".into(),
            }),
            InvocationEvent::InvocationCompleted {
                number,
                outcome,
                at,
            } => {
                if let Some(i) = out.iter_mut().rev().find(|i| i.number == *number) {
                    i.ended_at = Some(*at);
                    i.outcome = match outcome {
                        InvocationOutcome::Pending => "pending".into(),
                        InvocationOutcome::Succeeded => "succeeded".into(),
                        InvocationOutcome::Failed => "failed".into(),
                        InvocationOutcome::Error { error_type, .. } => error_type.clone(),
                    };
                }
            }
            _ => {}
        }
    }
    out
}
