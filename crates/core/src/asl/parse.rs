//! ASL JSON → [`Machine`], with validation that reports every problem.
//!
//! The document is walked by hand rather than deserialized with serde, for
//! the same reason as the native format (see [`crate::definition`]): a
//! derived deserializer stops at the first type error, while AWS's
//! `InvalidDefinition` — and ours — lists *every* problem, each with a stable
//! code and a JSON-pointer-like location such as
//! `/States/BookHotel/Catch/0/Next` (`/` is the document itself; `~` and `/`
//! in state names are escaped as `~0` and `~1`, as in RFC 6901).
//!
//! Codes:
//! - `wrong_type`: a field has the wrong JSON type (an integer is expected and
//!   `1.5` is given counts too);
//! - `missing_field`, `unknown_field` (a field the state type does not allow),
//!   `conflicting_fields` (two fields that exclude each other, such as `Next`
//!   and `End`), `unsupported` (valid ASL that Sagaflow does not run:
//!   distributed Map, …);
//! - `wrong_query_language`: a JSONPath field (`Parameters`, `ResultPath`,
//!   `…Path`) in a JSONata state, a JSONata field (`Arguments`, `Output`,
//!   `Items`, `Condition`) in a JSONPath state, or a JSONPath state in a
//!   JSONata machine;
//! - `invalid_jsonata`: a `{% … %}` expression with a syntax error (the
//!   location is its string's);
//! - `invalid_value`: a value of the right type outside what is allowed;
//! - `unknown_state` (a `StartAt`/`Next`/`Default` naming no state of its
//!   scope), `unreachable_state`, `no_terminal_state`, `duplicate_state`;
//! - `invalid_path`, `invalid_reference_path`, `invalid_template`,
//!   `invalid_intrinsic`;
//! - `unknown_resource` (no rule of the [`ResourceMap`] binds a Task's
//!   resource), `missing_task_token` (a `.waitForTaskToken` task that never
//!   hands out `$$.Task.Token`).

use std::collections::{HashMap, VecDeque};

use serde_json::{Map as Object, Value};

use crate::asl::machine::{
    Assign, Branch, Catcher, Comparison, Count, Distributed, Fail, Graph, InputType, Integration,
    Io, ItemBatcher, ItemReader, Jsonata, Kind, Machine, Map, Operand, OutputType, PathField,
    ResourceMap, ResultWriter, Retrier, Rule, Seconds, State, Task, Template, Transformation, Wait,
};
use crate::asl::{data, intrinsic, jsonata, vars};
use crate::document::type_name;
use crate::error_name as name;
use crate::exchange::Participant;
use crate::function_name::{complete_arn, strip_qualifier};
use crate::Error;
use crate::Violation;

/// The optimized Lambda integration: the function comes from `FunctionName`.
pub const LAMBDA_INVOKE: &str = "arn:aws:states:::lambda:invoke";
/// Suffix of a resource whose call only hands out a task token.
pub const WAIT_FOR_TASK_TOKEN: &str = ".waitForTaskToken";
/// AWS's upper bound for the integer fields counted in seconds or attempts.
pub const MAX_SECONDS: u64 = 99_999_999;
/// Nesting deeper than this (rules in rules, branches in branches, templates)
/// is refused instead of recursing further: parsed JSON is already bounded
/// by serde_json, but a `Value` built in code is not.
const MAX_DEPTH: usize = 100;

const STATE_TYPES: &[&str] = &[
    "Task", "Pass", "Choice", "Wait", "Succeed", "Fail", "Parallel", "Map",
];

/// Whether a parsed document is an ASL definition (has `StartAt` and `States`).
pub fn is_asl(doc: &Value) -> bool {
    doc.get("StartAt").is_some() && doc.get("States").is_some()
}

/// Validates and compiles an ASL document. Every problem is reported as a
/// [`crate::Violation`] whose location is a path like
/// `/States/BookHotel/Catch/0/Next`.
pub fn compile(doc: &Value, resources: &ResourceMap) -> Result<Machine, Error> {
    let mut everywhere = HashMap::new();
    collect_names(doc, "", &mut everywhere, 0);
    let mut c = Compiler {
        resources,
        violations: Vec::new(),
        everywhere,
        var_scopes: Vec::new(),
        var_scope: None,
        jsonata_machine: false,
    };
    let machine = c.machine(doc);
    match machine {
        Some(m) if c.violations.is_empty() => Ok(m),
        _ => {
            if c.violations.is_empty() {
                // Every path that gives up records why; this only guards
                // against a gap in that rule turning into an `Ok`-less `Err(vec![])`.
                c.err("invalid_value", "", "the definition could not be compiled");
            }
            Err(Error::InvalidDefinition(c.violations))
        }
    }
}

impl ResourceMap {
    /// The participant a resource ARN (or bare Lambda function name) is bound to.
    ///
    /// Rules are tried in order; the first that matches wins. A Lambda ARN
    /// with a version or alias (`…:function:NAME:prod`) is tried as is and
    /// then without the qualifier, so `…:function:{name}` binds it to NAME.
    pub fn resolve(&self, resource: &str) -> Option<Participant> {
        let full = complete_arn(resource);
        let unqualified = strip_qualifier(&full);
        for rule in &self.rules {
            let pattern = Pattern::parse(&rule.pattern);
            let capture = pattern
                .matches(&full)
                .or_else(|| unqualified.as_deref().and_then(|u| pattern.matches(u)));
            if let Some(capture) = capture {
                let target = match capture {
                    Some(name) => rule.target.replace("{name}", name),
                    None => rule.target.clone(),
                };
                return Some(match target.strip_prefix("handler:") {
                    Some(name) => Participant::Handler {
                        name: name.to_string(),
                    },
                    None => Participant::Http {
                        url: target,
                        headers: Default::default(),
                    },
                });
            }
        }
        None
    }
}

/// A resource-map pattern: literal text, `*` (any run without `:`) and
/// `{name}` (the same, captured).
struct Pattern<'p> {
    tokens: Vec<Token<'p>>,
}

#[derive(Clone, Copy)]
enum Token<'p> {
    Literal(&'p str),
    Star,
    Capture,
}

impl<'p> Pattern<'p> {
    fn parse(pattern: &'p str) -> Self {
        let mut tokens = Vec::new();
        let mut rest = pattern;
        while !rest.is_empty() {
            let star = rest.find('*');
            let capture = rest.find("{name}");
            let next = match (star, capture) {
                (Some(s), Some(c)) => Some(s.min(c)),
                (s, c) => s.or(c),
            };
            match next {
                None => {
                    tokens.push(Token::Literal(rest));
                    rest = "";
                }
                Some(i) => {
                    if i > 0 {
                        tokens.push(Token::Literal(&rest[..i]));
                    }
                    if rest[i..].starts_with('*') {
                        tokens.push(Token::Star);
                        rest = &rest[i + 1..];
                    } else {
                        tokens.push(Token::Capture);
                        rest = &rest[i + "{name}".len()..];
                    }
                }
            }
        }
        Pattern { tokens }
    }

    /// `None`: no match; `Some(capture)`: a match, with the first `{name}`.
    fn matches<'t>(&self, text: &'t str) -> Option<Option<&'t str>> {
        match_tokens(&self.tokens, text, None)
    }
}

/// Backtracking match. Wildcards never cross `:`, so each one only tries the
/// lengths of one ARN segment and the search stays small.
fn match_tokens<'t>(
    tokens: &[Token<'_>],
    text: &'t str,
    capture: Option<&'t str>,
) -> Option<Option<&'t str>> {
    let Some((first, rest)) = tokens.split_first() else {
        return text.is_empty().then_some(capture);
    };
    match first {
        Token::Literal(lit) => {
            let after = text.strip_prefix(lit)?;
            match_tokens(rest, after, capture)
        }
        Token::Star | Token::Capture => {
            let segment = text.find(':').unwrap_or(text.len());
            // A capture names something: it must not be empty.
            let min = usize::from(matches!(first, Token::Capture));
            for end in (min..=segment).rev() {
                if !text.is_char_boundary(end) {
                    continue;
                }
                let captured = match first {
                    Token::Capture => capture.or(Some(&text[..end])),
                    _ => capture,
                };
                if let Some(found) = match_tokens(rest, &text[end..], captured) {
                    return Some(found);
                }
            }
            None
        }
    }
}

/// JSON-pointer location of `key` inside `loc`.
fn at(loc: &str, key: &str) -> String {
    format!("{loc}/{}", key.replace('~', "~0").replace('/', "~1"))
}

fn at_index(loc: &str, i: usize) -> String {
    format!("{loc}/{i}")
}

/// First pass: every state's location by name, in all scopes, so that a
/// `Next` into another scope can be explained and a name used twice found.
fn collect_names(scope: &Value, loc: &str, out: &mut HashMap<String, Vec<String>>, depth: usize) {
    if depth > MAX_DEPTH {
        return;
    }
    let Some(states) = scope.get("States").and_then(Value::as_object) else {
        return;
    };
    let states_loc = at(loc, "States");
    for (name, state) in states {
        let sloc = at(&states_loc, name);
        out.entry(name.clone()).or_default().push(sloc.clone());
        if let Some(branches) = state.get("Branches").and_then(Value::as_array) {
            let bloc = at(&sloc, "Branches");
            for (i, b) in branches.iter().enumerate() {
                collect_names(b, &at_index(&bloc, i), out, depth + 1);
            }
        }
        for key in ["ItemProcessor", "Iterator"] {
            if let Some(p) = state.get(key) {
                collect_names(p, &at(&sloc, key), out, depth + 1);
            }
        }
    }
}

/// How a path-valued field is checked.
#[derive(Clone, Copy)]
enum PathKind {
    /// Any path (InputPath, OutputPath, `Variable`, comparison `…Path`s).
    Any,
    /// A path that must name one node (`SecondsPath`, `ItemsPath`, …): a
    /// reference path into the input or a variable (`$name.a`), or any
    /// path into the context object (`$$…`).
    Single,
    /// ResultPath: a reference path into the input.
    Reference,
}

/// The operand type a comparison takes.
#[derive(Clone, Copy)]
enum Expect {
    String,
    Number,
    Boolean,
    Timestamp,
}

/// The comparison operator `key` names: (operator, operand type, whether it
/// is the `…Path` form).
fn comparison(key: &str) -> Option<(Comparison, Expect, bool)> {
    use Comparison as C;
    let (base, path) = match key.strip_suffix("Path") {
        Some(base) => (base, true),
        None => (key, false),
    };
    let (op, expect) = match base {
        "StringEquals" => (C::StringEquals, Expect::String),
        "StringLessThan" => (C::StringLessThan, Expect::String),
        "StringGreaterThan" => (C::StringGreaterThan, Expect::String),
        "StringLessThanEquals" => (C::StringLessThanEquals, Expect::String),
        "StringGreaterThanEquals" => (C::StringGreaterThanEquals, Expect::String),
        "NumericEquals" => (C::NumericEquals, Expect::Number),
        "NumericLessThan" => (C::NumericLessThan, Expect::Number),
        "NumericGreaterThan" => (C::NumericGreaterThan, Expect::Number),
        "NumericLessThanEquals" => (C::NumericLessThanEquals, Expect::Number),
        "NumericGreaterThanEquals" => (C::NumericGreaterThanEquals, Expect::Number),
        "BooleanEquals" => (C::BooleanEquals, Expect::Boolean),
        "TimestampEquals" => (C::TimestampEquals, Expect::Timestamp),
        "TimestampLessThan" => (C::TimestampLessThan, Expect::Timestamp),
        "TimestampGreaterThan" => (C::TimestampGreaterThan, Expect::Timestamp),
        "TimestampLessThanEquals" => (C::TimestampLessThanEquals, Expect::Timestamp),
        "TimestampGreaterThanEquals" => (C::TimestampGreaterThanEquals, Expect::Timestamp),
        // These have no `…Path` form in the spec.
        "StringMatches" if !path => (C::StringMatches, Expect::String),
        "IsNull" if !path => (C::IsNull, Expect::Boolean),
        "IsPresent" if !path => (C::IsPresent, Expect::Boolean),
        "IsNumeric" if !path => (C::IsNumeric, Expect::Boolean),
        "IsString" if !path => (C::IsString, Expect::Boolean),
        "IsBoolean" if !path => (C::IsBoolean, Expect::Boolean),
        "IsTimestamp" if !path => (C::IsTimestamp, Expect::Boolean),
        _ => return None,
    };
    Some((op, expect, path))
}

fn is_timestamp(text: &str) -> bool {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).is_ok()
}

/// Fields each state type allows: those Sagaflow runs, and those AWS
/// accepts but Sagaflow refuses as `unsupported` (so the message says so
/// rather than calling a valid field unknown).
fn state_fields(ty: &str) -> (&'static [&'static str], &'static [&'static str]) {
    match ty {
        "Task" => (
            &[
                "Type",
                "Comment",
                "QueryLanguage",
                "InputPath",
                "OutputPath",
                "Parameters",
                "ResultSelector",
                "ResultPath",
                "Retry",
                "Catch",
                "Next",
                "End",
                "Resource",
                "TimeoutSeconds",
                "TimeoutSecondsPath",
                "HeartbeatSeconds",
                "HeartbeatSecondsPath",
                "Assign",
                "Arguments",
                "Output",
            ],
            &["Credentials"],
        ),
        "Pass" => (
            &[
                "Type",
                "Comment",
                "QueryLanguage",
                "InputPath",
                "OutputPath",
                "Parameters",
                "ResultPath",
                "Next",
                "End",
                "Result",
                "Assign",
                "Output",
            ],
            &[],
        ),
        "Choice" => (
            &[
                "Type",
                "Comment",
                "QueryLanguage",
                "InputPath",
                "OutputPath",
                "Choices",
                "Default",
                "Assign",
                "Output",
            ],
            &[],
        ),
        "Wait" => (
            &[
                "Type",
                "Comment",
                "QueryLanguage",
                "InputPath",
                "OutputPath",
                "Next",
                "End",
                "Seconds",
                "Timestamp",
                "SecondsPath",
                "TimestampPath",
                "Assign",
                "Output",
            ],
            &[],
        ),
        "Succeed" => (
            &[
                "Type",
                "Comment",
                "QueryLanguage",
                "InputPath",
                "OutputPath",
                "Output",
            ],
            &[],
        ),
        "Fail" => (
            &[
                "Type",
                "Comment",
                "QueryLanguage",
                "Error",
                "Cause",
                "ErrorPath",
                "CausePath",
            ],
            &[],
        ),
        "Parallel" => (
            &[
                "Type",
                "Comment",
                "QueryLanguage",
                "InputPath",
                "OutputPath",
                "Parameters",
                "ResultSelector",
                "ResultPath",
                "Retry",
                "Catch",
                "Next",
                "End",
                "Branches",
                "Assign",
                "Arguments",
                "Output",
            ],
            &[],
        ),
        "Map" => (
            &[
                "Type",
                "Comment",
                "QueryLanguage",
                "InputPath",
                "OutputPath",
                "Parameters",
                "ResultSelector",
                "ResultPath",
                "Retry",
                "Catch",
                "Next",
                "End",
                "ItemProcessor",
                "Iterator",
                "ItemsPath",
                "ItemSelector",
                "MaxConcurrency",
                "ToleratedFailureCount",
                "ToleratedFailurePercentage",
                "Label",
                "Assign",
                "Output",
                "Items",
                "MaxConcurrencyPath",
                "ToleratedFailureCountPath",
                "ToleratedFailurePercentagePath",
                "ItemBatcher",
                "ItemReader",
                "ResultWriter",
            ],
            &[],
        ),
        _ => (&["Type", "Comment"], &[]),
    }
}

/// Whether `field` is allowed by some state type: then a state of another
/// type naming it gets "not allowed in a X state" rather than "unknown".
fn known_state_field(field: &str) -> bool {
    STATE_TYPES.iter().any(|ty| {
        let (ok, refused) = state_fields(ty);
        ok.contains(&field) || refused.contains(&field)
    })
}

/// Why a field AWS accepts is refused here.
fn unsupported_reason(field: &str) -> &'static str {
    match field {
        "Credentials" => "cross-account `Credentials` are not supported",
        _ => "a distributed Map's `ItemReader` and `ResultWriter` (items read from and results written to S3) are not supported: give the items in the state input (`ItemsPath`/`Items`)",
    }
}

/// The fields only a JSONPath state may have, with what a JSONata state
/// uses instead.
const JSONPATH_ONLY: &[(&str, &str)] = &[
    (
        "InputPath",
        "read `$states.input` in `Arguments` or `Output`",
    ),
    ("Parameters", "use `Arguments`"),
    ("ResultSelector", "use `Output` with `$states.result`"),
    ("ResultPath", "use `Output` or `Assign`"),
    ("OutputPath", "use `Output`"),
    ("Result", "use `Output`"),
    ("ItemsPath", "use `Items`"),
    ("TimeoutSecondsPath", "use `TimeoutSeconds`"),
    ("HeartbeatSecondsPath", "use `HeartbeatSeconds`"),
    ("SecondsPath", "use `Seconds` with an expression"),
    ("TimestampPath", "use `Timestamp` with an expression"),
    ("ErrorPath", "use `Error` with an expression"),
    ("CausePath", "use `Cause` with an expression"),
    (
        "MaxConcurrencyPath",
        "use `MaxConcurrency` with an expression",
    ),
    ("ToleratedFailureCountPath", "use `ToleratedFailureCount`"),
    (
        "ToleratedFailurePercentagePath",
        "use `ToleratedFailurePercentage`",
    ),
];

/// The fields only a JSONata state may have.
const JSONATA_ONLY: &[&str] = &["Arguments", "Output", "Items"];

/// Where a state's transitions lead and whether it can end its scope, for
/// the reachability and terminal-state checks of its graph.
#[derive(Default)]
struct Flow {
    edges: Vec<usize>,
    /// `Some(true)`: End, Succeed or Fail; `None`: its type is unknown.
    terminal: Option<bool>,
}

/// One scope's state names.
struct Scope<'a> {
    index: HashMap<&'a str, usize>,
    /// Location of the scope (`` for the machine), for messages.
    loc: String,
}

struct Compiler<'r> {
    resources: &'r ResourceMap,
    violations: Vec<Violation>,
    everywhere: HashMap<String, Vec<String>>,
    /// The variables each scope assigns and reads, checked once the whole
    /// machine is read ([`Compiler::check_variables`]).
    var_scopes: Vec<VarScope>,
    /// Index in `var_scopes` of the scope being read.
    var_scope: Option<usize>,
    /// The machine's `QueryLanguage` is JSONata: every state is.
    jsonata_machine: bool,
}

/// Variables of one scope (the machine, a Parallel branch, a Map
/// processor): (name, location) of each `Assign` key and each reference.
struct VarScope {
    parent: Option<usize>,
    assigned: Vec<(String, String)>,
    refs: Vec<(String, String)>,
}

impl Compiler<'_> {
    /// The one field of `given` (fields of which exactly one is allowed);
    /// none is `missing`, several are each reported as conflicting.
    fn exactly_one<'k>(
        &mut self,
        given: &[&'k str],
        loc: &str,
        missing: &str,
        conflicting: &str,
    ) -> Option<&'k str> {
        match given {
            [] => {
                self.err("missing_field", loc, missing);
                None
            }
            [one] => Some(*one),
            [first, rest @ ..] => {
                for other in rest {
                    self.err(
                        "conflicting_fields",
                        at(loc, other),
                        format!("{conflicting}; `{first}` is already given"),
                    );
                }
                None
            }
        }
    }

    fn err(&mut self, code: &str, location: impl Into<String>, message: impl Into<String>) {
        let location = location.into();
        self.violations.push(Violation {
            code: code.into(),
            location: if location.is_empty() {
                "/".into()
            } else {
                location
            },
            message: message.into(),
        });
    }

    fn object<'v>(&mut self, v: &'v Value, loc: &str) -> Option<&'v Object<String, Value>> {
        match v {
            Value::Object(m) => Some(m),
            other => {
                self.err(
                    "wrong_type",
                    loc,
                    format!("expected an object, found {}", type_name(other)),
                );
                None
            }
        }
    }

    /// Reports fields outside `allowed`; those in `refused` are valid ASL
    /// that Sagaflow does not run.
    fn check_fields(
        &mut self,
        m: &Object<String, Value>,
        loc: &str,
        allowed: &[&str],
        refused: &[&str],
        what: &str,
    ) {
        for key in m.keys() {
            if allowed.contains(&key.as_str()) {
                continue;
            }
            if refused.contains(&key.as_str()) {
                self.err("unsupported", at(loc, key), unsupported_reason(key));
            } else if known_state_field(key) && what.ends_with(" state") {
                self.err(
                    "unknown_field",
                    at(loc, key),
                    format!("`{key}` is not allowed in {what}"),
                );
            } else {
                self.err(
                    "unknown_field",
                    at(loc, key),
                    format!(
                        "unknown field `{key}` in {what}; expected one of: {}",
                        allowed.join(", ")
                    ),
                );
            }
        }
    }

    fn string(
        &mut self,
        m: &Object<String, Value>,
        key: &str,
        loc: &str,
        required: bool,
    ) -> Option<String> {
        match m.get(key) {
            None => {
                if required {
                    self.err(
                        "missing_field",
                        at(loc, key),
                        format!("`{key}` is required"),
                    );
                }
                None
            }
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => {
                self.err(
                    "wrong_type",
                    at(loc, key),
                    format!("`{key}` must be a string, found {}", type_name(other)),
                );
                None
            }
        }
    }

    /// An integer in `min..=max`.
    fn integer(&mut self, v: &Value, loc: &str, field: &str, min: u64, max: u64) -> Option<u64> {
        let Value::Number(n) = v else {
            self.err(
                "wrong_type",
                loc,
                format!("`{field}` must be an integer, found {}", type_name(v)),
            );
            return None;
        };
        match (n.as_u64(), n.as_i64()) {
            (Some(u), _) if (min..=max).contains(&u) => Some(u),
            (Some(_), _) | (None, Some(_)) => {
                self.err(
                    "invalid_value",
                    loc,
                    format!("`{field}` must be between {min} and {max}, not {n}"),
                );
                None
            }
            (None, None) => {
                self.err(
                    "wrong_type",
                    loc,
                    format!("`{field}` must be an integer, not {n}"),
                );
                None
            }
        }
    }

    fn opt_integer(
        &mut self,
        m: &Object<String, Value>,
        key: &str,
        loc: &str,
        min: u64,
        max: u64,
    ) -> Option<u64> {
        let v = m.get(key)?;
        self.integer(v, &at(loc, key), key, min, max)
    }

    fn number(&mut self, v: &Value, loc: &str, field: &str) -> Option<f64> {
        match v.as_f64() {
            Some(f) => Some(f),
            None => {
                self.err(
                    "wrong_type",
                    loc,
                    format!("`{field}` must be a number, found {}", type_name(v)),
                );
                None
            }
        }
    }

    /// Checks a path value; the code names what kind of path was expected.
    fn path(&mut self, v: &Value, loc: &str, field: &str, kind: PathKind) -> Option<String> {
        let Value::String(p) = v else {
            self.err(
                "wrong_type",
                loc,
                format!("`{field}` must be a path string, found {}", type_name(v)),
            );
            return None;
        };
        let (checked, code) = match kind {
            PathKind::Any => (data::check_path(p), "invalid_path"),
            PathKind::Single => (data::check_single_path(p), "invalid_path"),
            PathKind::Reference => (data::check_reference_path(p), "invalid_reference_path"),
        };
        match checked {
            Ok(()) => {
                self.var_refs(p, loc);
                Some(p.clone())
            }
            Err(why) => {
                self.err(code, loc, format!("`{field}`: {why}"));
                None
            }
        }
    }

    /// InputPath / OutputPath / ResultPath: a path, or `null`.
    fn path_field(
        &mut self,
        m: &Object<String, Value>,
        key: &str,
        loc: &str,
        kind: PathKind,
    ) -> PathField {
        match m.get(key) {
            None => PathField::default(),
            Some(Value::Null) => PathField::Null,
            Some(v) => self
                .path(v, &at(loc, key), key, kind)
                .map(PathField::Path)
                .unwrap_or_default(),
        }
    }

    /// `QueryLanguage`, at the top or on a state: `Some(true)` for
    /// JSONata, `Some(false)` for JSONPath, `None` when absent or invalid.
    fn query_language(&mut self, m: &Object<String, Value>, loc: &str) -> Option<bool> {
        match self.string(m, "QueryLanguage", loc, false).as_deref() {
            None => None,
            Some("JSONPath") => Some(false),
            Some("JSONata") => Some(true),
            Some(other) => {
                self.err(
                    "invalid_value",
                    at(loc, "QueryLanguage"),
                    format!("`QueryLanguage` must be `JSONPath` or `JSONata`, not `{other}`"),
                );
                None
            }
        }
    }

    /// Whether a state is a JSONata state: its own `QueryLanguage`, else
    /// the machine's. As in AWS, a JSONPath machine may have JSONata
    /// states, not the other way round.
    fn state_language(&mut self, m: &Object<String, Value>, loc: &str) -> bool {
        match self.query_language(m, loc) {
            Some(true) => true,
            Some(false) if self.jsonata_machine => {
                self.err(
                    "wrong_query_language",
                    at(loc, "QueryLanguage"),
                    "a JSONata state machine (top-level `QueryLanguage: JSONata`) cannot have \
                     JSONPath states; set the machine's `QueryLanguage` to `JSONPath` to mix them",
                );
                true
            }
            Some(false) => false,
            None => self.jsonata_machine,
        }
    }

    /// Reports the fields of the other query language among `keys` (those
    /// the type allows; others are reported as unknown).
    fn check_language(
        &mut self,
        m: &Object<String, Value>,
        loc: &str,
        allowed: &[&str],
        jsonata: bool,
    ) {
        for key in m.keys().filter(|k| allowed.contains(&k.as_str())) {
            if jsonata {
                if let Some((_, instead)) = JSONPATH_ONLY.iter().find(|(f, _)| f == key) {
                    self.err(
                        "wrong_query_language",
                        at(loc, key),
                        format!(
                            "The field '{key}' is not supported for the JSONata query language; {instead}"
                        ),
                    );
                }
            } else if JSONATA_ONLY.contains(&key.as_str()) {
                self.err(
                    "wrong_query_language",
                    at(loc, key),
                    format!(
                        "The field '{key}' is only supported for the JSONata query language; \
                         set `QueryLanguage: JSONata` on the state or the machine"
                    ),
                );
            }
        }
    }

    /// A JSONata field's value, its expressions parsed (each syntax error
    /// is an `invalid_jsonata` violation at its string's location).
    fn jsonata(&mut self, v: &Value, loc: &str) -> Option<Template> {
        match Template::parse(v, loc) {
            Ok(t) => {
                // Every `$name` read must be assigned somewhere in scope,
                // as for JSONPath (checked once the machine is read).
                let names = t.variables().unwrap_or_default();
                if let Some(scope) = self.var_scope.and_then(|i| self.var_scopes.get_mut(i)) {
                    scope
                        .refs
                        .extend(names.into_iter().map(|n| (n, loc.to_string())));
                }
                Some(t)
            }
            Err(vs) => {
                self.violations.extend(vs);
                None
            }
        }
    }

    fn opt_jsonata(&mut self, m: &Object<String, Value>, key: &str, loc: &str) -> Option<Template> {
        let v = m.get(key)?;
        self.jsonata(v, &at(loc, key))
    }

    fn machine(&mut self, doc: &Value) -> Option<Machine> {
        let m = self.object(doc, "")?;
        self.check_fields(
            m,
            "",
            &[
                "StartAt",
                "States",
                "Comment",
                "Version",
                "TimeoutSeconds",
                "QueryLanguage",
            ],
            &[],
            "a state machine",
        );
        let comment = self.string(m, "Comment", "", false);
        if let Some(version) = self.string(m, "Version", "", false) {
            if version != "1.0" {
                self.err(
                    "invalid_value",
                    "/Version",
                    format!("`Version` must be `1.0`, not `{version}`"),
                );
            }
        }
        self.jsonata_machine = self.query_language(m, "") == Some(true);
        let timeout_seconds = self.opt_integer(m, "TimeoutSeconds", "", 1, MAX_SECONDS);
        let graph = self.graph(m, "", 0);
        self.check_variables();
        let graph = graph?;
        Some(Machine {
            comment,
            graph,
            timeout_seconds,
            resources: self.resources.clone(),
            // Only a machine that mentions `$$` (or JSONata's `$states`)
            // reads the context object.
            uses_context: serde_json::to_string(m)
                .map_or(true, |t| t.contains("$$") || t.contains("$states")),
            max_history_events: crate::asl::run::MAX_HISTORY_EVENTS,
        })
    }

    /// One scope: `StartAt` and `States` of the machine, a branch or a Map
    /// processor (the caller checks the scope's other fields); its
    /// variables are a scope of their own.
    fn graph(&mut self, m: &Object<String, Value>, loc: &str, depth: usize) -> Option<Graph> {
        let outer = self.var_scope;
        self.var_scopes.push(VarScope {
            parent: outer,
            assigned: Vec::new(),
            refs: Vec::new(),
        });
        self.var_scope = Some(self.var_scopes.len() - 1);
        let graph = self.graph_states(m, loc, depth);
        self.var_scope = outer;
        graph
    }

    /// Records the variables a path or intrinsic call reads.
    fn var_refs(&mut self, text: &str, loc: &str) {
        let names = vars::references(text);
        if let Some(scope) = self.var_scope.and_then(|i| self.var_scopes.get_mut(i)) {
            scope
                .refs
                .extend(names.into_iter().map(|n| (n, loc.to_string())));
        }
    }

    /// `Assign` (of a state, a Catch entry or a Choice rule): an object
    /// whose keys are variable names (`name` or `name.$`), checked as a
    /// payload template.
    ///
    /// In a JSONata state the keys are plain names and the values JSONata
    /// templates (`{"total": "{% $states.result.sum %}"}`).
    fn assign(&mut self, m: &Object<String, Value>, loc: &str, jsonata: bool) -> Option<Assign> {
        let v = m.get("Assign")?;
        let aloc = at(loc, "Assign");
        let fields = self.object(v, &aloc)?;
        for key in fields.keys() {
            let name = if jsonata {
                key.as_str()
            } else {
                key.strip_suffix(".$").unwrap_or(key)
            };
            let kloc = at(&aloc, key);
            if let Err(why) = vars::check_name(name) {
                self.err("invalid_variable_name", &kloc, why);
                continue;
            }
            if let Some(scope) = self.var_scope.and_then(|i| self.var_scopes.get_mut(i)) {
                scope.assigned.push((name.to_string(), kloc));
            }
        }
        if jsonata {
            return self.jsonata(v, &aloc).map(Assign::Jsonata);
        }
        self.template(v, &aloc, 0);
        Some(Assign::Paths(v.clone()))
    }

    /// Once the machine is read: every variable a path reads must be
    /// assigned somewhere in its scope or an enclosing one
    /// (`unknown_variable`), and a Parallel branch or Map processor cannot
    /// assign a variable of an enclosing scope (`invalid_assign`).
    fn check_variables(&mut self) {
        let ancestors = |scopes: &[VarScope], i: usize| {
            let mut chain = Vec::new();
            let mut at = scopes[i].parent;
            while let Some(p) = at {
                chain.push(p);
                at = scopes[p].parent;
            }
            chain
        };
        let mut problems = Vec::new();
        for (i, scope) in self.var_scopes.iter().enumerate() {
            let outer = ancestors(&self.var_scopes, i);
            let assigned_in = |j: usize, name: &str| {
                self.var_scopes[j]
                    .assigned
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, l)| l.clone())
            };
            for (name, loc) in &scope.refs {
                let known = std::iter::once(i)
                    .chain(outer.iter().copied())
                    .any(|j| assigned_in(j, name).is_some());
                if !known {
                    problems.push((
                        "unknown_variable",
                        loc.clone(),
                        format!(
                            "the variable `${name}` is not assigned by any state of this scope or of an enclosing one"
                        ),
                    ));
                }
            }
            for (name, loc) in &scope.assigned {
                if let Some(first) = outer.iter().find_map(|&j| assigned_in(j, name)) {
                    problems.push((
                        "invalid_assign",
                        loc.clone(),
                        format!(
                            "`{name}` is a variable of an enclosing scope (assigned at {first}): a Parallel branch or Map iteration can read it but not assign it"
                        ),
                    ));
                }
            }
        }
        for (code, loc, message) in problems {
            self.err(code, loc, message);
        }
    }

    fn graph_states(
        &mut self,
        m: &Object<String, Value>,
        loc: &str,
        depth: usize,
    ) -> Option<Graph> {
        if depth > MAX_DEPTH {
            self.err("invalid_value", loc, "states are nested too deeply");
            return None;
        }
        let start = self.string(m, "StartAt", loc, true);
        let states_loc = at(loc, "States");
        let states = match m.get("States") {
            None => {
                self.err("missing_field", &states_loc, "`States` is required");
                return None;
            }
            Some(v) => self.object(v, &states_loc)?,
        };
        if states.is_empty() {
            self.err(
                "invalid_value",
                &states_loc,
                "`States` must hold at least one state",
            );
            return None;
        }
        let scope = Scope {
            index: states
                .keys()
                .enumerate()
                .map(|(i, k)| (k.as_str(), i))
                .collect(),
            loc: loc.to_string(),
        };
        let mut compiled = Vec::with_capacity(states.len());
        let mut flows = Vec::with_capacity(states.len());
        for (name, v) in states {
            let sloc = at(&states_loc, name);
            self.check_name(name, &sloc);
            let mut flow = Flow::default();
            compiled.push(self.state(name, v, &sloc, &scope, &mut flow, depth));
            flows.push(flow);
        }
        let start_at = start.and_then(|s| self.target(&s, &at(loc, "StartAt"), &scope, None));

        if let Some(start) = start_at {
            // Breadth-first from StartAt over Next, Default, Choices and Catch.
            let mut seen = vec![false; flows.len()];
            let mut queue = VecDeque::from([start]);
            while let Some(i) = queue.pop_front() {
                if std::mem::replace(&mut seen[i], true) {
                    continue;
                }
                queue.extend(flows[i].edges.iter().copied().filter(|&j| !seen[j]));
            }
            for (name, reached) in states.keys().zip(&seen) {
                if !reached {
                    self.err(
                        "unreachable_state",
                        at(&states_loc, name),
                        format!("state `{name}` cannot be reached from `StartAt`"),
                    );
                }
            }
        }
        // Only when every type is known: a state with a broken Type might
        // have been the terminal one.
        if flows.iter().all(|f| f.terminal.is_some())
            && !flows.iter().any(|f| f.terminal == Some(true))
        {
            self.err(
                "no_terminal_state",
                loc,
                "no state ends this scope: give one `End: true` or add a Succeed or Fail state",
            );
        }
        let states: Option<Vec<State>> = compiled.into_iter().collect();
        Some(Graph {
            start_at: start_at?,
            states: states?,
        })
    }

    fn check_name(&mut self, name: &str, loc: &str) {
        if name.is_empty() || name.chars().count() > 80 {
            self.err(
                "invalid_value",
                loc,
                "a state name must be 1 to 80 characters long",
            );
        }
        // Names are unique across the whole machine, as in AWS: histories
        // and task tokens identify a state by its name alone.
        let first = self
            .everywhere
            .get(name)
            .and_then(|locs| locs.first())
            .filter(|first| first.as_str() != loc)
            .cloned();
        if let Some(first) = first {
            self.err(
                "duplicate_state",
                loc,
                format!("state name `{name}` is already used at {first}"),
            );
        }
    }

    /// Resolves a transition target in `scope`, recording the edge.
    fn target(
        &mut self,
        name: &str,
        loc: &str,
        scope: &Scope<'_>,
        flow: Option<&mut Flow>,
    ) -> Option<usize> {
        if let Some(&i) = scope.index.get(name) {
            if let Some(flow) = flow {
                flow.edges.push(i);
            }
            return Some(i);
        }
        let elsewhere = self.everywhere.get(name).and_then(|l| l.first()).cloned();
        let scope_name = if scope.loc.is_empty() {
            "the state machine's top level".to_string()
        } else {
            scope.loc.clone()
        };
        let message = match elsewhere {
            Some(other) => format!(
                "`{name}` is at {other}, outside this scope ({scope_name}): \
                 transitions cannot enter or leave a Parallel branch or Map processor"
            ),
            None => format!("no state named `{name}` in {scope_name}"),
        };
        self.err("unknown_state", loc, message);
        None
    }

    fn state(
        &mut self,
        name: &str,
        v: &Value,
        loc: &str,
        scope: &Scope<'_>,
        flow: &mut Flow,
        depth: usize,
    ) -> Option<State> {
        let m = self.object(v, loc)?;
        let ty = match m.get("Type") {
            None => {
                self.err("missing_field", at(loc, "Type"), "`Type` is required");
                None
            }
            Some(Value::String(t)) if STATE_TYPES.contains(&t.as_str()) => Some(t.as_str()),
            Some(Value::String(t)) => {
                self.err(
                    "invalid_value",
                    at(loc, "Type"),
                    format!(
                        "unknown state type `{t}`; expected one of: {}",
                        STATE_TYPES.join(", ")
                    ),
                );
                None
            }
            Some(other) => {
                self.err(
                    "wrong_type",
                    at(loc, "Type"),
                    format!("`Type` must be a string, found {}", type_name(other)),
                );
                None
            }
        };
        let Some(ty) = ty else {
            // Without a type nothing else can be judged; the transitions are
            // still followed so their targets are not called unreachable.
            let nested = ["Catch", "Choices"]
                .into_iter()
                .filter_map(|key| m.get(key).and_then(Value::as_array))
                .flatten()
                .filter_map(|entry| entry.get("Next"));
            let targets = ["Next", "Default"]
                .into_iter()
                .filter_map(|key| m.get(key))
                .chain(nested);
            for target in targets {
                if let Some(&i) = target.as_str().and_then(|t| scope.index.get(t)) {
                    flow.edges.push(i);
                }
            }
            return None;
        };
        let (allowed, refused) = state_fields(ty);
        let what = format!("a {ty} state");
        self.check_fields(m, loc, allowed, refused, &what);
        let jsonata = self.state_language(m, loc);
        self.check_language(m, loc, allowed, jsonata);
        // In a JSONata state the JSONPath fields are refused above and
        // read no further (and the other way round).
        let has = |f: &str| {
            allowed.contains(&f)
                && if jsonata {
                    !JSONPATH_ONLY.iter().any(|(j, _)| *j == f)
                } else {
                    !JSONATA_ONLY.contains(&f)
                }
        };

        let comment = self.string(m, "Comment", loc, false);
        let input_path = if has("InputPath") {
            self.path_field(m, "InputPath", loc, PathKind::Any)
        } else {
            PathField::default()
        };
        let output_path = if has("OutputPath") {
            self.path_field(m, "OutputPath", loc, PathKind::Any)
        } else {
            PathField::default()
        };
        let result_path = if has("ResultPath") {
            self.path_field(m, "ResultPath", loc, PathKind::Reference)
        } else {
            PathField::default()
        };
        // Map's `Parameters` is the legacy spelling of `ItemSelector`.
        let parameters = if has("Parameters") && ty != "Map" {
            self.payload(m, "Parameters", loc)
        } else {
            None
        };
        let result_selector = if has("ResultSelector") {
            self.payload(m, "ResultSelector", loc)
        } else {
            None
        };

        let next = if has("Next") {
            self.next_or_end(m, loc, scope, flow)
        } else {
            flow.terminal = Some(matches!(ty, "Succeed" | "Fail"));
            None
        };
        let retry = if has("Retry") {
            self.retriers(m, loc)
        } else {
            Vec::new()
        };
        let catch = if has("Catch") {
            self.catchers(m, loc, scope, flow, jsonata)
        } else {
            Vec::new()
        };
        let assign = if has("Assign") {
            self.assign(m, loc, jsonata)
        } else {
            None
        };
        let js = jsonata.then(|| {
            Box::new(Jsonata {
                arguments: if has("Arguments") {
                    self.opt_jsonata(m, "Arguments", loc)
                } else {
                    None
                },
                output: if has("Output") {
                    self.opt_jsonata(m, "Output", loc)
                } else {
                    None
                },
            })
        });

        let kind = match ty {
            "Task" => self.task(m, loc, jsonata).map(|t| Kind::Task(Box::new(t))),
            "Pass" => Some(Kind::Pass {
                result: if has("Result") {
                    m.get("Result").cloned()
                } else {
                    None
                },
            }),
            "Choice" => self.choice(m, loc, scope, flow, depth, jsonata),
            "Wait" => self.wait(m, loc, jsonata).map(Kind::Wait),
            "Succeed" => Some(Kind::Succeed),
            "Fail" => self.fail(m, loc, jsonata).map(|f| Kind::Fail(Box::new(f))),
            "Parallel" => self.parallel(m, loc, depth),
            _ => self
                .map(m, loc, depth, jsonata)
                .map(|m| Kind::Map(Box::new(m))),
        };
        // `next` is `None` both for End and for a bad target: the latter has
        // been reported, and the violation list decides.
        Some(State {
            name: name.to_string(),
            comment,
            input_path,
            parameters,
            result_selector,
            result_path,
            output_path,
            next,
            retry,
            catch,
            assign,
            jsonata: js,
            kind: kind?,
        })
    }

    /// `Next` xor `End: true`.
    fn next_or_end(
        &mut self,
        m: &Object<String, Value>,
        loc: &str,
        scope: &Scope<'_>,
        flow: &mut Flow,
    ) -> Option<usize> {
        let end = match m.get("End") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                self.err(
                    "wrong_type",
                    at(loc, "End"),
                    format!("`End` must be a boolean, found {}", type_name(other)),
                );
                // Unknown intent: do not also report a missing Next or a
                // missing terminal state.
                true
            }
        };
        flow.terminal = Some(end);
        let next = self.string(m, "Next", loc, false);
        match (next, end) {
            (Some(_), true) => {
                self.err(
                    "conflicting_fields",
                    at(loc, "End"),
                    "a state has either `Next` or `End: true`, not both",
                );
                None
            }
            (Some(n), false) => self.target(&n, &at(loc, "Next"), scope, Some(flow)),
            (None, true) => None,
            (None, false) => {
                if !matches!(m.get("Next"), Some(v) if !v.is_string()) {
                    self.err(
                        "missing_field",
                        at(loc, "Next"),
                        "a state needs `Next` or `End: true`",
                    );
                }
                None
            }
        }
    }

    /// Parameters, ResultSelector, ItemSelector: an object, checked as a template.
    fn payload(&mut self, m: &Object<String, Value>, key: &str, loc: &str) -> Option<Value> {
        let v = m.get(key)?;
        let ploc = at(loc, key);
        self.object(v, &ploc)?;
        self.template(v, &ploc, 0);
        Some(v.clone())
    }

    /// Every `.$` key's value must be a string holding a path or an
    /// intrinsic call. Checked here key by key (with
    /// [`data::check_path`] / [`intrinsic::check`]) so each problem gets its
    /// own exact location.
    fn template(&mut self, v: &Value, loc: &str, depth: usize) {
        if depth > MAX_DEPTH {
            self.err("invalid_template", loc, "the template is nested too deeply");
            return;
        }
        match v {
            Value::Object(m) => {
                for (key, value) in m {
                    let kloc = at(loc, key);
                    let Some(base) = key.strip_suffix(".$") else {
                        self.template(value, &kloc, depth + 1);
                        continue;
                    };
                    if base.is_empty() {
                        self.err(
                            "invalid_template",
                            &kloc,
                            "`.$` needs a field name before it",
                        );
                    }
                    if m.contains_key(base) {
                        self.err(
                            "invalid_template",
                            &kloc,
                            format!("`{key}` and `{base}` would both set the field `{base}`"),
                        );
                    }
                    let Value::String(text) = value else {
                        self.err(
                            "invalid_template",
                            &kloc,
                            format!(
                                "the value of `{key}` must be a string holding a path or an \
                                 intrinsic function, found {}",
                                type_name(value)
                            ),
                        );
                        continue;
                    };
                    if intrinsic::is_call(text) {
                        if let Err(why) = intrinsic::check(text) {
                            self.err("invalid_intrinsic", &kloc, format!("`{key}`: {why}"));
                        }
                    } else if let Err(why) = data::check_path(text) {
                        self.err("invalid_path", &kloc, format!("`{key}`: {why}"));
                    }
                    self.var_refs(text, &kloc);
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    self.template(item, &at_index(loc, i), depth + 1);
                }
            }
            _ => {}
        }
    }

    /// A non-empty list of error names; `States.ALL` must be alone.
    fn error_equals(&mut self, m: &Object<String, Value>, loc: &str) -> Vec<String> {
        let eloc = at(loc, "ErrorEquals");
        let items = match m.get("ErrorEquals") {
            None => {
                self.err("missing_field", &eloc, "`ErrorEquals` is required");
                return Vec::new();
            }
            Some(Value::Array(items)) => items,
            Some(other) => {
                self.err(
                    "wrong_type",
                    &eloc,
                    format!(
                        "`ErrorEquals` must be an array of error names, found {}",
                        type_name(other)
                    ),
                );
                return Vec::new();
            }
        };
        if items.is_empty() {
            self.err(
                "invalid_value",
                &eloc,
                "`ErrorEquals` must name at least one error",
            );
        }
        let mut names = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let iloc = at_index(&eloc, i);
            match item {
                Value::String(s) if s.is_empty() => {
                    self.err("invalid_value", iloc, "an error name cannot be empty");
                }
                Value::String(s) => {
                    if s.starts_with(name::STATES_PREFIX)
                        && !name::AWS_RESERVED.contains(&s.as_str())
                    {
                        self.err(
                            "invalid_value",
                            iloc,
                            format!(
                                "`{s}` is not a predefined error; the `States.` prefix is \
                                 reserved for: {}",
                                name::AWS_RESERVED.join(", ")
                            ),
                        );
                    } else if s == name::ALL && items.len() > 1 {
                        self.err(
                            "invalid_value",
                            iloc,
                            "`States.ALL` must appear alone in `ErrorEquals`",
                        );
                    }
                    names.push(s.clone());
                }
                other => self.err(
                    "wrong_type",
                    iloc,
                    format!("an error name must be a string, found {}", type_name(other)),
                ),
            }
        }
        names
    }

    /// The entries of `Retry` or `Catch`, with `States.ALL` only in the last.
    fn entries<'v>(
        &mut self,
        m: &'v Object<String, Value>,
        key: &str,
        loc: &str,
    ) -> Vec<(String, &'v Object<String, Value>)> {
        let kloc = at(loc, key);
        let items = match m.get(key) {
            None => return Vec::new(),
            Some(Value::Array(items)) => items,
            Some(other) => {
                self.err(
                    "wrong_type",
                    &kloc,
                    format!("`{key}` must be an array, found {}", type_name(other)),
                );
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let iloc = at_index(&kloc, i);
            if let Some(entry) = self.object(item, &iloc) {
                let last = i + 1 == items.len();
                let all = entry
                    .get("ErrorEquals")
                    .and_then(Value::as_array)
                    .is_some_and(|e| e.iter().any(|n| n == name::ALL));
                if all && !last {
                    self.err(
                        "invalid_value",
                        at(&iloc, "ErrorEquals"),
                        format!("`States.ALL` must be in the last entry of `{key}`"),
                    );
                }
                out.push((iloc, entry));
            }
        }
        out
    }

    fn retriers(&mut self, m: &Object<String, Value>, loc: &str) -> Vec<Retrier> {
        let mut out = Vec::new();
        for (rloc, r) in self.entries(m, "Retry", loc) {
            self.check_fields(
                r,
                &rloc,
                &[
                    "ErrorEquals",
                    "IntervalSeconds",
                    "MaxAttempts",
                    "BackoffRate",
                    "MaxDelaySeconds",
                    "JitterStrategy",
                    "Comment",
                ],
                &[],
                "a retrier",
            );
            self.string(r, "Comment", &rloc, false);
            let error_equals = self.error_equals(r, &rloc);
            let interval_seconds = self
                .opt_integer(r, "IntervalSeconds", &rloc, 1, MAX_SECONDS)
                .unwrap_or(1);
            let max_attempts = self
                .opt_integer(r, "MaxAttempts", &rloc, 0, MAX_SECONDS)
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or(3);
            let backoff_rate = match r.get("BackoffRate") {
                None => 2.0,
                Some(v) => {
                    let bloc = at(&rloc, "BackoffRate");
                    match self.number(v, &bloc, "BackoffRate") {
                        Some(b) if b >= 1.0 && b.is_finite() => b,
                        Some(b) => {
                            self.err(
                                "invalid_value",
                                bloc,
                                format!("`BackoffRate` must be at least 1.0, not {b}"),
                            );
                            2.0
                        }
                        None => 2.0,
                    }
                }
            };
            // AWS caps MaxDelaySeconds below 31622400 (366 days).
            let max_delay_seconds = self.opt_integer(r, "MaxDelaySeconds", &rloc, 1, 31_622_399);
            let jitter_full = match self.string(r, "JitterStrategy", &rloc, false).as_deref() {
                None | Some("NONE") => false,
                Some("FULL") => true,
                Some(other) => {
                    self.err(
                        "invalid_value",
                        at(&rloc, "JitterStrategy"),
                        format!("`JitterStrategy` must be `FULL` or `NONE`, not `{other}`"),
                    );
                    false
                }
            };
            out.push(Retrier {
                error_equals,
                interval_seconds,
                max_attempts,
                backoff_rate,
                max_delay_seconds,
                jitter_full,
            });
        }
        out
    }

    fn catchers(
        &mut self,
        m: &Object<String, Value>,
        loc: &str,
        scope: &Scope<'_>,
        flow: &mut Flow,
        jsonata: bool,
    ) -> Vec<Catcher> {
        let mut out = Vec::new();
        for (cloc, c) in self.entries(m, "Catch", loc) {
            let fields = [
                "ErrorEquals",
                "Next",
                "ResultPath",
                "Comment",
                "Assign",
                "Output",
            ];
            self.check_fields(c, &cloc, &fields, &[], "a catcher");
            self.check_language(c, &cloc, &fields, jsonata);
            let assign = self.assign(c, &cloc, jsonata);
            self.string(c, "Comment", &cloc, false);
            let error_equals = self.error_equals(c, &cloc);
            let (result_path, output) = if jsonata {
                (PathField::default(), self.opt_jsonata(c, "Output", &cloc))
            } else {
                (
                    self.path_field(c, "ResultPath", &cloc, PathKind::Reference),
                    None,
                )
            };
            let next = self
                .string(c, "Next", &cloc, true)
                .and_then(|n| self.target(&n, &at(&cloc, "Next"), scope, Some(&mut *flow)));
            if let Some(next) = next {
                out.push(Catcher {
                    error_equals,
                    result_path,
                    next,
                    assign,
                    output,
                });
            }
        }
        out
    }

    /// `…Seconds` or `…SecondsPath`, not both.
    fn seconds(
        &mut self,
        m: &Object<String, Value>,
        key: &str,
        loc: &str,
        jsonata: bool,
    ) -> Result<Option<Seconds>, ()> {
        let path_key = format!("{key}Path");
        // A JSONata state's `…Path` is refused by `check_language`.
        let path = m.get(&path_key).filter(|_| !jsonata);
        match (m.get(key), path) {
            (Some(_), Some(_)) => {
                self.err(
                    "conflicting_fields",
                    at(loc, &path_key),
                    format!("give either `{key}` or `{path_key}`, not both"),
                );
                Err(())
            }
            (Some(v), None) => match v.as_str().filter(|t| jsonata && jsonata::is_expression(t)) {
                Some(_) => self
                    .jsonata(v, &at(loc, key))
                    .map(|t| Some(Seconds::Expression(t)))
                    .ok_or(()),
                None => self
                    .integer(v, &at(loc, key), key, 1, MAX_SECONDS)
                    .map(|n| Some(Seconds::Fixed(n)))
                    .ok_or(()),
            },
            (None, Some(v)) => self
                .path(v, &at(loc, &path_key), &path_key, PathKind::Single)
                .map(|p| Some(Seconds::Path(p)))
                .ok_or(()),
            (None, None) => Ok(None),
        }
    }

    fn task(&mut self, m: &Object<String, Value>, loc: &str, jsonata: bool) -> Option<Task> {
        let timeout = self.seconds(m, "TimeoutSeconds", loc, jsonata);
        let heartbeat = self.seconds(m, "HeartbeatSeconds", loc, jsonata);
        if let (Ok(Some(Seconds::Fixed(t))), Ok(Some(Seconds::Fixed(h)))) = (&timeout, &heartbeat) {
            if h >= t {
                self.err(
                    "invalid_value",
                    at(loc, "HeartbeatSeconds"),
                    format!("`HeartbeatSeconds` ({h}) must be less than `TimeoutSeconds` ({t})"),
                );
            }
        }
        let resource = self.string(m, "Resource", loc, true)?;
        let rloc = at(loc, "Resource");
        // A JSONata state's request is its `Arguments`.
        let parameters = m.get(if jsonata { "Arguments" } else { "Parameters" });
        let ploc = at(loc, if jsonata { "Arguments" } else { "Parameters" });

        // An activity: its worker takes the task and answers the token, so
        // it is a callback task that hands out no `$$.Task.Token` itself.
        let activity = crate::exchange::activity_name(&resource).is_some();
        let (integration, wait_for_token) = if activity {
            let arn = resource.clone();
            (
                Some(Integration::Function {
                    participant: Participant::Activity { arn },
                }),
                true,
            )
        } else if resource == LAMBDA_INVOKE
            || resource == format!("{LAMBDA_INVOKE}{WAIT_FOR_TASK_TOKEN}")
        {
            self.lambda_invoke(parameters, &ploc, loc);
            (
                Some(Integration::LambdaInvoke),
                resource.ends_with(WAIT_FOR_TASK_TOKEN),
            )
        } else {
            let (arn, wait) = match resource.strip_suffix(WAIT_FOR_TASK_TOKEN) {
                Some(arn) => (arn, true),
                None => (resource.as_str(), false),
            };
            let participant = self.resources.resolve(arn);
            if participant.is_none() {
                self.err(
                    "unknown_resource",
                    &rloc,
                    format!("no rule of the resource map matches `{arn}`; add one that binds it to a URL or handler"),
                );
            }
            (
                participant.map(|participant| Integration::Function { participant }),
                wait,
            )
        };
        if wait_for_token && !activity && !parameters.is_some_and(|p| mentions_task_token(p, 0)) {
            // As in AWS: without the token in the request nobody can ever
            // complete the task.
            self.err(
                "missing_task_token",
                if parameters.is_some() {
                    ploc.as_str()
                } else {
                    loc
                },
                "a `.waitForTaskToken` task must pass `$$.Task.Token` in its Parameters \
                 (e.g. `\"token.$\": \"$$.Task.Token\"`), or a JSONata state \
                 `$states.context.Task.Token` in its Arguments",
            );
        }
        Some(Task {
            resource,
            integration: integration?,
            wait_for_token,
            timeout: timeout.ok()?,
            heartbeat: heartbeat.ok()?,
        })
    }

    /// `lambda:invoke` needs `FunctionName`; a literal one is resolved now
    /// so that a missing binding is found at deploy time, not at run time.
    /// `ploc` is the location of the request's field: `Parameters`, or a
    /// JSONata state's `Arguments`.
    fn lambda_invoke(&mut self, parameters: Option<&Value>, ploc: &str, loc: &str) {
        let field = ploc.rsplit('/').next().unwrap_or("Parameters");
        let Some(params) = parameters.and_then(Value::as_object) else {
            if parameters.is_none() {
                self.err(
                    "missing_field",
                    at(loc, field),
                    format!("`arn:aws:states:::lambda:invoke` needs {field} with `FunctionName`"),
                );
            }
            return;
        };
        match (params.get("FunctionName"), params.get("FunctionName.$")) {
            (None, None) => self.err(
                "missing_field",
                at(ploc, "FunctionName"),
                format!(
                    "`lambda:invoke` needs `FunctionName` (or `FunctionName.$`) in its {field}"
                ),
            ),
            // A JSONata expression: known only once evaluated.
            (Some(Value::String(name)), _) if jsonata::is_expression(name) => {}
            (Some(Value::String(name)), _) => {
                if self.resources.resolve(name).is_none() {
                    self.err(
                        "unknown_resource",
                        at(ploc, "FunctionName"),
                        format!("no rule of the resource map matches the function `{name}`"),
                    );
                }
            }
            (Some(other), _) => self.err(
                "wrong_type",
                at(ploc, "FunctionName"),
                format!(
                    "`FunctionName` must be a function name or ARN, found {}",
                    type_name(other)
                ),
            ),
            // Known only once rendered; the template check covers the path.
            (None, Some(_)) => {}
        }
    }

    fn choice(
        &mut self,
        m: &Object<String, Value>,
        loc: &str,
        scope: &Scope<'_>,
        flow: &mut Flow,
        depth: usize,
        jsonata: bool,
    ) -> Option<Kind> {
        let cloc = at(loc, "Choices");
        let items = match m.get("Choices") {
            None => {
                self.err("missing_field", &cloc, "`Choices` is required");
                None
            }
            Some(Value::Array(items)) if items.is_empty() => {
                self.err(
                    "invalid_value",
                    &cloc,
                    "`Choices` must hold at least one rule",
                );
                None
            }
            Some(Value::Array(items)) => Some(items),
            Some(other) => {
                self.err(
                    "wrong_type",
                    &cloc,
                    format!("`Choices` must be an array, found {}", type_name(other)),
                );
                None
            }
        };
        let mut choices = Some(Vec::new());
        for (i, item) in items.into_iter().flatten().enumerate() {
            let iloc = at_index(&cloc, i);
            let Some(rule_obj) = self.object(item, &iloc) else {
                choices = None;
                continue;
            };
            let (rule, output) = if jsonata {
                (
                    self.condition(rule_obj, &iloc),
                    self.opt_jsonata(rule_obj, "Output", &iloc),
                )
            } else {
                (self.rule(rule_obj, &iloc, true, depth), None)
            };
            let assign = self.assign(rule_obj, &iloc, jsonata);
            let next = self
                .string(rule_obj, "Next", &iloc, true)
                .and_then(|n| self.target(&n, &at(&iloc, "Next"), scope, Some(&mut *flow)));
            match (rule, next, choices.as_mut()) {
                (Some(rule), Some(next), Some(list)) => list.push(Branch {
                    rule,
                    next,
                    assign,
                    output,
                }),
                _ => choices = None,
            }
        }
        let default = match self.string(m, "Default", loc, false) {
            Some(d) => Some(self.target(&d, &at(loc, "Default"), scope, Some(flow))?),
            None => None,
        };
        Some(Kind::Choice {
            choices: choices.filter(|_| items.is_some())?,
            default,
        })
    }

    /// A JSONata Choice rule: `Condition` (a boolean, or an expression that
    /// gives one), `Next`, and optionally `Assign`, `Output` and `Comment`.
    fn condition(&mut self, m: &Object<String, Value>, loc: &str) -> Option<Rule> {
        for key in m.keys() {
            let k = key.as_str();
            if matches!(k, "Condition" | "Next" | "Assign" | "Output" | "Comment") {
                continue;
            }
            if matches!(k, "Variable" | "And" | "Or" | "Not") || comparison(k).is_some() {
                self.err(
                    "wrong_query_language",
                    at(loc, k),
                    format!(
                        "The field '{k}' is not supported for the JSONata query language; \
                         use `Condition`"
                    ),
                );
            } else {
                self.err(
                    "unknown_field",
                    at(loc, k),
                    format!(
                        "unknown field `{k}` in a JSONata Choice rule; expected Condition, Next, \
                         Assign, Output or Comment"
                    ),
                );
            }
        }
        self.string(m, "Comment", loc, false);
        let cloc = at(loc, "Condition");
        match m.get("Condition") {
            None => {
                self.err(
                    "missing_field",
                    &cloc,
                    "a JSONata Choice rule needs a `Condition`",
                );
                None
            }
            Some(v @ (Value::Bool(_) | Value::String(_))) => {
                if let Value::String(text) = v {
                    if !jsonata::is_expression(text) {
                        self.err(
                            "invalid_value",
                            &cloc,
                            "`Condition` must be a boolean or a JSONata expression `{% … %}`",
                        );
                        return None;
                    }
                }
                self.jsonata(v, &cloc).map(Rule::Condition)
            }
            Some(other) => {
                self.err(
                    "wrong_type",
                    &cloc,
                    format!(
                        "`Condition` must be a boolean or a JSONata expression, found {}",
                        type_name(other)
                    ),
                );
                None
            }
        }
    }

    /// A Choice rule: exactly one of And, Or, Not or a comparison operator.
    fn rule(
        &mut self,
        m: &Object<String, Value>,
        loc: &str,
        top: bool,
        depth: usize,
    ) -> Option<Rule> {
        if depth > MAX_DEPTH {
            self.err("invalid_value", loc, "the Choice rule is nested too deeply");
            return None;
        }
        let mut operators = Vec::new();
        for key in m.keys() {
            let k = key.as_str();
            if matches!(k, "And" | "Or" | "Not") || comparison(k).is_some() {
                operators.push(k);
            } else if matches!(k, "Variable" | "Comment") || (top && matches!(k, "Next" | "Assign"))
            {
                // Read below (Variable, Comment) or by the caller (Next, Assign).
            } else if k == "Next" || k == "Assign" {
                self.err(
                    "unknown_field",
                    at(loc, k),
                    format!(
                        "`{k}` is only allowed on a top-level Choice rule, not inside And/Or/Not"
                    ),
                );
            } else {
                self.err(
                    "unknown_field",
                    at(loc, k),
                    format!(
                        "unknown field `{k}` in a Choice rule; expected a comparison operator \
                         (StringEquals, NumericLessThanPath, IsPresent, …), And, Or or Not"
                    ),
                );
            }
        }
        self.string(m, "Comment", loc, false);
        let op = self.exactly_one(
            &operators,
            loc,
            "a Choice rule needs one comparison operator (with `Variable`) or And, Or or Not",
            "a Choice rule holds exactly one operator",
        )?;
        let oloc = at(loc, op);
        let value = m.get(op)?;
        match op {
            "And" | "Or" => {
                if m.contains_key("Variable") {
                    self.err(
                        "unknown_field",
                        at(loc, "Variable"),
                        format!("`Variable` is not used with `{op}`"),
                    );
                }
                let items = match value {
                    Value::Array(items) if !items.is_empty() => items,
                    Value::Array(_) => {
                        self.err(
                            "invalid_value",
                            &oloc,
                            format!("`{op}` must hold at least one rule"),
                        );
                        return None;
                    }
                    other => {
                        self.err(
                            "wrong_type",
                            &oloc,
                            format!(
                                "`{op}` must be an array of rules, found {}",
                                type_name(other)
                            ),
                        );
                        return None;
                    }
                };
                let mut rules = Some(Vec::new());
                for (i, item) in items.iter().enumerate() {
                    let iloc = at_index(&oloc, i);
                    let rule = self
                        .object(item, &iloc)
                        .and_then(|r| self.rule(r, &iloc, false, depth + 1));
                    match (rule, rules.as_mut()) {
                        (Some(rule), Some(list)) => list.push(rule),
                        _ => rules = None,
                    }
                }
                let rules = rules?;
                Some(if op == "And" {
                    Rule::And(rules)
                } else {
                    Rule::Or(rules)
                })
            }
            "Not" => {
                if m.contains_key("Variable") {
                    self.err(
                        "unknown_field",
                        at(loc, "Variable"),
                        "`Variable` is not used with `Not`",
                    );
                }
                let inner = self.object(value, &oloc)?;
                let rule = self.rule(inner, &oloc, false, depth + 1)?;
                Some(Rule::Not(Box::new(rule)))
            }
            _ => {
                let (op_kind, expect, is_path) = comparison(op)?;
                let variable = match m.get("Variable") {
                    None => {
                        self.err(
                            "missing_field",
                            at(loc, "Variable"),
                            format!("`{op}` needs a `Variable` to compare"),
                        );
                        None
                    }
                    Some(v) => self.path(v, &at(loc, "Variable"), "Variable", PathKind::Any),
                };
                let operand = if is_path {
                    self.path(value, &oloc, op, PathKind::Any)
                        .map(Operand::Path)
                } else {
                    self.operand(value, &oloc, op, expect).map(Operand::Value)
                };
                Some(Rule::Compare {
                    variable: variable?,
                    op: op_kind,
                    operand: operand?,
                })
            }
        }
    }

    /// A literal comparison operand of the operator's type.
    fn operand(&mut self, v: &Value, loc: &str, op: &str, expect: Expect) -> Option<Value> {
        let (ok, wanted) = match expect {
            Expect::String | Expect::Timestamp => (v.is_string(), "a string"),
            Expect::Number => (v.is_number(), "a number"),
            Expect::Boolean => (v.is_boolean(), "a boolean"),
        };
        if !ok {
            self.err(
                "wrong_type",
                loc,
                format!("`{op}` takes {wanted}, found {}", type_name(v)),
            );
            return None;
        }
        if let (Expect::Timestamp, Value::String(s)) = (expect, v) {
            if !is_timestamp(s) {
                self.err(
                    "invalid_value",
                    loc,
                    format!("`{s}` is not an RFC 3339 timestamp like `2016-03-14T01:59:00Z`"),
                );
                return None;
            }
        }
        Some(v.clone())
    }

    /// Exactly one of Seconds, Timestamp, SecondsPath, TimestampPath.
    ///
    /// In a JSONata state, `Seconds` and `Timestamp` may be expressions (the
    /// `…Path` forms are refused by `check_language`).
    fn wait(&mut self, m: &Object<String, Value>, loc: &str, jsonata: bool) -> Option<Wait> {
        let keys: &[&str] = if jsonata {
            &["Seconds", "Timestamp"]
        } else {
            &["Seconds", "Timestamp", "SecondsPath", "TimestampPath"]
        };
        let given: Vec<&str> = keys
            .iter()
            .copied()
            .filter(|k| m.contains_key(*k))
            .collect();
        let key = self.exactly_one(
            &given,
            loc,
            "a Wait state needs one of `Seconds`, `Timestamp`, `SecondsPath` or `TimestampPath`",
            "a Wait state takes exactly one duration",
        )?;
        let kloc = at(loc, key);
        let v = m.get(key)?;
        if let Some(text) = v.as_str().filter(|t| jsonata && jsonata::is_expression(t)) {
            let t = self.jsonata(&Value::String(text.to_string()), &kloc)?;
            return Some(if key == "Seconds" {
                Wait::SecondsExpression(t)
            } else {
                Wait::TimestampExpression(t)
            });
        }
        match key {
            "Seconds" => self
                .integer(v, &kloc, key, 0, MAX_SECONDS)
                .map(Wait::Seconds),
            "Timestamp" => match v {
                Value::String(s) if is_timestamp(s) => Some(Wait::Timestamp(s.clone())),
                Value::String(s) => {
                    self.err(
                        "invalid_value",
                        kloc,
                        format!("`{s}` is not an RFC 3339 timestamp like `2016-03-14T01:59:00Z`"),
                    );
                    None
                }
                other => {
                    self.err(
                        "wrong_type",
                        kloc,
                        format!("`Timestamp` must be a string, found {}", type_name(other)),
                    );
                    None
                }
            },
            "SecondsPath" => self
                .path(v, &kloc, key, PathKind::Single)
                .map(Wait::SecondsPath),
            _ => self
                .path(v, &kloc, key, PathKind::Single)
                .map(Wait::TimestampPath),
        }
    }

    fn fail(&mut self, m: &Object<String, Value>, loc: &str, jsonata: bool) -> Option<Fail> {
        if jsonata {
            // `Error` and `Cause`: a string or an expression giving one.
            let field = |c: &mut Self, key: &str| -> (Option<String>, Option<Template>) {
                match m.get(key) {
                    Some(Value::String(text)) if jsonata::is_expression(text) => {
                        (None, c.opt_jsonata(m, key, loc))
                    }
                    _ => (c.string(m, key, loc, false), None),
                }
            };
            let (error, error_expression) = field(self, "Error");
            let (cause, cause_expression) = field(self, "Cause");
            return Some(Fail {
                error,
                cause,
                error_path: None,
                cause_path: None,
                error_expression,
                cause_expression,
            });
        }
        let mut ok = true;
        let mut pair = |c: &mut Self, key: &str| -> (Option<String>, Option<String>) {
            let path_key = format!("{key}Path");
            let fixed = c.string(m, key, loc, false);
            let path = m.get(&path_key).and_then(|v| {
                let ploc = at(loc, &path_key);
                // A path or, as the developer guide's Fail state allows,
                // an intrinsic function.
                if let Some(text) = v.as_str().filter(|t| intrinsic::is_call(t)) {
                    c.var_refs(text, &ploc);
                    return match intrinsic::check(text) {
                        Ok(()) => Some(text.to_string()),
                        Err(why) => {
                            c.err("invalid_intrinsic", &ploc, format!("`{path_key}`: {why}"));
                            None
                        }
                    };
                }
                c.path(v, &ploc, &path_key, PathKind::Single)
            });
            if m.contains_key(key) && m.contains_key(&path_key) {
                c.err(
                    "conflicting_fields",
                    at(loc, &path_key),
                    format!("give either `{key}` or `{path_key}`, not both"),
                );
                ok = false;
            }
            (fixed, path)
        };
        let (error, error_path) = pair(self, "Error");
        let (cause, cause_path) = pair(self, "Cause");
        ok.then_some(Fail {
            error,
            cause,
            error_path,
            cause_path,
            error_expression: None,
            cause_expression: None,
        })
    }

    fn parallel(&mut self, m: &Object<String, Value>, loc: &str, depth: usize) -> Option<Kind> {
        let bloc = at(loc, "Branches");
        let items = match m.get("Branches") {
            None => {
                self.err("missing_field", &bloc, "`Branches` is required");
                return None;
            }
            Some(Value::Array(items)) if items.is_empty() => {
                self.err(
                    "invalid_value",
                    &bloc,
                    "`Branches` must hold at least one branch",
                );
                return None;
            }
            Some(Value::Array(items)) => items,
            Some(other) => {
                self.err(
                    "wrong_type",
                    &bloc,
                    format!("`Branches` must be an array, found {}", type_name(other)),
                );
                return None;
            }
        };
        let mut branches = Some(Vec::new());
        for (i, item) in items.iter().enumerate() {
            let iloc = at_index(&bloc, i);
            let graph = self.object(item, &iloc).and_then(|b| {
                self.check_fields(b, &iloc, &["StartAt", "States", "Comment"], &[], "a branch");
                self.string(b, "Comment", &iloc, false);
                self.graph(b, &iloc, depth + 1)
            });
            match (graph, branches.as_mut()) {
                (Some(g), Some(list)) => list.push(g),
                _ => branches = None,
            }
        }
        Some(Kind::Parallel {
            branches: branches?,
        })
    }

    fn map(
        &mut self,
        m: &Object<String, Value>,
        loc: &str,
        depth: usize,
        jsonata: bool,
    ) -> Option<Map> {
        // The processor: `ItemProcessor`, or its legacy name `Iterator`.
        let mut distributed = None;
        let processor = match (m.get("ItemProcessor"), m.get("Iterator")) {
            (Some(_), Some(_)) => {
                self.err(
                    "conflicting_fields",
                    at(loc, "Iterator"),
                    "give either `ItemProcessor` or its legacy name `Iterator`, not both",
                );
                None
            }
            (None, None) => {
                self.err(
                    "missing_field",
                    at(loc, "ItemProcessor"),
                    "a Map state needs an `ItemProcessor` (or the legacy `Iterator`)",
                );
                None
            }
            (Some(p), None) => {
                let ploc = at(loc, "ItemProcessor");
                self.object(p, &ploc).and_then(|p| {
                    self.check_fields(
                        p,
                        &ploc,
                        &["StartAt", "States", "Comment", "ProcessorConfig"],
                        &[],
                        "an ItemProcessor",
                    );
                    self.string(p, "Comment", &ploc, false);
                    distributed = self.processor_config(p, &ploc);
                    self.graph(p, &ploc, depth + 1)
                })
            }
            (None, Some(p)) => {
                let ploc = at(loc, "Iterator");
                self.object(p, &ploc).and_then(|p| {
                    // AWS accepts a ProcessorConfig in the legacy name too.
                    self.check_fields(
                        p,
                        &ploc,
                        &["StartAt", "States", "Comment", "ProcessorConfig"],
                        &[],
                        "an Iterator",
                    );
                    self.string(p, "Comment", &ploc, false);
                    distributed = self.processor_config(p, &ploc);
                    self.graph(p, &ploc, depth + 1)
                })
            }
        };
        // JSONata: `Items`, `ItemSelector` and `MaxConcurrency` may hold
        // expressions; `ItemsPath` and `Parameters` are refused by
        // `check_language`.
        let (mut items, mut item_selector_jsonata, mut max_concurrency_expression) =
            (None, None, None);
        if jsonata {
            items = self.opt_jsonata(m, "Items", loc);
            if let Some(v) = m.get("Items") {
                let is_array_or_expression = match v {
                    Value::Array(_) => true,
                    Value::String(t) => jsonata::is_expression(t),
                    _ => false,
                };
                if !is_array_or_expression {
                    self.err(
                        "wrong_type",
                        at(loc, "Items"),
                        format!(
                            "`Items` must be an array or a JSONata expression, found {}",
                            type_name(v)
                        ),
                    );
                }
            }
            item_selector_jsonata = self.opt_jsonata(m, "ItemSelector", loc);
            if let Some(Value::String(t)) = m.get("MaxConcurrency") {
                if jsonata::is_expression(t) {
                    max_concurrency_expression = self.opt_jsonata(m, "MaxConcurrency", loc);
                }
            }
        }
        let mut expression = |key: &str| match m.get(key) {
            Some(Value::String(t)) if jsonata && jsonata::is_expression(t) => {
                Some(self.opt_jsonata(m, key, loc))
            }
            _ => None,
        };
        let tolerated_failure_count_expression = expression("ToleratedFailureCount");
        let tolerated_failure_percentage_expression = expression("ToleratedFailurePercentage");
        // Each item's input: `ItemSelector`, or its legacy name `Parameters`.
        let item_selector = if jsonata {
            None
        } else if m.contains_key("ItemSelector") && m.contains_key("Parameters") {
            self.err(
                "conflicting_fields",
                at(loc, "Parameters"),
                "give either `ItemSelector` or its legacy name `Parameters`, not both",
            );
            None
        } else {
            self.payload(m, "ItemSelector", loc)
                .or_else(|| self.payload(m, "Parameters", loc))
        };
        let items_path = match m.get("ItemsPath").filter(|_| !jsonata) {
            None => Some("$".to_string()),
            Some(v) => self.path(v, &at(loc, "ItemsPath"), "ItemsPath", PathKind::Single),
        };
        for base in [
            "MaxConcurrency",
            "ToleratedFailureCount",
            "ToleratedFailurePercentage",
        ] {
            let path_key = format!("{base}Path");
            if m.contains_key(base) && m.contains_key(&path_key) {
                self.err(
                    "conflicting_fields",
                    at(loc, &path_key),
                    format!("give either `{base}` or `{path_key}`, not both"),
                );
            }
        }
        let mut reference = |key: &str| match m.get(key).filter(|_| !jsonata) {
            Some(v) => self.path(v, &at(loc, key), key, PathKind::Single),
            None => None,
        };
        let max_concurrency_path = reference("MaxConcurrencyPath");
        let tolerated_failure_count_path = reference("ToleratedFailureCountPath");
        let tolerated_failure_percentage_path = reference("ToleratedFailurePercentagePath");
        let item_batcher = match m.get("ItemBatcher") {
            Some(v) => self.item_batcher(v, &at(loc, "ItemBatcher"), jsonata),
            None => None,
        };
        let label = self.string(m, "Label", loc, false);
        if let Some(label) = &label {
            self.label(label, &at(loc, "Label"));
        }
        let max_concurrency = match m.get("MaxConcurrency") {
            None => Some(0),
            Some(_) if max_concurrency_expression.is_some() => Some(0),
            Some(v) => self
                .integer(
                    v,
                    &at(loc, "MaxConcurrency"),
                    "MaxConcurrency",
                    0,
                    u64::from(u32::MAX),
                )
                .and_then(|n| u32::try_from(n).ok()),
        };
        let tolerated_failure_count = match tolerated_failure_count_expression {
            Some(_) => None,
            None => self.opt_integer(m, "ToleratedFailureCount", loc, 0, u64::MAX),
        };
        let percentage = match tolerated_failure_percentage_expression {
            Some(_) => None,
            None => m.get("ToleratedFailurePercentage"),
        };
        let tolerated_failure_percentage = percentage.and_then(|v| {
            let ploc = at(loc, "ToleratedFailurePercentage");
            let p = self.number(v, &ploc, "ToleratedFailurePercentage")?;
            if (0.0..=100.0).contains(&p) {
                Some(p)
            } else {
                self.err(
                    "invalid_value",
                    ploc,
                    format!("`ToleratedFailurePercentage` must be between 0 and 100, not {p}"),
                );
                None
            }
        });
        let reader = m
            .get("ItemReader")
            .and_then(|v| self.item_reader(v, &at(loc, "ItemReader"), jsonata));
        let writer = m
            .get("ResultWriter")
            .and_then(|v| self.result_writer(v, &at(loc, "ResultWriter"), jsonata));
        match &mut distributed {
            Some(d) => {
                d.reader = reader;
                d.writer = writer;
            }
            None => {
                for field in ["ItemReader", "ResultWriter"] {
                    if m.contains_key(field) {
                        self.err(
                            "invalid_value",
                            at(loc, field),
                            format!("`{field}` needs a distributed Map (`ItemProcessor.ProcessorConfig.Mode: DISTRIBUTED`)"),
                        );
                    }
                }
            }
        }
        Some(Map {
            items_path: items_path?,
            item_selector,
            processor: processor?,
            max_concurrency: max_concurrency?,
            tolerated_failure_count,
            tolerated_failure_percentage,
            items,
            item_selector_jsonata,
            max_concurrency_expression,
            max_concurrency_path,
            tolerated_failure_count_path,
            tolerated_failure_percentage_path,
            tolerated_failure_count_expression: tolerated_failure_count_expression.flatten(),
            tolerated_failure_percentage_expression: tolerated_failure_percentage_expression
                .flatten(),
            item_batcher,
            label,
            distributed,
        })
    }

    /// A Map's `Label`: AWS allows up to 40 characters, none of them
    /// whitespace, `< > { } [ ] ? * " # % \ ^ | ~ ` $ & , ; : /` or a
    /// control character.
    fn label(&mut self, label: &str, loc: &str) {
        const SPECIAL: &str = "<>{}[]?*\"#%\\^|~`$&,;:/";
        if label.is_empty() || label.chars().count() > 40 {
            self.err(
                "invalid_value",
                loc,
                format!(
                    "`Label` must have 1 to 40 characters, not {}",
                    label.chars().count()
                ),
            );
        }
        if let Some(c) = label
            .chars()
            .find(|&c| c.is_whitespace() || c.is_control() || SPECIAL.contains(c))
        {
            self.err(
                "invalid_value",
                loc,
                format!(
                    "`Label` must not contain whitespace, control characters or any of {SPECIAL}; found {c:?}"
                ),
            );
        }
    }

    /// A Map's `ItemBatcher`.
    fn item_batcher(&mut self, v: &Value, loc: &str, jsonata: bool) -> Option<ItemBatcher> {
        let b = self.object(v, loc)?;
        self.check_fields(
            b,
            loc,
            &[
                "MaxItemsPerBatch",
                "MaxItemsPerBatchPath",
                "MaxInputBytesPerBatch",
                "MaxInputBytesPerBatchPath",
                "BatchInput",
            ],
            &[],
            "an ItemBatcher",
        );
        let max_items = self.batch_count(b, "MaxItemsPerBatch", loc, u64::from(u32::MAX), jsonata);
        let max_bytes = self.batch_count(b, "MaxInputBytesPerBatch", loc, 262_144, jsonata);
        let limited = [
            "MaxItemsPerBatch",
            "MaxItemsPerBatchPath",
            "MaxInputBytesPerBatch",
            "MaxInputBytesPerBatchPath",
        ]
        .iter()
        .any(|k| b.contains_key(*k));
        if !limited {
            self.err(
                "missing_field",
                at(loc, "MaxItemsPerBatch"),
                "an `ItemBatcher` needs `MaxItemsPerBatch` or `MaxInputBytesPerBatch` (or their `…Path`)",
            );
        }
        let (batch_input, batch_input_jsonata) = if jsonata {
            (None, self.opt_jsonata(b, "BatchInput", loc))
        } else {
            (self.payload(b, "BatchInput", loc), None)
        };
        Some(ItemBatcher {
            max_items,
            max_bytes,
            batch_input,
            batch_input_jsonata,
        })
    }

    /// `MaxItemsPerBatch` or `MaxInputBytesPerBatch` (1 to `max`), its
    /// `…Path` (JSONPath) or an expression (JSONata).
    fn batch_count(
        &mut self,
        b: &Object<String, Value>,
        key: &str,
        loc: &str,
        max: u64,
        jsonata: bool,
    ) -> Option<Count> {
        let path_key = format!("{key}Path");
        match (b.get(key), b.get(&path_key)) {
            (Some(_), Some(_)) => {
                self.err(
                    "conflicting_fields",
                    at(loc, &path_key),
                    format!("give either `{key}` or `{path_key}`, not both"),
                );
                None
            }
            (Some(v @ Value::String(t)), None) if jsonata && jsonata::is_expression(t) => {
                self.jsonata(v, &at(loc, key)).map(Count::Jsonata)
            }
            (Some(v), None) => self
                .integer(v, &at(loc, key), key, 1, max)
                .map(Count::Fixed),
            (None, Some(_)) if jsonata => {
                self.err(
                    "wrong_query_language",
                    at(loc, &path_key),
                    format!(
                        "The field '{path_key}' is not supported for the JSONata query language; use `{key}` with an expression"
                    ),
                );
                None
            }
            (None, Some(v)) => self
                .path(v, &at(loc, &path_key), &path_key, PathKind::Single)
                .map(Count::Path),
            (None, None) => None,
        }
    }

    /// A distributed Map's `ItemReader` or `ResultWriter` call: `Resource`
    /// bound through the resource map, `Parameters` (JSONPath) or
    /// `Arguments` (JSONata); `more`: the other fields it may have.
    fn io(&mut self, v: &Value, loc: &str, jsonata: bool, more: &[&str]) -> Option<Io> {
        let o = self.object(v, loc)?;
        let args = if jsonata { "Arguments" } else { "Parameters" };
        let mut fields = vec!["Resource", args];
        fields.extend_from_slice(more);
        self.check_fields(o, loc, &fields, &[], "this field");
        let resource = self.string(o, "Resource", loc, true)?;
        let participant = self.resources.resolve(&resource);
        if participant.is_none() {
            self.err(
                "unknown_resource",
                at(loc, "Resource"),
                format!("no rule of the resource map matches `{resource}`; add one that binds it to a URL or handler (there is no S3 here)"),
            );
        }
        let (mut parameters, mut arguments) = (None, None);
        if let Some(p) = o.get(args) {
            if jsonata {
                arguments = self.jsonata(p, &at(loc, args));
            } else {
                self.template(p, &at(loc, args), 0);
                parameters = Some(p.clone());
            }
        }
        Some(Io {
            resource,
            participant: participant?,
            parameters,
            arguments,
        })
    }

    /// `ResultWriter`: its call (if it has a `Resource`) and `WriterConfig`.
    fn result_writer(&mut self, v: &Value, loc: &str, jsonata: bool) -> Option<ResultWriter> {
        let o = self.object(v, loc)?;
        let cloc = at(loc, "WriterConfig");
        let config = match o.get("WriterConfig") {
            Some(c) => Some(self.object(c, &cloc)?),
            None => None,
        };
        let call = if o.contains_key("Resource") || config.is_none() {
            Some(self.io(v, loc, jsonata, &["WriterConfig"])?)
        } else {
            let args = if jsonata { "Arguments" } else { "Parameters" };
            self.check_fields(o, loc, &["WriterConfig"], &[], "this field");
            if o.contains_key(args) {
                self.err(
                    "invalid_value",
                    at(loc, args),
                    format!("`{args}` is the body of the writer's call: it needs a `Resource`"),
                );
            }
            None
        };
        let Some(config) = config else {
            return Some(ResultWriter {
                call,
                output_type: OutputType::Json,
                transformation: Transformation::None,
            });
        };
        self.check_fields(
            config,
            &cloc,
            &["OutputType", "Transformation"],
            &[],
            "a WriterConfig",
        );
        let output_type = match self.string(config, "OutputType", &cloc, false).as_deref() {
            None | Some("JSON") => OutputType::Json,
            Some("JSONL") => OutputType::Jsonl,
            Some(other) => {
                self.err(
                    "invalid_value",
                    at(&cloc, "OutputType"),
                    format!("`OutputType` must be JSON or JSONL, not `{other}`"),
                );
                return None;
            }
        };
        if call.is_none() && config.contains_key("OutputType") {
            self.err(
                "invalid_value",
                at(&cloc, "OutputType"),
                "`OutputType` says how the writer's `Resource` receives the results: without a `Resource` there is none",
            );
        }
        let transformation = match self
            .string(config, "Transformation", &cloc, false)
            .as_deref()
        {
            None | Some("NONE") => Transformation::None,
            Some("COMPACT") => Transformation::Compact,
            Some("FLATTEN") => Transformation::Flatten,
            Some(other) => {
                self.err(
                    "invalid_value",
                    at(&cloc, "Transformation"),
                    format!("`Transformation` must be NONE, COMPACT or FLATTEN, not `{other}`"),
                );
                return None;
            }
        };
        Some(ResultWriter {
            call,
            output_type,
            transformation,
        })
    }

    /// `ItemReader`: the call and its `ReaderConfig`.
    fn item_reader(&mut self, v: &Value, loc: &str, jsonata: bool) -> Option<ItemReader> {
        let io = self.io(v, loc, jsonata, &["ReaderConfig"]);
        let cloc = at(loc, "ReaderConfig");
        let empty = Object::new();
        let config = match v.get("ReaderConfig") {
            Some(c) => self.object(c, &cloc)?,
            None => &empty,
        };
        self.check_fields(
            config,
            &cloc,
            &[
                "InputType",
                "CSVHeaderLocation",
                "CSVHeaders",
                "CSVDelimiter",
                "MaxItems",
                "MaxItemsPath",
            ],
            &[],
            "a ReaderConfig",
        );
        let input_type = match self.string(config, "InputType", &cloc, false).as_deref() {
            None | Some("JSON") => InputType::Json,
            Some("JSONL") => InputType::Jsonl,
            Some("CSV") => InputType::Csv,
            Some(other) => {
                self.err(
                    "invalid_value",
                    at(&cloc, "InputType"),
                    format!("`InputType` must be `JSON`, `JSONL` or `CSV` here (manifests and Parquet need S3), not `{other}`"),
                );
                return None;
            }
        };
        let csv_headers = match self
            .string(config, "CSVHeaderLocation", &cloc, false)
            .as_deref()
        {
            None | Some("FIRST_ROW") => None,
            Some("GIVEN") => {
                let headers: Option<Vec<String>> = config
                    .get("CSVHeaders")
                    .and_then(Value::as_array)
                    .and_then(|a| a.iter().map(|h| h.as_str().map(String::from)).collect());
                if headers.as_ref().is_none_or(Vec::is_empty) {
                    self.err(
                        "invalid_value",
                        at(&cloc, "CSVHeaders"),
                        "`CSVHeaderLocation: GIVEN` needs `CSVHeaders`, a non-empty array of strings",
                    );
                    return None;
                }
                headers
            }
            Some(other) => {
                self.err(
                    "invalid_value",
                    at(&cloc, "CSVHeaderLocation"),
                    format!("`CSVHeaderLocation` must be `FIRST_ROW` or `GIVEN`, not `{other}`"),
                );
                return None;
            }
        };
        let csv_delimiter = match self.string(config, "CSVDelimiter", &cloc, false).as_deref() {
            None | Some("COMMA") => b',',
            Some("PIPE") => b'|',
            Some("SEMICOLON") => b';',
            Some("SPACE") => b' ',
            Some("TAB") => b'\t',
            Some(other) => {
                self.err(
                    "invalid_value",
                    at(&cloc, "CSVDelimiter"),
                    format!("`CSVDelimiter` must be COMMA, PIPE, SEMICOLON, SPACE or TAB, not `{other}`"),
                );
                return None;
            }
        };
        let max_items = self.batch_count(config, "MaxItems", &cloc, 100_000_000, jsonata);
        Some(ItemReader {
            io: io?,
            input_type,
            csv_headers,
            csv_delimiter,
            max_items,
        })
    }

    /// `ProcessorConfig`: the mode, and for DISTRIBUTED its settings.
    fn processor_config(&mut self, p: &Object<String, Value>, ploc: &str) -> Option<Distributed> {
        let v = p.get("ProcessorConfig")?;
        let cloc = at(ploc, "ProcessorConfig");
        let config = self.object(v, &cloc)?;
        self.check_fields(
            config,
            &cloc,
            &["Mode", "ExecutionType"],
            &[],
            "a ProcessorConfig",
        );
        let distributed = match self.string(config, "Mode", &cloc, false).as_deref() {
            None | Some("INLINE") => false,
            Some("DISTRIBUTED") => true,
            Some(other) => {
                self.err(
                    "invalid_value",
                    at(&cloc, "Mode"),
                    format!("`Mode` must be `INLINE` or `DISTRIBUTED`, not `{other}`"),
                );
                false
            }
        };
        let execution_type = match self
            .string(config, "ExecutionType", &cloc, false)
            .as_deref()
        {
            None | Some("STANDARD") => "STANDARD".to_string(),
            Some("EXPRESS") => "EXPRESS".to_string(),
            Some(other) => {
                self.err(
                    "invalid_value",
                    at(&cloc, "ExecutionType"),
                    format!("`ExecutionType` must be `STANDARD` or `EXPRESS`, not `{other}`"),
                );
                return None;
            }
        };
        distributed.then_some(Distributed {
            execution_type,
            reader: None,
            writer: None,
        })
    }
}

/// Whether a template hands out the task token somewhere (a `.$` value
/// naming `$$.Task.Token`, as a path or inside an intrinsic call; in a
/// JSONata template, an expression reading `$states.context.Task.Token`).
fn mentions_task_token(v: &Value, depth: usize) -> bool {
    if depth > MAX_DEPTH {
        return false;
    }
    match v {
        Value::String(s) => jsonata::is_expression(s) && s.contains("$states.context.Task.Token"),
        Value::Object(m) => m.iter().any(|(k, v)| {
            (k.ends_with(".$") && v.as_str().is_some_and(|s| s.contains("$$.Task.Token")))
                || mentions_task_token(v, depth + 1)
        }),
        Value::Array(items) => items.iter().any(|v| mentions_task_token(v, depth + 1)),
        _ => false,
    }
}
