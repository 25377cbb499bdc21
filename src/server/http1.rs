//! A small HTTP/1.1 server for the service's handful of endpoints, built for hostile clients.
//!
//! One thread polls every connection (`poll(2)`, declared here like `signal()` in
//! [`crate::daemon`]: one symbol is not worth a crate). A connection costs a socket and
//! the bytes it sent, never a thread, so thousands of idle clients cost little, and a
//! client that stalls mid-request only holds its own connection until its deadline.
//!
//! Limits, each named below: the whole request (head and body) must arrive within
//! [`REQUEST_DEADLINE`]; the head is at most [`MAX_HEAD`] bytes; bodies need
//! `Content-Length` (chunked is refused with 411) and are capped by the caller; every
//! answer says `Connection: close`. At most [`max_connections`] are open: when full, the
//! oldest connection that has not finished its request is closed to make room, so a
//! flood of idle connections cannot keep a real client out. Accept failures (out of file
//! descriptors) are logged and retried after [`ACCEPT_BACKOFF`], never fatal.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

/// The request line and headers together, at most.
pub const MAX_HEAD: usize = 16 * 1024;
/// Header lines per request, at most.
pub const MAX_HEADERS: usize = 64;
/// From accept to the last byte of the body: a client slower than this is dropped.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(10);
/// Time to send the answer to a client that does not read it.
pub const WRITE_DEADLINE: Duration = Duration::from_secs(10);
/// After refusing a request whose body we did not read, how long we read and discard
/// the rest, so the client sees our answer instead of a connection reset.
pub const LINGER: Duration = Duration::from_secs(5);
/// Open connections at most, whatever the file descriptor limit allows.
pub const MAX_CONNECTIONS: usize = 4096;
/// File descriptors left to the rest of the process (journal, log, Plane and CalDAV
/// connections) when the connection cap is derived from `RLIMIT_NOFILE`.
pub const FD_RESERVE: usize = 64;
/// How long accepting pauses after the process ran out of file descriptors.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// Connections accepted per round, so that reading the open ones is not starved.
const ACCEPT_BURST: usize = 256;
/// The longest poll wait (deadlines are checked at least this often).
const MAX_POLL_WAIT: Duration = Duration::from_secs(1);
/// Bytes read per `read` call.
const READ_CHUNK: usize = 8 * 1024;
/// Bytes of a streamed body (a feed file) held per connection at a time: a large feed
/// costs each client this much memory, not its size.
const STREAM_CHUNK: usize = 16 * 1024;
/// The out-of-descriptors warning is logged at most this often.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// The methods the service routes; anything else is [`Method::Other`] (405).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// GET.
    Get,
    /// HEAD: answered like GET, without the body.
    Head,
    /// POST.
    Post,
    /// Any other method.
    Other,
}

/// A request read in full.
#[derive(Debug, Clone)]
pub struct Request {
    /// Its method.
    pub method: Method,
    /// The request target without the query string.
    pub path: String,
    /// The query string (after `?`), as sent; empty without one.
    pub query: String,
    /// Header lines as sent (names compared case-insensitively by [`Request::header`]).
    pub headers: Vec<(String, String)>,
    /// The body (`Content-Length` bytes).
    pub body: Vec<u8>,
}

impl Request {
    /// The first header named `name` (case-insensitive), trimmed.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
    }
}

/// An answer. Every answer closes the connection.
#[derive(Debug)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    content_type: &'static str,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    /// A body sent from files, chunk by chunk, instead of `body`.
    stream: Option<Stream>,
}

/// One piece of a streamed body.
#[derive(Debug)]
pub enum Part {
    /// Bytes in memory.
    Bytes(Vec<u8>),
    /// `len` bytes of `file` from `offset` (read with `pread`, so the file may be shared).
    File {
        /// The open file.
        file: File,
        /// Where the bytes start.
        offset: u64,
        /// How many.
        len: u64,
    },
}

/// A body sent in [`STREAM_CHUNK`]s from its parts.
#[derive(Debug)]
struct Stream {
    parts: VecDeque<Part>,
    len: u64,
}

impl Stream {
    /// Puts the next chunk into the empty `out`; leaves it empty at the end.
    fn next_chunk(&mut self, out: &mut Vec<u8>) -> std::io::Result<()> {
        while out.is_empty() {
            let Some(part) = self.parts.front_mut() else {
                return Ok(());
            };
            match part {
                Part::Bytes(b) => *out = std::mem::take(b),
                Part::File { file, offset, len } if *len > 0 => {
                    let n = (*len).min(STREAM_CHUNK as u64) as usize;
                    out.resize(n, 0);
                    let got = file.read_at(out, *offset)?;
                    if got == 0 {
                        // The file is shorter than its index said: the answer is broken.
                        return Err(ErrorKind::UnexpectedEof.into());
                    }
                    out.truncate(got);
                    *offset += got as u64;
                    *len -= got as u64;
                    continue;
                }
                Part::File { .. } => {}
            }
            self.parts.pop_front();
        }
        Ok(())
    }
}

impl Response {
    /// A JSON answer.
    pub fn json(status: u16, body: String) -> Response {
        Response {
            status,
            content_type: "application/json",
            headers: Vec::new(),
            body: body.into_bytes(),
            stream: None,
        }
    }

    /// An answer whose body is sent from `parts` (files) as the client takes it.
    pub fn stream(status: u16, content_type: &'static str, parts: Vec<Part>) -> Response {
        let len = parts
            .iter()
            .map(|p| match p {
                Part::Bytes(b) => b.len() as u64,
                Part::File { len, .. } => *len,
            })
            .sum();
        Response {
            status,
            content_type,
            headers: Vec::new(),
            body: Vec::new(),
            stream: Some(Stream {
                parts: parts.into(),
                len,
            }),
        }
    }

    /// 304 Not Modified: headers only, no body and no Content-Length (RFC 9110 §15.4.5).
    pub fn not_modified() -> Response {
        Response::text(304, "", String::new())
    }

    /// A text answer of the given content type.
    pub fn text(status: u16, content_type: &'static str, body: String) -> Response {
        Response {
            status,
            content_type,
            headers: Vec::new(),
            body: body.into_bytes(),
            stream: None,
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.push((name, value.into()));
        self
    }

    /// The bytes on the wire and the stream that follows them (none for HEAD).
    fn into_wire(mut self, head_only: bool) -> (Vec<u8>, Option<Stream>) {
        let stream = self.stream.take();
        let bytes = self.to_bytes(head_only, stream.as_ref().map(|s| s.len));
        (bytes, stream.filter(|_| !head_only))
    }

    /// The head and (unless `head_only` or `streamed`) the in-memory body.
    fn to_bytes(&self, head_only: bool, streamed: Option<u64>) -> Vec<u8> {
        let mut out = format!("HTTP/1.1 {} {}\r\n", self.status, reason(self.status));
        if self.status != 304 {
            let len = streamed.unwrap_or(self.body.len() as u64);
            out.push_str(&format!(
                "Content-Type: {}\r\nContent-Length: {len}\r\n",
                self.content_type
            ));
        }
        out.push_str("Connection: close\r\n");
        for (name, value) in &self.headers {
            // Values are ours, but a CR or LF would split the header: drop them.
            let value: String = value.chars().filter(|c| !c.is_control()).collect();
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        out.push_str("\r\n");
        let mut bytes = out.into_bytes();
        if !head_only && streamed.is_none() {
            bytes.extend_from_slice(&self.body);
        }
        bytes
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        202 => "Accepted",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// What the server asks of the application.
pub trait Handler {
    /// Answers a request read in full.
    fn handle(&mut self, request: &Request) -> Response;
    /// Answers a request refused before it was read in full (`path` when the request line
    /// could be read): too large, chunked, malformed. `why` is one line for the client.
    fn refused(&mut self, path: Option<&str>, status: u16, why: &str) -> Response;
    /// The largest body accepted for `path`.
    fn max_body(&self, path: &str) -> usize;
}

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Head {
    method: Method,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    content_length: usize,
    expect_continue: bool,
}

/// Why a head was refused: status and one line for the client.
type Refusal = (u16, &'static str);

/// Where the blank line that ends the head is: the index just past it. Scans from
/// `from` (a few bytes before where the last scan ended), so a client that sends one byte
/// at a time costs linear, not quadratic, time.
fn head_end(buf: &[u8], from: usize) -> Option<usize> {
    let start = from.saturating_sub(3);
    (start..buf.len()).find_map(|i| {
        if buf[i] != b'\n' {
            return None;
        }
        match buf.get(i + 1) {
            Some(b'\n') => Some(i + 2),
            Some(b'\r') if buf.get(i + 2) == Some(&b'\n') => Some(i + 3),
            _ => None,
        }
    })
}

fn parse_method(m: &str) -> Method {
    match m {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "POST" => Method::Post,
        _ => Method::Other,
    }
}

/// Parses the head (everything before the blank line).
fn parse_head(raw: &[u8]) -> Result<Head, Refusal> {
    let text = std::str::from_utf8(raw).map_err(|_| (400, "request head is not UTF-8"))?;
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let line = lines.next().unwrap_or("");
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err((400, "malformed request line"));
    };
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err((505, "only HTTP/1.0 and HTTP/1.1 are spoken here"));
    }
    if !target.starts_with('/') {
        return Err((400, "request target must be a path"));
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut head = Head {
        method: parse_method(method),
        path: path.to_string(),
        query: query.to_string(),
        headers: Vec::new(),
        content_length: 0,
        expect_continue: false,
    };
    let mut length: Option<usize> = None;
    for line in lines.filter(|l| !l.is_empty()) {
        if head.headers.len() >= MAX_HEADERS {
            return Err((431, "too many header lines"));
        }
        let (name, value) = header_line(line)?;
        if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err((411, "chunked bodies are not accepted: send Content-Length"));
        }
        if name.eq_ignore_ascii_case("content-length") {
            let n: usize = value
                .parse()
                .ok()
                .filter(|_| value.bytes().all(|b| b.is_ascii_digit()))
                .ok_or((400, "Content-Length is not a number"))?;
            if length.is_some_and(|l| l != n) {
                return Err((400, "conflicting Content-Length headers"));
            }
            length = Some(n);
        }
        if name.eq_ignore_ascii_case("expect") {
            head.expect_continue = value.eq_ignore_ascii_case("100-continue");
        }
        head.headers.push((name.to_string(), value.to_string()));
    }
    head.content_length = length.unwrap_or(0);
    Ok(head)
}

/// One `Name: value` line; the name must be an HTTP token (no folded lines, no spaces).
fn header_line(line: &str) -> Result<(&str, &str), Refusal> {
    let (name, value) = line.split_once(':').ok_or((400, "malformed header line"))?;
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() || !name.bytes().all(token) {
        return Err((400, "malformed header name"));
    }
    Ok((name, value.trim()))
}

/// Where a connection is in its one request.
#[derive(Debug)]
enum Phase {
    /// Reading the head; `scanned` bytes were already searched for its end.
    Head { scanned: usize },
    /// Reading `need` body bytes that start at `start` in the buffer.
    Body {
        head: Head,
        start: usize,
        need: usize,
    },
    /// Sending `out` (`sent` bytes so far), then the chunks of `stream`; `linger` when
    /// input was left unread.
    Write {
        out: Vec<u8>,
        sent: usize,
        linger: bool,
        stream: Option<Stream>,
    },
    /// Answer sent; discarding what the client still sends until EOF or the deadline.
    Drain,
}

struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    phase: Phase,
    opened: Instant,
    deadline: Instant,
}

/// What became of a connection after it was serviced.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    Keep,
    Close,
}

impl Conn {
    fn new(stream: TcpStream, now: Instant) -> Conn {
        Conn {
            stream,
            buf: Vec::new(),
            phase: Phase::Head { scanned: 0 },
            opened: now,
            deadline: now + REQUEST_DEADLINE,
        }
    }

    fn reading(&self) -> bool {
        matches!(self.phase, Phase::Head { .. } | Phase::Body { .. })
    }

    fn wants_write(&self) -> bool {
        matches!(self.phase, Phase::Write { .. })
    }

    /// Reads what is available (up to `limit` buffered bytes). `Ok(true)` when the client
    /// has finished sending (a half-closed client may still want its answer); `Err` when
    /// the connection broke.
    fn fill(&mut self, limit: usize) -> Result<bool, ()> {
        let mut chunk = [0u8; READ_CHUNK];
        while self.buf.len() < limit {
            match self.stream.read(&mut chunk) {
                Ok(0) => return Ok(true),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => return Err(()),
            }
        }
        Ok(false)
    }

    fn start_write(&mut self, bytes: Vec<u8>, linger: bool, now: Instant) {
        self.start_stream(bytes, None, linger, now);
    }

    fn start_stream(&mut self, bytes: Vec<u8>, stream: Option<Stream>, linger: bool, now: Instant) {
        self.phase = Phase::Write {
            out: bytes,
            sent: 0,
            linger,
            stream,
        };
        self.deadline = now + WRITE_DEADLINE;
    }

    fn refuse<H: Handler>(&mut self, h: &mut H, path: Option<&str>, r: Refusal, now: Instant) {
        let response = h.refused(path, r.0, r.1);
        self.start_write(response.into_wire(false).0, true, now);
    }

    /// Reading: advance the request as far as the bytes allow.
    fn on_readable<H: Handler>(&mut self, h: &mut H, now: Instant) -> Next {
        let limit = match &self.phase {
            Phase::Head { .. } => MAX_HEAD + 1,
            Phase::Body { start, need, .. } => start + need,
            _ => return Next::Keep,
        };
        let Ok(eof) = self.fill(limit) else {
            return Next::Close;
        };
        self.advance(h, now);
        if eof && self.reading() {
            // The client stopped sending before its request was whole.
            return Next::Close;
        }
        Next::Keep
    }

    /// Moves from head to body to answer as far as the buffered bytes allow.
    fn advance<H: Handler>(&mut self, h: &mut H, now: Instant) {
        if let Phase::Head { scanned } = self.phase {
            let Some(end) = head_end(&self.buf, scanned) else {
                if self.buf.len() > MAX_HEAD {
                    self.refuse(h, None, (431, "request head too large"), now);
                } else {
                    self.phase = Phase::Head {
                        scanned: self.buf.len(),
                    };
                }
                return;
            };
            let head = match parse_head(&self.buf[..end]) {
                Ok(head) => head,
                Err(r) => return self.refuse(h, None, r, now),
            };
            if head.content_length > h.max_body(&head.path) {
                let path = head.path.clone();
                return self.refuse(h, Some(&path), (413, "body too large"), now);
            }
            if head.expect_continue && head.content_length > self.buf.len() - end {
                // Best effort: 25 bytes always fit an empty socket buffer.
                let _ = self.stream.write(b"HTTP/1.1 100 Continue\r\n\r\n");
            }
            let need = head.content_length;
            self.phase = Phase::Body {
                head,
                start: end,
                need,
            };
        }
        self.finish_if_complete(h, now);
    }

    fn finish_if_complete<H: Handler>(&mut self, h: &mut H, now: Instant) {
        let Phase::Body { head, start, need } = &self.phase else {
            return;
        };
        if self.buf.len() < start + need {
            return;
        }
        let request = Request {
            method: head.method,
            path: head.path.clone(),
            query: head.query.clone(),
            headers: head.headers.clone(),
            body: self.buf[*start..start + need].to_vec(),
        };
        let head_only = head.method == Method::Head;
        let response = h.handle(&request);
        self.buf = Vec::new();
        let (bytes, stream) = response.into_wire(head_only);
        self.start_stream(bytes, stream, false, now);
    }

    /// Writing: send what the socket takes.
    fn on_writable(&mut self, now: Instant) -> Next {
        let Phase::Write {
            out,
            sent,
            linger,
            stream,
        } = &mut self.phase
        else {
            return Next::Keep;
        };
        loop {
            while *sent < out.len() {
                match self.stream.write(&out[*sent..]) {
                    Ok(0) => return Next::Close,
                    Ok(n) => *sent += n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => return Next::Keep,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(_) => return Next::Close,
                }
            }
            let Some(body) = stream.as_mut() else {
                break;
            };
            out.clear();
            *sent = 0;
            if body.next_chunk(out).is_err() {
                return Next::Close;
            }
            if out.is_empty() {
                *stream = None;
                break;
            }
            // A streamed body may be large: the deadline is for a client that stalls,
            // not for one that reads steadily.
            self.deadline = now + WRITE_DEADLINE;
        }
        if !*linger {
            return Next::Close;
        }
        let _ = self.stream.shutdown(Shutdown::Write);
        self.phase = Phase::Drain;
        self.buf = Vec::new();
        self.deadline = now + LINGER;
        Next::Keep
    }

    /// Draining: discard input until EOF.
    fn on_drain(&mut self) -> Next {
        let mut chunk = [0u8; READ_CHUNK];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return Next::Close,
                Ok(_) => continue,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Next::Keep,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => return Next::Close,
            }
        }
    }

    /// Past its deadline: a client still sending its request gets a best-effort 408.
    fn expire(&mut self) {
        if self.reading() {
            let r = Response::json(408, r#"{"detail":"request not received in time"}"#.into());
            let _ = self.stream.write(&r.into_wire(false).0);
        }
    }
}

#[repr(C)]
struct PollFd {
    fd: i32,
    events: i16,
    revents: i16,
}

const POLLIN: i16 = 0x1;
const POLLOUT: i16 = 0x4;
const POLLERR: i16 = 0x8;
const POLLHUP: i16 = 0x10;
const POLLNVAL: i16 = 0x20;

extern "C" {
    fn poll(fds: *mut PollFd, nfds: std::ffi::c_ulong, timeout: i32) -> i32;
}

/// Waits until one of `fds` is ready or `wait` passed. An interrupted wait (a signal)
/// counts as "nothing ready".
fn wait_ready(fds: &mut [PollFd], wait: Duration) {
    let ms = wait.as_millis().min(i32::MAX as u128) as i32;
    // SAFETY: `fds` is a valid, exclusively borrowed slice of `#[repr(C)]` pollfd
    // structs for the duration of the call, and its length is passed with it.
    unsafe {
        poll(fds.as_mut_ptr(), fds.len() as std::ffi::c_ulong, ms);
    }
}

/// `RLIMIT_NOFILE` as `getrlimit`/`setrlimit` see it. musl's `rlim_t` is 64-bit
/// everywhere; glibc's is `unsigned long`.
#[cfg(target_env = "musl")]
type Rlim = u64;
#[cfg(not(target_env = "musl"))]
type Rlim = std::ffi::c_ulong;

#[repr(C)]
struct Rlimit {
    cur: Rlim,
    max: Rlim,
}

#[cfg(any(target_arch = "mips", target_arch = "mips64"))]
const RLIMIT_NOFILE: i32 = 5;
#[cfg(not(any(target_arch = "mips", target_arch = "mips64")))]
const RLIMIT_NOFILE: i32 = 7;

extern "C" {
    fn getrlimit(resource: i32, rlim: *mut Rlimit) -> i32;
    fn setrlimit(resource: i32, rlim: *const Rlimit) -> i32;
}

/// The soft and hard open-file limits, if they can be read.
#[allow(
    clippy::unnecessary_cast,
    reason = "rlim_t is 32-bit on 32-bit glibc, 64-bit elsewhere"
)]
fn nofile_limits() -> Option<(u64, u64)> {
    let mut r = Rlimit { cur: 0, max: 0 };
    // SAFETY: `r` is a valid, writable rlimit struct of the platform's layout.
    let rc = unsafe { getrlimit(RLIMIT_NOFILE, &mut r) };
    (rc == 0).then_some((r.cur as u64, r.max as u64))
}

/// Raises the soft open-file limit toward the hard one (systemd's soft default is 1024,
/// its hard default 524288), up to what [`MAX_CONNECTIONS`] needs. Returns the soft limit
/// now in force (`None` when it cannot be read).
pub fn raise_fd_limit() -> Option<u64> {
    let (soft, hard) = nofile_limits()?;
    let want = ((MAX_CONNECTIONS + 2 * FD_RESERVE) as u64).min(hard);
    if want > soft {
        let r = Rlimit {
            cur: want as Rlim,
            max: hard as Rlim,
        };
        // SAFETY: `r` is a valid rlimit struct; raising the soft limit up to the hard
        // limit needs no privilege and affects only this process.
        if unsafe { setrlimit(RLIMIT_NOFILE, &r) } == 0 {
            return Some(want);
        }
    }
    Some(soft)
}

/// How many connections may be open at once: [`MAX_CONNECTIONS`], or fewer when the
/// open-file limit leaves less after [`FD_RESERVE`].
pub fn max_connections() -> usize {
    let soft = nofile_limits().map_or(1024, |(soft, _)| soft);
    let room = (soft as usize).saturating_sub(FD_RESERVE).max(8);
    room.min(MAX_CONNECTIONS)
}

/// The server loop's state.
struct Server<H> {
    listener: TcpListener,
    handler: H,
    conns: Vec<Conn>,
    cap: usize,
    accept_paused_until: Option<Instant>,
    last_warning: Option<Instant>,
}

/// Serves `listener` with `handler`, forever (the thread ends with the process).
pub fn serve<H: Handler>(listener: TcpListener, handler: H) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let cap = max_connections();
    log::debug!("HTTP: at most {cap} connections");
    let mut server = Server {
        listener,
        handler,
        conns: Vec::new(),
        cap,
        accept_paused_until: None,
        last_warning: None,
    };
    loop {
        server.round();
    }
}

impl<H: Handler> Server<H> {
    /// One poll round: wait, accept, service ready connections, drop expired ones.
    fn round(&mut self) {
        let now = Instant::now();
        let accepting = self.accept_paused_until.is_none_or(|t| now >= t);
        let mut fds = Vec::with_capacity(self.conns.len() + 1);
        fds.push(PollFd {
            fd: self.listener.as_raw_fd(),
            events: if accepting { POLLIN } else { 0 },
            revents: 0,
        });
        for c in &self.conns {
            fds.push(PollFd {
                fd: c.stream.as_raw_fd(),
                events: if c.wants_write() { POLLOUT } else { POLLIN },
                revents: 0,
            });
        }
        wait_ready(&mut fds, self.poll_wait(now, accepting));
        let now = Instant::now();
        // Service in reverse so swap_remove keeps the indices still to visit valid.
        for i in (0..self.conns.len()).rev() {
            let ready = fds[i + 1].revents;
            if ready != 0 && self.service(i, ready, now) == Next::Close {
                self.conns.swap_remove(i);
            }
        }
        self.expire(now);
        if accepting && fds[0].revents & POLLIN != 0 {
            self.accept(now);
        }
    }

    /// Until the earliest deadline (or the end of an accept pause), at most a second.
    fn poll_wait(&self, now: Instant, accepting: bool) -> Duration {
        let mut until = now + MAX_POLL_WAIT;
        for c in &self.conns {
            until = until.min(c.deadline);
        }
        if let (false, Some(t)) = (accepting, self.accept_paused_until) {
            until = until.min(t);
        }
        until.saturating_duration_since(now)
    }

    fn service(&mut self, i: usize, ready: i16, now: Instant) -> Next {
        let c = &mut self.conns[i];
        if ready & POLLNVAL != 0 {
            return Next::Close;
        }
        match c.phase {
            Phase::Write { .. } if ready & (POLLOUT | POLLERR | POLLHUP) != 0 => {
                let next = c.on_writable(now);
                // A tiny answer may be written at once; don't wait a round to drain.
                if next == Next::Keep && matches!(c.phase, Phase::Drain) {
                    return c.on_drain();
                }
                next
            }
            Phase::Drain => c.on_drain(),
            Phase::Head { .. } | Phase::Body { .. } => {
                let next = c.on_readable(&mut self.handler, now);
                if next == Next::Keep && c.wants_write() {
                    // Answer right away: the socket is almost always writable.
                    return c.on_writable(now);
                }
                next
            }
            _ => Next::Keep,
        }
    }

    fn expire(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.conns.len() {
            if self.conns[i].deadline <= now {
                let mut c = self.conns.swap_remove(i);
                if c.reading() {
                    log::debug!("HTTP: dropping a client that did not finish its request in time");
                }
                c.expire();
            } else {
                i += 1;
            }
        }
    }

    fn accept(&mut self, now: Instant) {
        for _ in 0..ACCEPT_BURST {
            match self.listener.accept() {
                Ok((stream, _)) => self.admit(stream, now),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if is_out_of_resources(&e) => {
                    self.on_exhausted(&e, now);
                    return;
                }
                // A client that reset before we accepted it, and the like: next.
                Err(e) => log::debug!("HTTP: accept: {e}"),
            }
        }
    }

    fn admit(&mut self, stream: TcpStream, now: Instant) {
        if stream.set_nonblocking(true).is_err() {
            return;
        }
        let _ = stream.set_nodelay(true);
        if self.conns.len() >= self.cap {
            self.evict_oldest();
        }
        self.conns.push(Conn::new(stream, now));
    }

    /// Closes the oldest connection still sending its request (idle ones first in
    /// practice: a real request completes in milliseconds).
    fn evict_oldest(&mut self) {
        let oldest = self
            .conns
            .iter()
            .enumerate()
            .filter(|(_, c)| c.reading())
            .min_by_key(|(_, c)| c.opened)
            .map(|(i, _)| i);
        if let Some(i) = oldest {
            self.conns.swap_remove(i);
        }
    }

    /// Out of file descriptors: make room, pause accepting a moment, and say so once in a
    /// while (not once per refused client).
    fn on_exhausted(&mut self, e: &std::io::Error, now: Instant) {
        self.evict_oldest();
        self.accept_paused_until = Some(now + ACCEPT_BACKOFF);
        if self
            .last_warning
            .is_none_or(|t| now.duration_since(t) >= WARN_EVERY)
        {
            self.last_warning = Some(now);
            log::warn!(
                "HTTP: cannot accept connections: {e} ({} open; the oldest idle ones are closed to make room; hint: raise the open-file limit, e.g. LimitNOFILE= in systemd)",
                self.conns.len()
            );
        }
    }
}

/// EMFILE, ENFILE, ENOBUFS, ENOMEM: the process or system is out of something that
/// closing connections or waiting gives back.
fn is_out_of_resources(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(12 | 23 | 24 | 105))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_end_is_found_across_reads() {
        let buf = b"GET / HTTP/1.1\r\nHost: x\r\n\r\nbody";
        assert_eq!(head_end(buf, 0), Some(27));
        // Resuming after a scan that stopped in the middle of the blank line.
        assert_eq!(head_end(buf, 26), Some(27));
        assert_eq!(head_end(b"GET / HTTP/1.0\n\n", 0), Some(16));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: x\r\n", 0), None);
    }

    #[test]
    fn heads_parse_and_hostile_ones_are_refused() {
        let h = parse_head(
            b"POST /webhook?x=1 HTTP/1.1\r\nContent-Length: 12\r\nExpect: 100-continue\r\n",
        )
        .unwrap();
        assert_eq!(h.method, Method::Post);
        assert_eq!(h.path, "/webhook");
        assert_eq!(h.content_length, 12);
        assert!(h.expect_continue);
        for (raw, status) in [
            (&b"GET /\r\n"[..], 400),
            (b"GET / HTTP/2.0\r\n", 505),
            (b"GET http://x/ HTTP/1.1\r\n", 400),
            (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n", 411),
            (b"POST / HTTP/1.1\r\nContent-Length: -1\r\n", 400),
            (b"POST / HTTP/1.1\r\nContent-Length: +5\r\n", 400),
            (
                b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n",
                400,
            ),
            (b"GET / HTTP/1.1\r\n folded\r\n", 400),
            (b"GET / HTTP/1.1\r\nBad Name: x\r\n", 400),
            (b"GET / HTTP/1.1\r\n\xff: x\r\n", 400),
        ] {
            assert_eq!(
                parse_head(raw).map(|_| ()).unwrap_err().0,
                status,
                "{}",
                String::from_utf8_lossy(raw)
            );
        }
        let many: String = (0..=MAX_HEADERS).map(|i| format!("X-{i}: y\r\n")).collect();
        let raw = format!("GET / HTTP/1.1\r\n{many}");
        assert_eq!(parse_head(raw.as_bytes()).unwrap_err().0, 431);
    }

    #[test]
    fn answers_close_and_head_has_no_body() {
        let r = Response::json(200, "{}".into()).with_header("X-A", "b\r\nInjected: yes");
        let text = String::from_utf8(r.to_bytes(false, None)).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        assert!(text.contains("Connection: close\r\n"));
        assert!(text.contains("X-A: bInjected: yes\r\n"));
        assert!(text.ends_with("\r\n\r\n{}"));
        let head = String::from_utf8(r.to_bytes(true, None)).unwrap();
        assert!(head.ends_with("\r\n\r\n") && head.contains("Content-Length: 2\r\n"));
    }

    #[test]
    fn streamed_bodies_come_in_chunks_and_head_gets_their_length() {
        let path = std::env::temp_dir().join(format!("cpb-stream-{}", std::process::id()));
        let content: Vec<u8> = (0..STREAM_CHUNK * 2 + 10)
            .map(|i| (i % 251) as u8)
            .collect();
        std::fs::write(&path, &content).unwrap();
        let part = || Part::File {
            file: File::open(&path).unwrap(),
            offset: 5,
            len: content.len() as u64 - 5,
        };
        let r = Response::stream(
            200,
            "text/calendar",
            vec![Part::Bytes(b"<".to_vec()), part()],
        );
        let (head, stream) = r.into_wire(false);
        let head = String::from_utf8(head).unwrap();
        assert!(head.contains(&format!("Content-Length: {}\r\n", content.len() - 4)));
        assert!(head.ends_with("\r\n\r\n"), "no body in the head: {head}");
        let mut stream = stream.unwrap();
        let mut body = Vec::new();
        let mut chunks = 0;
        loop {
            let mut out = Vec::new();
            stream.next_chunk(&mut out).unwrap();
            if out.is_empty() {
                break;
            }
            assert!(out.len() <= STREAM_CHUNK);
            chunks += 1;
            body.extend(out);
        }
        assert_eq!(body[0], b'<');
        assert_eq!(&body[1..], &content[5..]);
        assert_eq!(chunks, 4);
        let r = Response::stream(200, "text/calendar", vec![part()]);
        let (head, stream) = r.into_wire(true);
        assert!(stream.is_none(), "HEAD sends no body");
        assert!(String::from_utf8(head)
            .unwrap()
            .contains("Content-Length: "));
        let text = String::from_utf8(Response::not_modified().into_wire(false).0).unwrap();
        assert!(text.starts_with("HTTP/1.1 304 Not Modified\r\n"));
        assert!(!text.contains("Content-Length") && !text.contains("Content-Type"));
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn fd_limit_is_readable_and_the_cap_leaves_a_reserve() {
        let before = nofile_limits().expect("getrlimit");
        let now = raise_fd_limit().expect("getrlimit");
        assert!(now >= before.0.min(before.1));
        assert!(max_connections() <= MAX_CONNECTIONS);
        assert!(max_connections() as u64 + FD_RESERVE as u64 <= now.max(72));
    }
}
