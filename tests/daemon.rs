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
    let mut r = agent().get(url).call().unwrap();
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
    let (_, body) = get(&format!("{}/api/v1/metrics", d.url));
    let v: Value = json::from_str(&body).unwrap();
    match v {
        Value::Object(o) => match o.get(key) {
            Some(Value::Number(n)) => n.to_string().parse().unwrap(),
            _ => 0,
        },
        _ => 0,
    }
}

/// Starts `calplanebot run` and waits for its first full cycle.
fn start(s: &Setup, extra: &[(&str, &str)]) -> Daemon {
    let port = free_port();
    let log = s.state.with_extension(format!("daemon-{port}.log"));
    let child = Command::new(env!("CARGO_BIN_EXE_calplanebot"))
        .arg("run")
        .env_clear()
        .envs(s.vars())
        .env("HTTP_BIND", format!("127.0.0.1:{port}"))
        .env("PLANE_WEBHOOK_SECRET", SECRET)
        .env("SYNC_INTERVAL_SECONDS", "3600")
        .envs(extra.iter().copied())
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
    let Some(radicale) = server("Radicale", "RADICALE") else {
        return;
    };
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

    // Plane sends one delivery per changed field: 100 of them for one item.
    s.fake.clear_requests();
    s.fake
        .with_world(|w| w.rename(&item, "Renamed again, many fields"));
    let body = webhook_for(&s, &item, "priority");
    let sig = sign_webhook(SECRET, body.as_bytes());
    let url = format!("{}/webhooks/plane", d.url);
    let a = agent();
    for _ in 0..100 {
        let r = a
            .post(&url)
            .header("X-Plane-Signature", &sig)
            .send(body.as_bytes())
            .unwrap();
        assert_eq!(r.status().as_u16(), 202);
    }
    wait_for_summary(&s, &item, "Renamed again, many fields");
    std::thread::sleep(Duration::from_secs(3)); // let any trailing batch run
    let (one, lists) = plane_reads(&s, &item);
    assert_eq!(lists, 0);
    assert!((1..=3).contains(&one), "100 webhooks caused {one} fetches");
    eprintln!("100 webhooks for one item → {one} fetch(es)");
}

/// Found against real Plane: a calendar edit made since the last cycle, then a colleague's
/// change of the same item in Plane and its webhook. Both changes must survive.
#[test]
fn a_webhook_merges_a_pending_calendar_edit() {
    let Some(radicale) = server("Radicale", "RADICALE") else {
        return;
    };
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
    let Some(radicale) = server("Radicale", "RADICALE") else {
        return;
    };
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
    let Some(radicale) = server("Radicale", "RADICALE") else {
        return;
    };
    let s = Setup::new(radicale, &[6]);
    let log_file = s.state.with_extension("service.log");
    let d = start(&s, &[("LOG_FILE", log_file.to_str().unwrap())]);

    let (code, body) = get(&format!("{}/health", d.url));
    assert_eq!(code, 200);
    let v: Value = json::from_str(&body).unwrap();
    assert_eq!(keys(&v), ["status", "timestamp", "version"]);

    let (code, body) = get(&format!("{}/api/v1/health", d.url));
    assert_eq!(code, 200);
    let v: Value = json::from_str(&body).unwrap();
    assert_eq!(keys(&v), ["services", "stats", "status", "timestamp"]);
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
    let Some(radicale) = server("Radicale", "RADICALE") else {
        return;
    };
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
    let Some(radicale) = server("Radicale", "RADICALE") else {
        return;
    };
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
    let Some(radicale) = server("Radicale", "RADICALE") else {
        return;
    };
    let mut s = Setup::new(radicale, &[4]);
    s.env
        .push(("PLANE_API_TOKEN".into(), "plane_api_revoked".into()));
    let mut d = start(&s, &[]);
    assert_eq!(metric(&d, "cycles_failed"), 1);
    let (code, _) = get(&format!("{}/health", d.url));
    assert_eq!(code, 200, "one failure is not yet unhealthy");
    let (_, m) = get(&format!("{}/api/v1/metrics", d.url));
    assert!(m.contains("Plane rejected the API token"), "{m}");
    assert!(!m.contains("plane_api_revoked"), "no secrets in metrics");
    assert!(
        m.contains("\"next_sync\":\"20"),
        "a retry is scheduled: {m}"
    );
    assert!(d.child.try_wait().unwrap().is_none(), "still running");
}
