//! Checkpoint tokens and the checkpoint exchange of one invocation
//! ([`Invocations`]).
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
//! [`Invocations`] is a fold of recorded facts ([`InvocationEvent`]): an
//! invocation started (its number and nonce), a checkpoint accepted (the
//! new sequence and, for `ClientToken` replay, its answer), an invocation
//! completed, the tokens revoked. The decisions ([`Invocations::start`],
//! [`Invocations::checkpoint`], [`Invocations::complete`],
//! [`Invocations::recover`], [`Invocations::revoke`]) change nothing and
//! return the facts; [`Invocations::apply`] folds them, live and in
//! replay, so a token is valid or invalid by the recorded history, after
//! a restart too. Never two invocations of one execution at once: a start
//! while one is open is refused. After a crash, an invocation recorded as
//! started but not completed is closed with `Sagaflow.InvocationLost`.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::model::{Operation, OperationUpdate};
use super::operations::{mix, Applied, Operations, Refusal};
use crate::error_name;
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
    /// Decided now: record `applied.events` and `accepted` (the
    /// [`InvocationEvent::CheckpointAccepted`] that carries `reply`), fold
    /// them, arm the timers, then send `reply`.
    Decided {
        applied: Applied,
        accepted: Box<InvocationEvent>,
        reply: CheckpointReply,
    },
    /// A retry of a checkpoint already decided (same `ClientToken`): send
    /// the same reply again; nothing to record.
    Replayed(CheckpointReply),
}

/// How an invocation ended, as the `Invoke` answer (or its absence) said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum InvocationOutcome {
    /// The function returned `PENDING`: it waits for an operation.
    Pending,
    Succeeded,
    Failed,
    /// The invocation itself failed (a crash, a timeout, a lost process).
    Error {
        error_type: String,
        error_message: String,
    },
}

/// The facts of the invocation loop, recorded with the execution's other
/// facts and folded by [`Invocations::apply`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum InvocationEvent {
    /// Invocation `number` began; `nonce` is in all of its tokens.
    InvocationStarted { number: u32, nonce: u64, at: Millis },
    /// A checkpoint of invocation `number` was accepted: its latest token
    /// is now at `sequence` (unless `ends_tokens`: the answer ended the
    /// execution and no token is valid any more). `client_token`, if any,
    /// with the token it came with (`sent_with`), gets `reply` again.
    CheckpointAccepted {
        number: u32,
        sequence: u32,
        ends_tokens: bool,
        client_token: Option<String>,
        sent_with: String,
        reply: CheckpointReply,
    },
    /// Invocation `number` ended: its tokens are invalid from now on.
    InvocationCompleted {
        number: u32,
        outcome: InvocationOutcome,
        at: Millis,
    },
    /// The execution ended outside a checkpoint (timed out, stopped): no
    /// token is valid and no invocation starts any more.
    TokensRevoked { at: Millis },
    /// Sagaflow's cancel (not AWS's stop) asked the code to give up and
    /// compensate; it reaches the code when it next waits on the service
    /// ([`super::Operations::cancel_waiting`]).
    CancelRequested { reason: String, at: Millis },
    /// The requested cancel ended what the code waited on: the code, invoked
    /// again, sees those operations fail.
    CancelDelivered { at: Millis },
}

/// The invocation loop of one execution, as folded from its
/// [`InvocationEvent`]s: the current invocation (if one is open), its
/// latest token and the answers given so far by `ClientToken`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Invocations {
    execution: String,
    /// The number of the last invocation started (0: none yet).
    last: u32,
    /// The latest token of the open invocation; `None` between invocations.
    latest: Option<CheckpointToken>,
    /// No token is valid and no invocation starts any more.
    ended: bool,
    replies: BTreeMap<String, (String, CheckpointReply)>,
    /// Each completed invocation's outcome, by number.
    outcomes: BTreeMap<u32, InvocationOutcome>,
}

fn refusal(code: &'static str, message: impl Into<String>) -> Refusal {
    Refusal::new(code, message)
}

impl Invocations {
    /// No invocation yet of `execution`.
    pub fn new(execution: impl Into<String>) -> Invocations {
        Invocations {
            execution: execution.into(),
            ..Invocations::default()
        }
    }

    /// The token to hand out now (the invocation event's, at first), if an
    /// invocation is open.
    pub fn token(&self) -> Option<&CheckpointToken> {
        self.latest.as_ref().filter(|_| !self.ended)
    }

    /// The number of the open invocation, if any.
    pub fn current(&self) -> Option<u32> {
        self.latest.as_ref().map(|t| t.invocation)
    }

    /// The number of the last invocation started (0: none yet).
    pub fn last(&self) -> u32 {
        self.last
    }

    /// Whether every token is revoked for good (the execution ended).
    pub fn is_revoked(&self) -> bool {
        self.ended
    }

    /// The answer already given to `client_token` (sent with `token`) by
    /// the open invocation, if any: what a retried checkpoint gets again.
    pub fn reply_to(&self, client_token: &str, token: &str) -> Option<&CheckpointReply> {
        self.replies
            .get(client_token)
            .filter(|(sent_with, _)| sent_with == token)
            .map(|(_, reply)| reply)
    }

    /// How invocation `number` ended, once it has.
    pub fn outcome(&self, number: u32) -> Option<&InvocationOutcome> {
        self.outcomes.get(&number)
    }

    /// The next invocation begins, `entropy` its nonce: refused while one
    /// is open (never two invocations of one execution at once) or once
    /// the tokens are revoked.
    pub fn start(&self, entropy: u64, at: Millis) -> Result<InvocationEvent, Refusal> {
        if self.ended {
            return Err(refusal(
                "execution_ended",
                "The execution has ended: no invocation starts.",
            ));
        }
        if let Some(open) = self.current() {
            return Err(refusal(
                "invocation_open",
                format!("Invocation {open} is still open: never two invocations at once."),
            ));
        }
        Ok(InvocationEvent::InvocationStarted {
            number: self.last.saturating_add(1),
            nonce: entropy,
            at,
        })
    }

    /// The open invocation ended with `outcome`.
    pub fn complete(
        &self,
        outcome: InvocationOutcome,
        at: Millis,
    ) -> Result<InvocationEvent, Refusal> {
        let number = self
            .current()
            .ok_or_else(|| refusal("no_invocation", "No invocation is open."))?;
        Ok(InvocationEvent::InvocationCompleted {
            number,
            outcome,
            at,
        })
    }

    /// After a restart: an invocation recorded as started but not completed
    /// is lost; its fact closes it with `Sagaflow.InvocationLost`.
    pub fn recover(&self, at: Millis) -> Option<InvocationEvent> {
        let number = self.current()?;
        Some(InvocationEvent::InvocationCompleted {
            number,
            outcome: InvocationOutcome::Error {
                error_type: error_name::INVOCATION_LOST.to_string(),
                error_message: format!(
                    "Invocation {number} was running when the service restarted."
                ),
            },
            at,
        })
    }

    /// The execution ended outside a checkpoint: every token is revoked.
    pub fn revoke(&self, at: Millis) -> InvocationEvent {
        InvocationEvent::TokensRevoked { at }
    }

    /// Refuses any token that is not the latest of the open invocation.
    pub fn check_token(&self, token: &str) -> Result<(), Refusal> {
        self.valid(token).map(|_| ())
    }

    /// The latest token, if `token` is it.
    fn valid(&self, token: &str) -> Result<&CheckpointToken, Refusal> {
        match self.token() {
            Some(latest) if CheckpointToken::parse(token).as_ref() == Some(latest) => Ok(latest),
            _ => Err(refusal(
                "invalid_checkpoint_token",
                format!("{INVALID_TOKEN}: it is not the latest token of the current invocation."),
            )),
        }
    }

    /// One `CheckpointDurableExecution` call: a retry (a `ClientToken` seen
    /// before, with the token it came with) gets the same answer; otherwise
    /// the token must be the latest and the updates are decided against
    /// `operations`. Nothing changes: the caller records and folds the facts.
    pub fn checkpoint(
        &self,
        operations: &Operations,
        token: &str,
        client_token: Option<&str>,
        updates: &[OperationUpdate],
        now: Millis,
        entropy: u64,
    ) -> Result<Checkpoint, Refusal> {
        self.checkpoint_resolving(
            operations,
            token,
            client_token,
            updates,
            now,
            entropy,
            &|_, _| None,
        )
    }

    /// [`Self::checkpoint`], failing each chained invoke it starts whose
    /// target `unresolvable` says cannot be called, in the same answer
    /// (see [`Operations::apply_checkpoint_resolving`]).
    #[allow(clippy::too_many_arguments)]
    pub fn checkpoint_resolving(
        &self,
        operations: &Operations,
        token: &str,
        client_token: Option<&str>,
        updates: &[OperationUpdate],
        now: Millis,
        entropy: u64,
        unresolvable: &super::operations::Unresolvable<'_>,
    ) -> Result<Checkpoint, Refusal> {
        if let Some((sent_with, reply)) = client_token.and_then(|c| self.replies.get(c)) {
            if sent_with == token {
                return Ok(Checkpoint::Replayed(reply.clone()));
            }
        }
        let latest = self.valid(token)?.clone();
        if operations.is_ended() {
            // Timed out or stopped before its token was revoked: refused
            // as a revoked token, so the SDK gives up this invocation.
            return Err(refusal(
                "invalid_checkpoint_token",
                format!("{INVALID_TOKEN}: the execution has ended."),
            ));
        }
        let applied =
            operations.apply_checkpoint_resolving(updates, now, mix(entropy), unresolvable)?;
        let sequence = latest.sequence.saturating_add(1);
        let checkpoint_token = (!applied.execution_ended).then(|| {
            CheckpointToken {
                sequence,
                ..latest.clone()
            }
            .encode()
        });
        let reply = CheckpointReply {
            checkpoint_token,
            new_execution_state: NewExecutionState {
                operations: applied.operations.clone(),
                next_marker: None,
            },
        };
        let accepted = Box::new(InvocationEvent::CheckpointAccepted {
            number: latest.invocation,
            sequence,
            ends_tokens: applied.execution_ended,
            client_token: client_token.map(str::to_string),
            sent_with: token.to_string(),
            reply: reply.clone(),
        });
        Ok(Checkpoint::Decided {
            applied,
            accepted,
            reply,
        })
    }

    /// Folds one recorded fact in: the only way the invocation loop
    /// changes, live and in replay. A fact the state does not allow is an
    /// `IllegalTransition` and changes nothing.
    pub fn apply(&mut self, event: &InvocationEvent) -> Result<(), crate::Error> {
        use InvocationEvent as E;
        let illegal = |state: &Invocations| crate::Error::IllegalTransition {
            event: format!("{event:?}"),
            state: format!(
                "invocation {:?} open, last {}, ended {}",
                state.current(),
                state.last,
                state.ended
            ),
        };
        match event {
            E::InvocationStarted { number, nonce, .. } => {
                if self.ended || self.latest.is_some() || *number != self.last.saturating_add(1) {
                    return Err(illegal(self));
                }
                self.last = *number;
                self.latest = Some(CheckpointToken {
                    execution: self.execution.clone(),
                    invocation: *number,
                    sequence: 0,
                    nonce: *nonce,
                });
                self.replies.clear();
            }
            E::CheckpointAccepted {
                number,
                sequence,
                ends_tokens,
                client_token,
                sent_with,
                reply,
            } => {
                let Some(latest) = self.latest.as_mut().filter(|t| t.invocation == *number) else {
                    return Err(illegal(self));
                };
                latest.sequence = *sequence;
                if *ends_tokens {
                    self.ended = true;
                }
                if let Some(c) = client_token {
                    self.replies
                        .insert(c.clone(), (sent_with.clone(), reply.clone()));
                }
            }
            E::InvocationCompleted {
                number, outcome, ..
            } => {
                if self.current() != Some(*number) {
                    return Err(illegal(self));
                }
                self.latest = None;
                self.replies.clear();
                self.outcomes.insert(*number, outcome.clone());
            }
            E::TokensRevoked { .. } => self.ended = true,
            // The program's (Run), not the token loop's.
            E::CancelRequested { .. } | E::CancelDelivered { .. } => {}
        }
        Ok(())
    }
}
