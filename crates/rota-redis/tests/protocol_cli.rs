//! The worked example of `docs/PROTOCOL.md` (§7), run for real: the doc's
//! `redis-cli` command lines, executed as written, against a rota server
//! (calling it by hand) and for a rota client (serving it by hand).
//!
//! Every command line below is checked to appear in the doc verbatim, so the
//! doc and this test cannot drift apart; only the values that change from run
//! to run (a deadline, ids the client picks) are substituted at run time.

mod support;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use rota::{Codec, CorrelationId, Deadline, Headers, Outcome, Reply, Request, ServeOptions};
use rota_redis::RedisBroker;
use serde_json::{Value, json};

const DOC: &str = include_str!("../../../docs/PROTOCOL.md");

/// The contract of the doc's example.
#[rota::contract]
pub trait Greeter {
    /// Greets `name`.
    async fn greet(&self, name: String) -> String;
}

struct English;

impl Greeter for English {
    async fn greet(&self, name: String) -> String {
        format!("hello, {name}")
    }
}

// ---------------------------------------------------------------------------
// The doc's command lines (§7).

/// What the doc writes in place of a deadline 30 s from now.
const DEADLINE_NOW_PLUS_30S: &str = "'$(( $(date +%s%3N) + 30000 ))'";

const CALL_XADD: &str = r#"redis-cli XADD 'rota:{greeter}:q' '*' m '{"v":1,"id":"01a21285-c7de-7a3b-9c4d-5e6f70819a2b","service":"greeter","method":"greet","reply_to":"rota:{c:cli}:r","deadline_ms":'$(( $(date +%s%3N) + 30000 ))',"body":{"name":"ada"}}'"#;
const CALL_BLPOP: &str = "redis-cli BLPOP 'rota:{c:cli}:r' 5";
const CALL_REPLY: &str =
    r#"{"v":1,"id":"01a21285-c7de-7a3b-9c4d-5e6f70819a2b","outcome":"ok","body":"hello, ada"}"#;
const QUEUE_XLEN: &str = "redis-cli XLEN 'rota:{greeter}:q'";

const SHOUT_XADD: &str = r#"redis-cli XADD 'rota:{greeter}:q' '*' m '{"v":1,"id":"01a21285-c7de-7a3b-9c4d-5e6f70819a2c","service":"greeter","method":"shout","reply_to":"rota:{c:cli}:r","deadline_ms":'$(( $(date +%s%3N) + 30000 ))',"body":{"name":"ada"}}'"#;
const RAW_BLPOP: &str = "redis-cli --raw BLPOP 'rota:{c:cli}:r' 5";
const SHOUT_REPLY: &str = r#"{"v":1,"id":"01a21285-c7de-7a3b-9c4d-5e6f70819a2c","outcome":"fault","fault":{"kind":"unknown_method","message":"contract Greeter has no method \"shout\""}}"#;

const LATE_XADD: &str = r#"redis-cli XADD 'rota:{greeter}:q' '*' m '{"v":1,"id":"01a21285-c7de-7a3b-9c4d-5e6f70819a2d","service":"greeter","method":"greet","reply_to":"rota:{c:cli}:r","deadline_ms":1,"body":{"name":"ada"}}'"#;
const LATE_REPLY: &str = r#"{"v":1,"id":"01a21285-c7de-7a3b-9c4d-5e6f70819a2d","outcome":"fault","fault":{"kind":"deadline_exceeded","message":"the deadline passed before the request was started"}}"#;

const GARBAGE_XADD: &str = "redis-cli XADD 'rota:{greeter}:q' '*' m 'hello'";
const DEAD_XLEN: &str = "redis-cli XLEN 'rota:{greeter}:dead'";
const DEAD_XRANGE: &str = "redis-cli XRANGE 'rota:{greeter}:dead' - +";
const GARBAGE_REASON: &str = "undecodable request: not a rota envelope: the first byte is neither '{' (JSON) nor a MessagePack map";
const REQUEUE_EVAL: &str = r#"redis-cli EVAL "$(cat crates/rota-redis/src/lua/rpc/requeue_dead.lua)" 2 'rota:{greeter}:q' 'rota:{greeter}:dead' ''"#;
const DEAD_DEL: &str = "redis-cli DEL 'rota:{greeter}:dead'";

const MSGPACK_XADD: &str =
    r#"printf '%s' "$REQUEST_HEX" | xxd -r -p | redis-cli -x XADD 'rota:{greeter}:q' '*' m"#;
const CONSUMERS: &str = "redis-cli XINFO CONSUMERS 'rota:{greeter}:q' g";

const HAND_GROUP: &str = "redis-cli XGROUP CREATE 'rota:{greeter2}:q' g 0 MKSTREAM";
const HAND_LEASE: &str = "redis-cli SET 'rota:{greeter2}:lease:cli' 1 PX 300000";
const HAND_CLAIM: &str =
    "redis-cli XREADGROUP GROUP g cli COUNT 10 BLOCK 30000 STREAMS 'rota:{greeter2}:q' '>'";
const HAND_RPUSH: &str = r#"redis-cli RPUSH 'rota:{c:01a21285cb807c0d9e1f203142536475}:r' '{"v":1,"id":"01a21285-cb80-7f11-8e22-334455667788","outcome":"ok","body":"hello from redis-cli, ada"}'"#;
const HAND_PEXPIRE: &str = "redis-cli PEXPIRE 'rota:{c:01a21285cb807c0d9e1f203142536475}:r' 300000";
const HAND_ACK: &str = r#"redis-cli EVAL "if redis.call('EXISTS', KEYS[2]) == 0 then return -1 end local n = redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) redis.call('XDEL', KEYS[1], ARGV[2]) return n" 2 'rota:{greeter2}:q' 'rota:{greeter2}:lease:cli' g 1795607088001-0"#;
const HAND_QUEUE_XLEN: &str = "redis-cli XLEN 'rota:{greeter2}:q'";
const HAND_LEAVE: &str = "redis-cli XGROUP DELCONSUMER 'rota:{greeter2}:q' g cli";
const HAND_UNLEASE: &str = "redis-cli DEL 'rota:{greeter2}:lease:cli'";
/// The example values of §7.2 that the client picks at run time.
const HAND_EXAMPLE_ID: &str = "01a21285-cb80-7f11-8e22-334455667788";
const HAND_EXAMPLE_INBOX: &str = "rota:{c:01a21285cb807c0d9e1f203142536475}:r";
const HAND_EXAMPLE_ENTRY: &str = "1795607088001-0";

/// §1.5: the MessagePack request and its reply.
const MSGPACK_REQUEST_HEX: &str = "89a17601a26964d92430316132313238352d633764652d376133622d396334642d356536663730383139613262a773657276696365a767726565746572a66d6574686f64a56772656574a87265706c795f746fae726f74613a7b633a636c697d3a72ab646561646c696e655f6d73cf000001a212863d0ea7617474656d707401a76865616465727380a4626f6479c40a81a46e616d65a3616461";
const MSGPACK_REPLY_HEX: &str = "84a17601a26964d92430316132313238352d633764652d376133622d396334642d356536663730383139613262a76f7574636f6d65a26f6ba4626f6479c40baa68656c6c6f2c20616461";
/// The deadline inside `MSGPACK_REQUEST_HEX`: `cf` and 8 bytes.
const MSGPACK_DEADLINE_HEX: &str = "cf000001a212863d0e";
const MSGPACK_DEADLINE_MS: u64 = 1_795_607_117_070;

// ---------------------------------------------------------------------------
// Helpers.

/// Asserts that the doc shows `text` verbatim.
#[track_caller]
fn assert_doc_shows(text: &str) {
    assert!(
        DOC.contains(text),
        "docs/PROTOCOL.md no longer shows:\n{text}"
    );
}

/// Asserts that the doc has the command line `line` in a console block.
#[track_caller]
fn assert_doc_runs(line: &str) {
    assert_doc_shows(&format!("$ {line}\n"));
}

/// How `redis-cli` shows a string reply on a terminal: quoted, with `"` and
/// `\` escaped.
fn tty_quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Splits a command line into words as a POSIX shell would, for the quoting
/// the doc uses: single quotes keep everything, double quotes keep everything
/// too (the doc puts no `\`, `` ` `` or `$` in them, except a whole-word
/// `$(cat <file>)`, which is replaced by the file's content).
fn words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' => {
                if let Some(w) = word.take() {
                    words.push(w);
                }
            }
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    w.push(c);
                }
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                for c in chars.by_ref() {
                    if c == '"' {
                        break;
                    }
                    assert!(!matches!(c, '\\' | '`'), "unsupported quoting in {line}");
                    w.push(c);
                }
            }
            c => {
                assert!(
                    !matches!(c, '$' | '\\' | '`' | '"'),
                    "unsupported shell syntax in {line}"
                );
                word.get_or_insert_with(String::new).push(c);
            }
        }
    }
    words.extend(word);
    words
        .into_iter()
        .map(
            |w| match w.strip_prefix("$(cat ").and_then(|w| w.strip_suffix(')')) {
                Some(path) => std::fs::read_to_string(repo_root().join(path))
                    .unwrap_or_else(|e| panic!("{path}: {e}")),
                None => {
                    assert!(!w.contains('$'), "unsupported expansion in {line}");
                    w
                }
            },
        )
        .collect()
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs a `redis-cli …` command line against the test's server and returns
/// its standard output (raw: it is not a terminal).
async fn cli_bytes(port: u16, line: &str, stdin: Option<Vec<u8>>) -> Vec<u8> {
    let mut words = words(line);
    assert_eq!(words.remove(0), "redis-cli", "{line}");
    let port = port.to_string();
    let line = line.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut cmd = Command::new("redis-cli");
        cmd.args(["-p", &port])
            .args(&words)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("redis-cli must be installed");
        if let Some(input) = stdin {
            use std::io::Write;
            let mut pipe = child.stdin.take().expect("stdin");
            pipe.write_all(&input).expect("write stdin");
        }
        let out = child.wait_with_output().expect("redis-cli runs");
        // redis-cli exits with 0 after an error reply too: look at the reply.
        let error = [
            "ERR ",
            "WRONGTYPE ",
            "NOGROUP ",
            "BUSYGROUP ",
            "NOSCRIPT ",
            "NOPERM ",
        ]
        .iter()
        .any(|code| out.stdout.starts_with(code.as_bytes()));
        assert!(
            out.status.success() && !error,
            "{line} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    })
    .await
    .expect("redis-cli task")
}

/// Runs a command line and returns its output lines.
async fn cli(port: u16, line: &str) -> Vec<String> {
    let out = String::from_utf8(cli_bytes(port, line, None).await).expect("text output");
    out.lines().map(str::to_owned).collect()
}

/// Runs a command line whose output is one line.
async fn cli1(port: u16, line: &str) -> String {
    let mut lines = cli(port, line).await;
    assert_eq!(lines.len(), 1, "{line}: {lines:?}");
    lines.remove(0)
}

/// Runs a command line until it prints `want`, a bounded number of times
/// (`XLEN` while the server is at work).
async fn cli_until(port: u16, line: &str, want: &str) {
    for _ in 0..500 {
        if cli1(port, line).await == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{line} never printed {want}");
}

/// Runs a blocking pop (`BLPOP … 5`) until it returns something, at most 6
/// times: `[key, value]`.
async fn pop(port: u16, line: &str) -> Vec<String> {
    for _ in 0..6 {
        let lines = cli(port, line).await;
        if lines.iter().any(|l| !l.is_empty()) {
            return lines;
        }
    }
    panic!("{line} got nothing in 30 s");
}

/// The doc's XADD line with a deadline 30 s from now.
fn with_fresh_deadline(line: &str) -> String {
    assert!(line.contains(DEADLINE_NOW_PLUS_30S), "{line}");
    let deadline = rota::Deadline::after(Duration::from_secs(30)).as_unix_ms();
    line.replace(DEADLINE_NOW_PLUS_30S, &deadline.to_string())
}

#[track_caller]
fn assert_entry_id(id: &str) {
    let (ms, seq) = id.split_once('-').unwrap_or_else(|| panic!("{id}"));
    assert!(
        ms.parse::<u64>().is_ok() && seq.parse::<u64>().is_ok(),
        "not a stream entry id: {id}"
    );
}

#[track_caller]
fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

async fn rota_broker(server: &support::RedisServer) -> RedisBroker {
    // The default prefix, "rota", as in the doc.
    RedisBroker::connect(&server.url()).await.expect("connect")
}

// ---------------------------------------------------------------------------
// §7.1: calling a rota server with redis-cli.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cli_calls_a_rota_server() {
    let server = support::RedisServer::start();
    let port = server.port();
    let broker = rota_broker(&server).await;
    let greeter = GreeterServer::new(English).spawn(
        broker.clone(),
        "greeter",
        ServeOptions::default().claim_wait(Duration::from_millis(200)),
    );

    // A call and its reply.
    assert_doc_runs(CALL_XADD);
    assert_entry_id(&cli1(port, &with_fresh_deadline(CALL_XADD)).await);
    assert_doc_runs(CALL_BLPOP);
    let popped = pop(port, CALL_BLPOP).await;
    assert_eq!(popped.len(), 2, "{popped:?}");
    assert_eq!(popped[0], "rota:{c:cli}:r");
    assert_eq!(
        json(&popped[1]),
        json!({"v": 1, "id": "01a21285-c7de-7a3b-9c4d-5e6f70819a2b", "outcome": "ok", "body": "hello, ada"})
    );
    assert_eq!(json(&popped[1]), json(CALL_REPLY));
    assert_doc_shows(&format!("2) {}\n", tty_quoted(CALL_REPLY)));
    assert_doc_shows(&format!("The reply is `{CALL_REPLY}`"));

    // Acknowledged, hence deleted from the stream.
    assert_doc_runs(QUEUE_XLEN);
    cli_until(port, QUEUE_XLEN, "0").await;

    // An unknown method.
    assert_doc_runs(SHOUT_XADD);
    assert_entry_id(&cli1(port, &with_fresh_deadline(SHOUT_XADD)).await);
    assert_doc_runs(RAW_BLPOP);
    let popped = pop(port, RAW_BLPOP).await;
    assert_eq!(popped, ["rota:{c:cli}:r", SHOUT_REPLY]);
    assert_doc_shows(&format!("rota:{{c:cli}}:r\n{SHOUT_REPLY}\n"));

    // A deadline that passed.
    assert_doc_runs(LATE_XADD);
    assert_entry_id(&cli1(port, LATE_XADD).await);
    let popped = pop(port, RAW_BLPOP).await;
    assert_eq!(popped[0], "rota:{c:cli}:r");
    assert_eq!(json(&popped[1]), json(LATE_REPLY));
    assert_doc_shows(&format!("rota:{{c:cli}}:r\n{LATE_REPLY}\n"));

    // Arguments that do not match: the message the doc quotes for bad_request.
    let bad = format!(
        r#"redis-cli XADD 'rota:{{greeter}}:q' '*' m '{{"v":1,"id":"01a21285-c7de-7a3b-9c4d-5e6f70819a2e","service":"greeter","method":"greet","reply_to":"rota:{{c:cli}}:r","deadline_ms":{},"body":{{}}}}'"#,
        Deadline::after(Duration::from_secs(30)).as_unix_ms()
    );
    cli1(port, &bad).await;
    let popped = pop(port, RAW_BLPOP).await;
    let fault = &json(&popped[1])["fault"];
    assert_eq!(fault["kind"], "bad_request");
    let message = fault["message"].as_str().expect("message");
    assert_doc_shows(&format!("`` {message} ``"));

    // Not an envelope at all: dead-lettered with the reason.
    assert_doc_runs(GARBAGE_XADD);
    let source = cli1(port, GARBAGE_XADD).await;
    assert_entry_id(&source);
    assert_doc_runs(DEAD_XLEN);
    cli_until(port, DEAD_XLEN, "1").await;
    assert_doc_runs(DEAD_XRANGE);
    let entry = cli(port, DEAD_XRANGE).await;
    assert_eq!(entry.len(), 11, "{entry:?}");
    assert_entry_id(&entry[0]);
    let at_ms = entry[8].clone();
    assert!(at_ms.parse::<u64>().is_ok(), "{at_ms}");
    assert_eq!(
        entry[1..],
        [
            "m",
            "hello",
            "reason",
            GARBAGE_REASON,
            "attempts",
            "1",
            "at_ms",
            &at_ms,
            "source",
            &source
        ]
    );
    assert_doc_shows(&format!("4) {}\n", tty_quoted(GARBAGE_REASON)));
    // The library sees the same dead letter.
    let dead = rota::Broker::dead_letters(&broker, "greeter", 10)
        .await
        .expect("dead letters");
    assert_eq!(dead.len(), 1);
    assert_eq!(
        (
            dead[0].id.as_str(),
            dead[0].reason.as_str(),
            dead[0].attempts
        ),
        (entry[0].as_str(), GARBAGE_REASON, 1)
    );
    assert_eq!(dead[0].payload, b"hello");

    // Re-queued, it comes straight back; then purged.
    assert_doc_runs(REQUEUE_EVAL);
    assert_eq!(cli1(port, REQUEUE_EVAL).await, "1");
    cli_until(port, DEAD_XLEN, "1").await;
    let again = cli(port, DEAD_XRANGE).await;
    assert_ne!(again[0], entry[0], "a new dead letter");
    assert_eq!(again[4], GARBAGE_REASON);
    assert_doc_runs(DEAD_DEL);
    assert_eq!(cli1(port, DEAD_DEL).await, "1");

    // MessagePack in, MessagePack out (§1.5), through `redis-cli -x`.
    assert_doc_runs(MSGPACK_XADD);
    let mut deadline = String::from("cf");
    for b in Deadline::after(Duration::from_secs(30))
        .as_unix_ms()
        .to_be_bytes()
    {
        deadline.push_str(&format!("{b:02x}"));
    }
    let request = hex(&MSGPACK_REQUEST_HEX.replace(MSGPACK_DEADLINE_HEX, &deadline));
    let xadd = MSGPACK_XADD.split(" | ").last().expect("redis-cli part");
    let id = cli_bytes(port, xadd, Some(request)).await;
    assert_entry_id(String::from_utf8_lossy(&id).trim_end());
    let mut reply = Vec::new();
    for _ in 0..6 {
        reply = cli_bytes(port, RAW_BLPOP, None).await;
        if reply != b"\n" {
            break;
        }
    }
    let reply = reply
        .strip_prefix(b"rota:{c:cli}:r\n".as_slice())
        .and_then(|r| r.strip_suffix(b"\n"))
        .unwrap_or_else(|| panic!("{:?}", String::from_utf8_lossy(&reply)));
    assert_eq!(reply, hex(MSGPACK_REPLY_HEX));

    // Shutdown drains, then closes: the consumer leaves the group and its
    // lease key is gone.
    greeter.shutdown().await.expect("clean shutdown");
    assert_doc_runs(CONSUMERS);
    // Raw output: an empty array is an empty line.
    assert_eq!(cli(port, CONSUMERS).await, [""]);
    assert_doc_shows(&format!("$ {CONSUMERS}\n(empty array)\n"));
    assert_eq!(
        cli(port, "redis-cli --scan --pattern 'rota:{greeter}:lease:*'").await,
        Vec::<String>::new()
    );
}

// ---------------------------------------------------------------------------
// §7.2: serving a rota client by hand with redis-cli.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cli_serves_a_rota_client() {
    let server = support::RedisServer::start();
    let port = server.port();
    let broker = rota_broker(&server).await;

    // Register.
    assert_doc_runs(HAND_GROUP);
    assert_eq!(cli1(port, HAND_GROUP).await, "OK");
    assert_doc_runs(HAND_LEASE);
    assert_eq!(cli1(port, HAND_LEASE).await, "OK");

    // A rota client calls.
    let client = GreeterClient::new(rota::Client::new(broker.clone()), "greeter2")
        .with_timeout(Duration::from_secs(120));
    let call = tokio::spawn(async move { client.greet("ada".into()).await });

    // Claim.
    assert_doc_runs(HAND_CLAIM);
    let mut claimed = Vec::new();
    for _ in 0..4 {
        claimed = cli(port, HAND_CLAIM).await;
        if claimed.iter().any(|l| !l.is_empty()) {
            break;
        }
    }
    // Raw output: stream, entry id, then field/value pairs: only `m`, since
    // a first delivery has no `a`.
    assert_eq!(claimed.len(), 4, "{claimed:?}");
    assert_eq!(claimed[0], "rota:{greeter2}:q");
    let entry = claimed[1].clone();
    assert_entry_id(&entry);
    assert_eq!(claimed[2], "m");
    let request = json(&claimed[3]);

    // The envelope is the one the doc shows, but for the values of this run.
    let id = request["id"].as_str().expect("id").to_owned();
    let uuid = CorrelationId::parse(&id).expect("a UUID");
    assert_eq!(uuid.as_uuid().get_version_num(), 7, "a UUID v7");
    assert_eq!(uuid.to_string(), id, "hyphenated, lower case");
    let inbox = request["reply_to"].as_str().expect("reply_to").to_owned();
    let hex_id = inbox
        .strip_prefix("rota:{c:")
        .and_then(|s| s.strip_suffix("}:r"))
        .unwrap_or_else(|| panic!("inbox {inbox}"));
    assert!(hex_id.len() == 32 && hex_id.bytes().all(|b| b.is_ascii_hexdigit()));
    let deadline = request["deadline_ms"].as_u64().expect("deadline_ms");
    let now = rota::Deadline::after(Duration::ZERO).as_unix_ms();
    assert!(deadline > now && deadline <= now + 120_000, "{deadline}");
    let example = DOC
        .lines()
        .filter_map(|l| l.strip_prefix("            2) "))
        .find(|l| l.contains(HAND_EXAMPLE_ID))
        .expect("the doc shows the claimed envelope");
    let example: String = serde_json::from_str(example).expect("a quoted string");
    let mut expected = json(
        &example
            .replace(HAND_EXAMPLE_ID, &id)
            .replace(HAND_EXAMPLE_INBOX, &inbox),
    );
    expected["deadline_ms"] = json!(deadline);
    assert_eq!(request, expected);
    assert_eq!(
        expected,
        json!({"v": 1, "id": id, "service": "greeter2", "method": "greet", "reply_to": inbox,
               "deadline_ms": deadline, "attempt": 1, "headers": {}, "body": {"name": "ada"}})
    );
    assert_doc_shows(&format!(
        "         2) 1) \"m\"\n            2) {}",
        tty_quoted(&example)
    ));

    // Reply, then refresh the inbox's TTL.
    let here = |line: &str| {
        line.replace(HAND_EXAMPLE_INBOX, &inbox)
            .replace(HAND_EXAMPLE_ID, &id)
            .replace(HAND_EXAMPLE_ENTRY, &entry)
    };
    assert_doc_runs(HAND_RPUSH);
    assert_eq!(cli1(port, &here(HAND_RPUSH)).await, "1");
    assert_doc_runs(HAND_PEXPIRE);
    let expire = cli1(port, &here(HAND_PEXPIRE)).await;
    assert!(expire == "0" || expire == "1", "{expire}");

    // The client gets the hand-written reply.
    let answer = tokio::time::timeout(Duration::from_secs(60), call)
        .await
        .expect("the call returns")
        .expect("the call task")
        .expect("the call succeeds");
    assert_eq!(answer, "hello from redis-cli, ada");

    // Acknowledge, fenced by the lease; leave.
    assert_doc_runs(HAND_ACK);
    assert_eq!(cli1(port, &here(HAND_ACK)).await, "1");
    assert_eq!(cli1(port, HAND_QUEUE_XLEN).await, "0");
    assert_doc_runs(HAND_LEAVE);
    assert_eq!(cli1(port, HAND_LEAVE).await, "0");
    assert_doc_runs(HAND_UNLEASE);
    assert_eq!(cli1(port, HAND_UNLEASE).await, "1");
    // Without the lease key, the same ack is refused.
    assert_eq!(cli1(port, &here(HAND_ACK)).await, "-1");
}

// ---------------------------------------------------------------------------
// §1.5: the MessagePack examples are what rota encodes and decodes.

#[test]
fn the_messagepack_examples_are_rotas_encoding() {
    assert_doc_shows(MSGPACK_REQUEST_HEX);
    assert_doc_shows(MSGPACK_REPLY_HEX);
    assert!(MSGPACK_REQUEST_HEX.contains(MSGPACK_DEADLINE_HEX));
    assert_eq!(
        u64::from_str_radix(&MSGPACK_DEADLINE_HEX[2..], 16).unwrap(),
        MSGPACK_DEADLINE_MS
    );

    let id = CorrelationId::parse("01a21285-c7de-7a3b-9c4d-5e6f70819a2b").unwrap();
    let request = Request {
        id,
        service: "greeter".into(),
        method: "greet".into(),
        reply_to: Some("rota:{c:cli}:r".into()),
        deadline: Some(Deadline::from_unix_ms(MSGPACK_DEADLINE_MS)),
        attempt: 1,
        headers: Headers::new(),
        codec: Codec::MessagePack,
        body: Bytes::from(Codec::MessagePack.encode(&json!({"name": "ada"})).unwrap()),
    };
    assert_eq!(request.encode().unwrap(), hex(MSGPACK_REQUEST_HEX));
    assert_eq!(Request::decode(&hex(MSGPACK_REQUEST_HEX)).unwrap(), request);

    let reply = Reply {
        id,
        codec: Codec::MessagePack,
        outcome: Outcome::Ok(Bytes::from(
            Codec::MessagePack.encode("hello, ada").unwrap(),
        )),
    };
    assert_eq!(reply.encode().unwrap(), hex(MSGPACK_REPLY_HEX));
    assert_eq!(Reply::decode(&hex(MSGPACK_REPLY_HEX)).unwrap(), reply);

    // The JSON examples of §1.1 and §7.1 are rota's encoding too.
    let json_reply = Reply {
        codec: Codec::Json,
        outcome: Outcome::Ok(Bytes::from_static(br#""hello, ada""#)),
        ..reply
    };
    assert_eq!(
        String::from_utf8(json_reply.encode().unwrap()).unwrap(),
        CALL_REPLY
    );
}
