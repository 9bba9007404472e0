//! Data flow between states: paths, payload templates and result placement.
//!
//! A state's input goes through `InputPath` ([`filter`]), `Parameters`
//! ([`render`]), the task, `ResultSelector` ([`render`] again, over the
//! result), `ResultPath` ([`place`]) and `OutputPath` ([`filter`]).
//!
//! Paths follow the JSONPath dialect AWS uses (Jayway's). Selection is done
//! by `serde_json_path` (RFC 9535) after a small rewrite: dot-notation names
//! become bracketed names, because Jayway accepts names such as
//! `detail-type` or `1st` that RFC 9535's shorthand does not. As in AWS, an
//! *indefinite* path (wildcards, filters, slices, unions, `..`) yields an
//! array of every match, a definite one yields the single value.

use serde_json::{Map, Value};
use serde_json_path::JsonPath;

use crate::asl::intrinsic;
use crate::asl::machine::PathField;
use crate::asl::vars::{self, Env};
use crate::document::type_name;
use crate::event::ErrorInfo;

/// Error of a path that cannot be followed at run time.
use crate::error_name::{RESULT_PATH_MATCH_FAILURE, RUNTIME};
/// How much of a payload an error cause quotes: enough to recognise it,
/// bounded so a large payload does not bloat the history.
const EXCERPT_CHARS: usize = 256;

/// What a path starts from.
enum Root {
    /// `$…`: the input.
    Input,
    /// `$$…`: the context object.
    Context,
    /// `$name…`: a variable.
    Var(String),
}

/// A parsed selection path.
struct Compiled {
    root: Root,
    query: JsonPath,
    /// Whether the path can match at most one node.
    definite: bool,
}

fn compile(path: &str) -> Result<Compiled, String> {
    let (root, rest) = if let Some(rest) = path.strip_prefix("$$") {
        (Root::Context, rest)
    } else if let Some((name, rest)) = vars::split(path) {
        vars::check_name(name).map_err(|why| format!("the path `{path}` is invalid: {why}"))?;
        (Root::Var(name.to_string()), rest)
    } else if let Some(rest) = path.strip_prefix('$') {
        (Root::Input, rest)
    } else if path.is_empty() {
        return Err("a path must not be empty".into());
    } else {
        return Err(format!("the path `{path}` must start with `$`"));
    };
    let (normalized, definite) =
        normalize(rest).map_err(|why| format!("the path `{path}` is invalid: {why}"))?;
    let query =
        JsonPath::parse(&normalized).map_err(|e| format!("the path `{path}` is invalid: {e}"))?;
    Ok(Compiled {
        root,
        query,
        definite,
    })
}

/// Rewrites what follows the leading `$` into RFC 9535 syntax and tells
/// whether the path is definite.
fn normalize(rest: &str) -> Result<(String, bool), String> {
    let chars: Vec<char> = rest.chars().collect();
    let mut out = String::from("$");
    let mut definite = true;
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '.' => {
                i += 1;
                if chars.get(i) == Some(&'.') {
                    definite = false;
                    out.push_str("..");
                    i += 1;
                    match chars.get(i) {
                        Some('[') => continue,
                        Some('*') => {
                            out.push('*');
                            i += 1;
                            continue;
                        }
                        _ => {}
                    }
                } else if chars.get(i) == Some(&'*') {
                    definite = false;
                    out.push_str("[*]");
                    i += 1;
                    continue;
                }
                let start = i;
                while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                    i += 1;
                }
                if start == i {
                    return Err("a `.` must be followed by a field name".into());
                }
                let name: String = chars[start..i].iter().collect();
                push_quoted(&mut out, &name);
            }
            '[' => {
                let start = i;
                let end = bracket_end(&chars, i)?;
                let inner: String = chars[start + 1..end].iter().collect();
                if !is_definite_selector(&inner) {
                    definite = false;
                }
                // One quoted member name is re-quoted for RFC 9535, which
                // refuses Jayway's `\"` inside single quotes (`$['a\"b']`
                // selects the member `a"b`).
                match quoted_name(&inner) {
                    Some(name) => push_quoted(&mut out, &name),
                    None => {
                        out.push('[');
                        out.push_str(&inner);
                        out.push(']');
                    }
                }
                i = end + 1;
            }
            c => return Err(format!("unexpected `{c}`")),
        }
    }
    Ok((out, definite))
}

/// Index of the `]` closing the `[` at `open`, skipping quoted text and
/// nested brackets (filters may hold paths with brackets of their own).
fn bracket_end(chars: &[char], open: usize) -> Result<usize, String> {
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    let mut i = open;
    while i < chars.len() {
        let c = chars[i];
        match quote {
            Some(q) => {
                if c == '\\' {
                    i += 1;
                } else if c == q {
                    quote = None;
                }
            }
            None => match c {
                '\'' | '"' => quote = Some(c),
                '[' => depth += 1,
                ']' => {
                    depth -= 1;
                    if depth == 0 {
                        return Ok(i);
                    }
                }
                _ => {}
            },
        }
        i += 1;
    }
    Err("a `[` is not closed".into())
}

/// Whether the inside of a bracket selects at most one node: one quoted
/// name or one index, not a wildcard, filter, slice or union.
fn is_definite_selector(inner: &str) -> bool {
    let t = inner.trim();
    if t.starts_with('?') {
        return false;
    }
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in t.chars() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '\'' | '"' => quote = Some(c),
            '*' | ':' | ',' => return false,
            _ => {}
        }
    }
    true
}

/// The member name of a bracket holding one quoted name (`'a b'`, `"a"`),
/// with JSON's escapes and a backslash before any other character standing
/// for that character (`\"`, `\'`), as in Jayway; `None` for
/// anything else (an index, a union, a filter …).
fn quoted_name(inner: &str) -> Option<String> {
    let t = inner.trim();
    let mut chars = t.chars();
    let q = chars.next().filter(|c| *c == '\'' || *c == '"')?;
    let mut name = String::new();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next()? {
                'n' => name.push('\n'),
                't' => name.push('\t'),
                'r' => name.push('\r'),
                'b' => name.push('\u{8}'),
                'f' => name.push('\u{c}'),
                'u' => {
                    let hex: String = chars.by_ref().take(4).collect();
                    name.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                }
                e => name.push(e),
            },
            c if c == q => return chars.as_str().is_empty().then_some(name),
            c => name.push(c),
        }
    }
    None
}

fn push_quoted(out: &mut String, name: &str) {
    out.push_str("['");
    for c in name.chars() {
        match c {
            '\'' => out.push_str("\\'"),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push_str("']");
}

/// One step of a reference path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Key(String),
    Index(usize),
}

/// Parses a reference path (`$`, `$.a.b`, `$['a b']`, `$.a[0]`) into its steps.
pub fn reference_segments(path: &str) -> Result<Vec<Segment>, String> {
    if path.starts_with("$$") {
        return Err(format!(
            "the reference path `{path}` cannot point into the context object"
        ));
    }
    let Some(rest) = path.strip_prefix('$') else {
        return Err(format!("the reference path `{path}` must start with `$`"));
    };
    let bad = |why: &str| format!("the reference path `{path}` is invalid: {why}");
    let chars: Vec<char> = rest.chars().collect();
    let mut segments = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '.' => {
                i += 1;
                if chars.get(i) == Some(&'.') {
                    return Err(bad("`..` selects many nodes"));
                }
                let start = i;
                while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                    i += 1;
                }
                let name: String = chars[start..i].iter().collect();
                if name.is_empty() {
                    return Err(bad("a `.` must be followed by a field name"));
                }
                if let Some(c) = name.chars().find(|c| "@,:?*()".contains(*c)) {
                    return Err(bad(&format!(
                        "`{c}` is not allowed (quote such a name: `['{name}']`)"
                    )));
                }
                segments.push(Segment::Key(name));
            }
            '[' => {
                i += 1;
                match chars.get(i) {
                    Some(&q) if q == '\'' || q == '"' => {
                        i += 1;
                        let mut name = String::new();
                        loop {
                            match chars.get(i) {
                                None => return Err(bad("a quoted name is not closed")),
                                Some('\\') => {
                                    let Some(&e) = chars.get(i + 1) else {
                                        return Err(bad("a quoted name is not closed"));
                                    };
                                    name.push(e);
                                    i += 2;
                                }
                                Some(&c) if c == q => {
                                    i += 1;
                                    break;
                                }
                                Some(&c) => {
                                    name.push(c);
                                    i += 1;
                                }
                            }
                        }
                        if chars.get(i) != Some(&']') {
                            return Err(bad("a quoted name must be followed by `]`"));
                        }
                        i += 1;
                        segments.push(Segment::Key(name));
                    }
                    _ => {
                        let start = i;
                        while i < chars.len() && chars[i] != ']' {
                            i += 1;
                        }
                        if i >= chars.len() {
                            return Err(bad("a `[` is not closed"));
                        }
                        let text: String = chars[start..i].iter().collect();
                        let index = text.trim().parse::<usize>().map_err(|_| {
                            bad(&format!(
                                "`[{text}]` is not a field name or a non-negative index"
                            ))
                        })?;
                        i += 1;
                        segments.push(Segment::Index(index));
                    }
                }
            }
            c => return Err(bad(&format!("unexpected `{c}`"))),
        }
    }
    Ok(segments)
}

/// Checks a path used to select data (InputPath, OutputPath, ItemsPath,
/// `Variable`, `*Path` fields, values of `.$` keys). May start with `$` or `$$`.
pub fn check_path(path: &str) -> Result<(), String> {
    compile(path).map(|_| ())
}

/// Checks a reference path (ResultPath): `$`, `$.a.b`, `$['a b']`, `$.a[0]`; no filters or wildcards.
pub fn check_reference_path(path: &str) -> Result<(), String> {
    reference_segments(path).map(|_| ())
}

/// Checks a path that must select one value (ItemsPath, SecondsPath …):
/// a reference path into the input, a variable or a variable's member
/// (`$name.a[0]`), or any path into the context object.
pub fn check_single_path(path: &str) -> Result<(), String> {
    if path.starts_with("$$") {
        return check_path(path);
    }
    if let Some((name, rest)) = vars::split(path) {
        vars::check_name(name).map_err(|why| format!("the path `{path}` is invalid: {why}"))?;
        return reference_segments(&format!("${rest}")).map(|_| ());
    }
    check_reference_path(path)
}

/// Checks a payload template (Parameters, ResultSelector, ItemSelector):
/// every `.$` key's value must be a string holding a valid path or intrinsic
/// call. Returns `(location, message)` pairs, the location relative to the
/// template (`.Payload.token.$`).
pub fn check_template(template: &Value) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    check_node(template, "", &mut problems);
    problems
}

fn check_node(node: &Value, at: &str, problems: &mut Vec<(String, String)>) {
    match node {
        Value::Object(map) => {
            for (key, value) in map {
                let here = format!("{at}.{key}");
                let Some(base) = key.strip_suffix(".$") else {
                    check_node(value, &here, problems);
                    continue;
                };
                if base.is_empty() {
                    problems.push((here.clone(), "`.$` needs a field name before it".into()));
                }
                if map.contains_key(base) {
                    problems.push((
                        here.clone(),
                        format!("`{key}` and `{base}` would both produce the field `{base}`"),
                    ));
                }
                match value {
                    Value::String(text) => {
                        let checked = if intrinsic::is_call(text) {
                            intrinsic::check(text)
                        } else {
                            check_path(text)
                        };
                        if let Err(message) = checked {
                            problems.push((here, message));
                        }
                    }
                    other => problems.push((
                        here,
                        format!(
                            "the value of a field ending in `.$` must be a string holding a path or an intrinsic function, not {}",
                            type_name(other)
                        ),
                    )),
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                check_node(item, &format!("{at}[{i}]"), problems);
            }
        }
        _ => {}
    }
}

/// A payload quoted in an error cause, cut to a readable length.
pub fn excerpt(v: &Value) -> String {
    let text = v.to_string();
    match text.char_indices().nth(EXCERPT_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// Follows `path` in `input` (in the context object for `$$…`, in a
/// variable for `$name…`): `None` when a definite path matches nothing. An
/// indefinite path always gives an array, empty when nothing matched. A
/// variable that is not defined is `States.Runtime`.
pub fn lookup<'a>(
    path: &str,
    input: &Value,
    env: impl Into<Env<'a>>,
) -> Result<Option<Value>, ErrorInfo> {
    let env = env.into();
    if path == "$" {
        // The default InputPath and OutputPath of every state: the whole
        // input, without parsing a path per state and item.
        return Ok(Some(input.clone()));
    }
    let compiled = compile(path).map_err(|why| ErrorInfo::new(RUNTIME, why))?;
    let root = match &compiled.root {
        Root::Input => input,
        Root::Context => env.context,
        Root::Var(name) => env.vars.get(name).ok_or_else(|| undefined(path, name))?,
    };
    let nodes = compiled.query.query(root);
    if compiled.definite {
        Ok(nodes.first().cloned())
    } else {
        Ok(Some(Value::Array(
            nodes.iter().map(|v| (*v).clone()).collect(),
        )))
    }
}

/// A path that reads a variable no state has assigned (yet) in this scope.
fn undefined(path: &str, name: &str) -> ErrorInfo {
    ErrorInfo::new(
        RUNTIME,
        format!("Invalid path '{path}': The variable '${name}' is not defined"),
    )
}

fn not_found(path: &str, field: Option<&str>, input: &Value, env: Env<'_>) -> ErrorInfo {
    let field = field
        .map(|f| format!(" specified for the field '{f}'"))
        .unwrap_or_default();
    let cause = if path.starts_with("$$") {
        format!(
            "The JSONPath '{path}'{field} could not be found in the context object '{}'",
            excerpt(env.context)
        )
    } else if let Some((name, _)) = vars::split(path) {
        format!(
            "The JSONPath '{path}'{field} could not be found in the variable '${name}' '{}'",
            env.vars.get(name).map(excerpt).unwrap_or_default()
        )
    } else {
        format!(
            "The JSONPath '{path}'{field} could not be found in the input '{}'",
            excerpt(input)
        )
    };
    ErrorInfo::new(RUNTIME, cause)
}

/// Selects `path` from `input` (or from the context object or a
/// variable). A path that matches nothing is a `States.Runtime` error.
pub fn select<'a>(path: &str, input: &Value, env: impl Into<Env<'a>>) -> Result<Value, ErrorInfo> {
    let env = env.into();
    lookup(path, input, env)?.ok_or_else(|| not_found(path, None, input, env))
}

/// InputPath / OutputPath: `Null` gives `{}`. A path that selects nothing
/// is `States.Runtime` with AWS's cause, Jayway's message after the path:
/// `Invalid path '$.x' : No results for path: $['x']`.
pub fn filter<'a>(
    path: &PathField,
    input: &Value,
    env: impl Into<Env<'a>>,
) -> Result<Value, ErrorInfo> {
    match path {
        PathField::Null => Ok(Value::Object(Map::new())),
        PathField::Path(p) => lookup(p, input, env)?.ok_or_else(|| {
            ErrorInfo::new(
                RUNTIME,
                format!(
                    "Invalid path '{p}' : No results for path: {}",
                    jayway_path(p)
                ),
            )
        }),
    }
}

/// [`filter`] of an input the caller no longer needs: the default path
/// `$` gives it back as it is instead of a copy (an OutputPath after
/// ResultPath, once per state and Map item).
pub fn filter_owned<'a>(
    path: &PathField,
    input: Value,
    env: impl Into<Env<'a>>,
) -> Result<Value, ErrorInfo> {
    match path {
        PathField::Path(p) if p == "$" => Ok(input),
        _ => filter(path, &input, env),
    }
}

/// A definite path as Jayway prints it in its errors: every member in
/// brackets and single quotes (`$.a.b[0]` → `$['a']['b'][0]`).
fn jayway_path(path: &str) -> String {
    let plain = match (path.strip_prefix("$$"), vars::split(path)) {
        (Some(rest), _) | (None, Some((_, rest))) => format!("${rest}"),
        (None, None) => path.to_string(),
    };
    match reference_segments(&plain) {
        Ok(segments) => {
            let mut out = String::from("$");
            for s in segments {
                match s {
                    Segment::Key(k) => out.push_str(&format!("['{k}']")),
                    Segment::Index(i) => out.push_str(&format!("[{i}]")),
                }
            }
            out
        }
        Err(_) => path.to_string(),
    }
}

/// Renders a payload template against the input, the context object and
/// the variables. `random` supplies randomness for `States.UUID` and
/// `States.MathRandom`.
pub fn render<'a>(
    template: &Value,
    input: &Value,
    env: impl Into<Env<'a>>,
    random: &mut dyn FnMut() -> u64,
) -> Result<Value, ErrorInfo> {
    render_in(template, input, env.into(), random)
}

fn render_in(
    template: &Value,
    input: &Value,
    context: Env<'_>,
    random: &mut dyn FnMut() -> u64,
) -> Result<Value, ErrorInfo> {
    match template {
        Value::Object(map) => {
            let mut out = Map::new();
            for (key, value) in map {
                let Some(base) = key.strip_suffix(".$") else {
                    out.insert(key.clone(), render_in(value, input, context, random)?);
                    continue;
                };
                let Value::String(text) = value else {
                    return Err(ErrorInfo::new(
                        RUNTIME,
                        format!(
                            "The value for the field '{key}' must be a path or an intrinsic function, not {}",
                            type_name(value)
                        ),
                    ));
                };
                let rendered = if intrinsic::is_call(text) {
                    intrinsic::evaluate(text, input, context, random)?
                } else {
                    lookup(text, input, context)?
                        .ok_or_else(|| not_found(text, Some(key), input, context))?
                };
                out.insert(base.to_string(), rendered);
            }
            Ok(Value::Object(out))
        }
        Value::Array(items) => items
            .iter()
            .map(|item| render_in(item, input, context, random))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        other => Ok(other.clone()),
    }
}

/// [`place`] into a borrowed input, copied only when the result goes
/// into it: the default ResultPath `$` replaces it and needs no copy.
pub fn place_into(
    result_path: &PathField,
    input: &Value,
    result: Value,
) -> Result<Value, ErrorInfo> {
    match result_path {
        PathField::Path(p) if p == "$" => Ok(result),
        _ => place(result_path, input.clone(), result),
    }
}

/// ResultPath: places `result` into `input` (`$` replaces it; `Null`
/// discards the result and keeps the input).
pub fn place(result_path: &PathField, input: Value, result: Value) -> Result<Value, ErrorInfo> {
    let path = match result_path {
        PathField::Null => return Ok(input),
        PathField::Path(p) => p,
    };
    let segments = reference_segments(path).map_err(|why| ErrorInfo::new(RUNTIME, why))?;
    if segments.is_empty() {
        return Ok(result);
    }
    let mut output = input;
    let mut cursor = &mut output;
    let mut walked = String::from("$");
    for segment in &segments {
        let here = walked.clone();
        cursor = match segment {
            Segment::Key(key) => {
                walked.push_str(&format!("['{key}']"));
                match cursor {
                    Value::Object(map) => map
                        .entry(key.clone())
                        .or_insert_with(|| Value::Object(Map::new())),
                    other => {
                        return Err(place_error(path, &here, other));
                    }
                }
            }
            Segment::Index(index) => {
                walked.push_str(&format!("[{index}]"));
                match cursor {
                    Value::Array(items) => {
                        let len = items.len();
                        items.get_mut(*index).ok_or_else(|| {
                            ErrorInfo::new(
                                RESULT_PATH_MATCH_FAILURE,
                                format!(
                                    "Unable to apply ResultPath '{path}': index {index} is outside the array at '{here}' of length {len}"
                                ),
                            )
                        })?
                    }
                    other => {
                        return Err(place_error(path, &here, other));
                    }
                }
            }
        };
    }
    *cursor = result;
    Ok(output)
}

fn place_error(path: &str, at: &str, found: &Value) -> ErrorInfo {
    ErrorInfo::new(
        RESULT_PATH_MATCH_FAILURE,
        format!(
            "Unable to apply ResultPath '{path}': the value at '{at}' is {} ('{}'), which cannot hold a field or an item",
            type_name(found),
            excerpt(found)
        ),
    )
}
