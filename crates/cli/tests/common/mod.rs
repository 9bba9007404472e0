//! Shared helpers of the process-level tests: start `sagaflow server` and
//! `travel-services` as real child processes, talk to them over HTTP, run the
//! `sagaflow` client commands, and read the travel database.
//!
//! Every child is killed (SIGKILL) and reaped when its [`Proc`] is dropped, so
//! a failing test leaves no process behind. Children's stderr goes to a log
//! file whose tail is shown when something goes wrong.

#![allow(dead_code)] // each test file uses its own subset

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The saga of the travel reference application.
pub const TRAVEL_SAGA: &str = include_str!("../../../../examples/travel-saga.yaml");

/// Every run type of the travel saga with the status it must end in.
pub const RUN_TYPES: &[(&str, &str)] = &[
    ("success", "succeeded"),
    ("failHotelReservation", "compensated"),
    ("failFlightsReservation", "compensated"),
    ("failCarReservation", "compensated"),
    ("failPayment", "compensated"),
    ("failHotelConfirmation", "succeeded"),
    ("failFlightsConfirmation", "succeeded"),
];

/// The status an execution of the travel saga with this run type must end in.
pub fn expected_status(run_type: &str) -> &'static str {
    RUN_TYPES
        .iter()
        .find(|(r, _)| *r == run_type)
        .map(|(_, s)| *s)
        .unwrap_or_else(|| panic!("unknown run type {run_type}"))
}

/// The workspace root (where `examples/` is).
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the workspace root exists")
}

/// The path of a file in `examples/`.
pub fn example(name: &str) -> PathBuf {
    workspace().join("examples").join(name)
}

/// The sagaflow binary under test.
pub fn sagaflow_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_sagaflow"))
}

/// The `travel-services` binary, next to the sagaflow binary; built with
/// `cargo build -p travel-services` first when it is missing or older than
/// its sources.
pub fn travel_bin() -> PathBuf {
    static BUILT: Mutex<bool> = Mutex::new(false);
    let bin =
        sagaflow_bin().with_file_name(format!("travel-services{}", std::env::consts::EXE_SUFFIX));
    let mut built = BUILT.lock().unwrap_or_else(|p| p.into_inner());
    if !*built && needs_build(&bin) {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(workspace()).args([
            "build",
            "-p",
            "travel-services",
            "--bin",
            "travel-services",
        ]);
        // Build into the same target directory and profile as this test.
        let profile_dir = bin.parent().expect("the binary is in a directory");
        if let Some(target_dir) = profile_dir.parent() {
            cmd.arg("--target-dir").arg(target_dir);
        }
        if profile_dir.file_name() == Some("release".as_ref()) {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("cargo runs");
        assert!(
            status.success(),
            "`cargo build -p travel-services` failed: {status}"
        );
    }
    *built = true;
    assert!(
        bin.exists(),
        "the travel-services binary is at {}",
        bin.display()
    );
    bin
}

fn needs_build(bin: &Path) -> bool {
    let Ok(built_at) = bin.metadata().and_then(|m| m.modified()) else {
        return true;
    };
    let travel = workspace().join("crates/travel");
    let mut newest = std::time::SystemTime::UNIX_EPOCH;
    let mut stack = vec![travel.join("src"), travel.join("Cargo.toml")];
    while let Some(p) = stack.pop() {
        if p.is_dir() {
            if let Ok(rd) = std::fs::read_dir(&p) {
                stack.extend(rd.flatten().map(|e| e.path()));
            }
        } else if let Ok(m) = p.metadata().and_then(|m| m.modified()) {
            newest = newest.max(m);
        }
    }
    newest > built_at
}

/// A command with no `SAGAFLOW_*` variable inherited from the environment
/// of whoever runs the tests, so every setting is the one the test gives.
pub fn clean_command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new(program);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("SAGAFLOW_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// A `sagaflow` command (not yet run).
pub fn sagaflow() -> Command {
    clean_command(sagaflow_bin())
}

static LOG_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A child process that printed `listening on http://ADDR` and answers /healthz.
pub struct Proc {
    name: String,
    child: Child,
    /// `http://ADDR`, without a trailing slash.
    pub url: String,
    log: PathBuf,
    // Kept open so the child never writes to a closed pipe.
    _stdout: BufReader<ChildStdout>,
}

impl Proc {
    /// Spawns `cmd`, reads the address from its first stdout line, and waits
    /// until it answers `GET /healthz`. Its stderr goes to a log file in `logs`.
    pub fn spawn(name: &str, mut cmd: Command, logs: &Path) -> Proc {
        let n = LOG_COUNTER.fetch_add(1, Ordering::Relaxed);
        std::fs::create_dir_all(logs).expect("the log directory can be created");
        let log = logs.join(format!("{name}-{n}.log"));
        let log_file = std::fs::File::create(&log).expect("the log file can be created");
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file);
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{name} starts: {e}"));
        let stdout = child.stdout.take().expect("stdout is piped");
        // Read the first line on a thread, so a child that hangs cannot hang the test.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let n = reader.read_line(&mut line);
            let _ = tx.send((n.map(|_| line), reader));
        });
        let first = rx.recv_timeout(Duration::from_secs(60));
        let (line, reader) = match first {
            Ok((Ok(line), reader)) if !line.is_empty() => (line, reader),
            other => {
                let _ = child.kill();
                let status = child.wait().ok();
                panic!(
                    "{name} did not print its address (got {:?}, exit status {status:?}); its log:\n{}",
                    other.as_ref().map(|(l, _)| l.as_ref().ok()).ok(),
                    tail(&log)
                );
            }
        };
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| {
                panic!("{name}'s first line is `listening on http://ADDR`, not {line:?}")
            })
            .trim_end_matches('/')
            .to_string();
        let mut p = Proc {
            name: name.to_string(),
            child,
            url,
            log,
            _stdout: reader,
        };
        p.wait_healthy();
        p
    }

    fn wait_healthy(&mut self) {
        let api = Api::new(&self.url);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if api.healthy() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "{} exited ({status}) before answering /healthz; its log:\n{}",
                    self.name,
                    tail(&self.log)
                );
            }
            assert!(
                Instant::now() < deadline,
                "{} answers /healthz within 30s; its log:\n{}",
                self.name,
                tail(&self.log)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The last lines of the process's stderr.
    pub fn log_tail(&self) -> String {
        tail(&self.log)
    }

    /// The file the process's stderr goes to.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Kills the process with SIGKILL, as a crash would, and reaps it.
    pub fn sigkill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits (at most 60s) for the process to exit.
    pub fn sigterm(mut self) -> ExitStatus {
        signal(self.child.id(), libc::SIGTERM);
        wait_child(&mut self.child, Duration::from_secs(60)).unwrap_or_else(|| {
            panic!(
                "{} exits within 60s of SIGTERM; its log:\n{}",
                self.name,
                tail(&self.log)
            )
        })
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends a signal to a process.
#[allow(unsafe_code)] // kill(2) has no safe wrapper in std
pub fn signal(pid: u32, sig: libc::c_int) {
    let pid = libc::pid_t::try_from(pid).expect("a pid fits in pid_t");
    // SAFETY: kill(2) has no memory-safety preconditions.
    let rc = unsafe { libc::kill(pid, sig) };
    assert_eq!(
        rc,
        0,
        "kill({pid}, {sig}) succeeds: {}",
        std::io::Error::last_os_error()
    );
}

fn wait_child(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait works") {
            return Some(status);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// Runs a command to completion (killing it after `limit` as a safety net)
/// and returns what it printed.
pub fn run(mut cmd: Command, limit: Duration) -> Output {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let shown = format!("{cmd:?}");
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("{shown} starts: {e}"));
    let mut out = child.stdout.take().expect("stdout is piped");
    let mut err = child.stderr.take().expect("stderr is piped");
    let out_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = out.read_to_end(&mut buf);
        buf
    });
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = err.read_to_end(&mut buf);
        buf
    });
    let status = match wait_child(&mut child, limit) {
        Some(s) => s,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{shown} finishes within {limit:?}");
        }
    };
    Output {
        status,
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
    }
}

/// A free TCP port on 127.0.0.1 (free when this returns).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// The travel services, with their own database file. They keep their
/// address across [`Travel::restart`], so a server configured with
/// [`Travel::url`] reaches them again once they are back.
pub struct Travel {
    /// `None` between [`Travel::sigkill`] and [`Travel::restart`].
    proc: Option<Proc>,
    url: String,
    pub db: PathBuf,
    logs: PathBuf,
    cancel_failure_rate: f64,
    confirm_failures: u32,
    /// More flags, e.g. `--lambda-failure-seed N`.
    extra_args: Vec<String>,
}

impl Travel {
    /// Starts `travel-services` on a free port with a database in `dir`.
    pub fn start(dir: &Path, cancel_failure_rate: f64, confirm_failures: u32) -> Travel {
        Travel::start_with_args(dir, cancel_failure_rate, confirm_failures, &[])
    }

    /// [`Travel::start`] with more flags (kept across restarts).
    pub fn start_with_args(
        dir: &Path,
        cancel_failure_rate: f64,
        confirm_failures: u32,
        extra_args: &[String],
    ) -> Travel {
        let mut travel = Travel {
            proc: None,
            url: String::new(),
            db: dir.join("travel.db"),
            logs: dir.join("logs"),
            cancel_failure_rate,
            confirm_failures,
            extra_args: extra_args.to_vec(),
        };
        let proc = travel.spawn("127.0.0.1:0");
        travel.url = proc.url.clone();
        travel.proc = Some(proc);
        travel
    }

    fn spawn(&self, listen: &str) -> Proc {
        let mut cmd = clean_command(travel_bin());
        cmd.arg("--listen")
            .arg(listen)
            .arg("--db")
            .arg(&self.db)
            .arg("--cancel-failure-rate")
            .arg(self.cancel_failure_rate.to_string())
            .arg("--confirm-failures")
            .arg(self.confirm_failures.to_string())
            .args(&self.extra_args);
        Proc::spawn("travel-services", cmd, &self.logs)
    }

    /// `http://ADDR`: the same before and after a restart.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Kills the services with SIGKILL, as a crash would: until
    /// [`Travel::restart`], connections to their address are refused.
    pub fn sigkill(&mut self) {
        if let Some(proc) = self.proc.take() {
            proc.sigkill();
        }
    }

    /// Starts the services again on the same address and database.
    pub fn restart(&mut self) {
        self.sigkill();
        let addr = self
            .url
            .strip_prefix("http://")
            .expect("the url is http://ADDR")
            .to_string();
        let proc = self.spawn(&addr);
        assert_eq!(
            proc.url, self.url,
            "the services came back on their address"
        );
        self.proc = Some(proc);
    }

    /// The last lines of the running services' stderr.
    pub fn log_tail(&self) -> String {
        self.proc.as_ref().map(Proc::log_tail).unwrap_or_default()
    }

    /// The booking rows of one trip.
    pub fn rows(&self, trip_id: &str) -> Vec<travel_services::Row> {
        travel_services::trip_rows(&self.db, trip_id).expect("the travel database is readable")
    }

    /// Every booking row, by trip.
    pub fn all_rows(&self) -> BTreeMap<String, Vec<travel_services::Row>> {
        let mut by_trip: BTreeMap<String, Vec<travel_services::Row>> = BTreeMap::new();
        for r in travel_services::rows(&self.db).expect("the travel database is readable") {
            by_trip.entry(r.pk.clone()).or_default().push(r);
        }
        by_trip
    }

    /// How many times each call was executed, per route and `Idempotency-Key`.
    pub fn effects(&self) -> Vec<travel_services::Effect> {
        travel_services::effects(&self.db).expect("the travel database is readable")
    }
}

/// What is wrong with a trip's rows, given how its execution ended: a
/// succeeded trip holds exactly one confirmed HOTEL, FLIGHT, CAR and PAYMENT
/// row; a rolled-back trip holds none.
pub fn trip_problems(status: &str, rows: &[travel_services::Row]) -> Vec<String> {
    let mut problems = Vec::new();
    if status == "succeeded" {
        for kind in ["HOTEL", "FLIGHT", "CAR", "PAYMENT"] {
            let n = rows
                .iter()
                .filter(|r| r.sk.split('#').next() == Some(kind))
                .count();
            if n != 1 {
                problems.push(format!("{n} {kind} rows instead of one"));
            }
        }
        if rows.len() != 4 {
            problems.push(format!("{} rows instead of 4", rows.len()));
        }
        for r in rows.iter().filter(|r| r.transaction_status != "confirmed") {
            problems.push(format!(
                "{} is {}, not confirmed",
                r.sk, r.transaction_status
            ));
        }
    } else if !rows.is_empty() {
        let left: Vec<String> = rows
            .iter()
            .map(|r| format!("{} ({})", r.sk, r.transaction_status))
            .collect();
        problems.push(format!("rows left after the rollback: {}", left.join(", ")));
    }
    problems
}

/// `sagaflow server` on a free port, with its database in `data_dir`.
pub fn start_server(data_dir: &Path, travel_url: &str, extra: &[&str]) -> Proc {
    let mut cmd = sagaflow();
    cmd.arg("server")
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--listen", "127.0.0.1:0"])
        .arg("--var")
        .arg(format!("TRAVEL_URL={travel_url}"))
        .args(extra);
    Proc::spawn("sagaflow-server", cmd, &data_dir.join("logs"))
}

/// A tiny blocking client of the native API (reqwest driven by its own
/// single-threaded runtime), with a timeout that outlasts every `?wait=` the
/// tests use.
pub struct Api {
    pub base: String,
    http: reqwest::Client,
    rt: tokio::runtime::Runtime,
}

/// An API answer: the status code and the JSON body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl Api {
    pub fn new(base: &str) -> Api {
        Api {
            base: base.trim_end_matches('/').to_string(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(120))
                .build()
                .expect("an HTTP client"),
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a tokio runtime"),
        }
    }

    /// Sends a request; `Err` only when the server cannot be reached.
    pub fn try_call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Answer, reqwest::Error> {
        let mut rb = self.http.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        self.send(rb)
    }

    fn send(&self, rb: reqwest::RequestBuilder) -> Result<Answer, reqwest::Error> {
        self.rt.block_on(async {
            let resp = rb.send().await?;
            let status = resp.status().as_u16();
            let text = resp.text().await?;
            Ok(Answer {
                status,
                body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
            })
        })
    }

    /// Whether `GET /healthz` answers 200.
    pub fn healthy(&self) -> bool {
        self.send(
            self.http
                .get(format!("{}/healthz", self.base))
                .timeout(Duration::from_secs(5)),
        )
        .map(|a| a.status == 200)
        .unwrap_or(false)
    }

    /// Sends a request that must succeed (2xx); returns the body.
    pub fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let shown = format!("{method} {path}");
        let a = self
            .try_call(method, path, body)
            .unwrap_or_else(|e| panic!("{shown} reaches the server: {e}"));
        assert!(
            (200..300).contains(&a.status),
            "{shown} succeeds, but answered {}: {}",
            a.status,
            a.body
        );
        a.body
    }

    /// Registers the travel saga as `trip-booking`.
    pub fn deploy_travel_saga(&self) -> Value {
        self.deploy("trip-booking", TRAVEL_SAGA)
    }

    /// Registers a YAML definition under `name`.
    pub fn deploy(&self, name: &str, yaml: &str) -> Value {
        let rb = self
            .http
            .put(format!("{}/v1/definitions/{name}", self.base))
            .header("content-type", "application/yaml")
            .body(yaml.to_string());
        let a = self
            .send(rb)
            .unwrap_or_else(|e| panic!("PUT /v1/definitions/{name} reaches the server: {e}"));
        assert!(
            (200..300).contains(&a.status),
            "deploying {name} succeeds: {} {}",
            a.status,
            a.body
        );
        a.body
    }

    pub fn get(&self, path: &str) -> Value {
        self.call(reqwest::Method::GET, path, None)
    }

    /// Starts an execution of the travel saga for `trip_id` (also its execution id).
    pub fn start_trip(&self, trip_id: &str, run_type: &str, wait_secs: Option<u64>) -> Value {
        let path = match wait_secs {
            Some(w) => format!("/v1/executions?wait={w}"),
            None => "/v1/executions".to_string(),
        };
        self.call(
            reqwest::Method::POST,
            &path,
            Some(start_body(trip_id, run_type)),
        )
    }
}

/// The start request of a travel saga execution for `trip_id`.
pub fn start_body(trip_id: &str, run_type: &str) -> Value {
    json!({ "definition": "trip-booking", "input": trip_input(trip_id, run_type), "execution_id": trip_id })
}

/// The example trip with another trip id and run type.
pub fn trip_input(trip_id: &str, run_type: &str) -> Value {
    let mut input: Value =
        serde_json::from_str(include_str!("../../../../examples/trip-success.json"))
            .expect("the example trip is JSON");
    input["trip_id"] = json!(trip_id);
    input["run_type"] = json!(run_type);
    input
}

/// Whether an execution status is final.
pub fn is_terminal(status: &str) -> bool {
    !matches!(status, "running" | "compensating")
}

// ---------------------------------------------------------------------------
// Where a server keeps its executions: SQLite (a data directory) or a
// PostgreSQL schema of its own.

/// `DATABASE_URL`, or `None` after printing that the test is skipped.
pub fn database_url() -> Option<String> {
    match std::env::var("DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            eprintln!("DATABASE_URL is not set: skipping this PostgreSQL test");
            None
        }
    }
}

/// Runs a future to completion on a runtime of its own (the tests are
/// synchronous; PostgreSQL's client is not).
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(f)
}

/// A plain connection to the database at `url`.
async fn pg_connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connecting to DATABASE_URL: {e}"));
    tokio::spawn(connection);
    client
}

/// A PostgreSQL schema of one test's own, created empty (the server creates
/// its tables at connect) and dropped with everything in it when this is
/// dropped — after the servers using it, which must be declared after it —
/// unless the test failed (then it is kept, and named, for a post-mortem).
/// Named `sagaflow_test_…` like the store's test schemas, so one left by a
/// killed run is dropped by a later run of those once it is an hour old.
pub struct PgSchema {
    url: String,
    pub name: String,
}

impl PgSchema {
    pub fn create(url: &str) -> PgSchema {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let name = format!(
            "sagaflow_test_{secs}_{}_cli{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        block_on(async {
            pg_connect(url)
                .await
                .batch_execute(&format!("CREATE SCHEMA {name}"))
                .await
                .unwrap_or_else(|e| panic!("creating schema {name}: {e}"));
        });
        PgSchema {
            url: url.to_string(),
            name,
        }
    }

    /// The database URL selecting this schema (`search_path`), for a server's
    /// `--database-url`.
    pub fn server_url(&self) -> String {
        let sep = if self.url.contains('?') { '&' } else { '?' };
        format!("{}{sep}options=-c%20search_path%3D{}", self.url, self.name)
    }

    /// The node holding the lease of an execution (`None`: nobody, e.g. it
    /// is parked, or finished).
    pub fn lease_owner(&self, id: &str) -> Option<String> {
        block_on(async {
            let client = pg_connect(&self.url).await;
            client
                .batch_execute(&format!("SET search_path TO {}", self.name))
                .await
                .expect("setting search_path");
            client
                .query_one("SELECT owner FROM executions WHERE id = $1", &[&id])
                .await
                .unwrap_or_else(|e| panic!("reading the lease of {id}: {e}"))
                .get(0)
        })
    }

    /// Everything a server stored in this schema (the servers are stopped).
    pub fn read(&self) -> StoredExecutions {
        block_on(async {
            let client = pg_connect(&self.url).await;
            client
                .batch_execute(&format!("SET search_path TO {}", self.name))
                .await
                .expect("setting search_path");
            let mut sources = HashMap::new();
            for row in client
                .query("SELECT name, version, source FROM definitions", &[])
                .await
                .expect("reading definitions")
            {
                let version: i64 = row.get(1);
                sources.insert((row.get(0), version as u32), row.get(2));
            }
            let mut executions = BTreeMap::new();
            for row in client
                .query(
                    "SELECT id, definition, version, status, events FROM executions",
                    &[],
                )
                .await
                .expect("reading executions")
            {
                let (version, events): (i64, i64) = (row.get(2), row.get(4));
                executions.insert(
                    row.get::<_, String>(0),
                    Stored {
                        definition: row.get(1),
                        version: version as u32,
                        status: row.get(3),
                        events: events as u64,
                        history: Vec::new(),
                    },
                );
            }
            for row in client
                .query(
                    "SELECT execution_id, seq, body FROM events ORDER BY execution_id, seq",
                    &[],
                )
                .await
                .expect("reading events")
            {
                let id: String = row.get(0);
                let seq: i64 = row.get(1);
                if let Some(stored) = executions.get_mut(&id) {
                    stored.history.push((seq as u64, row.get(2)));
                }
            }
            (executions, sources)
        })
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // For the post-mortem; a later run drops it once it is an hour old.
            eprintln!("the test failed: its schema {} is kept", self.name);
            return;
        }
        let (url, name) = (self.url.clone(), self.name.clone());
        // On a thread of its own: this may run while a test's runtime unwinds.
        let dropped = std::thread::spawn(move || {
            block_on(async {
                pg_connect(&url)
                    .await
                    .batch_execute(&format!(
                        "SET lock_timeout = '10s'; DROP SCHEMA IF EXISTS {name} CASCADE"
                    ))
                    .await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test schema {}: {dropped:?}", self.name);
        }
    }
}

/// The database of a server under test.
#[derive(Clone, Debug)]
pub enum Backend {
    /// The embedded SQLite database in this data directory.
    Sqlite(PathBuf),
    /// A PostgreSQL database URL (with the test's schema).
    Postgres(String),
}

impl Backend {
    /// The server flags selecting this database.
    pub fn args(&self) -> Vec<std::ffi::OsString> {
        match self {
            Backend::Sqlite(dir) => vec!["--data-dir".into(), dir.into()],
            Backend::Postgres(url) => vec!["--database-url".into(), url.into()],
        }
    }
}

/// `sagaflow server` on a free port, on `backend`, logging into `logs`.
pub fn start_server_on(backend: &Backend, logs: &Path, travel_url: &str, extra: &[&str]) -> Proc {
    let mut cmd = sagaflow();
    cmd.arg("server")
        .args(backend.args())
        .args(["--listen", "127.0.0.1:0"])
        .arg("--var")
        .arg(format!("TRAVEL_URL={travel_url}"))
        .args(extra);
    Proc::spawn("sagaflow-server", cmd, logs)
}

/// `sagaflow server --cluster` on PostgreSQL (`db_url`), as node `node_id`
/// on a free port (advertised to the other nodes), logging into `logs`.
pub fn start_node(
    db_url: &str,
    logs: &Path,
    travel_url: &str,
    node_id: &str,
    lease_ttl: &str,
) -> Proc {
    let listen = format!("127.0.0.1:{}", free_port());
    let mut cmd = sagaflow();
    cmd.arg("server")
        .args(["--database-url", db_url])
        .args(["--listen", &listen])
        .args(["--cluster", "--node-id", node_id])
        .args(["--advertise", &format!("http://{listen}")])
        .args(["--lease-ttl", lease_ttl])
        .arg("--var")
        .arg(format!("TRAVEL_URL={travel_url}"));
    Proc::spawn(node_id, cmd, logs)
}

// ---------------------------------------------------------------------------
// The crash tests (crash.rs: one server on SQLite; cluster_crash.rs: three
// nodes on PostgreSQL): load, the checks of what was stored and done.

/// A trip id (also its execution id) and its run type.
pub type Trip = (String, &'static str);

/// `SAGAFLOW_CRASH_SEED`, or a fresh random seed.
pub fn crash_seed() -> u64 {
    match std::env::var("SAGAFLOW_CRASH_SEED") {
        Ok(s) => s
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("SAGAFLOW_CRASH_SEED={s} is a number")),
        Err(_) => rand::random(),
    }
}

/// The travel saga, with a forward retry budget that outlasts an outage of
/// the travel services (20 attempts, about half a minute, instead of 3 in
/// 300 ms): their restart must not turn a trip into a rollback.
pub fn crash_saga() -> String {
    let saga = TRAVEL_SAGA.replace("max_attempts: 3,", "max_attempts: 20,");
    assert_eq!(
        saga.matches("max_attempts: 20,").count(),
        4,
        "the four steps before and at the pivot get the larger budget"
    );
    saga
}

/// Starts its trips in turn, each against the next of the servers in `urls`
/// (round robin over those up). A start whose answer was lost to a crash is
/// sent again, to the next server, with the same execution id: the start is
/// idempotent, so it never runs a trip twice.
pub fn start_all(trips: Vec<Trip>, gaps: Vec<u64>, urls: std::sync::Arc<Mutex<Vec<String>>>) {
    let mut turn = 0usize;
    for ((trip_id, run_type), gap) in trips.iter().zip(gaps) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let url = {
                let urls = urls.lock().unwrap();
                turn += 1;
                (!urls.is_empty()).then(|| urls[turn % urls.len()].clone())
            };
            if let Some(url) = url {
                match Api::new(&url).try_call(
                    reqwest::Method::POST,
                    "/v1/executions",
                    Some(start_body(trip_id, run_type)),
                ) {
                    Ok(a) if a.status == 200 || a.status == 201 => break,
                    // Shutting down or not reachable: the server is being killed; try the next one.
                    Ok(a) if a.status == 503 => {}
                    Ok(a) => panic!(
                        "starting {trip_id} at {url} answered {}: {}",
                        a.status, a.body
                    ),
                    Err(_) => {}
                }
            }
            assert!(
                Instant::now() < deadline,
                "{trip_id} could be started within 30s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(gap));
    }
}

/// Waits until every trip's execution has finished, asking the servers in
/// `urls` in turn (`?wait=`); on a deadline, panics with `explain`.
pub fn wait_all_finished(trips: &[Trip], urls: &[String], seed: u64, explain: impl Fn() -> String) {
    let apis: Vec<Api> = urls.iter().map(|u| Api::new(u)).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    for (n, (trip_id, _)) in trips.iter().enumerate() {
        let api = &apis[n % apis.len()];
        loop {
            let ex = api.get(&format!("/v1/executions/{trip_id}?wait=30"));
            let status = ex["status"].as_str().unwrap_or_default().to_string();
            if is_terminal(&status) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "seed {seed}: {trip_id} finishes after the last restart; it is still {status}; \
                 its history:\n{:#}\n{}",
                api.get(&format!("/v1/executions/{trip_id}/history"))["events"],
                explain()
            );
        }
    }
}

/// One execution as a server stored it.
pub struct Stored {
    pub definition: String,
    pub version: u32,
    pub status: String,
    /// The `events` column: how many events the execution row says it has.
    pub events: u64,
    /// `(seq, body)` in order.
    pub history: Vec<(u64, String)>,
}

/// Every stored execution by id, and the definitions' sources by (name, version).
pub type StoredExecutions = (BTreeMap<String, Stored>, HashMap<(String, u32), String>);

/// Problems found, by execution id (`""`: not about one execution).
pub type Problems = BTreeMap<String, Vec<String>>;

/// What is wrong with a stored history: not a gap-free sequence matching the
/// execution row, not made of events, or not legal for the core's transition
/// function; or the state it folds to is not the stored, terminal status.
/// Also returns the events.
pub fn history_problems(
    stored: &Stored,
    plan: &sagaflow_core::Plan,
) -> (Vec<String>, Vec<sagaflow_core::Event>) {
    let mut problems = Vec::new();
    let seqs: Vec<u64> = stored.history.iter().map(|(seq, _)| *seq).collect();
    if seqs != (1..=stored.events).collect::<Vec<_>>() {
        problems.push(format!(
            "its events are numbered {seqs:?}, not 1..={}",
            stored.events
        ));
    }
    let mut events = Vec::new();
    for (seq, body) in &stored.history {
        match serde_json::from_str::<sagaflow_core::Event>(body) {
            Ok(e) => events.push(e),
            Err(e) => problems.push(format!("event {seq} is not an event ({e}): {body}")),
        }
    }
    match sagaflow_core::Execution::replay(plan, &events) {
        Err(e) => problems.push(format!("its history is not legal: {e}")),
        Ok(ex) if !ex.status.is_terminal() => problems.push(format!(
            "its history ends {}, not finished",
            ex.status.as_str()
        )),
        Ok(ex) if ex.status.as_str() != stored.status => problems.push(format!(
            "its history ends {} but the execution row says {}",
            ex.status.as_str(),
            stored.status
        )),
        Ok(_) => {}
    }
    (problems, events)
}

/// The tasks (step, action|compensation) whose success a history records.
pub fn succeeded_tasks(events: &[sagaflow_core::Event]) -> BTreeSet<(String, &'static str)> {
    use sagaflow_core::{EventKind, TaskKind};
    events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::StepSucceeded { step, .. } => {
                Some((step.clone(), TaskKind::Action.as_str()))
            }
            EventKind::CompensationSucceeded { step, .. } => {
                Some((step.clone(), TaskKind::Compensation.as_str()))
            }
            _ => None,
        })
        .collect()
}

/// The tasks a history ever scheduled.
pub fn scheduled_tasks(events: &[sagaflow_core::Event]) -> BTreeSet<(String, &'static str)> {
    use sagaflow_core::{EventKind, TaskKind};
    events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::StepScheduled { step, .. } => {
                Some((step.clone(), TaskKind::Action.as_str()))
            }
            EventKind::CompensationScheduled { step, .. } => {
                Some((step.clone(), TaskKind::Compensation.as_str()))
            }
            _ => None,
        })
        .collect()
}

/// The history as one line per event, for a failure message.
pub fn render(stored: &Stored) -> String {
    stored
        .history
        .iter()
        .map(|(seq, body)| format!("  {seq:>3} {body}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The invariants of a crash test, checked against what the server(s)
/// stored and what the travel services did: exactly the trips were stored;
/// each ended as its run type says and the travel database agrees; every
/// `Idempotency-Key` was executed at most once; every history is legal for
/// the core and ends where its execution row says; every task a history
/// records as succeeded was executed, and nothing was executed that no
/// history scheduled; no booking is left for a trip that did not succeed,
/// and none is pending. Returns the problems and how many keys were executed.
pub fn crash_problems(
    trips: &[Trip],
    stored: &StoredExecutions,
    travel: &Travel,
) -> (Problems, usize) {
    let (stored, sources) = stored;
    let mut plans: HashMap<(String, u32), sagaflow_core::Plan> = HashMap::new();
    let rows = travel.all_rows();
    let mut effects_of: BTreeMap<String, Vec<travel_services::Effect>> = BTreeMap::new();
    let mut problems = Problems::new();
    let mut problem = |id: &str, p: String| problems.entry(id.to_string()).or_default().push(p);
    let effects = travel.effects();
    for e in &effects {
        // Keys are `{execution}:{step}:{action|compensation}`.
        let id = match e.key.splitn(3, ':').collect::<Vec<_>>()[..] {
            [id, _, "action" | "compensation"] if stored.contains_key(id) => id,
            _ => {
                problem(
                    "",
                    format!(
                        "{} executed key {}, which no execution sends",
                        e.route, e.key
                    ),
                );
                continue;
            }
        };
        if e.count > 1 {
            problem(
                id,
                format!(
                    "{} with key {} was executed {} times",
                    e.route, e.key, e.count
                ),
            );
        }
        effects_of
            .entry(id.to_string())
            .or_default()
            .push(e.clone());
    }
    if stored.len() != trips.len() {
        problem(
            "",
            format!(
                "the server stored {} executions, not {}",
                stored.len(),
                trips.len()
            ),
        );
    }

    for (trip_id, run_type) in trips {
        let Some(ex) = stored.get(trip_id) else {
            problem(trip_id, "was never stored".to_string());
            continue;
        };
        // It ended as its run type says, and the travel database agrees.
        let expected = expected_status(run_type);
        if ex.status != expected {
            problem(
                trip_id,
                format!("({run_type}) ended {}, not {expected}", ex.status),
            );
        }
        for p in trip_problems(&ex.status, rows.get(trip_id).map_or(&[][..], Vec::as_slice)) {
            problem(trip_id, format!("({run_type}, {}): {p}", ex.status));
        }
        // Its history is legal, and ends where the execution row says.
        let key = (ex.definition.clone(), ex.version);
        let Some(source) = sources.get(&key) else {
            problem(trip_id, format!("its definition {key:?} was not stored"));
            continue;
        };
        let plan = plans.entry(key).or_insert_with(|| {
            sagaflow_core::compile(source, Some(&ex.definition))
                .expect("a stored definition compiles")
        });
        let (history_problems, events) = history_problems(ex, plan);
        for p in history_problems {
            problem(trip_id, p);
        }
        // Every task the history says succeeded was executed once by the
        // travel services, and they executed nothing the history did not schedule.
        let executed: BTreeSet<(String, &str)> = effects_of
            .get(trip_id)
            .into_iter()
            .flatten()
            .filter_map(|e| {
                let mut parts = e.key.splitn(3, ':').skip(1);
                let step = parts.next()?.to_string();
                let task = match parts.next()? {
                    "action" => "action",
                    _ => "compensation",
                };
                Some((step, task))
            })
            .collect();
        for (step, task) in succeeded_tasks(&events) {
            if !executed.contains(&(step.clone(), task)) {
                problem(
                    trip_id,
                    format!(
                        "its {step} {task} succeeded but the travel services never executed it"
                    ),
                );
            }
        }
        let scheduled = scheduled_tasks(&events);
        for (step, task) in executed.difference(&scheduled) {
            problem(
                trip_id,
                format!(
                    "the travel services executed its {step} {task}, which was never scheduled"
                ),
            );
        }
    }
    // No booking exists for a trip that did not succeed, and none is pending.
    for (trip_id, rows) in &rows {
        if stored.get(trip_id).map(|ex| ex.status.as_str()) != Some("succeeded") {
            problem(
                trip_id,
                format!("holds {} rows but did not succeed", rows.len()),
            );
        }
        for r in rows.iter().filter(|r| r.transaction_status != "confirmed") {
            problem(
                trip_id,
                format!("{} is left {}", r.sk, r.transaction_status),
            );
        }
    }
    (problems, effects.len())
}

/// Panics with every problem (and the first histories concerned), naming the seed.
pub fn fail_on_problems(seed: u64, problems: &Problems, stored: &BTreeMap<String, Stored>) {
    if problems.is_empty() {
        return;
    }
    let mut report = format!(
        "seed {seed} (re-run with SAGAFLOW_CRASH_SEED={seed}): {} execution(s) with problems:\n",
        problems.keys().filter(|id| !id.is_empty()).count()
    );
    for (id, ps) in problems {
        for p in ps {
            report.push_str(&format!("{}: {p}\n", if id.is_empty() { "-" } else { id }));
        }
    }
    for id in problems.keys().filter(|id| !id.is_empty()).take(5) {
        if let Some(ex) = stored.get(id) {
            report.push_str(&format!("\nhistory of {id}:\n{}\n", render(ex)));
        }
    }
    panic!("{report}");
}

/// How many executions ended in each status.
pub fn by_status(stored: &BTreeMap<String, Stored>) -> BTreeMap<&str, usize> {
    let mut by_status: BTreeMap<&str, usize> = BTreeMap::new();
    for ex in stored.values() {
        *by_status.entry(ex.status.as_str()).or_default() += 1;
    }
    by_status
}

/// A temporary directory that is kept (and its path printed) when the test
/// fails, so the logs of its processes can be read afterwards.
pub struct KeptOnFailure(Option<tempfile::TempDir>);

impl KeptOnFailure {
    pub fn new() -> KeptOnFailure {
        KeptOnFailure(Some(tempfile::tempdir().expect("a temporary directory")))
    }

    pub fn path(&self) -> &Path {
        self.0.as_ref().expect("not dropped yet").path()
    }
}

impl Drop for KeptOnFailure {
    fn drop(&mut self) {
        if let Some(dir) = self.0.take() {
            if std::thread::panicking() {
                eprintln!(
                    "the test failed: its files and logs are kept in {}",
                    dir.keep().display()
                );
            }
        }
    }
}

/// `SAGAFLOW_PYTHON` (an interpreter with boto3, awscli,
/// aws-durable-execution-sdk-python and awslambdaric; `.ci/run` makes one),
/// or `None` after saying why `suite` does nothing. Under `CI` its absence
/// fails the test: CI must run the durable suites.
pub fn durable_python(suite: &str) -> Option<PathBuf> {
    match std::env::var_os("SAGAFLOW_PYTHON") {
        Some(p) if !p.is_empty() => Some(PathBuf::from(p)),
        _ => {
            let why = format!(
                "SAGAFLOW_PYTHON is not set: {suite} needs an interpreter with boto3, awscli, \
                 aws-durable-execution-sdk-python and awslambdaric (see .ci/run)"
            );
            assert!(std::env::var_os("CI").is_none(), "{why}");
            eprintln!("skipped: {why}");
            None
        }
    }
}

/// A TOML basic string holding `s`.
pub fn toml_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `python SCRIPT` run in `work` (not the script's directory first on
/// `sys.path`), unbuffered, with no AWS configuration or credentials
/// files of the machine's (the SDK must not find a real account's).
pub fn python_script(python: &Path, script: &Path, work: &Path) -> Command {
    let mut cmd = clean_command(python);
    cmd.arg(script)
        .current_dir(work)
        .env("AWS_CONFIG_FILE", work.join("no-aws-config"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            work.join("no-aws-credentials"),
        )
        .env("PYTHONUNBUFFERED", "1");
    cmd
}
