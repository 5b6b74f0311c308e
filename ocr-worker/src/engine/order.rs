//! Reading order: top to bottom and left to right, with multi-column pages read
//! column by column.
//!
//! Column gutters are vertical bands that no column-width line crosses. Lines
//! that cross a gutter (titles, full-width paragraphs, footers) split the page
//! into horizontal sections; within a section every column is read to its end
//! before the next one starts.

/// Axis-aligned extent of a line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Extent {
    /// Left.
    pub x0: f32,
    /// Top.
    pub y0: f32,
    /// Right.
    pub x1: f32,
    /// Bottom.
    pub y1: f32,
}

impl Extent {
    fn height(&self) -> f32 {
        self.y1 - self.y0
    }
    fn center_y(&self) -> f32 {
        (self.y0 + self.y1) / 2.0
    }
}

/// Lines narrower than this share of the text's width are column candidates:
/// a line of a two-column page is under half the width.
const COLUMN_LINE_SHARE: f32 = 0.55;
/// A gutter must be at least this share of the text width, so that word gaps
/// that happen to line up in a few lines are not taken for one.
const MIN_GUTTER_SHARE: f32 = 0.015;
/// Each side of a gutter needs this many lines to count as a column.
const MIN_COLUMN_LINES: usize = 3;

/// Returns the indices of `lines` in reading order with each line's column.
pub fn reading_order(lines: &[Extent]) -> Vec<(usize, u32)> {
    if lines.is_empty() {
        return Vec::new();
    }
    let gutters = find_gutters(lines);
    let column_of = |e: &Extent| -> Option<u32> {
        // Some(column) when the line lies between two gutters, None when it crosses one.
        let mut col = 0u32;
        for &(g0, g1) in &gutters {
            if e.x1 <= g0 + 1.0 {
                return Some(col);
            }
            if e.x0 < g1 - 1.0 {
                return None;
            }
            col += 1;
        }
        Some(col)
    };

    // Spanning lines cut the page into sections; each other line belongs to the
    // section its centre falls in.
    let mut spanning: Vec<usize> = (0..lines.len())
        .filter(|&i| column_of(&lines[i]).is_none())
        .collect();
    spanning.sort_by(|&a, &b| lines[a].center_y().total_cmp(&lines[b].center_y()));
    let columns = gutters.len() + 1;
    let mut sections: Vec<Vec<Vec<usize>>> = vec![vec![Vec::new(); columns]; spanning.len() + 1];
    for (i, line) in lines.iter().enumerate() {
        if let Some(col) = column_of(line) {
            let section = spanning.partition_point(|&s| lines[s].center_y() < line.center_y());
            sections[section][col as usize].push(i);
        }
    }

    let mut out = Vec::with_capacity(lines.len());
    for (s, section) in sections.iter().enumerate() {
        for (col, members) in section.iter().enumerate() {
            for i in rows_in_order(lines, members) {
                out.push((i, col as u32));
            }
        }
        // Consecutive spanning lines on one row (a centred heading split in two
        // boxes) are read left to right too.
        if let Some(&line) = spanning.get(s) {
            let prev_on_row = out.last().is_some_and(|&(p, c)| {
                c == 0
                    && spanning.contains(&p)
                    && same_row(&lines[p], &lines[line])
                    && lines[p].x0 > lines[line].x0
            });
            if prev_on_row {
                let last = out.pop();
                out.push((line, 0));
                out.extend(last);
            } else {
                out.push((line, 0));
            }
        }
    }
    out
}

/// Whether two lines overlap vertically by more than half the smaller height.
fn same_row(a: &Extent, b: &Extent) -> bool {
    let overlap = a.y1.min(b.y1) - a.y0.max(b.y0);
    overlap > 0.5 * a.height().min(b.height())
}

/// Orders lines into rows (top to bottom), each row left to right.
fn rows_in_order(lines: &[Extent], members: &[usize]) -> Vec<usize> {
    let mut sorted = members.to_vec();
    sorted.sort_by(|&a, &b| lines[a].center_y().total_cmp(&lines[b].center_y()));
    let mut rows: Vec<Vec<usize>> = Vec::new();
    for i in sorted {
        match rows.last_mut() {
            Some(row) if row.iter().any(|&j| same_row(&lines[i], &lines[j])) => row.push(i),
            _ => rows.push(vec![i]),
        }
    }
    rows.into_iter()
        .flat_map(|mut row| {
            row.sort_by(|&a, &b| lines[a].x0.total_cmp(&lines[b].x0));
            row
        })
        .collect()
}

/// Finds vertical gutters between columns as (left, right) x-intervals.
fn find_gutters(lines: &[Extent]) -> Vec<(f32, f32)> {
    let x_min = lines.iter().map(|e| e.x0).fold(f32::MAX, f32::min).max(0.0);
    let x_max = lines.iter().map(|e| e.x1).fold(f32::MIN, f32::max);
    let width = x_max - x_min;
    if width <= 0.0 {
        return Vec::new();
    }
    let narrow: Vec<&Extent> = lines
        .iter()
        .filter(|e| e.x1 - e.x0 < COLUMN_LINE_SHARE * width)
        .collect();
    if narrow.len() < 2 * MIN_COLUMN_LINES {
        return Vec::new();
    }
    // Coverage of narrow lines per pixel column of the text's extent.
    let bins = width.ceil() as usize + 1;
    let mut coverage = vec![0u32; bins];
    for e in &narrow {
        let a = ((e.x0 - x_min).floor().max(0.0) as usize).min(bins - 1);
        let b = ((e.x1 - x_min).ceil().max(0.0) as usize).min(bins - 1);
        for c in &mut coverage[a..=b] {
            *c += 1;
        }
    }
    let min_gutter = (MIN_GUTTER_SHARE * width).max(4.0) as usize;
    let mut gutters = Vec::new();
    let mut start = None;
    for (x, &c) in coverage.iter().enumerate() {
        match (c == 0, start) {
            (true, None) => start = Some(x),
            (false, Some(s)) => {
                if x - s >= min_gutter {
                    gutters.push((x_min + s as f32, x_min + x as f32));
                }
                start = None;
            }
            _ => {}
        }
    }
    // A gutter is real only if enough column lines lie on each side of it and
    // beside each other vertically; otherwise it is a gap in a ragged layout.
    gutters.retain(|&(g0, g1)| {
        let left: Vec<&&Extent> = narrow.iter().filter(|e| e.x1 <= g0 + 1.0).collect();
        let right: Vec<&&Extent> = narrow.iter().filter(|e| e.x0 >= g1 - 1.0).collect();
        if left.len() < MIN_COLUMN_LINES || right.len() < MIN_COLUMN_LINES {
            return false;
        }
        let side_by_side = left
            .iter()
            .filter(|l| right.iter().any(|r| l.y0 < r.y1 && r.y0 < l.y1))
            .count();
        side_by_side >= MIN_COLUMN_LINES
    });
    gutters
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(x0: f32, y0: f32, x1: f32, y1: f32) -> Extent {
        Extent { x0, y0, x1, y1 }
    }

    fn order(lines: &[Extent]) -> Vec<usize> {
        reading_order(lines).into_iter().map(|(i, _)| i).collect()
    }

    #[test]
    fn single_column_reads_top_down_and_rows_left_to_right() {
        let lines = [
            e(100.0, 50.0, 500.0, 70.0),
            e(10.0, 10.0, 400.0, 30.0),
            e(10.0, 50.0, 60.0, 70.0),
        ];
        assert_eq!(order(&lines), vec![1, 2, 0]);
    }

    #[test]
    fn slightly_skewed_rows_stay_together() {
        let lines = [
            e(300.0, 12.0, 500.0, 32.0),
            e(10.0, 10.0, 280.0, 30.0),
            e(10.0, 40.0, 500.0, 60.0),
        ];
        assert_eq!(order(&lines), vec![1, 0, 2]);
    }

    #[test]
    fn two_columns_are_read_column_by_column() {
        // Title across the page, two columns of five lines with aligned rows,
        // then a footer across the page.
        let mut lines = vec![e(100.0, 10.0, 900.0, 40.0)];
        for row in 0..5 {
            let y = 60.0 + row as f32 * 30.0;
            lines.push(e(50.0, y, 480.0, y + 20.0));
            lines.push(e(520.0, y, 950.0, y + 20.0));
        }
        lines.push(e(50.0, 250.0, 950.0, 270.0));
        let got = reading_order(&lines);
        let idx: Vec<usize> = got.iter().map(|&(i, _)| i).collect();
        assert_eq!(idx, vec![0, 1, 3, 5, 7, 9, 2, 4, 6, 8, 10, 11]);
        let cols: Vec<u32> = got.iter().map(|&(_, c)| c).collect();
        assert_eq!(cols, vec![0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 0]);
    }

    #[test]
    fn short_last_lines_of_a_column_paragraph_stay_in_their_column() {
        let mut lines = Vec::new();
        for row in 0..4 {
            let y = row as f32 * 30.0;
            lines.push(e(50.0, y, 480.0, y + 20.0));
            lines.push(e(520.0, y, 950.0, y + 20.0));
        }
        // A short line ending the left column's paragraph.
        lines.push(e(50.0, 120.0, 150.0, 140.0));
        let idx = order(&lines);
        assert_eq!(idx, vec![0, 2, 4, 6, 8, 1, 3, 5, 7]);
    }

    #[test]
    fn a_few_aligned_word_gaps_are_not_a_gutter() {
        // Two short lines with a gap between them, then full-width text.
        let lines = [
            e(10.0, 10.0, 200.0, 30.0),
            e(300.0, 10.0, 500.0, 30.0),
            e(10.0, 40.0, 500.0, 60.0),
            e(10.0, 70.0, 500.0, 90.0),
        ];
        assert_eq!(order(&lines), vec![0, 1, 2, 3]);
    }

    #[test]
    fn empty_page() {
        assert!(reading_order(&[]).is_empty());
    }
}
