//! PDF pages rendered by PDFium.

use std::path::Path;
use std::sync::OnceLock;

use pdfium_render::prelude::*;

use crate::{Page, RasterError, RenderOptions};

/// PDFium binds once per process; every [`Pdf`] shares that binding.
static PDFIUM: OnceLock<Result<Pdfium, String>> = OnceLock::new();

/// A PDF renderer bound to the PDFium library.
pub struct Pdf {
    pdfium: &'static Pdfium,
}

impl Pdf {
    /// Binds PDFium from `library` (once per process; later calls share the
    /// first binding whatever path they name).
    pub fn bind(library: &Path) -> Result<Self, RasterError> {
        let pdfium = PDFIUM
            .get_or_init(|| {
                if !library.is_file() {
                    return Err(format!(
                        "library not found at {}; run scripts/bootstrap to install it",
                        library.display()
                    ));
                }
                Pdfium::bind_to_library(library)
                    .map(Pdfium::new)
                    .map_err(|e| format!("cannot load {}: {e}", library.display()))
            })
            .as_ref()
            .map_err(|e| RasterError::Library(e.clone()))?;
        Ok(Self { pdfium })
    }

    /// The bound library, for writing PDFs.
    pub fn pdfium(&self) -> &'static Pdfium {
        self.pdfium
    }

    /// Renders every page of a PDF, one at a time.
    pub(crate) fn pages(
        &self,
        bytes: &[u8],
        options: &RenderOptions,
        on_page: &mut dyn FnMut(Result<Page, RasterError>) -> Result<(), String>,
    ) -> Result<usize, RasterError> {
        let document = self
            .pdfium
            .load_pdf_from_byte_slice(bytes, None)
            .map_err(load_error)?;
        let pages = document.pages();
        let count = pages.len() as usize;
        if count == 0 {
            return Err(RasterError::NoPages);
        }
        if count > options.max_pages {
            return Err(RasterError::TooManyPages {
                count: count.to_string(),
                limit: options.max_pages,
            });
        }
        let dpi = options.dpi.clamp(10.0, 1200.0) as f64;
        for index in 0..count {
            let number = index + 1;
            let page = render_page(pages, index, number, count, dpi, options);
            on_page(page).map_err(RasterError::Stopped)?;
        }
        Ok(count)
    }
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
        .map_err(|e| refused(format!("cannot load page: {e}")))?;
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
    // A page with text of its own may be taken as it is, unrendered.
    let text = crate::text_layer::read(&page, fit.width, fit.height, options.text_layer)
        .map_err(|e| refused(format!("cannot read the page's text: {e}")))?;
    if text.is_some() {
        return Ok(Page {
            number,
            count,
            image: image::RgbImage::new(0, 0),
            scale: fit.scale,
            text,
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
        .map_err(|e| refused(format!("render failed: {e}")))?;
    let image = bitmap
        .as_image()
        .map_err(|e| refused(format!("bitmap conversion failed: {e}")))?
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
        text: None,
    })
}

/// The affine map between the pixels of a page's image and PDF page space
/// (points, y up): `origin + px * x + py * y`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PixelMap {
    origin: [f32; 2],
    x: [f32; 2],
    y: [f32; 2],
}

impl PixelMap {
    /// For `page` rendered whole into a `width` × `height` image, as PDFium
    /// renders it: crop box, page rotation and all.
    pub fn of_page(page: &PdfPage<'_>, width: u32, height: u32) -> Result<Self, PdfiumError> {
        let (w, h) = (width.max(1) as i32, height.max(1) as i32);
        let config = PdfRenderConfig::new().set_fixed_size(w, h);
        let point = |x, y| {
            page.pixels_to_points(x, y, &config)
                .map(|(px, py)| [px.value, py.value])
        };
        let (o, right, down) = (point(0, 0)?, point(w, 0)?, point(0, h)?);
        let per = |to: [f32; 2], n: i32| [(to[0] - o[0]) / n as f32, (to[1] - o[1]) / n as f32];
        Ok(Self {
            origin: o,
            x: per(right, w),
            y: per(down, h),
        })
    }

    /// For a page of `w_pt` × `h_pt` points that is a `width` × `height`
    /// image.
    pub fn of_image(width: u32, height: u32, w_pt: f32, h_pt: f32) -> Self {
        Self {
            origin: [0.0, h_pt],
            x: [w_pt / width.max(1) as f32, 0.0],
            y: [0.0, -h_pt / height.max(1) as f32],
        }
    }

    /// A pixel position in points.
    pub fn to_points(&self, [px, py]: [f32; 2]) -> [f32; 2] {
        [
            self.origin[0] + px * self.x[0] + py * self.y[0],
            self.origin[1] + px * self.x[1] + py * self.y[1],
        ]
    }

    /// A position in points as pixels.
    pub fn to_pixels(&self, [x, y]: [f32; 2]) -> [f32; 2] {
        let (dx, dy) = (x - self.origin[0], y - self.origin[1]);
        let det = self.x[0] * self.y[1] - self.x[1] * self.y[0];
        if det == 0.0 {
            return [0.0, 0.0];
        }
        [
            (dx * self.y[1] - dy * self.y[0]) / det,
            (self.x[0] * dy - self.x[1] * dx) / det,
        ]
    }
}

fn load_error(err: PdfiumError) -> RasterError {
    match err {
        PdfiumError::PdfiumLibraryInternalError(PdfiumInternalError::PasswordError) => {
            RasterError::Encrypted
        }
        PdfiumError::PdfiumLibraryInternalError(PdfiumInternalError::FormatError) => {
            RasterError::Corrupt("not a readable PDF (damaged or truncated beyond repair)".into())
        }
        other => RasterError::Corrupt(other.to_string()),
    }
}
