//! The searchable PDF: the document as it was, with its OCR text laid over
//! each page invisibly (text render mode 3), every word on its box and
//! stretched to the box's width, so that any viewer can select, search and
//! copy it.
//!
//! A PDF keeps its pages untouched but for their text layers: a page that
//! shows text of its own (or whose text was taken from its layer) gets no
//! second layer; a page whose only text is invisible (an earlier OCR's
//! layer) has it replaced; other pages get the OCR text added.
//! An image document becomes a PDF of its page images, each page sized from
//! the image at the job's resolution. Pages are loaded, written and let go one
//! at a time, and the document is saved to a file, not to memory.

use std::io::Cursor;
use std::path::Path;

use image::ImageReader;
use image::codecs::jpeg::JpegEncoder;
use pagefleet_schemas::{OcrWord, PageOcr, TextSource};
use pagefleet_stagekit::pdfium::{Pdf, PixelMap};
use pagefleet_stagekit::resolution::{self, Resolution};
use pagefleet_stagekit::store::StoreError;
use pdfium_render::prelude::*;

use crate::report::JobReport;

mod font;

/// JPEG quality of page images that were not JPEG already.
const JPEG_QUALITY: u8 = 90;
/// Where the baseline sits above a word box's bottom edge, as a share of the
/// box height: room for descenders.
const BASELINE: f32 = 0.22;
/// Least gap between a word's text and the next word's, as a share of the
/// word's height.
const WORD_GAP: f32 = 0.25;
/// Size of a page whose image is missing (it was refused before OCR): US
/// Letter, in points.
const BLANK_PAGE: (f32, f32) = (612.0, 792.0);

/// Why a searchable PDF was not written.
#[derive(Debug, thiserror::Error)]
pub enum PdfError {
    /// PDFium could not open, change or save the document.
    #[error("searchable PDF: {0}")]
    Pdfium(String),
    /// A page image cannot be read.
    #[error("searchable PDF: page {page}: {message}")]
    Image {
        /// The page.
        page: u32,
        /// Why.
        message: String,
    },
    /// A page image could not be fetched.
    #[error("searchable PDF: {0}")]
    Store(#[from] StoreError),
}

impl From<PdfiumError> for PdfError {
    fn from(e: PdfiumError) -> Self {
        Self::Pdfium(pagefleet_stagekit::pdfium::describe(&e))
    }
}

/// A page image for the PDF: JPEG bytes, the size in pixels, and the
/// resolution it declares, which sizes its page.
pub struct PageImage {
    jpeg: Vec<u8>,
    width: u32,
    height: u32,
    resolution: Option<Resolution>,
}

impl PageImage {
    /// An image file's bytes: kept as they are when they are a JPEG, encoded
    /// as one otherwise, with the resolution the file declares (a page image
    /// of the rasterizer's declares its page's).
    pub fn from_file_bytes(bytes: &[u8]) -> Result<Self, String> {
        let resolution = resolution::declared(bytes);
        let reader = ImageReader::new(Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|e| e.to_string())?;
        if reader.format() == Some(image::ImageFormat::Jpeg) {
            let (width, height) = reader.into_dimensions().map_err(|e| e.to_string())?;
            return Ok(Self {
                jpeg: bytes.to_vec(),
                width,
                height,
                resolution,
            });
        }
        let image = reader.decode().map_err(|e| e.to_string())?;
        Ok(Self {
            resolution,
            ..Self::encode(&image.into_rgb8(), None)?
        })
    }

    /// Pixels encoded as JPEG, at `dpi` when it is known.
    pub fn encode(image: &image::RgbImage, dpi: Option<f32>) -> Result<Self, String> {
        let mut jpeg = Vec::new();
        JpegEncoder::new_with_quality(&mut jpeg, JPEG_QUALITY)
            .encode_image(image)
            .map_err(|e| e.to_string())?;
        Ok(Self {
            jpeg,
            width: image.width(),
            height: image.height(),
            resolution: dpi.map(Resolution::square),
        })
    }
}

/// Fetches the image of a page; `None` when the page has none.
pub type ImageOf<'a> = dyn FnMut(u32) -> Result<Option<PageImage>, PdfError> + 'a;

/// Where the pages come from.
pub enum Source<'a> {
    /// The document is this PDF file: its pages are kept as they are.
    Pdf(&'a Path),
    /// The document was an image file: each page sized at the resolution
    /// its image declares, else at `dpi`.
    Images {
        /// Resolution that sets the size of a page whose image declares none.
        dpi: f32,
        /// Each page's image.
        image: Box<ImageOf<'a>>,
    },
}

/// Writes the searchable PDF of a report held whole to `out`.
pub fn write(
    pdf: &Pdf,
    report: &JobReport,
    source: Source<'_>,
    out: &Path,
) -> Result<(), PdfError> {
    let mut searchable = Searchable::open(pdf, source)?;
    for page in &report.pages {
        searchable.page(page.page, page.ocr.as_ref())?;
    }
    searchable.save(report.metrics.total_pages, out)
}

/// A searchable PDF written a page at a time, in page order: a job's pages
/// are read one by one, never held together.
pub struct Searchable<'a> {
    document: PdfDocument<'a>,
    font: PdfFontToken,
    /// The image source's resolution and images; none for a PDF.
    images: Option<(f32, Box<ImageOf<'a>>)>,
    /// Pages written so far.
    written: u32,
}

impl<'a> Searchable<'a> {
    /// Opens the PDF, or starts a new one for images.
    pub fn open(pdf: &'a Pdf, source: Source<'a>) -> Result<Self, PdfError> {
        let font = font::invisible_text().map_err(PdfError::Pdfium)?;
        let pdfium = pdf.pdfium();
        let (mut document, images) = match source {
            Source::Pdf(path) => (pdfium.load_pdf_from_file(path, None)?, None),
            Source::Images { dpi, image } => {
                // Manifests of older rasterizers carry no resolution: theirs
                // was the default one.
                let dpi = if dpi > 0.0 {
                    dpi
                } else {
                    pagefleet_schemas::DEFAULT_DPI
                };
                (pdfium.create_new_pdf()?, Some((dpi, image)))
            }
        };
        let font = document.fonts_mut().load_true_type_from_bytes(font, true)?;
        Ok(Self {
            document,
            font,
            images,
            written: 0,
        })
    }

    /// Writes page `number` with what was read of it (pages whose text came
    /// from the PDF carry it already). An image document's pages skipped
    /// before it are added without text.
    pub fn page(&mut self, number: u32, ocr: Option<&PageOcr>) -> Result<(), PdfError> {
        let ocr = ocr.filter(|ocr| ocr.text_source == TextSource::Ocr);
        if self.images.is_none() {
            self.written = number;
            let index = number.saturating_sub(1);
            let Some(ocr) = ocr.filter(|_| (index as usize) < self.document.pages().len() as usize)
            else {
                return Ok(());
            };
            let mut page = self.document.pages().get(index as _)?;
            // A page that shows text of its own keeps it and gets no second
            // layer, unless its layer was checked and found to lie; an
            // earlier invisible layer (an earlier OCR's) is replaced.
            let refused = ocr.layer_check.as_ref().is_some_and(|c| !c.trusted);
            match own_text(&page) {
                OwnText::Visible if !refused => return Ok(()),
                OwnText::Invisible(indices) => remove_objects(&mut page, indices)?,
                OwnText::Visible | OwnText::None => {}
            }
            let to_page = PixelMap::of_page(&page, ocr.width, ocr.height)?;
            return lay_text(&self.document, &mut page, self.font, ocr, to_page);
        }
        while self.written + 1 < number {
            self.image_page(self.written + 1, None)?;
        }
        self.image_page(number, ocr)
    }

    /// Adds an image document's page `number`: its image, sized at its own
    /// resolution (else the job's), with `ocr`'s words over it.
    fn image_page(&mut self, number: u32, ocr: Option<&PageOcr>) -> Result<(), PdfError> {
        let Some((dpi, image)) = self.images.as_mut() else {
            return Ok(());
        };
        self.written = number;
        let Some(img) = image(number)? else {
            let (w, h) = BLANK_PAGE;
            self.document
                .pages_mut()
                .create_page_at_end(PdfPagePaperSize::Custom(
                    PdfPoints::new(w),
                    PdfPoints::new(h),
                ))?;
            return Ok(());
        };
        let Resolution { x, y } = img.resolution.unwrap_or(Resolution::square(*dpi));
        // No side of a PDF page may pass 200 inches.
        let (w_pt, h_pt) = (
            img.width as f32 * 72.0 / x.max(img.width as f32 / 200.0),
            img.height as f32 * 72.0 / y.max(img.height as f32 / 200.0),
        );
        let mut page = self
            .document
            .pages_mut()
            .create_page_at_end(PdfPagePaperSize::Custom(
                PdfPoints::new(w_pt),
                PdfPoints::new(h_pt),
            ))?;
        let mut object =
            PdfPageImageObject::new_from_jpeg_reader(&self.document, Cursor::new(img.jpeg))
                .map_err(|e| PdfError::Image {
                    page: number,
                    message: format!("not embeddable as JPEG: {e}"),
                })?;
        object.scale(w_pt, h_pt)?;
        page.objects_mut().add_image_object(object)?;
        if let Some(ocr) = ocr {
            let to_page = PixelMap::of_image(ocr.width, ocr.height, w_pt, h_pt);
            lay_text(&self.document, &mut page, self.font, ocr, to_page)?;
        }
        Ok(())
    }

    /// Saves the document to `out`, an image document's pages up to
    /// `pages` added first.
    pub fn save(mut self, pages: u32, out: &Path) -> Result<(), PdfError> {
        while self.images.is_some() && self.written < pages {
            self.image_page(self.written + 1, None)?;
        }
        self.document.save_to_file(out)?;
        Ok(())
    }
}

/// The text a PDF page carries in its own content.
enum OwnText {
    /// None.
    None,
    /// Text drawn to be seen (any render mode but invisible).
    Visible,
    /// Only invisible text (an OCR layer), by object index.
    Invisible(Vec<usize>),
}

fn own_text(page: &PdfPage<'_>) -> OwnText {
    let mut invisible = Vec::new();
    for (index, object) in page.objects().iter().enumerate() {
        let Some(text) = object.as_text_object() else {
            continue;
        };
        if text.text().trim().is_empty() {
            continue;
        }
        if text.render_mode() != PdfPageTextRenderMode::Invisible {
            return OwnText::Visible;
        }
        invisible.push(index);
    }
    if invisible.is_empty() {
        OwnText::None
    } else {
        OwnText::Invisible(invisible)
    }
}

/// Removes the page's objects at `indices` (as [`own_text`] found them).
/// The page's content is not regenerated here: [`lay_text`] does it once,
/// after the new layer is added.
fn remove_objects(page: &mut PdfPage<'_>, indices: Vec<usize>) -> Result<(), PdfError> {
    page.set_content_regeneration_strategy(PdfPageContentRegenerationStrategy::Manual);
    // From the last, so that the indices before it hold.
    for index in indices.into_iter().rev() {
        drop(page.objects_mut().remove_object_at_index(index as _)?);
    }
    Ok(())
}

/// Adds every word of `ocr` to `page` as invisible text.
fn lay_text<'a>(
    document: &PdfDocument<'a>,
    page: &mut PdfPage<'a>,
    font: PdfFontToken,
    ocr: &PageOcr,
    to_page: PixelMap,
) -> Result<(), PdfError> {
    // One content update for the page, not one per word.
    page.set_content_regeneration_strategy(PdfPageContentRegenerationStrategy::Manual);
    for line in &ocr.lines {
        let words = line.words_or_whole();
        for (i, word) in words.iter().enumerate() {
            if let Some(object) = word_object(document, font, word, words.get(i + 1), to_page)? {
                page.objects_mut().add_text_object(object)?;
            }
        }
    }
    page.regenerate_content()?;
    Ok(())
}

/// The invisible text object of one word, or none for a word without
/// extent or text. A word followed by `next` on its line ends in a space,
/// outside its box, and stops short of `next` by at least [`WORD_GAP`] of
/// its height: text extraction (poppler's among them) finds words by the
/// gaps between glyphs, and neighbouring word boxes may touch.
fn word_object<'a>(
    document: &PdfDocument<'a>,
    font: PdfFontToken,
    word: &OcrWord,
    next: Option<&OcrWord>,
    to_page: PixelMap,
) -> Result<Option<PdfPageTextObject<'a>>, PdfError> {
    let text = word.text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let [tl, tr, br, bl] = word.polygon.map(|p| to_page.to_points(p));
    // Along the text (the mean of its top and bottom edges) and up it.
    let along = [
        (tr[0] - tl[0] + br[0] - bl[0]) / 2.0,
        (tr[1] - tl[1] + br[1] - bl[1]) / 2.0,
    ];
    let up = [
        (tl[0] - bl[0] + tr[0] - br[0]) / 2.0,
        (tl[1] - bl[1] + tr[1] - br[1]) / 2.0,
    ];
    let length = |v: [f32; 2]| (v[0] * v[0] + v[1] * v[1]).sqrt();
    let (width, height) = (length(along), length(up));
    if width < 0.1 || height < 0.1 {
        return Ok(None);
    }
    let mut along = along;
    if let Some(next) = next {
        // The gap to the next word, along this one.
        let start = to_page.to_points(next.polygon[0]);
        let gap = ((start[0] - tr[0]) * along[0] + (start[1] - tr[1]) * along[1]) / width;
        let short = (WORD_GAP * height - gap).clamp(0.0, width / 2.0);
        along = along.map(|v| v * (width - short) / width);
    }
    // Every glyph of the font has the same advance: the text's natural width
    // at size 1, which is stretched to the box, follows from its length.
    let natural = text.chars().count() as f32 * font::ADVANCE_PER_EM;
    let text = match next {
        Some(_) => format!("{text} "),
        None => text.to_owned(),
    };
    let mut object = PdfPageTextObject::new(document, text, font, PdfPoints::new(1.0))?;
    object.set_render_mode(PdfPageTextRenderMode::Invisible)?;
    let origin = [bl[0] + BASELINE * up[0], bl[1] + BASELINE * up[1]];
    object.transform(
        along[0] / natural,
        along[1] / natural,
        up[0],
        up[1],
        origin[0],
        origin[1],
    )?;
    Ok(Some(object))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_pixels_map_to_points_with_y_up_and_back() {
        let map = PixelMap::of_image(200, 100, 144.0, 72.0);
        assert_eq!(map.to_points([0.0, 0.0]), [0.0, 72.0]);
        assert_eq!(map.to_points([200.0, 100.0]), [144.0, 0.0]);
        assert_eq!(map.to_points([100.0, 50.0]), [72.0, 36.0]);
        let [x, y] = map.to_pixels([72.0, 36.0]);
        assert!(
            (x - 100.0).abs() < 1e-3 && (y - 50.0).abs() < 1e-3,
            "{x}, {y}"
        );
    }
}
