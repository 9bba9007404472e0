//! One hosted function: its FIFO of invocations, its workers and which
//! invocation each holds. Everything here runs under one short `std` mutex
//! per function (never held across an await), so functions never stall
//! each other and every transition (assign, answer, timeout, death) sees a
//! consistent picture: an invocation is either queued, held by exactly one
//! worker, or answered.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{oneshot, watch};
use tokio::task::AbortHandle;

use crate::worker::{self, LogSink};
use crate::{Credentials, Failure, FunctionConfig, HostConfig, HostError, Invocation};

/// An invocation waiting for a worker.
pub(crate) struct Job {
    request_id: String,
    payload: Vec<u8>,
    reply: oneshot::Sender<Invocation>,
}

/// What `/next` hands the worker.
pub(crate) struct Assigned {
    pub request_id: String,
    pub payload: Vec<u8>,
    pub deadline_ms: u128,
}

/// Where a worker is in its life; decides who answers its invocation.
enum WorkerState {
    /// Spawned, has not asked for work yet (initialising).
    Starting,
    /// Long-polling `/next`: the sender completes that request.
    Waiting(oneshot::Sender<Assigned>),
    /// Holds an invocation; the timer fails it when the timeout passes.
    Busy {
        request_id: String,
        reply: oneshot::Sender<Invocation>,
        timer: AbortHandle,
    },
    /// Answered (or its `/next` request went away); will ask again soon.
    Between,
    /// Killed by the host (timeout, shutdown); its death answers nothing.
    Killed,
}

pub(crate) struct WorkerSlot {
    pub pid: u32,
    state: WorkerState,
    /// Set by `/init/error`, or by the host when initialisation overran.
    init_error: Option<(String, String)>,
    server: AbortHandle,
    exited: watch::Receiver<bool>,
}

#[derive(Default)]
struct PoolState {
    queue: VecDeque<Job>,
    workers: HashMap<u64, WorkerSlot>,
    next_worker: u64,
    closed: bool,
}

/// One hosted function.
pub(crate) struct Function {
    pub config: FunctionConfig,
    pub credentials: Credentials,
    pub host: Arc<HostConfig>,
    pub log: LogSink,
    state: Mutex<PoolState>,
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

impl Function {
    pub fn new(
        host: Arc<HostConfig>,
        config: FunctionConfig,
        credentials: Credentials,
    ) -> Arc<Self> {
        let log = LogSink::new(host.log_dir.as_deref(), &config.name);
        Arc::new(Self {
            config,
            credentials,
            host,
            log,
            state: Mutex::new(PoolState::default()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, PoolState> {
        // A panic under the lock leaves consistent-enough state (every
        // transition is a few field writes); keep serving rather than
        // poisoning every later invocation.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(self.config.timeout_seconds)
    }

    pub fn worker_pids(&self) -> Vec<u32> {
        self.lock().workers.values().map(|w| w.pid).collect()
    }

    pub async fn invoke(
        self: &Arc<Self>,
        payload: Vec<u8>,
        request_id: String,
    ) -> Result<Invocation, HostError> {
        let (reply, answer) = oneshot::channel();
        {
            let mut st = self.lock();
            if st.closed {
                return Err(HostError::ShutDown);
            }
            st.queue.push_back(Job {
                request_id,
                payload,
                reply,
            });
            self.pump(&mut st);
        }
        Ok(answer.await.unwrap_or_else(|_| {
            Invocation::Failed(Failure::Crashed {
                status: "the invocation was dropped by the host".into(),
            })
        }))
    }

    /// Hands queued invocations to waiting workers, then spawns workers for
    /// what is still queued beyond those about to ask (up to `workers`).
    fn pump(self: &Arc<Self>, st: &mut PoolState) {
        if st.closed {
            return;
        }
        while !st.queue.is_empty() {
            let Some(id) = st
                .workers
                .iter()
                .find(|(_, w)| matches!(w.state, WorkerState::Waiting(_)))
                .map(|(id, _)| *id)
            else {
                break;
            };
            let job = st.queue.pop_front().expect("checked non-empty");
            let slot = st.workers.get_mut(&id).expect("found above");
            if let Some(job) = self.assign(id, slot, job) {
                // That `/next` request went away: requeue, try another.
                st.queue.push_front(job);
            }
        }
        let mut supply = st
            .workers
            .values()
            .filter(|w| matches!(w.state, WorkerState::Starting | WorkerState::Between))
            .count();
        while st.queue.len() > supply && st.workers.len() < self.config.workers {
            let id = st.next_worker;
            st.next_worker += 1;
            match worker::spawn(self, id) {
                Ok(slot) => {
                    st.workers.insert(id, slot);
                    supply += 1;
                }
                Err(message) => {
                    // Not startable (missing bootstrap, bad interpreter):
                    // answer the oldest invocation instead of spinning.
                    let job = st.queue.pop_front().expect("queue longer than supply");
                    let _ = job.reply.send(Invocation::Failed(Failure::InitError {
                        error_type: "Runtime.InvalidEntrypoint".into(),
                        error_message: message,
                    }));
                }
            }
        }
    }

    /// Gives `job` to the worker waiting in `slot`; returns it if the
    /// worker's `/next` request is gone.
    fn assign(self: &Arc<Self>, id: u64, slot: &mut WorkerSlot, job: Job) -> Option<Job> {
        let WorkerState::Waiting(next) = std::mem::replace(&mut slot.state, WorkerState::Between)
        else {
            unreachable!("assign is only called for a waiting worker");
        };
        let timeout = self.timeout();
        let assigned = Assigned {
            request_id: job.request_id.clone(),
            payload: job.payload,
            deadline_ms: now_ms() + timeout.as_millis(),
        };
        if let Err(back) = next.send(assigned) {
            return Some(Job {
                request_id: job.request_id,
                payload: back.payload,
                reply: job.reply,
            });
        }
        let this = Arc::clone(self);
        let request_id = job.request_id.clone();
        let timer = tokio::spawn(async move {
            tokio::time::sleep(timeout).await;
            this.timed_out(id, &request_id);
        })
        .abort_handle();
        slot.state = WorkerState::Busy {
            request_id: job.request_id,
            reply: job.reply,
            timer,
        };
        None
    }

    /// The timeout of `request_id` passed: kill its worker and answer.
    fn timed_out(&self, id: u64, request_id: &str) {
        let mut st = self.lock();
        let Some(slot) = st.workers.get_mut(&id) else {
            return;
        };
        if !matches!(&slot.state, WorkerState::Busy { request_id: r, .. } if r == request_id) {
            return;
        }
        if let WorkerState::Busy { reply, .. } =
            std::mem::replace(&mut slot.state, WorkerState::Killed)
        {
            worker::kill_group(slot.pid);
            let _ = reply.send(Invocation::Failed(Failure::TimedOut {
                after: self.timeout(),
            }));
        }
        // The replacement is spawned when the death is seen (`exited`).
    }

    /// A worker that never asked for work within its init allowance.
    pub fn init_overran(&self, id: u64, allowance: Duration) {
        let mut st = self.lock();
        let Some(slot) = st.workers.get_mut(&id) else {
            return;
        };
        if matches!(slot.state, WorkerState::Starting) {
            slot.init_error = Some((
                "Runtime.InitTimeout".into(),
                format!(
                    "the worker did not ask for work within {}s",
                    allowance.as_secs()
                ),
            ));
            worker::kill_group(slot.pid);
        }
    }

    /// `GET /next` from worker `id`: resolves when it is given an invocation;
    /// `None` when the worker is gone or the host shut down.
    pub async fn next(self: &Arc<Self>, id: u64) -> Option<Assigned> {
        let rx = {
            let mut st = self.lock();
            let slot = st.workers.get_mut(&id)?;
            if matches!(slot.state, WorkerState::Killed) {
                return None;
            }
            let (tx, rx) = oneshot::channel();
            let previous = std::mem::replace(&mut slot.state, WorkerState::Waiting(tx));
            if let WorkerState::Busy { reply, timer, .. } = previous {
                // Asking again without answering: that invocation is lost.
                timer.abort();
                let _ = reply.send(Invocation::Failed(Failure::Crashed {
                    status: "the worker asked for the next invocation without answering".into(),
                }));
            }
            self.pump(&mut st);
            rx
        };
        rx.await.ok()
    }

    /// `/response` or `/error` from worker `id` for `request_id`. `Err` when
    /// that worker does not hold that invocation (late, unknown, foreign).
    pub fn answer(&self, id: u64, request_id: &str, answer: Invocation) -> Result<(), String> {
        let mut st = self.lock();
        let Some(slot) = st.workers.get_mut(&id) else {
            return Err("the worker is no longer known".into());
        };
        match &slot.state {
            WorkerState::Busy { request_id: r, .. } if r == request_id => {}
            _ => {
                return Err(format!(
                    "invocation {request_id:?} is not held by this worker"
                ))
            }
        }
        if let WorkerState::Busy { reply, timer, .. } =
            std::mem::replace(&mut slot.state, WorkerState::Between)
        {
            timer.abort();
            let _ = reply.send(answer);
        }
        Ok(())
    }

    /// `/init/error` from worker `id`; reported when it exits.
    pub fn init_error(&self, id: u64, error_type: String, error_message: String) {
        if let Some(slot) = self.lock().workers.get_mut(&id) {
            slot.init_error = Some((error_type, error_message));
        }
    }

    /// Worker `id` exited (already reaped): fail what it held, or, when it
    /// died initialising, the oldest queued invocation (so a function that
    /// cannot start answers instead of respawning forever); then refill.
    pub fn exited(self: &Arc<Self>, id: u64, status: String) {
        let mut st = self.lock();
        let Some(slot) = st.workers.remove(&id) else {
            return;
        };
        slot.server.abort();
        let failure = match slot.init_error {
            Some((error_type, error_message)) => Failure::InitError {
                error_type,
                error_message,
            },
            None => Failure::Crashed { status },
        };
        match slot.state {
            WorkerState::Busy { reply, timer, .. } => {
                timer.abort();
                let _ = reply.send(Invocation::Failed(failure));
            }
            WorkerState::Starting if !st.closed => {
                if let Some(job) = st.queue.pop_front() {
                    let _ = job.reply.send(Invocation::Failed(failure));
                }
            }
            _ => {}
        }
        self.pump(&mut st);
    }

    /// Kills every worker and fails what is queued or held; resolves when
    /// every worker is reaped.
    pub async fn shutdown(&self) {
        let mut exits = Vec::new();
        {
            let mut st = self.lock();
            st.closed = true;
            let shut = || {
                Invocation::Failed(Failure::Crashed {
                    status: "the function host shut down".into(),
                })
            };
            for job in st.queue.drain(..) {
                let _ = job.reply.send(shut());
            }
            for slot in st.workers.values_mut() {
                if let WorkerState::Busy { reply, timer, .. } =
                    std::mem::replace(&mut slot.state, WorkerState::Killed)
                {
                    timer.abort();
                    let _ = reply.send(shut());
                }
                worker::kill_group(slot.pid);
                slot.server.abort();
                exits.push(slot.exited.clone());
            }
        }
        for mut exited in exits {
            let _ =
                tokio::time::timeout(Duration::from_secs(10), exited.wait_for(|done| *done)).await;
        }
    }
}

impl WorkerSlot {
    pub fn new(pid: u32, server: AbortHandle, exited: watch::Receiver<bool>) -> Self {
        Self {
            pid,
            state: WorkerState::Starting,
            init_error: None,
            server,
            exited,
        }
    }
}
