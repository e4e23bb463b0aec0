//! Few rows times a weight matrix kept in column panels: the matrix multiply of one short
//! text (a dozen tokens) in the packed forward pass. At that size a multiply is bound by
//! reading the weights, not by arithmetic, and a general gemm spends its time elsewhere:
//! per call it picks a thread count (candle re-reads `/proc/cpuinfo` each time), and on
//! 64-column panels it is called once per panel, 54 calls per layer, each setting up its
//! kernel and writing a block the caller must then transpose. Here each panel row of 64
//! weights is read once from memory and used by every row while it sits in registers and
//! L1, the products go straight to their place in the `[rows, outputs]` result, and the
//! whole multiply is one call. SIMD comes from `pulp` (already in the tree under gemm):
//! AVX-512 or AVX2 chosen at run time (capped by `TAGGER_SIMD`, see `crate::simd`), a scalar
//! fallback elsewhere, and no `unsafe` here.

use pulp::{Simd, WithSimd};

/// Output columns per panel.
pub(crate) const PANEL_WIDTH: usize = 64;

/// Rows sharing one load of a panel row: with four vectors of accumulators per row, six
/// rows fill 24 of AVX-512's 32 registers and leave room for the weights and the input.
const TILE_ROWS: usize = 6;

/// Vectors of accumulators per row in one tile: a whole 64-wide panel row with AVX-512,
/// half of it with AVX2.
const TILE_VECTORS: usize = 4;

/// Cache blocking, for batches: rows are taken 48 at a time and inputs 512 at a time, so
/// the rows' inputs in use (48 × 512 floats, 96 KiB) and a panel's slice (512 × 64 floats,
/// 128 KiB) stay in a core's L2 while every tile of the block reuses them. Without it a
/// batch's 1536-wide rows went through L3 once per panel.
const BLOCK_ROWS: usize = 8 * TILE_ROWS;
const BLOCK_INPUTS: usize = 512;

/// `x [rows, inputs] · W → out [rows, outputs]`, with `W [inputs, outputs]` stored as
/// `panels [outputs / 64, inputs, 64]` (panel `p` holds output columns `64p .. 64p + 64`).
/// `panels` may be a run of whole panels out of a larger matrix: `out` then holds just
/// their columns, `out_width` wide.
pub(crate) fn multiply(x: &[f32], inputs: usize, panels: &[f32], out: &mut [f32]) {
    let rows = x.len() / inputs.max(1);
    let out_width = panels.len() / inputs.max(1);
    debug_assert_eq!(x.len(), rows * inputs);
    debug_assert_eq!(out.len(), rows * out_width);
    debug_assert_eq!(out_width % PANEL_WIDTH, 0);
    crate::simd::arch().dispatch(Kernel {
        x,
        inputs,
        panels,
        out,
        out_width,
    });
}

/// [`multiply`], with the panels split between two threads of the calling rayon pool when
/// it has two: each reads half of the weights, which is what a short text waits for.
pub(crate) fn multiply_parallel(x: &[f32], inputs: usize, panels: &[f32], out: &mut [f32]) {
    let count = panels.len() / (inputs * PANEL_WIDTH).max(1);
    if rayon::current_num_threads() < 2 || count < 2 {
        return multiply(x, inputs, panels, out);
    }
    let rows = x.len() / inputs.max(1);
    let split = count / 2;
    let (first_panels, second_panels) = panels.split_at(split * inputs * PANEL_WIDTH);
    let (first_width, second_width) = (split * PANEL_WIDTH, (count - split) * PANEL_WIDTH);
    // Each half writes its own block; the blocks' rows are then laid side by side. The
    // copy is rows × outputs floats, against inputs × outputs weights read.
    let mut second = vec![0.0f32; rows * second_width];
    let mut first = vec![0.0f32; rows * first_width];
    rayon::join(
        || multiply(x, inputs, first_panels, &mut first),
        || multiply(x, inputs, second_panels, &mut second),
    );
    for ((row, left), right) in out
        .chunks_exact_mut(first_width + second_width)
        .zip(first.chunks_exact(first_width))
        .zip(second.chunks_exact(second_width))
    {
        let (into_left, into_right) = row.split_at_mut(first_width);
        into_left.copy_from_slice(left);
        into_right.copy_from_slice(right);
    }
}

struct Kernel<'a> {
    x: &'a [f32],
    inputs: usize,
    panels: &'a [f32],
    out: &'a mut [f32],
    out_width: usize,
}

impl WithSimd for Kernel<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let Self {
            x,
            inputs,
            panels,
            out,
            out_width,
        } = self;
        let lanes = S::F32_LANES;
        let group = TILE_VECTORS * lanes;
        // A scalar fallback has one lane: a group of four columns, sixteen per panel.
        let groups = PANEL_WIDTH / group;
        let rows = x.len() / inputs;
        for block_start in (0..rows).step_by(BLOCK_ROWS) {
            let block_end = rows.min(block_start + BLOCK_ROWS);
            for k_start in (0..inputs).step_by(BLOCK_INPUTS) {
                let k_end = inputs.min(k_start + BLOCK_INPUTS);
                for (index, panel) in panels.chunks_exact(inputs * PANEL_WIDTH).enumerate() {
                    let slice = &panel[k_start * PANEL_WIDTH..k_end * PANEL_WIDTH];
                    let (weights, _) = S::as_simd_f32s(slice);
                    for g in 0..groups {
                        let column = index * PANEL_WIDTH + g * group;
                        let mut first = block_start;
                        while first < block_end {
                            let tile = Tile {
                                x: &x[first * inputs..],
                                inputs,
                                inputs_from: k_start,
                                weights,
                                group: g,
                                out: &mut out[first * out_width + column..],
                                out_width,
                                add: k_start > 0,
                            };
                            first += match block_end - first {
                                1 => tile.run::<S, 1>(simd),
                                2 => tile.run::<S, 2>(simd),
                                3 => tile.run::<S, 3>(simd),
                                4 => tile.run::<S, 4>(simd),
                                5 => tile.run::<S, 5>(simd),
                                _ => tile.run::<S, TILE_ROWS>(simd),
                            };
                        }
                    }
                }
            }
        }
    }
}

/// `R` rows by one column group of one panel, over one block of inputs.
struct Tile<'a, V> {
    /// From the tile's first row on, `inputs` values per row.
    x: &'a [f32],
    inputs: usize,
    /// The block's first input.
    inputs_from: usize,
    /// The panel's rows for the block's inputs, `64 / lanes` vectors each.
    weights: &'a [V],
    group: usize,
    /// From the tile's first row and column on, `out_width` values per row.
    out: &'a mut [f32],
    out_width: usize,
    /// Add to what earlier input blocks left in `out` rather than overwrite it.
    add: bool,
}

impl<V: Copy> Tile<'_, V> {
    /// Computes the tile and says how many rows it covered.
    #[inline(always)]
    fn run<S: Simd<f32s = V>, const R: usize>(self, simd: S) -> usize {
        let per_row = PANEL_WIDTH / S::F32_LANES;
        let width = TILE_VECTORS * S::F32_LANES;
        let x: [&[f32]; R] = std::array::from_fn(|r| {
            let row = r * self.inputs;
            &self.x[row + self.inputs_from..row + self.inputs]
        });
        let mut sums = [[simd.splat_f32s(0.0); TILE_VECTORS]; R];
        if self.add {
            for (r, sums) in sums.iter_mut().enumerate() {
                let row = &self.out[r * self.out_width..r * self.out_width + width];
                let (vectors, _) = S::as_simd_f32s(row);
                sums.copy_from_slice(&vectors[..TILE_VECTORS]);
            }
        }
        let start = self.group * TILE_VECTORS;
        for (k, weights) in self.weights.chunks_exact(per_row).enumerate() {
            let w = &weights[start..start + TILE_VECTORS];
            let w = [w[0], w[1], w[2], w[3]];
            for (row, sums) in x.iter().zip(sums.iter_mut()) {
                let value = simd.splat_f32s(row[k]);
                for (sum, &weight) in sums.iter_mut().zip(&w) {
                    *sum = simd.mul_add_f32s(value, weight, *sum);
                }
            }
        }
        for (r, sums) in sums.iter().enumerate() {
            let row = &mut self.out[r * self.out_width..r * self.out_width + width];
            let (vectors, _) = S::as_mut_simd_f32s(row);
            vectors.copy_from_slice(sums);
        }
        R
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Panels `[outputs / 64, inputs, 64]` of a row-major `[inputs, outputs]` matrix.
    fn panels_of(matrix: &[f32], inputs: usize, outputs: usize) -> Vec<f32> {
        let mut panels = Vec::with_capacity(matrix.len());
        for panel in 0..outputs / PANEL_WIDTH {
            for k in 0..inputs {
                let start = k * outputs + panel * PANEL_WIDTH;
                panels.extend_from_slice(&matrix[start..start + PANEL_WIDTH]);
            }
        }
        panels
    }

    fn values(count: usize, seed: u32) -> Vec<f32> {
        (0..count)
            .map(|i| {
                let mixed = (i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed);
                (mixed % 2001) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn products_match_the_plain_triple_loop_for_every_row_count() {
        // More inputs than one block, ending in a partial block.
        let (inputs, outputs) = (BLOCK_INPUTS + 40, 3 * PANEL_WIDTH);
        let matrix = values(inputs * outputs, 7);
        let panels = panels_of(&matrix, inputs, outputs);
        // Every remainder of the six-row tiles, more rows than one tile, and more than one
        // block of rows.
        for rows in [1, 2, 3, 4, 5, 6, 7, 13, BLOCK_ROWS + 5] {
            let x = values(rows * inputs, rows as u32);
            let mut expected = vec![0.0f64; rows * outputs];
            for r in 0..rows {
                for k in 0..inputs {
                    for j in 0..outputs {
                        expected[r * outputs + j] +=
                            f64::from(x[r * inputs + k]) * f64::from(matrix[k * outputs + j]);
                    }
                }
            }
            let mut single = vec![f32::NAN; rows * outputs];
            multiply(&x, inputs, &panels, &mut single);
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(2)
                .build()
                .expect("a pool of two threads");
            let mut split = vec![f32::NAN; rows * outputs];
            pool.install(|| multiply_parallel(&x, inputs, &panels, &mut split));
            for (i, &want) in expected.iter().enumerate() {
                assert!(
                    (f64::from(single[i]) - want).abs() < 1e-4,
                    "{rows} rows, element {i}: {} vs {want}",
                    single[i]
                );
                assert_eq!(single[i], split[i], "{rows} rows, element {i}");
            }
        }
    }
}
