//! The one way a stage consumes a JetStream work queue.
//!
//! A [`Driver`] pulls batches from a durable pull consumer until shutdown,
//! decodes each message, runs the stage's [`Handler`] on it with progress acks
//! on a timer, and turns the outcome into what the queue must do:
//!
//! | outcome | the queue |
//! | --- | --- |
//! | [`Handled::Done`] | acknowledged |
//! | [`Handled::Dropped`] | terminated: the message is gone, by design |
//! | [`FaultKind::Transient`] | kept: the driver retries in place with capped exponential backoff, sending progress acks, and pulls nothing new meanwhile; no delivery is used up |
//! | [`FaultKind::Permanent`] | [`Handler::give_up`] records the failure, then terminated |
//! | [`FaultKind::Bug`] | handed back (nak with a delay): it uses up one of `max_deliver` deliveries, like a crash |
//!
//! Every ack, nak and term is confirmed by the server and sent again while
//! no answer comes ([`confirm`]): one lost with a consumer's leader would
//! leave its message to wait out the ack wait.
//!
//! Only crashes, hangs and bugs use up deliveries: an outage of the store or
//! of NATS is waited out with the message in hand. Errors fetching from the
//! consumer are retried with backoff and jitter, logged once when they start
//! and once when they end, and a consumer or stream found missing after
//! them is set up again, so a NATS server that restarted without its store
//! is repopulated.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, AckKind};
use futures::StreamExt;
use tokio::sync::Semaphore;
use tracing::{Instrument, debug, error, info, warn};

use crate::topology::{self, ConsumerSettings, TopologyConfig};

/// How the handling of a message ended well.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    /// Its work is done and published: acknowledge it.
    Done,
    /// It is dropped on purpose (a cancelled job, a failure already recorded):
    /// terminate it.
    Dropped,
}

/// What the queue should do with a message whose handling failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// Something the stage depends on failed (the store, NATS): another try,
    /// no sooner than `retry_after`, can succeed.
    Transient {
        /// The shortest wait before the next try.
        retry_after: Duration,
    },
    /// The message can never succeed (a corrupt document, a missing object,
    /// a page over its deadline): its failure is recorded and it is removed.
    Permanent,
    /// The stage itself failed: another delivery, maybe to another process,
    /// may succeed, but it counts like a crash.
    Bug,
}

/// An error of a stage that says which [`FaultKind`] it is.
pub trait Fault: std::error::Error + Send + Sync + 'static {
    /// What the queue should do about it.
    fn kind(&self) -> FaultKind;
}

/// Delay of a transient fault's first retry unless it says otherwise.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);

/// How long past its expiry a pull may go without the server ending it. A
/// pull request lost with a connection (the server restarted while it
/// waited) is never answered: it is given up and asked again.
const PULL_GRACE: Duration = Duration::from_secs(5);

/// Delay before a message handed back after a bug is delivered again.
pub const BUG_REDELIVERY: Duration = Duration::from_secs(5);

/// How long one ack, nak or term waits for the server's answer before it is
/// sent again.
const ACK_ANSWER: Duration = Duration::from_secs(2);

/// How long the answer to an ack, nak or term is waited for once the stage
/// is stopping.
const SHUTDOWN_SETTLE: Duration = Duration::from_secs(5);

/// Sends `kind` for a message and waits for the server to answer, sending
/// it again with backoff while no answer comes, for up to `within`.
///
/// Acks go to the consumer's leader. One lost with a leader (it died, or
/// none was elected yet: "no responders") would leave the message to wait
/// out its whole ack wait and be read again; a nak lost that way delays a
/// retry by the ack wait instead of the nak's delay.
pub async fn confirm(
    msg: &jetstream::Message,
    kind: AckKind,
    within: Duration,
) -> Result<(), ConfirmError> {
    let Some(reply) = msg.reply.clone() else {
        return Err(ConfirmError("not a JetStream message".into()));
    };
    let client = msg.context.client();
    let backoff = Backoff {
        first: Duration::from_millis(100),
        max: Duration::from_secs(2),
    };
    let deadline = Instant::now() + within;
    let mut failures = 0u32;
    loop {
        let answer =
            tokio::time::timeout(ACK_ANSWER, client.request(reply.clone(), kind.into())).await;
        let why = match answer {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {ACK_ANSWER:?}"),
        };
        failures += 1;
        metrics::counter!("pagefleet_ack_retries_total").increment(1);
        let wait = backoff.wait(failures, Duration::ZERO);
        if Instant::now() + wait >= deadline {
            return Err(ConfirmError(format!("{why} ({failures} tries)")));
        }
        tokio::time::sleep(wait).await;
    }
}

/// An ack, nak or term the server never confirmed.
#[derive(Debug, thiserror::Error)]
#[error("not confirmed: {0}")]
pub struct ConfirmError(String);

/// One delivery of a message.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The message's subject.
    pub subject: String,
    /// How often it was delivered, this time included.
    pub deliveries: u64,
    /// Its headers (the trace context).
    pub headers: Option<async_nats::HeaderMap>,
}

/// A stage's work on one kind of message.
pub trait Handler: Send + Sync + 'static {
    /// The decoded message.
    type Job: Send + Sync + 'static;
    /// The stage's error.
    type Error: Fault;

    /// Decodes a message; an error drops it (terminated, logged).
    fn decode(&self, payload: &[u8]) -> Result<Self::Job, Self::Error>;

    /// The span the message's handling, retries and acks are logged in.
    fn span(&self, job: &Self::Job, delivery: &Delivery) -> tracing::Span;

    /// Does the work. Called again after a transient fault.
    fn handle(
        &self,
        job: &Self::Job,
        delivery: &Delivery,
    ) -> impl Future<Output = Result<Handled, Self::Error>> + Send;

    /// Records that the job failed for good (a page failure, a failed
    /// manifest). Called again after a transient fault of its own.
    fn give_up(
        &self,
        job: &Self::Job,
        delivery: &Delivery,
        error: &Self::Error,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        let _ = (job, delivery, error);
        async { Ok(()) }
    }
}

/// Capped exponential backoff.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// The first wait.
    pub first: Duration,
    /// The longest wait.
    pub max: Duration,
}

/// Doubling from 0.5 s to 2 s: a retry that fails costs next to nothing (a
/// pull, a publish or a store request answered at once with an error), and
/// a stage must resume within seconds of what it waited for coming back (a
/// new leader, a quorum, the store).
impl Default for Backoff {
    fn default() -> Self {
        Self {
            first: Duration::from_millis(500),
            max: Duration::from_secs(2),
        }
    }
}

impl Backoff {
    /// The wait after `failures` failures in a row (1 for the first), at
    /// least `floor`, with up to a quarter of jitter so that many stages do
    /// not retry in step.
    pub fn wait(&self, failures: u32, floor: Duration) -> Duration {
        let exp = self
            .first
            .saturating_mul(1u32 << failures.saturating_sub(1).min(16));
        let base = exp.min(self.max).max(floor);
        base + base.mul_f64(jitter() * 0.25)
    }
}

/// A number in [0, 1) that differs between calls and processes.
fn jitter() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// The consumer a driver pulls from.
#[derive(Debug, Clone)]
pub struct ConsumerSpec {
    /// Its stream.
    pub stream: String,
    /// Its durable name.
    pub name: String,
    /// Its filter subject.
    pub filter: String,
    /// Its settings.
    pub settings: ConsumerSettings,
}

/// Pulls one consumer and hands its messages to a handler.
#[derive(Debug, Clone)]
pub struct Driver {
    /// What the messages are, for logs ("page job").
    pub what: &'static str,
    /// Messages handled at once.
    pub concurrency: usize,
    /// Most messages asked for in one pull.
    pub batch: usize,
    /// How long one pull waits for messages.
    pub expires: Duration,
    /// Backoff of in-place retries and of fetch errors.
    pub backoff: Backoff,
    /// Longest one attempt at a message may run. Past it the attempt is
    /// taken to hang: it is dropped, progress acks stop, and the message is
    /// left to JetStream, which delivers it again after its ack wait (a hang
    /// uses up a delivery, like a crash). `None` for no limit.
    pub attempt_limit: Option<Duration>,
}

/// An error that stops a driver: its consumer could not be set up at all.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct DriverError(#[from] topology::TopologyError);

/// The messages in hand that wait out a transient fault (an outage of the
/// store or of NATS). The driver logs an outage once as it starts (the
/// first message to wait) and once as it ends (the last one through), with
/// its length and retries, however many messages wait through it.
#[derive(Debug, Default)]
struct Outages {
    waiting: AtomicUsize,
    /// When the outage began, and the retries since.
    current: std::sync::Mutex<Option<(Instant, u64)>>,
}

impl Outages {
    /// Whether any message waits.
    fn any(&self) -> bool {
        self.waiting.load(Ordering::SeqCst) > 0
    }

    /// A message starts waiting out `fault`.
    fn begin(&self, what: &str, fault: &dyn std::fmt::Display) {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if self.waiting.fetch_add(1, Ordering::SeqCst) == 0 {
            *current = Some((Instant::now(), 0));
            warn!("{what}s wait for a transient fault to clear: {fault}");
        } else {
            debug!("a {what} waits for a transient fault to clear: {fault}");
        }
    }

    /// A waiting message is tried again.
    fn retry(&self, what: &'static str) {
        if let Some((_, retries)) = self
            .current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
        {
            *retries += 1;
        }
        metrics::counter!("pagefleet_transient_retries_total", "what" => what).increment(1);
    }

    /// A message waits no more (it went through, failed for good, or was
    /// let go).
    fn end(&self, what: &str) {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if self.waiting.fetch_sub(1, Ordering::SeqCst) == 1
            && let Some((since, retries)) = current.take()
        {
            info!(
                retries,
                "{what}s go through again: the transient fault cleared after {:.1} s",
                since.elapsed().as_secs_f64()
            );
        }
    }
}

impl Driver {
    /// Pulls and handles messages of one consumer until `shutdown`
    /// completes, then waits for the messages in hand (those waiting out a
    /// fault are handed back at once) and returns.
    pub async fn run<H: Handler>(
        &self,
        js: &jetstream::Context,
        topology: &TopologyConfig,
        spec: &ConsumerSpec,
        handler: Arc<H>,
        shutdown: impl Future<Output = ()> + Send + Clone + 'static,
    ) -> Result<(), DriverError> {
        let lanes = [Lane {
            spec: spec.clone(),
            weight: 1,
        }];
        self.run_lanes(js, topology, &lanes, handler, shutdown)
            .await
    }

    /// Like [`Driver::run`], over several consumers sharing the handler's
    /// slots. While several have messages, each pull goes to one chosen by
    /// weighted turns (weights 3 and 1: three pulls of four go to the first),
    /// and an empty consumer gives its turn to the next at once; so a lane
    /// of small jobs is served first without starving the other.
    ///
    /// With several consumers no pull waits for messages: a pull waiting on
    /// one lane would leave a message published to another waiting until
    /// it expired. While every lane is empty the driver listens on the
    /// lanes' subjects instead ([`Doorbell`]) and asks them all again as soon
    /// as anything is published there, or after `expires` (for messages
    /// delivered again, which nothing publishes).
    pub async fn run_lanes<H: Handler>(
        &self,
        js: &jetstream::Context,
        topology: &TopologyConfig,
        lanes: &[Lane],
        handler: Arc<H>,
        shutdown: impl Future<Output = ()> + Send + Clone + 'static,
    ) -> Result<(), DriverError> {
        // Later lanes are set up first: on a work-queue stream consumer
        // filters must not overlap, and a single consumer of an earlier
        // version is narrowed to the last lane before the others appear.
        let mut consumers = Vec::new();
        for lane in lanes.iter().rev() {
            consumers.push(create(js, &lane.spec).await?);
        }
        consumers.reverse();
        let mut puller = Puller {
            driver: self,
            js,
            topology,
            lanes,
            consumers,
            weights: lanes.iter().map(|l| l.weight.max(1)).collect(),
            permits: Arc::new(Semaphore::new(self.concurrency.max(1))),
            outages: Arc::new(Outages::default()),
            tasks: tokio::task::JoinSet::new(),
            handler,
            lost: None,
            turn: 0,
            bell: None,
        };
        puller.pull_until(shutdown).await;
        // The messages in hand are finished (or handed back) before returning.
        while puller.tasks.join_next().await.is_some() {}
        Ok(())
    }
}

/// What one pull of a lane came to.
enum Pulled {
    /// Messages were taken: the turn is used, the next pull starts a new
    /// round.
    Took,
    /// The lane had none.
    Empty,
    /// Fetching failed: what is missing is set up again.
    Failed,
    /// The server did not end the pull in time: asked again.
    Unanswered,
    /// Shutdown came.
    Stopping,
}

/// A driver at work on its lanes: what its loop keeps between pulls.
struct Puller<'a, H> {
    driver: &'a Driver,
    js: &'a jetstream::Context,
    topology: &'a TopologyConfig,
    lanes: &'a [Lane],
    consumers: Vec<jetstream::consumer::PullConsumer>,
    weights: Vec<u32>,
    /// One per message in hand.
    permits: Arc<Semaphore>,
    outages: Arc<Outages>,
    tasks: tokio::task::JoinSet<()>,
    handler: Arc<H>,
    /// Since when fetching fails, and how often in a row.
    lost: Option<(Instant, u32)>,
    turn: u64,
    /// Hung once a round found every lane empty; taken down once one finds
    /// a message.
    bell: Option<Doorbell>,
}

impl<H: Handler> Puller<'_, H> {
    /// Whether pulls go through the doorbell: with several lanes no pull
    /// waits for messages.
    fn doorbell(&self) -> bool {
        self.lanes.len() > 1
    }

    /// Pulls rounds of the lanes until `shutdown` completes.
    async fn pull_until(&mut self, shutdown: impl Future<Output = ()> + Send + Clone + 'static) {
        loop {
            // Finished tasks are reaped as we go.
            while self.tasks.try_join_next().is_some() {}
            // While a message in hand waits out an outage, new ones would
            // only wait with it.
            if self.outages.any() {
                tokio::select! {
                    _ = shutdown.clone() => return,
                    _ = tokio::time::sleep(Duration::from_millis(200)) => continue,
                }
            }
            let permit = tokio::select! {
                _ = shutdown.clone() => return,
                p = Arc::clone(&self.permits).acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => return,
                },
            };
            let want = (self.permits.available_permits() + 1).min(self.driver.batch.max(1));
            let order = lane_order(&self.weights, self.turn);
            self.turn = self.turn.wrapping_add(1);
            let mut permit = Some(permit);
            let mut pulled = Pulled::Empty;
            for i in order {
                pulled = self.pull(i, want, &mut permit, &shutdown).await;
                if !matches!(pulled, Pulled::Empty) {
                    break;
                }
            }
            match pulled {
                Pulled::Stopping => return,
                Pulled::Failed => {
                    set_up_again(self.js, self.topology, self.lanes, &mut self.consumers).await;
                }
                Pulled::Unanswered => {}
                Pulled::Took => self.bell = None,
                // Every lane was empty.
                Pulled::Empty => {
                    if self.doorbell() && !self.idle(&shutdown).await {
                        return;
                    }
                }
            }
        }
    }

    /// Pulls up to `want` messages of lane `i` and hands each to a task;
    /// the first takes `permit`, the others wait for one of their own.
    async fn pull(
        &mut self,
        i: usize,
        want: usize,
        permit: &mut Option<tokio::sync::OwnedSemaphorePermit>,
        shutdown: &(impl Future<Output = ()> + Send + Clone + 'static),
    ) -> Pulled {
        let (lanes, driver) = (self.lanes, self.driver);
        let lane = &lanes[i].spec;
        let consumer = &self.consumers[i];
        // A single consumer's pull waits for messages; of several, each is
        // asked without waiting (the doorbell waits).
        let expires = if self.doorbell() {
            Duration::ZERO
        } else {
            driver.expires
        };
        let pull_deadline = tokio::time::Instant::now() + expires + PULL_GRACE;
        let fetched = if self.doorbell() {
            tokio::select! {
                _ = shutdown.clone() => return Pulled::Stopping,
                b = consumer.fetch().max_messages(want).messages() => b,
            }
        } else {
            tokio::select! {
                _ = shutdown.clone() => return Pulled::Stopping,
                b = consumer.batch().max_messages(want).expires(expires).messages() => b,
            }
        };
        let mut batch = match fetched {
            Ok(b) => b,
            Err(e) => {
                return self
                    .lost_consumer(&lane.name, e.to_string(), shutdown)
                    .await;
            }
        };
        // Waiting for the batch to fill is cut short by shutdown; a message
        // already received is still handled.
        let mut taken = 0usize;
        loop {
            let msg = tokio::select! {
                _ = shutdown.clone() => break,
                m = batch.next() => match m {
                    Some(Ok(m)) => m,
                    Some(Err(e)) => return self.lost_consumer(&lane.name, e.to_string(), shutdown).await,
                    None => break,
                },
                () = tokio::time::sleep_until(pull_deadline) => {
                    // Messages of the pull that come later are delivered
                    // again after their ack wait.
                    info!(consumer = %lane.name, "a {} pull got no end from the server in {:.0?}: asking again", driver.what, expires + PULL_GRACE);
                    return Pulled::Unanswered;
                }
            };
            back(&mut self.lost, driver.what, &lane.name);
            let permit = match permit.take() {
                Some(p) => p,
                None => match Arc::clone(&self.permits).acquire_owned().await {
                    Ok(p) => p,
                    Err(_) => break,
                },
            };
            taken += 1;
            let work = Work {
                what: driver.what,
                backoff: driver.backoff,
                attempt_limit: driver.attempt_limit,
                ack_wait: lanes[i].spec.settings.ack_wait,
                handler: Arc::clone(&self.handler),
                outages: Arc::clone(&self.outages),
            };
            let shutdown = shutdown.clone();
            self.tasks.spawn(async move {
                work.one(msg, shutdown).await;
                drop(permit);
            });
        }
        // A pull that ran out without an error proves the consumer is back.
        back(&mut self.lost, driver.what, &lane.name);
        if taken > 0 {
            Pulled::Took
        } else {
            Pulled::Empty
        }
    }

    /// A pull of `consumer` failed: logged when the outage starts (its end
    /// is logged by [`back`]), counted, and waited out with backoff.
    async fn lost_consumer(
        &mut self,
        consumer: &str,
        e: String,
        shutdown: &(impl Future<Output = ()> + Send + Clone + 'static),
    ) -> Pulled {
        let failures = self.lost.map_or(1, |(_, n)| n + 1);
        if self.lost.is_none() {
            warn!(consumer, "lost the {} consumer: {e}", self.driver.what);
        }
        metrics::counter!("pagefleet_fetch_errors_total", "consumer" => consumer.to_owned())
            .increment(1);
        self.lost = Some((self.lost.map_or_else(Instant::now, |(t, _)| t), failures));
        tokio::select! {
            _ = shutdown.clone() => Pulled::Stopping,
            _ = tokio::time::sleep(self.driver.backoff.wait(failures, Duration::ZERO)) => Pulled::Failed,
        }
    }

    /// Every lane was empty: waits for a message to be published to one
    /// (or for `expires`, for messages delivered again). False when
    /// shutdown came.
    async fn idle(
        &mut self,
        shutdown: &(impl Future<Output = ()> + Send + Clone + 'static),
    ) -> bool {
        match self.bell.as_mut() {
            // Hung now, and every lane asked once more: a message published
            // before the server had the subscriptions is found by that
            // round, any later one rings.
            None => {
                let client = self.js.client();
                self.bell = tokio::select! {
                    _ = shutdown.clone() => return false,
                    bell = Doorbell::hang(&client, self.lanes) => bell,
                };
                if self.bell.is_none() {
                    // NATS does not answer: wait as a pull would have.
                    tokio::select! {
                        _ = shutdown.clone() => return false,
                        () = tokio::time::sleep(self.driver.expires) => {}
                    }
                }
            }
            Some(ringing) => {
                tokio::select! {
                    _ = shutdown.clone() => return false,
                    () = ringing.rung() => {}
                    () = tokio::time::sleep(self.driver.expires) => {}
                }
                self.bell = None;
            }
        }
        true
    }
}

/// Core NATS subscriptions on the subjects of a driver's lanes, held while
/// every lane is empty: whatever is published to a lane rings it. They
/// are dropped (unsubscribed) as soon as the driver takes work again, so a
/// busy stage is not sent a copy of every message.
struct Doorbell(futures::stream::SelectAll<async_nats::Subscriber>);

impl Doorbell {
    /// Subscribes to every lane's subjects and waits until the server has
    /// the subscriptions; `None` when it does not answer in time.
    async fn hang(client: &async_nats::Client, lanes: &[Lane]) -> Option<Self> {
        let mut subscribers = Vec::with_capacity(lanes.len());
        for lane in lanes {
            subscribers.push(client.subscribe(lane.spec.filter.clone()).await.ok()?);
        }
        tokio::time::timeout(ACK_ANSWER, client.flush())
            .await
            .ok()?
            .ok()?;
        Some(Self(futures::stream::select_all(subscribers)))
    }

    /// Completes when something was published to a lane since the bell was
    /// hung; never, once the subscriptions have ended (the caller's timeout
    /// takes over).
    async fn rung(&mut self) {
        if self.0.next().await.is_none() {
            std::future::pending::<()>().await;
        }
    }
}

/// One consumer of a [`Driver::run_lanes`] and its share of the pulls.
#[derive(Debug, Clone)]
pub struct Lane {
    /// The consumer.
    pub spec: ConsumerSpec,
    /// Its weight among the lanes with messages.
    pub weight: u32,
}

/// The lanes to ask in turn `turn`: first the one whose turn it is by
/// weight, then the others in their order.
fn lane_order(weights: &[u32], turn: u64) -> Vec<usize> {
    let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
    let mut at = turn % total.max(1);
    let mut first = 0;
    for (i, &w) in weights.iter().enumerate() {
        if at < u64::from(w) {
            first = i;
            break;
        }
        at -= u64::from(w);
    }
    std::iter::once(first)
        .chain((0..weights.len()).filter(|&i| i != first))
        .collect()
}

/// After a failed pull: the server may have come back without the stream,
/// or the consumer may have been deleted; sets up what is missing. While
/// the cluster has no leader for them (an election, a lost quorum) they
/// cannot be asked and are left alone: the next pull tries again.
async fn set_up_again(
    js: &jetstream::Context,
    topology: &TopologyConfig,
    lanes: &[Lane],
    consumers: &mut [jetstream::consumer::PullConsumer],
) {
    let mut stream_missing = false;
    let mut missing = Vec::new();
    for (j, lane) in lanes.iter().enumerate() {
        match tokio::time::timeout(SETUP_ASK, lane_state(js, &lane.spec)).await {
            Ok(Present::Yes) => {}
            Ok(Present::NoStream) => stream_missing = true,
            Ok(Present::NoConsumer) => missing.push(j),
            // No answer: nothing can be set up now either.
            Ok(Present::Unknown) | Err(_) => return,
        }
    }
    if stream_missing {
        if topology::ensure(js, topology).await.is_err() {
            return;
        }
        missing = (0..lanes.len()).collect();
    }
    // The same order as at the start: overlapping filters are refused.
    for &j in missing.iter().rev() {
        if let Ok(c) = create(js, &lanes[j].spec).await {
            consumers[j] = c;
        }
    }
}

/// How long a question about a stream or consumer may take after a failed
/// pull.
const SETUP_ASK: Duration = Duration::from_secs(2);

/// Whether a lane's stream and consumer exist.
enum Present {
    Yes,
    NoStream,
    NoConsumer,
    Unknown,
}

async fn lane_state(js: &jetstream::Context, spec: &ConsumerSpec) -> Present {
    use jetstream::ErrorCode;
    use jetstream::context::ConsumerInfoErrorKind;
    let stream = match js.get_stream(&spec.stream).await {
        Ok(s) => s,
        Err(e) if topology::stream_missing(&e) => return Present::NoStream,
        Err(_) => return Present::Unknown,
    };
    match stream.consumer_info(&spec.name).await {
        Ok(_) => Present::Yes,
        Err(e) => match e.kind() {
            ConsumerInfoErrorKind::NotFound => Present::NoConsumer,
            ConsumerInfoErrorKind::StreamNotFound => Present::NoStream,
            ConsumerInfoErrorKind::JetStream(j)
                if j.error_code() == ErrorCode::CONSUMER_NOT_FOUND =>
            {
                Present::NoConsumer
            }
            _ => Present::Unknown,
        },
    }
}

/// Logs the end of a fetching outage.
fn back(lost: &mut Option<(Instant, u32)>, what: &str, consumer: &str) {
    if let Some((since, _)) = lost.take() {
        info!(
            consumer,
            "{what} consumer back after {:.1} s",
            since.elapsed().as_secs_f64()
        );
    }
}

async fn create(
    js: &jetstream::Context,
    spec: &ConsumerSpec,
) -> Result<jetstream::consumer::PullConsumer, topology::TopologyError> {
    topology::consumer(js, &spec.stream, &spec.name, &spec.filter, &spec.settings).await
}

/// Handling one message.
struct Work<H> {
    what: &'static str,
    backoff: Backoff,
    attempt_limit: Option<Duration>,
    /// The consumer's ack wait: progress acks go at a third of it, and an
    /// answer to an ack is waited for no longer (the message is delivered
    /// again after it anyway).
    ack_wait: Duration,
    handler: Arc<H>,
    outages: Arc<Outages>,
}

/// Where a message's handling got to.
enum Step {
    Handle,
    GiveUp,
}

impl<H: Handler> Work<H> {
    async fn one(self, msg: jetstream::Message, shutdown: impl Future<Output = ()> + Clone) {
        let delivery = Delivery {
            subject: msg.subject.to_string(),
            deliveries: msg.info().map_or(1, |i| i.delivered.max(1) as u64),
            headers: msg.headers.clone(),
        };
        let job = match self.handler.decode(&msg.payload) {
            Ok(job) => job,
            Err(e) => {
                error!(subject = %delivery.subject, "dropping an undecodable {}: {e}", self.what);
                self.settle_as(&msg, AckKind::Term, shutdown).await;
                return;
            }
        };
        let span = self.handler.span(&job, &delivery);
        self.settle(&msg, &job, &delivery, shutdown)
            .instrument(span)
            .await;
    }

    /// Acks, naks or terminates a message, confirmed by the server (see
    /// [`confirm`]); once stopping, the answer is waited for a few seconds
    /// more at most.
    async fn settle_as(
        &self,
        msg: &jetstream::Message,
        kind: AckKind,
        shutdown: impl Future<Output = ()>,
    ) {
        let stopping = async {
            shutdown.await;
            tokio::time::sleep(SHUTDOWN_SETTLE).await;
        };
        let confirmed = tokio::select! {
            c = confirm(msg, kind, self.ack_wait) => c,
            () = stopping => Err(ConfirmError("stopped before the server answered".into())),
        };
        if let Err(e) = confirmed {
            let (what, then) = match kind {
                AckKind::Ack => ("acknowledging", "it is delivered again"),
                AckKind::Term => ("removing", "it is delivered again"),
                _ => ("handing back", "it waits for its ack wait"),
            };
            warn!("{what} a {} {e}: {then}", self.what);
        }
    }

    async fn settle(
        &self,
        msg: &jetstream::Message,
        job: &H::Job,
        delivery: &Delivery,
        shutdown: impl Future<Output = ()> + Clone,
    ) {
        let mut progress =
            tokio::time::interval((self.ack_wait / 3).max(Duration::from_millis(100)));
        progress.tick().await;
        let mut step = Step::Handle;
        let mut fault: Option<H::Error> = None;
        let mut failures = 0u32;
        let mut waiting_since: Option<Instant> = None;
        loop {
            let outcome = {
                let work = async {
                    match (&step, &fault) {
                        (Step::GiveUp, Some(e)) => self
                            .handler
                            .give_up(job, delivery, e)
                            .await
                            .map(|()| Handled::Dropped),
                        _ => self.handler.handle(job, delivery).await,
                    }
                };
                tokio::pin!(work);
                let limit = tokio::time::sleep(
                    self.attempt_limit
                        .unwrap_or(Duration::from_secs(u64::from(u32::MAX))),
                );
                tokio::pin!(limit);
                loop {
                    tokio::select! {
                        outcome = &mut work => break outcome,
                        _ = progress.tick() => { let _ = msg.ack_with(AckKind::Progress).await; }
                        _ = &mut limit => {
                            if waiting_since.is_some() {
                                self.outages.end(self.what);
                            }
                            warn!(
                                deliveries = delivery.deliveries,
                                "{} hung past {:.0} s, left to be delivered again",
                                self.what,
                                self.attempt_limit.unwrap_or_default().as_secs_f64()
                            );
                            return;
                        }
                    }
                }
            };
            let e = match outcome {
                Ok(handled) => {
                    if let Some(since) = waiting_since.take() {
                        self.outages.end(self.what);
                        debug!(
                            attempts = failures + 1,
                            "{} went through after {:.1} s",
                            self.what,
                            since.elapsed().as_secs_f64()
                        );
                    }
                    let kind = match handled {
                        Handled::Done => AckKind::Ack,
                        Handled::Dropped => AckKind::Term,
                    };
                    self.settle_as(msg, kind, shutdown.clone()).await;
                    return;
                }
                Err(e) => e,
            };
            match e.kind() {
                FaultKind::Transient { retry_after } => {
                    failures += 1;
                    if waiting_since.is_none() {
                        waiting_since = Some(Instant::now());
                        self.outages.begin(self.what, &e);
                    }
                    self.outages.retry(self.what);
                    let wait = tokio::time::sleep(self.backoff.wait(failures, retry_after));
                    tokio::pin!(wait);
                    let stopped = loop {
                        tokio::select! {
                            _ = &mut wait => break false,
                            _ = shutdown.clone() => break true,
                            _ = progress.tick() => { let _ = msg.ack_with(AckKind::Progress).await; }
                        }
                    };
                    if stopped {
                        // Stopping: another process takes it over, without
                        // the wait counting as a delivery's failure.
                        self.outages.end(self.what);
                        info!("{} handed back at shutdown while waiting: {e}", self.what);
                        self.settle_as(msg, AckKind::Nak(Some(retry_after)), shutdown.clone())
                            .await;
                        return;
                    }
                    // The step stays: a failed give-up is retried, not the work.
                }
                FaultKind::Permanent => {
                    if waiting_since.take().is_some() {
                        self.outages.end(self.what);
                    }
                    if matches!(step, Step::GiveUp) {
                        // Recording the failure failed for good: nothing is
                        // left to try.
                        error!("{} dropped, its failure not recorded: {e}", self.what);
                        self.settle_as(msg, AckKind::Term, shutdown.clone()).await;
                        return;
                    }
                    warn!("{} failed: {e}", self.what);
                    step = Step::GiveUp;
                    fault = Some(e);
                    failures = 0;
                }
                FaultKind::Bug => {
                    if waiting_since.take().is_some() {
                        self.outages.end(self.what);
                    }
                    error!(
                        deliveries = delivery.deliveries,
                        "{} handed back after a fault of the stage: {e}", self.what
                    );
                    self.settle_as(msg, AckKind::Nak(Some(BUG_REDELIVERY)), shutdown.clone())
                        .await;
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanes_take_turns_by_weight_and_fall_through_in_order() {
        let firsts: Vec<usize> = (0..8).map(|t| lane_order(&[3, 1], t)[0]).collect();
        assert_eq!(firsts, [0, 0, 0, 1, 0, 0, 0, 1]);
        assert_eq!(lane_order(&[3, 1], 3), [1, 0]);
        assert_eq!(lane_order(&[1, 1, 1], 1), [1, 0, 2]);
        assert_eq!(lane_order(&[1], 5), [0]);
    }

    #[test]
    fn backoff_doubles_up_to_its_cap_and_respects_the_floor() {
        let b = Backoff {
            first: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        let within = |d: Duration, base: u64| {
            let ms = d.as_millis() as u64;
            (base..=base + base / 4).contains(&ms)
        };
        assert!(within(b.wait(1, Duration::ZERO), 100));
        assert!(within(b.wait(2, Duration::ZERO), 200));
        assert!(within(b.wait(4, Duration::ZERO), 800));
        assert!(within(b.wait(5, Duration::ZERO), 1000));
        assert!(within(b.wait(60, Duration::ZERO), 1000));
        assert!(within(b.wait(1, Duration::from_secs(3)), 3000));
    }
}
