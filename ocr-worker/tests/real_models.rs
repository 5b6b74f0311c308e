//! The engine on the real models: cancelling a page frees its inference
//! slot at once, and a recognizer cut to Latin-script classes reads what the
//! whole one reads.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::mpsc::channel;
use std::time::{Duration, Instant};

use ndarray::{Array4, Axis, Ix2};
use pagefleet_ocr_worker::engine::{
    DEFAULT_REC_BATCH, Model, OrtModel, Provider, Script, SessionOptions, Vocabulary,
    cut_output_layer, load_runtime, summarize_steps,
};
use pagefleet_ocr_worker::{Engine, EngineConfig, EngineError, ModelSet, Pool, Profile};
use pagefleet_schemas::PixelBudget;
use pagefleet_schemas::language::Reading;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn home() -> PathBuf {
    std::env::var_os("PAGEFLEET_HOME").map_or_else(|| root().join(".pagefleet"), PathBuf::from)
}

fn library() -> PathBuf {
    home().join("lib/libonnxruntime.so.1.31.1")
}

fn config(profile: Profile) -> EngineConfig {
    EngineConfig {
        models: ModelSet::profile(&home().join("models"), profile),
        intra_threads: 1,
        provider: Provider::Cpu,
        classify_lines: false,
        budget: PixelBudget::default(),
        rec_batch: DEFAULT_REC_BATCH,
        rec_buckets: false,
        rec_summary: false,
    }
}

fn pool() -> Pool {
    let config = config(Profile::Fast);
    let library = library();
    Pool::start(1, 1, move |_| Engine::load(&library, config.clone())).unwrap()
}

fn sample_page() -> image::RgbImage {
    let samples = std::env::var_os("PAGEFLEET_SAMPLES")
        .map_or_else(|| root().join("../shared/samples"), PathBuf::from);
    image::open(samples.join("ltnews34-p2.png"))
        .unwrap()
        .into_rgb8()
}

/// A strip of `page` from row `top`: real text, at the recognizer's height,
/// as the recognizer's input.
fn strip(page: &image::RgbImage, top: u32) -> Array4<f32> {
    let strip = image::imageops::crop_imm(page, 100, top, 900, 60).to_image();
    let strip = image::imageops::resize(&strip, 720, 48, image::imageops::FilterType::Triangle);
    let mut input = Array4::<f32>::zeros((1, 3, 48, 720));
    for (x, y, px) in strip.enumerate_pixels() {
        for c in 0..3 {
            input[[0, 2 - c, y as usize, x as usize]] = px.0[c] as f32 / 127.5 - 1.0;
        }
    }
    input
}

#[test]
fn a_cancelled_page_frees_its_slot_at_once() {
    let pool = pool();
    let page = sample_page();
    let (tx, rx) = channel();

    // Uncancelled, for the time a page takes.
    let start = Instant::now();
    let tx1 = tx.clone();
    pool.submit(page.clone(), Box::new(move |r| tx1.send(r).unwrap()))
        .unwrap();
    let full = rx.recv().unwrap().unwrap();
    let full_time = start.elapsed();
    assert!(full.lines.len() > 50);

    // Cancelled shortly after it started.
    let start = Instant::now();
    let tx2 = tx.clone();
    let handle = pool
        .submit(page.clone(), Box::new(move |r| tx2.send(r).unwrap()))
        .unwrap();
    std::thread::sleep(full_time / 5);
    handle.cancel();
    let cancelled = rx.recv().unwrap();
    let cancel_time = start.elapsed();
    assert!(
        matches!(cancelled, Err(EngineError::Cancelled)),
        "{cancelled:?}"
    );
    eprintln!("full page {full_time:?}, cancelled page answered after {cancel_time:?}");
    assert!(cancel_time < full_time / 5 + (full_time / 2).max(Duration::from_millis(300)));

    // The slot reads the next page as if nothing happened.
    pool.submit(page, Box::new(move |r| tx.send(r).unwrap()))
        .unwrap();
    let again = rx.recv().unwrap().unwrap();
    assert_eq!(again.text(), full.text());
}

#[test]
fn the_latin_head_gives_the_whole_heads_probabilities_over_its_classes() {
    let env = load_runtime(&library()).unwrap();
    let models = ModelSet::profile(&home().join("models"), Profile::Fast);
    let options = SessionOptions {
        intra_threads: 1,
        provider: Provider::Cpu,
        shapes: None,
        elementwise_on_blocked: false,
    };
    let dict = std::fs::read_to_string(&models.dict).unwrap();
    let vocab = Vocabulary::from_dict(&dict, true);
    let classes = vocab.classes_of(Script::Latin);
    // A few hundred classes of the 6,906, the blank first and the space last.
    assert!((300..800).contains(&classes.len()), "{}", classes.len());
    assert_eq!(
        (classes[0], classes[classes.len() - 1]),
        (0, vocab.classes() - 1)
    );

    let bytes = std::fs::read(&models.rec).unwrap();
    let cut = cut_output_layer(&bytes, vocab.classes(), &classes).unwrap();
    let mut whole = OrtModel::load(env, &models.rec, options, "recognize").unwrap();
    let mut latin =
        OrtModel::load_from(env, &models.rec, Some(&cut), options, "recognize").unwrap();

    let input = strip(&sample_page(), 200);
    let all = whole.run(&input).unwrap();
    let some = latin.run(&input).unwrap();
    assert_eq!(all.shape()[..2], some.shape()[..2]);
    assert_eq!(some.shape()[2], classes.len());
    // The same logits, so the softmax over fewer classes is the whole one's
    // renormalised over them.
    let (all, some) = (all.index_axis(Axis(0), 0), some.index_axis(Axis(0), 0));
    for (a, s) in all.outer_iter().zip(some.outer_iter()) {
        let kept: f32 = classes.iter().map(|&c| a[c]).sum();
        for (k, &c) in classes.iter().enumerate() {
            let want = a[c] / kept;
            assert!(
                (s[k] - want).abs() < 1e-4,
                "class {c}: {} against {want}",
                s[k]
            );
        }
    }
}

#[test]
fn the_latin_head_reads_a_latin_page_as_the_whole_one_does_and_auto_picks_it() {
    let page = sample_page();
    let mut engine = Engine::load(&library(), config(Profile::Fast)).unwrap();
    let whole = engine.recognize_as(&page, Reading::All).unwrap();
    let latin = engine.recognize_as(&page, Reading::Latin).unwrap();
    // `auto` finds no CJK in the page's sample and reads it as `Latin` does.
    let auto = engine.recognize(&page).unwrap();
    let texts = |ocr: &pagefleet_schemas::PageOcr| {
        ocr.lines.iter().map(|l| l.text.clone()).collect::<Vec<_>>()
    };
    assert_eq!(texts(&auto), texts(&latin));
    assert!(auto.timings.sample_ms > 0.0, "{:?}", auto.timings);
    assert_eq!(latin.timings.sample_ms, 0.0);
    assert!(whole.lines.len() > 50);
    let mut same = 0;
    for line in &whole.lines {
        let Some(other) = latin.lines.iter().find(|l| l.polygon == line.polygon) else {
            continue;
        };
        if other.text == line.text {
            same += 1;
        } else {
            // Where they differ, the whole recognizer read a character the
            // Latin one cannot emit: the confusion the cut removes.
            assert!(
                line.text
                    .chars()
                    .any(|c| !Script::Latin.keeps(&c.to_string())),
                "{:?} read as {:?}",
                line.text,
                other.text
            );
        }
    }
    assert!(
        same * 100 >= whole.lines.len() * 95,
        "{same} of {} lines read the same",
        whole.lines.len()
    );
}

#[test]
fn the_step_summary_decodes_as_the_whole_output_does() {
    let env = load_runtime(&library()).unwrap();
    let options = SessionOptions {
        intra_threads: 1,
        provider: Provider::Cpu,
        shapes: None,
        elementwise_on_blocked: false,
    };
    for profile in [Profile::Fast, Profile::FastLatin] {
        let models = ModelSet::profile(&home().join("models"), profile);
        let dict = std::fs::read_to_string(&models.dict).unwrap();
        let mut vocab = Vocabulary::from_dict(&dict, true);
        let mut bytes = std::fs::read(&models.rec).unwrap();
        if profile.script() == Script::Latin {
            let classes = vocab.classes_of(Script::Latin);
            bytes = cut_output_layer(&bytes, vocab.classes(), &classes).unwrap();
            vocab = vocab.subset(&classes);
        }
        let summary = summarize_steps(&bytes, vocab.space_class()).unwrap();
        let mut whole =
            OrtModel::load_from(env, &models.rec, Some(&bytes), options, "recognize").unwrap();
        let mut steps =
            OrtModel::load_from(env, &models.rec, Some(&summary), options, "recognize").unwrap();
        let page = sample_page();
        let mut lines = 0;
        for y in (200..1400).step_by(150) {
            let input = strip(&page, y);
            let all = whole.run(&input).unwrap();
            let few = steps.run(&input).unwrap();
            assert_eq!(few.shape(), [1, all.shape()[1], 4], "{profile}");
            let (all, few) = (all.index_axis(Axis(0), 0), few.index_axis(Axis(0), 0));
            let (all, few) = (
                all.into_dimensionality::<Ix2>().unwrap(),
                few.into_dimensionality::<Ix2>().unwrap(),
            );
            for (a, s) in all.outer_iter().zip(few.outer_iter()) {
                let best = s[0] as usize;
                assert_eq!(a[best], s[1], "the best class's probability");
                assert!(a.iter().all(|&p| p <= s[1]), "a class above the best");
                assert!(a.iter().take(best).all(|&p| p < s[1]), "not the first best");
                assert_eq!(s[2], a[vocab.space_class().unwrap()]);
                assert_eq!(s[3] as usize, vocab.classes());
            }
            let decoded = vocab.decode(all.view());
            assert_eq!(vocab.decode_summary(few.view()), decoded, "{profile}");
            lines += usize::from(!decoded.text.is_empty());
        }
        assert!(lines >= 6, "{profile}: only {lines} strips had text");
    }
}

#[test]
fn an_engine_with_the_step_summary_reads_a_page_as_without() {
    let page = sample_page();
    let read = |rec_summary| {
        let config = EngineConfig {
            rec_summary,
            ..config(Profile::FastLatin)
        };
        let mut engine = Engine::load(&library(), config).unwrap();
        engine.recognize(&page).unwrap()
    };
    let (whole, summary) = (read(false), read(true));
    assert!(whole.lines.len() > 50);
    assert_eq!(summary.lines, whole.lines);
}

#[test]
fn elementwise_operators_on_blocked_tensors_change_no_output() {
    let env = load_runtime(&library()).unwrap();
    let models = ModelSet::profile(&home().join("models"), Profile::Fast);
    let load = |path: &std::path::Path, step, elementwise_on_blocked| {
        let options = SessionOptions {
            intra_threads: 1,
            provider: Provider::Cpu,
            shapes: None,
            elementwise_on_blocked,
        };
        OrtModel::load(env, path, options, step).unwrap()
    };
    let page = sample_page();
    let mut det_input = Array4::<f32>::zeros((1, 3, 640, 480));
    let small = image::imageops::resize(&page, 480, 640, image::imageops::FilterType::Triangle);
    for (x, y, px) in small.enumerate_pixels() {
        for c in 0..3 {
            det_input[[0, c, y as usize, x as usize]] = px.0[c] as f32 / 255.0;
        }
    }
    for (path, step, input) in [
        (&models.det, "detect", det_input),
        (&models.rec, "recognize", strip(&page, 200)),
    ] {
        let mut plain = load(path, step, false);
        let mut blocked = load(path, step, true);
        assert_eq!(plain.reorders_removed(), 0);
        // The GELUs' reorders go: about twenty a network.
        assert!(
            blocked.reorders_removed() >= 10,
            "{step}: {}",
            blocked.reorders_removed()
        );
        let (a, b) = (plain.run(&input).unwrap(), blocked.run(&input).unwrap());
        assert_eq!(a.shape(), b.shape());
        let worst = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max);
        assert!(worst <= 1e-6, "{step}: outputs differ by {worst}");
    }
}

/// The detector, noting the size of every input it is given.
struct Sizes(
    OrtModel,
    std::sync::Arc<std::sync::Mutex<Vec<(usize, usize)>>>,
);

impl Model for Sizes {
    fn input_shape(&self) -> [Option<usize>; 3] {
        self.0.input_shape()
    }

    fn run(&mut self, input: &Array4<f32>) -> Result<ndarray::ArrayD<f32>, EngineError> {
        self.1.lock().unwrap().push((input.dim().3, input.dim().2));
        self.0.run(input)
    }
}

#[test]
fn detection_cropped_to_the_ink_finds_the_lines_of_the_whole_page() {
    // The sample page, and the same page with its left column painted
    // white (the gutter is at x = 610-635), so that the crop starts far
    // inside the page.
    let page = sample_page();
    let mut right = page.clone();
    for (x, _, px) in right.enumerate_pixels_mut() {
        if x < 620 {
            *px = image::Rgb([255, 255, 255]);
        }
    }
    let env = load_runtime(&library()).unwrap();
    let dict = std::fs::read_to_string(config(Profile::Fast).models.dict).unwrap();
    let options = SessionOptions {
        intra_threads: 1,
        provider: Provider::Cpu,
        shapes: None,
        elementwise_on_blocked: true,
    };
    let read = |page: &image::RgbImage, crop_to_ink| {
        let mut config = config(Profile::Fast);
        config.models.det_params.crop_to_ink = crop_to_ink;
        let sizes = std::sync::Arc::default();
        let det = OrtModel::load(env, &config.models.det, options, "detect").unwrap();
        let rec = OrtModel::load(env, &config.models.rec, options, "recognize").unwrap();
        let det = Box::new(Sizes(det, std::sync::Arc::clone(&sizes)));
        let vocab = Vocabulary::from_dict(&dict, true);
        let mut engine = Engine::from_models(config, det, Box::new(rec), None, vocab).unwrap();
        let ocr = engine.recognize(page).unwrap();
        let sizes = sizes.lock().unwrap().clone();
        (ocr, sizes)
    };
    for (page, cut_size) in [(&page, (928, 1184)), (&right, (512, 1184))] {
        let (whole, whole_sizes) = read(page, false);
        let (cut, cut_sizes) = read(page, true);
        // A letter page at 200 DPI is detected at 992 × 1280.
        assert_eq!(whole_sizes, [(992, 1280)]);
        assert_eq!(cut_sizes, [cut_size]);
        assert!(whole.lines.len() > 20, "{} lines", whole.lines.len());
        assert_eq!(cut.lines.len(), whole.lines.len());
        // The network's output over text moves a little with what it sees
        // of the page (a far pixel still reaches every output through the
        // deepest layers), which turns a few nearly level boxes by a degree
        // and changes a character in a few lines. A box in the wrong place
        // would be off by the crop's offset: hundreds of pixels.
        let mut same = 0;
        for (a, b) in whole.lines.iter().zip(&cut.lines) {
            same += usize::from(a.text == b.text);
            for (pa, pb) in a.polygon.iter().zip(&b.polygon) {
                let moved = (pa[0] - pb[0]).abs().max((pa[1] - pb[1]).abs());
                assert!(moved <= 6.0, "{:?} moved to {:?}", a.polygon, b.polygon);
            }
        }
        assert!(
            same * 100 >= whole.lines.len() * 95,
            "{same} of {} lines read the same",
            whole.lines.len()
        );
    }
}
