//! Worker processes: how one is started (command, environment, its own
//! process group, parent-death signal), where its output goes (line by
//! line, so a full pipe never blocks it), how it is killed (SIGKILL to the
//! group) and reaped, and how its exit is reported to the pool.

use std::collections::VecDeque;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;
use tokio::sync::watch;

use crate::pool::{Function, WorkerSlot};
use crate::RuntimeKind;

/// Server-side variables that would send a worker's AWS SDK elsewhere than
/// the endpoint we give it.
const REMOVED_ENV: [&str; 3] = [
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
    "AWS_ENDPOINT_URL",
    "AWS_PROFILE",
];

/// How many trailing stderr lines a crash report quotes.
const STDERR_TAIL: usize = 10;

/// Where a function's worker output goes.
pub(crate) enum LogSink {
    /// `{log_dir}/{function}.log`, opened on the first line.
    File {
        path: PathBuf,
        file: Mutex<Option<File>>,
    },
    /// tracing, target `function`.
    Tracing { function: String },
}

impl LogSink {
    pub fn new(log_dir: Option<&Path>, function: &str) -> Self {
        match log_dir {
            Some(dir) => LogSink::File {
                path: dir.join(format!("{function}.log")),
                file: Mutex::new(None),
            },
            None => LogSink::Tracing {
                function: function.to_owned(),
            },
        }
    }

    fn line(&self, pid: u32, stream: &str, line: &str) {
        match self {
            LogSink::Tracing { function } => {
                tracing::info!(target: "function", function = %function, pid, stream, "{line}");
            }
            LogSink::File { path, file } => {
                let mut file = file.lock().unwrap_or_else(|e| e.into_inner());
                if file.is_none() {
                    match std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(path)
                    {
                        Ok(f) => *file = Some(f),
                        Err(e) => {
                            tracing::warn!(path = %path.display(), error = %e, "cannot open the function log");
                            return;
                        }
                    }
                }
                let now = humantime::format_rfc3339_millis(SystemTime::now());
                if let Some(f) = file.as_mut() {
                    // One write per line so concurrent workers' lines do not interleave.
                    let _ = f.write_all(format!("{now} pid={pid} {stream}: {line}\n").as_bytes());
                }
            }
        }
    }
}

/// SIGKILL to the process group led by `pid` (every worker leads its own).
pub(crate) fn kill_group(pid: u32) {
    let Ok(pgid) = libc::pid_t::try_from(pid) else {
        return;
    };
    if pgid <= 1 {
        return;
    }
    #[allow(unsafe_code)]
    // SAFETY: kill(2) has no memory-safety preconditions; a negative pid
    // addresses the process group, which is the worker's own (process_group(0)).
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
}

/// The command line and working directory of a function's worker.
fn command(f: &Function) -> Command {
    let c = &f.config;
    let mut cmd = match c.runtime {
        RuntimeKind::Python => {
            let mut cmd = Command::new(&f.host.python);
            cmd.arg("-m").arg("awslambdaric");
            cmd.arg(c.handler.as_deref().unwrap_or_default());
            cmd
        }
        RuntimeKind::Provided => {
            Command::new(c.code.join(c.handler.as_deref().unwrap_or("bootstrap")))
        }
    };
    cmd.current_dir(&c.code);
    cmd
}

/// The Lambda environment of a worker listening to `api` (`host:port`).
fn environment(f: &Function, cmd: &mut Command, api: &str) {
    let c = &f.config;
    for name in REMOVED_ENV {
        cmd.env_remove(name);
    }
    let creds = &f.credentials;
    cmd.env("AWS_LAMBDA_RUNTIME_API", api)
        .env("AWS_ENDPOINT_URL_LAMBDA", &f.host.endpoint_url)
        .env("AWS_REGION", &f.host.region)
        .env("AWS_DEFAULT_REGION", &f.host.region)
        .env("AWS_ACCESS_KEY_ID", &creds.access_key_id)
        .env("AWS_SECRET_ACCESS_KEY", &creds.secret_access_key)
        .env("AWS_LAMBDA_FUNCTION_NAME", &c.name)
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", c.memory_mb.to_string())
        .env("AWS_LAMBDA_LOG_FORMAT", "text")
        .env("LAMBDA_TASK_ROOT", &c.code)
        .env("PYTHONUNBUFFERED", "1");
    match &creds.session_token {
        Some(token) => cmd.env("AWS_SESSION_TOKEN", token),
        None => cmd.env_remove("AWS_SESSION_TOKEN"),
    };
    if c.runtime == RuntimeKind::Python {
        cmd.env("AWS_EXECUTION_ENV", "AWS_Lambda_python3.11");
    }
    cmd.envs(&c.environment);
}

/// Isolates the worker: its own process group (so killing it kills what it
/// started) and, on Linux, SIGKILL when the host dies.
fn isolate(cmd: &mut Command) {
    cmd.process_group(0);
    #[cfg(target_os = "linux")]
    #[allow(unsafe_code)]
    // SAFETY: the closure runs in the forked child before exec and only
    // calls prctl(2), which is async-signal-safe and touches no memory of
    // ours. PR_SET_PDEATHSIG fires when the forking *thread* exits; workers
    // are spawned from the runtime's long-lived worker threads.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Starts worker `id` of `f`: its Runtime API listener, the process, the
/// output readers, the init watchdog and the reaper. Called under the
/// pool's lock, so nothing here awaits.
pub(crate) fn spawn(f: &Arc<Function>, id: u64) -> Result<WorkerSlot, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .and_then(|l| {
            let addr = l.local_addr()?;
            Ok((tokio::net::TcpListener::from_std(l)?, addr))
        });
    let (listener, addr) =
        listener.map_err(|e| format!("cannot bind a Runtime API listener: {e}"))?;
    let mut cmd = command(f);
    environment(f, &mut cmd, &addr.to_string());
    isolate(&mut cmd);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| {
        let program = cmd.as_std().get_program().to_string_lossy().into_owned();
        format!("cannot start {program} in {}: {e}", f.config.code.display())
    })?;
    let pid = child.id().unwrap_or(0);
    let server =
        tokio::spawn(crate::runtime_api::serve(listener, Arc::clone(f), id)).abort_handle();
    tracing::debug!(function = %f.config.name, pid, %addr, "worker started");

    let tail = Arc::new(Mutex::new(VecDeque::new()));
    let readers = [
        child
            .stdout
            .take()
            .map(|out| tokio::spawn(read_lines(Arc::clone(f), pid, "stdout", out, None))),
        child.stderr.take().map(|err| {
            tokio::spawn(read_lines(
                Arc::clone(f),
                pid,
                "stderr",
                err,
                Some(Arc::clone(&tail)),
            ))
        }),
    ];

    let allowance = Duration::from_secs(f.config.timeout_seconds.max(10));
    let watchdog = Arc::downgrade(f);
    tokio::spawn(async move {
        tokio::time::sleep(allowance).await;
        if let Some(f) = watchdog.upgrade() {
            f.init_overran(id, allowance);
        }
    });

    let (exited_tx, exited_rx) = watch::channel(false);
    let f = Arc::clone(f);
    tokio::spawn(async move {
        let status = child.wait().await;
        // Whatever it started in its group goes with it (and frees the pipes).
        kill_group(pid);
        for reader in readers.into_iter().flatten() {
            let _ = tokio::time::timeout(Duration::from_secs(2), reader).await;
        }
        let status = describe(status, &tail);
        tracing::debug!(function = %f.config.name, pid, %status, "worker exited");
        f.exited(id, status);
        let _ = exited_tx.send(true);
    });
    Ok(WorkerSlot::new(pid, server, exited_rx))
}

/// Copies one output stream to the function's log, line by line, keeping
/// the last stderr lines for crash reports.
async fn read_lines(
    f: Arc<Function>,
    pid: u32,
    stream: &'static str,
    out: impl AsyncRead + Unpin,
    tail: Option<Arc<Mutex<VecDeque<String>>>>,
) {
    let mut reader = BufReader::new(out);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let line = String::from_utf8_lossy(&buf);
        let line = line.trim_end_matches(['\n', '\r']);
        f.log.line(pid, stream, line);
        if let Some(tail) = &tail {
            let mut tail = tail.lock().unwrap_or_else(|e| e.into_inner());
            if tail.len() == STDERR_TAIL {
                tail.pop_front();
            }
            tail.push_back(line.to_owned());
        }
    }
}

/// "exit status: 1" / "signal: 9 (SIGKILL)", then the last stderr lines.
fn describe(
    status: std::io::Result<std::process::ExitStatus>,
    tail: &Mutex<VecDeque<String>>,
) -> String {
    let mut text = match status {
        Ok(s) => s.to_string(),
        Err(e) => format!("could not be waited for: {e}"),
    };
    let tail = tail.lock().unwrap_or_else(|e| e.into_inner());
    if !tail.is_empty() {
        text.push_str("; last stderr lines:");
        for line in tail.iter() {
            text.push_str("\n  ");
            text.push_str(line);
        }
    }
    text
}
