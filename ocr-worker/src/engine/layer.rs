//! A PDF page's own text, checked against its pixels before it is taken
//! (text layer `auto`). A layer can lie: a font without a ToUnicode map
//! gives glyphs no meaning or the wrong one, an earlier poor OCR layer reads
//! badly, an invisible layer can belong to another image than the one the
//! page shows. So a few of the layer's lines, spread over the page, are
//! cropped from the page image under their boxes and read (no detection is
//! needed: the layer says where its lines are), and what the pixels say is
//! compared with what the layer says. A page whose layer agrees is taken
//! from it, through the same page layout as lines read from pixels; any
//! other is read from its pixels.

use std::time::Instant;

use image::RgbImage;
use pagefleet_schemas::language::Reading;
use pagefleet_schemas::{LayerCheck, OcrLine, PageOcr, StepTimings, TextLayerLines, TextSource};

use super::page::ms;
use super::reading::{is_cjk, spread};
use super::{Engine, EngineError, Quad, Script, crop};

/// Lines read to check a layer. A lying layer is wrong on nearly every
/// line, an honest one on next to none, so a handful decide.
const CHECK_LINES: usize = 5;
/// Sampled lines hold at least this many characters where the page has
/// such lines: a page number or a bullet says little.
const CHECK_CHARS: usize = 8;
/// The share of the sampled characters the pixels and the layer must agree
/// on. Read from the pixels, a born-digital page's lines differ from its
/// layer in 1 to 5% of their characters (ligatures, quotes, a misread
/// letter); a layer from a broken map or another image agrees on a few
/// percent, and a poor earlier OCR layer on well under this.
const AGREEMENT: f32 = 0.85;
/// A page whose glyphs have no meaning beyond this share is read from its
/// pixels without a check.
const UNMAPPED: f32 = 0.02;
/// Crops reach this share of a line's height around its box: detection's
/// boxes, which the recognizer was trained on, are grown around the text.
const CROP_MARGIN: f32 = 0.15;
/// A page with more than this share of its ink outside the layer's lines
/// (grown by [`INK_MARGIN`] of their height) shows more than its layer
/// holds: a scan under a stamped line of text, an image of text. Read from
/// its pixels. Born-digital text pages keep all but their rules and
/// figures inside their lines.
const INK_OUTSIDE: f32 = 0.5;
const INK_MARGIN: f32 = 0.5;
/// A pixel darker than this (grey, 0 to 255) is ink.
const INK: u8 = 128;
/// The ink survey looks at every pixel of this grid's cells' corners.
const INK_STEP: u32 = 2;

/// A page to read: its pixels and what is known of them.
#[derive(Debug)]
pub struct PageIn {
    /// The page image.
    pub image: RgbImage,
    /// What reads it: the job's language decides.
    pub reading: Reading,
    /// The page's own text, taken when it agrees with the pixels.
    pub layer: Option<TextLayerLines>,
    /// The image's resolution, pixels per inch of the page, when known.
    pub dpi: Option<f32>,
}

impl PageIn {
    /// A page image of unknown resolution, without a layer, whose script
    /// is decided from the page.
    pub fn image(image: RgbImage) -> Self {
        Self {
            image,
            reading: Reading::Auto,
            layer: None,
            dpi: None,
        }
    }
}

impl Engine {
    /// Reads a page as [`Engine::recognize_as`] does, at its resolution
    /// when known; a page that carries its own text (`layer`) is taken from
    /// that text when a sample of its lines read from the pixels agrees
    /// with it.
    pub fn read_page(&mut self, page: PageIn) -> Result<PageOcr, EngineError> {
        let PageIn {
            image: page,
            reading,
            layer,
            dpi,
        } = page;
        let page = &page;
        let Some(layer) = layer else {
            return self.recognize_at(page, reading, dpi);
        };
        let started = Instant::now();
        let check = tracing::info_span!("check_layer", lines = layer.lines.len())
            .in_scope(|| self.check_layer(page, &layer, reading))?;
        let check_ms = ms(started);
        if !check.trusted {
            let mut ocr = self.recognize_at(page, reading, dpi)?;
            ocr.timings.check_ms = check_ms;
            ocr.timings.total_ms += check_ms;
            ocr.layer_check = Some(check);
            return Ok(ocr);
        }
        let t = Instant::now();
        let lines = pagefleet_layout::lay_out_lines(layer.lines);
        let timings = StepTimings {
            check_ms,
            layout_ms: ms(t),
            total_ms: ms(started),
            ..StepTimings::default()
        };
        let size = (page.width(), page.height());
        let mut ocr = PageOcr::not_read(lines, size, TextSource::TextLayer, timings);
        ocr.layer_check = Some(check);
        Ok(ocr)
    }

    /// Whether the page's layer can be trusted, and why.
    fn check_layer(
        &mut self,
        page: &RgbImage,
        layer: &TextLayerLines,
        reading: Reading,
    ) -> Result<LayerCheck, EngineError> {
        let refused = |reason: String| LayerCheck {
            trusted: false,
            agreement: None,
            sampled: 0,
            reason,
        };
        if layer.glyphs > 0 && layer.unmapped as f32 > UNMAPPED * layer.glyphs as f32 {
            return Ok(refused(format!(
                "{} of the layer's {} glyphs have no Unicode meaning",
                layer.unmapped, layer.glyphs
            )));
        }
        let sample = sample_lines(&layer.lines);
        let crops: Vec<(usize, RgbImage)> = sample
            .iter()
            .filter_map(|&i| crop_box(page, &layer.lines[i]).map(|c| (i, c)))
            .collect();
        if crops.is_empty() {
            return Ok(refused("the layer holds no line to check".into()));
        }
        let script = match reading {
            Reading::Latin => Script::Latin,
            Reading::All => Script::All,
            Reading::Auto if is_cjk(layer.lines.iter().map(|l| l.text.as_str())) => Script::All,
            Reading::Auto => Script::Latin,
        };
        self.use_head(script);
        let (indices, images): (Vec<usize>, Vec<RgbImage>) = crops.into_iter().unzip();
        let read = self.recognize_lines(images)?;
        let (mut differ, mut total) = (0usize, 0usize);
        for (&i, (decoded, _)) in indices.iter().zip(&read) {
            let said = normalized(&layer.lines[i].text);
            let seen = normalized(&decoded.text);
            differ += strsim::levenshtein(&said, &seen);
            total += said.chars().count();
        }
        let agreement = 1.0 - differ as f32 / total.max(1) as f32;
        let agreement = agreement.max(0.0);
        let sampled = indices.len() as u32;
        let outside = ink_outside(page, &layer.lines);
        if agreement >= AGREEMENT && outside > INK_OUTSIDE {
            return Ok(LayerCheck {
                trusted: false,
                agreement: Some(agreement),
                sampled,
                reason: format!(
                    "{:.0}% of the page's ink lies outside the layer's lines: the page shows \
                     more than its layer holds (an image of text, a scan under a stamped line, \
                     a large figure)",
                    100.0 * outside
                ),
            });
        }
        let trusted = agreement >= AGREEMENT;
        let reason = if trusted {
            format!(
                "the layer agrees with the pixels on {:.0}% of {sampled} sampled lines' \
                 characters, and holds {:.0}% of the page's ink",
                100.0 * agreement,
                100.0 * (1.0 - outside)
            )
        } else {
            format!(
                "the layer agrees with the pixels on only {:.0}% of {sampled} sampled lines' \
                 characters (it may come from a broken font map, a poor earlier OCR or \
                 another image)",
                100.0 * agreement
            )
        };
        Ok(LayerCheck {
            trusted,
            agreement: Some(agreement),
            sampled,
            reason,
        })
    }
}

/// The lines to check: spread over the layer in its order, the longest of
/// each stretch, preferring lines of [`CHECK_CHARS`] or more.
fn sample_lines(lines: &[OcrLine]) -> Vec<usize> {
    let chars = |i: usize| lines[i].text.chars().filter(|c| !c.is_whitespace()).count();
    let long: Vec<usize> = (0..lines.len())
        .filter(|&i| chars(i) >= CHECK_CHARS)
        .collect();
    let pool: Vec<usize> = if long.is_empty() {
        (0..lines.len()).filter(|&i| chars(i) > 0).collect()
    } else {
        long
    };
    spread(&pool, CHECK_LINES, chars)
}

/// The share of the page's ink (dark pixels, surveyed every
/// [`INK_STEP`] pixels) that lies outside every line of the layer; 0 for a
/// page without ink.
fn ink_outside(page: &RgbImage, lines: &[OcrLine]) -> f32 {
    let (w, h) = page.dimensions();
    let (gw, gh) = (w.div_ceil(INK_STEP) as usize, h.div_ceil(INK_STEP) as usize);
    let mut covered = vec![false; gw * gh];
    for line in lines {
        let (x0, y0, x1, y1) = line.bounds();
        let m = INK_MARGIN * (y1 - y0);
        let cell = |v: f32, cells: usize| ((v / INK_STEP as f32).max(0.0) as usize).min(cells);
        let (cx0, cx1) = (cell(x0 - m, gw), cell(x1 + m, gw - 1) + 1);
        let (cy0, cy1) = (cell(y0 - m, gh), cell(y1 + m, gh - 1) + 1);
        for row in covered.chunks_mut(gw).take(cy1).skip(cy0) {
            row[cx0.min(cx1)..cx1].fill(true);
        }
    }
    let (mut ink, mut outside) = (0usize, 0usize);
    for gy in 0..gh {
        for gx in 0..gw {
            let p = page.get_pixel(gx as u32 * INK_STEP, gy as u32 * INK_STEP).0;
            let grey = (u16::from(p[0]) * 3 + u16::from(p[1]) * 6 + u16::from(p[2])) / 10;
            if grey < u16::from(INK) {
                ink += 1;
                outside += usize::from(!covered[gy * gw + gx]);
            }
        }
    }
    if ink == 0 {
        0.0
    } else {
        outside as f32 / ink as f32
    }
}

/// The pixels under a line's box, with a margin, upright.
fn crop_box(page: &RgbImage, line: &OcrLine) -> Option<RgbImage> {
    let (x0, y0, x1, y1) = line.bounds();
    let margin = CROP_MARGIN * (y1 - y0);
    let (w, h) = (page.width() as f32, page.height() as f32);
    let (x0, y0) = ((x0 - margin).max(0.0), (y0 - margin).max(0.0));
    let (x1, y1) = ((x1 + margin).min(w), (y1 + margin).min(h));
    if x1 - x0 < 2.0 || y1 - y0 < 2.0 {
        return None;
    }
    crop::crop_line(page, &Quad([[x0, y0], [x1, y0], [x1, y1], [x0, y1]]))
}

/// Text as compared: without whitespace, with ligatures spelt out and
/// typographic quotes and dashes plain, which layers and readings write
/// either way.
fn normalized(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars().filter(|c| !c.is_whitespace()) {
        match c {
            'ﬀ' => out.push_str("ff"),
            'ﬁ' => out.push_str("fi"),
            'ﬂ' => out.push_str("fl"),
            'ﬃ' => out.push_str("ffi"),
            'ﬄ' => out.push_str("ffl"),
            '‘' | '’' | '′' => out.push('\''),
            '“' | '”' | '″' => out.push('"'),
            '‐' | '‑' | '‒' | '–' | '—' | '−' => out.push('-'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use pagefleet_schemas::{BlockKind, OcrWord};

    use super::*;

    fn line(text: &str) -> OcrLine {
        let polygon = [[0.0, 0.0], [100.0, 0.0], [100.0, 10.0], [0.0, 10.0]];
        OcrLine {
            text: text.into(),
            confidence: 1.0,
            polygon,
            column: 0,
            block: 0,
            block_kind: BlockKind::Text,
            cell: None,
            words: vec![OcrWord {
                text: text.into(),
                confidence: 1.0,
                polygon,
            }],
        }
    }

    #[test]
    fn the_sample_is_spread_over_the_page_and_skips_short_lines() {
        let mut lines: Vec<OcrLine> = (0..20)
            .map(|i| line(&format!("a line of text {i:02}")))
            .collect();
        lines[0] = line("3");
        let sample = sample_lines(&lines);
        assert_eq!(sample.len(), CHECK_LINES);
        assert!(!sample.contains(&0));
        assert!(
            sample.first() < Some(&5) && sample.last() > Some(&15),
            "{sample:?}"
        );
        // A page of short lines only still has a sample.
        let short = vec![line("12"), line(""), line("x")];
        assert_eq!(sample_lines(&short), [0, 2]);
    }

    #[test]
    fn ink_outside_the_layer_lines_is_measured() {
        // A white page with ink under the line's box (0..100 x 0..10) and,
        // three times as much, in a block far below it.
        let mut page = RgbImage::from_pixel(200, 200, image::Rgb([255, 255, 255]));
        for (x, y) in (10..90).flat_map(|x| (2..8).map(move |y| (x, y))) {
            page.put_pixel(x, y, image::Rgb([0, 0, 0]));
        }
        assert_eq!(ink_outside(&page, &[line("text")]), 0.0);
        for (x, y) in (10..90).flat_map(|x| (100..118).map(move |y| (x, y))) {
            page.put_pixel(x, y, image::Rgb([20, 20, 20]));
        }
        let outside = ink_outside(&page, &[line("text")]);
        assert!((outside - 0.75).abs() < 0.02, "{outside}");
        // A blank page has no ink to miss.
        let blank = RgbImage::from_pixel(50, 50, image::Rgb([255, 255, 255]));
        assert_eq!(ink_outside(&blank, &[]), 0.0);
    }

    #[test]
    fn comparison_ignores_spaces_ligatures_and_typographic_marks() {
        assert_eq!(
            normalized("the ﬁrst “word” — here"),
            "thefirst\"word\"-here"
        );
    }
}
