//! Heartbeats: every few seconds a worker puts what it is doing (status,
//! pages done, CPU, memory, uptime) in the workers bucket, where its key
//! expires if it stops. `/workers/status` answers from there, not from
//! polling hosts.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, kv};
use pagefleet_schemas::messages::{SCHEMA_VERSION, WorkerHeartbeat, now_ms};
use pagefleet_schemas::names;
use pagefleet_stagekit::topology::{self, TopologyConfig};
use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};
use tracing::{info, warn};

/// What a worker counts for its heartbeats.
#[derive(Debug, Default)]
pub struct WorkerCounters {
    /// Pages read.
    pub pages_done: AtomicU64,
    /// Pages failed.
    pub pages_failed: AtomicU64,
    /// Pages in hand.
    pub in_flight: AtomicU32,
    /// Set when the worker stops pulling.
    pub draining: AtomicBool,
}

/// Who is beating.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The worker's name.
    pub name: String,
    /// Model profile it serves.
    pub profile: String,
    /// `cpu` or `cuda`.
    pub execution_provider: String,
    /// Inference slots.
    pub slots: u32,
}

/// Reads this process's CPU and memory use.
struct ProcessProbe {
    system: System,
    pid: Option<Pid>,
}

impl ProcessProbe {
    fn new() -> Self {
        Self {
            system: System::new(),
            pid: sysinfo::get_current_pid().ok(),
        }
    }

    /// CPU percent (of one core) since the last call, resident MiB, and the
    /// share of the machine's memory.
    fn sample(&mut self) -> (f64, f64, f64) {
        let Some(pid) = self.pid else {
            return (0.0, 0.0, 0.0);
        };
        self.system.refresh_memory();
        self.system.refresh_processes_specifics(
            ProcessesToUpdate::Some(&[pid]),
            true,
            ProcessRefreshKind::nothing().with_cpu().with_memory(),
        );
        let Some(process) = self.system.process(pid) else {
            return (0.0, 0.0, 0.0);
        };
        let rss = process.memory() as f64;
        let total = self.system.total_memory().max(1) as f64;
        (
            f64::from(process.cpu_usage()),
            rss / (1024.0 * 1024.0),
            100.0 * rss / total,
        )
    }
}

/// Puts a heartbeat every `interval` until `stop` is set; deletes the
/// worker's key when it ends, so a stopped worker leaves at once.
///
/// A heartbeat that cannot be put (the server restarted without the bucket,
/// say) sets the bucket up again before the next one, so the worker is back
/// in the fleet's status within a heartbeat of NATS coming back.
#[allow(clippy::too_many_arguments)]
pub async fn beat(
    js: jetstream::Context,
    topology: TopologyConfig,
    identity: Identity,
    counters: Arc<WorkerCounters>,
    ready: Arc<AtomicBool>,
    interval: Duration,
    stop: impl std::future::Future<Output = ()> + Send,
) {
    let mut kv: Option<kv::Store> = None;
    let mut failing = false;
    let key = names::worker_key(&identity.name);
    let started = Instant::now();
    let mut probe = ProcessProbe::new();
    let mut ticks = tokio::time::interval(interval);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = ticks.tick() => {}
        }
        let (cpu_percent, memory_mb, memory_percent) = probe.sample();
        let status = if counters.draining.load(Ordering::SeqCst) {
            "draining"
        } else if ready.load(Ordering::SeqCst) {
            "ready"
        } else {
            "starting"
        };
        let heartbeat = WorkerHeartbeat {
            v: SCHEMA_VERSION,
            name: identity.name.clone(),
            profile: identity.profile.clone(),
            execution_provider: identity.execution_provider.clone(),
            slots: identity.slots,
            status: status.to_owned(),
            cpu_percent,
            memory_percent,
            memory_mb,
            uptime_seconds: started.elapsed().as_secs(),
            pages_done: counters.pages_done.load(Ordering::Relaxed),
            pages_failed: counters.pages_failed.load(Ordering::Relaxed),
            pages_in_flight: counters.in_flight.load(Ordering::Relaxed),
            at_ms: now_ms(),
        };
        let body = serde_json::to_vec(&heartbeat).unwrap_or_default();
        let bucket = match kv.take() {
            Some(kv) => Ok(kv),
            None => topology::ensure_workers_bucket(&js, &topology)
                .await
                .map_err(|e| e.to_string()),
        };
        let sent = match bucket {
            Ok(bucket) => {
                let put = bucket.put(&key, body.into()).await.map(|_| ());
                // A bucket that failed is set up again before the next beat.
                if put.is_ok() {
                    kv = Some(bucket);
                }
                put.map_err(|e| e.to_string())
            }
            Err(e) => Err(e),
        };
        match sent {
            Ok(()) if failing => {
                failing = false;
                info!("heartbeats back");
            }
            Ok(()) => {}
            Err(e) if !failing => {
                failing = true;
                warn!("heartbeat not sent: {e}");
            }
            Err(_) => {}
        }
    }
    if let Some(kv) = kv {
        let _ = kv.delete(&key).await;
    }
}
