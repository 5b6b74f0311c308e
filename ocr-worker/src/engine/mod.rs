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
mod layer;
mod lines;
mod load;
mod model;
mod orient;
mod page;
mod pixels;
mod profile;
mod reading;
mod rec;
mod script;
mod share;
mod wire;

use std::sync::Arc;

use image::RgbImage;
use pagefleet_schemas::PixelBudget;

pub use det::{DetParams, MIN_DETECT_DPI, Normalization, SideLimit, input_size};
pub use error::{EngineError, ErrorKind};
pub use geometry::Quad;
pub use head::{cut_output_layer, summarize_steps};
pub use layer::PageIn;
pub use model::{Model, OrtModel, Provider, SessionOptions, ShapeRange, load_runtime};
pub use pagefleet_layout::{Extent, Placed, layout, refine_kinds};
pub use profile::{ModelSet, ORIENTATION_MODEL, Profile};
pub use rec::{Decoded, DecodedWord, Vocabulary};
pub use script::Script;
pub(crate) use share::LineWork;
use share::ReaderKey;
pub use wire::EditError;

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
    /// The recognizer's other head (its output cut to Latin script, or
    /// whole), swapped in by [`Engine::use_head`] for a page that needs it.
    spare: Option<Head>,
}

/// A recognizer head put aside: the network, its vocabulary, whether it
/// outputs [`head::summarize_steps`]' summary, and its sharing key.
pub(crate) struct Head {
    rec: Box<dyn Model>,
    vocab: Vocabulary,
    steps: bool,
    key: ReaderKey,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Engine {
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
        let share_key = check_head(&config, rec.as_mut(), rec_steps, &vocab)?;
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
            spare: None,
        })
    }

    /// The engine with a second head of its recognizer (`script`'s cut of
    /// the same network, or the whole of it), checked like the first.
    pub(crate) fn add_spare_head(
        &mut self,
        mut rec: Box<dyn Model>,
        steps: bool,
        vocab: Vocabulary,
        script: Script,
    ) -> Result<(), EngineError> {
        let mut key = check_head(&self.config, rec.as_mut(), steps, &vocab)?;
        key.script = script;
        self.spare = Some(Head {
            rec,
            vocab,
            steps,
            key,
        });
        Ok(())
    }

    /// Makes `script`'s head the one that reads, if the engine has it;
    /// whether it does.
    pub(crate) fn use_head(&mut self, script: Script) -> bool {
        if self.share_key.script == script {
            return true;
        }
        let Some(spare) = self.spare.as_mut().filter(|h| h.key.script == script) else {
            return false;
        };
        std::mem::swap(&mut self.rec, &mut spare.rec);
        std::mem::swap(&mut self.vocab, &mut spare.vocab);
        std::mem::swap(&mut self.rec_steps, &mut spare.steps);
        std::mem::swap(&mut self.share_key, &mut spare.key);
        true
    }

    /// Whether the engine holds a head of `script`.
    pub fn has_head(&self, script: Script) -> bool {
        self.share_key.script == script
            || self.spare.as_ref().is_some_and(|h| h.key.script == script)
    }
}

/// Checks a recognizer head's vocabulary against its network once, on a
/// blank line, rather than emitting wrong characters later; the key slots
/// reading with it share line batches under.
fn check_head(
    config: &EngineConfig,
    rec: &mut dyn Model,
    rec_steps: bool,
    vocab: &Vocabulary,
) -> Result<ReaderKey, EngineError> {
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
    Ok(ReaderKey {
        rec: config.models.rec.clone(),
        dict: config.models.dict.clone(),
        script: config.models.script,
        summary: rec_steps,
        buckets: config.rec_buckets,
        batch: config.rec_batch,
    })
}

impl Engine {
    /// A handle that stops this engine's inference from another thread.
    pub fn stopper(&self) -> Stopper {
        let mut runs = vec![self.det.stopper(), self.rec.stopper()];
        runs.extend(self.spare.as_ref().map(|h| h.rec.stopper()));
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

#[cfg(test)]
mod tests {
    use super::doubles::{AllUpsideDown, DarkIsText, SaysAb};
    use super::page::{page_is_upside_down, word_boxes};
    use super::*;
    use pagefleet_schemas::{OcrLine, TextCounts};
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
