//! The compiled form of an Amazon States Language definition: a graph of
//! states per scope (the top level, each Parallel branch, each Map
//! processor), with names resolved to indices and every field validated.
//!
//! [`crate::asl::parse`] builds it; [`crate::asl::run`] interprets it. Fields
//! that only some state types allow (ResultPath on a Choice, say) are refused
//! by the parser and simply left at their defaults here, so the interpreter
//! can treat every state alike.

use serde::Serialize;
use serde_json::Value;

pub use crate::asl::jsonata::Template;
use crate::error_name as name;
use crate::exchange::Participant;

/// An `Assign` (of a state, a Catch entry or a Choice rule), in its state's
/// query language.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Assign {
    /// A JSONPath state's: a payload template (`"x.$": "$.a"`) over the
    /// state's result.
    Paths(Value),
    /// A JSONata state's: an object whose values may be `{% … %}`
    /// expressions, evaluated with `$states`.
    Jsonata(Template),
}

/// The fields of a JSONata state (`QueryLanguage: JSONata`, its own or the
/// machine's) that every type may have; the type-specific ones are in
/// [`Kind`]. A JSONata state has none of the JSONPath fields: its
/// `input_path`, `parameters`, `result_selector`, `result_path` and
/// `output_path` stay at their defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct Jsonata {
    /// `Arguments` (Task, Parallel): the task's request or each branch's
    /// input, over `$states.input`. Without it, the state input.
    pub arguments: Option<Template>,
    /// `Output`: the state's output, over `$states.input` and (Task,
    /// Parallel, Map) `$states.result`. Without it, the result (Task,
    /// Parallel, Map) or the input (the others).
    pub output: Option<Template>,
}

/// A whole state machine.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Machine {
    pub comment: Option<String>,
    pub graph: Graph,
    /// The machine's `TimeoutSeconds`: past it the execution ends `timed_out`.
    pub timeout_seconds: Option<u64>,
    /// How Task resources reach participants; kept for `lambda:invoke`,
    /// whose function is only known once its Parameters are rendered.
    pub resources: ResourceMap,
    /// Whether any path or template mentions the context object (`$$`):
    /// when none does, it is not built for every state entered.
    pub uses_context: bool,
    /// Most events an execution's stored history may hold: the decision
    /// that would store one more ends the execution `failed` with
    /// `States.Runtime` instead (AWS's quota; [`crate::asl::run::MAX_HISTORY_EVENTS`]
    /// unless the runtime is configured otherwise).
    pub max_history_events: u64,
}

/// One scope of states: the machine itself, a Parallel branch or a Map's
/// item processor. State names are unique within a graph.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Graph {
    /// Index into `states` of `StartAt`.
    pub start_at: usize,
    pub states: Vec<State>,
}

impl Graph {
    pub fn index(&self, name: &str) -> Option<usize> {
        self.states.iter().position(|s| s.name == name)
    }
}

/// A path field that may also be `null` (`InputPath: null` gives `{}`,
/// `ResultPath: null` discards the result, `OutputPath: null` gives `{}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PathField {
    /// A JSONPath (`$` when the field is absent).
    Path(String),
    /// The field was JSON `null`.
    Null,
}

impl Default for PathField {
    fn default() -> Self {
        PathField::Path("$".into())
    }
}

/// A number of seconds given literally or by a path into the state input.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Seconds {
    Fixed(u64),
    Path(String),
    /// A JSONata state's `TimeoutSeconds`/`HeartbeatSeconds` given by an
    /// expression over `$states.input` and the variables.
    Expression(Template),
}

/// One state with the fields shared by all types (defaults where a type
/// does not allow a field), then what its type adds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct State {
    pub name: String,
    pub comment: Option<String>,
    pub input_path: PathField,
    /// `Parameters` (Task, Pass, Parallel; Map's legacy spelling of `ItemSelector`
    /// lives in [`Map::item_selector`]). Keys ending in `.$` are paths or
    /// intrinsic function calls.
    pub parameters: Option<Value>,
    pub result_selector: Option<Value>,
    pub result_path: PathField,
    pub output_path: PathField,
    /// Index in the same graph of `Next`; `None` for `End: true` and for
    /// Choice, Succeed and Fail.
    pub next: Option<usize>,
    pub retry: Vec<Retrier>,
    pub catch: Vec<Catcher>,
    /// `Assign` (see [`crate::asl::vars`]); for a Choice, applied when
    /// `Default` is taken.
    pub assign: Option<Assign>,
    /// `Some` for a JSONata state: its `Arguments` and `Output`.
    pub jsonata: Option<Box<Jsonata>>,
    pub kind: Kind,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Kind {
    Task(Box<Task>),
    Pass {
        /// `Result`: the state's result instead of its (effective) input.
        result: Option<Value>,
    },
    Choice {
        choices: Vec<Branch>,
        /// Index of `Default`; without one, no match is `States.NoChoiceMatched`.
        default: Option<usize>,
    },
    Wait(Wait),
    Succeed,
    Fail(Box<Fail>),
    Parallel {
        branches: Vec<Graph>,
    },
    Map(Box<Map>),
}

impl Kind {
    /// The ASL `Type` name.
    pub fn type_name(&self) -> &'static str {
        match self {
            Kind::Task(_) => "Task",
            Kind::Pass { .. } => "Pass",
            Kind::Choice { .. } => "Choice",
            Kind::Wait(_) => "Wait",
            Kind::Succeed => "Succeed",
            Kind::Fail(_) => "Fail",
            Kind::Parallel { .. } => "Parallel",
            Kind::Map(_) => "Map",
        }
    }
}

/// How a Task's resource is called.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Integration {
    /// A Lambda function ARN (or any other mapped resource): the effective
    /// input is the request body, the answer is the result.
    Function { participant: Participant },
    /// `arn:aws:states:::lambda:invoke`: `FunctionName` and `Payload` come
    /// from the rendered Parameters; the result is
    /// `{"ExecutedVersion", "Payload", "StatusCode"}` as AWS returns it.
    LambdaInvoke,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Task {
    pub resource: String,
    pub integration: Integration,
    /// `.waitForTaskToken`: the call only hands out `$$.Task.Token`; the
    /// task completes through SendTaskSuccess / SendTaskFailure. Also set
    /// for an activity resource, whose worker answers the token.
    pub wait_for_token: bool,
    /// `TimeoutSeconds` / `TimeoutSecondsPath`; AWS's default is 99999999.
    pub timeout: Option<Seconds>,
    /// `HeartbeatSeconds` / `HeartbeatSecondsPath`.
    pub heartbeat: Option<Seconds>,
}

/// One `Choices` entry: a rule and where it leads.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Branch {
    pub rule: Rule,
    pub next: usize,
    /// The rule's `Assign`, applied (over the state input) when it matches.
    pub assign: Option<Assign>,
    /// A JSONata rule's `Output`: the state's output when it matches.
    pub output: Option<Template>,
}

/// A Choice rule.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    And(Vec<Rule>),
    Or(Vec<Rule>),
    Not(Box<Rule>),
    /// `Variable` compared by `op` with `operand`.
    Compare {
        variable: String,
        op: Comparison,
        operand: Operand,
    },
    /// A JSONata rule's `Condition`: an expression (or a literal) that
    /// must give a boolean.
    Condition(Template),
}

/// The comparison operators, without their `Path` suffix (that is
/// [`Operand::Path`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Comparison {
    StringEquals,
    StringLessThan,
    StringGreaterThan,
    StringLessThanEquals,
    StringGreaterThanEquals,
    StringMatches,
    NumericEquals,
    NumericLessThan,
    NumericGreaterThan,
    NumericLessThanEquals,
    NumericGreaterThanEquals,
    BooleanEquals,
    TimestampEquals,
    TimestampLessThan,
    TimestampGreaterThan,
    TimestampLessThanEquals,
    TimestampGreaterThanEquals,
    IsNull,
    IsPresent,
    IsNumeric,
    IsString,
    IsBoolean,
    IsTimestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Operand {
    /// A literal (a string, number or boolean; `true`/`false` for the `Is*` tests).
    Value(Value),
    /// The `…Path` variant: a path into the state input (or `$$`).
    Path(String),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Wait {
    Seconds(u64),
    /// RFC 3339, e.g. `2016-03-14T01:59:00Z`.
    Timestamp(String),
    SecondsPath(String),
    TimestampPath(String),
    /// A JSONata state's `Seconds` given by an expression.
    SecondsExpression(Template),
    /// A JSONata state's `Timestamp` given by an expression.
    TimestampExpression(Template),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Fail {
    pub error: Option<String>,
    pub cause: Option<String>,
    pub error_path: Option<String>,
    pub cause_path: Option<String>,
    /// A JSONata state's `Error` given by an expression.
    pub error_expression: Option<Template>,
    /// A JSONata state's `Cause` given by an expression.
    pub cause_expression: Option<Template>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Map {
    /// `ItemsPath` (default `$`): must select an array.
    pub items_path: String,
    /// `ItemSelector` (or legacy `Parameters`): each item's input, rendered
    /// with `$$.Map.Item.Index` and `$$.Map.Item.Value` in the context.
    pub item_selector: Option<Value>,
    /// `ItemProcessor` (or legacy `Iterator`).
    pub processor: Graph,
    /// 0 = no limit.
    pub max_concurrency: u32,
    pub tolerated_failure_count: Option<u64>,
    pub tolerated_failure_percentage: Option<f64>,
    /// A JSONata Map's `Items`: an array, or an expression giving one,
    /// over `$states.input` (without it, the input must be an array).
    pub items: Option<Template>,
    /// A JSONata Map's `ItemSelector`, with `$states.context.Map.Item`.
    pub item_selector_jsonata: Option<Template>,
    /// A JSONata Map's `MaxConcurrency` given by an expression.
    pub max_concurrency_expression: Option<Template>,
    /// `MaxConcurrencyPath`: a reference path to a non-negative integer,
    /// read from the effective input when the state starts.
    pub max_concurrency_path: Option<String>,
    /// `ToleratedFailureCountPath` / `ToleratedFailurePercentagePath`.
    pub tolerated_failure_count_path: Option<String>,
    pub tolerated_failure_percentage_path: Option<String>,
    /// A JSONata Map's `ToleratedFailureCount` / `…Percentage` given by an
    /// expression.
    pub tolerated_failure_count_expression: Option<Template>,
    pub tolerated_failure_percentage_expression: Option<Template>,
    /// `ItemBatcher`: items grouped into `{"Items": [...]}` per iteration.
    pub item_batcher: Option<ItemBatcher>,
    /// `Label`: names the map run of a distributed Map (AWS's rules).
    pub label: Option<String>,
    /// `ProcessorConfig.Mode: DISTRIBUTED`: the items run as the child
    /// executions of a map run (see `run::MapRun`); `None` for INLINE.
    pub distributed: Option<Distributed>,
}

/// A distributed Map's processor settings, and where its items come from
/// and its results go.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Distributed {
    /// `ExecutionType`: `STANDARD` (the default) or `EXPRESS`; recorded
    /// and shown, both run the same way here.
    pub execution_type: String,
    /// `ItemReader`: the items are read by a call to a participant.
    pub reader: Option<ItemReader>,
    /// `ResultWriter`: how the results are shaped, and the participant
    /// they are handed to.
    pub writer: Option<ResultWriter>,
}

/// `ResultWriter`: a call that receives the results (`Resource`), and/or
/// how they are shaped (`WriterConfig`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResultWriter {
    /// The call; `None` when only `WriterConfig` is given (the shaped
    /// results are then the Map's result, as on AWS).
    pub call: Option<Io>,
    /// `WriterConfig.OutputType`: how the call receives the results.
    pub output_type: OutputType,
    /// `WriterConfig.Transformation`.
    pub transformation: Transformation,
}

/// How a `ResultWriter` call receives the results (`WriterConfig.OutputType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum OutputType {
    /// `Results` is a JSON array.
    Json,
    /// `Results` is JSON Lines text: one result per line.
    Jsonl,
}

/// What each child execution contributes to the results
/// (`WriterConfig.Transformation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Transformation {
    /// Its record: ARN, name, status, input and output (as JSON text),
    /// dates, redrives — what AWS writes when a Resource has no
    /// `WriterConfig`.
    None,
    /// Its output only — what a Map without a `ResultWriter` gives.
    Compact,
    /// Its output, an array output spliced in element by element.
    Flatten,
}

/// A call a distributed Map makes besides its items: the `Resource` (an
/// ARN such as `arn:aws:states:::s3:getObject`) is bound through the
/// resource map like a Task's, and the request body is the rendered
/// `Parameters` (JSONPath) or `Arguments` (JSONata).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Io {
    pub resource: String,
    pub participant: Participant,
    pub parameters: Option<Value>,
    pub arguments: Option<Template>,
}

/// `ItemReader`: the call, and how its answer becomes items.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ItemReader {
    pub io: Io,
    /// `ReaderConfig.InputType`.
    pub input_type: InputType,
    /// `CSVHeaders` when `CSVHeaderLocation` is `GIVEN` (else the first row).
    pub csv_headers: Option<Vec<String>>,
    /// `CSVDelimiter`: `COMMA` (the default), `PIPE`, `SEMICOLON`, `SPACE`, `TAB`.
    pub csv_delimiter: u8,
    /// `MaxItems` / `MaxItemsPath`: at most this many items are read.
    pub max_items: Option<Count>,
}

/// What a reader's answer holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum InputType {
    /// A JSON array (the answer itself, or its text).
    Json,
    /// JSON Lines: one value per line.
    Jsonl,
    /// CSV rows, each an object keyed by the headers (values are strings).
    Csv,
}

/// A count given as a number, a reference path (JSONPath) or an
/// expression (JSONata).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Count {
    Fixed(u64),
    Path(String),
    Jsonata(Template),
}

/// A Map's `ItemBatcher`: at least one of the two limits.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ItemBatcher {
    /// `MaxItemsPerBatch` (or `…Path`): a positive integer.
    pub max_items: Option<Count>,
    /// `MaxInputBytesPerBatch` (or `…Path`): 1 to 262,144 bytes, the size
    /// of a batch's JSON text with its `BatchInput`.
    pub max_bytes: Option<Count>,
    /// `BatchInput`: a payload template (JSONPath) put under `BatchInput`
    /// in each batch.
    pub batch_input: Option<Value>,
    /// `BatchInput` of a JSONata Map.
    pub batch_input_jsonata: Option<Template>,
}

/// One `Retry` entry. Defaults as in AWS: 1 s, 3 attempts, rate 2.0.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Retrier {
    pub error_equals: Vec<String>,
    pub interval_seconds: u64,
    pub max_attempts: u32,
    pub backoff_rate: f64,
    pub max_delay_seconds: Option<u64>,
    /// `JitterStrategy: FULL`: each delay is drawn uniformly in [0, delay).
    pub jitter_full: bool,
}

/// One `Catch` entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Catcher {
    pub error_equals: Vec<String>,
    /// Where the error output `{"Error", "Cause"}` goes in the state input.
    pub result_path: PathField,
    pub next: usize,
    /// The catcher's `Assign`, over the error output `{"Error", "Cause"}`
    /// (`$states.errorOutput` in JSONata).
    pub assign: Option<Assign>,
    /// A JSONata catcher's `Output` (without it, the error output).
    pub output: Option<Template>,
}

/// Whether an error name matches an `ErrorEquals` list: `States.ALL` matches
/// every error but `States.Runtime`; `States.TaskFailed` matches every error
/// of a task but `States.Timeout` (and `States.Runtime`).
pub fn error_matches(error_equals: &[String], error: &str) -> bool {
    error_equals.iter().any(|e| {
        e == error
            || (e == name::ALL && error != name::RUNTIME)
            || (e == name::TASK_FAILED
                && error != name::TIMEOUT
                && error != name::HEARTBEAT_TIMEOUT
                && error != name::RUNTIME
                && !error.starts_with(name::BRANCH_PREFIX)
                && error != name::EXCEED_TOLERATED)
    })
}

/// Binds Task resources (Lambda ARNs and the like) to participants.
///
/// Rules are tried in order. A pattern is the ARN with `*` matching any run
/// of characters except `:` and `{name}` capturing one; the target is a URL
/// (or `handler:NAME` for an in-process handler) in which `{name}` is
/// replaced by the capture. A bare function name (as `lambda:invoke` allows)
/// is matched as `arn:aws:lambda:*:*:function:NAME`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, serde::Deserialize)]
pub struct ResourceMap {
    pub rules: Vec<ResourceRule>,
}

#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct ResourceRule {
    pub pattern: String,
    pub target: String,
}
