//! Plane webhooks: signature check and the few payload fields we use.
//!
//! Plane signs the raw body with HMAC-SHA256 and sends the lowercase hex digest in
//! `X-Plane-Signature` (no `sha256=` prefix, no timestamp). The payload is a hint only:
//! the daemon re-reads the named work item from Plane, so a replayed delivery costs at
//! most one extra API call (and the server answers a repeated `X-Plane-Delivery` without
//! any). Ids go into Plane URLs, so they must be UUIDs: a signed payload naming
//! `../../users/me` is refused, not followed.

use hmac::{Hmac, Mac};
use miniserde::json::{self, Value};
use sha2::Sha256;

/// What a delivery asks us to look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookEvent {
    /// A work item was created, updated or deleted.
    WorkItem {
        /// Project id.
        project: String,
        /// Work item id.
        id: String,
        /// created, updated, deleted.
        action: String,
        /// Who did it (to recognise our own writes), when the payload says.
        actor: Option<String>,
    },
    /// A project changed (renamed, archived, deleted).
    Project {
        /// Project id.
        id: String,
        /// created, updated, deleted.
        action: String,
    },
    /// A cycle or module changed, or work items moved into or out of one (their progress
    /// changed): the project's listing of that kind is read again.
    Timeline {
        /// Project id.
        project: String,
        /// Cycles or modules.
        kind: TimelineKind,
        /// Plane's event and action, e.g. `cycle/updated`, for logs and /status.
        event: String,
    },
    /// An event we do not act on (comments, and anything unknown).
    Ignored {
        /// Its `event` value.
        event: String,
    },
}

/// Which of a project's timelines a [`WebhookEvent::Timeline`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimelineKind {
    /// Cycles (sprints).
    Cycles,
    /// Modules.
    Modules,
}

/// Why a payload was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadError(pub String);

impl std::fmt::Display for PayloadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether `signature` (hex, optionally `sha256=`-prefixed as other senders do) is the
/// HMAC-SHA256 of `body` under `secret`. The comparison takes the same time whatever the
/// first differing byte, so the signature cannot be guessed byte by byte.
pub fn verify_signature(secret: &[u8], body: &[u8], signature: &str) -> bool {
    let hex = signature.trim();
    let hex = hex.strip_prefix("sha256=").unwrap_or(hex);
    let Some(given) = decode_hex(hex) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    // `verify_slice` compares in constant time.
    mac.verify_slice(&given).is_ok()
}

/// The lowercase hex HMAC-SHA256 of `body` (what Plane sends; used by tests and tools).
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || s.len() > 128 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn text(v: Option<&Value>) -> Option<String> {
    match v {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

/// Whether `s` is a UUID in its canonical text form (8-4-4-4-12 hex digits, any case), as
/// Plane's ids are. Only such ids are put into request paths.
pub fn is_uuid(s: &str) -> bool {
    const GROUPS: [usize; 5] = [8, 4, 4, 4, 12];
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == GROUPS.len()
        && parts
            .iter()
            .zip(GROUPS)
            .all(|(p, n)| p.len() == n && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// `id` if it is a UUID, else a refusal naming `what`.
fn uuid(id: String, what: &str) -> Result<String, PayloadError> {
    if is_uuid(&id) {
        Ok(id)
    } else {
        Err(PayloadError(format!("{what} is not a UUID")))
    }
}

fn field<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    match v {
        Value::Object(o) => o.get(key),
        _ => None,
    }
}

/// Reads a delivery. Accepts Plane CE's shape (`event: "issue"`, `action: "updated"`,
/// `data: {id, project}`) and Plane Cloud's v2 shape (`event: "workitem.updated"`).
pub fn parse(body: &str) -> Result<WebhookEvent, PayloadError> {
    let v: Value = json::from_str(body).map_err(|_| PayloadError("body is not JSON".into()))?;
    if !matches!(v, Value::Object(_)) {
        return Err(PayloadError("body is not a JSON object".into()));
    }
    let event = text(field(&v, "event")).ok_or_else(|| PayloadError("no \"event\"".into()))?;
    // v2: "workitem.updated" → ("workitem", "updated").
    let (kind, action) = match event.split_once('.') {
        Some((k, a)) => (k.to_string(), a.to_string()),
        None => (event.clone(), text(field(&v, "action")).unwrap_or_default()),
    };
    let data = field(&v, "data");
    let data_field = |k: &str| data.and_then(|d| field(d, k));
    let id_of = |x: Option<&Value>| match x {
        Some(Value::Object(o)) => text(o.get("id")),
        other => text(other),
    };
    match kind.as_str() {
        "issue" | "workitem" | "work_item" => {
            let id = id_of(data_field("id"))
                .ok_or_else(|| PayloadError("work item event without data.id".into()))?;
            let project = id_of(data_field("project"))
                .or_else(|| id_of(data_field("project_id")))
                .ok_or_else(|| PayloadError("work item event without data.project".into()))?;
            let (id, project) = (uuid(id, "data.id")?, uuid(project, "data.project")?);
            let actor = field(&v, "activity")
                .and_then(|a| field(a, "actor"))
                .and_then(|a| id_of(Some(a)));
            Ok(WebhookEvent::WorkItem {
                project,
                id,
                action,
                actor,
            })
        }
        "cycle" | "cycle_issue" | "cycle_work_item" => {
            timeline(TimelineKind::Cycles, &kind, &action, data)
        }
        "module" | "module_issue" | "module_work_item" => {
            timeline(TimelineKind::Modules, &kind, &action, data)
        }
        "project" => Ok(WebhookEvent::Project {
            id: uuid(
                id_of(data_field("id"))
                    .ok_or_else(|| PayloadError("project event without data.id".into()))?,
                "data.id",
            )?,
            action,
        }),
        _ => Ok(WebhookEvent::Ignored { event }),
    }
}

/// A cycle or module event, or one about work items moving into or out of one (Plane CE
/// 1.3.1 sends only `cycle`/`module` created/updated; `cycle_issue`/`module_issue` are in
/// its webhook code but never fired). Plane's `data` for these carries no progress counts,
/// so the project's listing is read again: only the project is used, and it goes into a
/// request path, so it must be a UUID.
///
/// A delivery that names no project (the shape Plane's webhook task gives a deletion:
/// `data: {id}` only) cannot be acted on: it is ignored, not refused (a refusal would
/// only fill Plane's failure log), and the next full reconcile notices the change.
fn timeline(
    kind: TimelineKind,
    event: &str,
    action: &str,
    data: Option<&Value>,
) -> Result<WebhookEvent, PayloadError> {
    let data_field = |k: &str| data.and_then(|d| field(d, k));
    let id_of = |x: Option<&Value>| match x {
        Some(Value::Object(o)) => text(o.get("id")),
        other => text(other),
    };
    let Some(project) = id_of(data_field("project")).or_else(|| id_of(data_field("project_id")))
    else {
        log::debug!("webhook: {event}/{action} names no project; left to the next full sync");
        return Ok(WebhookEvent::Ignored {
            event: event.to_string(),
        });
    };
    Ok(WebhookEvent::Timeline {
        project: uuid(project, "data.project")?,
        kind,
        event: format!("{event}/{action}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4231_case_2_and_verification() {
        // RFC 4231 test case 2.
        let sig = sign(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            sig,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let body = b"what do ya want for nothing?";
        assert!(verify_signature(b"Jefe", body, &sig));
        assert!(verify_signature(b"Jefe", body, &format!("sha256={sig}")));
        assert!(verify_signature(b"Jefe", body, &sig.to_uppercase()));
        assert!(!verify_signature(b"jefe", body, &sig));
        assert!(!verify_signature(
            b"Jefe",
            b"what do ya want for nothing!",
            &sig
        ));
        for bad in ["", "zz", &sig[..62], &format!("{sig}00"), "sha256="] {
            assert!(!verify_signature(b"Jefe", body, bad), "{bad}");
        }
    }

    const P1: &str = "0a1b2c3d-4e5f-4a6b-9c7d-8e9f0a1b2c3d";
    const I1: &str = "6f1c2a3b-0d4e-4f5a-8b6c-7d8e9fa0b1c2";

    #[test]
    fn ids_must_be_uuids_before_they_reach_a_url() {
        assert!(is_uuid(P1) && is_uuid(&P1.to_uppercase()));
        for bad in [
            "",
            "../../users/me",
            "0a1b2c3d-4e5f-4a6b-9c7d-8e9f0a1b2c3",
            "0a1b2c3d-4e5f-4a6b-9c7d-8e9f0a1b2c3dd",
            "0a1b2c3d4e5f-4a6b-9c7d-8e9f0a1b2c3d",
            "0a1b2c3d-4e5f-4a6b-9c7d-8e9f0a1b2c3g",
            "0a1b2c3d-4e5f-4a6b-9c7d-8e9f0a1b2c3/",
        ] {
            assert!(!is_uuid(bad), "{bad}");
        }
        let traversal = format!(
            r#"{{"event":"issue","action":"updated","data":{{"id":"../../users/me","project":"{P1}"}}}}"#
        );
        assert_eq!(
            parse(&traversal),
            Err(PayloadError("data.id is not a UUID".into()))
        );
        let project = format!(
            r#"{{"event":"issue","action":"updated","data":{{"id":"{I1}","project":"x/../y"}}}}"#
        );
        assert!(parse(&project).is_err());
        assert!(parse(r#"{"event":"project","action":"deleted","data":{"id":"."}}"#).is_err());
    }

    #[test]
    fn ce_and_v2_payloads() {
        let ce = r#"{"event":"issue","action":"updated","webhook_id":"w","workspace_id":"ws",
            "data":{"id":"6f1c2a3b-0d4e-4f5a-8b6c-7d8e9fa0b1c2","project":"0a1b2c3d-4e5f-4a6b-9c7d-8e9f0a1b2c3d","name":"x","state":{"id":"s"}},
            "activity":{"field":"name","new_value":"x","old_value":"y","actor":{"id":"u1"}}}"#;
        assert_eq!(
            parse(ce).unwrap(),
            WebhookEvent::WorkItem {
                project: P1.into(),
                id: I1.into(),
                action: "updated".into(),
                actor: Some("u1".into())
            }
        );
        let v2 = r#"{"event":"workitem.deleted","delivery_id":"d","data":{"id":"6F1C2A3B-0D4E-4F5A-8B6C-7D8E9FA0B1C3","project_id":"0a1b2c3d-4e5f-4a6b-9c7d-8e9f0a1b2c3e"}}"#;
        assert_eq!(
            parse(v2).unwrap(),
            WebhookEvent::WorkItem {
                project: "0a1b2c3d-4e5f-4a6b-9c7d-8e9f0a1b2c3e".into(),
                id: "6F1C2A3B-0D4E-4F5A-8B6C-7D8E9FA0B1C3".into(),
                action: "deleted".into(),
                actor: None
            }
        );
        assert_eq!(
            parse(r#"{"event":"project","action":"updated","data":{"id":"0a1b2c3d-4e5f-4a6b-9c7d-8e9f0a1b2c3d"}}"#).unwrap(),
            WebhookEvent::Project {
                id: P1.into(),
                action: "updated".into()
            }
        );
        assert_eq!(
            parse(r#"{"event":"issue_comment","action":"created","data":{}}"#).unwrap(),
            WebhookEvent::Ignored {
                event: "issue_comment".into()
            }
        );
    }

    /// A `cycle` delivery as the real Plane CE 1.3.1 sent it (trimmed; no counts in
    /// `data`, one delivery per changed field).
    const REAL_CYCLE_UPDATE: &str = r#"{"event": "cycle", "action": "updated",
        "webhook_id": "b2f40cff-9c98-4f72-b178-6051eccc0928",
        "workspace_id": "54a96936-4bc1-42aa-9050-795a58b8a895",
        "data": {"id": "db979557-8b78-44b1-9040-5103f2b6e2d5", "name": "Sprint LA (renamed)",
          "start_date": "2026-12-06T18:30:01Z", "end_date": "2026-12-18T18:29:00Z",
          "archived_at": null, "timezone": "Asia/Kolkata",
          "project": "588b3060-f3e6-4e5b-8ed7-a5204bed7ed4",
          "workspace": "54a96936-4bc1-42aa-9050-795a58b8a895"},
        "activity": {"field": "name", "new_value": "Sprint LA (renamed)", "old_value": "Sprint LA",
          "actor": {"id": "45693019-34e6-4759-9ee6-e64ee30ef25d", "display_name": "alice"},
          "old_identifier": null, "new_identifier": null}}"#;

    #[test]
    fn cycle_and_module_events_name_the_project_timeline() {
        let real_project = "588b3060-f3e6-4e5b-8ed7-a5204bed7ed4";
        assert_eq!(
            parse(REAL_CYCLE_UPDATE).unwrap(),
            WebhookEvent::Timeline {
                project: real_project.into(),
                kind: TimelineKind::Cycles,
                event: "cycle/updated".into()
            }
        );
        let cases = [
            // CE module created (the real shape: project as an id).
            (
                format!(
                    r#"{{"event":"module","action":"created","data":{{"id":"{I1}","project":"{P1}","status":"planned"}}}}"#
                ),
                TimelineKind::Modules,
                "module/created",
            ),
            // Cloud v2 spelling, project_id.
            (
                format!(
                    r#"{{"event":"cycle.updated","data":{{"id":"{I1}","project_id":"{P1}"}}}}"#
                ),
                TimelineKind::Cycles,
                "cycle/updated",
            ),
            (
                format!(
                    r#"{{"event":"module.deleted","data":{{"id":"{I1}","project":{{"id":"{P1}"}}}}}}"#
                ),
                TimelineKind::Modules,
                "module/deleted",
            ),
            // Work items moving into a cycle or module: progress moved.
            (
                format!(
                    r#"{{"event":"cycle_issue","action":"created","data":{{"id":"{I1}","issue":"{I1}","cycle":"{I1}","project":"{P1}"}}}}"#
                ),
                TimelineKind::Cycles,
                "cycle_issue/created",
            ),
            (
                format!(
                    r#"{{"event":"module_issue","action":"deleted","data":{{"project":"{P1}"}}}}"#
                ),
                TimelineKind::Modules,
                "module_issue/deleted",
            ),
        ];
        for (body, kind, event) in cases {
            assert_eq!(
                parse(&body).unwrap(),
                WebhookEvent::Timeline {
                    project: P1.into(),
                    kind,
                    event: event.into()
                },
                "{body}"
            );
        }
    }

    #[test]
    fn cycle_and_module_events_need_a_uuid_project() {
        for body in [
            r#"{"event":"module","action":"updated","data":{"project":"../../users/me"}}"#
                .to_string(),
            format!(r#"{{"event":"cycle.updated","data":{{"id":"{I1}","project_id":"x"}}}}"#),
        ] {
            assert_eq!(
                parse(&body),
                Err(PayloadError("data.project is not a UUID".into())),
                "{body}"
            );
        }
        // No project at all (a deletion as Plane's webhook task builds it, or no data):
        // nothing to re-read, so ignored rather than refused.
        for (body, event) in [
            (
                format!(r#"{{"event":"cycle","action":"deleted","data":{{"id":"{I1}"}}}}"#),
                "cycle",
            ),
            (
                r#"{"event":"cycle","action":"created","data":{"id":"c"}}"#.to_string(),
                "cycle",
            ),
            (
                r#"{"event":"module_issue","action":"created","data":"oops"}"#.to_string(),
                "module_issue",
            ),
        ] {
            assert_eq!(
                parse(&body),
                Ok(WebhookEvent::Ignored {
                    event: event.into()
                }),
                "{body}"
            );
        }
    }
}
