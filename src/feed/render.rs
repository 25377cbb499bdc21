//! The text of a feed, without I/O: the calendar header, one block per work item, and
//! reading the blocks of a feed file back (for patching it).
//!
//! A feed file is exactly: the header (`BEGIN:VCALENDAR` and its properties), one block
//! per work item (`BEGIN:VEVENT`…`END:VEVENT` or the VTODO equivalent, the UID its first
//! property), and [`FOOTER`]. All lines end in CRLF. Only calplanebot writes these files,
//! so the reader needs to understand only this layout.

use std::io::BufRead;

use sha2::{Digest, Sha256};

use crate::ical::{self, Component, Property};
use crate::plane::{Project, WorkItem};
use crate::sync::model::{self, Excluded, Mapping, Rendered};

/// The last line of every feed.
pub const FOOTER: &str = "END:VCALENDAR\r\n";
/// Our marker of the feed format and mapping, in the header (see [`fingerprint`]).
pub const FINGERPRINT_PROP: &str = "X-CALPLANEBOT-FEED";
/// The Plane watermark the feed was listed up to, in the header: a restart goes on
/// incrementally from there.
pub const WATERMARK_PROP: &str = "X-CALPLANEBOT-WATERMARK";
/// The feed layout version; part of the fingerprint, so a new layout rebuilds old files.
const LAYOUT: &str = "1";

/// One work item's component as feed text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// Its UID.
    pub uid: String,
    /// `BEGIN:…` through `END:…`, CRLF line ends.
    pub text: String,
}

/// What the header of a feed says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// X-WR-CALNAME (and RFC 7986 NAME), e.g. `Plane: Website`.
    pub name: String,
    /// REFRESH-INTERVAL and X-PUBLISHED-TTL, from SYNC_INTERVAL_SECONDS.
    pub refresh_seconds: u64,
    /// See [`fingerprint`].
    pub fingerprint: String,
    /// See [`WATERMARK_PROP`].
    pub watermark: Option<String>,
}

impl Header {
    /// The header as feed text: everything before the first block.
    pub fn to_text(&self) -> String {
        let mut cal = Component::new("VCALENDAR");
        cal.push(Property::new("VERSION", "2.0"));
        cal.push(Property::new("PRODID", model::PRODID));
        cal.push(Property::new("CALSCALE", "GREGORIAN"));
        cal.push(Property::new("METHOD", "PUBLISH"));
        cal.push(Property::text("X-WR-CALNAME", &self.name));
        cal.push(Property::text("NAME", &self.name));
        let every = format!("PT{}S", self.refresh_seconds);
        // RFC 7986, and the older property Outlook and Apple read.
        cal.push(Property::new("REFRESH-INTERVAL", &every).with_param("VALUE", "DURATION"));
        cal.push(Property::new("X-PUBLISHED-TTL", &every));
        cal.push(Property::new(FINGERPRINT_PROP, &self.fingerprint));
        if let Some(w) = &self.watermark {
            cal.push(Property::new(WATERMARK_PROP, w));
        }
        let mut text = ical::write(&cal);
        text.truncate(text.len() - FOOTER.len());
        text
    }
}

/// A short digest of what decides the blocks' content: the layout and every mapping
/// option. A feed file with another fingerprint was made under other settings (another
/// ITEM_KIND, other filters) and is rebuilt from a full listing instead of patched.
pub fn fingerprint(m: &Mapping) -> String {
    let text = format!(
        "{LAYOUT}|{:?}|{:?}|{:?}|{}|{}|{}|{}|{}",
        m.kind,
        m.date_mode,
        m.completed,
        m.web_url,
        m.slug,
        m.state_groups.join(","),
        m.assignees.join(","),
        m.labels.join(",")
    );
    // Appended only when on: feeds made before cycles and modules existed keep their
    // fingerprint (and are not rebuilt on upgrade).
    let text = if m.cycles || m.modules {
        format!("{text}|timeline:{}:{}", m.cycles, m.modules)
    } else {
        text
    };
    Sha256::digest(text.as_bytes())
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The UID of a work item's object: ours, or for an item made from a calendar object
/// the UID Plane keeps as its external id (as the CalDAV sync does).
pub fn uid_of(item: &WorkItem) -> String {
    match (&item.external_source, &item.external_id) {
        (Some(source), Some(id)) if source == crate::sync::apply::EXTERNAL_SOURCE => id.clone(),
        _ => model::uid_for(&item.id),
    }
}

/// A work item's block, or why it has none. The same component the CalDAV sync writes,
/// stamped with the item's last change rather than the time of rendering, so the text
/// (and the feed's ETag) changes only when the item does. No SEQUENCE: nothing counts
/// the versions of a feed item (clients of subscriptions do not need it).
pub fn block(item: &WorkItem, project: &Project, m: &Mapping) -> Result<Block, Excluded> {
    let rendered = model::render(item, project, m)?;
    Ok(stamped(rendered, uid_of(item)))
}

/// A cycle's or module's block (rendered by `sync::timeline`, as the CalDAV sync writes
/// it), stamped with its last change like a work item's.
pub fn timeline_block(rendered: Rendered) -> Block {
    let uid = rendered.desired.uid.clone();
    stamped(rendered, uid)
}

/// The component with UID, DTSTAMP and LAST-MODIFIED (the object's last change) first.
fn stamped(rendered: Rendered, uid: String) -> Block {
    let stamp = crate::clock::format_ical_utc(
        crate::clock::parse_rfc3339(&rendered.desired.updated_at).unwrap_or_default(),
    );
    let mut c = Component::new(&rendered.component.name);
    c.push(Property::new("UID", &uid));
    c.push(Property::new("DTSTAMP", &stamp));
    c.push(Property::new("LAST-MODIFIED", &stamp));
    c.properties.extend(rendered.component.properties);
    Block {
        uid,
        text: ical::write(&c),
    }
}

/// The UID a block of a deleted work item had (an item gone from Plane cannot say whether
/// it came from a calendar object; those are cleared by the next full listing).
pub fn uid_of_id(work_item_id: &str) -> String {
    model::uid_for(work_item_id)
}

/// Reads a feed file: its header properties, then each block in order. `Ok(None)` when
/// the text is not a whole feed of ours (cut short, or not our layout).
pub fn read_feed(
    mut input: impl BufRead,
    block_sink: &mut dyn FnMut(Block),
) -> std::io::Result<Option<FeedHead>> {
    let mut head = FeedHead::default();
    let mut line = String::new();
    let mut current: Option<Block> = None;
    // The line that ends the block being read (`END:VEVENT` or `END:VTODO`).
    let mut end_line = "";
    let mut in_header = true;
    let mut ended = false;
    loop {
        line.clear();
        if input.read_line(&mut line)? == 0 {
            break;
        }
        if ended {
            // Text after END:VCALENDAR: not a file we wrote.
            return Ok(None);
        }
        if let Some(b) = current.as_mut() {
            b.text.push_str(&line);
            if b.uid.is_empty() {
                if let Some(uid) = line.trim_end().strip_prefix("UID:") {
                    b.uid = uid.to_string();
                }
            }
            if line.trim_end() == end_line {
                if let Some(done) = current.take() {
                    block_sink(done);
                }
            }
            continue;
        }
        let trimmed = line.trim_end();
        if trimmed == FOOTER.trim_end() {
            ended = true;
        } else if trimmed == "BEGIN:VEVENT" || trimmed == "BEGIN:VTODO" {
            in_header = false;
            end_line = if trimmed == "BEGIN:VEVENT" {
                "END:VEVENT"
            } else {
                "END:VTODO"
            };
            current = Some(Block {
                uid: String::new(),
                text: line.clone(),
            });
        } else if in_header {
            head.header_len += line.len() as u64;
            if !head.note(trimmed) {
                head.content_header.push_str(&line);
            }
        } else {
            return Ok(None);
        }
    }
    Ok((ended && current.is_none()).then_some(head))
}

/// What [`read_feed`] learnt from a header.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeedHead {
    /// Bytes of the header (where the first block starts).
    pub header_len: u64,
    /// Its [`FINGERPRINT_PROP`].
    pub fingerprint: Option<String>,
    /// Its [`WATERMARK_PROP`].
    pub watermark: Option<String>,
    /// Its calendar name (escaped as written).
    pub name: Option<String>,
    /// The header without the watermark line: what the feed's digest covers.
    pub content_header: String,
}

impl FeedHead {
    /// Takes note of one header line (our properties are short: never folded); true
    /// for the watermark line.
    fn note(&mut self, line: &str) -> bool {
        let Some((name, value)) = line.split_once(':') else {
            return false;
        };
        match name {
            FINGERPRINT_PROP => self.fingerprint = Some(value.to_string()),
            WATERMARK_PROP => {
                self.watermark = Some(value.to_string());
                return true;
            }
            "X-WR-CALNAME" => self.name = Some(value.to_string()),
            _ => {}
        }
        false
    }
}

/// An order-independent digest of a feed: the header's digest and the sum of the
/// blocks' digests. A patched file lists its blocks in another order than a full
/// listing writes them; the same items give the same digest either way, so an
/// unchanged feed keeps its ETag (a weak one: the bytes may differ in order).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Digest4([u64; 4]);

impl Digest4 {
    /// Adds a part (the header or one block).
    pub fn add(&mut self, text: &str) {
        let d = Sha256::digest(text.as_bytes());
        for (lane, chunk) in self.0.iter_mut().zip(d.chunks_exact(8)) {
            let mut b = [0u8; 8];
            b.copy_from_slice(chunk);
            *lane = lane.wrapping_add(u64::from_le_bytes(b));
        }
    }

    /// Combines digests (for a feed made of others).
    pub fn combine(&mut self, other: &Digest4) {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a = a.wrapping_add(b.rotate_left(17));
        }
    }

    /// The digest as a weak ETag.
    pub fn etag(&self) -> String {
        format!(
            "W/\"{:016x}{:016x}\"",
            self.0[0] ^ self.0[2],
            self.0[1] ^ self.0[3]
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{CompletedItems, DateMode, ItemKind};
    use crate::plane::State;

    fn mapping() -> Mapping {
        Mapping {
            kind: ItemKind::Event,
            date_mode: DateMode::Due,
            completed: CompletedItems::Delete,
            web_url: "https://plane.example.com".into(),
            slug: "acme".into(),
            state_groups: vec!["started".into()],
            assignees: vec![],
            labels: vec![],
            cycles: false,
            modules: false,
        }
    }

    fn project() -> Project {
        Project {
            id: "p1".into(),
            identifier: "WEB".into(),
            name: "Website".into(),
        }
    }

    fn item(id: &str, name: &str) -> WorkItem {
        WorkItem {
            id: id.into(),
            sequence_id: 3,
            name: name.into(),
            state: State {
                id: "s".into(),
                name: "Doing".into(),
                group: "started".into(),
            },
            target_date: Some("2026-03-01".into()),
            updated_at: "2026-02-01T10:00:00+01:00".into(),
            ..WorkItem::default()
        }
    }

    #[test]
    fn a_block_is_the_synced_component_with_stable_stamps() {
        let b = block(&item("i1", "Ship it"), &project(), &mapping()).unwrap();
        assert_eq!(b.uid, "plane-issue-i1@calplanebot");
        assert!(b
            .text
            .starts_with("BEGIN:VEVENT\r\nUID:plane-issue-i1@calplanebot\r\n"));
        assert!(b.text.contains("DTSTAMP:20260201T090000Z\r\n"));
        assert!(b.text.contains("SUMMARY:[WEB-3] Ship it\r\n"));
        assert!(b.text.contains("DTSTART;VALUE=DATE:20260301\r\n"));
        assert!(b.text.ends_with("END:VEVENT\r\n"));
        assert_eq!(
            b,
            block(&item("i1", "Ship it"), &project(), &mapping()).unwrap()
        );
        // A cycle's block: the event the CalDAV sync writes, stamped with its last change.
        let c = crate::plane::Cycle {
            id: "c1".into(),
            name: "Sprint 3".into(),
            start_date: Some("2026-02-02T00:00:01Z".into()),
            end_date: Some("2026-02-13T23:59:00Z".into()),
            updated_at: "2026-02-01T10:00:00+01:00".into(),
            ..crate::plane::Cycle::default()
        };
        let r = crate::sync::timeline::render_cycle(
            &c,
            &project(),
            &mapping(),
            &crate::tz::Zone::utc(),
        )
        .unwrap();
        let t = timeline_block(r).text;
        assert!(
            t.starts_with(
                "BEGIN:VEVENT\r\nUID:plane-cycle-c1@calplanebot\r\nDTSTAMP:20260201T090000Z\r\n"
            ),
            "{t}"
        );
        assert!(t.contains("SUMMARY:Cycle: Sprint 3\r\n"), "{t}");
        assert!(t.contains("DTEND;VALUE=DATE:20260214\r\n"), "{t}");
        let mut done = item("i2", "x");
        done.state.group = "backlog".into();
        assert_eq!(
            block(&done, &project(), &mapping()).unwrap_err(),
            Excluded::Filtered
        );
    }

    #[test]
    fn header_and_blocks_read_back() {
        let h = Header {
            name: "Plane: Web, site".into(),
            refresh_seconds: 300,
            fingerprint: fingerprint(&mapping()),
            watermark: Some("2026-02-01T10:00:00+01:00".into()),
        };
        let head_text = h.to_text();
        assert!(head_text.contains("X-WR-CALNAME:Plane: Web\\, site\r\n"));
        assert!(head_text.contains("REFRESH-INTERVAL;VALUE=DURATION:PT300S\r\n"));
        assert!(head_text.contains("X-PUBLISHED-TTL:PT300S\r\n"));
        assert!(!head_text.contains("END:VCALENDAR"));
        let a = block(&item("a", "A"), &project(), &mapping()).unwrap();
        let b = block(&item("b", "B"), &project(), &mapping()).unwrap();
        let file = format!("{head_text}{}{}{FOOTER}", a.text, b.text);
        let mut blocks = Vec::new();
        let head = read_feed(file.as_bytes(), &mut |b| blocks.push(b))
            .unwrap()
            .unwrap();
        assert_eq!(blocks, vec![a.clone(), b.clone()]);
        assert_eq!(head.header_len, head_text.len() as u64);
        assert_eq!(head.fingerprint, Some(h.fingerprint.clone()));
        assert_eq!(head.watermark, h.watermark);
        // Cut short, or something after the end: not ours.
        let cut = &file[..file.len() - 3];
        assert_eq!(read_feed(cut.as_bytes(), &mut |_| {}).unwrap(), None);
        let extra = format!("{file}X:1\r\n");
        assert_eq!(read_feed(extra.as_bytes(), &mut |_| {}).unwrap(), None);
    }

    #[test]
    fn digests_ignore_block_order_but_not_content() {
        let mut one = Digest4::default();
        let mut two = Digest4::default();
        for t in ["head", "a", "b"] {
            one.add(t);
        }
        for t in ["head", "b", "a"] {
            two.add(t);
        }
        assert_eq!(one.etag(), two.etag());
        two.add("c");
        assert_ne!(one.etag(), two.etag());
        assert!(one.etag().starts_with("W/\""));
        let mut m = mapping();
        let before = fingerprint(&m);
        m.kind = ItemKind::Todo;
        assert_ne!(before, fingerprint(&m));
        // Cycles and modules: each setting its own fingerprint; both off is the old one.
        let todo = fingerprint(&m);
        m.cycles = true;
        let cycles = fingerprint(&m);
        m.modules = true;
        let both = fingerprint(&m);
        assert!(todo != cycles && cycles != both && todo != both);
        (m.cycles, m.modules) = (false, false);
        assert_eq!(fingerprint(&m), todo);
    }
}
