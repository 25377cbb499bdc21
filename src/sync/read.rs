//! What a project's cycle reads before it plans: Plane's work items, rendered as they
//! arrive, and the calendar's listing and changed objects. Nothing here writes; the cycle
//! around it is `project.rs`.
//!
//! Reading is as cheap as the two sides allow:
//! - Plane: an incremental cycle lists work items newest change first and stops at the
//!   project's watermark (design §2b); every FULL_RECONCILE_EVERY cycles a full listing
//!   finds deletions and archivals, which Plane announces nowhere.
//! - Calendar: only objects whose ETag moved since the journal's are read (to see what
//!   the user changed); with CREATE_FROM_CALENDAR, objects without our markers too.

use std::collections::{BTreeMap, BTreeSet};

use super::apply::{Material, EXTERNAL_SOURCE, MULTIGET_BATCH};
use super::fields::{self, Fields};
use super::model::{self, Excluded};
use super::plan::{self, Foreign, Observed};
use super::project::Step;
use super::store::{CalendarStore, Tracker};
use super::timeline::Kind;
use super::Summary;
use crate::caldav::client::{path_of, percent_decode};
use crate::caldav::{ObjectData, ObjectRef};
use crate::config::SyncDirection;
use crate::ical::{self, Component};
use crate::plane::WorkItem;
use crate::state::{CalendarRecord, ItemRecord, Journal};

/// Plane's side of one project, rendered.
#[derive(Debug, Default)]
pub struct PlaneView {
    /// Listed (or fetched) items that qualify, by UID, and the items behind them.
    pub material: Material,
    /// Listed items that do not qualify, and why.
    pub excluded: BTreeMap<String, Excluded>,
    /// Items Plane answered 404 for when fetched one by one.
    pub gone: BTreeSet<String>,
    /// How many items Plane listed.
    pub listed: usize,
    /// Whether every work item was listed (no watermark).
    pub full: bool,
    /// Whether absence from the listing proves deletion (full, and every item readable).
    pub complete: bool,
    /// `updated_at` of the newest listed item: the next incremental listing stops there.
    pub newest: Option<String>,
    /// Whether an incremental listing found items changed since the watermark (their
    /// cycles' and modules' progress may have moved).
    pub items_changed: bool,
    /// What this run knows of the project's cycles and modules.
    pub timeline: plan::Timeline,
}

/// The calendar side of a project cycle: our records, the listing, and what was read of
/// the objects that changed. Objects read are handed to `view` for the apply step.
pub(super) fn read_calendar<'j, C: CalendarStore, T: Tracker>(
    cal: &mut C,
    plane: &mut T,
    journal: &'j Journal,
    step: &Step<'_>,
    view: &mut PlaneView,
) -> Result<CalendarSide<'j>, String> {
    // Borrowed, not copied: the journal holds a record per object of every calendar.
    let records: Vec<&ItemRecord> = journal
        .state()
        .items
        .values()
        .filter(|r| r.project == step.project.id)
        .collect();
    let stored = journal.state().calendars.get(&step.project.id);
    let listing = list_calendar(cal, step, stored, &records).map_err(|e| e.to_string())?;
    let mut fetched = BTreeMap::new();
    let reads = read_changed(cal, plane, step, &records, &listing, view, &mut fetched)?;
    view.material.fetched = fetched;
    Ok(CalendarSide {
        listing,
        adoptable: reads.adoptable,
        observed: reads.observed,
        foreign: reads.foreign.into_values().collect(),
        records,
        timeline_touched: reads.timeline_touched,
    })
}

/// The calendar's objects with their ETags, as cheaply as the server allows: unchanged
/// sync-token or ctag → the journal's view, no request; a stored sync-token → the
/// journal's view patched with one sync-collection REPORT; otherwise (first contact, an
/// expired token, a server without RFC 6578) a full PROPFIND listing.
fn list_calendar<C: CalendarStore>(
    cal: &mut C,
    step: &Step<'_>,
    stored: Option<&CalendarRecord>,
    records: &[&ItemRecord],
) -> Result<Vec<ObjectRef>, crate::caldav::DavError> {
    let stored = match stored {
        Some(s)
            if !step.first_contact && crate::caldav::client::same_href(&s.href, step.calendar) =>
        {
            s
        }
        _ => return cal.objects(step.calendar),
    };
    let seen = step.seen;
    let unchanged = match (&seen.sync_token, &seen.ctag) {
        (Some(t), _) => stored.sync_token.as_ref() == Some(t),
        (None, Some(c)) => stored.ctag.as_ref() == Some(c),
        (None, None) => false,
    };
    let mut view: BTreeMap<String, ObjectRef> = records
        .iter()
        .map(|r| {
            let o = ObjectRef {
                href: r.href.clone(),
                etag: r.etag.clone(),
            };
            (percent_decode(&r.href), o)
        })
        .collect();
    if unchanged {
        return Ok(view.into_values().collect());
    }
    let Some(token) = &stored.sync_token else {
        return cal.objects(step.calendar);
    };
    match cal.changes(step.calendar, token) {
        Ok(delta) if !delta.truncated => {
            for o in delta.changed {
                view.insert(percent_decode(&o.href), o);
            }
            for href in delta.removed {
                view.remove(&percent_decode(&href));
            }
            Ok(view.into_values().collect())
        }
        Ok(_) => cal.objects(step.calendar),
        Err(e) if e.is_invalid_sync_token() || e.is_sync_unsupported() => {
            log::info!("{}: {e}; listing the whole calendar", step.calendar);
            cal.objects(step.calendar)
        }
        Err(e) => Err(e),
    }
}

/// What planning needs from the calendar side (see [`read_calendar`]).
pub(super) struct CalendarSide<'j> {
    /// The calendar's objects and ETags.
    pub(super) listing: Vec<ObjectRef>,
    /// Objects of ours at hrefs we do not know (first contact), by UID.
    pub(super) adoptable: BTreeMap<String, ObjectRef>,
    /// The fields of our objects whose ETag moved, by UID.
    pub(super) observed: BTreeMap<String, Observed>,
    /// New objects to turn into work items (CREATE_FROM_CALENDAR).
    pub(super) foreign: Vec<Foreign>,
    /// Our journal records of this project.
    pub(super) records: Vec<&'j ItemRecord>,
    /// Kinds of cycle/module objects changed or deleted in the calendar (their listing
    /// is read then, so the edit is reverted or the object recreated).
    pub(super) timeline_touched: BTreeSet<Kind>,
}

/// Lists and renders the project's work items (incrementally unless `step.full`).
pub(super) fn read_plane<T: Tracker>(
    plane: &mut T,
    journal: &Journal,
    step: &Step<'_>,
    summary: &mut Summary,
) -> Option<PlaneView> {
    let ident = &step.project.identifier;
    if !step.list_items {
        // Neither complete nor full: nothing is deleted for not being listed.
        return Some(PlaneView::default());
    }
    let watermark = journal
        .state()
        .projects
        .get(&step.project.id)
        .and_then(|r| r.watermark.clone())
        .filter(|_| !step.full);
    let mark = watermark
        .as_deref()
        .and_then(crate::plane::Timestamp::parse);
    // Each item is rendered as its page arrives: the view keeps the item and its
    // fingerprint, never the page or the whole listing as read.
    let uids = uid_index(journal, &step.project.id);
    let mut view = PlaneView {
        full: watermark.is_none(),
        ..PlaneView::default()
    };
    let mut newest = None;
    let listed = plane.each_work_item_since(&step.project.id, watermark.as_deref(), &mut |item| {
        view.listed += 1;
        if newest.is_none() {
            newest = Some(item.updated_at.clone());
        }
        // The item at the watermark is listed again every time: only newer ones count.
        if mark.is_some_and(|m| item.updated().is_some_and(|t| t > m)) {
            view.items_changed = true;
        }
        add_item(&mut view, item, step, &uids);
    });
    let end = match listed {
        Ok(end) => end,
        Err(e) => {
            summary.error(format!("project {ident}: {e}"));
            return None;
        }
    };
    for e in &end.bad {
        summary.error(format!("project {ident}: {e}; item skipped"));
    }
    view.listed += end.bad.len();
    view.complete = watermark.is_none() && end.complete && end.bad.is_empty();
    view.newest = newest.filter(|_| end.bad.is_empty());
    Some(view)
}

/// Work item id → UID, for items whose UID is not derived from their id (objects that
/// became work items).
pub(super) fn uid_index(journal: &Journal, project: &str) -> BTreeMap<String, String> {
    journal
        .state()
        .items
        .values()
        .filter(|r| r.project == project)
        .filter(|r| Kind::of_uid(&r.uid).is_none() && !r.item_pending())
        .filter(|r| model::work_item_of(&r.uid) != Some(r.work_item.as_str()))
        .map(|r| (r.work_item.clone(), r.uid.clone()))
        .collect()
}

/// Renders one item into the view.
pub(super) fn add_item(
    view: &mut PlaneView,
    item: WorkItem,
    step: &Step<'_>,
    uids: &BTreeMap<String, String>,
) {
    // Only the fields and the fingerprint are kept: the component is rendered again when
    // the object is written.
    match model::render(&item, step.project, step.mapping).map(|r| r.desired) {
        Ok(mut d) => {
            // An item made from a calendar object keeps that object's UID: the journal
            // knows it, and so does Plane (external_id), even after a lost journal.
            let external = (item.external_source.as_deref() == Some(EXTERNAL_SOURCE))
                .then(|| item.external_id.clone())
                .flatten();
            if let Some(uid) = uids.get(&item.id).cloned().or(external) {
                d.uid = uid;
            }
            view.material.desired.insert(d.uid.clone(), d);
        }
        Err(why) => {
            view.excluded.insert(item.id.clone(), why);
        }
    }
    view.material.items.insert(item.id.clone(), Box::new(item));
}

/// Objects read while planning: the fields of our changed objects, objects of ours at
/// foreign hrefs (first contact), and new objects to turn into work items.
#[derive(Default)]
struct CalendarReads {
    observed: BTreeMap<String, Observed>,
    adoptable: BTreeMap<String, ObjectRef>,
    /// By decoded href, so the order does not depend on the server's answer.
    foreign: BTreeMap<String, Foreign>,
    /// See [`CalendarSide::timeline_touched`].
    timeline_touched: BTreeSet<Kind>,
}

/// Reads what planning needs from the calendar: the objects whose ETag moved (and, on
/// first contact or with CREATE_FROM_CALENDAR, the objects at hrefs we do not know), in
/// multigets of [`MULTIGET_BATCH`] objects. Each batch is looked at and dropped, except
/// the first [`MULTIGET_BATCH`] objects, kept for the apply step (which reads any other
/// object it updates again, batch by batch): a cycle that finds every object changed
/// holds one batch of bodies, not the calendar. Items changed in the calendar but
/// missing from an incremental Plane listing are fetched from Plane one by one.
fn read_changed<C: CalendarStore, T: Tracker>(
    cal: &mut C,
    plane: &mut T,
    step: &Step<'_>,
    records: &[&ItemRecord],
    listing: &[ObjectRef],
    view: &mut PlaneView,
    fetched: &mut BTreeMap<String, ObjectData>,
) -> Result<CalendarReads, String> {
    let two_way = step.two_way.direction == SyncDirection::Both;
    // An object whose work item is being made but Plane does not show: read again as a
    // new one, so the POST is retried (Plane's 409 on its external id answers one that
    // landed unseen). Not an object of ours yet: its changes are no edits.
    let records: Vec<&ItemRecord> = records
        .iter()
        .filter(|r| !r.item_pending() || view.material.desired.contains_key(&r.uid))
        .copied()
        .collect();
    let (changed, vanished) = split_records(&records, listing);
    let look_at_unknown = step.first_contact || (step.create_from_calendar && two_way);
    // As `same_href` compares: decoded paths.
    let path = |href: &str| percent_decode(&path_of(href));
    let known: BTreeSet<String> = records.iter().map(|r| path(&r.href)).collect();
    let unknown: BTreeMap<String, &ObjectRef> = listing
        .iter()
        .filter(|_| look_at_unknown)
        .map(|o| (percent_decode(&o.href), o))
        .filter(|(key, _)| model::uid_from_decoded(key).is_none())
        .filter(|(_, o)| !known.contains(&path(&o.href)))
        .collect();
    drop(known);
    let mut reads = CalendarReads::default();
    // Cycle and module objects are not work items: a change to one is answered from
    // their listing (and never read as an edit for Plane).
    let touched: Vec<&ItemRecord> = changed.iter().map(|(_, r)| *r).chain(vanished).collect();
    let (touched, timeline): (Vec<&ItemRecord>, Vec<&ItemRecord>) = touched
        .into_iter()
        .partition(|r| Kind::of_uid(&r.uid).is_none());
    reads.timeline_touched = timeline
        .iter()
        .filter_map(|r| Kind::of_uid(&r.uid))
        .collect();
    fetch_unlisted(plane, step, &touched, view)?;
    let changed: BTreeMap<String, &ItemRecord> = changed
        .into_iter()
        .filter(|(_, r)| two_way && Kind::of_uid(&r.uid).is_none())
        .collect();
    let mut hrefs: Vec<String> = changed.values().map(|r| r.href.clone()).collect();
    hrefs.extend(unknown.values().map(|o| o.href.clone()));
    for batch in hrefs.chunks(MULTIGET_BATCH) {
        let objects = cal
            .multiget(step.calendar, batch)
            .map_err(|e| e.to_string())?;
        for o in objects {
            let key = percent_decode(&o.href);
            if let Some(r) = changed.get(&key) {
                if let Some(seen) = observe(&o, r, step) {
                    reads.observed.insert(r.uid.clone(), seen);
                }
            }
            if let Some(at) = unknown.get(&key) {
                sort_unknown(at, &o, view, step, &mut reads);
            }
            if fetched.len() < MULTIGET_BATCH {
                fetched.insert(key, o);
            }
        }
    }
    Ok(reads)
}

/// The journal's objects whose ETag in the listing differs from the journal's (by decoded
/// href, each href decoded once), and those missing from the listing.
fn split_records<'r>(
    records: &[&'r ItemRecord],
    listing: &[ObjectRef],
) -> (Vec<(String, &'r ItemRecord)>, Vec<&'r ItemRecord>) {
    let etags: BTreeMap<String, Option<&str>> = listing
        .iter()
        .map(|o| (percent_decode(&o.href), o.etag.as_deref()))
        .collect();
    let mut changed = Vec::new();
    let mut vanished = Vec::new();
    for r in records.iter().copied() {
        let key = percent_decode(&r.href);
        match etags.get(&key) {
            Some(etag) if etag.is_none() || *etag != r.etag.as_deref() => changed.push((key, r)),
            Some(_) => {}
            None => vanished.push(r),
        }
    }
    (changed, vanished)
}

/// An object at an href the journal does not know, as read: ours (a UID of an item we
/// sync, to adopt) or, with CREATE_FROM_CALENDAR, a new work item.
fn sort_unknown(
    at: &ObjectRef,
    data: &ObjectData,
    view: &PlaneView,
    step: &Step<'_>,
    reads: &mut CalendarReads,
) {
    match classify_unknown(data, view, step) {
        Unknown::Ours(uid) => {
            let found = ObjectRef {
                href: at.href.clone(),
                etag: data.etag.clone(),
            };
            reads.adoptable.insert(uid, found);
        }
        Unknown::NewItem(f) if step.create_from_calendar => {
            reads.foreign.insert(percent_decode(&at.href), f);
        }
        _ => {}
    }
}

/// Items edited or deleted in the calendar that an incremental listing did not include
/// (unchanged in Plane since the watermark): read them one by one, so the edit can be
/// merged and the deletion answered (recreate, or clear the date).
fn fetch_unlisted<T: Tracker>(
    plane: &mut T,
    step: &Step<'_>,
    changed: &[&ItemRecord],
    view: &mut PlaneView,
) -> Result<(), String> {
    let uids = BTreeMap::from_iter(changed.iter().map(|r| (r.work_item.clone(), r.uid.clone())));
    for r in changed {
        // A pending record's item is listed (or it would not be here): see `read_changed`.
        let listed = r.item_pending() || view.material.items.contains_key(&r.work_item);
        if listed || view.complete {
            continue;
        }
        match plane
            .work_item(&step.project.id, &r.work_item)
            .map_err(|e| e.to_string())?
        {
            Some(item) => add_item(view, item, step, &uids),
            None => {
                view.gone.insert(r.work_item.clone());
            }
        }
    }
    Ok(())
}

/// The fields a user may have changed in one of our objects.
pub(super) fn observe(o: &ObjectData, r: &ItemRecord, step: &Step<'_>) -> Option<Observed> {
    let cal = ical::parse(&o.ical).ok()?;
    let c = model::find_item(&cal, &r.uid)?;
    let base = Fields::of_shadow(&r.shadow);
    Some(Observed {
        fields: fields::of_calendar(c, step.mapping, step.zone, &base),
        modified: fields::modified_at(c),
    })
}

/// What an object at an href we do not know is.
enum Unknown {
    /// One of our objects (its UID is ours, or an item's external id).
    Ours(String),
    /// A user's event or task that can become a work item.
    NewItem(Foreign),
    /// Something else (recurring, undated, unreadable): never touched.
    Other,
}

fn classify_unknown(o: &ObjectData, view: &PlaneView, step: &Step<'_>) -> Unknown {
    let Ok(cal) = ical::parse(&o.ical) else {
        return Unknown::Other;
    };
    let Some(c) = cal
        .components
        .iter()
        .find(|c| matches!(c.name.as_str(), "VEVENT" | "VTODO"))
    else {
        return Unknown::Other;
    };
    let Some(uid) = c.text("UID") else {
        return Unknown::Other;
    };
    let ours = model::is_our_uid(&uid) || view.material.desired.contains_key(&uid);
    if ours {
        return Unknown::Ours(uid);
    }
    match new_item_fields(c, step) {
        Some(fields) => Unknown::NewItem(Foreign {
            uid,
            href: o.href.clone(),
            etag: o.etag.clone(),
            fields,
        }),
        None => Unknown::Other,
    }
}

/// The fields of a user's event or task that may become a work item: one that is not
/// recurring, carries none of our markers, and has a date.
fn new_item_fields(c: &Component, step: &Step<'_>) -> Option<Fields> {
    let marked = [
        "X-PLANE-WORK-ITEM-ID",
        "X-PLANE-CYCLE-ID",
        "X-PLANE-MODULE-ID",
    ]
    .iter()
    .any(|m| c.property(m).is_some());
    let recurring = c.property("RRULE").is_some() || c.property("RECURRENCE-ID").is_some();
    if marked || recurring {
        return None;
    }
    let base = Fields::new("", None, None, fields::Completion::Open);
    let f = fields::of_calendar(c, step.mapping, step.zone, &base);
    (f.target.is_some() && !f.name.trim().is_empty()).then_some(f)
}
