//! The state journal: an append-only JSON-lines file that remembers what we synced.
//!
//! `$STATE_DIR/state.jsonl` holds one JSON object per line, tagged by `"t"`:
//!
//! ```text
//! {"t":"header","format":1,"app":"calplanebot"}
//! {"t":"item","uid":…,"work_item":…,"project":…,"href":…,"etag":…,"plane_updated_at":…,"sequence":…,"shadow":{…}}
//! {"t":"gone","uid":…}
//! {"t":"cal","project":…,"href":…,"ctag":…,"sync_token":…}
//! {"t":"project","project":…,"watermark":…,"cycles_since_full":…}
//! ```
//!
//! Replaying the file in order gives the [`State`]: the last record per key wins and `gone`
//! removes an item. Every change is written with an `O_APPEND` write(2) of whole lines
//! before the call that records it returns (no buffering in the process; a batch of
//! write-ahead records or removals shares one write per [`MAX_WRITE_BYTES`]), so a killed
//! process loses nothing it recorded and can at worst leave a torn *last* line, which
//! replay ignores (with a warning) and [`Journal::open`] cuts off before anything new is
//! appended. A damaged line anywhere else means the file was edited or the disk lied, and
//! we refuse to guess: that is [`JournalError::Corrupt`] with the line number — except a
//! line holding NUL bytes, which is what a power cut leaves where the file grew but its
//! data never reached the disk (see "Group commit"): such lines are skipped with a warning
//! and compacted away.
//!
//! # Group commit
//!
//! A record is made durable (`fdatasync`) in groups, not one by one: at most
//! [`GROUP_COMMIT_RECORDS`] records or [`GROUP_COMMIT_INTERVAL`] after the oldest of them,
//! at [`Journal::commit`] (the end of each cycle and of each webhook's sync) and when the
//! journal is dropped (the end of `--once`, `run` after SIGTERM). A power cut or kernel
//! crash (not a killed process: the kernel has the data) can so forget the last records.
//! That is safe because every record that can be forgotten leaves a journal a killed
//! process could also have left, which the next cycle repairs:
//!
//! - a create's confirmation (its ETag): the write-ahead record before the PUT is durable,
//!   so the next cycle finds the object with an ETag the journal lacks and merges against
//!   the write-ahead's shadow (a user's edit meanwhile is kept, not overwritten);
//! - an update's or a PATCH's confirmation: the write-ahead record (`sent_to_calendar`,
//!   `sent_to_plane`) is durable, so our own write is recognised as ours;
//! - the record of a work item made from a calendar object: the next cycle POSTs again
//!   and Plane answers 409 with the existing item (`external_id`);
//! - an object adopted (no write-ahead): it is adopted again — deterministic UIDs;
//! - a calendar version (ctag, sync-token) or a project's watermark: the next cycle lists
//!   more than it needs. These records are written only after every item record before
//!   them is durable ([`Journal::put_calendar`], [`Journal::put_project`]), so a version
//!   or watermark can never outlive a record of the writes it covers.
//!
//! Where forgetting is *not* safe the journal syncs before going on:
//!
//! - a write-ahead record, before the write it announces ([`Journal::commit_item`]; the
//!   creates of a plan are announced together with one fsync by
//!   [`Journal::put_items_ahead`]): forgotten after the write landed, an edit made in
//!   the calendar or in Plane before the next cycle could be taken for a conflict or
//!   overwritten by an adoption;
//! - a `gone` record (after a DELETE): forgotten, the next cycle would take the missing
//!   object for one the user deleted and, with `CALENDAR_DELETE=clear-date`, clear the
//!   work item's target date in Plane;
//! - a new calendar mapping (after MKCALENDAR, or a calendar found by name): cheap (once
//!   per project), and spares the next cycle a search by display name;
//! - what a killed predecessor left in the page cache, once at [`Journal::open`]: the
//!   rules above order this process's records only;
//! - compaction (its own fsyncs of the new file and the directory), a new journal's header
//!   and a repaired torn tail.
//!
//! Losing the journal is safe (deterministic UIDs let a fresh run adopt every calendar
//! object), but it throws away the shadows the two-way merge needs, so we keep it durable:
//! compaction writes a temporary file, fsyncs it, renames it over the journal and fsyncs
//! the directory.
//!
//! Only one process may write: `state.lock` is held with an exclusive `File::try_lock` for
//! the lifetime of a [`Journal`]. Status commands read with [`Journal::open_read_only`],
//! which takes no lock, and `--dry-run` with [`Journal::open_dry_run`], which takes no lock
//! and writes nothing.
//!
//! The files are created with mode 0600 ([`FILE_MODE`]), and an existing journal or lock
//! file readable by others is tightened to it when opened for writing: the journal holds
//! work item names and calendar paths.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use miniserde::{json, Deserialize, Serialize};

/// The journal format we write and the newest one we understand.
const FORMAT: u64 = 1;
/// The journal file inside the state directory.
const JOURNAL_FILE: &str = "state.jsonl";
/// Compaction writes here first, so a crash mid-compaction leaves the journal untouched.
const TMP_FILE: &str = "state.jsonl.tmp";
/// The lock file; its content is irrelevant, only the OS lock on it matters.
const LOCK_FILE: &str = "state.lock";
/// Mode of the journal, its compaction copy and the lock file: owner only.
pub const FILE_MODE: u32 = 0o600;
/// Below this many lines compaction is not worth an fsync'd rewrite.
const COMPACT_FLOOR: usize = 64;
/// Group commit: records written since the last fsync that make the next append sync.
/// About 128 objects (a create or update writes two records): forgetting them in a power
/// cut costs the next cycle one multiget to read them again (see the module docs), and a
/// sync then writes ~30 pages of a few hundred bytes per record at once instead of
/// rewriting the same 4 KiB page once per record — flash wears per page write.
pub const GROUP_COMMIT_RECORDS: usize = 256;
/// Group commit: the oldest record waiting for its fsync makes the next append sync after
/// this long. On a slow server (Radicale: ~0.1 s per PUT, 2 records) this, not the count,
/// bounds a sync's group: ~50 records, one flash write per 5 s instead of 20 per second.
/// It is also the age ext4 gives its own metadata commits by default.
pub const GROUP_COMMIT_INTERVAL: Duration = Duration::from_secs(5);
/// Most bytes of records gathered for one write(2) ([`Journal::put_items_ahead`],
/// [`Journal::remove_items`]): a batch of 100 write-ahead records (~60 KB) is one write,
/// and a longer list costs no more memory than this.
const MAX_WRITE_BYTES: usize = 64 * 1024;

/// What we last synced for one work item: the values of the fields we sync both ways, so a
/// later three-way merge can tell which side changed.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Shadow {
    /// Work item name (the SUMMARY without our `[ID-n] ` prefix).
    pub name: String,
    /// Plane `start_date`, `YYYY-MM-DD`.
    pub start_date: Option<String>,
    /// Plane `target_date`, `YYYY-MM-DD`.
    pub target_date: Option<String>,
    /// Plane state group (`backlog`, `unstarted`, `started`, `completed`, `cancelled`).
    pub state_group: String,
    /// SHA-256 of the calendar fields we rendered, to skip writes that change nothing.
    pub content_hash: ContentHash,
}

/// The SHA-256 of an object's rendered calendar fields (`sync::model::content_hash`), held
/// as its 32 bytes: at 10,000 items the 64-digit hex text the journal writes would cost
/// ~1 MB of memory more. `None` when not known — the next cycle then renders the item into
/// its object (an item made from a calendar object is journaled so).
///
/// The journal writes it as 64 lowercase hex digits, or `""` when not known. Any other
/// text (a hand-edited line) reads as not known, which costs at most one rewrite.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct ContentHash(Option<[u8; 32]>);

impl ContentHash {
    /// No hash known: differs from every rendered one.
    pub const UNKNOWN: ContentHash = ContentHash(None);

    /// The hash whose digest is `bytes`.
    pub fn from_digest(bytes: [u8; 32]) -> ContentHash {
        ContentHash(Some(bytes))
    }

    /// Reads the journal's form: 64 hex digits (either case); anything else is
    /// [`ContentHash::UNKNOWN`].
    pub fn from_hex(text: &str) -> ContentHash {
        let digits = text.as_bytes();
        if digits.len() != 64 {
            return ContentHash::UNKNOWN;
        }
        let mut bytes = [0u8; 32];
        for (byte, pair) in bytes.iter_mut().zip(digits.chunks_exact(2)) {
            match (hex_digit(pair[0]), hex_digit(pair[1])) {
                (Some(hi), Some(lo)) => *byte = hi << 4 | lo,
                _ => return ContentHash::UNKNOWN,
            }
        }
        ContentHash(Some(bytes))
    }

    /// The journal's form: 64 lowercase hex digits, `""` when not known.
    pub fn to_hex(&self) -> String {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut out = String::with_capacity(64);
        for b in self.0.iter().flatten() {
            out.push(char::from(DIGITS[usize::from(b >> 4)]));
            out.push(char::from(DIGITS[usize::from(b & 0xf)]));
        }
        out
    }
}

/// The value of one ASCII hex digit.
fn hex_digit(c: u8) -> Option<u8> {
    char::from(c)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

impl fmt::Debug for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(_) => write!(f, "ContentHash({})", self.to_hex()),
            None => f.write_str("ContentHash::UNKNOWN"),
        }
    }
}

/// Tests' hashes: 64 hex digits are that hash, `""` is [`ContentHash::UNKNOWN`], and any
/// other text is a label standing for a rendered hash (distinct labels, distinct hashes).
#[cfg(test)]
impl From<&str> for ContentHash {
    fn from(text: &str) -> ContentHash {
        use sha2::{Digest, Sha256};
        let hash = ContentHash::from_hex(text);
        if hash != ContentHash::UNKNOWN || text.is_empty() {
            return hash;
        }
        ContentHash::from_digest(Sha256::digest(text.as_bytes()).into())
    }
}

impl Serialize for ContentHash {
    fn begin(&self) -> miniserde::ser::Fragment<'_> {
        miniserde::ser::Fragment::Str(self.to_hex().into())
    }
}

impl Deserialize for ContentHash {
    fn begin(out: &mut Option<Self>) -> &mut dyn miniserde::de::Visitor {
        miniserde::make_place!(Place);
        impl miniserde::de::Visitor for Place<ContentHash> {
            fn string(&mut self, s: &str) -> miniserde::Result<()> {
                self.out = Some(ContentHash::from_hex(s));
                Ok(())
            }
        }
        Place::new(out)
    }
}

/// One synced (work item, calendar object) pair, keyed by `uid`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemRecord {
    /// iCalendar UID, `plane-issue-{work item id}@calplanebot` for items we created.
    pub uid: String,
    /// Plane work item id; empty while a work item is being made from this object (see
    /// [`ItemRecord::item_pending`]).
    pub work_item: String,
    /// Plane project id, one copy shared by the records of a project.
    pub project: ProjectId,
    /// Href of the calendar object on the CalDAV server.
    pub href: String,
    /// ETag of the calendar object after our last write or read.
    pub etag: Option<String>,
    /// Plane `updated_at` of the work item when we last synced it.
    pub plane_updated_at: String,
    /// iCalendar SEQUENCE we last wrote.
    pub sequence: u32,
    /// The field values we last synced.
    pub shadow: Shadow,
    /// Set just before a PATCH: the values it sends. After a crash, a Plane field equal to
    /// this is our own write, not a user's edit. Boxed, as it is rarely set: inline, the
    /// two would triple a record's size.
    pub sent_to_plane: Option<Box<Shadow>>,
    /// Set just before a calendar PUT: the values it writes, likewise.
    pub sent_to_calendar: Option<Box<Shadow>>,
}

impl ItemRecord {
    /// Whether this is the write-ahead record of a work item being made from this calendar
    /// object (CREATE_FROM_CALENDAR): written before the POST, so a crash before its answer
    /// is recorded still knows the object was being turned into an item. The next cycle
    /// finds the item by its external id (the object's UID) and completes the record, or
    /// finds no item and POSTs again.
    pub fn item_pending(&self) -> bool {
        self.work_item.is_empty()
    }
}

/// A Plane project id in an [`ItemRecord`]. Every record of a project shares one copy
/// (the journal hands out the copy it holds, see [`ProjectIds`]): at 10,000 items, a
/// string each would cost ~0.5 MB. Compares and prints as the id.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProjectId(Arc<str>);

impl ProjectId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for ProjectId {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl From<&str> for ProjectId {
    fn from(id: &str) -> ProjectId {
        ProjectId(id.into())
    }
}

impl From<String> for ProjectId {
    fn from(id: String) -> ProjectId {
        ProjectId(id.into())
    }
}

impl PartialEq<str> for ProjectId {
    fn eq(&self, other: &str) -> bool {
        *self.0 == *other
    }
}

impl PartialEq<&str> for ProjectId {
    fn eq(&self, other: &&str) -> bool {
        *self.0 == **other
    }
}

impl PartialEq<String> for ProjectId {
    fn eq(&self, other: &String) -> bool {
        *self.0 == **other
    }
}

impl fmt::Debug for ProjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for ProjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for ProjectId {
    fn begin(&self) -> miniserde::ser::Fragment<'_> {
        miniserde::ser::Fragment::Str(self.as_str().into())
    }
}

impl Deserialize for ProjectId {
    fn begin(out: &mut Option<Self>) -> &mut dyn miniserde::de::Visitor {
        miniserde::make_place!(Place);
        impl miniserde::de::Visitor for Place<ProjectId> {
            fn string(&mut self, s: &str) -> miniserde::Result<()> {
                self.out = Some(ProjectId::from(s));
                Ok(())
            }
        }
        Place::new(out)
    }
}

/// The project ids the journal has handed out, so that a record's id can be swapped for
/// the copy the other records share. A workspace has a handful of projects: a list.
#[derive(Debug, Default)]
struct ProjectIds(Vec<ProjectId>);

impl ProjectIds {
    /// The shared copy of `id`, which becomes the shared copy if it is new.
    fn share(&mut self, id: ProjectId) -> ProjectId {
        if let Some(known) = self.0.iter().find(|k| **k == id) {
            return known.clone();
        }
        self.0.push(id.clone());
        id
    }
}

/// A calendar we map a project to, keyed by `project`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CalendarRecord {
    /// Plane project id.
    pub project: String,
    /// Href of the calendar collection.
    pub href: String,
    /// Last seen `getctag`, to skip listing an unchanged calendar.
    pub ctag: Option<String>,
    /// Last WebDAV sync token, for `sync-collection`.
    pub sync_token: Option<String>,
}

/// Per-project polling watermark (Plane `updated_at` of the newest item seen), keyed by
/// `project`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectRecord {
    /// Plane project id.
    pub project: String,
    /// `updated_at` of the newest work item seen; incremental polls stop there.
    pub watermark: Option<String>,
    /// Incremental cycles since the last full reconcile.
    pub cycles_since_full: u32,
    /// When the last full listing ran (Unix seconds).
    pub last_full: Option<i64>,
    /// The project's identifier (`WEB`), so incremental cycles need not list projects.
    pub identifier: Option<String>,
    /// The project's name.
    pub name: Option<String>,
    /// Which of the project's cycles and modules the last clean cycle knew in full
    /// (`cycles`, `modules`, `cycles,modules`; see `sync::timeline::kinds_of`): a kind
    /// switched on since is listed at once, not at the next full reconcile. Absent in
    /// journals written before issue 12 (then read as none known).
    pub timeline: Option<String>,
    /// The project's zone (Plane's `timezone`, in which cycle days are read), as the
    /// last project listing showed it, so incremental cycles need not ask for it.
    pub zone: Option<String>,
    /// The project's `cycle_view` as last listed.
    pub cycle_view: Option<bool>,
    /// The project's `module_view` as last listed.
    pub module_view: Option<bool>,
}

/// The item records of a [`State`], by UID: a map from UID to record that keeps each
/// record once, boxed, and finds it by its own `uid`. At 10,000 items this holds ~3 MB less
/// than a `BTreeMap<String, ItemRecord>`, whose nodes keep room for 11 records of ~300 B
/// (two-thirds full on average) and a second copy of every UID as the key.
#[derive(Clone, Default)]
pub struct Items(BTreeSet<ByUid>);

/// A boxed record ordered, compared and found by its UID alone (see [`Items`]).
#[derive(Clone)]
struct ByUid(Box<ItemRecord>);

impl PartialEq for ByUid {
    fn eq(&self, other: &ByUid) -> bool {
        self.0.uid == other.0.uid
    }
}

impl Eq for ByUid {}

impl PartialOrd for ByUid {
    fn partial_cmp(&self, other: &ByUid) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ByUid {
    fn cmp(&self, other: &ByUid) -> std::cmp::Ordering {
        self.0.uid.cmp(&other.0.uid)
    }
}

/// Consistent with `Ord`: both look at the UID only, as `str`s.
impl std::borrow::Borrow<str> for ByUid {
    fn borrow(&self) -> &str {
        &self.0.uid
    }
}

impl Items {
    /// The record of `uid`.
    pub fn get(&self, uid: &(impl AsRef<str> + ?Sized)) -> Option<&ItemRecord> {
        self.0.get(uid.as_ref()).map(|r| &*r.0)
    }

    /// Whether `uid` has a record.
    pub fn contains_key(&self, uid: &(impl AsRef<str> + ?Sized)) -> bool {
        self.0.contains(uid.as_ref())
    }

    /// Sets the record of `r.uid`; returns the one it replaces.
    pub fn insert(&mut self, r: ItemRecord) -> Option<ItemRecord> {
        self.0.replace(ByUid(Box::new(r))).map(|old| *old.0)
    }

    /// Removes the record of `uid` and returns it.
    pub fn remove(&mut self, uid: &(impl AsRef<str> + ?Sized)) -> Option<ItemRecord> {
        self.0.take(uid.as_ref()).map(|old| *old.0)
    }

    /// How many records.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The records in UID order.
    pub fn values(&self) -> impl DoubleEndedIterator<Item = &ItemRecord> + '_ {
        self.0.iter().map(|r| &*r.0)
    }

    /// The UIDs in order.
    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &String> + '_ {
        self.0.iter().map(|r| &r.0.uid)
    }
}

impl PartialEq for Items {
    /// The same UIDs with equal records (not just equal UIDs, as `ByUid` compares).
    fn eq(&self, other: &Items) -> bool {
        self.len() == other.len() && self.values().eq(other.values())
    }
}

impl fmt::Debug for Items {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.keys().zip(self.values()))
            .finish()
    }
}

impl std::ops::Index<&str> for Items {
    type Output = ItemRecord;
    /// The record of `uid`; panics when there is none, like a map's index.
    fn index(&self, uid: &str) -> &ItemRecord {
        self.get(uid).expect("no item record with this UID")
    }
}

impl std::ops::Index<&String> for Items {
    type Output = ItemRecord;
    /// The record of `uid`; panics when there is none, like a map's index.
    fn index(&self, uid: &String) -> &ItemRecord {
        &self[uid.as_str()]
    }
}

/// The in-memory state after replay: last record per key wins; `gone` removes an item.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct State {
    /// Synced items by UID.
    pub items: Items,
    /// Calendars by Plane project id.
    pub calendars: BTreeMap<String, CalendarRecord>,
    /// Polling watermarks by Plane project id.
    pub projects: BTreeMap<String, ProjectRecord>,
}

impl State {
    /// How many records a compacted journal holds (header not counted).
    pub fn live_records(&self) -> usize {
        self.items.len() + self.calendars.len() + self.projects.len()
    }

    /// Whether `change` would leave the state as it is (so need not be written).
    fn holds(&self, change: &Change) -> bool {
        match change {
            Change::Item(r) => self.items.get(&r.uid) == Some(r),
            Change::Gone(g) => !self.items.contains_key(&g.uid),
            Change::Calendar(r) => self.calendars.get(&r.project) == Some(r),
            Change::Project(r) => self.projects.get(&r.project) == Some(r),
        }
    }

    /// Applies one record: the last one per key wins, `gone` removes an item. An item's
    /// project id becomes the copy `ids` shares.
    fn apply(&mut self, change: Change, ids: &mut ProjectIds) {
        match change {
            Change::Item(mut r) => {
                r.project = ids.share(r.project);
                self.items.insert(r);
            }
            Change::Gone(g) => {
                self.items.remove(&g.uid);
            }
            Change::Calendar(r) => {
                self.calendars.insert(r.project.clone(), r);
            }
            Change::Project(r) => {
                self.projects.insert(r.project.clone(), r);
            }
        }
    }
}

/// Why the journal could not be opened or written.
#[derive(Debug)]
pub enum JournalError {
    /// A file system operation failed.
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// Another process holds `state.lock`.
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// A line other than the last one is not a valid record.
    Corrupt {
        /// The journal file.
        path: PathBuf,
        /// 1-based line number, as an editor shows it.
        line: usize,
        /// What is wrong with the line.
        message: String,
    },
    /// The journal was written by a newer calplanebot in a format we do not know.
    UnsupportedFormat {
        /// The journal file.
        path: PathBuf,
        /// The format number in the file's header.
        format: u64,
    },
}

impl fmt::Display for JournalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JournalError::Io { path, source } => {
                write!(f, "state journal: {}: {}", path.display(), source)
            }
            JournalError::Locked { path } => write!(
                f,
                "another calplanebot is running (lock held on {}); stop it first, \
                 or give this instance its own STATE_DIR",
                path.display()
            ),
            JournalError::Corrupt {
                path,
                line,
                message,
            } => write!(
                f,
                "state journal {} is corrupt at line {}: {}; fix or delete that line, or move \
                 the file aside to start fresh (existing calendar objects are adopted, \
                 not duplicated)",
                path.display(),
                line,
                message
            ),
            JournalError::UnsupportedFormat { path, format } => write!(
                f,
                "state journal {} has format {}, but this calplanebot only reads format {}; \
                 upgrade calplanebot, or move the file aside to start fresh",
                path.display(),
                format,
                FORMAT
            ),
        }
    }
}

impl std::error::Error for JournalError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            JournalError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// The open, locked journal: the state plus the file it is appended to. A dry-run journal
/// ([`Journal::open_dry_run`]) has neither file nor lock: its "writes" change only the
/// state in memory.
pub struct Journal {
    /// The journal file, `dir/state.jsonl`.
    path: PathBuf,
    /// The state directory, fsynced after compaction renames.
    dir: PathBuf,
    /// Opened with `O_APPEND`, so every write lands at the end whatever the offset.
    /// `None` in a dry run.
    file: Option<File>,
    /// Held only for its exclusive lock, which the OS releases when the file is closed.
    /// `None` in a dry run.
    _lock: Option<File>,
    state: State,
    /// The project ids the state's item records share.
    ids: ProjectIds,
    /// Non-blank lines in the file (header included), for the compaction heuristic.
    lines: usize,
    /// Bytes in the file after the last complete append; a failed append is cut back to it.
    len: u64,
    /// What still waits for its fsync.
    pending: Pending,
    /// Bytes of the file known to be on disk: what a power cut cannot take away.
    synced_len: u64,
    /// fsyncs of the journal file made so far (compaction's included): what the group
    /// commit saves is counted, not timed.
    syncs: u64,
    /// write(2) calls of records made so far (compaction's not included), likewise.
    writes: u64,
}

/// Records appended but not yet fsynced.
#[derive(Debug, Default)]
struct Pending {
    /// How many.
    records: usize,
    /// When the oldest of them was appended.
    since: Option<Instant>,
    /// The UIDs whose last item record is among them ([`Journal::commit_item`]).
    items: BTreeSet<String>,
}

impl fmt::Debug for Journal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Journal")
            .field("path", &self.path)
            .field("lines", &self.lines)
            .field("live_records", &self.state.live_records())
            .finish()
    }
}

/// Opens `dir/state.lock` (0600) and takes its exclusive lock: one process per journal.
fn take_lock(dir: &Path) -> Result<File, JournalError> {
    let lock_path = dir.join(LOCK_FILE);
    let lock = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(FILE_MODE)
        .open(&lock_path)
        .map_err(|e| io_err(&lock_path, e))?;
    restrict(&lock, &lock_path);
    match lock.try_lock() {
        Ok(()) => Ok(lock),
        Err(fs::TryLockError::WouldBlock) => Err(JournalError::Locked { path: lock_path }),
        Err(fs::TryLockError::Error(e)) => Err(io_err(&lock_path, e)),
    }
}

/// Removes a leftover from a compaction that crashed before its rename: the journal itself
/// is intact, so the half-written copy is just garbage. Called with the lock held, so no
/// other process can be compacting right now.
fn remove_unfinished_compaction(dir: &Path) -> Result<(), JournalError> {
    let tmp = dir.join(TMP_FILE);
    match fs::remove_file(&tmp) {
        Ok(()) => {
            log::warn!("removed unfinished compaction file {}", tmp.display());
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(&tmp, e)),
    }
}

impl Journal {
    /// Opens (creating if needed) the journal in `dir`, takes the exclusive lock on
    /// `dir/state.lock` for the Journal's lifetime, and replays `dir/state.jsonl`.
    ///
    /// A torn last line is cut off here, so the next append starts on a clean line.
    pub fn open(dir: &Path) -> Result<Journal, JournalError> {
        // Owner only, like the files in it (an existing directory is left as it is).
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| io_err(dir, e))?;

        let lock = take_lock(dir)?;
        remove_unfinished_compaction(dir)?;

        let path = dir.join(JOURNAL_FILE);
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(FILE_MODE)
            .open(&path)
            .map_err(|e| io_err(&path, e))?;
        restrict(&file, &path);
        let replayed = replay(&path, BufReader::new(&file))?;

        let mut journal = Journal {
            path,
            dir: dir.to_path_buf(),
            file: Some(file),
            _lock: Some(lock),
            state: replayed.state,
            ids: replayed.ids,
            lines: replayed.lines,
            len: replayed.good_len as u64,
            pending: Pending::default(),
            synced_len: 0,
            syncs: 0,
            writes: 0,
        };

        journal.repair_tail(replayed.good_len != replayed.len, replayed.needs_newline)?;
        let new = replayed.lines == 0;
        if new {
            journal.append_line(header_line())?;
        }
        // What we replayed is what we build on: a killed predecessor's last records may
        // still be only in the page cache, and a watermark written now must not reach the
        // disk before them (see the module docs).
        journal.sync()?;
        if new {
            // The file may be new: make its directory entry durable too.
            sync_dir(&journal.dir)?;
        }
        if replayed.holes > 0 {
            // Skipped power-cut damage would stay in the file and be warned about at every
            // start; rewriting the state leaves a clean file.
            journal.compact()?;
        }
        Ok(journal)
    }

    /// After replay: cuts a torn tail (or trailing blank lines) away — appending after it
    /// would glue the next record onto garbage and turn a harmless torn last line into a
    /// corrupt middle line — and ends a complete last record whose newline never made it
    /// to disk. [`Journal::open`] syncs both.
    fn repair_tail(&mut self, torn: bool, needs_newline: bool) -> Result<(), JournalError> {
        if torn {
            if let Some(file) = &self.file {
                file.set_len(self.len).map_err(|e| io_err(&self.path, e))?;
            }
        }
        if needs_newline {
            self.append_raw(b"\n", 0)?;
        }
        Ok(())
    }

    /// A journal for `--dry-run`: replays `dir/state.jsonl` like [`Journal::open_read_only`]
    /// (a missing directory or file is an empty state) but takes no lock, creates nothing
    /// and never writes; puts and removes change only the state in memory. So a dry run
    /// works next to a running service and on a read-only state directory.
    pub fn open_dry_run(dir: &Path) -> Result<Journal, JournalError> {
        let path = dir.join(JOURNAL_FILE);
        let replayed = match File::open(&path) {
            Ok(file) => replay(&path, BufReader::new(file))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => replay(&path, io::empty())?,
            Err(e) => return Err(io_err(&path, e)),
        };
        Ok(Journal {
            path,
            dir: dir.to_path_buf(),
            file: None,
            _lock: None,
            state: replayed.state,
            ids: replayed.ids,
            lines: replayed.lines,
            len: replayed.good_len as u64,
            pending: Pending::default(),
            synced_len: replayed.good_len as u64,
            syncs: 0,
            writes: 0,
        })
    }

    /// Replays `dir/state.jsonl` without locking or modifying anything, for status commands
    /// while a daemon runs. A missing directory or file is an empty state.
    pub fn open_read_only(dir: &Path) -> Result<State, JournalError> {
        let path = dir.join(JOURNAL_FILE);
        match File::open(&path) {
            Ok(file) => Ok(replay(&path, BufReader::new(file))?.state),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(State::default()),
            Err(e) => Err(io_err(&path, e)),
        }
    }

    /// The state as of the last successful append.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// The journal file, `dir/state.jsonl`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Non-blank lines currently in the journal file, header included.
    pub fn lines(&self) -> usize {
        self.lines
    }

    /// Records `r` and then updates the state. The record is written at once but synced
    /// with its group (see the module docs); a write-ahead record is made durable with
    /// [`Journal::commit_item`]. Writing a record equal to the current one is skipped.
    pub fn put_item(&mut self, r: ItemRecord) -> Result<(), JournalError> {
        if self.record([Change::Item(r)])? == 0 {
            return Ok(());
        }
        self.sync_if_due()
    }

    /// Write-ahead records for many writes to come (a plan's creates), written with one
    /// write(2) per [`MAX_WRITE_BYTES`] and made durable with a single fsync, so that
    /// [`Journal::commit_item`] before each write finds them synced already. Records equal
    /// to the current ones are skipped.
    pub fn put_items_ahead(
        &mut self,
        records: impl IntoIterator<Item = ItemRecord>,
    ) -> Result<(), JournalError> {
        self.record(records.into_iter().map(Change::Item))?;
        self.commit()
    }

    /// Makes the last record of item `uid` durable if it is not yet (syncing everything
    /// written before it too): call it between a write-ahead record and the write it
    /// announces. Costs nothing when that record was synced already or never written.
    pub fn commit_item(&mut self, uid: &str) -> Result<(), JournalError> {
        if self.pending.items.contains(uid) {
            self.sync()?;
        }
        Ok(())
    }

    /// Records that the item `uid` is no longer synced, durably at once (see the module
    /// docs: a forgotten `gone` reads as a deletion in the calendar). Unknown UIDs are a
    /// no-op.
    pub fn remove_item(&mut self, uid: &str) -> Result<(), JournalError> {
        if self.record([Change::Gone(Gone {
            uid: uid.to_owned(),
        })])?
            > 0
        {
            self.commit()?;
        }
        Ok(())
    }

    /// Records that the items `uids` are no longer synced, durably, with one fsync for all.
    /// Unknown UIDs are skipped.
    pub fn remove_items(
        &mut self,
        uids: impl IntoIterator<Item = String>,
    ) -> Result<(), JournalError> {
        self.record(uids.into_iter().map(|uid| Change::Gone(Gone { uid })))?;
        self.commit()
    }

    /// Records the calendar for `r.project`. Item records written before are made durable
    /// first, so its version cannot outlive them in a power cut; a new mapping (another
    /// href) is made durable itself too.
    pub fn put_calendar(&mut self, r: CalendarRecord) -> Result<(), JournalError> {
        let new_mapping = self
            .state
            .calendars
            .get(&r.project)
            .is_none_or(|o| o.href != r.href);
        if !self.put_summary(Change::Calendar(r))? {
            return Ok(());
        }
        if new_mapping {
            self.sync()
        } else {
            self.sync_if_due()
        }
    }

    /// Records the polling watermark for `r.project`, after making the item records
    /// written before it durable: a watermark must not outlive the records of the items
    /// it says were seen.
    pub fn put_project(&mut self, r: ProjectRecord) -> Result<(), JournalError> {
        if !self.put_summary(Change::Project(r))? {
            return Ok(());
        }
        self.sync_if_due()
    }

    /// Records a summary of item records (a calendar version, a watermark) unless it is
    /// the current one, after making the item records written before it durable. Returns
    /// whether it was written.
    fn put_summary(&mut self, change: Change) -> Result<bool, JournalError> {
        if self.state.holds(&change) {
            return Ok(false);
        }
        self.commit_items()?;
        Ok(self.record([change])? > 0)
    }

    /// Appends the changes that are not in the state already and applies them to it: the
    /// lines of up to [`MAX_WRITE_BYTES`] go out in one write(2) — whole lines, no
    /// buffering beyond the call, so a killed process loses nothing it recorded — and are
    /// applied to the state once written. Syncing is the caller's.
    /// Returns how many were written.
    fn record(&mut self, changes: impl IntoIterator<Item = Change>) -> Result<usize, JournalError> {
        let mut text = Vec::new();
        let mut written = Vec::new();
        let mut count = 0;
        for change in changes {
            if self.state.holds(&change) {
                continue;
            }
            text.extend_from_slice(change.line().as_bytes());
            text.push(b'\n');
            written.push(change);
            count += 1;
            if text.len() >= MAX_WRITE_BYTES {
                self.append_changes(&text, &mut written)?;
                text.clear();
            }
        }
        self.append_changes(&text, &mut written)?;
        Ok(count)
    }

    /// Appends `text`, the lines of `changes`, in one write(2) and applies the changes.
    fn append_changes(
        &mut self,
        text: &[u8],
        changes: &mut Vec<Change>,
    ) -> Result<(), JournalError> {
        if changes.is_empty() {
            return Ok(());
        }
        self.append_raw(text, changes.len())?;
        for change in changes.drain(..) {
            if let Change::Item(r) = &change {
                self.pending.items.insert(r.uid.clone());
            }
            self.state.apply(change, &mut self.ids);
        }
        Ok(())
    }

    /// Makes everything written so far durable (nothing to do when it is). Called at the
    /// end of each cycle and of each webhook's sync, and by `Drop`.
    pub fn commit(&mut self) -> Result<(), JournalError> {
        if self.pending.records > 0 {
            self.sync()?;
        }
        Ok(())
    }

    /// fsyncs of the journal file so far, compaction's included.
    pub fn syncs(&self) -> u64 {
        self.syncs
    }

    /// Appends to the journal file so far (one write(2) each), compaction's not included.
    pub fn writes(&self) -> u64 {
        self.writes
    }

    /// Bytes of the journal file known to be on disk: a power cut may take away what lies
    /// beyond, and only that.
    pub fn synced_len(&self) -> u64 {
        self.synced_len
    }

    /// Syncs when item records wait: before a record that summarises them.
    fn commit_items(&mut self) -> Result<(), JournalError> {
        if !self.pending.items.is_empty() {
            self.sync()?;
        }
        Ok(())
    }

    /// Syncs when the group is full or its oldest record has waited long enough.
    fn sync_if_due(&mut self) -> Result<(), JournalError> {
        let old = self
            .pending
            .since
            .is_some_and(|t| t.elapsed() >= GROUP_COMMIT_INTERVAL);
        if self.pending.records >= GROUP_COMMIT_RECORDS || old {
            self.sync()?;
        }
        Ok(())
    }

    /// fdatasync of the journal: everything appended so far is on disk. A dry run has
    /// nothing to sync.
    fn sync(&mut self) -> Result<(), JournalError> {
        if let Some(file) = &self.file {
            file.sync_data().map_err(|e| io_err(&self.path, e))?;
            self.syncs += 1;
            log::debug!("journal synced at {} bytes", self.len);
        }
        self.synced_len = self.len;
        self.pending = Pending::default();
        Ok(())
    }

    /// Compacts when the file has more than twice as many lines as live records (and more
    /// than a small floor). Returns whether it compacted.
    pub fn compact_if_needed(&mut self) -> Result<bool, JournalError> {
        if self.lines <= COMPACT_FLOOR || self.lines <= 2 * self.state.live_records() {
            return Ok(false);
        }
        self.compact()?;
        Ok(true)
    }

    /// Rewrites the journal as a header plus one line per live record: written to
    /// `state.jsonl.tmp`, fsynced, renamed over `state.jsonl`, then the directory fsynced.
    /// A crash at any point leaves either the old or the new file, both complete.
    /// Records of unknown types (from a newer version) are not carried over.
    pub fn compact(&mut self) -> Result<(), JournalError> {
        if self.file.is_none() {
            return Ok(()); // dry run
        }
        let mut text = header_line();
        text.push('\n');
        for r in self.state.calendars.values() {
            text.push_str(&tagged("cal", r));
            text.push('\n');
        }
        for r in self.state.projects.values() {
            text.push_str(&tagged("project", r));
            text.push('\n');
        }
        for r in self.state.items.values() {
            text.push_str(&tagged("item", r));
            text.push('\n');
        }

        let tmp = self.dir.join(TMP_FILE);
        // The handle is opened for appending before the rename and follows the inode, so
        // after the rename it is the journal's handle: there is no window in which we hold
        // a handle to the old, unlinked file.
        let written = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .truncate(false)
            .mode(FILE_MODE)
            .open(&tmp)
            .and_then(|mut f| {
                f.set_len(0)?;
                f.write_all(text.as_bytes())?;
                f.sync_all()?;
                Ok(f)
            })
            .and_then(|f| fs::rename(&tmp, &self.path).map(|()| f));
        let file = match written {
            Ok(f) => f,
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                return Err(io_err(&tmp, e));
            }
        };
        let before = self.lines;
        self.file = Some(file);
        self.len = text.len() as u64;
        self.lines = 1 + self.state.live_records();
        self.syncs += 1;
        sync_dir(&self.dir)?;
        // The new file holds the whole state and is on disk: nothing waits any more.
        self.synced_len = self.len;
        self.pending = Pending::default();
        log::debug!("journal synced at {} bytes (compacted)", self.len);
        log::debug!(
            "compacted {} from {} to {} lines",
            self.path.display(),
            before,
            self.lines
        );
        Ok(())
    }

    fn append_line(&mut self, line: String) -> Result<(), JournalError> {
        let mut bytes = line.into_bytes();
        bytes.push(b'\n');
        self.append_raw(&bytes, 1)
    }

    /// Appends `bytes`, holding `lines` whole records, in one write(2) — no buffering, so a
    /// killed process loses nothing — and leaves the fsync to the group commit. On failure the file is cut back to its
    /// last good length, so a half-written line cannot prefix the next record.
    fn append_raw(&mut self, bytes: &[u8], lines: usize) -> Result<(), JournalError> {
        // A dry run counts the line as if written, so the state evolves the same way.
        if let Some(file) = self.file.as_mut() {
            if let Err(e) = file.write_all(bytes) {
                let _ = file.set_len(self.len);
                return Err(io_err(&self.path, e));
            }
            self.writes += 1;
        }
        self.len += bytes.len() as u64;
        self.lines += lines;
        self.pending.records += lines;
        self.pending.since.get_or_insert_with(Instant::now);
        Ok(())
    }
}

impl Drop for Journal {
    /// The last group is synced on the way out (`--once` returning, `run` after SIGTERM),
    /// so only a power cut or a kernel crash can forget it.
    fn drop(&mut self) {
        if let Err(e) = self.commit() {
            log::warn!("{e}");
        }
    }
}

/// The body of a `gone` line.
#[derive(Serialize, Deserialize)]
struct Gone {
    uid: String,
}

/// One record: a line of the journal and a change to the [`State`].
enum Change {
    /// `item`: an item's record, new or replacing the last one.
    Item(ItemRecord),
    /// `gone`: an item is no longer synced.
    Gone(Gone),
    /// `cal`: a project's calendar.
    Calendar(CalendarRecord),
    /// `project`: a project's watermark.
    Project(ProjectRecord),
}

impl Change {
    /// The journal line, without its newline.
    fn line(&self) -> String {
        match self {
            Change::Item(r) => tagged("item", r),
            Change::Gone(g) => tagged("gone", g),
            Change::Calendar(r) => tagged("cal", r),
            Change::Project(r) => tagged("project", r),
        }
    }
}

/// The fields every line is first parsed for; the record's own fields are ignored here.
#[derive(Deserialize)]
struct Tag {
    t: String,
    format: Option<u64>,
}

/// The header line that starts new and compacted journals.
fn header_line() -> String {
    format!("{{\"t\":\"header\",\"format\":{FORMAT},\"app\":\"calplanebot\"}}")
}

/// Serializes `r` as an object and splices `"t":tag` in as its first member, since
/// miniserde has neither internally tagged enums nor flatten.
fn tagged<T: Serialize>(tag: &str, r: &T) -> String {
    let body = json::to_string(r);
    let rest = body.strip_prefix('{').unwrap_or(&body);
    let mut line = String::with_capacity(body.len() + tag.len() + 8);
    line.push_str("{\"t\":");
    line.push_str(&json::to_string(tag));
    if rest != "}" {
        line.push(',');
    }
    line.push_str(rest);
    line
}

/// The outcome of replaying a journal.
struct Replayed {
    state: State,
    /// The project ids the state's records share.
    ids: ProjectIds,
    /// Non-blank, valid lines (header and skipped unknown types included).
    lines: usize,
    /// Bytes up to and including the last valid line; anything after is torn or blank.
    good_len: usize,
    /// Bytes read: the file's length.
    len: usize,
    /// The last valid line has no trailing newline.
    needs_newline: bool,
    /// Lines skipped because they hold NUL bytes (power-cut damage, see the module docs).
    holes: usize,
}

/// Why one line could not be applied.
enum LineError {
    Bad(String),
    NewerFormat(u64),
}

/// A damaged line, held until the next non-blank line shows whether it was the last.
struct Damaged {
    /// 1-based line number.
    line: usize,
    message: String,
    /// It holds NUL bytes: power-cut damage, forgiven anywhere.
    hole: bool,
}

/// Replays a journal into a [`State`], streaming: the file is never held whole in memory
/// (at 10,000 items it is ~6 MB). Pure apart from reading and logging.
fn replay(path: &Path, mut reader: impl BufRead) -> Result<Replayed, JournalError> {
    let mut out = Replayed {
        state: State::default(),
        ids: ProjectIds::default(),
        lines: 0,
        good_len: 0,
        len: 0,
        needs_newline: false,
        holes: 0,
    };
    let mut unknown: BTreeMap<String, usize> = BTreeMap::new();
    let mut buf = Vec::new();
    let mut number = 0;
    // Only the last non-blank line may be damaged (torn by a crash mid-append), so a
    // damaged line waits here until a non-blank line follows it — or the file ends.
    let mut damaged: Option<Damaged> = None;
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(|e| io_err(path, e))?;
        if n == 0 {
            break;
        }
        number += 1;
        out.len += n;
        let newline = buf.last() == Some(&b'\n');
        let raw = &buf[..n - usize::from(newline)];
        if raw.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if let Some(d) = damaged.take() {
            forgive_hole(path, d, &mut out.holes)?;
        }
        if raw.contains(&0) {
            // We never write a NUL (JSON escapes it): a block a power cut left unwritten.
            damaged = Some(Damaged {
                line: number,
                message: "NUL bytes".into(),
                hole: true,
            });
            continue;
        }
        let result = match std::str::from_utf8(raw) {
            Ok(text) => apply_line(&mut out.state, &mut out.ids, text.trim(), &mut unknown),
            Err(e) => Err(LineError::Bad(format!("not UTF-8 ({e})"))),
        };
        match result {
            Ok(()) => {
                out.lines += 1;
                out.good_len = out.len;
                out.needs_newline = !newline;
            }
            Err(LineError::NewerFormat(format)) => {
                return Err(JournalError::UnsupportedFormat {
                    path: path.to_path_buf(),
                    format,
                })
            }
            Err(LineError::Bad(message)) => {
                damaged = Some(Damaged {
                    line: number,
                    message,
                    hole: false,
                })
            }
        }
    }
    warn_leftovers(path, damaged, unknown);
    Ok(out)
}

/// The warnings a replay ends with: a damaged last line (torn by a crash while writing it),
/// and records of types this version does not know.
fn warn_leftovers(path: &Path, damaged: Option<Damaged>, unknown: BTreeMap<String, usize>) {
    if let Some(d) = damaged {
        log::warn!(
            "{}: ignoring damaged last line {} ({}), probably from a crash while writing it",
            path.display(),
            d.line,
            d.message
        );
    }
    for (t, count) in unknown {
        log::warn!(
            "{}: skipped {} record(s) of unknown type {:?} (written by a newer calplanebot?)",
            path.display(),
            count,
            t
        );
    }
}

/// A damaged line with more lines after it: a hole a power cut left (counted, warned about
/// once) is skipped; anything else is [`JournalError::Corrupt`].
fn forgive_hole(path: &Path, d: Damaged, holes: &mut usize) -> Result<(), JournalError> {
    if !d.hole {
        return Err(JournalError::Corrupt {
            path: path.to_path_buf(),
            line: d.line,
            message: d.message,
        });
    }
    if *holes == 0 {
        log::warn!(
            "{}: skipping line {} and any other line with NUL bytes, left by a power cut \
             before they were synced",
            path.display(),
            d.line
        );
    }
    *holes += 1;
    Ok(())
}

/// Record types whose lines [`quick_tag`] recognises: those a typed parse validates whole.
const QUICK_TAGS: [&str; 4] = ["item", "gone", "cal", "project"];

/// The type of a line that starts the way we write records, `{"t":"item",`, for the types
/// in [`QUICK_TAGS`]; `None` for anything else (a header, an unknown type: those are
/// parsed for their tag, which checks the whole line is JSON).
fn quick_tag(text: &str) -> Option<&str> {
    let rest = text.strip_prefix("{\"t\":\"")?;
    let end = rest.find('"')?;
    let tag = &rest[..end];
    (QUICK_TAGS.contains(&tag) && rest[end + 1..].starts_with(',')).then_some(tag)
}

/// Accepts a header of a format we read.
fn check_header(format: Option<u64>) -> Result<(), LineError> {
    match format {
        Some(format) if format > FORMAT => Err(LineError::NewerFormat(format)),
        Some(_) => Ok(()),
        None => Err(LineError::Bad("header without \"format\"".into())),
    }
}

/// Applies one non-blank line to `state`.
fn apply_line(
    state: &mut State,
    ids: &mut ProjectIds,
    text: &str,
    unknown: &mut BTreeMap<String, usize>,
) -> Result<(), LineError> {
    // A line as we write it names its type first: then one typed parse is all it takes
    // (derived structs ignore the extra `"t"` member), which halves the cost of a start
    // with a big journal. Anything else (a header, a hand-edited line) is parsed for its
    // tag first, which is still cheaper than building a `json::Value` and re-serializing it.
    let parsed_tag: Tag;
    let t = match quick_tag(text) {
        Some(t) => t,
        None => {
            parsed_tag = json::from_str(text)
                .map_err(|_| LineError::Bad("not a JSON object with \"t\"".into()))?;
            if parsed_tag.t == "header" {
                return check_header(parsed_tag.format);
            }
            parsed_tag.t.as_str()
        }
    };
    fn parse<T: Deserialize>(text: &str, what: &str) -> Result<T, LineError> {
        json::from_str(text).map_err(|_| {
            LineError::Bad(format!("invalid {what} record (missing or mistyped field)"))
        })
    }
    let change = match t {
        "item" => Change::Item(parse(text, "item")?),
        "gone" => Change::Gone(parse(text, "gone")?),
        "cal" => Change::Calendar(parse(text, "cal")?),
        "project" => Change::Project(parse(text, "project")?),
        // Forward compatibility: a newer version may add record types (e.g. "intent")
        // that an older one can safely ignore; incompatible changes bump "format" instead.
        other => {
            *unknown.entry(other.to_owned()).or_default() += 1;
            return Ok(());
        }
    };
    state.apply(change, ids);
    Ok(())
}

fn io_err(path: &Path, source: io::Error) -> JournalError {
    JournalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Tightens an existing file that group or others may read to [`FILE_MODE`] (new files are
/// created with it). A failure (a file owned by another user) only warns: the journal
/// still works.
fn restrict(file: &File, path: &Path) {
    let Ok(mode) = file.metadata().map(|m| m.permissions().mode() & 0o777) else {
        return;
    };
    if mode & 0o077 == 0 {
        return;
    }
    match file.set_permissions(fs::Permissions::from_mode(FILE_MODE)) {
        Ok(()) => log::info!(
            "{}: permissions tightened from {mode:o} to {FILE_MODE:o}",
            path.display()
        ),
        Err(e) => log::warn!(
            "{}: readable by others (mode {mode:o}) and cannot be tightened: {e}",
            path.display()
        ),
    }
}

/// Makes renames and new directory entries in `dir` durable.
fn sync_dir(dir: &Path) -> Result<(), JournalError> {
    #[cfg(unix)]
    {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io_err(dir, e))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A unique directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            static COUNTER: AtomicUsize = AtomicUsize::new(0);
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            let dir = std::env::temp_dir().join(format!(
                "calplanebot-state-{name}-{}-{n}-{nanos}",
                std::process::id()
            ));
            TempDir(dir)
        }
        fn journal(&self) -> PathBuf {
            self.0.join(JOURNAL_FILE)
        }
        fn read(&self) -> String {
            fs::read_to_string(self.journal()).unwrap()
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn item(uid: &str, etag: &str) -> ItemRecord {
        ItemRecord {
            uid: uid.to_owned(),
            work_item: format!("wi-{uid}"),
            project: "p1".into(),
            href: format!("/cal/plane-web/{uid}.ics"),
            etag: Some(etag.to_owned()),
            plane_updated_at: "2025-01-02T03:04:05.678901Z".to_owned(),
            sequence: 3,
            sent_to_plane: None,
            sent_to_calendar: None,
            shadow: Shadow {
                name: "Write the journal".to_owned(),
                start_date: None,
                target_date: Some("2025-02-01".to_owned()),
                state_group: "started".to_owned(),
                content_hash: ContentHash::from_hex(&"ab".repeat(32)),
            },
        }
    }

    fn cal(project: &str) -> CalendarRecord {
        CalendarRecord {
            project: project.to_owned(),
            href: format!("/dav/calendars/u/plane-{project}/"),
            ctag: Some("ctag-1".to_owned()),
            sync_token: None,
        }
    }

    fn project(project: &str, watermark: Option<&str>) -> ProjectRecord {
        ProjectRecord {
            project: project.to_owned(),
            watermark: watermark.map(str::to_owned),
            cycles_since_full: 7,
            last_full: Some(1_795_428_930),
            identifier: None,
            name: None,
            timeline: None,
            zone: None,
            cycle_view: None,
            module_view: None,
        }
    }

    #[test]
    fn round_trip_every_record_type() {
        let tmp = TempDir::new("roundtrip");
        let mut j = Journal::open(&tmp.0).unwrap();
        assert_eq!(j.path(), tmp.journal());
        j.put_item(item("a", "\"e1\"")).unwrap();
        j.put_calendar(cal("p1")).unwrap();
        j.put_project(project("p1", Some("2025-01-02T03:04:05Z")))
            .unwrap();
        j.put_project(project("p2", None)).unwrap();
        let expected = j.state().clone();
        assert_eq!(expected.live_records(), 4);
        drop(j);

        let text = tmp.read();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 5);
        assert_eq!(lines[0], r#"{"t":"header","format":1,"app":"calplanebot"}"#);
        assert!(lines[1].starts_with(r#"{"t":"item","uid":"a","work_item":"wi-a","#));
        assert!(lines[1].contains(r#""shadow":{"name":"Write the journal","start_date":null,"#));
        assert!(lines[2].starts_with(r#"{"t":"cal","project":"p1","href":"#));
        assert_eq!(
            lines[4],
            r#"{"t":"project","project":"p2","watermark":null,"cycles_since_full":7,"last_full":1795428930,"identifier":null,"name":null,"timeline":null,"zone":null,"cycle_view":null,"module_view":null}"#
        );
        // A record written before `last_full` existed still replays (as "never").
        let old = r#"{"t":"project","project":"p3","watermark":null,"cycles_since_full":2}"#;
        std::fs::write(tmp.journal(), format!("{text}{old}\n")).unwrap();
        let j = Journal::open(&tmp.0).unwrap();
        assert_eq!(j.state().projects["p3"].last_full, None);
        assert_eq!(j.state().projects["p3"].cycles_since_full, 2);
        assert_eq!(j.state().projects["p3"].timeline, None);
        drop(j);
        std::fs::write(tmp.journal(), &text).unwrap();

        let j = Journal::open(&tmp.0).unwrap();
        assert_eq!(j.state(), &expected);
        assert_eq!(j.state().items["a"], item("a", "\"e1\""));
        assert_eq!(j.state().calendars["p1"], cal("p1"));
        assert_eq!(j.state().projects["p2"], project("p2", None));
        assert_eq!(j.lines(), 5);
    }

    #[test]
    fn missing_file_is_empty_state_and_gets_a_header() {
        let tmp = TempDir::new("missing");
        assert_eq!(Journal::open_read_only(&tmp.0).unwrap(), State::default());
        assert!(
            !tmp.0.exists(),
            "read-only open must not create the directory"
        );
        let j = Journal::open(&tmp.0).unwrap();
        assert_eq!(j.state(), &State::default());
        assert_eq!(tmp.read(), format!("{}\n", header_line()));
    }

    #[test]
    fn last_record_wins() {
        let tmp = TempDir::new("lastwins");
        let mut j = Journal::open(&tmp.0).unwrap();
        j.put_item(item("a", "e1")).unwrap();
        j.put_item(item("b", "e1")).unwrap();
        j.put_item(item("a", "e2")).unwrap();
        j.put_calendar(cal("p1")).unwrap();
        j.put_calendar(CalendarRecord {
            sync_token: Some("tok-2".to_owned()),
            ..cal("p1")
        })
        .unwrap();
        assert_eq!(j.state().items["a"].etag.as_deref(), Some("e2"));
        drop(j);
        let state = Journal::open_read_only(&tmp.0).unwrap();
        assert_eq!(state.items["a"].etag.as_deref(), Some("e2"));
        assert_eq!(state.items["b"].etag.as_deref(), Some("e1"));
        assert_eq!(state.calendars["p1"].sync_token.as_deref(), Some("tok-2"));
        assert_eq!(state.items.len(), 2);
    }

    #[test]
    fn unchanged_record_is_not_rewritten() {
        let tmp = TempDir::new("unchanged");
        let mut j = Journal::open(&tmp.0).unwrap();
        j.put_item(item("a", "e1")).unwrap();
        j.put_item(item("a", "e1")).unwrap();
        j.remove_item("never-seen").unwrap();
        assert_eq!(j.lines(), 2);
        assert_eq!(tmp.read().lines().count(), 2);
    }

    #[test]
    fn gone_removes_item() {
        let tmp = TempDir::new("gone");
        let mut j = Journal::open(&tmp.0).unwrap();
        j.put_item(item("a", "e1")).unwrap();
        j.put_item(item("b", "e1")).unwrap();
        j.remove_item("a").unwrap();
        assert!(!j.state().items.contains_key("a"));
        drop(j);
        assert!(tmp.read().contains(r#"{"t":"gone","uid":"a"}"#));
        let j = Journal::open(&tmp.0).unwrap();
        assert_eq!(j.state().items.keys().collect::<Vec<_>>(), ["b"]);
    }

    #[test]
    fn torn_last_line_is_ignored_and_cut_before_next_append() {
        let tmp = TempDir::new("torn");
        let mut j = Journal::open(&tmp.0).unwrap();
        j.put_item(item("a", "e1")).unwrap();
        let expected = j.state().clone();
        drop(j);

        // Half of a record, as a crash in the middle of the write leaves it.
        let full = tagged("item", &item("b", "e1"));
        let mut f = OpenOptions::new().append(true).open(tmp.journal()).unwrap();
        f.write_all(&full.as_bytes()[..full.len() / 2]).unwrap();
        drop(f);

        assert_eq!(Journal::open_read_only(&tmp.0).unwrap(), expected);
        let mut j = Journal::open(&tmp.0).unwrap();
        assert_eq!(j.state(), &expected);
        j.put_item(item("c", "e1")).unwrap();
        drop(j);

        let text = tmp.read();
        assert_eq!(text.lines().count(), 3, "{text}");
        assert!(text.ends_with('\n'));
        for line in text.lines() {
            assert!(line.starts_with('{') && line.ends_with('}'), "{line}");
        }
        let state = Journal::open_read_only(&tmp.0).unwrap();
        assert_eq!(state.items.keys().collect::<Vec<_>>(), ["a", "c"]);
    }

    #[test]
    fn torn_garbage_with_newline_at_end_is_also_tolerated() {
        let tmp = TempDir::new("tornnl");
        drop(Journal::open(&tmp.0).unwrap());
        let mut f = OpenOptions::new().append(true).open(tmp.journal()).unwrap();
        f.write_all(b"{\"t\":\"item\",\"uid\"\0\0\0\n\n").unwrap();
        drop(f);
        let mut j = Journal::open(&tmp.0).unwrap();
        j.put_item(item("a", "e1")).unwrap();
        drop(j);
        assert_eq!(tmp.read().lines().count(), 2);
        assert_eq!(Journal::open_read_only(&tmp.0).unwrap().items.len(), 1);
    }

    #[test]
    fn complete_last_line_without_newline_is_kept() {
        let tmp = TempDir::new("nonewline");
        drop(Journal::open(&tmp.0).unwrap());
        let mut f = OpenOptions::new().append(true).open(tmp.journal()).unwrap();
        f.write_all(tagged("item", &item("a", "e1")).as_bytes())
            .unwrap();
        drop(f);
        let mut j = Journal::open(&tmp.0).unwrap();
        assert_eq!(j.state().items["a"], item("a", "e1"));
        j.put_item(item("b", "e1")).unwrap();
        drop(j);
        assert_eq!(tmp.read().lines().count(), 3);
        assert_eq!(Journal::open_read_only(&tmp.0).unwrap().items.len(), 2);
    }

    #[test]
    fn corrupt_middle_line_names_file_and_line() {
        let tmp = TempDir::new("corrupt");
        fs::create_dir_all(&tmp.0).unwrap();
        let text = format!(
            "{}\n{}\n\n{{\"t\":\"item\",\"uid\":\"x\"}}\n{}\n",
            header_line(),
            tagged("item", &item("a", "e1")),
            tagged("cal", &cal("p1")),
        );
        fs::write(tmp.journal(), text).unwrap();
        for err in [
            Journal::open(&tmp.0).unwrap_err(),
            Journal::open_read_only(&tmp.0).unwrap_err(),
        ] {
            match &err {
                JournalError::Corrupt { path, line, .. } => {
                    assert_eq!(path, &tmp.journal());
                    assert_eq!(*line, 4);
                }
                other => panic!("expected Corrupt, got {other:?}"),
            }
            let shown = err.to_string();
            assert!(shown.contains("line 4"), "{shown}");
            assert!(shown.contains(&tmp.journal().display().to_string()));
        }
    }

    #[test]
    fn invalid_json_in_middle_is_corrupt() {
        let tmp = TempDir::new("badjson");
        fs::create_dir_all(&tmp.0).unwrap();
        let text = format!(
            "{}\nnot json\n{}\n",
            header_line(),
            tagged("cal", &cal("p"))
        );
        fs::write(tmp.journal(), text).unwrap();
        assert!(matches!(
            Journal::open_read_only(&tmp.0),
            Err(JournalError::Corrupt { line: 2, .. })
        ));
    }

    #[test]
    fn second_open_is_locked_until_first_is_dropped() {
        let tmp = TempDir::new("lock");
        let mut j = Journal::open(&tmp.0).unwrap();
        j.put_item(item("a", "e1")).unwrap();
        let err = Journal::open(&tmp.0).unwrap_err();
        match &err {
            JournalError::Locked { path } => assert_eq!(path, &tmp.0.join(LOCK_FILE)),
            other => panic!("expected Locked, got {other:?}"),
        }
        assert!(err
            .to_string()
            .starts_with("another calplanebot is running (lock held on "));

        // Status commands still read while the daemon holds the lock.
        let state = Journal::open_read_only(&tmp.0).unwrap();
        assert_eq!(&state, j.state());

        drop(j);
        let j = Journal::open(&tmp.0).unwrap();
        assert_eq!(j.state().items.len(), 1);
    }

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn files_are_owner_only() {
        let tmp = TempDir::new("modes");
        let mut j = Journal::open(&tmp.0).unwrap();
        assert_eq!(mode(&tmp.0), 0o700);
        assert_eq!(mode(&tmp.journal()), FILE_MODE);
        assert_eq!(mode(&tmp.0.join(LOCK_FILE)), FILE_MODE);
        for i in 0..(COMPACT_FLOOR + 1) {
            j.put_item(item("a", &format!("e{i}"))).unwrap();
        }
        j.compact().unwrap();
        assert_eq!(mode(&tmp.journal()), FILE_MODE, "the compacted copy too");
        drop(j);
        // Files from an older version were 0644: opening for writing tightens them.
        for f in [tmp.journal(), tmp.0.join(LOCK_FILE)] {
            fs::set_permissions(&f, fs::Permissions::from_mode(0o644)).unwrap();
        }
        let _j = Journal::open(&tmp.0).unwrap();
        assert_eq!(mode(&tmp.journal()), FILE_MODE);
        assert_eq!(mode(&tmp.0.join(LOCK_FILE)), FILE_MODE);
    }

    #[test]
    fn dry_run_journal_takes_no_lock_and_writes_nothing() {
        let tmp = TempDir::new("dry");
        // Nothing there: an empty state, and nothing is created.
        let mut dry = Journal::open_dry_run(&tmp.0).unwrap();
        dry.put_item(item("x", "e")).unwrap();
        dry.compact().unwrap();
        assert!(!tmp.0.exists(), "dry run created the state directory");

        let mut j = Journal::open(&tmp.0).unwrap();
        j.put_item(item("a", "e1")).unwrap();
        let before = tmp.read();
        // Next to the lock holder (a running service).
        let mut dry = Journal::open_dry_run(&tmp.0).unwrap();
        assert_eq!(dry.state(), j.state());
        dry.put_item(item("b", "e2")).unwrap();
        dry.remove_item("a").unwrap();
        assert!(dry.state().items.contains_key("b") && !dry.state().items.contains_key("a"));
        for i in 0..(COMPACT_FLOOR + 1) {
            dry.put_item(item("c", &format!("e{i}"))).unwrap();
        }
        dry.compact_if_needed().unwrap();
        assert_eq!(tmp.read(), before);
        assert!(!tmp.0.join(TMP_FILE).exists());
    }

    #[test]
    fn compaction_keeps_state_and_shrinks_file() {
        let tmp = TempDir::new("compact");
        let mut j = Journal::open(&tmp.0).unwrap();
        assert!(!j.compact_if_needed().unwrap(), "nothing to compact yet");
        for i in 0..100 {
            j.put_item(item(&format!("u{}", i % 3), &format!("e{i}")))
                .unwrap();
        }
        j.put_item(item("doomed", "e")).unwrap();
        j.remove_item("doomed").unwrap();
        j.put_calendar(cal("p1")).unwrap();
        j.put_project(project("p1", Some("w"))).unwrap();
        let expected = j.state().clone();
        let lines_before = tmp.read().lines().count();
        assert_eq!(lines_before, j.lines());

        assert!(j.compact_if_needed().unwrap());
        assert_eq!(j.state(), &expected);
        assert_eq!(j.lines(), 1 + 5);
        let text = tmp.read();
        assert_eq!(text.lines().count(), 6);
        assert!(text.lines().count() < lines_before);
        assert_eq!(text.lines().next(), Some(header_line().as_str()));
        assert!(!tmp.0.join(TMP_FILE).exists());
        assert!(!j.compact_if_needed().unwrap());

        // Appends after compaction go to the new file, not the unlinked old one.
        j.put_item(item("after", "e")).unwrap();
        drop(j);
        let j = Journal::open(&tmp.0).unwrap();
        let mut expected = expected;
        expected.items.insert(item("after", "e"));
        assert_eq!(j.state(), &expected);
        assert_eq!(j.lines(), 7);
    }

    #[test]
    fn stale_compaction_file_is_removed_on_open() {
        let tmp = TempDir::new("staletmp");
        fs::create_dir_all(&tmp.0).unwrap();
        fs::write(tmp.0.join(TMP_FILE), "{\"t\":\"head").unwrap();
        let _j = Journal::open(&tmp.0).unwrap();
        assert!(!tmp.0.join(TMP_FILE).exists());
    }

    #[test]
    fn unicode_and_quotes_survive() {
        let tmp = TempDir::new("unicode");
        let mut r = item("plane-issue-ü@calplanebot", "W/\"abc\\\"def\"");
        r.shadow.name = "Straße \"quoted\" \\ back\\slash\nnew line\ttab 🎉 日本語 \u{1}".into();
        r.href = "/cal/plane-issue-%C3%BC%40calplanebot.ics".into();
        let mut j = Journal::open(&tmp.0).unwrap();
        j.put_item(r.clone()).unwrap();
        j.put_calendar(CalendarRecord {
            sync_token: Some("http://x/\"tok\"/✓".into()),
            ..cal("prøject")
        })
        .unwrap();
        drop(j);
        assert_eq!(tmp.read().lines().count(), 3, "no raw newline may leak");
        let j = Journal::open(&tmp.0).unwrap();
        assert_eq!(j.state().items[&r.uid], r);
        assert_eq!(
            j.state().calendars["prøject"].sync_token.as_deref(),
            Some("http://x/\"tok\"/✓")
        );
    }

    #[test]
    fn unknown_record_types_are_skipped() {
        let tmp = TempDir::new("unknown");
        fs::create_dir_all(&tmp.0).unwrap();
        let text = format!(
            "{}\n{{\"t\":\"intent\",\"uid\":\"a\",\"op\":\"put\"}}\n{}\n",
            header_line(),
            tagged("item", &item("a", "e1"))
        );
        fs::write(tmp.journal(), text).unwrap();
        let j = Journal::open(&tmp.0).unwrap();
        assert_eq!(j.state().items.len(), 1);
        assert_eq!(j.lines(), 3);
    }

    #[test]
    fn newer_format_is_refused() {
        let tmp = TempDir::new("format");
        fs::create_dir_all(&tmp.0).unwrap();
        fs::write(
            tmp.journal(),
            "{\"t\":\"header\",\"format\":2,\"app\":\"calplanebot\"}\n",
        )
        .unwrap();
        let err = Journal::open(&tmp.0).unwrap_err();
        assert!(
            matches!(err, JournalError::UnsupportedFormat { format: 2, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("has format 2"));
        assert!(Journal::open_read_only(&tmp.0).is_err());
    }

    #[test]
    fn ten_thousand_puts_replay() {
        let tmp = TempDir::new("many");
        let mut j = Journal::open(&tmp.0).unwrap();
        for i in 0..10_000u32 {
            let mut r = item(&format!("u{:05}", i % 2_500), &format!("e{i}"));
            r.sequence = i;
            j.put_item(r).unwrap();
        }
        let expected = j.state().clone();
        assert_eq!(j.lines(), 10_001);
        drop(j);
        let state = Journal::open_read_only(&tmp.0).unwrap();
        assert_eq!(state, expected);
        assert_eq!(state.items.len(), 2_500);
        assert_eq!(state.items["u00000"].sequence, 7_500);
        assert_eq!(state.items["u02499"].etag.as_deref(), Some("e9999"));
    }

    #[test]
    fn records_are_synced_in_groups() {
        let tmp = TempDir::new("group");
        let mut j = Journal::open(&tmp.0).unwrap();
        let opened = j.syncs();
        assert_eq!(opened, 1, "a new journal syncs its header once");
        assert_eq!(j.synced_len(), tmp.read().len() as u64);
        for i in 0..GROUP_COMMIT_RECORDS - 1 {
            j.put_item(item(&format!("u{i}"), "e")).unwrap();
        }
        assert_eq!(j.syncs(), opened, "a group that is not full waits");
        // Written at once all the same: a killed process would lose none of them.
        assert_eq!(tmp.read().lines().count(), GROUP_COMMIT_RECORDS);
        j.put_item(item("last", "e")).unwrap();
        assert_eq!(j.syncs(), opened + 1, "the full group syncs");
        assert_eq!(j.synced_len(), tmp.read().len() as u64);
        j.commit().unwrap();
        assert_eq!(j.syncs(), opened + 1, "nothing waits: commit is free");

        j.put_item(item("a", "e2")).unwrap();
        j.put_item(item("a", "e2")).unwrap(); // unchanged: not even written
        assert_eq!(j.syncs(), opened + 1);
        assert!(j.synced_len() < tmp.read().len() as u64);
        j.commit().unwrap();
        assert_eq!(j.syncs(), opened + 2);
        assert_eq!(j.synced_len(), tmp.read().len() as u64);
    }

    #[test]
    fn an_old_group_syncs_with_the_next_record() {
        let tmp = TempDir::new("interval");
        let mut j = Journal::open(&tmp.0).unwrap();
        let opened = j.syncs();
        j.put_item(item("a", "e1")).unwrap();
        assert_eq!(j.syncs(), opened);
        // As if the first record had waited the whole interval (no sleeping in tests).
        let aged = Instant::now().checked_sub(GROUP_COMMIT_INTERVAL);
        j.pending.since = Some(aged.expect("the clock is past the interval"));
        j.put_item(item("b", "e1")).unwrap();
        assert_eq!(j.syncs(), opened + 1);
        assert_eq!(j.synced_len(), tmp.read().len() as u64);
    }

    #[test]
    fn write_ahead_records_are_synced_before_their_write() {
        let tmp = TempDir::new("ahead");
        let mut j = Journal::open(&tmp.0).unwrap();
        let opened = j.syncs();
        // A plan's creates: one fsync for all of them.
        j.put_items_ahead((0..500).map(|i| item(&format!("u{i}"), "e")))
            .unwrap();
        assert_eq!(j.syncs(), opened + 1);
        // The create re-puts the same record and asks for it to be durable: it is.
        j.put_item(item("u7", "e")).unwrap();
        j.commit_item("u7").unwrap();
        assert_eq!(j.syncs(), opened + 1);
        // Its confirmation waits for the group; a write-ahead of another item syncs it.
        j.put_item(item("u7", "confirmed")).unwrap();
        j.commit_item("never-written").unwrap();
        assert_eq!(j.syncs(), opened + 1);
        j.put_item(item("u8", "sent")).unwrap();
        j.commit_item("u8").unwrap();
        assert_eq!(j.syncs(), opened + 2);
        assert_eq!(j.synced_len(), tmp.read().len() as u64);
        j.commit_item("u8").unwrap();
        assert_eq!(j.syncs(), opened + 2, "synced already");
    }

    #[test]
    fn gone_and_new_mappings_are_durable_at_once() {
        let tmp = TempDir::new("barriers");
        let mut j = Journal::open(&tmp.0).unwrap();
        let opened = j.syncs();
        j.put_item(item("a", "e1")).unwrap();
        j.remove_item("a").unwrap();
        assert_eq!(j.syncs(), opened + 1, "a gone record is synced");
        j.put_calendar(cal("p1")).unwrap();
        assert_eq!(j.syncs(), opened + 2, "a new mapping is synced");
        let moved = CalendarRecord {
            href: "/dav/calendars/u/elsewhere/".into(),
            ..cal("p1")
        };
        j.put_calendar(moved.clone()).unwrap();
        assert_eq!(j.syncs(), opened + 3, "so is a changed one");
        let before_version = tmp.read().len() as u64;
        j.put_calendar(CalendarRecord {
            sync_token: Some("tok".into()),
            ..moved
        })
        .unwrap();
        assert_eq!(j.syncs(), opened + 3, "a new version alone waits");
        assert_eq!(j.synced_len(), before_version);
    }

    #[test]
    fn summaries_never_reach_the_disk_before_the_items_they_cover() {
        let tmp = TempDir::new("summaries");
        let mut j = Journal::open(&tmp.0).unwrap();
        let opened = j.syncs();
        j.put_item(item("a", "e1")).unwrap();
        let before_watermark = tmp.read().len() as u64;
        j.put_project(project("p1", Some("w1"))).unwrap();
        assert_eq!(j.syncs(), opened + 1, "the item was synced first");
        assert_eq!(j.synced_len(), before_watermark);
        // Only summaries wait: the next one does not sync for them (an idle cycle costs
        // one fsync, at its end).
        j.put_project(project("p2", Some("w2"))).unwrap();
        j.put_calendar(cal("p1")).unwrap(); // a new mapping: synced itself
        j.put_project(project("p1", Some("w3"))).unwrap();
        j.put_project(project("p2", Some("w4"))).unwrap();
        assert_eq!(j.syncs(), opened + 2);
        j.commit().unwrap();
        assert_eq!(j.syncs(), opened + 3);
    }

    #[test]
    fn a_power_cut_after_the_last_sync_leaves_the_synced_state() {
        let tmp = TempDir::new("powercut");
        let mut j = Journal::open(&tmp.0).unwrap();
        j.put_items_ahead([item("a", "pending"), item("b", "pending")])
            .unwrap();
        let synced = j.state().clone();
        let synced_len = j.synced_len();
        j.put_item(item("a", "confirmed")).unwrap();
        j.put_item(item("c", "x")).unwrap();
        assert!(tmp.read().len() as u64 > synced_len);
        drop(j);
        // What a power cut leaves: the synced prefix, plus part of a torn record.
        let bytes = fs::read(tmp.journal()).unwrap();
        let cut = &bytes[..synced_len as usize + 20];
        fs::write(tmp.journal(), cut).unwrap();
        let j = Journal::open(&tmp.0).unwrap();
        assert_eq!(j.state(), &synced);
    }

    #[test]
    fn blocks_of_nul_left_by_a_power_cut_are_skipped_and_compacted_away() {
        let tmp = TempDir::new("holes");
        let mut j = Journal::open(&tmp.0).unwrap();
        j.put_item(item("a", "e1")).unwrap();
        j.put_item(item("b", "e1")).unwrap();
        j.put_item(item("c", "e1")).unwrap();
        drop(j);
        // The page holding "b" (and the end of "a") never reached the disk, the one
        // after it did: the file reads NULs in its place.
        let text = tmp.read();
        let start = text.find(r#"{"t":"item","uid":"a""#).unwrap() + 30;
        let end = text.find(r#"{"t":"item","uid":"c""#).unwrap() - 1;
        let mut bytes = text.into_bytes();
        bytes[start..end].fill(0);
        fs::write(tmp.journal(), &bytes).unwrap();

        let state = Journal::open_read_only(&tmp.0).unwrap();
        assert_eq!(state.items.keys().collect::<Vec<_>>(), ["c"]);
        let j = Journal::open(&tmp.0).unwrap();
        assert_eq!(j.state(), &state);
        drop(j);
        let text = tmp.read();
        assert!(!text.contains('\0'), "compacted: {text:?}");
        assert_eq!(text.lines().count(), 2);

        // A hole followed by other damage: the damage is still refused, by its number.
        let hole = "\0".repeat(10);
        let text2 = format!("{text}{hole}\nnot json\n{}\n", tagged("cal", &cal("p")));
        fs::write(tmp.journal(), text2).unwrap();
        assert!(matches!(
            Journal::open_read_only(&tmp.0),
            Err(JournalError::Corrupt { line: 4, .. })
        ));
        // A hole at the very end is a torn last line: cut off, nothing to compact.
        fs::write(tmp.journal(), format!("{text}{hole}\n\n")).unwrap();
        let mut j = Journal::open(&tmp.0).unwrap();
        assert_eq!(j.state(), &state);
        j.put_item(item("d", "e1")).unwrap();
        drop(j);
        assert_eq!(
            tmp.read(),
            format!("{text}{}\n", tagged("item", &item("d", "e1")))
        );

        // Any other damage in the middle is still refused.
        fs::write(
            tmp.journal(),
            format!("{}\nnot json\n{text}", header_line()),
        )
        .unwrap();
        assert!(matches!(
            Journal::open(&tmp.0),
            Err(JournalError::Corrupt { line: 2, .. })
        ));
    }

    #[test]
    fn many_removals_share_one_sync() {
        let tmp = TempDir::new("removals");
        let mut j = Journal::open(&tmp.0).unwrap();
        j.put_items_ahead((0..100).map(|i| item(&format!("u{i}"), "e")))
            .unwrap();
        let before = j.syncs();
        j.remove_items((0..100).map(|i| format!("u{i}")).chain(["unknown".into()]))
            .unwrap();
        assert_eq!(j.syncs(), before + 1);
        assert!(j.state().items.is_empty());
        assert_eq!(j.synced_len(), tmp.read().len() as u64);
        assert_eq!(tmp.read().matches(r#""t":"gone""#).count(), 100);
    }

    #[test]
    fn a_dry_run_never_syncs() {
        let tmp = TempDir::new("drysync");
        let mut dry = Journal::open_dry_run(&tmp.0).unwrap();
        dry.put_items_ahead([item("a", "e")]).unwrap();
        dry.commit_item("a").unwrap();
        dry.remove_item("a").unwrap();
        dry.put_calendar(cal("p")).unwrap();
        dry.commit().unwrap();
        assert_eq!(dry.syncs(), 0);
        drop(dry);
        assert!(!tmp.0.exists());
    }

    #[test]
    fn lines_are_typed_by_their_prefix_only_when_we_wrote_them() {
        assert_eq!(quick_tag(&tagged("item", &item("a", "e"))), Some("item"));
        assert_eq!(quick_tag(&tagged("cal", &cal("p"))), Some("cal"));
        assert_eq!(quick_tag(&header_line()), None);
        assert_eq!(quick_tag(r#"{"t":"intent","uid":"a"}"#), None);
        assert_eq!(quick_tag(r#"{ "t":"item","uid":"a"}"#), None);
        assert_eq!(quick_tag(r#"{"t":"item"}"#), None);
        // Either way, a torn line of an unknown type is damage, not an unknown record.
        let mut state = State::default();
        let mut unknown = BTreeMap::new();
        for torn in [r#"{"t":"intent","uid"#, r#"{"t":"item","uid":"a""#] {
            assert!(matches!(
                apply_line(&mut state, &mut ProjectIds::default(), torn, &mut unknown),
                Err(LineError::Bad(_))
            ));
        }
        assert!(unknown.is_empty());
    }

    #[test]
    fn a_batch_of_write_ahead_records_is_one_write() {
        let tmp = TempDir::new("batchwrite");
        let mut j = Journal::open(&tmp.0).unwrap();
        let (writes, syncs) = (j.writes(), j.syncs());
        // A plan's batch: 100 creates.
        j.put_items_ahead((0..100).map(|i| item(&format!("u{i}"), "e")))
            .unwrap();
        assert_eq!(j.writes(), writes + 1);
        assert_eq!(j.syncs(), syncs + 1);
        assert_eq!(tmp.read().lines().count(), 1 + 100);
        // A longer list is cut into writes of at most MAX_WRITE_BYTES (and whole lines).
        let before = tmp.read().len();
        j.put_items_ahead((0..2_000).map(|i| item(&format!("v{i}"), "e")))
            .unwrap();
        let bytes = tmp.read().len() - before;
        let batches = (j.writes() - writes - 1) as usize;
        assert!(bytes > 2 * MAX_WRITE_BYTES, "{bytes}");
        assert_eq!(batches, bytes.div_ceil(MAX_WRITE_BYTES), "{bytes} bytes");
        assert_eq!(j.syncs(), syncs + 2);
        // Unchanged records are not written; the group counts records, not writes.
        j.put_items_ahead((0..100).map(|i| item(&format!("u{i}"), "e")))
            .unwrap();
        assert_eq!(j.syncs(), syncs + 2);
        let expected = j.state().clone();
        drop(j);
        assert_eq!(Journal::open_read_only(&tmp.0).unwrap(), expected);
        assert_eq!(expected.items.len(), 2_100);
    }

    /// A journal written before hashes were held as bytes and records shared project ids:
    /// it loads, and compaction writes its records back as they were.
    #[test]
    fn journals_of_earlier_versions_load_unchanged() {
        let tmp = TempDir::new("oldformat");
        fs::create_dir_all(&tmp.0).unwrap();
        let hash = "9544eeccfa0fbcd648b36fcaa01c1494b56676bc8aa22a63d7ea0d88c3613fd5";
        let shadow = |h: &str| {
            format!(
                r#"{{"name":"Write mobile navbar","start_date":null,"target_date":"2027-01-12","state_group":"cancelled","content_hash":"{h}"}}"#
            )
        };
        let line = |uid: &str, h: &str, sent: &str| {
            format!(
                r#"{{"t":"item","uid":"{uid}","work_item":"ffd2d339-df51-4644-9715-c251fa919706","project":"f8cceaf3-fb01-4b94-8f9a-1c5e0f9fe203","href":"/calendars/alice/plane-data/{uid}.ics","etag":"\"e9c9\"","plane_updated_at":"2026-10-31T02:07:04.497400Z","sequence":0,"shadow":{},"sent_to_plane":{sent},"sent_to_calendar":null}}"#,
                shadow(h)
            )
        };
        let records = [
            line("a", hash, "null"),
            line("b", "", &shadow(hash)),
            line("c", &hash.to_uppercase(), "null"),
        ];
        let text = format!("{}\n{}\n", header_line(), records.join("\n"));
        fs::write(tmp.journal(), &text).unwrap();

        let state = Journal::open_read_only(&tmp.0).unwrap();
        let a = &state.items["a"];
        assert_eq!(a.shadow.content_hash.to_hex(), hash);
        assert_eq!(state.items["b"].shadow.content_hash, ContentHash::UNKNOWN);
        let sent = state.items["b"].sent_to_plane.as_deref().unwrap();
        assert_eq!(sent.content_hash, a.shadow.content_hash);
        assert_eq!(state.items["c"].shadow.content_hash, a.shadow.content_hash);
        assert_eq!(a.project, "f8cceaf3-fb01-4b94-8f9a-1c5e0f9fe203");

        let mut j = Journal::open(&tmp.0).unwrap();
        j.compact().unwrap();
        drop(j);
        let lower = line("c", hash, "null");
        let want = [&records[0], &records[1], &lower].map(|l| l.as_str());
        assert_eq!(tmp.read().lines().skip(1).collect::<Vec<_>>(), want);
    }

    #[test]
    fn content_hashes_read_only_their_own_form() {
        let hex = "00ff".repeat(16);
        assert_eq!(ContentHash::from_hex(&hex).to_hex(), hex);
        assert_eq!(ContentHash::from_hex(&hex.to_uppercase()).to_hex(), hex);
        for other in ["", "abc", &hex[1..], &format!("{hex}00"), &"g".repeat(64)] {
            assert_eq!(
                ContentHash::from_hex(other),
                ContentHash::UNKNOWN,
                "{other}"
            );
        }
        assert_eq!(ContentHash::UNKNOWN.to_hex(), "");
        let multibyte = format!("é{}", &hex[2..]);
        assert_eq!(multibyte.len(), 64);
        assert_eq!(ContentHash::from_hex(&multibyte), ContentHash::UNKNOWN);
    }

    #[test]
    fn records_of_a_project_share_its_id() {
        let tmp = TempDir::new("sharedids");
        let mut j = Journal::open(&tmp.0).unwrap();
        for i in 0..4 {
            let mut r = item(&format!("u{i}"), "e");
            r.project = if i % 2 == 0 { "p1" } else { "p2" }.into();
            j.put_item(r).unwrap();
        }
        let shared = |state: &State| {
            let ids: Vec<&ProjectId> = state.items.values().map(|r| &r.project).collect();
            assert_eq!(ids, ["p1", "p2", "p1", "p2"]);
            Arc::ptr_eq(&ids[0].0, &ids[2].0) && Arc::ptr_eq(&ids[1].0, &ids[3].0)
        };
        assert!(shared(j.state()));
        drop(j);
        assert!(shared(&Journal::open_read_only(&tmp.0).unwrap()));
    }

    #[test]
    fn tagged_splices_the_tag_first() {
        assert_eq!(
            tagged("gone", &Gone { uid: "a\"b".into() }),
            r#"{"t":"gone","uid":"a\"b"}"#
        );
    }
}
