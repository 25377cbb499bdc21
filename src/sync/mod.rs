//! Two-way sync between Plane and CalDAV: [`model`] renders work items, [`fields`] reads
//! what users change in calendars and merges it (pure), [`plan`] decides (pure), [`apply`]
//! writes through the [`store`] seams, [`project`] runs one project's cycle, and
//! [`sync_once`] runs it for every project.

pub mod apply;
pub mod fields;
pub mod model;
pub mod plan;
pub mod progress;
pub mod project;
mod read;
pub mod store;
pub mod timeline;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::caldav::{CalDavClient, Calendar, DavError};
use crate::config::{Config, ItemKind};
use crate::plane::{PlaneClient, PlaneError, Project};
use crate::state::{CalendarRecord, Journal, JournalError};
use crate::tz::Zone;
use model::{Desired, Mapping};
use plan::Action;

/// Counts of one sync run, printed like the seed's summary.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    /// Projects looked at.
    pub projects: usize,
    /// Projects that failed and got nothing done (the service counts a cycle in which
    /// every project failed as a failed cycle).
    pub projects_failed: usize,
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
    /// Work items changed in Plane from calendar edits (PATCHes, cleared dates included).
    pub plane_updated: usize,
    /// Work items created in Plane from new calendar objects.
    pub plane_created: usize,
    /// Fields changed on both sides to different values (CONFLICT_POLICY decided).
    pub conflicts: usize,
    /// Calendars the safety valve stopped.
    pub blocked: Vec<String>,
    /// One line per failure.
    pub errors: Vec<String>,
    /// With `--dry-run`: what would be done.
    pub planned: Vec<String>,
    /// The selected projects as Plane listed them (for callers that cache them).
    pub project_list: Vec<Project>,
    /// Of the objects created, updated and deleted, the cycles' and modules' (by
    /// [`timeline::Kind::noun`]).
    pub timeline: BTreeMap<&'static str, Counts>,
}

/// Objects created, updated and deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Created.
    pub created: usize,
    /// Updated.
    pub updated: usize,
    /// Deleted.
    pub deleted: usize,
}

impl Summary {
    /// Objects dealt with in any way, for telling "failed" from "partly failed".
    fn done(&self) -> usize {
        self.created
            + self.updated
            + self.deleted
            + self.unchanged
            + self.skipped
            + self.plane_updated
            + self.plane_created
    }

    /// Counts the project begun at `before` as failed when it added errors and did
    /// nothing else.
    fn judge_project(&mut self, before: (usize, usize)) {
        if self.errors.len() > before.0 && self.done() == before.1 {
            self.projects_failed += 1;
        }
    }

    /// What part of a count were cycles and modules, for summaries: ` (1 cycle, 2
    /// modules)`, or nothing when none were.
    pub fn timeline_note(&self, count: fn(&Counts) -> usize) -> String {
        let parts: Vec<String> = self
            .timeline
            .iter()
            .map(|(noun, c)| (noun, count(c)))
            .filter(|(_, n)| *n > 0)
            .map(|(noun, n)| format!("{n} {noun}{}", if n == 1 { "" } else { "s" }))
            .collect();
        if parts.is_empty() {
            String::new()
        } else {
            format!(" ({})", parts.join(", "))
        }
    }

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
    /// List every work item, whatever the watermark says (`--full`).
    pub full: bool,
    /// Set by a signal handler: finish the current write, then stop. Every write is
    /// journaled as it happens, so stopping between two leaves a consistent state.
    pub stop: Option<&'a AtomicBool>,
    /// A webhook about this kind of a project's timeline: list only it (with
    /// `only_project`), not the work items.
    pub timeline_only: Option<timeline::Kind>,
}

impl Options<'_> {
    /// Whether a stop was requested.
    pub fn stopped(&self) -> bool {
        self.stop.is_some_and(|s| s.load(Ordering::Relaxed))
    }
}

/// The mapping, with SYNC_ASSIGNEES e-mails resolved through the members list the client
/// cached (fetched again only with the project list, see [`sync_once`]).
pub fn mapping_for(config: &Config, plane: &mut PlaneClient) -> Result<Mapping, PlaneError> {
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
    let zone = Zone::utc();
    let item = plane.work_item(&project.id, item_id)?;
    let opts = Options::default();
    let step = project::Step {
        project,
        calendar: &calendar.href,
        seen: &calendar,
        first_contact: false,
        mapping: &mapping,
        two_way: two_way(config),
        create_from_calendar: false,
        max_delete_fraction: config.max_delete_fraction,
        zone: &zone,
        full: false,
        opts: &opts,
        now: crate::clock::now_unix(),
        list_items: true,
        timeline_wake: None,
        takes_events: true,
    };
    let mut summary = Summary {
        projects: 1,
        ..Summary::default()
    };
    project::sync_item(dav, plane, journal, &step, item_id, item, &mut summary);
    Ok(summary)
}

/// The two-way options of a configuration.
pub fn two_way(config: &Config) -> plan::TwoWay {
    plan::TwoWay {
        direction: config.sync_direction,
        policy: config.conflict_policy,
        calendar_delete: config.calendar_delete,
    }
}

/// EVENT_TIMEZONE, or UTC (with a warning) when the system has no such zone.
pub fn event_zone(config: &Config) -> Zone {
    match Zone::load(&config.event_timezone) {
        Ok(z) => z,
        Err(e) => {
            log::warn!("{e}; using UTC for times in calendar events");
            Zone::utc()
        }
    }
}

/// SYNC_ASSIGNEES may name users by e-mail; work items reliably carry only user ids.
fn resolve_emails(plane: &mut PlaneClient, wanted: &[String]) -> Result<Vec<String>, PlaneError> {
    let members = plane.members_cached()?;
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

/// One sync of every selected project (each incremental or full, see
/// [`project::sync_project`]). With `dry_run`, nothing is written (no calendar, object,
/// work item or journal write) and `Summary::planned` says what would be.
pub fn sync_once(
    config: &Config,
    plane: &mut PlaneClient,
    dav: &mut CalDavClient,
    journal: &mut Journal,
    opts: &Options<'_>,
) -> Result<Summary, SyncError> {
    let zone = event_zone(config);
    let mut summary = Summary::default();
    let (mut projects, listed) = selected_projects(config, plane, journal, opts)?;
    let mapping = mapping_for(config, plane)?;
    let timeline = mapping.cycles || mapping.modules;
    if timeline && !listed {
        lend_project_settings(plane, journal, &projects);
    }
    summary.project_list = projects.clone();
    if let Some(only) = opts.only_project {
        projects.retain(|p| p.id == only);
    }
    if projects.is_empty() {
        log::warn!("no Plane projects to sync (check PLANE_PROJECTS and the token's access)");
    }
    let (home, mut calendars) = home_and_calendars(dav, journal)?;
    let now = crate::clock::now_unix();

    for (n, project) in projects.iter().enumerate() {
        if opts.stopped() {
            log::info!("stopping: {} of {} projects synced", n, projects.len());
            break;
        }
        summary.projects += 1;
        let before = (summary.errors.len(), summary.done());
        let full = opts.timeline_only.is_none()
            && (opts.full || full_listing_due(config, journal, &project.id));
        announce_project(n, projects.len(), project, opts, full);
        let Some(calendar) = calendar_for(
            plane,
            dav,
            &home,
            &mut calendars,
            journal,
            project,
            &mapping,
            opts,
            &mut summary,
        ) else {
            summary.judge_project(before);
            continue;
        };
        let (seen, first_contact) = record_calendar(journal, project, &calendar, opts)?;
        let step = project::Step {
            project,
            calendar: &calendar.href,
            seen: &seen,
            first_contact,
            mapping: &mapping,
            two_way: two_way(config),
            create_from_calendar: config.create_from_calendar,
            max_delete_fraction: config.max_delete_fraction,
            zone: &zone,
            full,
            opts,
            now,
            list_items: opts.timeline_only.is_none(),
            timeline_wake: opts.timeline_only,
            takes_events: takes_events(&calendar),
        };
        project::sync_project(dav, plane, journal, &step, &mut summary)?;
        summary.judge_project(before);
    }
    if !opts.dry_run {
        finish_run(plane, journal, &projects, timeline && listed)?;
    }
    Ok(summary)
}

/// The journal's end of a run that writes: the projects' zone and cycle/module switches
/// when they were listed now (`settings`), compaction, and the final commit.
fn finish_run(
    plane: &mut PlaneClient,
    journal: &mut Journal,
    projects: &[Project],
    settings: bool,
) -> Result<(), SyncError> {
    if settings {
        record_project_settings(plane, journal, projects)?;
    }
    journal.compact_if_needed()?;
    journal.commit()?;
    Ok(())
}

/// The progress line that starts project `n` (0-based) of `total`: what is read for it.
fn announce_project(n: usize, total: usize, project: &Project, opts: &Options<'_>, full: bool) {
    let what = match (opts.timeline_only, full) {
        (Some(kind), _) => kind.plural(),
        (None, true) => "all work items",
        (None, false) => "changed work items",
    };
    log::info!(
        "[{}/{total}] {} ({}): reading {what}",
        n + 1,
        project.name,
        project.identifier
    );
}

/// The projects PLANE_PROJECTS selects: from the journal's cache between full cycles,
/// else listed from Plane (then projects gone from Plane leave the journal); and whether
/// they were listed now.
fn selected_projects(
    config: &Config,
    plane: &mut PlaneClient,
    journal: &mut Journal,
    opts: &Options<'_>,
) -> Result<(Vec<Project>, bool), SyncError> {
    Ok(match cached_projects(config, journal, opts) {
        Some(cached) => (cached, false),
        None => {
            // Members change as rarely as projects: re-read them with the list.
            plane.forget_members();
            let all = plane.projects()?;
            if !opts.dry_run {
                forget_vanished_projects(journal, &all)?;
            }
            (select_projects(all, &config.plane_projects), true)
        }
    })
}

/// The projects' settings that cycles and modules need (zone, `cycle_view`,
/// `module_view`), as the journal recorded them (see [`record_project_settings`]), handed
/// to the client on runs that take the projects from the journal: it would otherwise
/// read each project once more to list its cycles or modules.
fn lend_project_settings(plane: &mut PlaneClient, journal: &Journal, projects: &[Project]) {
    for p in projects {
        let Some(r) = journal.state().projects.get(&p.id) else {
            continue;
        };
        if let (Some(timezone), Some(cycle_view), Some(module_view)) =
            (r.zone.clone(), r.cycle_view, r.module_view)
        {
            let settings = crate::plane::ProjectSettings {
                timezone,
                cycle_view,
                module_view,
            };
            plane.remember_project_settings(&p.id, settings);
        }
    }
}

/// After a run that listed the projects (the client knows their settings then, without
/// a request): records each project's settings where they changed, like its name.
fn record_project_settings(
    plane: &mut PlaneClient,
    journal: &mut Journal,
    projects: &[Project],
) -> Result<(), JournalError> {
    for p in projects {
        let Some(record) = journal.state().projects.get(&p.id).cloned() else {
            continue;
        };
        let Ok(s) = plane.project_settings(&p.id) else {
            continue;
        };
        let known = (
            record.zone.as_deref(),
            record.cycle_view,
            record.module_view,
        );
        if known
            == (
                Some(s.timezone.as_str()),
                Some(s.cycle_view),
                Some(s.module_view),
            )
        {
            continue;
        }
        journal.put_project(crate::state::ProjectRecord {
            zone: Some(s.timezone),
            cycle_view: Some(s.cycle_view),
            module_view: Some(s.module_view),
            ..record
        })?;
    }
    Ok(())
}

/// Records that `calendar` is the project's (unless the journal says so already or this
/// is a dry run). Returns the calendar's version as seen now, and whether the project
/// had no calendar in the journal before (first contact).
fn record_calendar(
    journal: &mut Journal,
    project: &Project,
    calendar: &Calendar,
    opts: &Options<'_>,
) -> Result<(CalendarRecord, bool), SyncError> {
    let known = journal.state().calendars.get(&project.id).cloned();
    let first_contact = known.is_none();
    if !opts.dry_run && known.as_ref().map(|k| &k.href) != Some(&calendar.href) {
        // The mapping is recorded before anything is written; the version (ctag,
        // sync-token) only after a clean cycle.
        journal.put_calendar(CalendarRecord {
            project: project.id.clone(),
            href: calendar.href.clone(),
            ctag: None,
            sync_token: None,
        })?;
    }
    let seen = CalendarRecord {
        project: project.id.clone(),
        href: calendar.href.clone(),
        ctag: calendar.ctag.clone(),
        sync_token: calendar.sync_token.clone(),
    };
    Ok((seen, first_contact))
}

/// The calendar home and its calendars (with their ctags and sync-tokens). Once the journal
/// knows a calendar, its parent is the home: one PROPFIND instead of discovery's two or
/// three. If that fails (the server moved things), discovery runs as on first contact.
fn home_and_calendars(
    dav: &mut CalDavClient,
    journal: &Journal,
) -> Result<(String, Vec<Calendar>), DavError> {
    let known = journal.state().calendars.values().next();
    if let Some(home) = known.map(|c| crate::caldav::href::parent_of(&c.href)) {
        match dav.calendars(&home) {
            Ok(calendars) if !calendars.is_empty() => return Ok((home, calendars)),
            Ok(_) => log::info!("{home} holds no calendars any more; discovering again"),
            Err(e) => log::info!("{e}; discovering the calendar home again"),
        }
    }
    let home = dav.discover()?.home;
    let calendars = dav.calendars(&home)?;
    Ok((home, calendars))
}

/// The selected projects as the journal remembers them, when this cycle may trust that
/// (projects change rarely; the list is read again with every full listing): `None` when
/// a full listing is due for any project, when a project lacks its name, or when
/// PLANE_PROJECTS names a project the journal does not know.
fn cached_projects(config: &Config, journal: &Journal, opts: &Options<'_>) -> Option<Vec<Project>> {
    let records = &journal.state().projects;
    if opts.full || records.is_empty() {
        return None;
    }
    let mut known = Vec::new();
    for (id, r) in records.iter().filter(|(_, r)| !is_forgotten(r)) {
        if full_listing_due(config, journal, id) {
            return None;
        }
        known.push(Project {
            id: id.clone(),
            identifier: r.identifier.clone()?,
            name: r.name.clone()?,
        });
    }
    if known.is_empty() {
        return None;
    }
    let selected = select_projects(known.clone(), &config.plane_projects);
    let all_found = config
        .plane_projects
        .iter()
        .all(|w| select_projects(known.clone(), std::slice::from_ref(w)).len() == 1);
    all_found.then_some(selected)
}

/// A project Plane no longer lists (deleted, archived, no longer visible to the token) is
/// forgotten: its record is emptied, so incremental cycles stop asking for it.
fn forget_vanished_projects(journal: &mut Journal, listed: &[Project]) -> Result<(), JournalError> {
    let gone: Vec<String> = journal
        .state()
        .projects
        .iter()
        .filter(|(id, r)| !is_forgotten(r) && !listed.iter().any(|p| &p.id == *id))
        .map(|(id, _)| id.clone())
        .collect();
    for project in gone {
        log::info!("project {project} is no longer listed by Plane; not polled any more");
        journal.put_project(crate::state::ProjectRecord {
            project,
            watermark: None,
            cycles_since_full: 0,
            last_full: None,
            identifier: None,
            name: None,
            timeline: None,
            zone: None,
            cycle_view: None,
            module_view: None,
        })?;
    }
    Ok(())
}

/// An emptied record (see [`forget_vanished_projects`]); a record from before projects
/// had names still has its watermark.
fn is_forgotten(r: &crate::state::ProjectRecord) -> bool {
    r.identifier.is_none() && r.watermark.is_none() && r.last_full.is_none()
}

/// Whether this project's next listing must be a full one: never listed, or
/// FULL_RECONCILE_EVERY cycles since the last full listing.
fn full_listing_due(config: &Config, journal: &Journal, project: &str) -> bool {
    match journal.state().projects.get(project) {
        Some(r) if r.watermark.is_some() => r.cycles_since_full + 1 >= config.full_reconcile_every,
        _ => true,
    }
}

/// The project's calendar: known, adopted by name, or made now (`None` after an error,
/// in a dry run that would create it, or when a VTODO calendar is needed and it is not).
#[allow(clippy::too_many_arguments)]
fn calendar_for(
    plane: &mut PlaneClient,
    dav: &mut CalDavClient,
    home: &str,
    calendars: &mut Vec<Calendar>,
    journal: &Journal,
    project: &Project,
    mapping: &Mapping,
    opts: &Options<'_>,
    summary: &mut Summary,
) -> Option<Calendar> {
    let calendar = match find_calendar(calendars, journal.state(), project) {
        Some(c) => c.clone(),
        None if opts.dry_run => {
            summary.planned.push(format!(
                "{}: would create calendar \"{}\"",
                project.identifier,
                model::calendar_name(project),
            ));
            let planned = &mut summary.planned;
            let listed = plane.each_work_item_since(&project.id, None, &mut |i| {
                if let Ok(r) = model::render(&i, project, mapping) {
                    let d = r.desired;
                    planned.push(format!("  + {} ({})", d.label, date_of(&d)));
                }
            });
            if let Err(e) = listed {
                summary.error(format!("project {}: {e}", project.identifier));
            }
            for kind in timeline::Kind::ALL
                .into_iter()
                .filter(|k| k.enabled(mapping))
            {
                match new_timeline(plane, project, mapping, kind) {
                    Ok(lines) => summary.planned.extend(lines),
                    Err(e) => summary.error(format!("project {}: {e}", project.identifier)),
                }
            }
            return None;
        }
        None => match make_calendar(dav, home, calendars, project, mapping) {
            Ok(c) => {
                calendars.push(c.clone());
                c
            }
            Err(e) => {
                summary.error(format!("project {}: {e}", project.identifier));
                return None;
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
        return None;
    }
    Some(calendar)
}

/// `--dry-run` lines for the events of one kind in a calendar still to be made.
fn new_timeline(
    plane: &mut PlaneClient,
    project: &Project,
    mapping: &Mapping,
    kind: timeline::Kind,
) -> Result<Vec<String>, PlaneError> {
    let rendered: Vec<model::Rendered> = match kind {
        timeline::Kind::Cycle => {
            let mut zones = timeline::Zones::new();
            plane
                .cycles(&project.id)?
                .iter()
                .filter_map(|c| {
                    let zone = zones.get(timeline::zone_name(c));
                    timeline::render_cycle(c, project, mapping, zone).ok()
                })
                .collect()
        }
        timeline::Kind::Module => plane
            .modules(&project.id)?
            .iter()
            .filter_map(|m| timeline::render_module(m, project, mapping).ok())
            .collect(),
    };
    Ok(rendered
        .iter()
        .map(|r| format!("  + {} ({})", r.desired.label, date_of(&r.desired)))
        .collect())
}

/// Whether a calendar takes VEVENTs (cycles and modules are always events): it says so,
/// or says nothing.
fn takes_events(calendar: &Calendar) -> bool {
    calendar.components.is_empty() || calendar.components.iter().any(|c| c == "VEVENT")
}

/// The day of a work item's object, or the days of a cycle's or module's.
fn date_of(d: &Desired) -> String {
    let target = d.shadow.target_date.clone().unwrap_or_default();
    match (&d.shadow.start_date, timeline::Kind::of_uid(&d.uid)) {
        (Some(start), Some(_)) if *start != target => format!("{start}..{target}"),
        _ => target,
    }
}

/// One line of `--dry-run` output.
fn describe(a: &Action, desired: &BTreeMap<String, Desired>, project: &Project) -> String {
    let label = |uid: &str| {
        desired
            .get(uid)
            .map(|d| format!("{} ({})", d.label, date_of(d)))
            .unwrap_or_else(|| uid.to_string())
    };
    let p = &project.identifier;
    match a {
        Action::Create { uid, .. } => format!("{p}: + create {}", label(uid)),
        Action::Update {
            uid, reason, patch, ..
        } if !patch.is_empty() => format!(
            "{p}: ~ update {} ({}; to Plane: {})",
            label(uid),
            reason.as_str(),
            patch.describe()
        ),
        Action::Update { uid, reason, .. } => {
            format!("{p}: ~ update {} ({})", label(uid), reason.as_str())
        }
        Action::Delete { href, reason, .. } => {
            format!("{p}: - delete {href} ({})", reason.as_str())
        }
        Action::Forget { uid } => format!("{p}: forget {uid} (already gone)"),
        Action::ClearDate { uid, .. } => {
            format!(
                "{p}: clear the target date of {} in Plane (event deleted)",
                label(uid)
            )
        }
        Action::CreateItem(f) => format!(
            "{p}: + create work item {:?} from {} in the calendar",
            f.fields.name, f.href
        ),
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
    // Cycles and modules are always events: a task calendar that shows them takes both.
    let mut components = vec![mapping.component_name()];
    if mapping.kind == ItemKind::Todo && (mapping.cycles || mapping.modules) {
        components.push("VEVENT");
    }
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
        match dav.make_calendar_for(&href, &name, &components) {
            Ok(()) => {
                log::info!("created calendar \"{name}\" at {href}");
                return Ok(Calendar {
                    href,
                    display_name: Some(name),
                    components: components.iter().map(|c| c.to_string()).collect(),
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
