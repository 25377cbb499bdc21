//! End-to-end: the real binary syncs a fake Plane workspace into real CalDAV servers, and
//! an independent client (PyPI caldav + icalendar) reads back what landed.

mod common;

use std::collections::BTreeMap;

use common::fake_plane::World;
use common::{add_unique_item, next_day, server, Calendar, DeleteCalendars, Object, Server, Setup};

/// What design §2 says the event of a work item looks like, computed from the fake's
/// world (not from calplanebot's code).
#[derive(Debug)]
struct Expected {
    uid: String,
    summary: String,
    date: String,
    url: String,
    categories: Vec<String>,
    priority: Option<&'static str>,
    state_name: String,
    work_item: String,
    project: String,
}

fn expected_events(world: &World, base_url: &str, project: usize) -> Vec<Expected> {
    let p = &world.projects[project];
    p.visible_items()
        .into_iter()
        .filter(|i| i.target_date.is_some())
        .filter(|i| {
            let group = p.state(&i.state).map(|s| s.group.as_str()).unwrap_or("");
            group != "completed" && group != "cancelled"
        })
        .map(|i| {
            let key = format!("{}-{}", p.identifier, i.sequence_id);
            Expected {
                uid: format!("plane-issue-{}@calplanebot", i.id),
                summary: format!("[{key}] {}", i.name),
                date: i.target_date.clone().unwrap(),
                url: format!("{base_url}/{}/browse/{key}/", world.slug),
                categories: i
                    .labels
                    .iter()
                    .map(|l| p.labels.iter().find(|x| &x.id == l).unwrap().name.clone())
                    .collect(),
                priority: match i.priority.as_str() {
                    "urgent" => Some("1"),
                    "high" => Some("3"),
                    "medium" => Some("5"),
                    "low" => Some("9"),
                    _ => None,
                },
                state_name: p.state(&i.state).unwrap().name.clone(),
                work_item: i.id.clone(),
                project: p.id.clone(),
            }
        })
        .collect()
}

fn by_uid(cal: &Calendar) -> BTreeMap<String, Object> {
    cal.objects
        .iter()
        .map(|o| (o.uid.clone(), o.clone()))
        .collect()
}

/// Every calendar and event of the setup matches design §2, field by field.
fn verify_against_world(s: &Setup) -> usize {
    let world = s.fake.world();
    let mut total = 0;
    for (i, project) in world.projects.iter().enumerate() {
        let cal = s.calendar(i);
        assert_eq!(cal.name, format!("Plane: {}", project.name));
        if !cal.components.is_empty() {
            assert!(
                cal.components.contains(&"VEVENT".to_string()),
                "{:?}",
                cal.components
            );
        }
        let want = expected_events(&world, &s.fake.base_url(), i);
        let got = by_uid(&cal);
        assert_eq!(got.len(), want.len(), "{}: number of events", cal.name);
        for e in &want {
            let o = got
                .get(&e.uid)
                .unwrap_or_else(|| panic!("missing {}", e.summary));
            let ctx = &e.summary;
            assert_eq!(o.component, "VEVENT", "{ctx}");
            assert!(
                percent_decoded(&o.href).ends_with(&format!("/{}.ics", e.uid)),
                "{ctx}: href {}",
                o.href
            );
            assert_eq!(
                o.prop("SUMMARY").as_deref(),
                Some(e.summary.as_str()),
                "{ctx}"
            );
            assert_eq!(o.prop("DTSTART").as_deref(), Some(e.date.as_str()), "{ctx}");
            assert_eq!(
                o.value_types.get("DTSTART").map(String::as_str),
                Some("DATE"),
                "{ctx}"
            );
            assert_eq!(o.prop("DTEND"), Some(next_day(&e.date)), "{ctx}");
            assert_eq!(
                o.value_types.get("DTEND").map(String::as_str),
                Some("DATE"),
                "{ctx}"
            );
            assert_eq!(o.prop("URL").as_deref(), Some(e.url.as_str()), "{ctx}");
            assert_eq!(o.list("CATEGORIES"), e.categories, "{ctx}");
            assert_eq!(o.prop("PRIORITY").as_deref(), e.priority, "{ctx}");
            assert_eq!(
                o.prop("X-PLANE-WORK-ITEM-ID").as_deref(),
                Some(e.work_item.as_str()),
                "{ctx}"
            );
            assert_eq!(
                o.prop("X-PLANE-PROJECT-ID").as_deref(),
                Some(e.project.as_str()),
                "{ctx}"
            );
            assert_eq!(o.prop("TRANSP").as_deref(), Some("TRANSPARENT"), "{ctx}");
            let desc = o.prop("DESCRIPTION").unwrap_or_default();
            assert!(
                desc.contains(&format!("State: {}", e.state_name)),
                "{ctx}: {desc}"
            );
            assert!(desc.ends_with(&e.url), "{ctx}: {desc}");
            assert!(
                o.prop("ORGANIZER").is_none() && o.prop("ATTENDEE").is_none(),
                "{ctx}"
            );
            assert!(
                o.prop("DTSTAMP").is_some() && o.prop("SEQUENCE").is_some(),
                "{ctx}"
            );
        }
        total += want.len();
    }
    total
}

fn percent_decoded(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

fn etags(s: &Setup) -> BTreeMap<String, String> {
    s.dump()
        .iter()
        .flat_map(|c| c.objects.iter().map(|o| (o.uid.clone(), o.etag.clone())))
        .collect()
}

/// A 3-project, 250-item workspace (the first project needs two pages of 100) is synced, read
/// back field by field, and a second sync writes nothing.
fn full_sync_then_idle(server: Server) {
    let s = Setup::new(server, &[120, 80, 50]);
    let first = s.sync();
    first.assert_ok();
    let total = verify_against_world(&s);
    assert!(
        total > 100,
        "the generated world should have many dated items ({total})"
    );
    assert_eq!(first.count("Created"), total);
    assert_eq!(first.dav_requests("PUT"), total, "one write per event");
    assert!(
        s.fake
            .requests()
            .iter()
            .any(|r| r.path.contains("/work-items/") && r.query.contains("cursor=")),
        "the 120-item project must have been paged"
    );

    let before = etags(&s);
    let second = s.sync();
    second.assert_ok();
    assert_eq!(second.count("Created"), 0);
    assert_eq!(second.count("Updated"), 0);
    assert_eq!(second.count("Deleted"), 0);
    assert_eq!(second.count("Unchanged"), total);
    assert_eq!(second.dav_requests("PUT"), 0);
    assert_eq!(second.dav_requests("DELETE"), 0);
    assert_eq!(etags(&s), before, "an idle sync must not touch any event");
}

#[test]
fn full_sync_radicale_basic() {
    full_sync_then_idle(server("Radicale", "RADICALE"));
}

#[test]
fn full_sync_xandikos() {
    full_sync_then_idle(server("Xandikos", "XANDIKOS"));
}

#[test]
fn full_sync_sabredav_digest() {
    full_sync_then_idle(server("SabreDAV (Digest)", "SABRE"));
}

#[test]
fn full_sync_apache_digest() {
    full_sync_then_idle(server("Apache Digest → Radicale", "APACHE_DIGEST"));
}

/// Pick `n` items of project 0 that currently have events.
fn synced_items(s: &Setup, n: usize) -> Vec<String> {
    let world = s.fake.world();
    let items: Vec<String> = expected_events(&world, &s.fake.base_url(), 0)
        .into_iter()
        .map(|e| e.work_item)
        .take(n)
        .collect();
    assert_eq!(items.len(), n, "not enough dated items");
    items
}

fn uid(item: &str) -> String {
    format!("plane-issue-{item}@calplanebot")
}

#[test]
fn changes_in_plane_update_in_place_or_delete() {
    let server = server("Radicale", "RADICALE");
    let s = Setup::new(server, &[30]);
    s.sync().assert_ok();
    let before = by_uid(&s.calendar(0));
    let ids = synced_items(&s, 6);
    let (renamed, redated, undated, completed, deleted, archived) =
        (&ids[0], &ids[1], &ids[2], &ids[3], &ids[4], &ids[5]);
    s.fake.with_world(|w| {
        w.rename(renamed, "Renamed: ünïcödé, with; punctuation");
        w.set_target_date(redated, Some("2027-02-28"));
        w.set_target_date(undated, None);
        w.set_state_group(completed, "completed");
        w.delete(deleted);
        w.archive(archived);
    });
    // An incremental cycle sees what changed; deleted and archived items vanish from
    // Plane's lists without a trace, so only a full listing finds them.
    let r = s.sync();
    r.assert_ok();
    assert_eq!(r.count("Updated"), 2, "{}", r.stdout);
    assert_eq!(r.count("Deleted"), 2, "{}", r.stdout);
    assert!(r.stdout.contains("1 issue completed"), "{}", r.stdout);
    assert_eq!(r.count("Created"), 0);
    let r = s.run(&["--once", "--full"]);
    r.assert_ok();
    assert_eq!(r.count("Deleted"), 2, "{}", r.stdout);
    assert!(
        r.stdout.contains("2 issue deleted or archived"),
        "{}",
        r.stdout
    );
    assert_eq!(r.count("Updated") + r.count("Created"), 0, "{}", r.stdout);

    let after = by_uid(&s.calendar(0));
    let key = s.fake.world().projects[0].identifier.clone();
    for (item, summary_part, date) in [
        (renamed, Some("Renamed: ünïcödé, with; punctuation"), None),
        (redated, None, Some("2027-02-28")),
    ] {
        let (old, new) = (&before[&uid(item)], &after[&uid(item)]);
        assert_eq!(old.href, new.href, "updated in place");
        assert_ne!(old.etag, new.etag, "new ETag");
        assert_eq!(new.prop("SEQUENCE").as_deref(), Some("1"));
        if let Some(part) = summary_part {
            let summary = new.prop("SUMMARY").unwrap();
            assert!(
                summary.starts_with(&format!("[{key}-")) && summary.ends_with(part),
                "{summary}"
            );
        }
        if let Some(d) = date {
            assert_eq!(new.prop("DTSTART").as_deref(), Some(d));
            assert_eq!(new.prop("DTEND").as_deref(), Some("2027-03-01"));
        }
    }
    for gone in [undated, completed, deleted, archived] {
        assert!(!after.contains_key(&uid(gone)), "{gone} should be deleted");
    }
    // Untouched items kept their ETags.
    let untouched = before
        .iter()
        .filter(|(u, _)| !ids.iter().any(|i| uid(i) == **u))
        .all(|(u, o)| after.get(u).map(|n| &n.etag) == Some(&o.etag));
    assert!(untouched, "other events must not be rewritten");
}

/// Objects are read in calendar-multiget batches of 100 (sync::apply::MULTIGET_BATCH): a
/// lost journal of a calendar with more objects than that adopts every object, one
/// REPORT per batch, and writes nothing.
#[test]
fn lost_journal_of_more_than_one_batch_is_adopted_batch_by_batch() {
    const BATCH: usize = 100;
    let server = server("Xandikos", "XANDIKOS");
    let s = Setup::new(server.clone(), &[240]);
    let first = s.sync();
    first.assert_ok();
    let created = first.count("Created");
    assert!(created > BATCH, "more objects than one batch: {created}");
    let before = etags(&s);

    std::fs::remove_file(s.state.join("state.jsonl")).unwrap();
    let r = s.sync();
    r.assert_ok();
    assert_eq!(r.count("Created"), 0);
    assert_eq!(r.count("Unchanged"), created);
    assert_eq!(r.dav_requests("PUT"), 0);
    assert_eq!(
        r.dav_requests("REPORT"),
        created.div_ceil(BATCH),
        "one multiget per batch"
    );
    assert_eq!(etags(&s), before, "nothing rewritten");
    let calendars = s.dump();
    let objects: usize = calendars.iter().map(|c| c.objects.len()).sum();
    assert_eq!(objects, created, "no duplicates");
    // The records are back: the next cycle reads nothing.
    let idle = s.sync();
    idle.assert_ok();
    assert_eq!(idle.dav_requests("REPORT"), 0);
    assert_eq!(idle.count("Unchanged"), created);
    for c in &calendars {
        let _ = common::verifier(&server, &["delete", "--url", &c.url]).output();
    }
}

#[test]
fn lost_journal_torn_line_and_second_instance() {
    let server = server("Xandikos", "XANDIKOS");
    let s = Setup::new(server, &[25]);
    let first = s.sync();
    first.assert_ok();
    let created = first.count("Created");
    let before = etags(&s);

    // The journal is lost: everything is adopted, nothing duplicated or rewritten.
    std::fs::remove_file(s.state.join("state.jsonl")).unwrap();
    let r = s.sync();
    r.assert_ok();
    assert_eq!(r.count("Created"), 0);
    assert_eq!(r.dav_requests("PUT"), 0);
    assert_eq!(r.count("Unchanged"), created);
    assert_eq!(etags(&s), before);
    let objects: usize = s.dump().iter().map(|c| c.objects.len()).sum();
    assert_eq!(objects, created, "no duplicates");

    // A crash mid-append leaves half a line: tolerated with a warning.
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(s.state.join("state.jsonl"))
        .unwrap();
    f.write_all(b"{\"t\":\"item\",\"uid\":\"plane-iss").unwrap();
    drop(f);
    let r = s.sync();
    r.assert_ok();
    assert!(r.stderr.contains("WARN"), "{}", r.stderr);
    assert_eq!(r.count("Created"), 0);
    let r = s.sync();
    r.assert_ok();
    assert!(
        !r.stderr.contains("WARN"),
        "the torn line was repaired: {}",
        r.stderr
    );

    // A second instance on the same STATE_DIR refuses to start.
    let mut daemon = std::process::Command::new(env!("CARGO_BIN_EXE_calplanebot"))
        .arg("run")
        .env_clear()
        .envs(s.vars())
        .env("SYNC_INTERVAL_SECONDS", "3600")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(s.state.with_extension("daemon.log")).unwrap())
        .spawn()
        .unwrap();
    // Wait until the daemon holds the lock (it logs this line right after taking it).
    let log_path = s.state.with_extension("daemon.log");
    let mut started = false;
    for _ in 0..200 {
        if std::fs::read_to_string(&log_path).is_ok_and(|l| l.contains("syncing every")) {
            started = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let r = s.sync();
    daemon.kill().unwrap();
    daemon.wait().unwrap();
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    let _ = std::fs::remove_file(&log_path);
    assert!(started, "the daemon did not start; its log:\n{log}");
    assert_ne!(r.code, 0, "the second instance should have been refused");
    let last = r.stderr.lines().last().unwrap_or("");
    assert!(
        last.contains("another calplanebot is running"),
        "{}",
        r.stderr
    );
}

#[test]
fn user_alarm_survives_and_foreign_events_are_never_touched() {
    let server = server("Radicale", "RADICALE");
    let s = Setup::new(server.clone(), &[12]);
    s.sync().assert_ok();
    let cal = s.calendar(0);
    let ids = synced_items(&s, 2);
    let target = &by_uid(&cal)[&uid(&ids[0])];

    // The user adds a reminder in their calendar app.
    let with_alarm = target.ical.replace(
        "END:VEVENT",
        "BEGIN:VALARM\r\nACTION:DISPLAY\r\nDESCRIPTION:Reminder\r\nTRIGGER:-PT15M\r\nEND:VALARM\r\nEND:VEVENT",
    );
    let name = target.href.rsplit('/').next().unwrap();
    common::put_raw(&server, &cal.url, &with_alarm, Some(name), true);
    // …and an event of their own, in the same calendar.
    let own = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//user//EN\r\nBEGIN:VEVENT\r\nUID:dentist-1@example.com\r\nDTSTAMP:20261101T000000Z\r\nDTSTART;VALUE=DATE:20261130\r\nDTEND;VALUE=DATE:20261201\r\nSUMMARY:Dentist\r\nX-PLANE-WORK-ITEM-ID:not-really\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
    common::put_raw(&server, &cal.url, own, None, false);
    let own_before = by_uid(&s.calendar(0))["dentist-1@example.com"].clone();

    // The alarm edit alone is noticed but changes nothing.
    let r = s.sync();
    r.assert_ok();
    assert_eq!(r.dav_requests("PUT"), 0, "{}", r.stdout);

    s.fake.with_world(|w| {
        w.rename(&ids[0], "Renamed after the alarm");
        w.delete(&ids[1]);
    });
    let r = s.run(&["--once", "--full"]);
    r.assert_ok();
    assert_eq!(r.count("Updated"), 1);
    assert_eq!(r.count("Deleted"), 1);
    let after = by_uid(&s.calendar(0));
    let updated = &after[&uid(&ids[0])];
    assert!(updated
        .prop("SUMMARY")
        .unwrap()
        .ends_with("Renamed after the alarm"));
    assert_eq!(
        updated.alarms, 1,
        "the user's VALARM must survive:\n{}",
        updated.ical
    );
    let own_after = &after["dentist-1@example.com"];
    assert_eq!(own_after.etag, own_before.etag, "foreign event untouched");
    assert_eq!(own_after.prop("SUMMARY").as_deref(), Some("Dentist"));
}

/// The seed (Python CalPlaneBot) made "Plane: {project}" calendars and put events with our
/// UID scheme at hrefs of its own choosing: both are adopted, nothing is duplicated.
fn seed_calendar_and_events_are_adopted(server: Server) {
    let s = Setup::new(server.clone(), &[8]);
    let world = s.fake.world();
    let want = expected_events(&world, &s.fake.base_url(), 0);
    // Make the calendar as the seed did (by display name, at a path of its own).
    let home = dump_home(&server);
    let out = common::verifier(
        &server,
        &[
            "mkcal",
            "--url",
            &home,
            "--name",
            &format!("Plane: {}", world.projects[0].name),
            "--slug",
            &format!("seed-{}", s.tag.to_lowercase()),
        ],
    )
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cal = s.calendar(0);
    let seeded = &want[0];
    let ics = format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//CalPlaneBot//EN\r\nBEGIN:VEVENT\r\nUID:{}\r\nDTSTAMP:20261101T000000Z\r\nDTSTART;VALUE=DATE:20260101\r\nSUMMARY:old seed title\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
        seeded.uid
    );
    common::put_raw(
        &server,
        &cal.url,
        &ics,
        Some("seed-made-this-name.ics"),
        false,
    );

    let r = s.sync();
    r.assert_ok();
    assert_eq!(
        r.count("Created"),
        want.len() - 1,
        "{}\n{}",
        r.stdout,
        r.stderr
    );
    assert_eq!(r.count("Updated"), 1);
    let cal = s.calendar(0);
    assert_eq!(
        cal.objects.len(),
        want.len(),
        "no duplicate calendar or event"
    );
    let adopted = &by_uid(&cal)[&seeded.uid];
    assert!(
        adopted.href.ends_with("/seed-made-this-name.ics"),
        "{}",
        adopted.href
    );
    assert_eq!(
        adopted.prop("SUMMARY").as_deref(),
        Some(seeded.summary.as_str())
    );
    assert_eq!(
        adopted.prop("DTSTART").as_deref(),
        Some(seeded.date.as_str())
    );
    let r = s.sync();
    r.assert_ok();
    assert_eq!(r.dav_requests("PUT"), 0);
}

fn dump_home(server: &Server) -> String {
    let prefix = match server.name {
        "Radicale" => "RADICALE",
        "Xandikos" => "XANDIKOS",
        "Cyrus" => "CYRUS",
        _ => "SABRE",
    };
    common::var(&format!("{prefix}_HOME")).expect("home URL in servers.env")
}

#[test]
fn seed_adoption_radicale() {
    seed_calendar_and_events_are_adopted(server("Radicale", "RADICALE"));
}

#[test]
fn seed_adoption_xandikos() {
    seed_calendar_and_events_are_adopted(server("Xandikos", "XANDIKOS"));
}

#[test]
fn seed_adoption_sabredav() {
    seed_calendar_and_events_are_adopted(server("SabreDAV (Digest)", "SABRE"));
}

/// A server may answer a PUT without an ETag; the ETag is then read with PROPFIND, so the
/// next sync still sees nothing to do.
#[test]
fn put_without_etag_is_followed_by_a_propfind() {
    let radicale = server("Radicale", "RADICALE");
    let proxy = common::proxy::Proxy::start(&radicale.url);
    let s = Setup::new(
        Server {
            url: proxy.url(),
            ..radicale
        },
        &[6],
    );
    proxy.add(
        "PUT",
        "/",
        common::proxy::Fault::DropHeader("ETag".into()),
        1000,
    );
    let r = s.sync();
    r.assert_ok();
    let created = r.count("Created");
    assert!(created > 0);
    // Each ETag-less PUT was followed by a PROPFIND of that object.
    let object_propfinds = proxy
        .log
        .lock()
        .unwrap()
        .iter()
        .filter(|(m, p)| m == "PROPFIND" && p.ends_with(".ics"))
        .count();
    assert_eq!(object_propfinds, created, "{}", r.stdout);
    let r = s.sync();
    r.assert_ok();
    assert_eq!(r.dav_requests("PUT"), 0, "{}", r.stdout);
    assert_eq!(r.count("Unchanged"), created);
}

/// A calendar we already know gains an event with our UID at a foreign href (e.g. the old
/// Python bot still running during a migration). Radicale refuses our copy with 409,
/// Xandikos with 412: the object is found by a calendar-query on its UID and adopted.
fn uid_conflict_on_create_is_adopted(server: Server) {
    let s = Setup::new(server.clone(), &[4]);
    // Its calendars go when the test ends, passed or not; and the item gets an id of its
    // own, so that a calendar left by an interrupted run cannot hold its UID (Cyrus keeps
    // UIDs unique across a user's calendars).
    let _cleanup = DeleteCalendars(server.clone(), s.tag.clone());
    s.sync().assert_ok();
    let ident = s.fake.world().projects[0].identifier.clone();
    let id = s.fake.with_world(|w| {
        let id = add_unique_item(w, &ident, "Made by the old bot too");
        w.set_target_date(&id, Some("2027-03-03"));
        id
    });
    let cal = s.calendar(0);
    let ics = format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//CalPlaneBot//EN\r\nBEGIN:VEVENT\r\nUID:{}\r\nDTSTAMP:20261101T000000Z\r\nDTSTART;VALUE=DATE:20270303\r\nSUMMARY:old\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
        uid(&id)
    );
    common::put_raw(&server, &cal.url, &ics, Some("old-bot.ics"), false);
    let r = s.sync();
    r.assert_ok();
    assert_eq!(r.count("Created"), 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(r.count("Updated"), 1);
    assert!(
        r.stderr.contains("adopting"),
        "found through calendar-query: {}",
        r.stderr
    );
    let objects = by_uid(&s.calendar(0));
    let adopted = &objects[&uid(&id)];
    assert!(adopted.href.ends_with("/old-bot.ics"));
    assert!(adopted
        .prop("SUMMARY")
        .unwrap()
        .ends_with("Made by the old bot too"));
    let r = s.sync();
    r.assert_ok();
    assert_eq!(r.dav_requests("PUT"), 0);
}

#[test]
fn uid_conflict_radicale() {
    uid_conflict_on_create_is_adopted(server("Radicale", "RADICALE"));
}

#[test]
fn uid_conflict_xandikos() {
    uid_conflict_on_create_is_adopted(server("Xandikos", "XANDIKOS"));
}

/// Incremental cycles take the project list from the journal; a project Plane stops
/// listing is forgotten at the next full listing instead of failing every cycle after.
#[test]
fn a_vanished_project_is_forgotten() {
    let server = server("Radicale", "RADICALE");
    let s = Setup::new(server, &[6, 6]);
    s.sync().assert_ok();
    s.fake.clear_requests();
    let r = s.sync();
    r.assert_ok();
    let listed_projects = |s: &Setup| {
        s.fake
            .requests()
            .iter()
            .filter(|q| q.path.ends_with("/projects/"))
            .count()
    };
    assert_eq!(
        listed_projects(&s),
        0,
        "incremental: projects come from the journal"
    );
    let gone = s.fake.with_world(|w| w.projects.remove(1).id);
    s.run(&["--once", "--full"]).assert_ok();
    s.fake.clear_requests();
    let r = s.sync();
    r.assert_ok();
    assert!(
        !s.fake.requests().iter().any(|q| q.path.contains(&gone)),
        "{:?}",
        s.fake.requests()
    );
    assert_eq!(r.count("Projects"), 1, "{}", r.stdout);
}

/// Real Plane (CE 1.3.1) still lists an archived project, but none of its work items:
/// taken at its word, every event of it would look deleted. It is forgotten like a deleted
/// project, and its events stay.
#[test]
fn an_archived_project_keeps_its_events() {
    let server = server("Radicale", "RADICALE");
    let s = Setup::new(server, &[6, 6]);
    s.sync().assert_ok();
    let before = s.calendar(1).objects.len();
    assert!(before > 0);
    let archived = s.fake.with_world(|w| {
        w.projects[1].archived_at = Some(1_777_000_000_000_000);
        w.projects[1].id.clone()
    });
    let r = s.run(&["--once", "--full"]);
    r.assert_ok();
    assert_eq!(r.count("Deleted"), 0, "{}", r.stdout);
    assert_eq!(s.calendar(1).objects.len(), before);
    s.fake.clear_requests();
    let r = s.sync();
    r.assert_ok();
    assert!(!s.fake.requests().iter().any(|q| q.path.contains(&archived)));
    assert_eq!(r.count("Projects"), 1, "{}", r.stdout);
}

/// Cyrus IMAP 3.6 (issue 9, item 14).
#[test]
fn full_sync_cyrus() {
    full_sync_then_idle(server("Cyrus", "CYRUS"));
}

#[test]
fn seed_adoption_cyrus() {
    seed_calendar_and_events_are_adopted(server("Cyrus", "CYRUS"));
}

#[test]
fn uid_conflict_cyrus() {
    uid_conflict_on_create_is_adopted(server("Cyrus", "CYRUS"));
}
