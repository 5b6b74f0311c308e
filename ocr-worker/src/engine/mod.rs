//! The OCR engine: detection, optional 180° line classification, recognition
//! and page layout (blocks and reading order) for one page at a time.
//!
//! One [`Engine`] owns one ONNX Runtime session per model and is one inference
//! slot: `Session::run` takes `&mut`, so parallel pages need one engine each.

mod blocked;
mod crop;
mod det;
#[cfg(test)]
pub(crate) mod doubles;
mod error;
mod geometry;
mod head;
mod kinds;
mod layout;
mod model;
mod orient;
mod pixels;
mod profile;
mod rec;
mod share;

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use image::RgbImage;
use ndarray::{Axis, Ix2, Ix3};
use pagefleet_schemas::{Block, OcrLine, OcrWord, PageOcr, PixelBudget, StepTimings, TextCounts};
use tracing::info_span;

pub use det::{DetParams, Normalization, SideLimit, input_size};
pub use error::{EngineError, ErrorKind};
pub use geometry::Quad;
pub use head::{Script, cut_output_layer, summarize_steps};
pub use kinds::refine_kinds;
pub use layout::{Extent, Placed, layout};
pub use model::{Model, OrtModel, Provider, SessionOptions, ShapeRange, load_runtime};
pub use profile::{ModelSet, ORIENTATION_MODEL, Profile};
pub use rec::{Decoded, DecodedWord, Vocabulary};
pub(crate) use share::LineWork;
use share::{LineBatch, LineResult, ReaderKey};

/// Where an engine offers a page's line batches to the other slots of its
/// pool.
pub(crate) type Helpers = Box<dyn Fn(Arc<LineWork>) + Send>;

/// Everything the engine needs to know besides the page.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Model files and their family's parameters.
    pub models: ModelSet,
    /// ONNX Runtime threads per model run.
    pub intra_threads: usize,
    /// Where the models run.
    pub provider: Provider,
    /// Whether to classify lines as upright or upside down (needs `models.cls`).
    pub classify_lines: bool,
    /// Largest page image processed; larger ones are scaled down first.
    pub budget: PixelBudget,
    /// Most lines per recognition batch. Lines are sorted by width first, so a
    /// batch holds lines of similar width. On CPUs one line at a time is
    /// fastest (see [`DEFAULT_REC_BATCH`]); accelerators want larger batches.
    pub rec_batch: usize,
    /// Whether recognition runs only on fixed shapes: each line padded to the
    /// narrowest of [`REC_BUCKETS`] that holds it, every batch of a bucket
    /// [`bucket_batch`] rows. GPU runtimes plan (and cache) their kernels per
    /// input shape; on a CPU the padding is only extra work.
    pub rec_buckets: bool,
    /// Whether the recognizer's output is summarised inside the network
    /// ([`head::summarize_steps`]): three numbers a timestep leave the runtime
    /// instead of every class's probability. For accelerators, where the
    /// copy back is the cost; on a CPU it measured within noise of the whole
    /// output (paired A/B 0.99-1.05, fast-latin), so it stays off there.
    pub rec_summary: bool,
}

/// Input widths of shape-stable recognition. A line wider than the last is
/// squeezed into it (a 200 DPI full-width line is about 2,400 pixels at the
/// recognizer's height).
pub const REC_BUCKETS: [u32; 8] = [160, 320, 480, 800, 1200, 1600, 2400, 3200];

/// The bucket a line `width` pixels wide (at the recognizer's height) is
/// padded into.
pub fn bucket_of(width: u32) -> u32 {
    let last = REC_BUCKETS[REC_BUCKETS.len() - 1];
    REC_BUCKETS
        .into_iter()
        .find(|&b| b >= width)
        .unwrap_or(last)
}

/// Rows of every batch of `bucket` with batches of at most `rec_batch`:
/// fewer for wide buckets, so that a batch stays within
/// [`REC_BATCH_PIXELS`].
pub fn bucket_batch(bucket: u32, rec_batch: usize) -> usize {
    let per_row = REC_HEIGHT as usize * bucket as usize;
    (REC_BATCH_PIXELS / per_row).clamp(1, rec_batch.max(1))
}

/// Recognition batch size for CPU inference. Measured on 2 cores with PP-OCRv6
/// tiny over three dense manual pages: batches of 8 took 5.0 s, of 4 took
/// 4.5 s, single lines 3.8 s. Padding is not the cause (batches are sorted by
/// width); a batch of long lines simply falls out of the CPU caches.
pub const DEFAULT_REC_BATCH: usize = 1;

/// Lines recognised with less confidence than this are dropped: PaddleOCR's
/// `drop_score`, below which the output is mostly noise from non-text regions.
const DROP_SCORE: f32 = 0.5;
/// Height of recognition input, fixed by the PP-OCR recognition models.
const REC_HEIGHT: u32 = 48;
/// Narrowest recognition input: short words are padded to it. PaddleOCR
/// pads to 320 pixels, faster-paddle pads PP-OCRv6 tiny to 64. Measured with
/// fast-latin: 320 scored 2.15% CER / F1 0.977 on the samples and 3.37% /
/// 0.969 on the layout set, 64 scored 2.14% / 0.978 and 3.38% / 0.969, for
/// 3-5% less CPU time (a fifth of the lines are shorter than 320 pixels).
const REC_MIN_WIDTH: u32 = 64;
/// Lines per classification batch.
const CLS_BATCH: usize = 8;
/// Most padded pixels one recognition batch may hold (48 × 20 000 ≈ one
/// megapixel): keeps a batch of very long lines from needing a huge tensor.
const REC_BATCH_PIXELS: usize = 48 * 20_000;
/// Line classification input, from PaddleOCR's `cls_image_shape`.
const CLS_HEIGHT: u32 = 48;
const CLS_WIDTH: u32 = 192;
/// Confidence the classifier needs before a line is turned, from PaddleOCR's
/// `cls_thresh`.
const CLS_THRESH: f32 = 0.9;

/// A loaded OCR engine: one inference slot.
pub struct Engine {
    config: EngineConfig,
    det: Box<dyn Model>,
    rec: Box<dyn Model>,
    cls: Option<Box<dyn Model>>,
    /// Page-orientation classifier (0/90/180/270), when configured.
    orient: Option<Box<dyn Model>>,
    vocab: Vocabulary,
    /// The recognizer's output is [`head::summarize_steps`]' summary rather
    /// than every class's probability.
    rec_steps: bool,
    /// Other slots that may take line batches of this engine's pages.
    helpers: Option<Helpers>,
    /// Engines with the same key read a line batch the same way.
    share_key: ReaderKey,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

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
        let (rec, vocab, summarized) = load_recognizer(
            env,
            &config.models,
            &dict,
            with(shapes.rec),
            config.rec_summary,
        )?;
        let orient = match &config.models.orientation {
            Some(path) => Some(OrtModel::load(env, path, with(shapes.orient), "orient")?),
            None => None,
        };
        let engine = Self::from_parts(config, Box::new(det), (rec, summarized), cls, vocab)?;
        Ok(match orient {
            Some(model) => engine.with_orientation(Box::new(model)),
            None => engine,
        })
    }

    /// The engine, deciding each page's orientation with `model` (four
    /// classes: 0, 90, 180 and 270 degrees clockwise) before detection.
    pub fn with_orientation(mut self, model: Box<dyn Model>) -> Self {
        self.orient = Some(model);
        self
    }

    /// Builds an engine from already loaded models: any runtime, or test
    /// doubles. The recognizer outputs every class's probability.
    pub fn from_models(
        config: EngineConfig,
        det: Box<dyn Model>,
        rec: Box<dyn Model>,
        cls: Option<Box<dyn Model>>,
        vocab: Vocabulary,
    ) -> Result<Self, EngineError> {
        Self::from_parts(config, det, (rec, false), cls, vocab)
    }

    /// [`Engine::from_models`] with a recognizer that may output the
    /// summary of [`head::summarize_steps`] (`true`).
    fn from_parts(
        config: EngineConfig,
        det: Box<dyn Model>,
        (mut rec, rec_steps): (Box<dyn Model>, bool),
        cls: Option<Box<dyn Model>>,
        vocab: Vocabulary,
    ) -> Result<Self, EngineError> {
        // Check the vocabulary against the network once, on a blank line, rather
        // than emitting wrong characters later.
        let blank = RgbImage::new(REC_MIN_WIDTH, REC_HEIGHT);
        let probe = if config.rec_buckets {
            let bucket = bucket_of(REC_MIN_WIDTH);
            rec::fixed_tensor(
                &[&blank],
                REC_HEIGHT,
                bucket,
                bucket_batch(bucket, config.rec_batch),
            )
        } else {
            rec::batch_tensor(&[&blank], REC_HEIGHT, REC_MIN_WIDTH)
        };
        let out = rec.run(&probe)?;
        let classes = match (rec_steps, out.shape().last()) {
            // The summary's last column is the network's class count.
            (true, Some(4)) => out.iter().nth(3).map_or(0, |&c| c as usize),
            (true, _) => {
                return Err(EngineError::Model {
                    path: config.models.rec.clone(),
                    message: format!(
                        "the summarised recognizer's output is {:?}, not [batch, steps, 4]",
                        out.shape()
                    ),
                });
            }
            (false, last) => last.copied().unwrap_or(0),
        };
        if classes != vocab.classes() {
            return Err(EngineError::Model {
                path: config.models.rec.clone(),
                message: format!(
                    "network outputs {classes} classes but dictionary {} gives {}; the dictionary does not belong to this model",
                    config.models.dict.display(),
                    vocab.classes()
                ),
            });
        }
        let share_key = ReaderKey {
            rec: config.models.rec.clone(),
            dict: config.models.dict.clone(),
            script: config.models.script,
            summary: rec_steps,
            buckets: config.rec_buckets,
            batch: config.rec_batch,
        };
        Ok(Self {
            config,
            det,
            rec,
            cls,
            orient: None,
            vocab,
            rec_steps,
            helpers: None,
            share_key,
        })
    }

    /// A handle that stops this engine's inference from another thread.
    pub fn stopper(&self) -> Stopper {
        let mut runs = vec![self.det.stopper(), self.rec.stopper()];
        runs.extend(self.cls.as_ref().map(|c| c.stopper()));
        runs.extend(self.orient.as_ref().map(|o| o.stopper()));
        Stopper(runs.into_iter().flatten().collect())
    }

    /// Offers the line batches of every later page to other slots through
    /// `helpers`, which hands them to [`Engine::help`] of idle engines.
    pub(crate) fn share_lines(&mut self, helpers: Helpers) {
        self.helpers = Some(helpers);
    }

    /// Whether this engine may take batches of `work`.
    pub(crate) fn can_help(&self, work: &LineWork) -> bool {
        work.key == self.share_key
    }

    /// Recognises one batch of another slot's page, if one is left.
    pub(crate) fn help(&mut self, work: &LineWork) {
        if let Some(claim) = work.claim() {
            let result = work
                .span
                .in_scope(|| self.run_batch(&work.images, claim.batch()));
            claim.finish(result);
        }
    }

    /// The configuration the engine was loaded with.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Runs detection, classification and recognition on one page image.
    /// An image over the pixel budget is scaled down first; polygons refer to
    /// the image as processed (`PageOcr::width`/`height`).
    pub fn recognize(&mut self, page: &RgbImage) -> Result<PageOcr, EngineError> {
        let started = Instant::now();
        let mut timings = StepTimings::default();
        let fit = self
            .config
            .budget
            .fit(page.width() as f64, page.height() as f64)?;
        let scaled;
        let page = if fit.scale < 1.0 {
            scaled = pixels::resize(page, fit.width, fit.height);
            &scaled
        } else {
            page
        };
        timings.prepare_ms = ms(started);

        // A sideways or upside-down page is turned upright before anything
        // is detected on it.
        let t = Instant::now();
        let orientation = info_span!("orient").in_scope(|| self.orientation(page))?;
        let oriented;
        let upright = if orientation == 0 {
            page
        } else {
            oriented = orient::upright(page, orientation);
            &oriented
        };
        timings.orient_ms = ms(t);

        let t = Instant::now();
        let mut detections = info_span!("detect").in_scope(|| self.detect(upright))?;
        timings.detect_ms = ms(t);

        let t = Instant::now();
        let mut placed = info_span!("layout").in_scope(|| lay_out(&detections));
        timings.layout_ms = ms(t);

        let t = Instant::now();
        let mut crops = info_span!("crop").in_scope(|| crop_lines(upright, &detections, &placed));
        timings.crop_ms = ms(t);

        let mut rotation = orientation;
        let turned;
        // Lines turned by 180° on their own before recognition.
        let mut flipped = vec![false; crops.len()];
        if self.cls.is_some() {
            let _classify = info_span!("classify").entered();
            let t = Instant::now();
            let upside_down = self.classify(&crops)?;
            if page_is_upside_down(&upside_down) {
                // Most lines read upside down: the page is, so it is turned and
                // detected again, which also puts its lines back in reading order.
                rotation = (rotation + 180) % 360;
                turned = image::imageops::rotate180(upright);
                detections = self.detect(&turned)?;
                let t = Instant::now();
                placed = lay_out(&detections);
                timings.layout_ms += ms(t);
                crops = crop_lines(&turned, &detections, &placed);
            } else {
                for (((_, _, img), &p), flip) in
                    crops.iter_mut().zip(&upside_down).zip(&mut flipped)
                {
                    if p >= CLS_THRESH {
                        image::imageops::rotate180_in_place(img);
                        *flip = true;
                    }
                }
            }
            timings.classify_ms = ms(t);
        }

        let t = Instant::now();
        // Only the boxes are needed from here on; the images may go to other
        // slots.
        let images: Vec<RgbImage> = crops
            .iter_mut()
            .map(|(_, _, img)| std::mem::take(img))
            .collect();
        let decoded = info_span!("recognize", lines = images.len())
            .in_scope(|| self.recognize_lines(images))?;
        timings.recognize_ms = ms(t);

        let (w, h) = (page.width() as f32, page.height() as f32);
        // Corners stay in the text's own order (the first is the text's
        // top-left), in the coordinates of the page as it was given.
        let given = |corners: [[f32; 2]; 4]| corners.map(|p| orient::to_given(p, rotation, w, h));
        let mut lines: Vec<OcrLine> = crops
            .iter()
            .zip(decoded)
            .zip(&flipped)
            .filter(|((_, (d, _)), _)| d.confidence >= DROP_SCORE && !d.text.trim().is_empty())
            .map(|(((quad, place, _), (d, step)), &flip)| OcrLine {
                text: d.text.trim().to_owned(),
                confidence: d.confidence,
                polygon: given(quad.0),
                column: place.column,
                block: place.block,
                block_kind: place.kind,
                cell: place.cell,
                words: word_boxes(&d.words, step, flip)
                    .into_iter()
                    .map(|(word, f0, f1)| OcrWord {
                        text: word.text.clone(),
                        confidence: word.confidence,
                        polygon: given(crop::stretch(quad, f0, f1)),
                    })
                    .collect(),
            })
            .collect();
        let t = Instant::now();
        refine_kinds(&mut lines);
        let blocks = Block::of_lines(&lines);
        timings.layout_ms += ms(t);
        let counts = TextCounts::of_lines(lines.iter().map(|l| l.text.as_str()));
        let avg_confidence = if lines.is_empty() {
            0.0
        } else {
            lines.iter().map(|l| l.confidence).sum::<f32>() / lines.len() as f32
        };
        timings.total_ms = ms(started);
        Ok(PageOcr {
            width: page.width(),
            height: page.height(),
            rotation,
            lines,
            blocks,
            counts,
            avg_confidence,
            timings,
            text_source: pagefleet_schemas::TextSource::Ocr,
        })
    }

    fn detect(&mut self, page: &RgbImage) -> Result<Vec<det::Detection>, EngineError> {
        let params = &self.config.models.det_params;
        let Some(input) = det::preprocess(page, params) else {
            return Ok(Vec::new());
        };
        let out = self.det.run(&input.tensor)?;
        // Output is [1, 1, H, W] probabilities.
        let shape = out.shape().to_vec();
        if shape.len() != 4 || shape[0] != 1 {
            return Err(EngineError::Model {
                path: self.config.models.det.clone(),
                message: format!("detection output has shape {shape:?}, expected [1, 1, H, W]"),
            });
        }
        let map = out
            .view()
            .index_axis_move(Axis(0), 0)
            .index_axis_move(Axis(0), 0)
            .into_dimensionality::<Ix2>()
            .map_err(|e| EngineError::Model {
                path: self.config.models.det.clone(),
                message: e.to_string(),
            })?;
        Ok(det::boxes_from_map(
            map,
            input.frame,
            page.width(),
            page.height(),
            params,
        ))
    }

    /// The clockwise turn of the page's content (0, 90, 180 or 270); 0
    /// without an orientation model.
    fn orientation(&mut self, page: &RgbImage) -> Result<u16, EngineError> {
        let Some(model) = self.orient.as_mut() else {
            return Ok(0);
        };
        let probs = model.run(&orient::input(page))?;
        Ok(orient::decide(probs.as_slice().unwrap_or_default()))
    }

    /// The classifier's probability that each line is upside down.
    fn classify(&mut self, crops: &[(Quad, Placed, RgbImage)]) -> Result<Vec<f32>, EngineError> {
        let Some(cls) = self.cls.as_mut() else {
            return Ok(vec![0.0; crops.len()]);
        };
        let [_, h, w] = cls.input_shape();
        let (h, w) = (
            h.map_or(CLS_HEIGHT, |v| v as u32),
            w.map_or(CLS_WIDTH, |v| v as u32),
        );
        let mut out = Vec::with_capacity(crops.len());
        for chunk in crops.chunks(CLS_BATCH) {
            let images: Vec<RgbImage> = chunk
                .iter()
                .map(|(_, _, img)| {
                    // Lines wider than the classifier's input are squeezed, as
                    // PaddleOCR does; orientation survives it.
                    let tw = rec::target_width(img, h).min(w);
                    pixels::resize(img, tw, h)
                })
                .collect();
            let refs: Vec<&RgbImage> = images.iter().collect();
            let input = rec::batch_tensor(&refs, h, w);
            let probs = cls.run(&input)?.into_dimensionality::<Ix2>().map_err(|e| {
                EngineError::Inference {
                    step: "classify",
                    message: format!("classifier output is not [batch, classes]: {e}"),
                }
            })?;
            // Labels are ["0", "180"].
            out.extend(
                probs
                    .rows()
                    .into_iter()
                    .map(|row| if row.len() >= 2 { row[1] } else { 0.0 }),
            );
        }
        Ok(out)
    }

    /// Recognises line images in batches of similar aspect ratio; each line
    /// with the fraction of its width one output timestep covers. With
    /// helpers, idle slots take batches too.
    fn recognize_lines(&mut self, images: Vec<RgbImage>) -> Result<Vec<LineResult>, EngineError> {
        let batches = self.plan_batches(&images);
        // A single batch is not worth waking another slot for.
        let share = batches.len() >= 2;
        let work = Arc::new(LineWork::new(
            images,
            batches,
            self.share_key.clone(),
            tracing::Span::current(),
        ));
        if let Some(offer) = self.helpers.as_ref().filter(|_| share) {
            offer(Arc::clone(&work));
        }
        while let Some(claim) = work.claim() {
            let result = self.run_batch(&work.images, claim.batch());
            let failed = result.is_err();
            claim.finish(result);
            if failed {
                break;
            }
        }
        // A stopped or failed page takes no more of anybody's time; batches
        // already running elsewhere end on their own.
        let results = work.wait();
        work.abandon();
        results
    }

    /// The page's lines in batches: sorted by width, so each batch holds
    /// lines of similar width, and cut at [`EngineConfig::rec_batch`] lines,
    /// [`REC_BATCH_PIXELS`] pixels or (with buckets) the bucket's end.
    fn plan_batches(&self, images: &[RgbImage]) -> Vec<LineBatch> {
        let mut order: Vec<usize> = (0..images.len()).collect();
        let buckets = self.config.rec_buckets;
        let rec_batch = self.config.rec_batch.max(1);
        let width = |i: usize| {
            let w = rec::target_width(&images[i], REC_HEIGHT).max(REC_MIN_WIDTH);
            if buckets {
                bucket_of(w) as usize
            } else {
                w as usize
            }
        };
        order.sort_by_key(|&i| width(i));
        let mut batches = Vec::new();
        let mut start = 0;
        while start < order.len() {
            // Sorted by width, so the last line of a batch is its widest.
            let mut end = start + 1;
            let most = if buckets {
                bucket_batch(width(order[start]) as u32, rec_batch)
            } else {
                rec_batch
            };
            while end < order.len()
                && end - start < most
                && (end - start + 1) * width(order[end]) * REC_HEIGHT as usize <= REC_BATCH_PIXELS
                && (!buckets || width(order[end]) == width(order[start]))
            {
                end += 1;
            }
            batches.push(LineBatch {
                lines: order[start..end].to_vec(),
                bucket: buckets.then(|| (width(order[start]) as u32, most)),
            });
            start = end;
        }
        batches
    }

    /// Recognises one batch of `images`, in the batch's order.
    fn run_batch(
        &mut self,
        images: &[RgbImage],
        batch: &LineBatch,
    ) -> Result<Vec<LineResult>, EngineError> {
        let lines: Vec<&RgbImage> = batch.lines.iter().map(|&i| &images[i]).collect();
        let input = match batch.bucket {
            Some((width, most)) => rec::fixed_tensor(&lines, REC_HEIGHT, width, most),
            None => rec::batch_tensor(&lines, REC_HEIGHT, REC_MIN_WIDTH),
        };
        let input_width = input.dim().3 as f32;
        let out = self.rec.run(&input)?;
        let probs = out
            .into_dimensionality::<Ix3>()
            .map_err(|e| EngineError::Inference {
                step: "recognize",
                message: format!("recognition output is not [batch, steps, classes]: {e}"),
            })?;
        let steps = probs.dim().1.max(1) as f32;
        Ok(lines
            .iter()
            .enumerate()
            .map(|(k, image)| {
                // A line squeezed into its bucket spans the whole input.
                let line_width =
                    rec::target_width(image, REC_HEIGHT).min(input.dim().3 as u32) as f32;
                let line = probs.index_axis(Axis(0), k);
                let decoded = if self.rec_steps {
                    self.vocab.decode_summary(line)
                } else {
                    self.vocab.decode(line)
                };
                (decoded, input_width / steps / line_width)
            })
            .collect())
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
    dict: &str,
    options: SessionOptions,
    summarize: bool,
) -> Result<(Box<dyn Model>, Vocabulary, bool), EngineError> {
    let path = &models.rec;
    let mut vocab = Vocabulary::from_dict(dict, true);
    let mut bytes = read_installed("model file", path, |p| std::fs::read(p))?;
    if models.script != Script::All {
        let classes = vocab.classes_of(models.script);
        bytes = head::cut_output_layer(&bytes, vocab.classes(), &classes).map_err(|message| {
            EngineError::Model {
                path: path.clone(),
                message: format!(
                    "cannot cut the recognizer to {}: {message}",
                    models.script.name()
                ),
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

/// Stops the model runs of one engine: the run in progress returns an error
/// at its next operator, and so does every later run until [`Stopper::reset`].
#[derive(Clone)]
pub struct Stopper(Vec<std::sync::Arc<ort::session::RunOptions>>);

impl std::fmt::Debug for Stopper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stopper")
            .field("models", &self.0.len())
            .finish()
    }
}

impl Stopper {
    /// Stops the run in progress and every later one.
    pub fn stop(&self) {
        for run in &self.0 {
            let _ = run.terminate();
        }
    }

    /// Lets runs proceed again.
    pub fn reset(&self) {
        for run in &self.0 {
            let _ = run.unterminate();
        }
    }
}

/// Where each word lies along its line: from-to fractions of the cropped
/// line's width, given the fraction one timestep covers. CTC emits a
/// character at one step near its middle, so a word reaches a step beyond
/// its first and last characters' steps, without overlapping its
/// neighbours. For a line read turned by 180°, the fractions are turned
/// back.
fn word_boxes(words: &[DecodedWord], step: f32, flipped: bool) -> Vec<(&DecodedWord, f32, f32)> {
    let mut boxes: Vec<(&DecodedWord, f32, f32)> = Vec::with_capacity(words.len());
    for (i, word) in words.iter().enumerate() {
        let previous_end = boxes.last().map_or(0.0, |b| b.2);
        let next_start = words
            .get(i + 1)
            .map_or(1.0, |n| (n.first as f32 + 0.5) * step);
        let f0 = ((word.first as f32 - 1.0) * step).max(previous_end);
        let f1 = ((word.last as f32 + 2.0) * step).min(next_start).min(1.0);
        boxes.push((word, f0.clamp(0.0, 1.0), f1.max(f0).clamp(0.0, 1.0)));
    }
    if flipped {
        for b in &mut boxes {
            (b.1, b.2) = (1.0 - b.2, 1.0 - b.1);
        }
    }
    boxes
}

/// Lays the detected lines out: blocks and reading order, decided on the
/// boxes before any line is recognised, so recognition can batch freely.
fn lay_out(detections: &[det::Detection]) -> Vec<Placed> {
    let extents: Vec<Extent> = detections
        .iter()
        .map(|d| {
            let (x0, y0, x1, y1) = d.quad.bounds();
            Extent { x0, y0, x1, y1 }
        })
        .collect();
    layout(&extents)
}

/// Crops every detected line, in reading order, with its place.
fn crop_lines(
    page: &RgbImage,
    detections: &[det::Detection],
    placed: &[Placed],
) -> Vec<(Quad, Placed, RgbImage)> {
    placed
        .iter()
        .filter_map(|p| {
            let quad = detections[p.line].quad;
            crop::crop_line(page, &quad).map(|img| (quad, *p, img))
        })
        .collect()
}

/// A page is upside down when most of its lines are more likely upside down
/// than not. One line's classification is unreliable (the classifier squeezes
/// long lines into 192 pixels); a page's majority is not, and whole pages
/// scanned upside down are far more common than single turned lines.
fn page_is_upside_down(upside_down: &[f32]) -> bool {
    let votes = upside_down.iter().filter(|&&p| p > 0.5).count();
    !upside_down.is_empty() && 2 * votes > upside_down.len()
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::doubles::{AllUpsideDown, DarkIsText, SaysAb};
    use super::*;
    use std::path::PathBuf;

    fn word(first: usize, last: usize) -> DecodedWord {
        DecodedWord {
            text: "w".into(),
            confidence: 0.9,
            first,
            last,
        }
    }

    #[test]
    fn word_boxes_reach_past_their_steps_without_overlapping() {
        // Steps of a tenth of the line; words at steps 1-2 and 4-5, and one
        // at the line's end.
        let words = [word(1, 2), word(4, 5), word(9, 9)];
        let spans: Vec<(f32, f32)> = word_boxes(&words, 0.1, false)
            .iter()
            .map(|&(_, f0, f1)| ((f0 * 100.0).round(), (f1 * 100.0).round()))
            .collect();
        assert_eq!(spans, [(0.0, 40.0), (40.0, 70.0), (80.0, 100.0)]);
        // A line read turned: the same stretches, from the other end.
        let turned: Vec<(f32, f32)> = word_boxes(&words, 0.1, true)
            .iter()
            .map(|&(_, f0, f1)| ((f0 * 100.0).round(), (f1 * 100.0).round()))
            .collect();
        assert_eq!(turned, [(60.0, 100.0), (30.0, 60.0), (0.0, 20.0)]);
    }

    pub(crate) fn config() -> EngineConfig {
        let mut models = ModelSet::profile(&PathBuf::from("/unused"), Profile::Fast);
        models.det_params.side_limit = SideLimit::Max(4000);
        EngineConfig {
            models,
            intra_threads: 1,
            provider: Provider::Cpu,
            classify_lines: false,
            budget: PixelBudget::new(1_000_000),
            rec_batch: DEFAULT_REC_BATCH,
            rec_buckets: false,
            rec_summary: false,
        }
    }

    fn page_with_bars(bars: &[(u32, u32, u32, u32)]) -> RgbImage {
        let mut page = RgbImage::from_pixel(640, 480, image::Rgb([255, 255, 255]));
        for &(x0, y0, x1, y1) in bars {
            for y in y0..y1 {
                for x in x0..x1 {
                    page.put_pixel(x, y, image::Rgb([0, 0, 0]));
                }
            }
        }
        page
    }

    #[test]
    fn engine_wires_detection_order_and_recognition() {
        let vocab = Vocabulary::from_dict("a\nb\n", true);
        let mut engine = Engine::from_models(
            config(),
            Box::new(DarkIsText),
            Box::new(SaysAb(0.9)),
            None,
            vocab,
        )
        .unwrap();
        // Two lines, the lower one listed first on the page.
        let page = page_with_bars(&[(40, 300, 600, 320), (40, 100, 600, 120)]);
        let ocr = engine.recognize(&page).unwrap();
        assert_eq!(ocr.lines.len(), 2);
        assert_eq!(ocr.text(), "ab\nab\n");
        assert_eq!((ocr.width, ocr.height, ocr.rotation), (640, 480, 0));
        // Top line first; its box covers the bar, grown by the unclip offset.
        let [tl, _, br, _] = ocr.lines[0].polygon;
        assert!(
            tl[1] < 100.0 && br[1] > 119.0 && br[1] < 140.0,
            "{:?}",
            ocr.lines[0].polygon
        );
        assert!(tl[0] < 40.0 && br[0] > 599.0);
        assert_eq!(
            ocr.counts,
            TextCounts {
                lines: 2,
                words: 2,
                chars: 4
            }
        );
        assert!((ocr.avg_confidence - 0.9).abs() < 1e-6);
    }

    #[test]
    fn with_buckets_every_recognition_run_has_a_bucket_shape() {
        // Lines from 30 to 600 pixels long, 20 high: 72 to 1440 pixels wide
        // at the recognizer's height, across five buckets.
        let bars: Vec<(u32, u32, u32, u32)> = (0..12)
            .map(|i| (20, 20 + i * 36, 20 + 30 + i * 50, 40 + i * 36))
            .collect();
        let page = page_with_bars(&bars);
        let read = |buckets: bool| {
            let shapes = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
            let rec = doubles::RecordsShapes(SaysAb(0.9), shapes.clone());
            let vocab = Vocabulary::from_dict("a\nb\n", true);
            let config = EngineConfig {
                rec_batch: 4,
                rec_buckets: buckets,
                rec_summary: false,
                ..config()
            };
            let mut engine =
                Engine::from_models(config, Box::new(DarkIsText), Box::new(rec), None, vocab)
                    .unwrap();
            let ocr = engine.recognize(&page).unwrap();
            let shapes = shapes.lock().unwrap().clone();
            (ocr, shapes)
        };
        let (ocr, shapes) = read(true);
        assert_eq!(ocr.lines.len(), 12);
        assert!(ocr.lines.iter().all(|l| l.text == "ab"));
        let bucket_shape = |&(n, c, h, w): &(usize, usize, usize, usize)| {
            REC_BUCKETS.contains(&(w as u32))
                && (c, h) == (3, REC_HEIGHT as usize)
                && n == bucket_batch(w as u32, 4)
        };
        assert!(shapes.iter().all(bucket_shape), "{shapes:?}");
        let widths: std::collections::BTreeSet<usize> = shapes.iter().map(|s| s.3).collect();
        assert!(widths.len() >= 4, "{widths:?}");
        // Without buckets the same page gives shapes of its own.
        let (free, shapes) = read(false);
        assert_eq!(free.text(), ocr.text());
        assert!(!shapes.iter().all(bucket_shape), "{shapes:?}");
        assert_eq!(bucket_of(1), 160);
        assert_eq!(bucket_of(2401), 3200);
        assert_eq!(bucket_of(9000), 3200);
        assert_eq!(bucket_batch(3200, 32), 6);
        assert_eq!(bucket_batch(160, 32), 32);
    }

    #[test]
    fn low_confidence_lines_are_dropped() {
        let vocab = Vocabulary::from_dict("a\nb\n", true);
        let mut engine = Engine::from_models(
            config(),
            Box::new(DarkIsText),
            Box::new(SaysAb(0.4)),
            None,
            vocab,
        )
        .unwrap();
        let ocr = engine
            .recognize(&page_with_bars(&[(40, 100, 600, 120)]))
            .unwrap();
        assert!(ocr.lines.is_empty());
        assert_eq!(ocr.avg_confidence, 0.0);
    }

    #[test]
    fn pages_over_budget_are_scaled_and_thin_ones_refused() {
        let vocab = || Vocabulary::from_dict("a\nb\n", true);
        let mut engine = Engine::from_models(
            config(),
            Box::new(DarkIsText),
            Box::new(SaysAb(0.9)),
            None,
            vocab(),
        )
        .unwrap();
        let big = RgbImage::from_pixel(2000, 1000, image::Rgb([255, 255, 255]));
        let ocr = engine.recognize(&big).unwrap();
        assert!(ocr.width as u64 * ocr.height as u64 <= 1_000_000);
        let thin = RgbImage::new(2010, 10);
        let err = engine.recognize(&thin).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BadInput);
    }

    #[test]
    fn a_dictionary_of_another_model_is_refused_at_load() {
        let vocab = Vocabulary::from_dict("a\nb\nc\n", true);
        let err = Engine::from_models(
            config(),
            Box::new(DarkIsText),
            Box::new(SaysAb(0.9)),
            None,
            vocab,
        )
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Setup);
        assert!(err.to_string().contains("4 classes"), "{err}");
    }

    #[test]
    fn a_page_turned_upside_down_is_laid_out_upright() {
        // Two columns of six lines, the page then turned by 180°. Lines are
        // thin so that the columns are many line heights wide, as text is.
        let mut bars = Vec::new();
        for k in 0..6 {
            let y = 40 + 30 * k;
            bars.push((40, y, 280, y + 8));
            bars.push((360, y, 600, y + 8));
        }
        let page = image::imageops::rotate180(&page_with_bars(&bars));
        let mut cfg = config();
        cfg.classify_lines = true;
        let vocab = Vocabulary::from_dict("a\nb\n", true);
        let mut engine = Engine::from_models(
            cfg,
            Box::new(DarkIsText),
            Box::new(SaysAb(0.9)),
            Some(Box::new(AllUpsideDown)),
            vocab,
        )
        .unwrap();
        let ocr = engine.recognize(&page).unwrap();
        assert_eq!(ocr.rotation, 180);
        assert_eq!(ocr.lines.len(), 12);
        // Upright, the left column comes first, top down: on the page as
        // given, that is the right half, bottom up, then the left half.
        let centre = |l: &OcrLine| {
            let (x0, y0, x1, y1) = l.bounds();
            ((x0 + x1) / 2.0, (y0 + y1) / 2.0)
        };
        let (first, second) = ocr.lines.split_at(6);
        assert!(first.iter().all(|l| centre(l).0 > 320.0 && l.column == 0));
        assert!(second.iter().all(|l| centre(l).0 < 320.0 && l.column == 1));
        for half in [first, second] {
            assert!(half.windows(2).all(|w| centre(&w[0]).1 > centre(&w[1]).1));
        }
        assert_eq!(ocr.blocks.len(), 2);
    }

    #[test]
    fn page_orientation_is_a_majority_vote() {
        assert!(page_is_upside_down(&[0.9, 0.6, 0.2]));
        assert!(!page_is_upside_down(&[0.9, 0.2]));
        assert!(!page_is_upside_down(&[]));
    }
}
