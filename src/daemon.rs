//! `calplanebot run`: the long-running service.
//!
//! The main thread owns the clients and the journal and runs the sync loop: a full cycle
//! every SYNC_INTERVAL_SECONDS (with a little jitter, and sooner retries after a failure),
//! and in between it waits on the webhook channel, so a signed webhook syncs its one
//! work item within moments. The HTTP thread ([`crate::server`]) only verifies and
//! forwards. SIGTERM/SIGINT set a flag the loop checks between steps: the write in flight
//! finishes and is journaled, then the process exits.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::caldav::CalDavClient;
use crate::caldav::DavError;
use crate::config::Config;
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
/// Webhooks for one item come as a burst (Plane sends one per changed field): wait this
/// long for the burst to end…
const QUIET: Duration = Duration::from_millis(300);
/// …but no longer than this.
const MAX_BATCH_WAIT: Duration = Duration::from_secs(2);
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

/// Collects a burst of wakes: everything that arrives until the channel has been quiet
/// for [`QUIET`], at most [`MAX_BATCH_WAIT`]. Duplicates collapse, and items of a project
/// that is re-synced as a whole are dropped.
pub fn coalesce(first: Wake, rx: &Receiver<Wake>) -> Vec<Wake> {
    let started = Instant::now();
    let mut batch: BTreeSet<Wake> = BTreeSet::from([first]);
    while started.elapsed() < MAX_BATCH_WAIT {
        match rx.recv_timeout(QUIET.min(MAX_BATCH_WAIT.saturating_sub(started.elapsed()))) {
            Ok(w) => {
                batch.insert(w);
            }
            Err(_) => break,
        }
    }
    let whole: BTreeSet<String> = batch
        .iter()
        .filter_map(|w| match w {
            Wake::Project(p) => Some(p.clone()),
            _ => None,
        })
        .collect();
    batch
        .into_iter()
        .filter(|w| !matches!(w, Wake::Item { project, .. } if whole.contains(project)))
        .collect()
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
        SyncError::Dav(_) => host_of(&config.caldav_url),
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
    dav: CalDavClient,
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
        let (projects, events) = {
            let st = self.journal.state();
            (st.calendars.len() as u64, st.items.len() as u64)
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
            sync::sync_once(s.config, &mut s.plane, &mut s.dav, &mut s.journal, &opts)
        });
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

    fn handle(&mut self, wakes: Vec<Wake>) {
        for wake in wakes {
            if STOP.load(Ordering::Relaxed) {
                return;
            }
            match wake {
                Wake::Item { project, id } => {
                    let Some(p) = self.project(&project) else {
                        log::debug!("webhook for project {project}, which is not synced; ignored");
                        continue;
                    };
                    self.cycle(&format!("webhook {}", p.identifier), false, |s| {
                        sync::sync_item(s.config, &mut s.plane, &mut s.dav, &mut s.journal, &p, &id)
                    });
                }
                Wake::Project(project) => {
                    if self.project(&project).is_none() {
                        log::debug!("webhook for project {project}, which is not synced; ignored");
                        continue;
                    }
                    self.cycle("webhook project sync", false, |s| {
                        let opts = Options {
                            only_project: Some(&project),
                            stop: Some(&STOP),
                            ..Options::default()
                        };
                        sync::sync_once(s.config, &mut s.plane, &mut s.dav, &mut s.journal, &opts)
                    });
                }
            }
        }
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
    let (tx, rx) = sync_channel::<Wake>(QUEUE);
    if let Some(bind) = &config.http_bind {
        start_http(config, bind, status.clone(), tx.clone())?;
    }
    if !config.enable_sync {
        serve_http_only(&rx);
        return Ok(());
    }
    let mut service = Service {
        config,
        plane: plane_client(config)?,
        dav: caldav_client(config)?,
        journal,
        status,
        projects: Vec::new(),
        foreign: BTreeSet::new(),
    };
    log::info!(
        "calplanebot {} syncing every {} s",
        env!("CARGO_PKG_VERSION"),
        config.sync_interval_seconds
    );
    service.sync_until_stopped(&rx);
    log::info!("stopped");
    drop(tx);
    Ok(())
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
) -> Result<(), String> {
    let addr = server::spawn(
        bind,
        config.plane_webhook_secret.clone(),
        config.api_token.clone(),
        status,
        wakes,
    )?;
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
        while !STOP.load(Ordering::SeqCst) {
            let now = Instant::now();
            if now >= next_full {
                self.full_cycle();
                let failures = self.status().consecutive_failures;
                let delay = next_delay(interval, failures, jitter_fraction());
                next_full = Instant::now() + delay;
                self.status().next_sync = Some(crate::clock::now_unix() + delay.as_secs() as i64);
                continue;
            }
            match wakes.recv_timeout((next_full - now).min(TICK)) {
                Ok(first) => {
                    let batch = coalesce(first, wakes);
                    self.handle(batch);
                    if let Err(e) = self.journal.commit() {
                        log::warn!("after webhooks: {e}");
                    }
                }
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {}
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

    #[test]
    fn bursts_coalesce() {
        let (tx, rx) = sync_channel(1000);
        let item = |p: &str, i: &str| Wake::Item {
            project: p.into(),
            id: i.into(),
        };
        for _ in 0..100 {
            tx.send(item("p1", "a")).unwrap();
        }
        tx.send(item("p1", "b")).unwrap();
        tx.send(item("p2", "c")).unwrap();
        tx.send(Wake::Project("p2".into())).unwrap();
        let batch = coalesce(item("p1", "a"), &rx);
        assert_eq!(
            batch,
            vec![item("p1", "a"), item("p1", "b"), Wake::Project("p2".into())]
        );
    }
}
