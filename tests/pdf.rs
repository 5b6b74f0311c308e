//! PDFs in and out as a user meets them. The searchable PDF: `pagefleet run
//! --format pdf` on a scanned PDF and on a page image, and the output read
//! back by another PDF library (pypdf, installed by the bootstrap): the same
//! pages at the same sizes, the OCR's text, and each word where its box is.
//! Text layers: a PDF with a born-digital page and a scanned one, read with
//! `--text-layer use` and `skip`; the searchable PDF of a born-digital paper
//! and of a scan with an earlier OCR layer hold each word once.

#![allow(clippy::unwrap_used)] // helpers outside #[test] fns fail loudly by design

mod common;

use std::path::Path;

use common::pipeline::home;
use common::{Score, root, samples};
use pagefleet_aggregator::pdf::{self, PageImage, Source};
use pagefleet_aggregator::report;
use serde_json::Value;

/// What pypdf reads of a PDF: per page its size, its text, and each text
/// object's text with its origin in points, its horizontal scale (points per
/// unit of text space) and its height.
fn read_back(file: &Path) -> Vec<Value> {
    const SCRIPT: &str = r#"
import json, sys, pypdf
pages = []
for page in pypdf.PdfReader(sys.argv[1]).pages:
    ops = []
    def visit(text, cm, tm, font, size):
        if text.strip():
            ops.append([text.strip(), tm[4], tm[5], tm[0], tm[3]])
    text = page.extract_text(visitor_text=visit)
    box = page.mediabox
    pages.append({"size": [float(box.width), float(box.height)], "text": text, "words": ops})
print(json.dumps(pages))
"#;
    let pages = common::python_json("pypdf-5.9.0-py3-none-any.whl", SCRIPT, &[file]);
    serde_json::from_value(pages).unwrap()
}

/// Runs `pagefleet ARGS...`, which must succeed.
fn run_ok(args: &[&std::ffi::OsStr]) {
    let run = common::pagefleet(args);
    assert!(run.status.success(), "{}", run.stderr);
}

/// A document's result.json in an output folder.
fn result_of(out: &Path, doc: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(out.join(doc).join("result.json")).unwrap())
        .unwrap()
}

/// A scan: the pages of `images` as a PDF of pictures only, at 150 DPI.
fn scanned_pdf(images: &[&Path], out: &Path) {
    let pdf = pagefleet_rasterizer::Pdf::bind(&home().join("lib/libpdfium.so")).unwrap();
    let mut empty = report::build_pages(
        report::JobHead {
            job_id: "scan",
            manifest: None,
            first_seen_ms: 0,
            cancelled: false,
            language: "auto",
        },
        [],
        0,
    );
    empty.metrics.total_pages = images.len() as u32;
    let mut pages = images
        .iter()
        .map(|p| p.to_path_buf())
        .collect::<Vec<_>>()
        .into_iter();
    let image = move |_page: u32| {
        let bytes = std::fs::read(pages.next().unwrap()).unwrap();
        Ok(Some(PageImage::from_file_bytes(&bytes).unwrap()))
    };
    let source = Source::Images {
        dpi: 150.0,
        image: Box::new(image),
    };
    pdf::write(&pdf, &empty, source, out).unwrap();
}

/// Checks one output PDF against its job's result and text: page sizes,
/// the text, and every word's position.
fn check(output: &Path, result: &Value, page_text: &dyn Fn(usize) -> String, sizes: &[[f64; 2]]) {
    let read = read_back(output);
    assert_eq!(read.len(), sizes.len(), "page count");
    for (i, page) in read.iter().enumerate() {
        let size = [
            page["size"][0].as_f64().unwrap(),
            page["size"][1].as_f64().unwrap(),
        ];
        assert!(
            (size[0] - sizes[i][0]).abs() < 0.5 && (size[1] - sizes[i][1]).abs() < 0.5,
            "page {}: {size:?} against {:?}",
            i + 1,
            sizes[i]
        );
        // Selecting and copying gives the OCR's text.
        let own = page_text(i + 1);
        let f1 = Score::page(page["text"].as_str().unwrap(), &own).bow_f1();
        assert!(f1 >= 0.95, "page {}: bag-of-words F1 {f1:.3}", i + 1);

        // Each word starts at its box's left edge and sits within its height.
        let entry = &result["pages"][i];
        let (w_px, h_px) = (
            entry["width"].as_f64().unwrap(),
            entry["height"].as_f64().unwrap(),
        );
        let (sx, sy) = (size[0] / w_px, size[1] / h_px);
        let words: Vec<&Value> = entry["lines"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|l| l["words"].as_array().unwrap())
            .collect();
        let placed = page["words"].as_array().unwrap();
        let mut worst: f64 = 0.0;
        // Tools that find words by the gaps between glyphs (pdftotext) see
        // a gap of a quarter of the height between neighbours on a line:
        // every glyph of the font advances half a unit.
        for pair in placed.windows(2) {
            let f = |op: &Value, i: usize| op[i].as_f64().unwrap();
            let (this, next) = (&pair[0], &pair[1]);
            if (f(this, 2) - f(next, 2)).abs() > 0.5 || f(next, 1) < f(this, 1) {
                continue; // another line
            }
            let chars = this[0].as_str().unwrap().chars().count() as f64;
            let end = f(this, 1) + f(this, 3) * 0.5 * chars;
            assert!(
                f(next, 1) - end >= 0.24 * f(this, 4),
                "page {}: {this} ends {:.2} pt before {next}",
                i + 1,
                f(next, 1) - end
            );
        }
        assert_eq!(placed.len(), words.len(), "page {}: words", i + 1);
        assert!(words.len() > 100, "page {}: {} words", i + 1, words.len());
        for (word, op) in words.iter().zip(placed) {
            assert_eq!(op[0], word["text"]);
            let corner = |k: usize, c: usize| word["polygon"][k][c].as_f64().unwrap();
            let left = corner(0, 0).min(corner(3, 0)) * sx;
            let top = size[1] - corner(0, 1).min(corner(1, 1)) * sy;
            let bottom = size[1] - corner(2, 1).max(corner(3, 1)) * sy;
            let (x, y) = (op[1].as_f64().unwrap(), op[2].as_f64().unwrap());
            worst = worst.max((x - left).abs());
            assert!(
                (x - left).abs() <= 2.0 && y > bottom - 1.0 && y < top,
                "page {}: {op} placed at ({x:.1}, {y:.1}); its box is left {left:.1}, bottom {bottom:.1}, top {top:.1}",
                i + 1
            );
        }
        eprintln!(
            "{}: page {}: {} words, bag-of-words F1 {f1:.3}, farthest word start {worst:.2} pt from its box",
            output.display(),
            i + 1,
            words.len()
        );
    }
}

#[test]
fn a_scan_and_an_image_come_back_as_searchable_pdfs() {
    let dir = tempfile::tempdir().unwrap();
    let samples = samples();
    // Two pages of different sizes: a letter-size page and a smaller one.
    let page2 = samples.join("ltnews34-p2.png");
    let small = dir.path().join("small.jpg");
    image::open(&page2)
        .unwrap()
        .resize(1000, 1000, image::imageops::FilterType::Triangle)
        .to_rgb8()
        .save(&small)
        .unwrap();
    let scan = dir.path().join("scan.pdf");
    scanned_pdf(&[&page2, &small], &scan);
    let input_sizes: Vec<[f64; 2]> = read_back(&scan)
        .iter()
        .map(|p| {
            [
                p["size"][0].as_f64().unwrap(),
                p["size"][1].as_f64().unwrap(),
            ]
        })
        .collect();
    assert_eq!(input_sizes.len(), 2);
    assert!(
        read_back(&scan)
            .iter()
            .all(|p| p["words"].as_array().unwrap().is_empty())
    );

    let out = dir.path().join("out");
    let data = dir.path().join("data");
    run_ok(&[
        "run".as_ref(),
        "--format".as_ref(),
        "pdf,txt".as_ref(),
        "--out".as_ref(),
        out.as_ref(),
        "--data".as_ref(),
        data.as_ref(),
        scan.as_ref(),
        page2.as_ref(),
    ]);

    let text_of = |doc: &'static str| {
        let out = out.clone();
        move |page: usize| {
            std::fs::read_to_string(out.join(doc).join(format!("{page:03}.txt"))).unwrap()
        }
    };
    // The scan keeps its pages and their sizes.
    let result = result_of(&out, "scan");
    assert_eq!(result["metrics"]["status"], "success", "{result}");
    check(
        &out.join("scan/combined.pdf"),
        &result,
        &text_of("scan"),
        &input_sizes,
    );

    // The image becomes a page of the size it declares: 1275 × 1650 pixels
    // at 150 DPI are a letter page, 612 × 792 points.
    let result = result_of(&out, "ltnews34-p2");
    check(
        &out.join("ltnews34-p2/combined.pdf"),
        &result,
        &text_of("ltnews34-p2"),
        &[LETTER],
    );
    // The page text is the sample's, not only the OCR's own.
    let truth = std::fs::read_to_string(samples.join("truth/ltnews34/002.txt")).unwrap();
    let read = read_back(&out.join("ltnews34-p2/combined.pdf"));
    let f1 = Score::page(read[0]["text"].as_str().unwrap(), &truth).bow_f1();
    assert!(f1 >= 0.9, "against the truth: bag-of-words F1 {f1:.3}");
}

/// A US letter page in points.
const LETTER: [f64; 2] = [612.0, 792.0];

/// The sample page (a letter page at 150 DPI, 1275 × 1650 pixels, whose PNG
/// says so) in the ways scanners write it: a JPEG declaring 150 DPI in its
/// JFIF header, a TIFF declaring 150 DPI, a fax TIFF of 204 × 98 lines an
/// inch, a PNG declaring nothing, and a JPEG declaring 72 DPI as a camera's
/// does.
fn scans_of_a_letter_page(dir: &Path) -> Vec<std::path::PathBuf> {
    let page = image::open(samples().join("ltnews34-p2.png"))
        .unwrap()
        .to_rgb8();
    let jpeg_at = |name: &str, dpi: u16| {
        let path = dir.join(name);
        let mut encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(
            std::fs::File::create(&path).unwrap(),
            90,
        );
        encoder.set_pixel_density(image::codecs::jpeg::PixelDensity::dpi(dpi));
        encoder.encode_image(&page).unwrap();
        path
    };
    let tiff_at = |name: &str, image: &image::RgbImage, (x, y): (u32, u32)| {
        use tiff::encoder::{Rational, TiffEncoder, colortype::RGB8};
        let path = dir.join(name);
        let mut tiff = TiffEncoder::new(std::fs::File::create(&path).unwrap()).unwrap();
        let mut out = tiff
            .new_image::<RGB8>(image.width(), image.height())
            .unwrap();
        out.resolution_unit(tiff::tags::ResolutionUnit::Inch);
        out.x_resolution(Rational { n: x, d: 1 });
        out.y_resolution(Rational { n: y, d: 1 });
        out.write_data(image.as_raw()).unwrap();
        path
    };
    let fax = image::imageops::resize(&page, 1734, 1078, image::imageops::FilterType::Triangle);
    let bare = dir.join("undeclared.png");
    page.save(&bare).unwrap();
    vec![
        jpeg_at("jfif-150.jpg", 150),
        tiff_at("tiff-150.tif", &page, (150, 150)),
        tiff_at("fax.tif", &fax, (204, 98)),
        bare,
        jpeg_at("camera-72.jpg", 72),
    ]
}

#[test]
fn a_scan_keeps_the_page_size_it_declares() {
    let dir = tempfile::tempdir().unwrap();
    let scans = scans_of_a_letter_page(dir.path());
    // What each becomes: a letter page, but the undeclared one (taken at
    // the job's 100 DPI) and the camera's (as large as it says).
    let expected: [(&str, [f64; 2]); 5] = [
        ("jfif-150", LETTER),
        ("tiff-150", LETTER),
        ("fax", LETTER),
        ("undeclared", [1275.0 * 72.0 / 100.0, 1650.0 * 72.0 / 100.0]),
        ("camera-72", [1275.0, 1650.0]),
    ];
    let page_size = |file: &Path| {
        let read = read_back(file);
        assert_eq!(read.len(), 1);
        [
            read[0]["size"][0].as_f64().unwrap(),
            read[0]["size"][1].as_f64().unwrap(),
        ]
    };
    // Through the pipeline (the page images the rasterizer stores say their
    // resolution) and through `pagefleet ocr` (a JPEG is embedded as it is).
    for command in ["run", "ocr"] {
        let out = dir.path().join(command);
        let mut args: Vec<&std::ffi::OsStr> = vec![
            command.as_ref(),
            "--format".as_ref(),
            "pdf,txt".as_ref(),
            "--dpi".as_ref(),
            "100".as_ref(),
            "--out".as_ref(),
            out.as_ref(),
        ];
        let data = dir.path().join("data");
        if command == "run" {
            args.extend(["--data".as_ref(), data.as_os_str()]);
        }
        args.extend(scans.iter().map(|p| p.as_os_str()));
        run_ok(&args);
        for (doc, size) in expected {
            let got = page_size(&out.join(doc).join("combined.pdf"));
            assert!(
                (got[0] - size[0]).abs() < 1.0 && (got[1] - size[1]).abs() < 1.0,
                "{command} {doc}: {got:?}, expected {size:?}"
            );
            // The fax's pixels are made square: its page image is as tall
            // as a letter page at 204 DPI, and it reads as the others do.
            let result = result_of(&out, doc);
            let (w, h) = (
                result["pages"][0]["width"].as_f64().unwrap(),
                result["pages"][0]["height"].as_f64().unwrap(),
            );
            assert!(
                (h / w - 11.0 / 8.5).abs() < 0.01,
                "{command} {doc}: {w} x {h}"
            );
            let text = std::fs::read_to_string(out.join(doc).join("001.txt")).unwrap();
            let truth = std::fs::read_to_string(samples().join("truth/ltnews34/002.txt")).unwrap();
            let f1 = Score::page(&text, &truth).bow_f1();
            assert!(f1 >= 0.9, "{command} {doc}: bag-of-words F1 {f1:.3}");
            eprintln!("{command} {doc}: page {got:?} pt, {w} x {h} px, F1 {f1:.3}");
        }
    }
}

/// A PDF whose first page carries text (the quick-start document) and whose
/// second is a scan without any.
fn mixed_pdf(dir: &Path) -> std::path::PathBuf {
    let scan = dir.join("scan-page.pdf");
    scanned_pdf(&[&samples().join("ltnews34-p2.png")], &scan);
    let pdf = pagefleet_rasterizer::Pdf::bind(&home().join("lib/libpdfium.so")).unwrap();
    let pdfium = pdf.pdfium();
    let mut document = pdfium
        .load_pdf_from_file(&root().join("examples/welcome.pdf"), None)
        .unwrap();
    let scanned = pdfium.load_pdf_from_file(&scan, None).unwrap();
    document.pages_mut().append(&scanned).unwrap();
    let mixed = dir.join("mixed.pdf");
    document.save_to_file(&mixed).unwrap();
    mixed
}

#[test]
fn pages_with_text_are_taken_as_they_are_or_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let mixed = mixed_pdf(dir.path());
    let welcome = std::fs::read_to_string(root().join("examples/welcome.txt")).unwrap();
    let truth = std::fs::read_to_string(samples().join("truth/ltnews34/002.txt")).unwrap();

    // `use`, through the pipeline: the first page's text is the PDF's own,
    // the second page is read.
    let out = dir.path().join("use");
    let data = dir.path().join("data");
    run_ok(&[
        "run".as_ref(),
        "--text-layer".as_ref(),
        "use".as_ref(),
        "--format".as_ref(),
        "txt,json,pdf".as_ref(),
        "--out".as_ref(),
        out.as_ref(),
        "--data".as_ref(),
        data.as_ref(),
        mixed.as_ref(),
    ]);
    let result = result_of(&out, "mixed");
    assert_eq!(result["metrics"]["status"], "success", "{result}");
    let pages = result["pages"].as_array().unwrap();
    assert_eq!(pages[0]["text_source"], "text_layer");
    assert_eq!(pages[1]["text_source"], "ocr");
    let page1 = std::fs::read_to_string(out.join("mixed/001.txt")).unwrap();
    let cer = Score::page(&page1, &welcome).cer();
    assert!(cer <= 0.005, "the PDF's own text: CER {cer:.4}\n{page1}");
    let page2 = std::fs::read_to_string(out.join("mixed/002.txt")).unwrap();
    let f1 = Score::page(&page2, &truth).bow_f1();
    assert!(f1 >= 0.9, "the scanned page: bag-of-words F1 {f1:.3}");
    // The text layer's words have boxes on the page, top to bottom.
    let (w, h) = (
        pages[0]["width"].as_f64().unwrap(),
        pages[0]["height"].as_f64().unwrap(),
    );
    let lines = pages[0]["lines"].as_array().unwrap();
    assert_eq!(lines[0]["text"], "Welcome to pagefleet");
    let mut last_top = 0.0;
    for line in lines {
        let p = &line["polygon"];
        let (x0, y0, x1, y1) = (
            p[0][0].as_f64().unwrap(),
            p[0][1].as_f64().unwrap(),
            p[2][0].as_f64().unwrap(),
            p[2][1].as_f64().unwrap(),
        );
        assert!(
            0.0 <= x0 && x0 < x1 && x1 <= w && 0.0 <= y0 && y0 < y1 && y1 <= h,
            "{line}"
        );
        assert!(y0 >= last_top, "{line} above the line before it");
        last_top = y0;
        assert_eq!(
            line["words"].as_array().unwrap().len(),
            line["text"].as_str().unwrap().split_whitespace().count()
        );
    }
    // In the searchable PDF the first page keeps its own text, once; the
    // second has the OCR's.
    let read = read_back(&out.join("mixed/combined.pdf"));
    let f1 = Score::page(read[0]["text"].as_str().unwrap(), &welcome).bow_f1();
    assert!(
        f1 >= 0.98,
        "page 1 of the searchable PDF: bag-of-words F1 {f1:.3}"
    );
    let f1 = Score::page(read[1]["text"].as_str().unwrap(), &page2).bow_f1();
    assert!(
        f1 >= 0.95,
        "page 2 of the searchable PDF: bag-of-words F1 {f1:.3}"
    );

    // `skip`, with `pagefleet ocr`: the first page is left out, and says so.
    let out = dir.path().join("skip");
    run_ok(&[
        "ocr".as_ref(),
        "--text-layer".as_ref(),
        "skip".as_ref(),
        "--out".as_ref(),
        out.as_ref(),
        mixed.as_ref(),
    ]);
    let result = result_of(&out, "mixed");
    let pages = result["pages"].as_array().unwrap();
    assert_eq!(pages[0]["text_source"], "skipped");
    assert!(pages[0]["lines"].as_array().unwrap().is_empty());
    assert_eq!(pages[1]["text_source"], "ocr");
    assert!(
        std::fs::read_to_string(out.join("mixed/001.txt"))
            .unwrap()
            .trim()
            .is_empty()
    );
    let f1 = Score::page(
        &std::fs::read_to_string(out.join("mixed/002.txt")).unwrap(),
        &truth,
    )
    .bow_f1();
    assert!(
        f1 >= 0.9,
        "the scanned page, skip mode: bag-of-words F1 {f1:.3}"
    );
}

/// The words `pdftotext` finds in a PDF.
fn pdftotext_words(file: &Path) -> usize {
    let out = std::process::Command::new("pdftotext")
        .arg(file)
        .arg("-")
        .output()
        .expect("run pdftotext");
    assert!(out.status.success(), "pdftotext {}", file.display());
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .count()
}

/// The searchable PDF of a born-digital document holds each word once,
/// whether its pages' text was taken from their layer (`auto`) or read
/// from their pixels (`ocr`, which leaves visible text as it is); a scan's
/// earlier invisible OCR layer is replaced, not added to; a layer `auto`
/// refused stays, with the OCR text beside it.
#[test]
fn a_born_digital_pdf_made_searchable_holds_each_word_once() {
    let dir = tempfile::tempdir().unwrap();
    let paper = root().join("tests/data/layout/acm-tog-sample.pdf");
    let scan = root().join("tests/data/text-layers/scan-with-ocr-layer.pdf");
    for mode in ["auto", "ocr"] {
        let out = dir.path().join(mode);
        run_ok(&[
            "ocr".as_ref(),
            "--text-layer".as_ref(),
            mode.as_ref(),
            "--format".as_ref(),
            "pdf".as_ref(),
            "--out".as_ref(),
            out.as_ref(),
            paper.as_ref(),
            scan.as_ref(),
        ]);
        let (before, after) = (
            pdftotext_words(&paper),
            pdftotext_words(&out.join("acm-tog-sample/combined.pdf")),
        );
        assert_eq!(after, before, "{mode}: words of the born-digital PDF");
        let (before, after) = (
            pdftotext_words(&scan),
            pdftotext_words(&out.join("scan-with-ocr-layer/combined.pdf")),
        );
        assert!(
            after.abs_diff(before) * 20 <= before,
            "{mode}: the scan's {before} words became {after}"
        );
        let sources: Vec<Value> = result_of(&out, "scan-with-ocr-layer")["pages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["text_source"].clone())
            .collect();
        let expected = if mode == "auto" { "text_layer" } else { "ocr" };
        assert_eq!(sources, [expected], "{mode}");
    }

    // A scan with one true line stamped on it: `auto` refuses its layer
    // (it holds a line of a full page), and the searchable PDF keeps the
    // stamp and gets the page's OCR text, so the page can be searched.
    let stamped = root().join("tests/data/text-layers/stamped-scan.pdf");
    let out = dir.path().join("stamped");
    run_ok(&[
        "ocr".as_ref(),
        "--format".as_ref(),
        "pdf,txt".as_ref(),
        "--out".as_ref(),
        out.as_ref(),
        stamped.as_ref(),
    ]);
    let result = result_of(&out, "stamped-scan");
    assert_eq!(result["pages"][0]["text_source"], "ocr", "{result}");
    let read = std::fs::read_to_string(out.join("stamped-scan/001.txt")).unwrap();
    let (stamp, ocr) = (pdftotext_words(&stamped), read.split_whitespace().count());
    let after = pdftotext_words(&out.join("stamped-scan/combined.pdf"));
    assert!(stamp < 20 && ocr > 200, "{stamp} stamped words, {ocr} read");
    assert!(
        after.abs_diff(stamp + ocr) * 20 <= ocr,
        "{after} words in the searchable PDF, {stamp} stamped and {ocr} read"
    );
}
