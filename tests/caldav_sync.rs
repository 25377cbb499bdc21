//! Incremental calendar listing against the real servers: RFC 6578 sync-collection
//! (`CalDavClient::sync_collection`) and the ctag / sync-token / ETag a calendar reports
//! about itself (`CalDavClient::collection_state`). Every test works in a calendar of its
//! own, made with MKCALENDAR and deleted at the end.

mod common;

use std::time::Duration;

use calplanebot::caldav::href::{path_of, percent_decode, percent_encode_segment};
use calplanebot::caldav::{
    CalDavClient, CollectionState, ObjectRef, Precondition, SyncDelta, WriteOutcome,
};
use calplanebot::config::{AuthType, Secret};
use common::{server, unique_tag, Server};

/// A calendar made for one test; deleted when dropped, also when the test fails.
struct Scratch {
    client: CalDavClient,
    /// Path of the calendar, ending in `/`.
    href: String,
    /// Unique to this calendar, for object names.
    tag: String,
    server: &'static str,
}

impl Scratch {
    fn new(server: &Server) -> Scratch {
        let mut client = CalDavClient::new(
            &server.url,
            &server.user,
            Secret::new(server.password.clone()),
            AuthType::Auto,
            Duration::from_secs(30),
            None,
        )
        .expect("client");
        let home = client.discover().expect("discover").home;
        let tag = unique_tag().to_lowercase();
        let href = format!("{home}sync-{tag}/");
        client
            .make_calendar(&href, &format!("sync test {tag}"), "VEVENT")
            .expect("MKCALENDAR");
        Scratch {
            client,
            href,
            tag,
            server: server.name,
        }
    }

    /// The path of object `name` (its UID has an `@`, percent-encoded as ours are).
    fn object_href(&self, name: &str) -> String {
        let uid = format!("sync-{}-{name}@calplanebot", self.tag);
        format!("{}{}.ics", self.href, percent_encode_segment(&uid))
    }

    /// Writes object `name` with `summary`; returns its new ETag.
    fn put(&mut self, name: &str, summary: &str, pre: Precondition<'_>) -> String {
        let href = self.object_href(name);
        let uid = format!("sync-{}-{name}@calplanebot", self.tag);
        let ical = format!(
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//calplanebot//tests//EN\r\nBEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART;VALUE=DATE:20260310\r\nDTEND;VALUE=DATE:20260311\r\nSUMMARY:{summary}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
        );
        match self.client.put(&href, &ical, pre) {
            Ok(WriteOutcome::Written(Some(etag))) => etag,
            other => panic!("{}: PUT {href}: {other:?}", self.server),
        }
    }

    fn delete(&mut self, name: &str, etag: &str) {
        let href = self.object_href(name);
        let outcome = self.client.delete(&href, Some(etag));
        assert_eq!(
            outcome,
            Ok(WriteOutcome::Written(None)),
            "{}: DELETE {href}",
            self.server
        );
    }

    fn sync(&mut self, token: Option<&str>) -> SyncDelta {
        let delta = self
            .client
            .sync_collection(&self.href, token)
            .unwrap_or_else(|e| panic!("{}: sync-collection: {e}", self.server));
        assert!(!delta.truncated, "{}: {delta:?}", self.server);
        delta
    }

    fn state(&mut self) -> CollectionState {
        self.client
            .collection_state(&self.href)
            .unwrap_or_else(|e| panic!("{}: collection state: {e}", self.server))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = self.client.delete(&self.href, None);
    }
}

/// Decoded paths, sorted: servers encode the same name differently (`%40` or `@`).
fn paths<'a>(hrefs: impl IntoIterator<Item = &'a String>) -> Vec<String> {
    let mut out: Vec<String> = hrefs
        .into_iter()
        .map(|h| percent_decode(&path_of(h)))
        .collect();
    out.sort();
    out
}

/// `(decoded path, etag)` pairs, sorted.
fn versions(objects: &[ObjectRef]) -> Vec<(String, Option<String>)> {
    let mut out: Vec<_> = objects
        .iter()
        .map(|o| (percent_decode(&path_of(&o.href)), o.etag.clone()))
        .collect();
    out.sort();
    out
}

fn version(s: &Scratch, name: &str, etag: &str) -> (String, Option<String>) {
    (percent_decode(&s.object_href(name)), Some(etag.to_string()))
}

/// Initial token, then PUT / modify / DELETE / nothing, each seen in the next delta.
fn sync_round_trip(s: &mut Scratch) {
    let initial = s.sync(None);
    assert!(initial.changed.is_empty() && initial.removed.is_empty());
    assert!(!initial.token.is_empty());
    assert_eq!(s.state().sync_token.as_ref(), Some(&initial.token));

    let a1 = s.put("a", "first", Precondition::Create);
    let b1 = s.put("b", "second", Precondition::Create);
    let created = s.sync(Some(&initial.token));
    assert_eq!(
        versions(&created.changed),
        [version(s, "a", &a1), version(s, "b", &b1)],
        "{}: after PUT",
        s.server
    );
    assert!(created.removed.is_empty());
    assert_ne!(created.token, initial.token);

    let a2 = s.put("a", "first (renamed)", Precondition::Replace(&a1));
    assert_ne!(a2, a1);
    let modified = s.sync(Some(&created.token));
    assert_eq!(versions(&modified.changed), [version(s, "a", &a2)]);
    assert!(modified.removed.is_empty());

    s.delete("b", &b1);
    let deleted = s.sync(Some(&modified.token));
    assert!(deleted.changed.is_empty(), "{}: {deleted:?}", s.server);
    assert_eq!(
        paths(&deleted.removed),
        [percent_decode(&s.object_href("b"))]
    );

    let idle = s.sync(Some(&deleted.token));
    assert!(idle.changed.is_empty() && idle.removed.is_empty());
    // Radicale (a hash of the members' ETags) and Xandikos (a git commit id) give the
    // same token when nothing changed.
    assert_eq!(idle.token, deleted.token, "{}", s.server);

    // An initial sync lists every member, as a PROPFIND does.
    let full = s.sync(None);
    assert_eq!(versions(&full.changed), [version(s, "a", &a2)]);
    let listed = s.client.objects(&s.href).expect("PROPFIND");
    assert_eq!(versions(&full.changed), versions(&listed));
    assert_eq!(full.token, idle.token);
}

/// Tokens the server never gave for this calendar are refused as invalid, not failures.
/// `other_calendar`: whether a token of another calendar is among them (Cyrus cannot tell
/// one made in the same second: its token is `data:,<creation second>-<modseq>`).
fn foreign_tokens_refused(s: &mut Scratch, server: &Server, other_calendar: bool) {
    let mut tokens = vec![
        "http://radicale.org/ns/sync/garbage".to_string(),
        "data:,bogus".to_string(),
        "1".to_string(),
    ];
    if other_calendar {
        let mut other = Scratch::new(server);
        other.put("x", "elsewhere", Precondition::Create);
        tokens.push(other.sync(None).token);
    }
    for token in tokens.iter().map(String::as_str) {
        match s.client.sync_collection(&s.href, Some(token)) {
            Err(e) => assert!(e.is_invalid_sync_token(), "{}: {token}: {e}", s.server),
            Ok(d) => panic!("{}: token {token:?} accepted: {d:?}", s.server),
        }
    }
}

fn check_sync_collection(server: Server) {
    let mut s = Scratch::new(&server);
    sync_round_trip(&mut s);
    foreign_tokens_refused(&mut s, &server, true);
}

/// What a server reports about its calendars besides the ctag.
struct Advertises {
    sync_token: bool,
    etag: bool,
    /// The ctag is a hash of the content (Radicale, Xandikos): the same members give the
    /// same ctag again. SabreDAV 1.8 counts writes instead.
    ctag_hashes_content: bool,
}

/// The ctag (and sync-token, ETag where given) changes on every write and only then.
fn check_ctag(server: Server, advertises: Advertises) {
    let mut s = Scratch::new(&server);
    let empty = s.state();
    assert!(empty.ctag.is_some(), "{}: no ctag: {empty:?}", s.server);
    assert_eq!(
        empty.sync_token.is_some(),
        advertises.sync_token,
        "{empty:?}"
    );
    assert_eq!(empty.etag.is_some(), advertises.etag, "{empty:?}");
    assert_eq!(s.state(), empty, "{}: changed without a write", s.server);
    let a1 = s.put("a", "first", Precondition::Create);
    let created = moved(&mut s, &empty, &advertises, "PUT new");
    let a2 = s.put("a", "changed", Precondition::Replace(&a1));
    let modified = moved(&mut s, &created, &advertises, "modify");
    s.delete("a", &a2);
    let deleted = moved(&mut s, &modified, &advertises, "DELETE");
    // Empty again: a content hash comes back to its first value, a counter does not. Both
    // are right for "has it changed since I looked?".
    assert_eq!(
        deleted.ctag == empty.ctag,
        advertises.ctag_hashes_content,
        "{}: {empty:?} {deleted:?}",
        s.server
    );
}

/// The state after a write: different from `before` in every value the server gives,
/// and stable while nothing else is written.
fn moved(
    s: &mut Scratch,
    before: &CollectionState,
    advertises: &Advertises,
    write: &str,
) -> CollectionState {
    let now = s.state();
    assert_ne!(now.ctag, before.ctag, "{}: ctag after {write}", s.server);
    if advertises.sync_token {
        assert_ne!(now.sync_token, before.sync_token, "{}: {write}", s.server);
    }
    if advertises.etag {
        assert_ne!(now.etag, before.etag, "{}: ETag after {write}", s.server);
    }
    assert_eq!(s.state(), now, "{}: changed without a write", s.server);
    now
}

#[test]
fn sync_collection_radicale() {
    let radicale = server("Radicale", "RADICALE");
    check_sync_collection(radicale);
}

#[test]
fn sync_collection_xandikos() {
    let xandikos = server("Xandikos", "XANDIKOS");
    check_sync_collection(xandikos);
}

#[test]
fn sync_collection_apache() {
    let apache = server("Apache Digest → Radicale", "APACHE_DIGEST");
    check_sync_collection(apache);
}

/// SabreDAV 1.8 predates RFC 6578: every sync-collection is refused as unsupported, with
/// or without a token, so callers fall back to the ctag.
#[test]
fn sync_collection_sabre() {
    let sabre = server("SabreDAV (Digest)", "SABRE");
    let mut s = Scratch::new(&sabre);
    s.put("a", "first", Precondition::Create);
    for token in [None, Some("http://radicale.org/ns/sync/garbage"), Some("1")] {
        match s.client.sync_collection(&s.href, token) {
            Err(e) => assert!(e.is_sync_unsupported(), "{token:?}: {e}"),
            Ok(d) => panic!("SabreDAV 1.8 answered sync-collection: {d:?}"),
        }
    }
}

#[test]
fn sync_collection_cyrus() {
    let cyrus = server("Cyrus", "CYRUS");
    let mut s = Scratch::new(&cyrus);
    sync_round_trip(&mut s);
    foreign_tokens_refused(&mut s, &cyrus, false);
}

#[test]
fn ctag_radicale() {
    let radicale = server("Radicale", "RADICALE");
    let all = Advertises {
        sync_token: true,
        etag: true,
        ctag_hashes_content: true,
    };
    check_ctag(radicale, all);
}

#[test]
fn ctag_xandikos() {
    let xandikos = server("Xandikos", "XANDIKOS");
    let all = Advertises {
        sync_token: true,
        etag: true,
        ctag_hashes_content: true,
    };
    check_ctag(xandikos, all);
}

#[test]
fn ctag_apache() {
    let apache = server("Apache Digest → Radicale", "APACHE_DIGEST");
    let all = Advertises {
        sync_token: true,
        etag: true,
        ctag_hashes_content: true,
    };
    check_ctag(apache, all);
}

#[test]
fn ctag_sabre() {
    let sabre = server("SabreDAV (Digest)", "SABRE");
    let ctag_only = Advertises {
        sync_token: false,
        etag: false,
        ctag_hashes_content: false,
    };
    check_ctag(sabre, ctag_only);
}

/// Cyrus counts: its ctag and sync-token carry the calendar's modification sequence.
#[test]
fn ctag_cyrus() {
    let cyrus = server("Cyrus", "CYRUS");
    let counter = Advertises {
        sync_token: true,
        etag: true,
        ctag_hashes_content: false,
    };
    check_ctag(cyrus, counter);
}
