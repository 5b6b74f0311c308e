//! The pipeline against a real nats-server: documents through to results,
//! and the failures the clusters pagefleet replaces fell over on (a worker
//! killed mid-page, a page that always fails, one that always hangs, an
//! aggregator restarted mid-job, duplicate publishes, a store outage, a NATS
//! restart) as non-events. Where a test kills, signals or probes a stage,
//! the stages are separate `pagefleet` processes; elsewhere they run in this
//! process, started as `pagefleet run` starts them.

#![allow(clippy::unwrap_used)] // helpers outside #[test] fns fail loudly by design

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use bytes::Bytes;
use common::pipeline::{
    NatsServer, StageProcess, connect, in_process, local_store, page_records, stream_len,
    submit_options, wait_final,
};
use common::{Score, root, samples};
use futures::StreamExt;
use pagefleet_aggregator::report::JobReport;
use pagefleet_schemas::messages::{
    JobManifest, JobState, JobStatus, Message, PageJob, ResultMessage, SCHEMA_VERSION, now_ms,
};
use pagefleet_schemas::names;
use pagefleet_stagekit::store;
use pagefleet_stagekit::topology::TopologyConfig;

const TIMEOUT: Duration = Duration::from_secs(240);

/// The tests run one at a time: each starts several model-loading processes,
/// and on a small machine they would only slow each other into timeouts.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn report(store: &store::Store, job_id: &str) -> JobReport {
    let json = store::get(
        store.as_ref(),
        &names::keys::output(job_id, pagefleet_schemas::Format::Json),
    )
    .await
    .unwrap();
    serde_json::from_slice(&json).unwrap()
}

async fn submit_file(js: &jetstream::Context, store: &store::Store, file: &Path) -> String {
    let bytes = std::fs::read(file).unwrap();
    let name = file.file_name().unwrap().to_string_lossy().into_owned();
    pagefleet_ingest::submit(js, store, &name, bytes.into(), &submit_options())
        .await
        .unwrap()
}

/// One test's world: its own nats-server and store folder, and the lock that
/// keeps pipeline tests from running at once.
struct Setup {
    _serial: tokio::sync::MutexGuard<'static, ()>,
    nats: NatsServer,
    dir: tempfile::TempDir,
    js: jetstream::Context,
    store: store::Store,
}

impl Setup {
    async fn new() -> Self {
        let _serial = SERIAL.lock().await;
        let nats = NatsServer::start();
        let dir = tempfile::tempdir().unwrap();
        let js = connect(&nats.url).await;
        let store = local_store(dir.path());
        Self {
            _serial,
            nats,
            dir,
            js,
            store,
        }
    }
}

/// Waits until the job's state records its first page, and returns that state.
async fn wait_first_page(
    js: &jetstream::Context,
    job_id: &str,
) -> pagefleet_schemas::messages::JobState {
    let kv = js.get_key_value(names::JOBS_BUCKET).await.unwrap();
    let start = Instant::now();
    loop {
        if let Some(bytes) = kv.get(job_id).await.unwrap() {
            let state = pagefleet_schemas::messages::JobState::decode(&bytes).unwrap();
            if state.pages_recorded() > 0 {
                return state;
            }
        }
        assert!(
            start.elapsed() < TIMEOUT,
            "no page of {job_id} was recorded"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every work queue is empty: nothing is stuck.
async fn assert_queues_drained(js: &jetstream::Context) {
    assert_queues_drained_within(js, Duration::from_secs(10)).await;
}

/// Every work queue is empty within `limit`: nothing is stuck.
async fn assert_queues_drained_within(js: &jetstream::Context, limit: Duration) {
    for stream in [
        names::DOCS_STREAM,
        names::PAGES_STREAM,
        names::RESULTS_STREAM,
        names::ADVISORIES_STREAM,
    ] {
        // Acks of the last messages may take a moment to land.
        let start = Instant::now();
        while stream_len(js, stream).await > 0 && start.elapsed() < limit {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(
            stream_len(js, stream).await,
            0,
            "{stream} still holds messages"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn samples_through_separate_stage_processes() {
    let Setup {
        _serial,
        nats,
        dir,
        js,
        store,
    } = Setup::new().await;
    // Two aggregators side by side: they share the results and must agree
    // through compare-and-set on each job's state.
    let _stages = [
        StageProcess::spawn(&["rasterizer"], &nats.url, dir.path()),
        StageProcess::spawn(&["ocr-worker", "--name", "w1"], &nats.url, dir.path()),
        StageProcess::spawn(&["aggregator"], &nats.url, dir.path()),
        StageProcess::spawn(&["aggregator"], &nats.url, dir.path()),
    ];
    let samples = samples();
    let docs = common::SAMPLE_PDFS;
    let mut jobs = Vec::new();
    for doc in docs {
        jobs.push((
            doc,
            submit_file(&js, &store, &samples.join(format!("{doc}.pdf"))).await,
        ));
    }
    let mut total = Score::default();
    for (doc, job_id) in &jobs {
        let state = wait_final(&js, job_id, TIMEOUT).await;
        assert_eq!(state.status, JobStatus::Success, "{doc}");
        let report = report(&store, job_id).await;
        let m = &report.metrics;
        let pages = &report.pages;
        assert_eq!(
            (m.total_pages as usize, m.pages_processed, m.pages_failed),
            (pages.len(), m.total_pages, 0)
        );
        // Metrics agree with the text they describe.
        let ocr: Vec<_> = pages.iter().map(|p| p.ocr.as_ref().unwrap()).collect();
        assert_eq!(
            m.total_words,
            ocr.iter().map(|o| o.counts.words).sum::<u64>()
        );
        assert_eq!(
            m.total_lines,
            ocr.iter().map(|o| o.lines.len() as u64).sum::<u64>()
        );
        assert_eq!(m.ocr_rounds_per_worker.get("w1"), Some(&m.total_pages));
        assert!(m.avg_confidence > 0.8 && m.total_duration_ms > 0 && m.file_size_bytes > 0);
        let text = String::from_utf8(
            store::get(
                store.as_ref(),
                &names::keys::output(job_id, pagefleet_schemas::Format::Txt),
            )
            .await
            .unwrap()
            .to_vec(),
        )
        .unwrap();
        assert_eq!(text.matches('\u{c}').count(), pages.len());
        for (i, o) in ocr.iter().enumerate() {
            let truth =
                std::fs::read_to_string(samples.join(format!("truth/{doc}/{:03}.txt", i + 1)))
                    .unwrap();
            total.add(Score::page(&o.text(), &truth));
        }
        let md = store::get(
            store.as_ref(),
            &names::keys::output(job_id, pagefleet_schemas::Format::Md),
        )
        .await
        .unwrap();
        assert!(
            std::str::from_utf8(&md)
                .unwrap()
                .contains("<!-- page 1 -->")
        );
    }
    // One completion per job, however many aggregators saw it complete.
    let events = js.get_stream(names::EVENTS_STREAM).await.unwrap();
    for (_, job_id) in &jobs {
        let completed = events
            .info_with_subjects(names::event_subject(job_id, "completed"))
            .await
            .unwrap()
            .next()
            .await
            .map(|r| r.unwrap().1)
            .unwrap_or(0);
        assert_eq!(completed, 1, "{job_id}");
    }
    eprintln!(
        "pipeline: CER {:.2}% BoW-F1 {:.3}",
        100.0 * total.cer(),
        total.bow_f1()
    );
    assert!(total.cer() <= 0.05 && total.bow_f1() >= 0.97);
    assert_queues_drained(&js).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_page_loses_nothing() {
    let Setup {
        _serial,
        nats,
        dir,
        js,
        store,
    } = Setup::new().await;
    let quick = ["--page-ack-wait", "2"];
    let _rasterizer = StageProcess::spawn(&["rasterizer"], &nats.url, dir.path());
    let _aggregator = StageProcess::spawn(&["aggregator"], &nats.url, dir.path());
    let mut doomed = StageProcess::spawn(
        &[
            "ocr-worker",
            "--name",
            "doomed",
            "--slots",
            "1",
            quick[0],
            quick[1],
        ],
        &nats.url,
        dir.path(),
    );
    let job_id = submit_file(&js, &store, &samples().join("gnuplot-manual.pdf")).await;

    // Kill the worker (no goodbye) once it holds a page.
    let pages = js.get_stream(names::PAGES_STREAM).await.unwrap();
    let start = Instant::now();
    loop {
        let consumer: Result<jetstream::consumer::PullConsumer, _> = pages
            .get_consumer(&names::worker_consumer("fast", names::Lane::Small))
            .await;
        if let Ok(mut c) = consumer
            && c.info().await.unwrap().num_ack_pending > 0
        {
            break;
        }
        assert!(start.elapsed() < TIMEOUT, "the worker never took a page");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    doomed.kill();
    let _survivor = StageProcess::spawn(
        &["ocr-worker", "--name", "survivor", quick[0], quick[1]],
        &nats.url,
        dir.path(),
    );

    let state = wait_final(&js, &job_id, TIMEOUT).await;
    assert_eq!(state.status, JobStatus::Success);
    let report = report(&store, &job_id).await;
    let pages: Vec<u32> = report.pages.iter().map(|p| p.page).collect();
    assert_eq!(pages, vec![1, 2, 3], "every page exactly once");
    assert!(
        report.metrics.redeliveries >= 1,
        "the killed worker's page was redelivered"
    );
    assert_eq!(
        report.metrics.ocr_rounds_per_worker.get("doomed"),
        None,
        "the killed worker finished nothing"
    );
    assert_queues_drained(&js).await;
}

/// Publishes page jobs as the rasterizer would, for pages made by the test.
async fn publish_pages(js: &jetstream::Context, job_id: &str, keys: &[String]) {
    let lane = names::Lane::of_job(keys.len() as u32);
    publish_pages_on(js, job_id, keys, lane).await;
}

/// [`publish_pages`] on the page stream's `lane`, whatever the job's length.
async fn publish_pages_on(
    js: &jetstream::Context,
    job_id: &str,
    keys: &[String],
    lane: names::Lane,
) {
    for (i, key) in keys.iter().enumerate() {
        let page = i as u32 + 1;
        let job = PageJob {
            layer_key: None,
            v: SCHEMA_VERSION,
            job_id: job_id.into(),
            page,
            page_count: keys.len() as u32,
            image_key: key.clone(),
            profile: "fast".into(),
            scale: 1.0,
            dpi: 0.0,
            published_at_ms: now_ms(),
            language: "auto".into(),
        };
        js.publish(
            names::page_subject("fast", lane, job_id, page),
            job.encode().into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    }
    let manifest = JobManifest {
        v: SCHEMA_VERSION,
        job_id: job_id.into(),
        filename: "hostile.pdf".into(),
        file_size_bytes: 1,
        submitted_at_ms: now_ms(),
        total_pages: keys.len() as u32,
        error: None,
        dpi: 200.0,
    };
    js.publish(
        names::manifest_subject(job_id),
        ResultMessage::Manifest(manifest).encode().into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_page_and_a_hanging_page_end_the_job_as_partial_success() {
    let Setup {
        _serial,
        nats,
        dir,
        js,
        store,
    } = Setup::new().await;
    let job_id = "hostile-pages";
    // Page 1 is a real page; page 2 is not an image; reading page 3 never
    // returns (a FIFO with no writer: the store blocks on it forever).
    let good = welcome_png();
    store::put(store.as_ref(), "pages/good.png", good)
        .await
        .unwrap();
    store::put(
        store.as_ref(),
        "pages/bad.png",
        Bytes::from_static(b"not an image at all"),
    )
    .await
    .unwrap();
    let fifo = dir.path().join("pages/hang.png");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let _worker = StageProcess::spawn(
        &[
            "ocr-worker",
            "--page-deadline",
            "8",
            "--page-ack-wait",
            "2",
            "--page-max-deliver",
            "2",
        ],
        &nats.url,
        dir.path(),
    );
    let _aggregator = StageProcess::spawn(&["aggregator"], &nats.url, dir.path());
    publish_pages(
        &js,
        job_id,
        &[
            "pages/good.png".into(),
            "pages/bad.png".into(),
            "pages/hang.png".into(),
        ],
    )
    .await;

    let state = wait_final(&js, job_id, TIMEOUT).await;
    assert_eq!(state.status, JobStatus::PartialSuccess);
    let report = report(&store, job_id).await;
    let status: Vec<&str> = report.pages.iter().map(|p| p.status.as_str()).collect();
    assert_eq!(status, ["ok", "failed", "failed"]);
    let bad = report.pages[1].error.as_deref().unwrap();
    assert!(bad.contains("page image"), "{bad}");
    let hung = report.pages[2].error.as_deref().unwrap();
    assert!(hung.contains("delivered 2 times"), "{hung}");
    assert_eq!(report.metrics.errors.len(), 2);
    assert!(report.pages[0].ocr.as_ref().unwrap().counts.words > 100);
    // The state counts the pages and names the failed ones with why, as
    // the job's view shows them.
    assert_eq!(state.counts(), (1, 2));
    let failed: Vec<u32> = state.failures.iter().map(|f| f.page).collect();
    assert_eq!(failed, [2, 3]);
    assert_eq!(state.failures[1].error, hung);
    assert_queues_drained(&js).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aggregator_restarted_mid_job_counts_exactly() {
    let Setup {
        _serial,
        nats,
        dir,
        js,
        store,
    } = Setup::new().await;
    let _rasterizer = StageProcess::spawn(&["rasterizer"], &nats.url, dir.path());
    let _worker = StageProcess::spawn(&["ocr-worker", "--slots", "1"], &nats.url, dir.path());
    let mut first = StageProcess::spawn(&["aggregator"], &nats.url, dir.path());
    let job_id = submit_file(&js, &store, &samples().join("gnuplot-manual.pdf")).await;

    let state = wait_first_page(&js, &job_id).await;
    assert!(
        !state.is_complete(),
        "the job finished before the aggregator could be killed"
    );
    first.kill();
    let _second = StageProcess::spawn(&["aggregator"], &nats.url, dir.path());
    let state = wait_final(&js, &job_id, TIMEOUT).await;
    assert_eq!(state.status, JobStatus::Success);
    let report = report(&store, &job_id).await;
    assert_eq!(
        (report.metrics.total_pages, report.metrics.pages_processed),
        (3, 3)
    );
    assert_eq!(report.pages.len(), 3);
    // The first aggregator may have been killed between recording a result
    // and acknowledging it: that result comes again after the results' ack
    // wait (30 s), and the second aggregator must take it as the duplicate
    // it is.
    let results_ack_wait = TopologyConfig::default().results.ack_wait;
    assert_queues_drained_within(&js, results_ack_wait + Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_publishes_and_results_do_not_double_count() {
    let Setup {
        _serial,
        nats,
        js,
        store,
        ..
    } = Setup::new().await;
    let bytes = Bytes::from(std::fs::read(root().join("examples/welcome.pdf")).unwrap());
    let options = pagefleet_ingest::SubmitOptions {
        job_id: Some("same-job".into()),
        ..submit_options()
    };
    // The same submission twice (a client retrying): one document job.
    for _ in 0..2 {
        pagefleet_ingest::submit(&js, &store, "welcome.pdf", bytes.clone(), &options)
            .await
            .unwrap();
    }
    assert_eq!(stream_len(&js, names::DOCS_STREAM).await, 1);
    let stages = in_process(&nats.url, store.clone(), |_| {}).await;
    let state = wait_final(&js, "same-job", TIMEOUT).await;
    assert_eq!(state.status, JobStatus::Success);
    let before = report(&store, "same-job").await;

    // A second result for page 1 (two workers both finished it), under a
    // message id of its own so that JetStream cannot drop it: the aggregator must.
    // (The page's stored result went once the job was assembled: the
    // duplicate is made from the report.)
    let entry = &before.pages[0];
    let page = pagefleet_schemas::messages::PageResult {
        v: SCHEMA_VERSION,
        job_id: "same-job".into(),
        page: 1,
        worker: "another-worker".into(),
        queue_wait_ms: 0,
        deliveries: 1,
        scale: entry.scale.unwrap_or(1.0),
        ocr: entry.ocr.clone().unwrap(),
    };
    let publish = async_nats::jetstream::message::PublishMessage::build()
        .payload(ResultMessage::Page(page).encode().into())
        .message_id("another-id");
    js.send_publish(names::result_subject("same-job", 1), publish)
        .await
        .unwrap()
        .await
        .unwrap();
    assert_queues_drained(&js).await;

    let after = report(&store, "same-job").await;
    assert_eq!(after.metrics.total_words, before.metrics.total_words);
    assert_eq!(after.pages.len(), 1);
    // The late result left no page result behind.
    let prefix = object_store::path::Path::from(names::keys::page_results("same-job"));
    let left: Vec<_> = store.list(Some(&prefix)).collect().await;
    assert!(left.is_empty(), "{left:?}");
    // One completion event, whatever was repeated.
    let events = js.get_stream(names::EVENTS_STREAM).await.unwrap();
    let completed = events
        .info_with_subjects(names::event_subject("same-job", "completed"))
        .await
        .unwrap()
        .next()
        .await
        .map(|r| r.unwrap().1)
        .unwrap_or(0);
    assert_eq!(completed, 1);
    stages.stop().await;
}

/// The quick-start page rendered to PNG.
fn welcome_png() -> Vec<u8> {
    let rasterizer =
        pagefleet_rasterizer::Rasterizer::new(&common::pipeline::home().join("lib/libpdfium.so"))
            .unwrap();
    let bytes = std::fs::read(root().join("examples/welcome.pdf")).unwrap();
    let mut png = Vec::new();
    rasterizer
        .pages(&bytes, &Default::default(), |page| {
            let page = page.map_err(|e| e.to_string())?;
            page.image
                .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
                .map_err(|e| e.to_string())
        })
        .unwrap();
    png
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_document_fails_its_job_alone() {
    let Setup {
        _serial,
        nats,
        js,
        store,
        ..
    } = Setup::new().await;
    let stages = in_process(&nats.url, store.clone(), |_| {}).await;
    let notes = Bytes::from_static(b"minutes of the meeting, saved as a .pdf by mistake\n");
    let bad = pagefleet_ingest::submit(&js, &store, "notes.pdf", notes, &submit_options())
        .await
        .unwrap();
    // A PDF whose page tree's only kid is the tree itself.
    let looped = Bytes::from_static(
        b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n\
          2 0 obj\n<< /Type /Pages /Kids [2 0 R] /Count 2 >>\nendobj\n\
          trailer\n<< /Root 1 0 R >>\n%%EOF\n",
    );
    let damaged = pagefleet_ingest::submit(&js, &store, "loop.pdf", looped, &submit_options())
        .await
        .unwrap();
    let good = submit_file(&js, &store, &root().join("examples/welcome.pdf")).await;

    let state = wait_final(&js, &bad, TIMEOUT).await;
    assert_eq!(state.status, JobStatus::Failed);
    let error = report(&store, &bad).await.metrics.errors.join("; ");
    assert!(
        error.contains("unsupported document type") && error.contains("text"),
        "{error}"
    );
    // The damaged PDF: one line in words, and no page counted.
    let state = wait_final(&js, &damaged, TIMEOUT).await;
    assert_eq!(state.status, JobStatus::Failed);
    let manifest = state.manifest.as_ref().unwrap();
    assert!(
        manifest.total_pages == 0 && state.pages_recorded() == 0,
        "{state:?}"
    );
    let error = report(&store, &damaged).await.metrics.errors.join("; ");
    assert!(error.contains("page tree"), "{error}");
    assert!(
        !error.contains('\n') && !error.contains("Pdfium"),
        "{error}"
    );
    assert_eq!(
        wait_final(&js, &good, TIMEOUT).await.status,
        JobStatus::Success
    );
    assert_queues_drained(&js).await;
    stages.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_loses_and_duplicates_nothing() {
    let Setup {
        _serial,
        nats,
        dir,
        js,
        store,
    } = Setup::new().await;
    let _rasterizer = StageProcess::spawn(&["rasterizer"], &nats.url, dir.path());
    let _aggregator = StageProcess::spawn(&["aggregator"], &nats.url, dir.path());
    let mut old = StageProcess::spawn(
        &["ocr-worker", "--name", "old", "--slots", "1"],
        &nats.url,
        dir.path(),
    );
    let job_id = submit_file(&js, &store, &samples().join("octave-manual.pdf")).await;

    // SIGTERM once the old worker has finished a page: it stops pulling,
    // finishes what it holds and exits cleanly; a new worker takes the rest.
    wait_first_page(&js, &job_id).await;
    let pid = old.0.id().to_string();
    // The shell's kill: no procps needed on a bare machine.
    let term = format!("kill -TERM {pid}");
    assert!(
        std::process::Command::new("sh")
            .args(["-c", &term])
            .status()
            .unwrap()
            .success()
    );
    let _new = StageProcess::spawn(&["ocr-worker", "--name", "new"], &nats.url, dir.path());
    let exit = tokio::task::spawn_blocking(move || {
        let status = old.0.wait().unwrap();
        std::mem::forget(old);
        status
    })
    .await
    .unwrap();
    assert!(exit.success(), "the old worker exited with {exit}");

    assert_eq!(
        wait_final(&js, &job_id, TIMEOUT).await.status,
        JobStatus::Success
    );
    let report = report(&store, &job_id).await;
    assert_eq!(
        report.pages.iter().map(|p| p.page).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(
        report.metrics.redeliveries, 0,
        "nothing handed back on a polite stop"
    );
    assert!(
        report
            .metrics
            .ocr_rounds_per_worker
            .get("old")
            .is_some_and(|&n| n >= 1)
    );
    assert_queues_drained(&js).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_through_a_real_s3_server() {
    let Setup {
        _serial,
        nats,
        dir,
        js,
        ..
    } = Setup::new().await;
    let (s3, _stages) = s3_pipeline(&nats.url).await;
    // The stages keep everything under the prefix "pagefleet" of the bucket.
    let store = s3.store("pagefleet");
    let job_id = submit_file(&js, &store, &samples().join("ltnews34.pdf")).await;
    assert_eq!(
        wait_final(&js, &job_id, TIMEOUT).await.status,
        JobStatus::Success
    );

    let report = report(&store, &job_id).await;
    let mut total = Score::default();
    for page in &report.pages {
        let truth =
            std::fs::read_to_string(samples().join(format!("truth/ltnews34/{:03}.txt", page.page)))
                .unwrap();
        total.add(Score::page(&page.ocr.as_ref().unwrap().text(), &truth));
    }
    assert!(
        total.cer() <= 0.05 && total.bow_f1() >= 0.95,
        "CER {} F1 {}",
        total.cer(),
        total.bow_f1()
    );
    // Page images and outputs are objects of the bucket; nothing went to a local folder.
    for key in [
        names::keys::page_image(&job_id, 2),
        names::keys::output(&job_id, pagefleet_schemas::Format::Md),
    ] {
        assert!(
            store::get(store.as_ref(), &key).await.is_ok(),
            "{key} missing from S3"
        );
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    assert_queues_drained(&js).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_setup_creates_the_topology() {
    let _serial = SERIAL.lock().await;
    let nats = NatsServer::start();
    let status = common::pagefleet_command()
        .args(["nats", "setup", "--nats", &nats.url])
        .status()
        .unwrap();
    assert!(status.success());
    let js = jetstream::new(async_nats::connect(&nats.url).await.unwrap());
    for stream in [
        names::DOCS_STREAM,
        names::PAGES_STREAM,
        names::RESULTS_STREAM,
        names::EVENTS_STREAM,
        names::ADVISORIES_STREAM,
    ] {
        assert!(js.get_stream(stream).await.is_ok(), "{stream} missing");
    }
    assert!(js.get_key_value(names::JOBS_BUCKET).await.is_ok());
    // Idempotent: a second run changes nothing and succeeds.
    let again = common::pagefleet_command()
        .args(["nats", "setup", "--nats", &nats.url])
        .status()
        .unwrap();
    assert!(again.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_and_metrics_answer_while_every_slot_is_busy() {
    use common::pipeline::{free_tcp_port, http_get};
    let Setup {
        _serial,
        mut nats,
        dir,
        js,
        store,
    } = Setup::new().await;
    let port = free_tcp_port();
    let addr = format!("127.0.0.1:{port}");
    let _rasterizer = StageProcess::spawn(&["rasterizer"], &nats.url, dir.path());
    let _worker = StageProcess::spawn(
        &["ocr-worker", "--slots", "1", "--health-addr", &addr],
        &nats.url,
        dir.path(),
    );
    let get = |path: &'static str| tokio::task::spawn_blocking(move || http_get(port, path));

    // Ready once the models are warm.
    let start = Instant::now();
    loop {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            && get("/readyz").await.unwrap().0 == 200
        {
            break;
        }
        assert!(start.elapsed() < TIMEOUT, "the worker never became ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Keep the only slot busy with a dense document, and ask for liveness all along.
    submit_file(&js, &store, &samples().join("ltnews34.pdf")).await;
    let pages = js.get_stream(names::PAGES_STREAM).await.unwrap();
    let start = Instant::now();
    loop {
        let consumer: Result<jetstream::consumer::PullConsumer, _> = pages
            .get_consumer(&names::worker_consumer("fast", names::Lane::Small))
            .await;
        if let Ok(mut c) = consumer
            && c.info().await.unwrap().num_ack_pending > 0
        {
            break;
        }
        assert!(start.elapsed() < TIMEOUT, "the worker never took a page");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut worst = Duration::ZERO;
    for _ in 0..40 {
        let asked = Instant::now();
        let (status, body) = get("/healthz").await.unwrap();
        worst = worst.max(asked.elapsed());
        assert_eq!((status, body.as_str()), (200, "ok\n"));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("/healthz while the slot is busy: slowest answer {worst:?}");
    assert!(worst < Duration::from_secs(1), "liveness took {worst:?}");

    // The page that kept the slot busy shows in the metrics.
    let start = Instant::now();
    let metrics = loop {
        let (status, body) = get("/metrics").await.unwrap();
        assert_eq!(status, 200);
        // Shown at 0 from the start: wait for the page to count.
        let processed = body
            .lines()
            .find_map(|l| l.strip_prefix("pagefleet_pages_processed_total{profile=\"fast\"} "))
            .and_then(|v| v.trim().parse::<f64>().ok());
        if processed.is_some_and(|n| n >= 1.0) {
            break body;
        }
        assert!(start.elapsed() < TIMEOUT, "no page in the metrics:\n{body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for series in [
        "pagefleet_step_seconds_bucket{step=\"recognize\"",
        "pagefleet_stage_seconds_count{stage=\"ocr_page\"}",
        "pagefleet_pages_in_flight",
    ] {
        assert!(
            metrics.contains(series),
            "{series} missing from:\n{metrics}"
        );
    }

    // The scrape says the stage is ready, as /readyz does.
    assert!(
        metrics.contains("pagefleet_ready{stage=\"ocr-worker\"} 1"),
        "{metrics}"
    );

    // NATS goes away: readiness says so, liveness does not care.
    nats.stop();
    let start = Instant::now();
    loop {
        let (status, body) = get("/readyz").await.unwrap();
        if status == 503 {
            assert!(body.contains("nats"), "{body}");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "readiness never noticed NATS was gone"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(get("/healthz").await.unwrap().0, 200);
    let (_, metrics) = get("/metrics").await.unwrap();
    assert!(
        metrics.contains("pagefleet_ready{stage=\"ocr-worker\"} 0"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_passes_a_healthy_setup_and_names_what_is_broken() {
    let Setup {
        _serial,
        mut nats,
        dir,
        ..
    } = Setup::new().await;
    let doctor = |home: &Path, url: &str| {
        let out = common::pagefleet_command()
            .arg("--home")
            .arg(home)
            .args(["doctor", "--nats", url, "--store"])
            .arg(dir.path())
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let home = common::pipeline::home();
    let (ok, report) = doctor(&home, &nats.url);
    assert!(ok, "{report}");
    assert!(
        report.contains("ok    consumer") || report.contains("ok    stream PAGEFLEET_PAGES"),
        "{report}"
    );

    // A model file altered after installation.
    let broken = tempfile::tempdir().unwrap();
    let sums = std::fs::read_to_string(home.join("SHA256SUMS")).unwrap();
    std::fs::copy(home.join("SHA256SUMS"), broken.path().join("SHA256SUMS")).unwrap();
    let victim = "models/ppocrv6/tiny/det/det.onnx";
    for rel in sums
        .lines()
        .filter_map(|l| l.split_once("  ").map(|(_, p)| p))
    {
        let target = broken.path().join(rel);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        if rel == victim {
            let mut bytes = std::fs::read(home.join(rel)).unwrap();
            let mid = bytes.len() / 2;
            bytes[mid] ^= 0xff;
            std::fs::write(&target, bytes).unwrap();
        } else {
            std::os::unix::fs::symlink(home.join(rel), &target).unwrap();
        }
    }
    let (ok, report) = doctor(broken.path(), &nats.url);
    assert!(!ok);
    assert!(
        report.contains("FAIL  runtime files") && report.contains(victim),
        "{report}"
    );

    // NATS down.
    let url = nats.url.clone();
    nats.stop();
    let (ok, report) = doctor(&home, &url);
    assert!(!ok);
    assert!(
        report.contains("FAIL  nats") && report.contains("cannot connect"),
        "{report}"
    );
}

/// A SeaweedFS server and the rasterizer, one OCR worker and the aggregator
/// as processes storing in it, with default settings.
async fn s3_pipeline(nats: &str) -> (common::pipeline::SeaweedFs, [StageProcess; 3]) {
    let s3 = tokio::task::spawn_blocking(common::pipeline::SeaweedFs::start)
        .await
        .unwrap();
    let env = s3.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let stages = [
        StageProcess::spawn_with(&["rasterizer"], nats, &[], &env),
        StageProcess::spawn_with(&["ocr-worker"], nats, &[], &env),
        StageProcess::spawn_with(&["aggregator"], nats, &[], &env),
    ];
    (s3, stages)
}

/// Submits every sample document (ten pages in all); their job ids.
async fn submit_samples(js: &jetstream::Context, store: &store::Store) -> Vec<String> {
    let mut jobs = Vec::new();
    for name in [
        "octave-manual.pdf",
        "texlive-guide-pl.pdf",
        "ltnews34.pdf",
        "gnuplot-manual.pdf",
    ] {
        jobs.push(submit_file(js, store, &samples().join(name)).await);
    }
    jobs
}

/// Waits until the HTTP endpoint answers 200 on `path`.
/// An `ocr-worker` process with `flags` and its probes on a free port,
/// once it answers ready; with that port.
async fn ready_worker(flags: &[&str], nats: &str, dir: &Path) -> (StageProcess, u16) {
    let port = common::pipeline::free_tcp_port();
    let addr = format!("127.0.0.1:{port}");
    let mut args = vec!["ocr-worker"];
    args.extend_from_slice(flags);
    args.extend(["--health-addr", &addr]);
    let worker = StageProcess::spawn(&args, nats, dir);
    wait_http_ok(port, "/readyz", "the worker").await;
    (worker, port)
}

async fn wait_http_ok(port: u16, path: &'static str, what: &str) {
    let start = Instant::now();
    loop {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            && tokio::task::spawn_blocking(move || common::pipeline::http_get(port, path))
                .await
                .unwrap()
                .0
                == 200
        {
            return;
        }
        assert!(start.elapsed() < TIMEOUT, "{what} never answered {path}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The sum of a counter's series in a Prometheus text exposition.
fn counter_sum(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter(|l| l[name.len()..].starts_with([' ', '{']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .fold(0.0, |a, b| a + b)
}

/// A page nine times the size of a dense sample page: uncancelled, reading
/// it takes over 20 s on two cores.
fn huge_png() -> Vec<u8> {
    let rasterizer =
        pagefleet_rasterizer::Rasterizer::new(&common::pipeline::home().join("lib/libpdfium.so"))
            .unwrap();
    let bytes = std::fs::read(samples().join("ltnews34.pdf")).unwrap();
    let mut first = None;
    rasterizer
        .pages(&bytes, &Default::default(), |page| {
            let page = page.map_err(|e| e.to_string())?;
            first.get_or_insert(page.image);
            Ok(())
        })
        .unwrap();
    let page = first.unwrap();
    let (w, h) = page.dimensions();
    let mut huge = image::RgbImage::from_pixel(w * 3, h * 3, image::Rgb([255, 255, 255]));
    for i in 0..3 {
        for j in 0..3 {
            image::imageops::replace(&mut huge, &page, i64::from(i * w), i64::from(j * h));
        }
    }
    let mut png = Vec::new();
    huge.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    png
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_past_its_deadline_is_stopped_and_its_slot_reads_the_next() {
    use common::pipeline::http_get;
    let Setup {
        _serial,
        nats,
        dir,
        js,
        store,
    } = Setup::new().await;
    let huge = tokio::task::spawn_blocking(huge_png).await.unwrap();
    store::put(store.as_ref(), "pages/huge.png", huge)
        .await
        .unwrap();
    store::put(store.as_ref(), "pages/small.png", welcome_png())
        .await
        .unwrap();
    // One slot, detection at full size: the huge page runs long in inference
    // itself, not in storage.
    let (_worker, port) = ready_worker(
        &[
            "--slots",
            "1",
            "--page-deadline",
            "3",
            "--det-max-side",
            "8000",
            "--max-pixels",
            "40000000",
        ],
        &nats.url,
        dir.path(),
    )
    .await;
    let _aggregator = StageProcess::spawn(&["aggregator"], &nats.url, dir.path());

    let started = Instant::now();
    publish_pages(
        &js,
        "deadline",
        &["pages/huge.png".into(), "pages/small.png".into()],
    )
    .await;
    let state = wait_final(&js, "deadline", TIMEOUT).await;
    let elapsed = started.elapsed();
    assert_eq!(state.status, JobStatus::PartialSuccess);
    let report = report(&store, "deadline").await;
    let huge = &report.pages[0];
    let error = huge.error.as_deref().unwrap();
    assert!(
        error.contains("deadline of 3 s") && error.contains("stopped"),
        "{error}"
    );
    // Recorded on the first delivery, not after the deliveries ran out.
    assert_eq!(page_records(&js, &state).await[0].deliveries, 1);
    let small = report.pages[1].ocr.as_ref().unwrap();
    assert!(small.counts.words > 20, "{:?}", small.counts);
    // The small page waited behind the huge one in the only slot. Had the
    // run not been stopped, it would have waited for all of it (over 20 s);
    // stopped, the job takes the deadline, the decoding and the small page.
    let small_ms = small.timings.total_ms;
    eprintln!("deadline job: {elapsed:?}, the small page read in {small_ms:.0} ms");
    assert!(
        elapsed < Duration::from_secs(3 + 6) + Duration::from_secs_f64(small_ms / 1000.0),
        "the job took {elapsed:?}: the slot was not freed at the deadline"
    );
    let metrics = tokio::task::spawn_blocking(move || http_get(port, "/metrics"))
        .await
        .unwrap()
        .1;
    assert_eq!(counter_sum(&metrics, "pagefleet_page_deadlines_total"), 1.0);
    assert_queues_drained(&js).await;
}

/// Submits a document job for a source already in the store.
async fn publish_document(js: &jetstream::Context, job_id: &str, key: &str) {
    let job = pagefleet_schemas::messages::DocumentJob {
        v: SCHEMA_VERSION,
        job_id: job_id.into(),
        filename: "during-outage.pdf".into(),
        source_key: key.into(),
        file_size_bytes: 1,
        dpi: 200.0,
        profile: "fast".into(),
        max_pixels: 8_000_000,
        submitted_at_ms: now_ms(),
        max_pages: 0,
        text_layer: pagefleet_schemas::TextLayer::Ocr,
        language: "auto".into(),
    };
    js.publish(names::doc_subject(job_id), job.encode().into())
        .await
        .unwrap()
        .await
        .unwrap();
}

/// A two-minute store outage with pages in hand, default settings, every
/// stage its own process: no page fails, every job finishes, and each
/// stage logs the outage in a few lines (when it starts and when it ends),
/// not once per retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_120_s_store_outage_mid_job_fails_no_page_and_is_a_few_lines() {
    let Setup {
        _serial, nats, js, ..
    } = Setup::new().await;
    let mut s3 = tokio::task::spawn_blocking(common::pipeline::SeaweedFs::start)
        .await
        .unwrap();
    let store = s3.store("pagefleet");
    let env = s3.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    // Each with its probes, for the retry counter.
    let probes: Vec<u16> = (0..3).map(|_| common::pipeline::free_tcp_port()).collect();
    let stages: Vec<_> = ["rasterizer", "ocr-worker", "aggregator"]
        .into_iter()
        .zip(&probes)
        .map(|(stage, port)| {
            let addr = format!("127.0.0.1:{port}");
            (
                stage,
                StageProcess::spawn_logged_with(&[stage, "--health-addr", &addr], &nats.url, &env),
            )
        })
        .collect();
    // A document for the rasterizer to read while the store is down.
    let later = std::fs::read(samples().join("ltnews34.pdf")).unwrap();
    store::put(store.as_ref(), "sources/later.pdf", later)
        .await
        .unwrap();
    let mut jobs = submit_samples(&js, &store).await;
    wait_first_page(&js, &jobs[0]).await;
    let before: Vec<usize> = stages
        .iter()
        .map(|(_, (_, log))| log.lock().unwrap().lines().count())
        .collect();

    // The store goes down for 120 s with pages in hand: workers cannot read
    // page images, the aggregator cannot store results, the rasterizer
    // cannot read a new document.
    s3.stop();
    publish_document(&js, "during-outage", "sources/later.pdf").await;
    jobs.push("during-outage".into());
    tokio::time::sleep(Duration::from_secs(120)).await;
    let s3 = tokio::task::spawn_blocking(move || {
        s3.start_again();
        s3
    })
    .await
    .unwrap();

    let mut pages = 0;
    for job_id in &jobs {
        let state = wait_final(&js, job_id, TIMEOUT).await;
        assert!(state.failures.is_empty(), "{job_id}: {:?}", state.failures);
        assert_eq!(state.status, JobStatus::Success, "{job_id}");
        pages += state.pages_recorded();
    }
    assert!(pages >= 10, "{pages} pages");
    assert_queues_drained(&js).await;
    for ((stage, _), port) in stages.iter().zip(&probes) {
        let port = *port;
        let metrics =
            tokio::task::spawn_blocking(move || common::pipeline::http_get(port, "/metrics"))
                .await
                .unwrap()
                .1;
        assert!(
            counter_sum(&metrics, "pagefleet_transient_retries_total") > 0.0,
            "{stage} counted no retries:\n{metrics}"
        );
    }
    for ((stage, (_, log)), before) in stages.iter().zip(before) {
        let log = log.lock().unwrap();
        let during: Vec<&str> = log
            .lines()
            .skip(before)
            .filter(|l| l.contains("WARN") || l.contains("ERROR") || l.contains("fault"))
            .collect();
        eprintln!("{stage} during the outage:\n{}", during.join("\n"));
        assert!(
            during
                .iter()
                .any(|l| l.contains("wait for a transient fault")),
            "{stage} did not log the outage"
        );
        assert!(
            during.len() <= 10,
            "{stage} logged {} warnings about the outage:\n{}",
            during.len(),
            during.join("\n")
        );
        assert!(
            !log.contains("ERROR") && !log.contains("object_store::client::retry"),
            "{stage}:\n{log}"
        );
    }
    drop(stages);
    drop(s3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_restart_keeps_the_worker_list_and_counts_pages_read_twice() {
    use common::pipeline::{free_tcp_port, http_get};
    let Setup {
        _serial,
        mut nats,
        dir,
        js,
        store,
    } = Setup::new().await;
    let api = free_tcp_port();
    let probes = free_tcp_port();
    let probe_addr = format!("127.0.0.1:{probes}");
    let api_addr = format!("127.0.0.1:{api}");
    let (_worker, worker_log) = StageProcess::spawn_logged(
        &[
            "ocr-worker",
            "--page-ack-wait",
            "5",
            "--health-addr",
            &probe_addr,
        ],
        &nats.url,
        dir.path(),
    );
    let _stages = [
        StageProcess::spawn(&["rasterizer"], &nats.url, dir.path()),
        StageProcess::spawn(&["aggregator"], &nats.url, dir.path()),
        StageProcess::spawn(&["ingest", "--http-addr", &api_addr], &nats.url, dir.path()),
    ];
    wait_http_ok(probes, "/readyz", "the worker").await;
    let jobs = submit_samples(&js, &store).await;
    wait_first_page(&js, &jobs[0]).await;
    // Every document is rasterized and its ack settled first: an ack the
    // server took just before it was killed can be lost with its unflushed
    // consumer state, and that document then waits out its 60 s ack wait,
    // longer than the queues are given to drain below. This test is about
    // the worker.
    let start = Instant::now();
    while stream_len(&js, names::DOCS_STREAM).await > 0 {
        assert!(start.elapsed() < TIMEOUT, "documents not rasterized");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    // nats-server restarts with its store and port: the streams, consumers
    // and buckets are back from disk, the stages reconnect. It stays down
    // past the page ack wait, so the pages in hand are delivered again.
    nats.stop();
    tokio::time::sleep(Duration::from_secs(7)).await;
    nats.start_again();
    let restarted = Instant::now();
    let listed = loop {
        let (status, body) = tokio::task::spawn_blocking(move || http_get(api, "/workers/status"))
            .await
            .unwrap();
        if status == 200 {
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            if v["healthy_workers"] == 1 {
                break restarted.elapsed();
            }
        }
        assert!(
            restarted.elapsed() < Duration::from_secs(10),
            "no worker listed 10 s after the restart: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    eprintln!("worker listed again {listed:?} after the restart");

    for job_id in &jobs {
        let state = wait_final(&js, job_id, TIMEOUT).await;
        assert_eq!(state.status, JobStatus::Success, "{job_id}");
    }
    // Once every page job is settled and every result recorded, each page
    // the worker read again is counted in its job.
    assert_queues_drained(&js).await;
    let metrics = tokio::task::spawn_blocking(move || http_get(probes, "/metrics"))
        .await
        .unwrap()
        .1;
    let read_again = counter_sum(&metrics, "pagefleet_page_redeliveries_total");
    let mut recorded_again = 0;
    for job_id in &jobs {
        let state = wait_final(&js, job_id, TIMEOUT).await;
        recorded_again += page_records(&js, &state)
            .await
            .iter()
            .map(|p| p.deliveries.saturating_sub(1))
            .sum::<u64>();
    }
    eprintln!("pages read again: {read_again}, counted in jobs: {recorded_again}");
    assert_eq!(read_again, recorded_again as f64);

    // The worker's consumers deleted under it while it is idle, fetching:
    // it sets them up again, and the outage is one line when it starts and
    // one when it ends, not a line per failed fetch.
    let before = worker_log.lock().unwrap().len();
    let pages = js.get_stream(names::PAGES_STREAM).await.unwrap();
    for lane in names::Lane::ALL {
        pages
            .delete_consumer(&names::worker_consumer("fast", lane))
            .await
            .unwrap();
    }
    let deleted = Instant::now();
    let log = loop {
        let log = worker_log.lock().unwrap()[before..].to_owned();
        if log.contains("page job consumer back after") {
            break log;
        }
        assert!(
            deleted.elapsed() < Duration::from_secs(30),
            "the worker never said its consumer was back:\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let lost = log.matches("lost the page job consumer").count();
    let back = log.matches("page job consumer back after").count();
    assert_eq!((lost, back), (1, 1), "{log}");
    for lane in names::Lane::ALL {
        let name = names::worker_consumer("fast", lane);
        assert!(pages.consumer_info(&name).await.is_ok(), "{name} is gone");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_upgraded_over_old_state_sets_it_right_and_keeps_it() {
    use async_nats::jetstream::{consumer, kv, stream::StorageType};
    let Setup {
        _serial,
        nats,
        js,
        store,
        ..
    } = Setup::new().await;
    // What an older version left: one page consumer per profile over all
    // its pages, and a memory-backed workers bucket (made last, so that
    // only the stages' start can replace it).
    let pages = js.get_stream(names::PAGES_STREAM).await.unwrap();
    pages
        .create_consumer(consumer::pull::Config {
            durable_name: Some("ocr-worker-fast".into()),
            filter_subject: "pagefleet.pages.fast.>".into(),
            ack_policy: consumer::AckPolicy::Explicit,
            ..Default::default()
        })
        .await
        .unwrap();
    js.delete_key_value(names::WORKERS_BUCKET).await.unwrap();
    js.create_key_value(kv::Config {
        bucket: names::WORKERS_BUCKET.into(),
        storage: StorageType::Memory,
        ..Default::default()
    })
    .await
    .unwrap();
    // A page of a job that has ended waits in the queue (its ack was lost).
    let ended = JobState {
        status: JobStatus::Cancelled,
        ..JobState::new("ended-job", now_ms())
    };
    let jobs = js.get_key_value(names::JOBS_BUCKET).await.unwrap();
    jobs.put("ended-job", ended.encode().into()).await.unwrap();
    store::put(store.as_ref(), "pages/ended.png", welcome_png())
        .await
        .unwrap();
    publish_pages(&js, "ended-job", &["pages/ended.png".into()]).await;

    let stages = in_process(&nats.url, store.clone(), |config| {
        config.worker.as_mut().unwrap().config.heartbeat_interval = Duration::from_millis(500);
    })
    .await;
    // The bucket survives a restart now; the old consumer takes the bulk
    // lane only, beside the small-job lane's.
    let workers = js
        .get_stream(format!("KV_{}", names::WORKERS_BUCKET))
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .config
        .clone();
    assert_eq!(workers.storage, StorageType::File);
    let filters = |pages: async_nats::jetstream::stream::Stream| async move {
        let mut filters = Vec::new();
        for lane in names::Lane::ALL {
            let name = names::worker_consumer("fast", lane);
            let Ok(mut consumer) = pages.get_consumer::<consumer::pull::Config>(&name).await else {
                return None;
            };
            filters.push(consumer.info().await.ok()?.config.filter_subject.clone());
        }
        Some(filters)
    };
    let lanes: Vec<String> = names::Lane::ALL
        .into_iter()
        .map(|lane| names::pages_of_lane("fast", lane))
        .collect();
    let start = Instant::now();
    while filters(pages.clone()).await.as_ref() != Some(&lanes) {
        assert!(
            start.elapsed() < TIMEOUT,
            "the page consumers are {:?}",
            filters(pages.clone()).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The ended job's page is dropped unread: no result, nothing recorded.
    let start = Instant::now();
    while stream_len(&js, names::PAGES_STREAM).await > 0 {
        assert!(
            start.elapsed() < TIMEOUT,
            "the ended job's page stayed queued"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let key = names::keys::page_result("ended-job", 1);
    assert!(
        store::get(store.as_ref(), &key).await.is_err(),
        "{key} was read"
    );
    let state = JobState::decode(&jobs.get("ended-job").await.unwrap().unwrap()).unwrap();
    assert_eq!(state.pages_recorded(), 0, "{state:?}");

    // The workers bucket deleted under a running worker comes back with its
    // heartbeat.
    let beating = |js: jetstream::Context| async move {
        let Ok(bucket) = js.get_key_value(names::WORKERS_BUCKET).await else {
            return false;
        };
        let Ok(keys) = bucket.keys().await else {
            return false;
        };
        keys.count().await > 0
    };
    let start = Instant::now();
    while !beating(js.clone()).await {
        assert!(start.elapsed() < TIMEOUT, "no heartbeat");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    js.delete_key_value(names::WORKERS_BUCKET).await.unwrap();
    let deleted = Instant::now();
    while !beating(js.clone()).await {
        assert!(
            deleted.elapsed() < Duration::from_secs(10),
            "the workers bucket did not come back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "workers bucket back {:?} after its deletion",
        deleted.elapsed()
    );
    stages.stop().await;
}

/// An idle worker, a `pagefleet ocr-worker` process, takes a page published
/// to either lane at once. Its idle wait is set to 60 s (`--pull-wait`): a
/// worker whose wait sat in one lane's pull, as before, left a page of the
/// other lane there for 30 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_worker_takes_a_page_of_either_lane_at_once() {
    let Setup {
        _serial,
        nats,
        dir,
        js,
        store,
    } = Setup::new().await;
    store::put(store.as_ref(), "pages/welcome.png", welcome_png())
        .await
        .unwrap();
    let (_worker, _) = ready_worker(&["--pull-wait", "60"], &nats.url, dir.path()).await;
    let _aggregator = StageProcess::spawn(&["aggregator"], &nats.url, dir.path());
    // Both lanes, each twice, in both orders: whichever lane a wait could
    // sit in, the other is published to while it waits.
    for (i, lane) in [
        names::Lane::Small,
        names::Lane::Bulk,
        names::Lane::Bulk,
        names::Lane::Small,
    ]
    .into_iter()
    .enumerate()
    {
        // The worker has found both lanes empty and waits.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let job_id = format!("idle-{i}");
        publish_pages_on(&js, &job_id, &["pages/welcome.png".into()], lane).await;
        // A page of the welcome document takes about a second to read.
        let state = wait_final(&js, &job_id, Duration::from_secs(15)).await;
        assert_eq!(state.status, JobStatus::Success, "{job_id}");
    }
    assert_queues_drained(&js).await;
}

/// Eight hands record the same 50 pages at once, as several aggregators
/// and repeated deliveries would: each page is counted once, its record and
/// the job's counters written in one atomic batch, and the bytes the jobs
/// bucket holds and has written grow with the pages, not their square.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_recorded_by_many_hands_at_once_are_counted_once() {
    use pagefleet_schemas::messages::PageRecord;
    use pagefleet_stagekit::state::{PageRecorded, record_page};
    let Setup {
        _serial,
        nats: _nats,
        js,
        ..
    } = Setup::new().await;
    let kv = js.get_key_value(names::JOBS_BUCKET).await.unwrap();
    const PAGES: u32 = 50;
    let mut hands = Vec::new();
    for hand in 0..8u32 {
        let (js, kv) = (js.clone(), kv.clone());
        hands.push(tokio::spawn(async move {
            let mut new = Vec::new();
            // Each hand in its own order, so that they meet on every page.
            for n in 0..PAGES {
                let page = (n * 7 + hand * 13) % PAGES + 1;
                let record = PageRecord {
                    ok: !page.is_multiple_of(10),
                    worker: format!("hand-{hand}"),
                    deliveries: 1,
                    processing_ms: 1.0,
                    error: page
                        .is_multiple_of(10)
                        .then(|| format!("page {page} is broken")),
                };
                let recorded = record_page(&js, &kv, "many-hands", page, &record, |s| {
                    s.count_page(page, record.error.as_deref());
                    true
                })
                .await
                .unwrap();
                if let PageRecorded::New(_) = recorded {
                    new.push(page);
                }
            }
            new
        }));
    }
    let mut counted = Vec::new();
    for hand in hands {
        counted.extend(hand.await.unwrap());
    }
    counted.sort_unstable();
    assert_eq!(
        counted,
        (1..=PAGES).collect::<Vec<_>>(),
        "each page new once"
    );
    let state = JobState::decode(&kv.get("many-hands").await.unwrap().unwrap()).unwrap();
    assert_eq!(state.counts(), (45, 5));
    let failed: Vec<u32> = state.failures.iter().map(|f| f.page).collect();
    assert_eq!(failed, [10, 20, 30, 40, 50]);
    // Every page has its record; the writes were a record and a state of
    // a few hundred bytes each per page.
    let mut stream = js
        .get_stream(format!("KV_{}", names::JOBS_BUCKET))
        .await
        .unwrap();
    let info = stream.info().await.unwrap();
    assert_eq!(info.state.messages, u64::from(PAGES) + 1);
    assert_eq!(info.state.last_sequence, 2 * u64::from(PAGES));
    assert!(
        info.state.bytes < 300 * u64::from(PAGES),
        "{} bytes",
        info.state.bytes
    );
}
