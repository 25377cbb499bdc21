//! Plane side: the REST client and the objects it returns.

pub mod client;
pub mod items;
pub mod model;
pub mod webhook;

use std::fmt;

pub use client::{Created, Listing, ListingEnd, PlaneClient, PlaneStats};
pub use model::{
    Cycle, ItemPatch, Label, Member, Module, ModuleStatus, NewWorkItem, Project, ProjectSettings,
    State, Timestamp, WorkItem,
};

/// Everything that can go wrong talking to Plane. Messages name the API path, never the
/// token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlaneError {
    /// The client could not be built, or was asked for something unsafe (a create
    /// without an external id).
    Setup(String),
    /// 401/403: the token is missing, wrong or lacks access.
    Auth {
        /// HTTP status.
        status: u16,
        /// Plane's `detail`.
        detail: String,
    },
    /// 404: wrong workspace slug or project, or a deleted item.
    NotFound {
        /// API path.
        path: String,
    },
    /// 409: the object exists already (a repeated create with the same external id).
    Conflict {
        /// API path.
        path: String,
        /// The existing object's id, when Plane named it.
        existing_id: Option<String>,
        /// Plane's message.
        detail: String,
    },
    /// Still rate limited after waiting.
    RateLimited {
        /// API path.
        path: String,
    },
    /// Any other non-2xx status (after retries for 5xx).
    Status {
        /// HTTP status.
        status: u16,
        /// API path.
        path: String,
        /// Plane's message or the start of the body.
        detail: String,
    },
    /// The answer was not the JSON we expect.
    Malformed {
        /// API path.
        path: String,
        /// What was wrong.
        message: String,
    },
    /// Network, timeout or TLS failure (after retries).
    Transport {
        /// API path.
        path: String,
        /// What happened.
        message: String,
        /// The kind of TLS failure, when the handshake failed (it picks the hint).
        tls: Option<crate::http::TlsFailure>,
    },
}

impl fmt::Display for PlaneError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlaneError::Setup(m) => write!(f, "Plane client: {m}"),
            PlaneError::Auth { status, detail } => write!(
                f,
                "Plane rejected the API token (HTTP {status}: {detail}) (hint: check PLANE_API_TOKEN; tokens are made under Workspace Settings → API tokens)"
            ),
            PlaneError::NotFound { path } => write!(
                f,
                "Plane answered 404 for {path} (hint: check PLANE_WORKSPACE_SLUG and PLANE_BASE_URL)"
            ),
            PlaneError::Conflict {
                path,
                existing_id,
                detail,
            } => {
                write!(f, "Plane answered 409 (conflict) for {path}: {detail}")?;
                match existing_id {
                    Some(id) => write!(f, " (existing item {id})"),
                    None => Ok(()),
                }
            }
            PlaneError::RateLimited { path } => {
                write!(f, "Plane kept answering 429 (rate limited) for {path}")
            }
            PlaneError::Status { status, path, detail } => {
                write!(f, "Plane answered HTTP {status} for {path}: {detail}")
            }
            PlaneError::Malformed { path, message } => {
                write!(f, "unexpected answer from Plane for {path}: {message}")
            }
            PlaneError::Transport { path, message, tls } => {
                let hint = transport_hint(*tls);
                write!(f, "cannot reach Plane ({path}): {message} (hint: {hint})")
            }
        }
    }
}

impl std::error::Error for PlaneError {}

/// The hint for a failed connection to Plane, by what failed. Plane is reached with the
/// public CAs only (CALDAV_CA_FILE is for the CalDAV server), so a refused certificate
/// means the server's, not our trust store, has to change.
fn transport_hint(tls: Option<crate::http::TlsFailure>) -> &'static str {
    use crate::http::TlsFailure;
    match tls {
        None => "check PLANE_BASE_URL",
        Some(TlsFailure::Certificate | TlsFailure::ServerCertificateIsCa) => {
            "Plane's certificate must be valid for PLANE_BASE_URL and signed by a public CA"
        }
        Some(TlsFailure::Incompatible) => {
            "Plane's server (or its proxy) offers no TLS version or cipher suite calplanebot supports: it needs TLS 1.2 or 1.3 with ECDHE and AES-GCM or ChaCha20-Poly1305"
        }
        Some(TlsFailure::Other) => {
            "the TLS handshake failed; check that PLANE_BASE_URL's host and port speak HTTPS"
        }
    }
}
