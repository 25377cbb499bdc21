//! The pure planning step: one project's desired objects, its calendar listing and the
//! journal in, a list of actions out. No I/O — every sync decision is made here and
//! table-tested below.
//!
//! Identity is the UID (deterministic from the work item id). For each UID we look at
//! three facts, as vdirsyncer does with its (href, etag) status:
//! D — the item should have an object (rendered, with a content hash);
//! J — the journal knows an object we wrote (href, etag, shadow);
//! R — the calendar listing has an object at that href (with its current etag).

use std::collections::{BTreeMap, BTreeSet};

use super::model::{self, Desired, Excluded};
use crate::caldav::client::{path_of, percent_decode};
use crate::caldav::ObjectRef;
use crate::state::ItemRecord;

/// One step for `apply`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// PUT a new object with `If-None-Match: *`.
    Create {
        /// Object UID.
        uid: String,
        /// Where to put it.
        href: String,
        /// Why it is created when the journal already knew it (deleted in the calendar).
        recreate: bool,
    },
    /// Read the object, merge our owned properties into it, and PUT it with `If-Match`
    /// when something changed (else only record its new ETag).
    Update {
        /// Object UID.
        uid: String,
        /// Where it is.
        href: String,
        /// The ETag the listing showed.
        etag: Option<String>,
        /// Why: the item changed in Plane, the object changed in the calendar, or we
        /// found an object of ours the journal did not know (adoption).
        reason: UpdateReason,
    },
    /// DELETE with `If-Match`.
    Delete {
        /// Object UID.
        uid: String,
        /// Where it is.
        href: String,
        /// The ETag the listing showed.
        etag: Option<String>,
        /// Why.
        reason: DeleteReason,
    },
    /// Drop the journal record: the object is gone and should be.
    Forget {
        /// Object UID.
        uid: String,
    },
}

/// Why an object is updated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateReason {
    /// The work item changed in Plane.
    PlaneChanged,
    /// Someone changed the object in the calendar (compare owned fields; Plane wins).
    CalendarChanged,
    /// An object of ours the journal does not know (lost journal, or the seed's events).
    Adopt,
}

impl UpdateReason {
    /// As printed by `--dry-run`.
    pub fn as_str(self) -> &'static str {
        match self {
            UpdateReason::PlaneChanged => "changed in Plane",
            UpdateReason::CalendarChanged => "edited in the calendar",
            UpdateReason::Adopt => "adopting an existing event",
        }
    }
}

/// Why an object is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteReason {
    /// The item no longer qualifies.
    Excluded(Excluded),
    /// The item is not in Plane's listing any more (deleted, archived, moved).
    Gone,
}

impl DeleteReason {
    /// As printed in summaries.
    pub fn as_str(self) -> &'static str {
        match self {
            DeleteReason::Excluded(e) => e.as_str(),
            DeleteReason::Gone => "issue deleted or archived",
        }
    }
}

/// Everything `plan` looks at for one project's calendar.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    /// The calendar collection path (ends in `/`).
    pub calendar: &'a str,
    /// Items that should have an object.
    pub desired: &'a [Desired],
    /// Items listed in Plane that should not have an object, and why.
    pub excluded: &'a BTreeMap<String, Excluded>,
    /// How many work items Plane listed for the project (all, qualifying or not).
    pub plane_listed: usize,
    /// Whether the Plane listing is complete and trustworthy: false when some items could
    /// not be read, so absence proves nothing and no "gone" deletion may happen.
    pub plane_complete: bool,
    /// The calendar's objects.
    pub listing: &'a [ObjectRef],
    /// Objects at hrefs outside our naming scheme that hold one of our UIDs, by UID (the
    /// seed's events; read once, on first contact with a calendar).
    pub adoptable: &'a BTreeMap<String, ObjectRef>,
    /// Journal records of this project.
    pub journal: &'a [&'a ItemRecord],
    /// MAX_DELETE_FRACTION.
    pub max_delete_fraction: f64,
}

/// The plan for one calendar.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// Steps, in order.
    pub actions: Vec<Action>,
    /// Set when the safety valve stopped the whole calendar; `actions` is then empty.
    pub blocked: Option<String>,
    /// Objects that need no work.
    pub unchanged: usize,
}

/// Fewer deletions than this never trip the fraction rule: completing the only item of
/// a small project must still delete its event.
const VALVE_MIN_DELETES: usize = 3;

fn key(href: &str) -> String {
    percent_decode(&path_of(href))
}

/// Plans one calendar.
pub fn plan(input: &Input<'_>) -> Plan {
    let remote: BTreeMap<String, &ObjectRef> =
        input.listing.iter().map(|o| (key(&o.href), o)).collect();
    let journal: BTreeMap<&str, &ItemRecord> =
        input.journal.iter().map(|r| (r.uid.as_str(), *r)).collect();
    let desired: BTreeMap<&str, &Desired> =
        input.desired.iter().map(|d| (d.uid.as_str(), d)).collect();

    // Every UID any side knows of. Remote objects count only when their href follows our
    // naming scheme: objects we did not create are never touched.
    let mut uids: BTreeSet<String> = desired.keys().map(|u| u.to_string()).collect();
    uids.extend(journal.keys().map(|u| u.to_string()));
    for o in input.listing {
        if let Some(uid) = model::uid_from_href(&o.href) {
            uids.insert(uid);
        }
    }
    uids.extend(input.adoptable.keys().cloned());

    let mut out = Plan::default();
    for uid in uids {
        let d = desired.get(uid.as_str()).copied();
        let j = journal.get(uid.as_str()).copied();
        let href = match (j, input.adoptable.get(&uid)) {
            (Some(j), _) => j.href.clone(),
            (None, Some(found)) => path_of(&found.href),
            (None, None) => model::href_for(input.calendar, &uid),
        };
        let r = remote.get(&key(&href)).copied();
        let work_item = uid
            .strip_prefix(model::UID_PREFIX)
            .and_then(|s| s.strip_suffix(model::UID_SUFFIX))
            .unwrap_or("");
        let action = match (d, j, r) {
            (Some(_), None, None) => Some(Action::Create {
                uid,
                href,
                recreate: false,
            }),
            (Some(_), Some(_), None) => Some(Action::Create {
                uid,
                href,
                recreate: true,
            }),
            (Some(_), None, Some(r)) => Some(Action::Update {
                uid,
                href,
                etag: r.etag.clone(),
                reason: UpdateReason::Adopt,
            }),
            (Some(d), Some(j), Some(r)) => {
                if r.etag.is_none() || r.etag != j.etag {
                    Some(Action::Update {
                        uid,
                        href,
                        etag: r.etag.clone(),
                        reason: UpdateReason::CalendarChanged,
                    })
                } else if d.shadow.content_hash != j.shadow.content_hash {
                    Some(Action::Update {
                        uid,
                        href,
                        etag: r.etag.clone(),
                        reason: UpdateReason::PlaneChanged,
                    })
                } else {
                    None
                }
            }
            (None, _, Some(r)) => {
                let reason = match input.excluded.get(work_item) {
                    Some(e) => Some(DeleteReason::Excluded(*e)),
                    None if input.plane_complete => Some(DeleteReason::Gone),
                    // Not listed, but the listing had holes: keep the object for now.
                    None => None,
                };
                reason.map(|reason| Action::Delete {
                    uid,
                    href,
                    etag: r.etag.clone(),
                    reason,
                })
            }
            (None, Some(_), None) => Some(Action::Forget { uid }),
            (None, None, None) => None,
        };
        match action {
            Some(a) => out.actions.push(a),
            None => out.unchanged += 1,
        }
    }

    // The safety valve (vdirsyncer's lesson): a Plane answer that suddenly lists nothing,
    // or a cycle that would delete much of a calendar, is more likely a fault than intent.
    let deletes = out
        .actions
        .iter()
        .filter(|a| matches!(a, Action::Delete { .. }))
        .count();
    let mapped = journal.len().max(
        input
            .listing
            .iter()
            .filter(|o| model::uid_from_href(&o.href).is_some())
            .count()
            + input.adoptable.len(),
    );
    let reason = if deletes > 0 && input.plane_listed == 0 && !journal.is_empty() {
        Some(format!(
            "Plane listed no work items but {} are synced; refusing to delete {deletes} events",
            journal.len()
        ))
    } else if deletes >= VALVE_MIN_DELETES
        && deletes as f64 > input.max_delete_fraction * mapped as f64
    {
        Some(format!(
            "this cycle would delete {deletes} of {mapped} events, more than MAX_DELETE_FRACTION={}",
            input.max_delete_fraction
        ))
    } else {
        None
    };
    if let Some(reason) = reason {
        return Plan {
            actions: Vec::new(),
            blocked: Some(reason),
            unchanged: 0,
        };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ical::Component;
    use crate::state::Shadow;

    const CAL: &str = "/cal/work/";

    fn desired(id: &str, hash: &str) -> Desired {
        Desired {
            uid: model::uid_for(id),
            work_item: id.into(),
            project: "p".into(),
            label: format!("[P-1] {id}"),
            updated_at: "2026-11-23T10:00:00Z".into(),
            shadow: Shadow {
                content_hash: hash.into(),
                ..Shadow::default()
            },
            component: Component::new("VEVENT"),
        }
    }

    fn record(id: &str, etag: &str, hash: &str) -> ItemRecord {
        let uid = model::uid_for(id);
        ItemRecord {
            href: model::href_for(CAL, &uid),
            uid,
            work_item: id.into(),
            project: "p".into(),
            etag: Some(etag.into()),
            plane_updated_at: String::new(),
            sequence: 0,
            shadow: Shadow {
                content_hash: hash.into(),
                ..Shadow::default()
            },
        }
    }

    fn remote(id: &str, etag: &str) -> ObjectRef {
        ObjectRef {
            href: model::href_for(CAL, &model::uid_for(id)),
            etag: Some(etag.into()),
        }
    }

    struct Case {
        desired: Vec<Desired>,
        excluded: Vec<(&'static str, Excluded)>,
        journal: Vec<ItemRecord>,
        listing: Vec<ObjectRef>,
        adoptable: Vec<(String, ObjectRef)>,
        complete: bool,
    }

    impl Case {
        fn new() -> Case {
            Case {
                desired: vec![],
                excluded: vec![],
                journal: vec![],
                listing: vec![],
                adoptable: vec![],
                complete: true,
            }
        }
        fn run(&self) -> Plan {
            let excluded: BTreeMap<String, Excluded> = self
                .excluded
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect();
            let journal: Vec<&ItemRecord> = self.journal.iter().collect();
            let adoptable: BTreeMap<String, ObjectRef> = self.adoptable.iter().cloned().collect();
            plan(&Input {
                adoptable: &adoptable,
                calendar: CAL,
                desired: &self.desired,
                excluded: &excluded,
                plane_listed: self.desired.len() + self.excluded.len(),
                plane_complete: self.complete,
                listing: &self.listing,
                journal: &journal,
                max_delete_fraction: 0.5,
            })
        }
    }

    fn kinds(p: &Plan) -> Vec<String> {
        p.actions
            .iter()
            .map(|a| match a {
                Action::Create { uid, recreate, .. } => {
                    format!("create{} {uid}", if *recreate { "*" } else { "" })
                }
                Action::Update { uid, reason, .. } => format!("update({reason:?}) {uid}"),
                Action::Delete { uid, reason, .. } => format!("delete({}) {uid}", reason.as_str()),
                Action::Forget { uid } => format!("forget {uid}"),
            })
            .map(|s| s.replace("plane-issue-", "").replace("@calplanebot", ""))
            .collect()
    }

    #[test]
    fn table() {
        // (name, case, expected actions, expected unchanged)
        let mut cases: Vec<(&str, Case, Vec<&str>, usize)> = Vec::new();

        let mut c = Case::new();
        c.desired = vec![desired("a", "h1")];
        cases.push(("new item → create", c, vec!["create a"], 0));

        let mut c = Case::new();
        c.desired = vec![desired("a", "h1")];
        c.journal = vec![record("a", "e1", "h1")];
        c.listing = vec![remote("a", "e1")];
        cases.push(("nothing changed → nothing", c, vec![], 1));

        let mut c = Case::new();
        c.desired = vec![desired("a", "h2")];
        c.journal = vec![record("a", "e1", "h1")];
        c.listing = vec![remote("a", "e1")];
        cases.push((
            "plane changed → update",
            c,
            vec!["update(PlaneChanged) a"],
            0,
        ));

        let mut c = Case::new();
        c.desired = vec![desired("a", "h1")];
        c.journal = vec![record("a", "e1", "h1")];
        c.listing = vec![remote("a", "e2")];
        cases.push((
            "calendar changed → update (compare)",
            c,
            vec!["update(CalendarChanged) a"],
            0,
        ));

        let mut c = Case::new();
        c.desired = vec![desired("a", "h1")];
        c.journal = vec![record("a", "e1", "h1")];
        cases.push(("deleted in calendar → recreate", c, vec!["create* a"], 0));

        let mut c = Case::new();
        c.desired = vec![desired("a", "h1")];
        c.listing = vec![remote("a", "e1")];
        cases.push((
            "journal lost → adopt, no duplicate",
            c,
            vec!["update(Adopt) a"],
            0,
        ));

        let mut c = Case::new();
        c.excluded = vec![("a", Excluded::Completed)];
        c.journal = vec![record("a", "e1", "h1")];
        c.listing = vec![remote("a", "e1")];
        cases.push((
            "completed → delete",
            c,
            vec!["delete(issue completed) a"],
            0,
        ));

        let mut c = Case::new();
        c.excluded = vec![("a", Excluded::NoDate)];
        c.listing = vec![remote("a", "e1")];
        cases.push((
            "no date, journal lost → still delete ours",
            c,
            vec!["delete(no target date) a"],
            0,
        ));

        let mut c = Case::new();
        c.desired = vec![desired("b", "h")];
        c.journal = vec![record("a", "e1", "h1"), record("b", "e", "h")];
        c.listing = vec![remote("a", "e1"), remote("b", "e")];
        cases.push((
            "vanished from plane → delete",
            c,
            vec!["delete(issue deleted or archived) a"],
            1,
        ));

        let mut c = Case::new();
        c.desired = vec![desired("b", "h")];
        c.journal = vec![record("a", "e1", "h1"), record("b", "e", "h")];
        c.listing = vec![remote("a", "e1"), remote("b", "e")];
        c.complete = false;
        cases.push(("vanished but listing had holes → keep", c, vec![], 2));

        let mut c = Case::new();
        c.excluded = vec![("a", Excluded::NoDate)];
        c.journal = vec![record("a", "e1", "h1")];
        cases.push(("gone on both sides → forget", c, vec!["forget a"], 0));

        let mut c = Case::new();
        c.listing = vec![
            ObjectRef {
                href: "/cal/work/someone-elses.ics".into(),
                etag: Some("x".into()),
            },
            ObjectRef {
                href: "/cal/work/plane-issue-zzz@other.ics".into(),
                etag: Some("y".into()),
            },
        ];
        cases.push(("foreign objects are never touched", c, vec![], 0));

        let mut c = Case::new();
        c.desired = vec![desired("a", "h1")];
        c.journal = vec![record("a", "e1", "h1")];
        c.listing = vec![ObjectRef {
            href: "http://server/cal/work/plane-issue-a@calplanebot.ics".into(),
            etag: Some("e1".into()),
        }];
        cases.push(("href encodings and full URLs match", c, vec![], 1));

        let mut c = Case::new();
        let seed = ObjectRef {
            href: "/cal/work/seed-name.ics".into(),
            etag: Some("s".into()),
        };
        c.desired = vec![desired("a", "h1")];
        c.listing = vec![seed.clone()];
        c.adoptable = vec![(model::uid_for("a"), seed.clone())];
        cases.push((
            "seed event at another href → adopt there",
            c,
            vec!["update(Adopt) a"],
            0,
        ));

        let mut c = Case::new();
        c.excluded = vec![("a", Excluded::Completed)];
        c.listing = vec![seed.clone()];
        c.adoptable = vec![(model::uid_for("a"), seed)];
        cases.push((
            "seed event of a completed item → delete",
            c,
            vec!["delete(issue completed) a"],
            0,
        ));

        for (name, case, want, unchanged) in cases {
            let p = case.run();
            assert_eq!(kinds(&p), want, "{name}");
            assert_eq!(p.unchanged, unchanged, "{name}");
            assert_eq!(p.blocked, None, "{name}");
        }
    }

    #[test]
    fn safety_valve_blocks_mass_deletion() {
        let mut c = Case::new();
        for i in 0..10 {
            let id = format!("i{i}");
            c.journal.push(record(&id, "e", "h"));
            c.listing.push(remote(&id, "e"));
        }
        // 6 of 10 vanish: over half.
        for i in 6..10 {
            c.desired.push(desired(&format!("i{i}"), "h"));
        }
        let p = c.run();
        assert!(p.actions.is_empty());
        assert!(
            p.blocked.as_deref().unwrap().contains("6 of 10"),
            "{:?}",
            p.blocked
        );

        // 5 of 10 is allowed.
        c.desired.push(desired("i5", "h"));
        let p = c.run();
        assert_eq!(p.blocked, None);
        assert_eq!(p.actions.len(), 5);
    }

    #[test]
    fn safety_valve_on_empty_plane_listing() {
        let mut c = Case::new();
        c.journal = vec![record("a", "e", "h")];
        c.listing = vec![remote("a", "e")];
        let p = c.run();
        assert!(p.blocked.unwrap().contains("no work items"));
    }

    #[test]
    fn small_calendars_can_lose_their_only_event() {
        let mut c = Case::new();
        c.excluded = vec![("a", Excluded::Completed)];
        c.journal = vec![record("a", "e", "h")];
        c.listing = vec![remote("a", "e")];
        let p = c.run();
        assert_eq!(p.blocked, None);
        assert_eq!(kinds(&p), vec!["delete(issue completed) a"]);
    }
}
