//! `rota` run as a user runs it: a real process, a temp dir for the
//! embedded store (or a private `redis-server`), and what it prints and
//! exits with.

use std::path::Path;
use std::process::{Command, Output};

use rota_conformance::support::RedisServer;

/// `rota args…` with a fresh home, so no config file or store of the
/// machine's is used.
fn rota(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rota"))
        .args(args)
        .env_clear()
        .env("HOME", home)
        .env("ROTA_LISTEN", "127.0.0.1:0")
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .output()
        .expect("rota runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[track_caller]
fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        stdout(o),
        stderr(o)
    );
    stdout(o)
}

#[track_caller]
fn fails(o: &Output, code: i32, says: &str) {
    assert_eq!(
        o.status.code(),
        Some(code),
        "stdout: {}\nstderr: {}",
        stdout(o),
        stderr(o)
    );
    assert!(stderr(o).contains(says), "{:?} not in: {}", says, stderr(o));
}

#[test]
fn preview_prints_utc_instants_and_nothing_else() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let o = rota(
        h,
        &[
            "schedules",
            "preview",
            "30 2 * * *",
            "--tz",
            "America/New_York",
            "--after",
            "2026-03-07T00:00:00Z",
            "--count",
            "3",
        ],
    );
    // 2026-03-08 02:30 does not exist in New York: 03:00 EDT, 07:00Z.
    assert_eq!(
        ok(&o),
        "2026-03-07T07:30:00Z\n2026-03-08T07:00:00Z\n2026-03-09T06:30:00Z\n"
    );
    let o = rota(
        h,
        &[
            "schedules",
            "preview",
            "15 1 * * *",
            "--tz",
            "America/New_York",
            "--after",
            "2026-10-31T12:00:00Z",
            "--count",
            "2",
        ],
    );
    // 01:15 happens twice on 2026-11-01: the first only.
    assert_eq!(ok(&o), "2026-11-01T05:15:00Z\n2026-11-02T06:15:00Z\n");
    let o = rota(
        h,
        &[
            "schedules",
            "preview",
            "0 * * * *",
            "--tz",
            "America/New_York",
            "--after",
            "2026-11-01T04:30:00Z",
            "--count",
            "3",
        ],
    );
    assert_eq!(
        ok(&o),
        "2026-11-01T05:00:00Z\n2026-11-01T06:00:00Z\n2026-11-01T07:00:00Z\n"
    );
}

#[test]
fn bad_input_gets_a_clear_message_and_an_exit_code() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    fails(
        &rota(h, &["schedules", "preview", "61 * * * *"]),
        4,
        "minute field (position 1)",
    );
    fails(
        &rota(h, &["schedules", "preview", "@hourly", "--tz", "Mars/Base"]),
        4,
        "unknown time zone",
    );
    fails(
        &rota(
            h,
            &["schedules", "preview", "@hourly", "--after", "yesterday"],
        ),
        4,
        "RFC 3339",
    );
    fails(&rota(h, &["bogus"]), 2, "unrecognized subcommand");
    fails(
        &rota(h, &["schedules", "list", "--tenant", "a", "--frobnicate"]),
        2,
        "--frobnicate",
    );
    let db = h.join("r.db");
    let db = db.to_str().unwrap();
    let add = |extra: &[&str]| {
        let mut args = vec![
            "--db",
            db,
            "schedules",
            "add",
            "--tenant",
            "acme",
            "--queue",
            "q",
            "--kind",
            "k",
        ];
        args.extend_from_slice(extra);
        rota(h, &args)
    };
    fails(&add(&[]), 2, "--cron EXPR, --every DURATION or --at TIME");
    fails(
        &add(&["--every", "0s"]),
        4,
        "interval must be at least 1 ms",
    );
    fails(&add(&["--every", "soon"]), 4, "is not a duration");
    fails(&add(&["--cron", "0 0 30 2 *"]), 4, "never");
    fails(
        &add(&["--every", "1m", "--payload", "{nope"]),
        4,
        "--payload is not JSON",
    );
    fails(
        &add(&[
            "--every",
            "1m",
            "--start",
            "2026-12-02T00:00:00Z",
            "--end",
            "2026-12-01T00:00:00Z",
        ]),
        4,
        "end",
    );
    fails(&add(&["--every", "1m", "--id", "a b"]), 4, "id");
    ok(&add(&["--every", "1m", "--id", "one"]));
    fails(&add(&["--every", "1m", "--id", "one"]), 5, "exists already");
    fails(
        &rota(h, &["--db", db, "schedules", "show", "two"]),
        3,
        "no schedule has id \"two\"",
    );
    fails(
        &rota(h, &["--db", db, "schedules", "pause", "two"]),
        3,
        "no schedule",
    );
    fails(
        &rota(h, &["--db", db, "schedules", "rm", "two"]),
        3,
        "no schedule",
    );

    // A file that is not rota's.
    let alien = h.join("alien.db");
    std::fs::write(&alien, b"not a database, just some text\n".repeat(100)).unwrap();
    fails(
        &rota(
            h,
            &[
                "--db",
                alien.to_str().unwrap(),
                "schedules",
                "list",
                "--tenant",
                "a",
            ],
        ),
        78,
        "as rota's embedded store",
    );
    // A Redis that is not there.
    fails(
        &rota(
            h,
            &[
                "--redis",
                "redis://:pw@127.0.0.1:1",
                "schedules",
                "list",
                "--tenant",
                "a",
            ],
        ),
        69,
        "cannot use Redis at redis://:***@127.0.0.1:1",
    );
}

/// Every file under `dir` with its bytes.
fn snapshot(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    files.sort();
    files
}

#[test]
fn a_database_that_is_another_programs_or_read_only_is_refused_and_left_alone() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::os::unix::process::CommandExt;

    let home = tempfile::tempdir().unwrap();
    let h = home.path();

    // Another program's SQLite database: refused, not a byte written.
    let crm = h.join("crm.db");
    rusqlite::Connection::open(&crm)
        .unwrap()
        .execute_batch(
            "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT);
             INSERT INTO customers (name) VALUES ('acme');",
        )
        .unwrap();
    let before = std::fs::read(&crm).unwrap();
    fails(
        &rota(h, &["--db", crm.to_str().unwrap(), "queues"]),
        78,
        "another program's database (tables customers)",
    );
    assert_eq!(std::fs::read(&crm).unwrap(), before, "the file was written");

    // Rota's own file, then made read-only with its directory.
    let dir = h.join("ro");
    std::fs::create_dir(&dir).unwrap();
    let db = dir.join("rota.db");
    let db = db.to_str().unwrap();
    ok(&rota(
        h,
        &[
            "--db", db, "jobs", "enqueue", "--queue", "q", "--tenant", "a", "--kind", "k",
        ],
    ));
    let before = snapshot(&dir);
    for (file, _) in &before {
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o444)).unwrap();
    }
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o555)).unwrap();
    // Permissions do not bind root: as root, rota runs as nobody, from a
    // copy nobody may run.
    let root = std::fs::metadata("/proc/self").unwrap().uid() == 0;
    if root {
        std::fs::set_permissions(h, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::copy(env!("CARGO_BIN_EXE_rota"), h.join("rota")).unwrap();
    }
    let run = |args: &[&str]| {
        let mut command = if root {
            let mut c = Command::new(h.join("rota"));
            c.uid(65534).gid(65534);
            c
        } else {
            Command::new(env!("CARGO_BIN_EXE_rota"))
        };
        command
            .args(args)
            .env_clear()
            .env("HOME", h)
            .env("ROTA_LISTEN", "127.0.0.1:0")
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .output()
            .unwrap()
    };
    for args in [
        &["--db", db, "jobs", "list", "--queue", "q"][..],
        &[
            "--db", db, "jobs", "enqueue", "--queue", "q", "--tenant", "a", "--kind", "k",
        ],
    ] {
        fails(
            &run(args),
            78,
            "readonly database. Make the file and its directory writable",
        );
    }
    assert_eq!(snapshot(&dir), before, "the read-only store changed");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn config_comes_from_flags_then_environment_then_file_with_secrets_redacted() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let file = h.join("rota.toml");
    std::fs::write(&file, "[store]\nredis = \"redis://:filesecret@10.0.0.1\"\nprefix = \"app\"\n\n[log]\nformat = \"json\"\n").unwrap();
    let f = file.to_str().unwrap();
    let o = ok(&rota(h, &["--config", f, "config"]));
    assert!(o.contains("redis = \"redis://:***@10.0.0.1\""), "{o}");
    assert!(o.contains("prefix = \"app\""), "{o}");
    assert!(o.contains("format = \"json\""), "{o}");
    assert!(!o.contains("filesecret"), "{o}");
    // The environment over the file, a flag over the environment.
    let out = Command::new(env!("CARGO_BIN_EXE_rota"))
        .args(["--config", f, "--prefix", "flag", "config", "--json"])
        .env_clear()
        .env("HOME", h)
        .env("ROTA_LISTEN", "127.0.0.1:0")
        .env("ROTA_PREFIX", "env")
        .env("ROTA_REDIS", "redis://u:envsecret@10.0.0.2")
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&ok(&out)).unwrap();
    assert_eq!(v["store"]["redis"], "redis://u:***@10.0.0.2");
    assert_eq!(v["store"]["prefix"], "flag");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("envsecret"));

    std::fs::write(&file, "[store]\nredis = \"redis://h\"\nreddis = \"x\"\n").unwrap();
    fails(&rota(h, &["--config", f, "config"]), 78, "reddis");
    fails(&rota(h, &["--config", f, "config"]), 78, "line 3");
    fails(
        &rota(
            h,
            &["--config", h.join("none.toml").to_str().unwrap(), "config"],
        ),
        78,
        "cannot read the config file",
    );
}

/// Every command through its steps, on the store `store` names.
fn manage(h: &Path, store: &[&str]) {
    let run = |args: &[&str]| {
        let mut all: Vec<&str> = store.to_vec();
        all.extend_from_slice(args);
        rota(h, &all)
    };
    let id = ok(&run(&[
        "schedules",
        "add",
        "--tenant",
        "acme",
        "--queue",
        "reports",
        "--kind",
        "nightly",
        "--cron",
        "0 2 * * *",
        "--tz",
        "Europe/Lisbon",
        "--id",
        "acme-nightly",
        "--label",
        "team=data",
        "--payload",
        "{\"depth\": 2}",
    ]));
    assert_eq!(id, "acme-nightly\n");
    let generated = ok(&run(&[
        "schedules",
        "add",
        "--tenant",
        "acme",
        "--queue",
        "sync",
        "--kind",
        "crm",
        "--every",
        "15m",
        "--after-completion",
        "--overlap",
        "buffer-all",
        "--buffer-max",
        "3",
    ]));
    let generated = generated.trim();
    assert!(!generated.is_empty());
    ok(&run(&[
        "schedules",
        "add",
        "--tenant",
        "globex",
        "--queue",
        "q",
        "--kind",
        "k",
        "--at",
        "2030-01-01T00:00:00Z",
    ]));

    let list = ok(&run(&["schedules", "list", "--tenant", "acme"]));
    assert!(list.starts_with("ID "), "{list}");
    assert!(
        list.contains("acme-nightly") && list.contains(generated),
        "{list}"
    );
    assert!(!list.contains("globex"), "{list}");
    assert!(list.contains("cron 0 2 * * * (Europe/Lisbon)"), "{list}");
    assert!(list.contains("every 15m after completion"), "{list}");

    let v: serde_json::Value =
        serde_json::from_str(&ok(&run(&["schedules", "show", "acme-nightly", "--json"]))).unwrap();
    assert_eq!(v["tenant"], "acme");
    assert_eq!(v["job"]["payload"]["depth"], 2);
    assert_eq!(v["labels"]["team"], "data");
    assert_eq!(v["trigger"]["tz"], "Europe/Lisbon");
    let next = v["progress"]["next"]["at_ms"].as_i64().unwrap();

    let v: serde_json::Value =
        serde_json::from_str(&ok(&run(&["schedules", "pause", "acme-nightly", "--json"]))).unwrap();
    assert_eq!(v["paused"], true);
    assert!(ok(&run(&["schedules", "list", "--tenant", "acme"])).contains("paused"));
    let v: serde_json::Value = serde_json::from_str(&ok(&run(&[
        "schedules",
        "resume",
        "acme-nightly",
        "--json",
    ])))
    .unwrap();
    assert_eq!(v["paused"], false);

    // An update changes what it names and leaves the rest.
    let v: serde_json::Value = serde_json::from_str(&ok(&run(&[
        "schedules",
        "update",
        "acme-nightly",
        "--cron",
        "0 3 * * *",
        "--tz",
        "Europe/Lisbon",
        "--priority",
        "5",
        "--json",
    ])))
    .unwrap();
    assert_eq!(v["trigger"]["expr"], "0 3 * * *");
    assert_eq!(v["job"]["priority"], 5);
    assert_eq!(v["job"]["kind"], "nightly");
    assert_eq!(v["labels"]["team"], "data");
    assert_eq!(
        v["progress"]["next"]["at_ms"].as_i64().unwrap(),
        next + 3_600_000
    );

    let v: serde_json::Value = serde_json::from_str(&ok(&run(&[
        "schedules",
        "trigger",
        "acme-nightly",
        "--json",
    ])))
    .unwrap();
    assert_eq!(v["requests"][0]["what"]["kind"], "trigger_now");
    let runs = ok(&run(&["runs", "acme-nightly"]));
    assert!(runs.starts_with("OCCURRENCE"), "{runs}");
    assert_eq!(ok(&run(&["runs", "acme-nightly", "--json"])).trim(), "[]");

    ok(&run(&["schedules", "rm", generated]));
    let list = ok(&run(&["schedules", "list", "--tenant", "acme", "--json"]));
    let v: serde_json::Value = serde_json::from_str(&list).unwrap();
    let ids: Vec<&str> = v["schedules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["acme-nightly"]);
}

#[test]
fn schedules_are_managed_on_the_embedded_store() {
    let home = tempfile::tempdir().unwrap();
    let db = home.path().join("data").join("rota.db");
    manage(home.path(), &["--db", db.to_str().unwrap()]);
    // The default file, with no flag at all.
    ok(&rota(
        home.path(),
        &[
            "schedules",
            "add",
            "--tenant",
            "t",
            "--queue",
            "q",
            "--kind",
            "k",
            "--every",
            "1h",
            "--id",
            "d",
        ],
    ));
    assert!(home.path().join(".local/share/rota/rota.db").exists());
}

#[test]
fn schedules_are_managed_on_redis() {
    let server = RedisServer::start();
    let home = tempfile::tempdir().unwrap();
    let url = server.url();
    manage(home.path(), &["--redis", &url, "--prefix", "cli"]);
}

fn runs_json(h: &Path, db: &str, id: &str) -> Vec<serde_json::Value> {
    let v: serde_json::Value =
        serde_json::from_str(&ok(&rota(h, &["--db", db, "runs", id, "--json"]))).unwrap();
    v.as_array().unwrap().clone()
}

fn finished(runs: &[serde_json::Value]) -> Vec<&serde_json::Value> {
    runs.iter()
        .filter(|r| r["state"].get("finished").is_some())
        .collect()
}

fn script(dir: &Path, name: &str, body: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.to_str().unwrap().to_owned()
}

/// A schedule added with the CLI fires a worker written in shell, through
/// `rota up`: the payload on stdin, the job and the run in the environment,
/// stdout the result.
#[test]
fn a_schedule_fires_a_shell_worker_with_the_payload_and_the_run() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let db = h.join("rota.db");
    let db = db.to_str().unwrap();
    let log = h.join("seen.log");
    let job = script(
        h,
        "job.sh",
        &format!(
            "payload=$(cat)\necho \"$ROTA_TENANT $ROTA_QUEUE $ROTA_KIND $ROTA_SCHEDULE $ROTA_OCCURRENCE $ROTA_ATTEMPT $payload\" >> {}\necho '{{\"ok\": true}}'",
            log.display()
        ),
    );
    ok(&rota(
        h,
        &[
            "--db",
            db,
            "schedules",
            "add",
            "--tenant",
            "acme",
            "--queue",
            "shell",
            "--kind",
            "sync",
            "--every",
            "400ms",
            "--id",
            "tick",
            "--payload",
            "{\"n\": 7}",
        ],
    ));
    ok(&rota(
        h,
        &[
            "--db", db, "up", "--queue", "shell", "--exec", &job, "--for", "3",
        ],
    ));
    let runs = runs_json(h, db, "tick");
    let done = finished(&runs);
    assert!(done.len() >= 2, "{runs:#?}");
    for r in &done {
        assert_eq!(r["state"]["finished"], "succeeded", "{r}");
    }
    let seen = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = seen.lines().collect();
    assert!(lines.len() >= done.len(), "{seen}");
    for line in &lines {
        let parts: Vec<&str> = line.splitn(7, ' ').collect();
        assert_eq!(&parts[..3], ["acme", "shell", "sync"], "{line}");
        assert_eq!(parts[3], "tick", "{line}");
        assert!(parts[4].ends_with('Z'), "{line}");
        assert_eq!(parts[5], "1", "{line}");
        assert_eq!(parts[6], "{\"n\":7}", "{line}");
    }
}

/// Exit 75 retries (after the delay it asks for), another exit fails with
/// the tail of stderr, a command that floods stdout is cut and does not
/// hang, and a timeout kills the whole process group.
#[test]
fn exit_codes_output_and_timeouts_of_an_exec_worker() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let db = h.join("rota.db");
    let db = db.to_str().unwrap();
    let marks = h.join("marks");
    std::fs::create_dir(&marks).unwrap();
    let m = marks.display();
    let job = script(
        h,
        "job.sh",
        &format!(
            r#"case "$ROTA_KIND" in
  flaky) if [ "$ROTA_ATTEMPT" -lt 2 ]; then echo "busy" >&2; echo "retry-after: 0.2" >&2; exit 75; fi; echo again ;;
  broken) echo "line one" >&2; echo "the disk is on fire" >&2; exit 3 ;;
  flood) yes 0123456789 | head -c 20000000; echo ;;
  hang) sleep 300 & echo $! > {m}/child.pid; sleep 300 ;;
esac"#
        ),
    );
    // Soon enough to run within the worker's few seconds, late enough to
    // still be ahead when the last schedule is added.
    let now = (jiff::Timestamp::now() + jiff::SignedDuration::from_secs(3)).to_string();
    // The hanging one gets one attempt: its timeout ends it for good.
    for (kind, attempts) in [
        ("flaky", "2"),
        ("broken", "2"),
        ("flood", "2"),
        ("hang", "1"),
    ] {
        ok(&rota(
            h,
            &[
                "--db",
                db,
                "schedules",
                "add",
                "--tenant",
                "acme",
                "--queue",
                "shell",
                "--kind",
                kind,
                "--at",
                &now,
                "--id",
                kind,
                "--max-attempts",
                attempts,
            ],
        ));
    }
    ok(&rota(
        h,
        &[
            "--db",
            db,
            "up",
            "--queue",
            "shell",
            "--exec",
            &job,
            "--timeout",
            "1s",
            "--max-output",
            "1000",
            "--for",
            "6",
        ],
    ));
    let one = |id: &str| {
        let runs = runs_json(h, db, id);
        finished(&runs)
            .first()
            .map(|r| (*r).clone())
            .unwrap_or_else(|| panic!("{id}: {runs:#?}"))
    };
    let flaky = one("flaky");
    assert_eq!(flaky["state"]["finished"], "succeeded", "{flaky}");
    assert_eq!(flaky["attempts"], 2, "{flaky}");
    let broken = one("broken");
    assert_eq!(broken["state"]["finished"], "failed", "{broken}");
    let error = broken["error"].as_str().unwrap();
    assert!(
        error.contains("exit 3") && error.contains("the disk is on fire"),
        "{error}"
    );
    let flood = one("flood");
    assert_eq!(flood["state"]["finished"], "succeeded", "{flood}");
    let hang = one("hang");
    assert_ne!(hang["state"]["finished"], "succeeded", "{hang}");
    // The command's own child went with it.
    let pid = std::fs::read_to_string(marks.join("child.pid")).unwrap();
    let alive = Command::new("kill")
        .args(["-0", pid.trim()])
        .status()
        .unwrap()
        .success();
    assert!(
        !alive,
        "the job's background child {} outlived its timeout",
        pid.trim()
    );
}

#[test]
fn a_worker_whose_command_does_not_exist_says_so_and_exits() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let db = h.join("rota.db");
    fails(
        &rota(
            h,
            &[
                "--db",
                db.to_str().unwrap(),
                "worker",
                "--queue",
                "q",
                "--exec",
                "/no/such/job.sh",
            ],
        ),
        3,
        "is not found",
    );
    fails(
        &rota(h, &["--db", db.to_str().unwrap(), "up"]),
        2,
        "nothing to run",
    );
}

#[test]
fn up_demo_shows_runs_and_stops_cleanly() {
    let home = tempfile::tempdir().unwrap();
    let o = rota(home.path(), &["up", "--demo", "--for", "5"]);
    let out = ok(&o);
    for id in [
        "demo-acme-report",
        "demo-globex-import",
        "demo-initech-sync",
    ] {
        assert!(out.contains(id), "{out}");
    }
    assert!(out.contains("succeeded"), "{out}");
    // Not on a terminal, the table ends the output.
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines.len() >= 4 && lines[lines.len() - 4].starts_with("SCHEDULE"),
        "{out}"
    );
    assert!(stderr(&o).contains("rota up: stopped"), "{}", stderr(&o));
}

/// `rota api` serves the store over HTTP with the tokens of its config
/// file; it does not listen beyond this machine without them.
#[test]
fn the_api_serves_the_store_with_the_tokens_of_the_config() {
    use std::io::{BufRead, BufReader, Write};

    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let db = h.join("rota.db");
    let db = db.to_str().unwrap();
    fails(
        &rota(
            h,
            &["--db", db, "api", "--listen", "0.0.0.0:0", "--for", "1"],
        ),
        78,
        "without tokens",
    );

    let made: serde_json::Value =
        serde_json::from_str(&ok(&rota(h, &["token", "new", "--name", "ops", "--json"]))).unwrap();
    let token = made["token"].as_str().unwrap().to_owned();
    let hash = made["hash"].as_str().unwrap().to_owned();
    let mut hashing = Command::new(env!("CARGO_BIN_EXE_rota"))
        .args(["token", "hash"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    hashing
        .stdin
        .take()
        .unwrap()
        .write_all(token.as_bytes())
        .unwrap();
    let hashed = hashing.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&hashed.stdout).trim(), hash);

    let port = rota_conformance::support::free_port();
    let config = h.join("rota.toml");
    std::fs::write(
        &config,
        format!(
            "[api]\nlisten = \"0.0.0.0:{port}\"\n\n[[api.tokens]]\nname = \"ops\"\nhash = \"{hash}\"\n"
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let shown = ok(&rota(h, &["--config", config, "config"]));
    assert!(shown.contains("name = \"ops\""), "{shown}");
    assert!(
        !shown.contains(&hash[8..]) && !shown.contains(&token),
        "{shown}"
    );

    ok(&rota(
        h,
        &[
            "--db",
            db,
            "schedules",
            "add",
            "--tenant",
            "acme",
            "--queue",
            "q",
            "--kind",
            "k",
            "--every",
            "1h",
            "--id",
            "hourly",
        ],
    ));
    let mut server = Command::new(env!("CARGO_BIN_EXE_rota"))
        .args(["--config", config, "--db", db, "api", "--for", "60"])
        .env_clear()
        .env("HOME", h)
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(server.stderr.take().unwrap()).lines();
    let line = lines.next().unwrap().unwrap();
    assert!(line.contains(&format!("0.0.0.0:{port}")), "{line}");

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = reqwest::Client::new();
        let url = format!("http://127.0.0.1:{port}/v1/schedules/hourly");
        let res = client.get(&url).send().await.unwrap();
        assert_eq!(res.status(), 401);
        let res = client.get(&url).bearer_auth(&token).send().await.unwrap();
        assert_eq!(res.status(), 200);
        let schedule: serde_json::Value = res.json().await.unwrap();
        assert_eq!(schedule["tenant"], "acme", "{schedule}");
        let doc: serde_json::Value = client
            .get(format!("http://127.0.0.1:{port}/openapi.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
    });

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(server.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert!(server.wait().unwrap().success());
    let rest: Vec<String> = lines.map_while(|l| l.ok()).collect();
    assert!(
        rest.iter().any(|l| l.contains("rota api: stopped")),
        "{rest:?}"
    );
    assert!(
        !rest.iter().any(|l| l.contains(&token)),
        "a log line holds the token"
    );
}

/// The example workers of the docs, in shell and in Python, run by `rota up`.
#[test]
fn the_documented_workers_in_shell_and_python_run() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let db = h.join("rota.db");
    let db = db.to_str().unwrap();
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/workers");
    let report = docs.join("report.sh");
    let sync = format!("python3 {}", docs.join("sync.py").display());
    let soon = (jiff::Timestamp::now() + jiff::SignedDuration::from_secs(2)).to_string();
    let add = |id: &str, queue: &str, payload: &str| {
        ok(&rota(
            h,
            &[
                "--db",
                db,
                "schedules",
                "add",
                "--tenant",
                "acme",
                "--queue",
                queue,
                "--kind",
                "k",
                "--at",
                &soon,
                "--id",
                id,
                "--payload",
                payload,
            ],
        ));
    };
    add("report", "reports", "{\"rows\": 3}");
    add(
        "sync",
        "sync",
        "{\"records\": [1, 2, 3], \"fail_first\": true}",
    );
    add("sync-bad", "sync", "{}");
    let up = |queue: &str, exec: &str| {
        ok(&rota(
            h,
            &[
                "--db", db, "up", "--queue", queue, "--exec", exec, "--for", "5",
            ],
        ));
    };
    up("reports", report.to_str().unwrap());
    up("sync", &sync);
    let last = |id: &str| {
        let runs = runs_json(h, db, id);
        finished(&runs)
            .first()
            .map(|r| (*r).clone())
            .unwrap_or_else(|| panic!("{id}: {runs:#?}"))
    };
    assert_eq!(last("report")["state"]["finished"], "succeeded");
    let sync = last("sync");
    assert_eq!(sync["state"]["finished"], "succeeded", "{sync}");
    assert_eq!(
        sync["attempts"], 2,
        "the first attempt asked for a retry: {sync}"
    );
    let bad = last("sync-bad");
    assert_eq!(bad["state"]["finished"], "failed", "{bad}");
    assert!(
        bad["error"].as_str().unwrap().contains("no 'records'"),
        "{bad}"
    );
}

fn schedule_line(i: usize) -> String {
    serde_json::json!({
        "id": format!("s{i}"),
        "tenant": format!("t{}", i % 100),
        "job": {"queue": "imports", "kind": "sync", "payload": {"n": i}},
        "trigger": {"kind": "cron", "expr": format!("{} * * * *", i % 60), "tz": "Europe/Lisbon"},
    })
    .to_string()
}

fn listed(h: &Path, store: &[&str], tenant: &str) -> Vec<serde_json::Value> {
    let mut args: Vec<&str> = store.to_vec();
    args.extend_from_slice(&[
        "schedules",
        "list",
        "--tenant",
        tenant,
        "--limit",
        "1000",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&ok(&rota(h, &args))).unwrap();
    assert!(v["next"].is_null(), "one page holds them all");
    v["schedules"].as_array().unwrap().clone()
}

/// 100,000 schedules import in seconds, with progress lines when not on a
/// terminal; importing the file again changes nothing; a bad line is named
/// by its number and nothing of the file is written.
#[test]
fn import_of_a_hundred_thousand_schedules_is_idempotent_and_all_or_nothing() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let db = h.join("rota.db");
    let db = db.to_str().unwrap();
    let store = ["--db", db];
    let file = h.join("schedules.jsonl");
    let text: String = (0..100_000).map(|i| schedule_line(i) + "\n").collect();
    std::fs::write(&file, &text).unwrap();
    let f = file.to_str().unwrap();
    let started = std::time::Instant::now();
    let o = rota(h, &["--db", db, "schedules", "import", f]);
    let took = started.elapsed();
    assert!(
        ok(&o).starts_with("imported 100000 schedules in "),
        "{}",
        stdout(&o)
    );
    // What the closing notes quote; not asserted (a loaded machine is slow).
    eprintln!(
        "imported 100,000 schedules in {took:?}: {}",
        stdout(&o).trim()
    );
    let progress = stderr(&o);
    assert!(
        progress.contains("imported 10000 of 100000 schedules"),
        "{progress}"
    );
    assert!(
        progress.contains("imported 100000 of 100000 schedules"),
        "{progress}"
    );
    let t7 = listed(h, &store, "t7");
    assert_eq!(t7.len(), 1000);
    assert!(t7.iter().all(|s| s["tenant"] == "t7"));

    // Again: the same schedules, no more.
    ok(&rota(h, &["--db", db, "schedules", "import", f]));
    assert_eq!(listed(h, &store, "t7").len(), 1000);

    // A bad line: named, and nothing of its file written.
    let bad = h.join("bad.jsonl");
    let lines = [
        serde_json::json!({"id": "new-1", "tenant": "fresh", "job": {"queue": "q", "kind": "k", "payload": {}},
            "trigger": {"kind": "cron", "expr": "* * * * *"}}).to_string(),
        serde_json::json!({"id": "new-2", "tenant": "fresh", "job": {"queue": "q", "kind": "k", "payload": {}},
            "trigger": {"kind": "cron", "expr": "* * * * *"}}).to_string(),
        serde_json::json!({"id": "new-3", "tenant": "fresh", "job": {"queue": "q", "kind": "k", "payload": {}},
            "trigger": {"kind": "cron", "expr": "99 * * * *"}}).to_string(),
    ];
    std::fs::write(&bad, lines.join("\n")).unwrap();
    fails(
        &rota(
            h,
            &["--db", db, "schedules", "import", bad.to_str().unwrap()],
        ),
        4,
        "line 3 (schedule \"new-3\")",
    );
    assert!(listed(h, &store, "fresh").is_empty());
    std::fs::write(&bad, format!("{}\n{{not json\n", lines[0])).unwrap();
    fails(
        &rota(
            h,
            &["--db", db, "schedules", "import", bad.to_str().unwrap()],
        ),
        4,
        "line 2: not a schedule",
    );
    std::fs::write(&bad, format!("{}\n{}\n", lines[0], lines[0])).unwrap();
    fails(
        &rota(
            h,
            &["--db", db, "schedules", "import", bad.to_str().unwrap()],
        ),
        4,
        "is on line 1 already",
    );
    assert!(listed(h, &store, "fresh").is_empty());
    fails(
        &rota(h, &["--db", db, "schedules", "import", "/no/such.jsonl"]),
        3,
        "cannot read",
    );
}

/// What export writes, import reads back — here from the embedded file to
/// a Redis.
#[test]
fn export_then_import_moves_schedules_between_stores() {
    let server = RedisServer::start();
    let url = server.url();
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let db = h.join("rota.db");
    let db = db.to_str().unwrap();
    let file = h.join("in.jsonl");
    let text: String = (0..2_000).map(|i| schedule_line(i) + "\n").collect();
    std::fs::write(&file, text).unwrap();
    ok(&rota(
        h,
        &["--db", db, "schedules", "import", file.to_str().unwrap()],
    ));
    let out = ok(&rota(
        h,
        &[
            "--db",
            db,
            "schedules",
            "export",
            "--tenant",
            "t1",
            "--tenant",
            "t2",
        ],
    ));
    assert_eq!(out.lines().count(), 40);
    let moved = h.join("moved.jsonl");
    std::fs::write(&moved, &out).unwrap();
    let redis = ["--redis", url.as_str(), "--prefix", "moved"];
    let mut args: Vec<&str> = redis.to_vec();
    args.extend_from_slice(&["schedules", "import", moved.to_str().unwrap()]);
    ok(&rota(h, &args));
    let there = listed(h, &redis, "t1");
    let here = listed(h, &["--db", db], "t1");
    assert_eq!(there.len(), 20);
    for (a, b) in there.iter().zip(&here) {
        for field in [
            "id", "tenant", "job", "trigger", "overlap", "missed", "paused",
        ] {
            assert_eq!(a[field], b[field], "{field}");
        }
    }
}

#[test]
fn completions_are_printed_for_each_shell() {
    let home = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish"] {
        let out = ok(&rota(home.path(), &["completions", shell]));
        assert!(out.contains("schedules"), "{shell}: {out}");
    }
    fails(
        &rota(home.path(), &["completions", "cmd.exe"]),
        2,
        "invalid value",
    );
}

/// Jobs by hand: enqueued, run by a worker process, shown; one retried to
/// death is listed, requeued and purged from the dead letters; a delayed
/// one cancelled; the queue's counts per state and partition.
#[test]
fn jobs_dead_letters_and_queues_from_the_command_line() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let db = h.join("rota.db");
    let db = db.to_str().unwrap();
    let job = script(
        h,
        "job.sh",
        r#"case "$ROTA_KIND" in
  echo) cat ;;
  tempfail) echo "not now" >&2; exit 75 ;;
esac"#,
    );
    // A worker in the background, for the waits below.
    let mut worker = Command::new(env!("CARGO_BIN_EXE_rota"))
        .args([
            "--db", db, "worker", "--queue", "hand", "--exec", &job, "--for", "30",
        ])
        .env_clear()
        .env("HOME", h)
        .env("ROTA_LISTEN", "127.0.0.1:0")
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let run = |args: &[&str]| {
        let mut all = vec!["--db", db];
        all.extend_from_slice(args);
        rota(h, &all)
    };
    let out = ok(&run(&[
        "jobs",
        "enqueue",
        "--queue",
        "hand",
        "--tenant",
        "acme",
        "--kind",
        "echo",
        "--payload",
        "{\"hello\": \"world\"}",
        "--wait",
        "20s",
        "--json",
    ]));
    let outcome: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(outcome["state"], "succeeded", "{outcome}");
    assert_eq!(outcome["result"]["hello"], "world", "{outcome}");
    let id = outcome["id"].as_str().unwrap().to_owned();
    let shown = ok(&run(&["jobs", "show", "--queue", "hand", &id]));
    assert!(
        shown.contains("succeeded") && shown.contains("acme"),
        "{shown}"
    );

    // Retried until it is dead: exit 1 and the reason.
    let o = run(&[
        "jobs",
        "enqueue",
        "--queue",
        "hand",
        "--tenant",
        "globex",
        "--kind",
        "tempfail",
        "--max-attempts",
        "1",
        "--wait",
        "20s",
    ]);
    fails(&o, 1, "the job ended dead");
    let dead: serde_json::Value =
        serde_json::from_str(&ok(&run(&["dlq", "list", "--queue", "hand", "--json"]))).unwrap();
    let dead = dead["jobs"].as_array().unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    let dead_id = dead[0]["job"]["id"].as_str().unwrap().to_owned();
    assert!(ok(&run(&["dlq", "list", "--queue", "hand"])).contains("not now"));
    ok(&run(&["dlq", "requeue", "--queue", "hand", &dead_id]));
    fails(
        &run(&["dlq", "requeue", "--queue", "hand", &id]),
        3,
        "no dead job",
    );
    // Requeued, it dies again; then the dead letters are purged.
    for _ in 0..100 {
        let v: serde_json::Value =
            serde_json::from_str(&ok(&run(&["dlq", "list", "--queue", "hand", "--json"]))).unwrap();
        if v["jobs"].as_array().unwrap().len() == 1 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(
        ok(&run(&["dlq", "purge", "--queue", "hand"])).trim(),
        "1 dead jobs purged"
    );

    // Delayed, then cancelled before it runs.
    let later = ok(&run(&[
        "jobs", "enqueue", "--queue", "hand", "--tenant", "initech", "--kind", "echo", "--in", "1h",
    ]));
    let later = later.trim();
    let counts: serde_json::Value =
        serde_json::from_str(&ok(&run(&["queues", "--queue", "hand", "--json"]))).unwrap();
    assert_eq!(counts["hand"]["total"]["scheduled"], 1, "{counts}");
    assert_eq!(
        counts["hand"]["partitions"]["initech"]["scheduled"], 1,
        "{counts}"
    );
    let table = ok(&run(&["queues", "--queue", "hand"]));
    assert!(
        table.starts_with("QUEUE") && table.contains("initech"),
        "{table}"
    );
    // Every queue, when none is named.
    let all = ok(&run(&["queues"]));
    assert!(all.contains("hand") && all.contains("initech"), "{all}");

    // Listed by state, a page at a time, by tenant.
    let list = |args: &[&str]| -> serde_json::Value {
        let mut all = vec!["jobs", "list", "--queue", "hand", "--json"];
        all.extend_from_slice(args);
        serde_json::from_str(&ok(&run(&all))).unwrap()
    };
    let scheduled = list(&["--state", "scheduled"]);
    assert_eq!(scheduled["jobs"][0]["job"]["id"], later, "{scheduled}");
    assert!(scheduled["next"].is_null(), "{scheduled}");
    let succeeded = list(&["--state", "succeeded", "--tenant", "acme"]);
    assert_eq!(
        succeeded["jobs"][0]["job"]["id"],
        id.as_str(),
        "{succeeded}"
    );
    assert!(
        list(&["--state", "succeeded", "--tenant", "globex"])["jobs"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    for _ in 0..3 {
        ok(&run(&[
            "jobs", "enqueue", "--queue", "hand", "--tenant", "umbrella", "--kind", "echo", "--in",
            "2h",
        ]));
    }
    let first = list(&["--state", "scheduled", "--limit", "2"]);
    assert_eq!(first["jobs"].as_array().unwrap().len(), 2, "{first}");
    let cursor = first["next"].as_str().expect("a cursor").to_owned();
    let rest = list(&["--state", "scheduled", "--after", &cursor]);
    assert_eq!(rest["jobs"].as_array().unwrap().len(), 2, "{rest}");
    assert!(rest["next"].is_null(), "{rest}");
    let table = run(&[
        "jobs",
        "list",
        "--queue",
        "hand",
        "--state",
        "scheduled",
        "--limit",
        "1",
    ]);
    assert!(ok(&table).starts_with("ID"), "{}", stdout(&table));
    assert!(stderr(&table).contains("--after"), "{}", stderr(&table));
    fails(
        &run(&[
            "jobs",
            "list",
            "--queue",
            "hand",
            "--after",
            "forged cursor",
        ]),
        4,
        "cursor",
    );
    fails(
        &run(&["jobs", "list", "--queue", "hand", "--state", "sleeping"]),
        2,
        "not a job state",
    );

    assert!(ok(&run(&["jobs", "cancel", "--queue", "hand", later])).contains("cancelled"));
    assert!(ok(&run(&["jobs", "cancel", "--queue", "hand", later])).contains("unchanged"));

    fails(
        &run(&["jobs", "show", "--queue", "hand", "not-an-id"]),
        4,
        "is not a job id",
    );
    fails(
        &run(&[
            "jobs",
            "show",
            "--queue",
            "hand",
            "0190f4c4-0000-7000-8000-000000000000",
        ]),
        3,
        "no job",
    );
    fails(
        &run(&[
            "jobs",
            "enqueue",
            "--queue",
            "bad queue",
            "--tenant",
            "a",
            "--kind",
            "k",
        ]),
        4,
        "queue",
    );
    let _ = worker.kill();
    let _ = worker.wait();
}

/// A tiny HTTP service for `--http` workers: answers by the job's kind and
/// keeps each request body.
struct Service {
    url: String,
    seen: std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
}

fn service() -> Service {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/jobs", listener.local_addr().unwrap());
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<serde_json::Value>::new()));
    let kept = std::sync::Arc::clone(&seen);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0usize;
            let mut line = String::new();
            let mut method = String::new();
            loop {
                line.clear();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                if method.is_empty() {
                    method = line.split(' ').next().unwrap_or("").to_owned();
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0u8; length];
            let _ = reader.read_exact(&mut body);
            let (status, extra, answer) = if method != "POST" {
                ("200 OK", "", String::new())
            } else {
                let job: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                let mut seen = kept.lock().unwrap();
                seen.push(job.clone());
                let tries = seen.iter().filter(|j| j["id"] == job["id"]).count();
                match job["kind"].as_str().unwrap_or("") {
                    "ok" => (
                        "200 OK",
                        "",
                        serde_json::json!({"done": true, "tenant": job["tenant"]}).to_string(),
                    ),
                    "busy" if tries == 1 => (
                        "503 Service Unavailable",
                        "Retry-After: 1\r\n",
                        "busy".into(),
                    ),
                    "busy" => ("200 OK", "", "fine now".into()),
                    "bad" => ("400 Bad Request", "", "no such report".into()),
                    _ => ("500 Internal Server Error", "", "it broke".into()),
                }
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                answer.len()
            );
        }
    });
    Service { url, seen }
}

/// An `--http` worker: a JSON POST per job with the job's fields; 2xx
/// succeeds with the body as result, 503 with Retry-After retries, 400
/// fails for good, 500 retries until the attempts run out; a service that
/// refuses connections is said to, and the worker keeps running.
#[test]
fn an_http_worker_posts_each_job_and_reads_the_status() {
    let svc = service();
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let db = h.join("rota.db");
    let db = db.to_str().unwrap();
    let soon = (jiff::Timestamp::now() + jiff::SignedDuration::from_secs(2)).to_string();
    for kind in ["ok", "busy", "bad", "broken"] {
        ok(&rota(
            h,
            &[
                "--db",
                db,
                "schedules",
                "add",
                "--tenant",
                "acme",
                "--queue",
                "hooks",
                "--kind",
                kind,
                "--at",
                &soon,
                "--id",
                kind,
                "--max-attempts",
                "2",
                "--payload",
                "{\"report\": 7}",
            ],
        ));
    }
    ok(&rota(
        h,
        &[
            "--db", db, "up", "--queue", "hooks", "--http", &svc.url, "--for", "7",
        ],
    ));
    let last = |id: &str| {
        let runs = runs_json(h, db, id);
        finished(&runs)
            .first()
            .map(|r| (*r).clone())
            .unwrap_or_else(|| panic!("{id}: {runs:#?}"))
    };
    assert_eq!(last("ok")["state"]["finished"], "succeeded");
    let busy = last("busy");
    assert_eq!(busy["state"]["finished"], "succeeded", "{busy}");
    assert_eq!(busy["attempts"], 2, "{busy}");
    let bad = last("bad");
    assert_eq!(bad["state"]["finished"], "failed", "{bad}");
    assert!(
        bad["error"]
            .as_str()
            .unwrap()
            .contains("400 Bad Request: no such report"),
        "{bad}"
    );
    let broken = last("broken");
    assert_eq!(broken["state"]["finished"], "dead", "{broken}");
    assert_eq!(broken["attempts"], 2, "{broken}");
    let seen = svc.seen.lock().unwrap();
    let ok_call = seen.iter().find(|j| j["kind"] == "ok").unwrap();
    assert_eq!(ok_call["tenant"], "acme");
    assert_eq!(ok_call["queue"], "hooks");
    assert_eq!(ok_call["attempt"], 1);
    assert_eq!(ok_call["schedule"], "ok");
    assert!(ok_call["occurrence"].as_str().unwrap().ends_with('Z'));
    assert_eq!(ok_call["payload"]["report"], 7);
    drop(seen);

    let o = rota(
        h,
        &[
            "--db",
            db,
            "worker",
            "--queue",
            "hooks",
            "--http",
            "http://127.0.0.1:1/jobs",
            "--for",
            "1",
        ],
    );
    ok(&o);
    assert!(stderr(&o).contains("does not answer"), "{}", stderr(&o));
    fails(
        &rota(
            h,
            &["--db", db, "worker", "--queue", "q", "--http", "ftp://x/y"],
        ),
        2,
        "http:// or https://",
    );
    fails(
        &rota(
            h,
            &[
                "--db",
                db,
                "worker",
                "--queue",
                "q",
                "--http",
                "http://a/",
                "--exec",
                "true",
            ],
        ),
        2,
        "cannot be used with",
    );
}

/// A worker started while its Redis is down waits for it, says so, and
/// serves once it is up.
#[test]
fn a_worker_started_before_its_redis_waits_for_it() {
    let mut server = RedisServer::start();
    let url = server.url();
    server.kill();
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let log = h.join("worker.log");
    let mut worker = Command::new(env!("CARGO_BIN_EXE_rota"))
        .args([
            "--redis", &url, "worker", "--queue", "q", "--exec", "cat", "--for", "20",
        ])
        .env_clear()
        .env("HOME", h)
        .env("ROTA_LISTEN", "127.0.0.1:0")
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert!(worker.try_wait().unwrap().is_none(), "the worker gave up");
    server.restart();
    let out = ok(&rota(
        h,
        &[
            "--redis",
            &url,
            "jobs",
            "enqueue",
            "--queue",
            "q",
            "--tenant",
            "acme",
            "--kind",
            "k",
            "--payload",
            "{\"back\": true}",
            "--wait",
            "15s",
            "--json",
        ],
    ));
    let outcome: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(outcome["result"]["back"], true, "{outcome}");
    let _ = worker.kill();
    let _ = worker.wait();
    let said = std::fs::read_to_string(&log).unwrap();
    assert!(said.contains("cannot reach Redis; retrying"), "{said}");
}
