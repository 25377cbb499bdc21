//! What both HTTP clients share: building a ureq agent and describing transport errors in
//! one line a user can act on.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use std::sync::Arc;

use rustls::crypto::{CryptoProvider, KeyProvider};
use rustls::pki_types::PrivateKeyDer;
use rustls::sign::SigningKey;
use ureq::tls::{Certificate, RootCerts, TlsConfig};

/// An agent that returns 4xx/5xx as responses (we map statuses ourselves), allows WebDAV
/// methods, follows no redirects (DAV discovery follows them by hand, keeping the method),
/// and trusts `ca_file`'s certificates instead of the built-in roots when given.
pub fn agent(timeout: Duration, ca_file: Option<&Path>) -> Result<ureq::Agent, String> {
    let config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .allow_non_standard_methods(true)
        .max_redirects(0)
        .timeout_global(Some(timeout))
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
    Ok(config.tls_config(tls.build()).build().new_agent())
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
        // rustls reports certificate problems through io::Error(InvalidData).
        ureq::Error::Io(io) if is_tls_failure(io) => format!("TLS error: {io}"),
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

fn is_tls_failure(io: &std::io::Error) -> bool {
    io.kind() == std::io::ErrorKind::InvalidData && {
        let m = io.to_string().to_ascii_lowercase();
        m.contains("certificate") || m.contains("tls") || m.contains("handshake")
    }
}

/// Whether a describe()d failure is about TLS (callers add their own hint).
pub fn is_tls_message(message: &str) -> bool {
    message.starts_with("TLS error")
}

/// Whether a transport error is worth retrying (the server may come back). A TLS failure
/// will not heal by itself.
pub fn is_transient(e: &ureq::Error) -> bool {
    match e {
        ureq::Error::Io(io) => !is_tls_failure(io),
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
