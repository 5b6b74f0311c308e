//! What every stage's readiness depends on: its NATS connection and its
//! object store. `/readyz` of every stage, ingest's `/health` included,
//! answers from here.

use std::time::Duration;

use object_store::{GetOptions, ObjectStore};

/// How long the store may take to answer a readiness probe.
const STORE_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The failing checks of a stage's connections; empty when it is ready.
pub async fn connection_failures(
    client: &async_nats::Client,
    store: &dyn ObjectStore,
) -> Vec<String> {
    let mut failures = Vec::new();
    let state = client.connection_state();
    if state != async_nats::connection::State::Connected {
        failures.push(format!("nats: {state}"));
    }
    // Any answer from the store, "not found" included, shows it is reachable.
    let probe = object_store::path::Path::from("pagefleet/readiness-probe");
    let head = GetOptions::new().with_head(true);
    match tokio::time::timeout(STORE_PROBE_TIMEOUT, store.get_opts(&probe, head)).await {
        Ok(Ok(_)) | Ok(Err(object_store::Error::NotFound { .. })) => {}
        Ok(Err(e)) => failures.push(format!("object store: {e}")),
        Err(_) => failures.push(format!(
            "object store: no answer within {} s",
            STORE_PROBE_TIMEOUT.as_secs()
        )),
    }
    failures
}
