//! One page's recognition shared with the pool's idle slots.
//!
//! A slot reads a page from start to end, and recognition (three quarters of
//! a page's time on a CPU) is a list of independent line batches. When a
//! slot has no page to take, it takes batches of a page another slot is
//! recognising, with its own recognizer: the last pages of a run, and a lone
//! page, then use every core rather than one. Pages always come first: a
//! slot helps only while no page waits.
//!
//! The slot that owns the page takes batches too, longest first, and waits
//! for the ones others took. Every slot of a pool loads the same models, so
//! a batch reads the same wherever it runs; [`LineWork::key`] keeps a slot
//! with other models out all the same.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};

use image::RgbImage;

use super::EngineError;
use super::rec::Decoded;
use super::script::Script;

/// What decides how an engine reads a line batch: engines with equal keys
/// read any batch the same way, so one may take another's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ReaderKey {
    /// The recognizer's model file.
    pub(crate) rec: PathBuf,
    /// Its dictionary.
    pub(crate) dict: PathBuf,
    /// The classes its output layer keeps.
    pub(crate) script: Script,
    /// Whether its output is summarised inside the network.
    pub(crate) summary: bool,
    /// Whether batches have fixed shapes.
    pub(crate) buckets: bool,
    /// Most lines per batch.
    pub(crate) batch: usize,
}

/// Lines recognised in one model run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LineBatch {
    /// Indices of the lines, narrowest first.
    pub(crate) lines: Vec<usize>,
    /// With fixed shapes: the bucket's width and its batch size.
    pub(crate) bucket: Option<(u32, usize)>,
}

/// What recognising one line gives: its text and the fraction of its width
/// one output timestep covers.
pub(crate) type LineResult = (Decoded, f32);

/// A page's line batches, open to any slot with the same recognizer.
pub(crate) struct LineWork {
    pub(crate) images: Vec<RgbImage>,
    pub(crate) batches: Vec<LineBatch>,
    /// Which engines may take batches: those whose
    /// [`Engine::share_key`](super::Engine) is this.
    pub(crate) key: ReaderKey,
    /// The page's span, entered around batches run by other slots.
    pub(crate) span: tracing::Span,
    next: AtomicUsize,
    /// Set when the page failed or was stopped: nobody takes more batches.
    abandoned: AtomicBool,
    progress: Mutex<Progress>,
    finished: Condvar,
}

struct Progress {
    results: Vec<Option<LineResult>>,
    done: usize,
    error: Option<EngineError>,
}

impl LineWork {
    pub(crate) fn new(
        images: Vec<RgbImage>,
        batches: Vec<LineBatch>,
        key: ReaderKey,
        span: tracing::Span,
    ) -> Self {
        let lines = images.len();
        Self {
            images,
            batches,
            key,
            span,
            next: AtomicUsize::new(0),
            abandoned: AtomicBool::new(false),
            progress: Mutex::new(Progress {
                results: vec![None; lines],
                done: 0,
                error: None,
            }),
            finished: Condvar::new(),
        }
    }

    /// Whether batches are left to take.
    pub(crate) fn open(&self) -> bool {
        !self.abandoned.load(Ordering::SeqCst)
            && self.next.load(Ordering::SeqCst) < self.batches.len()
    }

    /// The next batch to run, widest first, if any is left. The batch must
    /// be handed back through [`Claim::finish`]; a claim dropped unfinished
    /// (its slot's thread unwinding) fails the page rather than leaving its
    /// owner waiting.
    pub(crate) fn claim(&self) -> Option<Claim<'_>> {
        if self.abandoned.load(Ordering::SeqCst) {
            return None;
        }
        let taken = self.next.fetch_add(1, Ordering::SeqCst);
        let index = self.batches.len().checked_sub(taken + 1)?;
        Some(Claim {
            work: self,
            index,
            finished: false,
        })
    }

    /// Stops the handing out of batches.
    pub(crate) fn abandon(&self) {
        self.abandoned.store(true, Ordering::SeqCst);
    }

    fn record(&self, index: usize, result: Result<Vec<LineResult>, EngineError>) {
        let Ok(mut progress) = self.progress.lock() else {
            return;
        };
        match result {
            Ok(lines) => {
                for (&line, result) in self.batches[index].lines.iter().zip(lines) {
                    progress.results[line] = Some(result);
                }
            }
            Err(e) => {
                self.abandon();
                progress.error.get_or_insert(e);
            }
        }
        progress.done += 1;
        self.finished.notify_all();
    }

    /// Every line's result, once every batch is back, or the first error
    /// as soon as there is one.
    pub(crate) fn wait(&self) -> Result<Vec<LineResult>, EngineError> {
        let poisoned = || EngineError::Runtime("a slot failed while recognising lines".into());
        let mut progress = self.progress.lock().map_err(|_| poisoned())?;
        while progress.error.is_none() && progress.done < self.batches.len() {
            progress = self.finished.wait(progress).map_err(|_| poisoned())?;
        }
        if let Some(e) = progress.error.take() {
            return Err(e);
        }
        let results = std::mem::take(&mut progress.results);
        results
            .into_iter()
            .map(|r| r.ok_or_else(poisoned))
            .collect()
    }
}

/// One batch taken from a [`LineWork`].
pub(crate) struct Claim<'a> {
    work: &'a LineWork,
    index: usize,
    finished: bool,
}

impl Claim<'_> {
    pub(crate) fn batch(&self) -> &LineBatch {
        &self.work.batches[self.index]
    }

    /// Hands the batch's outcome back.
    pub(crate) fn finish(mut self, result: Result<Vec<LineResult>, EngineError>) {
        self.finished = true;
        self.work.record(self.index, result);
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.work.record(
                self.index,
                Err(EngineError::Runtime(
                    "a slot stopped while recognising lines".into(),
                )),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn work(batches: usize) -> LineWork {
        let batches: Vec<LineBatch> = (0..batches)
            .map(|i| LineBatch {
                lines: vec![i],
                bucket: None,
            })
            .collect();
        let images = vec![RgbImage::new(1, 1); batches.len()];
        LineWork::new(images, batches, ReaderKey::default(), tracing::Span::none())
    }

    fn line(text: &str) -> LineResult {
        let decoded = Decoded {
            text: text.into(),
            ..Decoded::default()
        };
        (decoded, 1.0)
    }

    /// The texts of a finished page's lines, in line order.
    fn texts(work: &LineWork) -> Vec<String> {
        work.wait()
            .unwrap()
            .into_iter()
            .map(|(d, _)| d.text)
            .collect()
    }

    #[test]
    fn batches_go_out_widest_first_once_each() {
        let work = work(3);
        let mut taken = Vec::new();
        while let Some(claim) = work.claim() {
            taken.push(claim.index);
            let text = claim.index.to_string();
            claim.finish(Ok(vec![line(&text)]));
        }
        assert_eq!(taken, [2, 1, 0]);
        assert!(!work.open());
        assert_eq!(texts(&work), ["0", "1", "2"]);
    }

    #[test]
    fn a_failed_batch_fails_the_page_and_closes_the_work() {
        let work = work(3);
        let first = work.claim().unwrap();
        first.finish(Err(EngineError::Cancelled));
        assert!(work.claim().is_none());
        assert!(!work.open());
        assert!(matches!(work.wait(), Err(EngineError::Cancelled)));
    }

    #[test]
    fn a_claim_dropped_unfinished_fails_the_page_instead_of_hanging_it() {
        let work = work(2);
        drop(work.claim().unwrap());
        assert!(work.claim().is_none());
        let err = work.wait().unwrap_err();
        assert!(err.to_string().contains("stopped"), "{err}");
    }

    #[test]
    fn the_owner_waits_for_a_batch_another_thread_runs() {
        let work = std::sync::Arc::new(work(2));
        let helper = {
            let work = std::sync::Arc::clone(&work);
            std::thread::spawn(move || {
                let claim = work.claim().unwrap();
                std::thread::sleep(std::time::Duration::from_millis(50));
                claim.finish(Ok(vec![line("helped")]));
            })
        };
        // Let the helper take the wide batch first.
        while work.next.load(Ordering::SeqCst) == 0 {
            std::thread::yield_now();
        }
        work.claim().unwrap().finish(Ok(vec![line("own")]));
        assert_eq!(texts(&work), ["own", "helped"]);
        helper.join().unwrap();
    }
}
