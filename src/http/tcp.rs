//! Our TCP transport for ureq: ureq's own, minus the per-connection costs that add up
//! when a server closes every connection (Radicale speaks HTTP/1.0, so an initial sync of
//! 2,000 events opens 2,000 connections):
//! - Buffers are reused: ureq's `LazyBuffers` allocates and zero-fills its input and output
//!   buffers for every connection (24 KiB with our sizes, as a byte loop at
//!   `opt-level = "z"`: ~19 % of an initial sync's instructions). Here a connection takes a
//!   pair from a small pool and gives it back when it closes; stale bytes in them are never
//!   read (ureq writes before it reads, as with any buffer).
//! - A request goes out in one write: ureq hands over the head and then the body; they are
//!   gathered in the output buffer and sent when ureq waits for the answer (or the buffer is
//!   half full), so a small PUT is one `sendto` and one TCP segment instead of two.
//! - Socket timeouts are set when they change by more than [`TIMEOUT_SLACK`], not before
//!   every read and write (ureq sets them each time, because its remaining time shrinks).
//!
//! This uses ureq's `unversioned` transport API (not covered by its semver promise): a ureq
//! upgrade may need this file adjusted.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, Either, NextTimeout, ShutdownHandle, Transport,
};
use ureq::Error;

/// Buffer pairs kept for reuse. One is in use at a time (each client sends one request at
/// a time); a few more cover the Plane and CalDAV clients of one process.
const POOLED_BUFFERS: usize = 4;

/// A socket timeout is left as it is while the wanted one is at most this much shorter
/// (a read may then end this much after ureq's deadline) and not longer (never earlier).
pub const TIMEOUT_SLACK: Duration = Duration::from_secs(1);

/// Scratch space ureq needs in the input buffer to read a request body through (ureq's
/// `LazyBuffers` grows the input buffer to give it this much, so do we).
const MIN_TMP_BYTES: usize = 10 * 1024;

/// The fastest way to connect: reuses connection buffers between connections.
#[derive(Debug, Default)]
pub struct TcpConnector {
    pool: Arc<BufferPool>,
}

/// Spare buffer pairs (input, output), all zero-filled once when first made.
#[derive(Debug, Default)]
struct BufferPool(Mutex<Vec<(Vec<u8>, Vec<u8>)>>);

impl BufferPool {
    /// A pair of at least the sizes asked for: a spare one, or a new one.
    fn take(&self, input: usize, output: usize) -> (Vec<u8>, Vec<u8>) {
        let mut spare = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match spare
            .iter()
            .position(|(i, o)| i.len() >= input && o.len() >= output)
        {
            Some(at) => spare.swap_remove(at),
            None => (vec![0; input], vec![0; output]),
        }
    }

    /// Keeps a pair for the next connection, unless the pool is full.
    fn give(&self, pair: (Vec<u8>, Vec<u8>)) {
        let mut spare = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if spare.len() < POOLED_BUFFERS {
            spare.push(pair);
        }
    }
}

impl<In: Transport> Connector<In> for TcpConnector {
    type Out = Either<In, TcpTransport>;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, Error> {
        // A connection opened before us (a proxy's) is used as it is.
        if let Some(chained) = chained {
            return Ok(Some(Either::A(chained)));
        }
        let stream = connect_any(details)?;
        if details.config.no_delay() {
            stream.set_nodelay(true)?;
        }
        let config = details.config;
        let (input, output) = self
            .pool
            .take(config.input_buffer_size(), config.output_buffer_size());
        let transport = TcpTransport {
            stream: Arc::new(stream),
            buffers: PooledBuffers {
                input,
                output,
                filled: 0,
                consumed: 0,
                pending: 0,
                progress: false,
                pool: Arc::downgrade(&self.pool),
            },
            read_timeout: None,
            write_timeout: None,
        };
        let handle: Arc<dyn ShutdownHandle> = transport.stream.clone();
        (details.register_shutdown)(Arc::downgrade(&handle))?;
        Ok(Some(Either::B(transport)))
    }
}

/// Connects to the first address that answers. The time left is shared among the
/// addresses as ureq shares it (halving: 1/2, 1/4, … of the budget, summing to all of
/// it), so an unreachable first address (IPv6 without a route) leaves time for the next.
fn connect_any(details: &ConnectionDetails) -> Result<TcpStream, Error> {
    let addrs = &details.addrs;
    let budget = details.timeout.not_zero().map(|t| *t);
    let total_weight = 2.0 * (1.0 - 0.5_f64.powi(addrs.len() as i32));
    let mut weight = 1.0_f64;
    let mut last = None;
    for addr in addrs.iter() {
        let per_addr = budget.map(|b| {
            b.mul_f64(weight / total_weight)
                .max(Duration::from_millis(10))
        });
        weight /= 2.0;
        match connect_one(*addr, per_addr) {
            Ok(stream) => return Ok(stream),
            Err(e) if is_addr_specific(&e) || e.kind() == io::ErrorKind::TimedOut => {
                last = Some(e);
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(match last {
        Some(e) if e.kind() == io::ErrorKind::TimedOut => Error::Timeout(ureq::Timeout::Connect),
        Some(e) => e.into(),
        None => io::Error::new(io::ErrorKind::ConnectionRefused, "Connection refused").into(),
    })
}

fn connect_one(addr: SocketAddr, timeout: Option<Duration>) -> io::Result<TcpStream> {
    match timeout {
        Some(t) => TcpStream::connect_timeout(&addr, t),
        None => TcpStream::connect(addr),
    }
}

/// Failures that concern one address only, so the next may still work (as ureq decides).
fn is_addr_specific(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::HostUnreachable
            | io::ErrorKind::NetworkUnreachable
            | io::ErrorKind::NetworkDown
            | io::ErrorKind::AddrNotAvailable
    )
}

/// One TCP connection.
#[derive(Debug)]
pub struct TcpTransport {
    /// Shared (weakly) with ureq's shutdown handle, which can end a blocked read.
    stream: Arc<TcpStream>,
    buffers: PooledBuffers,
    /// The socket's read timeout as last set.
    read_timeout: Option<Duration>,
    /// The socket's write timeout as last set.
    write_timeout: Option<Duration>,
}

/// Whether the socket timeout `current` must change for `wanted` (see [`TIMEOUT_SLACK`]).
fn timeout_stale(current: Option<Duration>, wanted: Option<Duration>) -> bool {
    match (current, wanted) {
        (Some(c), Some(w)) => w > c || c - w > TIMEOUT_SLACK,
        (c, w) => c != w,
    }
}

impl TcpTransport {
    /// Sends what ureq has handed over and not yet sent.
    fn flush(&mut self, timeout: NextTimeout) -> Result<(), Error> {
        if self.buffers.pending == 0 {
            return Ok(());
        }
        let timeout = timeout.for_write();
        let wanted = timeout.not_zero().map(|t| *t);
        if timeout_stale(self.write_timeout, wanted) {
            self.stream.set_write_timeout(wanted)?;
            self.write_timeout = wanted;
        }
        let pending = std::mem::take(&mut self.buffers.pending);
        (&*self.stream)
            .write_all(&self.buffers.output[..pending])
            .map_err(|e| io_error(e, timeout))
    }
}

/// ureq's error for a failed read or write: a timeout as ureq names it.
fn io_error(e: io::Error, timeout: NextTimeout) -> Error {
    match e.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => Error::Timeout(timeout.reason),
        _ => e.into(),
    }
}

impl Transport for TcpTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), Error> {
        if timeout.for_write().after.is_zero() {
            return Err(Error::Timeout(timeout.for_write().reason));
        }
        self.buffers.pending += amount;
        // Keep at least half the buffer for ureq's next piece (a body chunk).
        if self.buffers.pending > self.buffers.output.len() / 2 {
            self.flush(timeout)?;
        }
        Ok(())
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, Error> {
        self.flush(timeout)?;
        let timeout = timeout.for_read();
        if timeout.after.is_zero() {
            return Err(Error::Timeout(timeout.reason));
        }
        let wanted = timeout.not_zero().map(|t| *t);
        if timeout_stale(self.read_timeout, wanted) {
            self.stream.set_read_timeout(wanted)?;
            self.read_timeout = wanted;
        }
        let started = std::time::Instant::now();
        let amount = loop {
            match (&*self.stream).read(self.buffers.input_append_buf()) {
                // A signal (SIGTERM to the service) ends a read with a timeout set: Linux
                // does not restart it. Read on with the time that is left.
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                    let left = wanted.map(|w| w.saturating_sub(started.elapsed()));
                    if left.is_some_and(|l| l.is_zero()) {
                        return Err(Error::Timeout(timeout.reason));
                    }
                    if left != self.read_timeout {
                        self.stream.set_read_timeout(left)?;
                        self.read_timeout = left;
                    }
                }
                result => break result.map_err(|e| io_error(e, timeout))?,
            }
        };
        self.buffers.filled += amount;
        Ok(amount > 0)
    }

    fn is_open(&mut self) -> bool {
        // A kept-alive connection is usable when reading would block: nothing arrived
        // unasked and the server has not closed it.
        let stream = &*self.stream;
        if stream.set_nonblocking(true).is_err() {
            return false;
        }
        let idle = matches!(stream.peek(&mut [0]), Err(e) if e.kind() == io::ErrorKind::WouldBlock);
        stream.set_nonblocking(false).is_ok() && idle
    }
}

/// A connection's input and output buffers, from the pool and back to it on drop.
#[derive(Debug)]
struct PooledBuffers {
    input: Vec<u8>,
    output: Vec<u8>,
    /// Input bytes read from the socket (from the start of `input`).
    filled: usize,
    /// Input bytes ureq has used.
    consumed: usize,
    /// Output bytes handed over by ureq and not yet sent (from the start of `output`).
    pending: usize,
    /// Whether ureq's last `input_consume` used any bytes (see [`Buffers::can_use_input`]).
    progress: bool,
    pool: Weak<BufferPool>,
}

impl PooledBuffers {
    /// Moves unconsumed input to the front when that frees room (as ureq's buffer does).
    fn shift(&mut self) {
        if self.consumed == 0 {
            return;
        }
        if self.consumed == self.filled {
            (self.consumed, self.filled) = (0, 0);
        } else if self.filled > self.input.len() / 2 {
            self.input.copy_within(self.consumed..self.filled, 0);
            self.filled -= self.consumed;
            self.consumed = 0;
        }
    }
}

impl Drop for PooledBuffers {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.upgrade() {
            let pair = (
                std::mem::take(&mut self.input),
                std::mem::take(&mut self.output),
            );
            pool.give(pair);
        }
    }
}

impl Buffers for PooledBuffers {
    fn output(&mut self) -> &mut [u8] {
        &mut self.output[self.pending..]
    }

    fn input(&self) -> &[u8] {
        &self.input[self.consumed..self.filled]
    }

    fn input_append_buf(&mut self) -> &mut [u8] {
        self.shift();
        &mut self.input[self.filled..]
    }

    fn input_appended(&mut self, amount: usize) {
        self.filled = (self.filled + amount).min(self.input.len());
    }

    fn input_consume(&mut self, amount: usize) {
        self.progress = amount > 0;
        self.consumed = (self.consumed + amount).min(self.filled);
    }

    fn tmp_and_output(&mut self) -> (&mut [u8], &mut [u8]) {
        self.shift();
        let free = self.input.len() - self.filled;
        if free < MIN_TMP_BYTES {
            self.input.resize(self.filled + MIN_TMP_BYTES, 0);
        }
        (
            &mut self.input[self.filled..],
            &mut self.output[self.pending..],
        )
    }

    fn can_use_input(&self) -> bool {
        self.filled > self.consumed && self.progress
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};

    #[test]
    fn socket_timeouts_change_only_when_needed() {
        let s = Duration::from_secs;
        assert!(timeout_stale(None, Some(s(30))), "first set");
        assert!(!timeout_stale(Some(s(30)), Some(s(30))));
        assert!(
            !timeout_stale(Some(s(30)), Some(Duration::from_millis(29_500))),
            "within the slack: left as it is"
        );
        assert!(timeout_stale(Some(s(30)), Some(s(28))), "much shorter");
        assert!(
            timeout_stale(Some(s(29)), Some(s(30))),
            "longer: a socket timeout must never end a read early"
        );
        assert!(timeout_stale(Some(s(30)), None));
        assert!(!timeout_stale(None, None));
    }

    /// Reads one request head and its body (by Content-Length) from `reader`.
    fn read_request(reader: &mut BufReader<TcpStream>) -> String {
        let mut head = String::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            head.push_str(&line);
            if line == "\r\n" || line.is_empty() {
                break;
            }
        }
        let length: usize = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().parse().unwrap())
            })
            .unwrap_or(0);
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        head + &String::from_utf8(body).unwrap()
    }

    #[test]
    fn kept_alive_connections_are_reused_and_closed_ones_are_not() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        // One connection answering two requests (keep-alive), then one closed after its
        // answer (as Radicale does), then the next request needs a new connection.
        let server = std::thread::spawn(move || {
            let mut requests = Vec::new();
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            for close in [false, true] {
                requests.push(read_request(&mut reader));
                let connection = if close { "close" } else { "keep-alive" };
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: {connection}\r\n\r\nok"
                );
                (&stream).write_all(answer.as_bytes()).unwrap();
            }
            drop((reader, stream));
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            requests.push(read_request(&mut reader));
            (&stream)
                .write_all(b"HTTP/1.0 201 Created\r\nContent-Length: 0\r\n\r\n")
                .unwrap();
            requests
        });
        let agent = crate::http::agent(Duration::from_secs(10), None).unwrap();
        for _ in 0..2 {
            let mut r = agent.get(&format!("{url}/a")).call().unwrap();
            assert_eq!(r.body_mut().read_to_string().unwrap(), "ok");
        }
        let r = agent
            .put(&format!("{url}/b.ics"))
            .send("BEGIN:VCALENDAR")
            .unwrap();
        assert_eq!(r.status(), 201);
        let requests = server.join().unwrap();
        assert_eq!(
            requests.len(),
            3,
            "two connections carried all three requests"
        );
        assert!(
            requests[2].starts_with("PUT /b.ics HTTP/1.1\r\n"),
            "{}",
            requests[2]
        );
        assert!(
            requests[2].ends_with("\r\n\r\nBEGIN:VCALENDAR"),
            "head and body: {}",
            requests[2]
        );
    }
}
