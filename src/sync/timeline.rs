//! Cycles and modules in the calendar (issue 12): how a Plane cycle (a sprint) or module
//! (a milestone) looks as an all-day VEVENT, whatever ITEM_KIND says. Pure, like
//! [`super::model::render`], and rendered into the same [`Rendered`]/[`Desired`] shape, so
//! planning, applying, the journal and the feeds treat them like work items — except that
//! nothing ever flows back to Plane: they are read-only mirrors (see `plan`).
//!
//! - A cycle's `start_date`/`end_date` are instants; its days are their dates in the
//!   cycle's zone ([`Zones`] resolves the name; an unknown one is UTC, with one WARN).
//!   A cycle without both dates is a draft: no event.
//! - A module's `start_date`/`target_date` are dates: both → a span, only the target → a
//!   one-day event, otherwise none. Cancelled → none; completed follows COMPLETED_ITEMS.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use super::model::{self, Desired, Excluded, Mapping, Rendered};
use crate::config::CompletedItems;
use crate::ical::{self, Component, Date, Param, Property};
use crate::plane::{Cycle, Module, ModuleStatus, Project};
use crate::tz::Zone;

/// UID prefix of a cycle's event.
pub const CYCLE_UID_PREFIX: &str = "plane-cycle-";
/// UID prefix of a module's event.
pub const MODULE_UID_PREFIX: &str = "plane-module-";
/// Zone names warned about once per process, at most (a bound on memory: each cycle
/// carries a zone name, and a broken Plane could send a new one in every cycle).
const MAX_WARNED_ZONES: usize = 64;

/// Which of a project's timelines an object belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// A cycle (sprint).
    Cycle,
    /// A module.
    Module,
}

impl Kind {
    /// Both kinds, in the order they are listed.
    pub const ALL: [Kind; 2] = [Kind::Cycle, Kind::Module];

    /// The kind of one of our UIDs (`None` for work items and foreign UIDs).
    pub fn of_uid(uid: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.id_of(uid).is_some())
    }

    fn prefix(self) -> &'static str {
        match self {
            Kind::Cycle => CYCLE_UID_PREFIX,
            Kind::Module => MODULE_UID_PREFIX,
        }
    }

    /// `plane-cycle-{id}@calplanebot` / `plane-module-{id}@calplanebot`.
    pub fn uid(self, id: &str) -> String {
        [self.prefix(), id, model::UID_SUFFIX].concat()
    }

    /// The cycle or module id in a UID of this kind.
    pub fn id_of(self, uid: &str) -> Option<&str> {
        uid.strip_prefix(self.prefix())?
            .strip_suffix(model::UID_SUFFIX)
            .filter(|id| !id.is_empty())
    }

    /// `cycle` / `module`, for logs.
    pub fn noun(self) -> &'static str {
        match self {
            Kind::Cycle => "cycle",
            Kind::Module => "module",
        }
    }

    /// `cycles` / `modules`, for logs and Plane's paths.
    pub fn plural(self) -> &'static str {
        match self {
            Kind::Cycle => "cycles",
            Kind::Module => "modules",
        }
    }

    /// The variable that switches this kind on.
    pub fn setting(self) -> &'static str {
        match self {
            Kind::Cycle => "SYNC_CYCLES",
            Kind::Module => "SYNC_MODULES",
        }
    }

    /// Whether the mapping syncs this kind.
    pub fn enabled(self, m: &Mapping) -> bool {
        match self {
            Kind::Cycle => m.cycles,
            Kind::Module => m.modules,
        }
    }

    /// SUMMARY prefix and CATEGORIES value.
    fn title(self) -> &'static str {
        match self {
            Kind::Cycle => "Cycle",
            Kind::Module => "Module",
        }
    }

    /// Our marker property holding the cycle's or module's id.
    pub fn id_property(self) -> &'static str {
        match self {
            Kind::Cycle => "X-PLANE-CYCLE-ID",
            Kind::Module => "X-PLANE-MODULE-ID",
        }
    }
}

impl From<crate::plane::webhook::TimelineKind> for Kind {
    fn from(k: crate::plane::webhook::TimelineKind) -> Kind {
        match k {
            crate::plane::webhook::TimelineKind::Cycles => Kind::Cycle,
            crate::plane::webhook::TimelineKind::Modules => Kind::Module,
        }
    }
}

/// The kinds a journal's project record says are known in full (see
/// `state::ProjectRecord::timeline`); unknown words are ignored.
pub fn kinds_of(recorded: Option<&str>) -> BTreeSet<Kind> {
    recorded
        .unwrap_or("")
        .split(',')
        .filter_map(|w| Kind::ALL.into_iter().find(|k| k.plural() == w.trim()))
        .collect()
}

/// The journal's form of a set of kinds (`None` for none).
pub fn record_of(kinds: &BTreeSet<Kind>) -> Option<String> {
    let words: Vec<&str> = kinds.iter().map(|k| k.plural()).collect();
    (!words.is_empty()).then(|| words.join(","))
}

/// The zone a cycle's dates are read in: its project's. Plane converts the days a user
/// picks into instants in the project's zone (00:00:01 of the first day, 23:59 of the
/// last), and shows them in that zone again; the cycle's own `timezone` field stays
/// `UTC` whatever the project's zone is (checked against Plane CE 1.3.1).
pub fn zone_name(c: &Cycle) -> &str {
    &c.project_timezone
}

/// Zones by name, loaded once per run. An unknown or unreadable name is UTC, with one
/// WARN per name per process.
#[derive(Debug, Default)]
pub struct Zones {
    loaded: BTreeMap<String, Zone>,
}

/// Zone names already warned about (see [`MAX_WARNED_ZONES`]).
static WARNED: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

impl Zones {
    /// An empty cache.
    pub fn new() -> Zones {
        Zones::default()
    }

    /// A cache that answers `name` with `zone` (tests build zones from TZif bytes).
    pub fn with(mut self, name: &str, zone: Zone) -> Zones {
        self.loaded.insert(name.to_string(), zone);
        self
    }

    /// The zone called `name` (empty: UTC, Plane's default).
    pub fn get(&mut self, name: &str) -> &Zone {
        let name = if name.is_empty() { "UTC" } else { name };
        self.loaded
            .entry(name.to_string())
            .or_insert_with(|| match Zone::load(name) {
                Ok(z) => z,
                Err(e) => {
                    warn_once(name, &e.to_string());
                    Zone::utc()
                }
            })
    }
}

fn warn_once(name: &str, why: &str) {
    let mut warned = WARNED.lock().unwrap_or_else(|e| e.into_inner());
    if warned.len() < MAX_WARNED_ZONES && warned.insert(name.to_string()) {
        log::warn!("cycle time zone {name:?}: {why}; reading its dates in UTC");
    }
}

/// The day an instant of a cycle falls on in `zone`. Plane has stored bare dates too
/// (before cycles had zones): those are the day itself.
fn cycle_day(value: Option<&str>, zone: &Zone) -> Option<Date> {
    let value = value?.trim();
    if let Some(d) = Date::parse_iso(value) {
        return Some(d);
    }
    crate::clock::parse_rfc3339(value).map(|unix| zone.local_date(unix))
}

/// The first and last day of a cycle, or why it has no event.
fn cycle_days(c: &Cycle, zone: &Zone) -> Result<(Date, Date), Excluded> {
    if c.archived_at.is_some() {
        return Err(Excluded::Archived);
    }
    let first = cycle_day(c.start_date.as_deref(), zone);
    let last = cycle_day(c.end_date.as_deref(), zone);
    match (first, last) {
        (Some(f), Some(l)) if f <= l => Ok((f, l)),
        // An end before the start cannot be drawn: the start day alone.
        (Some(f), Some(_)) => Ok((f, f)),
        _ => Err(Excluded::Undated),
    }
}

/// The first and last day of a module, or why it has no event.
fn module_days(md: &Module, m: &Mapping) -> Result<(Date, Date), Excluded> {
    if md.archived_at.is_some() {
        return Err(Excluded::Archived);
    }
    match md.status {
        ModuleStatus::Cancelled => return Err(Excluded::ModuleCancelled),
        ModuleStatus::Completed if m.completed == CompletedItems::Delete => {
            return Err(Excluded::ModuleCompleted)
        }
        _ => {}
    }
    let start = md.start_date.as_deref().and_then(Date::parse_iso);
    let Some(target) = md.target_date.as_deref().and_then(Date::parse_iso) else {
        return Err(Excluded::Undated);
    };
    Ok((start.filter(|s| *s <= target).unwrap_or(target), target))
}

/// A module status as people read it.
pub fn status_text(s: ModuleStatus) -> &'static str {
    match s {
        ModuleStatus::Backlog => "Backlog",
        ModuleStatus::Planned => "Planned",
        ModuleStatus::InProgress => "In progress",
        ModuleStatus::Paused => "Paused",
        ModuleStatus::Completed => "Completed",
        ModuleStatus::Cancelled => "Cancelled",
    }
}

/// The Plane web page of a cycle or module.
pub fn link(kind: Kind, m: &Mapping, project: &Project, id: &str) -> String {
    format!(
        "{}/{}/projects/{}/{}/{id}",
        m.web_url.trim_end_matches('/'),
        m.slug,
        project.id,
        kind.plural()
    )
}

/// What a cycle and a module have in common on the calendar.
struct Shape<'a> {
    kind: Kind,
    id: &'a str,
    name: &'a str,
    days: (Date, Date),
    done: u64,
    total: u64,
    status: Option<ModuleStatus>,
    updated_at: &'a str,
}

/// A cycle's event, or why it has none. `zone`: the cycle's zone (see [`zone_name`]).
pub fn render_cycle(
    c: &Cycle,
    project: &Project,
    m: &Mapping,
    zone: &Zone,
) -> Result<Rendered, Excluded> {
    let shape = Shape {
        kind: Kind::Cycle,
        id: &c.id,
        name: &c.name,
        days: cycle_days(c, zone)?,
        done: c.completed_issues,
        total: c.total_issues,
        status: None,
        updated_at: &c.updated_at,
    };
    Ok(build(&shape, project, m))
}

/// A module's event, or why it has none.
pub fn render_module(md: &Module, project: &Project, m: &Mapping) -> Result<Rendered, Excluded> {
    let shape = Shape {
        kind: Kind::Module,
        id: &md.id,
        name: &md.name,
        days: module_days(md, m)?,
        done: md.completed_issues,
        total: md.total_issues,
        status: Some(md.status),
        updated_at: &md.updated_at,
    };
    Ok(build(&shape, project, m))
}

fn date_prop(name: &str, d: Date) -> Property {
    Property {
        name: name.to_string(),
        params: vec![Param {
            name: "VALUE".to_string(),
            values: vec!["DATE".to_string()],
        }],
        value: d.to_ical(),
    }
}

/// The all-day VEVENT (DTEND exclusive) and what planning compares.
fn build(s: &Shape<'_>, project: &Project, m: &Mapping) -> Rendered {
    let url = link(s.kind, m, project, s.id);
    // Plane's module listing counts completed items wrongly (the number of distinct
    // state groups, so 0 or 1): a module shows its size and status, not a progress.
    let mut description = match s.status {
        None => format!("{}/{} work items completed", s.done, s.total),
        Some(status) => format!("{} work items\nStatus: {}", s.total, status_text(status)),
    };
    description.push_str("\n\n");
    description.push_str(&url);
    let mut c = Component::new("VEVENT");
    let summary = format!("{}: {}", s.kind.title(), s.name);
    c.push(Property::new("SUMMARY", &ical::escape_text(&summary)));
    c.push(Property::new(
        "DESCRIPTION",
        &ical::escape_text(&description),
    ));
    c.push(date_prop("DTSTART", s.days.0));
    c.push(date_prop("DTEND", s.days.1.succ()));
    c.push(Property::new("URL", &url));
    c.push(Property::new("CATEGORIES", s.kind.title()));
    // A sprint must not mark the whole calendar busy for weeks.
    c.push(Property::new("TRANSP", "TRANSPARENT"));
    c.push(Property::new(s.kind.id_property(), s.id));
    c.push(Property::new("X-PLANE-PROJECT-ID", &project.id));
    let shadow = crate::state::Shadow {
        name: s.name.to_string(),
        start_date: Some(s.days.0.to_iso()),
        target_date: Some(s.days.1.to_iso()),
        state_group: s.status.map_or("", status_text).to_string(),
        content_hash: model::content_hash(&c),
    };
    let mut label = format!("{} \"{}\" ({})", s.kind.noun(), s.name, project.identifier);
    label.shrink_to_fit();
    let desired = Desired {
        uid: s.kind.uid(s.id),
        work_item: s.id.to_string(),
        label,
        updated_at: s.updated_at.to_string(),
        shadow,
    };
    Rendered {
        desired,
        component: c,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DateMode, ItemKind};

    fn project() -> Project {
        Project {
            id: "p1".into(),
            identifier: "WEB".into(),
            name: "Website".into(),
        }
    }

    fn mapping() -> Mapping {
        Mapping {
            kind: ItemKind::Event,
            date_mode: DateMode::Due,
            completed: CompletedItems::Delete,
            web_url: "https://plane.example.com/".into(),
            slug: "acme".into(),
            state_groups: vec![],
            assignees: vec![],
            labels: vec![],
            cycles: true,
            modules: true,
        }
    }

    /// A zone with one fixed offset (seconds east of UTC), as a minimal TZif v1 file.
    pub(crate) fn fixed_zone(name: &str, offset: i32) -> Zone {
        let mut b = b"TZif".to_vec();
        b.extend([0u8; 16]);
        for count in [0u32, 0, 0, 0, 1, 4] {
            b.extend(count.to_be_bytes());
        }
        b.extend(offset.to_be_bytes());
        b.extend([0, 0]);
        b.extend(b"FIX\0");
        Zone::from_tzif(name, &b).expect("TZif")
    }

    fn cycle(start: Option<&str>, end: Option<&str>, zone: &str) -> Cycle {
        Cycle {
            id: "c1".into(),
            project: "p1".into(),
            name: "Sprint 3".into(),
            start_date: start.map(String::from),
            end_date: end.map(String::from),
            timezone: "UTC".into(),
            project_timezone: zone.into(),
            total_issues: 8,
            completed_issues: 3,
            updated_at: "2026-11-20T09:00:00Z".into(),
            archived_at: None,
        }
    }

    fn module(start: Option<&str>, target: Option<&str>, status: ModuleStatus) -> Module {
        Module {
            id: "m1".into(),
            project: "p1".into(),
            name: "Launch".into(),
            start_date: start.map(String::from),
            target_date: target.map(String::from),
            status,
            total_issues: 4,
            completed_issues: 4,
            updated_at: "2026-11-20T09:00:00Z".into(),
            archived_at: None,
        }
    }

    fn dates(r: &Result<Rendered, Excluded>) -> Result<(String, String), Excluded> {
        let r = r.as_ref().map_err(|e| *e)?;
        let v = |n: &str| r.component.property(n).unwrap().value.clone();
        Ok((v("DTSTART"), v("DTEND")))
    }

    #[test]
    fn cycle_event_follows_the_design() {
        let mut zones = Zones::new();
        let c = cycle(
            Some("2026-11-30T00:00:00Z"),
            Some("2026-12-11T23:59:59Z"),
            "UTC",
        );
        let r = render_cycle(&c, &project(), &mapping(), zones.get(zone_name(&c))).unwrap();
        let e = &r.component;
        assert_eq!(e.name, "VEVENT");
        assert_eq!(r.desired.uid, "plane-cycle-c1@calplanebot");
        assert_eq!(r.desired.work_item, "c1");
        assert_eq!(r.desired.label, "cycle \"Sprint 3\" (WEB)");
        assert_eq!(e.text("SUMMARY").unwrap(), "Cycle: Sprint 3");
        let start = e.property("DTSTART").unwrap();
        assert_eq!(
            (start.value.as_str(), start.param("VALUE")),
            ("20261130", Some("DATE"))
        );
        assert_eq!(e.property("DTEND").unwrap().value, "20261212", "exclusive");
        let link = "https://plane.example.com/acme/projects/p1/cycles/c1";
        assert_eq!(
            e.text("DESCRIPTION").unwrap(),
            format!("3/8 work items completed\n\n{link}")
        );
        assert_eq!(e.text("URL").unwrap(), link);
        assert_eq!(e.text("TRANSP").unwrap(), "TRANSPARENT");
        assert_eq!(e.text("CATEGORIES").unwrap(), "Cycle");
        assert_eq!(e.text("X-PLANE-CYCLE-ID").unwrap(), "c1");
        assert_eq!(e.text("X-PLANE-PROJECT-ID").unwrap(), "p1");
        assert!(e.property("X-PLANE-WORK-ITEM-ID").is_none());
        assert_eq!(r.desired.shadow.start_date.as_deref(), Some("2026-11-30"));
        assert_eq!(r.desired.shadow.target_date.as_deref(), Some("2026-12-11"));
        // Progress is content: a completed work item rewrites the event.
        let mut later = c.clone();
        later.completed_issues = 4;
        let r2 = render_cycle(&later, &project(), &mapping(), &Zone::utc()).unwrap();
        assert_ne!(
            r2.desired.shadow.content_hash,
            r.desired.shadow.content_hash
        );
    }

    /// Plane keeps a cycle's days as the UTC instants of its first and last day in the
    /// cycle's zone: east of UTC the first day starts the evening before (UTC), west of
    /// it the last day ends the morning after.
    #[test]
    fn cycle_days_are_the_days_of_its_zone() {
        let mut zones = Zones::new()
            .with("Asia/Kolkata", fixed_zone("Asia/Kolkata", 19_800))
            .with(
                "America/Los_Angeles",
                fixed_zone("America/Los_Angeles", -8 * 3600),
            );
        let cases = [
            // (zone, start, end, DTSTART, DTEND): the first two as real Plane CE 1.3.1
            // stored cycles of 2026-12-21..2027-01-01 and 2026-12-07..2026-12-18.
            (
                "Asia/Kolkata",
                "2026-12-20T18:30:01Z", // 2026-12-21 00:00:01 +05:30
                "2027-01-01T18:29:00Z", // 2027-01-01 23:59 +05:30
                "20261221",
                "20270102",
            ),
            (
                "America/Los_Angeles",
                "2026-12-07T08:00:01Z", // 2026-12-07 00:00:01 -08:00
                "2026-12-19T07:59:00Z", // 2026-12-18 23:59 -08:00
                "20261207",
                "20261219",
            ),
            (
                "America/Los_Angeles",
                "2026-12-07T08:00:01+00:00",
                "2026-12-18T23:59:00-08:00",
                "20261207",
                "20261219",
            ),
            // A cycle starting today starts "now" (Plane's rule): still today.
            (
                "Asia/Kolkata",
                "2026-12-02T15:04:50.683272Z",
                "2026-12-09T18:29:00Z",
                "20261202",
                "20261210",
            ),
            // Bare dates (older Plane): the days themselves.
            ("UTC", "2026-11-30", "2026-12-11", "20261130", "20261212"),
            // A one-day cycle.
            (
                "UTC",
                "2026-12-01T00:00:01Z",
                "2026-12-01T23:59:00Z",
                "20261201",
                "20261202",
            ),
        ];
        for (zone, start, end, dtstart, dtend) in cases {
            let c = cycle(Some(start), Some(end), zone);
            let r = render_cycle(&c, &project(), &mapping(), zones.get(zone_name(&c)));
            assert_eq!(
                dates(&r),
                Ok((dtstart.to_string(), dtend.to_string())),
                "{zone} {start}"
            );
        }
        // The same instants read in UTC fall a day off: the zone matters.
        let c = cycle(
            Some("2026-11-29T18:30:00Z"),
            Some("2026-12-11T18:29:59Z"),
            "UTC",
        );
        let r = render_cycle(&c, &project(), &mapping(), &Zone::utc());
        assert_eq!(dates(&r).unwrap().0, "20261129");
    }

    #[test]
    fn drafts_and_unknown_zones() {
        let mut zones = Zones::new();
        for (start, end) in [
            (None, None),
            (Some("2026-12-01T00:00:00Z"), None),
            (None, Some("2026-12-01T00:00:00Z")),
            (Some("soon"), Some("2026-12-01T00:00:00Z")),
        ] {
            let c = cycle(start, end, "UTC");
            let r = render_cycle(&c, &project(), &mapping(), zones.get("UTC"));
            assert_eq!(r.unwrap_err(), Excluded::Undated, "{start:?} {end:?}");
        }
        let mut archived = cycle(Some("2026-12-01"), Some("2026-12-02"), "UTC");
        archived.archived_at = Some("2026-12-03T00:00:00Z".into());
        let r = render_cycle(&archived, &project(), &mapping(), &Zone::utc());
        assert_eq!(r.unwrap_err(), Excluded::Archived);
        // Unknown or malformed names: UTC (and a WARN, once per name).
        for name in ["Mars/Olympus_Mons", "../etc/passwd", ""] {
            assert_eq!(zones.get(name).offset_at(0), 0, "{name}");
        }
        let c = cycle(
            Some("2026-11-29T18:30:00Z"),
            Some("2026-12-11T18:29:59Z"),
            "Mars/Olympus_Mons",
        );
        let r = render_cycle(&c, &project(), &mapping(), zones.get(zone_name(&c)));
        assert_eq!(dates(&r).unwrap(), ("20261129".into(), "20261212".into()));
    }

    // Long on purpose, like plan.rs's `table`: one row per module case.
    #[test]
    fn module_dates_status_and_completion() {
        use ModuleStatus as S;
        let keep = Mapping {
            completed: CompletedItems::Keep,
            ..mapping()
        };
        let delete = mapping();
        let (a, b) = (Some("2026-12-01"), Some("2026-12-20"));
        type Row<'a> = (
            &'a str,
            Module,
            &'a Mapping,
            Result<(&'a str, &'a str), Excluded>,
        );
        let cases: Vec<Row> = vec![
            (
                "span",
                module(a, b, S::InProgress),
                &delete,
                Ok(("20261201", "20261221")),
            ),
            (
                "only target",
                module(None, b, S::Planned),
                &delete,
                Ok(("20261220", "20261221")),
            ),
            (
                "only start",
                module(a, None, S::Planned),
                &delete,
                Err(Excluded::Undated),
            ),
            (
                "no dates",
                module(None, None, S::Backlog),
                &delete,
                Err(Excluded::Undated),
            ),
            (
                "start after target",
                module(b, a, S::Paused),
                &delete,
                Ok(("20261201", "20261202")),
            ),
            (
                "cancelled",
                module(a, b, S::Cancelled),
                &keep,
                Err(Excluded::ModuleCancelled),
            ),
            (
                "completed, delete",
                module(a, b, S::Completed),
                &delete,
                Err(Excluded::ModuleCompleted),
            ),
            (
                "completed, keep",
                module(a, b, S::Completed),
                &keep,
                Ok(("20261201", "20261221")),
            ),
        ];
        for (name, md, m, want) in cases {
            let r = render_module(&md, &project(), m);
            let want = want.map(|(s, e)| (s.to_string(), e.to_string()));
            assert_eq!(dates(&r), want, "{name}");
        }
        let r = render_module(&module(a, b, S::InProgress), &project(), &mapping()).unwrap();
        let e = &r.component;
        assert_eq!(r.desired.uid, "plane-module-m1@calplanebot");
        assert_eq!(e.text("SUMMARY").unwrap(), "Module: Launch");
        assert_eq!(e.text("CATEGORIES").unwrap(), "Module");
        assert_eq!(e.text("X-PLANE-MODULE-ID").unwrap(), "m1");
        assert_eq!(
            e.text("DESCRIPTION").unwrap(),
            "4 work items\nStatus: In progress\n\n\
             https://plane.example.com/acme/projects/p1/modules/m1"
        );
        // A status change is a change of content.
        let paused = render_module(&module(a, b, S::Paused), &project(), &mapping()).unwrap();
        assert_ne!(
            paused.desired.shadow.content_hash,
            r.desired.shadow.content_hash
        );
    }

    #[test]
    fn known_kinds_round_trip() {
        let both = BTreeSet::from(Kind::ALL);
        assert_eq!(record_of(&both).as_deref(), Some("cycles,modules"));
        assert_eq!(kinds_of(record_of(&both).as_deref()), both);
        assert_eq!(record_of(&BTreeSet::new()), None);
        assert!(kinds_of(None).is_empty());
        assert_eq!(
            kinds_of(Some("modules,epics")),
            BTreeSet::from([Kind::Module])
        );
    }

    #[test]
    fn uids_name_their_kind() {
        assert_eq!(
            Kind::of_uid("plane-cycle-c1@calplanebot"),
            Some(Kind::Cycle)
        );
        assert_eq!(
            Kind::of_uid("plane-module-m1@calplanebot"),
            Some(Kind::Module)
        );
        assert_eq!(Kind::of_uid("plane-issue-i1@calplanebot"), None);
        assert_eq!(Kind::of_uid("plane-cycle-@calplanebot"), None);
        assert_eq!(Kind::of_uid("plane-cycle-c1@elsewhere"), None);
        assert_eq!(
            Kind::Module.id_of("plane-module-m1@calplanebot"),
            Some("m1")
        );
    }
}
