//! A worker's inference settings, with their defaults, and the pool they
//! start: the one way `pagefleet ocr`, the worker stage and the in-process
//! pipeline load models.

use std::path::{Path, PathBuf};
use std::time::Instant;

use pagefleet_schemas::PixelBudget;
use tracing::info;

use crate::engine::{DEFAULT_REC_BATCH, Provider};
use crate::{Engine, EngineConfig, EngineError, ModelSet, Pool};

/// Each slot holds its own sessions and arenas (about 200 MiB at full pages),
/// so the default stops growing with the core count here.
pub const MAX_DEFAULT_SLOTS: usize = 8;

/// Lines per recognition batch on GPUs, which want the work in large pieces.
pub const GPU_REC_BATCH: usize = 32;

/// Which models to run, where, and in how many slots.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// ONNX Runtime's shared library.
    pub runtime: PathBuf,
    /// Model files and their family's parameters.
    pub models: ModelSet,
    /// Inference slots (pages read at once); `None`: one per core, at most
    /// [`MAX_DEFAULT_SLOTS`].
    pub slots: Option<usize>,
    /// ONNX Runtime threads per slot; `None`: the cores shared among the slots.
    pub intra_threads: Option<usize>,
    /// Where the models run.
    pub provider: Provider,
    /// Classify each line as upright or upside down first (needs `models.cls`).
    pub classify_lines: bool,
    /// Most pixels of one page image; larger pages are scaled down.
    pub max_pixels: u64,
    /// Most lines per recognition batch; `None`: [`DEFAULT_REC_BATCH`] on
    /// CPUs, [`GPU_REC_BATCH`] on GPUs.
    pub rec_batch: Option<usize>,
    /// Recognition on fixed shapes only ([`EngineConfig::rec_buckets`]);
    /// `None`: on GPUs, not on CPUs.
    pub rec_buckets: Option<bool>,
    /// The recognizer's output summarised inside the network
    /// ([`EngineConfig::rec_summary`]); `None`: on GPUs, not on CPUs.
    pub rec_summary: Option<bool>,
}

impl PoolConfig {
    /// The defaults for `models`, with ONNX Runtime from `runtime`.
    pub fn new(runtime: PathBuf, models: ModelSet) -> Self {
        Self {
            runtime,
            models,
            slots: None,
            intra_threads: None,
            provider: Provider::Cpu,
            classify_lines: false,
            max_pixels: pagefleet_schemas::DEFAULT_MAX_PIXELS,
            rec_batch: None,
            rec_buckets: None,
            rec_summary: None,
        }
    }

    /// Slots and threads per slot: explicit values win; otherwise one
    /// single-threaded slot per core, at most [`MAX_DEFAULT_SLOTS`], and the
    /// cores shared among the slots. On 2 cores, 2 slots of 1 thread did the
    /// sample pages in 15.7 s where 1 slot of 2 threads took 19.1 s: pages are
    /// independent, while threads inside one run wait on each other.
    pub fn plan(&self) -> (usize, usize) {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let slots = self.slots.unwrap_or(cores.min(MAX_DEFAULT_SLOTS)).max(1);
        let threads = self.intra_threads.unwrap_or((cores / slots).max(1)).max(1);
        (slots, threads)
    }

    /// Lines per recognition batch.
    pub fn rec_batch(&self) -> usize {
        match (self.rec_batch, self.provider) {
            (Some(n), _) => n.max(1),
            (None, Provider::Cpu) => DEFAULT_REC_BATCH,
            (None, _) => GPU_REC_BATCH,
        }
    }

    /// Whether recognition runs on fixed shapes only.
    pub fn rec_buckets(&self) -> bool {
        self.rec_buckets.unwrap_or(self.provider.is_gpu())
    }

    /// Whether the recognizer's output is summarised inside the network.
    pub fn rec_summary(&self) -> bool {
        self.rec_summary.unwrap_or(self.provider.is_gpu())
    }

    /// The files loading needs: the runtime and the model files.
    pub fn files(&self) -> Vec<&Path> {
        let mut files = vec![
            self.runtime.as_path(),
            self.models.det.as_path(),
            self.models.rec.as_path(),
            self.models.dict.as_path(),
        ];
        if self.classify_lines {
            files.extend(self.models.cls.as_deref());
        }
        files.extend(self.models.orientation.as_deref());
        files
    }

    /// Loads an engine per slot (blocking: seconds) and starts the pool.
    pub fn start(&self) -> Result<Pool, EngineError> {
        let (slots, intra_threads) = self.plan();
        let config = EngineConfig {
            models: self.models.clone(),
            intra_threads,
            provider: self.provider,
            classify_lines: self.classify_lines,
            budget: PixelBudget::new(self.max_pixels),
            rec_batch: self.rec_batch(),
            rec_buckets: self.rec_buckets(),
            rec_summary: self.rec_summary(),
        };
        info!(profile = %config.models.name, slots, intra_threads, provider = config.provider.name(), "loading models");
        let started = Instant::now();
        let runtime = self.runtime.clone();
        let pool = Pool::start(slots, slots, move |_| {
            Engine::load(&runtime, config.clone())
        })?;
        info!(ms = started.elapsed().as_millis() as u64, "models loaded");
        Ok(pool)
    }
}
