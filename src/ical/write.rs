//! Writer: [`Component`] tree → iCalendar text (RFC 5545 §3.1, params per RFC 6868).

use super::{Component, Param, Property};

/// Longest physical line in octets, excluding the CRLF (RFC 5545 §3.1 "SHOULD NOT be longer
/// than 75 octets"). The leading space of a continuation line counts towards it.
const MAX_LINE: usize = 75;

/// Parameters whose values are `DQUOTE cal-address DQUOTE` / `DQUOTE uri DQUOTE` in the
/// RFC 5545 grammar, so they must be quoted even when nothing in them would require it.
const ALWAYS_QUOTED: &[&str] = &[
    "ALTREP",
    "DELEGATED-FROM",
    "DELEGATED-TO",
    "DIR",
    "MEMBER",
    "SENT-BY",
];

/// Serialises `c` (normally a VCALENDAR) with CRLF line ends, folding every content line
/// longer than 75 octets without splitting a UTF-8 character.
///
/// Property values are written raw, except that any CR/LF in them is written as `\n`: a raw
/// line break would end the content line early and let the rest be read as new properties.
/// Names are written as they are; they are expected to be valid tokens.
pub fn write(c: &Component) -> String {
    let mut out = String::with_capacity(written_size(c));
    write_component(c, &mut out);
    out
}

/// About how long `c` is written: its lines unfolded plus line ends, with room for a few
/// folds. Allocating that once avoids the copies of a growing buffer.
fn written_size(c: &Component) -> usize {
    let props: usize = c
        .properties
        .iter()
        .map(|p| {
            let params: usize = p
                .params
                .iter()
                .map(|q| q.name.len() + q.values.iter().map(|v| v.len() + 3).sum::<usize>() + 2)
                .sum();
            p.name.len() + params + p.value.len() + 3 + p.value.len() / MAX_LINE * 3
        })
        .sum();
    let subs: usize = c.components.iter().map(written_size).sum();
    2 * (c.name.len() + 8) + props + subs
}

/// Escapes RFC 5545 TEXT: backslash, `;`, `,` and line breaks (CRLF, LF or CR → `\n`).
/// Control characters the grammar forbids are dropped: Plane accepts them in names,
/// calendars must not. RFC 5545 §3.3.11 allows, besides printable characters, only space
/// and HTAB (line breaks are written as `\n`); CONTROL there is every other C0 character and
/// DEL. C1 controls (U+0080–U+009F) are syntactically non-ASCII but act as terminal
/// controls (U+009B is CSI), so they go too.
///
/// Works on bytes and copies the text between special characters in one piece: every
/// special character is ASCII, or a C1 control (0xC2 then 0x80–0x9F in UTF-8), so each
/// stop is a character boundary.
pub fn escape_text(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = String::with_capacity(s.len() + s.len() / 16);
    let (mut copied, mut i) = (0, 0);
    while i < bytes.len() {
        let (width, replacement) = match bytes[i] {
            b'\\' => (1, "\\\\"),
            b';' => (1, "\\;"),
            b',' => (1, "\\,"),
            b'\n' => (1, "\\n"),
            b'\r' if bytes.get(i + 1) == Some(&b'\n') => (2, "\\n"),
            b'\r' => (1, "\\n"),
            b'\t' => (0, ""), // allowed: kept, like every character not named here
            0..=0x1F | 0x7F => (1, ""),
            0xC2 if bytes.get(i + 1).is_some_and(|n| (0x80..=0x9F).contains(n)) => (2, ""),
            _ => (0, ""),
        };
        if width == 0 {
            i += 1;
            continue;
        }
        out.push_str(&s[copied..i]);
        out.push_str(replacement);
        i += width;
        copied = i;
    }
    out.push_str(&s[copied..]);
    out
}

fn write_component(c: &Component, out: &mut String) {
    let mut line = String::with_capacity(128);
    line.push_str("BEGIN:");
    line.push_str(&c.name);
    push_folded(out, &line);
    for p in &c.properties {
        line.clear();
        content_line(p, &mut line);
        push_folded(out, &line);
    }
    for sub in &c.components {
        write_component(sub, out);
    }
    line.clear();
    line.push_str("END:");
    line.push_str(&c.name);
    push_folded(out, &line);
}

/// The unfolded content line of `p`.
fn content_line(p: &Property, line: &mut String) {
    line.push_str(&p.name);
    for param in &p.params {
        write_param(param, line);
    }
    line.push(':');
    push_without_breaks(line, &p.value, "\\n");
}

fn write_param(param: &Param, line: &mut String) {
    line.push(';');
    line.push_str(&param.name);
    line.push('=');
    let always = ALWAYS_QUOTED
        .iter()
        .any(|n| n.eq_ignore_ascii_case(&param.name));
    for (i, value) in param.values.iter().enumerate() {
        if i > 0 {
            line.push(',');
        }
        // RFC 6868: the only way to carry `"` or a line break in a parameter value.
        let mut encoded = String::with_capacity(value.len());
        for c in value.chars() {
            match c {
                '^' => encoded.push_str("^^"),
                '"' => encoded.push_str("^'"),
                c => encoded.push(c),
            }
        }
        let mut unbroken = String::with_capacity(encoded.len());
        push_without_breaks(&mut unbroken, &encoded, "^n");
        if always || unbroken.contains([':', ';', ',']) {
            line.push('"');
            line.push_str(&unbroken);
            line.push('"');
        } else {
            line.push_str(&unbroken);
        }
    }
}

/// Appends `s` with every CRLF, LF or lone CR replaced by `replacement`.
/// Copies the text between breaks in one piece (values rarely hold any).
fn push_without_breaks(out: &mut String, s: &str, replacement: &str) {
    let mut rest = s;
    while let Some(i) = rest.bytes().position(|b| b == b'\r' || b == b'\n') {
        out.push_str(&rest[..i]);
        out.push_str(replacement);
        let crlf = rest[i..].starts_with("\r\n");
        rest = &rest[i + if crlf { 2 } else { 1 }..];
    }
    out.push_str(rest);
}

/// Appends `line` folded into physical lines of at most [`MAX_LINE`] octets, each ended by
/// CRLF. Breaks only between characters, so every physical line is valid UTF-8 on its own
/// (some servers and clients decode line by line).
fn push_folded(out: &mut String, line: &str) {
    let mut rest = line;
    // The first physical line has MAX_LINE octets; a continuation's leading space takes one.
    let mut room = MAX_LINE;
    while rest.len() > room {
        let mut cut = room;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        out.push_str(&rest[..cut]);
        out.push_str("\r\n ");
        rest = &rest[cut..];
        room = MAX_LINE - 1;
    }
    out.push_str(rest);
    out.push_str("\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ical::parse;

    /// Nextcloud-style all-day event with alarm, categories and an X- property.
    const NEXTCLOUD: &str = "BEGIN:VCALENDAR\r\n\
        PRODID:-//IDN nextcloud.com//Calendar app 4.6.4//EN\r\n\
        CALSCALE:GREGORIAN\r\n\
        VERSION:2.0\r\n\
        BEGIN:VEVENT\r\n\
        CREATED:20240102T101010Z\r\n\
        DTSTAMP:20240102T101512Z\r\n\
        LAST-MODIFIED:20240102T101512Z\r\n\
        SEQUENCE:2\r\n\
        UID:plane-issue-3f1c2a9e-0000-4b1e-9c1d-123456789abc@calplanebot\r\n\
        DTSTART;VALUE=DATE:20261124\r\n\
        DTEND;VALUE=DATE:20261125\r\n\
        STATUS:CONFIRMED\r\n\
        SUMMARY:[WEB-42] Fix login\\, then deploy\r\n\
        CATEGORIES:bug,frontend\\,ui\r\n\
        X-PLANE-WORK-ITEM-ID:3f1c2a9e-0000-4b1e-9c1d-123456789abc\r\n\
        X-NEXTCLOUD-BC-FIELD-TYPE:event\r\n\
        BEGIN:VALARM\r\n\
        ACTION:DISPLAY\r\n\
        TRIGGER;RELATED=START:-PT15H\r\n\
        DESCRIPTION:Reminder\r\n\
        END:VALARM\r\n\
        END:VEVENT\r\n\
        END:VCALENDAR\r\n";

    /// Apple-style timed event with VTIMEZONE, attendees with quoted params, a structured
    /// location whose quoted param holds `:` and `,`, and a long UTF-8 description.
    const APPLE: &str = "BEGIN:VCALENDAR\n\
        VERSION:2.0\n\
        PRODID:-//Apple Inc.//macOS 14.2//EN\n\
        BEGIN:VTIMEZONE\n\
        TZID:Europe/Berlin\n\
        BEGIN:DAYLIGHT\n\
        TZOFFSETFROM:+0100\n\
        RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\n\
        DTSTART:19810329T020000\n\
        TZNAME:CEST\n\
        TZOFFSETTO:+0200\n\
        END:DAYLIGHT\n\
        BEGIN:STANDARD\n\
        TZOFFSETFROM:+0200\n\
        RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\n\
        DTSTART:19961027T030000\n\
        TZNAME:CET\n\
        TZOFFSETTO:+0100\n\
        END:STANDARD\n\
        END:VTIMEZONE\n\
        BEGIN:VEVENT\n\
        UID:6BA07F2A-1B5C-4D6E-9F00-AAAABBBBCCCC\n\
        DTSTART;TZID=Europe/Berlin:20261124T090000\n\
        DTEND;TZID=Europe/Berlin:20261124T100000\n\
        ORGANIZER;CN=\"Müller, Jörg\";EMAIL=joerg@example.com:mailto:joerg@example.com\n\
        ATTENDEE;CN=\"Doe, Jane\";CUTYPE=INDIVIDUAL;PARTSTAT=ACCEPTED;ROLE=REQ-PARTICIPANT;RSVP=TRUE;EMAIL=jane@example.com:mailto:jane@example.com\n\
        ATTENDEE;CN=田中太郎;PARTSTAT=NEEDS-ACTION;MEMBER=\"mailto:team@example.com\":mailto:tanaka@example.jp\n\
        X-APPLE-STRUCTURED-LOCATION;VALUE=URI;X-ADDRESS=\"Unter den Linden 1, Berlin\";X-APPLE-RADIUS=70;X-TITLE=\"Café: Ecke\":geo:52.517,13.388\n\
        LOCATION:Café: Ecke\\nUnter den Linden 1\\, Berlin\n\
        SUMMARY:Planung 🗓️ Q4 — 日本語の会議\n\
        DESCRIPTION:Ein langer Text mit Umlauten äöüß und Emoji 😀🎉👩‍👩‍👧‍👦 und CJK 東京都千代田区丸の内一丁目 damit die Zeile garantiert länger als fünfundsiebzig Oktette wird\\; mit Escapes\\, Backslash \\\\ und Zeilenumbruch\\nzweite Zeile.\n\
        X-MOZ-GENERATION:3\n\
        END:VEVENT\n\
        END:VCALENDAR\n";

    /// RFC 5545 §4 to-do example, plus a VTODO alarm (§3.6.6 style).
    const RFC_TODO: &str = "BEGIN:VCALENDAR\r\n\
        VERSION:2.0\r\n\
        PRODID:-//ABC Corporation//NONSGML My Product//EN\r\n\
        BEGIN:VTODO\r\n\
        DTSTAMP:19980130T134500Z\r\n\
        SEQUENCE:2\r\n\
        UID:uid4@example.com\r\n\
        ORGANIZER:mailto:unclesam@example.com\r\n\
        ATTENDEE;PARTSTAT=ACCEPTED:mailto:jqpublic@example.com\r\n\
        DUE:19980415T000000\r\n\
        STATUS:NEEDS-ACTION\r\n\
        SUMMARY:Submit Income Taxes\r\n\
        BEGIN:VALARM\r\n\
        ACTION:AUDIO\r\n\
        TRIGGER:19980403T120000Z\r\n\
        ATTACH;FMTTYPE=audio/basic:http://example.com/pub/audio-\r\n \
        files/ssbanner.aud\r\n\
        REPEAT:4\r\n\
        DURATION:PT1H\r\n\
        END:VALARM\r\n\
        END:VTODO\r\n\
        END:VCALENDAR\r\n";

    fn physical_lines(s: &str) -> Vec<&str> {
        assert!(s.ends_with("\r\n"));
        s[..s.len() - 2].split("\r\n").collect()
    }

    #[test]
    fn round_trips() {
        for input in [NEXTCLOUD, APPLE, RFC_TODO] {
            let cal = parse(input).unwrap();
            let out = write(&cal);
            assert_eq!(parse(&out).unwrap(), cal);
            // Writing is deterministic: a second round trip gives the same bytes.
            assert_eq!(write(&parse(&out).unwrap()), out);
        }
    }

    #[test]
    fn short_crlf_input_is_reproduced_byte_exactly() {
        // Nothing in NEXTCLOUD needs folding or re-quoting, so the text must come back as is.
        assert_eq!(write(&parse(NEXTCLOUD).unwrap()), NEXTCLOUD);
    }

    #[test]
    fn apple_details_survive() {
        let cal = parse(&write(&parse(APPLE).unwrap())).unwrap();
        let ev = cal.component("VEVENT").unwrap();
        let loc = ev.property("X-APPLE-STRUCTURED-LOCATION").unwrap();
        assert_eq!(loc.param("X-TITLE"), Some("Café: Ecke"));
        assert_eq!(loc.param("X-ADDRESS"), Some("Unter den Linden 1, Berlin"));
        assert_eq!(loc.value, "geo:52.517,13.388");
        let att: Vec<_> = ev.properties_named("ATTENDEE").collect();
        assert_eq!(att[0].param("CN"), Some("Doe, Jane"));
        assert_eq!(att[1].param("CN"), Some("田中太郎"));
        let desc = ev.text("DESCRIPTION").unwrap();
        assert!(desc.contains("👩‍👩‍👧‍👦 und CJK 東京都"));
        assert!(desc.ends_with("Backslash \\ und Zeilenumbruch\nzweite Zeile."));
        let tz = cal.component("VTIMEZONE").unwrap();
        assert_eq!(tz.components.len(), 2);
        assert_eq!(tz.components[1].name, "STANDARD");
    }

    #[test]
    fn folding_limits_and_utf8_boundaries() {
        let mut ev = Component::new("VEVENT");
        // Every split position relative to 1-, 2-, 3- and 4-byte characters gets exercised
        // by varying the prefix length.
        for pad in 0..8 {
            let text = format!("{}{}", "x".repeat(pad), "aé日😀".repeat(40));
            ev.push(Property::text("DESCRIPTION", &text));
        }
        ev.push(Property::new("X-EXACT", &"y".repeat(75 - "X-EXACT:".len())));
        ev.push(Property::new(
            "X-ONE-MORE",
            &"y".repeat(76 - "X-ONE-MORE:".len()),
        ));
        let mut cal = Component::new("VCALENDAR");
        cal.components.push(ev.clone());
        let out = write(&cal);
        let lines = physical_lines(&out);
        for line in &lines {
            assert!(line.len() <= 75, "{} octets: {line:?}", line.len());
            assert!(!line.contains('\r') && !line.contains('\n'));
        }
        // Lines are only folded when needed, and filled up to the limit otherwise.
        let exact = format!("X-EXACT:{}", "y".repeat(75 - 8));
        assert!(lines.contains(&exact.as_str()));
        let i = lines
            .iter()
            .position(|l| l.starts_with("X-ONE-MORE:"))
            .unwrap();
        assert_eq!(lines[i].len(), 75);
        assert_eq!(lines[i + 1], " y");
        // Continuation lines of the long description are never shorter than 72 octets
        // (75 minus at most 3 bytes left over before a 4-byte character), except the last.
        let first = lines
            .iter()
            .position(|l| l.starts_with("DESCRIPTION:"))
            .unwrap();
        assert!(lines[first].len() >= 72);
        assert!(lines[first + 1].starts_with(' ') && lines[first + 1].len() >= 72);
        assert_eq!(parse(&out).unwrap().component("VEVENT").unwrap(), &ev);
    }

    #[test]
    fn params_are_quoted_when_needed() {
        let p = Property::new("ATTENDEE", "mailto:a@x")
            .with_param("CN", "Doe, J")
            .with_param("ROLE", "CHAIR")
            .with_param("SENT-BY", "mailto:b@x")
            .with_param("X-EMPTY", "")
            .with_param("X-Q", "say \"hi\" ^ now\nok");
        let mut line = String::new();
        content_line(&p, &mut line);
        assert_eq!(
            line,
            "ATTENDEE;CN=\"Doe, J\";ROLE=CHAIR;SENT-BY=\"mailto:b@x\";X-EMPTY=;\
             X-Q=say ^'hi^' ^^ now^nok:mailto:a@x"
        );
        let mut multi = Property::new("ATTENDEE", "mailto:c@x");
        multi.params.push(Param {
            name: "MEMBER".into(),
            values: vec!["mailto:g1@x".into(), "mailto:g2@x".into()],
        });
        let mut line = String::new();
        content_line(&multi, &mut line);
        assert_eq!(
            line,
            "ATTENDEE;MEMBER=\"mailto:g1@x\",\"mailto:g2@x\":mailto:c@x"
        );
        // And they parse back to the same values.
        let mut cal = Component::new("VCALENDAR");
        cal.push(p.clone());
        cal.push(multi.clone());
        let back = parse(&write(&cal)).unwrap();
        assert_eq!(back.properties, vec![p, multi]);
    }

    #[test]
    fn raw_line_breaks_cannot_inject_properties() {
        let mut cal = Component::new("VCALENDAR");
        cal.push(Property::new("SUMMARY", "a\r\nEND:VCALENDAR\nX-EVIL:1\rb"));
        let out = write(&cal);
        assert_eq!(
            out,
            "BEGIN:VCALENDAR\r\nSUMMARY:a\\nEND:VCALENDAR\\nX-EVIL:1\\nb\r\nEND:VCALENDAR\r\n"
        );
        let back = parse(&out).unwrap();
        assert_eq!(back.properties.len(), 1);
        assert_eq!(
            back.text("SUMMARY").unwrap(),
            "a\nEND:VCALENDAR\nX-EVIL:1\nb"
        );
    }

    #[test]
    fn escape_text_cases() {
        assert_eq!(
            escape_text("a\\b;c,d\ne\r\nf\rg:h"),
            "a\\\\b\\;c\\,d\\ne\\nf\\ng:h"
        );
        for s in ["", "plain", "a,b;c\\d\n\ne", "emoji 😀, 日本; \\n literal"] {
            assert_eq!(crate::ical::unescape_text(&escape_text(s)), s);
        }
    }

    /// The folding and break rules spelled out one character at a time (the writer works
    /// on whole slices for speed and must give the same bytes).
    fn reference_line(line: &str) -> String {
        let mut unbroken = String::new();
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\n' => unbroken.push_str("\\n"),
                '\r' => {
                    if chars.peek() == Some(&'\n') {
                        chars.next();
                    }
                    unbroken.push_str("\\n");
                }
                c => unbroken.push(c),
            }
        }
        let (mut out, mut len) = (String::new(), 0);
        for c in unbroken.chars() {
            if len + c.len_utf8() > MAX_LINE {
                out.push_str("\r\n ");
                len = 1;
            }
            out.push(c);
            len += c.len_utf8();
        }
        out + "\r\n"
    }

    #[test]
    fn slices_are_folded_and_unbroken_like_characters() {
        let pieces = [
            "x", "é", "日", "😀", "\r\n", "\n", "\r", ";", "\\", ",", "\t", "\u{1b}", "\u{7f}",
            "\u{9b}", "\u{a0}",
        ];
        let mut seed = 7u32;
        for len in [0, 1, 60, 74, 75, 76, 149, 150, 151, 400] {
            for _ in 0..20 {
                let mut value = String::new();
                while value.len() < len {
                    seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                    value.push_str(pieces[(seed >> 16) as usize % pieces.len()]);
                }
                let mut c = Component::new("X");
                c.properties.push(Property {
                    name: "X-V".into(),
                    params: Vec::new(),
                    value: value.clone(),
                });
                let expected = format!(
                    "BEGIN:X\r\n{}END:X\r\n",
                    reference_line(&format!("X-V:{value}"))
                );
                assert_eq!(write(&c), expected, "{value:?}");
                let text = escape_text(&value);
                let by_char: String = value
                    .replace("\r\n", "\n")
                    .replace('\r', "\n")
                    .chars()
                    .flat_map(|ch| match ch {
                        '\\' => vec!['\\', '\\'],
                        ';' => vec!['\\', ';'],
                        ',' => vec!['\\', ','],
                        '\n' => vec!['\\', 'n'],
                        ch if ch.is_control() && ch != '\t' => vec![],
                        ch => vec![ch],
                    })
                    .collect();
                assert_eq!(text, by_char, "{value:?}");
                let plain: String = value
                    .replace("\r\n", "\n")
                    .replace('\r', "\n")
                    .chars()
                    .filter(|ch| !ch.is_control() || matches!(ch, '\t' | '\n'))
                    .collect();
                assert_eq!(crate::ical::unescape_text(&text), plain, "{value:?}");
            }
        }
    }

    #[test]
    fn control_characters_are_dropped_from_text() {
        assert_eq!(
            escape_text("a\u{0}b\u{7}c\u{1b}[31md\u{b}e\u{c}f\u{7f}g\u{9b}h\ti\u{1f}"),
            "abc[31mdefgh\ti"
        );
        let mut c = Component::new("VEVENT");
        c.push(Property::text("SUMMARY", "x\u{1b}]0;title\u{7}y"));
        let out = write(&c);
        assert!(
            !out.contains(|c: char| c.is_control() && c != '\r' && c != '\n'),
            "{out:?}"
        );
        assert!(out.contains("SUMMARY:x]0\\;titley\r\n"), "{out:?}");
    }
}
