//! The states that do not wait, as they run when entered: a Pass's
//! result, a Choice's rule, a Succeed's output, a Fail's error and cause,
//! and when a Wait ends. Each is computed from the state's input; `enter`
//! (in the parent module) moves the thread on with what it gives.

// The interpreter's own types and helpers, as in the parent module.
use super::*;
use crate::asl::machine::{Branch, Fail};

/// What a state that does not wait gives: its output and what it assigned
/// (`None`: a Choice, which moved the thread on itself).
pub(super) type Flow = Result<Option<(Value, Option<Vars>)>, ErrorInfo>;

impl Run {
    /// A Pass state's output (`Result`, `Parameters` or `Output`) and assignments.
    pub(super) fn pass(
        &self,
        st: &State,
        result: &Option<Value>,
        input: &Value,
        ctx: Env<'_>,
        key: &str,
        at: Millis,
    ) -> Flow {
        if let Some(js) = &st.jsonata {
            // `Output` and `Assign` both over `$states.input`.
            let scope = self.js_scope(input, ctx, key, at);
            let a = assigned(st.assign.as_ref(), input, ctx, ("", ""), Some(&scope))?;
            return Ok(Some((js_output(js, &scope, input.clone())?, a)));
        }
        let eff = data::filter(&st.input_path, input, ctx)?;
        let r = match (result, &st.parameters) {
            (Some(r), _) => r.clone(),
            (None, Some(p)) => data::render(p, &eff, ctx, &mut seeded(key))?,
            (None, None) => eff,
        };
        let a = assigned(st.assign.as_ref(), &r, ctx, (key, "@assign"), None)?;
        let placed = data::place_into(&st.result_path, input, r)?;
        Ok(Some((data::filter_owned(&st.output_path, placed, ctx)?, a)))
    }

    /// A Choice state's next state (the first rule that holds, or
    /// `Default`), its output and assignments; `States.NoChoiceMatched`
    /// without either.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn choose(
        &self,
        st: &State,
        choices: &[Branch],
        default: Option<usize>,
        input: &Value,
        ctx: Env<'_>,
        key: &str,
        at: Millis,
    ) -> Result<(usize, Value, Option<Vars>), ErrorInfo> {
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
            let scope = self.js_scope(input, ctx, key, at);
            for b in choices {
                if condition(&b.rule, &scope)? {
                    let a = assigned(b.assign.as_ref(), input, ctx, ("", ""), Some(&scope))?;
                    let out = match &b.output {
                        Some(t) => t.evaluate(&scope)?,
                        None => js_output(js, &scope, input.clone())?,
                    };
                    return Ok((b.next, out, a));
                }
            }
            let next = default.ok_or_else(no_match)?;
            let a = assigned(st.assign.as_ref(), input, ctx, ("", ""), Some(&scope))?;
            return Ok((next, js_output(js, &scope, input.clone())?, a));
        }
        let eff = data::filter(&st.input_path, input, ctx)?;
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
        let a = assigned(assign, input, ctx, (key, "@assign"), None)?;
        Ok((next, data::filter(&st.output_path, &eff, ctx)?, a))
    }

    /// A Succeed state's output.
    pub(super) fn succeed(
        &self,
        st: &State,
        input: &Value,
        ctx: Env<'_>,
        key: &str,
        at: Millis,
    ) -> Flow {
        if let Some(js) = &st.jsonata {
            let scope = self.js_scope(input, ctx, key, at);
            return Ok(Some((js_output(js, &scope, input.clone())?, None)));
        }
        let eff = data::filter(&st.input_path, input, ctx)?;
        Ok(Some((data::filter(&st.output_path, &eff, ctx)?, None)))
    }

    /// A Fail state's error: its `Error` and `Cause` (fixed, from a path or
    /// an intrinsic function, or JSONata expressions); a path that selects
    /// nothing makes it `States.Runtime` instead, as on AWS.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn fail_error(
        &self,
        st: &State,
        f: &Fail,
        input: &Value,
        ctx: Env<'_>,
        key: &str,
        at: Millis,
        entered: u64,
    ) -> ErrorInfo {
        // ErrorPath and CausePath: a path or an intrinsic
        // function; one that selects nothing fails the state
        // with `States.Runtime` (the Fail's own error is lost).
        let pick =
            |fixed: &Option<String>, path: &Option<String>| -> Result<Option<String>, ErrorInfo> {
                match (fixed, path) {
                    (Some(v), _) => Ok(Some(v.clone())),
                    (None, Some(p)) => {
                        let v = if intrinsic::is_call(p) {
                            intrinsic::evaluate(p, input, ctx, &mut seeded(key))?
                        } else {
                            data::filter(&PathField::Path(p.clone()), input, ctx)?
                        };
                        Ok(Some(quoted(&v)))
                    }
                    (None, None) => Ok(None),
                }
            };
        // A JSONata state's `Error`/`Cause` expressions.
        let scope = self.js_scope(input, ctx, key, at);
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
        match (error, cause) {
            (Ok(e), Ok(c)) => {
                ErrorInfo::new(e.unwrap_or_else(|| FAIL.into()), c.unwrap_or_default())
            }
            (Err(e), _) | (_, Err(e)) => in_state(e, &st.name, entered),
        }
    }

    /// When a Wait state entered at `at` ends, and its effective input.
    pub(super) fn wait_until(
        &self,
        st: &State,
        w: &Wait,
        input: &Value,
        ctx: Env<'_>,
        key: &str,
        at: Millis,
    ) -> Result<(Value, Millis), ErrorInfo> {
        let eff = data::filter(&st.input_path, input, ctx)?;
        let fire_at = match w {
            Wait::Seconds(n) => at + n * 1000,
            Wait::SecondsPath(p) => {
                let n = seconds(&Seconds::Path(p.clone()), &eff, ctx, "SecondsPath")?;
                // Past AWS's limit the machine's own timeout
                // (at most a year) ends it first.
                at.saturating_add(n.min(MAX_WAIT_SECONDS) * 1000)
            }
            Wait::Timestamp(ts) => {
                parse_timestamp(ts).ok_or_else(|| runtime(format!("bad Timestamp `{ts}`")))?
            }
            Wait::SecondsExpression(t) => {
                let scope = self.js_scope(input, ctx, key, at);
                at.saturating_add(js_count(t, &scope)? * 1000)
            }
            Wait::TimestampExpression(t) => {
                let scope = self.js_scope(input, ctx, key, at);
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
    }
}
