//! Bad input and failing peers: wrong credentials, Plane answering 500/garbage/429 or
//! timing out, a CalDAV server (real Radicale behind a fault-injecting proxy) answering
//! 500, invalid XML or invalid iCalendar. Each gives a clear error, loses nothing, and the
//! other items still sync.

mod common;

use std::time::Duration;

use common::fake_plane::Fault;
use common::proxy::{Fault as DavFault, Proxy};
use common::{server, Run, Server, Setup};

fn total_objects(s: &Setup) -> usize {
    s.dump().iter().map(|c| c.objects.len()).sum()
}

fn last_line(r: &Run) -> String {
    r.stderr.lines().last().unwrap_or("").to_string()
}

#[test]
fn wrong_credentials_give_one_line_errors_without_secrets() {
    let Some(radicale) = server("Radicale", "RADICALE") else {
        return;
    };
    let mut s = Setup::new(radicale, &[3]);
    s.env
        .push(("PLANE_API_TOKEN".into(), "plane_api_wrongtoken123".into()));
    let r = s.sync();
    assert_ne!(r.code, 0);
    let line = last_line(&r);
    assert!(
        line.starts_with("calplanebot: Plane rejected the API token"),
        "{line}"
    );
    assert!(line.contains("hint: check PLANE_API_TOKEN"), "{line}");
    assert!(!r.stderr.contains("wrongtoken123") && !r.stdout.contains("wrongtoken123"));

    s.env.clear();
    s.env
        .push(("CALDAV_PASSWORD".into(), "not-the-password-42".into()));
    let r = s.sync();
    assert_ne!(r.code, 0);
    let line = last_line(&r);
    assert!(
        line.contains("CalDAV login failed") && line.contains("CALDAV_PASSWORD"),
        "{line}"
    );
    assert!(!r.stderr.contains("not-the-password-42") && !r.stdout.contains("not-the-password-42"));

    s.env.clear();
    s.env
        .push(("CALDAV_URL".into(), "http://127.0.0.1:9/".into()));
    let r = s.sync();
    assert_ne!(r.code, 0);
    assert!(
        last_line(&r).contains("cannot reach the CalDAV server"),
        "{}",
        r.stderr
    );

    s.env.clear();
    s.env
        .push(("PLANE_WORKSPACE_SLUG".into(), "no-such-workspace".into()));
    let r = s.sync();
    assert_ne!(r.code, 0);
    assert!(
        last_line(&r).contains("check PLANE_WORKSPACE_SLUG"),
        "{}",
        r.stderr
    );
}

#[test]
fn wrong_digest_password_is_reported() {
    let Some(sabre) = server("SabreDAV (Digest)", "SABRE") else {
        return;
    };
    let s = Setup::new(
        Server {
            password: "wrong-digest-pw".into(),
            ..sabre
        },
        &[2],
    );
    let r = s.run(&["test-caldav"]);
    assert_ne!(r.code, 0);
    assert!(
        last_line(&r).contains("rejected user \"alice\""),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("wrong-digest-pw"));
}

#[test]
fn plane_failures_lose_nothing_and_other_projects_continue() {
    let Some(radicale) = server("Radicale", "RADICALE") else {
        return;
    };
    let mut s = Setup::new(radicale, &[15, 15, 15]);
    s.env.push(("HTTP_TIMEOUT_SECONDS".into(), "1".into()));
    s.sync().assert_ok();
    let synced = total_objects(&s);
    let world = s.fake.world();
    let pid = |i: usize| world.projects[i].id.clone();

    // A single 500 and a dropped connection are retried transparently.
    s.fake.with_world(|w| {
        w.push_fault_for("/work-items/", Fault::Status(500));
        w.push_fault_for("/projects/", Fault::Close);
    });
    let r = s.sync();
    r.assert_ok();
    assert!(r.stderr.contains("retrying"), "{}", r.stderr);

    // Project 0 keeps failing with 500, project 1 answers garbage, project 2 times out:
    // each is reported, nothing is deleted, and the next sync is clean.
    let (p0, p1, p2) = (pid(0), pid(1), pid(2));
    s.fake.with_world(|w| {
        for _ in 0..4 {
            w.push_fault_for(&format!("{p0}/work-items/"), Fault::Status(500));
            w.push_fault_for(
                &format!("{p2}/work-items/"),
                Fault::Delay(Duration::from_secs(3)),
            );
        }
        w.push_fault_for(&format!("{p1}/work-items/"), Fault::Garbage);
    });
    let r = s.sync();
    assert_ne!(r.code, 0, "{}", r.stdout);
    assert_eq!(r.count("Deleted"), 0);
    assert_eq!(r.count("Errors"), 3, "{}", r.stdout);
    assert!(r.stdout.contains("HTTP 500"), "{}", r.stdout);
    assert!(r.stdout.contains("not JSON"), "{}", r.stdout);
    assert!(r.stdout.contains("timed out"), "{}", r.stdout);
    assert!(last_line(&r).contains("3 error(s)"), "{}", r.stderr);
    assert_eq!(total_objects(&s), synced, "nothing lost");

    let r = s.sync();
    r.assert_ok();
    assert_eq!(
        r.count("Created") + r.count("Deleted") + r.count("Updated"),
        0
    );
}

#[test]
fn plane_rate_limit_is_honoured() {
    let Some(radicale) = server("Radicale", "RADICALE") else {
        return;
    };
    let s = Setup::new(radicale, &[5, 5, 5]);
    s.fake.with_world(|w| {
        w.rate_limit = 2;
        w.rate_window = Duration::from_secs(2);
    });
    let r = s.sync();
    r.assert_ok();
    assert!(r.stderr.contains("rate limit"), "{}", r.stderr);
    let limited = s.fake.requests().iter().filter(|q| q.status == 429).count();
    let created = r.count("Created");
    assert!(created > 0);
    // Pacing on X-RateLimit-Remaining avoids most 429s; any that happen are waited out.
    assert!(limited <= 3, "{limited} answers 429");
}

#[test]
fn a_malformed_work_item_is_skipped_without_deleting_its_event() {
    let Some(radicale) = server("Radicale", "RADICALE") else {
        return;
    };
    let s = Setup::new(radicale, &[10]);
    s.sync().assert_ok();
    let before = total_objects(&s);
    // Plane sends an item we cannot read (an empty id): the listing is incomplete, so
    // nothing may be deleted on the strength of it — not even that item's event.
    let victim = s.fake.world().projects[0]
        .visible_items()
        .into_iter()
        .find(|i| i.target_date.is_some())
        .unwrap()
        .id
        .clone();
    s.fake
        .with_world(|w| w.update(&victim, |i| i.id = String::new()));
    let r = s.sync();
    assert_ne!(r.code, 0);
    assert_eq!(r.count("Deleted"), 0, "{}", r.stdout);
    assert_eq!(total_objects(&s), before);
}

#[test]
fn caldav_garbage_and_failures_lose_nothing() {
    let Some(radicale) = server("Radicale", "RADICALE") else {
        return;
    };
    let proxy = Proxy::start(&radicale.url);
    let mut s = Setup::new(
        Server {
            url: proxy.url(),
            ..radicale
        },
        &[12, 12, 12],
    );
    s.env.push(("HTTP_TIMEOUT_SECONDS".into(), "1".into()));
    s.sync().assert_ok();
    let cal_path = |i: usize| format!("plane-{}{i}/", s.tag.to_lowercase());
    let items = |i: usize| -> Vec<String> {
        let w = s.fake.world();
        let p = &w.projects[i];
        p.visible_items()
            .into_iter()
            .filter(|x| x.target_date.is_some())
            .filter(|x| {
                let g = p
                    .state(&x.state)
                    .map(|st| st.group.clone())
                    .unwrap_or_default();
                g != "completed" && g != "cancelled"
            })
            .map(|x| x.id.clone())
            .collect()
    };
    let before = total_objects(&s);

    // Invalid XML in one calendar's listing; a 503 during discovery (retried).
    proxy.add(
        "PROPFIND",
        &cal_path(0),
        DavFault::Mangle("</".into(), "<".into()),
        1,
    );
    proxy.add("PROPFIND", "/", DavFault::Status(503), 1);
    let (a0, a1) = (items(0)[0].clone(), items(1)[0].clone());
    s.fake.with_world(|w| {
        w.rename(&a0, "changed while the server is broken");
        w.rename(&a1, "changed in a healthy calendar");
    });
    let r = s.sync();
    assert_ne!(r.code, 0);
    assert!(r.stdout.contains("invalid XML"), "{}", r.stdout);
    assert_eq!(
        r.count("Updated"),
        1,
        "the other calendars still sync: {}",
        r.stdout
    );
    assert_eq!(r.count("Deleted"), 0);
    assert_eq!(total_objects(&s), before);

    // Invalid iCalendar in the object we must merge into: left unchanged, reported.
    proxy.add(
        "REPORT",
        &cal_path(0),
        DavFault::Mangle(
            "BEGIN:VEVENT".into(),
            "BEGIN:VEVENT\nTHIS IS NOT ICALENDAR".into(),
        ),
        1,
    );
    let r = s.sync();
    assert_ne!(r.code, 0);
    assert!(r.stdout.contains("not valid iCalendar"), "{}", r.stdout);
    assert_eq!(r.count("Updated"), 0);
    let r = s.sync();
    r.assert_ok();
    assert_eq!(r.count("Updated"), 1, "repaired on the next clean cycle");

    // A 500 on one PUT and a timeout while reading another calendar's event. (An
    // unchanged calendar is not listed at all: its sync-token says so.)
    let new_item = s.fake.with_world(|w| {
        let ident = w.projects[0].identifier.clone();
        let id = w.add_item(&ident, "Created while PUT fails");
        w.set_target_date(&id, Some("2027-01-15"));
        id
    });
    let a2 = items(2)[0].clone();
    s.fake
        .with_world(|w| w.rename(&a2, "changed while its calendar is slow"));
    proxy.add("PUT", &new_item, DavFault::Status(500), 1);
    for _ in 0..3 {
        proxy.add(
            "REPORT",
            &cal_path(2),
            DavFault::Delay(Duration::from_secs(3)),
            1,
        );
    }
    let r = s.sync();
    assert_ne!(r.code, 0);
    assert!(r.stdout.contains("HTTP 500"), "{}", r.stdout);
    assert!(r.stdout.contains("timed out"), "{}", r.stdout);
    assert_eq!(r.count("Created") + r.count("Updated"), 0, "{}", r.stdout);
    assert_eq!(total_objects(&s), before);
    let r = s.sync();
    r.assert_ok();
    assert_eq!(r.count("Created"), 1, "{}", r.stdout);
    assert_eq!(r.count("Updated"), 1, "{}", r.stdout);
    assert_eq!(total_objects(&s), before + 1);
}

/// A server whose certificate comes from a private CA (a NAS): refused with a hint
/// without CALDAV_CA_FILE, trusted with it. There is no "insecure" switch.
#[test]
fn tls_with_a_private_ca() {
    let Some(tls) = server("Radicale over HTTPS", "RADICALE_TLS") else {
        return;
    };
    let ca = common::var("RADICALE_TLS_CA").expect("RADICALE_TLS_CA");
    let mut s = Setup::new(tls, &[5]);
    let r = s.run(&["test-caldav"]);
    assert_ne!(r.code, 0);
    let line = last_line(&r);
    assert!(
        line.contains("TLS error") && line.contains("CALDAV_CA_FILE"),
        "{line}"
    );

    s.env.push(("CALDAV_CA_FILE".into(), ca));
    s.run(&["test-caldav"]).assert_ok();
    let r = s.sync();
    r.assert_ok();
    assert!(r.count("Created") > 0);

    s.env
        .push(("CALDAV_CA_FILE".into(), "/etc/hostname".into()));
    let r = s.run(&["test-caldav"]);
    assert_ne!(r.code, 0);
    assert!(last_line(&r).contains("CALDAV_CA_FILE"), "{}", r.stderr);
}
