//! PDFium, bound once per process, for the stages that read or write PDFs
//! (the rasterizer renders pages, the aggregator writes searchable PDFs),
//! and the map between a page image's pixels and its PDF page's points.

use std::path::Path;
use std::sync::OnceLock;

use pdfium_render::prelude::*;

/// PDFium could not be bound: the library is missing or cannot be loaded.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct BindError(String);

/// PDFium binds once per process; every [`Pdf`] shares that binding.
static PDFIUM: OnceLock<Result<Pdfium, String>> = OnceLock::new();

/// A PDF renderer bound to the PDFium library.
pub struct Pdf {
    pdfium: &'static Pdfium,
}

impl Pdf {
    /// Binds PDFium from `library` (once per process; later calls share the
    /// first binding whatever path they name).
    pub fn bind(library: &Path) -> Result<Self, BindError> {
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
            .map_err(|e| BindError(e.clone()))?;
        Ok(Self { pdfium })
    }

    /// The bound library, for writing PDFs.
    pub fn pdfium(&self) -> &'static Pdfium {
        self.pdfium
    }
}

/// A PDFium error in words, on one line (its own `Display` is a debug dump
/// over several lines).
pub fn describe(error: &PdfiumError) -> String {
    use PdfiumInternalError::*;
    match error {
        PdfiumError::PdfiumLibraryInternalError(internal) => match internal {
            FileError => "the file cannot be read",
            FormatError => "the PDF is damaged or truncated beyond repair",
            PasswordError => "the PDF is password-protected",
            SecurityError => "the PDF's security settings forbid reading it",
            PageError => "the page cannot be loaded",
            Unknown => "PDFium gave no reason",
        }
        .to_owned(),
        other => format!("{other:?}")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" "),
    }
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
