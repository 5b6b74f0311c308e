//! Inference slots: engines on dedicated threads, fed by a bounded queue.
//!
//! Callers on any thread (or an async runtime) hand in a page and a reply
//! callback; they block, or await, only on the queue's bound, never on inference.
//! A slot with no page to take recognises lines of a page another slot is
//! reading (`engine::share`).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::sync_channel;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use image::RgbImage;
use pagefleet_schemas::PageOcr;

use crate::engine::{LineWork, PageIn, Stopper};
use crate::{Engine, EngineError};

/// Called with the outcome of one page, on the slot's thread.
pub type Reply = Box<dyn FnOnce(Result<PageOcr, EngineError>) + Send>;

struct Job {
    page: PageIn,
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

/// What the slots take work from: the pages waiting, and the pages whose
/// line batches any idle slot may recognise.
struct Board {
    state: Mutex<State>,
    /// Told of every new page, taken page, offered page of lines and
    /// stopped slot.
    changed: Condvar,
}

struct State {
    pages: VecDeque<Job>,
    /// Most pages waiting; a submit waits while this many do.
    bound: usize,
    /// Whether pages are still taken.
    open: bool,
    /// Slots serving.
    serving: usize,
    lines: Vec<Arc<LineWork>>,
}

impl Board {
    fn lock(&self) -> Result<MutexGuard<'_, State>, EngineError> {
        self.state
            .lock()
            .map_err(|_| EngineError::Runtime("an inference thread panicked".into()))
    }

    /// Offers a page's line batches to the idle slots.
    fn offer(&self, work: Arc<LineWork>) {
        if let Ok(mut state) = self.lock() {
            state.lines.retain(|w| w.open());
            state.lines.push(work);
            self.changed.notify_all();
        }
    }
}

/// Counts a slot out of the board when its thread ends, panicking or not.
struct Serving<'a>(&'a Board);

impl Drop for Serving<'_> {
    fn drop(&mut self) {
        // A poisoned lock still counts the slot out.
        let mut state = self.0.state.lock().unwrap_or_else(|e| e.into_inner());
        state.serving -= 1;
        self.0.changed.notify_all();
    }
}

/// A fixed number of engines, each on its own thread.
pub struct Pool {
    board: Arc<Board>,
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
        let board = Arc::new(Board {
            state: Mutex::new(State {
                pages: VecDeque::new(),
                bound: queue.max(1),
                open: true,
                serving: 0,
                lines: Vec::new(),
            }),
            changed: Condvar::new(),
        });
        let load = Arc::new(load);
        let mut threads = Vec::new();
        let (ready_tx, ready_rx) = sync_channel::<Result<(), EngineError>>(slots.max(1));
        for slot in 0..slots.max(1) {
            let board = Arc::clone(&board);
            let load = Arc::clone(&load);
            let ready = ready_tx.clone();
            let handle = std::thread::Builder::new()
                .name(format!("ocr-slot-{slot}"))
                .spawn(move || match load(slot) {
                    Ok(mut engine) => {
                        if let Ok(mut state) = board.lock() {
                            state.serving += 1;
                        }
                        let serving = Serving(&board);
                        let _ = ready.send(Ok(()));
                        drop(ready);
                        let offers = Arc::clone(&board);
                        engine.share_lines(Box::new(move |work| offers.offer(work)));
                        serve(engine, &board);
                        drop(serving);
                    }
                    Err(e) => {
                        let _ = ready.send(Err(e));
                    }
                })
                .map_err(|e| EngineError::Runtime(format!("cannot start inference thread: {e}")))?;
            threads.push(handle);
        }
        drop(ready_tx);
        let mut pool = Self { board, threads };
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

    /// Queues a page whose script each slot decides from the page
    /// ([`Reading::Auto`]), blocking while the queue is full.
    pub fn submit(&self, image: RgbImage, reply: Reply) -> Result<JobHandle, EngineError> {
        self.submit_page(PageIn::image(image), reply)
    }

    /// Queues a page to be read as its `reading` says, at its resolution,
    /// with its own text layer when it has one ([`Engine::read_page`]),
    /// blocking while the queue is full.
    ///
    /// [`Engine::read_page`]: crate::engine::Engine::read_page
    pub fn submit_page(&self, page: PageIn, reply: Reply) -> Result<JobHandle, EngineError> {
        let mut state = self.board.lock()?;
        loop {
            if !state.open {
                return Err(EngineError::Runtime("pool is shut down".into()));
            }
            if state.serving == 0 {
                return Err(EngineError::Runtime(
                    "every inference thread has stopped".into(),
                ));
            }
            if state.pages.len() < state.bound {
                break;
            }
            state = self
                .board
                .changed
                .wait(state)
                .map_err(|_| EngineError::Runtime("an inference thread panicked".into()))?;
        }
        let cancel = Arc::new(CancelState::default());
        state.pages.push_back(Job {
            page,
            reply,
            cancel: Arc::clone(&cancel),
            span: tracing::Span::current(),
        });
        self.board.changed.notify_all();
        Ok(JobHandle(cancel))
    }

    /// Stops taking pages, lets the slots finish what is queued, and joins them.
    pub fn shutdown(&mut self) {
        if let Ok(mut state) = self.board.lock() {
            state.open = false;
            self.board.changed.notify_all();
        }
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

/// What a slot does next.
enum Task {
    Page(Job),
    Lines(Arc<LineWork>),
}

/// The next task for `engine`: a waiting page first, else a batch of lines
/// it can recognise; `None` once the pool is shut down and no page waits.
fn next_task(engine: &Engine, board: &Board) -> Option<Task> {
    let mut state = board.lock().ok()?;
    loop {
        if let Some(job) = state.pages.pop_front() {
            // A submitter may be waiting for the room.
            board.changed.notify_all();
            return Some(Task::Page(job));
        }
        if !state.open {
            return None;
        }
        state.lines.retain(|w| w.open());
        if let Some(work) = state.lines.iter().find(|w| engine.can_help(w)) {
            return Some(Task::Lines(Arc::clone(work)));
        }
        state = board.changed.wait(state).ok()?;
    }
}

fn serve(mut engine: Engine, board: &Board) {
    loop {
        // Hold the lock only to take a task, not while inferring.
        let job = match next_task(&engine, board) {
            None => return,
            Some(Task::Lines(work)) => {
                // A stop meant for this slot's last page must not fail
                // another slot's; none can arrive now that it has ended.
                engine.stopper().reset();
                engine.help(&work);
                continue;
            }
            Some(Task::Page(job)) => job,
        };
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
            match job.span.in_scope(|| engine.read_page(job.page)) {
                // Also a page that ended while its last lines ran on other
                // slots, out of reach of its stopper.
                _ if job.cancel.cancelled.load(Ordering::SeqCst) => Err(EngineError::Cancelled),
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
        engine_with(Box::new(SaysAb(0.9)))
    }

    fn engine_with(rec: Box<dyn crate::engine::Model>) -> Result<Engine, EngineError> {
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
        Engine::from_models(config, Box::new(DarkIsText), rec, None, vocab)
    }

    /// Threads that ran a recognition, one entry a run.
    type Runs = Arc<Mutex<Vec<String>>>;

    /// Recognition double: [`SaysAb`], taking a few milliseconds a line,
    /// noting the thread of each run, and failing on lines wider than
    /// `fails_over` pixels.
    struct Noted {
        runs: Runs,
        fails_over: usize,
    }

    impl crate::engine::Model for Noted {
        fn input_shape(&self) -> [Option<usize>; 3] {
            [Some(3), Some(48), None]
        }
        fn run(
            &mut self,
            input: &ndarray::Array4<f32>,
        ) -> Result<ndarray::ArrayD<f32>, EngineError> {
            let thread = std::thread::current().name().unwrap_or("?").to_owned();
            self.runs.lock().unwrap().push(thread);
            if input.dim().3 > self.fails_over {
                return Err(EngineError::Runtime("this line breaks the double".into()));
            }
            std::thread::sleep(std::time::Duration::from_millis(3));
            SaysAb(0.9).run(input)
        }
    }

    fn noted_pool(slots: usize, fails_over: usize) -> (Pool, Runs) {
        let runs = Runs::default();
        let noted = Arc::clone(&runs);
        let pool = Pool::start(slots, slots, move |_| {
            engine_with(Box::new(Noted {
                runs: Arc::clone(&noted),
                fails_over,
            }))
        })
        .unwrap();
        // The load's own check of the recognizer is not a page's line.
        runs.lock().unwrap().clear();
        (pool, runs)
    }

    /// A page of `lines` dark bars, each `length` pixels long.
    fn page_of_lines(lines: u32, length: u32) -> RgbImage {
        let mut page =
            RgbImage::from_pixel(40 + length, 30 * lines + 20, image::Rgb([255, 255, 255]));
        for k in 0..lines {
            for y in (20 + 30 * k)..(32 + 30 * k) {
                for x in 20..(20 + length) {
                    page.put_pixel(x, y, image::Rgb([0, 0, 0]));
                }
            }
        }
        page
    }

    fn read(pool: &Pool, page: RgbImage) -> Result<PageOcr, EngineError> {
        let (tx, rx) = channel();
        pool.submit(page, Box::new(move |r| tx.send(r).unwrap()))
            .unwrap();
        rx.recv().unwrap()
    }

    #[test]
    fn an_idle_slot_recognises_lines_of_the_page_another_is_reading() {
        let (pool, runs) = noted_pool(2, usize::MAX);
        let ocr = read(&pool, page_of_lines(30, 100)).unwrap();
        assert_eq!(ocr.lines.len(), 30);
        assert!(ocr.lines.iter().all(|l| l.text == "ab"));
        let runs = runs.lock().unwrap().clone();
        assert_eq!(runs.len(), 30, "one run a line");
        for slot in ["ocr-slot-0", "ocr-slot-1"] {
            assert!(
                runs.iter().any(|t| t == slot),
                "{slot} ran none of {runs:?}"
            );
        }
        // One slot reads alone, line by line, to the same text.
        let (single, runs) = noted_pool(1, usize::MAX);
        let alone = read(&single, page_of_lines(30, 100)).unwrap();
        assert_eq!(alone.lines, ocr.lines);
        assert!(runs.lock().unwrap().iter().all(|t| t == "ocr-slot-0"));
    }

    #[test]
    fn a_line_failing_on_a_helping_slot_fails_its_page_and_no_other() {
        // Lines of 100 pixels are read; the one of 600 fails the double.
        let (pool, _) = noted_pool(2, 400);
        let mut bad = page_of_lines(20, 600);
        // Shorten all lines but the first to 100 pixels.
        for (x, y, px) in bad.enumerate_pixels_mut() {
            if y >= 50 && x >= 120 {
                *px = image::Rgb([255, 255, 255]);
            }
        }
        for _ in 0..3 {
            let err = read(&pool, bad.clone()).unwrap_err();
            assert!(err.to_string().contains("breaks the double"), "{err}");
            let good = read(&pool, page_of_lines(20, 100)).unwrap();
            assert_eq!(good.lines.len(), 20);
        }
    }

    #[test]
    fn a_page_cancelled_while_other_slots_read_its_lines_is_cancelled() {
        let (pool, _) = noted_pool(2, usize::MAX);
        let (tx, rx) = channel();
        let handle = pool
            .submit(
                page_of_lines(40, 100),
                Box::new(move |r| tx.send(r).unwrap()),
            )
            .unwrap();
        // The doubles cannot be stopped mid-run: the cancel lands while
        // both slots read the page's lines, and is still its answer.
        std::thread::sleep(std::time::Duration::from_millis(30));
        handle.cancel();
        assert!(matches!(rx.recv().unwrap(), Err(EngineError::Cancelled)));
        assert_eq!(read(&pool, page_of_lines(5, 100)).unwrap().lines.len(), 5);
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
