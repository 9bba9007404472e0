//! What the process costs: CPU time (getrusage), resident memory
//! (`/proc/self/status`), and the machine it runs on.

use std::time::Duration;

use serde::Serialize;

/// CPU time used by the whole process (every thread) so far.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cpu {
    pub user: Duration,
    pub system: Duration,
    /// Of which the SQLite store's own threads (`sagaflow-store-*`).
    pub store_threads: Duration,
    /// Bytes written (see [`written`]).
    pub written: u64,
}

impl Cpu {
    // getrusage(2) has no safe wrapper in std; the workspace denies unsafe
    // code everywhere else.
    #[allow(unsafe_code)]
    pub fn now() -> Cpu {
        // SAFETY: `rusage` is plain data (all-zero is a valid value).
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: getrusage only writes into the struct we pass it, which
        // lives until it returns.
        let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
        if rc != 0 {
            return Cpu::default();
        }
        Cpu {
            user: timeval(ru.ru_utime),
            system: timeval(ru.ru_stime),
            store_threads: thread_cpu(STORE_THREADS),
            written: written(),
        }
    }

    /// The CPU time spent since `earlier`.
    pub fn since(self, earlier: Cpu) -> Cpu {
        Cpu {
            user: self.user.saturating_sub(earlier.user),
            system: self.system.saturating_sub(earlier.system),
            store_threads: self.store_threads.saturating_sub(earlier.store_threads),
            written: self.written.saturating_sub(earlier.written),
        }
    }

    pub fn total(self) -> Duration {
        self.user + self.system
    }
}

fn timeval(t: libc::timeval) -> Duration {
    Duration::from_secs(t.tv_sec.max(0) as u64) + Duration::from_micros(t.tv_usec.max(0) as u64)
}

/// CPU time (user + system) of this process's live threads whose name
/// starts with `prefix` (Linux truncates thread names to 15 bytes).
#[allow(unsafe_code)] // sysconf(3) has no safe wrapper in std
pub fn thread_cpu(prefix: &str) -> Duration {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Duration::ZERO;
    };
    let ticks = if ticks > 0 { ticks as f64 } else { 100.0 };
    let mut total = 0u64;
    for task in tasks.flatten() {
        let path = task.path();
        let named = std::fs::read_to_string(path.join("comm"))
            .is_ok_and(|comm| comm.trim_end().starts_with(prefix));
        if !named {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(path.join("stat")) else {
            continue;
        };
        // Fields after the parenthesised name: state is the first; utime
        // and stime are the 12th and 13th.
        let Some((_, rest)) = stat.rsplit_once(") ") else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        for i in [11, 12] {
            total += fields
                .get(i)
                .and_then(|f| f.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    Duration::from_secs_f64(total as f64 / ticks)
}

/// The SQLite store's writer thread as Linux names it:
/// thread names are cut to 15 bytes.
pub const STORE_THREADS: &str = "sagaflow-store-";

/// A `kB` line of `/proc/self/status` (`VmRSS`, `VmHWM`), in bytes.
fn status_bytes(key: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(key)?.strip_prefix(':')?;
        let kib: u64 = rest.trim().trim_end_matches("kB").trim().parse().ok()?;
        Some(kib * 1024)
    })
}

/// Resident memory now (`VmRSS`), in bytes; 0 where /proc is not available.
pub fn rss() -> u64 {
    status_bytes("VmRSS").unwrap_or(0)
}

/// The largest resident memory so far (`VmHWM`), in bytes.
pub fn peak_rss() -> u64 {
    status_bytes("VmHWM").unwrap_or(0)
}

/// Bytes this process has written through write syscalls so far (`wchar`
/// of `/proc/self/io`: the database's WAL and files, sockets, stderr).
pub fn written() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .ok()
        .and_then(|io| {
            io.lines()
                .find_map(|l| l.strip_prefix("wchar:").map(|v| v.trim().parse().ok()))
        })
        .flatten()
        .unwrap_or(0)
}

/// The machine a report was measured on.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
}

impl Machine {
    pub fn this() -> Machine {
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|info| {
                info.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, m)| m.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        Machine { cpus, cpu_model }
    }
}

pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}
