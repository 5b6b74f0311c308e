//! Text detection: the DB network's preprocessing and post-processing.
//!
//! Post-processing follows the DB paper and PaddleOCR's `DBPostProcess`: binarize
//! the probability map, trace the borders of its connected regions, fit a
//! minimum-area rotated rectangle to each, score it by the mean probability inside,
//! expand it by the unclip offset, and map it back to page coordinates.

use image::RgbImage;
use imageproc::contours::{BorderType, find_contours};
use imageproc::geometry::min_area_rect;
use imageproc::point::Point;
use ndarray::{Array4, ArrayView2};

use super::geometry::Quad;
use super::pixels::{Planes, resize};

/// How detection input is normalised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Normalization {
    /// PP-OCRv5 and v6: `(x/255 - mean) / std` with ImageNet's mean and std.
    ImageNet,
    /// PP-OCRv4 and earlier: `(x/255 - 0.5) / 0.5`.
    Symmetric,
}

/// How the input side is limited before detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SideLimit {
    /// Scale down so the longest side is at most this many pixels.
    Max(u32),
    /// Scale up so the shortest side is at least this many pixels.
    Min(u32),
}

/// Detection parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetParams {
    /// Input normalisation of the model family.
    pub normalization: Normalization,
    /// Side limit applied before rounding to multiples of 32.
    pub side_limit: SideLimit,
    /// Probability above which a pixel is text.
    pub thresh: f32,
    /// Mean probability a box needs to be kept.
    pub box_thresh: f32,
    /// Offset ratio for expanding boxes: distance = area × ratio / perimeter.
    pub unclip_ratio: f32,
    /// Most regions considered per page.
    pub max_candidates: usize,
    /// Boxes whose short side is below this (in map pixels) are dropped.
    pub min_size: f32,
}

/// The input side is always below this after scaling. PaddleOCR caps at 4000 as
/// well: the network's receptive field gains nothing past it and memory grows
/// with the square.
const MAX_SIDE: u32 = 4000;

/// Size of the network input for a page: the side limit applied, each side a
/// multiple of 32 (the network downsamples five times), at least 32.
pub fn input_size(width: u32, height: u32, limit: SideLimit) -> (u32, u32) {
    let (w, h) = (width as f64, height as f64);
    let mut ratio = match limit {
        SideLimit::Max(side) if w.max(h) > side as f64 => side as f64 / w.max(h),
        SideLimit::Min(side) if w.min(h) < side as f64 => side as f64 / w.min(h),
        _ => 1.0,
    };
    if w.max(h) * ratio > MAX_SIDE as f64 {
        ratio = MAX_SIDE as f64 / w.max(h);
    }
    let round32 = |v: f64| (((v * ratio) / 32.0).round() as u32 * 32).clamp(32, MAX_SIDE);
    (round32(w), round32(h))
}

/// Resizes and normalises a page into a 1×3×H×W tensor in BGR channel order, as
/// the PP-OCR models were trained.
pub(crate) fn preprocess(image: &RgbImage, params: &DetParams) -> Array4<f32> {
    let (w, h) = input_size(image.width(), image.height(), params.side_limit);
    let resized;
    let src = if (w, h) == image.dimensions() {
        image
    } else {
        resized = resize(image, w, h);
        &resized
    };
    // Indexed by RGB channel; written to the BGR plane.
    let (mean, std) = match params.normalization {
        Normalization::ImageNet => ([0.406f32, 0.456, 0.485], [0.225f32, 0.224, 0.229]),
        Normalization::Symmetric => ([0.5f32; 3], [0.5f32; 3]),
    };
    // RGB channel c goes to BGR plane 2 - c.
    let planes = Planes::new([2, 1, 0], |c, v| {
        (v as f32 / 255.0 - mean[2 - c]) / std[2 - c]
    });
    let (h, w) = (h as usize, w as usize);
    let mut tensor = Array4::<f32>::zeros((1, 3, h, w));
    if let Some(chw) = tensor.as_slice_mut() {
        planes.write(src, chw, h, w);
    }
    tensor
}

/// A detected text region in page coordinates.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Detection {
    /// Corners: top-left, top-right, bottom-right, bottom-left.
    pub(crate) quad: Quad,
    /// Mean probability inside the unexpanded box.
    pub(crate) score: f32,
}

/// Extracts text boxes from a probability map of size `map` computed for a page of
/// `page_w`×`page_h` pixels.
pub(crate) fn boxes_from_map(
    prob: ArrayView2<f32>,
    page_w: u32,
    page_h: u32,
    params: &DetParams,
) -> Vec<Detection> {
    let (map_h, map_w) = prob.dim();
    if map_h == 0 || map_w == 0 {
        return Vec::new();
    }
    // The bitmap gets a one-pixel empty frame: imageproc's border following
    // only starts an outer border beside a background pixel, so a region that
    // touches the left edge of the map would otherwise never be found.
    let bitmap = image::GrayImage::from_fn(map_w as u32 + 2, map_h as u32 + 2, |x, y| {
        let inside = x >= 1 && y >= 1 && (x as usize) <= map_w && (y as usize) <= map_h;
        let text = inside && prob[[y as usize - 1, x as usize - 1]] > params.thresh;
        image::Luma([if text { 255 } else { 0 }])
    });
    let contours = find_contours::<i32>(&bitmap);
    let sx = page_w as f32 / map_w as f32;
    let sy = page_h as f32 / map_h as f32;
    let mut out = Vec::new();
    for contour in contours
        .iter()
        .filter(|c| c.border_type == BorderType::Outer)
        .take(params.max_candidates)
    {
        let points: Vec<Point<f32>> = contour
            .points
            .iter()
            .map(|p| Point::new(p.x as f32 - 1.0, p.y as f32 - 1.0))
            .collect();
        let rect = Quad::from_points(min_area_rect(&points));
        if rect.short_side() < params.min_size {
            continue;
        }
        let score = mean_inside(prob, &rect);
        if score < params.box_thresh {
            continue;
        }
        let expanded = rect.unclip(params.unclip_ratio);
        // PaddleOCR drops boxes below min_size + 2 after expansion.
        if expanded.short_side() < params.min_size + 2.0 {
            continue;
        }
        let quad = expanded
            .scaled(sx, sy)
            .clipped(page_w as f32, page_h as f32);
        out.push(Detection { quad, score });
    }
    out
}

/// Mean of the map over the pixels whose centres lie inside `quad`.
fn mean_inside(prob: ArrayView2<f32>, quad: &Quad) -> f32 {
    let (h, w) = prob.dim();
    let (x0, y0, x1, y1) = quad.bounds();
    let xs = (x0.floor().max(0.0) as usize)..=(x1.ceil().min(w as f32 - 1.0).max(0.0) as usize);
    let ys = (y0.floor().max(0.0) as usize)..=(y1.ceil().min(h as f32 - 1.0).max(0.0) as usize);
    let (mut sum, mut n) = (0.0f64, 0u32);
    for y in ys {
        for x in xs.clone() {
            if quad.contains(x as f32, y as f32) {
                sum += prob[[y, x]] as f64;
                n += 1;
            }
        }
    }
    if n == 0 { 0.0 } else { (sum / n as f64) as f32 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    fn params() -> DetParams {
        DetParams {
            normalization: Normalization::ImageNet,
            side_limit: SideLimit::Max(960),
            thresh: 0.3,
            box_thresh: 0.6,
            unclip_ratio: 1.5,
            max_candidates: 1000,
            min_size: 3.0,
        }
    }

    #[test]
    fn input_size_is_a_multiple_of_32_within_limits() {
        assert_eq!(input_size(1700, 2200, SideLimit::Max(960)), (736, 960));
        assert_eq!(input_size(100, 50, SideLimit::Max(960)), (96, 64));
        assert_eq!(input_size(100, 50, SideLimit::Min(736)), (1472, 736));
        assert_eq!(input_size(3, 3, SideLimit::Max(960)), (32, 32));
        // A huge page is capped even when the limit says "min".
        let (w, h) = input_size(20_000, 10_000, SideLimit::Min(736));
        assert!(w <= MAX_SIDE && h <= MAX_SIDE && w % 32 == 0 && h % 32 == 0);
    }

    #[test]
    fn preprocess_uses_bgr_order_and_imagenet_stats() {
        let img = RgbImage::from_pixel(32, 32, image::Rgb([255, 0, 0]));
        let t = preprocess(&img, &params());
        assert_eq!(t.dim(), (1, 3, 32, 32));
        // Red lands in plane 2 (BGR), normalised with red's mean/std.
        assert!((t[[0, 2, 0, 0]] - (1.0 - 0.485) / 0.229).abs() < 1e-5);
        assert!((t[[0, 0, 0, 0]] - (0.0 - 0.406) / 0.225).abs() < 1e-5);
    }

    #[test]
    fn two_blobs_give_two_expanded_boxes_in_page_coordinates() {
        // Map at half the page resolution with two text-like bars.
        let mut map = Array2::<f32>::zeros((50, 100));
        for y in 10..16 {
            for x in 10..60 {
                map[[y, x]] = 0.9;
            }
        }
        for y in 30..36 {
            for x in 20..90 {
                map[[y, x]] = 0.8;
            }
        }
        let mut dets = boxes_from_map(map.view(), 200, 100, &params());
        dets.sort_by(|a, b| a.quad.bounds().1.total_cmp(&b.quad.bounds().1));
        assert_eq!(dets.len(), 2);
        let (x0, y0, x1, y1) = dets[0].quad.bounds();
        // The border runs through pixel centres 10..=59 × 10..=15: a 49 × 5
        // rectangle, unclipped by 245 × 1.5 / 108 ≈ 3.4 map pixels per side,
        // then scaled by 2 into the page.
        let d = 245.0 * 1.5 / 108.0;
        for (got, want) in [
            (x0, 10.0 - d),
            (x1, 59.0 + d),
            (y0, 10.0 - d),
            (y1, 15.0 + d),
        ] {
            assert!((got - 2.0 * want).abs() <= 1.0, "{got} vs {}", 2.0 * want);
        }
        assert!((dets[0].score - 0.9).abs() < 0.05);
        assert!((dets[1].score - 0.8).abs() < 0.05);
    }

    #[test]
    fn weak_and_tiny_regions_are_dropped() {
        let mut map = Array2::<f32>::zeros((40, 40));
        // Above thresh but below box_thresh.
        for y in 5..12 {
            for x in 5..30 {
                map[[y, x]] = 0.4;
            }
        }
        // Strong but only 2 pixels tall.
        for y in 20..22 {
            for x in 5..30 {
                map[[y, x]] = 0.95;
            }
        }
        assert!(boxes_from_map(map.view(), 40, 40, &params()).is_empty());
    }

    #[test]
    fn boxes_are_clipped_to_the_page() {
        let mut map = Array2::<f32>::zeros((20, 20));
        for y in 0..8 {
            for x in 0..20 {
                map[[y, x]] = 0.9;
            }
        }
        let dets = boxes_from_map(map.view(), 20, 20, &params());
        assert_eq!(dets.len(), 1);
        for [x, y] in dets[0].quad.0 {
            assert!(
                (0.0..=20.0).contains(&x) && (0.0..=20.0).contains(&y),
                "{x},{y}"
            );
        }
    }

    #[test]
    fn rotated_text_gets_a_rotated_box() {
        let mut map = Array2::<f32>::zeros((100, 100));
        // A bar along the diagonal, 6 pixels thick.
        for i in 10..80 {
            for t in 0..6 {
                map[[i + t, i]] = 0.9;
                map[[i, i + t]] = 0.9;
            }
        }
        let dets = boxes_from_map(map.view(), 100, 100, &params());
        assert_eq!(dets.len(), 1);
        let q = &dets[0].quad;
        let long = q.long_side();
        let short = q.short_side();
        assert!(long > 90.0 && short < 25.0, "long {long} short {short}");
    }
}
