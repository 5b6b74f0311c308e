//! `pagefleet ocr` as a user runs it: the quick-start document, bad input mixed
//! with good, an oversized image, and a missing runtime.

#![allow(clippy::unwrap_used)] // helpers outside #[test] fns fail loudly by design

mod common;

use std::io::Cursor;
use std::path::Path;

use common::{Ran, Score, pagefleet, pagefleet_command, root};

/// The run succeeded and read the quick-start document into `out` within 1%
/// CER of its truth.
fn assert_reads_welcome(run: &Ran, out: &Path) {
    assert!(run.status.success(), "{}", run.stderr);
    let text = std::fs::read_to_string(out.join("welcome/001.txt")).unwrap();
    let truth = std::fs::read_to_string(root().join("examples/welcome.txt")).unwrap();
    let s = Score::page(&text, &truth);
    assert!(s.cer() <= 0.01, "CER {:.4}:\n{text}", s.cer());
}

fn ocr(files: &[&Path], out: &Path) -> Ran {
    let mut args: Vec<&std::ffi::OsStr> = vec!["ocr".as_ref(), "--out".as_ref(), out.as_ref()];
    args.extend(files.iter().map(|f| f.as_os_str()));
    pagefleet(&args)
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn quick_start_document_reads_back_its_text() {
    let out = tempfile::tempdir().unwrap();
    let run = ocr(&[&root().join("examples/welcome.pdf")], out.path());
    assert_reads_welcome(&run, out.path());
    assert!(run.stdout.contains("Welcome to pagefleet"));
    let result = json(&out.path().join("welcome/result.json"));
    assert_eq!(result["metrics"]["total_pages"], 1);
    assert_eq!(result["pages"][0]["status"], "ok");
    // The quick-start PDF carries its text: taken from its layer once a
    // sample of its lines read from the pixels agrees (text layer auto).
    let page = &result["pages"][0];
    assert_eq!(page["text_source"], "text_layer", "{page}");
    assert_eq!(page["layer_check"]["trusted"], true, "{page}");
    assert!(page["timings"]["check_ms"].as_f64().unwrap() > 0.0);
}

#[test]
fn a_bad_document_fails_alone() {
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("notes.pdf");
    std::fs::write(&fake, "meeting notes, saved with the wrong name\n").unwrap();
    let out = dir.path().join("out");
    let run = ocr(&[&fake, &root().join("examples/welcome.pdf")], &out);
    // The run reports the failure, and the good document is still done.
    assert_eq!(run.status.code(), Some(1));
    let bad = json(&out.join("notes/result.json"));
    let error = bad["metrics"]["errors"][0].as_str().unwrap();
    assert!(
        error.contains("unsupported document type") && error.contains("text"),
        "{error}"
    );
    assert_eq!(bad["metrics"]["pages_processed"], 0);
    assert_eq!(bad["metrics"]["status"], "failed");
    let good = json(&out.join("welcome/result.json"));
    assert_eq!(good["metrics"]["pages_processed"], 1);
    assert!(good["metrics"]["total_words"].as_u64().unwrap() > 100);
}

#[test]
fn an_oversized_image_is_scaled_into_the_budget() {
    // The size of the upload that took down the cluster pagefleet replaces.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("large.png");
    let mut bytes = Vec::new();
    image::RgbImage::from_pixel(3068, 3835, image::Rgb([255, 255, 255]))
        .write_to(&mut Cursor::new(&mut bytes), image::ImageFormat::Png)
        .unwrap();
    std::fs::write(&file, bytes).unwrap();
    let out = dir.path().join("out");
    let run = ocr(&[&file], &out);
    assert!(run.status.success(), "{}", run.stderr);
    let page = &json(&out.join("large/result.json"))["pages"][0];
    let (w, h) = (
        page["width"].as_u64().unwrap(),
        page["height"].as_u64().unwrap(),
    );
    assert!(w * h <= 8_000_000 && w * h > 7_900_000, "{w}x{h}");
    assert!(page["scale"].as_f64().unwrap() < 1.0);
    assert_eq!(
        page["lines"].as_array().unwrap().len(),
        0,
        "a blank page has no text"
    );
}

#[test]
fn a_missing_runtime_names_the_files_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("nowhere");
    let run = pagefleet(&[
        "--home".as_ref(),
        home.as_os_str(),
        "ocr".as_ref(),
        "--out".as_ref(),
        dir.path().as_os_str(),
        root().join("examples/welcome.pdf").as_os_str(),
    ]);
    assert_eq!(run.status.code(), Some(1));
    let stderr = &run.stderr;
    assert!(
        stderr.contains("libpdfium.so") && stderr.contains("scripts/bootstrap"),
        "{stderr}"
    );
}

#[test]
fn an_upside_down_page_is_turned_by_either_classifier() {
    // The welcome page rendered, then turned 180°.
    let home = root().join(".pagefleet");
    let home = std::env::var_os("PAGEFLEET_HOME").map_or(home, std::path::PathBuf::from);
    let rasterizer = pagefleet_rasterizer::Rasterizer::new(&home.join("lib/libpdfium.so")).unwrap();
    let bytes = std::fs::read(root().join("examples/welcome.pdf")).unwrap();
    let mut image = None;
    rasterizer
        .pages(&bytes, &Default::default(), |page| {
            image = Some(page.map_err(|e| e.to_string())?.image);
            Ok(())
        })
        .unwrap();
    let turned = image::imageops::rotate180(&image.unwrap());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("turned.png");
    turned.save(&file).unwrap();
    let truth = std::fs::read_to_string(root().join("examples/welcome.txt")).unwrap();

    let read = |flags: &[&str]| {
        let out = dir.path().join(format!("out{}", flags.join("")));
        let mut args: Vec<&std::ffi::OsStr> = vec!["ocr".as_ref(), "--out".as_ref(), out.as_ref()];
        args.extend(flags.iter().map(|f| std::ffi::OsStr::new(*f)));
        args.push(file.as_os_str());
        let run = pagefleet(&args);
        assert!(run.status.success(), "{}", run.stderr);
        let text = std::fs::read_to_string(out.join("turned/001.txt")).unwrap();
        (
            Score::page(&text, &truth),
            json(&out.join("turned/result.json")),
        )
    };
    let (without, _) = read(&["--no-page-orientation"]);
    assert!(
        without.bow_f1() < 0.5,
        "upside-down text read without either classifier: F1 {}",
        without.bow_f1()
    );
    // With the page classifier (the default), or the line classifier alone,
    // the page is found upside down, turned, and read in order.
    for flags in [&[][..], &["--no-page-orientation", "--classify-lines"][..]] {
        let (with, result) = read(flags);
        assert!(with.cer() <= 0.01, "{flags:?}: CER {}", with.cer());
        let page = &result["pages"][0];
        assert_eq!(page["rotation"], 180, "{flags:?}");
        // The title's polygon is given in the page as submitted: near its
        // bottom, with the text's top-left corner to the bottom right of its
        // bottom-right.
        let title = &page["lines"][0]["polygon"];
        let height = page["height"].as_f64().unwrap();
        assert!(title[0][1].as_f64().unwrap() > 0.8 * height, "{title}");
        assert!(
            title[0][0].as_f64().unwrap() > title[2][0].as_f64().unwrap(),
            "{title}"
        );
    }
}

#[test]
fn the_main_command_takes_a_document_through_the_whole_pipeline() {
    // `pagefleet run`, as the README's quick start runs it, with its own
    // nats-server and a local store in a temporary data folder.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let data = dir.path().join("data");
    let run = pagefleet(&[
        "run".as_ref(),
        root().join("examples/welcome.pdf").as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
        "--data".as_ref(),
        data.as_os_str(),
        "--format".as_ref(),
        "md,hocr,alto".as_ref(),
        "--language".as_ref(),
        "en".as_ref(),
    ]);
    assert!(run.status.success(), "{}", run.stderr);
    let stdout = &run.stdout;
    assert!(
        stdout.contains("==> welcome page 1 <==") && stdout.contains("Welcome to pagefleet"),
        "{stdout}"
    );
    // The formats asked for, and result.json always; no other.
    for file in [
        "001.txt",
        "combined.md",
        "combined.hocr",
        "combined.alto.xml",
        "result.json",
    ] {
        assert!(out.join("welcome").join(file).is_file(), "{file} missing");
    }
    assert!(!out.join("welcome/combined.txt").exists());
    let text = std::fs::read_to_string(out.join("welcome/001.txt")).unwrap();
    let truth = std::fs::read_to_string(root().join("examples/welcome.txt")).unwrap();
    assert!(Score::page(&text, &truth).cer() <= 0.01);
    let result = json(&out.join("welcome/result.json"));
    assert_eq!(result["metrics"]["status"], "success");
    assert_eq!(result["metrics"]["total_pages"], 1);
    assert_eq!(result["metrics"]["language"], "en");
    // Standard error is a pipe here: no colour codes in the logs.
    assert!(!run.stderr.contains('\u{1b}'), "{}", run.stderr);
    let md = std::fs::read_to_string(out.join("welcome/combined.md")).unwrap();
    assert!(md.contains("\n# Welcome to pagefleet\n"), "{md}");

    // hOCR and ALTO parse as XML and hold result.json's words with their
    // boxes, in the same order.
    let boxes: Vec<(String, [i64; 4])> = result["pages"][0]["lines"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|l| l["words"].as_array().unwrap().iter())
        .map(|w| {
            let p = |i: usize, c: usize| w["polygon"][i][c].as_f64().unwrap();
            let xs = [p(0, 0), p(1, 0), p(2, 0), p(3, 0)];
            let ys = [p(0, 1), p(1, 1), p(2, 1), p(3, 1)];
            let (x0, x1) = (
                xs.iter().copied().fold(f64::MAX, f64::min),
                xs.iter().copied().fold(f64::MIN, f64::max),
            );
            let (y0, y1) = (
                ys.iter().copied().fold(f64::MAX, f64::min),
                ys.iter().copied().fold(f64::MIN, f64::max),
            );
            let bbox = [
                x0.floor() as i64,
                y0.floor() as i64,
                x1.ceil() as i64,
                y1.ceil() as i64,
            ];
            (w["text"].as_str().unwrap().to_owned(), bbox)
        })
        .collect();
    assert!(boxes.len() > 20, "{boxes:?}");
    let hocr = std::fs::read_to_string(out.join("welcome/combined.hocr")).unwrap();
    let options = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..Default::default()
    };
    let doc = roxmltree::Document::parse_with_options(&hocr, options).unwrap();
    let hocr_words: Vec<(String, [i64; 4])> = doc
        .descendants()
        .filter(|n| n.attribute("class") == Some("ocrx_word"))
        .map(|n| {
            let title = n.attribute("title").unwrap();
            let bbox: Vec<i64> = title
                .split(';')
                .next()
                .unwrap()
                .split_whitespace()
                .skip(1)
                .map(|v| v.parse().unwrap())
                .collect();
            (n.text().unwrap().to_owned(), bbox.try_into().unwrap())
        })
        .collect();
    assert_eq!(hocr_words, boxes);
    let alto = std::fs::read_to_string(out.join("welcome/combined.alto.xml")).unwrap();
    let doc = roxmltree::Document::parse(&alto).unwrap();
    let alto_words: Vec<(String, [i64; 4])> = doc
        .descendants()
        .filter(|n| n.tag_name().name() == "String")
        .map(|n| {
            let a = |k: &str| n.attribute(k).unwrap().parse::<i64>().unwrap();
            let (x, y) = (a("HPOS"), a("VPOS"));
            let bbox = [x, y, x + a("WIDTH"), y + a("HEIGHT")];
            (n.attribute("CONTENT").unwrap().to_owned(), bbox)
        })
        .collect();
    assert_eq!(alto_words, boxes);
}

/// A build without the `cuda` feature asked for a GPU provider says so,
/// rather than running on the CPU unnoticed.
#[cfg(not(feature = "cuda"))]
#[test]
fn gpu_providers_without_the_feature_are_a_clear_error() {
    for (provider, name) in [("cuda", "CUDA"), ("tensorrt", "TensorRT")] {
        let out = tempfile::tempdir().unwrap();
        let welcome = root().join("examples/welcome.pdf");
        let run = pagefleet(&[
            "ocr".as_ref(),
            "--execution-provider".as_ref(),
            provider.as_ref(),
            "--out".as_ref(),
            out.path().as_os_str(),
            welcome.as_os_str(),
        ]);
        assert!(!run.status.success(), "{provider}");
        let stderr = &run.stderr;
        assert!(stderr.contains(&format!("no {name} support")), "{stderr}");
        assert!(stderr.contains("--features cuda"), "{stderr}");
    }
}

/// The CPU sessions write ONNX Runtime's optimised graph to the temporary
/// folder to rewrite it; where that folder cannot be written, pages are read
/// all the same, by the ordinary sessions.
#[test]
fn a_temporary_folder_that_cannot_be_written_costs_no_page() {
    let out = tempfile::tempdir().unwrap();
    let welcome = root().join("examples/welcome.pdf");
    let run: Ran = pagefleet_command()
        .args([
            "ocr".as_ref(),
            "--out".as_ref(),
            out.path().as_os_str(),
            welcome.as_os_str(),
        ])
        .env("TMPDIR", out.path().join("missing"))
        .output()
        .unwrap()
        .into();
    assert_reads_welcome(&run, out.path());
}
