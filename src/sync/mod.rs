//! Plane → CalDAV sync: [`model`] renders work items, [`plan`] decides (pure), [`apply`]
//! writes. [`sync_once`] wires them for every project.

pub mod apply;
pub mod model;
pub mod plan;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::caldav::{CalDavClient, Calendar, DavError};
use crate::config::{Config, ItemKind};
use crate::plane::{PlaneClient, PlaneError, Project};
use crate::state::{CalendarRecord, Journal, JournalError};
use model::{Desired, Excluded, Mapping};
use plan::Action;

/// Counts of one sync run, printed like the seed's summary.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    /// Projects looked at.
    pub projects: usize,
    /// Objects created.
    pub created: usize,
    /// Objects updated.
    pub updated: usize,
    /// Objects deleted.
    pub deleted: usize,
    /// Deletions by reason.
    pub delete_reasons: BTreeMap<&'static str, usize>,
    /// Objects that needed nothing.
    pub unchanged: usize,
    /// Objects left alone this time (changed under us, unreadable); retried next cycle.
    pub skipped: usize,
    /// Calendars the safety valve stopped.
    pub blocked: Vec<String>,
    /// One line per failure.
    pub errors: Vec<String>,
    /// With `--dry-run`: what would be done.
    pub planned: Vec<String>,
    /// The selected projects as Plane listed them (for callers that cache them).
    pub project_list: Vec<Project>,
}

impl Summary {
    /// Records (and logs) a failure that did not stop the run.
    pub fn error(&mut self, message: impl Into<String>) {
        let m = message.into();
        log::error!("{m}");
        self.errors.push(m);
    }
}

/// A failure that stops the whole run (nothing could be synced).
#[derive(Debug)]
pub enum SyncError {
    /// Plane failed before any project could be synced.
    Plane(PlaneError),
    /// The CalDAV server failed before any calendar could be synced.
    Dav(DavError),
    /// The journal could not be written.
    Journal(JournalError),
}

impl fmt::Display for SyncError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SyncError::Plane(e) => e.fmt(f),
            SyncError::Dav(e) => e.fmt(f),
            SyncError::Journal(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for SyncError {}

impl From<PlaneError> for SyncError {
    fn from(e: PlaneError) -> Self {
        SyncError::Plane(e)
    }
}
impl From<DavError> for SyncError {
    fn from(e: DavError) -> Self {
        SyncError::Dav(e)
    }
}
impl From<JournalError> for SyncError {
    fn from(e: JournalError) -> Self {
        SyncError::Journal(e)
    }
}

/// How a sync run is carried out.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options<'a> {
    /// Plan only: write nothing.
    pub dry_run: bool,
    /// Sync only the project with this id (a webhook named it).
    pub only_project: Option<&'a str>,
    /// Set by a signal handler: finish the current write, then stop. Every write is
    /// journaled as it happens, so stopping between two leaves a consistent state.
    pub stop: Option<&'a AtomicBool>,
}

impl Options<'_> {
    /// Whether a stop was requested.
    pub fn stopped(&self) -> bool {
        self.stop.is_some_and(|s| s.load(Ordering::Relaxed))
    }
}

fn mapping_for(config: &Config, plane: &mut PlaneClient) -> Result<Mapping, PlaneError> {
    let mut mapping = Mapping::from_config(config);
    if mapping.assignees.iter().any(|a| a.contains('@')) {
        mapping.assignees = resolve_emails(plane, &mapping.assignees)?;
    }
    Ok(mapping)
}

/// Syncs one work item after a webhook named it: one Plane GET, and for a changed item
/// one multiget and one PUT (or one DELETE). The object is assumed to be as the journal
/// last saw it; if it changed meanwhile, `If-Match` fails and the next full cycle repairs
/// it. A project whose calendar is not known yet gets a project sync instead.
pub fn sync_item(
    config: &Config,
    plane: &mut PlaneClient,
    dav: &mut CalDavClient,
    journal: &mut Journal,
    project: &Project,
    item_id: &str,
) -> Result<Summary, SyncError> {
    let Some(calendar) = journal.state().calendars.get(&project.id).cloned() else {
        let opts = Options {
            only_project: Some(&project.id),
            ..Options::default()
        };
        return sync_once(config, plane, dav, journal, &opts);
    };
    let mapping = mapping_for(config, plane)?;
    let mut summary = Summary {
        projects: 1,
        ..Summary::default()
    };
    let item = plane.work_item(&project.id, item_id)?;
    let mut desired = Vec::new();
    let mut excluded = BTreeMap::new();
    match item.as_ref().map(|i| model::render(i, project, &mapping)) {
        Some(Ok(d)) => desired.push(d),
        Some(Err(why)) => {
            excluded.insert(item_id.to_string(), why);
        }
        // 404: deleted or archived; absent from a complete "listing" of this one item.
        None => {}
    }
    let uid = model::uid_for(item_id);
    let record = journal.state().items.get(&uid).cloned();
    let listing: Vec<crate::caldav::ObjectRef> = record
        .iter()
        .map(|r| crate::caldav::ObjectRef {
            href: r.href.clone(),
            etag: r.etag.clone(),
        })
        .collect();
    let records: Vec<&crate::state::ItemRecord> = record.iter().collect();
    let planned = plan::plan(&plan::Input {
        calendar: &calendar.href,
        desired: &desired,
        excluded: &excluded,
        plane_listed: 1,
        plane_complete: true,
        listing: &listing,
        adoptable: &BTreeMap::new(),
        journal: &records,
        max_delete_fraction: config.max_delete_fraction,
    });
    let by_uid: BTreeMap<String, &Desired> = desired.iter().map(|d| (d.uid.clone(), d)).collect();
    apply::apply(
        dav,
        journal,
        &apply::Context {
            calendar: &calendar.href,
            desired: &by_uid,
            now: crate::clock::now_unix(),
            stop: None,
        },
        &planned,
        &mut summary,
    );
    Ok(summary)
}

/// SYNC_ASSIGNEES may name users by e-mail; work items reliably carry only user ids.
fn resolve_emails(plane: &mut PlaneClient, wanted: &[String]) -> Result<Vec<String>, PlaneError> {
    let members = plane.members()?;
    let mut ids = Vec::new();
    for w in wanted {
        if !w.contains('@') {
            ids.push(w.clone());
            continue;
        }
        match members.iter().find(|m| m.email.eq_ignore_ascii_case(w)) {
            Some(m) => ids.push(m.id.clone()),
            None => log::warn!("SYNC_ASSIGNEES: no workspace member has the e-mail {w}"),
        }
    }
    Ok(ids)
}

/// The projects selected by PLANE_PROJECTS (identifiers, ids or names; empty = all).
pub fn select_projects(all: Vec<Project>, wanted: &[String]) -> Vec<Project> {
    if wanted.is_empty() {
        return all;
    }
    all.into_iter()
        .filter(|p| {
            wanted.iter().any(|w| {
                w.eq_ignore_ascii_case(&p.identifier)
                    || *w == p.id
                    || w.eq_ignore_ascii_case(&p.name)
            })
        })
        .collect()
}

/// Finds the project's calendar: the one the journal maps it to, else one named
/// "Plane: {project}" (adopting the seed's calendars), else `None`.
pub fn find_calendar<'a>(
    calendars: &'a [Calendar],
    state: &crate::state::State,
    project: &Project,
) -> Option<&'a Calendar> {
    let known = state.calendars.get(&project.id);
    known
        .and_then(|r| {
            calendars
                .iter()
                .find(|c| crate::caldav::client::same_href(&c.href, &r.href))
        })
        .or_else(|| {
            let name = model::calendar_name(project);
            calendars
                .iter()
                .find(|c| c.display_name.as_deref() == Some(name.as_str()))
        })
}

/// One full Plane → CalDAV sync of every selected project. With `dry_run`, nothing is
/// written (no calendar, object or journal write) and `Summary::planned` says what would be.
pub fn sync_once(
    config: &Config,
    plane: &mut PlaneClient,
    dav: &mut CalDavClient,
    journal: &mut Journal,
    opts: &Options<'_>,
) -> Result<Summary, SyncError> {
    let dry_run = opts.dry_run;
    let mapping = mapping_for(config, plane)?;
    let mut summary = Summary::default();
    let mut projects = select_projects(plane.projects()?, &config.plane_projects);
    summary.project_list = projects.clone();
    if let Some(only) = opts.only_project {
        projects.retain(|p| p.id == only);
    }
    if projects.is_empty() {
        log::warn!("no Plane projects to sync (check PLANE_PROJECTS and the token's access)");
    }
    let home = dav.discover()?.home;
    let mut calendars = dav.calendars(&home)?;
    let now = crate::clock::now_unix();

    for (n, project) in projects.iter().enumerate() {
        if opts.stopped() {
            log::info!("stopping: {} of {} projects synced", n, projects.len());
            break;
        }
        summary.projects += 1;
        log::info!(
            "[{}/{}] {} ({}): reading work items",
            n + 1,
            projects.len(),
            project.name,
            project.identifier
        );
        let (items, bad) = match plane.work_items(&project.id) {
            Ok(x) => x,
            Err(e) => {
                summary.error(format!("project {}: {e}", project.identifier));
                continue;
            }
        };
        for e in &bad {
            summary.error(format!("project {}: {e}; item skipped", project.identifier));
        }

        let mut desired: Vec<Desired> = Vec::new();
        let mut excluded: BTreeMap<String, Excluded> = BTreeMap::new();
        for item in &items {
            match model::render(item, project, &mapping) {
                Ok(d) => desired.push(d),
                Err(why) => {
                    excluded.insert(item.id.clone(), why);
                }
            }
        }

        // The calendar: known, adopted by name, or made now.
        let calendar = match find_calendar(&calendars, journal.state(), project) {
            Some(c) => c.clone(),
            None if dry_run => {
                summary.planned.push(format!(
                    "{}: would create calendar \"{}\" with {} events",
                    project.identifier,
                    model::calendar_name(project),
                    desired.len()
                ));
                for d in &desired {
                    summary
                        .planned
                        .push(format!("  + {} ({})", d.label, date_of(d)));
                }
                continue;
            }
            None if desired.is_empty() => continue,
            None => match make_calendar(dav, &home, &calendars, project, &mapping) {
                Ok(c) => {
                    calendars.push(c.clone());
                    c
                }
                Err(e) => {
                    summary.error(format!("project {}: {e}", project.identifier));
                    continue;
                }
            },
        };
        if mapping.kind == ItemKind::Todo
            && !calendar.components.is_empty()
            && !calendar.components.iter().any(|c| c == "VTODO")
        {
            summary.error(format!(
                "project {}: calendar {} does not accept tasks (VTODO) (hint: rename or delete it, or use ITEM_KIND=vevent)",
                project.identifier, calendar.href
            ));
            continue;
        }
        let first_contact = !journal.state().calendars.contains_key(&project.id);
        if !dry_run {
            let record = CalendarRecord {
                project: project.id.clone(),
                href: calendar.href.clone(),
                ctag: calendar.ctag.clone(),
                sync_token: calendar.sync_token.clone(),
            };
            journal.put_calendar(record)?;
        }

        let listing = match dav.objects(&calendar.href) {
            Ok(l) => l,
            Err(e) => {
                summary.error(format!("project {}: {e}", project.identifier));
                continue;
            }
        };
        let adoptable = if first_contact {
            match adoptable_objects(dav, &calendar.href, &listing, journal) {
                Ok(a) => a,
                Err(e) => {
                    summary.error(format!("project {}: {e}", project.identifier));
                    continue;
                }
            }
        } else {
            BTreeMap::new()
        };
        let records: Vec<&crate::state::ItemRecord> = journal
            .state()
            .items
            .values()
            .filter(|r| r.project == project.id)
            .collect();
        let planned = plan::plan(&plan::Input {
            calendar: &calendar.href,
            desired: &desired,
            excluded: &excluded,
            plane_listed: items.len() + bad.len(),
            plane_complete: bad.is_empty(),
            listing: &listing,
            adoptable: &adoptable,
            journal: &records,
            max_delete_fraction: config.max_delete_fraction,
        });
        if let Some(reason) = &planned.blocked {
            let m = format!(
                "project {}: safety valve: {reason}; calendar left unchanged",
                project.identifier
            );
            summary.error(m.clone());
            summary.blocked.push(m);
            continue;
        }
        let by_uid: BTreeMap<String, &Desired> =
            desired.iter().map(|d| (d.uid.clone(), d)).collect();
        if dry_run {
            summary.unchanged += planned.unchanged;
            for a in &planned.actions {
                summary.planned.push(describe(a, &by_uid, project));
            }
            continue;
        }
        apply::apply(
            dav,
            journal,
            &apply::Context {
                calendar: &calendar.href,
                desired: &by_uid,
                now,
                stop: opts.stop,
            },
            &planned,
            &mut summary,
        );
    }
    if !dry_run {
        journal.compact_if_needed()?;
    }
    Ok(summary)
}

/// On first contact with a calendar (one we adopted by name, or after the journal was
/// lost), objects whose hrefs do not follow our naming may still be ours: the seed chose
/// its own file names. Read them once and keep those with our UID prefix. Servers that
/// enforce unique UIDs would refuse our copy anyway; SabreDAV 1.8 does not, and would
/// end up with duplicates.
fn adoptable_objects(
    dav: &mut CalDavClient,
    calendar: &str,
    listing: &[crate::caldav::ObjectRef],
    journal: &Journal,
) -> Result<BTreeMap<String, crate::caldav::ObjectRef>, DavError> {
    let known: Vec<&str> = journal
        .state()
        .items
        .values()
        .map(|r| r.href.as_str())
        .collect();
    let unknown: Vec<String> = listing
        .iter()
        .filter(|o| model::uid_from_href(&o.href).is_none())
        .filter(|o| {
            !known
                .iter()
                .any(|k| crate::caldav::client::same_href(k, &o.href))
        })
        .map(|o| o.href.clone())
        .collect();
    let mut out = BTreeMap::new();
    if unknown.is_empty() {
        return Ok(out);
    }
    for o in dav.multiget(calendar, &unknown)? {
        let Ok(cal) = crate::ical::parse(&o.ical) else {
            continue;
        };
        for c in cal
            .components
            .iter()
            .filter(|c| matches!(c.name.as_str(), "VEVENT" | "VTODO"))
        {
            if let Some(uid) = c.text("UID") {
                if uid.starts_with(model::UID_PREFIX) && uid.ends_with(model::UID_SUFFIX) {
                    out.insert(
                        uid,
                        crate::caldav::ObjectRef {
                            href: o.href.clone(),
                            etag: o.etag.clone(),
                        },
                    );
                }
            }
        }
    }
    Ok(out)
}

fn date_of(d: &Desired) -> String {
    d.shadow.target_date.clone().unwrap_or_default()
}

fn describe(a: &Action, desired: &BTreeMap<String, &Desired>, project: &Project) -> String {
    let label = |uid: &str| {
        desired
            .get(uid)
            .map(|d| format!("{} ({})", d.label, date_of(d)))
            .unwrap_or_else(|| uid.to_string())
    };
    match a {
        Action::Create { uid, .. } => format!("{}: + create {}", project.identifier, label(uid)),
        Action::Update { uid, reason, .. } => {
            format!(
                "{}: ~ update {} ({})",
                project.identifier,
                label(uid),
                reason.as_str()
            )
        }
        Action::Delete { href, reason, .. } => {
            format!(
                "{}: - delete {href} ({})",
                project.identifier,
                reason.as_str()
            )
        }
        Action::Forget { uid } => format!("{}: forget {uid} (already gone)", project.identifier),
    }
}

/// MKCALENDAR at `{home}plane-{identifier}/`, or the next free `-2`, `-3`… name.
fn make_calendar(
    dav: &mut CalDavClient,
    home: &str,
    existing: &[Calendar],
    project: &Project,
    mapping: &Mapping,
) -> Result<Calendar, DavError> {
    let base = format!("plane-{}", project.identifier.to_ascii_lowercase());
    let slug: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let name = model::calendar_name(project);
    let mut n = 1;
    loop {
        let href = if n == 1 {
            format!("{home}{slug}/")
        } else {
            format!("{home}{slug}-{n}/")
        };
        n += 1;
        if existing
            .iter()
            .any(|c| crate::caldav::client::same_href(&c.href, &href))
        {
            continue;
        }
        match dav.make_calendar(&href, &name, mapping.component_name()) {
            Ok(()) => {
                log::info!("created calendar \"{name}\" at {href}");
                return Ok(Calendar {
                    href,
                    display_name: Some(name),
                    components: vec![mapping.component_name().to_string()],
                    ctag: None,
                    sync_token: None,
                });
            }
            // Something already lives there (not a calendar we could list): next name.
            Err(DavError::Status {
                status: 405 | 409, ..
            }) if n < 10 => continue,
            Err(e) => return Err(e),
        }
    }
}
