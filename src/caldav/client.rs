//! The CalDAV client: discovery, calendar listing, MKCALENDAR, object listing, multiget,
//! conditional PUT and DELETE, and the cheap change checks (ctag, RFC 6578
//! sync-collection). I/O only — it knows nothing of Plane or of sync.
//!
//! Hrefs are handled as absolute paths (`/calendars/alice/work/x.ics`); servers may answer
//! with full URLs or other percent-encodings, which [`path_of`] and [`same_href`] absorb.

use std::collections::{BTreeMap, HashSet};
use std::thread::sleep;
use std::time::Duration;

use ureq::http::{Method, Request};

use super::auth::{self, Challenge, DigestSession};
use super::href::{normalize_etag, parent_of, same_collection, split_url, with_slash};
// Kept public here for the callers that predate `caldav::href`.
pub use super::href::{path_of, percent_decode, percent_encode_segment, same_href};
use super::{DavError, SyncRefusal};
use crate::config::{AuthType, Secret};
use crate::davxml::{self, Element, CALDAV, CALSERVER, DAV};
use crate::http::{read_body, BodyError, Overflow, Text};

/// Largest PROPFIND or REPORT answer read, in bytes. A listing costs ~300 bytes per
/// object, so 32 MiB is ~100,000 objects in one calendar; a multiget of 100 objects is
/// far smaller unless the objects are huge (then it is split, see
/// [`CalDavClient::multiget`]). Peak memory stays within ~2x the body: the answer is
/// read into one buffer of its announced size and parsed one `<response>` at a time.
pub const MAX_MULTISTATUS_BYTES: u64 = 32 * 1024 * 1024;

/// Largest calendar object read with GET, in bytes. Events are a few KB; 8 MiB leaves
/// room for inline attachments (ATTACH;ENCODING=BASE64) without letting one object
/// exhaust a small device's memory.
pub const MAX_OBJECT_BYTES: u64 = 8 * 1024 * 1024;

/// How much of any other answer (error pages, PUT/DELETE/MKCALENDAR replies) is read: only
/// its first line is ever shown.
pub const MAX_OTHER_BODY_BYTES: u64 = 64 * 1024;

/// Where the user's calendars live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovery {
    /// The principal, when the server names one.
    pub principal: Option<String>,
    /// The calendar home: the collection that holds the user's calendars.
    pub home: String,
}

/// A calendar collection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Calendar {
    /// Path of the collection, ending in `/`.
    pub href: String,
    /// `displayname`, if any.
    pub display_name: Option<String>,
    /// Supported components (`VEVENT`, `VTODO`); empty when the server does not say.
    pub components: Vec<String>,
    /// `CS:getctag`, changes whenever anything in the calendar changes.
    pub ctag: Option<String>,
    /// `DAV:sync-token`, when the server supports sync-collection.
    pub sync_token: Option<String>,
}

/// A calendar object as listed: where it is and its current version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    /// Path of the object.
    pub href: String,
    /// Its ETag (normalised to the quoted form).
    pub etag: Option<String>,
}

/// A calendar object with its iCalendar text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectData {
    /// Path of the object.
    pub href: String,
    /// Its ETag.
    pub etag: Option<String>,
    /// The iCalendar text; empty for an object that could not be read (bytes that are
    /// not UTF-8, or too large), which an error line has named.
    pub ical: String,
}

/// The precondition of a PUT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition<'a> {
    /// `If-None-Match: *` — create only; an existing object answers 412.
    Create,
    /// `If-Match: etag` — replace only the version we read.
    Replace(&'a str),
}

/// The result of a conditional write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Written; the new ETag when the server told us or we could read it.
    Written(Option<String>),
    /// 412: the object exists (Create) or changed (Replace).
    PreconditionFailed,
    /// 404: nothing there (DELETE only).
    NotFound,
}

/// What a calendar collection says about its own version (one Depth-0 PROPFIND). Each
/// value is opaque: compare it with the one seen last, nothing more.
///
/// Seen on real servers: Radicale and Xandikos give all three (Radicale's ctag is its
/// collection ETag, Xandikos' ctag is its sync-token); both hash the content, so a ctag
/// can come back to an earlier value when the members do. SabreDAV 1.8 gives only a ctag,
/// a counter that grows by one per write.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CollectionState {
    /// `CS:getctag`: changes whenever anything in the calendar changes.
    pub ctag: Option<String>,
    /// `DAV:sync-token` (RFC 6578): present when the server supports sync-collection.
    pub sync_token: Option<String>,
    /// The collection's own `DAV:getetag` (normalised to the quoted form).
    pub etag: Option<String>,
}

/// What changed in a calendar since a sync token (RFC 6578 sync-collection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncDelta {
    /// The token to send next time.
    pub token: String,
    /// Members created or modified since the old token, with their new ETags (all members
    /// on an initial sync).
    pub changed: Vec<ObjectRef>,
    /// Paths of members removed since the old token, as the server wrote them.
    pub removed: Vec<String>,
    /// The server sent only part of the changes (RFC 6578 §3.6): ask again with `token`.
    pub truncated: bool,
}

/// Request counts by method, for summaries, tests and benchmarks.
pub type DavStats = BTreeMap<String, u32>;

enum AuthState {
    None,
    Basic,
    Digest(DigestSession),
}

/// A response with everything we read from it.
struct DavResponse {
    status: u16,
    etag: Option<String>,
    location: Option<String>,
    challenges: Vec<String>,
    body: Text,
}

/// A client for one CalDAV account.
pub struct CalDavClient {
    agent: ureq::Agent,
    /// `scheme://host[:port]`, no trailing slash.
    origin: String,
    /// The path the user configured.
    start_path: String,
    username: String,
    password: Secret,
    auth_type: AuthType,
    auth: AuthState,
    /// Requests sent, by method.
    pub stats: DavStats,
}

/// Parts of one `<response>` of a multistatus.
#[derive(Debug, Clone)]
struct MsResponse {
    href: String,
    /// Status of the whole response (used by multiget for missing hrefs).
    status: Option<u16>,
    /// Properties that came with a 2xx propstat.
    props: Vec<Element>,
    /// Where its source held bytes that were not UTF-8 (a byte offset in the body).
    damage: Option<usize>,
}

impl MsResponse {
    fn prop(&self, ns: &str, name: &str) -> Option<&Element> {
        self.props.iter().find(|p| p.is(ns, name))
    }
    fn text(&self, ns: &str, name: &str) -> Option<String> {
        self.prop(ns, name)
            .map(|p| p.text_trimmed().to_string())
            .filter(|t| !t.is_empty())
    }
    fn href_prop(&self, ns: &str, name: &str) -> Option<String> {
        self.prop(ns, name)
            .and_then(|p| p.child(DAV, "href"))
            .map(|h| h.text_trimmed().to_string())
    }
    fn is_collection(&self) -> bool {
        self.prop(DAV, "resourcetype")
            .is_some_and(|r| r.child(DAV, "collection").is_some())
    }
    fn is_calendar(&self) -> bool {
        self.prop(DAV, "resourcetype")
            .is_some_and(|r| r.child(CALDAV, "calendar").is_some())
    }
}

/// A calendar as a home listing describes it.
fn calendar_of(r: MsResponse) -> Calendar {
    Calendar {
        display_name: r.text(DAV, "displayname"),
        components: r
            .prop(CALDAV, "supported-calendar-component-set")
            .map(|set| {
                set.children_named(CALDAV, "comp")
                    .filter_map(|c| c.attr("name").map(str::to_ascii_uppercase))
                    .collect()
            })
            .unwrap_or_default(),
        ctag: r.text(CALSERVER, "getctag"),
        sync_token: r.text(DAV, "sync-token"),
        href: with_slash(r.href),
    }
}

/// What a PROPFIND found where a calendar was to be made.
enum Existing {
    /// Nothing.
    Nothing,
    /// A calendar with our display name: ours.
    Ours,
    /// Something else.
    Other,
}

/// Whether a failed MKCALENDAR says the name is taken (then asking again is pointless).
fn is_taken(e: &DavError) -> bool {
    matches!(
        e,
        DavError::Status {
            status: 405 | 409,
            ..
        }
    )
}

/// The error for an object whose bytes are not UTF-8.
fn not_utf8(href: &str, at: usize) -> DavError {
    malformed(
        href,
        format!("the object holds bytes that are not UTF-8 (near byte {at}); left unread and unchanged (hint: open and save it again in a calendar app)"),
    )
}

/// The object in one `<response>` of a multiget or calendar-query answer (`None` when it
/// carries no data). One whose bytes were not UTF-8, or that is larger than
/// [`MAX_OBJECT_BYTES`], is named in an error line and comes back [`set_aside`].
fn object_data(calendar: &str, r: MsResponse) -> Option<ObjectData> {
    let etag = r.text(DAV, "getetag").and_then(|e| normalize_etag(&e));
    if let Some(at) = r.damage {
        log::error!("{calendar}: {}", not_utf8(&r.href, at));
        return Some(set_aside(r.href, etag));
    }
    let ical = r
        .props
        .into_iter()
        .find(|p| p.is(CALDAV, "calendar-data"))?
        .text;
    if ical.len() as u64 > MAX_OBJECT_BYTES {
        log::error!(
            "{calendar}: {} holds {} MiB of calendar data, more than the {} MiB calplanebot reads; left unread and unchanged",
            r.href,
            ical.len() >> 20,
            MAX_OBJECT_BYTES >> 20
        );
        return Some(set_aside(r.href, etag));
    }
    Some(ObjectData {
        href: r.href,
        etag,
        ical,
    })
}

/// An object that exists but could not be read: its text is empty, which is no valid
/// iCalendar, so the sync leaves it unchanged and says so (naming the href) instead of
/// taking it for deleted and writing it again.
fn set_aside(href: String, etag: Option<String>) -> ObjectData {
    ObjectData {
        href,
        etag,
        ical: String::new(),
    }
}

/// RFC 6764's entry point for CalDAV.
const WELL_KNOWN: &str = "/.well-known/caldav";

/// What one discovery PROPFIND said about a URL.
#[derive(Debug, Clone)]
struct Probe {
    /// The path that answered (after redirects).
    path: String,
    /// `current-user-principal`'s href.
    principal: Option<String>,
    /// `calendar-home-set`'s href.
    home_set: Option<String>,
    /// `current-user-principal` was `<unauthenticated/>`: the server did not know us.
    unauthenticated: bool,
    /// It is a collection.
    collection: bool,
    /// It is a calendar.
    calendar: bool,
}

impl Probe {
    fn of(path: String, me: &MsResponse) -> Probe {
        Probe {
            principal: me
                .href_prop(DAV, "current-user-principal")
                .map(|p| path_of(&p)),
            home_set: me
                .href_prop(CALDAV, "calendar-home-set")
                .map(|h| path_of(&h)),
            unauthenticated: me
                .prop(DAV, "current-user-principal")
                .is_some_and(|p| p.child(DAV, "unauthenticated").is_some()),
            collection: me.is_collection(),
            calendar: me.is_calendar(),
            path,
        }
    }
}

/// Why no calendar home was found, with what to do about it.
fn no_home_message(first: &Probe, last: &Probe, username: &str) -> String {
    let hint = if (first.unauthenticated || last.unauthenticated) && username.is_empty() {
        "the server did not ask for a login but does not know who you are: set CALDAV_USERNAME and CALDAV_PASSWORD"
    } else if last.unauthenticated {
        "the server still calls us unauthenticated: check CALDAV_USERNAME, CALDAV_PASSWORD and CALDAV_AUTH_TYPE"
    } else {
        "set CALDAV_URL to your calendar home, e.g. https://host/dav/calendars/user/NAME/"
    };
    format!(
        "{} is not a collection and names no calendar home (hint: {hint})",
        first.path
    )
}

fn propfind_body(props: &[(&str, &str)]) -> String {
    let mut prop = Element::new(DAV, "prop");
    for (ns, name) in props {
        prop = prop.with_child(Element::new(ns, name));
    }
    Element::new(DAV, "propfind").with_child(prop).to_xml()
}

fn malformed(path: &str, message: String) -> DavError {
    DavError::Malformed {
        path: path.to_string(),
        message,
    }
}

/// Reads a 207 multistatus one `<response>` at a time (the document is never held as a
/// whole tree), handing each to `f` with only its 2xx properties. A `<response>` whose
/// source held bytes that were not UTF-8 comes with `damaged` set. Returns the root
/// element (childless: its `<sync-token>` and other non-response children are kept on
/// [`Multistatus::extra`]).
fn each_response(
    path: &str,
    body: &Text,
    f: &mut dyn FnMut(MsResponse),
) -> Result<Multistatus, DavError> {
    let mut extra = Vec::new();
    let mut failure: Option<DavError> = None;
    let mut visit = |root: &Element, child: Element, span: std::ops::Range<usize>| {
        if failure.is_some() || !root.is(DAV, "multistatus") {
            return;
        }
        if !child.is(DAV, "response") {
            extra.push(child);
            return;
        }
        match MsResponse::read(path, child, body.damage_in(span)) {
            Ok(r) => f(r),
            Err(e) => failure = Some(e),
        }
    };
    let root = davxml::parse_streaming(&body.text, &mut visit)
        .map_err(|e| malformed(path, format!("invalid XML: {e}")))?;
    if !root.is(DAV, "multistatus") {
        return Err(malformed(
            path,
            format!("expected a DAV multistatus, got <{}>", root.name),
        ));
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(Multistatus { extra }),
    }
}

/// What a multistatus holds besides its responses.
struct Multistatus {
    /// Children of the root other than `<response>` (e.g. `<sync-token>`).
    extra: Vec<Element>,
}

/// Every `<response>` of a 207 body.
fn parse_multistatus(path: &str, body: &Text) -> Result<Vec<MsResponse>, DavError> {
    let mut out = Vec::new();
    each_response(path, body, &mut |r| out.push(r))?;
    Ok(out)
}

impl MsResponse {
    /// One `<response>` element, hrefs reduced to paths; `damage` is where its source held
    /// bytes that were not UTF-8.
    fn read(path: &str, r: Element, damage: Option<usize>) -> Result<MsResponse, DavError> {
        let mut href = None;
        let mut status = None;
        let mut props = Vec::new();
        for c in r.children {
            if c.is(DAV, "href") && href.is_none() {
                href = Some(c.text_trimmed().to_string());
            } else if c.is(DAV, "status") {
                status = status_code(c.text_trimmed());
            } else if c.is(DAV, "propstat") {
                let ok = c
                    .child(DAV, "status")
                    .and_then(|s| status_code(s.text_trimmed()))
                    .is_some_and(|c| (200..300).contains(&c));
                if let (true, Some(prop)) = (ok, c.children.into_iter().find(|p| p.is(DAV, "prop")))
                {
                    props.extend(prop.children);
                }
            }
        }
        let Some(href) = href else {
            return Err(malformed(path, "a <response> without <href>".into()));
        };
        Ok(MsResponse {
            href: path_of(&href),
            status,
            props,
            damage,
        })
    }
}

/// What one `<response>` of a sync-collection answer means (RFC 6578 §3.5).
#[derive(Debug, Clone, PartialEq, Eq)]
enum SyncEntry {
    /// A member created or modified.
    Changed(ObjectRef),
    /// A member removed: status 404 and no propstat.
    Removed(String),
    /// 507 on the request-URI: more changes than the server sent (§3.6).
    Truncated,
    /// The collection itself, a sub-collection, or a status we do not act on.
    Skipped,
}

fn sync_entry(calendar: &str, r: MsResponse) -> SyncEntry {
    match r.status {
        // RFC 6578 puts the 507 on the request-URI; some servers write that href in another
        // form, and a 507 means nothing else on a member, so any 507 is a truncation.
        Some(507) => SyncEntry::Truncated,
        // Some servers (iCloud, per other clients' notes) list the collection itself, with
        // an ETag, among the changes; calendar objects never end in `/`, collections do.
        _ if r.href.ends_with('/') || same_collection(&r.href, calendar) => SyncEntry::Skipped,
        Some(404) => SyncEntry::Removed(r.href),
        None | Some(200..=299) => SyncEntry::Changed(ObjectRef {
            etag: r.text(DAV, "getetag").and_then(|e| normalize_etag(&e)),
            href: r.href,
        }),
        Some(status) => {
            log::debug!("sync-collection {calendar}: {} has status {status}", r.href);
            SyncEntry::Skipped
        }
    }
}

/// Reads the 207 answer to a sync-collection REPORT on `calendar`.
fn parse_sync_collection(calendar: &str, body: &Text) -> Result<SyncDelta, DavError> {
    let mut delta = SyncDelta {
        token: String::new(),
        changed: Vec::new(),
        removed: Vec::new(),
        truncated: false,
    };
    let ms = each_response(calendar, body, &mut |r| {
        warn_damaged(calendar, &r);
        match sync_entry(calendar, r) {
            SyncEntry::Changed(object) => delta.changed.push(object),
            SyncEntry::Removed(href) => delta.removed.push(href),
            SyncEntry::Truncated => delta.truncated = true,
            SyncEntry::Skipped => {}
        }
    })?;
    delta.token = ms
        .extra
        .iter()
        .find(|e| e.is(DAV, "sync-token"))
        .map(|t| t.text_trimmed().to_string())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            malformed(
                calendar,
                "a sync-collection answer without <sync-token>".into(),
            )
        })?;
    Ok(delta)
}

/// A listing entry whose bytes were not all UTF-8 is kept (its href and ETag are what
/// matter, and a changed ETag only makes us read the object, which is then set aside if
/// it is damaged) but named in the log.
fn warn_damaged(path: &str, r: &MsResponse) {
    if let Some(at) = r.damage {
        log::warn!(
            "{path}: the server's entry for {} holds bytes that are not UTF-8 (near byte {at}); read with replacement characters",
            r.href
        );
    }
}

/// The precondition elements of a `DAV:error` body (RFC 4918 §16); none for other bodies.
fn error_conditions(body: &str) -> Vec<Element> {
    davxml::parse(body)
        .ok()
        .filter(|e| e.is(DAV, "error"))
        .map(|e| e.children)
        .unwrap_or_default()
}

/// Whether a refused sync-collection REPORT is one the caller recovers from by a full
/// listing, and why. `token_sent`: the request carried a token (not an initial sync).
///
/// Answers seen to a token the server does not know ("http://radicale.org/ns/sync/garbage",
/// "data:,bogus", "1", a token of another calendar; tests/caldav_sync.rs):
/// - Radicale 3 (also behind the Apache Digest proxy): 403 `<valid-sync-token/>`.
/// - Xandikos: 412 `<valid-sync-token/>` plus a `responsedescription`.
/// - SabreDAV 1.8 does not implement sync-collection: 403 with `<d:supported-report/>` (after
///   a Sabre `s:exception` element), with or without a token.
///
/// RFC 6578 §3.2 asks for 403 or 409 with `valid-sync-token`; servers also answer 412
/// (Xandikos), 400 or a bare 403, so with a token those statuses count too. A wrong guess
/// costs one full listing, which fails on its own if the calendar is really unreadable.
fn sync_refusal(status: u16, body: &str, token_sent: bool) -> Option<SyncRefusal> {
    let conditions = error_conditions(body);
    let has = |name: &str| conditions.iter().any(|c| c.is(DAV, name));
    if has("valid-sync-token") {
        Some(SyncRefusal::InvalidToken)
    } else if has("supported-report") || matches!(status, 405 | 501) {
        Some(SyncRefusal::Unsupported)
    } else if token_sent && matches!(status, 400 | 403 | 409 | 412) {
        Some(SyncRefusal::InvalidToken)
    } else {
        None
    }
}

/// Whether a request may be sent again after a lost answer: reads, and writes that a
/// precondition makes fail the second time instead of happening twice.
fn is_repeatable(method: &str, headers: &[(&str, &str)]) -> bool {
    is_read(method)
        || headers.iter().any(|(k, _)| {
            k.eq_ignore_ascii_case("if-match") || k.eq_ignore_ascii_case("if-none-match")
        })
}

/// Whether an answer is worth asking again: a gateway's 502–504 for any repeatable request,
/// and a 500 for a read. Radicale answers a `Depth: 1` PROPFIND with 500 when another
/// client deletes a sibling collection while it lists the home (its storage reads a
/// directory that is gone by then; reproduced with MKCALENDAR/DELETE in a loop beside
/// PROPFIND: 3 of 300 listings failed). A read changes nothing, so asking again is safe; a
/// write's 500 is reported, since the server may have stored it.
fn is_transient_status(method: &str, status: u16) -> bool {
    matches!(status, 502..=504) || (status == 500 && is_read(method))
}

/// Whether a method only reads: sending it again changes nothing.
fn is_read(method: &str) -> bool {
    matches!(method, "GET" | "HEAD" | "OPTIONS" | "PROPFIND" | "REPORT")
}

/// How much of an answer is read: a multistatus or an object in full up to its limit
/// (refused beyond), anything else only its start (error pages are shown in one line).
fn body_limit(method: &str, status: u16) -> (u64, Overflow) {
    match (method, status) {
        ("PROPFIND" | "REPORT", 207) => (MAX_MULTISTATUS_BYTES, Overflow::Refuse),
        ("GET", 200..=299) => (MAX_OBJECT_BYTES, Overflow::Refuse),
        _ => (MAX_OTHER_BODY_BYTES, Overflow::Truncate),
    }
}

/// `HTTP/1.1 200 OK` → 200.
fn status_code(line: &str) -> Option<u16> {
    line.split_whitespace().nth(1)?.parse().ok()
}

impl CalDavClient {
    /// A client for the account at `url` (any URL discovery can start from).
    pub fn new(
        url: &str,
        username: &str,
        password: Secret,
        auth_type: AuthType,
        timeout: Duration,
        ca_file: Option<&std::path::Path>,
    ) -> Result<CalDavClient, DavError> {
        let (origin, start_path) = split_url(url)
            .ok_or_else(|| DavError::Setup(format!("{url:?} is not an http(s) URL")))?;
        // The agent fails only on the CA file.
        let agent = crate::http::agent(timeout, ca_file)
            .map_err(|e| DavError::Setup(format!("CALDAV_CA_FILE: {e}")))?;
        let auth = match (username.is_empty(), auth_type) {
            (true, _) => AuthState::None,
            // Basic is sent up front when configured: saves a 401 round trip per request.
            (false, AuthType::Basic) => AuthState::Basic,
            (false, _) => AuthState::None,
        };
        Ok(CalDavClient {
            agent,
            origin,
            start_path,
            username: username.to_string(),
            password,
            auth_type,
            auth,
            stats: DavStats::new(),
        })
    }

    /// The client the configuration describes.
    /// Without CALDAV_URL (feeds only) there is no server to talk to: a configuration
    /// error.
    pub fn from_config(config: &crate::config::Config) -> Result<CalDavClient, DavError> {
        let Some(url) = &config.caldav_url else {
            return Err(DavError::Setup(
                "CALDAV_URL is not set: calplanebot serves .ics feeds only (hint: set CALDAV_URL to use a CalDAV server)".into(),
            ));
        };
        Self::new(
            url,
            &config.caldav_username,
            config.caldav_password.clone(),
            config.caldav_auth_type,
            Duration::from_secs(config.http_timeout_seconds),
            config.caldav_ca_file.as_deref(),
        )
    }

    /// Total requests sent.
    pub fn request_count(&self) -> u32 {
        self.stats.values().sum()
    }

    /// Finds the calendar home from the configured URL: follows redirects and
    /// `/.well-known/caldav`, then `current-user-principal` → `calendar-home-set`.
    /// A URL that is itself a calendar yields its parent as home; a URL that names no
    /// home is accepted as the home only when it is a collection.
    ///
    /// With a user name set, a server that answers without asking for a login and calls
    /// us `<unauthenticated/>` (Cyrus IMAP on `/`) is asked again logged in: first through
    /// `/.well-known/caldav` (whose target asks for a login on Cyrus), then by sending the
    /// credentials unasked (Basic; a Digest server answers that with its challenge).
    pub fn discover(&mut self) -> Result<Discovery, DavError> {
        let start = self.start_path.clone();
        let first = self.probe(&start)?;
        if let Some(d) = self.discovery_from(&first)? {
            return Ok(d);
        }
        if first.collection && !first.unauthenticated {
            // A home collection on a server without current-user-principal.
            return Ok(Discovery {
                principal: None,
                home: with_slash(first.path),
            });
        }
        let mut last = first.clone();
        if first.path != WELL_KNOWN {
            // RFC 6764 §5; on Cyrus the redirect target asks for a login, which send()
            // answers.
            match self.probe(WELL_KNOWN) {
                Ok(p) => match self.discovery_from(&p)? {
                    Some(d) => return Ok(d),
                    None => last = p,
                },
                Err(e @ DavError::Auth(_)) => return Err(e),
                Err(e) => log::debug!("{WELL_KNOWN}: {e}"),
            }
        }
        let anonymous = matches!(self.auth, AuthState::None);
        if anonymous && !self.username.is_empty() && self.auth_type != AuthType::Digest {
            log::info!(
                "{}: the server answered without asking for a login; sending CALDAV_USERNAME unasked",
                first.path
            );
            self.auth = AuthState::Basic;
        }
        if !matches!(self.auth, AuthState::None) && anonymous {
            // Logged in now: what does the configured URL say to us?
            let again = self.probe(&start)?;
            if let Some(d) = self.discovery_from(&again)? {
                return Ok(d);
            }
            last = again;
        }
        if first.collection {
            return Ok(Discovery {
                principal: None,
                home: with_slash(first.path.clone()),
            });
        }
        Err(DavError::Discovery(no_home_message(
            &first,
            &last,
            &self.username,
        )))
    }

    /// One Depth-0 PROPFIND for the discovery properties at `path`, following redirects
    /// on this server; on `/`, a 404 or 405 leads to `/.well-known/caldav`.
    fn probe(&mut self, path: &str) -> Result<Probe, DavError> {
        let props = [
            (DAV, "current-user-principal"),
            (CALDAV, "calendar-home-set"),
            (DAV, "resourcetype"),
        ];
        let mut path = path.to_string();
        let mut tried_well_known = false;
        let mut redirects = 0;
        loop {
            let r = self.send(
                "PROPFIND",
                &path,
                &[("Depth", "0")],
                Some(&propfind_body(&props)),
            )?;
            match r.status {
                207 => {
                    let responses = parse_multistatus(&path, &r.body)?;
                    let me = responses.into_iter().next().ok_or_else(|| {
                        DavError::Discovery(format!("{path}: empty multistatus"))
                    })?;
                    return Ok(Probe::of(path, &me));
                }
                301 | 302 | 303 | 307 | 308 if redirects < 5 => {
                    redirects += 1;
                    let loc = r.location.ok_or_else(|| {
                        DavError::Discovery(format!("{path} redirects without a Location"))
                    })?;
                    if !loc.starts_with('/') && !loc.starts_with(&self.origin) {
                        return Err(DavError::Discovery(format!(
                            "{path} redirects to another server ({loc}); put that URL in CALDAV_URL"
                        )));
                    }
                    path = path_of(&loc);
                }
                404 | 405 if !tried_well_known && (path == "/" || path.is_empty()) => {
                    tried_well_known = true;
                    path = WELL_KNOWN.to_string();
                }
                status => {
                    return Err(DavError::Status {
                        method: "PROPFIND".into(),
                        path,
                        status,
                        detail: "the CalDAV URL does not answer PROPFIND (hint: is it the server's CalDAV address?)".into(),
                    })
                }
            }
        }
    }

    /// The home a probe names: its calendar-home-set, its principal's, or (a calendar)
    /// its parent. `None` when it names none.
    fn discovery_from(&mut self, p: &Probe) -> Result<Option<Discovery>, DavError> {
        if let Some(home) = &p.home_set {
            return Ok(Some(Discovery {
                principal: p.principal.clone(),
                home: with_slash(home.clone()),
            }));
        }
        if let Some(principal) = &p.principal {
            let body = propfind_body(&[(CALDAV, "calendar-home-set")]);
            let r = self.send("PROPFIND", principal, &[("Depth", "0")], Some(&body))?;
            self.expect(&r, 207, "PROPFIND", principal)?;
            let rs = parse_multistatus(principal, &r.body)?;
            let home = rs
                .first()
                .and_then(|p| p.href_prop(CALDAV, "calendar-home-set"))
                .ok_or_else(|| DavError::Discovery(format!(
                    "principal {principal} has no calendar-home-set (hint: set CALDAV_URL to your calendar home)"
                )))?;
            return Ok(Some(Discovery {
                principal: Some(principal.clone()),
                home: with_slash(path_of(&home)),
            }));
        }
        if p.calendar {
            return Ok(Some(Discovery {
                principal: None,
                home: parent_of(&p.path),
            }));
        }
        Ok(None)
    }

    /// The calendars in a home collection. Fails when the home itself is listed as
    /// something other than a collection (a server root taken for a home).
    pub fn calendars(&mut self, home: &str) -> Result<Vec<Calendar>, DavError> {
        let body = propfind_body(&[
            (DAV, "resourcetype"),
            (DAV, "displayname"),
            (CALDAV, "supported-calendar-component-set"),
            (CALSERVER, "getctag"),
            (DAV, "sync-token"),
        ]);
        let r = self.send("PROPFIND", home, &[("Depth", "1")], Some(&body))?;
        self.expect(&r, 207, "PROPFIND", home)?;
        let mut calendars = Vec::new();
        let mut home_is_collection = None;
        each_response(home, &r.body, &mut |r| {
            if same_href(&r.href, home) {
                home_is_collection = Some(r.is_collection());
            } else if r.is_calendar() {
                warn_damaged(home, &r);
                calendars.push(calendar_of(r));
            }
        })?;
        if home_is_collection == Some(false) {
            return Err(DavError::Discovery(format!(
                "{home} is not a collection, so it cannot hold calendars (hint: set CALDAV_URL to your calendar home)"
            )));
        }
        Ok(calendars)
    }

    /// Creates a calendar collection at `href` for one component type.
    ///
    /// MKCALENDAR has no precondition, so it is never simply sent again: when its answer
    /// is lost (a dropped connection, a gateway's 502–504) or is 405/409 (a proxy may have
    /// resent it), a PROPFIND tells whether our calendar now exists there — then it is
    /// ours, and a 405 is not read as "name taken". Only a calendar proven absent is
    /// requested once more.
    pub fn make_calendar(
        &mut self,
        href: &str,
        display_name: &str,
        component: &str,
    ) -> Result<(), DavError> {
        self.make_calendar_for(href, display_name, &[component])
    }

    /// [`Self::make_calendar`] for a calendar that holds several components (tasks, and
    /// the events of cycles and modules).
    pub fn make_calendar_for(
        &mut self,
        href: &str,
        display_name: &str,
        components: &[&str],
    ) -> Result<(), DavError> {
        let mut set = Element::new(CALDAV, "supported-calendar-component-set");
        for c in components {
            set = set.with_child(Element::new(CALDAV, "comp").with_attr("name", c));
        }
        let body = Element::new(CALDAV, "mkcalendar")
            .with_child(
                Element::new(DAV, "set").with_child(
                    Element::new(DAV, "prop")
                        .with_child(Element::new(DAV, "displayname").with_text(display_name))
                        .with_child(set),
                ),
            )
            .to_xml();
        for attempt in 1..=2 {
            let failure = match self.send("MKCALENDAR", href, &[], Some(&body)) {
                Ok(r) if matches!(r.status, 200 | 201) => return Ok(()),
                Ok(r) if matches!(r.status, 405 | 409 | 500..=599) => {
                    self.status_error(&r, "MKCALENDAR", href)
                }
                Ok(r) => return Err(self.status_error(&r, "MKCALENDAR", href)),
                Err(e @ DavError::Transport { .. }) => e,
                Err(e) => return Err(e),
            };
            match self.calendar_at(href, display_name) {
                Ok(Existing::Ours) => {
                    log::info!("MKCALENDAR {href}: {failure}; the calendar exists now, using it");
                    return Ok(());
                }
                Ok(Existing::Nothing) if attempt == 1 && !is_taken(&failure) => {
                    log::warn!("MKCALENDAR {href}: {failure}; nothing was created, asking again");
                }
                _ => return Err(failure),
            }
        }
        Err(DavError::Discovery(format!(
            "{href}: MKCALENDAR failed twice"
        )))
    }

    /// What lives at `href`, for [`CalDavClient::make_calendar`].
    fn calendar_at(&mut self, href: &str, display_name: &str) -> Result<Existing, DavError> {
        let body = propfind_body(&[(DAV, "resourcetype"), (DAV, "displayname")]);
        let r = self.send("PROPFIND", href, &[("Depth", "0")], Some(&body))?;
        if r.status == 404 {
            return Ok(Existing::Nothing);
        }
        self.expect(&r, 207, "PROPFIND", href)?;
        let responses = parse_multistatus(href, &r.body)?;
        let ours = responses.first().is_some_and(|me| {
            me.is_calendar() && me.text(DAV, "displayname").as_deref() == Some(display_name)
        });
        Ok(if ours {
            Existing::Ours
        } else {
            Existing::Other
        })
    }

    /// Every object in a calendar with its ETag (one PROPFIND, no calendar data).
    pub fn objects(&mut self, calendar: &str) -> Result<Vec<ObjectRef>, DavError> {
        let body = propfind_body(&[(DAV, "getetag"), (DAV, "resourcetype")]);
        let r = self.send("PROPFIND", calendar, &[("Depth", "1")], Some(&body))?;
        self.expect(&r, 207, "PROPFIND", calendar)?;
        let mut out = Vec::new();
        each_response(calendar, &r.body, &mut |r| {
            if r.is_collection() || same_href(&r.href, calendar) {
                return;
            }
            warn_damaged(calendar, &r);
            out.push(ObjectRef {
                etag: r.text(DAV, "getetag").and_then(|e| normalize_etag(&e)),
                href: r.href,
            });
        })?;
        Ok(out)
    }

    /// The ctag, sync-token and ETag of one calendar (one Depth-0 PROPFIND): when they
    /// equal the last ones seen, the calendar has not changed and need not be listed.
    pub fn collection_state(&mut self, calendar: &str) -> Result<CollectionState, DavError> {
        let body = propfind_body(&[
            (CALSERVER, "getctag"),
            (DAV, "sync-token"),
            (DAV, "getetag"),
        ]);
        let r = self.send("PROPFIND", calendar, &[("Depth", "0")], Some(&body))?;
        self.expect(&r, 207, "PROPFIND", calendar)?;
        let responses = parse_multistatus(calendar, &r.body)?;
        let Some(own) = responses
            .iter()
            .find(|r| same_collection(&r.href, calendar))
            .or(responses.first())
        else {
            return Err(malformed(calendar, "an empty multistatus".into()));
        };
        Ok(CollectionState {
            ctag: own.text(CALSERVER, "getctag"),
            sync_token: own.text(DAV, "sync-token"),
            etag: own.text(DAV, "getetag").and_then(|e| normalize_etag(&e)),
        })
    }

    /// The members changed and removed since `token` (RFC 6578 sync-collection REPORT,
    /// sync-level 1, ETags only); `None` asks for an initial sync: every member and a
    /// token. When the answer is `truncated`, call again with its token for the rest.
    ///
    /// A token the server no longer accepts, or a server without sync-collection, gives
    /// [`DavError::SyncRefused`] (see [`DavError::is_invalid_sync_token`]): list the
    /// calendar with [`CalDavClient::objects`] instead.
    pub fn sync_collection(
        &mut self,
        calendar: &str,
        token: Option<&str>,
    ) -> Result<SyncDelta, DavError> {
        let report = Element::new(DAV, "sync-collection")
            .with_child(Element::new(DAV, "sync-token").with_text(token.unwrap_or("")))
            .with_child(Element::new(DAV, "sync-level").with_text("1"))
            .with_child(Element::new(DAV, "prop").with_child(Element::new(DAV, "getetag")));
        // RFC 6578 §3.2: the Depth header must be 0; sync-level says how deep to go.
        let r = self.send(
            "REPORT",
            calendar,
            &[("Depth", "0")],
            Some(&report.to_xml()),
        )?;
        if r.status == 207 {
            return parse_sync_collection(calendar, &r.body);
        }
        match sync_refusal(r.status, &r.body.text, token.is_some()) {
            Some(reason) => Err(DavError::SyncRefused {
                path: calendar.to_string(),
                status: r.status,
                reason,
            }),
            None => Err(self.status_error(&r, "REPORT", calendar)),
        }
    }

    /// Reads several objects in one `calendar-multiget` REPORT per 100 hrefs. Hrefs the
    /// server reports missing are left out. An object whose bytes are not UTF-8 is named
    /// in an error line and comes back with an empty text (no valid iCalendar: the sync
    /// leaves it alone); the others are read. An answer over [`MAX_MULTISTATUS_BYTES`] is
    /// asked for again in halves; a single object that large is set aside the same way.
    pub fn multiget(
        &mut self,
        calendar: &str,
        hrefs: &[String],
    ) -> Result<Vec<ObjectData>, DavError> {
        let mut out = Vec::new();
        let mut pending: Vec<&[String]> = hrefs.chunks(100).rev().collect();
        while let Some(chunk) = pending.pop() {
            match self.multiget_chunk(calendar, chunk, &mut out) {
                Err(DavError::TooLarge { .. }) if chunk.len() > 1 => {
                    let (a, b) = chunk.split_at(chunk.len() / 2);
                    pending.extend([b, a]);
                }
                Err(e @ DavError::TooLarge { .. }) => {
                    log::error!("{e}: {} left unread and unchanged", chunk[0]);
                    out.push(set_aside(chunk[0].clone(), None));
                }
                other => other?,
            }
        }
        Ok(out)
    }

    fn multiget_chunk(
        &mut self,
        calendar: &str,
        chunk: &[String],
        out: &mut Vec<ObjectData>,
    ) -> Result<(), DavError> {
        let mut report = Element::new(CALDAV, "calendar-multiget").with_child(
            Element::new(DAV, "prop")
                .with_child(Element::new(DAV, "getetag"))
                .with_child(Element::new(CALDAV, "calendar-data")),
        );
        for h in chunk {
            report = report.with_child(Element::new(DAV, "href").with_text(h));
        }
        let r = self.send(
            "REPORT",
            calendar,
            &[("Depth", "1")],
            Some(&report.to_xml()),
        )?;
        self.expect(&r, 207, "REPORT", calendar)?;
        // Only what was asked for is kept: a server answering every multiget with
        // everything would otherwise make us hold the calendar once per chunk.
        let asked: HashSet<String> = chunk.iter().map(|h| percent_decode(h)).collect();
        each_response(calendar, &r.body, &mut |resp| {
            if resp.status == Some(404) || !asked.contains(&percent_decode(&resp.href)) {
                return;
            }
            if let Some(o) = object_data(calendar, resp) {
                out.push(o);
            }
        })?;
        Ok(())
    }

    /// Finds the object holding `uid` with a `calendar-query` REPORT (a `text-match` on
    /// UID, in VEVENTs and VTODOs). Used when a server refuses to create an object
    /// because another href already holds its UID — an event the seed wrote elsewhere.
    pub fn find_by_uid(
        &mut self,
        calendar: &str,
        uid: &str,
    ) -> Result<Option<ObjectData>, DavError> {
        for component in ["VEVENT", "VTODO"] {
            let text_match = Element::new(CALDAV, "text-match")
                .with_text(uid)
                .with_attr("collation", "i;octet");
            let uid_filter = Element::new(CALDAV, "prop-filter")
                .with_attr("name", "UID")
                .with_child(text_match);
            let comp = Element::new(CALDAV, "comp-filter")
                .with_attr("name", component)
                .with_child(uid_filter);
            let vcal = Element::new(CALDAV, "comp-filter")
                .with_attr("name", "VCALENDAR")
                .with_child(comp);
            let query = Element::new(CALDAV, "calendar-query")
                .with_child(
                    Element::new(DAV, "prop")
                        .with_child(Element::new(DAV, "getetag"))
                        .with_child(Element::new(CALDAV, "calendar-data")),
                )
                .with_child(Element::new(CALDAV, "filter").with_child(vcal));
            let r = self.send("REPORT", calendar, &[("Depth", "1")], Some(&query.to_xml()))?;
            self.expect(&r, 207, "REPORT", calendar)?;
            let mut found = None;
            each_response(calendar, &r.body, &mut |resp| {
                let Some(o) = found
                    .is_none()
                    .then(|| object_data(calendar, resp))
                    .flatten()
                else {
                    return;
                };
                // text-match is a substring match: confirm the exact UID.
                if o.ical
                    .lines()
                    .any(|l| l.trim_end().strip_prefix("UID:") == Some(uid))
                {
                    found = Some(o);
                }
            })?;
            if found.is_some() {
                return Ok(found);
            }
        }
        Ok(None)
    }

    /// Reads one object; `None` on 404. An object whose bytes are not UTF-8 is an error
    /// naming it (it is left as it is; the rest of the calendar syncs).
    pub fn get(&mut self, href: &str) -> Result<Option<ObjectData>, DavError> {
        let r = self.send("GET", href, &[], None)?;
        if r.status == 404 {
            return Ok(None);
        }
        self.expect(&r, 200, "GET", href)?;
        if let Some(&at) = r.body.damage.first() {
            return Err(not_utf8(href, at));
        }
        Ok(Some(ObjectData {
            href: href.to_string(),
            etag: r.etag.as_deref().and_then(normalize_etag),
            ical: r.body.text,
        }))
    }

    /// Writes an object under a precondition. When the server sends no ETag (allowed when
    /// it changed the data), the new ETag is read with a PROPFIND.
    pub fn put(
        &mut self,
        href: &str,
        ical: &str,
        pre: Precondition<'_>,
    ) -> Result<WriteOutcome, DavError> {
        let header = match pre {
            Precondition::Create => ("If-None-Match", "*".to_string()),
            Precondition::Replace(etag) => ("If-Match", etag.to_string()),
        };
        let r = self.send(
            "PUT",
            href,
            &[
                ("Content-Type", "text/calendar; charset=utf-8"),
                (header.0, &header.1),
            ],
            Some(ical),
        )?;
        match r.status {
            200..=299 => {
                let etag = match r.etag.as_deref().and_then(normalize_etag) {
                    Some(e) => Some(e),
                    None => self.etag_of(href)?.flatten(),
                };
                Ok(WriteOutcome::Written(etag))
            }
            412 => Ok(WriteOutcome::PreconditionFailed),
            _ => Err(self.status_error(&r, "PUT", href)),
        }
    }

    /// Deletes an object, only if it still has `etag`. Without one (the listing gave
    /// none) the current ETag is read first, so the DELETE still carries `If-Match`: an
    /// object changed since the listing is never deleted unseen.
    pub fn delete(&mut self, href: &str, etag: Option<&str>) -> Result<WriteOutcome, DavError> {
        let etag = match etag {
            Some(e) => e.to_string(),
            None => match self.etag_of(href)? {
                None => return Ok(WriteOutcome::NotFound),
                Some(Some(e)) => e,
                Some(None) => {
                    return Err(malformed(
                        href,
                        "the server gives no ETag for it, and it is not deleted without one".into(),
                    ))
                }
            },
        };
        let r = self.send("DELETE", href, &[("If-Match", &etag)], None)?;
        match r.status {
            200..=299 => Ok(WriteOutcome::Written(None)),
            404 => Ok(WriteOutcome::NotFound),
            412 => Ok(WriteOutcome::PreconditionFailed),
            _ => Err(self.status_error(&r, "DELETE", href)),
        }
    }

    /// The current ETag of one resource: `None` when it does not exist, `Some(None)`
    /// when the server names none (neither in PROPFIND nor in a GET's header).
    fn etag_of(&mut self, href: &str) -> Result<Option<Option<String>>, DavError> {
        let body = propfind_body(&[(DAV, "getetag")]);
        let r = self.send("PROPFIND", href, &[("Depth", "0")], Some(&body))?;
        if r.status == 404 {
            return Ok(None);
        }
        self.expect(&r, 207, "PROPFIND", href)?;
        let listed = parse_multistatus(href, &r.body)?
            .first()
            .and_then(|r| r.text(DAV, "getetag"))
            .and_then(|e| normalize_etag(&e));
        if listed.is_some() {
            return Ok(Some(listed));
        }
        let r = self.send("GET", href, &[], None)?;
        if r.status == 404 {
            return Ok(None);
        }
        self.expect(&r, 200, "GET", href)?;
        Ok(Some(r.etag.as_deref().and_then(normalize_etag)))
    }

    fn expect(&self, r: &DavResponse, want: u16, method: &str, path: &str) -> Result<(), DavError> {
        if r.status == want || (want == 201 && r.status == 200) || (want == 200 && r.status == 203)
        {
            Ok(())
        } else {
            Err(self.status_error(r, method, path))
        }
    }

    fn status_error(&self, r: &DavResponse, method: &str, path: &str) -> DavError {
        // Servers explain refusals in a DAV:error body; name its first element.
        let detail = davxml::parse(&r.body.text)
            .ok()
            .filter(|e| e.is(DAV, "error"))
            .and_then(|e| e.children.first().map(|c| c.name.clone()))
            .unwrap_or_else(|| {
                r.body
                    .text
                    .chars()
                    .take(80)
                    .collect::<String>()
                    .trim()
                    .to_string()
            });
        DavError::Status {
            method: method.to_string(),
            path: path.to_string(),
            status: r.status,
            detail,
        }
    }

    /// Sends one request, answering authentication challenges and retrying transient
    /// failures (network errors other than TLS failures, see [`is_transient_status`]) twice —
    /// but only reads and writes with a precondition (`If-Match`, `If-None-Match`), which a
    /// retry cannot make happen twice.
    /// Any other write (MKCALENDAR) is sent once; its caller finds out what happened.
    fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Result<DavResponse, DavError> {
        let mut auth_attempts = 0;
        let retries = if is_repeatable(method, headers) { 2 } else { 0 };
        let mut transient_attempts = 0;
        loop {
            let r = self.send_once(method, path, headers, body);
            let r = match r {
                // A failed TLS handshake fails the same way again: not retried.
                Err(DavError::Transport { tls: None, .. }) if transient_attempts < retries => {
                    transient_attempts += 1;
                    sleep(Duration::from_millis(300 * transient_attempts));
                    continue;
                }
                other => other?,
            };
            if is_transient_status(method, r.status) && transient_attempts < retries {
                transient_attempts += 1;
                log::warn!("CalDAV {method} {path}: HTTP {}; retrying", r.status);
                sleep(Duration::from_millis(500 * transient_attempts));
                continue;
            }
            if r.status != 401 {
                return Ok(r);
            }
            auth_attempts += 1;
            if self.username.is_empty() {
                return Err(DavError::Auth(
                    "the server requires a login (hint: set CALDAV_USERNAME and CALDAV_PASSWORD)"
                        .into(),
                ));
            }
            let values: Vec<&str> = r.challenges.iter().map(String::as_str).collect();
            let challenges = auth::parse_challenges(&values);
            // A Digest nonce that merely expired is renewed without counting as a failure.
            let stale = challenges
                .iter()
                .any(|c| matches!(c, Challenge::Digest(d) if d.stale));
            if auth_attempts > 1 && !(stale && auth_attempts <= 3) {
                return Err(DavError::Auth(format!(
                    "the server rejected user {:?} (hint: check CALDAV_USERNAME and CALDAV_PASSWORD; Nextcloud needs an app password)",
                    self.username
                )));
            }
            self.auth = self.pick_auth(&challenges)?;
        }
    }

    fn pick_auth(&self, challenges: &[Challenge]) -> Result<AuthState, DavError> {
        let wanted: Vec<&Challenge> = challenges
            .iter()
            .filter(|c| match self.auth_type {
                AuthType::Auto => true,
                AuthType::Basic => matches!(c, Challenge::Basic { .. }),
                AuthType::Digest => matches!(c, Challenge::Digest(_)),
            })
            .collect();
        let owned: Vec<Challenge> = wanted.into_iter().cloned().collect();
        match auth::choose(&owned) {
            Some(Challenge::Digest(d)) => Ok(AuthState::Digest(DigestSession::new(d.clone()))),
            Some(Challenge::Basic { .. }) => Ok(AuthState::Basic),
            _ => Err(DavError::Auth(format!(
                "the server offers no authentication scheme we can use with CALDAV_AUTH_TYPE={} (it offers: {})",
                match self.auth_type {
                    AuthType::Auto => "auto",
                    AuthType::Basic => "basic",
                    AuthType::Digest => "digest",
                },
                challenges
                    .iter()
                    .map(|c| match c {
                        Challenge::Basic { .. } => "Basic".to_string(),
                        Challenge::Digest(_) => "Digest".to_string(),
                        Challenge::Other(s) => s.split_whitespace().next().unwrap_or("?").to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    fn send_once(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Result<DavResponse, DavError> {
        *self.stats.entry(method.to_string()).or_insert(0) += 1;
        let m = Method::from_bytes(method.as_bytes())
            .map_err(|_| DavError::Setup(format!("bad method {method}")))?;
        let builder = self.request_builder(m, method, path, headers, body.is_some());
        let result = match body {
            Some(b) => {
                let req = builder
                    .body(b.as_bytes())
                    .map_err(|e| DavError::Setup(e.to_string()))?;
                self.agent.run(req)
            }
            None => {
                let req = builder
                    .body(())
                    .map_err(|e| DavError::Setup(e.to_string()))?;
                self.agent.run(req)
            }
        };
        let response = result.map_err(|e| transport_error(path, e))?;
        dav_response(method, path, response)
    }

    /// A request to `path` with `headers`, a Content-Type for an XML body unless
    /// `headers` set one, and our credentials (a Digest answer counts as used).
    fn request_builder(
        &mut self,
        m: Method,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        has_body: bool,
    ) -> ureq::http::request::Builder {
        let url = format!("{}{}", self.origin, path);
        let mut builder = Request::builder().method(m).uri(&url);
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        if has_body
            && !headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        {
            builder = builder.header("Content-Type", "application/xml; charset=utf-8");
        }
        match &mut self.auth {
            AuthState::None => {}
            AuthState::Basic => {
                builder = builder.header(
                    "Authorization",
                    auth::basic_authorization(&self.username, self.password.expose()),
                );
            }
            AuthState::Digest(session) => {
                builder = builder.header(
                    "Authorization",
                    session.authorization(method, path, &self.username, self.password.expose()),
                );
            }
        }
        builder
    }
}

/// A transport failure (connection, TLS, timeout) of the request to `path`.
fn transport_error(path: &str, e: ureq::Error) -> DavError {
    DavError::Transport {
        path: path.to_string(),
        message: crate::http::describe(&e),
        tls: crate::http::tls_failure(&e),
    }
}

/// The headers we use and the body (within the limit for `method` and the status).
fn dav_response(
    method: &str,
    path: &str,
    mut response: ureq::http::Response<ureq::Body>,
) -> Result<DavResponse, DavError> {
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let etag = header("etag");
    let location = header("location");
    let challenges = response
        .headers()
        .get_all("www-authenticate")
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_string))
        .collect();
    let status = response.status().as_u16();
    let (limit, overflow) = body_limit(method, status);
    let bytes = read_body(response.body_mut(), limit, overflow).map_err(|e| match e {
        BodyError::TooLarge { limit } => DavError::TooLarge {
            method: method.to_string(),
            path: path.to_string(),
            limit,
        },
        BodyError::Transport(e) => transport_error(path, e),
    })?;
    Ok(DavResponse {
        status,
        etag,
        location,
        challenges,
        body: Text::decode(bytes),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_reads_retry_a_500() {
        for read in ["GET", "PROPFIND", "REPORT"] {
            assert!(is_transient_status(read, 500), "{read}");
            assert!(is_transient_status(read, 503), "{read}");
            assert!(!is_transient_status(read, 404), "{read}");
        }
        assert!(
            !is_transient_status("PUT", 500),
            "a PUT's 500 may have been stored"
        );
        assert!(!is_transient_status("DELETE", 500));
        assert!(is_transient_status("PUT", 502));
        assert!(!is_transient_status("GET", 501));
    }

    #[test]
    fn multistatus_keeps_only_ok_props() {
        let body = r#"<?xml version="1.0"?>
<d:multistatus xmlns:d="DAV:" xmlns:cs="http://calendarserver.org/ns/">
 <d:response><d:href>http://x/cal/</d:href>
  <d:propstat><d:prop><cs:getctag>7</cs:getctag></d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat>
  <d:propstat><d:prop><d:sync-token/></d:prop><d:status>HTTP/1.1 404 Not Found</d:status></d:propstat>
 </d:response>
</d:multistatus>"#;
        let rs = parse_multistatus("/cal/", &Text::from(body)).unwrap();
        assert_eq!(rs[0].href, "/cal/");
        assert_eq!(rs[0].text(CALSERVER, "getctag").as_deref(), Some("7"));
        assert!(rs[0].prop(DAV, "sync-token").is_none());
        assert!(parse_multistatus("/cal/", &Text::from("<html>oops</html>")).is_err());
        assert!(parse_multistatus(
            "/cal/",
            &Text::from("<d:multistatus xmlns:d=\"DAV:\"><d:response>")
        )
        .is_err());
    }

    fn object(href: &str, etag: &str) -> ObjectRef {
        ObjectRef {
            href: href.to_string(),
            etag: Some(etag.to_string()),
        }
    }

    /// After the examples of RFC 6578 §3.8: full URLs as hrefs, a propstat 404 for a
    /// property next to a 200 getetag, the token after the responses.
    #[test]
    fn sync_rfc6578_examples() {
        let initial = r#"<?xml version="1.0" encoding="utf-8" ?>
<D:multistatus xmlns:D="DAV:">
  <D:response>
    <D:href>http://webdav.example.com/home/cyrusdaboo/test.doc</D:href>
    <D:propstat><D:prop><D:getetag>"00001-abcd1"</D:getetag>
      <R:bigbox xmlns:R="urn:ns.example.com:boxschema"><R:BoxType>Box type A</R:BoxType></R:bigbox>
    </D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat>
  </D:response>
  <D:response>
    <D:href>http://webdav.example.com/home/cyrusdaboo/vcard.vcf</D:href>
    <D:propstat><D:prop><D:getetag>"00002-abcd1"</D:getetag></D:prop>
      <D:status>HTTP/1.1 200 OK</D:status></D:propstat>
    <D:propstat><D:prop><R:bigbox xmlns:R="urn:ns.example.com:boxschema"/></D:prop>
      <D:status>HTTP/1.1 404 Not Found</D:status></D:propstat>
  </D:response>
  <D:sync-token>http://example.com/ns/sync/1234</D:sync-token>
</D:multistatus>"#;
        let d = parse_sync_collection("/home/cyrusdaboo/", &Text::from(initial)).unwrap();
        assert_eq!(d.token, "http://example.com/ns/sync/1234");
        assert_eq!(
            d.changed,
            [
                object("/home/cyrusdaboo/test.doc", "\"00001-abcd1\""),
                object("/home/cyrusdaboo/vcard.vcf", "\"00002-abcd1\"")
            ]
        );
        assert!(d.removed.is_empty() && !d.truncated);

        let later = r#"<D:multistatus xmlns:D="DAV:">
  <D:response>
    <D:href>http://webdav.example.com/home/cyrusdaboo/file.xml</D:href>
    <D:propstat><D:prop><D:getetag>"00004-abcd1"</D:getetag></D:prop>
      <D:status>HTTP/1.1 200 OK</D:status></D:propstat>
  </D:response>
  <D:response>
    <D:href>http://webdav.example.com/home/cyrusdaboo/vcard.vcf</D:href>
    <D:propstat><D:prop><D:getetag>"00002-abcd2"</D:getetag></D:prop>
      <D:status>HTTP/1.1 200 OK</D:status></D:propstat>
  </D:response>
  <D:response>
    <D:href>http://webdav.example.com/home/cyrusdaboo/test.doc</D:href>
    <D:status>HTTP/1.1 404 Not Found</D:status>
  </D:response>
  <D:sync-token>http://example.com/ns/sync/1238</D:sync-token>
</D:multistatus>"#;
        let d = parse_sync_collection("/home/cyrusdaboo/", &Text::from(later)).unwrap();
        assert_eq!(d.token, "http://example.com/ns/sync/1238");
        assert_eq!(
            d.changed,
            [
                object("/home/cyrusdaboo/file.xml", "\"00004-abcd1\""),
                object("/home/cyrusdaboo/vcard.vcf", "\"00002-abcd2\"")
            ]
        );
        assert_eq!(d.removed, ["/home/cyrusdaboo/test.doc"]);
        assert!(!d.truncated);
    }

    /// RFC 6578 §3.6: the request-URI with 507 marks a partial answer; it is no member.
    #[test]
    fn sync_truncation_is_flagged_not_listed() {
        let body = r#"<d:multistatus xmlns:d="DAV:">
 <d:response><d:href>/cal/a.ics</d:href>
  <d:propstat><d:prop><d:getetag>"1"</d:getetag></d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat>
 </d:response>
 <d:response><d:href>http://h/cal</d:href>
  <d:status>HTTP/1.1 507 Insufficient Storage</d:status>
  <d:error><d:number-of-matches-within-limits/></d:error>
 </d:response>
 <d:sync-token>data:,7</d:sync-token>
</d:multistatus>"#;
        let d = parse_sync_collection("/cal/", &Text::from(body)).unwrap();
        assert!(d.truncated);
        assert_eq!(d.changed, [object("/cal/a.ics", "\"1\"")]);
        assert!(d.removed.is_empty());
        assert_eq!(d.token, "data:,7");
    }

    #[test]
    fn sync_removed_only_and_empty() {
        let body = r#"<multistatus xmlns="DAV:"><sync-token>t2</sync-token>
 <response><href>/cal/a.ics</href><status>HTTP/1.1 404 Not Found</status></response>
 <response><href>/cal/b.ics</href><status>HTTP/1.1 404 Not Found</status></response>
</multistatus>"#;
        let d = parse_sync_collection("/cal/", &Text::from(body)).unwrap();
        assert_eq!(d.removed, ["/cal/a.ics", "/cal/b.ics"]);
        assert!(d.changed.is_empty() && !d.truncated);
        // Radicale's answer when nothing changed.
        let none = "<?xml version='1.0' encoding='utf-8'?>\n<multistatus xmlns=\"DAV:\"><sync-token>http://radicale.org/ns/sync/e3b0</sync-token></multistatus>";
        let d = parse_sync_collection("/alice/cal/", &Text::from(none)).unwrap();
        assert_eq!(d.token, "http://radicale.org/ns/sync/e3b0");
        assert!(d.changed.is_empty() && d.removed.is_empty() && !d.truncated);
    }

    /// Hrefs stay as the server wrote them (Radicale `%40`, Xandikos a bare `@`); only the
    /// URL part goes. The collection itself and sub-collections are never members.
    #[test]
    fn sync_hrefs_encodings_and_collections() {
        let body = r#"<ns0:multistatus xmlns:ns0="DAV:"><ns0:response><ns0:href>/user/calendars/c/a@x.ics</ns0:href><ns0:propstat><ns0:status>HTTP/1.1 200 OK</ns0:status><ns0:prop><ns0:getetag>"f571"</ns0:getetag></ns0:prop></ns0:propstat></ns0:response>
<ns0:response><ns0:href>https://h:8443/user/calendars/c/b%40x%20y.ics</ns0:href><ns0:propstat><ns0:status>HTTP/1.1 200 OK</ns0:status><ns0:prop><ns0:getetag>bare</ns0:getetag></ns0:prop></ns0:propstat></ns0:response>
<ns0:response><ns0:href>/user/calendars/c/gone%40x.ics</ns0:href><ns0:status>HTTP/1.1 404 Not Found</ns0:status></ns0:response>
<ns0:response><ns0:href>/user/calendars/c</ns0:href><ns0:propstat><ns0:status>HTTP/1.1 200 OK</ns0:status><ns0:prop><ns0:getetag>"col"</ns0:getetag></ns0:prop></ns0:propstat></ns0:response>
<ns0:response><ns0:href>/user/calendars/c/sub/</ns0:href><ns0:status>HTTP/1.1 404 Not Found</ns0:status></ns0:response>
<ns0:response><ns0:href>/user/calendars/c/secret.ics</ns0:href><ns0:status>HTTP/1.1 403 Forbidden</ns0:status></ns0:response>
<ns0:sync-token>095a4ea5</ns0:sync-token></ns0:multistatus>"#;
        let d = parse_sync_collection("/user/calendars/c/", &Text::from(body)).unwrap();
        assert_eq!(
            d.changed,
            [
                object("/user/calendars/c/a@x.ics", "\"f571\""),
                object("/user/calendars/c/b%40x%20y.ics", "\"bare\"")
            ]
        );
        assert!(same_href(&d.changed[0].href, "/user/calendars/c/a%40x.ics"));
        assert_eq!(d.removed, ["/user/calendars/c/gone%40x.ics"]);
        assert_eq!(d.token, "095a4ea5");
    }

    #[test]
    fn sync_answer_without_token_is_malformed() {
        for body in [
            r#"<d:multistatus xmlns:d="DAV:"><d:response><d:href>/cal/a.ics</d:href></d:response></d:multistatus>"#,
            r#"<d:multistatus xmlns:d="DAV:"><d:sync-token> </d:sync-token></d:multistatus>"#,
            "<html>login</html>",
        ] {
            let e = parse_sync_collection("/cal/", &Text::from(body)).unwrap_err();
            assert!(
                matches!(e, DavError::Malformed { ref path, .. } if path == "/cal/"),
                "{e}"
            );
        }
    }

    /// The refusals the real servers send (bodies copied from their answers).
    #[test]
    fn sync_refusals_are_classified() {
        let radicale = "<?xml version='1.0' encoding='utf-8'?>\n<error xmlns=\"DAV:\"><valid-sync-token /></error>";
        let xandikos = r#"<ns0:error xmlns:ns0="DAV:"><ns0:valid-sync-token /><ns0:responsedescription>Requested sync token 1 is invalid</ns0:responsedescription></ns0:error>"#;
        let sabre18 = r#"<?xml version="1.0" encoding="utf-8"?>
<d:error xmlns:d="DAV:" xmlns:s="http://sabredav.org/ns">
  <s:exception>Sabre\DAV\Exception\ReportNotSupported</s:exception>
  <s:message/>
  <s:sabredav-version>1.8.12</s:sabredav-version>
  <d:supported-report/>
</d:error>"#;
        use SyncRefusal::*;
        let cases: [(u16, &str, bool, Option<SyncRefusal>); 10] = [
            (403, radicale, true, Some(InvalidToken)),
            (412, xandikos, true, Some(InvalidToken)),
            (409, radicale, true, Some(InvalidToken)),
            (403, sabre18, true, Some(Unsupported)),
            (403, sabre18, false, Some(Unsupported)),
            (501, "", false, Some(Unsupported)),
            (400, "bad token", true, Some(InvalidToken)),
            (403, "<html>Forbidden</html>", true, Some(InvalidToken)),
            // Without a token there is no token to blame.
            (403, "<html>Forbidden</html>", false, None),
            (500, "oops", true, None),
        ];
        for (status, body, token_sent, want) in cases {
            assert_eq!(
                sync_refusal(status, body, token_sent),
                want,
                "{status} {token_sent} {body}"
            );
        }
    }

    #[test]
    fn sync_refusal_errors_say_what_to_do() {
        let e = DavError::SyncRefused {
            path: "/cal/".into(),
            status: 412,
            reason: SyncRefusal::InvalidToken,
        };
        assert!(e.is_invalid_sync_token() && !e.is_sync_unsupported());
        assert_eq!(
            e.to_string(),
            "CalDAV REPORT sync-collection /cal/ answered HTTP 412: the sync token is no longer valid"
        );
        let e = DavError::SyncRefused {
            path: "/cal/".into(),
            status: 403,
            reason: SyncRefusal::Unsupported,
        };
        assert!(e.is_sync_unsupported() && !e.is_invalid_sync_token());
        assert!(e.to_string().contains("does not support sync-collection"));
        let other = DavError::Status {
            method: "REPORT".into(),
            path: "/cal/".into(),
            status: 403,
            detail: "valid-sync-token".into(),
        };
        assert!(!other.is_invalid_sync_token() && !other.is_sync_unsupported());
    }
}
