//! Command-line interface. Every flag can also be set through a `PAGEFLEET_*`
//! environment variable.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
pub(crate) use pagefleet::settings::{DataArgs, NatsArgs, QueueArgs, SharedArgs, StoreArgs};
use pagefleet_ocr_worker::Profile;
use pagefleet_schemas::Format;

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
    /// The ingest stage: the HTTP API, NATS submission, bucket triggers.
    Ingest(IngestArgs),
    /// The single-machine server: its own nats-server (unless --nats), every
    /// stage, the HTTP API and NATS submission, until stopped.
    Serve(ServeArgs),
    /// Submit a document (a file, or s3://bucket/key of the deployment's
    /// store) to a running deployment's HTTP API.
    Submit(SubmitArgs),
    /// A job's status and progress.
    Status(JobArgs),
    /// A finished job's text, markdown or JSON.
    Result(ResultArgs),
    /// Removes an ended job (its state, objects and events); cancels a
    /// running one, and with --purge removes it too.
    Delete(DeleteArgs),
    /// Live job events from NATS, one line each.
    Watch(WatchArgs),
    /// Check NATS, JetStream, object storage, the runtime files, ONNX Runtime
    /// and PDFium; exits non-zero when anything fails.
    Doctor(DoctorArgs),
    /// NATS administration.
    Nats {
        #[command(subcommand)]
        command: NatsCommand,
    },
}

impl Command {
    /// The command's name, which names the process in traces.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Self::Ocr(_) => "ocr",
            Self::Run(_) => "run",
            Self::Rasterizer(_) => "rasterizer",
            Self::OcrWorker(_) => "ocr-worker",
            Self::Aggregator(_) => "aggregator",
            Self::Ingest(_) => "ingest",
            Self::Serve(_) => "serve",
            Self::Submit(_) => "submit",
            Self::Status(_) => "status",
            Self::Result(_) => "result",
            Self::Delete(_) => "delete",
            Self::Watch(_) => "watch",
            Self::Doctor(_) => "doctor",
            Self::Nats { .. } => "nats",
        }
    }
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

/// `pagefleet doctor`.
#[derive(Debug, Args)]
pub(crate) struct DoctorArgs {
    #[command(flatten)]
    pub(crate) nats: NatsArgs,
    #[command(flatten)]
    pub(crate) data: DataArgs,
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    #[command(flatten)]
    pub(crate) model: ModelArgs,
}

/// Settings of the rasterizer stage.
#[derive(Debug, Clone, Args)]
pub(crate) struct RasterizerArgs {
    #[command(flatten)]
    pub(crate) shared: SharedArgs,
    #[command(flatten)]
    pub(crate) render: RenderArgs,
}

/// The stages of the single-machine commands (`serve`, `run`): their data
/// folder, the worker's models and flags, the rasterizer's limits.
#[derive(Debug, Clone, Args)]
pub(crate) struct PipelineArgs {
    #[command(flatten)]
    pub(crate) data: DataArgs,
    #[command(flatten)]
    pub(crate) model: ModelArgs,
    #[command(flatten)]
    pub(crate) worker: WorkerFlags,
    #[command(flatten)]
    pub(crate) render: RenderArgs,
}

/// What the rasterizer takes of a document.
#[derive(Debug, Clone, Args)]
pub(crate) struct RenderArgs {
    /// Most pixels an image file may declare before it is refused undecoded.
    #[arg(long, env = "PAGEFLEET_MAX_DECODE_PIXELS", default_value_t = pagefleet_rasterizer::DEFAULT_MAX_DECODE_PIXELS)]
    pub(crate) max_decode_pixels: u64,
    /// Most pages per document.
    #[arg(long, env = "PAGEFLEET_MAX_PAGES", default_value_t = pagefleet_rasterizer::stage::DEFAULT_MAX_PAGES)]
    pub(crate) max_pages: usize,
}

/// Settings of the OCR worker stage.
#[derive(Debug, Args)]
pub(crate) struct WorkerArgs {
    #[command(flatten)]
    pub(crate) shared: SharedArgs,
    #[command(flatten)]
    pub(crate) model: ModelArgs,
    #[command(flatten)]
    pub(crate) worker: WorkerFlags,
}

/// How an OCR worker takes and holds pages.
#[derive(Debug, Clone, Args)]
pub(crate) struct WorkerFlags {
    /// This worker's name [default: host name and process id].
    #[arg(long, env = "PAGEFLEET_WORKER_NAME")]
    pub(crate) name: Option<String>,
    /// Seconds a page's inference may run, from when a slot starts reading
    /// it; past it the run is stopped and the page recorded as failed.
    #[arg(long, env = "PAGEFLEET_PAGE_DEADLINE", default_value_t = pagefleet_ocr_worker::stage::DEFAULT_PAGE_DEADLINE.as_secs_f64())]
    pub(crate) page_deadline: f64,
    /// Seconds an idle worker waits before asking for pages again. A page
    /// job published to either lane wakes it at once; this bounds how soon
    /// a page delivered again (a nak's delay or an ack wait past) is taken.
    #[arg(long, env = "PAGEFLEET_PULL_WAIT", default_value_t = pagefleet_ocr_worker::stage::DEFAULT_PULL_WAIT.as_secs_f64())]
    pub(crate) pull_wait: f64,
}

/// Settings of the aggregator stage.
#[derive(Debug, Clone, Args)]
pub(crate) struct AggregatorArgs {
    #[command(flatten)]
    pub(crate) shared: SharedArgs,
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
    #[command(flatten)]
    pub(crate) shared: SharedArgs,
    #[command(flatten)]
    pub(crate) pipeline: PipelineArgs,
    /// OCR workers (inference slots) in this process.
    #[arg(long, env = "PAGEFLEET_WORKERS")]
    pub(crate) workers: Option<usize>,
    /// Resolution PDF pages are rendered at, and images that declare none
    /// are taken at.
    #[arg(long, env = "PAGEFLEET_DPI", default_value_t = pagefleet_rasterizer::DEFAULT_DPI)]
    pub(crate) dpi: f32,
    /// Do not print recognised text on standard output.
    #[arg(long, short)]
    pub(crate) quiet: bool,
    #[command(flatten)]
    pub(crate) text_layer: TextLayerArgs,
    #[command(flatten)]
    pub(crate) language: LanguageArgs,
    #[command(flatten)]
    pub(crate) formats: FormatsArgs,
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
    /// Read pages as they are given: no turning of sideways and upside-down
    /// pages by the page-orientation classifier.
    #[arg(long, env = "PAGEFLEET_NO_PAGE_ORIENTATION", default_value_t = false)]
    pub(crate) no_page_orientation: bool,
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
    /// Most text lines per recognition batch [default: 1 on CPUs, where it
    /// is fastest; 32 on GPUs].
    #[arg(long, env = "PAGEFLEET_REC_BATCH")]
    pub(crate) rec_batch: Option<usize>,
    /// Recognise on fixed input shapes only: lines padded to one of eight
    /// widths, batches of one size per width [default: on GPUs, where each
    /// new shape is planned again; off on CPUs, where padding is extra work].
    #[arg(long, env = "PAGEFLEET_REC_BUCKETS")]
    pub(crate) rec_buckets: bool,
    /// Summarise the recogniser's output inside the network (best class,
    /// its probability and the space's per timestep) so that only those
    /// leave the runtime [default: on GPUs; off on CPUs, where it gains
    /// nothing].
    #[arg(long, env = "PAGEFLEET_REC_SUMMARY")]
    pub(crate) rec_summary: bool,
    /// Most pixels of one page image; larger pages are scaled down.
    #[arg(long, env = "PAGEFLEET_MAX_PIXELS", default_value_t = pagefleet_schemas::DEFAULT_MAX_PIXELS)]
    pub(crate) max_pixels: u64,
    /// Where the models run: cpu, cuda, or tensorrt (TensorRT with CUDA for
    /// the rest; both need a build with `--features cuda` and the runtime
    /// from `scripts/bootstrap --gpu`, TensorRT also its own libraries).
    #[arg(long, env = "PAGEFLEET_EXECUTION_PROVIDER", value_enum, default_value_t = ExecutionProvider::Cpu)]
    pub(crate) execution_provider: ExecutionProvider,
    /// CUDA device index.
    #[arg(long, env = "PAGEFLEET_GPU_DEVICE", default_value_t = 0)]
    pub(crate) gpu_device: i32,
    /// Most GPU memory one model session's arena may take, MiB (each slot
    /// has a detection and a recognition session).
    #[arg(long, env = "PAGEFLEET_GPU_MEM_LIMIT_MB", default_value_t = 2048)]
    pub(crate) gpu_mem_limit_mb: usize,
}

/// Where models run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ExecutionProvider {
    /// ONNX Runtime's CPU provider.
    Cpu,
    /// An NVIDIA GPU through ONNX Runtime's CUDA provider.
    Cuda,
    /// An NVIDIA GPU through ONNX Runtime's TensorRT provider.
    Tensorrt,
}

impl ModelArgs {
    /// The engine's provider from the flags.
    pub(crate) fn provider(&self) -> pagefleet_ocr_worker::engine::Provider {
        match self.execution_provider {
            ExecutionProvider::Cpu => pagefleet_ocr_worker::engine::Provider::Cpu,
            ExecutionProvider::Cuda => pagefleet_ocr_worker::engine::Provider::Cuda {
                device: self.gpu_device,
                memory_limit_mb: self.gpu_mem_limit_mb,
            },
            ExecutionProvider::Tensorrt => pagefleet_ocr_worker::engine::Provider::TensorRt {
                device: self.gpu_device,
                memory_limit_mb: self.gpu_mem_limit_mb,
            },
        }
    }
}

#[derive(Debug, Args)]
pub(crate) struct OcrArgs {
    /// Documents to read.
    #[arg(required = true)]
    pub(crate) files: Vec<PathBuf>,
    /// Output folder: <out>/<doc>/<page>.txt, result.json, combined.txt, combined.md.
    #[arg(long, env = "PAGEFLEET_OUT")]
    pub(crate) out: PathBuf,
    /// Resolution PDF pages are rendered at, and images that declare none
    /// are taken at.
    #[arg(long, env = "PAGEFLEET_DPI", default_value_t = pagefleet_rasterizer::DEFAULT_DPI)]
    pub(crate) dpi: f32,
    #[command(flatten)]
    pub(crate) render: RenderArgs,
    /// Do not print recognised text on standard output.
    #[arg(long, short)]
    pub(crate) quiet: bool,
    #[command(flatten)]
    pub(crate) text_layer: TextLayerArgs,
    #[command(flatten)]
    pub(crate) language: LanguageArgs,
    #[command(flatten)]
    pub(crate) formats: FormatsArgs,
    #[command(flatten)]
    pub(crate) model: ModelArgs,
}

/// The documents' language, which decides what reads their pages.
#[derive(Debug, Clone, Args)]
pub(crate) struct LanguageArgs {
    /// The documents' language: auto (each page decides from a sample of
    /// its lines), or ISO 639-1 or 639-3 codes such as en, de, zh, or a list
    /// (en,de). Latin-script languages are read with the recognizer cut to
    /// Latin script, Chinese and Japanese with its whole output.
    #[arg(long, env = "PAGEFLEET_LANGUAGE", default_value = "auto")]
    pub(crate) language: pagefleet_schemas::language::Language,
}

/// What a run does with PDF pages that carry text.
#[derive(Debug, Clone, Args)]
pub(crate) struct TextLayerArgs {
    /// PDF pages that already carry text: auto (take a page's text from
    /// the PDF when a sample of its lines read from the pixels agrees with
    /// it, read the page otherwise), ocr (read every page from its pixels),
    /// skip (leave such pages out of OCR), use (take their text from the
    /// PDF unchecked; OCR only the pages without text).
    #[arg(
        long = "text-layer",
        env = "PAGEFLEET_TEXT_LAYER",
        default_value = "auto"
    )]
    pub(crate) mode: pagefleet_schemas::TextLayer,
}

/// Which outputs a run writes.
#[derive(Debug, Clone, Args)]
pub(crate) struct FormatsArgs {
    /// Outputs to write, comma-separated: txt (combined.txt), md
    /// (combined.md), json (result.json, always written), pdf (combined.pdf,
    /// searchable), hocr (combined.hocr), alto (combined.alto.xml). Each
    /// page's text file is always written.
    #[arg(
        long = "format",
        env = "PAGEFLEET_FORMATS",
        value_delimiter = ',',
        default_values_t = Format::DEFAULT
    )]
    pub(crate) formats: Vec<Format>,
}

/// How submissions come in and what is accepted.
#[derive(Debug, Clone, Args)]
pub(crate) struct IntakeArgs {
    /// Largest document accepted, bytes.
    #[arg(long, env = "PAGEFLEET_MAX_UPLOAD_BYTES", default_value_t = pagefleet_ingest::intake::MAX_UPLOAD_BYTES)]
    pub(crate) max_upload_bytes: u64,
    /// Most pages per job.
    #[arg(
        long = "max-job-pages",
        env = "PAGEFLEET_MAX_JOB_PAGES",
        default_value_t = pagefleet_ingest::intake::MAX_JOB_PAGES
    )]
    pub(crate) max_job_pages: u32,
    /// Accepted document types, decided by content: pdf, png, jpeg, tiff.
    #[arg(
        long,
        env = "PAGEFLEET_ALLOWED_TYPES",
        value_delimiter = ',',
        default_value = "pdf,png,jpeg,tiff"
    )]
    pub(crate) allowed_types: Vec<pagefleet_ingest::DocType>,
    /// Profiles a job may name, besides those live workers advertise; any
    /// other is refused at submission.
    #[arg(
        long,
        env = "PAGEFLEET_PROFILES",
        value_delimiter = ',',
        default_values_t = pagefleet_ingest::intake::PROFILES.map(String::from)
    )]
    pub(crate) profiles: Vec<String>,
    /// Seconds a rasterized job may wait for its first page to be read
    /// before its status says that no worker serves its profile.
    #[arg(long, env = "PAGEFLEET_WAITING_AFTER", default_value_t = pagefleet_ingest::intake::WAITING_AFTER.as_secs_f64())]
    pub(crate) waiting_after: f64,
    /// Bearer token the HTTP API requires.
    #[arg(long, env = "PAGEFLEET_API_TOKEN", hide_env_values = true)]
    pub(crate) api_token: Option<String>,
    /// Serve the HTTP API on a non-loopback address without a token.
    #[arg(long, env = "PAGEFLEET_INSECURE_NO_AUTH")]
    pub(crate) insecure_no_auth: bool,
    /// Seconds /ocr/pdf and /ocr/image wait for their job.
    #[arg(long, env = "PAGEFLEET_SYNC_TIMEOUT", default_value_t = pagefleet_ingest::http::SYNC_TIMEOUT.as_secs_f64())]
    pub(crate) sync_timeout: f64,
    /// How long the presigned URL of a result is valid (`GET
    /// /v1/jobs/{id}/result?redirect=true` on an S3 store), e.g. 15m or 1h.
    #[arg(long, env = "PAGEFLEET_PRESIGN_TTL", default_value = "15m", value_parser = humantime::parse_duration)]
    pub(crate) presign_ttl: std::time::Duration,
    /// Only objects under this prefix of the store start jobs from bucket
    /// events and the watcher.
    #[arg(long, env = "PAGEFLEET_INPUT_PREFIX", default_value = pagefleet_ingest::bucket::INPUT_PREFIX)]
    pub(crate) input_prefix: String,
    /// Outputs of bucket-triggered jobs go to <prefix><key below the input
    /// prefix>.txt, .md, .json, .pdf, .hocr and .alto.xml, as asked.
    #[arg(long, env = "PAGEFLEET_OUTPUT_PREFIX", default_value = pagefleet_ingest::bucket::OUTPUT_PREFIX)]
    pub(crate) output_prefix: String,
    /// Outputs of jobs that name none (bucket-triggered jobs among them),
    /// comma-separated: txt, md, json (always written), pdf, hocr, alto.
    #[arg(
        long = "formats",
        env = "PAGEFLEET_DEFAULT_FORMATS",
        value_delimiter = ',',
        default_values_t = Format::DEFAULT
    )]
    pub(crate) formats: Vec<Format>,
    /// Text-layer mode of jobs that name none: auto, ocr, skip or use.
    #[arg(
        long = "text-layer",
        env = "PAGEFLEET_DEFAULT_TEXT_LAYER",
        default_value = "auto"
    )]
    pub(crate) text_layer: pagefleet_schemas::TextLayer,
    /// Language of jobs that name none (bucket-triggered jobs among them):
    /// auto, or ISO 639-1 or 639-3 codes such as en or en,de.
    #[arg(long, env = "PAGEFLEET_LANGUAGE", default_value = "auto")]
    pub(crate) language: pagefleet_schemas::language::Language,
    /// Do not consume bucket events from NATS.
    #[arg(long, env = "PAGEFLEET_NO_BUCKET_EVENTS")]
    pub(crate) no_bucket_events: bool,
    /// Poll the input prefix every this many seconds, for stores that send
    /// no notifications (0: no watcher).
    #[arg(long, env = "PAGEFLEET_WATCH_INTERVAL", default_value_t = 0.0)]
    pub(crate) watch_interval: f64,
    /// How long an ended job is kept (its state, source, page images,
    /// outputs and events), e.g. `7d`, `12h`, `30m`; past it the job is
    /// removed and its routes answer 410. 0 keeps everything.
    #[arg(long, env = "PAGEFLEET_RETENTION", default_value = "7d", value_parser = humantime::parse_duration)]
    pub(crate) retention: std::time::Duration,
    /// Resolution PDF pages are rendered at, and images that declare none
    /// are taken at, unless a submission says.
    #[arg(long, env = "PAGEFLEET_DPI", default_value_t = pagefleet_rasterizer::DEFAULT_DPI)]
    pub(crate) dpi: f32,
}

/// Settings of the ingest stage.
#[derive(Debug, Clone, Args)]
pub(crate) struct IngestArgs {
    #[command(flatten)]
    pub(crate) shared: SharedArgs,
    #[command(flatten)]
    pub(crate) intake: IntakeArgs,
    /// Address of the HTTP API (which also answers /healthz and /readyz).
    #[arg(long, env = "PAGEFLEET_HTTP_ADDR", default_value = "127.0.0.1:8000")]
    pub(crate) http_addr: std::net::SocketAddr,
    /// Model profile of jobs that name none.
    #[arg(long, env = "PAGEFLEET_PROFILE", default_value = "fast")]
    pub(crate) profile: String,
    /// Most pixels of one page image; larger pages are scaled down.
    #[arg(long, env = "PAGEFLEET_MAX_PIXELS", default_value_t = pagefleet_schemas::DEFAULT_MAX_PIXELS)]
    pub(crate) max_pixels: u64,
}

/// `pagefleet serve`.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    #[command(flatten)]
    pub(crate) shared: SharedArgs,
    #[command(flatten)]
    pub(crate) pipeline: PipelineArgs,
    /// Address of the HTTP API (which also answers /healthz, /readyz and
    /// /metrics).
    #[arg(long, env = "PAGEFLEET_HTTP_ADDR", default_value = "127.0.0.1:8000")]
    pub(crate) http_addr: std::net::SocketAddr,
    #[command(flatten)]
    pub(crate) intake: IntakeArgs,
}

/// How to reach a running deployment's HTTP API.
#[derive(Debug, Clone, Args)]
pub(crate) struct ApiArgs {
    /// Base URL of the HTTP API [default: the `pagefleet serve` running on
    /// the data folder, else http://127.0.0.1:8000].
    #[arg(long = "api", env = "PAGEFLEET_API_URL")]
    pub(crate) url: Option<String>,
    /// Bearer token.
    #[arg(
        long = "api-token",
        env = "PAGEFLEET_API_TOKEN",
        hide_env_values = true
    )]
    pub(crate) token: Option<String>,
    #[command(flatten)]
    pub(crate) data: DataArgs,
}

/// `pagefleet submit`.
#[derive(Debug, Args)]
pub(crate) struct SubmitArgs {
    /// Documents: files; folders (the PDFs and images in them and in their
    /// subfolders); glob patterns such as 'scans/*.tif', quoted so that
    /// pagefleet expands them; or s3://bucket/key of objects in the
    /// deployment's store. One job each.
    #[arg(required = true, value_name = "DOCUMENT")]
    pub(crate) documents: Vec<String>,
    /// Wait for the jobs, showing one progress line for all of them; then
    /// print the result of a single document, or a line per document.
    #[arg(long)]
    pub(crate) wait: bool,
    /// Folder to write each document's results to, as NAME.FORMAT (NAME is
    /// the document's file name without its extension); waits as --wait.
    #[arg(short = 'o', long = "out", value_name = "DIR")]
    pub(crate) out: Option<std::path::PathBuf>,
    /// Formats: the one printed with --wait, or those written with --out
    /// (comma-separated): txt, md, json, pdf, hocr or alto.
    #[arg(long = "format", value_delimiter = ',', default_value = "txt")]
    pub(crate) output: Vec<Format>,
    /// Resolution PDF pages are rendered at, and images that declare none
    /// are taken at [default: the deployment's].
    #[arg(long)]
    pub(crate) dpi: Option<f32>,
    /// Model profile [default: the deployment's].
    #[arg(long)]
    pub(crate) profile: Option<String>,
    /// PDF pages that already carry text: auto, ocr, skip or use [default: the
    /// deployment's].
    #[arg(long = "text-layer")]
    pub(crate) text_layer: Option<pagefleet_schemas::TextLayer>,
    /// The document's language: auto, or ISO 639-1 or 639-3 codes such as
    /// en or en,de [default: the deployment's].
    #[arg(long)]
    pub(crate) language: Option<String>,
    /// Same key, same job: a repeated submit runs nothing new.
    #[arg(long)]
    pub(crate) idempotency_key: Option<String>,
    #[command(flatten)]
    pub(crate) api: ApiArgs,
}

/// `pagefleet status`.
#[derive(Debug, Args)]
pub(crate) struct JobArgs {
    /// The job's id.
    pub(crate) job_id: String,
    #[command(flatten)]
    pub(crate) api: ApiArgs,
}

/// `pagefleet result`.
#[derive(Debug, Args)]
pub(crate) struct ResultArgs {
    /// The job's id.
    pub(crate) job_id: String,
    /// Format: txt, md, json, pdf, hocr or alto.
    #[arg(long = "format", default_value_t = Format::Txt)]
    pub(crate) output: Format,
    #[command(flatten)]
    pub(crate) api: ApiArgs,
}

/// `pagefleet delete`.
#[derive(Debug, Args)]
pub(crate) struct DeleteArgs {
    /// The job's id.
    pub(crate) job_id: String,
    /// A running job: cancel it and remove it too.
    #[arg(long)]
    pub(crate) purge: bool,
    #[command(flatten)]
    pub(crate) api: ApiArgs,
}

/// `pagefleet watch`.
#[derive(Debug, Args)]
pub(crate) struct WatchArgs {
    /// Only this job's events [default: every job's].
    pub(crate) job_id: Option<String>,
    #[command(flatten)]
    pub(crate) nats: NatsArgs,
    #[command(flatten)]
    pub(crate) data: DataArgs,
}
