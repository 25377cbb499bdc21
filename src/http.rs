//! What both HTTP clients share: building a ureq agent and describing transport errors in
//! one line a user can act on.

pub mod tcp;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use std::sync::Arc;

use rustls::crypto::{CryptoProvider, KeyProvider};
use rustls::pki_types::PrivateKeyDer;
use rustls::sign::SigningKey;
use ureq::config::Config;
use ureq::http::Uri;
use ureq::tls::{Certificate, RootCerts, TlsConfig};
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{
    ConnectProxyConnector, Connector, NextTimeout, RustlsConnector,
};

/// Size of the buffer each connection reads into, in bytes. ureq allocates and zero-fills
/// it for every new connection, and Radicale (HTTP/1.0) closes the connection after every
/// answer: at ureq's default of 128 KiB (for both buffers) that was ~10 % of the CPU of an
/// initial sync, plus the page faults of fresh 128 KiB blocks. A response's status line and
/// headers must fit in it ([`MAX_RESPONSE_HEAD_BYTES`]); bodies stream through it.
pub const INPUT_BUFFER_BYTES: usize = 16 * 1024;

/// Size of the buffer each connection writes from, in bytes. The longest line of a request
/// head (a long href or a Digest Authorization) must fit: 8 KiB is what Apache and nginx
/// accept for a request line by default (`LimitRequestLine` 8190, `large_client_header_buffers`
/// 8k). A longer body is sent in pieces of this size, one write each.
pub const OUTPUT_BUFFER_BYTES: usize = 8 * 1024;

/// Largest response head (status line and headers) accepted, in bytes: one less than the
/// input buffer, so a longer head fails as "too large" instead of as a stalled read. Twice
/// what nginx passes on from a backend by default (4–8 KiB, `proxy_buffer_size`).
pub const MAX_RESPONSE_HEAD_BYTES: usize = INPUT_BUFFER_BYTES - 1;

/// How long a resolved address is reused. ureq's own resolver looks the host up for every
/// request, and when a timeout is set (ours always is) it does so on a thread of its own:
/// a thread per request was ~17 % of an initial sync's CPU, and against a named server it
/// is a DNS query per request. A minute is short enough to follow a server that moved.
pub const RESOLVE_TTL: Duration = Duration::from_secs(60);

/// Hosts remembered at once by one agent (it talks to one or two); beyond, all are forgotten.
const MAX_RESOLVED_HOSTS: usize = 16;

/// One looked-up host: `scheme://authority` as the URI writes it, when, what.
type Resolved = (String, Instant, ResolvedSocketAddrs);

/// ureq's resolver with a cache: a host is looked up once per [`RESOLVE_TTL`].
#[derive(Default)]
struct CachingResolver {
    inner: DefaultResolver,
    /// A list, not a map: it holds one or two hosts (and a map's code costs binary size).
    cache: Mutex<Vec<Resolved>>,
}

impl std::fmt::Debug for CachingResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CachingResolver")
    }
}

impl Resolver for CachingResolver {
    fn resolve(
        &self,
        uri: &Uri,
        config: &Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let key = match (uri.scheme_str(), uri.authority()) {
            (Some(scheme), Some(authority)) => format!("{scheme}://{authority}"),
            // Not a full URL: the inner resolver says what is wrong with it.
            _ => return self.inner.resolve(uri, config, timeout),
        };
        let now = Instant::now();
        if let Some((_, at, addrs)) = self.lock().iter().find(|(k, _, _)| *k == key) {
            if now.duration_since(*at) < RESOLVE_TTL {
                return Ok(addrs.clone());
            }
        }
        let addrs = self.inner.resolve(uri, config, timeout)?;
        let mut cache = self.lock();
        cache.retain(|(k, _, _)| *k != key);
        if cache.len() >= MAX_RESOLVED_HOSTS {
            cache.clear();
        }
        cache.push((key, now, addrs.clone()));
        Ok(addrs)
    }
}

impl CachingResolver {
    /// The cache; a panic elsewhere while it was held leaves nothing half-written in it.
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Resolved>> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// An agent that returns 4xx/5xx as responses (we map statuses ourselves), allows WebDAV
/// methods, follows no redirects (DAV discovery follows them by hand, keeping the method),
/// and trusts `ca_file`'s certificates instead of the built-in roots when given. Its
/// buffers are sized for our requests ([`INPUT_BUFFER_BYTES`], [`OUTPUT_BUFFER_BYTES`])
/// and it resolves each host once per [`RESOLVE_TTL`].
pub fn agent(timeout: Duration, ca_file: Option<&Path>) -> Result<ureq::Agent, String> {
    let config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .allow_non_standard_methods(true)
        .max_redirects(0)
        .timeout_global(Some(timeout))
        .input_buffer_size(INPUT_BUFFER_BYTES)
        .output_buffer_size(OUTPUT_BUFFER_BYTES)
        .max_response_header_size(MAX_RESPONSE_HEAD_BYTES)
        .user_agent(concat!("calplanebot/", env!("CARGO_PKG_VERSION")));
    let mut tls = TlsConfig::builder().unversioned_rustls_crypto_provider(crypto_provider());
    if let Some(path) = ca_file {
        let pem =
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let certs: Vec<Certificate<'static>> = ureq::tls::parse_pem(&pem)
            .filter_map(|item| match item {
                Ok(ureq::tls::PemItem::Certificate(c)) => Some(Ok(c)),
                Ok(_) => None,
                Err(e) => Some(Err(e)),
            })
            .collect::<Result<_, _>>()
            .map_err(|e| format!("{} is not valid PEM: {e}", path.display()))?;
        if certs.is_empty() {
            return Err(format!("{} holds no PEM certificate", path.display()));
        }
        tls = tls.root_certs(RootCerts::new_with_certs(&certs));
    }
    Ok(ureq::Agent::with_parts(
        config.tls_config(tls.build()).build(),
        // ureq's DefaultConnector with our TCP transport (see tcp.rs) and without SOCKS.
        ().chain(ConnectProxyConnector::default())
            .chain(tcp::TcpConnector::default())
            .chain(RustlsConnector::default()),
        CachingResolver::default(),
    ))
}

/// rustls' *ring* provider (every cipher suite, key exchange group and signature
/// verification algorithm it has: TLS 1.2 and 1.3, AES-GCM and ChaCha20-Poly1305, X25519,
/// P-256 and P-384, ECDSA, Ed25519 and RSA certificates) without private-key loading.
///
/// We never present a client certificate, and the key loader is what links *ring*'s RSA,
/// ECDSA and Ed25519 signing code (tens of KB on a small board's flash). Naming the
/// provider here, rather than letting ureq default to `default_provider()`, is what lets
/// the linker drop it.
fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(CryptoProvider {
        key_provider: &NoClientKeys,
        ..rustls::crypto::ring::default_provider()
    })
}

/// A [`KeyProvider`] that loads no key: the client authenticates with passwords, never
/// with a certificate.
#[derive(Debug)]
struct NoClientKeys;

impl KeyProvider for NoClientKeys {
    fn load_private_key(
        &self,
        _key: PrivateKeyDer<'static>,
    ) -> Result<Arc<dyn SigningKey>, rustls::Error> {
        Err(rustls::Error::General(
            "client certificates are not supported".into(),
        ))
    }
}

/// A one-line description of a transport failure (never includes credentials: ureq errors
/// carry no request headers).
pub fn describe(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Timeout(_) => "timed out".to_string(),
        ureq::Error::HostNotFound => "host not found (check the URL)".to_string(),
        ureq::Error::ConnectionFailed => "connection failed (is the server running?)".to_string(),
        // rustls reports handshake failures through io::Error(InvalidData).
        ureq::Error::Io(io) if rustls_error(io).is_some() => format!("TLS error: {io}"),
        ureq::Error::Io(io) => match io.kind() {
            std::io::ErrorKind::ConnectionRefused => {
                "connection refused (is the server running, is the port right?)".to_string()
            }
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::UnexpectedEof => {
                "the server closed the connection".to_string()
            }
            _ => format!("I/O error: {io}"),
        },
        ureq::Error::Rustls(t) => format!("TLS error: {t}"),
        ureq::Error::Tls(t) => format!("TLS error: {t}"),
        ureq::Error::BodyExceedsLimit(n) => format!("response larger than {n} bytes"),
        other => other.to_string(),
    }
}

/// Why a TLS handshake (or TLS session) failed, as far as it matters to the user: each
/// kind has its own remedy, and none heals by trying again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsFailure {
    /// The server's certificate was refused: not signed by a CA we trust (self-signed or a
    /// private CA), expired, or not for this host name.
    Certificate,
    /// The server presents a CA certificate (basicConstraints CA:TRUE, what a plain
    /// `openssl req -x509` makes) as its own, which is refused even when it is in
    /// CALDAV_CA_FILE: the server needs a certificate that is not a CA.
    ServerCertificateIsCa,
    /// No protocol version, cipher suite, key exchange or signature algorithm in common
    /// (a server that offers only TLS 1.0/1.1, only RSA key exchange or CBC suites, or a
    /// certificate key type we cannot verify); no CA file changes that.
    Incompatible,
    /// Any other TLS failure (a server that breaks the protocol).
    Other,
}

/// The rustls error inside an I/O error: ureq runs the handshake through rustls'
/// `complete_io`, which wraps every TLS failure as `io::Error(InvalidData, rustls::Error)`.
fn rustls_error(io: &std::io::Error) -> Option<&rustls::Error> {
    io.get_ref()?.downcast_ref::<rustls::Error>()
}

/// Whether a transport error is a TLS failure, and which kind; `None` for anything else.
pub fn tls_failure(e: &ureq::Error) -> Option<TlsFailure> {
    match e {
        ureq::Error::Io(io) => rustls_error(io).map(classify_rustls),
        ureq::Error::Rustls(t) => Some(classify_rustls(t)),
        ureq::Error::Tls(_) => Some(TlsFailure::Other),
        _ => None,
    }
}

/// The kind of a rustls error. What a server says with an alert is its side of the same
/// story: `protocol_version`, `handshake_failure` and `insufficient_security` are how it
/// tells us that none of what we offered is acceptable to it.
fn classify_rustls(e: &rustls::Error) -> TlsFailure {
    use rustls::{AlertDescription as Alert, CertificateError as Cert, Error};
    match e {
        Error::PeerIncompatible(_)
        | Error::AlertReceived(
            Alert::ProtocolVersion | Alert::HandshakeFailure | Alert::InsufficientSecurity,
        ) => TlsFailure::Incompatible,
        // rustls still reports some of these without their context (deprecated form).
        #[allow(deprecated)]
        Error::InvalidCertificate(
            Cert::UnsupportedSignatureAlgorithm
            | Cert::UnsupportedSignatureAlgorithmContext { .. }
            | Cert::UnsupportedSignatureAlgorithmForPublicKeyContext { .. },
        ) => TlsFailure::Incompatible,
        Error::InvalidCertificate(Cert::Other(o)) if is_ca_used_as_end_entity(o) => {
            TlsFailure::ServerCertificateIsCa
        }
        Error::InvalidCertificate(_) | Error::NoCertificatesPresented => TlsFailure::Certificate,
        _ => TlsFailure::Other,
    }
}

/// Whether webpki refused the server's certificate for being a CA. rustls passes this
/// webpki error on only as an opaque `OtherError`, and webpki is not our dependency, so
/// its name is matched; tests/tls.rs checks it against a real CA certificate.
fn is_ca_used_as_end_entity(o: &rustls::OtherError) -> bool {
    o.to_string().contains("CaUsedAsEndEntity")
}

/// Whether a transport error is worth retrying (the server may come back). A TLS failure
/// will not heal by itself: the same handshake fails the same way.
pub fn is_transient(e: &ureq::Error) -> bool {
    match e {
        ureq::Error::Io(io) => rustls_error(io).is_none(),
        ureq::Error::Timeout(_) | ureq::Error::ConnectionFailed => true,
        _ => false,
    }
}

/// A response body decoded as UTF-8, with where it was not.
///
/// Servers are not always right about their bytes (one object saved by a broken client),
/// and one bad byte must not cost a whole 30 MB answer: each invalid sequence becomes
/// U+FFFD and its position is kept, so a caller can tell which part of the document
/// (which `<response>`) was damaged and set only that part aside.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Text {
    /// The body; invalid sequences replaced by U+FFFD.
    pub text: String,
    /// Byte offsets in `text` of the replacements, ascending; empty for a valid body.
    pub damage: Vec<usize>,
}

impl Text {
    /// Decodes `bytes`; no copy when they are valid UTF-8.
    pub fn decode(bytes: Vec<u8>) -> Text {
        let bytes = match String::from_utf8(bytes) {
            Ok(text) => {
                return Text {
                    text,
                    damage: Vec::new(),
                }
            }
            Err(e) => e.into_bytes(),
        };
        let mut text = String::with_capacity(bytes.len() + 16);
        let mut damage = Vec::new();
        for chunk in bytes.utf8_chunks() {
            text.push_str(chunk.valid());
            if !chunk.invalid().is_empty() {
                damage.push(text.len());
                text.push(char::REPLACEMENT_CHARACTER);
            }
        }
        Text { text, damage }
    }

    /// The first damaged position within `range` of `text`, if any.
    pub fn damage_in(&self, range: std::ops::Range<usize>) -> Option<usize> {
        let i = self.damage.partition_point(|&d| d < range.start);
        self.damage.get(i).copied().filter(|&d| d < range.end)
    }
}

impl From<&str> for Text {
    fn from(s: &str) -> Text {
        Text {
            text: s.to_string(),
            damage: Vec::new(),
        }
    }
}

/// Why a response body was not read.
#[derive(Debug)]
pub enum BodyError {
    /// Longer than the limit the caller set (announced by Content-Length, or read so far).
    TooLarge {
        /// The limit, in bytes.
        limit: u64,
    },
    /// The connection failed while reading.
    Transport(ureq::Error),
}

/// What to do with a body longer than the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// Refuse it: the caller needs all of it ([`BodyError::TooLarge`]).
    Refuse,
    /// Keep the first `limit` bytes (an error page shown in one line).
    Truncate,
}

/// Reads a response body of at most `limit` bytes. A Content-Length above the limit is
/// refused before reading anything; within it, the buffer is allocated once at that size
/// (a growing buffer would copy itself and briefly need twice the room). Bytes are
/// returned as they came: decoding is the caller's ([`Text::decode`]).
pub fn read_body(
    body: &mut ureq::Body,
    limit: u64,
    overflow: Overflow,
) -> Result<Vec<u8>, BodyError> {
    use std::io::Read;
    let announced = body.content_length();
    if overflow == Overflow::Refuse && announced.is_some_and(|n| n > limit) {
        return Err(BodyError::TooLarge { limit });
    }
    let capacity = announced.unwrap_or(0).min(limit);
    let mut out = Vec::with_capacity(usize::try_from(capacity).unwrap_or(0));
    // One byte more than the limit tells "exactly the limit" from "too long".
    let mut reader = body.as_reader().take(limit.saturating_add(1));
    reader
        .read_to_end(&mut out)
        .map_err(|e| BodyError::Transport(ureq::Error::from(e)))?;
    if out.len() as u64 > limit {
        match overflow {
            Overflow::Refuse => return Err(BodyError::TooLarge { limit }),
            Overflow::Truncate => out.truncate(usize::try_from(limit).unwrap_or(usize::MAX)),
        }
    }
    Ok(out)
}

/// How often a long wait looks at the stop flag.
const STOP_CHECK: Duration = Duration::from_millis(100);

/// Sleeps for `wait`, in short slices so that a set `stop` flag (SIGTERM) ends it early.
/// Returns false when it was cut short.
pub fn sleep_unless_stopped(wait: Duration, stop: Option<&AtomicBool>) -> bool {
    let Some(stop) = stop else {
        std::thread::sleep(wait);
        return true;
    };
    let until = Instant::now() + wait;
    loop {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        std::thread::sleep(left.min(STOP_CHECK));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_utf8_is_replaced_and_located() {
        let t = Text::decode(b"ab\xffcd\xe2\x82ef".to_vec());
        assert_eq!(t.text, "ab\u{FFFD}cd\u{FFFD}ef");
        assert_eq!(t.damage, [2, 7]);
        assert_eq!(t.damage_in(0..2), None);
        assert_eq!(t.damage_in(0..3), Some(2));
        assert_eq!(t.damage_in(3..7), None);
        assert_eq!(t.damage_in(3..12), Some(7));
        let clean = Text::decode("é ok".as_bytes().to_vec());
        assert!(clean.damage.is_empty() && clean.text == "é ok");
    }

    /// A one-connection HTTP server on a free port: reads one request (head and a body of
    /// its Content-Length), hands it to the returned thread's result, answers `response`.
    fn serve_once(response: Vec<u8>) -> (String, std::thread::JoinHandle<(String, Vec<u8>)>) {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let t = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut head = String::new();
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                head.push_str(&line);
                if line == "\r\n" || line.is_empty() {
                    break;
                }
            }
            let length = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap())
                })
                .unwrap_or(0);
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            (&stream).write_all(&response).unwrap();
            (head, body)
        });
        (url, t)
    }

    fn answer_with_header(header_bytes: usize) -> Vec<u8> {
        let filler = "x".repeat(header_bytes);
        format!("HTTP/1.1 200 OK\r\nX-Filler: {filler}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            .into_bytes()
    }

    #[test]
    fn a_body_larger_than_the_output_buffer_is_sent_whole() {
        let (url, server) =
            serve_once(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n".to_vec());
        let body: Vec<u8> = (0..OUTPUT_BUFFER_BYTES * 6 + 123)
            .map(|i| (i % 251) as u8)
            .collect();
        let agent = agent(Duration::from_secs(10), None).unwrap();
        let r = agent
            .put(&format!("{url}/big.ics"))
            .send(&body[..])
            .unwrap();
        assert_eq!(r.status(), 201);
        let (head, received) = server.join().unwrap();
        assert!(head.starts_with("PUT /big.ics HTTP/1.1\r\n"), "{head}");
        assert_eq!(received.len(), body.len());
        assert!(received == body, "the body arrived changed");
    }

    #[test]
    fn response_heads_up_to_the_limit_are_read_and_longer_ones_refused() {
        // What a server behind nginx can send at most, with room to spare.
        let (url, server) = serve_once(answer_with_header(8 * 1024));
        let agent = agent(Duration::from_secs(10), None).unwrap();
        let mut r = agent.get(&url).call().unwrap();
        assert_eq!(r.headers()["x-filler"].len(), 8 * 1024);
        assert_eq!(r.body_mut().read_to_string().unwrap(), "ok");
        server.join().unwrap();
        // Longer than the input buffer: a clear error, not a stalled read.
        let (url, server) = serve_once(answer_with_header(INPUT_BUFFER_BYTES + 10));
        let e = agent.get(&url).call().unwrap_err();
        assert!(
            matches!(e, ureq::Error::LargeResponseHeader(..)),
            "{e:?}: {}",
            describe(&e)
        );
        server.join().unwrap();
    }

    fn test_uri(s: &str) -> Uri {
        s.parse().unwrap()
    }

    fn resolve(r: &CachingResolver, uri: &str) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let timeout = NextTimeout {
            after: ureq::unversioned::transport::time::Duration::from(Duration::from_secs(10)),
            reason: ureq::Timeout::Resolve,
            ..NextTimeout::default()
        };
        r.resolve(&test_uri(uri), &Config::default(), timeout)
    }

    #[test]
    fn a_host_is_looked_up_once_per_ttl() {
        let r = CachingResolver::default();
        let first = resolve(&r, "http://127.0.0.1:5232/a/").unwrap();
        assert_eq!(
            first.first().map(|a| a.to_string()),
            Some("127.0.0.1:5232".into())
        );
        // A name that cannot resolve (RFC 2606), answered from the cache while fresh …
        let fake: std::net::SocketAddr = "127.0.0.2:80".parse().unwrap();
        let mut seeded = first.clone();
        seeded.truncate(0);
        seeded.push(fake);
        let key = "http://calendar.invalid".to_string();
        r.lock().push((key.clone(), Instant::now(), seeded));
        let cached = resolve(&r, "http://calendar.invalid/dav/").unwrap();
        assert_eq!(cached.first(), Some(&fake));
        // … and looked up again once stale (and then it fails: the name does not exist).
        let stale = Instant::now()
            .checked_sub(RESOLVE_TTL + Duration::from_secs(1))
            .unwrap();
        r.lock().iter_mut().find(|e| e.0 == key).unwrap().1 = stale;
        assert!(resolve(&r, "http://calendar.invalid/dav/").is_err());
        assert_eq!(
            r.lock().len(),
            2,
            "a failure is not cached; the other hosts stay"
        );
    }

    /// A rustls error as ureq hands it over after a failed handshake.
    fn handshake_error(e: rustls::Error) -> ureq::Error {
        ureq::Error::Io(std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }

    #[test]
    fn tls_failures_are_classified_by_remedy_and_never_retried() {
        use rustls::{AlertDescription as Alert, CertificateError as Cert, OtherError};
        let cases = [
            (
                rustls::Error::AlertReceived(Alert::ProtocolVersion),
                TlsFailure::Incompatible,
            ),
            (
                rustls::Error::AlertReceived(Alert::HandshakeFailure),
                TlsFailure::Incompatible,
            ),
            (
                rustls::Error::PeerIncompatible(rustls::PeerIncompatible::NoCipherSuitesInCommon),
                TlsFailure::Incompatible,
            ),
            (
                rustls::Error::InvalidCertificate(Cert::UnknownIssuer),
                TlsFailure::Certificate,
            ),
            (
                rustls::Error::InvalidCertificate(Cert::Expired),
                TlsFailure::Certificate,
            ),
            (
                rustls::Error::InvalidCertificate(Cert::Other(OtherError(Arc::new(
                    std::io::Error::other("CaUsedAsEndEntity"),
                )))),
                TlsFailure::ServerCertificateIsCa,
            ),
            (
                rustls::Error::AlertReceived(Alert::DecodeError),
                TlsFailure::Other,
            ),
        ];
        for (rustls_error, kind) in cases {
            let e = handshake_error(rustls_error);
            assert_eq!(tls_failure(&e), Some(kind), "{e:?}");
            assert!(!is_transient(&e), "{e:?} is not worth a retry");
            assert!(describe(&e).starts_with("TLS error: "), "{}", describe(&e));
        }
        // Network trouble is no TLS failure, and worth a retry.
        let reset = ureq::Error::Io(std::io::ErrorKind::ConnectionReset.into());
        assert_eq!(tls_failure(&reset), None);
        assert!(is_transient(&reset));
        let garbage = ureq::Error::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "handshake: not a TLS certificate",
        ));
        assert_eq!(tls_failure(&garbage), None, "only rustls' own errors count");
    }

    #[test]
    fn a_long_wait_ends_when_stop_is_set() {
        static STOP: AtomicBool = AtomicBool::new(false);
        let t = std::thread::spawn(|| sleep_unless_stopped(Duration::from_secs(90), Some(&STOP)));
        std::thread::sleep(Duration::from_millis(50));
        STOP.store(true, Ordering::Relaxed);
        assert!(!t.join().unwrap(), "cut short");
        assert!(sleep_unless_stopped(Duration::from_millis(1), None));
    }
}
