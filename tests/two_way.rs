//! Calendar → Plane: an independent CalDAV client (PyPI `caldav`, through
//! tests/caldav_verify.py) edits objects like a calendar app; after one `calplanebot --once`
//! the fake Plane shows exactly those changes, one PATCH per edited item, and further
//! cycles write nothing on either side.

mod common;

use std::collections::BTreeMap;

use common::fake_plane::RequestLog;
use common::{edit, objects, server, verifier, Object, Server, Setup};

fn delete(server: &Server, o: &Object) {
    let out = verifier(server, &["delete", "--url", &o.url])
        .output()
        .expect("run verifier");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The PATCHes Plane received since the log was cleared, by work item id.
fn patches(s: &Setup) -> BTreeMap<String, Vec<RequestLog>> {
    let mut out: BTreeMap<String, Vec<RequestLog>> = BTreeMap::new();
    for r in s
        .fake
        .requests()
        .into_iter()
        .filter(|r| r.method == "PATCH")
    {
        let id = r
            .path
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or("");
        out.entry(id.to_string()).or_default().push(r);
    }
    out
}

/// `[KEY-n] ` of a SUMMARY.
fn key_prefix(o: &Object) -> String {
    let summary = o.prop("SUMMARY").unwrap_or_default();
    match summary.find("] ") {
        Some(i) => summary[..i + 2].to_string(),
        None => String::new(),
    }
}

/// Three more cycles: no calendar write, no Plane write.
fn assert_idle(s: &Setup) {
    s.fake.clear_requests();
    for n in 0..3 {
        let r = s.sync();
        r.assert_ok();
        let writes = r.dav_requests("PUT") + r.dav_requests("DELETE");
        assert_eq!(writes, 0, "cycle {n} wrote to the calendar:\n{}", r.stdout);
    }
    let writes: Vec<String> = s
        .fake
        .requests()
        .into_iter()
        .filter(|r| r.method != "GET")
        .map(|r| format!("{} {} {}", r.method, r.path, r.body))
        .collect();
    assert!(writes.is_empty(), "Plane was written: {writes:?}");
}

fn event_edits_reach_plane(server: Server) {
    let mut s = Setup::new(server.clone(), &[20]);
    s.env.push(("CALENDAR_DELETE".into(), "clear-date".into()));
    s.sync().assert_ok();
    let before = objects(&s);
    let ids: Vec<String> = before.keys().take(4).cloned().collect();
    assert_eq!(ids.len(), 4, "not enough events");
    let (moved, renamed, deleted, rewritten) = (&ids[0], &ids[1], &ids[2], &ids[3]);

    edit(&server, &before[moved], &["--move-to", "2027-03-15"]);
    let new_name = format!(
        "{}Renamed in the calendar, ünïcödé",
        key_prefix(&before[renamed])
    );
    edit(&server, &before[renamed], &["--summary", &new_name]);
    delete(&server, &before[deleted]);
    edit(&server, &before[rewritten], &["--rewrite-only"]);

    s.fake.clear_requests();
    let r = s.sync();
    r.assert_ok();
    assert_eq!(r.count("Conflicts"), 0, "{}", r.stdout);

    let world = s.fake.world();
    let item = |id: &str| world.item(id).unwrap().clone();
    assert_eq!(item(moved).target_date.as_deref(), Some("2027-03-15"));
    assert_eq!(item(renamed).name, "Renamed in the calendar, ünïcödé");
    assert_eq!(
        item(deleted).target_date,
        None,
        "{}\n{}",
        r.stdout,
        r.stderr
    );
    let p = patches(&s);
    assert_eq!(
        p.keys().collect::<Vec<_>>(),
        {
            let mut want = vec![moved, renamed, deleted];
            want.sort();
            want
        },
        "one PATCH per edited item, none for the rewrite: {p:?}"
    );
    assert!(p.values().all(|v| v.len() == 1), "{p:?}");
    assert_eq!(p[moved][0].body, r#"{"target_date":"2027-03-15"}"#);
    assert_eq!(
        p[renamed][0].body,
        r#"{"name":"Renamed in the calendar, ünïcödé"}"#
    );
    assert_eq!(p[deleted][0].body, r#"{"target_date":null}"#);
    for id in [moved, renamed, deleted, rewritten] {
        assert!(world.item(id).is_some(), "{id} still exists in Plane");
    }

    // The calendar shows the same: the moved event on its day, the renamed one with our
    // prefix, the deleted one not recreated.
    let after = objects(&s);
    assert_eq!(after[moved].prop("DTSTART").as_deref(), Some("2027-03-15"));
    assert_eq!(
        after[renamed].prop("SUMMARY").as_deref(),
        Some(new_name.as_str())
    );
    assert!(!after.contains_key(deleted));
    assert_idle(&s);
}

fn task_edits_reach_plane(server: Server) {
    let mut s = Setup::new(server.clone(), &[10]);
    s.env.push(("ITEM_KIND".into(), "vtodo".into()));
    s.sync().assert_ok();
    let before = objects(&s);
    let open: Vec<String> = before
        .iter()
        .filter(|(_, o)| o.prop("STATUS").as_deref() != Some("COMPLETED"))
        .filter(|(_, o)| o.prop("STATUS").as_deref() != Some("CANCELLED"))
        .map(|(id, _)| id.clone())
        .take(2)
        .collect();
    assert_eq!(open.len(), 2, "not enough open tasks");
    let group = |s: &Setup, id: &str| {
        let w = s.fake.world();
        let p = w.project_of(id).unwrap().clone();
        let state = w.item(id).unwrap().state.clone();
        p.state(&state).unwrap().group.clone()
    };

    let untouched = group(&s, &open[1]);
    edit(&server, &before[&open[0]], &["--complete"]);
    s.fake.clear_requests();
    s.sync().assert_ok();
    assert_eq!(group(&s, &open[0]), "completed");
    assert_eq!(group(&s, &open[1]), untouched);
    let p = patches(&s);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[&open[0]][0].body.starts_with(r#"{"state":""#), "{p:?}");
    assert_idle(&s);

    let now = objects(&s);
    edit(&server, &now[&open[0]], &["--uncomplete"]);
    s.fake.clear_requests();
    s.sync().assert_ok();
    assert_eq!(group(&s, &open[0]), "unstarted");
    assert_eq!(patches(&s).len(), 1);
    assert_idle(&s);
}

#[test]
fn event_edits_radicale() {
    event_edits_reach_plane(server("Radicale", "RADICALE"));
}

#[test]
fn event_edits_xandikos() {
    event_edits_reach_plane(server("Xandikos", "XANDIKOS"));
}

#[test]
fn event_edits_sabredav_digest() {
    event_edits_reach_plane(server("SabreDAV", "SABRE"));
}

#[test]
fn event_edits_apache_digest() {
    event_edits_reach_plane(server("Apache Digest → Radicale", "APACHE_DIGEST"));
}

#[test]
fn task_edits_radicale() {
    task_edits_reach_plane(server("Radicale", "RADICALE"));
}

#[test]
fn task_edits_xandikos() {
    task_edits_reach_plane(server("Xandikos", "XANDIKOS"));
}

#[test]
fn task_edits_sabredav_digest() {
    task_edits_reach_plane(server("SabreDAV", "SABRE"));
}

#[test]
fn task_edits_apache_digest() {
    task_edits_reach_plane(server("Apache Digest → Radicale", "APACHE_DIGEST"));
}

/// The same field renamed on both sides between two cycles: CONFLICT_POLICY decides, both
/// sides end with the winner's value, and the conflict is counted.
fn conflict_round(
    s: &mut Setup,
    server: &Server,
    id: &str,
    policy: &str,
    plane_last: bool,
) -> String {
    s.env.retain(|(k, _)| k != "CONFLICT_POLICY");
    s.env.push(("CONFLICT_POLICY".into(), policy.into()));
    let object = objects(s)[id].clone();
    let prefix = key_prefix(&object);
    let rename_in_plane = || {
        s.fake
            .with_world(|w| w.rename(id, &format!("{policy}: Plane's name")))
    };
    if plane_last {
        edit(
            server,
            &object,
            &["--summary", &format!("{prefix}{policy}: calendar's name")],
        );
        // LAST-MODIFIED has whole seconds: make Plane's edit clearly later.
        std::thread::sleep(std::time::Duration::from_millis(1100));
        rename_in_plane();
    } else {
        rename_in_plane();
        std::thread::sleep(std::time::Duration::from_millis(1100));
        edit(
            server,
            &object,
            &["--summary", &format!("{prefix}{policy}: calendar's name")],
        );
    }
    let r = s.sync();
    r.assert_ok();
    assert_eq!(r.count("Conflicts"), 1, "{}", r.stdout);
    assert!(r.stderr.contains("changed on both sides"), "{}", r.stderr);
    let plane = s.fake.world().item(id).unwrap().name.clone();
    let calendar = objects(s)[id].prop("SUMMARY").unwrap_or_default();
    assert_eq!(calendar, format!("{prefix}{plane}"), "both sides agree");
    assert_idle(s);
    plane
}

#[test]
fn conflicts_follow_the_policy_end_to_end() {
    let server = server("Radicale", "RADICALE");
    let mut s = Setup::new(server.clone(), &[20]);
    s.fake.with_world(|w| w.real_clock = true);
    s.sync().assert_ok();
    let ids: Vec<String> = objects(&s).keys().take(4).cloned().collect();
    assert_eq!(ids.len(), 4, "not enough events");
    let won = |name: &str, policy: &str| {
        if name.ends_with("Plane's name") {
            "Plane"
        } else {
            assert_eq!(name, format!("{policy}: calendar's name"));
            "calendar"
        }
    };
    let name = conflict_round(&mut s, &server, &ids[0], "plane", false);
    assert_eq!(won(&name, "plane"), "Plane");
    let name = conflict_round(&mut s, &server, &ids[1], "calendar", true);
    assert_eq!(won(&name, "calendar"), "calendar");
    let name = conflict_round(&mut s, &server, &ids[2], "newest", false);
    assert_eq!(
        won(&name, "newest"),
        "calendar",
        "the calendar edit came last"
    );
    let name = conflict_round(&mut s, &server, &ids[3], "newest", true);
    assert_eq!(won(&name, "newest"), "Plane", "the Plane edit came last");
}

#[test]
fn new_calendar_events_become_work_items() {
    let server = server("Radicale", "RADICALE");
    let mut s = Setup::new(server.clone(), &[6]);
    s.env.push(("CREATE_FROM_CALENDAR".into(), "true".into()));
    s.sync().assert_ok();
    let cal = s.calendar(0);
    let out = verifier(
        &server,
        &[
            "new",
            "--url",
            &cal.url,
            "--uid",
            "phone-dentist-1",
            "--summary",
            "Dentist",
            "--date",
            "2027-02-03",
        ],
    )
    .output()
    .expect("run verifier");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let items_before = s.fake.world().projects[0].items.len();

    s.fake.clear_requests();
    let r = s.sync();
    r.assert_ok();
    assert!(
        r.stdout.contains("To Plane:  0 updated, 1 created"),
        "{}",
        r.stdout
    );
    let world = s.fake.world();
    let p = &world.projects[0];
    assert_eq!(p.items.len(), items_before + 1);
    let made = p
        .items
        .iter()
        .find(|i| i.external_id.as_deref() == Some("phone-dentist-1"))
        .expect("a work item with the event's UID as external id");
    assert_eq!(made.name, "Dentist");
    assert_eq!(made.target_date.as_deref(), Some("2027-02-03"));
    assert_eq!(made.external_source.as_deref(), Some("calplanebot"));
    let posts = s
        .fake
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .count();
    assert_eq!(posts, 1);

    // The next cycle renders the item into the event: same UID and file, our prefix.
    s.sync().assert_ok();
    let event = s
        .calendar(0)
        .objects
        .into_iter()
        .find(|o| o.uid == "phone-dentist-1")
        .expect("the event keeps its UID");
    let key = format!("[{}-{}] Dentist", p.identifier, made.sequence_id);
    assert_eq!(event.prop("SUMMARY").as_deref(), Some(key.as_str()));
    assert_idle(&s);
    assert_eq!(
        s.fake.world().projects[0].items.len(),
        items_before + 1,
        "no duplicate"
    );
}

/// Cyrus IMAP 3.6 (issue 9, item 14).
#[test]
fn event_edits_cyrus() {
    event_edits_reach_plane(server("Cyrus", "CYRUS"));
}

#[test]
fn task_edits_cyrus() {
    task_edits_reach_plane(server("Cyrus", "CYRUS"));
}
