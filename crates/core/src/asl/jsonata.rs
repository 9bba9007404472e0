//! JSONata, ASL's second query language (`QueryLanguage: "JSONata"`): the
//! expression layer, pure (no I/O, no clock, no randomness of its own).
//!
//! [`crate::asl::parse`] parses every JSONata field of a JSONata state into
//! a [`Template`] when the definition is compiled, and
//! [`crate::asl::run`] evaluates them. What is here:
//!
//! - [`Template`]: the value of a JSONata field (`Arguments`, `Output`,
//!   `Assign`, `Condition`, `Items`, …). Either a string `{% expr %}` (the
//!   whole field is one expression) or any JSON value whose strings, at any
//!   depth of its objects and arrays, may be `{% … %}` expressions; every
//!   other value is taken as written. Parsed once, when the definition is
//!   compiled: a syntax error is a [`Violation`] (`invalid_jsonata`) at the
//!   JSON-pointer location of the string, with JSONata's code, message and
//!   position.
//! - [`Template::evaluate`] with a [`Scope`]: `$states` (`input`, `result`,
//!   `errorOutput`, `context`), the workflow variables bound as `$name`, and
//!   the functions Step Functions adds to JSONata: `$partition`, `$range`,
//!   `$hash`, `$random([seed])`, `$uuid()`, `$parse`. `$eval` is not
//!   available, as in AWS (use `$parse`).
//! - Errors as AWS words them: `States.QueryEvaluationError` with the cause
//!   `The JSONata expression '…' specified for the field '…' threw an error
//!   during evaluation. T2001: …` or `… returned nothing (undefined).` The
//!   interpreter adds its usual `An error occurred while executing the state
//!   …` prefix.
//!
//! **Replay.** `$random()` without a seed, `$uuid()`, `$shuffle` and
//! `$now()`/`$millis()` would make an evaluation depend on when and how often
//! it runs. Here they draw only on what the caller passes in the [`Scope`]:
//! an [`Entropy`] (which the interpreter derives from, or records in, the
//! history) and the evaluation's timestamp. The same history therefore gives
//! the same values on every replay, and two calls in one evaluation, or the
//! same call in two fields of one state, still give different values.
//!
//! Engine: `jlens-core` (see README, "JSONata engines measured").

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use jlens_core::{Bindings, Expression, HostFunction, Options};
use serde_json::{Map, Value};
use sha2::Digest as _;

use crate::event::ErrorInfo;
use crate::Violation;

/// The error of a JSONata expression that fails or returns nothing where a
/// value is required.
pub const QUERY_EVALUATION_ERROR: &str = "States.QueryEvaluationError";

/// The [`Violation`] code of a JSONata syntax error.
pub const INVALID_JSONATA: &str = "invalid_jsonata";

/// Most steps one evaluation may take (each node evaluated counts one):
/// bounds a runaway expression of a definition deterministically, where a
/// wall-clock timeout would fail one replay and not another.
pub const MAX_STEPS: u64 = 10_000_000;

/// Most items `$range` may produce.
pub const MAX_RANGE_ITEMS: usize = 1_000_000;

/// The hash algorithms of `$hash`, as AWS names them.
pub const HASH_ALGORITHMS: [&str; 5] = ["MD5", "SHA-1", "SHA-256", "SHA-384", "SHA-512"];

/// Whether `s` is a JSONata expression: it starts with `{%` and ends with
/// `%}` (no space before or after; `"{%%}"` counts, and fails to parse).
pub fn is_expression(s: &str) -> bool {
    s.len() >= 4 && s.starts_with("{%") && s.ends_with("%}")
}

/// A parsed JSONata field value. Cheap to clone; `Send + Sync`. Two
/// templates are equal when they were parsed from the same value at the same
/// location; one serializes as the value it was parsed from.
#[derive(Debug, Clone)]
pub struct Template {
    root: Node,
    location: String,
    field: String,
    source: Arc<Value>,
}

impl PartialEq for Template {
    fn eq(&self, other: &Template) -> bool {
        self.location == other.location && self.source == other.source
    }
}

impl serde::Serialize for Template {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.source.serialize(s)
    }
}

#[derive(Debug, Clone)]
enum Node {
    /// A value without any expression, returned as written.
    Literal(Value),
    Expression(Arc<Expr>),
    Object(Vec<(String, Node)>),
    Array(Vec<Node>),
}

#[derive(Debug)]
struct Expr {
    /// The text between `{%` and `%}`, trimmed: what AWS quotes in a cause.
    text: String,
    compiled: Expression,
    /// AWS's name of the field the expression is the value of
    /// (`Arguments/Input/pushLocation`).
    field: String,
}

impl Template {
    /// Parses a JSONata field value found at `location`, the JSON-pointer
    /// location of the field in the definition (`/States/Transform/Output`).
    /// Every expression with a syntax error is reported, each at the
    /// location of its own string (`/States/T/Arguments/items/0`).
    pub fn parse(value: &Value, location: &str) -> Result<Template, Vec<Violation>> {
        let field = aws_field(location);
        let mut violations = Vec::new();
        let root = parse_node(value, location, &field, &mut violations);
        if violations.is_empty() {
            Ok(Template {
                root,
                location: location.to_string(),
                field,
                source: Arc::new(value.clone()),
            })
        } else {
            Err(violations)
        }
    }

    /// The JSON-pointer location the template was parsed at.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The field's name as AWS's causes give it: the part of the location
    /// inside its state (`Output`, `Arguments/Input/pushLocation`).
    pub fn field(&self) -> &str {
        &self.field
    }

    /// The value the template was parsed from, as written.
    pub fn source(&self) -> &Value {
        &self.source
    }

    /// The workflow variables the expressions read (`$name`), found by
    /// the engine's analysis of each expression without evaluating it: not
    /// `$states`, AWS's functions, JSONata's own or names an expression
    /// binds itself (`$x := …`, function parameters). `None` when an
    /// expression may read any binding (the analysis cannot tell).
    pub fn variables(&self) -> Option<std::collections::BTreeSet<String>> {
        fn walk(node: &Node, out: &mut std::collections::BTreeSet<String>) -> bool {
            match node {
                Node::Literal(_) => true,
                Node::Expression(e) => {
                    let reads = e.compiled.reads();
                    if reads.every_binding() {
                        return false;
                    }
                    let ours = |n: &str| {
                        matches!(n, "states" | "eval" | "random" | "uuid")
                            || stateless_functions().iter().any(|(f, _)| *f == n)
                    };
                    out.extend(reads.bindings().keys().filter(|n| !ours(n)).cloned());
                    true
                }
                Node::Object(fields) => fields.iter().all(|(_, n)| walk(n, out)),
                Node::Array(items) => items.iter().all(|n| walk(n, out)),
            }
        }
        let mut out = std::collections::BTreeSet::new();
        walk(&self.root, &mut out).then_some(out)
    }

    /// Whether any string of the value is an expression (a template without
    /// one evaluates to itself).
    pub fn has_expressions(&self) -> bool {
        !matches!(self.root, Node::Literal(_))
    }

    /// The template's value: every expression evaluated in `scope`, every
    /// other value as written, objects keeping the order of their keys.
    ///
    /// An expression that fails, or returns nothing (*undefined*), fails the
    /// whole template with `States.QueryEvaluationError` and AWS's cause.
    pub fn evaluate(&self, scope: &Scope<'_>) -> Result<Value, ErrorInfo> {
        if let Node::Literal(v) = &self.root {
            return Ok(v.clone());
        }
        let draws = Arc::new(Draws::new(&scope.entropy, &self.location));
        let bindings = bindings(scope, &draws);
        let options = Options::new()
            .now(scope.now_ms)
            .seed(draws.derive_u64(b"shuffle"))
            .max_steps(MAX_STEPS);
        eval_node(&self.root, &bindings, &options)
    }
}

fn parse_node(value: &Value, location: &str, field: &str, out: &mut Vec<Violation>) -> Node {
    match value {
        Value::String(s) if is_expression(s) => {
            let text = s[2..s.len() - 2].trim();
            match Expression::compile(text) {
                Ok(compiled) => Node::Expression(Arc::new(Expr {
                    text: text.to_string(),
                    compiled,
                    field: field.to_string(),
                })),
                Err(e) => {
                    out.push(Violation {
                        // Written out (not `INVALID_JSONATA`) so the error catalogue's scan sees it.
                        code: "invalid_jsonata".into(),
                        location: if location.is_empty() {
                            "/".into()
                        } else {
                            location.to_string()
                        },
                        message: syntax_message(text, &e),
                    });
                    Node::Literal(Value::Null)
                }
            }
        }
        Value::Object(map) => {
            let entries: Vec<(String, Node)> = map
                .iter()
                .map(|(k, v)| {
                    let escaped = k.replace('~', "~0").replace('/', "~1");
                    let node = parse_node(
                        v,
                        &format!("{location}/{escaped}"),
                        &format!("{field}/{k}"),
                        out,
                    );
                    (k.clone(), node)
                })
                .collect();
            if entries.iter().all(|(_, n)| matches!(n, Node::Literal(_))) {
                Node::Literal(value.clone())
            } else {
                Node::Object(entries)
            }
        }
        Value::Array(items) => {
            let nodes: Vec<Node> = items
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    parse_node(v, &format!("{location}/{i}"), &format!("{field}/{i}"), out)
                })
                .collect();
            if nodes.iter().all(|n| matches!(n, Node::Literal(_))) {
                Node::Literal(value.clone())
            } else {
                Node::Array(nodes)
            }
        }
        other => Node::Literal(other.clone()),
    }
}

/// `The JSONata expression '$x +' has a syntax error at position 4: S0207:
/// Unexpected end of expression`. The position is JSONata's (jsonata-js's):
/// an offset in UTF-16 code units into the expression, usually just after
/// the offending token.
fn syntax_message(text: &str, e: &jlens_core::Error) -> String {
    let at = e
        .position()
        .map(|p| format!(" at position {p}"))
        .unwrap_or_default();
    format!(
        "The JSONata expression '{text}' has a syntax error{at}: {}: {}",
        e.code(),
        e.message()
    )
}

/// AWS's name for the field at `location`: what follows the innermost
/// state (`/States/P/Branches/0/States/T/Arguments/a` → `Arguments/a`),
/// unescaped. A location outside any state is kept, without its leading `/`.
fn aws_field(location: &str) -> String {
    let segments: Vec<String> = location
        .split('/')
        .skip(1)
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect();
    let mut i = 0;
    while i + 1 < segments.len() && segments[i] == "States" {
        i += 2;
        match segments.get(i).map(String::as_str) {
            Some("Branches")
                if segments.get(i + 2).map(String::as_str) == Some("States")
                    && segments
                        .get(i + 1)
                        .is_some_and(|n| n.parse::<usize>().is_ok()) =>
            {
                i += 2;
            }
            Some("ItemProcessor" | "Iterator")
                if segments.get(i + 1).map(String::as_str) == Some("States") =>
            {
                i += 1;
            }
            _ => break,
        }
    }
    segments[i.min(segments.len())..].join("/")
}

// ---------------------------------------------------------------------------
// Evaluation

/// What an evaluation sees: `$states`, the workflow variables, and the
/// inputs that replace a clock and a random source.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    /// `$states.input`: the state's input.
    pub input: &'a Value,
    /// `$states.result`: the Task's, Parallel's or Map's result, where the
    /// field may read it (`Output` and `Assign` after the work).
    pub result: Option<&'a Value>,
    /// `$states.errorOutput`: the error output, in a Catch's `Output` and
    /// `Assign`.
    pub error_output: Option<&'a Value>,
    /// `$states.context`: the context object (`Execution`, `State`, …).
    pub context: &'a Value,
    /// The workflow variables in scope, by name without `$`.
    pub variables: &'a BTreeMap<String, Value>,
    /// Where `$random()` and `$uuid()` draw from (see [`Entropy`]).
    pub entropy: Entropy,
    /// The evaluation's time, in milliseconds since the epoch: `$now()` and
    /// `$millis()` (the time the state was entered, as the history records
    /// it, so that a replay reads the same time).
    pub now_ms: i64,
}

/// The source of `$random()` and `$uuid()`: 32 bytes the caller derives
/// from its history (the execution and the event of the state's entry, say)
/// or records there, so that a replay draws the same values. Each template
/// mixes in its own location and a counter of the draws it made, so one
/// `Entropy` serves every field of a state entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Entropy(pub [u8; 32]);

impl Entropy {
    /// The SHA-256 of `seed`: an entropy from any bytes that identify the
    /// evaluation (`"{execution}:{event id}"`).
    pub fn from_seed(seed: impl AsRef<[u8]>) -> Entropy {
        Entropy(sha2::Sha256::digest(seed.as_ref()).into())
    }
}

/// The draws of one template evaluation.
struct Draws {
    base: [u8; 32],
    count: AtomicU64,
}

impl Draws {
    fn new(entropy: &Entropy, location: &str) -> Draws {
        let mut h = sha2::Sha256::new();
        h.update(entropy.0);
        h.update(location.as_bytes());
        Draws {
            base: h.finalize().into(),
            count: AtomicU64::new(0),
        }
    }

    /// 32 fresh bytes: the next draw.
    fn next(&self, tag: &[u8]) -> [u8; 32] {
        let n = self.count.fetch_add(1, Ordering::Relaxed);
        let mut h = sha2::Sha256::new();
        h.update(self.base);
        h.update(tag);
        h.update(n.to_le_bytes());
        h.finalize().into()
    }

    /// A value derived from the template's draws without counting as one.
    fn derive_u64(&self, tag: &[u8]) -> u64 {
        let mut h = sha2::Sha256::new();
        h.update(self.base);
        h.update(tag);
        let d: [u8; 32] = h.finalize().into();
        u64::from_le_bytes(d[..8].try_into().unwrap_or_default())
    }
}

/// A number in `[0, 1)` from 8 of `bytes`: 53 bits, as a double holds.
fn unit_interval(bytes: &[u8; 32]) -> f64 {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap_or_default()) >> 11;
    n as f64 / (1u64 << 53) as f64
}

/// A version 4 (random) UUID from 16 of `bytes`.
fn uuid_v4(bytes: &[u8; 32]) -> String {
    let mut b: [u8; 16] = bytes[..16].try_into().unwrap_or_default();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = crate::document::hex(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn bindings(scope: &Scope<'_>, draws: &Arc<Draws>) -> Bindings {
    let mut b = Bindings::new();
    for (name, value) in scope.variables {
        b = b.var(name.clone(), value.clone());
    }
    let mut states = Map::new();
    states.insert("input".into(), scope.input.clone());
    if let Some(r) = scope.result {
        states.insert("result".into(), r.clone());
    }
    if let Some(e) = scope.error_output {
        states.insert("errorOutput".into(), e.clone());
    }
    states.insert("context".into(), scope.context.clone());
    // Bound last: a variable cannot hide `$states` or AWS's functions.
    b = b.var("states", Value::Object(states));
    // AWS has no `$eval` ("use $parse instead"): calling it fails as calling
    // any non-function does (T1006).
    b = b.var("eval", Value::Null);
    for (name, f) in stateless_functions() {
        b = b.function(*name, f.clone());
    }
    let d = Arc::clone(draws);
    b = b.function(
        "random",
        HostFunction::with_signature("<n?:n>", move |args, _| {
            let bytes = match args.first().and_then(Option::as_ref) {
                Some(seed) => seeded(seed),
                None => d.next(b"random"),
            };
            Ok(Some(number(unit_interval(&bytes))))
        })
        .expect("a valid signature")
        .without_input(),
    );
    let d = Arc::clone(draws);
    b.function(
        "uuid",
        HostFunction::with_signature("<:s>", move |_, _| {
            Ok(Some(Value::String(uuid_v4(&d.next(b"uuid")))))
        })
        .expect("a valid signature")
        .without_input(),
    )
}

/// `$random(seed)`: the same seed gives the same number, in every execution
/// (AWS's promise). Seeds that are the same number (`1`, `1.0`) agree.
fn seeded(seed: &Value) -> [u8; 32] {
    let mut h = sha2::Sha256::new();
    h.update(b"sagaflow $random seed\0");
    h.update(seed.as_f64().unwrap_or(f64::NAN).to_bits().to_le_bytes());
    h.finalize().into()
}

fn number(n: f64) -> Value {
    serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number)
}

/// The functions that need nothing of the evaluation, built once.
fn stateless_functions() -> &'static [(&'static str, HostFunction)] {
    static FUNCTIONS: OnceLock<Vec<(&'static str, HostFunction)>> = OnceLock::new();
    FUNCTIONS.get_or_init(|| {
        let f = |sig: &str, imp: fn(&[Option<Value>]) -> jlens_core::Result<Option<Value>>| {
            HostFunction::with_signature(sig, move |args, _| imp(args))
                .expect("a valid signature")
                .without_input()
        };
        vec![
            ("partition", f("<an:a>", partition)),
            ("range", f("<nnn:a>", range)),
            ("hash", f("<xs:s>", hash)),
            ("parse", f("<s:x>", parse)),
        ]
    })
}

/// An error of one of AWS's functions: no JSONata code, only its message.
fn host_error(message: impl Into<String>) -> jlens_core::Error {
    jlens_core::Error::new(HOST_ERROR).with("message", message.into())
}

/// The code of [`host_error`]s, which a cause leaves out.
const HOST_ERROR: &str = "SAGAFLOW";

/// An integer argument: AWS rounds a non-integer one down.
fn integer(v: &Option<Value>) -> Option<f64> {
    v.as_ref()?
        .as_f64()
        .filter(|n| n.is_finite())
        .map(f64::floor)
}

/// `$partition(array, size)`: the array in chunks of `size` items, the
/// last one shorter when the items do not divide evenly.
fn partition(args: &[Option<Value>]) -> jlens_core::Result<Option<Value>> {
    let Some(Value::Array(items)) = &args[0] else {
        return Ok(None);
    };
    let size = match integer(&args[1]) {
        Some(n) if n >= 1.0 => n.min(usize::MAX as f64) as usize,
        _ => {
            return Err(host_error(
                "The chunk size of $partition must be a positive integer",
            ))
        }
    };
    Ok(Some(Value::Array(
        items
            .chunks(size)
            .map(|c| Value::Array(c.to_vec()))
            .collect(),
    )))
}

/// `$range(start, end, step)`: from `start` to `end`, both included, by
/// `step` (negative to count down).
fn range(args: &[Option<Value>]) -> jlens_core::Result<Option<Value>> {
    let (Some(start), Some(end), Some(step)) =
        (integer(&args[0]), integer(&args[1]), integer(&args[2]))
    else {
        return Ok(None);
    };
    if step == 0.0 {
        return Err(host_error("The step of $range must not be 0"));
    }
    let count = ((end - start) / step).floor() + 1.0;
    let count = if count < 1.0 { 0.0 } else { count };
    if count > MAX_RANGE_ITEMS as f64 {
        return Err(host_error(format!(
            "$range would produce {count} items, more than the {MAX_RANGE_ITEMS} allowed"
        )));
    }
    Ok(Some(Value::Array(
        (0..count as u64)
            .map(|i| number_or_integer(start + i as f64 * step))
            .collect(),
    )))
}

fn number_or_integer(n: f64) -> Value {
    if n.fract() == 0.0 && n.abs() < 9.007_199_254_740_992e15 {
        Value::from(n as i64)
    } else {
        number(n)
    }
}

/// `$hash(data, algorithm)`: the hex digest of a string (another value is
/// hashed as its JSON text), with one of [`HASH_ALGORITHMS`].
fn hash(args: &[Option<Value>]) -> jlens_core::Result<Option<Value>> {
    let Some(data) = &args[0] else {
        return Ok(None);
    };
    let Some(Value::String(algorithm)) = &args[1] else {
        return Ok(None);
    };
    let text = match data {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let bytes = text.as_bytes();
    let hex = crate::document::hex;
    let digest = match algorithm.as_str() {
        "MD5" => hex(&md5::Md5::digest(bytes)),
        "SHA-1" => hex(&sha1::Sha1::digest(bytes)),
        "SHA-256" => hex(&sha2::Sha256::digest(bytes)),
        "SHA-384" => hex(&sha2::Sha384::digest(bytes)),
        "SHA-512" => hex(&sha2::Sha512::digest(bytes)),
        other => {
            return Err(host_error(format!(
                "Unknown hash algorithm '{other}' for $hash (use one of {})",
                HASH_ALGORITHMS.join(", ")
            )))
        }
    };
    Ok(Some(Value::String(digest)))
}

/// `$parse(text)`: the JSON value a string holds.
fn parse(args: &[Option<Value>]) -> jlens_core::Result<Option<Value>> {
    let Some(Value::String(text)) = &args[0] else {
        return Ok(None);
    };
    serde_json::from_str::<Value>(text)
        .map(Some)
        .map_err(|e| host_error(format!("$parse: the string is not JSON ({e})")))
}

/// What precedes the field's name in the causes [`eval_node`] gives.
const FIELD_PREFIX: &str = "specified for the field '";

/// The field (`Arguments/n`, `Output`, …) named by the cause of a
/// `States.QueryEvaluationError` this module raised: the `location` of
/// AWS's `EvaluationFailed` event. Read back from the cause, which is
/// written next door, rather than carried in every error.
pub(crate) fn failed_field(cause: &str) -> Option<&str> {
    let (_, rest) = cause.split_once(FIELD_PREFIX)?;
    rest.split_once('\'').map(|(field, _)| field)
}

fn eval_node(node: &Node, bindings: &Bindings, options: &Options) -> Result<Value, ErrorInfo> {
    match node {
        Node::Literal(v) => Ok(v.clone()),
        Node::Expression(e) => match e.compiled.evaluate_with(None, bindings, options) {
            Ok(Some(v)) => Ok(v),
            Ok(None) => Err(ErrorInfo::new(
                QUERY_EVALUATION_ERROR,
                format!(
                    "The JSONata expression '{}' {FIELD_PREFIX}{}' returned nothing (undefined).",
                    e.text, e.field
                ),
            )),
            Err(err) => {
                let what = if err.code() == HOST_ERROR {
                    err.message()
                } else {
                    format!("{}: {}", err.code(), err.message())
                };
                Err(ErrorInfo::new(
                    QUERY_EVALUATION_ERROR,
                    format!(
                        "The JSONata expression '{}' {FIELD_PREFIX}{}' threw an error during evaluation. {what}",
                        e.text, e.field
                    ),
                ))
            }
        },
        Node::Object(entries) => {
            let mut out = Map::new();
            for (k, n) in entries {
                out.insert(k.clone(), eval_node(n, bindings, options)?);
            }
            Ok(Value::Object(out))
        }
        Node::Array(items) => items
            .iter()
            .map(|n| eval_node(n, bindings, options))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
    }
}
