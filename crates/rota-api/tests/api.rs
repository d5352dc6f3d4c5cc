//! The API as a client uses it: a real server on a free port, a real store
//! (an embedded file, or a private `redis-server`), JSON over HTTP.

use std::time::Duration;

use reqwest::{Client, Method, StatusCode};
use rota_api::Api;
use rota_api::auth::{TokenEntry, Tokens, hash_token};
use rota_conformance::support::RedisServer;
use rota_core::Inboxes;
use rota_core::jobs::{AttemptOutcome, JobConsumerOptions, JobState, JobStore, Next, Settle};
use rota_core::schedules::ScheduleStore;
use serde_json::{Value, json};

const ADMIN: &str = "rota_admin-token-for-tests";
const ACME: &str = "rota_acme-token-for-tests";
const GLOBEX: &str = "rota_globex-token-for-tests";

fn tokens() -> Tokens {
    let entry = |name: &str, token: &str, tenant: Option<&str>| TokenEntry {
        name: name.into(),
        hash: hash_token(token),
        tenant: tenant.map(Into::into),
    };
    Tokens::new(vec![
        entry("ops", ADMIN, None),
        entry("acme", ACME, Some("acme")),
        entry("globex", GLOBEX, Some("globex")),
    ])
    .unwrap()
}

/// Serves the API over `store` on a free port; returns its base URL.
async fn serve<S>(store: S, tokens: Tokens) -> String
where
    S: ScheduleStore + JobStore + Inboxes + Clone,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = Api::new(store, tokens).router();
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{addr}")
}

struct Caller {
    client: Client,
    base: String,
    token: Option<&'static str>,
}

impl Caller {
    fn new(base: &str, token: Option<&'static str>) -> Self {
        Self {
            client: Client::new(),
            base: base.to_owned(),
            token,
        }
    }

    async fn send(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(t) = self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        let status = res.status();
        let problem = res
            .headers()
            .get("content-type")
            .is_some_and(|v| v == "application/problem+json");
        let text = res.text().await.unwrap();
        if status.is_client_error() || status.is_server_error() {
            assert!(problem, "{status} without problem+json: {text}");
        }
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, value)
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send(Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(Method::POST, path, Some(body)).await
    }
}

fn schedule(id: &str, tenant: &str) -> Value {
    json!({
        "id": id,
        "tenant": tenant,
        "name": format!("{tenant} nightly"),
        "job": {"queue": "reports", "kind": "nightly", "payload": {"tenant": tenant}},
        "trigger": {"kind": "cron", "expr": "0 2 * * *", "tz": "Europe/Lisbon"},
    })
}

/// A dead job of `tenant` in `queue`, made through the store.
async fn dead_job<S: JobStore>(store: &S, queue: &str, tenant: &str) -> String {
    let job = rota_core::jobs::NewJob::new(queue, tenant, "k", &json!({})).unwrap();
    let id = store.enqueue(vec![job]).await.unwrap()[0].id;
    let consumer = store
        .job_consumer(queue, JobConsumerOptions::default())
        .await
        .unwrap();
    let got = consumer.claim(10, Duration::from_secs(2)).await.unwrap();
    for job in got {
        let attempt = rota_core::jobs::Attempt {
            attempt: job.attempt,
            worker: "w".into(),
            started_at_ms: 0,
            finished_at_ms: 0,
            outcome: AttemptOutcome::Failed {
                error: "no".into(),
                retryable: false,
            },
        };
        let next = if job.id == id {
            Next::Dead("for the test".into())
        } else {
            Next::Finish(JobState::Failed)
        };
        consumer
            .settle(vec![Settle::new(job.id, attempt, next)])
            .await
            .unwrap();
    }
    id.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_token_sees_and_changes_its_tenant_only() {
    let dir = tempfile::tempdir().unwrap();
    let store = rota_sqlite::SqliteBroker::open(dir.path().join("rota.db"))
        .await
        .unwrap();
    let base = serve(store.clone(), tokens()).await;
    let admin = Caller::new(&base, Some(ADMIN));
    let acme = Caller::new(&base, Some(ACME));
    let globex = Caller::new(&base, Some(GLOBEX));

    // Acme's things, made by the administrator and by acme itself.
    let (s, _) = admin
        .post("/v1/schedules", schedule("acme-nightly", "acme"))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _) = acme
        .post("/v1/schedules", schedule("acme-weekly", "acme"))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, job) = acme
        .post(
            "/v1/queues/mail/jobs",
            json!({"tenant": "acme", "kind": "welcome", "delay_ms": 3_600_000}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{job}");
    let job = job["id"].as_str().unwrap().to_owned();
    let dead = dead_job(&store, "hooks", "acme").await;
    let (s, _) = globex
        .post("/v1/schedules", schedule("globex-daily", "globex"))
        .await;
    assert_eq!(s, StatusCode::CREATED);

    // Every route of acme's things, with globex's token: not found.
    let backfill = json!({"from_ms": 0, "to_ms": 1});
    let put = schedule("acme-nightly", "acme");
    let routes: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, "/v1/schedules/acme-nightly".into(), None),
        (
            Method::PUT,
            "/v1/schedules/acme-nightly".into(),
            Some(put.clone()),
        ),
        (Method::DELETE, "/v1/schedules/acme-nightly".into(), None),
        (
            Method::POST,
            "/v1/schedules/acme-nightly/pause".into(),
            None,
        ),
        (
            Method::POST,
            "/v1/schedules/acme-nightly/resume".into(),
            None,
        ),
        (
            Method::POST,
            "/v1/schedules/acme-nightly/trigger".into(),
            None,
        ),
        (
            Method::POST,
            "/v1/schedules/acme-nightly/backfill".into(),
            Some(backfill),
        ),
        (Method::GET, "/v1/schedules/acme-nightly/runs".into(), None),
        (Method::GET, "/v1/schedules?tenant=acme".into(), None),
        (
            Method::POST,
            "/v1/schedules".into(),
            Some(schedule("sneaky", "acme")),
        ),
        (Method::GET, format!("/v1/queues/mail/jobs/{job}"), None),
        (
            Method::POST,
            format!("/v1/queues/mail/jobs/{job}/cancel"),
            None,
        ),
        (
            Method::GET,
            "/v1/queues/mail/jobs?state=scheduled&tenant=acme".into(),
            None,
        ),
        (
            Method::POST,
            "/v1/queues/mail/jobs".into(),
            Some(json!({"tenant": "acme", "kind": "k"})),
        ),
        (
            Method::GET,
            "/v1/queues/hooks/dead?tenant=acme".into(),
            None,
        ),
        (
            Method::POST,
            format!("/v1/queues/hooks/dead/{dead}/requeue"),
            None,
        ),
    ];
    for (method, path, body) in &routes {
        let (s, v) = globex.send(method.clone(), path, body.clone()).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{method} {path}: {v}");
        let text = v.to_string();
        // The caller's own words come back; acme's data never does.
        for secret in ["acme nightly", "welcome", "Europe/Lisbon", "for the test"] {
            assert!(!text.contains(secret), "{method} {path}: {text}");
        }
    }
    // Nothing of acme's changed or appeared.
    let (_, got) = acme.get("/v1/schedules/acme-nightly").await;
    assert_eq!(got["paused"], false, "{got}");
    assert!(acme.get("/v1/schedules/sneaky").await.0 == StatusCode::NOT_FOUND);
    let (_, record) = acme.get(&format!("/v1/queues/mail/jobs/{job}")).await;
    assert_eq!(record["state"], "scheduled", "{record}");

    // Listings with globex's token hold globex's things only.
    let (s, list) = globex.get("/v1/schedules").await;
    assert_eq!(s, StatusCode::OK);
    let ids: Vec<&str> = list["schedules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["globex-daily"]);
    for path in [
        "/v1/queues/mail/jobs?state=scheduled",
        "/v1/queues/hooks/dead",
    ] {
        let (s, page) = globex.get(path).await;
        assert_eq!(s, StatusCode::OK, "{page}");
        assert_eq!(page["jobs"], json!([]), "{path}: {page}");
    }

    // Administrators' routes: forbidden to a tenant's token.
    for (method, path) in [
        (Method::GET, "/v1/queues"),
        (Method::GET, "/v1/queues/mail"),
        (Method::DELETE, "/v1/queues/hooks/dead"),
        (Method::GET, "/v1/shards"),
    ] {
        let (s, v) = globex.send(method.clone(), path, None).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{method} {path}: {v}");
    }

    // Acme's own token does it all.
    let (s, page) = acme.get("/v1/queues/hooks/dead").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(page["jobs"][0]["job"]["id"], dead.as_str(), "{page}");
    let (s, _) = acme
        .post(
            &format!("/v1/queues/hooks/dead/{dead}/requeue"),
            json!(null),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, v) = acme
        .post("/v1/schedules/acme-nightly/pause", json!(null))
        .await;
    assert_eq!((s, &v["paused"]), (StatusCode::OK, &json!(true)), "{v}");
    let (s, v) = acme
        .post(&format!("/v1/queues/mail/jobs/{job}/cancel"), json!(null))
        .await;
    assert_eq!(
        (s, &v["outcome"]),
        (StatusCode::OK, &json!("cancelled")),
        "{v}"
    );
    let (s, _) = acme
        .send(Method::DELETE, "/v1/schedules/acme-weekly", None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);

    // The administrator sees the queues.
    let (s, queues) = admin.get("/v1/queues").await;
    assert_eq!(s, StatusCode::OK);
    let names: Vec<&str> = queues
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["queue"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"mail") && names.contains(&"hooks"),
        "{queues}"
    );
    let (s, shards) = admin.get("/v1/shards").await;
    assert_eq!(s, StatusCode::OK);
    assert!(shards.as_array().is_some_and(|a| !a.is_empty()), "{shards}");

    // No token, or one nobody issued: unauthorized, whatever the route.
    for caller in [
        Caller::new(&base, None),
        Caller::new(&base, Some("rota_nobody")),
    ] {
        for path in [
            "/v1/schedules?tenant=acme",
            "/v1/queues",
            "/v1/schedules/acme-nightly",
        ] {
            let (s, v) = caller.get(path).await;
            assert_eq!(s, StatusCode::UNAUTHORIZED, "{path}: {v}");
        }
    }
    let res = Client::new()
        .get(format!("{base}/v1/queues"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.headers().get("www-authenticate").unwrap(),
        "Bearer realm=\"rota\""
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_problem_naming_the_field_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = rota_sqlite::SqliteBroker::open(dir.path().join("rota.db"))
        .await
        .unwrap();
    let base = serve(store, tokens()).await;
    let admin = Caller::new(&base, Some(ADMIN));
    let client = Client::new();
    let raw = |body: &'static str, content_type: &'static str| {
        client
            .post(format!("{base}/v1/schedules"))
            .bearer_auth(ADMIN)
            .header("content-type", content_type)
            .body(body)
    };

    // Not JSON; no JSON content type.
    let res = raw("{\"tenant\": ", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let res = raw("{}", "text/plain").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

    // Wrong types, missing fields, fields that do not check out.
    let mut wrong_type = schedule("x", "acme");
    wrong_type["job"]["priority"] = json!("high");
    let mut bad_cron = schedule("x", "acme");
    bad_cron["trigger"]["expr"] = json!("61 * * * *");
    let mut bad_zone = schedule("x", "acme");
    bad_zone["trigger"]["tz"] = json!("Mars/Olympus");
    let mut bad_queue = schedule("x", "acme");
    bad_queue["job"]["queue"] = json!("no spaces please");
    let mut bad_tenant = schedule("x", "acme");
    bad_tenant["tenant"] = json!("a b");
    let mut no_job = schedule("x", "acme");
    no_job.as_object_mut().unwrap().remove("job");
    for (body, field) in [
        (wrong_type, "job.priority"),
        (bad_cron, "trigger"),
        (bad_zone, "trigger"),
        (bad_queue, "job"),
        (bad_tenant, "tenant"),
        (no_job, "body"),
        (json!([1, 2]), "body"),
    ] {
        let (s, p) = admin.post("/v1/schedules", body.clone()).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {p}");
        assert_eq!(p["field"], field, "{body}: {p}");
        assert_eq!(p["status"], 422);
        assert!(p["detail"].as_str().is_some_and(|d| !d.is_empty()));
    }

    // Oversized: refused before it is read whole.
    let big = json!({"tenant": "acme", "kind": "k", "payload": "x".repeat(3 * 1024 * 1024)});
    let (s, p) = admin.post("/v1/queues/mail/jobs", big).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{p}");

    // Unknown ids, a tampered cursor, a limit out of range, a bad state.
    for path in [
        "/v1/schedules/nope",
        "/v1/schedules/nope/runs",
        "/v1/queues/mail/jobs/0190f4c4-0000-7000-8000-000000000000",
        "/v1/queues/mail/jobs/not-a-uuid",
        "/v1/no/such/route",
    ] {
        assert_eq!(admin.get(path).await.0, StatusCode::NOT_FOUND, "{path}");
    }
    for (path, status, field) in [
        (
            "/v1/schedules?tenant=acme&cursor=%%%",
            StatusCode::BAD_REQUEST,
            "cursor",
        ),
        (
            "/v1/queues/mail/jobs?cursor=AAAA",
            StatusCode::BAD_REQUEST,
            "cursor",
        ),
        (
            "/v1/queues/mail/jobs?state=dead&cursor=bm90IGEgY3Vyc29y",
            StatusCode::BAD_REQUEST,
            "cursor",
        ),
        (
            "/v1/queues/mail/jobs?limit=0",
            StatusCode::UNPROCESSABLE_ENTITY,
            "limit",
        ),
        ("/v1/schedules", StatusCode::UNPROCESSABLE_ENTITY, "tenant"),
        (
            "/v1/queues/bad%20queue/jobs",
            StatusCode::UNPROCESSABLE_ENTITY,
            "queue",
        ),
    ] {
        let (s, p) = admin.get(path).await;
        assert_eq!(
            (s, p["field"].as_str()),
            (status, Some(field)),
            "{path}: {p}"
        );
    }
    let (s, _) = admin.get("/v1/queues/mail/jobs?state=sleeping").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, p) = admin
        .post(
            "/v1/preview",
            json!({"trigger": {"kind": "cron", "expr": "* * *"}}),
        )
        .await;
    assert_eq!(
        (s, p["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("trigger"))
    );

    // None of it wrote anything.
    let (s, list) = admin.get("/v1/schedules?tenant=acme").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list["schedules"], json!([]));
    let (_, queues) = admin.get("/v1/queues").await;
    assert_eq!(queues, json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_are_managed_and_paged_over_redis() {
    let server = RedisServer::start();
    let store = rota_redis::RedisBroker::connect(&server.url())
        .await
        .unwrap();
    // No tokens: every caller is an administrator.
    let base = serve(store, Tokens::default()).await;
    let api = Caller::new(&base, None);
    for n in 0..5 {
        let (s, v) = api
            .post("/v1/schedules", schedule(&format!("s{n}"), "acme"))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    let (s, v) = api.post("/v1/schedules", schedule("s0", "acme")).await;
    assert_eq!((s, v["field"].as_str()), (StatusCode::CONFLICT, Some("id")));

    let mut seen = Vec::new();
    let mut path = "/v1/schedules?tenant=acme&limit=2".to_owned();
    loop {
        let (s, page) = api.get(&path).await;
        assert_eq!(s, StatusCode::OK, "{page}");
        for s in page["schedules"].as_array().unwrap() {
            seen.push(s["id"].as_str().unwrap().to_owned());
        }
        match page["next"].as_str() {
            Some(next) => path = format!("/v1/schedules?tenant=acme&limit=2&cursor={next}"),
            None => break,
        }
    }
    assert_eq!(seen, ["s0", "s1", "s2", "s3", "s4"]);

    let mut every = schedule("s1", "acme");
    every["trigger"] =
        json!({"kind": "fixed_rate", "every_ms": 60_000, "anchor_ms": 1_700_000_000_000i64});
    let (s, v) = api.send(Method::PUT, "/v1/schedules/s1", Some(every)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["trigger"]["kind"], "fixed_rate");
    let (s, v) = api
        .send(
            Method::PUT,
            "/v1/schedules/s1",
            Some(schedule("s1", "globex")),
        )
        .await;
    assert_eq!(
        (s, v["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("tenant"))
    );
    for action in ["pause", "resume", "trigger"] {
        let (s, v) = api
            .post(&format!("/v1/schedules/s2/{action}"), json!(null))
            .await;
        assert_eq!(s, StatusCode::OK, "{action}: {v}");
    }
    let (s, v) = api.get("/v1/schedules/s2").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["requests"][0]["what"]["kind"], "trigger_now", "{v}");
    let (s, runs) = api.get("/v1/schedules/s2/runs").await;
    assert_eq!((s, runs), (StatusCode::OK, json!([])));
    let (s, _) = api.send(Method::DELETE, "/v1/schedules/s3", None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(api.get("/v1/schedules/s3").await.0, StatusCode::NOT_FOUND);

    let (s, v) = api
        .post(
            "/v1/preview",
            json!({
                "trigger": {"kind": "cron", "expr": "30 2 * * *", "tz": "America/New_York"},
                "after_ms": 1_772_841_600_000i64,
                "count": 2,
            }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // 2026-03-07T07:30Z, then 2026-03-08T07:00Z (02:30 does not exist).
    assert_eq!(
        v["fire_times_ms"],
        json!([1_772_868_600_000i64, 1_772_953_200_000i64])
    );
}

#[tokio::test]
async fn the_openapi_document_is_made_from_the_routes() {
    let doc = serde_json::to_value(rota_api::openapi::document()).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/v1/schedules",
        "/v1/schedules/{id}",
        "/v1/schedules/{id}/pause",
        "/v1/schedules/{id}/resume",
        "/v1/schedules/{id}/trigger",
        "/v1/schedules/{id}/backfill",
        "/v1/schedules/{id}/runs",
        "/v1/preview",
        "/v1/queues",
        "/v1/queues/{queue}",
        "/v1/queues/{queue}/jobs",
        "/v1/queues/{queue}/jobs/{id}",
        "/v1/queues/{queue}/jobs/{id}/cancel",
        "/v1/queues/{queue}/dead",
        "/v1/queues/{queue}/dead/{id}/requeue",
        "/v1/shards",
    ] {
        assert!(paths.contains_key(path), "{path} missing");
    }
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for schema in [
        "Schedule",
        "NewSchedule",
        "Trigger",
        "JobRecord",
        "JobPage",
        "Problem",
    ] {
        assert!(schemas.contains_key(schema), "{schema} missing");
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
}
