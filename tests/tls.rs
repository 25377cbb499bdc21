//! TLS handshake failures against a real `openssl s_server`: a server that offers only
//! TLS 1.1, only cipher suites we lack, or a certificate key type we cannot verify is
//! refused after one handshake (trying again cannot change the answer) with a hint about
//! the protocol, not about CALDAV_CA_FILE; an untrusted self-signed certificate still
//! hints CALDAV_CA_FILE, and a CA certificate used as the server's own says so. Between
//! calplanebot and s_server sits a TCP relay that counts connections, i.e. handshakes.
//!
//! These tests need the `openssl` command; without it they fail (they do not skip).

mod common;

use std::io::{BufRead, BufReader, Read};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{run_binary, Run};

/// How long s_server may take to listen.
const STARTUP: Duration = Duration::from_secs(20);

/// The hint for a protocol or cipher mismatch (src/caldav/mod.rs, transport_hint).
const INCOMPATIBLE_HINT: &str =
    "the server offers no TLS version, cipher suite or certificate key type calplanebot supports";

/// Runs `openssl ARGS` to completion; panics (the test fails) when openssl is missing or
/// fails.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl command is needed for the TLS tests (install openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A fresh directory for one test's keys and certificates.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "calplanebot-tls-{name}-{}-{}",
        std::process::id(),
        common::unique_tag()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A self-signed certificate NAME.pem with key NAME.key for 127.0.0.1, of key type
/// `newkey` (an `openssl req -newkey` argument), with `extra` arguments.
fn self_signed(dir: &Path, name: &str, newkey: &str, extra: &[&str]) {
    let (cert, key) = (format!("{name}.pem"), format!("{name}.key"));
    let mut args = vec![
        "req",
        "-x509",
        "-newkey",
        newkey,
        "-nodes",
        "-keyout",
        &key,
        "-out",
        &cert,
        "-days",
        "2",
        "-subj",
        "/CN=127.0.0.1",
        "-addext",
        "subjectAltName=IP:127.0.0.1",
    ];
    args.extend_from_slice(extra);
    openssl(dir, &args);
}

/// A leaf certificate (basicConstraints CA:FALSE), as a server should have.
fn leaf(dir: &Path, name: &str, newkey: &str) {
    self_signed(
        dir,
        name,
        newkey,
        &["-addext", "basicConstraints=critical,CA:FALSE"],
    );
}

/// A free TCP port on 127.0.0.1 (the kernel's pick, released for the server to take).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `openssl s_server -www`, stopped on drop.
struct SServer {
    child: Child,
    port: u16,
}

impl SServer {
    /// Starts s_server in `dir` with certificate NAME.pem/NAME.key and `args` (protocol and
    /// cipher restrictions), and waits until it listens.
    fn start(dir: &Path, name: &str, args: &[&str]) -> SServer {
        let port = free_port();
        let (cert, key) = (format!("{name}.pem"), format!("{name}.key"));
        let accept = format!("127.0.0.1:{port}");
        let mut child = Command::new("openssl")
            .args([
                "s_server", "-accept", &accept, "-cert", &cert, "-key", &key, "-www",
            ])
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the openssl command is needed for the TLS tests (install openssl)");
        // s_server prints ACCEPT once it listens; the rest of its output is drained so
        // that it never blocks on a full pipe.
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let deadline = Instant::now() + STARTUP;
        let mut line = String::new();
        while !line.starts_with("ACCEPT") {
            line.clear();
            let n = out.read_line(&mut line).unwrap();
            assert!(
                n > 0 && Instant::now() < deadline,
                "s_server {args:?} did not start"
            );
        }
        std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
        SServer { child, port }
    }
}

impl Drop for SServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP relay to `port` that counts the connections it accepts: each is one TLS
/// handshake of calplanebot's. Runs until the test process ends.
fn counting_relay(port: u16) -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let relay_port = listener.local_addr().unwrap().port();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&count);
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            seen.fetch_add(1, Ordering::SeqCst);
            let Ok(server) = TcpStream::connect(("127.0.0.1", port)) else {
                continue;
            };
            pipe(client.try_clone().unwrap(), server.try_clone().unwrap());
            pipe(server, client);
        }
    });
    (relay_port, count)
}

/// Copies `from` to `to` in a thread until `from` ends, then ends `to`'s writing side.
fn pipe(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 || std::io::Write::write_all(&mut to, &buf[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}

/// `calplanebot test-caldav` against `server` through a counting relay, with
/// `CALDAV_CA_FILE` when given; the run and how many connections (handshakes) it made.
fn test_caldav(server: &SServer, ca_file: Option<&Path>) -> (Run, usize) {
    let (port, count) = counting_relay(server.port);
    let mut vars: Vec<(String, String)> = [
        ("PLANE_BASE_URL", "http://127.0.0.1:9".to_string()),
        ("PLANE_API_TOKEN", "plane_api_unused".into()),
        ("PLANE_WORKSPACE_SLUG", "unused".into()),
        ("CALDAV_URL", format!("https://127.0.0.1:{port}/dav/")),
        ("CALDAV_USERNAME", "user".into()),
        ("CALDAV_PASSWORD", "password".into()),
        ("HTTP_TIMEOUT_SECONDS", "2".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    if let Some(ca) = ca_file {
        vars.push(("CALDAV_CA_FILE".into(), ca.display().to_string()));
    }
    let run = run_binary(&vars, &["test-caldav"]);
    (run, count.load(Ordering::SeqCst))
}

fn last_line(r: &Run) -> String {
    r.stderr.lines().last().unwrap_or("").to_string()
}

/// Asserts a protocol mismatch: failed, TLS named, the protocol hint (not the CA file),
/// and one handshake only.
fn assert_incompatible(what: &str, r: &Run, handshakes: usize) {
    let line = last_line(r);
    assert_ne!(r.code, 0, "{what}: {}", r.stderr);
    assert!(line.contains("TLS error"), "{what}: {line}");
    assert!(line.contains(INCOMPATIBLE_HINT), "{what}: {line}");
    assert!(!line.contains("CALDAV_CA_FILE"), "{what}: {line}");
    assert_eq!(handshakes, 1, "{what}: a failed handshake is not retried");
}

#[test]
fn a_server_offering_only_tls_1_1_is_refused_once_with_a_protocol_hint() {
    let dir = scratch("tls11");
    leaf(&dir, "leaf", "rsa:2048");
    // OpenSSL 3 allows TLS 1.1 only at security level 0.
    let s = SServer::start(&dir, "leaf", &["-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0"]);
    let (r, handshakes) = test_caldav(&s, Some(&dir.join("leaf.pem")));
    assert_incompatible("TLS 1.1 only", &r, handshakes);
    assert!(last_line(&r).contains("ProtocolVersion"), "{}", r.stderr);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_server_offering_only_ciphers_we_lack_is_refused_once_with_a_protocol_hint() {
    let dir = scratch("cipher");
    leaf(&dir, "leaf", "rsa:2048");
    // TLS 1.2 with RSA key exchange and CBC only: no ECDHE, no AEAD.
    let s = SServer::start(
        &dir,
        "leaf",
        &["-tls1_2", "-cipher", "AES128-SHA:AES256-SHA"],
    );
    let (r, handshakes) = test_caldav(&s, Some(&dir.join("leaf.pem")));
    assert_incompatible("RSA-kx CBC suites only", &r, handshakes);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_certificate_key_type_we_cannot_verify_is_refused_once_with_a_protocol_hint() {
    let dir = scratch("ed448");
    leaf(&dir, "leaf", "ed448");
    let s = SServer::start(&dir, "leaf", &[]);
    let (r, handshakes) = test_caldav(&s, Some(&dir.join("leaf.pem")));
    assert_incompatible("Ed448 certificate", &r, handshakes);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_untrusted_self_signed_certificate_hints_the_ca_file_once() {
    let dir = scratch("selfsigned");
    leaf(&dir, "leaf", "rsa:2048");
    let s = SServer::start(&dir, "leaf", &[]);
    let (r, handshakes) = test_caldav(&s, None);
    let line = last_line(&r);
    assert_ne!(r.code, 0, "{}", r.stderr);
    assert!(
        line.contains("TLS error") && line.contains("UnknownIssuer"),
        "{line}"
    );
    assert!(
        line.contains("set CALDAV_CA_FILE to its PEM") && !line.contains(INCOMPATIBLE_HINT),
        "{line}"
    );
    assert_eq!(handshakes, 1, "a refused certificate is not retried");

    // The control: trusted through CALDAV_CA_FILE, the same server gets past the
    // handshake. s_server -www does not answer a PROPFIND, so the request times out —
    // a transport failure that is retried (3 connections) and not called TLS.
    let (r, handshakes) = test_caldav(&s, Some(&dir.join("leaf.pem")));
    let line = last_line(&r);
    assert_ne!(r.code, 0, "{}", r.stderr);
    assert!(
        line.contains("timed out") && !line.contains("TLS"),
        "{line}"
    );
    assert_eq!(handshakes, 3, "a timeout is retried twice");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_ca_certificate_as_the_servers_own_is_named_even_with_the_ca_file() {
    let dir = scratch("ca");
    // What a plain `openssl req -x509` makes: basicConstraints CA:TRUE.
    self_signed(
        &dir,
        "ca",
        "rsa:2048",
        &["-addext", "basicConstraints=critical,CA:TRUE"],
    );
    let s = SServer::start(&dir, "ca", &[]);
    let (r, handshakes) = test_caldav(&s, Some(&dir.join("ca.pem")));
    let line = last_line(&r);
    assert_ne!(r.code, 0, "{}", r.stderr);
    assert!(line.contains("TLS error"), "{line}");
    assert!(
        line.contains("is a CA certificate") && line.contains("CA:FALSE"),
        "{line}"
    );
    assert_eq!(handshakes, 1, "a refused certificate is not retried");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `calplanebot test-plane` with PLANE_BASE_URL on `server` through a counting relay;
/// the run and how many connections (handshakes) it made.
fn test_plane(server: &SServer) -> (Run, usize) {
    let (port, count) = counting_relay(server.port);
    let vars: Vec<(String, String)> = [
        ("PLANE_BASE_URL", format!("https://127.0.0.1:{port}")),
        ("PLANE_API_TOKEN", "plane_api_unused".into()),
        ("PLANE_WORKSPACE_SLUG", "unused".into()),
        ("CALDAV_URL", "http://127.0.0.1:9/dav/".into()),
        ("CALDAV_USERNAME", "user".into()),
        ("CALDAV_PASSWORD", "password".into()),
        ("HTTP_TIMEOUT_SECONDS", "2".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let run = run_binary(&vars, &["test-plane"]);
    (run, count.load(Ordering::SeqCst))
}

#[test]
fn plane_over_tls_gets_the_hint_that_matches_the_failure() {
    let dir = scratch("plane-tls");
    leaf(&dir, "leaf", "rsa:2048");
    // TLS 1.1 only: a protocol mismatch, not a certificate problem; not retried.
    let old = SServer::start(&dir, "leaf", &["-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0"]);
    let (r, handshakes) = test_plane(&old);
    let line = last_line(&r);
    assert_ne!(r.code, 0, "{}", r.stderr);
    assert!(line.contains("TLS error"), "{line}");
    assert!(
        line.contains("offers no TLS version or cipher suite"),
        "{line}"
    );
    assert!(!line.contains("certificate must be valid"), "{line}");
    assert_eq!(handshakes, 1, "a failed handshake is not retried");
    drop(old);
    // A certificate no public CA signed: the certificate hint.
    let untrusted = SServer::start(&dir, "leaf", &[]);
    let (r, handshakes) = test_plane(&untrusted);
    let line = last_line(&r);
    assert_ne!(r.code, 0, "{}", r.stderr);
    assert!(
        line.contains("certificate must be valid for PLANE_BASE_URL"),
        "{line}"
    );
    assert_eq!(handshakes, 1, "a refused certificate is not retried");
    std::fs::remove_dir_all(&dir).unwrap();
}
