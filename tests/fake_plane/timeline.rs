//! Cycles and modules of the fake Plane (issue 12), shaped like Plane CE 1.3.1's v1 API.
//!
//! Read from Plane's source (`db/models/cycle.py`, `module.py`, `api/serializers/…`,
//! `api/views/cycle.py`, `module.py`, `utils/timezone_converter.py`) and checked against
//! a real CE 1.3.1 server (2026-12-02). What the fake does because the REAL server does
//! it (where the docs say otherwise or nothing):
//! - A cycle's days are stored as instants of the PROJECT's zone: the start day at
//!   00:00:01 local (or "now", when the start day is today there), the end day at 23:59:00
//!   local, in UTC. The cycle's own `timezone` field stays `UTC` (nothing sets it).
//! - Lists hide archived and deleted cycles/modules, are paginated like work items and
//!   carry six annotated counts (`total_issues`, `completed_issues`, `cancelled_issues`,
//!   `started_issues`, `unstarted_issues`, `backlog_issues`) over the member items that
//!   are not archived, drafts or deleted. The list has no `total_estimates`.
//! - Module group counts are `COUNT(DISTINCT state.group)`: 0 or 1 whatever the number of
//!   items (a Plane bug, seen on the real server: 2 done items → `completed_issues: 1`);
//!   `total_issues` is right. [`World::module_counts_capped`] turns this off.
//! - Listing cycles or modules of a project with the feature off answers 200 as usual
//!   (only creating one is refused by Plane).
//! - An archived cycle or module is 404 to GET. Plane archives a cycle only once it has
//!   ended and a module only when completed or cancelled; the mutators panic otherwise.
//! - A work item is in at most one cycle (adding it to another moves it) but in any
//!   number of modules; adding or removing bumps the item's `updated_at`, as seen on the
//!   real server. Cycle and module `updated_at` do not move then.
//! - Webhook payloads (`event: "cycle"|"module"`) carry the plain serializer output
//!   WITHOUT the counts; CE fires them only for create and update.
//!
//! Zones: the fake knows a few IANA zones with their current rules ([`KNOWN_ZONES`]),
//! exact for the two local times Plane stores (00:00:01 and 23:59:00), so it does not share
//! calplanebot's TZif reader. Writes through the API are not modelled (405): calplanebot
//! never writes cycles or modules; tests change them with the `World` mutators.

use super::*;

/// A cycle (sprint). Instants are Unix microseconds (UTC).
#[derive(Clone, Debug, PartialEq)]
pub struct Cycle {
    /// UUID.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// First day, as Plane stores it (see the module docs); `None` for a draft.
    pub start_date: Option<i64>,
    /// Last day, as Plane stores it; `None` for a draft.
    pub end_date: Option<i64>,
    /// The cycle's own `timezone` field (`UTC`; Plane does not use it for the dates).
    pub timezone: String,
    /// Member work item UUIDs (Plane's `CycleIssue` rows).
    pub items: Vec<String>,
    /// Archive time (µs).
    pub archived_at: Option<i64>,
    /// Soft deletion time (µs).
    pub deleted_at: Option<i64>,
    /// Creation time (µs).
    pub created_at: i64,
    /// Last change of the cycle itself (µs).
    pub updated_at: i64,
    /// Owner and creator UUID.
    pub owned_by: String,
    /// Ordering key (Plane gives each new cycle the smallest minus 10 000).
    pub sort_order: f64,
}

/// A module (milestone / feature). Dates are `YYYY-MM-DD`.
#[derive(Clone, Debug, PartialEq)]
pub struct Module {
    /// UUID.
    pub id: String,
    /// Display name, unique in the project.
    pub name: String,
    /// Free text.
    pub description: String,
    /// `YYYY-MM-DD`.
    pub start_date: Option<String>,
    /// `YYYY-MM-DD`.
    pub target_date: Option<String>,
    /// backlog, planned, in-progress, paused, completed or cancelled.
    pub status: String,
    /// Member work item UUIDs (`ModuleIssue` rows).
    pub items: Vec<String>,
    /// Archive time (µs).
    pub archived_at: Option<i64>,
    /// Soft deletion time (µs).
    pub deleted_at: Option<i64>,
    /// Creation time (µs).
    pub created_at: i64,
    /// Last change of the module itself (µs).
    pub updated_at: i64,
    /// Creator UUID.
    pub created_by: String,
    /// Ordering key.
    pub sort_order: f64,
}

/// Module statuses Plane accepts.
pub const MODULE_STATUSES: [&str; 6] = [
    "backlog",
    "planned",
    "in-progress",
    "paused",
    "completed",
    "cancelled",
];

/// Zones the fake can convert with (any other name panics in the mutators).
pub const KNOWN_ZONES: [&str; 10] = [
    "UTC",
    "Asia/Kolkata",
    "Asia/Tokyo",
    "Pacific/Kiritimati",
    "Pacific/Pago_Pago",
    "America/Los_Angeles",
    "America/New_York",
    "Europe/Berlin",
    "Europe/London",
    "Pacific/Auckland",
];

/// Daylight-saving rule of a known zone.
#[derive(Clone, Copy)]
enum Dst {
    None,
    /// US: second Sunday of March to first Sunday of November, at 02:00 local.
    Us,
    /// EU: last Sunday of March to last Sunday of October (01:00 UTC; ~02:00 local).
    Eu,
    /// New Zealand: last Sunday of September to first Sunday of April (southern summer).
    Nz,
}

/// Standard offset (minutes east of UTC) and DST rule of a known zone.
fn zone_rule(zone: &str) -> Option<(i32, Dst)> {
    Some(match zone {
        "UTC" => (0, Dst::None),
        "Asia/Kolkata" => (330, Dst::None),
        "Asia/Tokyo" => (540, Dst::None),
        "Pacific/Kiritimati" => (840, Dst::None),
        "Pacific/Pago_Pago" => (-660, Dst::None),
        "America/Los_Angeles" => (-480, Dst::Us),
        "America/New_York" => (-300, Dst::Us),
        "Europe/Berlin" => (60, Dst::Eu),
        "Europe/London" => (0, Dst::Eu),
        "Pacific/Auckland" => (720, Dst::Nz),
        _ => return None,
    })
}

/// 0 = Sunday.
fn weekday(day: i64) -> i64 {
    (day + 4).rem_euclid(7)
}

/// The `n`th (1-based) Sunday of a month.
fn nth_sunday(year: i64, month: u32, n: i64) -> i64 {
    let first = days_from_civil(year, month, 1);
    first + (7 - weekday(first)) % 7 + 7 * (n - 1)
}

/// The last Sunday of a month.
fn last_sunday(year: i64, month: u32) -> i64 {
    let last = days_from_civil(year + i64::from(month == 12), month % 12 + 1, 1) - 1;
    last - weekday(last)
}

/// Whether local time (`day`, `minute` of the day) is in daylight time. The switch is
/// taken at 02:00 local on its day, which is exact for 00:00:01 and 23:59:00.
fn in_dst(rule: Dst, day: i64, minute: i64) -> bool {
    let (year, _, _) = civil_from_days(day);
    let at_or_after = |switch: i64| day > switch || (day == switch && minute >= 120);
    match rule {
        Dst::None => false,
        Dst::Us => at_or_after(nth_sunday(year, 3, 2)) && !at_or_after(nth_sunday(year, 11, 1)),
        Dst::Eu => at_or_after(last_sunday(year, 3)) && !at_or_after(last_sunday(year, 10)),
        Dst::Nz => at_or_after(last_sunday(year, 9)) || !at_or_after(nth_sunday(year, 4, 1)),
    }
}

/// Minutes east of UTC of local time (`day`, `minute`) in `zone`; panics on a zone the
/// fake does not know.
fn offset_at_local(zone: &str, day: i64, minute: i64) -> i32 {
    let (std, rule) = zone_rule(zone)
        .unwrap_or_else(|| panic!("fake plane knows the zones {KNOWN_ZONES:?}, not {zone:?}"));
    std + if in_dst(rule, day, minute) { 60 } else { 0 }
}

/// A local wall time (`day`, `second` of the day) in `zone` as Unix µs.
fn local_to_utc(zone: &str, day: i64, second: i64) -> i64 {
    let offset = i64::from(offset_at_local(zone, day, second / 60));
    (day * 86_400 + second - offset * 60) * 1_000_000
}

/// The local day of Unix µs `t` in `zone`.
pub fn local_day(zone: &str, t: i64) -> i64 {
    let secs = t.div_euclid(1_000_000);
    // Guess with the standard offset, then settle with the offset of that local time.
    let (std, _) = zone_rule(zone).unwrap_or((0, Dst::None));
    let guess = secs + i64::from(std) * 60;
    let offset = offset_at_local(
        zone,
        guess.div_euclid(86_400),
        guess.rem_euclid(86_400) / 60,
    );
    (secs + i64::from(offset) * 60).div_euclid(86_400)
}

/// Plane's `convert_to_utc(…, is_start_date=True)`: the start day at 00:00:01 in the
/// project's zone, or `now` when that day is today there.
pub fn cycle_start_instant(zone: &str, day: i64, now: i64) -> i64 {
    if local_day(zone, now) == day {
        return now;
    }
    local_to_utc(zone, day, 1)
}

/// Plane's `convert_to_utc` for an end date: the last day at 23:59:00 local.
pub fn cycle_end_instant(zone: &str, day: i64) -> i64 {
    local_to_utc(zone, day, 23 * 3600 + 59 * 60)
}

/// `YYYY-MM-DD` → day, panicking on a bad date (test helper input).
fn day_of(date: &str) -> i64 {
    parse_date(date).unwrap_or_else(|| panic!("fake plane: bad date {date:?}"))
}

impl World {
    fn project_ix(&self, identifier: &str) -> usize {
        self.projects
            .iter()
            .position(|p| p.identifier == identifier)
            .unwrap_or_else(|| panic!("fake plane: no project {identifier}"))
    }

    /// (project index, cycle index) of a cycle, deleted ones included.
    fn locate_cycle(&self, id: &str) -> (usize, usize) {
        self.projects
            .iter()
            .enumerate()
            .find_map(|(pi, p)| p.cycles.iter().position(|c| c.id == id).map(|ci| (pi, ci)))
            .unwrap_or_else(|| panic!("fake plane: no cycle {id}"))
    }

    /// (project index, module index) of a module, deleted ones included.
    fn locate_module(&self, id: &str) -> (usize, usize) {
        self.projects
            .iter()
            .enumerate()
            .find_map(|(pi, p)| p.modules.iter().position(|m| m.id == id).map(|mi| (pi, mi)))
            .unwrap_or_else(|| panic!("fake plane: no module {id}"))
    }

    /// A cycle by UUID, deleted and archived ones included.
    pub fn cycle(&self, id: &str) -> &Cycle {
        let (pi, ci) = self.locate_cycle(id);
        &self.projects[pi].cycles[ci]
    }

    /// A module by UUID, deleted and archived ones included.
    pub fn module(&self, id: &str) -> &Module {
        let (pi, mi) = self.locate_module(id);
        &self.projects[pi].modules[mi]
    }

    /// Sets a project's zone (Plane's project settings). Stored cycles keep their instants,
    /// as on Plane: only cycles dated afterwards use the new zone.
    pub fn set_project_timezone(&mut self, identifier: &str, zone: &str) {
        assert!(
            zone_rule(zone).is_some(),
            "fake plane knows the zones {KNOWN_ZONES:?}"
        );
        let pi = self.project_ix(identifier);
        self.projects[pi].timezone = zone.to_string();
    }

    /// Turns a project's cycles feature (`cycle_view`) on or off.
    pub fn set_cycles_enabled(&mut self, identifier: &str, on: bool) {
        let pi = self.project_ix(identifier);
        self.projects[pi].cycle_view = on;
    }

    /// Turns a project's modules feature (`module_view`) on or off.
    pub fn set_modules_enabled(&mut self, identifier: &str, on: bool) {
        let pi = self.project_ix(identifier);
        self.projects[pi].module_view = on;
    }

    /// Adds a cycle as a colleague would in the web app; `dates` = first and last day
    /// (`YYYY-MM-DD`), converted in the project's zone as Plane does; `None` = a draft.
    /// Returns its UUID.
    pub fn add_cycle(
        &mut self,
        identifier: &str,
        name: &str,
        dates: Option<(&str, &str)>,
    ) -> String {
        let pi = self.project_ix(identifier);
        let id = self.new_uuid();
        let now = self.tick();
        let owner = self.colleague().id.clone();
        let p = &mut self.projects[pi];
        let sort_order = p
            .cycles
            .iter()
            .map(|c| c.sort_order)
            .reduce(f64::min)
            .map_or(65535.0, |s| s - 10000.0);
        p.cycles.push(Cycle {
            id: id.clone(),
            name: name.to_string(),
            description: String::new(),
            start_date: None,
            end_date: None,
            timezone: "UTC".into(),
            items: Vec::new(),
            archived_at: None,
            deleted_at: None,
            created_at: now,
            updated_at: now,
            owned_by: owner,
            sort_order,
        });
        if dates.is_some() {
            self.set_cycle_dates(&id, dates);
        }
        id
    }

    /// Sets both days of a cycle (or clears both), converted in the project's CURRENT
    /// zone, as a Plane write carrying both dates does; bumps the cycle's `updated_at`.
    pub fn set_cycle_dates(&mut self, cycle_id: &str, dates: Option<(&str, &str)>) {
        let (pi, ci) = self.locate_cycle(cycle_id);
        let zone = self.projects[pi].timezone.clone();
        let now = self.tick();
        let instants = dates.map(|(start, end)| {
            let (s, e) = (day_of(start), day_of(end));
            assert!(s <= e, "Plane refuses a start after the end");
            (
                cycle_start_instant(&zone, s, now),
                cycle_end_instant(&zone, e),
            )
        });
        let c = &mut self.projects[pi].cycles[ci];
        c.start_date = instants.map(|(s, _)| s);
        c.end_date = instants.map(|(_, e)| e);
        c.updated_at = now;
    }

    /// Sets a cycle's stored instants as given (µs), unconverted: what Plane stores for a
    /// PATCH that carries only one of the dates (that date's UTC midnight).
    pub fn set_cycle_instants(&mut self, cycle_id: &str, start: Option<i64>, end: Option<i64>) {
        let (pi, ci) = self.locate_cycle(cycle_id);
        let now = self.tick();
        let c = &mut self.projects[pi].cycles[ci];
        (c.start_date, c.end_date, c.updated_at) = (start, end, now);
    }

    /// Renames a cycle.
    pub fn rename_cycle(&mut self, cycle_id: &str, name: &str) {
        let (pi, ci) = self.locate_cycle(cycle_id);
        let now = self.tick();
        let c = &mut self.projects[pi].cycles[ci];
        c.name = name.to_string();
        c.updated_at = now;
    }

    /// Archives a cycle. Panics unless it has ended, as Plane answers 400 then.
    pub fn archive_cycle(&mut self, cycle_id: &str) {
        let (pi, ci) = self.locate_cycle(cycle_id);
        let now = self.tick();
        let c = &mut self.projects[pi].cycles[ci];
        assert!(
            c.end_date.is_some_and(|e| e < now),
            "Plane: \"Only completed cycles can be archived\" ({})",
            c.name
        );
        c.archived_at = Some(now);
        c.updated_at = now;
    }

    /// Restores an archived cycle.
    pub fn unarchive_cycle(&mut self, cycle_id: &str) {
        let (pi, ci) = self.locate_cycle(cycle_id);
        let now = self.tick();
        let c = &mut self.projects[pi].cycles[ci];
        (c.archived_at, c.updated_at) = (None, now);
    }

    /// Deletes a cycle (soft deletion: it vanishes from the API).
    pub fn delete_cycle(&mut self, cycle_id: &str) {
        let (pi, ci) = self.locate_cycle(cycle_id);
        let now = self.tick();
        self.projects[pi].cycles[ci].deleted_at = Some(now);
    }

    /// Puts a work item into a cycle, taking it out of any other cycle (an item is in at
    /// most one), and bumps the item's `updated_at` as Plane does.
    pub fn add_to_cycle(&mut self, cycle_id: &str, item_id: &str) {
        let (pi, ci) = self.locate_cycle(cycle_id);
        for c in &mut self.projects[pi].cycles {
            c.items.retain(|i| i != item_id);
        }
        self.projects[pi].cycles[ci].items.push(item_id.to_string());
        self.touch(item_id);
    }

    /// Takes a work item out of a cycle; bumps the item's `updated_at`.
    pub fn remove_from_cycle(&mut self, cycle_id: &str, item_id: &str) {
        let (pi, ci) = self.locate_cycle(cycle_id);
        self.projects[pi].cycles[ci].items.retain(|i| i != item_id);
        self.touch(item_id);
    }

    /// Adds a module (status `planned`, Plane's default) as a colleague would; dates are
    /// `YYYY-MM-DD`. Returns its UUID. Panics on a name the project already uses (Plane
    /// answers 400 `MODULE_NAME_ALREADY_EXISTS`).
    pub fn add_module(
        &mut self,
        identifier: &str,
        name: &str,
        start: Option<&str>,
        target: Option<&str>,
    ) -> String {
        let pi = self.project_ix(identifier);
        let taken = self.projects[pi]
            .modules
            .iter()
            .any(|m| m.deleted_at.is_none() && m.name == name);
        assert!(
            !taken,
            "Plane: \"Module with this name already exists\" ({name})"
        );
        let id = self.new_uuid();
        let now = self.tick();
        let creator = self.colleague().id.clone();
        let p = &mut self.projects[pi];
        let sort_order = p
            .modules
            .iter()
            .map(|m| m.sort_order)
            .reduce(f64::min)
            .map_or(65535.0, |s| s - 10000.0);
        p.modules.push(Module {
            id: id.clone(),
            name: name.to_string(),
            description: String::new(),
            start_date: None,
            target_date: None,
            status: "planned".into(),
            items: Vec::new(),
            archived_at: None,
            deleted_at: None,
            created_at: now,
            updated_at: now,
            created_by: creator,
            sort_order,
        });
        self.set_module_dates(&id, start, target);
        id
    }

    /// Sets a module's start and target dates (`YYYY-MM-DD`, `None` clears).
    pub fn set_module_dates(&mut self, module_id: &str, start: Option<&str>, target: Option<&str>) {
        if let (Some(s), Some(t)) = (start, target) {
            assert!(
                day_of(s) <= day_of(t),
                "Plane refuses a start after the target"
            );
        }
        self.update_module(module_id, |m| {
            m.start_date = start.map(str::to_string);
            m.target_date = target.map(str::to_string);
        });
    }

    /// Sets a module's status (one of [`MODULE_STATUSES`]).
    pub fn set_module_status(&mut self, module_id: &str, status: &str) {
        assert!(
            MODULE_STATUSES.contains(&status),
            "not a module status: {status}"
        );
        self.update_module(module_id, |m| m.status = status.to_string());
    }

    /// Renames a module.
    pub fn rename_module(&mut self, module_id: &str, name: &str) {
        self.update_module(module_id, |m| m.name = name.to_string());
    }

    /// Archives a module. Panics unless it is completed or cancelled (Plane's 400).
    pub fn archive_module(&mut self, module_id: &str) {
        let now = self.clock + 1_000_037;
        self.update_module(module_id, |m| {
            assert!(
                m.status == "completed" || m.status == "cancelled",
                "Plane: \"Only completed or cancelled modules can be archived\" ({})",
                m.name
            );
            m.archived_at = Some(now);
        });
    }

    /// Deletes a module (soft deletion).
    pub fn delete_module(&mut self, module_id: &str) {
        let now = self.clock + 1_000_037;
        self.update_module(module_id, |m| m.deleted_at = Some(now));
    }

    /// Adds a work item to a module (an item may be in several); bumps the item.
    pub fn add_to_module(&mut self, module_id: &str, item_id: &str) {
        let (pi, mi) = self.locate_module(module_id);
        let m = &mut self.projects[pi].modules[mi];
        if !m.items.iter().any(|i| i == item_id) {
            m.items.push(item_id.to_string());
        }
        self.touch(item_id);
    }

    /// Takes a work item out of a module; bumps the item.
    pub fn remove_from_module(&mut self, module_id: &str, item_id: &str) {
        let (pi, mi) = self.locate_module(module_id);
        self.projects[pi].modules[mi].items.retain(|i| i != item_id);
        self.touch(item_id);
    }

    fn update_module(&mut self, module_id: &str, f: impl FnOnce(&mut Module)) {
        let (pi, mi) = self.locate_module(module_id);
        let now = self.tick();
        let m = &mut self.projects[pi].modules[mi];
        f(m);
        m.updated_at = now;
    }

    /// A `cycle` webhook body as CE sends it (`data` without counts; `{"id"}` only for
    /// `deleted`, which CE itself never sends); `change` = (field, old, new) for updates.
    pub fn cycle_webhook_payload(
        &self,
        cycle_id: &str,
        action: &str,
        change: Option<(&str, Option<&str>, Option<&str>)>,
    ) -> String {
        let (pi, ci) = self.locate_cycle(cycle_id);
        let p = &self.projects[pi];
        let data = match action {
            "deleted" => obj(vec![("id", s(cycle_id))]),
            _ => cycle_json(self, p, &p.cycles[ci], false),
        };
        self.timeline_payload("cycle", action, data, change)
    }

    /// A `module` webhook body as CE sends it (see [`World::cycle_webhook_payload`]).
    pub fn module_webhook_payload(
        &self,
        module_id: &str,
        action: &str,
        change: Option<(&str, Option<&str>, Option<&str>)>,
    ) -> String {
        let (pi, mi) = self.locate_module(module_id);
        let p = &self.projects[pi];
        let data = match action {
            "deleted" => obj(vec![("id", s(module_id))]),
            _ => module_json(self, p, &p.modules[mi], false),
        };
        self.timeline_payload("module", action, data, change)
    }

    fn timeline_payload(
        &self,
        event: &str,
        action: &str,
        data: Value,
        change: Option<(&str, Option<&str>, Option<&str>)>,
    ) -> String {
        let (field, old, new) = change.unwrap_or(("", None, None));
        let actor = self
            .members
            .iter()
            .find(|u| u.id == self.colleague().id)
            .map_or(Value::Null, user_json);
        let activity = obj(vec![
            (
                "field",
                if field.is_empty() {
                    Value::Null
                } else {
                    s(field)
                },
            ),
            ("new_value", opt(new)),
            ("old_value", opt(old)),
            ("actor", actor),
            ("old_identifier", Value::Null),
            ("new_identifier", Value::Null),
        ]);
        json::to_string(&obj(vec![
            ("event", s(event)),
            ("action", s(action)),
            ("webhook_id", s(&self.webhook_id)),
            ("workspace_id", s(&self.workspace_id)),
            ("data", data),
            ("activity", activity),
        ]))
    }
}

/// The six annotated counts over the listed member items. `capped` = Plane's module
/// counting, `COUNT(DISTINCT group)`, so each group count is 0 or 1.
fn counts(p: &Project, items: &[String], capped: bool) -> Vec<(&'static str, Value)> {
    let groups: Vec<&str> = items
        .iter()
        .filter_map(|id| p.items.iter().find(|i| &i.id == id))
        .filter(|i| i.deleted_at.is_none() && i.archived_at.is_none() && !i.is_draft)
        .map(|i| p.state(&i.state).map_or("", |s| s.group.as_str()))
        .collect();
    let of = |g: &str| {
        let n = groups.iter().filter(|x| **x == g).count();
        num(if capped { n.min(1) } else { n })
    };
    vec![
        ("total_issues", num(groups.len())),
        ("cancelled_issues", of("cancelled")),
        ("completed_issues", of("completed")),
        ("started_issues", of("started")),
        ("unstarted_issues", of("unstarted")),
        ("backlog_issues", of("backlog")),
    ]
}

/// A cycle as the v1 serializer renders it; `annotated` adds the list's counts.
pub(super) fn cycle_json(w: &World, p: &Project, c: &Cycle, annotated: bool) -> Value {
    let tso = |t: Option<i64>| t.map_or(Value::Null, |t| ts(p, t));
    let mut fields = vec![
        ("id", s(&c.id)),
        ("created_at", ts(p, c.created_at)),
        ("updated_at", ts(p, c.updated_at)),
        ("deleted_at", tso(c.deleted_at)),
        ("name", s(&c.name)),
        ("description", s(&c.description)),
        ("start_date", tso(c.start_date)),
        ("end_date", tso(c.end_date)),
        ("view_props", obj(vec![])),
        ("sort_order", float(c.sort_order)),
        ("external_source", Value::Null),
        ("external_id", Value::Null),
        ("progress_snapshot", obj(vec![])),
        ("archived_at", tso(c.archived_at)),
        ("logo_props", obj(vec![])),
        ("timezone", s(&c.timezone)),
        ("version", num(1)),
        ("created_by", s(&c.owned_by)),
        ("updated_by", Value::Null),
        ("project", s(&p.id)),
        ("workspace", s(&w.workspace_id)),
        ("owned_by", s(&c.owned_by)),
    ];
    if annotated {
        fields.extend(counts(p, &c.items, false));
    }
    obj(fields)
}

/// A module as the v1 serializer renders it; `annotated` adds the list's counts.
pub(super) fn module_json(w: &World, p: &Project, m: &Module, annotated: bool) -> Value {
    let tso = |t: Option<i64>| t.map_or(Value::Null, |t| ts(p, t));
    let mut fields = vec![
        ("id", s(&m.id)),
        ("created_at", ts(p, m.created_at)),
        ("updated_at", ts(p, m.updated_at)),
        ("deleted_at", tso(m.deleted_at)),
        ("name", s(&m.name)),
        ("description", s(&m.description)),
        ("description_text", Value::Null),
        ("description_html", Value::Null),
        ("start_date", opt(m.start_date.as_deref())),
        ("target_date", opt(m.target_date.as_deref())),
        ("status", s(&m.status)),
        ("view_props", obj(vec![])),
        ("sort_order", float(m.sort_order)),
        ("external_source", Value::Null),
        ("external_id", Value::Null),
        ("archived_at", tso(m.archived_at)),
        ("logo_props", obj(vec![])),
        ("created_by", s(&m.created_by)),
        ("updated_by", Value::Null),
        ("project", s(&p.id)),
        ("workspace", s(&w.workspace_id)),
        ("lead", Value::Null),
        ("members", Value::Array(Array::new())),
    ];
    if annotated {
        fields.extend(counts(p, &m.items, w.module_counts_capped));
    }
    obj(fields)
}

/// Whether the list shows it: not archived, not deleted.
fn listed_cycle(c: &Cycle) -> bool {
    c.archived_at.is_none() && c.deleted_at.is_none()
}

fn listed_module(m: &Module) -> bool {
    m.archived_at.is_none() && m.deleted_at.is_none()
}

/// `GET …/cycles/`, with `cycle_view` (all, current, upcoming, completed, draft,
/// incomplete; "current" answers a bare array, as Plane does).
pub(super) fn list_cycles(w: &World, pi: usize, q: &Query) -> Response {
    let p = &w.projects[pi];
    let now = w.now();
    let keep = |c: &&Cycle| -> bool {
        match qget(q, "cycle_view").unwrap_or("all") {
            "current" => {
                c.start_date.is_some_and(|s| s <= now) && c.end_date.is_some_and(|e| e >= now)
            }
            "upcoming" => c.start_date.is_some_and(|s| s > now),
            "completed" => c.end_date.is_some_and(|e| e < now),
            "draft" => c.start_date.is_none() && c.end_date.is_none(),
            "incomplete" => c.end_date.is_none_or(|e| e >= now),
            _ => true,
        }
    };
    // Plane orders by `-created_at`.
    let mut cycles: Vec<&Cycle> = p
        .cycles
        .iter()
        .filter(|c| listed_cycle(c))
        .filter(keep)
        .collect();
    cycles.sort_by_key(|c| std::cmp::Reverse(c.created_at));
    if qget(q, "cycle_view") == Some("current") {
        let arr = cycles.iter().map(|c| cycle_json(w, p, c, true)).collect();
        return json_resp(200, &Value::Array(arr));
    }
    paginated(q, w.max_per_page, cycles.len(), |r| {
        cycles[r]
            .iter()
            .map(|c| cycle_json(w, p, c, true))
            .collect()
    })
}

/// `GET …/modules/`.
pub(super) fn list_modules(w: &World, pi: usize, q: &Query) -> Response {
    let p = &w.projects[pi];
    let mut modules: Vec<&Module> = p.modules.iter().filter(|m| listed_module(m)).collect();
    modules.sort_by_key(|m| std::cmp::Reverse(m.created_at));
    paginated(q, w.max_per_page, modules.len(), |r| {
        modules[r]
            .iter()
            .map(|m| module_json(w, p, m, true))
            .collect()
    })
}

/// `GET …/cycles/{id}/`: 404 when archived or deleted.
pub(super) fn get_cycle(w: &World, pi: usize, id: &str) -> Response {
    let p = &w.projects[pi];
    match p.cycles.iter().find(|c| c.id == id && listed_cycle(c)) {
        Some(c) => json_resp(200, &cycle_json(w, p, c, true)),
        None => not_found(),
    }
}

/// `GET …/modules/{id}/`: 404 when archived or deleted.
pub(super) fn get_module(w: &World, pi: usize, id: &str) -> Response {
    let p = &w.projects[pi];
    match p.modules.iter().find(|m| m.id == id && listed_module(m)) {
        Some(m) => json_resp(200, &module_json(w, p, m, true)),
        None => not_found(),
    }
}
