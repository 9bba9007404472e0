//! Map runs — the distributed Map's side of the API: `DescribeMapRun`,
//! `ListMapRuns`, `UpdateMapRun`, `ListExecutions` by `mapRunArn` (the
//! run's child executions, one per item or batch), and `DescribeExecution`
//! and `GetExecutionHistory` of a child execution's ARN.
//!
//! A map run lives in its parent execution's log (see
//! `sagaflow_core::asl::run::MapRun`): its ARN, and its children's, name
//! the parent, whose history is replayed to answer; an update is a command
//! to the parent, decided and recorded by the core like a redrive. A child
//! that has not started (pending) is no execution yet, as in
//! `ListExecutions`.

use sagaflow_core::asl::run::{
    execution_arn, map_run_owner, ItemStatus, MapRun, MapRunStatus, MapRunUpdate, Trace, ACCOUNT,
    REGION,
};
use sagaflow_core::Execution;
use sagaflow_runtime::Error as EngineError;
use sagaflow_store::ExecutionRecord;
use serde_json::{json, Value};

use super::{
    epoch, execution, from_engine, history_of, invalid_arn, plan_of, text, AwsError, Input,
};
use crate::AppState;

/// The parent execution's record and its map runs, replayed from its history.
async fn runs_of(st: &AppState, rec: &ExecutionRecord) -> Result<Vec<MapRun>, AwsError> {
    let plan = plan_of(st, rec).await?;
    let events = history_of(st, rec).await?;
    // A replay is CPU work proportional to the history: off the workers
    // that answer requests.
    tokio::task::spawn_blocking(move || {
        Execution::replay(&plan, &events).map(|ex| ex.map_runs().to_vec())
    })
    .await
    .map_err(|_| AwsError::unavailable("the server is shutting down"))?
    .map_err(|e| AwsError::internal(format!("the history of '{}' does not replay: {e}", rec.id)))
}

/// The record of the execution that map run `arn` (a well-formed ARN)
/// belongs to, if it exists.
async fn parent_of(st: &AppState, arn: &str) -> Result<Option<ExecutionRecord>, AwsError> {
    let Some((machine, id)) = map_run_owner(arn) else {
        return Ok(None);
    };
    match st.engine.get(id).await {
        Ok(rec) if rec.definition == machine => Ok(Some(rec)),
        Ok(_) | Err(EngineError::ExecutionNotFound(_)) => Ok(None),
        Err(e) => Err(from_engine(e)),
    }
}

/// The parent's record and the map run `arn` names, if it exists.
async fn find_map_run(
    st: &AppState,
    arn: &str,
) -> Result<Option<(ExecutionRecord, MapRun)>, AwsError> {
    let Some(rec) = parent_of(st, arn).await? else {
        return Ok(None);
    };
    let runs = runs_of(st, &rec).await?;
    Ok(runs
        .into_iter()
        .find(|r| r.arn == arn)
        .map(|run| (rec, run)))
}

/// [`find_map_run`] for the map run actions: an ARN of another shape is
/// `InvalidArn`, an unknown map run `ResourceNotFound`.
async fn map_run(st: &AppState, arn: &str) -> Result<(ExecutionRecord, MapRun), AwsError> {
    if map_run_owner(arn).is_none() {
        return Err(invalid_arn(
            arn,
            "a map run ARN (arn:aws:states:REGION:ACCOUNT:mapRun:MACHINE/LABEL:ID)",
        ));
    }
    find_map_run(st, arn).await?.ok_or_else(|| {
        AwsError::new(
            "ResourceNotFound",
            format!("Map Run Does Not Exist: '{arn}'"),
        )
    })
}

fn run_status(s: MapRunStatus) -> &'static str {
    match s {
        MapRunStatus::Running => "RUNNING",
        MapRunStatus::Succeeded => "SUCCEEDED",
        MapRunStatus::Failed => "FAILED",
        MapRunStatus::Aborted => "ABORTED",
    }
}

fn item_status(s: ItemStatus) -> Option<&'static str> {
    match s {
        ItemStatus::Pending => None,
        ItemStatus::Running => Some("RUNNING"),
        ItemStatus::Succeeded => Some("SUCCEEDED"),
        ItemStatus::Failed => Some("FAILED"),
        ItemStatus::Aborted => Some("ABORTED"),
    }
}

/// `itemCounts` / `executionCounts`: one child execution per item or batch.
fn counts(run: &MapRun) -> Value {
    let redrivable = run.status != MapRunStatus::Running && run.status != MapRunStatus::Succeeded;
    let failed = run.count(ItemStatus::Failed);
    let aborted = run.count(ItemStatus::Aborted);
    json!({
        "pending": run.count(ItemStatus::Pending),
        "running": run.count(ItemStatus::Running),
        "succeeded": run.count(ItemStatus::Succeeded),
        "failed": failed,
        "timedOut": 0,
        "aborted": aborted,
        "total": run.items.len(),
        "resultsWritten": run.results_written,
        "failuresNotRedrivable": 0,
        "pendingRedrive": if redrivable { failed + aborted } else { 0 },
    })
}

pub(super) async fn describe_map_run(st: &AppState, input: &Input) -> Result<Value, AwsError> {
    let arn = input.required("mapRunArn")?;
    let (rec, run) = map_run(st, arn).await?;
    let mut v = json!({
        "mapRunArn": run.arn,
        "executionArn": execution_arn(&rec.definition, &rec.id),
        "status": run_status(run.status),
        "startDate": epoch(run.started_at),
        "maxConcurrency": run.max_concurrency,
        "toleratedFailurePercentage": run.tolerated_failure_percentage.unwrap_or(0.0),
        "toleratedFailureCount": run.tolerated_failure_count.unwrap_or(0),
        "itemCounts": counts(&run),
        "executionCounts": counts(&run),
        "redriveCount": run.redrive_count,
    });
    if let Some(at) = run.stopped_at {
        v["stopDate"] = epoch(at);
    }
    if let Some(at) = run.redriven_at {
        v["redriveDate"] = epoch(at);
    }
    Ok(v)
}

pub(super) async fn list_map_runs(st: &AppState, input: &Input) -> Result<Value, AwsError> {
    let rec = execution(st, input).await?;
    let max = input.max_results()?;
    let from: usize = match input.string("nextToken")? {
        None => 0,
        Some(t) => t
            .parse()
            .map_err(|_| AwsError::new("InvalidToken", format!("Invalid Token: '{t}'")))?,
    };
    let runs = runs_of(st, &rec).await?;
    let page: Vec<Value> = runs
        .iter()
        .skip(from)
        .take(max)
        .map(|r| {
            let mut v = json!({
                "executionArn": execution_arn(&rec.definition, &rec.id),
                "mapRunArn": r.arn,
                "stateMachineArn": child_machine_arn(&rec.definition, r),
                "startDate": epoch(r.started_at),
            });
            if let Some(at) = r.stopped_at {
                v["stopDate"] = epoch(at);
            }
            v
        })
        .collect();
    let mut out = json!({ "mapRuns": page });
    if from + max < runs.len() {
        out["nextToken"] = json!((from + max).to_string());
    }
    Ok(out)
}

pub(super) async fn update_map_run(st: &AppState, input: &Input) -> Result<Value, AwsError> {
    let arn = input.required("mapRunArn")?;
    let max_concurrency = input.whole("maxConcurrency", 0, 10_000)?;
    let count = input.whole("toleratedFailureCount", 0, i64::MAX)?;
    let percentage = match input.0.get("toleratedFailurePercentage") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_f64() {
            Some(p) if (0.0..=100.0).contains(&p) => Some(p),
            _ => {
                return Err(AwsError::validation(format!(
                    "1 validation error detected: Value '{v}' at 'toleratedFailurePercentage' failed to satisfy constraint: Member must have value between 0 and 100"
                )))
            }
        },
    };
    if max_concurrency.is_none() && count.is_none() && percentage.is_none() {
        return Err(AwsError::validation(
            "at least one of maxConcurrency, toleratedFailurePercentage and toleratedFailureCount must be given",
        ));
    }
    let (rec, run) = map_run(st, arn).await?;
    if run.status != MapRunStatus::Running {
        return Err(AwsError::validation(format!(
            "Map Run '{arn}' is {} and can no longer be updated",
            run_status(run.status)
        )));
    }
    let update = MapRunUpdate {
        map_run: run.arn,
        max_concurrency: max_concurrency.map(|n| n as u32),
        tolerated_failure_count: count.map(|n| n as u64),
        tolerated_failure_percentage: percentage,
    };
    st.engine
        .update_map_run(&rec.id, update)
        .await
        .map_err(|e| match &e {
            EngineError::NotAllowed(core) if core.code().starts_with("map_run_") => {
                AwsError::validation(core.to_string())
            }
            _ => from_engine(e),
        })?;
    Ok(json!({}))
}

/// The machine ARN a map run's child executions run:
/// `…:stateMachine:{machine}/{label}`, as AWS names it.
fn child_machine_arn(machine: &str, run: &MapRun) -> String {
    format!(
        "arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{machine}/{}",
        run.label
    )
}

/// `ListExecutions` with a `mapRunArn`: the run's child executions that
/// have started (a pending item has no execution yet), in item order.
pub(super) async fn list_children(
    st: &AppState,
    input: &Input,
    arn: &str,
) -> Result<Value, AwsError> {
    let (rec, run) = map_run(st, arn).await?;
    let filter = input.string("statusFilter")?;
    let max = input.max_results()?;
    let from: usize = match input.string("nextToken")? {
        None => 0,
        Some(t) => t
            .parse()
            .map_err(|_| AwsError::new("InvalidToken", format!("Invalid Token: '{t}'")))?,
    };
    let children: Vec<Value> = (0..run.items.len())
        .filter_map(|i| child_item(&rec.definition, &run, i))
        .filter(|v| filter.is_none_or(|f| v["status"] == f))
        .collect();
    let total = children.len();
    let page: Vec<Value> = children.into_iter().skip(from).take(max).collect();
    let mut out = json!({ "executions": page });
    if from + max < total {
        out["nextToken"] = json!((from + max).to_string());
    }
    Ok(out)
}

/// Child `i` of `run` as `ListExecutions` lists it; `None` while it is
/// pending (no execution yet) or if there is no such item.
fn child_item(machine: &str, run: &MapRun, i: usize) -> Option<Value> {
    let item = run.items.get(i)?;
    let status = item_status(item.status)?;
    let arn = run.child_arn(i);
    let mut v = json!({
        "executionArn": arn,
        "stateMachineArn": child_machine_arn(machine, run),
        "mapRunArn": run.arn,
        "name": arn.rsplit(':').next().unwrap_or_default(),
        "status": status,
        "startDate": epoch(item.started_at.unwrap_or(run.started_at)),
    });
    if let Some(at) = item.stopped_at {
        v["stopDate"] = epoch(at);
    }
    Some(v)
}

/// `DescribeExecution` of child execution `arn` (item `i` of map run
/// `run_arn`): what the replayed parent keeps of it — its input, and its
/// output or error as it stands now.
pub(super) async fn describe_child(
    st: &AppState,
    arn: &str,
    (run_arn, i): (String, usize),
) -> Result<Value, AwsError> {
    let (rec, run) = started_child(st, arn, (run_arn, i)).await?;
    let mut v =
        child_item(&rec.definition, &run, i).ok_or_else(|| AwsError::execution_missing(arn))?;
    let item = &run.items[i];
    if let Some(input) = &item.input {
        v["input"] = json!(text(input));
        v["inputDetails"] = json!({ "included": true });
    }
    match (item.status, &item.output, &item.error) {
        (ItemStatus::Succeeded, Some(output), _) => {
            v["output"] = json!(text(output));
            v["outputDetails"] = json!({ "included": true });
        }
        (ItemStatus::Failed, _, Some(e)) => {
            v["error"] = json!(e.error);
            v["cause"] = json!(e.cause);
        }
        _ => {}
    }
    v["redriveCount"] = json!(item.redrive_count);
    if let Some(at) = item.redriven_at {
        v["redriveDate"] = epoch(at);
    }
    Ok(v)
}

/// The trace of child execution `arn` (item `i` of map run `run_arn`),
/// for `GetExecutionHistory`: replayed from the parent's history.
pub(super) async fn child_trace(
    st: &AppState,
    arn: &str,
    (run_arn, i): (String, usize),
) -> Result<Vec<Trace>, AwsError> {
    let missing = || AwsError::execution_missing(arn);
    let rec = parent_of(st, &run_arn).await?.ok_or_else(missing)?;
    let plan = plan_of(st, &rec).await?;
    let events = history_of(st, &rec).await?;
    // A replay is CPU work proportional to the history (see `runs_of`).
    tokio::task::spawn_blocking(move || sagaflow_core::child_trace(&plan, &events, &run_arn, i))
        .await
        .map_err(|_| AwsError::unavailable("the server is shutting down"))?
        .map_err(|e| {
            AwsError::internal(format!("the history of '{}' does not replay: {e}", rec.id))
        })?
        .ok_or_else(missing)
}

/// The parent's record and the map run of child execution `arn` (child
/// `i` of map run `run_arn`); `ExecutionDoesNotExist` unless that child
/// has started.
pub(super) async fn started_child(
    st: &AppState,
    arn: &str,
    (run_arn, i): (String, usize),
) -> Result<(ExecutionRecord, MapRun), AwsError> {
    let missing = || AwsError::execution_missing(arn);
    let (rec, run) = find_map_run(st, &run_arn).await?.ok_or_else(missing)?;
    child_item(&rec.definition, &run, i).ok_or_else(missing)?;
    Ok((rec, run))
}

/// DescribeStateMachineForExecution of a child of map run `run`, given the
/// parent's answer `v` (for its definition `d`): the child's machine is the
/// distributed Map's `ItemProcessor` (or legacy `Iterator`), named
/// `MACHINE/LABEL`, with `mapRunArn` and `label`, as AWS answers.
pub(super) fn as_child_machine(
    v: &mut Value,
    d: &sagaflow_store::DefinitionRecord,
    run: &MapRun,
) -> Result<(), AwsError> {
    let doc: Value = serde_json::from_str(&d.source).map_err(|e| {
        AwsError::internal(format!("the definition of '{}' is not JSON: {e}", d.name))
    })?;
    let processor = item_processor(&doc, &run.state).ok_or_else(|| {
        AwsError::internal(format!(
            "the definition of '{}' has no Map state '{}'",
            d.name, run.state
        ))
    })?;
    v["stateMachineArn"] = json!(child_machine_arn(&d.name, run));
    v["name"] = json!(format!("{}/{}", d.name, run.label));
    v["definition"] = json!(processor.to_string());
    v["mapRunArn"] = json!(run.arn);
    v["label"] = json!(run.label);
    Ok(())
}

/// The `ItemProcessor` (or `Iterator`) of the distributed Map state `name`,
/// searched through the machine's states, branches and item processors.
fn item_processor<'a>(graph: &'a Value, name: &str) -> Option<&'a Value> {
    let states = graph.get("States")?.as_object()?;
    if let Some(state) = states.get(name) {
        let processor = state.get("ItemProcessor").or(state.get("Iterator"));
        let distributed = processor
            .and_then(|p| p.pointer("/ProcessorConfig/Mode"))
            .is_some_and(|m| m == "DISTRIBUTED");
        if distributed {
            return processor;
        }
    }
    states.values().find_map(|s| {
        let nested = s.get("Branches").and_then(Value::as_array);
        nested
            .into_iter()
            .flatten()
            .chain(s.get("ItemProcessor"))
            .chain(s.get("Iterator"))
            .find_map(|g| item_processor(g, name))
    })
}
