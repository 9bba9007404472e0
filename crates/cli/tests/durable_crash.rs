//! Crash tests of Lambda durable functions hosted by `sagaflow server`
//! (`[lambda]`), on real processes: the server killed with SIGKILL mid-saga
//! and restarted on its data directory, a worker killed mid-invocation, a
//! worker that hangs past its function's timeout, (on PostgreSQL) a
//! cluster node killed while it runs an execution, the server killed in the
//! middle of a `parallel` and of a `map`, and during a long `wait`.
//!
//! What must hold (the spec's recovery rules): an invocation open at a
//! crash is closed and the execution invoked again; a chained invoke started
//! and not ended is called again with the same `Idempotency-Key`, so the
//! travel services execute each call once; a failed or timed-out invocation
//! is retried; no recorded operation runs again (a step's body that was
//! recorded as done is not run again; one in flight at the crash is); a
//! wait ends at the time it was scheduled for, the restart
//! notwithstanding.
//!
//! The functions run in Python workers (`python -m awslambdaric`): the
//! interpreter comes from `SAGAFLOW_PYTHON` (one with
//! `aws-durable-execution-sdk-python` and `awslambdaric`). Without it a test
//! says why and passes, unless `CI` is set. The PostgreSQL test also needs
//! `DATABASE_URL`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{
    database_url, example, sagaflow, signal, workspace, KeptOnFailure, PgSchema, Proc, Travel,
};
use serde_json::{json, Value};

/// The fixture functions' code directory.
fn fixtures() -> PathBuf {
    workspace().join("crates/cli/tests/durable/fixtures")
}

fn path_str(p: &Path) -> String {
    common::toml_str(&p.to_string_lossy())
}

/// One hosted durable function of a test's config.
struct Function<'a> {
    name: &'a str,
    code: &'a Path,
    handler: &'a str,
    timeout_seconds: u64,
}

/// Writes a server config hosting `functions` into `dir` (their workers get
/// `FIXTURE_DIR={dir}`, which also tells this test's workers from anyone
/// else's) and returns its path. `resources` is the `[[resources]]` table text.
fn write_config(dir: &Path, python: &Path, functions: &[Function<'_>], resources: &str) -> PathBuf {
    let mut toml = format!(
        "[lambda]\npython = {}\nlog_dir = {}\n",
        path_str(python),
        path_str(&dir.join("function-logs"))
    );
    for f in functions {
        toml.push_str(&format!(
            "\n[[lambda.functions]]\nname = {}\nruntime = \"python\"\ncode = {}\n\
             handler = {}\ntimeout_seconds = {}\n\
             environment = {{ FIXTURE_DIR = {}, PYTHONDONTWRITEBYTECODE = \"1\" }}\n\
             [lambda.functions.durable]\nexecution_timeout_seconds = 600\nretention_days = 1\n",
            common::toml_str(f.name),
            path_str(f.code),
            common::toml_str(f.handler),
            f.timeout_seconds,
            path_str(dir),
        ));
    }
    toml.push_str(resources);
    let path = dir.join("sagaflow.toml");
    std::fs::write(&path, toml).expect("the config can be written");
    path
}

/// `sagaflow server --config CONFIG --data-dir DATA` on a free port.
fn start_server(config: &Path, data_dir: &Path) -> Proc {
    let mut cmd = sagaflow();
    cmd.arg("server")
        .arg("--config")
        .arg(config)
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--listen", "127.0.0.1:0"]);
    Proc::spawn("sagaflow-server", cmd, &data_dir.join("logs"))
}

/// Percent-encodes one path segment.
fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A small blocking client of the Lambda API (rest-json).
struct Lambda {
    base: String,
    http: reqwest::Client,
    rt: tokio::runtime::Runtime,
}

impl Lambda {
    fn new(base: &str) -> Lambda {
        Lambda {
            base: base.trim_end_matches('/').to_string(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("an HTTP client"),
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a tokio runtime"),
        }
    }

    /// Starts a durable execution named `name` (`InvocationType: Event`);
    /// returns its ARN.
    fn invoke_event(&self, function: &str, name: &str, payload: &Value) -> String {
        let url = format!(
            "{}/2015-03-31/functions/{}/invocations",
            self.base,
            encode(function)
        );
        let rb = self
            .http
            .post(url)
            .header("X-Amz-Invocation-Type", "Event")
            .header("X-Amz-Durable-Execution-Name", name)
            .body(payload.to_string());
        let (status, arn, body) = self.rt.block_on(async {
            let resp = rb
                .send()
                .await
                .unwrap_or_else(|e| panic!("invoking {function} reaches the server: {e}"));
            let status = resp.status().as_u16();
            let arn = resp
                .headers()
                .get("x-amz-durable-execution-arn")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            (status, arn, resp.text().await.unwrap_or_default())
        });
        assert!(
            (200..300).contains(&status),
            "invoking {function} as {name} answered {status}: {body}"
        );
        arn.unwrap_or_else(|| {
            panic!("invoking {function} as {name} answered no X-Amz-Durable-Execution-Arn")
        })
    }

    /// GET of a path; `None` when the server cannot be reached.
    fn try_get(&self, path: &str) -> Option<(u16, Value)> {
        let rb = self.http.get(format!("{}{path}", self.base));
        self.rt.block_on(async {
            let resp = rb.send().await.ok()?;
            let status = resp.status().as_u16();
            let text = resp.text().await.ok()?;
            Some((
                status,
                serde_json::from_str(&text).unwrap_or(Value::String(text)),
            ))
        })
    }

    fn get(&self, path: &str) -> Value {
        let (status, body) = self
            .try_get(path)
            .unwrap_or_else(|| panic!("GET {path} reaches the server"));
        assert_eq!(status, 200, "GET {path} answers 200: {body}");
        body
    }

    /// `GetDurableExecution`.
    fn try_describe(&self, arn: &str) -> Option<Value> {
        match self.try_get(&format!("/2025-12-01/durable-executions/{}", encode(arn)))? {
            (200, v) => Some(v),
            _ => None,
        }
    }

    fn describe(&self, arn: &str) -> Value {
        self.get(&format!("/2025-12-01/durable-executions/{}", encode(arn)))
    }

    /// Every event of `GetDurableExecutionHistory` (with the data), or
    /// `None` when the server cannot be reached.
    fn try_history(&self, arn: &str) -> Option<Vec<Value>> {
        let mut events = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let mut path = format!(
                "/2025-12-01/durable-executions/{}/history?IncludeExecutionData=true",
                encode(arn)
            );
            if let Some(m) = &marker {
                path.push_str(&format!("&Marker={}", encode(m)));
            }
            let (status, page) = self.try_get(&path)?;
            if status != 200 {
                return None;
            }
            events.extend(page["Events"].as_array().cloned().unwrap_or_default());
            match page["NextMarker"].as_str() {
                Some(m) => marker = Some(m.to_string()),
                None => return Some(events),
            }
        }
    }

    fn history(&self, arn: &str) -> Vec<Value> {
        self.try_history(arn)
            .unwrap_or_else(|| panic!("the history of {arn} can be read"))
    }

    /// Waits (at most 60 s) until the execution has ended; returns its description.
    fn wait_ended(&self, arn: &str, explain: impl Fn() -> String) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let d = self.describe(arn);
            if d["Status"].as_str().is_some_and(|s| s != "RUNNING") {
                return d;
            }
            assert!(
                Instant::now() < deadline,
                "{arn} ends within 60s; it is {}; its history:\n{}\n{}",
                d["Status"],
                render(&self.history(arn)),
                explain()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// A history, one event a line.
fn render(events: &[Value]) -> String {
    events
        .iter()
        .map(|e| format!("  {e}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The events of one type.
fn of_type<'a>(events: &'a [Value], ty: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["EventType"] == ty).collect()
}

/// How many events of type `ty` each operation name has.
fn names_of(events: &[Value], ty: &str) -> BTreeMap<String, usize> {
    let mut n = BTreeMap::new();
    for e in of_type(events, ty) {
        *n.entry(e["Name"].as_str().unwrap_or("?").to_string())
            .or_default() += 1;
    }
    n
}

/// The `InvocationCompleted` events that carry an error, as their error types.
fn failed_invocations(events: &[Value]) -> Vec<String> {
    of_type(events, "InvocationCompleted")
        .into_iter()
        .filter_map(|e| {
            let error = &e["InvocationCompletedDetails"]["Error"];
            if error.is_null() {
                return None;
            }
            let payload = if error["Payload"].is_null() {
                error
            } else {
                &error["Payload"]
            };
            Some(payload["ErrorType"].as_str().unwrap_or("?").to_string())
        })
        .collect()
}

/// The processes whose environment holds `FIXTURE_DIR={dir}` (this test's
/// workers, and nobody else's), with their command lines.
fn workers_of(dir: &Path) -> Vec<(u32, String)> {
    let needle = format!("FIXTURE_DIR={}", dir.display());
    let mut found = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in rd.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        if !environ
            .split(|b| *b == 0)
            .any(|var| var == needle.as_bytes())
        {
            continue;
        }
        let cmdline = std::fs::read(entry.path().join("cmdline"))
            .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
            .unwrap_or_default();
        // A zombie has an empty command line: it is dead already.
        if !cmdline.trim().is_empty() {
            found.push((pid, cmdline));
        }
    }
    found
}

/// Waits (at most 30 s) until no worker of this test is left.
fn assert_no_workers_left(dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = workers_of(dir);
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the workers exit once their server is gone; still running: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The last lines of each function log in `dir/function-logs`.
fn function_logs(dir: &Path) -> String {
    let mut out = String::new();
    if let Ok(rd) = std::fs::read_dir(dir.join("function-logs")) {
        for e in rd.flatten() {
            let text = std::fs::read_to_string(e.path()).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            out.push_str(&format!(
                "--- {}:\n{}\n",
                e.path().display(),
                lines[lines.len().saturating_sub(30)..].join("\n")
            ));
        }
    }
    out
}

// ---------------------------------------------------------------------------
// 1. The travel saga, the server killed twice.

/// The chained invokes of a fail-car trip, each started exactly once.
const SAGA_INVOKES: [&str; 5] = [
    "reserve_flight_invocation",
    "reserve_hotel_invocation",
    "reserve_car_invocation",
    "cancel_hotel_invocation",
    "cancel_flight_invocation",
];

/// The travel route each chained invoke of the saga calls.
fn route_of(name: &str) -> String {
    let (verb, rest) = name.split_once('_').expect("verb_service_invocation");
    let service = rest.trim_end_matches("_invocation");
    format!("lambda/saga-{verb}-{service}")
}

/// How many of the executions' histories record a `ChainedInvokeSucceeded`
/// (`None` if the server cannot be reached), and whether one of them that
/// does is still RUNNING.
fn progress(lambda: &Lambda, arns: &[String]) -> Option<(usize, bool)> {
    let mut succeeded = 0;
    let mut running_with_one = false;
    for arn in arns {
        let events = lambda.try_history(arn)?;
        let n = of_type(&events, "ChainedInvokeSucceeded").len();
        succeeded += n;
        if n > 0 && lambda.try_describe(arn)?["Status"] == "RUNNING" {
            running_with_one = true;
        }
    }
    Some((succeeded, running_with_one))
}

/// Waits until some execution is RUNNING with more `ChainedInvokeSucceeded`
/// events in all than `after`; returns that count. `None` when every
/// execution ended first (nothing left to kill mid-saga).
fn wait_mid_saga(lambda: &Lambda, arns: &[String], after: usize, server: &Proc) -> Option<usize> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some((n, running)) = progress(lambda, arns) {
            if n > after && running {
                return Some(n);
            }
            let all_ended = arns.iter().all(|arn| {
                lambda
                    .try_describe(arn)
                    .is_some_and(|d| d["Status"] != "RUNNING")
            });
            if all_ended {
                return None;
            }
        }
        assert!(
            Instant::now() < deadline,
            "some execution makes progress within 60s; the server's log:\n{}",
            server.log_tail()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_server_killed_twice_mid_saga_finishes_every_durable_execution_with_each_effect_once() {
    let Some(python) = common::durable_python("the durable crash tests") else {
        return;
    };
    let tmp = KeptOnFailure::new();
    let dir = tmp.path().to_path_buf();
    let data = dir.join("data");
    let travel = Travel::start(&dir.join("travel"), 0.0, 0);
    let code = example("durable/saga");
    let config = write_config(
        &dir,
        &python,
        &[Function {
            name: "saga-durable-function",
            code: &code,
            handler: "index.lambda_handler",
            timeout_seconds: 60,
        }],
        &format!(
            "\n[[resources]]\npattern = \"arn:aws:lambda:*:*:function:saga-{{name}}\"\n\
             target = {}\n",
            common::toml_str(&format!("{}/lambda/saga-{{name}}", travel.url()))
        ),
    );
    let input: Value = serde_json::from_str(
        &std::fs::read_to_string(example("durable/inputs/fail-car-booking.json"))
            .expect("the example input is readable"),
    )
    .expect("the example input is JSON");

    let mut server = start_server(&config, &data);
    let lambda = Lambda::new(&server.url);
    let names: Vec<String> = (1..=4).map(|n| format!("trip-{n}")).collect();
    let arns: Vec<String> = names
        .iter()
        .map(|name| lambda.invoke_event("saga-durable-function", name, &input))
        .collect();

    // Kill it twice, each time once some execution is RUNNING with a
    // chained invoke succeeded (the second time: one more than before).
    let mut seen = 0;
    for kill in 1..=2 {
        let lambda = Lambda::new(&server.url);
        match wait_mid_saga(&lambda, &arns, seen, &server) {
            Some(n) => seen = n,
            None => eprintln!("kill {kill}: every execution had ended already"),
        }
        server.sigkill();
        server = start_server(&config, &data);
    }

    let lambda = Lambda::new(&server.url);
    let explain = || {
        format!(
            "the server's log:\n{}\n{}",
            server.log_tail(),
            function_logs(&dir)
        )
    };
    // (route, key) of the calls that succeeded, and of every call started.
    let mut expected_keys = BTreeSet::new();
    let mut started_keys = BTreeSet::new();
    let mut lost = Vec::new();
    for arn in &arns {
        let d = lambda.wait_ended(arn, explain);
        let events = lambda.history(arn);
        let shown = || format!("{arn}'s history:\n{}", render(&events));
        assert_eq!(d["Status"], "FAILED", "{arn} fails: {d:#}\n{}", shown());
        // The saga's error: compensated, newest first.
        let message = d["Error"]["ErrorMessage"].as_str().unwrap_or_default();
        let details: Value = message
            .split_once("Details: ")
            .and_then(|(_, j)| serde_json::from_str(j).ok())
            .unwrap_or_else(|| panic!("{arn}'s error carries the saga's details: {d:#}"));
        let compensations: Vec<(String, String)> = details["compensations"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| {
                let (k, v) = c
                    .as_object()?
                    .iter()
                    .find(|(k, _)| *k == "hotel" || *k == "flight" || *k == "car")?;
                Some((k.clone(), v.as_str()?.to_string()))
            })
            .collect();
        assert_eq!(
            compensations,
            [
                ("hotel".to_string(), "cancelled".to_string()),
                ("flight".to_string(), "cancelled".to_string())
            ],
            "{arn} compensated the hotel, then the flight: {details:#}"
        );
        // No operation ran twice: each chained invoke started once (a replay
        // after a crash reads it back and sends no START again), the ids
        // were generated once.
        let started = names_of(&events, "ChainedInvokeStarted");
        let once: BTreeMap<String, usize> =
            SAGA_INVOKES.iter().map(|n| (n.to_string(), 1)).collect();
        assert_eq!(
            started,
            once,
            "{arn}: each chained invoke started exactly once\n{}",
            shown()
        );
        assert_eq!(
            names_of(&events, "StepSucceeded").get("generate-ids"),
            Some(&1),
            "{arn}: generate-ids succeeded exactly once\n{}",
            shown()
        );
        // The keys the travel services must have executed: `{execution id}:{op id}`.
        let execution = arn.rsplit('/').next().unwrap_or_default();
        // Those that succeeded were executed; the car's reservation failed,
        // so the services rolled it back and it counts as no effect.
        let failed = names_of(&events, "ChainedInvokeFailed");
        assert_eq!(
            failed,
            BTreeMap::from([("reserve_car_invocation".to_string(), 1)]),
            "{arn}: only the car's reservation failed\n{}",
            shown()
        );
        for (ty, keys) in [
            ("ChainedInvokeStarted", &mut started_keys),
            ("ChainedInvokeSucceeded", &mut expected_keys),
        ] {
            for e in of_type(&events, ty) {
                let name = e["Name"].as_str().unwrap_or_default();
                let id = e["Id"].as_str().unwrap_or_default();
                keys.insert((route_of(name), format!("{execution}:{id}")));
            }
        }
        lost.extend(failed_invocations(&events));
    }
    eprintln!("the failed invocations of the four executions: {lost:?}");

    // The travel services executed every call once, and no other.
    let effects = travel.effects();
    let executed: BTreeMap<(String, String), u64> = effects
        .iter()
        .map(|e| ((e.route.clone(), e.key.clone()), e.count))
        .collect();
    let mut problems = Vec::new();
    for ((route, key), count) in &executed {
        if !started_keys.contains(&(route.clone(), key.clone())) {
            problems.push(format!(
                "{route} with key {key} was executed but never started"
            ));
        } else if *count != 1 {
            problems.push(format!("{route} with key {key} was executed {count} times"));
        }
    }
    for (route, key) in &expected_keys {
        if !executed.contains_key(&(route.clone(), key.clone())) {
            problems.push(format!("{route} with key {key} was never executed"));
        }
    }
    assert_eq!(
        expected_keys.len(),
        arns.len() * (SAGA_INVOKES.len() - 1),
        "every chained invoke of every execution but the car's reservation succeeded"
    );
    assert!(
        problems.is_empty(),
        "the travel services executed each call exactly once:\n{}\neffects: {effects:#?}",
        problems.join("\n")
    );

    // The workers of the killed servers are gone; those of the last one go with it.
    server.sigkill();
    assert_no_workers_left(&dir);
}

// ---------------------------------------------------------------------------
// 2. and 3. A worker killed, a worker hung.

/// Waits (at most 60 s) until the fixture's step has started `n` times;
/// returns the pid of the worker that ran the last start.
fn wait_step_runs(dir: &Path, n: usize, explain: impl Fn() -> String) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let runs: Vec<u32> = std::fs::read_to_string(dir.join("step-runs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect();
        if runs.len() >= n {
            return runs[n - 1];
        }
        assert!(
            Instant::now() < deadline,
            "the step starts within 60s (run {n}); {}",
            explain()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_worker_killed_mid_invocation_is_invoked_again_and_no_operation_repeats() {
    let Some(python) = common::durable_python("the durable crash tests") else {
        return;
    };
    let tmp = KeptOnFailure::new();
    let dir = tmp.path().to_path_buf();
    let config = write_config(
        &dir,
        &python,
        &[Function {
            name: "slow-step",
            code: &fixtures(),
            handler: "fixture.slow_step",
            timeout_seconds: 60,
        }],
        "",
    );
    let server = start_server(&config, &dir.join("data"));
    let lambda = Lambda::new(&server.url);
    let explain = || {
        format!(
            "the server's log:\n{}\n{}",
            server.log_tail(),
            function_logs(&dir)
        )
    };
    let arn = lambda.invoke_event("slow-step", "killed-worker", &json!({"n": 1}));

    // The step runs: kill the worker running it.
    let pid = wait_step_runs(&dir, 1, explain);
    let cmdline = workers_of(&dir)
        .into_iter()
        .find(|(p, _)| *p == pid)
        .map(|(_, c)| c)
        .unwrap_or_else(|| panic!("the step's process {pid} is a worker of this test"));
    assert!(
        cmdline.contains("awslambdaric") && cmdline.contains("fixture.slow_step"),
        "the step runs in a worker (`python -m awslambdaric fixture.slow_step`), not {cmdline:?}"
    );
    signal(pid, libc::SIGKILL);

    let d = lambda.wait_ended(&arn, explain);
    let events = lambda.history(&arn);
    let shown = || format!("{arn}'s history:\n{}\n{}", render(&events), explain());
    assert_eq!(d["Status"], "SUCCEEDED", "{d:#}\n{}", shown());
    assert_eq!(
        failed_invocations(&events),
        ["Runtime.ExitError"],
        "the history shows the one invocation whose worker died\n{}",
        shown()
    );
    // The step was checkpointed as started, never as done: the next
    // invocation ran it again, in another worker.
    let again = wait_step_runs(&dir, 2, explain);
    assert_ne!(again, pid, "the step ran again in a new worker");
    assert_eq!(
        names_of(&events, "StepSucceeded").get("slow-step"),
        Some(&1),
        "the step succeeded exactly once\n{}",
        shown()
    );
    assert_eq!(
        of_type(&events, "ExecutionSucceeded").len(),
        1,
        "the execution succeeded once\n{}",
        shown()
    );
    drop(server);
    assert_no_workers_left(&dir);
}

#[test]
fn a_hung_worker_times_out_and_the_invocation_is_retried() {
    let Some(python) = common::durable_python("the durable crash tests") else {
        return;
    };
    let tmp = KeptOnFailure::new();
    let dir = tmp.path().to_path_buf();
    let config = write_config(
        &dir,
        &python,
        &[Function {
            name: "hang-once",
            code: &fixtures(),
            handler: "fixture.hang_once",
            timeout_seconds: 2,
        }],
        "",
    );
    let server = start_server(&config, &dir.join("data"));
    let lambda = Lambda::new(&server.url);
    let explain = || {
        format!(
            "the server's log:\n{}\n{}",
            server.log_tail(),
            function_logs(&dir)
        )
    };
    let arn = lambda.invoke_event("hang-once", "hung-worker", &json!({"n": 1}));

    let d = lambda.wait_ended(&arn, explain);
    let events = lambda.history(&arn);
    let shown = || format!("{arn}'s history:\n{}\n{}", render(&events), explain());
    assert_eq!(d["Status"], "SUCCEEDED", "{d:#}\n{}", shown());
    assert!(
        dir.join("hung").exists(),
        "the first invocation hung\n{}",
        shown()
    );
    assert_eq!(
        failed_invocations(&events),
        ["Sandbox.Timedout"],
        "the history shows the one timed-out invocation\n{}",
        shown()
    );
    assert_eq!(
        names_of(&events, "StepSucceeded").get("after-hang"),
        Some(&1),
        "the step after the hang succeeded once\n{}",
        shown()
    );
    drop(server);
    assert_no_workers_left(&dir);
}

// ---------------------------------------------------------------------------
// 4. Two nodes on PostgreSQL, one killed.

/// `sagaflow server --cluster` node `node_id` on PostgreSQL hosting the
/// functions of `config`.
fn start_cluster_node(db_url: &str, config: &Path, logs: &Path, node_id: &str) -> Proc {
    let listen = format!("127.0.0.1:{}", common::free_port());
    let mut cmd = sagaflow();
    cmd.arg("server")
        .arg("--config")
        .arg(config)
        .args(["--database-url", db_url])
        .args(["--listen", &listen])
        .args(["--cluster", "--node-id", node_id])
        .args(["--advertise", &format!("http://{listen}")])
        .args(["--lease-ttl", "1500ms"]);
    Proc::spawn(node_id, cmd, logs)
}

#[test]
fn on_postgresql_two_nodes_the_survivor_finishes_a_durable_execution_of_a_killed_node() {
    let Some(python) = common::durable_python("the durable crash tests") else {
        return;
    };
    let Some(url) = database_url() else { return };
    let tmp = KeptOnFailure::new();
    let dir = tmp.path().to_path_buf();
    let schema = PgSchema::create(&url);
    let config = write_config(
        &dir,
        &python,
        &[Function {
            name: "slow-step",
            code: &fixtures(),
            handler: "fixture.slow_step",
            timeout_seconds: 60,
        }],
        "",
    );
    let logs = dir.join("logs");
    let a = start_cluster_node(&schema.server_url(), &config, &logs, "node-a");
    let b = start_cluster_node(&schema.server_url(), &config, &logs, "node-b");
    let explain = || format!("node-b's log:\n{}\n{}", b.log_tail(), function_logs(&dir));
    let arn = Lambda::new(&a.url).invoke_event("slow-step", "node-killed", &json!({"n": 1}));

    // Its step runs on node A: kill A.
    let pid = wait_step_runs(&dir, 1, || format!("node-a's log:\n{}", a.log_tail()));
    let a_workers: Vec<u32> = workers_of(&dir).into_iter().map(|(p, _)| p).collect();
    assert!(
        a_workers.contains(&pid),
        "the step runs in a worker of this test"
    );
    let id = arn.rsplit('/').next().unwrap_or_default();
    let owner = schema.lease_owner(id);
    eprintln!("{id} is held by {owner:?} when node-a is killed");
    assert_ne!(
        owner.as_deref(),
        Some("node-b"),
        "the execution started on node-a is not node-b's before the kill"
    );
    a.sigkill();

    // Node B takes it over once A's lease runs out, and finishes it.
    let lambda = Lambda::new(&b.url);
    let d = lambda.wait_ended(&arn, explain);
    let events = lambda.history(&arn);
    let shown = || format!("{arn}'s history:\n{}\n{}", render(&events), explain());
    assert_eq!(d["Status"], "SUCCEEDED", "{d:#}\n{}", shown());
    assert!(
        failed_invocations(&events)
            .iter()
            .any(|t| t == "Sagaflow.InvocationLost"),
        "the invocation open on node A is closed as lost\n{}",
        shown()
    );
    assert_eq!(
        names_of(&events, "StepSucceeded").get("slow-step"),
        Some(&1),
        "the step succeeded exactly once\n{}",
        shown()
    );
    drop(b);
    assert_no_workers_left(&dir);
}

// ---------------------------------------------------------------------------
// 5. The server killed in the middle of a parallel, then of a map.

/// Each recorded run of a step body (`step-bodies`: one `NAME PID` a
/// line), as step names in the order they ran.
fn step_runs(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("step-bodies"))
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// How many times each step's body ran.
fn step_bodies(dir: &Path) -> BTreeMap<String, usize> {
    let mut runs = BTreeMap::new();
    for name in step_runs(dir) {
        *runs.entry(name).or_default() += 1;
    }
    runs
}

/// Whether the history has an event of type `ty` for the operation `name`.
fn has_event(events: &[Value], ty: &str, name: &str) -> bool {
    of_type(events, ty).iter().any(|e| e["Name"] == name)
}

/// The steps of branch or item `i` of a batch (`p` the parallel's, `m` the
/// map's): `s0`, then `s1`, which waits for the batch's release file.
fn batch_steps(kind: &str) -> Vec<(String, String)> {
    (0..3)
        .map(|i| (format!("{kind}{i}-s0"), format!("{kind}{i}-s1")))
        .collect()
}

/// Waits (at most 60 s) until every first step of the batch `kind` is
/// recorded as succeeded and every second one has started (its body
/// waits for the batch's release file): the batch is open with a step in
/// flight in each branch. Returns the steps recorded as succeeded.
fn wait_mid_batch(
    lambda: &Lambda,
    arn: &str,
    batch: &str,
    kind: &str,
    dir: &Path,
    explain: impl Fn() -> String,
) -> BTreeSet<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(events) = lambda.try_history(arn) {
            let succeeded: BTreeSet<String> = of_type(&events, "StepSucceeded")
                .iter()
                .filter_map(|e| e["Name"].as_str())
                .map(str::to_string)
                .collect();
            let bodies = step_bodies(dir);
            let mid = has_event(&events, "ContextStarted", batch)
                && batch_steps(kind)
                    .iter()
                    .all(|(s0, s1)| succeeded.contains(s0) && bodies.contains_key(s1));
            if mid {
                assert!(
                    !has_event(&events, "ContextSucceeded", batch),
                    "`{batch}` cannot end before its release; the history:\n{}",
                    render(&events)
                );
                return succeeded;
            }
        }
        assert!(
            Instant::now() < deadline,
            "every branch of `{batch}` is in its second step within 60s (the step bodies: {:?}); {}",
            step_bodies(dir),
            explain()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_server_killed_mid_parallel_and_mid_map_finishes_and_runs_no_recorded_step_again() {
    let Some(python) = common::durable_python("the durable crash tests") else {
        return;
    };
    let tmp = KeptOnFailure::new();
    let dir = tmp.path().to_path_buf();
    let data = dir.join("data");
    let config = write_config(
        &dir,
        &python,
        &[Function {
            name: "batches",
            code: &fixtures(),
            handler: "fixture.batches",
            timeout_seconds: 60,
        }],
        "",
    );
    let mut server = start_server(&config, &data);
    let arn = Lambda::new(&server.url).invoke_event("batches", "batches", &json!({}));

    // Kill it while every branch of the parallel is in its second step (the
    // first recorded), then likewise in the map; each time, once the
    // killed server's workers are gone, note how many step bodies have run,
    // release the second steps (they wait for a file) and restart on the
    // same data.
    let mut kills: Vec<(BTreeSet<String>, usize)> = Vec::new();
    for (batch, kind) in [("par", "p"), ("items", "m")] {
        let lambda = Lambda::new(&server.url);
        let recorded = wait_mid_batch(&lambda, &arn, batch, kind, &dir, || {
            format!(
                "the server's log:\n{}\n{}",
                server.log_tail(),
                function_logs(&dir)
            )
        });
        eprintln!("killed in `{batch}` with these steps succeeded: {recorded:?}");
        server.sigkill();
        assert_no_workers_left(&dir);
        kills.push((recorded, step_runs(&dir).len()));
        std::fs::write(dir.join(format!("release-{batch}")), "")
            .expect("the release file can be written");
        server = start_server(&config, &data);
    }

    let lambda = Lambda::new(&server.url);
    let explain = || {
        format!(
            "the server's log:\n{}\n{}",
            server.log_tail(),
            function_logs(&dir)
        )
    };
    let d = lambda.wait_ended(&arn, explain);
    let events = lambda.history(&arn);
    let shown = || format!("{arn}'s history:\n{}\n{}", render(&events), explain());
    assert_eq!(d["Status"], "SUCCEEDED", "{d:#}\n{}", shown());
    let result: Value = serde_json::from_str(d["Result"].as_str().unwrap_or_default())
        .unwrap_or_else(|e| panic!("the result is JSON ({e}): {d:#}"));
    let pairs = |kind: &str| -> Value {
        batch_steps(kind)
            .into_iter()
            .map(|(s0, s1)| json!([s0, s1]))
            .collect()
    };
    assert_eq!(
        result,
        json!({"parallel": pairs("p"), "map": pairs("m")}),
        "every branch and item returned its steps' results\n{}",
        shown()
    );
    let steps: Vec<String> = ["p", "m"]
        .iter()
        .flat_map(|kind| batch_steps(kind))
        .flat_map(|(s0, s1)| [s0, s1])
        .collect();
    // Each step succeeded once in the history, each batch ended once.
    let once: BTreeMap<String, usize> = steps.iter().map(|s| (s.clone(), 1)).collect();
    assert_eq!(
        names_of(&events, "StepSucceeded"),
        once,
        "each step succeeded exactly once\n{}",
        shown()
    );
    for batch in ["par", "items"] {
        assert_eq!(
            of_type(&events, "ContextSucceeded")
                .iter()
                .filter(|e| e["Name"] == batch)
                .count(),
            1,
            "{batch} succeeded once\n{}",
            shown()
        );
    }
    // No step recorded as succeeded before a kill ran after it (every first
    // step of the batch was recorded); every step ran, and those in flight
    // at a kill ran again.
    let runs = step_runs(&dir);
    let bodies = step_bodies(&dir);
    eprintln!("the step bodies' runs: {bodies:?}");
    for ((recorded, before), (batch, kind)) in kills.iter().zip([("par", "p"), ("items", "m")]) {
        for (s0, s1) in batch_steps(kind) {
            assert!(
                recorded.contains(&s0),
                "{s0} was recorded before the kill in `{batch}`"
            );
            assert!(
                !recorded.contains(&s1),
                "{s1} was in flight at the kill in `{batch}`"
            );
        }
        let again: Vec<&String> = runs[*before..]
            .iter()
            .filter(|step| recorded.contains(*step))
            .collect();
        assert!(
            again.is_empty(),
            "no step recorded before the kill in `{batch}` ran after it; these did: {again:?} \
             (every run: {runs:?})\n{}",
            shown()
        );
    }
    for step in &steps {
        let n = bodies.get(step).copied().unwrap_or(0);
        let expected = if step.ends_with("-s1") { 2 } else { 1 };
        assert_eq!(
            n,
            expected,
            "{step}'s body ran {expected} times (twice if in flight at a kill), not {n} \
             (every run: {runs:?})\n{}",
            shown()
        );
    }
    // Each kill closed the invocation open then as lost.
    let lost = failed_invocations(&events);
    assert_eq!(
        lost.iter()
            .filter(|t| *t == "Sagaflow.InvocationLost")
            .count(),
        2,
        "the invocation open at each kill was closed as lost: {lost:?}\n{}",
        shown()
    );
    server.sigkill();
    assert_no_workers_left(&dir);
}

// ---------------------------------------------------------------------------
// 6. The server killed during a long wait.

/// An event's time (`EventTimestamp`, epoch seconds).
fn timestamp(event: &Value) -> f64 {
    event["EventTimestamp"]
        .as_f64()
        .unwrap_or_else(|| panic!("the event has an EventTimestamp: {event}"))
}

/// Now, in epoch seconds.
fn now_seconds() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

#[test]
fn the_server_killed_during_a_long_wait_ends_the_wait_at_its_scheduled_time() {
    let Some(python) = common::durable_python("the durable crash tests") else {
        return;
    };
    // The wait ends this long after its start; the server is killed
    // `KILLED_AFTER` seconds in and restarted at once.
    const WAIT_SECONDS: u64 = 12;
    const KILLED_AFTER: u64 = 8;
    // How late the wait may end after its scheduled time (or after the
    // restarted server is ready, if that is later): a timer re-armed from
    // the recorded due time fires on time (milliseconds late); a lost one
    // never would, and one whose wait were measured again from the restart
    // would be `KILLED_AFTER` seconds late or more.
    const LATE: f64 = 5.0;
    let tmp = KeptOnFailure::new();
    let dir = tmp.path().to_path_buf();
    let data = dir.join("data");
    let config = write_config(
        &dir,
        &python,
        &[Function {
            name: "long-wait",
            code: &fixtures(),
            handler: "fixture.long_wait",
            timeout_seconds: 60,
        }],
        "",
    );
    let server = start_server(&config, &data);
    let lambda = Lambda::new(&server.url);
    let arn = lambda.invoke_event("long-wait", "long-wait", &json!({"seconds": WAIT_SECONDS}));

    // The wait started and the invocation that started it ended.
    let deadline = Instant::now() + Duration::from_secs(60);
    let started = loop {
        let events = lambda.history(&arn);
        let started = of_type(&events, "WaitStarted")
            .first()
            .map(|e| (*e).clone());
        if let Some(started) = started {
            if !of_type(&events, "InvocationCompleted").is_empty() {
                break started;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the wait starts within 60s; the server's log:\n{}\n{}",
            server.log_tail(),
            function_logs(&dir)
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let scheduled = started["WaitStartedDetails"]["ScheduledEndTimestamp"]
        .as_f64()
        .unwrap_or_else(|| panic!("WaitStarted has a ScheduledEndTimestamp: {started}"));
    let began = timestamp(&started);
    assert!(
        (scheduled - began - WAIT_SECONDS as f64).abs() < 1.0,
        "the wait is scheduled to end {WAIT_SECONDS}s after it started: {started}"
    );

    // Kill the server `KILLED_AFTER` seconds into the wait; restart it a
    // moment later.
    let into_wait = (now_seconds() - began).max(0.0);
    std::thread::sleep(Duration::from_secs_f64(
        (KILLED_AFTER as f64 - into_wait).max(0.0),
    ));
    server.sigkill();
    std::thread::sleep(Duration::from_millis(500));
    let server = start_server(&config, &data);
    let ready = now_seconds();
    let lambda = Lambda::new(&server.url);
    let explain = || {
        format!(
            "the server's log:\n{}\n{}",
            server.log_tail(),
            function_logs(&dir)
        )
    };
    let d = lambda.wait_ended(&arn, explain);
    let events = lambda.history(&arn);
    let shown = || format!("{arn}'s history:\n{}\n{}", render(&events), explain());
    assert_eq!(d["Status"], "SUCCEEDED", "{d:#}\n{}", shown());
    assert_eq!(
        names_of(&events, "WaitSucceeded"),
        BTreeMap::from([("long-wait".to_string(), 1)]),
        "the wait succeeded once\n{}",
        shown()
    );
    let waited = timestamp(of_type(&events, "WaitSucceeded")[0]);
    let ended = timestamp(of_type(&events, "ExecutionSucceeded")[0]);
    // Timestamps are milliseconds: allow one for rounding.
    assert!(
        waited >= scheduled - 0.001,
        "the wait does not end before its scheduled time ({scheduled}): it ended at {waited}\n{}",
        shown()
    );
    let latest = scheduled.max(ready) + LATE;
    assert!(
        waited <= latest,
        "the wait ends at its scheduled time ({scheduled}; the restarted server was ready at \
         {ready}), not {:.3}s later\n{}",
        waited - scheduled,
        shown()
    );
    assert!(
        ended >= waited && ended <= latest + LATE,
        "the execution ends soon after its wait ({waited}): at {ended}\n{}",
        shown()
    );
    eprintln!(
        "the wait was scheduled to end at {scheduled}, the restarted server was ready at \
         {ready}, the wait ended {:.3}s after its scheduled time and the execution {:.3}s after",
        waited - scheduled,
        ended - scheduled
    );
    assert_eq!(
        names_of(&events, "StepSucceeded").get("after-wait"),
        Some(&1),
        "the step after the wait succeeded once\n{}",
        shown()
    );
    drop(server);
    assert_no_workers_left(&dir);
}
