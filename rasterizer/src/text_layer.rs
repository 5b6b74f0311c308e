//! The text a PDF page already carries, as PDFium extracts it: characters
//! with their boxes, grouped into words at whitespace and into lines where
//! PDFium breaks them, in the coordinates of the page's image.

use std::time::Instant;

use pagefleet_schemas::{
    Block, BlockKind, OcrLine, OcrWord, PageOcr, StepTimings, TextCounts, TextLayer, TextSource,
};
use pdfium_render::prelude::*;

use pagefleet_stagekit::pdfium::PixelMap;

/// A gap between lines of more than this share of the upper line's height
/// starts a new block.
const BLOCK_GAP: f32 = 0.8;

/// The page's own text when it has some and `mode` takes it (`use`), an
/// empty result marked skipped (`skip`); `None` for a page without text or
/// for the `ocr` mode. Coordinates are those of a `width` × `height` image of
/// the whole page.
pub(crate) fn read(
    page: &PdfPage<'_>,
    width: u32,
    height: u32,
    mode: TextLayer,
) -> Result<Option<PageOcr>, PdfiumError> {
    if mode == TextLayer::Ocr {
        return Ok(None);
    }
    let started = Instant::now();
    let text = page.text()?;
    let chars = text.chars();
    let has_text = chars
        .iter()
        .any(|c| c.unicode_char().is_some_and(|ch| !ch.is_whitespace()));
    if !has_text {
        return Ok(None);
    }
    let map = PixelMap::of_page(page, width, height)?;
    let mut lines = Vec::new();
    let mut source = TextSource::Skipped;
    if mode == TextLayer::Use {
        source = TextSource::TextLayer;
        let mut words: Vec<OcrWord> = Vec::new();
        let mut word: Option<(String, [f32; 4])> = None;
        let end_word = |word: &mut Option<(String, [f32; 4])>, words: &mut Vec<OcrWord>| {
            if let Some((text, [x0, y0, x1, y1])) = word.take() {
                words.push(OcrWord {
                    text,
                    confidence: 1.0,
                    polygon: [[x0, y0], [x1, y0], [x1, y1], [x0, y1]],
                });
            }
        };
        for c in chars.iter() {
            let Some(ch) = c.unicode_char() else {
                continue;
            };
            if ch == '\r' || ch == '\n' {
                end_word(&mut word, &mut words);
                lines.extend(line_of(std::mem::take(&mut words)));
                continue;
            }
            if ch.is_whitespace() || ch.is_control() {
                end_word(&mut word, &mut words);
                continue;
            }
            let Ok(b) = c.loose_bounds() else {
                continue;
            };
            let corners = [
                map.to_pixels([b.left().value, b.top().value]),
                map.to_pixels([b.right().value, b.bottom().value]),
            ];
            let bounds = [
                corners[0][0].min(corners[1][0]),
                corners[0][1].min(corners[1][1]),
                corners[0][0].max(corners[1][0]),
                corners[0][1].max(corners[1][1]),
            ];
            match &mut word {
                Some((text, b)) => {
                    text.push(ch);
                    *b = [
                        b[0].min(bounds[0]),
                        b[1].min(bounds[1]),
                        b[2].max(bounds[2]),
                        b[3].max(bounds[3]),
                    ];
                }
                None => word = Some((ch.to_string(), bounds)),
            }
        }
        end_word(&mut word, &mut words);
        lines.extend(line_of(words));
        number_blocks(&mut lines);
    }
    let counts = TextCounts::of_lines(lines.iter().map(|l| l.text.as_str()));
    let avg_confidence = if lines.is_empty() { 0.0 } else { 1.0 };
    let total_ms = started.elapsed().as_secs_f64() * 1000.0;
    Ok(Some(PageOcr {
        width,
        height,
        rotation: 0,
        blocks: Block::of_lines(&lines),
        lines,
        counts,
        avg_confidence,
        timings: StepTimings {
            total_ms,
            ..StepTimings::default()
        },
        text_source: source,
    }))
}

/// A line of `words`, or none when there are none.
fn line_of(words: Vec<OcrWord>) -> Option<OcrLine> {
    let first = words.first()?;
    let mut b = first.bounds();
    for w in &words {
        let (x0, y0, x1, y1) = w.bounds();
        b = (b.0.min(x0), b.1.min(y0), b.2.max(x1), b.3.max(y1));
    }
    let (x0, y0, x1, y1) = b;
    Some(OcrLine {
        text: words
            .iter()
            .map(|w| w.text.as_str())
            .collect::<Vec<_>>()
            .join(" "),
        confidence: 1.0,
        polygon: [[x0, y0], [x1, y0], [x1, y1], [x0, y1]],
        column: 0,
        block: 0,
        block_kind: BlockKind::Text,
        cell: None,
        words,
    })
}

/// Numbers the blocks of lines in their order: a new block where a line
/// stands well below the previous one, or above it (a new column).
fn number_blocks(lines: &mut [OcrLine]) {
    let mut block = 0;
    let mut previous: Option<(f32, f32)> = None;
    for line in lines {
        let (_, y0, _, y1) = line.bounds();
        if let Some((top, bottom)) = previous {
            let height = (bottom - top).max(1.0);
            if y0 - bottom > BLOCK_GAP * height || y1 < top {
                block += 1;
            }
        }
        line.block = block;
        previous = Some((y0, y1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(y: f32, h: f32) -> OcrLine {
        let word = OcrWord {
            text: "w".into(),
            confidence: 1.0,
            polygon: [[0.0, y], [10.0, y], [10.0, y + h], [0.0, y + h]],
        };
        line_of(vec![word]).unwrap()
    }

    #[test]
    fn blocks_break_at_gaps_and_at_new_columns() {
        let mut lines = vec![
            line(0.0, 10.0),
            line(12.0, 10.0),
            line(40.0, 10.0),
            line(5.0, 10.0),
        ];
        number_blocks(&mut lines);
        let blocks: Vec<u32> = lines.iter().map(|l| l.block).collect();
        assert_eq!(blocks, [0, 0, 1, 2]);
    }
}
