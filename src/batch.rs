//! `pagefleet submit` of several documents: the arguments made into a list
//! of documents (files, the documents in folders, glob patterns, objects in
//! the deployment's store), and the file names their results are written
//! under.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// File extensions of the documents a folder is searched for.
const DOCUMENT_EXTENSIONS: [&str; 6] = ["pdf", "png", "jpg", "jpeg", "tif", "tiff"];

/// One document to submit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Document {
    /// A file on this machine.
    File(PathBuf),
    /// `s3://bucket/key` of an object in the deployment's store.
    Stored(String),
}

impl Document {
    /// How the document is named in messages: its path or its URL.
    pub(crate) fn label(&self) -> String {
        match self {
            Self::File(path) => path.display().to_string(),
            Self::Stored(url) => url.clone(),
        }
    }

    /// Its name without folder and extension.
    fn stem(&self) -> String {
        let name = match self {
            Self::File(path) => path.file_name().map(|n| n.to_string_lossy().into_owned()),
            Self::Stored(url) => url.rsplit('/').next().map(str::to_owned),
        }
        .unwrap_or_default();
        match name.rsplit_once('.') {
            Some((stem, _)) if !stem.is_empty() => stem.to_owned(),
            _ if name.is_empty() => "document".to_owned(),
            _ => name,
        }
    }
}

/// The documents the arguments name, in their order: a folder stands for
/// the PDFs and images in it and in its subfolders (sorted by path), a
/// pattern with `*`, `?` or `[` that is not itself a path for the files it
/// matches (sorted), `s3://` for an object in the store. An argument that
/// names nothing is an error of its own (the argument, and why), so the
/// others still go.
pub(crate) fn expand(arguments: &[String]) -> Vec<Result<Document, (String, String)>> {
    let mut documents = Vec::new();
    for argument in arguments {
        if argument.starts_with("s3://") {
            documents.push(Ok(Document::Stored(argument.clone())));
            continue;
        }
        let path = Path::new(argument);
        let expanded = if path.is_dir() {
            in_folder(path).map_err(|e| format!("{e:#}"))
        } else if !path.exists() && argument.contains(['*', '?', '[']) {
            matching(argument)
        } else {
            // A file, or a path that does not exist: submitting says which.
            Ok(vec![path.to_path_buf()])
        };
        match expanded {
            Ok(found) => documents.extend(found.into_iter().map(|p| Ok(Document::File(p)))),
            Err(why) => documents.push(Err((argument.clone(), why))),
        }
    }
    documents
}

/// The documents in a folder and its subfolders, sorted by path.
fn in_folder(folder: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut folders = vec![folder.to_path_buf()];
    while let Some(folder) = folders.pop() {
        let entries = std::fs::read_dir(&folder)
            .with_context(|| format!("cannot list {}", folder.display()))?;
        for entry in entries {
            let path = entry?.path();
            if path.is_dir() {
                folders.push(path);
            } else if is_document(&path) {
                found.push(path);
            }
        }
    }
    if found.is_empty() {
        bail!(
            "holds no documents (files ending in .{})",
            DOCUMENT_EXTENSIONS.join(", .")
        );
    }
    found.sort();
    Ok(found)
}

fn is_document(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| DOCUMENT_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// The files a glob pattern matches, sorted.
fn matching(pattern: &str) -> Result<Vec<PathBuf>, String> {
    let paths = glob::glob(pattern).map_err(|e| e.to_string())?;
    let mut found: Vec<PathBuf> = paths
        .filter_map(Result::ok)
        .filter(|p| p.is_file())
        .collect();
    if found.is_empty() {
        return Err("matches no file".to_owned());
    }
    found.sort();
    Ok(found)
}

/// The name each document's results are written under: its stem, with
/// `-2`, `-3` ... after the first for documents of one stem
/// (`a/scan.pdf` and `b/scan.pdf` write `scan.txt` and `scan-2.txt`).
pub(crate) fn output_names<'a>(documents: impl IntoIterator<Item = &'a Document>) -> Vec<String> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    documents
        .into_iter()
        .map(|d| {
            let stem = d.stem();
            let n = seen.entry(stem.clone()).or_default();
            *n += 1;
            if *n == 1 { stem } else { format!("{stem}-{n}") }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(path: &Path) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b"x").unwrap();
    }

    #[test]
    fn folders_patterns_files_and_stored_objects_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for name in [
            "scans/b.TIF",
            "scans/a.pdf",
            "scans/deep/c.png",
            "scans/notes.txt",
        ] {
            touch(&root.join(name));
        }
        touch(&root.join("loose/one.jpg"));
        touch(&root.join("loose/two.jpg"));
        touch(&root.join("loose/three.png"));
        let arg = |p: &str| root.join(p).to_string_lossy().into_owned();
        let args = vec![
            arg("scans"),
            arg("loose/*.jpg"),
            arg("missing.pdf"),
            arg("empty/*.pdf"),
            "s3://inbox/x/report.pdf".to_owned(),
        ];
        let got = expand(&args);
        let file = |p: &str| Ok(Document::File(root.join(p)));
        assert_eq!(
            got[..6],
            [
                file("scans/a.pdf"),
                file("scans/b.TIF"),
                file("scans/deep/c.png"),
                file("loose/one.jpg"),
                file("loose/two.jpg"),
                // A path that is not there goes as given: submitting it fails.
                file("missing.pdf"),
            ]
        );
        assert_eq!(
            got[6],
            Err((arg("empty/*.pdf"), "matches no file".to_owned()))
        );
        assert_eq!(
            got[7],
            Ok(Document::Stored("s3://inbox/x/report.pdf".into()))
        );
        assert_eq!(got.len(), 8);
        // A folder without documents is an error of its own.
        std::fs::create_dir(root.join("bare")).unwrap();
        let bare = expand(&[arg("bare")]);
        assert!(
            bare[0]
                .as_ref()
                .unwrap_err()
                .1
                .contains("holds no documents")
        );
    }

    #[test]
    fn results_of_documents_with_one_stem_get_names_of_their_own() {
        let documents = [
            Document::File("a/scan.pdf".into()),
            Document::File("b/scan.png".into()),
            Document::Stored("s3://bucket/in/scan.tif".into()),
            Document::File("c/report".into()),
            Document::Stored("s3://bucket/".into()),
        ];
        assert_eq!(
            output_names(&documents),
            ["scan", "scan-2", "scan-3", "report", "document"]
        );
    }
}
