//! The ASL interpreter: the ASL half of [`crate::Execution`].
//!
//! Same contract as the saga interpreter: `apply` folds one recorded event
//! into the state and returns effects as data; the decider turns inputs into
//! events. Everything in between (Pass, Choice, data flow, entering the next
//! state, fanning out a Parallel or Map) is a deterministic function of the
//! events, so it is recomputed on replay rather than recorded.

use serde::Serialize;
use serde_json::Value;

use crate::event::{ErrorInfo, Millis};

mod io;
mod map_run;
mod preview;
mod redrive;
pub use io::{parse_items, ITEM_READER_FAILED, RESULT_WRITER_FAILED};
use io::{reader_of, result_writer, writer_of, IoCall};
pub(crate) use map_run::no_map_runs;
use map_run::ItemChange;
pub use map_run::{
    child_owner, map_run_owner, ItemRun, ItemStatus, MapRun, MapRunStatus, MapRunUpdate,
};
pub use preview::{preview_map, MapPreview};
use redrive::{Resume, Stopped};

/// Region and account shown in the ARNs of the Step Functions API.
pub const REGION: &str = "us-east-1";
pub const ACCOUNT: &str = "123456789012";

/// `arn:aws:states:us-east-1:123456789012:stateMachine:NAME`.
pub fn state_machine_arn(name: &str) -> String {
    format!("arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{name}")
}

/// `arn:aws:states:us-east-1:123456789012:execution:MACHINE:ID`.
pub fn execution_arn(machine: &str, id: &str) -> String {
    format!("arn:aws:states:{REGION}:{ACCOUNT}:execution:{machine}:{id}")
}

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
/// [`Run::map_runs`] and its item's (or batch's) index there.
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
    /// A distributed Map's map run (see [`MapRun`]).
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

use std::collections::{BTreeMap, VecDeque};

use serde_json::json;

use crate::asl::jsonata::{self, Entropy, QUERY_EVALUATION_ERROR};
use crate::asl::machine::{
    error_matches, Assign, Count, Graph, Integration, Jsonata, Kind, Machine, PathField, Rule,
    Seconds, State, Template, Wait,
};
use crate::asl::vars::{self, Env, SharedVars, Vars};
use crate::asl::{choice, data, intrinsic};
use crate::envelope::illegal;
use crate::error_name::{
    EXCEED_TOLERATED, FAIL, HEARTBEAT_TIMEOUT, NO_CHOICE_MATCHED, RUNTIME, TIMEOUT,
};
use crate::event::{Event, EventKind, Status, TaskKind};
use crate::exchange::Participant;
use crate::exchange::{task_token, Effect, Request};
use crate::keys::{escape_state_name, idempotency_key, KeyScheme};
use crate::Error;

/// Attempt timeout of a Task without `TimeoutSeconds` that calls a
/// participant and waits for its answer (Lambda's own upper limit).
pub const DEFAULT_TASK_TIMEOUT_S: u64 = 900;
/// AWS's default `TimeoutSeconds` of a `.waitForTaskToken` task.
pub const DEFAULT_TOKEN_TIMEOUT_S: u64 = 99_999_999;

/// A thread that passes this many states in a row without waiting on
/// anything is stuck in a loop of Pass and Choice states.
pub const MAX_TRANSITIONS_WITHOUT_WAITING: u32 = 10_000;
/// AWS's quota of events per execution history. Ours counts the events of
/// the stored log (an ASL Task costs two, `step_scheduled` and
/// `step_succeeded`, where the Step Functions view shows five), and the
/// last one is the `execution_finished` that fails the execution.
pub const MAX_HISTORY_EVENTS: u64 = 25_000;
/// The interpreter's state: the threads of control (the machine's own, one
/// per Parallel branch and Map iteration) and the states they are inside of.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct Run {
    threads: Vec<Thread>,
    /// The states that wait for something (a task, a timer, branches),
    /// keyed by their instance key — the `step` of their events.
    slots: BTreeMap<String, Slot>,
    /// What the decider must still record, oldest first. Consumed by the
    /// events that record it, so a replay ends with it empty.
    pending: VecDeque<Pending>,
    head: Head,
    #[serde(skip)]
    trace: Option<Vec<Trace>>,
    /// Events of the Step Functions history so far (the trace's length when
    /// tracing): `States.Runtime` causes name the id of the failing state's
    /// `…StateEntered` event, as AWS does.
    events: u64,
    /// The map runs of distributed Map states, oldest first.
    map_runs: Vec<MapRun>,
    /// Stored events of map run child executions' threads: they do not
    /// count against this execution's history quota.
    child_events: u64,
    /// Fan-out slots whose branches are being started right now (empty
    /// between events).
    #[serde(skip)]
    filling: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Default)]
struct Head {
    uses_context: bool,
    keys: KeyScheme,
    id: String,
    name: String,
    input: Value,
    started_at: Millis,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
struct Thread {
    /// Where its graph sits: (state index, branch index) pairs from the top.
    scope: Vec<(usize, usize)>,
    /// Prefix of its slot keys (`Par[1]/` for the second branch of `Par`).
    prefix: String,
    /// The Parallel/Map slot it belongs to and its index there.
    parent: Option<(String, usize)>,
    /// How often each state was entered: later entries get distinct keys.
    visits: BTreeMap<usize, u32>,
    live: bool,
    /// The variables it sees: for a branch or iteration, its parent's as
    /// they were when it started, then its own assignments (emptied when it
    /// ends; the machine's own thread keeps them for a redrive).
    #[serde(serialize_with = "shared_vars")]
    vars: SharedVars,
    /// How it ended without succeeding, kept for a redrive.
    stopped: Option<Stopped>,
    /// The map run child execution it runs in (a distributed Map's item,
    /// or a branch or iteration inside one): labels its trace entries.
    child: Child,
}

fn shared_vars<S: serde::Serializer>(v: &SharedVars, s: S) -> Result<S::Ok, S::Error> {
    v.as_ref().serialize(s)
}

/// A caught error: the catcher's Next, the state's output (the input with
/// the error output placed) and what the catcher's `Assign` sets.
type Caught = (usize, Value, Option<Vars>);

/// What a state's `Assign` (or a catcher's, or a Choice rule's) sets,
/// rendered over `over` (JSONPath) or evaluated in `js` (JSONata, whose
/// `$states` the caller fills), with the variables as they were before the
/// state assigned anything (every expression sees the same values); `None`
/// without an `Assign`. AWS's limits apply (`States.Runtime` past them).
/// A JSONPath Assign's randomness is seeded by `seed`'s two parts joined
/// (the state's key and `@assign` or `@catch`), only joined when there is
/// such an Assign: most states have none, and this runs once per state and
/// Map item.
fn assigned(
    template: Option<&Assign>,
    over: &Value,
    env: Env<'_>,
    seed: (&str, &str),
    js: Option<&jsonata::Scope<'_>>,
) -> Result<Option<Vars>, ErrorInfo> {
    let Some(template) = template else {
        return Ok(None);
    };
    let value = match (template, js) {
        (Assign::Paths(t), _) => {
            let seed = format!("{}{}", seed.0, seed.1);
            data::render(t, over, env, &mut seeded(&seed))?
        }
        (Assign::Jsonata(t), Some(scope)) => t.evaluate(scope)?,
        (Assign::Jsonata(t), None) => {
            return Err(runtime(format!(
                "the JSONata Assign at {} was evaluated outside its state",
                t.location()
            )))
        }
    };
    let out: Vars = match value {
        Value::Object(map) => map.into_iter().collect(),
        _ => Vars::new(),
    };
    vars::check_limits(&out, env.vars)?;
    Ok(Some(out))
}

#[derive(Debug, Clone, PartialEq, Serialize)]
enum Phase {
    /// A Task attempt to be scheduled.
    Ready,
    Running {
        deadline: Millis,
        nonce: Option<String>,
        parked: bool,
    },
    /// A retry decided; its due time (with jitter) is still to be recorded.
    RetryDue {
        delay_ms: u64,
        jitter: bool,
    },
    RetryWaiting {
        fire_at: Millis,
    },
    /// A Wait state.
    Waiting {
        fire_at: Millis,
    },
    /// A Parallel or Map running its branches.
    Fanout,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
struct Slot {
    thread: usize,
    state: usize,
    /// The state's input as it arrived.
    raw: Value,
    /// After InputPath (and, for Parallel, Parameters).
    effective: Value,
    entered_at: Millis,
    /// Id of its `…StateEntered` event in the Step Functions history.
    entered_event: u64,
    attempt: u32,
    /// Retries used per retrier.
    retries: Vec<u32>,
    phase: Phase,
    fan: Option<Fan>,
    /// A distributed Map's reader or writer call in progress (see `io.rs`).
    io: Option<IoCall>,
}

impl Slot {
    /// A state of thread `t` entered at `at` (history event `entered`),
    /// waiting in `phase`.
    #[allow(clippy::too_many_arguments)]
    fn new(
        t: usize,
        state: &State,
        s: usize,
        raw: Value,
        effective: Value,
        (at, entered): (Millis, u64),
        phase: Phase,
    ) -> Slot {
        Slot {
            thread: t,
            state: s,
            raw,
            effective,
            entered_at: at,
            entered_event: entered,
            attempt: 1,
            retries: vec![0; state.retry.len()],
            phase,
            fan: None,
            io: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
struct Fan {
    /// Most branches or items running at once (0: no limit): a Map's
    /// `MaxConcurrency`, evaluated when the state started.
    limit: usize,
    /// Each branch or item's input.
    inputs: Vec<Value>,
    /// Thread of each started branch or item.
    threads: Vec<Option<usize>>,
    results: Vec<Option<Value>>,
    /// Branches or items started so far (they start in order).
    started: usize,
    running: usize,
    failures: usize,
    /// A Map's `ToleratedFailureCount` and `ToleratedFailurePercentage`
    /// (or their `…Path`), evaluated when the state started.
    tolerance: Tolerance,
    /// After a redrive: where each branch or item that runs again
    /// continues (empty otherwise: all start at their start).
    resume: Vec<Option<Resume>>,
    /// A distributed Map's run (index in `Run::map_runs`).
    map_run: Option<usize>,
}

/// Failures a Map tolerates: a count, a percentage, either or neither.
type Tolerance = (Option<u64>, Option<f64>);

/// Whether a Map whose tolerance is `(count, percentage)` tolerates
/// `failures` failed iterations of `total`: within either limit given
/// (none given: none tolerated).
fn tolerates((count, pct): Tolerance, failures: u64, total: usize) -> bool {
    let by_count = count.is_some_and(|c| failures <= c);
    let by_pct = pct.is_some_and(|p| (failures as f64) * 100.0 <= p * total as f64);
    by_count || by_pct
}

/// What a Parallel or Map starts with: its effective input, each branch's
/// or iteration's input, the most to run at once (0: no limit) and the
/// failures it tolerates.
struct FanPlan {
    effective: Value,
    inputs: Vec<Value>,
    limit: usize,
    tolerance: Tolerance,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
enum Pending {
    Schedule(String),
    Retry(String),
    Finish {
        status: Status,
        output: Option<Value>,
        error: Option<ErrorInfo>,
    },
}

/// What the decider must record next (see [`Run::next_pending`]).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Todo {
    Schedule {
        step: String,
        attempt: u32,
        timeout_ms: u64,
        callback: bool,
    },
    Retry {
        step: String,
        attempt: u32,
        delay_ms: u64,
        jitter: bool,
    },
    Finish {
        status: Status,
        output: Option<Value>,
        error: Option<ErrorInfo>,
    },
}

fn graph<'m>(m: &'m Machine, scope: &[(usize, usize)]) -> &'m Graph {
    let mut g = &m.graph;
    for &(s, b) in scope {
        g = match &g.states[s].kind {
            Kind::Parallel { branches } => &branches[b],
            Kind::Map(map) => &map.processor,
            // Scopes are only ever built from Parallel and Map states.
            _ => return g,
        };
    }
    g
}

fn runtime(cause: impl Into<String>) -> ErrorInfo {
    ErrorInfo::new(RUNTIME, cause)
}

/// A `States.Runtime` error raised while executing a state, with the prefix
/// AWS gives its cause: `An error occurred while executing the state 'NAME'
/// (entered at the event id #N). …`, N being the id of the state's
/// `…StateEntered` event. Other errors are returned unchanged.
fn in_state(error: ErrorInfo, name: &str, entered: u64) -> ErrorInfo {
    if (error.error != RUNTIME && error.error != QUERY_EVALUATION_ERROR)
        || error.cause.starts_with("An error occurred while executing")
    {
        return error;
    }
    ErrorInfo {
        cause: format!(
            "An error occurred while executing the state '{name}' (entered at the event id #{entered}). {}",
            error.cause
        ),
        ..error
    }
}

/// The most seconds a Wait may wait (AWS's limit on `Seconds`).
pub const MAX_WAIT_SECONDS: u64 = 99_999_999;

/// RFC 3339 text of a time in milliseconds (UTC, millisecond precision).
pub fn iso8601(ms: Millis) -> String {
    let secs = (ms / 1000) as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

/// Milliseconds since the epoch of an RFC 3339 timestamp.
pub fn parse_timestamp(text: &str) -> Option<Millis> {
    let t =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    u64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

/// A deterministic stream of random numbers for intrinsic functions
/// (`States.UUID`, `States.MathRandom`): seeded from what it is used for, so
/// a replay and every retry of a request see the same values.
fn seeded(seed: &str) -> impl FnMut() -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in seed.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    move || {
        h = h.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = h;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// A JSONata state's `Output` in `scope`, or `default` without one.
fn js_output(js: &Jsonata, scope: &jsonata::Scope<'_>, default: Value) -> Result<Value, ErrorInfo> {
    match &js.output {
        Some(t) => t.evaluate(scope),
        None => Ok(default),
    }
}

/// The expression text of a template (`$x > 1` of `{% $x > 1 %}`), as the
/// causes quote it.
fn expression_text(t: &Template) -> String {
    match t.source() {
        Value::String(s) if jsonata::is_expression(s) => s[2..s.len() - 2].trim().to_string(),
        other => other.to_string(),
    }
}

/// `States.QueryEvaluationError` for an expression whose value does not fit
/// its field (a Condition that is not a boolean, …).
fn wrong_value(t: &Template, value: &Value, expected: &str) -> ErrorInfo {
    ErrorInfo::new(
        QUERY_EVALUATION_ERROR,
        format!(
            "The JSONata expression '{}' specified for the field '{}' returned {}, where {expected} is required.",
            expression_text(t),
            t.field(),
            value
        ),
    )
}

/// A JSONata Choice rule's `Condition`.
fn condition(rule: &Rule, scope: &jsonata::Scope<'_>) -> Result<bool, ErrorInfo> {
    match rule {
        Rule::Condition(t) => match t.evaluate(scope)? {
            Value::Bool(b) => Ok(b),
            other => Err(wrong_value(t, &other, "a boolean")),
        },
        _ => Err(runtime("a JSONPath Choice rule in a JSONata state")),
    }
}

/// A non-negative integer a JSONata expression gave (`Seconds`,
/// `MaxConcurrency`).
fn js_count(t: &Template, scope: &jsonata::Scope<'_>) -> Result<u64, ErrorInfo> {
    let v = t.evaluate(scope)?;
    match v.as_f64() {
        Some(n) if n >= 0.0 && n.fract() == 0.0 && n <= MAX_WAIT_SECONDS as f64 => Ok(n as u64),
        _ => Err(wrong_value(t, &v, "a non-negative integer")),
    }
}

/// A value as AWS quotes it after `PATH == `: strings without quotes.
fn quoted(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The seconds a `…SecondsPath` selects. AWS's `States.Runtime` causes: `The
/// SecondsPath parameter does not reference an input value: $.x` (nothing
/// selected), `… cannot be parsed as a long value: $.x == 1.5` (not an
/// integer: a fraction, a string, a number beyond a long), `… references a
/// negative value: $.x == -1`.
fn seconds<'a>(
    s: &Seconds,
    input: &Value,
    ctx: impl Into<Env<'a>>,
    field: &str,
) -> Result<u64, ErrorInfo> {
    match s {
        Seconds::Fixed(n) => Ok(*n),
        Seconds::Expression(t) => Err(runtime(format!(
            "the JSONata {field} at {} was evaluated outside its state",
            t.location()
        ))),
        Seconds::Path(p) => {
            let Some(v) = data::lookup(p, input, ctx)? else {
                return Err(runtime(format!(
                    "The {field} parameter does not reference an input value: {p}"
                )));
            };
            match (v.as_u64(), v.as_i64()) {
                (Some(n), _) if i64::try_from(n).is_ok() => Ok(n),
                (None, Some(n)) if n < 0 => Err(runtime(format!(
                    "The {field} parameter references a negative value: {p} == {n}"
                ))),
                _ => Err(runtime(format!(
                    "The {field} parameter cannot be parsed as a long value: {p} == {}",
                    quoted(&v)
                ))),
            }
        }
    }
}

/// A value as AWS quotes it in `The …Path field refers to value "…"`:
/// strings without quotes, anything else as JSON text.
fn refers_to(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The non-negative integer (at least `min`) a `{field}Path` selects.
/// AWS's `States.Runtime` causes: `The MaxConcurrencyPath field refers to
/// value "x" which is not a valid integer: $.max`, `Expected non-negative
/// integer for MaxConcurrency, got '-1' instead.`; for
/// `ToleratedFailureCount`: `ToleratedFailureCount cannot be negative.`. A
/// path that selects nothing fails as in [`data::select`].
fn path_count<'a>(
    path: &str,
    input: &Value,
    ctx: impl Into<Env<'a>>,
    field: &str,
    min: u64,
) -> Result<u64, ErrorInfo> {
    let v = data::select(path, input, ctx)?;
    let n = match (v.as_u64(), v.as_i64()) {
        (Some(n), _) => i128::from(n),
        (None, Some(n)) => i128::from(n),
        _ => {
            return Err(runtime(format!(
                "The {field}Path field refers to value \"{}\" which is not a valid integer: {path}",
                refers_to(&v)
            )))
        }
    };
    if n < i128::from(min) {
        return Err(runtime(match (field, min) {
            ("ToleratedFailureCount", _) => "ToleratedFailureCount cannot be negative.".to_string(),
            (_, 0) => format!("Expected non-negative integer for {field}, got '{n}' instead."),
            _ => format!("Expected positive integer for {field}, got '{n}' instead."),
        }));
    }
    Ok(u64::try_from(n).unwrap_or(u64::MAX))
}

/// The percentage a `ToleratedFailurePercentagePath` selects: AWS's causes
/// `The ToleratedFailurePercentagePath field refers to value "x" which is
/// not a valid float: $.p` and `ToleratedFailurePercentage must be between
/// 0 and 100.`
fn path_percentage<'a>(
    path: &str,
    input: &Value,
    ctx: impl Into<Env<'a>>,
) -> Result<f64, ErrorInfo> {
    let v = data::select(path, input, ctx)?;
    match v.as_f64() {
        Some(p) if (0.0..=100.0).contains(&p) => Ok(p),
        Some(_) => Err(runtime(
            "ToleratedFailurePercentage must be between 0 and 100.",
        )),
        None => Err(runtime(format!(
            "The ToleratedFailurePercentagePath field refers to value \"{}\" which is not a valid float: {path}",
            refers_to(&v)
        ))),
    }
}

/// An `ItemBatcher` limit (at least 1): a number, a path into the
/// effective input or a JSONata expression over `scope`.
fn count<'a>(
    c: &Count,
    input: &Value,
    ctx: impl Into<Env<'a>>,
    scope: Option<&jsonata::Scope<'_>>,
    field: &str,
) -> Result<u64, ErrorInfo> {
    match c {
        Count::Fixed(n) => Ok(*n),
        Count::Path(p) => path_count(p, input, ctx, field, 1),
        Count::Jsonata(t) => {
            let Some(scope) = scope else {
                return Err(runtime(format!("{field}: no JSONata scope")));
            };
            match js_count(t, scope)? {
                0 => Err(wrong_value(t, &Value::from(0), "a positive integer")),
                n => Ok(n),
            }
        }
    }
}

/// The `ItemBatcher`'s batches, in order: `{"BatchInput": …, "Items":
/// [...]}` (no `BatchInput` key without one), each with at most
/// `max_items` items and, as JSON text, at most `max_bytes` bytes. An item
/// too large for a batch of its own fails the state (`States.Runtime`).
fn batches(
    items: Vec<Value>,
    max_items: Option<u64>,
    max_bytes: Option<u64>,
    batch_input: Option<Value>,
    state: &str,
) -> Result<Vec<Value>, ErrorInfo> {
    let wrap = |items: Vec<Value>| {
        let mut b = serde_json::Map::new();
        if let Some(bi) = &batch_input {
            b.insert("BatchInput".to_string(), bi.clone());
        }
        b.insert("Items".to_string(), Value::Array(items));
        Value::Object(b)
    };
    // The text of an empty batch, then each item adds its own text and a
    // comma after the first.
    let base = wrap(Vec::new()).to_string().len() as u64;
    let max_items = max_items.unwrap_or(u64::MAX);
    let max_bytes = max_bytes.unwrap_or(u64::MAX);
    let mut out = Vec::new();
    let mut current: Vec<Value> = Vec::new();
    let mut size = base;
    for (i, item) in items.into_iter().enumerate() {
        let len = item.to_string().len() as u64;
        if base + len > max_bytes {
            return Err(runtime(format!(
                "The item at index {i} of `{state}` does not fit in a batch of MaxInputBytesPerBatch {max_bytes} bytes ({} bytes with it)",
                base + len
            )));
        }
        let grown = size + len + u64::from(!current.is_empty());
        if !current.is_empty() && (current.len() as u64 >= max_items || grown > max_bytes) {
            out.push(wrap(std::mem::take(&mut current)));
            size = base;
        }
        size += len + u64::from(!current.is_empty());
        current.push(item);
    }
    if !current.is_empty() {
        out.push(wrap(current));
    }
    Ok(out)
}

impl Run {
    /// Adds an entry to the trace, if tracing. Every call is preceded by
    /// one [`Run::traced`], which counts it.
    /// `child`: whose history shows it (see [`Trace::child`]).
    fn record(&mut self, at: Millis, child: Child, kind: TraceKind) {
        if let Some(t) = &mut self.trace {
            t.push(Trace { at, kind, child });
        }
    }

    /// The child execution thread `t` runs in (none for the machine's own,
    /// which does not exist yet when `ExecutionStarted` is recorded).
    fn child_of(&self, t: usize) -> Child {
        self.threads.get(t).and_then(|th| th.child)
    }

    /// How many stored events belong to map run child executions.
    pub(crate) fn child_events(&self) -> u64 {
        self.child_events
    }

    /// The child execution the state waiting as `step` runs in.
    /// Without map runs there are no children: no lookup (this runs for
    /// every Task event, traced or not).
    fn step_child(&self, step: &str) -> Child {
        if self.map_runs.is_empty() {
            return None;
        }
        self.slots.get(step).and_then(|s| self.child_of(s.thread))
    }

    /// One event of the Step Functions history happens here: counts it
    /// (tracing or not, so a state knows the id of its `…StateEntered`
    /// event) and says whether to build it for the trace.
    fn traced(&mut self, child: Child) -> bool {
        match self.child_item(child) {
            Some(item) => item.events += 1,
            None => self.events += 1,
        }
        self.trace.is_some()
    }

    /// The id of the last event counted in `child`'s history (the
    /// execution's own for `None`).
    fn event_id(&self, child: Child) -> u64 {
        child
            .and_then(|(r, i)| self.map_runs.get(r)?.items.get(i))
            .map_or(self.events, |item| item.events)
    }

    /// The record of map run child `child`, if it is one.
    fn child_item(&mut self, child: Child) -> Option<&mut ItemRun> {
        let (r, i) = child?;
        self.map_runs.get_mut(r)?.items.get_mut(i)
    }

    /// Removes the pending entry that an event just recorded. The decider
    /// records them in order, so it is (nearly always) the first: a Map that
    /// schedules N items in one decision must not scan N entries N times.
    fn consume(&mut self, recorded: impl Fn(&Pending) -> bool) {
        if let Some(i) = self.pending.iter().position(recorded) {
            self.pending.remove(i);
        }
    }

    /// What a JSONata field of a state sees: `$states.input` (the state's
    /// raw input), `$states.context`, the variables, and the entropy of
    /// `$random()`/`$uuid()`: derived from the execution id and `seed` (the
    /// state's instance key, which counts its visits and names its Map
    /// iteration or Parallel branch, and the attempt), all recorded, so a
    /// replay draws the same values. `$now()` is `at`, the recorded time the
    /// state was entered. Callers add `result` and `errorOutput`.
    fn js_scope<'a>(
        &self,
        input: &'a Value,
        env: Env<'a>,
        seed: &str,
        at: Millis,
    ) -> jsonata::Scope<'a> {
        jsonata::Scope {
            input,
            result: None,
            error_output: None,
            context: env.context,
            variables: env.vars,
            entropy: Entropy::from_seed(format!("{}\n{seed}", self.head.id)),
            now_ms: i64::try_from(at).unwrap_or(i64::MAX),
        }
    }

    /// The context object (`$$`) of a state. `retry_count` is `None` for
    /// the states that cannot retry: as in AWS, `$$.State` of a Pass,
    /// Choice, Wait, Succeed or Fail state has only `EnteredTime` and `Name`.
    fn context(
        &self,
        state: &str,
        entered_at: Millis,
        retry_count: Option<u32>,
        token: Option<&str>,
    ) -> Value {
        if !self.head.uses_context && token.is_none() {
            return Value::Null;
        }
        let mut ctx = json!({
            "Execution": {
                "Id": execution_arn(&self.head.name, &self.head.id),
                "Name": self.head.id,
                "Input": self.head.input,
                "StartTime": iso8601(self.head.started_at),
                "RoleArn": format!("arn:aws:iam::{ACCOUNT}:role/sagaflow"),
                "RedriveCount": 0,
            },
            "StateMachine": {
                "Id": state_machine_arn(&self.head.name),
                "Name": self.head.name,
            },
            "State": {
                "Name": state,
                "EnteredTime": iso8601(entered_at),
            },
        });
        if let Some(n) = retry_count {
            ctx["State"]["RetryCount"] = json!(n);
        }
        if let Some(token) = token {
            ctx["Task"] = json!({ "Token": token });
        }
        ctx
    }

    fn key(&mut self, t: usize, name: &str, s: usize) -> String {
        let name = escape_state_name(name, self.head.keys);
        let th = &mut self.threads[t];
        let n = th.visits.entry(s).or_insert(0);
        *n += 1;
        if *n == 1 {
            format!("{}{name}", th.prefix)
        } else {
            format!("{}{name}#{n}", th.prefix)
        }
    }

    /// A Task's timeout or heartbeat in seconds: fixed, from a path over
    /// its effective input, or (JSONata) an expression over its raw input,
    /// with the entropy of attempt `slot.attempt` of `step`.
    fn task_seconds(
        &self,
        s: &Seconds,
        step: &str,
        slot: &Slot,
        ctx: Env<'_>,
        field: &str,
    ) -> Result<u64, ErrorInfo> {
        match s {
            Seconds::Expression(t) => {
                let seed = format!("{step}#{}", slot.attempt);
                let scope = self.js_scope(&slot.raw, ctx, &seed, slot.entered_at);
                js_count(t, &scope)
            }
            _ => seconds(s, &slot.effective, ctx, field),
        }
    }

    fn state<'m>(&self, m: &'m Machine, t: usize, s: usize) -> &'m State {
        &graph(m, &self.threads[t].scope).states[s]
    }

    /// Runs thread `t` from state `s` with `input` until it has to wait
    /// (a Task, a Wait, branches) or ends.
    fn enter(
        &mut self,
        m: &Machine,
        at: Millis,
        fx: &mut Vec<Effect>,
        t: usize,
        mut s: usize,
        mut input: Value,
    ) {
        let mut transitions = 0u32;
        loop {
            transitions += 1;
            if transitions > MAX_TRANSITIONS_WITHOUT_WAITING {
                let error = runtime(format!(
                    "more than {MAX_TRANSITIONS_WITHOUT_WAITING} state transitions without a Task or Wait: the machine loops"
                ));
                return self.thread_done(m, at, fx, t, Err(error));
            }
            let st = self.state(m, t, s);
            let key = self.key(t, &st.name, s);
            if self.traced(self.child_of(t)) {
                self.record(
                    at,
                    self.child_of(t),
                    TraceKind::StateEntered {
                        name: st.name.clone(),
                        type_name: st.kind.type_name(),
                        input: input.clone(),
                    },
                );
            }
            let entered = self.event_id(self.child_of(t));
            let retries = matches!(
                st.kind,
                Kind::Task(_) | Kind::Parallel { .. } | Kind::Map(_)
            )
            .then_some(0);
            let ctx = self.context(&st.name, at, retries, None);
            let vars = self.threads[t].vars.clone();
            let ctx = Env::new(&ctx, &vars);
            let flow = match &st.kind {
                Kind::Pass { result } => (|| {
                    if let Some(js) = &st.jsonata {
                        // `Output` and `Assign` both over `$states.input`.
                        let scope = self.js_scope(&input, ctx, &key, at);
                        let a = assigned(st.assign.as_ref(), &input, ctx, ("", ""), Some(&scope))?;
                        return Ok(Some((js_output(js, &scope, input.clone())?, a)));
                    }
                    let eff = data::filter(&st.input_path, &input, ctx)?;
                    let r = match (result, &st.parameters) {
                        (Some(r), _) => r.clone(),
                        (None, Some(p)) => data::render(p, &eff, ctx, &mut seeded(&key))?,
                        (None, None) => eff,
                    };
                    let a = assigned(st.assign.as_ref(), &r, ctx, (&key, "@assign"), None)?;
                    let placed = data::place_into(&st.result_path, &input, r)?;
                    Ok(Some((data::filter_owned(&st.output_path, placed, ctx)?, a)))
                })(),
                Kind::Choice { choices, default } => (|| {
                    let no_match = || {
                        ErrorInfo::new(
                            NO_CHOICE_MATCHED,
                            format!("no Choice rule of `{}` matched", st.name),
                        )
                    };
                    if let Some(js) = &st.jsonata {
                        // The first rule whose Condition holds: its Assign
                        // and its Output (else the state's); for Default,
                        // the state's own.
                        let scope = self.js_scope(&input, ctx, &key, at);
                        for b in choices {
                            if condition(&b.rule, &scope)? {
                                let a = assigned(
                                    b.assign.as_ref(),
                                    &input,
                                    ctx,
                                    ("", ""),
                                    Some(&scope),
                                )?;
                                let out = match &b.output {
                                    Some(t) => t.evaluate(&scope)?,
                                    None => js_output(js, &scope, input.clone())?,
                                };
                                return Ok((b.next, out, a));
                            }
                        }
                        let next = default.ok_or_else(no_match)?;
                        let a = assigned(st.assign.as_ref(), &input, ctx, ("", ""), Some(&scope))?;
                        return Ok((next, js_output(js, &scope, input.clone())?, a));
                    }
                    let eff = data::filter(&st.input_path, &input, ctx)?;
                    let mut next = None;
                    for b in choices {
                        if choice::evaluate(&b.rule, &eff, ctx)? {
                            next = Some((b.next, b.assign.as_ref()));
                            break;
                        }
                    }
                    // A matching rule's Assign, or the state's own when
                    // Default is taken; either over the state input.
                    let (next, assign) = next
                        .or(default.map(|d| (d, st.assign.as_ref())))
                        .ok_or_else(no_match)?;
                    let a = assigned(assign, &input, ctx, (&key, "@assign"), None)?;
                    Ok((next, data::filter(&st.output_path, &eff, ctx)?, a))
                })()
                .map(|(next, out, a)| {
                    self.set_vars(t, &a);
                    self.exited(at, t, st, &out, a.as_ref());
                    s = next;
                    input = out;
                    None
                }),
                Kind::Succeed => (|| {
                    if let Some(js) = &st.jsonata {
                        let scope = self.js_scope(&input, ctx, &key, at);
                        return Ok(Some((js_output(js, &scope, input.clone())?, None)));
                    }
                    let eff = data::filter(&st.input_path, &input, ctx)?;
                    Ok(Some((data::filter(&st.output_path, &eff, ctx)?, None)))
                })(),
                Kind::Fail(f) => {
                    // ErrorPath and CausePath: a path or an intrinsic
                    // function; one that selects nothing fails the state
                    // with `States.Runtime` (the Fail's own error is lost).
                    let pick = |fixed: &Option<String>,
                                path: &Option<String>|
                     -> Result<Option<String>, ErrorInfo> {
                        match (fixed, path) {
                            (Some(v), _) => Ok(Some(v.clone())),
                            (None, Some(p)) => {
                                let v = if intrinsic::is_call(p) {
                                    intrinsic::evaluate(p, &input, ctx, &mut seeded(&key))?
                                } else {
                                    data::filter(&PathField::Path(p.clone()), &input, ctx)?
                                };
                                Ok(Some(quoted(&v)))
                            }
                            (None, None) => Ok(None),
                        }
                    };
                    // A JSONata state's `Error`/`Cause` expressions.
                    let scope = self.js_scope(&input, ctx, &key, at);
                    let pick_js = |fixed: &Option<String>,
                                   expr: &Option<Template>|
                     -> Result<Option<String>, ErrorInfo> {
                        match expr {
                            Some(t) => Ok(Some(quoted(&t.evaluate(&scope)?))),
                            None => Ok(fixed.clone()),
                        }
                    };
                    let (error, cause) = if st.jsonata.is_some() {
                        (
                            pick_js(&f.error, &f.error_expression),
                            pick_js(&f.cause, &f.cause_expression),
                        )
                    } else {
                        (pick(&f.error, &f.error_path), pick(&f.cause, &f.cause_path))
                    };
                    let error = match (error, cause) {
                        (Ok(e), Ok(c)) => {
                            ErrorInfo::new(e.unwrap_or_else(|| FAIL.into()), c.unwrap_or_default())
                        }
                        (Err(e), _) | (_, Err(e)) => in_state(e, &st.name, entered),
                    };
                    // A Fail state ends its thread; its Catch-less failure
                    // is not redrivable by retrying it.
                    self.threads[t].stopped = Some(Stopped::Anew);
                    return self.thread_done(m, at, fx, t, Err(error));
                }
                Kind::Wait(w) => {
                    let fire_at = (|| {
                        let eff = data::filter(&st.input_path, &input, ctx)?;
                        let fire_at = match w {
                            Wait::Seconds(n) => at + n * 1000,
                            Wait::SecondsPath(p) => {
                                let n =
                                    seconds(&Seconds::Path(p.clone()), &eff, ctx, "SecondsPath")?;
                                // Past AWS's limit the machine's own timeout
                                // (at most a year) ends it first.
                                at.saturating_add(n.min(MAX_WAIT_SECONDS) * 1000)
                            }
                            Wait::Timestamp(ts) => parse_timestamp(ts)
                                .ok_or_else(|| runtime(format!("bad Timestamp `{ts}`")))?,
                            Wait::SecondsExpression(t) => {
                                let scope = self.js_scope(&input, ctx, &key, at);
                                at.saturating_add(js_count(t, &scope)? * 1000)
                            }
                            Wait::TimestampExpression(t) => {
                                let scope = self.js_scope(&input, ctx, &key, at);
                                let v = t.evaluate(&scope)?;
                                v.as_str()
                                    .and_then(parse_timestamp)
                                    .ok_or_else(|| wrong_value(t, &v, "an ISO-8601 timestamp"))?
                            }
                            // AWS's causes: `The TimestampPath parameter does
                            // not reference an input value: $.t` and `… does
                            // not reference a valid ISO-8601 extended offset
                            // date-time format string: $.t == VALUE`.
                            Wait::TimestampPath(p) => {
                                let Some(v) = data::lookup(p, &eff, ctx)? else {
                                    return Err(runtime(format!(
                                        "The TimestampPath parameter does not reference an input value: {p}"
                                    )));
                                };
                                v.as_str().and_then(parse_timestamp).ok_or_else(|| {
                                    runtime(format!(
                                        "The TimestampPath parameter does not reference a valid ISO-8601 extended offset date-time format string: {p} == {}",
                                        quoted(&v)
                                    ))
                                })?
                            }
                        };
                        Ok((eff, fire_at))
                    })();
                    match fire_at {
                        Ok((eff, fire_at)) => {
                            self.slots.insert(
                                key.clone(),
                                Slot::new(
                                    t,
                                    st,
                                    s,
                                    input,
                                    eff,
                                    (at, entered),
                                    Phase::Waiting { fire_at },
                                ),
                            );
                            fx.push(Effect::StartTimer {
                                step: key,
                                task: TaskKind::Action,
                                attempt: 1,
                                fire_at,
                            });
                            return;
                        }
                        Err(e) => Err(e),
                    }
                }
                Kind::Task(_) => match data::filter(&st.input_path, &input, ctx) {
                    Ok(eff) => {
                        self.slots.insert(
                            key.clone(),
                            Slot::new(t, st, s, input, eff, (at, entered), Phase::Ready),
                        );
                        self.pending.push_back(Pending::Schedule(key));
                        return;
                    }
                    Err(e) => Err(e),
                },
                Kind::Map(_) if reader_of(st).is_some() => {
                    // The items come from the reader's call first.
                    let eff = match &st.jsonata {
                        Some(_) => Ok(input.clone()),
                        None => data::filter(&st.input_path, &input, ctx),
                    };
                    match eff {
                        Ok(eff) => {
                            let mut slot =
                                Slot::new(t, st, s, input, eff, (at, entered), Phase::Ready);
                            slot.io = Some(IoCall::Reader);
                            self.slots.insert(key.clone(), slot);
                            self.pending.push_back(Pending::Schedule(key));
                            return;
                        }
                        Err(e) => Err(e),
                    }
                }
                Kind::Parallel { .. } | Kind::Map(_) => {
                    match self.fan_inputs(st, &input, ctx, &key, at, None) {
                        Ok(mut plan) => {
                            // The slot keeps the effective input; the fan
                            // only needs each branch's or item's.
                            let eff = std::mem::take(&mut plan.effective);
                            self.slots.insert(
                                key.clone(),
                                Slot::new(t, st, s, input, eff, (at, entered), Phase::Fanout),
                            );
                            self.start_fan(m, at, fx, &key, plan);
                            return;
                        }
                        Err(e) => Err(e),
                    }
                }
            };
            match flow {
                // Choice: continue with the chosen state.
                Ok(None) => continue,
                Ok(Some((out, a))) => {
                    self.set_vars(t, &a);
                    self.exited(at, t, st, &out, a.as_ref());
                    match st.next {
                        Some(n) if !matches!(st.kind, Kind::Succeed) => {
                            s = n;
                            input = out;
                        }
                        _ => return self.thread_done(m, at, fx, t, Ok(out)),
                    }
                }
                Err(error) => {
                    // A state that failed before it could wait: only its
                    // Catch can help (nothing ran, so there is nothing to retry).
                    let error = in_state(error, &st.name, entered);
                    self.evaluation_failed(at, t, &st.name, &error);
                    match self.catch(m, t, s, &input, &error, ctx, &key, at) {
                        Some(Ok((next, out, a))) => {
                            self.set_vars(t, &a);
                            s = next;
                            input = out;
                        }
                        Some(Err(e)) => {
                            let e = in_state(e, &st.name, entered);
                            return self.thread_done(m, at, fx, t, Err(e));
                        }
                        None => {
                            self.stop_at(t, s, input, None);
                            return self.thread_done(m, at, fx, t, Err(error));
                        }
                    }
                }
            }
        }
    }

    /// Records AWS's `EvaluationFailed` event when `error` is a JSONata
    /// evaluation's failure in state `name` (thread `t`).
    fn evaluation_failed(&mut self, at: Millis, t: usize, name: &str, error: &ErrorInfo) {
        if error.error != QUERY_EVALUATION_ERROR {
            return;
        }
        let child = self.child_of(t);
        if self.traced(child) {
            let location = error
                .cause
                .split_once("specified for the field '")
                .and_then(|(_, rest)| rest.split_once('\''))
                .map(|(field, _)| field.to_string());
            self.record(
                at,
                child,
                TraceKind::EvaluationFailed {
                    state: name.to_string(),
                    error: error.clone(),
                    location,
                },
            );
        }
    }

    /// A state exited with `out`, having assigned `assigned` (if it has an
    /// `Assign`): AWS's `assignedVariables`, each value as JSON text.
    /// `t`: the thread it ran in.
    fn exited(&mut self, at: Millis, t: usize, st: &State, out: &Value, assigned: Option<&Vars>) {
        if self.traced(self.child_of(t)) {
            self.record(
                at,
                self.child_of(t),
                TraceKind::StateExited {
                    name: st.name.clone(),
                    type_name: st.kind.type_name(),
                    output: out.clone(),
                    assigned: assigned.map(vars::as_json_text),
                },
            );
        }
    }

    /// A branch's or iteration's variables end with it. One that sees none
    /// keeps its empty scope: a new empty one would be an allocation per
    /// Map item.
    fn end_vars(&mut self, t: usize) {
        let th = &mut self.threads[t];
        if th.parent.is_some() && !th.vars.is_empty() {
            th.vars = SharedVars::default();
        }
    }

    /// A state's assignments take effect (all at once, as it exits).
    fn set_vars(&mut self, t: usize, assigned: &Option<Vars>) {
        if let Some(a) = assigned.as_ref().filter(|a| !a.is_empty()) {
            let vars = std::sync::Arc::make_mut(&mut self.threads[t].vars);
            vars.extend(a.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
    }

    /// The first Catch of state `s` matching `error`: its Next, the state
    /// input with the error placed at its ResultPath and what its `Assign`
    /// sets (over the error output); an `Err` when that Assign fails.
    #[allow(clippy::too_many_arguments)]
    fn catch(
        &self,
        m: &Machine,
        t: usize,
        s: usize,
        raw: &Value,
        error: &ErrorInfo,
        env: Env<'_>,
        key: &str,
        at: Millis,
    ) -> Option<Result<Caught, ErrorInfo>> {
        let st = self.state(m, t, s);
        let c = st
            .catch
            .iter()
            .find(|c| error_matches(&c.error_equals, &error.error))?;
        let out = json!({ "Error": error.error, "Cause": error.cause });
        if st.jsonata.is_some() {
            // `Output` (default: the error output) and `Assign` over
            // `$states.errorOutput`; no ResultPath.
            let scope = jsonata::Scope {
                error_output: Some(&out),
                ..self.js_scope(raw, env, &format!("{key}@catch"), at)
            };
            let caught = (|| {
                let a = assigned(c.assign.as_ref(), &out, env, ("", ""), Some(&scope))?;
                let output = match &c.output {
                    Some(t) => t.evaluate(&scope)?,
                    None => out.clone(),
                };
                Ok((c.next, output, a))
            })();
            return Some(caught);
        }
        let a = match assigned(c.assign.as_ref(), &out, env, (key, "@catch"), None) {
            Ok(a) => a,
            Err(e) => return Some(Err(e)),
        };
        match data::place_into(&c.result_path, raw, out) {
            Ok(v) => Some(Ok((c.next, v, a))),
            Err(_) => None,
        }
    }

    /// The effective input of a Parallel or Map, each branch's or item's
    /// input and the most branches to run at once (0: no limit).
    /// `read`: a distributed Map's items from its ItemReader (instead of
    /// `ItemsPath` or `Items`).
    fn fan_inputs(
        &self,
        st: &State,
        input: &Value,
        ctx: Env<'_>,
        key: &str,
        at: Millis,
        read: Option<Vec<Value>>,
    ) -> Result<FanPlan, ErrorInfo> {
        if let Some(js) = &st.jsonata {
            return self.fan_inputs_jsonata(st, js, input, ctx, (key, at), read);
        }
        let eff = data::filter(&st.input_path, input, ctx)?;
        match &st.kind {
            Kind::Parallel { branches } => {
                let eff = match &st.parameters {
                    Some(p) => data::render(p, &eff, ctx, &mut seeded(key))?,
                    None => eff,
                };
                Ok(FanPlan {
                    effective: eff.clone(),
                    inputs: vec![eff; branches.len()],
                    limit: 0,
                    tolerance: (None, None),
                })
            }
            Kind::Map(map) => {
                let limit = match &map.max_concurrency_path {
                    Some(p) => path_count(p, &eff, ctx, "MaxConcurrency", 0)?,
                    None => u64::from(map.max_concurrency),
                };
                let tolerance = (
                    match &map.tolerated_failure_count_path {
                        Some(p) => Some(path_count(p, &eff, ctx, "ToleratedFailureCount", 0)?),
                        None => map.tolerated_failure_count,
                    },
                    match &map.tolerated_failure_percentage_path {
                        Some(p) => Some(path_percentage(p, &eff, ctx)?),
                        None => map.tolerated_failure_percentage,
                    },
                );
                let items = match read {
                    Some(items) => Value::Array(items),
                    None => data::select(&map.items_path, &eff, ctx)?,
                };
                let Value::Array(items) = items else {
                    return Err(runtime(format!(
                        "ItemsPath `{}` of `{}` must select an array",
                        map.items_path, st.name
                    )));
                };
                let mut inputs = Vec::with_capacity(items.len());
                for (i, item) in items.into_iter().enumerate() {
                    match &map.item_selector {
                        Some(sel) => {
                            let mut c = ctx.context.clone();
                            c["Map"] = json!({ "Item": { "Index": i, "Value": item } });
                            inputs.push(data::render(
                                sel,
                                &eff,
                                Env::new(&c, ctx.vars),
                                &mut seeded(&format!("{key}[{i}]")),
                            )?);
                        }
                        None => inputs.push(item),
                    }
                }
                if let Some(b) = &map.item_batcher {
                    let max_items = match &b.max_items {
                        Some(c) => Some(count(c, &eff, ctx, None, "MaxItemsPerBatch")?),
                        None => None,
                    };
                    let max_bytes = match &b.max_bytes {
                        Some(c) => Some(count(c, &eff, ctx, None, "MaxInputBytesPerBatch")?),
                        None => None,
                    };
                    let batch_input = match &b.batch_input {
                        Some(t) => Some(data::render(
                            t,
                            &eff,
                            ctx,
                            &mut seeded(&format!("{key}/BatchInput")),
                        )?),
                        None => None,
                    };
                    inputs = batches(inputs, max_items, max_bytes, batch_input, &st.name)?;
                }
                Ok(FanPlan {
                    effective: eff,
                    inputs,
                    limit: usize::try_from(limit).unwrap_or(usize::MAX),
                    tolerance,
                })
            }
            _ => Err(runtime("not a Parallel or Map state")),
        }
    }

    /// [`Run::fan_inputs`] of a JSONata state: a Parallel's `Arguments`
    /// (each branch's input), a Map's `Items` (or its input), each item's
    /// `ItemSelector` (with `$states.context.Map.Item`) and `MaxConcurrency`.
    fn fan_inputs_jsonata(
        &self,
        st: &State,
        js: &Jsonata,
        input: &Value,
        ctx: Env<'_>,
        (key, at): (&str, Millis),
        read: Option<Vec<Value>>,
    ) -> Result<FanPlan, ErrorInfo> {
        let scope = self.js_scope(input, ctx, key, at);
        match &st.kind {
            Kind::Parallel { branches } => {
                let eff = match &js.arguments {
                    Some(t) => t.evaluate(&scope)?,
                    None => input.clone(),
                };
                Ok(FanPlan {
                    effective: eff.clone(),
                    inputs: vec![eff; branches.len()],
                    limit: 0,
                    tolerance: (None, None),
                })
            }
            Kind::Map(map) => {
                let items = match (read, &map.items) {
                    (Some(items), _) => items,
                    (None, Some(t)) => match t.evaluate(&scope)? {
                        Value::Array(items) => items,
                        other => return Err(wrong_value(t, &other, "an array")),
                    },
                    (None, None) => match input {
                        Value::Array(items) => items.clone(),
                        _ => {
                            return Err(runtime(format!(
                                "the input of `{}` must be an array (or give `Items`)",
                                st.name
                            )))
                        }
                    },
                };
                let limit = match &map.max_concurrency_expression {
                    Some(t) => usize::try_from(js_count(t, &scope)?).unwrap_or(usize::MAX),
                    None => map.max_concurrency as usize,
                };
                let tolerance = (
                    match &map.tolerated_failure_count_expression {
                        Some(t) => Some(js_count(t, &scope)?),
                        None => map.tolerated_failure_count,
                    },
                    match &map.tolerated_failure_percentage_expression {
                        Some(t) => match t.evaluate(&scope)? {
                            v if v.as_f64().is_some_and(|p| (0.0..=100.0).contains(&p)) => {
                                v.as_f64()
                            }
                            v => return Err(wrong_value(t, &v, "a number from 0 to 100")),
                        },
                        None => map.tolerated_failure_percentage,
                    },
                );
                let mut inputs = Vec::with_capacity(items.len());
                for (i, item) in items.into_iter().enumerate() {
                    match &map.item_selector_jsonata {
                        Some(sel) => {
                            let mut c = ctx.context.clone();
                            c["Map"] = json!({ "Item": { "Index": i, "Value": item } });
                            let item_scope = jsonata::Scope {
                                context: &c,
                                ..self.js_scope(input, ctx, &format!("{key}[{i}]"), at)
                            };
                            inputs.push(sel.evaluate(&item_scope)?);
                        }
                        None => inputs.push(item),
                    }
                }
                if let Some(b) = &map.item_batcher {
                    let max_items = match &b.max_items {
                        Some(c) => Some(count(c, input, ctx, Some(&scope), "MaxItemsPerBatch")?),
                        None => None,
                    };
                    let max_bytes = match &b.max_bytes {
                        Some(c) => {
                            Some(count(c, input, ctx, Some(&scope), "MaxInputBytesPerBatch")?)
                        }
                        None => None,
                    };
                    let batch_input = match &b.batch_input_jsonata {
                        Some(t) => Some(t.evaluate(&scope)?),
                        None => None,
                    };
                    inputs = batches(inputs, max_items, max_bytes, batch_input, &st.name)?;
                }
                Ok(FanPlan {
                    effective: input.clone(),
                    inputs,
                    limit,
                    tolerance,
                })
            }
            _ => Err(runtime("not a Parallel or Map state")),
        }
    }

    fn start_fan(
        &mut self,
        m: &Machine,
        at: Millis,
        fx: &mut Vec<Effect>,
        key: &str,
        plan: FanPlan,
    ) {
        let Some(slot) = self.slots.get_mut(key) else {
            return;
        };
        let FanPlan {
            inputs,
            limit,
            tolerance,
            ..
        } = plan;
        let n = inputs.len();
        slot.phase = Phase::Fanout;
        slot.fan = Some(Fan {
            limit,
            tolerance,
            inputs,
            threads: vec![None; n],
            results: vec![None; n],
            started: 0,
            running: 0,
            failures: 0,
            resume: Vec::new(),
            map_run: None,
        });
        let (t, s) = (slot.thread, slot.state);
        let st = self.state(m, t, s);
        self.fan_started(at, key, st);
        if let Kind::Map(map) = &st.kind {
            if let Some(d) = &map.distributed {
                let label = map.label.as_deref().unwrap_or(&st.name);
                let names = (st.name.as_str(), label, d.execution_type.as_str());
                let within = self.child_of(t);
                let r = self.open_map_run(at, names, n, limit, tolerance, within);
                if let Some(fan) = self.slots.get_mut(key).and_then(|s| s.fan.as_mut()) {
                    fan.map_run = Some(r);
                }
            }
        }
        self.fill_fan(m, at, fx, key);
    }

    /// Records the start of the fan-out of slot `key` (state `st`).
    fn fan_started(&mut self, at: Millis, key: &str, st: &State) {
        let n = self
            .slots
            .get(key)
            .and_then(|s| s.fan.as_ref())
            .map_or(0, |f| f.inputs.len());
        let child = self.step_child(key);
        if self.traced(child) {
            let name = st.name.clone();
            let kind = match st.kind {
                Kind::Map(_) => TraceKind::MapStateStarted { name, length: n },
                _ => TraceKind::ParallelStateStarted { name },
            };
            self.record(at, child, kind);
        }
    }

    /// Starts branches or items up to the concurrency limit, then finishes
    /// the state if all are done.
    fn fill_fan(&mut self, m: &Machine, at: Millis, fx: &mut Vec<Effect>, key: &str) {
        // A branch that ends at once reports back through `thread_done`,
        // which would call this again: the loop below is already running,
        // so it only records the result (recursion as deep as a Map has
        // items would overflow the stack).
        if self.filling.iter().any(|k| k == key) {
            return;
        }
        self.filling.push(key.to_string());
        self.fill_fan_loop(m, at, fx, key);
        self.filling.retain(|k| k != key);
    }

    fn fill_fan_loop(&mut self, m: &Machine, at: Millis, fx: &mut Vec<Effect>, key: &str) {
        loop {
            let Some(slot) = self.slots.get(key) else {
                return;
            };
            if slot.phase != Phase::Fanout {
                return; // failed meanwhile: retried or caught
            }
            let (t, s, attempt) = (slot.thread, slot.state, slot.attempt);
            let Some(fan) = &slot.fan else { return };
            let st = self.state(m, t, s);
            let limit = match fan.limit {
                0 => usize::MAX,
                n => n,
            };
            // After a redrive, the branches or items that succeeded are
            // done already: skip them.
            let mut next = fan.started;
            while fan.results.get(next).is_some_and(Option::is_some) {
                next += 1;
            }
            let next = (next < fan.threads.len()).then_some(next);
            match next {
                Some(i) if fan.running < limit => {
                    // Copied, not moved: a redrive restarts an item that
                    // failed in a Fail state from this input.
                    let input = fan.inputs[i].clone();
                    let map_run = fan.map_run;
                    let scope_b = if matches!(st.kind, Kind::Map(_)) {
                        0
                    } else {
                        i
                    };
                    let mut scope = self.threads[t].scope.clone();
                    scope.push((s, scope_b));
                    let prefix = if attempt == 1 {
                        format!("{key}[{i}]/")
                    } else {
                        format!("{key}@{attempt}[{i}]/")
                    };
                    let child = self.threads.len();
                    let vars = self.threads[t].vars.clone();
                    // A distributed Map's item is a child execution of its
                    // own; anything else runs in its parent thread's.
                    let label = map_run.map(|r| (r, i)).or(self.child_of(t));
                    self.threads.push(Thread {
                        scope,
                        prefix,
                        parent: Some((key.to_string(), i)),
                        visits: BTreeMap::new(),
                        live: true,
                        vars,
                        stopped: None,
                        child: label,
                    });
                    if let Some(fan) = self.slots.get_mut(key).and_then(|s| s.fan.as_mut()) {
                        fan.threads[i] = Some(child);
                        fan.started = i + 1;
                        fan.running += 1;
                    }
                    if let Some(r) = map_run {
                        self.map_item(r, i, ItemChange::Started(input.clone()), at);
                    } else if matches!(st.kind, Kind::Map(_)) && self.traced(self.child_of(t)) {
                        self.record(
                            at,
                            self.child_of(t),
                            TraceKind::MapIterationStarted {
                                name: st.name.clone(),
                                index: i,
                            },
                        );
                    }
                    let resume = self
                        .slots
                        .get_mut(key)
                        .and_then(|s| s.fan.as_mut())
                        .and_then(|f| f.resume.get_mut(i))
                        .and_then(Option::take);
                    match resume {
                        Some(r) => self.resume(m, at, fx, child, r),
                        None => {
                            let start = graph(m, &self.threads[child].scope).start_at;
                            self.enter(m, at, fx, child, start, input);
                        }
                    }
                }
                Some(_) => return,
                None => {
                    if fan.running > 0 || fan.results.iter().any(Option::is_none) {
                        return;
                    }
                    let map_run = fan.map_run;
                    if writer_of(st).is_some() {
                        // The results go to the writer first (see io.rs).
                        if let Some(slot) = self.slots.get_mut(key) {
                            slot.phase = Phase::Ready;
                            slot.io = Some(IoCall::Writer);
                        }
                        self.pending.push_back(Pending::Schedule(key.to_string()));
                        return;
                    }
                    // The results move into the state's result: `complete`
                    // ends the slot (or, if the state then fails, a retry
                    // starts a new fan and a redrive runs them all again),
                    // so nothing reads them again.
                    let results: Vec<Value> = self
                        .slots
                        .get_mut(key)
                        .and_then(|s| s.fan.as_mut())
                        .map(|f| std::mem::take(&mut f.results))
                        .unwrap_or_default()
                        .into_iter()
                        .map(|r| r.unwrap_or(Value::Null))
                        .collect();
                    // A `WriterConfig` without a `Resource` shapes them.
                    let results = match result_writer(st) {
                        Some(w) => self.shaped_results(results, map_run, w.transformation),
                        None => results,
                    };
                    if let Some(r) = map_run {
                        self.close_map_run(r, at, MapRunStatus::Succeeded, None);
                    }
                    if self.traced(self.child_of(t)) {
                        let name = st.name.clone();
                        let kind = match st.kind {
                            Kind::Map(_) => TraceKind::MapStateSucceeded { name },
                            _ => TraceKind::ParallelStateSucceeded { name },
                        };
                        self.record(at, self.child_of(t), kind);
                    }
                    return self.complete(m, at, fx, key, Value::Array(results));
                }
            }
        }
    }

    /// A thread reached its end (`Ok(output)`) or failed.
    fn thread_done(
        &mut self,
        m: &Machine,
        at: Millis,
        fx: &mut Vec<Effect>,
        t: usize,
        result: Result<Value, ErrorInfo>,
    ) {
        self.threads[t].live = false;
        self.end_vars(t);
        let Some((key, i)) = self.threads[t].parent.clone() else {
            let (status, output, error) = match result {
                Ok(out) => (Status::Succeeded, Some(out), None),
                Err(e) => (Status::Failed, None, Some(e)),
            };
            self.pending.push_back(Pending::Finish {
                status,
                output,
                error,
            });
            return;
        };
        let Some(slot) = self.slots.get(&key) else {
            return;
        };
        let st = self.state(m, slot.thread, slot.state);
        let owner = self.child_of(slot.thread);
        let name = st.name.clone();
        let is_map = matches!(st.kind, Kind::Map(_));
        let Some(fan) = self.slots.get_mut(&key).and_then(|s| s.fan.as_mut()) else {
            return;
        };
        let tolerance = is_map.then_some(fan.tolerance);
        let map_run = fan.map_run;
        fan.running = fan.running.saturating_sub(1);
        match result {
            Ok(out) => {
                // A child execution keeps its output (DescribeExecution).
                let kept = map_run.is_some().then(|| out.clone());
                fan.results[i] = Some(out);
                if let (Some(r), Some(out)) = (map_run, kept) {
                    self.map_item(r, i, ItemChange::Succeeded(out), at);
                } else if is_map && self.traced(owner) {
                    let kind = TraceKind::MapIterationSucceeded { name, index: i };
                    self.record(at, owner, kind);
                }
                self.fill_fan(m, at, fx, &key);
            }
            Err(error) => {
                fan.failures += 1;
                let total = fan.results.len();
                let tolerated = tolerance.is_some_and(|t| tolerates(t, fan.failures as u64, total));
                if tolerated {
                    fan.results[i] = Some(json!({ "Error": error.error, "Cause": error.cause }));
                }
                if let Some(r) = map_run {
                    self.map_item(r, i, ItemChange::Failed(error.clone()), at);
                } else if is_map && self.traced(owner) {
                    self.record(
                        at,
                        owner,
                        TraceKind::MapIterationFailed {
                            name: name.clone(),
                            index: i,
                        },
                    );
                }
                if tolerated {
                    self.fill_fan(m, at, fx, &key);
                } else {
                    let error = if tolerance.is_some_and(|(c, p)| c.is_some() || p.is_some()) {
                        ErrorInfo::new(
                            EXCEED_TOLERATED,
                            format!(
                                "`{name}`: too many iterations failed; the last: {}: {}",
                                error.error, error.cause
                            ),
                        )
                    } else {
                        error
                    };
                    if let Some(r) = map_run {
                        self.close_map_run(r, at, MapRunStatus::Failed, Some(&error));
                    }
                    if self.traced(owner) {
                        let kind = if is_map {
                            TraceKind::MapStateFailed {
                                name,
                                error: error.clone(),
                            }
                        } else {
                            TraceKind::ParallelStateFailed {
                                name,
                                error: error.clone(),
                            }
                        };
                        self.record(at, owner, kind);
                    }
                    self.abort_children(at, &key);
                    self.failed(m, at, fx, &key, error);
                }
            }
        }
    }

    /// Stops every branch of a fan-out slot (and their own fan-outs):
    /// their tasks' late answers will find no slot and be ignored.
    fn abort_children(&mut self, at: Millis, key: &str) {
        let children: Vec<usize> = match self.slots.get(key).and_then(|s| s.fan.as_ref()) {
            Some(f) => f.threads.iter().flatten().copied().collect(),
            None => return,
        };
        for c in children {
            self.abort_thread(at, c);
        }
    }

    fn abort_thread(&mut self, at: Millis, t: usize) {
        if !self.threads[t].live {
            return;
        }
        self.threads[t].live = false;
        // A thread's slot keys start with its prefix: look only there (a
        // scan of every slot per aborted iteration would be O(N²)).
        let prefix = self.threads[t].prefix.clone();
        let keys: Vec<String> = self
            .slots
            .range::<str, _>((
                std::ops::Bound::Included(prefix.as_str()),
                std::ops::Bound::Unbounded,
            ))
            .take_while(|(k, _)| k.starts_with(&prefix))
            .filter(|(_, s)| s.thread == t)
            .map(|(k, _)| k.clone())
            .collect();
        for k in keys {
            self.abort_children(at, &k);
            // The state it was in is where a redrive continues it.
            if let Some(slot) = self.slots.remove(&k) {
                let fan = slot.fan.map(|f| (f, slot.effective));
                self.stop_at(t, slot.state, slot.raw, fan);
            }
            self.pending
                .retain(|p| !matches!(p, Pending::Schedule(x) | Pending::Retry(x) if *x == k));
        }
        self.end_vars(t);
    }

    /// A state that waited finished with `result`: ResultSelector,
    /// ResultPath, OutputPath, then on to Next (or the thread's end).
    fn complete(
        &mut self,
        m: &Machine,
        at: Millis,
        fx: &mut Vec<Effect>,
        key: &str,
        result: Value,
    ) {
        let Some(slot) = self.slots.remove(key) else {
            return;
        };
        let st = self.state(m, slot.thread, slot.state);
        let retries = (!matches!(st.kind, Kind::Wait(_))).then_some(slot.attempt - 1);
        let ctx = self.context(&st.name, slot.entered_at, retries, None);
        let vars = self.threads[slot.thread].vars.clone();
        let ctx = Env::new(&ctx, &vars);
        let jsonata_out = st.jsonata.as_ref().map(|js| {
            // `Output` and `Assign` see `$states.result` (a Wait has none:
            // its output defaults to its input), both with the variables
            // from before the state.
            let is_wait = matches!(st.kind, Kind::Wait(_));
            let scope = jsonata::Scope {
                result: (!is_wait).then_some(&result),
                ..self.js_scope(
                    &slot.raw,
                    ctx,
                    &format!("{key}#{}", slot.attempt),
                    slot.entered_at,
                )
            };
            (|| {
                let a = assigned(st.assign.as_ref(), &result, ctx, ("", ""), Some(&scope))?;
                let default = if is_wait {
                    slot.raw.clone()
                } else {
                    result.clone()
                };
                Ok((js_output(js, &scope, default)?, a))
            })()
        });
        let out = jsonata_out.unwrap_or_else(|| {
            let selected = match &st.result_selector {
                Some(sel) => data::render(sel, &result, ctx, &mut seeded(key))?,
                None => result,
            };
            // Assign reads the result after ResultSelector (a Wait's: its
            // input), before ResultPath and OutputPath.
            let over = match st.kind {
                Kind::Wait(_) => &slot.raw,
                _ => &selected,
            };
            let a = assigned(st.assign.as_ref(), over, ctx, (key, "@assign"), None)?;
            let placed = match st.kind {
                // A Wait has no ResultPath: its output is its effective input.
                Kind::Wait(_) => selected,
                _ => data::place_into(&st.result_path, &slot.raw, selected)?,
            };
            Ok((data::filter_owned(&st.output_path, placed, ctx)?, a))
        });
        match out {
            Ok((out, a)) => {
                self.set_vars(slot.thread, &a);
                self.exited(at, slot.thread, st, &out, a.as_ref());
                match st.next {
                    Some(n) => self.enter(m, at, fx, slot.thread, n, out),
                    None => self.thread_done(m, at, fx, slot.thread, Ok(out)),
                }
            }
            Err(e) => {
                let e = in_state(e, &st.name, slot.entered_event);
                // Put it back so `failed` sees the state (its Catch may handle it).
                self.slots.insert(key.to_string(), slot);
                self.failed(m, at, fx, key, e);
            }
        }
    }

    /// The state of `key` failed with `error`: Retry, else Catch, else the thread fails.
    fn failed(
        &mut self,
        m: &Machine,
        at: Millis,
        fx: &mut Vec<Effect>,
        key: &str,
        error: ErrorInfo,
    ) {
        let Some(slot) = self.slots.get_mut(key) else {
            return;
        };
        let (t, s) = (slot.thread, slot.state);
        let st = graph(m, &self.threads[t].scope).states.get(s);
        let Some(st) = st else { return };
        self.evaluation_failed(at, t, &st.name, &error);
        let Some(slot) = self.slots.get_mut(key) else {
            return;
        };
        // A reader's or writer's failure goes to the Catch: a Retry of the
        // Map would restart its items, not the call.
        let retriable = slot.io.take().is_none();
        if let Some(r) = st
            .retry
            .iter()
            .position(|r| error_matches(&r.error_equals, &error.error))
            .filter(|_| retriable)
        {
            let rt = &st.retry[r];
            let used = slot.retries.get(r).copied().unwrap_or(0);
            if used < rt.max_attempts {
                let mut delay =
                    rt.interval_seconds as f64 * 1000.0 * rt.backoff_rate.powi(used as i32);
                if let Some(max) = rt.max_delay_seconds {
                    delay = delay.min(max as f64 * 1000.0);
                }
                if let Some(u) = slot.retries.get_mut(r) {
                    *u += 1;
                }
                slot.attempt += 1;
                slot.phase = Phase::RetryDue {
                    delay_ms: delay.min(1e15) as u64,
                    jitter: rt.jitter_full,
                };
                self.pending.push_back(Pending::Retry(key.to_string()));
                return;
            }
        }
        let Some(slot) = self.slots.remove(key) else {
            return;
        };
        let st = self.state(m, t, s);
        let retries = (!matches!(st.kind, Kind::Wait(_))).then_some(slot.attempt - 1);
        let ctx = self.context(&st.name, slot.entered_at, retries, None);
        let vars = self.threads[t].vars.clone();
        let caught = self.catch(
            m,
            t,
            s,
            &slot.raw,
            &error,
            Env::new(&ctx, &vars),
            key,
            slot.entered_at,
        );
        match caught {
            Some(Ok((next, out, a))) => {
                self.set_vars(t, &a);
                self.exited(at, t, st, &out, a.as_ref());
                self.enter(m, at, fx, t, next, out)
            }
            Some(Err(e)) => {
                let e = in_state(e, &st.name, slot.entered_event);
                self.thread_done(m, at, fx, t, Err(e))
            }
            None => {
                let fan = slot.fan.map(|f| (f, slot.effective));
                self.stop_at(t, s, slot.raw, fan);
                self.thread_done(m, at, fx, t, Err(error))
            }
        }
    }
}

/// What a task's callback token names: used to check a SendTask* request.
pub(crate) fn callback_slot<'r>(run: &'r Run, step: &str) -> Option<(u32, Option<&'r str>, bool)> {
    let slot = run.slots.get(step)?;
    match &slot.phase {
        Phase::Running { nonce, .. } => Some((slot.attempt, nonce.as_deref(), true)),
        _ => Some((slot.attempt, None, false)),
    }
}

impl Run {
    /// Folds one event in. Checks come first: an illegal event changes nothing.
    pub(crate) fn apply(
        &mut self,
        m: &Machine,
        event: &Event,
        fx: &mut Vec<Effect>,
    ) -> Result<(), Error> {
        let at = event.at;
        let kind = &event.kind;
        if !self.map_runs.is_empty()
            && kind
                .step()
                .is_some_and(|step| self.step_child(step).is_some())
        {
            self.child_events += 1;
        }
        match kind {
            EventKind::DurableOperation { .. } | EventKind::DurableInvocation { .. } => {
                return Err(crate::envelope::illegal(kind, "not a durable execution"));
            }
            EventKind::ExecutionStarted {
                execution_id,
                definition,
                input,
                keys,
                ..
            } => {
                if !self.threads.is_empty() {
                    return Err(illegal(kind, "already started"));
                }
                self.head = Head {
                    uses_context: m.uses_context,
                    keys: *keys,
                    id: execution_id.clone(),
                    name: definition.clone(),
                    input: input.clone(),
                    started_at: at,
                };
                if self.traced(None) {
                    self.record(
                        at,
                        None,
                        TraceKind::ExecutionStarted {
                            input: input.clone(),
                        },
                    );
                }
                self.threads.push(Thread {
                    scope: Vec::new(),
                    prefix: String::new(),
                    parent: None,
                    visits: BTreeMap::new(),
                    live: true,
                    vars: SharedVars::default(),
                    stopped: None,
                    child: None,
                });
                self.enter(m, at, fx, 0, m.graph.start_at, input.clone());
            }
            EventKind::StepScheduled {
                step,
                attempt,
                deadline,
                nonce,
            } => {
                let slot = self
                    .slots
                    .get_mut(step)
                    .ok_or_else(|| illegal(kind, "no such state waiting"))?;
                let ok = slot.attempt == *attempt
                    && matches!(slot.phase, Phase::Ready | Phase::RetryWaiting { .. });
                let io = slot.io;
                if !ok || (slot.fan.is_some() && io.is_none()) {
                    return Err(illegal(
                        kind,
                        format!("{:?} attempt {}", slot.phase, slot.attempt),
                    ));
                }
                slot.phase = Phase::Running {
                    deadline: *deadline,
                    nonce: nonce.clone(),
                    parked: false,
                };
                self.consume(|p| matches!(p, Pending::Schedule(k) if k == step));
                fx.push(Effect::Invoke {
                    step: step.clone(),
                    task: TaskKind::Action,
                    attempt: *attempt,
                    deadline: *deadline,
                });
                // TaskScheduled and TaskStarted (a Map's reader or writer
                // call has no Task events, as in AWS's history).
                if io.is_some() {
                    return Ok(());
                }
                let child = self.step_child(step);
                self.traced(child);
                if self.traced(child) {
                    let (resource, name) = self.resource_of(m, step);
                    let parameters = self.task_parameters(m, step);
                    let child = self.step_child(step);
                    self.record(
                        at,
                        child,
                        TraceKind::TaskScheduled {
                            name: name.clone(),
                            resource: resource.clone(),
                            parameters,
                        },
                    );
                    self.record(at, child, TraceKind::TaskStarted { name, resource });
                }
            }
            EventKind::TaskParked { step, attempt, .. } => {
                let slot = self
                    .slots
                    .get_mut(step)
                    .ok_or_else(|| illegal(kind, "no such state waiting"))?;
                match &mut slot.phase {
                    Phase::Running {
                        parked, deadline, ..
                    } if slot.attempt == *attempt && !*parked => {
                        *parked = true;
                        fx.push(Effect::StartTimer {
                            step: step.clone(),
                            task: TaskKind::Action,
                            attempt: *attempt,
                            fire_at: *deadline,
                        });
                    }
                    other => return Err(illegal(kind, format!("{other:?}"))),
                }
                // An activity's task is queued for a worker: AWS's history
                // has ActivityScheduled and ActivityStarted, no TaskSubmitted.
                let (resource, name) = self.resource_of(m, step);
                if crate::exchange::activity_name(&resource).is_none()
                    && self.traced(self.step_child(step))
                {
                    self.record(
                        at,
                        self.step_child(step),
                        TraceKind::TaskSubmitted { name, resource },
                    );
                }
            }
            EventKind::StepSucceeded {
                step,
                attempt,
                output,
            } => {
                let slot = self
                    .slots
                    .get(step)
                    .ok_or_else(|| illegal(kind, "no such state waiting"))?;
                if slot.attempt != *attempt || !matches!(slot.phase, Phase::Running { .. }) {
                    return Err(illegal(
                        kind,
                        format!("{:?} attempt {}", slot.phase, slot.attempt),
                    ));
                }
                if let Some(call) = slot.io {
                    self.io_answered(m, at, fx, step, call, output.clone());
                    return Ok(());
                }
                let st = self.state(m, slot.thread, slot.state);
                let result = match &st.kind {
                    Kind::Task(task)
                        if matches!(task.integration, Integration::LambdaInvoke)
                            && !task.wait_for_token =>
                    {
                        json!({
                            "ExecutedVersion": "$LATEST",
                            "Payload": output,
                            "StatusCode": 200,
                            "SdkHttpMetadata": { "HttpStatusCode": 200 },
                        })
                    }
                    _ => output.clone(),
                };
                if self.traced(self.step_child(step)) {
                    let (resource, name) = self.resource_of(m, step);
                    self.record(
                        at,
                        self.step_child(step),
                        TraceKind::TaskSucceeded {
                            name,
                            resource,
                            // What the integration returned: for
                            // `lambda:invoke`, the wrapped answer.
                            output: result.clone(),
                        },
                    );
                }
                self.complete(m, at, fx, step, result);
            }
            EventKind::StepFailed {
                step,
                attempt,
                error,
            } => {
                let slot = self
                    .slots
                    .get(step)
                    .ok_or_else(|| illegal(kind, "no such state waiting"))?;
                if slot.attempt != *attempt || !matches!(slot.phase, Phase::Running { .. }) {
                    return Err(illegal(
                        kind,
                        format!("{:?} attempt {}", slot.phase, slot.attempt),
                    ));
                }
                if let Some(call) = slot.io {
                    let error = call.failure(error);
                    // The writer's failure fails the map run it wrote for.
                    if let Some(r) = slot.fan.as_ref().and_then(|f| f.map_run) {
                        self.close_map_run(r, at, MapRunStatus::Failed, Some(&error));
                    }
                    self.failed(m, at, fx, step, error);
                    return Ok(());
                }
                if self.traced(self.step_child(step)) {
                    let (resource, name) = self.resource_of(m, step);
                    let kind = if error.error == TIMEOUT || error.error == HEARTBEAT_TIMEOUT {
                        TraceKind::TaskTimedOut {
                            name,
                            resource,
                            error: error.clone(),
                        }
                    } else {
                        TraceKind::TaskFailed {
                            name,
                            resource,
                            error: error.clone(),
                        }
                    };
                    self.record(at, self.step_child(step), kind);
                }
                self.failed(m, at, fx, step, error.clone());
            }
            EventKind::RetryScheduled {
                step,
                attempt,
                fire_at,
                ..
            } => {
                let slot = self
                    .slots
                    .get_mut(step)
                    .ok_or_else(|| illegal(kind, "no such state waiting"))?;
                if slot.attempt != *attempt || !matches!(slot.phase, Phase::RetryDue { .. }) {
                    return Err(illegal(
                        kind,
                        format!("{:?} attempt {}", slot.phase, slot.attempt),
                    ));
                }
                slot.phase = Phase::RetryWaiting { fire_at: *fire_at };
                self.consume(|p| matches!(p, Pending::Retry(k) if k == step));
                fx.push(Effect::StartTimer {
                    step: step.clone(),
                    task: TaskKind::Action,
                    attempt: *attempt,
                    fire_at: *fire_at,
                });
            }
            EventKind::TimerFired { step, attempt } => {
                let slot = self
                    .slots
                    .get(step)
                    .ok_or_else(|| illegal(kind, "no such state waiting"))?;
                if slot.attempt != *attempt {
                    return Err(illegal(kind, format!("attempt {}", slot.attempt)));
                }
                match slot.phase {
                    Phase::Waiting { .. } => {
                        let eff = slot.effective.clone();
                        self.complete(m, at, fx, step, eff);
                    }
                    Phase::RetryWaiting { .. } if self.is_fan(m, step) => {
                        let st = self.state(m, slot.thread, slot.state);
                        let ctx = self.context(&st.name, at, Some(slot.attempt - 1), None);
                        let vars = self.threads[slot.thread].vars.clone();
                        let ctx = Env::new(&ctx, &vars);
                        let raw = slot.raw.clone();
                        let seed = format!("{step}#{}", slot.attempt);
                        match self.fan_inputs(st, &raw, ctx, &seed, at, None) {
                            Ok(plan) => self.start_fan(m, at, fx, step, plan),
                            Err(e) => {
                                let e = in_state(e, &st.name, slot.entered_event);
                                self.failed(m, at, fx, step, e)
                            }
                        }
                    }
                    ref other => return Err(illegal(kind, format!("{other:?}"))),
                }
            }
            EventKind::CancelRequested { .. } => self.abort_all(at),
            EventKind::ExecutionTimedOut {} => self.abort_all(at),
            EventKind::MapRunUpdated { update } => {
                let Some(key) = self.update_map_run(update) else {
                    return Err(illegal(kind, "no such map run running"));
                };
                // A higher limit may start more items at once.
                self.fill_fan(m, at, fx, &key);
            }
            EventKind::ExecutionRedriven {} => {
                if !self.redrive(m, at, fx) {
                    return Err(illegal(kind, "nothing to redrive"));
                }
            }
            EventKind::ExecutionFinished {
                status,
                error,
                output,
            } => {
                self.pending
                    .retain(|p| !matches!(p, Pending::Finish { .. }));
                self.abort_all(at);
                if !self.traced(None) {
                    return Ok(());
                }
                let kind = match status {
                    Status::Succeeded => TraceKind::ExecutionSucceeded {
                        output: output.clone().unwrap_or(Value::Null),
                    },
                    Status::Cancelled => TraceKind::ExecutionAborted {
                        reason: error.as_ref().map(|e| e.cause.clone()).unwrap_or_default(),
                    },
                    Status::TimedOut => TraceKind::ExecutionTimedOut {
                        error: error.clone().unwrap_or_else(|| ErrorInfo::new(TIMEOUT, "")),
                    },
                    _ => TraceKind::ExecutionFailed {
                        error: error.clone().unwrap_or_else(|| ErrorInfo::new(FAIL, "")),
                    },
                };
                self.record(at, None, kind);
            }
            EventKind::RollbackStarted { .. }
            | EventKind::CompensationScheduled { .. }
            | EventKind::CompensationSucceeded { .. }
            | EventKind::CompensationFailed { .. } => {
                return Err(illegal(kind, "not an event of an ASL execution"))
            }
        }
        Ok(())
    }

    fn is_fan(&self, m: &Machine, step: &str) -> bool {
        self.slots.get(step).is_some_and(|s| {
            matches!(
                self.state(m, s.thread, s.state).kind,
                Kind::Parallel { .. } | Kind::Map(_)
            )
        })
    }

    fn abort_all(&mut self, at: Millis) {
        self.abort_map_runs(at);
        let live: Vec<usize> = (0..self.threads.len())
            .filter(|&t| self.threads[t].live)
            .collect();
        for t in live.into_iter().rev() {
            self.abort_thread(at, t);
        }
        self.slots.clear();
        self.pending.retain(|p| matches!(p, Pending::Finish { .. }));
    }

    /// The Task resource and state name of a slot, for the history view.
    fn resource_of(&self, m: &Machine, step: &str) -> (String, String) {
        match self.slots.get(step) {
            Some(slot) => {
                let st = self.state(m, slot.thread, slot.state);
                let resource = match &st.kind {
                    Kind::Task(t) => t.resource.clone(),
                    _ => String::new(),
                };
                (resource, st.name.clone())
            }
            None => (String::new(), step.to_string()),
        }
    }

    /// What the decider must record next.
    pub(crate) fn next_todo(&self, m: &Machine) -> Option<Todo> {
        self.pending.iter().find_map(|p| self.todo_of(m, p))
    }

    fn todo_of(&self, m: &Machine, p: &Pending) -> Option<Todo> {
        Some(match p {
            Pending::Schedule(key) => {
                let slot = self.slots.get(key)?;
                let (timeout_ms, callback) = self.schedule_spec(m, key)?;
                Todo::Schedule {
                    step: key.clone(),
                    attempt: slot.attempt,
                    timeout_ms,
                    callback,
                }
            }
            Pending::Retry(key) => {
                let slot = self.slots.get(key)?;
                let Phase::RetryDue { delay_ms, jitter } = slot.phase else {
                    return None;
                };
                Todo::Retry {
                    step: key.clone(),
                    attempt: slot.attempt,
                    delay_ms,
                    jitter,
                }
            }
            Pending::Finish {
                status,
                output,
                error,
            } => Todo::Finish {
                status: *status,
                output: output.clone(),
                error: error.clone(),
            },
        })
    }

    /// The attempt timeout of a Task slot and whether it takes a callback.
    pub(crate) fn schedule_spec(&self, m: &Machine, key: &str) -> Option<(u64, bool)> {
        let slot = self.slots.get(key)?;
        if slot.io.is_some() {
            return Some((DEFAULT_TASK_TIMEOUT_S * 1000, false));
        }
        let st = self.state(m, slot.thread, slot.state);
        let Kind::Task(task) = &st.kind else {
            return None;
        };
        let ctx = self.context(&st.name, slot.entered_at, Some(slot.attempt - 1), None);
        let vars = self.threads[slot.thread].vars.clone();
        let ctx = Env::new(&ctx, &vars);
        let default = if task.wait_for_token {
            DEFAULT_TOKEN_TIMEOUT_S
        } else {
            DEFAULT_TASK_TIMEOUT_S
        };
        // A bad TimeoutSecondsPath falls back to the default rather than
        // failing the schedule; the request itself reports path errors.
        let timeout = task
            .timeout
            .as_ref()
            .and_then(|t| {
                self.task_seconds(t, key, slot, ctx, "TimeoutSecondsPath")
                    .ok()
            })
            .unwrap_or(default);
        Some((timeout.saturating_mul(1000), task.wait_for_token))
    }

    /// Whether `step` runs attempt `attempt` (an answer for it is not stale).
    pub(crate) fn is_running(&self, step: &str, attempt: u32) -> bool {
        self.slots
            .get(step)
            .is_some_and(|s| s.attempt == attempt && matches!(s.phase, Phase::Running { .. }))
    }

    /// Whether `step` is parked on a callback.
    pub(crate) fn is_parked_task(&self, step: &str, attempt: u32) -> bool {
        self.slots.get(step).is_some_and(|s| {
            s.attempt == attempt && matches!(s.phase, Phase::Running { parked: true, .. })
        })
    }

    /// What a timer for `step` means now.
    pub(crate) fn timer(&self, m: &Machine, step: &str, attempt: u32, now: Millis) -> TimerMeaning {
        let Some(slot) = self.slots.get(step) else {
            return TimerMeaning::Stale;
        };
        if slot.attempt != attempt {
            return TimerMeaning::Stale;
        }
        match slot.phase {
            Phase::Waiting { .. } => TimerMeaning::Fire,
            Phase::RetryWaiting { .. } if self.is_fan(m, step) => TimerMeaning::Fire,
            Phase::RetryWaiting { .. } => TimerMeaning::Reschedule,
            Phase::Running { deadline, .. } if now >= deadline => TimerMeaning::Deadline,
            _ => TimerMeaning::Stale,
        }
    }

    /// Effects in flight after a replay (the envelope adds the deadline).
    pub(crate) fn outstanding(&self) -> Vec<Effect> {
        let mut out = Vec::new();
        for (key, slot) in &self.slots {
            let step = key.clone();
            let attempt = slot.attempt;
            match &slot.phase {
                Phase::Running {
                    deadline,
                    parked: true,
                    ..
                } => out.push(Effect::StartTimer {
                    step,
                    task: TaskKind::Action,
                    attempt,
                    fire_at: *deadline,
                }),
                Phase::Running { deadline, .. } => out.push(Effect::Invoke {
                    step,
                    task: TaskKind::Action,
                    attempt,
                    deadline: *deadline,
                }),
                Phase::RetryWaiting { fire_at } | Phase::Waiting { fire_at } => {
                    out.push(Effect::StartTimer {
                        step,
                        task: TaskKind::Action,
                        attempt,
                        fire_at: *fire_at,
                    })
                }
                _ => {}
            }
        }
        out
    }

    /// Whether the execution only waits for callbacks without heartbeats.
    pub(crate) fn is_parked(&self, m: &Machine) -> bool {
        if !self.pending.is_empty() {
            return false;
        }
        let mut waiting = false;
        for slot in self.slots.values() {
            match &slot.phase {
                Phase::Fanout => {}
                Phase::Running { parked: true, .. } => {
                    let st = self.state(m, slot.thread, slot.state);
                    if matches!(&st.kind, Kind::Task(t) if t.heartbeat.is_some()) {
                        return false;
                    }
                    waiting = true;
                }
                _ => return false,
            }
        }
        waiting
    }

    /// A Task's parameters as Step Functions shows them in `TaskScheduled`:
    /// the rendered Parameters (for `lambda:invoke`, `FunctionName` and
    /// `Payload`), or the effective input of a plain Lambda ARN.
    fn task_parameters(&self, m: &Machine, step: &str) -> Value {
        let Ok(req) = self.request(m, step) else {
            return Value::Null;
        };
        let Some(slot) = self.slots.get(step) else {
            return req.input;
        };
        match &self.state(m, slot.thread, slot.state).kind {
            Kind::Task(t) if matches!(t.integration, Integration::LambdaInvoke) => {
                let st = self.state(m, slot.thread, slot.state);
                let ctx = self.context(
                    &st.name,
                    slot.entered_at,
                    Some(slot.attempt - 1),
                    req.task_token.as_deref(),
                );
                let vars = self.threads[slot.thread].vars.clone();
                let ctx = Env::new(&ctx, &vars);
                self.request_body(st, slot, step, ctx)
                    .ok()
                    .flatten()
                    .unwrap_or(req.input)
            }
            _ => req.input,
        }
    }

    /// A Task's rendered request: its Parameters over the effective input,
    /// or a JSONata state's Arguments (evaluated here, at each attempt, with
    /// `$states.context.Task.Token`; an error is the attempt's failure, for
    /// Retry and Catch). `None` without either: the effective input is sent.
    fn request_body(
        &self,
        st: &State,
        slot: &Slot,
        step: &str,
        ctx: Env<'_>,
    ) -> Result<Option<Value>, ErrorInfo> {
        let seed = format!("{step}#{}", slot.attempt);
        if let Some(js) = &st.jsonata {
            let Some(t) = &js.arguments else {
                return Ok(None);
            };
            let scope = self.js_scope(&slot.raw, ctx, &seed, slot.entered_at);
            return t.evaluate(&scope).map(Some);
        }
        match &st.parameters {
            Some(p) => data::render(p, &slot.effective, ctx, &mut seeded(&seed)).map(Some),
            None => Ok(None),
        }
    }

    /// The participant call for the running attempt of `step`.
    pub(crate) fn request(&self, m: &Machine, step: &str) -> Result<Request, ErrorInfo> {
        let slot = self
            .slots
            .get(step)
            .ok_or_else(|| runtime(format!("no state `{step}` is waiting")))?;
        let Phase::Running {
            deadline, nonce, ..
        } = &slot.phase
        else {
            return Err(runtime(format!("`{step}` is not running")));
        };
        let st = self.state(m, slot.thread, slot.state);
        if let Some(call) = slot.io {
            let ctx = self.context(&st.name, slot.entered_at, Some(slot.attempt - 1), None);
            let vars = self.threads[slot.thread].vars.clone();
            return self
                .io_request(st, slot, step, call, Env::new(&ctx, &vars), *deadline)
                .map_err(|e| in_state(e, &st.name, slot.entered_event));
        }
        let Kind::Task(task) = &st.kind else {
            return Err(runtime(format!("`{step}` is not a Task")));
        };
        let token = match (task.wait_for_token, nonce) {
            (true, Some(n)) => Some(task_token(
                &self.head.id,
                step,
                TaskKind::Action,
                slot.attempt,
                n,
            )),
            _ => None,
        };
        let ctx = self.context(
            &st.name,
            slot.entered_at,
            Some(slot.attempt - 1),
            token.as_deref(),
        );
        let vars = self.threads[slot.thread].vars.clone();
        let ctx = Env::new(&ctx, &vars);
        let body = self
            .request_body(st, slot, step, ctx)
            .map_err(|e| in_state(e, &st.name, slot.entered_event))?
            .unwrap_or_else(|| slot.effective.clone());
        let (participant, input) = match &task.integration {
            Integration::Function { participant } => (participant.clone(), body),
            Integration::LambdaInvoke => {
                let name = body
                    .get("FunctionName")
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        runtime(format!("`{}`: Parameters need a FunctionName", st.name))
                    })?;
                let participant: Participant = m.resources.resolve(name).ok_or_else(|| {
                    ErrorInfo::new(
                        "Lambda.ResourceNotFoundException",
                        format!("no resource map entry matches the function `{name}`"),
                    )
                })?;
                let payload = body.get("Payload").cloned().unwrap_or(json!({}));
                (participant, payload)
            }
        };
        let heartbeat_ms = match &task.heartbeat {
            Some(h) => Some(
                self.task_seconds(h, step, slot, ctx, "HeartbeatSecondsPath")
                    .map_err(|e| in_state(e, &st.name, slot.entered_event))?
                    * 1000,
            ),
            None => None,
        };
        Ok(Request {
            execution_id: self.head.id.clone(),
            step: step.to_string(),
            task: TaskKind::Action,
            attempt: slot.attempt,
            participant,
            input,
            idempotency_key: idempotency_key(&self.head.id, step, TaskKind::Action),
            deadline: *deadline,
            task_token: token,
            heartbeat_ms: heartbeat_ms.filter(|_| task.wait_for_token),
        })
    }

    pub(crate) fn start_tracing(&mut self) {
        self.trace = Some(Vec::new());
    }

    pub(crate) fn take_trace(&mut self) -> Vec<Trace> {
        self.trace.take().unwrap_or_default()
    }
}

/// What a due timer means for a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimerMeaning {
    /// A Wait ended, or a Parallel/Map retry is due: record `timer_fired`.
    Fire,
    /// A Task retry is due: schedule the next attempt.
    Reschedule,
    /// A running attempt's deadline passed.
    Deadline,
    Stale,
}
