//! The deterministic, stratified train/test split. Every tag's tickets are dealt into the test
//! split one in `1/test_fraction`, starting at a seeded offset, so each tag is represented in
//! the same proportion and the same file always splits the same way, without holding the file
//! in memory.

use crate::ticket::Split;
use std::collections::HashMap;

/// The share of tickets held out for evaluation by default.
pub const DEFAULT_TEST_FRACTION: f64 = 0.2;
/// The seed used unless the person importing chooses another.
pub const DEFAULT_SPLIT_SEED: u64 = 42;

/// FNV-1a: a stable hash, unlike std's, so splits do not change between Rust releases.
pub fn stable_hash(seed: u64, text: &str) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325_u64 ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for byte in text.as_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// Split for a ticket that has no label to stratify by: decided by its key alone.
pub fn split_by_key(seed: u64, test_fraction: f64, key: &str) -> Split {
    let unit = (stable_hash(seed, key) % 1_000_000) as f64 / 1_000_000.0;
    if unit < test_fraction {
        Split::Test
    } else {
        Split::Train
    }
}

/// Assigns splits to tickets in the order they arrive, stratified by their first tag.
#[derive(Debug, Clone)]
pub struct StratifiedSplitter {
    seed: u64,
    test_fraction: f64,
    /// Per tag: how many tickets were dealt, and the fractional credit towards the next test one.
    dealt: HashMap<String, (u64, f64)>,
}

impl StratifiedSplitter {
    pub fn new(seed: u64, test_fraction: f64) -> Self {
        Self {
            seed,
            test_fraction: test_fraction.clamp(0.0, 1.0),
            dealt: HashMap::new(),
        }
    }

    /// The split of the next ticket with this stratum (its first tag), or of an unlabelled
    /// ticket with this key.
    pub fn assign(&mut self, stratum: Option<&str>, key: &str) -> Split {
        let Some(stratum) = stratum else {
            return split_by_key(self.seed, self.test_fraction, key);
        };
        let seed = self.seed;
        let fraction = self.test_fraction;
        let (count, credit) = self.dealt.entry(stratum.to_lowercase()).or_insert_with(|| {
            // A seeded starting credit, so small strata do not all put their first ticket in train.
            let start = (stable_hash(seed, stratum) % 1000) as f64 / 1000.0;
            (0, start * fraction)
        });
        *count += 1;
        *credit += fraction;
        if *credit >= 1.0 {
            *credit -= 1.0;
            Split::Test
        } else {
            Split::Train
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tag_gets_its_share_of_test_tickets() {
        let mut splitter = StratifiedSplitter::new(7, 0.2);
        let mut test = HashMap::new();
        for i in 0..1000 {
            let tag = if i % 10 == 0 { "rare" } else { "common" };
            if splitter.assign(Some(tag), &i.to_string()) == Split::Test {
                *test.entry(tag).or_insert(0) += 1;
            }
        }
        assert_eq!(test["rare"], 20);
        assert_eq!(test["common"], 180);
    }

    #[test]
    fn the_same_input_splits_the_same_way() {
        let run = || {
            let mut splitter = StratifiedSplitter::new(42, 0.2);
            (0..200)
                .map(|i| splitter.assign(Some(["a", "b", "c"][i % 3]), &i.to_string()))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(), run());
    }

    #[test]
    fn unlabelled_tickets_split_by_key_near_the_fraction() {
        let test = (0..10_000)
            .filter(|i| split_by_key(1, 0.2, &format!("ticket-{i}")) == Split::Test)
            .count();
        assert!((1800..2200).contains(&test), "{test}");
    }
}
