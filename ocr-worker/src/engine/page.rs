//! One page through the engine, step by step: fitted to the pixel budget,
//! turned upright, its lines detected, laid out and cropped, classified,
//! recognised, and assembled into the page's lines, words and blocks.

use std::borrow::Cow;
use std::time::Instant;

use image::RgbImage;
use ndarray::{Axis, Ix2};
use pagefleet_schemas::language::Reading;
use pagefleet_schemas::{Block, OcrLine, OcrWord, PageOcr, StepTimings, TextCounts};
use tracing::info_span;

use super::share::LineResult;
use super::{
    CLS_BATCH, CLS_HEIGHT, CLS_THRESH, CLS_WIDTH, DROP_SCORE, DecodedWord, Engine, EngineError,
    Extent, Placed, Quad, crop, det, layout, orient, pixels, rec, refine_kinds,
};

impl Engine {
    /// Runs detection, classification and recognition on one page image,
    /// its script decided from the page ([`Reading::Auto`]). An image over
    /// the pixel budget is scaled down first; polygons refer to the image as
    /// processed (`PageOcr::width`/`height`).
    pub fn recognize(&mut self, page: &RgbImage) -> Result<PageOcr, EngineError> {
        self.recognize_as(page, Reading::Auto)
    }

    /// [`Engine::recognize`] for a page of a job whose language decides
    /// what reads it: the recognizer's Latin head, its whole output, or
    /// (`Auto`) whichever a sample of the page's lines calls for.
    pub fn recognize_as(
        &mut self,
        page: &RgbImage,
        reading: Reading,
    ) -> Result<PageOcr, EngineError> {
        self.recognize_at(page, reading, None)
    }

    /// [`Engine::recognize_as`] for a page whose resolution (pixels per
    /// inch of its print) is known: detection keeps enough of a large
    /// page's print ([`super::det::MIN_DETECT_DPI`]).
    pub(super) fn recognize_at(
        &mut self,
        page: &RgbImage,
        reading: Reading,
        dpi: Option<f32>,
    ) -> Result<PageOcr, EngineError> {
        let started = Instant::now();
        let mut timings = StepTimings::default();
        let given_width = page.width();
        let page = self.fit(page)?;
        let dpi = dpi.map(|d| d * page.width() as f32 / given_width.max(1) as f32);
        timings.prepare_ms = ms(started);

        // A sideways or upside-down page is turned upright before anything
        // is detected on it.
        let t = Instant::now();
        let orientation = info_span!("orient").in_scope(|| self.orientation(&page))?;
        let upright = match orientation {
            0 => Cow::Borrowed(page.as_ref()),
            turn => Cow::Owned(orient::upright(&page, turn)),
        };
        timings.orient_ms = ms(t);

        let mut lines = self.find_lines(&upright, dpi, &mut timings)?;
        let mut rotation = orientation;
        if self.cls.is_some() {
            let t = Instant::now();
            let page_turned = info_span!("classify").in_scope(|| self.turn_lines(&mut lines))?;
            timings.classify_ms = ms(t);
            if page_turned {
                // Most lines read upside down: the page is, so it is turned and
                // detected again, which also puts its lines back in reading order.
                rotation = (rotation + 180) % 360;
                let turned = image::imageops::rotate180(upright.as_ref());
                lines = self.find_lines(&turned, dpi, &mut timings)?;
            }
        }

        let t = Instant::now();
        // Only the boxes are needed from here on; the images may go to other
        // slots.
        let images: Vec<RgbImage> = lines
            .iter_mut()
            .map(|line| std::mem::take(&mut line.image))
            .collect();
        let decoded = info_span!("recognize", lines = images.len())
            .in_scope(|| self.read_as(images, reading, &mut timings))?;
        timings.recognize_ms = ms(t);

        let (w, h) = (page.width() as f32, page.height() as f32);
        let mut lines = read_lines(&lines, decoded, |p| orient::to_given(p, rotation, w, h));
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
            layer_check: None,
        })
    }

    /// The page within the pixel budget: scaled down when it is over it.
    fn fit<'a>(&self, page: &'a RgbImage) -> Result<Cow<'a, RgbImage>, EngineError> {
        let fit = self
            .config
            .budget
            .fit(page.width() as f64, page.height() as f64)?;
        Ok(if fit.scale < 1.0 {
            Cow::Owned(pixels::resize(page, fit.width, fit.height))
        } else {
            Cow::Borrowed(page)
        })
    }

    /// The lines of an upright page: detected, laid out (blocks and reading
    /// order) and cropped, in reading order.
    fn find_lines(
        &mut self,
        upright: &RgbImage,
        dpi: Option<f32>,
        timings: &mut StepTimings,
    ) -> Result<Vec<FoundLine>, EngineError> {
        let t = Instant::now();
        let detections = info_span!("detect").in_scope(|| self.detect(upright, dpi))?;
        timings.detect_ms += ms(t);

        let t = Instant::now();
        let placed = info_span!("layout").in_scope(|| lay_out(&detections));
        timings.layout_ms += ms(t);

        let t = Instant::now();
        let lines = info_span!("crop").in_scope(|| crop_lines(upright, &detections, &placed));
        timings.crop_ms += ms(t);
        Ok(lines)
    }

    /// Classifies the lines as upright or upside down. True when the whole
    /// page reads upside down; otherwise each line the classifier is sure
    /// of is turned on its own.
    fn turn_lines(&mut self, lines: &mut [FoundLine]) -> Result<bool, EngineError> {
        let upside_down = self.classify(lines)?;
        if page_is_upside_down(&upside_down) {
            return Ok(true);
        }
        for (line, &p) in lines.iter_mut().zip(&upside_down) {
            if p >= CLS_THRESH {
                image::imageops::rotate180_in_place(&mut line.image);
                line.flipped = true;
            }
        }
        Ok(false)
    }

    fn detect(
        &mut self,
        page: &RgbImage,
        dpi: Option<f32>,
    ) -> Result<Vec<det::Detection>, EngineError> {
        let params = &self.config.models.det_params;
        let Some(input) = det::preprocess(page, params, dpi) else {
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
    fn classify(&mut self, crops: &[FoundLine]) -> Result<Vec<f32>, EngineError> {
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
                .map(|line| {
                    // Lines wider than the classifier's input are squeezed, as
                    // PaddleOCR does; orientation survives it.
                    let tw = rec::target_width(&line.image, h).min(w);
                    pixels::resize(&line.image, tw, h)
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
}

/// Where each word lies along its line: from-to fractions of the cropped
/// line's width, given the fraction one timestep covers. CTC emits a
/// character at one step near its middle, so a word reaches a step beyond
/// its first and last characters' steps, without overlapping its
/// neighbours. For a line read turned by 180°, the fractions are turned
/// back.
pub(super) fn word_boxes(
    words: &[DecodedWord],
    step: f32,
    flipped: bool,
) -> Vec<(&DecodedWord, f32, f32)> {
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

/// A detected line: its box, its place in the page's layout, its cropped
/// image, and whether that image was turned by 180° on its own.
struct FoundLine {
    quad: Quad,
    place: Placed,
    image: RgbImage,
    flipped: bool,
}

/// Crops every detected line, in reading order, with its place.
fn crop_lines(page: &RgbImage, detections: &[det::Detection], placed: &[Placed]) -> Vec<FoundLine> {
    placed
        .iter()
        .filter_map(|p| {
            let quad = detections[p.line].quad;
            crop::crop_line(page, &quad).map(|image| FoundLine {
                quad,
                place: *p,
                image,
                flipped: false,
            })
        })
        .collect()
}

/// The page's lines as read: those confident enough and not blank, with
/// their words placed along them. `given` maps a point of the upright page
/// to the page as it was given; corners stay in the text's own order (the
/// first is the text's top-left).
fn read_lines(
    found: &[FoundLine],
    decoded: Vec<LineResult>,
    given: impl Fn([f32; 2]) -> [f32; 2],
) -> Vec<OcrLine> {
    let given = |corners: [[f32; 2]; 4]| corners.map(&given);
    found
        .iter()
        .zip(decoded)
        .filter(|(_, (d, _))| d.confidence >= DROP_SCORE && !d.text.trim().is_empty())
        .map(|(line, (d, step))| OcrLine {
            text: d.text.trim().to_owned(),
            confidence: d.confidence,
            polygon: given(line.quad.0),
            column: line.place.column,
            block: line.place.block,
            block_kind: line.place.kind,
            cell: line.place.cell,
            words: word_boxes(&d.words, step, line.flipped)
                .into_iter()
                .map(|(word, f0, f1)| OcrWord {
                    text: word.text.clone(),
                    confidence: word.confidence,
                    polygon: given(crop::stretch(&line.quad, f0, f1)),
                })
                .collect(),
        })
        .collect()
}

/// A page is upside down when most of its lines are more likely upside down
/// than not. One line's classification is unreliable (the classifier squeezes
/// long lines into 192 pixels); a page's majority is not, and whole pages
/// scanned upside down are far more common than single turned lines.
pub(super) fn page_is_upside_down(upside_down: &[f32]) -> bool {
    let votes = upside_down.iter().filter(|&&p| p > 0.5).count();
    !upside_down.is_empty() && 2 * votes > upside_down.len()
}

/// Milliseconds since `since`, as the step timings count them.
pub(super) fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}
