//! Image files: recognised by content, decoded under explicit limits, scaled
//! into the pixel budget.

use std::io::Cursor;

use image::imageops::{FilterType, resize};
use image::{DynamicImage, ImageFormat, ImageReader, Limits, RgbImage};
use pagefleet_schemas::{DocumentKind, PixelBudget};
use tiff::ColorType;
use tiff::decoder::{Decoder as TiffDecoder, DecodingResult};
use tiff::tags::{PhotometricInterpretation, Tag};

use pagefleet_stagekit::resolution::{self, Resolution};

use crate::{Page, RasterError, RenderOptions};

/// Most pixels an image file may declare: a 600 DPI A3 scan is 70 MP. Anything
/// beyond is refused before a pixel is decoded.
pub const DEFAULT_MAX_DECODE_PIXELS: u64 = 100_000_000;

/// Checks a declared size against the decode limit and the budget's aspect
/// ratio, before anything is decoded.
fn check_declared(
    width: u32,
    height: u32,
    page: usize,
    options: &RenderOptions,
) -> Result<(), RasterError> {
    let refused = |message: String| RasterError::PageRefused { page, message };
    let pixels = width as u64 * height as u64;
    if pixels > options.max_decode_pixels {
        return Err(refused(format!(
            "image declares {width}x{height} = {pixels} pixels, over the decode limit of {} pixels",
            options.max_decode_pixels
        )));
    }
    options
        .budget
        .fit(width as f64, height as f64)
        .map_err(|e| refused(e.to_string()))?;
    Ok(())
}

/// Bytes a decoder may allocate for an image of the decode limit: up to eight
/// bytes per pixel (16-bit RGBA), plus the RGB copy.
fn alloc_limit(options: &RenderOptions) -> u64 {
    options.max_decode_pixels.saturating_mul(11)
}

/// Decodes a single-image file (PNG, JPEG), with the resolution it declares.
pub(crate) fn single_image(
    bytes: &[u8],
    kind: DocumentKind,
    options: &RenderOptions,
) -> Result<(RgbImage, Option<Resolution>), RasterError> {
    let format = match kind {
        DocumentKind::Png => ImageFormat::Png,
        DocumentKind::Jpeg => ImageFormat::Jpeg,
        _ => {
            return Err(RasterError::Unsupported(format!(
                "{kind:?} is not a single-image format"
            )));
        }
    };
    let corrupt = |e: image::ImageError| match e {
        image::ImageError::Limits(l) => RasterError::PageRefused {
            page: 1,
            message: format!("decode limit: {l}"),
        },
        other => RasterError::Corrupt(other.to_string()),
    };
    let (width, height) = ImageReader::with_format(Cursor::new(bytes), format)
        .into_dimensions()
        .map_err(corrupt)?;
    check_declared(width, height, 1, options)?;
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut limits = Limits::default();
    limits.max_image_width = Some(width);
    limits.max_image_height = Some(height);
    limits.max_alloc = Some(alloc_limit(options));
    reader.limits(limits);
    let image = reader.decode().map_err(corrupt)?;
    Ok((to_rgb(image), resolution::declared(bytes)))
}

fn to_rgb(image: DynamicImage) -> RgbImage {
    match image {
        DynamicImage::ImageRgb8(rgb) => rgb,
        // Transparent areas are paper: composite on white, not on black.
        other if other.color().has_alpha() => {
            let rgba = other.into_rgba8();
            RgbImage::from_fn(rgba.width(), rgba.height(), |x, y| {
                let p = rgba.get_pixel(x, y).0;
                let a = p[3] as u32;
                let mix = |c: u8| ((c as u32 * a + 255 * (255 - a)) / 255) as u8;
                image::Rgb([mix(p[0]), mix(p[1]), mix(p[2])])
            })
        }
        other => other.into_rgb8(),
    }
}

/// Makes a decoded image a page: its pixels made square when its
/// resolution across and down differ (a fax's 204 × 98 lines an inch), and
/// scaled into the budget, in one resampling. The page's resolution is the
/// one the image declares, else `fallback` (the job's).
pub(crate) fn fit_page(
    image: RgbImage,
    declared: Option<Resolution>,
    fallback: f32,
    (number, count): (usize, usize),
    budget: &PixelBudget,
) -> Result<Page, RasterError> {
    let resolution = declared.unwrap_or(Resolution::square(fallback));
    let dpi = resolution.finest();
    let (w, h) = (
        image.width() as f64 * (dpi / resolution.x) as f64,
        image.height() as f64 * (dpi / resolution.y) as f64,
    );
    let fit = budget.fit(w, h).map_err(|e| RasterError::PageRefused {
        page: number,
        message: e.to_string(),
    })?;
    let image = if (fit.width, fit.height) != image.dimensions() {
        resize(&image, fit.width, fit.height, FilterType::Triangle)
    } else {
        image
    };
    Ok(Page {
        number,
        count,
        image,
        scale: fit.scale,
        dpi: dpi * fit.scale as f32,
        dpi_known: declared.is_some(),
        text: None,
        layer: None,
    })
}

/// Decodes every page of a TIFF file, one at a time.
pub(crate) fn tiff_pages(
    bytes: &[u8],
    options: &RenderOptions,
    on_page: &mut dyn FnMut(Result<Page, RasterError>) -> Result<(), String>,
) -> Result<usize, RasterError> {
    let corrupt = |e: tiff::TiffError| match e {
        tiff::TiffError::LimitsExceeded => RasterError::PageRefused {
            page: 0,
            message: "TIFF exceeds the decode limit".into(),
        },
        other => RasterError::Corrupt(format!("tiff: {other}")),
    };
    let mut limits = tiff::decoder::Limits::default();
    limits.decoding_buffer_size = usize::try_from(alloc_limit(options)).unwrap_or(usize::MAX);
    let open = || {
        TiffDecoder::new(Cursor::new(bytes))
            .map(|d| d.with_limits(limits.clone()))
            .map_err(corrupt)
    };

    // Count pages first (directories only, no pixel data) so every page can
    // report the total; a directory loop ends the count at the limit.
    let mut decoder = open()?;
    let mut count = 1;
    while decoder.more_images() {
        if count >= options.max_pages {
            return Err(RasterError::TooManyPages {
                count: format!("more than {count}"),
                limit: options.max_pages,
            });
        }
        decoder.next_image().map_err(corrupt)?;
        count += 1;
    }

    let mut decoder = open()?;
    for number in 1..=count {
        if number > 1 {
            decoder.next_image().map_err(corrupt)?;
        }
        let page = decoder
            .dimensions()
            .map_err(corrupt)
            .and_then(|(w, h)| {
                check_declared(w, h, number, options)?;
                Ok((tiff_rgb(&mut decoder, w, h)?, tiff_resolution(&mut decoder)))
            })
            .and_then(|(image, declared)| {
                fit_page(
                    image,
                    declared,
                    options.resolution(),
                    (number, count),
                    &options.budget,
                )
            })
            .map_err(|e| match e {
                RasterError::PageRefused { message, .. } => RasterError::PageRefused {
                    page: number,
                    message,
                },
                other => RasterError::PageRefused {
                    page: number,
                    message: other.to_string(),
                },
            });
        on_page(page).map_err(RasterError::Stopped)?;
    }
    Ok(count)
}

/// The resolution the current TIFF directory declares.
fn tiff_resolution(decoder: &mut TiffDecoder<Cursor<&[u8]>>) -> Option<Resolution> {
    let mut rational = |tag| match decoder.get_tag(tag).ok()? {
        tiff::decoder::ifd::Value::Rational(n, d) if d > 0 => Some(n as f64 / d as f64),
        _ => None,
    };
    let (x, y) = (rational(Tag::XResolution)?, rational(Tag::YResolution)?);
    let unit = decoder.get_tag_u32(Tag::ResolutionUnit).ok();
    Resolution::of_tiff_tags(x, y, unit)
}

/// Decodes the current TIFF directory into RGB.
fn tiff_rgb(
    decoder: &mut TiffDecoder<Cursor<&[u8]>>,
    w: u32,
    h: u32,
) -> Result<RgbImage, RasterError> {
    let color = decoder
        .colortype()
        .map_err(|e| RasterError::Corrupt(e.to_string()))?;
    let white_is_zero = decoder
        .get_tag_u32(Tag::PhotometricInterpretation)
        .is_ok_and(|p| p == PhotometricInterpretation::WhiteIsZero.to_u16() as u32);
    let data = decoder.read_image().map_err(|e| match e {
        tiff::TiffError::LimitsExceeded => RasterError::PageRefused {
            page: 0,
            message: "decode limit".into(),
        },
        other => RasterError::Corrupt(other.to_string()),
    })?;
    let n = w as usize * h as usize;
    let short = || RasterError::Corrupt("image data is shorter than its declared size".into());
    let bytes: Vec<u8> = match data {
        DecodingResult::U8(v) => v,
        // Keep the high byte of 16-bit samples.
        DecodingResult::U16(v) => v.into_iter().map(|s| (s >> 8) as u8).collect(),
        _ => {
            return Err(RasterError::Unsupported(format!(
                "TIFF sample format of {color:?}"
            )));
        }
    };
    let gray = |v: u8| if white_is_zero { 255 - v } else { v };
    let image = match color {
        ColorType::Gray(1) => {
            // One bit per pixel, rows padded to whole bytes.
            let stride = (w as usize).div_ceil(8);
            if bytes.len() < stride * h as usize {
                return Err(short());
            }
            RgbImage::from_fn(w, h, |x, y| {
                let byte = bytes[y as usize * stride + x as usize / 8];
                let bit = (byte >> (7 - (x % 8))) & 1;
                let v = gray(if bit == 1 { 255 } else { 0 });
                image::Rgb([v, v, v])
            })
        }
        ColorType::Gray(8 | 16) | ColorType::GrayA(8 | 16) => {
            let step = if matches!(color, ColorType::GrayA(_)) {
                2
            } else {
                1
            };
            if bytes.len() < n * step {
                return Err(short());
            }
            RgbImage::from_fn(w, h, |x, y| {
                let v = gray(bytes[(y as usize * w as usize + x as usize) * step]);
                image::Rgb([v, v, v])
            })
        }
        ColorType::RGB(8 | 16) | ColorType::RGBA(8 | 16) => {
            let step = if matches!(color, ColorType::RGBA(_)) {
                4
            } else {
                3
            };
            if bytes.len() < n * step {
                return Err(short());
            }
            RgbImage::from_fn(w, h, |x, y| {
                let i = (y as usize * w as usize + x as usize) * step;
                image::Rgb([bytes[i], bytes[i + 1], bytes[i + 2]])
            })
        }
        ColorType::CMYK(8) => {
            if bytes.len() < n * 4 {
                return Err(short());
            }
            RgbImage::from_fn(w, h, |x, y| {
                let i = (y as usize * w as usize + x as usize) * 4;
                let k = 255 - bytes[i + 3] as u32;
                let ch = |c: u8| ((255 - c as u32) * k / 255) as u8;
                image::Rgb([ch(bytes[i]), ch(bytes[i + 1]), ch(bytes[i + 2])])
            })
        }
        other => {
            return Err(RasterError::Unsupported(format!(
                "TIFF colour type {other:?}"
            )));
        }
    };
    Ok(image)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pagefleet_schemas::sniff;

    fn png(w: u32, h: u32) -> Vec<u8> {
        let mut out = Vec::new();
        RgbImage::from_pixel(w, h, image::Rgb([200, 10, 10]))
            .write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
            .unwrap();
        out
    }

    #[test]
    fn sniffs_by_content() {
        assert_eq!(sniff(b"%PDF-1.7\n"), Some(DocumentKind::Pdf));
        assert_eq!(sniff(b"junk before %PDF-1.4"), Some(DocumentKind::Pdf));
        assert_eq!(sniff(&png(2, 2)), Some(DocumentKind::Png));
        assert_eq!(sniff(&[0xff, 0xd8, 0xff, 0xe0]), Some(DocumentKind::Jpeg));
        assert_eq!(sniff(b"II*\0...."), Some(DocumentKind::Tiff));
        assert_eq!(sniff(b"hello, this is text named report.pdf"), None);
        assert_eq!(sniff(b""), None);
    }

    #[test]
    fn declared_size_over_the_limit_is_refused_without_decoding() {
        // A valid PNG header claiming 20000x20000 followed by a tiny body: the
        // refusal must come from the header alone.
        let mut bytes = png(1, 1);
        bytes[16..20].copy_from_slice(&20_000u32.to_be_bytes());
        bytes[20..24].copy_from_slice(&20_000u32.to_be_bytes());
        // IHDR's CRC covers its type and data: bytes 12..29, CRC at 29..33.
        let crc = crc32fast::hash(&bytes[12..29]);
        bytes[29..33].copy_from_slice(&crc.to_be_bytes());
        let err = single_image(&bytes, DocumentKind::Png, &RenderOptions::default()).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("20000x20000") && msg.contains("decode limit"),
            "{msg}"
        );
    }

    #[test]
    fn oversized_images_are_scaled_into_the_budget() {
        let options = RenderOptions {
            budget: PixelBudget::new(10_000),
            ..Default::default()
        };
        let (image, declared) = single_image(&png(300, 200), DocumentKind::Png, &options).unwrap();
        let page = fit_page(image, declared, 200.0, (1, 1), &options.budget).unwrap();
        assert!(page.image.width() * page.image.height() <= 10_000);
        assert_eq!(
            (page.image.width() as f32 / page.image.height() as f32 * 10.0).round(),
            15.0
        );
        assert!(page.scale < 1.0);
    }

    #[test]
    fn an_image_takes_the_resolution_it_declares_and_square_pixels() {
        let budget = PixelBudget::default();
        let image = || RgbImage::from_pixel(1734, 1078, image::Rgb([255, 255, 255]));
        // A fax's 204 × 98 lines an inch: made square at 204, a letter page.
        let fax = Resolution { x: 204.0, y: 98.0 };
        let page = fit_page(image(), Some(fax), 200.0, (1, 1), &budget).unwrap();
        assert_eq!(page.image.dimensions(), (1734, 2243));
        assert_eq!((page.dpi, page.dpi_known), (204.0, true));
        // Declaring nothing, it is taken at the job's resolution.
        let page = fit_page(image(), None, 150.0, (1, 1), &budget).unwrap();
        assert_eq!(page.image.dimensions(), (1734, 1078));
        assert_eq!((page.dpi, page.dpi_known), (150.0, false));
        // Scaled into a budget, its resolution falls with it.
        let small = PixelBudget::new(1734 * 1078 / 4);
        let page = fit_page(
            image(),
            Some(Resolution::square(300.0)),
            200.0,
            (1, 1),
            &small,
        )
        .unwrap();
        assert!((page.dpi - 150.0).abs() < 1.0, "{}", page.dpi);
        // A declaration that would make a page too thin is refused, not
        // allocated.
        let thin = Resolution { x: 9600.0, y: 20.0 };
        assert!(fit_page(image(), Some(thin), 200.0, (1, 1), &budget).is_err());
    }

    #[test]
    fn thin_images_are_refused() {
        let err =
            single_image(&png(2010, 10), DocumentKind::Png, &RenderOptions::default()).unwrap_err();
        assert!(err.to_string().contains("aspect ratio"), "{err}");
    }

    #[test]
    fn truncated_images_are_corrupt() {
        let bytes = png(64, 64);
        let err = single_image(
            &bytes[..bytes.len() / 2],
            DocumentKind::Png,
            &RenderOptions::default(),
        )
        .unwrap_err();
        assert!(matches!(err, RasterError::Corrupt(_)), "{err:?}");
    }

    #[test]
    fn transparency_becomes_white_paper() {
        let rgba = image::RgbaImage::from_pixel(2, 2, image::Rgba([0, 0, 0, 0]));
        let rgb = to_rgb(DynamicImage::ImageRgba8(rgba));
        assert_eq!(rgb.get_pixel(0, 0).0, [255, 255, 255]);
    }
}
