//! The seam between sync and the outside world: the few calendar and Plane operations a
//! project's cycle needs, as two traits. [`CalDavClient`] and [`PlaneClient`] implement
//! them for real servers; the tests run `apply` against [`memory::MemoryCalendar`], an
//! in-memory calendar that behaves like the servers we test against (ETags, preconditions,
//! each server's answer to a duplicate UID), and [`memory::MemoryPlane`].

use crate::caldav::{
    CalDavClient, DavError, ObjectData, ObjectRef, Precondition, SyncDelta, WriteOutcome,
};
use crate::plane::{Created, ItemPatch, ListingEnd, NewWorkItem};
use crate::plane::{Cycle, Module, PlaneClient, PlaneError, State, WorkItem};

/// The Plane operations a project's cycle uses.
pub trait Tracker {
    /// The project's work items changed since `watermark` (all of them with `None`),
    /// newest change first, each handed to `sink` as it is read.
    fn each_work_item_since(
        &mut self,
        project: &str,
        watermark: Option<&str>,
        sink: &mut dyn FnMut(WorkItem),
    ) -> Result<ListingEnd, PlaneError>;
    /// One work item; `None` when deleted or archived.
    fn work_item(&mut self, project: &str, id: &str) -> Result<Option<WorkItem>, PlaneError>;
    /// The project's workflow states.
    fn states(&mut self, project: &str) -> Result<Vec<State>, PlaneError>;
    /// Changes some fields of a work item.
    fn update_work_item(
        &mut self,
        project: &str,
        id: &str,
        patch: &ItemPatch,
    ) -> Result<WorkItem, PlaneError>;
    /// Creates a work item, or finds the one created earlier with the same external id.
    fn create_work_item(
        &mut self,
        project: &str,
        item: &NewWorkItem,
    ) -> Result<Created, PlaneError>;
    /// The project's cycles (archived ones are not listed), every page.
    fn cycles(&mut self, project: &str) -> Result<Vec<Cycle>, PlaneError>;
    /// The project's modules (archived ones are not listed), every page.
    fn modules(&mut self, project: &str) -> Result<Vec<Module>, PlaneError>;
}

impl Tracker for PlaneClient {
    fn each_work_item_since(
        &mut self,
        project: &str,
        watermark: Option<&str>,
        sink: &mut dyn FnMut(WorkItem),
    ) -> Result<ListingEnd, PlaneError> {
        PlaneClient::each_work_item_since(self, project, watermark, sink)
    }
    fn work_item(&mut self, project: &str, id: &str) -> Result<Option<WorkItem>, PlaneError> {
        PlaneClient::work_item(self, project, id)
    }
    fn states(&mut self, project: &str) -> Result<Vec<State>, PlaneError> {
        PlaneClient::states(self, project)
    }
    fn update_work_item(
        &mut self,
        project: &str,
        id: &str,
        patch: &ItemPatch,
    ) -> Result<WorkItem, PlaneError> {
        PlaneClient::update_work_item(self, project, id, patch)
    }
    fn create_work_item(
        &mut self,
        project: &str,
        item: &NewWorkItem,
    ) -> Result<Created, PlaneError> {
        PlaneClient::create_work_item(self, project, item)
    }
    fn cycles(&mut self, project: &str) -> Result<Vec<Cycle>, PlaneError> {
        PlaneClient::cycles(self, project)
    }
    fn modules(&mut self, project: &str) -> Result<Vec<Module>, PlaneError> {
        PlaneClient::modules(self, project)
    }
}

/// The calendar operations a project's cycle uses. Hrefs are absolute paths; ETags quoted.
pub trait CalendarStore {
    /// Every object of `calendar` with its ETag.
    fn objects(&mut self, calendar: &str) -> Result<Vec<ObjectRef>, DavError>;
    /// What changed in `calendar` since `token` (RFC 6578 sync-collection).
    fn changes(&mut self, calendar: &str, token: &str) -> Result<SyncDelta, DavError>;
    /// Reads several objects of `calendar`; missing ones are left out.
    fn multiget(&mut self, calendar: &str, hrefs: &[String]) -> Result<Vec<ObjectData>, DavError>;
    /// Reads one object; `None` when it does not exist.
    fn get(&mut self, href: &str) -> Result<Option<ObjectData>, DavError>;
    /// Writes an object under a precondition.
    fn put(
        &mut self,
        href: &str,
        ical: &str,
        pre: Precondition<'_>,
    ) -> Result<WriteOutcome, DavError>;
    /// Deletes an object if it still has `etag` (when given).
    fn delete(&mut self, href: &str, etag: Option<&str>) -> Result<WriteOutcome, DavError>;
    /// Finds the object of `calendar` that holds `uid`, wherever it lives.
    fn find_by_uid(&mut self, calendar: &str, uid: &str) -> Result<Option<ObjectData>, DavError>;
}

impl CalendarStore for CalDavClient {
    fn objects(&mut self, calendar: &str) -> Result<Vec<ObjectRef>, DavError> {
        CalDavClient::objects(self, calendar)
    }
    fn changes(&mut self, calendar: &str, token: &str) -> Result<SyncDelta, DavError> {
        CalDavClient::sync_collection(self, calendar, Some(token))
    }
    fn multiget(&mut self, calendar: &str, hrefs: &[String]) -> Result<Vec<ObjectData>, DavError> {
        CalDavClient::multiget(self, calendar, hrefs)
    }
    fn get(&mut self, href: &str) -> Result<Option<ObjectData>, DavError> {
        CalDavClient::get(self, href)
    }
    fn put(
        &mut self,
        href: &str,
        ical: &str,
        pre: Precondition<'_>,
    ) -> Result<WriteOutcome, DavError> {
        CalDavClient::put(self, href, ical, pre)
    }
    fn delete(&mut self, href: &str, etag: Option<&str>) -> Result<WriteOutcome, DavError> {
        CalDavClient::delete(self, href, etag)
    }
    fn find_by_uid(&mut self, calendar: &str, uid: &str) -> Result<Option<ObjectData>, DavError> {
        CalDavClient::find_by_uid(self, calendar, uid)
    }
}

#[cfg(test)]
pub mod memory {
    //! An in-memory calendar collection with real preconditions, for table tests of `apply`.

    use std::collections::BTreeMap;

    use super::{CalendarStore, Tracker};
    use crate::caldav::client::percent_decode;
    use crate::caldav::{
        DavError, ObjectData, ObjectRef, Precondition, SyncDelta, SyncRefusal, WriteOutcome,
    };
    use crate::plane::{
        Created, Cycle, ItemPatch, ListingEnd, Module, NewWorkItem, PlaneError, State, WorkItem,
    };

    /// How a server answers a PUT of a UID that another href already holds.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum UidConflict {
        /// Radicale: 409.
        Conflict409,
        /// Xandikos: 412.
        Precondition412,
        /// SabreDAV 1.8: accepts the duplicate.
        Accept,
    }

    /// One calendar; objects keyed by decoded href.
    #[derive(Debug)]
    pub struct MemoryCalendar {
        /// Objects by decoded href: (etag, text).
        pub objects: BTreeMap<String, (String, String)>,
        /// Duplicate-UID behaviour.
        pub uid_conflict: UidConflict,
        /// Requests by method, as the real client counts them.
        pub requests: BTreeMap<&'static str, u32>,
        /// Answer the next PUT with this HTTP status instead of writing.
        pub fail_next_put: Option<u16>,
        /// Answer the next GET with this HTTP status.
        pub fail_next_get: Option<u16>,
        /// Whether sync-collection is supported (else it answers 403, as SabreDAV 1.8).
        pub sync_collection: bool,
        /// How many hrefs each multiget asked for, in order.
        pub multigets: Vec<usize>,
        /// Every write as (sequence, decoded href): the sync token is the last sequence.
        log: Vec<(u32, String)>,
        next_etag: u32,
    }

    impl MemoryCalendar {
        /// An empty calendar.
        pub fn new(uid_conflict: UidConflict) -> MemoryCalendar {
            MemoryCalendar {
                objects: BTreeMap::new(),
                uid_conflict,
                requests: BTreeMap::new(),
                fail_next_put: None,
                fail_next_get: None,
                sync_collection: true,
                multigets: Vec::new(),
                log: Vec::new(),
                next_etag: 0,
            }
        }

        /// Stores an object as another client would; returns its ETag.
        pub fn insert(&mut self, href: &str, ical: &str) -> String {
            self.next_etag += 1;
            let etag = format!("\"e{}\"", self.next_etag);
            self.objects
                .insert(percent_decode(href), (etag.clone(), ical.to_string()));
            self.log.push((self.next_etag, percent_decode(href)));
            etag
        }

        /// Deletes an object as another client would.
        pub fn remove(&mut self, href: &str) {
            self.next_etag += 1;
            self.objects.remove(&percent_decode(href));
            self.log.push((self.next_etag, percent_decode(href)));
        }

        /// The current sync token (what a PROPFIND of the collection shows).
        pub fn token(&self) -> String {
            format!("t{}", self.next_etag)
        }

        /// A ctag as Radicale and Xandikos make it: a digest of the content, so it comes
        /// back to an earlier value when the content does.
        pub fn content_ctag(&self) -> String {
            let listing: Vec<String> = self
                .objects
                .iter()
                .map(|(href, (etag, _))| format!("{href}={etag}"))
                .collect();
            use sha2::{Digest, Sha256};
            let digest = Sha256::digest(listing.join("\n").as_bytes());
            digest.iter().map(|b| format!("{b:02x}")).collect()
        }

        /// Writes (PUT + DELETE) so far.
        pub fn writes(&self) -> u32 {
            self.count("PUT") + self.count("DELETE")
        }

        /// Requests of one method so far.
        pub fn count(&self, method: &str) -> u32 {
            self.requests.get(method).copied().unwrap_or(0)
        }

        fn count_request(&mut self, method: &'static str) {
            *self.requests.entry(method).or_insert(0) += 1;
        }

        fn data(&self, key: &str) -> Option<ObjectData> {
            self.objects.get(key).map(|(etag, ical)| ObjectData {
                href: key.to_string(),
                etag: Some(etag.clone()),
                ical: ical.clone(),
            })
        }

        fn holder_of(&self, uid: &str) -> Option<String> {
            let line = format!("UID:{uid}");
            self.objects
                .iter()
                .find(|(_, (_, ical))| ical.lines().any(|l| l.trim_end() == line))
                .map(|(k, _)| k.clone())
        }
    }

    fn uid_of(ical: &str) -> Option<&str> {
        ical.lines()
            .find_map(|l| l.trim_end().strip_prefix("UID:"))
            .map(str::trim)
    }

    impl CalendarStore for MemoryCalendar {
        fn changes(&mut self, calendar: &str, token: &str) -> Result<SyncDelta, DavError> {
            self.count_request("REPORT");
            let refused = |reason| DavError::SyncRefused {
                path: calendar.into(),
                status: 403,
                reason,
            };
            if !self.sync_collection {
                return Err(refused(SyncRefusal::Unsupported));
            }
            let since = token.strip_prefix('t').and_then(|n| n.parse::<u32>().ok());
            let Some(since) = since else {
                return Err(refused(SyncRefusal::InvalidToken));
            };
            let mut changed = Vec::new();
            let mut removed = Vec::new();
            let touched: std::collections::BTreeSet<&String> = self
                .log
                .iter()
                .filter(|(n, _)| *n > since)
                .map(|(_, h)| h)
                .collect();
            for href in touched {
                match self.objects.get(href) {
                    Some((etag, _)) => changed.push(ObjectRef {
                        href: href.clone(),
                        etag: Some(etag.clone()),
                    }),
                    None => removed.push(href.clone()),
                }
            }
            Ok(SyncDelta {
                token: self.token(),
                changed,
                removed,
                truncated: false,
            })
        }

        fn objects(&mut self, _calendar: &str) -> Result<Vec<ObjectRef>, DavError> {
            self.count_request("PROPFIND");
            Ok(self
                .objects
                .iter()
                .map(|(href, (etag, _))| ObjectRef {
                    href: href.clone(),
                    etag: Some(etag.clone()),
                })
                .collect())
        }

        fn multiget(
            &mut self,
            _calendar: &str,
            hrefs: &[String],
        ) -> Result<Vec<ObjectData>, DavError> {
            self.count_request("REPORT");
            self.multigets.push(hrefs.len());
            Ok(hrefs
                .iter()
                .filter_map(|h| self.data(&percent_decode(h)))
                .collect())
        }

        fn get(&mut self, href: &str) -> Result<Option<ObjectData>, DavError> {
            self.count_request("GET");
            if let Some(status) = self.fail_next_get.take() {
                return Err(DavError::Status {
                    method: "GET".into(),
                    path: href.into(),
                    status,
                    detail: String::new(),
                });
            }
            Ok(self.data(&percent_decode(href)))
        }

        fn put(
            &mut self,
            href: &str,
            ical: &str,
            pre: Precondition<'_>,
        ) -> Result<WriteOutcome, DavError> {
            self.count_request("PUT");
            if let Some(status) = self.fail_next_put.take() {
                return Err(DavError::Status {
                    method: "PUT".into(),
                    path: href.into(),
                    status,
                    detail: String::new(),
                });
            }
            let key = percent_decode(href);
            let current = self.objects.get(&key).map(|(e, _)| e.clone());
            match (pre, current.as_deref()) {
                (Precondition::Create, Some(_)) => return Ok(WriteOutcome::PreconditionFailed),
                (Precondition::Replace(want), Some(have)) if want != have => {
                    return Ok(WriteOutcome::PreconditionFailed)
                }
                (Precondition::Replace(_), None) => return Ok(WriteOutcome::PreconditionFailed),
                _ => {}
            }
            let elsewhere = uid_of(ical).and_then(|u| self.holder_of(u));
            if elsewhere.is_some_and(|k| k != key) {
                match self.uid_conflict {
                    UidConflict::Conflict409 => {
                        return Err(DavError::Status {
                            method: "PUT".into(),
                            path: href.into(),
                            status: 409,
                            detail: "no-uid-conflict".into(),
                        })
                    }
                    UidConflict::Precondition412 => return Ok(WriteOutcome::PreconditionFailed),
                    UidConflict::Accept => {}
                }
            }
            Ok(WriteOutcome::Written(Some(self.insert(href, ical))))
        }

        fn delete(&mut self, href: &str, etag: Option<&str>) -> Result<WriteOutcome, DavError> {
            self.count_request("DELETE");
            let key = percent_decode(href);
            match (self.objects.get(&key), etag) {
                (None, _) => Ok(WriteOutcome::NotFound),
                (Some((have, _)), Some(want)) if have != want => {
                    Ok(WriteOutcome::PreconditionFailed)
                }
                _ => {
                    self.remove(&key);
                    Ok(WriteOutcome::Written(None))
                }
            }
        }

        fn find_by_uid(
            &mut self,
            _calendar: &str,
            uid: &str,
        ) -> Result<Option<ObjectData>, DavError> {
            self.count_request("REPORT");
            Ok(self.holder_of(uid).and_then(|k| self.data(&k)))
        }
    }

    /// An in-memory Plane project that behaves like the real API where it matters here:
    /// newest-first listing, `updated_at` bumps, PATCH answers with unexpanded state,
    /// external ids answered with 409 (Existing).
    #[derive(Debug, Default)]
    pub struct MemoryPlane {
        /// The project's work items.
        pub items: Vec<WorkItem>,
        /// The project's states, in workflow order.
        pub states: Vec<State>,
        /// PATCHes received: (item id, body).
        pub patches: Vec<(String, ItemPatch)>,
        /// POSTs received.
        pub posts: Vec<NewWorkItem>,
        /// Requests of any kind.
        pub requests: u32,
        /// Answer the next PATCH with this HTTP status.
        pub fail_next_patch: Option<u16>,
        /// Seconds past 2026-11-23T10:00:00Z of the last change.
        pub clock: i64,
        /// The project's cycles (archived ones are left out of the listing, as Plane does).
        pub cycles: Vec<Cycle>,
        /// The project's modules (likewise).
        pub modules: Vec<Module>,
        /// Listings of cycles and of modules, in order (`cycles` / `modules`).
        pub timeline_listings: Vec<&'static str>,
        /// Answer the next cycle or module listing with this HTTP status.
        pub fail_next_timeline: Option<u16>,
        /// Make the next POST fail this way.
        pub fail_next_post: Option<PostFailure>,
    }

    /// How a POST fails, as the caller sees it: an error either way.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum PostFailure {
        /// It never reached Plane: no work item.
        NotDelivered,
        /// Plane made the work item; the answer was lost (or we died reading it).
        AnswerLost,
    }

    const EPOCH: i64 = 1_795_428_000;

    impl MemoryPlane {
        /// A project with the default workflow states.
        pub fn new() -> MemoryPlane {
            let state = |id: &str, group: &str| State {
                id: id.into(),
                name: id.into(),
                group: group.into(),
            };
            MemoryPlane {
                states: vec![
                    state("Backlog", "backlog"),
                    state("Todo", "unstarted"),
                    state("In Progress", "started"),
                    state("Done", "completed"),
                    state("Cancelled", "cancelled"),
                ],
                ..MemoryPlane::default()
            }
        }

        /// The next `updated_at`.
        pub fn tick(&mut self) -> String {
            self.clock += 1;
            crate::clock::format_rfc3339(EPOCH + self.clock)
        }

        /// Adds an item due on `target` (as a Plane user would).
        pub fn add(&mut self, id: &str, name: &str, target: &str) {
            let updated_at = self.tick();
            self.items.push(WorkItem {
                id: id.into(),
                project: "p".into(),
                sequence_id: self.items.len() as u64 + 1,
                name: name.into(),
                state: self.states[1].clone(),
                priority: "none".into(),
                target_date: Some(target.into()),
                updated_at,
                ..WorkItem::default()
            });
        }

        /// Changes an item as a Plane user would.
        pub fn edit(&mut self, id: &str, f: impl FnOnce(&mut WorkItem)) {
            let updated_at = self.tick();
            let item = self.items.iter_mut().find(|i| i.id == id).expect("item");
            f(item);
            item.updated_at = updated_at;
        }

        /// Adds a cycle from `first` through `last` (`YYYY-MM-DD`), stored as real Plane
        /// stores it for a project in UTC: 00:00:01 of the first day, 23:59 of the last.
        pub fn add_cycle(&mut self, id: &str, name: &str, first: &str, last: &str) {
            let updated_at = self.tick();
            self.cycles.push(Cycle {
                id: id.into(),
                project: "p".into(),
                name: name.into(),
                start_date: Some(format!("{first}T00:00:01Z")),
                end_date: Some(format!("{last}T23:59:00Z")),
                timezone: "UTC".into(),
                project_timezone: "UTC".into(),
                total_issues: 2,
                completed_issues: 1,
                updated_at,
                archived_at: None,
            });
        }

        /// Adds a module (dates `YYYY-MM-DD`), planned.
        pub fn add_module(&mut self, id: &str, name: &str, start: Option<&str>, target: &str) {
            let updated_at = self.tick();
            self.modules.push(Module {
                id: id.into(),
                project: "p".into(),
                name: name.into(),
                start_date: start.map(String::from),
                target_date: Some(target.into()),
                total_issues: 3,
                updated_at,
                ..Module::default()
            });
        }

        /// Changes a cycle as a Plane user would.
        pub fn edit_cycle(&mut self, id: &str, f: impl FnOnce(&mut Cycle)) {
            let updated_at = self.tick();
            let c = self.cycles.iter_mut().find(|c| c.id == id).expect("cycle");
            f(c);
            c.updated_at = updated_at;
        }

        /// Changes a module as a Plane user would.
        pub fn edit_module(&mut self, id: &str, f: impl FnOnce(&mut Module)) {
            let updated_at = self.tick();
            let m = self
                .modules
                .iter_mut()
                .find(|m| m.id == id)
                .expect("module");
            f(m);
            m.updated_at = updated_at;
        }

        /// One item by id.
        pub fn item(&self, id: &str) -> &WorkItem {
            self.items.iter().find(|i| i.id == id).expect("item")
        }

        fn status(status: u16) -> PlaneError {
            PlaneError::Status {
                status,
                path: "work-items/".into(),
                detail: String::new(),
            }
        }
    }

    impl Tracker for MemoryPlane {
        fn each_work_item_since(
            &mut self,
            _project: &str,
            watermark: Option<&str>,
            sink: &mut dyn FnMut(WorkItem),
        ) -> Result<ListingEnd, PlaneError> {
            self.requests += 1;
            let mut items = self.items.clone();
            items.sort_by_key(|i| std::cmp::Reverse(i.updated()));
            let mark = watermark.and_then(crate::plane::Timestamp::parse);
            if let Some(mark) = mark {
                items.retain(|i| i.updated().is_some_and(|t| t >= mark));
            }
            items.into_iter().for_each(sink);
            Ok(ListingEnd {
                bad: Vec::new(),
                complete: mark.is_none(),
            })
        }

        fn work_item(&mut self, _project: &str, id: &str) -> Result<Option<WorkItem>, PlaneError> {
            self.requests += 1;
            Ok(self.items.iter().find(|i| i.id == id).cloned())
        }

        fn states(&mut self, _project: &str) -> Result<Vec<State>, PlaneError> {
            self.requests += 1;
            Ok(self.states.clone())
        }

        fn update_work_item(
            &mut self,
            _project: &str,
            id: &str,
            patch: &ItemPatch,
        ) -> Result<WorkItem, PlaneError> {
            self.requests += 1;
            if let Some(status) = self.fail_next_patch.take() {
                return Err(MemoryPlane::status(status));
            }
            self.patches.push((id.to_string(), patch.clone()));
            let state = patch
                .state
                .as_ref()
                .and_then(|s| self.states.iter().find(|x| &x.id == s).cloned());
            let updated_at = self.tick();
            let Some(item) = self.items.iter_mut().find(|i| i.id == id) else {
                return Err(PlaneError::NotFound { path: id.into() });
            };
            if let Some(n) = &patch.name {
                item.name = n.clone();
            }
            if let Some(d) = &patch.start_date {
                item.start_date = d.clone();
            }
            if let Some(d) = &patch.target_date {
                item.target_date = d.clone();
            }
            if let Some(s) = state {
                item.state = s;
            }
            item.updated_at = updated_at;
            // Like Plane: the answer's state is a bare id.
            let mut answer = item.clone();
            answer.state = State {
                id: answer.state.id,
                ..State::default()
            };
            Ok(answer)
        }

        fn cycles(&mut self, _project: &str) -> Result<Vec<Cycle>, PlaneError> {
            self.requests += 1;
            self.timeline_listings.push("cycles");
            if let Some(status) = self.fail_next_timeline.take() {
                return Err(MemoryPlane::status(status));
            }
            Ok(self
                .cycles
                .iter()
                .filter(|c| c.archived_at.is_none())
                .cloned()
                .collect())
        }

        fn modules(&mut self, _project: &str) -> Result<Vec<Module>, PlaneError> {
            self.requests += 1;
            self.timeline_listings.push("modules");
            if let Some(status) = self.fail_next_timeline.take() {
                return Err(MemoryPlane::status(status));
            }
            Ok(self
                .modules
                .iter()
                .filter(|m| m.archived_at.is_none())
                .cloned()
                .collect())
        }

        fn create_work_item(
            &mut self,
            _project: &str,
            new: &NewWorkItem,
        ) -> Result<Created, PlaneError> {
            self.requests += 1;
            let failure = self.fail_next_post.take();
            if failure == Some(PostFailure::NotDelivered) {
                return Err(MemoryPlane::status(503));
            }
            self.posts.push(new.clone());
            let existing = self
                .items
                .iter()
                .find(|i| i.external_id.as_deref() == Some(new.external_id.as_str()));
            if let Some(i) = existing {
                return Ok(Created::Existing(i.id.clone()));
            }
            let id = format!("new{}", self.items.len() + 1);
            self.add(&id, &new.name, new.target_date.as_deref().unwrap_or(""));
            let state = new
                .state
                .as_ref()
                .and_then(|s| self.states.iter().find(|x| &x.id == s).cloned());
            let item = self.items.last_mut().expect("just added");
            item.start_date = new.start_date.clone();
            item.target_date = new.target_date.clone();
            item.external_id = Some(new.external_id.clone());
            item.external_source = Some(new.external_source.clone());
            if let Some(s) = state {
                item.state = s;
            }
            if failure == Some(PostFailure::AnswerLost) {
                return Err(MemoryPlane::status(504));
            }
            Ok(Created::New(item.clone()))
        }
    }
}
