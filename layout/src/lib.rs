//! The page layout, one for every source of lines: boxes grouped into
//! regions by a recursive XY-cut ([`layout`]), the regions into blocks
//! (paragraphs, tables) in reading order, and the blocks' kinds once their
//! text is known ([`refine_kinds`]). The OCR worker lays out the lines it
//! detected before it reads them; a page whose text comes from the PDF's
//! text layer is laid out with [`lay_out_lines`], so a two-column paper reads
//! in column order whichever way its text came. Reads and writes no message.

mod cut;
mod kinds;

pub use cut::{Extent, Placed, layout};
pub use kinds::{monospaced_advance, refine_kinds};

use pagefleet_schemas::OcrLine;

/// Lines whose text is already known (a PDF's text layer), in any order,
/// laid out: put in reading order, with their blocks, columns, cells and
/// kinds set.
pub fn lay_out_lines(lines: Vec<OcrLine>) -> Vec<OcrLine> {
    let extents: Vec<Extent> = lines
        .iter()
        .map(|line| {
            let (x0, y0, x1, y1) = line.bounds();
            Extent { x0, y0, x1, y1 }
        })
        .collect();
    let placed = layout(&extents);
    let mut lines: Vec<Option<OcrLine>> = lines.into_iter().map(Some).collect();
    let mut out: Vec<OcrLine> = placed
        .iter()
        .filter_map(|p| {
            let mut line = lines[p.line].take()?;
            line.block = p.block;
            line.block_kind = p.kind;
            line.column = p.column;
            line.cell = p.cell;
            Some(line)
        })
        .collect();
    refine_kinds(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use pagefleet_schemas::{BlockKind, OcrWord};

    use super::*;

    fn line(text: &str, x: f32, y: f32, width: f32) -> OcrLine {
        let polygon = [[x, y], [x + width, y], [x + width, y + 10.0], [x, y + 10.0]];
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
    fn lines_given_row_by_row_across_two_columns_read_column_after_column() {
        // A text layer that runs across the page: each row's left line, then
        // its right one.
        let mut given = Vec::new();
        for row in 0..8 {
            let y = row as f32 * 14.0;
            given.push(line(&format!("left {row}"), 0.0, y, 200.0));
            given.push(line(&format!("right {row}"), 240.0, y, 200.0));
        }
        let read: Vec<String> = lay_out_lines(given).into_iter().map(|l| l.text).collect();
        let expected: Vec<String> = (0..8)
            .map(|r| format!("left {r}"))
            .chain((0..8).map(|r| format!("right {r}")))
            .collect();
        assert_eq!(read, expected);
    }
}
