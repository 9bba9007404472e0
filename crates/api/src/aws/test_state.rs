//! `TestState`: one state run on its own ([`sagaflow_core::test_state`]).
//!
//! The state becomes a machine of its own, compiled as CreateStateMachine
//! compiles it (a Task's resource through the server's resource map) and
//! run on the pure core with a simulated clock: a Wait does not wait, a
//! Task calls its participant once (or answers with the request's `mock`),
//! a matching retrier ends the test `RETRIABLE` and a catcher
//! `CAUGHT_ERROR`. A Parallel or Map runs only with a mock (as on AWS),
//! as a Task answered by it ([`sagaflow_core::test_state::mock_fan`]); a
//! Task whose participant answers later (`.waitForTaskToken`, activities)
//! needs one too.

use std::time::Duration;

use sagaflow_core::asl::run::preview_map;
use sagaflow_core::test_state::{self, Outcome, Wrapped};
use sagaflow_core::ErrorInfo;
use sagaflow_runtime::Exchange;
use serde_json::{json, Map, Value};

use super::{from_engine, invalid_definition, now_ms, problems, AwsError, Input, Problem};
use crate::AppState;

/// AWS's TestState runs for up to five minutes.
const MAX_CALL: Duration = Duration::from_secs(300);

/// A JSON text member (`input`, `variables`, `mock.result`).
fn json_text(field: &str, text: &str, name: &'static str) -> Result<Value, AwsError> {
    serde_json::from_str(text)
        .map_err(|e| AwsError::new(name, format!("'{field}' is not valid JSON: {e}")))
}

/// What answers the state's task: the mock, or the participant.
#[derive(Clone)]
enum Answer {
    Result(Value),
    Error(ErrorInfo),
    Participant,
}

pub(super) async fn test_state(st: &AppState, input: &Input) -> Result<Value, AwsError> {
    let definition = input.required("definition")?;
    input.string("roleArn")?;
    let level = input
        .one_of("inspectionLevel", &["INFO", "DEBUG", "TRACE"])?
        .unwrap_or("INFO");
    let reveal = input.boolean("revealSecrets")?.unwrap_or(false);
    let state_input = match input.string("input")? {
        Some(text) => json_text("input", text, "InvalidExecutionInput")?,
        None => json!({}),
    };
    let variables = match input.string("variables")? {
        None => Map::new(),
        Some(text) => match json_text("variables", text, "ValidationException")? {
            Value::Object(m) => m,
            _ => {
                return Err(AwsError::validation(
                    "'variables' must be a JSON object of variable names and values",
                ))
            }
        },
    };
    for name in variables.keys() {
        sagaflow_core::asl::vars::check_name(name).map_err(|why| {
            AwsError::validation(format!(
                "'variables': invalid variable name '{name}': {why}"
            ))
        })?;
    }
    let mock = input.object("mock")?;
    if input.string("context")?.is_some() && mock.is_none() {
        return Err(AwsError::validation(
            "'context' may only be specified together with a mock",
        ));
    }
    let config = StateConfiguration::read(input)?;
    let mut answer = match mock {
        None => Answer::Participant,
        Some(m) => {
            let result = m.get("result").and_then(Value::as_str);
            let error = m.get("errorOutput").and_then(Value::as_object);
            match (result, error) {
                (Some(text), None) => {
                    Answer::Result(json_text("mock.result", text, "ValidationException")?)
                }
                (None, Some(e)) => Answer::Error(ErrorInfo::new(
                    e.get("error").and_then(Value::as_str).unwrap_or(""),
                    e.get("cause").and_then(Value::as_str).unwrap_or(""),
                )),
                _ => {
                    return Err(AwsError::validation(
                        "a mock has either 'result' (a JSON text) or 'errorOutput', not both",
                    ))
                }
            }
        }
    };
    let doc: Value = serde_json::from_str(definition).map_err(|e| {
        invalid_definition(&[Problem::new(
            "INVALID_JSON_DESCRIPTION",
            "/",
            format!("the definition is not valid JSON: {e}"),
        )])
    })?;
    let mut wrapped = test_state::wrap(&doc, input.string("stateName")?, variables)
        .map_err(AwsError::validation)?;
    let kind = wrapped
        .state
        .get("Type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let kind = kind.as_str();
    let mocked = !matches!(answer, Answer::Participant);
    let mut map_inspection = Map::new();
    match kind {
        "Parallel" | "Map" if !mocked => {
            return Err(AwsError::validation(format!(
                "TestState runs a {kind} state only with a mock (its result stands for the branches' or items'), as AWS does"
            )))
        }
        "Parallel" | "Map" => {
            config.check_fan(&wrapped, kind)?;
            if kind == "Map" {
                let (data, failure) = map_data(&wrapped, &state_input, &config)?;
                // The Map's start fails, or its items fail beyond its
                // tolerance: that is the state's error, for its Catch.
                if let Some(e) = failure {
                    answer = Answer::Error(e);
                }
                map_inspection = data;
            }
            test_state::mock_fan(&mut wrapped);
        }
        "Task" => {}
        _ if mocked => {
            return Err(AwsError::validation(
                "a mock can only be specified for a Task, Map or Parallel state",
            ))
        }
        _ => {}
    }
    let resource = wrapped
        .state
        .get("Resource")
        .and_then(Value::as_str)
        .unwrap_or("");
    if kind == "Task"
        && !mocked
        && (resource.ends_with(".waitForTaskToken") || resource.contains(":activity:"))
    {
        return Err(AwsError::validation(format!(
            "TestState needs a mock for the Task resource '{resource}' (a callback task or an activity answers later)"
        )));
    }
    let source = wrapped.machine.to_string();
    let compiled = if mocked {
        // A mocked task calls nobody: its resource needs no binding.
        let any = sagaflow_core::explain::any_resource();
        sagaflow_core::compile_definition(&source, Some(test_state::DEFAULT_NAME), &any)
            .map_err(sagaflow_runtime::Error::Invalid)
    } else {
        st.engine
            .validate(Some(test_state::DEFAULT_NAME), &source)
            .await
    };
    let plan = match compiled {
        Ok(plan) => plan,
        Err(sagaflow_runtime::Error::Invalid(sagaflow_core::Error::InvalidDefinition(vs))) => {
            return Err(invalid_definition(&problems(&vs)))
        }
        Err(e) => return Err(from_engine(e)),
    };
    let engine = st.engine.clone();
    let handle = tokio::runtime::Handle::current();
    let run_input = state_input.clone();
    let w = wrapped.clone();
    let retries_done = config.retries_done;
    let (outcome, exchange) = tokio::task::spawn_blocking(move || {
        // The last HTTP exchange of the state's participant (TRACE).
        let mut exchange = None;
        let mut call = |mut req: sagaflow_core::Request| match &answer {
            Answer::Result(v) => Ok(v.clone()),
            Answer::Error(e) => Err(e.clone()),
            Answer::Participant => {
                let budget = Duration::from_millis(req.deadline).min(MAX_CALL);
                req.deadline = now_ms() + budget.as_millis() as u64;
                let (result, sent) =
                    handle.block_on(engine.call_participant_traced(req, budget, reveal));
                exchange = sent.or(exchange.take());
                result
            }
        };
        let outcome = test_state::run(&plan, &w, run_input, retries_done, &mut call);
        outcome.map(|o| (o, exchange))
    })
    .await
    .map_err(|_| AwsError::unavailable("the server is shutting down"))?
    .map_err(|e| AwsError::internal(format!("TestState: {e}")))?;
    let mut out = response(&wrapped, &state_input, &outcome, level != "INFO");
    if let Some(data) = out.get_mut("inspectionData").and_then(Value::as_object_mut) {
        data.extend(map_inspection);
        if let (Some(x), "TRACE") = (&exchange, level) {
            trace_exchange(data, x);
        }
    }
    Ok(out)
}

/// TRACE's `request` and `response`: the participant's HTTP exchange as it
/// went over the wire (headers as `[Name: value, …]`, as AWS shows them).
fn trace_exchange(data: &mut Map<String, Value>, x: &Exchange) {
    let headers = |h: &[(String, String)]| {
        let pairs: Vec<String> = h.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        format!("[{}]", pairs.join(", "))
    };
    data.insert(
        "request".into(),
        json!({
            "protocol": x.protocol,
            "method": x.method,
            "url": x.url,
            "headers": headers(&x.request_headers),
            "body": x.request_body,
        }),
    );
    if let Some(status) = x.status {
        data.insert(
            "response".into(),
            json!({
                "protocol": x.protocol,
                "statusCode": status.to_string(),
                "statusMessage": x.status_message,
                "headers": headers(&x.response_headers),
                "body": x.response_body,
            }),
        );
    }
}

/// `stateConfiguration`: how far the state got before the test.
struct StateConfiguration {
    /// `retrierRetryCount`: retries of the matching retrier already done.
    retries_done: u32,
    /// `mapIterationFailureCount`: how many of a Map's iterations failed.
    map_failures: Option<u64>,
    /// `mapItemReaderData`: what a distributed Map's ItemReader reads.
    reader_data: Option<String>,
    /// `errorCausedByState`: the state inside a Parallel or Map that the
    /// mocked error comes from.
    error_state: Option<String>,
}

impl StateConfiguration {
    fn read(input: &Input) -> Result<StateConfiguration, AwsError> {
        let c = input
            .object("stateConfiguration")?
            .cloned()
            .unwrap_or_default();
        let whole = |field: &str, max: u64| -> Result<Option<u64>, AwsError> {
            match c.get(field) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => v.as_u64().filter(|n| *n <= max).map(Some).ok_or_else(|| {
                    AwsError::validation(format!(
                        "'stateConfiguration.{field}' must be a whole number from 0 to {max}"
                    ))
                }),
            }
        };
        let text = |field: &str| -> Result<Option<String>, AwsError> {
            match c.get(field) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(AwsError::validation(format!(
                    "'stateConfiguration.{field}' must be a string"
                ))),
            }
        };
        Ok(StateConfiguration {
            retries_done: whole("retrierRetryCount", 99_999_999)?.unwrap_or(0) as u32,
            map_failures: whole("mapIterationFailureCount", u64::from(u32::MAX))?,
            reader_data: text("mapItemReaderData")?,
            error_state: text("errorCausedByState")?,
        })
    }

    /// Refuses what does not fit the mocked Parallel or Map `kind`.
    fn check_fan(&self, wrapped: &Wrapped, kind: &str) -> Result<(), AwsError> {
        if kind != "Map" && (self.map_failures.is_some() || self.reader_data.is_some()) {
            return Err(AwsError::validation(
                "'mapIterationFailureCount' and 'mapItemReaderData' are for a Map state",
            ));
        }
        if let Some(name) = &self.error_state {
            if !test_state::contains_state(&wrapped.state, name) {
                return Err(AwsError::validation(format!(
                    "'stateConfiguration.errorCausedByState': '{name}' is not a state of the {kind}'s branches or item processor"
                )));
            }
        }
        Ok(())
    }
}

/// A mocked Map's DEBUG data (`afterItemsPath`, `afterItemSelector`,
/// `afterItemBatcher`, its limits), computed by the core as the Map would
/// start its items; and its failure, if it would fail to start them or if
/// `mapIterationFailureCount` is beyond its tolerance.
fn map_data(
    wrapped: &Wrapped,
    input: &Value,
    config: &StateConfiguration,
) -> Result<(Map<String, Value>, Option<ErrorInfo>), AwsError> {
    let any = sagaflow_core::explain::any_resource();
    let source = wrapped.machine.to_string();
    let plan = sagaflow_core::compile_definition(&source, Some(test_state::DEFAULT_NAME), &any)
        .map_err(|e| match e {
            sagaflow_core::Error::InvalidDefinition(vs) => invalid_definition(&problems(&vs)),
            e => AwsError::internal(format!("TestState: {e}")),
        })?;
    let sagaflow_core::Program::Asl(machine) = &plan.program else {
        return Err(AwsError::internal(
            "TestState: a Map state compiled to no ASL machine",
        ));
    };
    let vars = wrapped
        .variables
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let preview = preview_map(
        machine,
        &wrapped.name,
        input,
        &vars,
        config.reader_data.as_deref(),
    );
    let preview = match preview {
        Ok(Some(p)) => p,
        Ok(None) => return Ok((Map::new(), None)),
        Err(e) => return Ok((Map::new(), Some(e))),
    };
    if let Some(n) = config.map_failures {
        if n > preview.iterations() as u64 {
            return Err(AwsError::validation(format!(
                "'stateConfiguration.mapIterationFailureCount' is {n}, but the Map runs {} iterations",
                preview.iterations()
            )));
        }
    }
    let text = |v: &Value| Value::String(v.to_string());
    let mut data = Map::new();
    if let Some(items) = &preview.items {
        data.insert("afterItemsPath".into(), text(items));
    }
    data.insert(
        "afterItemSelector".into(),
        text(&Value::Array(preview.selected.clone())),
    );
    if let Some(b) = &preview.batches {
        data.insert("afterItemBatcher".into(), text(&Value::Array(b.clone())));
    }
    data.insert("maxConcurrency".into(), json!(preview.max_concurrency));
    if let Some(c) = preview.tolerated_failure_count {
        data.insert("toleratedFailureCount".into(), json!(c));
    }
    if let Some(p) = preview.tolerated_failure_percentage {
        data.insert("toleratedFailurePercentage".into(), json!(p));
    }
    let failure = config.map_failures.and_then(|n| preview.failure(n));
    Ok((data, failure))
}

fn response(wrapped: &Wrapped, input: &Value, outcome: &Outcome, debug: bool) -> Value {
    let mut out = Map::new();
    out.insert("status".into(), json!(outcome.status));
    if let Some(o) = &outcome.output {
        out.insert("output".into(), json!(o.to_string()));
    }
    if let Some(e) = &outcome.error {
        out.insert("error".into(), json!(e.error));
        out.insert("cause".into(), json!(e.cause));
    }
    if let Some(n) = &outcome.next_state {
        out.insert("nextState".into(), json!(n));
    }
    if debug {
        let mut data = test_state::inspection(wrapped, input, outcome);
        if let Some((index, delay)) = outcome.retry {
            data.insert(
                "errorDetails".into(),
                json!({"retryIndex": index, "retryBackoffIntervalSeconds": delay.round() as i64}),
            );
        }
        if let Some(index) = outcome.catch_index {
            data.insert("errorDetails".into(), json!({"catchIndex": index}));
        }
        out.insert("inspectionData".into(), Value::Object(data));
    }
    Value::Object(out)
}
