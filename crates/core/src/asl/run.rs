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

mod apply;
mod fan;
mod io;
mod map_run;
mod preview;
mod redrive;
mod requests;
mod states;
mod trace;
pub use io::{parse_items, ITEM_READER_FAILED, RESULT_WRITER_FAILED};
use io::{reader_of, result_writer, writer_of, IoCall};
pub(crate) use map_run::no_map_runs;
use map_run::ItemChange;
pub use map_run::{
    child_owner, map_run_owner, ItemRun, ItemStatus, MapRun, MapRunStatus, MapRunUpdate,
};
pub use preview::{preview_map, MapPreview};
use redrive::{Resume, Stopped};
pub use trace::{Child, Trace, TraceKind};

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
                Kind::Pass { result } => self.pass(st, result, &input, ctx, &key, at),
                Kind::Choice { choices, default } => self
                    .choose(st, choices, *default, &input, ctx, &key, at)
                    .map(|(next, out, a)| {
                        self.set_vars(t, &a);
                        self.exited(at, t, st, &out, a.as_ref());
                        s = next;
                        input = out;
                        None
                    }),
                Kind::Succeed => self.succeed(st, &input, ctx, &key, at),
                Kind::Fail(f) => {
                    let error = self.fail_error(st, f, &input, ctx, &key, at, entered);
                    // A Fail state ends its thread; its Catch-less failure
                    // is not redrivable by retrying it.
                    self.threads[t].stopped = Some(Stopped::Anew);
                    return self.thread_done(m, at, fx, t, Err(error));
                }
                Kind::Wait(w) => {
                    let fire_at = self.wait_until(st, w, &input, ctx, &key, at);
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
            let location = jsonata::failed_field(&error.cause).map(str::to_string);
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
