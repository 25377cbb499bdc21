//! A fake of Plane's REST API (Community Edition, `/api/v1/`) for tests and the demo.
//!
//! Behaviour follows `shared/plane-api.md`: `X-API-Key` auth (401 missing, 403 wrong),
//! the `per_page:page:is_prev` cursor envelope, `order_by`/`expand`/`fields`, external-id
//! lookup, create/409, PUT answered 405 (CE 1.3.1 routes no PUT), soft deletion, hidden
//! archived/draft/triage items and a sliding-window rate limit with `X-RateLimit-*`
//! headers and 429s. Faults (5xx, garbage, truncated JSON, delays, dropped connections)
//! can be queued per request.
//!
//! Like real Plane, `updated_at` moves again ~60 ms after a PATCH or POST has answered
//! (Plane's Celery `issue_activity` task), so a write's own answer is stale. The fake
//! applies such a bump lazily: it is queued with its due time and applied by the first
//! request, [`FakePlane::with_world`] or [`FakePlane::world`] that comes after it — no
//! timer thread, and a test that looks sooner sees the stale value, as it would on Plane.
//! [`World::bump_after_write`] turns it off.
//!
//! Deliberate choices where real Plane is unknown or awkward:
//! - Unknown workspace slug → 403 "You do not have permission to perform this action."
//!   (real Plane CE 1.3.1, verified: its workspace permission check runs before the view),
//!   before throttling, as DRF checks permissions first.
//! - Like CE 1.3.1's serializer, `start_date > target_date` is only checked when both
//!   dates are in the same request body: a PATCH of one date can leave the item with
//!   start after target. Newer Plane (makeplane/plane commit 14c2d77,
//!   `tests/unit/serializers/test_issue_date_validation.py`) also checks a one-date PATCH
//!   against the other stored date; [`World::check_dates_against_item`] models that.
//! - Items with equal sort keys are ordered by `sequence_id` (Postgres leaves ties in no
//!   particular order), so tests are deterministic.
//! - A JSON syntax error is `{"detail":"JSON parse error"}`: Plane appends Python's own
//!   parser message, which is not worth imitating.
//! - Only the work-item, state, label and member routes calplanebot uses exist; POST or
//!   PATCH on states, labels and projects (routed in Plane) are 405 here.
//!
//! Checked against a real Plane CE 1.3.1 (`tests/plane_conformance.py`, which sends ~100
//! requests to both and compares status, error bodies, key sets, page envelopes and
//! rate-limit headers). What the fake does because Plane was seen doing it:
//! - Routing happens before authentication: a path without its trailing `/` is a 301 to
//!   the same path with the slash (query kept, any method, empty body; calplanebot follows
//!   no redirects, so a forgotten slash fails loudly); an unrouted path, or a project or
//!   item id that is not a lower-case UUID, is `{"error": "Page not found."}` (JSON, 404).
//! - Permission classes run after authentication and before the throttle: work items and
//!   states of a project the token owner is not a member of (unknown or deleted project)
//!   are 403 "You do not have permission to perform this action." without
//!   `X-RateLimit-*`, not 404; its labels and members list nothing (200); the project
//!   detail is 404 "The requested resource does not exist.".
//! - An archived project is still listed (with `archived_at`); its items, states and labels
//!   lists are empty, its items are 404 to GET but still take PATCH, POST and DELETE.
//! - GET of one item sees only visible items; PATCH, DELETE and the external-id lookup
//!   also find archived, draft and triage items (Plane's `Issue.objects`). `archived_at`
//!   and `is_draft` can be PATCHed.
//! - Pagination (`plane/utils/paginator.py`): the page is positioned by `per_page`, not by
//!   the cursor's value; `per_page` absent → 1000, > 1000 → 400, ≤ 0 → 500; a negative
//!   offset → 400 `{"detail":"Error in parsing"}`; an `is_prev` cursor whose value is not
//!   `per_page` → 500; `next_cursor` is always present.
//! - Unknown `order_by` field → 500, as Django's FieldError gives.
//! - A non-empty body must be `application/json`, a missing Content-Type included (415
//!   `Unsupported media type "" in request.`); an empty body is `{}` whatever its type.
//! - `labels`/`assignees`: an id that exists nowhere is 400 keyed by its index
//!   (`{"labels":{"0":["Invalid pk …"]}}`); another project's label or a non-member is
//!   silently dropped. A `state`/`parent` that exists nowhere is a field error, one from
//!   another project the serializer's `non_field_errors`.
//! - Answers have CE 1.3.1's key sets: `users/me/` has exactly id, names, email,
//!   display_name, avatar, avatar_url; items carry `type`, `point`, `description_binary`;
//!   project details lack the list's `sort_order`.
//!
//! The HTTP layer is a small HTTP/1.1 server on `std::net` rather than tiny_http: tiny_http
//! offers no way to drop a connection without answering, which the `Close` faults need.
//!
//! This file is included with `#[path]` from several test crates and the `fake-plane`
//! example, so it must not rely on being a crate and not everything is used everywhere.
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use miniserde::json::{self, Array, Number, Object, Value};

mod timeline;
#[allow(unused_imports)]
pub use timeline::{
    cycle_end_instant, cycle_start_instant, local_day, Cycle, Module, KNOWN_ZONES, MODULE_STATUSES,
};

// ---------------------------------------------------------------------------------------
// Data model
// ---------------------------------------------------------------------------------------

/// A workspace member, as Plane's user serializers show it.
#[derive(Clone, Debug, PartialEq)]
pub struct User {
    /// UUID.
    pub id: String,
    /// Given name.
    pub first_name: String,
    /// Family name.
    pub last_name: String,
    /// E-mail address.
    pub email: String,
    /// Short handle shown in the UI.
    pub display_name: String,
    /// Avatar URL, often empty.
    pub avatar: String,
}

/// A workflow state of a project.
#[derive(Clone, Debug, PartialEq)]
pub struct State {
    /// UUID.
    pub id: String,
    /// Display name ("In Progress").
    pub name: String,
    /// Hex colour, `#RRGGBB`.
    pub color: String,
    /// `backlog|unstarted|started|completed|cancelled|triage`.
    pub group: String,
    /// Ordering key within the project.
    pub sequence: f64,
    /// Whether new items without a state get this one.
    pub default: bool,
}

/// A project label.
#[derive(Clone, Debug, PartialEq)]
pub struct Label {
    /// UUID.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Hex colour.
    pub color: String,
    /// Parent label UUID (label groups).
    pub parent: Option<String>,
    /// Ordering key.
    pub sort_order: f64,
}

/// A work item ("issue"). Timestamps are Unix microseconds; dates are `YYYY-MM-DD`.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkItem {
    /// UUID.
    pub id: String,
    /// Per-project number, the `12` in `WEB-12`.
    pub sequence_id: u64,
    /// Title, ≤ 255 chars.
    pub name: String,
    /// Rich text body; Plane's default is `<p></p>`.
    pub description_html: String,
    /// State UUID.
    pub state: String,
    /// Parent work item UUID.
    pub parent: Option<String>,
    /// `urgent|high|medium|low|none`.
    pub priority: String,
    /// `YYYY-MM-DD`.
    pub start_date: Option<String>,
    /// `YYYY-MM-DD`.
    pub target_date: Option<String>,
    /// User UUIDs.
    pub assignees: Vec<String>,
    /// Label UUIDs.
    pub labels: Vec<String>,
    /// Set when the state entered the `completed` group.
    pub completed_at: Option<i64>,
    /// Archive date; archived items are hidden from the API.
    pub archived_at: Option<String>,
    /// Drafts are hidden from the API.
    pub is_draft: bool,
    /// Soft deletion time; deleted items are hidden from the API.
    pub deleted_at: Option<i64>,
    /// Creation time (µs).
    pub created_at: i64,
    /// Last change (µs), bumped by every change.
    pub updated_at: i64,
    /// Creator user UUID.
    pub created_by: String,
    /// Last editor user UUID.
    pub updated_by: String,
    /// Manual ordering key.
    pub sort_order: f64,
    /// Id in an external system (ours: the CalDAV UID).
    pub external_id: Option<String>,
    /// Name of the external system.
    pub external_source: Option<String>,
    /// Estimate UUID, unused by the fake.
    pub estimate_point: Option<String>,
    /// Work item type UUID, unused by the fake.
    pub type_id: Option<String>,
}

/// A project with its states, labels and work items.
#[derive(Clone, Debug, PartialEq)]
pub struct Project {
    /// UUID.
    pub id: String,
    /// Upper-case key prefix ("WEB").
    pub identifier: String,
    /// Display name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Offset used when rendering this project's datetimes, so tests see both `Z` and
    /// `+05:30` style values (real Plane uses the token owner's zone).
    pub utc_offset_minutes: i32,
    /// Archive time (µs). Like CE 1.3.1, an archived project is still listed and readable
    /// (with `archived_at` set), but its items, states and labels lists are empty and its
    /// items answer GET with 404; PATCH, POST and DELETE of its items still work.
    pub archived_at: Option<i64>,
    /// Workflow states, including one hidden `triage` state.
    pub states: Vec<State>,
    /// Labels.
    pub labels: Vec<Label>,
    /// Member user UUIDs.
    pub member_ids: Vec<String>,
    /// All items, hidden ones included.
    pub items: Vec<WorkItem>,
    /// Creation time (µs).
    pub created_at: i64,
    /// IANA zone (Plane's project `timezone`; a cycle's days are stored in it).
    pub timezone: String,
    /// Cycles feature on (`cycle_view`; Plane's default is off, generated projects have it on).
    pub cycle_view: bool,
    /// Modules feature on (`module_view`).
    pub module_view: bool,
    /// Cycles, archived and deleted ones included.
    pub cycles: Vec<Cycle>,
    /// Modules, archived and deleted ones included.
    pub modules: Vec<Module>,
}

impl Project {
    /// Whether the API lists and GETs this item (not deleted, archived, draft or in
    /// triage, and the project not archived: Plane's `issue_objects` manager).
    pub fn is_visible(&self, item: &WorkItem) -> bool {
        self.archived_at.is_none()
            && item.deleted_at.is_none()
            && item.archived_at.is_none()
            && !item.is_draft
            && self.state(&item.state).map(|s| s.group.as_str()) != Some("triage")
    }

    /// Items the API lists, in storage (sequence) order.
    pub fn visible_items(&self) -> Vec<&WorkItem> {
        self.items.iter().filter(|i| self.is_visible(i)).collect()
    }

    /// A state by UUID.
    pub fn state(&self, id: &str) -> Option<&State> {
        self.states.iter().find(|s| s.id == id)
    }

    /// The first state of a group (`"completed"` …).
    pub fn state_in_group(&self, group: &str) -> Option<&State> {
        self.states.iter().find(|s| s.group == group)
    }

    fn next_sequence_id(&self) -> u64 {
        self.items.iter().map(|i| i.sequence_id).max().unwrap_or(0) + 1
    }
}

/// What a queued fault does to the request it hits.
#[derive(Clone, Debug, PartialEq)]
pub enum Fault {
    /// Answer with this status and a realistic body (Plane JSON for 500, proxy HTML for
    /// 502/503/504, JSON `detail` otherwise).
    Status(u16),
    /// 200 with an HTML page instead of JSON (a captive portal or misrouted proxy).
    Garbage,
    /// 200 whose JSON body is cut in half (consistent Content-Length).
    TruncatedJson,
    /// Sleep this long, then answer normally.
    Delay(Duration),
    /// Close the connection without answering.
    Close,
    /// Send headers and half of the body promised by Content-Length, then close.
    CloseMidBody,
}

/// A queued fault and the requests it may hit.
#[derive(Clone, Debug, PartialEq)]
pub struct FaultRule {
    /// Only requests with this method match (`None` = any method).
    pub method: Option<String>,
    /// Only requests whose path contains this string match ("" = any request).
    pub path_contains: String,
    /// What happens to the matching request.
    pub fault: Fault,
}

/// One request as the fake saw it.
#[derive(Clone, Debug, PartialEq)]
pub struct RequestLog {
    /// HTTP method.
    pub method: String,
    /// Path without query.
    pub path: String,
    /// Raw query string (without `?`), possibly empty.
    pub query: String,
    /// Status sent; 0 when the connection was dropped without a status line.
    pub status: u16,
    /// Request body as text (lossy UTF-8); empty when there was none (GET, DELETE).
    pub body: String,
}

/// How long after a successful PATCH or POST real Plane bumps `updated_at` again.
pub const BUMP_DELAY: Duration = Duration::from_millis(60);

/// An `updated_at` bump waiting for its due time (see [`World::bump_after_write`]).
#[derive(Clone, Debug, PartialEq)]
pub struct PendingBump {
    /// The work item.
    pub item_id: String,
    /// When it is applied (at the first request or world access from then on).
    pub due: Instant,
}

/// One changed field of an API write, as a webhook's `activity` names it. Values are
/// as the fake stores them (ids for state, comma-joined ids for labels/assignees).
#[derive(Clone, Debug, PartialEq)]
pub struct FieldChange {
    /// Field name (`name`, `target_date`, `state` …).
    pub field: String,
    /// Value before the write.
    pub old: Option<String>,
    /// Value after the write.
    pub new: Option<String>,
}

/// A successful create or update made through the API by the token owner ([`World::me`]):
/// what real Plane would echo back as webhooks.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiWrite {
    /// The work item.
    pub item_id: String,
    /// `created` or `updated`.
    pub action: String,
    /// The fields that changed (empty for a create, or a PATCH that changed nothing).
    pub changes: Vec<FieldChange>,
}

/// The whole fake workspace plus server knobs. Fields are public so tests can set up any
/// state; the mutators below keep `updated_at` honest.
#[derive(Clone, Debug)]
pub struct World {
    /// Workspace slug used in URLs.
    pub slug: String,
    /// Workspace UUID (webhook payloads).
    pub workspace_id: String,
    /// Webhook UUID (webhook payloads).
    pub webhook_id: String,
    /// The one valid API key.
    pub api_key: String,
    /// The token owner (`users/me/`).
    pub me: User,
    /// Workspace members, `me` included.
    pub members: Vec<User>,
    /// Projects.
    pub projects: Vec<Project>,
    /// Requests allowed per [`World::rate_window`]; Plane's default is 60/min, the
    /// generated default is 100 000 so tests only meet the limit when they ask for it.
    pub rate_limit: u32,
    /// Length of the sliding rate-limit window.
    pub rate_window: Duration,
    /// Largest `per_page` accepted (CE 1.3.1: 1000); a larger value is a 400, and a request
    /// without `per_page` gets pages of this size, as on real Plane.
    pub max_per_page: usize,
    /// Faults consumed by the next matching requests, first match wins.
    pub faults: VecDeque<FaultRule>,
    /// When true, new timestamps follow the wall clock (the demo); otherwise a fake clock
    /// advances ~1 s per change so tests are deterministic.
    pub real_clock: bool,
    /// Model Plane's delayed `updated_at` bump after API writes (default true).
    pub bump_after_write: bool,
    /// Bumps queued by API writes, not yet applied.
    pub pending_bumps: Vec<PendingBump>,
    /// Check a PATCH of one date against the other date stored on the item, like Plane
    /// after CE 1.3.1 (default false: CE 1.3.1 checks only dates in the same body).
    pub check_dates_against_item: bool,
    /// Creates and updates made through the API, oldest first (for echo webhooks).
    pub api_writes: Vec<ApiWrite>,
    /// Count module items per state group as CE 1.3.1 does, `COUNT(DISTINCT group)` (0 or
    /// 1; default true, as on the real server); false gives the true counts.
    pub module_counts_capped: bool,
    clock: i64,
    rng: Rng,
}

/// 2026-05-01T09:00:00Z, the fake "now" of generated worlds.
pub const DEFAULT_NOW_UNIX: i64 = 1_777_626_000;

impl World {
    /// An empty workspace (no projects) with fixed defaults.
    pub fn new(slug: &str, api_key: &str, seed: u64) -> World {
        let mut rng = Rng(seed ^ 0x9e37_79b9_7f4a_7c15);
        let me = make_user(&mut rng, &USERS[0]);
        World {
            slug: slug.to_string(),
            workspace_id: rng.uuid(),
            webhook_id: rng.uuid(),
            api_key: api_key.to_string(),
            members: vec![me.clone()],
            me,
            projects: Vec::new(),
            rate_limit: 100_000,
            rate_window: Duration::from_secs(60),
            max_per_page: 1000,
            faults: VecDeque::new(),
            real_clock: false,
            bump_after_write: true,
            pending_bumps: Vec::new(),
            check_dates_against_item: false,
            api_writes: Vec::new(),
            module_counts_capped: true,
            clock: DEFAULT_NOW_UNIX * 1_000_000,
            rng,
        }
    }

    /// A deterministic, realistic workspace: one project per entry of
    /// `visible_items_per_project`, each with that many listable items plus four hidden
    /// ones (archived, draft, triage, deleted). Same seed → same world.
    pub fn generate(visible_items_per_project: &[usize], seed: u64) -> World {
        World::generate_at(visible_items_per_project, seed, DEFAULT_NOW_UNIX)
    }

    /// Like [`World::generate`] but with "now" at `now_unix` seconds.
    pub fn generate_at(visible_items_per_project: &[usize], seed: u64, now_unix: i64) -> World {
        let mut w = World::new("acme", "", seed);
        w.api_key = format!("plane_api_{:016x}{:016x}", w.rng.next(), w.rng.next());
        w.clock = now_unix * 1_000_000;
        for spec in &USERS[1..] {
            let u = make_user(&mut w.rng, spec);
            w.members.push(u);
        }
        for (i, &n) in visible_items_per_project.iter().enumerate() {
            let p = generate_project(&mut w, i, n);
            w.projects.push(p);
        }
        w
    }

    /// Advances the clock and returns the new time (µs); strictly increasing.
    pub fn tick(&mut self) -> i64 {
        let next = if self.real_clock {
            unix_micros_now().max(self.clock + 1)
        } else {
            self.clock + 1_000_037
        };
        self.clock = next;
        next
    }

    /// The clock's current time (µs) without advancing it.
    pub fn now(&self) -> i64 {
        self.clock
    }

    /// A fresh deterministic UUID.
    pub fn new_uuid(&mut self) -> String {
        self.rng.uuid()
    }

    /// Project by identifier ("WEB"); panics if absent (test helper).
    pub fn project(&self, identifier: &str) -> &Project {
        self.projects
            .iter()
            .find(|p| p.identifier == identifier)
            .unwrap_or_else(|| panic!("fake plane: no project {identifier}"))
    }

    /// A work item by UUID, hidden ones included.
    pub fn item(&self, id: &str) -> Option<&WorkItem> {
        self.locate(id).map(|(p, i)| &self.projects[p].items[i])
    }

    /// A work item by human key (`WEB-12`), hidden ones included.
    pub fn item_by_key(&self, key: &str) -> Option<&WorkItem> {
        let (ident, seq) = key.rsplit_once('-')?;
        let seq: u64 = seq.parse().ok()?;
        let p = self.projects.iter().find(|p| p.identifier == ident)?;
        p.items.iter().find(|i| i.sequence_id == seq)
    }

    /// The project holding a work item.
    pub fn project_of(&self, item_id: &str) -> Option<&Project> {
        self.locate(item_id).map(|(p, _)| &self.projects[p])
    }

    fn locate(&self, id: &str) -> Option<(usize, usize)> {
        self.projects
            .iter()
            .enumerate()
            .find_map(|(pi, p)| p.items.iter().position(|i| i.id == id).map(|ii| (pi, ii)))
    }

    /// A member who is not `me`: edits made through the mutators look like a colleague's
    /// work in the web UI, so our own echo suppression does not hide them.
    pub fn colleague(&self) -> &User {
        self.members
            .iter()
            .find(|u| u.id != self.me.id)
            .unwrap_or(&self.me)
    }

    /// Applies `f` to an item as `actor` and bumps `updated_at`/`updated_by`. Panics if the
    /// item does not exist (test helper).
    pub fn update_as(&mut self, item_id: &str, actor_id: &str, f: impl FnOnce(&mut WorkItem)) {
        let (pi, ii) = self
            .locate(item_id)
            .unwrap_or_else(|| panic!("fake plane: no work item {item_id}"));
        let now = self.tick();
        let item = &mut self.projects[pi].items[ii];
        f(item);
        item.updated_at = now;
        item.updated_by = actor_id.to_string();
    }

    /// [`World::update_as`] by [`World::colleague`].
    pub fn update(&mut self, item_id: &str, f: impl FnOnce(&mut WorkItem)) {
        let actor = self.colleague().id.clone();
        self.update_as(item_id, &actor, f);
    }

    /// Renames an item.
    pub fn rename(&mut self, item_id: &str, name: &str) {
        self.update(item_id, |i| i.name = name.to_string());
    }

    /// Sets or clears the target (due) date, `YYYY-MM-DD`.
    pub fn set_target_date(&mut self, item_id: &str, date: Option<&str>) {
        self.update(item_id, |i| i.target_date = date.map(str::to_string));
    }

    /// Sets or clears the start date, `YYYY-MM-DD`.
    pub fn set_start_date(&mut self, item_id: &str, date: Option<&str>) {
        self.update(item_id, |i| i.start_date = date.map(str::to_string));
    }

    /// Sets the priority.
    pub fn set_priority(&mut self, item_id: &str, priority: &str) {
        self.update(item_id, |i| i.priority = priority.to_string());
    }

    /// Moves an item to the first state of `group`, maintaining `completed_at`.
    pub fn set_state_group(&mut self, item_id: &str, group: &str) {
        let state = self
            .project_of(item_id)
            .and_then(|p| p.state_in_group(group))
            .unwrap_or_else(|| panic!("fake plane: no {group} state for {item_id}"))
            .id
            .clone();
        let now = self.clock + 1_000_037;
        let completed = group == "completed";
        self.update(item_id, |i| {
            i.state = state;
            i.completed_at = if completed { Some(now) } else { None };
        });
    }

    /// Replaces the label set.
    pub fn set_labels(&mut self, item_id: &str, labels: &[&str]) {
        self.update(item_id, |i| {
            i.labels = labels.iter().map(|s| s.to_string()).collect()
        });
    }

    /// Replaces the assignee set.
    pub fn set_assignees(&mut self, item_id: &str, users: &[&str]) {
        self.update(item_id, |i| {
            i.assignees = users.iter().map(|s| s.to_string()).collect()
        });
    }

    /// Soft-deletes an item: it vanishes from lists and GET gives 404.
    pub fn delete(&mut self, item_id: &str) {
        let now = self.clock + 1_000_037;
        self.update(item_id, |i| i.deleted_at = Some(now));
    }

    /// Archives an item (archive date = today in UTC): hidden like a deletion.
    pub fn archive(&mut self, item_id: &str) {
        let today = fmt_date((self.clock / 1_000_000).div_euclid(86_400));
        self.update(item_id, |i| i.archived_at = Some(today));
    }

    /// Bumps `updated_at` without visible change (like an edit to an unsynced field).
    pub fn touch(&mut self, item_id: &str) {
        self.update(item_id, |_| {});
    }

    /// Adds a work item to project `identifier` as a colleague would in the UI; returns
    /// its UUID.
    pub fn add_item(&mut self, identifier: &str, name: &str) -> String {
        let id = self.new_uuid();
        let now = self.tick();
        let actor = self.colleague().id.clone();
        let p = self
            .projects
            .iter_mut()
            .find(|p| p.identifier == identifier)
            .unwrap_or_else(|| panic!("fake plane: no project {identifier}"));
        let item = new_item(p, id.clone(), name.to_string(), &actor, now);
        p.items.push(item);
        id
    }

    /// Queues a fault for the next request, whatever its path.
    pub fn push_fault(&mut self, fault: Fault) {
        self.push_fault_for("", fault);
    }

    /// Queues a fault for the next request whose path contains `path_contains`.
    pub fn push_fault_for(&mut self, path_contains: &str, fault: Fault) {
        self.faults.push_back(FaultRule {
            method: None,
            path_contains: path_contains.to_string(),
            fault,
        });
    }

    /// Queues a fault for the next `method` request whose path contains `path_contains`
    /// (a POST and the listing share their path).
    pub fn push_fault_on(&mut self, method: &str, path_contains: &str, fault: Fault) {
        self.faults.push_back(FaultRule {
            method: Some(method.to_string()),
            path_contains: path_contains.to_string(),
            fault,
        });
    }

    /// An issue webhook body in the CE shape (`event`, `action`, `webhook_id`,
    /// `workspace_id`, `data`, `activity`). `data` is the expanded item with
    /// `description_stripped` (just `{"id"}` when the item is gone); `change` is
    /// `(field, old_value, new_value)`; `actor_id` picks the member in `activity.actor`.
    pub fn webhook_payload(
        &self,
        item_id: &str,
        action: &str,
        actor_id: &str,
        change: Option<(&str, Option<&str>, Option<&str>)>,
    ) -> String {
        let data = match self.locate(item_id) {
            Some((pi, ii)) if action != "deleted" => {
                let p = &self.projects[pi];
                let it = &p.items[ii];
                let mut v = item_json(self, p, it, &["state", "labels", "assignees"]);
                if let Value::Object(o) = &mut v {
                    o.insert(
                        "description_stripped".into(),
                        Value::String(strip_html(&it.description_html)),
                    );
                }
                v
            }
            _ => obj(vec![("id", s(item_id))]),
        };
        let actor = self
            .members
            .iter()
            .find(|u| u.id == actor_id)
            .map(user_json)
            .unwrap_or(Value::Null);
        let (field, old, new) = change.unwrap_or(("", None, None));
        let activity = obj(vec![
            (
                "field",
                if field.is_empty() {
                    Value::Null
                } else {
                    s(field)
                },
            ),
            ("new_value", opt(new)),
            ("old_value", opt(old)),
            ("actor", actor),
            ("old_identifier", Value::Null),
            ("new_identifier", Value::Null),
        ]);
        json::to_string(&obj(vec![
            ("event", s("issue")),
            ("action", s(action)),
            ("webhook_id", s(&self.webhook_id)),
            ("workspace_id", s(&self.workspace_id)),
            ("data", data),
            ("activity", activity),
        ]))
    }

    /// The webhooks real Plane would send for an API write by the token owner: one per
    /// changed field for an update (a 3-field PATCH → 3 deliveries, a PATCH that changed
    /// nothing → none), one for a create, each with `activity.actor` = [`World::me`] —
    /// what echo suppression must drop.
    pub fn echo_payloads(&self, write: &ApiWrite) -> Vec<String> {
        if write.action == "created" {
            return vec![self.webhook_payload(&write.item_id, &write.action, &self.me.id, None)];
        }
        write
            .changes
            .iter()
            .map(|c| {
                let change = (c.field.as_str(), c.old.as_deref(), c.new.as_deref());
                self.webhook_payload(&write.item_id, &write.action, &self.me.id, Some(change))
            })
            .collect()
    }

    /// Applies the queued `updated_at` bumps whose time has come (the server calls this
    /// before each request and world access).
    pub fn apply_due_bumps(&mut self) {
        let now = Instant::now();
        let (due, later): (Vec<PendingBump>, Vec<PendingBump>) =
            std::mem::take(&mut self.pending_bumps)
                .into_iter()
                .partition(|b| b.due <= now);
        self.pending_bumps = later;
        for bump in due {
            if let Some((pi, ii)) = self.locate(&bump.item_id) {
                let t = self.tick();
                self.projects[pi].items[ii].updated_at = t;
            }
        }
    }

    /// Records a successful API write: its echo, and the delayed bump when enabled.
    fn after_api_write(&mut self, item_id: &str, action: &str, changes: Vec<FieldChange>) {
        self.api_writes.push(ApiWrite {
            item_id: item_id.to_string(),
            action: action.to_string(),
            changes,
        });
        if self.bump_after_write {
            // One pending bump per item: a second write before the first bump replaces it.
            self.pending_bumps.retain(|b| b.item_id != item_id);
            self.pending_bumps.push(PendingBump {
                item_id: item_id.to_string(),
                due: Instant::now() + BUMP_DELAY,
            });
        }
    }
}

/// The webhook-visible fields that differ between two versions of an item.
fn changed_fields(before: &WorkItem, after: &WorkItem) -> Vec<FieldChange> {
    let joined = |v: &[String]| (!v.is_empty()).then(|| v.join(","));
    let pairs: [(&str, Option<String>, Option<String>); 9] = [
        ("name", Some(before.name.clone()), Some(after.name.clone())),
        (
            "description_html",
            Some(before.description_html.clone()),
            Some(after.description_html.clone()),
        ),
        (
            "state",
            Some(before.state.clone()),
            Some(after.state.clone()),
        ),
        ("parent", before.parent.clone(), after.parent.clone()),
        (
            "priority",
            Some(before.priority.clone()),
            Some(after.priority.clone()),
        ),
        (
            "start_date",
            before.start_date.clone(),
            after.start_date.clone(),
        ),
        (
            "target_date",
            before.target_date.clone(),
            after.target_date.clone(),
        ),
        ("labels", joined(&before.labels), joined(&after.labels)),
        (
            "assignees",
            joined(&before.assignees),
            joined(&after.assignees),
        ),
    ];
    pairs
        .into_iter()
        .filter(|(_, old, new)| old != new)
        .map(|(field, old, new)| FieldChange {
            field: field.to_string(),
            old,
            new,
        })
        .collect()
}

/// `X-Plane-Signature` for a webhook body: lowercase hex HMAC-SHA256 keyed by the secret.
pub fn sign_webhook(secret: &str, body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(body);
    let mut hex = String::with_capacity(64);
    for b in mac.finalize().into_bytes() {
        let _ = write!(hex, "{b:02x}");
    }
    hex
}

// ---------------------------------------------------------------------------------------
// Generation
// ---------------------------------------------------------------------------------------

/// splitmix64: tiny, seedable, good enough for fixtures.
#[derive(Clone, Debug)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn percent(&mut self, p: u64) -> bool {
        self.below(100) < p
    }
    /// A UUID with version 4 and RFC 4122 variant bits, like Plane's `uuid4()`.
    fn uuid(&mut self) -> String {
        let a = self.next();
        let b = self.next();
        let a = (a & !0xf000) | 0x4000;
        let b = (b & !(0xc << 60)) | (0x8 << 60);
        format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xffff,
            b >> 48,
            b & 0xffff_ffff_ffff
        )
    }
}

const USERS: [(&str, &str, &str); 5] = [
    ("Ada", "Lovelace", "ada"),
    ("Grace", "Hopper", "grace"),
    ("José", "Núñez", "jose"),
    ("Zoë", "Łukasiewicz", "zoe"),
    ("伟", "李", "liwei"),
];

fn make_user(rng: &mut Rng, spec: &(&str, &str, &str)) -> User {
    User {
        id: rng.uuid(),
        first_name: spec.0.to_string(),
        last_name: spec.1.to_string(),
        email: format!("{}@example.com", spec.2),
        display_name: spec.2.to_string(),
        avatar: String::new(),
    }
}

const PROJECTS: [(&str, &str); 8] = [
    ("WEB", "Website Relaunch"),
    ("OPS", "Operations"),
    ("MOB", "Mobile App"),
    ("DATA", "Données & Analyse"),
    ("DOCS", "Documentation"),
    ("INFRA", "Infrastructure"),
    ("QA", "Quality Assurance"),
    ("SALES", "Sales Ops"),
];

const STATES: [(&str, &str, &str); 7] = [
    ("Backlog", "backlog", "#A3A3A3"),
    ("Todo", "unstarted", "#3A3A3A"),
    ("In Progress", "started", "#F59E0B"),
    ("In Review", "started", "#8B5CF6"),
    ("Done", "completed", "#16A34A"),
    ("Cancelled", "cancelled", "#EF4444"),
    ("Triage", "triage", "#4E5355"),
];

const LABELS: [(&str, &str); 5] = [
    ("bug", "#EF4444"),
    ("feature", "#3B82F6"),
    ("docs", "#10B981"),
    ("design 🎨", "#EC4899"),
    ("größer", "#F97316"),
];

const VERBS: [&str; 12] = [
    "Fix",
    "Update",
    "Write",
    "Review",
    "Plan",
    "Migrate",
    "Design",
    "Test",
    "Document",
    "Refactor",
    "Deploy",
    "Investigate",
];

const OBJECTS: [&str; 12] = [
    "login page",
    "invoice template",
    "CalDAV sync",
    "release notes",
    "onboarding flow",
    "database backup",
    "search index",
    "mobile navbar",
    "API rate limits",
    "dark mode",
    "CSV export",
    "payment webhook",
];

/// Names that exercise escaping and non-ASCII handling end to end.
const ODD_NAMES: [&str; 8] = [
    "Überarbeitung der Rechnungsvorlage",
    "日本語のドキュメントを更新",
    "Fix emoji 🚀 rendering in titles",
    "Café menu «draft» — v2",
    "Quote \"handling\" & <angle> brackets",
    "Tab\tand backslash \\ in name",
    "Ελληνικά: έλεγχος",
    "Пересмотреть бюджет на Q3",
];

const DESCRIPTIONS: [&str; 4] = [
    "<p></p>",
    "<p>Details for <strong>this task</strong>.</p><ul><li>first &amp; second</li><li>naïve café</li></ul>",
    "<p>See <a href=\"https://example.com/spec?a=1&amp;b=2\">the spec</a> — due soon.</p>",
    "<h2>Context</h2><p>Line one<br>Line two with &lt;tags&gt; and “quotes”.</p>",
];

const PRIORITIES: [&str; 5] = ["urgent", "high", "medium", "low", "none"];

fn generate_project(w: &mut World, index: usize, visible: usize) -> Project {
    let (identifier, name) = match PROJECTS.get(index) {
        Some(&(i, n)) => (i.to_string(), n.to_string()),
        None => (format!("P{}", index + 1), format!("Project {}", index + 1)),
    };
    let now = w.clock;
    let rng = &mut w.rng;
    let states = STATES
        .iter()
        .enumerate()
        .map(|(k, &(n, g, c))| State {
            id: rng.uuid(),
            name: n.to_string(),
            color: c.to_string(),
            group: g.to_string(),
            sequence: 15000.0 + 10000.0 * k as f64,
            default: k == 0,
        })
        .collect::<Vec<_>>();
    let labels = LABELS
        .iter()
        .enumerate()
        .map(|(k, &(n, c))| Label {
            id: rng.uuid(),
            name: n.to_string(),
            color: c.to_string(),
            parent: None,
            sort_order: 65535.0 * (k + 1) as f64,
        })
        .collect::<Vec<_>>();
    let member_ids: Vec<String> = w.members.iter().map(|u| u.id.clone()).collect();
    let hidden = if visible > 0 { 4 } else { 0 };
    let total = visible + hidden;
    let created_at = now - (total as i64 + 30) * 3 * 3_600_000_000;
    let mut p = Project {
        id: rng.uuid(),
        identifier,
        name,
        description: format!("Generated project #{}", index + 1),
        utc_offset_minutes: [0, 330, -420][index % 3],
        archived_at: None,
        states,
        labels,
        member_ids: member_ids.clone(),
        items: Vec::with_capacity(total),
        created_at,
        timezone: "UTC".into(),
        cycle_view: true,
        module_view: true,
        cycles: Vec::new(),
        modules: Vec::new(),
    };
    let today = now.div_euclid(86_400_000_000);
    // Hidden items sit between visible ones, so pagination must skip them correctly.
    let hidden_at: Vec<usize> = (1..=hidden).map(|k| k * total / (hidden + 1)).collect();
    for k in 0..total {
        let seq = k as u64 + 1;
        let name = if k % 7 == 3 {
            ODD_NAMES[(k / 7) % ODD_NAMES.len()].to_string()
        } else {
            format!(
                "{} {}",
                VERBS[rng.below(12) as usize],
                OBJECTS[rng.below(12) as usize]
            )
        };
        // Distinct, increasing creation times with sub-second parts.
        let created = created_at + (k as i64 + 1) * 3 * 3_600_000_000 + rng.below(999_999) as i64;
        let updated = (created + rng.below(2 * 86_400_000_000) as i64).min(now - 1_000_000);
        let updated = updated.max(created);
        let state_ix = [0, 1, 1, 2, 2, 3, 4, 4, 4, 5][rng.below(10) as usize];
        let state = &p.states[state_ix];
        let target = rng.percent(80).then(|| today - 30 + rng.below(90) as i64);
        let start = match target {
            Some(t) if rng.percent(40) => Some(t - rng.below(14) as i64),
            _ => None,
        };
        let n_labels = rng.below(3) as usize;
        let mut labels: Vec<String> = Vec::new();
        for _ in 0..n_labels {
            let l = p.labels[rng.below(p.labels.len() as u64) as usize]
                .id
                .clone();
            if !labels.contains(&l) {
                labels.push(l);
            }
        }
        let mut assignees: Vec<String> = Vec::new();
        for _ in 0..rng.below(3) {
            let u = member_ids[rng.below(member_ids.len() as u64) as usize].clone();
            if !assignees.contains(&u) {
                assignees.push(u);
            }
        }
        let parent =
            (k > 5 && rng.percent(10)).then(|| p.items[rng.below(k as u64) as usize].id.clone());
        let author = member_ids[rng.below(member_ids.len() as u64) as usize].clone();
        let mut item = WorkItem {
            id: rng.uuid(),
            sequence_id: seq,
            name,
            description_html: DESCRIPTIONS[rng.below(4) as usize].to_string(),
            state: state.id.clone(),
            parent,
            priority: PRIORITIES[rng.below(5) as usize].to_string(),
            start_date: start.map(fmt_date),
            target_date: target.map(fmt_date),
            assignees,
            labels,
            completed_at: (state.group == "completed").then_some(updated),
            archived_at: None,
            is_draft: false,
            deleted_at: None,
            created_at: created,
            updated_at: updated,
            created_by: author.clone(),
            updated_by: author,
            sort_order: 65535.0 + 10000.0 * k as f64,
            external_id: None,
            external_source: None,
            estimate_point: None,
            type_id: None,
        };
        match hidden_at.iter().position(|&h| h == k) {
            Some(0) => item.archived_at = Some(fmt_date(today - 3)),
            Some(1) => item.is_draft = true,
            Some(2) => item.state = p.states[6].id.clone(),
            Some(_) => item.deleted_at = Some(updated),
            None => {}
        }
        p.items.push(item);
    }
    p
}

fn new_item(p: &Project, id: String, name: String, actor: &str, now: i64) -> WorkItem {
    let state = p
        .states
        .iter()
        .find(|s| s.default)
        .or(p.states.first())
        .map(|s| s.id.clone())
        .unwrap_or_default();
    let sort_order = p.items.iter().map(|i| i.sort_order).fold(55535.0, f64::max) + 10000.0;
    WorkItem {
        id,
        sequence_id: p.next_sequence_id(),
        name,
        description_html: "<p></p>".into(),
        state,
        parent: None,
        priority: "none".into(),
        start_date: None,
        target_date: None,
        assignees: Vec::new(),
        labels: Vec::new(),
        completed_at: None,
        archived_at: None,
        is_draft: false,
        deleted_at: None,
        created_at: now,
        updated_at: now,
        created_by: actor.to_string(),
        updated_by: actor.to_string(),
        sort_order,
        external_id: None,
        external_source: None,
        estimate_point: None,
        type_id: None,
    }
}

// ---------------------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------------------

/// A running fake Plane server. Dropping it stops the server and closes connections.
pub struct FakePlane {
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

struct Shared {
    inner: Mutex<Inner>,
    conns: Mutex<HashMap<u64, TcpStream>>,
    verbose: AtomicBool,
}

struct Inner {
    world: World,
    log: Vec<RequestLog>,
    /// Times of recent counted requests, oldest first (sliding-log throttle, like DRF).
    hits: VecDeque<Instant>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking test thread must not wedge the server for the others.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl FakePlane {
    /// Serves `world` on 127.0.0.1 at a free port. Panics if no port can be bound.
    pub fn start(world: World) -> FakePlane {
        FakePlane::start_on("127.0.0.1:0", world).expect("fake plane: bind 127.0.0.1:0")
    }

    /// Serves `world` on `addr` (e.g. `127.0.0.1:8090`).
    pub fn start_on(addr: &str, world: World) -> io::Result<FakePlane> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                world,
                log: Vec::new(),
                hits: VecDeque::new(),
            }),
            conns: Mutex::new(HashMap::new()),
            verbose: AtomicBool::new(false),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let (sh, st) = (shared.clone(), stop.clone());
        let thread = thread::Builder::new()
            .name("fake-plane-accept".into())
            .spawn(move || accept_loop(listener, sh, st))?;
        Ok(FakePlane {
            shared,
            addr,
            stop,
            thread: Some(thread),
        })
    }

    /// What users put in `PLANE_BASE_URL`: `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `base_url()` + `/api/v1/`.
    pub fn api_url(&self) -> String {
        format!("{}/api/v1/", self.base_url())
    }

    /// The bound socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Runs `f` on the world under the server lock (set up or mutate between syncs).
    /// Due `updated_at` bumps are applied first.
    pub fn with_world<R>(&self, f: impl FnOnce(&mut World) -> R) -> R {
        let world = &mut lock(&self.shared.inner).world;
        world.apply_due_bumps();
        f(world)
    }

    /// A snapshot of the world, due `updated_at` bumps applied.
    pub fn world(&self) -> World {
        self.with_world(|w| w.clone())
    }

    /// Every request seen since start or the last [`FakePlane::clear_requests`].
    pub fn requests(&self) -> Vec<RequestLog> {
        lock(&self.shared.inner).log.clone()
    }

    /// Forgets the request log.
    pub fn clear_requests(&self) {
        lock(&self.shared.inner).log.clear();
    }

    /// Forgets rate-limit history, as if a window had passed.
    pub fn reset_rate_limit(&self) {
        lock(&self.shared.inner).hits.clear();
    }

    /// Prints one line per request on stderr.
    pub fn set_verbose(&self, on: bool) {
        self.shared.verbose.store(on, Ordering::Relaxed);
    }
}

impl Drop for FakePlane {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept() so the thread sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        for (_, c) in lock(&self.shared.conns).drain() {
            let _ = c.shutdown(Shutdown::Both);
        }
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>, stop: Arc<AtomicBool>) {
    let mut next_id = 0u64;
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = stream else { continue };
        next_id += 1;
        let id = next_id;
        if let Ok(c) = stream.try_clone() {
            lock(&shared.conns).insert(id, c);
        }
        let sh = shared.clone();
        let _ = thread::Builder::new()
            .name("fake-plane-conn".into())
            .spawn(move || {
                serve_connection(&sh, stream);
                lock(&sh.conns).remove(&id);
            });
    }
}

struct HttpRequest {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    close: bool,
}

impl HttpRequest {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

struct Response {
    status: u16,
    content_type: &'static str,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

enum Reply {
    Full(Response),
    /// Write the head and this many body bytes, then drop the connection.
    CutAfter(Response, usize),
    Close,
}

const MAX_HEAD: usize = 64 * 1024;
const MAX_BODY: usize = 8 * 1024 * 1024;

fn bad_input(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

fn read_line_limited(r: &mut impl BufRead, budget: &mut usize) -> io::Result<String> {
    let mut buf = Vec::new();
    let n = r.take(*budget as u64 + 1).read_until(b'\n', &mut buf)?;
    if n > *budget {
        return Err(bad_input("head too large"));
    }
    *budget -= n;
    String::from_utf8(buf).map_err(|_| bad_input("non-UTF-8 head"))
}

/// Reads one HTTP/1.1 request; `Ok(None)` on a clean EOF between requests.
fn read_request(r: &mut impl BufRead) -> io::Result<Option<HttpRequest>> {
    let mut budget = MAX_HEAD;
    let mut line;
    loop {
        line = read_line_limited(r, &mut budget)?;
        if line.is_empty() {
            return Ok(None);
        }
        if !line.trim().is_empty() {
            break;
        }
    }
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(bad_input("bad request line"));
    };
    let (method, target, version) = (method.to_string(), target.to_string(), version.to_string());
    let mut headers = Vec::new();
    loop {
        let l = read_line_limited(r, &mut budget)?;
        let l = l.trim_end_matches(['\r', '\n']);
        if l.is_empty() {
            break;
        }
        let (k, v) = l.split_once(':').ok_or_else(|| bad_input("bad header"))?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let find = |name: &str| {
        headers
            .iter()
            .find(|(k, _): &&(String, String)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.to_ascii_lowercase())
    };
    let chunked = find("transfer-encoding").is_some_and(|v| v.contains("chunked"));
    let close = match find("connection") {
        Some(v) => v.contains("close"),
        None => version == "HTTP/1.0",
    };
    let mut body = Vec::new();
    if chunked {
        loop {
            let l = read_line_limited(r, &mut budget)?;
            let size = l.trim().split(';').next().unwrap_or("");
            let size = usize::from_str_radix(size, 16).map_err(|_| bad_input("bad chunk"))?;
            if size == 0 {
                while !read_line_limited(r, &mut budget)?.trim().is_empty() {}
                break;
            }
            if body.len() + size > MAX_BODY {
                return Err(bad_input("body too large"));
            }
            let start = body.len();
            body.resize(start + size, 0);
            r.read_exact(&mut body[start..])?;
            read_line_limited(r, &mut budget)?;
        }
    } else if let Some(len) = find("content-length") {
        let len: usize = len.parse().map_err(|_| bad_input("bad length"))?;
        if len > MAX_BODY {
            return Err(bad_input("body too large"));
        }
        body.resize(len, 0);
        r.read_exact(&mut body)?;
    }
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (target.clone(), String::new()),
    };
    Ok(Some(HttpRequest {
        method,
        path,
        query,
        headers,
        body,
        close,
    }))
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        301 => "Moved Permanently",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        415 => "Unsupported Media Type",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

fn write_head(w: &mut impl Write, resp: &Response, keep_alive: bool) -> io::Result<()> {
    let mut head = format!("HTTP/1.1 {} {}\r\n", resp.status, reason(resp.status));
    head.push_str("Server: fake-plane\r\n");
    if resp.status != 204 {
        let _ = write!(
            head,
            "Content-Type: {}\r\nContent-Length: {}\r\n",
            resp.content_type,
            resp.body.len()
        );
    }
    for (k, v) in &resp.headers {
        let _ = write!(head, "{k}: {v}\r\n");
    }
    if !keep_alive {
        head.push_str("Connection: close\r\n");
    }
    head.push_str("\r\n");
    w.write_all(head.as_bytes())
}

fn serve_connection(shared: &Shared, stream: TcpStream) {
    // Head and body go out in two writes; without NODELAY, Nagle plus the client's
    // delayed ACK stalls back-to-back requests on a kept-alive connection by ~40 ms.
    let _ = stream.set_nodelay(true);
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut out = stream;
    loop {
        let req = match read_request(&mut reader) {
            Ok(Some(r)) => r,
            Ok(None) => break,
            Err(e) => {
                if e.kind() == io::ErrorKind::InvalidData {
                    let resp = text(400, "text/plain", "bad request");
                    let _ =
                        write_head(&mut out, &resp, false).and_then(|_| out.write_all(&resp.body));
                }
                break;
            }
        };
        let reply = shared.handle(&req);
        let ok = match reply {
            Reply::Full(resp) => write_head(&mut out, &resp, !req.close)
                .and_then(|_| out.write_all(&resp.body))
                .and_then(|_| out.flush())
                .is_ok(),
            Reply::CutAfter(resp, n) => {
                let _ = write_head(&mut out, &resp, true)
                    .and_then(|_| out.write_all(&resp.body[..n.min(resp.body.len())]))
                    .and_then(|_| out.flush());
                false
            }
            Reply::Close => false,
        };
        if !ok || req.close {
            break;
        }
    }
    let _ = out.shutdown(Shutdown::Both);
}

impl Shared {
    fn handle(&self, req: &HttpRequest) -> Reply {
        let fault = {
            let mut inner = lock(&self.inner);
            let faults = &mut inner.world.faults;
            let pos = faults.iter().position(|f| {
                f.method.as_ref().is_none_or(|m| *m == req.method)
                    && req.path.contains(f.path_contains.as_str())
            });
            pos.and_then(|i| faults.remove(i)).map(|f| f.fault)
        };
        let reply = match fault {
            Some(Fault::Delay(d)) => {
                thread::sleep(d);
                Reply::Full(self.serve(req))
            }
            Some(f) => fault_reply(f, || self.serve(req)),
            None => Reply::Full(self.serve(req)),
        };
        let status = match &reply {
            Reply::Full(r) | Reply::CutAfter(r, _) => r.status,
            Reply::Close => 0,
        };
        if self.verbose.load(Ordering::Relaxed) {
            let q = if req.query.is_empty() { "" } else { "?" };
            eprintln!(
                "{} {}{}{} -> {}",
                req.method, req.path, q, req.query, status
            );
        }
        lock(&self.inner).log.push(RequestLog {
            method: req.method.clone(),
            path: req.path.clone(),
            query: req.query.clone(),
            status,
            body: String::from_utf8_lossy(&req.body).into_owned(),
        });
        reply
    }

    fn serve(&self, req: &HttpRequest) -> Response {
        let mut inner = lock(&self.inner);
        inner.world.apply_due_bumps();
        api(&mut inner, req)
    }
}

/// Builds the response a fault stands for; `real` renders the true answer when the fault
/// needs its bytes (truncation).
fn fault_reply(f: Fault, real: impl FnOnce() -> Response) -> Reply {
    match f {
        Fault::Status(500) => Reply::Full(server_error()),
        Fault::Status(code @ (502..=504)) => {
            let body = format!(
                "<html>\r\n<head><title>{code} {r}</title></head>\r\n<body>\r\n<center><h1>{code} {r}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n",
                r = reason(code)
            );
            Reply::Full(text(code, "text/html", &body))
        }
        Fault::Status(code) => Reply::Full(error(code, vec![("detail", s(reason(code)))])),
        Fault::Garbage => Reply::Full(text(
            200,
            "text/html; charset=utf-8",
            "<!DOCTYPE html><html><body><h1>Please sign in to the Wi-Fi</h1></body></html>",
        )),
        Fault::TruncatedJson => {
            let mut r = real();
            let cut = (r.body.len() / 2).max(1).min(r.body.len());
            r.body.truncate(cut);
            Reply::Full(r)
        }
        Fault::CloseMidBody => {
            let r = real();
            let n = r.body.len() / 2;
            Reply::CutAfter(r, n)
        }
        Fault::Close => Reply::Close,
        Fault::Delay(_) => Reply::Full(real()),
    }
}

// ---------------------------------------------------------------------------------------
// API
// ---------------------------------------------------------------------------------------

enum Route<'a> {
    Me,
    Members(&'a str),
    Projects(&'a str),
    Project(&'a str, &'a str),
    Items(&'a str, &'a str),
    Item(&'a str, &'a str, &'a str),
    ItemByKey(&'a str, &'a str),
    States(&'a str, &'a str),
    Labels(&'a str, &'a str),
    ProjectMembers(&'a str, &'a str),
    Cycles(&'a str, &'a str),
    Cycle(&'a str, &'a str, &'a str),
    Modules(&'a str, &'a str),
    Module(&'a str, &'a str, &'a str),
}

/// Plane's URL conf: project and item ids are `<uuid:…>` (lower-case hex), so any other
/// segment matches no route (Django's 404, before authentication).
fn route<'a>(segs: &[&'a str]) -> Option<Route<'a>> {
    let items = |s: &str| s == "work-items" || s == "issues";
    Some(match *segs {
        ["users", "me"] => Route::Me,
        ["workspaces", slug, "members"] => Route::Members(slug),
        ["workspaces", slug, "projects"] => Route::Projects(slug),
        ["workspaces", slug, "projects", pid] if is_uuid(pid) => Route::Project(slug, pid),
        ["workspaces", slug, "projects", pid, w] if items(w) && is_uuid(pid) => {
            Route::Items(slug, pid)
        }
        ["workspaces", slug, "projects", pid, w, id] if items(w) && is_uuid(pid) && is_uuid(id) => {
            Route::Item(slug, pid, id)
        }
        ["workspaces", slug, "projects", pid, "cycles", id] if is_uuid(pid) && is_uuid(id) => {
            Route::Cycle(slug, pid, id)
        }
        ["workspaces", slug, "projects", pid, "modules", id] if is_uuid(pid) && is_uuid(id) => {
            Route::Module(slug, pid, id)
        }
        ["workspaces", slug, "projects", pid, tail] if is_uuid(pid) => match tail {
            "cycles" => Route::Cycles(slug, pid),
            "modules" => Route::Modules(slug, pid),
            "states" => Route::States(slug, pid),
            "labels" => Route::Labels(slug, pid),
            "members" => Route::ProjectMembers(slug, pid),
            _ => return None,
        },
        ["workspaces", slug, w, key] if items(w) && key.contains('-') => {
            Route::ItemByKey(slug, key)
        }
        _ => return None,
    })
}

/// Django's `<uuid:…>` converter: 8-4-4-4-12 lower-case hex digits.
fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
        })
}

/// The routed path segments of `/api/v1/…/`, or the answer Django's middleware gives
/// first: a 301 to the same path with `/` appended when that path is routed
/// (`APPEND_SLASH`, any method, no authentication needed), else the JSON 404.
fn routed_segments(req: &HttpRequest) -> Result<Vec<&str>, Response> {
    let rest = req.path.strip_prefix("/api/v1/").unwrap_or("");
    let (rest, slash) = match rest.strip_suffix('/') {
        Some(r) => (r, true),
        None => (rest, false),
    };
    let segs: Vec<&str> = rest.split('/').collect();
    if segs.iter().any(|s| s.is_empty()) || route(&segs).is_none() {
        return Err(page_not_found());
    }
    if !slash {
        let q = if req.query.is_empty() { "" } else { "?" };
        return Err(redirect(&format!("{}/{q}{}", req.path, req.query)));
    }
    Ok(segs)
}

/// Plane's permission classes, which run after authentication and before the throttle (so
/// their 403 neither counts against the rate limit nor carries `X-RateLimit-*`): work
/// items and states need the token owner to be a member of the project, so a project
/// that does not exist (or was deleted) is a 403, not a 404. Labels and project members
/// only need workspace membership: an unknown project lists nothing there.
fn project_permission_denied(w: &World, route: &Route<'_>) -> bool {
    let member = |p: Option<&Project>| p.is_some_and(|p| p.member_ids.contains(&w.me.id));
    match *route {
        // Cycles and modules use Plane's `ProjectEntityPermission`, like work items.
        Route::Items(slug, pid)
        | Route::Item(slug, pid, _)
        | Route::States(slug, pid)
        | Route::Cycles(slug, pid)
        | Route::Cycle(slug, pid, _)
        | Route::Modules(slug, pid)
        | Route::Module(slug, pid, _) => !member(find_project(w, slug, pid)),
        Route::ItemByKey(slug, key) => {
            let ident = key.rsplit_once('-').map_or(key, |(i, _)| i);
            let p = w
                .projects
                .iter()
                .find(|p| slug == w.slug && p.identifier == ident);
            !member(p)
        }
        _ => false,
    }
}

fn api(inner: &mut Inner, req: &HttpRequest) -> Response {
    let segs = match routed_segments(req) {
        Ok(segs) => segs,
        Err(r) => return r,
    };
    let Some(route) = route(&segs) else {
        return page_not_found();
    };
    match req.header("x-api-key") {
        None => {
            return error(
                401,
                vec![("detail", s("Authentication credentials were not provided."))],
            )
        }
        Some(k) if k != inner.world.api_key => {
            return error(403, vec![("detail", s("Given API token is not valid"))])
        }
        Some(_) => {}
    }
    if segs.first() == Some(&"workspaces") && segs.get(1) != Some(&inner.world.slug.as_str()) {
        return permission_denied();
    }
    if project_permission_denied(&inner.world, &route) {
        return permission_denied();
    }
    // Sliding-log throttle over the configured window.
    let now = Instant::now();
    let window = inner.world.rate_window;
    while inner
        .hits
        .front()
        .is_some_and(|t| now.duration_since(*t) >= window)
    {
        inner.hits.pop_front();
    }
    let limit = inner.world.rate_limit as usize;
    if inner.hits.len() >= limit {
        let oldest = inner.hits.front().copied().unwrap_or(now);
        let wait = window.saturating_sub(now.duration_since(oldest));
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let mut r = error(
            429,
            vec![
                ("error_code", Value::Number(Number::U64(5900))),
                ("error_message", s("RATE_LIMIT_EXCEEDED")),
            ],
        );
        r.headers
            .push(("Retry-After".into(), secs.max(1).to_string()));
        return r;
    }
    inner.hits.push_back(now);
    let remaining = limit - inner.hits.len();
    let q = parse_query(&req.query);
    let mut resp = dispatch(&mut inner.world, route, req, &q);
    let reset = unix_micros_now() / 1_000_000 + window.as_secs().max(1) as i64;
    resp.headers
        .push(("X-RateLimit-Remaining".into(), remaining.to_string()));
    resp.headers
        .push(("X-RateLimit-Reset".into(), reset.to_string()));
    resp
}

type Query = Vec<(String, String)>;

fn qget<'a>(q: &'a Query, key: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn list_param(q: &Query, key: &str) -> Vec<String> {
    qget(q, key)
        .map(|v| {
            v.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

fn dispatch(w: &mut World, route: Route<'_>, req: &HttpRequest, q: &Query) -> Response {
    let m = req.method.as_str();
    let slug_ok = |slug: &str| slug == w.slug;
    match route {
        Route::Me => match m {
            "GET" => json_resp(200, &user_json(&w.me)),
            _ => not_allowed(m),
        },
        Route::Members(slug) => {
            if !slug_ok(slug) {
                return not_found();
            }
            if m != "GET" {
                return not_allowed(m);
            }
            let mut arr = Array::new();
            for u in &w.members {
                let mut v = user_json(u);
                if let Value::Object(o) = &mut v {
                    let role = if u.id == w.me.id { 20 } else { 15 };
                    o.insert("role".into(), Value::Number(Number::U64(role)));
                }
                arr.push(v);
            }
            json_resp(200, &Value::Array(arr))
        }
        Route::Projects(slug) => {
            if !slug_ok(slug) {
                return not_found();
            }
            if m != "GET" {
                return not_allowed(m);
            }
            // Archived projects are listed too (with `archived_at`), as on CE 1.3.1.
            paginated(q, w.max_per_page, w.projects.len(), |r| {
                w.projects[r]
                    .iter()
                    .map(|p| project_json(w, p, true))
                    .collect()
            })
        }
        Route::Project(slug, pid) => {
            let Some(p) = find_project(w, slug, pid) else {
                return not_found();
            };
            match m {
                "GET" => json_resp(200, &project_json(w, p, false)),
                _ => not_allowed(m),
            }
        }
        Route::States(slug, pid) | Route::Labels(slug, pid) | Route::ProjectMembers(slug, pid) => {
            if !slug_ok(slug) {
                return not_found();
            }
            if m != "GET" {
                return not_allowed(m);
            }
            // An unknown project gets here only for labels and members (see
            // `project_permission_denied`): Plane lists nothing for it, as it does for the
            // states and labels of an archived project.
            let p = find_project(w, slug, pid);
            let unarchived = p.filter(|p| p.archived_at.is_none());
            match route {
                Route::States(..) => {
                    let mut st: Vec<&State> = unarchived
                        .map(|p| p.states.iter().filter(|s| s.group != "triage").collect())
                        .unwrap_or_default();
                    st.sort_by(|a, b| a.sequence.total_cmp(&b.sequence));
                    paginated(q, w.max_per_page, st.len(), |r| match unarchived {
                        Some(p) => st[r].iter().map(|x| state_json(w, p, x)).collect(),
                        None => Array::new(),
                    })
                }
                Route::Labels(..) => {
                    let labels = unarchived.map_or(&[][..], |p| &p.labels[..]);
                    paginated(q, w.max_per_page, labels.len(), |r| match unarchived {
                        Some(p) => labels[r].iter().map(|x| label_json(w, p, x)).collect(),
                        None => Array::new(),
                    })
                }
                _ => {
                    let arr: Array = w
                        .members
                        .iter()
                        .filter(|u| p.is_some_and(|p| p.member_ids.contains(&u.id)))
                        .map(user_json)
                        .collect();
                    json_resp(200, &Value::Array(arr))
                }
            }
        }
        Route::ItemByKey(slug, key) => {
            if !slug_ok(slug) {
                return not_found();
            }
            if m != "GET" {
                return not_allowed(m);
            }
            let found = key.rsplit_once('-').and_then(|(ident, seq)| {
                let seq: u64 = seq.parse().ok()?;
                let p = w.projects.iter().find(|p| p.identifier == ident)?;
                let it = p.items.iter().find(|i| i.sequence_id == seq)?;
                p.is_visible(it).then_some((p, it))
            });
            match found {
                Some((p, it)) => json_resp(200, &render_item(w, p, it, q)),
                None => not_found(),
            }
        }
        Route::Items(slug, pid) => {
            let Some(pi) = find_project_ix(w, slug, pid) else {
                return not_found();
            };
            match m {
                "GET" => list_items(w, pi, q),
                "POST" => create_item(w, pi, req),
                _ => not_allowed(m),
            }
        }
        Route::Cycles(slug, pid) | Route::Modules(slug, pid) => {
            let Some(pi) = find_project_ix(w, slug, pid) else {
                return not_found();
            };
            match (m, &route) {
                ("GET", Route::Cycles(..)) => timeline::list_cycles(w, pi, q),
                ("GET", _) => timeline::list_modules(w, pi, q),
                // Plane routes POST here; calplanebot never creates cycles or modules.
                _ => not_allowed(m),
            }
        }
        Route::Cycle(slug, pid, id) | Route::Module(slug, pid, id) => {
            let Some(pi) = find_project_ix(w, slug, pid) else {
                return not_found();
            };
            match (m, &route) {
                ("GET", Route::Cycle(..)) => timeline::get_cycle(w, pi, id),
                ("GET", _) => timeline::get_module(w, pi, id),
                _ => not_allowed(m),
            }
        }
        Route::Item(slug, pid, id) => {
            let Some(pi) = find_project_ix(w, slug, pid) else {
                return not_found();
            };
            let p = &w.projects[pi];
            // GET reads Plane's `issue_objects` (visible items only); PATCH and DELETE read
            // `objects`, so archived, draft and triage items can still be changed.
            let found = p.items.iter().position(|i| {
                i.id == id && i.deleted_at.is_none() && (m != "GET" || p.is_visible(i))
            });
            let Some(ii) = found else {
                return not_found();
            };
            match m {
                "GET" => json_resp(200, &render_item(w, p, &p.items[ii], q)),
                "PATCH" => match parse_body(req) {
                    Ok(body) => patch_item(w, pi, ii, &body),
                    Err(r) => r,
                },
                "DELETE" => {
                    let now = w.tick();
                    let me = w.me.id.clone();
                    let it = &mut w.projects[pi].items[ii];
                    it.deleted_at = Some(now);
                    it.updated_at = now;
                    it.updated_by = me;
                    Response {
                        status: 204,
                        content_type: "application/json",
                        headers: Vec::new(),
                        body: Vec::new(),
                    }
                }
                _ => not_allowed(m),
            }
        }
    }
}

fn find_project_ix(w: &World, slug: &str, pid: &str) -> Option<usize> {
    if slug != w.slug {
        return None;
    }
    w.projects.iter().position(|p| p.id == pid)
}

fn find_project<'a>(w: &'a World, slug: &str, pid: &str) -> Option<&'a Project> {
    find_project_ix(w, slug, pid).map(|i| &w.projects[i])
}

/// One page of a list, in Plane's OffsetPaginator envelope (CE 1.3.1,
/// `plane/utils/paginator.py`).
fn paginated(
    q: &Query,
    max_per_page: usize,
    total: usize,
    render: impl FnOnce(std::ops::Range<usize>) -> Array,
) -> Response {
    let per_page = match page_size(q, max_per_page) {
        Ok(n) => n,
        Err(r) => return r,
    };
    let default_cursor = format!("{per_page}:0:0");
    let cursor = qget(q, "cursor").unwrap_or(&default_cursor);
    let Some(cursor) = parse_cursor(cursor) else {
        return error(400, vec![("detail", s("Invalid cursor parameter."))]);
    };
    // Plane positions the page by `per_page`, not by the cursor's own value.
    let offset = cursor.page.saturating_mul(per_page as i64);
    if offset < 0 {
        return error(400, vec![("detail", s("Error in parsing"))]);
    }
    // A "previous" cursor whose value is not the page size makes Plane slice its queryset
    // with a negative index, which Django refuses: an unhandled error.
    if cursor.is_prev && cursor.value != per_page as f64 {
        return server_error();
    }
    let start = (offset as usize).min(total);
    let end = start.saturating_add(per_page).min(total);
    let results = render(start..end);
    let count = results.len();
    let page = cursor.page;
    let envelope = obj(vec![
        ("grouped_by", Value::Null),
        ("sub_grouped_by", Value::Null),
        ("total_count", num(total)),
        ("next_cursor", s(&format!("{per_page}:{}:0", page + 1))),
        ("prev_cursor", s(&format!("{per_page}:{}:1", page - 1))),
        ("next_page_results", Value::Bool(total - start > per_page)),
        ("prev_page_results", Value::Bool(page > 0)),
        ("count", num(count)),
        ("total_pages", num(total.div_ceil(per_page))),
        ("total_results", num(total)),
        ("extra_stats", Value::Null),
        ("results", Value::Array(results)),
    ]);
    json_resp(200, &envelope)
}

/// `per_page`: absent → the maximum; not a number → 400; above the maximum → 400 (not
/// clamped); zero or negative → 500 (Plane divides by it / slices with it unchecked).
fn page_size(q: &Query, max_per_page: usize) -> Result<usize, Response> {
    let Some(v) = qget(q, "per_page") else {
        return Ok(max_per_page.max(1));
    };
    match v.trim().parse::<i64>() {
        Ok(n) if n > max_per_page as i64 => {
            let detail = format!("Invalid per_page value. Cannot exceed {max_per_page}.");
            Err(error(400, vec![("detail", Value::String(detail))]))
        }
        Ok(n) if n < 1 => Err(server_error()),
        Ok(n) => Ok(n as usize),
        Err(_) => Err(error(
            400,
            vec![("detail", s("Invalid per_page parameter."))],
        )),
    }
}

/// A `value:page:is_prev` cursor.
struct Cursor {
    /// Page size the cursor was made for (Plane accepts a float here).
    value: f64,
    page: i64,
    is_prev: bool,
}

fn parse_cursor(c: &str) -> Option<Cursor> {
    let mut it = c.split(':');
    let (v, p, prev) = (it.next()?, it.next()?, it.next()?);
    if it.next().is_some() {
        return None;
    }
    let value = if v.contains('.') {
        v.parse::<f64>().ok()?
    } else {
        v.parse::<i64>().ok()? as f64
    };
    Some(Cursor {
        value,
        page: p.parse().ok()?,
        is_prev: prev.parse::<i64>().ok()? != 0,
    })
}

fn list_items(w: &World, pi: usize, q: &Query) -> Response {
    let p = &w.projects[pi];
    if let (Some(eid), Some(src)) = (qget(q, "external_id"), qget(q, "external_source")) {
        // Plane looks this up with `Issue.objects`: archived, draft and triage items and
        // those of an archived project are found too, only deleted ones are not.
        return match p.items.iter().find(|i| {
            i.deleted_at.is_none()
                && i.external_id.as_deref() == Some(eid)
                && i.external_source.as_deref() == Some(src)
        }) {
            Some(it) => json_resp(200, &render_item(w, p, it, q)),
            None => not_found(),
        };
    }
    let mut items = p.visible_items();
    let order = qget(q, "order_by").unwrap_or("-created_at");
    let (desc, field) = match order.strip_prefix('-') {
        Some(f) => (true, f),
        None => (false, order),
    };
    let Some(cmp) = item_order(field) else {
        return server_error();
    };
    // Postgres puts NULLs last ascending and first descending; `cmp` treats None as
    // greatest, so reversing the whole comparison gives exactly that.
    items.sort_by(|a, b| {
        let o = cmp(a, b);
        let o = if desc { o.reverse() } else { o };
        o.then(a.sequence_id.cmp(&b.sequence_id))
    });
    paginated(q, w.max_per_page, items.len(), |r| {
        items[r].iter().map(|it| render_item(w, p, it, q)).collect()
    })
}

type ItemCmp = fn(&WorkItem, &WorkItem) -> std::cmp::Ordering;

fn item_order(field: &str) -> Option<ItemCmp> {
    fn none_last<T: Ord>(a: &Option<T>, b: &Option<T>) -> std::cmp::Ordering {
        match (a, b) {
            (Some(x), Some(y)) => x.cmp(y),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        }
    }
    Some(match field {
        "created_at" => |a, b| a.created_at.cmp(&b.created_at),
        "updated_at" => |a, b| a.updated_at.cmp(&b.updated_at),
        "sequence_id" => |a, b| a.sequence_id.cmp(&b.sequence_id),
        "name" => |a, b| a.name.cmp(&b.name),
        "priority" => |a, b| a.priority.cmp(&b.priority),
        "sort_order" => |a, b| a.sort_order.total_cmp(&b.sort_order),
        "target_date" => |a, b| none_last(&a.target_date, &b.target_date),
        "start_date" => |a, b| none_last(&a.start_date, &b.start_date),
        "completed_at" => |a, b| none_last(&a.completed_at, &b.completed_at),
        "state" => |a, b| a.state.cmp(&b.state),
        "id" => |a, b| a.id.cmp(&b.id),
        _ => return None,
    })
}

/// DRF's parsing: an empty body is `{}` whatever its type; otherwise the type must be
/// JSON (a missing Content-Type is a 415 too).
fn parse_body(req: &HttpRequest) -> Result<Object, Response> {
    if req.body.is_empty() {
        return Ok(Object::new());
    }
    match req.header("content-type").unwrap_or("") {
        ct if ct.to_ascii_lowercase().starts_with("application/json") => {}
        ct => {
            return Err(error(
                415,
                vec![(
                    "detail",
                    s(&format!("Unsupported media type \"{ct}\" in request.")),
                )],
            ))
        }
    }
    let text = std::str::from_utf8(&req.body)
        .map_err(|_| error(400, vec![("detail", s("JSON parse error - invalid UTF-8"))]))?;
    match json::from_str::<Value>(text) {
        Ok(Value::Object(o)) => Ok(o),
        Ok(_) => Err(error(
            400,
            vec![(
                "non_field_errors",
                arr_of(&["Invalid data. Expected a dictionary, but got list."]),
            )],
        )),
        Err(_) => Err(error(400, vec![("detail", s("JSON parse error"))])),
    }
}

/// Validated changes from a request body; `None` = field absent.
#[derive(Default)]
struct ItemPatch {
    name: Option<String>,
    description_html: Option<String>,
    state: Option<String>,
    parent: Option<Option<String>>,
    priority: Option<String>,
    start_date: Option<Option<String>>,
    target_date: Option<Option<String>>,
    assignees: Option<Vec<String>>,
    labels: Option<Vec<String>>,
    external_id: Option<Option<String>>,
    external_source: Option<Option<String>>,
    archived_at: Option<Option<String>>,
    is_draft: Option<bool>,
}

fn field_error(field: &str, msg: &str) -> Response {
    error(400, vec![(field, arr_of(&[msg]))])
}

fn opt_string(body: &Object, field: &str) -> Result<Option<Option<String>>, Response> {
    match body.get(field) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::String(v)) => Ok(Some(Some(v.clone()))),
        Some(_) => Err(field_error(field, "Not a valid string.")),
    }
}

fn opt_date(body: &Object, field: &str) -> Result<Option<Option<String>>, Response> {
    match opt_string(body, field)? {
        Some(Some(d)) if parse_date(&d).is_none() => Err(field_error(
            field,
            "Date has wrong format. Use one of these formats instead: YYYY-MM-DD.",
        )),
        other => Ok(other),
    }
}

/// A list of ids (`labels`, `assignees`). Like Plane: an id that exists nowhere is a 400
/// keyed by its index; one that exists but does not belong here (another project's label,
/// a user who is not a project member) is silently dropped.
fn id_list(
    body: &Object,
    field: &str,
    here: &[&str],
    anywhere: &[&str],
) -> Result<Option<Vec<String>>, Response> {
    let Some(v) = body.get(field) else {
        return Ok(None);
    };
    let Value::Array(a) = v else {
        return Err(field_error(field, "Expected a list of items."));
    };
    let mut out = Vec::new();
    for (i, x) in a.iter().enumerate() {
        let msg = match x {
            Value::String(id) if here.contains(&id.as_str()) => {
                if !out.contains(id) {
                    out.push(id.clone());
                }
                continue;
            }
            Value::String(id) if anywhere.contains(&id.as_str()) => continue,
            Value::String(id) => format!("Invalid pk \"{id}\" - object does not exist."),
            // Django turns a number into a UUID (`UUID(int=…)`), which then is not found.
            Value::Number(n) => format!("Invalid pk \"{n}\" - object does not exist."),
            Value::Null => "This field may not be null.".to_string(),
            other => format!(
                "Incorrect type. Expected pk value, received {}.",
                python_type(other)
            ),
        };
        let by_index = obj(vec![(i.to_string().as_str(), arr_of(&[&msg]))]);
        return Err(error(400, vec![(field, by_index)]));
    }
    Ok(Some(out))
}

/// The Python type name DRF puts in "received …" messages.
fn python_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(Number::F64(_)) => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

/// A foreign key (`state`, `parent`): an id that exists nowhere is DRF's field error,
/// one from another project is the serializer's non-field error `wrong_project`.
fn fk_error(field: &str, id: &str, exists_elsewhere: bool, wrong_project: &str) -> Response {
    if exists_elsewhere {
        error(400, vec![("non_field_errors", arr_of(&[wrong_project]))])
    } else {
        field_error(
            field,
            &format!("Invalid pk \"{id}\" - object does not exist."),
        )
    }
}

fn parse_patch(
    w: &World,
    p: &Project,
    body: &Object,
    creating: bool,
) -> Result<ItemPatch, Response> {
    let mut patch = ItemPatch::default();
    match body.get("name") {
        Some(Value::String(n)) if !n.trim().is_empty() => {
            if n.chars().count() > 255 {
                return Err(field_error(
                    "name",
                    "Ensure this field has no more than 255 characters.",
                ));
            }
            patch.name = Some(n.clone());
        }
        Some(Value::String(_)) => return Err(field_error("name", "This field may not be blank.")),
        Some(Value::Null) => return Err(field_error("name", "This field may not be null.")),
        Some(_) => return Err(field_error("name", "Not a valid string.")),
        None if creating => return Err(field_error("name", "This field is required.")),
        None => {}
    }
    if let Some(d) = opt_string(body, "description_html")? {
        patch.description_html = Some(d.unwrap_or_else(|| "<p></p>".into()));
    }
    if let Some(st) = opt_string(body, "state")? {
        match st {
            Some(id) if p.state(&id).is_some() => patch.state = Some(id),
            None => {}
            Some(id) => {
                let elsewhere = w.projects.iter().any(|q| q.state(&id).is_some());
                let msg = "State is not valid please pass a valid state_id";
                return Err(fk_error("state", &id, elsewhere, msg));
            }
        }
    }
    if let Some(par) = opt_string(body, "parent")? {
        if let Some(id) = &par {
            let alive = |q: &Project| {
                q.items
                    .iter()
                    .any(|i| &i.id == id && i.deleted_at.is_none())
            };
            if !alive(p) {
                let elsewhere = w.projects.iter().any(alive);
                let msg = "Parent is not valid issue_id please pass a valid issue_id";
                return Err(fk_error("parent", id, elsewhere, msg));
            }
        }
        patch.parent = Some(par);
    }
    if let Some(pr) = opt_string(body, "priority")? {
        match pr {
            Some(v) if PRIORITIES.contains(&v.as_str()) => patch.priority = Some(v),
            other => {
                let shown = other.unwrap_or_default();
                return Err(field_error(
                    "priority",
                    &format!("\"{shown}\" is not a valid choice."),
                ));
            }
        }
    }
    patch.start_date = opt_date(body, "start_date")?;
    patch.target_date = opt_date(body, "target_date")?;
    if let (Some(Some(st)), Some(Some(tg))) = (&patch.start_date, &patch.target_date) {
        if st > tg {
            return Err(date_order_error());
        }
    }
    let members: Vec<&str> = w
        .members
        .iter()
        .filter(|u| p.member_ids.contains(&u.id))
        .map(|u| u.id.as_str())
        .collect();
    let users: Vec<&str> = w.members.iter().map(|u| u.id.as_str()).collect();
    patch.assignees = id_list(body, "assignees", &members, &users)?;
    let labels: Vec<&str> = p.labels.iter().map(|l| l.id.as_str()).collect();
    let all_labels: Vec<&str> = w
        .projects
        .iter()
        .flat_map(|q| q.labels.iter().map(|l| l.id.as_str()))
        .collect();
    patch.labels = id_list(body, "labels", &labels, &all_labels)?;
    patch.external_id = opt_string(body, "external_id")?;
    patch.external_source = opt_string(body, "external_source")?;
    // Plane's serializer lets the API archive and draft items (both then vanish from
    // lists and GET, but can still be PATCHed back).
    patch.archived_at = opt_date(body, "archived_at")?;
    patch.is_draft = match body.get("is_draft") {
        None => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => return Err(field_error("is_draft", "Must be a valid boolean.")),
    };
    Ok(patch)
}

fn apply_patch(p: &Project, it: &mut WorkItem, patch: ItemPatch, now: i64) {
    if let Some(v) = patch.name {
        it.name = v;
    }
    if let Some(v) = patch.description_html {
        it.description_html = v;
    }
    if let Some(v) = patch.state {
        let was = p.state(&it.state).map(|s| s.group == "completed") == Some(true);
        let is = p.state(&v).map(|s| s.group == "completed") == Some(true);
        if is && !was {
            it.completed_at = Some(now);
        } else if !is {
            it.completed_at = None;
        }
        it.state = v;
    }
    if let Some(v) = patch.parent {
        it.parent = v;
    }
    if let Some(v) = patch.priority {
        it.priority = v;
    }
    if let Some(v) = patch.start_date {
        it.start_date = v;
    }
    if let Some(v) = patch.target_date {
        it.target_date = v;
    }
    if let Some(v) = patch.assignees {
        it.assignees = v;
    }
    if let Some(v) = patch.labels {
        it.labels = v;
    }
    if let Some(v) = patch.external_id {
        it.external_id = v;
    }
    if let Some(v) = patch.external_source {
        it.external_source = v;
    }
    if let Some(v) = patch.archived_at {
        it.archived_at = v;
    }
    if let Some(v) = patch.is_draft {
        it.is_draft = v;
    }
}

/// An existing non-deleted item with this external id (archived ones count: the
/// uniqueness check runs on all rows).
fn external_conflict(p: &Project, eid: &str, src: &str, except: Option<&str>) -> Option<String> {
    p.items
        .iter()
        .find(|i| {
            i.deleted_at.is_none()
                && i.external_id.as_deref() == Some(eid)
                && i.external_source.as_deref() == Some(src)
                && Some(i.id.as_str()) != except
        })
        .map(|i| i.id.clone())
}

fn body_str<'a>(body: &'a Object, key: &str) -> Option<&'a str> {
    match body.get(key) {
        Some(Value::String(v)) if !v.is_empty() => Some(v),
        _ => None,
    }
}

fn create_item(w: &mut World, pi: usize, req: &HttpRequest) -> Response {
    let body = match parse_body(req) {
        Ok(b) => b,
        Err(r) => return r,
    };
    create_from(w, pi, &body)
}

fn create_from(w: &mut World, pi: usize, body: &Object) -> Response {
    if let (Some(eid), Some(src)) = (
        body_str(body, "external_id"),
        body_str(body, "external_source"),
    ) {
        if let Some(id) = external_conflict(&w.projects[pi], eid, src, None) {
            return conflict(&id);
        }
    }
    let patch = match parse_patch(w, &w.projects[pi], body, true) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let id = w.new_uuid();
    let now = w.tick();
    let me = w.me.id.clone();
    let p = &w.projects[pi];
    let mut it = new_item(p, id.clone(), String::new(), &me, now);
    apply_patch(p, &mut it, patch, now);
    let v = item_json(w, p, &it, &[]);
    w.projects[pi].items.push(it);
    w.after_api_write(&id, "created", Vec::new());
    json_resp(201, &v)
}

/// 409 for a repeated external id, with the existing item's id (real CE's body).
fn conflict(existing_id: &str) -> Response {
    error(
        409,
        vec![
            (
                "error",
                s("Issue with the same external id and external source already exists"),
            ),
            ("id", s(existing_id)),
        ],
    )
}

fn patch_item(w: &mut World, pi: usize, ii: usize, body: &Object) -> Response {
    let p = &w.projects[pi];
    let it = &p.items[ii];
    let eid = body_str(body, "external_id").or(it.external_id.as_deref());
    let src = body_str(body, "external_source").or(it.external_source.as_deref());
    if body.contains_key("external_id") || body.contains_key("external_source") {
        if let (Some(eid), Some(src)) = (eid, src) {
            if let Some(id) = external_conflict(p, eid, src, Some(&it.id)) {
                return conflict(&id);
            }
        }
    }
    let patch = match parse_patch(w, p, body, false) {
        Ok(p) => p,
        Err(r) => return r,
    };
    if w.check_dates_against_item && dates_cross_stored(it, &patch) {
        return date_order_error();
    }
    let now = w.tick();
    let me = w.me.id.clone();
    let project = w.projects[pi].clone();
    let before = project.items[ii].clone();
    let it = &mut w.projects[pi].items[ii];
    apply_patch(&project, it, patch, now);
    it.updated_at = now;
    it.updated_by = me;
    let changes = changed_fields(&before, it);
    let v = item_json(w, &w.projects[pi], &w.projects[pi].items[ii], &[]);
    w.after_api_write(&before.id, "updated", changes);
    json_resp(200, &v)
}

/// Newer Plane's check: a PATCH that sets a date must keep start ≤ target, taking the
/// other date from the item when the body lacks it. Clearing a date never fails, and a
/// PATCH without dates does not re-validate dates already stored.
fn dates_cross_stored(it: &WorkItem, patch: &ItemPatch) -> bool {
    let sets_a_date =
        matches!(patch.start_date, Some(Some(_))) || matches!(patch.target_date, Some(Some(_)));
    let start = patch.start_date.clone().unwrap_or(it.start_date.clone());
    let target = patch.target_date.clone().unwrap_or(it.target_date.clone());
    sets_a_date && matches!((start, target), (Some(s), Some(t)) if s > t)
}

fn date_order_error() -> Response {
    error(
        400,
        vec![(
            "non_field_errors",
            arr_of(&["Start date cannot exceed target date"]),
        )],
    )
}

// ---------------------------------------------------------------------------------------
// JSON rendering
// ---------------------------------------------------------------------------------------

fn s(v: &str) -> Value {
    Value::String(v.to_string())
}

fn opt(v: Option<&str>) -> Value {
    v.map(s).unwrap_or(Value::Null)
}

fn num(n: usize) -> Value {
    Value::Number(Number::U64(n as u64))
}

fn float(f: f64) -> Value {
    Value::Number(Number::F64(f))
}

fn obj(fields: Vec<(&str, Value)>) -> Value {
    Value::Object(
        fields
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    )
}

fn arr_of(items: &[&str]) -> Value {
    Value::Array(items.iter().map(|x| s(x)).collect())
}

fn ids(v: &[String]) -> Value {
    Value::Array(v.iter().map(|x| s(x)).collect())
}

fn json_resp(status: u16, v: &Value) -> Response {
    Response {
        status,
        content_type: "application/json",
        headers: Vec::new(),
        body: json::to_string(v).into_bytes(),
    }
}

fn text(status: u16, content_type: &'static str, body: &str) -> Response {
    Response {
        status,
        content_type,
        headers: Vec::new(),
        body: body.as_bytes().to_vec(),
    }
}

fn error(status: u16, fields: Vec<(&str, Value)>) -> Response {
    json_resp(status, &obj(fields))
}

/// Plane's answer when a view's lookup finds nothing (`ObjectDoesNotExist`).
fn not_found() -> Response {
    error(
        404,
        vec![("error", s("The requested resource does not exist."))],
    )
}

/// A permission class said no (wrong project; see `project_permission_denied`).
fn permission_denied() -> Response {
    error(
        403,
        vec![(
            "detail",
            s("You do not have permission to perform this action."),
        )],
    )
}

/// Plane's answer to an unhandled exception in a view.
fn server_error() -> Response {
    error(
        500,
        vec![("error", s("Something went wrong please try again later"))],
    )
}

/// Django's `APPEND_SLASH` redirect: empty body, HTML content type.
fn redirect(location: &str) -> Response {
    let mut r = text(301, "text/html; charset=utf-8", "");
    r.headers.push(("Location".into(), location.to_string()));
    r
}

fn not_allowed(method: &str) -> Response {
    error(
        405,
        vec![("detail", s(&format!("Method \"{method}\" not allowed.")))],
    )
}

/// Plane's `handler404` for URLs that match no route: JSON, spaced the way Django's
/// `JsonResponse` writes it.
fn page_not_found() -> Response {
    text(404, "application/json", r#"{"error": "Page not found."}"#)
}

fn user_json(u: &User) -> Value {
    obj(vec![
        ("id", s(&u.id)),
        ("first_name", s(&u.first_name)),
        ("last_name", s(&u.last_name)),
        ("email", s(&u.email)),
        ("display_name", s(&u.display_name)),
        ("avatar", s(&u.avatar)),
        ("avatar_url", Value::Null),
    ])
}

fn ts(p: &Project, micros: i64) -> Value {
    s(&fmt_datetime(micros, p.utc_offset_minutes))
}

/// A project; `listed` adds `sort_order`, which only the list serializer has.
fn project_json(w: &World, p: &Project, listed: bool) -> Value {
    let mut fields = vec![
        ("id", s(&p.id)),
        ("identifier", s(&p.identifier)),
        ("name", s(&p.name)),
        ("description", s(&p.description)),
        ("workspace", s(&w.workspace_id)),
        ("network", num(2)),
        (
            "archived_at",
            p.archived_at.map_or(Value::Null, |t| ts(p, t)),
        ),
        ("created_at", ts(p, p.created_at)),
        ("updated_at", ts(p, p.created_at)),
        ("created_by", s(&w.me.id)),
        ("updated_by", s(&w.me.id)),
        ("project_lead", Value::Null),
        ("default_assignee", Value::Null),
        (
            "default_state",
            opt(p.states.iter().find(|x| x.default).map(|x| x.id.as_str())),
        ),
        ("emoji", Value::Null),
        ("logo_props", default_logo()),
        ("cover_image", Value::Null),
        ("module_view", Value::Bool(p.module_view)),
        ("cycle_view", Value::Bool(p.cycle_view)),
        ("issue_views_view", Value::Bool(true)),
        ("page_view", Value::Bool(true)),
        ("intake_view", Value::Bool(false)),
        ("is_member", Value::Bool(p.member_ids.contains(&w.me.id))),
        ("member_role", num(20)),
        ("total_members", num(p.member_ids.len())),
        ("timezone", s(&p.timezone)),
        ("external_id", Value::Null),
        ("external_source", Value::Null),
        (
            "total_cycles",
            num(p.cycles.iter().filter(|c| c.deleted_at.is_none()).count()),
        ),
        (
            "total_modules",
            num(p.modules.iter().filter(|m| m.deleted_at.is_none()).count()),
        ),
        ("is_deployed", Value::Bool(false)),
        ("cover_image_url", Value::Null),
        ("cover_image_asset", Value::Null),
        ("deleted_at", Value::Null),
        ("description_text", Value::Null),
        ("description_html", Value::Null),
        ("icon_prop", Value::Null),
        ("is_time_tracking_enabled", Value::Bool(false)),
        ("is_issue_type_enabled", Value::Bool(false)),
        ("guest_view_all_features", Value::Bool(false)),
        ("archive_in", num(0)),
        ("close_in", num(0)),
        ("estimate", Value::Null),
    ];
    if listed {
        fields.push(("sort_order", float(65535.0)));
    }
    obj(fields)
}

/// The icon a project made through the API gets.
fn default_logo() -> Value {
    let icon = obj(vec![("name", s("cycle")), ("color", s("#95999f"))]);
    obj(vec![("icon", icon), ("in_use", s("icon"))])
}

fn state_json(w: &World, p: &Project, st: &State) -> Value {
    obj(vec![
        ("id", s(&st.id)),
        ("name", s(&st.name)),
        ("color", s(&st.color)),
        ("group", s(&st.group)),
        ("sequence", float(st.sequence)),
        ("default", Value::Bool(st.default)),
        ("description", s("")),
        ("is_triage", Value::Bool(st.group == "triage")),
        ("slug", s("")),
        ("deleted_at", Value::Null),
        ("project", s(&p.id)),
        ("workspace", s(&w.workspace_id)),
        ("created_at", ts(p, p.created_at)),
        ("updated_at", ts(p, p.created_at)),
        ("created_by", s(&w.me.id)),
        ("updated_by", s(&w.me.id)),
        ("external_id", Value::Null),
        ("external_source", Value::Null),
    ])
}

fn label_json(w: &World, p: &Project, l: &Label) -> Value {
    obj(vec![
        ("id", s(&l.id)),
        ("name", s(&l.name)),
        ("color", s(&l.color)),
        ("description", s("")),
        ("parent", opt(l.parent.as_deref())),
        ("sort_order", float(l.sort_order)),
        ("deleted_at", Value::Null),
        ("project", s(&p.id)),
        ("workspace", s(&w.workspace_id)),
        ("created_at", ts(p, p.created_at)),
        ("updated_at", ts(p, p.created_at)),
        ("created_by", s(&w.me.id)),
        ("updated_by", s(&w.me.id)),
        ("external_id", Value::Null),
        ("external_source", Value::Null),
    ])
}

/// An item with the request's `expand` and `fields` applied.
fn render_item(w: &World, p: &Project, it: &WorkItem, q: &Query) -> Value {
    let expand = list_param(q, "expand");
    let expand: Vec<&str> = expand.iter().map(String::as_str).collect();
    let v = item_json(w, p, it, &expand);
    let fields = list_param(q, "fields");
    match v {
        Value::Object(o) if !fields.is_empty() => Value::Object(
            o.into_iter()
                .filter(|(k, _)| fields.iter().any(|f| f == k))
                .collect(),
        ),
        v => v,
    }
}

fn item_json(w: &World, p: &Project, it: &WorkItem, expand: &[&str]) -> Value {
    let state = if expand.contains(&"state") {
        match p.state(&it.state) {
            Some(st) => obj(vec![
                ("id", s(&st.id)),
                ("name", s(&st.name)),
                ("color", s(&st.color)),
                ("group", s(&st.group)),
            ]),
            None => Value::Null,
        }
    } else {
        s(&it.state)
    };
    let labels = if expand.contains(&"labels") {
        Value::Array(
            it.labels
                .iter()
                .filter_map(|id| p.labels.iter().find(|l| &l.id == id))
                .map(|l| label_json(w, p, l))
                .collect(),
        )
    } else {
        ids(&it.labels)
    };
    let assignees = if expand.contains(&"assignees") {
        Value::Array(
            it.assignees
                .iter()
                .filter_map(|id| w.members.iter().find(|u| &u.id == id))
                .map(user_json)
                .collect(),
        )
    } else {
        ids(&it.assignees)
    };
    let tso = |t: Option<i64>| t.map(|t| ts(p, t)).unwrap_or(Value::Null);
    obj(vec![
        ("id", s(&it.id)),
        ("name", s(&it.name)),
        ("sequence_id", Value::Number(Number::U64(it.sequence_id))),
        ("project", s(&p.id)),
        ("workspace", s(&w.workspace_id)),
        ("state", state),
        ("parent", opt(it.parent.as_deref())),
        ("priority", s(&it.priority)),
        ("start_date", opt(it.start_date.as_deref())),
        ("target_date", opt(it.target_date.as_deref())),
        ("assignees", assignees),
        ("labels", labels),
        ("description_html", s(&it.description_html)),
        ("completed_at", tso(it.completed_at)),
        ("archived_at", opt(it.archived_at.as_deref())),
        ("is_draft", Value::Bool(it.is_draft)),
        ("deleted_at", tso(it.deleted_at)),
        ("created_at", ts(p, it.created_at)),
        ("updated_at", ts(p, it.updated_at)),
        ("created_by", s(&it.created_by)),
        ("updated_by", s(&it.updated_by)),
        ("sort_order", float(it.sort_order)),
        ("external_id", opt(it.external_id.as_deref())),
        ("external_source", opt(it.external_source.as_deref())),
        ("estimate_point", opt(it.estimate_point.as_deref())),
        ("type_id", opt(it.type_id.as_deref())),
        ("type", Value::Null),
        ("point", Value::Null),
        ("description_binary", Value::Null),
    ])
}

/// Crude tag stripper with the entities our generator uses, for `description_stripped`.
fn strip_html(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&amp;", "&")
}

// ---------------------------------------------------------------------------------------
// Query strings and time
// ---------------------------------------------------------------------------------------

fn parse_query(q: &str) -> Query {
    q.split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn unix_micros_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// `YYYY-MM-DD` → days since epoch, rejecting impossible dates.
pub fn parse_date(v: &str) -> Option<i64> {
    let b = v.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let digits = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = &v[r];
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let (y, m, d) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    if !(1..=12).contains(&m) || d < 1 {
        return None;
    }
    let days = days_from_civil(y, m as u32, d as u32);
    (civil_from_days(days) == (y, m as u32, d as u32)).then_some(days)
}

/// Days since epoch → `YYYY-MM-DD`.
pub fn fmt_date(days: i64) -> String {
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Unix µs → RFC 3339 the way DRF prints it: microseconds only when non-zero, `Z` for UTC,
/// otherwise `±HH:MM`.
pub fn fmt_datetime(micros: i64, offset_minutes: i32) -> String {
    let local = micros + i64::from(offset_minutes) * 60_000_000;
    let secs = local.div_euclid(1_000_000);
    let frac = local.rem_euclid(1_000_000);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    let mut out = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    );
    if frac != 0 {
        let _ = write!(out, ".{frac:06}");
    }
    if offset_minutes == 0 {
        out.push('Z');
    } else {
        let sign = if offset_minutes < 0 { '-' } else { '+' };
        let o = offset_minutes.unsigned_abs();
        let _ = write!(out, "{sign}{:02}:{:02}", o / 60, o % 60);
    }
    out
}
