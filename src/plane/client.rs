//! Plane REST client: `X-API-Key` auth, cursor pagination, rate-limit pacing, retries.
//!
//! I/O only — it knows nothing of calendars or sync.

use std::thread::sleep;
use std::time::Duration;

use miniserde::json::Value;

use super::model::{self, Member, Project, WorkItem};
use super::PlaneError;
use crate::config::Secret;

/// How many times a request is retried after a 5xx, a network failure or a 429.
const RETRIES: u32 = 3;
/// The longest we wait for a rate-limit window to reset.
const MAX_RATE_WAIT: Duration = Duration::from_secs(90);

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

    /// All projects of the workspace that the token can see.
    pub fn projects(&mut self) -> Result<Vec<Project>, PlaneError> {
        let path = format!("workspaces/{}/projects/", self.slug);
        self.list(&path, "")?
            .iter()
            .map(|v| {
                Project::from_json(v).map_err(|e| PlaneError::Malformed {
                    path: path.clone(),
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
        let path = format!("workspaces/{}/projects/{project_id}/work-items/", self.slug);
        let mut items = Vec::new();
        let mut bad = Vec::new();
        for v in self.list(&path, "&order_by=-updated_at&expand=state,labels,assignees")? {
            match WorkItem::from_json(&v) {
                Ok(w) => items.push(w),
                Err(e) => bad.push(PlaneError::Malformed {
                    path: path.clone(),
                    message: e.0,
                }),
            }
        }
        Ok((items, bad))
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
        match self.get(&path) {
            Ok(v) => WorkItem::from_json(&v)
                .map(Some)
                .map_err(|e| PlaneError::Malformed { path, message: e.0 }),
            Err(PlaneError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Follows `next_cursor` until the last page.
    fn list(&mut self, path: &str, extra_query: &str) -> Result<Vec<Value>, PlaneError> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut url = format!("{path}?per_page=100{extra_query}");
            if let Some(c) = &cursor {
                url.push_str("&cursor=");
                url.push_str(c);
            }
            let page = model::page(self.get(&url)?).map_err(|e| PlaneError::Malformed {
                path: path.to_string(),
                message: e.0,
            })?;
            out.extend(page.results);
            match page.next_cursor {
                // A server that hands back the same cursor would loop forever.
                Some(next) if cursor.as_deref() != Some(next.as_str()) => cursor = Some(next),
                _ => break,
            }
        }
        Ok(out)
    }

    /// GET with retries, 429 handling and pacing; the JSON body on 2xx.
    fn get(&mut self, path: &str) -> Result<Value, PlaneError> {
        let url = format!("{}{path}", self.api);
        let shown = path.split('?').next().unwrap_or(path).to_string();
        let mut attempt = 0;
        let mut rate_waits = 0;
        loop {
            self.stats.requests += 1;
            let result = self
                .agent
                .get(&url)
                .header("X-API-Key", self.token.expose())
                .header("Accept", "application/json")
                .call();
            let mut response = match result {
                Ok(r) => r,
                Err(e) if crate::http::is_transient(&e) && attempt < RETRIES => {
                    log::warn!("Plane {shown}: {}; retrying", crate::http::describe(&e));
                    self.backoff(&mut attempt);
                    continue;
                }
                Err(e) => {
                    return Err(PlaneError::Transport {
                        path: shown,
                        message: crate::http::describe(&e),
                    })
                }
            };
            let status = response.status().as_u16();
            let header = |name: &str| {
                response
                    .headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<i64>().ok())
            };
            let remaining = header("x-ratelimit-remaining");
            let reset = header("x-ratelimit-reset");
            let retry_after = header("retry-after");
            let body = response
                .body_mut()
                .with_config()
                .limit(32 * 1024 * 1024)
                .read_to_string()
                .map_err(|e| PlaneError::Transport {
                    path: shown.clone(),
                    message: crate::http::describe(&e),
                });
            match status {
                200..=299 => {
                    self.pace(remaining, reset);
                    let body = body?;
                    return miniserde::json::from_str(&body).map_err(|_| PlaneError::Malformed {
                        path: shown,
                        message: format!("answer is not JSON (starts with {:?})", snippet(&body)),
                    });
                }
                429 if rate_waits < 5 => {
                    rate_waits += 1;
                    self.stats.rate_limited += 1;
                    let wait = retry_after
                        .map(|s| Duration::from_secs(s.max(1) as u64))
                        .unwrap_or(Duration::from_secs(60))
                        .min(MAX_RATE_WAIT);
                    log::warn!("Plane rate limit reached; waiting {} s", wait.as_secs());
                    sleep(wait);
                }
                500..=599 if attempt < RETRIES => {
                    log::warn!("Plane {shown}: HTTP {status}; retrying");
                    self.backoff(&mut attempt);
                }
                _ => {
                    let body = body.unwrap_or_default();
                    return Err(PlaneError::from_status(status, shown, &body));
                }
            }
        }
    }

    fn backoff(&mut self, attempt: &mut u32) {
        self.stats.retries += 1;
        sleep(self.retry_delay * 2u32.pow(*attempt));
        *attempt += 1;
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
                sleep(wait.min(MAX_RATE_WAIT));
            }
        }
    }
}

/// The first characters of a body, for error messages.
fn snippet(body: &str) -> String {
    body.chars().take(60).collect()
}

impl PlaneError {
    fn from_status(status: u16, path: String, body: &str) -> PlaneError {
        let detail = miniserde::json::from_str::<Value>(body)
            .ok()
            .and_then(|v| match v {
                Value::Object(o) => {
                    ["detail", "error", "error_message"]
                        .iter()
                        .find_map(|k| match o.get(*k) {
                            Some(Value::String(s)) => Some(s.clone()),
                            _ => None,
                        })
                }
                _ => None,
            })
            .unwrap_or_else(|| snippet(body));
        match status {
            401 | 403 => PlaneError::Auth { status, detail },
            404 => PlaneError::NotFound { path },
            429 => PlaneError::RateLimited { path },
            _ => PlaneError::Status {
                status,
                path,
                detail,
            },
        }
    }
}
