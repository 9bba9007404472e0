//! `${VAR}` placeholders of participant URLs and headers, and the secrets
//! among them.
//!
//! Definitions keep their placeholders (what is stored and returned by the
//! API is the text as deployed); values are filled only when a call is
//! made. A *secret* is filled like any variable but must never be seen
//! again: its value is kept in a [`Secret`] (printed as `***`), a URL is
//! shown with its secrets as `${NAME}`, a header carrying one is marked
//! sensitive (the HTTP stack does not print it), and every error cause a
//! participant call produces — it goes into the history, the API and the
//! logs — has the secrets' values replaced by `${NAME}`, including text a
//! participant echoed back.

use std::collections::{BTreeMap, HashMap};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use sagaflow_core::error_name::RUNTIME;
use sagaflow_core::ErrorInfo;

use crate::Config;

/// A secret configuration value: `Debug` and `Display` show `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// A text with its placeholders filled: the value to send, and the one to
/// show (secrets left as `${NAME}`).
pub(crate) struct Filled {
    pub value: String,
    pub shown: String,
    pub has_secret: bool,
}

/// Fills the `${VAR}`s of `text` from the variables and secrets. In a URL
/// (`url`) a value's trailing `/` is dropped, so `${BASE}/path` works with
/// a base given with or without one.
pub(crate) fn fill(text: &str, config: &Config, url: bool) -> Result<Filled, ErrorInfo> {
    let mut filled = Filled {
        value: String::new(),
        shown: String::new(),
        has_secret: false,
    };
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        filled.value.push_str(&rest[..start]);
        filled.shown.push_str(&rest[..start]);
        let end = rest[start..]
            .find('}')
            .ok_or_else(|| ErrorInfo::new(RUNTIME, format!("unterminated `${{` in `{text}`")))?;
        let name = &rest[start + 2..start + end];
        let (value, secret) = match (config.variables.get(name), config.secrets.get(name)) {
            (_, Some(s)) => (s.expose(), true),
            (Some(v), None) => (v.as_str(), false),
            (None, None) => {
                return Err(ErrorInfo::new(
                    RUNTIME,
                    format!("variable `{name}` is not configured"),
                ))
            }
        };
        let value = if url {
            value.trim_end_matches('/')
        } else {
            value
        };
        filled.value.push_str(value);
        if secret {
            filled.has_secret = true;
            filled.shown.push_str(&rest[start..start + end + 1]);
        } else {
            filled.shown.push_str(value);
        }
        rest = &rest[start + end + 1..];
    }
    filled.value.push_str(rest);
    filled.shown.push_str(rest);
    Ok(filled)
}

/// A definition's headers with their placeholders filled; those carrying a
/// secret are marked sensitive. A value that is not a valid header value
/// once filled (a variable holding a line break) fails the call before
/// anything is sent; the cause names the header, never the value.
pub(crate) fn headers(
    headers: &BTreeMap<String, String>,
    config: &Config,
) -> Result<HeaderMap, ErrorInfo> {
    let mut map = HeaderMap::with_capacity(headers.len());
    for (name, template) in headers {
        let filled = fill(template, config, false)?;
        let invalid = |what: &str| {
            ErrorInfo::new(
                RUNTIME,
                format!(
                    "header `{name}` of the definition: {what} (value `{}`)",
                    filled.shown
                ),
            )
        };
        let key = HeaderName::from_bytes(name.as_bytes()).map_err(|_| invalid("invalid name"))?;
        let mut value = HeaderValue::from_str(&filled.value)
            .map_err(|_| invalid("its filled value is not a valid header value"))?;
        value.set_sensitive(filled.has_secret);
        map.append(key, value);
    }
    Ok(map)
}

/// Replaces every secret value in `text` by `${NAME}` (longest first, so a
/// secret containing another is replaced whole; a URL's trimmed form too).
pub(crate) fn redact(text: &str, secrets: &HashMap<String, Secret>) -> String {
    let mut values: Vec<(&str, &str)> = Vec::new();
    for (name, secret) in secrets {
        let value = secret.expose();
        for form in [value, value.trim_end_matches('/')] {
            if !form.is_empty() {
                values.push((form, name));
            }
        }
    }
    values.sort_by_key(|(value, _)| std::cmp::Reverse(value.len()));
    let mut out = text.to_string();
    for (value, name) in values {
        if out.contains(value) {
            out = out.replace(value, &format!("${{{name}}}"));
        }
    }
    out
}

/// [`redact`] applied to an error's name and cause.
pub(crate) fn redact_error(e: ErrorInfo, secrets: &HashMap<String, Secret>) -> ErrorInfo {
    if secrets.is_empty() {
        return e;
    }
    let mut e = e;
    e.error = redact(&e.error, secrets);
    e.cause = redact(&e.cause, secrets);
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config {
            variables: HashMap::from([("BASE".into(), "https://svc.example/".into())]),
            secrets: HashMap::from([
                ("TOKEN".into(), Secret::new("s3cr3t")),
                ("LONG".into(), Secret::new("s3cr3t-and-more")),
            ]),
            ..Config::default()
        }
    }

    #[test]
    fn a_url_is_sent_with_its_secrets_and_shown_without_them() {
        let f = fill("${BASE}/x?key=${TOKEN}", &config(), true).unwrap();
        assert_eq!(f.value, "https://svc.example/x?key=s3cr3t");
        assert_eq!(f.shown, "https://svc.example/x?key=${TOKEN}");
        assert!(f.has_secret);
    }

    #[test]
    fn a_header_value_keeps_a_trailing_slash_and_a_secret_header_is_sensitive() {
        let mut c = config();
        c.variables.insert("B64".into(), "ab/".into());
        let h = BTreeMap::from([
            ("Authorization".to_string(), "Bearer ${TOKEN}".to_string()),
            ("X-Pad".to_string(), "${B64}".to_string()),
        ]);
        let map = headers(&h, &c).unwrap();
        assert_eq!(map["authorization"], "Bearer s3cr3t");
        assert!(map["authorization"].is_sensitive());
        assert_eq!(map["x-pad"], "ab/");
        assert!(!map["x-pad"].is_sensitive());
        assert!(!format!("{map:?}").contains("s3cr3t"));
    }

    #[test]
    fn a_secret_that_breaks_a_header_fails_without_showing_its_value() {
        let mut c = config();
        c.secrets
            .insert("BAD".into(), Secret::new("x\r\nInjected: 1"));
        let h = BTreeMap::from([("X-A".to_string(), "${BAD}".to_string())]);
        let e = headers(&h, &c).unwrap_err();
        assert_eq!(e.error, RUNTIME);
        assert!(
            e.cause.contains("${BAD}") && !e.cause.contains("Injected"),
            "{e:?}"
        );
    }

    #[test]
    fn redaction_replaces_every_secret_value_by_its_name_longest_first() {
        let c = config();
        let text = "echo s3cr3t-and-more then s3cr3t";
        assert_eq!(redact(text, &c.secrets), "echo ${LONG} then ${TOKEN}");
        assert_eq!(format!("{:?}", c.secrets["TOKEN"]), "***");
    }
}
