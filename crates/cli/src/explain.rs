//! `sagaflow explain FILE`: the failure explorer on the command line. It
//! compiles a saga definition or an ASL machine locally and shows, without
//! calling anyone, the path an execution takes when a step fails
//! (`--fail STEP[:ERROR]`, `--fail-compensation STEP`), or with neither, a
//! table of every step's failure path. The dry run is the core's
//! (`sagaflow_core::explain`): the same decisions a live execution makes.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use sagaflow_core::explain::{self, ActionFault, End, Explanation, Faults, Path as Route};
use sagaflow_core::{EventKind, Plan};
use serde_json::{json, Value};

/// What `sagaflow explain` was asked.
pub struct Ask<'a> {
    pub file: &'a Path,
    pub fail: Option<&'a str>,
    pub fail_compensation: Option<&'a str>,
    pub input: Option<&'a Path>,
    pub json: bool,
}

pub fn run(ask: &Ask<'_>) -> anyhow::Result<ExitCode> {
    let source = std::fs::read_to_string(ask.file)
        .with_context(|| format!("reading {}", ask.file.display()))?;
    // A machine has no name of its own: the file's stands in.
    let machine = sagaflow_core::definition::parse_document(&source)
        .ok()
        .filter(sagaflow_core::asl::is_asl);
    let is_asl = machine.is_some();
    let stem = ask
        .file
        .file_stem()
        .map(|s| {
            s.to_string_lossy()
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                        c
                    } else {
                        '-'
                    }
                })
                .take(80)
                .collect::<String>()
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "machine".into());
    let hint = is_asl.then_some(stem.as_str());
    let plan = sagaflow_core::compile_definition(&source, hint, &explain::any_resource())
        .map_err(|e| anyhow::anyhow!("{}: {e}", ask.file.display()))?;
    let input: Value = match ask.input {
        Some(p) => {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            serde_json::from_str(&text).with_context(|| format!("{}: not JSON", p.display()))?
        }
        None => json!({}),
    };
    let mut faults = Faults::default();
    if let Some(spec) = ask.fail {
        faults.action = Some(ActionFault::parse(spec).map_err(|e| anyhow::anyhow!("--fail {e}"))?);
    }
    faults.compensation = ask.fail_compensation.map(str::to_string);
    if faults == Faults::default() {
        return table(&plan, machine.as_ref(), &input, ask.json);
    }
    let explained = match explain::explain(&plan, machine.as_ref(), input, &faults)? {
        Ok(explained) => explained,
        Err(unknown) => anyhow::bail!(
            "{}: no step of that name runs in {} (its steps: {})",
            unknown.names.join(", "),
            plan.name,
            unknown.steps.join(", ")
        ),
    };
    if ask.json {
        println!("{}", serde_json::to_string_pretty(&explained)?);
    } else {
        print!("{}", text(&explained, machine.is_some()));
    }
    Ok(ExitCode::SUCCESS)
}

/// Every step failing with a server error on every attempt, one row each.
fn table(
    plan: &Plan,
    machine: Option<&Value>,
    input: &Value,
    json_out: bool,
) -> anyhow::Result<ExitCode> {
    let rows = explain::explain_every_step(plan, machine, input)?;
    if json_out {
        let out: Vec<Value> = rows
            .iter()
            .map(|(step, explained)| json!({ "step": step, "path": explained }))
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({ "steps": out }))?
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "If a step fails on every attempt ({}), with every other step succeeding:\n",
        sagaflow_core::error_name::TASK_FAILED
    );
    println!(
        "{:<28} {:<9} {:<34} {:<44} at most",
        "step",
        "attempts",
        "ends",
        if machine.is_some() {
            "then runs (Catch path)"
        } else {
            "compensations (in order)"
        }
    );
    for (step, run) in &rows {
        let route = &run.path;
        let attempts = route.retried.get(step).copied().unwrap_or(1);
        let undone = undone(route, machine.is_some());
        println!(
            "{:<28} {:<9} {:<34} {:<44} {}",
            step,
            if matches!(run.end, End::RetriedWithoutEnd { .. }) {
                "no limit".to_string()
            } else {
                attempts.to_string()
            },
            ending(&run.end),
            undone,
            duration(&run.end, run.elapsed_ms)
        );
    }
    println!("\n`sagaflow explain FILE --fail STEP[:ERROR]` shows one path event by event.");
    Ok(ExitCode::SUCCESS)
}

/// What ran to make up for the failure: compensations, or a machine's
/// Catch path.
fn undone(route: &Route, is_machine: bool) -> String {
    let list = if is_machine {
        &route.after_failure
    } else {
        &route.compensated
    };
    if list.is_empty() {
        "none".to_string()
    } else {
        list.join(" → ")
    }
}

fn ending(end: &End) -> String {
    match end {
        End::Finished { status, .. } => status.as_str().to_string(),
        End::RetriedWithoutEnd { step, task } => match task {
            sagaflow_core::TaskKind::Action => "retried forward, no limit".to_string(),
            sagaflow_core::TaskKind::Compensation => {
                format!("undo of {step} retried, no limit")
            }
        },
        End::Waiting => "waiting (a callback)".to_string(),
        End::TooLong => "still running (loops?)".to_string(),
    }
}

fn duration(end: &End, elapsed_ms: u64) -> String {
    let base = format!("{:.1} s", elapsed_ms as f64 / 1000.0);
    match end {
        End::RetriedWithoutEnd { .. } | End::TooLong => {
            format!("∞ ({base} for {} attempts)", explain::MAX_ATTEMPTS)
        }
        _ => base,
    }
}

/// One path, event by event, with the simulated time.
fn text(run: &Explanation, is_machine: bool) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let mut what = Vec::new();
    if let Some(a) = &run.faults.action {
        what.push(format!(
            "{} fails with {} on every attempt",
            a.step, a.error
        ));
    }
    if let Some(c) = &run.faults.compensation {
        what.push(format!("the compensation of {c} fails on every attempt"));
    }
    let _ = writeln!(
        out,
        "If {} (a dry run: no participant is called):\n",
        what.join(" and ")
    );
    if let Some(h) = &run.handling {
        let show = |v: &Option<Value>| match v {
            Some(v) => v.to_string(),
            None => "none matches".to_string(),
        };
        let _ = writeln!(out, "Retry: {}", show(&h.retry));
        let _ = writeln!(out, "Catch: {}\n", show(&h.catch));
    }
    for e in &run.events {
        let at = format!("{:>8.1} s", e.at as f64 / 1000.0);
        let line = match &e.kind {
            EventKind::StepScheduled { step, attempt, .. } => {
                format!("→ {step} (attempt {attempt})")
            }
            EventKind::StepSucceeded { step, .. } => format!("✔ {step} succeeded"),
            EventKind::StepFailed {
                step,
                attempt,
                error,
            } => {
                format!("✘ {step} attempt {attempt} failed: {}", error.error)
            }
            EventKind::RetryScheduled {
                step,
                task,
                attempt,
                fire_at,
            } => format!(
                "↻ {step} {} retried: attempt {attempt} at {:.1} s",
                task.as_str(),
                *fire_at as f64 / 1000.0
            ),
            EventKind::RollbackStarted { step, error } => {
                format!(
                    "↩ rollback after {step} ({}): compensations newest first",
                    error.error
                )
            }
            EventKind::ExecutionTimedOut {} => "⌛ the execution's timeout passed".to_string(),
            EventKind::CompensationScheduled { step, attempt, .. } => {
                format!("→ compensate {step} (attempt {attempt})")
            }
            EventKind::CompensationSucceeded { step, .. } => format!("✔ {step} compensated"),
            EventKind::CompensationFailed {
                step,
                attempt,
                error,
            } => {
                format!(
                    "✘ compensation of {step} attempt {attempt} failed: {}",
                    error.error
                )
            }
            EventKind::TaskParked { step, .. } => format!("⏸ {step} waits for its callback"),
            EventKind::ExecutionFinished { status, error, .. } => match error {
                Some(e) => format!("■ {}: {} ({})", status.as_str(), e.error, e.cause),
                None => format!("■ {}", status.as_str()),
            },
            _ => continue,
        };
        let _ = writeln!(out, "{at}  {line}");
    }
    let route = &run.path;
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Ends: {}. {}: {}. Takes at most {}.",
        ending(&run.end),
        if is_machine {
            "Then runs"
        } else {
            "Compensations"
        },
        undone(route, is_machine),
        duration(&run.end, run.elapsed_ms)
    );
    out
}
