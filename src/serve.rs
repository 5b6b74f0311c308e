//! `pagefleet serve`: the single-machine server. Everything `pagefleet run`
//! starts, plus the ingest stage (HTTP API, NATS submission, bucket
//! triggers), until SIGINT or SIGTERM.

use std::process::ExitCode;

use anyhow::Context;

use pagefleet::home::Home;
use pagefleet::local::Local;

use crate::cli::{HomeArgs, ServeArgs};
use crate::connect::shutdown_signal;
use crate::run::local_config;
use crate::stages::ingest_config;

pub(crate) fn run(home: &HomeArgs, args: ServeArgs) -> ExitCode {
    crate::block_on(serve(Home::resolve(home.path.as_deref()), args))
}

async fn serve(home: Home, args: ServeArgs) -> anyhow::Result<()> {
    let ingest = ingest_config(
        &args.intake,
        &args.store,
        &args.queue,
        args.http_addr,
        &args.model.profile.to_string(),
        args.model.max_pixels,
    )?;
    // Bind first: a taken port fails before anything starts.
    let listener = tokio::net::TcpListener::bind(args.http_addr)
        .await
        .with_context(|| format!("cannot listen on {}", args.http_addr))?;
    let http = listener.local_addr()?;
    let config = local_config(
        &home,
        args.nats.clone(),
        args.data.clone(),
        &args.store,
        &args.queue,
        &args.model,
    )?;
    let mut local = Local::start(&home, config).await?;
    local.start_ingest(ingest, Some(listener));
    // The two addresses a user needs, on standard output whatever the log
    // level.
    println!("pagefleet serving");
    println!("  HTTP API: http://{http}  (OpenAPI at http://{http}/openapi.json)");
    println!("  NATS:     {}", local.url);
    let outcome = tokio::select! {
        () = shutdown_signal() => Ok(()),
        e = local.failed() => Err(e),
    };
    local.stop().await;
    outcome
}
