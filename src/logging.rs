//! Logging: stderr by default (journald and `docker logs` add timestamps), or `LOG_FILE`
//! for platforms without a log collector (Synology, OpenWrt), with timestamps and a
//! simple size-based rotation: at [`MAX_BYTES`] the file becomes `LOG_FILE.1` (replacing
//! the previous one) and a new file starts. Two files at most, so a small board's flash
//! cannot fill up.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use log::{LevelFilter, Log, Metadata, Record};

/// Size at which the log file is rotated.
pub const MAX_BYTES: u64 = 5 * 1024 * 1024;

/// Our own crates log at the configured level; the HTTP and TLS libraries only warn.
fn wanted(target: &str, level: log::Level, max: LevelFilter) -> bool {
    let quiet = ["ureq", "rustls", "tiny_http"]
        .iter()
        .any(|p| target.starts_with(p));
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

fn open(path: &Path) -> std::io::Result<(File, u64)> {
    let f = OpenOptions::new().create(true).append(true).open(path)?;
    let len = f.metadata()?.len();
    Ok((f, len))
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
            record.args()
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

/// Sets up logging once per process.
pub fn init(max: LevelFilter, file: Option<&Path>) -> Result<(), String> {
    init_with_limit(max, file, MAX_BYTES)
}

/// [`init`] with another rotation size (tests).
pub fn init_with_limit(max: LevelFilter, file: Option<&Path>, limit: u64) -> Result<(), String> {
    match file {
        None => {
            let _ = simple_logger::SimpleLogger::new()
                .with_level(max)
                .with_module_level("ureq", max.min(LevelFilter::Warn))
                .with_module_level("ureq_proto", max.min(LevelFilter::Warn))
                .with_module_level("rustls", max.min(LevelFilter::Warn))
                .with_module_level("tiny_http", max.min(LevelFilter::Warn))
                .init();
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
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
