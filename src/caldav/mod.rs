//! CalDAV side: the client (RFC 4791 / RFC 4918 subset we need) and HTTP authentication.

pub mod auth;
pub mod client;
pub mod href;

use std::fmt;

pub use client::{
    CalDavClient, Calendar, CollectionState, Discovery, ObjectData, ObjectRef, Precondition,
    SyncDelta, WriteOutcome,
};

/// Everything that can go wrong talking to the CalDAV server. Messages name the path,
/// never the password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DavError {
    /// The client could not be built (bad URL, unreadable CA file).
    Setup(String),
    /// Network, timeout or TLS failure.
    Transport {
        /// Request path.
        path: String,
        /// What happened.
        message: String,
        /// The kind of TLS failure, when it was one (never retried: it would fail again).
        tls: Option<crate::http::TlsFailure>,
    },
    /// Login refused or impossible.
    Auth(String),
    /// An unexpected HTTP status.
    Status {
        /// HTTP method.
        method: String,
        /// Request path.
        path: String,
        /// HTTP status.
        status: u16,
        /// The server's DAV:error element or the start of its body.
        detail: String,
    },
    /// A body we could not understand (bad XML, not a multistatus).
    Malformed {
        /// Request path.
        path: String,
        /// What was wrong.
        message: String,
    },
    /// The calendar home could not be found.
    Discovery(String),
    /// An answer longer than the limit for its kind (`client::MAX_MULTISTATUS_BYTES`,
    /// `client::MAX_OBJECT_BYTES`); it was not read.
    TooLarge {
        /// HTTP method.
        method: String,
        /// Request path.
        path: String,
        /// The limit, in bytes.
        limit: u64,
    },
    /// A sync-collection REPORT refused in a way a full listing of the calendar answers.
    SyncRefused {
        /// The calendar.
        path: String,
        /// HTTP status of the refusal.
        status: u16,
        /// Why.
        reason: SyncRefusal,
    },
}

/// Why a server refused a sync-collection REPORT (RFC 6578).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncRefusal {
    /// The sync token is unknown, expired or of another collection (`DAV:valid-sync-token`).
    InvalidToken,
    /// The server does not implement sync-collection (SabreDAV 1.8 and older servers).
    Unsupported,
}

impl DavError {
    /// Whether the server refused a sync token: start over with an initial sync or a full
    /// listing, it is not a failure.
    pub fn is_invalid_sync_token(&self) -> bool {
        matches!(
            self,
            DavError::SyncRefused {
                reason: SyncRefusal::InvalidToken,
                ..
            }
        )
    }

    /// Whether the server does not do sync-collection at all: use the ctag and full listings.
    pub fn is_sync_unsupported(&self) -> bool {
        matches!(
            self,
            DavError::SyncRefused {
                reason: SyncRefusal::Unsupported,
                ..
            }
        )
    }
}

impl fmt::Display for DavError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DavError::Setup(m) => write!(f, "CalDAV client: {m}"),
            DavError::Transport { path, message, tls } => {
                let hint = transport_hint(*tls);
                write!(
                    f,
                    "cannot reach the CalDAV server ({path}): {message} (hint: {hint})"
                )
            }
            DavError::Auth(m) => write!(f, "CalDAV login failed: {m}"),
            DavError::Status {
                method,
                path,
                status,
                detail,
            } => {
                write!(f, "CalDAV {method} {path} answered HTTP {status}")?;
                if !detail.is_empty() {
                    write!(f, ": {detail}")?;
                }
                Ok(())
            }
            DavError::Malformed { path, message } => {
                write!(
                    f,
                    "unexpected answer from the CalDAV server for {path}: {message}"
                )
            }
            DavError::Discovery(m) => write!(f, "CalDAV discovery failed: {m}"),
            DavError::TooLarge {
                method,
                path,
                limit,
            } => write!(
                f,
                "CalDAV {method} {path}: the answer is larger than {} MiB, the most calplanebot reads; not read (hint: is CALDAV_URL the CalDAV server? a calendar this large must be split)",
                limit / (1024 * 1024)
            ),
            DavError::SyncRefused {
                path,
                status,
                reason,
            } => {
                let why = match reason {
                    SyncRefusal::InvalidToken => "the sync token is no longer valid",
                    SyncRefusal::Unsupported => "the server does not support sync-collection",
                };
                write!(
                    f,
                    "CalDAV REPORT sync-collection {path} answered HTTP {status}: {why}"
                )
            }
        }
    }
}

impl std::error::Error for DavError {}

/// What to check after a transport failure: a certificate problem is solved with
/// CALDAV_CA_FILE, a protocol or cipher mismatch only on the server (or a proxy in front).
fn transport_hint(tls: Option<crate::http::TlsFailure>) -> &'static str {
    use crate::http::TlsFailure;
    match tls {
        None => "check CALDAV_URL",
        Some(TlsFailure::Certificate) => {
            "for a self-signed or private-CA certificate set CALDAV_CA_FILE to its PEM"
        }
        Some(TlsFailure::ServerCertificateIsCa) => {
            "the server's certificate is a CA certificate (CA:TRUE), which is refused even in CALDAV_CA_FILE: give the server a certificate with basicConstraints CA:FALSE (openssl req -x509 ... -addext basicConstraints=critical,CA:FALSE) and put it, or the CA that signed it, in CALDAV_CA_FILE"
        }
        Some(TlsFailure::Incompatible) => {
            "the server offers no TLS version, cipher suite or certificate key type calplanebot supports: it needs TLS 1.2 or 1.3 with ECDHE and AES-GCM or ChaCha20-Poly1305, and an RSA, ECDSA P-256/P-384 or Ed25519 certificate (configure the server or its proxy)"
        }
        Some(TlsFailure::Other) => {
            "the TLS handshake failed; check that CALDAV_URL's host and port speak HTTPS"
        }
    }
}
