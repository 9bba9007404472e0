//! What the core and the runtime exchange, whatever the program: the
//! inputs that ask for a decision ([`Input`]), the context a decision may
//! read ([`Ctx`]), the effects applying an event calls for ([`Effect`]), the
//! participant call a task makes ([`Request`]) and callback task tokens.
//!
//! Every interpreter (sagas, ASL, and the next one) and the envelope that
//! holds them speak this vocabulary; it imports none of them.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::event::{ErrorInfo, Event, Millis, Status, TaskKind};

/// Who performs a task.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Participant {
    /// POST JSON to a URL; `${VAR}` placeholders are filled from configuration.
    Http {
        url: String,
        headers: BTreeMap<String, String>,
    },
    /// An in-process Rust handler registered with the runtime under this name.
    Handler { name: String },
    /// A Step Functions activity (`arn:aws:states:REGION:ACCOUNT:activity:NAME`):
    /// the call puts the task on the activity's queue, where a worker takes
    /// it (GetActivityTask) and answers its token. Always a callback task.
    Activity { arn: String },
}

/// The activity an activity ARN names (`arn:aws:states:REGION:ACCOUNT:activity:NAME`),
/// `None` when it is not one. Names use AWS's rules (1 to 80 characters, no
/// white space, brackets, wildcards, control characters or any of ``"#%\^|~`$&,;:/``).
pub fn activity_name(arn: &str) -> Option<&str> {
    match arn.split(':').collect::<Vec<_>>().as_slice() {
        ["arn", partition, "states", _, _, "activity", name]
            if !partition.is_empty() && activity_name_ok(name) =>
        {
            Some(name)
        }
        _ => None,
    }
}

/// Whether `name` is a valid activity name.
pub fn activity_name_ok(name: &str) -> bool {
    (1..=80).contains(&name.chars().count())
        && !name.chars().any(|c| {
            c.is_whitespace()
                || c.is_control()
                || ('\u{7f}'..='\u{9f}').contains(&c)
                || ('\u{fffe}'..='\u{ffff}').contains(&c)
                || "<>{}[]?*\"#%\\^|~`$&,;:/".contains(c)
        })
}

/// What the outside world supplies to a decision: the time and one random number.
#[derive(Debug, Clone, Copy)]
pub struct Ctx {
    pub now: Millis,
    /// Uniform in [0, 1); used for retry jitter and recorded through `fire_at`.
    pub random: f64,
    /// Random bits for callback token nonces, recorded in the scheduling event.
    pub entropy: u64,
}

/// Something that happened outside the state machine and needs a decision.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    Start {
        execution_id: String,
        definition: String,
        version: u32,
        input: Value,
    },
    TaskSucceeded {
        step: String,
        task: TaskKind,
        attempt: u32,
        output: Value,
    },
    TaskFailed {
        step: String,
        task: TaskKind,
        attempt: u32,
        error: ErrorInfo,
    },
    /// A retry is due, or (for a running attempt) its deadline has come.
    TimerFired {
        step: String,
        task: TaskKind,
        attempt: u32,
    },
    /// A callback task's participant acknowledged the attempt.
    TaskParked {
        step: String,
        task: TaskKind,
        attempt: u32,
    },
    /// A parked callback task heard no heartbeat for `silence_ms`: the
    /// program names the failure (ASL: `States.HeartbeatTimeout`).
    HeartbeatStopped {
        step: String,
        task: TaskKind,
        attempt: u32,
        silence_ms: u64,
    },
    Cancel {
        reason: String,
    },
    Redrive,
    /// The execution's deadline (start + the definition's `timeout`) passed.
    DeadlinePassed,
    /// What only a durable function's execution takes: a checkpoint, an
    /// invocation's or a chained invoke's end, a callback.
    Durable(crate::durable::Input),
    /// What only an ASL execution takes: `UpdateMapRun` of one of its map runs.
    UpdateMapRun(crate::asl::run::MapRunUpdate),
}

/// What applying an event asks the runtime to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Call the participant of `step`'s `task`; give up at `deadline`.
    Invoke {
        step: String,
        task: TaskKind,
        attempt: u32,
        deadline: Millis,
    },
    /// Deliver [`Input::TimerFired`] at `fire_at`.
    StartTimer {
        step: String,
        task: TaskKind,
        attempt: u32,
        fire_at: Millis,
    },
    /// Deliver [`Input::DeadlinePassed`] at `at`.
    Deadline { at: Millis },
    /// The execution reached a terminal status.
    Finished { status: Status },
    /// What only a durable function's execution asks for: invoke the
    /// function, call a chained invoke's target.
    Durable(crate::durable::Effect),
}

/// Everything an invoker needs for one participant call.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Request {
    pub execution_id: String,
    pub step: String,
    pub task: TaskKind,
    pub attempt: u32,
    pub participant: Participant,
    pub input: Value,
    /// Stable per execution, step and task kind: not per attempt, not per process.
    pub idempotency_key: String,
    pub deadline: Millis,
    /// For a callback task: the token that completes it (see [`task_token`]).
    pub task_token: Option<String>,
    /// For a callback task: the longest silence allowed between heartbeats.
    pub heartbeat_ms: Option<u64>,
}

/// The token of a callback task attempt: the hex of
/// `{execution}\n{step}\n{task}\n{attempt}` (which routes it, URL-safe)
/// and, after a dot, the nonce recorded when the attempt was scheduled (which
/// makes it unguessable). The same token is handed out after a restart.
pub fn task_token(
    execution_id: &str,
    step: &str,
    task: TaskKind,
    attempt: u32,
    nonce: &str,
) -> String {
    let route = crate::document::hex(
        format!("{execution_id}\n{step}\n{}\n{attempt}", task.as_str()).as_bytes(),
    );
    format!("{route}.{nonce}")
}

/// A token made by [`task_token`], taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskToken {
    pub execution_id: String,
    pub step: String,
    pub task: TaskKind,
    pub attempt: u32,
    pub nonce: String,
}

/// Why a callback token cannot complete its task now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallbackRefused {
    /// The task is not waiting for this attempt's callback (any more).
    NotWaiting,
    /// The token's nonce is not the one recorded for the attempt.
    WrongNonce,
}

/// Reads a token made by [`task_token`]; `None` if it is not one.
pub fn parse_task_token(token: &str) -> Option<TaskToken> {
    let (route, nonce) = token.split_once('.')?;
    if !route.len().is_multiple_of(2) || route.len() > 2048 || nonce.is_empty() {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..route.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(route.get(i..i + 2)?, 16).ok())
        .collect();
    let text = String::from_utf8(bytes?).ok()?;
    let mut parts = text.split('\n');
    let (ex, step, task, attempt) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let task = match task {
        "action" => TaskKind::Action,
        "compensation" => TaskKind::Compensation,
        _ => return None,
    };
    Some(TaskToken {
        execution_id: ex.to_string(),
        step: step.to_string(),
        task,
        attempt: attempt.parse().ok()?,
        nonce: nonce.to_string(),
    })
}

/// The outcome of a decision taken in place: the events now applied to the
/// state, and the effects they call for.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    pub events: Vec<Event>,
    pub effects: Vec<Effect>,
}

/// A callback nonce: the runtime's entropy mixed with a salt that tells
/// apart the tasks and attempts one decision schedules.
pub(crate) fn nonce(entropy: u64, salt: u64) -> String {
    format!("{:016x}", splitmix64(entropy ^ salt))
}

/// A bijective mixer: turns the runtime's entropy into well-spread nonce bits.
fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
