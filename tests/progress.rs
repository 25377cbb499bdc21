//! Progress lines of a long first sync: the real binary against the fake Plane and real
//! Radicale, with the progress interval shortened through its test-only variable so that a
//! sync of a few dozen events lasts longer than it.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{server, DeleteCalendars, Setup};

/// The test-only variable of src/sync/progress.rs.
const INTERVAL_VAR: &str = "TEST_PROGRESS_INTERVAL_MS";

/// One progress line of a project: objects written, to write, and whether it is the last.
#[derive(Debug, PartialEq)]
struct Line {
    done: usize,
    total: usize,
    last: bool,
}

/// The progress lines logged for project `ident`, in order.
fn progress_of(log: &str, ident: &str) -> Vec<Line> {
    let head = format!("] {ident}: ");
    log.lines()
        .filter_map(|l| l.split_once(&head).map(|(_, rest)| rest))
        .filter(|rest| rest.contains(" objects written"))
        .map(|rest| {
            let (counts, tail) = rest.split_once(" objects written").unwrap();
            let (done, total) = counts.split_once(" / ").unwrap();
            let last = tail.starts_with(" in ");
            if last {
                assert!(tail.ends_with("/s"), "{rest}");
            } else {
                assert!(
                    tail.contains("/s, about ") && tail.ends_with(" left"),
                    "{rest}"
                );
            }
            Line {
                done: done.parse().unwrap(),
                total: total.parse().unwrap(),
                last,
            }
        })
        .collect()
}

/// Checks one project's lines: the same total, counts rising, the last line last and
/// complete. Returns the total.
fn check_project(log: &str, ident: &str) -> usize {
    let lines = progress_of(log, ident);
    assert!(
        lines.len() >= 2,
        "{ident}: progress and a last line:\n{log}"
    );
    let total = lines[0].total;
    assert!(total > 0);
    for pair in lines.windows(2) {
        assert!(
            pair[0].done < pair[1].done,
            "{ident}: counts rise: {lines:?}"
        );
    }
    let (last, progress) = lines.split_last().unwrap();
    assert_eq!(
        *last,
        Line {
            done: total,
            total,
            last: true
        },
        "{ident}: {lines:?}"
    );
    for l in progress {
        assert!(
            l.total == total && l.done < total && !l.last,
            "{ident}: {lines:?}"
        );
    }
    total
}

#[test]
fn a_long_first_sync_logs_its_progress_and_an_idle_one_does_not() {
    let radicale = server("Radicale", "RADICALE");
    let mut s = Setup::new(radicale.clone(), &[24, 16]);
    let _cleanup = DeleteCalendars(radicale, s.tag.clone());
    s.env.push((INTERVAL_VAR.into(), "1".into()));
    let r = s.sync();
    r.assert_ok();
    let idents = identifiers(&s);
    let written: usize = idents.iter().map(|i| check_project(&r.stderr, i)).sum();
    assert_eq!(written, r.count("Created"), "{}", r.stdout);
    let events: usize = s.dump().iter().map(|c| c.objects.len()).sum();
    assert_eq!(events, written);

    // Nothing to write: no progress, however short the interval.
    let again = s.sync();
    again.assert_ok();
    assert!(
        !again.stderr.contains(" objects written"),
        "{}",
        again.stderr
    );
}

fn identifiers(s: &Setup) -> Vec<String> {
    s.fake
        .world()
        .projects
        .iter()
        .map(|p| p.identifier.clone())
        .collect()
}

/// Kills the service when the test ends, however it ends.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_service_logs_the_progress_of_its_first_sync() {
    let radicale = server("Radicale", "RADICALE");
    let s = Setup::new(radicale.clone(), &[24]);
    let _cleanup = DeleteCalendars(radicale, s.tag.clone());
    let log = s.state.with_extension("service.log");
    let _service = Killed(
        Command::new(env!("CARGO_BIN_EXE_calplanebot"))
            .arg("run")
            .env_clear()
            .envs(s.vars())
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HTTP_BIND", "")
            .env("SYNC_INTERVAL_SECONDS", "3600")
            .env(INTERVAL_VAR, "1")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let ident = &identifiers(&s)[0];
    // Wait (not a timed assertion: the deadline only bounds a hang) for the cycle's end.
    let until = Instant::now() + Duration::from_secs(120);
    let text = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("sync: ") && text.contains(" created, ") {
            break text;
        }
        assert!(Instant::now() < until, "no finished cycle:\n{text}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = std::fs::remove_file(&log);
    let written = check_project(&text, ident);
    assert_eq!(written, s.calendar(0).objects.len());
    assert!(
        text.contains(&format!("sync: {written} created, ")),
        "{text}"
    );
}
