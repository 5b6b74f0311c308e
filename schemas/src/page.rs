//! The OCR result of one page, as the engine produces it and as it will travel
//! from OCR workers to the aggregator.

use serde::{Deserialize, Serialize};

/// One recognised text line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OcrLine {
    /// The recognised text.
    pub text: String,
    /// Mean probability of the decoded characters, 0..=1.
    pub confidence: f32,
    /// Corners in page-image pixels: top-left, top-right, bottom-right, bottom-left.
    pub polygon: [[f32; 2]; 4],
    /// Column the line was read in (0 for single-column text and for lines that
    /// span columns).
    pub column: u32,
}

/// Word, character and line counts of a text.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextCounts {
    /// Lines with text.
    pub lines: u64,
    /// Whitespace-separated words.
    pub words: u64,
    /// Characters, whitespace excluded.
    pub chars: u64,
}

impl TextCounts {
    /// Counts the words and non-whitespace characters of `lines`.
    pub fn of_lines<'a>(lines: impl IntoIterator<Item = &'a str>) -> Self {
        let mut counts = Self::default();
        for line in lines {
            counts.lines += 1;
            counts.words += line.split_whitespace().count() as u64;
            counts.chars += line.chars().filter(|c| !c.is_whitespace()).count() as u64;
        }
        counts
    }
}

/// Milliseconds spent in each step of one page.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct StepTimings {
    /// Scaling the page into the budget.
    pub prepare_ms: f64,
    /// Text detection: preprocessing, inference and box extraction.
    pub detect_ms: f64,
    /// Cropping the lines out of the page.
    pub crop_ms: f64,
    /// 180° line classification (0 when off).
    pub classify_ms: f64,
    /// Text recognition and decoding.
    pub recognize_ms: f64,
    /// The whole page.
    pub total_ms: f64,
}

/// Everything the engine knows about one page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PageOcr {
    /// Width of the image the polygons refer to.
    pub width: u32,
    /// Height of the image the polygons refer to.
    pub height: u32,
    /// Degrees (0 or 180) the page was turned to read it upright; polygons
    /// refer to the page as given either way.
    #[serde(default)]
    pub rotation: u16,
    /// Lines in reading order.
    pub lines: Vec<OcrLine>,
    /// Counts over `lines`.
    pub counts: TextCounts,
    /// Mean line confidence (0 when there is no line).
    pub avg_confidence: f32,
    /// Time per step.
    pub timings: StepTimings,
}

impl PageOcr {
    /// The page's text: one line per recognised line, in reading order.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for line in &self.lines {
            out.push_str(&line.text);
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_ignore_whitespace() {
        let c = TextCounts::of_lines(["two  words", " x ", ""]);
        assert_eq!(
            c,
            TextCounts {
                lines: 3,
                words: 3,
                chars: 9
            }
        );
    }
}
