//! Cancelling a page on the real models frees its inference slot at once, and
//! the slot reads the next page normally.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::mpsc::channel;
use std::time::{Duration, Instant};

use pagefleet_ocr_worker::engine::DEFAULT_REC_BATCH;
use pagefleet_ocr_worker::{Engine, EngineConfig, EngineError, ModelSet, Pool, Profile};
use pagefleet_schemas::PixelBudget;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn pool() -> Pool {
    let home =
        std::env::var_os("PAGEFLEET_HOME").map_or_else(|| root().join(".pagefleet"), PathBuf::from);
    let config = EngineConfig {
        models: ModelSet::profile(&home.join("models"), Profile::Fast),
        intra_threads: 1,
        provider: pagefleet_ocr_worker::engine::Provider::Cpu,
        classify_lines: false,
        budget: PixelBudget::default(),
        rec_batch: DEFAULT_REC_BATCH,
    };
    let library = home.join("lib/libonnxruntime.so.1.31.1");
    Pool::start(1, 1, move |_| Engine::load(&library, config.clone())).unwrap()
}

fn sample_page() -> image::RgbImage {
    let samples = std::env::var_os("PAGEFLEET_SAMPLES")
        .map_or_else(|| root().join("../shared/samples"), PathBuf::from);
    image::open(samples.join("ltnews34-p2.png"))
        .unwrap()
        .into_rgb8()
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
