//! The HTTP thread (tiny_http): Plane webhooks in, health and metrics out.
//!
//! It never touches the journal or the clients. A verified webhook becomes a [`Wake`]
//! sent over a bounded channel to the sync loop; when the loop is busy and the queue is
//! full the delivery gets 503 rather than blocking this thread. Status is read from the
//! shared [`Status`] the sync loop updates.

use std::io::Read;
use std::net::SocketAddr;
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard};

use tiny_http::{Header, Method, Request, Response};

use crate::config::Secret;
use crate::plane::webhook::{self, WebhookEvent};
use crate::status::Status;

/// Largest webhook body we read (Plane's are a few KiB).
pub const MAX_BODY: usize = 1024 * 1024;

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

struct Ctx {
    secret: Option<Secret>,
    status: Arc<Mutex<Status>>,
    wake: SyncSender<Wake>,
}

impl Ctx {
    /// A poisoned lock only means another thread panicked mid-update; the counters are
    /// still worth serving.
    fn status(&self) -> MutexGuard<'_, Status> {
        self.status.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Binds `bind` and serves on a new thread. Returns the bound address (useful with port 0).
pub fn spawn(
    bind: &str,
    secret: Option<Secret>,
    status: Arc<Mutex<Status>>,
    wake: SyncSender<Wake>,
) -> Result<SocketAddr, String> {
    let server = tiny_http::Server::http(bind).map_err(|e| {
        format!("HTTP_BIND={bind}: cannot listen: {e} (hint: is another instance running? set HTTP_BIND to another address, or empty to disable)")
    })?;
    let addr = server
        .server_addr()
        .to_ip()
        .ok_or_else(|| format!("HTTP_BIND={bind}: not an IP address"))?;
    let ctx = Ctx {
        secret,
        status,
        wake,
    };
    std::thread::Builder::new()
        .name("http".into())
        .spawn(move || {
            for request in server.incoming_requests() {
                handle(request, &ctx);
            }
        })
        .map_err(|e| format!("cannot start the HTTP thread: {e}"))?;
    Ok(addr)
}

fn json(status: u16, body: String) -> Response<std::io::Cursor<Vec<u8>>> {
    Response::from_string(body)
        .with_status_code(status)
        .with_header(Header::from_bytes("Content-Type", "application/json").expect("static header"))
}

fn message(status: u16, detail: &str) -> Response<std::io::Cursor<Vec<u8>>> {
    let mut o = miniserde::json::Object::new();
    o.insert(
        "detail".into(),
        miniserde::json::Value::String(detail.into()),
    );
    json(status, miniserde::json::to_string(&o))
}

fn handle(mut request: Request, ctx: &Ctx) {
    let path = request.url().split('?').next().unwrap_or("").to_string();
    let now = crate::clock::now_unix();
    let response = match (request.method(), path.as_str()) {
        (Method::Post, "/webhooks/plane" | "/webhook") => webhook(&mut request, ctx, now),
        (Method::Get | Method::Head, "/health") => {
            let s = ctx.status();
            json(if s.healthy() { 200 } else { 503 }, s.health_json(now))
        }
        (Method::Get | Method::Head, "/api/v1/health") => {
            json(200, ctx.status().seed_health_json(now))
        }
        (Method::Get | Method::Head, "/api/v1/metrics") => {
            json(200, ctx.status().metrics_json(now))
        }
        (Method::Get | Method::Head, "/webhooks/status") => {
            let s = ctx.status();
            json(200, s.webhooks_json(ctx.secret.is_some(), s.next_sync))
        }
        (Method::Get | Method::Head, "/metrics") => {
            Response::from_string(ctx.status().prometheus(now)).with_header(
                Header::from_bytes("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                    .expect("static header"),
            )
        }
        (
            _,
            "/webhooks/plane" | "/webhook" | "/health" | "/api/v1/health" | "/api/v1/metrics"
            | "/metrics" | "/webhooks/status",
        ) => message(405, "method not allowed"),
        _ => message(404, "not found"),
    };
    // A client that went away is not our problem.
    let _ = request.respond(response);
}

fn refuse(
    ctx: &Ctx,
    code: u16,
    why: &str,
    count: fn(&mut crate::status::WebhookStats) -> &mut u64,
) -> Response<std::io::Cursor<Vec<u8>>> {
    let mut s = ctx.status();
    *count(&mut s.webhooks) += 1;
    s.webhooks.last_error = Some(format!("{code}: {why}"));
    drop(s);
    log::warn!("webhook refused ({code}): {why}");
    message(code, why)
}

fn webhook(request: &mut Request, ctx: &Ctx, now: i64) -> Response<std::io::Cursor<Vec<u8>>> {
    ctx.status().webhooks.received += 1;
    let Some(secret) = &ctx.secret else {
        return refuse(
            ctx,
            503,
            "webhooks are disabled: PLANE_WEBHOOK_SECRET is not set",
            |w| &mut w.busy,
        );
    };
    if request.body_length().is_some_and(|n| n > MAX_BODY) {
        return refuse(ctx, 413, "body larger than 1 MiB", |w| &mut w.too_large)
            .with_header(Header::from_bytes("Connection", "close").expect("static header"));
    }
    // Chunked bodies have no length: read one byte past the limit to notice.
    let mut body = Vec::new();
    if request
        .as_reader()
        .take(MAX_BODY as u64 + 1)
        .read_to_end(&mut body)
        .is_err()
    {
        return refuse(ctx, 400, "could not read the body", |w| &mut w.malformed);
    }
    if body.len() > MAX_BODY {
        return refuse(ctx, 413, "body larger than 1 MiB", |w| &mut w.too_large)
            .with_header(Header::from_bytes("Connection", "close").expect("static header"));
    }
    let signature = request
        .headers()
        .iter()
        .find(|h| h.field.equiv("X-Plane-Signature"))
        .map(|h| h.value.as_str().to_string());
    let Some(signature) = signature else {
        return refuse(ctx, 401, "missing X-Plane-Signature", |w| {
            &mut w.unauthorized
        });
    };
    // Over the raw bytes, before any parsing: never re-serialise what was signed.
    if !webhook::verify_signature(secret.expose().as_bytes(), &body, &signature) {
        return refuse(ctx, 401, "invalid signature", |w| &mut w.unauthorized);
    }
    let Ok(text) = std::str::from_utf8(&body) else {
        return refuse(ctx, 400, "body is not UTF-8", |w| &mut w.malformed);
    };
    let wake = match webhook::parse(text) {
        Err(e) => return refuse(ctx, 400, &e.0, |w| &mut w.malformed),
        Ok(WebhookEvent::Ignored { event }) => {
            ctx.status().webhooks.ignored += 1;
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
    match ctx.wake.try_send(wake.0) {
        Ok(()) => {
            let mut s = ctx.status();
            s.webhooks.accepted += 1;
            s.webhooks.last_delivery = Some(now);
            s.webhooks.last_event = Some(wake.1);
            // The seed's answer body.
            json(202, r#"{"status":"accepted"}"#.to_string())
        }
        Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
            refuse(ctx, 503, "busy: the sync queue is full, retry later", |w| {
                &mut w.busy
            })
        }
    }
}
