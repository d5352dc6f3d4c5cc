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
