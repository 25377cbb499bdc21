//! A real sync client that rewrites whole objects: PyPI vdirsyncer (through
//! tests/vdir_roundtrip.py) syncs a calendar calplanebot made into a directory of .ics files,
//! a date is edited in one file as in a text editor, and vdirsyncer sends the file back.
//! After one `calplanebot --once` Plane has exactly that change (one PATCH of the target
//! date, nothing else written) and the calendar's other objects are untouched; another
//! vdirsyncer round trip, and a round trip that only rewrites bytes, write nothing.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::fake_plane::{RequestLog, WorkItem, World};
use common::{dump, next_day, server, unique_tag, var, verifier, Calendar, Object, Server, Setup};
use miniserde::json::{self, Value};

/// Days the edited date moves, later: a start date before the target stays before it (a
/// target moved before the start would drag the start along, a second field).
const SHIFT_DAYS: usize = 9;

/// Visible work items of the one project: about half are dated and open, so about ten
/// calendar objects.
const ITEMS: usize = 20;

/// Fewer objects than this means the generated world changed under the test.
const MIN_OBJECTS: usize = 8;

/// Length in days of the spans given to one-day items in span mode.
const SPAN_DAYS: usize = 3;

/// `calplanebot --once` runs that must write nothing once everything settled.
const IDLE_CYCLES: usize = 3;

/// A directory synced by vdirsyncer; removed when dropped.
struct Vdir {
    dir: PathBuf,
    server: Server,
}

/// What one `vdir_roundtrip.py pull`/`push` reported.
struct VdirRun {
    /// File contents by UID.
    files: BTreeMap<String, String>,
    /// vdirsyncer's own output lines.
    log: Vec<String>,
}

impl VdirRun {
    /// What vdirsyncer copied or deleted, either way ("Copying (updating) item UID to
    /// remote", "Deleting item UID from local" …): every other line of its log is chatter.
    fn changes(&self) -> Vec<String> {
        self.log
            .iter()
            .filter(|l| l.starts_with("Copying ") || l.starts_with("Deleting "))
            .cloned()
            .collect()
    }
}

impl Vdir {
    fn new(server: &Server) -> Vdir {
        let dir = std::env::temp_dir().join(format!("calplanebot-vdir-{}", unique_tag()));
        let _ = std::fs::remove_dir_all(&dir);
        Vdir {
            dir,
            server: server.clone(),
        }
    }

    /// Runs tests/vdir_roundtrip.py; panics with its output unless it succeeded.
    fn script(&self, args: &[&str], with_login: bool) -> Value {
        let python = var("PYTHON").expect("PYTHON (set by tests/run.sh)");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vdir_roundtrip.py");
        let mut c = Command::new(python);
        c.arg(script).args(args);
        if with_login && !self.server.user.is_empty() {
            c.args([
                "--user",
                &self.server.user,
                "--password",
                &self.server.password,
            ]);
        }
        let out = c.output().expect("run vdir_roundtrip.py");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}: vdir_roundtrip.py {} failed: {}{}",
            self.server.name,
            args[0],
            stdout,
            String::from_utf8_lossy(&out.stderr)
        );
        json::from_str(&stdout).unwrap_or_else(|e| panic!("vdir_roundtrip JSON ({e}): {stdout}"))
    }

    fn sync_run(&self, args: &[&str]) -> VdirRun {
        let doc = self.script(args, true);
        let files = array(&doc, "files")
            .iter()
            .map(|f| (text(f, "uid"), text(f, "ical")))
            .collect();
        let log = array(&doc, "log").iter().map(text_of).collect();
        VdirRun { files, log }
    }

    /// `pull`: vdirsyncer discover + sync of `calendar_url` into the directory.
    fn pull(&self, calendar_url: &str) -> VdirRun {
        let dir = self.dir.display().to_string();
        self.sync_run(&["pull", "--url", calendar_url, "--dir", &dir])
    }

    /// `push`: vdirsyncer sync again, local edits go to the server.
    fn push(&self) -> VdirRun {
        let dir = self.dir.display().to_string();
        self.sync_run(&["push", "--dir", &dir])
    }

    /// `edit-date`: the date digits of one file change, nothing else.
    fn edit_date(&self, uid: &str, to: &str) -> Value {
        let dir = self.dir.display().to_string();
        self.script(
            &["edit-date", "--dir", &dir, "--uid", uid, "--to", to],
            false,
        )
    }

    /// The path of the file holding `uid`.
    fn file_of(&self, uid: &str) -> PathBuf {
        std::fs::read_dir(&self.dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "ics"))
            .find(|p| {
                std::fs::read_to_string(p)
                    .unwrap()
                    .contains(&format!("\nUID:{uid}"))
            })
            .unwrap_or_else(|| panic!("no file for {uid} in {}", self.dir.display()))
    }
}

impl Drop for Vdir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The calendar calplanebot made for the test; deleted when dropped, also when it failed,
/// so the calendar home does not fill up.
struct CalendarCleanup {
    server: Server,
    url: String,
}

impl Drop for CalendarCleanup {
    fn drop(&mut self) {
        let out = verifier(&self.server, &["delete", "--url", &self.url]).output();
        if !matches!(&out, Ok(o) if o.status.success()) {
            eprintln!("could not delete the test calendar {}: {out:?}", self.url);
        }
    }
}

fn field<'a>(v: &'a Value, key: &str) -> &'a Value {
    static NULL: Value = Value::Null;
    match v {
        Value::Object(o) => o.get(key).unwrap_or(&NULL),
        _ => &NULL,
    }
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => json::to_string(other),
    }
}

fn text(v: &Value, key: &str) -> String {
    text_of(field(v, key))
}

fn array<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    match field(v, key) {
        Value::Array(a) => a,
        _ => &[],
    }
}

/// The one calendar at `url`, read by the verifier (a Depth-1 dump of the home would read
/// every other test's calendars too).
fn calendar_at(server: &Server, url: &str) -> Calendar {
    let mut cals = dump(server, url);
    assert_eq!(cals.len(), 1, "{}: {url} is not one calendar", server.name);
    cals.remove(0)
}

/// Objects by UID.
fn by_uid(c: &Calendar) -> BTreeMap<String, Object> {
    c.objects
        .iter()
        .map(|o| (o.uid.clone(), o.clone()))
        .collect()
}

/// The work item id in one of our UIDs.
fn item_id(uid: &str) -> &str {
    uid.strip_prefix("plane-issue-")
        .and_then(|r| r.strip_suffix("@calplanebot"))
        .unwrap_or_else(|| panic!("not our UID: {uid}"))
}

/// Plane requests other than reads since the log was cleared.
fn plane_writes(s: &Setup) -> Vec<RequestLog> {
    s.fake
        .requests()
        .into_iter()
        .filter(|r| r.method != "GET")
        .collect()
}

/// The files vdirsyncer wrote are the calendar's objects, byte for byte but for line ends
/// (vdirsyncer stores what it fetched with LF).
fn assert_files_match(server: &Server, files: &BTreeMap<String, String>, cal: &Calendar) {
    let objects = by_uid(cal);
    assert_eq!(
        files.keys().collect::<Vec<_>>(),
        objects.keys().collect::<Vec<_>>(),
        "{}: the directory holds other UIDs than the calendar",
        server.name
    );
    for (uid, ical) in files {
        let served = objects[uid].ical.replace("\r\n", "\n");
        assert_eq!(
            ical.trim_end(),
            served.trim_end(),
            "{}: file of {uid}",
            server.name
        );
    }
}

/// ETags by UID of every object but `except`.
fn other_etags(cal: &Calendar, except: &str) -> BTreeMap<String, String> {
    cal.objects
        .iter()
        .filter(|o| o.uid != except)
        .map(|o| (o.uid.clone(), o.etag.clone()))
        .collect()
}

/// ETags by UID.
fn etags(cal: &Calendar) -> BTreeMap<String, String> {
    other_etags(cal, "")
}

/// The last segment of a URL path (a work item id in a PATCH).
fn last_segment(path: &str) -> &str {
    path.trim_end_matches('/').rsplit('/').next().unwrap_or("")
}

/// `IDLE_CYCLES` more `--once`: no calendar write, no Plane write.
fn assert_idle(s: &Setup, after: &str) {
    s.fake.clear_requests();
    for n in 0..IDLE_CYCLES {
        let r = s.sync();
        r.assert_ok();
        let writes = r.dav_requests("PUT") + r.dav_requests("DELETE");
        assert_eq!(
            writes, 0,
            "{}: cycle {n} after {after} wrote to the calendar:\n{}",
            s.server.name, r.stdout
        );
    }
    let writes = plane_writes(s);
    assert!(
        writes.is_empty(),
        "{}: Plane was written after {after}: {writes:?}",
        s.server.name
    );
}

/// `date` (YYYY-MM-DD) plus `days`.
fn add_days(date: &str, days: usize) -> String {
    (0..days).fold(date.to_string(), |d, _| next_day(&d))
}

/// The edit of the test: which object, the date typed into its file, and the one PATCH
/// body that must reach Plane.
struct Edit {
    uid: String,
    to: String,
    body: String,
}

/// Picks the object to edit. In span mode one whose item has a start date, so the file
/// shows both dates and vdirsyncer's edit moves the start too; otherwise one where only the
/// target date can move.
fn pick_edit(s: &Setup, cal: &Calendar, span: bool) -> Edit {
    let world = s.fake.world();
    let (o, item) = cal
        .objects
        .iter()
        .map(|o| (o, world.item(item_id(&o.uid)).unwrap()))
        .find(|(_, i)| {
            let target = i.target_date.as_deref().unwrap_or_default();
            let start = i.start_date.as_deref().filter(|d| *d != target);
            match (span, start) {
                (true, start) => start.is_some_and(|d| d < target),
                (false, start) => start.is_none_or(|d| d <= target),
            }
        })
        .unwrap_or_else(|| panic!("{}: no object to edit", s.server.name));
    let target = add_days(item.target_date.as_deref().unwrap(), SHIFT_DAYS);
    let body = match (span, &item.start_date) {
        (true, Some(start)) => format!(
            r#"{{"start_date":"{}","target_date":"{target}"}}"#,
            add_days(start, SHIFT_DAYS)
        ),
        _ => format!(r#"{{"target_date":"{target}"}}"#),
    };
    Edit {
        uid: o.uid.clone(),
        to: add_days(&anchor_date(o), SHIFT_DAYS),
        body,
    }
}

/// The date `vdir_roundtrip.py edit-date` moves to `--to`: DUE of a task, else DTSTART.
fn anchor_date(o: &Object) -> String {
    o.prop("DUE")
        .or_else(|| o.prop("DTSTART"))
        .unwrap_or_default()
}

/// Every dated item of project 0 without a start date starts on its target date and ends
/// `SPAN_DAYS` later, so span mode shows both dates (few generated open items have both).
fn give_spans(w: &mut World) {
    let one_day: Vec<(String, String)> = w.projects[0]
        .items
        .iter()
        .filter(|i| i.start_date.is_none() || i.start_date == i.target_date)
        .filter_map(|i| Some((i.id.clone(), i.target_date.clone()?)))
        .collect();
    for (id, target) in one_day {
        w.update(&id, |i| {
            i.target_date = Some(add_days(&target, SPAN_DAYS));
            i.start_date = Some(target);
        });
    }
}

/// The file with a reminder added before the end of its main component, in the file's own
/// line ends (what a user adding an alarm in a text editor does).
fn with_alarm(ics: &str) -> String {
    let eol = if ics.contains("\r\n") { "\r\n" } else { "\n" };
    let alarm = [
        "BEGIN:VALARM",
        "ACTION:DISPLAY",
        "DESCRIPTION:Reminder",
        "TRIGGER:-PT15M",
        "END:VALARM",
    ]
    .map(|l| format!("{l}{eol}"))
    .concat();
    let end = ["END:VEVENT", "END:VTODO"]
        .iter()
        .find_map(|e| ics.find(&format!("{eol}{e}{eol}")))
        .expect("a VEVENT or VTODO");
    format!("{}{eol}{alarm}{}", &ics[..end], &ics[end + eol.len()..])
}

/// Replaces `path` like an editor saves: a new file renamed over the old one.
fn save(path: &Path, text: &str) {
    let tmp = path.with_extension("saving");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// One server's round trip: the fake Plane, the calendar calplanebot made, a vdirsyncer
/// directory; each cleans up when dropped.
struct RoundTrip {
    s: Setup,
    url: String,
    span: bool,
    vdir: Vdir,
    _cleanup: CalendarCleanup,
}

impl RoundTrip {
    /// Step 1: the first `--once` with these extra variables (ITEM_KIND, DATE_MODE) makes
    /// the calendar; returns it as read.
    fn start(server: Server, home: &str, env: &[(&str, &str)]) -> (RoundTrip, Calendar) {
        let mut s = Setup::new(server.clone(), &[ITEMS]);
        s.env
            .extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let span = env.contains(&("DATE_MODE", "span"));
        if span {
            s.fake.with_world(give_spans);
        }
        let project = s.fake.world().projects[0].clone();
        // The documented place of a calendar calplanebot makes (design §2); the name
        // check below fails if it went elsewhere.
        let url = format!("{home}plane-{}/", project.identifier.to_lowercase());
        let cleanup = CalendarCleanup {
            server: server.clone(),
            url: url.clone(),
        };
        s.sync().assert_ok();
        let cal = calendar_at(&server, &url);
        assert_eq!(cal.name, format!("Plane: {}", project.name));
        assert!(
            cal.objects.len() >= MIN_OBJECTS,
            "{}: only {} objects",
            server.name,
            cal.objects.len()
        );
        let rt = RoundTrip {
            s,
            url,
            span,
            vdir: Vdir::new(&server),
            _cleanup: cleanup,
        };
        (rt, cal)
    }

    fn server(&self) -> &Server {
        &self.s.server
    }

    fn calendar(&self) -> Calendar {
        calendar_at(self.server(), &self.url)
    }

    /// Step 2: vdirsyncer downloads every object, as served.
    fn pull(&self, cal: &Calendar) {
        let pulled = self.vdir.pull(&self.url);
        assert_files_match(self.server(), &pulled.files, cal);
    }

    /// Step 3: the date edited in one file; vdirsyncer uploads that file and no other.
    /// Returns the calendar as it is then.
    fn edit_and_push(&self, before: &Calendar, edit: &Edit) -> Calendar {
        let name = &self.server().name;
        let uid = edit.uid.as_str();
        let done = self.vdir.edit_date(uid, &edit.to);
        assert_eq!(
            text(&done, "from"),
            anchor_date(&by_uid(before)[uid]),
            "{name}: the file showed another date than the server"
        );
        let pushed = self.vdir.push();
        assert_eq!(
            pushed.changes(),
            vec![format!("Copying (updating) item {uid} to remote")],
            "{name}"
        );
        let edited = self.calendar();
        assert_eq!(anchor_date(&by_uid(&edited)[uid]), edit.to, "{name}");
        assert_eq!(
            other_etags(&edited, uid),
            other_etags(before, uid),
            "{name}: vdirsyncer changed other objects"
        );
        edited
    }

    /// Step 4: one `--once`: exactly the edit's PATCH reaches Plane, nothing else is written
    /// to Plane or the calendar. Returns the calendar as it is then.
    fn sync_edit(&self, edited: &Calendar, edit: &Edit) -> Calendar {
        let name = &self.server().name;
        let id = item_id(&edit.uid);
        let others: Vec<WorkItem> = self.s.fake.world().projects[0]
            .items
            .iter()
            .filter(|i| i.id != id)
            .cloned()
            .collect();
        self.s.fake.clear_requests();
        let r = self.s.sync();
        r.assert_ok();
        assert_eq!(r.count("Conflicts"), 0, "{name}: {}", r.stdout);
        assert_eq!(
            r.dav_requests("PUT") + r.dav_requests("DELETE"),
            0,
            "{name}: a calendar edit needs no calendar write:\n{}",
            r.stdout
        );
        let writes: Vec<(String, String, String)> = plane_writes(&self.s)
            .into_iter()
            .map(|w| (w.method, last_segment(&w.path).to_string(), w.body))
            .collect();
        assert_eq!(
            writes,
            vec![("PATCH".to_string(), id.to_string(), edit.body.clone())],
            "{name}: Plane writes"
        );
        let world = self.s.fake.world();
        let item = world.item(id).unwrap();
        let dates = format!(
            "{{{}\"target_date\":\"{}\"}}",
            match (&item.start_date, self.span) {
                (Some(d), true) => format!("\"start_date\":\"{d}\","),
                _ => String::new(),
            },
            item.target_date.as_deref().unwrap_or_default()
        );
        assert_eq!(dates, edit.body, "{name}: the item's dates");
        for before in &others {
            let now = world.item(&before.id).unwrap();
            assert_eq!(
                now.updated_at, before.updated_at,
                "{name}: {} changed",
                before.id
            );
        }
        let synced = self.calendar();
        assert_eq!(
            etags(&synced),
            etags(edited),
            "{name}: calplanebot rewrote objects"
        );
        synced
    }

    /// Step 5: vdirsyncer again: nothing to fetch (calplanebot wrote nothing), nothing to send;
    /// then calplanebot stays idle.
    fn second_round_trip(&self, synced: &Calendar) {
        let again = self.vdir.pull(&self.url);
        assert_files_match(self.server(), &again.files, synced);
        assert_eq!(
            again.changes(),
            Vec::<String>::new(),
            "{}",
            self.server().name
        );
        let nothing = self.vdir.push();
        assert_eq!(
            nothing.changes(),
            Vec::<String>::new(),
            "{}",
            self.server().name
        );
        assert_idle(&self.s, "the second vdirsyncer round trip");
    }

    /// Step 6a: rewrites that change no content. A touched file and a file saved with CRLF
    /// line ends are the same item to vdirsyncer (it compares a hash of the sorted
    /// properties, not bytes or mtimes), so it uploads neither and calplanebot stays idle.
    fn rewrite_files(&self, synced: &Calendar, touched: &str, crlf: &str) {
        let name = &self.server().name;
        let later = std::time::SystemTime::now() + std::time::Duration::from_secs(60);
        let f = std::fs::File::options()
            .write(true)
            .open(self.vdir.file_of(touched))
            .unwrap();
        f.set_modified(later).unwrap();
        drop(f);
        let crlf = self.vdir.file_of(crlf);
        let text = std::fs::read_to_string(&crlf).unwrap();
        assert!(!text.contains('\r'), "{name}: vdirsyncer wrote CRLF");
        save(&crlf, &text.replace('\n', "\r\n"));
        let pushed = self.vdir.push();
        assert_eq!(pushed.changes(), Vec::<String>::new(), "{name}");
        assert_eq!(etags(&self.calendar()), etags(synced), "{name}");
        assert_idle(&self.s, "a touched file and a CRLF file");
    }

    /// Step 6b: a reminder added in a file changes no synced field, but vdirsyncer uploads
    /// the whole object: calplanebot reads it, writes nothing, and the reminder stays.
    fn add_reminder(&self, synced: &Calendar, uid: &str) {
        let name = &self.server().name;
        let file = self.vdir.file_of(uid);
        save(&file, &with_alarm(&std::fs::read_to_string(&file).unwrap()));
        let pushed = self.vdir.push();
        assert_eq!(
            pushed.changes(),
            vec![format!("Copying (updating) item {uid} to remote")],
            "{name}"
        );
        let with_reminder = etags(&self.calendar());
        let mut want = etags(synced);
        want.insert(uid.to_string(), with_reminder[uid].clone());
        assert_eq!(
            with_reminder, want,
            "{name}: only the reminder's object moved"
        );
        assert_ne!(with_reminder[uid], etags(synced)[uid], "{name}");
        assert_idle(&self.s, "a reminder added in a file");
        let after = self.calendar();
        assert_eq!(etags(&after), with_reminder, "{name}");
        assert_eq!(by_uid(&after)[uid].alarms, 1, "{name}: the reminder");
    }
}

/// Steps 1–6 against one server, with these extra variables for calplanebot.
fn round_trip(server: Server, home_var: &str, env: &[(&str, &str)]) {
    let home = var(home_var).unwrap_or_else(|| panic!("{home_var} is not set"));
    let (rt, before) = RoundTrip::start(server, &home, env);
    rt.pull(&before);
    let edit = pick_edit(&rt.s, &before, rt.span);
    let edited = rt.edit_and_push(&before, &edit);
    let synced = rt.sync_edit(&edited, &edit);
    rt.second_round_trip(&synced);
    let others: Vec<&str> = synced
        .objects
        .iter()
        .map(|o| o.uid.as_str())
        .filter(|u| *u != edit.uid)
        .collect();
    rt.rewrite_files(&synced, others[0], others[1]);
    rt.add_reminder(&synced, others[2]);
}

const EVENTS: &[(&str, &str)] = &[("ITEM_KIND", "vevent")];
const TASKS: &[(&str, &str)] = &[("ITEM_KIND", "vtodo")];
/// DTSTART is the start date, so vdirsyncer's edit moves both dates.
const EVENT_SPANS: &[(&str, &str)] = &[("ITEM_KIND", "vevent"), ("DATE_MODE", "span")];
/// DTSTART is the start date and DUE the target: the edit moves both.
const TASK_SPANS: &[(&str, &str)] = &[("ITEM_KIND", "vtodo"), ("DATE_MODE", "span")];

#[test]
fn events_radicale() {
    round_trip(server("Radicale", "RADICALE"), "RADICALE_HOME", EVENTS);
}

#[test]
fn events_xandikos() {
    round_trip(server("Xandikos", "XANDIKOS"), "XANDIKOS_HOME", EVENTS);
}

#[test]
fn events_sabredav_digest() {
    round_trip(server("SabreDAV", "SABRE"), "SABRE_HOME", EVENTS);
}

#[test]
fn events_apache_digest() {
    round_trip(
        server("Apache Digest → Radicale", "APACHE_DIGEST"),
        "APACHE_DIGEST_HOME",
        EVENTS,
    );
}

#[test]
fn tasks_radicale() {
    round_trip(server("Radicale", "RADICALE"), "RADICALE_HOME", TASKS);
}

#[test]
fn event_spans_sabredav_digest() {
    round_trip(server("SabreDAV", "SABRE"), "SABRE_HOME", EVENT_SPANS);
}

#[test]
fn task_spans_radicale() {
    round_trip(server("Radicale", "RADICALE"), "RADICALE_HOME", TASK_SPANS);
}

/// Cyrus IMAP 3.6 (issue 9, item 14).
#[test]
fn events_cyrus() {
    round_trip(server("Cyrus", "CYRUS"), "CYRUS_HOME", EVENTS);
}

#[test]
fn tasks_cyrus() {
    round_trip(server("Cyrus", "CYRUS"), "CYRUS_HOME", TASKS);
}
