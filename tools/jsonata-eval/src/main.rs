//! Measures Rust JSONata crates against the JSONata project's own test suite
//! (jsonata-js `test/test-suite`), for issue 18.
//!
//! ```text
//! cargo run --release -- /path/to/test-suite [--engine NAME]... [--timeout-ms N]
//!                        [--stack-mib N] [--report PATH]
//! ```
//!
//! Each engine runs in a child process of this same binary (`--worker`), one
//! case at a time, each case on a fresh thread under `catch_unwind`. A case
//! that panics is a failure; one that runs past the time limit is a failure
//! and ends the child (the only way to stop a thread that will not return);
//! one that kills the child (a stack overflow aborts the process) is a
//! failure. The parent starts a new child at the next case in both cases.

mod engines;
mod suite;

use engines::{Answer, ENGINES};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use suite::{Case, Expect};

struct Args {
    suite: PathBuf,
    engines: Vec<String>,
    timeout_ms: u64,
    stack_mib: usize,
    report: PathBuf,
}

const USAGE: &str = "usage: jsonata-eval /path/to/test-suite [--engine NAME]... \
[--timeout-ms N (default 5000)] [--stack-mib N (default 8)] [--report PATH]";

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.first().map(String::as_str) == Some("--worker") {
        return worker(&argv[1..]);
    }
    let args = match parse_args(argv) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("jsonata-eval: {e}");
            ExitCode::FAILURE
        }
    }
}

fn parse_args(argv: Vec<String>) -> Result<Args, String> {
    let mut suite = None;
    let mut engines = Vec::new();
    let mut timeout_ms = 5000;
    let mut stack_mib = 8;
    let mut report = PathBuf::from("jsonata-eval-report.json");
    let mut it = argv.into_iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--engine" => engines.push(value("--engine")?),
            "--timeout-ms" => {
                timeout_ms = value("--timeout-ms")?.parse().map_err(|e| format!("{e}"))?
            }
            "--stack-mib" => {
                stack_mib = value("--stack-mib")?.parse().map_err(|e| format!("{e}"))?
            }
            "--report" => report = PathBuf::from(value("--report")?),
            "-h" | "--help" => return Err(String::new()),
            s if s.starts_with("--") => return Err(format!("unknown option {s}")),
            s => suite = Some(PathBuf::from(s)),
        }
    }
    let suite = suite.ok_or("the test suite's path is missing")?;
    if engines.is_empty() {
        engines = ENGINES.iter().map(|(n, _)| n.to_string()).collect();
    }
    for e in &engines {
        if !ENGINES.iter().any(|(n, _)| n == e) {
            return Err(format!("unknown engine {e}"));
        }
    }
    Ok(Args {
        suite,
        engines,
        timeout_ms,
        stack_mib,
        report,
    })
}

/// The hard limit for one case: the harness's, or the case's own `timelimit`
/// plus two seconds when that is longer.
fn case_limit(case: &Case, timeout_ms: u64) -> Duration {
    Duration::from_millis(timeout_ms.max(case.timelimit_ms.map_or(0, |t| t + 2000)))
}

// ---------------------------------------------------------------------------
// Worker: one engine, cases from `start` on, one JSON line per case.
// ---------------------------------------------------------------------------

fn worker(argv: &[String]) -> ExitCode {
    let [engine, suite, start, timeout_ms, stack_mib] = argv else {
        eprintln!("bad worker arguments");
        return ExitCode::from(2);
    };
    let cases = match suite::load(Path::new(suite)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let start: usize = start.parse().unwrap();
    let timeout_ms: u64 = timeout_ms.parse().unwrap();
    let stack = stack_mib.parse::<usize>().unwrap() << 20;
    // Panics are caught and reported per case; keep stderr quiet.
    std::panic::set_hook(Box::new(|_| {}));
    let stdout = std::io::stdout();
    for (i, case) in cases.into_iter().enumerate().skip(start) {
        let limit = case_limit(&case, timeout_ms);
        let (tx, rx) = mpsc::channel();
        let engine_name = engine.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("case-{i}"))
            .stack_size(stack)
            .spawn(move || {
                let t0 = Instant::now();
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    engines::evaluate(&engine_name, &case)
                }));
                let _ = tx.send((r, t0.elapsed()));
            });
        if let Err(e) = spawned {
            eprintln!("spawn: {e}");
            return ExitCode::from(2);
        }
        let line = match rx.recv_timeout(limit) {
            Ok((Ok(answer), took)) => {
                let mut row = answer_json(&answer);
                row["us"] = json!(took.as_micros() as u64);
                row
            }
            Ok((Err(payload), took)) => {
                let msg = payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "panic".into());
                json!({"answer": "panic", "message": msg, "us": took.as_micros() as u64})
            }
            Err(_) => {
                json!({"answer": "timeout", "message": format!("no answer in {} ms", limit.as_millis()), "us": limit.as_micros() as u64})
            }
        };
        let timed_out = line["answer"] == "timeout";
        let mut line = line;
        line["i"] = json!(i);
        let mut out = stdout.lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
        if timed_out {
            // The case's thread may never return: end the process with it.
            std::process::exit(3);
        }
    }
    ExitCode::SUCCESS
}

fn answer_json(a: &Answer) -> Value {
    match a {
        Answer::Value(v) => json!({"answer": "value", "value": v}),
        Answer::Undefined => json!({"answer": "undefined"}),
        Answer::Error { code, message } => {
            json!({"answer": "error", "code": code, "message": message})
        }
    }
}

// ---------------------------------------------------------------------------
// Parent: run each engine's workers, judge, print, write the report.
// ---------------------------------------------------------------------------

/// How one case went for one engine.
struct Verdict {
    pass: bool,
    /// For `code` cases: the engine's code is the expected one.
    same_code: bool,
    row: Value,
}

fn run(args: &Args) -> Result<(), String> {
    let cases = suite::load(&args.suite)?;
    let n = cases.len();
    let files = std::fs::read_dir(args.suite.join("groups"))
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok())
        .map(|g| {
            std::fs::read_dir(g.path())
                .map(|d| {
                    d.filter_map(|e| e.ok())
                        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
                        .count()
                })
                .unwrap_or(0)
        })
        .sum::<usize>();
    let groups: BTreeMap<&str, usize> = cases.iter().fold(BTreeMap::new(), |mut m, c| {
        *m.entry(c.group.as_str()).or_default() += 1;
        m
    });
    println!(
        "suite: {} — {n} cases in {files} files, {} groups",
        args.suite.display(),
        groups.len()
    );
    println!(
        "limits: {} ms a case (or the case's timelimit + 2 s), {} MiB stack",
        args.timeout_ms, args.stack_mib
    );
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;

    let mut reports = Vec::new();
    for engine in &args.engines {
        let version = ENGINES.iter().find(|(e, _)| e == engine).unwrap().1;
        eprintln!("running {engine} {version} ...");
        let t0 = Instant::now();
        let rows = run_engine(&exe, engine, args, n)?;
        let wall = t0.elapsed();
        let verdicts: Vec<Verdict> = cases
            .iter()
            .zip(rows)
            .map(|(c, row)| judge(c, row))
            .collect();
        let report = summarize(engine, version, &cases, &verdicts, wall);
        print_summary(&report, &groups);
        reports.push(report);
    }

    print_group_matrix(&reports, &groups);

    let report = json!({
        "suite": args.suite.display().to_string(),
        "cases": n,
        "files": files,
        "timeout_ms": args.timeout_ms,
        "stack_mib": args.stack_mib,
        "generated_unix": std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        "engines": reports,
    });
    std::fs::write(
        &args.report,
        serde_json::to_string_pretty(&report).unwrap() + "\n",
    )
    .map_err(|e| format!("{}: {e}", args.report.display()))?;
    println!("\nreport: {}", args.report.display());
    Ok(())
}

/// Every case's row for `engine`, restarting the worker after a timeout or a
/// crash.
fn run_engine(exe: &Path, engine: &str, args: &Args, n: usize) -> Result<Vec<Value>, String> {
    let mut rows: Vec<Option<Value>> = vec![None; n];
    let mut start = 0;
    while start < n {
        let mut child = Command::new(exe)
            .arg("--worker")
            .arg(engine)
            .arg(&args.suite)
            .arg(start.to_string())
            .arg(args.timeout_ms.to_string())
            .arg(args.stack_mib.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("worker: {e}"))?;
        let mut stderr = child.stderr.take().unwrap();
        let err_reader = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            s
        });
        let mut next = start;
        let mut timed_out = false;
        for line in BufReader::new(child.stdout.take().unwrap()).lines() {
            let Ok(line) = line else { break };
            let Ok(row) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            let i = row["i"].as_u64().unwrap_or(0) as usize;
            timed_out = row["answer"] == "timeout";
            rows[i] = Some(row);
            next = i + 1;
        }
        let status = child.wait().map_err(|e| e.to_string())?;
        let stderr = err_reader.join().unwrap_or_default();
        if next >= n || timed_out {
            start = next;
            continue;
        }
        if next == start && status.code() == Some(2) {
            return Err(format!("worker for {engine} failed: {stderr}"));
        }
        // The worker died inside case `next` (a stack overflow aborts).
        let tail: String = stderr
            .trim()
            .chars()
            .rev()
            .take(200)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        rows[next] = Some(json!({
            "i": next,
            "answer": "crash",
            "message": format!("worker died ({status}): {tail}"),
        }));
        start = next + 1;
    }
    Ok(rows.into_iter().map(Option::unwrap).collect())
}

fn judge(case: &Case, row: Value) -> Verdict {
    let answer = row["answer"].as_str().unwrap_or("");
    let (pass, same_code) = match &case.expect {
        Expect::Result(expected) => {
            let ok = answer == "value"
                && if case.unordered {
                    suite::json_eq_unordered(&row["value"], expected)
                } else {
                    suite::json_eq(&row["value"], expected)
                };
            (ok, false)
        }
        Expect::Undefined => (answer == "undefined", false),
        Expect::Code(code) => (
            answer == "error",
            answer == "error" && row["code"].as_str() == Some(code),
        ),
    };
    Verdict {
        pass,
        same_code,
        row,
    }
}

fn expect_json(e: &Expect) -> Value {
    match e {
        Expect::Result(v) => json!({"result": v}),
        Expect::Undefined => json!({"undefinedResult": true}),
        Expect::Code(c) => json!({"code": c}),
    }
}

fn truncate(v: &Value) -> Value {
    let s = v.to_string();
    if s.len() > 400 {
        let cut: String = s.chars().take(400).collect();
        Value::String(format!("{cut}…"))
    } else {
        v.clone()
    }
}

fn summarize(
    engine: &str,
    version: &str,
    cases: &[Case],
    verdicts: &[Verdict],
    wall: Duration,
) -> Value {
    let mut groups: BTreeMap<&str, [usize; 2]> = BTreeMap::new();
    let mut kinds: BTreeMap<&str, [usize; 2]> = BTreeMap::new();
    let (mut passed, mut strict, mut code_cases, mut same_code) = (0, 0, 0, 0);
    let mut answers: BTreeMap<String, usize> = BTreeMap::new();
    let mut eval_us: u64 = 0;
    let mut failures = Vec::new();
    for (c, v) in cases.iter().zip(verdicts) {
        let kind = match c.expect {
            Expect::Result(_) => "result",
            Expect::Undefined => "undefinedResult",
            Expect::Code(_) => "code",
        };
        let g = groups.entry(&c.group).or_default();
        let k = kinds.entry(kind).or_default();
        g[1] += 1;
        k[1] += 1;
        let answer = v.row["answer"].as_str().unwrap_or("?").to_string();
        *answers.entry(answer.clone()).or_default() += 1;
        if answer != "timeout" {
            eval_us += v.row["us"].as_u64().unwrap_or(0);
        }
        if matches!(c.expect, Expect::Code(_)) {
            code_cases += 1;
            same_code += v.same_code as usize;
        }
        let strict_pass = v.pass && (!matches!(c.expect, Expect::Code(_)) || v.same_code);
        strict += strict_pass as usize;
        if v.pass {
            passed += 1;
            g[0] += 1;
            k[0] += 1;
        }
        if !strict_pass {
            let mut got = v.row.clone();
            if let Some(o) = got.as_object_mut() {
                o.remove("i");
                o.remove("us");
                if let Some(val) = o.get("value").cloned() {
                    o.insert("value".into(), truncate(&val));
                }
            }
            failures.push(json!({
                "id": c.id,
                "expr": c.expr,
                "expected": truncate(&expect_json(&c.expect)),
                "got": got,
                "counted_as_passed": v.pass,
            }));
        }
    }
    json!({
        "engine": engine,
        "version": version,
        "total": cases.len(),
        "passed": passed,
        "passed_with_same_error_code": strict,
        "code_cases": code_cases,
        "code_cases_same_code": same_code,
        "by_expectation": kinds,
        "answers": answers,
        "panics": answers.get("panic").copied().unwrap_or(0),
        "timeouts": answers.get("timeout").copied().unwrap_or(0),
        "crashes": answers.get("crash").copied().unwrap_or(0),
        "wall_seconds": (wall.as_secs_f64() * 100.0).round() / 100.0,
        "eval_seconds_excluding_timeouts": (eval_us as f64 / 1e4).round() / 100.0,
        "groups": groups,
        "failures": failures,
    })
}

fn pct(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        (a as f64 * 1000.0 / b as f64).round() / 10.0
    }
}

fn print_summary(r: &Value, _groups: &BTreeMap<&str, usize>) {
    let g = |k: &str| r[k].as_u64().unwrap_or(0);
    println!(
        "\n== {} {}: passed {} / {} ({}%); with the same error code: {} ({}%)",
        r["engine"].as_str().unwrap(),
        r["version"].as_str().unwrap(),
        g("passed"),
        g("total"),
        pct(g("passed"), g("total")),
        g("passed_with_same_error_code"),
        pct(g("passed_with_same_error_code"), g("total")),
    );
    for (kind, v) in r["by_expectation"].as_object().unwrap() {
        println!("   {kind:<16} {} / {}", v[0], v[1]);
    }
    println!(
        "   error cases with the expected code: {} / {}",
        g("code_cases_same_code"),
        g("code_cases")
    );
    println!(
        "   panics {}, timeouts {}, crashes {}; wall {:.2} s, evaluation {:.2} s (timeouts excluded)",
        g("panics"),
        g("timeouts"),
        g("crashes"),
        r["wall_seconds"].as_f64().unwrap_or(0.0),
        r["eval_seconds_excluding_timeouts"].as_f64().unwrap_or(0.0),
    );
}

fn print_group_matrix(reports: &[Value], groups: &BTreeMap<&str, usize>) {
    println!("\npassed per group:");
    let width = groups.keys().map(|g| g.len()).max().unwrap_or(5).max(5);
    print!("{:<width$} {:>5}", "group", "cases");
    for r in reports {
        print!(" {:>12}", r["engine"].as_str().unwrap());
    }
    println!();
    for (g, total) in groups {
        print!("{g:<width$} {total:>5}");
        for r in reports {
            print!(" {:>12}", r["groups"][*g][0].as_u64().unwrap_or(0));
        }
        println!();
    }
    print!("{:<width$} {:>5}", "TOTAL", groups.values().sum::<usize>());
    for r in reports {
        print!(" {:>12}", r["passed"].as_u64().unwrap_or(0));
    }
    println!();
}
