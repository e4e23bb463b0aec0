//! Batches that cover the ticket space instead of twenty copies of the same ticket:
//! uncertainty-weighted k-means++ seeding on sentence embeddings. Each pick is drawn with
//! probability proportional to weight × (squared distance to the nearest ticket already
//! picked), so a near-duplicate of a picked ticket has almost no chance, and an uncertain
//! ticket far from everything picked is likely. With equal weights it is plain k-means++
//! seeding, which is how a project with no labels at all starts (cold start).

use crate::random::Random;

/// Unit-length copies of the rows (cosine geometry; zero rows stay zero).
pub fn normalised(rows: &[Vec<f32>]) -> Vec<Vec<f32>> {
    rows.iter()
        .map(|row| {
            let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt();
            if norm > 0.0 {
                row.iter().map(|x| x / norm).collect()
            } else {
                row.clone()
            }
        })
        .collect()
}

fn squared_distance(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// Picks `k` row indices of `points` (already normalised) by weighted k-means++ seeding.
/// The first pick is the heaviest row (ties: the first); the rest are drawn with the seeded
/// generator. Rows with weight 0 are never picked; fewer than `k` rows means all of them.
pub fn weighted_kmeans_pp(points: &[Vec<f32>], weights: &[f32], k: usize, seed: u64) -> Vec<usize> {
    let n = points.len().min(weights.len());
    let eligible = (0..n).filter(|&i| weights[i] > 0.0).count();
    let k = k.min(eligible);
    if k == 0 {
        return Vec::new();
    }
    let mut random = Random(seed);
    let first = (0..n)
        .filter(|&i| weights[i] > 0.0)
        .max_by(|&a, &b| weights[a].total_cmp(&weights[b]).then(b.cmp(&a)))
        .unwrap_or(0);
    let mut picked = vec![first];
    let mut nearest: Vec<f32> = (0..n)
        .map(|i| squared_distance(&points[i], &points[first]))
        .collect();
    nearest[first] = 0.0;
    while picked.len() < k {
        let mass: Vec<f64> = (0..n)
            .map(|i| f64::from(weights[i].max(0.0)) * f64::from(nearest[i].max(0.0)))
            .collect();
        let total: f64 = mass.iter().sum();
        let next = if total > 0.0 {
            let mut target = f64::from(random.uniform()) * total;
            let mut chosen = None;
            for (i, m) in mass.iter().enumerate() {
                if *m <= 0.0 {
                    continue;
                }
                chosen = Some(i);
                if target < *m {
                    break;
                }
                target -= m;
            }
            chosen
        } else {
            // Every remaining row duplicates a picked one: take the heaviest not yet picked.
            (0..n)
                .filter(|i| weights[*i] > 0.0 && !picked.contains(i))
                .max_by(|&a, &b| weights[a].total_cmp(&weights[b]))
        };
        let Some(next) = next else { break };
        picked.push(next);
        for (i, d) in nearest.iter_mut().enumerate() {
            *d = d.min(squared_distance(&points[i], &points[next]));
        }
        nearest[next] = 0.0;
    }
    picked
}

/// Hashed word and word-pair features as dense unit vectors, for diversity when a project
/// has no sentence embeddings (an `ngram` model and no encoder in the cache).
pub fn hashed_ngram_vectors(texts: &[&str], width: usize) -> Vec<Vec<f32>> {
    let width = width.max(1);
    let rows: Vec<Vec<f32>> = texts
        .iter()
        .map(|text| {
            let mut row = vec![0f32; width];
            let words = inference::features::FeatureConfig::words(text);
            let mut bump = |key: &str| {
                let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                    (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
                });
                row[(hash % width as u64) as usize] += 1.0;
            };
            for word in &words {
                bump(word);
            }
            for pair in words.windows(2) {
                bump(&format!("{} {}", pair[0], pair[1]));
            }
            row
        })
        .collect();
    normalised(&rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three tight clusters of near-duplicates plus noise-free centres.
    fn clusters() -> Vec<Vec<f32>> {
        let mut rows = Vec::new();
        for centre in [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]] {
            for j in 0..10 {
                let jitter = j as f32 * 1e-3;
                rows.push(vec![centre[0] + jitter, centre[1] + jitter, centre[2]]);
            }
        }
        normalised(&rows)
    }

    #[test]
    fn a_diverse_batch_takes_one_ticket_per_cluster_not_near_duplicates() {
        let points = clusters();
        // The first cluster is the most uncertain: plain top-k would take three of it.
        let weights: Vec<f32> = (0..30).map(|i| if i < 10 { 0.9 } else { 0.5 }).collect();
        for seed in 0..20 {
            let picked = weighted_kmeans_pp(&points, &weights, 3, seed);
            let mut clusters: Vec<usize> = picked.iter().map(|i| i / 10).collect();
            clusters.sort_unstable();
            assert_eq!(clusters, [0, 1, 2], "seed {seed}: {picked:?}");
        }
    }

    #[test]
    fn the_first_pick_is_the_most_uncertain_and_zero_weight_is_never_picked() {
        let points = clusters();
        let mut weights = vec![0.1; 30];
        weights[17] = 0.99;
        weights[25] = 0.0;
        let picked = weighted_kmeans_pp(&points, &weights, 29, 7);
        assert_eq!(picked[0], 17);
        assert_eq!(picked.len(), 29);
        assert!(!picked.contains(&25));
        let unique: std::collections::HashSet<_> = picked.iter().collect();
        assert_eq!(unique.len(), picked.len());
    }

    #[test]
    fn hashed_vectors_of_the_same_words_match_and_differ_from_others() {
        let rows = hashed_ngram_vectors(
            &[
                "card was charged twice",
                "Card was charged twice!",
                "reset my password",
            ],
            256,
        );
        assert!(squared_distance(&rows[0], &rows[1]) < 1e-6);
        assert!(squared_distance(&rows[0], &rows[2]) > 1.0);
    }
}
