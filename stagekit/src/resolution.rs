//! The resolution an image file declares: how many of its pixels make an
//! inch of the page it shows. A scan's resolution sizes its page in a PDF
//! and tells the engine how large its print is; a file that declares none
//! is taken at the job's resolution.

use std::io::Cursor;

/// Pixels per inch across and down.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Resolution {
    /// Pixels per inch across.
    pub x: f32,
    /// Pixels per inch down.
    pub y: f32,
}

/// Declared resolutions outside this range are taken for no declaration:
/// 0 is what many writers leave, and no document image is scanned coarser
/// than a fax's 98 lines an inch by much or finer than a drum scanner's.
const PLAUSIBLE: std::ops::RangeInclusive<f32> = 20.0..=9600.0;

const INCH_IN_METRES: f64 = 0.0254;
const INCH_IN_CM: f32 = 2.54;

impl Resolution {
    /// The same resolution both ways.
    pub fn square(dpi: f32) -> Self {
        Self { x: dpi, y: dpi }
    }

    /// `x` and `y` per `unit_inches` of an inch, when both are plausible.
    fn per(x: f64, y: f64, unit_inches: f32) -> Option<Self> {
        let x = x as f32 / unit_inches;
        let y = y as f32 / unit_inches;
        (PLAUSIBLE.contains(&x) && PLAUSIBLE.contains(&y)).then_some(Self { x, y })
    }

    /// What a TIFF directory's `XResolution`, `YResolution` and
    /// `ResolutionUnit` (1: none, 2: inch, the default, 3: centimetre) say.
    pub fn of_tiff_tags(x: f64, y: f64, unit: Option<u32>) -> Option<Self> {
        match unit.unwrap_or(2) {
            2 => Self::per(x, y, 1.0),
            3 => Self::per(x, y, 1.0 / INCH_IN_CM),
            _ => None,
        }
    }

    /// The finer of the two: pixels that are not square are made square at it.
    pub fn finest(&self) -> f32 {
        self.x.max(self.y)
    }
}

/// The resolution a PNG or JPEG file declares, if it declares one that is
/// plausible: PNG's `pHYs` chunk in pixels per metre, JPEG's JFIF header in
/// dots per inch or centimetre, else its EXIF `XResolution` and
/// `YResolution`. `None` for other files, and for a PNG whose `pHYs` gives
/// only the pixels' aspect.
pub fn declared(bytes: &[u8]) -> Option<Resolution> {
    if bytes.starts_with(b"\x89PNG") {
        let reader = png::Decoder::new(Cursor::new(bytes)).read_info().ok()?;
        let dims = reader.info().pixel_dims?;
        return match dims.unit {
            png::Unit::Meter => Resolution::per(whole_dpi(dims.xppu), whole_dpi(dims.yppu), 1.0),
            png::Unit::Unspecified => None,
        };
    }
    if bytes.starts_with(&[0xFF, 0xD8]) {
        return jfif(bytes).or_else(|| exif(bytes));
    }
    None
}

/// PNG keeps whole pixels per metre: a count that is a whole number of
/// dots per inch, rounded, is taken as that number (5906 is 150 dpi, not
/// 150.01).
fn whole_dpi(per_metre: u32) -> f64 {
    let dpi = per_metre as f64 * INCH_IN_METRES;
    if (dpi.round() / INCH_IN_METRES).round() == per_metre as f64 {
        dpi.round()
    } else {
        dpi
    }
}

/// The JFIF header's density: an APP0 segment right after the start of the
/// image, `JFIF\0`, two bytes of version, the unit (0: aspect only, 1: per
/// inch, 2: per centimetre) and the two densities, big-endian.
fn jfif(bytes: &[u8]) -> Option<Resolution> {
    let app0 = bytes.get(2..18)?;
    if app0[..2] != [0xFF, 0xE0] || &app0[4..9] != b"JFIF\0" {
        return None;
    }
    let x = u16::from_be_bytes([app0[12], app0[13]]) as f64;
    let y = u16::from_be_bytes([app0[14], app0[15]]) as f64;
    match app0[11] {
        1 => Resolution::per(x, y, 1.0),
        2 => Resolution::per(x, y, 1.0 / INCH_IN_CM),
        _ => None,
    }
}

/// The EXIF block's resolution: its tags are TIFF's.
fn exif(bytes: &[u8]) -> Option<Resolution> {
    use exif::{In, Tag, Value};
    let exif = exif::Reader::new()
        .read_from_container(&mut Cursor::new(bytes))
        .ok()?;
    let rational = |tag| match &exif.get_field(tag, In::PRIMARY)?.value {
        Value::Rational(v) => v.first().map(|r| r.to_f64()),
        _ => None,
    };
    let unit = exif
        .get_field(Tag::ResolutionUnit, In::PRIMARY)
        .and_then(|f| f.value.get_uint(0));
    Resolution::of_tiff_tags(
        rational(Tag::XResolution)?,
        rational(Tag::YResolution)?,
        unit,
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn png_at(dims: Option<png::PixelDimensions>) -> Vec<u8> {
        let mut out = Vec::new();
        let mut encoder = png::Encoder::new(&mut out, 4, 4);
        encoder.set_color(png::ColorType::Grayscale);
        encoder.set_pixel_dims(dims);
        let mut writer = encoder.write_header().unwrap();
        writer.write_image_data(&[255; 16]).unwrap();
        writer.finish().unwrap();
        out
    }

    fn jpeg_with_app0(unit: u8, x: u16, y: u16) -> Vec<u8> {
        let mut bytes = vec![0xFF, 0xD8, 0xFF, 0xE0, 0, 16];
        bytes.extend_from_slice(b"JFIF\0\x01\x02");
        bytes.push(unit);
        bytes.extend_from_slice(&x.to_be_bytes());
        bytes.extend_from_slice(&y.to_be_bytes());
        bytes.extend_from_slice(&[0, 0, 0xFF, 0xD9]);
        bytes
    }

    #[test]
    fn a_png_declares_pixels_per_metre() {
        // 150 dpi is 5905.5 pixels a metre: written as 5906.
        let dims = png::PixelDimensions {
            xppu: 5906,
            yppu: 5906,
            unit: png::Unit::Meter,
        };
        assert_eq!(
            declared(&png_at(Some(dims))),
            Some(Resolution::square(150.0))
        );
        let odd = png::PixelDimensions { xppu: 5910, ..dims };
        let r = declared(&png_at(Some(odd))).unwrap();
        assert!((r.x - 150.114).abs() < 0.001 && r.y == 150.0, "{r:?}");
        assert_eq!(declared(&png_at(None)), None);
        let aspect_only = png::PixelDimensions {
            unit: png::Unit::Unspecified,
            ..dims
        };
        assert_eq!(declared(&png_at(Some(aspect_only))), None);
    }

    #[test]
    fn a_jpeg_declares_dots_per_inch_or_centimetre() {
        assert_eq!(
            declared(&jpeg_with_app0(1, 300, 300)),
            Some(Resolution::square(300.0))
        );
        let per_cm = declared(&jpeg_with_app0(2, 118, 118)).unwrap();
        assert!((per_cm.x - 299.72).abs() < 0.01, "{per_cm:?}");
        // A fax's lines: finer across than down.
        assert_eq!(
            declared(&jpeg_with_app0(1, 204, 98)),
            Some(Resolution { x: 204.0, y: 98.0 })
        );
        // Aspect only, and the 0 many writers leave, declare nothing.
        assert_eq!(declared(&jpeg_with_app0(0, 1, 1)), None);
        assert_eq!(declared(&jpeg_with_app0(1, 0, 0)), None);
    }

    /// A JPEG whose only resolution is in its EXIF block (as a camera's or
    /// phone's): a TIFF header and one directory, little-endian.
    fn jpeg_with_exif(x: u32, y: u32, unit: u16) -> Vec<u8> {
        let mut tiff = b"II*\0\x08\0\0\0".to_vec();
        tiff.extend_from_slice(&3u16.to_le_bytes());
        let entry = |tiff: &mut Vec<u8>, tag: u16, kind: u16, value: u32| {
            tiff.extend_from_slice(&tag.to_le_bytes());
            tiff.extend_from_slice(&kind.to_le_bytes());
            tiff.extend_from_slice(&1u32.to_le_bytes());
            tiff.extend_from_slice(&value.to_le_bytes());
        };
        // The directory ends at 8 + 2 + 3 * 12 + 4 = 50; the two rationals follow.
        entry(&mut tiff, 0x011A, 5, 50);
        entry(&mut tiff, 0x011B, 5, 58);
        entry(&mut tiff, 0x0128, 3, unit as u32);
        tiff.extend_from_slice(&0u32.to_le_bytes());
        for v in [x, 1, y, 1] {
            tiff.extend_from_slice(&v.to_le_bytes());
        }
        let mut bytes = vec![0xFF, 0xD8, 0xFF, 0xE1];
        bytes.extend_from_slice(&((tiff.len() + 8) as u16).to_be_bytes());
        bytes.extend_from_slice(b"Exif\0\0");
        bytes.extend_from_slice(&tiff);
        bytes.extend_from_slice(&[0xFF, 0xD9]);
        bytes
    }

    #[test]
    fn a_jpeg_without_jfif_declares_through_exif() {
        assert_eq!(
            declared(&jpeg_with_exif(300, 300, 2)),
            Some(Resolution::square(300.0))
        );
        assert_eq!(declared(&jpeg_with_exif(300, 300, 1)), None);
    }

    #[test]
    fn a_tiff_unit_of_none_declares_nothing() {
        assert_eq!(
            Resolution::of_tiff_tags(200.0, 200.0, None),
            Some(Resolution::square(200.0))
        );
        assert_eq!(Resolution::of_tiff_tags(200.0, 200.0, Some(1)), None);
        let cm = Resolution::of_tiff_tags(118.11, 118.11, Some(3)).unwrap();
        assert!((cm.x - 300.0).abs() < 0.01);
        assert_eq!(declared(b"II*\0"), None);
    }
}
