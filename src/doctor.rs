//! `pagefleet doctor`: checks everything a deployment depends on and prints a
//! plain report; exits non-zero when anything fails.
//!
//! Checks: the runtime files against the checksums the bootstrap recorded,
//! ONNX Runtime with one warm-up inference, PDFium with one rendered page, the
//! NATS connection, every JetStream stream, bucket and consumer (with its
//! lag, its leader and the state of its replicas: it fails when one has no
//! leader or fewer replicas current than configured), and object storage
//! read/write.

use std::io::Read;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use async_nats::jetstream;
use futures::StreamExt;
use pagefleet_ocr_worker::{Engine, EngineConfig};
use pagefleet_schemas::{PixelBudget, names};
use pagefleet_stagekit::store;
use sha2::{Digest, Sha256};

use pagefleet::connect;
use pagefleet::home::Home;

use crate::cli::DoctorArgs;
use crate::ocr::pool_config;

/// One line of the report.
struct Check {
    name: String,
    result: Result<String, String>,
}

fn check(name: impl Into<String>, result: Result<String, String>) -> Check {
    Check {
        name: name.into(),
        result,
    }
}

pub(crate) fn run(home: &Home, args: DoctorArgs) -> ExitCode {
    let mut checks = vec![runtime_files(home)];
    checks.push(onnx_runtime(home, &args));
    checks.push(pdfium(home));
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => checks.extend(rt.block_on(services(home, &args))),
        Err(e) => checks.push(check("async runtime", Err(e.to_string()))),
    }
    let mut failed = 0;
    for c in &checks {
        match &c.result {
            Ok(detail) => println!("ok    {}: {detail}", c.name),
            Err(why) => {
                failed += 1;
                println!("FAIL  {}: {why}", c.name);
            }
        }
    }
    if failed == 0 {
        println!("all {} checks passed", checks.len());
        ExitCode::SUCCESS
    } else {
        println!("{failed} of {} checks failed", checks.len());
        ExitCode::FAILURE
    }
}

fn sha256_of(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Every installed file against SHA256SUMS.
fn runtime_files(home: &Home) -> Check {
    let sums_path = home.root().join("SHA256SUMS");
    let Ok(sums) = std::fs::read_to_string(&sums_path) else {
        return check(
            "runtime files",
            Err(format!(
                "{} is missing; run scripts/bootstrap",
                sums_path.display()
            )),
        );
    };
    let mut bad = Vec::new();
    let mut n = 0;
    for line in sums.lines().filter(|l| !l.trim().is_empty()) {
        let Some((sum, rel)) = line.split_once("  ") else {
            bad.push(format!("unreadable line {line:?}"));
            continue;
        };
        n += 1;
        let path = home.root().join(rel);
        match sha256_of(&path) {
            Ok(got) if got == sum => {}
            Ok(got) => bad.push(format!(
                "{} has sha256 {got}, expected {sum}",
                path.display()
            )),
            Err(e) => bad.push(format!("{}: {e}", path.display())),
        }
    }
    if bad.is_empty() {
        check(
            "runtime files",
            Ok(format!("{n} files match {}", sums_path.display())),
        )
    } else {
        check(
            "runtime files",
            Err(format!(
                "{}; run scripts/bootstrap to repair",
                bad.join("; ")
            )),
        )
    }
}

/// Loads the models and reads a blank page.
fn onnx_runtime(home: &Home, args: &DoctorArgs) -> Check {
    let result = (|| {
        let pool = pool_config(home, &args.model).map_err(|e| e.to_string())?;
        let config = EngineConfig {
            rec_batch: pool.rec_batch(),
            rec_buckets: pool.rec_buckets(),
            rec_summary: pool.rec_summary(),
            models: pool.models,
            intra_threads: 1,
            provider: pool.provider,
            classify_lines: pool.classify_lines,
            budget: PixelBudget::new(pool.max_pixels),
        };
        let mut engine = Engine::load(&home.onnxruntime(), config).map_err(|e| e.to_string())?;
        let started = std::time::Instant::now();
        let blank = image::RgbImage::from_pixel(640, 480, image::Rgb([255, 255, 255]));
        engine
            .recognize(&blank)
            .map_err(|e| format!("warm-up inference: {e}"))?;
        Ok(format!(
            "profile {} loaded, warm-up inference in {} ms",
            args.model.profile,
            started.elapsed().as_millis()
        ))
    })();
    check("onnx runtime and models", result)
}

/// The smallest PDF with one page: PDFium must open and render it.
const ONE_PAGE_PDF: &[u8] = b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 72 72]>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n";

fn pdfium(home: &Home) -> Check {
    let result = pagefleet_rasterizer::Rasterizer::new(&home.pdfium())
        .map_err(|e| e.to_string())
        .and_then(|r| {
            let mut size = None;
            r.pages(ONE_PAGE_PDF, &Default::default(), |page| {
                size = Some(page.map_err(|e| e.to_string())?.image.dimensions());
                Ok(())
            })
            .map_err(|e| e.to_string())?;
            let (w, h) = size.ok_or("no page rendered")?;
            Ok(format!("rendered a test page at {w}x{h}"))
        });
    check("pdfium", result)
}

async fn services(home: &Home, args: &DoctorArgs) -> Vec<Check> {
    let mut checks = Vec::new();
    let (nats, tried) = args.nats.or_running_serve(&args.data.dir_or(home));
    let client = tokio::time::timeout(
        Duration::from_secs(10),
        connect::nats_once(&nats, "pagefleet-doctor"),
    )
    .await;
    let client = match client {
        Ok(Ok(c)) => {
            checks.push(check("nats", Ok(format!("connected to {tried}"))));
            Some(c)
        }
        Ok(Err(e)) => {
            checks.push(check("nats", Err(format!("tried {tried}: {e:#}"))));
            None
        }
        Err(_) => {
            checks.push(check(
                "nats",
                Err(format!("tried {tried}: no answer within 10 s")),
            ));
            None
        }
    };
    if let Some(client) = client {
        let js = jetstream::new(client);
        checks.extend(jetstream_checks(&js).await);
    }
    checks.push(storage(home, args).await);
    checks
}

async fn jetstream_checks(js: &jetstream::Context) -> Vec<Check> {
    let mut checks = Vec::new();
    let streams = [
        names::DOCS_STREAM,
        names::PAGES_STREAM,
        names::RESULTS_STREAM,
        names::ADVISORIES_STREAM,
        names::EVENTS_STREAM,
        names::BUCKET_EVENTS_STREAM,
    ];
    for name in streams {
        let mut stream = match js.get_stream(name).await {
            Ok(s) => s,
            Err(e) => {
                checks.push(check(format!("stream {name}"), Err(missing(&e))));
                continue;
            }
        };
        let info = match stream.info().await {
            Ok(info) => info.clone(),
            Err(e) => {
                checks.push(check(format!("stream {name}"), Err(e.to_string())));
                continue;
            }
        };
        let health = replication(info.config.num_replicas, info.cluster.as_ref());
        // A single server's consumers report no cluster, and no leader.
        let clustered = info.cluster.as_ref().is_some_and(|c| c.name.is_some());
        let messages = info.state.messages;
        checks.push(check(
            format!("stream {name}"),
            health.map(|h| format!("{messages} messages; {h}")),
        ));
        let mut consumers = stream.consumers();
        while let Some(info) = consumers.next().await {
            let failed = info.is_err();
            match info {
                Ok(c) => {
                    let lag = format!(
                        "lag {} waiting, {} in progress",
                        c.num_pending, c.num_ack_pending
                    );
                    let leader = c.cluster.as_ref().and_then(|c| c.leader.clone());
                    checks.push(check(
                        format!("consumer {name}/{}", c.name),
                        consumer_health(lag, leader, clustered),
                    ))
                }
                Err(e) => checks.push(check(format!("consumers of {name}"), Err(e.to_string()))),
            }
            // A listing that failed once goes on failing.
            if failed {
                break;
            }
        }
    }
    for bucket in [
        names::JOBS_BUCKET,
        names::SUBMISSIONS_BUCKET,
        names::WORKERS_BUCKET,
    ] {
        let result = match js.get_stream(format!("KV_{bucket}")).await {
            Ok(stream) => {
                let info = stream.cached_info();
                replication(info.config.num_replicas, info.cluster.as_ref())
                    .map(|h| format!("{} keys; {h}", info.state.messages))
            }
            Err(e) => Err(missing(&e)),
        };
        checks.push(check(format!("bucket {bucket}"), result));
    }
    checks
}

/// A consumer's line: its lag, and its leader where the stream is
/// replicated over a cluster (there it fails without one).
fn consumer_health(lag: String, leader: Option<String>, clustered: bool) -> Result<String, String> {
    match (leader, clustered) {
        (Some(leader), _) => Ok(format!("{lag}; leader {leader}")),
        (None, false) => Ok(format!("{lag}; on a single server")),
        (None, true) => Err(format!("{lag}; no leader")),
    }
}

/// Why a stream could not be looked at, with the fix when it does not exist.
fn missing(e: &jetstream::context::GetStreamError) -> String {
    if pagefleet_stagekit::topology::stream_missing(e) {
        format!("{e}; run pagefleet nats setup")
    } else {
        e.to_string()
    }
}

/// A stream's replication: its leader and the state of each other replica.
/// Fails when it has no leader, or fewer replicas current than configured.
fn replication(
    configured: usize,
    cluster: Option<&jetstream::stream::ClusterInfo>,
) -> Result<String, String> {
    let configured = configured.max(1);
    let Some(leader) = cluster.and_then(|c| c.leader.clone()) else {
        return Err(format!(
            "no leader: none of its {configured} replicas is serving it"
        ));
    };
    let peers = cluster.map_or(&[][..], |c| c.replicas.as_slice());
    let mut current = 1;
    let mut said = vec![format!("leader {leader}")];
    for peer in peers {
        let state = if peer.offline {
            "offline".to_owned()
        } else if !peer.current {
            format!(
                "not current ({} operations behind, last seen {:.1} s ago)",
                peer.lag.unwrap_or(0),
                peer.active.as_secs_f64()
            )
        } else {
            current += 1;
            "current".to_owned()
        };
        said.push(format!("{} {state}", peer.name));
    }
    let summary = format!(
        "{current} of {configured} replicas current ({})",
        said.join(", ")
    );
    if current < configured {
        Err(summary)
    } else {
        Ok(summary)
    }
}

/// Writes, reads back and deletes a probe object.
async fn storage(home: &Home, args: &DoctorArgs) -> Check {
    let result = async {
        let objects = args.data.dir_or(home).join("objects");
        let store = connect::store(&args.store, &objects).map_err(|e| format!("{e:#}"))?;
        let key = format!("pagefleet/doctor-{}", std::process::id());
        let payload = b"pagefleet doctor".to_vec();
        store::put(store.as_ref(), &key, payload.clone())
            .await
            .map_err(|e| format!("write: {e}"))?;
        let back = store::get(store.as_ref(), &key)
            .await
            .map_err(|e| format!("read: {e}"))?;
        let _ = object_store::ObjectStoreExt::delete(
            store.as_ref(),
            &object_store::path::Path::from(key.as_str()),
        )
        .await;
        if back.as_ref() != payload.as_slice() {
            return Err("read back different bytes than written".to_owned());
        }
        Ok("write, read and delete of a probe object".to_owned())
    }
    .await;
    check("object store", result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jetstream::stream::{ClusterInfo, PeerInfo};

    fn peer(name: &str, current: bool, offline: bool) -> PeerInfo {
        PeerInfo {
            name: name.into(),
            current,
            offline,
            active: Duration::from_millis(300),
            lag: Some(if current { 0 } else { 16 }),
        }
    }

    fn cluster(leader: Option<&str>, replicas: Vec<PeerInfo>) -> ClusterInfo {
        ClusterInfo {
            leader: leader.map(str::to_owned),
            replicas,
            ..Default::default()
        }
    }

    #[test]
    fn a_consumer_without_a_leader_fails_on_a_cluster_only() {
        let lag = || "lag 0 waiting, 0 in progress".to_owned();
        assert_eq!(
            consumer_health(lag(), Some("n2".into()), true).unwrap(),
            "lag 0 waiting, 0 in progress; leader n2"
        );
        assert!(
            consumer_health(lag(), None, true)
                .unwrap_err()
                .ends_with("no leader")
        );
        assert_eq!(
            consumer_health(lag(), None, false).unwrap(),
            "lag 0 waiting, 0 in progress; on a single server"
        );
    }

    #[test]
    fn replication_fails_below_the_configured_replicas_or_without_a_leader() {
        let healthy = cluster(
            Some("n1"),
            vec![peer("n2", true, false), peer("n3", true, false)],
        );
        assert_eq!(
            replication(3, Some(&healthy)).unwrap(),
            "3 of 3 replicas current (leader n1, n2 current, n3 current)"
        );
        let lagging = cluster(
            Some("n2"),
            vec![peer("n1", false, false), peer("n3", true, false)],
        );
        let e = replication(3, Some(&lagging)).unwrap_err();
        assert!(e.starts_with("2 of 3 replicas current"), "{e}");
        assert!(e.contains("n1 not current (16 operations behind"), "{e}");
        let gone = cluster(
            Some("n2"),
            vec![peer("n1", false, true), peer("n3", true, false)],
        );
        assert!(
            replication(3, Some(&gone))
                .unwrap_err()
                .contains("n1 offline")
        );
        assert!(
            replication(3, Some(&cluster(None, vec![])))
                .unwrap_err()
                .contains("no leader")
        );
        // One server: the stream is its own leader, with no peers.
        let single = cluster(Some("solo"), vec![]);
        assert_eq!(
            replication(1, Some(&single)).unwrap(),
            "1 of 1 replicas current (leader solo)"
        );
        // More replicas than configured (a stream scaled up by hand) is fine.
        assert!(replication(1, Some(&healthy)).is_ok());
    }
}
