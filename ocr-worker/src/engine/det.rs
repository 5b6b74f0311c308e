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
    /// Run the network on the part of the scaled page that holds ink, with
    /// [`INK_MARGIN`] pixels of background around it, rather than on the
    /// whole page: the same pixels at the same scale, minus the margins.
    pub crop_to_ink: bool,
}

/// A pixel is ink when one of its channels differs from the page's
/// background by more than this many levels. It is measured on the page as
/// the network sees it (scaled to the side limit), where specks smaller than
/// a map pixel are already averaged into their surroundings.
const INK_CONTRAST: u8 = 16;

/// Background kept around the ink when detection is cropped, in map pixels,
/// before the crop is widened to the network's 32-pixel grid. The network
/// pads its input with zeros, not with the page's white, and its deepest
/// layers see the whole input, so the probabilities over text move a little
/// with the crop: on the sample page `ltnews34-p2`, 3 of 115 lines read a
/// character differently and a few nearly level boxes turn by a degree. A
/// margin of 64 did not make them identical; 128 did, and crops next to
/// nothing from a page with one-inch margins. Scores over both page sets
/// were unchanged or a little better (BENCHMARKS.md); `real_models.rs`
/// bounds the difference.
const INK_MARGIN: u32 = 32;

/// The input side is always below this after scaling. PaddleOCR caps at 4000 as
/// well: the network's receptive field gains nothing past it and memory grows
/// with the square.
const MAX_SIDE: u32 = 4000;

/// A page whose resolution is known and at least this is seen by detection
/// at no less than this resolution of its print, where the side limit would
/// take it lower: a page larger than 12.8 inches (A3, a tabloid spread, a
/// drawing) keeps the size of print that the side limit keeps on a letter
/// page, 116 pixels an inch, about. A lower resolution is not believed: 72
/// and 96 are what cameras and screenshots declare whatever they show.
pub const MIN_DETECT_DPI: f32 = 100.0;

impl SideLimit {
    /// The limit for a page of `width` × `height` pixels at `dpi`: a
    /// [`SideLimit::Max`] raised to keep [`MIN_DETECT_DPI`] of its print.
    /// Never past the page's own size, since the resolution is at least that.
    pub fn for_print(self, width: u32, height: u32, dpi: Option<f32>) -> Self {
        match (self, dpi) {
            (Self::Max(side), Some(dpi)) if dpi >= MIN_DETECT_DPI => {
                let inches = width.max(height) as f32 / dpi;
                Self::Max(side.max((inches * MIN_DETECT_DPI).round() as u32))
            }
            (limit, _) => limit,
        }
    }
}

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

/// Where a probability map lies in the page as scaled for detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Frame {
    /// The map's top-left corner in the scaled page, in its pixels.
    pub(crate) origin: (u32, u32),
    /// The map's width and height in pixels of the scaled page.
    pub(crate) size: (u32, u32),
    /// The whole scaled page, width and height in pixels.
    pub(crate) scaled: (u32, u32),
}

impl Frame {
    /// A map of the whole scaled page.
    #[cfg(test)]
    pub(crate) fn whole(width: u32, height: u32) -> Self {
        Self {
            origin: (0, 0),
            size: (width, height),
            scaled: (width, height),
        }
    }
}

/// The detection network's input for one page and where it lies.
pub(crate) struct DetInput {
    /// 1×3×H×W, BGR, normalised.
    pub(crate) tensor: Array4<f32>,
    /// The part of the scaled page the tensor holds.
    pub(crate) frame: Frame,
}

/// Resizes and normalises a page into a 1×3×H×W tensor in BGR channel order, as
/// the PP-OCR models were trained: the whole page, or with
/// [`DetParams::crop_to_ink`] the part of it that holds ink, at the side
/// limit for its print ([`SideLimit::for_print`]). `None` when
/// nothing on the page differs from its background, so there is nothing to
/// detect.
pub(crate) fn preprocess(
    image: &RgbImage,
    params: &DetParams,
    dpi: Option<f32>,
) -> Option<DetInput> {
    let (width, height) = image.dimensions();
    let limit = params.side_limit.for_print(width, height, dpi);
    let (w, h) = input_size(width, height, limit);
    let resized;
    let src = if (w, h) == image.dimensions() {
        image
    } else {
        resized = resize(image, w, h);
        &resized
    };
    let (x, y, cw, ch) = if params.crop_to_ink {
        crop_region(src, ink_bounds(src)?)
    } else {
        (0, 0, w, h)
    };
    let cut;
    let src = if (cw, ch) == (w, h) {
        src
    } else {
        cut = image::imageops::crop_imm(src, x, y, cw, ch).to_image();
        &cut
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
    let (rows, stride) = (ch as usize, cw as usize);
    let mut tensor = Array4::<f32>::zeros((1, 3, rows, stride));
    if let Some(chw) = tensor.as_slice_mut() {
        planes.write(src, chw, rows, stride);
    }
    Some(DetInput {
        tensor,
        frame: Frame {
            origin: (x, y),
            size: (cw, ch),
            scaled: (w, h),
        },
    })
}

/// The page's background: the most common level of each channel.
fn background(img: &RgbImage) -> [u8; 3] {
    let mut counts = [[0u32; 256]; 3];
    for px in img.as_raw().chunks_exact(3) {
        for c in 0..3 {
            counts[c][px[c] as usize] += 1;
        }
    }
    counts.map(|channel| {
        let most = (0..256).max_by_key(|&level| channel[level]).unwrap_or(255);
        most as u8
    })
}

/// The smallest rectangle `[x0, y0, x1, y1)` holding every ink pixel (see
/// [`INK_CONTRAST`]); `None` on a page without any.
fn ink_bounds(img: &RgbImage) -> Option<[u32; 4]> {
    let bg = background(img);
    let ink = |px: &[u8]| (0..3).any(|c| px[c].abs_diff(bg[c]) > INK_CONTRAST);
    let w = img.width() as usize;
    if w == 0 {
        return None;
    }
    let mut bounds: Option<[u32; 4]> = None;
    for (y, row) in img.as_raw().chunks_exact(3 * w).enumerate() {
        let mut pixels = row.chunks_exact(3);
        let Some(first) = pixels.position(ink) else {
            continue;
        };
        // Only the pixels right of the first ink one can move the right edge.
        let last = row.chunks_exact(3).rposition(ink).unwrap_or(first);
        let (x0, x1, y) = (first as u32, last as u32 + 1, y as u32);
        bounds = Some(match bounds {
            None => [x0, y, x1, y + 1],
            Some([bx0, by0, bx1, _]) => [bx0.min(x0), by0, bx1.max(x1), y + 1],
        });
    }
    bounds
}

/// `bounds` grown by [`INK_MARGIN`] and out to the network's 32-pixel grid,
/// within `img`, as `(x, y, width, height)`. The grid keeps the network's
/// strides where they fall on the whole page.
fn crop_region(img: &RgbImage, bounds: [u32; 4]) -> (u32, u32, u32, u32) {
    let [x0, y0, x1, y1] = bounds;
    let down = |v: u32| v.saturating_sub(INK_MARGIN) / 32 * 32;
    let up = |v: u32, limit: u32| (v + INK_MARGIN).div_ceil(32).saturating_mul(32).min(limit);
    let (left, top) = (down(x0), down(y0));
    let (right, bottom) = (up(x1, img.width()), up(y1, img.height()));
    (left, top, right - left, bottom - top)
}

/// A detected text region in page coordinates.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Detection {
    /// Corners: top-left, top-right, bottom-right, bottom-left.
    pub(crate) quad: Quad,
    /// Mean probability inside the unexpanded box.
    pub(crate) score: f32,
}

/// Extracts text boxes from a probability map lying at `frame` in the page
/// as scaled for detection, for a page of `page_w`×`page_h` pixels.
pub(crate) fn boxes_from_map(
    prob: ArrayView2<f32>,
    frame: Frame,
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
    // Map pixels to pixels of the scaled page (DB's map has its input's
    // resolution, but nothing here needs it to), then to the page's.
    let fx = frame.size.0 as f32 / map_w as f32;
    let fy = frame.size.1 as f32 / map_h as f32;
    let sx = page_w as f32 / frame.scaled.0 as f32;
    let sy = page_h as f32 / frame.scaled.1 as f32;
    let (ox, oy) = (frame.origin.0 as f32 * sx, frame.origin.1 as f32 * sy);
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
            .scaled(fx * sx, fy * sy)
            .translated(ox, oy)
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
            crop_to_ink: false,
        }
    }

    #[test]
    fn a_large_page_keeps_its_print_and_a_small_one_its_limit() {
        let limit = SideLimit::Max(1280);
        // Letter and A4 at 200 dpi: the side limit keeps more than 100 dpi.
        assert_eq!(limit.for_print(1700, 2200, Some(200.0)), limit);
        assert_eq!(limit.for_print(1654, 2339, Some(200.0)), limit);
        // A3 at 200 dpi (16.5 inches), and at 300 dpi scaled into a budget.
        assert_eq!(
            limit.for_print(2339, 3307, Some(200.0)),
            SideLimit::Max(1654)
        );
        assert_eq!(
            limit.for_print(2380, 3366, Some(204.0)),
            SideLimit::Max(1650)
        );
        // Unknown, or a resolution not believed (a camera's 72): as before.
        assert_eq!(limit.for_print(4032, 3024, None), limit);
        assert_eq!(limit.for_print(4032, 3024, Some(72.0)), limit);
        // Never past the page's own pixels.
        let SideLimit::Max(side) = limit.for_print(5000, 3000, Some(100.0)) else {
            unreachable!()
        };
        assert_eq!(side, 5000);
        assert_eq!(
            SideLimit::Min(736).for_print(3000, 2000, Some(100.0)),
            SideLimit::Min(736)
        );
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
        let t = preprocess(&img, &params(), None).unwrap().tensor;
        assert_eq!(t.dim(), (1, 3, 32, 32));
        // Red lands in plane 2 (BGR), normalised with red's mean/std.
        assert!((t[[0, 2, 0, 0]] - (1.0 - 0.485) / 0.229).abs() < 1e-5);
        assert!((t[[0, 0, 0, 0]] - (0.0 - 0.406) / 0.225).abs() < 1e-5);
    }

    fn page(width: u32, height: u32, paper: u8, bars: &[[u32; 4]]) -> RgbImage {
        let mut page = RgbImage::from_pixel(width, height, image::Rgb([paper; 3]));
        for &[x0, y0, x1, y1] in bars {
            for y in y0..y1 {
                for x in x0..x1 {
                    page.put_pixel(x, y, image::Rgb([20, 20, 20]));
                }
            }
        }
        page
    }

    #[test]
    fn ink_is_what_differs_from_the_paper_whatever_its_shade() {
        let bars = [[100, 40, 300, 60], [60, 200, 500, 215]];
        // White paper, and the grey of a scan with a lighter speck on it.
        assert_eq!(
            ink_bounds(&page(640, 480, 255, &bars)),
            Some([60, 40, 500, 215])
        );
        let mut grey = page(640, 480, 190, &bars);
        grey.put_pixel(5, 5, image::Rgb([190 + INK_CONTRAST, 190, 190]));
        assert_eq!(ink_bounds(&grey), Some([60, 40, 500, 215]));
        grey.put_pixel(5, 5, image::Rgb([190 + INK_CONTRAST + 1, 190, 190]));
        assert_eq!(ink_bounds(&grey), Some([5, 5, 500, 215]));
        // A coloured stroke counts by any channel.
        let mut colour = page(640, 480, 255, &[]);
        colour.put_pixel(600, 470, image::Rgb([255, 255, 0]));
        assert_eq!(ink_bounds(&colour), Some([600, 470, 601, 471]));
        assert_eq!(ink_bounds(&page(640, 480, 255, &[])), None);
    }

    #[test]
    fn the_crop_keeps_a_margin_on_the_networks_grid_within_the_page() {
        let img = page(640, 480, 255, &[]);
        // 32 pixels of margin, then out to multiples of 32.
        assert_eq!(crop_region(&img, [100, 70, 300, 200]), (64, 32, 288, 224));
        assert_eq!(crop_region(&img, [96, 64, 288, 192]), (64, 32, 256, 192));
        // Never past the page.
        assert_eq!(crop_region(&img, [10, 5, 630, 470]), (0, 0, 640, 480));
    }

    #[test]
    fn a_blank_page_has_nothing_to_detect() {
        let mut p = params();
        p.crop_to_ink = true;
        assert!(preprocess(&page(640, 480, 255, &[]), &p, None).is_none());
        assert!(preprocess(&page(640, 480, 0, &[]), &p, None).is_none());
        // Without the crop the network still sees the whole page.
        p.crop_to_ink = false;
        let input = preprocess(&page(640, 480, 255, &[]), &p, None).unwrap();
        assert_eq!(input.tensor.dim(), (1, 3, 480, 640));
    }

    #[test]
    fn boxes_found_in_the_crop_are_those_of_the_whole_page() {
        // A page scaled by 0.5 for detection, with text in its middle only.
        let img = page(
            1280,
            960,
            250,
            &[[300, 200, 900, 230], [340, 500, 1000, 540]],
        );
        let mut p = params();
        p.side_limit = SideLimit::Max(640);
        let mut boxes = |crop: bool| {
            p.crop_to_ink = crop;
            let input = preprocess(&img, &p, None).unwrap();
            // Text wherever the input is darker than mid-grey (the blue plane's
            // normalised value is below zero).
            let map = input
                .tensor
                .index_axis(ndarray::Axis(0), 0)
                .index_axis(ndarray::Axis(0), 0)
                .mapv(|v| if v < 0.0 { 0.9 } else { 0.0 });
            (
                input.frame,
                boxes_from_map(map.view(), input.frame, 1280, 960, &p),
            )
        };
        let (whole_frame, whole) = boxes(false);
        let (cut_frame, cut) = boxes(true);
        assert_eq!(whole_frame, Frame::whole(640, 480));
        // Ink at 150..500 × 100..270 (scaled): 32 pixels more, out to the grid.
        assert_eq!(cut_frame.origin, (96, 64));
        assert_eq!(cut_frame.size, (448, 256));
        assert_eq!(whole.len(), 2);
        assert_eq!(cut.len(), 2);
        for (a, b) in whole.iter().zip(&cut) {
            for (pa, pb) in a.quad.0.iter().zip(&b.quad.0) {
                assert!(
                    (pa[0] - pb[0]).abs() < 1e-3 && (pa[1] - pb[1]).abs() < 1e-3,
                    "{a:?} {b:?}"
                );
            }
            assert_eq!(a.score, b.score);
        }
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
        let mut dets = boxes_from_map(map.view(), Frame::whole(100, 50), 200, 100, &params());
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
        assert!(boxes_from_map(map.view(), Frame::whole(40, 40), 40, 40, &params()).is_empty());
    }

    #[test]
    fn boxes_are_clipped_to_the_page() {
        let mut map = Array2::<f32>::zeros((20, 20));
        for y in 0..8 {
            for x in 0..20 {
                map[[y, x]] = 0.9;
            }
        }
        let dets = boxes_from_map(map.view(), Frame::whole(20, 20), 20, 20, &params());
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
        let dets = boxes_from_map(map.view(), Frame::whole(100, 100), 100, 100, &params());
        assert_eq!(dets.len(), 1);
        let q = &dets[0].quad;
        let long = q.long_side();
        let short = q.short_side();
        assert!(long > 90.0 && short < 25.0, "long {long} short {short}");
    }
}
