//! `fake-plane`: serves a generated Plane workspace for trying calplanebot without Plane.
//!
//! ```text
//! cargo run --example fake-plane -- [--addr 127.0.0.1:8090] [--projects 3] [--items 250]
//!     [--api-key KEY] [--slug SLUG] [--seed N] [--rate-limit N] [--all-dated] [--timeline]
//!     [--verbose]
//! ```
//! Prints one line (base URL, slug, API key) and serves until killed.

#[path = "mod.rs"]
mod fake_plane;

use std::time::{SystemTime, UNIX_EPOCH};

const HELP: &str = "\
fake-plane: a fake Plane REST API (/api/v1/) with a generated workspace

OPTIONS:
  --addr ADDR        listen address [default: 127.0.0.1:8090]
  --projects N       number of projects [default: 3]
  --items N          visible work items per project [default: 250]
  --api-key KEY      API key to accept [default: derived from the seed]
  --slug SLUG        workspace slug [default: acme]
  --seed N           generator seed [default: 1]
  --rate-limit N     requests per minute [default: 60, Plane's default]
  --all-dated        give every work item without a target date one (benchmarks want
                     one calendar object per item)
  --timeline         give each project a zone (Asia/Kolkata, America/Los_Angeles,
                     Europe/Berlin, in turn), cycles (a current one, an upcoming one, a
                     draft) and modules (a span, a target-only one), some items in them
  --verbose          log one line per request on stderr
";

fn main() {
    if let Err(e) = run() {
        eprintln!("fake-plane: {e}");
        std::process::exit(2);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = pico_args::Arguments::from_env();
    if args.contains(["-h", "--help"]) {
        print!("{HELP}");
        return Ok(());
    }
    let addr: String = args
        .opt_value_from_str("--addr")?
        .unwrap_or_else(|| "127.0.0.1:8090".into());
    let projects: usize = args.opt_value_from_str("--projects")?.unwrap_or(3);
    let items: usize = args.opt_value_from_str("--items")?.unwrap_or(250);
    let api_key: Option<String> = args.opt_value_from_str("--api-key")?;
    let slug: Option<String> = args.opt_value_from_str("--slug")?;
    let seed: u64 = args.opt_value_from_str("--seed")?.unwrap_or(1);
    let rate_limit: u32 = args.opt_value_from_str("--rate-limit")?.unwrap_or(60);
    let all_dated = args.contains("--all-dated");
    let timeline = args.contains("--timeline");
    let verbose = args.contains("--verbose");
    let rest = args.finish();
    if !rest.is_empty() {
        return Err(format!("unexpected arguments: {rest:?} (see --help)").into());
    }

    // Real time, so due dates and timestamps look current in the demo.
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() as i64;
    let mut world = fake_plane::World::generate_at(&vec![items; projects], seed, now);
    world.real_clock = true;
    world.rate_limit = rate_limit;
    if all_dated {
        date_everything(&mut world, now);
    }
    if timeline {
        add_timeline(&mut world, now);
    }
    if let Some(k) = api_key {
        world.api_key = k;
    }
    if let Some(s) = slug {
        world.slug = s;
    }
    let (slug, key) = (world.slug.clone(), world.api_key.clone());
    let server = fake_plane::FakePlane::start_on(&addr, world)?;
    server.set_verbose(verbose);
    println!(
        "fake-plane: PLANE_BASE_URL={} PLANE_WORKSPACE={} PLANE_API_KEY={}",
        server.base_url(),
        slug,
        key
    );
    loop {
        std::thread::park();
    }
}

/// Gives each undated item a target date within the next 60 days (spread by sequence id,
/// so the calendar is not one crowded day). `updated_at` stays: the world is just made.
fn date_everything(world: &mut fake_plane::World, now_unix: i64) {
    let today = now_unix.div_euclid(86_400);
    for item in world.projects.iter_mut().flat_map(|p| p.items.iter_mut()) {
        if item.target_date.is_none() {
            let day = today + (item.sequence_id % 60) as i64;
            item.target_date = Some(fake_plane::fmt_date(day));
        }
    }
}

/// Zones given to the projects in turn by `--timeline` (cycle days are stored in them).
const TIMELINE_ZONES: [&str; 3] = ["Asia/Kolkata", "America/Los_Angeles", "Europe/Berlin"];

/// Cycles and modules around today in every project (in a zone other than UTC, as a
/// team's would be), with the first items in them and one of those completed, so
/// progress shows.
fn add_timeline(world: &mut fake_plane::World, now_unix: i64) {
    let day = |offset: i64| fake_plane::fmt_date(now_unix.div_euclid(86_400) + offset);
    let idents: Vec<String> = world
        .projects
        .iter()
        .map(|p| p.identifier.clone())
        .collect();
    for (k, ident) in idents.into_iter().enumerate() {
        world.set_project_timezone(&ident, TIMELINE_ZONES[k % TIMELINE_ZONES.len()]);
        let items: Vec<String> = world
            .project(&ident)
            .visible_items()
            .iter()
            .take(4)
            .map(|i| i.id.clone())
            .collect();
        let current = world.add_cycle(&ident, "Sprint 1", Some((&day(-3), &day(10))));
        world.add_cycle(&ident, "Sprint 2", Some((&day(11), &day(24))));
        world.add_cycle(&ident, "Next ideas", None);
        let span = world.add_module(&ident, "Launch", Some(&day(-7)), Some(&day(20)));
        world.set_module_status(&span, "in-progress");
        world.add_module(&ident, "Release 1.0", None, Some(&day(30)));
        for id in &items {
            world.add_to_cycle(&current, id);
            world.add_to_module(&span, id);
        }
        if let Some(first) = items.first() {
            world.set_state_group(first, "completed");
        }
    }
}
