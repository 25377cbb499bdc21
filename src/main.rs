//! The `calplanebot` command line.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use calplanebot::caldav::{CalDavClient, Precondition, WriteOutcome};
use calplanebot::config::{Config, Env};
use calplanebot::logging::escape_controls as shown;
use calplanebot::plane::PlaneClient;
use calplanebot::state::Journal;
use calplanebot::sync::{self, model, Summary};
use calplanebot::{clock, ical};

const HELP: &str = "\
calplanebot — keeps Plane work items and CalDAV calendars in sync

USAGE:
    calplanebot [OPTIONS] [COMMAND]

COMMANDS:
    run                 Sync every SYNC_INTERVAL_SECONDS until stopped (the default)
    sync, --once        Sync once and print Created/Updated/Deleted counts
    sync-status         Show what the state journal knows (works while a daemon runs)
    status              Ask the running service (HTTP_BIND) how it is
    diagnostics         Test Plane, CalDAV and the running service; exit 0 if all work
    list                List the events in the Plane calendars: \"[PA-1] title (date)\"
    test-caldav         Check the CalDAV login and list the calendars
    test-plane          Check the Plane token and list the projects
    config              Show the effective configuration (secrets masked)
    validate-config     Check the configuration and exit 0 if it is usable
    create-event TITLE  Put a test event into a project's calendar
                        [--date YYYY-MM-DD] [--project IDENTIFIER]
    feed-urls           Print the .ics feed URLs to subscribe to (FEED_TOKEN included)

OPTIONS:
    --dry-run           With sync: print what would change, write nothing
    --full              With sync: list every work item (not only those changed since
                        the last cycle); finds items deleted or archived in Plane
    --env-file PATH     Read variables from PATH instead of ./.env
    -h, --help          Show this help
    -V, --version       Show the version

Configuration comes from environment variables (see README.md and env.example).
";

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(message) => {
            // One line, whatever a server or a name put into the message.
            eprintln!("calplanebot: {}", shown(&message));
            ExitCode::FAILURE
        }
    }
}

struct Cli {
    command: String,
    dry_run: bool,
    full: bool,
    env_file: Option<PathBuf>,
    date: Option<String>,
    project: Option<String>,
    title: Option<String>,
}

/// The commands `parse_cli` accepts.
const COMMANDS: &[&str] = &[
    "run",
    "sync",
    "sync-status",
    "list",
    "test-caldav",
    "test-plane",
    "config",
    "validate-config",
    "create-event",
    "status",
    "diagnostics",
    "feed-urls",
];

fn parse_cli() -> Result<Option<Cli>, String> {
    let mut args = pico_args::Arguments::from_env();
    if args.contains(["-h", "--help"]) {
        print!("{HELP}");
        return Ok(None);
    }
    if args.contains(["-V", "--version"]) {
        println!("calplanebot {}", env!("CARGO_PKG_VERSION"));
        return Ok(None);
    }
    let once = args.contains("--once");
    let dry_run = args.contains("--dry-run");
    let full = args.contains("--full");
    let bad = |e: pico_args::Error| format!("{e} (see --help)");
    let env_file: Option<PathBuf> = args.opt_value_from_str("--env-file").map_err(bad)?;
    let date: Option<String> = args.opt_value_from_str("--date").map_err(bad)?;
    let project: Option<String> = args.opt_value_from_str("--project").map_err(bad)?;
    let mut command = args
        .subcommand()
        .map_err(bad)?
        .unwrap_or_else(|| "run".into());
    if once {
        command = "sync".into();
    }
    if !COMMANDS.contains(&command.as_str()) {
        return Err(format!("unknown command {command:?} (see --help)"));
    }
    // A flag the command would ignore is a mistake worth saying (a `--dry-run` that
    // silently started the real loop would be a nasty surprise).
    if dry_run && command != "sync" {
        return Err(format!(
            "--dry-run only goes with sync or --once, not {command}"
        ));
    }
    if full && command != "sync" {
        return Err(format!(
            "--full only goes with sync or --once, not {command}"
        ));
    }
    if (date.is_some() || project.is_some()) && command != "create-event" {
        return Err("--date and --project only go with create-event".to_string());
    }
    let title = if command == "create-event" {
        Some(
            args.free_from_str::<String>()
                .map_err(|_| "create-event needs a TITLE (see --help)".to_string())?,
        )
    } else {
        None
    };
    let rest = args.finish();
    if !rest.is_empty() {
        return Err(format!(
            "unexpected argument {:?} (see --help)",
            rest[0].to_string_lossy()
        ));
    }
    Ok(Some(Cli {
        command,
        dry_run,
        full,
        env_file,
        date,
        project,
        title,
    }))
}

fn run() -> Result<ExitCode, String> {
    let Some(cli) = parse_cli()? else {
        return Ok(ExitCode::SUCCESS);
    };
    let env = Env::load(cli.env_file.as_deref()).map_err(|e| e.to_string())?;
    if cli.command == "config" {
        for (name, value) in env.masked_listing() {
            println!("{name}={value}");
        }
        for name in env.unknown_variables() {
            println!("# warning: {name} is not a calplanebot variable (typo?)");
        }
        println!("# mode: {}", env.mode_hint());
        return Ok(ExitCode::SUCCESS);
    }
    let config = Config::from_env(&env).map_err(|e| e.to_string())?;
    // Only the service logs to LOG_FILE; one-off commands talk to the terminal.
    let log_file = config.log_file.as_deref().filter(|_| cli.command == "run");
    calplanebot::logging::init(config.log_level, log_file)?;
    for name in env.unknown_variables() {
        log::warn!("{name} is not a calplanebot variable (typo?)");
    }
    match cli.command.as_str() {
        "validate-config" => {
            println!("configuration OK");
            println!("mode: {}", config.mode().describe());
            println!(
                "cycles: {}; modules: {}",
                if config.sync_cycles {
                    "synced (SYNC_CYCLES)"
                } else {
                    "off"
                },
                if config.sync_modules {
                    "synced (SYNC_MODULES)"
                } else {
                    "off"
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        "sync" if config.caldav_url.is_none() => cmd_feeds_once(&config, cli.dry_run),
        "sync" => cmd_sync(&config, cli.dry_run, cli.full),
        "feed-urls" => cmd_feed_urls(&config),
        "run" => cmd_run(&config),
        "sync-status" => cmd_sync_status(&config),
        "list" => cmd_list(&config),
        "test-caldav" => cmd_test_caldav(&config),
        "test-plane" => cmd_test_plane(&config),
        "status" => Ok(exit(service_status(&config))),
        "diagnostics" => cmd_diagnostics(&config),
        "create-event" => cmd_create_event(
            &config,
            cli.title.as_deref().unwrap_or(""),
            cli.date.as_deref(),
            cli.project.as_deref(),
        ),
        other => Err(format!("unknown command {other:?} (see --help)")),
    }
}

fn plane_client(config: &Config) -> Result<PlaneClient, String> {
    PlaneClient::from_config(config).map_err(|e| e.to_string())
}

fn caldav_client(config: &Config) -> Result<CalDavClient, String> {
    CalDavClient::from_config(config).map_err(|e| e.to_string())
}

fn open_journal(config: &Config) -> Result<Journal, String> {
    Journal::open(&config.state_dir).map_err(|e| e.to_string())
}

fn print_summary(s: &Summary, elapsed: Duration, dry_run: bool) {
    if dry_run {
        println!("Dry run: nothing was written.");
        for line in &s.planned {
            println!("{}", shown(line));
        }
        println!("Unchanged: {}", s.unchanged);
        return;
    }
    println!("Sync completed in {:.1}s", elapsed.as_secs_f64());
    println!("  Projects:  {}", s.projects);
    println!(
        "  Created:   {}{}",
        s.created,
        s.timeline_note(|c| c.created)
    );
    println!(
        "  Updated:   {}{}",
        s.updated,
        s.timeline_note(|c| c.updated)
    );
    let reasons: Vec<String> = s
        .delete_reasons
        .iter()
        .map(|(why, n)| format!("{n} {why}"))
        .collect();
    if reasons.is_empty() {
        println!(
            "  Deleted:   {}{}",
            s.deleted,
            s.timeline_note(|c| c.deleted)
        );
    } else {
        println!("  Deleted:   {} ({})", s.deleted, reasons.join(", "));
    }
    println!("  Skipped:   {}", s.skipped);
    println!("  Unchanged: {}", s.unchanged);
    println!(
        "  To Plane:  {} updated, {} created",
        s.plane_updated, s.plane_created
    );
    println!("  Conflicts: {}", s.conflicts);
    if !s.errors.is_empty() {
        println!("  Errors:    {}", s.errors.len());
        for e in &s.errors {
            println!("    - {}", shown(e));
        }
    }
}

fn cmd_sync(config: &Config, dry_run: bool, full: bool) -> Result<ExitCode, String> {
    let mut plane = plane_client(config)?;
    let mut dav = caldav_client(config)?;
    // A dry run writes nothing anywhere: no lock, no journal header, no new directory.
    let mut journal = if dry_run {
        Journal::open_dry_run(&config.state_dir).map_err(|e| e.to_string())?
    } else {
        open_journal(config)?
    };
    let started = Instant::now();
    let opts = sync::Options {
        dry_run,
        full,
        ..sync::Options::default()
    };
    let summary = sync::sync_once(config, &mut plane, &mut dav, &mut journal, &opts)
        .map_err(|e| e.to_string())?;
    print_summary(&summary, started.elapsed(), dry_run);
    // Request counts make the cost of a sync visible (and let tests assert that an idle
    // sync writes nothing).
    let by_method: Vec<String> = dav.stats.iter().map(|(m, n)| format!("{m} {n}")).collect();
    println!(
        "  Requests:  Plane {}, CalDAV {} ({})",
        plane.stats.requests,
        dav.request_count(),
        by_method.join(", ")
    );
    if summary.errors.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        Err(format!(
            "sync finished with {} error(s); the rest was synced",
            summary.errors.len()
        ))
    }
}

/// `--once` without CALDAV_URL: writes the feed files once (a full listing), for a
/// first look or a web server that serves STATE_DIR/feeds itself; `run` is the main job.
fn cmd_feeds_once(config: &Config, dry_run: bool) -> Result<ExitCode, String> {
    if dry_run {
        return Err("--dry-run needs CALDAV_URL: without it there is nothing to plan (hint: `calplanebot run` serves the feeds)".into());
    }
    // The lock keeps a running service and this from writing the same files.
    let _journal = open_journal(config)?;
    let mut plane = plane_client(config)?;
    let mut feeds = calplanebot::feed::Feeds::open(config)?;
    let summary = feeds
        .cycle(config, &mut plane, None, None)
        .map_err(|e| e.to_string())?;
    let (n, items) = feeds.counts();
    println!(
        "Feeds written: {n} projects, {items} items in {}",
        calplanebot::feed::dir(config).display()
    );
    println!("No CALDAV_URL: `calplanebot run` is the main job: it serves these feeds over HTTP and keeps them current (see `calplanebot feed-urls`).");
    println!("  Requests:  Plane {}", plane.stats.requests);
    if summary.errors.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        Err(format!(
            "feeds written with {} error(s): {}",
            summary.errors.len(),
            summary.errors.join("; ")
        ))
    }
}

/// `feed-urls`: the URLs to paste into a calendar app.
fn cmd_feed_urls(config: &Config) -> Result<ExitCode, String> {
    if config.feed_token.is_none() {
        return Err("feeds are off: FEED_TOKEN is not set (hint: set it, e.g. to the output of `openssl rand -hex 16`, and restart the service)".into());
    }
    let mut plane = plane_client(config)?;
    let projects = sync::select_projects(
        plane.projects().map_err(|e| e.to_string())?,
        &config.plane_projects,
    );
    let host = calplanebot::feed::host_name();
    println!("Subscribe to these URLs in your calendar app (they contain FEED_TOKEN: keep them private):");
    for (label, url) in calplanebot::feed::urls(config, &projects, &host) {
        println!("  {}: {url}", shown(&label));
    }
    if config.public_url.is_none() {
        println!("(host from HTTP_BIND; set PUBLIC_URL to the address your calendar app reaches, e.g. behind a reverse proxy)");
    }
    Ok(ExitCode::SUCCESS)
}

fn cmd_run(config: &Config) -> Result<ExitCode, String> {
    calplanebot::daemon::run(config)?;
    Ok(ExitCode::SUCCESS)
}

fn cmd_sync_status(config: &Config) -> Result<ExitCode, String> {
    let state = Journal::open_read_only(&config.state_dir).map_err(|e| e.to_string())?;
    let path = config.state_dir.join("state.jsonl");
    println!("State file: {}", path.display());
    match std::fs::metadata(&path).and_then(|m| m.modified()) {
        Ok(t) => {
            let secs = t
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0);
            println!("Last write: {}", httpdate::fmt_http_date(t));
            println!("            ({} s ago)", clock::now_unix() - secs);
        }
        Err(_) => println!("Last write: never (no sync has run with this STATE_DIR)"),
    }
    for line in calplanebot::status::journal_report(&state, clock::now_unix()) {
        println!("{line}");
    }
    Ok(ExitCode::SUCCESS)
}

fn cmd_list(config: &Config) -> Result<ExitCode, String> {
    let mut plane = plane_client(config)?;
    let mut dav = caldav_client(config)?;
    let projects = sync::select_projects(
        plane.projects().map_err(|e| e.to_string())?,
        &config.plane_projects,
    );
    let home = dav.discover().map_err(|e| e.to_string())?.home;
    let calendars = dav.calendars(&home).map_err(|e| e.to_string())?;
    let state = Journal::open_read_only(&config.state_dir).map_err(|e| e.to_string())?;
    for project in &projects {
        let Some(cal) = sync::find_calendar(&calendars, &state, project) else {
            println!(
                "{} — no calendar yet",
                shown(&model::calendar_name(project))
            );
            continue;
        };
        let refs = dav.objects(&cal.href).map_err(|e| e.to_string())?;
        let hrefs: Vec<String> = refs.iter().map(|r| r.href.clone()).collect();
        let objects = dav.multiget(&cal.href, &hrefs).map_err(|e| e.to_string())?;
        let mut rows: Vec<(String, String)> = Vec::new();
        for o in &objects {
            let Ok(parsed) = ical::parse(&o.ical) else {
                rows.push((
                    String::new(),
                    format!("{} (not valid iCalendar)", shown(&o.href)),
                ));
                continue;
            };
            for c in parsed
                .components
                .iter()
                .filter(|c| matches!(c.name.as_str(), "VEVENT" | "VTODO"))
            {
                let date = c
                    .property("DTSTART")
                    .or_else(|| c.property("DUE"))
                    .and_then(|p| ical::Date::parse_ical(&p.value))
                    .map(|d| d.to_iso())
                    .unwrap_or_default();
                // Calendar text goes to a terminal: no escape sequences from the server.
                let summary = c.text("SUMMARY").unwrap_or_default();
                rows.push((date, shown(&summary).into_owned()));
            }
        }
        rows.sort();
        println!(
            "{} ({} events)",
            shown(&model::calendar_name(project)),
            rows.len()
        );
        for (date, summary) in rows {
            println!("  {summary} ({date})");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn cmd_test_caldav(config: &Config) -> Result<ExitCode, String> {
    let mut dav = caldav_client(config)?;
    let d = dav.discover().map_err(|e| e.to_string())?;
    if let Some(p) = &d.principal {
        println!("Principal:     {p}");
    }
    println!("Calendar home: {}", d.home);
    let calendars = dav.calendars(&d.home).map_err(|e| e.to_string())?;
    println!("Calendars:     {}", calendars.len());
    for c in &calendars {
        println!(
            "  {} — {} [{}]",
            shown(&c.href),
            shown(c.display_name.as_deref().unwrap_or("(no name)")),
            shown(&c.components.join(","))
        );
    }
    println!("CalDAV connection OK");
    Ok(ExitCode::SUCCESS)
}

fn cmd_test_plane(config: &Config) -> Result<ExitCode, String> {
    let mut plane = plane_client(config)?;
    let me = plane.me().map_err(|e| e.to_string())?;
    println!(
        "Token owner: {} ({})",
        shown(if me.display_name.is_empty() {
            &me.id
        } else {
            &me.display_name
        }),
        shown(&me.id)
    );
    let all = plane.projects().map_err(|e| e.to_string())?;
    let selected = sync::select_projects(all.clone(), &config.plane_projects);
    println!("Projects:    {} ({} selected)", all.len(), selected.len());
    for p in &all {
        let mark = if selected.contains(p) { "*" } else { " " };
        println!("  {mark} {} — {}", shown(&p.identifier), shown(&p.name));
    }
    println!("Plane connection OK");
    println!("Mode:        {}", config.mode().describe());
    Ok(ExitCode::SUCCESS)
}

fn cmd_create_event(
    config: &Config,
    title: &str,
    date: Option<&str>,
    project: Option<&str>,
) -> Result<ExitCode, String> {
    let date = match date {
        Some(d) => {
            ical::Date::parse_iso(d).ok_or_else(|| format!("--date {d:?} is not YYYY-MM-DD"))?
        }
        None => ical::Date::from_days_since_epoch(clock::now_unix().div_euclid(86_400)),
    };
    let mut plane = plane_client(config)?;
    let mut dav = caldav_client(config)?;
    let projects = sync::select_projects(
        plane.projects().map_err(|e| e.to_string())?,
        &config.plane_projects,
    );
    let project = match project {
        Some(p) => projects
            .iter()
            .find(|x| x.identifier.eq_ignore_ascii_case(p) || x.id == p)
            .ok_or_else(|| format!("no selected Plane project {p:?}"))?,
        None => projects.first().ok_or("no Plane project selected")?,
    };
    let home = dav.discover().map_err(|e| e.to_string())?.home;
    let calendars = dav.calendars(&home).map_err(|e| e.to_string())?;
    let state = Journal::open_read_only(&config.state_dir).map_err(|e| e.to_string())?;
    let cal = sync::find_calendar(&calendars, &state, project)
        .ok_or_else(|| {
            format!(
                "project {} has no calendar yet (hint: run `calplanebot sync` first)",
                project.identifier
            )
        })?
        .clone();
    // A UID outside our scheme: this event belongs to the user, sync never touches it.
    let uid = format!(
        "calplanebot-test-{}-{}",
        clock::now_unix(),
        std::process::id()
    );
    let mut event = ical::Component::new("VEVENT");
    event.push(ical::Property::new("UID", &uid));
    event.push(ical::Property::new(
        "DTSTAMP",
        &clock::format_ical_utc(clock::now_unix()),
    ));
    event.push(ical::Property::new("DTSTART", &date.to_ical()).with_param("VALUE", "DATE"));
    event.push(ical::Property::new("DTEND", &date.succ().to_ical()).with_param("VALUE", "DATE"));
    event.push(ical::Property::text("SUMMARY", title));
    let mut vcal = ical::Component::new("VCALENDAR");
    vcal.push(ical::Property::new("VERSION", "2.0"));
    vcal.push(ical::Property::new("PRODID", model::PRODID));
    vcal.components.push(event);
    let href = format!("{}{uid}.ics", cal.href);
    match dav
        .put(&href, &ical::write(&vcal), Precondition::Create)
        .map_err(|e| e.to_string())?
    {
        WriteOutcome::Written(_) => {
            println!("Created \"{title}\" on {} in {}", date.to_iso(), cal.href);
            Ok(ExitCode::SUCCESS)
        }
        _ => Err(format!("{href} already exists")),
    }
}

fn exit(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The seed's report heading: a blank line, a rule, the title, a rule, a blank line.
fn heading(title: &str) {
    let rule = "=".repeat(60);
    println!("\n{rule}\n  {title}\n{rule}\n");
}

/// Where the running service listens, from HTTP_BIND (a wildcard address means "this
/// machine").
fn service_url(config: &Config) -> Option<String> {
    let bind = config.http_bind.as_deref()?;
    let (host, port) = bind.rsplit_once(':')?;
    let host = match host {
        "0.0.0.0" | "" => "127.0.0.1",
        "[::]" => "[::1]",
        h => h,
    };
    Some(format!("http://{host}:{port}"))
}

fn fetch_json(
    agent: &ureq::Agent,
    url: &str,
    token: Option<&calplanebot::config::Secret>,
) -> Result<(u16, miniserde::json::Value), String> {
    let mut request = agent.get(url);
    if let Some(t) = token {
        // API_TOKEN guards every path but /health.
        request = request.header("Authorization", &format!("Bearer {}", t.expose()));
    }
    let mut r = request
        .call()
        .map_err(|e| calplanebot::http::describe(&e))?;
    let status = r.status().as_u16();
    let body = r.body_mut().read_to_string().map_err(|e| e.to_string())?;
    let v = miniserde::json::from_str(&body).map_err(|_| format!("{url} did not answer JSON"))?;
    Ok((status, v))
}

fn field(v: &miniserde::json::Value, path: &[&str]) -> String {
    let mut cur = v;
    for key in path {
        match cur {
            miniserde::json::Value::Object(o) => match o.get(*key) {
                Some(next) => cur = next,
                None => return "-".into(),
            },
            _ => return "-".into(),
        }
    }
    let text = match cur {
        miniserde::json::Value::String(s) => s.clone(),
        miniserde::json::Value::Null => "-".into(),
        other => miniserde::json::to_string(other),
    };
    shown(&text).into_owned()
}

/// `status`: the running service's health and a few figures. True when it answered 200.
fn service_status(config: &Config) -> bool {
    heading("Checking calplanebot Status");
    println!("ℹ Mode: {}", config.mode().describe());
    let Some(base) = service_url(config) else {
        println!("✗ HTTP_BIND is empty: the service has no HTTP server to ask");
        return false;
    };
    // The clients' agent (its own TCP transport), so ureq's default one is not linked in.
    let agent = match calplanebot::http::agent(Duration::from_secs(10), None) {
        Ok(agent) => agent,
        Err(e) => {
            println!("✗ Cannot set up an HTTP client: {e}");
            return false;
        }
    };
    match fetch_json(&agent, &format!("{base}/health"), None) {
        Err(e) => {
            println!("✗ Cannot connect to calplanebot service at {base} ({e})");
            println!("ℹ Is the service running? Try: systemctl status calplanebot");
            false
        }
        Ok((code, health)) => {
            if code == 200 {
                println!("✓ calplanebot service is running");
            } else {
                println!("✗ calplanebot service returned non-200 status ({code})");
            }
            println!("ℹ Status: {}", field(&health, &["status"]));
            let token = config.api_token.as_ref();
            if let Ok((_, m)) = fetch_json(&agent, &format!("{base}/api/v1/metrics"), token) {
                println!("ℹ Last sync: {}", field(&m, &["last_sync"]));
                println!("ℹ Next sync: {}", field(&m, &["next_sync"]));
                println!("ℹ Last error: {}", field(&m, &["last_error"]));
                println!(
                    "ℹ Events: {} created, {} updated, {} deleted since start",
                    field(&m, &["items", "created"]),
                    field(&m, &["items", "updated"]),
                    field(&m, &["items", "deleted"])
                );
                println!(
                    "ℹ Webhooks: {} accepted, {} refused for signature",
                    field(&m, &["webhooks", "accepted"]),
                    field(&m, &["webhooks", "unauthorized"])
                );
            }
            code == 200
        }
    }
}

fn cmd_diagnostics(config: &Config) -> Result<ExitCode, String> {
    heading("Running Full Diagnostics");
    heading("Testing CalDAV Connection");
    let caldav_ok = match &config.caldav_url {
        None => {
            println!("ℹ No CALDAV_URL: feeds only, there is no CalDAV server to test");
            true
        }
        Some(url) => {
            println!("ℹ Connecting to: {url}");
            if !config.caldav_username.is_empty() {
                println!("ℹ Username: {}", config.caldav_username);
            }
            match diagnose_caldav(config) {
                Ok(()) => true,
                Err(e) => {
                    println!("✗ {e}");
                    false
                }
            }
        }
    };
    heading("Testing Plane API Connection");
    println!("ℹ Connecting to: {}", config.plane_base_url);
    let plane_ok = match diagnose_plane(config) {
        Ok(()) => true,
        Err(e) => {
            println!("✗ {e}");
            false
        }
    };
    let service_ok = service_status(config);
    heading("Diagnostic Summary");
    let mark = |ok: bool| if ok { "✓ OK" } else { "✗ FAILED" };
    match config.caldav_url {
        Some(_) => println!("CalDAV Connection: {}", mark(caldav_ok)),
        None => println!("CalDAV Connection: - (feeds only)"),
    }
    println!("Plane API:         {}", mark(plane_ok));
    println!("Service Status:    {}", mark(service_ok));
    println!();
    let all = caldav_ok && plane_ok && service_ok;
    if all {
        println!("✓ All systems operational!");
    } else {
        println!("✗ Some systems are not working properly");
    }
    Ok(exit(all))
}

fn diagnose_caldav(config: &Config) -> Result<(), String> {
    let mut dav = caldav_client(config)?;
    let d = dav.discover().map_err(|e| e.to_string())?;
    println!("✓ Connected to CalDAV server");
    if let Some(p) = &d.principal {
        println!("ℹ Principal: {p}");
    }
    println!("ℹ Calendar home: {}", d.home);
    let calendars = dav.calendars(&d.home).map_err(|e| e.to_string())?;
    println!("✓ Found {} calendar(s)", calendars.len());
    for c in &calendars {
        let events = dav
            .objects(&c.href)
            .map(|o| o.len().to_string())
            .unwrap_or_else(|e| format!("? ({e})"));
        println!(
            "  📅 {}",
            shown(c.display_name.as_deref().unwrap_or("(no name)"))
        );
        println!("     URL: {}", shown(&c.href));
        println!("     Events: {events}");
    }
    Ok(())
}

fn diagnose_plane(config: &Config) -> Result<(), String> {
    let mut plane = plane_client(config)?;
    let me = plane.me().map_err(|e| e.to_string())?;
    println!("✓ Connected to Plane API");
    println!("ℹ Workspace: {}", config.plane_workspace_slug);
    println!(
        "ℹ Token owner: {} ({})",
        shown(&me.display_name),
        shown(&me.id)
    );
    let projects = plane.projects().map_err(|e| e.to_string())?;
    println!("✓ Found {} project(s)", projects.len());
    for p in projects.iter().take(5) {
        println!("  📁 {} ({})", shown(&p.name), shown(&p.identifier));
    }
    Ok(())
}
