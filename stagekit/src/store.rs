//! Object storage as the stages use it: whole objects by key, and errors that
//! say whether another try can help.

use std::sync::Arc;

use bytes::Bytes;
use object_store::path::Path;
use object_store::{GetOptions, ObjectStore, PutOptions, PutPayload};

/// The store every stage shares: S3 in production, a local folder by default.
pub type Store = Arc<dyn ObjectStore>;

/// Signs URLs that let whoever holds one read an object of an S3 store for
/// a while, without the store's credentials (a result handed out by the
/// HTTP API as a redirect instead of through it).
#[derive(Debug, Clone)]
pub struct Presigner {
    signer: Arc<dyn object_store::signer::Signer>,
    /// The store's key prefix (`s3://bucket/prefix`), which keys are under.
    prefix: Path,
    /// How long a URL is valid.
    ttl: std::time::Duration,
}

impl Presigner {
    /// A signer for the store whose keys sit under `prefix`, signing URLs
    /// valid for `ttl`.
    pub fn new(
        signer: Arc<dyn object_store::signer::Signer>,
        prefix: &str,
        ttl: std::time::Duration,
    ) -> Self {
        Self {
            signer,
            prefix: Path::from(prefix),
            ttl,
        }
    }

    /// A URL that GETs the object `key` until the signer's time is up.
    pub async fn url(&self, key: &str) -> Result<String, StoreError> {
        let path: Path = self.prefix.parts().chain(Path::from(key).parts()).collect();
        self.signer
            .signed_url(object_store::signer::Method::GET, &path, self.ttl)
            .await
            .map(|url| url.to_string())
            .map_err(|e| classify(key, e))
    }
}

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

/// Copies an object into a local file, a chunk at a time.
pub async fn download(store: &Store, key: &str, file: &std::path::Path) -> Result<(), StoreError> {
    use futures::StreamExt;
    use tokio::io::AsyncWriteExt;

    let local = |e: std::io::Error| StoreError::Unavailable(format!("{}: {e}", file.display()));
    let result = store
        .get_opts(&Path::from(key), GetOptions::default())
        .await
        .map_err(|e| classify(key, e))?;
    let mut out = tokio::fs::File::create(file).await.map_err(local)?;
    let mut chunks = result.into_stream();
    while let Some(chunk) = chunks.next().await {
        out.write_all(&chunk.map_err(|e| classify(key, e))?)
            .await
            .map_err(local)?;
    }
    out.flush().await.map_err(local)
}

/// Writes a local file as an object, a part at a time when it is large.
pub async fn upload(store: &Store, key: &str, file: &std::path::Path) -> Result<(), StoreError> {
    use tokio::io::AsyncWriteExt;

    let local = |e: std::io::Error| StoreError::Unavailable(format!("{}: {e}", file.display()));
    let mut input = tokio::fs::File::open(file).await.map_err(local)?;
    let mut writer = object_store::buffered::BufWriter::new(Arc::clone(store), Path::from(key));
    let copied = tokio::io::copy(&mut input, &mut writer).await;
    match copied {
        Ok(_) => writer
            .shutdown()
            .await
            .map_err(|e| StoreError::Unavailable(format!("{key}: {e}"))),
        Err(e) => {
            let _ = writer.abort().await;
            Err(StoreError::Unavailable(format!("{key}: {e}")))
        }
    }
}

/// Deletes every object under `prefix` (a folder: `jobs/<id>`); deleting
/// what is gone already is harmless.
pub async fn delete_prefix(store: &Store, prefix: &str) -> Result<(), StoreError> {
    use futures::{StreamExt, TryStreamExt};
    let locations = store
        .list(Some(&Path::from(prefix)))
        .map_ok(|meta| meta.location)
        .boxed();
    let mut deleted = store.delete_stream(locations);
    while let Some(result) = deleted.next().await {
        match result {
            Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(classify(prefix, e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    #[tokio::test]
    async fn a_folder_is_deleted_whole_and_nothing_beside_it() {
        let store: Store = Arc::new(InMemory::new());
        for key in [
            "jobs/a/results/00001.mpk",
            "jobs/a/results/00002.mpk",
            "jobs/a/result.txt",
            "jobs/ab/results/00001.mpk",
        ] {
            put(store.as_ref(), key, "x").await.unwrap();
        }
        delete_prefix(&store, "jobs/a/results").await.unwrap();
        delete_prefix(&store, "jobs/a/results").await.unwrap();
        assert!(
            get(store.as_ref(), "jobs/a/results/00001.mpk")
                .await
                .is_err()
        );
        assert!(
            get(store.as_ref(), "jobs/a/results/00002.mpk")
                .await
                .is_err()
        );
        assert!(get(store.as_ref(), "jobs/a/result.txt").await.is_ok());
        assert!(
            get(store.as_ref(), "jobs/ab/results/00001.mpk")
                .await
                .is_ok()
        );
    }

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

    #[tokio::test]
    async fn files_go_up_and_down_whole() {
        let store: Store = Arc::new(InMemory::new());
        let dir = std::env::temp_dir().join(format!("pagefleet-store-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // Larger than one part of a multipart upload.
        let data: Vec<u8> = (0..12_000_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(dir.join("in"), &data).unwrap();
        upload(&store, "jobs/a/big", &dir.join("in")).await.unwrap();
        download(&store, "jobs/a/big", &dir.join("out"))
            .await
            .unwrap();
        assert!(std::fs::read(dir.join("out")).unwrap() == data);
        let err = download(&store, "jobs/a/none", &dir.join("x"))
            .await
            .unwrap_err();
        assert!(!err.is_transient(), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
