//! Carries out a [`Plan`] through the CalDAV client and records each success in the
//! journal right after it happens, so a crash loses at most the write in flight — and
//! deterministic UIDs with `If-None-Match: *` make even that one safe to redo.

use std::collections::BTreeMap;

use super::model::{self, Desired};
use super::plan::{Action, Plan, UpdateReason};
use super::Summary;
use crate::caldav::{CalDavClient, DavError, ObjectData, Precondition, WriteOutcome};
use crate::ical;
use crate::state::{ItemRecord, Journal};

/// What apply needs besides the plan.
pub struct Context<'a> {
    /// The calendar collection.
    pub calendar: &'a str,
    /// Desired objects by UID.
    pub desired: &'a BTreeMap<String, &'a Desired>,
    /// Current time (Unix seconds) for DTSTAMP/LAST-MODIFIED.
    pub now: i64,
    /// When set, stop between two writes.
    pub stop: Option<&'a std::sync::atomic::AtomicBool>,
}

/// Runs the plan; failures of single objects are counted and logged, never fatal.
pub fn apply(
    client: &mut CalDavClient,
    journal: &mut Journal,
    ctx: &Context<'_>,
    plan: &Plan,
    summary: &mut Summary,
) {
    summary.unchanged += plan.unchanged;

    // Objects to read before merging: fetched in one multiget per 100.
    let to_fetch: Vec<String> = plan
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::Update { href, .. } => Some(href.clone()),
            _ => None,
        })
        .collect();
    let mut fetched: BTreeMap<String, ObjectData> = BTreeMap::new();
    if !to_fetch.is_empty() {
        match client.multiget(ctx.calendar, &to_fetch) {
            Ok(objects) => {
                for o in objects {
                    fetched.insert(crate::caldav::client::percent_decode(&o.href), o);
                }
            }
            Err(e) => {
                summary.error(format!(
                    "reading {} events from {}: {e}",
                    to_fetch.len(),
                    ctx.calendar
                ));
                return;
            }
        }
    }

    for action in &plan.actions {
        if ctx
            .stop
            .is_some_and(|s| s.load(std::sync::atomic::Ordering::Relaxed))
        {
            return;
        }
        let result = match action {
            Action::Create {
                uid,
                href,
                recreate,
            } => create(client, journal, ctx, uid, href, *recreate, summary),
            Action::Update {
                uid, href, reason, ..
            } => {
                let current = fetched.remove(&crate::caldav::client::percent_decode(href));
                update(client, journal, ctx, uid, href, *reason, current, summary)
            }
            Action::Delete {
                uid,
                href,
                etag,
                reason,
            } => match client.delete(href, etag.as_deref()) {
                Ok(WriteOutcome::Written(_)) | Ok(WriteOutcome::NotFound) => {
                    summary.deleted += 1;
                    *summary.delete_reasons.entry(reason.as_str()).or_insert(0) += 1;
                    log::info!("deleted {href} ({})", reason.as_str());
                    journal.remove_item(uid).map_err(|e| e.to_string())
                }
                Ok(WriteOutcome::PreconditionFailed) => {
                    // Changed since we listed it: look again next cycle.
                    summary.skipped += 1;
                    Ok(())
                }
                Err(e) => Err(e.to_string()),
            },
            Action::Forget { uid } => journal.remove_item(uid).map_err(|e| e.to_string()),
        };
        if let Err(e) = result {
            summary.error(e);
        }
    }
}

fn record(desired: &Desired, href: &str, etag: Option<String>, sequence: u32) -> ItemRecord {
    ItemRecord {
        uid: desired.uid.clone(),
        work_item: desired.work_item.clone(),
        project: desired.project.clone(),
        href: href.to_string(),
        etag,
        plane_updated_at: desired.updated_at.clone(),
        sequence,
        shadow: desired.shadow.clone(),
    }
}

fn create(
    client: &mut CalDavClient,
    journal: &mut Journal,
    ctx: &Context<'_>,
    uid: &str,
    href: &str,
    recreate: bool,
    summary: &mut Summary,
) -> Result<(), String> {
    let Some(desired) = ctx.desired.get(uid) else {
        return Ok(());
    };
    let body = model::new_object(desired, ctx.now);
    let refusal = match client.put(href, &body, Precondition::Create) {
        Ok(WriteOutcome::Written(etag)) => {
            summary.created += 1;
            if recreate {
                log::info!("recreated {} (deleted in the calendar)", desired.label);
            }
            return journal
                .put_item(record(desired, href, etag, 0))
                .map_err(|e| e.to_string());
        }
        Ok(_) => "HTTP 412".to_string(),
        // Servers refuse a second object with the same UID: Radicale with 409, others
        // with 403 (CalDAV no-uid-conflict); Xandikos answers 412 instead.
        Err(
            e @ DavError::Status {
                status: 403 | 409, ..
            },
        ) => e.to_string(),
        Err(e) => return Err(context(desired, e)),
    };
    // The object exists already — at our href (a crash after the PUT, a listing that
    // did not show it) or elsewhere (the seed's events): adopt it, never duplicate it.
    if let Some(current) = client.get(href).map_err(|e| context(desired, e))? {
        return update(
            client,
            journal,
            ctx,
            uid,
            href,
            UpdateReason::Adopt,
            Some(current),
            summary,
        );
    }
    match client
        .find_by_uid(ctx.calendar, uid)
        .map_err(|e| context(desired, e))?
    {
        Some(found) => {
            log::info!("adopting {} at {}", desired.label, found.href);
            let at = found.href.clone();
            update(
                client,
                journal,
                ctx,
                uid,
                &at,
                UpdateReason::Adopt,
                Some(found),
                summary,
            )
        }
        None => Err(format!(
            "{}: the server refused to create {href} ({refusal})",
            desired.label
        )),
    }
}

#[allow(clippy::too_many_arguments)]
fn update(
    client: &mut CalDavClient,
    journal: &mut Journal,
    ctx: &Context<'_>,
    uid: &str,
    href: &str,
    reason: UpdateReason,
    current: Option<ObjectData>,
    summary: &mut Summary,
) -> Result<(), String> {
    let Some(desired) = ctx.desired.get(uid) else {
        return Ok(());
    };
    let Some(current) = current else {
        // Listed a moment ago, gone now: create it again.
        return create(client, journal, ctx, uid, href, true, summary);
    };
    let cal = ical::parse(&current.ical).map_err(|e| {
        summary.skipped += 1;
        format!("{href} is not valid iCalendar ({e}); left unchanged")
    })?;
    let Some(existing) = model::find_item(&cal, uid) else {
        summary.skipped += 1;
        return Err(format!("{href} does not hold UID {uid}; left unchanged"));
    };
    let journal_seq = journal
        .state()
        .items
        .get(uid)
        .map(|r| r.sequence)
        .unwrap_or(0);
    if model::same_content(existing, &desired.component) {
        // Only the ETag moved (a client rewrote it, a user added an alarm): remember it.
        summary.unchanged += 1;
        let seq = model::sequence_of(existing).max(journal_seq);
        return journal
            .put_item(record(desired, href, current.etag, seq))
            .map_err(|e| e.to_string());
    }
    if reason == UpdateReason::CalendarChanged {
        log::warn!(
            "{} was edited in the calendar; Plane's values win (one-way sync)",
            desired.label
        );
    }
    let sequence = model::sequence_of(existing).max(journal_seq) + 1;
    let Some(body) = model::merge(&cal, desired, sequence, ctx.now) else {
        return Err(format!("{href} does not hold UID {uid}; left unchanged"));
    };
    let Some(etag) = current.etag.as_deref() else {
        summary.skipped += 1;
        return Err(format!("{href} has no ETag; not updated"));
    };
    match client
        .put(href, &body, Precondition::Replace(etag))
        .map_err(|e| context(desired, e))?
    {
        WriteOutcome::Written(new_etag) => {
            summary.updated += 1;
            journal
                .put_item(record(desired, href, new_etag, sequence))
                .map_err(|e| e.to_string())
        }
        _ => {
            summary.skipped += 1;
            log::info!(
                "{} changed while we updated it; retrying next cycle",
                desired.label
            );
            Ok(())
        }
    }
}

fn context(desired: &Desired, e: DavError) -> String {
    format!("{}: {e}", desired.label)
}
