//! A real nats-server per test (random port, temporary store, killed on drop)
//! and helpers to run pipeline stages as processes or tasks.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use pagefleet_schemas::messages::{JobState, JobStatus, Message, PageRecord};
use pagefleet_schemas::names;
use pagefleet_stagekit::store::Store;

use super::root;

/// The runtime home the bootstrap filled.
pub fn home() -> PathBuf {
    std::env::var_os("PAGEFLEET_HOME").map_or_else(|| root().join(".pagefleet"), PathBuf::from)
}

/// The rasterizer, an OCR worker and the aggregator as tasks of this
/// process, launched the way `pagefleet run` launches them, on `nats` and
/// `store`, with the library's defaults as `tune` changes them. Returns once
/// the models are loaded.
pub async fn in_process(
    nats: &str,
    store: Store,
    tune: impl FnOnce(&mut pagefleet::launch::Launch),
) -> pagefleet::launch::Launched {
    let home = pagefleet::home::Home::resolve(Some(&home()));
    let mut launch = pagefleet::launch::Launch::pipeline(&home, "pagefleet-test");
    launch.nats.url = Some(nats.to_owned());
    launch.store = Some(store);
    tune(&mut launch);
    launch.start(&home).await.unwrap()
}

/// The records of a job's pages, in page order, each a key of the jobs
/// bucket.
pub async fn page_records(js: &jetstream::Context, state: &JobState) -> Vec<PageRecord> {
    let kv = js.get_key_value(names::JOBS_BUCKET).await.unwrap();
    let pages = state.manifest.as_ref().map_or(0, |m| m.total_pages);
    let mut records = Vec::new();
    for page in 1..=pages {
        let key = names::page_record_key(&state.job_id, page);
        if let Some(bytes) = kv.get(key).await.unwrap() {
            records.push(PageRecord::decode(&bytes).unwrap());
        }
    }
    records
}

/// A nats-server with JetStream on a random port, storing in a temporary folder.
pub struct NatsServer {
    child: Child,
    pub url: String,
    port: u16,
    store: tempfile::TempDir,
    extra: Vec<String>,
}

/// Starts nats-server on `port` (0 for any), storing in `store`; returns it
/// with the port it listens on.
fn spawn_nats(store: &Path, port: u16, extra: &[String]) -> (Child, u16) {
    let port_arg = if port == 0 {
        "-1".to_owned()
    } else {
        port.to_string()
    };
    let mut child = Command::new(home().join("bin/nats-server"))
        .args([
            "--jetstream",
            "--addr",
            "127.0.0.1",
            "--port",
            &port_arg,
            "--store_dir",
        ])
        .arg(store)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start nats-server (run scripts/bootstrap)");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let port = loop {
        let line = lines.next().expect("nats-server exited").unwrap();
        if let Some(addr) = line.split("Listening for client connections on ").nth(1) {
            break addr.trim().rsplit(':').next().unwrap().parse().unwrap();
        }
    };
    // Keep the pipe drained.
    std::thread::spawn(move || for _ in lines {});
    (child, port)
}

impl NatsServer {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// A server with more flags (`--user`, `--pass`, ...).
    pub fn start_with(extra: &[&str]) -> Self {
        let store = tempfile::tempdir().unwrap();
        let extra: Vec<String> = extra.iter().map(|&a| a.to_owned()).collect();
        let (child, port) = spawn_nats(store.path(), 0, &extra);
        Self {
            child,
            url: format!("nats://127.0.0.1:{port}"),
            port,
            store,
            extra,
        }
    }

    /// Stops the server now (NATS "goes down").
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again on the same port with the same store, after [`Self::stop`].
    pub fn start_again(&mut self) {
        let (child, _) = spawn_nats(self.store.path(), self.port, &self.extra);
        self.child = child;
    }
}

/// A plain HTTP/1.0 GET on the loopback: status code and body.
pub fn http_get(port: u16, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = response.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    (status, body)
}

/// A free TCP port on the loopback interface.
pub fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
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
    /// A stage storing in a local folder.
    pub fn spawn(args: &[&str], nats: &str, store: &Path) -> Self {
        Self::spawn_with(
            args,
            nats,
            &[],
            &[("PAGEFLEET_STORE", store.to_str().unwrap())],
        )
    }

    /// A stage with extra flags and environment (an S3 store, say).
    pub fn spawn_with(args: &[&str], nats: &str, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let child = Command::new(env!("CARGO_BIN_EXE_pagefleet"))
            .args(args)
            .arg("--nats")
            .arg(nats)
            .args(extra)
            .envs(env.iter().copied())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("start a pagefleet stage");
        Self(child)
    }

    /// A stage storing in a local folder, its info-level log collected
    /// (and echoed on standard error).
    pub fn spawn_logged(
        args: &[&str],
        nats: &str,
        store: &Path,
    ) -> (Self, Arc<std::sync::Mutex<String>>) {
        Self::spawn_logged_with(args, nats, &[("PAGEFLEET_STORE", store.to_str().unwrap())])
    }

    /// A stage with its environment (an S3 store, say), its info-level log
    /// collected (and echoed on standard error).
    pub fn spawn_logged_with(
        args: &[&str],
        nats: &str,
        env: &[(&str, &str)],
    ) -> (Self, Arc<std::sync::Mutex<String>>) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_pagefleet"))
            .args(args)
            .arg("--nats")
            .arg(nats)
            .envs(env.iter().copied())
            .env("RUST_LOG", "info,async_nats=warn,ort=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start a pagefleet stage");
        let log = Arc::new(std::sync::Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let collected = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("{line}");
                let mut log = collected.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        (Self(child), log)
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
    pagefleet_stagekit::topology::ensure(&js, &Default::default())
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

/// Options of the pipeline tests' jobs: every page read from its pixels,
/// so that pages of the born-digital samples stay in a worker's hands for
/// the second or so the faults are aimed at.
pub fn submit_options() -> pagefleet_ingest::SubmitOptions {
    pagefleet_ingest::SubmitOptions {
        dpi: 200.0,
        profile: "fast".into(),
        max_pixels: 8_000_000,
        text_layer: pagefleet_schemas::TextLayer::Ocr,
        ..Default::default()
    }
}

/// A real S3-compatible server: SeaweedFS's `weed mini`, every port of it a
/// free one on the loopback interface, its data in a temporary folder, one
/// bucket and one set of credentials. Killed on drop.
pub struct SeaweedFs {
    child: Child,
    pub endpoint: String,
    args: Vec<String>,
    dir: tempfile::TempDir,
}

/// Bucket, access key and secret of the test server.
pub const S3_BUCKET: &str = "pagefleet";
pub const S3_ACCESS_KEY: &str = "pagefleet";
pub const S3_SECRET_KEY: &str = "pagefleet-test-secret";

impl SeaweedFs {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("s3.json");
        std::fs::write(
            &config,
            format!(
                r#"{{"identities":[{{"name":"pagefleet","credentials":[{{"accessKey":"{S3_ACCESS_KEY}","secretKey":"{S3_SECRET_KEY}"}}],"actions":["Admin","Read","Write","List","Tagging"]}}]}}"#
            ),
        )
        .unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        // Every listener gets its own free port so that test runs can coexist.
        let s3 = free_tcp_port();
        let mut args: Vec<String> = vec![
            "mini".into(),
            format!("-dir={}", data.display()),
            "-ip=127.0.0.1".into(),
            "-ip.bind=127.0.0.1".into(),
            "-admin.ui=false".into(),
            "-webdav=false".into(),
            format!("-s3.config={}", config.display()),
            format!("-bucket={S3_BUCKET}"),
            "-master.volumeSizeLimitMB=64".into(),
            format!("-s3.port={s3}"),
        ];
        for flag in [
            "master.port",
            "master.port.grpc",
            "volume.port",
            "volume.port.grpc",
            "filer.port",
            "filer.port.grpc",
            "s3.port.grpc",
            "s3.port.iceberg",
            "s3.port.lance",
            "admin.port",
            "admin.port.grpc",
        ] {
            args.push(format!("-{flag}={}", free_tcp_port()));
        }
        let child = spawn_weed(&args, dir.path());
        let endpoint = format!("http://127.0.0.1:{s3}");
        let server = Self {
            child,
            endpoint,
            args,
            dir,
        };
        server.wait_ready();
        server
    }

    /// Stops the server now (the store "goes down").
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again with the same ports and data, after [`Self::stop`],
    /// and waits until it answers.
    pub fn start_again(&mut self) {
        self.child = spawn_weed(&self.args, self.dir.path());
        self.wait_ready();
    }

    /// Ready once the bucket answers an authenticated listing.
    fn wait_ready(&self) {
        let store = self.store("");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let start = Instant::now();
        loop {
            let probe = runtime.block_on(async {
                use futures::StreamExt;
                let mut list = store.list(None);
                list.next().await.transpose().map(|_| ())
            });
            if probe.is_ok() {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "SeaweedFS not ready: {probe:?}"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// The environment a stage needs to use this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", S3_ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", S3_SECRET_KEY.into()),
            ("AWS_REGION", "us-east-1".into()),
            ("PAGEFLEET_STORE", format!("s3://{S3_BUCKET}/pagefleet")),
            ("PAGEFLEET_S3_ENDPOINT", self.endpoint.clone()),
            ("PAGEFLEET_S3_PATH_STYLE", "true".into()),
        ]
    }

    /// A client of the bucket, under `prefix`.
    pub fn store(&self, prefix: &str) -> Store {
        let s3 = object_store::aws::AmazonS3Builder::new()
            .with_bucket_name(S3_BUCKET)
            .with_endpoint(&self.endpoint)
            .with_allow_http(true)
            .with_region("us-east-1")
            .with_access_key_id(S3_ACCESS_KEY)
            .with_secret_access_key(S3_SECRET_KEY)
            .with_virtual_hosted_style_request(false)
            .build()
            .unwrap();
        if prefix.is_empty() {
            Arc::new(s3)
        } else {
            Arc::new(object_store::prefix::PrefixStore::new(s3, prefix))
        }
    }
}

fn spawn_weed(args: &[String], dir: &Path) -> Child {
    Command::new(home().join("bin/weed"))
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start weed (run scripts/bootstrap)")
}

impl Drop for SeaweedFs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
