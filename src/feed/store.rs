//! The feed files under `STATE_DIR/feeds/` and the index the HTTP thread serves them from.
//!
//! Why files and not memory: a 2,000-item feed is about 1.2 MB of text, twice that with
//! `all.ics`; held in memory that would be the largest thing in the process on a 512 MB
//! board. On disk it costs nothing until fetched, is streamed from the page cache in
//! small chunks, and survives a restart (the first fetch after it needs no Plane
//! request). A file is replaced only when its content changes (written to a temporary
//! file, synced, renamed), so an idle cycle writes nothing to the SD card. `all.ics` is
//! not a file: it is streamed as a header plus the bodies of the project files.
//!
//! The index (digest, length, time of the last change per file) is shared with the HTTP
//! thread behind one mutex; a file is renamed and its entry updated under that mutex, and
//! the HTTP thread opens the files under it, so an answer's ETag always matches its body
//! (an open file keeps its content when a newer one is renamed over it).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use super::render::{read_feed, Block, Digest4, Header, FOOTER};

/// Feed files are readable by calplanebot only (they are served through it).
const FILE_MODE: u32 = 0o600;
/// The name `all.ics` is served under; a project with this slug gets [`ALL_CLASH`].
pub const ALL: &str = "all";
/// The slug of a project whose identifier is `ALL` (which would hide `all.ics`).
const ALL_CLASH: &str = "all-project";

/// The file-name stem (and URL name) of a project's feed: its identifier in lower case,
/// anything but letters, digits, `-` and `_` replaced by `-`.
pub fn slug_of(identifier: &str) -> String {
    let s: String = identifier
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if s == ALL {
        ALL_CLASH.to_string()
    } else {
        s
    }
}

/// What the index knows of one feed file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    /// Order-independent digest of the content (header without the watermark, blocks).
    pub digest: Digest4,
    /// When the content last changed.
    pub modified: SystemTime,
    /// File length in bytes.
    pub len: u64,
    /// Bytes of the header (the body starts there).
    pub header_len: u64,
    /// Work items in it.
    pub items: usize,
    /// The mapping it was made with.
    pub fingerprint: Option<String>,
    /// How far Plane was listed for it.
    pub watermark: Option<String>,
}

/// The feeds as served: shared by the sync loop (writer) and the HTTP thread (reader).
#[derive(Debug)]
pub struct Index {
    dir: PathBuf,
    feeds: BTreeMap<String, Meta>,
    /// The header of `all.ics`.
    all_header: String,
    /// False until the first cycle wrote the feeds (or files from an earlier run exist).
    ready: bool,
}

/// A feed opened for one answer: the files are open, so later renames do not change it.
#[derive(Debug)]
pub struct Opened {
    /// Weak ETag.
    pub etag: String,
    /// Last-Modified.
    pub modified: SystemTime,
    /// Text before the files (the `all.ics` header), empty for a project feed.
    pub prefix: String,
    /// (file, offset, length) to send in order.
    pub files: Vec<(File, u64, u64)>,
    /// Text after the files ([`FOOTER`] for `all.ics`).
    pub suffix: &'static str,
}

impl Opened {
    /// The body length.
    pub fn len(&self) -> u64 {
        self.prefix.len() as u64
            + self.files.iter().map(|f| f.2).sum::<u64>()
            + self.suffix.len() as u64
    }

    /// Whether the body is empty (never, for a feed).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Why a feed cannot be answered.
#[derive(Debug, PartialEq, Eq)]
pub enum Missing {
    /// No such feed.
    NotFound,
    /// The first cycle has not written the feeds yet.
    NotReady,
}

impl Index {
    fn path(&self, slug: &str) -> PathBuf {
        self.dir.join(format!("{slug}.ics"))
    }

    /// Opens the feed `name` (a slug or [`ALL`]) for an answer.
    pub fn open(&self, name: &str) -> Result<Opened, Missing> {
        if !self.ready {
            return Err(Missing::NotReady);
        }
        if name == ALL {
            return self.open_all();
        }
        let meta = self.feeds.get(name).ok_or(Missing::NotFound)?;
        let file = File::open(self.path(name)).map_err(|_| Missing::NotFound)?;
        Ok(Opened {
            etag: meta.digest.etag(),
            modified: meta.modified,
            prefix: String::new(),
            files: vec![(file, 0, meta.len)],
            suffix: "",
        })
    }

    /// `all.ics`: its own header, the body of every project feed, the footer.
    fn open_all(&self) -> Result<Opened, Missing> {
        let mut digest = Digest4::default();
        digest.add(&self.all_header);
        let mut modified = SystemTime::UNIX_EPOCH;
        let mut files = Vec::new();
        for (slug, meta) in &self.feeds {
            let file = File::open(self.path(slug)).map_err(|_| Missing::NotFound)?;
            let body = meta.len - meta.header_len - FOOTER.len() as u64;
            files.push((file, meta.header_len, body));
            digest.combine(&meta.digest);
            modified = modified.max(meta.modified);
        }
        Ok(Opened {
            etag: digest.etag(),
            modified,
            prefix: self.all_header.clone(),
            files,
            suffix: FOOTER,
        })
    }

    /// The slugs served, with their item counts.
    pub fn list(&self) -> Vec<(String, usize)> {
        self.feeds
            .iter()
            .map(|(s, m)| (s.clone(), m.items))
            .collect()
    }
}

/// The handle the HTTP thread keeps.
#[derive(Debug, Clone)]
pub struct Shared(Arc<Mutex<Index>>);

impl Shared {
    /// The index, locked. A poisoned lock only means a panic elsewhere mid-update; the
    /// entries are replaced whole, so they are still consistent.
    pub fn lock(&self) -> MutexGuard<'_, Index> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The feed files: written by the sync loop.
#[derive(Debug)]
pub struct FeedStore {
    dir: PathBuf,
    shared: Shared,
}

impl FeedStore {
    /// Opens `dir` (creating it), drops unfinished temporary files, and indexes the feeds
    /// an earlier run left (a file that is not a whole feed of ours is deleted).
    pub fn open(dir: &Path, all_header: String) -> io::Result<FeedStore> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let mut feeds = BTreeMap::new();
        for entry in fs::read_dir(dir)? {
            let path = entry?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.ends_with(".tmp") {
                let _ = fs::remove_file(&path);
                continue;
            }
            let Some(slug) = name.strip_suffix(".ics") else {
                continue;
            };
            match index_file(&path)? {
                Some(meta) => {
                    feeds.insert(slug.to_string(), meta);
                }
                None => {
                    log::warn!("{}: not a whole feed; removed", path.display());
                    let _ = fs::remove_file(&path);
                }
            }
        }
        let ready = !feeds.is_empty();
        let index = Index {
            dir: dir.to_path_buf(),
            feeds,
            all_header,
            ready,
        };
        Ok(FeedStore {
            dir: dir.to_path_buf(),
            shared: Shared(Arc::new(Mutex::new(index))),
        })
    }

    /// The handle for the HTTP thread.
    pub fn shared(&self) -> Shared {
        self.shared.clone()
    }

    /// What the index knows of a feed.
    pub fn meta(&self, slug: &str) -> Option<Meta> {
        self.shared.lock().feeds.get(slug).cloned()
    }

    /// Marks the feeds as written (fetches before the first cycle get 503).
    pub fn set_ready(&self) {
        self.shared.lock().ready = true;
    }

    /// Deletes the feeds of projects no longer selected.
    pub fn retain(&self, slugs: &BTreeSet<String>) {
        let mut index = self.shared.lock();
        let gone: Vec<String> = index
            .feeds
            .keys()
            .filter(|s| !slugs.contains(*s))
            .cloned()
            .collect();
        for slug in gone {
            log::info!("feed {slug}.ics: project no longer selected; removed");
            let _ = fs::remove_file(index.path(&slug));
            index.feeds.remove(&slug);
        }
    }

    /// A writer of a new version of the feed `slug`.
    pub fn writer(&self, slug: &str) -> io::Result<FeedWriter> {
        let tmp = self.dir.join(format!(".{slug}.ics.tmp"));
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(FILE_MODE)
            .open(&tmp)?;
        Ok(FeedWriter {
            slug: slug.to_string(),
            tmp,
            out: BufWriter::new(file),
            digest: Digest4::default(),
            len: 0,
            header: None,
            items: 0,
        })
    }

    /// Whether putting `changed` (UID → new block, `None`: gone) into the feed `slug`
    /// would change it. One read of the file, no write: an incremental listing re-lists
    /// the item at the watermark every cycle, which must not rewrite the file.
    pub fn differs(
        &self,
        slug: &str,
        changed: &BTreeMap<String, Option<Block>>,
    ) -> io::Result<bool> {
        let path = self.dir.join(format!("{slug}.ics"));
        let mut seen = BTreeSet::new();
        let mut differs = false;
        let head = read_feed(BufReader::new(File::open(path)?), &mut |b| {
            if let Some(new) = changed.get(&b.uid) {
                seen.insert(b.uid.clone());
                differs |= new.as_ref().is_none_or(|n| n.text != b.text);
            }
        })?;
        let added = changed
            .iter()
            .any(|(uid, b)| b.is_some() && !seen.contains(uid));
        Ok(head.is_none() || differs || added)
    }

    /// The UIDs of the blocks in the feed `slug` for which `keep` is true (one read of
    /// the file; an incremental refresh uses it to drop cycles and modules Plane no
    /// longer lists).
    pub fn uids(&self, slug: &str, keep: &dyn Fn(&str) -> bool) -> io::Result<Vec<String>> {
        let path = self.dir.join(format!("{slug}.ics"));
        let mut uids = Vec::new();
        read_feed(BufReader::new(File::open(path)?), &mut |b| {
            if keep(&b.uid) {
                uids.push(b.uid);
            }
        })?;
        Ok(uids)
    }

    /// A new version of the feed `slug`: `header`, the blocks in `changed`, then the
    /// blocks of the current file that `changed` does not name.
    pub fn patch(
        &self,
        slug: &str,
        header: &Header,
        changed: &BTreeMap<String, Option<Block>>,
    ) -> io::Result<Change> {
        let mut w = self.writer(slug)?;
        w.start(header)?;
        for b in changed.values().flatten() {
            w.push(b)?;
        }
        let path = self.dir.join(format!("{slug}.ics"));
        let mut failed = None;
        let head = read_feed(BufReader::new(File::open(path)?), &mut |b| {
            if failed.is_none() && !changed.contains_key(&b.uid) {
                failed = w.push(&b).err();
            }
        })?;
        if let Some(e) = failed {
            w.abandon();
            return Err(e);
        }
        if head.is_none() {
            w.abandon();
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("feed {slug}.ics is damaged"),
            ));
        }
        w.commit(self)
    }
}

/// What writing a feed changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The content changed (new ETag and Last-Modified).
    Content,
    /// Only the watermark moved (the file was replaced, the ETag stays).
    Watermark,
    /// Nothing: the old file stays.
    None,
}

/// A new version of one feed, written to a temporary file.
#[derive(Debug)]
pub struct FeedWriter {
    slug: String,
    tmp: PathBuf,
    out: BufWriter<File>,
    digest: Digest4,
    len: u64,
    header: Option<(Header, u64)>,
    items: usize,
}

impl FeedWriter {
    /// Writes the header (the first call only: the sink of a listing starts the feed
    /// when it sees the first, newest, item, whose time is the watermark).
    pub fn start(&mut self, header: &Header) -> io::Result<()> {
        if self.header.is_some() {
            return Ok(());
        }
        let text = header.to_text();
        self.out.write_all(text.as_bytes())?;
        self.len += text.len() as u64;
        // The watermark is bookkeeping, not content: it does not change the ETag.
        let content = Header {
            watermark: None,
            ..header.clone()
        };
        self.digest.add(&content.to_text());
        self.header = Some((header.clone(), text.len() as u64));
        Ok(())
    }

    /// Whether [`FeedWriter::start`] was called.
    pub fn started(&self) -> bool {
        self.header.is_some()
    }

    /// Appends a block (after the header).
    pub fn push(&mut self, b: &Block) -> io::Result<()> {
        self.out.write_all(b.text.as_bytes())?;
        self.len += b.text.len() as u64;
        self.digest.add(&b.text);
        self.items += 1;
        Ok(())
    }

    /// Work items written so far.
    pub fn items(&self) -> usize {
        self.items
    }

    /// Drops the temporary file.
    pub fn abandon(self) {
        let _ = fs::remove_file(&self.tmp);
    }

    /// Finishes the file and puts it in place, unless the feed already has exactly this
    /// content and watermark. [`FeedWriter::start`] must have been called.
    pub fn commit(mut self, store: &FeedStore) -> io::Result<Change> {
        let Some((header, header_len)) = self.header.take() else {
            self.abandon();
            return Err(io::Error::other("feed written without a header"));
        };
        self.out.write_all(FOOTER.as_bytes())?;
        self.len += FOOTER.len() as u64;
        let file = self.out.into_inner().map_err(|e| e.into_error())?;
        let mut index = store.shared.lock();
        let old = index.feeds.get(&self.slug);
        let same_content = old.is_some_and(|o| {
            o.digest == self.digest && o.fingerprint.as_ref() == Some(&header.fingerprint)
        });
        if same_content && old.is_some_and(|o| o.watermark == header.watermark) {
            drop(index);
            let _ = fs::remove_file(&self.tmp);
            return Ok(Change::None);
        }
        // Durable before it replaces the old file: a power cut leaves one or the other.
        file.sync_data()?;
        // Last-Modified is the file's mtime (what a restart reads back); a file whose
        // content did not change keeps the old one.
        let modified = match old {
            Some(o) if same_content => {
                file.set_modified(o.modified)?;
                o.modified
            }
            _ => file.metadata()?.modified()?,
        };
        let path = index.path(&self.slug);
        fs::rename(&self.tmp, &path)?;
        index.feeds.insert(
            self.slug.clone(),
            Meta {
                digest: self.digest,
                modified,
                len: self.len,
                header_len,
                items: self.items,
                fingerprint: Some(header.fingerprint),
                watermark: header.watermark,
            },
        );
        Ok(if same_content {
            Change::Watermark
        } else {
            Change::Content
        })
    }
}

/// Reads a feed file left by an earlier run into its index entry; `None` when it is not a
/// whole feed of ours.
fn index_file(path: &Path) -> io::Result<Option<Meta>> {
    let file = File::open(path)?;
    let modified = file
        .metadata()?
        .modified()
        .unwrap_or_else(|_| SystemTime::now());
    let len = file.metadata()?.len();
    let mut digest = Digest4::default();
    let mut items = 0;
    let Some(head) = read_feed(BufReader::new(file), &mut |b| {
        digest.add(&b.text);
        items += 1;
    })?
    else {
        return Ok(None);
    };
    digest.add(&head.content_header);
    Ok(Some(Meta {
        digest,
        modified,
        len,
        header_len: head.header_len,
        items,
        fingerprint: head.fingerprint,
        watermark: head.watermark,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn header(w: Option<&str>) -> Header {
        Header {
            name: "Plane: Web".into(),
            refresh_seconds: 60,
            fingerprint: "f1".into(),
            watermark: w.map(String::from),
        }
    }

    fn block(uid: &str, summary: &str) -> Block {
        Block {
            uid: uid.into(),
            text: format!("BEGIN:VEVENT\r\nUID:{uid}\r\nSUMMARY:{summary}\r\nEND:VEVENT\r\n"),
        }
    }

    fn read(o: Opened) -> String {
        let mut s = o.prefix.clone();
        for (f, off, len) in o.files {
            let mut buf = vec![0u8; len as usize];
            std::os::unix::fs::FileExt::read_exact_at(&f, &mut buf, off).unwrap();
            s.push_str(std::str::from_utf8(&buf).unwrap());
        }
        s + o.suffix
    }

    #[test]
    fn write_patch_serve_and_reopen() {
        let dir = std::env::temp_dir().join(format!("cpb-feedstore-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let all = header(None).to_text();
        let store = FeedStore::open(&dir, all.clone()).unwrap();
        assert_eq!(
            store.shared().lock().open("web").unwrap_err(),
            Missing::NotReady
        );
        let mut w = store.writer("web").unwrap();
        w.start(&header(Some("t1"))).unwrap();
        w.push(&block("a", "A")).unwrap();
        w.push(&block("b", "B")).unwrap();
        assert_eq!(w.commit(&store).unwrap(), Change::Content);
        store.set_ready();
        let first = store.meta("web").unwrap();
        assert_eq!(first.items, 2);
        let text = read(store.shared().lock().open("web").unwrap());
        assert!(text.contains("UID:a\r\n") && text.ends_with(FOOTER));

        // The same items listed in another order, a new watermark: same ETag.
        let mut w = store.writer("web").unwrap();
        w.start(&header(Some("t2"))).unwrap();
        w.push(&block("b", "B")).unwrap();
        w.push(&block("a", "A")).unwrap();
        assert_eq!(w.commit(&store).unwrap(), Change::Watermark);
        assert_eq!(store.meta("web").unwrap().digest, first.digest);
        assert_eq!(store.meta("web").unwrap().modified, first.modified);

        let mut changed = BTreeMap::new();
        changed.insert("a".to_string(), Some(block("a", "A")));
        assert!(!store.differs("web", &changed).unwrap(), "same block");
        changed.insert("b".to_string(), None);
        changed.insert("c".to_string(), Some(block("c", "C")));
        assert!(store.differs("web", &changed).unwrap());
        assert_eq!(
            store.patch("web", &header(Some("t3")), &changed).unwrap(),
            Change::Content
        );
        let text = read(store.shared().lock().open("web").unwrap());
        assert!(text.contains("UID:c\r\n") && !text.contains("UID:b\r\n"));
        assert_eq!(store.meta("web").unwrap().items, 2);

        // all.ics: its own header, the project bodies, one footer.
        let all_text = read(store.shared().lock().open(ALL).unwrap());
        assert!(all_text.starts_with(&all));
        assert_eq!(all_text.matches("BEGIN:VCALENDAR").count(), 1);
        assert_eq!(all_text.matches("BEGIN:VEVENT").count(), 2);

        // A restart indexes the same file to the same entry.
        let meta = store.meta("web").unwrap();
        drop(store);
        fs::write(dir.join(".x.ics.tmp"), "half").unwrap();
        fs::write(dir.join("broken.ics"), "BEGIN:VCALENDAR\r\n").unwrap();
        let again = FeedStore::open(&dir, all).unwrap();
        assert_eq!(again.meta("web").unwrap(), meta);
        assert!(again.meta("broken").is_none() && !dir.join("broken.ics").exists());
        assert!(!dir.join(".x.ics.tmp").exists());
        let mut f = File::open(dir.join("web.ics")).unwrap();
        let mut s = String::new();
        f.read_to_string(&mut s).unwrap();
        assert!(s.contains("X-CALPLANEBOT-WATERMARK:t3\r\n"));
        again.retain(&BTreeSet::new());
        assert!(!dir.join("web.ics").exists());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn slugs() {
        assert_eq!(slug_of("WEB"), "web");
        assert_eq!(slug_of("ALL"), "all-project");
        assert_eq!(slug_of("A/B"), "a-b");
    }
}
