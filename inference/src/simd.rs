//! Which SIMD instructions our own kernels use (the packed encoder pass: panel matrix
//! multiply, GELU, LayerNorm, attention). The widest the CPU has is chosen at run time;
//! `TAGGER_SIMD` caps it, so one machine can run the scalar and AVX2 paths that other
//! CPUs would take and CI can check that every path gives the same decisions.
//!
//! The cap covers the kernels written here. Candle's own matrix multiply (the `gemm`
//! crate, used when training and in the padded forward pass) picks its kernels by itself
//! and has no such switch; see docs/operations.md.

use std::fmt;
use std::sync::OnceLock;

/// The environment variable that caps the instruction set: `scalar`, `avx2`, `avx512`
/// or `auto` (the default: the widest the CPU has).
pub const SIMD_VARIABLE: &str = "TAGGER_SIMD";

/// An instruction-set level of our kernels, narrowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SimdLevel {
    /// Plain Rust, one lane at a time: every CPU.
    Scalar,
    /// AVX2 and FMA, 8 lanes (x86-64-v3).
    Avx2,
    /// AVX-512, 16 lanes (x86-64-v4).
    Avx512,
}

impl SimdLevel {
    /// Every level, narrowest first.
    pub const ALL: [SimdLevel; 3] = [SimdLevel::Scalar, SimdLevel::Avx2, SimdLevel::Avx512];

    /// The name `TAGGER_SIMD` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            SimdLevel::Scalar => "scalar",
            SimdLevel::Avx2 => "avx2",
            SimdLevel::Avx512 => "avx512",
        }
    }

    /// Reads a `TAGGER_SIMD` value: a level, or `auto` (no cap, `None`).
    pub fn parse_cap(value: &str) -> Result<Option<SimdLevel>, UnknownSimdLevel> {
        let value = value.trim();
        if value.is_empty() || value.eq_ignore_ascii_case("auto") {
            return Ok(None);
        }
        Self::ALL
            .into_iter()
            .find(|level| level.as_str().eq_ignore_ascii_case(value))
            .map(Some)
            .ok_or_else(|| UnknownSimdLevel(value.to_string()))
    }
}

impl fmt::Display for SimdLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `TAGGER_SIMD` value that names no level.
#[derive(Debug, thiserror::Error)]
#[error("{SIMD_VARIABLE}={0:?} is not one of auto, scalar, avx2, avx512")]
pub struct UnknownSimdLevel(pub String);

/// What the CPU offers, and what is used under the cap.
#[derive(Debug, Clone, Copy)]
pub struct SimdChoice {
    /// The widest level this CPU supports.
    pub available: SimdLevel,
    /// The cap from `TAGGER_SIMD`, if any.
    pub cap: Option<SimdLevel>,
    /// The level our kernels run: the narrower of the two.
    pub active: SimdLevel,
    arch: pulp::Arch,
}

/// The level in use, read once per process: kernels must not change path mid-run.
pub fn choice() -> SimdChoice {
    static CHOICE: OnceLock<SimdChoice> = OnceLock::new();
    *CHOICE.get_or_init(|| {
        let cap = match std::env::var(SIMD_VARIABLE) {
            Ok(value) => SimdLevel::parse_cap(&value).unwrap_or_else(|error| {
                // A start-up setting: a typo must not silently run another path than the
                // one asked for, least of all in CI where it would test nothing.
                panic!("{error}")
            }),
            Err(_) => None,
        };
        let choice = choose(cap);
        tracing::debug!(
            available = %choice.available,
            active = %choice.active,
            "SIMD level of the encoder kernels"
        );
        choice
    })
}

/// The dispatcher our kernels call.
pub(crate) fn arch() -> pulp::Arch {
    choice().arch
}

#[cfg(target_arch = "x86_64")]
fn choose(cap: Option<SimdLevel>) -> SimdChoice {
    use pulp::x86::{V3, V4};
    let v4 = V4::try_new();
    let v3 = V3::try_new();
    let available = if v4.is_some() {
        SimdLevel::Avx512
    } else if v3.is_some() {
        SimdLevel::Avx2
    } else {
        SimdLevel::Scalar
    };
    let active = cap.map_or(available, |cap| cap.min(available));
    let arch = match (active, v4, v3) {
        (SimdLevel::Avx512, Some(simd), _) => pulp::Arch::V4(simd),
        (SimdLevel::Avx2 | SimdLevel::Avx512, _, Some(simd)) => pulp::Arch::V3(simd),
        _ => pulp::Arch::Scalar,
    };
    SimdChoice {
        available,
        cap,
        active,
        arch,
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn choose(cap: Option<SimdLevel>) -> SimdChoice {
    // Elsewhere pulp picks its own paths (NEON on aarch64); the x86 levels do not apply.
    SimdChoice {
        available: SimdLevel::Scalar,
        cap,
        active: SimdLevel::Scalar,
        arch: pulp::Arch::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_are_parsed_case_blind_and_typos_refused() {
        assert_eq!(SimdLevel::parse_cap("auto").unwrap(), None);
        assert_eq!(SimdLevel::parse_cap("").unwrap(), None);
        assert_eq!(
            SimdLevel::parse_cap(" AVX2 ").unwrap(),
            Some(SimdLevel::Avx2)
        );
        assert_eq!(
            SimdLevel::parse_cap("scalar").unwrap(),
            Some(SimdLevel::Scalar)
        );
        assert!(SimdLevel::parse_cap("avx").is_err());
    }

    #[test]
    fn a_cap_never_widens_past_the_cpu() {
        let widest = choose(None);
        assert_eq!(widest.active, widest.available);
        for level in SimdLevel::ALL {
            let capped = choose(Some(level));
            assert_eq!(capped.active, level.min(widest.available));
        }
        assert_eq!(choose(Some(SimdLevel::Scalar)).active, SimdLevel::Scalar);
    }

    /// CI runs the numeric tests under each `TAGGER_SIMD` value: this proves the value
    /// reached the kernels, so a run meant for the scalar path cannot quietly run AVX2.
    #[test]
    fn the_process_runs_the_level_it_was_asked_for() {
        let asked = std::env::var(SIMD_VARIABLE)
            .ok()
            .and_then(|value| SimdLevel::parse_cap(&value).ok().flatten());
        let choice = choice();
        match asked {
            Some(level) => assert_eq!(choice.active, level.min(choice.available)),
            None => assert_eq!(choice.active, choice.available),
        }
    }
}
