//! Logging: stderr by default (journald and `docker logs` add timestamps), or `LOG_FILE`
//! for platforms without a log collector (Synology, OpenWrt), with timestamps and a
//! simple size-based rotation: at [`MAX_BYTES`] the file becomes `LOG_FILE.1` (replacing
//! the previous one) and a new file starts. Two files at most, so a small board's flash
//! cannot fill up.
//!
//! Every message passes through [`escape_controls`] on its way out: names and titles come
//! from Plane and the calendar, and a project called `x\n2026-01-01 ERROR …` must not be
//! able to forge a log line (or send escape sequences to the terminal reading it).

use std::borrow::Cow;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use log::{LevelFilter, Log, Metadata, Record};

/// Size at which the log file is rotated.
pub const MAX_BYTES: u64 = 5 * 1024 * 1024;

/// Our own crates log at the configured level; the HTTP and TLS libraries only warn.
fn wanted(target: &str, level: log::Level, max: LevelFilter) -> bool {
    let quiet = ["ureq", "rustls"].iter().any(|p| target.starts_with(p));
    level
        <= if quiet {
            max.min(LevelFilter::Warn)
        } else {
            max
        }
}

struct FileLogger {
    max: LevelFilter,
    path: PathBuf,
    limit: u64,
    file: Mutex<(File, u64)>,
}

/// Mode of a log file we create: logs name calendars, projects and paths that are nobody
/// else's business.
const LOG_FILE_MODE: u32 = 0o600;

fn open(path: &Path) -> std::io::Result<(File, u64)> {
    let f = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(LOG_FILE_MODE)
        .open(path)?;
    let meta = f.metadata()?;
    // A file from an older version (0644): tighten it too. If that fails (another owner),
    // logging still works; there is no logger yet to say so.
    if meta.permissions().mode() & 0o077 != 0 {
        let _ = f.set_permissions(std::fs::Permissions::from_mode(LOG_FILE_MODE));
    }
    Ok((f, meta.len()))
}

impl Log for FileLogger {
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        wanted(m.target(), m.level(), self.max)
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let line = format!(
            "{} {:<5} [{}] {}\n",
            crate::clock::format_rfc3339(crate::clock::now_unix()),
            record.level(),
            record.target(),
            escape_controls(&record.args().to_string())
        );
        let mut guard = self.file.lock().unwrap_or_else(|e| e.into_inner());
        if guard.1 + line.len() as u64 > self.limit {
            let mut old = self.path.clone().into_os_string();
            old.push(".1");
            // If rotation fails we keep writing to the current file: losing the log is
            // worse than a large one.
            if std::fs::rename(&self.path, &old).is_ok() {
                if let Ok(fresh) = open(&self.path) {
                    *guard = fresh;
                }
            }
        }
        if guard.0.write_all(line.as_bytes()).is_ok() {
            guard.1 += line.len() as u64;
        }
    }

    fn flush(&self) {
        let mut guard = self.file.lock().unwrap_or_else(|e| e.into_inner());
        let _ = guard.0.flush();
    }
}

/// `text` with control characters (C0 including CR/LF, DEL, C1) and the Unicode line and
/// paragraph separators written as `\n`, `\r`, `\t` or `\u{..}`, so that it stays one
/// line and cannot drive a terminal. Text without them is borrowed unchanged.
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    let special = |c: char| c.is_control() || c == '\u{2028}' || c == '\u{2029}';
    if !text.contains(special) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if special(c) => out.push_str(&c.escape_unicode().to_string()),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// The stderr logger (simple_logger's format) behind [`escape_controls`].
struct Escaping(simple_logger::SimpleLogger);

impl Log for Escaping {
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        self.0.enabled(m)
    }

    fn log(&self, record: &Record<'_>) {
        if !self.0.enabled(record.metadata()) {
            return;
        }
        let message = record.args().to_string();
        let escaped = escape_controls(&message);
        self.0.log(
            &Record::builder()
                .args(format_args!("{escaped}"))
                .metadata(record.metadata().clone())
                .module_path(record.module_path())
                .file(record.file())
                .line(record.line())
                .build(),
        );
    }

    fn flush(&self) {
        self.0.flush();
    }
}

/// Sets up logging once per process.
pub fn init(max: LevelFilter, file: Option<&Path>) -> Result<(), String> {
    init_with_limit(max, file, MAX_BYTES)
}

/// [`init`] with another rotation size (tests).
pub fn init_with_limit(max: LevelFilter, file: Option<&Path>, limit: u64) -> Result<(), String> {
    match file {
        None => {
            let logger = simple_logger::SimpleLogger::new()
                .with_level(max)
                .with_module_level("ureq", max.min(LevelFilter::Warn))
                .with_module_level("ureq_proto", max.min(LevelFilter::Warn))
                .with_module_level("rustls", max.min(LevelFilter::Warn));
            let level = logger.max_level();
            if log::set_boxed_logger(Box::new(Escaping(logger))).is_ok() {
                log::set_max_level(level);
            }
        }
        Some(path) => {
            let file =
                open(path).map_err(|e| format!("LOG_FILE: cannot open {}: {e}", path.display()))?;
            let logger = FileLogger {
                max,
                path: path.to_path_buf(),
                limit,
                file: Mutex::new(file),
            };
            if log::set_boxed_logger(Box::new(logger)).is_ok() {
                log::set_max_level(max);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_at_the_limit_and_keeps_two_files() {
        let dir = std::env::temp_dir().join(format!("cpb-log-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("calplanebot.log");
        let logger = FileLogger {
            max: LevelFilter::Info,
            path: path.clone(),
            limit: 1000,
            file: Mutex::new(open(&path).unwrap()),
        };
        for i in 0..100 {
            logger.log(
                &Record::builder()
                    .args(format_args!("line {i:03} with some padding to fill"))
                    .level(log::Level::Info)
                    .target("calplanebot::test")
                    .build(),
            );
        }
        logger.log(
            &Record::builder()
                .args(format_args!("debug noise"))
                .level(log::Level::Debug)
                .target("calplanebot::test")
                .build(),
        );
        let current = std::fs::read_to_string(&path).unwrap();
        let rotated = std::fs::read_to_string(dir.join("calplanebot.log.1")).unwrap();
        assert!(current.len() <= 1000 && rotated.len() <= 1000);
        assert!(current.contains("line 099") && !current.contains("debug noise"));
        assert!(current
            .lines()
            .all(|l| l.contains(" INFO  [calplanebot::test] line ")));
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 2);
        for f in [&path, &dir.join("calplanebot.log.1")] {
            let mode = std::fs::metadata(f).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", f.display());
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn existing_log_file_is_tightened() {
        let dir = std::env::temp_dir().join(format!("cpb-log-mode-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("old.log");
        std::fs::write(&path, "old\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let (_, len) = open(&path).unwrap();
        assert_eq!(len, 4);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn control_characters_are_escaped() {
        assert!(matches!(escape_controls("plain ✔ text"), Cow::Borrowed(_)));
        assert_eq!(
            escape_controls("a\r\nERROR forged\u{1b}[2J\u{7}\u{0}\u{7f}\u{9b}\u{2028}\tb"),
            "a\\r\\nERROR forged\\u{1b}[2J\\u{7}\\u{0}\\u{7f}\\u{9b}\\u{2028}\\tb"
        );
        let logger = FileLogger {
            max: LevelFilter::Info,
            path: std::env::temp_dir().join(format!("cpb-log-esc-{}", std::process::id())),
            limit: MAX_BYTES,
            file: Mutex::new(
                open(&std::env::temp_dir().join(format!("cpb-log-esc-{}", std::process::id())))
                    .unwrap(),
            ),
        };
        logger.log(
            &Record::builder()
                .args(format_args!(
                    "project {}",
                    "x\n2026-01-01T00:00:00Z ERROR [calplanebot] forged"
                ))
                .level(log::Level::Info)
                .target("calplanebot::test")
                .build(),
        );
        let text = std::fs::read_to_string(&logger.path).unwrap();
        std::fs::remove_file(&logger.path).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.contains("project x\\n2026"), "{text}");
    }
}
