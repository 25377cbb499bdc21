//! The pure planning step: one project's items as Plane shows them, the calendar listing,
//! the calendar objects that changed, and the journal in; a list of actions for either side
//! out. No I/O — every sync decision is made here and table-tested below.
//!
//! Identity is the UID (deterministic from the work item id, or the UID of a calendar
//! object that became a work item). For each UID we look at three facts, as vdirsyncer
//! does with its (href, etag) status:
//! D — the item should have an object (rendered, with its synced fields and a content hash);
//! J — the journal knows an object we synced (href, etag, shadow);
//! R — the calendar listing has an object at that href (with its current etag).
//! When R's ETag differs from J's, the caller has read the object: [`Observed`] holds the
//! fields a user can edit, and a per-field three-way merge against J's shadow decides what
//! flows to Plane.

use std::collections::{BTreeMap, BTreeSet};

use super::fields::{self, Conflict, ConflictPolicy, FieldPatch, Fields};
use super::model::{self, Desired, Excluded};
use super::timeline::Kind;
use crate::caldav::client::{path_of, percent_decode};
use crate::caldav::ObjectRef;
use crate::config::{CalendarDelete, SyncDirection};
use crate::state::ItemRecord;

/// One step for `apply`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// PUT a new object with `If-None-Match: *`.
    Create {
        /// Object UID.
        uid: String,
        /// Where to put it.
        href: String,
        /// Why it is created when the journal already knew it (deleted in the calendar).
        recreate: bool,
    },
    /// Change Plane first when `patch` says so; then read the object, merge our owned
    /// properties into it, and PUT it with `If-Match` when something changed (else only
    /// record its new ETag).
    Update {
        /// Object UID.
        uid: String,
        /// Where it is.
        href: String,
        /// The ETag the listing showed.
        etag: Option<String>,
        /// Why: the item changed in Plane, the object changed in the calendar, or we
        /// found an object of ours the journal did not know (adoption).
        reason: UpdateReason,
        /// Calendar edits that flow to Plane (empty: Plane is not written). Boxed, like
        /// `landed`, so that every action of a plan (mostly creates) is small.
        patch: Box<FieldPatch>,
        /// Fields changed on both sides, and who won.
        conflicts: Vec<Conflict>,
        /// Writes of ours that landed without being journaled (a crash between request
        /// and journal line), as a change of the journal's shadow: it becomes the merge
        /// base before anything else is written, so a second crash cannot lose it.
        landed: Box<FieldPatch>,
    },
    /// DELETE with `If-Match`.
    Delete {
        /// Object UID.
        uid: String,
        /// Where it is.
        href: String,
        /// The ETag the listing showed.
        etag: Option<String>,
        /// Why.
        reason: DeleteReason,
    },
    /// Drop the journal record: the object is gone and should be.
    Forget {
        /// Object UID.
        uid: String,
    },
    /// CALENDAR_DELETE=clear-date: the user deleted our event; clear the work item's
    /// target date in Plane, then forget the record.
    ClearDate {
        /// Object UID.
        uid: String,
        /// The work item.
        work_item: String,
    },
    /// CREATE_FROM_CALENDAR: a new object in the project's calendar becomes a work item.
    CreateItem(Box<Foreign>),
}

/// Why an object is updated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateReason {
    /// The work item changed in Plane.
    PlaneChanged,
    /// Someone changed the object in the calendar (and maybe the item in Plane too).
    CalendarChanged,
    /// An object of ours the journal does not know (lost journal, or the seed's events).
    Adopt,
}

impl UpdateReason {
    /// As printed by `--dry-run`.
    pub fn as_str(self) -> &'static str {
        match self {
            UpdateReason::PlaneChanged => "changed in Plane",
            UpdateReason::CalendarChanged => "edited in the calendar",
            UpdateReason::Adopt => "adopting an existing event",
        }
    }
}

/// Why an object is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteReason {
    /// The item no longer qualifies.
    Excluded(Excluded),
    /// The item is not in Plane's listing any more (deleted, archived, moved).
    Gone,
    /// The cycle or module is not in Plane's listing any more (deleted, archived).
    TimelineGone,
    /// SYNC_CYCLES or SYNC_MODULES was turned off (or the calendar takes no events).
    TimelineOff,
}

impl DeleteReason {
    /// As printed in summaries.
    pub fn as_str(self) -> &'static str {
        match self {
            DeleteReason::Excluded(e) => e.as_str(),
            DeleteReason::Gone => "issue deleted or archived",
            DeleteReason::TimelineGone => "cycle or module deleted or archived",
            DeleteReason::TimelineOff => "SYNC_CYCLES/SYNC_MODULES off",
        }
    }
}

/// A calendar object of ours whose ETag moved, as read by the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// The synced fields it shows (fields it cannot show are the shadow's).
    pub fields: Fields,
    /// Its LAST-MODIFIED (or DTSTAMP), Unix seconds, for CONFLICT_POLICY=newest.
    pub modified: Option<i64>,
}

/// A calendar object without our markers that CREATE_FROM_CALENDAR turns into a work item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Foreign {
    /// Its UID: the work item's `external_id`, and the UID we keep syncing it under.
    pub uid: String,
    /// Where it is.
    pub href: String,
    /// Its ETag.
    pub etag: Option<String>,
    /// Name, dates and completion read from it.
    pub fields: Fields,
}

/// How the two directions are combined (from the configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TwoWay {
    /// SYNC_DIRECTION.
    pub direction: SyncDirection,
    /// CONFLICT_POLICY.
    pub policy: ConflictPolicy,
    /// CALENDAR_DELETE.
    pub calendar_delete: CalendarDelete,
}

impl Default for TwoWay {
    fn default() -> TwoWay {
        TwoWay {
            direction: SyncDirection::Both,
            policy: ConflictPolicy::Plane,
            calendar_delete: CalendarDelete::Recreate,
        }
    }
}

/// What a run knows of one kind of cycle/module objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Listed {
    /// Not listed this run (an incremental cycle with no reason to): absence from the
    /// desired objects proves nothing, and our objects of this kind are kept.
    #[default]
    Skipped,
    /// Listed in full: an object of ours whose cycle or module is not desired goes.
    Complete,
    /// Switched off (or the calendar takes no events): every object of ours of this
    /// kind goes, as a filter would have it.
    Off,
}

/// What a run knows of the cycles and of the modules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Timeline {
    /// The cycles.
    pub cycles: Listed,
    /// The modules.
    pub modules: Listed,
}

impl Timeline {
    /// The state of one kind.
    pub fn of(&self, kind: Kind) -> Listed {
        match kind {
            Kind::Cycle => self.cycles,
            Kind::Module => self.modules,
        }
    }

    /// Sets the state of one kind.
    pub fn set(&mut self, kind: Kind, listed: Listed) {
        match kind {
            Kind::Cycle => self.cycles = listed,
            Kind::Module => self.modules = listed,
        }
    }
}

/// Everything `plan` looks at for one project's calendar.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    /// The calendar collection path (ends in `/`).
    pub calendar: &'a str,
    /// Items that should have an object.
    pub desired: &'a [&'a Desired],
    /// Items listed in Plane that should not have an object, and why.
    pub excluded: &'a BTreeMap<String, Excluded>,
    /// Work items Plane answered 404 for when asked one by one (deleted or archived).
    pub gone: &'a BTreeSet<String>,
    /// How many work items Plane listed for the project (all, qualifying or not).
    pub plane_listed: usize,
    /// Whether the Plane listing is complete and trustworthy: false when some items could
    /// not be read, or the listing was incremental, so absence proves nothing and no
    /// "gone" deletion may happen.
    pub plane_complete: bool,
    /// The calendar's objects.
    pub listing: &'a [ObjectRef],
    /// Objects at hrefs outside our naming scheme that hold one of our UIDs, by UID (the
    /// seed's events, or objects that became work items; read on first contact).
    pub adoptable: &'a BTreeMap<String, ObjectRef>,
    /// Objects of ours whose ETag moved since the journal's, read, by UID.
    pub observed: &'a BTreeMap<String, Observed>,
    /// New objects to turn into work items (empty unless CREATE_FROM_CALENDAR).
    pub foreign: &'a [Foreign],
    /// Journal records of this project.
    pub journal: &'a [&'a ItemRecord],
    /// MAX_DELETE_FRACTION.
    pub max_delete_fraction: f64,
    /// How the directions combine.
    pub two_way: TwoWay,
    /// What is known of the cycles and modules (their desired objects are in `desired`,
    /// the undated or cancelled ones in `excluded`, by their ids).
    pub timeline: Timeline,
}

/// The plan for one calendar.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// Steps, in order.
    pub actions: Vec<Action>,
    /// Set when the safety valve stopped the whole calendar; `actions` is then empty.
    pub blocked: Option<String>,
    /// Objects that need no work.
    pub unchanged: usize,
}

/// Fewer deletions than this never trip the fraction rule: completing the only item of
/// a small project must still delete its event.
const VALVE_MIN_DELETES: usize = 3;

fn key(href: &str) -> String {
    percent_decode(&path_of(href))
}

/// The facts about one UID.
struct Facts<'a> {
    uid: String,
    work_item: String,
    href: String,
    d: Option<&'a Desired>,
    j: Option<&'a ItemRecord>,
    r: Option<&'a ObjectRef>,
}

/// Plans one calendar.
pub fn plan(input: &Input<'_>) -> Plan {
    // Each listed href decoded once: for the lookup and for the UID it names.
    let keyed: Vec<(String, &ObjectRef)> =
        input.listing.iter().map(|o| (key(&o.href), o)).collect();
    let journal: BTreeMap<&str, &ItemRecord> =
        input.journal.iter().map(|r| (r.uid.as_str(), *r)).collect();
    let desired: BTreeMap<&str, &Desired> =
        input.desired.iter().map(|d| (d.uid.as_str(), *d)).collect();

    // Every UID any side knows of. Remote objects count only when their href follows our
    // naming scheme: objects we did not create are never touched.
    let mut uids: BTreeSet<String> = desired.keys().map(|u| u.to_string()).collect();
    uids.extend(journal.keys().map(|u| u.to_string()));
    let mut ours = 0;
    for (k, _) in &keyed {
        if let Some(uid) = model::uid_from_decoded(k) {
            uids.insert(uid);
            ours += 1;
        }
    }
    let remote: BTreeMap<String, &ObjectRef> = keyed.into_iter().collect();
    uids.extend(input.adoptable.keys().cloned());

    let mut out = Plan::default();
    for uid in uids {
        let d = desired.get(uid.as_str()).copied();
        let j = journal.get(uid.as_str()).copied();
        let href = match (j, input.adoptable.get(&uid)) {
            (Some(j), _) => j.href.clone(),
            (None, Some(found)) => path_of(&found.href),
            (None, None) => model::href_for(input.calendar, &uid),
        };
        let work_item = match (d, j) {
            (Some(d), _) => d.work_item.clone(),
            (None, Some(j)) => j.work_item.clone(),
            (None, None) => model::object_id_of(&uid).unwrap_or_default().to_string(),
        };
        let facts = Facts {
            r: remote.get(&key(&href)).copied(),
            uid,
            work_item,
            href,
            d,
            j,
        };
        match decide(input, facts) {
            Some(a) => out.actions.push(a),
            None => out.unchanged += 1,
        }
    }
    if input.two_way.direction == SyncDirection::Both {
        out.actions.extend(
            input
                .foreign
                .iter()
                .map(|f| Action::CreateItem(Box::new(f.clone()))),
        );
    }
    // Held through the apply step: no room for actions that never come.
    out.actions.shrink_to_fit();
    match valve(input, &out, journal.len(), ours) {
        Some(reason) => Plan {
            actions: Vec::new(),
            blocked: Some(reason),
            unchanged: 0,
        },
        None => out,
    }
}

/// The action for one UID, or `None` when it needs nothing.
fn decide(input: &Input<'_>, f: Facts<'_>) -> Option<Action> {
    if let Some(kind) = Kind::of_uid(&f.uid) {
        return decide_timeline(input, kind, f);
    }
    let Facts {
        uid,
        work_item,
        href,
        d,
        j,
        r,
    } = f;
    match (d, j, r) {
        (Some(_), None, None) => Some(Action::Create {
            uid,
            href,
            recreate: false,
        }),
        // A create that was never confirmed (write-ahead record without ETag).
        (Some(_), Some(j), None) if j.etag.is_none() => Some(Action::Create {
            uid,
            href,
            recreate: false,
        }),
        (Some(d), Some(j), None) => Some(deleted_in_calendar(input, d, j, uid, href)),
        (Some(_), None, Some(r)) => Some(update(uid, href, r, UpdateReason::Adopt)),
        (Some(d), Some(j), Some(r)) => {
            if r.etag.is_none() || r.etag != j.etag {
                Some(calendar_changed(input, d, j, r, uid, href))
            } else if d.shadow.content_hash != j.shadow.content_hash {
                Some(update(uid, href, r, UpdateReason::PlaneChanged))
            } else {
                None
            }
        }
        // A work item being made from the user's object that Plane does not show: the
        // object is offered as a new item again (`foreign`), never deleted.
        (None, Some(j), Some(_)) if j.item_pending() => None,
        (None, _, Some(r)) => {
            let reason = match input.excluded.get(&work_item) {
                Some(e) => Some(DeleteReason::Excluded(*e)),
                None if input.plane_complete || input.gone.contains(&work_item) => {
                    Some(DeleteReason::Gone)
                }
                // Not listed, but the listing had holes or was incremental: keep it.
                None => None,
            };
            reason.map(|reason| Action::Delete {
                uid,
                href,
                etag: r.etag.clone(),
                reason,
            })
        }
        (None, Some(_), None) => Some(Action::Forget { uid }),
        (None, None, None) => None,
    }
}

/// The action for one cycle's or module's object. They are read-only mirrors of Plane: a
/// calendar edit is overwritten by Plane's version (never sent to Plane), an object the
/// user deleted comes back whatever CALENDAR_DELETE says, and nothing here ever creates
/// a work item.
fn decide_timeline(input: &Input<'_>, kind: Kind, f: Facts<'_>) -> Option<Action> {
    let Facts {
        uid,
        work_item,
        href,
        d,
        j,
        r,
    } = f;
    match (d, j, r) {
        (Some(_), j, None) => Some(Action::Create {
            uid,
            href,
            recreate: j.is_some_and(|j| j.etag.is_some()),
        }),
        (Some(_), None, Some(r)) => Some(update(uid, href, r, UpdateReason::Adopt)),
        (Some(d), Some(j), Some(r)) => {
            if r.etag.is_none() || r.etag != j.etag {
                // Our owned properties are compared when it is read: a changed one is put
                // back (with a WARN), an alarm the user added is kept.
                Some(update(uid, href, r, UpdateReason::CalendarChanged))
            } else if d.shadow.content_hash != j.shadow.content_hash {
                Some(update(uid, href, r, UpdateReason::PlaneChanged))
            } else {
                None
            }
        }
        (None, _, Some(r)) => {
            let reason = match (input.excluded.get(&work_item), input.timeline.of(kind)) {
                (Some(e), _) => DeleteReason::Excluded(*e),
                (None, Listed::Off) => DeleteReason::TimelineOff,
                (None, Listed::Complete) => DeleteReason::TimelineGone,
                (None, Listed::Skipped) => return None,
            };
            Some(Action::Delete {
                uid,
                href,
                etag: r.etag.clone(),
                reason,
            })
        }
        (None, Some(_), None) => Some(Action::Forget { uid }),
        (None, None, None) => None,
    }
}

fn update(uid: String, href: String, r: &ObjectRef, reason: UpdateReason) -> Action {
    Action::Update {
        uid,
        href,
        etag: r.etag.clone(),
        reason,
        patch: Box::default(),
        conflicts: Vec::new(),
        landed: Box::default(),
    }
}

/// The object's ETag moved: merge what the user changed with what Plane changed.
fn calendar_changed(
    input: &Input<'_>,
    d: &Desired,
    j: &ItemRecord,
    r: &ObjectRef,
    uid: String,
    href: String,
) -> Action {
    let mut action = update(uid, href, r, UpdateReason::CalendarChanged);
    let observed = input.observed.get(j.uid.as_str());
    if let (SyncDirection::Both, Some(seen)) = (input.two_way.direction, observed) {
        let plane = Fields::of_shadow(&d.shadow);
        let shadow = fields::base(
            &Fields::of_shadow(&j.shadow),
            (
                &plane,
                j.sent_to_plane.as_deref().map(Fields::of_shadow).as_ref(),
            ),
            (
                &seen.fields,
                j.sent_to_calendar
                    .as_deref()
                    .map(Fields::of_shadow)
                    .as_ref(),
            ),
        );
        let newer = fields::newer_side(&d.updated_at, seen.modified);
        let merged = fields::merge(&plane, &shadow, &seen.fields, input.two_way.policy, newer);
        if let Action::Update {
            patch,
            conflicts,
            landed,
            ..
        } = &mut action
        {
            **patch = FieldPatch::between(&plane, &merged.fields);
            *conflicts = merged.conflicts;
            **landed = FieldPatch::between(&Fields::of_shadow(&j.shadow), &shadow);
        }
    }
    action
}

/// Our object is gone from the calendar while the item still qualifies.
fn deleted_in_calendar(
    input: &Input<'_>,
    d: &Desired,
    j: &ItemRecord,
    uid: String,
    href: String,
) -> Action {
    // Clearing the date only answers the user's deletion when Plane still has the date
    // they deleted; a date Plane changed since is news, shown again.
    let clear = input.two_way.direction == SyncDirection::Both
        && input.two_way.calendar_delete == CalendarDelete::ClearDate
        && d.shadow.target_date == j.shadow.target_date;
    if clear {
        Action::ClearDate {
            uid,
            work_item: d.work_item.clone(),
        }
    } else {
        Action::Create {
            uid,
            href,
            recreate: true,
        }
    }
}

/// The safety valve (vdirsyncer's lesson): a Plane answer that suddenly lists nothing,
/// or a cycle that would delete much of a calendar, is more likely a fault than intent.
/// Clearing dates in Plane because events vanished counts as deleting.
/// `ours`: how many listed objects have hrefs of our naming scheme.
fn valve(input: &Input<'_>, plan: &Plan, journaled: usize, ours: usize) -> Option<String> {
    let deleting: Vec<&str> = plan
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::Delete { uid, .. } | Action::ClearDate { uid, .. } => Some(uid.as_str()),
            _ => None,
        })
        .collect();
    let deletes = deleting.len();
    // The empty-listing rule is about the work-item listing; cycles and modules come
    // from listings of their own, and count in the fraction below.
    let item_deletes = deleting
        .iter()
        .filter(|u| Kind::of_uid(u).is_none())
        .count();
    let mapped = journaled.max(ours + input.adoptable.len());
    if item_deletes > 0 && input.plane_listed == 0 && journaled > 0 && input.plane_complete {
        Some(format!(
            "Plane listed no work items but {journaled} are synced; refusing to delete {item_deletes} events"
        ))
    } else if deletes >= VALVE_MIN_DELETES
        && deletes as f64 > input.max_delete_fraction * mapped as f64
    {
        Some(format!(
            "this cycle would delete {deletes} of {mapped} events, more than MAX_DELETE_FRACTION={}",
            input.max_delete_fraction
        ))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConflictPolicy;
    use crate::state::Shadow;

    const CAL: &str = "/cal/work/";

    fn desired(id: &str, hash: &str) -> Desired {
        Desired {
            uid: model::uid_for(id),
            work_item: id.into(),
            label: format!("[P-1] {id}"),
            updated_at: "2026-11-23T10:00:00Z".into(),
            shadow: Shadow {
                content_hash: hash.into(),
                ..Shadow::default()
            },
        }
    }

    fn record(id: &str, etag: &str, hash: &str) -> ItemRecord {
        let uid = model::uid_for(id);
        ItemRecord {
            href: model::href_for(CAL, &uid),
            uid,
            work_item: id.into(),
            project: "p".into(),
            etag: Some(etag.into()),
            plane_updated_at: String::new(),
            sequence: 0,
            sent_to_plane: None,
            sent_to_calendar: None,
            shadow: Shadow {
                content_hash: hash.into(),
                ..Shadow::default()
            },
        }
    }

    fn remote(id: &str, etag: &str) -> ObjectRef {
        ObjectRef {
            href: model::href_for(CAL, &model::uid_for(id)),
            etag: Some(etag.into()),
        }
    }

    struct Case {
        desired: Vec<Desired>,
        excluded: Vec<(&'static str, Excluded)>,
        journal: Vec<ItemRecord>,
        listing: Vec<ObjectRef>,
        adoptable: Vec<(String, ObjectRef)>,
        observed: Vec<(String, Observed)>,
        foreign: Vec<Foreign>,
        gone: Vec<&'static str>,
        complete: bool,
        two_way: TwoWay,
        timeline: Timeline,
    }

    impl Case {
        fn new() -> Case {
            Case {
                desired: vec![],
                excluded: vec![],
                journal: vec![],
                listing: vec![],
                adoptable: vec![],
                observed: vec![],
                foreign: vec![],
                gone: vec![],
                complete: true,
                two_way: TwoWay::default(),
                timeline: Timeline::default(),
            }
        }
        fn run(&self) -> Plan {
            let excluded: BTreeMap<String, Excluded> = self
                .excluded
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect();
            let journal: Vec<&ItemRecord> = self.journal.iter().collect();
            let adoptable: BTreeMap<String, ObjectRef> = self.adoptable.iter().cloned().collect();
            let observed: BTreeMap<String, Observed> = self.observed.iter().cloned().collect();
            let gone: BTreeSet<String> = self.gone.iter().map(|s| s.to_string()).collect();
            plan(&Input {
                observed: &observed,
                foreign: &self.foreign,
                gone: &gone,
                two_way: self.two_way,
                adoptable: &adoptable,
                calendar: CAL,
                desired: &self.desired.iter().collect::<Vec<_>>(),
                excluded: &excluded,
                plane_listed: self.desired.len() + self.excluded.len(),
                plane_complete: self.complete,
                listing: &self.listing,
                journal: &journal,
                max_delete_fraction: 0.5,
                timeline: self.timeline,
            })
        }
    }

    fn kinds(p: &Plan) -> Vec<String> {
        p.actions
            .iter()
            .map(|a| match a {
                Action::Create { uid, recreate, .. } => {
                    format!("create{} {uid}", if *recreate { "*" } else { "" })
                }
                Action::Update {
                    uid, reason, patch, ..
                } if !patch.is_empty() => {
                    format!("update({reason:?}) {uid} → plane: {}", patch.describe())
                }
                Action::Update { uid, reason, .. } => format!("update({reason:?}) {uid}"),
                Action::Delete { uid, reason, .. } => format!("delete({}) {uid}", reason.as_str()),
                Action::Forget { uid } => format!("forget {uid}"),
                Action::ClearDate { uid, .. } => format!("clear-date {uid}"),
                Action::CreateItem(f) => format!("create-item {}", f.uid),
            })
            .map(|s| {
                s.replace("plane-issue-", "")
                    .replace("plane-cycle-", "cycle:")
                    .replace("plane-module-", "module:")
                    .replace("@calplanebot", "")
            })
            .collect()
    }

    // Long on purpose: one row per planning case, read top to bottom; splitting the table
    // would only scatter the cases.
    #[test]
    fn table() {
        // (name, case, expected actions, expected unchanged)
        let mut cases: Vec<(&str, Case, Vec<&str>, usize)> = Vec::new();

        let mut c = Case::new();
        c.desired = vec![desired("a", "h1")];
        cases.push(("new item → create", c, vec!["create a"], 0));

        let mut c = Case::new();
        c.desired = vec![desired("a", "h1")];
        c.journal = vec![record("a", "e1", "h1")];
        c.listing = vec![remote("a", "e1")];
        cases.push(("nothing changed → nothing", c, vec![], 1));

        let mut c = Case::new();
        c.desired = vec![desired("a", "h2")];
        c.journal = vec![record("a", "e1", "h1")];
        c.listing = vec![remote("a", "e1")];
        cases.push((
            "plane changed → update",
            c,
            vec!["update(PlaneChanged) a"],
            0,
        ));

        let mut c = Case::new();
        c.desired = vec![desired("a", "h1")];
        c.journal = vec![record("a", "e1", "h1")];
        c.listing = vec![remote("a", "e2")];
        cases.push((
            "calendar changed → update (compare)",
            c,
            vec!["update(CalendarChanged) a"],
            0,
        ));

        let mut c = Case::new();
        c.desired = vec![desired("a", "h1")];
        c.journal = vec![record("a", "e1", "h1")];
        cases.push(("deleted in calendar → recreate", c, vec!["create* a"], 0));

        let mut c = Case::new();
        c.desired = vec![desired("a", "h1")];
        c.listing = vec![remote("a", "e1")];
        cases.push((
            "journal lost → adopt, no duplicate",
            c,
            vec!["update(Adopt) a"],
            0,
        ));

        let mut c = Case::new();
        c.excluded = vec![("a", Excluded::Completed)];
        c.journal = vec![record("a", "e1", "h1")];
        c.listing = vec![remote("a", "e1")];
        cases.push((
            "completed → delete",
            c,
            vec!["delete(issue completed) a"],
            0,
        ));

        let mut c = Case::new();
        c.excluded = vec![("a", Excluded::NoDate)];
        c.listing = vec![remote("a", "e1")];
        cases.push((
            "no date, journal lost → still delete ours",
            c,
            vec!["delete(no target date) a"],
            0,
        ));

        let mut c = Case::new();
        c.desired = vec![desired("b", "h")];
        c.journal = vec![record("a", "e1", "h1"), record("b", "e", "h")];
        c.listing = vec![remote("a", "e1"), remote("b", "e")];
        cases.push((
            "vanished from plane → delete",
            c,
            vec!["delete(issue deleted or archived) a"],
            1,
        ));

        let mut c = Case::new();
        c.desired = vec![desired("b", "h")];
        c.journal = vec![record("a", "e1", "h1"), record("b", "e", "h")];
        c.listing = vec![remote("a", "e1"), remote("b", "e")];
        c.complete = false;
        cases.push(("vanished but listing had holes → keep", c, vec![], 2));

        let mut c = Case::new();
        c.excluded = vec![("a", Excluded::NoDate)];
        c.journal = vec![record("a", "e1", "h1")];
        cases.push(("gone on both sides → forget", c, vec!["forget a"], 0));

        let mut c = Case::new();
        c.listing = vec![
            ObjectRef {
                href: "/cal/work/someone-elses.ics".into(),
                etag: Some("x".into()),
            },
            ObjectRef {
                href: "/cal/work/plane-issue-zzz@other.ics".into(),
                etag: Some("y".into()),
            },
        ];
        cases.push(("foreign objects are never touched", c, vec![], 0));

        let mut c = Case::new();
        c.desired = vec![desired("a", "h1")];
        c.journal = vec![record("a", "e1", "h1")];
        c.listing = vec![ObjectRef {
            href: "http://server/cal/work/plane-issue-a@calplanebot.ics".into(),
            etag: Some("e1".into()),
        }];
        cases.push(("href encodings and full URLs match", c, vec![], 1));

        let mut c = Case::new();
        let seed = ObjectRef {
            href: "/cal/work/seed-name.ics".into(),
            etag: Some("s".into()),
        };
        c.desired = vec![desired("a", "h1")];
        c.listing = vec![seed.clone()];
        c.adoptable = vec![(model::uid_for("a"), seed.clone())];
        cases.push((
            "seed event at another href → adopt there",
            c,
            vec!["update(Adopt) a"],
            0,
        ));

        let mut c = Case::new();
        c.excluded = vec![("a", Excluded::Completed)];
        c.listing = vec![seed.clone()];
        c.adoptable = vec![(model::uid_for("a"), seed)];
        cases.push((
            "seed event of a completed item → delete",
            c,
            vec!["delete(issue completed) a"],
            0,
        ));

        for (name, case, want, unchanged) in cases {
            let p = case.run();
            assert_eq!(kinds(&p), want, "{name}");
            assert_eq!(p.unchanged, unchanged, "{name}");
            assert_eq!(p.blocked, None, "{name}");
        }
    }

    fn shadow(name: &str, target: &str, hash: &str) -> Shadow {
        Shadow {
            name: name.into(),
            target_date: Some(target.into()),
            state_group: "unstarted".into(),
            content_hash: hash.into(),
            ..Shadow::default()
        }
    }

    /// Item `a`: synced as ("a", 2026-12-01) with ETag e1; Plane now shows `plane`, the
    /// calendar (ETag e2) shows `calendar`.
    fn two_way(plane: (&str, &str), calendar: (&str, &str)) -> Case {
        let mut c = Case::new();
        let mut d = desired("a", "h1");
        d.shadow = shadow(
            plane.0,
            plane.1,
            if plane == ("a", "2026-12-01") {
                "h1"
            } else {
                "h2"
            },
        );
        c.desired = vec![d];
        let mut r = record("a", "e1", "h1");
        r.shadow = shadow("a", "2026-12-01", "h1");
        c.journal = vec![r];
        let etag = if calendar == ("a", "2026-12-01") {
            "e2"
        } else {
            "e3"
        };
        c.listing = vec![remote("a", etag)];
        let seen = Observed {
            fields: Fields::of_shadow(&shadow(calendar.0, calendar.1, "")),
            modified: Some(1_795_428_931), // 2026-11-23T10:15:31Z
        };
        c.observed = vec![(model::uid_for("a"), seen)];
        c
    }

    // Long on purpose, like `table`: one row per two-way case.
    #[test]
    #[allow(clippy::vec_init_then_push, reason = "a table, read top to bottom")]
    fn two_way_table() {
        use crate::config::ConflictPolicy as P;
        let synced = ("a", "2026-12-01");
        let mut cases: Vec<(&str, Case, Vec<&str>)> = Vec::new();

        cases.push((
            "calendar moved the date → Plane",
            two_way(synced, ("a", "2026-12-05")),
            vec!["update(CalendarChanged) a → plane: target date"],
        ));
        cases.push((
            "calendar renamed → Plane",
            two_way(synced, ("b", "2026-12-01")),
            vec!["update(CalendarChanged) a → plane: name"],
        ));
        cases.push((
            "a client rewrote the object without changing fields → no Plane write",
            two_way(synced, synced),
            vec!["update(CalendarChanged) a"],
        ));
        cases.push((
            "Plane renamed, calendar moved → each flows to the other side",
            two_way(("p", "2026-12-01"), ("a", "2026-12-05")),
            vec!["update(CalendarChanged) a → plane: target date"],
        ));
        let mut c = two_way(synced, ("a", "2026-12-05"));
        c.two_way.direction = SyncDirection::PlaneToCalendar;
        cases.push((
            "plane-to-calendar: calendar edits are overwritten",
            c,
            vec!["update(CalendarChanged) a"],
        ));
        let conflict = || two_way(("p", "2026-12-01"), ("c", "2026-12-01"));
        let mut c = conflict();
        c.two_way.policy = P::Plane;
        cases.push((
            "conflict, policy plane",
            c,
            vec!["update(CalendarChanged) a"],
        ));
        let mut c = conflict();
        c.two_way.policy = P::Calendar;
        cases.push((
            "conflict, policy calendar",
            c,
            vec!["update(CalendarChanged) a → plane: name"],
        ));
        let mut c = conflict();
        c.two_way.policy = P::Newest;
        // Plane's updated_at 10:00:00 < the object's LAST-MODIFIED 10:15:31.
        cases.push((
            "conflict, policy newest, calendar newer",
            c,
            vec!["update(CalendarChanged) a → plane: name"],
        ));
        let mut c = conflict();
        c.two_way.policy = P::Newest;
        c.desired[0].updated_at = "2026-11-23T11:00:00+00:00".into();
        cases.push((
            "conflict, policy newest, Plane newer",
            c,
            vec!["update(CalendarChanged) a"],
        ));

        let mut c = two_way(synced, synced);
        c.listing.clear();
        c.two_way.calendar_delete = CalendarDelete::ClearDate;
        cases.push(("deleted in calendar, clear-date", c, vec!["clear-date a"]));
        let mut c = two_way(("a", "2026-12-09"), synced);
        c.listing.clear();
        c.two_way.calendar_delete = CalendarDelete::ClearDate;
        cases.push((
            "deleted in calendar, but Plane moved the date since → recreate",
            c,
            vec!["create* a"],
        ));
        let mut c = two_way(synced, synced);
        c.listing.clear();
        cases.push(("deleted in calendar, recreate", c, vec!["create* a"]));
        let mut c = two_way(synced, synced);
        c.listing.clear();
        c.journal[0].etag = None;
        c.two_way.calendar_delete = CalendarDelete::ClearDate;
        cases.push((
            "a create that never happened is no deletion",
            c,
            vec!["create a"],
        ));

        let mut c = two_way(synced, synced);
        c.desired.clear();
        c.complete = false;
        c.listing = vec![remote("a", "e1")];
        cases.push(("incremental listing: unlisted item is kept", c, vec![]));
        let mut c = two_way(synced, synced);
        c.desired.clear();
        c.complete = false;
        c.gone = vec!["a"];
        cases.push((
            "incremental listing: item Plane answered 404 for → delete",
            c,
            vec!["delete(issue deleted or archived) a"],
        ));

        let foreign = Foreign {
            uid: "phone-123".into(),
            href: "/cal/work/phone-123.ics".into(),
            etag: Some("f".into()),
            fields: Fields::of_shadow(&shadow("Dentist", "2026-12-07", "")),
        };
        let mut c = Case::new();
        c.foreign = vec![foreign.clone()];
        cases.push((
            "a new event in the calendar → work item",
            c,
            vec!["create-item phone-123"],
        ));
        let mut c = Case::new();
        c.foreign = vec![foreign.clone()];
        c.two_way.direction = SyncDirection::PlaneToCalendar;
        cases.push(("plane-to-calendar creates no work items", c, vec![]));

        // The write-ahead record of a work item being made from `foreign` (a crash before
        // the POST's answer was recorded).
        let pending = ItemRecord {
            uid: foreign.uid.clone(),
            work_item: String::new(),
            href: foreign.href.clone(),
            etag: foreign.etag.clone(),
            ..record("x", "f", "")
        };
        let at = ObjectRef {
            href: foreign.href.clone(),
            etag: foreign.etag.clone(),
        };
        let mut c = Case::new();
        c.journal = vec![pending.clone()];
        c.listing = vec![at.clone()];
        c.foreign = vec![foreign.clone()];
        cases.push((
            "pending record, no item in Plane → the POST again, the event kept",
            c,
            vec!["create-item phone-123"],
        ));
        let mut c = Case::new();
        c.journal = vec![pending.clone()];
        cases.push((
            "pending record, no item, event deleted → forget",
            c,
            vec!["forget phone-123"],
        ));
        let made = Desired {
            uid: foreign.uid.clone(),
            shadow: shadow("Dentist", "2026-12-07", "h1"),
            ..desired("new1", "h1")
        };
        let mut c = Case::new();
        c.desired = vec![made.clone()];
        c.journal = vec![pending.clone()];
        c.listing = vec![at];
        cases.push((
            "pending record, item made → our fields into the event",
            c,
            vec!["update(PlaneChanged) phone-123"],
        ));
        let mut c = Case::new();
        c.desired = vec![made];
        c.journal = vec![ItemRecord {
            shadow: shadow("Dentist", "2026-12-07", ""),
            ..pending
        }];
        c.two_way.calendar_delete = CalendarDelete::ClearDate;
        cases.push((
            "pending record, item made, event deleted → clear-date",
            c,
            vec!["clear-date phone-123"],
        ));

        for (name, case, want) in cases {
            let p = case.run();
            assert_eq!(kinds(&p), want, "{name}");
            assert_eq!(p.blocked, None, "{name}");
        }
    }

    /// A cycle's desired object, journal record and listed object (by cycle id).
    fn cycle_desired(id: &str, hash: &str) -> Desired {
        Desired {
            uid: Kind::Cycle.uid(id),
            ..desired(id, hash)
        }
    }
    fn cycle_record(id: &str, etag: &str, hash: &str) -> ItemRecord {
        let uid = Kind::Cycle.uid(id);
        ItemRecord {
            href: model::href_for(CAL, &uid),
            uid,
            ..record(id, etag, hash)
        }
    }
    fn cycle_remote(id: &str, etag: &str) -> ObjectRef {
        ObjectRef {
            href: model::href_for(CAL, &Kind::Cycle.uid(id)),
            etag: Some(etag.into()),
        }
    }

    // Long on purpose, like `table`: one row per cycle/module case.
    #[test]
    fn timeline_table() {
        let listed = Timeline {
            cycles: Listed::Complete,
            modules: Listed::Complete,
        };
        // (name, case, expected actions)
        let mut cases: Vec<(&str, Case, Vec<&str>)> = Vec::new();

        let mut c = Case::new();
        c.timeline = listed;
        c.desired = vec![cycle_desired("s1", "h1")];
        cases.push(("new cycle → create", c, vec!["create cycle:s1"]));

        let mut c = Case::new();
        c.timeline = listed;
        c.desired = vec![cycle_desired("s1", "h2")];
        c.journal = vec![cycle_record("s1", "e1", "h1")];
        c.listing = vec![cycle_remote("s1", "e1")];
        cases.push((
            "cycle changed in Plane → update",
            c,
            vec!["update(PlaneChanged) cycle:s1"],
        ));

        // A calendar edit: put back (compared and warned about in apply), never to Plane,
        // whatever SYNC_DIRECTION and CONFLICT_POLICY say.
        for policy in [ConflictPolicy::Plane, ConflictPolicy::Calendar] {
            let mut c = Case::new();
            c.timeline = listed;
            c.two_way.policy = policy;
            c.desired = vec![cycle_desired("s1", "h1")];
            c.journal = vec![cycle_record("s1", "e1", "h1")];
            c.listing = vec![cycle_remote("s1", "e2")];
            c.observed = vec![(
                Kind::Cycle.uid("s1"),
                Observed {
                    fields: Fields::of_shadow(&shadow("Renamed", "2026-12-24", "")),
                    modified: Some(i64::MAX),
                },
            )];
            cases.push((
                "calendar edit of a cycle → reverted, nothing to Plane",
                c,
                vec!["update(CalendarChanged) cycle:s1"],
            ));
        }

        // Deleted by the user: back, even with CALENDAR_DELETE=clear-date.
        let mut c = Case::new();
        c.timeline = listed;
        c.two_way.calendar_delete = CalendarDelete::ClearDate;
        c.desired = vec![cycle_desired("s1", "h1")];
        c.journal = vec![cycle_record("s1", "e1", "h1")];
        cases.push((
            "cycle deleted in the calendar → recreated, never clear-date",
            c,
            vec!["create* cycle:s1"],
        ));

        let mut c = Case::new();
        c.timeline = listed;
        c.desired = vec![cycle_desired("s1", "h1")];
        c.listing = vec![cycle_remote("s1", "e1")];
        cases.push((
            "journal lost → adopted by UID, no duplicate",
            c,
            vec!["update(Adopt) cycle:s1"],
        ));

        let mut c = Case::new();
        c.timeline = listed;
        c.excluded = vec![("s1", Excluded::Undated)];
        c.journal = vec![cycle_record("s1", "e1", "h1")];
        c.listing = vec![cycle_remote("s1", "e1")];
        cases.push((
            "dates removed (a draft again) → delete",
            c,
            vec!["delete(cycle or module without dates) cycle:s1"],
        ));

        let mut c = Case::new();
        c.timeline = listed;
        c.journal = vec![cycle_record("s1", "e1", "h1")];
        c.listing = vec![cycle_remote("s1", "e1")];
        cases.push((
            "gone from a complete listing (deleted, archived) → delete",
            c,
            vec!["delete(cycle or module deleted or archived) cycle:s1"],
        ));

        let mut c = Case::new();
        c.journal = vec![cycle_record("s1", "e1", "h1")];
        c.listing = vec![cycle_remote("s1", "e2")];
        cases.push((
            "not listed this run (incremental) → kept, even when edited",
            c,
            vec![],
        ));

        let mut c = Case::new();
        c.timeline = Timeline {
            cycles: Listed::Off,
            modules: Listed::Complete,
        };
        c.journal = vec![cycle_record("s1", "e1", "h1")];
        c.listing = vec![cycle_remote("s1", "e1")];
        cases.push((
            "SYNC_CYCLES turned off → delete",
            c,
            vec!["delete(SYNC_CYCLES/SYNC_MODULES off) cycle:s1"],
        ));

        let mut c = Case::new();
        c.timeline = Timeline {
            cycles: Listed::Off,
            modules: Listed::Off,
        };
        c.listing = vec![cycle_remote("s1", "e1")];
        cases.push((
            "turned off with a lost journal → ours still go",
            c,
            vec!["delete(SYNC_CYCLES/SYNC_MODULES off) cycle:s1"],
        ));

        let mut c = Case::new();
        c.timeline = listed;
        c.desired = vec![desired("a", "h1")];
        c.journal = vec![record("a", "e1", "h1"), cycle_record("s1", "e1", "h1")];
        c.listing = vec![remote("a", "e1")];
        c.two_way.calendar_delete = CalendarDelete::ClearDate;
        cases.push((
            "cycle object gone and cycle gone → forget",
            c,
            vec!["forget cycle:s1"],
        ));

        // With CREATE_FROM_CALENDAR, only `foreign` objects become work items; our cycle
        // objects are never among them (project.rs), and the plan adds nothing else.
        let mut c = Case::new();
        c.timeline = listed;
        c.desired = vec![cycle_desired("s1", "h1")];
        c.journal = vec![cycle_record("s1", "e1", "h1")];
        c.listing = vec![cycle_remote("s1", "e9")];
        cases.push((
            "no work item is ever made of a cycle",
            c,
            vec!["update(CalendarChanged) cycle:s1"],
        ));

        for (name, case, want) in cases {
            let p = case.run();
            assert_eq!(kinds(&p), want, "{name}");
            assert_eq!(p.blocked, None, "{name}");
            for a in &p.actions {
                if let Action::Update { patch, .. } = a {
                    assert!(patch.is_empty(), "{name}: a Plane write {patch:?}");
                }
                assert!(
                    !matches!(a, Action::ClearDate { .. } | Action::CreateItem(_)),
                    "{name}: {a:?}"
                );
            }
        }
    }

    #[test]
    fn the_safety_valve_counts_cycles_and_modules() {
        let mut c = Case::new();
        c.timeline = Timeline {
            cycles: Listed::Off,
            modules: Listed::Off,
        };
        for i in 0..4 {
            let id = format!("s{i}");
            c.journal.push(cycle_record(&id, "e", "h"));
            c.listing.push(cycle_remote(&id, "e"));
        }
        c.desired.push(desired("a", "h"));
        c.journal.push(record("a", "e", "h"));
        c.listing.push(remote("a", "e"));
        let p = c.run();
        assert!(p.actions.is_empty(), "{:?}", p.actions);
        assert!(
            p.blocked.as_deref().unwrap().contains("4 of 5"),
            "{:?}",
            p.blocked
        );
        // An empty work-item listing says nothing about cycles: the last cycle of a
        // project without work items can go.
        let mut c = Case::new();
        c.timeline.cycles = Listed::Complete;
        c.journal = vec![cycle_record("s1", "e", "h")];
        c.listing = vec![cycle_remote("s1", "e")];
        let p = c.run();
        assert_eq!(p.blocked, None);
        assert_eq!(
            kinds(&p),
            vec!["delete(cycle or module deleted or archived) cycle:s1"]
        );
    }

    #[test]
    fn conflicts_are_reported_with_the_winner() {
        let mut c = two_way(("p", "2026-12-01"), ("c", "2026-12-03"));
        c.two_way.policy = crate::config::ConflictPolicy::Calendar;
        let p = c.run();
        let Action::Update {
            patch, conflicts, ..
        } = &p.actions[0]
        else {
            panic!("{p:?}");
        };
        assert_eq!(patch.name.as_deref(), Some("c"));
        assert_eq!(conflicts.len(), 1, "only the name conflicts: {conflicts:?}");
        assert_eq!(conflicts[0].winner, super::fields::Side::Calendar);
        assert_eq!(
            patch.target,
            Some(crate::ical::Date::parse_iso("2026-12-03"))
        );
    }

    #[test]
    fn mass_clear_date_trips_the_valve() {
        let mut c = Case::new();
        c.two_way.calendar_delete = CalendarDelete::ClearDate;
        for i in 0..6 {
            let id = format!("i{i}");
            c.desired.push(desired(&id, "h"));
            c.journal.push(record(&id, "e", "h"));
        }
        let p = c.run();
        assert!(p.actions.is_empty());
        assert!(p.blocked.unwrap().contains("6 of 6"));
    }

    #[test]
    fn safety_valve_blocks_mass_deletion() {
        let mut c = Case::new();
        for i in 0..10 {
            let id = format!("i{i}");
            c.journal.push(record(&id, "e", "h"));
            c.listing.push(remote(&id, "e"));
        }
        // 6 of 10 vanish: over half.
        for i in 6..10 {
            c.desired.push(desired(&format!("i{i}"), "h"));
        }
        let p = c.run();
        assert!(p.actions.is_empty());
        assert!(
            p.blocked.as_deref().unwrap().contains("6 of 10"),
            "{:?}",
            p.blocked
        );

        // 5 of 10 is allowed.
        c.desired.push(desired("i5", "h"));
        let p = c.run();
        assert_eq!(p.blocked, None);
        assert_eq!(p.actions.len(), 5);
    }

    #[test]
    fn safety_valve_on_empty_plane_listing() {
        let mut c = Case::new();
        c.journal = vec![record("a", "e", "h")];
        c.listing = vec![remote("a", "e")];
        let p = c.run();
        assert!(p.blocked.unwrap().contains("no work items"));
    }

    #[test]
    fn small_calendars_can_lose_their_only_event() {
        let mut c = Case::new();
        c.excluded = vec![("a", Excluded::Completed)];
        c.journal = vec![record("a", "e", "h")];
        c.listing = vec![remote("a", "e")];
        let p = c.run();
        assert_eq!(p.blocked, None);
        assert_eq!(kinds(&p), vec!["delete(issue completed) a"]);
    }
}
