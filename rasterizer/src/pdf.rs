//! PDF pages rendered by PDFium (bound by [`pagefleet_stagekit::pdfium`]).

use pagefleet_stagekit::pdfium::{Pdf, describe};
use pdfium_render::prelude::*;

use pagefleet_schemas::TextLayer;

use crate::{Page, RasterError, RenderOptions, text_layer};

/// Renders every page of a PDF, one at a time.
pub(crate) fn pages(
    pdf: &Pdf,
    bytes: &[u8],
    options: &RenderOptions,
    on_page: &mut dyn FnMut(Result<Page, RasterError>) -> Result<(), String>,
) -> Result<usize, RasterError> {
    let document = pdf
        .pdfium()
        .load_pdf_from_byte_slice(bytes, None)
        .map_err(load_error)?;
    let pages = document.pages();
    let listed = pages.len() as usize;
    if listed == 0 {
        return Err(RasterError::NoPages);
    }
    if listed > options.max_pages {
        return Err(RasterError::TooManyPages {
            count: listed.to_string(),
            limit: options.max_pages,
        });
    }
    // PDFium believes the page tree's /Count; the pages are those the tree
    // really leads to (a page's size comes from its dictionary alone, so
    // this costs no page load).
    let present: Vec<usize> = (0..listed)
        .filter(|&index| pages.page_size(index as PdfPageIndex).is_ok())
        .collect();
    if present.is_empty() {
        return Err(RasterError::Corrupt(format!(
            "the PDF's page tree is damaged: it claims {listed} page{} and leads to none \
             (it refers to itself or to objects that are not pages)",
            if listed == 1 { "" } else { "s" }
        )));
    }
    if present.len() < listed {
        tracing::warn!(
            listed,
            present = present.len(),
            "the PDF's page tree claims more pages than it leads to; reading those it leads to"
        );
    }
    let count = present.len();
    let dpi = options.resolution() as f64;
    for (i, &index) in present.iter().enumerate() {
        let number = i + 1;
        let page = render_page(pages, index, number, count, dpi, options);
        on_page(page).map_err(RasterError::Stopped)?;
    }
    Ok(count)
}

/// Renders one page within the budget; every failure is this page's alone.
fn render_page(
    pages: &PdfPages<'_>,
    index: usize,
    number: usize,
    count: usize,
    dpi: f64,
    options: &RenderOptions,
) -> Result<Page, RasterError> {
    let refused = |message: String| RasterError::PageRefused {
        page: number,
        message,
    };
    let page = pages
        .get(index as _)
        .map_err(|e| refused(format!("cannot load the page: {}", describe(&e))))?;
    // PDFium quietly substitutes US Letter for a MediaBox without area; such a
    // page is broken, not blank, and is reported as such.
    if let Ok(media) = page.boundaries().media() {
        let (w, h) = (media.bounds.width().value, media.bounds.height().value);
        if !(w.abs() >= 1.0 && h.abs() >= 1.0) {
            return Err(refused(format!(
                "page has no area: MediaBox is {w}x{h} points"
            )));
        }
    }
    // Size in points (1/72 inch); the scale for the budget is decided here,
    // before PDFium allocates a bitmap.
    let (w_pt, h_pt) = (page.width().value as f64, page.height().value as f64);
    let (w_px, h_px) = (w_pt * dpi / 72.0, h_pt * dpi / 72.0);
    let fit = options
        .budget
        .fit(w_px, h_px)
        .map_err(|e| refused(e.to_string()))?;
    // A page with text of its own may be taken as it is, unrendered
    // (`use`, `skip`); under `auto` its text goes with its image.
    let layer = match options.text_layer {
        TextLayer::Ocr => None,
        _ => text_layer::extract(&page, fit.width, fit.height)
            .map_err(|e| refused(format!("cannot read the page's text: {}", describe(&e))))?,
    };
    let (text, kept) = match (options.text_layer, layer) {
        (TextLayer::Use, Some(layer)) => {
            (Some(text_layer::taken(layer, fit.width, fit.height)), None)
        }
        (TextLayer::Skip, Some(_)) => (Some(text_layer::skipped(fit.width, fit.height)), None),
        (_, layer) => (None, layer),
    };
    if text.is_some() {
        return Ok(Page {
            number,
            count,
            image: image::RgbImage::new(0, 0),
            scale: fit.scale,
            dpi: (dpi * fit.scale) as f32,
            dpi_known: true,
            text,
            layer: None,
        });
    }
    let config = PdfRenderConfig::new()
        .set_target_width(fit.width as i32)
        .set_maximum_width(fit.width as i32)
        .set_maximum_height(fit.height as i32)
        .render_form_data(true)
        .render_annotations(true)
        .set_clear_color(PdfColor::WHITE);
    let bitmap = page
        .render_with_config(&config)
        .map_err(|e| refused(format!("render failed: {}", describe(&e))))?;
    let image = bitmap
        .as_image()
        .map_err(|e| refused(format!("bitmap conversion failed: {}", describe(&e))))?
        .into_rgb8();
    drop(bitmap);
    if image.width() as u64 * image.height() as u64 > options.budget.max_pixels {
        return Err(refused(format!(
            "renderer produced {}x{}, over the budget of {} pixels",
            image.width(),
            image.height(),
            options.budget.max_pixels
        )));
    }
    Ok(Page {
        number,
        count,
        image,
        scale: fit.scale,
        dpi: (dpi * fit.scale) as f32,
        dpi_known: true,
        text: None,
        layer: kept,
    })
}

fn load_error(err: PdfiumError) -> RasterError {
    match err {
        PdfiumError::PdfiumLibraryInternalError(PdfiumInternalError::PasswordError) => {
            RasterError::Encrypted
        }
        PdfiumError::PdfiumLibraryInternalError(PdfiumInternalError::FormatError) => {
            RasterError::Corrupt("not a readable PDF (damaged or truncated beyond repair)".into())
        }
        other => RasterError::Corrupt(describe(&other)),
    }
}
