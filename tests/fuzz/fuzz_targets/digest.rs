//! `WWW-Authenticate` parser (`caldav::auth::parse_challenges`) and the Digest answer built
//! from what it returns. Input: header values, one per line (a response may carry several
//! `WWW-Authenticate` headers).
//!
//! Properties beyond "does not panic":
//! - arbitrary (lossily decoded) text never panics the parser or `choose`;
//! - for header values the HTTP client would hand over (visible ASCII, space, tab, as
//!   `HeaderValue::to_str` accepts), every Digest answer is itself a valid header value
//!   (no CR/LF/control characters a hostile realm or nonce could smuggle in), and parsing it
//!   back yields the challenge's realm, nonce, opaque, algorithm, qop and userhash unchanged
//!   (the quoting is faithful, so no parameter can be injected).

#![no_main]

use calplanebot::caldav::auth::{self, Challenge, DigestSession};
use libfuzzer_sys::fuzz_target;

/// Most header values taken from one input; a response rarely has more than three.
const MAX_VALUES: usize = 16;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let values: Vec<&str> = text.split('\n').take(MAX_VALUES).collect();
    let _ = auth::choose(&auth::parse_challenges(&values));

    let header_values: Vec<&str> = values
        .into_iter()
        .filter(|v| v.bytes().all(is_header_byte))
        .collect();
    let challenges = auth::parse_challenges(&header_values);
    let _ = auth::choose(&challenges);
    for c in &challenges {
        if let Challenge::Digest(d) = c {
            check_answer(d);
        }
    }
});

/// What `http::HeaderValue::to_str` accepts (the client drops other values).
fn is_header_byte(b: u8) -> bool {
    b == b'\t' || (0x20..0x7f).contains(&b)
}

/// The `Authorization` for `d` is a clean header value that reads back to the same challenge.
fn check_answer(d: &auth::DigestChallenge) {
    let mut session = DigestSession::with_cnonce_for_tests(d.clone(), "0a4f113b");
    let answer = session.authorization("REPORT", "/cal/alice/x%20y/", "alice", "s\"e\\cret");
    assert!(
        answer.bytes().all(is_header_byte),
        "Authorization is not a valid header value: {answer:?}"
    );
    let back = auth::parse_challenges(&[&answer]);
    let [Challenge::Digest(b)] = back.as_slice() else {
        panic!("Authorization {answer:?} reads back as {back:?}");
    };
    assert_eq!(b.realm, d.realm, "realm");
    assert_eq!(b.nonce, d.nonce, "nonce");
    assert_eq!(b.opaque, d.opaque, "opaque");
    assert_eq!(b.algorithm, d.algorithm, "algorithm");
    assert_eq!(b.qop_auth, d.qop_auth, "qop");
    assert_eq!(b.userhash, d.userhash, "userhash");
    // A second request reuses the nonce with the next nonce count.
    assert!(session
        .authorization("GET", "/", "alice", "x")
        .contains(if d.qop_auth {
            "nc=00000002"
        } else {
            "response="
        }));
}
