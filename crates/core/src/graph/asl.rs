//! An Amazon States Language machine as a graph, drawn as the Step
//! Functions console draws it: states top to bottom, a Parallel state a
//! frame around one group per branch, a Map state a frame around its
//! processor; Choice rules, `Default` and `Catch` as labelled edges. An
//! execution's states come from the Step-Functions-shaped trace of its
//! history ([`crate::trace`]).

use std::collections::BTreeMap;

use serde_json::Value;

use super::{edge, node, EdgeKind, Graph, Iteration, Node, NodeState};
use crate::asl::machine::{self, Kind, Machine, Operand, Rule};
use crate::asl::run::TraceKind;
use crate::event::Event;
use crate::{Error, Plan};

pub(super) fn definition(m: &Machine) -> Graph {
    let mut g = Graph {
        kind: "asl",
        nodes: vec![node("start", "Start", "start"), node("end", "End", "end")],
        edges: Vec::new(),
    };
    if let Some(first) = m.graph.states.get(m.graph.start_at) {
        g.edges
            .push(edge("start", first.name.clone(), EdgeKind::Next));
    }
    scope(&mut g, &m.graph, None, "", Some("end"));
    g
}

/// Adds the states of one scope (the machine, a branch, a processor);
/// `end` is where a terminal state leads (the machine's end node, none
/// inside a branch: the frame shows it).
fn scope(
    g: &mut Graph,
    graph: &machine::Graph,
    parent: Option<&str>,
    pointer: &str,
    end: Option<&str>,
) {
    for state in &graph.states {
        let mut n = node(&state.name, &state.name, state.kind.type_name());
        n.parent = parent.map(str::to_string);
        n.location = Some(format!("{pointer}/States/{}", state.name));
        let location = n.location.clone().unwrap_or_default();
        g.nodes.push(n);
        let name = |i: usize| graph.states[i].name.clone();
        let terminal = match &state.kind {
            Kind::Choice { choices, default } => {
                for c in choices {
                    let mut e = edge(state.name.clone(), name(c.next), EdgeKind::Choice);
                    e.label = Some(rule_label(&c.rule));
                    g.edges.push(e);
                }
                if let Some(d) = default {
                    g.edges
                        .push(edge(state.name.clone(), name(*d), EdgeKind::Default));
                }
                false
            }
            Kind::Succeed | Kind::Fail(_) => true,
            _ => match state.next {
                Some(next) => {
                    g.edges
                        .push(edge(state.name.clone(), name(next), EdgeKind::Next));
                    false
                }
                None => true,
            },
        };
        if terminal {
            if let Some(end) = end {
                g.edges.push(edge(state.name.clone(), end, EdgeKind::Next));
            }
        }
        for c in &state.catch {
            let mut e = edge(state.name.clone(), name(c.next), EdgeKind::Catch);
            e.label = Some(c.error_equals.join(", "));
            g.edges.push(e);
        }
        match &state.kind {
            Kind::Parallel { branches } => {
                for (i, b) in branches.iter().enumerate() {
                    let id = format!("{}/branch{i}", state.name);
                    let mut group = node(&id, format!("Branch {}", i + 1), "branch");
                    group.parent = Some(state.name.clone());
                    g.nodes.push(group);
                    scope(g, b, Some(&id), &format!("{location}/Branches/{i}"), None);
                }
            }
            Kind::Map(map) => {
                let id = format!("{}/processor", state.name);
                let mut group = node(&id, "Iteration", "branch");
                group.parent = Some(state.name.clone());
                g.nodes.push(group);
                scope(
                    g,
                    &map.processor,
                    Some(&id),
                    &format!("{location}/ItemProcessor"),
                    None,
                );
            }
            _ => {}
        }
    }
}

/// A Choice rule in a few words (`$.total NumericGreaterThan 100`).
fn rule_label(rule: &Rule) -> String {
    match rule {
        Rule::And(rules) => format!(
            "({})",
            rules
                .iter()
                .map(rule_label)
                .collect::<Vec<_>>()
                .join(" and ")
        ),
        Rule::Or(rules) => format!(
            "({})",
            rules
                .iter()
                .map(rule_label)
                .collect::<Vec<_>>()
                .join(" or ")
        ),
        Rule::Not(r) => format!("not {}", rule_label(r)),
        Rule::Condition(t) => match t.source() {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        },
        Rule::Compare {
            variable,
            op,
            operand,
        } => {
            let operand = match operand {
                Operand::Value(v) => v.to_string(),
                Operand::Path(p) => p.clone(),
            };
            format!("{variable} {op:?} {operand}")
        }
    }
}

pub(super) fn execution(m: &Machine, plan: &Plan, events: &[Event]) -> Result<Graph, Error> {
    let mut g = definition(m);
    let trace = crate::trace(plan, events)?;
    let mut by_name: BTreeMap<String, usize> = BTreeMap::new();
    for (i, n) in g.nodes.iter().enumerate() {
        by_name.entry(n.id.clone()).or_insert(i);
    }
    let mut iterations: BTreeMap<String, BTreeMap<usize, NodeState>> = BTreeMap::new();
    let mut end: Option<NodeState> = None;
    for t in &trace {
        let (name, change): (&str, Change) = match &t.kind {
            TraceKind::StateEntered { name, input, .. } => (name, Change::Entered(input)),
            TraceKind::StateExited { name, output, .. } => (name, Change::Exited(output)),
            TraceKind::TaskScheduled { name, .. } => (name, Change::Attempt),
            TraceKind::TaskSubmitted { name, .. } => (name, Change::State(NodeState::Parked)),
            TraceKind::TaskFailed { name, error, .. }
            | TraceKind::TaskTimedOut { name, error, .. }
            | TraceKind::ParallelStateFailed { name, error }
            | TraceKind::MapStateFailed { name, error } => (name, Change::Failed(error)),
            TraceKind::MapIterationStarted { name, index }
            | TraceKind::MapIterationSucceeded { name, index }
            | TraceKind::MapIterationFailed { name, index }
            | TraceKind::MapIterationAborted { name, index } => {
                let state = match &t.kind {
                    TraceKind::MapIterationStarted { .. } => NodeState::Running,
                    TraceKind::MapIterationSucceeded { .. } => NodeState::Succeeded,
                    TraceKind::MapIterationFailed { .. } => NodeState::Failed,
                    _ => NodeState::Cancelled,
                };
                iterations
                    .entry(name.clone())
                    .or_default()
                    .insert(*index, state);
                continue;
            }
            TraceKind::ExecutionFailed { .. } => {
                end = Some(NodeState::Failed);
                continue;
            }
            TraceKind::ExecutionAborted { .. } => {
                end = Some(NodeState::Cancelled);
                continue;
            }
            TraceKind::ExecutionTimedOut { .. } => {
                end = Some(NodeState::TimedOut);
                continue;
            }
            TraceKind::ExecutionRedriven {} => {
                end = None;
                continue;
            }
            _ => continue,
        };
        let Some(&i) = by_name.get(name) else {
            continue;
        };
        let n = &mut g.nodes[i];
        match change {
            Change::Entered(input) => {
                n.started_at = Some(t.at);
                n.ended_at = None;
                n.input = Some(input.clone());
                n.state = Some(NodeState::Running);
            }
            Change::Exited(output) => {
                n.ended_at = Some(t.at);
                n.output = Some(output.clone());
                // A state left after a caught error stays drawn failed.
                if n.state != Some(NodeState::Failed) {
                    n.state = Some(NodeState::Succeeded);
                }
            }
            Change::Attempt => {
                n.attempts += 1;
                n.state = Some(if n.attempts > 1 {
                    NodeState::Retrying
                } else {
                    NodeState::Running
                });
            }
            Change::State(s) => n.state = Some(s),
            Change::Failed(error) => {
                n.error = Some(error.clone());
                n.state = Some(NodeState::Failed);
                n.ended_at = Some(t.at);
            }
        }
    }
    for n in &mut g.nodes {
        if let Some(its) = iterations.remove(&n.id) {
            n.iterations = its
                .into_iter()
                .map(|(index, state)| Iteration { index, state })
                .collect();
        }
        // What was still running when the execution ended ended with it.
        if let Some(end) = end {
            if matches!(
                n.state,
                Some(NodeState::Running | NodeState::Retrying | NodeState::Parked)
            ) {
                n.state = Some(end);
            }
        }
        if n.state.is_none() && !matches!(n.node_type.as_str(), "start" | "end" | "branch") {
            n.state = Some(NodeState::Pending);
        }
    }
    Ok(g)
}

enum Change<'a> {
    Entered(&'a Value),
    Exited(&'a Value),
    Attempt,
    State(NodeState),
    Failed(&'a crate::ErrorInfo),
}

/// A machine that does not validate, drawn as far as it can be: the
/// top-level states and the `Next`, `Default` and `Catch` names that
/// resolve.
pub(super) fn loose(doc: &Value) -> Graph {
    let mut g = Graph {
        kind: "asl",
        nodes: vec![node("start", "Start", "start")],
        edges: Vec::new(),
    };
    let Some(states) = doc.get("States").and_then(Value::as_object) else {
        return g;
    };
    for (name, state) in states {
        let kind = state.get("Type").and_then(Value::as_str).unwrap_or("State");
        let mut n: Node = node(name, name, kind);
        n.location = Some(format!("/States/{name}"));
        g.nodes.push(n);
    }
    if let Some(first) = doc.get("StartAt").and_then(Value::as_str) {
        if states.contains_key(first) {
            g.edges.push(edge("start", first, EdgeKind::Next));
        }
    }
    for (name, state) in states {
        let mut to = |target: Option<&Value>, kind: EdgeKind| {
            if let Some(t) = target.and_then(Value::as_str) {
                if states.contains_key(t) {
                    g.edges.push(edge(name.clone(), t, kind));
                }
            }
        };
        to(state.get("Next"), EdgeKind::Next);
        to(state.get("Default"), EdgeKind::Default);
        for c in state
            .get("Choices")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            to(c.get("Next"), EdgeKind::Choice);
        }
        for c in state
            .get("Catch")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            to(c.get("Next"), EdgeKind::Catch);
        }
    }
    g
}
