//! `calplanebot run`: the long-running service.
//!
//! The main thread owns the clients and the journal and runs the sync loop: a full cycle
//! every SYNC_INTERVAL_SECONDS (with a little jitter, and sooner retries after a failure),
//! and in between it waits on the webhook channel, so a signed webhook syncs its one
//! work item within moments. The HTTP thread ([`crate::server`]) only verifies and
//! forwards. SIGTERM/SIGINT set a flag the loop checks between steps: the write in flight
//! finishes and is journaled, then the process exits.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::caldav::CalDavClient;
use crate::caldav::DavError;
use crate::config::Config;
use crate::feed::Feeds;
use crate::plane::PlaneError;
use crate::plane::{PlaneClient, Project};
use crate::server::{self, Wake};
use crate::state::Journal;
use crate::status::{Failure, Status};
use crate::sync::{self, Options, Summary, SyncError};

/// Set by SIGTERM/SIGINT.
static STOP: AtomicBool = AtomicBool::new(false);

/// How many webhook wakes may wait while a cycle runs; more get 503 (Plane drops them,
/// and the next full cycle catches up).
const QUEUE: usize = 256;
/// Webhooks for one item come as a burst (Plane sends one per changed field). The first
/// is synced at once; the ones for the same item that follow within this long of that
/// sync are held until none has come for this long, then synced once…
const QUIET: Duration = Duration::from_millis(300);
/// …or once this long has passed since the first of them was held.
const MAX_BATCH_WAIT: Duration = Duration::from_secs(2);
/// Distinct wakes held at most; another one is synced at once (a bound on memory, far
/// above what Plane sends).
const MAX_HELD: usize = QUEUE;
/// How often the idle loop looks at the stop flag.
const TICK: Duration = Duration::from_millis(200);

extern "C" fn on_signal(_: i32) {
    // Only an atomic store: async-signal-safe.
    STOP.store(true, Ordering::SeqCst);
}

/// Installs SIGINT/SIGTERM handlers through libc's `signal()` — two symbols are not worth
/// a crate. Both glibc and musl give it BSD semantics (restarting syscalls), so blocking
/// I/O is not disturbed; the loop polls the flag.
fn install_signal_handlers() {
    extern "C" {
        fn signal(signum: i32, handler: extern "C" fn(i32)) -> usize;
    }
    const SIGINT: i32 = 2;
    const SIGTERM: i32 = 15;
    // SAFETY: `on_signal` only stores to an atomic, which is async-signal-safe, and the
    // handler stays valid for the life of the process.
    unsafe {
        signal(SIGINT, on_signal);
        signal(SIGTERM, on_signal);
    }
}

/// Gives the memory a cycle freed back to the system. glibc's malloc keeps freed memory
/// for reuse: after a first sync of thousands of items the service would go on holding
/// much of its peak as idle RSS. `malloc_trim(0)` returns the free top of every arena and
/// the whole free pages inside them (declared here like `signal()`: libc is no dependency).
/// Called after cycles that read whole projects; a one-item webhook sync frees too little
/// to be worth the page faults. musl (the static builds) has no `malloc_trim`: its
/// allocator returns whole free groups of its own accord, and nothing more can be asked.
fn release_free_memory() {
    #[cfg(target_env = "gnu")]
    {
        extern "C" {
            fn malloc_trim(pad: usize) -> i32;
        }
        // SAFETY: malloc_trim takes no pointers and only works on the allocator's own
        // state, under the allocator's locks; any thread may call it at any time.
        unsafe {
            malloc_trim(0);
        }
    }
}

/// A little pseudo-randomness for jitter, without a crate: the clock's nanoseconds.
fn jitter_fraction() -> f64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    (nanos % 1000) as f64 / 1000.0
}

/// When the next full cycle is due: the interval ±10 %, so many instances started
/// together do not hit Plane together. After failures, retry sooner (10 s, 20 s, 40 s…)
/// but never more often than that and never later than the interval.
pub fn next_delay(interval: Duration, consecutive_failures: u32, jitter: f64) -> Duration {
    let base = if consecutive_failures == 0 {
        interval
    } else {
        let retry = Duration::from_secs(10) * 2u32.pow(consecutive_failures.min(10) - 1);
        retry.min(interval)
    };
    base.mul_f64(0.9 + 0.2 * jitter.clamp(0.0, 1.0))
}

/// When the first and the last wake of a held burst tail came.
#[derive(Debug, Clone, Copy)]
struct Held {
    first: Instant,
    last: Instant,
}

/// Leading-edge coalescing of webhook wakes, per wake: the first wake about an item (or
/// project) is due at once; wakes about it that come within [`QUIET`] after its sync
/// (the rest of Plane's burst) are held and become due once, when the burst is over. So a
/// burst of any size costs at most two syncs, and a lone webhook waits for nothing.
/// Pure bookkeeping over the instants it is given: the loop owns the clock and the channel.
#[derive(Debug, Default)]
pub struct Coalescer {
    /// Wakes to sync now.
    due: BTreeSet<Wake>,
    /// Wakes about something synced lately, waiting for their burst to end.
    held: BTreeMap<Wake, Held>,
    /// When each wake's last sync ended, kept for [`QUIET`].
    recent: BTreeMap<Wake, Instant>,
}

impl Coalescer {
    /// Records a wake that arrived at `now`.
    pub fn arrive(&mut self, wake: Wake, now: Instant) {
        if let Some(h) = self.held.get_mut(&wake) {
            h.last = now;
            return;
        }
        if self.due.contains(&wake) {
            return;
        }
        let lately = self
            .recent
            .get(&wake)
            .is_some_and(|t| now.saturating_duration_since(*t) < QUIET);
        if lately && self.held.len() < MAX_HELD {
            self.held.insert(
                wake,
                Held {
                    first: now,
                    last: now,
                },
            );
        } else {
            self.due.insert(wake);
        }
    }

    /// Takes the wakes to sync at `now`: new ones, and held ones whose burst is over
    /// (quiet for [`QUIET`], or held for [`MAX_BATCH_WAIT`]). Items of a project that is
    /// re-synced as a whole are dropped, held ones too: that sync reads them.
    pub fn take_due(&mut self, now: Instant) -> Vec<Wake> {
        let over: Vec<Wake> = self
            .held
            .iter()
            .filter(|(_, h)| Self::deadline(h) <= now)
            .map(|(w, _)| w.clone())
            .collect();
        for w in over {
            self.held.remove(&w);
            self.due.insert(w);
        }
        let batch = std::mem::take(&mut self.due);
        let whole: BTreeSet<&String> = batch
            .iter()
            .filter_map(|w| match w {
                Wake::Project(p) => Some(p),
                Wake::Item { .. } | Wake::Timeline { .. } => None,
            })
            .collect();
        let covered = |w: &Wake| matches!(w, Wake::Item { project, .. } if whole.contains(project));
        self.held.retain(|w, _| !covered(w));
        batch.iter().filter(|w| !covered(w)).cloned().collect()
    }

    /// Records that `synced` finished at `now`: wakes about them from now on, for
    /// [`QUIET`], are the tail of their burst.
    pub fn synced(&mut self, synced: &[Wake], now: Instant) {
        self.recent
            .retain(|_, t| now.saturating_duration_since(*t) < QUIET);
        for w in synced {
            self.recent.insert(w.clone(), now);
        }
    }

    /// A full cycle starts: it reads everything, so nothing that came before is due.
    pub fn full_cycle_started(&mut self) {
        self.due.clear();
        self.held.clear();
    }

    /// When the next held wake becomes due, if one is held.
    pub fn next_due(&self) -> Option<Instant> {
        self.held.values().map(Self::deadline).min()
    }

    fn deadline(h: &Held) -> Instant {
        (h.last + QUIET).min(h.first + MAX_BATCH_WAIT)
    }
}

fn error_kind(e: &SyncError) -> &'static str {
    match e {
        SyncError::Plane(_) => "plane",
        SyncError::Dav(_) => "caldav",
        SyncError::Journal(_) => "journal",
    }
}

/// The host (and port) of a URL, without userinfo or path.
pub fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    authority.rsplit_once('@').map_or(authority, |(_, h)| h)
}

/// What kind of failure, in words that hold no user name, path or server text.
fn failure_class(e: &SyncError) -> String {
    match e {
        SyncError::Plane(p) => match p {
            PlaneError::Auth { status, .. } => format!("login refused (HTTP {status})"),
            PlaneError::NotFound { .. } => "not found (HTTP 404)".into(),
            PlaneError::RateLimited { .. } => "rate limited".into(),
            PlaneError::Status { status, .. } => format!("HTTP {status}"),
            PlaneError::Transport { .. } => "unreachable".into(),
            PlaneError::Malformed { .. } => "unexpected answer".into(),
            _ => "request failed".into(),
        },
        SyncError::Dav(d) => match d {
            DavError::Auth(_) => "login refused".into(),
            DavError::Transport { .. } => "unreachable".into(),
            DavError::Status { status, .. } => format!("HTTP {status}"),
            DavError::Malformed { .. } => "unexpected answer".into(),
            DavError::Discovery(_) => "calendar home not found".into(),
            _ => "request failed".into(),
        },
        SyncError::Journal(_) => "cannot write the state journal".into(),
    }
}

/// A whole-cycle failure as recorded: the full message, and for unauthenticated readers
/// only its kind, class and server host.
fn failure_of(e: &SyncError, config: &Config) -> Failure {
    let kind = error_kind(e);
    let host = match e {
        SyncError::Plane(_) => host_of(&config.plane_base_url),
        SyncError::Dav(_) => config.caldav_url.as_deref().map_or("-", host_of),
        SyncError::Journal(_) => "local",
    };
    Failure {
        kind: Some(kind),
        message: e.to_string(),
        public: format!("{kind}: {} ({host})", failure_class(e)),
    }
}

/// A cycle that ran but in which every project failed (each one's errors are in the log).
fn all_projects_failed(s: &Summary) -> Option<Failure> {
    if s.projects == 0 || s.projects_failed < s.projects {
        return None;
    }
    Some(Failure {
        kind: None,
        message: format!(
            "every project failed ({}); first error: {}",
            s.projects,
            s.errors.first().map_or("-", String::as_str)
        ),
        public: format!("every project failed ({}): see the service log", s.projects),
    })
}

/// Project ids remembered as "not ours" between full cycles, at most.
const MAX_FOREIGN: usize = 1000;

/// The service.
struct Service<'a> {
    config: &'a Config,
    plane: PlaneClient,
    /// `None` without CALDAV_URL: the feeds are the only output.
    dav: Option<CalDavClient>,
    /// `None` without FEED_TOKEN.
    feeds: Option<Feeds>,
    journal: Journal,
    status: Arc<Mutex<Status>>,
    projects: Vec<Project>,
    /// Project ids a webhook named that are not synced, as found since the last full
    /// cycle: asked about once, not on every webhook.
    foreign: BTreeSet<String>,
}

impl Service<'_> {
    fn status(&self) -> std::sync::MutexGuard<'_, Status> {
        self.status.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs one cycle and records its outcome. `full`: a full sync (the projects list
    /// and counters are refreshed from it).
    fn cycle(
        &mut self,
        what: &str,
        full: bool,
        run: impl FnOnce(&mut Self) -> Result<Summary, SyncError>,
    ) {
        let started = Instant::now();
        self.status().syncing = true;
        let result = run(self);
        let seconds = started.elapsed().as_secs_f64();
        let now = crate::clock::now_unix();
        let (projects, events) = match (&self.dav, &self.feeds) {
            (None, Some(f)) => f.counts(),
            _ => {
                let st = self.journal.state();
                (st.calendars.len() as u64, st.items.len() as u64)
            }
        };
        match result {
            Ok(s) => {
                log::info!(
                    "{what}: {} created, {} updated, {} deleted, {} unchanged, {} errors in {seconds:.1}s",
                    s.created,
                    s.updated,
                    s.deleted,
                    s.unchanged,
                    s.errors.len()
                );
                if full && !s.project_list.is_empty() {
                    self.projects = s.project_list.clone();
                }
                let mut st = self.status();
                match all_projects_failed(&s) {
                    Some(f) => {
                        log::error!("{what} failed: {}", f.message);
                        st.record_all_failed(&s, &f, seconds, full, now);
                    }
                    None => {
                        st.record_success(&s, seconds, full, now);
                        st.caldav_ok = true;
                    }
                }
                st.mapped_projects = projects;
                st.mapped_events = events;
            }
            Err(e) => {
                log::error!("{what} failed: {e}");
                let mut st = self.status();
                st.record_failure(&failure_of(&e, self.config), seconds, full, now);
                st.caldav_ok = !matches!(e, SyncError::Dav(_));
            }
        }
    }

    fn full_cycle(&mut self) {
        self.foreign.clear();
        self.cycle("sync", true, |s| {
            let opts = Options {
                stop: Some(&STOP),
                ..Options::default()
            };
            let synced = s
                .dav
                .as_mut()
                .map(|dav| sync::sync_once(s.config, &mut s.plane, dav, &mut s.journal, &opts));
            let fed = s
                .feeds
                .as_mut()
                .map(|f| f.cycle(s.config, &mut s.plane, None, Some(&STOP)));
            combine(synced, fed)
        });
        release_free_memory();
    }

    /// A synced project by id. One not in the cache costs a listing only when it may be
    /// a new project we should sync, and only once between full cycles: not when
    /// PLANE_PROJECTS names projects that are all known (then it is not ours).
    fn project(&mut self, id: &str) -> Option<Project> {
        if let Some(p) = self.projects.iter().find(|p| p.id == id) {
            return Some(p.clone());
        }
        if self.selection_complete() || self.foreign.contains(id) {
            return None;
        }
        match self.plane.projects() {
            Ok(all) => self.projects = sync::select_projects(all, &self.config.plane_projects),
            Err(e) => log::warn!("cannot refresh the project list: {e}"),
        }
        let found = self.projects.iter().find(|p| p.id == id).cloned();
        if found.is_none() && self.foreign.len() < MAX_FOREIGN {
            self.foreign.insert(id.to_string());
        }
        found
    }

    /// Whether PLANE_PROJECTS names projects and every one is in the cache: then no
    /// listing can make another id ours (until the next full cycle refreshes the list).
    fn selection_complete(&self) -> bool {
        let wanted = &self.config.plane_projects;
        !wanted.is_empty()
            && wanted.iter().all(|w| {
                !sync::select_projects(self.projects.clone(), std::slice::from_ref(w)).is_empty()
            })
    }

    fn handle(&mut self, wakes: &[Wake]) {
        for wake in wakes {
            if STOP.load(Ordering::Relaxed) {
                return;
            }
            match wake {
                Wake::Item { project, id } => {
                    let Some(p) = self.project(project) else {
                        log::debug!("webhook for project {project}, which is not synced; ignored");
                        continue;
                    };
                    self.cycle(&format!("webhook {}", p.identifier), false, |s| {
                        let synced = s.dav.as_mut().map(|dav| {
                            sync::sync_item(s.config, &mut s.plane, dav, &mut s.journal, &p, id)
                        });
                        let fed = s
                            .feeds
                            .as_mut()
                            .map(|f| f.item(s.config, &mut s.plane, &p, id));
                        combine(synced, fed)
                    });
                }
                Wake::Timeline { project, kind } => self.timeline(project, *kind),
                Wake::Project(project) => {
                    if self.project(project).is_none() {
                        log::debug!("webhook for project {project}, which is not synced; ignored");
                        continue;
                    }
                    self.cycle("webhook project sync", false, |s| {
                        let opts = Options {
                            only_project: Some(project),
                            stop: Some(&STOP),
                            ..Options::default()
                        };
                        let synced = s.dav.as_mut().map(|dav| {
                            sync::sync_once(s.config, &mut s.plane, dav, &mut s.journal, &opts)
                        });
                        let fed = s
                            .feeds
                            .as_mut()
                            .map(|f| f.cycle(s.config, &mut s.plane, Some(project), Some(&STOP)));
                        combine(synced, fed)
                    });
                    release_free_memory();
                }
            }
        }
    }
}

impl Service<'_> {
    /// After a webhook about a project's cycles or modules: that listing alone is read
    /// again (their progress counts are not in the payload), and their events synced.
    fn timeline(&mut self, project: &str, kind: crate::sync::timeline::Kind) {
        let mapping = sync::model::Mapping::from_config(self.config);
        if !kind.enabled(&mapping) {
            log::debug!(
                "webhook about {} while {} is off; ignored",
                kind.plural(),
                kind.setting()
            );
            return;
        }
        let Some(p) = self.project(project) else {
            log::debug!("webhook for project {project}, which is not synced; ignored");
            return;
        };
        self.cycle(
            &format!("webhook {} {}", p.identifier, kind.plural()),
            false,
            |s| {
                let opts = Options {
                    only_project: Some(project),
                    stop: Some(&STOP),
                    timeline_only: Some(kind),
                    ..Options::default()
                };
                let synced = s
                    .dav
                    .as_mut()
                    .map(|dav| sync::sync_once(s.config, &mut s.plane, dav, &mut s.journal, &opts));
                let fed = s
                    .feeds
                    .as_mut()
                    .map(|f| f.timeline(s.config, &mut s.plane, &p, kind));
                combine(synced, fed)
            },
        );
    }
}

/// One outcome of a cycle that may have synced CalDAV and refreshed the feeds (at least
/// one of the two runs): a failed CalDAV sync is the cycle's failure; the feeds' errors
/// are added to the sync's.
fn combine(
    synced: Option<Result<Summary, SyncError>>,
    fed: Option<Result<Summary, SyncError>>,
) -> Result<Summary, SyncError> {
    match (synced, fed) {
        (Some(Ok(mut s)), Some(Ok(f))) => {
            s.errors.extend(f.errors);
            Ok(s)
        }
        (Some(Ok(mut s)), Some(Err(e))) => {
            s.error(format!("feeds: {e}"));
            Ok(s)
        }
        (Some(result), None) | (None, Some(result)) => result,
        (Some(Err(e)), Some(_)) => Err(e),
        (None, None) => Ok(Summary::default()),
    }
}

/// The service's Plane client: its waits (rate limit, retries) end early on SIGTERM.
fn plane_client(config: &Config) -> Result<PlaneClient, String> {
    let mut plane = PlaneClient::from_config(config).map_err(|e| e.to_string())?;
    plane.set_stop(&STOP);
    Ok(plane)
}

fn caldav_client(config: &Config) -> Result<CalDavClient, String> {
    CalDavClient::from_config(config).map_err(|e| e.to_string())
}

/// Runs the service until SIGTERM/SIGINT. Errors only for what makes running impossible
/// (journal locked, port taken, bad CA file); a failing cycle is logged and retried.
pub fn run(config: &Config) -> Result<(), String> {
    install_signal_handlers();
    let nofile = server::raise_fd_limit();
    log::debug!("open-file limit: {nofile:?}");
    let journal = Journal::open(&config.state_dir).map_err(|e| e.to_string())?;
    let status = initial_status(config, &journal);
    let feeds = open_feeds(config)?;
    let (tx, rx) = sync_channel::<Wake>(QUEUE);
    if let Some(bind) = &config.http_bind {
        let served = feeds.as_ref().zip(config.feed_token.as_ref());
        let feed_service = served.map(|(f, token)| server::FeedService {
            token: token.clone(),
            index: f.shared(),
        });
        start_http(config, bind, status.clone(), tx.clone(), feed_service)?;
    }
    if !config.enable_sync {
        serve_http_only(&rx);
        return Ok(());
    }
    let dav = match config.caldav_url {
        Some(_) => Some(caldav_client(config)?),
        None => None,
    };
    let mut service = Service {
        config,
        plane: plane_client(config)?,
        dav,
        feeds,
        journal,
        status,
        projects: Vec::new(),
        foreign: BTreeSet::new(),
    };
    log::info!(
        "calplanebot {} syncing every {} s; mode: {}",
        env!("CARGO_PKG_VERSION"),
        config.sync_interval_seconds,
        config.mode().describe()
    );
    service.sync_until_stopped(&rx);
    log::info!("stopped");
    drop(tx);
    Ok(())
}

/// The feed files, when FEED_TOKEN is set; otherwise the one-line hint that says how to
/// switch them on.
fn open_feeds(config: &Config) -> Result<Option<Feeds>, String> {
    if config.feed_token.is_none() {
        log::info!("feeds off: set FEED_TOKEN to serve subscribable .ics feeds (see README)");
        return Ok(None);
    }
    if config.http_bind.is_none() {
        log::warn!("FEED_TOKEN is set but HTTP_BIND is empty: the feeds are not served");
    }
    Feeds::open(config).map(Some)
}

/// The status `/health` and `/metrics` start from: what the journal holds.
fn initial_status(config: &Config, journal: &Journal) -> Arc<Mutex<Status>> {
    let status = Arc::new(Mutex::new(Status::new(config.enable_sync)));
    {
        let mut st = status.lock().unwrap_or_else(|e| e.into_inner());
        st.state_file = journal.path().display().to_string();
        st.mapped_projects = journal.state().calendars.len() as u64;
        st.mapped_events = journal.state().items.len() as u64;
        st.caldav_ok = true;
    }
    status
}

/// Starts the webhook/health server on `bind` and logs what it serves.
fn start_http(
    config: &Config,
    bind: &str,
    status: Arc<Mutex<Status>>,
    wakes: SyncSender<Wake>,
    feeds: Option<server::FeedService>,
) -> Result<(), String> {
    let with_feeds = feeds.is_some();
    let addr = server::spawn(
        bind,
        config.plane_webhook_secret.clone(),
        config.api_token.clone(),
        status,
        wakes,
        feeds,
    )?;
    if with_feeds {
        log::info!("feeds at http://{addr}/calendars/{{project}}.ics?token=… (calplanebot feed-urls prints them)");
    }
    log::info!(
        "listening on http://{addr} (webhooks {}; API {})",
        if config.plane_webhook_secret.is_some() {
            "on"
        } else {
            "off: PLANE_WEBHOOK_SECRET not set"
        },
        if config.api_token.is_some() {
            "needs API_TOKEN"
        } else {
            "open, errors shown without detail"
        }
    );
    Ok(())
}

/// ENABLE_SYNC=false: serves HTTP (on its own thread) until STOP, syncing nothing.
fn serve_http_only(wakes: &Receiver<Wake>) {
    log::info!(
        "calplanebot {} serving HTTP only (ENABLE_SYNC=false)",
        env!("CARGO_PKG_VERSION")
    );
    while !STOP.load(Ordering::SeqCst) {
        // Webhooks are acknowledged but nothing syncs: drain them.
        while wakes.try_recv().is_ok() {}
        std::thread::sleep(TICK);
    }
    log::info!("stopped");
}

impl Service<'_> {
    /// The sync loop until STOP: a full cycle every SYNC_INTERVAL_SECONDS (sooner after
    /// failures, see [`next_delay`]), webhook wakes in between, journal compaction.
    fn sync_until_stopped(&mut self, wakes: &Receiver<Wake>) {
        let interval = Duration::from_secs(self.config.sync_interval_seconds);
        let mut next_full = Instant::now();
        let mut coalescer = Coalescer::default();
        while !STOP.load(Ordering::SeqCst) {
            let now = Instant::now();
            if now >= next_full {
                coalescer.full_cycle_started();
                self.full_cycle();
                let failures = self.status().consecutive_failures;
                let delay = next_delay(interval, failures, jitter_fraction());
                next_full = Instant::now() + delay;
                self.status().next_sync = Some(crate::clock::now_unix() + delay.as_secs() as i64);
                continue;
            }
            let mut wait = (next_full - now).min(TICK);
            if let Some(due) = coalescer.next_due() {
                wait = wait.min(due.saturating_duration_since(now));
            }
            // Everything queued meanwhile (during a sync) counts as arrived now.
            if let Ok(first) = wakes.recv_timeout(wait) {
                coalescer.arrive(first, Instant::now());
                while let Ok(more) = wakes.try_recv() {
                    coalescer.arrive(more, Instant::now());
                }
            }
            let batch = coalescer.take_due(Instant::now());
            if !batch.is_empty() {
                self.handle(&batch);
                coalescer.synced(&batch, Instant::now());
                if let Err(e) = self.journal.commit() {
                    log::warn!("after webhooks: {e}");
                }
            }
            if let Err(e) = self.journal.compact_if_needed() {
                log::warn!("journal compaction failed: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_lose_userinfo_and_paths() {
        assert_eq!(
            host_of("https://alice:pw@dav.example.com:8443/dav/alice/"),
            "dav.example.com:8443"
        );
        assert_eq!(host_of("http://plane.local"), "plane.local");
        assert_eq!(host_of("http://h/a@b"), "h");
    }

    #[test]
    fn a_cycle_where_every_project_failed_is_a_failure() {
        let mut s = Summary {
            projects: 2,
            projects_failed: 1,
            errors: vec!["project A: CalDAV said 500".into()],
            ..Summary::default()
        };
        assert!(all_projects_failed(&s).is_none());
        s.projects_failed = 2;
        let f = all_projects_failed(&s).unwrap();
        assert!(f.message.contains("project A: CalDAV said 500"));
        assert!(!f.public.contains("project A"));
        assert!(all_projects_failed(&Summary::default()).is_none());
    }

    #[test]
    fn delays() {
        let i = Duration::from_secs(300);
        assert_eq!(next_delay(i, 0, 0.5), Duration::from_secs(300));
        assert_eq!(next_delay(i, 0, 0.0), Duration::from_secs(270));
        assert_eq!(next_delay(i, 0, 1.0), Duration::from_secs(330));
        assert_eq!(next_delay(i, 1, 0.5), Duration::from_secs(10));
        assert_eq!(next_delay(i, 3, 0.5), Duration::from_secs(40));
        assert_eq!(next_delay(i, 9, 0.5), Duration::from_secs(300));
        assert_eq!(next_delay(i, u32::MAX, 0.5), Duration::from_secs(300));
    }

    fn item(p: &str, i: &str) -> Wake {
        Wake::Item {
            project: p.into(),
            id: i.into(),
        }
    }

    #[test]
    fn bursts_coalesce() {
        let t0 = Instant::now();
        let mut c = Coalescer::default();
        for _ in 0..100 {
            c.arrive(item("p1", "a"), t0);
        }
        c.arrive(item("p1", "b"), t0);
        c.arrive(item("p2", "c"), t0);
        c.arrive(Wake::Project("p2".into()), t0);
        let batch = c.take_due(t0);
        assert_eq!(
            batch,
            vec![item("p1", "a"), item("p1", "b"), Wake::Project("p2".into())]
        );
        assert!(c.take_due(t0).is_empty(), "each due once");
    }

    #[test]
    fn the_first_wake_is_due_at_once_and_a_burst_tail_once_when_it_ends() {
        let ms = Duration::from_millis;
        let t0 = Instant::now();
        let mut c = Coalescer::default();
        c.arrive(item("p", "a"), t0);
        assert_eq!(c.take_due(t0), vec![item("p", "a")], "leading edge");
        assert_eq!(c.next_due(), None);
        c.synced(&[item("p", "a")], t0 + ms(20));
        // The rest of the burst: 99 more, one every 5 ms, and another item meanwhile.
        for k in 1..100 {
            c.arrive(item("p", "a"), t0 + ms(20 + 5 * k));
            assert!(c.take_due(t0 + ms(20 + 5 * k)).is_empty(), "held at {k}");
        }
        let last = t0 + ms(20 + 5 * 99);
        c.arrive(item("p", "b"), last);
        assert_eq!(
            c.take_due(last),
            vec![item("p", "b")],
            "another item: at once"
        );
        assert_eq!(c.next_due(), Some(last + QUIET));
        assert!(c.take_due(last + QUIET - ms(1)).is_empty());
        assert_eq!(
            c.take_due(last + QUIET),
            vec![item("p", "a")],
            "the tail, once"
        );
        assert!(c.take_due(last + QUIET * 10).is_empty());
        // Long after its sync, an item's wake is a new burst: at once again.
        c.synced(&[item("p", "a")], last + QUIET);
        let later = last + QUIET * 3;
        c.arrive(item("p", "a"), later);
        assert_eq!(c.take_due(later), vec![item("p", "a")]);
    }

    #[test]
    fn an_endless_stream_is_synced_every_max_batch_wait() {
        let ms = Duration::from_millis;
        let t0 = Instant::now();
        let mut c = Coalescer::default();
        c.arrive(item("p", "a"), t0);
        assert_eq!(c.take_due(t0).len(), 1);
        c.synced(&[item("p", "a")], t0);
        let mut syncs = 0;
        let mut t = t0;
        // One wake every 100 ms for 10 s: never quiet for QUIET.
        for _ in 0..100 {
            t += ms(100);
            c.arrive(item("p", "a"), t);
            let due = c.take_due(t);
            if !due.is_empty() {
                syncs += 1;
                c.synced(&due, t);
            }
        }
        let most = (Duration::from_secs(10).as_millis() / MAX_BATCH_WAIT.as_millis()) as usize;
        assert!((1..=most).contains(&syncs), "{syncs} syncs");
    }

    #[test]
    fn timeline_wakes_coalesce_and_outlive_a_project_sync() {
        use crate::sync::timeline::Kind;
        let t0 = Instant::now();
        let cycles = |p: &str| Wake::Timeline {
            project: p.into(),
            kind: Kind::Cycle,
        };
        let mut c = Coalescer::default();
        // Plane sends one `cycle/updated` per changed field.
        for _ in 0..5 {
            c.arrive(cycles("p"), t0);
        }
        c.arrive(
            Wake::Timeline {
                project: "p".into(),
                kind: Kind::Module,
            },
            t0,
        );
        // A project sync does not list cycles unless work items changed: the cycle
        // wake is still due.
        c.arrive(Wake::Project("p".into()), t0);
        let due = c.take_due(t0);
        assert_eq!(due.len(), 3, "{due:?}");
        assert!(due.contains(&cycles("p")) && due.contains(&Wake::Project("p".into())));
    }

    #[test]
    fn a_project_sync_covers_its_held_items_and_a_full_cycle_everything() {
        let t0 = Instant::now();
        let mut c = Coalescer::default();
        c.arrive(item("p", "a"), t0);
        let first = c.take_due(t0);
        c.synced(&first, t0);
        c.arrive(item("p", "a"), t0);
        assert!(c.next_due().is_some(), "held");
        c.arrive(Wake::Project("p".into()), t0);
        assert_eq!(c.take_due(t0), vec![Wake::Project("p".into())]);
        assert_eq!(c.next_due(), None, "the held item went with its project");
        c.synced(&[Wake::Project("p".into())], t0);
        c.arrive(Wake::Project("p".into()), t0);
        c.arrive(item("q", "b"), t0);
        c.full_cycle_started();
        assert_eq!(c.next_due(), None);
        assert!(c.take_due(t0 + QUIET * 10).is_empty());
    }
}
