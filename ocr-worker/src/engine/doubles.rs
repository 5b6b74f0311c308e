//! Model doubles for unit tests of the layers above the models.

use ndarray::{Array3, Array4, ArrayD};

use super::{EngineError, Model};

/// Detection double: a probability map (at input resolution) with a bar
/// wherever the page is dark.
pub(crate) struct DarkIsText;
impl Model for DarkIsText {
    fn input_shape(&self) -> [Option<usize>; 3] {
        [Some(3), None, None]
    }
    fn run(&mut self, input: &Array4<f32>) -> Result<ArrayD<f32>, EngineError> {
        let (_, _, h, w) = input.dim();
        // Plane 0 is blue, ImageNet-normalised: dark pixels are negative.
        let map = ndarray::Array::from_shape_fn((1, 1, h, w), |(_, _, y, x)| {
            if input[[0, 0, y, x]] < -1.0 {
                0.95
            } else {
                0.0
            }
        });
        Ok(map.into_dyn())
    }
}

/// Recognition double: spells "ab" in every line, with given confidence.
pub(crate) struct SaysAb(pub(crate) f32);
impl Model for SaysAb {
    fn input_shape(&self) -> [Option<usize>; 3] {
        [Some(3), Some(48), None]
    }
    fn run(&mut self, input: &Array4<f32>) -> Result<ArrayD<f32>, EngineError> {
        let n = input.dim().0;
        let mut out = Array3::<f32>::from_elem((n, 4, 4), 0.0);
        for b in 0..n {
            for (t, class) in [1usize, 0, 2, 0].into_iter().enumerate() {
                out[[b, t, class]] = self.0;
            }
        }
        Ok(out.into_dyn())
    }
}

/// Input shapes a [`RecordsShapes`] has seen.
pub(crate) type Shapes = std::sync::Arc<std::sync::Mutex<Vec<(usize, usize, usize, usize)>>>;

/// A model double that records the shape of every input it is run on.
pub(crate) struct RecordsShapes<M>(pub(crate) M, pub(crate) Shapes);
impl<M: Model> Model for RecordsShapes<M> {
    fn input_shape(&self) -> [Option<usize>; 3] {
        self.0.input_shape()
    }
    fn run(&mut self, input: &Array4<f32>) -> Result<ArrayD<f32>, EngineError> {
        if let Ok(mut shapes) = self.1.lock() {
            shapes.push(input.dim());
        }
        self.0.run(input)
    }
}

/// Classification double: every line reads upside down.
pub(crate) struct AllUpsideDown;
impl Model for AllUpsideDown {
    fn input_shape(&self) -> [Option<usize>; 3] {
        [Some(3), Some(48), Some(192)]
    }
    fn run(&mut self, input: &Array4<f32>) -> Result<ArrayD<f32>, EngineError> {
        let n = input.dim().0;
        let out = ndarray::Array2::from_shape_fn((n, 2), |(_, c)| if c == 1 { 0.97 } else { 0.03 });
        Ok(out.into_dyn())
    }
}
