//! The command line as a user meets it: help, config display, dry runs, the inspection
//! commands, create-event, and the VTODO mapping against a real server.

mod common;

use common::{run_binary, server, Setup};

#[test]
fn help_version_and_bad_arguments() {
    let r = run_binary(&[], &["--help"]);
    assert_eq!(r.code, 0);
    for cmd in [
        "run",
        "sync",
        "--once",
        "sync-status",
        "list",
        "test-caldav",
        "test-plane",
        "config",
        "validate-config",
        "create-event",
        "--dry-run",
        "--env-file",
    ] {
        assert!(r.stdout.contains(cmd), "--help lacks {cmd}");
    }
    let r = run_binary(&[], &["--version"]);
    assert_eq!(
        r.stdout.trim(),
        format!("calplanebot {}", env!("CARGO_PKG_VERSION"))
    );
    let r = run_binary(&[], &["frobnicate"]);
    assert_ne!(r.code, 0);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(r.stderr.contains("unknown command"), "{}", r.stderr);
    let r = run_binary(&[], &["--dry-run"]);
    assert_ne!(r.code, 0, "--dry-run must not start the real loop");
    assert!(
        r.stderr.contains("--dry-run only goes with sync"),
        "{}",
        r.stderr
    );
    let r = run_binary(&[], &["sync", "--date", "2026-01-01"]);
    assert_ne!(r.code, 0);
    let r = run_binary(&[], &["validate-config"]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains("PLANE_BASE_URL: is not set"),
        "{}",
        r.stderr
    );
}

#[test]
fn config_masks_secrets_and_env_file_works() {
    let dir = std::env::temp_dir().join(format!("calplanebot-cli-{}", common::unique_tag()));
    std::fs::create_dir_all(&dir).unwrap();
    let env_file = dir.join("my.env");
    std::fs::write(
        &env_file,
        "PLANE_BASE_URL=https://plane.example.com\nPLANE_API_TOKEN=plane_api_supersecret\nPLANE_WORKSPACE_SLUG=acme\nCALDAV_URL=https://dav.example.com/\nCALDAV_USERNAME=alice\nCALDAV_PASSWORD='pa ss#word'\nCALDAV_PASWORD=typo\n",
    )
    .unwrap();
    let path = env_file.display().to_string();
    let r = run_binary(&[], &["--env-file", &path, "config"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        !r.stdout.contains("supersecret") && !r.stdout.contains("pa ss"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("PLANE_API_TOKEN=****"));
    assert!(r.stdout.contains("PLANE_WORKSPACE_SLUG=acme"));
    assert!(r.stdout.contains("SYNC_INTERVAL_SECONDS=300 (default)"));
    assert!(r
        .stdout
        .contains("CALDAV_PASWORD is not a calplanebot variable"));
    let r = run_binary(&[], &["--env-file", &path, "validate-config"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("configuration OK"));
    let r = run_binary(&[], &["--env-file", "/nonexistent/x.env", "config"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("cannot read env file"), "{}", r.stderr);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn dry_run_writes_nothing() {
    let Some(radicale) = server("Radicale", "RADICALE") else {
        return;
    };
    let s = Setup::new(radicale, &[6]);
    let r = s.run(&["sync", "--dry-run"]);
    r.assert_ok();
    assert!(
        r.stdout.contains("Dry run: nothing was written."),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("would create calendar"), "{}", r.stdout);
    assert!(s.dump().is_empty(), "dry run created a calendar");
    assert!(
        !s.state.join("state.jsonl").exists()
            || std::fs::read_to_string(s.state.join("state.jsonl"))
                .unwrap()
                .lines()
                .count()
                <= 1
    );

    s.sync().assert_ok();
    let before: Vec<String> = s
        .calendar(0)
        .objects
        .iter()
        .map(|o| o.etag.clone())
        .collect();
    let victim = s.fake.world().projects[0]
        .visible_items()
        .into_iter()
        .find(|i| i.target_date.is_some() && i.name.len() < 200)
        .unwrap()
        .id
        .clone();
    s.fake.with_world(|w| w.rename(&victim, "Dry-run rename"));
    let r = s.run(&["sync", "--dry-run"]);
    r.assert_ok();
    let after: Vec<String> = s
        .calendar(0)
        .objects
        .iter()
        .map(|o| o.etag.clone())
        .collect();
    assert_eq!(before, after);
    let r2 = s.sync();
    r2.assert_ok();
    // The dry run announced exactly what the real run then did.
    let announced = r.stdout.lines().filter(|l| l.contains("~ update")).count();
    assert_eq!(
        announced,
        r2.count("Updated"),
        "{}\n{}",
        r.stdout,
        r2.stdout
    );
}

#[test]
fn inspection_commands_and_create_event() {
    let Some(radicale) = server("Radicale", "RADICALE") else {
        return;
    };
    let s = Setup::new(radicale, &[5]);
    let r = s.run(&["test-plane"]);
    r.assert_ok();
    assert!(r.stdout.contains("Plane connection OK"));
    assert!(r.stdout.contains(&s.fake.world().projects[0].identifier));
    let r = s.run(&["test-caldav"]);
    r.assert_ok();
    assert!(r.stdout.contains("Calendar home:") && r.stdout.contains("CalDAV connection OK"));

    let r = s.run(&["create-event", "Before any sync"]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains("run `calplanebot sync` first"),
        "{}",
        r.stderr
    );

    let synced = s.sync();
    synced.assert_ok();
    let created = synced.count("Created");
    let r = s.run(&["sync-status"]);
    r.assert_ok();
    assert!(
        r.stdout.contains(&format!("Events:     {created}")),
        "{}",
        r.stdout
    );

    let r = s.run(&["create-event", "Team lunch", "--date", "2026-12-24"]);
    r.assert_ok();
    let r = s.run(&["list"]);
    r.assert_ok();
    assert!(r.stdout.contains("Team lunch (2026-12-24)"), "{}", r.stdout);
    let ident = &s.fake.world().projects[0].identifier;
    assert!(r.stdout.contains(&format!("[{ident}-")), "{}", r.stdout);
    assert!(
        r.stdout.contains(&format!("({} events)", created + 1)),
        "{}",
        r.stdout
    );
    // The user's test event is not ours: the next sync leaves it alone.
    let r = s.sync();
    r.assert_ok();
    assert_eq!(r.count("Deleted"), 0);
    assert!(s.run(&["list"]).stdout.contains("Team lunch"));
}

#[test]
fn todo_mode_writes_vtodos() {
    let Some(xandikos) = server("Xandikos", "XANDIKOS") else {
        return;
    };
    let mut s = Setup::new(xandikos, &[20]);
    s.env.push(("ITEM_KIND".into(), "vtodo".into()));
    s.env.push(("DATE_MODE".into(), "span".into()));
    s.sync().assert_ok();
    let world = s.fake.world();
    let p = &world.projects[0];
    let cal = s.calendar(0);
    if !cal.components.is_empty() {
        assert_eq!(cal.components, vec!["VTODO".to_string()]);
    }
    let dated: Vec<_> = p
        .visible_items()
        .into_iter()
        .filter(|i| i.target_date.is_some())
        .collect();
    assert_eq!(
        cal.objects.len(),
        dated.len(),
        "tasks are kept whatever their state"
    );
    for item in dated {
        let o = cal
            .objects
            .iter()
            .find(|o| o.uid == format!("plane-issue-{}@calplanebot", item.id))
            .unwrap();
        assert_eq!(o.component, "VTODO");
        assert_eq!(o.prop("DUE"), item.target_date.clone());
        assert_eq!(o.value_types.get("DUE").map(String::as_str), Some("DATE"));
        let group = p.state(&item.state).unwrap().group.as_str();
        let status = match group {
            "started" => "IN-PROCESS",
            "completed" => "COMPLETED",
            "cancelled" => "CANCELLED",
            _ => "NEEDS-ACTION",
        };
        assert_eq!(o.prop("STATUS").as_deref(), Some(status), "{}", o.ical);
        assert_eq!(o.prop("COMPLETED").is_some(), group == "completed");
        match (&item.start_date, &item.target_date) {
            (Some(start), Some(target)) if start <= target => {
                assert_eq!(o.prop("DTSTART").as_deref(), Some(start.as_str()))
            }
            _ => assert!(o.prop("DTSTART").is_none()),
        }
    }
}

#[test]
fn filters_by_assignee_email_label_and_state_group() {
    let Some(radicale) = server("Radicale", "RADICALE") else {
        return;
    };
    let mut s = Setup::new(radicale, &[40]);
    let world = s.fake.world();
    let p = &world.projects[0];
    let member = world
        .members
        .iter()
        .find(|m| p.items.iter().any(|i| i.assignees.contains(&m.id)))
        .unwrap()
        .clone();
    let label = p.labels[0].clone();
    s.env
        .push(("SYNC_ASSIGNEES".into(), member.email.to_uppercase()));
    s.env.push(("SYNC_LABELS".into(), label.name.clone()));
    s.env.push((
        "SYNC_STATE_GROUPS".into(),
        "backlog,unstarted,started".into(),
    ));
    s.sync().assert_ok();
    let want: Vec<String> = p
        .visible_items()
        .into_iter()
        .filter(|i| i.target_date.is_some())
        .filter(|i| i.assignees.contains(&member.id) && i.labels.contains(&label.id))
        .filter(|i| {
            matches!(
                p.state(&i.state).unwrap().group.as_str(),
                "backlog" | "unstarted" | "started"
            )
        })
        .map(|i| format!("plane-issue-{}@calplanebot", i.id))
        .collect();
    if want.is_empty() {
        assert!(s.dump().is_empty() || s.calendar(0).objects.is_empty());
        return;
    }
    let mut got: Vec<String> = s
        .calendar(0)
        .objects
        .iter()
        .map(|o| o.uid.clone())
        .collect();
    let mut want = want;
    got.sort();
    want.sort();
    assert_eq!(got, want);
}
