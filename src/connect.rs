//! The connections every launch makes, from the shared settings: NATS (a
//! server list, authentication, TLS, its connection events logged), object
//! storage, and the topology from the queue flags.

use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use async_nats::{ConnectOptions, Event};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use pagefleet_stagekit::store::{Presigner, Store};
use pagefleet_stagekit::topology::TopologyConfig;

use crate::settings::{NatsArgs, QueueArgs, StoreArgs};

/// Connects to NATS with the given authentication, retrying the first
/// connection until the server answers.
pub async fn nats(args: &NatsArgs, name: &str) -> anyhow::Result<async_nats::Client> {
    let (options, addrs) = options(args).await?;
    let connection = Arc::new(OnceLock::new());
    let client = log_events(options, Arc::clone(&connection))
        .name(name)
        .retry_on_initial_connect()
        .connection_timeout(Duration::from_secs(5))
        .connect(addrs)
        .await
        .with_context(|| format!("cannot connect to NATS at {}", args.url_or_default()))?;
    let _ = connection.set(client.clone());
    Ok(client)
}

/// What the connection's event log remembers between events.
#[derive(Default)]
struct Seen {
    /// The server the client was last connected to: its id and its name.
    server: Option<(String, String)>,
    /// When the connection was lost, if it is.
    lost: Option<Instant>,
}

/// Logs the connection's events, with the server each is about: a lost
/// connection once as a warning, the server it comes back on with how long
/// it took, lame duck mode, server errors and slow consumers. The attempts
/// in between are not logged (async-nats retries them with its own backoff).
fn log_events(
    options: ConnectOptions,
    client: Arc<OnceLock<async_nats::Client>>,
) -> ConnectOptions {
    let seen = Arc::new(Mutex::new(Seen::default()));
    options.event_callback(move |event| {
        let (client, seen) = (Arc::clone(&client), Arc::clone(&seen));
        async move {
            let server = || client.get().map(describe);
            match event {
                Event::Connected => {
                    let Some(client) = client.get() else {
                        // The first connection: the stage logs that it is ready.
                        return;
                    };
                    // The server's INFO may land just after the event.
                    let old = lock(&seen).server.as_ref().map(|(id, _)| id.clone());
                    for _ in 0..20 {
                        if Some(client.server_info().server_id) != old {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(25)).await;
                    }
                    let now = describe(client);
                    let mut seen = lock(&seen);
                    match seen.lost.take() {
                        Some(since) => tracing::info!(
                            "NATS connection back after {:.1} s, now to {now}",
                            since.elapsed().as_secs_f64()
                        ),
                        None => tracing::info!("NATS connection now to {now}"),
                    }
                    seen.server = Some((client.server_info().server_id, now));
                }
                Event::Disconnected => {
                    let mut seen = lock(&seen);
                    if seen.lost.is_none() {
                        seen.lost = Some(Instant::now());
                        let was = seen
                            .server
                            .as_ref()
                            .map(|(_, name)| name.clone())
                            .or_else(server)
                            .unwrap_or_else(|| "the server".into());
                        tracing::warn!("lost the NATS connection to {was}: reconnecting");
                    }
                }
                Event::LameDuckMode => tracing::warn!(
                    "NATS server {} is shutting down (lame duck mode): the client moves to another",
                    server().unwrap_or_default()
                ),
                Event::ServerError(e) => tracing::warn!("NATS server error: {e}"),
                Event::SlowConsumer(sid) => {
                    tracing::warn!("NATS subscription {sid} is a slow consumer: messages dropped")
                }
                Event::Closed => tracing::warn!("NATS connection closed"),
                // Each failed reconnect attempt: the loss was logged once.
                Event::ClientError(e) => tracing::debug!("NATS client error: {e}"),
                Event::Draining => tracing::debug!("NATS connection draining"),
            }
        }
    })
}

/// A server for logs: its name and address.
fn describe(client: &async_nats::Client) -> String {
    let info = client.server_info();
    format!("{} at {}:{}", info.server_name, info.host, info.port)
}

fn lock(seen: &Mutex<Seen>) -> std::sync::MutexGuard<'_, Seen> {
    seen.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Connection options and server addresses from the NATS flags.
async fn options(args: &NatsArgs) -> anyhow::Result<(ConnectOptions, Vec<async_nats::ServerAddr>)> {
    let mut options = match &args.creds {
        Some(path) => ConnectOptions::with_credentials_file(path)
            .await
            .with_context(|| format!("cannot read NATS credentials {}", path.display()))?,
        None => ConnectOptions::new(),
    };
    if let Some(seed) = &args.nkey {
        options = options.nkey(seed.clone());
    }
    if let Some(token) = &args.token {
        options = options.token(token.clone());
    }
    if let (Some(user), Some(password)) = (&args.user, &args.password) {
        options = options.user_and_password(user.clone(), password.clone());
    }
    if let Some(ca) = &args.ca {
        options = options.add_root_certificates(ca.clone()).require_tls(true);
    }
    if args.tls {
        options = options.require_tls(true);
    }
    let url = args.url_or_default();
    let addrs: Vec<async_nats::ServerAddr> = url
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(|u| u.parse())
        .collect::<Result<_, _>>()
        .with_context(|| format!("bad NATS URL in {url:?}"))?;
    Ok((options, addrs))
}

/// Connects to NATS once, without retrying: for checks that must report a
/// server that is down rather than wait for it.
pub async fn nats_once(args: &NatsArgs, name: &str) -> anyhow::Result<async_nats::Client> {
    let (options, addrs) = options(args).await?;
    options
        .name(name)
        .connection_timeout(Duration::from_secs(5))
        .connect(addrs)
        .await
        .with_context(|| format!("cannot connect to NATS at {}", args.url_or_default()))
}

/// Bucket and prefix of an `s3://bucket[/prefix]` store location.
pub fn s3_location(location: &str) -> Option<(&str, &str)> {
    let rest = location.strip_prefix("s3://")?;
    Some(rest.split_once('/').unwrap_or((rest, "")))
}

/// Opens the object store: S3 for `s3://` locations, else a local folder.
pub fn store(args: &StoreArgs, default_dir: &Path) -> anyhow::Result<Store> {
    let location = args
        .location
        .clone()
        .unwrap_or_else(|| default_dir.display().to_string());
    if let Some((bucket, prefix)) = s3_location(&location) {
        let s3: Store = Arc::new(s3(args, &location, bucket)?);
        if prefix.is_empty() {
            return Ok(s3);
        }
        let prefix = object_store::path::Path::from(prefix);
        return Ok(Arc::new(object_store::prefix::PrefixStore::new(s3, prefix)));
    }
    let dir = Path::new(location.strip_prefix("file://").unwrap_or(&location));
    crate::launch::folder_store(dir)
}

/// For an S3 store, what signs URLs to its objects, valid for `ttl`; `None`
/// for a folder store, which has no URLs of its own.
pub fn presigner(args: &StoreArgs, ttl: Duration) -> anyhow::Result<Option<Presigner>> {
    let Some(location) = &args.location else {
        return Ok(None);
    };
    let Some((bucket, prefix)) = s3_location(location) else {
        return Ok(None);
    };
    let s3 = Arc::new(s3(args, location, bucket)?);
    Ok(Some(Presigner::new(s3, prefix, ttl)))
}

/// The S3 client for `bucket` as the store flags configure it.
fn s3(args: &StoreArgs, location: &str, bucket: &str) -> anyhow::Result<AmazonS3> {
    if bucket.is_empty() {
        bail!("store {location:?} names no bucket");
    }
    let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
    if let Some(endpoint) = &args.endpoint {
        builder = builder
            .with_endpoint(endpoint)
            .with_allow_http(endpoint.starts_with("http://"));
    }
    let region = args
        .region
        .clone()
        .or_else(|| std::env::var("AWS_REGION").ok())
        .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
        .unwrap_or_else(|| "us-east-1".into());
    builder = builder.with_region(region);
    if args.path_style {
        builder = builder.with_virtual_hosted_style_request(false);
    }
    builder
        .build()
        .with_context(|| format!("cannot configure S3 store {location}"))
}

/// Topology settings from the queue flags.
pub fn topology(args: &QueueArgs) -> TopologyConfig {
    let mut t = TopologyConfig {
        replicas: args.replicas.map(|n| n.max(1)),
        ..TopologyConfig::default()
    };
    let secs = |s: f64| Duration::from_secs_f64(s.max(0.1));
    t.pages.ack_wait = secs(args.page_ack_wait);
    t.pages.max_deliver = args.page_max_deliver;
    t.pages.backoff = args.page_backoff.iter().map(|&s| secs(s)).collect();
    t.pages.max_ack_pending = args.page_max_ack_pending;
    t.docs.ack_wait = secs(args.doc_ack_wait);
    t.docs.max_deliver = args.doc_max_deliver;
    t
}

/// A future that completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down: finishing the work in hand");
}
