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
    /// The block (paragraph, heading, list item, table, ...) the line belongs
    /// to: an index into [`PageOcr::blocks`]. Blocks are numbered in reading
    /// order and a block's lines are consecutive.
    #[serde(default)]
    pub block: u32,
    /// The kind of that block, repeated here for readers of single lines.
    #[serde(default)]
    pub block_kind: BlockKind,
    /// The table cell the line lies in, for lines of a `table` block.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cell: Option<TableCell>,
    /// The line's words in reading order, each with its box; they are the
    /// line's text split at whitespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub words: Vec<OcrWord>,
}

/// One recognised word of a line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OcrWord {
    /// The word.
    pub text: String,
    /// Mean probability of its characters, 0..=1.
    pub confidence: f32,
    /// Corners in page-image pixels, as the line's: top-left, top-right,
    /// bottom-right, bottom-left of the word's stretch of the line.
    pub polygon: [[f32; 2]; 4],
}

impl OcrWord {
    /// Axis-aligned bounds of the polygon: (left, top, right, bottom).
    pub fn bounds(&self) -> (f32, f32, f32, f32) {
        polygon_bounds(&self.polygon)
    }
}

/// What a block of lines is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BlockKind {
    /// A paragraph of running text.
    #[default]
    Text,
    /// A heading: taller than the page's text, or a numbered title on its own.
    Heading,
    /// One item of a list (it starts with a bullet or a number).
    List,
    /// A table: cells in aligned rows and columns, read row by row.
    Table,
    /// A figure's or table's caption (`Figure 3: ...`).
    Caption,
    /// Code: a listing or command set in a monospaced font, kept with its
    /// indentation.
    Code,
    /// A running header: repeated at the top of most pages, or a page number.
    Header,
    /// A running footer: repeated at the bottom of most pages, or a page number.
    Footer,
}

impl BlockKind {
    /// The name used in JSON and in the other outputs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Heading => "heading",
            Self::List => "list",
            Self::Table => "table",
            Self::Caption => "caption",
            Self::Code => "code",
            Self::Header => "header",
            Self::Footer => "footer",
        }
    }
}

/// Where a line of a table lies, counted from 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableCell {
    /// Row, top to bottom.
    pub row: u32,
    /// Column, left to right.
    pub col: u32,
}

/// A block of consecutive lines of one page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Block {
    /// Its number: the `block` of its lines.
    pub id: u32,
    /// What it is.
    pub kind: BlockKind,
    /// Axis-aligned bounds of its lines: left, top, right, bottom.
    pub bbox: [f32; 4],
    /// Column it was read in, as for its lines.
    pub column: u32,
    /// Its lines: `lines[first..first + count]` of the page.
    pub first_line: u32,
    /// How many lines it has.
    pub line_count: u32,
    /// Rows and columns, for a table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<TableShape>,
}

/// The size of a table block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableShape {
    /// Rows.
    pub rows: u32,
    /// Columns.
    pub cols: u32,
}

impl Block {
    /// The blocks of `lines`, which must be in reading order with each block's
    /// lines consecutive (as the engine produces them).
    pub fn of_lines(lines: &[OcrLine]) -> Vec<Block> {
        let mut blocks: Vec<Block> = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            let (x0, y0, x1, y1) = line.bounds();
            match blocks.last_mut() {
                Some(b) if b.id == line.block => {
                    b.bbox = [
                        b.bbox[0].min(x0),
                        b.bbox[1].min(y0),
                        b.bbox[2].max(x1),
                        b.bbox[3].max(y1),
                    ];
                    b.line_count += 1;
                    if let (Some(shape), Some(cell)) = (b.table.as_mut(), line.cell) {
                        shape.rows = shape.rows.max(cell.row + 1);
                        shape.cols = shape.cols.max(cell.col + 1);
                    }
                }
                _ => blocks.push(Block {
                    id: line.block,
                    kind: line.block_kind,
                    bbox: [x0, y0, x1, y1],
                    column: line.column,
                    first_line: i as u32,
                    line_count: 1,
                    table: line.cell.map(|c| TableShape {
                        rows: c.row + 1,
                        cols: c.col + 1,
                    }),
                }),
            }
        }
        blocks
    }
}

impl OcrLine {
    /// Axis-aligned bounds of the polygon: (left, top, right, bottom).
    pub fn bounds(&self) -> (f32, f32, f32, f32) {
        polygon_bounds(&self.polygon)
    }

    /// The line's words, or the line as one word when it has none (results
    /// of workers older than word boxes).
    pub fn words_or_whole(&self) -> Vec<OcrWord> {
        if self.words.is_empty() {
            vec![OcrWord {
                text: self.text.clone(),
                confidence: self.confidence,
                polygon: self.polygon,
            }]
        } else {
            self.words.clone()
        }
    }

    /// Height of the line: the longer of its left and right sides.
    pub fn height(&self) -> f32 {
        polygon_height(&self.polygon)
    }
}

/// Axis-aligned bounds of four corners: (min x, min y, max x, max y).
pub fn polygon_bounds(corners: &[[f32; 2]; 4]) -> (f32, f32, f32, f32) {
    corners.iter().fold(
        (f32::MAX, f32::MAX, f32::MIN, f32::MIN),
        |(x0, y0, x1, y1), p| (x0.min(p[0]), y0.min(p[1]), x1.max(p[0]), y1.max(p[1])),
    )
}

/// The longer of the left and right sides of corners given top-left,
/// top-right, bottom-right, bottom-left.
pub fn polygon_height(corners: &[[f32; 2]; 4]) -> f32 {
    let [tl, tr, br, bl] = *corners;
    let d = |a: [f32; 2], b: [f32; 2]| ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt();
    d(tl, bl).max(d(tr, br))
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
    /// Deciding the page's orientation and turning it upright.
    #[serde(default)]
    pub orient_ms: f64,
    /// Text detection: preprocessing, inference and box extraction.
    pub detect_ms: f64,
    /// Cropping the lines out of the page.
    pub crop_ms: f64,
    /// 180° line classification (0 when off).
    pub classify_ms: f64,
    /// Text recognition and decoding.
    pub recognize_ms: f64,
    /// Of `recognize_ms`, the sample of lines read with the recognizer's
    /// whole output to decide a page's script (language `auto`).
    #[serde(default)]
    pub sample_ms: f64,
    /// Page segmentation: blocks and reading order.
    #[serde(default)]
    pub layout_ms: f64,
    /// The check of the page's text layer against its pixels (text layer
    /// `auto`): its sample of lines cropped and read.
    #[serde(default)]
    pub check_ms: f64,
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
    /// How far the page's content is turned clockwise, in degrees (0, 90,
    /// 180 or 270): the page was turned as far back to read it. Polygons
    /// refer to the page as given either way.
    #[serde(default)]
    pub rotation: u16,
    /// Lines in reading order.
    pub lines: Vec<OcrLine>,
    /// The lines' blocks in reading order ([`Block::of_lines`]).
    #[serde(default)]
    pub blocks: Vec<Block>,
    /// Counts over `lines`.
    pub counts: TextCounts,
    /// Mean line confidence (0 when there is no line).
    pub avg_confidence: f32,
    /// Time per step.
    pub timings: StepTimings,
    /// Where the text came from: read from the pixels, taken from the PDF's
    /// own text layer, or neither (a page with text that was skipped).
    #[serde(default)]
    pub text_source: TextSource,
    /// For a page with a text layer under `auto`: whether the layer was
    /// trusted, and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer_check: Option<LayerCheck>,
}

/// What the check of a page's text layer found: a sample of the layer's
/// lines read from the pixels under their boxes and compared with what the
/// layer says they say.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerCheck {
    /// Whether the page's text was taken from its layer.
    pub trusted: bool,
    /// Share of the sampled lines' characters on which the pixels and the
    /// layer agree (1 less their edit distance over the layer's characters);
    /// none when the layer was refused before any line was read.
    pub agreement: Option<f32>,
    /// Lines read for the check.
    pub sampled: u32,
    /// Why, in words.
    pub reason: String,
}

/// A PDF page's own text as its text layer holds it, in the coordinates of
/// the page's image: lines in the layer's order, not laid out, and what the
/// check needs to know about the glyphs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TextLayerLines {
    /// Schema version.
    pub v: u16,
    /// The layer's lines, each with its words; split where a wide gap
    /// parts two runs of text (a gutter, a table's columns).
    pub lines: Vec<OcrLine>,
    /// Glyphs with text, whitespace left out.
    pub glyphs: u32,
    /// Of them, glyphs without a Unicode meaning (no ToUnicode map, a
    /// private-use or replacement character).
    pub unmapped: u32,
}

/// Where a page's text came from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TextSource {
    /// Read from the page's pixels.
    #[default]
    Ocr,
    /// Taken from the text the PDF page already carries.
    TextLayer,
    /// Left out: the page carries text and the job skips such pages.
    Skipped,
}

/// What a job does with PDF pages that already carry text.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TextLayer {
    /// Take a page's text from its text layer when the layer agrees with
    /// the page's pixels, read it from the pixels when not.
    #[default]
    Auto,
    /// Read every page from its pixels.
    Ocr,
    /// Leave pages with text out of OCR; they have no text in the result.
    Skip,
    /// Take the text of pages with text from the PDF, read the others.
    Use,
}

impl TextLayer {
    /// Every mode, by name.
    pub const NAMES: [&str; 4] = ["auto", "ocr", "skip", "use"];

    /// The mode's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Ocr => "ocr",
            Self::Skip => "skip",
            Self::Use => "use",
        }
    }
}

impl std::str::FromStr for TextLayer {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "auto" => Ok(Self::Auto),
            "ocr" => Ok(Self::Ocr),
            "skip" => Ok(Self::Skip),
            "use" => Ok(Self::Use),
            other => Err(format!(
                "text layer mode {other:?} is unknown: {}",
                Self::NAMES.join(", ")
            )),
        }
    }
}

impl PageOcr {
    /// A page whose lines were not read from pixels (taken from the PDF's
    /// text layer, or none for a skipped page): upright, confidence 1.
    pub fn not_read(
        lines: Vec<OcrLine>,
        (width, height): (u32, u32),
        text_source: TextSource,
        timings: StepTimings,
    ) -> Self {
        Self {
            width,
            height,
            rotation: 0,
            blocks: Block::of_lines(&lines),
            counts: TextCounts::of_lines(lines.iter().map(|l| l.text.as_str())),
            avg_confidence: if lines.is_empty() { 0.0 } else { 1.0 },
            lines,
            timings,
            text_source,
            layer_check: None,
        }
    }

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
