//! The stage commands: each stage alone, pointed at any NATS and store,
//! started through the one launcher like `serve` and `run`.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use pagefleet::connect;
use pagefleet::home::Home;
use pagefleet::launch::{IngestLaunch, Launch, WorkerLaunch};
use pagefleet_stagekit::topology;

use crate::cli::{
    AggregatorArgs, IngestArgs, IntakeArgs, NatsArgs, PipelineArgs, QueueArgs, RasterizerArgs,
    RenderArgs, SharedArgs, StoreArgs, WorkerArgs, WorkerFlags,
};
use crate::ocr::pool_config;

/// A launch of no stage yet, on the shared settings of a stage command: it
/// joins a deployment's NATS (the default server's without `--nats`) and
/// never starts one.
fn launch(home: &Home, name: &str, shared: &SharedArgs) -> anyhow::Result<Launch> {
    let nats = &shared.nats;
    let launch = launch_on(home, name, shared, &home.data())?;
    Ok(Launch {
        nats: nats.with_url(nats.url_or_default()),
        ..launch
    })
}

/// A launch of no stage yet on the shared settings, with `data` as its
/// data folder: without `--nats` it starts a private nats-server there.
fn launch_on(home: &Home, name: &str, shared: &SharedArgs, data: &Path) -> anyhow::Result<Launch> {
    Ok(Launch {
        nats: shared.nats.clone(),
        data: data.to_owned(),
        store: Some(connect::store(&shared.store, &data.join("objects"))?),
        topology: connect::topology(&shared.queue),
        probes: shared.probes.addr,
        ..Launch::new(home, name)
    })
}

/// The rasterizer, an OCR worker and the aggregator on the shared settings
/// and the single-machine commands' own (`serve`, `run`).
pub(crate) fn pipeline_launch(
    home: &Home,
    name: &str,
    shared: &SharedArgs,
    pipeline: &PipelineArgs,
) -> anyhow::Result<Launch> {
    let launch = launch_on(home, name, shared, &pipeline.data.dir_or(home))?;
    Ok(Launch {
        rasterizer: Some(rasterizer_config(&pipeline.render)),
        worker: Some(worker_launch(home, &pipeline.model, &pipeline.worker)?),
        aggregator: Some(Default::default()),
        ..launch
    })
}

/// The rasterizer's settings from its flags.
pub(crate) fn rasterizer_config(render: &RenderArgs) -> pagefleet_rasterizer::stage::StageConfig {
    pagefleet_rasterizer::stage::StageConfig {
        max_decode_pixels: render.max_decode_pixels,
        max_pages: render.max_pages,
        ..Default::default()
    }
}

/// The OCR worker's settings and models from its flags.
pub(crate) fn worker_launch(
    home: &Home,
    model: &crate::cli::ModelArgs,
    flags: &WorkerFlags,
) -> anyhow::Result<WorkerLaunch> {
    let defaults = pagefleet_ocr_worker::stage::StageConfig::default();
    Ok(WorkerLaunch {
        config: pagefleet_ocr_worker::stage::StageConfig {
            // A `-latin` name serves its quality level's pages.
            profile: model.profile.base().to_string(),
            name: flags.name.clone().unwrap_or(defaults.name.clone()),
            page_deadline: Duration::from_secs_f64(flags.page_deadline.max(1.0)),
            pull_wait: Duration::from_secs_f64(flags.pull_wait.clamp(0.1, 3600.0)),
            max_decode_pixels: model.max_pixels.saturating_mul(2),
            ..defaults
        },
        pool: pool_config(home, model)?,
    })
}

pub(crate) async fn rasterizer(home: &Home, args: RasterizerArgs) -> anyhow::Result<()> {
    let launch = Launch {
        rasterizer: Some(rasterizer_config(&args.render)),
        ..launch(home, "pagefleet-rasterizer", &args.shared)?
    };
    launch.start(home).await?.until_signal().await
}

pub(crate) async fn ocr_worker(home: &Home, args: WorkerArgs) -> anyhow::Result<()> {
    let launch = Launch {
        worker: Some(worker_launch(home, &args.model, &args.worker)?),
        ..launch(home, "pagefleet-ocr-worker", &args.shared)?
    };
    launch.start(home).await?.until_signal().await
}

pub(crate) async fn aggregator(home: &Home, args: AggregatorArgs) -> anyhow::Result<()> {
    let launch = Launch {
        aggregator: Some(Default::default()),
        ..launch(home, "pagefleet-aggregator", &args.shared)?
    };
    launch.start(home).await?.until_signal().await
}

pub(crate) async fn nats_setup(nats: &NatsArgs, queue: &QueueArgs) -> anyhow::Result<()> {
    let client = connect::nats(nats, "pagefleet-setup").await?;
    let js = async_nats::jetstream::new(client);
    topology::ensure(&js, &connect::topology(queue))
        .await
        .context("setting up JetStream")?;
    println!(
        "streams and the jobs bucket are in place on {}",
        nats.url_or_default()
    );
    Ok(())
}

/// The ingest stage's settings from its flags.
pub(crate) fn ingest_config(
    intake: &IntakeArgs,
    store: &StoreArgs,
    queue: &QueueArgs,
    http_addr: std::net::SocketAddr,
    profile: &str,
    max_pixels: u64,
) -> anyhow::Result<pagefleet_ingest::stage::StageConfig> {
    if !http_addr.ip().is_loopback() && intake.api_token.is_none() && !intake.insecure_no_auth {
        anyhow::bail!(
            "the HTTP API would listen on {http_addr}, which is not loopback, without a token: \
             set --api-token (PAGEFLEET_API_TOKEN), or pass --insecure-no-auth to allow it"
        );
    }
    let (bucket, store_prefix) = match store.location.as_deref().and_then(connect::s3_location) {
        Some((bucket, prefix)) => {
            let prefix = prefix.trim_matches('/');
            let prefix = if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix}/")
            };
            (Some(bucket.to_owned()), prefix)
        }
        None => (None, String::new()),
    };
    let with_slash = |p: &str| {
        let p = p.trim_start_matches('/');
        if p.is_empty() || p.ends_with('/') {
            p.to_owned()
        } else {
            format!("{p}/")
        }
    };
    Ok(pagefleet_ingest::stage::StageConfig {
        topology: connect::topology(queue),
        limits: pagefleet_ingest::Limits {
            max_upload_bytes: intake.max_upload_bytes,
            max_pages: intake.max_job_pages,
            allowed_types: intake.allowed_types.clone(),
            profiles: intake.profiles.clone(),
            waiting_after: Duration::from_secs_f64(intake.waiting_after.max(0.0)),
        },
        defaults: pagefleet_ingest::JobDefaults {
            formats: intake.formats.clone(),
            text_layer: intake.text_layer,
            language: intake.language.clone(),
            dpi: intake.dpi,
            profile: profile.to_owned(),
            max_pixels,
        },
        api: pagefleet_ingest::http::ApiConfig {
            token: intake.api_token.clone(),
            sync_timeout: Duration::from_secs_f64(intake.sync_timeout.max(1.0)),
            bucket: Some(pagefleet_ingest::bucket::BucketConfig {
                bucket,
                store_prefix,
                input_prefix: with_slash(&intake.input_prefix),
                output_prefix: with_slash(&intake.output_prefix),
            }),
            presigner: connect::presigner(store, intake.presign_ttl)?,
        },
        bucket_events: !intake.no_bucket_events,
        watch_interval: (intake.watch_interval > 0.0)
            .then(|| Duration::from_secs_f64(intake.watch_interval.max(0.5))),
        retention: intake.retention,
    })
}

pub(crate) async fn ingest(home: &Home, args: IngestArgs) -> anyhow::Result<()> {
    let config = ingest_config(
        &args.intake,
        &args.shared.store,
        &args.shared.queue,
        args.http_addr,
        &args.profile,
        args.max_pixels,
    )?;
    let listener = tokio::net::TcpListener::bind(args.http_addr)
        .await
        .with_context(|| format!("cannot listen on {}", args.http_addr))?;
    let launch = Launch {
        ingest: Some(IngestLaunch {
            config,
            listener: Some(listener),
            // The probe server, when configured, has the metrics.
            metrics: false,
        }),
        ..launch(home, "pagefleet-ingest", &args.shared)?
    };
    launch.start(home).await?.until_signal().await
}
