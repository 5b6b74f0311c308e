//! A finished job's outputs: combined text, markdown and JSON with metrics.
//!
//! The engine lays out each page (blocks, their kinds, reading order); here,
//! with every page of the document at hand, running headers and footers are
//! found, and the markdown is written block by block.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;

use pagefleet_schemas::Format;
use pagefleet_schemas::messages::{JobManifest, JobStatus, PageRecord};
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
    /// The document's language as the job names it: `auto`, or codes such
    /// as `en,de`.
    #[serde(default = "pagefleet_schemas::language::auto")]
    pub language: String,
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

/// The bytes of `format` for a report held whole (`pagefleet ocr`, tests),
/// written by the writers the aggregator streams a job's pages through. The
/// searchable PDF is written from the source document ([`crate::pdf`]), not
/// from the report: `None` for it.
pub fn render(report: &JobReport, format: Format) -> std::io::Result<Option<Vec<u8>>> {
    let plan = Plan {
        metrics: report.metrics.clone(),
        marks: HashMap::new(),
        scale: HeadingScale::of(report.pages.iter().filter_map(|p| p.ocr.as_ref())),
    };
    let mut out = Vec::new();
    let Some(mut writer) = writer_spooling(format, &plan, &mut out, Spool::Memory(Vec::new()))?
    else {
        return Ok(None);
    };
    for page in &report.pages {
        writer.page(page)?;
    }
    writer.finish(&report.metrics)?;
    Ok(Some(out))
}

/// One output of a job, written a page at a time in page order: a job's
/// outputs are written without holding its pages.
pub trait PageWriter {
    /// Writes the next page.
    fn page(&mut self, page: &PageEntry) -> std::io::Result<()>;
    /// Ends the output, with the job's final metrics.
    fn finish(self: Box<Self>, metrics: &JobMetrics) -> std::io::Result<()>;
}

/// The writer of `format` into `out`, for the job `plan` was made for; none
/// for the searchable PDF ([`crate::pdf::Searchable`] writes that).
pub fn writer<'a>(
    format: Format,
    plan: &Plan,
    out: impl Write + 'a,
) -> std::io::Result<Option<Box<dyn PageWriter + 'a>>> {
    let spool = match format {
        Format::Json => Spool::File(std::io::BufWriter::new(tempfile::tempfile()?)),
        _ => Spool::Memory(Vec::new()),
    };
    writer_spooling(format, plan, out, spool)
}

/// Where `result.json`'s pages wait for its metrics: memory for a report
/// held whole, a temporary file for a job's pages.
enum Spool {
    Memory(Vec<u8>),
    File(std::io::BufWriter<std::fs::File>),
}

impl Write for Spool {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Self::Memory(v) => v.write(buf),
            Self::File(f) => f.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Self::Memory(_) => Ok(()),
            Self::File(f) => f.flush(),
        }
    }
}

impl Spool {
    /// Copies what was spooled to `out`.
    fn copy_to(self, out: &mut impl Write) -> std::io::Result<()> {
        use std::io::Seek;
        match self {
            Self::Memory(v) => out.write_all(&v),
            Self::File(f) => {
                let mut file = f.into_inner().map_err(|e| e.into_error())?;
                file.rewind()?;
                std::io::copy(&mut file, out).map(drop)
            }
        }
    }
}

fn writer_spooling<'a>(
    format: Format,
    plan: &Plan,
    mut out: impl Write + 'a,
    spool: Spool,
) -> std::io::Result<Option<Box<dyn PageWriter + 'a>>> {
    let filename = &plan.metrics.filename;
    Ok(Some(match format {
        Format::Json => Box::new(Json {
            out,
            pages: spool,
            written: 0,
        }),
        Format::Txt => Box::new(Text(out)),
        Format::Md => Box::new(Markdown {
            out,
            scale: plan.scale,
            first: true,
        }),
        Format::Hocr => {
            out.write_all(crate::xml::hocr_head(filename).as_bytes())?;
            Box::new(Xml {
                out,
                page: crate::xml::hocr_page,
                tail: crate::xml::HOCR_TAIL,
            })
        }
        Format::Alto => {
            out.write_all(crate::xml::alto_head(filename).as_bytes())?;
            Box::new(Xml {
                out,
                page: crate::xml::alto_page,
                tail: crate::xml::ALTO_TAIL,
            })
        }
        Format::Pdf => return Ok(None),
    }))
}

/// `result.json`: the metrics, then every page. The metrics are final only
/// once every page is written (the searchable PDF may add an error), so the
/// pages wait in a temporary file and are copied after them.
struct Json<W> {
    out: W,
    pages: Spool,
    written: usize,
}

impl<W: Write> PageWriter for Json<W> {
    fn page(&mut self, page: &PageEntry) -> std::io::Result<()> {
        if self.written > 0 {
            self.pages.write_all(b",")?;
        }
        serde_json::to_writer(&mut self.pages, page)?;
        self.written += 1;
        Ok(())
    }

    fn finish(self: Box<Self>, metrics: &JobMetrics) -> std::io::Result<()> {
        let Self { mut out, pages, .. } = *self;
        out.write_all(b"{\"metrics\":")?;
        serde_json::to_writer(&mut out, metrics)?;
        out.write_all(b",\"pages\":[")?;
        pages.copy_to(&mut out)?;
        out.write_all(b"]}")?;
        out.flush()
    }
}

/// Plain text: each page's lines, a form feed after each page.
struct Text<W>(W);

impl<W: Write> PageWriter for Text<W> {
    fn page(&mut self, page: &PageEntry) -> std::io::Result<()> {
        if let Some(ocr) = &page.ocr {
            self.0.write_all(ocr.text().as_bytes())?;
        }
        self.0.write_all("\u{c}".as_bytes())
    }

    fn finish(mut self: Box<Self>, _: &JobMetrics) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// Markdown: a comment and a rule between pages, lines taller than most on
/// their page as headings, a blank line where the gap between lines of one
/// column says a paragraph ends.
struct Markdown<W> {
    out: W,
    scale: HeadingScale,
    first: bool,
}

impl<W: Write> PageWriter for Markdown<W> {
    fn page(&mut self, page: &PageEntry) -> std::io::Result<()> {
        if !std::mem::take(&mut self.first) {
            self.out.write_all(b"\n---\n\n")?;
        }
        write!(self.out, "<!-- page {} -->\n\n", page.page)?;
        match &page.ocr {
            Some(ocr) => self
                .out
                .write_all(page_markdown(&ocr.lines, &self.scale).as_bytes()),
            None => writeln!(
                self.out,
                "*page {} could not be read: {}*",
                page.page,
                page.error.as_deref().unwrap_or("")
            ),
        }
    }

    fn finish(mut self: Box<Self>, _: &JobMetrics) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// hOCR or ALTO: a head, a page at a time, a tail.
struct Xml<W> {
    out: W,
    page: fn(&mut String, &PageEntry),
    tail: &'static str,
}

impl<W: Write> PageWriter for Xml<W> {
    fn page(&mut self, page: &PageEntry) -> std::io::Result<()> {
        let mut text = String::new();
        (self.page)(&mut text, page);
        self.out.write_all(text.as_bytes())
    }

    fn finish(mut self: Box<Self>, _: &JobMetrics) -> std::io::Result<()> {
        self.out.write_all(self.tail.as_bytes())?;
        self.out.flush()
    }
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
    /// The document's language as the job names it.
    pub language: &'a str,
}

/// Builds a report held whole from its pages' outcomes, in page order:
/// what `pagefleet ocr` builds from the pages it read itself. The
/// aggregator makes the same in two passes over a job's stored pages
/// ([`Survey`], then [`Plan::entry`]) without holding them.
pub fn build_pages(
    head: JobHead<'_>,
    outcomes: impl IntoIterator<Item = PageOutcome>,
    end_ms: u64,
) -> JobReport {
    let outcomes: Vec<PageOutcome> = outcomes.into_iter().collect();
    let mut survey = Survey::default();
    for outcome in &outcomes {
        survey.add(outcome);
    }
    let plan = survey.plan(head, end_ms);
    let pages = outcomes.into_iter().map(|o| plan.entry(o)).collect();
    JobReport {
        metrics: plan.metrics,
        pages,
    }
}

/// A report's first pass over a job's pages, one page at a time, in page
/// order: what its metrics count, and what running headers and footers and
/// heading levels are decided from. It keeps a few numbers per page, never
/// a page's text.
#[derive(Debug, Default)]
pub struct Survey {
    ok: u32,
    failed: u32,
    words: u64,
    chars: u64,
    lines: u64,
    confidence_sum: f64,
    confidence_n: u64,
    page_ms_sum: f64,
    page_ms_n: u64,
    redeliveries: u64,
    workers: BTreeMap<String, WorkerMetrics>,
    errors: Vec<String>,
    /// Pages read so far.
    read: usize,
    candidates: Vec<Candidate>,
    headings: Vec<Heading>,
}

/// A short block near the top or bottom of a read page that may be a
/// running header or footer.
#[derive(Debug)]
struct Candidate {
    page: u32,
    /// Which read page (0 for the first page read).
    read: usize,
    block: u32,
    at_top: bool,
    /// Its middle, as a share of the page height.
    place: f32,
    /// Its text without whitespace, lower case, digits as `#`.
    key: String,
}

/// A heading block and its height relative to its page's lines.
#[derive(Debug)]
struct Heading {
    page: u32,
    block: u32,
    ratio: f32,
}

impl Survey {
    /// Takes in the next page.
    pub fn add(&mut self, outcome: &PageOutcome) {
        let PageOutcome { page, record, read } = outcome;
        if record.ok {
            self.ok += 1;
        } else {
            self.failed += 1;
        }
        self.redeliveries += record.deliveries.saturating_sub(1);
        let stats = self.workers.entry(record.worker.clone()).or_default();
        match (read, record.ok) {
            (Some((ocr, _)), true) => {
                stats.pages += 1;
                stats.time_ms += ocr.timings.total_ms;
                self.page_ms_sum += ocr.timings.total_ms;
                self.page_ms_n += 1;
                self.words += ocr.counts.words;
                self.chars += ocr.counts.chars;
                self.lines += ocr.counts.lines;
                self.confidence_sum += ocr.lines.iter().map(|l| l.confidence as f64).sum::<f64>();
                self.confidence_n += ocr.lines.len() as u64;
                self.survey_page(*page, ocr);
            }
            _ => {
                stats.errors += 1;
                self.errors.push(format!(
                    "page {page}: {}",
                    record.error.as_deref().unwrap_or("failed")
                ));
            }
        }
    }

    /// Notes a read page's running-line candidates and headings.
    fn survey_page(&mut self, page: u32, ocr: &PageOcr) {
        let read = self.read;
        self.read += 1;
        let height = ocr.height.max(1) as f32;
        let unit = median_height(&ocr.lines);
        for block in Block::of_lines(&ocr.lines) {
            if block.kind == BlockKind::Heading {
                self.headings.push(Heading {
                    page,
                    block: block.id,
                    ratio: relative_height(&ocr.lines, &block, unit),
                });
            }
            let lines = &ocr.lines[block.first_line as usize..][..block.line_count as usize];
            if lines.len() > 2 || block.kind == BlockKind::Table {
                continue;
            }
            let (top, bottom) = (block.bbox[1] / height, block.bbox[3] / height);
            let at_top = bottom <= RUNNING_MARGIN;
            if !at_top && top < 1.0 - RUNNING_MARGIN {
                continue;
            }
            let key = lines
                .iter()
                .flat_map(|l| l.text.chars())
                .filter(|c| !c.is_whitespace())
                .map(|c| {
                    if c.is_ascii_digit() {
                        '#'
                    } else {
                        c.to_ascii_lowercase()
                    }
                })
                .collect();
            self.candidates.push(Candidate {
                page,
                read,
                block: block.id,
                at_top,
                place: (top + bottom) / 2.0,
                key,
            });
        }
    }

    /// What the second pass writes by: the job's metrics, its running
    /// headers and footers, and its heading levels.
    pub fn plan(self, head: JobHead<'_>, end_ms: u64) -> Plan {
        let marks = running_marks(&self.candidates, self.read);
        let marked = |page: u32, block: u32| {
            marks
                .get(&page)
                .is_some_and(|m| m.iter().any(|&(b, _)| b == block))
        };
        let top = self
            .headings
            .iter()
            .filter(|h| !marked(h.page, h.block))
            .map(|h| h.ratio)
            .fold(0.0, f32::max);
        let manifest = head.manifest;
        let total_pages = manifest.map_or(0, |m| m.total_pages);
        let start_ms = manifest.map_or(head.first_seen_ms, |m| m.submitted_at_ms);
        let mut errors: Vec<String> = manifest.and_then(|m| m.error.clone()).into_iter().collect();
        errors.extend(self.errors);
        let size = manifest.map_or(0, |m| m.file_size_bytes);
        let metrics = JobMetrics {
            job_id: head.job_id.to_owned(),
            filename: manifest.map_or_else(String::new, |m| m.filename.clone()),
            total_pages,
            pages_processed: self.ok,
            pages_failed: self.failed,
            total_words: self.words,
            total_chars: self.chars,
            total_lines: self.lines,
            avg_confidence: if self.confidence_n == 0 {
                0.0
            } else {
                self.confidence_sum / self.confidence_n as f64
            },
            start_time: rfc3339(start_ms),
            end_time: rfc3339(end_ms),
            total_duration_ms: end_ms.saturating_sub(start_ms),
            avg_page_time_ms: if self.page_ms_n == 0 {
                0.0
            } else {
                self.page_ms_sum / self.page_ms_n as f64
            },
            file_size_bytes: size,
            file_size_mb: size as f64 / (1024.0 * 1024.0),
            ocr_rounds_per_worker: self
                .workers
                .iter()
                .map(|(w, s)| (w.clone(), s.pages))
                .collect(),
            worker_metrics: self
                .workers
                .into_iter()
                .map(|(worker, stats)| WorkerMetrics { worker, ..stats })
                .collect(),
            redeliveries: self.redeliveries,
            status: JobStatus::ended(head.cancelled, self.ok, self.failed),
            errors,
            language: head.language.to_owned(),
        };
        Plan {
            metrics,
            marks,
            scale: HeadingScale { top },
        }
    }
}

/// How a job's outputs are written, decided by its [`Survey`].
#[derive(Debug)]
pub struct Plan {
    /// The job's metrics.
    pub metrics: JobMetrics,
    /// Blocks that are running headers or footers, by page.
    marks: HashMap<u32, Vec<(u32, BlockKind)>>,
    /// Heading levels over the document.
    scale: HeadingScale,
}

impl Plan {
    /// A page as the outputs write it: its running headers and footers
    /// marked.
    pub fn entry(&self, outcome: PageOutcome) -> PageEntry {
        let PageOutcome { page, record, read } = outcome;
        let (ocr, scale) = match read {
            Some((ocr, scale)) => (Some(ocr), Some(scale)),
            None => (None, None),
        };
        let mut ocr = if record.ok { ocr } else { None };
        if let (Some(ocr), Some(marks)) = (ocr.as_mut(), self.marks.get(&page)) {
            for &(id, kind) in marks {
                for line in ocr.lines.iter_mut().filter(|l| l.block == id) {
                    line.block_kind = kind;
                }
                for block in ocr.blocks.iter_mut().filter(|b| b.id == id) {
                    block.kind = kind;
                }
            }
        }
        PageEntry {
            page,
            status: if record.ok { "ok" } else { "failed" }.into(),
            error: record.error,
            worker: record.worker,
            scale,
            ocr,
        }
    }
}

fn rfc3339(ms: u64) -> String {
    humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms))
        .to_string()
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
#[derive(Debug, Clone, Copy)]
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

/// The blocks that are running headers or footers, by page: each
/// candidate that is a page number, or that recurs at the same place on at
/// least half the `read` pages (two at least), digits aside ("Chapter 3 ·
/// 41"). Candidates of one text and edge are compared in the order of
/// their place, so the cost grows with their number, not its square.
fn running_marks(candidates: &[Candidate], read: usize) -> HashMap<u32, Vec<(u32, BlockKind)>> {
    let needed = read.div_ceil(2).max(2);
    let mut groups: HashMap<(bool, &str), Vec<&Candidate>> = HashMap::new();
    for c in candidates {
        groups
            .entry((c.at_top, c.key.as_str()))
            .or_default()
            .push(c);
    }
    let mut marks: HashMap<u32, Vec<(u32, BlockKind)>> = HashMap::new();
    for ((at_top, key), mut group) in groups {
        group.sort_by(|a, b| a.place.total_cmp(&b.place));
        let kind = if at_top {
            BlockKind::Header
        } else {
            BlockKind::Footer
        };
        let numbered = page_number(key);
        // The read pages of the candidates within RUNNING_SLACK of the
        // current one, as a window that slides with it.
        let mut window: HashMap<usize, u32> = HashMap::new();
        let (mut lo, mut hi) = (0, 0);
        for c in &group {
            while hi < group.len()
                && (group[hi].place <= c.place
                    || (group[hi].place - c.place).abs() <= RUNNING_SLACK)
            {
                *window.entry(group[hi].read).or_default() += 1;
                hi += 1;
            }
            while group[lo].place < c.place && (group[lo].place - c.place).abs() > RUNNING_SLACK {
                if let Some(n) = window.get_mut(&group[lo].read) {
                    *n -= 1;
                    if *n == 0 {
                        window.remove(&group[lo].read);
                    }
                }
                lo += 1;
            }
            if window.len() >= needed || numbered {
                marks.entry(c.page).or_default().push((c.block, kind));
            }
        }
    }
    marks
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
            BlockKind::Code => fenced(members),
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

/// A block of code fenced, its text as read, each line indented by its
/// distance from the block's left edge in characters of its font. The fence
/// is longer than any run of backticks in the code.
fn fenced(lines: &[OcrLine]) -> String {
    let advance = pagefleet_layout::monospaced_advance(lines);
    let left = lines.iter().map(|l| l.bounds().0).fold(f32::MAX, f32::min);
    let longest_run = lines
        .iter()
        .flat_map(|l| l.text.split(|c| c != '`'))
        .map(str::len)
        .max()
        .unwrap_or(0);
    let fence = "`".repeat(longest_run.max(2) + 1);
    let mut out = format!("{fence}\n");
    for line in lines {
        let indent = advance.map_or(0.0, |a| ((line.bounds().0 - left) / a).round());
        out.push_str(&" ".repeat(indent as usize));
        out.push_str(&line.text);
        out.push('\n');
    }
    out.push_str(&fence);
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
    let rule = format!("|{}", " --- |".repeat(cols));
    // Markdown's tables have a header row: an empty one when the first row
    // is data.
    let header = has_header(&cells);
    if !header {
        out.push_str(&format!("|{}\n{rule}\n", "  |".repeat(cols)));
    }
    for (r, row) in cells.iter().enumerate() {
        out.push('|');
        for cell in row {
            out.push_str(&format!(" {cell} |"));
        }
        if r == 0 && header {
            out.push('\n');
            out.push_str(&rule);
        }
        if r + 1 < rows {
            out.push('\n');
        }
    }
    out
}

/// Whether a table's first row is its header: every cell of it a label
/// (a few words of letters, `Action/Package`, no digits, no full stop) and some row below
/// holding a cell that is not one. A first row like the rows under it
/// (`%f`, `float`; or names under names) is data.
fn has_header(cells: &[Vec<String>]) -> bool {
    let label = |cell: &str| {
        let cell = cell.trim();
        !cell.is_empty()
            && cell.split_whitespace().count() <= HEADER_WORDS
            && !cell.ends_with('.')
            && cell
                .chars()
                .all(|c| c.is_alphabetic() || c.is_whitespace() || "-/&()'’".contains(c))
    };
    let Some((first, rest)) = cells.split_first() else {
        return false;
    };
    first.iter().all(|c| label(c))
        && rest
            .iter()
            .any(|row| row.iter().any(|c| !c.trim().is_empty() && !label(c)))
}

/// Most words in a header cell ("Default value", "Name of the option").
const HEADER_WORDS: usize = 4;

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
            layer_check: None,
        }
    }

    #[test]
    fn a_first_row_is_a_header_only_when_it_looks_like_one() {
        let header_of = |rows: &[[&str; 2]]| {
            let cells: Vec<Vec<String>> = rows
                .iter()
                .map(|r| r.iter().map(|c| c.to_string()).collect())
                .collect();
            has_header(&cells)
        };
        assert!(header_of(&[
            ["Old name", "New name"],
            ["package/before/⟨name⟩", "package/⟨name⟩/before"]
        ]));
        assert!(header_of(&[["Option", "Default"], ["--dpi", "200"]]));
        assert!(header_of(&[
            ["Base colors/notions", "Range"],
            ["red, green", "[0, 1]"]
        ]));
        // Data in the first row, or a first row like the others.
        assert!(!header_of(&[
            ["%f", "floating point"],
            ["%e", "exponential"]
        ]));
        assert!(!header_of(&[["Alice", "Smith"], ["Bob", "Jones"]]));
        assert!(!header_of(&[["A sentence that ends.", "x"], ["1", "2"]]));

        let mut data = vec![
            line("%f", 0, BlockKind::Table, 0.0, 20.0),
            line("floating point", 0, BlockKind::Table, 0.0, 20.0),
            line("%e", 0, BlockKind::Table, 30.0, 20.0),
            line("exponential", 0, BlockKind::Table, 30.0, 20.0),
        ];
        for (k, l) in data.iter_mut().enumerate() {
            l.cell = Some(TableCell {
                row: k as u32 / 2,
                col: k as u32 % 2,
            });
        }
        assert_eq!(
            table(&data, TableShape { rows: 2, cols: 2 }),
            "|  |  |\n| --- | --- |\n| %f | floating point |\n| %e | exponential |"
        );
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
        // The title of one page sits lower than the others' (beyond the
        // slack): it is not theirs, and two of four pages still carry it.
        pages[3].lines[0].polygon = [[0.0, 50.0], [100.0, 50.0], [100.0, 70.0], [0.0, 70.0]];
        let report = build_pages(
            JobHead {
                job_id: "j",
                manifest: None,
                first_seen_ms: 0,
                cancelled: false,
                language: "auto",
            },
            pages.into_iter().zip(1..).map(|(ocr, page)| PageOutcome {
                page,
                record: PageRecord {
                    ok: true,
                    worker: "w".into(),
                    deliveries: 1,
                    processing_ms: 0.0,
                    error: None,
                },
                read: Some((ocr, 1.0)),
            }),
            0,
        );
        let kinds_of = |p: &PageEntry| -> Vec<BlockKind> {
            p.ocr
                .as_ref()
                .unwrap()
                .lines
                .iter()
                .map(|l| l.block_kind)
                .collect()
        };
        use BlockKind::*;
        assert_eq!(kinds_of(&report.pages[3]), vec![Text, Text, Text, Footer]);
        for p in report.pages.iter().map(|p| p.ocr.as_ref().unwrap()).take(3) {
            let kinds: Vec<BlockKind> = p.lines.iter().map(|l| l.block_kind).collect();
            assert_eq!(kinds, vec![Header, Text, Text, Footer]);
            assert_eq!(p.blocks[0].kind, Header);
        }
        assert!(page_number("page#"));
        assert!(page_number("xiv"));
        assert!(!page_number("contents"));
    }

    #[test]
    fn result_json_written_a_page_at_a_time_is_the_report_as_serde_writes_it() {
        let head = JobHead {
            job_id: "j",
            manifest: None,
            first_seen_ms: 0,
            cancelled: false,
            language: "auto",
        };
        let record = |ok: bool| PageRecord {
            ok,
            worker: "w".into(),
            deliveries: 1,
            processing_ms: 2.0,
            error: (!ok).then(|| "broken".to_owned()),
        };
        let report = build_pages(
            head,
            [
                PageOutcome {
                    page: 1,
                    record: record(true),
                    read: Some((
                        page(vec![line("Body.", 0, BlockKind::Text, 300.0, 20.0)]),
                        0.5,
                    )),
                },
                PageOutcome {
                    page: 2,
                    record: record(false),
                    read: None,
                },
            ],
            5,
        );
        let whole = serde_json::to_vec(&report).unwrap();
        assert_eq!(render(&report, Format::Json).unwrap().unwrap(), whole);
        // Through a temporary file, as the aggregator writes it.
        let plan = Plan {
            metrics: report.metrics.clone(),
            marks: HashMap::new(),
            scale: HeadingScale { top: 0.0 },
        };
        let mut out = Vec::new();
        let mut writer = writer(Format::Json, &plan, &mut out).unwrap().unwrap();
        for page in &report.pages {
            writer.page(page).unwrap();
        }
        writer.finish(&report.metrics).unwrap();
        assert_eq!(out, whole);
    }
}
