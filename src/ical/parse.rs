//! Parser: iCalendar text → [`Component`] tree (RFC 5545 §3.1, params per RFC 6868).
//!
//! The work happens in three layers, each a plain loop over the input: physical lines
//! (CRLF, bare LF or bare CR), unfolding (done on bytes, so a multi-byte UTF-8 character
//! that a careless writer split across a fold is reassembled before it is decoded), and
//! content lines (name, params, raw value). BEGIN/END are matched with an explicit stack, so
//! hostile nesting cannot overflow the call stack.

use super::{Component, Param, ParseError, Property};

/// Deepest accepted nesting of components. Real data nests at most four deep
/// (VCALENDAR/VTIMEZONE/STANDARD, VCALENDAR/VEVENT/VALARM); the limit keeps the recursive
/// `Drop`/`write`/`PartialEq` of a hostile million-level tree from overflowing the stack.
const MAX_DEPTH: usize = 64;

/// Parses the single top-level `VCALENDAR` of `input`.
///
/// Accepts CRLF or bare LF line ends, a missing final newline, folded lines (continuation
/// starting with space or TAB), blank lines (ignored) and a leading BOM. Property, parameter
/// and component names are case-insensitive and come back upper-cased. Fails on a content
/// line without `:`, unbalanced BEGIN/END, properties outside any component, a top-level
/// component other than VCALENDAR, or more than one top-level component.
pub fn parse(input: &str) -> Result<Component, ParseError> {
    parse_bytes(input.as_bytes())
}

/// Like [`parse`], for raw bytes as received over HTTP.
///
/// Unfolding happens before UTF-8 decoding, so a character split across a fold survives.
/// Bytes that are still not valid UTF-8 after unfolding become U+FFFD rather than failing:
/// one mis-encoded DESCRIPTION should not make a whole calendar object unreadable.
pub fn parse_bytes(input: &[u8]) -> Result<Component, ParseError> {
    let input = input.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(input);
    let mut builder = Builder::default();
    // The logical line being assembled: its first physical line number and its bytes.
    let mut current: Option<(usize, Vec<u8>)> = None;
    let mut line_no = 0;
    for line in PhysicalLines(input) {
        line_no += 1;
        match line.first() {
            None => {} // blank line: ignored, does not end a folded line either
            Some(b' ' | b'\t') => match current.as_mut() {
                Some((_, buf)) => buf.extend_from_slice(&line[1..]),
                None => return Err(error(line_no, "continuation line without a content line")),
            },
            Some(_) => {
                if let Some((n, buf)) = current.take() {
                    builder.content_line(n, &buf)?;
                }
                current = Some((line_no, line.to_vec()));
            }
        }
    }
    if let Some((n, buf)) = current.take() {
        builder.content_line(n, &buf)?;
    }
    builder.finish(line_no.max(1))
}

/// Unescapes RFC 5545 TEXT: `\\` `\;` `\,` `\n` `\N`. Unknown escapes (`\:` from some
/// producers) and a trailing lone backslash are kept verbatim, losing nothing.
pub fn unescape_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    // The text between backslashes is copied in one piece.
    while let Some(i) = rest.bytes().position(|b| b == b'\\') {
        out.push_str(&rest[..i]);
        let mut after = rest[i + 1..].chars();
        match after.next() {
            Some('n' | 'N') => out.push('\n'),
            Some(e @ ('\\' | ';' | ',')) => out.push(e),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
        rest = after.as_str();
    }
    out.push_str(rest);
    out
}

fn error(line: usize, message: impl Into<String>) -> ParseError {
    ParseError {
        line,
        message: message.into(),
    }
}

/// Splits at CRLF, LF or a lone CR; the terminators are not part of the lines. A lone CR
/// counts as a line end because it may not appear inside a value anyway, and treating it as
/// one means a parsed value never contains a line break the writer would have to alter.
struct PhysicalLines<'a>(&'a [u8]);

impl<'a> Iterator for PhysicalLines<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.0.is_empty() {
            return None;
        }
        let rest = self.0;
        match rest.iter().position(|&b| b == b'\n' || b == b'\r') {
            None => {
                self.0 = &[];
                Some(rest)
            }
            Some(i) => {
                let skip = if rest[i] == b'\r' && rest.get(i + 1) == Some(&b'\n') {
                    2
                } else {
                    1
                };
                self.0 = &rest[i + skip..];
                Some(&rest[..i])
            }
        }
    }
}

/// Assembles the component tree from content lines.
#[derive(Default)]
struct Builder {
    /// Open components, innermost last.
    stack: Vec<Component>,
    /// The closed top-level component.
    root: Option<Component>,
}

impl Builder {
    fn content_line(&mut self, line: usize, raw: &[u8]) -> Result<(), ParseError> {
        let text = String::from_utf8_lossy(raw);
        let prop = content_line(&text).map_err(|m| error(line, m))?;
        match prop.name.as_str() {
            "BEGIN" => {
                let name = component_name(&prop.value).map_err(|m| error(line, m))?;
                if self.root.is_some() {
                    return Err(error(line, "more than one top-level component"));
                }
                if self.stack.is_empty() && name != "VCALENDAR" {
                    return Err(error(
                        line,
                        format!("top-level component is {name}, expected VCALENDAR"),
                    ));
                }
                if self.stack.len() >= MAX_DEPTH {
                    return Err(error(line, "components nested too deeply"));
                }
                self.stack.push(Component::new(&name));
            }
            "END" => {
                let name = component_name(&prop.value).map_err(|m| error(line, m))?;
                let Some(done) = self.stack.pop() else {
                    return Err(error(line, format!("END:{name} without BEGIN")));
                };
                if done.name != name {
                    return Err(error(
                        line,
                        format!("END:{name} does not match BEGIN:{}", done.name),
                    ));
                }
                match self.stack.last_mut() {
                    Some(parent) => parent.components.push(done),
                    None => self.root = Some(done),
                }
            }
            _ => match self.stack.last_mut() {
                Some(c) => c.properties.push(prop),
                None if self.root.is_some() => {
                    return Err(error(line, "content after the end of the calendar"))
                }
                None => return Err(error(line, "property outside of a component")),
            },
        }
        Ok(())
    }

    fn finish(self, last_line: usize) -> Result<Component, ParseError> {
        if let Some(open) = self.stack.last() {
            return Err(error(
                last_line,
                format!("unexpected end of input: {} not closed", open.name),
            ));
        }
        self.root
            .ok_or_else(|| error(last_line, "no component found"))
    }
}

/// The component name of a BEGIN/END value, upper-cased. Surrounding whitespace is
/// tolerated because some writers leave a trailing blank after `END:VEVENT`.
fn component_name(value: &str) -> Result<String, String> {
    let name = value.trim_matches([' ', '\t']);
    if name.is_empty() || !name.bytes().all(is_name_byte) {
        return Err(format!("invalid component name {value:?}"));
    }
    Ok(name.to_ascii_uppercase())
}

/// RFC 5545 iana-token / x-name characters, plus `_` which some producers use.
fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// Parses one unfolded content line: `name *(";" param) ":" value`.
fn content_line(s: &str) -> Result<Property, String> {
    const NO_COLON: &str = "property without ':'";
    let b = s.as_bytes();
    let mut i = b.iter().position(|&c| !is_name_byte(c)).unwrap_or(b.len());
    if i == b.len() {
        return Err(NO_COLON.into());
    }
    if i == 0 || (b[i] != b':' && b[i] != b';') {
        return Err(if b.contains(&b':') {
            "invalid property name".into()
        } else {
            NO_COLON.into()
        });
    }
    let mut prop = Property {
        name: s[..i].to_ascii_uppercase(),
        params: Vec::new(),
        value: String::new(),
    };
    while b.get(i) == Some(&b';') {
        i += 1;
        let start = i;
        while i < b.len() && is_name_byte(b[i]) {
            i += 1;
        }
        if i == start {
            return Err("invalid parameter name".into());
        }
        match b.get(i) {
            Some(b'=') => i += 1,
            Some(_) => return Err(format!("parameter {} without '='", &s[start..i])),
            None => return Err(NO_COLON.into()),
        }
        let mut param = Param {
            name: s[start..i - 1].to_ascii_uppercase(),
            values: Vec::new(),
        };
        loop {
            let value = if b.get(i) == Some(&b'"') {
                let Some(len) = b[i + 1..].iter().position(|&c| c == b'"') else {
                    return Err("unterminated quoted parameter value".into());
                };
                let v = &s[i + 1..i + 1 + len];
                i += len + 2;
                v
            } else {
                let start = i;
                while i < b.len() && !matches!(b[i], b',' | b';' | b':') {
                    i += 1;
                }
                &s[start..i]
            };
            param.values.push(decode_caret(value));
            if b.get(i) == Some(&b',') {
                i += 1;
            } else {
                break;
            }
        }
        prop.params.push(param);
        match b.get(i) {
            Some(b';' | b':') => {}
            Some(_) => return Err("unexpected character after quoted parameter value".into()),
            None => return Err(NO_COLON.into()),
        }
    }
    // Here b[i] == b':' (the loop only exits on ':' or returns).
    prop.value = s[i + 1..].to_string();
    Ok(prop)
}

/// Decodes RFC 6868 parameter escapes: `^n` newline, `^^` caret, `^'` double quote. Any other
/// `^` is literal, as the RFC requires.
fn decode_caret(s: &str) -> String {
    if !s.contains('^') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '^' {
            let decoded = match chars.peek() {
                Some('n') => Some('\n'),
                Some('^') => Some('^'),
                Some('\'') => Some('"'),
                _ => None,
            };
            if let Some(d) = decoded {
                chars.next();
                out.push(d);
                continue;
            }
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(input: &str) -> ParseError {
        parse(input).expect_err("should not parse")
    }

    #[test]
    fn rfc5545_section_4_example() {
        // RFC 5545 §4, first example (a group-scheduled meeting), with its CRLFs and the
        // fold in DESCRIPTION.
        let input = "BEGIN:VCALENDAR\r\n\
            PRODID:-//xyz Corp//NONSGML PDA Calendar Version 1.0//EN\r\n\
            VERSION:2.0\r\n\
            BEGIN:VEVENT\r\n\
            DTSTAMP:19960704T120000Z\r\n\
            UID:uid1@example.com\r\n\
            ORGANIZER:mailto:jsmith@example.com\r\n\
            DTSTART:19960918T143000Z\r\n\
            DTEND:19960920T220000Z\r\n\
            STATUS:CONFIRMED\r\n\
            CATEGORIES:CONFERENCE\r\n\
            SUMMARY:Networld+Interop Conference\r\n\
            DESCRIPTION:Networld+Interop Conference\r\n  \
            and Exhibit\\nAtlanta World Congress Center\\n\r\n \
            Atlanta\\, Georgia\r\n\
            END:VEVENT\r\n\
            END:VCALENDAR\r\n";
        let cal = parse(input).unwrap();
        assert_eq!(cal.name, "VCALENDAR");
        assert_eq!(cal.properties.len(), 2);
        assert_eq!(cal.text("VERSION").as_deref(), Some("2.0"));
        let ev = cal.component("VEVENT").unwrap();
        assert_eq!(ev.properties.len(), 9);
        assert_eq!(
            ev.property("ORGANIZER").unwrap().value,
            "mailto:jsmith@example.com"
        );
        assert_eq!(
            ev.property("DESCRIPTION").unwrap().value,
            "Networld+Interop Conference and Exhibit\\nAtlanta World Congress \
             Center\\nAtlanta\\, Georgia"
        );
        assert_eq!(
            ev.text("DESCRIPTION").unwrap(),
            "Networld+Interop Conference and Exhibit\nAtlanta World Congress \
             Center\nAtlanta, Georgia"
        );
    }

    #[test]
    fn rfc5545_folding_example() {
        // RFC 5545 §3.1: the fold removes CRLF and exactly one whitespace character.
        let input = "BEGIN:VCALENDAR\r\nDESCRIPTION:This is a lo\r\n ng description\r\n  \
                     that exists on a long line.\r\nEND:VCALENDAR\r\n";
        assert_eq!(
            parse(input).unwrap().text("DESCRIPTION").unwrap(),
            "This is a long description that exists on a long line."
        );
        // TAB works as fold character too.
        let tab = "BEGIN:VCALENDAR\nX-A:ab\n\tcd\nEND:VCALENDAR";
        assert_eq!(parse(tab).unwrap().properties[0].value, "abcd");
    }

    #[test]
    fn rfc5545_params() {
        // RFC 5545 §3.2 examples: multi-valued, quoted with ':' inside, case-insensitive names.
        let input = "BEGIN:VCALENDAR\n\
            ATTENDEE;MEMBER=\"mailto:projectA@example.com\",\"mailto:pr\n \
            ojectB@example.com\":mailto:janedoe@example.com\n\
            ATTENDEE;DELEGATED-TO=\"mailto:jdoe@example.com\",\"mailto:jqpublic\n \
            @example.com\":mailto:jsmith@example.com\n\
            attendee;rsvp=TRUE;Role=REQ-PARTICIPANT;CN=\"Doe, John; Jr.\":mailto:jd@example.com\n\
            DESCRIPTION;ALTREP=\"cid:part1.0001@example.org\":The Fall'98 Wild\n\
            END:VCALENDAR";
        let cal = parse(input).unwrap();
        let p = &cal.properties;
        assert_eq!(p[0].params[0].name, "MEMBER");
        assert_eq!(
            p[0].params[0].values,
            ["mailto:projectA@example.com", "mailto:projectB@example.com"]
        );
        assert_eq!(p[0].value, "mailto:janedoe@example.com");
        assert_eq!(
            p[1].params[0].values,
            ["mailto:jdoe@example.com", "mailto:jqpublic@example.com"]
        );
        assert_eq!(p[2].name, "ATTENDEE");
        assert_eq!(p[2].param("RSVP"), Some("TRUE"));
        assert_eq!(p[2].param("role"), Some("REQ-PARTICIPANT"));
        assert_eq!(p[2].param("cn"), Some("Doe, John; Jr."));
        assert_eq!(p[2].value, "mailto:jd@example.com");
        assert_eq!(p[3].param("ALTREP"), Some("cid:part1.0001@example.org"));
        assert_eq!(p[3].value, "The Fall'98 Wild");
    }

    #[test]
    fn leniencies() {
        // BOM, bare LF, blank lines, lower-case names, no final newline, value with colons.
        let input = "\u{FEFF}begin:vcalendar\n\nVERSION:2.0\r\n\r\nBegin:VEvent\n\
                     url:https://x.example/a:b\nEND:VEVENT \nEND:VCALENDAR";
        let cal = parse(input).unwrap();
        assert_eq!(cal.name, "VCALENDAR");
        let ev = cal.component("VEVENT").unwrap();
        assert_eq!(ev.name, "VEVENT");
        assert_eq!(ev.properties[0].name, "URL");
        assert_eq!(ev.properties[0].value, "https://x.example/a:b");
        // Empty values, empty and unquoted params.
        let cal = parse("BEGIN:VCALENDAR\nX-A;X-P=;X-Q=a,,b:\nEND:VCALENDAR\n").unwrap();
        let p = &cal.properties[0];
        assert_eq!(p.value, "");
        assert_eq!(p.params[0].values, [""]);
        assert_eq!(p.params[1].values, ["a", "", "b"]);
    }

    #[test]
    fn rfc6868_caret_decoding() {
        let cal =
            parse("BEGIN:VCALENDAR\nX-A;X-ADDR=\"Main St.^n^'Building^' ^^ ^x\":v\nEND:VCALENDAR")
                .unwrap();
        assert_eq!(
            cal.properties[0].param("x-addr"),
            Some("Main St.\n\"Building\" ^ ^x")
        );
    }

    #[test]
    fn utf8_split_across_fold_is_reassembled() {
        // "é" is C3 A9; a byte-counting writer split it between the two lines.
        let mut input =
            b"BEGIN:VCALENDAR\r\nSUMMARY:caf\xC3\r\n \xA9!\r\nEND:VCALENDAR\r\n".to_vec();
        assert_eq!(
            parse_bytes(&input).unwrap().text("SUMMARY").unwrap(),
            "café!"
        );
        // Genuinely broken bytes become U+FFFD instead of an error.
        input[28] = 0xFF;
        assert_eq!(
            parse_bytes(&input).unwrap().text("SUMMARY").unwrap(),
            "caf\u{FFFD}\u{FFFD}!"
        );
    }

    #[test]
    fn unescape() {
        assert_eq!(unescape_text(r"a\\b\;c\,d\ne\Nf"), "a\\b;c,d\ne\nf");
        assert_eq!(
            unescape_text(r"keep \: and \x and end\"),
            r"keep \: and \x and end\"
        );
        assert_eq!(unescape_text("plain ✓"), "plain ✓");
    }

    #[test]
    fn errors_carry_line_numbers() {
        let e =
            err("BEGIN:VCALENDAR\nVERSION:2.0\nBEGIN:VEVENT\nSUMMARY x\nEND:VEVENT\nEND:VCALENDAR");
        assert_eq!(e.line, 4);
        assert_eq!(e.to_string(), "line 4: property without ':'");

        let e = err("BEGIN:VCALENDAR\r\nBEGIN:VTODO\r\nUID:1\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n");
        assert_eq!(e.line, 4);
        assert_eq!(e.message, "END:VEVENT does not match BEGIN:VTODO");

        let e = err("BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:1\n");
        assert_eq!(e.line, 3);
        assert_eq!(e.message, "unexpected end of input: VEVENT not closed");

        // A folded content line reports the physical line it starts on.
        let e = err("BEGIN:VCALENDAR\nX-A;P=\"abc\n def:v\nEND:VCALENDAR");
        assert_eq!(e.line, 2);
        assert_eq!(e.message, "unterminated quoted parameter value");
    }

    #[test]
    fn structural_errors() {
        assert_eq!(err("").message, "no component found");
        assert_eq!(err("\r\n\r\n").message, "no component found");
        assert_eq!(
            err("VERSION:2.0\n").message,
            "property outside of a component"
        );
        assert_eq!(
            err(" folded\n").message,
            "continuation line without a content line"
        );
        assert_eq!(
            err("END:VCALENDAR\n").message,
            "END:VCALENDAR without BEGIN"
        );
        assert_eq!(
            err("BEGIN:VCALENDAR\nEND:VCALENDAR\nBEGIN:VCALENDAR\nEND:VCALENDAR\n").message,
            "more than one top-level component"
        );
        let e = err("BEGIN:VCALENDAR\nEND:VCALENDAR\nX:1\n");
        assert_eq!(
            (e.line, e.message.as_str()),
            (3, "content after the end of the calendar")
        );
        assert_eq!(
            err("BEGIN:VCARD\nEND:VCARD\n").message,
            "top-level component is VCARD, expected VCALENDAR"
        );
        assert_eq!(err("BEGIN:\n").message, "invalid component name \"\"");
        assert_eq!(
            err("BEGIN:VCALENDAR\nA B:c\nEND:VCALENDAR").message,
            "invalid property name"
        );
        assert_eq!(
            err("BEGIN:VCALENDAR\n:c\nEND:VCALENDAR").message,
            "invalid property name"
        );
        assert_eq!(
            err("BEGIN:VCALENDAR\nA;B:c\nEND:VCALENDAR").message,
            "parameter B without '='"
        );
        assert_eq!(
            err("BEGIN:VCALENDAR\nA;B=\"x\"y:c\nEND:VCALENDAR").message,
            "unexpected character after quoted parameter value"
        );
        assert_eq!(
            err("BEGIN:VCALENDAR\nA;B=x\nEND:VCALENDAR").message,
            "property without ':'"
        );
        assert_eq!(
            err("BEGIN:VCALENDAR\nA;=x:y\nEND:VCALENDAR").message,
            "invalid parameter name"
        );
    }

    #[test]
    fn nesting_limit() {
        let mut deep = String::from("BEGIN:VCALENDAR\n");
        for _ in 0..MAX_DEPTH {
            deep.push_str("BEGIN:X\n");
        }
        assert_eq!(err(&deep).message, "components nested too deeply");
        assert_eq!(err(&deep).line, MAX_DEPTH + 1);
    }

    /// Deterministic xorshift so the mutation test needs no crate and is reproducible.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    #[test]
    fn byte_mutations_never_panic_and_ok_results_round_trip() {
        let sample = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//x//y//EN\r\n\
            BEGIN:VEVENT\r\nUID:plane-issue-1@calplanebot\r\n\
            ATTENDEE;CN=\"Doe, J\";MEMBER=\"mailto:a@x\",\"mailto:b@x\":mailto:j@x\r\n\
            SUMMARY:Caf\u{e9} \u{1F600} \u{65E5}\u{672C}\\, ok\r\n\
            DESCRIPTION:long line that goes on and on and on and on and on and on and \r\n  \
            continues\\nhere\r\n\
            BEGIN:VALARM\r\nTRIGGER;RELATED=START:-PT15M\r\nACTION:DISPLAY\r\nEND:VALARM\r\n\
            END:VEVENT\r\nEND:VCALENDAR\r\n";
        let interesting: &[u8] = b":;,\"=^\\\r\n \tABZ-\xC3\xA9\xF0\x9F\x98\x80\xFF";
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut oks = 0;
        for _ in 0..20_000 {
            let mut bytes = sample.as_bytes().to_vec();
            for _ in 0..1 + rng.below(4) {
                let pos = rng.below(bytes.len() + 1);
                let byte = if rng.below(2) == 0 {
                    interesting[rng.below(interesting.len())]
                } else {
                    rng.next() as u8
                };
                match rng.below(3) {
                    0 if pos < bytes.len() => bytes[pos] = byte,
                    1 if pos < bytes.len() => {
                        bytes.remove(pos);
                    }
                    _ => bytes.insert(pos, byte),
                }
            }
            let as_str = String::from_utf8_lossy(&bytes);
            for cal in [parse_bytes(&bytes), parse(&as_str)].into_iter().flatten() {
                oks += 1;
                // Whatever parses must survive write → parse unchanged.
                let again = parse(&crate::ical::write(&cal));
                assert_eq!(again.as_ref(), Ok(&cal), "input: {as_str:?}");
            }
        }
        // Most single mutations hit values and stay valid; make sure both paths were taken.
        assert!(oks > 1_000 && oks < 40_000, "oks = {oks}");
    }
}
