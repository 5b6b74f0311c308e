//! Quadrilaterals: the boxes of text lines.

use imageproc::point::Point;

/// Four corners: top-left, top-right, bottom-right, bottom-left.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quad(pub [[f32; 2]; 4]);

fn dist(a: [f32; 2], b: [f32; 2]) -> f32 {
    ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt()
}

impl Quad {
    /// Orders four corners of a rectangle as top-left, top-right, bottom-right,
    /// bottom-left: the two leftmost points are the left side, the upper one of
    /// each side comes first.
    pub fn from_points(points: [Point<f32>; 4]) -> Self {
        let mut p: Vec<[f32; 2]> = points.iter().map(|p| [p.x, p.y]).collect();
        p.sort_by(|a, b| a[0].total_cmp(&b[0]));
        let (tl, bl) = if p[0][1] <= p[1][1] {
            (p[0], p[1])
        } else {
            (p[1], p[0])
        };
        let (tr, br) = if p[2][1] <= p[3][1] {
            (p[2], p[3])
        } else {
            (p[3], p[2])
        };
        Self([tl, tr, br, bl])
    }

    /// Length of the top and bottom sides, the longer of the two.
    pub fn width(&self) -> f32 {
        let [tl, tr, br, bl] = self.0;
        dist(tl, tr).max(dist(bl, br))
    }

    /// Length of the left and right sides, the longer of the two.
    pub fn height(&self) -> f32 {
        pagefleet_schemas::polygon_height(&self.0)
    }

    /// The shorter of width and height.
    pub fn short_side(&self) -> f32 {
        self.width().min(self.height())
    }

    /// The longer of width and height.
    pub fn long_side(&self) -> f32 {
        self.width().max(self.height())
    }

    /// Axis-aligned bounds: (min x, min y, max x, max y).
    pub fn bounds(&self) -> (f32, f32, f32, f32) {
        pagefleet_schemas::polygon_bounds(&self.0)
    }

    /// Whether a point lies inside the (convex) quad or on its border.
    pub fn contains(&self, x: f32, y: f32) -> bool {
        let mut sign = 0.0f32;
        for i in 0..4 {
            let a = self.0[i];
            let b = self.0[(i + 1) % 4];
            let cross = (b[0] - a[0]) * (y - a[1]) - (b[1] - a[1]) * (x - a[0]);
            if cross.abs() < 1e-6 {
                continue;
            }
            if sign == 0.0 {
                sign = cross.signum();
            } else if cross.signum() != sign {
                return false;
            }
        }
        true
    }

    /// Expands a rectangle outward by `area × ratio / perimeter` on every side, the
    /// offset DB's training labels were shrunk by. For a rectangle this is exact:
    /// the minimum-area rectangle around a polygon offset (rounded corners) by d
    /// is the rectangle grown by d on each side.
    pub fn unclip(&self, ratio: f32) -> Self {
        let (w, h) = (self.width(), self.height());
        let perimeter = 2.0 * (w + h);
        if perimeter <= 0.0 {
            return *self;
        }
        let d = w * h * ratio / perimeter;
        let [tl, tr, _, bl] = self.0;
        let unit = |a: [f32; 2], b: [f32; 2]| {
            let len = dist(a, b);
            if len > 0.0 {
                [(b[0] - a[0]) / len, (b[1] - a[1]) / len]
            } else {
                [0.0, 0.0]
            }
        };
        let mut u = unit(tl, tr);
        let mut v = unit(tl, bl);
        // A degenerate side has no direction: take the perpendicular of the other.
        if u == [0.0, 0.0] {
            u = if v == [0.0, 0.0] {
                [1.0, 0.0]
            } else {
                [-v[1], v[0]]
            };
        }
        if v == [0.0, 0.0] {
            v = [-u[1], u[0]];
        }
        let signs = [(-1.0, -1.0), (1.0, -1.0), (1.0, 1.0), (-1.0, 1.0)];
        let mut out = self.0;
        for (p, (su, sv)) in out.iter_mut().zip(signs) {
            p[0] += d * (su * u[0] + sv * v[0]);
            p[1] += d * (su * u[1] + sv * v[1]);
        }
        Self(out)
    }

    /// Moves every corner by `dx`, `dy`.
    pub fn translated(&self, dx: f32, dy: f32) -> Self {
        Self(self.0.map(|[x, y]| [x + dx, y + dy]))
    }

    /// Scales x and y by separate factors.
    pub fn scaled(&self, sx: f32, sy: f32) -> Self {
        Self(self.0.map(|[x, y]| [x * sx, y * sy]))
    }

    /// Clamps every corner into a `width`×`height` image.
    pub fn clipped(&self, width: f32, height: f32) -> Self {
        Self(
            self.0
                .map(|[x, y]| [x.clamp(0.0, width), y.clamp(0.0, height)]),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rect(x0: f32, y0: f32, x1: f32, y1: f32) -> Quad {
        Quad([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
    }

    #[test]
    fn corners_are_ordered_whatever_the_input_order() {
        let pts = [
            Point::new(10.0, 5.0),
            Point::new(0.0, 5.0),
            Point::new(0.0, 0.0),
            Point::new(10.0, 0.0),
        ];
        assert_eq!(Quad::from_points(pts), rect(0.0, 0.0, 10.0, 5.0));
    }

    #[test]
    fn unclip_grows_each_side_by_the_db_offset() {
        // 100 × 10: d = 1000 × 1.5 / 220.
        let q = rect(0.0, 0.0, 100.0, 10.0).unclip(1.5);
        let d = 1000.0 * 1.5 / 220.0;
        let expected = rect(-d, -d, 100.0 + d, 10.0 + d);
        for (a, b) in q.0.iter().zip(expected.0) {
            assert!(
                (a[0] - b[0]).abs() < 1e-4 && (a[1] - b[1]).abs() < 1e-4,
                "{a:?} vs {b:?}"
            );
        }
    }

    #[test]
    fn unclip_keeps_rotation() {
        let s = std::f32::consts::FRAC_1_SQRT_2;
        // A 20 × 10 rectangle rotated 45°.
        let tl = [50.0, 50.0];
        let tr = [tl[0] + 20.0 * s, tl[1] + 20.0 * s];
        let bl = [tl[0] - 10.0 * s, tl[1] + 10.0 * s];
        let br = [tr[0] - 10.0 * s, tr[1] + 10.0 * s];
        let q = Quad([tl, tr, br, bl]).unclip(1.0);
        let d = 200.0 / 60.0;
        assert!((q.width() - (20.0 + 2.0 * d)).abs() < 1e-3);
        assert!((q.height() - (10.0 + 2.0 * d)).abs() < 1e-3);
    }

    #[test]
    fn contains_and_bounds() {
        let q = rect(1.0, 2.0, 5.0, 4.0);
        assert!(q.contains(3.0, 3.0) && q.contains(1.0, 2.0));
        assert!(!q.contains(0.5, 3.0) && !q.contains(3.0, 4.5));
        assert_eq!(q.bounds(), (1.0, 2.0, 5.0, 4.0));
        assert_eq!(q.clipped(4.0, 3.0).bounds(), (1.0, 2.0, 4.0, 3.0));
    }
}
