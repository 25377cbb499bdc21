//! What both HTTP clients share: building a ureq agent and describing transport errors in
//! one line a user can act on.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ureq::tls::{Certificate, RootCerts, TlsConfig};

/// An agent that returns 4xx/5xx as responses (we map statuses ourselves), allows WebDAV
/// methods, follows no redirects (DAV discovery follows them by hand, keeping the method),
/// and trusts `ca_file`'s certificates instead of the built-in roots when given.
pub fn agent(timeout: Duration, ca_file: Option<&Path>) -> Result<ureq::Agent, String> {
    let mut config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .allow_non_standard_methods(true)
        .max_redirects(0)
        .timeout_global(Some(timeout))
        .user_agent(concat!("calplanebot/", env!("CARGO_PKG_VERSION")));
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
        config = config.tls_config(
            TlsConfig::builder()
                .root_certs(RootCerts::new_with_certs(&certs))
                .build(),
        );
    }
    Ok(config.build().new_agent())
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
    fn a_long_wait_ends_when_stop_is_set() {
        static STOP: AtomicBool = AtomicBool::new(false);
        let t = std::thread::spawn(|| sleep_unless_stopped(Duration::from_secs(90), Some(&STOP)));
        std::thread::sleep(Duration::from_millis(50));
        STOP.store(true, Ordering::Relaxed);
        assert!(!t.join().unwrap(), "cut short");
        assert!(sleep_unless_stopped(Duration::from_millis(1), None));
    }
}
