//! Models behind a small trait, so that post-processing can be tested on
//! hand-made tensors and the engine on any runtime.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use ndarray::{Array4, ArrayD};
use ort::ep;
use ort::session::builder::{GraphOptimizationLevel, SessionBuilder};
use ort::session::{RunOptions, Session};
use ort::value::TensorRef;

use super::{EditError, EngineError};

/// A network with one float NCHW input and one float output.
pub trait Model: Send {
    /// Channels and fixed height/width of the input, where the model fixes them.
    fn input_shape(&self) -> [Option<usize>; 3];
    /// Runs the network on a batch.
    fn run(&mut self, input: &Array4<f32>) -> Result<ArrayD<f32>, EngineError>;
    /// A handle that stops a run in progress from another thread, where the
    /// runtime can.
    fn stopper(&self) -> Option<Arc<RunOptions>> {
        None
    }
}

static ENVIRONMENT: OnceLock<Result<ort::environment::Environment, String>> = OnceLock::new();

/// Loads ONNX Runtime from `library` once per process. Later calls return the
/// first outcome, whatever path they name.
pub fn load_runtime(library: &Path) -> Result<&'static ort::environment::Environment, EngineError> {
    ENVIRONMENT
        .get_or_init(|| {
            if !library.is_file() {
                return Err(format!(
                    "library not found at {}; run scripts/bootstrap to install it",
                    library.display()
                ));
            }
            ort::init_from(library)
                .map_err(|e| format!("cannot load {}: {e}", library.display()))?
                .with_name("pagefleet")
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| EngineError::Runtime(e.clone()))
}

/// How ONNX Runtime runs one model.
#[derive(Debug, Clone, Copy)]
pub struct SessionOptions {
    /// Threads ONNX Runtime uses inside one operator.
    pub intra_threads: usize,
    /// Where the model runs.
    pub provider: Provider,
    /// The input shapes the model will see, for providers that build an
    /// engine per range of shapes (TensorRT); `None` where unknown.
    pub shapes: Option<ShapeRange>,
    /// On the CPU provider, run elementwise operators on the channel-blocked
    /// tensors of ONNX Runtime's optimised graph rather than reordering
    /// around them (see `engine::blocked`): the same outputs, less time, a
    /// second session build at load.
    pub elementwise_on_blocked: bool,
}

/// A range of `[batch, channels, height, width]` input shapes: the smallest,
/// the most common and the largest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShapeRange {
    /// The smallest input.
    pub min: [usize; 4],
    /// The input to tune for.
    pub opt: [usize; 4],
    /// The largest input.
    pub max: [usize; 4],
}

/// Where models run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Provider {
    /// ONNX Runtime's CPU provider (the default).
    #[default]
    Cpu,
    /// An NVIDIA GPU through ONNX Runtime's CUDA provider: needs a build with
    /// the `cuda` feature and the GPU build of ONNX Runtime
    /// (`scripts/bootstrap --gpu`).
    Cuda {
        /// CUDA device index.
        device: i32,
        /// Most GPU memory the session's arena may take, MiB.
        memory_limit_mb: usize,
    },
    /// An NVIDIA GPU through ONNX Runtime's TensorRT provider, with CUDA for
    /// what TensorRT does not take: the same build and runtime as
    /// [`Provider::Cuda`], and TensorRT's own libraries. Engines are built
    /// for each model's [`ShapeRange`] and cached beside the model file.
    TensorRt {
        /// CUDA device index.
        device: i32,
        /// Most GPU memory the CUDA arena may take, MiB.
        memory_limit_mb: usize,
    },
}

impl Provider {
    /// `cpu`, `cuda` or `tensorrt`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Cpu => "cpu",
            Self::Cuda { .. } => "cuda",
            Self::TensorRt { .. } => "tensorrt",
        }
    }

    /// Whether models run on a GPU.
    pub fn is_gpu(&self) -> bool {
        !matches!(self, Self::Cpu)
    }
}

/// The CUDA provider as pagefleet runs it. Page and line images change shape
/// with every run: cuDNN's exhaustive algorithm search would benchmark every
/// new shape (the known slow path), so the heuristic picks instead; the arena
/// is bounded and grows by what is asked, not by doubling.
#[cfg(feature = "cuda")]
fn cuda(device: i32, memory_limit_mb: usize) -> ep::ExecutionProviderDispatch {
    use ep::{ArenaExtendStrategy, cuda::ConvAlgorithmSearch};
    ep::CUDA::default()
        .with_device_id(device)
        .with_conv_algorithm_search(ConvAlgorithmSearch::Heuristic)
        .with_memory_limit(memory_limit_mb.saturating_mul(1024 * 1024))
        .with_arena_extend_strategy(ArenaExtendStrategy::SameAsRequested)
        .build()
        // No silent fall-back to the CPU: a GPU worker without a GPU fails.
        .error_on_failure()
}

/// The TensorRT provider for the model at `path` (`bytes`, the model as
/// loaded): one optimisation profile over `shapes`, and engine and timing
/// caches in a `tensorrt` folder beside the model, named by the model's
/// content so that a cut or summarised variant never reads another's engine.
#[cfg(feature = "cuda")]
fn tensorrt(
    device: i32,
    path: &Path,
    bytes: &[u8],
    shapes: Option<ShapeRange>,
) -> Result<ep::ExecutionProviderDispatch, EngineError> {
    let cache = path.with_file_name("tensorrt");
    std::fs::create_dir_all(&cache).map_err(|e| {
        EngineError::Runtime(format!(
            "cannot create the TensorRT cache {}: {e}",
            cache.display()
        ))
    })?;
    let cache = cache.display().to_string();
    let mut trt = ep::TensorRT::default()
        .with_device_id(device)
        .with_engine_cache(true)
        .with_engine_cache_path(&cache)
        .with_timing_cache(true)
        .with_timing_cache_path(&cache)
        .with_engine_cache_prefix(format!("{:016x}", fnv1a(bytes)));
    if let Some(range) = shapes {
        let input = super::head::graph_inputs(bytes)
            .map_err(|message| EngineError::Model {
                path: path.to_owned(),
                message,
            })?
            .into_iter()
            .next()
            .ok_or_else(|| EngineError::Model {
                path: path.to_owned(),
                message: "the model has no input".into(),
            })?;
        let shape = |d: [usize; 4]| format!("{input}:{}x{}x{}x{}", d[0], d[1], d[2], d[3]);
        trt = trt
            .with_profile_min_shapes(shape(range.min))
            .with_profile_opt_shapes(shape(range.opt))
            .with_profile_max_shapes(shape(range.max));
    }
    Ok(trt.build().error_on_failure())
}

/// 64-bit FNV-1a of `bytes`: a stable name for what a cache was built from.
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The execution providers of a session for the model at `path`, in the
/// order ONNX Runtime tries them.
#[cfg_attr(not(feature = "cuda"), allow(unused_variables))]
fn providers(
    options: SessionOptions,
    path: &Path,
    bytes: &[u8],
) -> Result<Vec<ep::ExecutionProviderDispatch>, EngineError> {
    match options.provider {
        Provider::Cpu => Ok(vec![ep::CPU::default().with_arena_allocator(true).build()]),
        #[cfg(feature = "cuda")]
        Provider::Cuda {
            device,
            memory_limit_mb,
        } => Ok(vec![cuda(device, memory_limit_mb)]),
        #[cfg(feature = "cuda")]
        Provider::TensorRt {
            device,
            memory_limit_mb,
        } => Ok(vec![
            tensorrt(device, path, bytes, options.shapes)?,
            cuda(device, memory_limit_mb),
        ]),
        #[cfg(not(feature = "cuda"))]
        gpu => Err(EngineError::Runtime(format!(
            "this build has no {} support: build with `--features cuda`",
            match gpu {
                Provider::TensorRt { .. } => "TensorRT",
                _ => "CUDA",
            }
        ))),
    }
}

/// A session builder for the model at `path` with pagefleet's settings.
fn builder(
    env: &ort::environment::Environment,
    options: SessionOptions,
    path: &Path,
    bytes: Option<&[u8]>,
    level: GraphOptimizationLevel,
) -> Result<SessionBuilder, EngineError> {
    let model_err = |e: ort::Error<_>| EngineError::Model {
        path: path.to_owned(),
        message: e.to_string(),
    };
    Session::builder(env)
        .map_err(|e| EngineError::Runtime(e.to_string()))?
        .with_optimization_level(level)
        .map_err(model_err)?
        .with_intra_threads(options.intra_threads.max(1))
        .map_err(model_err)?
        .with_inter_threads(1)
        .map_err(model_err)?
        // Input sizes change with every page and line: memory patterns are
        // planned per shape and would only pile up.
        .with_memory_pattern(false)
        .map_err(model_err)?
        // The tanh form of GELU: 5% less CPU time for fast-latin on the
        // samples (paired runs) for the same scores on both page sets.
        .with_config_entry("optimization.enable_gelu_approximation", "1")
        .map_err(model_err)?
        .with_execution_providers(providers(options, path, bytes.unwrap_or_default())?)
        .map_err(|e| EngineError::Model {
            path: path.to_owned(),
            message: match options.provider {
                Provider::Cpu => e.to_string(),
                // ONNX Runtime says only that its build lacks the provider,
                // or which library it could not open.
                gpu => format!(
                    "{e} ({} needs ONNX Runtime's GPU build, from scripts/bootstrap --gpu, \
                     and the CUDA 13 and cuDNN 9 libraries{} on LD_LIBRARY_PATH)",
                    gpu.name(),
                    if matches!(gpu, Provider::TensorRt { .. }) {
                        ", and TensorRT 10's,"
                    } else {
                        ""
                    }
                ),
            },
        })
}

/// The session of `builder` for `bytes`, or the file at `path`.
fn commit(
    mut builder: SessionBuilder,
    path: &Path,
    bytes: Option<&[u8]>,
) -> Result<Session, EngineError> {
    match bytes {
        Some(bytes) => builder.commit_from_memory(bytes),
        None => builder.commit_from_file(path),
    }
    .map_err(|e| EngineError::Model {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

/// A CPU session on ONNX Runtime's optimised graph with its elementwise
/// operators moved onto blocked tensors ([`super::blocked`]). Where the
/// optimised graph cannot be written, read or rewritten, or has nothing to
/// move, the ordinary session is kept.
fn blocked_session(
    env: &ort::environment::Environment,
    options: SessionOptions,
    path: &Path,
    bytes: Option<&[u8]>,
) -> Result<(Session, usize), EngineError> {
    static SAVED: AtomicUsize = AtomicUsize::new(0);
    let saved = std::env::temp_dir().join(format!(
        "pagefleet-{}-{}.onnx",
        std::process::id(),
        SAVED.fetch_add(1, Ordering::Relaxed)
    ));
    let ordinary = || {
        let plain = builder(env, options, path, bytes, GraphOptimizationLevel::Level3)?;
        commit(plain, path, bytes)
    };
    let first = builder(env, options, path, bytes, GraphOptimizationLevel::Level3)?
        .with_optimized_model_path(&saved)
        .map_err(|e| EngineError::Model {
            path: path.to_owned(),
            message: e.to_string(),
        })
        .and_then(|b| commit(b, path, bytes));
    // Where the optimised graph cannot be written (no writable temporary
    // folder), the ordinary session does.
    let session = match first {
        Ok(session) => session,
        Err(e) => {
            tracing::debug!(path = %path.display(), error = %e, "optimised graph not written");
            return Ok((ordinary()?, 0));
        }
    };
    let optimised = std::fs::read(&saved).map_err(|e| EditError::from(e.to_string()));
    let _ = std::fs::remove_file(&saved);
    let sunk = optimised.and_then(|model| super::blocked::sink_reorders(&model));
    let plain = |message: EditError| {
        tracing::debug!(path = %path.display(), %message, "elementwise operators left in plain layout");
        (session, 0)
    };
    match sunk {
        Ok((model, removed)) if removed > 0 => {
            // The graph is optimised already, for this machine's block size.
            let rebuilt = builder(
                env,
                options,
                path,
                Some(&model),
                GraphOptimizationLevel::Disable,
            )
            .and_then(|b| commit(b, path, Some(&model)));
            match rebuilt {
                Ok(blocked) => Ok((blocked, removed)),
                Err(e) => Ok(plain(EditError::from(e.to_string()))),
            }
        }
        Ok(_) => Ok(plain(EditError::from("nothing to move"))),
        Err(message) => Ok(plain(message)),
    }
}

/// A model run by ONNX Runtime.
pub struct OrtModel {
    session: Session,
    reorders_removed: usize,
    run_options: Arc<RunOptions>,
    path: PathBuf,
    input_shape: [Option<usize>; 3],
    step: &'static str,
}

impl OrtModel {
    /// Loads `path` into its own session. `step` names the model in errors.
    pub fn load(
        env: &ort::environment::Environment,
        path: &Path,
        options: SessionOptions,
        step: &'static str,
    ) -> Result<Self, EngineError> {
        Self::load_from(env, path, None, options, step)
    }

    /// Loads a model read from, or made from, `path`: `bytes` when given,
    /// the file otherwise.
    pub fn load_from(
        env: &ort::environment::Environment,
        path: &Path,
        bytes: Option<&[u8]>,
        options: SessionOptions,
        step: &'static str,
    ) -> Result<Self, EngineError> {
        if bytes.is_none() && !path.is_file() {
            return Err(EngineError::Missing {
                what: "model file",
                path: path.to_owned(),
                hint: "run scripts/bootstrap, or check the model paths".into(),
            });
        }
        // TensorRT names its caches after the model and reads its input's
        // name: it needs the bytes even where the file would do.
        let read;
        let bytes = match (bytes, options.provider) {
            (None, Provider::TensorRt { .. }) => {
                read = std::fs::read(path).map_err(|e| EngineError::Missing {
                    what: "model file",
                    path: path.to_owned(),
                    hint: format!("{e}; run scripts/bootstrap, or check the model paths"),
                })?;
                Some(&read[..])
            }
            _ => bytes,
        };
        let (session, reorders_removed) =
            if options.provider == Provider::Cpu && options.elementwise_on_blocked {
                blocked_session(env, options, path, bytes)?
            } else {
                let plain = builder(env, options, path, bytes, GraphOptimizationLevel::Level3)?;
                (commit(plain, path, bytes)?, 0)
            };
        let inputs = session.inputs();
        let outputs = session.outputs();
        if inputs.len() != 1 || outputs.is_empty() {
            return Err(EngineError::Model {
                path: path.to_owned(),
                message: format!(
                    "expected one input and an output, found {} and {}",
                    inputs.len(),
                    outputs.len()
                ),
            });
        }
        let input_shape = match inputs[0].dtype().tensor_shape() {
            Some(shape) if shape.len() == 4 => {
                let dim = |i: usize| usize::try_from(shape[i]).ok().filter(|&d| d > 0);
                [dim(1), dim(2), dim(3)]
            }
            _ => {
                return Err(EngineError::Model {
                    path: path.to_owned(),
                    message: "input is not a 4-dimensional tensor".into(),
                });
            }
        };
        let mut run_options = RunOptions::new().map_err(|e| EngineError::Runtime(e.to_string()))?;
        // Hand arena chunks that one large input needed back after each run, so
        // memory follows the current page rather than the largest page ever seen.
        run_options
            .set("memory.enable_memory_arena_shrinkage", "cpu:0")
            .map_err(|e| EngineError::Runtime(e.to_string()))?;
        Ok(Self {
            session,
            reorders_removed,
            run_options: Arc::new(run_options),
            path: path.to_owned(),
            input_shape,
            step,
        })
    }

    /// The model file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Layout reorders the session runs without (see
    /// [`SessionOptions::elementwise_on_blocked`]).
    pub fn reorders_removed(&self) -> usize {
        self.reorders_removed
    }
}

impl Model for OrtModel {
    fn input_shape(&self) -> [Option<usize>; 3] {
        self.input_shape
    }

    fn stopper(&self) -> Option<Arc<RunOptions>> {
        Some(Arc::clone(&self.run_options))
    }

    fn run(&mut self, input: &Array4<f32>) -> Result<ArrayD<f32>, EngineError> {
        let step = self.step;
        let fail = |e: ort::Error| EngineError::Inference {
            step,
            message: e.to_string(),
        };
        let tensor = TensorRef::from_array_view(input.view()).map_err(fail)?;
        let outputs = self
            .session
            .run_with_options(ort::inputs![tensor], &*self.run_options)
            .map_err(fail)?;
        let array = outputs[0].try_extract_array::<f32>().map_err(fail)?;
        Ok(array.to_owned())
    }
}
