//! A finished job's outputs: combined text, markdown and JSON with metrics.
//!
//! The engine lays out each page (blocks, their kinds, reading order); here,
//! with every page of the document at hand, running headers and footers are
//! found, and the markdown is written block by block.

use std::collections::BTreeMap;

use pagefleet_schemas::Format;
use pagefleet_schemas::messages::{JobManifest, JobState, JobStatus, PageRecord, PageResult};
use pagefleet_schemas::{Block, BlockKind, OcrLine, PageOcr, TableShape};
use serde::{Deserialize, Serialize};

/// Pages, time and errors of one worker within a job.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkerMetrics {
    /// The worker's name.
    pub worker: String,
    /// Pages it read.
    pub pages: u32,
    /// Milliseconds it spent on them.
    pub time_ms: f64,
    /// Pages it gave up on.
    pub errors: u32,
}

/// The metrics of a finished job, with the names existing clients expect.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobMetrics {
    /// The job.
    pub job_id: String,
    /// The document's file name.
    pub filename: String,
    /// Pages in the document.
    pub total_pages: u32,
    /// Pages read.
    pub pages_processed: u32,
    /// Pages that failed.
    pub pages_failed: u32,
    /// Words over all pages.
    pub total_words: u64,
    /// Characters (whitespace excluded) over all pages.
    pub total_chars: u64,
    /// Lines over all pages.
    pub total_lines: u64,
    /// Mean line confidence over all lines.
    pub avg_confidence: f64,
    /// Submission time (RFC 3339).
    pub start_time: String,
    /// Completion time (RFC 3339).
    pub end_time: String,
    /// From submission to completion.
    pub total_duration_ms: u64,
    /// Mean processing time of a read page.
    pub avg_page_time_ms: f64,
    /// Size of the document.
    pub file_size_bytes: u64,
    /// The same in MiB.
    pub file_size_mb: f64,
    /// Pages read by each worker (the name the clients of the OCR cluster
    /// pagefleet replaces read).
    pub ocr_rounds_per_worker: BTreeMap<String, u32>,
    /// Pages, time and errors of each worker, by worker name.
    pub worker_metrics: Vec<WorkerMetrics>,
    /// Deliveries beyond the first, over all pages.
    pub redeliveries: u64,
    /// `success`, `partial_success` or `failed`.
    pub status: JobStatus,
    /// Every error: the document's, then each failed page's.
    pub errors: Vec<String>,
}

/// One page in the job's JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PageEntry {
    /// Page number, counted from 1.
    pub page: u32,
    /// `ok` or `failed`.
    pub status: String,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Who read it.
    pub worker: String,
    /// Factor the page was scaled by to fit the pixel budget.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scale: Option<f64>,
    /// What was read.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub ocr: Option<PageOcr>,
}

/// The job's JSON output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobReport {
    /// Metrics.
    pub metrics: JobMetrics,
    /// Every page in order.
    pub pages: Vec<PageEntry>,
}

/// The bytes of `format` for a finished job: the same for the aggregator
/// and `pagefleet ocr`. The searchable PDF is written from the source
/// document ([`crate::pdf::write`]), not from the report: `None` for it.
pub fn render(report: &JobReport, format: Format) -> Result<Option<Vec<u8>>, serde_json::Error> {
    Ok(Some(match format {
        Format::Json => serde_json::to_vec(report)?,
        Format::Txt => text(report).into_bytes(),
        Format::Md => markdown(report).into_bytes(),
        Format::Hocr => crate::xml::hocr(report).into_bytes(),
        Format::Alto => crate::xml::alto(report).into_bytes(),
        Format::Pdf => return Ok(None),
    }))
}

/// One page as a report is built from it: how it went, and what was read
/// of it with the factor its image was scaled by.
#[derive(Debug, Clone)]
pub struct PageOutcome {
    /// Page number, counted from 1.
    pub page: u32,
    /// Read or failed, by whom, in how many deliveries, and why it failed.
    pub record: PageRecord,
    /// What was read, and the page image's scale.
    pub read: Option<(PageOcr, f64)>,
}

/// What a report says of a job besides its pages.
#[derive(Debug, Clone, Copy)]
pub struct JobHead<'a> {
    /// The job.
    pub job_id: &'a str,
    /// The document: its name, size and page count (none when it could not
    /// be read).
    pub manifest: Option<&'a JobManifest>,
    /// When the job was first seen, where the manifest says no submission
    /// time.
    pub first_seen_ms: u64,
    /// The job was cancelled.
    pub cancelled: bool,
}

/// Builds the report from the final state and the results of the read pages.
pub fn build(state: &JobState, results: &BTreeMap<u32, PageResult>, end_ms: u64) -> JobReport {
    let head = JobHead {
        job_id: &state.job_id,
        manifest: state.manifest.as_ref(),
        first_seen_ms: state.first_seen_ms,
        cancelled: state.status == JobStatus::Cancelled,
    };
    let pages = state.pages.iter().map(|(&page, record)| PageOutcome {
        page,
        record: record.clone(),
        read: results.get(&page).map(|r| (r.ocr.clone(), r.scale)),
    });
    build_pages(head, pages, end_ms)
}

/// Builds the report of a job from its pages' outcomes, in page order: what
/// the aggregator builds from a job's state and `pagefleet ocr` from the
/// pages it read itself.
pub fn build_pages(
    head: JobHead<'_>,
    outcomes: impl IntoIterator<Item = PageOutcome>,
    end_ms: u64,
) -> JobReport {
    let manifest = head.manifest.cloned();
    let total_pages = manifest.as_ref().map_or(0, |m| m.total_pages);
    let start_ms = manifest
        .as_ref()
        .map_or(head.first_seen_ms, |m| m.submitted_at_ms);
    let mut errors: Vec<String> = manifest
        .as_ref()
        .and_then(|m| m.error.clone())
        .into_iter()
        .collect();
    let mut workers: BTreeMap<String, WorkerMetrics> = BTreeMap::new();
    let mut pages = Vec::new();
    let (mut words, mut chars, mut lines, mut conf_sum, mut conf_n) = (0, 0, 0, 0.0f64, 0u64);
    let mut page_ms = Vec::new();
    let mut redeliveries = 0;
    let (mut ok, mut failed) = (0, 0);
    for PageOutcome { page, record, read } in outcomes {
        if record.ok {
            ok += 1;
        } else {
            failed += 1;
        }
        redeliveries += record.deliveries.saturating_sub(1);
        let stats = workers.entry(record.worker.clone()).or_default();
        let (ocr, scale) = match read {
            Some((ocr, scale)) => (Some(ocr), Some(scale)),
            None => (None, None),
        };
        match (&ocr, record.ok) {
            (Some(ocr), true) => {
                stats.pages += 1;
                stats.time_ms += ocr.timings.total_ms;
                page_ms.push(ocr.timings.total_ms);
                words += ocr.counts.words;
                chars += ocr.counts.chars;
                lines += ocr.counts.lines;
                conf_sum += ocr.lines.iter().map(|l| l.confidence as f64).sum::<f64>();
                conf_n += ocr.lines.len() as u64;
            }
            _ => {
                stats.errors += 1;
                errors.push(format!(
                    "page {page}: {}",
                    record.error.as_deref().unwrap_or("failed")
                ));
            }
        }
        pages.push(PageEntry {
            page,
            status: if record.ok { "ok" } else { "failed" }.into(),
            error: record.error,
            worker: record.worker,
            scale,
            ocr: if record.ok { ocr } else { None },
        });
    }
    mark_running_lines(pages.iter_mut().filter_map(|p| p.ocr.as_mut()).collect());
    let size = manifest.as_ref().map_or(0, |m| m.file_size_bytes);
    let metrics = JobMetrics {
        job_id: head.job_id.to_owned(),
        filename: manifest
            .as_ref()
            .map_or_else(String::new, |m| m.filename.clone()),
        total_pages,
        pages_processed: ok,
        pages_failed: failed,
        total_words: words,
        total_chars: chars,
        total_lines: lines,
        avg_confidence: if conf_n == 0 {
            0.0
        } else {
            conf_sum / conf_n as f64
        },
        start_time: rfc3339(start_ms),
        end_time: rfc3339(end_ms),
        total_duration_ms: end_ms.saturating_sub(start_ms),
        avg_page_time_ms: if page_ms.is_empty() {
            0.0
        } else {
            page_ms.iter().sum::<f64>() / page_ms.len() as f64
        },
        file_size_bytes: size,
        file_size_mb: size as f64 / (1024.0 * 1024.0),
        ocr_rounds_per_worker: workers.iter().map(|(w, s)| (w.clone(), s.pages)).collect(),
        worker_metrics: workers
            .into_iter()
            .map(|(worker, stats)| WorkerMetrics { worker, ..stats })
            .collect(),
        redeliveries,
        status: JobStatus::ended(head.cancelled, ok, failed),
        errors,
    };
    JobReport { metrics, pages }
}

fn rfc3339(ms: u64) -> String {
    humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms))
        .to_string()
}

/// Plain text: each page's lines, a form feed after each page.
pub fn text(report: &JobReport) -> String {
    let mut out = String::new();
    for page in &report.pages {
        if let Some(ocr) = &page.ocr {
            out.push_str(&ocr.text());
        }
        out.push('\u{c}');
    }
    out
}

/// Markdown: a comment and a rule between pages, lines taller than most on
/// their page as headings, a blank line where the gap between lines of one
/// column says a paragraph ends.
pub fn markdown(report: &JobReport) -> String {
    let scale = HeadingScale::of(report.pages.iter().filter_map(|p| p.ocr.as_ref()));
    let mut out = String::new();
    for (i, page) in report.pages.iter().enumerate() {
        if i > 0 {
            out.push_str("\n---\n\n");
        }
        out.push_str(&format!("<!-- page {} -->\n\n", page.page));
        let Some(ocr) = &page.ocr else {
            out.push_str(&format!(
                "*page {} could not be read: {}*\n",
                page.page,
                page.error.as_deref().unwrap_or("")
            ));
            continue;
        };
        out.push_str(&page_markdown(&ocr.lines, &scale));
    }
    out
}

/// A heading's size, relative to the lines of its page, that makes it a
/// title (`#`) when it is also among the document's largest: LaTeX sets a
/// title at 1.73 times the body size (`\LARGE`) or more and a section at
/// 1.44 (`\Large`), and a detected box's height varies by a tenth either way
/// with the letters in it.
const TITLE_HEIGHT: f32 = 1.6;
/// A title is within this share of the document's largest heading.
const TITLE_SPREAD: f32 = 0.9;
/// A heading at least this much taller than its page's lines is a section
/// (`##`); shorter ones (numbered titles of body size) are `###`.
const SECTION_HEIGHT: f32 = 1.3;

/// Heading levels decided over the whole document, so that a level does not
/// hang on one page's box heights: the largest headings are titles, the
/// others sections or subsections by their height.
struct HeadingScale {
    /// The largest heading's height relative to its page's lines.
    top: f32,
}

impl HeadingScale {
    fn of<'a>(pages: impl IntoIterator<Item = &'a PageOcr>) -> Self {
        let top = pages
            .into_iter()
            .flat_map(|page| {
                let unit = median_height(&page.lines);
                Block::of_lines(&page.lines)
                    .into_iter()
                    .filter(|b| b.kind == BlockKind::Heading)
                    .map(move |b| relative_height(&page.lines, &b, unit))
                    .collect::<Vec<_>>()
            })
            .fold(0.0, f32::max);
        Self { top }
    }

    /// The markdown marker of a heading this much taller than its page's
    /// lines.
    fn marker(&self, ratio: f32) -> &'static str {
        if ratio >= TITLE_HEIGHT && ratio >= TITLE_SPREAD * self.top {
            "#"
        } else if ratio >= SECTION_HEIGHT {
            "##"
        } else {
            "###"
        }
    }
}

/// The median height of `lines`, 0 for none.
fn median_height(lines: &[OcrLine]) -> f32 {
    let mut heights: Vec<f32> = lines.iter().map(OcrLine::height).collect();
    heights.sort_by(f32::total_cmp);
    heights.get(heights.len() / 2).copied().unwrap_or(0.0)
}

/// The median height of `block`'s lines over `unit`.
fn relative_height(lines: &[OcrLine], block: &Block, unit: f32) -> f32 {
    let members = &lines[block.first_line as usize..][..block.line_count as usize];
    median_height(members) / unit.max(1.0)
}

/// Blocks within this share of the page height from its top or bottom edge
/// can be running headers or footers.
const RUNNING_MARGIN: f32 = 0.12;
/// Running lines of different pages sit within this share of the page height
/// of each other.
const RUNNING_SLACK: f32 = 0.03;

/// Marks as header or footer each short block near the top or bottom of its
/// page that is a page number, or that recurs at the same place on at least
/// half the pages (two at least), digits aside ("Chapter 3 · 41").
fn mark_running_lines(mut pages: Vec<&mut PageOcr>) {
    // (page, block, top?, position, key) of every candidate.
    let mut candidates = Vec::new();
    for (p, ocr) in pages.iter().enumerate() {
        let height = ocr.height.max(1) as f32;
        for block in Block::of_lines(&ocr.lines) {
            let lines = &ocr.lines[block.first_line as usize..][..block.line_count as usize];
            if lines.len() > 2 || block.kind == BlockKind::Table {
                continue;
            }
            let (top, bottom) = (block.bbox[1] / height, block.bbox[3] / height);
            let at_top = bottom <= RUNNING_MARGIN;
            if !at_top && top < 1.0 - RUNNING_MARGIN {
                continue;
            }
            let text: String = lines.iter().map(|l| l.text.as_str()).collect();
            let key: String = text
                .chars()
                .filter(|c| !c.is_whitespace())
                .map(|c| {
                    if c.is_ascii_digit() {
                        '#'
                    } else {
                        c.to_ascii_lowercase()
                    }
                })
                .collect();
            let place = (top + bottom) / 2.0;
            candidates.push((p, block.id, at_top, place, key));
        }
    }
    let needed = pages.len().div_ceil(2).max(2);
    let mut marks: Vec<(usize, u32, BlockKind)> = Vec::new();
    for (p, id, at_top, place, key) in &candidates {
        let mut on_pages: Vec<usize> = candidates
            .iter()
            .filter(|(_, _, t, q, k)| t == at_top && k == key && (q - place).abs() <= RUNNING_SLACK)
            .map(|c| c.0)
            .collect();
        on_pages.dedup();
        if on_pages.len() >= needed || page_number(key) {
            let kind = if *at_top {
                BlockKind::Header
            } else {
                BlockKind::Footer
            };
            marks.push((*p, *id, kind));
        }
    }
    for (p, id, kind) in marks {
        let ocr = &mut pages[p];
        for line in ocr.lines.iter_mut().filter(|l| l.block == id) {
            line.block_kind = kind;
        }
        for block in ocr.blocks.iter_mut().filter(|b| b.id == id) {
            block.kind = kind;
        }
    }
}

/// Whether a normalised line (digits as `#`) is only a page number:
/// `#`, `-#-`, `page#`, `#/#`, `pagesof#`, or a roman numeral.
fn page_number(key: &str) -> bool {
    let rest = key.strip_prefix("page").unwrap_or(key);
    let numeric = rest.contains('#')
        && rest
            .chars()
            .all(|c| c == '#' || "-–—/|.()[]".contains(c) || "of".contains(c));
    let roman = !key.is_empty() && key.len() <= 6 && key.chars().all(|c| "ivxlc".contains(c));
    numeric || roman
}

/// Markdown of one page, block by block: headings by their height against
/// the page's text, paragraphs with words hyphenated across a line end
/// joined, list items as a list, tables as tables, captions in italics.
/// Running headers and footers are left out.
fn page_markdown(lines: &[OcrLine], scale: &HeadingScale) -> String {
    let unit = median_height(lines);
    let mut out = String::new();
    let mut prev: Option<BlockKind> = None;
    for block in Block::of_lines(lines) {
        let members = &lines[block.first_line as usize..][..block.line_count as usize];
        let text = match block.kind {
            BlockKind::Header | BlockKind::Footer => continue,
            BlockKind::Heading => {
                let level = scale.marker(relative_height(lines, &block, unit));
                format!("{level} {}", join_words(members, " "))
            }
            BlockKind::List => list_item(&join_words(members, " ")),
            BlockKind::Table => table(
                members,
                block.table.unwrap_or(TableShape { rows: 0, cols: 0 }),
            ),
            BlockKind::Caption => format!("*{}*", join_words(members, " ").replace('*', "\\*")),
            BlockKind::Text => join_words(members, "\n"),
        };
        if let Some(p) = prev {
            let tight = p == BlockKind::List && block.kind == BlockKind::List;
            out.push_str(if tight { "\n" } else { "\n\n" });
        }
        out.push_str(&text);
        prev = Some(block.kind);
    }
    out.push('\n');
    out
}

/// The lines' text separated by `sep`, each escaped, with a word hyphenated
/// across a line end joined on the first line.
fn join_words(lines: &[OcrLine], sep: &str) -> String {
    let mut out = String::new();
    let mut carry = String::new();
    for (i, line) in lines.iter().enumerate() {
        let mut text = line.text.as_str();
        if !carry.is_empty() {
            // The rest of the word hyphenated at the end of the line before.
            let end = text.find(char::is_whitespace).unwrap_or(text.len());
            out.push_str(&text[..end]);
            text = text[end..].trim_start();
            carry.clear();
        }
        if !text.is_empty() {
            if !out.is_empty() {
                out.push_str(sep);
            }
            out.push_str(&escape_markdown(text));
        }
        let next_starts_lower = lines
            .get(i + 1)
            .and_then(|n| n.text.chars().next())
            .is_some_and(char::is_lowercase);
        if next_starts_lower && hyphenated(&out) {
            out.pop();
            carry.push('-');
        }
    }
    out
}

/// Whether text ends in a word broken by a hyphen (`exam-`), not in a dash.
fn hyphenated(text: &str) -> bool {
    let mut rev = text.chars().rev();
    rev.next() == Some('-') && rev.next().is_some_and(char::is_alphabetic)
}

/// A list item: a bullet becomes markdown's `-`, `1.` and `1)` stay (an
/// ordered list), other markers (`(a)`) follow a `-`.
fn list_item(text: &str) -> String {
    let mut chars = text.chars();
    let digits = text.chars().take_while(char::is_ascii_digit).count();
    match chars.next() {
        Some(c) if "•·▪◦‣●○■□►▸✓–—*-".contains(c) || c == '\\' => {
            let rest = chars.as_str().trim_start_matches(['-', '*']).trim_start();
            format!("- {rest}")
        }
        _ if digits > 0 && text[digits..].starts_with(['.', ')']) => text.to_owned(),
        _ => format!("- {text}"),
    }
}

/// A markdown table of `shape`: the first row as its header, cells of several
/// lines joined with spaces.
fn table(lines: &[OcrLine], shape: TableShape) -> String {
    let (rows, cols) = (shape.rows as usize, shape.cols as usize);
    let mut cells = vec![vec![String::new(); cols]; rows];
    for line in lines {
        if let Some(c) = line.cell {
            let cell = &mut cells[c.row as usize][c.col as usize];
            if !cell.is_empty() {
                cell.push(' ');
            }
            cell.push_str(&line.text.replace('|', "\\|"));
        }
    }
    let mut out = String::new();
    for (r, row) in cells.iter().enumerate() {
        out.push('|');
        for cell in row {
            out.push_str(&format!(" {cell} |"));
        }
        if r == 0 {
            out.push_str("\n|");
            out.push_str(&" --- |".repeat(cols));
        }
        if r + 1 < rows {
            out.push('\n');
        }
    }
    out
}

/// Keeps recognised text from being read as markdown syntax at a line start.
fn escape_markdown(text: &str) -> String {
    match text.chars().next() {
        Some('#' | '>' | '-' | '+' | '*' | '|' | '`') => format!("\\{text}"),
        _ => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pagefleet_schemas::{StepTimings, TableCell, TextCounts};

    fn line(text: &str, block: u32, kind: BlockKind, y: f32, h: f32) -> OcrLine {
        OcrLine {
            text: text.into(),
            confidence: 0.9,
            polygon: [[0.0, y], [100.0, y], [100.0, y + h], [0.0, y + h]],
            column: 0,
            block,
            block_kind: kind,
            cell: None,
            words: Vec::new(),
        }
    }

    fn page(lines: Vec<OcrLine>) -> PageOcr {
        PageOcr {
            width: 1000,
            height: 1000,
            rotation: 0,
            blocks: Block::of_lines(&lines),
            lines,
            counts: TextCounts::default(),
            avg_confidence: 0.9,
            timings: StepTimings::default(),
            text_source: Default::default(),
        }
    }

    #[test]
    fn markdown_is_written_block_by_block() {
        use BlockKind::*;
        let mut cells = vec![
            line("name", 4, Table, 300.0, 20.0),
            line("value", 4, Table, 300.0, 20.0),
            line("a|b", 4, Table, 330.0, 20.0),
            line("1", 4, Table, 330.0, 20.0),
        ];
        for (k, l) in cells.iter_mut().enumerate() {
            l.cell = Some(TableCell {
                row: k as u32 / 2,
                col: k as u32 % 2,
            });
        }
        let mut lines = vec![
            line("Running title", 0, Header, 0.0, 20.0),
            line("Title", 1, Heading, 60.0, 40.0),
            line("first line of an exam-", 2, Text, 120.0, 20.0),
            line("ple, and more", 2, Text, 142.0, 20.0),
            line("# not a heading", 2, Text, 164.0, 20.0),
            line("• one", 3, List, 200.0, 20.0),
        ];
        lines.push(line("2. two", 5, List, 222.0, 20.0));
        lines.splice(6..6, cells);
        lines.push(line("Figure 1: a *plot*", 6, Caption, 400.0, 20.0));
        lines.push(line("12", 7, Footer, 980.0, 20.0));
        let md = page_markdown(&lines, &HeadingScale::of([&page(lines.clone())]));
        assert_eq!(
            md,
            "# Title\n\nfirst line of an example,\nand more\n\\# not a heading\n\n- one\n\n\
             | name | value |\n| --- | --- |\n| a\\|b | 1 |\n\n2. two\n\n*Figure 1: a \\*plot\\**\n"
        );
    }

    #[test]
    fn heading_levels_are_decided_over_the_document() {
        use BlockKind::*;
        // Page 1: a title twice the body's height and a section 1.45 times
        // it; page 2: a section a little shorter and a numbered subsection of
        // body height. Page 2's largest heading is a section, not a title.
        let body = |y: f32| line("Body text of the page.", 9, Text, y, 20.0);
        let first = vec![
            line("A Title", 0, Heading, 40.0, 40.0),
            body(100.0),
            line("1 Introduction", 1, Heading, 140.0, 29.0),
            line("Body text.", 2, Text, 180.0, 20.0),
            line("More body text.", 2, Text, 202.0, 20.0),
        ];
        let second = vec![
            line("2 Methods", 0, Heading, 40.0, 27.0),
            line("Body text.", 1, Text, 80.0, 20.0),
            line("More body text.", 1, Text, 102.0, 20.0),
            line("2.1 Data", 2, Heading, 140.0, 20.0),
            line("Body text.", 3, Text, 180.0, 20.0),
        ];
        let pages = [page(first), page(second)];
        let scale = HeadingScale::of(&pages);
        let headings = |p: &PageOcr| -> Vec<String> {
            page_markdown(&p.lines, &scale)
                .lines()
                .filter(|l| l.starts_with('#'))
                .map(str::to_owned)
                .collect()
        };
        assert_eq!(headings(&pages[0]), ["# A Title", "## 1 Introduction"]);
        assert_eq!(headings(&pages[1]), ["## 2 Methods", "### 2.1 Data"]);
        // A title a tenth shorter than the document's largest is a title
        // still: box heights vary that much with the letters in them.
        let titles = [page(vec![
            line("Title", 0, Heading, 40.0, 38.0),
            line("Author1,2", 1, Heading, 90.0, 40.0),
            body(140.0),
            body(162.0),
            body(184.0),
        ])];
        let scale = HeadingScale::of(&titles);
        assert_eq!(scale.marker(1.9), "#");
        assert_eq!(scale.marker(1.5), "##");
        // In a document whose largest heading is a section's size, nothing
        // is a title.
        let sections = [page(vec![
            line("1 Introduction", 0, Heading, 40.0, 29.0),
            body(80.0),
            body(102.0),
        ])];
        assert_eq!(HeadingScale::of(&sections).marker(1.45), "##");
    }

    #[test]
    fn running_lines_and_page_numbers_are_found() {
        let pages: Vec<PageOcr> = (1..=4)
            .map(|n| {
                page(vec![
                    line(
                        &format!("Chapter 2 · {}", 40 + n),
                        0,
                        BlockKind::Text,
                        10.0,
                        20.0,
                    ),
                    line("Body text of the page.", 1, BlockKind::Text, 300.0, 20.0),
                    line(
                        "Short line near the bottom",
                        2,
                        BlockKind::Text,
                        900.0,
                        20.0,
                    ),
                    line(&format!("- {n} -"), 3, BlockKind::Text, 960.0, 20.0),
                ])
            })
            .collect();
        let mut pages = pages;
        // A line near the bottom of one page only is not a footer.
        pages[1].lines[2].text = "Something else".into();
        pages[2].lines[2].text = "Another thing".into();
        pages[3].lines[2].text = "A last thing".into();
        mark_running_lines(pages.iter_mut().collect());
        for p in &pages {
            let kinds: Vec<BlockKind> = p.lines.iter().map(|l| l.block_kind).collect();
            use BlockKind::*;
            assert_eq!(kinds, vec![Header, Text, Text, Footer]);
            assert_eq!(p.blocks[0].kind, Header);
        }
        assert!(page_number("page#"));
        assert!(page_number("xiv"));
        assert!(!page_number("contents"));
    }
}
