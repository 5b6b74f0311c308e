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
#[derive(Debug, Args)]
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
    /// Output folder: <out>/<doc>/<page>.txt, result.json, combined.txt.
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
