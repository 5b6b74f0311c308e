//! `pagefleet run`: the whole pipeline on one machine, in one process.
//!
//! Starts a private nats-server (unless `--nats` names one), runs the
//! rasterizer, the OCR workers and the aggregator as tasks, submits the files,
//! follows the jobs' state, and writes each finished job in the layout of
//! `pagefleet ocr`, plus `combined.md`.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use pagefleet_aggregator::report::JobReport;
use pagefleet_schemas::messages::{JobState, JobStatus, Message};
use pagefleet_schemas::{names, store};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tracing::{error, info, warn};

use crate::cli::{HomeArgs, ModelArgs, NatsArgs, QueueArgs, RunArgs, StoreArgs};
use crate::connect;
use crate::home::Home;
use crate::nats_server::NatsServer;
use crate::ocr::{start_pool, unique_name};

pub(crate) fn run(home: &HomeArgs, args: RunArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            error!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run_inner(Home::resolve(home), args)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run_inner(home: Home, mut args: RunArgs) -> anyhow::Result<bool> {
    if args.workers.is_some() {
        args.model.slots = args.workers;
    }
    let local = Local::start(
        &home,
        args.nats.clone(),
        args.data.clone(),
        &args.store,
        &args.queue,
        &args.model,
    )
    .await?;
    let outcome = submit_and_follow(&local.js, &local.store, &args).await;
    local.stop().await;
    outcome
}

/// Everything `pagefleet run` and `pagefleet serve` start on one machine: a
/// nats-server (unless one is named), the store, and the rasterizer, OCR
/// worker and aggregator stages as tasks.
pub(crate) struct Local {
    server: Option<NatsServer>,
    /// The NATS connection the stages share.
    pub(crate) client: async_nats::Client,
    /// JetStream over it.
    pub(crate) js: async_nats::jetstream::Context,
    /// The store.
    pub(crate) store: pagefleet_schemas::store::Store,
    /// The NATS URL.
    pub(crate) url: String,
    /// Stream and consumer settings.
    pub(crate) topology: pagefleet_schemas::topology::TopologyConfig,
    stop: CancellationToken,
    stages: tokio::task::JoinSet<anyhow::Result<()>>,
}

impl Local {
    pub(crate) async fn start(
        home: &Home,
        nats: Option<String>,
        data: Option<PathBuf>,
        store_args: &StoreArgs,
        queue: &QueueArgs,
        model: &ModelArgs,
    ) -> anyhow::Result<Self> {
        home.require([home.pdfium().as_path()])?;
        let data = data.unwrap_or_else(|| home.data());
        let server = match &nats {
            Some(_) => None,
            None => {
                home.require([home.nats_server().as_path()])?;
                let server = NatsServer::start(&home.nats_server(), &data.join("nats")).await?;
                info!(url = server.url(), "nats-server started");
                Some(server)
            }
        };
        let url = nats
            .or_else(|| server.as_ref().map(|s| s.url().to_owned()))
            .unwrap_or_default();
        let nats_args = NatsArgs {
            url: url.clone(),
            creds: None,
            nkey: None,
            token: None,
            user: None,
            password: None,
            ca: None,
            tls: false,
        };
        let client = connect::nats(&nats_args, "pagefleet-local").await?;
        let js = async_nats::jetstream::new(client.clone());
        let topology = connect::topology(queue);
        pagefleet_schemas::topology::ensure(&js, &topology).await?;
        let store = connect::store(store_args, &data.join("objects"))?;
        let profile = model.profile.to_string();
        let provider = model.provider().name().to_owned();
        let max_pixels = model.max_pixels;
        let model = model.clone();
        let pool_home = home.clone();
        let pool =
            Arc::new(tokio::task::spawn_blocking(move || start_pool(&pool_home, &model)).await??);
        let mut local = Self {
            server,
            client,
            js,
            store,
            url,
            topology,
            stop: CancellationToken::new(),
            stages: tokio::task::JoinSet::new(),
        };
        let deps = pagefleet_rasterizer::stage::Deps {
            js: local.js.clone(),
            store: local.store.clone(),
            pdfium: home.pdfium(),
        };
        let config = pagefleet_rasterizer::stage::StageConfig {
            topology: local.topology.clone(),
            max_decode_pixels: pagefleet_rasterizer::DEFAULT_MAX_DECODE_PIXELS,
            max_pages: 10_000,
            name: "rasterizer".into(),
        };
        local.spawn(|stop| pagefleet_rasterizer::stage::run(config, deps, stop));
        let slots = pool.slots();
        let deps = pagefleet_ocr_worker::stage::Deps {
            js: local.js.clone(),
            store: local.store.clone(),
            pool: Arc::clone(&pool),
            ready: Default::default(),
            counters: Default::default(),
        };
        let config = pagefleet_ocr_worker::stage::StageConfig {
            topology: local.topology.clone(),
            profile,
            name: crate::stages::default_name("ocr-worker"),
            in_flight: slots * 2,
            page_deadline: pagefleet_ocr_worker::stage::DEFAULT_PAGE_DEADLINE,
            max_decode_pixels: max_pixels.saturating_mul(2),
            execution_provider: provider,
            heartbeat_interval: pagefleet_ocr_worker::stage::DEFAULT_HEARTBEAT_INTERVAL,
        };
        local.spawn(|stop| pagefleet_ocr_worker::stage::run(config, deps, stop));
        let deps = pagefleet_aggregator::stage::Deps {
            js: local.js.clone(),
            store: local.store.clone(),
        };
        let config = pagefleet_aggregator::stage::StageConfig {
            topology: local.topology.clone(),
            name: "aggregator".into(),
        };
        local.spawn(|stop| pagefleet_aggregator::stage::run(config, deps, stop));
        Ok(local)
    }

    /// Runs a stage until [`Local::stop`].
    pub(crate) fn spawn<F, E>(&mut self, stage: impl FnOnce(WaitForCancellationFutureOwned) -> F)
    where
        F: std::future::Future<Output = Result<(), E>> + Send + 'static,
        E: Into<anyhow::Error>,
    {
        let run = stage(self.stop.clone().cancelled_owned());
        self.stages
            .spawn(async move { run.await.map_err(Into::into) });
    }

    /// Stops every stage, then the connection, then the nats-server.
    pub(crate) async fn stop(mut self) {
        self.stop.cancel();
        while let Some(joined) = self.stages.join_next().await {
            match joined {
                Ok(Ok(())) => {}
                Ok(Err(e)) => warn!("stage ended with an error: {e:#}"),
                Err(e) => warn!("stage task failed: {e}"),
            }
        }
        // Close the connection before the server goes, rather than have the
        // client report the server's disappearance as an error.
        drop(self.js);
        let _ = self.client.drain().await;
        if let Some(server) = self.server {
            server.stop().await;
        }
    }
}

/// Submits every file, waits for every job, writes the outputs. True when
/// every job succeeded.
async fn submit_and_follow(
    js: &async_nats::jetstream::Context,
    store: &pagefleet_schemas::store::Store,
    args: &RunArgs,
) -> anyhow::Result<bool> {
    let options = pagefleet_ingest::SubmitOptions {
        dpi: args.dpi,
        profile: args.model.profile.to_string(),
        max_pixels: args.model.max_pixels,
        ..Default::default()
    };
    let mut used = HashSet::new();
    let mut pending: BTreeMap<String, (String, PathBuf)> = BTreeMap::new();
    let mut all_ok = true;
    for file in &args.files {
        let name = unique_name(file, &mut used);
        let bytes = match std::fs::read(file) {
            Ok(b) => b,
            Err(e) => {
                error!(file = %file.display(), "cannot read: {e}");
                all_ok = false;
                continue;
            }
        };
        let filename = file
            .file_name()
            .map_or_else(|| name.clone(), |f| f.to_string_lossy().into_owned());
        let job_id = pagefleet_ingest::submit(js, store, &filename, bytes.into(), &options).await?;
        info!(%job_id, document = %name, "submitted");
        let dir = args.out.join(&name);
        pending.insert(job_id, (name, dir));
    }
    let kv = js
        .get_key_value(names::JOBS_BUCKET)
        .await
        .context("opening the jobs bucket")?;
    let mut last_progress: BTreeMap<String, (u32, u32, u32)> = BTreeMap::new();
    let mut bar = ProgressBar::new(pending.len());
    while !pending.is_empty() {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let ids: Vec<String> = pending.keys().cloned().collect();
        for job_id in ids {
            let Some(bytes) = kv.get(&job_id).await.context("reading job state")? else {
                continue;
            };
            let state = JobState::decode(&bytes)?;
            let (done, failed) = state.counts();
            let total = state.manifest.as_ref().map_or(0, |m| m.total_pages);
            let progress = (done, failed, total);
            if last_progress.insert(job_id.clone(), progress) != Some(progress) {
                if bar.on_terminal() {
                    bar.draw(&last_progress);
                } else {
                    let (name, _) = &pending[&job_id];
                    info!(document = %name, done, failed, total, "progress");
                }
            }
            if state.status == JobStatus::Running {
                continue;
            }
            let Some((name, dir)) = pending.remove(&job_id) else {
                continue;
            };
            bar.finish_document(&last_progress);
            let ok = write_outputs(store, &job_id, &name, &dir, args.quiet).await?;
            all_ok &= ok && state.status == JobStatus::Success;
            info!(document = %name, status = ?state.status, "job finished");
        }
    }
    Ok(all_ok)
}

/// `[####------] 4/10 pages, 1 failed`: a bar of pages done or failed.
pub(crate) fn progress_line(done: u64, failed: u64, total: u64) -> String {
    const WIDTH: u64 = 30;
    let filled = (WIDTH * (done + failed)).checked_div(total).unwrap_or(0);
    let bar: String = (0..WIDTH)
        .map(|i| if i < filled { '#' } else { '-' })
        .collect();
    format!("[{bar}] {}/{total} pages, {failed} failed", done + failed)
}

/// A one-line progress bar on standard error when it is a terminal; log lines
/// are written instead otherwise.
struct ProgressBar {
    terminal: bool,
    documents: usize,
    finished: usize,
}

impl ProgressBar {
    fn new(documents: usize) -> Self {
        use std::io::IsTerminal;
        Self {
            terminal: std::io::stderr().is_terminal(),
            documents,
            finished: 0,
        }
    }

    fn on_terminal(&self) -> bool {
        self.terminal
    }

    fn draw(&self, jobs: &BTreeMap<String, (u32, u32, u32)>) {
        if !self.terminal {
            return;
        }
        let (done, failed, total) = jobs.values().fold((0, 0, 0), |(d, f, t), &(jd, jf, jt)| {
            (d + jd, f + jf, t + jt)
        });
        eprint!(
            "\r{}, {}/{} documents ",
            progress_line(done.into(), failed.into(), total.into()),
            self.finished,
            self.documents
        );
        if self.finished == self.documents {
            eprintln!();
        }
    }

    fn finish_document(&mut self, jobs: &BTreeMap<String, (u32, u32, u32)>) {
        self.finished += 1;
        self.draw(jobs);
    }
}

/// Writes a finished job in the layout of `pagefleet ocr`, plus combined.md.
async fn write_outputs(
    store: &pagefleet_schemas::store::Store,
    job_id: &str,
    name: &str,
    dir: &std::path::Path,
    quiet: bool,
) -> anyhow::Result<bool> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let get = |format: &'static str| async move {
        store::get(store.as_ref(), &names::keys::output(job_id, format)).await
    };
    let json = get("json").await?;
    let report: JobReport =
        serde_json::from_slice(&json).context("reading the job's result.json")?;
    std::fs::write(dir.join("result.json"), &json)?;
    std::fs::write(dir.join("combined.txt"), get("txt").await?)?;
    std::fs::write(dir.join("combined.md"), get("md").await?)?;
    let stdout = std::io::stdout();
    for page in &report.pages {
        let text = page.ocr.as_ref().map(|o| o.text()).unwrap_or_default();
        std::fs::write(dir.join(format!("{:03}.txt", page.page)), &text)?;
        if !quiet {
            let mut out = stdout.lock();
            let _ = writeln!(out, "==> {name} page {} <==", page.page);
            match &page.error {
                Some(e) => drop(writeln!(out, "[page failed: {e}]")),
                None => drop(out.write_all(text.as_bytes())),
            }
        }
    }
    for e in &report.metrics.errors {
        warn!(document = %name, "{e}");
    }
    Ok(report.metrics.pages_failed == 0)
}
