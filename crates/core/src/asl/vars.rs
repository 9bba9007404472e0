//! Workflow variables (`Assign`): the store the interpreter keeps per
//! thread, the names AWS allows, and the limits it enforces.
//!
//! A state's `Assign` is a payload template rendered like Parameters
//! ([`crate::asl::data::render`]) against the state's result; every
//! expression sees the variables as they were before the state assigned
//! anything (parallel assignment), and the new values replace the old ones
//! at once when the state exits. `$name` and `$name.path` read a variable
//! wherever a JSONPath is accepted; `$` stays the input and `$$` the
//! context object. The store lives in [`crate::asl::run`]'s threads: a
//! Parallel branch or Map iteration starts with the variables its parent
//! thread had when the branch started and keeps its own on top of them,
//! which vanish when it ends. Nothing here is recorded: variables are
//! recomputed from the events on replay, like every other value of the
//! data flow.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use crate::error_name::RUNTIME;
use crate::event::ErrorInfo;

/// One thread's visible variables, by name.
pub type Vars = BTreeMap<String, Value>;

/// Shared between a thread and the branches it starts (copied on write).
pub type SharedVars = Arc<Vars>;

/// AWS's longest variable name.
pub const MAX_NAME_CHARS: usize = 80;
/// AWS's limit on the values one `Assign` sets (serialized), 256 KiB.
pub const MAX_ASSIGN_BYTES: usize = 256 * 1024;
/// AWS's limit on all variables of an execution scope (serialized), 10 MiB.
pub const MAX_TOTAL_BYTES: usize = 10 * 1024 * 1024;
/// The name AWS reserves (JSONata's `$states`).
pub const RESERVED: &str = "states";

static EMPTY: Vars = BTreeMap::new();

/// What a path may read besides the input: the context object (`$$`) and
/// the variables (`$name`).
#[derive(Debug, Clone, Copy)]
pub struct Env<'a> {
    pub context: &'a Value,
    pub vars: &'a Vars,
}

impl<'a> Env<'a> {
    pub fn new(context: &'a Value, vars: &'a Vars) -> Self {
        Env { context, vars }
    }
}

impl<'a> From<&Env<'a>> for Env<'a> {
    fn from(env: &Env<'a>) -> Self {
        *env
    }
}

/// A bare context object: no variable is defined.
impl<'a> From<&'a Value> for Env<'a> {
    fn from(context: &'a Value) -> Self {
        Env {
            context,
            vars: &EMPTY,
        }
    }
}

/// Whether `c` may start a variable name (a Unicode letter, as AWS's
/// `ID_Start`).
pub fn is_name_start(c: char) -> bool {
    c.is_alphabetic()
}

/// Whether `c` may continue a variable name (a letter, a digit or `_`).
pub fn is_name_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Checks a variable name as an `Assign` key gives it.
pub fn check_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    match chars.next() {
        None => return Err("a variable name must not be empty".into()),
        Some(c) if !is_name_start(c) => {
            return Err(format!(
                "the variable name `{name}` must start with a letter"
            ))
        }
        _ => {}
    }
    if let Some(c) = chars.find(|c| !is_name_char(*c)) {
        return Err(format!(
            "the variable name `{name}` may only hold letters, digits and `_`, not `{c}`"
        ));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(format!(
            "the variable name `{name}` is longer than {MAX_NAME_CHARS} characters"
        ));
    }
    if name == RESERVED {
        return Err("`$states` is reserved and cannot be assigned".into());
    }
    Ok(())
}

/// Splits a variable path (`$name`, `$name.a[0]`) into the name and the
/// rest; `None` for `$`, `$.…`, `$[…]` and `$$…`.
pub fn split(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix('$')?;
    let first = rest.chars().next()?;
    if !is_name_start(first) {
        return None;
    }
    let end = rest.find(|c: char| !is_name_char(c)).unwrap_or(rest.len());
    Some((&rest[..end], &rest[end..]))
}

/// The variables a path or an intrinsic call reads (`$name…` outside
/// quotes), in order, each once.
pub fn references(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out: Vec<String> = Vec::new();
    let mut quote: Option<char> = None;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if let Some(q) = quote {
            if c == '\\' {
                i += 1;
            } else if c == q {
                quote = None;
            }
            i += 1;
            continue;
        }
        match c {
            '\'' | '"' => quote = Some(c),
            '$' if chars.get(i + 1) == Some(&'$') => i += 1,
            '$' if chars.get(i + 1).is_some_and(|c| is_name_start(*c)) => {
                let start = i + 1;
                let mut end = start;
                while end < chars.len() && is_name_char(chars[end]) {
                    end += 1;
                }
                let name: String = chars[start..end].iter().collect();
                if !out.contains(&name) {
                    out.push(name);
                }
                i = end;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// Serialized size of a value, as the limits count it.
fn size(v: &Value) -> usize {
    serde_json::to_string(v).map_or(0, |t| t.len())
}

/// Checks what one `Assign` produced against AWS's limits, given the
/// variables it will join: `States.Runtime` past 256 KiB for the Assign or
/// 10 MiB for the scope.
pub fn check_limits(assigned: &Vars, vars: &Vars) -> Result<(), ErrorInfo> {
    let this: usize = assigned.iter().map(|(k, v)| k.len() + size(v)).sum();
    if this > MAX_ASSIGN_BYTES {
        return Err(ErrorInfo::new(
            RUNTIME,
            format!(
                "The assigned variables are {this} bytes, over the limit of {MAX_ASSIGN_BYTES} bytes for one Assign"
            ),
        ));
    }
    let total: usize = vars
        .iter()
        .filter(|(k, _)| !assigned.contains_key(*k))
        .map(|(k, v)| k.len() + size(v))
        .sum::<usize>()
        + this;
    if total > MAX_TOTAL_BYTES {
        return Err(ErrorInfo::new(
            RUNTIME,
            format!(
                "The variables of this scope would be {total} bytes, over the limit of {MAX_TOTAL_BYTES} bytes"
            ),
        ));
    }
    Ok(())
}

/// `assignedVariables` of a `…StateExited` event: each value as JSON text.
pub fn as_json_text(assigned: &Vars) -> BTreeMap<String, String> {
    assigned
        .iter()
        .map(|(k, v)| (k.clone(), v.to_string()))
        .collect()
}
