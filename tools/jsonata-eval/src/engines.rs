//! One adapter per Rust JSONata crate: evaluate a case's expression against its
//! input and bindings, with the case's `timelimit`/`depth` passed to the
//! engine's own limits where it has them, and bring the answer back as JSON.

use crate::suite::Case;
use serde_json::Value;

/// What an engine answered.
#[derive(Debug, Clone)]
pub enum Answer {
    Value(Value),
    Undefined,
    /// An error, with its JSONata code when the engine gives one.
    Error {
        code: Option<String>,
        message: String,
    },
}

/// The engines measured: (name, crate version as locked in Cargo.lock).
pub const ENGINES: &[(&str, &str)] = &[
    ("jsonata-rs", "0.3.4"),
    ("jsonata-core", "2.2.13"),
    ("seuil", "0.1.1"),
    ("jlens-core", "0.26.0"),
];

pub fn evaluate(engine: &str, case: &Case) -> Answer {
    match engine {
        "jsonata-rs" => jsonata_rs(case),
        "jsonata-core" => jsonata_core(case),
        "seuil" => seuil(case),
        "jlens-core" => jlens(case),
        other => panic!("unknown engine {other}"),
    }
}

fn err(code: Option<&str>, message: impl std::fmt::Display) -> Answer {
    Answer::Error {
        code: code.map(str::to_string),
        message: message.to_string(),
    }
}

/// An engine's result serialized as JSON text, read back.
fn from_text(text: Result<String, impl ToString>) -> Answer {
    match text {
        Ok(t) => match serde_json::from_str(&t) {
            Ok(v) => Answer::Value(v),
            Err(e) => err(None, format!("harness: result is not JSON ({e}): {t}")),
        },
        Err(e) => err(
            None,
            format!("harness: result not serializable: {}", e.to_string()),
        ),
    }
}

/// jsonata-rs (Stedi): `JsonAta::new(expr, &Bump)` then `evaluate(input text,
/// bindings)`; with `timelimit`/`depth`, `evaluate_timeboxed` (which takes no
/// bindings; no case of the suite has both).
fn jsonata_rs(case: &Case) -> Answer {
    use jsonata_rs::JsonAta;
    let arena = bumpalo::Bump::new();
    let jsonata = match JsonAta::new(&case.expr, &arena) {
        Ok(j) => j,
        Err(e) => return err(Some(e.code()), &e),
    };
    let input = case.input.as_ref().map(|v| v.to_string());
    let result = if case.timelimit_ms.is_some() || case.depth.is_some() {
        jsonata.evaluate_timeboxed(
            input.as_deref(),
            case.depth,
            case.timelimit_ms.map(|t| t as usize),
        )
    } else {
        let bindings: std::collections::HashMap<&str, &Value> =
            case.bindings.iter().map(|(k, v)| (k.as_str(), v)).collect();
        jsonata.evaluate(input.as_deref(), Some(&bindings))
    };
    match result {
        Ok(v) if v.is_undefined() => Answer::Undefined,
        Ok(v) => Answer::Value(jsonata_rs_json(v)),
        Err(e) => err(Some(e.code()), &e),
    }
}

/// jsonata-rs's `Value::serialize` keeps 15 significant digits and drops the
/// exponent (5.7e262 comes out as 5.71338395644585), so the value is read
/// through its accessors instead.
fn jsonata_rs_json<'a>(v: &'a jsonata_rs::Value<'a>) -> Value {
    if v.is_null() || v.is_undefined() {
        Value::Null
    } else if v.is_bool() {
        Value::Bool(v.as_bool())
    } else if v.is_number() {
        serde_json::Number::from_f64(v.as_f64()).map_or(Value::Null, Value::Number)
    } else if v.is_string() {
        Value::String(v.as_str().into_owned())
    } else if v.is_array() {
        Value::Array(
            v.members()
                .filter(|m| !m.is_undefined())
                .map(|m| jsonata_rs_json(m))
                .collect(),
        )
    } else if v.is_object() {
        Value::Object(
            v.entries()
                .filter(|(_, m)| !m.is_undefined())
                .map(|(k, m)| (k.to_string(), jsonata_rs_json(m)))
                .collect(),
        )
    } else {
        // Functions (and regexes): JSON.stringify leaves them out; as a
        // result they have no JSON form.
        Value::String(String::new())
    }
}

/// jsonata-core: `parser::parse`, then the crate's own dispatch (as its CLI
/// does): `Expression` (bytecode VM where it can) without bindings, the
/// tree-walking `Evaluator` with a `Context` holding the bindings otherwise.
/// `timelimit` → `timeout_ms`, `depth` → `max_stack_depth`.
fn jsonata_core(case: &Case) -> Answer {
    use jsonata_core::evaluator::{Context, Evaluator, EvaluatorOptions};
    use jsonata_core::value::JValue;
    let ast = match jsonata_core::parser::parse(&case.expr) {
        Ok(a) => a,
        Err(e) => {
            let msg = e.to_string();
            return err(code_in(&msg), &msg);
        }
    };
    let data = match &case.input {
        Some(v) => JValue::from(v.clone()),
        None => JValue::Undefined,
    };
    let options = EvaluatorOptions {
        timeout_ms: case.timelimit_ms,
        max_stack_depth: case.depth,
        ..Default::default()
    };
    let result = if case.bindings.is_empty() {
        jsonata_core::Expression::from_ast(ast).evaluate_with_options(&data, options)
    } else {
        let mut context = Context::new();
        for (k, v) in &case.bindings {
            context.bind(k.clone(), JValue::from(v.clone()));
        }
        Evaluator::with_options(context, options).evaluate(&ast, &data)
    };
    match result {
        Ok(v) if v.is_undefined() => Answer::Undefined,
        Ok(v) => from_text(v.to_json_string()),
        Err(e) => err(e.code().or_else(|| code_in(e.message())), e.message()),
    }
}

/// jsonata-core's `code()` reads a code only at the start of the message;
/// several of its errors carry it after a prefix ("Invalid syntax: T1006:
/// ..."). The first `X0000` word of the message is taken as the code.
fn code_in(msg: &str) -> Option<&str> {
    msg.split(|c: char| !c.is_ascii_alphanumeric()).find(|w| {
        w.len() == 5
            && w.as_bytes()[0].is_ascii_uppercase()
            && w[1..].bytes().all(|b| b.is_ascii_digit())
    })
}

/// seuil: its public `Seuil::evaluate*` turns *undefined* into `null` (input
/// and result), which would make `undefinedResult` unmeasurable; so this
/// drives its public `parser::parse` and `evaluator::engine::Evaluator` the
/// way `Seuil::evaluate_with_config_and_bindings` does, keeping *undefined*.
/// Its defaults (depth 1000, 5,000 ms) apply unless the case sets limits.
fn seuil(case: &Case) -> Answer {
    use seuil::evaluator::engine::Evaluator;
    use seuil::evaluator::value::Value as SValue;
    let ast = match seuil::parser::parse(&case.expr) {
        Ok(a) => a,
        Err(e) => return err(Some(e.code()), &e),
    };
    let arena = bumpalo::Bump::new();
    let env = seuil::clock::RealEnvironment::new();
    let input: &SValue = match &case.input {
        Some(v) => SValue::from_json(&arena, v),
        None => SValue::undefined(&arena),
    };
    let evaluator = Evaluator::new(
        &arena,
        &env,
        None,
        case.depth.unwrap_or(1000),
        Some(case.timelimit_ms.unwrap_or(5000)),
    );
    evaluator.bind_natives();
    evaluator.bind("$", input);
    for (k, v) in &case.bindings {
        let name = bumpalo::collections::String::from_str_in(k, &arena).into_bump_str();
        evaluator.bind(name, SValue::from_json(&arena, v));
    }
    match evaluator.evaluate(&ast, input) {
        Ok(v) if v.is_undefined() => Answer::Undefined,
        Ok(v) => Answer::Value(seuil_json(v)),
        Err(e) => err(Some(e.code()), &e),
    }
}

/// As seuil's private `value_to_json`, but an *undefined* inside an array is
/// dropped (as JSON.stringify would not; it never happens in a result).
fn seuil_json(v: &seuil::evaluator::value::Value<'_>) -> Value {
    use seuil::evaluator::value::Value as S;
    match v {
        S::Null | S::Undefined => Value::Null,
        S::Bool(b) => Value::Bool(*b),
        S::Number(n) => serde_json::Number::from_f64(*n).map_or(Value::Null, Value::Number),
        S::String(s) => Value::String(s.as_str().to_string()),
        S::Array(a, _) => Value::Array(
            a.iter()
                .filter(|v| !v.is_undefined())
                .map(|v| seuil_json(v))
                .collect(),
        ),
        S::Object(o) => Value::Object(
            o.iter()
                .filter(|(_, v)| !v.is_undefined())
                .map(|(k, v)| (k.clone(), seuil_json(v)))
                .collect(),
        ),
        S::Range(r) => Value::Array(
            (r.start()..=r.end())
                .map(|i| Value::from(i as f64))
                .collect(),
        ),
        // Functions, regexes: null, as seuil's own value_to_json.
        _ => Value::Null,
    }
}

/// jlens-core: `Expression::compile`, then `evaluate_with(input, bindings,
/// options)`; `timelimit` → `Options::timeout`, `depth` → `Options::max_depth`.
fn jlens(case: &Case) -> Answer {
    use jlens_core::{Bindings, Expression, Options};
    let expr = match Expression::compile(&case.expr) {
        Ok(e) => e,
        Err(e) => return err(Some(e.code()), e.message()),
    };
    let mut bindings = Bindings::new();
    for (k, v) in &case.bindings {
        bindings = bindings.var(k.clone(), v.clone());
    }
    let mut options = Options::new();
    if let Some(t) = case.timelimit_ms {
        options = options.timeout(std::time::Duration::from_millis(t));
    }
    if let Some(d) = case.depth {
        options = options.max_depth(d);
    }
    match expr.evaluate_with(case.input.as_ref(), &bindings, &options) {
        Ok(None) => Answer::Undefined,
        Ok(Some(v)) => Answer::Value(v),
        Err(e) => err(Some(e.code()), e.message()),
    }
}
