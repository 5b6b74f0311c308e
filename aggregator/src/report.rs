//! A finished job's outputs: combined text, markdown and JSON with metrics.

use std::collections::BTreeMap;

use pagefleet_schemas::messages::{JobState, JobStatus, PageResult};
use pagefleet_schemas::{OcrLine, PageOcr};
use serde::{Deserialize, Serialize};

/// Pages, time and errors of one worker within a job.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkerStats {
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
    /// Pages read by each worker.
    pub pages_per_worker: BTreeMap<String, u32>,
    /// Pages, time and errors per worker.
    pub workers: BTreeMap<String, WorkerStats>,
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

/// Builds the report from the final state and the results of the read pages.
pub fn build(state: &JobState, results: &BTreeMap<u32, PageResult>, end_ms: u64) -> JobReport {
    let manifest = state.manifest.clone();
    let total_pages = manifest.as_ref().map_or(0, |m| m.total_pages);
    let start_ms = manifest
        .as_ref()
        .map_or(state.first_seen_ms, |m| m.submitted_at_ms);
    let mut errors: Vec<String> = manifest
        .as_ref()
        .and_then(|m| m.error.clone())
        .into_iter()
        .collect();
    let mut workers: BTreeMap<String, WorkerStats> = BTreeMap::new();
    let mut pages = Vec::new();
    let (mut words, mut chars, mut lines, mut conf_sum, mut conf_n) = (0, 0, 0, 0.0f64, 0u64);
    let mut page_ms = Vec::new();
    let mut redeliveries = 0;
    for (&page, record) in &state.pages {
        redeliveries += record.deliveries.saturating_sub(1);
        let stats = workers.entry(record.worker.clone()).or_default();
        let ocr = results.get(&page).map(|r| r.ocr.clone());
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
            error: record.error.clone(),
            worker: record.worker.clone(),
            scale: results.get(&page).map(|r| r.scale),
            ocr: if record.ok { ocr } else { None },
        });
    }
    let (ok, failed) = state.counts();
    let size = manifest.as_ref().map_or(0, |m| m.file_size_bytes);
    let metrics = JobMetrics {
        job_id: state.job_id.clone(),
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
        pages_per_worker: workers.iter().map(|(w, s)| (w.clone(), s.pages)).collect(),
        workers,
        redeliveries,
        status: state.final_status(),
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
        out.push_str(&page_markdown(&ocr.lines));
    }
    out
}

fn line_height(l: &OcrLine) -> f32 {
    let [tl, tr, br, bl] = l.polygon;
    let d = |a: [f32; 2], b: [f32; 2]| ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt();
    d(tl, bl).max(d(tr, br))
}

/// A line this much taller than the page's median line is a heading.
const HEADING_RATIO: f32 = 1.4;
/// A vertical gap this many median line heights ends a paragraph.
const PARAGRAPH_GAP: f32 = 0.9;

fn page_markdown(lines: &[OcrLine]) -> String {
    let mut heights: Vec<f32> = lines.iter().map(line_height).collect();
    heights.sort_by(f32::total_cmp);
    let median = heights.get(heights.len() / 2).copied().unwrap_or(0.0);
    let mut out = String::new();
    let is_heading = |l: &OcrLine| {
        median > 0.0 && line_height(l) >= HEADING_RATIO * median && l.text.chars().count() < 120
    };
    let mut prev: Option<&OcrLine> = None;
    for line in lines {
        let heading = is_heading(line);
        if let Some(p) = prev {
            let gap = line.polygon[0][1] - p.polygon[3][1];
            let new_block =
                heading || is_heading(p) || p.column != line.column || gap > PARAGRAPH_GAP * median;
            out.push_str(if new_block { "\n\n" } else { "\n" });
        }
        if heading {
            out.push_str("## ");
        }
        out.push_str(&escape_markdown(&line.text));
        prev = Some(line);
    }
    out.push('\n');
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

    fn line(text: &str, y: f32, h: f32) -> OcrLine {
        OcrLine {
            text: text.into(),
            confidence: 0.9,
            polygon: [[0.0, y], [100.0, y], [100.0, y + h], [0.0, y + h]],
            column: 0,
        }
    }

    #[test]
    fn markdown_finds_headings_and_paragraphs() {
        let lines = vec![
            line("Title", 0.0, 40.0),
            line("first line", 60.0, 20.0),
            line("second line", 82.0, 20.0),
            line("# not a heading", 140.0, 20.0),
        ];
        let md = page_markdown(&lines);
        assert_eq!(
            md,
            "## Title\n\nfirst line\nsecond line\n\n\\# not a heading\n"
        );
    }
}
