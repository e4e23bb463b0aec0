//! Turning raw scores into probabilities that mean what they say: softmax (one tag per
//! ticket) or per-tag sigmoid (several), after dividing by a temperature fitted on held-out
//! tickets. `exp` comes from `libm`, not the C library, whose variants differ by CPU: the
//! same logits give the same probabilities everywhere.

use datasets::LabelMode;

/// Probabilities from logits at a temperature.
pub fn probabilities(logits: &[f32], temperature: f32, mode: LabelMode) -> Vec<f32> {
    let t = temperature.max(1e-3);
    match mode {
        LabelMode::Single => {
            let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let exps: Vec<f32> = logits.iter().map(|l| libm::expf((l - max) / t)).collect();
            let sum: f32 = exps.iter().sum();
            exps.into_iter().map(|e| e / sum).collect()
        }
        LabelMode::Multi => logits.iter().map(|l| sigmoid(l / t)).collect(),
    }
}

pub fn sigmoid(x: f32) -> f32 {
    if x >= 0.0 {
        1.0 / (1.0 + libm::expf(-x))
    } else {
        let e = libm::expf(x);
        e / (1.0 + e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_sums_to_one_and_a_higher_temperature_flattens_it() {
        let cold = probabilities(&[2.0, 0.0, -1.0], 1.0, LabelMode::Single);
        let warm = probabilities(&[2.0, 0.0, -1.0], 3.0, LabelMode::Single);
        assert!((cold.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(warm[0] < cold[0]);
    }

    #[test]
    fn sigmoid_is_stable_for_large_inputs() {
        assert_eq!(sigmoid(1000.0), 1.0);
        assert_eq!(sigmoid(-1000.0), 0.0);
        assert!((sigmoid(0.0) - 0.5).abs() < 1e-7);
    }
}
