//! The runtime home: where scripts/bootstrap put ONNX Runtime, PDFium,
//! nats-server and the models.

use std::path::{Path, PathBuf};

use anyhow::bail;

/// Name of the home folder the bootstrap creates in a checkout.
const HOME_DIR: &str = ".pagefleet";

/// The resolved runtime home.
#[derive(Debug, Clone)]
pub struct Home {
    root: PathBuf,
}

impl Home {
    /// The folder from `--home`/`PAGEFLEET_HOME`, else the nearest `.pagefleet`
    /// in the working directory or its parents, else beside the binary or its
    /// parents (a checkout's `target/release/pagefleet` finds the checkout's).
    pub fn resolve(path: Option<&Path>) -> Self {
        if let Some(path) = path {
            return Self {
                root: path.to_owned(),
            };
        }
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        let exe_dir = std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(Path::to_owned));
        let found = cwd
            .ancestors()
            .chain(exe_dir.iter().flat_map(|d| d.ancestors()))
            .map(|d| d.join(HOME_DIR))
            .find(|d| d.is_dir());
        Self {
            root: found.unwrap_or_else(|| cwd.join(HOME_DIR)),
        }
    }

    /// The folder itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// ONNX Runtime's shared library.
    pub fn onnxruntime(&self) -> PathBuf {
        self.root.join("lib/libonnxruntime.so.1.31.1")
    }

    /// PDFium's shared library.
    pub fn pdfium(&self) -> PathBuf {
        self.root.join("lib/libpdfium.so")
    }

    /// The nats-server binary.
    pub fn nats_server(&self) -> PathBuf {
        self.root.join("bin/nats-server")
    }

    /// Default folder for data of single-machine mode and local stores.
    pub fn data(&self) -> PathBuf {
        self.root.join("data")
    }

    /// The model folder.
    pub fn models(&self) -> PathBuf {
        self.root.join("models")
    }

    /// Fails with the list of missing files and the command that installs them.
    pub fn require<'a>(&self, files: impl IntoIterator<Item = &'a Path>) -> anyhow::Result<()> {
        let missing: Vec<String> = files
            .into_iter()
            .filter(|f| !f.is_file())
            .map(|f| format!("  {}", f.display()))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        bail!(
            "the runtime is incomplete in {}; missing:\n{}\ninstall it with: scripts/bootstrap{}",
            self.root.display(),
            missing.join("\n"),
            if self.root.ends_with(HOME_DIR) {
                String::new()
            } else {
                format!(" (PAGEFLEET_HOME={})", self.root.display())
            }
        )
    }
}
