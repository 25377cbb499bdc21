//! The work-item fields that flow both ways, and the pure three-way merge over them.
//!
//! A calendar object says less than a work item: a name, one or two dates and (for tasks)
//! whether it is done. [`Fields`] is exactly that, normalised so that the two sides compare
//! equal whenever they mean the same thing. The journal's shadow holds the fields as last
//! synced; [`merge`] compares Plane and the calendar against it field by field, the way
//! vdirsyncer compares two sides against its status, but per field instead of per object.

use std::fmt;

use super::model::Mapping;
pub use crate::config::ConflictPolicy;
use crate::config::{DateMode, ItemKind};
use crate::ical::{Component, Date, Property, TimeZone, When};
use crate::state::Shadow;
use crate::tz::Zone;

/// What a VTODO's STATUS can say about a work item's state group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Completion {
    /// Backlog, unstarted or started (NEEDS-ACTION / IN-PROCESS).
    Open,
    /// State group `completed` (STATUS:COMPLETED).
    Completed,
    /// State group `cancelled` (STATUS:CANCELLED).
    Cancelled,
}

impl Completion {
    /// The completion a Plane state group means.
    pub fn of_group(group: &str) -> Completion {
        match group {
            "completed" => Completion::Completed,
            "cancelled" => Completion::Cancelled,
            _ => Completion::Open,
        }
    }

    /// The state group whose first state a change to this completion moves an item to.
    pub fn target_group(self) -> &'static str {
        match self {
            Completion::Open => "unstarted",
            Completion::Completed => "completed",
            Completion::Cancelled => "cancelled",
        }
    }
}

/// The synced fields of one work item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fields {
    /// The name, without our `[KEY-n] ` prefix.
    pub name: String,
    /// The start date; `None` also when it is the target date (a start on the target date
    /// looks the same as no start in a calendar). A start after the target is kept: in due
    /// mode the calendar cannot show the start, and a moved target may pass it (the PATCH
    /// then moves the start along, see `apply::item_patch`).
    pub start: Option<Date>,
    /// The target (due) date.
    pub target: Option<Date>,
    /// Open, completed or cancelled.
    pub completion: Completion,
}

impl Fields {
    /// Builds normalised fields.
    pub fn new(
        name: &str,
        start: Option<Date>,
        target: Option<Date>,
        completion: Completion,
    ) -> Fields {
        let start = start.filter(|s| Some(*s) != target);
        Fields {
            name: name.to_string(),
            start,
            target,
            completion,
        }
    }

    /// The fields a shadow (the journal's, or a freshly rendered item's) records.
    pub fn of_shadow(s: &Shadow) -> Fields {
        Fields::new(
            &s.name,
            s.start_date.as_deref().and_then(Date::parse_iso),
            s.target_date.as_deref().and_then(Date::parse_iso),
            Completion::of_group(&s.state_group),
        )
    }
}

/// One of the fields of [`Fields`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// The name.
    Name,
    /// The start date.
    Start,
    /// The target date.
    Target,
    /// The completion.
    Completion,
}

impl Field {
    /// As logged.
    pub fn as_str(self) -> &'static str {
        match self {
            Field::Name => "name",
            Field::Start => "start date",
            Field::Target => "target date",
            Field::Completion => "completion",
        }
    }
}

/// Which side of the sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Plane.
    Plane,
    /// The calendar.
    Calendar,
}

/// A field changed on both sides to different values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// Which field.
    pub field: Field,
    /// Plane's value, as text.
    pub plane: String,
    /// The calendar's value, as text.
    pub calendar: String,
    /// The side whose value was kept.
    pub winner: Side,
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (kept, lost) = match self.winner {
            Side::Plane => (("Plane", &self.plane), ("calendar", &self.calendar)),
            Side::Calendar => (("calendar", &self.calendar), ("Plane", &self.plane)),
        };
        write!(
            f,
            "{} changed on both sides: kept {}'s {:?}, dropped {}'s {:?}",
            self.field.as_str(),
            kept.0,
            kept.1,
            lost.0,
            lost.1
        )
    }
}

/// The outcome of a three-way merge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merged {
    /// The values both sides should end up with.
    pub fields: Fields,
    /// Fields changed on both sides, and who won.
    pub conflicts: Vec<Conflict>,
}

/// Merges per field: a field changed on one side only takes that side's value; changed
/// on both sides to the same value is no conflict; to different values, `policy` decides
/// (`newer` says which side changed last, for [`ConflictPolicy::Newest`]).
pub fn merge(
    plane: &Fields,
    shadow: &Fields,
    calendar: &Fields,
    policy: ConflictPolicy,
    newer: Side,
) -> Merged {
    let winner = match policy {
        ConflictPolicy::Plane => Side::Plane,
        ConflictPolicy::Calendar => Side::Calendar,
        ConflictPolicy::Newest => newer,
    };
    let mut conflicts = Vec::new();
    let mut pick = |field: Field, p: String, s: String, c: String| -> Side {
        if p == c || c == s {
            Side::Plane
        } else if p == s {
            Side::Calendar
        } else {
            conflicts.push(Conflict {
                field,
                plane: p,
                calendar: c,
                winner,
            });
            winner
        }
    };
    let show = |d: Option<Date>| d.map(|d| d.to_iso()).unwrap_or_default();
    let name = pick(
        Field::Name,
        plane.name.clone(),
        shadow.name.clone(),
        calendar.name.clone(),
    );
    let start = pick(
        Field::Start,
        show(plane.start),
        show(shadow.start),
        show(calendar.start),
    );
    let target = pick(
        Field::Target,
        show(plane.target),
        show(shadow.target),
        show(calendar.target),
    );
    let completion = pick(
        Field::Completion,
        format!("{:?}", plane.completion),
        format!("{:?}", shadow.completion),
        format!("{:?}", calendar.completion),
    );
    let from = |side: Side| if side == Side::Plane { plane } else { calendar };
    Merged {
        fields: Fields::new(
            &from(name).name,
            from(start).start,
            from(target).target,
            from(completion).completion,
        ),
        conflicts,
    }
}

/// The base of the merge: the shadow, except where a write of ours may have landed
/// without being journaled (a crash between the request and the journal line). A field
/// that one side shows with exactly the value we were sending it is our own write there,
/// so that value is the base: the other side's value, if different, is the newer edit.
/// Each pair is (that side's current fields, the values sent to it, if a write was in
/// flight).
pub fn base(
    shadow: &Fields,
    plane: (&Fields, Option<&Fields>),
    calendar: (&Fields, Option<&Fields>),
) -> Fields {
    let landed = |side: (&Fields, Option<&Fields>), pick: &dyn Fn(&Fields) -> String| {
        side.1
            .filter(|sent| pick(sent) == pick(side.0) && pick(sent) != pick(shadow))
            .is_some()
    };
    let choose = |pick: &dyn Fn(&Fields) -> String| -> &Fields {
        if landed(plane, pick) {
            plane.0
        } else if landed(calendar, pick) {
            calendar.0
        } else {
            shadow
        }
    };
    let show = |d: Option<Date>| d.map(|d| d.to_iso()).unwrap_or_default();
    Fields {
        name: choose(&|f| f.name.clone()).name.clone(),
        start: choose(&|f| show(f.start)).start,
        target: choose(&|f| show(f.target)).target,
        completion: choose(&|f| format!("{:?}", f.completion)).completion,
    }
}

/// Which side changed last: Plane's `updated_at` (RFC 3339) against the object's
/// LAST-MODIFIED (Unix seconds). Unknown times and ties favour Plane.
pub fn newer_side(plane_updated_at: &str, calendar_modified: Option<i64>) -> Side {
    match (
        crate::clock::parse_rfc3339(plane_updated_at),
        calendar_modified,
    ) {
        (Some(p), Some(c)) if c > p => Side::Calendar,
        _ => Side::Plane,
    }
}

/// The changes Plane needs so that its fields become `merged`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldPatch {
    /// A new name.
    pub name: Option<String>,
    /// A new start date (`Some(None)` clears it).
    pub start: Option<Option<Date>>,
    /// A new target date (`Some(None)` clears it).
    pub target: Option<Option<Date>>,
    /// A new completion (the caller picks the state).
    pub completion: Option<Completion>,
}

impl FieldPatch {
    /// The patch from `plane`'s fields to `merged`.
    pub fn between(plane: &Fields, merged: &Fields) -> FieldPatch {
        FieldPatch {
            name: (merged.name != plane.name).then(|| merged.name.clone()),
            start: (merged.start != plane.start).then_some(merged.start),
            target: (merged.target != plane.target).then_some(merged.target),
            completion: (merged.completion != plane.completion).then_some(merged.completion),
        }
    }

    /// Whether nothing changes.
    pub fn is_empty(&self) -> bool {
        self == &FieldPatch::default()
    }

    /// The changed fields, for logs: `name, target date`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.name.is_some() {
            parts.push(Field::Name.as_str());
        }
        if self.start.is_some() {
            parts.push(Field::Start.as_str());
        }
        if self.target.is_some() {
            parts.push(Field::Target.as_str());
        }
        if self.completion.is_some() {
            parts.push(Field::Completion.as_str());
        }
        parts.join(", ")
    }
}

/// Reads the synced fields from a VEVENT/VTODO we wrote and a user may have edited.
/// Fields the object cannot express with this mapping (a start date outside span mode,
/// completion of an event, a task whose due date was removed) keep their `base` value, so
/// they never count as changed in the calendar.
pub fn of_calendar(c: &Component, mapping: &Mapping, zone: &Zone, base: &Fields) -> Fields {
    let name = c
        .text("SUMMARY")
        .map(|s| strip_key(&s).to_string())
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| base.name.clone());
    let todo = c.name == "VTODO";
    let first = c.property("DTSTART").and_then(|p| date_of(p, zone, false));
    let (start, target) = match (todo, mapping.date_mode) {
        (false, DateMode::Due) => (base.start, first.or(base.target)),
        (false, DateMode::Span) => {
            let end = c
                .property("DTEND")
                .and_then(|p| date_of(p, zone, true))
                .or(first);
            (first, end.or(base.target))
        }
        (true, mode) => {
            let due = c.property("DUE").and_then(|p| date_of(p, zone, false));
            match (due, mode) {
                (None, _) => (base.start, base.target),
                (Some(_), DateMode::Span) => (first, due),
                (Some(_), DateMode::Due) => (base.start, due),
            }
        }
    };
    let completion = if todo && mapping.kind == ItemKind::Todo {
        completion_of(c)
    } else {
        base.completion
    };
    Fields::new(&name, start, target, completion)
}

/// STATUS:COMPLETED or a COMPLETED timestamp means done (clients differ in which they set
/// and which they clear; a task un-ticked in Thunderbird keeps neither).
fn completion_of(c: &Component) -> Completion {
    let status = c
        .property("STATUS")
        .map(|p| p.value.trim().to_ascii_uppercase());
    match status.as_deref() {
        Some("CANCELLED") => Completion::Cancelled,
        Some("COMPLETED") => Completion::Completed,
        Some("NEEDS-ACTION") | Some("IN-PROCESS") => Completion::Open,
        _ if c.property("COMPLETED").is_some() => Completion::Completed,
        _ => Completion::Open,
    }
}

/// SUMMARY without `✔ ` and `[KEY-n] ` (the prefixes we write).
pub fn strip_key(summary: &str) -> &str {
    let s = summary.strip_prefix("✔ ").unwrap_or(summary);
    let Some(rest) = s.strip_prefix('[') else {
        return s;
    };
    let Some((key, after)) = rest.split_once("] ") else {
        return s;
    };
    let looks_like_key = key.rsplit_once('-').is_some_and(|(ident, seq)| {
        !ident.is_empty() && !seq.is_empty() && seq.bytes().all(|b| b.is_ascii_digit())
    });
    if looks_like_key {
        after
    } else {
        s
    }
}

/// The date a user sees for a DTSTART/DTEND/DUE. An all-day value is that date (an
/// exclusive DTEND is the day before). A local time (with TZID, or floating) is already
/// the user's wall clock: its date part. A UTC time is converted to `zone`
/// (EVENT_TIMEZONE). A timed end at exactly midnight ends on the day before.
pub fn date_of(p: &Property, zone: &Zone, is_end: bool) -> Option<Date> {
    let (date, seconds) = match p.when()? {
        When::Date(date) => return Some(if is_end { date.pred() } else { date }),
        When::Time {
            date,
            seconds,
            zone: TimeZone::Utc,
        } => {
            let unix = date.days_since_epoch() * 86_400 + i64::from(seconds);
            let local = unix + zone.offset_at(unix) as i64;
            (
                Date::from_days_since_epoch(local.div_euclid(86_400)),
                local.rem_euclid(86_400),
            )
        }
        When::Time { date, seconds, .. } => (date, i64::from(seconds)),
    };
    Some(if is_end && seconds == 0 {
        date.pred()
    } else {
        date
    })
}

/// LAST-MODIFIED, else DTSTAMP, as Unix seconds (UTC values only, as RFC 5545 has them).
pub fn modified_at(c: &Component) -> Option<i64> {
    let p = c
        .property("LAST-MODIFIED")
        .or_else(|| c.property("DTSTAMP"))?;
    match p.when()? {
        When::Time {
            date,
            seconds,
            zone: TimeZone::Utc,
        } => Some(date.days_since_epoch() * 86_400 + i64::from(seconds)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CompletedItems;

    fn d(s: &str) -> Option<Date> {
        Date::parse_iso(s)
    }

    fn f(name: &str, start: &str, target: &str, c: Completion) -> Fields {
        Fields::new(name, d(start), d(target), c)
    }

    fn mapping(kind: ItemKind, mode: DateMode) -> Mapping {
        Mapping {
            kind,
            date_mode: mode,
            completed: CompletedItems::Delete,
            web_url: String::new(),
            slug: String::new(),
            state_groups: vec![],
            assignees: vec![],
            labels: vec![],
            cycles: false,
            modules: false,
        }
    }

    const OPEN: Completion = Completion::Open;
    const DONE: Completion = Completion::Completed;

    // Long on purpose: one row per case, read top to bottom; splitting the table would
    // only scatter the cases.
    #[test]
    fn merge_table() {
        let base = f("a", "", "2026-12-01", OPEN);
        // (name, plane, calendar, policy, newer, expected, conflicts)
        let cases: Vec<(&str, Fields, Fields, ConflictPolicy, Side, Fields, usize)> = vec![
            (
                "nothing changed",
                base.clone(),
                base.clone(),
                ConflictPolicy::Plane,
                Side::Plane,
                base.clone(),
                0,
            ),
            (
                "plane renamed",
                f("b", "", "2026-12-01", OPEN),
                base.clone(),
                ConflictPolicy::Calendar,
                Side::Calendar,
                f("b", "", "2026-12-01", OPEN),
                0,
            ),
            (
                "calendar moved",
                base.clone(),
                f("a", "", "2026-12-05", OPEN),
                ConflictPolicy::Plane,
                Side::Plane,
                f("a", "", "2026-12-05", OPEN),
                0,
            ),
            (
                "different fields on each side",
                f("b", "", "2026-12-01", OPEN),
                f("a", "", "2026-12-05", DONE),
                ConflictPolicy::Plane,
                Side::Plane,
                f("b", "", "2026-12-05", DONE),
                0,
            ),
            (
                "same change on both sides",
                f("b", "", "2026-12-01", OPEN),
                f("b", "", "2026-12-01", OPEN),
                ConflictPolicy::Calendar,
                Side::Calendar,
                f("b", "", "2026-12-01", OPEN),
                0,
            ),
            (
                "conflict, plane wins",
                f("p", "", "2026-12-02", OPEN),
                f("c", "", "2026-12-03", OPEN),
                ConflictPolicy::Plane,
                Side::Calendar,
                f("p", "", "2026-12-02", OPEN),
                2,
            ),
            (
                "conflict, calendar wins",
                f("p", "", "2026-12-02", OPEN),
                f("c", "", "2026-12-03", OPEN),
                ConflictPolicy::Calendar,
                Side::Plane,
                f("c", "", "2026-12-03", OPEN),
                2,
            ),
            (
                "conflict, newest = calendar",
                f("p", "", "2026-12-02", OPEN),
                f("c", "", "2026-12-03", OPEN),
                ConflictPolicy::Newest,
                Side::Calendar,
                f("c", "", "2026-12-03", OPEN),
                2,
            ),
            (
                "conflict, newest = plane",
                f("p", "", "2026-12-02", OPEN),
                f("c", "", "2026-12-03", OPEN),
                ConflictPolicy::Newest,
                Side::Plane,
                f("p", "", "2026-12-02", OPEN),
                2,
            ),
            (
                "conflict on one field, other field flows",
                f("p", "", "2026-12-01", OPEN),
                f("c", "", "2026-12-01", DONE),
                ConflictPolicy::Plane,
                Side::Plane,
                f("p", "", "2026-12-01", DONE),
                1,
            ),
            (
                "span: start moved in calendar",
                f("a", "2026-11-28", "2026-12-01", OPEN),
                f("a", "2026-11-25", "2026-12-01", OPEN),
                ConflictPolicy::Plane,
                Side::Plane,
                f("a", "2026-11-25", "2026-12-01", OPEN),
                0,
            ),
        ];
        for (name, plane, cal, policy, newer, want, n) in cases {
            let shadow = if name.starts_with("span") {
                f("a", "2026-11-28", "2026-12-01", OPEN)
            } else {
                base.clone()
            };
            let m = merge(&plane, &shadow, &cal, policy, newer);
            assert_eq!(m.fields, want, "{name}");
            assert_eq!(m.conflicts.len(), n, "{name}: {:?}", m.conflicts);
        }
    }

    #[test]
    fn writes_that_landed_unjournaled_are_the_base() {
        let shadow = f("old", "", "2026-12-01", OPEN);
        // Our PATCH of "new" reached Plane before a crash; the user then renamed the event
        // again: the user's latest name must win, not count as a conflict.
        let plane = f("new", "", "2026-12-01", OPEN);
        let sent = f("new", "", "2026-12-01", OPEN);
        let cal = f("newer", "", "2026-12-01", OPEN);
        let b = base(&shadow, (&plane, Some(&sent)), (&cal, None));
        assert_eq!(b.name, "new");
        let m = merge(&plane, &b, &cal, ConflictPolicy::Plane, Side::Plane);
        assert_eq!((m.fields.name.as_str(), m.conflicts.len()), ("newer", 0));
        // Our PUT of a Plane rename reached the calendar before a crash; the colleague
        // then renamed it back in Plane: Plane's latest name wins.
        let plane = f("old", "", "2026-12-01", OPEN);
        let cal = f("theirs", "", "2026-12-01", OPEN);
        let sent = f("theirs", "", "2026-12-01", OPEN);
        let b = base(&shadow, (&plane, None), (&cal, Some(&sent)));
        let m = merge(&plane, &b, &cal, ConflictPolicy::Calendar, Side::Calendar);
        assert_eq!((m.fields.name.as_str(), m.conflicts.len()), ("old", 0));
        // A write that did not land changes nothing.
        let b = base(
            &shadow,
            (&plane, Some(&f("x", "", "2026-12-01", OPEN))),
            (&cal, None),
        );
        assert_eq!(b, shadow);
    }

    #[test]
    fn conflicts_say_who_won() {
        let m = merge(
            &f("p", "", "2026-12-01", OPEN),
            &f("a", "", "2026-12-01", OPEN),
            &f("c", "", "2026-12-01", OPEN),
            ConflictPolicy::Calendar,
            Side::Plane,
        );
        assert_eq!(
            m.conflicts[0].to_string(),
            "name changed on both sides: kept calendar's \"c\", dropped Plane's \"p\""
        );
    }

    #[test]
    fn merged_start_may_pass_the_target() {
        // Plane moved the start later; the calendar moved the target before it. Both edits
        // are kept; the PATCH of the target moves the start along (apply::item_patch).
        let m = merge(
            &f("a", "2026-11-30", "2026-12-10", OPEN),
            &f("a", "2026-11-20", "2026-12-10", OPEN),
            &f("a", "2026-11-20", "2026-11-25", OPEN),
            ConflictPolicy::Plane,
            Side::Plane,
        );
        assert_eq!(m.fields, f("a", "2026-11-30", "2026-11-25", OPEN));
        assert!(m.conflicts.is_empty());
        let same_day = Fields::new("a", d("2026-12-01"), d("2026-12-01"), OPEN);
        assert_eq!(
            same_day.start, None,
            "a start on the target day is no start"
        );
    }

    #[test]
    fn patch_lists_only_changed_fields() {
        let plane = f("a", "2026-11-20", "2026-12-01", OPEN);
        let p = FieldPatch::between(&plane, &f("a", "", "2026-12-03", DONE));
        assert_eq!(p.name, None);
        assert_eq!(p.start, Some(None));
        assert_eq!(p.target, Some(d("2026-12-03")));
        assert_eq!(p.completion, Some(DONE));
        assert_eq!(p.describe(), "start date, target date, completion");
        assert!(FieldPatch::between(&plane, &plane).is_empty());
    }

    fn component(kind: &str, props: &[(&str, &str)]) -> Component {
        let mut c = Component::new(kind);
        for (k, v) in props {
            let (name, params) = k.split_once(';').unwrap_or((k, ""));
            let mut p = Property::new(name, v);
            for kv in params.split(';').filter(|s| !s.is_empty()) {
                let (pk, pv) = kv.split_once('=').unwrap();
                p = p.with_param(pk, pv);
            }
            c.push(p);
        }
        c
    }

    #[test]
    fn reading_events() {
        let utc = Zone::utc();
        let due = mapping(ItemKind::Event, DateMode::Due);
        let base = f("Fix login", "2026-11-20", "2026-12-01", OPEN);
        let ev = component(
            "VEVENT",
            &[
                ("SUMMARY", "[WEB-12] Fix the login"),
                ("DTSTART;VALUE=DATE", "20261203"),
                ("DTEND;VALUE=DATE", "20261204"),
            ],
        );
        assert_eq!(
            of_calendar(&ev, &due, &utc, &base),
            f("Fix the login", "2026-11-20", "2026-12-03", OPEN),
            "due mode: DTSTART is the target; the start is not shown, so kept"
        );
        let span = mapping(ItemKind::Event, DateMode::Span);
        assert_eq!(
            of_calendar(&ev, &span, &utc, &base),
            f("Fix the login", "", "2026-12-03", OPEN),
            "span mode: a one-day event has no separate start"
        );
        let long = component(
            "VEVENT",
            &[
                ("SUMMARY", "✔ [WEB-12] x"),
                ("DTSTART;VALUE=DATE", "20261128"),
                ("DTEND;VALUE=DATE", "20261204"),
            ],
        );
        assert_eq!(
            of_calendar(&long, &span, &utc, &base),
            f("x", "2026-11-28", "2026-12-03", OPEN)
        );
        let untitled = component("VEVENT", &[("SUMMARY", "  ")]);
        assert_eq!(of_calendar(&untitled, &due, &utc, &base), base);
    }

    /// A zone with one fixed offset, as a minimal TZif v1 file.
    fn fixed_zone(offset: i32) -> Zone {
        let mut b = b"TZif".to_vec();
        b.extend([0u8; 16]);
        for count in [0u32, 0, 0, 0, 1, 4] {
            b.extend(count.to_be_bytes());
        }
        b.extend(offset.to_be_bytes());
        b.extend([0, 0]);
        b.extend(b"FIX\0");
        Zone::from_tzif("Test/Fixed", &b).expect("TZif")
    }

    #[test]
    fn timed_values_map_to_the_day_the_user_sees() {
        let utc = Zone::utc();
        let p = |k: &str, v: &str| {
            let c = component("VEVENT", &[(k, v)]);
            c.properties[0].clone()
        };
        // Local time in its TZID, and floating time: the wall-clock date as written.
        let berlin = p("DTSTART;TZID=Europe/Berlin", "20261203T233000");
        assert_eq!(date_of(&berlin, &utc, false), d("2026-12-03"));
        assert_eq!(
            date_of(&p("DTSTART", "20261203T010000"), &utc, false),
            d("2026-12-03")
        );
        // UTC: the date in EVENT_TIMEZONE.
        let late = p("DTSTART", "20261203T233000Z");
        assert_eq!(date_of(&late, &utc, false), d("2026-12-03"));
        let plus2 = fixed_zone(7200);
        assert_eq!(date_of(&late, &plus2, false), d("2026-12-04"));
        let minus5 = fixed_zone(-5 * 3600);
        assert_eq!(
            date_of(&p("DTSTART", "20261203T030000Z"), &minus5, false),
            d("2026-12-02")
        );
        // Ends: all-day DTEND is exclusive; a timed end at midnight ends the day before.
        assert_eq!(
            date_of(&p("DTEND;VALUE=DATE", "20261204"), &utc, true),
            d("2026-12-03")
        );
        assert_eq!(
            date_of(&p("DTEND", "20261204T000000"), &utc, true),
            d("2026-12-03")
        );
        assert_eq!(
            date_of(&p("DTEND", "20261204T100000"), &utc, true),
            d("2026-12-04")
        );
        assert_eq!(date_of(&p("DTSTART", "garbage"), &utc, false), None);
    }

    #[test]
    fn reading_tasks() {
        let utc = Zone::utc();
        let m = mapping(ItemKind::Todo, DateMode::Due);
        let base = f("t", "", "2026-12-01", OPEN);
        let done = component(
            "VTODO",
            &[
                ("SUMMARY", "[OPS-3] t"),
                ("DUE;VALUE=DATE", "20261201"),
                ("STATUS", "COMPLETED"),
            ],
        );
        assert_eq!(of_calendar(&done, &m, &utc, &base).completion, DONE);
        let stamp_only = component("VTODO", &[("COMPLETED", "20261201T100000Z")]);
        assert_eq!(of_calendar(&stamp_only, &m, &utc, &base).completion, DONE);
        let reopened = component(
            "VTODO",
            &[
                ("STATUS", "NEEDS-ACTION"),
                ("COMPLETED", "20261201T100000Z"),
            ],
        );
        assert_eq!(of_calendar(&reopened, &m, &utc, &base).completion, OPEN);
        let in_process = component("VTODO", &[("STATUS", "IN-PROCESS")]);
        assert_eq!(of_calendar(&in_process, &m, &utc, &base).completion, OPEN);
        let cancelled = component("VTODO", &[("STATUS", "CANCELLED")]);
        assert_eq!(
            of_calendar(&cancelled, &m, &utc, &base).completion,
            Completion::Cancelled
        );
        // A due date removed by the user is not a change we send to Plane.
        let no_due = component("VTODO", &[("SUMMARY", "[OPS-3] t")]);
        assert_eq!(of_calendar(&no_due, &m, &utc, &base), base);
        // Span mode: DTSTART is the start.
        let span = mapping(ItemKind::Todo, DateMode::Span);
        let both = component(
            "VTODO",
            &[
                ("DTSTART;VALUE=DATE", "20261125"),
                ("DUE;VALUE=DATE", "20261202"),
            ],
        );
        assert_eq!(
            of_calendar(&both, &span, &utc, &base),
            f("t", "2026-11-25", "2026-12-02", OPEN)
        );
    }

    #[test]
    fn key_prefixes() {
        assert_eq!(strip_key("[WEB-12] Fix"), "Fix");
        assert_eq!(strip_key("✔ [WEB-12] Fix"), "Fix");
        assert_eq!(strip_key("[draft] Fix"), "[draft] Fix");
        assert_eq!(strip_key("[WEB-] Fix"), "[WEB-] Fix");
        assert_eq!(strip_key("Fix"), "Fix");
        assert_eq!(strip_key("[A-B-7] x"), "x");
    }

    #[test]
    fn modification_times() {
        let c = component("VEVENT", &[("DTSTAMP", "20261123T101530Z")]);
        assert_eq!(modified_at(&c), Some(1_795_428_930));
        let c = component(
            "VEVENT",
            &[
                ("DTSTAMP", "20261123T101530Z"),
                ("LAST-MODIFIED", "20261123T101531Z"),
            ],
        );
        assert_eq!(modified_at(&c), Some(1_795_428_931));
        assert_eq!(modified_at(&component("VEVENT", &[])), None);
        assert_eq!(
            newer_side("2026-11-23T10:15:30Z", Some(1_795_428_931)),
            Side::Calendar
        );
        assert_eq!(
            newer_side("2026-11-23T10:15:30Z", Some(1_795_428_930)),
            Side::Plane
        );
        assert_eq!(newer_side("garbage", Some(1)), Side::Plane);
    }
}
