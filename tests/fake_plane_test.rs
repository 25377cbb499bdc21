//! Exercises the fake Plane server over real HTTP with ureq, the client calplanebot uses,
//! and calplanebot's `PlaneClient` against it.

#[path = "fake_plane/mod.rs"]
mod fake_plane;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use fake_plane::{fmt_datetime, sign_webhook, FakePlane, Fault, State, World};
use miniserde::json::{self, Value};

struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn json(&self) -> Value {
        json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
}

/// Like calplanebot's agent, it follows no redirects: the tests see Plane's 301s.
fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into()
}

fn collect(r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Result<Resp, ureq::Error> {
    let mut r = r?;
    let headers = r
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let status = r.status().as_u16();
    let body = r.body_mut().read_to_string()?;
    Ok(Resp {
        status,
        headers,
        body,
    })
}

/// GET `/api/v1/{path}` with the world's key.
fn get(fp: &FakePlane, path: &str) -> Resp {
    let key = fp.with_world(|w| w.api_key.clone());
    try_get(fp, path, Some(&key)).expect("transport error")
}

fn try_get(fp: &FakePlane, path: &str, key: Option<&str>) -> Result<Resp, ureq::Error> {
    let mut rq = agent().get(format!("{}{}", fp.api_url(), path));
    if let Some(k) = key {
        rq = rq.header("X-API-Key", k);
    }
    collect(rq.call())
}

fn send(fp: &FakePlane, method: &str, path: &str, body: &str) -> Resp {
    let key = fp.with_world(|w| w.api_key.clone());
    let url = format!("{}{}", fp.api_url(), path);
    let a = agent();
    let r = match method {
        "POST" => a.post(&url),
        "PUT" => a.put(&url),
        "PATCH" => a.patch(&url),
        m => panic!("method {m}"),
    };
    collect(
        r.header("X-API-Key", &key)
            .header("Content-Type", "application/json")
            .send(body),
    )
    .expect("transport error")
}

fn delete(fp: &FakePlane, path: &str) -> Resp {
    let key = fp.with_world(|w| w.api_key.clone());
    collect(
        agent()
            .delete(format!("{}{}", fp.api_url(), path))
            .header("X-API-Key", &key)
            .call(),
    )
    .expect("transport error")
}

fn field<'a>(v: &'a Value, key: &str) -> &'a Value {
    match v {
        Value::Object(o) => o.get(key).unwrap_or_else(|| panic!("no {key} in {v:?}")),
        _ => panic!("not an object: {v:?}"),
    }
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    match field(v, key) {
        Value::String(s) => s,
        other => panic!("{key} not a string: {other:?}"),
    }
}

fn num_of(v: &Value, key: &str) -> u64 {
    match field(v, key) {
        Value::Number(json::Number::U64(n)) => *n,
        other => panic!("{key} not a u64: {other:?}"),
    }
}

fn bool_of(v: &Value, key: &str) -> bool {
    match field(v, key) {
        Value::Bool(b) => *b,
        other => panic!("{key} not a bool: {other:?}"),
    }
}

fn arr(v: &Value) -> &[Value] {
    match v {
        Value::Array(a) => a,
        _ => panic!("not an array: {v:?}"),
    }
}

fn keys(v: &Value) -> Vec<String> {
    match v {
        Value::Object(o) => o.keys().cloned().collect(),
        _ => panic!("not an object"),
    }
}

fn items_path(fp: &FakePlane, ident: &str) -> String {
    fp.with_world(|w| {
        format!(
            "workspaces/{}/projects/{}/work-items/",
            w.slug,
            w.project(ident).id
        )
    })
}

fn one_project(items: usize) -> FakePlane {
    FakePlane::start(World::generate(&[items], 7))
}

#[test]
fn auth_missing_wrong_and_routing_errors() {
    let fp = one_project(3);
    let r = try_get(&fp, "users/me/", None).unwrap();
    assert_eq!(r.status, 401);
    assert_eq!(
        str_of(&r.json(), "detail"),
        "Authentication credentials were not provided."
    );
    let r = try_get(&fp, "users/me/", Some("plane_api_wrong")).unwrap();
    assert_eq!(r.status, 403);
    assert_eq!(str_of(&r.json(), "detail"), "Given API token is not valid");

    let me = get(&fp, "users/me/");
    assert_eq!(me.status, 200);
    assert_eq!(str_of(&me.json(), "id"), fp.world().me.id);

    // A slug the token may not access: 403, as real Plane answers (not 404).
    assert_eq!(get(&fp, "workspaces/nope/projects/").status, 403);
    // No trailing slash: Django's APPEND_SLASH redirect (see routing test below).
    let r = get(&fp, "users/me");
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some("/api/v1/users/me/"));
    assert_eq!(get(&fp, "workspaces/acme/unknown/").status, 404);

    let members = get(&fp, "workspaces/acme/members/").json();
    assert_eq!(arr(&members).len(), 5);
    assert!(keys(&arr(&members)[0]).contains(&"email".to_string()));
}

#[test]
fn pagination_walks_every_visible_item_exactly_once() {
    let fp = one_project(250);
    let path = items_path(&fp, "WEB");
    let mut seen = Vec::new();
    let mut cursor = "100:0:0".to_string();
    let mut counts = Vec::new();
    loop {
        let page = get(&fp, &format!("{path}?per_page=100&cursor={cursor}")).json();
        assert_eq!(num_of(&page, "total_count"), 250);
        assert_eq!(num_of(&page, "total_pages"), 3);
        let results = arr(field(&page, "results"));
        counts.push(results.len());
        for it in results {
            seen.push(str_of(it, "id").to_string());
        }
        if !bool_of(&page, "next_page_results") {
            break;
        }
        cursor = str_of(&page, "next_cursor").to_string();
    }
    assert_eq!(counts, [100, 100, 50]);
    let unique: HashSet<_> = seen.iter().collect();
    assert_eq!(unique.len(), 250);
    let w = fp.world();
    let p = w.project("WEB");
    assert_eq!(p.items.len(), 254, "four hidden items exist");
    let visible: HashSet<_> = p.visible_items().iter().map(|i| &i.id).collect();
    assert_eq!(unique, visible);
    assert_eq!(fp.requests().len(), 3);
    assert!(fp.requests().iter().all(|r| r.status == 200));

    // Default sort is newest first.
    let first = get(&fp, &format!("{path}?per_page=1")).json();
    let newest = p
        .visible_items()
        .iter()
        .max_by_key(|i| i.created_at)
        .unwrap()
        .id
        .clone();
    assert_eq!(str_of(&arr(field(&first, "results"))[0], "id"), newest);
    assert_eq!(str_of(&first, "prev_cursor"), "1:-1:1");
    assert!(!bool_of(&first, "prev_page_results"));
}

#[test]
fn per_page_defaults_to_1000_and_bad_values_are_rejected() {
    // CE 1.3.1: no per_page → pages of 1000; above 1000 → 400, not clamped.
    let fp = one_project(1150);
    let path = items_path(&fp, "WEB");
    let page = get(&fp, &path).json();
    assert_eq!(arr(field(&page, "results")).len(), 1000);
    assert_eq!(str_of(&page, "next_cursor"), "1000:1:0");
    let too_big = get(&fp, &format!("{path}?per_page=1001"));
    assert_eq!(too_big.status, 400);
    assert!(
        too_big.body.contains("Cannot exceed 1000"),
        "{}",
        too_big.body
    );
    let page = get(&fp, &format!("{path}?per_page=1000")).json();
    assert_eq!(arr(field(&page, "results")).len(), 1000);
    assert_eq!(get(&fp, &format!("{path}?per_page=x")).status, 400);
    assert_eq!(get(&fp, &format!("{path}?cursor=garbage")).status, 400);
    assert_eq!(get(&fp, &format!("{path}?cursor=100:-1:1")).status, 400);
    // Percent-encoded cursor (what URL builders send) works too.
    let page = get(&fp, &format!("{path}?per_page=100&cursor=100%3A11%3A0")).json();
    assert_eq!(arr(field(&page, "results")).len(), 50);
    assert_eq!(get(&fp, &format!("{path}?order_by=bogus")).status, 500);
}

#[test]
fn order_by_updated_at_puts_a_fresh_change_first() {
    let fp = one_project(120);
    let path = items_path(&fp, "WEB");
    let victim = fp.with_world(|w| {
        let id = w.project("WEB").visible_items()[40].id.clone();
        w.rename(&id, "Renamed ✓");
        id
    });
    let page = get(&fp, &format!("{path}?order_by=-updated_at&per_page=5")).json();
    let first = &arr(field(&page, "results"))[0];
    assert_eq!(str_of(first, "id"), victim);
    assert_eq!(str_of(first, "name"), "Renamed ✓");
    let page = get(
        &fp,
        &format!("{path}?order_by=updated_at&per_page=100&cursor=100:1:0"),
    )
    .json();
    let results = arr(field(&page, "results"));
    assert_eq!(str_of(results.last().unwrap(), "id"), victim);
    // updated_at strings are monotonic within one offset.
    let stamps: Vec<&str> = results.iter().map(|r| str_of(r, "updated_at")).collect();
    assert!(stamps.windows(2).all(|w| w[0] <= w[1]), "{stamps:?}");

    let page = get(&fp, &format!("{path}?order_by=sequence_id&per_page=3")).json();
    let seqs: Vec<u64> = arr(field(&page, "results"))
        .iter()
        .map(|r| num_of(r, "sequence_id"))
        .collect();
    assert_eq!(seqs, [1, 2, 3]);
}

#[test]
fn expand_and_fields_shape_items() {
    let fp = one_project(30);
    let path = items_path(&fp, "WEB");
    let (id, state_id) = fp.with_world(|w| {
        let it = w.project("WEB").visible_items()[0].clone();
        let p = w.project("WEB");
        let label = p.labels[1].id.clone();
        let user = w.members[2].id.clone();
        w.set_labels(&it.id, &[&label]);
        w.set_assignees(&it.id, &[&user]);
        (it.id, it.state)
    });
    let plain = get(&fp, &format!("{path}{id}/")).json();
    assert_eq!(str_of(&plain, "state"), state_id);
    assert!(matches!(&arr(field(&plain, "labels"))[0], Value::String(_)));
    for k in [
        "id",
        "name",
        "sequence_id",
        "project",
        "workspace",
        "state",
        "parent",
        "priority",
        "start_date",
        "target_date",
        "assignees",
        "labels",
        "description_html",
        "completed_at",
        "archived_at",
        "is_draft",
        "deleted_at",
        "created_at",
        "updated_at",
        "created_by",
        "updated_by",
        "sort_order",
        "external_id",
        "external_source",
        "estimate_point",
        "type_id",
    ] {
        assert!(keys(&plain).contains(&k.to_string()), "missing {k}");
    }

    let full = get(&fp, &format!("{path}{id}/?expand=state,labels,assignees")).json();
    let state = field(&full, "state");
    assert_eq!(keys(state), ["color", "group", "id", "name"]);
    assert_eq!(str_of(state, "id"), state_id);
    let label = &arr(field(&full, "labels"))[0];
    assert_eq!(str_of(label, "name"), "feature");
    let user = &arr(field(&full, "assignees"))[0];
    assert_eq!(str_of(user, "email"), "jose@example.com");
    assert_eq!(str_of(user, "first_name"), "José");

    let slim = get(&fp, &format!("{path}?fields=id,name,updated_at&per_page=2")).json();
    for r in arr(field(&slim, "results")) {
        assert_eq!(keys(r), ["id", "name", "updated_at"]);
    }
}

#[test]
fn hidden_and_deleted_items_are_404_and_unlisted() {
    let fp = one_project(10);
    let path = items_path(&fp, "WEB");
    let w = fp.world();
    let p = w.project("WEB");
    let hidden: Vec<_> = p.items.iter().filter(|i| !p.is_visible(i)).collect();
    assert_eq!(hidden.len(), 4);
    for h in &hidden {
        assert_eq!(get(&fp, &format!("{path}{}/", h.id)).status, 404);
    }
    let a = p.visible_items()[0].clone();
    let b = p.visible_items()[1].clone();
    let key = format!("workspaces/acme/work-items/WEB-{}/", a.sequence_id);
    assert_eq!(str_of(&get(&fp, &key).json(), "id"), a.id);
    let issues_alias = format!("workspaces/acme/projects/{}/issues/{}/", p.id, a.id);
    assert_eq!(get(&fp, &issues_alias).status, 200);

    fp.with_world(|w| w.delete(&a.id));
    assert_eq!(get(&fp, &format!("{path}{}/", a.id)).status, 404);
    assert_eq!(get(&fp, &key).status, 404);
    let r = delete(&fp, &format!("{path}{}/", b.id));
    assert_eq!(r.status, 204);
    assert_eq!(r.body, "");
    assert_eq!(get(&fp, &format!("{path}{}/", b.id)).status, 404);
    let list = get(&fp, &path).json();
    let ids: Vec<&str> = arr(field(&list, "results"))
        .iter()
        .map(|r| str_of(r, "id"))
        .collect();
    assert_eq!(ids.len(), 8);
    assert!(!ids.contains(&a.id.as_str()) && !ids.contains(&b.id.as_str()));

    let c = p.visible_items()[2].id.clone();
    fp.with_world(|w| w.archive(&c));
    assert_eq!(get(&fp, &format!("{path}{c}/")).status, 404);
}

/// Sends `body` with exactly the given Content-Type (none when `None`).
fn send_raw(fp: &FakePlane, method: &str, path: &str, ctype: Option<&str>, body: &str) -> Resp {
    let key = fp.with_world(|w| w.api_key.clone());
    let url = format!("{}{}", fp.api_url(), path);
    let mut rq = match method {
        "POST" => agent().post(&url),
        "PATCH" => agent().patch(&url),
        m => panic!("method {m}"),
    }
    .header("X-API-Key", &key);
    if let Some(ct) = ctype {
        rq = rq.header("Content-Type", ct);
    }
    collect(rq.send(body)).expect("transport error")
}

// The tests below pin what `tests/plane_conformance.py` found against real Plane CE 1.3.1.

#[test]
fn routing_redirects_a_missing_slash_and_404s_unrouted_paths_as_json() {
    let fp = one_project(3);
    let path = items_path(&fp, "WEB");
    let id = fp.world().project("WEB").visible_items()[0].id.clone();
    // Django's CommonMiddleware answers before authentication, for every method, and
    // keeps the query string.
    let r = try_get(
        &fp,
        &format!("{}?per_page=2", path.trim_end_matches('/')),
        None,
    )
    .unwrap();
    assert_eq!(r.status, 301);
    assert_eq!(r.body, "");
    let want = format!("/api/v1/{path}?per_page=2");
    assert_eq!(r.header("location"), Some(want.as_str()));
    let r = send(&fp, "PATCH", &format!("{path}{id}"), r#"{"name":"x"}"#);
    assert_eq!(r.status, 301);
    assert_ne!(fp.world().item(&id).unwrap().name, "x", "not applied");
    // Unrouted paths, ids that are not UUIDs included: Plane's JSON 404, no auth needed.
    for unrouted in [
        "workspaces/acme/unknown/".to_string(),
        format!("{path}not-a-uuid/"),
        format!("{path}{}/", id.to_uppercase()),
        "workspaces/acme/projects/WEB/work-items/".to_string(),
        "users/me/extra".to_string(),
    ] {
        let r = try_get(&fp, &unrouted, None).unwrap();
        assert_eq!(r.status, 404, "{unrouted}");
        assert_eq!(r.body, r#"{"error": "Page not found."}"#, "{unrouted}");
        assert_eq!(r.header("content-type"), Some("application/json"));
    }
    // A routed id that does not exist is the view's 404, counted by the throttle.
    let r = get(&fp, &format!("{path}{}/", fp.with_world(|w| w.new_uuid())));
    assert_eq!(r.status, 404);
    assert_eq!(
        str_of(&r.json(), "error"),
        "The requested resource does not exist."
    );
    assert!(r.header("x-ratelimit-remaining").is_some());
}

#[test]
fn unknown_project_is_403_for_items_and_states_but_lists_nothing_elsewhere() {
    let fp = one_project(3);
    let ghost = fp.with_world(|w| w.new_uuid());
    let item = fp.world().project("WEB").visible_items()[0].id.clone();
    let base = format!("workspaces/acme/projects/{ghost}/");
    for denied in [
        format!("{base}work-items/"),
        format!("{base}issues/"),
        format!("{base}work-items/{item}/"),
        format!("{base}states/"),
        "workspaces/acme/work-items/NOPE-1/".to_string(),
    ] {
        let r = get(&fp, &denied);
        assert_eq!(r.status, 403, "{denied}");
        assert_eq!(
            str_of(&r.json(), "detail"),
            "You do not have permission to perform this action."
        );
        // Permission classes run before the throttle.
        assert_eq!(r.header("x-ratelimit-remaining"), None, "{denied}");
    }
    let r = send(
        &fp,
        "POST",
        &format!("{base}work-items/"),
        r#"{"name":"x"}"#,
    );
    assert_eq!(r.status, 403);
    let labels = get(&fp, &format!("{base}labels/"));
    assert_eq!(labels.status, 200);
    assert_eq!(num_of(&labels.json(), "total_count"), 0);
    assert_eq!(get(&fp, &format!("{base}members/")).body, "[]");
    let r = get(&fp, &base);
    assert_eq!(r.status, 404);
    assert_eq!(
        str_of(&r.json(), "error"),
        "The requested resource does not exist."
    );
    // A project the token owner is not a member of is refused the same way.
    let me = fp.world().me.id;
    fp.with_world(|w| w.projects[0].member_ids.retain(|m| *m != me));
    assert_eq!(get(&fp, &items_path(&fp, "WEB")).status, 403);
}

#[test]
fn archived_project_is_listed_with_empty_lists_but_its_items_still_take_writes() {
    let fp = FakePlane::start(World::generate(&[3, 2], 7));
    let (pid, item, seq) = fp.with_world(|w| {
        let it = w.projects[0].visible_items()[0].clone();
        w.projects[0].archived_at = Some(w.now());
        (w.projects[0].id.clone(), it.id, it.sequence_id)
    });
    let base = format!("workspaces/acme/projects/{pid}/");
    let projects = get(&fp, "workspaces/acme/projects/").json();
    let listed = arr(field(&projects, "results"));
    assert_eq!(listed.len(), 2, "archived projects are still listed");
    assert!(matches!(field(&listed[0], "archived_at"), Value::String(_)));
    assert_eq!(get(&fp, &base).status, 200);
    for empty in ["work-items/", "states/", "labels/"] {
        let page = get(&fp, &format!("{base}{empty}")).json();
        assert_eq!(num_of(&page, "total_count"), 0, "{empty}");
    }
    assert_eq!(get(&fp, &format!("{base}work-items/{item}/")).status, 404);
    let key = format!("workspaces/acme/work-items/WEB-{seq}/");
    assert_eq!(get(&fp, &key).status, 404);
    assert!(arr(&get(&fp, &format!("{base}members/")).json()).len() > 1);
    let r = send(
        &fp,
        "PATCH",
        &format!("{base}work-items/{item}/"),
        r#"{"priority":"high"}"#,
    );
    assert_eq!(r.status, 200);
    let r = send(
        &fp,
        "POST",
        &format!("{base}work-items/"),
        r#"{"name":"late"}"#,
    );
    assert_eq!(r.status, 201);
}

#[test]
fn archived_and_draft_items_vanish_but_can_be_patched_back() {
    let fp = one_project(3);
    let path = items_path(&fp, "WEB");
    let r = send(
        &fp,
        "POST",
        &path,
        r#"{"name":"Probe","external_id":"e-1","external_source":"cal"}"#,
    );
    let id = str_of(&r.json(), "id").to_string();
    let one = format!("{path}{id}/");
    let listed = |fp: &FakePlane| {
        let page = get(fp, &format!("{path}?fields=id")).json();
        arr(field(&page, "results"))
            .iter()
            .any(|r| str_of(r, "id") == id)
    };
    let by_ext = format!("{path}?external_id=e-1&external_source=cal");
    for (hide, show) in [
        (r#"{"archived_at":"2026-05-01"}"#, r#"{"archived_at":null}"#),
        (r#"{"is_draft":true}"#, r#"{"is_draft":false}"#),
    ] {
        assert_eq!(send(&fp, "PATCH", &one, hide).status, 200, "{hide}");
        assert_eq!(get(&fp, &one).status, 404, "{hide}");
        assert!(!listed(&fp), "{hide}");
        // Plane's external-id lookup and PATCH use `Issue.objects`: hidden items are found.
        assert_eq!(str_of(&get(&fp, &by_ext).json(), "id"), id, "{hide}");
        assert_eq!(
            send(&fp, "PATCH", &one, r#"{"priority":"low"}"#).status,
            200
        );
        assert_eq!(send(&fp, "PATCH", &one, show).status, 200, "{show}");
        assert!(listed(&fp), "{show}");
    }
    let r = send(
        &fp,
        "PATCH",
        &one,
        r#"{"archived_at":"2026-05-01T10:00:00Z"}"#,
    );
    assert_eq!(r.status, 400);
    let r = send(&fp, "PATCH", &one, r#"{"is_draft":"maybe"}"#);
    assert_eq!(r.body, r#"{"is_draft":["Must be a valid boolean."]}"#);
    assert_eq!(delete(&fp, &one).status, 204);
    assert_eq!(get(&fp, &by_ext).status, 404, "deleted items are not found");
}

#[test]
fn pagination_edge_cases_follow_ce_1_3_1() {
    let fp = one_project(6);
    let path = items_path(&fp, "WEB");
    let order: Vec<String> = arr(field(
        &get(&fp, &format!("{path}?fields=id")).json(),
        "results",
    ))
    .iter()
    .map(|r| str_of(r, "id").to_string())
    .collect();
    let ids = |q: &str| -> Vec<String> {
        let page = get(&fp, &format!("{path}?fields=id&{q}")).json();
        arr(field(&page, "results"))
            .iter()
            .map(|r| str_of(r, "id").to_string())
            .collect()
    };
    // The page is positioned by per_page, not by the cursor's own value.
    assert_eq!(ids("per_page=2&cursor=1:2:0"), order[4..6]);
    assert_eq!(ids("per_page=2&cursor=2.0:1:0"), order[2..4]);
    assert_eq!(ids("per_page=2&cursor=2:1:1"), order[2..4]);
    for (q, status) in [
        ("per_page=0", 500),
        ("per_page=-1", 500),
        // A "previous" cursor made for another page size: Django's negative slice.
        ("per_page=2&cursor=1:1:1", 500),
        ("per_page=2&cursor=2:-1:0", 400),
        ("cursor=a:b", 400),
    ] {
        assert_eq!(get(&fp, &format!("{path}?{q}")).status, status, "{q}");
    }
    let r = get(&fp, &format!("{path}?cursor=2:-1:0"));
    assert_eq!(r.body, r#"{"detail":"Error in parsing"}"#);
    let page = get(&fp, &format!("{path}?per_page=2&cursor=2:2:0")).json();
    assert!(!bool_of(&page, "next_page_results"));
    assert_eq!(str_of(&page, "next_cursor"), "2:3:0", "always present");
}

#[test]
fn foreign_ids_are_dropped_and_unknown_ids_are_400_by_index() {
    let fp = FakePlane::start(World::generate(&[3, 2], 7));
    let path = items_path(&fp, "WEB");
    let (id, own, other, other_state, stranger) = fp.with_world(|w| {
        let id = w.project("WEB").visible_items()[0].id.clone();
        let own = w.project("WEB").labels[0].id.clone();
        let other = w.project("OPS").labels[0].id.clone();
        let other_state = w.project("OPS").states[1].id.clone();
        let stranger = w.colleague().id.clone();
        w.projects[0].member_ids.retain(|m| *m != stranger);
        (id, own, other, other_state, stranger)
    });
    let one = format!("{path}{id}/");
    let body = format!(r#"{{"labels":["{own}","{other}"],"assignees":["{stranger}"]}}"#);
    let r = send(&fp, "PATCH", &one, &body);
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(
        arr(field(&v, "labels")).len(),
        1,
        "another project's label is dropped"
    );
    assert!(
        arr(field(&v, "assignees")).is_empty(),
        "a non-member is dropped"
    );
    let ghost = fp.with_world(|w| w.new_uuid());
    let r = send(
        &fp,
        "PATCH",
        &one,
        &format!(r#"{{"labels":["{own}","{ghost}"]}}"#),
    );
    assert_eq!(
        r.body,
        format!(r#"{{"labels":{{"1":["Invalid pk \"{ghost}\" - object does not exist."]}}}}"#)
    );
    let r = send(&fp, "PATCH", &one, r#"{"labels":[true]}"#);
    assert!(r.body.contains("received bool"), "{}", r.body);
    let r = send(&fp, "PATCH", &one, &format!(r#"{{"state":"{ghost}"}}"#));
    assert_eq!(
        r.body,
        format!(r#"{{"state":["Invalid pk \"{ghost}\" - object does not exist."]}}"#)
    );
    let r = send(
        &fp,
        "PATCH",
        &one,
        &format!(r#"{{"state":"{other_state}"}}"#),
    );
    assert_eq!(
        r.body,
        r#"{"non_field_errors":["State is not valid please pass a valid state_id"]}"#
    );
}

#[test]
fn a_body_without_a_json_content_type_is_415_unless_empty() {
    let fp = one_project(2);
    let path = items_path(&fp, "WEB");
    let one = format!("{path}{}/", fp.world().project("WEB").visible_items()[0].id);
    let r = send_raw(&fp, "PATCH", &one, None, r#"{"name":"x"}"#);
    assert_eq!(r.status, 415);
    assert_eq!(
        str_of(&r.json(), "detail"),
        r#"Unsupported media type "" in request."#
    );
    assert_eq!(
        send_raw(&fp, "PATCH", &one, Some("text/plain"), "{}").status,
        415
    );
    assert_eq!(send_raw(&fp, "PATCH", &one, None, "").status, 200);
    assert_eq!(
        send_raw(&fp, "PATCH", &one, Some("text/plain"), "").status,
        200
    );
    let r = send_raw(&fp, "POST", &path, Some("application/json"), "");
    assert_eq!(r.body, r#"{"name":["This field is required."]}"#);
}

#[test]
fn answers_carry_the_key_sets_of_ce_1_3_1() {
    let fp = one_project(2);
    let me = get(&fp, "users/me/").json();
    let mut want = [
        "avatar",
        "avatar_url",
        "display_name",
        "email",
        "first_name",
        "id",
        "last_name",
    ];
    want.sort();
    assert_eq!(keys(&me), want);
    let pid = fp.world().project("WEB").id.clone();
    let detail = get(&fp, &format!("workspaces/acme/projects/{pid}/")).json();
    let listed = get(&fp, "workspaces/acme/projects/").json();
    let listed = &arr(field(&listed, "results"))[0];
    assert_eq!(keys(&detail).len(), 43);
    assert!(!keys(&detail).contains(&"sort_order".to_string()));
    assert!(keys(listed).contains(&"sort_order".to_string()));
    let item = get(&fp, &format!("{}?per_page=1", items_path(&fp, "WEB"))).json();
    let item = &arr(field(&item, "results"))[0];
    assert_eq!(keys(item).len(), 29);
    for k in ["type", "point", "description_binary"] {
        assert!(matches!(field(item, k), Value::Null), "{k}");
    }
}

#[test]
fn rate_limit_429_then_recovery_after_window() {
    let fp = one_project(1);
    fp.with_world(|w| {
        w.rate_limit = 3;
        w.rate_window = Duration::from_secs(2);
    });
    let started = Instant::now();
    for expect in ["2", "1", "0"] {
        let r = get(&fp, "users/me/");
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-ratelimit-remaining"), Some(expect));
        let reset: u64 = r.header("x-ratelimit-reset").unwrap().parse().unwrap();
        assert!(reset > 1_600_000_000);
    }
    let r = get(&fp, "users/me/");
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "test machine too slow"
    );
    assert_eq!(r.status, 429);
    assert_eq!(
        r.body,
        r#"{"error_code":5900,"error_message":"RATE_LIMIT_EXCEEDED"}"#
    );
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    assert_eq!(r.header("x-ratelimit-remaining"), None);
    std::thread::sleep(Duration::from_millis(2100).saturating_sub(started.elapsed()));
    let r = get(&fp, "users/me/");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-ratelimit-remaining"), Some("2"));
    // Bad keys are rejected before the throttle and do not use up the budget.
    assert_eq!(try_get(&fp, "users/me/", None).unwrap().status, 401);
}

#[test]
fn queued_faults_hit_matching_requests_once() {
    let fp = one_project(20);
    let path = items_path(&fp, "WEB");
    fp.with_world(|w| {
        w.push_fault(Fault::Status(502));
        w.push_fault(Fault::Status(500));
        w.push_fault(Fault::Garbage);
        w.push_fault(Fault::TruncatedJson);
    });
    let r = get(&fp, "users/me/");
    assert_eq!(r.status, 502);
    assert!(r.body.contains("nginx"));
    let r = get(&fp, "users/me/");
    assert_eq!(r.status, 500);
    assert_eq!(
        str_of(&r.json(), "error"),
        "Something went wrong please try again later"
    );
    let r = get(&fp, &path);
    assert_eq!(r.status, 200);
    assert!(json::from_str::<Value>(&r.body).is_err());
    let r = get(&fp, &path);
    assert_eq!(r.status, 200);
    assert!(r.body.starts_with("{\"count\":"));
    assert!(json::from_str::<Value>(&r.body).is_err(), "truncated");
    assert_eq!(get(&fp, &path).status, 200);

    // Path-scoped: users/me/ passes, the listing is hit.
    fp.with_world(|w| w.push_fault_for("/work-items/", Fault::Close));
    assert_eq!(get(&fp, "users/me/").status, 200);
    assert!(try_get(&fp, &path, Some(&fp.world().api_key)).is_err());
    fp.with_world(|w| w.push_fault(Fault::CloseMidBody));
    assert!(try_get(&fp, &path, Some(&fp.world().api_key)).is_err());
    fp.with_world(|w| w.push_fault(Fault::Delay(Duration::from_millis(300))));
    let t = Instant::now();
    assert_eq!(get(&fp, &path).status, 200);
    assert!(t.elapsed() >= Duration::from_millis(300));
    assert!(fp.world().faults.is_empty());
    let statuses: Vec<u16> = fp.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [502, 500, 200, 200, 200, 200, 0, 200, 200]);
}

#[test]
fn create_conflict_put_405_and_patch() {
    let fp = one_project(5);
    let path = items_path(&fp, "WEB");
    let r = send(&fp, "POST", &path, r#"{"description_html":"<p>x</p>"}"#);
    assert_eq!(r.status, 400);
    assert!(r.body.contains("This field is required."));
    let r = send(
        &fp,
        "POST",
        &path,
        r#"{"name":"x","start_date":"2026-06-02","target_date":"2026-06-01"}"#,
    );
    assert_eq!(r.status, 400);
    assert_eq!(
        send(
            &fp,
            "POST",
            &path,
            r#"{"name":"x","target_date":"2026-02-30"}"#
        )
        .status,
        400
    );
    assert_eq!(
        send(&fp, "POST", &path, r#"{"name":"x","priority":"meh"}"#).status,
        400
    );
    assert_eq!(send(&fp, "POST", &path, "not json").status, 400);

    let body = r#"{"name":"Dentist \"checkup\" 🦷","target_date":"2026-06-01","priority":"high","external_id":"uid-1@cal","external_source":"calplanebot"}"#;
    let r = send(&fp, "POST", &path, body);
    assert_eq!(r.status, 201, "{}", r.body);
    let created = r.json();
    let id = str_of(&created, "id").to_string();
    assert_eq!(str_of(&created, "name"), "Dentist \"checkup\" 🦷");
    assert_eq!(num_of(&created, "sequence_id"), 10);
    assert_eq!(str_of(&created, "description_html"), "<p></p>");
    assert_eq!(str_of(&created, "created_by"), fp.world().me.id);

    let r = send(&fp, "POST", &path, body);
    assert_eq!(r.status, 409);
    assert_eq!(str_of(&r.json(), "id"), id);

    // CE 1.3.1 routes no PUT: a repeat create is 409 + PATCH of the named id.
    let put =
        r#"{"name":"Dentist (moved)","external_id":"uid-1@cal","external_source":"calplanebot"}"#;
    for target in [path.clone(), format!("{path}{id}/")] {
        let r = send(&fp, "PUT", &target, put);
        assert_eq!(r.status, 405, "{target}");
        assert_eq!(r.body, r#"{"detail":"Method \"PUT\" not allowed."}"#);
    }
    let r = send(
        &fp,
        "PATCH",
        &format!("{path}{id}/"),
        r#"{"name":"Dentist (moved)"}"#,
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        str_of(&r.json(), "target_date"),
        "2026-06-01",
        "partial update"
    );

    let found = get(
        &fp,
        &format!("{path}?external_id=uid-1%40cal&external_source=calplanebot"),
    );
    assert_eq!(str_of(&found.json(), "name"), "Dentist (moved)");
    let missing = get(
        &fp,
        &format!("{path}?external_id=nope&external_source=calplanebot"),
    );
    assert_eq!(missing.status, 404);

    let (done, label_a, label_b) = fp.with_world(|w| {
        let p = w.project("WEB");
        (
            p.state_in_group("completed").unwrap().id.clone(),
            p.labels[0].id.clone(),
            p.labels[2].id.clone(),
        )
    });
    let item_path = format!("{path}{id}/");
    let r = send(
        &fp,
        "PATCH",
        &item_path,
        &format!(r#"{{"labels":["{label_a}"]}}"#),
    );
    assert_eq!(r.status, 200);
    let r = send(
        &fp,
        "PATCH",
        &item_path,
        &format!(r#"{{"labels":["{label_b}"],"state":"{done}"}}"#),
    );
    let v = r.json();
    assert_eq!(
        arr(field(&v, "labels")).len(),
        1,
        "labels replace, not merge"
    );
    assert!(matches!(&arr(field(&v, "labels"))[0], Value::String(l) if *l == label_b));
    assert!(matches!(field(&v, "completed_at"), Value::String(_)));
    assert_eq!(
        send(&fp, "PATCH", &item_path, r#"{"labels":["not-a-label"]}"#).status,
        400
    );

    // Wrong media type, like DRF.
    let key = fp.world().api_key;
    let r = collect(
        agent()
            .patch(format!("{}{}", fp.api_url(), item_path))
            .header("X-API-Key", &key)
            .header("Content-Type", "text/plain")
            .send("{}"),
    )
    .unwrap();
    assert_eq!(r.status, 415);
}

#[test]
fn unicode_and_escapes_round_trip() {
    let fp = one_project(40);
    let path = items_path(&fp, "WEB");
    let w = fp.world();
    let odd: Vec<_> = w
        .project("WEB")
        .visible_items()
        .into_iter()
        .filter(|i| !i.name.is_ascii())
        .cloned()
        .collect();
    assert!(odd.len() >= 3);
    let tricky = fp.with_world(|w| {
        let id = w.project("WEB").visible_items()[0].id.clone();
        w.rename(&id, "a\"b\\c\td\u{1}e\n😀 <p>&amp;");
        id
    });
    let v = get(&fp, &format!("{path}{tricky}/")).json();
    assert_eq!(str_of(&v, "name"), "a\"b\\c\td\u{1}e\n😀 <p>&amp;");
    for it in odd {
        let v = get(&fp, &format!("{path}{}/", it.id)).json();
        assert_eq!(str_of(&v, "name"), it.name);
        assert_eq!(str_of(&v, "description_html"), it.description_html);
    }
}

#[test]
fn datetimes_use_project_offsets() {
    assert_eq!(fmt_datetime(0, 0), "1970-01-01T00:00:00Z");
    assert_eq!(
        fmt_datetime(1_500_000, 330),
        "1970-01-01T05:30:01.500000+05:30"
    );
    assert_eq!(fmt_datetime(0, -420), "1969-12-31T17:00:00-07:00");
    let fp = FakePlane::start(World::generate(&[3, 3, 3], 1));
    let projects = get(&fp, "workspaces/acme/projects/").json();
    let mut suffixes = Vec::new();
    for p in arr(field(&projects, "results")) {
        let pid = str_of(p, "id");
        let it = get(
            &fp,
            &format!("workspaces/acme/projects/{pid}/work-items/?per_page=1"),
        )
        .json();
        let ts = str_of(&arr(field(&it, "results"))[0], "created_at").to_string();
        suffixes.push(ts[ts.len() - 6..].to_string());
    }
    assert_eq!(suffixes[1], "+05:30");
    assert!(suffixes[0].ends_with('Z'));
    assert_eq!(suffixes[2], "-07:00");
    let states = get(
        &fp,
        &format!(
            "workspaces/acme/projects/{}/states/",
            fp.world().projects[0].id
        ),
    )
    .json();
    let groups: Vec<&str> = arr(field(&states, "results"))
        .iter()
        .map(|s| str_of(s, "group"))
        .collect();
    assert_eq!(
        groups,
        [
            "backlog",
            "unstarted",
            "started",
            "started",
            "completed",
            "cancelled"
        ]
    );
}

#[test]
fn generation_is_deterministic() {
    let a = World::generate(&[50, 20], 42);
    let b = World::generate(&[50, 20], 42);
    let c = World::generate(&[50, 20], 43);
    assert_eq!(a.projects, b.projects);
    assert_eq!(a.api_key, b.api_key);
    assert_ne!(a.projects[0].items[0].id, c.projects[0].items[0].id);
    let id = &a.projects[0].items[0].id;
    assert_eq!(id.len(), 36);
    assert_eq!(&id[14..15], "4", "UUID version 4");
    assert!(
        matches!(&id[19..20], "8" | "9" | "a" | "b"),
        "RFC 4122 variant"
    );
    let with_due = a.projects[0]
        .visible_items()
        .iter()
        .filter(|i| i.target_date.is_some())
        .count();
    assert!((25..=50).contains(&with_due), "{with_due}");
}

#[test]
fn webhook_signature_matches_rfc4231_and_payload_shape() {
    // RFC 4231 test case 2.
    assert_eq!(
        sign_webhook("Jefe", b"what do ya want for nothing?"),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
    let w = World::generate(&[3], 5);
    let item = w.projects[0].visible_items()[0].clone();
    let actor = w.colleague().id.clone();
    let body = w.webhook_payload(
        &item.id,
        "updated",
        &actor,
        Some(("name", Some("old"), Some(&item.name))),
    );
    let v: Value = json::from_str(&body).unwrap();
    assert_eq!(str_of(&v, "event"), "issue");
    assert_eq!(str_of(&v, "action"), "updated");
    assert_eq!(str_of(&v, "workspace_id"), w.workspace_id);
    let data = field(&v, "data");
    assert_eq!(str_of(data, "id"), item.id);
    assert!(matches!(field(data, "state"), Value::Object(_)));
    assert!(matches!(
        field(data, "description_stripped"),
        Value::String(_)
    ));
    let activity = field(&v, "activity");
    assert_eq!(str_of(activity, "field"), "name");
    assert_eq!(str_of(activity, "old_value"), "old");
    assert_eq!(str_of(field(activity, "actor"), "id"), actor);
    assert_eq!(sign_webhook("plane_wh_abc", body.as_bytes()).len(), 64);
}

/// An item of WEB with both dates, as (id, detail path).
fn dated_item(fp: &FakePlane) -> (String, String) {
    let path = items_path(fp, "WEB");
    let id = fp.with_world(|w| {
        let id = w.project("WEB").visible_items()[0].id.clone();
        w.set_start_date(&id, Some("2026-06-01"));
        w.set_target_date(&id, Some("2026-06-10"));
        id
    });
    (id.clone(), format!("{path}{id}/"))
}

#[test]
fn updated_at_moves_again_after_a_write_unless_switched_off() {
    let fp = one_project(5);
    let (id, item_path) = dated_item(&fp);
    let r = send(&fp, "PATCH", &item_path, r#"{"name":"Renamed"}"#);
    assert_eq!(r.status, 200);
    let answered = str_of(&r.json(), "updated_at").to_string();
    std::thread::sleep(fake_plane::BUMP_DELAY + Duration::from_millis(40));
    let now = get(&fp, &item_path);
    let bumped = str_of(&now.json(), "updated_at").to_string();
    // WEB renders in UTC (`Z`), so string order is time order here.
    assert!(bumped > answered, "{bumped} vs the answer's {answered}");
    assert_eq!(
        str_of(&now.json(), "name"),
        "Renamed",
        "only updated_at moves"
    );
    assert!(fp.world().pending_bumps.is_empty());

    // A POST is bumped too.
    let path = items_path(&fp, "WEB");
    let created = send(&fp, "POST", &path, r#"{"name":"New one"}"#).json();
    std::thread::sleep(fake_plane::BUMP_DELAY + Duration::from_millis(40));
    let new_id = str_of(&created, "id");
    let later = get(&fp, &format!("{path}{new_id}/")).json();
    assert!(str_of(&later, "updated_at") > str_of(&created, "updated_at"));

    fp.with_world(|w| w.bump_after_write = false);
    let r = send(&fp, "PATCH", &item_path, r#"{"name":"Again"}"#).json();
    std::thread::sleep(fake_plane::BUMP_DELAY + Duration::from_millis(40));
    let now = get(&fp, &item_path).json();
    assert_eq!(str_of(&now, "updated_at"), str_of(&r, "updated_at"));
    assert!(
        fp.world().pending_bumps.is_empty(),
        "no bump queued for {id}"
    );
}

#[test]
fn request_log_keeps_write_bodies() {
    let fp = one_project(3);
    let (_, item_path) = dated_item(&fp);
    let body = r#"{"target_date":null}"#;
    assert_eq!(send(&fp, "PATCH", &item_path, body).status, 200);
    get(&fp, &item_path);
    let log = fp.requests();
    assert_eq!(log.len(), 2);
    assert_eq!(
        (log[0].method.as_str(), log[0].body.as_str()),
        ("PATCH", body)
    );
    assert_eq!((log[1].method.as_str(), log[1].body.as_str()), ("GET", ""));
}

#[test]
fn api_writes_echo_as_one_webhook_per_field_from_me() {
    let fp = one_project(3);
    let (id, item_path) = dated_item(&fp);
    // A state the item is not in yet, so that all three fields change.
    let done = fp.with_world(|w| {
        let p = w.project("WEB");
        let current = &w.item(&id).unwrap().state;
        let other = p
            .states
            .iter()
            .find(|s| &s.id != current && s.group != "triage");
        other.unwrap().id.clone()
    });
    let body = format!(r#"{{"name":"Echo","target_date":"2026-06-12","state":"{done}"}}"#);
    assert_eq!(send(&fp, "PATCH", &item_path, &body).status, 200);
    let w = fp.world();
    let write = w.api_writes.last().unwrap().clone();
    assert_eq!(
        (write.item_id.as_str(), write.action.as_str()),
        (id.as_str(), "updated")
    );
    let fields: Vec<&str> = write.changes.iter().map(|c| c.field.as_str()).collect();
    assert_eq!(fields, ["name", "state", "target_date"]);
    let payloads = w.echo_payloads(&write);
    assert_eq!(payloads.len(), 3, "one delivery per changed field");
    for (payload, field) in payloads.iter().zip(&fields) {
        let v: Value = json::from_str(payload).unwrap();
        let activity = self::field(&v, "activity");
        assert_eq!(str_of(self::field(activity, "actor"), "id"), w.me.id);
        assert_eq!(str_of(activity, "field"), *field);
        assert_eq!(str_of(self::field(&v, "data"), "id"), id);
    }
    let target = &write.changes[2];
    assert_eq!(target.old.as_deref(), Some("2026-06-10"));
    assert_eq!(target.new.as_deref(), Some("2026-06-12"));

    // A create echoes once, action "created".
    let path = items_path(&fp, "WEB");
    send(&fp, "POST", &path, r#"{"name":"Fresh"}"#);
    let w = fp.world();
    let write = w.api_writes.last().unwrap();
    assert_eq!(write.action, "created");
    let echo = w.echo_payloads(write);
    assert_eq!(echo.len(), 1);
    assert!(echo[0].contains(r#""action":"created""#));

    // Sending the same values again changes nothing and echoes nothing.
    assert_eq!(send(&fp, "PATCH", &item_path, &body).status, 200);
    let w = fp.world();
    let write = w.api_writes.last().unwrap();
    assert_eq!((write.action.as_str(), write.changes.len()), ("updated", 0));
    assert!(w.echo_payloads(write).is_empty());
}

#[test]
fn one_date_patch_is_checked_against_the_stored_date_only_when_asked() {
    let fp = one_project(3);
    let (id, item_path) = dated_item(&fp);
    // CE 1.3.1: only dates in the same body are compared.
    let r = send(&fp, "PATCH", &item_path, r#"{"start_date":"2026-06-20"}"#);
    assert_eq!(r.status, 200, "{}", r.body);
    let it = fp.world().item(&id).unwrap().clone();
    assert_eq!(
        (it.start_date.as_deref(), it.target_date.as_deref()),
        (Some("2026-06-20"), Some("2026-06-10"))
    );

    // Newer Plane: checked against the stored target; clearing and unrelated edits pass.
    fp.with_world(|w| w.check_dates_against_item = true);
    let r = send(&fp, "PATCH", &item_path, r#"{"target_date":"2026-06-15"}"#);
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body,
        r#"{"non_field_errors":["Start date cannot exceed target date"]}"#
    );
    assert_eq!(
        send(&fp, "PATCH", &item_path, r#"{"name":"x"}"#).status,
        200
    );
    assert_eq!(
        send(&fp, "PATCH", &item_path, r#"{"target_date":"2026-06-20"}"#).status,
        200
    );
    assert_eq!(
        send(&fp, "PATCH", &item_path, r#"{"start_date":null}"#).status,
        200
    );
}

// ---------------------------------------------------------------------------------------
// calplanebot's PlaneClient against the fake
// ---------------------------------------------------------------------------------------

use calplanebot::config::Secret;
use calplanebot::plane::{Created, ItemPatch, NewWorkItem, PlaneClient, PlaneError, Timestamp};

fn client(fp: &FakePlane) -> PlaneClient {
    let w = fp.world();
    let mut c = PlaneClient::new(
        &fp.base_url(),
        &w.slug,
        Secret::new(w.api_key),
        Duration::from_secs(10),
    )
    .unwrap();
    c.set_retry_delay(Duration::from_millis(10));
    c
}

fn project_id(fp: &FakePlane, ident: &str) -> String {
    fp.with_world(|w| w.project(ident).id.clone())
}

fn writes(fp: &FakePlane) -> Vec<(String, u16, String)> {
    fp.requests()
        .into_iter()
        .filter(|r| r.method != "GET")
        .map(|r| (r.method, r.status, r.body))
        .collect()
}

#[test]
fn client_patches_only_the_given_fields_and_clears_a_date() {
    let fp = one_project(5);
    let (id, _) = dated_item(&fp);
    let pid = project_id(&fp, "WEB");
    let before = fp.world().item(&id).unwrap().clone();
    let mut plane = client(&fp);
    let patch = ItemPatch {
        name: Some("Moved «here»".into()),
        target_date: Some(None),
        ..ItemPatch::default()
    };
    let item = plane.update_work_item(&pid, &id, &patch).unwrap();
    assert_eq!(item.name, "Moved «here»");
    assert_eq!(item.target_date, None);
    assert_eq!(item.start_date.as_deref(), Some("2026-06-01"));
    assert_eq!(item.state.id, before.state, "unexpanded state id");
    assert_eq!(
        writes(&fp),
        [(
            "PATCH".to_string(),
            200,
            r#"{"name":"Moved «here»","target_date":null}"#.to_string()
        )]
    );
    let after = fp.world().item(&id).unwrap().clone();
    assert_eq!(
        (after.priority, after.labels, after.start_date),
        (before.priority, before.labels, before.start_date),
        "fields not in the patch are untouched"
    );
}

#[test]
fn client_create_then_repeat_gives_the_existing_id() {
    let fp = one_project(3);
    let pid = project_id(&fp, "WEB");
    let mut plane = client(&fp);
    let new = NewWorkItem {
        name: "Dentist".into(),
        target_date: Some("2026-06-02".into()),
        external_id: "uid-1@cal".into(),
        external_source: "calplanebot".into(),
        ..NewWorkItem::default()
    };
    let Created::New(item) = plane.create_work_item(&pid, &new).unwrap() else {
        panic!("not created");
    };
    assert_eq!(item.external_id.as_deref(), Some("uid-1@cal"));
    assert_eq!(item.target_date.as_deref(), Some("2026-06-02"));
    assert_eq!(
        plane.create_work_item(&pid, &new).unwrap(),
        Created::Existing(item.id.clone())
    );
    let statuses: Vec<u16> = writes(&fp).iter().map(|w| w.1).collect();
    assert_eq!(statuses, [201, 409]);

    let unsafe_create = NewWorkItem {
        external_id: String::new(),
        ..new
    };
    assert!(matches!(
        plane.create_work_item(&pid, &unsafe_create),
        Err(PlaneError::Setup(_))
    ));
    assert_eq!(fp.requests().len(), 2, "refused before sending");
    assert!(fp.requests().iter().all(|r| r.method != "PUT"));
}

#[test]
fn client_leaves_archived_projects_out() {
    // CE 1.3.1 lists an archived project but none of its items: syncing it would read as
    // every event deleted.
    let fp = FakePlane::start(World::generate(&[2, 2], 7));
    let archived = fp.with_world(|w| {
        w.projects[1].archived_at = Some(1_777_000_000_000_000);
        w.projects[1].id.clone()
    });
    let listed = get(&fp, &format!("workspaces/{}/projects/", fp.world().slug)).json();
    assert_eq!(
        arr(field(&listed, "results")).len(),
        2,
        "Plane still lists it"
    );
    let projects = client(&fp).projects().unwrap();
    assert_eq!(projects.len(), 1);
    assert!(projects.iter().all(|p| p.id != archived));
}

#[test]
fn client_lists_states_across_pages() {
    // The client asks for pages of 100; 200 extra states make three pages.
    let fp = one_project(3);
    fp.with_world(|w| {
        let project = w
            .projects
            .iter_mut()
            .find(|p| p.identifier == "WEB")
            .unwrap();
        let template = project.states[0].clone();
        for n in 0..200 {
            project.states.push(State {
                id: format!("00000000-0000-4000-8000-{n:012}"),
                name: format!("Extra {n}"),
                sequence: 100_000.0 + n as f64,
                default: false,
                ..template.clone()
            });
        }
    });
    let pid = project_id(&fp, "WEB");
    let states = client(&fp).states(&pid).unwrap();
    let groups: Vec<&str> = states.iter().take(6).map(|s| s.group.as_str()).collect();
    assert_eq!(
        groups,
        [
            "backlog",
            "unstarted",
            "started",
            "started",
            "completed",
            "cancelled"
        ]
    );
    assert_eq!(states.len(), 206);
    let ids: HashSet<_> = states.iter().map(|s| &s.id).collect();
    assert_eq!(ids.len(), 206, "no state listed twice");
    assert!(states
        .iter()
        .all(|s| !s.id.is_empty() && !s.name.is_empty()));
    assert_eq!(fp.requests().len(), 3, "three pages of at most 100");
}

#[test]
fn work_items_since_stops_after_the_page_that_reaches_the_watermark() {
    // OPS renders +05:30 offsets; the watermark is given in UTC.
    let fp = FakePlane::start(World::generate(&[2, 250], 11));
    let pid = project_id(&fp, "OPS");
    let mut by_update = fp
        .world()
        .project("OPS")
        .visible_items()
        .into_iter()
        .cloned()
        .collect::<Vec<_>>();
    by_update.sort_by_key(|i| std::cmp::Reverse(i.updated_at));
    let mark = fmt_datetime(by_update[150].updated_at, 0);
    let mut plane = client(&fp);

    let listing = plane.work_items_since(&pid, Some(&mark)).unwrap();
    let want: Vec<&str> = by_update[..=150].iter().map(|i| i.id.as_str()).collect();
    let got: Vec<&str> = listing.items.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(got, want, "newer and equal items, newest first");
    assert!(!listing.complete);
    assert!(listing.bad.is_empty());
    let queries: Vec<String> = fp.requests().into_iter().map(|r| r.query).collect();
    assert_eq!(queries.len(), 2, "stopped after page 2: {queries:?}");
    assert!(queries.iter().all(|q| q.contains("order_by=-updated_at")));
    assert!(queries[1].contains("cursor=100:1:0"));

    // Nothing newer: one request. No watermark: every page, complete.
    fp.clear_requests();
    let newest = fmt_datetime(by_update[0].updated_at + 1, 330);
    let idle = plane.work_items_since(&pid, Some(&newest)).unwrap();
    assert_eq!(
        (idle.items.len(), idle.complete, fp.requests().len()),
        (0, false, 1)
    );
    fp.clear_requests();
    let all = plane.work_items_since(&pid, None).unwrap();
    assert_eq!(
        (all.items.len(), all.complete, fp.requests().len()),
        (250, true, 3)
    );
    let (items, bad) = plane.work_items(&pid).unwrap();
    assert_eq!((items.len(), bad.len()), (250, 0));
}

#[test]
fn a_write_answer_is_stale_and_the_next_listing_shows_the_bump() {
    let fp = one_project(5);
    let (id, _) = dated_item(&fp);
    let pid = project_id(&fp, "WEB");
    let mut plane = client(&fp);
    let patch = ItemPatch {
        name: Some("Ours".into()),
        ..ItemPatch::default()
    };
    let answered = plane.update_work_item(&pid, &id, &patch).unwrap();
    std::thread::sleep(fake_plane::BUMP_DELAY + Duration::from_millis(40));
    let listing = plane
        .work_items_since(&pid, Some(&answered.updated_at))
        .unwrap();
    assert_eq!(listing.items[0].id, id);
    assert!(listing.items[0].updated() > answered.updated());
    assert!(Timestamp::parse(&answered.updated_at).is_some());
}

#[test]
fn client_retries_a_patch_after_503() {
    let fp = one_project(3);
    let (id, _) = dated_item(&fp);
    let pid = project_id(&fp, "WEB");
    fp.with_world(|w| w.push_fault_for("/work-items/", Fault::Status(503)));
    let mut plane = client(&fp);
    let patch = ItemPatch {
        target_date: Some(Some("2026-06-11".into())),
        ..ItemPatch::default()
    };
    let item = plane.update_work_item(&pid, &id, &patch).unwrap();
    assert_eq!(item.target_date.as_deref(), Some("2026-06-11"));
    let body = r#"{"target_date":"2026-06-11"}"#.to_string();
    assert_eq!(
        writes(&fp),
        [
            ("PATCH".to_string(), 503, body.clone()),
            ("PATCH".to_string(), 200, body)
        ]
    );
    assert_eq!(plane.stats.retries, 1);
}

#[test]
fn client_waits_out_a_429_then_succeeds() {
    let fp = one_project(3);
    let (id, _) = dated_item(&fp);
    let pid = project_id(&fp, "WEB");
    fp.with_world(|w| {
        w.rate_limit = 1;
        w.rate_window = Duration::from_secs(1);
    });
    let mut plane = client(&fp);
    // Someone else (another of our requests, outside the client) used the window up, so
    // the client has no X-RateLimit-Remaining to pace by and meets the 429.
    assert_eq!(get(&fp, "users/me/").status, 200);
    let started = Instant::now();
    let patch = ItemPatch {
        name: Some("After the limit".into()),
        ..ItemPatch::default()
    };
    let item = plane.update_work_item(&pid, &id, &patch).unwrap();
    assert_eq!(item.name, "After the limit");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "waited Retry-After"
    );
    let statuses: Vec<u16> = writes(&fp).iter().map(|w| w.1).collect();
    assert_eq!(statuses, [429, 200]);
    assert_eq!(plane.stats.rate_limited, 1);
}

#[test]
fn client_paces_writes_by_x_ratelimit_remaining_instead_of_meeting_429() {
    let fp = one_project(3);
    let (id, _) = dated_item(&fp);
    let pid = project_id(&fp, "WEB");
    fp.with_world(|w| {
        w.rate_limit = 1;
        w.rate_window = Duration::from_secs(1);
    });
    let mut plane = client(&fp);
    let started = Instant::now();
    plane.me().unwrap(); // answers X-RateLimit-Remaining: 0
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "paused for the reset"
    );
    let patch = ItemPatch {
        name: Some("Paced".into()),
        ..ItemPatch::default()
    };
    plane.update_work_item(&pid, &id, &patch).unwrap();
    assert!(fp.requests().iter().all(|r| r.status == 200));
    assert_eq!(plane.stats.rate_limited, 0);
}

#[test]
fn client_shows_validation_errors_with_their_field() {
    let fp = one_project(3);
    let (id, _) = dated_item(&fp);
    let pid = project_id(&fp, "WEB");
    let mut plane = client(&fp);
    let crossed = ItemPatch {
        start_date: Some(Some("2026-06-20".into())),
        target_date: Some(Some("2026-06-19".into())),
        ..ItemPatch::default()
    };
    let e = plane.update_work_item(&pid, &id, &crossed).unwrap_err();
    assert!(matches!(e, PlaneError::Status { status: 400, .. }), "{e:?}");
    let shown = e.to_string();
    assert!(
        shown.ends_with(&format!(
            "/work-items/{id}/: Start date cannot exceed target date"
        )),
        "{shown}"
    );
    let blank = ItemPatch {
        name: Some(" ".into()),
        ..ItemPatch::default()
    };
    let shown = plane
        .update_work_item(&pid, &id, &blank)
        .unwrap_err()
        .to_string();
    assert!(
        shown.ends_with(": name: This field may not be blank."),
        "{shown}"
    );
    assert!(!shown.contains(&fp.world().api_key), "no token in errors");
    assert_eq!(plane.stats.retries, 0, "a 400 is not retried");
}

// ---------------------------------------------------------------------------------------
// Cycles and modules (issue 12)
// ---------------------------------------------------------------------------------------

use calplanebot::plane::webhook::{self as hook, TimelineKind, WebhookEvent};
use calplanebot::plane::ModuleStatus;

/// The keys of a cycle in the REAL CE 1.3.1 list (2026-12-02), annotations included.
const REAL_CYCLE_KEYS: [&str; 28] = [
    "archived_at",
    "backlog_issues",
    "cancelled_issues",
    "completed_issues",
    "created_at",
    "created_by",
    "deleted_at",
    "description",
    "end_date",
    "external_id",
    "external_source",
    "id",
    "logo_props",
    "name",
    "owned_by",
    "progress_snapshot",
    "project",
    "sort_order",
    "start_date",
    "started_issues",
    "timezone",
    "total_issues",
    "unstarted_issues",
    "updated_at",
    "updated_by",
    "version",
    "view_props",
    "workspace",
];

/// The keys of a module in the REAL CE 1.3.1 list.
const REAL_MODULE_KEYS: [&str; 29] = [
    "archived_at",
    "backlog_issues",
    "cancelled_issues",
    "completed_issues",
    "created_at",
    "created_by",
    "deleted_at",
    "description",
    "description_html",
    "description_text",
    "external_id",
    "external_source",
    "id",
    "lead",
    "logo_props",
    "members",
    "name",
    "project",
    "sort_order",
    "start_date",
    "started_issues",
    "status",
    "target_date",
    "total_issues",
    "unstarted_issues",
    "updated_at",
    "updated_by",
    "view_props",
    "workspace",
];

fn sorted_keys(v: &Value) -> Vec<String> {
    let mut k = keys(v);
    k.sort();
    k
}

/// Three visible items of the first project, the first two moved to a completed state.
fn three_items_two_done(fp: &FakePlane) -> Vec<String> {
    fp.with_world(|w| {
        let ids: Vec<String> = w.projects[0]
            .visible_items()
            .iter()
            .take(3)
            .map(|i| i.id.clone())
            .collect();
        for id in &ids[..2] {
            w.set_state_group(id, "completed");
        }
        w.set_state_group(&ids[2], "backlog");
        ids
    })
}

#[test]
fn cycle_list_has_the_real_shape_zone_converted_days_and_counts() {
    let fp = FakePlane::start(World::generate(&[6, 2], 7));
    let ident = fp.with_world(|w| w.projects[0].identifier.clone());
    let pid = project_id(&fp, &ident);
    let items = three_items_two_done(&fp);
    let cycle = fp.with_world(|w| {
        // Fake "now" is 2026-05-01 09:00Z; Los Angeles is on daylight time (UTC-7).
        w.set_project_timezone(&ident, "America/Los_Angeles");
        let c = w.add_cycle(&ident, "Sprint 3", Some(("2026-05-04", "2026-05-15")));
        for id in &items {
            w.add_to_cycle(&c, id);
        }
        c
    });
    let slug = fp.world().slug;
    let page = get(
        &fp,
        &format!("workspaces/{slug}/projects/{pid}/cycles/?per_page=100"),
    )
    .json();
    let results = arr(field(&page, "results"));
    assert_eq!(results.len(), 1);
    let c = &results[0];
    assert_eq!(sorted_keys(c), REAL_CYCLE_KEYS.map(String::from).to_vec());
    assert_eq!(str_of(c, "id"), cycle);
    assert_eq!(
        str_of(c, "start_date"),
        "2026-05-04T07:00:01Z",
        "00:00:01 PDT"
    );
    assert_eq!(
        str_of(c, "end_date"),
        "2026-05-16T06:59:00Z",
        "23:59 PDT of the last day"
    );
    assert_eq!(
        str_of(c, "timezone"),
        "UTC",
        "the cycle's own field is not the project's"
    );
    assert_eq!(
        (num_of(c, "total_issues"), num_of(c, "completed_issues")),
        (3, 2)
    );
    assert_eq!(num_of(c, "backlog_issues"), 1);
    assert!(!bool_of(&page, "next_page_results"));
    // The project says which zone the days were stored in.
    let project = get(&fp, &format!("workspaces/{slug}/projects/{pid}/")).json();
    assert_eq!(str_of(&project, "timezone"), "America/Los_Angeles");
    // The detail answers the same object.
    let one = get(
        &fp,
        &format!("workspaces/{slug}/projects/{pid}/cycles/{cycle}/"),
    )
    .json();
    assert_eq!(str_of(&one, "end_date"), "2026-05-16T06:59:00Z");
    // Counts follow the items: one archived, one back to started.
    fp.with_world(|w| {
        w.archive(&items[0]);
        w.set_state_group(&items[1], "started");
    });
    let c = &arr(field(
        &get(&fp, &format!("workspaces/{slug}/projects/{pid}/cycles/")).json(),
        "results",
    ))[0]
        .clone();
    assert_eq!(
        (num_of(c, "total_issues"), num_of(c, "completed_issues")),
        (2, 0)
    );
    assert_eq!(num_of(c, "started_issues"), 1);
}

#[test]
fn a_positive_zone_moves_the_stored_start_to_the_day_before_in_utc() {
    let fp = one_project(2);
    let ident = fp.with_world(|w| w.projects[0].identifier.clone());
    let (pid, slug) = (project_id(&fp, &ident), fp.world().slug);
    fp.with_world(|w| {
        // As on the real server: Asia/Kolkata, 2026-12-21..2027-01-01 →
        // 2026-12-20T18:30:01Z .. 2027-01-01T18:29:00Z.
        w.set_project_timezone(&ident, "Asia/Kolkata");
        w.add_cycle(&ident, "Year end", Some(("2026-12-21", "2027-01-01")));
        // Starting today (in the project's zone): Plane stores "now".
        w.add_cycle(&ident, "Today", Some(("2026-05-01", "2026-05-03")));
        w.add_cycle(&ident, "Draft", None);
    });
    let now = fp.with_world(|w| w.now());
    let page = get(&fp, &format!("workspaces/{slug}/projects/{pid}/cycles/")).json();
    let by_name = |n: &str| {
        arr(field(&page, "results"))
            .iter()
            .find(|c| str_of(c, "name") == n)
            .unwrap_or_else(|| panic!("no cycle {n}"))
            .clone()
    };
    let year_end = by_name("Year end");
    assert_eq!(str_of(&year_end, "start_date"), "2026-12-20T18:30:01Z");
    assert_eq!(str_of(&year_end, "end_date"), "2027-01-01T18:29:00Z");
    let today = by_name("Today");
    let start = str_of(&today, "start_date");
    assert!(
        start < "2026-05-01T09:01:00Z" && start > "2026-05-01T08:59:00Z",
        "{start} (now = {now})"
    );
    let draft = by_name("Draft");
    assert!(matches!(field(&draft, "start_date"), Value::Null));
    assert!(matches!(field(&draft, "end_date"), Value::Null));
    // Newest first, as Plane orders by -created_at.
    let names: Vec<&str> = arr(field(&page, "results"))
        .iter()
        .map(|c| str_of(c, "name"))
        .collect();
    assert_eq!(names, ["Draft", "Today", "Year end"]);
}

#[test]
fn fake_zone_rules_match_the_system_tz_database() {
    // The fake converts with its own small table (so it shares nothing with calplanebot's
    // TZif reader); check every stored instant of 2026 and 2027 against the system's tz
    // database through GNU `date -f` (one process per zone).
    let (first, last) = (
        fake_plane::parse_date("2026-01-01").unwrap(),
        fake_plane::parse_date("2027-12-31").unwrap(),
    );
    for zone in fake_plane::KNOWN_ZONES {
        let mut input = String::new();
        let mut expected = Vec::new();
        for day in first..=last {
            let start = fake_plane::cycle_start_instant(zone, day, 0);
            let end = fake_plane::cycle_end_instant(zone, day);
            for t in [start, end] {
                input.push_str(&format!("@{}\n", t / 1_000_000));
                expected.push(format!(
                    "{} {}",
                    fake_plane::fmt_date(day),
                    if t == start { "00:00:01" } else { "23:59:00" }
                ));
                assert_eq!(fake_plane::local_day(zone, t), day, "{zone} {t}");
            }
        }
        let mut child = std::process::Command::new("date")
            .env("TZ", zone)
            .args(["-f", "-", "+%F %T"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("GNU date");
        use std::io::Write as _;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        let shown: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(String::from)
            .collect();
        assert_eq!(shown.len(), expected.len());
        for (got, want) in shown.iter().zip(&expected) {
            assert_eq!(got, want, "{zone}");
        }
    }
}

#[test]
fn archived_and_deleted_cycles_leave_the_list_and_their_detail_is_404() {
    let fp = one_project(2);
    let ident = fp.with_world(|w| w.projects[0].identifier.clone());
    let (pid, slug) = (project_id(&fp, &ident), fp.world().slug);
    let (old, gone, live) = fp.with_world(|w| {
        let old = w.add_cycle(&ident, "Old", Some(("2026-04-01", "2026-04-10")));
        let gone = w.add_cycle(&ident, "Gone", Some(("2026-05-04", "2026-05-08")));
        let live = w.add_cycle(&ident, "Live", Some(("2026-05-04", "2026-05-08")));
        w.archive_cycle(&old);
        w.delete_cycle(&gone);
        (old, gone, live)
    });
    let page = get(&fp, &format!("workspaces/{slug}/projects/{pid}/cycles/")).json();
    let ids: Vec<&str> = arr(field(&page, "results"))
        .iter()
        .map(|c| str_of(c, "id"))
        .collect();
    assert_eq!(ids, [live.as_str()]);
    for id in [&old, &gone] {
        let r = get(
            &fp,
            &format!("workspaces/{slug}/projects/{pid}/cycles/{id}/"),
        );
        assert_eq!(r.status, 404, "{}", r.body);
    }
    // Plane archives only cycles that have ended.
    let running = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        fp.with_world(|w| w.archive_cycle(&live))
    }));
    assert!(running.is_err());
    fp.with_world(|w| w.unarchive_cycle(&old));
    let page = get(&fp, &format!("workspaces/{slug}/projects/{pid}/cycles/")).json();
    assert_eq!(
        arr(field(&page, "results")).len(),
        2,
        "unarchived: listed again"
    );
}

#[test]
fn module_list_has_the_real_shape_and_plane_s_capped_group_counts() {
    let fp = one_project(6);
    let ident = fp.with_world(|w| w.projects[0].identifier.clone());
    let (pid, slug) = (project_id(&fp, &ident), fp.world().slug);
    let items = three_items_two_done(&fp);
    let module = fp.with_world(|w| {
        let m = w.add_module(
            &ident,
            "Milestone A",
            Some("2026-05-08"),
            Some("2026-05-20"),
        );
        w.set_module_status(&m, "in-progress");
        for id in &items {
            w.add_to_module(&m, id);
        }
        w.add_module(&ident, "Only target", None, Some("2026-05-24"));
        m
    });
    let list =
        |fp: &FakePlane| get(fp, &format!("workspaces/{slug}/projects/{pid}/modules/")).json();
    let page = list(&fp);
    let m = arr(field(&page, "results"))
        .iter()
        .find(|m| str_of(m, "id") == module)
        .unwrap()
        .clone();
    assert_eq!(sorted_keys(&m), REAL_MODULE_KEYS.map(String::from).to_vec());
    assert_eq!(
        (str_of(&m, "start_date"), str_of(&m, "target_date")),
        ("2026-05-08", "2026-05-20")
    );
    assert_eq!(str_of(&m, "status"), "in-progress");
    // Two of three are done, yet CE 1.3.1 counts distinct state groups: 1.
    assert_eq!(
        (num_of(&m, "total_issues"), num_of(&m, "completed_issues")),
        (3, 1)
    );
    fp.with_world(|w| w.module_counts_capped = false);
    let m = arr(field(&list(&fp), "results"))
        .iter()
        .find(|m| str_of(m, "id") == module)
        .unwrap()
        .clone();
    assert_eq!(num_of(&m, "completed_issues"), 2, "true counts when asked");
    // Archive needs completed or cancelled.
    fp.with_world(|w| {
        w.set_module_status(&module, "cancelled");
        w.archive_module(&module);
    });
    let ids: Vec<String> = arr(field(&list(&fp), "results"))
        .iter()
        .map(|m| str_of(m, "id").to_string())
        .collect();
    assert!(!ids.contains(&module), "archived: not listed");
    assert_eq!(
        get(
            &fp,
            &format!("workspaces/{slug}/projects/{pid}/modules/{module}/")
        )
        .status,
        404
    );
}

#[test]
fn timeline_lists_paginate_answer_disabled_projects_and_check_membership() {
    let fp = one_project(2);
    let ident = fp.with_world(|w| w.projects[0].identifier.clone());
    let (pid, slug) = (project_id(&fp, &ident), fp.world().slug);
    fp.with_world(|w| {
        for k in 0..3 {
            w.add_cycle(&ident, &format!("C{k}"), None);
        }
        w.set_cycles_enabled(&ident, false);
    });
    let page = get(
        &fp,
        &format!("workspaces/{slug}/projects/{pid}/cycles/?per_page=2"),
    )
    .json();
    assert_eq!(
        arr(field(&page, "results")).len(),
        2,
        "disabled, still listed (as Plane does)"
    );
    assert!(bool_of(&page, "next_page_results"));
    assert_eq!(str_of(&page, "next_cursor"), "2:1:0");
    let p2 = get(
        &fp,
        &format!("workspaces/{slug}/projects/{pid}/cycles/?per_page=2&cursor=2:1:0"),
    )
    .json();
    assert_eq!(arr(field(&p2, "results")).len(), 1);
    let project = get(&fp, &format!("workspaces/{slug}/projects/{pid}/")).json();
    assert!(!bool_of(&project, "cycle_view"));
    // Not a member / unknown project: 403, like work items.
    let other = "0a1b2c3d-4e5f-4a6b-9c7d-8e9f0a1b2c3d";
    assert_eq!(
        get(&fp, &format!("workspaces/{slug}/projects/{other}/modules/")).status,
        403
    );
    // calplanebot never writes them; the fake does not pretend to take writes.
    let key = fp.world().api_key;
    let r = collect(
        agent()
            .post(format!(
                "{}workspaces/{slug}/projects/{pid}/cycles/",
                fp.api_url()
            ))
            .header("X-API-Key", &key)
            .header("Content-Type", "application/json")
            .send("{}"),
    )
    .unwrap();
    assert_eq!(r.status, 405);
}

#[test]
fn client_reads_cycles_in_the_project_zone_and_skips_disabled_features() {
    let fp = FakePlane::start(World::generate(&[4, 2], 7));
    let (a, b) = fp.with_world(|w| {
        (
            w.projects[0].identifier.clone(),
            w.projects[1].identifier.clone(),
        )
    });
    let (pa, pb) = (project_id(&fp, &a), project_id(&fp, &b));
    let (sprint, milestone) = fp.with_world(|w| {
        w.set_project_timezone(&a, "Asia/Kolkata");
        let c = w.add_cycle(&a, "Sprint", Some(("2026-05-11", "2026-05-22")));
        w.add_cycle(&a, "Draft", None);
        let m = w.add_module(&a, "Launch", None, Some("2026-06-01"));
        w.set_module_status(&m, "paused");
        w.add_cycle(&b, "Hidden", Some(("2026-05-11", "2026-05-22")));
        w.set_cycles_enabled(&b, false);
        w.set_modules_enabled(&b, false);
        (c, m)
    });
    let mut plane = client(&fp);
    // A fresh client reads the project's zone from the project itself (one request).
    let cycles = plane.cycles(&pa).unwrap();
    assert_eq!(cycles.len(), 2);
    let c = cycles.iter().find(|c| c.id == sprint).unwrap();
    assert_eq!(c.project_timezone, "Asia/Kolkata");
    assert_eq!(c.timezone, "UTC");
    assert_eq!(c.start_date.as_deref(), Some("2026-05-10T18:30:01Z"));
    assert!(cycles.iter().any(|c| c.name == "Draft" && c.is_draft()));
    let modules = plane.modules(&pa).unwrap();
    assert_eq!(modules.len(), 1);
    assert_eq!(
        (modules[0].id.as_str(), modules[0].status),
        (milestone.as_str(), ModuleStatus::Paused)
    );
    assert_eq!(modules[0].target_date.as_deref(), Some("2026-06-01"));
    let project_reads = |fp: &FakePlane| {
        fp.requests()
            .iter()
            .filter(|r| r.path.ends_with(&format!("/projects/{pa}/")))
            .count()
    };
    assert_eq!(project_reads(&fp), 1, "the zone is remembered");
    // After projects(), no project read at all; disabled features cost no request.
    let mut plane = client(&fp);
    plane.projects().unwrap();
    fp.clear_requests();
    assert!(plane.cycles(&pb).unwrap().is_empty(), "cycles off: none");
    assert!(plane.modules(&pb).unwrap().is_empty(), "modules off: none");
    assert!(fp.requests().is_empty(), "{:?}", fp.requests());
    plane.cycles(&pa).unwrap();
    let paths: Vec<String> = fp
        .requests()
        .iter()
        .map(|r| format!("{}?{}", r.path, r.query))
        .collect();
    assert_eq!(
        paths,
        [format!(
            "/api/v1/workspaces/{}/projects/{pa}/cycles/?per_page=100",
            fp.world().slug
        )]
    );
    // A zone change in Plane reaches the client with the next projects listing.
    fp.with_world(|w| w.set_project_timezone(&a, "America/New_York"));
    plane.projects().unwrap();
    assert!(plane
        .cycles(&pa)
        .unwrap()
        .iter()
        .all(|c| c.project_timezone == "America/New_York"));
}

#[test]
fn client_cycle_listing_errors_name_the_path() {
    let fp = one_project(2);
    let ident = fp.with_world(|w| w.projects[0].identifier.clone());
    let pid = project_id(&fp, &ident);
    fp.with_world(|w| {
        w.add_cycle(&ident, "Sprint", None);
        w.push_fault_for("/cycles/", Fault::Garbage);
    });
    let mut plane = client(&fp);
    plane.projects().unwrap();
    let e = plane.cycles(&pid).unwrap_err();
    assert!(
        e.to_string().contains(&format!("projects/{pid}/cycles/")),
        "{e}"
    );
    assert!(matches!(e, PlaneError::Malformed { .. }), "{e:?}");
    assert_eq!(
        plane.cycles(&pid).unwrap().len(),
        1,
        "fine again afterwards"
    );
}

#[test]
fn cycle_and_module_webhooks_parse_as_timeline_events() {
    let fp = one_project(2);
    let ident = fp.with_world(|w| w.projects[0].identifier.clone());
    let pid = project_id(&fp, &ident);
    let (cycle_body, module_body, deleted) = fp.with_world(|w| {
        let c = w.add_cycle(&ident, "Sprint", Some(("2026-05-04", "2026-05-08")));
        let m = w.add_module(&ident, "Launch", None, None);
        (
            w.cycle_webhook_payload(&c, "updated", Some(("name", Some("Old"), Some("Sprint")))),
            w.module_webhook_payload(&m, "created", None),
            w.cycle_webhook_payload(&c, "deleted", None),
        )
    });
    // No counts in webhook data, as on the real server.
    let v: Value = json::from_str(&cycle_body).unwrap();
    assert!(!keys(field(&v, "data")).contains(&"total_issues".to_string()));
    assert_eq!(
        hook::parse(&cycle_body).unwrap(),
        WebhookEvent::Timeline {
            project: pid.clone(),
            kind: TimelineKind::Cycles,
            event: "cycle/updated".into()
        }
    );
    assert_eq!(
        hook::parse(&module_body).unwrap(),
        WebhookEvent::Timeline {
            project: pid,
            kind: TimelineKind::Modules,
            event: "module/created".into()
        }
    );
    assert_eq!(
        hook::parse(&deleted).unwrap(),
        WebhookEvent::Ignored {
            event: "cycle".into()
        }
    );
    assert!(hook::verify_signature(
        b"s3cret",
        cycle_body.as_bytes(),
        &sign_webhook("s3cret", cycle_body.as_bytes())
    ));
}
