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
    /// RFC 3339 date-time (Plane stores the start of the first day, converted to UTC).
    pub start_date: Option<String>,
    /// RFC 3339 date-time (Plane stores the end of the last day, converted to UTC).
    pub end_date: Option<String>,
    /// IANA zone the cycle is planned in (Plane's per-cycle `timezone`, default `UTC`).
    pub timezone: String,
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
