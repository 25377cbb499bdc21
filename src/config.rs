//! Configuration: environment variables, optionally read from a `.env` file, validated into
//! a [`Config`].
//!
//! Names are the seed's (the Python CalPlaneBot), so an existing `.env` keeps working.
//! Variables already set in the process environment win over the `.env` file, as with
//! every dotenv loader users know.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// A secret string (token, password). Its `Debug` and `Display` never show the value.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }
    /// The secret itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// Whether no secret was given.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() {
            "(not set)"
        } else {
            "****"
        })
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// How we authenticate to the CalDAV server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthType {
    /// Follow the server's `WWW-Authenticate` challenge (Digest preferred over Basic).
    Auto,
    /// Always send Basic credentials.
    Basic,
    /// Always answer with Digest.
    Digest,
}

/// Which calendar component a work item becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemKind {
    /// An all-day VEVENT on the target date.
    Event,
    /// A VTODO due on the target date (Thunderbird Tasks, iOS Reminders, jtx).
    Todo,
}

/// Which dates an event spans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateMode {
    /// One day: the target date.
    Due,
    /// From the start date (when set) through the target date.
    Span,
}

/// What happens to the event of a completed (or cancelled) work item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompletedItems {
    /// Delete the event (the seed's behaviour).
    Delete,
    /// Keep the event, marked "✔ " (completed) or STATUS:CANCELLED (cancelled).
    Keep,
}

/// SYNC_DIRECTION: whether calendar edits flow back to Plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncDirection {
    /// Both ways (the default): calendar edits of the synced fields reach Plane.
    Both,
    /// Plane → calendar only: calendar edits of owned fields are overwritten.
    PlaneToCalendar,
}

/// CONFLICT_POLICY: who wins a field changed on both sides to different values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConflictPolicy {
    /// Plane's value wins (the default).
    Plane,
    /// The calendar's value wins.
    Calendar,
    /// The side changed last wins (Plane's `updated_at` against the object's
    /// LAST-MODIFIED, or DTSTAMP when it has none); a tie goes to Plane.
    Newest,
}

/// CALENDAR_DELETE: what an event of ours deleted in the calendar means while its work
/// item still qualifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CalendarDelete {
    /// Put the event back (the default).
    Recreate,
    /// Clear the work item's target date in Plane.
    ClearDate,
}

/// Validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Plane server, e.g. `https://plane.example.com` (no `/api/v1`).
    pub plane_base_url: String,
    /// Where browser links point; defaults to `plane_base_url`.
    pub plane_web_url: String,
    /// Plane API token (`X-API-Key`).
    pub plane_api_token: Secret,
    /// Workspace slug as in the Plane URL.
    pub plane_workspace_slug: String,
    /// Project identifiers or ids to sync; empty = all.
    pub plane_projects: Vec<String>,
    /// CalDAV URL: server root, principal, calendar home or a calendar. `None`: no
    /// CalDAV server, calplanebot serves .ics feeds only (see [`Config::mode`]).
    pub caldav_url: Option<String>,
    /// CalDAV user name; empty = no authentication.
    pub caldav_username: String,
    /// CalDAV password.
    pub caldav_password: Secret,
    /// CalDAV authentication scheme.
    pub caldav_auth_type: AuthType,
    /// Extra PEM root certificates (self-signed NAS certificates).
    pub caldav_ca_file: Option<PathBuf>,
    /// Seconds between sync cycles of `run`.
    pub sync_interval_seconds: u64,
    /// Where the journal lives.
    pub state_dir: PathBuf,
    /// Log level name (error, warn, info, debug, trace).
    pub log_level: log::LevelFilter,
    /// VEVENT or VTODO.
    pub item_kind: ItemKind,
    /// One-day events or start→target spans.
    pub date_mode: DateMode,
    /// Delete or keep events of completed items.
    pub completed_items: CompletedItems,
    /// Only items assigned to one of these (user ids or e-mails); empty = all.
    pub sync_assignees: Vec<String>,
    /// Only items in these state groups.
    pub sync_state_groups: Vec<String>,
    /// Only items with one of these labels (names or ids); empty = all.
    pub sync_labels: Vec<String>,
    /// Refuse a cycle that would delete more than this fraction of a calendar's objects.
    pub max_delete_fraction: f64,
    /// Both ways, or Plane → calendar only.
    pub sync_direction: SyncDirection,
    /// Who wins a conflicting field.
    pub conflict_policy: ConflictPolicy,
    /// What deleting one of our events in the calendar means.
    pub calendar_delete: CalendarDelete,
    /// Whether new objects in a "Plane: X" calendar become work items.
    pub create_from_calendar: bool,
    /// SYNC_CYCLES: each dated cycle (sprint) as an all-day span event, read-only.
    pub sync_cycles: bool,
    /// SYNC_MODULES: each dated module as an all-day span event, read-only.
    pub sync_modules: bool,
    /// A full Plane listing every this many cycles (incremental ones in between).
    pub full_reconcile_every: u32,
    /// EVENT_TIMEZONE: the zone whose dates UTC times in the calendar fall on.
    pub event_timezone: String,
    /// Seconds before an HTTP request gives up.
    pub http_timeout_seconds: u64,
    /// Address of the webhook/health server; `None` disables it.
    pub http_bind: Option<String>,
    /// Secret Plane signs webhooks with; webhooks are refused without it.
    pub plane_webhook_secret: Option<Secret>,
    /// API_TOKEN: with it, every HTTP path but `/health` and the webhook needs
    /// `Authorization: Bearer <token>`, and only such requests see full error details.
    pub api_token: Option<Secret>,
    /// Whether `run` syncs at all (false: serve HTTP only).
    pub enable_sync: bool,
    /// Log to this file (rotated by size) instead of stderr.
    pub log_file: Option<PathBuf>,
    /// FEED_TOKEN: the secret in the .ics feed URLs; `None` switches the feeds off.
    pub feed_token: Option<Secret>,
    /// PUBLIC_URL: where calendar apps reach the service (for `feed-urls`), without a
    /// trailing slash; `None`: derived from HTTP_BIND.
    pub public_url: Option<String>,
}

/// What `run` does with a configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// CALDAV_URL is set: two-way sync with the CalDAV server (and feeds when FEED_TOKEN
    /// is set).
    CalDav {
        /// Whether the .ics feeds are served too.
        feeds: bool,
    },
    /// No CALDAV_URL: read-only .ics feeds of the same objects, nothing else.
    FeedsOnly,
}

impl Mode {
    /// One line for `validate-config`, `test-plane`, `status`, `diagnostics` and the log.
    pub fn describe(self) -> &'static str {
        match self {
            Mode::CalDav { feeds: true } => "CalDAV sync, and .ics feeds (FEED_TOKEN is set)",
            Mode::CalDav { feeds: false } => {
                "CalDAV sync; .ics feeds off (set FEED_TOKEN to serve them)"
            }
            Mode::FeedsOnly => {
                "feeds only: no CALDAV_URL, `calplanebot run` serves read-only .ics feeds (see `calplanebot feed-urls`)"
            }
        }
    }
}

impl Config {
    /// The mode this configuration asks for.
    pub fn mode(&self) -> Mode {
        match self.caldav_url {
            Some(_) => Mode::CalDav {
                feeds: self.feed_token.is_some(),
            },
            None => Mode::FeedsOnly,
        }
    }
}

/// A configuration problem, naming the variable and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The variable (or file) at fault.
    pub variable: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.variable, self.message)?;
        if !self.hint.is_empty() {
            write!(f, " (hint: {})", self.hint)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

fn err(variable: &str, message: impl Into<String>, hint: impl Into<String>) -> ConfigError {
    ConfigError {
        variable: variable.to_string(),
        message: message.into(),
        hint: hint.into(),
    }
}

/// Every variable we read, with its default and whether it is secret — the single list
/// behind `config`, unknown-variable warnings, and README/env.example.
pub const VARIABLES: &[(&str, &str, bool)] = &[
    ("PLANE_BASE_URL", "", false),
    ("PLANE_WEB_URL", "", false),
    ("PLANE_API_TOKEN", "", true),
    ("PLANE_WORKSPACE_SLUG", "", false),
    ("PLANE_PROJECTS", "", false),
    ("CALDAV_URL", "", false),
    ("CALDAV_USERNAME", "", false),
    ("CALDAV_PASSWORD", "", true),
    ("CALDAV_AUTH_TYPE", "auto", false),
    ("CALDAV_CA_FILE", "", false),
    ("SYNC_INTERVAL_SECONDS", "300", false),
    ("STATE_DIR", "./data", false),
    ("LOG_LEVEL", "INFO", false),
    ("ITEM_KIND", "vevent", false),
    ("DATE_MODE", "due", false),
    ("COMPLETED_ITEMS", "delete", false),
    ("SYNC_ASSIGNEES", "", false),
    (
        "SYNC_STATE_GROUPS",
        "backlog,unstarted,started,completed,cancelled",
        false,
    ),
    ("SYNC_LABELS", "", false),
    ("MAX_DELETE_FRACTION", "0.5", false),
    ("SYNC_DIRECTION", "both", false),
    ("CONFLICT_POLICY", "plane", false),
    ("CALENDAR_DELETE", "recreate", false),
    ("CREATE_FROM_CALENDAR", "false", false),
    ("SYNC_CYCLES", "false", false),
    ("SYNC_MODULES", "false", false),
    ("FULL_RECONCILE_EVERY", "12", false),
    ("EVENT_TIMEZONE", "UTC", false),
    ("HTTP_TIMEOUT_SECONDS", "30", false),
    ("HTTP_BIND", "0.0.0.0:8765", false),
    ("PLANE_WEBHOOK_SECRET", "", true),
    ("API_TOKEN", "", true),
    ("ENABLE_SYNC", "true", false),
    ("LOG_FILE", "", false),
    ("FEED_TOKEN", "", true),
    ("PUBLIC_URL", "", false),
];

/// Variables of the seed's `.env` that this version does not use; they are accepted
/// silently rather than reported as typos.
pub const SEED_UNUSED: &[&str] = &[];

/// The raw variables: process environment over an optional `.env` file.
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: BTreeMap<String, String>,
}

impl Env {
    /// Reads the process environment, then fills gaps from `env_file` (when given, it must
    /// exist) or from `./.env` (when present).
    pub fn load(env_file: Option<&Path>) -> Result<Env, ConfigError> {
        let mut vars: BTreeMap<String, String> = std::env::vars().collect();
        let (path, required) = match env_file {
            Some(p) => (p.to_path_buf(), true),
            None => (PathBuf::from(".env"), false),
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                for (k, v) in parse_dotenv(&text).map_err(|(line, m)| {
                    err(
                        &path.display().to_string(),
                        format!("line {line}: {m}"),
                        "lines look like NAME=value",
                    )
                })? {
                    vars.entry(k).or_insert(v);
                }
            }
            Err(e) if required || e.kind() != std::io::ErrorKind::NotFound => {
                return Err(err(
                    &path.display().to_string(),
                    format!("cannot read env file: {e}"),
                    "check the --env-file path",
                ));
            }
            Err(_) => {}
        }
        Ok(Env { vars })
    }

    /// An `Env` from explicit pairs (tests).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Env {
        Env {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    /// A variable's trimmed value; empty counts as unset.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// A secret from `NAME` or from the file named by `NAME_FILE` (systemd credentials,
    /// Docker secrets); a trailing newline in the file is dropped.
    fn secret(&self, name: &str) -> Result<Secret, ConfigError> {
        let file_var = format!("{name}_FILE");
        if let Some(path) = self.get(&file_var) {
            let text = std::fs::read_to_string(path).map_err(|e| {
                err(
                    &file_var,
                    format!("cannot read {path}: {e}"),
                    "point it at a readable file holding only the secret",
                )
            })?;
            let value = text.trim_end_matches(['\r', '\n']);
            // An empty file means "not given here" (systemd's SetCredential placeholder
            // for a missing credential file): fall back to the plain variable.
            if !value.is_empty() {
                return Ok(Secret::new(value));
            }
        }
        Ok(Secret::new(self.get(name).unwrap_or("")))
    }

    /// Variables that look like ours but that we do not read (typos).
    pub fn unknown_variables(&self) -> Vec<String> {
        const PREFIXES: &[&str] = &["PLANE_", "CALDAV_", "CALPLANEBOT_", "SYNC_"];
        self.vars
            .keys()
            .filter(|k| PREFIXES.iter().any(|p| k.starts_with(p)))
            .filter(|k| !SEED_UNUSED.contains(&k.as_str()))
            .filter(|k| {
                let base = k.strip_suffix("_FILE").unwrap_or(k);
                !VARIABLES
                    .iter()
                    .any(|(n, _, _)| *n == k.as_str() || *n == base)
            })
            .cloned()
            .collect()
    }

    /// The mode these variables ask for, in words, for `config` (which also works when
    /// the configuration is incomplete, so this does not validate).
    pub fn mode_hint(&self) -> &'static str {
        let feeds = self.get("FEED_TOKEN").is_some() || self.get("FEED_TOKEN_FILE").is_some();
        match (self.get("CALDAV_URL").is_some(), feeds) {
            (true, f) => Mode::CalDav { feeds: f }.describe(),
            (false, true) => Mode::FeedsOnly.describe(),
            (false, false) => "none: set CALDAV_URL (CalDAV sync) or FEED_TOKEN (.ics feeds)",
        }
    }

    /// Every known variable with its effective value, secrets masked — for `config`.
    pub fn masked_listing(&self) -> Vec<(String, String)> {
        VARIABLES
            .iter()
            .map(|(name, default, secret)| {
                let from_file = self.get(&format!("{name}_FILE"));
                let value = match (self.get(name), secret) {
                    (_, true) if from_file.is_some() => {
                        format!("**** (from {})", from_file.unwrap_or(""))
                    }
                    (Some(_), true) => "****".to_string(),
                    // URLs may carry `user:password@` (refused by validation, but `config`
                    // shows the raw value and must not print it).
                    (Some(v), false) => mask_userinfo(v),
                    // Set but empty: for HTTP_BIND that switches the server off.
                    (None, _) if *name == "HTTP_BIND" && self.vars.contains_key(*name) => {
                        "(empty: no HTTP server)".to_string()
                    }
                    (None, _) if default.is_empty() => "(not set)".to_string(),
                    (None, _) => format!("{default} (default)"),
                };
                (name.to_string(), value)
            })
            .collect()
    }
}

/// Parses `.env` text the way docker compose reads an env file (its documented rules,
/// without `$VAR` interpolation: a `$` in a password stays a `$`):
/// - `NAME=value`, optionally prefixed by `export `; blank lines and `#` lines are skipped;
///   a UTF-8 byte-order mark is ignored; lines may end in LF, CRLF or a lone CR.
/// - Unquoted values end at the line end or at a `#` preceded by white space (an inline
///   comment); surrounding white space is dropped.
/// - `'single quotes'` are literal (only `\'` stands for a quote); `"double quotes"` know
///   `\n`, `\r`, `\t`, `\\`, `\"`, `\'` and `\$`. Quoted values may span lines, and only
///   white space or a `# comment` may follow the closing quote.
///
/// Returns (line, message) for the first line that breaks these rules.
pub fn parse_dotenv(text: &str) -> Result<Vec<(String, String)>, (usize, String)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    // One line-end convention, so a CR-only file (old Mac editors) is not one long line.
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    let lines: Vec<&str> = text.split('\n').collect();
    let mut out = Vec::new();
    let mut next = 0;
    while next < lines.len() {
        let number = next + 1;
        let line = lines[next].trim_start();
        next += 1;
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = strip_export(line);
        let Some((name, value)) = line.split_once('=') else {
            return Err((number, "expected NAME=value".to_string()));
        };
        let name = name.trim();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err((number, format!("invalid variable name {name:?}")));
        }
        let value = match value.trim_start().chars().next() {
            Some(quote @ ('"' | '\'')) => {
                let mut body = value.trim_start()[1..].to_string();
                loop {
                    if let Some(v) = closed_quote(&body, quote).map_err(|m| (number, m))? {
                        break v;
                    }
                    let Some(more) = lines.get(next) else {
                        return Err((number, format!("the {quote} quote is never closed")));
                    };
                    body.push('\n');
                    body.push_str(more);
                    next += 1;
                }
            }
            _ => unquoted_value(value),
        };
        out.push((name.to_string(), value));
    }
    Ok(out)
}

/// `line` without a leading `export ` (as in a shell script that can be `source`d).
fn strip_export(line: &str) -> &str {
    match line.strip_prefix("export") {
        Some(rest) if rest.starts_with([' ', '\t']) => rest.trim_start(),
        _ => line,
    }
}

/// An unquoted value: up to an inline comment (`#` after white space), trimmed. As in
/// compose, a `#` right at the start is part of the value (`NAME=#x` is `#x`).
fn unquoted_value(raw: &str) -> String {
    let raw = raw.trim_start();
    let mut end = raw.len();
    let mut after_space = false;
    for (i, c) in raw.char_indices() {
        if c == '#' && after_space {
            end = i;
            break;
        }
        after_space = c == ' ' || c == '\t';
    }
    raw[..end].trim().to_string()
}

/// The value of a quoted body (the text after the opening quote): `Ok(None)` when the
/// closing quote is not in `body` yet, an error when something other than white space or
/// a comment follows it.
fn closed_quote(body: &str, quote: char) -> Result<Option<String>, String> {
    let mut value = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        if c == quote {
            let rest = body[i + 1..].trim_start();
            if !(rest.is_empty() || rest.starts_with('#')) {
                return Err(format!(
                    "unexpected text {rest:?} after the closing {quote} quote"
                ));
            }
            return Ok(Some(value));
        }
        if c != '\\' {
            value.push(c);
            continue;
        }
        let Some((_, escaped)) = chars.next() else {
            value.push('\\');
            break;
        };
        match (quote, escaped) {
            ('\'', '\'') => value.push('\''),
            ('"', 'n') => value.push('\n'),
            ('"', 'r') => value.push('\r'),
            ('"', 't') => value.push('\t'),
            ('"', '\\' | '"' | '\'' | '$') => value.push(escaped),
            // Anything else is literal, backslash included (Windows paths in '…').
            _ => {
                value.push('\\');
                value.push(escaped);
            }
        }
    }
    Ok(None)
}

fn list(env: &Env, name: &str, default: &str) -> Vec<String> {
    env.get(name)
        .unwrap_or(default)
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// An `http(s)://` URL as given, except that the scheme is lower-cased (schemes are
/// case-insensitive, RFC 3986 §3.1). The path is kept exactly: `…/dav/` and `…/dav` can be
/// different resources to a WebDAV server. User info (`user:password@`) is refused: it
/// would be printed and written into every event's link; credentials have their own
/// (masked) variables.
fn url(env: &Env, name: &str, hint: &str, userinfo_hint: &str) -> Result<String, ConfigError> {
    let value = env
        .get(name)
        .ok_or_else(|| err(name, "is not set", hint.to_string()))?;
    let shown = mask_userinfo(value);
    let scheme = value.find("://").map(|i| value[..i].to_ascii_lowercase());
    let (Some("http" | "https"), Some(i)) = (scheme.as_deref(), value.find("://")) else {
        return Err(err(
            name,
            format!("{shown:?} is not an http:// or https:// URL"),
            hint.to_string(),
        ));
    };
    let rest = &value[i + 3..];
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    if authority.contains('@') {
        return Err(err(
            name,
            format!("{shown} contains a user name or password"),
            userinfo_hint.to_string(),
        ));
    }
    if authority.is_empty() {
        return Err(err(
            name,
            format!("{shown:?} has no host"),
            hint.to_string(),
        ));
    }
    Ok(format!("{}://{rest}", scheme.unwrap_or_default()))
}

/// `url` with the `user:password@` part (if any) replaced by `****@`, for display. A value
/// without `scheme://` is masked the same way (`alice:pw@host/dav` → `****@host/dav`).
pub fn mask_userinfo(url: &str) -> String {
    let start = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[start..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{}****{}", &url[..start], &rest[at..]),
        None => url.to_string(),
    }
}

/// A whole number of seconds within `[min, max]`, so that durations built from it can
/// neither be zero where that breaks things nor overflow `Instant` arithmetic.
fn bounded(
    env: &Env,
    name: &str,
    default: u64,
    range: (u64, u64),
    why: &str,
) -> Result<u64, ConfigError> {
    let (min, max) = range;
    let Some(text) = env.get(name) else {
        return Ok(default);
    };
    match text.parse::<u64>() {
        Ok(v) if (min..=max).contains(&v) => Ok(v),
        _ => Err(err(
            name,
            format!("{text} is not a whole number from {min} to {max}"),
            why.to_string(),
        )),
    }
}

fn number<T: std::str::FromStr>(env: &Env, name: &str, default: T) -> Result<T, ConfigError> {
    match env.get(name) {
        None => Ok(default),
        Some(v) => v
            .parse()
            .map_err(|_| err(name, format!("{v:?} is not a number"), "use digits only")),
    }
}

fn choice<T: Copy>(
    env: &Env,
    name: &str,
    default: T,
    options: &[(&str, T)],
) -> Result<T, ConfigError> {
    let Some(v) = env.get(name) else {
        return Ok(default);
    };
    options
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(v))
        .map(|(_, t)| *t)
        .ok_or_else(|| {
            let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
            err(
                name,
                format!("{v:?} is not one of {}", names.join(", ")),
                "",
            )
        })
}

fn boolean(env: &Env, name: &str, default: bool) -> Result<bool, ConfigError> {
    choice(
        env,
        name,
        default,
        &[
            ("true", true),
            ("1", true),
            ("yes", true),
            ("false", false),
            ("0", false),
            ("no", false),
        ],
    )
}

const STATE_GROUPS: &[&str] = &["backlog", "unstarted", "started", "completed", "cancelled"];

/// SYNC_INTERVAL_SECONDS: 10 s (Plane's 60 requests a minute) to 7 days (a longer pause is
/// a stopped service, and larger values overflow the timer arithmetic).
pub const SYNC_INTERVAL_RANGE: (u64, u64) = (10, 7 * 24 * 3600);
/// HTTP_TIMEOUT_SECONDS: 0 would time out every request; 10 minutes is far beyond any
/// answer worth waiting for (a 1000-item Plane page or a large REPORT).
pub const HTTP_TIMEOUT_RANGE: (u64, u64) = (1, 600);
/// FULL_RECONCILE_EVERY at most: beyond it deletions in Plane would go unnoticed for years.
pub const MAX_FULL_RECONCILE_EVERY: u32 = 10_000;
/// Why PLANE_BASE_URL and PLANE_WEB_URL may not carry `user:password@`.
const PLANE_USERINFO_HINT: &str = "remove `user:password@`: Plane authenticates with PLANE_API_TOKEN, and the URL goes into every event's link";

impl Config {
    /// Validates the variables into a configuration. The areas are read in a fixed order,
    /// which decides which of several bad variables is reported.
    pub fn from_env(env: &Env) -> Result<Config, ConfigError> {
        let plane = PlaneSettings::read(env)?;
        let caldav = CaldavSettings::read(env)?;
        let sync = SyncSettings::read(env)?;
        let caldav_auth_type = caldav_auth_type(env)?;
        let state_dir = PathBuf::from(
            env.get("STATE_DIR")
                .or(env.get("STATE_DIRECTORY"))
                .unwrap_or("./data"),
        );
        let log_level = log_level(env)?;
        let output = OutputSettings::read(env)?;
        let two_way = TwoWaySettings::read(env)?;
        let service = ServiceSettings::read(env)?;
        let feeds = FeedSettings::read(env, caldav.url.is_some(), service.http_bind.is_some())?;
        Ok(Config {
            plane_base_url: plane.base_url,
            plane_web_url: plane.web_url,
            plane_api_token: plane.api_token,
            plane_workspace_slug: plane.workspace_slug,
            plane_projects: list(env, "PLANE_PROJECTS", ""),
            caldav_url: caldav.url,
            caldav_username: caldav.username,
            caldav_password: caldav.password,
            caldav_auth_type,
            caldav_ca_file: caldav.ca_file,
            sync_interval_seconds: sync.interval_seconds,
            state_dir,
            log_level,
            item_kind: output.item_kind,
            date_mode: output.date_mode,
            completed_items: output.completed_items,
            sync_assignees: list(env, "SYNC_ASSIGNEES", ""),
            sync_state_groups: sync.state_groups,
            sync_labels: list(env, "SYNC_LABELS", ""),
            max_delete_fraction: sync.max_delete_fraction,
            sync_direction: sync.direction,
            conflict_policy: two_way.conflict_policy,
            calendar_delete: two_way.calendar_delete,
            create_from_calendar: sync.create_from_calendar,
            sync_cycles: boolean(env, "SYNC_CYCLES", false)?,
            sync_modules: boolean(env, "SYNC_MODULES", false)?,
            full_reconcile_every: sync.full_reconcile_every,
            event_timezone: env.get("EVENT_TIMEZONE").unwrap_or("UTC").to_string(),
            http_timeout_seconds: service.http_timeout_seconds,
            http_bind: service.http_bind,
            plane_webhook_secret: service.plane_webhook_secret,
            api_token: service.api_token,
            enable_sync: service.enable_sync,
            log_file: service.log_file,
            feed_token: feeds.token,
            public_url: feeds.public_url,
        })
    }
}

/// The PLANE_* connection variables (PLANE_PROJECTS aside).
struct PlaneSettings {
    base_url: String,
    web_url: String,
    api_token: Secret,
    workspace_slug: String,
}

impl PlaneSettings {
    /// Reads PLANE_BASE_URL, PLANE_WEB_URL, PLANE_API_TOKEN and PLANE_WORKSPACE_SLUG.
    fn read(env: &Env) -> Result<PlaneSettings, ConfigError> {
        // Plane URLs are bases that paths are appended to: no trailing slash.
        let base_url = url(
            env,
            "PLANE_BASE_URL",
            "set it to your Plane address, e.g. https://plane.example.com",
            PLANE_USERINFO_HINT,
        )?
        .trim_end_matches('/')
        .to_string();
        let web_url = match env.get("PLANE_WEB_URL") {
            Some(_) => url(
                env,
                "PLANE_WEB_URL",
                "the address you open Plane at",
                PLANE_USERINFO_HINT,
            )?
            .trim_end_matches('/')
            .to_string(),
            None => base_url.clone(),
        };
        let api_token = env.secret("PLANE_API_TOKEN")?;
        if api_token.is_empty() {
            return Err(err(
                "PLANE_API_TOKEN",
                "is not set",
                "create one in Plane under Workspace Settings → API tokens",
            ));
        }
        let workspace_slug = env
            .get("PLANE_WORKSPACE_SLUG")
            .ok_or_else(|| {
                err(
                    "PLANE_WORKSPACE_SLUG",
                    "is not set",
                    "the workspace part of your Plane URL: https://plane.example.com/<slug>/",
                )
            })?
            .to_string();
        Ok(PlaneSettings {
            base_url,
            web_url,
            api_token,
            workspace_slug,
        })
    }
}

/// The CALDAV_* connection variables (CALDAV_AUTH_TYPE aside).
struct CaldavSettings {
    url: Option<String>,
    username: String,
    password: Secret,
    ca_file: Option<PathBuf>,
}

impl CaldavSettings {
    /// Reads CALDAV_URL, CALDAV_USERNAME, CALDAV_PASSWORD and CALDAV_CA_FILE. Without
    /// CALDAV_URL the others are not looked at (feeds only, see [`FeedSettings`]).
    fn read(env: &Env) -> Result<CaldavSettings, ConfigError> {
        if env.get("CALDAV_URL").is_none() {
            return Ok(CaldavSettings {
                url: None,
                username: String::new(),
                password: Secret::default(),
                ca_file: None,
            });
        }
        let url = Some(url(
            env,
            "CALDAV_URL",
            "your server's CalDAV address, e.g. https://cloud.example.com/remote.php/dav",
            "remove `user:password@` and set CALDAV_USERNAME and CALDAV_PASSWORD instead",
        )?);
        let username = env.get("CALDAV_USERNAME").unwrap_or("").to_string();
        let password = env.secret("CALDAV_PASSWORD")?;
        if !username.is_empty() && password.is_empty() {
            return Err(err(
                "CALDAV_PASSWORD",
                "is not set but CALDAV_USERNAME is",
                "set CALDAV_PASSWORD or CALDAV_PASSWORD_FILE (an app password on Nextcloud)",
            ));
        }
        let ca_file = env.get("CALDAV_CA_FILE").map(PathBuf::from);
        if let Some(p) = &ca_file {
            if !p.is_file() {
                return Err(err(
                    "CALDAV_CA_FILE",
                    format!("{} is not a readable file", p.display()),
                    "point it at the PEM certificate of your server or its CA",
                ));
            }
        }
        Ok(CaldavSettings {
            url,
            username,
            password,
            ca_file,
        })
    }
}

/// What a cycle syncs, how often, and the safety valve.
struct SyncSettings {
    state_groups: Vec<String>,
    max_delete_fraction: f64,
    interval_seconds: u64,
    direction: SyncDirection,
    create_from_calendar: bool,
    full_reconcile_every: u32,
}

impl SyncSettings {
    /// Reads SYNC_STATE_GROUPS, MAX_DELETE_FRACTION, SYNC_INTERVAL_SECONDS, SYNC_DIRECTION,
    /// CREATE_FROM_CALENDAR and FULL_RECONCILE_EVERY.
    fn read(env: &Env) -> Result<SyncSettings, ConfigError> {
        let state_groups = list(env, "SYNC_STATE_GROUPS", &STATE_GROUPS.join(","));
        for g in &state_groups {
            if !STATE_GROUPS.contains(&g.as_str()) {
                return Err(err(
                    "SYNC_STATE_GROUPS",
                    format!("unknown state group {g:?}"),
                    format!("use some of {}", STATE_GROUPS.join(",")),
                ));
            }
        }
        let max_delete_fraction: f64 = number(env, "MAX_DELETE_FRACTION", 0.5)?;
        if !(0.0..=1.0).contains(&max_delete_fraction) {
            return Err(err(
                "MAX_DELETE_FRACTION",
                "must be between 0 and 1",
                "1 disables the safety valve",
            ));
        }
        let interval_seconds = bounded(
            env,
            "SYNC_INTERVAL_SECONDS",
            300,
            SYNC_INTERVAL_RANGE,
            "at least 10 (Plane allows 60 API requests a minute), at most 604800 (7 days)",
        )?;
        let direction = choice(
            env,
            "SYNC_DIRECTION",
            SyncDirection::Both,
            &[
                ("both", SyncDirection::Both),
                ("plane-to-calendar", SyncDirection::PlaneToCalendar),
            ],
        )?;
        let create_from_calendar = boolean(env, "CREATE_FROM_CALENDAR", false)?;
        if create_from_calendar {
            check_create_from_calendar(env, &state_groups, direction)?;
        }
        let full_reconcile_every = number(env, "FULL_RECONCILE_EVERY", 12u32)?;
        if !(1..=MAX_FULL_RECONCILE_EVERY).contains(&full_reconcile_every) {
            return Err(err(
                "FULL_RECONCILE_EVERY",
                format!("must be between 1 and {MAX_FULL_RECONCILE_EVERY}"),
                "1 lists every work item in every cycle",
            ));
        }
        Ok(SyncSettings {
            state_groups,
            max_delete_fraction,
            interval_seconds,
            direction,
            create_from_calendar,
            full_reconcile_every,
        })
    }
}

/// CREATE_FROM_CALENDAR=true needs unfiltered new items and SYNC_DIRECTION=both.
fn check_create_from_calendar(
    env: &Env,
    state_groups: &[String],
    direction: SyncDirection,
) -> Result<(), ConfigError> {
    // A work item made from an event has no labels or assignees and Plane's default
    // state: if the filters then excluded it, its event would be deleted again.
    let filtered = !list(env, "SYNC_LABELS", "").is_empty()
        || !list(env, "SYNC_ASSIGNEES", "").is_empty()
        || !["backlog", "unstarted"]
            .iter()
            .all(|g| state_groups.iter().any(|s| s == g));
    if filtered {
        return Err(err(
            "CREATE_FROM_CALENDAR",
            "cannot be combined with SYNC_LABELS, SYNC_ASSIGNEES or SYNC_STATE_GROUPS without backlog,unstarted",
            "new work items would not pass those filters and their events would be deleted",
        ));
    }
    if direction == SyncDirection::PlaneToCalendar {
        return Err(err(
            "CREATE_FROM_CALENDAR",
            "needs SYNC_DIRECTION=both",
            "with plane-to-calendar nothing flows from the calendar to Plane",
        ));
    }
    Ok(())
}

/// CALDAV_AUTH_TYPE.
fn caldav_auth_type(env: &Env) -> Result<AuthType, ConfigError> {
    choice(
        env,
        "CALDAV_AUTH_TYPE",
        AuthType::Auto,
        &[
            ("auto", AuthType::Auto),
            ("basic", AuthType::Basic),
            ("digest", AuthType::Digest),
        ],
    )
}

/// LOG_LEVEL.
fn log_level(env: &Env) -> Result<log::LevelFilter, ConfigError> {
    choice(
        env,
        "LOG_LEVEL",
        log::LevelFilter::Info,
        &[
            ("error", log::LevelFilter::Error),
            ("warn", log::LevelFilter::Warn),
            ("warning", log::LevelFilter::Warn),
            ("info", log::LevelFilter::Info),
            ("debug", log::LevelFilter::Debug),
            ("trace", log::LevelFilter::Trace),
        ],
    )
}

/// How a work item looks in the calendar.
struct OutputSettings {
    item_kind: ItemKind,
    date_mode: DateMode,
    completed_items: CompletedItems,
}

impl OutputSettings {
    /// Reads ITEM_KIND, DATE_MODE and COMPLETED_ITEMS.
    fn read(env: &Env) -> Result<OutputSettings, ConfigError> {
        Ok(OutputSettings {
            item_kind: choice(
                env,
                "ITEM_KIND",
                ItemKind::Event,
                &[("vevent", ItemKind::Event), ("vtodo", ItemKind::Todo)],
            )?,
            date_mode: choice(
                env,
                "DATE_MODE",
                DateMode::Due,
                &[("due", DateMode::Due), ("span", DateMode::Span)],
            )?,
            completed_items: choice(
                env,
                "COMPLETED_ITEMS",
                CompletedItems::Delete,
                &[
                    ("delete", CompletedItems::Delete),
                    ("keep", CompletedItems::Keep),
                ],
            )?,
        })
    }
}

/// How calendar edits that disagree with Plane are settled.
struct TwoWaySettings {
    conflict_policy: ConflictPolicy,
    calendar_delete: CalendarDelete,
}

impl TwoWaySettings {
    /// Reads CONFLICT_POLICY and CALENDAR_DELETE.
    fn read(env: &Env) -> Result<TwoWaySettings, ConfigError> {
        Ok(TwoWaySettings {
            conflict_policy: choice(
                env,
                "CONFLICT_POLICY",
                ConflictPolicy::Plane,
                &[
                    ("plane", ConflictPolicy::Plane),
                    ("calendar", ConflictPolicy::Calendar),
                    ("newest", ConflictPolicy::Newest),
                ],
            )?,
            calendar_delete: choice(
                env,
                "CALENDAR_DELETE",
                CalendarDelete::Recreate,
                &[
                    ("recreate", CalendarDelete::Recreate),
                    ("clear-date", CalendarDelete::ClearDate),
                ],
            )?,
        })
    }
}

/// The running service: timeouts, the HTTP server and its secrets, logging.
struct ServiceSettings {
    http_timeout_seconds: u64,
    http_bind: Option<String>,
    plane_webhook_secret: Option<Secret>,
    api_token: Option<Secret>,
    enable_sync: bool,
    log_file: Option<PathBuf>,
}

impl ServiceSettings {
    /// Reads HTTP_TIMEOUT_SECONDS, HTTP_BIND, PLANE_WEBHOOK_SECRET, API_TOKEN, ENABLE_SYNC
    /// and LOG_FILE.
    fn read(env: &Env) -> Result<ServiceSettings, ConfigError> {
        Ok(ServiceSettings {
            http_timeout_seconds: bounded(
                env,
                "HTTP_TIMEOUT_SECONDS",
                30,
                HTTP_TIMEOUT_RANGE,
                "seconds per request to Plane or CalDAV, at least 1, at most 600",
            )?,
            // Set but empty disables the server; unset means the seed's default port.
            http_bind: match env.vars.get("HTTP_BIND").map(|v| v.trim()) {
                Some("") => None,
                Some(v) => Some(v.to_string()),
                None => Some("0.0.0.0:8765".to_string()),
            },
            plane_webhook_secret: Some(env.secret("PLANE_WEBHOOK_SECRET")?)
                .filter(|s| !s.is_empty()),
            api_token: Some(env.secret("API_TOKEN")?).filter(|s| !s.is_empty()),
            enable_sync: boolean(env, "ENABLE_SYNC", true)?,
            log_file: env.get("LOG_FILE").map(PathBuf::from),
        })
    }
}

/// FEED_TOKEN shorter than this is refused: it is the only lock on the feeds, and a
/// calendar URL ends up in many places (apps, sync services, browser histories).
pub const MIN_FEED_TOKEN: usize = 16;
/// How to make a good FEED_TOKEN.
const FEED_TOKEN_HINT: &str = "e.g. the output of `openssl rand -hex 16`";

/// The .ics feed settings.
struct FeedSettings {
    token: Option<Secret>,
    public_url: Option<String>,
}

impl FeedSettings {
    /// Reads FEED_TOKEN (or FEED_TOKEN_FILE) and PUBLIC_URL. Without CALDAV_URL the
    /// feeds are the whole job, so they need a token and an HTTP server.
    fn read(env: &Env, caldav: bool, http: bool) -> Result<FeedSettings, ConfigError> {
        let token = Some(env.secret("FEED_TOKEN")?).filter(|s| !s.is_empty());
        if let Some(t) = &token {
            check_feed_token(t)?;
        }
        match (caldav, &token, http) {
            (false, None, _) => {
                return Err(err(
                    "CALDAV_URL",
                    "is not set, and neither is FEED_TOKEN: there is nothing to do",
                    format!("set CALDAV_URL to sync with a CalDAV server, or FEED_TOKEN ({FEED_TOKEN_HINT}) to serve .ics feeds to subscribe to"),
                ))
            }
            (false, Some(_), false) => {
                return Err(err(
                    "HTTP_BIND",
                    "is empty, but without CALDAV_URL the .ics feeds are the only output",
                    "set HTTP_BIND (e.g. 0.0.0.0:8765), or CALDAV_URL",
                ))
            }
            _ => {}
        }
        let public_url = match env.get("PUBLIC_URL") {
            Some(_) => Some(
                url(
                    env,
                    "PUBLIC_URL",
                    "the address calendar apps reach calplanebot at, e.g. https://cal.example.com",
                    "remove `user:password@`: the feeds are protected by FEED_TOKEN",
                )?
                .trim_end_matches('/')
                .to_string(),
            ),
            None => None,
        };
        Ok(FeedSettings { token, public_url })
    }
}

/// A FEED_TOKEN goes into URLs as it is: long enough not to be guessed, and only
/// characters that need no escaping in a query string.
fn check_feed_token(token: &Secret) -> Result<(), ConfigError> {
    let t = token.expose();
    // Never echo the value: say what is wrong with it.
    if t.chars().count() < MIN_FEED_TOKEN {
        return Err(err(
            "FEED_TOKEN",
            format!("is shorter than {MIN_FEED_TOKEN} characters"),
            FEED_TOKEN_HINT,
        ));
    }
    let url_safe = |c: char| c.is_ascii_alphanumeric() || "-._~".contains(c);
    if !t.chars().all(url_safe) {
        return Err(err(
            "FEED_TOKEN",
            "may only contain letters, digits and - . _ ~ (it goes into URLs)",
            FEED_TOKEN_HINT,
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimal() -> Vec<(&'static str, &'static str)> {
        vec![
            ("PLANE_BASE_URL", "https://plane.example.com/"),
            ("PLANE_API_TOKEN", "plane_api_secret123"),
            ("PLANE_WORKSPACE_SLUG", "acme"),
            ("CALDAV_URL", "https://dav.example.com/dav"),
            ("CALDAV_USERNAME", "alice"),
            ("CALDAV_PASSWORD", "hunter2"),
        ]
    }

    #[test]
    fn minimal_config_has_seed_defaults() {
        let c = Config::from_env(&Env::from_pairs(minimal())).unwrap();
        assert_eq!(c.plane_base_url, "https://plane.example.com");
        assert_eq!(c.plane_web_url, "https://plane.example.com");
        assert_eq!(c.sync_interval_seconds, 300);
        assert_eq!(c.caldav_auth_type, AuthType::Auto);
        assert_eq!(c.item_kind, ItemKind::Event);
        assert_eq!(c.completed_items, CompletedItems::Delete);
        assert_eq!(c.sync_state_groups.len(), 5);
        assert_eq!(c.state_dir, PathBuf::from("./data"));
        assert_eq!(c.http_bind.as_deref(), Some("0.0.0.0:8765"));
        assert!(c.enable_sync && c.plane_webhook_secret.is_none());
        let mut v = minimal();
        v.push(("HTTP_BIND", ""));
        v.push(("ENABLE_SYNC", "false"));
        let c = Config::from_env(&Env::from_pairs(v)).unwrap();
        assert_eq!(c.http_bind, None);
        assert!(!c.enable_sync);
    }

    #[test]
    fn missing_and_bad_values_name_the_variable() {
        let mut v = minimal();
        v.retain(|(k, _)| *k != "PLANE_API_TOKEN");
        let e = Config::from_env(&Env::from_pairs(v)).unwrap_err();
        assert_eq!(e.variable, "PLANE_API_TOKEN");
        assert!(e.to_string().contains("API tokens"), "{e}");

        let mut v = minimal();
        v.push(("ITEM_KIND", "vjournal"));
        let e = Config::from_env(&Env::from_pairs(v)).unwrap_err();
        assert_eq!(e.variable, "ITEM_KIND");

        let mut v = minimal();
        v.push(("SYNC_STATE_GROUPS", "backlog,done"));
        assert_eq!(
            Config::from_env(&Env::from_pairs(v)).unwrap_err().variable,
            "SYNC_STATE_GROUPS"
        );

        let mut v = minimal();
        v[3] = ("CALDAV_URL", "dav.example.com");
        assert_eq!(
            Config::from_env(&Env::from_pairs(v)).unwrap_err().variable,
            "CALDAV_URL"
        );
    }

    #[test]
    fn secrets_are_masked_everywhere() {
        let env = Env::from_pairs(minimal());
        let c = Config::from_env(&env).unwrap();
        let debug = format!("{c:?}");
        assert!(
            !debug.contains("hunter2") && !debug.contains("secret123"),
            "{debug}"
        );
        let listing = format!("{:?}", env.masked_listing());
        assert!(!listing.contains("hunter2") && !listing.contains("secret123"));
        assert!(listing.contains("acme"));
    }

    #[test]
    fn secret_from_file() {
        let dir = std::env::temp_dir().join(format!("cpb-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("token");
        std::fs::write(&f, "from-file\n").unwrap();
        let path = f.to_string_lossy().to_string();
        let mut v = minimal();
        v.retain(|(k, _)| *k != "PLANE_API_TOKEN");
        v.push(("PLANE_API_TOKEN_FILE", &path));
        let c = Config::from_env(&Env::from_pairs(v.clone())).unwrap();
        assert_eq!(c.plane_api_token.expose(), "from-file");
        // An empty credential file defers to the plain variable.
        std::fs::write(&f, "\n").unwrap();
        v.push(("PLANE_API_TOKEN", "from-env"));
        let c = Config::from_env(&Env::from_pairs(v)).unwrap();
        assert_eq!(c.plane_api_token.expose(), "from-env");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn dotenv_syntax() {
        let parsed =
            parse_dotenv("# comment\nexport A=1\nB = \"two words\"\nC='x#y'\nD=v # note\n\nE=\n")
                .unwrap();
        assert_eq!(
            parsed,
            vec![
                ("A".into(), "1".into()),
                ("B".into(), "two words".into()),
                ("C".into(), "x#y".into()),
                ("D".into(), "v".into()),
                ("E".into(), "".into()),
            ]
        );
        assert_eq!(parse_dotenv("ok=1\nnot an assignment\n").unwrap_err().0, 2);
    }

    #[test]
    fn dotenv_quotes_and_inline_comments() {
        let parsed = parse_dotenv(concat!(
            "CALDAV_USERNAME=\"alice\" # the user\n",
            "S='lit $x \\t \\\\ # not a comment' # comment\n",
            "Q='Let\\'s go'\n",
            "D=\"a\\tb\\nc \\\"q\\\" \\\\ \\$HOME \\x\"\n",
            "U=plain value # note\n",
            "H=a#b\n",
            "P=#starts-with-hash\n",
            "T=\ttabbed\t\n",
        ))
        .unwrap();
        let get = |k: &str| parsed.iter().find(|(n, _)| n == k).unwrap().1.clone();
        assert_eq!(get("CALDAV_USERNAME"), "alice");
        assert_eq!(get("S"), "lit $x \\t \\\\ # not a comment");
        assert_eq!(get("Q"), "Let's go");
        assert_eq!(get("D"), "a\tb\nc \"q\" \\ $HOME \\x");
        assert_eq!(get("U"), "plain value");
        assert_eq!(get("H"), "a#b");
        assert_eq!(get("P"), "#starts-with-hash");
        assert_eq!(get("T"), "tabbed");
    }

    #[test]
    fn dotenv_line_ends_bom_export_and_multiline() {
        let want: Vec<(String, String)> =
            vec![("A".into(), "1".into()), ("B".into(), "two".into())];
        for text in [
            "\u{feff}A=1\nB=two\n",
            "A=1\r\nB=two\r\n",
            "A=1\rB=two\r",
            "export A=1\nexport\tB=two",
            "# c\r\rA=1\r# c\rB=two",
        ] {
            assert_eq!(parse_dotenv(text).unwrap(), want, "{text:?}");
        }
        // `export` alone is a variable name, not the prefix.
        assert_eq!(
            parse_dotenv("export=1").unwrap(),
            vec![("export".to_string(), "1".to_string())]
        );
        let pem = parse_dotenv("K=\"line1\nline2\"\nN=2\n").unwrap();
        assert_eq!(pem[0].1, "line1\nline2");
        assert_eq!(pem[1], ("N".to_string(), "2".to_string()));
    }

    #[test]
    fn dotenv_errors_name_the_line() {
        assert_eq!(parse_dotenv("A=1\nB=\"open\nC=3\n").unwrap_err().0, 2);
        let (line, msg) = parse_dotenv("A=1\n\nB=\"x\" y\n").unwrap_err();
        assert_eq!(line, 3);
        assert!(msg.contains("after the closing"), "{msg}");
        assert_eq!(parse_dotenv("A B=1").unwrap_err().0, 1);
    }

    #[test]
    fn urls_keep_their_path_and_accept_any_scheme_case() {
        let mut v = minimal();
        v[3] = ("CALDAV_URL", "HTTP://host:8008/dav/");
        v[0] = ("PLANE_BASE_URL", "HttpS://plane.example.com/");
        let c = Config::from_env(&Env::from_pairs(v)).unwrap();
        assert_eq!(c.caldav_url.as_deref(), Some("http://host:8008/dav/"));
        assert_eq!(c.plane_base_url, "https://plane.example.com");
        for bad in ["ftp://h/", "http://", "http:///dav", "host/dav"] {
            let mut v = minimal();
            v[3] = ("CALDAV_URL", bad);
            let e = Config::from_env(&Env::from_pairs(v)).unwrap_err();
            assert_eq!(e.variable, "CALDAV_URL", "{bad}: {e}");
        }
    }

    #[test]
    fn userinfo_in_urls_is_refused_without_echoing_it() {
        for (i, name) in [(0, "PLANE_BASE_URL"), (3, "CALDAV_URL")] {
            let mut v = minimal();
            v[i] = (name, "https://bob:s3cr3t@example.com/x");
            let e = Config::from_env(&Env::from_pairs(v)).unwrap_err();
            assert_eq!(e.variable, name);
            let text = e.to_string();
            assert!(!text.contains("s3cr3t") && !text.contains("bob"), "{text}");
            assert!(text.contains("https://****@example.com/x"), "{text}");
        }
        let mut v = minimal();
        v.push(("PLANE_WEB_URL", "https://u:p@web.example.com"));
        let e = Config::from_env(&Env::from_pairs(v)).unwrap_err();
        assert_eq!(e.variable, "PLANE_WEB_URL");
        // `config` lists raw values: the user info is masked there too.
        let mut v = minimal();
        v[0] = ("PLANE_BASE_URL", "http://bob:s3cr3t@plane.local:8080/");
        let listing = format!("{:?}", Env::from_pairs(v).masked_listing());
        assert!(!listing.contains("s3cr3t") && !listing.contains("bob"));
        assert!(
            listing.contains("http://****@plane.local:8080/"),
            "{listing}"
        );
        assert_eq!(mask_userinfo("https://h/a@b"), "https://h/a@b");
        assert_eq!(mask_userinfo("alice:pw@h/dav"), "****@h/dav");
    }

    #[test]
    fn numbers_have_named_bounds() {
        let cases = [
            ("SYNC_INTERVAL_SECONDS", "18446744073709551615", false),
            ("SYNC_INTERVAL_SECONDS", "9", false),
            ("SYNC_INTERVAL_SECONDS", "604800", true),
            ("SYNC_INTERVAL_SECONDS", "604801", false),
            ("HTTP_TIMEOUT_SECONDS", "18446744073709551615", false),
            ("HTTP_TIMEOUT_SECONDS", "0", false),
            ("HTTP_TIMEOUT_SECONDS", "1", true),
            ("HTTP_TIMEOUT_SECONDS", "600", true),
            ("HTTP_TIMEOUT_SECONDS", "601", false),
            ("HTTP_TIMEOUT_SECONDS", "99999999999999999999999", false),
            ("HTTP_TIMEOUT_SECONDS", "-1", false),
            ("FULL_RECONCILE_EVERY", "4294967295", false),
            ("FULL_RECONCILE_EVERY", "10000", true),
        ];
        for (name, value, ok) in cases {
            let mut v = minimal();
            v.push((name, value));
            match Config::from_env(&Env::from_pairs(v)) {
                Ok(_) => assert!(ok, "{name}={value} accepted"),
                Err(e) => {
                    assert!(!ok, "{name}={value}: {e}");
                    assert_eq!(e.variable, name);
                }
            }
        }
    }

    #[test]
    fn two_way_settings() {
        let c = Config::from_env(&Env::from_pairs(minimal())).unwrap();
        assert_eq!(c.sync_direction, SyncDirection::Both);
        assert_eq!(c.conflict_policy, ConflictPolicy::Plane);
        assert_eq!(c.calendar_delete, CalendarDelete::Recreate);
        assert!(!c.create_from_calendar);
        assert!(
            !c.sync_cycles && !c.sync_modules,
            "cycles and modules are opt-in"
        );
        assert_eq!(c.full_reconcile_every, 12);
        assert_eq!(c.event_timezone, "UTC");
        let mut v = minimal();
        v.extend([
            ("SYNC_DIRECTION", "plane-to-calendar"),
            ("CONFLICT_POLICY", "Newest"),
            ("CALENDAR_DELETE", "clear-date"),
            ("FULL_RECONCILE_EVERY", "1"),
            ("EVENT_TIMEZONE", "Europe/Berlin"),
        ]);
        let c = Config::from_env(&Env::from_pairs(v)).unwrap();
        assert_eq!(c.sync_direction, SyncDirection::PlaneToCalendar);
        assert_eq!(c.conflict_policy, ConflictPolicy::Newest);
        assert_eq!(c.calendar_delete, CalendarDelete::ClearDate);
        assert_eq!(c.full_reconcile_every, 1);
        assert_eq!(c.event_timezone, "Europe/Berlin");

        for (bad, var) in [
            (vec![("CONFLICT_POLICY", "mine")], "CONFLICT_POLICY"),
            (vec![("FULL_RECONCILE_EVERY", "0")], "FULL_RECONCILE_EVERY"),
            (
                vec![("CREATE_FROM_CALENDAR", "true"), ("SYNC_LABELS", "bug")],
                "CREATE_FROM_CALENDAR",
            ),
            (
                vec![
                    ("CREATE_FROM_CALENDAR", "true"),
                    ("SYNC_DIRECTION", "plane-to-calendar"),
                ],
                "CREATE_FROM_CALENDAR",
            ),
        ] {
            let mut v = minimal();
            v.extend(bad);
            let e = Config::from_env(&Env::from_pairs(v)).unwrap_err();
            assert_eq!(e.variable, var, "{e}");
        }
        let mut v = minimal();
        v.extend([("SYNC_CYCLES", "true"), ("SYNC_MODULES", "1")]);
        let c = Config::from_env(&Env::from_pairs(v)).unwrap();
        assert!(c.sync_cycles && c.sync_modules);
        let mut v = minimal();
        v.push(("SYNC_MODULES", "sometimes"));
        let e = Config::from_env(&Env::from_pairs(v)).unwrap_err();
        assert_eq!(e.variable, "SYNC_MODULES", "{e}");
        let mut v = minimal();
        v.push(("CREATE_FROM_CALENDAR", "yes"));
        assert!(
            Config::from_env(&Env::from_pairs(v))
                .unwrap()
                .create_from_calendar
        );
    }

    #[test]
    fn feeds_only_without_caldav_url() {
        const TOKEN: &str = "0123456789abcdef0123";
        let mut v = minimal();
        v.retain(|(k, _)| !k.starts_with("CALDAV_"));
        let e = Config::from_env(&Env::from_pairs(v.clone())).unwrap_err();
        assert_eq!(e.variable, "CALDAV_URL");
        assert!(e.to_string().contains("FEED_TOKEN"), "{e}");
        assert!(!e.to_string().contains('\n'), "one line: {e}");

        v.push(("FEED_TOKEN", TOKEN));
        let c = Config::from_env(&Env::from_pairs(v.clone())).unwrap();
        assert_eq!(c.mode(), Mode::FeedsOnly);
        assert_eq!(c.caldav_url, None);
        assert!(!format!("{c:?}").contains(TOKEN), "masked in Debug");
        let listing = format!("{:?}", Env::from_pairs(v.clone()).masked_listing());
        assert!(!listing.contains(TOKEN), "masked in `config`");
        assert!(Env::from_pairs(v.clone())
            .mode_hint()
            .starts_with("feeds only"));

        let mut no_http = v.clone();
        no_http.push(("HTTP_BIND", ""));
        let e = Config::from_env(&Env::from_pairs(no_http)).unwrap_err();
        assert_eq!(e.variable, "HTTP_BIND");

        for bad in ["tiny1", "0123456789abcdef0123?x", "0123456789abcdef 0123"] {
            let mut b = v.clone();
            b.retain(|(k, _)| *k != "FEED_TOKEN");
            b.push(("FEED_TOKEN", bad));
            let e = Config::from_env(&Env::from_pairs(b)).unwrap_err();
            assert_eq!(e.variable, "FEED_TOKEN");
            assert!(!e.to_string().contains(bad), "never echoed: {e}");
        }

        let mut p = v.clone();
        p.push(("PUBLIC_URL", "https://cal.example.com/plane/"));
        let c = Config::from_env(&Env::from_pairs(p)).unwrap();
        assert_eq!(
            c.public_url.as_deref(),
            Some("https://cal.example.com/plane")
        );

        let mut both = minimal();
        assert_eq!(
            Config::from_env(&Env::from_pairs(both.clone()))
                .unwrap()
                .mode(),
            Mode::CalDav { feeds: false }
        );
        both.push(("FEED_TOKEN", TOKEN));
        assert_eq!(
            Config::from_env(&Env::from_pairs(both)).unwrap().mode(),
            Mode::CalDav { feeds: true }
        );
    }

    #[test]
    fn unknown_variables_are_reported() {
        let mut v = minimal();
        v.push(("CALDAV_PASWORD", "typo"));
        v.push(("PLANE_API_TOKEN_FILE", "/x"));
        v.push(("EVENT_TIMEZONE", "Europe/Berlin"));
        v.push(("HOME", "/root"));
        assert_eq!(
            Env::from_pairs(v).unknown_variables(),
            vec!["CALDAV_PASWORD".to_string()]
        );
    }
}
