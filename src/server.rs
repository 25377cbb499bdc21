//! The HTTP thread: Plane webhooks in, health and metrics out.
//!
//! It never touches the journal or the clients. A verified webhook becomes a [`Wake`]
//! sent over a bounded channel to the sync loop; when the loop is busy and the queue is
//! full the delivery gets 503 rather than blocking this thread. Status is read from the
//! shared [`Status`] the sync loop updates. The socket work (hostile clients, limits) is
//! [`http1`]'s.
//!
//! With `API_TOKEN` set, every path but `/health` and the webhook (which has its own
//! signature) needs `Authorization: Bearer <API_TOKEN>`. Only such an authenticated answer
//! carries full error messages and the state file's path: the others give an error's kind
//! and server host, never user names or paths.

pub mod http1;

use std::collections::{HashSet, VecDeque};
use std::net::{SocketAddr, TcpListener};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard};

use sha2::{Digest, Sha256};

use crate::config::Secret;
use crate::plane::webhook::{self, WebhookEvent};
use crate::status::Status;
use http1::{Method, Request, Response};

pub use http1::raise_fd_limit;

/// Largest webhook body we read (Plane's are a few KiB).
pub const MAX_BODY: usize = 1024 * 1024;
/// Largest body of a request to any other path (they take none).
pub const MAX_OTHER_BODY: usize = 4 * 1024;
/// Delivery ids remembered to answer replays without work.
pub const REMEMBERED_DELIVERIES: usize = 1000;
/// Stack of the HTTP thread. Its deepest path (a request through [`http1`], the handler,
/// miniserde, which parses without recursion, SHA-256/HMAC, a log line) uses a few KiB;
/// std's default of 2 MiB would be address space for nothing, which counts on 32-bit
/// boards and where the kernel does not overcommit.
const HTTP_THREAD_STACK: usize = 256 * 1024;
/// The webhook paths (the seed's and ours).
const WEBHOOK_PATHS: [&str; 2] = ["/webhooks/plane", "/webhook"];

/// What a webhook asks the sync loop to do.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Wake {
    /// Re-read and sync one work item.
    Item {
        /// Project id.
        project: String,
        /// Work item id.
        id: String,
    },
    /// Re-sync one project.
    Project(String),
}

/// The endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Health,
    SeedHealth,
    MetricsJson,
    Prometheus,
    WebhookStatus,
    Webhook,
}

impl Route {
    fn of(path: &str) -> Option<Route> {
        Some(match path {
            "/health" => Route::Health,
            "/api/v1/health" => Route::SeedHealth,
            "/api/v1/metrics" => Route::MetricsJson,
            "/metrics" => Route::Prometheus,
            "/webhooks/status" => Route::WebhookStatus,
            p if WEBHOOK_PATHS.contains(&p) => Route::Webhook,
            _ => return None,
        })
    }

    /// Open without `API_TOKEN`: the liveness probe, and the webhook (signed instead).
    fn open(self) -> bool {
        matches!(self, Route::Health | Route::Webhook)
    }
}

/// What a request may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    /// `API_TOKEN` is set and the request does not carry it.
    Denied,
    /// Scrubbed answers: no token is configured, or an open path was asked without it.
    Public,
    /// The request carried the configured token: full detail.
    Full,
}

/// Delivery ids seen lately, oldest first, at most [`REMEMBERED_DELIVERIES`].
#[derive(Debug, Default)]
struct RecentDeliveries {
    order: VecDeque<String>,
    seen: HashSet<String>,
}

impl RecentDeliveries {
    fn contains(&self, id: &str) -> bool {
        self.seen.contains(id)
    }

    fn remember(&mut self, id: &str) {
        if !self.seen.insert(id.to_string()) {
            return;
        }
        self.order.push_back(id.to_string());
        if self.order.len() > REMEMBERED_DELIVERIES {
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
    }
}

struct Ctx {
    secret: Option<Secret>,
    api_token: Option<Secret>,
    status: Arc<Mutex<Status>>,
    wake: SyncSender<Wake>,
    deliveries: RecentDeliveries,
}

impl Ctx {
    /// A poisoned lock only means another thread panicked mid-update; the counters are
    /// still worth serving.
    fn status(&self) -> MutexGuard<'_, Status> {
        self.status.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn access(&self, request: &Request) -> Access {
        let Some(token) = &self.api_token else {
            return Access::Public;
        };
        let given = request
            .header("Authorization")
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        match given {
            Some(g) if same_secret(g, token.expose()) => Access::Full,
            _ => Access::Denied,
        }
    }
}

/// Compares the digests, so the time taken says nothing about where (or whether the
/// lengths) differ.
fn same_secret(given: &str, expected: &str) -> bool {
    let (a, b) = (Sha256::digest(given), Sha256::digest(expected));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// Binds `bind` and serves on a new thread. Returns the bound address (useful with port 0).
pub fn spawn(
    bind: &str,
    secret: Option<Secret>,
    api_token: Option<Secret>,
    status: Arc<Mutex<Status>>,
    wake: SyncSender<Wake>,
) -> Result<SocketAddr, String> {
    let listener = TcpListener::bind(bind).map_err(|e| {
        format!("HTTP_BIND={bind}: cannot listen: {e} (hint: is another instance running? set HTTP_BIND to another address, or empty to disable)")
    })?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("HTTP_BIND={bind}: {e}"))?;
    let ctx = Ctx {
        secret,
        api_token,
        status,
        wake,
        deliveries: RecentDeliveries::default(),
    };
    std::thread::Builder::new()
        .name("http".into())
        .stack_size(HTTP_THREAD_STACK)
        .spawn(move || {
            if let Err(e) = http1::serve(listener, ctx) {
                log::error!("HTTP server stopped: {e}");
            }
        })
        .map_err(|e| format!("cannot start the HTTP thread: {e}"))?;
    Ok(addr)
}

fn message(status: u16, detail: &str) -> Response {
    let mut o = miniserde::json::Object::new();
    o.insert(
        "detail".into(),
        miniserde::json::Value::String(detail.into()),
    );
    Response::json(status, miniserde::json::to_string(&o))
}

impl http1::Handler for Ctx {
    fn handle(&mut self, request: &Request) -> Response {
        let now = crate::clock::now_unix();
        let Some(route) = Route::of(&request.path) else {
            return message(404, "not found");
        };
        let reading = matches!(request.method, Method::Get | Method::Head);
        match route {
            Route::Webhook if request.method == Method::Post => return self.webhook(request, now),
            Route::Webhook => return message(405, "method not allowed"),
            _ if !reading => return message(405, "method not allowed"),
            _ => {}
        }
        let access = self.access(request);
        if access == Access::Denied && !route.open() {
            return message(401, "this path needs Authorization: Bearer <API_TOKEN>")
                .with_header("WWW-Authenticate", "Bearer realm=\"calplanebot\"");
        }
        self.read_only(route, access == Access::Full, now)
    }

    fn refused(&mut self, path: Option<&str>, status: u16, why: &str) -> Response {
        if path.is_some_and(|p| WEBHOOK_PATHS.contains(&p)) {
            self.status().webhooks.received += 1;
            return match status {
                413 => refuse(self, 413, "body larger than 1 MiB", |w| &mut w.too_large),
                _ => refuse(self, status, why, |w| &mut w.malformed),
            };
        }
        message(status, why)
    }

    fn max_body(&self, path: &str) -> usize {
        if WEBHOOK_PATHS.contains(&path) {
            MAX_BODY
        } else {
            MAX_OTHER_BODY
        }
    }
}

impl Ctx {
    /// The GET endpoints; `detail`: the request is authenticated.
    fn read_only(&self, route: Route, detail: bool, now: i64) -> Response {
        let s = self.status();
        match route {
            Route::Health => {
                Response::json(if s.healthy() { 200 } else { 503 }, s.health_json(now))
            }
            Route::SeedHealth => Response::json(200, s.seed_health_json(now)),
            Route::MetricsJson => Response::json(200, s.metrics_json(now, detail)),
            Route::WebhookStatus => Response::json(
                200,
                s.webhooks_json(self.secret.is_some(), s.next_sync, detail),
            ),
            Route::Prometheus => Response::text(
                200,
                "text/plain; version=0.0.4; charset=utf-8",
                s.prometheus(now),
            ),
            Route::Webhook => message(405, "method not allowed"),
        }
    }

    fn webhook(&mut self, request: &Request, now: i64) -> Response {
        self.status().webhooks.received += 1;
        let Some(secret) = &self.secret else {
            return refuse(
                self,
                503,
                "webhooks are disabled: PLANE_WEBHOOK_SECRET is not set",
                |w| &mut w.busy,
            );
        };
        let Some(signature) = request.header("X-Plane-Signature") else {
            return refuse(self, 401, "missing X-Plane-Signature", |w| {
                &mut w.unauthorized
            });
        };
        // Over the raw bytes, before any parsing: never re-serialise what was signed.
        if !webhook::verify_signature(secret.expose().as_bytes(), &request.body, signature) {
            return refuse(self, 401, "invalid signature", |w| &mut w.unauthorized);
        }
        let delivery = request
            .header("X-Plane-Delivery")
            .filter(|d| !d.is_empty() && d.len() <= 128);
        if delivery.is_some_and(|d| self.deliveries.contains(d)) {
            self.status().webhooks.duplicate += 1;
            return Response::json(202, r#"{"status":"duplicate"}"#.to_string());
        }
        let answer = self.signed_webhook(&request.body, now);
        if answer.status == 202 {
            if let Some(d) = delivery {
                self.deliveries.remember(d);
            }
        }
        answer
    }

    /// A delivery whose signature checked out.
    fn signed_webhook(&mut self, body: &[u8], now: i64) -> Response {
        let Ok(text) = std::str::from_utf8(body) else {
            return refuse(self, 400, "body is not UTF-8", |w| &mut w.malformed);
        };
        let wake = match webhook::parse(text) {
            Err(e) => return refuse(self, 400, &e.0, |w| &mut w.malformed),
            Ok(WebhookEvent::Ignored { event }) => {
                self.status().webhooks.ignored += 1;
                return message(202, &format!("ignored: {event} events are not synced"));
            }
            Ok(WebhookEvent::WorkItem {
                project,
                id,
                action,
                ..
            }) => {
                log::debug!("webhook: work item {id} {action}");
                (Wake::Item { project, id }, format!("issue/{action}"))
            }
            Ok(WebhookEvent::Project { id, action }) => {
                log::debug!("webhook: project {id} {action}");
                (Wake::Project(id), format!("project/{action}"))
            }
        };
        match self.wake.try_send(wake.0) {
            Ok(()) => {
                let mut s = self.status();
                s.webhooks.accepted += 1;
                s.webhooks.last_delivery = Some(now);
                s.webhooks.last_event = Some(wake.1);
                // The seed's answer body.
                Response::json(202, r#"{"status":"accepted"}"#.to_string())
            }
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => refuse(
                self,
                503,
                "busy: the sync queue is full, retry later",
                |w| &mut w.busy,
            ),
        }
    }
}

fn refuse(
    ctx: &Ctx,
    code: u16,
    why: &str,
    count: fn(&mut crate::status::WebhookStats) -> &mut u64,
) -> Response {
    let mut s = ctx.status();
    *count(&mut s.webhooks) += 1;
    s.webhooks.last_error = Some(format!("{code}: {why}"));
    drop(s);
    log::warn!("webhook refused ({code}): {why}");
    message(code, why)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_deliveries_are_bounded() {
        let mut r = RecentDeliveries::default();
        for i in 0..REMEMBERED_DELIVERIES + 10 {
            r.remember(&format!("d{i}"));
        }
        r.remember("d15"); // a repeat does not grow the set
        assert_eq!(r.order.len(), REMEMBERED_DELIVERIES);
        assert_eq!(r.seen.len(), REMEMBERED_DELIVERIES);
        assert!(!r.contains("d9"), "the oldest are forgotten");
        assert!(r.contains("d10") && r.contains(&format!("d{}", REMEMBERED_DELIVERIES + 9)));
    }

    #[test]
    fn routes_and_their_protection() {
        assert_eq!(Route::of("/health"), Some(Route::Health));
        assert_eq!(Route::of("/webhook"), Some(Route::Webhook));
        assert_eq!(Route::of("/health/"), None);
        assert!(Route::Health.open() && Route::Webhook.open());
        for r in [
            Route::SeedHealth,
            Route::MetricsJson,
            Route::Prometheus,
            Route::WebhookStatus,
        ] {
            assert!(!r.open(), "{r:?}");
        }
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd") && !same_secret("", "abc"));
    }
}
