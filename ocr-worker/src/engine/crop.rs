//! Cutting text lines out of the page along their (possibly rotated) boxes.

use image::RgbImage;
use imageproc::geometric_transformations::{Border, Interpolation, warp_into_with};

use super::geometry::Quad;
use super::pixels::resize_region;

/// Samples the region inside `quad` into an upright image as wide as the quad's
/// longer horizontal side and as tall as its longer vertical side. Each output
/// pixel maps to the bilinear blend of the four corners, which is exact for the
/// rectangles detection produces and sane for quads clipped at the page edge.
/// Lines much taller than wide (vertical text) are turned to lie horizontally.
pub(crate) fn crop_line(page: &RgbImage, quad: &Quad) -> Option<RgbImage> {
    let w = quad.width().round() as u32;
    let h = quad.height().round() as u32;
    if w == 0 || h == 0 {
        return None;
    }
    let [tl, tr, br, bl] = quad.0;
    // Upright boxes, nearly all of them, are a scaled crop of the page.
    let level = |a: f32, b: f32| (a - b).abs() < 1e-3;
    if level(tl[1], tr[1]) && level(bl[1], br[1]) && level(tl[0], bl[0]) && level(tr[0], br[0]) {
        let region = [tl[0], tl[1], tr[0] - tl[0], bl[1] - tl[1]].map(f64::from);
        if let Some(out) = resize_region(page, region, w, h) {
            return Some(upright(quad, out));
        }
    }
    let mut out = RgbImage::new(w, h);
    let (fw, fh) = (w as f32, h as f32);
    warp_into_with(
        page,
        move |x, y| {
            // Output pixel centre → fractional position along the box.
            let s = ((x + 0.5) / fw).clamp(0.0, 1.0);
            let t = ((y + 0.5) / fh).clamp(0.0, 1.0);
            let top = [tl[0] + s * (tr[0] - tl[0]), tl[1] + s * (tr[1] - tl[1])];
            let bottom = [bl[0] + s * (br[0] - bl[0]), bl[1] + s * (br[1] - bl[1])];
            let px = top[0] + t * (bottom[0] - top[0]) - 0.5;
            let py = top[1] + t * (bottom[1] - top[1]) - 0.5;
            (px, py)
        },
        Interpolation::Bilinear,
        Border::Replicate,
        &mut out,
    );
    Some(upright(quad, out))
}

/// PaddleOCR turns crops 1.5 times taller than wide: such a box holds a
/// vertical line of text read top to bottom.
fn upright(quad: &Quad, crop: RgbImage) -> RgbImage {
    if is_vertical(quad) {
        image::imageops::rotate270(&crop)
    } else {
        crop
    }
}

/// Whether a line is cropped turned a quarter (counter-clockwise), to read
/// a vertical line left to right: then the crop's width runs down the quad.
pub(crate) fn is_vertical(quad: &Quad) -> bool {
    quad.height().round() >= 1.5 * quad.width().round()
}

/// The part of a line's quad from `f0` to `f1` (fractions of the cropped
/// line's width, in its reading direction), as corners top-left,
/// top-right, bottom-right, bottom-left in page coordinates.
pub(crate) fn stretch(quad: &Quad, f0: f32, f1: f32) -> [[f32; 2]; 4] {
    let [tl, tr, br, bl] = quad.0;
    let at =
        |a: [f32; 2], b: [f32; 2], f: f32| [a[0] + f * (b[0] - a[0]), a[1] + f * (b[1] - a[1])];
    if is_vertical(quad) {
        [
            at(tl, bl, f0),
            at(tr, br, f0),
            at(tr, br, f1),
            at(tl, bl, f1),
        ]
    } else {
        [
            at(tl, tr, f0),
            at(tl, tr, f1),
            at(bl, br, f1),
            at(bl, br, f0),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    fn pixel_at(img: &RgbImage, x: u32, y: u32) -> Rgb<u8> {
        *img.get_pixel(x, y)
    }

    #[test]
    fn a_stretch_of_a_line_lies_along_its_reading_direction() {
        let line = Quad([[10.0, 20.0], [110.0, 20.0], [110.0, 40.0], [10.0, 40.0]]);
        assert_eq!(
            stretch(&line, 0.25, 0.5),
            [[35.0, 20.0], [60.0, 20.0], [60.0, 40.0], [35.0, 40.0]]
        );
        // A vertical line is read downwards.
        let column = Quad([[10.0, 0.0], [30.0, 0.0], [30.0, 100.0], [10.0, 100.0]]);
        assert!(is_vertical(&column));
        assert_eq!(
            stretch(&column, 0.5, 1.0),
            [[10.0, 50.0], [30.0, 50.0], [30.0, 100.0], [10.0, 100.0]]
        );
    }

    #[test]
    fn axis_aligned_crop_copies_the_region() {
        let mut page = RgbImage::from_pixel(100, 50, Rgb([255, 255, 255]));
        for y in 10..20 {
            for x in 30..70 {
                page.put_pixel(x, y, Rgb([0, 0, 0]));
            }
        }
        let quad = Quad([[30.0, 10.0], [70.0, 10.0], [70.0, 20.0], [30.0, 20.0]]);
        let crop = crop_line(&page, &quad).unwrap();
        assert_eq!(crop.dimensions(), (40, 10));
        assert!(crop.pixels().all(|p| p.0 == [0, 0, 0]));
        // Off by a fraction of a pixel, as detection's boxes are, it samples
        // as the general warp does.
        let page = RgbImage::from_fn(100, 50, |x, y| Rgb([(x * 2) as u8, (y * 5) as u8, 7]));
        let quad = Quad([[30.4, 10.3], [70.9, 10.3], [70.9, 20.6], [30.4, 20.6]]);
        let fast = crop_line(&page, &quad).unwrap();
        // Tilted by a hundredth of a pixel, it takes the general warp.
        let skew = Quad([[30.4, 10.3], [70.9, 10.31], [70.9, 20.6], [30.4, 20.6]]);
        let warped = crop_line(&page, &skew).unwrap();
        assert_eq!(fast.dimensions(), warped.dimensions());
        let worst = crate::engine::pixels::worst_difference(&fast, &warped);
        assert!(worst <= 2, "differs by {worst}");
    }

    #[test]
    fn rotated_box_is_straightened() {
        // A page whose left half is red and right half blue; a box rotated 90°
        // (its "top" edge runs downward) must come out with red and blue swapped
        // into top/bottom order.
        let page = RgbImage::from_fn(40, 40, |x, _| {
            if x < 20 {
                Rgb([255, 0, 0])
            } else {
                Rgb([0, 0, 255])
            }
        });
        // top-left at (30,5) going down to (30,35): the top edge is on the blue side.
        let quad = Quad([[30.0, 5.0], [30.0, 35.0], [10.0, 35.0], [10.0, 5.0]]);
        let crop = crop_line(&page, &quad).unwrap();
        assert_eq!(crop.dimensions(), (30, 20));
        assert_eq!(pixel_at(&crop, 15, 2).0, [0, 0, 255]);
        assert_eq!(pixel_at(&crop, 15, 17).0, [255, 0, 0]);
    }

    #[test]
    fn tall_crops_are_turned_and_empty_ones_skipped() {
        let page = RgbImage::new(50, 50);
        let tall = Quad([[10.0, 0.0], [20.0, 0.0], [20.0, 40.0], [10.0, 40.0]]);
        assert_eq!(crop_line(&page, &tall).unwrap().dimensions(), (40, 10));
        let flat = Quad([[10.0, 10.0], [10.0, 10.0], [10.0, 10.0], [10.0, 10.0]]);
        assert!(crop_line(&page, &flat).is_none());
    }
}
