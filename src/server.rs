//! The HTTP thread: Plane webhooks in, health and metrics out.
//!
//! It never touches the journal or the clients. A verified webhook becomes a [`Wake`]
//! sent over a bounded channel to the sync loop; when the loop is busy and the queue is
//! full the delivery gets 503 rather than blocking this thread. Status is read from the
//! shared [`Status`] the sync loop updates. The socket work (hostile clients, limits) is
//! [`http1`]'s.
//!
//! With `API_TOKEN` set, every path but `/health`, the webhook (which has its own
//! signature) and the .ics feeds (which have FEED_TOKEN in their URL, since calendar apps
//! cannot send headers) needs `Authorization: Bearer <API_TOKEN>`. Only such an authenticated answer
//! carries full error messages and the state file's path: the others give an error's kind
//! and server host, never user names or paths.

pub mod http1;

use std::collections::{HashSet, VecDeque};
use std::net::{SocketAddr, TcpListener};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use sha2::{Digest, Sha256};

use crate::config::Secret;
use crate::feed::store::{Missing, Opened, Shared};
use crate::plane::webhook::{self, WebhookEvent};
use crate::status::Status;
use http1::{Method, Part, Request, Response};

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
/// Where the feeds are: `/calendars/{name}.ics`.
const FEED_PREFIX: &str = "/calendars/";
/// Longest feed name (project identifiers have at most 12 characters).
const MAX_FEED_NAME: usize = 64;
/// What a feed answer says about caching: every app may keep it, but must ask again
/// (with its ETag) before using it; `private` as the URL holds the token.
const FEED_CACHE_CONTROL: &str = "private, no-cache";

/// The .ics feeds the HTTP thread serves.
#[derive(Debug, Clone)]
pub struct FeedService {
    /// FEED_TOKEN: the `?token=` every feed URL must carry.
    pub token: Secret,
    /// The feed files.
    pub index: Shared,
}

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
    /// Re-list one project's cycles or modules (and sync their events); its work items
    /// are not listed.
    Timeline {
        /// Project id.
        project: String,
        /// Which listing.
        kind: crate::sync::timeline::Kind,
    },
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
    feeds: Option<FeedService>,
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
    feeds: Option<FeedService>,
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
        feeds,
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
        if request.path.starts_with(FEED_PREFIX) {
            return self.feed(request);
        }
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

    /// `GET`/`HEAD /calendars/{name}.ics?token=…`. Anything wrong with the name or the
    /// token is the same 404 as an unknown path: nothing says whether feeds exist.
    fn feed(&self, request: &Request) -> Response {
        let not_found = || message(404, "not found");
        let Some(feeds) = &self.feeds else {
            return not_found();
        };
        let name = request
            .path
            .strip_prefix(FEED_PREFIX)
            .and_then(|n| n.strip_suffix(".ics"))
            .filter(|n| is_feed_name(n));
        let token = query_value(&request.query, "token");
        let (Some(name), Some(token)) = (name, token) else {
            return not_found();
        };
        if !same_secret(&token, feeds.token.expose()) {
            return not_found();
        }
        if !matches!(request.method, Method::Get | Method::Head) {
            return message(405, "method not allowed");
        }
        let opened = match feeds.index.lock().open(name) {
            Ok(o) => o,
            Err(Missing::NotFound) => return not_found(),
            Err(Missing::NotReady) => {
                return message(503, "the feeds are being written: retry in a minute")
                    .with_header("Retry-After", "30")
            }
        };
        feed_answer(request, opened)
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
            Ok(WebhookEvent::Timeline {
                project,
                kind,
                event,
            }) => {
                log::debug!("webhook: {event} in project {project}");
                let kind = kind.into();
                (Wake::Timeline { project, kind }, event)
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

/// A feed name: a project slug or `all` (letters, digits, `-`, `_`).
fn is_feed_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_FEED_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// The value of `name` in a query string, percent-decoded.
fn query_value(query: &str, name: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| crate::caldav::href::percent_decode(v))
}

/// 200 with the feed, or 304 when the client's copy is current.
fn feed_answer(request: &Request, opened: Opened) -> Response {
    let last_modified = httpdate::fmt_http_date(opened.modified);
    if not_modified(request, &opened.etag, opened.modified) {
        return Response::not_modified()
            .with_header("ETag", opened.etag)
            .with_header("Last-Modified", last_modified)
            .with_header("Cache-Control", FEED_CACHE_CONTROL);
    }
    let mut parts = Vec::with_capacity(opened.files.len() + 2);
    if !opened.prefix.is_empty() {
        parts.push(Part::Bytes(opened.prefix.into_bytes()));
    }
    for (file, offset, len) in opened.files {
        parts.push(Part::File { file, offset, len });
    }
    if !opened.suffix.is_empty() {
        parts.push(Part::Bytes(opened.suffix.as_bytes().to_vec()));
    }
    Response::stream(200, "text/calendar; charset=utf-8", parts)
        .with_header("ETag", opened.etag)
        .with_header("Last-Modified", last_modified)
        .with_header("Cache-Control", FEED_CACHE_CONTROL)
}

/// RFC 9110 §13.2.2: `If-None-Match` (weak comparison) decides when present, else
/// `If-Modified-Since` (to the second, as HTTP dates go).
fn not_modified(request: &Request, etag: &str, modified: SystemTime) -> bool {
    let opaque = |t: &str| t.trim().trim_start_matches("W/").to_string();
    if let Some(tags) = request.header("If-None-Match") {
        return tags
            .split(',')
            .any(|t| t.trim() == "*" || opaque(t) == opaque(etag));
    }
    let Some(since) = request
        .header("If-Modified-Since")
        .and_then(|d| httpdate::parse_http_date(d).ok())
    else {
        return false;
    };
    let secs = |t: SystemTime| {
        t.duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    };
    secs(modified) <= secs(since)
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

    fn request(headers: &[(&str, &str)]) -> Request {
        Request {
            method: Method::Get,
            path: "/calendars/web.ics".into(),
            query: String::new(),
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: Vec::new(),
        }
    }

    #[test]
    fn conditional_feed_requests() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        let date = httpdate::fmt_http_date(t);
        let etag = "W/\"abc\"";
        assert!(!not_modified(&request(&[]), etag, t));
        assert!(not_modified(
            &request(&[("If-None-Match", "\"x\", W/\"abc\"")]),
            etag,
            t
        ));
        assert!(not_modified(
            &request(&[("If-None-Match", "\"abc\"")]),
            etag,
            t
        ));
        assert!(not_modified(&request(&[("If-None-Match", "*")]), etag, t));
        // If-None-Match decides when present, even with a current If-Modified-Since.
        assert!(!not_modified(
            &request(&[("If-None-Match", "\"old\""), ("If-Modified-Since", &date)]),
            etag,
            t
        ));
        assert!(not_modified(
            &request(&[("If-Modified-Since", &date)]),
            etag,
            t
        ));
        let earlier = httpdate::fmt_http_date(t - std::time::Duration::from_secs(1));
        assert!(!not_modified(
            &request(&[("If-Modified-Since", &earlier)]),
            etag,
            t
        ));
        assert!(!not_modified(
            &request(&[("If-Modified-Since", "yesterday")]),
            etag,
            t
        ));
    }

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
        assert!(is_feed_name("web") && is_feed_name("all") && is_feed_name("a-1_b"));
        assert!(!is_feed_name("") && !is_feed_name("../x") && !is_feed_name("WEB"));
        assert_eq!(
            query_value("a=1&token=x%2Dy&b", "token").as_deref(),
            Some("x-y")
        );
        assert_eq!(query_value("tokens=1", "token"), None);
        assert!(!same_secret("abc", "abd") && !same_secret("", "abc"));
    }
}
