//! The progress line on stderr: `\r`-rewritten a few times a second, only
//! when stderr is a terminal (and never with `--json`).

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct Progress {
    enabled: bool,
    done: AtomicU64,
    stopped: AtomicBool,
    phase: Mutex<Phase>,
}

struct Phase {
    name: String,
    total: Option<u64>,
    until: Option<Instant>,
    started: Instant,
}

impl Progress {
    /// A progress line that prints only when `enabled`; starts its printer
    /// on the current runtime.
    pub fn start(enabled: bool) -> Arc<Progress> {
        let p = Arc::new(Progress {
            enabled,
            done: AtomicU64::new(0),
            stopped: AtomicBool::new(false),
            phase: Mutex::new(Phase {
                name: String::new(),
                total: None,
                until: None,
                started: Instant::now(),
            }),
        });
        if enabled {
            let printer = p.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_millis(200));
                loop {
                    tick.tick().await;
                    if printer.stopped.load(Ordering::Relaxed) {
                        break;
                    }
                    printer.print();
                }
            });
        }
        p
    }

    /// Starts counting a new phase: `total` sagas, or until `until`.
    pub fn phase(&self, name: &str, total: Option<u64>, until: Option<Instant>) {
        let mut phase = self.lock();
        *phase = Phase {
            name: name.to_string(),
            total,
            until,
            started: Instant::now(),
        };
        self.done.store(0, Ordering::Relaxed);
    }

    /// One more saga done in this phase.
    pub fn tick(&self) {
        self.done.fetch_add(1, Ordering::Relaxed);
    }

    /// Stops printing and clears the line.
    pub fn finish(&self) {
        if !self.stopped.swap(true, Ordering::Relaxed) && self.enabled {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Phase> {
        self.phase.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn print(&self) {
        let line = {
            let phase = self.lock();
            if phase.name.is_empty() {
                return;
            }
            let done = self.done.load(Ordering::Relaxed);
            let secs = phase.started.elapsed().as_secs_f64();
            let rate = if secs > 0.0 { done as f64 / secs } else { 0.0 };
            let of = match (phase.total, phase.until) {
                (Some(total), _) => format!("{done}/{total} sagas"),
                (None, Some(until)) => format!(
                    "{done} sagas, {:.0} s left",
                    until
                        .saturating_duration_since(Instant::now())
                        .as_secs_f64()
                ),
                // A phase that counts nothing shows only how long it takes.
                (None, None) if done == 0 => {
                    return self.write(&format!("{}… {secs:.1} s", phase.name))
                }
                (None, None) => format!("{done} sagas"),
            };
            format!("{}: {of}, {rate:.0}/s, {secs:.1} s", phase.name)
        };
        self.write(&line);
    }

    fn write(&self, line: &str) {
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K{line}");
        let _ = err.flush();
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}
