//! TLS for outgoing calls (participants and the on-failure hook): rustls
//! with the system's root certificates, plus an optional CA bundle of the
//! operator's (a private CA) and an optional client certificate for mTLS.
//!
//! Also tells TLS failures apart for the invoker. A failed handshake means
//! the participant received nothing (no application data flows before both
//! sides accepted each other), so the attempt is a plain, retriable
//! `States.TaskFailed` — not an ambiguous lost response — and its cause says
//! what went wrong in words an operator can act on ("the server's
//! certificate is not trusted …").

use std::path::{Path, PathBuf};

use rustls::{AlertDescription, CertificateError};

/// Extra trust and identity for outgoing HTTPS calls. The system's root
/// certificates are always trusted.
#[derive(Clone, Default)]
pub struct TlsConfig {
    /// PEM certificates (one or several) trusted as certificate authorities
    /// in addition to the system's roots.
    pub ca_pem: Option<Vec<u8>>,
    /// PEM of this client's certificate (chain) followed by its private key,
    /// presented to servers that ask for one (mTLS).
    pub identity_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for TlsConfig {
    // The identity holds a private key: never print it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConfig")
            .field("ca_pem", &self.ca_pem.as_ref().map(|_| "…"))
            .field("identity_pem", &self.identity_pem.as_ref().map(|_| "***"))
            .finish()
    }
}

/// Invalid TLS settings, found when the engine (its HTTP client) is built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading {what} {}: {source}", path.display())]
    Read {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the CA bundle holds no PEM certificate")]
    EmptyCaBundle,
    #[error("the CA bundle is not valid PEM: {0}")]
    InvalidCa(String),
    #[error("a client certificate needs its private key too (and a key its certificate)")]
    IncompleteIdentity,
    #[error("the client certificate or key is not valid PEM: {0}")]
    InvalidIdentity(String),
    #[error("building the HTTPS client: {0}")]
    Client(String),
}

impl TlsConfig {
    /// Reads the PEM files: a CA bundle, and a client certificate with its
    /// key (both or neither). They are checked when the client is built.
    pub fn from_files(
        ca_file: Option<&Path>,
        client_cert: Option<&Path>,
        client_key: Option<&Path>,
    ) -> Result<TlsConfig, TlsError> {
        let read = |what: &'static str, path: &Path| {
            std::fs::read(path).map_err(|source| TlsError::Read {
                what,
                path: path.to_path_buf(),
                source,
            })
        };
        let ca_pem = ca_file.map(|p| read("CA bundle", p)).transpose()?;
        let identity_pem = match (client_cert, client_key) {
            (None, None) => None,
            (Some(cert), Some(key)) => {
                let mut pem = read("client certificate", cert)?;
                pem.push(b'\n');
                pem.extend(read("client key", key)?);
                Some(pem)
            }
            _ => return Err(TlsError::IncompleteIdentity),
        };
        Ok(TlsConfig {
            ca_pem,
            identity_pem,
        })
    }

    /// A client builder trusting the system's roots and the configured CAs,
    /// presenting the configured client certificate.
    pub fn client_builder(&self) -> Result<reqwest::ClientBuilder, TlsError> {
        let mut builder = reqwest::Client::builder().use_rustls_tls();
        if let Some(pem) = &self.ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| TlsError::InvalidCa(crate::invoke::describe(&e)))?;
            if certs.is_empty() {
                return Err(TlsError::EmptyCaBundle);
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        if let Some(pem) = &self.identity_pem {
            let identity = reqwest::Identity::from_pem(pem)
                .map_err(|e| TlsError::InvalidIdentity(crate::invoke::describe(&e)))?;
            builder = builder.identity(identity);
        }
        Ok(builder)
    }
}

/// The rustls error behind a failed call, if TLS is what failed.
fn rustls_error(e: &reqwest::Error) -> Option<&rustls::Error> {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = next {
        // An `io::Error` wrapping another error reports that error's source,
        // not the error itself, as its source: look inside (the connector
        // wraps tokio-rustls's `io::Error` in another one).
        let mut inner = err;
        while let Some(wrapped) = inner
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            inner = wrapped;
        }
        if let Some(tls) = inner.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        next = err.source();
    }
    None
}

/// When `e` is a failed TLS handshake, what went wrong, for the cause of the
/// attempt: nothing reached the participant. `None` for any other failure.
///
/// A TLS error while connecting is always a handshake failure. Later (TLS
/// 1.3 lets the client send its request before the server has checked the
/// client's certificate) only the certificate alerts count: a server sends
/// them from the handshake, before it reads any request.
pub(crate) fn handshake_failure(e: &reqwest::Error) -> Option<String> {
    let tls = rustls_error(e)?;
    let why = match tls {
        rustls::Error::InvalidCertificate(cert) => not_trusted(cert),
        rustls::Error::AlertReceived(AlertDescription::CertificateRequired) => {
            "TLS handshake failed: the server requires a client certificate (mTLS) and none \
             was presented; configure one it trusts (tls.client_cert, tls.client_key)"
                .to_string()
        }
        rustls::Error::AlertReceived(alert) if refused_client_certificate(alert) => format!(
            "TLS handshake failed: the server refused this client's certificate \
             (alert {alert:?}); configure a client certificate it trusts (tls.client_cert, tls.client_key)"
        ),
        rustls::Error::AlertReceived(AlertDescription::HandshakeFailure)
        | rustls::Error::PeerIncompatible(_)
        | rustls::Error::NoCertificatesPresented => {
            format!("TLS handshake failed: {tls}")
        }
        _ if e.is_connect() => format!("TLS handshake failed: {tls}"),
        _ => return None,
    };
    Some(why)
}

/// Alerts a server sends when it does not accept the client's certificate
/// (or its absence).
fn refused_client_certificate(alert: &AlertDescription) -> bool {
    matches!(
        alert,
        AlertDescription::CertificateRequired
            | AlertDescription::BadCertificate
            | AlertDescription::UnsupportedCertificate
            | AlertDescription::CertificateRevoked
            | AlertDescription::CertificateExpired
            | AlertDescription::CertificateUnknown
            | AlertDescription::UnknownCA
            | AlertDescription::AccessDenied
    )
}

/// Why the participant's certificate was rejected, in plain words.
fn not_trusted(cert: &CertificateError) -> String {
    let reason = match cert {
        CertificateError::UnknownIssuer => {
            "it is not signed by a trusted certificate authority (to trust a private CA, \
             give its certificate as tls.ca_file / --tls-ca-file)"
                .to_string()
        }
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            "it is not valid for this host name".to_string()
        }
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            "it has expired".to_string()
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            "it is not valid yet".to_string()
        }
        CertificateError::Revoked => "it has been revoked".to_string(),
        other => format!("{other:?}"),
    };
    format!("TLS handshake failed: the server's certificate is not trusted: {reason}")
}
