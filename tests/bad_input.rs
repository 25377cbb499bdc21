//! Bad input and failing peers: wrong credentials, Plane answering 500/garbage/429 or
//! timing out, a CalDAV server (real Radicale behind a fault-injecting proxy) answering
//! 500, invalid XML or invalid iCalendar. Each gives a clear error, loses nothing, and the
//! other items still sync.

mod common;

use std::time::Duration;

use common::fake_plane::Fault;
use common::proxy::{Fault as DavFault, Proxy};
use common::{server, DeleteCalendars, Run, Server, Setup};

fn total_objects(s: &Setup) -> usize {
    s.dump().iter().map(|c| c.objects.len()).sum()
}

fn last_line(r: &Run) -> String {
    r.stderr.lines().last().unwrap_or("").to_string()
}

#[test]
fn wrong_credentials_give_one_line_errors_without_secrets() {
    let radicale = server("Radicale", "RADICALE");
    let mut s = Setup::new(radicale, &[3]);
    s.env
        .push(("PLANE_API_TOKEN".into(), "plane_api_wrongtoken123".into()));
    let r = s.sync();
    assert_ne!(r.code, 0);
    let line = last_line(&r);
    assert!(
        line.starts_with("calplanebot: Plane rejected the API token"),
        "{line}"
    );
    assert!(line.contains("hint: check PLANE_API_TOKEN"), "{line}");
    assert!(!r.stderr.contains("wrongtoken123") && !r.stdout.contains("wrongtoken123"));

    s.env.clear();
    s.env
        .push(("CALDAV_PASSWORD".into(), "not-the-password-42".into()));
    let r = s.sync();
    assert_ne!(r.code, 0);
    let line = last_line(&r);
    assert!(
        line.contains("CalDAV login failed") && line.contains("CALDAV_PASSWORD"),
        "{line}"
    );
    assert!(!r.stderr.contains("not-the-password-42") && !r.stdout.contains("not-the-password-42"));

    s.env.clear();
    s.env
        .push(("CALDAV_URL".into(), "http://127.0.0.1:9/".into()));
    let r = s.sync();
    assert_ne!(r.code, 0);
    assert!(
        last_line(&r).contains("cannot reach the CalDAV server"),
        "{}",
        r.stderr
    );

    s.env.clear();
    s.env
        .push(("PLANE_WORKSPACE_SLUG".into(), "no-such-workspace".into()));
    let r = s.sync();
    assert_ne!(r.code, 0);
    assert!(
        last_line(&r).contains("check PLANE_WORKSPACE_SLUG"),
        "{}",
        r.stderr
    );
}

#[test]
fn wrong_digest_password_is_reported() {
    let sabre = server("SabreDAV (Digest)", "SABRE");
    let s = Setup::new(
        Server {
            password: "wrong-digest-pw".into(),
            ..sabre
        },
        &[2],
    );
    let r = s.run(&["test-caldav"]);
    assert_ne!(r.code, 0);
    assert!(
        last_line(&r).contains("rejected user \"alice\""),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("wrong-digest-pw"));
}

#[test]
fn plane_failures_lose_nothing_and_other_projects_continue() {
    let radicale = server("Radicale", "RADICALE");
    let mut s = Setup::new(radicale, &[15, 15, 15]);
    s.env.push(("HTTP_TIMEOUT_SECONDS".into(), "1".into()));
    s.sync().assert_ok();
    let synced = total_objects(&s);
    let world = s.fake.world();
    let pid = |i: usize| world.projects[i].id.clone();

    // A single 500 and a dropped connection are retried transparently.
    s.fake.with_world(|w| {
        w.push_fault_for("/work-items/", Fault::Status(500));
        w.push_fault_for("/projects/", Fault::Close);
    });
    let r = s.sync();
    r.assert_ok();
    assert!(r.stderr.contains("retrying"), "{}", r.stderr);

    // Project 0 keeps failing with 500, project 1 answers garbage, project 2 times out:
    // each is reported, nothing is deleted, and the next sync is clean.
    let (p0, p1, p2) = (pid(0), pid(1), pid(2));
    s.fake.with_world(|w| {
        for _ in 0..4 {
            w.push_fault_for(&format!("{p0}/work-items/"), Fault::Status(500));
            w.push_fault_for(
                &format!("{p2}/work-items/"),
                Fault::Delay(Duration::from_secs(3)),
            );
        }
        w.push_fault_for(&format!("{p1}/work-items/"), Fault::Garbage);
    });
    let r = s.sync();
    assert_ne!(r.code, 0, "{}", r.stdout);
    assert_eq!(r.count("Deleted"), 0);
    assert_eq!(r.count("Errors"), 3, "{}", r.stdout);
    assert!(r.stdout.contains("HTTP 500"), "{}", r.stdout);
    assert!(r.stdout.contains("not JSON"), "{}", r.stdout);
    assert!(r.stdout.contains("timed out"), "{}", r.stdout);
    assert!(last_line(&r).contains("3 error(s)"), "{}", r.stderr);
    assert_eq!(total_objects(&s), synced, "nothing lost");

    let r = s.sync();
    r.assert_ok();
    assert_eq!(
        r.count("Created") + r.count("Deleted") + r.count("Updated"),
        0
    );
}

#[test]
fn plane_rate_limit_is_honoured() {
    let radicale = server("Radicale", "RADICALE");
    let s = Setup::new(radicale, &[5, 5, 5]);
    s.fake.with_world(|w| {
        w.rate_limit = 2;
        w.rate_window = Duration::from_secs(2);
    });
    let r = s.sync();
    r.assert_ok();
    assert!(r.stderr.contains("rate limit"), "{}", r.stderr);
    let limited = s.fake.requests().iter().filter(|q| q.status == 429).count();
    let created = r.count("Created");
    assert!(created > 0);
    // Pacing on X-RateLimit-Remaining avoids most 429s; any that happen are waited out.
    assert!(limited <= 3, "{limited} answers 429");
}

#[test]
fn a_malformed_work_item_is_skipped_without_deleting_its_event() {
    let radicale = server("Radicale", "RADICALE");
    let s = Setup::new(radicale, &[10]);
    s.sync().assert_ok();
    let before = total_objects(&s);
    // Plane sends an item we cannot read (an empty id): the listing is incomplete, so
    // nothing may be deleted on the strength of it — not even that item's event.
    let victim = s.fake.world().projects[0]
        .visible_items()
        .into_iter()
        .find(|i| i.target_date.is_some())
        .unwrap()
        .id
        .clone();
    s.fake
        .with_world(|w| w.update(&victim, |i| i.id = String::new()));
    let r = s.sync();
    assert_ne!(r.code, 0);
    assert_eq!(r.count("Deleted"), 0, "{}", r.stdout);
    assert_eq!(total_objects(&s), before);
}

#[test]
fn caldav_garbage_and_failures_lose_nothing() {
    let radicale = server("Radicale", "RADICALE");
    let proxy = Proxy::start(&radicale.url);
    let mut s = Setup::new(
        Server {
            url: proxy.url(),
            ..radicale.clone()
        },
        &[12, 12, 12],
    );
    s.behind_proxy = Some(radicale);
    s.env.push(("HTTP_TIMEOUT_SECONDS".into(), "1".into()));
    s.sync().assert_ok();
    let cal_path = |i: usize| format!("plane-{}{i}/", s.tag.to_lowercase());
    let items = |i: usize| -> Vec<String> {
        let w = s.fake.world();
        let p = &w.projects[i];
        p.visible_items()
            .into_iter()
            .filter(|x| x.target_date.is_some())
            .filter(|x| {
                let g = p
                    .state(&x.state)
                    .map(|st| st.group.clone())
                    .unwrap_or_default();
                g != "completed" && g != "cancelled"
            })
            .map(|x| x.id.clone())
            .collect()
    };
    let before = total_objects(&s);

    // Invalid XML in one calendar's listing; a 503 and then a 500 during discovery (both
    // retried: Radicale answers 500 when a sibling calendar is deleted while it lists).
    proxy.add(
        "PROPFIND",
        &cal_path(0),
        DavFault::Mangle("</".into(), "<".into()),
        1,
    );
    proxy.add("PROPFIND", "/", DavFault::Status(503), 1);
    proxy.add("PROPFIND", "/", DavFault::Status(500), 1);
    let (a0, a1) = (items(0)[0].clone(), items(1)[0].clone());
    s.fake.with_world(|w| {
        w.rename(&a0, "changed while the server is broken");
        w.rename(&a1, "changed in a healthy calendar");
    });
    let r = s.sync();
    assert_ne!(r.code, 0);
    assert!(r.stdout.contains("invalid XML"), "{}", r.stdout);
    for status in ["503", "500"] {
        let retried = format!("HTTP {status}; retrying");
        assert!(r.stderr.contains(&retried), "{retried}: {}", r.stderr);
    }
    assert_eq!(
        r.count("Updated"),
        1,
        "the other calendars still sync: {}",
        r.stdout
    );
    assert_eq!(r.count("Deleted"), 0);
    assert_eq!(total_objects(&s), before);

    // Invalid iCalendar in the object we must merge into: left unchanged, reported.
    proxy.add(
        "REPORT",
        &cal_path(0),
        DavFault::Mangle(
            "BEGIN:VEVENT".into(),
            "BEGIN:VEVENT\nTHIS IS NOT ICALENDAR".into(),
        ),
        1,
    );
    let r = s.sync();
    assert_ne!(r.code, 0);
    assert!(r.stdout.contains("not valid iCalendar"), "{}", r.stdout);
    assert_eq!(r.count("Updated"), 0);
    let r = s.sync();
    r.assert_ok();
    assert_eq!(r.count("Updated"), 1, "repaired on the next clean cycle");

    // A 500 on one PUT and a timeout while reading another calendar's event. (An
    // unchanged calendar is not listed at all: its sync-token says so.)
    let new_item = s.fake.with_world(|w| {
        let ident = w.projects[0].identifier.clone();
        let id = w.add_item(&ident, "Created while PUT fails");
        w.set_target_date(&id, Some("2027-01-15"));
        id
    });
    let a2 = items(2)[0].clone();
    s.fake
        .with_world(|w| w.rename(&a2, "changed while its calendar is slow"));
    proxy.add("PUT", &new_item, DavFault::Status(500), 1);
    for _ in 0..3 {
        proxy.add(
            "REPORT",
            &cal_path(2),
            DavFault::Delay(Duration::from_secs(3)),
            1,
        );
    }
    let r = s.sync();
    assert_ne!(r.code, 0);
    assert!(r.stdout.contains("HTTP 500"), "{}", r.stdout);
    assert!(r.stdout.contains("timed out"), "{}", r.stdout);
    assert_eq!(r.count("Created") + r.count("Updated"), 0, "{}", r.stdout);
    assert_eq!(total_objects(&s), before);
    let r = s.sync();
    r.assert_ok();
    assert_eq!(r.count("Created"), 1, "{}", r.stdout);
    assert_eq!(r.count("Updated"), 1, "{}", r.stdout);
    assert_eq!(total_objects(&s), before + 1);
}

/// A server whose certificate comes from a private CA (a NAS): refused with a hint
/// without CALDAV_CA_FILE, trusted with it. There is no "insecure" switch.
#[test]
fn tls_with_a_private_ca() {
    let tls = server("Radicale over HTTPS", "RADICALE_TLS");
    let ca = common::var("RADICALE_TLS_CA").expect("RADICALE_TLS_CA");
    let mut s = Setup::new(tls, &[5]);
    let r = s.run(&["test-caldav"]);
    assert_ne!(r.code, 0);
    let line = last_line(&r);
    assert!(
        line.contains("TLS error") && line.contains("CALDAV_CA_FILE"),
        "{line}"
    );

    s.env.push(("CALDAV_CA_FILE".into(), ca));
    s.run(&["test-caldav"]).assert_ok();
    let r = s.sync();
    r.assert_ok();
    assert!(r.count("Created") > 0);

    s.env
        .push(("CALDAV_CA_FILE".into(), "/etc/hostname".into()));
    let r = s.run(&["test-caldav"]);
    assert_ne!(r.code, 0);
    assert!(last_line(&r).contains("CALDAV_CA_FILE"), "{}", r.stderr);
}

/// A byte-level hostile proxy in front of a real server: per rule it answers by itself
/// (Cyrus IMAP's answers, copied from a real Cyrus 3.6), drops the answer after the
/// server has acted on the request (a lost response), or edits the answer's bytes
/// (invalid UTF-8, missing ETags, huge bodies). One request per connection.
mod hostile {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::{Arc, Mutex};

    /// A response being passed on.
    pub struct Answer {
        /// Headers as `(name, value)`.
        pub headers: Vec<(String, String)>,
        /// Body bytes.
        pub body: Vec<u8>,
    }

    type Edit = Arc<dyn Fn(&mut Answer) + Send + Sync>;

    /// What to do with a matching request.
    #[derive(Clone)]
    pub enum Act {
        /// Answer this status, content type and body without asking the server.
        Reply(u16, &'static str, Vec<u8>),
        /// Forward, then close the connection without answering.
        Drop,
        /// Forward, then change the answer.
        Edit(Edit),
    }

    struct Rule {
        method: String,
        path: String,
        /// Only requests without an Authorization header.
        anonymous: bool,
        act: Act,
        times: usize,
    }

    /// One request as it arrived.
    #[derive(Debug, Clone)]
    pub struct Seen {
        /// Method.
        pub method: String,
        /// Path.
        pub path: String,
        /// Headers, names lower-cased.
        pub headers: Vec<(String, String)>,
    }

    impl Seen {
        /// A header's value.
        pub fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        }
    }

    /// The running proxy.
    pub struct Hostile {
        port: u16,
        rules: Arc<Mutex<Vec<Rule>>>,
        /// Every request seen.
        pub log: Arc<Mutex<Vec<Seen>>>,
    }

    impl Hostile {
        /// In front of `upstream` (`http://host:port/…`).
        pub fn start(upstream: &str) -> Hostile {
            let up = upstream
                .trim_start_matches("http://")
                .split('/')
                .next()
                .unwrap()
                .to_string();
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let port = listener.local_addr().unwrap().port();
            let rules: Arc<Mutex<Vec<Rule>>> = Arc::default();
            let log: Arc<Mutex<Vec<Seen>>> = Arc::default();
            let (r, l) = (rules.clone(), log.clone());
            std::thread::spawn(move || {
                for conn in listener.incoming().flatten() {
                    let (r, l, up) = (r.clone(), l.clone(), up.clone());
                    std::thread::spawn(move || {
                        let _ = handle(conn, &up, &r, &l);
                    });
                }
            });
            Hostile { port, rules, log }
        }

        /// The URL to give calplanebot.
        pub fn url(&self) -> String {
            format!("http://127.0.0.1:{}/", self.port)
        }

        /// Applies `act` to the next `times` requests of `method` whose path contains
        /// `path`; with `anonymous`, only to requests without credentials whose path
        /// equals `path`.
        pub fn add(&self, method: &str, path: &str, anonymous: bool, act: Act, times: usize) {
            self.rules.lock().unwrap().push(Rule {
                method: method.into(),
                path: path.into(),
                anonymous,
                act,
                times,
            });
        }

        /// Removes every rule: the server answers as itself again.
        pub fn rules_clear(&self) {
            self.rules.lock().unwrap().clear();
        }

        /// Requests of `method` seen so far.
        pub fn seen(&self, method: &str) -> Vec<Seen> {
            let log = self.log.lock().unwrap();
            log.iter().filter(|s| s.method == method).cloned().collect()
        }
    }

    /// `Edit` from a closure.
    pub fn edit(f: impl Fn(&mut Answer) + Send + Sync + 'static) -> Act {
        Act::Edit(Arc::new(f))
    }

    fn read_head(r: &mut BufReader<TcpStream>) -> std::io::Result<(String, Vec<(String, String)>)> {
        let mut first = String::new();
        r.read_line(&mut first)?;
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            if r.read_line(&mut line)? == 0 || line.trim_end().is_empty() {
                break;
            }
            if let Some((k, v)) = line.trim_end().split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        Ok((first.trim_end().to_string(), headers))
    }

    fn read_body(
        r: &mut BufReader<TcpStream>,
        headers: &[(String, String)],
        until_eof: bool,
    ) -> std::io::Result<Vec<u8>> {
        let get = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        let mut body = Vec::new();
        if let Some(n) = get("content-length").and_then(|v| v.parse::<usize>().ok()) {
            body.resize(n, 0);
            r.read_exact(&mut body)?;
        } else if get("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
            loop {
                let mut size = String::new();
                r.read_line(&mut size)?;
                let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16)
                    .unwrap_or(0);
                let mut chunk = vec![0; n + 2];
                r.read_exact(&mut chunk)?;
                if n == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..n]);
            }
        } else if until_eof {
            r.read_to_end(&mut body)?;
        }
        Ok(body)
    }

    fn write_answer(out: &mut TcpStream, status_line: &str, a: &Answer) -> std::io::Result<()> {
        write!(out, "{status_line}\r\n")?;
        for (k, v) in &a.headers {
            if !matches!(
                k.as_str(),
                "connection" | "keep-alive" | "content-length" | "transfer-encoding"
            ) {
                write!(out, "{k}: {v}\r\n")?;
            }
        }
        write!(
            out,
            "content-length: {}\r\nconnection: close\r\n\r\n",
            a.body.len()
        )?;
        out.write_all(&a.body)
    }

    fn handle(
        client: TcpStream,
        upstream: &str,
        rules: &Mutex<Vec<Rule>>,
        log: &Mutex<Vec<Seen>>,
    ) -> std::io::Result<()> {
        let mut reader = BufReader::new(client.try_clone()?);
        let (request_line, headers) = read_head(&mut reader)?;
        let body = read_body(&mut reader, &headers, false)?;
        let mut parts = request_line.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let path = parts.next().unwrap_or("").to_string();
        let anonymous = !headers.iter().any(|(k, _)| k == "authorization");
        log.lock().unwrap().push(Seen {
            method: method.clone(),
            path: path.clone(),
            headers: headers.clone(),
        });
        let act = {
            let mut rules = rules.lock().unwrap();
            rules
                .iter_mut()
                .find(|r| {
                    r.times > 0
                        && r.method == method
                        && (if r.anonymous {
                            path == r.path && anonymous
                        } else {
                            path.contains(&r.path)
                        })
                })
                .map(|r| {
                    r.times -= 1;
                    r.act.clone()
                })
        };
        let mut out = client;
        if let Some(Act::Reply(status, ctype, body)) = &act {
            let a = Answer {
                headers: vec![("content-type".into(), ctype.to_string())],
                body: body.clone(),
            };
            return write_answer(&mut out, &format!("HTTP/1.1 {status} Hostile"), &a);
        }
        let mut up = TcpStream::connect(upstream)?;
        write!(up, "{request_line}\r\n")?;
        for (k, v) in headers
            .iter()
            .filter(|(k, _)| k != "connection" && k != "keep-alive")
        {
            write!(up, "{k}: {v}\r\n")?;
        }
        write!(up, "connection: close\r\n\r\n")?;
        up.write_all(&body)?;
        let mut up_reader = BufReader::new(up);
        let (status_line, resp_headers) = read_head(&mut up_reader)?;
        let resp_body = read_body(&mut up_reader, &resp_headers, true)?;
        let mut answer = Answer {
            headers: resp_headers,
            body: resp_body,
        };
        match act {
            // The server did the work; the client never hears of it.
            Some(Act::Drop) => return Ok(()),
            Some(Act::Edit(f)) => f(&mut answer),
            _ => {}
        }
        write_answer(&mut out, &status_line, &answer)
    }

    /// Sets a header (name lower-case).
    pub fn set_header(a: &mut Answer, name: &str, value: &str) {
        a.headers.retain(|(k, _)| k != name);
        a.headers.push((name.into(), value.into()));
    }
}

use hostile::{edit, set_header, Act, Hostile};

/// Objects in this test's calendars, read from the server itself (not through the proxy,
/// whose faults are meant for calplanebot).
fn direct_objects(server: &Server, tag: &str) -> usize {
    common::dump(server, &server.url)
        .iter()
        .filter(|c| c.name.starts_with(&format!("Plane: {tag} ")))
        .map(|c| c.objects.len())
        .sum()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Deletes this test's calendars (named "Plane: TAG …") from the real server at the end.
/// Cyrus IMAP 3.6's answer to an anonymous Depth-0 PROPFIND of `/` (bytes as captured
/// from a real Cyrus): 207, `<unauthenticated/>` as principal, and no resourcetype.
const CYRUS_ROOT: &str = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<d:multistatus xmlns:d=\"DAV:\" xmlns:c=\"urn:ietf:params:xml:ns:caldav\">\n<d:response><d:href>/</d:href><d:propstat><d:prop><d:current-user-principal><d:unauthenticated/></d:current-user-principal></d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat><d:propstat><d:prop><c:calendar-home-set/><d:resourcetype/></d:prop><d:status>HTTP/1.1 404 Not Found</d:status></d:propstat></d:response></d:multistatus>";

/// Issue 9 item 7: a server root that answers anonymously with `<unauthenticated/>` is
/// not a calendar home. With a user name, calplanebot logs in and finds the real home;
/// without one, `test-caldav` fails with a hint instead of reporting OK.
#[test]
fn an_unauthenticated_root_is_not_taken_for_the_home() {
    let radicale = server("Radicale", "RADICALE");
    let proxy = Hostile::start(&radicale.url);
    proxy.add(
        "PROPFIND",
        "/",
        true,
        Act::Reply(207, "application/xml; charset=utf-8", CYRUS_ROOT.into()),
        usize::MAX,
    );
    let s = Setup::new(
        Server {
            url: proxy.url(),
            ..radicale.clone()
        },
        &[4],
    );
    let _cleanup = DeleteCalendars(radicale.clone(), s.tag.clone());
    let r = s.run(&["test-caldav"]);
    r.assert_ok();
    assert!(
        r.stdout
            .contains(&format!("Calendar home: /{}/", radicale.user)),
        "{}",
        r.stdout
    );
    let r = s.sync();
    r.assert_ok();
    assert!(r.count("Created") > 0);
    let mine: Vec<_> = common::dump(&radicale, &radicale.url)
        .into_iter()
        .filter(|c| c.name.starts_with(&format!("Plane: {} ", s.tag)))
        .collect();
    assert_eq!(mine.len(), 1, "{mine:?}");
    assert!(
        mine[0].url.contains(&format!("/{}/plane-", radicale.user)),
        "{}",
        mine[0].url
    );
    assert!(proxy
        .seen("MKCALENDAR")
        .iter()
        .all(|m| m.path.starts_with(&format!("/{}/", radicale.user))));

    // Without a user name nothing can log in: a clear error, never "OK".
    let mut anon = Setup::new(
        Server {
            url: proxy.url(),
            user: String::new(),
            password: String::new(),
            ..radicale
        },
        &[1],
    );
    anon.env.push(("CALDAV_AUTH_TYPE".into(), "auto".into()));
    let r = anon.run(&["test-caldav"]);
    assert_ne!(r.code, 0, "{}", r.stdout);
    assert!(!r.stdout.contains("CalDAV connection OK"), "{}", r.stdout);
    let line = last_line(&r);
    assert!(line.contains("not a collection"), "{line}");
    assert!(line.contains("CALDAV_USERNAME"), "{line}");
}

/// Issue 9 item 11: an MKCALENDAR whose answer is lost is not sent again blindly (the
/// second one's 405 used to be read as "name taken", leaving an empty "-2" calendar);
/// a DELETE whose ETag the server never listed still goes out with If-Match.
#[test]
fn a_lost_mkcalendar_answer_and_deletes_without_listed_etags() {
    let radicale = server("Radicale", "RADICALE");
    let proxy = Hostile::start(&radicale.url);
    proxy.add("MKCALENDAR", "/", false, Act::Drop, 1);
    let s = Setup::new(
        Server {
            url: proxy.url(),
            ..radicale.clone()
        },
        &[6],
    );
    let _cleanup = DeleteCalendars(radicale.clone(), s.tag.clone());
    let r = s.sync();
    r.assert_ok();
    assert_eq!(proxy.seen("MKCALENDAR").len(), 1, "sent once");
    let mine: Vec<_> = common::dump(&radicale, &radicale.url)
        .into_iter()
        .filter(|c| c.name.starts_with(&format!("Plane: {} ", s.tag)))
        .collect();
    assert_eq!(mine.len(), 1, "one calendar, no '-2': {mine:?}");
    assert!(
        mine[0]
            .url
            .trim_end_matches('/')
            .ends_with(&format!("plane-{}0", s.tag.to_lowercase())),
        "{}",
        mine[0].url
    );
    let created = r.count("Created");
    assert_eq!(mine[0].objects.len(), created);

    // From now on the server names no ETags: none on PUT, none in listings (GET still
    // has one). Items deleted in Plane must still be deleted with If-Match.
    proxy.add(
        "PROPFIND",
        "/",
        false,
        edit(|a| {
            let text = String::from_utf8_lossy(&a.body).into_owned();
            let mut out = String::new();
            let mut rest = text.as_str();
            while let Some(i) = rest.find("<getetag>") {
                out.push_str(&rest[..i]);
                let end = rest[i..]
                    .find("</getetag>")
                    .map_or(rest.len(), |j| i + j + 10);
                rest = &rest[end..];
            }
            out.push_str(rest);
            a.body = out.into_bytes();
        }),
        usize::MAX,
    );
    proxy.add(
        "PUT",
        "/",
        false,
        edit(|a| a.headers.retain(|(k, _)| k != "etag")),
        usize::MAX,
    );
    let new_item = s.fake.with_world(|w| {
        let ident = w.projects[0].identifier.clone();
        let id = w.add_item(&ident, "Created while the server hides ETags");
        w.set_target_date(&id, Some("2027-02-01"));
        id
    });
    let r = s.sync();
    r.assert_ok();
    assert_eq!(r.count("Created"), 1, "{}", r.stdout);
    s.fake.with_world(|w| w.delete(&new_item));
    let r = s.sync();
    r.assert_ok();
    assert_eq!(r.count("Deleted"), 1, "{}", r.stdout);
    let deletes = proxy.seen("DELETE");
    assert_eq!(deletes.len(), 1);
    assert!(deletes[0].path.contains(&new_item), "{deletes:?}");
    assert!(
        deletes[0]
            .header("if-match")
            .is_some_and(|e| e.starts_with('"')),
        "DELETE without If-Match: {deletes:?}"
    );
}

/// Issue 9 item 12: one byte that is not UTF-8 in one object of a REPORT served as
/// application/xml sets aside that object only, with an error naming it; the other
/// items of the project sync, and the object is repaired once it reads cleanly.
#[test]
fn one_invalid_utf8_object_does_not_fail_the_project() {
    let radicale = server("Radicale", "RADICALE");
    let proxy = Hostile::start(&radicale.url);
    let s = Setup::new(
        Server {
            url: proxy.url(),
            ..radicale.clone()
        },
        &[8],
    );
    let _cleanup = DeleteCalendars(radicale.clone(), s.tag.clone());
    s.sync().assert_ok();
    let before = direct_objects(&radicale, &s.tag);
    let dated: Vec<String> = s
        .calendar(0)
        .objects
        .iter()
        .map(|o| o.uid.clone())
        .collect();
    let id_of = |uid: &str| {
        let w = s.fake.world();
        w.projects[0]
            .visible_items()
            .into_iter()
            .find(|i| uid.contains(&i.id))
            .map(|i| i.id.clone())
            .unwrap()
    };
    let (bad, good) = (id_of(&dated[0]), id_of(&dated[1]));
    s.fake.with_world(|w| {
        w.rename(&bad, "renamed, but its event is unreadable");
        w.rename(&good, "renamed next to it");
    });
    let needle = bad.clone();
    proxy.add(
        "REPORT",
        "/",
        false,
        edit(move |a| {
            // A Latin-1 "é" where UTF-8 was promised, in the SUMMARY of that one object.
            let Some(at) = find(&a.body, needle.as_bytes()) else {
                return;
            };
            if let Some(summary) = find(&a.body[at..], b"SUMMARY:") {
                a.body.insert(at + summary + 8, 0xe9);
                set_header(a, "content-type", "application/xml; charset=utf-8");
            }
        }),
        usize::MAX,
    );
    proxy.add(
        "GET",
        &bad,
        false,
        edit(|a| {
            a.body.splice(0..0, b"\xff".iter().copied());
        }),
        usize::MAX,
    );
    let r = s.sync();
    assert_ne!(r.code, 0, "{}", r.stdout);
    let all = format!("{}{}", r.stdout, r.stderr);
    assert!(all.contains("not UTF-8"), "{all}");
    assert!(
        all.lines()
            .any(|l| l.contains("not UTF-8") && l.contains(&bad)),
        "the error names the object: {all}"
    );
    assert!(!all.contains("stream did not contain valid UTF-8"), "{all}");
    assert_eq!(r.count("Updated"), 1, "the other item syncs: {}", r.stdout);
    assert_eq!(r.count("Deleted"), 0);
    assert_eq!(direct_objects(&radicale, &s.tag), before, "nothing lost");

    proxy.rules_clear();
    let r = s.sync();
    r.assert_ok();
    assert_eq!(
        r.count("Updated"),
        1,
        "repaired once readable: {}",
        r.stdout
    );
}

/// Issue 9 item 13: a hostile server's resources. An element with 80,000 attributes
/// (quadratic to read before) and a multiget answer over the size limit each cost only
/// what they concern, with a clear error; the other projects sync.
#[test]
fn huge_and_attribute_bombed_answers_cost_only_their_own_part() {
    let radicale = server("Radicale", "RADICALE");
    let proxy = Hostile::start(&radicale.url);
    let s = Setup::new(
        Server {
            url: proxy.url(),
            ..radicale.clone()
        },
        &[6, 6, 6],
    );
    let _cleanup = DeleteCalendars(radicale.clone(), s.tag.clone());
    s.sync().assert_ok();
    let before = direct_objects(&radicale, &s.tag);
    let cal_path = |i: usize| format!("plane-{}{i}/", s.tag.to_lowercase());
    let renamed: Vec<String> = (0..3)
        .map(|i| {
            let uid = s.calendar(i).objects[0].uid.clone();
            let w = s.fake.world();
            w.projects[i]
                .visible_items()
                .into_iter()
                .find(|x| uid.contains(&x.id))
                .map(|x| x.id.clone())
                .unwrap()
        })
        .collect();
    s.fake.with_world(|w| {
        for id in &renamed {
            w.rename(id, "renamed while the server is hostile");
        }
    });
    let bomb: String = (0..80_000).map(|i| format!(" a{i}=\"{i}\"")).collect();
    proxy.add(
        "PROPFIND",
        &cal_path(0),
        false,
        edit(move |a| {
            if let Some(i) = find(&a.body, b"<prop>") {
                let element = format!("<x:junk xmlns:x=\"urn:x\"{bomb}/>");
                a.body.splice(i + 6..i + 6, element.into_bytes());
            }
        }),
        usize::MAX,
    );
    proxy.add(
        "REPORT",
        &cal_path(1),
        false,
        edit(|a| {
            if find(&a.body, b"calendar-data").is_some() {
                a.body.extend(std::iter::repeat_n(b' ', 40 << 20));
            }
        }),
        usize::MAX,
    );
    let r = s.sync();
    assert_ne!(r.code, 0, "{}", r.stdout);
    let all = format!("{}{}", r.stdout, r.stderr);
    assert!(all.contains("more than 1000 attributes"), "{all}");
    assert!(all.contains("larger than 32 MiB"), "{all}");
    // Project 0 could not be listed; project 1's object was set aside, unchanged.
    assert_eq!(r.count("Updated"), 1, "{}", r.stdout);
    assert_eq!(r.count("Skipped"), 1, "{}", r.stdout);
    assert_eq!(r.count("Errors"), 1, "{}", r.stdout);
    assert_eq!(r.count("Deleted"), 0);
    assert_eq!(direct_objects(&radicale, &s.tag), before, "nothing lost");

    proxy.rules_clear();
    let r = s.sync();
    r.assert_ok();
    assert_eq!(r.count("Updated"), 2, "{}", r.stdout);
}
