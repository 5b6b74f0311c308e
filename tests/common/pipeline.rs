//! A real nats-server per test (random port, temporary store, killed on drop)
//! and helpers to run pipeline stages as processes or tasks.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use pagefleet_schemas::messages::{JobState, JobStatus, Message};
use pagefleet_schemas::names;
use pagefleet_schemas::store::Store;

use super::root;

/// The runtime home the bootstrap filled.
pub fn home() -> PathBuf {
    std::env::var_os("PAGEFLEET_HOME").map_or_else(|| root().join(".pagefleet"), PathBuf::from)
}

/// A nats-server with JetStream on a random port, storing in a temporary folder.
pub struct NatsServer {
    child: Child,
    pub url: String,
    _store: tempfile::TempDir,
}

impl NatsServer {
    pub fn start() -> Self {
        let store = tempfile::tempdir().unwrap();
        let mut child = Command::new(home().join("bin/nats-server"))
            .args([
                "--jetstream",
                "--addr",
                "127.0.0.1",
                "--port",
                "-1",
                "--store_dir",
            ])
            .arg(store.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start nats-server (run scripts/bootstrap)");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let url = loop {
            let line = lines.next().expect("nats-server exited").unwrap();
            if let Some(addr) = line.split("Listening for client connections on ").nth(1) {
                break format!("nats://{}", addr.trim());
            }
        };
        // Keep the pipe drained.
        std::thread::spawn(move || for _ in lines {});
        Self {
            child,
            url,
            _store: store,
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A stage running as a `pagefleet` process, killed (SIGKILL) on drop.
pub struct StageProcess(pub Child);

impl StageProcess {
    pub fn spawn(args: &[&str], nats: &str, store: &Path) -> Self {
        let child = Command::new(env!("CARGO_BIN_EXE_pagefleet"))
            .args(args)
            .arg("--nats")
            .arg(nats)
            .arg("--store")
            .arg(store)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("start a pagefleet stage");
        Self(child)
    }

    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for StageProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

pub async fn connect(url: &str) -> jetstream::Context {
    let client = async_nats::connect(url).await.unwrap();
    let js = jetstream::new(client);
    pagefleet_schemas::topology::ensure(&js, &Default::default())
        .await
        .unwrap();
    js
}

pub fn local_store(dir: &Path) -> Store {
    Arc::new(object_store::local::LocalFileSystem::new_with_prefix(dir).unwrap())
}

/// Waits until the job's state is final, or panics after `timeout`.
pub async fn wait_final(js: &jetstream::Context, job_id: &str, timeout: Duration) -> JobState {
    let kv = js.get_key_value(names::JOBS_BUCKET).await.unwrap();
    let start = Instant::now();
    loop {
        if let Some(bytes) = kv.get(job_id).await.unwrap() {
            let state = JobState::decode(&bytes).unwrap();
            if state.status != JobStatus::Running {
                return state;
            }
        }
        assert!(
            start.elapsed() < timeout,
            "job {job_id} not finished after {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Messages left in a stream.
pub async fn stream_len(js: &jetstream::Context, stream: &str) -> u64 {
    js.get_stream(stream)
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .state
        .messages
}

pub fn submit_options() -> pagefleet_ingest::SubmitOptions {
    pagefleet_ingest::SubmitOptions {
        dpi: 200.0,
        profile: "fast".into(),
        max_pixels: 8_000_000,
        job_id: None,
    }
}
