//! The stage commands: each stage alone, pointed at any NATS and store.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::Context;
use pagefleet_schemas::topology;

use crate::cli::{
    AggregatorArgs, IngestArgs, IntakeArgs, NatsArgs, ProbeArgs, QueueArgs, RasterizerArgs,
    StoreArgs, WorkerArgs,
};
use pagefleet::home::Home;
use pagefleet::probes;
use pagefleet_schemas::running::Running;

use crate::connect::{self, shutdown_signal};
use crate::ocr::pool_config;

/// A stage's NATS connection and store, with its probe server started when
/// an address is configured (`ready` says when the stage is warmed up).
async fn connect_stage(
    home: &Home,
    nats: &NatsArgs,
    store: &StoreArgs,
    probes: &ProbeArgs,
    name: &str,
    ready: Arc<AtomicBool>,
) -> anyhow::Result<(async_nats::Client, pagefleet_schemas::store::Store)> {
    let client = connect::nats(nats, name).await?;
    let store = connect::store(store, &home.data().join("objects"))?;
    if let Some(addr) = probes.addr {
        let metrics = probes::install_metrics()?;
        let readiness = probes::Readiness {
            warm: ready,
            client: client.clone(),
            store: store.clone(),
        };
        probes::serve(addr, name, readiness, metrics).await?;
    }
    Ok((client, store))
}

/// Runs a started stage until SIGINT or SIGTERM (then it finishes the work
/// in hand), or until it fails.
async fn until_signal(mut stage: Running) -> anyhow::Result<()> {
    let outcome = tokio::select! {
        () = shutdown_signal() => stage.stop().await,
        ended = stage.ended() => ended,
    };
    outcome.map_err(|e| anyhow::anyhow!("{e}"))
}

pub(crate) async fn rasterizer(home: &Home, args: RasterizerArgs) -> anyhow::Result<()> {
    home.require([home.pdfium().as_path()])?;
    let (client, store) = connect_stage(
        home,
        &args.nats,
        &args.store,
        &args.probes,
        "pagefleet-rasterizer",
        Arc::new(AtomicBool::new(true)),
    )
    .await?;
    let deps = pagefleet_rasterizer::stage::Deps {
        js: async_nats::jetstream::new(client),
        store,
        pdfium: home.pdfium(),
    };
    let config = pagefleet_rasterizer::stage::StageConfig {
        topology: connect::topology(&args.queue),
        max_decode_pixels: args.max_decode_pixels,
        max_pages: args.max_pages,
        ..Default::default()
    };
    until_signal(pagefleet_rasterizer::stage::start(config, deps)).await
}

pub(crate) async fn ocr_worker(home: &Home, args: WorkerArgs) -> anyhow::Result<()> {
    let pool = pool_config(home, &args.model)?;
    home.require(pool.files())?;
    // Probes first: liveness answers while the models load, readiness waits
    // for the warm-up inference.
    let ready = Arc::new(AtomicBool::new(false));
    let (client, store) = connect_stage(
        home,
        &args.nats,
        &args.store,
        &args.probes,
        "pagefleet-ocr-worker",
        Arc::clone(&ready),
    )
    .await?;
    let defaults = pagefleet_ocr_worker::stage::StageConfig::default();
    let config = pagefleet_ocr_worker::stage::StageConfig {
        topology: connect::topology(&args.queue),
        profile: args.model.profile.to_string(),
        name: args.name.unwrap_or(defaults.name.clone()),
        page_deadline: Duration::from_secs_f64(args.page_deadline.max(1.0)),
        pull_wait: Duration::from_secs_f64(args.pull_wait.clamp(0.1, 3600.0)),
        max_decode_pixels: args.model.max_pixels.saturating_mul(2),
        ..defaults
    };
    let js = async_nats::jetstream::new(client);
    let stage = pagefleet_ocr_worker::stage::start(config, &pool, js, store, ready).await?;
    until_signal(stage).await
}

pub(crate) async fn aggregator(home: &Home, args: AggregatorArgs) -> anyhow::Result<()> {
    let (client, store) = connect_stage(
        home,
        &args.nats,
        &args.store,
        &args.probes,
        "pagefleet-aggregator",
        Arc::new(AtomicBool::new(true)),
    )
    .await?;
    // PDFium is needed for searchable PDFs only; a job that asks for one
    // without it gets the error in its result.
    let deps = pagefleet_aggregator::stage::Deps {
        js: async_nats::jetstream::new(client),
        store,
        pdfium: home.pdfium(),
    };
    let config = pagefleet_aggregator::stage::StageConfig {
        topology: connect::topology(&args.queue),
        ..Default::default()
    };
    until_signal(pagefleet_aggregator::stage::start(config, deps)).await
}

pub(crate) async fn nats_setup(nats: &NatsArgs, queue: &QueueArgs) -> anyhow::Result<()> {
    let client = connect::nats(nats, "pagefleet-setup").await?;
    let js = async_nats::jetstream::new(client);
    topology::ensure(&js, &connect::topology(queue))
        .await
        .context("setting up JetStream")?;
    println!("streams and the jobs bucket are in place on {}", nats.url);
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
            formats: intake.formats.iter().map(|f| f.name().to_owned()).collect(),
            text_layer: intake.text_layer,
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
        },
        bucket_events: !intake.no_bucket_events,
        watch_interval: (intake.watch_interval > 0.0)
            .then(|| Duration::from_secs_f64(intake.watch_interval.max(0.5))),
    })
}

pub(crate) async fn ingest(home: &Home, args: IngestArgs) -> anyhow::Result<()> {
    let config = ingest_config(
        &args.intake,
        &args.store,
        &args.queue,
        args.http_addr,
        &args.profile,
        args.max_pixels,
    )?;
    let (client, store) = connect_stage(
        home,
        &args.nats,
        &args.store,
        &args.probes,
        "pagefleet-ingest",
        Arc::new(AtomicBool::new(true)),
    )
    .await?;
    let listener = tokio::net::TcpListener::bind(args.http_addr)
        .await
        .with_context(|| format!("cannot listen on {}", args.http_addr))?;
    let deps = pagefleet_ingest::stage::Deps {
        client,
        store,
        listener: Some(listener),
    };
    until_signal(pagefleet_ingest::stage::start(config, deps)).await
}
