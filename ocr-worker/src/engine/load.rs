//! Loading an engine: ONNX Runtime and each model's session, the
//! recognizer's output layer cut to the profile's script (and summarised for
//! accelerators), and the input shapes TensorRT builds its engines for.

use std::path::Path;

use super::head;
use super::script::Script;
use super::{
    CLS_BATCH, CLS_HEIGHT, CLS_WIDTH, Engine, EngineConfig, EngineError, Model, ModelSet, OrtModel,
    Provider, REC_BATCH_PIXELS, REC_BUCKETS, REC_HEIGHT, REC_MIN_WIDTH, SessionOptions, ShapeRange,
    SideLimit, Vocabulary, bucket_batch, load_runtime, orient,
};

impl Engine {
    /// Loads ONNX Runtime from `runtime_library` (once per process) and the
    /// models named in `config`.
    pub fn load(runtime_library: &Path, config: EngineConfig) -> Result<Self, EngineError> {
        let env = load_runtime(runtime_library)?;
        let options = SessionOptions {
            intra_threads: config.intra_threads,
            provider: config.provider,
            shapes: None,
            elementwise_on_blocked: true,
        };
        // TensorRT builds its engines for the shapes each model will see.
        let shapes = shape_ranges(&config);
        let with = |shapes: ShapeRange| SessionOptions {
            shapes: matches!(config.provider, Provider::TensorRt { .. }).then_some(shapes),
            ..options
        };
        let det = OrtModel::load(env, &config.models.det, with(shapes.det), "detect")?;
        let cls = match (&config.models.cls, config.classify_lines) {
            (Some(path), true) => {
                Some(
                    Box::new(OrtModel::load(env, path, with(shapes.cls), "classify")?)
                        as Box<dyn Model>,
                )
            }
            _ => None,
        };
        let dict_path = &config.models.dict;
        let dict = read_installed("recognition dictionary", dict_path, |p| {
            std::fs::read_to_string(p)
        })?;
        let script = config.models.script;
        let (rec, vocab, summarized) = load_recognizer(
            env,
            &config.models,
            script,
            &dict,
            with(shapes.rec),
            config.rec_summary,
        )?;
        // The other head of the same network, so that a page of any
        // language the models read is read here (a language never waits for
        // another worker).
        let other = match script {
            Script::All => Script::Latin,
            Script::Latin => Script::All,
        };
        let spare = load_recognizer(
            env,
            &config.models,
            other,
            &dict,
            with(shapes.rec),
            config.rec_summary,
        );
        let orient = match &config.models.orientation {
            Some(path) => Some(OrtModel::load(env, path, with(shapes.orient), "orient")?),
            None => None,
        };
        let mut engine = Self::from_parts(config, Box::new(det), (rec, summarized), cls, vocab)?;
        if let Err(e) =
            spare.and_then(|(rec, vocab, steps)| engine.add_spare_head(rec, steps, vocab, other))
        {
            tracing::warn!(
                "no {} head beside the {} one; every page is read with the {} head: {e}",
                other.name(),
                script.name(),
                script.name()
            );
        }
        Ok(match orient {
            Some(model) => engine.with_orientation(Box::new(model)),
            None => engine,
        })
    }
}

/// The input shapes of each model of an engine.
struct Shapes {
    det: ShapeRange,
    rec: ShapeRange,
    cls: ShapeRange,
    orient: ShapeRange,
}

/// What each model of an engine with `config` is fed: detection a page
/// within the side limit (a limit on the short side allows up to 4,096
/// pixels), recognition its batches (every bucket with buckets on, up to the
/// batch-pixel cap without), classification its fixed line size, and the
/// orientation classifier one square.
fn shape_ranges(config: &EngineConfig) -> Shapes {
    let side = match config.models.det_params.side_limit {
        SideLimit::Max(n) => n.div_ceil(32).max(1) as usize * 32,
        SideLimit::Min(_) => 4096,
    };
    let batch = config.rec_batch.max(1);
    let h = REC_HEIGHT as usize;
    let rec = if config.rec_buckets {
        let (first, last) = (REC_BUCKETS[0], REC_BUCKETS[REC_BUCKETS.len() - 1]);
        ShapeRange {
            min: [1, 3, h, first as usize],
            opt: [bucket_batch(800, batch), 3, h, 800],
            max: [batch, 3, h, last as usize],
        }
    } else {
        ShapeRange {
            min: [1, 3, h, REC_MIN_WIDTH as usize],
            opt: [1, 3, h, 800],
            max: [batch, 3, h, REC_BATCH_PIXELS / h],
        }
    };
    let orient = [1, 3, orient::SIDE as usize, orient::SIDE as usize];
    let (ch, cw) = (CLS_HEIGHT as usize, CLS_WIDTH as usize);
    Shapes {
        det: ShapeRange {
            min: [1, 3, 32, 32],
            opt: [1, 3, side, side / 32 * 24],
            max: [1, 3, side, side],
        },
        rec,
        cls: ShapeRange {
            min: [1, 3, ch, cw],
            opt: [CLS_BATCH, 3, ch, cw],
            max: [CLS_BATCH, 3, ch, cw],
        },
        orient: ShapeRange {
            min: orient,
            opt: orient,
            max: orient,
        },
    }
}

/// Reads a file the bootstrap installs, naming it and the fix when it cannot.
fn read_installed<T>(
    what: &'static str,
    path: &Path,
    read: impl FnOnce(&Path) -> std::io::Result<T>,
) -> Result<T, EngineError> {
    read(path).map_err(|e| EngineError::Missing {
        what,
        path: path.to_owned(),
        hint: format!("{e}; run scripts/bootstrap, or check the model paths"),
    })
}

/// The recognizer and its vocabulary; with a script other than
/// [`Script::All`], the network's output layer cut to that script's classes.
fn load_recognizer(
    env: &ort::environment::Environment,
    models: &ModelSet,
    script: Script,
    dict: &str,
    options: SessionOptions,
    summarize: bool,
) -> Result<(Box<dyn Model>, Vocabulary, bool), EngineError> {
    let path = &models.rec;
    let mut vocab = Vocabulary::from_dict(dict, true);
    let mut bytes = read_installed("model file", path, |p| std::fs::read(p))?;
    if script != Script::All {
        let classes = vocab.classes_of(script);
        bytes = head::cut_output_layer(&bytes, vocab.classes(), &classes).map_err(|message| {
            EngineError::Model {
                path: path.clone(),
                message: format!("cannot cut the recognizer to {}: {message}", script.name()),
            }
        })?;
        vocab = vocab.subset(&classes);
    }
    // Decoding reads three numbers a timestep: where the network computes
    // them, only those leave the runtime.
    let (bytes, summarized) = if summarize {
        match head::summarize_steps(&bytes, vocab.space_class()) {
            Ok(summary) => (summary, true),
            Err(message) => {
                tracing::warn!(path = %path.display(), %message, "recognizer output left whole");
                (bytes, false)
            }
        }
    } else {
        (bytes, false)
    };
    let rec = OrtModel::load_from(env, path, Some(&bytes), options, "recognize")?;
    Ok((Box::new(rec), vocab, summarized))
}
