//! Progress lines for a long apply step. A first sync of thousands of work items takes
//! minutes (the CalDAV server's speed, one PUT at a time), and without these lines `--once`
//! and the service log would show nothing between one project's line and the next.
//!
//! Every [`INTERVAL`] a step that is still writing logs how far it is: objects written of
//! those to write, the rate so far and the time left at that rate. A step that ends within
//! the interval logs nothing (webhooks, idle cycles); one that logged a progress line also
//! logs a last one with its final count.

use std::time::{Duration, Instant};

/// How often a long apply step logs its progress.
pub const INTERVAL: Duration = Duration::from_secs(5);

/// For tests only: the interval in milliseconds instead of [`INTERVAL`], so a test can see
/// progress lines without a sync that lasts for minutes. Not a setting (not in `config`).
pub const TEST_INTERVAL_VAR: &str = "TEST_PROGRESS_INTERVAL_MS";

/// Longest interval the test variable may set, so a typo cannot silence progress for days.
const MAX_TEST_INTERVAL: Duration = Duration::from_secs(3600);

/// The interval in force: [`INTERVAL`], or what [`TEST_INTERVAL_VAR`] says.
fn interval() -> Duration {
    std::env::var(TEST_INTERVAL_VAR)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_millis)
        .map_or(INTERVAL, |d| d.min(MAX_TEST_INTERVAL))
}

/// Counts one step's writes and logs them now and then. `what` names the step (the
/// project's identifier).
#[derive(Debug)]
pub struct Progress<'a> {
    what: &'a str,
    total: usize,
    done: usize,
    started: Instant,
    next_line: Instant,
    every: Duration,
    shown: bool,
}

impl<'a> Progress<'a> {
    /// A step about to make `total` writes, reporting every [`INTERVAL`].
    pub fn new(what: &'a str, total: usize) -> Progress<'a> {
        Progress::starting_at(what, total, interval(), Instant::now())
    }

    fn starting_at(what: &'a str, total: usize, every: Duration, now: Instant) -> Progress<'a> {
        Progress {
            what,
            total,
            done: 0,
            started: now,
            next_line: now + every,
            every,
            shown: false,
        }
    }

    /// One write done (or failed: it is behind us either way); logs a line when one is due.
    pub fn tick(&mut self) {
        if let Some(line) = self.tick_at(Instant::now()) {
            log::info!("{line}");
        }
    }

    /// Logs the final count, when a progress line was logged before.
    pub fn finish(&self) {
        if let Some(line) = self.finish_at(Instant::now()) {
            log::info!("{line}");
        }
    }

    fn tick_at(&mut self, now: Instant) -> Option<String> {
        self.done = (self.done + 1).min(self.total);
        if now < self.next_line || self.done == self.total {
            return None;
        }
        self.next_line = now + self.every;
        self.shown = true;
        let elapsed = now.saturating_duration_since(self.started);
        let rate = per_second(self.done, elapsed);
        let left = if rate > 0.0 {
            clock(Duration::from_secs_f64(
                (self.total - self.done) as f64 / rate,
            ))
        } else {
            "?".into()
        };
        Some(format!(
            "{}: {} / {} objects written, {rate:.1}/s, about {left} left",
            self.what, self.done, self.total
        ))
    }

    fn finish_at(&self, now: Instant) -> Option<String> {
        if !self.shown {
            return None;
        }
        let elapsed = now.saturating_duration_since(self.started);
        Some(format!(
            "{}: {} / {} objects written in {}, {:.1}/s",
            self.what,
            self.done,
            self.total,
            clock(elapsed),
            per_second(self.done, elapsed)
        ))
    }
}

/// Writes per second over `elapsed` (a zero span counts as a millisecond).
fn per_second(done: usize, elapsed: Duration) -> f64 {
    done as f64 / elapsed.as_secs_f64().max(0.001)
}

/// A duration as people read it: `42 s`, `3 min 05 s`, `1 h 02 min`.
fn clock(d: Duration) -> String {
    let s = d.as_secs_f64().round() as u64;
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min {:02} s", s / 60, s % 60),
        _ => format!("{} h {:02} min", s / 3600, s % 3600 / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_that_ends_within_the_interval_says_nothing() {
        let t0 = Instant::now();
        let mut p = Progress::starting_at("P", 3, INTERVAL, t0);
        for _ in 0..3 {
            assert_eq!(p.tick_at(t0 + Duration::from_secs(1)), None);
        }
        assert_eq!(p.finish_at(t0 + Duration::from_secs(1)), None);
    }

    #[test]
    fn a_long_step_reports_every_interval_and_ends_with_the_total() {
        let t0 = Instant::now();
        let mut p = Progress::starting_at("PROJ", 100, INTERVAL, t0);
        let mut lines = Vec::new();
        // One write every 100 ms: 10 s for the lot.
        for k in 1..=100u64 {
            lines.extend(p.tick_at(t0 + Duration::from_millis(100 * k)));
        }
        assert_eq!(
            lines,
            vec![
                "PROJ: 50 / 100 objects written, 10.0/s, about 5 s left".to_string(),
                // The 100th write ends the step: no progress line, the final one says it.
            ]
        );
        assert_eq!(
            p.finish_at(t0 + Duration::from_secs(10)).unwrap(),
            "PROJ: 100 / 100 objects written in 10 s, 10.0/s"
        );
    }

    #[test]
    fn a_stopped_step_ends_with_what_it_did() {
        let t0 = Instant::now();
        let mut p = Progress::starting_at("P", 2000, INTERVAL, t0);
        for k in 1..=600u64 {
            p.tick_at(t0 + Duration::from_millis(10 * k));
        }
        assert_eq!(
            p.finish_at(t0 + Duration::from_secs(6)).unwrap(),
            "P: 600 / 2000 objects written in 6 s, 100.0/s"
        );
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(clock(Duration::from_millis(400)), "0 s");
        assert_eq!(clock(Duration::from_secs(59)), "59 s");
        assert_eq!(clock(Duration::from_secs(185)), "3 min 05 s");
        assert_eq!(clock(Duration::from_secs(3720)), "1 h 02 min");
    }
}
