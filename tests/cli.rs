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
    let radicale = server("Radicale", "RADICALE");
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
    assert!(!s.state.exists(), "the dry run created the state directory");

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
    let radicale = server("Radicale", "RADICALE");
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
    let xandikos = server("Xandikos", "XANDIKOS");
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
    let radicale = server("Radicale", "RADICALE");
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

/// Variables for commands that never reach a server (config checks).
fn offline_vars(extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = [
        ("PLANE_BASE_URL", "https://plane.example.com"),
        ("PLANE_API_TOKEN", "plane_api_offline"),
        ("PLANE_WORKSPACE_SLUG", "acme"),
        ("CALDAV_URL", "https://dav.example.com/dav/"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, val) in extra {
        v.retain(|(n, _)| n != k);
        v.push((k.to_string(), val.to_string()));
    }
    v
}

/// Issue 9 item 8: a CALDAV_URL ending in `/` is requested with the `/` (Cyrus answers
/// `/dav` with 405 and only `/dav/` with 207). A pass-through proxy in front of Radicale
/// records the paths.
#[test]
fn caldav_url_path_is_kept_exactly() {
    let radicale = server("Radicale", "RADICALE");
    let proxy = common::proxy::Proxy::start(&radicale.url);
    let home = format!("{}{}/", proxy.url(), radicale.user);
    let vars = offline_vars(&[
        ("CALDAV_URL", &home),
        ("CALDAV_USERNAME", &radicale.user),
        ("CALDAV_PASSWORD", &radicale.password),
    ]);
    let r = run_binary(&vars, &["test-caldav"]);
    r.assert_ok();
    let log = proxy.log.lock().unwrap().clone();
    let first = log
        .iter()
        .find(|(m, _)| m == "PROPFIND")
        .expect("a PROPFIND");
    assert_eq!(first.1, format!("/{}/", radicale.user), "{log:?}");
}

/// Issue 9 item 15: credentials in a URL are refused with a hint, never echoed, and
/// masked by `config`.
#[test]
fn userinfo_in_urls_is_refused_and_masked() {
    for name in ["PLANE_BASE_URL", "PLANE_WEB_URL", "CALDAV_URL"] {
        let vars = offline_vars(&[(name, "http://bob:hunter2@host.example:8080/p/")]);
        let r = run_binary(&vars, &["validate-config"]);
        assert_eq!(r.code, 1, "{name}: {}", r.stderr);
        assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
        assert!(
            r.stderr.contains(name) && r.stderr.contains("hint:"),
            "{}",
            r.stderr
        );
        assert!(
            r.stderr.contains("http://****@host.example:8080/p/"),
            "{}",
            r.stderr
        );
        assert!(!r.stderr.contains("hunter2") && !r.stderr.contains("bob"));
        let r = run_binary(&vars, &["config"]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert!(
            r.stdout
                .contains(&format!("{name}=http://****@host.example:8080/p/")),
            "{}",
            r.stdout
        );
        assert!(!r.stdout.contains("hunter2") && !r.stdout.contains("bob"));
    }
}

/// Issue 9 item 17: out-of-range numbers are refused by validate-config (they used to pass
/// it and then abort the service with a panic, exit 134), scheme case does not matter,
/// and `config` shows an empty HTTP_BIND as off.
#[test]
fn numbers_are_bounded_and_schemes_case_insensitive() {
    for (name, value) in [
        ("SYNC_INTERVAL_SECONDS", "18446744073709551615"),
        ("HTTP_TIMEOUT_SECONDS", "18446744073709551615"),
        ("HTTP_TIMEOUT_SECONDS", "0"),
        ("SYNC_INTERVAL_SECONDS", "604801"),
    ] {
        let vars = offline_vars(&[(name, value)]);
        for cmd in ["validate-config", "sync-status"] {
            let r = run_binary(&vars, &[cmd]);
            assert_eq!(r.code, 1, "{name}={value} {cmd}: {}", r.stderr);
            assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
            assert!(
                r.stderr
                    .contains(&format!("{name}: {value} is not a whole number from")),
                "{}",
                r.stderr
            );
        }
    }
    let vars = offline_vars(&[
        ("PLANE_BASE_URL", "HTTPS://plane.example.com"),
        ("CALDAV_URL", "HTTP://dav.example.com/dav/"),
        ("SYNC_INTERVAL_SECONDS", "604800"),
        ("HTTP_TIMEOUT_SECONDS", "600"),
    ]);
    run_binary(&vars, &["validate-config"]).assert_ok();
    let vars = offline_vars(&[("HTTP_BIND", "")]);
    let r = run_binary(&vars, &["config"]);
    assert!(
        r.stdout.contains("HTTP_BIND=(empty: no HTTP server)"),
        "{}",
        r.stdout
    );
}

/// Issue 9 item 18: the `.env` rules users know from docker compose.
#[test]
fn env_file_follows_compose_rules() {
    let dir = std::env::temp_dir().join(format!("calplanebot-dotenv-{}", common::unique_tag()));
    std::fs::create_dir_all(&dir).unwrap();
    let body = concat!(
        "# settings\n",
        "export PLANE_BASE_URL=https://plane.example.com # our Plane\n",
        "PLANE_API_TOKEN='plane_api_#lit\\t'\n",
        "PLANE_WORKSPACE_SLUG=\"acme\" # the workspace\n",
        "CALDAV_URL=\"https://dav.example.com/dav/\"\n",
        "CALDAV_USERNAME=\"alice\" # the user\n",
        "CALDAV_PASSWORD=\"pa\\\"ss\"\n",
        "PLANE_PROJECTS=WEB#1, OPS # two\n",
    );
    let cases = [
        ("lf", body.to_string()),
        (
            "bom-crlf",
            format!("\u{feff}{}", body.replace('\n', "\r\n")),
        ),
        ("cr", body.replace('\n', "\r")),
    ];
    for (name, text) in cases {
        let path = dir.join(format!("{name}.env"));
        std::fs::write(&path, text).unwrap();
        let path = path.display().to_string();
        let r = run_binary(&[], &["--env-file", &path, "config"]);
        assert_eq!(r.code, 0, "{name}: {}", r.stderr);
        for want in [
            "PLANE_BASE_URL=https://plane.example.com\n",
            "PLANE_WORKSPACE_SLUG=acme\n",
            "CALDAV_URL=https://dav.example.com/dav/\n",
            "CALDAV_USERNAME=alice\n",
            "PLANE_PROJECTS=WEB#1, OPS\n",
        ] {
            assert!(
                r.stdout.contains(want),
                "{name}: no {want:?} in\n{}",
                r.stdout
            );
        }
        run_binary(&[], &["--env-file", &path, "validate-config"]).assert_ok();
    }
    let bad = dir.join("bad.env");
    std::fs::write(&bad, "A=1\nCALDAV_USERNAME=\"alice\" junk\n").unwrap();
    let r = run_binary(&[], &["--env-file", &bad.display().to_string(), "config"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("line 2: unexpected text"), "{}", r.stderr);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Issue 9 item 23: a valid token on a wrong workspace slug (Plane: 403 "You do not have
/// permission…") is told apart from a bad token (403 "Given API token is not valid").
#[test]
fn wrong_slug_is_not_reported_as_a_bad_token() {
    let fake = common::fake_plane::FakePlane::start(common::fake_plane::World::generate(&[1], 3));
    let key = fake.world().api_key.clone();
    let base = fake.base_url();
    let vars = |slug: &str, token: &str| {
        offline_vars(&[
            ("PLANE_BASE_URL", &base),
            ("PLANE_API_TOKEN", token),
            ("PLANE_WORKSPACE_SLUG", slug),
        ])
    };
    let r = run_binary(&vars("acme-typo", &key), &["test-plane"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(r.stderr.contains("HTTP 403"), "{}", r.stderr);
    assert!(
        r.stderr.contains("PLANE_WORKSPACE_SLUG") && r.stderr.contains("\"acme-typo\""),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("PLANE_API_TOKEN"), "{}", r.stderr);
    let r = run_binary(&vars("acme", "plane_api_not_the_key"), &["test-plane"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("Given API token is not valid") && r.stderr.contains("PLANE_API_TOKEN"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("PLANE_WORKSPACE_SLUG"), "{}", r.stderr);
    run_binary(&vars("acme", &key), &["test-plane"]).assert_ok();
}

/// Mode bits of a file.
fn mode_of(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// Issue 9 item 19: the journal, the lock and LOG_FILE are created 0600 (they name work
/// items, calendars and paths).
#[test]
fn state_and_log_files_are_owner_only() {
    let dir = std::env::temp_dir().join(format!("calplanebot-modes-{}", common::unique_tag()));
    let state = dir.join("state");
    let log = dir.join("calplanebot.log");
    std::fs::create_dir_all(&dir).unwrap();
    let vars = offline_vars(&[
        ("STATE_DIR", &state.display().to_string()),
        ("LOG_FILE", &log.display().to_string()),
        ("ENABLE_SYNC", "false"),
        ("HTTP_BIND", ""),
    ]);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_calplanebot"))
        .arg("run")
        .env_clear()
        .envs(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .current_dir(&dir)
        .spawn()
        .unwrap();
    // The service logs "serving HTTP only" once the journal is open: poll for it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !std::fs::read_to_string(&log).is_ok_and(|t| t.contains("serving HTTP only")) {
        assert!(
            std::time::Instant::now() < deadline,
            "the service did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let modes: Vec<(String, u32)> = [state.join("state.jsonl"), state.join("state.lock"), log]
        .iter()
        .map(|p| (p.display().to_string(), mode_of(p)))
        .collect();
    child.kill().unwrap();
    child.wait().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    for (path, mode) in modes {
        assert_eq!(mode, 0o600, "{path} is {mode:o}");
    }
}

/// Every file in `dir`: name, bytes, modification time and mode.
fn snapshot(dir: &std::path::Path) -> Vec<(String, Vec<u8>, std::time::SystemTime, u32)> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            let meta = std::fs::metadata(&p).unwrap();
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
                meta.modified().unwrap(),
                mode_of(&p),
            )
        })
        .collect();
    out.sort();
    out
}

/// The effective user id of this test process (from /proc, no libc needed).
fn euid() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    line.split_whitespace().nth(2).unwrap().parse().unwrap()
}

/// Runs the binary with `vars` as an unprivileged user when we are root (root ignores file
/// modes, so a read-only directory would not be read-only to it).
fn run_unprivileged(vars: &[(String, String)], args: &[&str]) -> common::Run {
    let bin = env!("CARGO_BIN_EXE_calplanebot");
    let mut cmd = if euid() == 0 {
        let mut c = std::process::Command::new("setpriv");
        c.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
            bin,
        ]);
        c
    } else {
        std::process::Command::new(bin)
    };
    let out = cmd
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .current_dir("/")
        .output()
        .expect("run calplanebot");
    common::Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The id and key of an open work item with a target date in the first project.
fn dated_item(s: &Setup) -> (String, String) {
    let w = s.fake.world();
    let p = &w.projects[0];
    let i = p
        .visible_items()
        .into_iter()
        .find(|i| {
            i.target_date.is_some()
                && !matches!(
                    p.state(&i.state).map(|st| st.group.as_str()),
                    Some("completed" | "cancelled")
                )
        })
        .expect("an open item with a target date");
    (i.id.clone(), format!("{}-{}", p.identifier, i.sequence_id))
}

/// Issue 9 item 20: `--dry-run` writes nothing anywhere: it works while another process
/// holds the journal lock (a running service), on a read-only state directory and without
/// one, and leaves every byte, mtime and mode as it was.
#[test]
fn dry_run_takes_no_lock_and_touches_no_file() {
    let radicale = server("Radicale", "RADICALE");
    let mut s = Setup::new(radicale, &[6]);
    s.env.push(("COMPLETED_ITEMS".into(), "keep".into()));
    // Only `run` logs to LOG_FILE: a dry run must not create it either.
    let log_file = s.state.join("calplanebot.log").display().to_string();
    s.env.push(("LOG_FILE".into(), log_file));
    s.sync().assert_ok();
    let victim = dated_item(&s).0;
    s.fake
        .with_world(|w| w.rename(&victim, "Renamed for the dry run"));
    let before = snapshot(&s.state);

    // Next to a lock holder, as next to `calplanebot run`.
    let lock = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(s.state.join("state.lock"))
        .unwrap();
    lock.try_lock().expect("take the journal lock");
    let r = s.run(&["sync", "--dry-run"]);
    r.assert_ok();
    assert!(r.stdout.contains("~ update"), "{}", r.stdout);
    assert_eq!(
        snapshot(&s.state),
        before,
        "the dry run changed the state directory"
    );
    lock.unlock().unwrap();
    drop(lock);

    // A read-only state directory with a read-only journal.
    use std::os::unix::fs::PermissionsExt;
    let set_mode = |p: &std::path::Path, m: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap()
    };
    if euid() == 0 {
        let status = std::process::Command::new("chown")
            .args(["-R", "65534:65534", &s.state.display().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
    for (name, ..) in &before {
        set_mode(&s.state.join(name), 0o400);
    }
    set_mode(&s.state, 0o555);
    let before = snapshot(&s.state);
    let r = run_unprivileged(&s.vars(), &["sync", "--dry-run"]);
    set_mode(&s.state, 0o755);
    r.assert_ok();
    assert!(r.stdout.contains("~ update"), "{}", r.stdout);
    assert_eq!(snapshot(&s.state), before);
    // The control: a real sync cannot run there (so the directory really was read-only).
    set_mode(&s.state, 0o555);
    let real = run_unprivileged(&s.vars(), &["--once"]);
    set_mode(&s.state, 0o755);
    assert_ne!(real.code, 0, "{}", real.stdout);

    // No state directory at all: none is created.
    let mut vars = s.vars();
    let missing = s.state.join("not-there");
    vars.retain(|(k, _)| k != "STATE_DIR");
    vars.push(("STATE_DIR".into(), missing.display().to_string()));
    run_binary(&vars, &["sync", "--dry-run"]).assert_ok();
    assert!(!missing.exists());
}

/// Issue 9 item 16: control characters from Plane do not reach the calendar (RFC 5545
/// forbids them in TEXT), a project name cannot forge log lines, and `list` does not pass
/// escape sequences from the calendar to the terminal.
#[test]
fn control_characters_are_stripped_and_escaped() {
    let radicale = server("Radicale", "RADICALE");
    let mut s = Setup::new(radicale.clone(), &[4]);
    s.env.push(("COMPLETED_ITEMS".into(), "keep".into()));
    let (victim, key) = dated_item(&s);
    let hostile = "Bell\u{7} esc\u{1b}[31m red nul\u{0} del\u{7f} csi\u{9b}1m vt\u{b} ff\u{c}\tend";
    let tag = s.tag.clone();
    s.fake.with_world(|w| {
        w.rename(&victim, hostile);
        w.update(&victim, |i| {
            i.description_html = "<p>x\u{1b}]0;pwned\u{7}y</p>".into()
        });
        w.projects[0].name = format!("{tag} Ops\n2026-01-01T00:00:00Z ERROR [calplanebot] forged");
    });
    let r = s.sync();
    r.assert_ok();
    assert!(
        r.stderr
            .lines()
            .all(|l| !l.starts_with("2026-01-01T00:00:00Z ERROR")),
        "a project name forged a log line:\n{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("Ops\\n2026-01-01T00:00:00Z ERROR"),
        "{}",
        r.stderr
    );
    let cal = s.dump().into_iter().next().expect("the project's calendar");
    let object = cal
        .objects
        .iter()
        .find(|o| o.uid == format!("plane-issue-{victim}@calplanebot"))
        .expect("the renamed item's event");
    let bad = |c: char| c.is_control() && !matches!(c, '\r' | '\n' | '\t');
    assert!(!object.ical.contains(bad), "{:?}", object.ical);
    assert_eq!(
        object.prop("SUMMARY").as_deref(),
        Some(format!("[{key}] Bell esc[31m red nul del csi1m vt ff\tend").as_str())
    );
    // Stripping is stable: the next cycle neither rewrites the event nor "corrects" Plane.
    let again = s.sync();
    again.assert_ok();
    assert_eq!(again.count("Updated"), 0, "{}", again.stdout);
    assert!(
        again.stdout.contains("To Plane:  0 updated"),
        "{}",
        again.stdout
    );
    assert_eq!(
        s.fake.world().projects[0]
            .items
            .iter()
            .find(|i| i.id == victim)
            .unwrap()
            .name,
        hostile
    );

    // An event from another client with escape sequences in its title.
    let ics = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\nUID:ctl-test\r\nDTSTAMP:20260101T000000Z\r\nDTSTART;VALUE=DATE:20261224\r\nSUMMARY:Clear\u{1b}[2J screen \u{9b}31m red\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
    common::put_raw(&radicale, &cal.url, ics, None, false);
    let r = s.run(&["list"]);
    r.assert_ok();
    assert!(!r.stdout.contains(['\u{1b}', '\u{9b}']), "{:?}", r.stdout);
    assert!(
        r.stdout.contains("screen \\u{9b}31m red (2026-12-24)"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("Ops\\n2026-01-01"), "{}", r.stdout);
}

/// Issue 9, item 22: a test whose server is not running fails instead of returning early
/// as passed (tests/run.sh starts every server).
#[test]
fn a_missing_server_fails_the_test() {
    let found = std::panic::catch_unwind(|| server("Nowhere", "CPB_NO_SUCH_SERVER"));
    assert!(found.is_err(), "server() returned without a server");
}
