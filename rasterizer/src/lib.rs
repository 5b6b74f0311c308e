//! The rasterizer of pagefleet: documents in, page images out.
//!
//! Its synchronous core ([`Rasterizer`]) takes a document of a kind
//! `pagefleet-schemas` recognises by content (PDF, PNG, JPEG, TIFF with any
//! number of pages), renders PDF pages with PDFium at a requested DPI (or
//! takes their own text, as the job's text-layer mode says), decodes images
//! under explicit limits, and hands every page over as an RGB image that
//! already fits the pixel budget: document bytes in, [`Page`]s out, one at a
//! time, to a callback. The [`stage`] wraps it: document jobs from
//! JetStream in, page images, page jobs and the job's manifest out.

#![deny(unreachable_pub)]

mod decode;
mod pdf;
pub mod stage;
mod text_layer;

use std::path::Path;

use image::RgbImage;
use pagefleet_schemas::{PageOcr, PixelBudget, TextLayer, TextLayerLines};

pub use decode::DEFAULT_MAX_DECODE_PIXELS;
pub use pagefleet_schemas::{DEFAULT_DPI, DocumentKind, sniff};
pub use pagefleet_stagekit::pdfium::{Pdf, PixelMap};

/// What can go wrong turning a document into pages.
#[derive(Debug, thiserror::Error)]
pub enum RasterError {
    /// PDFium could not be loaded.
    #[error("pdfium: {0}")]
    Library(String),
    /// The bytes are no document pagefleet reads.
    #[error("unsupported document type: {0}")]
    Unsupported(String),
    /// The document is encrypted and no password was given.
    #[error("document is password-protected")]
    Encrypted,
    /// The document is damaged beyond what the decoder can repair.
    #[error("corrupt document: {0}")]
    Corrupt(String),
    /// The document has no page.
    #[error("document has no pages")]
    NoPages,
    /// The document has more pages than a job may have.
    #[error("document has {count} pages, over the limit of {limit} pages per job")]
    TooManyPages {
        /// Pages in the document ("more than" for formats that are not
        /// counted to the end).
        count: String,
        /// The limit.
        limit: usize,
    },
    /// A page is refused by the limits (size, aspect ratio, decode budget) or
    /// cannot be rendered or decoded.
    #[error("page {page}: {message}")]
    PageRefused {
        /// Page number, counted from 1.
        page: usize,
        /// Which limit and why.
        message: String,
    },
    /// The consumer of pages stopped the run.
    #[error("stopped: {0}")]
    Stopped(String),
}

impl RasterError {
    /// Whether another attempt could succeed: only a missing library can be
    /// fixed without changing the document.
    pub fn is_permanent(&self) -> bool {
        !matches!(self, Self::Library(_))
    }
}

/// How pages are produced.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RenderOptions {
    /// Resolution PDF pages are rendered at, and that image files which
    /// declare none are taken to have.
    pub dpi: f32,
    /// Limit on every page image handed out.
    pub budget: PixelBudget,
    /// Most pixels an image file may declare before it is refused undecoded.
    pub max_decode_pixels: u64,
    /// Most pages a document may have.
    pub max_pages: usize,
    /// What PDF pages that already carry text become: rendered for OCR
    /// (`ocr`), or handed out with their text instead of an image.
    pub text_layer: TextLayer,
}

impl std::fmt::Debug for Page {
    // The pixels stay out of logs and test failures.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Page")
            .field("number", &self.number)
            .field("count", &self.count)
            .field("size", &self.image.dimensions())
            .field("scale", &self.scale)
            .finish()
    }
}

impl RenderOptions {
    /// The resolution PDF pages are rendered at and undeclared images taken
    /// at, within what PDFium and the pixel budget can serve.
    pub fn resolution(&self) -> f32 {
        self.dpi.clamp(10.0, 1200.0)
    }
}

impl Default for RenderOptions {
    fn default() -> Self {
        Self {
            dpi: DEFAULT_DPI,
            budget: PixelBudget::default(),
            max_decode_pixels: DEFAULT_MAX_DECODE_PIXELS,
            max_pages: 10_000,
            text_layer: TextLayer::Auto,
        }
    }
}

/// One rendered page.
pub struct Page {
    /// Position in the document, counted from 1.
    pub number: usize,
    /// Pages in the document.
    pub count: usize,
    /// The page image, within the budget.
    pub image: RgbImage,
    /// Factor applied to fit the budget (1.0 when none was needed).
    pub scale: f64,
    /// The image's resolution, pixels per inch of the page: a PDF page's
    /// rendering resolution, an image's declared one (else the options'),
    /// times `scale`.
    pub dpi: f32,
    /// Whether `dpi` is the page's own (rendered at it, or declared by its
    /// image) rather than the options' taken for an image that declares
    /// none.
    pub dpi_known: bool,
    /// For a PDF page that carries text, when the options' text-layer mode
    /// is `skip` or `use`: the page's result, in the coordinates of the image
    /// it would have had. The page is then not rendered, and `image` is
    /// empty.
    pub text: Option<PageOcr>,
    /// For a rendered PDF page that carries text, under the text-layer mode
    /// `auto`: that text, to be checked against `image` and taken when it
    /// agrees.
    pub layer: Option<TextLayerLines>,
}

impl Page {
    /// The image's resolution when it is the page's own ([`Page::dpi_known`]):
    /// what the engine may take for the size of the page's print.
    pub fn own_dpi(&self) -> Option<f32> {
        self.dpi_known.then_some(self.dpi)
    }
}

/// Turns documents into pages.
pub struct Rasterizer {
    pdf: Option<Pdf>,
}

impl std::fmt::Debug for Rasterizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rasterizer")
            .field("pdf", &self.pdf.is_some())
            .finish()
    }
}

impl Rasterizer {
    /// A rasterizer that renders PDFs with the PDFium library at `pdfium`.
    pub fn new(pdfium: &Path) -> Result<Self, RasterError> {
        Ok(Self {
            pdf: Some(Pdf::bind(pdfium).map_err(|e| RasterError::Library(e.to_string()))?),
        })
    }

    /// The PDF renderer, when PDFium is bound.
    pub fn pdf(&self) -> Option<&Pdf> {
        self.pdf.as_ref()
    }

    /// A rasterizer for image files only; PDFs are refused.
    pub fn images_only() -> Self {
        Self { pdf: None }
    }

    /// Produces every page of `bytes`, in order, handing each to `on_page` as
    /// soon as it exists. A page that cannot be produced is handed over as
    /// [`RasterError::PageRefused`] and the others still are; an error for the
    /// whole document (or from `on_page`) ends the run. Returns the page count.
    pub fn pages(
        &self,
        bytes: &[u8],
        options: &RenderOptions,
        mut on_page: impl FnMut(Result<Page, RasterError>) -> Result<(), String>,
    ) -> Result<usize, RasterError> {
        match sniff(bytes) {
            Some(DocumentKind::Pdf) => match &self.pdf {
                Some(pdf) => pdf::pages(pdf, bytes, options, &mut on_page),
                None => Err(RasterError::Unsupported(
                    "PDF rendering is not available: no PDFium library".into(),
                )),
            },
            Some(DocumentKind::Tiff) => decode::tiff_pages(bytes, options, &mut on_page),
            Some(kind) => {
                let page =
                    decode::single_image(bytes, kind, options).and_then(|(image, declared)| {
                        decode::fit_page(
                            image,
                            declared,
                            options.resolution(),
                            (1, 1),
                            &options.budget,
                        )
                    });
                match page {
                    // A broken single image is a broken document.
                    Err(RasterError::Corrupt(m)) => Err(RasterError::Corrupt(m)),
                    page => on_page(page).map_err(RasterError::Stopped).map(|()| 1),
                }
            }
            None => Err(RasterError::Unsupported(describe_unknown(bytes))),
        }
    }
}

/// Says what an unrecognised input looks like, for the error message.
fn describe_unknown(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return "empty file".into();
    }
    let head = &bytes[..bytes.len().min(512)];
    if std::str::from_utf8(head).is_ok() || head.iter().all(|b| b.is_ascii()) {
        "text, not a PDF or image (expected PDF, PNG, JPEG or TIFF content)".into()
    } else {
        "unrecognised binary content (expected PDF, PNG, JPEG or TIFF)".into()
    }
}

/// A page image as PNG, in the smallest lossless form that keeps the page:
/// one bit a pixel when every pixel is black or white (a bilevel scan), one
/// grey channel when every pixel is grey (a black-and-white or greyscale
/// page, most pages of most documents: a third of the raw bytes), a
/// palette when the page has at most 256 colours (black text with coloured
/// links or headings), else RGB. The fastest compression: page images live
/// for minutes, and the default compression costs more CPU than the network
/// it saves. The image's resolution (`dpi`) goes in its `pHYs` chunk, so a
/// page image says the size of its page wherever it goes.
pub fn encode_png(image: &image::RgbImage, dpi: f32) -> Result<Vec<u8>, png::EncodingError> {
    let size = image.dimensions();
    let grey = image.pixels().all(|p| p.0[0] == p.0[1] && p.0[1] == p.0[2]);
    if grey && image.pixels().all(|p| p.0[0] == 0 || p.0[0] == 255) {
        return write_png(size, dpi, Png::Bilevel(&bilevel_rows(image)));
    }
    if grey {
        let luma: Vec<u8> = image.pixels().map(|p| p.0[0]).collect();
        return write_png(size, dpi, Png::Grey(&luma));
    }
    match palette(image) {
        Some((palette, indices)) => write_png(size, dpi, Png::Indexed(&palette, &indices)),
        None => write_png(size, dpi, Png::Rgb(image.as_raw())),
    }
}

/// The pixel data of a page image in one of its PNG forms.
enum Png<'a> {
    /// One bit a pixel, rows padded to whole bytes, white 1.
    Bilevel(&'a [u8]),
    /// One grey byte a pixel.
    Grey(&'a [u8]),
    /// A palette and each pixel's index in it.
    Indexed(&'a [[u8; 3]], &'a [u8]),
    /// Three bytes a pixel.
    Rgb(&'a [u8]),
}

fn write_png(
    (width, height): (u32, u32),
    dpi: f32,
    data: Png<'_>,
) -> Result<Vec<u8>, png::EncodingError> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, width, height);
    let (color, depth, pixels) = match data {
        Png::Bilevel(bits) => (png::ColorType::Grayscale, png::BitDepth::One, bits),
        Png::Grey(luma) => (png::ColorType::Grayscale, png::BitDepth::Eight, luma),
        Png::Indexed(palette, indices) => {
            encoder.set_palette(palette.concat());
            (png::ColorType::Indexed, png::BitDepth::Eight, indices)
        }
        Png::Rgb(rgb) => (png::ColorType::Rgb, png::BitDepth::Eight, rgb),
    };
    encoder.set_color(color);
    encoder.set_depth(depth);
    encoder.set_compression(png::Compression::Fast);
    encoder.set_filter(png::Filter::Sub);
    if dpi > 0.0 {
        let per_metre = (dpi / 0.0254).round() as u32;
        encoder.set_pixel_dims(Some(png::PixelDimensions {
            xppu: per_metre,
            yppu: per_metre,
            unit: png::Unit::Meter,
        }));
    }
    let mut writer = encoder.write_header()?;
    writer.write_image_data(pixels)?;
    writer.finish()?;
    Ok(out)
}

/// The page's colours and each pixel's index among them, when there are at
/// most 256.
fn palette(image: &image::RgbImage) -> Option<(Vec<[u8; 3]>, Vec<u8>)> {
    let mut colours: std::collections::HashMap<[u8; 3], u8> = std::collections::HashMap::new();
    let mut palette = Vec::new();
    let mut indices = Vec::with_capacity(image.width() as usize * image.height() as usize);
    let mut last: Option<([u8; 3], u8)> = None;
    for pixel in image.pixels() {
        // Runs of one colour (the white of a page) skip the lookup.
        if let Some((colour, index)) = last
            && colour == pixel.0
        {
            indices.push(index);
            continue;
        }
        let index = match colours.get(&pixel.0) {
            Some(&index) => index,
            None => {
                let index = u8::try_from(palette.len()).ok()?;
                colours.insert(pixel.0, index);
                palette.push(pixel.0);
                index
            }
        };
        last = Some((pixel.0, index));
        indices.push(index);
    }
    Some((palette, indices))
}

/// A black-and-white page's rows, each pixel one bit (white 1), eight to a
/// byte, the first in the highest bit.
fn bilevel_rows(image: &image::RgbImage) -> Vec<u8> {
    let (width, height) = image.dimensions();
    let row_bytes = (width as usize).div_ceil(8);
    let mut packed = vec![0u8; row_bytes * height as usize];
    for (y, row) in image.rows().enumerate() {
        for (x, pixel) in row.enumerate() {
            if pixel.0[0] == 255 {
                packed[y * row_bytes + x / 8] |= 0x80 >> (x % 8);
            }
        }
    }
    packed
}

#[cfg(test)]
mod png_tests {
    use super::*;

    #[test]
    fn a_grey_page_is_one_channel_and_a_coloured_one_keeps_its_colours() {
        let mut page = image::RgbImage::from_pixel(300, 200, image::Rgb([255, 255, 255]));
        for x in 20..280 {
            page.put_pixel(x, 100, image::Rgb([30, 30, 30]));
            page.put_pixel(x, 101, image::Rgb([128, 128, 128]));
        }
        let grey = encode_png(&page, 200.0).unwrap();
        let back = image::load_from_memory(&grey).unwrap();
        assert_eq!(back.color(), image::ColorType::L8);
        assert_eq!(back.into_rgb8(), page, "lossless");

        page.put_pixel(5, 5, image::Rgb([200, 30, 30]));
        let few = encode_png(&page, 200.0).unwrap();
        let info = png::Decoder::new(std::io::Cursor::new(&few))
            .read_info()
            .unwrap()
            .info()
            .color_type;
        assert_eq!(info, png::ColorType::Indexed, "three colours: a palette");
        let back = image::load_from_memory(&few).unwrap();
        assert_eq!(back.into_rgb8(), page, "lossless");

        // More than 256 colours: RGB.
        for x in 0..300 {
            page.put_pixel(x, 150, image::Rgb([x as u8, (x / 2) as u8, 7]));
        }
        let colour = encode_png(&page, 200.0).unwrap();
        let back = image::load_from_memory(&colour).unwrap();
        assert_eq!(back.color(), image::ColorType::Rgb8);
        assert_eq!(back.into_rgb8(), page, "lossless");
        assert!(grey.len() < colour.len());
        assert!(few.len() < colour.len());
    }

    #[test]
    fn a_black_and_white_page_is_one_bit_a_pixel() {
        // A width that does not fill its last byte.
        let mut page = image::RgbImage::from_pixel(301, 200, image::Rgb([255, 255, 255]));
        for x in 20..300 {
            page.put_pixel(x, 100, image::Rgb([0, 0, 0]));
        }
        page.put_pixel(300, 199, image::Rgb([0, 0, 0]));
        let bilevel = encode_png(&page, 200.0).unwrap();
        let decoder = png::Decoder::new(std::io::Cursor::new(&bilevel));
        let info = decoder.read_info().unwrap();
        assert_eq!(info.info().bit_depth, png::BitDepth::One);
        let back = image::load_from_memory(&bilevel).unwrap();
        assert_eq!(back.into_rgb8(), page, "lossless");
        // One grey level more, and the page is grey: 8 bits a pixel.
        page.put_pixel(5, 5, image::Rgb([128, 128, 128]));
        let grey = encode_png(&page, 200.0).unwrap();
        assert!(bilevel.len() < grey.len());
    }

    #[test]
    fn a_page_image_says_its_resolution() {
        let page = image::RgbImage::from_pixel(30, 20, image::Rgb([255, 255, 255]));
        for dpi in [72.0, 150.0, 200.0, 600.0] {
            let r =
                pagefleet_stagekit::resolution::declared(&encode_png(&page, dpi).unwrap()).unwrap();
            assert_eq!(r, pagefleet_stagekit::resolution::Resolution::square(dpi));
        }
    }
}
