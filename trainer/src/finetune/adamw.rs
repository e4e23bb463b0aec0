//! AdamW for the CPU as one pass per weight: gradient clipping, both moments and the
//! decoupled weight decay in place. candle's `AdamW` computes the same update in about a dozen
//! whole-tensor operations per weight, each allocating a new tensor — for MiniLM's 22.7 M
//! parameters that is most of a gigabyte of memory written per step for arithmetic that
//! reads each value once. The first and second moments are plain vectors here, not tensors.

use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, InplaceOp2, Layout, Storage, Tensor, Var};
use std::sync::Mutex;

/// The AdamW settings candle's `ParamsAdamW` defaults to (and PyTorch's, but for ε).
const BETA1: f64 = 0.9;
const BETA2: f64 = 0.999;
const EPS: f64 = 1e-8;

/// One group of weights that share a step size and a weight decay.
pub(crate) struct Group {
    weights: Vec<(Var, Moments)>,
    weight_decay: f64,
    /// Peak step size: the schedule's factor scales it.
    pub peak: f64,
}

struct Moments {
    first: Vec<f32>,
    second: Vec<f32>,
}

impl Group {
    pub(crate) fn new(vars: Vec<Var>, weight_decay: f64, peak: f64) -> Self {
        let weights = vars
            .into_iter()
            .map(|var| {
                let count = var.elem_count();
                let moments = Moments {
                    first: vec![0.0; count],
                    second: vec![0.0; count],
                };
                (var, moments)
            })
            .collect();
        Self {
            weights,
            weight_decay,
            peak,
        }
    }
}

/// AdamW over several groups of CPU f32 weights.
pub(crate) struct FusedAdamW {
    pub groups: Vec<Group>,
    steps: i32,
}

impl FusedAdamW {
    pub(crate) fn new(groups: Vec<Group>) -> Self {
        Self { groups, steps: 0 }
    }

    /// The global L2 norm of the gradients of every weight, in one read of each.
    pub(crate) fn gradient_norm(&self, gradients: &GradStore) -> candle_core::Result<f64> {
        let mut squares = 0.0;
        for group in &self.groups {
            for (var, _) in &group.weights {
                if let Some(gradient) = gradients.get(var.as_tensor()) {
                    squares += with_values(gradient, |values| {
                        values
                            .iter()
                            .map(|&g| f64::from(g) * f64::from(g))
                            .sum::<f64>()
                    })?;
                }
            }
        }
        Ok(squares.sqrt())
    }

    /// One AdamW step with every gradient multiplied by `gradient_scale` (the clipping
    /// factor) and every group's step size by `factor` (the schedule).
    pub(crate) fn step(
        &mut self,
        gradients: &GradStore,
        gradient_scale: f64,
        factor: f64,
    ) -> candle_core::Result<()> {
        self.steps += 1;
        for group in &mut self.groups {
            let rate = group.peak * factor;
            let update = Update {
                rate: rate as f32,
                decay: (1.0 - rate * group.weight_decay) as f32,
                gradient_scale: gradient_scale as f32,
                first_scale: (1.0 / (1.0 - BETA1.powi(self.steps))) as f32,
                second_scale: (1.0 / (1.0 - BETA2.powi(self.steps))) as f32,
            };
            for (var, moments) in &mut group.weights {
                let Some(gradient) = gradients.get(var.as_tensor()) else {
                    continue;
                };
                let gradient = gradient.contiguous()?;
                var.as_tensor().inplace_op2(
                    &gradient,
                    &UpdateOp {
                        update,
                        moments: Mutex::new(moments),
                    },
                )?;
            }
        }
        Ok(())
    }
}

/// Runs `read` on a tensor's values (made contiguous first if they are not).
fn with_values<R>(tensor: &Tensor, read: impl FnOnce(&[f32]) -> R) -> candle_core::Result<R> {
    let tensor = tensor.contiguous()?;
    let (storage, layout) = tensor.storage_and_layout();
    let Storage::Cpu(CpuStorage::F32(values)) = &*storage else {
        candle_core::bail!("the fused AdamW runs on CPU f32 tensors only");
    };
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("a contiguous tensor without contiguous offsets");
    };
    Ok(read(&values[start..end]))
}

#[derive(Debug, Clone, Copy)]
struct Update {
    rate: f32,
    decay: f32,
    gradient_scale: f32,
    first_scale: f32,
    second_scale: f32,
}

impl Update {
    /// candle's AdamW for one value, the gradient first scaled by the clipping factor.
    fn apply(&self, weight: &mut f32, gradient: f32, first: &mut f32, second: &mut f32) {
        let (beta1, beta2) = (BETA1 as f32, BETA2 as f32);
        let gradient = gradient * self.gradient_scale;
        *first = *first * beta1 + gradient * (1.0 - beta1);
        *second = *second * beta2 + gradient * gradient * (1.0 - beta2);
        let adjusted =
            (*first * self.first_scale) / ((*second * self.second_scale).sqrt() + EPS as f32);
        *weight = *weight * self.decay - adjusted * self.rate;
    }
}

/// The in-place update of one weight; its moments are borrowed mutably for the call (the
/// trait's method takes `&self`).
struct UpdateOp<'a> {
    update: Update,
    moments: Mutex<&'a mut Moments>,
}

impl InplaceOp2 for UpdateOp<'_> {
    fn name(&self) -> &'static str {
        "fused-adamw"
    }

    fn cpu_fwd(
        &self,
        weights: &mut CpuStorage,
        weights_layout: &Layout,
        gradients: &CpuStorage,
        gradients_layout: &Layout,
    ) -> candle_core::Result<()> {
        let (CpuStorage::F32(weights), CpuStorage::F32(gradients)) = (weights, gradients) else {
            candle_core::bail!("the fused AdamW runs on f32 weights only");
        };
        let (Some((w_start, w_end)), Some((g_start, g_end))) = (
            weights_layout.contiguous_offsets(),
            gradients_layout.contiguous_offsets(),
        ) else {
            candle_core::bail!("the fused AdamW expects contiguous weights and gradients");
        };
        let mut moments = self
            .moments
            .lock()
            .map_err(|_| candle_core::Error::Msg("the AdamW moments lock is poisoned".into()))?;
        let Moments { first, second } = &mut **moments;
        let (weights, gradients) = (&mut weights[w_start..w_end], &gradients[g_start..g_end]);
        if weights.len() != gradients.len() || weights.len() != first.len() {
            candle_core::bail!("the fused AdamW got a gradient of another shape");
        }
        let update = self.update;
        // One thread: the pass is bound by memory, not arithmetic.
        for (((weight, &gradient), first), second) in weights
            .iter_mut()
            .zip(gradients)
            .zip(first.iter_mut())
            .zip(second.iter_mut())
        {
            update.apply(weight, gradient, first, second);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // a failed unwrap is a failed test
    use super::*;
    use candle_core::{DType, Device};
    use candle_nn::{AdamW, Optimizer, ParamsAdamW};

    /// The same three steps, with clipping, as candle's AdamW on pre-scaled gradients.
    #[test]
    fn the_fused_update_matches_candles_adamw_with_clipping() {
        let device = Device::Cpu;
        let start = Tensor::randn(0f32, 1.0, (37, 5), &device).unwrap();
        let ours = Var::from_tensor(&start).unwrap();
        let theirs = Var::from_tensor(&start.copy().unwrap()).unwrap();
        let mut fused = FusedAdamW::new(vec![Group::new(vec![ours.clone()], 0.01, 0.05)]);
        let mut reference = AdamW::new(
            vec![theirs.clone()],
            ParamsAdamW {
                lr: 0.05,
                ..ParamsAdamW::default()
            },
        )
        .unwrap();
        for (step, factor) in [1.0, 0.5, 0.25].into_iter().enumerate() {
            let target = Tensor::randn(0f32, 1.0, (37, 5), &device).unwrap();
            let loss = |var: &Var| {
                ((var.as_tensor() - &target)
                    .unwrap()
                    .sqr()
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    * (step as f64 + 1.0))
                    .unwrap()
            };
            let gradients = loss(&ours).backward().unwrap();
            let norm = fused.gradient_norm(&gradients).unwrap();
            let expected_norm = f64::from(
                gradients
                    .get(ours.as_tensor())
                    .unwrap()
                    .sqr()
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap(),
            )
            .sqrt();
            assert!((norm - expected_norm).abs() < 1e-3 * expected_norm);
            let scale = 1.0 / norm;
            fused.step(&gradients, scale, factor).unwrap();
            let mut scaled = loss(&theirs).backward().unwrap();
            let gradient = scaled.remove(theirs.as_tensor()).unwrap();
            scaled.insert(theirs.as_tensor(), (gradient * scale).unwrap());
            reference.set_learning_rate(0.05 * factor);
            reference.step(&scaled).unwrap();
            let diff = (ours.as_tensor() - theirs.as_tensor())
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_dtype(DType::F32)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(diff < 1e-5, "step {step}: max abs diff {diff}");
        }
        let moved = (ours.as_tensor() - &start)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(moved > 0.05, "the weights hardly moved: {moved}");
    }
}
