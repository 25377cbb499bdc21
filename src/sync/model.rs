//! How a Plane work item looks in a calendar (design §2): which items qualify, the
//! properties we own, and merging them into an object a user may have touched.

use std::borrow::Cow;
use std::collections::BTreeSet;

use sha2::{Digest, Sha256};

use crate::config::{CompletedItems, Config, DateMode, ItemKind};
use crate::ical::{self, Component, Date, Param, Property};
use crate::plane::{Project, WorkItem};
use crate::state::{ContentHash, Shadow};

/// UID prefix of every object we create; the seed used the same, so its events are adopted.
pub const UID_PREFIX: &str = "plane-issue-";
/// UID suffix.
pub const UID_SUFFIX: &str = "@calplanebot";
/// Our PRODID.
pub const PRODID: &str = "-//calplanebot//calplanebot//EN";

/// Properties of the VEVENT/VTODO that calplanebot writes and therefore may overwrite.
/// Everything else (VALARMs, other clients' X- properties, LOCATION…) is the user's.
pub const OWNED: &[&str] = &[
    "UID",
    "SUMMARY",
    "DESCRIPTION",
    "DTSTART",
    "DTEND",
    "DUE",
    // Never written by us: a DURATION a client set instead of DTEND goes when we write
    // DTEND (both at once are invalid).
    "DURATION",
    "URL",
    "CATEGORIES",
    "PRIORITY",
    "COLOR",
    "STATUS",
    "COMPLETED",
    "PERCENT-COMPLETE",
    "TRANSP",
    "X-PLANE-WORK-ITEM-ID",
    "X-PLANE-CYCLE-ID",
    "X-PLANE-MODULE-ID",
    "X-PLANE-PROJECT-ID",
    "SEQUENCE",
    "DTSTAMP",
    "LAST-MODIFIED",
];

/// Owned properties that change on every write and so say nothing about content.
const VOLATILE: &[&str] = &["UID", "SEQUENCE", "DTSTAMP", "LAST-MODIFIED"];

/// The mapping options, taken from [`Config`].
#[derive(Debug, Clone)]
pub struct Mapping {
    /// VEVENT or VTODO.
    pub kind: ItemKind,
    /// One day or start→target.
    pub date_mode: DateMode,
    /// Completed/cancelled events: delete or keep.
    pub completed: CompletedItems,
    /// Browser base URL of Plane.
    pub web_url: String,
    /// Workspace slug (for links).
    pub slug: String,
    /// Only these state groups.
    pub state_groups: Vec<String>,
    /// Only items with one of these assignees (ids or e-mails); empty = all.
    pub assignees: Vec<String>,
    /// Only items with one of these labels (names or ids); empty = all.
    pub labels: Vec<String>,
    /// SYNC_CYCLES: cycles as events too.
    pub cycles: bool,
    /// SYNC_MODULES: modules as events too.
    pub modules: bool,
}

impl Mapping {
    /// The mapping a configuration asks for.
    pub fn from_config(c: &Config) -> Mapping {
        Mapping {
            kind: c.item_kind,
            date_mode: c.date_mode,
            completed: c.completed_items,
            web_url: c.plane_web_url.clone(),
            slug: c.plane_workspace_slug.clone(),
            state_groups: c.sync_state_groups.clone(),
            assignees: c.sync_assignees.clone(),
            labels: c.sync_labels.clone(),
            cycles: c.sync_cycles,
            modules: c.sync_modules,
        }
    }

    /// The component name we write.
    pub fn component_name(&self) -> &'static str {
        match self.kind {
            ItemKind::Event => "VEVENT",
            ItemKind::Todo => "VTODO",
        }
    }
}

/// What one work item should look like in its calendar, as planning compares it: the
/// fields and the content fingerprint, not the component. A cycle holds one of these per
/// listed item, so it stays small; the component is rendered again when it is written
/// ([`render`] is a pure function of the item).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    /// `plane-issue-{id}@calplanebot`.
    pub uid: String,
    /// Work item id.
    pub work_item: String,
    /// `[WEB-12] Title`, for logs and `list`.
    pub label: String,
    /// Plane's `updated_at`.
    pub updated_at: String,
    /// The synced field values and the content fingerprint.
    pub shadow: Shadow,
}

/// A work item rendered in full: what planning compares and the component we write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The fields and the fingerprint.
    pub desired: Desired,
    /// The VEVENT/VTODO with our owned properties, except UID/SEQUENCE/DTSTAMP/LAST-MODIFIED.
    pub component: Component,
}

/// The UID of a work item's object. Built at its exact length (`format!` leaves spare
/// capacity, and a cycle keeps one UID per work item).
pub fn uid_for(work_item_id: &str) -> String {
    [UID_PREFIX, work_item_id, UID_SUFFIX].concat()
}

/// The work item id in one of our UIDs (`plane-issue-{id}@calplanebot`).
pub fn work_item_of(uid: &str) -> Option<&str> {
    uid.strip_prefix(UID_PREFIX)?.strip_suffix(UID_SUFFIX)
}

/// Whether `uid` is one of ours: a work item's, a cycle's or a module's.
pub fn is_our_uid(uid: &str) -> bool {
    work_item_of(uid).is_some() || super::timeline::Kind::of_uid(uid).is_some()
}

/// The Plane id behind one of our UIDs: a work item's, a cycle's or a module's.
pub fn object_id_of(uid: &str) -> Option<&str> {
    work_item_of(uid).or_else(|| {
        let kind = super::timeline::Kind::of_uid(uid)?;
        kind.id_of(uid)
    })
}

/// The UID our naming scheme gives the object at `href`, if it follows it.
pub fn uid_from_href(href: &str) -> Option<String> {
    uid_from_decoded(&crate::caldav::client::percent_decode(href))
}

/// [`uid_from_href`] of an href already percent-decoded (callers that decode each listed
/// href once for their own keys).
pub fn uid_from_decoded(decoded: &str) -> Option<String> {
    let name = decoded.trim_end_matches('/').rsplit('/').next()?;
    let uid = name.strip_suffix(".ics")?;
    is_our_uid(uid).then(|| uid.to_string())
}

/// Where a new object for `uid` goes in `calendar` (a collection path ending in `/`).
pub fn href_for(calendar: &str, uid: &str) -> String {
    let name = crate::caldav::client::percent_encode_segment(uid);
    [calendar, &name, ".ics"].concat()
}

/// The display name of a project's calendar (the seed's).
pub fn calendar_name(project: &Project) -> String {
    format!("Plane: {}", project.name)
}

/// Why an item has no object in the calendar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Excluded {
    /// No target date.
    NoDate,
    /// Completed (and COMPLETED_ITEMS=delete).
    Completed,
    /// Cancelled (and COMPLETED_ITEMS=delete).
    Cancelled,
    /// Archived or a draft.
    Archived,
    /// Not selected by the SYNC_* filters.
    Filtered,
    /// A cycle or module without the dates an event needs (a draft cycle).
    Undated,
    /// A completed module (and COMPLETED_ITEMS=delete).
    ModuleCompleted,
    /// A cancelled module.
    ModuleCancelled,
}

impl Excluded {
    /// The reason as the `sync` summary prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            Excluded::NoDate => "no target date",
            Excluded::Completed => "issue completed",
            Excluded::Cancelled => "issue cancelled",
            Excluded::Archived => "issue archived",
            Excluded::Filtered => "filtered out",
            Excluded::Undated => "cycle or module without dates",
            Excluded::ModuleCompleted => "module completed",
            Excluded::ModuleCancelled => "module cancelled",
        }
    }
}

fn priority(p: &str) -> Option<(u8, &'static str, &'static str)> {
    match p {
        "urgent" => Some((1, "Urgent", "red")),
        "high" => Some((3, "High", "orange")),
        "medium" => Some((5, "Medium", "gold")),
        "low" => Some((9, "Low", "royalblue")),
        _ => None,
    }
}

/// `NAME;VALUE=DATE:20261124`.
fn date_prop(name: &str, d: Date) -> Property {
    Property {
        name: name.to_string(),
        params: vec![Param {
            name: "VALUE".to_string(),
            values: vec!["DATE".to_string()],
        }],
        value: d.to_ical(),
    }
}

/// A property from an upper-case name and a value already in wire form: what
/// [`Property::new`] makes, without upper-casing the name and copying the value again
/// (a render makes a dozen of these).
fn wire_prop(name: &str, value: String) -> Property {
    Property {
        name: name.to_string(),
        params: Vec::new(),
        value,
    }
}

/// Renders a work item, or says why it has no object.
pub fn render(item: &WorkItem, project: &Project, m: &Mapping) -> Result<Rendered, Excluded> {
    let q = qualify(item, m)?;
    let key = item_key(project, item);
    let mut label = format!("[{key}] {}", item.name);
    // Kept for every listed item until its action is done.
    label.shrink_to_fit();
    let component = build(item, project, m, &q, &key, &label);
    let shadow = Shadow {
        name: item.name.clone(),
        start_date: q.start.map(|d| d.to_iso()),
        target_date: Some(q.target.to_iso()),
        state_group: q.group.to_string(),
        content_hash: content_hash(&component),
    };
    let desired = Desired {
        uid: uid_for(&item.id),
        work_item: item.id.clone(),
        label,
        updated_at: item.updated_at.clone(),
        shadow,
    };
    Ok(Rendered { desired, component })
}

/// [`render`]'s component alone, for writing an object whose [`Desired`] planning has
/// already (its fingerprint is not computed again).
pub fn render_component(
    item: &WorkItem,
    project: &Project,
    m: &Mapping,
) -> Result<Component, Excluded> {
    let q = qualify(item, m)?;
    let key = item_key(project, item);
    let label = format!("[{key}] {}", item.name);
    Ok(build(item, project, m, &q, &key, &label))
}

/// What decides whether and when an item appears: its dates and state group.
struct Qualified<'a> {
    /// The start date, when it is not after the target.
    start: Option<Date>,
    /// The target (due) date.
    target: Date,
    /// The state group (empty when Plane did not expand the state).
    group: &'a str,
}

/// The item's dates, or why it has no object (filters first, then dates, then completion).
fn qualify<'a>(item: &'a WorkItem, m: &Mapping) -> Result<Qualified<'a>, Excluded> {
    if let Some(why) = filtered_out(item, m) {
        return Err(why);
    }
    let group = item.state.group.as_str();
    let Some(target) = item.target_date.as_deref().and_then(Date::parse_iso) else {
        return Err(Excluded::NoDate);
    };
    let start = item
        .start_date
        .as_deref()
        .and_then(Date::parse_iso)
        .filter(|s| *s <= target);
    if m.kind != ItemKind::Todo && m.completed == CompletedItems::Delete {
        match group {
            "completed" => return Err(Excluded::Completed),
            "cancelled" => return Err(Excluded::Cancelled),
            _ => {}
        }
    }
    Ok(Qualified {
        start,
        target,
        group,
    })
}

/// `WEB-12`: the project identifier and the item's number.
fn item_key(project: &Project, item: &WorkItem) -> String {
    format!("{}-{}", project.identifier, item.sequence_id)
}

/// The VEVENT/VTODO with our owned properties (`label` is `[WEB-12] Title`).
fn build(
    item: &WorkItem,
    project: &Project,
    m: &Mapping,
    q: &Qualified<'_>,
    key: &str,
    label: &str,
) -> Component {
    let todo = m.kind == ItemKind::Todo;
    let url = format!(
        "{}/{}/browse/{key}/",
        m.web_url.trim_end_matches('/'),
        m.slug
    );
    let mut c = Component::new(m.component_name());
    let summary = if !todo && q.group == "completed" {
        ical::escape_text(&format!("✔ {label}"))
    } else {
        ical::escape_text(label)
    };
    c.push(wire_prop("SUMMARY", summary));
    let text = ical::escape_text(&description(item, &url));
    c.push(wire_prop("DESCRIPTION", text));
    push_dates(&mut c, todo, m.date_mode, q.start, q.target);
    c.push(wire_prop("URL", url));
    push_categories(&mut c, item);
    if let Some((level, _, color)) = priority(&item.priority) {
        c.push(Property::new("PRIORITY", &level.to_string()));
        c.push(Property::new("COLOR", color));
    }
    if todo {
        push_todo_status(&mut c, item);
    } else {
        if q.group == "cancelled" {
            c.push(Property::new("STATUS", "CANCELLED"));
        }
        // All-day work items should not block free/busy time.
        c.push(Property::new("TRANSP", "TRANSPARENT"));
    }
    c.push(Property::new("X-PLANE-WORK-ITEM-ID", &item.id));
    c.push(Property::new("X-PLANE-PROJECT-ID", &project.id));
    c
}

/// Whether the item is archived, a draft, in triage, or not selected by the SYNC_* filters
/// (state group, assignees, labels); checked before its dates.
fn filtered_out(item: &WorkItem, m: &Mapping) -> Option<Excluded> {
    if item.archived_at.is_some() || item.is_draft || item.state.group == "triage" {
        return Some(Excluded::Archived);
    }
    let group = item.state.group.as_str();
    if !group.is_empty() && !m.state_groups.iter().any(|g| g == group) {
        return Some(Excluded::Filtered);
    }
    if !m.assignees.is_empty()
        && !item.assignees.iter().any(|a| {
            m.assignees
                .iter()
                .any(|f| f == &a.id || (!a.email.is_empty() && f.eq_ignore_ascii_case(&a.email)))
        })
    {
        return Some(Excluded::Filtered);
    }
    if !m.labels.is_empty()
        && !item.labels.iter().any(|l| {
            m.labels
                .iter()
                .any(|f| f == &l.id || f.eq_ignore_ascii_case(&l.name))
        })
    {
        return Some(Excluded::Filtered);
    }
    None
}

/// DTSTART/DTEND (events, DTEND exclusive) or DUE with an optional DTSTART (todos); the
/// start date only with DATE_MODE=span.
fn push_dates(c: &mut Component, todo: bool, mode: DateMode, start: Option<Date>, target: Date) {
    match (todo, mode, start) {
        (false, DateMode::Span, Some(s)) => {
            c.push(date_prop("DTSTART", s));
            c.push(date_prop("DTEND", target.succ()));
        }
        (false, _, _) => {
            c.push(date_prop("DTSTART", target));
            c.push(date_prop("DTEND", target.succ()));
        }
        (true, DateMode::Span, Some(s)) => {
            c.push(date_prop("DTSTART", s));
            c.push(date_prop("DUE", target));
        }
        (true, _, _) => c.push(date_prop("DUE", target)),
    }
}

/// CATEGORIES: the item's label names (a label without a name by its id); none without labels.
fn push_categories(c: &mut Component, item: &WorkItem) {
    if !item.labels.is_empty() {
        let names: Vec<String> = item
            .labels
            .iter()
            .map(|l| ical::escape_text(if l.name.is_empty() { &l.id } else { &l.name }))
            .collect();
        c.push(Property::new("CATEGORIES", &names.join(",")));
    }
}

/// A todo's STATUS from the state group; a completed one also gets COMPLETED (when Plane
/// says, else its last update) and PERCENT-COMPLETE.
fn push_todo_status(c: &mut Component, item: &WorkItem) {
    let group = item.state.group.as_str();
    let status = match group {
        "started" => "IN-PROCESS",
        "completed" => "COMPLETED",
        "cancelled" => "CANCELLED",
        _ => "NEEDS-ACTION",
    };
    c.push(Property::new("STATUS", status));
    if group == "completed" {
        let at = item
            .completed_at
            .as_deref()
            .and_then(crate::clock::parse_rfc3339)
            .or_else(|| crate::clock::parse_rfc3339(&item.updated_at))
            .unwrap_or(0);
        c.push(Property::new(
            "COMPLETED",
            &crate::clock::format_ical_utc(at),
        ));
        c.push(Property::new("PERCENT-COMPLETE", "100"));
    }
}

fn description(item: &WorkItem, url: &str) -> String {
    let mut lines = Vec::new();
    if !item.state.name.is_empty() {
        lines.push(format!("State: {}", item.state.name));
    }
    if let Some((_, name, _)) = priority(&item.priority) {
        lines.push(format!("Priority: {name}"));
    }
    let names = |v: Vec<&str>| {
        v.into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let assignees = names(
        item.assignees
            .iter()
            .map(|a| a.display_name.as_str())
            .collect(),
    );
    if !assignees.is_empty() {
        lines.push(format!("Assignees: {assignees}"));
    }
    let labels = names(item.labels.iter().map(|l| l.name.as_str()).collect());
    if !labels.is_empty() {
        lines.push(format!("Labels: {labels}"));
    }
    let text = crate::plane::model::html_to_text(&item.description_html);
    let mut out = lines.join("\n");
    for part in [text.as_str(), url] {
        if !part.is_empty() {
            if !out.is_empty() {
                out.push_str("\n\n");
            }
            out.push_str(part);
        }
    }
    out
}

/// A stable fingerprint of owned, non-volatile properties: names, date forms and
/// unescaped values. Servers re-serialise objects (parameter order, escaping, CATEGORIES
/// split or joined), so raw text would differ where the content does not; a user's change
/// of form (an all-day event made a timed one on the same day) does change it.
pub fn content_hash(c: &Component) -> ContentHash {
    let mut h = Sha256::new();
    for (name, value) in owned_content(c) {
        h.update(name.as_bytes());
        h.update([0]);
        h.update(value.as_bytes());
        h.update([1]);
    }
    ContentHash::from_digest(h.finalize().into())
}

/// The owned, non-volatile properties of `c` as sorted (name, content) pairs. Names and
/// values without escapes are borrowed: this runs for every rendered and every read object.
fn owned_content(c: &Component) -> Vec<(&str, Cow<'_, str>)> {
    let mut out: Vec<(&str, Cow<'_, str>)> = c
        .properties
        .iter()
        .filter(|p| OWNED.contains(&p.name.as_str()) && !VOLATILE.contains(&p.name.as_str()))
        .filter(|p| p.name != "CATEGORIES")
        .map(|p| {
            let value = match p.name.as_str() {
                // The date with its form: `20261124` for all-day (what we write, whatever
                // the VALUE parameter), `20261124T090000;TZID=Europe/Berlin` for a time.
                "DTSTART" | "DTEND" | "DUE" => {
                    p.when().map_or(Cow::Borrowed(p.value.as_str()), |w| {
                        Cow::Owned(w.to_string())
                    })
                }
                // TEXT without a backslash is its own unescaped form.
                _ if !p.value.contains('\\') => Cow::Borrowed(p.value.as_str()),
                _ => Cow::Owned(p.text_value()),
            };
            (p.name.as_str(), value)
        })
        .collect();
    if let Some(categories) = categories(c) {
        out.push(("CATEGORIES", Cow::Owned(categories)));
    }
    out.sort();
    out
}

/// Every CATEGORIES value of a component as one sorted set, or `None` without any.
/// Servers disagree on the form of the same list: we write `CATEGORIES:docs\, misc,bug`
/// (two labels, one with a comma); Cyrus returns it on GET as three properties `docs`,
/// `misc`, `bug` and in REPORT as `CATEGORIES:docs, misc` + `CATEGORIES:bug`. Splitting
/// at every comma, escaped or not, and trimming gives the same set for all of them. Labels
/// only flow from Plane to the calendar, so losing the comma inside one label here costs
/// nothing: it only decides whether an object needs rewriting.
fn categories(c: &Component) -> Option<String> {
    let set: BTreeSet<String> = c
        .properties_named("CATEGORIES")
        .flat_map(|p| p.text_values())
        .flat_map(|v| {
            v.split(',')
                .map(|s| s.trim().to_string())
                .collect::<Vec<_>>()
        })
        .filter(|s| !s.is_empty())
        .collect();
    (!set.is_empty()).then(|| set.into_iter().collect::<Vec<_>>().join(","))
}

/// Whether `existing` already carries exactly the owned content of `desired`.
pub fn same_content(existing: &Component, desired: &Component) -> bool {
    existing.name == desired.name && owned_content(existing) == owned_content(desired)
}

/// The SEQUENCE of a component (0 when absent or unreadable).
pub fn sequence_of(c: &Component) -> u32 {
    c.property("SEQUENCE")
        .and_then(|p| p.value.trim().parse().ok())
        .unwrap_or(0)
}

fn stamp(c: &mut Component, uid: &str, sequence: u32, now: i64) {
    let ts = crate::clock::format_ical_utc(now);
    c.set(Property::new("UID", uid));
    c.set(Property::new("DTSTAMP", &ts));
    c.set(Property::new("LAST-MODIFIED", &ts));
    c.set(Property::new("SEQUENCE", &sequence.to_string()));
}

/// A new calendar object for `rendered`.
pub fn new_object(rendered: &Rendered, now: i64) -> String {
    let mut cal = Component::new("VCALENDAR");
    cal.push(Property::new("VERSION", "2.0"));
    cal.push(Property::new("PRODID", PRODID));
    cal.push(Property::new("CALSCALE", "GREGORIAN"));
    let mut c = Component::new(&rendered.component.name);
    // UID first, as most clients write it; then the owned content.
    stamp(&mut c, &rendered.desired.uid, 0, now);
    for p in &rendered.component.properties {
        c.push(p.clone());
    }
    cal.components.push(c);
    ical::write(&cal)
}

/// The VEVENT/VTODO with `uid` in a calendar object (not an override instance).
pub fn find_item<'a>(cal: &'a Component, uid: &str) -> Option<&'a Component> {
    cal.components.iter().find(|c| {
        matches!(c.name.as_str(), "VEVENT" | "VTODO")
            && c.text("UID").as_deref() == Some(uid)
            && c.property("RECURRENCE-ID").is_none()
    })
}

/// Merges `rendered` into an existing object: our owned properties are replaced, removed
/// or added; every other property and sub-component (a user's VALARM, X- properties of
/// other clients) is kept. Returns the new iCalendar text, or `None` when the object does
/// not hold `uid` (so it is not ours to change).
pub fn merge(existing: &Component, rendered: &Rendered, sequence: u32, now: i64) -> Option<String> {
    let uid = rendered.desired.uid.as_str();
    let mut cal = existing.clone();
    let idx = cal.components.iter().position(|c| {
        matches!(c.name.as_str(), "VEVENT" | "VTODO")
            && c.text("UID").as_deref() == Some(uid)
            && c.property("RECURRENCE-ID").is_none()
    })?;
    let old = &cal.components[idx];
    let mut c = Component::new(&rendered.component.name);
    // Keep the old order: user properties stay where they were, owned ones are replaced
    // in place by `set` below.
    c.properties = old.properties.clone();
    c.components = old.components.clone();
    for name in OWNED {
        if VOLATILE.contains(name) {
            continue;
        }
        let wanted: Vec<&Property> = rendered.component.properties_named(name).collect();
        match wanted.as_slice() {
            [] => c.remove(name),
            [one] => c.set((*one).clone()),
            many => {
                c.remove(name);
                for p in many {
                    c.push((*p).clone());
                }
            }
        }
    }
    stamp(&mut c, uid, sequence, now);
    cal.components[idx] = c;
    if cal.property("VERSION").is_none() {
        cal.push(Property::new("VERSION", "2.0"));
    }
    Some(ical::write(&cal))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plane::{Label, Member, State};

    fn project() -> Project {
        Project {
            id: "p1".into(),
            identifier: "WEB".into(),
            name: "Website".into(),
        }
    }

    fn mapping() -> Mapping {
        Mapping {
            kind: ItemKind::Event,
            date_mode: DateMode::Due,
            completed: CompletedItems::Delete,
            web_url: "https://plane.example.com/".into(),
            slug: "acme".into(),
            state_groups: ["backlog", "unstarted", "started", "completed", "cancelled"]
                .map(String::from)
                .to_vec(),
            assignees: vec![],
            labels: vec![],
            cycles: false,
            modules: false,
        }
    }

    fn item() -> WorkItem {
        WorkItem {
            id: "i1".into(),
            project: "p1".into(),
            sequence_id: 12,
            name: "Fix login, again; now".into(),
            state: State {
                id: "s".into(),
                name: "In Progress".into(),
                group: "started".into(),
            },
            priority: "high".into(),
            start_date: Some("2026-11-20".into()),
            target_date: Some("2026-11-24".into()),
            assignees: vec![Member {
                id: "u1".into(),
                display_name: "ann".into(),
                email: "ann@example.com".into(),
            }],
            labels: vec![
                Label {
                    id: "l1".into(),
                    name: "bug".into(),
                },
                Label {
                    id: "l2".into(),
                    name: "a,b".into(),
                },
            ],
            description_html: "<p>Steps</p>".into(),
            updated_at: "2026-11-23T10:00:00Z".into(),
            ..WorkItem::default()
        }
    }

    fn prop(c: &Component, name: &str) -> String {
        c.property(name)
            .map(|p| p.value.clone())
            .unwrap_or_default()
    }

    #[test]
    fn event_fields_follow_the_design() {
        let d = render(&item(), &project(), &mapping()).unwrap();
        let c = &d.component;
        assert_eq!(d.desired.uid, "plane-issue-i1@calplanebot");
        assert_eq!(c.name, "VEVENT");
        assert_eq!(c.text("SUMMARY").unwrap(), "[WEB-12] Fix login, again; now");
        assert_eq!(prop(c, "DTSTART"), "20261124");
        assert_eq!(c.property("DTSTART").unwrap().param("VALUE"), Some("DATE"));
        assert_eq!(prop(c, "DTEND"), "20261125");
        assert_eq!(
            prop(c, "URL"),
            "https://plane.example.com/acme/browse/WEB-12/"
        );
        assert_eq!(
            c.property("CATEGORIES").unwrap().text_values(),
            vec!["bug", "a,b"]
        );
        assert_eq!(prop(c, "PRIORITY"), "3");
        assert_eq!(prop(c, "X-PLANE-WORK-ITEM-ID"), "i1");
        assert_eq!(prop(c, "X-PLANE-PROJECT-ID"), "p1");
        assert!(c.property("ORGANIZER").is_none() && c.property("ATTENDEE").is_none());
        let desc = c.text("DESCRIPTION").unwrap();
        assert_eq!(
            desc,
            "State: In Progress\nPriority: High\nAssignees: ann\nLabels: bug, a,b\n\nSteps\n\nhttps://plane.example.com/acme/browse/WEB-12/"
        );
    }

    #[test]
    fn span_mode_and_todos() {
        let mut m = mapping();
        m.date_mode = DateMode::Span;
        let d = render(&item(), &project(), &m).unwrap();
        assert_eq!(prop(&d.component, "DTSTART"), "20261120");
        assert_eq!(prop(&d.component, "DTEND"), "20261125");

        m.kind = ItemKind::Todo;
        let mut done = item();
        done.state.group = "completed".into();
        done.completed_at = Some("2026-11-23T15:30:00+05:30".into());
        let d = render(&done, &project(), &m).unwrap();
        assert_eq!(d.component.name, "VTODO");
        assert_eq!(prop(&d.component, "DUE"), "20261124");
        assert_eq!(prop(&d.component, "DTSTART"), "20261120");
        assert_eq!(prop(&d.component, "STATUS"), "COMPLETED");
        assert_eq!(prop(&d.component, "COMPLETED"), "20261123T100000Z");
        assert_eq!(prop(&d.component, "PERCENT-COMPLETE"), "100");
    }

    #[test]
    fn exclusions() {
        let m = mapping();
        let mut i = item();
        i.target_date = None;
        assert_eq!(render(&i, &project(), &m).unwrap_err(), Excluded::NoDate);
        let mut i = item();
        i.state.group = "completed".into();
        assert_eq!(render(&i, &project(), &m).unwrap_err(), Excluded::Completed);
        let mut keep = mapping();
        keep.completed = CompletedItems::Keep;
        let d = render(&i, &project(), &keep).unwrap();
        assert!(d
            .component
            .text("SUMMARY")
            .unwrap()
            .starts_with("✔ [WEB-12]"));
        assert!(
            d.component.property("STATUS").is_none(),
            "VEVENT STATUS:COMPLETED is invalid"
        );
        let mut i = item();
        i.archived_at = Some("2026-11-01".into());
        assert_eq!(render(&i, &project(), &m).unwrap_err(), Excluded::Archived);
        let mut f = mapping();
        f.labels = vec!["feature".into()];
        assert_eq!(
            render(&item(), &project(), &f).unwrap_err(),
            Excluded::Filtered
        );
        f.labels = vec!["BUG".into()];
        assert!(render(&item(), &project(), &f).is_ok());
        let mut f = mapping();
        f.assignees = vec!["ANN@example.com".into()];
        assert!(render(&item(), &project(), &f).is_ok());
        f.assignees = vec!["u9".into()];
        assert_eq!(
            render(&item(), &project(), &f).unwrap_err(),
            Excluded::Filtered
        );
    }

    #[test]
    fn merge_keeps_user_additions_and_bumps_sequence() {
        let d = render(&item(), &project(), &mapping()).unwrap();
        let created = ical::parse(&new_object(&d, 1_795_428_930)).unwrap();
        // A user adds an alarm and a location in their calendar app.
        let mut edited = created.clone();
        let ev = edited.component_mut("VEVENT").unwrap();
        ev.push(Property::text("LOCATION", "Room 1"));
        ev.push(Property::new("X-MOZ-GENERATION", "3"));
        let mut alarm = Component::new("VALARM");
        alarm.push(Property::new("ACTION", "DISPLAY"));
        alarm.push(Property::new("TRIGGER", "-PT15M"));
        ev.components.push(alarm);

        let mut changed = item();
        changed.name = "Renamed".into();
        changed.target_date = Some("2026-12-01".into());
        changed.priority = "none".into();
        let d2 = render(&changed, &project(), &mapping()).unwrap();
        let merged = ical::parse(&merge(&edited, &d2, 1, 1_795_430_000).unwrap()).unwrap();
        let ev = merged.component("VEVENT").unwrap();
        assert_eq!(ev.text("SUMMARY").unwrap(), "[WEB-12] Renamed");
        assert_eq!(prop(ev, "DTSTART"), "20261201");
        assert_eq!(prop(ev, "SEQUENCE"), "1");
        assert!(
            ev.property("PRIORITY").is_none(),
            "priority none removes PRIORITY"
        );
        assert_eq!(ev.text("LOCATION").unwrap(), "Room 1");
        assert_eq!(prop(ev, "X-MOZ-GENERATION"), "3");
        assert_eq!(ev.components.len(), 1);
        assert_eq!(ev.components[0].name, "VALARM");
        assert_eq!(ev.properties_named("UID").count(), 1);
        assert!(same_content(ev, &d2.component));
        assert!(!same_content(ev, &d.component));

        // Another UID in the object: not ours, no merge.
        let mut other = d2.clone();
        other.desired.uid = "someone-else".into();
        assert!(merge(&edited, &other, 1, 0).is_none());
    }

    #[test]
    fn content_survives_server_reserialisation() {
        let d = render(&item(), &project(), &mapping()).unwrap();
        // Servers may drop VALUE=DATE quoting style or reorder: parse what a server might
        // return (params reordered, categories split) and compare content.
        let text = new_object(&d, 0).replace("CATEGORIES:bug,a\\,b", "CATEGORIES:bug, a\\,b");
        let back = ical::parse(&text).unwrap();
        assert!(same_content(
            find_item(&back, &d.desired.uid).unwrap(),
            &d.component
        ));
    }

    /// Item 9 of issue 9: Cyrus splits our CATEGORIES differently on GET and on REPORT.
    #[test]
    fn categories_compare_as_a_set_across_properties() {
        let mut i = item();
        i.labels[1].name = "docs, misc".into();
        let d = render(&i, &project(), &mapping()).unwrap();
        let ours = new_object(&d, 0);
        assert!(ours.contains("CATEGORIES:bug,docs\\, misc\r\n"), "{ours}");
        let as_served = |categories: &str| {
            let text = ours.replace("CATEGORIES:bug,docs\\, misc\r\n", categories);
            let cal = ical::parse(&text).unwrap();
            find_item(&cal, &d.desired.uid).unwrap().clone()
        };
        for (server, categories) in [
            (
                "Cyrus GET",
                "CATEGORIES:bug\r\nCATEGORIES:docs\r\nCATEGORIES:misc\r\n",
            ),
            (
                "Cyrus REPORT",
                "CATEGORIES:bug\r\nCATEGORIES:docs, misc\r\n",
            ),
            (
                "reordered",
                "CATEGORIES:misc,docs\r\nCATEGORIES:bug,bug\r\n",
            ),
        ] {
            let back = as_served(categories);
            assert!(same_content(&back, &d.component), "{server}");
            assert_eq!(
                content_hash(&back),
                d.desired.shadow.content_hash,
                "{server}"
            );
        }
        for (change, categories) in [
            ("a label less", "CATEGORIES:docs\r\nCATEGORIES:misc\r\n"),
            ("another label", "CATEGORIES:bug,docs,misc,urgent\r\n"),
            ("no labels", ""),
        ] {
            assert!(
                !same_content(&as_served(categories), &d.component),
                "{change}"
            );
        }
    }

    /// Item 10 of issue 9: an all-day event made a timed one on the same day is a change
    /// (the date, all Plane keeps, is the same); the rewrite makes it all-day again.
    #[test]
    fn a_timed_value_on_the_same_day_is_a_change() {
        let d = render(&item(), &project(), &mapping()).unwrap();
        let ours = ical::parse(&new_object(&d, 0)).unwrap();
        let timed = |start: &str, end: &str| {
            let mut cal = ours.clone();
            let ev = cal.component_mut("VEVENT").unwrap();
            let (name, value) = start.split_once(':').unwrap();
            let mut p = Property::new(name, value);
            if let Some(tz) = name.strip_prefix("DTSTART;TZID=") {
                p = Property::new("DTSTART", value).with_param("TZID", tz);
            }
            ev.set(p);
            ev.remove("DTEND");
            let (name, value) = end.split_once(':').unwrap();
            ev.push(Property::new(name, value));
            cal
        };
        for (form, cal) in [
            (
                "TZID",
                timed(
                    "DTSTART;TZID=Europe/Berlin:20261124T090000",
                    "DURATION:PT1H",
                ),
            ),
            (
                "UTC",
                timed("DTSTART:20261124T090000Z", "DTEND:20261124T100000Z"),
            ),
            (
                "floating",
                timed("DTSTART:20261124T000000", "DTEND:20261125T000000"),
            ),
            (
                "all-day, DURATION",
                timed("DTSTART:20261124", "DURATION:P1D"),
            ),
        ] {
            let ev = find_item(&cal, &d.desired.uid).unwrap();
            assert!(!same_content(ev, &d.component), "{form}");
            assert_ne!(content_hash(ev), d.desired.shadow.content_hash, "{form}");
            let rewritten = ical::parse(&merge(&cal, &d, 1, 0).unwrap()).unwrap();
            let ev = find_item(&rewritten, &d.desired.uid).unwrap();
            assert!(same_content(ev, &d.component), "{form}");
            let start = ev.property("DTSTART").unwrap();
            assert_eq!(
                start.when(),
                Some(ical::When::Date(Date::new(2026, 11, 24).unwrap()))
            );
            assert_eq!(start.param("TZID"), None, "{form}");
            assert!(
                ev.property("DURATION").is_none(),
                "{form}: DTEND and DURATION"
            );
        }
        // Only VALUE=DATE dropped by a server is the same all-day value.
        let bare = ical::parse(&new_object(&d, 0).replace(";VALUE=DATE", "")).unwrap();
        assert!(same_content(
            find_item(&bare, &d.desired.uid).unwrap(),
            &d.component
        ));
    }

    /// Journals store the fingerprint; a new one for unchanged content costs one read of
    /// every object after an upgrade. Events without labels keep theirs.
    #[test]
    fn fingerprint_of_plain_events_is_stable() {
        let mut i = item();
        i.labels.clear();
        let d = render(&i, &project(), &mapping()).unwrap();
        assert_eq!(
            d.desired.shadow.content_hash.to_hex(),
            "6da27939b399ac6f883cb8a0e9c0983948bd852b3438d04bfa8f04646f9d45dc"
        );
    }

    #[test]
    fn hrefs_and_uids() {
        let uid = uid_for("0b6a-11");
        let href = href_for("/cal/", &uid);
        assert_eq!(href, "/cal/plane-issue-0b6a-11%40calplanebot.ics");
        assert_eq!(uid_from_href(&href).as_deref(), Some(uid.as_str()));
        assert_eq!(
            uid_from_href("/cal/plane-issue-x@calplanebot.ics").as_deref(),
            Some("plane-issue-x@calplanebot")
        );
        assert_eq!(uid_from_href("/cal/other.ics"), None);
        for uid in ["plane-cycle-c1@calplanebot", "plane-module-m1@calplanebot"] {
            let href = href_for("/cal/", uid);
            assert_eq!(uid_from_href(&href).as_deref(), Some(uid));
            assert_eq!(work_item_of(uid), None, "not a work item");
        }
        assert_eq!(object_id_of("plane-cycle-c1@calplanebot"), Some("c1"));
        assert_eq!(object_id_of("plane-issue-i1@calplanebot"), Some("i1"));
        assert_eq!(uid_from_href("/cal/plane-cycle-@calplanebot.ics"), None);
    }
}
