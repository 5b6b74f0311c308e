//! Page layout: detected lines grouped into regions by a recursive XY-cut, the
//! regions into blocks (paragraphs, tables), and all of it into reading order.
//!
//! Everything here is geometry over axis-aligned line boxes, decided before a
//! line is recognised, so recognition can batch lines in any order. Distances
//! are measured in `unit`s, the page's median line height, so the thresholds
//! hold at any resolution and font size.
//!
//! The cut, on one node (a set of lines):
//! - its lines are grouped into horizontal *bands*, runs of lines that overlap
//!   vertically; a band whose lines leave a wide vertical gap between them has
//!   that gap as a candidate gutter;
//! - consecutive bands that share a gutter form a *column section*; a band
//!   whose lines lie each within one column of it (the short last line of a
//!   paragraph, a column that runs on below the other) stays in it; a band
//!   with a line across the gutter (a title, a full-width paragraph, a spanning
//!   caption) starts a *full-width section*;
//! - a node of several sections is cut between them, top to bottom; a node
//!   that is one column section is cut at its gutters, left to right (or, when
//!   its columns are short aligned cells, kept whole as a table, read row by
//!   row); each piece is cut again.
//!
//! Tiny elements (page numbers, bullets, footnote marks) take no part in
//! finding cuts: a page number between two columns would otherwise join them.
//! They are placed afterwards, into the region they touch or on their own.

use pagefleet_schemas::{BlockKind, TableCell};

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
    fn width(&self) -> f32 {
        self.x1 - self.x0
    }
    fn height(&self) -> f32 {
        self.y1 - self.y0
    }
    fn cx(&self) -> f32 {
        (self.x0 + self.x1) / 2.0
    }
    fn cy(&self) -> f32 {
        (self.y0 + self.y1) / 2.0
    }
    fn union(&self, o: &Extent) -> Extent {
        Extent {
            x0: self.x0.min(o.x0),
            y0: self.y0.min(o.y0),
            x1: self.x1.max(o.x1),
            y1: self.y1.max(o.y1),
        }
    }
    /// Distance from a point to the box (0 inside), horizontal distances
    /// counted `beside` times less.
    fn distance_to(&self, x: f32, y: f32, beside: f32) -> f32 {
        let dx = (self.x0 - x).max(x - self.x1).max(0.0);
        let dy = (self.y0 - y).max(y - self.y1).max(0.0);
        (dx / beside).max(dy)
    }
}

/// One line's place in the layout.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Placed {
    /// Index of the line in the input.
    pub line: usize,
    /// Block number, in reading order from 0.
    pub block: u32,
    /// What the geometry says the block is: [`BlockKind::Table`] or
    /// [`BlockKind::Text`] (the rest needs the text, [`refine_kinds`]).
    ///
    /// [`refine_kinds`]: crate::refine_kinds
    pub kind: BlockKind,
    /// Column of the outermost column section the line was read in (0 for
    /// full-width text).
    pub column: u32,
    /// The line's cell, in a table.
    pub cell: Option<TableCell>,
}

/// Lines narrower than this many units are tiny: page numbers, bullets,
/// footnote marks. Three digits at the body size are about 1.8 units wide.
const TINY_WIDTH: f32 = 2.2;
/// Band membership uses each box shrunk by this share of its height at top and
/// bottom: detection boxes are grown around the text (DB's unclip), so boxes
/// of consecutive lines of tight text touch.
const BAND_SHRINK: f32 = 0.2;
/// Narrowest gutter, in units. LaTeX's default `\columnsep` is 10 pt, one unit
/// at 10 pt type, and grown detection boxes eat part of it: the gutters of a
/// three-column index measured 0.4 units between boxes. Word gaps that
/// detection splits a line at are narrower still. On the layout set 0.45 lost
/// that index (74% CER), 0.35 and 0.3 read it (13% and 15%), alike elsewhere.
const MIN_GUTTER: f32 = 0.35;
/// Each column of a column section needs this many lines.
const MIN_COLUMN_LINES: usize = 2;
/// A band separated from its column section's last two-sided band by more
/// than this many units is not part of the section (a footnote under the
/// columns, a closing line of the page).
const RELEASE_GAP: f32 = 2.5;
/// Columns of running text are at least this many units wide; narrower
/// aligned columns are table columns.
const TEXT_COLUMN_WIDTH: f32 = 9.0;
/// A line fills its column when it is at least this share of the column's
/// width; most lines of running text do, table cells and code mostly do not.
const FILLED_LINE: f32 = 0.7;
/// Columns whose widths differ by at most this factor are a page's grid.
const EVEN_COLUMNS: f32 = 1.2;
/// A paragraph ends where the gap to the next line exceeds the page's usual
/// leading by this many units.
const PARAGRAPH_EXTRA_GAP: f32 = 0.45;
/// A line this much taller or shorter than the one before starts a new block
/// (a large heading and its text). Detection boxes of one paragraph's lines
/// differ by up to 1.4 times with their ascenders and descenders.
const HEIGHT_JUMP: f32 = 1.6;
/// A first-line indent is at least this many units.
const INDENT: f32 = 0.8;
/// A tiny element this close (in units) to a region joins it; beside a region
/// it may be three times as far (a page number after a table of contents
/// entry whose dot leaders were not detected).
const TINY_JOIN: f32 = 1.0;
const TINY_JOIN_BESIDE: f32 = 3.0;

/// Lays the page out: every line, in reading order, with its block.
pub fn layout(lines: &[Extent]) -> Vec<Placed> {
    if lines.is_empty() {
        return Vec::new();
    }
    let mut heights: Vec<f32> = lines.iter().map(Extent::height).collect();
    let unit = median(&mut heights).max(1.0);
    let page = Page { lines, unit };
    let (mut tiny, mut main): (Vec<usize>, Vec<usize>) =
        (0..lines.len()).partition(|&i| lines[i].width() < TINY_WIDTH * unit);
    if main.len() < tiny.len() {
        // Mostly tiny elements (a table of numbers): they are the content.
        main.append(&mut tiny);
    }
    let mut regions = Vec::new();
    page.cut(main, None, &mut regions);
    page.place_tiny(tiny, &mut regions);
    let leading = page.leading(&regions);
    let mut out = Vec::with_capacity(lines.len());
    for region in regions {
        page.emit(region, leading, &mut out);
    }
    out
}

/// A leaf of the cut.
#[derive(Debug)]
struct Region {
    lines: Vec<usize>,
    column: u32,
    /// For a table, the x positions that separate its columns.
    table: Option<Vec<f32>>,
}

#[derive(Debug)]
struct Band {
    lines: Vec<usize>,
    y0: f32,
    y1: f32,
    /// Vertical gaps between the band's lines, each with lines on both sides.
    gaps: Vec<(f32, f32)>,
}

#[derive(Debug)]
struct Section {
    bands: Vec<usize>,
    /// Gutters shared by its bands; empty for a full-width section.
    gutters: Vec<(f32, f32)>,
}

struct Page<'a> {
    lines: &'a [Extent],
    unit: f32,
}

impl Page<'_> {
    fn cut(&self, node: Vec<usize>, column: Option<u32>, out: &mut Vec<Region>) {
        let leaf = |lines| Region {
            lines,
            column: column.unwrap_or(0),
            table: None,
        };
        if node.len() < 2 {
            if !node.is_empty() {
                out.push(leaf(node));
            }
            return;
        }
        let bands = self.bands(&node);
        let mut sections = self.sections(&bands);
        if sections.len() > 1 {
            for s in sections {
                let lines = s
                    .bands
                    .iter()
                    .flat_map(|&b| bands[b].lines.clone())
                    .collect();
                self.cut(lines, column, out);
            }
            return;
        }
        let Some(section) = sections.pop() else {
            return;
        };
        if section.gutters.is_empty() {
            out.push(leaf(node));
            return;
        }
        let cuts: Vec<f32> = section.gutters.iter().map(|g| (g.0 + g.1) / 2.0).collect();
        let mut pieces = vec![Vec::new(); cuts.len() + 1];
        for &i in &node {
            pieces[column_of(&cuts, self.lines[i].cx())].push(i);
        }
        if self.is_table(&pieces, &section, &bands, &cuts) {
            out.push(Region {
                lines: node,
                column: column.unwrap_or(0),
                table: Some(cuts),
            });
            return;
        }
        for (c, piece) in pieces.into_iter().enumerate() {
            self.cut(piece, Some(column.unwrap_or(c as u32)), out);
        }
    }

    /// A line's vertical extent, shrunk by [`BAND_SHRINK`].
    fn shrunk(&self, i: usize) -> (f32, f32) {
        let e = &self.lines[i];
        let s = BAND_SHRINK * e.height();
        (e.y0 + s, e.y1 - s)
    }

    /// Whether two lines overlap vertically (shrunk as for bands).
    fn overlap(&self, a: usize, b: usize) -> bool {
        let (a, b) = (self.shrunk(a), self.shrunk(b));
        a.0 < b.1 && b.0 < a.1
    }

    /// Groups lines into bands of vertically overlapping lines, top to bottom.
    fn bands(&self, node: &[usize]) -> Vec<Band> {
        let shrunk = |i: usize| self.shrunk(i);
        let mut sorted = node.to_vec();
        sorted.sort_by(|&a, &b| shrunk(a).0.total_cmp(&shrunk(b).0));
        let mut bands: Vec<Band> = Vec::new();
        let mut reach = f32::MIN;
        for i in sorted {
            let (a, b) = shrunk(i);
            match bands.last_mut() {
                Some(band) if a < reach => {
                    band.lines.push(i);
                    band.y0 = band.y0.min(self.lines[i].y0);
                    band.y1 = band.y1.max(self.lines[i].y1);
                    reach = reach.max(b);
                }
                _ => {
                    bands.push(Band {
                        lines: vec![i],
                        y0: self.lines[i].y0,
                        y1: self.lines[i].y1,
                        gaps: Vec::new(),
                    });
                    reach = b;
                }
            }
        }
        for band in &mut bands {
            band.gaps = self.gaps(&band.lines);
        }
        bands
    }

    /// Vertical gaps at least [`MIN_GUTTER`] wide between `members`.
    fn gaps(&self, members: &[usize]) -> Vec<(f32, f32)> {
        let mut xs: Vec<(f32, f32)> = members
            .iter()
            .map(|&i| (self.lines[i].x0, self.lines[i].x1))
            .collect();
        xs.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut gaps = Vec::new();
        let mut covered = f32::MIN;
        for (x0, x1) in xs {
            if covered > f32::MIN && x0 - covered >= MIN_GUTTER * self.unit {
                gaps.push((covered, x0));
            }
            covered = covered.max(x1);
        }
        gaps
    }

    /// Whether no line of `band` spans one of `gutters`.
    fn fits(&self, band: &Band, gutters: &[(f32, f32)]) -> bool {
        band.lines.iter().all(|&i| {
            let e = &self.lines[i];
            gutters.iter().all(|&(g0, g1)| !(e.x0 < g0 && e.x1 > g1))
        })
    }

    /// The parts of `gutters` that no line of `band` covers, each at least
    /// [`MIN_GUTTER`] wide.
    fn uncovered(&self, gutters: &[(f32, f32)], band: &Band) -> Vec<(f32, f32)> {
        let mut free = gutters.to_vec();
        for &i in &band.lines {
            let e = &self.lines[i];
            free = free
                .into_iter()
                .flat_map(|(g0, g1)| [(g0, g1.min(e.x0)), (g0.max(e.x1), g1)])
                .filter(|&(a, b)| b - a >= MIN_GUTTER * self.unit)
                .collect();
        }
        free.dedup();
        free
    }

    /// Groups consecutive bands into column and full-width sections.
    fn sections(&self, bands: &[Band]) -> Vec<Section> {
        // 1. One pass top to bottom.
        let mut sections: Vec<Section> = Vec::new();
        for (b, band) in bands.iter().enumerate() {
            let joined = match sections.last_mut() {
                Some(s) if !s.gutters.is_empty() => {
                    // The gutters narrow to what the band leaves free; the
                    // band belongs to the section while any gutter is left.
                    // A line across all of them (a title, a full-width
                    // paragraph) ends the section; a band with lines in
                    // some columns only, or a small table within one column,
                    // does not.
                    let free = self.uncovered(&s.gutters, band);
                    let ok = !free.is_empty();
                    if ok {
                        s.gutters = free;
                    }
                    ok
                }
                Some(_) => band.gaps.is_empty(),
                None => false,
            };
            if joined {
                if let Some(s) = sections.last_mut() {
                    s.bands.push(b);
                }
            } else {
                sections.push(Section {
                    bands: vec![b],
                    gutters: band.gaps.clone(),
                });
            }
        }
        // 2. A column section lets go of one-sided bands far below its last
        // two-sided one.
        let mut i = 0;
        while i < sections.len() {
            if !sections[i].gutters.is_empty() {
                let s = &sections[i];
                let last_split = s.bands.iter().rposition(|&b| !bands[b].gaps.is_empty());
                let release = last_split.and_then(|k| {
                    (k + 1..s.bands.len()).find(|&j| {
                        bands[s.bands[j]].y0 - bands[s.bands[j - 1]].y1 > RELEASE_GAP * self.unit
                    })
                });
                if let Some(j) = release {
                    let rest = sections[i].bands.split_off(j);
                    sections.insert(
                        i + 1,
                        Section {
                            bands: rest,
                            gutters: Vec::new(),
                        },
                    );
                }
            }
            i += 1;
        }
        // 3. A column section takes back the one-sided bands just above it that
        // sit closer to it than to what is above them: the first lines of a
        // column that starts higher than its neighbour.
        for i in 1..sections.len() {
            if sections[i].gutters.is_empty() || !sections[i - 1].gutters.is_empty() {
                continue;
            }
            while let Some(&b) = sections[i - 1].bands.last() {
                let next = sections[i].bands[0];
                let above = sections[i - 1].bands.iter().rev().nth(1).copied();
                let gap_below = bands[next].y0 - bands[b].y1;
                let gap_above = above.map_or(f32::MAX, |a| bands[b].y0 - bands[a].y1);
                if !self.fits(&bands[b], &sections[i].gutters) || gap_below > gap_above {
                    break;
                }
                sections[i - 1].bands.pop();
                sections[i].bands.insert(0, b);
            }
        }
        sections.retain(|s| !s.bands.is_empty());
        // 4. Each column needs lines of its own, and each gutter lines beside
        // each other across it; otherwise it is a gap in ragged text, or
        // two sub-captions side by side over a caption.
        for s in &mut sections {
            let members: Vec<usize> = s
                .bands
                .iter()
                .flat_map(|&b| bands[b].lines.clone())
                .collect();
            s.gutters.retain(|g| {
                let cut = (g.0 + g.1) / 2.0;
                let side_by_side = members
                    .iter()
                    .filter(|&&l| self.lines[l].cx() < cut)
                    .filter(|&&l| {
                        members
                            .iter()
                            .any(|&r| self.lines[r].cx() > cut && self.overlap(l, r))
                    })
                    .count();
                side_by_side >= MIN_COLUMN_LINES
            });
            while !s.gutters.is_empty() {
                let cuts: Vec<f32> = s.gutters.iter().map(|g| (g.0 + g.1) / 2.0).collect();
                let mut counts = vec![0usize; cuts.len() + 1];
                for &l in &members {
                    counts[column_of(&cuts, self.lines[l].cx())] += 1;
                }
                let Some(thin) = counts.iter().position(|&c| c < MIN_COLUMN_LINES) else {
                    break;
                };
                // A thin column merges with the neighbour across its
                // narrower gutter.
                let last = s.gutters.len() - 1;
                let width = |g: usize| s.gutters[g].1 - s.gutters[g].0;
                let gutter = match thin {
                    0 => 0,
                    t if t > last => last,
                    t if width(t - 1) < width(t) => t - 1,
                    t => t,
                };
                s.gutters.remove(gutter);
            }
        }
        // 5. Neighbouring full-width sections are one.
        let mut merged: Vec<Section> = Vec::new();
        for s in sections {
            match merged.last_mut() {
                Some(m) if m.gutters.is_empty() && s.gutters.is_empty() => m.bands.extend(s.bands),
                _ => merged.push(s),
            }
        }
        merged
    }

    /// Whether a column section is a table rather than columns of text:
    /// its rows line up across columns, and its columns are not all wide
    /// columns of lines that fill them.
    fn is_table(
        &self,
        pieces: &[Vec<usize>],
        section: &Section,
        bands: &[Band],
        cuts: &[f32],
    ) -> bool {
        let widths: Vec<f32> = pieces
            .iter()
            .map(|p| self.extent(p).map_or(0.0, |e| e.width()))
            .collect();
        let wide = widths.iter().all(|&w| w >= TEXT_COLUMN_WIDTH * self.unit);
        let narrowest = widths.iter().copied().fold(f32::MAX, f32::min);
        let widest = widths.iter().copied().fold(0.0, f32::max);
        // Columns of a page's grid are equally wide, whatever they hold (a
        // list, code, an index); a table's columns rarely are.
        let even = widest <= EVEN_COLUMNS * narrowest;
        let filled = pieces.iter().zip(&widths).all(|(piece, &width)| {
            let full = piece
                .iter()
                .filter(|&&i| self.lines[i].width() >= FILLED_LINE * width)
                .count();
            2 * full >= piece.len()
        });
        let text_columns = wide && (even || filled);
        if text_columns {
            return false;
        }
        // Every column of a table has cells in most rows; prose beside a
        // figure has the figure's labels in a few of its rows only.
        let mut present = vec![0usize; pieces.len()];
        for &b in &section.bands {
            let mut cols: Vec<usize> = bands[b]
                .lines
                .iter()
                .map(|&i| column_of(cuts, self.lines[i].cx()))
                .collect();
            cols.sort_unstable();
            cols.dedup();
            for c in cols {
                present[c] += 1;
            }
        }
        if present.iter().any(|&n| 5 * n < 2 * section.bands.len()) {
            return false;
        }
        let aligned = section
            .bands
            .iter()
            .filter(|&&b| {
                let mut cols: Vec<usize> = bands[b]
                    .lines
                    .iter()
                    .map(|&i| column_of(cuts, self.lines[i].cx()))
                    .collect();
                cols.sort_unstable();
                cols.dedup();
                cols.len() >= 2
            })
            .count();
        aligned >= 2 && 2 * aligned >= section.bands.len()
    }

    fn extent(&self, members: &[usize]) -> Option<Extent> {
        members
            .iter()
            .map(|&i| self.lines[i])
            .reduce(|a, b| a.union(&b))
    }

    /// Puts each tiny element into the region it touches, or into a region of
    /// its own after the last region that starts above it.
    fn place_tiny(&self, mut tiny: Vec<usize>, regions: &mut Vec<Region>) {
        tiny.sort_by(|&a, &b| self.lines[a].cy().total_cmp(&self.lines[b].cy()));
        let boxes: Vec<Option<Extent>> = regions.iter().map(|r| self.extent(&r.lines)).collect();
        let mut own: Vec<(usize, Region)> = Vec::new();
        for t in tiny {
            let (x, y) = (self.lines[t].cx(), self.lines[t].cy());
            let nearest = boxes
                .iter()
                .enumerate()
                .filter_map(|(r, b)| {
                    b.map(|b| (r, b.distance_to(x, y, TINY_JOIN_BESIDE / TINY_JOIN)))
                })
                .min_by(|a, b| a.1.total_cmp(&b.1));
            match nearest {
                Some((r, d)) if d <= TINY_JOIN * self.unit => regions[r].lines.push(t),
                _ => {
                    let after = boxes.iter().rposition(|b| b.is_some_and(|b| b.y0 <= y));
                    let at = after.map_or(0, |r| r + 1);
                    // A tiny element beside the previous one on its row joins it.
                    if let Some((_, region)) = own.last_mut().filter(|(a, region)| {
                        *a == at
                            && region
                                .lines
                                .last()
                                .is_some_and(|&p| same_row(&self.lines[p], &self.lines[t]))
                    }) {
                        region.lines.push(t);
                    } else {
                        own.push((
                            at,
                            Region {
                                lines: vec![t],
                                column: 0,
                                table: None,
                            },
                        ));
                    }
                }
            }
        }
        for (at, region) in own.into_iter().rev() {
            regions.insert(at, region);
        }
    }

    /// The page's usual gap between consecutive rows of text.
    fn leading(&self, regions: &[Region]) -> f32 {
        let mut gaps: Vec<f32> = regions
            .iter()
            .filter(|r| r.table.is_none())
            .flat_map(|r| {
                let rows = self.rows(&r.lines);
                rows.windows(2)
                    .map(|w| w[1].1.y0 - w[0].1.y1)
                    .collect::<Vec<_>>()
            })
            .filter(|&g| g > -0.5 * self.unit && g < 2.0 * self.unit)
            .collect();
        if gaps.is_empty() {
            0.3 * self.unit
        } else {
            median(&mut gaps)
        }
    }

    /// Rows of `members`, top to bottom, each left to right, with its extent.
    fn rows(&self, members: &[usize]) -> Vec<(Vec<usize>, Extent)> {
        let mut sorted = members.to_vec();
        sorted.sort_by(|&a, &b| self.lines[a].cy().total_cmp(&self.lines[b].cy()));
        let mut rows: Vec<(Vec<usize>, Extent)> = Vec::new();
        for i in sorted {
            let e = self.lines[i];
            match rows.last_mut() {
                Some((row, extent)) if row.iter().any(|&j| same_row(&e, &self.lines[j])) => {
                    row.push(i);
                    *extent = extent.union(&e);
                }
                _ => rows.push((vec![i], e)),
            }
        }
        for (row, _) in &mut rows {
            row.sort_by(|&a, &b| self.lines[a].x0.total_cmp(&self.lines[b].x0));
        }
        rows
    }

    /// Emits a region's lines in reading order, split into blocks.
    fn emit(&self, region: Region, leading: f32, out: &mut Vec<Placed>) {
        let mut block = out.last().map_or(0, |p| p.block + 1);
        if let Some(cuts) = &region.table {
            for (line, cell) in self.table_cells(&region.lines, cuts) {
                out.push(Placed {
                    line,
                    block,
                    kind: BlockKind::Table,
                    column: region.column,
                    cell: Some(cell),
                });
            }
            return;
        }
        let rows = self.rows(&region.lines);
        let left = rows.iter().map(|(_, e)| e.x0).fold(f32::MAX, f32::min);
        let near_left = |e: &Extent| e.x0 - left < 0.5 * self.unit;
        for (k, (row, extent)) in rows.iter().enumerate() {
            if k > 0 {
                let prev = &rows[k - 1].1;
                let gap = extent.y0 - prev.y1;
                let (h, ph) = (self.row_height(row), self.row_height(&rows[k - 1].0));
                let jump = h.max(ph) / h.min(ph).max(1.0);
                let indented = extent.x0 - left >= INDENT * self.unit
                    && near_left(prev)
                    && rows.get(k + 1).is_some_and(|(_, next)| near_left(next));
                if gap > leading + PARAGRAPH_EXTRA_GAP * self.unit || jump > HEIGHT_JUMP || indented
                {
                    block += 1;
                }
            }
            for &line in row {
                out.push(Placed {
                    line,
                    block,
                    kind: BlockKind::Text,
                    column: region.column,
                    cell: None,
                });
            }
        }
    }

    fn row_height(&self, row: &[usize]) -> f32 {
        let mut h: Vec<f32> = row.iter().map(|&i| self.lines[i].height()).collect();
        median(&mut h)
    }

    /// A table's lines row by row, each row's cells left to right, with their
    /// cells. A band with nothing in the first column continues the row above
    /// (a cell wrapped over several lines).
    fn table_cells(&self, members: &[usize], cuts: &[f32]) -> Vec<(usize, TableCell)> {
        let mut rows: Vec<Vec<usize>> = Vec::new();
        for band in self.bands(members) {
            let starts_row = band
                .lines
                .iter()
                .any(|&i| column_of(cuts, self.lines[i].cx()) == 0);
            match rows.last_mut() {
                Some(row) if !starts_row => row.extend(band.lines),
                _ => rows.push(band.lines),
            }
        }
        let mut out = Vec::with_capacity(members.len());
        for (r, mut row) in rows.into_iter().enumerate() {
            row.sort_by(|&a, &b| {
                let (ea, eb) = (&self.lines[a], &self.lines[b]);
                column_of(cuts, ea.cx())
                    .cmp(&column_of(cuts, eb.cx()))
                    .then(ea.cy().total_cmp(&eb.cy()))
                    .then(ea.x0.total_cmp(&eb.x0))
            });
            for i in row {
                let col = column_of(cuts, self.lines[i].cx()) as u32;
                out.push((i, TableCell { row: r as u32, col }));
            }
        }
        out
    }
}

/// The column a point at `x` falls in, given the positions between columns.
fn column_of(cuts: &[f32], x: f32) -> usize {
    cuts.partition_point(|&c| c < x)
}

/// Whether two lines overlap vertically by more than half the smaller height.
fn same_row(a: &Extent, b: &Extent) -> bool {
    let overlap = a.y1.min(b.y1) - a.y0.max(b.y0);
    overlap > 0.5 * a.height().min(b.height())
}

fn median(values: &mut [f32]) -> f32 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f32::total_cmp);
    values[values.len() / 2]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(x0: f32, y0: f32, x1: f32, y1: f32) -> Extent {
        Extent { x0, y0, x1, y1 }
    }

    fn order(lines: &[Extent]) -> Vec<usize> {
        layout(lines).into_iter().map(|p| p.line).collect()
    }

    fn blocks(lines: &[Extent]) -> Vec<u32> {
        let placed = layout(lines);
        let mut by_line = vec![0; lines.len()];
        for p in placed {
            by_line[p.line] = p.block;
        }
        by_line
    }

    /// `rows` lines of a column from `x0` to `x1`, 20 high at a 25 pitch,
    /// the last one ending a paragraph short.
    fn column(lines: &mut Vec<Extent>, x0: f32, x1: f32, y: f32, rows: usize) -> Vec<usize> {
        (0..rows)
            .map(|r| {
                let top = y + 25.0 * r as f32;
                let right = if r + 1 == rows {
                    x0 + 0.4 * (x1 - x0)
                } else {
                    x1
                };
                lines.push(e(x0, top, right, top + 20.0));
                lines.len() - 1
            })
            .collect()
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
    fn an_article_reads_header_then_column_by_column_then_footer() {
        let mut lines = vec![e(300.0, 10.0, 700.0, 50.0), e(350.0, 60.0, 650.0, 80.0)];
        let abstract_ = column(&mut lines, 50.0, 950.0, 110.0, 4);
        let left = column(&mut lines, 50.0, 480.0, 250.0, 10);
        let right = column(&mut lines, 520.0, 950.0, 250.0, 10);
        lines.push(e(50.0, 540.0, 950.0, 560.0));
        let mut want = vec![0, 1];
        want.extend(&abstract_);
        want.extend(&left);
        want.extend(&right);
        want.push(lines.len() - 1);
        let placed = layout(&lines);
        assert_eq!(placed.iter().map(|p| p.line).collect::<Vec<_>>(), want);
        let column_of = |i: usize| placed.iter().find(|p| p.line == i).map(|p| p.column);
        assert_eq!(column_of(left[3]), Some(0));
        assert_eq!(column_of(right[3]), Some(1));
        // Title, authors, abstract, each column and the footer are blocks.
        let b = blocks(&lines);
        assert!(b[0] < b[1] && b[1] < b[abstract_[0]]);
        assert!(abstract_.iter().all(|&i| b[i] == b[abstract_[0]]));
        assert!(left.iter().all(|&i| b[i] == b[left[0]]));
        assert!(b[left[0]] != b[right[0]] && b[right[9]] != b[lines.len() - 1]);
    }

    #[test]
    fn three_columns() {
        let mut lines = Vec::new();
        let a = column(&mut lines, 40.0, 330.0, 0.0, 12);
        let b = column(&mut lines, 360.0, 650.0, 0.0, 9);
        let c = column(&mut lines, 680.0, 970.0, 0.0, 12);
        let want: Vec<usize> = a.iter().chain(&b).chain(&c).copied().collect();
        assert_eq!(order(&lines), want);
    }

    #[test]
    fn columns_under_a_full_width_list_keep_to_their_columns() {
        // Bullets of varying length across the page, some short enough to
        // fit a column, then two columns.
        let mut lines = Vec::new();
        let widths = [250.0, 880.0, 300.0, 700.0, 200.0];
        for (k, w) in widths.iter().enumerate() {
            let y = 25.0 * k as f32;
            lines.push(e(50.0, y, 50.0 + w, y + 20.0));
        }
        let left = column(&mut lines, 50.0, 480.0, 170.0, 8);
        let right = column(&mut lines, 520.0, 950.0, 170.0, 8);
        let mut want: Vec<usize> = (0..widths.len()).collect();
        want.extend(&left);
        want.extend(&right);
        assert_eq!(order(&lines), want);
    }

    #[test]
    fn a_column_that_starts_lower_is_still_read_second() {
        // The left column starts at once, the right one after a figure.
        let mut lines = vec![e(50.0, 0.0, 950.0, 30.0)];
        let left = column(&mut lines, 50.0, 480.0, 60.0, 12);
        let right = column(&mut lines, 520.0, 950.0, 210.0, 6);
        let want: Vec<usize> = [0].iter().chain(&left).chain(&right).copied().collect();
        assert_eq!(order(&lines), want);
        // And the other way round: the right column starts higher.
        let mut lines = vec![e(50.0, 0.0, 950.0, 30.0)];
        let left = column(&mut lines, 50.0, 480.0, 210.0, 6);
        let right = column(&mut lines, 520.0, 950.0, 60.0, 12);
        let want: Vec<usize> = [0].iter().chain(&left).chain(&right).copied().collect();
        assert_eq!(order(&lines), want);
    }

    #[test]
    fn a_page_number_between_columns_does_not_join_them() {
        let mut lines = Vec::new();
        let left = column(&mut lines, 50.0, 480.0, 0.0, 10);
        let right = column(&mut lines, 520.0, 950.0, 0.0, 10);
        // The page number sits at the gutter, under both columns.
        lines.push(e(488.0, 300.0, 512.0, 320.0));
        let want: Vec<usize> = left.iter().chain(&right).copied().chain([20]).collect();
        assert_eq!(order(&lines), want);
        // A full-width band in the middle keeps its place between the
        // column sections above and below it.
        let mut lines = Vec::new();
        let a = column(&mut lines, 50.0, 480.0, 0.0, 4);
        let b = column(&mut lines, 520.0, 950.0, 0.0, 4);
        lines.push(e(50.0, 130.0, 950.0, 150.0));
        let c = column(&mut lines, 50.0, 480.0, 180.0, 4);
        let d = column(&mut lines, 520.0, 950.0, 180.0, 4);
        let want: Vec<usize> = a
            .iter()
            .chain(&b)
            .copied()
            .chain([8])
            .chain(c)
            .chain(d)
            .collect();
        assert_eq!(order(&lines), want);
    }

    #[test]
    fn a_table_is_read_row_by_row_with_its_cells() {
        // A paragraph, then a table of three narrow columns whose second
        // column wraps one cell over two lines, then a paragraph.
        let mut lines = Vec::new();
        lines.push(e(50.0, 0.0, 950.0, 20.0));
        let rows = [
            (40.0, "3"),
            (80.0, "2"),
            (120.0, "2w"),
            (145.0, ""),
            (170.0, "2"),
        ];
        for (y, _) in rows {
            let y: f32 = y;
            if y == 145.0 {
                lines.push(e(300.0, y, 420.0, y + 20.0));
                continue;
            }
            lines.push(e(50.0, y, 150.0 + (y % 3.0) * 20.0, y + 20.0));
            lines.push(e(300.0, y, 380.0 + (y % 7.0) * 10.0, y + 20.0));
            lines.push(e(600.0, y, 660.0 + (y % 5.0) * 10.0, y + 20.0));
        }
        lines.push(e(50.0, 220.0, 950.0, 240.0));
        let placed = layout(&lines);
        let got: Vec<usize> = placed.iter().map(|p| p.line).collect();
        // Row 2's second cell (lines 8 and 10) is read before its third.
        assert_eq!(got, vec![0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 9, 11, 12, 13, 14]);
        let cells: Vec<Option<(u32, u32)>> = placed
            .iter()
            .map(|p| p.cell.map(|c| (c.row, c.col)))
            .collect();
        assert_eq!(cells[0], None);
        assert_eq!(&cells[1..4], &[Some((0, 0)), Some((0, 1)), Some((0, 2))]);
        // The wrapped line belongs to row 2's second cell.
        assert_eq!(
            &cells[7..11],
            &[Some((2, 0)), Some((2, 1)), Some((2, 1)), Some((2, 2))]
        );
        assert_eq!(cells[14], None);
        assert!(placed[1..14].iter().all(|p| p.kind == BlockKind::Table));
        assert!(placed[1].block == placed[13].block && placed[0].block != placed[1].block);
    }

    #[test]
    fn labels_of_a_figure_beside_prose_stay_out_of_it() {
        // Prose in the right half, a figure with three labels in the left.
        let mut lines = Vec::new();
        let prose = column(&mut lines, 520.0, 950.0, 0.0, 12);
        lines.push(e(80.0, 40.0, 200.0, 60.0));
        lines.push(e(300.0, 130.0, 420.0, 150.0));
        lines.push(e(100.0, 240.0, 260.0, 260.0));
        let want: Vec<usize> = [12, 13, 14].iter().chain(&prose).copied().collect();
        assert_eq!(order(&lines), want);
    }

    #[test]
    fn labels_of_a_figure_between_paragraphs_stay_between_them() {
        let mut lines = Vec::new();
        let first = column(&mut lines, 50.0, 950.0, 0.0, 3);
        // Labels spread over the figure, two of them on one row.
        lines.extend([
            e(100.0, 110.0, 200.0, 130.0),
            e(700.0, 112.0, 820.0, 132.0),
            e(400.0, 200.0, 520.0, 220.0),
        ]);
        lines.push(e(50.0, 260.0, 700.0, 280.0));
        let second = column(&mut lines, 50.0, 950.0, 320.0, 3);
        let want: Vec<usize> = first
            .iter()
            .copied()
            .chain([3, 4, 5, 6])
            .chain(second)
            .collect();
        assert_eq!(order(&lines), want);
    }

    #[test]
    fn code_with_indents_and_aligned_comments_reads_line_by_line() {
        let mut lines = Vec::new();
        lines.push(e(50.0, 0.0, 950.0, 20.0));
        let code = [
            (50.0, 300.0),
            (90.0, 420.0),
            (130.0, 260.0),
            (90.0, 380.0),
            (50.0, 120.0),
        ];
        for (k, (x0, x1)) in code.iter().enumerate() {
            let y = 25.0 * (k + 1) as f32;
            lines.push(e(*x0, y, *x1, y + 20.0));
            if (1..4).contains(&k) {
                // `# comment` aligned at one column on three lines.
                lines.push(e(520.0, y, 600.0 + 40.0 * k as f32, y + 20.0));
            }
        }
        lines.push(e(50.0, 175.0, 950.0, 195.0));
        assert_eq!(order(&lines), (0..lines.len()).collect::<Vec<_>>());
    }

    #[test]
    fn a_few_aligned_word_gaps_are_not_a_gutter() {
        let lines = [
            e(10.0, 10.0, 200.0, 30.0),
            e(300.0, 10.0, 500.0, 30.0),
            e(10.0, 40.0, 500.0, 60.0),
            e(10.0, 70.0, 500.0, 90.0),
        ];
        assert_eq!(order(&lines), vec![0, 1, 2, 3]);
    }

    #[test]
    fn paragraphs_split_on_gaps_indents_and_heights() {
        let mut lines = vec![e(50.0, 0.0, 400.0, 36.0)];
        let a = column(&mut lines, 50.0, 950.0, 50.0, 3);
        // An indented first line after a short last one.
        lines.push(e(90.0, 125.0, 950.0, 145.0));
        lines.push(e(50.0, 150.0, 950.0, 170.0));
        // A gap.
        lines.push(e(50.0, 210.0, 950.0, 230.0));
        let b = blocks(&lines);
        assert_eq!(b, vec![0, 1, 1, 1, 2, 2, 3]);
        assert_eq!(a, vec![1, 2, 3]);
    }

    #[test]
    fn empty_page() {
        assert!(layout(&[]).is_empty());
    }
}
