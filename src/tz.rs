//! Time zones without a tz crate: reads TZif files (RFC 8536) from the system zoneinfo
//! directory and evaluates their POSIX TZ-string footer, so the sync can tell which local
//! date a UTC instant falls on in `EVENT_TIMEZONE`.
//!
//! Only UTC offsets are kept: abbreviations are not needed for dates, and leap-second
//! records are skipped because Unix time ignores leap seconds.

use crate::clock::{civil_from_days, days_from_civil};
use crate::ical::Date;
use std::fmt;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// Where zone files live when `$TZDIR` is unset.
const DEFAULT_TZDIR: &str = "/usr/share/zoneinfo";
/// Largest zone file read; real ones are < 4 KiB. Keeps `TZDIR=/dev` + `zero` harmless.
const MAX_FILE_BYTES: u64 = 256 * 1024;
/// Most transitions (and leap-second records) a data block may declare; real files have
/// a few hundred.
const MAX_TRANSITIONS: usize = 10_000;
/// Most local time types a data block may declare (type indices are one byte).
const MAX_TYPES: usize = 256;
/// Largest |UT offset| in a TZif type, 25:59:59 (RFC 8536 §3.2).
const MAX_OFFSET: i32 = 93_599;
/// Length of a TZif header: magic, version, 15 reserved bytes, six 32-bit counts.
const HEADER_LEN: usize = 44;
/// Instants beyond ±2^50 s (±35 million years) are clamped before rule arithmetic so that
/// day-to-second conversions cannot overflow.
const RULE_LIMIT: i64 = 1 << 50;

/// A time zone: fixed offsets + transitions read from a TZif file (RFC 8536), or UTC.
#[derive(Debug, Clone)]
pub struct Zone {
    name: String,
    /// Offset before the first transition: time type 0 (RFC 8536 §3.2).
    initial: i32,
    /// `(instant, offset in effect from then on)`, strictly ascending.
    transitions: Vec<(i64, i32)>,
    /// The footer rule for instants after the last transition (and for all instants when
    /// there are no transitions); `None` keeps the last offset.
    footer: Option<Rule>,
}

/// Why a zone could not be loaded.
#[derive(Debug)]
pub enum TzError {
    /// The name is not a plain zone name, so no file is looked up for it.
    BadName {
        /// The name as given.
        zone: String,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// The zone file could not be read.
    Io {
        /// The zone name.
        zone: String,
        /// The file tried.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The data is not a valid TZif file.
    Malformed {
        /// The zone name.
        zone: String,
        /// The file, `None` for bytes handed to [`Zone::from_tzif`].
        path: Option<PathBuf>,
        /// The field being read (`"magic"`, `"transition type index"`, `"footer"`, …).
        field: &'static str,
        /// Byte offset of that field in the data.
        offset: usize,
        /// What is wrong with it.
        problem: String,
    },
}

impl fmt::Display for TzError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TzError::BadName { zone, problem } => write!(
                f,
                "time zone {zone:?}: {problem}; use an IANA name such as Europe/Berlin or UTC"
            ),
            TzError::Io { zone, path, source } => write!(
                f,
                "time zone {zone}: cannot read {}: {source}; check the name (e.g. Europe/Berlin) \
                 and that tzdata is installed, or set TZDIR to a zoneinfo directory",
                path.display()
            ),
            TzError::Malformed {
                zone,
                path,
                field,
                offset,
                problem,
            } => {
                let file = path
                    .as_ref()
                    .map_or("given data".into(), |p| p.display().to_string());
                write!(
                    f,
                    "time zone {zone} ({file}): {field} at byte {offset}: {problem}; \
                     not a valid TZif file, reinstall tzdata or set TZDIR"
                )
            }
        }
    }
}

impl std::error::Error for TzError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TzError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl Zone {
    /// Coordinated Universal Time: offset 0 at every instant.
    pub fn utc() -> Zone {
        let name = "UTC".to_string();
        Zone {
            name,
            initial: 0,
            transitions: Vec::new(),
            footer: None,
        }
    }

    /// Loads `name` ("Europe/Berlin", "UTC", "Etc/GMT+5") from $TZDIR or
    /// /usr/share/zoneinfo. Refuses names with "..", leading "/", or anything but
    /// [A-Za-z0-9_+-/] (the name comes from the environment; never read arbitrary paths).
    /// `UTC` and `Etc/UTC` need no file: minimal containers often ship without tzdata.
    pub fn load(name: &str) -> Result<Zone, TzError> {
        let dir = std::env::var_os("TZDIR").filter(|d| !d.is_empty());
        Zone::load_in(
            dir.as_deref().map_or(Path::new(DEFAULT_TZDIR), Path::new),
            name,
        )
    }

    /// [`Zone::load`] from the zoneinfo directory `dir`.
    fn load_in(dir: &Path, name: &str) -> Result<Zone, TzError> {
        if let Err(problem) = check_name(name) {
            return Err(TzError::BadName {
                zone: name.into(),
                problem,
            });
        }
        if matches!(name, "UTC" | "Etc/UTC") {
            return Ok(Zone {
                name: name.into(),
                ..Zone::utc()
            });
        }
        let path = dir.join(name);
        let mut bytes = Vec::new();
        let read = std::fs::File::open(&path)
            .and_then(|file| file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes));
        if let Err(source) = read {
            return Err(TzError::Io {
                zone: name.into(),
                path,
                source,
            });
        }
        let parsed = if bytes.len() as u64 > MAX_FILE_BYTES {
            let problem = format!("larger than {MAX_FILE_BYTES} bytes");
            Err(Fault::new("file size", 0, problem))
        } else {
            parse_tzif(&bytes)
        };
        match parsed {
            Ok(zone) => Ok(Zone {
                name: name.into(),
                ..zone
            }),
            Err(fault) => Err(fault.into_error(name, Some(path))),
        }
    }

    /// Parses TZif bytes (v1, or v2+ whose 64-bit block and footer are used) for a zone
    /// called `name`. Pure; every malformed input is an error naming field and byte offset.
    pub fn from_tzif(name: &str, bytes: &[u8]) -> Result<Zone, TzError> {
        match parse_tzif(bytes) {
            Ok(zone) => Ok(Zone {
                name: name.into(),
                ..zone
            }),
            Err(fault) => Err(fault.into_error(name, None)),
        }
    }

    /// The zone's name as it was loaded.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Seconds east of UTC in effect at `unix`.
    pub fn offset_at(&self, unix: i64) -> i32 {
        let passed = self.transitions.partition_point(|&(at, _)| at <= unix);
        match (passed, &self.footer) {
            (n, Some(rule)) if n == self.transitions.len() => rule.offset_at(unix),
            (0, _) => self.initial,
            (n, _) => self.transitions[n - 1].1,
        }
    }

    /// The civil date at `unix` in this zone.
    pub fn local_date(&self, unix: i64) -> Date {
        let local = unix.saturating_add(i64::from(self.offset_at(unix)));
        Date::from_days_since_epoch(local.div_euclid(86_400))
    }
}

/// Refuses names that could leave the zoneinfo directory or are not zone names at all.
fn check_name(name: &str) -> Result<(), &'static str> {
    let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'+' | b'-' | b'/');
    if name.is_empty() || name.len() > 255 {
        Err("empty or longer than 255 bytes")
    } else if name.starts_with('/') || name.contains("..") {
        Err("looks like a path (leading \"/\" or \"..\")")
    } else if !name.bytes().all(allowed) {
        Err("contains characters other than A-Z a-z 0-9 _ + - /")
    } else {
        Ok(())
    }
}

/// A positioned TZif problem, before the zone name and file are known.
#[derive(Debug)]
struct Fault {
    field: &'static str,
    offset: usize,
    problem: String,
}

impl Fault {
    fn new(field: &'static str, offset: usize, problem: impl Into<String>) -> Fault {
        Fault {
            field,
            offset,
            problem: problem.into(),
        }
    }

    fn into_error(self, zone: &str, path: Option<PathBuf>) -> TzError {
        let Fault {
            field,
            offset,
            problem,
        } = self;
        TzError::Malformed {
            zone: zone.into(),
            path,
            field,
            offset,
            problem,
        }
    }
}

/// The counts of a TZif header (RFC 8536 §3.1).
struct Counts {
    isut: usize,
    isstd: usize,
    leap: usize,
    time: usize,
    types: usize,
    chars: usize,
}

impl Counts {
    /// Bytes of the data block that follows, with `time_size`-byte times (4 in v1, 8 after).
    /// Summed in `u64` (each count may be near 2^32); saturates where `usize` is smaller.
    fn block_len(&self, time_size: usize) -> usize {
        let n = |count: usize, size: usize| count as u64 * size as u64;
        let len = n(self.time, time_size + 1)
            + n(self.types, 6)
            + n(self.chars, 1)
            + n(self.leap, time_size + 4)
            + n(self.isstd + self.isut, 1);
        usize::try_from(len).unwrap_or(usize::MAX)
    }
}

/// A data block's content: type 0's offset, `(instant, offset)` transitions, end position.
type Block = (i32, Vec<(i64, i32)>, usize);

/// `len` bytes at `at`, or a fault naming `field`.
fn slice<'a>(
    bytes: &'a [u8],
    at: usize,
    len: usize,
    field: &'static str,
) -> Result<&'a [u8], Fault> {
    match at.checked_add(len).and_then(|end| bytes.get(at..end)) {
        Some(slice) => Ok(slice),
        None => {
            let left = bytes.len().saturating_sub(at);
            Err(Fault::new(
                field,
                at,
                format!("needs {len} bytes, only {left} left"),
            ))
        }
    }
}

/// Big-endian signed integer of 1–8 bytes.
fn be_int(b: &[u8]) -> i64 {
    let unsigned = b.iter().fold(0u64, |n, &x| n << 8 | u64::from(x));
    let shift = 64 - 8 * b.len() as u32;
    ((unsigned << shift) as i64) >> shift
}

/// Reads and checks the header at `at`: its version byte and counts.
fn header(bytes: &[u8], at: usize) -> Result<(u8, Counts), Fault> {
    let h = slice(bytes, at, HEADER_LEN, "header")?;
    if &h[..4] != b"TZif" {
        return Err(Fault::new("magic", at, "not \"TZif\""));
    }
    if !matches!(h[4], 0 | b'2'..=b'9') {
        let problem = format!("unknown version byte {:#04x}", h[4]);
        return Err(Fault::new("version", at + 4, problem));
    }
    let count = |i: usize| be_int(&h[20 + 4 * i..24 + 4 * i]) as u32 as usize;
    let c = Counts {
        isut: count(0),
        isstd: count(1),
        leap: count(2),
        time: count(3),
        types: count(4),
        chars: count(5),
    };
    // `i` is the count's position among the header's six, for the error offset.
    let bad = |i: usize, field, count: usize, allowed: String| {
        let problem = format!("{count}, allowed: {allowed}");
        Err(Fault::new(field, at + 20 + 4 * i, problem))
    };
    let per_type = |n| n == 0 || n == c.types;
    if !per_type(c.isut) {
        return bad(0, "isutcnt", c.isut, "0 or typecnt".into());
    }
    if !per_type(c.isstd) {
        return bad(1, "isstdcnt", c.isstd, "0 or typecnt".into());
    }
    if c.leap > MAX_TRANSITIONS {
        return bad(2, "leapcnt", c.leap, format!("at most {MAX_TRANSITIONS}"));
    }
    if c.time > MAX_TRANSITIONS {
        return bad(3, "timecnt", c.time, format!("at most {MAX_TRANSITIONS}"));
    }
    if !(1..=MAX_TYPES).contains(&c.types) {
        return bad(4, "typecnt", c.types, format!("1 to {MAX_TYPES}"));
    }
    Ok((h[4], c))
}

/// Parses a whole TZif file into a nameless zone.
fn parse_tzif(bytes: &[u8]) -> Result<Zone, Fault> {
    let (version, v1) = header(bytes, 0)?;
    let (initial, transitions, footer) = if version == 0 {
        let (initial, transitions, _) = data_block(bytes, HEADER_LEN, &v1, 4)?;
        (initial, transitions, None)
    } else {
        // v2+ repeats everything with 64-bit times; the v1 block is only skipped.
        let v1_block = slice(bytes, HEADER_LEN, v1.block_len(4), "data block")?;
        let v2_at = HEADER_LEN + v1_block.len();
        let (_, v2) = header(bytes, v2_at)?;
        let (initial, transitions, end) = data_block(bytes, v2_at + HEADER_LEN, &v2, 8)?;
        (initial, transitions, footer(bytes, end)?)
    };
    let name = String::new();
    Ok(Zone {
        name,
        initial,
        transitions,
        footer,
    })
}

/// Reads the data block at `at` described by `c`.
fn data_block(bytes: &[u8], at: usize, c: &Counts, time_size: usize) -> Result<Block, Fault> {
    let block = slice(bytes, at, c.block_len(time_size), "data block")?;
    let (times, rest) = block.split_at(c.time * time_size);
    let (indices, rest) = rest.split_at(c.time);
    let types_at = at + c.time * (time_size + 1);
    let mut offsets = Vec::with_capacity(c.types);
    for (i, t) in rest[..6 * c.types].chunks_exact(6).enumerate() {
        let offset = be_int(&t[..4]) as i32;
        if !(-MAX_OFFSET..=MAX_OFFSET).contains(&offset) {
            let problem = format!("{offset} s is beyond ±25:59:59");
            return Err(Fault::new("utoff", types_at + 6 * i, problem));
        }
        if t[4] > 1 || usize::from(t[5]) >= c.chars {
            let problem = "isdst not 0/1 or desigidx past charcnt";
            return Err(Fault::new("isdst/desigidx", types_at + 6 * i + 4, problem));
        }
        offsets.push(offset);
    }
    let mut transitions: Vec<(i64, i32)> = Vec::with_capacity(c.time);
    for (i, (time, &index)) in times.chunks_exact(time_size).zip(indices).enumerate() {
        let instant = be_int(time);
        if transitions.last().is_some_and(|&(last, _)| last >= instant) {
            let problem = "not after the previous one";
            return Err(Fault::new("transition time", at + i * time_size, problem));
        }
        let Some(&offset) = offsets.get(usize::from(index)) else {
            let problem = format!("type {index}, but typecnt is {}", c.types);
            let index_at = at + c.time * time_size + i;
            return Err(Fault::new("transition type index", index_at, problem));
        };
        transitions.push((instant, offset));
    }
    Ok((offsets[0], transitions, at + block.len()))
}

/// Reads the v2+ footer `\n<TZ string>\n` at `at`; an empty TZ string gives `None`.
fn footer(bytes: &[u8], at: usize) -> Result<Option<Rule>, Fault> {
    let tz_string = bytes
        .get(at..)
        .and_then(|rest| rest.strip_prefix(b"\n"))
        .and_then(|rest| Some(&rest[..rest.iter().position(|&b| b == b'\n')?]));
    let Some(tz_string) = tz_string else {
        return Err(Fault::new(
            "footer",
            at,
            "missing or not enclosed in newlines",
        ));
    };
    if tz_string.is_empty() {
        return Ok(None);
    }
    parse_rule(tz_string)
        .map(Some)
        .map_err(|(pos, problem)| Fault::new("footer", at + 1 + pos, problem))
}

/// A POSIX TZ rule (RFC 8536 §3.3): the standard offset, and DST if the zone has it.
#[derive(Debug, Clone)]
struct Rule {
    /// Standard time, seconds east of UTC.
    std: i32,
    dst: Option<Dst>,
}

/// Daylight saving time of a [`Rule`]: its offset and the yearly switches into and out of it.
#[derive(Debug, Clone)]
struct Dst {
    offset: i32,
    /// Given in standard local time.
    start: Switch,
    /// Given in daylight saving local time.
    end: Switch,
}

/// A yearly switch: a day, and the local time of day in seconds (−167 h to 167 h).
#[derive(Debug, Clone, Copy)]
struct Switch {
    day: YearDay,
    time: i32,
}

/// The day forms of a POSIX TZ rule.
#[derive(Debug, Clone, Copy)]
enum YearDay {
    /// `Jn`: day 1–365, February 29 never counted (J60 is always March 1).
    Julian(u32),
    /// `n`: zero-based day 0–365, February 29 counted.
    Ordinal(u32),
    /// `Mm.w.d`: weekday `d` (0 = Sunday) of week `w` (1–5, 5 = last) of month `m`.
    Month { month: u32, week: u32, weekday: u32 },
}

impl Rule {
    fn offset_at(&self, unix: i64) -> i32 {
        let Some(dst) = &self.dst else {
            return self.std;
        };
        let unix = unix.clamp(-RULE_LIMIT, RULE_LIMIT);
        let (year, _, _) = civil_from_days((unix + i64::from(self.std)).div_euclid(86_400));
        // The last switch at or before `unix` decides. Looking at the neighbouring years too
        // covers the southern hemisphere (DST spans New Year) and switch times beyond 24 h.
        // On a tie the later candidate wins, so "end at New Year = start at New Year"
        // (permanent DST, RFC 8536 §3.3.1) stays DST.
        let mut latest = (i64::MIN, self.std);
        for y in year - 1..=year + 1 {
            let start = (dst.start.instant(y, self.std), dst.offset);
            let end = (dst.end.instant(y, dst.offset), self.std);
            for (at, offset) in [start, end] {
                if at <= unix && at >= latest.0 {
                    latest = (at, offset);
                }
            }
        }
        latest.1
    }
}

impl Switch {
    /// The UTC instant of this switch in `year`, its time being local time at `offset`.
    fn instant(&self, year: i64, offset: i32) -> i64 {
        self.day.days(year) * 86_400 + i64::from(self.time) - i64::from(offset)
    }
}

impl YearDay {
    /// Days since 1970-01-01 of this day in `year`.
    fn days(self, year: i64) -> i64 {
        let jan1 = days_from_civil(year, 1, 1);
        match self {
            YearDay::Julian(n) => {
                let leap = days_from_civil(year, 3, 1) - jan1 == 60;
                jan1 + i64::from(n) - 1 + i64::from(leap && n >= 60)
            }
            YearDay::Ordinal(n) => jan1 + i64::from(n),
            YearDay::Month {
                month,
                week,
                weekday,
            } => {
                let first = days_from_civil(year, month, 1);
                let next_month = days_from_civil(year + i64::from(month / 12), month % 12 + 1, 1);
                let first_weekday = (first + 4).rem_euclid(7); // 1970-01-01 was a Thursday
                let nth = first
                    + (i64::from(weekday) - first_weekday).rem_euclid(7)
                    + 7 * i64::from(week - 1);
                // Week 5 means the last such weekday, which may be in week 4.
                if nth >= next_month {
                    nth - 7
                } else {
                    nth
                }
            }
        }
    }
}

/// An error in a TZ string: byte position and problem.
type RuleError = (usize, String);

/// Parses a POSIX TZ string as RFC 8536 §3.3 allows it in a footer.
fn parse_rule(s: &[u8]) -> Result<Rule, RuleError> {
    let mut c = Cursor { s, pos: 0 };
    c.zone_abbreviation()?;
    let std = -c.hms(24)?; // POSIX offsets count west of UTC
    if c.peek().is_none() {
        return Ok(Rule { std, dst: None });
    }
    c.zone_abbreviation()?;
    let offset = if c.peek() == Some(b',') {
        std + 3600
    } else {
        -c.hms(24)?
    };
    c.expect(b',')?; // zic always writes the rule; POSIX leaves the default to the system
    let start = c.switch()?;
    c.expect(b',')?;
    let end = c.switch()?;
    if c.peek().is_some() {
        return c.fail("unexpected text after the rule");
    }
    Ok(Rule {
        std,
        dst: Some(Dst { offset, start, end }),
    })
}

/// A position in a TZ string being parsed.
struct Cursor<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn eat(&mut self, b: u8) -> bool {
        let found = self.peek() == Some(b);
        self.pos += usize::from(found);
        found
    }

    fn fail<T>(&self, problem: &str) -> Result<T, RuleError> {
        Err((self.pos, problem.to_string()))
    }

    fn expect(&mut self, b: u8) -> Result<(), RuleError> {
        if self.eat(b) {
            Ok(())
        } else {
            self.fail(&format!("expected '{}'", char::from(b)))
        }
    }

    /// Skips the bytes matching `keep`, returning how many there were.
    fn skip(&mut self, keep: impl Fn(u8) -> bool) -> usize {
        let start = self.pos;
        while self.peek().is_some_and(&keep) {
            self.pos += 1;
        }
        self.pos - start
    }

    /// `ABC` (letters) or `<+0330>` (letters, digits, signs), at least three characters.
    fn zone_abbreviation(&mut self) -> Result<(), RuleError> {
        let quoted = self.eat(b'<');
        let len = if quoted {
            self.skip(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'-')
        } else {
            self.skip(|b| b.is_ascii_alphabetic())
        };
        if len < 3 {
            return self.fail("expected a zone abbreviation such as CET or <+0330>");
        }
        if quoted {
            self.expect(b'>')?;
        }
        Ok(())
    }

    /// A decimal number within `min..=max`, named `what` in errors.
    fn number(&mut self, what: &str, min: u32, max: u32) -> Result<u32, RuleError> {
        let start = self.pos;
        let digits = self.skip(|b| b.is_ascii_digit());
        let value = self.s[start..self.pos].iter().fold(0u32, |n, &b| {
            n.saturating_mul(10).saturating_add(u32::from(b - b'0'))
        });
        if digits == 0 || !(min..=max).contains(&value) {
            self.pos = start;
            return self.fail(&format!("expected {what} {min}–{max}"));
        }
        Ok(value)
    }

    /// `[+-]hh[:mm[:ss]]` in seconds, hours at most `max_hours`.
    fn hms(&mut self, max_hours: u32) -> Result<i32, RuleError> {
        let sign = if self.eat(b'-') { -1 } else { 1 };
        if sign > 0 {
            self.eat(b'+');
        }
        let mut seconds = self.number("hours", 0, max_hours)? * 3600;
        for (unit, what) in [(60, "minutes"), (1, "seconds")] {
            if !self.eat(b':') {
                break;
            }
            seconds += unit * self.number(what, 0, 59)?;
        }
        Ok(sign * seconds as i32)
    }

    /// `Jn`, `n` or `Mm.w.d`, optionally followed by `/time` (default 02:00).
    fn switch(&mut self) -> Result<Switch, RuleError> {
        let day = if self.eat(b'J') {
            YearDay::Julian(self.number("Julian day", 1, 365)?)
        } else if self.eat(b'M') {
            let month = self.number("month", 1, 12)?;
            self.expect(b'.')?;
            let week = self.number("week", 1, 5)?;
            self.expect(b'.')?;
            let weekday = self.number("weekday", 0, 6)?;
            YearDay::Month {
                month,
                week,
                weekday,
            }
        } else {
            YearDay::Ordinal(self.number("day of year", 0, 365)?)
        };
        let time = if self.eat(b'/') { self.hms(167)? } else { 7200 };
        Ok(Switch { day, time })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::format_rfc3339;

    const HOUR: i32 = 3600;

    /// Builds a TZif file. Version 0 writes only a v1 block; otherwise the v1 block holds the
    /// transitions that fit 32 bits, the v2 block all of them, and the footer follows.
    fn tzif(
        version: u8,
        transitions: &[(i64, u8)],
        types: &[(i32, bool)],
        footer: &str,
    ) -> Vec<u8> {
        let fits: Vec<_> = transitions
            .iter()
            .copied()
            .filter(|&(t, _)| i32::try_from(t).is_ok())
            .collect();
        let mut out = Vec::new();
        push_block(&mut out, version, &fits, types, 4);
        if version != 0 {
            push_block(&mut out, version, transitions, types, 8);
            out.extend(format!("\n{footer}\n").bytes());
        }
        out
    }

    /// One header + data block; every type uses the abbreviation "ZZZ".
    fn push_block(
        out: &mut Vec<u8>,
        version: u8,
        transitions: &[(i64, u8)],
        types: &[(i32, bool)],
        time_size: usize,
    ) {
        out.extend(b"TZif");
        out.push(version);
        out.extend([0; 15]);
        for count in [0, 0, 0, transitions.len(), types.len(), 4] {
            out.extend((count as u32).to_be_bytes());
        }
        for &(t, _) in transitions {
            out.extend(&t.to_be_bytes()[8 - time_size..]);
        }
        out.extend(transitions.iter().map(|&(_, index)| index));
        for &(offset, dst) in types {
            out.extend(offset.to_be_bytes());
            out.extend([u8::from(dst), 0]);
        }
        out.extend(b"ZZZ\0");
    }

    /// A "slim" zone: no transitions, everything from the footer.
    fn footer_zone(footer: &str) -> Zone {
        Zone::from_tzif(footer, &tzif(b'2', &[], &[(0, false)], footer)).expect(footer)
    }

    /// Field and byte offset of a `Malformed` error.
    fn fault_of(bytes: &[u8]) -> (&'static str, usize) {
        match Zone::from_tzif("Test/Bad", bytes) {
            Err(TzError::Malformed { field, offset, .. }) => (field, offset),
            other => panic!("expected a Malformed error, got {other:?}"),
        }
    }

    #[test]
    fn v1_transitions_and_type_0_before_them() {
        let types = [(3208, false), (HOUR, false), (2 * HOUR, true)];
        let bytes = tzif(0, &[(-100, 1), (1000, 2), (2000, 1)], &types, "");
        let zone = Zone::from_tzif("Test/V1", &bytes).unwrap();
        #[rustfmt::skip]
        let expected = [(i64::MIN, 3208), (-101, 3208), (-100, HOUR), (999, HOUR),
            (1000, 2 * HOUR), (2000, HOUR), (i64::MAX, HOUR)];
        for (at, offset) in expected {
            assert_eq!(zone.offset_at(at), offset, "at {at}");
        }
        assert_eq!(zone.name(), "Test/V1");
    }

    #[test]
    fn v2_uses_the_64_bit_block_and_the_footer_after_the_last_transition() {
        let after_2038 = 2_300_000_000; // only the v2 block can hold it
        let types = [(0, false), (HOUR, false), (-5 * HOUR, false)];
        let bytes = tzif(b'2', &[(0, 1), (after_2038, 2)], &types, "");
        let zone = Zone::from_tzif("Test/V2", &bytes).unwrap();
        let around = (zone.offset_at(after_2038 - 1), zone.offset_at(after_2038));
        assert_eq!(around, (HOUR, -5 * HOUR));

        let july_2026 = 1_782_864_000;
        let types = [(0, false), (HOUR, false)];
        let bytes = tzif(b'3', &[(0, 1)], &types, "CET-1CEST,M3.5.0,M10.5.0/3");
        let with_rule = Zone::from_tzif("Test/V3", &bytes).unwrap();
        assert_eq!((with_rule.offset_at(-1), with_rule.offset_at(0)), (0, HOUR));
        assert_eq!(
            with_rule.offset_at(july_2026),
            2 * HOUR,
            "summer time only the footer knows"
        );
        let bytes = tzif(b'4', &[(0, 1)], &types, "");
        let without_rule = Zone::from_tzif("Test/V4", &bytes).unwrap();
        assert_eq!(
            without_rule.offset_at(july_2026),
            HOUR,
            "empty footer keeps the last type"
        );
    }

    #[test]
    fn malformed_files_are_positioned_errors() {
        let good = tzif(b'2', &[(0, 1)], &[(0, false), (HOUR, false)], "CET-1");
        assert!(Zone::from_tzif("Test/Good", &good).is_ok());
        let v2_at = HEADER_LEN + 5 + 12 + 4; // v1: one 4-byte time + index, two types, "ZZZ\0"
        let index_at = v2_at + HEADER_LEN + 8;
        let types_at = index_at + 1;
        let footer_at = types_at + 12 + 4;
        let patched = |at: usize, patch: &[u8]| {
            let mut bytes = good.clone();
            bytes[at..at + patch.len()].copy_from_slice(patch);
            bytes
        };
        let unsorted = tzif(b'2', &[(5, 0), (5, 0)], &[(0, false)], "");
        let unsorted_at = HEADER_LEN + 10 + 6 + 4 + HEADER_LEN + 8; // second 64-bit time
        #[rustfmt::skip]
        let cases = [
            (good[..HEADER_LEN - 1].to_vec(), ("header", 0)),
            (patched(0, b"TZiF"), ("magic", 0)),
            (patched(4, b"1"), ("version", 4)),
            (patched(20, &[0, 0, 0, 1]), ("isutcnt", 20)),
            (patched(32, &10_001u32.to_be_bytes()), ("timecnt", 32)),
            (patched(32, &9_999u32.to_be_bytes()), ("data block", HEADER_LEN)),
            (patched(36, &[0; 4]), ("typecnt", 36)),
            (patched(v2_at + 40, &[0, 1, 0, 0]), ("data block", v2_at + HEADER_LEN)),
            (patched(index_at, &[2]), ("transition type index", index_at)),
            (patched(types_at + 6, &(26 * HOUR).to_be_bytes()), ("utoff", types_at + 6)),
            (patched(types_at + 5, &[4]), ("isdst/desigidx", types_at + 4)),
            (good[..footer_at].to_vec(), ("footer", footer_at)),
            (good[..good.len() - 1].to_vec(), ("footer", footer_at)),
            (patched(footer_at + 5, b"x"), ("footer", footer_at + 5)),
            (unsorted, ("transition time", unsorted_at)),
        ];
        for (bytes, expected) in cases {
            assert_eq!(fault_of(&bytes), expected);
        }
        let message = Zone::from_tzif("Test/Bad", &good[..10])
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("Test/Bad") && message.contains("header at byte 0"),
            "{message}"
        );
    }

    #[test]
    fn damaged_files_never_panic() {
        let types = [(0, false), (HOUR, false), (2 * HOUR, true)];
        let good = tzif(
            b'2',
            &[(-5, 1), (0, 2), (9, 1)],
            &types,
            "CET-1CEST,M3.5.0,M10.5.0/3",
        );
        for len in 0..good.len() {
            assert!(
                Zone::from_tzif("Test/Cut", &good[..len]).is_err(),
                "cut at {len}"
            );
        }
        for at in 0..good.len() {
            for bits in [0x01, 0x80, 0xff] {
                let mut bytes = good.clone();
                bytes[at] ^= bits;
                if let Ok(zone) = Zone::from_tzif("Test/Flip", &bytes) {
                    zone.offset_at(i64::MIN);
                    zone.offset_at(i64::MAX);
                    zone.local_date(1_800_000_000);
                }
            }
        }
    }

    #[test]
    fn bad_tz_strings_are_refused() {
        #[rustfmt::skip]
        let bad = [
            "", "CE-1", "CET", "CET-25", "CET-1:60", "<+03-3", "CET-99999999999", "CET-1CEST",
            "CET-1CEST,M3.5.0", "CET-1CEST,M13.5.0,M10.5.0/3", "CET-1CEST,M3.6.0,M10.5.0",
            "CET-1CEST,M3.5.7,M10.5.0", "CET-1CEST,M3.5,M10.5.0", "CET-1CEST,J0,J365",
            "CET-1CEST,366,0", "CET-1CEST,M3.5.0/168,M10.5.0", "CET-1CEST,M3.5.0,M10.5.0/3x",
        ];
        for text in bad {
            assert!(
                parse_rule(text.as_bytes()).is_err(),
                "{text:?} was accepted"
            );
        }
    }

    /// `(switch instant, offset just before, offset from then on)`.
    type Switches = &'static [(i64, i32, i32)];

    /// `(footer, switches)`. Berlin by
    /// hand (last Sundays of March/October, 01:00Z); the others from Python's zoneinfo and
    /// glibc, which agree on them unless noted.
    #[rustfmt::skip]
    const SWITCHES: &[(&str, Switches)] = &[
        ("CET-1CEST,M3.5.0,M10.5.0/3", &[
            (1_774_746_000, 3600, 7200), (1_792_890_000, 7200, 3600), // 2026-03-29, 2026-10-25
            (1_995_498_000, 3600, 7200), (2_014_246_800, 7200, 3600), // 2033-03-27, 2033-10-30
            (2_216_250_000, 3600, 7200), (2_234_998_800, 7200, 3600), // 2040-03-25, 2040-10-28
        ]),
        ("EST5EDT,M3.2.0,M11.1.0", &[
            (1_772_953_200, -18000, -14400), (1_793_512_800, -14400, -18000), // 2026-03-08, 11-01
            (1_994_310_000, -18000, -14400), (2_014_869_600, -14400, -18000), // 2033-03-13, 11-06
            (2_215_062_000, -18000, -14400), (2_235_621_600, -14400, -18000), // 2040-03-11, 11-04
        ]),
        ("AEST-10AEDT,M10.1.0,M4.1.0/3", &[ // UTC dates: the day before, local
            (1_775_318_400, 39600, 36000), (1_791_043_200, 36000, 39600), // 2026-04-04, 10-03
            (1_996_070_400, 39600, 36000), (2_011_795_200, 36000, 39600), // 2033-04-02, 10-01
            (2_216_822_400, 39600, 36000), (2_233_152_000, 36000, 39600), // 2040-03-31, 10-06
        ]),
        ("IST-5:30", &[(1_767_225_600, 19800, 19800), (2_224_800_000, 19800, 19800)]),
        ("<+0330>-3:30", &[(1_782_864_000, 12600, 12600)]),
        // Jerusalem: "Friday before the last Sunday" written as 4th Thursday at 26:00.
        ("IST-2IDT,M3.4.4/26,M10.5.0", &[(1_774_569_600, 7200, 10800), (1_792_882_800, 10800, 7200)]),
        // Nuuk: negative switch time.
        ("<-02>2<-01>,M3.5.0/-1,M10.5.0/0", &[(1_774_746_000, -7200, -3600), (1_792_890_000, -3600, -7200)]),
        // Dublin: "DST" is the winter offset, lower than standard.
        ("IST-1GMT0,M10.5.0,M3.5.0/1", &[(1_774_746_000, 0, 3600), (1_792_890_000, 3600, 0)]),
        // J60 is March 1 and J300 October 27 in 2026 and in leap year 2028.
        ("XXX3YYY,J60/2,J300/2", &[
            (1_772_341_200, -10800, -7200), (1_793_073_600, -7200, -10800),
            (1_835_499_600, -10800, -7200), (1_856_232_000, -7200, -10800),
        ]),
        // J59 is February 28 even in leap year 2028 (glibc; Python's zoneinfo says Feb 29).
        ("XXX3YYY,J59/2,J300/2", &[(1_835_326_800, -10800, -7200)]),
        // Zero-based day 59 is March 1, or February 29 in a leap year (glibc; Python's
        // zoneinfo is a day early for this form).
        ("XXX3YYY,59/2,300/2", &[
            (1_772_341_200, -10800, -7200), (1_793_160_000, -7200, -10800),
            (1_835_413_200, -10800, -7200), (1_856_232_000, -7200, -10800),
        ]),
        // Permanent DST (RFC 8536 §3.3.1), also across New Year 2027 (Python; glibc shows
        // an hour of standard time there).
        ("EST5EDT,0/0,J365/25", &[(1_798_779_600, -14400, -14400), (1_814_400_000, -14400, -14400)]),
    ];

    #[test]
    fn footer_rules_match_known_switches() {
        for (footer, switches) in SWITCHES {
            let zone = footer_zone(footer);
            for &(at, before, after) in switches.iter() {
                let got = (zone.offset_at(at - 1), zone.offset_at(at));
                assert_eq!(
                    got,
                    (before, after),
                    "{footer} around {}",
                    format_rfc3339(at)
                );
            }
        }
    }

    #[test]
    fn system_zones_match_python_zoneinfo() {
        let dir = Path::new(DEFAULT_TZDIR);
        if !dir.is_dir() {
            eprintln!("SKIPPED: {DEFAULT_TZDIR} is absent (tzdata not installed)");
            return;
        }
        // What Python's zoneinfo gives for these instants (noon UTC on the dates shown).
        #[rustfmt::skip]
        let expected = [
            ("Europe/Berlin", 43_200, 3600),                 // 1970-01-01
            ("Europe/Berlin", 1_000_036_800, 7200),          // 2001-09-09
            ("Europe/Berlin", 2_115_633_600, 3600),          // 2037-01-15
            ("America/New_York", 100_008_000, -18000),       // 1973-03-03
            ("America/New_York", 2_129_976_000, -14400),     // 2037-06-30
            ("Australia/Sydney", 1_000_036_800, 36000),      // 2001-09-09
            ("Australia/Sydney", 2_115_633_600, 39600),      // 2037-01-15
            ("Asia/Kolkata", -838_987_200, 23400),           // 1943-06-01, war time
            ("Asia/Kolkata", 2_129_976_000, 19800),          // 2037-06-30
            ("Etc/GMT+5", 1_500_033_600, -18000),            // 2017-07-14
        ];
        for (name, at, offset) in expected {
            let zone = Zone::load_in(dir, name).unwrap();
            assert_eq!(
                zone.offset_at(at),
                offset,
                "{name} at {}",
                format_rfc3339(at)
            );
        }
    }

    #[test]
    fn load_refuses_unsafe_names_and_reports_missing_files() {
        let dir = Path::new("/nonexistent-zoneinfo");
        #[rustfmt::skip]
        let unsafe_names = ["", "/etc/passwd", "../etc/passwd", "Europe/../../etc",
            "Europe/Berlin\n", "Europe\\Berlin", "a b", "Europe/Berlin.tmp"];
        for name in unsafe_names {
            let refused = Zone::load_in(dir, name);
            assert!(matches!(refused, Err(TzError::BadName { .. })), "{name:?}");
        }
        let missing = Zone::load_in(dir, "Europe/Berlin").unwrap_err();
        assert!(matches!(missing, TzError::Io { .. }));
        assert!(
            missing
                .to_string()
                .contains("/nonexistent-zoneinfo/Europe/Berlin"),
            "{missing}"
        );
        let utc = Zone::load_in(dir, "Etc/UTC").unwrap();
        assert_eq!((utc.name(), utc.offset_at(1_800_000_000)), ("Etc/UTC", 0));
        assert!(Zone::load("UTC").is_ok());
    }

    #[test]
    fn load_reads_from_the_directory_and_names_the_file_in_errors() {
        let dir = std::env::temp_dir().join(format!("cpb-tz-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("Test")).unwrap();
        let fixed = tzif(b'2', &[], &[(HOUR, false)], "<+01>-1");
        std::fs::write(dir.join("Test/Fixed"), fixed).unwrap();
        std::fs::write(dir.join("Test/Broken"), b"TZif2").unwrap();
        let zone = Zone::load_in(&dir, "Test/Fixed").unwrap();
        assert_eq!((zone.name(), zone.offset_at(0)), ("Test/Fixed", HOUR));
        let broken = Zone::load_in(&dir, "Test/Broken").unwrap_err().to_string();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(
            broken.contains("/Test/Broken") && broken.contains("header at byte 0"),
            "{broken}"
        );
    }

    #[test]
    fn local_date_around_midnight() {
        let date = |y, m, d| Date::new(y, m, d).unwrap();
        let berlin = footer_zone("CET-1CEST,M3.5.0,M10.5.0/3");
        let new_york = footer_zone("EST5EDT,M3.2.0,M11.1.0");
        #[rustfmt::skip]
        let cases = [
            (&berlin, 1_782_943_199, date(2026, 7, 1)),   // 2026-07-01T21:59:59Z = 23:59:59 CEST
            (&berlin, 1_782_943_200, date(2026, 7, 2)),
            (&berlin, 1_798_757_999, date(2026, 12, 31)), // 2026-12-31T22:59:59Z = 23:59:59 CET
            (&berlin, 1_798_758_000, date(2027, 1, 1)),
            (&new_york, 1_773_028_799, date(2026, 3, 8)), // 2026-03-09T03:59:59Z = 23:59:59 EDT
            (&new_york, 1_773_028_800, date(2026, 3, 9)),
        ];
        for (zone, at, expected) in cases {
            assert_eq!(
                zone.local_date(at),
                expected,
                "{} at {}",
                zone.name(),
                format_rfc3339(at)
            );
        }
        assert_eq!(Zone::utc().local_date(-1), date(1969, 12, 31));
        assert_eq!(Zone::utc().local_date(i64::MAX).year, i32::MAX);
    }
}
