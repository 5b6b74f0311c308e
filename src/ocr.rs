//! `pagefleet ocr`: documents to text in this process, with no queue.
//!
//! As many documents as there are inference slots are read at once. For
//! each, a thread renders its pages and queues them on the pool; a writer
//! thread takes results as they come, writes each page's text at once and
//! prints the document's pages in order. Output layout, per document:
//! `<out>/<doc>/<page>.txt`, `result.json`, `combined.txt`, `combined.md`,
//! `combined.hocr`, `combined.alto.xml`.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

use anyhow::Context;
use pagefleet_aggregator::pdf::{self, PageImage, PdfError};
use pagefleet_aggregator::report::{self, JobReport};
use pagefleet_ocr_worker::engine::{PageIn, SideLimit};
use pagefleet_ocr_worker::{EngineError, ModelSet, Pool, PoolConfig};
use pagefleet_rasterizer::{DocumentKind, Page, RasterError, Rasterizer, RenderOptions, sniff};
use pagefleet_schemas::language::Reading;
use pagefleet_schemas::messages::{JobManifest, JobStatus, PageRecord, SCHEMA_VERSION, now_ms};
use pagefleet_schemas::{Format, PageOcr, PixelBudget};
use tracing::{error, info, warn};

use crate::cli::{HomeArgs, ModelArgs, OcrArgs};
use pagefleet::home::Home;

pub(crate) fn run(home: &HomeArgs, args: OcrArgs) -> ExitCode {
    match run_inner(home, args) {
        Ok(0) => ExitCode::SUCCESS,
        Ok(failed) => {
            error!(
                failed,
                "some documents or pages failed; see result.json of each document"
            );
            ExitCode::FAILURE
        }
        Err(err) => {
            error!("{err:#}");
            ExitCode::FAILURE
        }
    }
}

/// The language a run reads in: `fast-latin` and `accurate-latin`, kept as
/// names of `fast` and `accurate` with language `en`, make `auto` English.
pub(crate) fn latin_name_language(
    profile: pagefleet_ocr_worker::Profile,
    language: &pagefleet_schemas::language::Language,
) -> pagefleet_schemas::language::Language {
    if profile.is_latin_name() && language.is_auto() {
        pagefleet_schemas::language::Language::parse("en").unwrap_or_default()
    } else {
        language.clone()
    }
}

/// The model set the flags ask for.
pub(crate) fn model_set(home: &Home, args: &ModelArgs) -> anyhow::Result<ModelSet> {
    let mut set = match (&args.det_model, &args.rec_model, &args.dict) {
        (Some(det), Some(rec), Some(dict)) => ModelSet::custom(
            det.clone(),
            rec.clone(),
            dict.clone(),
            args.cls_model.clone(),
            &args.model_family,
        )
        .map_err(anyhow::Error::msg),
        _ => Ok(ModelSet::profile(&home.models(), args.profile)),
    }?;
    if args.det_max_side > 0 {
        set.det_params.side_limit = SideLimit::Max(args.det_max_side);
    }
    // Custom models read turned pages too: the classifier is the same.
    set.orientation = (!args.no_page_orientation).then(|| {
        home.models()
            .join(pagefleet_ocr_worker::engine::ORIENTATION_MODEL)
    });
    Ok(set)
}

/// The inference settings the flags ask for.
pub(crate) fn pool_config(home: &Home, args: &ModelArgs) -> anyhow::Result<PoolConfig> {
    Ok(PoolConfig {
        slots: args.slots,
        intra_threads: args.intra_threads,
        provider: args.provider(),
        classify_lines: args.classify_lines,
        max_pixels: args.max_pixels,
        rec_batch: args.rec_batch,
        rec_buckets: args.rec_buckets.then_some(true),
        rec_summary: args.rec_summary.then_some(true),
        ..PoolConfig::new(home.onnxruntime(), model_set(home, args)?)
    })
}

/// Starts the inference pool the flags ask for.
fn start_pool(home: &Home, args: &ModelArgs) -> anyhow::Result<Pool> {
    let config = pool_config(home, args)?;
    home.require(config.files())?;
    Ok(config.start()?)
}

fn run_inner(home: &HomeArgs, args: OcrArgs) -> anyhow::Result<usize> {
    let home = Home::resolve(home.path.as_deref());
    home.require([home.pdfium().as_path()])?;
    let pool = start_pool(&home, &args.model)?;
    let rasterizer = Rasterizer::new(&home.pdfium())?;
    let options = RenderOptions {
        dpi: args.dpi,
        budget: PixelBudget::new(args.model.max_pixels),
        max_decode_pixels: args.render.max_decode_pixels,
        max_pages: args.render.max_pages,
        text_layer: args.text_layer.mode,
    };
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let formats = args.formats.formats.clone();
    let language = &latin_name_language(args.model.profile, &args.language.language);
    language
        .check_profile(args.model.profile.name())
        .map_err(anyhow::Error::msg)?;
    let reading = language.reading();
    let language_code = language.to_string();
    let mut used = HashSet::new();
    let documents: Vec<(&Path, String)> = args
        .files
        .iter()
        .map(|file| (file.as_path(), unique_name(file, &mut used)))
        .collect();
    // As many documents at once as there are slots: a folder of one-page
    // scans keeps every slot busy, as one long PDF's pages do. (Read one
    // after the other, ten page images took twice the wall time of the same
    // pages in PDFs.)
    let next = AtomicUsize::new(0);
    let failed = AtomicUsize::new(0);
    let lanes = pool.slots().min(documents.len()).max(1);
    std::thread::scope(|scope| {
        for _ in 0..lanes {
            scope.spawn(|| {
                while let Some((file, name)) = documents.get(next.fetch_add(1, Ordering::SeqCst)) {
                    let dir = args.out.join(name);
                    let job = Document {
                        file,
                        name,
                        dir: &dir,
                        options: &options,
                        reading,
                        language: &language_code,
                        formats: &formats,
                        quiet: args.quiet,
                    };
                    match job.process(&rasterizer, &pool) {
                        Ok(report) => {
                            info!(
                                document = %name,
                                pages = report.metrics.total_pages,
                                failed = report.metrics.pages_failed,
                                words = report.metrics.total_words,
                                ms = report.metrics.total_duration_ms,
                                "document done"
                            );
                            if report.metrics.status != JobStatus::Success {
                                failed.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                        Err(err) => {
                            error!(document = %name, "{err:#}");
                            failed.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                }
            });
        }
    });
    Ok(failed.into_inner())
}

/// The file an output format is written to in a document's folder:
/// `result.json`, else `combined.<extension>`.
pub(crate) fn output_file(format: Format) -> String {
    match format {
        Format::Json => "result.json".to_owned(),
        other => format!("combined.{}", other.extension()),
    }
}

/// The document's output name: its file stem, made unique among this run's.
pub(crate) fn unique_name(file: &Path, used: &mut HashSet<String>) -> String {
    let stem = file.file_stem().map_or_else(
        || "document".to_owned(),
        |s| s.to_string_lossy().into_owned(),
    );
    let mut name = stem.clone();
    let mut n = 2;
    while !used.insert(name.clone()) {
        name = format!("{stem}-{n}");
        n += 1;
    }
    name
}

/// The outcome of one page.
#[derive(Debug)]
struct PageReport {
    page: usize,
    error: Option<String>,
    /// Factor the page was scaled by to fit the pixel budget.
    scale: Option<f64>,
    ocr: Option<PageOcr>,
}

struct Document<'a> {
    file: &'a Path,
    name: &'a str,
    dir: &'a Path,
    options: &'a RenderOptions,
    /// What reads its pages: the language decides.
    reading: Reading,
    /// The language as `result.json` records it.
    language: &'a str,
    formats: &'a [Format],
    quiet: bool,
}

enum Outcome {
    Done(usize, f64, Result<PageOcr, EngineError>),
    Refused(usize, String),
}

impl Document<'_> {
    fn process(&self, rasterizer: &Rasterizer, pool: &Pool) -> anyhow::Result<JobReport> {
        let start_ms = now_ms();
        let bytes = std::fs::read(self.file)
            .with_context(|| format!("cannot read {}", self.file.display()))?;
        std::fs::create_dir_all(self.dir)
            .with_context(|| format!("cannot create {}", self.dir.display()))?;
        let (tx, rx) = mpsc::channel::<Outcome>();

        let (raster, pages) = std::thread::scope(|scope| {
            let writer = scope.spawn(|| self.write_pages(rx));
            let raster = rasterizer.pages(&bytes, self.options, |page| match page {
                // A page whose text came from the PDF needs no OCR.
                Ok(Page {
                    number,
                    scale,
                    text: Some(ocr),
                    ..
                }) => tx
                    .send(Outcome::Done(number, scale, Ok(ocr)))
                    .map_err(|e| e.to_string()),
                Ok(page) => {
                    let tx = tx.clone();
                    let (number, scale) = (page.number, page.scale);
                    let page = PageIn {
                        dpi: page.own_dpi(),
                        image: page.image,
                        reading: self.reading,
                        layer: page.layer,
                    };
                    pool.submit_page(
                        page,
                        Box::new(move |r| drop(tx.send(Outcome::Done(number, scale, r)))),
                    )
                    .map(|_handle| ())
                    .map_err(|e| e.to_string())
                }
                Err(RasterError::PageRefused { page, message }) => tx
                    .send(Outcome::Refused(page, message))
                    .map_err(|e| e.to_string()),
                Err(other) => Err(other.to_string()),
            });
            drop(tx);
            // The writer ends once every queued page has replied.
            let pages = writer.join().unwrap_or_default();
            (raster, pages)
        });

        let error = raster.as_ref().err().map(|e| e.to_string());
        if let Some(e) = &error {
            warn!(document = %self.name, "{e}");
        }
        let pages_total = raster.unwrap_or(pages.len());
        // The same report, text and markdown as the pipeline's aggregator writes.
        let report = self.report(&pages, pages_total, error, bytes.len() as u64, start_ms);
        let mut report = report;
        if Format::asked(self.formats).contains(&Format::Pdf) {
            let out = self.dir.join(output_file(Format::Pdf));
            if let Err(e) = self.write_pdf(rasterizer, &bytes, &report, &out) {
                warn!(document = %self.name, "{e}");
                report.metrics.errors.push(e.to_string());
            }
        }
        for format in Format::written(self.formats) {
            if let Some(bytes) = report::render(&report, format)? {
                write_file(&self.dir.join(output_file(format)), &bytes)?;
            }
        }
        Ok(report)
    }

    /// The searchable PDF of the document: its own pages for a PDF, its page
    /// images (the file itself when it is one JPEG) otherwise.
    fn write_pdf(
        &self,
        rasterizer: &Rasterizer,
        bytes: &[u8],
        report: &JobReport,
        out: &Path,
    ) -> Result<(), PdfError> {
        let pdf = rasterizer
            .pdf()
            .ok_or_else(|| PdfError::Pdfium("no PDFium library".into()))?;
        if sniff(bytes) == Some(DocumentKind::Pdf) {
            return pdf::write(pdf, report, pdf::Source::Pdf(self.file), out);
        }
        let mut images = Vec::new();
        if sniff(bytes) == Some(DocumentKind::Jpeg) {
            images.push(PageImage::from_file_bytes(bytes));
        } else {
            let _ = rasterizer.pages(bytes, self.options, |page| {
                images.push(
                    page.map_err(|e| e.to_string())
                        .and_then(|p| PageImage::encode(&p.image, Some(p.dpi))),
                );
                Ok(())
            });
        }
        let mut images = images.into_iter();
        let image = move |page: u32| match images.next() {
            Some(Ok(image)) => Ok(Some(image)),
            Some(Err(message)) => Err(PdfError::Image { page, message }),
            None => Ok(None),
        };
        let source = pdf::Source::Images {
            dpi: self.options.dpi,
            image: Box::new(image),
        };
        pdf::write(pdf, report, source, out)
    }

    /// The document's report, built as the aggregator builds a job's.
    fn report(
        &self,
        pages: &[PageReport],
        pages_total: usize,
        error: Option<String>,
        file_size_bytes: u64,
        start_ms: u64,
    ) -> JobReport {
        const WORKER: &str = "local";
        let manifest = JobManifest {
            v: SCHEMA_VERSION,
            job_id: self.name.to_owned(),
            filename: self
                .file
                .file_name()
                .map_or_else(String::new, |f| f.to_string_lossy().into_owned()),
            file_size_bytes,
            submitted_at_ms: start_ms,
            total_pages: pages_total as u32,
            error,
            dpi: self.options.dpi,
        };
        let head = report::JobHead {
            job_id: self.name,
            manifest: Some(&manifest),
            first_seen_ms: start_ms,
            cancelled: false,
            language: self.language,
        };
        let outcomes = pages.iter().map(|p| report::PageOutcome {
            page: p.page as u32,
            record: PageRecord {
                ok: p.ocr.is_some(),
                worker: WORKER.into(),
                deliveries: 1,
                processing_ms: p.ocr.as_ref().map_or(0.0, |o| o.timings.total_ms),
                error: p.error.clone(),
            },
            read: p.ocr.clone().map(|ocr| (ocr, p.scale.unwrap_or(1.0))),
        });
        report::build_pages(head, outcomes, now_ms())
    }

    /// Writes each page's text as it arrives and prints pages in order.
    fn write_pages(&self, rx: mpsc::Receiver<Outcome>) -> Vec<PageReport> {
        let mut done = BTreeMap::new();
        let mut next_to_print = 1;
        let stdout = std::io::stdout();
        for outcome in rx {
            let report = match outcome {
                Outcome::Done(page, scale, Ok(ocr)) => {
                    if let Err(e) = write_file(
                        &self.dir.join(format!("{page:03}.txt")),
                        ocr.text().as_bytes(),
                    ) {
                        warn!(document = %self.name, page, "{e:#}");
                    }
                    info!(document = %self.name, page, lines = ocr.counts.lines, ms = ocr.timings.total_ms as u64, "page done");
                    PageReport {
                        page,
                        error: None,
                        scale: Some(scale),
                        ocr: Some(ocr),
                    }
                }
                Outcome::Done(page, _, Err(e)) => {
                    warn!(document = %self.name, page, "page failed: {e}");
                    PageReport {
                        page,
                        error: Some(e.to_string()),
                        scale: None,
                        ocr: None,
                    }
                }
                Outcome::Refused(page, message) => {
                    warn!(document = %self.name, page, "page refused: {message}");
                    PageReport {
                        page,
                        error: Some(message),
                        scale: None,
                        ocr: None,
                    }
                }
            };
            done.insert(report.page, report);
            while let Some(report) = done.get(&next_to_print) {
                if !self.quiet {
                    let mut out = stdout.lock();
                    let _ = writeln!(out, "==> {} page {} <==", self.name, report.page);
                    match &report.ocr {
                        Some(ocr) => drop(out.write_all(ocr.text().as_bytes())),
                        None => drop(writeln!(
                            out,
                            "[page failed: {}]",
                            report.error.as_deref().unwrap_or("")
                        )),
                    }
                }
                next_to_print += 1;
            }
        }
        done.into_values().collect()
    }
}

fn write_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}
