//! One project's cycle: read Plane and the calendar, plan, apply, and remember how far we
//! got. Everything here goes through the [`Tracker`] and [`CalendarStore`] seams, so a
//! whole cycle can run against in-memory fakes as well as real servers. What a cycle
//! reads of the two sides, and how cheaply, is in `read.rs`; cycles and modules are
//! listed here, as they are only needed on some cycles.

use std::collections::{BTreeMap, BTreeSet};

use super::apply::{self, Context, Material};
use super::model::{self, Excluded, Mapping};
use super::plan::{self, Input, Listed, TwoWay};
pub use super::read::PlaneView;
use super::read::{add_item, observe, read_calendar, read_plane, uid_index, CalendarSide};
use super::store::{CalendarStore, Tracker};
use super::timeline::{self, Kind, Zones};
use super::{Options, Summary};
use crate::caldav::client::percent_decode;
use crate::caldav::ObjectRef;
use crate::plane::{Project, WorkItem};
use crate::state::{CalendarRecord, Journal, JournalError, ProjectRecord};
use crate::tz::Zone;

/// What one project's cycle needs to know besides the two sides and the journal.
pub struct Step<'a> {
    /// The project.
    pub project: &'a Project,
    /// Its calendar collection (path ending in `/`).
    pub calendar: &'a str,
    /// The calendar's ctag and sync-token as the server showed them at the start of this
    /// cycle; stored after a cycle without errors, so the next one can skip or shorten the
    /// listing.
    pub seen: &'a CalendarRecord,
    /// Whether the journal did not know this calendar before (objects of ours at other
    /// hrefs are looked for once).
    pub first_contact: bool,
    /// How items are rendered.
    pub mapping: &'a Mapping,
    /// How the two directions combine.
    pub two_way: TwoWay,
    /// CREATE_FROM_CALENDAR.
    pub create_from_calendar: bool,
    /// MAX_DELETE_FRACTION.
    pub max_delete_fraction: f64,
    /// EVENT_TIMEZONE.
    pub zone: &'a Zone,
    /// List every work item (else stop at the watermark).
    pub full: bool,
    /// Dry run, stop flag.
    pub opts: &'a Options<'a>,
    /// Unix seconds.
    pub now: i64,
    /// List the project's work items (false: a webhook about its cycles or modules only).
    pub list_items: bool,
    /// A webhook named this kind: list it even on an incremental cycle.
    pub timeline_wake: Option<Kind>,
    /// Whether the calendar takes VEVENTs (cycles and modules are always events; a
    /// VTODO-only calendar of ITEM_KIND=vtodo gets none).
    pub takes_events: bool,
}

impl Step<'_> {
    /// What the apply step needs of this step.
    fn context(&self) -> Context<'_> {
        Context {
            calendar: self.calendar,
            project: self.project,
            mapping: self.mapping,
            now: self.now,
            stop: self.opts.stop,
        }
    }
}

/// Syncs one project with its calendar. Failures are recorded in `summary`; only a journal
/// that cannot be written stops the run.
pub fn sync_project<C: CalendarStore, T: Tracker>(
    cal: &mut C,
    plane: &mut T,
    journal: &mut Journal,
    step: &Step<'_>,
    summary: &mut Summary,
) -> Result<(), JournalError> {
    let errors_before = summary.errors.len();
    let ident = &step.project.identifier;
    let Some(mut view) = read_plane(plane, journal, step, summary) else {
        return Ok(());
    };
    let side = match read_calendar(cal, plane, journal, step, &mut view) {
        Ok(side) => side,
        Err(e) => {
            summary.error(format!("project {ident}: {e}"));
            return Ok(());
        }
    };
    let known = known_timeline(journal, step);
    let needed = Needed {
        touched: &side.timeline_touched,
        known: &known,
    };
    read_timeline(plane, step, &needed, &mut view, summary);
    let planned = plan_for(step, &view, &side);
    if let Some(reason) = &planned.blocked {
        let m = format!("project {ident}: safety valve: {reason}; calendar left unchanged");
        summary.error(m.clone());
        summary.blocked.push(m);
        return Ok(());
    }
    if step.opts.dry_run {
        report_plan(&planned, &view, step, summary);
        return Ok(());
    }
    let (newest, full, timeline) = (view.newest.take(), view.full, view.timeline);
    // What needs no work is not carried into the apply step.
    drop(side);
    view.material.retain_for(&planned);
    let wrote = apply_plan(cal, plane, journal, step, view.material, planned, summary);
    // A cycle with errors keeps the old watermark and calendar version, so the next one
    // looks at the same items and objects again.
    let clean = summary.errors.len() == errors_before && !step.opts.stopped();
    remember_calendar(journal, step, wrote, clean)?;
    if step.opts.stopped() {
        return Ok(());
    }
    let known = next_known(&known, timeline, clean);
    if !step.list_items {
        return remember_timeline(journal, step, known);
    }
    remember_listing(journal, step, full, newest.filter(|_| clean), known)
}

/// `--dry-run`: the plan as lines of the summary, nothing applied.
fn report_plan(planned: &plan::Plan, view: &PlaneView, step: &Step<'_>, summary: &mut Summary) {
    summary.unchanged += planned.unchanged;
    for a in &planned.actions {
        summary
            .planned
            .push(super::describe(a, &view.material.desired, step.project));
    }
}

/// Syncs one work item Plane just showed (`None`: Plane answered 404) after a webhook named
/// it: no listing on either side, one GET of its object, so an edit made in the calendar
/// since the last cycle is merged like in a full cycle (and a deletion answered).
pub fn sync_item<C: CalendarStore, T: Tracker>(
    cal: &mut C,
    plane: &mut T,
    journal: &mut Journal,
    step: &Step<'_>,
    item_id: &str,
    item: Option<WorkItem>,
    summary: &mut Summary,
) {
    let mut view = PlaneView {
        listed: 1,
        // A 404 is as good as absence from a complete listing of this one item.
        complete: true,
        ..PlaneView::default()
    };
    if let Some(item) = item {
        let uids = uid_index(journal, &step.project.id);
        add_item(&mut view, item, step, &uids);
    }
    // By the item's id, or by its UID for an item made from an object whose record is
    // still the write-ahead one (a crash right after the POST).
    let desired = &view.material.desired;
    let record = journal
        .state()
        .items
        .values()
        .find(|r| r.work_item == item_id || (r.item_pending() && desired.contains_key(&r.uid)))
        .cloned();
    // The object may have changed since the last cycle: read it (one GET), so a calendar
    // edit is merged, and a deletion answered, rather than overwritten.
    let mut listing = Vec::new();
    let mut observed = BTreeMap::new();
    if let Some(r) = &record {
        match cal.get(&r.href) {
            Ok(Some(o)) => {
                if o.etag.is_none() || o.etag != r.etag {
                    if let Some(seen) = observe(&o, r, step) {
                        observed.insert(r.uid.clone(), seen);
                    }
                }
                listing.push(ObjectRef {
                    href: r.href.clone(),
                    etag: o.etag.clone(),
                });
                view.material.fetched.insert(percent_decode(&r.href), o);
            }
            Ok(None) => {}
            Err(e) => {
                summary.error(format!("{}: {e}", step.project.identifier));
                return;
            }
        }
    }
    let side = CalendarSide {
        listing,
        adoptable: BTreeMap::new(),
        observed,
        foreign: Vec::new(),
        records: record.iter().collect(),
        timeline_touched: BTreeSet::new(),
    };
    let planned = plan_for(step, &view, &side);
    let wrote = apply_plan(cal, plane, journal, step, view.material, planned, summary);
    if let Err(e) = remember_calendar(journal, step, wrote, false) {
        summary.error(e.to_string());
    }
}

/// Applies `planned`; true when the calendar was written (its ctag/token then moved).
fn apply_plan<C: CalendarStore, T: Tracker>(
    cal: &mut C,
    plane: &mut T,
    journal: &mut Journal,
    step: &Step<'_>,
    material: Material,
    planned: plan::Plan,
    summary: &mut Summary,
) -> bool {
    let writes_before = calendar_writes(summary);
    if planned.actions.iter().any(adds_href) {
        if let Err(e) = forget_version(journal, step) {
            summary.error(format!("project {}: {e}", step.project.identifier));
            return false;
        }
    }
    let ctx = step.context();
    apply::apply(cal, plane, journal, &ctx, material, planned, summary);
    calendar_writes(summary) != writes_before
}

/// Whether `a` may give the journal a record of an object that the stored calendar
/// version does not know: one we create, a user's object that becomes a work item, one of
/// ours found at an href the journal did not know.
fn adds_href(a: &plan::Action) -> bool {
    matches!(
        a,
        plan::Action::Create { .. }
            | plan::Action::CreateItem(_)
            | plan::Action::Update {
                reason: plan::UpdateReason::Adopt,
                ..
            }
    )
}

/// Forgets the stored calendar version durably, before the records of objects it does not
/// know are written (the next cycle then lists the calendar in full). Such an object,
/// deleted later, is missing both then and at the stored version: a sync-collection report
/// since that version leaves it out, and a content-hash version (Radicale, Xandikos) comes
/// back unchanged, so the journal's view would keep the object and hide the deletion.
/// [`remember_calendar`] forgets the version after a cycle that wrote, but its record comes
/// last and unsynced: the power-cut trials lost it while keeping the item records synced
/// before it (a task deleted in the calendar was never answered and came back later).
fn forget_version(journal: &mut Journal, step: &Step<'_>) -> Result<(), JournalError> {
    let Some(stored) = journal.state().calendars.get(&step.project.id) else {
        return Ok(());
    };
    if stored.ctag.is_none() && stored.sync_token.is_none() {
        return Ok(());
    }
    let forgotten = CalendarRecord {
        ctag: None,
        sync_token: None,
        ..stored.clone()
    };
    journal.put_calendar(forgotten)?;
    journal.commit()
}

fn calendar_writes(s: &Summary) -> usize {
    s.created + s.updated + s.deleted
}

/// Remembers the calendar's version for the next cycle's listing. Only a version seen
/// before a cycle that wrote nothing may be kept: Radicale's and Xandikos's sync-tokens
/// and ctags are hashes of the content, so after we create an event and the user deletes
/// it, the token is the one seen before our write again and would hide the deletion. A
/// cycle that wrote forgets the version (the next one lists the calendar in full); a
/// cycle with errors keeps the old one (its objects are looked at again). A cycle that
/// adds objects has forgotten it already, durably (see [`forget_version`]).
fn remember_calendar(
    journal: &mut Journal,
    step: &Step<'_>,
    wrote: bool,
    clean: bool,
) -> Result<(), JournalError> {
    if wrote {
        journal.put_calendar(CalendarRecord {
            ctag: None,
            sync_token: None,
            ..step.seen.clone()
        })
    } else if clean {
        journal.put_calendar(step.seen.clone())
    } else {
        Ok(())
    }
}

fn plan_for(step: &Step<'_>, view: &PlaneView, side: &CalendarSide<'_>) -> plan::Plan {
    let desired: Vec<&model::Desired> = view.material.desired.values().collect();
    plan::plan(&Input {
        calendar: step.calendar,
        desired: &desired,
        excluded: &view.excluded,
        gone: &view.gone,
        plane_listed: view.listed,
        plane_complete: view.complete,
        listing: &side.listing,
        adoptable: &side.adoptable,
        observed: &side.observed,
        foreign: &side.foreign,
        journal: &side.records,
        max_delete_fraction: step.max_delete_fraction,
        two_way: step.two_way,
        timeline: view.timeline,
    })
}

/// What besides the listing rule decides that a kind is listed on an incremental cycle.
struct Needed<'a> {
    /// Kinds with objects changed or deleted in the calendar.
    touched: &'a BTreeSet<Kind>,
    /// Kinds the last clean cycle knew in full (a kind switched on since, or after a
    /// cycle with errors, is listed at once).
    known: &'a BTreeSet<Kind>,
}

/// The kinds the journal says the last clean cycle of this project knew in full.
fn known_timeline(journal: &Journal, step: &Step<'_>) -> BTreeSet<Kind> {
    let record = journal.state().projects.get(&step.project.id);
    timeline::kinds_of(record.and_then(|r| r.timeline.as_deref()))
}

/// The kinds known in full after this cycle: listed now, or known before and not
/// listed; none after a cycle with errors (the next one lists them again, so an object
/// that failed to be written is not left out until the next full reconcile).
fn next_known(before: &BTreeSet<Kind>, now: plan::Timeline, clean: bool) -> BTreeSet<Kind> {
    if !clean {
        return BTreeSet::new();
    }
    Kind::ALL
        .into_iter()
        .filter(|k| match now.of(*k) {
            Listed::Complete => true,
            Listed::Skipped => before.contains(k),
            Listed::Off => false,
        })
        .collect()
}

/// After a cycle that listed only cycles or modules (a webhook): the kinds known.
fn remember_timeline(
    journal: &mut Journal,
    step: &Step<'_>,
    known: BTreeSet<Kind>,
) -> Result<(), JournalError> {
    let Some(old) = journal.state().projects.get(&step.project.id).cloned() else {
        return Ok(());
    };
    let timeline = timeline::record_of(&known);
    if old.timeline == timeline {
        return Ok(());
    }
    journal.put_project(ProjectRecord { timeline, ..old })
}

/// Lists the cycles and modules this run needs (design §9) and renders them into the
/// view: a kind that is switched off (or that the calendar cannot hold) is `Off`; one
/// is listed on a full cycle, after a webhook about it, when the incremental work-item
/// listing found changes (progress may have moved), when one of its objects was
/// changed or deleted in the calendar, or when the last clean cycle did not know it
/// (switched on since, or errors); otherwise it is `Skipped` (no request).
fn read_timeline<T: Tracker>(
    plane: &mut T,
    step: &Step<'_>,
    needed: &Needed<'_>,
    view: &mut PlaneView,
    summary: &mut Summary,
) {
    let enabled: Vec<Kind> = Kind::ALL
        .into_iter()
        .filter(|k| k.enabled(step.mapping))
        .collect();
    if !enabled.is_empty() && !step.takes_events {
        log::info!(
            "calendar \"{}\" ({}) takes no events (VEVENT): its project's cycles and modules are not written there",
            model::calendar_name(step.project),
            step.calendar
        );
    }
    let mut zones = Zones::new();
    for kind in Kind::ALL {
        let state = if !enabled.contains(&kind) || !step.takes_events {
            Listed::Off
        } else if step.full
            || view.full
            || step.timeline_wake == Some(kind)
            || view.items_changed
            || needed.touched.contains(&kind)
            || !needed.known.contains(&kind)
        {
            list_kind(plane, step, kind, &mut zones, view, summary)
        } else {
            Listed::Skipped
        };
        view.timeline.set(kind, state);
    }
}

/// Lists one kind and renders it into the view; `Skipped` when Plane failed (then
/// nothing of that kind is deleted or changed this run).
fn list_kind<T: Tracker>(
    plane: &mut T,
    step: &Step<'_>,
    kind: Kind,
    zones: &mut Zones,
    view: &mut PlaneView,
    summary: &mut Summary,
) -> Listed {
    let (p, m) = (step.project, step.mapping);
    let listed: Result<Vec<(String, Result<model::Rendered, Excluded>)>, _> = match kind {
        Kind::Cycle => plane.cycles(&p.id).map(|list| {
            list.iter()
                .map(|c| {
                    let zone = zones.get(timeline::zone_name(c));
                    (c.id.clone(), timeline::render_cycle(c, p, m, zone))
                })
                .collect()
        }),
        Kind::Module => plane.modules(&p.id).map(|list| {
            list.iter()
                .map(|md| (md.id.clone(), timeline::render_module(md, p, m)))
                .collect()
        }),
    };
    let rendered = match listed {
        Ok(r) => r,
        Err(e) => {
            summary.error(format!("project {}: {}: {e}", p.identifier, kind.plural()));
            return Listed::Skipped;
        }
    };
    for (id, r) in rendered {
        match r {
            Ok(r) => {
                let uid = r.desired.uid.clone();
                view.material.timeline.insert(uid.clone(), r.component);
                view.material.desired.insert(uid, r.desired);
            }
            Err(why) => {
                view.excluded.insert(id, why);
            }
        }
    }
    Listed::Complete
}

/// After a cycle: the watermark for the next incremental listing (when given), how many
/// incremental cycles ran since the last full one, and the cycles and modules known.
fn remember_listing(
    journal: &mut Journal,
    step: &Step<'_>,
    full: bool,
    newest: Option<String>,
    known: BTreeSet<Kind>,
) -> Result<(), JournalError> {
    let old = journal.state().projects.get(&step.project.id).cloned();
    let record = ProjectRecord {
        project: step.project.id.clone(),
        watermark: newest.or_else(|| old.as_ref().and_then(|o| o.watermark.clone())),
        cycles_since_full: if full {
            0
        } else {
            old.as_ref().map_or(0, |o| o.cycles_since_full) + 1
        },
        last_full: if full {
            Some(step.now)
        } else {
            old.as_ref().and_then(|o| o.last_full)
        },
        identifier: Some(step.project.identifier.clone()),
        name: Some(step.project.name.clone()),
        timeline: timeline::record_of(&known),
        zone: old.as_ref().and_then(|o| o.zone.clone()),
        cycle_view: old.as_ref().and_then(|o| o.cycle_view),
        module_view: old.as_ref().and_then(|o| o.module_view),
    };
    journal.put_project(record)
}

#[cfg(test)]
mod tests {
    //! Whole project cycles against the in-memory calendar and Plane: what a user does on
    //! either side, and what each side then receives.

    use super::*;
    use crate::config::{
        CalendarDelete, CompletedItems, ConflictPolicy, DateMode, ItemKind, SyncDirection,
    };
    use crate::ical::{self, Component, Property};
    use crate::sync::apply::MULTIGET_BATCH;
    use crate::sync::store::memory::{MemoryCalendar, MemoryPlane, UidConflict};
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicU32, Ordering};

    const CAL: &str = "/cal/p/";

    struct World {
        cal: MemoryCalendar,
        plane: MemoryPlane,
        journal: Option<Journal>,
        dir: PathBuf,
        mapping: Mapping,
        two_way: TwoWay,
        create_from_calendar: bool,
        full: bool,
        project: Project,
        timeline_wake: Option<Kind>,
        list_items: bool,
        takes_events: bool,
    }

    impl Drop for World {
        fn drop(&mut self) {
            self.journal = None;
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn temp_dir() -> PathBuf {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("cpb-project-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    impl World {
        fn new(kind: ItemKind) -> World {
            let dir = temp_dir();
            let mut plane = MemoryPlane::new();
            plane.add("a", "Write report", "2026-12-01");
            plane.add("b", "Call Bob", "2026-12-02");
            World {
                cal: MemoryCalendar::new(UidConflict::Conflict409),
                plane,
                journal: Some(Journal::open(&dir).unwrap()),
                dir,
                mapping: Mapping {
                    kind,
                    date_mode: DateMode::Due,
                    completed: CompletedItems::Delete,
                    web_url: "https://plane.example.com".into(),
                    slug: "acme".into(),
                    state_groups: ["backlog", "unstarted", "started", "completed", "cancelled"]
                        .map(String::from)
                        .to_vec(),
                    assignees: vec![],
                    labels: vec![],
                    cycles: false,
                    modules: false,
                },
                two_way: TwoWay::default(),
                create_from_calendar: false,
                full: true,
                project: Project {
                    id: "p".into(),
                    identifier: "P".into(),
                    name: "Project".into(),
                },
                timeline_wake: None,
                list_items: true,
                takes_events: true,
            }
        }

        fn journal(&mut self) -> &mut Journal {
            self.journal.as_mut().unwrap()
        }

        fn cycle(&mut self) -> Summary {
            let zone = Zone::utc();
            let opts = Options::default();
            let first_contact = self.journal().state().calendars.is_empty();
            if first_contact {
                let record = CalendarRecord {
                    project: "p".into(),
                    href: CAL.into(),
                    ctag: None,
                    sync_token: None,
                };
                self.journal().put_calendar(record).unwrap();
            }
            // What the home PROPFIND shows: a sync-token, or (SabreDAV 1.8) only a ctag;
            // content-hash ctags, as Radicale's, when there is no sync-collection.
            let seen = CalendarRecord {
                project: "p".into(),
                href: CAL.into(),
                ctag: Some(self.cal.content_ctag()),
                sync_token: Some(self.cal.token()).filter(|_| self.cal.sync_collection),
            };
            let step = Step {
                project: &self.project,
                calendar: CAL,
                seen: &seen,
                first_contact,
                mapping: &self.mapping,
                two_way: self.two_way,
                create_from_calendar: self.create_from_calendar,
                max_delete_fraction: 0.5,
                zone: &zone,
                full: self.full,
                opts: &opts,
                now: 1_795_500_000,
                list_items: self.list_items,
                timeline_wake: self.timeline_wake,
                takes_events: self.takes_events,
            };
            let mut summary = Summary::default();
            let journal = self.journal.as_mut().unwrap();
            sync_project(&mut self.cal, &mut self.plane, journal, &step, &mut summary).unwrap();
            summary
        }

        /// What a webhook naming work item `id` does (the caller has read the item).
        fn webhook(&mut self, id: &str) -> Summary {
            let item = self.plane.items.iter().find(|i| i.id == id).cloned();
            let zone = Zone::utc();
            let opts = Options::default();
            let seen = self.journal().state().calendars["p"].clone();
            let step = Step {
                project: &self.project,
                calendar: CAL,
                seen: &seen,
                first_contact: false,
                mapping: &self.mapping,
                two_way: self.two_way,
                create_from_calendar: false,
                max_delete_fraction: 0.5,
                zone: &zone,
                full: false,
                opts: &opts,
                now: 1_795_500_000,
                list_items: true,
                timeline_wake: None,
                takes_events: true,
            };
            let mut summary = Summary::default();
            let journal = self.journal.as_mut().unwrap();
            sync_item(
                &mut self.cal,
                &mut self.plane,
                journal,
                &step,
                id,
                item,
                &mut summary,
            );
            summary
        }

        /// Runs cycles until one changes nothing, then asserts three more stay idle.
        fn settle(&mut self) {
            for _ in 0..3 {
                let s = self.cycle();
                if s.created + s.updated + s.deleted + s.plane_updated + s.plane_created == 0 {
                    break;
                }
            }
            let (writes, patches) = (self.cal.writes(), self.plane.patches.len());
            for n in 0..3 {
                let s = self.cycle();
                assert!(s.errors.is_empty(), "idle cycle {n}: {:?}", s.errors);
                assert_eq!(
                    self.cal.writes(),
                    writes,
                    "idle cycle {n} wrote to the calendar"
                );
                assert_eq!(
                    self.plane.patches.len(),
                    patches,
                    "idle cycle {n} wrote to Plane"
                );
                assert!(self.plane.posts.iter().all(|_| true));
            }
        }

        fn href(&self, id: &str) -> String {
            model::href_for(CAL, &uid(id))
        }

        fn object(&self, id: &str) -> Component {
            let (_, text) = &self.cal.objects[&percent_decode(&self.href(id))];
            let cal = ical::parse(text).unwrap();
            model::find_item(&cal, &uid(id)).unwrap().clone()
        }

        /// Cycles and modules on, with a cycle, two modules and a draft cycle in Plane.
        fn with_timeline(kind: ItemKind) -> World {
            let mut w = World::new(kind);
            w.mapping.cycles = true;
            w.mapping.modules = true;
            w.plane
                .add_cycle("s1", "Sprint 1", "2026-11-30", "2026-12-11");
            w.plane.cycles.push(crate::plane::Cycle {
                id: "draft".into(),
                name: "Next".into(),
                ..crate::plane::Cycle::default()
            });
            w.plane
                .add_module("m1", "Launch", Some("2026-12-01"), "2026-12-20");
            w.plane.add_module("m2", "Docs", None, "2026-12-05");
            w
        }

        /// A power cut: the journal keeps what it had synced, and nothing after.
        fn power_cut(&mut self) {
            let path = self.journal().path().to_path_buf();
            let synced = self.journal().synced_len() as usize;
            let bytes = std::fs::read(&path).unwrap();
            // Dropping the journal syncs it: the cut is made afterwards.
            self.journal = None;
            std::fs::write(&path, &bytes[..synced]).unwrap();
            self.journal = Some(Journal::open(&self.dir).unwrap());
        }

        /// Changes an object as a calendar app would (new ETag).
        fn user_edits(&mut self, id: &str, f: impl FnOnce(&mut Component)) {
            let key = percent_decode(&self.href(id));
            let (_, text) = self.cal.objects[&key].clone();
            let mut cal = ical::parse(&text).unwrap();
            let c = cal
                .components
                .iter_mut()
                .find(|c| c.name == "VEVENT" || c.name == "VTODO")
                .unwrap();
            f(c);
            c.set(Property::new("LAST-MODIFIED", "20261123T120000Z"));
            self.cal.insert(&key, &ical::write(&cal));
        }
    }

    fn prop(c: &Component, name: &str) -> String {
        c.property(name)
            .map(|p| p.value.clone())
            .unwrap_or_default()
    }

    /// A work item id, or a UID as it is (cycles' and modules').
    fn uid(id: &str) -> String {
        if id.starts_with("plane-") {
            id.to_string()
        } else {
            model::uid_for(id)
        }
    }

    fn cycle_uid(id: &str) -> String {
        Kind::Cycle.uid(id)
    }

    fn module_uid(id: &str) -> String {
        Kind::Module.uid(id)
    }

    #[test]
    fn cycles_and_modules_appear_change_and_go() {
        let mut w = World::with_timeline(ItemKind::Event);
        let s = w.cycle();
        assert!(s.errors.is_empty(), "{s:?}");
        assert_eq!(
            s.created, 5,
            "2 work items, 1 cycle (not the draft), 2 modules"
        );
        assert_eq!(s.timeline_note(|c| c.created), " (1 cycle, 2 modules)");
        assert_eq!(s.timeline_note(|c| c.deleted), "");
        w.settle();
        let c = w.object(&cycle_uid("s1"));
        assert_eq!(c.text("SUMMARY").unwrap(), "Cycle: Sprint 1");
        assert_eq!(
            (prop(&c, "DTSTART"), prop(&c, "DTEND")),
            ("20261130".into(), "20261212".into())
        );
        assert_eq!(prop(&c, "SEQUENCE"), "0");
        let m = w.object(&module_uid("m2"));
        assert_eq!(
            (prop(&m, "DTSTART"), prop(&m, "DTEND")),
            ("20261205".into(), "20261206".into())
        );
        assert!(!w.cal.objects.keys().any(|k| k.contains("draft")));
        // Renamed and moved in Plane: updated in place.
        w.plane.edit_cycle("s1", |c| {
            c.name = "Sprint One".into();
            c.end_date = Some("2026-12-12T23:59:00Z".into());
        });
        let s = w.cycle();
        assert_eq!((s.updated, s.created, s.deleted), (1, 0, 0), "{s:?}");
        let c = w.object(&cycle_uid("s1"));
        assert_eq!(c.text("SUMMARY").unwrap(), "Cycle: Sprint One");
        assert_eq!(
            (prop(&c, "DTEND"), prop(&c, "SEQUENCE")),
            ("20261213".into(), "1".into())
        );
        // Progress moved: the description follows.
        w.plane.edit_cycle("s1", |c| c.completed_issues = 2);
        w.cycle();
        let text = w.object(&cycle_uid("s1")).text("DESCRIPTION").unwrap();
        assert!(text.starts_with("2/2 work items completed"), "{text}");
        // Archived, cancelled, dates taken away: gone (in two cycles: three of five at
        // once would trip the safety valve).
        w.plane.edit_cycle("s1", |c| {
            c.archived_at = Some("2026-12-20T00:00:00Z".into())
        });
        w.plane
            .edit_module("m1", |m| m.status = crate::plane::ModuleStatus::Cancelled);
        let s = w.cycle();
        assert_eq!(s.deleted, 2, "{s:?}");
        assert_eq!(s.delete_reasons["cycle or module deleted or archived"], 1);
        assert_eq!(s.delete_reasons["module cancelled"], 1);
        w.plane.edit_module("m2", |m| m.target_date = None);
        let s = w.cycle();
        assert_eq!(
            s.delete_reasons["cycle or module without dates"], 1,
            "{s:?}"
        );
        assert_eq!(w.cal.objects.len(), 2, "the work items' events stay");
        w.settle();
        assert!(
            w.plane.patches.is_empty() && w.plane.posts.is_empty(),
            "read-only"
        );
    }

    #[test]
    fn calendar_edits_to_cycles_are_reverted_once_and_never_reach_plane() {
        for (policy, create) in [
            (ConflictPolicy::Plane, false),
            (ConflictPolicy::Calendar, true),
        ] {
            let mut w = World::with_timeline(ItemKind::Event);
            w.two_way.policy = policy;
            w.create_from_calendar = create;
            w.settle();
            let writes = w.cal.writes();
            w.user_edits(&cycle_uid("s1"), |c| {
                c.set(Property::text("SUMMARY", "My sprint"));
                c.set(Property::new("DTSTART", "20261201").with_param("VALUE", "DATE"));
            });
            let s = w.cycle();
            assert_eq!(
                (s.updated, s.plane_updated, s.plane_created),
                (1, 0, 0),
                "{s:?}"
            );
            let c = w.object(&cycle_uid("s1"));
            assert_eq!(c.text("SUMMARY").unwrap(), "Cycle: Sprint 1", "reverted");
            assert_eq!(prop(&c, "DTSTART"), "20261130");
            assert_eq!(w.cal.writes(), writes + 1, "one PUT: the revert");
            w.settle();
            assert_eq!(w.cal.writes(), writes + 1, "reverted once");
            // An alarm of the user's is no edit of ours: kept, nothing written.
            w.user_edits(&module_uid("m1"), |c| {
                let mut alarm = Component::new("VALARM");
                alarm.push(Property::new("ACTION", "DISPLAY"));
                alarm.push(Property::new("TRIGGER", "-P1D"));
                c.components.push(alarm);
            });
            let s = w.cycle();
            assert_eq!((s.updated, s.unchanged > 0), (0, true), "{s:?}");
            assert_eq!(w.object(&module_uid("m1")).components.len(), 1);
            w.settle();
            assert!(
                w.plane.patches.is_empty(),
                "{policy:?}: {:?}",
                w.plane.patches
            );
            assert!(w.plane.posts.is_empty(), "{policy:?}: a work item was made");
            assert_eq!(w.plane.items.len(), 2);
        }
    }

    #[test]
    fn a_deleted_cycle_event_comes_back_whatever_calendar_delete_says() {
        let mut w = World::with_timeline(ItemKind::Event);
        w.two_way.calendar_delete = CalendarDelete::ClearDate;
        w.settle();
        let href = w.href(&cycle_uid("s1"));
        w.cal.remove(&href);
        let s = w.cycle();
        assert_eq!((s.created, s.plane_updated), (1, 0), "{s:?}");
        assert!(w.cal.objects.contains_key(&percent_decode(&href)));
        assert!(w.plane.patches.is_empty());
        w.settle();
    }

    #[test]
    fn turning_a_setting_off_removes_its_events() {
        let mut w = World::with_timeline(ItemKind::Event);
        w.settle();
        w.mapping.cycles = false;
        let s = w.cycle();
        assert_eq!(s.deleted, 1, "{s:?}");
        assert_eq!(s.delete_reasons["SYNC_CYCLES/SYNC_MODULES off"], 1);
        assert!(w.cal.objects.keys().all(|k| !k.contains("plane-cycle-")));
        assert_eq!(w.cal.objects.len(), 4, "modules and work items stay");
        w.settle();
        w.mapping.cycles = true;
        let s = w.cycle();
        assert_eq!(s.created, 1, "{s:?}");
        w.settle();
    }

    #[test]
    fn switched_on_between_full_cycles_they_appear_at_once() {
        let mut w = World::with_timeline(ItemKind::Event);
        w.mapping.cycles = false;
        w.mapping.modules = false;
        w.settle();
        assert!(w.plane.timeline_listings.is_empty(), "off: never listed");
        w.full = false;
        w.mapping.modules = true;
        let s = w.cycle();
        assert_eq!(s.created, 2, "{s:?}");
        assert_eq!(w.plane.timeline_listings, ["modules"]);
        let record = &w.journal().state().projects["p"];
        assert_eq!(record.timeline.as_deref(), Some("modules"));
        w.settle();
        assert_eq!(w.plane.timeline_listings, ["modules"], "then idle again");
        w.mapping.modules = false;
        let s = w.cycle();
        assert_eq!(s.deleted, 2, "{s:?}");
        assert_eq!(w.journal().state().projects["p"].timeline, None);
        w.settle();
    }

    #[test]
    fn a_lost_journal_adopts_cycle_events() {
        let mut w = World::with_timeline(ItemKind::Event);
        w.settle();
        let (objects, writes) = (w.cal.objects.len(), w.cal.writes());
        w.journal = None;
        std::fs::remove_dir_all(&w.dir).unwrap();
        w.journal = Some(Journal::open(&w.dir).unwrap());
        let s = w.cycle();
        assert!(s.errors.is_empty(), "{s:?}");
        assert_eq!(s.created, 0, "{s:?}");
        assert_eq!((w.cal.objects.len(), w.cal.writes()), (objects, writes));
        let record = &w.journal().state().items[&cycle_uid("s1")];
        assert_eq!(record.work_item, "s1");
        w.settle();
    }

    #[test]
    fn incremental_cycles_list_cycles_and_modules_only_when_needed() {
        let mut w = World::with_timeline(ItemKind::Event);
        w.settle();
        w.full = false;
        w.cycle();
        let (requests, listings) = (w.plane.requests, w.plane.timeline_listings.len());
        w.cycle();
        assert_eq!(
            w.plane.requests,
            requests + 1,
            "idle: the work-item listing only"
        );
        assert_eq!(w.plane.timeline_listings.len(), listings);
        // A work item changed (it may have moved into a cycle): both are listed.
        w.plane.edit("a", |i| i.name = "Touched".into());
        w.plane.edit_cycle("s1", |c| c.completed_issues = 2);
        w.cycle();
        assert_eq!(
            &w.plane.timeline_listings[listings..],
            ["cycles", "modules"]
        );
        assert!(prop(&w.object(&cycle_uid("s1")), "DESCRIPTION").starts_with("2/2"));
        // A webhook about modules: the modules alone, no work-item listing.
        w.plane.edit_module("m1", |m| m.name = "Launch day".into());
        let (requests, listings) = (w.plane.requests, w.plane.timeline_listings.len());
        w.list_items = false;
        w.timeline_wake = Some(Kind::Module);
        let s = w.cycle();
        assert_eq!(s.updated, 1, "{s:?}");
        assert_eq!(w.plane.requests, requests + 1);
        assert_eq!(&w.plane.timeline_listings[listings..], ["modules"]);
        assert_eq!(
            w.object(&module_uid("m1")).text("SUMMARY").unwrap(),
            "Module: Launch day"
        );
        (w.list_items, w.timeline_wake) = (true, None);
        // Edited in the calendar between full cycles: its kind is listed, the edit reverted.
        let listings = w.plane.timeline_listings.len();
        w.user_edits(&cycle_uid("s1"), |c| {
            c.set(Property::text("SUMMARY", "Mine"))
        });
        let s = w.cycle();
        assert_eq!(s.updated, 1, "{s:?}");
        assert_eq!(&w.plane.timeline_listings[listings..], ["cycles"]);
        // A failing listing changes nothing of that kind (and deletes nothing).
        w.plane.edit("a", |i| i.name = "Again".into());
        w.plane.fail_next_timeline = Some(502);
        let s = w.cycle();
        assert_eq!((s.errors.len(), s.deleted), (1, 0), "{s:?}");
        w.settle();
        assert_eq!(w.cal.objects.len(), 5);
    }

    #[test]
    fn tasks_mode_puts_cycles_in_calendars_that_take_events() {
        let mut w = World::with_timeline(ItemKind::Todo);
        w.settle();
        assert_eq!(w.object(&cycle_uid("s1")).name, "VEVENT");
        assert_eq!(w.object("a").name, "VTODO");
        // A calendar for tasks only: none (and the ones there would go).
        let mut w = World::with_timeline(ItemKind::Todo);
        w.takes_events = false;
        let s = w.cycle();
        assert_eq!(s.created, 2, "the tasks only: {s:?}");
        w.settle();
    }

    #[test]
    fn first_cycle_creates_then_nothing_more() {
        let mut w = World::new(ItemKind::Event);
        let s = w.cycle();
        assert_eq!((s.created, s.errors.len()), (2, 0), "{s:?}");
        w.settle();
        assert!(w.plane.patches.is_empty());
    }

    #[test]
    fn many_changed_objects_are_read_a_batch_at_a_time() {
        // A calendar app renamed more objects than one multiget batch holds. Planning reads
        // them batch by batch and keeps the first batch; apply reads the others again,
        // batch by batch, and every rename reaches Plane.
        let mut w = World::new(ItemKind::Event);
        let n = 2 * MULTIGET_BATCH + 5;
        let ids: Vec<String> = (0..n).map(|i| format!("m{i:03}")).collect();
        for id in &ids {
            w.plane.add(id, "Batch item", "2026-12-03");
        }
        w.settle();
        for id in &ids {
            let seq = w.plane.item(id).sequence_id;
            w.user_edits(id, |c| {
                c.set(Property::text(
                    "SUMMARY",
                    &format!("[P-{seq}] Renamed {id}"),
                ))
            });
        }
        w.cal.multigets.clear();
        let s = w.cycle();
        assert!(s.errors.is_empty(), "{:?}", s.errors);
        assert_eq!(s.plane_updated, n, "{s:?}");
        for id in &ids {
            assert_eq!(w.plane.item(id).name, format!("Renamed {id}"));
        }
        let batch = MULTIGET_BATCH;
        assert_eq!(
            w.cal.multigets,
            [batch, batch, 5, batch, 5],
            "planning: three batches; apply: the two it did not keep"
        );
        w.settle();
    }

    #[test]
    fn a_webhook_syncs_one_item_without_listings() {
        let mut w = World::new(ItemKind::Event);
        w.settle();
        w.plane.edit("a", |i| i.name = "Renamed in Plane".into());
        let (requests, listings) = (w.plane.requests, w.cal.count("PROPFIND"));
        let summary = w.webhook("a");
        assert_eq!(summary.updated, 1, "{summary:?}");
        assert_eq!(w.plane.requests, requests, "the caller fetched the item");
        assert_eq!(w.cal.count("PROPFIND"), listings, "no calendar listing");
        assert_eq!(
            w.object("a").text("SUMMARY").unwrap(),
            "[P-1] Renamed in Plane"
        );
        w.settle();
    }

    #[test]
    fn idle_cycles_cost_one_plane_request_and_no_calendar_request() {
        for sync_collection in [true, false] {
            let mut w = World::new(ItemKind::Event);
            w.cal.sync_collection = sync_collection;
            w.settle();
            w.full = false;
            w.cycle();
            let (plane, dav) = (w.plane.requests, w.cal.requests.values().sum::<u32>());
            w.cycle();
            assert_eq!(
                w.plane.requests,
                plane + 1,
                "sync-collection: {sync_collection}"
            );
            assert_eq!(
                w.cal.requests.values().sum::<u32>(),
                dav,
                "{:?}",
                w.cal.requests
            );
            // An edit: one REPORT (sync-collection) or one PROPFIND (ctag), then a multiget.
            w.user_edits("b", |c| {
                c.set(Property::text("SUMMARY", "[P-2] Call Bobby"))
            });
            w.cycle();
            assert_eq!(w.plane.item("b").name, "Call Bobby");
            let listing = if sync_collection {
                "REPORT"
            } else {
                "PROPFIND"
            };
            assert!(w.cal.count(listing) > 0, "{:?}", w.cal.requests);
            w.settle();
        }
    }

    #[test]
    fn deleting_an_event_we_just_created_is_seen_despite_content_hash_ctags() {
        // Found by the SIGKILL trials against Xandikos: its version of a calendar is a
        // hash of the content, so create-then-delete brings the old version back.
        let mut w = World::new(ItemKind::Event);
        w.cal.sync_collection = false;
        w.full = false;
        w.settle();
        w.plane.add("c", "New in Plane", "2026-12-09");
        let s = w.cycle();
        assert_eq!(s.created, 1, "{s:?}");
        let href = w.href("c");
        w.cal.remove(&href);
        let s = w.cycle();
        assert_eq!(s.created, 1, "the deletion was seen and answered: {s:?}");
        w.settle();
    }

    #[test]
    fn a_deletion_after_a_power_cut_is_answered() {
        // Found by the power-cut trials against Xandikos: a cycle made an object (our
        // event, or a work item from the user's task) and a power cut kept its record but
        // not the calendar version forgotten after it. The user then deleted the object,
        // which brought the old content-hash version back: the deletion went unseen and
        // the date stayed in Plane.
        for from_calendar in [false, true] {
            let mut w = World::new(ItemKind::Event);
            w.cal.sync_collection = false;
            w.full = false;
            w.create_from_calendar = true;
            w.two_way.calendar_delete = CalendarDelete::ClearDate;
            w.settle();
            let href = if from_calendar {
                let text = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//phone//EN\r\n\
                            BEGIN:VEVENT\r\nUID:phone-1\r\nDTSTAMP:20261123T100000Z\r\n\
                            SUMMARY:Dentist\r\nDTSTART;VALUE=DATE:20261207\r\n\
                            END:VEVENT\r\nEND:VCALENDAR\r\n";
                w.cal.insert("/cal/p/phone-1.ics", text);
                "/cal/p/phone-1.ics".to_string()
            } else {
                w.plane.add("c", "New in Plane", "2026-12-09");
                percent_decode(&w.href("c"))
            };
            let s = w.cycle();
            assert_eq!(s.created + s.plane_created, 1, "{s:?}");
            let id = w.plane.items.last().unwrap().id.clone();
            w.power_cut();
            w.cal.remove(&href);
            let s = w.cycle();
            assert_eq!(
                s.plane_updated, 1,
                "from the calendar: {from_calendar}, {s:?}"
            );
            assert_eq!(w.plane.item(&id).target_date, None);
            w.settle();
            assert!(!w.cal.objects.contains_key(&href), "not recreated");
        }
    }

    #[test]
    fn an_edit_after_an_unconfirmed_create_is_merged() {
        // Found by the SIGKILL trials: killed after the create's PUT, before its journal
        // record; the user then edits the event before the next cycle.
        let mut w = World::new(ItemKind::Event);
        w.settle();
        w.plane.add("c", "New in Plane", "2026-12-09");
        w.cycle();
        let uid = model::uid_for("c");
        let mut pending = w.journal().state().items[&uid].clone();
        pending.etag = None;
        w.journal().put_item(pending).unwrap();
        w.user_edits("c", |c| {
            c.set(Property::text("SUMMARY", "[P-3] Renamed at once"))
        });
        let s = w.cycle();
        assert_eq!((s.plane_updated, s.created), (1, 0), "{s:?}");
        assert_eq!(w.plane.item("c").name, "Renamed at once");
        w.settle();
    }

    #[test]
    fn a_refused_create_whose_adoption_fails_pushes_nothing_to_plane() {
        // Another client put an object at the href of a new item (a restored backup, say):
        // our create gets 412 and the GET that would adopt it fails. The next cycle must
        // adopt the object (Plane wins), not read it as an edit of what we never wrote.
        let mut w = World::new(ItemKind::Event);
        w.settle();
        w.plane.add("c", "New in Plane", "2026-12-09");
        let uid = model::uid_for("c");
        let stale = format!(
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//x//y//EN\r\nBEGIN:VEVENT\r\n\
             UID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART;VALUE=DATE:20260301\r\n\
             SUMMARY:[P-3] Old name from a backup\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
        );
        // Unlogged: the sync-collection delta does not show it (a server that missed a
        // change), so the plan creates where the object already is.
        let key = percent_decode(&w.href("c"));
        w.cal.objects.insert(key, ("\"backup\"".into(), stale));
        w.cal.fail_next_get = Some(503);
        let s = w.cycle();
        assert_eq!(s.errors.len(), 1, "{s:?}");
        assert!(!w.journal().state().items.contains_key(&uid));
        let s = w.cycle();
        assert!(s.errors.is_empty(), "{s:?}");
        assert_eq!((s.plane_updated, s.updated), (0, 1), "{s:?}");
        assert!(w.plane.patches.is_empty(), "{:?}", w.plane.patches);
        assert_eq!(prop(&w.object("c"), "SUMMARY"), "[P-3] New in Plane");
        w.settle();
    }

    #[test]
    fn a_landed_write_survives_a_second_crash() {
        // Found by the SIGKILL trials (killed_task_cycles_xandikos): run A's PATCH landed
        // but its shadow was never journaled; run B recorded a newer in-flight value and
        // died before its PATCH. Run C must still see Plane's value as ours, not as a
        // Plane edit that beats the user's next move.
        let mut w = World::new(ItemKind::Event);
        w.settle();
        let uid = model::uid_for("a");
        let move_to = |w: &mut World, day: &str| {
            w.user_edits("a", |c| {
                c.set(Property::new("DTSTART", day).with_param("VALUE", "DATE"));
            });
        };
        // Run A, killed after its PATCH: Plane has the 5th, the journal only the marker.
        let mut record = w.journal().state().items[&uid].clone();
        let mut sent = record.shadow.clone();
        sent.target_date = Some("2026-12-05".into());
        record.sent_to_plane = Some(Box::new(sent));
        w.journal().put_item(record).unwrap();
        w.plane
            .edit("a", |i| i.target_date = Some("2026-12-05".into()));
        move_to(&mut w, "20261205");
        // Run B: the user moved it on to the 7th; the PATCH never arrives.
        move_to(&mut w, "20261207");
        w.plane.fail_next_patch = Some(503);
        w.cycle();
        assert_eq!(w.plane.item("a").target_date.as_deref(), Some("2026-12-05"));
        // Run C: moved again, to the 9th.
        move_to(&mut w, "20261209");
        let s = w.cycle();
        assert_eq!((s.plane_updated, s.conflicts), (1, 0), "{s:?}");
        assert_eq!(w.plane.item("a").target_date.as_deref(), Some("2026-12-09"));
        w.settle();
    }

    #[test]
    fn a_date_moved_in_the_calendar_reaches_plane_once() {
        let mut w = World::new(ItemKind::Event);
        w.settle();
        w.user_edits("a", |c| {
            c.set(Property::new("DTSTART", "20261205").with_param("VALUE", "DATE"));
            c.set(Property::new("DTEND", "20261206").with_param("VALUE", "DATE"));
        });
        let s = w.cycle();
        assert_eq!(s.plane_updated, 1, "{s:?}");
        assert_eq!(w.plane.patches.len(), 1);
        let (id, patch) = &w.plane.patches[0];
        assert_eq!(id, "a");
        assert_eq!(patch.target_date, Some(Some("2026-12-05".into())));
        assert_eq!((patch.name.clone(), patch.state.clone()), (None, None));
        assert_eq!(w.plane.item("a").target_date.as_deref(), Some("2026-12-05"));
        assert_eq!(w.plane.item("b").target_date.as_deref(), Some("2026-12-02"));
        w.settle();
        assert_eq!(w.plane.patches.len(), 1, "no echo");
    }

    #[test]
    fn a_rename_reaches_plane_and_the_prefix_comes_back() {
        let mut w = World::new(ItemKind::Event);
        w.settle();
        w.user_edits("a", |c| {
            c.set(Property::text("SUMMARY", "Write the annual report"))
        });
        w.cycle();
        assert_eq!(w.plane.item("a").name, "Write the annual report");
        assert_eq!(
            w.object("a").text("SUMMARY").unwrap(),
            "[P-1] Write the annual report"
        );
        w.settle();
        assert_eq!(w.plane.patches.len(), 1);
    }

    #[test]
    fn a_client_rewrite_without_changes_writes_nothing() {
        let mut w = World::new(ItemKind::Event);
        w.settle();
        let writes = w.cal.writes();
        w.user_edits("a", |c| {
            c.set(Property::new("DTSTAMP", "20261124T000000Z"));
            c.push(Property::new("X-CLIENT-SEEN", "1"));
            c.properties.reverse();
        });
        let s = w.cycle();
        assert!(s.errors.is_empty(), "{s:?}");
        assert_eq!(w.cal.writes(), writes, "no PUT for a rewrite");
        assert!(w.plane.patches.is_empty());
        w.settle();
    }

    #[test]
    fn tasks_ticked_and_unticked() {
        let mut w = World::new(ItemKind::Todo);
        w.settle();
        w.user_edits("a", |c| {
            c.set(Property::new("STATUS", "COMPLETED"));
            c.set(Property::new("COMPLETED", "20261123T120000Z"));
        });
        w.cycle();
        assert_eq!(w.plane.item("a").state.group, "completed");
        assert_eq!(w.plane.patches[0].1.state.as_deref(), Some("Done"));
        w.settle();
        w.user_edits("a", |c| {
            c.set(Property::new("STATUS", "NEEDS-ACTION"));
            c.remove("COMPLETED");
        });
        w.cycle();
        assert_eq!(w.plane.item("a").state.id, "Todo");
        w.settle();
        assert_eq!(w.plane.patches.len(), 2);
    }

    fn conflict(policy: ConflictPolicy, plane_newer: bool) -> World {
        let mut w = World::new(ItemKind::Event);
        w.two_way.policy = policy;
        w.settle();
        w.user_edits("a", |c| {
            c.set(Property::text("SUMMARY", "[P-1] Calendar name"))
        });
        w.plane.edit("a", |i| i.name = "Plane name".into());
        if plane_newer {
            // LAST-MODIFIED of the calendar edit is 2026-11-23T12:00:00Z.
            let a = w.plane.items.iter_mut().find(|i| i.id == "a").unwrap();
            a.updated_at = "2026-11-23T13:00:00Z".into();
        }
        let s = w.cycle();
        assert_eq!(s.conflicts, 1, "{s:?}");
        w.settle();
        w
    }

    #[test]
    fn conflicts_follow_the_policy() {
        let w = conflict(ConflictPolicy::Plane, false);
        assert_eq!(w.plane.item("a").name, "Plane name");
        assert_eq!(w.object("a").text("SUMMARY").unwrap(), "[P-1] Plane name");
        assert!(w.plane.patches.is_empty());

        let w = conflict(ConflictPolicy::Calendar, true);
        assert_eq!(w.plane.item("a").name, "Calendar name");
        assert_eq!(
            w.object("a").text("SUMMARY").unwrap(),
            "[P-1] Calendar name"
        );

        let w = conflict(ConflictPolicy::Newest, false);
        assert_eq!(
            w.plane.item("a").name,
            "Calendar name",
            "calendar edited last"
        );
        let w = conflict(ConflictPolicy::Newest, true);
        assert_eq!(w.plane.item("a").name, "Plane name", "Plane edited last");
        assert_eq!(w.object("a").text("SUMMARY").unwrap(), "[P-1] Plane name");
    }

    #[test]
    fn deleted_events_come_back_or_clear_the_date() {
        let mut w = World::new(ItemKind::Event);
        w.settle();
        let href = percent_decode(&w.href("a"));
        w.cal.remove(&href);
        let s = w.cycle();
        assert_eq!(s.created, 1, "recreated: {s:?}");
        w.settle();

        w.two_way.calendar_delete = CalendarDelete::ClearDate;
        w.cal.remove(&href);
        let s = w.cycle();
        assert_eq!(s.plane_updated, 1, "{s:?}");
        assert_eq!(w.plane.item("a").target_date, None);
        assert!(!w.cal.objects.contains_key(&href));
        w.settle();
        assert!(!w.cal.objects.contains_key(&href), "not recreated");
    }

    #[test]
    fn plane_to_calendar_overwrites_calendar_edits() {
        let mut w = World::new(ItemKind::Event);
        w.two_way.direction = SyncDirection::PlaneToCalendar;
        w.settle();
        w.user_edits("a", |c| c.set(Property::text("SUMMARY", "[P-1] Mine")));
        w.cycle();
        assert_eq!(w.object("a").text("SUMMARY").unwrap(), "[P-1] Write report");
        assert_eq!(w.plane.item("a").name, "Write report");
        w.settle();
        assert!(w.plane.patches.is_empty());
    }

    #[test]
    fn plane_refusal_leaves_the_edit_for_next_time() {
        let mut w = World::new(ItemKind::Event);
        w.settle();
        w.user_edits("a", |c| c.set(Property::text("SUMMARY", "[P-1] New name")));
        w.plane.fail_next_patch = Some(400);
        let s = w.cycle();
        assert_eq!(s.errors.len(), 1, "{s:?}");
        assert!(s.errors[0].contains("Plane refused"), "{:?}", s.errors);
        assert_eq!(w.object("a").text("SUMMARY").unwrap(), "[P-1] New name");
        w.cycle();
        assert_eq!(w.plane.item("a").name, "New name");
        w.settle();
    }

    #[test]
    fn moving_before_the_start_keeps_the_items_length() {
        let mut w = World::new(ItemKind::Event);
        w.plane
            .edit("a", |i| i.start_date = Some("2026-11-28".into()));
        w.settle();
        w.user_edits("a", |c| {
            c.set(Property::new("DTSTART", "20261120").with_param("VALUE", "DATE"));
        });
        w.cycle();
        let a = w.plane.item("a");
        assert_eq!(a.target_date.as_deref(), Some("2026-11-20"));
        assert_eq!(a.start_date.as_deref(), Some("2026-11-17"));
        w.settle();
    }

    #[test]
    fn incremental_cycles_still_see_calendar_edits() {
        let mut w = World::new(ItemKind::Event);
        w.settle();
        w.full = false;
        w.cycle();
        let before = w.plane.requests;
        w.cycle();
        assert_eq!(w.plane.requests, before + 1, "an idle cycle is one listing");
        // The watermark hides "b" from the listing; its calendar edit needs one GET.
        w.plane.edit("a", |i| i.name = "Touched".into());
        w.user_edits("b", |c| {
            c.set(Property::text("SUMMARY", "[P-2] Call Bobby"))
        });
        w.cycle();
        assert_eq!(w.plane.item("b").name, "Call Bobby");
        assert_eq!(w.object("a").text("SUMMARY").unwrap(), "[P-1] Touched");
        w.settle();
        // An event deleted while its item is not in the incremental listing comes back.
        let href = w.href("b");
        w.cal.remove(&href);
        let s = w.cycle();
        assert_eq!(s.created, 1, "{s:?}");
        w.settle();
    }

    #[test]
    fn new_calendar_events_become_work_items_once() {
        let mut w = World::new(ItemKind::Event);
        w.create_from_calendar = true;
        w.settle();
        let text = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//phone//EN\r\nBEGIN:VEVENT\r\n\
                    UID:phone-1\r\nDTSTAMP:20261123T100000Z\r\nSUMMARY:Dentist\r\n\
                    DTSTART;VALUE=DATE:20261207\r\nLOCATION:Main St\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        w.cal.insert("/cal/p/phone-1.ics", text);
        let s = w.cycle();
        assert_eq!(s.plane_created, 1, "{s:?}");
        let new = w.plane.items.last().unwrap().clone();
        assert_eq!(new.name, "Dentist");
        assert_eq!(new.target_date.as_deref(), Some("2026-12-07"));
        assert_eq!(new.external_id.as_deref(), Some("phone-1"));
        // A crash that lost the journal record after the POST: the item's external id
        // ties it to the object again.
        w.journal().remove_item("phone-1").unwrap();
        let s = w.cycle();
        assert_eq!((s.plane_created, s.errors.len()), (0, 0), "{s:?}");
        assert_eq!(w.plane.items.len(), 3, "no duplicate work item");
        assert_eq!(w.plane.posts.len(), 1);
        w.settle();
        let (_, text) = &w.cal.objects["/cal/p/phone-1.ics"];
        assert!(text.contains("SUMMARY:[P-3] Dentist"), "{text}");
        assert!(text.contains("LOCATION:Main St"), "{text}");
        assert_eq!(w.cal.objects.len(), 3, "owned in place, not copied");
    }

    #[test]
    fn a_work_item_made_from_an_event_survives_a_crash_around_its_post() {
        // Found by the SIGKILL trials against Xandikos: killed after Plane made the work
        // item for a phone's event, before its journal record. The user then deleted the
        // event: it came back as a new event, and the date stayed in Plane.
        use crate::sync::store::memory::PostFailure::{AnswerLost, NotDelivered};
        const HREF: &str = "/cal/p/phone-1.ics";
        for (failure, then_deleted) in [
            (AnswerLost, true),
            (AnswerLost, false),
            (NotDelivered, true),
            (NotDelivered, false),
        ] {
            let case = format!("{failure:?}, event deleted: {then_deleted}");
            let mut w = World::new(ItemKind::Event);
            w.create_from_calendar = true;
            w.two_way.calendar_delete = CalendarDelete::ClearDate;
            w.settle();
            let text = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//phone//EN\r\n\
                        BEGIN:VEVENT\r\nUID:phone-1\r\nDTSTAMP:20261123T100000Z\r\n\
                        SUMMARY:Dentist\r\nDTSTART;VALUE=DATE:20261207\r\n\
                        END:VEVENT\r\nEND:VCALENDAR\r\n";
            w.cal.insert(HREF, text);
            w.plane.fail_next_post = Some(failure);
            let s = w.cycle();
            assert_eq!(s.errors.len(), 1, "{case}: {s:?}");
            w.power_cut();
            if then_deleted {
                w.cal.remove(HREF);
            }
            if failure == AnswerLost {
                // Plane's webhook for the new item may come first: it finds the record by
                // the item's UID and answers like a cycle would.
                let id = w.plane.items.last().unwrap().id.clone();
                let s = w.webhook(&id);
                assert!(s.errors.is_empty(), "{case}: webhook {s:?}");
                assert_eq!(s.created, 0, "{case}: webhook {s:?}");
            }
            let s = w.cycle();
            assert!(s.errors.is_empty(), "{case}: {s:?}");
            w.settle();
            let made: Vec<&WorkItem> = w
                .plane
                .items
                .iter()
                .filter(|i| i.external_id.as_deref() == Some("phone-1"))
                .collect();
            let objects = w.cal.objects.len();
            match (failure, then_deleted) {
                (AnswerLost, true) => {
                    assert_eq!(made.len(), 1, "{case}");
                    assert_eq!(made[0].target_date, None, "{case}: date cleared");
                    assert_eq!(objects, 2, "{case}: not recreated");
                }
                (NotDelivered, true) => {
                    assert!(made.is_empty(), "{case}: nothing to make");
                    assert_eq!(objects, 2, "{case}");
                }
                (_, false) => {
                    assert_eq!(made.len(), 1, "{case}: one work item");
                    let (_, text) = &w.cal.objects[HREF];
                    assert!(text.contains("SUMMARY:[P-3] Dentist"), "{case}: {text}");
                    assert_eq!(objects, 3, "{case}: owned in place, not copied");
                }
            }
            let journal = &w.journal().state().items;
            assert!(journal.values().all(|r| !r.item_pending()), "{case}");
        }
    }

    #[test]
    fn a_lost_journal_adopts_instead_of_duplicating() {
        for conflict in [
            UidConflict::Conflict409,
            UidConflict::Precondition412,
            UidConflict::Accept,
        ] {
            let mut w = World::new(ItemKind::Event);
            w.cal.uid_conflict = conflict;
            // The seed's event for "a" at a name of its own.
            let seed = format!(
                "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:seed\r\nBEGIN:VEVENT\r\nUID:{}\r\n\
                 DTSTAMP:20261101T000000Z\r\nSUMMARY:old\r\nDTSTART;VALUE=DATE:20261201\r\n\
                 END:VEVENT\r\nEND:VCALENDAR\r\n",
                model::uid_for("a")
            );
            w.cal.insert("/cal/p/seed-a.ics", &seed);
            let s = w.cycle();
            assert!(s.errors.is_empty(), "{conflict:?}: {s:?}");
            assert_eq!(
                w.cal.objects.len(),
                2,
                "{conflict:?}: {:?}",
                w.cal.objects.keys()
            );
            let (_, text) = &w.cal.objects["/cal/p/seed-a.ics"];
            assert!(text.contains("[P-1] Write report"), "{conflict:?}: {text}");
            w.settle();
        }
    }

    #[test]
    fn timed_events_map_to_their_day() {
        let mut w = World::new(ItemKind::Event);
        w.settle();
        w.user_edits("a", |c| {
            c.set(Property::new("DTSTART", "20261209T090000").with_param("TZID", "Europe/Berlin"));
            c.set(Property::new("DTEND", "20261209T100000").with_param("TZID", "Europe/Berlin"));
        });
        w.cycle();
        assert_eq!(w.plane.item("a").target_date.as_deref(), Some("2026-12-09"));
        assert_eq!(prop(&w.object("a"), "DTSTART"), "20261209", "all-day again");
        w.settle();
    }
}
