//! Cycles and modules on the calendar (issue 12): the real binary (`calplanebot --once`,
//! and `run` for the feeds) against the fake Plane's cycles and modules and the real
//! Radicale and Xandikos servers; an independent client (PyPI caldav + icalendar, through
//! tests/caldav_verify.py) reads back what landed, and Python's zoneinfo
//! (tests/timeline_verify.py) says which dates a cycle's zone gives.
//!
//! What is checked (design 12): dates (a zone east of UTC moves the first day across
//! midnight, one west of it the last), summaries, description, link and ids; drafts,
//! cancelled and completed modules skipped; update in place (same UID and file,
//! SEQUENCE+1); deletion (deleted, archived, cancelled, undated); a lost journal adopted;
//! SYNC_CYCLES / SYNC_MODULES off removes only their events; foreign objects untouched;
//! VTODO mode; calendar edits reverted with a WARN and never written to Plane; the feeds;
//! the Plane requests they cost.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::fake_plane::{sign_webhook, World};
use common::{
    edit, put_raw, server, var, verifier, Calendar, DeleteCalendars, Object, Run, Server, Setup,
};
use miniserde::json::{self, Value};

/// A cycle as the fixture gives it to the fake Plane, and the dates the calendar must show.
struct CycleCase {
    /// Index of its project: the project's zone ([`ZONES`]) is the cycle's (real Plane
    /// converts cycle dates with the project's `timezone`; the cycle's own `timezone`
    /// field stays `UTC`).
    project: usize,
    name: &'static str,
    /// UTC instant, as Plane stores the first day: 00:00:01 in the project's zone.
    start: Option<&'static str>,
    /// UTC instant, as Plane stores the last day: 23:59:00 in the project's zone.
    end: Option<&'static str>,
    /// `(DTSTART, DTEND)` of the event (DTEND exclusive); `None`: no event.
    dates: Option<(&'static str, &'static str)>,
}

/// The projects' zones: Tokyo is UTC+9 and Los Angeles UTC−8 in December and January
/// (no DST change inside any span here); the third is a name no tz database knows (UTC
/// dates, one WARN naming it).
const ZONES: [&str; 3] = ["Asia/Tokyo", "America/Los_Angeles", UNKNOWN_ZONE];

/// The fixture's cycles. Every Tokyo cycle starts on the day before in UTC (15:00:01Z), so
/// calendar dates taken in UTC would be a day early; the Los Angeles one ends on the day
/// after in UTC (07:59Z), so a UTC last day would be a day late.
const CYCLES: [CycleCase; 8] = [
    CycleCase {
        project: 0,
        name: "Sprint 1",
        start: Some("2026-12-06T15:00:01Z"),
        end: Some("2026-12-20T14:59:00Z"),
        dates: Some(("2026-12-07", "2026-12-21")),
    },
    CycleCase {
        project: 0,
        name: "Sprint 2",
        start: Some("2026-12-20T15:00:01Z"),
        end: Some("2027-01-03T14:59:00Z"),
        dates: Some(("2026-12-21", "2027-01-04")),
    },
    CycleCase {
        project: 0,
        name: "Sprint 3",
        // Over before the fake's "now" (2026-05-01), so Plane lets it be archived.
        start: Some("2026-04-05T15:00:01Z"),
        end: Some("2026-04-10T14:59:00Z"),
        dates: Some(("2026-04-06", "2026-04-11")),
    },
    CycleCase {
        project: 0,
        name: "Sprint 4",
        start: Some("2027-01-10T15:00:01Z"),
        end: Some("2027-01-15T14:59:00Z"),
        dates: Some(("2027-01-11", "2027-01-16")),
    },
    // Drafts: no event.
    CycleCase {
        project: 0,
        name: "Draft sprint",
        start: None,
        end: None,
        dates: None,
    },
    CycleCase {
        project: 0,
        name: "Half-planned sprint",
        start: Some("2027-01-17T15:00:01Z"),
        end: None,
        dates: None,
    },
    // 7–11 December in Los Angeles.
    CycleCase {
        project: 1,
        name: "West sprint",
        start: Some("2026-12-07T08:00:01Z"),
        end: Some("2026-12-12T07:59:00Z"),
        dates: Some(("2026-12-07", "2026-12-12")),
    },
    CycleCase {
        project: 2,
        name: "Mars sprint",
        start: Some("2026-12-14T00:00:01Z"),
        end: Some("2026-12-18T23:59:00Z"),
        dates: Some(("2026-12-14", "2026-12-19")),
    },
];

/// Visible work items of the fixture's projects (the zones of [`ZONES`]).
const PROJECT_ITEMS: [usize; 3] = [20, 4, 4];

const UNKNOWN_ZONE: &str = "Mars/Olympus_Mons";

/// A module as the fixture gives it to the fake Plane, and the dates the calendar must show.
struct ModuleCase {
    name: &'static str,
    start: Option<&'static str>,
    target: Option<&'static str>,
    /// Plane's status value.
    status: &'static str,
    /// How the description names the status.
    label: &'static str,
    /// `(DTSTART, DTEND)`; `None`: no event (with COMPLETED_ITEMS=delete, the default).
    dates: Option<(&'static str, &'static str)>,
}

const MODULES: [ModuleCase; 5] = [
    ModuleCase {
        name: "Launch",
        start: Some("2026-12-01"),
        target: Some("2026-12-15"),
        status: "in-progress",
        label: "In progress",
        dates: Some(("2026-12-01", "2026-12-16")),
    },
    // Only a target date: one day on it.
    ModuleCase {
        name: "Beta",
        start: None,
        target: Some("2027-01-10"),
        status: "planned",
        label: "Planned",
        dates: Some(("2027-01-10", "2027-01-11")),
    },
    ModuleCase {
        name: "Someday",
        start: Some("2026-12-01"),
        target: None,
        status: "backlog",
        label: "Backlog",
        dates: None,
    },
    ModuleCase {
        name: "Abandoned",
        start: Some("2026-12-01"),
        target: Some("2026-12-10"),
        status: "cancelled",
        label: "Cancelled",
        dates: None,
    },
    ModuleCase {
        name: "Shipped",
        start: Some("2026-11-01"),
        target: Some("2026-11-20"),
        status: "completed",
        label: "Completed",
        dates: None,
    },
];

/// The fixture's ids in the fake Plane, in the order of [`CYCLES`] and [`MODULES`].
struct Timeline {
    cycles: Vec<String>,
    modules: Vec<String>,
    /// Work items in the first cycle and the first module (progress counts).
    members: Vec<String>,
}

fn cycle_uid(id: &str) -> String {
    format!("plane-cycle-{id}@calplanebot")
}

fn module_uid(id: &str) -> String {
    format!("plane-module-{id}@calplanebot")
}

/// Gives the projects their zones ([`ZONES`]), adds [`CYCLES`] and [`MODULES`] (all
/// modules to project 0); the first cycle and module get three work items, one of them
/// completed.
fn seed(s: &Setup) -> Timeline {
    s.fake.with_world(|w| {
        assert_eq!(w.projects.len(), ZONES.len(), "one project per zone");
        let identifier = |w: &World, i: usize| w.projects[i].identifier.clone();
        for (i, zone) in ZONES.iter().enumerate() {
            if *zone == UNKNOWN_ZONE {
                // The fake converts nothing here (the instants are given), so it need not
                // know the zone: set the field it serves directly.
                w.projects[i].timezone = zone.to_string();
            } else {
                w.set_project_timezone(&identifier(w, i), zone);
            }
        }
        let cycles = CYCLES
            .iter()
            .map(|c| {
                let id = w.add_cycle(&identifier(w, c.project), c.name, None);
                // The instants as given, not converted by the fake: the fixture says what
                // real Plane stores.
                w.set_cycle_instants(&id, c.start.map(micros), c.end.map(micros));
                id
            })
            .collect::<Vec<_>>();
        let p0 = identifier(w, 0);
        let modules = MODULES
            .iter()
            .map(|m| {
                let id = w.add_module(&p0, m.name, m.start, m.target);
                if m.status != "planned" {
                    w.set_module_status(&id, m.status);
                }
                id
            })
            .collect::<Vec<_>>();
        let p = &w.projects[0];
        let members: Vec<String> = p
            .visible_items()
            .into_iter()
            .filter(|i| p.state(&i.state).map(|s| s.group.as_str()) != Some("completed"))
            .take(3)
            .map(|i| i.id.clone())
            .collect();
        assert_eq!(members.len(), 3, "the world has open work items");
        for m in &members {
            w.add_to_cycle(&cycles[0], m);
            w.add_to_module(&modules[0], m);
        }
        w.set_state_group(&members[0], "completed");
        Timeline {
            cycles,
            modules,
            members,
        }
    })
}

/// `YYYY-MM-DDTHH:MM:SSZ` as Unix microseconds (the fake's instants), by civil calendar
/// arithmetic of its own (days from 1970-01-01, Howard Hinnant's algorithm).
fn micros(instant: &str) -> i64 {
    let n = |a: usize, b: usize| -> i64 {
        instant[a..b]
            .parse()
            .unwrap_or_else(|_| panic!("bad instant {instant}"))
    };
    assert!(instant.len() == 20 && instant.ends_with('Z'), "{instant}");
    let (y, m, d) = (n(0, 4), n(5, 7), n(8, 10));
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    (days * 86_400 + n(11, 13) * 3600 + n(14, 16) * 60 + n(17, 19)) * 1_000_000
}

/// The variables that turn both kinds on.
fn enable(s: &mut Setup) {
    set_var(s, "SYNC_CYCLES", "true");
    set_var(s, "SYNC_MODULES", "true");
}

/// Sets (or replaces) one variable of the binary's environment.
fn set_var(s: &mut Setup, name: &str, value: &str) {
    s.env.retain(|(k, _)| k != name);
    s.env.push((name.to_string(), value.to_string()));
}

/// Calendar URLs by server and display name, found once per test process: a dump of the
/// home reads every calendar of the test user (other tests' too, slow), a dump of one
/// calendar URL only that one.
static CALENDAR_URLS: Mutex<BTreeMap<String, String>> = Mutex::new(BTreeMap::new());

/// Project `i`'s calendar, read back by the verifier.
fn calendar(s: &Setup, i: usize) -> Calendar {
    let name = format!("Plane: {}", s.fake.world().projects[i].name);
    let key = format!("{} {name}", s.server.url);
    let known = CALENDAR_URLS.lock().expect("lock").get(&key).cloned();
    let Some(url) = known else {
        let c = s.calendar(i);
        CALENDAR_URLS
            .lock()
            .expect("lock")
            .insert(key, c.url.clone());
        return c;
    };
    let mut found = common::dump(&s.server, &url);
    assert_eq!(found.len(), 1, "{url}: {found:?}");
    found.remove(0)
}

/// The work-item objects of project 0's calendar.
fn work_items(s: &Setup) -> Vec<Object> {
    calendar(s, 0)
        .objects
        .into_iter()
        .filter(|o| o.uid.starts_with("plane-issue-"))
        .collect()
}

/// The cycle and module objects of project `i`'s calendar, by UID (work items left out).
fn timeline_objects(s: &Setup, i: usize) -> BTreeMap<String, Object> {
    calendar(s, i)
        .objects
        .into_iter()
        .filter(|o| o.uid.starts_with("plane-cycle-") || o.uid.starts_with("plane-module-"))
        .map(|o| (o.uid.clone(), o))
        .collect()
}

/// What Plane's web app shows for a cycle or module (`kind`: `cycles` / `modules`).
fn web_link(s: &Setup, project: usize, kind: &str, id: &str) -> String {
    let w = s.fake.world();
    format!(
        "{}/{}/projects/{}/{kind}/{id}",
        s.fake.base_url(),
        w.slug,
        w.projects[project].id
    )
}

/// Python zoneinfo's `(DTSTART, DTEND)` for a cycle's instants in its zone.
fn oracle_dates(start: &str, end: &str, zone: &str) -> (String, String) {
    let python = var("PYTHON").expect("PYTHON (set by tests/run.sh or .tests/run/servers.env)");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/timeline_verify.py");
    let out = Command::new(python)
        .arg(script)
        .args(["local-dates", start, end, zone])
        .output()
        .expect("run timeline_verify.py");
    assert!(
        out.status.success(),
        "timeline_verify.py failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = json::from_str(&String::from_utf8_lossy(&out.stdout)).expect("oracle JSON");
    (text(get(&v, "first_day")), text(get(&v, "dtend")))
}

fn get<'a>(v: &'a Value, key: &str) -> &'a Value {
    static NULL: Value = Value::Null;
    match v {
        Value::Object(o) => o.get(key).unwrap_or(&NULL),
        _ => &NULL,
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Null => String::new(),
        Value::Array(a) => a.iter().map(text).collect::<Vec<_>>().join(","),
        other => json::to_string(other),
    }
}

/// The properties every cycle or module event carries, whatever its dates.
fn check_common(o: &Object, link: &str, project_id: &str, category: &str) {
    assert_eq!(o.component, "VEVENT", "{}", o.ical);
    assert_eq!(
        o.value_types.get("DTSTART").map(String::as_str),
        Some("DATE")
    );
    assert_eq!(o.value_types.get("DTEND").map(String::as_str), Some("DATE"));
    assert_eq!(o.prop("URL").as_deref(), Some(link), "{}", o.ical);
    assert_eq!(o.prop("X-PLANE-PROJECT-ID").as_deref(), Some(project_id));
    assert_eq!(o.prop("TRANSP").as_deref(), Some("TRANSPARENT"));
    assert_eq!(o.list("CATEGORIES"), vec![category.to_string()]);
    let desc = o.prop("DESCRIPTION").unwrap_or_default();
    assert!(desc.contains(link), "the link in the description: {desc:?}");
    assert!(o.prop("ORGANIZER").is_none() && o.prop("ATTENDEE").is_none());
    // Named like work items' files: `{UID}.ics` (percent-encoded or not by the server).
    let file = o.href.rsplit('/').next().unwrap_or("").replace("%40", "@");
    assert_eq!(file, format!("{}.ics", o.uid), "{}", o.href);
}

/// The cycle and module objects of every project's calendar but `skip`'s, by UID.
fn all_timeline_objects(s: &Setup, skip: &[usize]) -> BTreeMap<String, Object> {
    (0..ZONES.len())
        .filter(|i| !skip.contains(i))
        .flat_map(|i| timeline_objects(s, i))
        .collect()
}

/// Exactly the fixture's dated cycles and modules, field by field, in every project's
/// calendar but `skip`'s. Returns them by UID.
fn check_fixture(s: &Setup, t: &Timeline, skip: &[usize]) -> BTreeMap<String, Object> {
    let got = all_timeline_objects(s, skip);
    let world = s.fake.world();
    let mut want = BTreeSet::new();
    for (case, id) in CYCLES.iter().zip(&t.cycles) {
        let Some((dtstart, dtend)) = case.dates.filter(|_| !skip.contains(&case.project)) else {
            continue;
        };
        let uid = cycle_uid(id);
        let o = got
            .get(&uid)
            .unwrap_or_else(|| panic!("cycle {:?} missing: {:?}", case.name, got.keys()));
        let pid = &world.projects[case.project].id;
        check_common(o, &web_link(s, case.project, "cycles", id), pid, "Cycle");
        assert_eq!(o.prop("SUMMARY"), Some(format!("Cycle: {}", case.name)));
        assert_eq!(o.prop("X-PLANE-CYCLE-ID").as_deref(), Some(id.as_str()));
        let (done, total) = if *id == t.cycles[0] { (1, 3) } else { (0, 0) };
        let link = web_link(s, case.project, "cycles", id);
        let desc = format!("{done}/{total} work items completed\n\n{link}");
        assert_eq!(o.prop("DESCRIPTION"), Some(desc));
        let dates = (o.prop("DTSTART").unwrap(), o.prop("DTEND").unwrap());
        let zone = ZONES[case.project];
        assert_eq!(
            (dates.0.as_str(), dates.1.as_str()),
            (dtstart, dtend),
            "{} in {zone}",
            case.name
        );
        if zone != UNKNOWN_ZONE {
            let oracle = oracle_dates(case.start.unwrap(), case.end.unwrap(), zone);
            assert_eq!(dates, oracle, "{}: zoneinfo disagrees", case.name);
        }
        want.insert(uid);
    }
    if !skip.contains(&0) {
        let pid = &world.projects[0].id;
        for (case, id) in MODULES.iter().zip(&t.modules) {
            let Some((dtstart, dtend)) = case.dates else {
                continue;
            };
            let uid = module_uid(id);
            let o = got
                .get(&uid)
                .unwrap_or_else(|| panic!("module {:?} missing: {:?}", case.name, got.keys()));
            check_common(o, &web_link(s, 0, "modules", id), pid, "Module");
            assert_eq!(o.prop("SUMMARY"), Some(format!("Module: {}", case.name)));
            assert_eq!(o.prop("X-PLANE-MODULE-ID").as_deref(), Some(id.as_str()));
            assert_eq!(o.prop("DTSTART").as_deref(), Some(dtstart), "{}", case.name);
            assert_eq!(o.prop("DTEND").as_deref(), Some(dtend), "{}", case.name);
            // No completed count: Plane's module listing caps it at 1 (a Plane bug).
            let total = if *id == t.modules[0] { 3 } else { 0 };
            let link = web_link(s, 0, "modules", id);
            let desc = format!("{total} work items\nStatus: {}\n\n{link}", case.label);
            assert_eq!(o.prop("DESCRIPTION"), Some(desc));
            want.insert(uid);
        }
    }
    assert_eq!(
        got.keys().cloned().collect::<BTreeSet<_>>(),
        want,
        "exactly the dated cycles and the dated, open modules"
    );
    got
}

/// Lines of the log at `level` (`WARN`, `INFO`) that contain every one of `words`.
fn log_lines(r: &Run, level: &str, words: &[&str]) -> Vec<String> {
    r.stderr
        .lines()
        .filter(|l| l.contains(level) && words.iter().all(|w| l.contains(w)))
        .map(str::to_string)
        .collect()
}

/// A user's own event in the project calendar that looks like one of ours (same summary,
/// dates and X-PLANE-CYCLE-ID) but carries a UID of its own app. Returns its UID.
fn put_lookalike(s: &Setup, cycle_id: &str) -> String {
    let cal = calendar(s, 0);
    let uid = format!("lookalike-{}@example.com", s.tag.to_lowercase());
    let ics = format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//user//EN\r\nBEGIN:VEVENT\r\nUID:{uid}\r\n\
         DTSTAMP:20261101T000000Z\r\nDTSTART;VALUE=DATE:20261207\r\nDTEND;VALUE=DATE:20261221\r\n\
         SUMMARY:Cycle: Sprint 1\r\nX-PLANE-CYCLE-ID:{cycle_id}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    );
    put_raw(&s.server, &cal.url, &ics, None, false);
    uid
}

/// The ETag of object `uid` in project 0's calendar.
fn etag_of(s: &Setup, uid: &str) -> String {
    calendar(s, 0)
        .objects
        .into_iter()
        .find(|o| o.uid == uid)
        .unwrap_or_else(|| panic!("{uid} is gone"))
        .etag
}

fn sequence(o: &Object) -> u64 {
    o.prop("SEQUENCE").and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// Every request to Plane since the log was cleared that is not a read.
fn plane_writes(s: &Setup) -> Vec<String> {
    s.fake
        .requests()
        .into_iter()
        .filter(|r| r.method != "GET" && r.method != "HEAD")
        .map(|r| format!("{} {} {}", r.method, r.path, r.body))
        .collect()
}

/// First sync, idle sync, then Plane changes: renamed and re-dated (same UID and file,
/// SEQUENCE+1), progress moved (an incremental cycle), a lost journal (adopted, nothing
/// duplicated), then deleted, archived, cancelled and undated (deleted); a lookalike
/// event of the user's untouched throughout.
fn lifecycle(server: Server) {
    let mut s = Setup::new(server.clone(), &PROJECT_ITEMS);
    let _cleanup = DeleteCalendars(server.clone(), s.tag.clone());
    enable(&mut s);
    let t = seed(&s);

    let first = s.sync();
    first.assert_ok();
    let unknown = log_lines(&first, "WARN", &[UNKNOWN_ZONE]);
    assert_eq!(
        unknown.len(),
        1,
        "one WARN per unknown zone:\n{}",
        first.stderr
    );
    let before = check_fixture(&s, &t, &[]);
    let lookalike = put_lookalike(&s, &t.cycles[0]);
    let lookalike_etag = etag_of(&s, &lookalike);

    let idle = s.sync();
    idle.assert_ok();
    assert_eq!(
        idle.dav_requests("PUT") + idle.dav_requests("DELETE"),
        0,
        "{}",
        idle.stdout
    );

    updates_in_place(&s, &t, &before);
    lost_journal_is_adopted(&s);
    deletions(&s, &t);
    assert_eq!(
        etag_of(&s, &lookalike),
        lookalike_etag,
        "the user's event untouched"
    );
}

/// Renamed and re-dated in Plane: the same object, rewritten with SEQUENCE+1.
fn updates_in_place(s: &Setup, t: &Timeline, before: &BTreeMap<String, Object>) {
    s.fake.with_world(|w| {
        w.rename_cycle(&t.cycles[0], "Sprint 1 (extended)");
        // Through 27 December in Tokyo.
        let start = CYCLES[0].start.map(micros);
        w.set_cycle_instants(&t.cycles[0], start, Some(micros("2026-12-27T14:59:00Z")));
        w.rename_module(&t.modules[1], "Beta 2");
        w.set_module_dates(&t.modules[1], Some("2027-01-04"), MODULES[1].target);
    });
    let r = s.run(&["--once", "--full"]);
    r.assert_ok();
    assert_eq!(r.count("Updated"), 2, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(r.count("Created") + r.count("Deleted"), 0, "{}", r.stdout);
    let after = timeline_objects(s, 0);
    let cycle = &after[&cycle_uid(&t.cycles[0])];
    let was = &before[&cycle_uid(&t.cycles[0])];
    assert_eq!(cycle.href, was.href, "updated in place");
    assert_eq!(sequence(cycle), sequence(was) + 1);
    assert_eq!(
        cycle.prop("SUMMARY").as_deref(),
        Some("Cycle: Sprint 1 (extended)")
    );
    assert_eq!(cycle.prop("DTSTART").as_deref(), Some("2026-12-07"));
    assert_eq!(cycle.prop("DTEND").as_deref(), Some("2026-12-28"));
    let module = &after[&module_uid(&t.modules[1])];
    let was = &before[&module_uid(&t.modules[1])];
    assert_eq!(module.href, was.href);
    assert_eq!(sequence(module), sequence(was) + 1);
    assert_eq!(module.prop("SUMMARY").as_deref(), Some("Module: Beta 2"));
    assert_eq!(module.prop("DTSTART").as_deref(), Some("2027-01-04"));
    assert_eq!(module.prop("DTEND").as_deref(), Some("2027-01-11"));

    // A member completed in Plane: the next incremental cycle lists the changed work item,
    // so it lists the cycles and modules again and the progress moves (design 9b).
    s.fake
        .with_world(|w| w.set_state_group(&t.members[1], "completed"));
    let r = s.sync();
    r.assert_ok();
    let moved = timeline_objects(s, 0);
    let desc = moved[&cycle_uid(&t.cycles[0])]
        .prop("DESCRIPTION")
        .unwrap_or_default();
    assert!(
        desc.starts_with("2/3 work items completed\n"),
        "{desc:?}\n{}",
        r.stderr
    );
}

/// The journal lost: the objects are adopted by UID, none created twice, none rewritten.
fn lost_journal_is_adopted(s: &Setup) {
    let before = timeline_objects(s, 0);
    std::fs::remove_dir_all(&s.state).expect("remove STATE_DIR");
    let r = s.sync();
    r.assert_ok();
    assert_eq!(r.count("Created"), 0, "{}\n{}", r.stdout, r.stderr);
    let after = timeline_objects(s, 0);
    let hrefs =
        |m: &BTreeMap<String, Object>| m.values().map(|o| o.href.clone()).collect::<Vec<_>>();
    assert_eq!(hrefs(&after), hrefs(&before), "same objects, no duplicates");
    let all = calendar(s, 0).objects;
    let uids: BTreeSet<&str> = all.iter().map(|o| o.uid.as_str()).collect();
    assert_eq!(uids.len(), all.len(), "one object per UID");
}

/// Deleted, archived, cancelled, undated: their events go; the others stay.
fn deletions(s: &Setup, t: &Timeline) {
    s.fake.with_world(|w| {
        w.delete_cycle(&t.cycles[1]);
        w.archive_cycle(&t.cycles[2]);
        w.set_cycle_instants(&t.cycles[3], None, None);
        w.set_module_status(&t.modules[0], "cancelled");
        w.delete_module(&t.modules[1]);
    });
    let r = s.run(&["--once", "--full"]);
    r.assert_ok();
    assert_eq!(r.count("Deleted"), 5, "{}\n{}", r.stdout, r.stderr);
    for reason in [
        "3 cycle or module deleted or archived",
        "1 cycle or module without dates",
        "1 module cancelled",
    ] {
        assert!(r.stdout.contains(reason), "{reason}:\n{}", r.stdout);
    }
    let left: BTreeSet<String> = timeline_objects(s, 0).into_keys().collect();
    assert_eq!(left, BTreeSet::from([cycle_uid(&t.cycles[0])]));
    let r = s.sync();
    r.assert_ok();
    assert_eq!(
        r.dav_requests("PUT") + r.dav_requests("DELETE"),
        0,
        "{}",
        r.stdout
    );
}

#[test]
fn lifecycle_radicale() {
    lifecycle(server("Radicale", "RADICALE"));
}

#[test]
fn lifecycle_xandikos() {
    lifecycle(server("Xandikos", "XANDIKOS"));
}

/// SYNC_CYCLES=false after true removes the cycle events (and lists no cycles), the module
/// events and work items stay; then SYNC_MODULES=false removes the module events.
#[test]
fn turning_either_off_removes_only_its_events() {
    let server = server("Radicale", "RADICALE");
    let mut s = Setup::new(server.clone(), &PROJECT_ITEMS);
    let _cleanup = DeleteCalendars(server.clone(), s.tag.clone());
    enable(&mut s);
    let t = seed(&s);
    s.sync().assert_ok();
    let lookalike = put_lookalike(&s, &t.cycles[0]);
    let lookalike_etag = etag_of(&s, &lookalike);
    let items_before = work_items(&s);
    let dated_cycles = CYCLES.iter().filter(|c| c.dates.is_some()).count();
    let dated_modules = MODULES.iter().filter(|m| m.dates.is_some()).count();

    set_var(&mut s, "SYNC_CYCLES", "false");
    s.fake.clear_requests();
    let r = s.sync();
    r.assert_ok();
    assert_eq!(
        r.count("Deleted"),
        dated_cycles,
        "{}\n{}",
        r.stdout,
        r.stderr
    );
    let reason = format!("{dated_cycles} SYNC_CYCLES/SYNC_MODULES off");
    assert!(r.stdout.contains(&reason), "{reason}:\n{}", r.stdout);
    assert_eq!(
        listings(&s, "cycles").values().sum::<usize>(),
        0,
        "cycles listed while off"
    );
    let left = timeline_objects(&s, 0);
    assert!(
        left.keys().all(|u| u.starts_with("plane-module-")),
        "{:?}",
        left.keys()
    );
    assert_eq!(left.len(), dated_modules);
    assert_eq!(work_items(&s).len(), items_before.len(), "work items stay");

    set_var(&mut s, "SYNC_MODULES", "false");
    let r = s.sync();
    r.assert_ok();
    assert_eq!(
        r.count("Deleted"),
        dated_modules,
        "{}\n{}",
        r.stdout,
        r.stderr
    );
    assert!(all_timeline_objects(&s, &[]).is_empty());
    assert_eq!(work_items(&s).len(), items_before.len());
    assert_eq!(
        etag_of(&s, &lookalike),
        lookalike_etag,
        "the user's event untouched"
    );
    let r = s.run(&["--once", "--full"]);
    r.assert_ok();
    assert_eq!(
        r.dav_requests("PUT") + r.dav_requests("DELETE"),
        0,
        "{}",
        r.stdout
    );
}

/// The calendar home of a test server (`{PREFIX}_HOME` in servers.env).
fn home(server: &Server) -> String {
    let prefix = match server.name {
        "Radicale" => "RADICALE",
        "Xandikos" => "XANDIKOS",
        other => panic!("no home known for {other}"),
    };
    var(&format!("{prefix}_HOME")).expect("home URL in servers.env")
}

/// Makes the calendar of project `i` before calplanebot does, with these components.
fn premake_calendar(s: &Setup, i: usize, components: &str) {
    let name = format!("Plane: {}", s.fake.world().projects[i].name);
    let slug = format!("pre-{}-{i}", s.tag.to_lowercase());
    let out = verifier(
        &s.server,
        &[
            "mkcal",
            "--url",
            &home(&s.server),
            "--name",
            &name,
            "--slug",
            &slug,
            "--components",
            components,
        ],
    )
    .output()
    .expect("run verifier");
    assert!(
        out.status.success(),
        "mkcal: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// ITEM_KIND=vtodo: work items are tasks, cycles and modules still events — in a calendar
/// that takes both; a calendar that takes tasks only gets none of them and one INFO line
/// per run.
fn vtodo_mode(server: Server) {
    let mut s = Setup::new(server.clone(), &PROJECT_ITEMS);
    let _cleanup = DeleteCalendars(server.clone(), s.tag.clone());
    enable(&mut s);
    set_var(&mut s, "ITEM_KIND", "vtodo");
    premake_calendar(&s, 0, "VEVENT,VTODO");
    premake_calendar(&s, 1, "VTODO");
    assert_eq!(
        calendar(&s, 1).components,
        vec!["VTODO".to_string()],
        "the server keeps the set"
    );
    let t = seed(&s);

    for run in 0..2 {
        let r = s.sync();
        r.assert_ok();
        check_fixture(&s, &t, &[1]);
        // The calendar calplanebot made itself takes both (cycles and modules are on).
        let made = calendar(&s, 2).components;
        assert!(
            made.contains(&"VEVENT".to_string()) && made.contains(&"VTODO".to_string()),
            "{made:?}"
        );
        let tasks = s
            .calendar(0)
            .objects
            .into_iter()
            .filter(|o| o.uid.starts_with("plane-issue-"));
        assert!(tasks.clone().count() > 0);
        assert!(tasks.into_iter().all(|o| o.component == "VTODO"));
        assert!(
            timeline_objects(&s, 1).is_empty(),
            "no events in a tasks-only calendar"
        );
        assert!(calendar(&s, 1)
            .objects
            .iter()
            .all(|o| o.component == "VTODO"));
        // The tasks-only calendar, named by its path.
        let cal1 = format!("/pre-{}-1/", s.tag.to_lowercase());
        let skipped = log_lines(&r, "INFO", &[&cal1, "cycles and modules are not written"]);
        assert_eq!(
            skipped.len(),
            1,
            "run {run}: one INFO line per calendar:\n{}",
            r.stderr
        );
    }
}

#[test]
fn vtodo_mode_radicale() {
    vtodo_mode(server("Radicale", "RADICALE"));
}

#[test]
fn vtodo_mode_xandikos() {
    vtodo_mode(server("Xandikos", "XANDIKOS"));
}

/// A calendar edit to a cycle (renamed and moved by the user) is reverted once with a WARN
/// naming it; a deleted module event is recreated whatever CALENDAR_DELETE says; Plane
/// receives no write, CREATE_FROM_CALENDAR makes no work item of them.
fn edits_are_reverted(server: Server) {
    let mut s = Setup::new(server.clone(), &PROJECT_ITEMS);
    let _cleanup = DeleteCalendars(server.clone(), s.tag.clone());
    enable(&mut s);
    set_var(&mut s, "CALENDAR_DELETE", "clear-date");
    set_var(&mut s, "CREATE_FROM_CALENDAR", "true");
    let t = seed(&s);
    s.sync().assert_ok();
    let before = check_fixture(&s, &t, &[]);
    let cycle = &before[&cycle_uid(&t.cycles[0])];
    let module = &before[&module_uid(&t.modules[0])];
    edit(
        &server,
        cycle,
        &["--summary", "My own sprint name", "--move-to", "2027-02-01"],
    );
    let out = verifier(&server, &["delete", "--url", &module.url])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let items_before = s.fake.world().projects[0].items.len();

    s.fake.clear_requests();
    let r = s.sync();
    r.assert_ok();
    let warning = format!(
        "cycle \"Sprint 1\" ({}): edited in the calendar; calendar edits to cycles are not \
         synced back — reverted",
        s.fake.world().projects[0].identifier
    );
    let warn = log_lines(&r, "WARN", &[&warning]);
    assert_eq!(warn.len(), 1, "one WARN naming the cycle:\n{}", r.stderr);
    assert!(
        plane_writes(&s).is_empty(),
        "Plane was written: {:?}",
        plane_writes(&s)
    );
    assert_eq!(
        s.fake.world().projects[0].items.len(),
        items_before,
        "no work item made"
    );
    let after = check_fixture(&s, &t, &[]);
    assert!(sequence(&after[&cycle_uid(&t.cycles[0])]) > sequence(cycle));

    let r = s.sync();
    r.assert_ok();
    assert!(
        log_lines(&r, "WARN", &["Sprint 1"]).is_empty(),
        "once:\n{}",
        r.stderr
    );
    assert_eq!(
        r.dav_requests("PUT") + r.dav_requests("DELETE"),
        0,
        "{}",
        r.stdout
    );
    assert!(plane_writes(&s).is_empty(), "{:?}", plane_writes(&s));
}

#[test]
fn edits_are_reverted_radicale() {
    edits_are_reverted(server("Radicale", "RADICALE"));
}

#[test]
fn edits_are_reverted_xandikos() {
    edits_are_reverted(server("Xandikos", "XANDIKOS"));
}

/// GET requests to Plane's `…/projects/{pid}/{kind}/` listing since the log was cleared,
/// by project id.
fn listings(s: &Setup, kind: &str) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for r in s.fake.requests().into_iter().filter(|r| r.method == "GET") {
        let segs: Vec<&str> = r.path.trim_end_matches('/').rsplit('/').collect();
        if segs.first() == Some(&kind) && segs.get(2) == Some(&"projects") {
            *out.entry(segs[1].to_string()).or_insert(0) += 1;
        }
    }
    out
}

/// The listings of each kind per project, all projects named (0 when not listed).
fn cost(s: &Setup, kind: &str) -> Vec<usize> {
    let by_project = listings(s, kind);
    s.fake
        .world()
        .projects
        .iter()
        .map(|p| by_project.get(&p.id).copied().unwrap_or(0))
        .collect()
}

/// Plane requests of one run of `args`, and the cycle and module listings among them per
/// project.
fn measure(s: &Setup, args: &[&str]) -> (usize, Vec<usize>, Vec<usize>) {
    s.fake.clear_requests();
    s.run(args).assert_ok();
    let total = s.fake.requests().len();
    (total, cost(s, "cycles"), cost(s, "modules"))
}

/// Design 9, against the same workspace without cycles and modules: a full cycle costs
/// one listing of each kind per project more (pages of 100), an idle incremental one
/// nothing more, an incremental one where a project's work items changed one listing of
/// each for that project. Prints the figures (README "Cycles and modules").
#[test]
fn request_cost() {
    let server = server("Radicale", "RADICALE");
    let mut on = Setup::new(server.clone(), &PROJECT_ITEMS);
    let off = Setup::new(server.clone(), &PROJECT_ITEMS);
    let _cleanup = DeleteCalendars(server.clone(), on.tag.clone());
    let _cleanup_off = DeleteCalendars(server.clone(), off.tag.clone());
    enable(&mut on);
    seed(&on);
    seed(&off);
    let n = ZONES.len();
    let steps: [(&str, &[&str], usize, Vec<usize>); 5] = [
        ("first --once (full)", &["--once"], 2 * n, vec![1; n]),
        ("idle incremental --once", &["--once"], 0, vec![0; n]),
        (
            "--once after a work item of project 0 changed",
            &["--once"],
            2,
            vec![1, 0, 0],
        ),
        ("idle incremental --once", &["--once"], 0, vec![0; n]),
        ("--once --full", &["--once", "--full"], 2 * n, vec![1; n]),
    ];
    for (i, (what, args, extra, listings)) in steps.into_iter().enumerate() {
        if i == 2 {
            for s in [&on, &off] {
                let item = s.fake.world().projects[0].visible_items()[0].id.clone();
                s.fake
                    .with_world(|w| w.rename(&item, "Changed to move the watermark"));
            }
        }
        let (total_on, cycles, modules) = measure(&on, args);
        let (total_off, ..) = measure(&off, args);
        eprintln!(
            "cost: {what}: Plane requests {total_on} with cycles and modules, {total_off} \
             without; cycle listings {cycles:?}, module listings {modules:?} per project"
        );
        assert_eq!(
            total_on,
            total_off + extra,
            "{what}: {:?}",
            on.fake
                .requests()
                .iter()
                .map(|r| format!("{} {}?{}", r.method, r.path, r.query))
                .collect::<Vec<_>>()
        );
        assert_eq!((&cycles, &modules), (&listings, &listings), "{what}");
        if i == 0 {
            for r in on
                .fake
                .requests()
                .iter()
                .filter(|r| r.path.ends_with("/cycles/") || r.path.ends_with("/modules/"))
            {
                assert!(r.query.contains("per_page=100"), "{} ?{}", r.path, r.query);
            }
        }
    }
    set_var(&mut on, "SYNC_MODULES", "false");
    let (_, cycles, modules) = measure(&on, &["--once", "--full"]);
    assert_eq!((cycles, modules), (vec![1; n], vec![0; n]), "modules off");
    set_var(&mut on, "SYNC_CYCLES", "false");
    let (_, cycles, modules) = measure(&on, &["--once", "--full"]);
    assert_eq!((cycles, modules), (vec![0; n], vec![0; n]), "both off");
}

const FEED_TOKEN: &str = "feed-token-timeline-0123456789";

/// `calplanebot run` serving feeds; killed when dropped.
struct Daemon {
    child: Child,
    url: String,
    log: std::path::PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The webhook secret of the daemons here.
const WEBHOOK_SECRET: &str = "plane_wh_timeline0123456789abcdef0123456789";
/// How long a webhook's change may take to reach the calendar before the test gives up.
const WEBHOOK_WAIT: Duration = Duration::from_secs(30);

/// Starts `calplanebot run` with `vars` (a long interval, so only webhooks make it sync
/// again) and waits until its first cycle is done.
fn start_daemon(s: &Setup, vars: Vec<(String, String)>) -> Daemon {
    let port = free_port();
    let log = s.state.with_extension(format!("daemon-{port}.log"));
    let child = Command::new(env!("CARGO_BIN_EXE_calplanebot"))
        .arg("run")
        .env_clear()
        .envs(vars)
        .env("HTTP_BIND", format!("127.0.0.1:{port}"))
        .env("PLANE_WEBHOOK_SECRET", WEBHOOK_SECRET)
        .env("SYNC_INTERVAL_SECONDS", "3600")
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("daemon log"))
        .spawn()
        .expect("start calplanebot run");
    let d = Daemon {
        child,
        url: format!("http://127.0.0.1:{port}"),
        log,
    };
    let until = Instant::now() + Duration::from_secs(60);
    while Instant::now() < until {
        if d.sync_cycles() >= 1 {
            return d;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("daemon did not come up: {}", d.log_text());
}

impl Daemon {
    /// Sync cycles the daemon has run (`cycles` of /api/v1/metrics; 0 while unreachable).
    fn sync_cycles(&self) -> u64 {
        ureq::get(&format!("{}/api/v1/metrics", self.url))
            .call()
            .ok()
            .and_then(|mut r| r.body_mut().read_to_string().ok())
            .and_then(|b| json::from_str::<Value>(&b).ok())
            .and_then(|m| text(get(&m, "cycles")).parse().ok())
            .unwrap_or(0)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// POSTs a signed webhook body; Plane's deliveries must be accepted with 202.
    fn webhook(&self, body: &str) {
        let sig = sign_webhook(WEBHOOK_SECRET, body.as_bytes());
        let r = ureq::post(&format!("{}/webhooks/plane", self.url))
            .header("X-Plane-Signature", &sig)
            .send(body.as_bytes())
            .expect("webhook POST");
        assert_eq!(r.status().as_u16(), 202);
    }
}

/// Starts `calplanebot run` without CALDAV_URL (feeds only).
fn start_feeds(s: &Setup) -> Daemon {
    let mut vars: Vec<(String, String)> = s
        .vars()
        .into_iter()
        .filter(|(k, _)| !k.starts_with("CALDAV_"))
        .collect();
    vars.push(("FEED_TOKEN".into(), FEED_TOKEN.into()));
    start_daemon(s, vars)
}

/// A cycle renamed in Plane and its webhook (CE sends one for cycle updates, none for its
/// work items): the daemon lists that project's cycles once, the event has the new name;
/// no other project is listed (design 9a).
fn webhook_lists_that_projects_cycles(server: Server) {
    let mut s = Setup::new(server.clone(), &PROJECT_ITEMS);
    let _cleanup = DeleteCalendars(server.clone(), s.tag.clone());
    enable(&mut s);
    let t = seed(&s);
    let d = start_daemon(&s, s.vars());
    let done = d.sync_cycles();
    let uid = cycle_uid(&t.cycles[0]);
    assert!(
        timeline_objects(&s, 0).contains_key(&uid),
        "{}",
        d.log_text()
    );

    s.fake.clear_requests();
    s.fake
        .with_world(|w| w.rename_cycle(&t.cycles[0], "Sprint 1 renamed"));
    let change = Some(("name", Some("Sprint 1"), Some("Sprint 1 renamed")));
    let body = s
        .fake
        .with_world(|w| w.cycle_webhook_payload(&t.cycles[0], "updated", change));
    d.webhook(&body);
    let until = Instant::now() + WEBHOOK_WAIT;
    loop {
        let summary = timeline_objects(&s, 0)[&uid].prop("SUMMARY");
        if summary.as_deref() == Some("Cycle: Sprint 1 renamed") {
            break;
        }
        assert!(
            Instant::now() < until,
            "the webhook's change never reached the calendar ({summary:?}):\n{}",
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(d.sync_cycles() > done);
    let cycles = cost(&s, "cycles");
    assert_eq!(cycles, vec![1, 0, 0], "{:?}", s.fake.requests());
    assert_eq!(cost(&s, "modules")[1..], [0, 0]);
    assert!(plane_writes(&s).is_empty(), "{:?}", plane_writes(&s));
}

#[test]
fn webhook_lists_that_projects_cycles_radicale() {
    webhook_lists_that_projects_cycles(server("Radicale", "RADICALE"));
}

/// Without CALDAV_URL the project feed carries the same cycle and module events (with
/// COMPLETED_ITEMS=keep, the completed module too), read by PyPI icalendar.
#[test]
fn feeds_carry_cycles_and_modules() {
    let none = Server {
        name: "none",
        url: String::new(),
        user: String::new(),
        password: String::new(),
    };
    let mut s = Setup::new(none, &PROJECT_ITEMS);
    enable(&mut s);
    set_var(&mut s, "COMPLETED_ITEMS", "keep");
    let t = seed(&s);
    let d = start_feeds(&s);
    let world = s.fake.world();
    let url = format!(
        "{}/calendars/{}.ics?token={FEED_TOKEN}",
        d.url,
        world.projects[0].identifier.to_ascii_lowercase()
    );
    let python = var("PYTHON").expect("PYTHON (set by tests/run.sh or .tests/run/servers.env)");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/feed_verify.py");
    let out = Command::new(python)
        .arg(script)
        .args(["read", &url])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "feed_verify: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = json::from_str(&String::from_utf8_lossy(&out.stdout)).expect("feed JSON");
    assert_eq!(text(get(&v, "status")), "200");
    let mut objects = BTreeMap::new();
    if let Value::Array(a) = get(&v, "objects") {
        for o in a {
            objects.insert(text(get(o, "uid")), o.clone());
        }
    }
    let prop = |uid: &str, name: &str| text(get(get(&objects[uid], "props"), name));
    let mut want = BTreeSet::new();
    for (case, id) in CYCLES.iter().zip(&t.cycles) {
        if let Some((dtstart, dtend)) = case.dates.filter(|_| case.project == 0) {
            let uid = cycle_uid(id);
            assert!(
                objects.contains_key(&uid),
                "{} missing from the feed",
                case.name
            );
            assert_eq!(text(get(&objects[&uid], "component")), "VEVENT");
            assert_eq!(prop(&uid, "SUMMARY"), format!("Cycle: {}", case.name));
            assert_eq!(
                (prop(&uid, "DTSTART"), prop(&uid, "DTEND")),
                (dtstart.into(), dtend.into())
            );
            assert_eq!(prop(&uid, "URL"), web_link(&s, 0, "cycles", id));
            want.insert(uid);
        }
    }
    for (case, id) in MODULES.iter().zip(&t.modules) {
        // With COMPLETED_ITEMS=keep the completed module keeps its event.
        let dates = case
            .dates
            .or_else(|| (case.status == "completed").then(|| (case.start.unwrap(), "2026-11-21")));
        if let Some((dtstart, dtend)) = dates {
            let uid = module_uid(id);
            assert!(
                objects.contains_key(&uid),
                "{} missing from the feed",
                case.name
            );
            assert_eq!(prop(&uid, "SUMMARY"), format!("Module: {}", case.name));
            assert_eq!(
                (prop(&uid, "DTSTART"), prop(&uid, "DTEND")),
                (dtstart.into(), dtend.into())
            );
            want.insert(uid);
        }
    }
    let got: BTreeSet<String> = objects
        .keys()
        .filter(|u| u.starts_with("plane-cycle-") || u.starts_with("plane-module-"))
        .cloned()
        .collect();
    assert_eq!(got, want);
}
