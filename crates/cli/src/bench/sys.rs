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
pub fn thread_cpu(prefix: &str) -> Duration {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Duration::ZERO;
    };
    let mut ticks = 0u64;
    for task in tasks.flatten() {
        let path = task.path();
        let named = std::fs::read_to_string(path.join("comm"))
            .is_ok_and(|comm| comm.trim_end().starts_with(prefix));
        if named {
            ticks += std::fs::read_to_string(path.join("stat")).map_or(0, |stat| stat_cpu(&stat).1);
        }
    }
    from_ticks(ticks)
}

/// CPU time (user + system) of this process's live child processes: the
/// durable functions' workers, which `getrusage(RUSAGE_CHILDREN)` would
/// only count once they have exited.
pub fn children_cpu() -> Duration {
    let Ok(processes) = std::fs::read_dir("/proc") else {
        return Duration::ZERO;
    };
    let me = std::process::id() as u64;
    let mut ticks = 0u64;
    for process in processes.flatten() {
        let Ok(stat) = std::fs::read_to_string(process.path().join("stat")) else {
            continue;
        };
        let (parent, cpu) = stat_cpu(&stat);
        if parent == me {
            ticks += cpu;
        }
    }
    from_ticks(ticks)
}

/// A `/proc/…/stat` line's parent pid and utime + stime (clock ticks).
fn stat_cpu(stat: &str) -> (u64, u64) {
    // Fields after the parenthesised name: state is the first, the parent
    // pid the second; utime and stime are the 12th and 13th.
    let Some((_, rest)) = stat.rsplit_once(") ") else {
        return (0, 0);
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (field(1), field(11) + field(12))
}

#[allow(unsafe_code)] // sysconf(3) has no safe wrapper in std
fn from_ticks(ticks: u64) -> Duration {
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let per_second = if per_second > 0 {
        per_second as f64
    } else {
        100.0
    };
    Duration::from_secs_f64(ticks as f64 / per_second)
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
