//! The text a PDF page already carries, as PDFium extracts it: characters
//! with their boxes, grouped into words at whitespace and into lines where
//! PDFium breaks them or a wide gap parts two runs of text, in the
//! coordinates of the page's image. Taken as it is (`use`), the lines go
//! through the same page layout as lines read from pixels; under `auto` they
//! travel with the page's image to a worker, which checks them against the
//! pixels first.

use std::time::Instant;

use pagefleet_schemas::messages::SCHEMA_VERSION;
use pagefleet_schemas::{OcrLine, OcrWord, PageOcr, StepTimings, TextLayerLines, TextSource};
use pdfium_render::prelude::*;

use pagefleet_stagekit::pdfium::PixelMap;

/// A gap between two words wider than this many times the taller word's
/// height parts them into two lines: a column's gutter or a table's column
/// gap, which detection would not join either. Word spaces measure about a
/// third of the height; a justified line's widest under one.
const LINE_GAP: f32 = 1.5;

/// The page's own text, or `None` for a page that holds no glyph with text.
/// Coordinates are those of a `width` × `height` image of the whole page.
pub(crate) fn extract(
    page: &PdfPage<'_>,
    width: u32,
    height: u32,
) -> Result<Option<TextLayerLines>, PdfiumError> {
    let text = page.text()?;
    let chars = text.chars();
    let (mut glyphs, mut unmapped) = (0u32, 0u32);
    let mut lines = Vec::new();
    let mut words: Vec<OcrWord> = Vec::new();
    let mut word: Option<(String, [f32; 4])> = None;
    let mut map: Option<PixelMap> = None;
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
        let value = c.unicode_value();
        let ch = char::from_u32(value);
        if ch == Some('\r') || ch == Some('\n') {
            end_word(&mut word, &mut words);
            lines.extend(split_at_gaps(std::mem::take(&mut words)));
            continue;
        }
        // PDFium gives a hyphen that breaks a word at a line's end as 0x02,
        // with no line break after it: the line ends there.
        if value == 2 {
            if let Some((text, _)) = &mut word {
                text.push('-');
            }
            end_word(&mut word, &mut words);
            lines.extend(split_at_gaps(std::mem::take(&mut words)));
            continue;
        }
        if ch.is_some_and(char::is_whitespace) {
            end_word(&mut word, &mut words);
            continue;
        }
        glyphs += 1;
        let Some(ch) = ch.filter(|&ch| has_meaning(ch)) else {
            unmapped += 1;
            continue;
        };
        let Ok(b) = c.loose_bounds() else {
            continue;
        };
        let map = match &map {
            Some(map) => map,
            None => map.insert(PixelMap::of_page(page, width, height)?),
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
    lines.extend(split_at_gaps(words));
    if glyphs == 0 {
        return Ok(None);
    }
    Ok(Some(TextLayerLines {
        v: SCHEMA_VERSION,
        lines,
        glyphs,
        unmapped,
    }))
}

/// Whether a glyph's character says what the glyph is: not a control
/// character, not the replacement character, not a private-use code (which
/// fonts without a ToUnicode map get), not nothing.
fn has_meaning(ch: char) -> bool {
    !(ch == '\0'
        || ch == char::REPLACEMENT_CHARACTER
        || ch.is_control()
        || ('\u{E000}'..='\u{F8FF}').contains(&ch))
}

/// The page's result from its own text: its lines through the page layout
/// (`use`).
pub(crate) fn taken(layer: TextLayerLines, width: u32, height: u32) -> PageOcr {
    let started = Instant::now();
    let lines = pagefleet_layout::lay_out_lines(layer.lines);
    let layout_ms = started.elapsed().as_secs_f64() * 1000.0;
    let timings = StepTimings {
        layout_ms,
        total_ms: layout_ms,
        ..StepTimings::default()
    };
    PageOcr::not_read(lines, (width, height), TextSource::TextLayer, timings)
}

/// The empty result of a page with text that the job skips (`skip`).
pub(crate) fn skipped(width: u32, height: u32) -> PageOcr {
    let timings = StepTimings::default();
    PageOcr::not_read(Vec::new(), (width, height), TextSource::Skipped, timings)
}

/// The lines of one line of the layer's words: parted where a wide gap
/// lies between two words, or where the text runs back to the left.
fn split_at_gaps(words: Vec<OcrWord>) -> Vec<OcrLine> {
    let mut lines = Vec::new();
    let mut run: Vec<OcrWord> = Vec::new();
    for word in words {
        if let Some(last) = run.last() {
            let (_, ly0, lx1, ly1) = last.bounds();
            let (x0, y0, _, y1) = word.bounds();
            let height = (ly1 - ly0).max(y1 - y0).max(1.0);
            if x0 - lx1 > LINE_GAP * height || x0 < lx1 - height {
                lines.extend(line_of(std::mem::take(&mut run)));
            }
        }
        run.push(word);
    }
    lines.extend(line_of(run));
    lines
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
        block_kind: pagefleet_schemas::BlockKind::Text,
        cell: None,
        words,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word(text: &str, x0: f32, x1: f32) -> OcrWord {
        OcrWord {
            text: text.into(),
            confidence: 1.0,
            polygon: [[x0, 0.0], [x1, 0.0], [x1, 10.0], [x0, 10.0]],
        }
    }

    #[test]
    fn a_line_is_parted_at_a_gutter_and_where_it_runs_back() {
        let words = vec![
            word("left", 0.0, 40.0),
            word("column", 44.0, 100.0),
            // A gutter of 3 heights.
            word("right", 130.0, 170.0),
            word("column", 173.0, 230.0),
            // Back to the left: another run of text on the same baseline.
            word("again", 10.0, 50.0),
        ];
        let lines: Vec<String> = split_at_gaps(words).into_iter().map(|l| l.text).collect();
        assert_eq!(lines, ["left column", "right column", "again"]);
    }

    #[test]
    fn glyphs_without_a_meaning_are_told_apart() {
        assert!(has_meaning('a') && has_meaning('ß') && has_meaning('中'));
        for ch in ['\0', '\u{FFFD}', '\u{E001}', '\u{7}'] {
            assert!(!has_meaning(ch), "{ch:?}");
        }
    }
}
