//! Plane webhook body (`plane::webhook::parse`) and signature check on arbitrary input.
//!
//! Properties beyond "does not panic":
//! - an accepted work item / project event never has an empty id or project;
//! - the result depends on the JSON value only, not its spelling: re-serialising the parsed
//!   JSON gives the same event (whitespace, escapes, number forms and key order are free);
//! - `verify_signature` accepts the body's own signature and rejects a signature of a
//!   different body, and never panics on an arbitrary signature header.

#![no_main]

use calplanebot::plane::webhook::{self, WebhookEvent};
use libfuzzer_sys::fuzz_target;
use miniserde::json::{self, Value};

const SECRET: &[u8] = b"plane_wh_0123456789abcdef";

fuzz_target!(|data: &[u8]| {
    // The server reads the body as UTF-8 (a non-UTF-8 body is refused before parsing).
    let Ok(body) = std::str::from_utf8(data) else {
        return;
    };
    let event = webhook::parse(body);
    match &event {
        Ok(WebhookEvent::WorkItem { project, id, .. }) => {
            assert!(!project.is_empty() && !id.is_empty(), "empty id: {event:?}");
        }
        Ok(WebhookEvent::Project { id, .. }) => assert!(!id.is_empty(), "empty id"),
        Ok(WebhookEvent::Ignored { .. }) | Err(_) => {}
    }
    if let Ok(v) = json::from_str::<Value>(body) {
        let respelled = json::to_string(&v);
        assert_eq!(webhook::parse(&respelled), event, "respelled: {respelled}");
    }

    let sig = webhook::sign(SECRET, data);
    assert!(webhook::verify_signature(SECRET, data, &sig));
    assert!(!webhook::verify_signature(SECRET, b"other body", &sig) || data == b"other body");
    // The input's first line as a hostile X-Plane-Signature header.
    let header = body.lines().next().unwrap_or("");
    let _ = webhook::verify_signature(SECRET, data, header);
});
