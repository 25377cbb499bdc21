//! Plane's objects as we use them, read from the API's JSON (`miniserde::json::Value`;
//! work items are read straight from the text, see [`super::items`]).
//!
//! Plane returns a field either as an id or, with `expand=`, as an object; these readers
//! accept both, and tolerate missing optional fields, because Plane adds and renames
//! fields between releases.

use miniserde::json::{Object, Value};

/// A Plane project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    /// UUID.
    pub id: String,
    /// Short upper-case key, e.g. `WEB` (work items are `WEB-12`).
    pub identifier: String,
    /// Display name.
    pub name: String,
}

/// A project's settings that decide how its cycles and modules are read (kept apart from
/// [`Project`], which many callers build by hand).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectSettings {
    /// IANA zone of the project (`UTC` when Plane sends none). Plane CE converts a cycle's
    /// dates with THIS zone (start day 00:00:01, end day 23:59:00 local, stored as UTC),
    /// not with the cycle's own `timezone` field, which stays `UTC`; Plane's web app shows
    /// the local dates in this zone.
    pub timezone: String,
    /// Whether the project has cycles turned on (Plane's `cycle_view`; `true` when absent).
    /// Plane still lists a disabled project's cycles (200), but its web app hides them.
    pub cycle_view: bool,
    /// Whether the project has modules turned on (`module_view`; `true` when absent).
    pub module_view: bool,
}

/// A workflow state of a project.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct State {
    /// UUID.
    pub id: String,
    /// Display name, e.g. "In Progress".
    pub name: String,
    /// One of backlog, unstarted, started, completed, cancelled (triage).
    pub group: String,
}

/// A label.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Label {
    /// UUID.
    pub id: String,
    /// Display name.
    pub name: String,
}

/// A workspace member (a user).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Member {
    /// UUID.
    pub id: String,
    /// Short display name.
    pub display_name: String,
    /// E-mail, when Plane reveals it.
    pub email: String,
}

/// A Plane work item (formerly "issue"), as listed with `expand=state,labels,assignees`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WorkItem {
    /// UUID.
    pub id: String,
    /// Project UUID.
    pub project: String,
    /// Number within the project (`WEB-12` → 12).
    pub sequence_id: u64,
    /// Title.
    pub name: String,
    /// Its state; `name`/`group` are empty when the API did not expand it.
    pub state: State,
    /// urgent, high, medium, low or none.
    pub priority: String,
    /// `YYYY-MM-DD`.
    pub start_date: Option<String>,
    /// `YYYY-MM-DD`.
    pub target_date: Option<String>,
    /// Assignees (ids only when not expanded).
    pub assignees: Vec<Member>,
    /// Labels (ids only when not expanded).
    pub labels: Vec<Label>,
    /// Description as HTML.
    pub description_html: String,
    /// RFC 3339, bumped on every change.
    pub updated_at: String,
    /// RFC 3339, set when the item entered a completed state.
    pub completed_at: Option<String>,
    /// Set when archived (archived items are hidden from lists).
    pub archived_at: Option<String>,
    /// Drafts are not real items yet.
    pub is_draft: bool,
    /// Id in the system that created the item (ours: the calendar object's UID).
    pub external_id: Option<String>,
    /// Name of that system; with `external_id` it is unique per project.
    pub external_source: Option<String>,
}

/// A Plane cycle (a sprint), as `GET …/projects/{pid}/cycles/` lists it. The listing
/// leaves archived cycles out; a cycle without both dates is a draft.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Cycle {
    /// UUID.
    pub id: String,
    /// Project UUID.
    pub project: String,
    /// Display name.
    pub name: String,
    /// RFC 3339 date-time in UTC: 00:00:01 of the first day in the PROJECT's zone (or the
    /// moment of creation, when the cycle starts that day) — see `project_timezone`.
    pub start_date: Option<String>,
    /// RFC 3339 date-time in UTC: 23:59:00 of the last day in the project's zone. (Plane
    /// converts only when a write carries both dates; a PATCH of one date alone stores
    /// that date's UTC midnight unconverted.)
    pub end_date: Option<String>,
    /// Plane's per-cycle `timezone` field (default `UTC`). Plane CE does NOT use it for the
    /// dates (it uses the project's zone) and neither its API nor its web app sets it, so
    /// it is kept for logs only: read the dates in `project_timezone`.
    pub timezone: String,
    /// The zone the dates are to be read in: the project's ([`ProjectSettings::timezone`]),
    /// filled by [`crate::plane::PlaneClient::cycles`]; `UTC` when read from JSON alone.
    pub project_timezone: String,
    /// Work items in the cycle (the listing's annotation).
    pub total_issues: u64,
    /// Of those, the ones in a completed state.
    pub completed_issues: u64,
    /// RFC 3339; bumped when the cycle itself is edited (not when its items change).
    pub updated_at: String,
    /// Set when archived (the list endpoint hides archived cycles).
    pub archived_at: Option<String>,
}

/// The status of a module: a closed set in Plane's model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ModuleStatus {
    /// `backlog`.
    Backlog,
    /// `planned` (Plane's default).
    #[default]
    Planned,
    /// `in-progress`.
    InProgress,
    /// `paused`.
    Paused,
    /// `completed`.
    Completed,
    /// `cancelled`.
    Cancelled,
}

/// A Plane module (a milestone or feature), as `GET …/projects/{pid}/modules/` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Module {
    /// UUID.
    pub id: String,
    /// Project UUID.
    pub project: String,
    /// Display name.
    pub name: String,
    /// `YYYY-MM-DD`.
    pub start_date: Option<String>,
    /// `YYYY-MM-DD`.
    pub target_date: Option<String>,
    /// Its status.
    pub status: ModuleStatus,
    /// Work items in the module (the listing's annotation).
    pub total_issues: u64,
    /// Of those, the ones in a completed state.
    pub completed_issues: u64,
    /// RFC 3339; bumped when the module itself is edited.
    pub updated_at: String,
    /// Set when archived (the list endpoint hides archived modules).
    pub archived_at: Option<String>,
}

impl ModuleStatus {
    /// Reads Plane's value; `None` for a value this version does not know.
    pub fn parse(s: &str) -> Option<ModuleStatus> {
        Some(match s {
            "backlog" => ModuleStatus::Backlog,
            "planned" => ModuleStatus::Planned,
            "in-progress" => ModuleStatus::InProgress,
            "paused" => ModuleStatus::Paused,
            "completed" => ModuleStatus::Completed,
            "cancelled" => ModuleStatus::Cancelled,
            _ => return None,
        })
    }

    /// Plane's value (`in-progress`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            ModuleStatus::Backlog => "backlog",
            ModuleStatus::Planned => "planned",
            ModuleStatus::InProgress => "in-progress",
            ModuleStatus::Paused => "paused",
            ModuleStatus::Completed => "completed",
            ModuleStatus::Cancelled => "cancelled",
        }
    }

    /// The name Plane's web app shows (`In Progress`, …).
    pub fn label(self) -> &'static str {
        match self {
            ModuleStatus::Backlog => "Backlog",
            ModuleStatus::Planned => "Planned",
            ModuleStatus::InProgress => "In Progress",
            ModuleStatus::Paused => "Paused",
            ModuleStatus::Completed => "Completed",
            ModuleStatus::Cancelled => "Cancelled",
        }
    }
}

/// The zone Plane uses when a project or cycle names none.
const DEFAULT_ZONE: &str = "UTC";

/// A field that is missing or has the wrong type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError(pub String);

/// One page of a paginated list.
#[derive(Debug, Clone)]
pub struct Page {
    /// The page's objects.
    pub results: Vec<Value>,
    /// The cursor of the next page, when there is one.
    pub next_cursor: Option<String>,
}

fn object<'a>(v: &'a Value, what: &str) -> Result<&'a Object, FieldError> {
    match v {
        Value::Object(o) => Ok(o),
        _ => Err(FieldError(format!("{what} is not a JSON object"))),
    }
}

fn opt_str(o: &Object, key: &str) -> Option<String> {
    match o.get(key) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

fn req_str(o: &Object, key: &str, what: &str) -> Result<String, FieldError> {
    opt_str(o, key).ok_or_else(|| FieldError(format!("{what} has no \"{key}\"")))
}

fn opt_bool(o: &Object, key: &str) -> Option<bool> {
    match o.get(key) {
        Some(Value::Bool(b)) => Some(*b),
        _ => None,
    }
}

/// A count annotation (`total_issues`, …): absent, `null` or not a whole number → 0.
/// (Plane leaves annotations out of some answers, e.g. webhook payloads.)
fn count(o: &Object, key: &str) -> u64 {
    match o.get(key) {
        Some(Value::Number(miniserde::json::Number::U64(n))) => *n,
        _ => 0,
    }
}

/// An id, or the `id` of an expanded object.
fn id_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => opt_str(o, "id"),
        _ => None,
    }
}

/// Reads a paginated envelope (`results`, `next_cursor`, `next_page_results`). A bare
/// array is accepted as a single page (members and a few other lists are not paginated).
pub fn page(v: Value) -> Result<Page, FieldError> {
    match v {
        // The arrays are taken, not copied: a page of work items is a few hundred KiB.
        Value::Array(a) => Ok(Page {
            results: a.into_iter().collect(),
            next_cursor: None,
        }),
        Value::Object(mut o) => {
            let results = match o.remove("results") {
                Some(Value::Array(a)) => a.into_iter().collect(),
                _ => return Err(FieldError("page has no \"results\" array".into())),
            };
            let more = matches!(o.get("next_page_results"), Some(Value::Bool(true)));
            let next_cursor = if more {
                opt_str(&o, "next_cursor")
            } else {
                None
            };
            Ok(Page {
                results,
                next_cursor,
            })
        }
        _ => Err(FieldError("page is neither an object nor an array".into())),
    }
}

impl Project {
    /// Reads a project object.
    pub fn from_json(v: &Value) -> Result<Project, FieldError> {
        let o = object(v, "project")?;
        Ok(Project {
            id: req_str(o, "id", "project")?,
            identifier: req_str(o, "identifier", "project")?,
            name: opt_str(o, "name").unwrap_or_default(),
        })
    }
}

impl ProjectSettings {
    /// Reads the settings from a project object; missing fields take Plane's defaults
    /// (`UTC`), except that a missing feature flag reads as on (listing a disabled
    /// feature costs one request and returns what Plane has; hiding an enabled one would
    /// delete its events).
    pub fn from_json(v: &Value) -> Result<ProjectSettings, FieldError> {
        let o = object(v, "project")?;
        Ok(ProjectSettings {
            timezone: opt_str(o, "timezone").unwrap_or_else(|| DEFAULT_ZONE.to_string()),
            cycle_view: opt_bool(o, "cycle_view").unwrap_or(true),
            module_view: opt_bool(o, "module_view").unwrap_or(true),
        })
    }
}

impl Cycle {
    /// Reads a cycle object as Plane's list, detail and webhook answers carry it. `id`
    /// and `project` (an id or an expanded project) are required; everything else may be
    /// missing (counts → 0, `timezone` → `UTC`), because Plane adds and drops fields.
    pub fn from_json(v: &Value) -> Result<Cycle, FieldError> {
        let o = object(v, "cycle")?;
        Ok(Cycle {
            id: req_str(o, "id", "cycle")?,
            project: project_of(o, "cycle")?,
            name: opt_str(o, "name").unwrap_or_default(),
            start_date: opt_str(o, "start_date"),
            end_date: opt_str(o, "end_date"),
            timezone: opt_str(o, "timezone").unwrap_or_else(|| DEFAULT_ZONE.to_string()),
            project_timezone: DEFAULT_ZONE.to_string(),
            total_issues: count(o, "total_issues"),
            completed_issues: count(o, "completed_issues"),
            updated_at: opt_str(o, "updated_at").unwrap_or_default(),
            archived_at: opt_str(o, "archived_at"),
        })
    }

    /// Whether Plane treats it as a draft: a cycle without both dates.
    pub fn is_draft(&self) -> bool {
        self.start_date.is_none() || self.end_date.is_none()
    }
}

impl Module {
    /// Reads a module object (list, detail or webhook). `id` and `project` are required;
    /// counts may be missing (→ 0). A `status` this version does not know reads as
    /// `planned` (Plane's default) with a debug line, so a new Plane status shows the
    /// module rather than hiding it.
    ///
    /// Plane CE 1.3.1's LIST counts each state group with `COUNT(DISTINCT group)`, so
    /// `completed_issues` there is 0 or 1 whatever the number of completed items
    /// (`total_issues` is right): it is passed on as Plane sends it.
    pub fn from_json(v: &Value) -> Result<Module, FieldError> {
        let o = object(v, "module")?;
        let id = req_str(o, "id", "module")?;
        let raw_status = opt_str(o, "status");
        let status = match raw_status.as_deref().map(ModuleStatus::parse) {
            Some(Some(s)) => s,
            Some(None) => {
                log::debug!("module {id}: unknown status {raw_status:?}, read as planned");
                ModuleStatus::default()
            }
            None => ModuleStatus::default(),
        };
        Ok(Module {
            project: project_of(o, "module")?,
            name: opt_str(o, "name").unwrap_or_default(),
            start_date: opt_str(o, "start_date"),
            target_date: opt_str(o, "target_date"),
            status,
            total_issues: count(o, "total_issues"),
            completed_issues: count(o, "completed_issues"),
            updated_at: opt_str(o, "updated_at").unwrap_or_default(),
            archived_at: opt_str(o, "archived_at"),
            id,
        })
    }
}

/// The `project` of a cycle or module: an id or an expanded project (`project_id` in
/// Plane Cloud's v2 payloads).
fn project_of(o: &Object, what: &str) -> Result<String, FieldError> {
    o.get("project")
        .and_then(id_of)
        .or_else(|| opt_str(o, "project_id"))
        .filter(|p| !p.is_empty())
        .ok_or_else(|| FieldError(format!("{what} has no \"project\"")))
}

impl State {
    /// Reads a state object, or a bare state id.
    pub fn from_json(v: &Value) -> Result<State, FieldError> {
        match v {
            Value::String(id) => Ok(State {
                id: id.clone(),
                ..State::default()
            }),
            _ => {
                let o = object(v, "state")?;
                Ok(State {
                    id: req_str(o, "id", "state")?,
                    name: opt_str(o, "name").unwrap_or_default(),
                    group: opt_str(o, "group").unwrap_or_default(),
                })
            }
        }
    }
}

impl Label {
    /// Reads a label object, or a bare label id.
    pub fn from_json(v: &Value) -> Result<Label, FieldError> {
        let id = id_of(v).ok_or_else(|| FieldError("label without id".into()))?;
        let name = match v {
            Value::Object(o) => opt_str(o, "name").unwrap_or_default(),
            _ => String::new(),
        };
        Ok(Label { id, name })
    }
}

impl Member {
    /// Reads a user object, or a bare user id. Workspace member lists wrap the user in
    /// `member`; both shapes are accepted.
    pub fn from_json(v: &Value) -> Result<Member, FieldError> {
        let v = match v {
            Value::Object(o) => match o.get("member") {
                Some(inner @ Value::Object(_)) => inner,
                _ => v,
            },
            _ => v,
        };
        let id = id_of(v).ok_or_else(|| FieldError("user without id".into()))?;
        let (display_name, email) = match v {
            Value::Object(o) => {
                let full = format!(
                    "{} {}",
                    opt_str(o, "first_name").unwrap_or_default(),
                    opt_str(o, "last_name").unwrap_or_default()
                );
                let display = opt_str(o, "display_name")
                    .or_else(|| Some(full.trim().to_string()).filter(|s| !s.is_empty()))
                    .unwrap_or_default();
                (display, opt_str(o, "email").unwrap_or_default())
            }
            _ => (String::new(), String::new()),
        };
        Ok(Member {
            id,
            display_name,
            email,
        })
    }
}

impl WorkItem {
    /// `updated_at` as an ordered instant; `None` when Plane sent none or garbage.
    pub fn updated(&self) -> Option<Timestamp> {
        Timestamp::parse(&self.updated_at)
    }
}

/// An instant with sub-second precision, ordered in time. Plane's `updated_at` carries
/// microseconds and the token owner's UTC offset (`2026-11-23T10:00:00.123456+05:30`), so
/// neither string order nor whole seconds can tell two close edits apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    /// Whole seconds since 1970-01-01T00:00:00Z.
    pub unix_seconds: i64,
    /// Nanoseconds within that second, 0..1_000_000_000.
    pub nanos: u32,
}

impl Timestamp {
    /// Parses RFC 3339 with `Z` or a `±HH:MM` offset and an optional fraction of any
    /// length (digits past the ninth are dropped). `None` when it is not such a timestamp.
    pub fn parse(s: &str) -> Option<Timestamp> {
        let unix_seconds = crate::clock::parse_rfc3339(s)?;
        // parse_rfc3339 has checked the shape: a fraction, if any, starts at byte 19.
        let nanos = match s.get(19..).and_then(|rest| rest.strip_prefix('.')) {
            Some(frac) => fraction_nanos(frac)?,
            None => 0,
        };
        Some(Timestamp {
            unix_seconds,
            nanos,
        })
    }
}

/// The leading digits of `frac` (after the `.`) as nanoseconds.
fn fraction_nanos(frac: &str) -> Option<u32> {
    let digits: Vec<u32> = frac.chars().map_while(|c| c.to_digit(10)).take(9).collect();
    if digits.is_empty() {
        return None;
    }
    let value = digits.iter().fold(0u32, |acc, d| acc * 10 + d);
    Some(value * 10u32.pow(9 - digits.len() as u32))
}

/// Fields to change on a work item (PATCH is partial: `None` = leave alone). Dates are
/// `Option<Option<_>>` so that `Some(None)` clears the date (`null` in the body).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ItemPatch {
    /// New title.
    pub name: Option<String>,
    /// New start date (`YYYY-MM-DD`), or `Some(None)` to clear it.
    pub start_date: Option<Option<String>>,
    /// New target (due) date (`YYYY-MM-DD`), or `Some(None)` to clear it.
    pub target_date: Option<Option<String>>,
    /// New state id (UUID).
    pub state: Option<String>,
}

impl ItemPatch {
    /// Whether there is nothing to send.
    pub fn is_empty(&self) -> bool {
        self.name.is_none()
            && self.start_date.is_none()
            && self.target_date.is_none()
            && self.state.is_none()
    }

    /// The PATCH body: only the fields that are set.
    pub fn to_json(&self) -> String {
        let mut o = Object::new();
        if let Some(name) = &self.name {
            o.insert("name".into(), Value::String(name.clone()));
        }
        for (key, date) in [
            ("start_date", &self.start_date),
            ("target_date", &self.target_date),
        ] {
            if let Some(date) = date {
                o.insert(key.into(), nullable(date.as_deref()));
            }
        }
        if let Some(state) = &self.state {
            o.insert("state".into(), Value::String(state.clone()));
        }
        miniserde::json::to_string(&Value::Object(o))
    }
}

/// A work item to create from a calendar object. `external_id` + `external_source` make
/// the POST idempotent: Plane answers a repeat with 409 and the existing item's id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewWorkItem {
    /// Title (required, ≤ 255 characters).
    pub name: String,
    /// `YYYY-MM-DD`.
    pub start_date: Option<String>,
    /// `YYYY-MM-DD`.
    pub target_date: Option<String>,
    /// State id; Plane picks the project's default state when absent.
    pub state: Option<String>,
    /// Our id for the item (the calendar object's UID).
    pub external_id: String,
    /// Our system's name.
    pub external_source: String,
}

impl NewWorkItem {
    /// The POST body; absent optional fields are left out, so Plane applies its defaults.
    pub fn to_json(&self) -> String {
        let mut o = Object::new();
        let text = |v: &str| Value::String(v.to_string());
        o.insert("name".into(), text(&self.name));
        o.insert("external_id".into(), text(&self.external_id));
        o.insert("external_source".into(), text(&self.external_source));
        for (key, v) in [
            ("start_date", &self.start_date),
            ("target_date", &self.target_date),
            ("state", &self.state),
        ] {
            if let Some(v) = v {
                o.insert(key.into(), text(v));
            }
        }
        miniserde::json::to_string(&Value::Object(o))
    }
}

/// A JSON string, or `null`.
fn nullable(v: Option<&str>) -> Value {
    v.map_or(Value::Null, |s| Value::String(s.to_string()))
}

/// Tags that end a line of text (at their end; `br` where it stands).
const BLOCK_TAGS: &[&str] = &[
    "p",
    "div",
    "br",
    "li",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "tr",
    "blockquote",
    "pre",
];

/// Plain text of Plane's description HTML: tags dropped, block ends become line breaks,
/// the common entities decoded. Good enough for a calendar description. Runs once per
/// rendered item, so it writes into one buffer instead of allocating per tag and text run.
pub fn html_to_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(lt) = rest.find('<') {
        decode_entities_into(&mut out, &rest[..lt]);
        let Some(gt) = rest[lt..].find('>') else {
            rest = "";
            break;
        };
        let tag = rest[lt + 1..lt + gt].trim();
        let closing = tag.starts_with('/');
        let bare = tag.trim_start_matches('/');
        let name = &bare[..bare.bytes().take_while(u8::is_ascii_alphanumeric).count()];
        let is = |t: &str| name.eq_ignore_ascii_case(t);
        let block = BLOCK_TAGS.iter().any(|t| is(t));
        if block && (closing || is("br")) {
            out.push('\n');
        } else if is("li") {
            out.push_str("- ");
        }
        rest = &rest[lt + gt + 1..];
    }
    decode_entities_into(&mut out, rest);
    // Blank lines (empty paragraphs) carry nothing in a calendar description.
    let mut text = String::with_capacity(out.len());
    for line in out.lines().map(str::trim_end) {
        if line.trim().is_empty() {
            continue;
        }
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(line);
    }
    text
}

/// Appends `s` to `out` with the common HTML entities decoded; others are kept as written.
fn decode_entities_into(out: &mut String, s: &str) {
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp..];
        let end = after.find(';').filter(|e| *e <= 10);
        match end.and_then(|e| entity(&after[1..e]).map(|c| (c, e))) {
            Some((c, e)) => {
                out.push(c);
                rest = &after[e + 1..];
            }
            None => {
                out.push('&');
                rest = &after[1..];
            }
        }
    }
    out.push_str(rest);
}

/// The character an entity name (between `&` and `;`) stands for.
fn entity(ent: &str) -> Option<char> {
    match ent {
        "amp" => Some('&'),
        "lt" => Some('<'),
        "gt" => Some('>'),
        "quot" => Some('"'),
        "apos" | "#39" => Some('\''),
        "nbsp" => Some(' '),
        _ if ent.starts_with("#x") || ent.starts_with("#X") => u32::from_str_radix(&ent[2..], 16)
            .ok()
            .and_then(char::from_u32),
        _ if ent.starts_with('#') => ent[1..].parse().ok().and_then(char::from_u32),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(s: &str) -> Value {
        miniserde::json::from_str(s).unwrap()
    }

    #[test]
    fn pagination_envelope() {
        let p = page(json(
            r#"{"results":[{"a":1}],"next_cursor":"100:1:0","next_page_results":true}"#,
        ))
        .unwrap();
        assert_eq!(p.next_cursor.as_deref(), Some("100:1:0"));
        let p = page(json(
            r#"{"results":[],"next_cursor":"100:1:0","next_page_results":false}"#,
        ))
        .unwrap();
        assert_eq!(p.next_cursor, None);
        assert_eq!(page(json("[1,2]")).unwrap().results.len(), 2);
        assert!(page(json(r#"{"detail":"x"}"#)).is_err());
    }

    /// A cycle as Plane CE 1.3.1's list returns it (trimmed from the real server: project
    /// zone America/Los_Angeles, dates 2026-12-07..2026-12-18).
    const REAL_CYCLE: &str = r#"{"id":"db979557-8b78-44b1-9040-5103f2b6e2d5","total_issues":3,
        "cancelled_issues":0,"completed_issues":2,"started_issues":0,"unstarted_issues":0,
        "backlog_issues":1,"created_at":"2026-12-02T15:03:15.704253Z",
        "updated_at":"2026-12-02T15:03:15.704295Z","deleted_at":null,"name":"Sprint LA",
        "description":"","start_date":"2026-12-07T08:00:01Z","end_date":"2026-12-19T07:59:00Z",
        "view_props":{},"sort_order":65535.0,"external_source":null,"external_id":null,
        "progress_snapshot":{},"archived_at":null,"logo_props":{},"timezone":"UTC","version":1,
        "created_by":"45693019-34e6-4759-9ee6-e64ee30ef25d","updated_by":null,
        "project":"588b3060-f3e6-4e5b-8ed7-a5204bed7ed4",
        "workspace":"54a96936-4bc1-42aa-9050-795a58b8a895",
        "owned_by":"45693019-34e6-4759-9ee6-e64ee30ef25d"}"#;

    /// A module as the real list returns it (two of its three items are done, yet Plane
    /// CE 1.3.1 says `completed_issues: 1`).
    const REAL_MODULE: &str = r#"{"id":"a2af9f84-7755-4624-985f-4154dde8f827","total_issues":3,
        "cancelled_issues":0,"completed_issues":1,"started_issues":0,"unstarted_issues":0,
        "backlog_issues":1,"created_at":"2026-12-02T15:03:51.894537Z",
        "updated_at":"2026-12-02T15:03:51.894570Z","deleted_at":null,"name":"Milestone A",
        "description":"","description_text":null,"description_html":null,
        "start_date":"2026-12-08","target_date":"2026-12-20","status":"in-progress",
        "view_props":{},"sort_order":65535.0,"external_source":null,"external_id":null,
        "archived_at":null,"logo_props":{},"created_by":"45693019-34e6-4759-9ee6-e64ee30ef25d",
        "updated_by":null,"project":"588b3060-f3e6-4e5b-8ed7-a5204bed7ed4",
        "workspace":"54a96936-4bc1-42aa-9050-795a58b8a895","lead":null,"members":[]}"#;

    #[test]
    fn real_cycle_reads_every_field_we_use() {
        let c = Cycle::from_json(&json(REAL_CYCLE)).unwrap();
        assert_eq!(
            c,
            Cycle {
                id: "db979557-8b78-44b1-9040-5103f2b6e2d5".into(),
                project: "588b3060-f3e6-4e5b-8ed7-a5204bed7ed4".into(),
                name: "Sprint LA".into(),
                start_date: Some("2026-12-07T08:00:01Z".into()),
                end_date: Some("2026-12-19T07:59:00Z".into()),
                timezone: "UTC".into(),
                project_timezone: "UTC".into(),
                total_issues: 3,
                completed_issues: 2,
                updated_at: "2026-12-02T15:03:15.704295Z".into(),
                archived_at: None,
            }
        );
        assert!(!c.is_draft());
    }

    #[test]
    fn cycle_tolerates_missing_optional_fields_and_requires_ids() {
        // A draft as a webhook carries it: no counts, null dates, no timezone.
        let c = Cycle::from_json(&json(
            r#"{"id":"c1","project":{"id":"p1","name":"Web"},"name":"Draft",
                "start_date":null,"end_date":null,"total_issues":null}"#,
        ))
        .unwrap();
        assert_eq!((c.total_issues, c.completed_issues), (0, 0));
        assert_eq!(c.project, "p1");
        assert_eq!(c.timezone, "UTC");
        assert!(c.is_draft());
        // Only one date is still a draft (Plane refuses to store that, but a reader must
        // not trust it); `project_id` is Plane Cloud's v2 spelling.
        let half = Cycle::from_json(&json(
            r#"{"id":"c2","project_id":"p1","start_date":"2026-12-07T08:00:01Z"}"#,
        ))
        .unwrap();
        assert!(half.is_draft());
        // A negative or fractional count is no count.
        let odd = Cycle::from_json(&json(
            r#"{"id":"c3","project":"p1","total_issues":-1,"completed_issues":1.5}"#,
        ))
        .unwrap();
        assert_eq!((odd.total_issues, odd.completed_issues), (0, 0));
        for (bad, why) in [
            (r#"{"project":"p1"}"#, "cycle has no \"id\""),
            (r#"{"id":"","project":"p1"}"#, "cycle has no \"id\""),
            (r#"{"id":"c1"}"#, "cycle has no \"project\""),
            (
                r#"{"id":"c1","project":{"name":"x"}}"#,
                "cycle has no \"project\"",
            ),
            (r#"{"id":"c1","project":7}"#, "cycle has no \"project\""),
            ("[]", "cycle is not a JSON object"),
        ] {
            assert_eq!(
                Cycle::from_json(&json(bad)),
                Err(FieldError(why.into())),
                "{bad}"
            );
        }
    }

    #[test]
    fn real_module_reads_as_plane_sends_it() {
        let m = Module::from_json(&json(REAL_MODULE)).unwrap();
        assert_eq!(
            m,
            Module {
                id: "a2af9f84-7755-4624-985f-4154dde8f827".into(),
                project: "588b3060-f3e6-4e5b-8ed7-a5204bed7ed4".into(),
                name: "Milestone A".into(),
                start_date: Some("2026-12-08".into()),
                target_date: Some("2026-12-20".into()),
                status: ModuleStatus::InProgress,
                total_issues: 3,
                completed_issues: 1,
                updated_at: "2026-12-02T15:03:51.894570Z".into(),
                archived_at: None,
            }
        );
    }

    #[test]
    fn module_statuses_and_missing_fields() {
        for (raw, status, label) in [
            ("backlog", ModuleStatus::Backlog, "Backlog"),
            ("planned", ModuleStatus::Planned, "Planned"),
            ("in-progress", ModuleStatus::InProgress, "In Progress"),
            ("paused", ModuleStatus::Paused, "Paused"),
            ("completed", ModuleStatus::Completed, "Completed"),
            ("cancelled", ModuleStatus::Cancelled, "Cancelled"),
        ] {
            let m = Module::from_json(&json(&format!(
                r#"{{"id":"m1","project":"p1","status":"{raw}"}}"#
            )))
            .unwrap();
            assert_eq!(m.status, status);
            assert_eq!((status.as_str(), status.label()), (raw, label));
        }
        // Unknown, wrongly cased, missing or non-string: Plane's default, planned.
        for odd in [r#""released""#, r#""Completed""#, r#""""#, "null", "3"] {
            let m = Module::from_json(&json(&format!(
                r#"{{"id":"m1","project":"p1","status":{odd}}}"#
            )))
            .unwrap();
            assert_eq!(m.status, ModuleStatus::Planned, "{odd}");
        }
        let bare = Module::from_json(&json(r#"{"id":"m1","project":"p1"}"#)).unwrap();
        assert_eq!(
            (bare.start_date, bare.target_date, bare.total_issues),
            (None, None, 0)
        );
        assert!(Module::from_json(&json(r#"{"id":"m1"}"#)).is_err());
        assert!(Module::from_json(&json(r#"{"project":"p1"}"#)).is_err());
        assert!(Module::from_json(&json(r#""m1""#)).is_err());
    }

    #[test]
    fn project_zone_and_features() {
        let p = ProjectSettings::from_json(&json(
            r#"{"id":"p1","identifier":"WEB","name":"Web","timezone":"Asia/Kolkata",
                "cycle_view":false,"module_view":true}"#,
        ))
        .unwrap();
        assert_eq!(
            p,
            ProjectSettings {
                timezone: "Asia/Kolkata".into(),
                cycle_view: false,
                module_view: true
            }
        );
        // An older answer without the fields: UTC, and both features assumed on (listing
        // a disabled feature is harmless: Plane answers 200).
        let old = ProjectSettings::from_json(&json(r#"{"id":"p1","identifier":"WEB"}"#)).unwrap();
        assert_eq!(old.timezone, "UTC");
        assert!(old.cycle_view && old.module_view);
        assert!(ProjectSettings::from_json(&json("[]")).is_err());
    }

    fn ts(s: &str) -> Timestamp {
        Timestamp::parse(s).unwrap_or_else(|| panic!("{s} did not parse"))
    }

    #[test]
    fn timestamps_order_across_offsets_and_fractions() {
        let base = ts("2026-11-23T04:30:00Z");
        assert_eq!(base.unix_seconds, 1_795_408_200);
        assert_eq!(base.nanos, 0);
        // The same instant in another offset, and with an all-zero fraction.
        assert_eq!(ts("2026-11-23T10:00:00+05:30"), base);
        assert_eq!(ts("2026-11-22T21:30:00.000-07:00"), base);
        // 1 to 9 fraction digits; more are cut at nanoseconds.
        assert_eq!(ts("2026-11-23T04:30:00.1Z").nanos, 100_000_000);
        assert_eq!(ts("2026-11-23T04:30:00.123456Z").nanos, 123_456_000);
        assert_eq!(ts("2026-11-23T04:30:00.123456789Z").nanos, 123_456_789);
        assert_eq!(ts("2026-11-23T04:30:00.1234567891Z").nanos, 123_456_789);
        // Microseconds decide where string order would not (a later string, an
        // earlier instant, because of the offset).
        let a = ts("2026-11-23T10:00:00.123456+05:30");
        let b = ts("2026-11-23T04:30:00.123457Z");
        assert!(a < b);
        assert!("2026-11-23T10:00:00.123456+05:30" > "2026-11-23T04:30:00.123457Z");
        assert!(ts("2026-11-23T04:30:00.9Z") < ts("2026-11-23T04:30:01Z"));
        for bad in [
            "",
            "2026-11-23",
            "2026-11-23T04:30:00",
            "2026-11-23T04:30:00.Z",
            "2026-11-23T04:30:00.12x4Z",
            "2026-13-23T04:30:00Z",
            "yesterday",
        ] {
            assert_eq!(Timestamp::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn patch_bodies_carry_only_set_fields() {
        assert!(ItemPatch::default().is_empty());
        assert_eq!(ItemPatch::default().to_json(), "{}");
        let clear = ItemPatch {
            target_date: Some(None),
            ..ItemPatch::default()
        };
        assert!(!clear.is_empty());
        assert_eq!(clear.to_json(), r#"{"target_date":null}"#);
        let all = ItemPatch {
            name: Some("Say \"hi\" 🦷".into()),
            start_date: Some(Some("2026-06-01".into())),
            target_date: Some(Some("2026-06-02".into())),
            state: Some("s1".into()),
        };
        assert_eq!(
            all.to_json(),
            r#"{"name":"Say \"hi\" 🦷","start_date":"2026-06-01","state":"s1","target_date":"2026-06-02"}"#
        );
        let new = NewWorkItem {
            name: "Dentist".into(),
            target_date: Some("2026-06-02".into()),
            external_id: "uid-1@cal".into(),
            external_source: "calplanebot".into(),
            ..NewWorkItem::default()
        };
        assert_eq!(
            new.to_json(),
            r#"{"external_id":"uid-1@cal","external_source":"calplanebot","name":"Dentist","target_date":"2026-06-02"}"#
        );
    }

    #[test]
    fn html_to_plain_text() {
        assert_eq!(
            html_to_text("<p>First &lt;para&gt;</p><p></p><ul><li>one</li><li>two</li></ul><p>a<br>b &#128512;</p>"),
            "First <para>\n- one\n- two\na\nb 😀"
        );
        assert_eq!(html_to_text("<p></p>"), "");
        assert_eq!(html_to_text("broken <b"), "broken");
        assert_eq!(html_to_text("AT&T &bogus; &"), "AT&T &bogus; &");
        assert_eq!(
            html_to_text("<P CLASS=x>One &#x41;&#66;</P>  <BR/>two<LI >x</li ><p>\t</p>"),
            "One AB\ntwo- x"
        );
    }
}
