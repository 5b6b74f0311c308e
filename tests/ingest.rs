//! The ways in, against a real nats-server and real stage processes: the
//! HTTP API (every endpoint, the replaced cluster's ones with their field
//! names, refusals that queue nothing), `pagefleet serve` with the client
//! CLI and NATS submission driven by nats-py, bucket triggers through a real
//! S3 server with MinIO's event format, the prefix watcher across a
//! restart, and the web page in a real browser (Debian's chromium driven
//! through chromedriver).

#![allow(clippy::unwrap_used)] // helpers outside #[test] fns fail loudly by design

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use common::pipeline::{
    NatsServer, SeaweedFs, StageProcess, connect, free_tcp_port, local_store, stream_len,
    wait_final,
};
use common::serve::Serve;
use common::{pagefleet, root};
use futures::StreamExt;
use pagefleet_schemas::messages::{EventKind, JobStatus};
use pagefleet_schemas::names;
use pagefleet_stagekit::store;
use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(240);
const TOKEN: &str = "test-token-5b0c";

/// One test at a time: each starts several model-loading processes.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn welcome() -> Vec<u8> {
    std::fs::read(root().join("examples/welcome.pdf")).unwrap()
}

fn welcome_text() -> String {
    std::fs::read_to_string(root().join("examples/welcome.txt")).unwrap()
}

/// Whether the recognised text has the welcome document's first words.
fn reads_welcome(text: &str) -> bool {
    let first_line = welcome_text().lines().next().unwrap().to_lowercase();
    let want: Vec<&str> = first_line.split_whitespace().take(2).collect();
    let got = text.to_lowercase();
    want.iter().all(|w| got.contains(w))
}

/// The rasterizer, one OCR worker and the aggregator as processes.
fn pipeline(nats: &str, env: &[(&str, &str)]) -> Vec<StageProcess> {
    vec![
        StageProcess::spawn_with(&["rasterizer"], nats, &[], env),
        StageProcess::spawn_with(&["ocr-worker", "--slots", "1"], nats, &[], env),
        StageProcess::spawn_with(&["aggregator"], nats, &[], env),
    ]
}

/// An ingest process with its HTTP API on a free port; answers once it is up.
async fn ingest(nats: &str, extra: &[&str], env: &[(&str, &str)]) -> (StageProcess, String) {
    let port = free_tcp_port();
    let addr = format!("127.0.0.1:{port}");
    let mut args = vec!["ingest", "--http-addr", addr.as_str()];
    args.extend_from_slice(extra);
    let process = StageProcess::spawn_with(&args, nats, &[], env);
    let base = format!("http://{addr}");
    wait_up(&base).await;
    (process, base)
}

async fn wait_up(base: &str) {
    let start = Instant::now();
    loop {
        if let Ok(r) = reqwest::get(format!("{base}/healthz")).await
            && r.status().is_success()
        {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{base} never came up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(300))
        .build()
        .unwrap()
}

fn upload(name: &str, bytes: Vec<u8>) -> reqwest::multipart::Form {
    reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(bytes).file_name(name.to_owned()),
    )
}

async fn json(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, value)
}

/// `POST /v1/jobs` with a multipart form and the token.
async fn post_job(
    http: &reqwest::Client,
    base: &str,
    form: reqwest::multipart::Form,
) -> (u16, Value) {
    json(
        http.post(format!("{base}/v1/jobs"))
            .bearer_auth(TOKEN)
            .multipart(form)
            .send()
            .await
            .unwrap(),
    )
    .await
}

/// `GET` with the token: status code and JSON body.
async fn get_authed(http: &reqwest::Client, url: &str) -> (u16, Value) {
    json(http.get(url).bearer_auth(TOKEN).send().await.unwrap()).await
}

/// Waits until a job's status is final over the HTTP API.
async fn wait_job(http: &reqwest::Client, base: &str, job_id: &str) -> Value {
    let start = Instant::now();
    loop {
        let (code, job) = get_authed(http, &format!("{base}/v1/jobs/{job_id}")).await;
        assert_eq!(code, 200, "{job}");
        if !matches!(
            job["status"].as_str(),
            Some("queued" | "running" | "waiting")
        ) {
            return job;
        }
        assert!(
            start.elapsed() < TIMEOUT,
            "job {job_id} not finished: {job}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Jobs in the jobs bucket.
async fn job_count(js: &jetstream::Context) -> usize {
    let kv = js.get_key_value(names::JOBS_BUCKET).await.unwrap();
    let keys: Vec<_> = kv.keys().await.unwrap().collect().await;
    // Job states, not their pages' records (`<job>.<page>`).
    keys.iter()
        .filter(|k| k.as_ref().is_ok_and(|k| !k.contains('.')))
        .count()
}

/// A nats-server and an ingest process whose API asks for [`TOKEN`] and
/// takes uploads of at most 200,000 bytes, storing in a temporary folder:
/// where the HTTP API tests start.
struct Api {
    _serial: tokio::sync::MutexGuard<'static, ()>,
    nats: NatsServer,
    dir: tempfile::TempDir,
    js: jetstream::Context,
    _ingest: StageProcess,
    base: String,
    http: reqwest::Client,
}

impl Api {
    async fn start() -> Self {
        let _serial = SERIAL.lock().await;
        let nats = NatsServer::start();
        let dir = tempfile::tempdir().unwrap();
        let env = [("PAGEFLEET_STORE", dir.path().to_str().unwrap())];
        let js = connect(&nats.url).await;
        let (_ingest, base) = ingest(
            &nats.url,
            &[
                "--api-token",
                TOKEN,
                "--max-upload-bytes",
                "200000",
                "--no-bucket-events",
            ],
            &env,
        )
        .await;
        Self {
            _serial,
            nats,
            dir,
            js,
            _ingest,
            base,
            http: client(),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_answers_probes_without_a_token_and_refuses_what_it_cannot_take() {
    let api = Api::start().await;
    let (js, base, http) = (&api.js, &api.base, &api.http);

    // Probes and the OpenAPI document need no token.
    let r = http.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = http.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let (code, openapi) = json(
        http.get(format!("{base}/openapi.json"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(code, 200);
    for (method, path) in pagefleet_ingest::openapi::ROUTES {
        assert!(
            openapi["paths"][path][method].is_object(),
            "{method} {path}"
        );
    }

    // Refusals: no token, a wrong token, a text file named .pdf, an upload
    // over the limit. Each answers 4xx naming why, and queues nothing.
    let r = http
        .post(format!("{base}/v1/jobs"))
        .multipart(upload("welcome.pdf", welcome()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().contains_key("www-authenticate"));
    let r = http
        .post(format!("{base}/v1/jobs"))
        .bearer_auth("not-the-token")
        .multipart(upload("welcome.pdf", welcome()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // The scheme is case-insensitive: a lower-case `bearer` passes.
    let r = http
        .get(format!("{base}/v1/jobs/no-such-job"))
        .header("Authorization", format!("bearer {TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let (code, body) = json(
        http.post(format!("{base}/ocr/pdf"))
            .multipart(upload("welcome.pdf", welcome()))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(code, 401, "{body}");
    let (code, body) = post_job(
        http,
        base,
        upload("report.pdf", b"just some text, not a PDF at all\n".to_vec()),
    )
    .await;
    assert_eq!(code, 415, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("allowed types"),
        "{body}"
    );
    let mut big = welcome();
    big.resize(300_000, b' ');
    let refused = http
        .post(format!("{base}/v1/jobs"))
        .bearer_auth(TOKEN)
        .multipart(upload("big.pdf", big))
        .send()
        .await
        .unwrap();
    // The refused body is left unread: the connection must not be reused.
    assert_eq!(refused.headers()["connection"], "close");
    let (code, body) = json(refused).await;
    assert_eq!(code, 413, "{body}");
    assert!(body["error"].as_str().unwrap().contains("200000"), "{body}");
    let (code, body) = json(
        http.post(format!("{base}/v1/jobs"))
            .bearer_auth(TOKEN)
            .json(&serde_json::json!({"key": "nowhere/missing.pdf"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(code, 404, "{body}");
    let (code, body) = post_job(
        http,
        base,
        upload("welcome.pdf", welcome()).text("dpi", "9000"),
    )
    .await;
    assert_eq!(code, 400, "{body}");
    assert_eq!(stream_len(js, names::DOCS_STREAM).await, 0);
    assert_eq!(job_count(js).await, 0);
}

impl Api {
    /// A stage as a process on this API's NATS and store.
    fn stage(&self, args: &[&str]) -> StageProcess {
        let store = self.dir.path().to_str().unwrap();
        StageProcess::spawn_with(args, &self.nats.url, &[], &[("PAGEFLEET_STORE", store)])
    }

    /// The whole pipeline behind the API, one OCR slot.
    fn pipeline(&self) -> Vec<StageProcess> {
        vec![
            self.stage(&["rasterizer"]),
            self.stage(&["ocr-worker", "--slots", "1"]),
            self.stage(&["aggregator"]),
        ]
    }

    /// Submits a form: the job's id.
    async fn submit(&self, form: reqwest::multipart::Form) -> String {
        let (code, accepted) = post_job(&self.http, &self.base, form).await;
        assert_eq!(code, 202, "{accepted}");
        accepted["job_id"].as_str().unwrap().to_owned()
    }

    /// `GET` of a path with the token: status code and JSON body.
    async fn get(&self, path: &str) -> (u16, Value) {
        get_authed(&self.http, &format!("{}{path}", self.base)).await
    }

    /// `GET` of a path with the token, the answer as it comes.
    async fn get_raw(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
    }

    /// `DELETE` of a job with the token.
    async fn delete(&self, job_id: &str) -> (u16, Value) {
        json(
            self.http
                .delete(format!("{}/v1/jobs/{job_id}", self.base))
                .bearer_auth(TOKEN)
                .send()
                .await
                .unwrap(),
        )
        .await
    }
}

/// Cancelling a job with no worker running: its queued pages are dropped,
/// a second cancel and its result answer 409, and a worker started
/// afterwards reads none of them while it reads other jobs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_job_drops_its_queued_pages_and_is_never_read() {
    let api = Api::start().await;
    let mut stages = vec![api.stage(&["rasterizer"]), api.stage(&["aggregator"])];
    let to_cancel = api.submit(upload("welcome.pdf", welcome())).await;
    let page_subject = names::page_subject("fast", names::Lane::Small, &to_cancel, 1);
    let pages = api.js.get_stream(names::PAGES_STREAM).await.unwrap();
    let start = Instant::now();
    while pages
        .get_last_raw_message_by_subject(&page_subject)
        .await
        .is_err()
    {
        assert!(
            start.elapsed() < TIMEOUT,
            "no page job of {to_cancel} appeared"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (code, cancelled) = api.delete(&to_cancel).await;
    assert_eq!(code, 200, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled");
    let (code, body) = api.get(&format!("/v1/jobs/{to_cancel}/result")).await;
    assert_eq!(code, 409, "{body}");

    // Now a worker: another job finishes; the cancelled one stays so, with
    // no page read.
    stages.push(api.stage(&["ocr-worker", "--slots", "1"]));
    let other = api.submit(upload("welcome.pdf", welcome())).await;
    let job = wait_job(&api.http, &api.base, &other).await;
    assert_eq!(job["status"], "success", "{job}");
    let state = wait_final(&api.js, &to_cancel, TIMEOUT).await;
    assert_eq!(state.status, JobStatus::Cancelled);
    assert_eq!(state.pages_done, 0, "a cancelled job's page was read");
    assert!(
        pages
            .get_last_raw_message_by_subject(&page_subject)
            .await
            .is_err(),
        "the cancelled job's page is still queued"
    );
    drop(stages);
}

/// `DELETE` of a finished job removes its state, every object it stored
/// and its events at once; its routes then answer 410 naming the deletion,
/// and it leaves the job list. A running job is cancelled, and with
/// `?purge=true` removed too. `pagefleet delete` does the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_job_leaves_nothing_behind() {
    let api = Api::start().await;
    let objects = |job_id: &str| {
        let dir = api.dir.path().join("jobs").join(job_id);
        walk(&dir)
    };
    // Running, no worker: cancelled and removed with ?purge=true.
    let mut stages = vec![api.stage(&["rasterizer"]), api.stage(&["aggregator"])];
    let running = api.submit(upload("welcome.pdf", welcome())).await;
    common::wait_until(TIMEOUT, "the running job's page image", || {
        !objects(&running).is_empty()
    });
    let (code, answer) = json(
        api.http
            .delete(format!("{}/v1/jobs/{running}?purge=true", api.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["status"], "deleted");
    assert!(objects(&running).is_empty(), "{:?}", objects(&running));

    // Finished: deleted at once.
    stages.push(api.stage(&["ocr-worker", "--slots", "1"]));
    let finished = api
        .submit(upload("welcome.pdf", welcome()).text("formats", "txt,json,pdf"))
        .await;
    let job = wait_job(&api.http, &api.base, &finished).await;
    assert_eq!(job["status"], "success", "{job}");
    let stored = objects(&finished);
    assert!(
        stored.iter().any(|k| k.ends_with("source"))
            && stored.iter().any(|k| k.ends_with(".png"))
            && stored.iter().any(|k| k.ends_with("result.pdf")),
        "{stored:?}"
    );
    let events = api.js.get_stream(names::EVENTS_STREAM).await.unwrap();
    let completed = names::event_subject(&finished, EventKind::Completed.token());
    assert!(
        events
            .get_last_raw_message_by_subject(&completed)
            .await
            .is_ok()
    );
    let (code, answer) = api.delete(&finished).await;
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["status"], "deleted");
    assert!(objects(&finished).is_empty(), "{:?}", objects(&finished));
    assert!(
        events
            .get_last_raw_message_by_subject(&completed)
            .await
            .is_err(),
        "the deleted job's events are still kept"
    );
    for path in [
        format!("/v1/jobs/{finished}"),
        format!("/v1/jobs/{finished}/result?format=txt"),
        format!("/v1/jobs/{finished}/pages/1/image"),
        format!("/v1/jobs/{finished}/events"),
    ] {
        let (code, body) = api.get(&path).await;
        assert_eq!(code, 410, "{path}: {body}");
        assert!(
            body["error"]
                .as_str()
                .is_some_and(|e| e.contains(&format!("job {finished} was deleted at 20"))),
            "{path}: {body}"
        );
    }
    let (code, _) = api.delete(&finished).await;
    assert_eq!(code, 410, "deleting twice");
    let (_, listed) = api.get("/v1/jobs?limit=100").await;
    let listed: Vec<&str> = listed["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["job_id"].as_str().unwrap())
        .collect();
    assert!(
        !listed.contains(&finished.as_str()) && !listed.contains(&running.as_str()),
        "{listed:?}"
    );

    // The client command.
    let other = api.submit(upload("welcome.pdf", welcome())).await;
    wait_job(&api.http, &api.base, &other).await;
    let ran = pagefleet(&["delete", &other, "--api", &api.base, "--api-token", TOKEN]);
    assert_eq!(ran.code(), 0, "{}", ran.said());
    assert_eq!(ran.stdout.trim(), format!("{other} deleted"));
    assert!(objects(&other).is_empty());
    drop(stages);
}

/// Every file under `dir`, as paths relative to it.
fn walk(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(next) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&next) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                todo.push(path);
            } else {
                found.push(path.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    found
}

/// The same `Idempotency-Key` names the same job: a repeat answers 200 with
/// it and queues nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_names_one_job() {
    let api = Api::start().await;
    let keyed = || async {
        json(
            api.http
                .post(format!("{}/v1/jobs", api.base))
                .bearer_auth(TOKEN)
                .header("Idempotency-Key", "order-17")
                .multipart(upload("welcome.pdf", welcome()))
                .send()
                .await
                .unwrap(),
        )
        .await
    };
    let (code, first) = keyed().await;
    assert_eq!(code, 202, "{first}");
    assert_eq!(first["status"], "queued");
    assert_eq!(first["created"], true);
    let job_id = first["job_id"].as_str().unwrap();
    assert_eq!(
        first["links"]["result"],
        format!("/v1/jobs/{job_id}/result")
    );
    let (code, again) = keyed().await;
    assert_eq!(code, 200, "{again}");
    assert_eq!(again["job_id"], job_id);
    assert_eq!(again["created"], false);
    assert_eq!(again["status"], "existing");
    assert_eq!(stream_len(&api.js, names::DOCS_STREAM).await, 1);
    assert_eq!(job_count(&api.js).await, 1);

    // Once its job is removed, the key names a new job.
    let (code, removed) = json(
        api.http
            .delete(format!("{}/v1/jobs/{job_id}?purge=true", api.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(code, 200, "{removed}");
    let (code, after) = keyed().await;
    assert_eq!(code, 202, "{after}");
    assert_eq!(after["created"], true, "{after}");
    assert_ne!(after["job_id"], job_id, "{after}");
    let (code, again) = keyed().await;
    assert_eq!(code, 200, "{again}");
    assert_eq!(again["job_id"], after["job_id"], "{again}");
}

/// A job's events stream from its first to its completion and then end;
/// its view names its pages and formats; every format it asked for is
/// served with its content type, one it did not ask for is a 404 that says
/// which it has, and an unknown one is a 400 at submission and at reading.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_streams_its_events_and_serves_the_formats_it_asked_for() {
    let api = Api::start().await;
    let _stages = api.pipeline();
    let job_id = api
        .submit(
            upload("welcome.pdf", welcome())
                .text("dpi", "150")
                .text("formats", "txt,json,pdf,hocr,alto"),
        )
        .await;
    let events = api.get_raw(&format!("/v1/jobs/{job_id}/events")).await;
    assert_eq!(events.status(), 200);
    assert!(
        events.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let sse = tokio::time::timeout(TIMEOUT, events.text())
        .await
        .expect("the event stream ends after completion")
        .unwrap();
    assert!(sse.contains("event: progress"), "{sse}");
    assert!(sse.contains("event: completed"), "{sse}");
    // The progress event of the page's result names the page and how it went.
    assert!(sse.contains(r#""page":1,"page_status":"ok""#), "{sse}");
    let job = wait_job(&api.http, &api.base, &job_id).await;
    assert_eq!(job["status"], "success", "{job}");
    assert_eq!(job["progress"]["pages_done"], 1, "{job}");
    assert!(job.get("failed_pages").is_none(), "{job}");
    assert_eq!(
        job["formats"],
        serde_json::json!(["txt", "json", "pdf", "hocr", "alto"])
    );
    assert_eq!(job["progress"]["pages_done"], 1);
    assert_eq!(job["progress"]["total_pages"], 1);
    assert_eq!(job["metrics"]["total_pages"], 1);
    assert_eq!(job["filename"], "welcome.pdf");
    for (format, kind) in [
        ("txt", "text/plain"),
        ("json", "application/json"),
        ("hocr", "text/html"),
        ("alto", "application/xml"),
    ] {
        let r = api
            .get_raw(&format!("/v1/jobs/{job_id}/result?format={format}"))
            .await;
        assert_eq!(r.status(), 200);
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with(kind)
        );
        let body = r.text().await.unwrap();
        assert!(reads_welcome(&body), "{format}: {body}");
    }
    let r = api
        .get_raw(&format!("/v1/jobs/{job_id}/result?format=pdf"))
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/pdf");
    let pdf = r.bytes().await.unwrap();
    assert!(
        pdf.starts_with(b"%PDF-") && pdf.len() > welcome().len(),
        "{} bytes",
        pdf.len()
    );
    let (code, body) = api
        .get(&format!("/v1/jobs/{job_id}/result?format=docx"))
        .await;
    assert_eq!(code, 400, "{body}");
    // result.json is compact, and the job's view never reads it: its
    // metrics come from the job's state, whatever the job's length.
    let result_json = api.dir.path().join(format!("jobs/{job_id}/result.json"));
    let written = std::fs::read_to_string(&result_json).unwrap();
    assert!(!written.contains("\n "), "result.json is pretty-printed");
    std::fs::remove_file(&result_json).unwrap();
    let (code, view) = api.get(&format!("/v1/jobs/{job_id}")).await;
    assert_eq!(code, 200, "{view}");
    assert_eq!(view["metrics"]["total_pages"], 1, "{view}");
    assert_eq!(view["metrics"], job["metrics"], "{view}");
    // Markdown was not asked for: not written, and said so.
    let (code, body) = api
        .get(&format!("/v1/jobs/{job_id}/result?format=md"))
        .await;
    assert_eq!(code, 404, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("no md output") && e.contains("txt, json, pdf, hocr, alto")),
        "{body}"
    );
    let (code, body) = post_job(
        &api.http,
        &api.base,
        upload("welcome.pdf", welcome()).text("formats", "txt,docx"),
    )
    .await;
    assert_eq!(code, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("\"docx\" is unknown"),
        "{body}"
    );
    let (code, _) = api.get("/v1/jobs/no-such-job").await;
    assert_eq!(code, 404);
}

/// The page image the result's polygons refer to: behind the token, the
/// size the result says, and 404 naming why for pages the job lacks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_image_is_served_at_the_size_its_result_measures() {
    let api = Api::start().await;
    let _stages = api.pipeline();
    let job_id = api.submit(upload("welcome.pdf", welcome())).await;
    let job = wait_job(&api.http, &api.base, &job_id).await;
    assert_eq!(job["status"], "success", "{job}");
    let (_, report) = api
        .get(&format!("/v1/jobs/{job_id}/result?format=json"))
        .await;
    let r = api
        .get_raw(&format!("/v1/jobs/{job_id}/pages/1/image"))
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/png");
    let png = image::load_from_memory(&r.bytes().await.unwrap()).unwrap();
    // A black-and-white page is stored with one grey channel.
    assert_eq!(png.color(), image::ColorType::L8);
    assert_eq!(
        (u64::from(png.width()), u64::from(png.height())),
        (
            report["pages"][0]["width"].as_u64().unwrap(),
            report["pages"][0]["height"].as_u64().unwrap()
        )
    );
    for (path, why) in [
        (format!("/v1/jobs/{job_id}/pages/2/image"), "has 1 pages"),
        (
            format!("/v1/jobs/{job_id}/pages/0/image"),
            "not a page number",
        ),
        (
            format!("/v1/jobs/{job_id}/pages/one/image"),
            "not a page number",
        ),
        ("/v1/jobs/no-such-job/pages/1/image".to_owned(), "not found"),
    ] {
        let (code, body) = api.get(&path).await;
        assert_eq!(code, 404, "{path}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains(why),
            "{path}: {body}"
        );
    }
    let r = api
        .http
        .get(format!("{}/v1/jobs/{job_id}/pages/1/image", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

/// `text_layer=use` takes the text of pages that carry some from the PDF
/// itself; an unknown mode is a 400 naming the known ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_may_take_the_text_a_pdf_carries() {
    let api = Api::start().await;
    let _stages = api.pipeline();
    let used = api
        .submit(upload("welcome.pdf", welcome()).text("text_layer", "use"))
        .await;
    let job = wait_job(&api.http, &api.base, &used).await;
    assert_eq!(job["status"], "success", "{job}");
    let (code, result) = api
        .get(&format!("/v1/jobs/{used}/result?format=json"))
        .await;
    assert_eq!(code, 200, "{result}");
    assert_eq!(result["pages"][0]["text_source"], "text_layer", "{result}");
    assert_eq!(
        result["pages"][0]["lines"][0]["text"],
        "Welcome to pagefleet"
    );
    // A job that names no mode gets `auto`: the page's text is taken once a
    // worker has checked it against the page's pixels.
    let checked = api.submit(upload("welcome.pdf", welcome())).await;
    let job = wait_job(&api.http, &api.base, &checked).await;
    assert_eq!(job["status"], "success", "{job}");
    let (_, result) = api
        .get(&format!("/v1/jobs/{checked}/result?format=json"))
        .await;
    let page = &result["pages"][0];
    assert_eq!(page["text_source"], "text_layer", "{page}");
    assert_eq!(page["layer_check"]["trusted"], true, "{page}");
    assert!(
        page["layer_check"]["sampled"].as_u64().unwrap() > 0,
        "{page}"
    );
    let (code, body) = post_job(
        &api.http,
        &api.base,
        upload("welcome.pdf", welcome()).text("text_layer", "maybe"),
    )
    .await;
    assert_eq!(code, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("\"maybe\" is unknown: auto, ocr, skip, use")),
        "{body}"
    );
}

/// A job names its language (ISO 639-1 or 639-3, a list, or `auto`), which
/// its view and `result.json` record; an unknown code, a language the
/// models cannot read, and Japanese on the fast models are 400s in words,
/// over HTTP and over NATS, and queue nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_names_its_language_and_one_not_read_is_refused() {
    let api = Api::start().await;
    let _stages = api.pipeline();
    let named = api
        .submit(upload("welcome.pdf", welcome()).text("language", "eng,fr"))
        .await;
    let job = wait_job(&api.http, &api.base, &named).await;
    assert_eq!(job["status"], "success", "{job}");
    assert_eq!(job["language"], "en,fr", "{job}");
    let (code, result) = api
        .get(&format!("/v1/jobs/{named}/result?format=json"))
        .await;
    assert_eq!(code, 200, "{result}");
    assert_eq!(result["metrics"]["language"], "en,fr", "{result}");
    let plain = api.submit(upload("welcome.pdf", welcome())).await;
    let (_, view) = api.get(&format!("/v1/jobs/{plain}")).await;
    assert_eq!(view["language"], "auto", "{view}");
    let (_, options) = api.get("/v1/options").await;
    let codes: Vec<&str> = options["languages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["code"].as_str().unwrap())
        .collect();
    for code in ["en", "fr", "de", "pl", "nl", "zh", "ja"] {
        assert!(codes.contains(&code), "{code} not in {codes:?}");
    }
    assert!(!codes.contains(&"ru"), "{codes:?}");
    assert_eq!(options["default_language"], "auto", "{options}");
    let before = job_count(&api.js).await;
    let refusals = [
        ("ru", "fast", "Russian (ru) cannot be read"),
        ("de,ar", "fast", "Arabic (ar) cannot be read"),
        ("ko", "fast", "no Hangul"),
        ("klingon", "fast", "unknown language \"klingon\""),
        (
            "ja",
            "fast",
            "Japanese is read by the accurate profile only",
        ),
    ];
    for (language, profile, said) in refusals {
        let (code, body) = post_job(
            &api.http,
            &api.base,
            upload("welcome.pdf", welcome())
                .text("language", language)
                .text("profile", profile),
        )
        .await;
        assert_eq!(code, 400, "{language}: {body}");
        let error = body["error"].as_str().unwrap_or_default();
        assert!(error.contains(said), "{language}: {error}");
        let request =
            serde_json::json!({"key": "inbox/a.pdf", "language": language, "profile": profile});
        let reply = api
            .js
            .client()
            .request("pagefleet.jobs.submit", request.to_string().into())
            .await
            .unwrap();
        let code = reply
            .headers
            .as_ref()
            .and_then(|h| h.get("Nats-Service-Error-Code"))
            .map(|v| v.to_string());
        assert_eq!(code.as_deref(), Some("400"), "{language} over NATS");
        let body: Value = serde_json::from_slice(&reply.payload).unwrap();
        assert!(
            body["error"].as_str().unwrap_or_default().contains(said),
            "{language} over NATS: {body}"
        );
    }
    assert_eq!(job_count(&api.js).await, before, "a refused job was queued");
}

/// The replaced cluster's synchronous endpoints, with its field names:
/// `/ocr/pdf` with `language` and `dpi`, every job metric and the two
/// per-worker metrics in its shapes; `/ocr/image` takes images, not PDFs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_replaced_clusters_endpoints_answer_in_its_shapes() {
    let api = Api::start().await;
    let _stages = api.pipeline();
    let (base, http) = (&api.base, &api.http);
    let (code, sync) = json(
        http.post(format!("{base}/ocr/pdf"))
            .bearer_auth(TOKEN)
            .multipart(
                upload("welcome.pdf", welcome())
                    .text("language", "en")
                    .text("dpi", "200"),
            )
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(code, 200, "{sync}");
    for field in ["metrics", "results", "combined_text", "combined_markdown"] {
        assert!(!sync[field].is_null(), "{field} missing: {sync}");
    }
    for metric in [
        "job_id",
        "filename",
        "total_pages",
        "pages_processed",
        "pages_failed",
        "total_words",
        "total_chars",
        "total_lines",
        "avg_confidence",
        "start_time",
        "end_time",
        "total_duration_ms",
        "avg_page_time_ms",
        "file_size_bytes",
        "file_size_mb",
        "ocr_rounds_per_worker",
        "worker_metrics",
        "redeliveries",
        "status",
        "errors",
    ] {
        assert!(
            !sync["metrics"][metric].is_null(),
            "metric {metric} missing: {}",
            sync["metrics"]
        );
    }
    // The two per-worker metrics in the old cluster's shapes, and under no
    // other name.
    let m = &sync["metrics"];
    let rounds = m["ocr_rounds_per_worker"].as_object().unwrap();
    assert_eq!(
        rounds.values().map(|v| v.as_u64().unwrap()).sum::<u64>(),
        1,
        "{m}"
    );
    let per_worker = m["worker_metrics"].as_array().unwrap();
    assert_eq!(per_worker.len(), rounds.len(), "{m}");
    for w in per_worker {
        for field in ["worker", "pages", "time_ms", "errors"] {
            assert!(!w[field].is_null(), "worker_metrics without {field}: {m}");
        }
        assert_eq!(rounds[w["worker"].as_str().unwrap()], w["pages"], "{m}");
    }
    assert!(
        m["pages_per_worker"].is_null() && m["workers"].is_null(),
        "{m}"
    );
    assert!(reads_welcome(sync["combined_text"].as_str().unwrap()));
    assert_eq!(sync["results"].as_array().unwrap().len(), 1);
    let (code, body) = json(
        http.post(format!("{base}/ocr/image"))
            .bearer_auth(TOKEN)
            .multipart(upload("welcome.pdf", welcome()))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(code, 415, "a PDF sent to /ocr/image: {body}");
    let png = {
        let mut bytes = Vec::new();
        let image = image::RgbImage::from_pixel(64, 32, image::Rgb([255, 255, 255]));
        image::DynamicImage::ImageRgb8(image)
            .write_to(
                &mut std::io::Cursor::new(&mut bytes),
                image::ImageFormat::Png,
            )
            .unwrap();
        bytes
    };
    let (code, sync) = json(
        http.post(format!("{base}/ocr/image"))
            .bearer_auth(TOKEN)
            .multipart(upload("blank.png", png))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(code, 200, "{sync}");
    assert_eq!(sync["metrics"]["total_pages"], 1, "{sync}");
}

/// `/workers/status` from the workers' heartbeats (name, health figures,
/// pages counted) and `/health` with the fleet's totals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_status_comes_from_heartbeats() {
    let api = Api::start().await;
    let _stages = api.pipeline();
    let job_id = api.submit(upload("welcome.pdf", welcome())).await;
    wait_job(&api.http, &api.base, &job_id).await;
    let start = Instant::now();
    let status = loop {
        let (code, status) = api.get("/workers/status").await;
        assert_eq!(code, 200, "{status}");
        if status["healthy_workers"].as_u64() >= Some(1)
            && status["workers"][0]["health"]["total_requests"].as_u64() >= Some(1)
        {
            break status;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{status}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(status["total_workers"], 1, "{status}");
    let worker = &status["workers"][0];
    assert!(worker["name"].as_str().unwrap().starts_with("ocr-worker"));
    assert_eq!(worker["status"], "healthy");
    for field in [
        "cpu_percent",
        "memory_percent",
        "memory_mb",
        "uptime_seconds",
        "total_requests",
    ] {
        assert!(worker["health"][field].is_number(), "{field}: {worker}");
    }
    assert!(
        worker["health"]["memory_mb"].as_f64().unwrap() > 10.0,
        "{worker}"
    );
    let (code, health) = json(
        api.http
            .get(format!("{}/health", api.base))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(code, 200, "{health}");
    assert_eq!(health["status"], "healthy");
    assert_eq!(health["healthy_workers"], 1, "{health}");
}

/// What a submission may ask for (`/v1/options`, as the web page offers
/// it), the recent jobs newest first, and the web page itself: no token to
/// load it, and only its own scripts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_options_the_job_list_and_the_web_page() {
    let api = Api::start().await;
    let _worker = api.stage(&["ocr-worker", "--slots", "1"]);
    let start = Instant::now();
    let options = loop {
        let (code, options) = api.get("/v1/options").await;
        assert_eq!(code, 200, "{options}");
        if options["served_profiles"] == serde_json::json!(["fast"]) {
            break options;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "{options}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(options["profiles"], serde_json::json!(["accurate", "fast"]));
    assert_eq!(options["max_upload_bytes"], 200000);
    assert_eq!(options["dpi"]["min"], 36.0);
    assert_eq!(options["formats"].as_array().unwrap().len(), 6);

    // Three jobs (queued: no rasterizer runs), one cancelled.
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(api.submit(upload("welcome.pdf", welcome())).await);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (code, _) = api.delete(&ids[1]).await;
    assert_eq!(code, 200);
    let (code, listed) = api.get("/v1/jobs?limit=100").await;
    assert_eq!(code, 200, "{listed}");
    let listed = listed["jobs"].as_array().unwrap().clone();
    let listed_ids: Vec<&str> = listed
        .iter()
        .map(|j| j["job_id"].as_str().unwrap())
        .collect();
    assert_eq!(listed_ids, [&ids[2], &ids[1], &ids[0]], "{listed:?}");
    let submitted: Vec<u64> = listed
        .iter()
        .map(|j| j["submitted_at_ms"].as_u64().unwrap())
        .collect();
    assert!(submitted.is_sorted_by(|a, b| a >= b), "{submitted:?}");
    assert_eq!(listed[1]["status"], "cancelled", "{listed:?}");
    assert_eq!(listed[0]["status"], "queued", "{listed:?}");
    let (_, newest) = api.get("/v1/jobs?limit=1").await;
    assert_eq!(newest["jobs"].as_array().unwrap().len(), 1);
    // The most recently changed: the cancel came after the last submission.
    assert_eq!(newest["jobs"][0]["job_id"], ids[1].as_str());
    let (code, body) = api.get("/v1/jobs?limit=0").await;
    assert_eq!(code, 400, "{body}");

    let page = api.http.get(format!("{}/", api.base)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("script-src 'self'")
    );
    assert!(page.text().await.unwrap().contains("/ui/app.js"));
    for path in ["/ui/app.js", "/ui/style.css"] {
        let r = api
            .http
            .get(format!("{}{path}", api.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
}

const NATS_CLIENT: &str = r#"
import asyncio, json, sys
import nats

async def main(url, key):
    nc = await nats.connect(url)
    out = {}
    # `nats micro ls` / `info`: the services API's discovery subjects.
    ping = await nc.request("$SRV.PING.pagefleet", b"", timeout=10)
    out["ping"] = json.loads(ping.data)
    info = await nc.request("$SRV.INFO.pagefleet", b"", timeout=10)
    out["info"] = json.loads(info.data)
    # `nats req pagefleet.jobs.submit '{"key": ...}'`
    reply = await nc.request("pagefleet.jobs.submit", json.dumps({"key": key, "formats": ["txt", "alto"]}).encode(), timeout=30)
    job = json.loads(reply.data)
    out["submit"] = job
    # `nats sub 'pagefleet.events.<id>.*'`
    done = asyncio.get_running_loop().create_future()
    events = []
    async def on_event(msg):
        events.append({"subject": msg.subject, "event": json.loads(msg.data)})
        if msg.subject.endswith(".completed") and not done.done():
            done.set_result(True)
    await nc.subscribe(job["events"], cb=on_event)
    for _ in range(600):
        status = json.loads((await nc.request("pagefleet.jobs.status", json.dumps({"job_id": job["job_id"]}).encode(), timeout=10)).data)
        if status["status"] not in ("queued", "running"):
            break
        await asyncio.sleep(0.2)
    out["status"] = status
    try:
        await asyncio.wait_for(done, 10)
    except asyncio.TimeoutError:
        pass
    out["events"] = events
    bad = await nc.request("pagefleet.jobs.submit", b"not json", timeout=10)
    out["bad"] = {"body": json.loads(bad.data), "headers": dict(bad.headers or {})}
    missing = await nc.request("pagefleet.jobs.status", json.dumps({"job_id": "nope"}).encode(), timeout=10)
    out["missing"] = json.loads(missing.data)
    stats = await nc.request("$SRV.STATS.pagefleet", b"", timeout=10)
    out["stats"] = json.loads(stats.data)
    await nc.close()
    print(json.dumps(out))

asyncio.run(main(sys.argv[1], sys.argv[2]))
"#;

/// Runs the independent NATS client (nats-py, from its wheel) against `url`.
fn nats_py(url: &str, key: &str) -> Value {
    common::python_json("nats_py-2.16.0-py3-none-any.whl", NATS_CLIENT, &[url, key])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_with_the_client_cli_and_nats_py() {
    let _serial = SERIAL.lock().await;
    let data = tempfile::tempdir().unwrap();
    // It prints the HTTP address and the NATS URL, which Serve reads back.
    let mut serve = Serve::start(&["--data", data.path().to_str().unwrap()]);
    let (base, nats_url) = (serve.base(), serve.nats.clone());

    // `pagefleet submit --wait` prints the text once the job is done.
    let welcome_path = root().join("examples/welcome.pdf");
    let waited = pagefleet(&[
        "submit",
        welcome_path.to_str().unwrap(),
        "--wait",
        "--api",
        &base,
    ]);
    assert_eq!(waited.code(), 0, "{}", waited.stderr);
    assert!(reads_welcome(&waited.stdout), "{}", waited.stdout);
    let submitted = pagefleet(&["submit", welcome_path.to_str().unwrap(), "--api", &base]);
    assert_eq!(submitted.code(), 0, "{}", submitted.stderr);
    let job_id = submitted.stdout.trim().to_owned();
    assert!(names::valid_job_id(&job_id), "{job_id}");
    // `pagefleet watch JOB` follows it to completion over NATS.
    let watched = pagefleet(&["watch", &job_id, "--nats", &nats_url]);
    assert_eq!(watched.code(), 0, "{}", watched.stderr);
    assert!(watched.stdout.contains("completed"), "{}", watched.stdout);
    let status = pagefleet(&["status", &job_id, "--api", &base]);
    assert_eq!(status.code(), 0);
    let status: Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(status["status"], "success", "{status}");
    let markdown = pagefleet(&["result", &job_id, "--format", "md", "--api", &base]);
    assert_eq!(markdown.code(), 0);
    assert!(reads_welcome(&markdown.stdout), "{}", markdown.stdout);
    let missing = pagefleet(&["status", "no-such-job", "--api", &base]);
    assert_ne!(missing.code(), 0);
    assert!(missing.stderr.contains("404"), "{}", missing.stderr);

    // NATS submission of an object in the store, by an independent client.
    let objects = data.path().join("objects/inbox");
    std::fs::create_dir_all(&objects).unwrap();
    std::fs::copy(&welcome_path, objects.join("from nats.pdf")).unwrap();
    let out = nats_py(&nats_url, "inbox/from nats.pdf");
    assert_eq!(out["ping"]["name"], "pagefleet", "{out}");
    let endpoints: Vec<&str> = out["info"]["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["subject"].as_str().unwrap())
        .collect();
    assert!(
        endpoints.contains(&"pagefleet.jobs.submit"),
        "{endpoints:?}"
    );
    assert!(
        endpoints.contains(&"pagefleet.jobs.status"),
        "{endpoints:?}"
    );
    assert_eq!(out["submit"]["created"], true, "{out}");
    assert_eq!(out["status"]["status"], "success", "{out}");
    assert_eq!(out["status"]["filename"], "from nats.pdf", "{out}");
    // The formats it asked for, and result.json; no markdown.
    let job_dir = data.path().join(format!(
        "objects/jobs/{}",
        out["submit"]["job_id"].as_str().unwrap()
    ));
    for (file, written) in [
        ("result.txt", true),
        ("result.alto.xml", true),
        ("result.json", true),
        ("result.md", false),
    ] {
        assert_eq!(job_dir.join(file).is_file(), written, "{file}");
    }
    let kinds: Vec<&str> = out["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"]["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"completed"), "{kinds:?}");
    assert!(
        out["bad"]["body"]["error"]
            .as_str()
            .unwrap()
            .contains("JSON"),
        "{out}"
    );
    assert_eq!(
        out["bad"]["headers"]["Nats-Service-Error-Code"], "400",
        "{out}"
    );
    assert_eq!(out["missing"]["code"], 404, "{out}");
    let stats = out["stats"]["endpoints"].as_array().unwrap();
    let requests: u64 = stats
        .iter()
        .map(|e| e["num_requests"].as_u64().unwrap())
        .sum();
    assert!(requests >= 3, "{stats:?}");

    // SIGTERM stops it cleanly.
    let status = serve.stop();
    assert!(status.success(), "serve exited with {status}");
}

/// Sends SIGTERM and waits for the process to exit: its status and how long
/// it took.
async fn sigterm_and_wait(child: &mut std::process::Child) -> (std::process::ExitStatus, Duration) {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return (status, start.elapsed());
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the process did not stop"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Publishes a bucket event the way MinIO's JetStream target does.
async fn publish_event(js: &jetstream::Context, body: &str) {
    js.publish(names::BUCKET_EVENTS_SUBJECT, body.to_owned().into())
        .await
        .unwrap()
        .await
        .unwrap();
}

/// Waits until `key` exists in the store.
async fn wait_object(store: &store::Store, key: &str) -> bytes::Bytes {
    let start = Instant::now();
    loop {
        if let Ok(bytes) = store::get(store.as_ref(), key).await {
            return bytes;
        }
        assert!(start.elapsed() < TIMEOUT, "{key} never appeared");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A nats-server, SeaweedFS, the pipeline and an ingest process (with
/// `ingest_args` and [`TOKEN`]) storing in the bucket, and the MinIO event
/// of [`BUCKET_KEY`] put in its input prefix.
struct S3Setup {
    _serial: tokio::sync::MutexGuard<'static, ()>,
    _nats: NatsServer,
    _s3: SeaweedFs,
    js: jetstream::Context,
    _stages: Vec<StageProcess>,
    _ingest: StageProcess,
    base: String,
    /// The bucket, under the store's `pagefleet/` prefix.
    store: store::Store,
    /// A MinIO notification of [`BUCKET_KEY`] put.
    fixture: String,
}

/// The object the MinIO event fixture names.
const BUCKET_KEY: &str = "inbox/quarterly report 2025.pdf";

impl S3Setup {
    /// Everything up, the welcome document at [`BUCKET_KEY`].
    async fn start(ingest_args: &[&str]) -> Self {
        let _serial = SERIAL.lock().await;
        let nats = NatsServer::start();
        let s3 = tokio::task::spawn_blocking(SeaweedFs::start).await.unwrap();
        let env_owned = s3.env();
        let env: Vec<(&str, &str)> = env_owned.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let js = connect(&nats.url).await;
        let _stages = pipeline(&nats.url, &env);
        let mut args = vec!["--api-token", TOKEN];
        args.extend_from_slice(ingest_args);
        let (_ingest, base) = ingest(&nats.url, &args, &env).await;
        let store = s3.store("pagefleet");
        store::put(store.as_ref(), BUCKET_KEY, welcome())
            .await
            .unwrap();
        let fixture =
            std::fs::read_to_string(root().join("ingest/tests/fixtures/minio-put-event.json"))
                .unwrap();
        Self {
            _serial,
            _nats: nats,
            _s3: s3,
            js,
            _stages,
            _ingest,
            base,
            store,
            fixture,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bucket_events_in_minio_format_make_one_job_each() {
    let setup = S3Setup::start(&[]).await;
    let (js, base, store, fixture) = (&setup.js, &setup.base, &setup.store, setup.fixture.clone());
    let key = BUCKET_KEY;
    // MinIO may replay an event from its queue: the same event twice.
    publish_event(js, &fixture).await;
    publish_event(js, &fixture).await;
    // Events for objects outside the input prefix, and other kinds, start nothing.
    let elsewhere = fixture.replace("pagefleet%2Finbox%2F", "pagefleet%2Foutbox%2F");
    publish_event(js, &elsewhere).await;
    let removed = fixture.replace("s3:ObjectCreated:Put", "s3:ObjectRemoved:Delete");
    publish_event(js, &removed).await;
    publish_event(js, "{not json").await;

    let text = wait_object(store, "outbox/quarterly report 2025.pdf.txt").await;
    assert!(reads_welcome(&String::from_utf8_lossy(&text)));
    let json = wait_object(store, "outbox/quarterly report 2025.pdf.json").await;
    let report: Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(report["metrics"]["filename"], "quarterly report 2025.pdf");
    wait_object(store, "outbox/quarterly report 2025.pdf.md").await;
    // Every event handled (the unreadable one dropped), one job.
    let start = Instant::now();
    while stream_len(js, names::BUCKET_EVENTS_STREAM).await > 0 {
        assert!(start.elapsed() < TIMEOUT, "bucket events not consumed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(job_count(js).await, 1);

    // The same body posted to the webhook names the same job.
    let (code, answer) = json_post(base, "/v1/bucket-events", fixture).await;
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["jobs"][0]["created"], false, "{answer}");
    assert_eq!(answer["jobs"][0]["key"], key, "{answer}");
    assert_eq!(job_count(js).await, 1);
}

/// Past `--retention`, a finished job is removed from an S3 store (its
/// source, page images and outputs under `jobs/<id>/`), its routes answer
/// 410 naming the expiry, and the outputs a bucket trigger wrote beside the
/// user's input stay: they are the user's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_expires_from_s3_and_its_bucket_outputs_stay() {
    let setup = S3Setup::start(&["--retention", "4s"]).await;
    let (js, base, store) = (&setup.js, &setup.base, &setup.store);
    publish_event(js, &setup.fixture).await;
    wait_object(store, "outbox/quarterly report 2025.pdf.txt").await;
    let kv = js.get_key_value(names::JOBS_BUCKET).await.unwrap();
    let keys = || async {
        use futures::TryStreamExt;
        kv.keys()
            .await
            .unwrap()
            .try_collect::<Vec<String>>()
            .await
            .unwrap()
    };
    // The job's state is the key without a page number.
    let job_id = keys().await.into_iter().find(|k| !k.contains('.')).unwrap();
    assert!(keys().await.contains(&names::page_record_key(&job_id, 1)));
    let listed = |prefix: String| {
        let store = store.clone();
        async move {
            use futures::TryStreamExt;
            let prefix = object_store::path::Path::from(prefix);
            store
                .list(Some(&prefix))
                .map_ok(|m| m.location.to_string())
                .try_collect::<Vec<_>>()
                .await
                .unwrap()
        }
    };
    assert!(!listed(format!("jobs/{job_id}")).await.is_empty());

    let http = client();
    let start = Instant::now();
    let gone = loop {
        let (code, body) = get_authed(&http, &format!("{base}/v1/jobs/{job_id}")).await;
        if code == 410 {
            break body;
        }
        assert_eq!(code, 200, "{body}");
        assert!(start.elapsed() < TIMEOUT, "the job never expired: {body}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(
        gone["error"].as_str().unwrap().contains("expired at"),
        "{gone}"
    );
    assert_eq!(listed(format!("jobs/{job_id}")).await, Vec::<String>::new());
    let kept = listed("outbox".to_owned()).await;
    assert_eq!(kept.len(), 3, "{kept:?}");
    // Its pages' records went with it; its tombstone answers 410 for one
    // more retention, then goes too, leaving nothing of the job.
    assert_eq!(keys().await, std::slice::from_ref(&job_id));
    let start = Instant::now();
    loop {
        let (code, body) = get_authed(&http, &format!("{base}/v1/jobs/{job_id}")).await;
        if code == 404 {
            break;
        }
        assert_eq!(code, 410, "{body}");
        assert!(start.elapsed() < TIMEOUT, "the tombstone stayed: {body}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        start.elapsed() > Duration::from_secs(2),
        "the 410 went too soon"
    );
    assert_eq!(keys().await, Vec::<String>::new());
}

async fn json_post(base: &str, path: &str, body: String) -> (u16, Value) {
    json(
        client()
            .post(format!("{base}{path}"))
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watcher_submits_each_object_once_across_restarts() {
    let _serial = SERIAL.lock().await;
    let nats = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().to_str().unwrap();
    let env = [("PAGEFLEET_STORE", store_dir)];
    let js = connect(&nats.url).await;
    let store = local_store(dir.path());
    let _stages = pipeline(&nats.url, &env);
    let watcher_args = [
        "--watch-interval",
        "0.5",
        "--no-bucket-events",
        "--formats",
        "txt,hocr",
    ];
    let (mut watcher, _) = ingest(&nats.url, &watcher_args, &env).await;

    store::put(store.as_ref(), "inbox/a.pdf", welcome())
        .await
        .unwrap();
    wait_object(&store, "outbox/a.pdf.txt").await;
    // Killed outright, then started again while a new object arrives.
    watcher.kill();
    store::put(store.as_ref(), "inbox/sub/b.pdf", welcome())
        .await
        .unwrap();
    let (_watcher, _) = ingest(&nats.url, &watcher_args, &env).await;
    let text = wait_object(&store, "outbox/sub/b.pdf.txt").await;
    assert!(reads_welcome(&String::from_utf8_lossy(&text)));
    // A few more polls: nothing is submitted again.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(job_count(&js).await, 2);
    let kv = js.get_key_value(names::JOBS_BUCKET).await.unwrap();
    let mut keys = kv.keys().await.unwrap();
    while let Some(key) = keys.next().await {
        let key = key.unwrap();
        // Page records (`<job>.<page>`) sit beside the job states.
        if key.contains('.') {
            continue;
        }
        let state = wait_final(&js, &key, TIMEOUT).await;
        assert_eq!(state.status, JobStatus::Success);
    }
    // The deployment's formats beside the input: text and hOCR, not the
    // markdown and JSON it did not ask for.
    let outbox = Path::new(store_dir).join("outbox");
    assert!(outbox.join("a.pdf.hocr").is_file());
    assert!(!outbox.join("a.pdf.md").exists());
    assert!(!outbox.join("a.pdf.json").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profiles_are_checked_and_a_job_nobody_serves_says_so() {
    let _serial = SERIAL.lock().await;
    let nats = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let env = [("PAGEFLEET_STORE", dir.path().to_str().unwrap())];
    // A fleet of fast workers only.
    let _stages = pipeline(&nats.url, &env);
    let (mut stage, base) = ingest(
        &nats.url,
        &[
            "--api-token",
            TOKEN,
            "--no-bucket-events",
            "--waiting-after",
            "1",
        ],
        &env,
    )
    .await;
    let http = client();

    // A profile nobody configured or serves is refused, naming those known.
    let form = upload("welcome.pdf", welcome()).text("profile", "nope");
    let (code, body) = post_job(&http, &base, form).await;
    assert_eq!(code, 400, "{body}");
    let error = body["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("\"nope\"") && error.contains("accurate, fast"),
        "{body}"
    );

    // A configured profile no worker serves is taken, and its job says why
    // it does not move instead of staying silent.
    let form = upload("welcome.pdf", welcome()).text("profile", "accurate");
    let (code, body) = post_job(&http, &base, form).await;
    assert_eq!(code, 202, "{body}");
    let job_id = body["job_id"].as_str().unwrap().to_owned();
    let start = Instant::now();
    let job = loop {
        let (code, job) = get_authed(&http, &format!("{base}/v1/jobs/{job_id}")).await;
        assert_eq!(code, 200, "{job}");
        if job["status"] == "waiting" {
            break job;
        }
        assert!(start.elapsed() < TIMEOUT, "never waiting: {job}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(job["waiting"], "no worker serves profile accurate", "{job}");
    // A client follows the job that does not move: its event stream stays open.
    let mut events = http
        .get(format!("{base}/v1/jobs/{job_id}/events"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(events.status(), 200);
    // ... and is told, once, why it does not move.
    let mut seen = String::new();
    let start = Instant::now();
    while !seen.contains("event: waiting") {
        assert!(start.elapsed() < TIMEOUT, "no waiting event: {seen}");
        let chunk = tokio::time::timeout(TIMEOUT, events.chunk())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    let waiting = seen
        .split("event: waiting")
        .nth(1)
        .and_then(|rest| rest.lines().find_map(|l| l.strip_prefix("data: ")))
        .unwrap();
    let waiting: serde_json::Value = serde_json::from_str(waiting).unwrap();
    assert_eq!(
        waiting["waiting"], "no worker serves profile accurate",
        "{waiting}"
    );

    // The fast profile is served, once the worker is up: its job is read.
    let start = Instant::now();
    loop {
        let (_, health) = json(http.get(format!("{base}/health")).send().await.unwrap()).await;
        if health["healthy_workers"] == 1 {
            break;
        }
        assert!(
            start.elapsed() < TIMEOUT,
            "the worker never came up: {health}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let form = upload("welcome.pdf", welcome()).text("profile", "fast");
    let (code, body) = post_job(&http, &base, form).await;
    assert_eq!(code, 202, "{body}");
    let job = wait_job(&http, &base, body["job_id"].as_str().unwrap()).await;
    assert_eq!(job["status"], "success", "{job}");

    // SIGTERM stops ingest promptly, the open event stream notwithstanding.
    let (status, took) = sigterm_and_wait(&mut stage.0).await;
    eprintln!("ingest stopped {took:?} after SIGTERM");
    assert!(status.success(), "ingest exited with {status}");
    assert!(
        took < Duration::from_secs(5),
        "ingest took {took:?} to stop"
    );
    drop(events);
}

/// chromedriver driving Debian's chromium headless, each killed on drop; a
/// screenshot of every step goes to `shots`.
struct Browser {
    driver: std::process::Child,
    client: Option<fantoccini::Client>,
    shots: std::path::PathBuf,
    taken: usize,
}

impl Browser {
    async fn start(profile: &Path, downloads: &Path, shots: std::path::PathBuf) -> Self {
        for program in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(program).is_file(),
                "{program} is missing: the browser test needs Debian's chromium and \
                 chromium-driver (scripts/bootstrap --test-tools installs them)"
            );
        }
        let port = free_tcp_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let url = format!("http://127.0.0.1:{port}");
        let start = Instant::now();
        while reqwest::get(format!("{url}/status")).await.is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "chromedriver never came up"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": CHROMIUM,
                // No sandbox as root; no background traffic to a network
                // the test machine may not have.
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--no-first-run", "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--disable-quic", "--window-size=1280,1700",
                    format!("--user-data-dir={}", profile.display()),
                ],
                "prefs": {
                    "download.default_directory": downloads,
                    "download.prompt_for_download": false,
                },
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = fantoccini::ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&url)
            .await
            .unwrap();
        std::fs::create_dir_all(&shots).unwrap();
        Self {
            driver,
            client: Some(client),
            shots,
            taken: 0,
        }
    }

    fn client(&self) -> &fantoccini::Client {
        self.client.as_ref().unwrap()
    }

    async fn shot(&mut self, name: &str) {
        self.taken += 1;
        let png = self.client().screenshot().await.unwrap();
        std::fs::write(
            self.shots.join(format!("{:02}-{name}.png", self.taken)),
            png,
        )
        .unwrap();
    }

    async fn css(&self, selector: &str) -> fantoccini::elements::Element {
        self.client()
            .find(fantoccini::Locator::Css(selector))
            .await
            .unwrap_or_else(|e| panic!("{selector}: {e}"))
    }

    /// Picks one file in the page's file field, as a person would.
    async fn pick(&self, file: &Path) {
        self.client()
            .execute("document.getElementById('files').value = ''", vec![])
            .await
            .unwrap();
        self.css("#files")
            .await
            .send_keys(file.to_str().unwrap())
            .await
            .unwrap();
    }

    async fn text(&self, selector: &str) -> String {
        self.css(selector).await.text().await.unwrap()
    }

    /// Waits until a script returns true, as a person would wait for the
    /// page to show something.
    async fn until(&self, what: &str, script: &str) {
        let start = Instant::now();
        loop {
            let value = self.client().execute(script, vec![]).await.unwrap();
            if value == Value::Bool(true) {
                return;
            }
            assert!(start.elapsed() < TIMEOUT, "the page never showed {what}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        drop(self.client.take());
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        // chromedriver leaves its chromium behind when killed.
        let _ = Command::new("pkill")
            .args(["-f", "--", "--user-data-dir=.*pagefleet-browser"])
            .status();
    }
}

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A person's way in: `pagefleet serve` with a token, and its web page in a
/// real browser. They are asked for the token, give it, upload a PDF, watch
/// it progress, read its text beside the page image with the lines outlined,
/// download the text, and see a text file named `.pdf` refused in the API's
/// words. The token goes in a header only, never in a URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_page_in_a_real_browser() {
    let _serial = SERIAL.lock().await;
    let data = tempfile::tempdir().unwrap();
    let scratch = tempfile::Builder::new()
        .prefix("pagefleet-browser")
        .tempdir()
        .unwrap();
    let downloads = scratch.path().join("downloads");
    std::fs::create_dir_all(&downloads).unwrap();
    let serve = Serve::start(&[
        "--api-token",
        TOKEN,
        "--max-upload-bytes",
        "200000",
        "--data",
        data.path().to_str().unwrap(),
    ]);
    let base = serve.base();
    // A person opens the page of a server whose worker is up.
    let http = client();
    let start = Instant::now();
    while get_authed(&http, &format!("{base}/workers/status")).await.1["healthy_workers"] != 1 {
        assert!(start.elapsed() < TIMEOUT, "the worker never became healthy");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("web-page");
    let _ = std::fs::remove_dir_all(&shots);
    let mut browser = Browser::start(&scratch.path().join("profile"), &downloads, shots).await;

    // No token yet: the page says the server wants one and opens its field.
    browser.client().goto(&format!("{base}/")).await.unwrap();
    browser
        .until(
            "the token request",
            "return !document.getElementById('notice').hidden",
        )
        .await;
    let notice = browser.text("#notice").await;
    assert!(notice.contains("missing bearer token"), "{notice}");
    browser.shot("asks-for-the-token").await;
    browser.css("#token").await.send_keys(TOKEN).await.unwrap();
    browser
        .css("#token-form button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    browser
        .until(
            "the profiles",
            "return document.querySelectorAll('#profile option').length > 0",
        )
        .await;
    assert!(browser.text("#notice").await.is_empty());
    // The profile a worker serves is offered as such; the other one is
    // shown as unavailable, with why, and cannot be picked.
    let offered = browser.text("#profile").await;
    assert!(
        offered.contains("fast") && !offered.contains("fast (unavailable"),
        "{offered}"
    );
    assert!(
        offered.contains("accurate (unavailable: no worker serves it now)"),
        "{offered}"
    );
    browser
        .until(
            "the unserved profile disabled",
            "return document.querySelector('#profile option[value=accurate]').disabled
                 && !document.querySelector('#profile option[value=fast]').disabled",
        )
        .await;
    // The languages the models read, `auto` first; the person picks French.
    let languages = browser.text("#language").await;
    assert!(
        languages.starts_with("auto") && languages.contains("French (fr)"),
        "{languages}"
    );
    assert!(
        languages.contains("Japanese (ja) (accurate only)"),
        "{languages}"
    );
    assert!(!languages.contains("Russian"), "{languages}");
    browser
        .client()
        .execute("document.getElementById('language').value = 'fr';", vec![])
        .await
        .unwrap();
    // What to do with a PDF's own text: auto by default; the person has
    // the page read from its pixels.
    let modes = browser.text("#text-layer").await;
    assert!(
        modes.starts_with("auto") && modes.contains("ocr: read every page"),
        "{modes}"
    );
    browser
        .client()
        .execute(
            "document.getElementById('text-layer').value = 'ocr';",
            vec![],
        )
        .await
        .unwrap();

    // A PDF, picked and submitted: its job shows its progress, then its text.
    let welcome_path = root().join("examples/welcome.pdf");
    browser.pick(&welcome_path).await;
    browser.shot("file-picked").await;
    browser.css("#submit").await.click().await.unwrap();
    browser
        .until("the job", "return !document.getElementById('job').hidden")
        .await;
    browser.shot("job-progress").await;
    browser
        .until(
            "the page image with its lines outlined",
            "const img = document.getElementById('page-image');
             return !document.getElementById('reader').hidden && img.complete
                 && img.naturalWidth > 0 && document.querySelectorAll('#overlay polygon').length > 0",
        )
        .await;
    browser.shot("result").await;
    let summary = browser.text("#job-summary").await;
    assert!(summary.contains("welcome.pdf: success"), "{summary}");
    // The job says what reads it: the profile and the language picked.
    assert!(summary.contains("profile fast, language fr"), "{summary}");
    let chips = browser.text("#page-states").await;
    assert_eq!(chips.trim(), "1", "{chips}");
    assert_eq!(
        browser
            .css("#page-states li")
            .await
            .attr("class")
            .await
            .unwrap()
            .as_deref(),
        Some("ok")
    );
    let shown = browser.text("#page-text").await;
    assert!(reads_welcome(&shown), "{shown}");

    // What the page shows is the job's text, and its lines are the
    // result's, each outlined once.
    let row = browser.css("#jobs tbody tr").await;
    let job_id = row.attr("data-job").await.unwrap().unwrap();
    let text = http
        .get(format!("{base}/v1/jobs/{job_id}/result?format=txt"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let words = |s: &str| s.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
    assert_eq!(words(&shown), words(&text));
    let (_, report) = get_authed(
        &http,
        &format!("{base}/v1/jobs/{job_id}/result?format=json"),
    )
    .await;
    let lines = report["pages"][0]["lines"].as_array().unwrap().len();
    // The language picked on the page is the job's.
    assert_eq!(report["metrics"]["language"], "fr", "{}", report["metrics"]);
    assert_eq!(report["pages"][0]["text_source"], "ocr");
    let outlined = browser
        .client()
        .execute(
            "return document.querySelectorAll('#overlay polygon').length",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(outlined, Value::from(lines));
    assert!(
        browser.text("#jobs tbody").await.contains("success"),
        "the jobs list shows the finished job"
    );

    // The download link is the API's result (a redirect to the store on S3,
    // the bytes on this folder store), and clicking it saves the file.
    let link = browser.css("#downloads a[data-format=txt]").await;
    let href = link.attr("href").await.unwrap().unwrap();
    assert_eq!(
        href,
        format!("/v1/jobs/{job_id}/result?format=txt&redirect=true")
    );
    link.click().await.unwrap();
    let saved = downloads.join("welcome.txt");
    let start = Instant::now();
    while !saved.is_file() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no download arrived"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(std::fs::read_to_string(&saved).unwrap(), text);

    // A text file named .pdf: refused, in the API's words.
    let fake = scratch.path().join("notes.pdf");
    std::fs::write(&fake, "just some text, not a PDF at all\n").unwrap();
    browser.pick(&fake).await;
    browser.css("#submit").await.click().await.unwrap();
    browser
        .until(
            "the refusal",
            "return document.querySelectorAll('#refusals li').length > 0",
        )
        .await;
    let refusal = browser.text("#refusals").await;
    assert!(
        refusal.starts_with("notes.pdf: ") && refusal.contains("allowed types"),
        "{refusal}"
    );
    browser.shot("refused").await;

    // Over the upload limit: refused before it is sent, naming the limit.
    let big = scratch.path().join("big.pdf");
    let mut padded = std::fs::read(&welcome_path).unwrap();
    padded.resize(300_000, b' ');
    std::fs::write(&big, padded).unwrap();
    browser.pick(&big).await;
    browser.css("#submit").await.click().await.unwrap();
    browser
        .until(
            "the size refusal",
            "return document.getElementById('refusals').textContent.includes('big.pdf')",
        )
        .await;
    let refusal = browser.text("#refusals").await;
    assert!(
        refusal.contains("over the limit of 200000 bytes (max upload size)"),
        "{refusal}"
    );

    // A job of a profile no worker serves (sent over the API: the page
    // does not offer that profile) waits; opened from the list, its cancel
    // button ends it.
    let (code, accepted) = post_job(
        &http,
        &base,
        upload("welcome.pdf", std::fs::read(&welcome_path).unwrap()).text("profile", "accurate"),
    )
    .await;
    assert_eq!(code, 202, "{accepted}");
    let waiting = accepted["job_id"].as_str().unwrap().to_owned();
    browser.css("#refresh").await.click().await.unwrap();
    browser
        .until(
            "the waiting job in the list",
            &format!(
                "return document.querySelector('#jobs tr[data-job=\"{waiting}\"] button') !== null"
            ),
        )
        .await;
    browser
        .css(&format!("#jobs tr[data-job=\"{waiting}\"] button"))
        .await
        .click()
        .await
        .unwrap();
    browser
        .until(
            "the waiting job's cancel button",
            &format!(
                "return document.getElementById('job-title').textContent.includes({waiting:?})
                    && !document.getElementById('cancel').hidden"
            ),
        )
        .await;
    browser.css("#cancel").await.click().await.unwrap();
    browser
        .until(
            "the cancelled job",
            "return document.getElementById('job-summary').textContent.includes('cancelled')",
        )
        .await;
    browser.shot("cancelled").await;
    let (_, job) = get_authed(&http, &format!("{base}/v1/jobs/{waiting}")).await;
    assert_eq!(job["status"], "cancelled", "{job}");
    assert_eq!(job["profile"], "accurate", "{job}");

    // The ended job's Delete button, confirmed: the job is gone from the
    // page and from the API.
    browser
        .until(
            "the delete button",
            "return !document.getElementById('delete').hidden",
        )
        .await;
    browser.css("#delete").await.click().await.unwrap();
    browser.client().accept_alert().await.unwrap();
    browser
        .until(
            "the deleted job to leave the page",
            &format!(
                "return document.getElementById('job').hidden
                    && document.querySelector('#jobs tr[data-job=\"{waiting}\"]') === null
                    && document.querySelectorAll('#jobs tr[data-job]').length > 0"
            ),
        )
        .await;
    let (code, gone) = get_authed(&http, &format!("{base}/v1/jobs/{waiting}")).await;
    assert_eq!(code, 410, "{gone}");

    // The token never went into a URL.
    let urls = browser
        .client()
        .execute(
            "return performance.getEntriesByType('resource').map(e => e.name).concat([location.href])",
            vec![],
        )
        .await
        .unwrap();
    assert!(!urls.to_string().contains(TOKEN), "{urls}");
}
