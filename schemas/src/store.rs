//! Object storage as the stages use it: whole objects by key, and errors that
//! say whether another try can help.

use std::sync::Arc;

use bytes::Bytes;
use object_store::path::Path;
use object_store::{GetOptions, ObjectStore, PutOptions, PutPayload};

/// The store every stage shares: S3 in production, a local folder by default.
pub type Store = Arc<dyn ObjectStore>;

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The object does not exist: retrying will not make it appear.
    #[error("object {0} not found")]
    NotFound(String),
    /// The store failed or could not be reached: try again later.
    #[error("object store: {0}")]
    Unavailable(String),
}

impl StoreError {
    /// Whether a later attempt may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

fn classify(key: &str, err: object_store::Error) -> StoreError {
    match err {
        object_store::Error::NotFound { .. } => StoreError::NotFound(key.to_owned()),
        other => StoreError::Unavailable(format!("{key}: {other}")),
    }
}

/// Reads a whole object.
pub async fn get(store: &dyn ObjectStore, key: &str) -> Result<Bytes, StoreError> {
    let result = store
        .get_opts(&Path::from(key), GetOptions::default())
        .await
        .map_err(|e| classify(key, e))?;
    result.bytes().await.map_err(|e| classify(key, e))
}

/// Writes a whole object, replacing any previous one (writes are idempotent).
pub async fn put(
    store: &dyn ObjectStore,
    key: &str,
    bytes: impl Into<Bytes>,
) -> Result<(), StoreError> {
    store
        .put_opts(
            &Path::from(key),
            PutPayload::from(bytes.into()),
            PutOptions::default(),
        )
        .await
        .map(|_| ())
        .map_err(|e| classify(key, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    #[tokio::test]
    async fn round_trip_and_missing() {
        let store = InMemory::new();
        put(&store, "jobs/a/x", b"hi".to_vec()).await.unwrap();
        assert_eq!(
            get(&store, "jobs/a/x").await.unwrap(),
            Bytes::from_static(b"hi")
        );
        let err = get(&store, "jobs/a/y").await.unwrap_err();
        assert!(!err.is_transient(), "{err}");
    }
}
