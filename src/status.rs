//! What the service reports about itself: counters written by the sync loop and the HTTP
//! thread, rendered as the seed's health JSON, our metrics JSON and Prometheus text.
//!
//! Pure data and formatting; the daemon shares it as `Arc<Mutex<Status>>`.

use std::collections::BTreeMap;

use miniserde::json::{self, Number, Object, Value};

use crate::clock;

/// After this many failed cycles in a row, `/health` answers 503.
pub const UNHEALTHY_AFTER: u32 = 3;

/// Webhook counters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WebhookStats {
    /// Deliveries received on the webhook path.
    pub received: u64,
    /// Accepted (202) and handed to the sync loop.
    pub accepted: u64,
    /// Refused for a missing or wrong signature (401).
    pub unauthorized: u64,
    /// Refused for size (413).
    pub too_large: u64,
    /// Refused as malformed (400).
    pub malformed: u64,
    /// Refused because the sync loop's queue was full (503).
    pub busy: u64,
    /// Valid but about something we do not sync (cycles, comments…).
    pub ignored: u64,
    /// Signed, but an `X-Plane-Delivery` id seen before: answered 202 without work.
    pub duplicate: u64,
    /// Unix time of the last accepted delivery.
    pub last_delivery: Option<i64>,
    /// `event/action` of the last accepted delivery.
    pub last_event: Option<String>,
    /// The last refusal, for `/webhooks/status`.
    pub last_error: Option<String>,
}

/// A cycle that failed as a whole, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The error kind counted in `errors` (plane, caldav, journal); `None` when the
    /// cycle's own errors were counted already (every project failed).
    pub kind: Option<&'static str>,
    /// The full message, for authenticated answers.
    pub message: String,
    /// What anyone may read: the kind and the server host, no user names or paths.
    pub public: String,
}

/// The service's state, as reported.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Status {
    /// Unix time the process started.
    pub started_at: i64,
    /// ENABLE_SYNC.
    pub sync_enabled: bool,
    /// Sync cycles run (full, project and item cycles).
    pub cycles: u64,
    /// Cycles that failed as a whole.
    pub cycles_failed: u64,
    /// Failed full cycles since the last successful one (webhook cycles of one item or
    /// project neither add to nor reset it: they say little about the whole).
    pub consecutive_failures: u32,
    /// Unix time the last cycle ended.
    pub last_sync: Option<i64>,
    /// Unix time the last successful cycle ended.
    pub last_success: Option<i64>,
    /// Seconds the last cycle took.
    pub last_duration: f64,
    /// Seconds of all cycles, for an average.
    pub duration_total: f64,
    /// The last failure's full message (cleared by a successful full cycle).
    pub last_error: Option<String>,
    /// The same failure as unauthenticated answers show it (kind and server host).
    pub last_error_public: Option<String>,
    /// Whether a cycle is running now.
    pub syncing: bool,
    /// Projects looked at in the last full cycle.
    pub projects_synced: u64,
    /// Objects by action over the process lifetime: created, updated, deleted, skipped.
    pub items: BTreeMap<&'static str, u64>,
    /// Errors by kind: plane, caldav, journal, item, safety_valve.
    pub errors: BTreeMap<&'static str, u64>,
    /// Conflicts resolved (two-way sync; always 0 in one-way mode).
    pub conflicts: u64,
    /// Unix time the next full cycle is due.
    pub next_sync: Option<i64>,
    /// Webhook counters.
    pub webhooks: WebhookStats,
    /// Whether the last cycle reached the CalDAV server without a transport/login error.
    pub caldav_ok: bool,
    /// Projects with a calendar, per the journal.
    pub mapped_projects: u64,
    /// Objects the journal knows.
    pub mapped_events: u64,
    /// Where the journal lives (for `/webhooks/status`, as the seed's `state_file`).
    pub state_file: String,
}

fn num(n: u64) -> Value {
    Value::Number(Number::U64(n))
}

fn float(f: f64) -> Value {
    Value::Number(Number::F64((f * 1000.0).round() / 1000.0))
}

fn text(s: &str) -> Value {
    Value::String(s.to_string())
}

fn opt_time(t: Option<i64>) -> Value {
    t.map(|t| text(&clock::format_rfc3339(t)))
        .unwrap_or(Value::Null)
}

fn object(pairs: Vec<(&str, Value)>) -> Value {
    let mut o = Object::new();
    for (k, v) in pairs {
        o.insert(k.to_string(), v);
    }
    Value::Object(o)
}

fn counts(map: &BTreeMap<&'static str, u64>, keys: &[&'static str]) -> Value {
    object(
        keys.iter()
            .map(|k| (*k, num(*map.get(k).unwrap_or(&0))))
            .collect(),
    )
}

const ITEM_ACTIONS: &[&str] = &["created", "updated", "deleted", "skipped"];
const ERROR_KINDS: &[&str] = &["plane", "caldav", "journal", "item", "safety_valve"];

impl Status {
    /// A fresh status for a process started now.
    pub fn new(sync_enabled: bool) -> Status {
        Status {
            started_at: clock::now_unix(),
            sync_enabled,
            ..Status::default()
        }
    }

    /// Whether `/health` should say healthy.
    pub fn healthy(&self) -> bool {
        self.consecutive_failures < UNHEALTHY_AFTER
    }

    /// Records a cycle that ran to its end (some items may still have failed). `full`: a
    /// timed cycle over every project, the only kind that ends a failure streak.
    pub fn record_success(
        &mut self,
        summary: &crate::sync::Summary,
        seconds: f64,
        full: bool,
        now: i64,
    ) {
        self.end_cycle(seconds, now);
        self.add_counts(summary, full);
        self.last_success = Some(now);
        if full {
            self.consecutive_failures = 0;
            self.last_error = None;
            self.last_error_public = None;
        }
    }

    /// Records a cycle that failed as a whole. Only a `full` one extends the streak that
    /// `/health` and the retry back-off read.
    pub fn record_failure(&mut self, failure: &Failure, seconds: f64, full: bool, now: i64) {
        self.end_cycle(seconds, now);
        self.cycles_failed += 1;
        if full {
            self.consecutive_failures += 1;
        }
        self.last_error = Some(failure.message.clone());
        self.last_error_public = Some(failure.public.clone());
        if let Some(kind) = failure.kind {
            *self.errors.entry(kind).or_insert(0) += 1;
        }
    }

    /// Records a cycle that ran, but in which every project failed: its counts are kept,
    /// and it is a failure.
    pub fn record_all_failed(
        &mut self,
        summary: &crate::sync::Summary,
        failure: &Failure,
        seconds: f64,
        full: bool,
        now: i64,
    ) {
        self.add_counts(summary, full);
        self.record_failure(failure, seconds, full, now);
    }

    fn end_cycle(&mut self, seconds: f64, now: i64) {
        self.cycles += 1;
        self.syncing = false;
        self.last_sync = Some(now);
        self.last_duration = seconds;
        self.duration_total += seconds;
    }

    fn add_counts(&mut self, summary: &crate::sync::Summary, full: bool) {
        if full {
            self.projects_synced = summary.projects as u64;
        }
        for (k, n) in [
            ("created", summary.created),
            ("updated", summary.updated),
            ("deleted", summary.deleted),
            ("skipped", summary.skipped),
            ("plane_updated", summary.plane_updated),
            ("plane_created", summary.plane_created),
        ] {
            *self.items.entry(k).or_insert(0) += n as u64;
        }
        self.conflicts += summary.conflicts as u64;
        *self.errors.entry("item").or_insert(0) +=
            (summary.errors.len() - summary.blocked.len()) as u64;
        *self.errors.entry("safety_valve").or_insert(0) += summary.blocked.len() as u64;
    }

    fn health_word(&self) -> Value {
        text(if self.healthy() {
            "healthy"
        } else {
            "unhealthy"
        })
    }

    /// `GET /health`: the seed's keys (status, timestamp, version). The seed always
    /// answered 200; we answer 503 "unhealthy" after repeated failed cycles, so that
    /// `curl -f` health checks (Docker, Synology) notice, and then say why in
    /// `last_error` — the public form only: this path needs no token.
    pub fn health_json(&self, now: i64) -> String {
        let mut pairs = vec![
            ("status", self.health_word()),
            ("timestamp", text(&clock::format_python_iso(now))),
            ("version", text(env!("CARGO_PKG_VERSION"))),
        ];
        if !self.healthy() {
            pairs.push(("last_error", self.public_error()));
        }
        json::to_string(&object(pairs))
    }

    fn public_error(&self) -> Value {
        self.last_error_public
            .as_deref()
            .map(text)
            .unwrap_or(Value::Null)
    }

    /// `last_error` as `detail` allows: the full message, or kind and host.
    fn error_for(&self, detail: bool) -> Value {
        match (&self.last_error, detail) {
            (Some(full), true) => text(full),
            _ => self.public_error(),
        }
    }

    /// "idle", "syncing", or "error" while the last full cycles failed.
    fn sync_word(&self) -> &'static str {
        if self.syncing {
            "syncing"
        } else if self.consecutive_failures > 0 {
            "error"
        } else {
            "idle"
        }
    }

    /// `GET /api/v1/health`: the union of the seed's two shapes. Its code served status,
    /// services, stats and timestamp; its admin guide documents status, timestamp,
    /// version, uptime ("2h 15m") and metrics{projects_synced, events_created, last_sync,
    /// sync_status}. Monitors exist for both.
    pub fn seed_health_json(&self, now: i64) -> String {
        let up = (now - self.started_at).max(0);
        let metrics = object(vec![
            ("projects_synced", num(self.projects_synced)),
            (
                "events_created",
                num(*self.items.get("created").unwrap_or(&0)),
            ),
            ("last_sync", opt_time(self.last_sync)),
            ("sync_status", text(self.sync_word())),
        ]);
        json::to_string(&object(vec![
            ("version", text(env!("CARGO_PKG_VERSION"))),
            (
                "uptime",
                text(&format!("{}h {}m", up / 3600, up % 3600 / 60)),
            ),
            ("metrics", metrics),
            ("status", self.health_word()),
            (
                "services",
                object(vec![
                    ("caldav", text(if self.caldav_ok { "ok" } else { "error" })),
                    (
                        "scheduler",
                        text(if self.sync_enabled {
                            "running"
                        } else {
                            "stopped"
                        }),
                    ),
                ]),
            ),
            ("stats", self.sync_stats()),
            ("timestamp", text(&clock::format_python_iso(now))),
        ]))
    }

    fn sync_stats(&self) -> Value {
        object(vec![
            ("total_projects", num(self.mapped_projects)),
            ("total_events", num(self.mapped_events)),
            ("synced_events", num(self.mapped_events)),
        ])
    }

    /// `GET /api/v1/metrics`; `detail`: the request is authenticated (full error text).
    pub fn metrics_json(&self, now: i64, detail: bool) -> String {
        let w = &self.webhooks;
        json::to_string(&object(vec![
            (
                "uptime_seconds",
                float((now - self.started_at).max(0) as f64),
            ),
            ("sync_enabled", Value::Bool(self.sync_enabled)),
            ("cycles", num(self.cycles)),
            ("cycles_failed", num(self.cycles_failed)),
            (
                "consecutive_failures",
                num(self.consecutive_failures as u64),
            ),
            ("last_sync", opt_time(self.last_sync)),
            ("last_success", opt_time(self.last_success)),
            ("next_sync", opt_time(self.next_sync)),
            ("last_duration_seconds", float(self.last_duration)),
            ("last_error", self.error_for(detail)),
            ("projects_synced", num(self.projects_synced)),
            ("items", counts(&self.items, ITEM_ACTIONS)),
            (
                "plane_writes",
                counts(&self.items, &["plane_updated", "plane_created"]),
            ),
            ("errors", counts(&self.errors, ERROR_KINDS)),
            ("conflicts", num(self.conflicts)),
            ("webhooks", self.webhook_object(w)),
        ]))
    }

    fn webhook_object(&self, w: &WebhookStats) -> Value {
        object(vec![
            ("received", num(w.received)),
            ("accepted", num(w.accepted)),
            ("unauthorized", num(w.unauthorized)),
            ("too_large", num(w.too_large)),
            ("malformed", num(w.malformed)),
            ("busy", num(w.busy)),
            ("ignored", num(w.ignored)),
            ("duplicate", num(w.duplicate)),
            ("last_delivery", opt_time(w.last_delivery)),
            (
                "last_event",
                w.last_event.as_deref().map(text).unwrap_or(Value::Null),
            ),
            (
                "last_error",
                w.last_error.as_deref().map(text).unwrap_or(Value::Null),
            ),
        ])
    }

    /// `GET /webhooks/status`: the seed's `scheduler` and `sync_stats`, plus our
    /// webhook counters under `webhooks`. `detail`: the request is authenticated; the
    /// others see the state file's name, not its path.
    pub fn webhooks_json(&self, secret_set: bool, next_sync: Option<i64>, detail: bool) -> String {
        let path = std::path::Path::new(&self.state_file);
        let shown = if detail {
            self.state_file.clone()
        } else {
            path.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        let mut hooks = self.webhook_object(&self.webhooks);
        if let Value::Object(o) = &mut hooks {
            o.insert("enabled".into(), Value::Bool(secret_set));
        }
        let scheduler = object(vec![
            (
                "status",
                text(if self.sync_enabled {
                    "running"
                } else {
                    "stopped"
                }),
            ),
            (
                "next_run_time",
                opt_time(next_sync.filter(|_| self.sync_enabled)),
            ),
            ("last_sync_time", opt_time(self.last_sync)),
            ("state_file", text(&shown)),
            (
                "state_file_exists",
                Value::Bool(!self.state_file.is_empty() && path.exists()),
            ),
        ]);
        json::to_string(&object(vec![
            ("scheduler", scheduler),
            ("sync_stats", self.sync_stats()),
            ("webhooks", hooks),
        ]))
    }

    /// `GET /metrics`: Prometheus text exposition format 0.0.4.
    pub fn prometheus(&self, now: i64) -> String {
        let mut out = String::new();
        for family in self
            .service_families(now)
            .into_iter()
            .chain(self.work_families())
        {
            family.write_to(&mut out);
        }
        out
    }

    /// The metric families about the process and its sync cycles.
    fn service_families(&self, now: i64) -> Vec<MetricFamily> {
        use MetricKind::{Counter, Gauge};
        vec![
            MetricFamily::single(
                "calplanebot_up",
                Gauge,
                "1 while the service runs.",
                "1".into(),
            ),
            MetricFamily::single(
                "calplanebot_uptime_seconds",
                Gauge,
                "Seconds since the process started.",
                (now - self.started_at).max(0).to_string(),
            ),
            MetricFamily::single(
                "calplanebot_sync_cycles_total",
                Counter,
                "Sync cycles run.",
                self.cycles.to_string(),
            ),
            MetricFamily::single(
                "calplanebot_sync_cycles_failed_total",
                Counter,
                "Sync cycles that failed as a whole.",
                self.cycles_failed.to_string(),
            ),
            MetricFamily::single(
                "calplanebot_sync_duration_seconds_sum",
                Counter,
                "Seconds spent in sync cycles.",
                format!("{:.3}", self.duration_total),
            ),
            MetricFamily::single(
                "calplanebot_last_sync_duration_seconds",
                Gauge,
                "Seconds the last sync cycle took.",
                format!("{:.3}", self.last_duration),
            ),
            MetricFamily::single(
                "calplanebot_last_success_timestamp_seconds",
                Gauge,
                "Unix time of the last successful sync cycle (0: none yet).",
                self.last_success.unwrap_or(0).to_string(),
            ),
            MetricFamily::single(
                "calplanebot_projects_synced",
                Gauge,
                "Projects in the last full sync.",
                self.projects_synced.to_string(),
            ),
        ]
    }

    /// The metric families counting what the cycles and webhooks did.
    fn work_families(&self) -> Vec<MetricFamily> {
        let item_count = |key: &str| *self.items.get(key).unwrap_or(&0);
        let w = &self.webhooks;
        vec![
            MetricFamily::labelled(
                "calplanebot_items_total",
                "Calendar objects written, by action.",
                "action",
                ITEM_ACTIONS.iter().map(|a| (*a, item_count(a))),
            ),
            MetricFamily::labelled(
                "calplanebot_errors_total",
                "Errors, by kind.",
                "kind",
                ERROR_KINDS
                    .iter()
                    .map(|k| (*k, *self.errors.get(k).unwrap_or(&0))),
            ),
            MetricFamily::labelled(
                "calplanebot_plane_writes_total",
                "Work items changed or created in Plane from calendar edits, by action.",
                "action",
                [("updated", "plane_updated"), ("created", "plane_created")]
                    .iter()
                    .map(|(label, key)| (*label, item_count(key))),
            ),
            MetricFamily::single(
                "calplanebot_conflicts_total",
                MetricKind::Counter,
                "Fields changed on both sides (two-way sync).",
                self.conflicts.to_string(),
            ),
            MetricFamily::labelled(
                "calplanebot_webhooks_total",
                "Webhook deliveries, by outcome.",
                "outcome",
                [
                    ("accepted", w.accepted),
                    ("unauthorized", w.unauthorized),
                    ("too_large", w.too_large),
                    ("malformed", w.malformed),
                    ("busy", w.busy),
                    ("ignored", w.ignored),
                    ("duplicate", w.duplicate),
                ]
                .into_iter(),
            ),
        ]
    }
}

/// A Prometheus metric type (only the two we export).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MetricKind {
    /// A value that goes up and down.
    Gauge,
    /// A value that only goes up.
    Counter,
}

impl MetricKind {
    /// The name on the `# TYPE` line.
    fn as_str(self) -> &'static str {
        match self {
            MetricKind::Gauge => "gauge",
            MetricKind::Counter => "counter",
        }
    }
}

/// One metric family: its `# HELP` and `# TYPE` lines and its samples.
struct MetricFamily {
    name: &'static str,
    kind: MetricKind,
    help: &'static str,
    /// Each sample's label set (`{k="v"}`, or empty) and value, in output order.
    samples: Vec<(String, String)>,
}

impl MetricFamily {
    /// A family of one unlabelled sample.
    fn single(
        name: &'static str,
        kind: MetricKind,
        help: &'static str,
        value: String,
    ) -> MetricFamily {
        MetricFamily {
            name,
            kind,
            help,
            samples: vec![(String::new(), value)],
        }
    }

    /// A counter with one sample per value of the label `label`.
    fn labelled<'v, N: std::fmt::Display>(
        name: &'static str,
        help: &'static str,
        label: &str,
        values: impl Iterator<Item = (&'v str, N)>,
    ) -> MetricFamily {
        MetricFamily {
            name,
            kind: MetricKind::Counter,
            help,
            samples: values
                .map(|(v, n)| (format!("{{{label}=\"{v}\"}}"), n.to_string()))
                .collect(),
        }
    }

    /// Appends the family in the text exposition format.
    fn write_to(&self, out: &mut String) {
        let (name, kind, help) = (self.name, self.kind.as_str(), self.help);
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
        for (labels, value) in &self.samples {
            out.push_str(&format!("{name}{labels} {value}\n"));
        }
    }
}

/// What the journal knows, as `sync-status` prints it: the counts, then per calendar its
/// project, events, how the calendar is polled (sync-token, ctag or full listing) and
/// the Plane watermark with the time of the last full listing.
pub fn journal_report(state: &crate::state::State, now: i64) -> Vec<String> {
    let mut out = vec![
        format!("Calendars:  {}", state.calendars.len()),
        format!("Events:     {}", state.items.len()),
    ];
    for cal in state.calendars.values() {
        let n = state
            .items
            .values()
            .filter(|r| r.project == cal.project)
            .count();
        out.push(format!("  {} → {} ({n} events)", cal.project, cal.href));
        let polling = match (&cal.sync_token, &cal.ctag) {
            (Some(t), _) => format!("sync-token {t}"),
            (None, Some(c)) => format!("ctag {c} (no sync-token: server lacks RFC 6578)"),
            (None, None) => "full listing every cycle (no sync-token or ctag)".to_string(),
        };
        out.push(format!("      calendar: {polling}"));
        let project = state.projects.get(&cal.project);
        let watermark = project
            .and_then(|p| p.watermark.clone())
            .unwrap_or_else(|| "none yet (next cycle lists every item)".into());
        out.push(format!("      Plane watermark: {watermark}"));
        let full = match project.and_then(|p| p.last_full) {
            Some(t) => format!(
                "{} ({} s ago), {} incremental cycles since",
                clock::format_rfc3339(t),
                now - t,
                project.map_or(0, |p| p.cycles_since_full)
            ),
            None => "never".to_string(),
        };
        out.push(format!("      last full listing: {full}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_health_shape() {
        let mut s = Status::new(true);
        s.started_at = 1_000;
        let v: Value = json::from_str(&s.seed_health_json(1_060)).unwrap();
        let Value::Object(o) = v else { panic!() };
        let keys: Vec<&str> = o.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            vec![
                "metrics",
                "services",
                "stats",
                "status",
                "timestamp",
                "uptime",
                "version"
            ]
        );
        assert!(matches!(o.get("uptime"), Some(Value::String(u)) if u == "0h 1m"));
        let Some(Value::Object(m)) = o.get("metrics") else {
            panic!()
        };
        let keys: Vec<&str> = m.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            vec![
                "events_created",
                "last_sync",
                "projects_synced",
                "sync_status"
            ]
        );
        assert!(matches!(m.get("sync_status"), Some(Value::String(s)) if s == "idle"));
        let Some(Value::Object(m)) = o.get("stats") else {
            panic!()
        };
        let keys: Vec<&str> = m.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            vec!["synced_events", "total_events", "total_projects"]
        );
        let Some(Value::Object(m)) = o.get("services") else {
            panic!()
        };
        assert!(matches!(m.get("scheduler"), Some(Value::String(s)) if s == "running"));
        assert!(
            matches!(o.get("timestamp"), Some(Value::String(t)) if t == "1970-01-01T00:17:40.000000+00:00")
        );
    }

    fn down() -> Failure {
        Failure {
            kind: Some("caldav"),
            message: "CalDAV login refused for alice at /home/alice/state".into(),
            public: "caldav: login refused (dav.example.com)".into(),
        }
    }

    #[test]
    fn health_turns_unhealthy_after_repeated_failures() {
        let mut s = Status::new(true);
        for i in 0..UNHEALTHY_AFTER {
            assert!(s.healthy(), "after {i} failures");
            s.record_failure(&down(), 0.1, true, 5);
        }
        assert!(!s.healthy());
        let health = s.health_json(7);
        assert!(health.contains("unhealthy"), "{health}");
        assert!(
            health.contains(r#""last_error":"caldav: login refused (dav.example.com)""#),
            "{health}"
        );
        assert!(!health.contains("alice"), "{health}");
        s.record_success(&crate::sync::Summary::default(), 0.1, true, 6);
        assert!(s.healthy());
        assert!(!s.health_json(8).contains("last_error"));
    }

    #[test]
    fn only_full_cycles_make_or_break_the_streak() {
        let mut s = Status::new(true);
        s.record_failure(&down(), 0.1, true, 5);
        s.record_failure(&down(), 0.1, true, 6);
        // A webhook's one-item sync succeeds: the streak stays, and so does the error.
        s.record_success(&crate::sync::Summary::default(), 0.1, false, 7);
        assert_eq!(s.consecutive_failures, 2);
        assert!(s.last_error.is_some());
        // A webhook sync that fails does not push the back-off either.
        s.record_failure(&down(), 0.1, false, 8);
        assert_eq!(s.consecutive_failures, 2);
        assert_eq!(s.cycles_failed, 3);
        let all_failed = crate::sync::Summary {
            projects: 2,
            errors: vec!["a".into(), "b".into()],
            ..crate::sync::Summary::default()
        };
        let f = Failure {
            kind: None,
            ..down()
        };
        s.record_all_failed(&all_failed, &f, 0.1, true, 9);
        assert_eq!(s.consecutive_failures, 3);
        assert!(!s.healthy());
        assert_eq!(s.errors.get("item"), Some(&2));
        assert_eq!(s.errors.get("caldav"), Some(&3));
    }

    #[test]
    fn unauthenticated_answers_carry_no_names_or_paths() {
        let mut s = Status::new(true);
        s.state_file = "/home/alice/.local/state/calplanebot/state.jsonl".into();
        s.record_failure(&down(), 0.1, true, 5);
        for public in [s.metrics_json(6, false), s.webhooks_json(true, None, false)] {
            assert!(!public.contains("alice"), "{public}");
        }
        assert!(s
            .webhooks_json(true, None, false)
            .contains(r#""state_file":"state.jsonl""#));
        assert!(s.metrics_json(6, true).contains("login refused for alice"));
        assert!(s.webhooks_json(true, None, true).contains("/home/alice/"));
    }

    #[test]
    fn prometheus_lines_are_well_formed() {
        let mut s = Status::new(true);
        s.record_failure(&down(), 1.5, true, 10);
        let text = s.prometheus(20);
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (name, value) = line.rsplit_once(' ').unwrap();
            assert!(name.starts_with("calplanebot_"), "{line}");
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
        assert!(text.contains("calplanebot_errors_total{kind=\"caldav\"} 1\n"));
    }

    #[test]
    fn two_way_counts_reach_metrics() {
        let mut s = Status::new(true);
        let cycle = crate::sync::Summary {
            plane_updated: 2,
            plane_created: 1,
            conflicts: 3,
            ..crate::sync::Summary::default()
        };
        s.record_success(&cycle, 0.1, true, 6);
        s.record_success(&cycle, 0.1, false, 7);
        let text = s.prometheus(8);
        assert!(text.contains("calplanebot_conflicts_total 6\n"), "{text}");
        assert!(text.contains("calplanebot_plane_writes_total{action=\"updated\"} 4\n"));
        assert!(text.contains("calplanebot_plane_writes_total{action=\"created\"} 2\n"));
        let json = s.metrics_json(8, false);
        assert!(json.contains(r#""conflicts":6"#), "{json}");
        assert!(
            json.contains(r#""plane_writes":{"plane_created":2,"plane_updated":4}"#),
            "{json}"
        );
    }

    #[test]
    fn journal_report_shows_polling_state() {
        use crate::state::{CalendarRecord, ProjectRecord, State};
        let mut st = State::default();
        st.calendars.insert(
            "p".into(),
            CalendarRecord {
                project: "p".into(),
                href: "/cal/p/".into(),
                ctag: Some("c1".into()),
                sync_token: Some("tok-9".into()),
            },
        );
        st.projects.insert(
            "p".into(),
            ProjectRecord {
                project: "p".into(),
                watermark: Some("2026-11-23T10:00:00.5Z".into()),
                cycles_since_full: 4,
                last_full: Some(1_795_428_930),
                identifier: Some("WEB".into()),
                name: Some("Website".into()),
                timeline: None,
                zone: None,
                cycle_view: None,
                module_view: None,
            },
        );
        let text = journal_report(&st, 1_795_428_990).join("\n");
        assert!(text.contains("calendar: sync-token tok-9"), "{text}");
        assert!(
            text.contains("Plane watermark: 2026-11-23T10:00:00.5Z"),
            "{text}"
        );
        assert!(
            text.contains(
                "last full listing: 2026-11-23T10:15:30Z (60 s ago), 4 incremental cycles since"
            ),
            "{text}"
        );
    }
}
