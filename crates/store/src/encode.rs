//! Encoding shared by the SQL backends: JSON columns, task kinds, and the
//! errors they turn into (a value that will not encode is a backend failure,
//! a stored value that will not decode is corruption).

use sagaflow_core::TaskKind;

use crate::{Error, Result};

pub(crate) fn to_json<T: serde::Serialize>(what: &str, value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| Error::Backend(format!("encoding {what}: {e}")))
}

pub(crate) fn from_json<T: serde::de::DeserializeOwned>(what: &str, text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| Error::Corrupt(format!("{what}: {e}")))
}

pub(crate) fn parse_task(s: &str) -> Result<TaskKind> {
    [TaskKind::Action, TaskKind::Compensation]
        .into_iter()
        .find(|t| t.as_str() == s)
        .ok_or_else(|| Error::Corrupt(format!("unknown timer task kind `{s}`")))
}

pub(crate) fn not_found(id: &str) -> Error {
    Error::NotFound {
        what: "execution",
        id: id.to_string(),
    }
}
