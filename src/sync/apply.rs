//! Carries out a [`Plan`] through the [`CalendarStore`] and [`Tracker`] seams and records
//! each success in the journal right after it happens, so a crash loses at most the write
//! in flight — and deterministic UIDs with `If-None-Match: *` on one side, external ids
//! with Plane's 409 on the other, make even that one safe to redo.
//!
//! For an item edited in the calendar, Plane is written first and the calendar second:
//! the object is then re-rendered from the patched item, so both sides end with the same
//! fields and the journal's shadow records them. A failed Plane write leaves the object
//! alone (the user's edit stays, and is retried next cycle).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};

use super::fields::{Completion, FieldPatch};
use super::model::{self, Desired, Mapping, Rendered};
use super::plan::{Action, Foreign, Plan, UpdateReason};
use super::progress::Progress;
use super::store::{CalendarStore, Tracker};
use super::timeline::Kind;
use super::Summary;
use crate::caldav::client::percent_decode;
use crate::caldav::{DavError, ObjectData, Precondition, WriteOutcome};
use crate::ical::{self, Component, Date};
use crate::plane::{Created, ItemPatch, NewWorkItem};
use crate::plane::{Project, State, WorkItem};
use crate::state::{ContentHash, ItemRecord, Journal, Shadow};

/// `external_source` of work items made from calendar objects.
pub const EXTERNAL_SOURCE: &str = "calplanebot";

/// Calendar objects read (and held) at once: one calendar-multiget REPORT's worth
/// (the CalDAV client splits larger ones at 100 too). Objects are a few KiB of text
/// each, so a cycle that has to read every object of a 2,500-object calendar holds at
/// most this many, at the price of one request per batch.
pub const MULTIGET_BATCH: usize = 100;

/// What apply needs besides the plan.
pub struct Context<'a> {
    /// The calendar collection.
    pub calendar: &'a str,
    /// The project.
    pub project: &'a Project,
    /// How items are rendered.
    pub mapping: &'a Mapping,
    /// Current time (Unix seconds) for DTSTAMP/LAST-MODIFIED.
    pub now: i64,
    /// When set, stop between two writes.
    pub stop: Option<&'a AtomicBool>,
}

/// The inputs `apply` consumes: the items' rendered fields (the objects themselves are
/// rendered again when written), the work items behind them, and the objects already
/// read while planning.
#[derive(Debug, Default)]
pub struct Material {
    /// Desired fields by UID.
    pub desired: BTreeMap<String, Desired>,
    /// Work items by id, as Plane showed them (re-rendered after a PATCH). Boxed: a
    /// work item is some 400 bytes, and a map node keeps room for eleven.
    pub items: BTreeMap<String, Box<WorkItem>>,
    /// Objects read while planning, by decoded href.
    pub fetched: BTreeMap<String, ObjectData>,
    /// The components of cycles and modules, by UID (rendered when listed: a project has
    /// a few dozen, and nothing else would render them again).
    pub timeline: BTreeMap<String, Component>,
}

impl Material {
    /// Keeps only what the plan's actions use: the items, rendered fields and read
    /// objects of unchanged UIDs are dropped before anything is written.
    pub fn retain_for(&mut self, plan: &Plan) {
        let mut uids = BTreeSet::new();
        let mut hrefs = BTreeSet::new();
        for a in &plan.actions {
            match a {
                Action::Create { uid, .. }
                | Action::Delete { uid, .. }
                | Action::ClearDate { uid, .. } => {
                    uids.insert(uid.as_str());
                }
                Action::Update { uid, href, .. } => {
                    uids.insert(uid.as_str());
                    hrefs.insert(percent_decode(href));
                }
                Action::Forget { .. } | Action::CreateItem(_) => {}
            }
        }
        self.desired.retain(|uid, _| uids.contains(uid.as_str()));
        self.timeline.retain(|uid, _| uids.contains(uid.as_str()));
        let items: BTreeSet<&str> = self
            .desired
            .values()
            .map(|d| d.work_item.as_str())
            .collect();
        self.items.retain(|id, _| items.contains(id.as_str()));
        self.fetched.retain(|href, _| hrefs.contains(href));
    }

    /// Drops what an action that is done used: the journal grows by a record per object
    /// written while this shrinks, so a large calendar does not need room for both.
    fn done_with(&mut self, action: &Action) {
        let uid = match action {
            Action::Create { uid, .. }
            | Action::Update { uid, .. }
            | Action::Delete { uid, .. }
            | Action::ClearDate { uid, .. } => uid,
            Action::Forget { .. } | Action::CreateItem(_) => return,
        };
        if let Some(d) = self.desired.remove(uid) {
            self.items.remove(&d.work_item);
        }
        self.timeline.remove(uid);
    }
}

/// Runs the plan; failures of single objects are counted and logged, never fatal. The plan
/// is consumed as it goes, like the material.
pub fn apply<C: CalendarStore, T: Tracker>(
    cal: &mut C,
    plane: &mut T,
    journal: &mut Journal,
    ctx: &Context<'_>,
    material: Material,
    plan: Plan,
    summary: &mut Summary,
) {
    summary.unchanged += plan.unchanged;
    let mut run = Run {
        cal,
        plane,
        journal,
        ctx,
        summary,
        material,
        states: None,
    };
    let mut progress = Progress::new(&ctx.project.identifier, plan.actions.len());
    // Batch by batch, so that objects to update are read (and held) a batch at a time, and
    // a batch's creates are announced in the journal with one fsync.
    let mut actions = plan.actions.into_iter().peekable();
    'batches: while actions.peek().is_some() {
        let batch: Vec<Action> = actions.by_ref().take(MULTIGET_BATCH).collect();
        if !run.fetch_missing(&batch) || !run.announce_creates(&batch) {
            break;
        }
        for (i, action) in batch.iter().enumerate() {
            if ctx.stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
                run.retract_creates(&batch[i..]);
                break 'batches;
            }
            if let Err(e) = run.action(action) {
                run.summary.error(e);
            }
            run.material.done_with(action);
            progress.tick();
        }
    }
    progress.finish();
}

/// One apply run: the seams, the journal and what is known so far.
struct Run<'a, 'c, C, T> {
    cal: &'a mut C,
    plane: &'a mut T,
    journal: &'a mut Journal,
    ctx: &'a Context<'c>,
    summary: &'a mut Summary,
    material: Material,
    /// The project's states, read once on the first completion change.
    states: Option<Vec<State>>,
}

impl<C: CalendarStore, T: Tracker> Run<'_, '_, C, T> {
    /// Reads the objects a batch of actions updates that planning did not read (one
    /// multiget: a batch is at most [`MULTIGET_BATCH`] actions).
    fn fetch_missing(&mut self, batch: &[Action]) -> bool {
        let missing: Vec<String> = batch
            .iter()
            .filter_map(|a| match a {
                Action::Update { href, .. } => Some(href.clone()),
                _ => None,
            })
            .filter(|h| !self.material.fetched.contains_key(&percent_decode(h)))
            .collect();
        if missing.is_empty() {
            return true;
        }
        match self.cal.multiget(self.ctx.calendar, &missing) {
            Ok(objects) => {
                for o in objects {
                    self.material.fetched.insert(percent_decode(&o.href), o);
                }
                true
            }
            Err(e) => {
                self.summary.error(format!(
                    "reading {} events from {}: {e}",
                    missing.len(),
                    self.ctx.calendar
                ));
                false
            }
        }
    }

    /// Journals the write-ahead records of a batch's creates with one fsync for all (see
    /// state.rs, "Group commit"): each must be durable before its PUT, and an fsync per
    /// object is what the group commit saves. A recreate (a confirmed record exists)
    /// announces itself in `create`, which must be able to restore that record.
    fn announce_creates(&mut self, actions: &[Action]) -> bool {
        let known = &self.journal.state().items;
        let ahead: Vec<ItemRecord> = actions
            .iter()
            .filter_map(|a| match a {
                Action::Create { uid, href, .. } => Some((uid, href)),
                _ => None,
            })
            .filter(|(uid, _)| known.get(*uid).is_none_or(|r| r.etag.is_none()))
            .filter_map(|(uid, href)| {
                let desired = self.material.desired.get(uid)?;
                Some(record(desired, self.ctx.project, href, None, 0))
            })
            .collect();
        match self.journal.put_items_ahead(ahead) {
            Ok(()) => true,
            Err(e) => {
                self.summary.error(e.to_string());
                false
            }
        }
    }

    /// Takes back the write-ahead records of the creates a stop leaves unattempted (one
    /// fsync for all), so the journal holds no object that cannot exist (`sync-status`
    /// counts them); the next cycle plans them again. Recreates were not announced.
    fn retract_creates(&mut self, rest: &[Action]) {
        let items = &self.journal.state().items;
        let unattempted: Vec<String> = rest
            .iter()
            .filter_map(|a| match a {
                Action::Create { uid, .. } => Some(uid),
                _ => None,
            })
            .filter(|uid| items.get(*uid).is_some_and(|r| r.etag.is_none()))
            .cloned()
            .collect();
        if let Err(e) = self.journal.remove_items(unattempted) {
            self.summary.error(e.to_string());
        }
    }

    fn action(&mut self, action: &Action) -> Result<(), String> {
        match action {
            Action::Create {
                uid,
                href,
                recreate,
            } => self.create(uid, href, *recreate),
            Action::Update {
                uid,
                href,
                etag,
                reason,
                patch,
                conflicts,
                landed,
            } => {
                for c in conflicts {
                    log::warn!("{}: {c} (CONFLICT_POLICY)", self.label(uid));
                }
                self.summary.conflicts += conflicts.len();
                if !landed.is_empty() {
                    self.fold_landed(uid, landed)?;
                }
                if !patch.is_empty() && !self.patch_plane(uid, patch)? {
                    return Ok(());
                }
                let current = self.material.fetched.remove(&percent_decode(href));
                if *reason == UpdateReason::PlaneChanged && moved(&current, etag.as_deref()) {
                    // Edited in the calendar since the listing: merging Plane's change now
                    // would overwrite that edit unseen. The next cycle merges both.
                    self.summary.skipped += 1;
                    log::info!(
                        "{}: edited in the calendar meanwhile; next cycle",
                        self.label(uid)
                    );
                    return Ok(());
                }
                self.update(uid, href, *reason, current)
            }
            Action::Delete {
                uid,
                href,
                etag,
                reason,
            } => match self.cal.delete(href, etag.as_deref()) {
                Ok(WriteOutcome::Written(_)) | Ok(WriteOutcome::NotFound) => {
                    self.summary.deleted += 1;
                    self.count_timeline(uid, |c| &mut c.deleted);
                    *self
                        .summary
                        .delete_reasons
                        .entry(reason.as_str())
                        .or_insert(0) += 1;
                    log::info!("deleted {href} ({})", reason.as_str());
                    self.journal.remove_item(uid).map_err(|e| e.to_string())
                }
                Ok(WriteOutcome::PreconditionFailed) => {
                    // Changed since we listed it: look again next cycle.
                    self.summary.skipped += 1;
                    Ok(())
                }
                Err(e) => Err(e.to_string()),
            },
            Action::Forget { uid } => self.journal.remove_item(uid).map_err(|e| e.to_string()),
            Action::ClearDate { uid, work_item } => self.clear_date(uid, work_item),
            Action::CreateItem(foreign) => self.create_item(foreign),
        }
    }

    /// Counts a write of a cycle's or module's object in the summary's breakdown.
    fn count_timeline(&mut self, uid: &str, count: fn(&mut super::Counts) -> &mut usize) {
        if let Some(kind) = Kind::of_uid(uid) {
            *count(self.summary.timeline.entry(kind.noun()).or_default()) += 1;
        }
    }

    fn label(&self, uid: &str) -> String {
        self.material
            .desired
            .get(uid)
            .map(|d| d.label.clone())
            .unwrap_or_else(|| uid.to_string())
    }

    /// Sends calendar edits to Plane and re-renders the object from the patched item.
    /// `Ok(false)`: Plane refused; the object is left as the user made it.
    fn patch_plane(&mut self, uid: &str, patch: &FieldPatch) -> Result<bool, String> {
        let Some(desired) = self.material.desired.get(uid) else {
            return Ok(false);
        };
        let label = desired.label.clone();
        let Some(item) = self
            .material
            .items
            .get(&desired.work_item)
            .map(|i| (**i).clone())
        else {
            return Ok(false);
        };
        let state = match patch.completion {
            Some(c) => Some(self.state_for(c).map_err(|e| format!("{label}: {e}"))?),
            None => None,
        };
        let body = item_patch(&item, patch, state.as_ref());
        self.mark_sent(uid, |r| {
            let mut sent = r.shadow.clone();
            apply_to_shadow(&mut sent, patch);
            r.sent_to_plane = Some(Box::new(sent));
        })?;
        self.journal.commit_item(uid).map_err(|e| e.to_string())?;
        let answer = self
            .plane
            .update_work_item(&self.ctx.project.id, &item.id, &body);
        let updated = match answer {
            Ok(updated) => updated,
            Err(e) => {
                self.summary.skipped += 1;
                return Err(format!(
                    "{label}: Plane refused the calendar edit ({}): {e}; the event is left as it is",
                    patch.describe()
                ));
            }
        };
        self.summary.plane_updated += 1;
        log::info!("{label}: {} → Plane", patch.describe());
        // Journal what Plane has now before touching the calendar: a crash before the PUT
        // must not leave a shadow that makes the next calendar edit look like a conflict.
        self.remember_fields(uid, patch)?;
        let patched = patched_item(item, &body, state, &updated);
        let rerendered = model::render(&patched, self.ctx.project, self.ctx.mapping);
        self.material
            .items
            .insert(patched.id.clone(), Box::new(patched));
        match rerendered.map(|r| r.desired) {
            Ok(mut d) => {
                d.uid = uid.to_string();
                self.material.desired.insert(uid.to_string(), d);
                Ok(true)
            }
            Err(why) => {
                // The edit took the item out of the calendar: its next cycle deletes the
                // object (the journal already has Plane's new values).
                log::info!("{label}: {} after the calendar edit", why.as_str());
                Ok(false)
            }
        }
    }

    /// Makes our writes that landed unjournaled the shadow, and ends their in-flight
    /// markers: the next write marks only itself, and the base survives another crash.
    fn fold_landed(&mut self, uid: &str, landed: &FieldPatch) -> Result<(), String> {
        self.mark_sent(uid, |r| {
            apply_to_shadow(&mut r.shadow, landed);
            r.sent_to_plane = None;
            r.sent_to_calendar = None;
        })
    }

    /// Records a PATCH in the journal's shadow (ETag and content hash stay until the
    /// object is written).
    fn remember_fields(&mut self, uid: &str, patch: &FieldPatch) -> Result<(), String> {
        self.mark_sent(uid, |r| {
            apply_to_shadow(&mut r.shadow, patch);
            r.sent_to_plane = None;
        })
    }

    /// Changes the journal record of `uid` (if any) before or after a write.
    fn mark_sent(&mut self, uid: &str, f: impl FnOnce(&mut ItemRecord)) -> Result<(), String> {
        let Some(mut r) = self.journal.state().items.get(uid).cloned() else {
            return Ok(());
        };
        f(&mut r);
        self.journal.put_item(r).map_err(|e| e.to_string())
    }

    /// The first state of the group a completion maps to (Plane lists states in their
    /// workflow order).
    fn state_for(&mut self, c: Completion) -> Result<State, String> {
        if self.states.is_none() {
            let states = self
                .plane
                .states(&self.ctx.project.id)
                .map_err(|e| e.to_string())?;
            self.states = Some(states);
        }
        let group = c.target_group();
        self.states
            .iter()
            .flatten()
            .find(|s| s.group == group)
            .cloned()
            .ok_or_else(|| format!("project has no state in group {group}"))
    }

    fn clear_date(&mut self, uid: &str, work_item: &str) -> Result<(), String> {
        let label = self.label(uid);
        let body = ItemPatch {
            target_date: Some(None),
            ..ItemPatch::default()
        };
        self.plane
            .update_work_item(&self.ctx.project.id, work_item, &body)
            .map_err(|e| format!("{label}: clearing the target date in Plane: {e}"))?;
        self.summary.plane_updated += 1;
        log::info!("{label}: event deleted in the calendar; target date cleared in Plane");
        self.journal.remove_item(uid).map_err(|e| e.to_string())
    }

    fn create_item(&mut self, f: &Foreign) -> Result<(), String> {
        let state = match f.fields.completion {
            Completion::Open => None,
            c => Some(self.state_for(c)?.id),
        };
        let new = NewWorkItem {
            name: plane_name(&f.fields.name),
            start_date: f.fields.start.map(|d| d.to_iso()),
            target_date: f.fields.target.map(|d| d.to_iso()),
            state,
            external_id: f.uid.clone(),
            external_source: EXTERNAL_SOURCE.to_string(),
        };
        // Write-ahead (see `ItemRecord::item_pending`): should we die once Plane has the
        // item, the next cycle knows the object is being tied to a work item — deleted
        // meanwhile, it is answered as a deletion of that item's event, not recreated.
        self.journal
            .put_item(foreign_record(f, self.ctx.project, String::new()))
            .and_then(|()| self.journal.commit_item(&f.uid))
            .map_err(|e| e.to_string())?;
        let id = match self
            .plane
            .create_work_item(&self.ctx.project.id, &new)
            .map_err(|e| format!("creating a work item from {}: {e}", f.href))?
        {
            Created::New(item) => item.id,
            // A crash after an earlier POST: Plane knows the external id already.
            Created::Existing(id) => id,
        };
        self.summary.plane_created += 1;
        log::info!(
            "created work item {:?} in {} from the calendar",
            f.fields.name,
            self.ctx.project.identifier
        );
        self.journal
            .put_item(foreign_record(f, self.ctx.project, id))
            .map_err(|e| e.to_string())
    }

    /// The object of `uid` rendered again from its work item (planning kept only the
    /// fingerprint); `None` when the plan's material does not have it.
    fn rendered(&self, uid: &str) -> Option<Rendered> {
        let desired = self.material.desired.get(uid)?;
        if let Some(component) = self.material.timeline.get(uid) {
            return Some(Rendered {
                desired: desired.clone(),
                component: component.clone(),
            });
        }
        let item = self.material.items.get(&desired.work_item)?;
        let component = model::render_component(item, self.ctx.project, self.ctx.mapping).ok()?;
        // Its UID and everything planning compared stay as planned.
        Some(Rendered {
            desired: desired.clone(),
            component,
        })
    }

    fn create(&mut self, uid: &str, href: &str, recreate: bool) -> Result<(), String> {
        let Some(rendered) = self.rendered(uid) else {
            return Ok(());
        };
        let desired = &rendered.desired;
        let label = desired.label.clone();
        let body = model::new_object(&rendered, self.ctx.now);
        // Write-ahead: a record without ETag says "created, not confirmed". If we die
        // after the PUT, the next cycle finds the event with an ETag the journal lacks and
        // merges against this shadow, so an edit made meanwhile is not overwritten; if we
        // die before it, the next cycle simply creates the event (see plan).
        let before = self.journal.state().items.get(uid).cloned();
        let pending = record(desired, self.ctx.project, href, None, 0);
        self.journal.put_item(pending).map_err(|e| e.to_string())?;
        self.journal.commit_item(uid).map_err(|e| e.to_string())?;
        let refusal = match self.cal.put(href, &body, Precondition::Create) {
            Ok(WriteOutcome::Written(etag)) => {
                self.summary.created += 1;
                self.count_timeline(uid, |c| &mut c.created);
                if recreate {
                    log::info!("recreated {label} (deleted in the calendar)");
                }
                let r = record(desired, self.ctx.project, href, etag, 0);
                return self.journal.put_item(r).map_err(|e| e.to_string());
            }
            Ok(_) => "HTTP 412".to_string(),
            // Servers refuse a second object with the same UID: Radicale with 409, others
            // with 403 (CalDAV no-uid-conflict); Xandikos answers 412 instead.
            Err(
                e @ DavError::Status {
                    status: 403 | 409, ..
                },
            ) => e.to_string(),
            Err(e) => return Err(format!("{label}: {e}")),
        };
        // Our PUT did not land: the write-ahead record must not outlive this attempt, or
        // should the adoption below fail, the next cycle would read the object that was
        // there as a calendar edit against our shadow and push its old values to Plane.
        self.undo_pending(uid, before)?;
        // The object exists already — at our href (a crash after the PUT, a listing that
        // did not show it) or elsewhere (the seed's events): adopt it, never duplicate it.
        let here = self.cal.get(href).map_err(|e| format!("{label}: {e}"))?;
        if let Some(current) = here {
            return self.update(uid, href, UpdateReason::Adopt, Some(current));
        }
        let elsewhere = self
            .cal
            .find_by_uid(self.ctx.calendar, uid)
            .map_err(|e| format!("{label}: {e}"))?;
        match elsewhere {
            Some(found) => {
                log::info!("adopting {label} at {}", found.href);
                let at = found.href.clone();
                self.update(uid, &at, UpdateReason::Adopt, Some(found))
            }
            None => Err(format!(
                "{label}: the server refused to create {href} ({refusal})"
            )),
        }
    }

    /// Takes back the write-ahead record of a create the server refused: the confirmed
    /// record that was there before comes back; an unconfirmed one (no ETag) is dropped
    /// too, so the object is adopted next cycle instead of merged.
    fn undo_pending(&mut self, uid: &str, before: Option<ItemRecord>) -> Result<(), String> {
        let undone = match before.filter(|r| r.etag.is_some()) {
            Some(r) => self.journal.put_item(r),
            None => self.journal.remove_item(uid),
        };
        undone.map_err(|e| e.to_string())
    }

    fn update(
        &mut self,
        uid: &str,
        href: &str,
        reason: UpdateReason,
        current: Option<ObjectData>,
    ) -> Result<(), String> {
        let Some(rendered) = self.rendered(uid) else {
            return Ok(());
        };
        let desired = &rendered.desired;
        let Some(current) = current else {
            // Listed a moment ago, gone now: create it again.
            return self.create(uid, href, true);
        };
        let cal = ical::parse(&current.ical).map_err(|e| {
            self.summary.skipped += 1;
            format!("{href} is not valid iCalendar ({e}); left unchanged")
        })?;
        let Some(existing) = model::find_item(&cal, uid) else {
            self.summary.skipped += 1;
            return Err(format!("{href} does not hold UID {uid}; left unchanged"));
        };
        let journal_seq = self
            .journal
            .state()
            .items
            .get(uid)
            .map(|r| r.sequence)
            .unwrap_or(0);
        let sequence = model::sequence_of(existing).max(journal_seq);
        if model::same_content(existing, &rendered.component) {
            // Only the ETag moved (a client rewrote it, a user added an alarm): remember it.
            self.summary.unchanged += 1;
            let r = record(desired, self.ctx.project, href, current.etag, sequence);
            return self.journal.put_item(r).map_err(|e| e.to_string());
        }
        say_why(reason, uid, &desired.label);
        let Some(body) = model::merge(&cal, &rendered, sequence + 1, self.ctx.now) else {
            return Err(format!("{href} does not hold UID {uid}; left unchanged"));
        };
        let Some(etag) = current.etag.as_deref() else {
            self.summary.skipped += 1;
            return Err(format!("{href} has no ETag; not updated"));
        };
        let sent = desired.shadow.clone();
        self.mark_sent(uid, |r| r.sent_to_calendar = Some(Box::new(sent)))?;
        self.journal.commit_item(uid).map_err(|e| e.to_string())?;
        let outcome = self
            .cal
            .put(href, &body, Precondition::Replace(etag))
            .map_err(|e| format!("{}: {e}", desired.label))?;
        match outcome {
            WriteOutcome::Written(new_etag) => {
                self.summary.updated += 1;
                self.count_timeline(uid, |c| &mut c.updated);
                let r = record(desired, self.ctx.project, href, new_etag, sequence + 1);
                self.journal.put_item(r).map_err(|e| e.to_string())
            }
            _ => {
                self.summary.skipped += 1;
                log::info!(
                    "{} changed while we updated it; retrying next cycle",
                    desired.label
                );
                Ok(())
            }
        }
    }
}

/// Tells the user why an object they changed is written over.
fn say_why(reason: UpdateReason, uid: &str, label: &str) {
    match (reason, Kind::of_uid(uid)) {
        // Read-only mirrors: the user's change to what we own is put back, once (the next
        // cycle finds our version), and said so.
        (UpdateReason::CalendarChanged, Some(kind)) => log::warn!(
            "{label}: edited in the calendar; calendar edits to {} are not synced back — reverted",
            kind.plural()
        ),
        (UpdateReason::CalendarChanged, None) => {
            log::info!("{label}: the event differs from Plane's values; writing them")
        }
        _ => {}
    }
}

/// Plane refuses names over 255 characters (400, every cycle): longer ones are cut, and
/// the event then shows the cut name.
const MAX_NAME_CHARS: usize = 255;

fn plane_name(name: &str) -> String {
    name.chars().take(MAX_NAME_CHARS).collect()
}

/// Whether the object read for an update is not the version planning saw.
fn moved(current: &Option<ObjectData>, planned: Option<&str>) -> bool {
    match (current, planned) {
        (Some(c), Some(p)) => c.etag.as_deref() != Some(p),
        _ => false,
    }
}

fn record(
    desired: &Desired,
    project: &Project,
    href: &str,
    etag: Option<String>,
    sequence: u32,
) -> ItemRecord {
    ItemRecord {
        uid: desired.uid.clone(),
        work_item: desired.work_item.clone(),
        project: project.id.as_str().into(),
        href: href.to_string(),
        etag,
        plane_updated_at: desired.updated_at.clone(),
        sequence,
        shadow: desired.shadow.clone(),
        sent_to_plane: None,
        sent_to_calendar: None,
    }
}

/// The record of a calendar object that became (or is becoming, `work_item` empty) a work
/// item. Its content hash is unknown: the next cycle renders the item into the object (our
/// prefix, link and properties), keeping the user's UID, href and additions.
fn foreign_record(f: &Foreign, project: &Project, work_item: String) -> ItemRecord {
    ItemRecord {
        uid: f.uid.clone(),
        work_item,
        project: project.id.as_str().into(),
        href: f.href.clone(),
        etag: f.etag.clone(),
        plane_updated_at: String::new(),
        sequence: 0,
        shadow: Shadow {
            name: f.fields.name.clone(),
            start_date: f.fields.start.map(|d| d.to_iso()),
            target_date: f.fields.target.map(|d| d.to_iso()),
            state_group: f.fields.completion.target_group().to_string(),
            content_hash: ContentHash::UNKNOWN,
        },
        sent_to_plane: None,
        sent_to_calendar: None,
    }
}

/// The PATCH body for `patch`. In due mode the calendar cannot show the start: when a new
/// target date falls before the item's start, the start moves by the same number of days
/// (keeping the item's length), but never past the new target, and both dates are sent.
/// (Checked against real Plane CE 1.3.1: it compares the dates only when both are in the
/// body, so a target alone would be accepted and leave start > target; newer Plane also
/// compares a lone date with the stored one and answers 400.)
pub fn item_patch(item: &WorkItem, patch: &FieldPatch, state: Option<&State>) -> ItemPatch {
    let iso = |d: Option<Date>| d.map(|d| d.to_iso());
    let mut start = patch.start.map(iso);
    if let (Some(Some(new_target)), None) = (patch.target, patch.start) {
        let old_start = item.start_date.as_deref().and_then(Date::parse_iso);
        let old_target = item.target_date.as_deref().and_then(Date::parse_iso);
        if let Some(s) = old_start.filter(|s| *s > new_target) {
            let shift = old_target
                .map(|t| new_target.days_since_epoch() - t.days_since_epoch())
                .unwrap_or(0);
            let moved = s.add_days(shift);
            start = Some(Some(
                if moved > new_target {
                    new_target
                } else {
                    moved
                }
                .to_iso(),
            ));
        }
    }
    ItemPatch {
        name: patch.name.as_deref().map(plane_name),
        start_date: start,
        target_date: patch.target.map(iso),
        state: state.map(|s| s.id.clone()),
    }
}

/// The work item as it is after a successful PATCH of `body`. The PATCH answer carries
/// state, labels and assignees as bare ids, so we keep the listed, expanded item and take
/// only plain values from the answer (Plane sets `completed_at` when the state moves).
fn patched_item(
    mut item: WorkItem,
    body: &ItemPatch,
    state: Option<State>,
    answer: &WorkItem,
) -> WorkItem {
    if let Some(name) = &body.name {
        item.name = name.clone();
    }
    if let Some(start) = &body.start_date {
        item.start_date = start.clone();
    }
    if let Some(target) = &body.target_date {
        item.target_date = target.clone();
    }
    if let Some(s) = state {
        item.state = s;
    }
    if !answer.updated_at.is_empty() {
        item.updated_at = answer.updated_at.clone();
    }
    if body.state.is_some() {
        item.completed_at = answer.completed_at.clone();
    }
    item
}

/// Writes the patched fields into a shadow.
fn apply_to_shadow(shadow: &mut Shadow, patch: &FieldPatch) {
    if let Some(name) = &patch.name {
        shadow.name = name.clone();
    }
    if let Some(start) = patch.start {
        shadow.start_date = start.map(|d| d.to_iso());
    }
    if let Some(target) = patch.target {
        shadow.target_date = target.map(|d| d.to_iso());
    }
    if let Some(c) = patch.completion {
        shadow.state_group = c.target_group().to_string();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(start: Option<&str>, target: Option<&str>) -> WorkItem {
        WorkItem {
            id: "i".into(),
            start_date: start.map(String::from),
            target_date: target.map(String::from),
            ..WorkItem::default()
        }
    }

    fn date(s: &str) -> Option<Date> {
        Date::parse_iso(s)
    }

    #[test]
    fn patch_bodies() {
        let moved = FieldPatch {
            target: Some(date("2026-11-20")),
            ..FieldPatch::default()
        };
        // A target before the start moves the start along by the same days.
        let p = item_patch(&item(Some("2026-11-28"), Some("2026-12-01")), &moved, None);
        assert_eq!(p.start_date, Some(Some("2026-11-17".into())));
        assert_eq!(p.target_date, Some(Some("2026-11-20".into())));
        // … never past the new target (a start after the old target).
        let p = item_patch(&item(Some("2026-12-05"), Some("2026-12-01")), &moved, None);
        assert_eq!(p.start_date, Some(Some("2026-11-20".into())));
        // A start before the new target stays out of the body.
        let p = item_patch(&item(Some("2026-11-01"), Some("2026-12-01")), &moved, None);
        assert_eq!(p.start_date, None);
        // Cleared dates are nulls; names are cut to what Plane accepts.
        let cleared = FieldPatch {
            target: Some(None),
            name: Some("x".repeat(300)),
            ..FieldPatch::default()
        };
        let p = item_patch(&item(None, Some("2026-12-01")), &cleared, None);
        assert_eq!(p.target_date, Some(None));
        assert_eq!(p.name.as_ref().map(|n| n.chars().count()), Some(255));
        let done = State {
            id: "s-done".into(),
            name: "Done".into(),
            group: "completed".into(),
        };
        let ticked = FieldPatch {
            completion: Some(Completion::Completed),
            ..FieldPatch::default()
        };
        let p = item_patch(&item(None, Some("2026-12-01")), &ticked, Some(&done));
        assert_eq!(p.state.as_deref(), Some("s-done"));
        assert_eq!(p.to_json(), r#"{"state":"s-done"}"#);
    }
}
