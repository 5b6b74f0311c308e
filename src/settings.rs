//! The command-line settings every way of starting stages shares: how to
//! reach NATS, where objects are stored, the queue's behaviour and the probe
//! address. The stage commands, `serve` and `run` flatten these same groups,
//! so each flag means the same everywhere; [`crate::launch`] takes them.

use std::path::{Path, PathBuf};

use clap::Args;

/// What every stage of a launch shares: NATS, the store, the queue's
/// behaviour and the probe address. Every command that starts stages
/// flattens this one group.
#[derive(Debug, Clone, Args)]
pub struct SharedArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub nats: NatsArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub store: StoreArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub queue: QueueArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub probes: ProbeArgs,
}

/// How to reach NATS.
#[derive(Debug, Clone, Default, Args)]
pub struct NatsArgs {
    /// NATS server URL(s), comma-separated: a server list of a cluster
    /// [default: nats://127.0.0.1:4222; `serve` and `run` start a private
    /// nats-server instead].
    #[arg(long = "nats", env = "PAGEFLEET_NATS_URL")]
    pub url: Option<String>,
    /// Credentials file (JWT and nkey seed).
    #[arg(long = "nats-creds", env = "PAGEFLEET_NATS_CREDS")]
    pub creds: Option<PathBuf>,
    /// NKey seed.
    #[arg(long = "nats-nkey", env = "PAGEFLEET_NATS_NKEY")]
    pub nkey: Option<String>,
    /// Token.
    #[arg(long = "nats-token", env = "PAGEFLEET_NATS_TOKEN")]
    pub token: Option<String>,
    /// User name (with --nats-password).
    #[arg(long = "nats-user", env = "PAGEFLEET_NATS_USER", requires = "password")]
    pub user: Option<String>,
    /// Password.
    #[arg(long = "nats-password", env = "PAGEFLEET_NATS_PASSWORD")]
    pub password: Option<String>,
    /// CA certificate (PEM) to trust for TLS; implies TLS.
    #[arg(long = "nats-ca", env = "PAGEFLEET_NATS_CA")]
    pub ca: Option<PathBuf>,
    /// Require TLS.
    #[arg(long = "nats-tls", env = "PAGEFLEET_NATS_TLS")]
    pub tls: bool,
}

/// Where a stage command looks for NATS when `--nats` is not given.
pub const DEFAULT_NATS_URL: &str = "nats://127.0.0.1:4222";

impl NatsArgs {
    /// The server list, or the default server's.
    pub fn url_or_default(&self) -> &str {
        self.url.as_deref().unwrap_or(DEFAULT_NATS_URL)
    }

    /// The same authentication towards `url`.
    pub fn with_url(&self, url: &str) -> Self {
        Self {
            url: Some(url.to_owned()),
            ..self.clone()
        }
    }
}

/// The folder of a single-machine deployment (`serve`, `run`): the private
/// nats-server's store, the default object store, and the note through which
/// `watch` and `doctor` find a running `serve`.
#[derive(Debug, Clone, Args)]
pub struct DataArgs {
    /// Folder of the private nats-server's store, the local object store and
    /// `serve.json` (where a running serve's addresses are) [default: the
    /// runtime home's data folder].
    #[arg(long = "data", env = "PAGEFLEET_DATA")]
    pub dir: Option<PathBuf>,
}

impl DataArgs {
    /// The folder, or the runtime home's data folder.
    pub fn dir_or(&self, home: &crate::home::Home) -> PathBuf {
        self.dir.clone().unwrap_or_else(|| home.data())
    }
}

/// Where documents, page images and results are stored.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// `s3://bucket[/prefix]` for S3-compatible storage (credentials and region
    /// from the standard AWS_* variables), or a local folder [default: the
    /// runtime home's data/objects].
    #[arg(long = "store", env = "PAGEFLEET_STORE")]
    pub location: Option<String>,
    /// S3 endpoint for S3-compatible servers (MinIO, SeaweedFS, ...).
    #[arg(long = "s3-endpoint", env = "PAGEFLEET_S3_ENDPOINT")]
    pub endpoint: Option<String>,
    /// S3 region (else AWS_REGION / AWS_DEFAULT_REGION, else us-east-1).
    #[arg(long = "s3-region", env = "PAGEFLEET_S3_REGION")]
    pub region: Option<String>,
    /// Path-style requests (bucket in the path), as most self-hosted servers need.
    #[arg(long = "s3-path-style", env = "PAGEFLEET_S3_PATH_STYLE")]
    pub path_style: bool,
}

/// Liveness and readiness probes.
#[derive(Debug, Clone, Args)]
pub struct ProbeArgs {
    /// Address to serve /healthz and /readyz on (e.g. 0.0.0.0:8080); none when unset.
    #[arg(long = "health-addr", env = "PAGEFLEET_HEALTH_ADDR")]
    pub addr: Option<std::net::SocketAddr>,
}

/// The queue settings' defaults, which are the library's.
fn queue_defaults() -> pagefleet_stagekit::topology::TopologyConfig {
    pagefleet_stagekit::topology::TopologyConfig::default()
}

/// Queue behaviour: ack deadlines, redelivery, flow control.
#[derive(Debug, Clone, Args)]
pub struct QueueArgs {
    /// Seconds a page may go unacknowledged before redelivery (progress acks
    /// extend it while a page is worked on).
    #[arg(long, env = "PAGEFLEET_PAGE_ACK_WAIT", default_value_t = queue_defaults().pages.ack_wait.as_secs_f64())]
    pub page_ack_wait: f64,
    /// Deliveries of a page before it is recorded as failed.
    #[arg(long, env = "PAGEFLEET_PAGE_MAX_DELIVER", default_value_t = queue_defaults().pages.max_deliver)]
    pub page_max_deliver: i64,
    /// Seconds between redeliveries of a page, comma-separated (empty: ack wait).
    #[arg(long, env = "PAGEFLEET_PAGE_BACKOFF", value_delimiter = ',')]
    pub page_backoff: Vec<f64>,
    /// Page jobs delivered and unacknowledged at once, over all workers.
    #[arg(long, env = "PAGEFLEET_PAGE_MAX_ACK_PENDING", default_value_t = queue_defaults().pages.max_ack_pending)]
    pub page_max_ack_pending: i64,
    /// Seconds a document may go unacknowledged while it is rasterized.
    #[arg(long, env = "PAGEFLEET_DOC_ACK_WAIT", default_value_t = queue_defaults().docs.ack_wait.as_secs_f64())]
    pub doc_ack_wait: f64,
    /// Deliveries of a document job before it is given up.
    #[arg(long, env = "PAGEFLEET_DOC_MAX_DELIVER", default_value_t = queue_defaults().docs.max_deliver)]
    pub doc_max_deliver: i64,
    /// Replicas of every stream and bucket (1 for a single server, 3 on a
    /// cluster) [default: as they are; 1 for new ones].
    #[arg(long, env = "PAGEFLEET_REPLICAS")]
    pub replicas: Option<usize>,
}

/// The note a running `serve` keeps in its data folder.
pub fn serve_note(data: &Path) -> PathBuf {
    data.join("serve.json")
}

/// Where a running `serve` answers, from the note in its data folder.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct ServeAddresses {
    /// Its HTTP API's base URL.
    pub http: String,
    /// Its NATS URL.
    pub nats: String,
    /// Its process.
    pub pid: u32,
}

impl ServeAddresses {
    /// The serve running on `data`, or why none was found there.
    pub fn find(data: &Path) -> Result<Self, String> {
        let path = serve_note(data);
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let note: Self = serde_json::from_slice(&bytes)
            .map_err(|e| format!("{} is unreadable: {e}", path.display()))?;
        // A note left by a serve that was killed names a process that is
        // gone.
        if Path::new(&format!("/proc/{}", note.pid)).exists() {
            Ok(note)
        } else {
            Err(format!(
                "{} names process {}, which is not running",
                path.display(),
                note.pid
            ))
        }
    }
}

impl NatsArgs {
    /// The NATS to look at for a client command (`watch`, `doctor`): the
    /// servers `--nats` names; else the serve running on the data folder;
    /// else the default server. With it, the places looked at, for an
    /// error that says what was tried.
    pub fn or_running_serve(&self, data: &Path) -> (Self, String) {
        if let Some(url) = &self.url {
            return (self.clone(), format!("--nats {url}"));
        }
        match ServeAddresses::find(data) {
            Ok(serve) => (
                self.with_url(&serve.nats),
                format!("the serve running on {} at {}", data.display(), serve.nats),
            ),
            Err(why) => (
                self.with_url(DEFAULT_NATS_URL),
                format!("{DEFAULT_NATS_URL} (no serve found: {why})"),
            ),
        }
    }
}
