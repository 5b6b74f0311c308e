//! Command-line interface. Every flag can also be set through a `PAGEFLEET_*`
//! environment variable.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use pagefleet_ocr_worker::Profile;

/// Distributed document OCR over NATS JetStream.
#[derive(Debug, Parser)]
#[command(name = "pagefleet", version, about)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) home: HomeArgs,
    #[command(flatten)]
    pub(crate) log: LogArgs,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// OCR documents in this process, with no queue: PDFs, PNG, JPEG, TIFF.
    Ocr(OcrArgs),
    /// The whole pipeline on one machine: its own nats-server (unless --nats),
    /// every stage in this process, the files submitted, results written.
    Run(RunArgs),
    /// The rasterizer stage: document jobs in, page images and page jobs out.
    Rasterizer(RasterizerArgs),
    /// The OCR worker stage: page jobs in, page results out.
    OcrWorker(WorkerArgs),
    /// The aggregator stage: page results in, finished jobs out.
    Aggregator(AggregatorArgs),
    /// Check NATS, JetStream, object storage, the runtime files, ONNX Runtime
    /// and PDFium; exits non-zero when anything fails.
    Doctor(DoctorArgs),
    /// NATS administration.
    Nats {
        #[command(subcommand)]
        command: NatsCommand,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum NatsCommand {
    /// Create or update the streams, consumers' bucket and advisory capture.
    Setup {
        #[command(flatten)]
        nats: NatsArgs,
        #[command(flatten)]
        queue: QueueArgs,
    },
}

/// How to reach NATS.
#[derive(Debug, Clone, Args)]
pub(crate) struct NatsArgs {
    /// NATS server URL(s), comma-separated.
    #[arg(
        long = "nats",
        env = "PAGEFLEET_NATS_URL",
        default_value = "nats://127.0.0.1:4222"
    )]
    pub(crate) url: String,
    /// Credentials file (JWT and nkey seed).
    #[arg(long = "nats-creds", env = "PAGEFLEET_NATS_CREDS")]
    pub(crate) creds: Option<PathBuf>,
    /// NKey seed.
    #[arg(long = "nats-nkey", env = "PAGEFLEET_NATS_NKEY")]
    pub(crate) nkey: Option<String>,
    /// Token.
    #[arg(long = "nats-token", env = "PAGEFLEET_NATS_TOKEN")]
    pub(crate) token: Option<String>,
    /// User name (with --nats-password).
    #[arg(long = "nats-user", env = "PAGEFLEET_NATS_USER", requires = "password")]
    pub(crate) user: Option<String>,
    /// Password.
    #[arg(long = "nats-password", env = "PAGEFLEET_NATS_PASSWORD")]
    pub(crate) password: Option<String>,
    /// CA certificate (PEM) to trust for TLS; implies TLS.
    #[arg(long = "nats-ca", env = "PAGEFLEET_NATS_CA")]
    pub(crate) ca: Option<PathBuf>,
    /// Require TLS.
    #[arg(long = "nats-tls", env = "PAGEFLEET_NATS_TLS")]
    pub(crate) tls: bool,
}

/// Where documents, page images and results are stored.
#[derive(Debug, Clone, Args)]
pub(crate) struct StoreArgs {
    /// `s3://bucket[/prefix]` for S3-compatible storage (credentials and region
    /// from the standard AWS_* variables), or a local folder [default: the
    /// runtime home's data/objects].
    #[arg(long = "store", env = "PAGEFLEET_STORE")]
    pub(crate) location: Option<String>,
    /// S3 endpoint for S3-compatible servers (MinIO, SeaweedFS, ...).
    #[arg(long = "s3-endpoint", env = "PAGEFLEET_S3_ENDPOINT")]
    pub(crate) endpoint: Option<String>,
    /// S3 region (else AWS_REGION / AWS_DEFAULT_REGION, else us-east-1).
    #[arg(long = "s3-region", env = "PAGEFLEET_S3_REGION")]
    pub(crate) region: Option<String>,
    /// Path-style requests (bucket in the path), as most self-hosted servers need.
    #[arg(long = "s3-path-style", env = "PAGEFLEET_S3_PATH_STYLE")]
    pub(crate) path_style: bool,
}

/// `pagefleet doctor`.
#[derive(Debug, Args)]
pub(crate) struct DoctorArgs {
    #[command(flatten)]
    pub(crate) nats: NatsArgs,
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    #[command(flatten)]
    pub(crate) model: ModelArgs,
}

/// Liveness and readiness probes.
#[derive(Debug, Clone, Args)]
pub(crate) struct ProbeArgs {
    /// Address to serve /healthz and /readyz on (e.g. 0.0.0.0:8080); none when unset.
    #[arg(long = "health-addr", env = "PAGEFLEET_HEALTH_ADDR")]
    pub(crate) addr: Option<std::net::SocketAddr>,
}

/// Queue behaviour: ack deadlines, redelivery, flow control.
#[derive(Debug, Clone, Args)]
pub(crate) struct QueueArgs {
    /// Seconds a page may go unacknowledged before redelivery (progress acks
    /// extend it while a page is worked on).
    #[arg(long, env = "PAGEFLEET_PAGE_ACK_WAIT", default_value_t = 30.0)]
    pub(crate) page_ack_wait: f64,
    /// Deliveries of a page before it is recorded as failed.
    #[arg(long, env = "PAGEFLEET_PAGE_MAX_DELIVER", default_value_t = 4)]
    pub(crate) page_max_deliver: i64,
    /// Seconds between redeliveries of a page, comma-separated (empty: ack wait).
    #[arg(long, env = "PAGEFLEET_PAGE_BACKOFF", value_delimiter = ',')]
    pub(crate) page_backoff: Vec<f64>,
    /// Page jobs delivered and unacknowledged at once, over all workers.
    #[arg(long, env = "PAGEFLEET_PAGE_MAX_ACK_PENDING", default_value_t = 1024)]
    pub(crate) page_max_ack_pending: i64,
    /// Seconds a document may go unacknowledged while it is rasterized.
    #[arg(long, env = "PAGEFLEET_DOC_ACK_WAIT", default_value_t = 60.0)]
    pub(crate) doc_ack_wait: f64,
    /// Deliveries of a document job before it is given up.
    #[arg(long, env = "PAGEFLEET_DOC_MAX_DELIVER", default_value_t = 5)]
    pub(crate) doc_max_deliver: i64,
    /// Stream replicas (1 for a single server).
    #[arg(long, env = "PAGEFLEET_REPLICAS", default_value_t = 1)]
    pub(crate) replicas: usize,
}

/// Settings of the rasterizer stage.
#[derive(Debug, Clone, Args)]
pub(crate) struct RasterizerArgs {
    #[command(flatten)]
    pub(crate) nats: NatsArgs,
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    #[command(flatten)]
    pub(crate) queue: QueueArgs,
    #[command(flatten)]
    pub(crate) probes: ProbeArgs,
    /// Most pixels an image file may declare before it is refused undecoded.
    #[arg(long, env = "PAGEFLEET_MAX_DECODE_PIXELS", default_value_t = pagefleet_rasterizer::DEFAULT_MAX_DECODE_PIXELS)]
    pub(crate) max_decode_pixels: u64,
    /// Most pages per document.
    #[arg(long, env = "PAGEFLEET_MAX_PAGES", default_value_t = 10_000)]
    pub(crate) max_pages: usize,
}

/// Settings of the OCR worker stage.
#[derive(Debug, Args)]
pub(crate) struct WorkerArgs {
    #[command(flatten)]
    pub(crate) nats: NatsArgs,
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    #[command(flatten)]
    pub(crate) queue: QueueArgs,
    #[command(flatten)]
    pub(crate) model: ModelArgs,
    #[command(flatten)]
    pub(crate) probes: ProbeArgs,
    /// This worker's name [default: host name and process id].
    #[arg(long, env = "PAGEFLEET_WORKER_NAME")]
    pub(crate) name: Option<String>,
    /// Seconds a page may take before the worker lets it go.
    #[arg(long, env = "PAGEFLEET_PAGE_DEADLINE", default_value_t = 120.0)]
    pub(crate) page_deadline: f64,
}

/// Settings of the aggregator stage.
#[derive(Debug, Clone, Args)]
pub(crate) struct AggregatorArgs {
    #[command(flatten)]
    pub(crate) nats: NatsArgs,
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    #[command(flatten)]
    pub(crate) queue: QueueArgs,
    #[command(flatten)]
    pub(crate) probes: ProbeArgs,
}

/// `pagefleet run`.
#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// Documents to read.
    #[arg(required = true)]
    pub(crate) files: Vec<PathBuf>,
    /// Output folder: <out>/<doc>/<page>.txt, result.json, combined.txt, combined.md.
    #[arg(long, env = "PAGEFLEET_OUT")]
    pub(crate) out: PathBuf,
    /// An existing NATS server instead of starting one.
    #[arg(long = "nats", env = "PAGEFLEET_NATS_URL")]
    pub(crate) nats: Option<String>,
    /// Folder for the started nats-server's store and the local object store
    /// [default: the runtime home's data folder].
    #[arg(long, env = "PAGEFLEET_DATA")]
    pub(crate) data: Option<PathBuf>,
    /// OCR workers (inference slots) in this process.
    #[arg(long, env = "PAGEFLEET_WORKERS")]
    pub(crate) workers: Option<usize>,
    /// Resolution PDF pages are rendered at.
    #[arg(long, env = "PAGEFLEET_DPI", default_value_t = pagefleet_rasterizer::DEFAULT_DPI)]
    pub(crate) dpi: f32,
    /// Do not print recognised text on standard output.
    #[arg(long, short)]
    pub(crate) quiet: bool,
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    #[command(flatten)]
    pub(crate) queue: QueueArgs,
    #[command(flatten)]
    pub(crate) model: ModelArgs,
}

/// Where the native runtime (ONNX Runtime, PDFium, nats-server, models) lives.
#[derive(Debug, Args)]
pub(crate) struct HomeArgs {
    /// Folder that scripts/bootstrap installed the runtime into [default: the
    /// nearest `.pagefleet` beside the working directory or the binary].
    #[arg(long = "home", env = "PAGEFLEET_HOME", global = true)]
    pub(crate) path: Option<PathBuf>,
}

/// Log output.
#[derive(Debug, Args)]
pub(crate) struct LogArgs {
    /// Log format on standard error.
    #[arg(long = "log-format", env = "PAGEFLEET_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub(crate) format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    /// Timestamped human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Which models to run and how.
#[derive(Debug, Clone, Args)]
pub(crate) struct ModelArgs {
    /// Model profile: fast (PP-OCRv6 tiny) or accurate (PP-OCRv6 small).
    #[arg(long, env = "PAGEFLEET_PROFILE", default_value = "fast")]
    pub(crate) profile: Profile,
    /// Detection model file, replacing the profile's (needs --rec-model and --dict).
    #[arg(long, env = "PAGEFLEET_DET_MODEL", requires_all = ["rec_model", "dict"])]
    pub(crate) det_model: Option<PathBuf>,
    /// Recognition model file, replacing the profile's.
    #[arg(long, env = "PAGEFLEET_REC_MODEL", requires = "det_model")]
    pub(crate) rec_model: Option<PathBuf>,
    /// Recognition dictionary for --rec-model.
    #[arg(long, env = "PAGEFLEET_DICT", requires = "det_model")]
    pub(crate) dict: Option<PathBuf>,
    /// Text-line angle classifier for custom models.
    #[arg(long, env = "PAGEFLEET_CLS_MODEL", requires = "det_model")]
    pub(crate) cls_model: Option<PathBuf>,
    /// PP-OCR family of custom models: v4, v5 or v6.
    #[arg(long, env = "PAGEFLEET_MODEL_FAMILY", default_value = "v6")]
    pub(crate) model_family: String,
    /// Classify each line as upright or upside down before recognising it.
    #[arg(long, env = "PAGEFLEET_CLASSIFY_LINES", default_value_t = false)]
    pub(crate) classify_lines: bool,
    /// Inference slots (pages processed at once), each with its own sessions
    /// [default: one per core, at most 8].
    #[arg(long, env = "PAGEFLEET_SLOTS")]
    pub(crate) slots: Option<usize>,
    /// ONNX Runtime threads per slot [default: cores / slots].
    #[arg(long, env = "PAGEFLEET_INTRA_THREADS")]
    pub(crate) intra_threads: Option<usize>,
    /// Longest side detection runs at; larger pages are scaled down for detection
    /// only (recognition always reads the full page). 0 keeps the profile's limit.
    #[arg(long, env = "PAGEFLEET_DET_MAX_SIDE", default_value_t = 0)]
    pub(crate) det_max_side: u32,
    /// Most text lines per recognition batch (1 is fastest on CPUs).
    #[arg(long, env = "PAGEFLEET_REC_BATCH", default_value_t = pagefleet_ocr_worker::engine::DEFAULT_REC_BATCH)]
    pub(crate) rec_batch: usize,
    /// Most pixels of one page image; larger pages are scaled down.
    #[arg(long, env = "PAGEFLEET_MAX_PIXELS", default_value_t = pagefleet_schemas::DEFAULT_MAX_PIXELS)]
    pub(crate) max_pixels: u64,
}

#[derive(Debug, Args)]
pub(crate) struct OcrArgs {
    /// Documents to read.
    #[arg(required = true)]
    pub(crate) files: Vec<PathBuf>,
    /// Output folder: <out>/<doc>/<page>.txt, result.json, combined.txt, combined.md.
    #[arg(long, env = "PAGEFLEET_OUT")]
    pub(crate) out: PathBuf,
    /// Resolution PDF pages are rendered at.
    #[arg(long, env = "PAGEFLEET_DPI", default_value_t = pagefleet_rasterizer::DEFAULT_DPI)]
    pub(crate) dpi: f32,
    /// Most pixels an image file may declare before it is refused undecoded.
    #[arg(long, env = "PAGEFLEET_MAX_DECODE_PIXELS", default_value_t = pagefleet_rasterizer::DEFAULT_MAX_DECODE_PIXELS)]
    pub(crate) max_decode_pixels: u64,
    /// Most pages per document.
    #[arg(long, env = "PAGEFLEET_MAX_PAGES", default_value_t = 10_000)]
    pub(crate) max_pages: usize,
    /// Do not print recognised text on standard output.
    #[arg(long, short)]
    pub(crate) quiet: bool,
    #[command(flatten)]
    pub(crate) model: ModelArgs,
}
