//! A distributed Map's `ItemReader` and `ResultWriter`: calls the Map
//! state makes before its items run and after they all succeeded.
//!
//! Step Functions reads items from S3 and writes results there; there is
//! no S3 here, so each is a participant call through the resource map (an
//! HTTP endpoint or handler bound to `arn:aws:states:::s3:getObject`, say),
//! made like a Task's: the Map's slot goes through `Ready` and `Running`
//! with the same `step_scheduled`/`step_succeeded`/`step_failed` events,
//! marked by [`Slot::io`](super::Slot) so that the answer feeds the Map
//! instead of completing it. A failure is `States.ItemReaderFailed` or
//! `States.ResultWriterFailed`, for the Map's Catch (not its Retry: a
//! retry restarts the items, not the call).
//!
//! The reader's answer is a JSON array of items, or text (the answer
//! itself, or its `Body` member, as S3's GetObject has it) read as
//! `InputType` says: a JSON array, JSON Lines, or CSV rows as objects keyed
//! by the headers. The writer's request is its rendered `Parameters` (or
//! `Arguments`) with `MapRunArn` and `Results` added; the Map's result is
//! `{"MapRunArn", "ResultWriterDetails": <the answer>}`. `WriterConfig`
//! shapes the results ([`Run::shaped_results`]): each child's record
//! (`NONE`, the default), its output (`COMPACT`) or its output with arrays
//! spliced in (`FLATTEN`), sent as a JSON array or as JSON Lines text; a
//! `ResultWriter` with a `WriterConfig` and no `Resource` makes no call:
//! the shaped results are the Map's result.

use serde::Serialize;
use serde_json::{json, Map as Object, Value};

use super::{
    count, data, in_state, iso8601, runtime, seeded, Env, ItemStatus, MapRunStatus, Run, Slot,
    TraceKind, ACCOUNT, REGION,
};
use crate::asl::machine::{
    InputType, Io, ItemReader, Kind, Machine, OutputType, ResultWriter, State, Transformation,
};
use crate::event::{ErrorInfo, Millis};
use crate::exchange::{Effect, Request};
use crate::keys::idempotency_key;
use crate::TaskKind;

/// The error of a failed read (AWS's name).
pub const ITEM_READER_FAILED: &str = "States.ItemReaderFailed";
/// The error of a failed write (AWS's name).
pub const RESULT_WRITER_FAILED: &str = "States.ResultWriterFailed";

/// Which call a Map's slot is making.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(super) enum IoCall {
    Reader,
    Writer,
}

impl IoCall {
    /// A participant's failure as the Map reports it.
    pub(super) fn failure(self, e: &ErrorInfo) -> ErrorInfo {
        let name = match self {
            IoCall::Reader => ITEM_READER_FAILED,
            IoCall::Writer => RESULT_WRITER_FAILED,
        };
        if e.error == name {
            return e.clone();
        }
        ErrorInfo::new(name, format!("{}: {}", e.error, e.cause))
    }
}

/// The distributed Map's reader, if it has one.
pub(super) fn reader_of(st: &State) -> Option<&ItemReader> {
    match &st.kind {
        Kind::Map(m) => m.distributed.as_ref()?.reader.as_ref(),
        _ => None,
    }
}

/// The distributed Map's `ResultWriter`, if it has one.
pub(super) fn result_writer(st: &State) -> Option<&ResultWriter> {
    match &st.kind {
        Kind::Map(m) => m.distributed.as_ref()?.writer.as_ref(),
        _ => None,
    }
}

/// The distributed Map's writer call, if it has one.
pub(super) fn writer_of(st: &State) -> Option<&Io> {
    result_writer(st)?.call.as_ref()
}

impl Run {
    /// The results of a distributed Map's children (in item order) as
    /// `WriterConfig.Transformation` shapes them; `run`: their map run.
    pub(super) fn shaped_results(
        &self,
        results: Vec<Value>,
        run: Option<usize>,
        transformation: Transformation,
    ) -> Vec<Value> {
        match transformation {
            Transformation::Compact => results,
            Transformation::Flatten => results
                .into_iter()
                .flat_map(|r| match r {
                    Value::Array(a) => a,
                    other => vec![other],
                })
                .collect(),
            Transformation::None => {
                let Some(run) = run.and_then(|r| self.map_runs.get(r)) else {
                    return results;
                };
                let machine = format!(
                    "arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{}/{}",
                    self.head.name, run.label
                );
                results
                    .into_iter()
                    .enumerate()
                    .map(|(i, result)| {
                        let arn = run.child_arn(i);
                        let mut record = Object::new();
                        record.insert("ExecutionArn".into(), json!(arn));
                        let name = arn.rsplit(':').next().unwrap_or_default();
                        record.insert("Name".into(), json!(name));
                        record.insert("StateMachineArn".into(), json!(machine));
                        let Some(item) = run.items.get(i) else {
                            return Value::Object(record);
                        };
                        let input = item.input.as_ref().unwrap_or(&Value::Null);
                        record.insert("Input".into(), json!(input.to_string()));
                        record.insert("InputDetails".into(), json!({"Included": true}));
                        let status = match item.status {
                            ItemStatus::Succeeded => "SUCCEEDED",
                            ItemStatus::Failed => "FAILED",
                            ItemStatus::Aborted => "ABORTED",
                            ItemStatus::Running | ItemStatus::Pending => "RUNNING",
                        };
                        if item.status == ItemStatus::Succeeded {
                            record.insert("Output".into(), json!(result.to_string()));
                            record.insert("OutputDetails".into(), json!({"Included": true}));
                        }
                        if let Some(e) = &item.error {
                            record.insert("Error".into(), json!(e.error));
                            record.insert("Cause".into(), json!(e.cause));
                        }
                        record.insert("RedriveCount".into(), json!(item.redrive_count));
                        if let Some(at) = item.started_at {
                            record.insert("StartDate".into(), json!(iso8601(at)));
                        }
                        if let Some(at) = item.stopped_at {
                            record.insert("StopDate".into(), json!(iso8601(at)));
                        }
                        record.insert("Status".into(), json!(status));
                        Value::Object(record)
                    })
                    .collect()
            }
        }
    }

    /// The request of the reader or writer call `call` of slot `step`.
    pub(super) fn io_request(
        &self,
        st: &State,
        slot: &Slot,
        step: &str,
        call: IoCall,
        ctx: Env<'_>,
        deadline: u64,
    ) -> Result<Request, ErrorInfo> {
        let io = match call {
            IoCall::Reader => reader_of(st).map(|r| &r.io),
            IoCall::Writer => writer_of(st),
        }
        .ok_or_else(|| runtime(format!("`{}` has no such call", st.name)))?;
        let seed = format!("{step}#{}", slot.attempt);
        let mut body = match (&io.arguments, &io.parameters) {
            (Some(t), _) => {
                let scope = self.js_scope(&slot.raw, ctx, &seed, slot.entered_at);
                t.evaluate(&scope)?
            }
            (None, Some(p)) => data::render(p, &slot.effective, ctx, &mut seeded(&seed))?,
            (None, None) => json!({}),
        };
        if call == IoCall::Writer {
            let results: Vec<Value> = slot
                .fan
                .as_ref()
                .map(|f| {
                    f.results
                        .iter()
                        .map(|r| r.clone().unwrap_or(Value::Null))
                        .collect()
                })
                .unwrap_or_default();
            let run = slot.fan.as_ref().and_then(|f| f.map_run);
            let arn = run
                .and_then(|r| self.map_runs.get(r))
                .map(|r| r.arn.clone());
            let Value::Object(o) = &mut body else {
                return Err(runtime(format!(
                    "the ResultWriter's Parameters of `{}` must render an object",
                    st.name
                )));
            };
            o.insert("MapRunArn".into(), json!(arn));
            let results = match result_writer(st) {
                Some(w) => {
                    let shaped = self.shaped_results(results, run, w.transformation);
                    match w.output_type {
                        OutputType::Json => Value::Array(shaped),
                        OutputType::Jsonl => Value::String(
                            shaped.iter().map(|r| format!("{r}\n")).collect::<String>(),
                        ),
                    }
                }
                None => Value::Array(results),
            };
            o.insert("Results".into(), results);
        }
        Ok(Request {
            execution_id: self.head.id.clone(),
            step: step.to_string(),
            task: TaskKind::Action,
            attempt: slot.attempt,
            participant: io.participant.clone(),
            input: body,
            idempotency_key: idempotency_key(&self.head.id, step, TaskKind::Action),
            deadline,
            task_token: None,
            heartbeat_ms: None,
        })
    }

    /// The reader's or writer's call of slot `key` answered: the items
    /// start, or the Map completes with the writer's details.
    pub(super) fn io_answered(
        &mut self,
        m: &Machine,
        at: Millis,
        fx: &mut Vec<Effect>,
        key: &str,
        call: IoCall,
        answer: Value,
    ) {
        let Some(slot) = self.slots.get(key) else {
            return;
        };
        let st = self.state(m, slot.thread, slot.state);
        match call {
            IoCall::Reader => {
                let plan = self.read_items(m, slot, &answer).and_then(|items| {
                    let ctx = self.context(&st.name, slot.entered_at, Some(slot.attempt - 1), None);
                    let vars = self.threads[slot.thread].vars.clone();
                    let env = Env::new(&ctx, &vars);
                    self.fan_inputs(st, &slot.raw, env, key, slot.entered_at, Some(items))
                });
                match plan {
                    Ok(plan) => {
                        if let Some(slot) = self.slots.get_mut(key) {
                            slot.io = None;
                        }
                        self.start_fan(m, at, fx, key, plan);
                    }
                    // Still marked as the reader's: no Retry restarts it.
                    Err(e) => {
                        let e = in_state(e, &st.name, slot.entered_event);
                        self.failed(m, at, fx, key, e);
                    }
                }
            }
            IoCall::Writer => {
                let run = slot.fan.as_ref().and_then(|f| f.map_run);
                let arn = run
                    .and_then(|r| self.map_runs.get(r))
                    .map(|r| r.arn.clone());
                if let Some(slot) = self.slots.get_mut(key) {
                    slot.io = None;
                }
                if let Some(r) = run {
                    // The writer took every child's result.
                    if let Some(m) = self.map_runs.get_mut(r) {
                        m.results_written = m.items.len();
                    }
                    self.close_map_run(r, at, MapRunStatus::Succeeded, None);
                }
                let child = self.step_child(key);
                if self.traced(child) {
                    let name = st.name.clone();
                    self.record(at, child, TraceKind::MapStateSucceeded { name });
                }
                let result = json!({ "MapRunArn": arn, "ResultWriterDetails": answer });
                self.complete(m, at, fx, key, result);
            }
        }
    }

    /// The reader's answer: the items, at most `MaxItems` of them.
    pub(super) fn read_items(
        &self,
        m: &Machine,
        slot: &Slot,
        answer: &Value,
    ) -> Result<Vec<Value>, ErrorInfo> {
        let st = self.state(m, slot.thread, slot.state);
        let reader = reader_of(st).ok_or_else(|| runtime("no ItemReader"))?;
        let mut items = parse_items(reader, answer)
            .map_err(|cause| ErrorInfo::new(ITEM_READER_FAILED, cause))?;
        if let Some(c) = &reader.max_items {
            let ctx = self.context(&st.name, slot.entered_at, Some(slot.attempt - 1), None);
            let vars = self.threads[slot.thread].vars.clone();
            let env = Env::new(&ctx, &vars);
            let scope = self.js_scope(&slot.raw, env, "", slot.entered_at);
            let max = count(c, &slot.effective, env, Some(&scope), "MaxItems")?;
            items.truncate(usize::try_from(max).unwrap_or(usize::MAX));
        }
        Ok(items)
    }
}

/// The items in a reader's answer (see the module's header).
pub fn parse_items(reader: &ItemReader, answer: &Value) -> Result<Vec<Value>, String> {
    let text = match answer {
        Value::Array(items) if reader.input_type == InputType::Json => return Ok(items.clone()),
        Value::String(s) => s.as_str(),
        Value::Object(o) => match o.get("Body") {
            Some(Value::String(s)) => s.as_str(),
            Some(Value::Array(items)) if reader.input_type == InputType::Json => {
                return Ok(items.clone())
            }
            _ => return Err("the reader's answer has no `Body` text".into()),
        },
        other => {
            return Err(format!(
                "the reader answered {}, not items",
                crate::document::type_name(other)
            ))
        }
    };
    match reader.input_type {
        InputType::Json => match serde_json::from_str::<Value>(text) {
            Ok(Value::Array(items)) => Ok(items),
            Ok(other) => Err(format!(
                "the JSON read is {}, not an array",
                crate::document::type_name(&other)
            )),
            Err(e) => Err(format!("the text read is not JSON: {e}")),
        },
        InputType::Jsonl => text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| {
                serde_json::from_str(l).map_err(|e| format!("line {} is not JSON: {e}", i + 1))
            })
            .collect(),
        InputType::Csv => csv_items(reader, text),
    }
}

/// CSV rows as objects keyed by the headers (the first row, or the given
/// ones); every value a string, as AWS reads them.
fn csv_items(reader: &ItemReader, text: &str) -> Result<Vec<Value>, String> {
    let mut rows = csv::ReaderBuilder::new()
        .has_headers(false)
        .delimiter(reader.csv_delimiter)
        .flexible(false)
        .from_reader(text.as_bytes());
    let mut records = rows.records();
    let headers: Vec<String> = match &reader.csv_headers {
        Some(h) => h.clone(),
        None => match records.next() {
            Some(Ok(r)) => r.iter().map(String::from).collect(),
            Some(Err(e)) => return Err(format!("the CSV header row cannot be read: {e}")),
            None => return Ok(Vec::new()),
        },
    };
    let mut items = Vec::new();
    for (i, record) in records.enumerate() {
        let record = record.map_err(|e| format!("CSV row {} cannot be read: {e}", i + 1))?;
        if record.len() != headers.len() {
            return Err(format!(
                "CSV row {} has {} fields, the headers {}",
                i + 1,
                record.len(),
                headers.len()
            ));
        }
        let item: Object<String, Value> = headers
            .iter()
            .zip(record.iter())
            .map(|(h, v)| (h.clone(), Value::String(v.to_string())))
            .collect();
        items.push(Value::Object(item));
    }
    Ok(items)
}
