//! Plane REST client: `X-API-Key` auth, cursor pagination, rate-limit pacing, retries.
//!
//! I/O only — it knows nothing of calendars or sync.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use crate::http::sleep_unless_stopped;

use miniserde::json::Value;

use super::items::{self, ItemPage, ReadError};
use super::model::{
    self, Cycle, ItemPatch, Member, Module, NewWorkItem, Project, ProjectSettings, State,
    Timestamp, WorkItem,
};
use super::PlaneError;
use crate::config::Secret;

/// How many times a request is retried after a 5xx or a network failure.
const RETRIES: u32 = 3;
/// How many 429 answers in a row we wait out before giving up.
const MAX_RATE_WAITS: u32 = 5;
/// The longest we wait for a rate-limit window to reset.
const MAX_RATE_WAIT: Duration = Duration::from_secs(90);
/// Items per page. CE 1.3.1 allows up to 1000, but the docs and Cloud say 100, and an
/// incremental listing mostly needs the first page only. A page is read whole, as one
/// JSON tree, before its items are converted: 100 items are ~150 KB of JSON and ~0.5 MB
/// of tree here (measured with the fake Plane); 1000 would be ~5 MB at once, more than
/// the whole budget of a 2,000-item sync on a small board, to save 9 of 10 requests of a
/// full listing only.
const PER_PAGE: usize = 100;
/// Pages read from one list at most (100 000 items), so a server that never ends a list
/// cannot keep us looping.
const MAX_PAGES: usize = 1000;
/// Largest answer body we read.
const MAX_BODY: u64 = 32 * 1024 * 1024;
/// Work item listings: newest change first, with what an item's calendar object shows.
const ITEMS_QUERY: &str = "&order_by=-updated_at&expand=state,labels,assignees";

/// What [`PlaneClient::work_items_since`] found.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    /// Items updated at or after the watermark (all listed items without one), newest
    /// change first, each once.
    pub items: Vec<WorkItem>,
    /// Items that could not be read; the others are still listed.
    pub bad: Vec<PlaneError>,
    /// True when every page was read (so an item missing from `items` is really gone);
    /// false when paging stopped at the watermark or was cut short.
    pub complete: bool,
}

/// What [`PlaneClient::each_work_item_since`] found besides the items it handed on.
#[derive(Debug, Clone, Default)]
pub struct ListingEnd {
    /// Items that could not be read; the others were handed on.
    pub bad: Vec<PlaneError>,
    /// True when every page was read (so an item not handed on is really gone); false
    /// when paging stopped at the watermark or was cut short.
    pub complete: bool,
}

/// The outcome of [`PlaneClient::create_work_item`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(
    clippy::large_enum_variant,
    reason = "one value per create, matched at once; a Box would only add noise"
)]
pub enum Created {
    /// Plane created it (201); Plane's unexpanded item.
    New(WorkItem),
    /// An item with this external id and source already exists (409): its id.
    Existing(String),
}

/// Counters, for `--once` summaries and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlaneStats {
    /// Requests sent, retries included.
    pub requests: u32,
    /// Answers 429 received.
    pub rate_limited: u32,
    /// Retries after a 5xx or a network error.
    pub retries: u32,
}

/// A client for one workspace.
pub struct PlaneClient {
    agent: ureq::Agent,
    api: String,
    slug: String,
    token: Secret,
    retry_delay: Duration,
    /// Set by SIGTERM in the service: waits (rate limit, retries) end early.
    stop: Option<&'static AtomicBool>,
    /// Workspace members as last listed (see [`PlaneClient::members_cached`]).
    members: Option<Vec<Member>>,
    /// Each project's zone and feature flags, as [`PlaneClient::projects`] last listed
    /// them (so cycles and modules cost no extra request for them).
    settings: HashMap<String, ProjectSettings>,
    /// Counters since creation.
    pub stats: PlaneStats,
}

impl PlaneClient {
    /// A client for `{base_url}/api/v1/` and workspace `slug`.
    pub fn new(
        base_url: &str,
        slug: &str,
        token: Secret,
        timeout: Duration,
    ) -> Result<Self, PlaneError> {
        let agent = crate::http::agent(timeout, None).map_err(PlaneError::Setup)?;
        Ok(PlaneClient {
            agent,
            api: format!("{}/api/v1/", base_url.trim_end_matches('/')),
            slug: slug.to_string(),
            token,
            retry_delay: Duration::from_millis(500),
            stop: None,
            members: None,
            settings: HashMap::new(),
            stats: PlaneStats::default(),
        })
    }

    /// The client the configuration describes.
    pub fn from_config(config: &crate::config::Config) -> Result<Self, PlaneError> {
        Self::new(
            &config.plane_base_url,
            &config.plane_workspace_slug,
            config.plane_api_token.clone(),
            Duration::from_secs(config.http_timeout_seconds),
        )
    }

    /// Lets a set `stop` flag end rate-limit and retry waits early (the request then
    /// fails), so a service told to stop does not sleep through its shutdown.
    pub fn set_stop(&mut self, stop: &'static AtomicBool) {
        self.stop = Some(stop);
    }

    /// [`PlaneClient::members`], listed once and then kept until
    /// [`PlaneClient::forget_members`].
    pub fn members_cached(&mut self) -> Result<Vec<Member>, PlaneError> {
        if let Some(m) = &self.members {
            return Ok(m.clone());
        }
        let m = self.members()?;
        self.members = Some(m.clone());
        Ok(m)
    }

    /// Drops the cached members list: the next [`PlaneClient::members_cached`] lists again.
    pub fn forget_members(&mut self) {
        self.members = None;
    }

    /// Changes the first retry delay (doubled on each retry); tests shorten it.
    pub fn set_retry_delay(&mut self, d: Duration) {
        self.retry_delay = d;
    }

    /// The token owner — our own actor id, to drop webhook echoes of our writes.
    pub fn me(&mut self) -> Result<Member, PlaneError> {
        let v = self.get("users/me/")?;
        Member::from_json(&v).map_err(|e| PlaneError::Malformed {
            path: "users/me/".into(),
            message: e.0,
        })
    }

    /// The workspace's projects that the token can see, archived ones left out.
    pub fn projects(&mut self) -> Result<Vec<Project>, PlaneError> {
        let path = format!("workspaces/{}/projects/", self.slug);
        self.list(&path, "")?
            .iter()
            // CE 1.3.1 still lists an archived project (with `archived_at`) but lists none
            // of its work items: synced, its events would all look deleted. Left out, it
            // is treated like a deleted project (forgotten, its events kept).
            .filter(|v| !is_archived(v))
            .map(|v| {
                let malformed = |e: model::FieldError| PlaneError::Malformed {
                    path: path.clone(),
                    message: e.0,
                };
                let project = Project::from_json(v).map_err(malformed)?;
                let settings = ProjectSettings::from_json(v).map_err(malformed)?;
                self.settings.insert(project.id.clone(), settings);
                Ok(project)
            })
            .collect()
    }

    /// A project's zone and feature flags: as [`PlaneClient::projects`] last listed them,
    /// else read from the project itself (one request, remembered).
    pub fn project_settings(&mut self, project_id: &str) -> Result<ProjectSettings, PlaneError> {
        if let Some(s) = self.settings.get(project_id) {
            return Ok(s.clone());
        }
        let path = format!("workspaces/{}/projects/{project_id}/", self.slug);
        let settings = ProjectSettings::from_json(&self.get(&path)?)
            .map_err(|e| PlaneError::Malformed { path, message: e.0 })?;
        self.settings
            .insert(project_id.to_string(), settings.clone());
        Ok(settings)
    }

    /// Settings known from elsewhere (the journal, which records them when projects are
    /// listed): [`PlaneClient::project_settings`] then answers without a request. A later
    /// [`PlaneClient::projects`] listing replaces them.
    pub fn remember_project_settings(&mut self, project_id: &str, settings: ProjectSettings) {
        self.settings.insert(project_id.to_string(), settings);
    }

    /// The project's cycles (one paginated listing), archived ones left out, each with
    /// [`Cycle::project_timezone`] set: Plane stores a cycle's days as instants in the
    /// PROJECT's zone, so that is where they are read back.
    ///
    /// A project with cycles turned off (`cycle_view: false`) has none: Plane CE would
    /// still answer 200 with the cycles made before (its web app hides them), so nothing
    /// is asked and the list is empty. One unreadable cycle fails the listing (an error
    /// naming the path): skipping it would look like a deleted cycle.
    pub fn cycles(&mut self, project_id: &str) -> Result<Vec<Cycle>, PlaneError> {
        let settings = self.project_settings(project_id)?;
        if !settings.cycle_view {
            log::debug!("project {project_id}: cycles are turned off in Plane; none listed");
            return Ok(Vec::new());
        }
        let path = format!("workspaces/{}/projects/{project_id}/cycles/", self.slug);
        let mut cycles = self.read_all(&path, Cycle::from_json)?;
        cycles.retain(|c| c.archived_at.is_none());
        for c in &mut cycles {
            c.project_timezone.clone_from(&settings.timezone);
        }
        Ok(cycles)
    }

    /// The project's modules (one paginated listing), archived ones left out; none when
    /// the project has modules turned off (`module_view: false`), as for
    /// [`PlaneClient::cycles`].
    pub fn modules(&mut self, project_id: &str) -> Result<Vec<Module>, PlaneError> {
        if !self.project_settings(project_id)?.module_view {
            log::debug!("project {project_id}: modules are turned off in Plane; none listed");
            return Ok(Vec::new());
        }
        let path = format!("workspaces/{}/projects/{project_id}/modules/", self.slug);
        let mut modules = self.read_all(&path, Module::from_json)?;
        modules.retain(|m| m.archived_at.is_none());
        Ok(modules)
    }

    /// Every object of a paginated list, read with `read`; the first unreadable one fails
    /// the whole list with an error naming `path`.
    fn read_all<T>(
        &mut self,
        path: &str,
        read: fn(&Value) -> Result<T, model::FieldError>,
    ) -> Result<Vec<T>, PlaneError> {
        self.list(path, "")?
            .iter()
            .map(|v| {
                read(v).map_err(|e| PlaneError::Malformed {
                    path: path.to_string(),
                    message: e.0,
                })
            })
            .collect()
    }

    /// Workspace members (not paginated). Whether expanded assignees carry an e-mail
    /// depends on the Plane version (its `UserLiteSerializer` changed), so e-mail filters
    /// are resolved to user ids through this list.
    pub fn members(&mut self) -> Result<Vec<Member>, PlaneError> {
        let path = format!("workspaces/{}/members/", self.slug);
        self.list(&path, "")?
            .iter()
            .map(|v| {
                Member::from_json(v).map_err(|e| PlaneError::Malformed {
                    path: path.clone(),
                    message: e.0,
                })
            })
            .collect()
    }

    /// Every listed work item of a project, newest change first, with state, labels and
    /// assignees expanded (so no separate state/label/member requests are needed).
    /// An item that cannot be read is reported in the second vector and skipped, so one
    /// odd item does not stop the others.
    pub fn work_items(
        &mut self,
        project_id: &str,
    ) -> Result<(Vec<WorkItem>, Vec<PlaneError>), PlaneError> {
        let listing = self.work_items_since(project_id, None)?;
        Ok((listing.items, listing.bad))
    }

    /// Incremental listing: pages of `order_by=-updated_at`, stopping after the first page
    /// that reaches an item not newer than `watermark` (`None` = list everything).
    ///
    /// Items updated at or after the watermark are kept (an equal one is re-checked
    /// harmlessly: two edits can share a timestamp's last digit); strictly older ones are
    /// dropped. Plane CE has no "updated since" filter, so an idle project costs one
    /// request. An unreadable watermark lists everything. Items are compared as
    /// [`Timestamp`]s, never as strings (offsets and fractions vary).
    pub fn work_items_since(
        &mut self,
        project_id: &str,
        watermark: Option<&str>,
    ) -> Result<Listing, PlaneError> {
        let mut items = Vec::new();
        let end = self.each_work_item_since(project_id, watermark, &mut |w| items.push(w))?;
        Ok(Listing {
            items,
            bad: end.bad,
            complete: end.complete,
        })
    }

    /// [`PlaneClient::work_items_since`], handing each item to `sink` as its page is read
    /// (newest change first), so a caller that keeps less than the whole item never holds
    /// the whole listing; the page's JSON is dropped before the next page is asked for.
    pub fn each_work_item_since(
        &mut self,
        project_id: &str,
        watermark: Option<&str>,
        sink: &mut dyn FnMut(WorkItem),
    ) -> Result<ListingEnd, PlaneError> {
        let path = format!("workspaces/{}/projects/{project_id}/work-items/", self.slug);
        let mark = watermark.and_then(|w| {
            let parsed = Timestamp::parse(w);
            if parsed.is_none() {
                log::warn!("ignoring unreadable Plane watermark {w:?}: listing everything");
            }
            parsed
        });
        let mut end = ListingEnd::default();
        let mut seen = HashSet::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let page = self.item_page(&path, cursor.as_deref())?;
            let (items, bad) = read_items(&path, page.items);
            end.bad.extend(bad);
            let (kept, reached) = newer_than(items, mark);
            // Edits between two page requests move items forward, so one can show up twice.
            kept.into_iter()
                .filter(|w| seen.insert(w.id.clone()))
                .for_each(&mut *sink);
            match page.next_cursor {
                None => {
                    end.complete = true;
                    return Ok(end);
                }
                Some(_) if reached => return Ok(end),
                Some(next) if cursor.as_deref() == Some(next.as_str()) => {
                    log::warn!("Plane repeated cursor {next} for {path}; listing cut short");
                    return Ok(end);
                }
                next => cursor = next,
            }
        }
        log::warn!("{path}: more than {MAX_PAGES} pages; listing cut short");
        Ok(end)
    }

    /// One work item; `None` when Plane says 404 (deleted or archived).
    pub fn work_item(
        &mut self,
        project_id: &str,
        id: &str,
    ) -> Result<Option<WorkItem>, PlaneError> {
        let path = format!(
            "workspaces/{}/projects/{project_id}/work-items/{id}/?expand=state,labels,assignees",
            self.slug
        );
        match self.send_text(Method::Get, &path, None) {
            Ok(text) => read_item(path, &text).map(Some),
            Err(PlaneError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The project's workflow states (paginated list), for mapping completion back.
    pub fn states(&mut self, project_id: &str) -> Result<Vec<State>, PlaneError> {
        let path = format!("workspaces/{}/projects/{project_id}/states/", self.slug);
        self.list(&path, "")?
            .iter()
            .map(|v| {
                State::from_json(v).map_err(|e| PlaneError::Malformed {
                    path: path.clone(),
                    message: e.0,
                })
            })
            .collect()
    }

    /// Changes the fields set in `patch` (PATCH; safe to retry, it is idempotent). The
    /// answer is Plane's unexpanded item: `state` has only its id. Its `updated_at` is
    /// already stale: Plane bumps it again ~60 ms after answering. Callers skip empty
    /// patches ([`ItemPatch::is_empty`]); one would still be sent.
    pub fn update_work_item(
        &mut self,
        project_id: &str,
        id: &str,
        patch: &ItemPatch,
    ) -> Result<WorkItem, PlaneError> {
        let path = format!(
            "workspaces/{}/projects/{project_id}/work-items/{id}/",
            self.slug
        );
        let text = self.send_text(Method::Patch, &path, Some(&patch.to_json()))?;
        read_item(path, &text)
    }

    /// Creates a work item (POST). `external_id` and `external_source` are required:
    /// they make a repeat — ours after a lost answer, or a retry — answer 409 with the
    /// existing id, which comes back as [`Created::Existing`] (PATCH it if it differs).
    pub fn create_work_item(
        &mut self,
        project_id: &str,
        item: &NewWorkItem,
    ) -> Result<Created, PlaneError> {
        if item.external_id.is_empty() || item.external_source.is_empty() {
            return Err(PlaneError::Setup(format!(
                "refusing to create work item {:?} without external_id and external_source (they make the request safe to retry)",
                item.name
            )));
        }
        let path = format!("workspaces/{}/projects/{project_id}/work-items/", self.slug);
        match self.send_text(Method::Post, &path, Some(&item.to_json())) {
            Ok(text) => read_item(path, &text).map(Created::New),
            Err(PlaneError::Conflict {
                existing_id: Some(id),
                ..
            }) => Ok(Created::Existing(id)),
            Err(e) => Err(e),
        }
    }

    /// Follows `next_cursor` until the last page.
    fn list(&mut self, path: &str, extra_query: &str) -> Result<Vec<Value>, PlaneError> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let page = self.page(path, extra_query, cursor.as_deref())?;
            out.extend(page.results);
            match page.next_cursor {
                // A server that hands back the same cursor would loop forever.
                Some(next) if cursor.as_deref() != Some(next.as_str()) => cursor = Some(next),
                _ => break,
            }
        }
        Ok(out)
    }

    /// One page of `path` (first page when `cursor` is `None`).
    fn page(
        &mut self,
        path: &str,
        extra_query: &str,
        cursor: Option<&str>,
    ) -> Result<model::Page, PlaneError> {
        let mut url = format!("{path}?per_page={PER_PAGE}{extra_query}");
        if let Some(c) = cursor {
            url.push_str("&cursor=");
            url.push_str(c);
        }
        model::page(self.get(&url)?).map_err(|e| PlaneError::Malformed {
            path: path.to_string(),
            message: e.0,
        })
    }

    /// One page of a work item listing, read straight into work items.
    fn item_page(&mut self, path: &str, cursor: Option<&str>) -> Result<ItemPage, PlaneError> {
        let mut url = format!("{path}?per_page={PER_PAGE}{ITEMS_QUERY}");
        if let Some(c) = cursor {
            url.push_str("&cursor=");
            url.push_str(c);
        }
        let text = self.send_text(Method::Get, &url, None)?;
        items::item_page(&text).map_err(|e| read_error(path.to_string(), &text, e))
    }

    /// GET; the JSON body on 2xx.
    fn get(&mut self, path: &str) -> Result<Value, PlaneError> {
        let text = self.send_text(Method::Get, path, None)?;
        parse_json(shown(path), &text)
    }

    /// Sends one request with retries (5xx and network failures, with backoff), 429
    /// handling (`Retry-After`) and `X-RateLimit` pacing; the body on 2xx.
    ///
    /// Retrying is safe for every method we send: GET and PATCH are idempotent, and a
    /// POST always carries `external_id`/`external_source`, so a repeat answers 409
    /// with the existing id instead of creating a duplicate.
    fn send_text(
        &mut self,
        method: Method,
        path: &str,
        body: Option<&str>,
    ) -> Result<String, PlaneError> {
        let url = format!("{}{path}", self.api);
        let shown = shown(path);
        let mut attempt = 0;
        let mut rate_waits = 0;
        loop {
            self.stats.requests += 1;
            let answer = match self.exchange(method, &url, body) {
                Ok(a) => a,
                Err(e) if crate::http::is_transient(&e) && attempt < RETRIES => {
                    let what = crate::http::describe(&e);
                    log::warn!("Plane {} {shown}: {what}; retrying", method.name());
                    if !self.backoff(&mut attempt) {
                        return Err(self.stopped(shown));
                    }
                    continue;
                }
                Err(e) => {
                    return Err(PlaneError::Transport {
                        path: shown,
                        message: crate::http::describe(&e),
                        tls: crate::http::tls_failure(&e),
                    })
                }
            };
            match answer.status {
                200..=299 => {
                    self.pace(answer.remaining, answer.reset);
                    return answer.body.map_err(|e| PlaneError::Transport {
                        path: shown,
                        message: crate::http::describe(&e),
                        tls: crate::http::tls_failure(&e),
                    });
                }
                429 if rate_waits < MAX_RATE_WAITS => {
                    rate_waits += 1;
                    self.stats.rate_limited += 1;
                    let wait = rate_limit_wait(answer.retry_after);
                    log::warn!("Plane rate limit reached; waiting {} s", wait.as_secs());
                    if !sleep_unless_stopped(wait, self.stop) {
                        return Err(self.stopped(shown));
                    }
                }
                500..=599 if attempt < RETRIES => {
                    let status = answer.status;
                    log::warn!("Plane {} {shown}: HTTP {status}; retrying", method.name());
                    if !self.backoff(&mut attempt) {
                        return Err(self.stopped(shown));
                    }
                }
                status => {
                    let body = answer.body.unwrap_or_default();
                    return Err(PlaneError::from_status(status, shown, &body));
                }
            }
        }
    }

    /// One HTTP exchange, the body read in full (up to [`MAX_BODY`]).
    fn exchange(
        &self,
        method: Method,
        url: &str,
        body: Option<&str>,
    ) -> Result<Answer, ureq::Error> {
        let key = self.token.expose();
        let mut response = match method {
            Method::Get => self
                .agent
                .get(url)
                .header("X-API-Key", key)
                .header("Accept", "application/json")
                .call()?,
            Method::Patch | Method::Post => {
                let request = if method == Method::Patch {
                    self.agent.patch(url)
                } else {
                    self.agent.post(url)
                };
                request
                    .header("X-API-Key", key)
                    .header("Accept", "application/json")
                    .header("Content-Type", "application/json")
                    .send(body.unwrap_or("{}"))?
            }
        };
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<i64>().ok())
        };
        let (remaining, reset) = (header("x-ratelimit-remaining"), header("x-ratelimit-reset"));
        let retry_after = header("retry-after");
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_BODY)
            .read_to_string();
        Ok(Answer {
            status: response.status().as_u16(),
            remaining,
            reset,
            retry_after,
            body,
        })
    }

    /// Waits before a retry; false when a stop cut the wait short.
    fn backoff(&mut self, attempt: &mut u32) -> bool {
        self.stats.retries += 1;
        let waited = sleep_unless_stopped(self.retry_delay * 2u32.pow(*attempt), self.stop);
        *attempt += 1;
        waited
    }

    /// The error of a request abandoned because the service is stopping.
    fn stopped(&self, path: String) -> PlaneError {
        PlaneError::Transport {
            path,
            message: "not retried: the service is stopping".into(),
            tls: None,
        }
    }

    /// Plane allows 60 requests a minute per token: when the window is nearly used up,
    /// wait for its reset rather than run into 429s.
    fn pace(&self, remaining: Option<i64>, reset: Option<i64>) {
        if let (Some(remaining), Some(reset)) = (remaining, reset) {
            if remaining <= 1 {
                let now = crate::clock::now_unix();
                let wait = Duration::from_secs((reset - now).clamp(0, 90) as u64 + 1);
                log::info!(
                    "Plane rate limit nearly used up; pausing {} s",
                    wait.as_secs()
                );
                // Cut short by a stop: the answer in hand is still good.
                sleep_unless_stopped(wait.min(MAX_RATE_WAIT), self.stop);
            }
        }
    }
}

/// The methods we send. PUT is absent on purpose: Plane CE 1.3.1 routes none (405).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    Get,
    Patch,
    Post,
}

impl Method {
    fn name(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Patch => "PATCH",
            Method::Post => "POST",
        }
    }
}

/// One answer, body read.
struct Answer {
    status: u16,
    /// `X-RateLimit-Remaining`: requests left in the window after this one.
    remaining: Option<i64>,
    /// `X-RateLimit-Reset`: Unix seconds when the window resets.
    reset: Option<i64>,
    /// `Retry-After` seconds (on 429).
    retry_after: Option<i64>,
    body: Result<String, ureq::Error>,
}

/// How long to sleep after a 429: `Retry-After`, else a full window, capped.
fn rate_limit_wait(retry_after: Option<i64>) -> Duration {
    retry_after
        .map(|s| Duration::from_secs(s.max(1) as u64))
        .unwrap_or(Duration::from_secs(60))
        .min(MAX_RATE_WAIT)
}

/// An API path as errors show it: without the query.
fn shown(path: &str) -> String {
    path.split('?').next().unwrap_or(path).to_string()
}

/// A 2xx body as JSON.
fn parse_json(shown: String, body: &str) -> Result<Value, PlaneError> {
    miniserde::json::from_str(body).map_err(|_| not_json(shown, body))
}

/// The error for an answer that is not JSON.
fn not_json(shown: String, body: &str) -> PlaneError {
    PlaneError::Malformed {
        path: shown,
        message: format!("answer is not JSON (starts with {:?})", snippet(body)),
    }
}

/// The error for a work item or page that could not be read.
fn read_error(shown: String, body: &str, e: ReadError) -> PlaneError {
    match e {
        ReadError::NotJson => not_json(shown, body),
        ReadError::Shape(e) => PlaneError::Malformed {
            path: shown,
            message: e.0,
        },
    }
}

/// One work item from an answer's body.
fn read_item(path: String, body: &str) -> Result<WorkItem, PlaneError> {
    items::work_item(body).map_err(|e| read_error(shown(&path), body, e))
}

/// Splits a page's items into the readable ones and errors for the others.
fn read_items(
    path: &str,
    results: Vec<Result<WorkItem, model::FieldError>>,
) -> (Vec<WorkItem>, Vec<PlaneError>) {
    let mut items = Vec::with_capacity(results.len());
    let mut bad = Vec::new();
    for r in results {
        match r {
            Ok(w) => items.push(w),
            Err(e) => bad.push(PlaneError::Malformed {
                path: path.to_string(),
                message: e.0,
            }),
        }
    }
    (items, bad)
}

/// Keeps the items updated at or after `mark`, and says whether one strictly older was
/// seen (then later pages, sorted by `-updated_at`, hold only older ones). An item
/// without a readable `updated_at` is kept: re-checking it is cheap, missing it is not.
fn newer_than(items: Vec<WorkItem>, mark: Option<Timestamp>) -> (Vec<WorkItem>, bool) {
    let Some(mark) = mark else {
        return (items, false);
    };
    let mut reached = false;
    let kept = items
        .into_iter()
        .filter(|w| match w.updated() {
            Some(t) if t < mark => {
                reached = true;
                false
            }
            _ => true,
        })
        .collect();
    (kept, reached)
}

/// The first characters of a body, for error messages.
fn snippet(body: &str) -> String {
    body.chars().take(60).collect()
}

/// Longest error detail we show: DRF can list many fields.
const MAX_DETAIL: usize = 300;

impl PlaneError {
    fn from_status(status: u16, path: String, body: &str) -> PlaneError {
        let json = miniserde::json::from_str::<Value>(body).ok();
        let detail = json
            .as_ref()
            .and_then(error_detail)
            .unwrap_or_else(|| snippet(body));
        match status {
            403 if !detail.to_ascii_lowercase().contains("token") => {
                let detail = match workspace_of(&path) {
                    Some(slug) => format!("{detail} {}", permission_hint(slug, &path)),
                    None => detail,
                };
                PlaneError::Status {
                    status,
                    path,
                    detail,
                }
            }
            401 | 403 => PlaneError::Auth { status, detail },
            404 => PlaneError::NotFound { path },
            409 => PlaneError::Conflict {
                path,
                existing_id: json.as_ref().and_then(|v| string_field(v, "id")),
                detail,
            },
            429 => PlaneError::RateLimited { path },
            _ => PlaneError::Status {
                status,
                path,
                detail,
            },
        }
    }
}

/// Whether a listed project carries a non-null `archived_at`.
fn is_archived(v: &Value) -> bool {
    matches!(v, Value::Object(o) if !matches!(o.get("archived_at"), None | Some(Value::Null)))
}

/// The workspace slug of a workspace-scoped API path (`workspaces/{slug}/…`).
fn workspace_of(path: &str) -> Option<&str> {
    path.strip_prefix("workspaces/")?
        .split('/')
        .next()
        .filter(|s| !s.is_empty())
}

/// Why a valid token gets 403: Plane answers a slug the token's owner is not a member of
/// (or that does not exist) with 403 "You do not have permission to perform this
/// action.", while a bad token is 403 "Given API token is not valid" (both verified
/// against Plane CE 1.3.1, see shared/plane-api.md). Below a project the same 403 also
/// means a project that does not exist (deleted) or that the owner is not a member of.
fn permission_hint(slug: &str, path: &str) -> String {
    let project = path
        .split('/')
        .skip_while(|s| *s != "projects")
        .nth(1)
        .filter(|s| !s.is_empty());
    match project {
        Some(id) => format!(
            "(hint: the API token was accepted, but its owner may not access project {id} \
             in workspace {slug:?}: the project may have been deleted, or the owner is not \
             a member of it; check PLANE_PROJECTS and PLANE_WORKSPACE_SLUG)"
        ),
        None => slug_hint(slug),
    }
}

/// [`permission_hint`] for a workspace-level path.
fn slug_hint(slug: &str) -> String {
    format!(
        "(hint: the API token was accepted, but its owner may not access workspace {slug:?}: \
         check PLANE_WORKSPACE_SLUG, the part after the host in your Plane address \
         (https://plane.example.com/<slug>/), and that the token's owner is a member there)"
    )
}

/// A top-level string field of a JSON object.
fn string_field(v: &Value, key: &str) -> Option<String> {
    match v {
        Value::Object(o) => match o.get(key) {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            _ => None,
        },
        _ => None,
    }
}

/// Plane's message from an error body: `detail`, `error` or `error_message`, else DRF's
/// validation shape `{"field": ["text", …], "non_field_errors": [...]}` as
/// `field: text; …` (non-field errors without a prefix). `None` when there is neither.
/// The strings of a DRF field error: a string, a list of them, or (for list fields such as
/// `labels`) an object keyed by the failing index, `{"0": ["Invalid pk …"]}`. Nesting is
/// followed to a small depth only.
fn error_texts<'a>(v: &'a Value, depth: usize, out: &mut Vec<&'a str>) {
    const MAX_DEPTH: usize = 3;
    match v {
        Value::String(s) => out.push(s),
        Value::Array(a) if depth < MAX_DEPTH => {
            a.iter().for_each(|x| error_texts(x, depth + 1, out));
        }
        Value::Object(o) if depth < MAX_DEPTH => {
            o.values().for_each(|x| error_texts(x, depth + 1, out));
        }
        _ => {}
    }
}

fn error_detail(v: &Value) -> Option<String> {
    if let Some(m) = ["detail", "error", "error_message"]
        .iter()
        .find_map(|k| string_field(v, k))
    {
        return Some(m);
    }
    let Value::Object(o) = v else { return None };
    let parts: Vec<String> = o
        .iter()
        .filter_map(|(field, value)| {
            let mut texts = Vec::new();
            error_texts(value, 0, &mut texts);
            let text = texts.join(" ");
            match field.as_str() {
                _ if text.is_empty() => None,
                "non_field_errors" => Some(text),
                _ => Some(format!("{field}: {text}")),
            }
        })
        .collect();
    let joined = parts.join("; ");
    (!joined.is_empty()).then(|| joined.chars().take(MAX_DETAIL).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(id: &str, updated_at: &str) -> WorkItem {
        WorkItem {
            id: id.into(),
            updated_at: updated_at.into(),
            ..WorkItem::default()
        }
    }

    fn ids(items: &[WorkItem]) -> Vec<&str> {
        items.iter().map(|w| w.id.as_str()).collect()
    }

    #[test]
    fn watermark_keeps_newer_and_equal_items_and_reports_older() {
        let mark = Timestamp::parse("2026-11-23T10:00:00.500000+05:30");
        let page = vec![
            item("newer", "2026-11-23T04:30:01Z"),
            item("equal", "2026-11-23T04:30:00.5Z"),
            item("unreadable", ""),
            // Later as a string, earlier as an instant.
            item("older", "2026-11-23T10:00:00.499999+05:30"),
        ];
        let (kept, reached) = newer_than(page.clone(), mark);
        assert_eq!(ids(&kept), ["newer", "equal", "unreadable"]);
        assert!(reached);
        let (kept, reached) = newer_than(page[..3].to_vec(), mark);
        assert_eq!(kept.len(), 3);
        assert!(!reached, "no older item: the next page is needed");
        let (kept, reached) = newer_than(page, None);
        assert_eq!((kept.len(), reached), (4, false));
    }

    #[test]
    fn remembered_settings_cost_no_request() {
        // Nothing listens on the discard port: a request would fail.
        let mut c = PlaneClient::new(
            "http://127.0.0.1:9",
            "acme",
            Secret::default(),
            Duration::from_millis(200),
        )
        .unwrap();
        let kolkata = ProjectSettings {
            timezone: "Asia/Kolkata".into(),
            cycle_view: true,
            module_view: false,
        };
        c.remember_project_settings("p1", kolkata.clone());
        assert_eq!(c.project_settings("p1").unwrap(), kolkata);
        assert!(
            c.modules("p1").unwrap().is_empty(),
            "modules off: not asked"
        );
        assert_eq!(c.stats.requests, 0);
    }

    fn status_error(status: u16, body: &str) -> PlaneError {
        PlaneError::from_status(status, "workspaces/acme/x/".into(), body)
    }

    #[test]
    fn validation_errors_name_the_field_and_the_text() {
        let e = status_error(
            400,
            r#"{"non_field_errors":["Start date cannot exceed target date"]}"#,
        );
        assert_eq!(
            e.to_string(),
            "Plane answered HTTP 400 for workspaces/acme/x/: Start date cannot exceed target date"
        );
        let e = status_error(
            400,
            r#"{"name":["This field may not be blank."],"state":["State is not valid"]}"#,
        );
        assert!(
            e.to_string()
                .ends_with(": name: This field may not be blank.; state: State is not valid"),
            "{e}"
        );
        // List fields key their errors by index (CE 1.3.1, checked against the real server).
        let e = status_error(
            400,
            r#"{"labels":{"0":["Invalid pk \"d1\" - object does not exist."]}}"#,
        );
        assert!(
            e.to_string()
                .ends_with(": labels: Invalid pk \"d1\" - object does not exist."),
            "{e}"
        );
        let e = status_error(500, "<html>oops</html>");
        assert!(e.to_string().ends_with(": <html>oops</html>"), "{e}");
        let long = format!(r#"{{"name":["{}"]}}"#, "x".repeat(1000));
        match status_error(400, &long) {
            PlaneError::Status { detail, .. } => assert_eq!(detail.chars().count(), MAX_DETAIL),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn forbidden_tells_a_bad_token_from_a_wrong_workspace() {
        // Plane CE 1.3.1's two 403s: a token it does not know, and a valid token used on a
        // workspace its owner may not access (or that does not exist).
        let token = status_error(403, r#"{"detail":"Given API token is not valid"}"#);
        assert!(
            matches!(token, PlaneError::Auth { status: 403, .. }),
            "{token:?}"
        );
        assert!(token.to_string().contains("PLANE_API_TOKEN"), "{token}");
        let missing = status_error(
            401,
            r#"{"detail":"Authentication credentials were not provided."}"#,
        );
        assert!(matches!(missing, PlaneError::Auth { status: 401, .. }));
        let slug = status_error(
            403,
            r#"{"detail":"You do not have permission to perform this action."}"#,
        );
        let text = slug.to_string();
        assert!(
            matches!(slug, PlaneError::Status { status: 403, .. }),
            "{slug:?}"
        );
        assert!(
            text.contains("PLANE_WORKSPACE_SLUG") && text.contains("\"acme\""),
            "{text}"
        );
        assert!(!text.contains("PLANE_API_TOKEN"), "{text}");
        let project = PlaneError::from_status(
            403,
            "workspaces/acme/projects/0a1b/work-items/".into(),
            r#"{"detail":"You do not have permission to perform this action."}"#,
        )
        .to_string();
        assert!(project.contains("project 0a1b"), "{project}");
        assert!(project.contains("PLANE_PROJECTS"), "{project}");
        assert!(!project.contains("PLANE_API_TOKEN"), "{project}");
        assert_eq!(workspace_of("users/me/"), None);
        assert_eq!(workspace_of("workspaces/a-b/projects/"), Some("a-b"));
    }

    #[test]
    fn conflict_carries_the_existing_id() {
        let e = status_error(
            409,
            r#"{"error":"Issue with the same external id and external source already exists","id":"1f0c"}"#,
        );
        assert_eq!(
            e,
            PlaneError::Conflict {
                path: "workspaces/acme/x/".into(),
                existing_id: Some("1f0c".into()),
                detail: "Issue with the same external id and external source already exists".into(),
            }
        );
        assert!(e.to_string().ends_with("(existing item 1f0c)"), "{e}");
        assert!(matches!(
            status_error(409, "{}"),
            PlaneError::Conflict {
                existing_id: None,
                ..
            }
        ));
    }

    #[test]
    fn rate_limit_wait_follows_retry_after_within_bounds() {
        assert_eq!(rate_limit_wait(Some(57)), Duration::from_secs(57));
        assert_eq!(rate_limit_wait(Some(0)), Duration::from_secs(1));
        assert_eq!(rate_limit_wait(None), Duration::from_secs(60));
        assert_eq!(rate_limit_wait(Some(10_000)), MAX_RATE_WAIT);
    }
}
