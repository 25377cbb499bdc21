//! The CalDAV client: discovery, calendar listing, MKCALENDAR, object listing, multiget,
//! conditional PUT and DELETE. I/O only — it knows nothing of Plane or of sync.
//!
//! Hrefs are handled as absolute paths (`/calendars/alice/work/x.ics`); servers may answer
//! with full URLs or other percent-encodings, which [`path_of`] and [`same_href`] absorb.

use std::collections::BTreeMap;
use std::thread::sleep;
use std::time::Duration;

use ureq::http::{Method, Request};

use super::auth::{self, Challenge, DigestSession};
use super::href::{normalize_etag, parent_of, split_url, with_slash};
// Kept public here for the callers that predate `caldav::href`.
pub use super::href::{path_of, percent_decode, percent_encode_segment, same_href};
use super::DavError;
use crate::config::{AuthType, Secret};
use crate::davxml::{self, Element, CALDAV, CALSERVER, DAV};

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
    /// The iCalendar text.
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
    body: String,
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

fn propfind_body(props: &[(&str, &str)]) -> String {
    let mut prop = Element::new(DAV, "prop");
    for (ns, name) in props {
        prop = prop.with_child(Element::new(ns, name));
    }
    Element::new(DAV, "propfind").with_child(prop).to_xml()
}

fn parse_multistatus(path: &str, body: &str) -> Result<Vec<MsResponse>, DavError> {
    let malformed = |message: String| DavError::Malformed {
        path: path.to_string(),
        message,
    };
    let root = davxml::parse(body).map_err(|e| malformed(format!("invalid XML: {e}")))?;
    if !root.is(DAV, "multistatus") {
        return Err(malformed(format!(
            "expected a DAV multistatus, got <{}>",
            root.name
        )));
    }
    let mut out = Vec::new();
    for r in root.children_named(DAV, "response") {
        let Some(href) = r.child(DAV, "href").map(|h| h.text_trimmed().to_string()) else {
            return Err(malformed("a <response> without <href>".into()));
        };
        let status = r
            .child(DAV, "status")
            .and_then(|s| status_code(s.text_trimmed()));
        let mut props = Vec::new();
        for ps in r.children_named(DAV, "propstat") {
            let ok = ps
                .child(DAV, "status")
                .and_then(|s| status_code(s.text_trimmed()))
                .is_some_and(|c| (200..300).contains(&c));
            if let (true, Some(prop)) = (ok, ps.child(DAV, "prop")) {
                props.extend(prop.children.iter().cloned());
            }
        }
        out.push(MsResponse {
            href: path_of(&href),
            status,
            props,
        });
    }
    Ok(out)
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
    pub fn from_config(config: &crate::config::Config) -> Result<CalDavClient, DavError> {
        Self::new(
            &config.caldav_url,
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
    /// A URL that is itself a calendar yields its parent as home.
    pub fn discover(&mut self) -> Result<Discovery, DavError> {
        let props = [
            (DAV, "current-user-principal"),
            (CALDAV, "calendar-home-set"),
            (DAV, "resourcetype"),
        ];
        let mut path = self.start_path.clone();
        let mut tried_well_known = false;
        let mut redirects = 0;
        let responses = loop {
            let r = self.send(
                "PROPFIND",
                &path,
                &[("Depth", "0")],
                Some(&propfind_body(&props)),
            )?;
            match r.status {
                207 => break parse_multistatus(&path, &r.body)?,
                301 | 302 | 303 | 307 | 308 if redirects < 5 => {
                    redirects += 1;
                    let loc = r.location.ok_or_else(|| DavError::Discovery(format!(
                        "{path} redirects without a Location"
                    )))?;
                    if !loc.starts_with('/') && !loc.starts_with(&self.origin) {
                        return Err(DavError::Discovery(format!(
                            "{path} redirects to another server ({loc}); put that URL in CALDAV_URL"
                        )));
                    }
                    path = path_of(&loc);
                }
                404 | 405 if !tried_well_known && (path == "/" || path.is_empty()) => {
                    tried_well_known = true;
                    path = "/.well-known/caldav".to_string();
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
        };
        let me = responses
            .first()
            .ok_or_else(|| DavError::Discovery(format!("{path}: empty multistatus")))?;
        if let Some(home) = me.href_prop(CALDAV, "calendar-home-set") {
            return Ok(Discovery {
                principal: me
                    .href_prop(DAV, "current-user-principal")
                    .map(|p| path_of(&p)),
                home: with_slash(path_of(&home)),
            });
        }
        if let Some(principal) = me.href_prop(DAV, "current-user-principal") {
            let principal = path_of(&principal);
            let body = propfind_body(&[(CALDAV, "calendar-home-set")]);
            let r = self.send("PROPFIND", &principal, &[("Depth", "0")], Some(&body))?;
            self.expect(&r, 207, "PROPFIND", &principal)?;
            let rs = parse_multistatus(&principal, &r.body)?;
            let home = rs
                .first()
                .and_then(|p| p.href_prop(CALDAV, "calendar-home-set"))
                .ok_or_else(|| DavError::Discovery(format!(
                    "principal {principal} has no calendar-home-set (hint: set CALDAV_URL to your calendar home)"
                )))?;
            return Ok(Discovery {
                principal: Some(principal),
                home: with_slash(path_of(&home)),
            });
        }
        let home = if me.is_calendar() {
            parent_of(&path)
        } else {
            with_slash(path.clone())
        };
        Ok(Discovery {
            principal: None,
            home,
        })
    }

    /// The calendars in a home collection.
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
        Ok(parse_multistatus(home, &r.body)?
            .into_iter()
            .filter(|r| r.is_calendar() && !same_href(&r.href, home))
            .map(|r| Calendar {
                href: with_slash(r.href.clone()),
                display_name: r.text(DAV, "displayname"),
                components: r
                    .prop(CALDAV, "supported-calendar-component-set")
                    .map(|set| {
                        set.children_named(CALDAV, "comp")
                            .filter_map(|c| {
                                c.attrs
                                    .iter()
                                    .find(|(k, _)| k == "name")
                                    .map(|(_, v)| v.to_ascii_uppercase())
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
                ctag: r.text(CALSERVER, "getctag"),
                sync_token: r.text(DAV, "sync-token"),
            })
            .collect())
    }

    /// Creates a calendar collection at `href` for one component type.
    pub fn make_calendar(
        &mut self,
        href: &str,
        display_name: &str,
        component: &str,
    ) -> Result<(), DavError> {
        let mut comp = Element::new(CALDAV, "comp");
        comp.attrs.push(("name".into(), component.to_string()));
        let body = Element::new(CALDAV, "mkcalendar")
            .with_child(
                Element::new(DAV, "set").with_child(
                    Element::new(DAV, "prop")
                        .with_child(Element::new(DAV, "displayname").with_text(display_name))
                        .with_child(
                            Element::new(CALDAV, "supported-calendar-component-set")
                                .with_child(comp),
                        ),
                ),
            )
            .to_xml();
        let r = self.send("MKCALENDAR", href, &[], Some(&body))?;
        self.expect(&r, 201, "MKCALENDAR", href)
    }

    /// Every object in a calendar with its ETag (one PROPFIND, no calendar data).
    pub fn objects(&mut self, calendar: &str) -> Result<Vec<ObjectRef>, DavError> {
        let body = propfind_body(&[(DAV, "getetag"), (DAV, "resourcetype")]);
        let r = self.send("PROPFIND", calendar, &[("Depth", "1")], Some(&body))?;
        self.expect(&r, 207, "PROPFIND", calendar)?;
        Ok(parse_multistatus(calendar, &r.body)?
            .into_iter()
            .filter(|r| !r.is_collection() && !same_href(&r.href, calendar))
            .map(|r| ObjectRef {
                etag: r.text(DAV, "getetag").and_then(|e| normalize_etag(&e)),
                href: r.href,
            })
            .collect())
    }

    /// Reads several objects in one `calendar-multiget` REPORT per 100 hrefs. Hrefs the
    /// server reports missing are left out.
    pub fn multiget(
        &mut self,
        calendar: &str,
        hrefs: &[String],
    ) -> Result<Vec<ObjectData>, DavError> {
        let mut out = Vec::new();
        for chunk in hrefs.chunks(100) {
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
            for resp in parse_multistatus(calendar, &r.body)? {
                if resp.status.is_some_and(|s| s == 404) {
                    continue;
                }
                if let Some(ical) = resp.prop(CALDAV, "calendar-data").map(|d| d.text.clone()) {
                    out.push(ObjectData {
                        etag: resp.text(DAV, "getetag").and_then(|e| normalize_etag(&e)),
                        href: resp.href,
                        ical,
                    });
                }
            }
        }
        Ok(out)
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
            let mut text_match = Element::new(CALDAV, "text-match").with_text(uid);
            text_match
                .attrs
                .push(("collation".into(), "i;octet".into()));
            let mut uid_filter = Element::new(CALDAV, "prop-filter").with_child(text_match);
            uid_filter.attrs.push(("name".into(), "UID".into()));
            let mut comp = Element::new(CALDAV, "comp-filter").with_child(uid_filter);
            comp.attrs.push(("name".into(), component.into()));
            let mut vcal = Element::new(CALDAV, "comp-filter").with_child(comp);
            vcal.attrs.push(("name".into(), "VCALENDAR".into()));
            let query = Element::new(CALDAV, "calendar-query")
                .with_child(
                    Element::new(DAV, "prop")
                        .with_child(Element::new(DAV, "getetag"))
                        .with_child(Element::new(CALDAV, "calendar-data")),
                )
                .with_child(Element::new(CALDAV, "filter").with_child(vcal));
            let r = self.send("REPORT", calendar, &[("Depth", "1")], Some(&query.to_xml()))?;
            self.expect(&r, 207, "REPORT", calendar)?;
            for resp in parse_multistatus(calendar, &r.body)? {
                let Some(ical) = resp.prop(CALDAV, "calendar-data").map(|d| d.text.clone()) else {
                    continue;
                };
                // text-match is a substring match: confirm the exact UID.
                let exact = ical
                    .lines()
                    .any(|l| l.trim_end().strip_prefix("UID:") == Some(uid));
                if exact {
                    return Ok(Some(ObjectData {
                        etag: resp.text(DAV, "getetag").and_then(|e| normalize_etag(&e)),
                        href: resp.href,
                        ical,
                    }));
                }
            }
        }
        Ok(None)
    }

    /// Reads one object; `None` on 404.
    pub fn get(&mut self, href: &str) -> Result<Option<ObjectData>, DavError> {
        let r = self.send("GET", href, &[], None)?;
        if r.status == 404 {
            return Ok(None);
        }
        self.expect(&r, 200, "GET", href)?;
        Ok(Some(ObjectData {
            href: href.to_string(),
            etag: r.etag.as_deref().and_then(normalize_etag),
            ical: r.body,
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
                    None => self.etag_of(href)?,
                };
                Ok(WriteOutcome::Written(etag))
            }
            412 => Ok(WriteOutcome::PreconditionFailed),
            _ => Err(self.status_error(&r, "PUT", href)),
        }
    }

    /// Deletes an object, only if it still has `etag` (when given).
    pub fn delete(&mut self, href: &str, etag: Option<&str>) -> Result<WriteOutcome, DavError> {
        let headers: Vec<(&str, &str)> = etag.map(|e| ("If-Match", e)).into_iter().collect();
        let r = self.send("DELETE", href, &headers, None)?;
        match r.status {
            200..=299 => Ok(WriteOutcome::Written(None)),
            404 => Ok(WriteOutcome::NotFound),
            412 => Ok(WriteOutcome::PreconditionFailed),
            _ => Err(self.status_error(&r, "DELETE", href)),
        }
    }

    /// The current ETag of one resource.
    fn etag_of(&mut self, href: &str) -> Result<Option<String>, DavError> {
        let body = propfind_body(&[(DAV, "getetag")]);
        let r = self.send("PROPFIND", href, &[("Depth", "0")], Some(&body))?;
        self.expect(&r, 207, "PROPFIND", href)?;
        Ok(parse_multistatus(href, &r.body)?
            .first()
            .and_then(|r| r.text(DAV, "getetag"))
            .and_then(|e| normalize_etag(&e)))
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
        let detail = davxml::parse(&r.body)
            .ok()
            .filter(|e| e.is(DAV, "error"))
            .and_then(|e| e.children.first().map(|c| c.name.clone()))
            .unwrap_or_else(|| {
                r.body
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
    /// failures (network errors, 502/503/504) twice. Every write we send carries a
    /// precondition, so a retry cannot clobber anything.
    fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Result<DavResponse, DavError> {
        let mut auth_attempts = 0;
        let mut transient_attempts = 0;
        loop {
            let r = self.send_once(method, path, headers, body);
            let r = match r {
                Err(DavError::Transport { .. }) if transient_attempts < 2 => {
                    transient_attempts += 1;
                    sleep(Duration::from_millis(300 * transient_attempts));
                    continue;
                }
                other => other?,
            };
            if matches!(r.status, 502..=504) && transient_attempts < 2 {
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
        let url = format!("{}{}", self.origin, path);
        let m = Method::from_bytes(method.as_bytes())
            .map_err(|_| DavError::Setup(format!("bad method {method}")))?;
        let mut builder = Request::builder().method(m).uri(&url);
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        if body.is_some()
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
        let transport = |e: ureq::Error| DavError::Transport {
            path: path.to_string(),
            message: crate::http::describe(&e),
        };
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
        let mut response = result.map_err(transport)?;
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
        let body = response
            .body_mut()
            .with_config()
            .limit(64 * 1024 * 1024)
            .lossy_utf8(true)
            .read_to_string()
            .map_err(transport)?;
        Ok(DavResponse {
            status,
            etag,
            location,
            challenges,
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multistatus_keeps_only_ok_props() {
        let body = r#"<?xml version="1.0"?>
<d:multistatus xmlns:d="DAV:" xmlns:cs="http://calendarserver.org/ns/">
 <d:response><d:href>http://x/cal/</d:href>
  <d:propstat><d:prop><cs:getctag>7</cs:getctag></d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat>
  <d:propstat><d:prop><d:sync-token/></d:prop><d:status>HTTP/1.1 404 Not Found</d:status></d:propstat>
 </d:response>
</d:multistatus>"#;
        let rs = parse_multistatus("/cal/", body).unwrap();
        assert_eq!(rs[0].href, "/cal/");
        assert_eq!(rs[0].text(CALSERVER, "getctag").as_deref(), Some("7"));
        assert!(rs[0].prop(DAV, "sync-token").is_none());
        assert!(parse_multistatus("/cal/", "<html>oops</html>").is_err());
        assert!(
            parse_multistatus("/cal/", "<d:multistatus xmlns:d=\"DAV:\"><d:response>").is_err()
        );
    }
}
