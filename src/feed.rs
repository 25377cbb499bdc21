//! Read-only iCalendar feeds (`/calendars/{project}.ics`, `/calendars/all.ics`): the same
//! objects the CalDAV sync writes, for calendar apps to subscribe to. Without CALDAV_URL
//! they are calplanebot's only output.
//!
//! [`render`] makes the text (pure), [`store`] keeps it in files under `STATE_DIR/feeds/`
//! and indexes them for the HTTP thread, [`refresh`] brings them up to date from Plane
//! once per cycle and per webhook. A fetch is answered from the files: it costs no Plane
//! request.

pub mod refresh;
pub mod render;
pub mod store;

use std::path::PathBuf;

use crate::config::Config;
use crate::plane::Project;

pub use refresh::Feeds;

/// Where the feed files live.
pub fn dir(config: &Config) -> PathBuf {
    config.state_dir.join("feeds")
}

/// The header of `all.ics`.
pub fn all_header(config: &Config) -> String {
    render::Header {
        name: format!("Plane: {} (all projects)", config.plane_workspace_slug),
        refresh_seconds: config.sync_interval_seconds,
        fingerprint: "all".into(),
        watermark: None,
    }
    .to_text()
}

/// The address calendar apps use: PUBLIC_URL, else `http://{HTTP_BIND}` with a wildcard
/// address replaced by `host` (this machine's name). `None` without an HTTP server.
pub fn base_url(config: &Config, host: &str) -> Option<String> {
    if let Some(u) = &config.public_url {
        return Some(u.clone());
    }
    let bind = config.http_bind.as_deref()?;
    let (addr, port) = bind.rsplit_once(':')?;
    let addr = match addr {
        "0.0.0.0" | "" | "[::]" => host,
        a => a,
    };
    Some(format!("http://{addr}:{port}"))
}

/// The feed URLs to paste into a calendar app, token included: `all.ics` first, then one
/// per project, each with a label. Empty when the feeds are off.
pub fn urls(config: &Config, projects: &[Project], host: &str) -> Vec<(String, String)> {
    let (Some(token), Some(base)) = (&config.feed_token, base_url(config, host)) else {
        return Vec::new();
    };
    let url = |slug: &str| format!("{base}/calendars/{slug}.ics?token={}", token.expose());
    let mut out = vec![("all projects".to_string(), url(store::ALL))];
    for p in projects {
        out.push((
            format!("{} ({})", p.name, p.identifier),
            url(&store::slug_of(&p.identifier)),
        ));
    }
    out
}

/// This machine's host name (for URLs when HTTP_BIND listens on every address).
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Env;

    fn config(extra: &[(&str, &str)]) -> Config {
        let mut v = vec![
            ("PLANE_BASE_URL", "https://plane.example.com"),
            ("PLANE_API_TOKEN", "t"),
            ("PLANE_WORKSPACE_SLUG", "acme"),
            ("FEED_TOKEN", "abcdefghijklmnop1234"),
        ];
        v.extend_from_slice(extra);
        Config::from_env(&Env::from_pairs(v)).unwrap()
    }

    #[test]
    fn urls_use_public_url_or_the_bind_address() {
        let p = Project {
            id: "p".into(),
            identifier: "WEB".into(),
            name: "Website".into(),
        };
        let u = urls(&config(&[]), std::slice::from_ref(&p), "pi");
        assert_eq!(
            u[0].1,
            "http://pi:8765/calendars/all.ics?token=abcdefghijklmnop1234"
        );
        assert_eq!(
            u[1].1,
            "http://pi:8765/calendars/web.ics?token=abcdefghijklmnop1234"
        );
        let c = config(&[("PUBLIC_URL", "https://cal.example.com/x/")]);
        assert!(urls(&c, &[p], "pi")[1]
            .1
            .starts_with("https://cal.example.com/x/calendars/web.ics?token="));
        let c = config(&[("HTTP_BIND", "192.168.1.2:9000")]);
        assert_eq!(base_url(&c, "pi").unwrap(), "http://192.168.1.2:9000");
    }
}
