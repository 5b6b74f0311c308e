//! The standard OCR formats archives and viewers read: hOCR 1.2 and ALTO 4.
//!
//! Both say the same thing as `result.json`: per page its size, its blocks,
//! their lines and the lines' words, each with its box (page-image pixels,
//! the coordinates of the page as given) and its confidence. A page that
//! failed is a page with no content.

use std::fmt::Write as _;

use pagefleet_schemas::{Block, OcrLine, PageOcr, polygon_bounds};
use quick_xml::escape::escape;

use crate::report::PageEntry;

/// This software, as both formats name it.
const SOFTWARE: &str = "pagefleet";
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Integer pixel bounds (left, top, right, bottom) of corners.
fn bbox(corners: &[[f32; 2]; 4]) -> [i64; 4] {
    let (x0, y0, x1, y1) = polygon_bounds(corners);
    [
        x0.floor().max(0.0) as i64,
        y0.floor().max(0.0) as i64,
        x1.ceil() as i64,
        y1.ceil() as i64,
    ]
}

/// Text as XML takes it: escaped, without the control characters XML 1.0
/// does not allow.
fn text(s: &str) -> String {
    let clean: String = s
        .chars()
        .filter(|&c| !c.is_control() || matches!(c, '\t' | '\n' | '\r'))
        .collect();
    escape(clean.as_str()).into_owned()
}

/// The lines of each block, in reading order.
fn blocks(ocr: &PageOcr) -> Vec<(Option<&Block>, Vec<&OcrLine>)> {
    let mut out: Vec<(Option<&Block>, Vec<&OcrLine>)> = Vec::new();
    for line in &ocr.lines {
        let block = ocr.blocks.get(line.block as usize);
        match out.last_mut() {
            Some((b, lines)) if b.map(|b| b.id) == block.map(|b| b.id) => lines.push(line),
            _ => out.push((block, vec![line])),
        }
    }
    out
}

/// The bounds of a group of lines.
fn lines_bbox(lines: &[&OcrLine]) -> [i64; 4] {
    lines.iter().map(|l| bbox(&l.polygon)).fold(
        [i64::MAX, i64::MAX, i64::MIN, i64::MIN],
        |[a, b, c, d], [x0, y0, x1, y1]| [a.min(x0), b.min(y0), c.max(x1), d.max(y1)],
    )
}

fn title_bbox([x0, y0, x1, y1]: [i64; 4]) -> String {
    format!("bbox {x0} {y0} {x1} {y1}")
}

/// hOCR 1.2: `ocr_page` / `ocr_carea` / `ocr_par` / `ocr_line` /
/// `ocrx_word`, each with its `bbox`, lines and words with `x_wconf`: the
/// document's head, then each page ([`hocr_page`]), then [`HOCR_TAIL`].
pub(crate) fn hocr_head(filename: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <!DOCTYPE html PUBLIC \"-//W3C//DTD XHTML 1.0 Transitional//EN\" \
         \"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd\">\n\
         <html xmlns=\"http://www.w3.org/1999/xhtml\">\n<head>\n\
         <title>{}</title>\n\
         <meta http-equiv=\"Content-Type\" content=\"text/html;charset=utf-8\"/>\n\
         <meta name=\"ocr-system\" content=\"{SOFTWARE} {VERSION}\"/>\n\
         <meta name=\"ocr-capabilities\" content=\"ocr_page ocr_carea ocr_par ocr_line ocrx_word ocrp_wconf\"/>\n\
         </head>\n<body>\n",
        text(filename)
    )
}

/// The end of an hOCR document.
pub(crate) const HOCR_TAIL: &str = "</body>\n</html>\n";

pub(crate) fn hocr_page(out: &mut String, page: &PageEntry) {
    let n = page.page;
    let Some(ocr) = &page.ocr else {
        let _ = writeln!(
            out,
            "<div class=\"ocr_page\" id=\"page_{n}\" title=\"ppageno {}\"></div>",
            n.saturating_sub(1)
        );
        return;
    };
    let _ = writeln!(
        out,
        "<div class=\"ocr_page\" id=\"page_{n}\" title=\"bbox 0 0 {} {}; ppageno {}\">",
        ocr.width,
        ocr.height,
        n.saturating_sub(1)
    );
    let (mut line_no, mut word_no) = (0, 0);
    for (b, (_, lines)) in blocks(ocr).iter().enumerate() {
        let area = title_bbox(lines_bbox(lines));
        let _ = writeln!(
            out,
            " <div class=\"ocr_carea\" id=\"block_{n}_{}\" title=\"{area}\">\n  \
             <p class=\"ocr_par\" id=\"par_{n}_{}\" title=\"{area}\">",
            b + 1,
            b + 1
        );
        for line in lines {
            line_no += 1;
            let _ = write!(
                out,
                "   <span class=\"ocr_line\" id=\"line_{n}_{line_no}\" title=\"{}; x_wconf {}\">",
                title_bbox(bbox(&line.polygon)),
                wconf(line.confidence)
            );
            for (i, word) in line.words_or_whole().iter().enumerate() {
                word_no += 1;
                if i > 0 {
                    out.push(' ');
                }
                let _ = write!(
                    out,
                    "<span class=\"ocrx_word\" id=\"word_{n}_{word_no}\" title=\"{}; x_wconf {}\">{}</span>",
                    title_bbox(bbox(&word.polygon)),
                    wconf(word.confidence),
                    text(&word.text)
                );
            }
            out.push_str("</span>\n");
        }
        out.push_str("  </p>\n </div>\n");
    }
    out.push_str("</div>\n");
}

/// Confidence as hOCR's `x_wconf`: a percentage.
fn wconf(confidence: f32) -> u32 {
    (confidence.clamp(0.0, 1.0) * 100.0).round() as u32
}

/// ALTO 4: `Page` / `PrintSpace` / `TextBlock` / `TextLine` / `String` with
/// `HPOS`, `VPOS`, `WIDTH`, `HEIGHT` in pixels and `WC` (0 to 1), words
/// separated by `SP`: the document's head, then each page ([`alto_page`]),
/// then [`ALTO_TAIL`].
pub(crate) fn alto_head(filename: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <alto xmlns=\"http://www.loc.gov/standards/alto/ns-v4#\" \
         xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" \
         xsi:schemaLocation=\"http://www.loc.gov/standards/alto/ns-v4# \
         http://www.loc.gov/standards/alto/v4/alto-4-2.xsd\">\n\
         <Description>\n<MeasurementUnit>pixel</MeasurementUnit>\n\
         <sourceImageInformation><fileName>{}</fileName></sourceImageInformation>\n\
         <OCRProcessing ID=\"ocr_0\"><ocrProcessingStep><processingSoftware>\
         <softwareName>{SOFTWARE}</softwareName><softwareVersion>{VERSION}</softwareVersion>\
         </processingSoftware></ocrProcessingStep></OCRProcessing>\n\
         </Description>\n<Layout>\n",
        text(filename)
    )
}

/// The end of an ALTO document.
pub(crate) const ALTO_TAIL: &str = "</Layout>\n</alto>\n";

/// `HPOS="x" VPOS="y" WIDTH="w" HEIGHT="h"` of pixel bounds.
fn position([x0, y0, x1, y1]: [i64; 4]) -> String {
    format!(
        "HPOS=\"{x0}\" VPOS=\"{y0}\" WIDTH=\"{}\" HEIGHT=\"{}\"",
        x1 - x0,
        y1 - y0
    )
}

pub(crate) fn alto_page(out: &mut String, page: &PageEntry) {
    let n = page.page;
    let Some(ocr) = &page.ocr else {
        let _ = writeln!(out, "<Page ID=\"page_{n}\" PHYSICAL_IMG_NR=\"{n}\"/>");
        return;
    };
    let (w, h) = (ocr.width, ocr.height);
    let _ = writeln!(
        out,
        "<Page ID=\"page_{n}\" PHYSICAL_IMG_NR=\"{n}\" WIDTH=\"{w}\" HEIGHT=\"{h}\">\n\
         <PrintSpace HPOS=\"0\" VPOS=\"0\" WIDTH=\"{w}\" HEIGHT=\"{h}\">"
    );
    let (mut line_no, mut word_no) = (0, 0);
    for (b, (_, lines)) in blocks(ocr).iter().enumerate() {
        let _ = writeln!(
            out,
            "<TextBlock ID=\"block_{n}_{}\" {}>",
            b + 1,
            position(lines_bbox(lines))
        );
        for line in lines {
            line_no += 1;
            let _ = writeln!(
                out,
                "<TextLine ID=\"line_{n}_{line_no}\" {}>",
                position(bbox(&line.polygon))
            );
            let words = line.words_or_whole();
            for (i, word) in words.iter().enumerate() {
                word_no += 1;
                let [x0, y0, x1, y1] = bbox(&word.polygon);
                if let Some(previous) = i.checked_sub(1).map(|p| bbox(&words[p].polygon)) {
                    let gap = (x0 - previous[2]).max(0);
                    let _ = writeln!(
                        out,
                        "<SP WIDTH=\"{gap}\" HPOS=\"{}\" VPOS=\"{y0}\"/>",
                        previous[2]
                    );
                }
                let _ = writeln!(
                    out,
                    "<String ID=\"word_{n}_{word_no}\" {} WC=\"{:.2}\" CONTENT=\"{}\"/>",
                    position([x0, y0, x1, y1]),
                    word.confidence.clamp(0.0, 1.0),
                    text(&word.text)
                );
            }
            out.push_str("</TextLine>\n");
        }
        out.push_str("</TextBlock>\n");
    }
    out.push_str("</PrintSpace>\n</Page>\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::JobReport;
    use pagefleet_schemas::{BlockKind, Format, OcrWord, StepTimings, TextCounts};

    fn word(text: &str, x0: f32, x1: f32, y0: f32, confidence: f32) -> OcrWord {
        OcrWord {
            text: text.into(),
            confidence,
            polygon: [[x0, y0], [x1, y0], [x1, y0 + 20.0], [x0, y0 + 20.0]],
        }
    }

    fn line(words: Vec<OcrWord>, block: u32) -> OcrLine {
        let x0 = words[0].polygon[0][0];
        let x1 = words[words.len() - 1].polygon[1][0];
        let y0 = words[0].polygon[0][1];
        OcrLine {
            text: words
                .iter()
                .map(|w| w.text.as_str())
                .collect::<Vec<_>>()
                .join(" "),
            confidence: 0.9,
            polygon: [[x0, y0], [x1, y0], [x1, y0 + 20.0], [x0, y0 + 20.0]],
            column: 0,
            block,
            block_kind: BlockKind::Text,
            cell: None,
            words,
        }
    }

    /// Two pages: the first with a heading block and a two-line paragraph
    /// (one word with markup characters), the second failed.
    fn report() -> JobReport {
        let lines = vec![
            line(vec![word("Results", 100.0, 180.0, 50.0, 0.99)], 0),
            line(
                vec![
                    word("a<b", 100.0, 130.0, 100.0, 0.8),
                    word("&", 140.0, 150.0, 100.0, 0.7),
                ],
                1,
            ),
            line(vec![word("\"end\"", 100.0, 140.5, 130.0, 0.95)], 1),
        ];
        let blocks = Block::of_lines(&lines);
        let ocr = PageOcr {
            width: 600,
            height: 800,
            rotation: 0,
            counts: TextCounts::of_lines(lines.iter().map(|l| l.text.as_str())),
            lines,
            blocks,
            avg_confidence: 0.9,
            timings: StepTimings::default(),
            text_source: Default::default(),
            layer_check: None,
        };
        let mut report: JobReport = serde_json::from_value(serde_json::json!({
            "metrics": {
                "job_id": "j", "filename": "scan <1>.pdf", "total_pages": 2,
                "pages_processed": 1, "pages_failed": 1, "total_words": 4,
                "total_chars": 14, "total_lines": 3, "avg_confidence": 0.9,
                "start_time": "", "end_time": "", "total_duration_ms": 1,
                "avg_page_time_ms": 1.0, "file_size_bytes": 1, "file_size_mb": 0.0,
                "ocr_rounds_per_worker": {}, "worker_metrics": [], "redeliveries": 0,
                "status": "partial_success", "errors": []
            },
            "pages": [
                {"page": 1, "status": "ok", "worker": "w"},
                {"page": 2, "status": "failed", "error": "broken", "worker": "w"}
            ]
        }))
        .unwrap();
        report.pages[0].ocr = Some(ocr);
        report
    }

    fn rendered(format: Format) -> String {
        let bytes = crate::report::render(&report(), format).unwrap().unwrap();
        String::from_utf8(bytes).unwrap()
    }

    fn attr<'a>(node: roxmltree::Node<'a, '_>, name: &str) -> &'a str {
        node.attribute(name).unwrap_or_default()
    }

    #[test]
    fn hocr_has_the_pages_blocks_lines_and_words_with_their_boxes() {
        let hocr = rendered(Format::Hocr);
        let doc = roxmltree::Document::parse_with_options(
            &hocr,
            roxmltree::ParsingOptions {
                allow_dtd: true,
                ..Default::default()
            },
        )
        .unwrap();
        let class = |c: &'static str| {
            doc.descendants()
                .filter(move |n| n.attribute("class") == Some(c))
                .collect::<Vec<_>>()
        };
        let pages = class("ocr_page");
        assert_eq!(pages.len(), 2);
        assert_eq!(attr(pages[0], "title"), "bbox 0 0 600 800; ppageno 0");
        assert_eq!(attr(pages[1], "title"), "ppageno 1");
        assert_eq!(class("ocr_carea").len(), 2);
        assert_eq!(class("ocr_par").len(), 2);
        assert_eq!(class("ocr_line").len(), 3);
        let words: Vec<(String, &str)> = class("ocrx_word")
            .iter()
            .map(|w| (w.text().unwrap_or_default().to_owned(), attr(*w, "title")))
            .collect();
        assert_eq!(
            words,
            [
                ("Results".into(), "bbox 100 50 180 70; x_wconf 99"),
                ("a<b".into(), "bbox 100 100 130 120; x_wconf 80"),
                ("&".into(), "bbox 140 100 150 120; x_wconf 70"),
                ("\"end\"".into(), "bbox 100 130 141 150; x_wconf 95"),
            ]
        );
        // The paragraph's area holds both its lines.
        assert_eq!(attr(class("ocr_par")[1], "title"), "bbox 100 100 150 150");
        // Each line's words are its children, in order.
        let line = class("ocr_line")[1];
        assert_eq!(line.children().filter(|n| n.is_element()).count(), 2);
    }

    #[test]
    fn alto_has_the_pages_blocks_lines_and_strings_with_their_positions() {
        let alto = rendered(Format::Alto);
        let doc = roxmltree::Document::parse(&alto).unwrap();
        let tag = |t: &'static str| {
            doc.descendants()
                .filter(move |n| n.tag_name().name() == t)
                .collect::<Vec<_>>()
        };
        let root = doc.root_element();
        assert_eq!(
            root.tag_name().namespace(),
            Some("http://www.loc.gov/standards/alto/ns-v4#")
        );
        let pages = tag("Page");
        assert_eq!(pages.len(), 2);
        assert_eq!(
            (attr(pages[0], "WIDTH"), attr(pages[0], "HEIGHT")),
            ("600", "800")
        );
        assert_eq!(tag("TextBlock").len(), 2);
        assert_eq!(tag("TextLine").len(), 3);
        let strings: Vec<[&str; 6]> = tag("String")
            .iter()
            .map(|s| ["CONTENT", "HPOS", "VPOS", "WIDTH", "HEIGHT", "WC"].map(|a| attr(*s, a)))
            .collect();
        assert_eq!(
            strings,
            [
                ["Results", "100", "50", "80", "20", "0.99"],
                ["a<b", "100", "100", "30", "20", "0.80"],
                ["&", "140", "100", "10", "20", "0.70"],
                ["\"end\"", "100", "130", "41", "20", "0.95"],
            ]
        );
        // A space between the two words of a line, from one to the next.
        let sp = tag("SP");
        assert_eq!(sp.len(), 1);
        assert_eq!((attr(sp[0], "HPOS"), attr(sp[0], "WIDTH")), ("130", "10"));
        assert_eq!(
            tag("fileName")[0].text(),
            Some("scan <1>.pdf"),
            "the file name is escaped"
        );
    }
}
