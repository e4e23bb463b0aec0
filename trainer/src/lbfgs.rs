//! A limited-memory BFGS minimiser (Nocedal & Wright, *Numerical Optimization*, algorithm
//! 7.4) with a backtracking Armijo line search, over `f32` parameters: what the `ngram` kind
//! uses to minimise its L2-regularised loss to convergence, as scikit-learn's
//! `LogisticRegression` does with its default solver.
//!
//! Why not a library: the objective is a sparse sweep over the project's tickets that we
//! write ourselves, the parameters are `f32` tables of up to a few hundred million entries
//! (memory is `2 × memory + 5` copies of them, so it must be ours to bound), and the
//! iterations must report progress and stop when a run is cancelled.

use std::collections::VecDeque;
use std::ops::ControlFlow;

/// When to stop.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stopping {
    /// At most this many iterations (each is one or more evaluations of the objective).
    pub max_iterations: usize,
    /// Stop once no parameter's partial derivative exceeds this in size (scikit-learn's
    /// `tol` for its L-BFGS solver)…
    pub gradient: f64,
    /// …or once an iteration lowers the objective by less than this share of its value
    /// (about what `f32` parameters can still resolve).
    pub relative_decrease: f64,
}

/// How a minimisation ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Minimised {
    /// The objective at the parameters left in `x`.
    pub value: f64,
    pub iterations: usize,
    /// The caller's `on_iteration` asked to stop.
    pub stopped: bool,
}

fn dot(a: &[f32], b: &[f32]) -> f64 {
    // Four partial sums in f64: a fixed order (the same bits on every run) and no loss of
    // precision over millions of terms.
    let mut sums = [0.0f64; 4];
    let chunks = a.chunks_exact(4).zip(b.chunks_exact(4));
    for (x, y) in chunks {
        for k in 0..4 {
            sums[k] += f64::from(x[k]) * f64::from(y[k]);
        }
    }
    let tail = a.len() - a.len() % 4;
    let mut sum = sums.iter().sum::<f64>();
    for (x, y) in a[tail..].iter().zip(&b[tail..]) {
        sum += f64::from(*x) * f64::from(*y);
    }
    sum
}

/// `y += a · x`.
fn axpy(a: f64, x: &[f32], y: &mut [f32]) {
    let a = a as f32;
    for (y, x) in y.iter_mut().zip(x) {
        *y += a * x;
    }
}

/// Minimises `objective` from the parameters in `x`, leaving the best found there.
/// `objective(x, gradient)` returns the value at `x` and writes its gradient; `memory` is
/// the number of correction pairs kept. `on_iteration(iteration, value)` hears about each
/// iteration and may stop the search.
pub fn minimise(
    x: &mut [f32],
    memory: usize,
    stopping: Stopping,
    mut objective: impl FnMut(&[f32], &mut [f32]) -> f64,
    mut on_iteration: impl FnMut(usize, f64) -> ControlFlow<()>,
) -> Minimised {
    let n = x.len();
    let memory = memory.max(1);
    let mut gradient = vec![0.0f32; n];
    let mut value = objective(x, &mut gradient);
    let mut direction = vec![0.0f32; n];
    let mut trial = vec![0.0f32; n];
    let mut trial_gradient = vec![0.0f32; n];
    // Correction pairs s = x_{k+1} - x_k, y = g_{k+1} - g_k and 1 / (yᵀs), oldest first.
    let mut pairs: VecDeque<(Vec<f32>, Vec<f32>, f64)> = VecDeque::with_capacity(memory);
    let mut iterations = 0;
    while iterations < stopping.max_iterations {
        // The two-loop recursion: `direction` = H·g, H the inverse Hessian's approximation.
        direction.copy_from_slice(&gradient);
        let mut alphas = vec![0.0f64; pairs.len()];
        for (i, (s, y, rho)) in pairs.iter().enumerate().rev() {
            alphas[i] = rho * dot(s, &direction);
            axpy(-alphas[i], y, &mut direction);
        }
        let scale = match pairs.back() {
            Some((s, y, _)) => dot(s, y) / dot(y, y).max(f64::MIN_POSITIVE),
            // No curvature known yet: a first step of unit length.
            None => 1.0 / dot(&gradient, &gradient).sqrt().max(f64::MIN_POSITIVE),
        };
        for d in direction.iter_mut() {
            *d *= scale as f32;
        }
        for (i, (s, y, rho)) in pairs.iter().enumerate() {
            let beta = rho * dot(y, &direction);
            axpy(alphas[i] - beta, s, &mut direction);
        }
        // The step is x - t·direction; the slope along it must be negative.
        let mut slope = -dot(&gradient, &direction);
        if slope >= 0.0 || slope.is_nan() {
            // A stale approximation: forget it and go down the gradient.
            pairs.clear();
            let norm = dot(&gradient, &gradient).sqrt();
            if norm == 0.0 {
                break;
            }
            for (d, g) in direction.iter_mut().zip(&gradient) {
                *d = (f64::from(*g) / norm) as f32;
            }
            slope = -norm;
        }
        let mut step = 1.0f64;
        let found = loop {
            for ((t, x), d) in trial.iter_mut().zip(x.iter()).zip(&direction) {
                *t = x - step as f32 * d;
            }
            let trial_value = objective(&trial, &mut trial_gradient);
            if trial_value.is_finite() && trial_value <= value + 1e-4 * step * slope {
                break Some(trial_value);
            }
            step *= 0.5;
            if step < 1e-12 {
                break None;
            }
        };
        let Some(trial_value) = found else {
            // No decrease along the direction at any step: as low as f32 can tell.
            break;
        };
        iterations += 1;
        // The correction pair, reusing the oldest pair's buffers once memory is full.
        let (mut s, mut y) = if pairs.len() == memory {
            let (s, y, _) = pairs.pop_front().expect("memory is at least one");
            (s, y)
        } else {
            (vec![0.0f32; n], vec![0.0f32; n])
        };
        for i in 0..n {
            s[i] = trial[i] - x[i];
            y[i] = trial_gradient[i] - gradient[i];
        }
        let curvature = dot(&s, &y);
        if curvature > 1e-10 * dot(&y, &y).sqrt() * dot(&s, &s).sqrt() {
            pairs.push_back((s, y, 1.0 / curvature));
        }
        let decrease = value - trial_value;
        x.copy_from_slice(&trial);
        std::mem::swap(&mut gradient, &mut trial_gradient);
        value = trial_value;
        if on_iteration(iterations, value).is_break() {
            return Minimised {
                value,
                iterations,
                stopped: true,
            };
        }
        let largest = gradient.iter().fold(0.0f32, |m, g| m.max(g.abs()));
        if f64::from(largest) <= stopping.gradient
            || decrease <= stopping.relative_decrease * value.abs().max(1e-12)
        {
            break;
        }
    }
    Minimised {
        value,
        iterations,
        stopped: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIGHT: Stopping = Stopping {
        max_iterations: 500,
        gradient: 0.0,
        relative_decrease: 1e-12,
    };

    #[test]
    fn it_finds_the_minimum_of_an_ill_conditioned_quadratic() {
        // f(x) = Σ c_i (x_i - i)², curvatures spread over four orders of magnitude.
        let curvature: Vec<f64> = (0..20).map(|i| 10f64.powf(i as f64 / 5.0)).collect();
        let mut x = vec![0.0f32; 20];
        let result = minimise(
            &mut x,
            7,
            Stopping {
                gradient: 1e-3,
                ..TIGHT
            },
            |x, g| {
                let mut value = 0.0;
                for i in 0..x.len() {
                    let d = f64::from(x[i]) - i as f64;
                    value += curvature[i] * d * d;
                    g[i] = (2.0 * curvature[i] * d) as f32;
                }
                value
            },
            |_, _| ControlFlow::Continue(()),
        );
        for (i, v) in x.iter().enumerate() {
            assert!(
                (f64::from(*v) - i as f64).abs() < 1e-2,
                "x[{i}] = {v}: {result:?}"
            );
        }
    }

    #[test]
    fn it_minimises_the_rosenbrock_function() {
        let mut x = vec![-1.2f32, 1.0];
        minimise(
            &mut x,
            5,
            TIGHT,
            |x, g| {
                let (a, b) = (f64::from(x[0]), f64::from(x[1]));
                g[0] = (-2.0 * (1.0 - a) - 400.0 * a * (b - a * a)) as f32;
                g[1] = (200.0 * (b - a * a)) as f32;
                (1.0 - a).powi(2) + 100.0 * (b - a * a).powi(2)
            },
            |_, _| ControlFlow::Continue(()),
        );
        assert!(
            (x[0] - 1.0).abs() < 1e-2 && (x[1] - 1.0).abs() < 2e-2,
            "{x:?}"
        );
    }

    #[test]
    fn a_stop_request_ends_the_search_after_that_iteration() {
        let mut x = vec![5.0f32; 3];
        let mut heard = 0;
        let result = minimise(
            &mut x,
            3,
            TIGHT,
            |x, g| {
                let mut value = 0.0;
                for i in 0..x.len() {
                    value += f64::from(x[i]).powi(4);
                    g[i] = 4.0 * x[i].powi(3);
                }
                value
            },
            |iteration, _| {
                heard = iteration;
                if iteration == 2 {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            },
        );
        assert!(result.stopped);
        assert_eq!((result.iterations, heard), (2, 2));
    }
}
