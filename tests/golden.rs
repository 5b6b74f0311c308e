//! Golden test: `pagefleet ocr` with the default profile, the real models and
//! the real PDFium on the sample documents, scored against their ground truth.
//!
//! Tesseract 5 scores CER 1.8% and bag-of-words F1 0.971 on these pages; the
//! bars below may be raised as the engine improves, never lowered.

#![allow(clippy::unwrap_used)] // helpers outside #[test] fns fail loudly by design

mod common;

use std::path::Path;
use std::process::Command;

use common::{Score, samples};

/// Most character error rate allowed over all sample pages.
const MAX_CER: f64 = 0.05;
/// Least bag-of-words F1 allowed over all sample pages.
const MIN_BOW_F1: f64 = 0.97;

fn ocr(files: &[&Path], out: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_pagefleet"))
        .arg("ocr")
        .args(files)
        .arg("--out")
        .arg(out)
        .output()
        .expect("run pagefleet")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

#[test]
fn default_profile_matches_the_ground_truth() {
    let samples = samples();
    let docs = [
        "gnuplot-manual",
        "ltnews34",
        "octave-manual",
        "texlive-guide-pl",
    ];
    let files: Vec<_> = docs
        .iter()
        .map(|d| samples.join(format!("{d}.pdf")))
        .collect();
    let out = tempfile::tempdir().unwrap();
    let refs: Vec<&Path> = files.iter().map(|p| p.as_path()).collect();
    let run = ocr(&refs, out.path());
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "pagefleet ocr failed:\n{}",
        String::from_utf8_lossy(&run.stderr)
    );

    let mut total = Score::default();
    let mut pages = 0;
    for doc in docs {
        let truth_dir = samples.join("truth").join(doc);
        let mut truths: Vec<_> = std::fs::read_dir(&truth_dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        truths.sort();
        let dir = out.path().join(doc);
        let result: serde_json::Value =
            serde_json::from_str(&read(&dir.join("result.json"))).unwrap();
        assert_eq!(
            result["metrics"]["total_pages"],
            truths.len(),
            "{doc}: page count"
        );
        assert_eq!(result["metrics"]["pages_failed"], 0, "{doc}");
        let combined = read(&dir.join("combined.txt"));
        assert_eq!(
            combined.matches('\u{c}').count(),
            truths.len(),
            "{doc}: one form feed per page"
        );

        let mut words = 0;
        for (i, truth) in truths.iter().enumerate() {
            let page_file = dir.join(format!("{:03}.txt", i + 1));
            let text = read(&page_file);
            // The page's text is printed, and is what result.json holds.
            assert!(stdout.contains(&format!("==> {doc} page {} <==", i + 1)));
            let json_page = &result["pages"][i];
            assert_eq!(json_page["page"], i + 1);
            let lines = json_page["lines"].as_array().unwrap();
            let joined: String = lines
                .iter()
                .map(|l| format!("{}\n", l["text"].as_str().unwrap()))
                .collect();
            assert_eq!(
                joined,
                text,
                "{doc} page {}: result.json and the page file disagree",
                i + 1
            );
            for line in lines {
                let c = line["confidence"].as_f64().unwrap();
                assert!((0.5..=1.0).contains(&c), "confidence {c}");
                assert_eq!(line["polygon"].as_array().unwrap().len(), 4);
            }
            words += text.split_whitespace().count();
            let s = Score::page(&text, &read(truth));
            eprintln!(
                "{doc}/{:03}: CER {:.2}% F1 {:.3}",
                i + 1,
                100.0 * s.cer(),
                s.bow_f1()
            );
            total.add(s);
            pages += 1;
        }
        assert_eq!(result["metrics"]["total_words"], words, "{doc}: word count");
    }
    eprintln!(
        "all {pages} pages: CER {:.2}% WER {:.2}% BoW-F1 {:.3}",
        100.0 * total.cer(),
        100.0 * total.wer(),
        total.bow_f1()
    );
    assert_eq!(pages, 10);
    assert!(
        total.cer() <= MAX_CER,
        "CER {:.4} over {MAX_CER}",
        total.cer()
    );
    assert!(
        total.bow_f1() >= MIN_BOW_F1,
        "BoW-F1 {:.4} under {MIN_BOW_F1}",
        total.bow_f1()
    );
}

#[test]
fn a_page_image_reads_like_its_pdf_page() {
    let samples = samples();
    let out = tempfile::tempdir().unwrap();
    let png = samples.join("ltnews34-p2.png");
    let run = ocr(&[&png], out.path());
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let text = read(&out.path().join("ltnews34-p2/001.txt"));
    let s = Score::page(&text, &read(&samples.join("truth/ltnews34/002.txt")));
    eprintln!(
        "ltnews34-p2.png: CER {:.2}% F1 {:.3}",
        100.0 * s.cer(),
        s.bow_f1()
    );
    // Tesseract 5 scores CER 4.1% and F1 0.951 on this image.
    assert!(
        s.cer() <= MAX_CER && s.bow_f1() >= 0.95,
        "CER {:.4} F1 {:.4}",
        s.cer(),
        s.bow_f1()
    );
}
