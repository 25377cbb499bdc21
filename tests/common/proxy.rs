//! A fault-injecting HTTP proxy in front of a real CalDAV server: requests pass through
//! unchanged unless a rule matches, then the real answer is replaced by a 500, mangled
//! into invalid XML/iCalendar, or delayed. This is how tests get "a server that answers
//! 500 or garbage" without faking the server itself.
//!
//! One request per connection (`Connection: close` both ways) keeps it simple; meant for
//! Radicale, which closes after every response anyway.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What to do to a matching exchange.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer with this status and a short body instead of forwarding.
    Status(u16),
    /// Forward, then replace `from` by `to` in the response body.
    Mangle(String, String),
    /// Forward, then wait before answering.
    Delay(Duration),
    /// Forward, then remove this response header (e.g. a PUT answered without ETag,
    /// which RFC 4791 allows when the server changed the data).
    DropHeader(String),
}

#[derive(Debug, Clone)]
struct Rule {
    method: String,
    path_contains: String,
    fault: Fault,
    remaining: usize,
}

/// The running proxy; stops accepting when dropped.
pub struct Proxy {
    port: u16,
    rules: Arc<Mutex<Vec<Rule>>>,
    /// Requests seen: (method, path).
    pub log: Arc<Mutex<Vec<(String, String)>>>,
}

impl Proxy {
    /// Proxies to `upstream` (`http://host:port/…`).
    pub fn start(upstream: &str) -> Proxy {
        let hostport = upstream
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap()
            .to_string();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let rules: Arc<Mutex<Vec<Rule>>> = Arc::default();
        let log: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
        let (r, l) = (rules.clone(), log.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (r, l, up) = (r.clone(), l.clone(), hostport.clone());
                std::thread::spawn(move || {
                    let _ = handle(conn, &up, &r, &l);
                });
            }
        });
        Proxy { port, rules, log }
    }

    /// The URL to give calplanebot instead of the server's.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// Applies `fault` to the next `times` requests with this method whose path contains
    /// `path_contains`.
    pub fn add(&self, method: &str, path_contains: &str, fault: Fault, times: usize) {
        self.rules.lock().unwrap().push(Rule {
            method: method.to_string(),
            path_contains: path_contains.to_string(),
            fault,
            remaining: times,
        });
    }
}

fn read_message(
    reader: &mut BufReader<TcpStream>,
    until_eof: bool,
) -> std::io::Result<(String, Vec<String>, Vec<u8>)> {
    let mut first = String::new();
    reader.read_line(&mut first)?;
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            break;
        }
        let line = line.trim_end().to_string();
        if line.is_empty() {
            break;
        }
        headers.push(line);
    }
    let len = headers.iter().find_map(|h| {
        let (k, v) = h.split_once(':')?;
        k.eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse::<usize>().ok())?
    });
    let mut body = Vec::new();
    match len {
        Some(n) => {
            body.resize(n, 0);
            reader.read_exact(&mut body)?;
        }
        None if until_eof => {
            reader.read_to_end(&mut body)?;
        }
        None => {}
    }
    Ok((first.trim_end().to_string(), headers, body))
}

fn without(headers: &[String], names: &[&str]) -> Vec<String> {
    headers
        .iter()
        .filter(|h| {
            let name = h.split(':').next().unwrap_or("");
            !names.iter().any(|n| name.eq_ignore_ascii_case(n))
        })
        .cloned()
        .collect()
}

fn handle(
    client: TcpStream,
    upstream: &str,
    rules: &Mutex<Vec<Rule>>,
    log: &Mutex<Vec<(String, String)>>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    let (request_line, headers, body) = read_message(&mut reader, false)?;
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    log.lock().unwrap().push((method.clone(), path.clone()));

    let fault = {
        let mut rules = rules.lock().unwrap();
        let hit = rules
            .iter_mut()
            .find(|r| r.remaining > 0 && r.method == method && path.contains(&r.path_contains));
        hit.map(|r| {
            r.remaining -= 1;
            r.fault.clone()
        })
    };
    let mut out = client;
    if let Some(Fault::Status(code)) = fault {
        let body = "injected failure";
        write!(
            out,
            "HTTP/1.1 {code} Injected\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )?;
        return Ok(());
    }

    let mut up = TcpStream::connect(upstream)?;
    write!(up, "{request_line}\r\n")?;
    for h in without(&headers, &["connection", "keep-alive"]) {
        write!(up, "{h}\r\n")?;
    }
    write!(up, "Connection: close\r\n\r\n")?;
    up.write_all(&body)?;
    let mut up_reader = BufReader::new(up);
    let (status_line, resp_headers, mut resp_body) = read_message(&mut up_reader, true)?;

    let mut dropped = vec![
        "connection",
        "keep-alive",
        "content-length",
        "transfer-encoding",
    ];
    match &fault {
        Some(Fault::Mangle(from, to)) => {
            let text = String::from_utf8_lossy(&resp_body).replace(from, to);
            resp_body = text.into_bytes();
        }
        Some(Fault::Delay(d)) => std::thread::sleep(*d),
        Some(Fault::DropHeader(name)) => dropped.push(name.as_str()),
        _ => {}
    }
    write!(out, "{status_line}\r\n")?;
    for h in without(&resp_headers, &dropped) {
        write!(out, "{h}\r\n")?;
    }
    write!(
        out,
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        resp_body.len()
    )?;
    out.write_all(&resp_body)?;
    Ok(())
}
