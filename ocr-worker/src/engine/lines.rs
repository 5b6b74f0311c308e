//! Recognition of a page's lines: planned in batches of similar width,
//! offered to idle slots, and run batch by batch.

use std::sync::Arc;

use image::RgbImage;
use ndarray::{Axis, Ix3};

use super::share::{LineBatch, LineResult, LineWork};
use super::{
    Engine, EngineError, REC_BATCH_PIXELS, REC_HEIGHT, REC_MIN_WIDTH, bucket_batch, bucket_of, rec,
};

impl Engine {
    /// Recognises line images in batches of similar aspect ratio; each line
    /// with the fraction of its width one output timestep covers. With
    /// helpers, idle slots take batches too.
    pub(super) fn recognize_lines(
        &mut self,
        images: Vec<RgbImage>,
    ) -> Result<Vec<LineResult>, EngineError> {
        let batches = self.plan_batches(&images);
        // A single batch is not worth waking another slot for.
        let share = batches.len() >= 2;
        let work = Arc::new(LineWork::new(
            images,
            batches,
            self.share_key.clone(),
            tracing::Span::current(),
        ));
        if let Some(offer) = self.helpers.as_ref().filter(|_| share) {
            offer(Arc::clone(&work));
        }
        while let Some(claim) = work.claim() {
            let result = self.run_batch(&work.images, claim.batch());
            let failed = result.is_err();
            claim.finish(result);
            if failed {
                break;
            }
        }
        // A stopped or failed page takes no more of anybody's time; batches
        // already running elsewhere end on their own.
        let results = work.wait();
        work.abandon();
        results
    }

    /// The page's lines in batches: sorted by width, so each batch holds
    /// lines of similar width, and cut at [`EngineConfig::rec_batch`] lines,
    /// [`REC_BATCH_PIXELS`] pixels or (with buckets) the bucket's end.
    fn plan_batches(&self, images: &[RgbImage]) -> Vec<LineBatch> {
        let mut order: Vec<usize> = (0..images.len()).collect();
        let buckets = self.config.rec_buckets;
        let rec_batch = self.config.rec_batch.max(1);
        let width = |i: usize| {
            let w = rec::target_width(&images[i], REC_HEIGHT).max(REC_MIN_WIDTH);
            if buckets {
                bucket_of(w) as usize
            } else {
                w as usize
            }
        };
        order.sort_by_key(|&i| width(i));
        let mut batches = Vec::new();
        let mut start = 0;
        while start < order.len() {
            // Sorted by width, so the last line of a batch is its widest.
            let mut end = start + 1;
            let most = if buckets {
                bucket_batch(width(order[start]) as u32, rec_batch)
            } else {
                rec_batch
            };
            while end < order.len()
                && end - start < most
                && (end - start + 1) * width(order[end]) * REC_HEIGHT as usize <= REC_BATCH_PIXELS
                && (!buckets || width(order[end]) == width(order[start]))
            {
                end += 1;
            }
            batches.push(LineBatch {
                lines: order[start..end].to_vec(),
                bucket: buckets.then(|| (width(order[start]) as u32, most)),
            });
            start = end;
        }
        batches
    }

    /// Recognises one batch of `images`, in the batch's order.
    pub(super) fn run_batch(
        &mut self,
        images: &[RgbImage],
        batch: &LineBatch,
    ) -> Result<Vec<LineResult>, EngineError> {
        let lines: Vec<&RgbImage> = batch.lines.iter().map(|&i| &images[i]).collect();
        let input = match batch.bucket {
            Some((width, most)) => rec::fixed_tensor(&lines, REC_HEIGHT, width, most),
            None => rec::batch_tensor(&lines, REC_HEIGHT, REC_MIN_WIDTH),
        };
        let input_width = input.dim().3 as f32;
        let out = self.rec.run(&input)?;
        let probs = out
            .into_dimensionality::<Ix3>()
            .map_err(|e| EngineError::Inference {
                step: "recognize",
                message: format!("recognition output is not [batch, steps, classes]: {e}"),
            })?;
        let steps = probs.dim().1.max(1) as f32;
        Ok(lines
            .iter()
            .enumerate()
            .map(|(k, image)| {
                // A line squeezed into its bucket spans the whole input.
                let line_width =
                    rec::target_width(image, REC_HEIGHT).min(input.dim().3 as u32) as f32;
                let line = probs.index_axis(Axis(0), k);
                let decoded = if self.rec_steps {
                    self.vocab.decode_summary(line)
                } else {
                    self.vocab.decode(line)
                };
                (decoded, input_width / steps / line_width)
            })
            .collect())
    }
}
