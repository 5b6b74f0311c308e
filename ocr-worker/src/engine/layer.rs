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

use super::reading::is_cjk;
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

impl Engine {
    /// Reads a page as [`Engine::recognize_as`] does; a page that carries
    /// its own text (`layer`) is taken from that text when a sample of its
    /// lines read from the pixels agrees with it.
    pub fn read_page(
        &mut self,
        page: &RgbImage,
        reading: Reading,
        layer: Option<TextLayerLines>,
    ) -> Result<PageOcr, EngineError> {
        let Some(layer) = layer else {
            return self.recognize_as(page, reading);
        };
        let started = Instant::now();
        let check = tracing::info_span!("check_layer", lines = layer.lines.len())
            .in_scope(|| self.check_layer(page, &layer, reading))?;
        let check_ms = ms(started);
        if !check.trusted {
            let mut ocr = self.recognize_as(page, reading)?;
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
        let trusted = agreement >= AGREEMENT;
        let reason = if trusted {
            format!(
                "the layer agrees with the pixels on {:.0}% of {sampled} sampled lines' characters",
                100.0 * agreement
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
    let stretch = pool.len().div_ceil(CHECK_LINES).max(1);
    pool.chunks(stretch)
        .filter_map(|chunk| chunk.iter().copied().max_by_key(|&i| chars(i)))
        .collect()
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

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
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
    fn comparison_ignores_spaces_ligatures_and_typographic_marks() {
        assert_eq!(
            normalized("the ﬁrst “word” — here"),
            "thefirst\"word\"-here"
        );
    }
}
