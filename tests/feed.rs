//! The subscribable .ics feeds (issue 11): the real binary with no CALDAV_URL against the
//! fake Plane, its feeds read by two independent consumers (PyPI icalendar over urllib,
//! and vdirsyncer's read-only `http` storage), a Plane change with its signed webhook,
//! the token, conditional requests, HEAD; and the feeds next to a real CalDAV sync.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::fake_plane::{sign_webhook, World};
use common::{next_day, run_binary, server, unique_tag, var, DeleteCalendars, Server, Setup};
use miniserde::json::{self, Value};

const TOKEN: &str = "feed-token-0123456789abcdef";
const SECRET: &str = "plane_wh_0123456789abcdef0123456789abcdef";
/// SYNC_INTERVAL_SECONDS of the daemons here: long, so only webhooks change the feeds.
const INTERVAL: &str = "3600";
/// How long a webhook's change may take to reach the feed before the test gives up.
const WEBHOOK_WAIT: Duration = Duration::from_secs(20);
/// Feed fetches that must cost no Plane request.
const FETCHES: usize = 25;

/// No CalDAV server: the setup's variables lose every CALDAV_* one.
fn no_caldav() -> Server {
    Server {
        name: "none",
        url: String::new(),
        user: String::new(),
        password: String::new(),
    }
}

fn feed_vars(s: &Setup) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = s
        .vars()
        .into_iter()
        .filter(|(k, _)| !k.starts_with("CALDAV_"))
        .collect();
    v.push(("FEED_TOKEN".into(), TOKEN.into()));
    v
}

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

impl Daemon {
    fn feed(&self, name: &str) -> String {
        format!("{}/calendars/{name}.ics?token={TOKEN}", self.url)
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into()
}

/// Status, headers (lower-case names) and body of a request.
fn fetch(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
) -> (u16, BTreeMap<String, String>, String) {
    let a = agent();
    let mut req = match method {
        "HEAD" => a.head(url),
        _ => a.get(url),
    };
    for (n, v) in headers {
        req = req.header(*n, *v);
    }
    let mut r = req.call().unwrap();
    let h = r
        .headers()
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_ascii_lowercase(),
                v.to_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let status = r.status().as_u16();
    (status, h, r.body_mut().read_to_string().unwrap_or_default())
}

/// Starts `calplanebot run` with `vars` and waits for its first cycle.
fn start(s: &Setup, vars: Vec<(String, String)>) -> Daemon {
    let port = free_port();
    let log = s.state.with_extension(format!("feed-{port}.log"));
    let child = Command::new(env!("CARGO_BIN_EXE_calplanebot"))
        .arg("run")
        .env_clear()
        .envs(vars)
        .env("HTTP_BIND", format!("127.0.0.1:{port}"))
        .env("PLANE_WEBHOOK_SECRET", SECRET)
        .env("SYNC_INTERVAL_SECONDS", INTERVAL)
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let d = Daemon {
        child,
        url: format!("http://127.0.0.1:{port}"),
        log,
    };
    let until = Instant::now() + Duration::from_secs(60);
    while Instant::now() < until {
        let ok = agent()
            .get(&format!("{}/api/v1/metrics", d.url))
            .call()
            .ok();
        let cycles = ok
            .and_then(|mut r| r.body_mut().read_to_string().ok())
            .and_then(|b| {
                let v: Value = json::from_str(&b).ok()?;
                match v {
                    Value::Object(o) => match o.get("cycles") {
                        Some(Value::Number(n)) => n.to_string().parse::<u64>().ok(),
                        _ => None,
                    },
                    _ => None,
                }
            });
        if cycles.is_some_and(|c| c >= 1) {
            return d;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "daemon did not come up: {}",
        std::fs::read_to_string(&d.log).unwrap_or_default()
    );
}

/// tests/feed_verify.py with the test venv's Python; its JSON output.
fn verify(args: &[&str]) -> Value {
    let python = var("PYTHON").expect("PYTHON (set by tests/run.sh or .tests/run/servers.env)");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/feed_verify.py");
    let out = Command::new(python)
        .arg(script)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "feed_verify.py {args:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    json::from_str(&String::from_utf8_lossy(&out.stdout)).expect("feed_verify JSON")
}

/// Syncs a feed into `dir` with vdirsyncer; the files by work item id.
fn vdirsyncer(url: &str, dir: &Path) -> BTreeMap<String, String> {
    let v = verify(&["vdirsyncer", url, &dir.display().to_string()]);
    match get(&v, "files") {
        Value::Object(o) => o.iter().map(|(k, v)| (k.clone(), text(v))).collect(),
        _ => panic!("vdirsyncer: {}", json::to_string(&v)),
    }
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

/// One feed as PyPI icalendar read it.
struct Feed {
    calendar: Value,
    /// Objects by UID.
    objects: BTreeMap<String, Value>,
}

fn read_feed(url: &str) -> Feed {
    let v = verify(&["read", url]);
    assert_eq!(text(get(&v, "status")), "200", "{url}");
    let mut objects = BTreeMap::new();
    if let Value::Array(a) = get(&v, "objects") {
        for o in a {
            let uid = text(get(o, "uid"));
            assert!(
                objects.insert(uid.clone(), o.clone()).is_none(),
                "UID {uid} twice"
            );
        }
    }
    Feed {
        calendar: get(&v, "calendar").clone(),
        objects,
    }
}

fn prop(o: &Value, name: &str) -> Option<String> {
    match get(get(o, "props"), name) {
        Value::Null => None,
        v => Some(text(v)),
    }
}

/// Checks every object of project `i`'s feed against the fake's world, field by field
/// (design §2, computed from the world, not from calplanebot's code). Returns the UIDs.
fn check_project_feed(world: &World, base_url: &str, i: usize, feed: &Feed) -> BTreeSet<String> {
    let p = &world.projects[i];
    assert_eq!(
        text(get(&feed.calendar, "X-WR-CALNAME")),
        format!("Plane: {}", p.name)
    );
    assert_eq!(text(get(&feed.calendar, "REFRESH-INTERVAL")), INTERVAL);
    assert!(text(get(&feed.calendar, "X-PUBLISHED-TTL")).contains(INTERVAL));
    let mut want = BTreeSet::new();
    for item in p.visible_items() {
        let group = p.state(&item.state).map(|s| s.group.as_str()).unwrap_or("");
        let Some(date) = &item.target_date else {
            continue;
        };
        if group == "completed" || group == "cancelled" {
            continue;
        }
        let uid = format!("plane-issue-{}@calplanebot", item.id);
        let o = feed
            .objects
            .get(&uid)
            .unwrap_or_else(|| panic!("{uid} ({}) missing from the feed", item.name));
        let key = format!("{}-{}", p.identifier, item.sequence_id);
        let url = format!("{base_url}/{}/browse/{key}/", world.slug);
        assert_eq!(text(get(o, "component")), "VEVENT");
        assert_eq!(prop(o, "SUMMARY"), Some(format!("[{key}] {}", item.name)));
        assert_eq!(prop(o, "DTSTART").as_deref(), Some(date.as_str()));
        assert_eq!(prop(o, "DTEND"), Some(next_day(date)));
        assert_eq!(text(get(get(o, "value_types"), "DTSTART")), "DATE");
        assert_eq!(prop(o, "URL").as_deref(), Some(url.as_str()));
        let labels: Vec<String> = item
            .labels
            .iter()
            .map(|l| p.labels.iter().find(|x| &x.id == l).unwrap().name.clone())
            .collect();
        assert_eq!(
            prop(o, "CATEGORIES"),
            (!labels.is_empty()).then(|| labels.join(","))
        );
        let priority = match item.priority.as_str() {
            "urgent" => Some("1"),
            "high" => Some("3"),
            "medium" => Some("5"),
            "low" => Some("9"),
            _ => None,
        };
        assert_eq!(prop(o, "PRIORITY").as_deref(), priority, "{key}");
        assert_eq!(prop(o, "X-PLANE-WORK-ITEM-ID"), Some(item.id.clone()));
        assert_eq!(prop(o, "X-PLANE-PROJECT-ID"), Some(p.id.clone()));
        assert_eq!(prop(o, "TRANSP").as_deref(), Some("TRANSPARENT"));
        let desc = prop(o, "DESCRIPTION").unwrap_or_default();
        let state = &p.state(&item.state).unwrap().name;
        assert!(desc.contains(&format!("State: {state}")), "{key}: {desc}");
        assert!(desc.ends_with(&url), "{key}: {desc}");
        assert!(prop(o, "ORGANIZER").is_none() && prop(o, "ATTENDEE").is_none());
        assert!(prop(o, "DTSTAMP").is_some(), "{key}");
        want.insert(uid);
    }
    let got: BTreeSet<String> = feed.objects.keys().cloned().collect();
    assert_eq!(
        got, want,
        "project {} feed: exactly the qualifying items",
        p.identifier
    );
    want
}

fn post_webhook(d: &Daemon, body: &str) {
    let sig = sign_webhook(SECRET, body.as_bytes());
    let r = agent()
        .post(&format!("{}/webhooks/plane", d.url))
        .header("X-Plane-Signature", &sig)
        .send(body.as_bytes())
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
}

/// Fetches `url` until its body satisfies `done` (a webhook's sync takes moments).
fn wait_for(url: &str, what: &str, done: impl Fn(&str) -> bool) -> String {
    let until = Instant::now() + WEBHOOK_WAIT;
    loop {
        let (status, _, body) = fetch("GET", url, &[]);
        if status == 200 && done(&body) {
            return body;
        }
        assert!(
            Instant::now() < until,
            "the feed never showed {what}:\n{body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A dated, open work item of project 0.
fn dated_item(world: &World) -> String {
    let p = &world.projects[0];
    p.visible_items()
        .into_iter()
        .find(|i| {
            i.target_date.is_some()
                && matches!(
                    p.state(&i.state).unwrap().group.as_str(),
                    "backlog" | "unstarted" | "started"
                )
        })
        .unwrap()
        .id
        .clone()
}

#[test]
fn feeds_without_caldav_match_plane_for_two_consumers() {
    let s = Setup::new(no_caldav(), &[14, 9]);
    let d = start(&s, feed_vars(&s));
    let world = s.fake.world();
    let base = s.fake.base_url();

    let mut all_uids = BTreeSet::new();
    for (i, p) in world.projects.iter().enumerate() {
        let feed = read_feed(&d.feed(&p.identifier.to_ascii_lowercase()));
        let uids = check_project_feed(&world, &base, i, &feed);
        assert!(!uids.is_empty(), "the world gives project {i} dated items");
        all_uids.extend(uids);
    }
    let all = read_feed(&d.feed("all"));
    assert_eq!(
        all.objects.keys().cloned().collect::<BTreeSet<_>>(),
        all_uids
    );
    assert!(text(get(&all.calendar, "X-WR-CALNAME")).starts_with("Plane: "));

    // vdirsyncer's read-only http storage into a filesystem storage: one file per item.
    let dir = std::env::temp_dir().join(format!("calplanebot-feed-vdir-{}", unique_tag()));
    let _ = std::fs::remove_dir_all(&dir);
    let p0 = world.projects[0].identifier.to_ascii_lowercase();
    let feed0 = read_feed(&d.feed(&p0));
    let files = vdirsyncer(&d.feed(&p0), &dir);
    // By work item: vdirsyncer's http storage replaces UIDs with hashes.
    let by_item: BTreeMap<String, String> = feed0
        .objects
        .values()
        .map(|o| {
            (
                prop(o, "X-PLANE-WORK-ITEM-ID").unwrap(),
                prop(o, "SUMMARY").unwrap(),
            )
        })
        .collect();
    assert_eq!(
        files.keys().cloned().collect::<BTreeSet<_>>(),
        by_item.keys().cloned().collect::<BTreeSet<_>>()
    );
    for (id, summary) in &by_item {
        let unfolded = files[id].replace("\r\n ", "").replace("\n ", "");
        assert!(
            unfolded.contains(&format!("SUMMARY:{summary}")),
            "{id}: {summary}"
        );
    }

    // A Plane change and its signed webhook: in the feed on the next fetch.
    let item = dated_item(&world);
    let (_, before, _) = fetch("GET", &d.feed(&p0), &[]);
    s.fake
        .with_world(|w| w.rename(&item, "Renamed for the feed"));
    let body = s.fake.with_world(|w| {
        let actor = w.colleague().id.clone();
        w.webhook_payload(&item, "updated", &actor, Some(("name", None, None)))
    });
    post_webhook(&d, &body);
    wait_for(&d.feed(&p0), "the new name", |b| {
        b.contains("Renamed for the feed")
    });
    let uid = format!("plane-issue-{item}@calplanebot");
    let renamed = read_feed(&d.feed(&p0));
    assert!(prop(&renamed.objects[&uid], "SUMMARY")
        .unwrap()
        .ends_with("] Renamed for the feed"));
    let (status, _, _) = fetch("GET", &d.feed(&p0), &[("If-None-Match", &before["etag"])]);
    assert_eq!(status, 200, "the old ETag no longer matches");
    let all = read_feed(&d.feed("all"));
    assert!(prop(&all.objects[&uid], "SUMMARY")
        .unwrap()
        .ends_with("] Renamed for the feed"));
    let files = vdirsyncer(&d.feed(&p0), &dir);
    assert!(
        files[&item].contains("] Renamed for the feed"),
        "vdirsyncer got the change"
    );

    // Its target date removed: gone from the feed.
    s.fake.with_world(|w| w.set_target_date(&item, None));
    let body = s.fake.with_world(|w| {
        let actor = w.colleague().id.clone();
        w.webhook_payload(&item, "updated", &actor, Some(("target_date", None, None)))
    });
    post_webhook(&d, &body);
    wait_for(&d.feed(&p0), "the item gone", |b| !b.contains(&uid));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn feed_access_conditional_requests_and_head() {
    let s = Setup::new(no_caldav(), &[10]);
    let d = start(&s, feed_vars(&s));
    let p0 = s.fake.world().projects[0].identifier.to_ascii_lowercase();
    let good = d.feed(&p0);

    let (status, h, body) = fetch("GET", &good, &[]);
    assert_eq!(status, 200);
    assert_eq!(h["content-type"], "text/calendar; charset=utf-8");
    assert_eq!(h["content-length"], body.len().to_string());
    assert!(body.starts_with("BEGIN:VCALENDAR\r\n") && body.ends_with("END:VCALENDAR\r\n"));
    let etag = h["etag"].clone();
    let modified = h["last-modified"].clone();
    // The first cycle wrote the feed: its objects count as created, not as updated.
    let objects = body.matches("\r\nBEGIN:VEVENT\r\n").count();
    let (_, _, metrics) = fetch("GET", &format!("{}/api/v1/metrics", d.url), &[]);
    let counts =
        format!("\"items\":{{\"created\":{objects},\"deleted\":0,\"skipped\":0,\"updated\":0}}");
    assert!(
        objects > 0 && metrics.contains(&counts),
        "{counts} in {metrics}"
    );

    // Wrong or missing token, unknown feed: the same 404 as any unknown path.
    let (_, _, unknown_path) = fetch("GET", &format!("{}/nothing-here", d.url), &[]);
    for url in [
        format!("{}/calendars/{p0}.ics", d.url),
        format!("{}/calendars/{p0}.ics?token=", d.url),
        format!(
            "{}/calendars/{p0}.ics?token=feed-token-0123456789abcdeX",
            d.url
        ),
        format!("{}/calendars/{p0}.ics?tokens={TOKEN}", d.url),
        format!("{}/calendars/nosuchproject.ics?token={TOKEN}", d.url),
        format!(
            "{}/calendars/{}.ics?token={TOKEN}",
            d.url,
            p0.to_ascii_uppercase()
        ),
    ] {
        let (status, _, body) = fetch("GET", &url, &[]);
        assert_eq!(
            (status, body.as_str()),
            (404, unknown_path.as_str()),
            "{url}"
        );
        assert_eq!(fetch("HEAD", &url, &[]).0, 404, "HEAD {url}");
    }

    // Conditional requests.
    let (status, h304, body) = fetch("GET", &good, &[("If-None-Match", &etag)]);
    assert_eq!((status, body.as_str()), (304, ""));
    assert_eq!(h304["etag"], etag);
    assert_eq!(
        fetch("GET", &good, &[("If-Modified-Since", &modified)]).0,
        304
    );
    assert_eq!(
        fetch("GET", &good, &[("If-None-Match", "\"other\"")]).0,
        200
    );
    let (status, _, _) = fetch(
        "GET",
        &good,
        &[
            ("If-None-Match", "\"other\""),
            ("If-Modified-Since", &modified),
        ],
    );
    assert_eq!(status, 200, "If-None-Match decides when both are sent");

    // HEAD: the GET's headers, no body.
    let (status, hh, body) = fetch("HEAD", &good, &[]);
    assert_eq!((status, body.as_str()), (200, ""));
    assert_eq!(hh["content-length"], h["content-length"]);
    assert_eq!(hh["etag"], etag);

    // Fetches are served from the files: no Plane request, however many.
    s.fake.clear_requests();
    for _ in 0..FETCHES {
        assert_eq!(fetch("GET", &good, &[]).0, 200);
        assert_eq!(fetch("GET", &d.feed("all"), &[]).0, 200);
    }
    assert_eq!(s.fake.requests().len(), 0, "{:?}", s.fake.requests());
    // And they survive a restart: the new process answers with the same ETag.
    drop(d);
    let d = start(&s, feed_vars(&s));
    let (status, h2, _) = fetch("GET", &d.feed(&p0), &[]);
    assert_eq!((status, h2["etag"].as_str()), (200, etag.as_str()));
}

#[test]
fn feed_mode_commands() {
    let s = Setup::new(no_caldav(), &[6, 4]);
    let mut none: Vec<(String, String)> = feed_vars(&s);
    none.retain(|(k, _)| k != "FEED_TOKEN");
    let r = run_binary(&none, &["validate-config"]);
    assert_eq!(r.code, 1);
    let line = r.stderr.trim();
    assert!(!line.contains('\n'), "one line: {line}");
    assert!(
        line.contains("CALDAV_URL") && line.contains("FEED_TOKEN"),
        "{line}"
    );

    let mut vars = feed_vars(&s);
    let r = run_binary(&vars, &["validate-config"]);
    r.assert_ok();
    assert!(r.stdout.contains("feeds only"), "{}", r.stdout);
    let r = run_binary(&vars, &["config"]);
    r.assert_ok();
    assert!(!r.stdout.contains(TOKEN) && r.stdout.contains("FEED_TOKEN=****"));
    assert!(r.stdout.contains("# mode: feeds only"), "{}", r.stdout);
    let r = run_binary(&vars, &["test-plane"]);
    r.assert_ok();
    assert!(r.stdout.contains("Mode:        feeds only"), "{}", r.stdout);
    let r = run_binary(&vars, &["test-caldav"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("CALDAV_URL is not set"), "{}", r.stderr);

    vars.push(("PUBLIC_URL".into(), "https://cal.example.com/plane/".into()));
    let r = run_binary(&vars, &["feed-urls"]);
    r.assert_ok();
    let world = s.fake.world();
    let want = format!("https://cal.example.com/plane/calendars/all.ics?token={TOKEN}");
    assert!(r.stdout.contains(&want), "{}", r.stdout);
    for p in &world.projects {
        let url = format!(
            "https://cal.example.com/plane/calendars/{}.ics?token={TOKEN}",
            p.identifier.to_ascii_lowercase()
        );
        assert!(r.stdout.contains(&url), "{}", r.stdout);
    }

    // --once without CALDAV_URL writes the feed files once and says that `run` serves them.
    let r = run_binary(&vars, &["--once"]);
    r.assert_ok();
    assert!(
        r.stdout.contains("`calplanebot run` is the main job"),
        "{}",
        r.stdout
    );
    for p in &world.projects {
        let f = s
            .state
            .join(format!("feeds/{}.ics", p.identifier.to_ascii_lowercase()));
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(
            text.contains(&format!("X-WR-CALNAME:Plane: {}", p.name)),
            "{text}"
        );
    }
    let r = run_binary(&vars, &["--once", "--dry-run"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("--dry-run needs CALDAV_URL"),
        "{}",
        r.stderr
    );
    let r = run_binary(&vars, &["diagnostics"]);
    assert!(
        r.stdout.contains("CalDAV Connection: - (feeds only)"),
        "{}",
        r.stdout
    );
}

#[test]
fn feeds_are_served_next_to_a_caldav_sync() {
    let radicale = server("Radicale", "RADICALE");
    let s = Setup::new(radicale.clone(), &[8]);
    let _cleanup = DeleteCalendars(radicale, s.tag.clone());
    let mut vars = s.vars();
    vars.push(("FEED_TOKEN".into(), TOKEN.into()));
    let d = start(&s, vars);
    let p0 = s.fake.world().projects[0].identifier.to_ascii_lowercase();
    let feed = read_feed(&d.feed(&p0));
    let cal = s.calendar(0);
    let in_caldav: BTreeMap<String, Option<String>> = cal
        .objects
        .iter()
        .map(|o| (o.uid.clone(), o.prop("SUMMARY")))
        .collect();
    let in_feed: BTreeMap<String, Option<String>> = feed
        .objects
        .iter()
        .map(|(uid, o)| (uid.clone(), prop(o, "SUMMARY")))
        .collect();
    assert!(!in_feed.is_empty());
    assert_eq!(
        in_feed, in_caldav,
        "the feed holds the objects written to CalDAV"
    );
    check_project_feed(&s.fake.world(), &s.fake.base_url(), 0, &feed);
}
