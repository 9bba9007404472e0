//! How hard a saga tries: the backoff and attempt limit of its
//! compensations, and of its forward actions after the pivot.

use std::time::Duration;

/// Exponential backoff between attempts. The durable service counts in
/// whole seconds: a delay is rounded up to one second at least.
#[derive(Debug, Clone, PartialEq)]
pub struct Backoff {
    /// The delay after the first failed attempt.
    pub initial: Duration,
    /// The factor applied to the delay after each further failure.
    pub multiplier: f64,
    /// The longest delay.
    pub max: Duration,
}

impl Backoff {
    /// The delay after failed attempt `attempt` (1-based).
    #[must_use]
    pub fn delay(&self, attempt: u32) -> Duration {
        let exponent = i32::try_from(attempt.saturating_sub(1)).unwrap_or(i32::MAX);
        let secs = self.initial.as_secs_f64() * self.multiplier.powi(exponent);
        Duration::from_secs_f64(secs.min(self.max.as_secs_f64()).max(0.0))
    }
}

impl Default for Backoff {
    /// 1 s, doubling, at most 60 s.
    fn default() -> Self {
        Backoff {
            initial: Duration::from_secs(1),
            multiplier: 2.0,
            max: Duration::from_secs(60),
        }
    }
}

/// A saga's retry policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// The backoff between the attempts of one compensation.
    pub compensation: Backoff,
    /// How many times a compensation is attempted before the saga gives up
    /// and ends `failed`, naming it (at least 1).
    pub compensation_attempts: u32,
    /// The backoff between the attempts of an action after the pivot.
    pub forward: Backoff,
    /// How many times an action after the pivot is attempted before the
    /// saga ends `failed`; `None`: until it succeeds.
    pub forward_attempts: Option<u32>,
}

impl Default for Policy {
    /// Compensations: 20 attempts, 1 s doubling to 60 s (about a quarter
    /// of an hour). Forward actions: until they succeed, same backoff.
    fn default() -> Self {
        Policy {
            compensation: Backoff::default(),
            compensation_attempts: 20,
            forward: Backoff::default(),
            forward_attempts: None,
        }
    }
}
