//! pagefleet on a three-node JetStream cluster, as an operator runs it: three
//! nats-server processes on the loopback interface, `pagefleet nats setup
//! --replicas 3`, every stage a separate process given the three URLs. The
//! page stream's leader is SIGKILLed mid-job and comes back, then two of the
//! three nodes are down for 10 s (no quorum): every page is read and counted
//! once, none fails, the jobs finish soon after the quorum is back, no stage
//! exits, and the stages say so in a few lines rather than one per retry.

#![allow(clippy::unwrap_used)] // helpers outside #[test] fns fail loudly by design

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use async_nats::jetstream;
use common::pipeline::{StageProcess, free_tcp_port, home, http_get, local_store, page_records};
use common::{root, samples};
use pagefleet_aggregator::report::JobReport;
use pagefleet_schemas::messages::{JobState, JobStatus, Message};
use pagefleet_schemas::names;
use pagefleet_stagekit::store;

/// One nats-server of the cluster, its store kept across restarts.
struct Node {
    name: String,
    port: u16,
    cluster_port: u16,
    store: tempfile::TempDir,
    child: Option<Child>,
}

/// Three nodes routed to each other, killed on drop.
struct Cluster {
    nodes: Vec<Node>,
}

impl Cluster {
    fn start() -> Self {
        let nodes = (1..=3)
            .map(|i| Node {
                name: format!("n{i}"),
                port: free_tcp_port(),
                cluster_port: free_tcp_port(),
                store: tempfile::tempdir().unwrap(),
                child: None,
            })
            .collect();
        let mut cluster = Self { nodes };
        for i in 0..3 {
            cluster.start_node(i);
        }
        cluster
    }

    /// The client URLs of every node, as stages are given them.
    fn urls(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("nats://127.0.0.1:{}", n.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn start_node(&mut self, i: usize) {
        let routes = self
            .nodes
            .iter()
            .map(|n| format!("nats://127.0.0.1:{}", n.cluster_port))
            .collect::<Vec<_>>()
            .join(",");
        let node = &mut self.nodes[i];
        let mut child = Command::new(home().join("bin/nats-server"))
            .args(["--jetstream", "--addr", "127.0.0.1", "--port"])
            .arg(node.port.to_string())
            .args(["--server_name", &node.name, "--cluster_name", "pagefleet"])
            .arg("--cluster")
            .arg(format!("nats://127.0.0.1:{}", node.cluster_port))
            .args(["--routes", &routes, "--store_dir"])
            .arg(node.store.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start nats-server (run scripts/bootstrap)");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        loop {
            let line = lines.next().expect("nats-server exited").unwrap();
            if line.contains("Listening for client connections") {
                break;
            }
        }
        std::thread::spawn(move || for _ in lines {});
        node.child = Some(child);
    }

    fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// A cluster with pagefleet's topology in three replicas, its URLs, and
    /// a client of all its nodes.
    async fn set_up() -> (Self, String, jetstream::Context) {
        let cluster = Self::start();
        let urls = cluster.urls();
        tokio::task::spawn_blocking({
            let urls = urls.clone();
            move || set_up(&urls)
        })
        .await
        .unwrap();
        let addrs: Vec<async_nats::ServerAddr> =
            urls.split(',').map(|u| u.parse().unwrap()).collect();
        let client = async_nats::ConnectOptions::new()
            .connect(addrs)
            .await
            .unwrap();
        (cluster, urls, jetstream::new(client))
    }

    fn index_of(&self, name: &str) -> usize {
        self.nodes.iter().position(|n| n.name == name).unwrap()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
    }
}

/// Runs `pagefleet nats setup --replicas 3` until the cluster has elected
/// its leaders and takes it.
fn set_up(urls: &str) {
    let start = Instant::now();
    loop {
        let out = common::pagefleet_command()
            .args(["nats", "setup", "--replicas", "3", "--nats", urls])
            .env("RUST_LOG", "warn")
            .output()
            .unwrap();
        if out.status.success() {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "nats setup never succeeded: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The jobs' states; a job whose state cannot be read now (an election, no
/// quorum) is left out.
async fn states(js: &jetstream::Context, jobs: &[String]) -> Vec<JobState> {
    let Ok(kv) = js.get_key_value(names::JOBS_BUCKET).await else {
        return Vec::new();
    };
    let mut states = Vec::new();
    for job_id in jobs {
        if let Ok(Ok(Some(bytes))) =
            tokio::time::timeout(Duration::from_secs(2), kv.get(job_id)).await
        {
            states.push(JobState::decode(&bytes).unwrap());
        }
    }
    states
}

/// Waits until `done` holds of the jobs' states, or panics after `limit`.
async fn wait_for(
    js: &jetstream::Context,
    jobs: &[String],
    limit: Duration,
    what: &str,
    done: impl Fn(&[JobState]) -> bool,
) -> Vec<JobState> {
    let start = Instant::now();
    loop {
        let states = states(js, jobs).await;
        if states.len() == jobs.len() && done(&states) {
            return states;
        }
        assert!(start.elapsed() < limit, "not {what} after {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn pages_read(states: &[JobState]) -> usize {
    states.iter().map(|s| s.pages_recorded() as usize).sum()
}

fn all_final(states: &[JobState]) -> bool {
    states.iter().all(|s| s.status != JobStatus::Running)
}

/// The server name leading a stream.
async fn leader_of(js: &jetstream::Context, stream: &str) -> String {
    let start = Instant::now();
    loop {
        if let Ok(mut s) = js.get_stream(stream).await
            && let Ok(info) = s.info().await
            && let Some(leader) = info.cluster.as_ref().and_then(|c| c.leader.clone())
        {
            return leader;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{stream} has no leader"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn counter_sum(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_killed_and_a_lost_quorum_lose_and_double_nothing() {
    let (mut cluster, urls, js) = Cluster::set_up().await;

    let dir = tempfile::tempdir().unwrap();
    let probes = free_tcp_port();
    let probe_addr = format!("127.0.0.1:{probes}");
    // No --replicas for the stages: they keep the three the setup made.
    let mut stages = vec![
        StageProcess::spawn_logged(
            &["ocr-worker", "--health-addr", &probe_addr],
            &urls,
            dir.path(),
        ),
        StageProcess::spawn_logged(&["rasterizer"], &urls, dir.path()),
        StageProcess::spawn_logged(&["aggregator"], &urls, dir.path()),
    ];
    let start = Instant::now();
    while !tokio::task::spawn_blocking(move || {
        std::net::TcpStream::connect(("127.0.0.1", probes)).is_ok()
            && http_get(probes, "/readyz").0 == 200
    })
    .await
    .unwrap()
    {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "worker not ready"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let store = local_store(dir.path());
    let options = pagefleet_ingest::SubmitOptions {
        dpi: 100.0,
        ..common::pipeline::submit_options()
    };
    let mut jobs = Vec::new();
    // Twenty pages: at about two a second, time enough for the leader's
    // loss and return before the last pages.
    let mut files: Vec<_> = std::fs::read_dir(samples())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pdf"))
        .collect();
    files.sort();
    for name in ["asymptote-manual", "multicol-doc", "tugboat-guide"] {
        files.push(root().join(format!("tests/data/layout/{name}.pdf")));
    }
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(file).unwrap();
        jobs.push(
            pagefleet_ingest::submit(&js, &store, &name, bytes.into(), &options)
                .await
                .unwrap(),
        );
    }
    let limit = Duration::from_secs(120);

    // The page stream's leader is killed once a page is read, and comes
    // back 3 s later.
    let states = wait_for(&js, &jobs, limit, "reading", |s| {
        pages_read(s) >= 1 && s.iter().all(|s| s.manifest.is_some())
    })
    .await;
    let total: usize = states
        .iter()
        .map(|s| s.manifest.as_ref().unwrap().total_pages as usize)
        .sum();
    let leader = cluster.index_of(&leader_of(&js, names::PAGES_STREAM).await);
    eprintln!(
        "killing the page stream's leader {}",
        cluster.nodes[leader].name
    );
    cluster.kill(leader);
    tokio::time::sleep(Duration::from_secs(3)).await;
    cluster.start_node(leader);

    // Two nodes of three down for 10 s, as the last two pages are read:
    // their results wait to be published, and the jobs to be finished.
    // The worker's own count says how far it is: the jobs' states can lag
    // far behind it (the aggregator may still wait out the leader's loss)
    // and then catch up all at once, between two looks at them.
    let start = Instant::now();
    loop {
        let metrics = tokio::task::spawn_blocking(move || http_get(probes, "/metrics").1)
            .await
            .unwrap();
        let read = counter_sum(&metrics, "pagefleet_pages_processed_total") as usize;
        if read + 2 >= total {
            eprintln!("the worker has read {read} of {total} pages");
            break;
        }
        assert!(start.elapsed() < limit, "not nearly read after {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let states = wait_for(&js, &jobs, limit, "known", |_| true).await;
    eprintln!("{} of {total} pages recorded", pages_read(&states));
    assert!(
        !all_final(&states),
        "every job finished before the quorum was lost: the test shows nothing"
    );
    let kept = (leader + 1) % 3;
    eprintln!("quorum lost: only {} is up", cluster.nodes[kept].name);
    for i in (0..3).filter(|&i| i != kept) {
        cluster.kill(i);
    }
    tokio::time::sleep(Duration::from_secs(10)).await;
    for i in (0..3).filter(|&i| i != kept) {
        cluster.start_node(i);
    }
    let back_ms = now_ms();
    eprintln!("quorum back");

    let states = wait_for(&js, &jobs, limit, "finished", all_final).await;
    for state in &states {
        let manifest = state.manifest.as_ref().unwrap();
        assert_eq!(state.status, JobStatus::Success, "{}", manifest.filename);
        let n = manifest.total_pages;
        assert_eq!(state.counts(), (n, 0), "{}", manifest.filename);
        let records = page_records(&js, state).await;
        assert_eq!(records.len(), n as usize, "{}", manifest.filename);
        assert!(records.iter().all(|p| p.ok), "{records:?}");
        let finished = state.finished_at_ms.unwrap();
        assert!(
            finished <= back_ms + 15_000,
            "{} finished {} ms after the quorum was back",
            manifest.filename,
            finished.saturating_sub(back_ms)
        );
        let json = store::get(
            store.as_ref(),
            &names::keys::output(&state.job_id, pagefleet_schemas::Format::Json),
        )
        .await
        .unwrap();
        let report: JobReport = serde_json::from_slice(&json).unwrap();
        let numbers: Vec<u32> = report.pages.iter().map(|p| p.page).collect();
        let distinct: BTreeSet<u32> = numbers.iter().copied().collect();
        assert_eq!(numbers.len(), n as usize, "{numbers:?}");
        assert_eq!(distinct.len(), n as usize, "a page twice: {numbers:?}");
    }
    let finished_after = states
        .iter()
        .filter_map(|s| s.finished_at_ms)
        .max()
        .unwrap()
        .saturating_sub(back_ms);
    eprintln!("the last job finished {finished_after} ms after the quorum was back");

    // Every page job settled; each page the worker read again is counted
    // in its job.
    let start = Instant::now();
    loop {
        let left = match js.get_stream(names::PAGES_STREAM).await {
            Ok(mut s) => s.info().await.map_or(u64::MAX, |i| i.state.messages),
            Err(_) => u64::MAX,
        };
        if left == 0 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "page jobs left: {left}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let metrics = tokio::task::spawn_blocking(move || http_get(probes, "/metrics").1)
        .await
        .unwrap();
    let read_again = counter_sum(&metrics, "pagefleet_page_redeliveries_total");
    let mut counted = 0;
    for state in &states {
        counted += page_records(&js, state)
            .await
            .iter()
            .map(|p| p.deliveries.saturating_sub(1))
            .sum::<u64>();
    }
    assert_eq!(read_again, counted as f64, "worker and jobs disagree");

    // No stage exited, and what they said about it fits on a screen.
    let mut warnings = Vec::new();
    let mut about_it = 0;
    for (stage, log) in &mut stages {
        assert!(stage.0.try_wait().unwrap().is_none(), "a stage exited");
        let log = log.lock().unwrap();
        warnings.extend(
            log.lines()
                .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
                .map(str::to_owned),
        );
        // Lines neither of the start nor of a page's or job's progress.
        about_it += log
            .lines()
            .filter(|l| {
                ![
                    "page done",
                    "document rasterized",
                    "job finished",
                    " ready",
                    "models",
                    "probes on",
                    "NATS connection now to",
                ]
                .iter()
                .any(|usual| l.contains(usual))
            })
            .count();
    }
    eprintln!("{about_it} lines about the outages in the stages' logs");
    assert!(about_it <= 60, "{about_it} lines about the outages");
    eprintln!(
        "{} warnings in the stages' logs:\n{}",
        warnings.len(),
        warnings.join("\n")
    );
    assert!(
        warnings.len() <= 40,
        "{} warnings in the stages' logs",
        warnings.len()
    );
    assert!(
        !warnings.iter().any(|l| l.contains(" ERROR ")),
        "an error logged"
    );

    // `pagefleet doctor` passes on the healthy cluster once every replica
    // is current again.
    let report = tokio::task::spawn_blocking(move || doctor_until(&urls, true))
        .await
        .unwrap();
    assert!(
        report.contains("ok    stream PAGEFLEET_PAGES:")
            && report.contains("3 of 3 replicas current (leader n"),
        "{report}"
    );
    assert!(report.contains("ok    bucket pagefleet-jobs:"), "{report}");
}

/// Runs `pagefleet doctor` on the cluster until it passes (`true`) or fails
/// (`false`), for up to 40 s; returns its report.
fn doctor_until(urls: &str, want_ok: bool) -> String {
    let store = tempfile::tempdir().unwrap();
    let start = Instant::now();
    loop {
        let out = common::pagefleet_command()
            .arg("--home")
            .arg(home())
            .args(["doctor", "--nats", urls, "--store"])
            .arg(store.path())
            .output()
            .unwrap();
        let report = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() == want_ok {
            return report;
        }
        assert!(
            start.elapsed() < Duration::from_secs(40),
            "doctor never {}:\n{report}",
            if want_ok { "passed" } else { "failed" }
        );
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// The server name leading a consumer.
async fn consumer_leader(js: &jetstream::Context, stream: &str, consumer: &str) -> String {
    let start = Instant::now();
    loop {
        if let Ok(s) = js.get_stream(stream).await
            && let Ok(info) = s.consumer_info(consumer).await
            && let Some(leader) = info.cluster.as_ref().and_then(|c| c.leader.clone())
        {
            return leader;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{consumer} has no leader"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nak_sent_while_the_consumer_has_no_leader_still_lands() {
    use async_nats::jetstream::AckKind;
    use async_nats::jetstream::consumer::pull;
    use futures::StreamExt;

    let (mut cluster, urls, js) = Cluster::set_up().await;
    let stream = js
        .create_stream(jetstream::stream::Config {
            name: "NAK_TEST".into(),
            subjects: vec!["nak.test".into()],
            num_replicas: 3,
            ..Default::default()
        })
        .await
        .unwrap();
    // Handed back, it would wait a minute without its nak.
    let consumer = stream
        .create_consumer(pull::Config {
            durable_name: Some("nak-test".into()),
            ack_wait: Duration::from_secs(60),
            ..Default::default()
        })
        .await
        .unwrap();
    js.publish("nak.test", "one".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let leader = cluster.index_of(&consumer_leader(&js, "NAK_TEST", "nak-test").await);

    // A client on another node reads the message; the consumer's leader
    // dies and the nak is sent before another is elected.
    let other = (leader + 1) % 3;
    let local = jetstream::new(
        async_nats::connect(format!("nats://127.0.0.1:{}", cluster.nodes[other].port))
            .await
            .unwrap(),
    );
    let consumer_there: jetstream::consumer::PullConsumer = local
        .get_stream("NAK_TEST")
        .await
        .unwrap()
        .get_consumer("nak-test")
        .await
        .unwrap();
    let msg = consumer_there
        .fetch()
        .max_messages(1)
        .messages()
        .await
        .unwrap()
        .next()
        .await
        .unwrap()
        .unwrap();
    cluster.kill(leader);
    let sent = Instant::now();
    pagefleet_stagekit::queue::confirm(
        &msg,
        AckKind::Nak(Some(Duration::from_secs(1))),
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    eprintln!("nak confirmed {:?} after the leader died", sent.elapsed());
    drop(consumer);

    // It is delivered again after the nak's delay, not the ack wait.
    let again = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if let Ok(mut batch) = consumer_there
                .fetch()
                .max_messages(1)
                .expires(Duration::from_secs(1))
                .messages()
                .await
                && let Some(Ok(m)) = batch.next().await
            {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .expect("the message was not delivered again within 20 s of its nak");
    assert_eq!(again.payload.as_ref(), b"one");
    assert_eq!(again.info().unwrap().delivered, 2);
    eprintln!("delivered again {:?} after the nak", sent.elapsed());

    // With a node down, `pagefleet doctor` fails and names the replicas.
    let report = tokio::task::spawn_blocking(move || doctor_until(&urls, false))
        .await
        .unwrap();
    eprintln!("doctor with a node down:\n{report}");
    // Whichever replica NATS reports behind first fails the report: a
    // stream's or a key-value bucket's (a bucket is a stream too).
    assert!(
        (report.contains("FAIL  stream ") || report.contains("FAIL  bucket "))
            && (report.contains("2 of 3 replicas current") || report.contains("no leader")),
        "{report}"
    );
}
