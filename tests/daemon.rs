//! The long-running service: `calplanebot run` against the fake Plane and real Radicale,
//! driven by signed webhooks over real HTTP.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::fake_plane::sign_webhook;
use common::{server, Setup};
use miniserde::json::{self, Value};

const SECRET: &str = "plane_wh_0123456789abcdef0123456789abcdef";

struct Daemon {
    child: Child,
    url: String,
    log: std::path::PathBuf,
    /// API_TOKEN, when the daemon was started with one.
    token: Option<String>,
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

fn get(url: &str) -> (u16, String) {
    get_with(url, None)
}

/// GET, with `Authorization: Bearer <token>` when a token is given.
fn get_with(url: &str, token: Option<&str>) -> (u16, String) {
    let mut req = agent().get(url);
    if let Some(t) = token {
        req = req.header("Authorization", &format!("Bearer {t}"));
    }
    let mut r = req.call().unwrap();
    (r.status().as_u16(), r.body_mut().read_to_string().unwrap())
}

fn post(url: &str, body: &[u8], signature: Option<&str>) -> u16 {
    let mut req = agent().post(url).header("Content-Type", "application/json");
    if let Some(s) = signature {
        req = req.header("X-Plane-Signature", s);
    }
    req.send(body).unwrap().status().as_u16()
}

fn metric(d: &Daemon, key: &str) -> u64 {
    metric_in(d, &[key])
}

/// A number from `/api/v1/metrics` at `path` (0 when absent).
fn metric_in(d: &Daemon, path: &[&str]) -> u64 {
    let (_, body) = get_with(&format!("{}/api/v1/metrics", d.url), d.token.as_deref());
    let mut v: Value = json::from_str(&body).unwrap();
    for key in path {
        v = match v {
            Value::Object(mut o) => o.remove(*key).unwrap_or(Value::Null),
            _ => Value::Null,
        };
    }
    match v {
        Value::Number(n) => n.to_string().parse().unwrap(),
        _ => 0,
    }
}

/// Starts `calplanebot run` and waits for its first full cycle.
fn start(s: &Setup, extra: &[(&str, &str)]) -> Daemon {
    start_limited(s, extra, None)
}

/// Like [`start`], with the open-file limit (soft and hard) lowered to `fd_limit`.
fn start_limited(s: &Setup, extra: &[(&str, &str)], fd_limit: Option<u32>) -> Daemon {
    let port = free_port();
    let log = s.state.with_extension(format!("daemon-{port}.log"));
    let bin = env!("CARGO_BIN_EXE_calplanebot");
    let mut cmd = match fd_limit {
        Some(n) => {
            let mut c = Command::new("sh");
            c.args(["-c", &format!("ulimit -n {n} && exec \"$0\" run"), bin]);
            c
        }
        None => {
            let mut c = Command::new(bin);
            c.arg("run");
            c
        }
    };
    let token = extra
        .iter()
        .find(|(k, _)| *k == "API_TOKEN")
        .map(|(_, v)| v.to_string());
    let child = cmd
        .env_clear()
        .envs(s.vars())
        .env("HTTP_BIND", format!("127.0.0.1:{port}"))
        .env("PLANE_WEBHOOK_SECRET", SECRET)
        .env("SYNC_INTERVAL_SECONDS", "3600")
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(extra.iter().copied())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let d = Daemon {
        child,
        url: format!("http://127.0.0.1:{port}"),
        log,
        token,
    };
    let until = Instant::now() + Duration::from_secs(60);
    while Instant::now() < until {
        if agent().get(&format!("{}/health", d.url)).call().is_ok() && metric(&d, "cycles") >= 1 {
            return d;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "daemon did not come up: {}",
        std::fs::read_to_string(&d.log).unwrap_or_default()
    );
}

fn summary_of(s: &Setup, item: &str) -> Option<String> {
    s.calendar(0)
        .objects
        .iter()
        .find(|o| o.uid == format!("plane-issue-{item}@calplanebot"))
        .and_then(|o| o.prop("SUMMARY"))
}

fn wait_for_summary(s: &Setup, item: &str, suffix: &str) {
    let until = Instant::now() + Duration::from_secs(20);
    while Instant::now() < until {
        if summary_of(s, item).is_some_and(|t| t.ends_with(suffix)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "event of {item} never became {suffix:?}: {:?}",
        summary_of(s, item)
    );
}

fn dated_item(s: &Setup) -> String {
    let w = s.fake.world();
    let p = &w.projects[0];
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

fn webhook_for(s: &Setup, item: &str, field: &str) -> String {
    s.fake.with_world(|w| {
        let actor = w.colleague().id.clone();
        w.webhook_payload(item, "updated", &actor, Some((field, None, None)))
    })
}

/// Fetches of one work item (GET …/work-items/{id}/) and list requests, from the fake's log.
fn plane_reads(s: &Setup, item: &str) -> (usize, usize) {
    let log = s.fake.requests();
    let one = log
        .iter()
        .filter(|r| r.path.ends_with(&format!("/work-items/{item}/")))
        .count();
    let lists = log
        .iter()
        .filter(|r| r.path.ends_with("/work-items/"))
        .count();
    (one, lists)
}

#[test]
fn a_signed_webhook_syncs_just_that_item_and_bursts_coalesce() {
    let radicale = server("Radicale", "RADICALE");
    let s = Setup::new(radicale, &[30, 10]);
    let d = start(&s, &[]);
    let item = dated_item(&s);

    s.fake.clear_requests();
    s.fake
        .with_world(|w| w.rename(&item, "Renamed by a colleague"));
    let body = webhook_for(&s, &item, "name");
    assert_eq!(
        post(
            &format!("{}/webhooks/plane", d.url),
            body.as_bytes(),
            Some(&sign_webhook(SECRET, body.as_bytes()))
        ),
        202
    );
    wait_for_summary(&s, &item, "Renamed by a colleague");
    let (one, lists) = plane_reads(&s, &item);
    assert_eq!(
        lists,
        0,
        "a webhook must not trigger a listing: {:?}",
        s.fake.requests()
    );
    assert_eq!(
        one,
        1,
        "exactly one fetch of the item: {:?}",
        s.fake.requests()
    );

    // Plane sends one delivery per changed field: 100 of them for one item. The first is
    // synced at once, the rest of the burst once when it ends: a change made in Plane
    // mid-burst must still arrive, and the whole burst costs at most two fetches.
    s.fake.clear_requests();
    let url = format!("{}/webhooks/plane", d.url);
    let a = agent();
    for (name, field) in [
        ("Renamed again, many fields", "priority"),
        ("Renamed a third time, mid-burst", "state"),
    ] {
        s.fake.with_world(|w| w.rename(&item, name));
        let body = webhook_for(&s, &item, field);
        let sig = sign_webhook(SECRET, body.as_bytes());
        for _ in 0..50 {
            let r = a
                .post(&url)
                .header("X-Plane-Signature", &sig)
                .send(body.as_bytes())
                .unwrap();
            assert_eq!(r.status().as_u16(), 202);
        }
    }
    wait_for_summary(&s, &item, "Renamed a third time, mid-burst");
    std::thread::sleep(Duration::from_secs(3)); // let any trailing batch run
    let (one, lists) = plane_reads(&s, &item);
    assert_eq!(lists, 0);
    assert!(
        (1..=2).contains(&one),
        "100 webhooks caused {one} fetches: {:?}",
        s.fake.requests()
    );
    eprintln!("100 webhooks for one item → {one} fetch(es)");
}

/// Found against real Plane: a calendar edit made since the last cycle, then a colleague's
/// change of the same item in Plane and its webhook. Both changes must survive.
#[test]
fn a_webhook_merges_a_pending_calendar_edit() {
    let radicale = server("Radicale", "RADICALE");
    let s = Setup::new(radicale.clone(), &[30]);
    let d = start(&s, &[]);
    let item = dated_item(&s);
    let event = s
        .calendar(0)
        .objects
        .into_iter()
        .find(|o| o.uid == format!("plane-issue-{item}@calplanebot"))
        .unwrap();
    let out = common::verifier(
        &radicale,
        &["edit", "--url", &event.url, "--move-to", "2027-04-20"],
    )
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    s.fake
        .with_world(|w| w.rename(&item, "Renamed by a colleague meanwhile"));
    let body = webhook_for(&s, &item, "name");
    let sig = sign_webhook(SECRET, body.as_bytes());
    assert_eq!(
        post(
            &format!("{}/webhooks/plane", d.url),
            body.as_bytes(),
            Some(&sig)
        ),
        202
    );
    wait_for_summary(&s, &item, "Renamed by a colleague meanwhile");
    let moved = s
        .calendar(0)
        .objects
        .into_iter()
        .find(|o| o.uid == format!("plane-issue-{item}@calplanebot"))
        .unwrap();
    assert_eq!(
        moved.prop("DTSTART").as_deref(),
        Some("2027-04-20"),
        "the calendar edit survived"
    );
    let w = s.fake.world();
    assert_eq!(
        w.item(&item).unwrap().target_date.as_deref(),
        Some("2027-04-20"),
        "and reached Plane: {}",
        std::fs::read_to_string(&d.log).unwrap_or_default()
    );
}

#[test]
fn bad_requests_are_refused_and_the_service_keeps_working() {
    let radicale = server("Radicale", "RADICALE");
    let s = Setup::new(radicale, &[8]);
    let d = start(&s, &[]);
    let hook = format!("{}/webhooks/plane", d.url);
    let item = dated_item(&s);
    let body = webhook_for(&s, &item, "name");

    assert_eq!(post(&hook, body.as_bytes(), None), 401, "unsigned");
    assert_eq!(
        post(
            &hook,
            body.as_bytes(),
            Some(&sign_webhook("other", body.as_bytes()))
        ),
        401,
        "wrong key"
    );
    let tampered = body.replace("updated", "deleted");
    assert_eq!(
        post(
            &hook,
            tampered.as_bytes(),
            Some(&sign_webhook(SECRET, body.as_bytes()))
        ),
        401,
        "tampered body"
    );
    let big = vec![b' '; 1024 * 1024 + 10];
    assert_eq!(post(&hook, &big, Some(&sign_webhook(SECRET, &big))), 413);
    let junk = b"{not json";
    assert_eq!(post(&hook, junk, Some(&sign_webhook(SECRET, junk))), 400);
    let no_id = br#"{"event":"issue","action":"updated","data":{}}"#;
    assert_eq!(post(&hook, no_id, Some(&sign_webhook(SECRET, no_id))), 400);
    let cycle = br#"{"event":"cycle","action":"created","data":{"id":"c"}}"#;
    assert_eq!(
        post(&hook, cycle, Some(&sign_webhook(SECRET, cycle))),
        202,
        "valid but ignored"
    );
    assert_eq!(get(&format!("{}/nope", d.url)).0, 404);

    // 10,000 bad deliveries over keep-alive connections.
    let a = agent();
    let started = Instant::now();
    for i in 0..10_000u32 {
        let sig = format!("{:064x}", i);
        let r = a
            .post(&hook)
            .header("X-Plane-Signature", &sig)
            .send(body.as_bytes())
            .unwrap();
        assert_eq!(r.status().as_u16(), 401);
    }
    eprintln!(
        "10,000 bad webhooks in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let (code, health) = get(&format!("{}/health", d.url));
    assert_eq!(code, 200, "{health}");
    let (_, hooks) = get(&format!("{}/webhooks/status", d.url));
    assert!(hooks.contains("\"unauthorized\":10003"), "{hooks}");

    // …and it still syncs.
    s.fake
        .with_world(|w| w.rename(&item, "Still syncing after the flood"));
    let body = webhook_for(&s, &item, "name");
    assert_eq!(
        post(
            &hook,
            body.as_bytes(),
            Some(&sign_webhook(SECRET, body.as_bytes()))
        ),
        202
    );
    wait_for_summary(&s, &item, "Still syncing after the flood");
}

fn keys(v: &Value) -> Vec<String> {
    match v {
        Value::Object(o) => o.keys().cloned().collect(),
        _ => vec![],
    }
}

fn sub<'a>(v: &'a Value, k: &str) -> &'a Value {
    match v {
        Value::Object(o) => o.get(k).unwrap(),
        _ => panic!("not an object"),
    }
}

#[test]
fn health_endpoints_have_the_seed_shape_and_metrics_parse_as_prometheus() {
    let radicale = server("Radicale", "RADICALE");
    let s = Setup::new(radicale, &[6]);
    let log_file = s.state.with_extension("service.log");
    let d = start(&s, &[("LOG_FILE", log_file.to_str().unwrap())]);

    let (code, body) = get(&format!("{}/health", d.url));
    assert_eq!(code, 200);
    let v: Value = json::from_str(&body).unwrap();
    assert_eq!(keys(&v), ["status", "timestamp", "version"]);

    // Issue 9 item 4: both of the seed's shapes at once (its code's and its admin guide's).
    let (code, body) = get(&format!("{}/api/v1/health", d.url));
    assert_eq!(code, 200);
    let v: Value = json::from_str(&body).unwrap();
    assert_eq!(
        keys(&v),
        [
            "metrics",
            "services",
            "stats",
            "status",
            "timestamp",
            "uptime",
            "version"
        ]
    );
    assert_eq!(
        keys(sub(&v, "metrics")),
        [
            "events_created",
            "last_sync",
            "projects_synced",
            "sync_status"
        ]
    );
    assert!(matches!(sub(sub(&v, "metrics"), "sync_status"), Value::String(x) if x == "idle"));
    assert!(matches!(sub(&v, "uptime"), Value::String(x) if x.ends_with('m') && x.contains("h ")));
    assert!(
        matches!(sub(sub(&v, "metrics"), "last_sync"), Value::String(x) if x.starts_with("20"))
    );
    assert_eq!(keys(sub(&v, "services")), ["caldav", "scheduler"]);
    assert_eq!(
        keys(sub(&v, "stats")),
        ["synced_events", "total_events", "total_projects"]
    );
    assert!(matches!(sub(&v, "status"), Value::String(x) if x == "healthy"));
    assert!(matches!(sub(sub(&v, "services"), "caldav"), Value::String(x) if x == "ok"));
    let created = s.calendar(0).objects.len().to_string();
    assert_eq!(
        json::to_string(sub(sub(&v, "stats"), "total_events")),
        created
    );
    assert_eq!(
        json::to_string(sub(sub(&v, "metrics"), "events_created")),
        created
    );
    match sub(&v, "timestamp") {
        Value::String(t) => assert!(t.ends_with("+00:00") && t.len() == 32, "{t}"),
        other => panic!("{other:?}"),
    }

    let (_, hooks) = get(&format!("{}/webhooks/status", d.url));
    let hv: Value = json::from_str(&hooks).unwrap();
    assert_eq!(keys(&hv), ["scheduler", "sync_stats", "webhooks"]);

    // The Prometheus text, checked by the reference parser.
    let (code, text) = get(&format!("{}/metrics", d.url));
    assert_eq!(code, 200);
    let mut py = Command::new(common::var("PYTHON").expect("PYTHON"))
        .args([
            "-c",
            "import sys\nfrom prometheus_client.parser import text_string_to_metric_families as p\n\
             for f in p(sys.stdin.read()):\n  for s in f.samples: print(s.name, dict(s.labels), s.value)",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    py.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = py.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "prometheus_client rejected it: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let parsed = String::from_utf8_lossy(&out.stdout);
    // "name {labels} value" lines, value compared as a number.
    let sample = |name: &str, labels: &str| -> Option<f64> {
        parsed.lines().find_map(|l| {
            let rest = l.strip_prefix(name)?.strip_prefix(' ')?;
            let rest = rest.strip_prefix(labels)?.strip_prefix(' ')?;
            rest.trim().parse().ok()
        })
    };
    assert_eq!(
        sample("calplanebot_items_total", "{'action': 'created'}"),
        Some(created.parse().unwrap()),
        "{parsed}"
    );
    assert_eq!(
        sample("calplanebot_sync_cycles_total", "{}"),
        Some(1.0),
        "{parsed}"
    );
    assert!(
        sample("calplanebot_last_success_timestamp_seconds", "{}").is_some_and(|t| t > 1.7e9),
        "{parsed}"
    );

    // The service logged to LOG_FILE, with timestamps, not to stderr.
    let logged = std::fs::read_to_string(&log_file).unwrap();
    assert!(
        logged.contains("] calplanebot ") && logged.contains("syncing every"),
        "{logged}"
    );
    assert!(
        logged
            .lines()
            .all(|l| l.starts_with("20") && l.contains("Z ")),
        "{logged}"
    );
    let _ = std::fs::remove_file(&log_file);

    // The CLI's status command reads the same service.
    let port = d.url.rsplit(':').next().unwrap();
    let r = s.run(&["status"]);
    assert_ne!(
        r.code, 0,
        "default HTTP_BIND is not where this test's daemon listens"
    );
    let mut vars = s.vars();
    vars.push(("HTTP_BIND".into(), format!("0.0.0.0:{port}")));
    let r = common::run_binary(&vars, &["status"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("✓ calplanebot service is running")
            && r.stdout.contains("ℹ Status: healthy"),
        "{}",
        r.stdout
    );
}

#[test]
fn sigterm_mid_cycle_leaves_a_consistent_journal() {
    let radicale = server("Radicale", "RADICALE");
    let s = Setup::new(radicale, &[400]);
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_calplanebot"))
        .arg("run")
        .env_clear()
        .envs(s.vars())
        .env("HTTP_BIND", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Stop it once some events are written but long before all are.
    let journal = s.state.join("state.jsonl");
    let until = Instant::now() + Duration::from_secs(60);
    while std::fs::read_to_string(&journal)
        .map(|j| j.matches("\"t\":\"item\"").count())
        .unwrap_or(0)
        < 20
    {
        assert!(Instant::now() < until, "no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    let stop = Instant::now();
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    eprintln!(
        "stopped {:.0} ms after SIGTERM",
        stop.elapsed().as_secs_f64() * 1000.0
    );
    assert!(status.success(), "{status:?}");

    let written = s.calendar(0).objects.len();
    let r = s.run(&["sync-status"]);
    r.assert_ok();
    assert!(
        r.stdout.contains(&format!("Events:     {written}")),
        "journal and calendar agree: {}",
        r.stdout
    );
    let total = s.fake.world().projects[0]
        .visible_items()
        .into_iter()
        .filter(|i| i.target_date.is_some())
        .count();
    assert!(
        written < total,
        "it stopped mid-cycle ({written} of {total})"
    );
    let r = s.sync();
    r.assert_ok();
    assert_eq!(r.count("Created") + written, s.calendar(0).objects.len());
    assert_eq!(r.count("Unchanged"), written, "nothing written twice");
}

#[test]
fn enable_sync_false_serves_http_only() {
    let radicale = server("Radicale", "RADICALE");
    let s = Setup::new(radicale, &[4]);
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_calplanebot"))
        .env_clear()
        .envs(s.vars())
        .env("HTTP_BIND", format!("127.0.0.1:{port}"))
        .env("ENABLE_SYNC", "false")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let mut health = None;
    for _ in 0..100 {
        if let Ok(mut r) = agent().get(&format!("{url}/api/v1/health")).call() {
            health = Some(r.body_mut().read_to_string().unwrap());
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    let health = health.expect("no HTTP server");
    assert!(health.contains("\"scheduler\":\"stopped\""), "{health}");
    assert!(s.dump().is_empty(), "nothing synced");
    assert!(s.fake.requests().is_empty(), "Plane not contacted");
}

#[test]
fn a_failing_cycle_does_not_end_the_service() {
    let radicale = server("Radicale", "RADICALE");
    let mut s = Setup::new(radicale, &[4]);
    s.env
        .push(("PLANE_API_TOKEN".into(), "plane_api_revoked".into()));
    let mut d = start(&s, &[]);
    assert_eq!(metric(&d, "cycles_failed"), 1);
    let (code, _) = get(&format!("{}/health", d.url));
    assert_eq!(code, 200, "one failure is not yet unhealthy");
    let (_, m) = get(&format!("{}/api/v1/metrics", d.url));
    // Without API_TOKEN configured, only the kind and host of the error are shown.
    assert!(
        m.contains("\"last_error\":\"plane: login refused (HTTP 40"),
        "{m}"
    );
    assert!(!m.contains("plane_api_revoked"), "no secrets in metrics");
    assert!(
        m.contains("\"next_sync\":\"20"),
        "a retry is scheduled: {m}"
    );
    assert!(d.child.try_wait().unwrap().is_none(), "still running");
}

/// Posts a signed delivery, optionally with an `X-Plane-Delivery` id; status and body.
fn deliver(d: &Daemon, body: &str, delivery: Option<&str>) -> (u16, String) {
    let mut req = agent()
        .post(&format!("{}/webhooks/plane", d.url))
        .header("X-Plane-Signature", &sign_webhook(SECRET, body.as_bytes()));
    if let Some(id) = delivery {
        req = req.header("X-Plane-Delivery", id);
    }
    let mut r = req.send(body.as_bytes()).unwrap();
    (r.status().as_u16(), r.body_mut().read_to_string().unwrap())
}

/// Waits (60 s at most) until the daemon's log contains `needle`.
fn wait_for_log(d: &Daemon, needle: &str) {
    let until = Instant::now() + Duration::from_secs(60);
    while Instant::now() < until {
        if std::fs::read_to_string(&d.log).is_ok_and(|l| l.contains(needle)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "no {needle:?} in the log:\n{}",
        std::fs::read_to_string(&d.log).unwrap_or_default()
    );
}

/// Issue 9 item 1: idle connections beyond the open-file limit used to make the HTTP
/// thread panic in accept and abort the process. 600 idle connections against a daemon
/// limited to 256 descriptors: it lives, answers /health, and keeps syncing.
#[test]
fn idle_connections_beyond_the_fd_limit_do_not_stop_the_service() {
    let radicale = server("Radicale", "RADICALE");
    let s = Setup::new(radicale, &[8]);
    let mut d = start_limited(&s, &[], Some(256));
    let addr = d.url.trim_start_matches("http://").to_string();
    let idle: Vec<std::net::TcpStream> = (0..600)
        .map(|_| std::net::TcpStream::connect(&addr).unwrap())
        .collect();

    let (code, body) = get(&format!("{}/health", d.url));
    assert_eq!(code, 200, "{body}");
    assert!(d.child.try_wait().unwrap().is_none(), "still running");

    let item = dated_item(&s);
    s.fake
        .with_world(|w| w.rename(&item, "Renamed during the flood"));
    let body = webhook_for(&s, &item, "name");
    assert_eq!(deliver(&d, &body, None).0, 202);
    wait_for_summary(&s, &item, "Renamed during the flood");
    drop(idle);
    assert!(d.child.try_wait().unwrap().is_none(), "still running");
    let log = std::fs::read_to_string(&d.log).unwrap();
    assert!(!log.contains("panicked"), "{log}");
}

/// Issue 9 item 2: a request whose body never comes used to freeze every endpoint. Now
/// it holds only its own connection, which is dropped after the read deadline (10 s).
#[test]
fn a_stalled_request_holds_only_its_own_connection() {
    use std::io::{Read, Write};
    let radicale = server("Radicale", "RADICALE");
    let s = Setup::new(radicale, &[8]);
    let d = start(&s, &[]);
    let addr = d.url.trim_start_matches("http://").to_string();
    let mut stalled = std::net::TcpStream::connect(&addr).unwrap();
    stalled
        .write_all(b"POST /webhooks/plane HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n{")
        .unwrap();
    let mut half_head = std::net::TcpStream::connect(&addr).unwrap();
    half_head.write_all(b"GET /health HTTP/1.1\r\nHo").unwrap();
    // A chunked body is refused at once, not waited for.
    let mut chunked = std::net::TcpStream::connect(&addr).unwrap();
    chunked
        .write_all(b"POST /webhooks/plane HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n")
        .unwrap();
    chunked
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut answer = String::new();
    let _ = chunked.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 411 "), "{answer:?}");

    // Meanwhile everything else is answered, and a webhook syncs.
    assert_eq!(get(&format!("{}/health", d.url)).0, 200);
    assert_eq!(get(&format!("{}/metrics", d.url)).0, 200);
    let item = dated_item(&s);
    s.fake
        .with_world(|w| w.rename(&item, "Renamed past a stalled client"));
    let body = webhook_for(&s, &item, "name");
    assert_eq!(deliver(&d, &body, None).0, 202);
    wait_for_summary(&s, &item, "Renamed past a stalled client");

    // The stalled clients are dropped (with a 408) well before this generous deadline.
    for conn in [&mut stalled, &mut half_head] {
        conn.set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut rest = String::new();
        let r = conn.read_to_string(&mut rest);
        assert!(r.is_ok(), "not closed by the server: {r:?}");
        assert!(rest.starts_with("HTTP/1.1 408 "), "{rest:?}");
    }
}

/// Issue 9 item 3: with API_TOKEN, everything but /health and the webhook needs it; and
/// no answer without it carries the CalDAV user name or the state directory.
#[test]
fn api_token_guards_details_and_public_answers_hold_no_names_or_paths() {
    let radicale = server("Radicale", "RADICALE");
    assert!(!radicale.user.is_empty(), "Radicale runs with a login");
    let mut s = Setup::new(radicale.clone(), &[4]);
    s.env
        .push(("CALDAV_PASSWORD".into(), "wrong-password".into()));
    const TOKEN: &str = "api-token-0123456789";
    let d = start(&s, &[("API_TOKEN", TOKEN)]);
    assert_eq!(metric(&d, "cycles_failed"), 1, "the login fails");
    let state_dir = s.state.display().to_string();
    let user = radicale.user.clone();

    for path in [
        "/api/v1/metrics",
        "/metrics",
        "/webhooks/status",
        "/api/v1/health",
    ] {
        let url = format!("{}{path}", d.url);
        assert_eq!(get(&url).0, 401, "{path} without the token");
        assert_eq!(get_with(&url, Some("wrong")).0, 401, "{path}, wrong token");
        let (code, body) = get_with(&url, Some(TOKEN));
        assert_eq!(code, 200, "{path} with the token: {body}");
    }
    let (code, health) = get(&format!("{}/health", d.url));
    assert_eq!(code, 200, "/health stays open: {health}");
    let body = r#"{"event":"cycle","action":"created","data":{"id":"c"}}"#;
    assert_eq!(
        deliver(&d, body, None).0,
        202,
        "the webhook has its signature"
    );

    let (_, full) = get_with(&format!("{}/api/v1/metrics", d.url), Some(TOKEN));
    assert!(
        full.contains(&format!("rejected user \\\"{user}\\\"")),
        "authenticated: full message: {full}"
    );
    let (_, status) = get_with(&format!("{}/webhooks/status", d.url), Some(TOKEN));
    assert!(
        status.contains(&state_dir),
        "authenticated: the path: {status}"
    );

    // The same daemon without API_TOKEN: open, but scrubbed.
    drop(d);
    let d = start(&s, &[]);
    for path in [
        "/api/v1/metrics",
        "/webhooks/status",
        "/api/v1/health",
        "/health",
    ] {
        let (code, body) = get(&format!("{}{path}", d.url));
        assert_eq!(code, 200, "{path}");
        assert!(!body.contains(&user), "{path} names the user: {body}");
        assert!(!body.contains(&state_dir), "{path} shows the path: {body}");
    }
    let (_, m) = get(&format!("{}/api/v1/metrics", d.url));
    assert!(
        m.contains("\"last_error\":\"caldav: login refused ("),
        "{m}"
    );
}

/// Issue 9 item 5: a cycle in which every project failed is a failed cycle, and a
/// webhook's successful one-item sync does not end the failure streak.
#[test]
fn every_project_failing_is_a_failure_and_a_webhook_does_not_reset_the_streak() {
    let radicale = server("Radicale", "RADICALE");
    let s = Setup::new(radicale, &[6, 6]);
    s.fake.with_world(|w| {
        for _ in 0..2 {
            w.push_fault_for("/work-items/", common::fake_plane::Fault::Status(404));
        }
    });
    let d = start(&s, &[]);
    assert_eq!(metric(&d, "cycles_failed"), 1, "both projects failed");
    assert_eq!(metric(&d, "consecutive_failures"), 1);
    let (_, m) = get(&format!("{}/api/v1/metrics", d.url));
    assert!(m.contains("every project failed (2)"), "{m}");

    // The failed cycle is retried about 10 s later; the webhook is synced long before.
    let item = dated_item(&s);
    s.fake
        .with_world(|w| w.rename(&item, "Synced by a webhook"));
    let body = webhook_for(&s, &item, "name");
    assert_eq!(deliver(&d, &body, None).0, 202);
    let until = Instant::now() + Duration::from_secs(20);
    let snapshot = loop {
        let (_, m) = get(&format!("{}/api/v1/metrics", d.url));
        if m.contains("\"cycles\":2,") {
            break m;
        }
        assert!(
            Instant::now() < until,
            "the webhook cycle was not recorded: {m}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        snapshot.contains("\"cycles_failed\":1,") && snapshot.contains("\"last_success\":\"20"),
        "the webhook cycle succeeded: {snapshot}"
    );
    assert!(
        snapshot.contains("\"consecutive_failures\":1,"),
        "a one-item sync says nothing about the whole: {snapshot}"
    );
    wait_for_summary(&s, &item, "Synced by a webhook");
}

/// Issue 9 item 6: ids must be UUIDs before they reach a Plane URL, and a repeated
/// `X-Plane-Delivery` is answered without work.
#[test]
fn webhook_ids_are_uuids_and_replayed_deliveries_do_nothing() {
    let radicale = server("Radicale", "RADICALE");
    let s = Setup::new(radicale, &[6]);
    let d = start(&s, &[]);
    let item = dated_item(&s);
    s.fake.clear_requests();

    let traversal = webhook_for(&s, &item, "name").replace(&item, "../../users/me");
    let (code, answer) = deliver(&d, &traversal, None);
    assert_eq!(code, 400, "{answer}");
    assert!(answer.contains("not a UUID"), "{answer}");

    s.fake.with_world(|w| w.rename(&item, "Delivered once"));
    let body = webhook_for(&s, &item, "name");
    let id = "9c5e3f0e-5b7a-4f0e-8d4b-1f2a3b4c5d6e";
    assert_eq!(
        deliver(&d, &body, Some(id)),
        (202, r#"{"status":"accepted"}"#.into())
    );
    wait_for_summary(&s, &item, "Delivered once");
    for _ in 0..5 {
        assert_eq!(
            deliver(&d, &body, Some(id)),
            (202, r#"{"status":"duplicate"}"#.into())
        );
    }
    std::thread::sleep(Duration::from_secs(3)); // a batch would have run by now
    let (one, lists) = plane_reads(&s, &item);
    assert_eq!((one, lists), (1, 0), "{:?}", s.fake.requests());
    assert!(
        !s.fake
            .requests()
            .iter()
            .any(|r| r.path.contains("users/me")),
        "{:?}",
        s.fake.requests()
    );
    assert_eq!(metric_in(&d, &["webhooks", "duplicate"]), 5);
}

/// Issue 9 item 21: a webhook about a project outside PLANE_PROJECTS costs no Plane
/// request, and SYNC_ASSIGNEES e-mails are resolved once, not on every webhook.
#[test]
fn webhooks_about_other_projects_and_assignee_emails_cost_no_plane_requests() {
    let radicale = server("Radicale", "RADICALE");
    let s = Setup::new(radicale, &[6, 6]);
    let w = s.fake.world();
    let email = w.members[0].email.clone();
    let ours = w.projects[0].identifier.clone();
    let d = start(
        &s,
        &[
            ("PLANE_PROJECTS", &ours),
            ("SYNC_ASSIGNEES", &email),
            ("LOG_LEVEL", "debug"),
        ],
    );
    let members = |s: &Setup| {
        s.fake
            .requests()
            .iter()
            .filter(|r| r.path.ends_with("/members/") && !r.path.contains("/projects/"))
            .count()
    };
    assert_eq!(members(&s), 1, "the first cycle lists members once");

    let other = w.projects[1].visible_items()[0].id.clone();
    s.fake.clear_requests();
    let body = webhook_for(&s, &other, "name");
    assert_eq!(deliver(&d, &body, None).0, 202);
    wait_for_log(&d, "which is not synced; ignored");
    assert!(s.fake.requests().is_empty(), "{:?}", s.fake.requests());

    for n in 0..2u64 {
        let item = dated_item(&s);
        let body = webhook_for(&s, &item, "name");
        assert_eq!(deliver(&d, &body, None).0, 202);
        let until = Instant::now() + Duration::from_secs(20);
        while metric(&d, "cycles") < 2 + n {
            assert!(Instant::now() < until, "webhook {n} was not synced");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    assert_eq!(members(&s), 0, "{:?}", s.fake.requests());
}

/// Issue 9 item 21: a rate-limit wait (Retry-After up to 90 s) ends on SIGTERM.
#[test]
fn sigterm_ends_a_rate_limit_wait() {
    let radicale = server("Radicale", "RADICALE");
    let s = Setup::new(radicale, &[4]);
    let mut d = start(&s, &[]);
    s.fake.with_world(|w| {
        w.rate_limit = 1;
        w.rate_window = Duration::from_secs(90);
    });
    let item = dated_item(&s);
    let body = webhook_for(&s, &item, "name");
    assert_eq!(deliver(&d, &body, None).0, 202);
    wait_for_log(&d, "Plane rate limit reached; waiting");
    let stop = Instant::now();
    Command::new("kill")
        .args(["-TERM", &d.child.id().to_string()])
        .status()
        .unwrap();
    // Generous, but far below the ~90 s the wait would last.
    let until = stop + Duration::from_secs(30);
    let status = loop {
        if let Some(st) = d.child.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < until, "still waiting out the rate limit");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "{status:?}");
    eprintln!(
        "stopped {:.1} s after SIGTERM",
        stop.elapsed().as_secs_f64()
    );
}
