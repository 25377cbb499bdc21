//! What real servers do to our objects, and what a client's change of form means
//! (issue 9, items 9 and 10). Cyrus IMAP rewrites CATEGORIES on the way out: `docs\, misc`
//! becomes two properties on GET and `docs, misc` unescaped in a REPORT; Radicale keeps
//! what it was given and is the control. An independent client (tests/caldav_verify.py)
//! edits objects like a calendar app; the real binary syncs against the fake Plane.

mod common;

use common::{edit, next_day, objects, put_raw, server, verifier, Object, Server, Setup};

/// The label name with a comma that Cyrus splits.
const COMMA_LABEL: &str = "docs, misc";

/// Deletes a test's calendar when the test ends, also when it fails.
struct Cleanup {
    server: Server,
    url: String,
}

impl Cleanup {
    /// For the calendar of project 0 (after the first sync made it).
    fn calendar(s: &Setup) -> Cleanup {
        Cleanup {
            server: s.server.clone(),
            url: s.calendar(0).url,
        }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = verifier(&self.server, &["delete", "--url", &self.url]).output();
    }
}

/// Plane writes since the log was cleared, as `(method, work item id, body)`.
fn plane_writes(s: &Setup) -> Vec<(String, String, String)> {
    s.fake
        .requests()
        .into_iter()
        .filter(|r| r.method != "GET")
        .map(|r| {
            let id = r
                .path
                .trim_end_matches('/')
                .rsplit('/')
                .next()
                .unwrap_or("");
            (r.method.clone(), id.to_string(), r.body.clone())
        })
        .collect()
}

/// One more cycle writes nothing anywhere.
fn assert_idle(s: &Setup, after: &str) {
    s.fake.clear_requests();
    let r = s.sync();
    r.assert_ok();
    assert_eq!(
        r.dav_requests("PUT") + r.dav_requests("DELETE"),
        0,
        "{}: the cycle after {after} wrote to the calendar:\n{}",
        s.server.name,
        r.stdout
    );
    assert_eq!(plane_writes(s), vec![], "{}: after {after}", s.server.name);
}

/// Gives every dated item of project 0 the labels `docs, misc` and `bug`, before the first
/// sync, so each event carries `CATEGORIES:docs\, misc,bug` (in Plane's order).
fn label_everything(s: &Setup) {
    s.fake.with_world(|w| {
        let p = &mut w.projects[0];
        assert!(
            p.labels.len() >= 2,
            "the generated project needs two labels"
        );
        p.labels[0].name = COMMA_LABEL.into();
        p.labels[1].name = "bug".into();
        let ids = vec![p.labels[0].id.clone(), p.labels[1].id.clone()];
        for item in &mut p.items {
            item.labels = ids.clone();
        }
    });
}

/// Item 9: CATEGORIES as the server serves them back (split, unescaped, re-joined by a
/// client) are the labels we wrote, not an edit: a client's rewrite costs no calendar
/// write, and a client's move of such an event costs exactly one PATCH to Plane.
fn categories_are_no_edit(server: Server, server_splits: bool) {
    let s = Setup::new(server.clone(), &[8]);
    label_everything(&s);
    s.sync().assert_ok();
    let _cleanup = Cleanup::calendar(&s);
    let before = objects(&s);
    let ids: Vec<String> = before.keys().take(2).cloned().collect();
    assert_eq!(ids.len(), 2, "not enough events");
    let (rewritten, moved) = (&before[&ids[0]], &before[&ids[1]]);
    let categories = rewritten
        .ical
        .lines()
        .filter(|l| l.starts_with("CATEGORIES"))
        .count();
    assert_eq!(
        categories > 1,
        server_splits,
        "{}: the premise (how the server serves CATEGORIES) changed:\n{}",
        server.name,
        rewritten.ical
    );
    let mut labels = rewritten.list("CATEGORIES");
    labels.sort();
    assert_eq!(
        labels.len(),
        if server_splits { 3 } else { 2 },
        "{labels:?}"
    );

    // Another client rewrites the object (reorders, splits CATEGORIES, refolds) and
    // moves the other one by a week.
    edit(&server, rewritten, &["--rewrite-only"]);
    let date = moved.prop("DTSTART").expect("DTSTART");
    let mut to = date.clone();
    for _ in 0..7 {
        to = next_day(&to);
    }
    edit(&server, moved, &["--move-to", &to]);

    s.fake.clear_requests();
    let r = s.sync();
    r.assert_ok();
    assert_eq!(r.count("Conflicts"), 0, "{}", r.stdout);
    assert_eq!(
        r.dav_requests("PUT") + r.dav_requests("DELETE"),
        0,
        "{}: calendar edits that kept the labels need no calendar write:\n{}\n{}",
        server.name,
        r.stdout,
        r.stderr
    );
    let writes = plane_writes(&s);
    assert_eq!(writes.len(), 1, "{}: {writes:?}", server.name);
    assert_eq!((writes[0].0.as_str(), &writes[0].1), ("PATCH", &ids[1]));
    let world = s.fake.world();
    let item = world.item(&ids[1]).unwrap();
    assert_eq!(item.target_date.as_deref(), Some(to.as_str()));
    assert_idle(&s, "the categories round trip");
}

/// Europe/Berlin, as a calendar app sends it along with a TZID.
const BERLIN: &str = "BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\nBEGIN:STANDARD\r\n\
DTSTART:19701025T030000\r\nRRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\nTZOFFSETFROM:+0200\r\n\
TZOFFSETTO:+0100\r\nTZNAME:CET\r\nEND:STANDARD\r\nBEGIN:DAYLIGHT\r\n\
DTSTART:19700329T020000\r\nRRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r\nTZOFFSETFROM:+0100\r\n\
TZOFFSETTO:+0200\r\nTZNAME:CEST\r\nEND:DAYLIGHT\r\nEND:VTIMEZONE";

/// Rewrites an all-day event on `day` as 09:00 in Europe/Berlin until midnight, the way
/// the issue saw it: DTSTART and DTEND still fall on the days we wrote, only their form
/// changed. PUT without If-Match, as some apps do.
fn make_timed(s: &Setup, o: &Object, day: &str) {
    let (start, end) = (day.replace('-', ""), next_day(day).replace('-', ""));
    let mut lines: Vec<String> = Vec::new();
    for line in o.ical.lines().map(|l| l.trim_end_matches('\r')) {
        if line == "BEGIN:VEVENT" {
            lines.push(BERLIN.to_string());
        }
        lines.push(if line.starts_with("DTSTART") {
            format!("DTSTART;TZID=Europe/Berlin:{start}T090000")
        } else if line.starts_with("DTEND") {
            format!("DTEND;TZID=Europe/Berlin:{end}T000000")
        } else {
            line.to_string()
        });
    }
    let name = o.href.rsplit('/').next().expect("object name");
    let calendar = s.calendar(0).url;
    put_raw(&s.server, &calendar, &lines.join("\r\n"), Some(name), true);
}

/// Item 10: a client makes two all-day events timed: one on the same day in a TZID (its
/// DTSTART and DTEND dates unchanged), one also moved, in UTC (tests/caldav_verify.py).
/// calplanebot notices both: the moved date goes to Plane, and both events become all-day
/// again (Plane has dates only; DTSTART/DTEND are ours). Nothing else is written, and the
/// next cycle is idle.
fn timed_edits_are_seen(server: Server) {
    let s = Setup::new(server.clone(), &[8]);
    // No CATEGORIES, so that only the form of the dates differs from what we wrote.
    s.fake.with_world(|w| {
        w.projects[0]
            .items
            .iter_mut()
            .for_each(|i| i.labels.clear())
    });
    s.sync().assert_ok();
    let _cleanup = Cleanup::calendar(&s);
    let before = objects(&s);
    let ids: Vec<String> = before.keys().take(2).cloned().collect();
    assert_eq!(ids.len(), 2, "not enough events");
    let (same_day, moved) = (&ids[0], &ids[1]);
    let same_date = before[same_day].prop("DTSTART").expect("DTSTART");
    let moved_to = next_day(&before[moved].prop("DTSTART").expect("DTSTART"));

    make_timed(&s, &before[same_day], &same_date);
    let utc = ["--move-to", &moved_to, "--timed", "14:30", "--utc"];
    edit(&server, &before[moved], &utc);
    let timed = objects(&s);
    for id in [same_day, moved] {
        assert_eq!(
            timed[id].value_types.get("DTSTART").map(String::as_str),
            Some("DATE-TIME"),
            "{}: the edit did not land:\n{}",
            server.name,
            timed[id].ical
        );
    }

    s.fake.clear_requests();
    let r = s.sync();
    r.assert_ok();
    assert_eq!(r.count("Conflicts"), 0, "{}", r.stdout);
    assert_eq!(r.count("Updated"), 2, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(r.dav_requests("PUT"), 2, "{}", r.stdout);
    let writes = plane_writes(&s);
    assert_eq!(writes.len(), 1, "{}: {writes:?}", server.name);
    assert_eq!(
        (writes[0].0.as_str(), &writes[0].1),
        ("PATCH", moved),
        "only the moved date goes to Plane"
    );
    let world = s.fake.world();
    assert_eq!(
        world.item(moved).unwrap().target_date.as_deref(),
        Some(moved_to.as_str())
    );
    assert_eq!(
        world.item(same_day).unwrap().target_date.as_deref(),
        Some(same_date.as_str()),
        "a time on the same day is the same date for Plane"
    );

    let after = objects(&s);
    for (id, date) in [(same_day, &same_date), (moved, &moved_to)] {
        let o = &after[id];
        let form = (
            o.value_types.get("DTSTART").map(String::as_str),
            o.value_types.get("DTEND").map(String::as_str),
        );
        assert_eq!(
            form,
            (Some("DATE"), Some("DATE")),
            "{}:\n{}",
            server.name,
            o.ical
        );
        assert_eq!(o.prop("DTSTART").as_deref(), Some(date.as_str()));
        assert_eq!(o.prop("DTEND"), Some(next_day(date)));
    }
    assert_idle(&s, "making the events all-day again");
}

#[test]
fn categories_cyrus() {
    categories_are_no_edit(server("Cyrus", "CYRUS"), true);
}

#[test]
fn categories_radicale() {
    categories_are_no_edit(server("Radicale", "RADICALE"), false);
}

#[test]
fn timed_edits_cyrus() {
    timed_edits_are_seen(server("Cyrus", "CYRUS"));
}

#[test]
fn timed_edits_radicale() {
    timed_edits_are_seen(server("Radicale", "RADICALE"));
}

/// Items 7 and 8 against the real Cyrus: its root answers an anonymous PROPFIND with 207
/// and `<unauthenticated/>`, and `/dav/` is a path that must be kept as given. From
/// either URL calplanebot logs in and finds alice's calendar home; without a user name it
/// fails instead of calling `/` a home.
#[test]
fn cyrus_root_and_dav_path_find_the_home() {
    let cyrus = server("Cyrus", "CYRUS");
    let root = common::var("CYRUS_ROOT").expect("CYRUS_ROOT (tests/servers.sh writes it)");
    let home = common::var("CYRUS_HOME").expect("CYRUS_HOME (tests/servers.sh writes it)");
    let home_path = home
        .split_once("//")
        .map_or("", |(_, r)| &r[r.find('/').unwrap_or(0)..]);
    for url in [root.clone(), format!("{root}dav/")] {
        let at = Server {
            url: url.clone(),
            ..cyrus.clone()
        };
        let s = Setup::new(at, &[3]);
        let r = s.run(&["test-caldav"]);
        assert_eq!(r.code, 0, "{url}: {}{}", r.stdout, r.stderr);
        assert!(
            r.stdout.contains(&format!("Calendar home: {home_path}")),
            "{url}: {}",
            r.stdout
        );
        let r = s.sync();
        r.assert_ok();
        let mine: Vec<_> = common::dump(&cyrus, &cyrus.url)
            .into_iter()
            .filter(|c| c.name.starts_with(&format!("Plane: {} ", s.tag)))
            .collect();
        assert_eq!(mine.len(), 1, "{url}: one calendar in alice's home");
        let _cleanup = Cleanup {
            server: cyrus.clone(),
            url: mine[0].url.clone(),
        };
        assert_eq!(mine[0].objects.len(), r.count("Created"), "{url}");
    }
    let anonymous = Server {
        url: root,
        user: String::new(),
        password: String::new(),
        ..cyrus
    };
    let s = Setup::new(anonymous, &[1]);
    let r = s.run(&["test-caldav"]);
    assert_ne!(r.code, 0, "{}", r.stdout);
    assert!(!r.stdout.contains("connection OK"), "{}", r.stdout);
    assert!(r.stderr.contains("CALDAV_USERNAME"), "{}", r.stderr);
}
