//! Page and line images to model input: resampling and tensor filling, the
//! work around every model run.
//!
//! Resampling is `fast_image_resize`'s bilinear convolution, the same filter
//! as `image`'s `Triangle` (a tent as wide as the scale factor asks) in SIMD
//! fixed-point arithmetic: a profile of the sample pages had `image`'s resize
//! at 14% of all CPU time, more than anything but the models.

use fast_image_resize::{FilterType, ResizeAlg, ResizeOptions, Resizer};
use image::RgbImage;

/// `img` scaled to `width` × `height` with a bilinear (tent) filter.
pub(crate) fn resize(img: &RgbImage, width: u32, height: u32) -> RgbImage {
    let whole = [0.0, 0.0, img.width() as f64, img.height() as f64];
    match resize_region(img, whole, width, height) {
        Some(out) => out,
        // An empty source has nothing to scale; fast_image_resize refusing a
        // non-empty one (it refuses only other pixel types) still gets the
        // same filter, slower.
        None if img.width() == 0 || img.height() == 0 => RgbImage::new(width, height),
        None => image::imageops::resize(img, width, height, image::imageops::FilterType::Triangle),
    }
}

/// The region `[left, top, width, height]` of `img` (in pixels, fractions
/// allowed) scaled to `width` × `height` with a bilinear (tent) filter;
/// `None` when the region is empty or not inside the image.
pub(crate) fn resize_region(
    img: &RgbImage,
    region: [f64; 4],
    width: u32,
    height: u32,
) -> Option<RgbImage> {
    let [left, top, w, h] = region;
    let inside = left >= 0.0
        && top >= 0.0
        && w > 0.0
        && h > 0.0
        && left + w <= img.width() as f64
        && top + h <= img.height() as f64;
    if !inside {
        return None;
    }
    let mut out = RgbImage::new(width, height);
    if width == 0 || height == 0 {
        return Some(out);
    }
    let options = ResizeOptions::new()
        .resize_alg(ResizeAlg::Convolution(FilterType::Bilinear))
        .crop(left, top, w, h);
    // It refuses only pixel types other than the source's, and empty images.
    Resizer::new().resize(img, &mut out, &options).ok()?;
    Some(out)
}

/// How one 8-bit RGB channel becomes a model's input value.
pub(crate) struct Planes {
    /// Input plane of each RGB channel (`[2, 1, 0]` for BGR models).
    order: [usize; 3],
    /// Value of every 8-bit level, per RGB channel.
    table: [[f32; 256]; 3],
}

impl Planes {
    /// Channel `c` of RGB goes to plane `order[c]` as `value(c, level)`.
    pub(crate) fn new(order: [usize; 3], value: impl Fn(usize, u8) -> f32) -> Self {
        let mut table = [[0.0; 256]; 3];
        for (c, row) in table.iter_mut().enumerate() {
            for (level, v) in row.iter_mut().enumerate() {
                *v = value(c, level as u8);
            }
        }
        Self { order, table }
    }

    /// Writes `img` into `chw`, three planes of `rows` × `stride` values
    /// (`stride` at least the image's width and `rows` its height), from
    /// the top-left corner; the rest of each plane is left as it is.
    pub(crate) fn write(&self, img: &RgbImage, chw: &mut [f32], rows: usize, stride: usize) {
        let (w, h) = (img.width() as usize, img.height() as usize);
        debug_assert!(w <= stride && h <= rows && chw.len() >= 3 * rows * stride);
        let plane = rows * stride;
        if w == 0 {
            return;
        }
        for (y, row) in img.as_raw().chunks_exact(3 * w).enumerate().take(rows) {
            for (x, px) in row.chunks_exact(3).enumerate() {
                for c in 0..3 {
                    chw[self.order[c] * plane + y * stride + x] = self.table[c][px[c] as usize];
                }
            }
        }
    }
}

/// The largest difference between two images' levels, for tests.
#[cfg(test)]
pub(crate) fn worst_difference(a: &RgbImage, b: &RgbImage) -> u8 {
    let pairs = a.as_raw().iter().zip(b.as_raw());
    pairs.map(|(x, y)| x.abs_diff(*y)).max().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resize_matches_the_image_crates_triangle_filter() {
        // A page-like image: dark strokes on white, scaled down as detection
        // does and up as recognition does for small print.
        let mut img = RgbImage::from_pixel(301, 97, image::Rgb([255, 255, 255]));
        for (x, y, px) in img.enumerate_pixels_mut() {
            if (x / 3 + y / 5) % 4 == 0 {
                *px = image::Rgb([(x % 256) as u8, 20, (y * 2) as u8]);
            }
        }
        for (w, h) in [(150, 48), (640, 200), (301, 97), (7, 3)] {
            let ours = resize(&img, w, h);
            let theirs = image::imageops::resize(&img, w, h, image::imageops::FilterType::Triangle);
            assert_eq!(ours.dimensions(), (w, h));
            let worst = worst_difference(&ours, &theirs);
            assert!(worst <= 3, "{w}x{h}: levels differ by {worst}");
        }
        assert_eq!(resize(&RgbImage::new(0, 5), 4, 4).dimensions(), (4, 4));
        assert_eq!(resize(&img, 0, 4).dimensions(), (0, 4));
    }

    #[test]
    fn planes_take_each_channel_to_its_plane_and_leave_the_padding() {
        let mut img = RgbImage::new(2, 1);
        img.put_pixel(0, 0, image::Rgb([10, 20, 30]));
        img.put_pixel(1, 0, image::Rgb([40, 50, 60]));
        let bgr = Planes::new([2, 1, 0], |c, v| v as f32 + c as f32 / 10.0);
        // Two rows of stride three; padding marked with -1.
        let mut chw = vec![-1.0; 3 * 2 * 3];
        bgr.write(&img, &mut chw, 2, 3);
        let plane = |p: usize| &chw[p * 6..p * 6 + 6];
        assert_eq!(plane(2), [10.0, 40.0, -1.0, -1.0, -1.0, -1.0]);
        assert_eq!(plane(1), [20.1, 50.1, -1.0, -1.0, -1.0, -1.0]);
        assert_eq!(plane(0), [30.2, 60.2, -1.0, -1.0, -1.0, -1.0]);
    }
}
