//! `pagefleet serve` started as operators start the stage commands: against
//! a NATS that asks for credentials, through a server list, with the stage
//! flags and a probe address; its `/metrics`; and `doctor` and `watch`
//! finding and checking it, against its own nats-server too. Real processes
//! throughout: serve, the client commands and nats-server.

#![allow(clippy::unwrap_used)] // helpers outside #[test] fns fail loudly by design

mod common;

use std::time::{Duration, Instant};

use common::pipeline::{NatsServer, SeaweedFs, free_tcp_port, http_get};
use common::serve::Serve;
use common::{pagefleet, root, wait_until};
use pagefleet_schemas::names;

/// One test at a time: each starts a model-loading serve.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `pagefleet submit --wait` of the welcome document: the job's text.
fn submit_welcome(serve: &Serve) -> String {
    let welcome = root().join("examples/welcome.pdf");
    let submitted = pagefleet(&[
        "submit",
        welcome.to_str().unwrap(),
        "--wait",
        "--api",
        &serve.base(),
    ]);
    assert!(submitted.status.success(), "{}", submitted.said());
    let out = submitted.stdout.to_lowercase();
    assert!(
        out.contains("pagefleet"),
        "the welcome page was not read: {out}"
    );
    out
}

/// `pagefleet submit` of the welcome document, not waiting: its job id.
fn submit_welcome_job(serve: &Serve) -> String {
    let submitted = pagefleet(&[
        "submit",
        root().join("examples/welcome.pdf").to_str().unwrap(),
        "--api",
        &serve.base(),
    ]);
    assert!(submitted.status.success(), "{}", submitted.said());
    submitted.stdout.trim().to_owned()
}

/// The value of a sample `name{labels}` (or `name` alone) in Prometheus
/// text.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let (name, value) = line.rsplit_once(' ')?;
        (name == series).then(|| value.parse().ok())?
    })
}

fn doctor(args: &[&str]) -> (bool, String) {
    let mut all = vec!["doctor"];
    all.extend_from_slice(args);
    let ran = pagefleet(&all);
    (ran.status.success(), ran.said())
}

#[test]
fn serve_joins_a_secured_server_list_with_the_stage_flags_and_serves_metrics() {
    let _serial = serial();
    let nats = NatsServer::start_with(&["--user", "fleet", "--pass", "s3cret"]);
    let data = tempfile::tempdir().unwrap();
    // The first server of the list refuses connections: serve must take the
    // list, not one URL, and go on to the next.
    let dead = free_tcp_port();
    let list = format!("nats://127.0.0.1:{dead},{}", nats.url);
    let probes = free_tcp_port();
    let probes_addr = format!("127.0.0.1:{probes}");
    let mut serve = Serve::start(&[
        "--nats",
        &list,
        "--nats-user",
        "fleet",
        "--nats-password",
        "s3cret",
        "--page-deadline",
        "90",
        "--pull-wait",
        "2",
        "--max-pages",
        "40",
        "--max-decode-pixels",
        "200000000",
        "--health-addr",
        &probes_addr,
        "--data",
        data.path().to_str().unwrap(),
    ]);
    assert_eq!(serve.nats, list, "serve names the servers it was given");
    submit_welcome(&serve);

    // /metrics on the HTTP API and on the probe address: every stage's
    // counters, from one process.
    let (status, metrics) = http_get(serve.http_port, "/metrics");
    assert_eq!(status, 200, "{metrics}");
    assert_eq!(
        sample(
            &metrics,
            "pagefleet_pages_processed_total{profile=\"fast\"}"
        ),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        sample(&metrics, "pagefleet_pages_rasterized_total"),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            "pagefleet_jobs_finished_total{status=\"success\"}"
        ),
        Some(1.0),
        "{metrics}"
    );
    // One page, one record and one state write: a few hundred bytes.
    let state_bytes = sample(&metrics, "pagefleet_state_bytes_written_total").unwrap_or(0.0);
    assert!(
        (100.0..10_000.0).contains(&state_bytes),
        "{state_bytes} bytes to the jobs bucket\n{metrics}"
    );
    assert!(
        sample(&metrics, "pagefleet_state_conflicts_total").is_some(),
        "{metrics}"
    );
    assert_eq!(
        sample(&metrics, "pagefleet_ready{stage=\"serve\"}"),
        Some(1.0),
        "{metrics}"
    );
    let (status, probed) = http_get(probes, "/metrics");
    assert_eq!(status, 200);
    assert!(
        probed.contains("pagefleet_pages_processed_total"),
        "{probed}"
    );
    assert_eq!(http_get(probes, "/readyz"), (200, "ready\n".to_owned()));

    // doctor with the same credentials passes, and checks the bucket
    // events' stream and its consumer; without them it fails.
    let creds = [
        "--nats",
        nats.url.as_str(),
        "--nats-user",
        "fleet",
        "--nats-password",
        "s3cret",
        "--data",
        data.path().to_str().unwrap(),
    ];
    let (ok, report) = doctor(&creds);
    assert!(ok, "{report}");
    assert!(report.contains("checks passed"), "{report}");
    assert!(
        report.contains("ok    consumer PAGEFLEET_BUCKET_EVENTS/ingest-bucket-events"),
        "{report}"
    );
    let (ok, report) = doctor(&["--nats", &nats.url]);
    assert!(!ok, "doctor passed without the credentials: {report}");
    assert!(report.contains("FAIL  nats"), "{report}");

    assert!(serve.stop().success());
}

#[test]
fn doctor_and_watch_find_a_serve_by_its_data_folder() {
    let _serial = serial();
    let data = tempfile::tempdir().unwrap();
    let folder = data.path().to_str().unwrap();
    let mut serve = Serve::start(&["--data", folder]);
    assert!(data.path().join("serve.json").is_file());

    let job_id = submit_welcome_job(&serve);
    // No --nats: watch finds serve's private nats-server through the data
    // folder and follows the job to its end.
    let watched = pagefleet(&["watch", &job_id, "--data", folder]);
    assert!(watched.status.success(), "{}", watched.said());
    assert!(watched.stdout.contains("completed"), "{}", watched.said());

    // A healthy single-server deployment passes every check, its consumers
    // included (a single server's consumers have no leader to report).
    let (ok, report) = doctor(&["--data", folder]);
    assert!(ok, "{report}");
    assert!(
        report.contains(&format!("the serve running on {folder}")),
        "{report}"
    );
    assert!(!report.contains("FAIL"), "{report}");

    // Once serve has stopped, watch says what it tried, within seconds.
    assert!(serve.stop().success());
    assert!(!data.path().join("serve.json").exists());
    let started = Instant::now();
    let watched = pagefleet(&["watch", "--data", folder]);
    assert!(!watched.status.success());
    let said = watched.said();
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "watch took {:?}",
        started.elapsed()
    );
    assert!(said.contains("no NATS to watch: tried"), "{said}");
    assert!(said.contains("no serve found"), "{said}");
}

/// The pids of processes whose command line mentions `text`.
fn processes_naming(text: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| {
            let pid: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            String::from_utf8_lossy(&cmdline)
                .contains(text)
                .then_some(pid)
        })
        .collect()
}

/// `kill -9` of serve takes its nats-server with it; a second serve on a
/// folder whose nats-server is alive stops with an error naming it; and
/// the folder serves again once the first is gone.
#[test]
fn a_killed_serve_leaves_no_process_behind() {
    let _serial = serial();
    let data = tempfile::tempdir().unwrap();
    let folder = data.path().to_str().unwrap();
    let store = data.path().join("nats");
    let store = store.to_str().unwrap();
    let mut serve = Serve::start(&["--data", folder]);
    let servers = processes_naming(store);
    assert_eq!(servers.len(), 1, "one nats-server on {store}: {servers:?}");

    // Bounded: a second serve that does start would serve forever.
    let second = std::process::Command::new("timeout")
        .args(["30", env!("CARGO_BIN_EXE_pagefleet")])
        .args(["serve", "--data", folder, "--http-addr", "127.0.0.1:0"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "{said}");
    assert!(said.contains("is in use by another nats-server"), "{said}");
    assert_eq!(processes_naming(store), servers, "a second nats-server ran");

    serve.kill();
    common::wait_until(
        Duration::from_secs(15),
        "the killed serve's nats-server to end",
        || processes_naming(store).is_empty(),
    );

    let mut again = Serve::start(&["--data", folder]);
    submit_welcome(&again);
    assert!(again.stop().success());
    assert!(processes_naming(store).is_empty());
}

/// A finished job expires once `--retention` has passed, with a restart of
/// serve in between: no timer is forgotten, and nothing of the job is left
/// in the local store.
#[test]
fn an_ended_job_expires_across_a_restart() {
    let _serial = serial();
    let data = tempfile::tempdir().unwrap();
    let folder = data.path().to_str().unwrap();
    let mut serve = Serve::start(&["--data", folder, "--retention", "1h"]);
    let welcome = root().join("examples/welcome.pdf");
    // submit names the job's language, which its view records.
    let submitted = pagefleet(&[
        "submit",
        welcome.to_str().unwrap(),
        "--language",
        "de",
        "--api",
        &serve.base(),
    ]);
    assert!(submitted.status.success(), "{}", submitted.said());
    let job_id = submitted.stdout.trim().to_owned();
    let status = |base: &str| pagefleet(&["status", &job_id, "--api", base]);
    common::wait_until(Duration::from_secs(120), "the job to finish", || {
        status(&serve.base()).stdout.contains("\"success\"")
    });
    let view: serde_json::Value = serde_json::from_str(&status(&serve.base()).stdout).unwrap();
    assert_eq!(view["language"], "de", "{view}");
    let objects = data.path().join("objects/jobs").join(&job_id);
    assert!(objects.is_dir(), "{}", objects.display());
    assert!(serve.stop().success());

    // Restarted with a retention the job has passed.
    let mut serve = Serve::start(&["--data", folder, "--retention", "3s"]);
    common::wait_until(Duration::from_secs(60), "the job to expire", || {
        !status(&serve.base()).status.success()
    });
    let said = status(&serve.base()).said();
    assert!(
        said.contains("410") && said.contains("expired at"),
        "{said}"
    );
    assert!(!objects.exists(), "{} is still there", objects.display());
    assert!(serve.stop().success());
}

/// A born-digital PDF of `pages` text pages, one content stream shared by
/// all.
fn long_pdf(pages: usize) -> Vec<u8> {
    let lines = [
        "Long job test page",
        "pagefleet reads every page of this document from its text layer.",
    ];
    let mut ops = String::from("BT /F1 11 Tf 14 TL 72 700 Td\n");
    for _ in 0..12 {
        for line in lines {
            ops.push_str(&format!("({line}) Tj T*\n"));
        }
    }
    ops.push_str("ET");
    let kids: Vec<String> = (0..pages).map(|i| format!("{} 0 R", 5 + i)).collect();
    let mut objects = vec![
        "<< /Type /Catalog /Pages 2 0 R >>".to_owned(),
        format!(
            "<< /Type /Pages /Kids [{}] /Count {pages} >>",
            kids.join(" ")
        ),
        format!("<< /Length {} >>\nstream\n{ops}\nendstream", ops.len()),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Times-Roman >>".to_owned(),
    ];
    objects.extend(std::iter::repeat_n(
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 3 0 R \
         /Resources << /Font << /F1 4 0 R >> >> >>"
            .to_owned(),
        pages,
    ));
    common::pdf::pdf(&objects)
}

/// A 1,000-page born-digital PDF through serve (its text layer taken): the
/// job's status comes from its state alone (it answers with the metrics
/// once `result.json` is gone) within 0.5 s, and serve's peak memory stays
/// under 400 MB (163 MB in BENCHMARKS.md's run).
#[test]
fn a_thousand_page_job_is_followed_without_its_result_json() {
    let _serial = serial();
    let data = tempfile::tempdir().unwrap();
    let folder = data.path().to_str().unwrap();
    let mut serve = Serve::start(&["--data", folder]);
    let pdf = data.path().join("long.pdf");
    std::fs::write(&pdf, long_pdf(1000)).unwrap();
    let submitted = pagefleet(&[
        "submit",
        pdf.to_str().unwrap(),
        "--text-layer",
        "use",
        "--format",
        "json",
        "--wait",
        "--api",
        &serve.base(),
    ]);
    assert!(submitted.status.success(), "{}", submitted.stderr);
    let job_id = submitted
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix("job "))
        .unwrap()
        .trim()
        .to_owned();
    let result_json = data
        .path()
        .join(format!("objects/jobs/{job_id}/result.json"));
    let written = std::fs::metadata(&result_json).unwrap().len();
    assert!(written > 10_000_000, "result.json is {written} bytes");
    // The outputs hold the pages now: the pages' results are not kept (they
    // go just after the job's completed event).
    let results = data.path().join(format!("objects/jobs/{job_id}/results"));
    let kept = || std::fs::read_dir(&results).map_or(0, |d| d.count());
    let since = Instant::now();
    while kept() > 0 && since.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(kept(), 0, "page results kept after the job finished");
    std::fs::remove_file(&result_json).unwrap();
    let status = pagefleet(&["status", &job_id, "--api", &serve.base()]);
    assert!(status.status.success(), "{}", status.said());
    let view: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(view["status"], "success", "{}", status.stdout);
    assert_eq!(view["metrics"]["total_pages"], 1000);
    assert_eq!(view["progress"]["pages_done"], 1000);
    assert!(view.get("failed_pages").is_none(), "{}", status.stdout);
    // The bound for a status call on a finished 1,000-page job, far
    // above what it takes (p95 about 24 ms in BENCHMARKS.md): a call that
    // read the job's result again would take seconds.
    let slowest = (0..20)
        .map(|_| {
            let started = Instant::now();
            let (code, _) = http_get(serve.http_port, &format!("/v1/jobs/{job_id}"));
            assert_eq!(code, 200);
            started.elapsed()
        })
        .max()
        .unwrap();
    assert!(
        slowest < Duration::from_millis(500),
        "a status call took {slowest:?}"
    );
    // The jobs bucket took two writes a page (the page's record and the
    // job's counters, in one atomic batch), each of a size that does not
    // grow with the job: bytes written grow with the pages, not their square.
    let (writes, state_bytes, record_bytes) =
        tokio::runtime::Runtime::new().unwrap().block_on(async {
            let client = async_nats::connect(&serve.nats).await.unwrap();
            let js = async_nats::jetstream::new(client);
            let kv = js.get_key_value(names::JOBS_BUCKET).await.unwrap();
            let state = kv.get(&job_id).await.unwrap().unwrap().len();
            let record = kv
                .get(names::page_record_key(&job_id, 1000))
                .await
                .unwrap()
                .unwrap()
                .len();
            let mut stream = js
                .get_stream(format!("KV_{}", names::JOBS_BUCKET))
                .await
                .unwrap();
            let writes = stream.info().await.unwrap().state.last_sequence;
            (writes, state, record)
        });
    assert!(
        writes <= 2 * 1000 + 50,
        "{writes} writes to the jobs bucket"
    );
    assert!(state_bytes < 4096, "the job's state is {state_bytes} bytes");
    assert!(
        record_bytes < 200,
        "a page's record is {record_bytes} bytes"
    );
    let peak_kb: u64 = std::fs::read_to_string(format!("/proc/{}/status", serve.pid()))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap();
    assert!(
        peak_kb < 400 * 1024,
        "serve's peak was {} MB",
        peak_kb / 1024
    );
    assert!(serve.stop().success());
}

/// `pagefleet submit` of several documents at once: a folder (its PDFs in
/// subfolders, one name twice), a pattern pagefleet expands, a pattern that
/// matches nothing, and a text file named .pdf. The documents go as one
/// job each; the readable ones end with their results written under their
/// own names in the requested formats, the others are said to have failed
/// without stopping them, and the exit status fails.
#[test]
fn a_batch_of_documents_is_submitted_together_and_written_to_a_folder() {
    let _serial = serial();
    let serve = Serve::start(&[]);
    let docs = tempfile::tempdir().unwrap();
    let folder = docs.path().join("scans");
    for sub in ["a", "b"] {
        std::fs::create_dir_all(folder.join(sub)).unwrap();
        std::fs::copy(
            root().join("examples/welcome.pdf"),
            folder.join(sub).join("welcome.pdf"),
        )
        .unwrap();
    }
    std::fs::write(folder.join("notes.txt"), "not a document").unwrap();
    std::fs::create_dir(docs.path().join("mail")).unwrap();
    std::fs::write(
        docs.path().join("mail/minutes.pdf"),
        "minutes of the meeting, saved as a .pdf by mistake\n",
    )
    .unwrap();
    let out = docs.path().join("out");
    let path = |p: &std::path::Path| p.to_str().unwrap().to_owned();
    let ran = pagefleet(&[
        "submit",
        &path(&folder),
        &path(&docs.path().join("mail/*.pdf")),
        &path(&docs.path().join("faxes/*.tif")),
        "-o",
        &path(&out),
        "--format",
        "txt,md",
        "--api",
        &serve.base(),
    ]);
    assert!(!ran.status.success(), "{}", ran.said());
    assert!(
        ran.stderr.contains("2 of 4 documents did not succeed"),
        "{}",
        ran.said()
    );
    for name in ["welcome", "welcome-2"] {
        let text = std::fs::read_to_string(out.join(format!("{name}.txt"))).unwrap();
        assert!(text.to_lowercase().contains("pagefleet"), "{name}: {text}");
        let md = std::fs::read_to_string(out.join(format!("{name}.md"))).unwrap();
        assert!(md.to_lowercase().contains("pagefleet"), "{name}: {md}");
    }
    let line = |what: &str| {
        ran.stdout
            .lines()
            .find(|l| l.contains(what))
            .unwrap_or_else(|| panic!("no line for {what}: {}", ran.said()))
            .to_owned()
    };
    assert!(line("a/welcome.pdf: ").contains(": success, job "));
    assert!(line("b/welcome.pdf: ").contains(": success, job "));
    // ingest refuses it by its content.
    assert!(
        line("minutes.pdf: ").contains("not submitted: 415 Unsupported Media Type"),
        "{}",
        ran.said()
    );
    assert!(line("faxes/*.tif").contains("matches no file"));
    assert!(!ran.stdout.contains("notes.txt"), "{}", ran.said());

    // Without waiting: a job id and its document a line; one idempotency
    // key keys each document of the batch, so the same batch again runs
    // nothing new.
    let submit_keyed = || {
        let ran = pagefleet(&[
            "submit",
            &path(&folder),
            "--idempotency-key",
            "batch-1",
            "--api",
            &serve.base(),
        ]);
        assert!(ran.status.success(), "{}", ran.said());
        ran.stdout
    };
    let first = submit_keyed();
    let jobs: Vec<(&str, &str)> = first.lines().map(|l| l.split_once('\t').unwrap()).collect();
    assert_eq!(jobs.len(), 2, "{first}");
    assert!(jobs[0].1.ends_with("a/welcome.pdf") && jobs[1].1.ends_with("b/welcome.pdf"));
    assert_ne!(jobs[0].0, jobs[1].0);
    assert_eq!(submit_keyed(), first);
}

/// A plain HTTP/1.1 GET of `url` (`http://host:port/path?query`), as any
/// client without the store's credentials makes it: the status, the
/// headers (names lowercase) and the body.
fn plain_get(url: &str) -> (u16, Vec<(String, String)>, String) {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_at(rest.find('/').unwrap());
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, body.to_owned())
}

/// On an S3 store (a real SeaweedFS), `result?redirect=true` answers 307 to
/// a presigned URL of the stored result, valid for `--presign-ttl`, which a
/// plain HTTP client without credentials fetches; the same URL with its
/// signature changed is refused by the store; without `redirect` the bytes
/// come through the API as before, and a result the job was not asked for
/// is refused by the API, not redirected. (On a folder store `redirect=true`
/// serves the bytes: the browser test downloads that way.)
#[test]
fn results_on_s3_are_handed_out_as_presigned_urls() {
    let _serial = serial();
    let seaweed = SeaweedFs::start();
    let serve = Serve::start_with_env(&["--presign-ttl", "2m"], &seaweed.env());
    let job_id = submit_welcome_job(&serve);
    wait_until(Duration::from_secs(60), "the job's end", || {
        http_get(serve.http_port, &format!("/v1/jobs/{job_id}"))
            .1
            .contains("\"success\"")
    });
    let (status, text) = http_get(
        serve.http_port,
        &format!("/v1/jobs/{job_id}/result?format=txt"),
    );
    assert_eq!(status, 200, "{text}");
    assert!(text.to_lowercase().contains("pagefleet"), "{text}");

    let api = serve.base();
    let (status, headers, body) = plain_get(&format!(
        "{api}/v1/jobs/{job_id}/result?format=txt&redirect=true"
    ));
    assert_eq!(status, 307, "{body}");
    let location = headers
        .iter()
        .find(|(k, _)| k == "location")
        .map(|(_, v)| v.clone())
        .unwrap();
    assert!(
        location.starts_with(&seaweed.endpoint)
            && location.contains(&format!("jobs/{job_id}/result.txt"))
            && location.contains("X-Amz-Expires=120")
            && location.contains("X-Amz-Signature="),
        "{location}"
    );
    let (status, _, fetched) = plain_get(&location);
    assert_eq!(status, 200, "{fetched}");
    assert_eq!(fetched, text);
    let forged = location.replace("result.txt", "result.json");
    assert_eq!(plain_get(&forged).0, 403, "{forged}");

    // The API still decides what may be had: a format not asked for.
    let (status, _, body) = plain_get(&format!(
        "{api}/v1/jobs/{job_id}/result?format=pdf&redirect=true"
    ));
    assert_eq!(status, 404, "{body}");
}
