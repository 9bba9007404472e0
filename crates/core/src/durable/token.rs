//! Checkpoint tokens and the checkpoint exchange of one invocation
//! ([`Invocation`]).
//!
//! Each invocation of a durable execution gets a token (sequence 0); each
//! accepted checkpoint answers with the next one. Only the latest token of
//! the current invocation is valid: any other (an older one, one of an
//! earlier invocation or of a dead process, one after the execution ended)
//! is refused with a message starting `Invalid checkpoint token`, the
//! prefix on which the SDK retries the invocation instead of failing the
//! execution. A token's nonce comes from the caller's entropy, drawn once
//! per invocation, so tokens cannot be forged from the execution id.
//!
//! A retried checkpoint carries the same `ClientToken` (botocore fills one
//! in and keeps it across retries): the invocation remembers each
//! `ClientToken`'s answer, new token included, and gives it again.
//!
//! Tokens fit AWS's pattern `[A-Za-z0-9+/]+={0,2}` (standard base64).
//!
//! An [`Invocation`] is plain data the caller keeps. Tokens must stay valid
//! or invalid across a restart by stored state, not process memory, so the
//! runtime that hosts this will have to record what it holds (the
//! invocation's number and nonce when it starts, the sequence with each
//! accepted checkpoint); that wiring is not done yet.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::model::{Operation, OperationUpdate};
use super::operations::{mix, Applied, Operations, Refusal};
use crate::event::Millis;

/// The prefix of every token refusal (the SDK retries on it).
pub const INVALID_TOKEN: &str = "Invalid checkpoint token";

/// A checkpoint token: which execution, which invocation, which answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointToken {
    pub execution: String,
    pub invocation: u32,
    pub sequence: u32,
    pub nonce: u64,
}

impl CheckpointToken {
    /// The token as sent: standard base64 of its fields.
    pub fn encode(&self) -> String {
        let raw = format!(
            "1\n{}\n{}\n{:016x}\n{}",
            self.invocation, self.sequence, self.nonce, self.execution
        );
        base64::engine::general_purpose::STANDARD.encode(raw)
    }

    /// Reads a token back; `None` if it is not one of ours.
    pub fn parse(text: &str) -> Option<CheckpointToken> {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(text)
            .ok()?;
        let raw = String::from_utf8(raw).ok()?;
        let mut parts = raw.splitn(5, '\n');
        if parts.next()? != "1" {
            return None;
        }
        let invocation = parts.next()?.parse().ok()?;
        let sequence = parts.next()?.parse().ok()?;
        let nonce = u64::from_str_radix(parts.next()?, 16).ok()?;
        let execution = parts.next()?.to_string();
        Some(CheckpointToken {
            execution,
            invocation,
            sequence,
            nonce,
        })
    }
}

/// The answer to a checkpoint, as `CheckpointDurableExecution` returns it:
/// the next token (none once the execution ended) and the operations it
/// touched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CheckpointReply {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_token: Option<String>,
    pub new_execution_state: NewExecutionState,
}

/// `CheckpointUpdatedExecutionState`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NewExecutionState {
    pub operations: Vec<Operation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_marker: Option<String>,
}

/// What a checkpoint call comes to.
#[derive(Debug, Clone, PartialEq)]
pub enum Checkpoint {
    /// Decided now: record `applied.events`, fold them, arm the timers,
    /// then send `reply`.
    Decided {
        applied: Applied,
        reply: CheckpointReply,
    },
    /// A retry of a checkpoint already decided (same `ClientToken`): send
    /// the same reply again; nothing to record.
    Replayed(CheckpointReply),
}

/// The checkpoint exchange of the current invocation of one execution:
/// its latest token and the answers given so far by `ClientToken`.
/// Serializable, so its host can store it with the execution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Invocation {
    latest: CheckpointToken,
    /// No token is valid any more (the execution ended, or it was revoked).
    closed: bool,
    replies: BTreeMap<String, (String, CheckpointReply)>,
}

impl Invocation {
    /// Invocation `number` of `execution` begins; `entropy` is the nonce of
    /// all its tokens. Every token of earlier invocations is now invalid.
    pub fn begin(execution: impl Into<String>, number: u32, entropy: u64) -> Invocation {
        Invocation {
            latest: CheckpointToken {
                execution: execution.into(),
                invocation: number,
                sequence: 0,
                nonce: entropy,
            },
            closed: false,
            replies: BTreeMap::new(),
        }
    }

    /// The token to hand out now (the invocation event's, at first).
    pub fn token(&self) -> &CheckpointToken {
        &self.latest
    }

    /// Revokes every token: the next checkpoint is refused.
    pub fn revoke(&mut self) {
        self.closed = true;
    }

    /// Refuses any token that is not the latest of this invocation.
    pub fn check_token(&self, token: &str) -> Result<(), Refusal> {
        let valid = !self.closed && CheckpointToken::parse(token).as_ref() == Some(&self.latest);
        if valid {
            Ok(())
        } else {
            Err(Refusal::new(
                "invalid_checkpoint_token",
                format!("{INVALID_TOKEN}: it is not the latest token of the current invocation."),
            ))
        }
    }

    /// One `CheckpointDurableExecution` call: a retry (a `ClientToken` seen
    /// before, with the token it came with) gets the same answer; otherwise
    /// the token must be the latest and the updates are decided against
    /// `operations` (which the caller then changes by folding the facts).
    pub fn checkpoint(
        &mut self,
        operations: &Operations,
        token: &str,
        client_token: Option<&str>,
        updates: &[OperationUpdate],
        now: Millis,
        entropy: u64,
    ) -> Result<Checkpoint, Refusal> {
        if let Some((sent_with, reply)) = client_token.and_then(|c| self.replies.get(c)) {
            if sent_with == token {
                return Ok(Checkpoint::Replayed(reply.clone()));
            }
        }
        self.check_token(token)?;
        let applied = operations.apply_checkpoint(updates, now, mix(entropy))?;
        let checkpoint_token = if applied.execution_ended {
            self.closed = true;
            None
        } else {
            self.latest.sequence = self.latest.sequence.saturating_add(1);
            Some(self.latest.encode())
        };
        let reply = CheckpointReply {
            checkpoint_token,
            new_execution_state: NewExecutionState {
                operations: applied.operations.clone(),
                next_marker: None,
            },
        };
        if let Some(c) = client_token {
            self.replies
                .insert(c.to_string(), (token.to_string(), reply.clone()));
        }
        Ok(Checkpoint::Decided { applied, reply })
    }
}
