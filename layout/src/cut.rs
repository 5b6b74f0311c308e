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

use std::ops::Range;

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
/// A table whose cells wrap has at least this many rows.
const MIN_TABLE_ROWS: usize = 3;
/// The cells of a table's column start (or end, or centre) within this many
/// units of each other.
const ALIGN: f32 = 0.5;
/// A cell's last line ends at least this many units short of its column's
/// right edge, or the gap after it exceeds the gap between its lines by
/// this many units.
const SHORT_LINE: f32 = 1.0;
const ROW_GAP: f32 = 0.25;
/// Two parts of a table are joined across at most this many regions of
/// other lines, which run across the table's columns in at most this many
/// rows and lie less than this many units from each part.
const STRAY_REGIONS: usize = 4;
const STRAY_ROWS: usize = 2;
const STRAY_GAP: f32 = 2.0;
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
    page.join_tables(&mut regions);
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
        let cuts = cuts_of(&section.gutters);
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

    /// Whether every column between `gutters` has a line of `members` that
    /// ends within [`RELEASE_GAP`] of `y`.
    fn columns_reach(
        &self,
        members: &[usize],
        bands: &[Band],
        gutters: &[(f32, f32)],
        y: f32,
    ) -> bool {
        let cuts = cuts_of(gutters);
        let mut reached = vec![false; cuts.len() + 1];
        for &i in members.iter().flat_map(|&b| &bands[b].lines) {
            let e = &self.lines[i];
            if e.y1 >= y - RELEASE_GAP * self.unit {
                reached[column_of(&cuts, e.cx())] = true;
            }
        }
        reached.iter().all(|&r| r)
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
                    // paragraph) ends the section, and so does a band of
                    // one run of lines across some of them (a caption under
                    // a table narrower than the table); a band with lines
                    // in some columns only, or a small table within one
                    // column, does not.
                    let free = self.uncovered(&s.gutters, band);
                    let lost = s
                        .gutters
                        .iter()
                        .any(|g| !free.iter().any(|f| f.0 >= g.0 && f.1 <= g.1));
                    let ends = free.is_empty() || (lost && band.gaps.is_empty());
                    let ok = !ends;
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
        // two-sided one, where every column has ended: a footnote or closing
        // line under the columns. A gap in a column that runs on below a
        // shorter one (an appendix after the references on a paper's last
        // page) is that column's own and cuts nothing.
        let mut i = 0;
        while i < sections.len() {
            if !sections[i].gutters.is_empty() {
                let s = &sections[i];
                let last_split = s.bands.iter().rposition(|&b| !bands[b].gaps.is_empty());
                let release = last_split.and_then(|k| {
                    (k + 1..s.bands.len()).find(|&j| {
                        let top = bands[s.bands[j - 1]].y1;
                        bands[s.bands[j]].y0 - top > RELEASE_GAP * self.unit
                            && self.columns_reach(&s.bands[..j], bands, &s.gutters, top)
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
                let cuts = cuts_of(&s.gutters);
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
        let section: Vec<&Band> = section.bands.iter().map(|&b| &bands[b]).collect();
        self.lined_up(&section, cuts, pieces.len()) || self.wrapped(&section, cuts)
    }

    /// Whether a column section's bands line up as a table's rows of one
    /// line each: every column has cells in most bands (prose beside a
    /// figure has the figure's labels in a few of its rows only), and most
    /// bands have cells in several columns.
    fn lined_up(&self, section: &[&Band], cuts: &[f32], columns: usize) -> bool {
        let mut present = vec![0usize; columns];
        let mut aligned = 0;
        for band in section {
            let cols = self.columns_in(&band.lines, cuts);
            for &c in &cols {
                present[c] += 1;
            }
            aligned += usize::from(cols.len() >= 2);
        }
        !present.iter().any(|&n| 5 * n < 2 * section.len())
            && aligned >= 2
            && 2 * aligned >= section.len()
    }

    /// Whether a column section is a table whose cells wrap over several
    /// lines, so that rows differ in height and a band may hold one column
    /// only. Its rows (see [`Page::table_rows`]) start with cells in several
    /// columns, each column's cells start at one edge (or centre), and a
    /// cell that runs on ends at its row's end: its last line ends short,
    /// or a wider gap follows it. Prose beside margin notes or a figure's
    /// labels runs past them in full lines.
    fn wrapped(&self, section: &[&Band], cuts: &[f32]) -> bool {
        let rows = self.table_rows(section, cuts);
        if rows.len() < MIN_TABLE_ROWS || rows.iter().all(|r| r.len() == 1) {
            return false;
        }
        let starts = rows
            .iter()
            .filter(|r| self.columns_in(&section[r.start].lines, cuts).len() >= 2)
            .count();
        if 3 * starts < 2 * rows.len() {
            return false;
        }
        let columns = cuts.len() + 1;
        // Each column's cells: the first line of each row's part of it.
        let mut firsts: Vec<Vec<Extent>> = vec![Vec::new(); columns];
        for r in &rows {
            let mut seen = vec![false; columns];
            for band in &section[r.clone()] {
                for &i in &band.lines {
                    let c = column_of(cuts, self.lines[i].cx());
                    if !seen[c] {
                        seen[c] = true;
                        firsts[c].push(self.lines[i]);
                    }
                }
            }
        }
        if !firsts.iter().all(|cells| self.edge_aligned(cells)) {
            return false;
        }
        // Where a cell runs on to its row's last band, that band's line in
        // its column ends the cell.
        let right: Vec<f32> = (0..columns)
            .map(|c| {
                section
                    .iter()
                    .flat_map(|b| &b.lines)
                    .filter(|&&i| column_of(cuts, self.lines[i].cx()) == c)
                    .map(|&i| self.lines[i].x1)
                    .fold(f32::MIN, f32::max)
            })
            .collect();
        let mut inner: Vec<f32> = rows
            .iter()
            .flat_map(|r| (r.start + 1..r.end).map(|b| section[b].y0 - section[b - 1].y1))
            .collect();
        let leading = median(&mut inner);
        let (mut ends, mut runs) = (0, 0);
        for pair in rows.windows(2) {
            let (last, next) = (section[pair[0].end - 1], section[pair[1].start]);
            if pair[0].len() < 2 {
                continue;
            }
            let gap = next.y0 - last.y1 > leading + ROW_GAP * self.unit;
            for &i in &last.lines {
                let e = &self.lines[i];
                runs += 1;
                let short = e.x1 < right[column_of(cuts, e.cx())] - SHORT_LINE * self.unit;
                ends += usize::from(short || gap);
            }
        }
        3 * ends >= 2 * runs
    }

    /// The columns (between `cuts`) that `members` have lines in, in order.
    fn columns_in(&self, members: &[usize], cuts: &[f32]) -> Vec<usize> {
        let mut cols: Vec<usize> = members
            .iter()
            .map(|&i| column_of(cuts, self.lines[i].cx()))
            .collect();
        cols.sort_unstable();
        cols.dedup();
        cols
    }

    /// Whether most of `cells` start at one left edge, end at one right
    /// edge, or share one centre.
    fn edge_aligned(&self, cells: &[Extent]) -> bool {
        if cells.len() < 2 {
            return true;
        }
        let edges: [fn(&Extent) -> f32; 3] = [|e| e.x0, |e| e.x1, Extent::cx];
        edges.iter().any(|edge| {
            let mut at: Vec<f32> = cells.iter().map(edge).collect();
            let mid = median(&mut at);
            let near = at
                .iter()
                .filter(|&&x| (x - mid).abs() <= ALIGN * self.unit)
                .count();
            3 * near >= 2 * cells.len()
        })
    }

    /// A table's rows, as runs of its bands (top to bottom): a band starts
    /// a row when it has a cell in the first column or a line across a cut
    /// (a sub-heading or a stray line spanning the table); any other band
    /// continues the cells of the row above, wrapped over several lines.
    fn table_rows(&self, bands: &[&Band], cuts: &[f32]) -> Vec<Range<usize>> {
        let mut rows: Vec<Range<usize>> = Vec::new();
        for (b, band) in bands.iter().enumerate() {
            let starts_row = band
                .lines
                .iter()
                .any(|&i| column_of(cuts, self.lines[i].cx()) == 0 || self.spans(i, cuts));
            match rows.last_mut() {
                Some(row) if !starts_row => row.end = b + 1,
                _ => rows.push(b..b + 1),
            }
        }
        rows
    }

    fn extent(&self, members: &[usize]) -> Option<Extent> {
        members
            .iter()
            .map(|&i| self.lines[i])
            .reduce(|a, b| a.union(&b))
    }

    /// Joins a table to the table that follows it when their columns agree
    /// and what lies between them (at most [`STRAY_REGIONS`] regions) lies
    /// within the tables' width, close above and below, and runs across
    /// their columns in at most [`STRAY_ROWS`] rows: a rule the detector
    /// read as a line, a sub-heading or a cell too wide for its column cut
    /// the table there, and the rows after it went their own way.
    fn join_tables(&self, regions: &mut Vec<Region>) {
        let mut i = 0;
        while i + 1 < regions.len() {
            let between = regions[i + 1..]
                .iter()
                .take_while(|r| r.table.is_none())
                .take(STRAY_REGIONS + 1)
                .count();
            let next = regions
                .get(i + 1 + between)
                .filter(|_| between <= STRAY_REGIONS);
            let joined = next.and_then(|next| {
                let cuts = self.joined_cuts(&regions[i], next)?;
                let stray: Vec<usize> = regions[i + 1..i + 1 + between]
                    .iter()
                    .flat_map(|r| r.lines.iter().copied())
                    .collect();
                self.strays_within(&regions[i].lines, &stray, &next.lines, &cuts)
                    .then_some(cuts)
            });
            let Some(cuts) = joined else {
                i += 1;
                continue;
            };
            for r in regions.drain(i + 1..i + 2 + between).collect::<Vec<_>>() {
                regions[i].lines.extend(r.lines);
            }
            regions[i].table = Some(cuts);
        }
    }

    /// The cuts between the columns of two tables taken as one: those of
    /// either that the other's lines cross least, when both are tables of
    /// as many columns and no more than [`STRAY_ROWS`] lines cross them (a
    /// sub-heading centred over the table; it takes a row of its own).
    fn joined_cuts(&self, a: &Region, b: &Region) -> Option<Vec<f32>> {
        let (Some(ca), Some(cb)) = (&a.table, &b.table) else {
            return None;
        };
        if ca.len() != cb.len() {
            return None;
        }
        let crossing = |cuts: &[f32]| {
            a.lines
                .iter()
                .chain(&b.lines)
                .filter(|&&i| self.spans(i, cuts))
                .count()
        };
        [ca, cb]
            .into_iter()
            .map(|cuts| (crossing(cuts), cuts))
            .min_by_key(|(n, _)| *n)
            .filter(|(n, _)| *n <= STRAY_ROWS + self.spanning(a) + self.spanning(b))
            .map(|(_, cuts)| cuts.clone())
    }

    /// How many lines of a table run across its own cuts.
    fn spanning(&self, table: &Region) -> usize {
        let cuts = table.table.as_deref().unwrap_or_default();
        table.lines.iter().filter(|&&i| self.spans(i, cuts)).count()
    }

    /// Whether line `i` runs across one of `cuts`.
    fn spans(&self, i: usize, cuts: &[f32]) -> bool {
        let e = &self.lines[i];
        cuts.iter().any(|&c| e.x0 < c && e.x1 > c)
    }

    /// Whether the tables `above` and `below` are one above the other, the
    /// lines `stray` (if any) between them, within their width and less
    /// than [`STRAY_GAP`] from each, running across their `cuts` in at most
    /// [`STRAY_ROWS`] rows.
    fn strays_within(
        &self,
        above: &[usize],
        stray: &[usize],
        below: &[usize],
        cuts: &[f32],
    ) -> bool {
        let (Some(a), Some(b)) = (self.extent(above), self.extent(below)) else {
            return false;
        };
        let (x0, x1) = (a.x0.min(b.x0) - self.unit, a.x1.max(b.x1) + self.unit);
        let overlap = a.x0.max(b.x0) < a.x1.min(b.x1);
        let Some(s) = self.extent(stray) else {
            return overlap && b.y0 - a.y1 <= STRAY_GAP * self.unit;
        };
        let across: Vec<usize> = stray
            .iter()
            .copied()
            .filter(|&i| self.spans(i, cuts))
            .collect();
        overlap
            && self.rows(&across).len() <= STRAY_ROWS
            && s.x0 >= x0
            && s.x1 <= x1
            && s.y0 - a.y1 <= STRAY_GAP * self.unit
            && b.y0 - s.y1 <= STRAY_GAP * self.unit
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
    /// cells; a cell wrapped over several lines is read whole.
    fn table_cells(&self, members: &[usize], cuts: &[f32]) -> Vec<(usize, TableCell)> {
        let bands = self.bands(members);
        let refs: Vec<&Band> = bands.iter().collect();
        let rows: Vec<Vec<usize>> = self
            .table_rows(&refs, cuts)
            .into_iter()
            .map(|r| refs[r].iter().flat_map(|b| b.lines.clone()).collect())
            .collect();
        let mut out = Vec::with_capacity(members.len());
        for (r, row) in rows.into_iter().enumerate() {
            let mut cells = vec![Vec::new(); cuts.len() + 1];
            for i in row {
                cells[column_of(cuts, self.lines[i].cx())].push(i);
            }
            for (col, cell) in cells.iter().enumerate() {
                // A cell's lines as text reads: top down, each row of them
                // left to right.
                for i in self.rows(cell).into_iter().flat_map(|(line, _)| line) {
                    let (row, col) = (r as u32, col as u32);
                    out.push((i, TableCell { row, col }));
                }
            }
        }
        out
    }
}

/// The positions between columns: the middle of each gutter.
fn cuts_of(gutters: &[(f32, f32)]) -> Vec<f32> {
    gutters.iter().map(|g| (g.0 + g.1) / 2.0).collect()
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
    fn a_column_that_runs_on_below_a_shorter_one_keeps_its_gap() {
        // A paper's last page: references down the left column, then,
        // after a gap, an appendix heading and its text in the same column;
        // the right column holds one short section and ends early.
        let mut lines = Vec::new();
        let references = column(&mut lines, 50.0, 480.0, 0.0, 14);
        lines.push(e(50.0, 420.0, 300.0, 440.0));
        let appendix: Vec<usize> = [lines.len() - 1]
            .into_iter()
            .chain(column(&mut lines, 50.0, 480.0, 460.0, 5))
            .collect();
        let right = column(&mut lines, 520.0, 950.0, 0.0, 6);
        let want: Vec<usize> = references
            .iter()
            .chain(&appendix)
            .chain(&right)
            .copied()
            .collect();
        assert_eq!(order(&lines), want);
        let placed = layout(&lines);
        let column_of = |i: usize| placed.iter().find(|p| p.line == i).map(|p| p.column);
        assert_eq!(column_of(appendix[3]), Some(0));
        // The left column short, the right one running on past a gap.
        let mut lines = Vec::new();
        let left = column(&mut lines, 50.0, 480.0, 0.0, 6);
        let mut right = column(&mut lines, 520.0, 950.0, 0.0, 14);
        right.extend(column(&mut lines, 520.0, 950.0, 420.0, 5));
        let want: Vec<usize> = left.iter().chain(&right).copied().collect();
        assert_eq!(order(&lines), want);
        let placed = layout(&lines);
        assert!(placed.iter().all(|p| p.column == u32::from(p.line >= 6)));
    }

    #[test]
    fn a_footnote_under_columns_of_one_height_is_read_after_both() {
        let mut lines = Vec::new();
        let left = column(&mut lines, 50.0, 480.0, 0.0, 10);
        let right = column(&mut lines, 520.0, 950.0, 0.0, 10);
        // A short footnote under the left column, well below both.
        lines.push(e(50.0, 300.0, 350.0, 316.0));
        let want: Vec<usize> = left.iter().chain(&right).copied().chain([20]).collect();
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

    /// A parameter table (name, meaning, default) between two paragraphs:
    /// each row's meaning wraps over `wraps[r]` lines, justified but for
    /// its last; the default column holds a cell in the rows `defaults`
    /// names. Returns the lines and, per row, its lines in reading order.
    fn parameter_table(wraps: &[usize], defaults: &[usize]) -> (Vec<Extent>, Vec<Vec<usize>>) {
        let mut lines = vec![e(50.0, 0.0, 950.0, 20.0)];
        let mut rows = Vec::new();
        let mut y = 40.0;
        for (r, &n) in wraps.iter().enumerate() {
            let mut row = vec![lines.len()];
            lines.push(e(50.0, y, 120.0 + 13.0 * (r % 4) as f32, y + 20.0));
            for k in 0..n {
                let right = if k + 1 == n {
                    420.0 + 37.0 * (r % 3) as f32
                } else {
                    700.0
                };
                row.push(lines.len());
                lines.push(e(
                    250.0,
                    y + 25.0 * k as f32,
                    right,
                    y + 25.0 * k as f32 + 20.0,
                ));
            }
            if defaults.contains(&r) {
                row.push(lines.len());
                lines.push(e(780.0, y, 840.0 + 9.0 * (r % 2) as f32, y + 20.0));
            }
            rows.push(row);
            y += 25.0 * n as f32 + 8.0;
        }
        lines.push(e(50.0, y + 20.0, 950.0, y + 40.0));
        (lines, rows)
    }

    #[test]
    fn a_table_whose_cells_wrap_is_read_row_by_row() {
        // Meanings wrap onto one to four lines, rows differ in height, and
        // the default column is mostly empty.
        for (wraps, defaults) in [
            (&[2, 3, 1, 4, 2, 3][..], &[0, 3][..]),
            (&[3, 3, 3, 3][..], &[0, 1, 2, 3][..]),
            (&[1, 2, 1, 1, 3, 1, 2][..], &[0, 4][..]),
        ] {
            let (lines, rows) = parameter_table(wraps, defaults);
            let placed = layout(&lines);
            let want: Vec<usize> = [0]
                .into_iter()
                .chain(rows.iter().flatten().copied())
                .chain([lines.len() - 1])
                .collect();
            assert_eq!(
                placed.iter().map(|p| p.line).collect::<Vec<_>>(),
                want,
                "{wraps:?}"
            );
            // Each row's lines are its cells: a wrapped meaning is one cell.
            for (r, row) in rows.iter().enumerate() {
                for (k, &i) in row.iter().enumerate() {
                    let p = placed.iter().find(|p| p.line == i).unwrap();
                    let col = match k {
                        0 => 0,
                        k if k <= wraps[r] => 1,
                        _ => 2,
                    };
                    assert_eq!(p.cell, Some(TableCell { row: r as u32, col }), "{wraps:?}");
                    assert_eq!(p.kind, BlockKind::Table);
                }
            }
        }
    }

    #[test]
    fn a_table_with_a_stray_line_across_its_columns_stays_one_table() {
        // Three columns of one-line cells; after the third row, a line runs
        // across the columns (a sub-heading, or a rule read as text).
        let mut lines = vec![e(50.0, 0.0, 950.0, 20.0)];
        let mut y = 40.0;
        for r in 0..6 {
            if r == 3 {
                lines.push(e(120.0, y, 700.0, y + 20.0));
                y += 25.0;
            }
            let w = 10.0 * (r % 3) as f32;
            lines.push(e(100.0, y, 200.0 + w, y + 20.0));
            lines.push(e(350.0, y, 480.0 - w, y + 20.0));
            lines.push(e(620.0, y, 760.0 + w, y + 20.0));
            y += 25.0;
        }
        lines.push(e(50.0, y + 20.0, 950.0, y + 40.0));
        let placed = layout(&lines);
        assert_eq!(
            placed.iter().map(|p| p.line).collect::<Vec<_>>(),
            (0..lines.len()).collect::<Vec<_>>()
        );
        let table = &placed[1..placed.len() - 1];
        assert!(table.iter().all(|p| p.kind == BlockKind::Table));
        assert!(table.iter().all(|p| p.block == table[0].block));
        let rows: Vec<u32> = table.iter().map(|p| p.cell.unwrap().row).collect();
        assert_eq!(
            rows,
            [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 4, 4, 4, 5, 5, 5, 6, 6, 6]
        );
    }

    #[test]
    fn tables_parted_by_a_paragraph_or_a_wide_gap_stay_apart() {
        // Two tables of the same columns, one under the other, parted by
        // `between` lines across the columns and `gap` more space above the
        // second one.
        let tables = |between: usize, gap: f32| {
            let mut lines = Vec::new();
            let mut y = 0.0;
            for part in 0..2 {
                for r in 0..4 {
                    let w = 10.0 * (r % 3) as f32;
                    lines.push(e(100.0, y, 200.0 + w, y + 20.0));
                    lines.push(e(350.0, y, 480.0 - w, y + 20.0));
                    lines.push(e(620.0, y, 760.0 + w, y + 20.0));
                    y += 25.0;
                }
                if part == 0 {
                    y += 15.0;
                    for _ in 0..between {
                        lines.push(e(100.0, y, 760.0, y + 20.0));
                        y += 25.0;
                    }
                    y += gap;
                }
            }
            let placed = layout(&lines);
            let mut blocks: Vec<u32> = placed
                .iter()
                .filter(|p| p.kind == BlockKind::Table)
                .map(|p| p.block)
                .collect();
            blocks.dedup();
            blocks.len()
        };
        // One stray line across the columns: one table.
        assert_eq!(tables(1, 0.0), 1);
        // A paragraph of three lines, or one line (a caption) far from the
        // table under it: two.
        assert_eq!(tables(3, 0.0), 2);
        assert_eq!(tables(1, 80.0), 2);
    }

    #[test]
    fn margin_notes_beside_prose_are_not_a_table() {
        // Justified prose with three notes in the left margin, each note
        // starting beside a line in the middle of a paragraph.
        let mut lines = Vec::new();
        column(&mut lines, 250.0, 950.0, 0.0, 9);
        column(&mut lines, 250.0, 950.0, 235.0, 9);
        for y in [50.0, 175.0, 310.0] {
            lines.push(e(50.0, y, 200.0, y + 20.0));
            lines.push(e(50.0, y + 25.0, 170.0, y + 45.0));
        }
        assert!(layout(&lines).iter().all(|p| p.kind == BlockKind::Text));
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
