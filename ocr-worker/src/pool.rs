//! Inference slots: engines on dedicated threads, fed by a bounded queue.
//!
//! Callers on any thread (or an async runtime) hand in a page and a reply
//! callback; they block, or await, only on the queue's bound, never on inference.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use image::RgbImage;
use pagefleet_schemas::PageOcr;

use crate::engine::Stopper;
use crate::{Engine, EngineError};

/// Called with the outcome of one page, on the slot's thread.
pub type Reply = Box<dyn FnOnce(Result<PageOcr, EngineError>) + Send>;

struct Job {
    image: RgbImage,
    reply: Reply,
    cancel: Arc<CancelState>,
    /// The submitter's span, re-entered on the slot's thread so the model
    /// steps are its children.
    span: tracing::Span,
}

#[derive(Default)]
struct CancelState {
    cancelled: AtomicBool,
    /// The engine reading the page, while it does.
    running_on: Mutex<Option<Stopper>>,
    /// Told when a slot starts reading the page.
    started: tokio::sync::Notify,
}

/// Cancels one submitted page: before it starts it is skipped, while it runs
/// ONNX Runtime stops it at its next operator; either way its reply is an
/// [`EngineError::Cancelled`]. The slot is free again at once.
#[derive(Clone)]
pub struct JobHandle(Arc<CancelState>);

impl std::fmt::Debug for JobHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobHandle")
            .field("cancelled", &self.0.cancelled.load(Ordering::SeqCst))
            .finish()
    }
}

impl JobHandle {
    /// Cancels the page.
    pub fn cancel(&self) {
        self.0.cancelled.store(true, Ordering::SeqCst);
        if let Ok(running) = self.0.running_on.lock()
            && let Some(stopper) = running.as_ref()
        {
            stopper.stop();
        }
    }

    /// Completes once a slot has started reading the page (at once if it has).
    pub async fn started(&self) {
        self.0.started.notified().await;
    }
}

/// A fixed number of engines, each on its own thread.
pub struct Pool {
    queue: Option<SyncSender<Job>>,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("slots", &self.threads.len())
            .finish()
    }
}

impl Pool {
    /// Starts `slots` threads, each loading its engine with `load`. Returns once
    /// every engine is loaded, or the first load error. At most `queue` pages
    /// wait beyond those being processed.
    pub fn start(
        slots: usize,
        queue: usize,
        load: impl Fn(usize) -> Result<Engine, EngineError> + Send + Sync + 'static,
    ) -> Result<Self, EngineError> {
        let (tx, rx) = sync_channel::<Job>(queue);
        let rx = Arc::new(Mutex::new(rx));
        let load = Arc::new(load);
        let mut threads = Vec::new();
        let (ready_tx, ready_rx) = sync_channel::<Result<(), EngineError>>(slots.max(1));
        for slot in 0..slots.max(1) {
            let rx = Arc::clone(&rx);
            let load = Arc::clone(&load);
            let ready = ready_tx.clone();
            let handle = std::thread::Builder::new()
                .name(format!("ocr-slot-{slot}"))
                .spawn(move || match load(slot) {
                    Ok(engine) => {
                        let _ = ready.send(Ok(()));
                        drop(ready);
                        serve(engine, &rx);
                    }
                    Err(e) => {
                        let _ = ready.send(Err(e));
                    }
                })
                .map_err(|e| EngineError::Runtime(format!("cannot start inference thread: {e}")))?;
            threads.push(handle);
        }
        drop(ready_tx);
        let mut pool = Self {
            queue: Some(tx),
            threads,
        };
        for _ in 0..slots.max(1) {
            match ready_rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    pool.shutdown();
                    return Err(e);
                }
                Err(_) => {
                    pool.shutdown();
                    return Err(EngineError::Runtime(
                        "an inference thread died while loading".into(),
                    ));
                }
            }
        }
        Ok(pool)
    }

    /// Number of inference slots.
    pub fn slots(&self) -> usize {
        self.threads.len()
    }

    /// Queues a page, blocking while the queue is full.
    pub fn submit(&self, image: RgbImage, reply: Reply) -> Result<JobHandle, EngineError> {
        let queue = self
            .queue
            .as_ref()
            .ok_or_else(|| EngineError::Runtime("pool is shut down".into()))?;
        let cancel = Arc::new(CancelState::default());
        queue
            .send(Job {
                image,
                reply,
                cancel: Arc::clone(&cancel),
                span: tracing::Span::current(),
            })
            .map_err(|_| EngineError::Runtime("every inference thread has stopped".into()))?;
        Ok(JobHandle(cancel))
    }

    /// Stops taking pages, lets the slots finish what is queued, and joins them.
    pub fn shutdown(&mut self) {
        self.queue = None;
        for handle in self.threads.drain(..) {
            let _ = handle.join();
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn serve(mut engine: Engine, rx: &Mutex<Receiver<Job>>) {
    loop {
        // Hold the lock only to take a job, not while inferring.
        let job = match rx.lock() {
            Ok(guard) => guard.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        let stopper = engine.stopper();
        // A stop left over from a cancelled page must not reach this one;
        // resetting before the page is registered means a cancel that arrives
        // from now on is not lost.
        stopper.reset();
        match job.cancel.running_on.lock() {
            Ok(mut running) => *running = Some(stopper),
            Err(_) => continue,
        }
        // A permit is kept if nobody waits yet: a later wait returns at once.
        job.cancel.started.notify_one();
        let result = if job.cancel.cancelled.load(Ordering::SeqCst) {
            Err(EngineError::Cancelled)
        } else {
            match job.span.in_scope(|| engine.recognize(&job.image)) {
                Err(_) if job.cancel.cancelled.load(Ordering::SeqCst) => {
                    Err(EngineError::Cancelled)
                }
                other => other,
            }
        };
        if let Ok(mut running) = job.cancel.running_on.lock() {
            *running = None;
        }
        (job.reply)(result);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EngineConfig;
    use crate::engine::doubles::{DarkIsText, SaysAb};
    use crate::engine::{ModelSet, Profile, Vocabulary};
    use pagefleet_schemas::PixelBudget;
    use std::sync::mpsc::channel;

    fn engine() -> Result<Engine, EngineError> {
        let config = EngineConfig {
            models: ModelSet::profile(std::path::Path::new("/unused"), Profile::Fast),
            intra_threads: 1,
            provider: crate::engine::Provider::Cpu,
            classify_lines: false,
            budget: PixelBudget::new(1_000_000),
            rec_batch: 1,
            rec_buckets: false,
            rec_summary: false,
        };
        let vocab = Vocabulary::from_dict("a\nb\n", true);
        Engine::from_models(
            config,
            Box::new(DarkIsText),
            Box::new(SaysAb(0.9)),
            None,
            vocab,
        )
    }

    #[test]
    fn every_page_gets_exactly_one_reply() {
        let pool = Pool::start(2, 1, |_| engine()).unwrap();
        assert_eq!(pool.slots(), 2);
        let (tx, rx) = channel();
        for i in 0..6u32 {
            let tx = tx.clone();
            let mut page = RgbImage::from_pixel(200, 100, image::Rgb([255, 255, 255]));
            for x in 10..190 {
                for y in 40..(50 + i) {
                    page.put_pixel(x, y, image::Rgb([0, 0, 0]));
                }
            }
            pool.submit(page, Box::new(move |r| tx.send((i, r)).unwrap()))
                .unwrap();
        }
        drop(tx);
        let mut got: Vec<(u32, usize)> = rx
            .iter()
            .map(|(i, r)| (i, r.unwrap().lines.len()))
            .collect();
        got.sort();
        assert_eq!(got, (0..6).map(|i| (i, 1)).collect::<Vec<_>>());
    }

    #[test]
    fn a_failed_load_is_reported_and_nothing_leaks() {
        let err = Pool::start(3, 1, |slot| {
            if slot == 1 {
                Err(EngineError::Runtime("no library".into()))
            } else {
                engine()
            }
        })
        .unwrap_err();
        assert!(err.to_string().contains("no library"));
    }
}
