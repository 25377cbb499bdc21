//! Keeping the feed files up to date from Plane: the same cheap polling as the CalDAV
//! sync (design §2b). An incremental cycle lists each project's work items newest change
//! first and stops at the watermark kept in the feed's header: an idle project costs one
//! request and no write. Every FULL_RECONCILE_EVERY cycles (and for a feed that is
//! missing or was made under other settings) a full listing rebuilds the file, which is
//! how deleted and archived items leave it. A webhook re-reads its one item.
//!
//! Cycles and modules (SYNC_CYCLES, SYNC_MODULES) follow the CalDAV sync's cost rule: a
//! rebuild lists them; an incremental refresh only when the work-item listing found
//! changes (their progress may have moved) or a webhook named them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};

use super::render::{self, Block, Header};
use super::store::{self, Change, FeedStore};
use crate::config::Config;
use crate::plane::PlaneError;
use crate::plane::{PlaneClient, Project};
use crate::sync::model::{self, Mapping};
use crate::sync::timeline::{self, Kind, Zones};
use crate::sync::{self, Summary, SyncError};

/// The feeds of one service.
#[derive(Debug)]
pub struct Feeds {
    store: FeedStore,
    /// The selected projects, as last listed.
    projects: Vec<Project>,
    /// Cycles run; every FULL_RECONCILE_EVERY-th is a full one (the first too).
    cycles: u32,
}

impl Feeds {
    /// Opens the feed files of `config` (under `STATE_DIR/feeds`).
    pub fn open(config: &Config) -> Result<Feeds, String> {
        let dir = super::dir(config);
        let store = FeedStore::open(&dir, super::all_header(config))
            .map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(Feeds {
            store,
            projects: Vec::new(),
            cycles: 0,
        })
    }

    /// The handle the HTTP thread serves from.
    pub fn shared(&self) -> store::Shared {
        self.store.shared()
    }

    /// Feeds served and the work items in them.
    pub fn counts(&self) -> (u64, u64) {
        let list = self.store.shared().lock().list();
        let items: usize = list.iter().map(|(_, n)| n).sum();
        (list.len() as u64, items as u64)
    }

    /// One cycle over every selected project (`only`: just this project id, after a
    /// webhook about it). Errors of one project are recorded in the summary; the others
    /// go on.
    pub fn cycle(
        &mut self,
        config: &Config,
        plane: &mut PlaneClient,
        only: Option<&str>,
        stop: Option<&AtomicBool>,
    ) -> Result<Summary, SyncError> {
        let full = only.is_none()
            && self
                .cycles
                .is_multiple_of(config.full_reconcile_every.max(1));
        if full || self.projects.is_empty() || only.is_some_and(|p| !self.knows(p)) {
            // Members change as rarely as projects: read them again with the list.
            plane.forget_members();
            self.projects = sync::select_projects(plane.projects()?, &config.plane_projects);
        }
        let mapping = sync::mapping_for(config, plane)?;
        let mut summary = Summary {
            project_list: self.projects.clone(),
            ..Summary::default()
        };
        for project in self
            .projects
            .iter()
            .filter(|p| only.is_none_or(|o| o == p.id))
        {
            if stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
                break;
            }
            summary.projects += 1;
            let errors = summary.errors.len();
            let step = Step {
                project,
                mapping: &mapping,
                config,
            };
            step.refresh(&self.store, plane, full, &mut summary);
            if summary.errors.len() > errors {
                summary.projects_failed += 1;
            }
        }
        if full && summary.errors.is_empty() && !stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
            let slugs: BTreeSet<String> = self
                .projects
                .iter()
                .map(|p| store::slug_of(&p.identifier))
                .collect();
            self.store.retain(&slugs);
        }
        if only.is_none() {
            self.cycles = self.cycles.wrapping_add(1);
        }
        self.store.set_ready();
        Ok(summary)
    }

    /// After a webhook about a project's cycles or modules: that listing alone is read
    /// again and patched into the project's feed (a feed that needs rebuilding is
    /// rebuilt instead).
    pub fn timeline(
        &mut self,
        config: &Config,
        plane: &mut PlaneClient,
        project: &Project,
        kind: Kind,
    ) -> Result<Summary, SyncError> {
        self.patch(
            config,
            plane,
            project,
            |step, store, plane, changed, summary| {
                Ok(step.timeline_changes(store, plane, kind, changed, summary))
            },
        )
    }

    /// Whether the project id is one of the selected projects.
    fn knows(&self, project: &str) -> bool {
        self.projects.iter().any(|p| p.id == project)
    }

    /// After a webhook: re-reads one work item and puts it into (or takes it out of) its
    /// project's feed. A project not selected is ignored.
    pub fn item(
        &mut self,
        config: &Config,
        plane: &mut PlaneClient,
        project: &Project,
        id: &str,
    ) -> Result<Summary, SyncError> {
        self.patch(config, plane, project, |step, _, plane, changed, _| {
            match plane.work_item(&project.id, id)? {
                Some(i) => changed.insert(
                    render::uid_of(&i),
                    render::block(&i, project, step.mapping).ok(),
                ),
                None => changed.insert(render::uid_of_id(id), None),
            };
            Ok(true)
        })
    }

    /// A webhook's change to one project's feed: rebuilt from a full listing when the feed
    /// needs it, else `read` collects the changed blocks (false: nothing to write) and they
    /// are written in. The feed's watermark stays: other items may have changed since its
    /// last listing.
    fn patch(
        &mut self,
        config: &Config,
        plane: &mut PlaneClient,
        project: &Project,
        read: impl FnOnce(
            &Step<'_>,
            &FeedStore,
            &mut PlaneClient,
            &mut BTreeMap<String, Option<Block>>,
            &mut Summary,
        ) -> Result<bool, SyncError>,
    ) -> Result<Summary, SyncError> {
        let mapping = sync::mapping_for(config, plane)?;
        let step = Step {
            project,
            mapping: &mapping,
            config,
        };
        let mut summary = Summary {
            projects: 1,
            ..Summary::default()
        };
        if step.needs_rebuild(&self.store) {
            step.refresh(&self.store, plane, true, &mut summary);
            return Ok(summary);
        }
        let mut changed = BTreeMap::new();
        if read(&step, &self.store, plane, &mut changed, &mut summary)? {
            let watermark = self.store.meta(&step.slug()).and_then(|m| m.watermark);
            step.apply(&self.store, &changed, watermark, &mut summary);
        }
        Ok(summary)
    }
}

/// One project's refresh.
struct Step<'a> {
    project: &'a Project,
    mapping: &'a Mapping,
    config: &'a Config,
}

impl Step<'_> {
    fn slug(&self) -> String {
        store::slug_of(&self.project.identifier)
    }

    fn header(&self, watermark: Option<String>) -> Header {
        Header {
            name: model::calendar_name(self.project),
            refresh_seconds: self.config.sync_interval_seconds,
            fingerprint: render::fingerprint(self.mapping),
            watermark,
        }
    }

    /// Whether the feed must be rebuilt from a full listing: missing, or made under other
    /// settings.
    fn needs_rebuild(&self, store: &FeedStore) -> bool {
        let fingerprint = render::fingerprint(self.mapping);
        store
            .meta(&self.slug())
            .is_none_or(|m| m.fingerprint.as_deref() != Some(fingerprint.as_str()))
    }

    /// A full listing when `full` or needed, else an incremental one.
    fn refresh(&self, store: &FeedStore, plane: &mut PlaneClient, full: bool, s: &mut Summary) {
        if full || self.needs_rebuild(store) {
            self.rebuild(store, plane, s);
        } else {
            self.incremental(store, plane, s);
        }
    }

    /// Lists every work item into a new version of the feed. An incomplete listing
    /// leaves the old file in place.
    fn rebuild(&self, store: &FeedStore, plane: &mut PlaneClient, s: &mut Summary) {
        let ident = &self.project.identifier;
        let errors = s.errors.len();
        let mut w = match store.writer(&self.slug()) {
            Ok(w) => w,
            Err(e) => return s.error(format!("feed {ident}: {e}")),
        };
        let mut failed = None;
        let listed = plane.each_work_item_since(&self.project.id, None, &mut |item| {
            if failed.is_some() {
                return;
            }
            // The first item is the newest change: the watermark.
            if let Err(e) = w.start(&self.header(Some(item.updated_at.clone()))) {
                failed = Some(e);
                return;
            }
            if let Ok(b) = render::block(&item, self.project, self.mapping) {
                failed = w.push(&b).err();
            }
        });
        let complete = match listed {
            Ok(end) if end.complete && end.bad.is_empty() => true,
            Ok(end) => {
                for e in &end.bad {
                    s.error(format!("feed {ident}: {e}"));
                }
                false
            }
            Err(e) => {
                s.error(format!("feed {ident}: {e}"));
                false
            }
        };
        if let Some(e) = failed {
            s.error(format!("feed {ident}: {e}"));
        }
        if complete && s.errors.len() == errors {
            self.push_timeline(&mut w, plane, s);
        }
        if !complete || s.errors.len() > errors {
            log::warn!("feed {ident}: listing incomplete; the feed stays as it was");
            return w.abandon();
        }
        let started = w.started() || w.start(&self.header(None)).is_ok();
        let items = w.items();
        let new = store.meta(&self.slug()).is_none();
        match (started, w.commit(store)) {
            (true, Ok(change)) => self.report(change, items, new, s),
            (_, Err(e)) => s.error(format!("feed {ident}: {e}")),
            (false, Ok(_)) => s.error(format!("feed {ident}: cannot write the header")),
        }
    }

    /// Lists the work items changed since the feed's watermark and patches them in;
    /// when some did change, the cycles and modules too.
    fn incremental(&self, store: &FeedStore, plane: &mut PlaneClient, s: &mut Summary) {
        let old = store.meta(&self.slug()).and_then(|m| m.watermark);
        let mark = old.as_deref().and_then(crate::plane::Timestamp::parse);
        let mut changed: BTreeMap<String, Option<Block>> = BTreeMap::new();
        let mut newest = None;
        let mut items_changed = false;
        let listed = plane.each_work_item_since(&self.project.id, old.as_deref(), &mut |item| {
            if newest.is_none() {
                newest = Some(item.updated_at.clone());
            }
            // The item at the watermark comes back every time; only newer ones count.
            items_changed |= mark.is_none_or(|m| item.updated().is_some_and(|t| t > m));
            let block = render::block(&item, self.project, self.mapping).ok();
            changed.insert(render::uid_of(&item), block);
        });
        let watermark = match listed {
            Ok(end) if end.bad.is_empty() => newest.or(old),
            Ok(end) => {
                for e in &end.bad {
                    s.error(format!("feed {}: {e}", self.project.identifier));
                }
                old
            }
            Err(e) => return s.error(format!("feed {}: {e}", self.project.identifier)),
        };
        if items_changed {
            for kind in Kind::ALL.into_iter().filter(|k| k.enabled(self.mapping)) {
                self.timeline_changes(store, plane, kind, &mut changed, s);
            }
        }
        self.apply(store, &changed, watermark, s);
    }

    /// One kind's listing as blocks by UID (`None`: listed, but no event).
    fn timeline_blocks(
        &self,
        plane: &mut PlaneClient,
        kind: Kind,
    ) -> Result<BTreeMap<String, Option<Block>>, PlaneError> {
        let (p, m) = (self.project, self.mapping);
        let rendered = match kind {
            Kind::Cycle => {
                let mut zones = Zones::new();
                plane
                    .cycles(&p.id)?
                    .iter()
                    .map(|c| {
                        (c.id.clone(), {
                            let zone = zones.get(timeline::zone_name(c));
                            timeline::render_cycle(c, p, m, zone)
                        })
                    })
                    .collect::<Vec<_>>()
            }
            Kind::Module => plane
                .modules(&p.id)?
                .iter()
                .map(|md| (md.id.clone(), timeline::render_module(md, p, m)))
                .collect(),
        };
        Ok(rendered
            .into_iter()
            .map(|(id, r)| (kind.uid(&id), r.ok().map(render::timeline_block)))
            .collect())
    }

    /// Adds one kind's listing to `changed`, and takes out of the feed the objects of
    /// that kind Plane no longer lists. False (and an error in the summary) when the
    /// listing or the feed could not be read: then nothing of that kind changes.
    fn timeline_changes(
        &self,
        store: &FeedStore,
        plane: &mut PlaneClient,
        kind: Kind,
        changed: &mut BTreeMap<String, Option<Block>>,
        s: &mut Summary,
    ) -> bool {
        let ident = &self.project.identifier;
        let listed = match self.timeline_blocks(plane, kind) {
            Ok(l) => l,
            Err(e) => {
                s.error(format!("feed {ident}: {}: {e}", kind.plural()));
                return false;
            }
        };
        let in_feed = match store.uids(&self.slug(), &|u| Kind::of_uid(u) == Some(kind)) {
            Ok(u) => u,
            Err(e) => {
                s.error(format!("feed {ident}: {e}"));
                return false;
            }
        };
        for uid in in_feed {
            changed.entry(uid).or_insert(None);
        }
        changed.extend(listed);
        true
    }

    /// Pushes the enabled kinds' blocks into a feed being rebuilt (errors go into the
    /// summary, which makes the caller keep the old file).
    fn push_timeline(&self, w: &mut store::FeedWriter, plane: &mut PlaneClient, s: &mut Summary) {
        let ident = &self.project.identifier;
        for kind in Kind::ALL.into_iter().filter(|k| k.enabled(self.mapping)) {
            let blocks = match self.timeline_blocks(plane, kind) {
                Ok(b) => b,
                Err(e) => return s.error(format!("feed {ident}: {}: {e}", kind.plural())),
            };
            // A project without work items: the header was not written yet.
            if !w.started() {
                if let Err(e) = w.start(&self.header(None)) {
                    return s.error(format!("feed {ident}: {e}"));
                }
            }
            for b in blocks.values().flatten() {
                if let Err(e) = w.push(b) {
                    return s.error(format!("feed {ident}: {e}"));
                }
            }
        }
    }

    /// Patches `changed` into the feed, if that changes anything.
    fn apply(
        &self,
        store: &FeedStore,
        changed: &BTreeMap<String, Option<Block>>,
        watermark: Option<String>,
        s: &mut Summary,
    ) {
        let slug = self.slug();
        let moved = store.meta(&slug).is_none_or(|m| m.watermark != watermark);
        let result = match store.differs(&slug, changed) {
            Ok(false) if !moved => return,
            Ok(_) => store.patch(&slug, &self.header(watermark), changed),
            Err(e) => Err(e),
        };
        match result {
            Ok(change) => self.report(change, changed.len(), false, s),
            Err(e) => s.error(format!("feed {}: {e}", self.project.identifier)),
        }
    }

    /// Counts a changed feed's items: as created when the feed file is `new` (the first
    /// cycle, or a project newly selected), else as updated (a rebuild rewrites them all).
    fn report(&self, change: Change, items: usize, new: bool, s: &mut Summary) {
        if change != Change::Content {
            return;
        }
        if new {
            log::info!("feed {}.ics written ({items} items)", self.slug());
            s.created += items;
        } else {
            log::info!("feed {}.ics updated ({items} items)", self.slug());
            s.updated += items;
        }
    }
}
