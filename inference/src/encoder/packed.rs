//! The encoder's inference-only forward pass on the CPU. The texts of a batch are packed one
//! after another with no padding at all (every matrix multiply sees only real tokens, in any
//! order of texts); query, key and value come from one matrix multiply; attention runs per
//! text and head in one pass over its own tokens; bias + GELU and bias + residual + LayerNorm
//! are each one in-place pass. Training never comes here: it needs `bert.rs`'s
//! differentiable ops, these have no backward pass.

use super::panel_matmul;
// Plain loops below are compiled inside `pulp::Arch::dispatch` (AVX-512, AVX2 or baseline,
// chosen at run time under the `TAGGER_SIMD` cap, see `crate::simd`) with `#[inline(always)]`
// helpers, so they vectorise to the CPU's width: built for baseline x86-64 they ran 4 lanes
// wide, and GELU alone took 9% of a batch.
use super::tokenize::Tokens;
use candle_core::{CpuStorage, InplaceOp1, InplaceOp2, Layout, Storage, Tensor};
use pulp::{Simd, WithSimd};
use rayon::prelude::*;

/// Rows handed to one rayon task by the row-wise passes: enough work to be worth a task.
const ROWS_PER_TASK: usize = 16;

/// LayerNorm's parameters as plain values.
#[derive(Debug, Clone)]
pub(crate) struct Norm {
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
    pub eps: f32,
}

/// A linear layer's weight matrix in the layout the packed forward pass reads.
#[derive(Debug, Clone)]
pub(crate) struct Matrix {
    /// `[inputs, outputs]` (a transposed view of the `[outputs, inputs]` checkpoint
    /// tensor), for candle's gemm: used when the outputs are not a multiple of 64.
    whole: Tensor,
    /// `[outputs / 64, inputs, 64]`, contiguous, for `panel_matmul`: every layer of the
    /// BERT-family encoders we serve (hidden sizes 384, 768, 1024 and four times those).
    /// Measured with `bench encoder … inference` on MiniLM (docs/benchmarks.md): one text
    /// and batches both got faster than through gemm, which re-packs `whole` on every call.
    panels: Option<Tensor>,
}

impl Matrix {
    /// From a checkpoint's `[outputs, inputs]` weight.
    pub fn new(weight: &Tensor) -> candle_core::Result<Self> {
        let (outputs, inputs) = weight.dims2()?;
        let width = panel_matmul::PANEL_WIDTH;
        let panels = if outputs.is_multiple_of(width) {
            Some(
                weight
                    .reshape((outputs / width, width, inputs))?
                    .transpose(1, 2)?
                    .contiguous()?,
            )
        } else {
            None
        };
        Ok(Self {
            whole: weight.t()?,
            panels,
        })
    }

    /// `states [rows, inputs] → [rows, outputs]`, split over two threads of the calling
    /// pool when it has them.
    fn apply(&self, states: &Tensor) -> candle_core::Result<Tensor> {
        let Some(panels) = &self.panels else {
            return states.matmul(&self.whole);
        };
        let (count, inputs, width) = panels.dims3()?;
        let states = states.contiguous()?;
        let (x, x_layout) = states.storage_and_layout();
        let (weights, weights_layout) = panels.storage_and_layout();
        let (Storage::Cpu(x), Storage::Cpu(weights)) = (&*x, &*weights) else {
            candle_core::bail!("the packed encoder runs on the CPU only");
        };
        let (x, x_width) = rows(x, x_layout)?;
        let (weights, _) = rows(weights, weights_layout)?;
        if x_width != inputs {
            candle_core::bail!("rows of {x_width} values do not fit a matrix of {inputs} inputs");
        }
        let mut out = vec![0.0f32; x.len() / inputs * count * width];
        panel_matmul::multiply_parallel(x, inputs, weights, &mut out);
        Tensor::from_vec(out, (x.len() / inputs, count * width), states.device())
    }
}

/// One transformer layer's weights, laid out for the packed forward pass.
#[derive(Debug, Clone)]
pub(crate) struct PackedLayer {
    /// Query, key and value weights side by side: `hidden → 3 × hidden`.
    pub qkv: Matrix,
    pub qkv_bias: Vec<f32>,
    pub attention_output: Matrix,
    pub attention_output_bias: Vec<f32>,
    pub attention_norm: Norm,
    pub intermediate: Matrix,
    pub intermediate_bias: Vec<f32>,
    pub output: Matrix,
    pub output_bias: Vec<f32>,
    pub output_norm: Norm,
}

/// A BERT encoder's weights for the packed CPU forward pass (built by `Bert::packed`).
#[derive(Debug, Clone)]
pub(crate) struct PackedBert {
    pub words: Tensor,
    pub positions: Tensor,
    pub token_types: Tensor,
    pub embedding_norm: Norm,
    pub layers: Vec<PackedLayer>,
    pub heads: usize,
    pub head_size: usize,
}

impl PackedBert {
    /// Mean-pooled sentence embeddings of `texts` (unit length when `normalize`), in order.
    /// Runs on the calling rayon pool.
    pub fn embed(&self, texts: &[&Tokens], normalize: bool) -> candle_core::Result<Vec<Vec<f32>>> {
        let hidden = self.heads * self.head_size;
        let total: usize = texts.iter().map(|t| t.len()).sum();
        if total == 0 {
            return Ok(vec![vec![0.0; hidden]; texts.len()]);
        }
        let mut spans = Vec::with_capacity(texts.len());
        let (mut ids, mut type_ids, mut positions) = (
            Vec::with_capacity(total),
            Vec::with_capacity(total),
            Vec::with_capacity(total),
        );
        for tokens in texts {
            spans.push(Span {
                start: ids.len(),
                length: tokens.len(),
            });
            ids.extend_from_slice(&tokens.ids);
            type_ids.extend_from_slice(&tokens.type_ids);
            positions.extend(0..tokens.len() as u32);
        }
        let device = self.words.device();
        let index = |values: Vec<u32>| Tensor::from_vec(values, total, device);
        let states = self.words.index_select(&index(ids)?, 0)?;
        let others = (self.positions.index_select(&index(positions)?, 0)?
            + self.token_types.index_select(&index(type_ids)?, 0)?)?;
        let no_bias = vec![0.0; hidden];
        states.inplace_op2(
            &others,
            &AddNorm {
                bias: &no_bias,
                norm: &self.embedding_norm,
            },
        )?;
        let mut states = states;
        for layer in &self.layers {
            let context = layer.qkv.apply(&states)?.apply_op1_no_bwd(&Attention {
                bias: &layer.qkv_bias,
                spans: &spans,
                heads: self.heads,
                head_size: self.head_size,
            })?;
            let attended = layer.attention_output.apply(&context)?;
            attended.inplace_op2(
                &states,
                &AddNorm {
                    bias: &layer.attention_output_bias,
                    norm: &layer.attention_norm,
                },
            )?;
            let expanded = layer.intermediate.apply(&attended)?;
            expanded.inplace_op1(&BiasGelu {
                bias: &layer.intermediate_bias,
            })?;
            let output = layer.output.apply(&expanded)?;
            output.inplace_op2(
                &attended,
                &AddNorm {
                    bias: &layer.output_bias,
                    norm: &layer.output_norm,
                },
            )?;
            states = output;
        }
        let states = states.flatten_all()?.to_vec1::<f32>()?;
        Ok(spans
            .iter()
            .map(|span| {
                let mut pooled = vec![0.0f32; hidden];
                for row in states[span.start * hidden..(span.start + span.length) * hidden]
                    .chunks_exact(hidden)
                {
                    for (sum, &value) in pooled.iter_mut().zip(row) {
                        *sum += value;
                    }
                }
                let count = (span.length as f32).max(1e-9);
                pooled.iter_mut().for_each(|value| *value /= count);
                if normalize {
                    let norm = sum(&pooled.iter().map(|v| v * v).collect::<Vec<_>>())
                        .sqrt()
                        .max(1e-12);
                    pooled.iter_mut().for_each(|value| *value /= norm);
                }
                pooled
            })
            .collect())
    }
}

/// Where one text's tokens sit among the packed rows.
#[derive(Debug, Clone, Copy)]
struct Span {
    start: usize,
    length: usize,
}

/// A contiguous f32 tensor's values and its row width.
fn rows<'a>(storage: &'a CpuStorage, layout: &Layout) -> candle_core::Result<(&'a [f32], usize)> {
    let CpuStorage::F32(values) = storage else {
        candle_core::bail!("the packed encoder runs on f32 tensors only");
    };
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("the packed encoder expects contiguous tensors");
    };
    Ok((
        &values[start..end],
        layout.dims().last().copied().unwrap_or(1),
    ))
}

fn rows_mut<'a>(
    storage: &'a mut CpuStorage,
    layout: &Layout,
) -> candle_core::Result<(&'a mut [f32], usize)> {
    let CpuStorage::F32(values) = storage else {
        candle_core::bail!("the packed encoder runs on f32 tensors only");
    };
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("the packed encoder expects contiguous tensors");
    };
    Ok((
        &mut values[start..end],
        layout.dims().last().copied().unwrap_or(1),
    ))
}

/// `x ← LayerNorm(x + bias + residual)`, row by row.
struct AddNorm<'a> {
    bias: &'a [f32],
    norm: &'a Norm,
}

impl InplaceOp2 for AddNorm<'_> {
    fn name(&self) -> &'static str {
        "packed-add-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<()> {
        let (values, width) = rows_mut(s1, l1)?;
        let (residual, residual_width) = rows(s2, l2)?;
        if width != residual_width || values.len() != residual.len() || width != self.bias.len() {
            candle_core::bail!("add-norm: the residual and bias do not match the rows");
        }
        values
            .par_chunks_mut(width * ROWS_PER_TASK)
            .zip(residual.par_chunks(width * ROWS_PER_TASK))
            .for_each(|(values, residual)| {
                crate::simd::arch().dispatch(AddNormRows {
                    values,
                    residual,
                    width,
                    bias: self.bias,
                    norm: self.norm,
                });
            });
        Ok(())
    }
}

/// Rows of [`AddNorm`], compiled for the level [`crate::simd::choice`] picked.
struct AddNormRows<'a> {
    values: &'a mut [f32],
    residual: &'a [f32],
    width: usize,
    bias: &'a [f32],
    norm: &'a Norm,
}

impl WithSimd for AddNormRows<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, _simd: S) {
        for (row, residual) in self
            .values
            .chunks_exact_mut(self.width)
            .zip(self.residual.chunks_exact(self.width))
        {
            add_norm_row(row, residual, self.bias, self.norm);
        }
    }
}

#[inline(always)]
fn add_norm_row(row: &mut [f32], residual: &[f32], bias: &[f32], norm: &Norm) {
    for ((value, &r), &b) in row.iter_mut().zip(residual).zip(bias) {
        *value += r + b;
    }
    let count = row.len() as f32;
    let mean = sum(row) / count;
    let variance = sum_of_squared_deviations(row, mean) / count;
    let scale = 1.0 / (variance + norm.eps).sqrt();
    for ((value, &w), &b) in row.iter_mut().zip(&norm.weight).zip(&norm.bias) {
        *value = (*value - mean) * scale * w + b;
    }
}

/// `x ← GELU(x + bias)` with BERT's exact (erf) GELU.
struct BiasGelu<'a> {
    bias: &'a [f32],
}

impl InplaceOp1 for BiasGelu<'_> {
    fn name(&self) -> &'static str {
        "packed-bias-gelu"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> candle_core::Result<()> {
        let (values, width) = rows_mut(storage, layout)?;
        if width != self.bias.len() {
            candle_core::bail!("bias-gelu: the bias does not match the rows");
        }
        values
            .par_chunks_mut(width * ROWS_PER_TASK)
            .for_each(|values| {
                crate::simd::arch().dispatch(BiasGeluRows {
                    values,
                    bias: self.bias,
                })
            });
        Ok(())
    }
}

/// Rows of [`BiasGelu`], compiled for the CPU's widest vectors.
struct BiasGeluRows<'a> {
    values: &'a mut [f32],
    bias: &'a [f32],
}

impl WithSimd for BiasGeluRows<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, _simd: S) {
        for row in self.values.chunks_exact_mut(self.bias.len()) {
            for (value, &b) in row.iter_mut().zip(self.bias) {
                *value = gelu(*value + b);
            }
        }
    }
}

/// Self-attention of packed texts: `[tokens, 3 × hidden]` query/key/value rows (bias not yet
/// added) → `[tokens, hidden]` context rows. Each text attends only to its own tokens, so no
/// mask is needed.
struct Attention<'a> {
    bias: &'a [f32],
    spans: &'a [Span],
    heads: usize,
    head_size: usize,
}

impl candle_core::CustomOp1 for Attention<'_> {
    fn name(&self) -> &'static str {
        "packed-attention"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, candle_core::Shape)> {
        let (qkv, width) = rows(storage, layout)?;
        let hidden = self.heads * self.head_size;
        if width != 3 * hidden || self.bias.len() != width {
            candle_core::bail!("attention: rows of {width} are not query, key and value");
        }
        let tokens = qkv.len() / width;
        let mut context = vec![0.0f32; tokens * hidden];
        // One disjoint slice of the output per text, so texts run in parallel.
        let mut pieces = Vec::with_capacity(self.spans.len());
        let mut rest = context.as_mut_slice();
        for span in self.spans {
            let (piece, tail) = rest.split_at_mut(span.length * hidden);
            pieces.push((*span, piece));
            rest = tail;
        }
        pieces.into_par_iter().for_each(|(span, piece)| {
            crate::simd::arch().dispatch(Attend {
                attention: self,
                qkv: &qkv[span.start * width..(span.start + span.length) * width],
                length: span.length,
                context: piece,
            });
        });
        Ok((CpuStorage::F32(context), (tokens, hidden).into()))
    }
}

/// One text's attention, compiled for the CPU's widest vectors.
struct Attend<'a> {
    attention: &'a Attention<'a>,
    qkv: &'a [f32],
    length: usize,
    context: &'a mut [f32],
}

impl WithSimd for Attend<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, _simd: S) {
        self.attention.attend(self.qkv, self.length, self.context);
    }
}

impl Attention<'_> {
    #[inline(always)]
    fn attend(&self, qkv: &[f32], length: usize, context: &mut [f32]) {
        let size = self.head_size;
        let hidden = self.heads * size;
        let width = 3 * hidden;
        let scale = 1.0 / (size as f32).sqrt();
        let mut query = vec![0.0f32; length * size];
        let mut key = vec![0.0f32; length * size];
        let mut value = vec![0.0f32; length * size];
        let mut scores = vec![0.0f32; length];
        for head in 0..self.heads {
            // This head's query, key and value rows, biased, next to each other in memory.
            for (token, row) in qkv.chunks_exact(width).enumerate() {
                let own = token * size..(token + 1) * size;
                for (part, (target, scaling)) in
                    [(&mut query, scale), (&mut key, 1.0), (&mut value, 1.0)]
                        .into_iter()
                        .enumerate()
                {
                    let from = part * hidden + head * size;
                    for ((out, &x), &b) in target[own.clone()]
                        .iter_mut()
                        .zip(&row[from..from + size])
                        .zip(&self.bias[from..from + size])
                    {
                        *out = (x + b) * scaling;
                    }
                }
            }
            for token in 0..length {
                let q = &query[token * size..(token + 1) * size];
                for (score, k) in scores.iter_mut().zip(key.chunks_exact(size)) {
                    *score = dot(q, k);
                }
                softmax(&mut scores);
                let out =
                    &mut context[token * hidden + head * size..token * hidden + (head + 1) * size];
                out.fill(0.0);
                for (&weight, v) in scores.iter().zip(value.chunks_exact(size)) {
                    for (o, &x) in out.iter_mut().zip(v) {
                        *o += weight * x;
                    }
                }
            }
        }
    }
}

/// Sums with eight running totals: a single running total is a chain the compiler may not
/// reorder, eight are lanes it vectorises.
#[inline(always)]
fn sum(values: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let chunks = values.chunks_exact(8);
    let tail: f32 = chunks.remainder().iter().sum();
    for chunk in chunks {
        for (lane, &value) in lanes.iter_mut().zip(chunk) {
            *lane += value;
        }
    }
    lanes.iter().sum::<f32>() + tail
}

#[inline(always)]
fn sum_of_squared_deviations(values: &[f32], mean: f32) -> f32 {
    let mut lanes = [0.0f32; 8];
    let chunks = values.chunks_exact(8);
    let tail: f32 = chunks
        .remainder()
        .iter()
        .map(|v| (v - mean) * (v - mean))
        .sum();
    for chunk in chunks {
        for (lane, &value) in lanes.iter_mut().zip(chunk) {
            *lane += (value - mean) * (value - mean);
        }
    }
    lanes.iter().sum::<f32>() + tail
}

#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let (a_chunks, b_chunks) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a_chunks
        .remainder()
        .iter()
        .zip(b_chunks.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (a, b) in a_chunks.zip(b_chunks) {
        for ((lane, &x), &y) in lanes.iter_mut().zip(a).zip(b) {
            *lane += x * y;
        }
    }
    lanes.iter().sum::<f32>() + tail
}

#[inline(always)]
fn softmax(scores: &mut [f32]) {
    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    for score in scores.iter_mut() {
        *score = exp(*score - max);
    }
    let total = sum(scores);
    for score in scores.iter_mut() {
        *score /= total;
    }
}

/// `e^x` to about 1e-7 relative error, in plain arithmetic the compiler vectorises (the
/// library `expf` is a call per value): `x = n·ln 2 + r`, a degree-6 polynomial for `e^r`
/// with |r| ≤ ln 2 / 2, and `2^n` built in the exponent bits.
#[inline(always)]
fn exp(x: f32) -> f32 {
    const LOG2_E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split in two so that n · LN2_HIGH is exact.
    const LN2_HIGH: f32 = 0.693_359_4;
    const LN2_LOW: f32 = -2.121_944_4e-4;
    // Adding and subtracting 1.5 × 2^23 rounds to the nearest integer.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.3, 88.3);
    let n = (x * LOG2_E + ROUND) - ROUND;
    let r = x - n * LN2_HIGH - n * LN2_LOW;
    let poly = 1.0
        + r * (1.0
            + r * (1.0 / 2.0
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    poly * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

/// The error function to 1.5e-7 (Abramowitz & Stegun 7.1.26; 3e-7 after f32 rounding),
/// vectorisable like `exp`.
#[inline(always)]
fn erf(x: f32) -> f32 {
    const P: f32 = 0.327_591_1;
    const A: [f32; 5] = [
        0.254_829_6,
        -0.284_496_74,
        1.421_413_7,
        -1.453_152_1,
        1.061_405_4,
    ];
    let a = x.abs();
    let t = 1.0 / (1.0 + P * a);
    let poly = ((((A[4] * t + A[3]) * t + A[2]) * t + A[1]) * t + A[0]) * t;
    (1.0 - poly * exp(-a * a)).copysign(x)
}

/// BERT's GELU, `x · Φ(x)` with the exact (erf) normal CDF.
#[inline(always)]
fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vectorisable_exp_erf_and_gelu_match_the_library_functions() {
        for step in -4000..=4000 {
            let x = step as f32 / 100.0;
            let expected = f64::from(x).exp();
            let relative = ((f64::from(exp(x)) - expected) / expected).abs();
            assert!(relative < 3e-7, "exp({x}): relative error {relative}");
        }
        for step in -600..=600 {
            let x = step as f32 / 100.0;
            let expected = candle_core::cpu::erf::erf_f64(f64::from(x));
            let error = (f64::from(erf(x)) - expected).abs();
            assert!(error < 5e-7, "erf({x}): error {error}");
            let gelu_expected = 0.5
                * f64::from(x)
                * (1.0 + candle_core::cpu::erf::erf_f64(f64::from(x) / 2f64.sqrt()));
            assert!(
                (f64::from(gelu(x)) - gelu_expected).abs() < 1e-6,
                "gelu({x})"
            );
        }
    }

    #[test]
    fn softmax_and_sums_agree_with_plain_arithmetic() {
        let values: Vec<f32> = (0..37).map(|i| (i as f32 * 0.37).sin() * 5.0).collect();
        let plain: f64 = values.iter().map(|&v| f64::from(v)).sum();
        assert!((f64::from(sum(&values)) - plain).abs() < 1e-4);
        let mut scores = values.clone();
        softmax(&mut scores);
        let max = values.iter().copied().fold(f32::MIN, f32::max);
        let total: f64 = values.iter().map(|&v| f64::from(v - max).exp()).sum();
        for (&score, &v) in scores.iter().zip(&values) {
            let expected = f64::from(v - max).exp() / total;
            assert!((f64::from(score) - expected).abs() < 1e-6);
        }
    }
}
