//! Step Functions' `TestState`: one state run on its own, on the pure core.
//!
//! [`wrap`] turns the state under test into a machine of its own: the
//! state (its query language made explicit), an optional first Pass state
//! that assigns the request's variables, and, for every state it may go to
//! (`Next`, a Choice rule's or `Default`, a catcher's `Next`), a `Succeed`
//! state of that name. [`run`] runs that machine on a simulated clock (a
//! Wait does not wait) and answers its task calls through a closure (a
//! mock, or the real participant); the state it went to is the `Succeed`
//! state that was entered. A retrier that matches ends the run `RETRIABLE`
//! (nothing is retried), unless the request says how many retries already
//! happened.

use std::collections::{BTreeMap, VecDeque};

use serde_json::{json, Map, Value};

use crate::asl::data;
use crate::asl::machine::{error_matches, PathField};
use crate::asl::run::{Trace, TraceKind};
use crate::asl::vars::Env;
use crate::event::{ErrorInfo, EventKind, Millis, Status};
use crate::exchange::{Ctx, Effect, Input, Request};
use crate::execution::{trace, Execution};
use crate::plan::Plan;
use crate::Error;

/// The name of the state under test when the definition is a single state.
pub const DEFAULT_NAME: &str = "TestState";
/// The name of the Pass state that assigns the request's variables.
const VARIABLES_STATE: &str = "TestState.Variables";

/// The state under test in a machine of its own.
#[derive(Debug, Clone)]
pub struct Wrapped {
    /// The machine to compile and [`run`].
    pub machine: Value,
    /// The state as it was given (with its query language).
    pub state: Value,
    /// Its name in [`Wrapped::machine`].
    pub name: String,
    /// Its query language is JSONata.
    pub jsonata: bool,
    /// The variables it starts with.
    pub variables: Map<String, Value>,
}

/// Builds the machine that runs `definition` (one state, or with
/// `state_name` a whole machine and the state of that name).
///
/// # Errors
///
/// A message for `ValidationException`.
pub fn wrap(
    definition: &Value,
    state_name: Option<&str>,
    variables: Map<String, Value>,
) -> Result<Wrapped, String> {
    let is_machine = definition.get("States").is_some() && definition.get("StartAt").is_some();
    let (mut state, name, machine_language) = match (is_machine, state_name) {
        (true, Some(name)) => {
            let state = definition
                .get("States")
                .and_then(|s| s.get(name))
                .cloned()
                .ok_or_else(|| format!("the definition has no top-level state named '{name}'"))?;
            let language = definition.get("QueryLanguage").cloned();
            (state, name.to_string(), language)
        }
        (true, None) => {
            return Err(
                "the definition is a state machine: stateName must name the state to test".into(),
            )
        }
        (false, Some(_)) => {
            return Err(
                "stateName is only allowed with a definition that is a whole state machine".into(),
            )
        }
        (false, None) => (definition.clone(), DEFAULT_NAME.to_string(), None),
    };
    let Some(fields) = state.as_object_mut() else {
        return Err("the definition must be a JSON object (a state)".into());
    };
    if fields.get("QueryLanguage").is_none() {
        if let Some(language) = machine_language {
            fields.insert("QueryLanguage".into(), language);
        }
    }
    let jsonata = fields.get("QueryLanguage").and_then(Value::as_str) == Some("JSONata");
    let mut targets: Vec<String> = Vec::new();
    let mut add = |v: Option<&Value>| {
        if let Some(t) = v.and_then(Value::as_str) {
            if !targets.iter().any(|x| x == t) {
                targets.push(t.to_string());
            }
        }
    };
    add(fields.get("Next"));
    add(fields.get("Default"));
    for list in ["Choices", "Catch"] {
        for item in fields
            .get(list)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            add(item.get("Next"));
        }
    }
    // A state that goes to itself is run under another name.
    let tested = if targets.contains(&name) || name == VARIABLES_STATE {
        format!("{name}.Tested")
    } else {
        name.clone()
    };
    let mut states = Map::new();
    let mut start = tested.clone();
    if !variables.is_empty() {
        // Each value as a JSONata literal: nothing in it is read as a path.
        let assign: Map<String, Value> = variables
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(format!("{{% {v} %}}"))))
            .collect();
        states.insert(
            VARIABLES_STATE.into(),
            json!({"Type": "Pass", "QueryLanguage": "JSONata", "Assign": assign, "Next": tested}),
        );
        start = VARIABLES_STATE.into();
    }
    for t in &targets {
        if *t != tested && t != VARIABLES_STATE {
            states.insert(t.clone(), json!({"Type": "Succeed"}));
        }
    }
    states.insert(tested.clone(), state.clone());
    let machine = json!({"StartAt": start, "States": states});
    Ok(Wrapped {
        machine,
        state,
        name: tested,
        jsonata,
        variables,
    })
}

/// The resource of the Task that stands for a mocked Parallel or Map.
pub const MOCKED_FAN_RESOURCE: &str = "arn:aws:states:::sagaflow:mock";

/// A Parallel or Map under test with a mock (AWS tests them only so): its
/// branches or items do not run, the mock's result (or error) is the
/// state's result, and its data flow (InputPath, `Parameters` of a
/// Parallel, `Arguments`, ResultSelector, ResultPath, OutputPath, `Output`,
/// `Assign`) and its Retry and Catch apply. Run as a Task on a mocked
/// resource; `false` if the state is neither.
pub fn mock_fan(wrapped: &mut Wrapped) -> bool {
    let Some(fields) = wrapped.state.as_object() else {
        return false;
    };
    let kind = fields.get("Type").and_then(Value::as_str).unwrap_or("");
    if kind != "Parallel" && kind != "Map" {
        return false;
    }
    // What a Task state may have; a Map's `Parameters` is its legacy
    // ItemSelector, which runs per item, so it goes too.
    const KEPT: &[&str] = &[
        "Comment",
        "QueryLanguage",
        "InputPath",
        "OutputPath",
        "ResultPath",
        "ResultSelector",
        "Arguments",
        "Output",
        "Assign",
        "Retry",
        "Catch",
        "Next",
        "End",
    ];
    let mut task: Map<String, Value> = fields
        .iter()
        .filter(|(k, _)| KEPT.contains(&k.as_str()) || (kind == "Parallel" && *k == "Parameters"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if kind == "Map" {
        task.remove("Arguments");
    }
    task.insert("Type".into(), json!("Task"));
    task.insert("Resource".into(), json!(MOCKED_FAN_RESOURCE));
    let task = Value::Object(task);
    if let Some(states) = wrapped
        .machine
        .get_mut("States")
        .and_then(Value::as_object_mut)
    {
        states.insert(wrapped.name.clone(), task);
    }
    true
}

/// Whether state `name` is among the states of `fan`'s branches or item
/// processor (a Parallel's or Map's, at any depth).
pub fn contains_state(fan: &Value, name: &str) -> bool {
    let graphs = fan
        .get("Branches")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .chain(fan.get("ItemProcessor").cloned())
        .chain(fan.get("Iterator").cloned());
    graphs
        .filter_map(|g| g.get("States").and_then(Value::as_object).cloned())
        .any(|states| states.contains_key(name) || states.values().any(|s| contains_state(s, name)))
}

/// How the test ended, as `TestState` reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// `SUCCEEDED`, `FAILED`, `RETRIABLE` or `CAUGHT_ERROR`.
    pub status: &'static str,
    pub output: Option<Value>,
    pub error: Option<ErrorInfo>,
    pub next_state: Option<String>,
    /// The index of the retrier (`RETRIABLE`) and its delay in seconds.
    pub retry: Option<(usize, f64)>,
    /// The index of the catcher (`CAUGHT_ERROR`).
    pub catch_index: Option<usize>,
    /// The task's request body and raw result, if it called one.
    pub task_input: Option<Value>,
    pub task_result: Option<Value>,
    /// The variables after the state.
    pub variables: Map<String, Value>,
}

/// Runs the [`wrap`]ped state compiled as `plan` on `input`; `answer`
/// answers its task calls; `retries_done` is how many retries of the
/// matching retrier already happened (AWS's `retrierRetryCount`).
///
/// # Errors
///
/// What the decisions raise (none for a valid plan).
pub fn run(
    plan: &Plan,
    wrapped: &Wrapped,
    input: Value,
    retries_done: u32,
    answer: &mut dyn FnMut(Request) -> Result<Value, ErrorInfo>,
) -> Result<Outcome, Error> {
    let mut ex = Execution::empty(plan);
    let mut events = Vec::new();
    let mut queue: VecDeque<Input> = VecDeque::new();
    let mut timers: BTreeMap<(Millis, u64), Input> = BTreeMap::new();
    let mut seq = 0u64;
    let mut now: Millis = 0;
    let mut failures: BTreeMap<String, ErrorInfo> = BTreeMap::new();
    let mut retries = 0u32;
    let mut last_error: Option<ErrorInfo> = None;
    let mut task_input = None;
    let mut task_result = None;
    let mut finished = false;
    let mut retriable: Option<f64> = None;
    queue.push_back(Input::Start {
        execution_id: "test-state".into(),
        definition: plan.name.clone(),
        version: 1,
        input,
    });
    let mut turns = 0;
    while !finished && retriable.is_none() && turns < 10_000 {
        turns += 1;
        let next = match queue.pop_front() {
            Some(i) => i,
            None => match timers.pop_first() {
                Some(((at, _), i)) => {
                    now = now.max(at);
                    i
                }
                None => break,
            },
        };
        let ctx = Ctx {
            now,
            random: 0.0,
            entropy: 0x7e57,
        };
        let applied = ex.decide_in_place(plan, next, ctx)?;
        for e in &applied.events {
            match &e.kind {
                EventKind::StepFailed { error, .. } => last_error = Some(error.clone()),
                EventKind::StepSucceeded { .. } => last_error = None,
                EventKind::RetryScheduled { fire_at, .. } => {
                    retries += 1;
                    if retries > retries_done {
                        retriable = Some(fire_at.saturating_sub(now) as f64 / 1000.0);
                    }
                }
                _ => {}
            }
        }
        events.extend(applied.events);
        for effect in applied.effects {
            match effect {
                Effect::Invoke {
                    step,
                    task,
                    attempt,
                    ..
                } => {
                    let result = match failures.get(&step) {
                        // A retry of a failed call: the same failure (no second call).
                        Some(e) => Err(e.clone()),
                        None => match ex.request(plan, &step, task) {
                            Ok(req) => {
                                task_input = Some(req.input.clone());
                                answer(req)
                            }
                            Err(e) => Err(e),
                        },
                    };
                    queue.push_back(match result {
                        Ok(output) => {
                            task_result = Some(output.clone());
                            Input::TaskSucceeded {
                                step,
                                task,
                                attempt,
                                output,
                            }
                        }
                        Err(error) => {
                            failures.insert(step.clone(), error.clone());
                            Input::TaskFailed {
                                step,
                                task,
                                attempt,
                                error,
                            }
                        }
                    });
                }
                Effect::StartTimer {
                    step,
                    task,
                    attempt,
                    fire_at,
                } => {
                    seq += 1;
                    timers.insert(
                        (fire_at, seq),
                        Input::TimerFired {
                            step,
                            task,
                            attempt,
                        },
                    );
                }
                Effect::Finished { .. } => finished = true,
                Effect::Deadline { .. } | Effect::Durable(_) => {}
            }
        }
    }
    let traces: Vec<Trace> = trace(plan, &events)?;
    let mut variables = wrapped.variables.clone();
    let mut next_state = None;
    let mut entered_after = false;
    let mut output = None;
    let mut error = None;
    for t in &traces {
        match &t.kind {
            TraceKind::StateEntered { name, .. } if *name == wrapped.name => entered_after = true,
            TraceKind::StateEntered { name, .. } if entered_after && next_state.is_none() => {
                next_state = Some(name.clone());
            }
            TraceKind::StateExited { name, assigned, .. } if *name == wrapped.name => {
                for (k, v) in assigned.iter().flatten() {
                    variables.insert(k.clone(), serde_json::from_str(v).unwrap_or(Value::Null));
                }
            }
            TraceKind::ExecutionSucceeded { output: o } => output = Some(o.clone()),
            TraceKind::ExecutionFailed { error: e } | TraceKind::ExecutionTimedOut { error: e } => {
                error = Some(e.clone())
            }
            _ => {}
        }
    }
    if task_input.is_none() {
        task_input = traces.iter().find_map(|t| match &t.kind {
            TraceKind::TaskScheduled { parameters, .. } => Some(parameters.clone()),
            _ => None,
        });
    }
    let mut outcome = Outcome {
        status: "SUCCEEDED",
        output,
        error: None,
        next_state,
        retry: None,
        catch_index: None,
        task_input,
        task_result,
        variables,
    };
    if let Some(delay) = retriable {
        let e = last_error
            .clone()
            .unwrap_or_else(|| ErrorInfo::new("States.Runtime", ""));
        outcome.status = "RETRIABLE";
        outcome.retry = index_of(&wrapped.state, "Retry", &e.error).map(|i| (i, delay));
        outcome.error = Some(e);
        outcome.output = None;
        outcome.next_state = None;
        return Ok(outcome);
    }
    let status = ex.envelope().status;
    if status != Status::Succeeded || !finished {
        outcome.status = "FAILED";
        outcome.error =
            error.or_else(|| Some(ErrorInfo::new("States.Runtime", "the state did not finish")));
        outcome.output = None;
        outcome.next_state = None;
        return Ok(outcome);
    }
    // Went to a catcher's Next after an error.
    // (A task's failure, or an error of the state's own data.)
    let caught = match &last_error {
        Some(e) => Some(e.clone()),
        None if errored(&traces, &wrapped.name) => caught_error(&outcome.output),
        None => None,
    };
    if let (Some(e), Some(_)) = (caught, wrapped.state.get("Catch")) {
        if let Some(i) = index_of(&wrapped.state, "Catch", &e.error) {
            let catcher_next = wrapped.state["Catch"][i]["Next"].as_str();
            if catcher_next == outcome.next_state.as_deref() {
                outcome.status = "CAUGHT_ERROR";
                outcome.catch_index = Some(i);
                outcome.error = Some(e);
            }
        }
    }
    Ok(outcome)
}

/// Whether the state under test left with an error (no `StateExited`
/// before the next state was entered).
fn errored(traces: &[Trace], name: &str) -> bool {
    let mut inside = false;
    for t in traces {
        match &t.kind {
            TraceKind::StateEntered { name: n, .. } if n == name => inside = true,
            TraceKind::StateExited { name: n, .. } if n == name && inside => return false,
            TraceKind::StateEntered { .. } if inside => return true,
            _ => {}
        }
    }
    inside
}

/// The `{Error, Cause}` a catcher put in the output.
fn caught_error(output: &Option<Value>) -> Option<ErrorInfo> {
    let o = output.as_ref()?;
    let error = o.get("Error")?.as_str()?;
    let cause = o.get("Cause").and_then(Value::as_str).unwrap_or("");
    Some(ErrorInfo::new(error, cause))
}

/// The index of the first retrier or catcher of `state` that handles `error`.
fn index_of(state: &Value, field: &str, error: &str) -> Option<usize> {
    state.get(field)?.as_array()?.iter().position(|h| {
        let names: Vec<String> = h
            .get("ErrorEquals")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect();
        error_matches(&names, error)
    })
}

/// DEBUG's `inspectionData`: each value as JSON text. The data flow of a
/// JSONPath state is computed again from its fields (InputPath,
/// Parameters, ResultSelector, ResultPath) around the task's request and
/// result; a step that cannot be computed is left out.
pub fn inspection(wrapped: &Wrapped, input: &Value, outcome: &Outcome) -> Map<String, Value> {
    let text = |v: &Value| Value::String(v.to_string());
    let mut out = Map::new();
    out.insert("input".into(), text(input));
    let state = &wrapped.state;
    let kind = state.get("Type").and_then(Value::as_str).unwrap_or("");
    // A mocked Parallel or Map ran as a Task answered by the mock.
    let fan = matches!(kind, "Parallel" | "Map");
    let is_task = kind == "Task" || fan;
    if wrapped.jsonata {
        if let Some(args) = outcome
            .task_input
            .as_ref()
            .filter(|_| is_task && kind != "Map")
        {
            out.insert("afterArguments".into(), text(args));
        }
        if let Some(result) = outcome.task_result.as_ref() {
            out.insert("result".into(), text(result));
        }
    } else {
        let vars = outcome_vars(&wrapped.variables);
        let context = json!({});
        let env = Env::new(&context, &vars);
        let path = |field: &str| match state.get(field) {
            Some(Value::Null) => PathField::Null,
            Some(Value::String(p)) => PathField::Path(p.clone()),
            _ => PathField::default(),
        };
        let mut random = || 4u64;
        let Ok(after_input) = data::filter(&path("InputPath"), input, env) else {
            return with_variables(out, wrapped, outcome);
        };
        out.insert("afterInputPath".into(), text(&after_input));
        if !matches!(kind, "Pass" | "Task") && !fan {
            return with_variables(out, wrapped, outcome);
        }
        let after_parameters = if is_task {
            outcome.task_input.clone()
        } else {
            match state.get("Parameters") {
                Some(t) => data::render(t, &after_input, env, &mut random).ok(),
                None => Some(after_input.clone()),
            }
        };
        let Some(after_parameters) = after_parameters else {
            return with_variables(out, wrapped, outcome);
        };
        if kind != "Map" {
            out.insert("afterParameters".into(), text(&after_parameters));
        }
        let result = if is_task {
            outcome.task_result.clone()
        } else {
            Some(state.get("Result").cloned().unwrap_or(after_parameters))
        };
        let Some(result) = result else {
            return with_variables(out, wrapped, outcome);
        };
        out.insert("result".into(), text(&result));
        let selected = match state.get("ResultSelector").filter(|_| is_task) {
            Some(t) => data::render(t, &result, env, &mut random).ok(),
            None => Some(result),
        };
        let Some(selected) = selected else {
            return with_variables(out, wrapped, outcome);
        };
        if is_task {
            out.insert("afterResultSelector".into(), text(&selected));
        }
        if let Ok(placed) = data::place(&path("ResultPath"), input.clone(), selected) {
            out.insert("afterResultPath".into(), text(&placed));
        }
    }
    with_variables(out, wrapped, outcome)
}

fn outcome_vars(vars: &Map<String, Value>) -> crate::asl::vars::Vars {
    vars.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

fn with_variables(
    mut out: Map<String, Value>,
    wrapped: &Wrapped,
    outcome: &Outcome,
) -> Map<String, Value> {
    let assigns = wrapped.state.get("Assign").is_some()
        || wrapped
            .state
            .get("Catch")
            .and_then(Value::as_array)
            .is_some_and(|c| c.iter().any(|h| h.get("Assign").is_some()))
        || wrapped
            .state
            .get("Choices")
            .and_then(Value::as_array)
            .is_some_and(|c| c.iter().any(|h| h.get("Assign").is_some()));
    if assigns || !wrapped.variables.is_empty() {
        out.insert(
            "variables".into(),
            Value::String(Value::Object(outcome.variables.clone()).to_string()),
        );
    }
    out
}
