//! Choice rules: evaluation against the state input.
//!
//! Semantics follow AWS: a comparison whose variable has the wrong type is
//! simply false (`NumericEquals` on a string does not match); a missing
//! variable is an error except for `IsPresent` and the other `Is*` tests;
//! `And` and `Or` stop at the first rule that decides them, so an
//! `IsPresent` test can guard a comparison on the same variable.

use std::cmp::Ordering;

use serde_json::{Number, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::asl::data;
use crate::asl::machine::{Comparison, Operand, Rule};
use crate::asl::vars::Env;
use crate::document::type_name;
use crate::event::ErrorInfo;

/// Whether `rule` holds for `input`. A non-`Is*` comparison whose variable is
/// missing is a `States.Runtime` error, as in AWS.
pub fn evaluate<'a>(
    rule: &Rule,
    input: &Value,
    env: impl Into<Env<'a>>,
) -> Result<bool, ErrorInfo> {
    eval(rule, input, env.into())
}

fn eval(rule: &Rule, input: &Value, context: Env<'_>) -> Result<bool, ErrorInfo> {
    match rule {
        // A JSONata rule: the interpreter evaluates it with `$states`
        // (see `asl::run`), never through here.
        Rule::Condition(t) => Err(ErrorInfo::new(
            crate::error_name::RUNTIME,
            format!(
                "the JSONata Condition at {} needs a JSONata state",
                t.location()
            ),
        )),
        Rule::And(rules) => {
            for r in rules {
                if !eval(r, input, context)? {
                    return Ok(false);
                }
            }
            Ok(true)
        }
        Rule::Or(rules) => {
            for r in rules {
                if eval(r, input, context)? {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        Rule::Not(r) => Ok(!eval(r, input, context)?),
        Rule::Compare {
            variable,
            op,
            operand,
        } => compare(variable, *op, operand, input, context),
    }
}

fn runtime(cause: String) -> ErrorInfo {
    ErrorInfo::new(crate::error_name::RUNTIME, cause)
}

fn compare(
    variable: &str,
    op: Comparison,
    operand: &Operand,
    input: &Value,
    context: Env<'_>,
) -> Result<bool, ErrorInfo> {
    let value = data::lookup(variable, input, context)?;
    if let Some(test) = type_test(op) {
        let expected = match operand {
            Operand::Value(Value::Bool(b)) => *b,
            Operand::Value(other) => {
                return Err(runtime(format!(
                    "{op:?} must be given true or false, not {}",
                    type_name(other)
                )))
            }
            Operand::Path(p) => match data::select(p, input, context)? {
                Value::Bool(b) => b,
                other => {
                    return Err(runtime(format!(
                        "{op:?}Path '{p}' must select true or false, not {}",
                        type_name(&other)
                    )))
                }
            },
        };
        return Ok(test(value.as_ref()) == expected);
    }
    let Some(value) = value else {
        // AWS's cause, as recorded in failed executions.
        return Err(runtime(format!(
            "Invalid path '{variable}': The choice state's condition path references an invalid value."
        )));
    };
    let other = match operand {
        Operand::Value(v) => v.clone(),
        Operand::Path(p) => data::lookup(p, input, context)?.ok_or_else(|| {
            runtime(format!(
                "Invalid path '{p}' given for the field '{op:?}Path': it matches nothing in the input '{}'",
                data::excerpt(input)
            ))
        })?,
    };
    Ok(match op {
        Comparison::StringEquals => strings(&value, &other, Ordering::is_eq),
        Comparison::StringLessThan => strings(&value, &other, Ordering::is_lt),
        Comparison::StringGreaterThan => strings(&value, &other, Ordering::is_gt),
        Comparison::StringLessThanEquals => strings(&value, &other, Ordering::is_le),
        Comparison::StringGreaterThanEquals => strings(&value, &other, Ordering::is_ge),
        Comparison::StringMatches => match (&value, &other) {
            (Value::String(s), Value::String(pattern)) => matches_pattern(s, pattern),
            _ => false,
        },
        Comparison::NumericEquals => numbers(&value, &other, Ordering::is_eq),
        Comparison::NumericLessThan => numbers(&value, &other, Ordering::is_lt),
        Comparison::NumericGreaterThan => numbers(&value, &other, Ordering::is_gt),
        Comparison::NumericLessThanEquals => numbers(&value, &other, Ordering::is_le),
        Comparison::NumericGreaterThanEquals => numbers(&value, &other, Ordering::is_ge),
        Comparison::BooleanEquals => match (&value, &other) {
            (Value::Bool(a), Value::Bool(b)) => a == b,
            _ => false,
        },
        Comparison::TimestampEquals => timestamps(&value, &other, Ordering::is_eq),
        Comparison::TimestampLessThan => timestamps(&value, &other, Ordering::is_lt),
        Comparison::TimestampGreaterThan => timestamps(&value, &other, Ordering::is_gt),
        Comparison::TimestampLessThanEquals => timestamps(&value, &other, Ordering::is_le),
        Comparison::TimestampGreaterThanEquals => timestamps(&value, &other, Ordering::is_ge),
        // Handled above by `type_test`.
        Comparison::IsNull
        | Comparison::IsPresent
        | Comparison::IsNumeric
        | Comparison::IsString
        | Comparison::IsBoolean
        | Comparison::IsTimestamp => false,
    })
}

/// The test behind an `Is*` operator, applied to the variable's value
/// (`None` when it is missing).
fn type_test(op: Comparison) -> Option<fn(Option<&Value>) -> bool> {
    Some(match op {
        Comparison::IsPresent => |v| v.is_some(),
        Comparison::IsNull => |v| matches!(v, Some(Value::Null)),
        Comparison::IsNumeric => |v| matches!(v, Some(Value::Number(_))),
        Comparison::IsString => |v| matches!(v, Some(Value::String(_))),
        Comparison::IsBoolean => |v| matches!(v, Some(Value::Bool(_))),
        Comparison::IsTimestamp => {
            |v| matches!(v, Some(Value::String(s)) if parse_timestamp(s).is_some())
        }
        _ => return None,
    })
}

/// Strings compare as Java's `String.compareTo` does (by UTF-16 code
/// units), which AWS documents as its rule; it differs from Rust's byte
/// order only for characters beyond the Basic Multilingual Plane.
fn strings(a: &Value, b: &Value, want: fn(Ordering) -> bool) -> bool {
    match (a, b) {
        (Value::String(a), Value::String(b)) => want(a.encode_utf16().cmp(b.encode_utf16())),
        _ => false,
    }
}

fn numbers(a: &Value, b: &Value, want: fn(Ordering) -> bool) -> bool {
    match (a, b) {
        (Value::Number(a), Value::Number(b)) => compare_numbers(a, b).is_some_and(want),
        _ => false,
    }
}

/// Compares exactly when both are integers (large ones lose nothing), and
/// as doubles otherwise: `1` equals `1.0`.
pub fn compare_numbers(a: &Number, b: &Number) -> Option<Ordering> {
    if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
        return Some(x.cmp(&y));
    }
    if let (Some(x), Some(y)) = (a.as_u64(), b.as_u64()) {
        return Some(x.cmp(&y));
    }
    // One is a u64 above i64::MAX and the other a negative i64.
    if a.as_u64().is_some() && b.as_i64().is_some_and(|y| y < 0) {
        return Some(Ordering::Greater);
    }
    if b.as_u64().is_some() && a.as_i64().is_some_and(|x| x < 0) {
        return Some(Ordering::Less);
    }
    a.as_f64()?.partial_cmp(&b.as_f64()?)
}

fn timestamps(a: &Value, b: &Value, want: fn(Ordering) -> bool) -> bool {
    match (a, b) {
        (Value::String(a), Value::String(b)) => match (parse_timestamp(a), parse_timestamp(b)) {
            (Some(x), Some(y)) => want(x.cmp(&y)),
            _ => false,
        },
        _ => false,
    }
}

/// Parses a timestamp as AWS accepts it: RFC 3339 with an uppercase `T`
/// between date and time and an uppercase `Z` for UTC (`2016-08-18T17:33:00Z`,
/// `2016-08-18T17:33:00.123+02:00`).
pub fn parse_timestamp(text: &str) -> Option<OffsetDateTime> {
    if text.as_bytes().get(10) != Some(&b'T') || text.contains(['t', 'z']) {
        return None;
    }
    OffsetDateTime::parse(text, &Rfc3339).ok()
}

/// `StringMatches`: `*` matches any run of characters (also none), `\*` a
/// literal star and `\\` a literal backslash; nothing else is special.
pub fn matches_pattern(text: &str, pattern: &str) -> bool {
    #[derive(PartialEq)]
    enum Tok {
        Star,
        Char(char),
    }
    let mut toks = Vec::new();
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if matches!(chars.peek(), Some('*' | '\\')) => {
                toks.extend(chars.next().map(Tok::Char));
            }
            '*' => toks.push(Tok::Star),
            c => toks.push(Tok::Char(c)),
        }
    }
    let text: Vec<char> = text.chars().collect();
    // Greedy matching with a single backtrack point (the last star) is
    // linear in practice and never exponential.
    let (mut t, mut p) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while t < text.len() {
        match toks.get(p) {
            Some(Tok::Star) => {
                backtrack = Some((p, t));
                p += 1;
            }
            Some(Tok::Char(c)) if *c == text[t] => {
                t += 1;
                p += 1;
            }
            _ => match backtrack {
                Some((star, at)) => {
                    p = star + 1;
                    t = at + 1;
                    backtrack = Some((star, at + 1));
                }
                None => return false,
            },
        }
    }
    toks.iter().skip(p).all(|tok| *tok == Tok::Star)
}
