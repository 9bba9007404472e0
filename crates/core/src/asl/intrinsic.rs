//! The intrinsic functions (`States.Format`, `States.Array`, …): a small
//! expression language usable as the value of a `.$` field in payload
//! templates.
//!
//! An invocation is parsed into a tree of calls whose arguments are string
//! literals (`'it\'s'`, with `\'`, `\{`, `\}` and `\\` as the only escapes),
//! numbers, `true`, `false`, `null`, paths (`$.x`, `$$.Execution.Id`, `$`) or
//! nested calls. [`check`] validates a definition ahead of time (syntax,
//! known names, arity, the types of literal arguments); [`evaluate`] runs it.
//! Randomness (`States.UUID`, unseeded `States.MathRandom`) comes from the
//! caller so that evaluation stays a pure function of its arguments.

use base64::Engine as _;
use serde_json::{Map, Number, Value};

use crate::asl::data;
use crate::asl::vars::{self, Env};
use crate::document::{hex, type_name};
use crate::error_name::{INTRINSIC_FAILURE, RUNTIME};
use crate::event::ErrorInfo;

/// How deep calls may nest inside one field (AWS's limit).
pub const MAX_NESTING: usize = 10;

/// Longest string `States.Base64Encode`, `States.Base64Decode` and
/// `States.Hash` accept, in characters (AWS's limit).
pub const MAX_STRING_CHARS: usize = 10_000;

/// Most items `States.ArrayRange` may produce (AWS's limit).
pub const MAX_RANGE_ITEMS: usize = 1_000;

/// Whether a `.$` value is an intrinsic call rather than a path.
pub fn is_call(text: &str) -> bool {
    text.starts_with("States.")
}

/// The intrinsic functions, in the order AWS documents them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Func {
    Format,
    StringToJson,
    JsonToString,
    Array,
    ArrayPartition,
    ArrayContains,
    ArrayRange,
    ArrayGetItem,
    ArrayLength,
    ArrayUnique,
    Base64Encode,
    Base64Decode,
    Hash,
    JsonMerge,
    MathRandom,
    MathAdd,
    StringSplit,
    Uuid,
}

/// Name, minimum and maximum (`None`: unbounded) argument count.
const FUNCS: &[(Func, &str, usize, Option<usize>)] = &[
    (Func::Format, "Format", 1, None),
    (Func::StringToJson, "StringToJson", 1, Some(1)),
    (Func::JsonToString, "JsonToString", 1, Some(1)),
    (Func::Array, "Array", 0, None),
    (Func::ArrayPartition, "ArrayPartition", 2, Some(2)),
    (Func::ArrayContains, "ArrayContains", 2, Some(2)),
    (Func::ArrayRange, "ArrayRange", 3, Some(3)),
    (Func::ArrayGetItem, "ArrayGetItem", 2, Some(2)),
    (Func::ArrayLength, "ArrayLength", 1, Some(1)),
    (Func::ArrayUnique, "ArrayUnique", 1, Some(1)),
    (Func::Base64Encode, "Base64Encode", 1, Some(1)),
    (Func::Base64Decode, "Base64Decode", 1, Some(1)),
    (Func::Hash, "Hash", 2, Some(2)),
    (Func::JsonMerge, "JsonMerge", 3, Some(3)),
    (Func::MathRandom, "MathRandom", 2, Some(3)),
    (Func::MathAdd, "MathAdd", 2, Some(2)),
    (Func::StringSplit, "StringSplit", 2, Some(2)),
    (Func::Uuid, "UUID", 0, Some(0)),
];

/// The algorithms `States.Hash` knows.
pub const HASH_ALGORITHMS: &[&str] = &["MD5", "SHA-1", "SHA-256", "SHA-384", "SHA-512"];

impl Func {
    fn name(self) -> String {
        let short = FUNCS
            .iter()
            .find(|(f, ..)| *f == self)
            .map_or("?", |(_, n, ..)| *n);
        format!("States.{short}")
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Arg {
    /// `raw` keeps the escapes, which `States.Format` needs to tell an
    /// escaped `\{` from a placeholder.
    Str {
        value: String,
        raw: String,
    },
    Num(Number),
    Bool(bool),
    Null,
    Path(String),
    Call(Call),
}

#[derive(Debug, Clone, PartialEq)]
struct Call {
    func: Func,
    args: Vec<Arg>,
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn rest(&self) -> &'a str {
        &self.text[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn skip_ws(&mut self) {
        while let Some(c) = self.peek() {
            if !c.is_whitespace() {
                break;
            }
            self.pos += c.len_utf8();
        }
    }

    fn error(&self, what: &str) -> String {
        format!(
            "invalid intrinsic function `{}`: {what} at position {}",
            self.text, self.pos
        )
    }

    fn call(&mut self, depth: usize) -> Result<Call, String> {
        if depth > MAX_NESTING {
            return Err(format!(
                "invalid intrinsic function `{}`: at most {MAX_NESTING} intrinsic functions may be nested",
                self.text
            ));
        }
        let Some(after) = self.rest().strip_prefix("States.") else {
            return Err(self.error("expected `States.`"));
        };
        let len = after
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(after.len());
        let short = &after[..len];
        let Some(&(func, _, min, max)) = FUNCS.iter().find(|(_, n, ..)| *n == short) else {
            return Err(format!(
                "unknown intrinsic function `States.{short}` in `{}`",
                self.text
            ));
        };
        self.pos += "States.".len() + len;
        self.skip_ws();
        if self.peek() != Some('(') {
            return Err(self.error(&format!("expected `(` after `{}`", func.name())));
        }
        self.pos += 1;
        self.skip_ws();
        let mut args = Vec::new();
        if self.peek() == Some(')') {
            self.pos += 1;
        } else {
            loop {
                args.push(self.arg(depth)?);
                self.skip_ws();
                match self.peek() {
                    Some(',') => {
                        self.pos += 1;
                        self.skip_ws();
                    }
                    Some(')') => {
                        self.pos += 1;
                        break;
                    }
                    Some(c) => return Err(self.error(&format!("expected `,` or `)`, found `{c}`"))),
                    None => return Err(self.error("expected `)`")),
                }
            }
        }
        let n = args.len();
        if n < min || max.is_some_and(|m| n > m) {
            let expected = match max {
                Some(m) if m == min => format!("{min}"),
                Some(m) => format!("{min} to {m}"),
                None => format!("at least {min}"),
            };
            return Err(format!(
                "`{}` takes {expected} argument{}, not {n}",
                func.name(),
                if expected == "1" { "" } else { "s" }
            ));
        }
        Ok(Call { func, args })
    }

    fn arg(&mut self, depth: usize) -> Result<Arg, String> {
        let Some(c) = self.peek() else {
            return Err(self.error("expected an argument"));
        };
        match c {
            '\'' => self.string(),
            '$' => self.path(),
            '-' | '0'..='9' => self.number(),
            _ if self.rest().starts_with("States.") => Ok(Arg::Call(self.call(depth + 1)?)),
            c if c.is_ascii_alphabetic() => {
                let rest = self.rest();
                let len = rest
                    .find(|c: char| !c.is_ascii_alphanumeric())
                    .unwrap_or(rest.len());
                let word = &rest[..len];
                let arg = match word {
                    "true" => Arg::Bool(true),
                    "false" => Arg::Bool(false),
                    "null" => Arg::Null,
                    _ => {
                        return Err(self.error(&format!(
                            "`{word}` is not an argument (strings are written in single quotes)"
                        )))
                    }
                };
                self.pos += len;
                Ok(arg)
            }
            c => Err(self.error(&format!("unexpected `{c}`"))),
        }
    }

    fn string(&mut self) -> Result<Arg, String> {
        let start = self.pos;
        self.pos += 1;
        let mut value = String::new();
        let mut chars = self.rest().char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, e @ ('\'' | '{' | '}' | '\\'))) => value.push(e),
                    Some((_, e)) => {
                        self.pos += i;
                        return Err(self.error(&format!(
                            "`\\{e}` is not an escape (only \\', \\{{, \\}} and \\\\ are)"
                        )));
                    }
                    None => break,
                },
                '\'' => {
                    let raw = self.text[start + 1..self.pos + i].to_string();
                    self.pos += i + 1;
                    return Ok(Arg::Str { value, raw });
                }
                c => value.push(c),
            }
        }
        self.pos = start;
        Err(self.error("a string is not closed"))
    }

    fn path(&mut self) -> Result<Arg, String> {
        let rest = self.rest();
        let mut depth = 0usize;
        let mut quote: Option<char> = None;
        let mut escaped = false;
        let mut end = rest.len();
        for (i, c) in rest.char_indices() {
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
                '\'' | '"' if depth > 0 => quote = Some(c),
                '[' | '(' => depth += 1,
                ']' | ')' if depth > 0 => depth -= 1,
                ',' | ')' if depth == 0 => {
                    end = i;
                    break;
                }
                c if c.is_whitespace() && depth == 0 => {
                    end = i;
                    break;
                }
                _ => {}
            }
        }
        let path = rest[..end].to_string();
        data::check_path(&path).map_err(|why| self.error(&why))?;
        self.pos += end;
        Ok(Arg::Path(path))
    }

    fn number(&mut self) -> Result<Arg, String> {
        let rest = self.rest();
        let len = rest
            .find(|c: char| !(c.is_ascii_digit() || "+-.eE".contains(c)))
            .unwrap_or(rest.len());
        let token = &rest[..len];
        let number: Number = serde_json::from_str(token)
            .map_err(|_| self.error(&format!("`{token}` is not a number")))?;
        self.pos += len;
        Ok(Arg::Num(number))
    }
}

fn parse(text: &str) -> Result<Call, String> {
    let mut parser = Parser { text, pos: 0 };
    parser.skip_ws();
    let call = parser.call(1)?;
    parser.skip_ws();
    if parser.pos < text.len() {
        return Err(parser.error("unexpected text after the call"));
    }
    Ok(call)
}

/// Checks the syntax of an intrinsic call (name known, arguments well formed, arity).
pub fn check(text: &str) -> Result<(), String> {
    let call = parse(text)?;
    check_literals(&call)
}

/// What a literal argument is, for messages; `None` for paths and calls,
/// whose type is only known at run time.
fn literal_kind(arg: &Arg) -> Option<&'static str> {
    match arg {
        Arg::Str { .. } => Some("a string"),
        Arg::Num(_) => Some("a number"),
        Arg::Bool(_) => Some("a boolean"),
        Arg::Null => Some("null"),
        Arg::Path(_) | Arg::Call(_) => None,
    }
}

/// Rejects literal arguments that can never have the right type; paths and
/// nested calls are checked when they are evaluated.
fn check_literals(call: &Call) -> Result<(), String> {
    for arg in &call.args {
        if let Arg::Call(inner) = arg {
            check_literals(inner)?;
        }
    }
    let name = call.func.name();
    let want = |i: usize, what: &str, ok: &dyn Fn(&Arg) -> bool| -> Result<(), String> {
        match call.args.get(i) {
            Some(arg) if literal_kind(arg).is_some() && !ok(arg) => Err(format!(
                "argument {} of `{name}` must be {what}, not {}",
                i + 1,
                literal_kind(arg).unwrap_or("that")
            )),
            _ => Ok(()),
        }
    };
    let never = |_: &Arg| false;
    let string = |a: &Arg| matches!(a, Arg::Str { .. });
    let number = |a: &Arg| matches!(a, Arg::Num(_));
    let positive_integer = |a: &Arg| matches!(a, Arg::Num(n) if integral(n).is_some_and(|v| v > 0));
    let index = |a: &Arg| matches!(a, Arg::Num(n) if integral(n).is_some_and(|v| v >= 0));
    match call.func {
        Func::Format => {
            want(0, "a string", &string)?;
            if let Some(Arg::Str { raw, .. }) = call.args.first() {
                let placeholders = format_pieces(raw).1;
                if placeholders != call.args.len() - 1 {
                    return Err(format!(
                        "`{name}` has {placeholders} placeholder{} but {} value{}",
                        plural(placeholders),
                        call.args.len() - 1,
                        plural(call.args.len() - 1)
                    ));
                }
            }
        }
        Func::StringToJson | Func::Base64Encode | Func::Base64Decode => {
            want(0, "a string", &string)?
        }
        Func::ArrayPartition => {
            want(0, "an array", &never)?;
            want(1, "a positive integer", &positive_integer)?;
        }
        Func::ArrayContains | Func::ArrayLength | Func::ArrayUnique => want(0, "an array", &never)?,
        Func::ArrayGetItem => {
            want(0, "an array", &never)?;
            want(1, "a non-negative integer", &index)?;
        }
        Func::ArrayRange => {
            for i in 0..3 {
                want(i, "a number", &number)?;
            }
            if let Some(Arg::Num(step)) = call.args.get(2) {
                if step.as_f64().is_some_and(|s| s.round() == 0.0) {
                    return Err(format!("the step of `{name}` must not be 0"));
                }
            }
        }
        Func::Hash => {
            want(1, "a string", &string)?;
            if let Some(Arg::Str { value, .. }) = call.args.get(1) {
                if !HASH_ALGORITHMS.contains(&value.as_str()) {
                    return Err(format!(
                        "`{name}` does not know the algorithm `{value}` (use one of {})",
                        HASH_ALGORITHMS.join(", ")
                    ));
                }
            }
        }
        Func::JsonMerge => {
            want(0, "an object", &never)?;
            want(1, "an object", &never)?;
            want(2, "false", &|a| matches!(a, Arg::Bool(false)))?;
        }
        Func::MathRandom | Func::MathAdd => {
            for i in 0..call.args.len() {
                want(i, "a number", &number)?;
            }
        }
        Func::StringSplit => {
            want(0, "a string", &string)?;
            want(1, "a string", &string)?;
        }
        Func::JsonToString | Func::Array | Func::Uuid => {}
    }
    Ok(())
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// Splits a `States.Format` template at its `{}` placeholders, resolving
/// escapes; returns the literal pieces (one more than the placeholders) and
/// the placeholder count.
fn format_pieces(template: &str) -> (Vec<String>, usize) {
    let mut pieces = Vec::new();
    let mut current = String::new();
    let mut chars = template.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => current.extend(chars.next()),
            '{' if chars.peek() == Some(&'}') => {
                chars.next();
                pieces.push(std::mem::take(&mut current));
            }
            c => current.push(c),
        }
    }
    let placeholders = pieces.len();
    pieces.push(current);
    (pieces, placeholders)
}

/// The value of a number that is a whole number, exactly.
fn integral(n: &Number) -> Option<i64> {
    if let Some(i) = n.as_i64() {
        return Some(i);
    }
    let f = n.as_f64()?;
    (f.fract() == 0.0 && f.abs() < 9.0e15).then_some(f as i64)
}

/// Evaluates an intrinsic call. Errors are `States.IntrinsicFailure` (or `States.Runtime`).
pub fn evaluate<'a>(
    text: &str,
    input: &Value,
    env: impl Into<Env<'a>>,
    random: &mut dyn FnMut() -> u64,
) -> Result<Value, ErrorInfo> {
    let call = parse(text).map_err(|why| ErrorInfo::new(INTRINSIC_FAILURE, why))?;
    eval_call(&call, text, input, env.into(), random)
}

/// A path argument that selects nothing: `States.Runtime`, naming the whole
/// expression (not the inner call), as AWS words it — recorded:
/// `The function 'States.Format('{}', $.nope)' had the following error: The
/// JsonPath argument for the field '$.nope' could not be found in the input '{"other":1}'`.
fn missing_argument(text: &str, path: &str, input: &Value, env: Env<'_>) -> ErrorInfo {
    let (what, data) = if path.starts_with("$$") {
        ("context object".to_string(), env.context)
    } else if let Some((name, _)) = vars::split(path) {
        (
            format!("variable '${name}'"),
            env.vars.get(name).unwrap_or(&Value::Null),
        )
    } else {
        ("input".to_string(), input)
    };
    ErrorInfo::new(
        RUNTIME,
        format!(
            "The function '{text}' had the following error: The JsonPath argument for the field '{path}' could not be found in the {what} '{}'",
            data::excerpt(data)
        ),
    )
}

fn fail(func: Func, why: impl std::fmt::Display) -> ErrorInfo {
    ErrorInfo::new(INTRINSIC_FAILURE, format!("{}: {why}", func.name()))
}

fn eval_call(
    call: &Call,
    text: &str,
    input: &Value,
    context: Env<'_>,
    random: &mut dyn FnMut() -> u64,
) -> Result<Value, ErrorInfo> {
    let mut values = Vec::with_capacity(call.args.len());
    for arg in &call.args {
        values.push(match arg {
            Arg::Str { value, .. } => Value::String(value.clone()),
            Arg::Num(n) => Value::Number(n.clone()),
            Arg::Bool(b) => Value::Bool(*b),
            Arg::Null => Value::Null,
            Arg::Path(p) => data::lookup(p, input, context)?
                .ok_or_else(|| missing_argument(text, p, input, context))?,
            Arg::Call(inner) => eval_call(inner, text, input, context, random)?,
        });
    }
    let f = call.func;
    let args = Args { func: f, values };
    match f {
        Func::Format => {
            let template = match call.args.first() {
                Some(Arg::Str { raw, .. }) => raw.clone(),
                _ => args.string(0)?.to_string(),
            };
            let (pieces, placeholders) = format_pieces(&template);
            let supplied = args.values.len() - 1;
            if placeholders != supplied {
                return Err(fail(
                    f,
                    format!(
                        "the template has {placeholders} placeholder{} but {supplied} value{} were given",
                        plural(placeholders),
                        plural(supplied)
                    ),
                ));
            }
            let mut out = String::new();
            for (i, piece) in pieces.iter().enumerate() {
                out.push_str(piece);
                if let Some(v) = args.values.get(i + 1) {
                    out.push_str(&format_value(f, i + 2, v)?);
                }
            }
            Ok(Value::String(out))
        }
        Func::StringToJson => {
            let s = args.string(0)?;
            serde_json::from_str(s).map_err(|e| fail(f, format!("'{s}' is not valid JSON ({e})")))
        }
        Func::JsonToString => serde_json::to_string(args.value(0))
            .map(Value::String)
            .map_err(|e| fail(f, e)),
        Func::Array => Ok(Value::Array(args.values)),
        Func::ArrayPartition => {
            let items = args.array(0)?;
            let size = args.exact_integer(1)?;
            let size = usize::try_from(size)
                .ok()
                .filter(|s| *s > 0)
                .ok_or_else(|| {
                    fail(
                        f,
                        format!("the chunk size must be a positive integer, not {size}"),
                    )
                })?;
            Ok(Value::Array(
                items
                    .chunks(size)
                    .map(|chunk| Value::Array(chunk.to_vec()))
                    .collect(),
            ))
        }
        Func::ArrayContains => {
            let items = args.array(0)?;
            Ok(Value::Bool(items.contains(args.value(1))))
        }
        Func::ArrayRange => {
            let start = i128::from(args.rounded(0)?);
            let end = i128::from(args.rounded(1)?);
            let step = i128::from(args.rounded(2)?);
            if step == 0 {
                return Err(fail(f, "the step must not be 0"));
            }
            let count = if (step > 0 && start > end) || (step < 0 && start < end) {
                0
            } else {
                (end - start) / step + 1
            };
            if count > MAX_RANGE_ITEMS as i128 {
                return Err(fail(
                    f,
                    format!("the range would have {count} items, more than {MAX_RANGE_ITEMS}"),
                ));
            }
            Ok(Value::Array(
                (0..count)
                    .map(|k| start + k * step)
                    .filter_map(|v| i64::try_from(v).ok())
                    .map(Value::from)
                    .collect(),
            ))
        }
        Func::ArrayGetItem => {
            let items = args.array(0)?;
            let index = args.exact_integer(1)?;
            usize::try_from(index)
                .ok()
                .and_then(|i| items.get(i))
                .cloned()
                .ok_or_else(|| {
                    fail(
                        f,
                        format!(
                            "the index {index} is outside the array of length {}",
                            items.len()
                        ),
                    )
                })
        }
        Func::ArrayLength => Ok(Value::from(args.array(0)?.len())),
        Func::ArrayUnique => {
            // Values are compared structurally (objects compare regardless of
            // key order), which a hash of their text could not do.
            let mut unique: Vec<Value> = Vec::new();
            for item in args.array(0)? {
                if !unique.contains(item) {
                    unique.push(item.clone());
                }
            }
            Ok(Value::Array(unique))
        }
        Func::Base64Encode => {
            let s = args.limited_string(0)?;
            Ok(Value::String(
                base64::engine::general_purpose::STANDARD.encode(s.as_bytes()),
            ))
        }
        Func::Base64Decode => {
            let s = args.limited_string(0)?;
            // AWS accepts input without its `=` padding.
            let engine = base64::engine::GeneralPurpose::new(
                &base64::alphabet::STANDARD,
                base64::engine::GeneralPurposeConfig::new()
                    .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
            );
            let bytes = engine
                .decode(s.trim())
                .map_err(|e| fail(f, format!("'{s}' is not Base64 ({e})")))?;
            String::from_utf8(bytes)
                .map(Value::String)
                .map_err(|_| fail(f, "the decoded data is not UTF-8 text"))
        }
        Func::Hash => {
            let data = match args.value(0) {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            if data.chars().count() > MAX_STRING_CHARS {
                return Err(fail(
                    f,
                    format!("the data is longer than {MAX_STRING_CHARS} characters"),
                ));
            }
            let algorithm = args.string(1)?;
            let digest = hash(algorithm, data.as_bytes()).ok_or_else(|| {
                fail(
                    f,
                    format!(
                        "unknown algorithm '{algorithm}' (use one of {})",
                        HASH_ALGORITHMS.join(", ")
                    ),
                )
            })?;
            Ok(Value::String(digest))
        }
        Func::JsonMerge => {
            let first = args.object(0)?;
            let second = args.object(1)?;
            match args.value(2) {
                Value::Bool(false) => {}
                Value::Bool(true) => {
                    return Err(fail(
                        f,
                        "only the shallow merge is supported: the third argument must be false",
                    ))
                }
                other => {
                    return Err(fail(
                        f,
                        format!(
                            "the third argument must be the boolean false, not {}",
                            type_name(other)
                        ),
                    ))
                }
            }
            let mut merged = first.clone();
            for (k, v) in second {
                merged.insert(k.clone(), v.clone());
            }
            Ok(Value::Object(merged))
        }
        Func::MathRandom => {
            let start = i128::from(args.rounded(0)?);
            let end = i128::from(args.rounded(1)?);
            if start > end {
                return Err(fail(
                    f,
                    format!("the start {start} is greater than the end {end}"),
                ));
            }
            // A seed makes the draw repeatable, as AWS promises, so it
            // replaces the caller's randomness rather than mixing with it.
            let draw = match args.values.get(2) {
                Some(_) => splitmix64(args.rounded(2)? as u64),
                None => random(),
            };
            let span = (end - start + 1) as u128;
            let value = start + (u128::from(draw) % span) as i128;
            i64::try_from(value)
                .map(Value::from)
                .map_err(|_| fail(f, "the result is out of range"))
        }
        Func::MathAdd => {
            let a = args.rounded_half_up(0)?;
            let b = args.rounded_half_up(1)?;
            a.checked_add(b)
                .map(Value::from)
                .ok_or_else(|| fail(f, format!("{a} + {b} overflows")))
        }
        Func::StringSplit => {
            let s = args.string(0)?;
            let delimiters = args.string(1)?;
            // Every character of the second argument delimits, and empty
            // pieces are dropped, as in AWS.
            let parts = if delimiters.is_empty() {
                vec![Value::String(s.to_string())]
            } else {
                s.split(|c| delimiters.contains(c))
                    .filter(|p| !p.is_empty())
                    .map(|p| Value::String(p.to_string()))
                    .collect()
            };
            Ok(Value::Array(parts))
        }
        Func::Uuid => Ok(Value::String(uuid_v4(random(), random()))),
    }
}

/// The evaluated arguments of one call, with typed accessors whose errors
/// name the function and the argument.
struct Args {
    func: Func,
    values: Vec<Value>,
}

impl Args {
    /// The `i`th value; arity was checked when the call was parsed, so the
    /// `null` fallback only keeps indexing total.
    fn value(&self, i: usize) -> &Value {
        self.values.get(i).unwrap_or(&Value::Null)
    }

    fn wrong(&self, i: usize, what: &str) -> ErrorInfo {
        let found = self.values.get(i).map_or("missing", type_name);
        fail(
            self.func,
            format!("argument {} must be {what}, not {found}", i + 1),
        )
    }

    fn string(&self, i: usize) -> Result<&str, ErrorInfo> {
        self.values
            .get(i)
            .and_then(Value::as_str)
            .ok_or_else(|| self.wrong(i, "a string"))
    }

    fn limited_string(&self, i: usize) -> Result<&str, ErrorInfo> {
        let s = self.string(i)?;
        if s.chars().count() > MAX_STRING_CHARS {
            return Err(fail(
                self.func,
                format!("the string is longer than {MAX_STRING_CHARS} characters"),
            ));
        }
        Ok(s)
    }

    fn array(&self, i: usize) -> Result<&Vec<Value>, ErrorInfo> {
        self.values
            .get(i)
            .and_then(Value::as_array)
            .ok_or_else(|| self.wrong(i, "an array"))
    }

    fn object(&self, i: usize) -> Result<&Map<String, Value>, ErrorInfo> {
        self.values
            .get(i)
            .and_then(Value::as_object)
            .ok_or_else(|| self.wrong(i, "an object"))
    }

    fn number(&self, i: usize) -> Result<&Number, ErrorInfo> {
        match self.values.get(i) {
            Some(Value::Number(n)) => Ok(n),
            _ => Err(self.wrong(i, "a number")),
        }
    }

    /// A whole number; anything else is an error.
    fn exact_integer(&self, i: usize) -> Result<i64, ErrorInfo> {
        integral(self.number(i)?).ok_or_else(|| self.wrong(i, "an integer"))
    }

    /// A number rounded to the nearest integer, halves toward positive
    /// infinity (Java's `Math.round`: `floor(x + 0.5)`), as AWS rounds each
    /// operand of `States.MathAdd`: its recorded results are
    /// `MathAdd(-1.5, 0) = -1` and `MathAdd(-0.5, 0.5) = 1`.
    fn rounded_half_up(&self, i: usize) -> Result<i64, ErrorInfo> {
        let n = self.number(i)?;
        if let Some(v) = n.as_i64() {
            return Ok(v);
        }
        n.as_f64()
            .map(|x| (x + 0.5).floor())
            .filter(|r| r.is_finite() && r.abs() < 9.2e18)
            .map(|r| r as i64)
            .ok_or_else(|| self.wrong(i, "an integer in range"))
    }

    /// A number rounded to the nearest integer (halves away from zero), for
    /// `States.ArrayRange` and `States.MathRandom`.
    fn rounded(&self, i: usize) -> Result<i64, ErrorInfo> {
        let n = self.number(i)?;
        if let Some(v) = n.as_i64() {
            return Ok(v);
        }
        n.as_f64()
            .map(f64::round)
            .filter(|r| r.is_finite() && r.abs() < 9.2e18)
            .map(|r| r as i64)
            .ok_or_else(|| self.wrong(i, "an integer in range"))
    }
}

/// The text a value stands for in `States.Format`: strings without quotes,
/// numbers, booleans and null as JSON writes them.
fn format_value(func: Func, position: usize, v: &Value) -> Result<String, ErrorInfo> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Null => Ok("null".into()),
        other => Err(fail(
            func,
            format!(
                "argument {position} is {}; only strings, numbers, booleans and null can be formatted",
                type_name(other)
            ),
        )),
    }
}

/// Lowercase hex digest of `data`, or `None` for an unknown algorithm.
fn hash(algorithm: &str, data: &[u8]) -> Option<String> {
    use sha2::Digest as _;
    Some(match algorithm {
        "MD5" => hex(&md5::Md5::digest(data)),
        "SHA-1" => hex(&sha1::Sha1::digest(data)),
        "SHA-256" => hex(&sha2::Sha256::digest(data)),
        "SHA-384" => hex(&sha2::Sha384::digest(data)),
        "SHA-512" => hex(&sha2::Sha512::digest(data)),
        _ => return None,
    })
}

fn splitmix64(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A version 4 UUID from 128 random bits (version and variant bits set).
fn uuid_v4(high: u64, low: u64) -> String {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&high.to_be_bytes());
    b[8..].copy_from_slice(&low.to_be_bytes());
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}
