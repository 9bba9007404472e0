//! How the names that identify a call are built: idempotency keys and the
//! instance keys of ASL states.
//!
//! A participant that deduplicates by `Idempotency-Key` returns its stored
//! answer for any call that repeats a key, so two distinct calls must never
//! share one. The key is `{execution}:{step}:{task}` and it is unambiguous
//! because the `step` part never contains `:` — saga step names are
//! validated to `[A-Za-z0-9_-]`, and ASL instance keys escape every state
//! name (see [`escape_state_name`]) — while `task` is `action` or
//! `compensation`. Splitting at the last two colons therefore gives back the
//! execution id (which may contain `:`), the step and the task.
//!
//! ASL instance keys (`Par[1]/Charge#2`) are built from state names, which
//! may contain any character. Executions started since key scheme
//! [`KeyScheme::Escaped`] percent-encode the characters that carry structure
//! (`%`, `#`, `/`, `[`, `]`, `@`, `:`) and control characters, so a state
//! named `A#2` and the second entry into `A` get different keys. Executions
//! started before keep [`KeyScheme::Legacy`] (recorded by the absence of
//! `keys` in `execution_started`): their in-flight calls repeat with the keys
//! they were first sent with. Names without those characters — nearly every
//! real machine — get the same key under both schemes.

use serde::{Deserialize, Serialize};

use crate::event::TaskKind;

/// How an execution builds its ASL instance keys; recorded when it starts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyScheme {
    /// Before escaping: state names used as they are (ambiguous for names
    /// with `#`, `/`, `[`, `]`, `@` or `:`). Only replayed, never chosen.
    #[default]
    Legacy,
    /// State names percent-encoded in instance keys.
    Escaped,
}

impl KeyScheme {
    /// The scheme of executions started now.
    pub const CURRENT: KeyScheme = KeyScheme::Escaped;

    pub fn is_legacy(&self) -> bool {
        *self == KeyScheme::Legacy
    }
}

/// The `Idempotency-Key` of every attempt of one task. `step` must not
/// contain `:` (true of saga step names and escaped instance keys).
pub fn idempotency_key(execution_id: &str, step: &str, task: TaskKind) -> String {
    format!("{execution_id}:{step}:{}", task.as_str())
}

/// The `Idempotency-Key` of a durable execution's chained invoke to a
/// participant: `{execution}:{operation Id}`, the same for every attempt
/// and for the call made again after a restart. The SDK's operation ids
/// are hex digests, so they never contain `:`.
pub fn chained_invoke_key(execution: &str, operation_id: &str) -> String {
    format!("{execution}:{operation_id}")
}

/// A state name as it appears in instance keys under `scheme`.
pub fn escape_state_name(name: &str, scheme: KeyScheme) -> std::borrow::Cow<'_, str> {
    let reserved = |c: char| matches!(c, '%' | '#' | '/' | '[' | ']' | '@' | ':') || c.is_control();
    if scheme.is_legacy() || !name.contains(reserved) {
        return std::borrow::Cow::Borrowed(name);
    }
    let mut out = String::with_capacity(name.len() + 8);
    for c in name.chars() {
        if reserved(c) {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_without_structure_characters_are_kept_as_they_are() {
        assert_eq!(
            escape_state_name("Reserve Hotel", KeyScheme::Escaped),
            "Reserve Hotel"
        );
        assert_eq!(escape_state_name("A#2", KeyScheme::Legacy), "A#2");
    }

    #[test]
    fn structure_characters_are_percent_encoded() {
        assert_eq!(
            escape_state_name("A#2/[x]@y:z%\n", KeyScheme::Escaped),
            "A%232%2F%5Bx%5D%40y%3Az%25%0A"
        );
    }
}
