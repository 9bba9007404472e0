//! Retry policies: how many attempts, how long to wait between them, and which
//! error names are worth retrying.

use serde::{Deserialize, Serialize};

use crate::error_name::{
    ALL, OUTPUT_INVALID, OUTPUT_TOO_LARGE, PARTICIPANT_SATURATED, RESERVED_ERROR_NAME,
    RESPONSE_LOST, RUNTIME, SAGAFLOW_PREFIX, STATES_PREFIX, TASK_FAILED, TIMEOUT,
};

/// Whether an error leaves the task's outcome unknown: its effect may have
/// happened, so a step that ends this way is compensated on rollback (and a
/// pivot that ends this way stops as `failed` instead of rolling back).
pub fn is_ambiguous(error: &str) -> bool {
    matches!(
        error,
        TIMEOUT | RESPONSE_LOST | OUTPUT_TOO_LARGE | OUTPUT_INVALID
    )
}

/// Whether an error name is in a namespace the engine names its own
/// outcomes in (`States.*`, `Sagaflow.*`).
pub fn is_reserved(error: &str) -> bool {
    error.starts_with(STATES_PREFIX) || error.starts_with(SAGAFLOW_PREFIX)
}

/// The error a participant reported (a 4xx body, a callback failure),
/// as recorded. A reserved name would pass for the engine's own outcome
/// (a participant's `States.Timeout` would be taken as ambiguous and
/// compensated, its `States.Runtime` would escape `States.ALL`), so it is
/// recorded as [`RESERVED_ERROR_NAME`] with the original name in the cause.
pub fn participant_error(error: &str, cause: &str) -> crate::ErrorInfo {
    if is_reserved(error) {
        crate::ErrorInfo::new(
            RESERVED_ERROR_NAME,
            format!("the participant answered with the reserved error name `{error}`: {cause}"),
        )
    } else {
        crate::ErrorInfo::new(error, cause)
    }
}

/// A retry policy. `max_attempts: None` means unbounded (used for compensations
/// and for retriable steps after the pivot).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetryPolicy {
    pub max_attempts: Option<u32>,
    pub initial_delay_ms: u64,
    pub multiplier: f64,
    pub max_delay_ms: u64,
    /// Fraction of each delay (0.0–1.0) that is randomised away.
    pub jitter: f64,
    /// Error names that are retried; `States.ALL` matches all but `States.Runtime`.
    pub retry_on: Vec<String>,
}

impl RetryPolicy {
    /// Default for steps before (and including) the pivot: a few attempts on
    /// transient errors; a business error (4xx) fails the step at once.
    pub fn forward_default() -> Self {
        RetryPolicy {
            max_attempts: Some(3),
            initial_delay_ms: 100,
            multiplier: 2.0,
            max_delay_ms: 5_000,
            jitter: 0.2,
            retry_on: vec![
                TASK_FAILED.into(),
                TIMEOUT.into(),
                RESPONSE_LOST.into(),
                PARTICIPANT_SATURATED.into(),
            ],
        }
    }

    /// Default for compensations and retriable steps: retry every error,
    /// without bound, with a capped delay.
    pub fn until_success_default() -> Self {
        RetryPolicy {
            max_attempts: None,
            initial_delay_ms: 100,
            multiplier: 2.0,
            max_delay_ms: 5_000,
            jitter: 0.2,
            retry_on: vec![ALL.into()],
        }
    }

    /// Whether an error with this name is retried by the policy.
    pub fn retries(&self, error: &str) -> bool {
        if error == RUNTIME {
            return false;
        }
        self.retry_on.iter().any(|e| e == ALL || e == error)
    }

    /// Whether another attempt is allowed after `attempts_used` attempts.
    pub fn has_attempts_left(&self, attempts_used: u32) -> bool {
        self.max_attempts.is_none_or(|max| attempts_used < max)
    }

    /// Delay before attempt number `attempts_used + 1`; `random` in [0, 1)
    /// is supplied by the caller and recorded, so the core stays deterministic.
    pub fn delay_ms(&self, attempts_used: u32, random: f64) -> u64 {
        let exp = attempts_used.saturating_sub(1).min(64) as i32;
        let base = (self.initial_delay_ms as f64) * self.multiplier.powi(exp);
        let capped = base.min(self.max_delay_ms as f64);
        let r = random.clamp(0.0, 1.0);
        (capped - capped * self.jitter * r).max(0.0) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_by_the_multiplier_and_stop_at_the_cap() {
        let p = RetryPolicy {
            jitter: 0.0,
            ..RetryPolicy::forward_default()
        };
        assert_eq!(p.delay_ms(1, 0.5), 100);
        assert_eq!(p.delay_ms(2, 0.5), 200);
        assert_eq!(p.delay_ms(3, 0.5), 400);
        assert_eq!(p.delay_ms(30, 0.5), 5_000);
    }

    #[test]
    fn jitter_only_ever_shortens_a_delay_by_its_fraction() {
        let p = RetryPolicy::forward_default();
        assert_eq!(p.delay_ms(1, 0.0), 100);
        assert_eq!(p.delay_ms(1, 0.999_999), 80);
    }

    #[test]
    fn states_all_matches_everything_but_runtime_errors() {
        let p = RetryPolicy::until_success_default();
        assert!(p.retries("HotelFull"));
        assert!(!p.retries(RUNTIME));
        assert!(!RetryPolicy::forward_default().retries("HotelFull"));
    }

    #[test]
    fn an_unstorable_answer_is_ambiguous_and_a_saturated_bulkhead_is_not() {
        assert!(is_ambiguous(OUTPUT_TOO_LARGE));
        assert!(is_ambiguous(OUTPUT_INVALID));
        assert!(!is_ambiguous(PARTICIPANT_SATURATED));
        let p = RetryPolicy::forward_default();
        assert!(p.retries(PARTICIPANT_SATURATED));
        assert!(!p.retries(OUTPUT_TOO_LARGE));
    }

    #[test]
    fn a_participant_error_with_an_engine_name_is_recorded_under_a_reserved_name() {
        for name in [
            TIMEOUT,
            RESPONSE_LOST,
            RUNTIME,
            "States.TaskFailed",
            "Sagaflow.Anything",
        ] {
            let e = participant_error(name, "because");
            assert_eq!(e.error, RESERVED_ERROR_NAME);
            assert!(
                e.cause.contains(name) && e.cause.ends_with("because"),
                "{}",
                e.cause
            );
        }
        assert_eq!(
            participant_error("HotelFull", "x"),
            crate::ErrorInfo::new("HotelFull", "x")
        );
        assert_eq!(participant_error("StatesFull", "x").error, "StatesFull");
    }
}
