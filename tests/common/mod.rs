//! Shared helpers of the integration tests: real CalDAV servers started by `tests/run.sh`
//! (found through the variables of `.tests/run/servers.env`), the fake Plane, the real
//! `calplanebot` binary, and the independent Python verifier (`tests/caldav_verify.py`).
#![allow(dead_code)]

#[path = "../fake_plane/mod.rs"]
pub mod fake_plane;
pub mod proxy;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use fake_plane::{FakePlane, World};
use miniserde::json::{self, Value};

/// A CalDAV server to sync against.
#[derive(Debug, Clone)]
pub struct Server {
    /// Short name for messages.
    pub name: &'static str,
    /// Base URL (what a user would put in CALDAV_URL).
    pub url: String,
    /// Login, empty for none.
    pub user: String,
    /// Password.
    pub password: String,
}

/// The server whose variables start with `prefix` (e.g. `RADICALE`). Without them the
/// test fails: `tests/run.sh` starts every server, so a missing one is a broken setup, and
/// a test that returned early would count as passed without having run.
pub fn server(name: &'static str, prefix: &str) -> Server {
    let Some(url) = var(&format!("{prefix}_URL")) else {
        panic!(
            "{prefix}_URL is not set: {name} is not running (run the tests through \
             tests/run.sh, or `tests/servers.sh start` first)"
        );
    };
    Server {
        name,
        url,
        user: var(&format!("{prefix}_USER")).unwrap_or_default(),
        password: var(&format!("{prefix}_PASSWORD")).unwrap_or_default(),
    }
}

/// A test-setup variable: from the environment (`tests/run.sh` exports them), else from
/// `.tests/run/servers.env` (after a manual `tests/servers.sh start` and plain `cargo test`).
pub fn var(name: &str) -> Option<String> {
    if let Some(v) = std::env::var(name).ok().filter(|v| !v.is_empty()) {
        return Some(v);
    }
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join(".tests/run/servers.env");
    let text = std::fs::read_to_string(file).ok()?;
    text.lines()
        .filter_map(|l| l.split_once('='))
        .find(|(k, _)| k.trim() == name)
        .map(|(_, v)| v.trim().trim_matches('"').to_string())
        .filter(|v| !v.is_empty())
}

/// A name unique to this test process and call, short enough for a Plane identifier.
pub fn unique_tag() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::SeqCst);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut x = (t ^ (std::process::id() as u64) << 20) + n as u64 * 7919;
    let mut s = String::new();
    for _ in 0..4 {
        s.push(b"ABCDEFGHJKLMNPQRSTUVWXYZ"[(x % 24) as usize] as char);
        x /= 24;
    }
    s
}

/// The output of one run of the binary.
#[derive(Debug)]
pub struct Run {
    /// Exit code.
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error (logs).
    pub stderr: String,
}

impl Run {
    /// A count from the summary, e.g. `count("Created")`.
    pub fn count(&self, label: &str) -> usize {
        let prefix = format!("{label}:");
        self.stdout
            .lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no {label} in output:\n{}\n{}", self.stdout, self.stderr))
    }

    /// CalDAV requests of a method, from the `Requests:` line.
    pub fn dav_requests(&self, method: &str) -> usize {
        let line = self
            .stdout
            .lines()
            .find(|l| l.trim_start().starts_with("Requests:"))
            .unwrap_or_else(|| panic!("no Requests line:\n{}", self.stdout));
        let inner = line.split('(').nth(1).unwrap_or("").trim_end_matches(')');
        inner
            .split(", ")
            .find_map(|kv| kv.strip_prefix(&format!("{method} ")))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }

    /// Panics with the whole output unless the run succeeded.
    pub fn assert_ok(&self) -> &Run {
        assert_eq!(
            self.code, 0,
            "calplanebot failed:\n{}\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

/// One test's world: a fake Plane with uniquely named projects, a CalDAV server and a
/// state directory.
pub struct Setup {
    /// The fake Plane.
    pub fake: FakePlane,
    /// The CalDAV server.
    pub server: Server,
    /// STATE_DIR.
    pub state: PathBuf,
    /// Prefix of every project name (and so of every calendar name) of this test.
    pub tag: String,
    /// Extra variables for the binary.
    pub env: Vec<(String, String)>,
    /// The server behind `server` when that is a test's proxy: this test's calendars are
    /// deleted through it at the end (see [`Setup::delete_calendars`]).
    pub behind_proxy: Option<Server>,
}

impl Setup {
    /// A workspace with `items` visible work items per project.
    pub fn new(server: Server, items: &[usize]) -> Setup {
        let tag = unique_tag();
        let mut world = World::generate(items, 7);
        for (i, p) in world.projects.iter_mut().enumerate() {
            p.identifier = format!("{tag}{i}");
            p.name = format!("{tag} {}", p.name);
        }
        unique_item_ids(&mut world);
        let state = std::env::temp_dir().join(format!("calplanebot-test-{tag}"));
        let _ = std::fs::remove_dir_all(&state);
        Setup {
            fake: FakePlane::start(world),
            server,
            state,
            tag,
            env: Vec::new(),
            behind_proxy: None,
        }
    }

    /// The variables a user would set.
    pub fn vars(&self) -> Vec<(String, String)> {
        let w = self.fake.world();
        let mut v = vec![
            ("PLANE_BASE_URL".to_string(), self.fake.base_url()),
            ("PLANE_API_TOKEN".to_string(), w.api_key.clone()),
            ("PLANE_WORKSPACE_SLUG".to_string(), w.slug.clone()),
            ("CALDAV_URL".to_string(), self.server.url.clone()),
            ("CALDAV_USERNAME".to_string(), self.server.user.clone()),
            ("CALDAV_PASSWORD".to_string(), self.server.password.clone()),
            ("STATE_DIR".to_string(), self.state.display().to_string()),
            ("LOG_LEVEL".to_string(), "info".to_string()),
        ];
        v.extend(self.env.iter().cloned());
        v
    }

    /// Runs the binary with this setup's variables.
    pub fn run(&self, args: &[&str]) -> Run {
        run_binary(&self.vars(), args)
    }

    /// `calplanebot --once`.
    pub fn sync(&self) -> Run {
        self.run(&["--once"])
    }

    /// This test's calendars, read back by the independent verifier.
    pub fn dump(&self) -> Vec<Calendar> {
        dump(&self.server, &self.server.url)
            .into_iter()
            .filter(|c| c.name.starts_with(&format!("Plane: {} ", self.tag)))
            .collect()
    }

    /// The calendar of project `i`.
    pub fn calendar(&self, i: usize) -> Calendar {
        let name = format!("Plane: {}", self.fake.world().projects[i].name);
        self.dump()
            .into_iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no calendar {name:?}"))
    }
}

/// Gives the work items of a generated world ids (so event UIDs) of their own: Cyrus keeps
/// a UID unique across all calendars of a user (403 `unique-scheduling-object-resource`),
/// and the tests share one user while every world comes from the same seed. Only the first
/// UUID group changes, the same way for every item, so ids stay valid, distinct and in
/// the same order.
fn unique_item_ids(world: &mut World) {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::SeqCst) as u64;
    let x = (t ^ ((std::process::id() as u64) << 24) ^ (n << 48)) as u32;
    let remap = |id: &str| match id.get(8..) {
        Some(rest) if id.len() == 36 => format!("{x:08x}{rest}"),
        _ => id.to_string(),
    };
    for p in &mut world.projects {
        for item in &mut p.items {
            item.id = remap(&item.id);
            item.parent = item.parent.as_deref().map(remap);
        }
    }
}

/// [`World::add_item`] with an id (so an event UID) of its own, as [`unique_item_ids`]
/// gives the generated items: the world's generator returns the same id in every run, and
/// Cyrus refuses a UID that a calendar left over from an earlier run still holds.
pub fn add_unique_item(w: &mut World, identifier: &str, name: &str) -> String {
    let id = w.add_item(identifier, name);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let unique = format!(
        "{:08x}{}",
        (t ^ ((std::process::id() as u64) << 24)) as u32,
        &id[8..]
    );
    for p in &mut w.projects {
        for item in p.items.iter_mut().filter(|i| i.id == id) {
            item.id = unique.clone();
        }
    }
    unique
}

impl Drop for Setup {
    fn drop(&mut self) {
        self.delete_calendars();
        let _ = std::fs::remove_dir_all(&self.state);
    }
}

/// The servers whose calendars a finished test deletes (`{prefix}_URL`): plain HTTP, so
/// the verifier needs no CA. Through a test's proxy (which may be gone or hostile by now)
/// nothing is deleted: such a test names the server behind it ([`Setup::behind_proxy`]).
const CLEANED_SERVERS: [&str; 5] = ["RADICALE", "XANDIKOS", "SABRE", "APACHE_DIGEST", "CYRUS"];

impl Setup {
    /// Deletes the calendars this test's runs made (the journal's calendar records), so
    /// the shared servers' homes do not grow with every test: the other tests' whole-home
    /// reads stay short, and meet fewer deletions of sibling calendars. Best effort.
    fn delete_calendars(&self) {
        let server = self.behind_proxy.as_ref().unwrap_or(&self.server);
        let direct = CLEANED_SERVERS
            .iter()
            .any(|p| var(&format!("{p}_URL")).as_deref() == Some(server.url.as_str()));
        let Ok(journal) = std::fs::read_to_string(self.state.join("state.jsonl")) else {
            return;
        };
        let Some(origin) = origin_of(&server.url).filter(|_| direct) else {
            return;
        };
        let urls: BTreeSet<String> = journal
            .lines()
            .filter_map(|l| json::from_str::<Value>(l).ok())
            .filter(|v| text(v, "t") == "cal")
            .map(|v| text(&v, "href"))
            .filter(|href| href.starts_with('/'))
            .map(|href| format!("{origin}{href}"))
            .collect();
        let mut urls = urls.iter();
        let Some(first) = urls.next() else {
            return;
        };
        let mut args = vec!["cleanup", "--url", first.as_str()];
        for u in urls {
            args.extend(["--also", u.as_str()]);
        }
        let _ = verifier(server, &args).output();
    }
}

/// `http://host:port` of a URL.
fn origin_of(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("http://")?;
    let end = rest.find('/').unwrap_or(rest.len());
    Some(&url[.."http://".len() + end])
}

/// Runs the real binary with exactly these variables (the caller's environment is not
/// passed on, so a developer's own PLANE_* variables cannot leak in).
pub fn run_binary(vars: &[(String, String)], args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_calplanebot"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .current_dir(std::env::temp_dir())
        .output()
        .expect("run calplanebot");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// One calendar as the verifier read it.
#[derive(Debug, Clone)]
pub struct Calendar {
    /// Absolute URL.
    pub url: String,
    /// Display name.
    pub name: String,
    /// Supported components.
    pub components: Vec<String>,
    /// Objects.
    pub objects: Vec<Object>,
}

/// One calendar object as the verifier read it.
#[derive(Debug, Clone)]
pub struct Object {
    /// Path.
    pub href: String,
    /// Absolute URL.
    pub url: String,
    /// ETag.
    pub etag: String,
    /// UID.
    pub uid: String,
    /// VEVENT / VTODO.
    pub component: String,
    /// Raw text.
    pub ical: String,
    /// Properties of the main component, as JSON values.
    pub props: BTreeMap<String, Value>,
    /// Value types of date properties.
    pub value_types: BTreeMap<String, String>,
    /// Number of VALARMs.
    pub alarms: u64,
}

impl Object {
    /// A property as text (numbers printed, lists joined with ",").
    pub fn prop(&self, name: &str) -> Option<String> {
        self.props.get(name).map(value_text)
    }
    /// A list property (CATEGORIES).
    pub fn list(&self, name: &str) -> Vec<String> {
        match self.props.get(name) {
            Some(Value::Array(a)) => a.iter().map(value_text).collect(),
            Some(v) => vec![value_text(v)],
            None => vec![],
        }
    }
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => String::new(),
        Value::Array(a) => a.iter().map(value_text).collect::<Vec<_>>().join(","),
        Value::Object(_) => json::to_string(v),
    }
}

fn field<'a>(v: &'a Value, key: &str) -> &'a Value {
    static NULL: Value = Value::Null;
    match v {
        Value::Object(o) => o.get(key).unwrap_or(&NULL),
        _ => &NULL,
    }
}

fn text(v: &Value, key: &str) -> String {
    value_text(field(v, key))
}

fn array<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    match field(v, key) {
        Value::Array(a) => a,
        _ => &[],
    }
}

/// The verifier's command line for a server.
pub fn verifier(server: &Server, args: &[&str]) -> Command {
    let python = var("PYTHON").expect("PYTHON (set by tests/run.sh)");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/caldav_verify.py");
    let mut c = Command::new(python);
    c.arg(script).args(args);
    if !server.user.is_empty() {
        c.args(["--user", &server.user, "--password", &server.password]);
    }
    c
}

/// Every calendar under `url`, read by the verifier (PyPI caldav + icalendar).
pub fn dump(server: &Server, url: &str) -> Vec<Calendar> {
    let out = verifier(server, &["dump", "--url", url])
        .output()
        .expect("run verifier");
    assert!(
        out.status.success(),
        "verifier dump failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = json::from_str(&String::from_utf8_lossy(&out.stdout)).expect("verifier JSON");
    array(&doc, "calendars")
        .iter()
        .map(|c| Calendar {
            url: text(c, "url"),
            name: text(c, "name"),
            components: array(c, "components").iter().map(value_text).collect(),
            objects: array(c, "objects")
                .iter()
                .map(|o| Object {
                    href: text(o, "href"),
                    url: text(o, "url"),
                    etag: text(o, "etag"),
                    uid: text(o, "uid"),
                    component: text(o, "component"),
                    ical: text(o, "ical"),
                    props: match field(o, "props") {
                        Value::Object(p) => p.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                        _ => BTreeMap::new(),
                    },
                    value_types: match field(o, "value_types") {
                        Value::Object(p) => {
                            p.iter().map(|(k, v)| (k.clone(), value_text(v))).collect()
                        }
                        _ => BTreeMap::new(),
                    },
                    alarms: match field(o, "alarms") {
                        Value::Number(n) => n.to_string().parse().unwrap_or(0),
                        _ => 0,
                    },
                })
                .collect(),
        })
        .collect()
}

/// PUTs raw iCalendar text like a user's client would (`--overwrite` replaces).
pub fn put_raw(
    server: &Server,
    calendar_url: &str,
    ics: &str,
    href: Option<&str>,
    overwrite: bool,
) {
    let file = std::env::temp_dir().join(format!("calplanebot-put-{}.ics", unique_tag()));
    std::fs::write(&file, ics).unwrap();
    let f = file.display().to_string();
    let mut args = vec!["put", "--url", calendar_url, "--ics", &f];
    if let Some(h) = href {
        args.extend(["--href", h]);
    }
    if overwrite {
        args.push("--overwrite");
    }
    let out = verifier(server, &args).output().unwrap();
    let _ = std::fs::remove_file(&file);
    assert!(
        out.status.success(),
        "verifier put failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `YYYY-MM-DD` plus one day (civil calendar arithmetic, independent of calplanebot).
pub fn next_day(date: &str) -> String {
    let y: i32 = date[0..4].parse().unwrap();
    let m: u32 = date[5..7].parse().unwrap();
    let d: u32 = date[8..10].parse().unwrap();
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ][m as usize - 1];
    let (y, m, d) = if d < days {
        (y, m, d + 1)
    } else if m < 12 {
        (y, m + 1, 1)
    } else {
        (y + 1, 1, 1)
    };
    format!("{y:04}-{m:02}-{d:02}")
}

/// The object of each synced work item of project 0, by work item id.
pub fn objects(s: &Setup) -> BTreeMap<String, Object> {
    s.calendar(0)
        .objects
        .into_iter()
        .filter_map(|o| {
            let id = o
                .uid
                .strip_prefix("plane-issue-")?
                .strip_suffix("@calplanebot")?
                .to_string();
            Some((id, o))
        })
        .collect()
}

/// Runs the verifier's `edit` on one object (GET, change, PUT with If-Match).
pub fn edit(server: &Server, o: &Object, args: &[&str]) {
    let mut a = vec!["edit", "--url", &o.url];
    a.extend_from_slice(args);
    let out = verifier(server, &a).output().expect("run verifier");
    assert!(
        out.status.success(),
        "verifier edit {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Deletes a test's calendars (named "Plane: TAG …", TAG being [`Setup::tag`]) from the
/// real server when dropped: hold one for as long as the test runs.
pub struct DeleteCalendars(pub Server, pub String);

impl Drop for DeleteCalendars {
    fn drop(&mut self) {
        let prefix = format!("Plane: {} ", self.1);
        for c in dump(&self.0, &self.0.url) {
            if c.name.starts_with(&prefix) {
                let _ = verifier(&self.0, &["delete", "--url", &c.url]).output();
            }
        }
    }
}
