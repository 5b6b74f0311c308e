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
use std::time::Duration;

use anyhow::Context;
use pagefleet_aggregator::report::JobReport;
use pagefleet_schemas::messages::{JobState, JobStatus, Message};
use pagefleet_schemas::{Format, names};
use pagefleet_stagekit::store;
use tracing::{error, info, warn};

use pagefleet::home::Home;

use crate::cli::{HomeArgs, RunArgs};
use crate::ocr::{output_file, unique_name};
use crate::stages::pipeline_launch;

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
    match runtime.block_on(run_inner(Home::resolve(home.path.as_deref()), args)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run_inner(home: Home, args: RunArgs) -> anyhow::Result<bool> {
    let mut pipeline = args.pipeline.clone();
    if args.workers.is_some() {
        pipeline.model.slots = args.workers;
    }
    let launch = pipeline_launch(&home, "pagefleet-run", &args.shared, &pipeline)?;
    let launched = launch.start(&home).await?;
    let outcome = submit_and_follow(&launched.js, &launched.store, &args).await;
    launched.stop().await;
    outcome
}

/// Submits every file, waits for every job, writes the outputs. True when
/// every job succeeded.
async fn submit_and_follow(
    js: &async_nats::jetstream::Context,
    store: &pagefleet_stagekit::store::Store,
    args: &RunArgs,
) -> anyhow::Result<bool> {
    let profile = args.pipeline.model.profile;
    let language = crate::ocr::latin_name_language(profile, &args.language.language);
    language
        .check_profile(profile.name())
        .map_err(anyhow::Error::msg)?;
    let options = pagefleet_ingest::SubmitOptions {
        dpi: args.dpi,
        profile: profile.base().to_string(),
        max_pixels: args.pipeline.model.max_pixels,
        formats: args.formats.formats.clone(),
        text_layer: args.text_layer.mode,
        language,
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
            let ok =
                write_outputs(store, &job_id, &name, &dir, &options.formats, args.quiet).await?;
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

/// Writes a finished job in the layout of `pagefleet ocr`.
async fn write_outputs(
    store: &pagefleet_stagekit::store::Store,
    job_id: &str,
    name: &str,
    dir: &std::path::Path,
    formats: &[Format],
    quiet: bool,
) -> anyhow::Result<bool> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let get = |format: Format| async move {
        store::get(store.as_ref(), &names::keys::output(job_id, format)).await
    };
    let json = get(Format::Json).await?;
    let report: JobReport =
        serde_json::from_slice(&json).context("reading the job's result.json")?;
    for format in Format::written(formats) {
        let bytes = if format == Format::Json {
            json.clone()
        } else {
            get(format).await?
        };
        std::fs::write(dir.join(output_file(format)), bytes)?;
    }
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
