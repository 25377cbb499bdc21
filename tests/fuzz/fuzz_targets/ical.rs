//! iCalendar parser (`ical::parse_bytes`) on arbitrary bytes, as fetched from a CalDAV server.
//!
//! Properties beyond "does not panic", for every input that parses:
//! - the writer's output parses back to the same tree, and writing that again gives the same
//!   text (what we PUT back is what we read, so other clients' data survives);
//! - every written physical line is at most 75 octets and CRLF-terminated;
//! - nesting stays within the parser's limit (64 components deep);
//! - TEXT escaping round-trips, and a parsed `VALUE=DATE` formats back to its own digits.

#![no_main]

use calplanebot::ical::{self, Component, Date};
use libfuzzer_sys::fuzz_target;

/// The parser's `MAX_DEPTH` (private in `src/ical/parse.rs`).
const MAX_DEPTH: usize = 64;

/// RFC 5545 line length the writer folds at.
const MAX_LINE: usize = 75;

fuzz_target!(|data: &[u8]| {
    let Ok(cal) = ical::parse_bytes(data) else {
        return;
    };
    assert!(depth(&cal) <= MAX_DEPTH, "nesting beyond the parser limit");

    let text = ical::write(&cal);
    assert!(text.ends_with("\r\n"), "output not CRLF-terminated");
    for line in text.split_terminator("\r\n") {
        assert!(line.len() <= MAX_LINE, "unfolded line: {line:?}");
        assert!(!line.contains(['\r', '\n']), "bare line break: {line:?}");
    }
    let again = ical::parse(&text).expect("writer output must parse");
    assert_eq!(again, cal, "parse → write → parse changed the tree");
    assert_eq!(ical::write(&again), text, "write is not stable");

    check_values(&cal);
});

/// Depth of the component tree (the root counts as 1).
fn depth(c: &Component) -> usize {
    1 + c.components.iter().map(depth).max().unwrap_or(0)
}

/// Typed accessors on every property: none may panic, and the cheap inverses must hold.
fn check_values(c: &Component) {
    for p in &c.properties {
        let text = p.text_value();
        let _ = p.text_values();
        // escape_text turns any CR/LF flavour into `\n`, which unescapes to LF, and drops
        // the control characters RFC 5545 TEXT forbids (C0 but TAB, DEL, C1).
        let expected: String = text
            .replace("\r\n", "\n")
            .replace('\r', "\n")
            .chars()
            .filter(|&c| !c.is_control() || matches!(c, '\t' | '\n'))
            .collect();
        assert_eq!(ical::unescape_text(&ical::escape_text(&text)), expected);
        if let Some(d) = Date::parse_ical(&p.value) {
            assert_eq!(d.to_ical(), p.value[..8], "date digits changed");
            assert_eq!(Date::parse_iso(&d.to_iso()), Some(d));
            assert_eq!(d.succ().pred(), d);
        }
    }
    for sub in &c.components {
        check_values(sub);
    }
}
