//! The held-out confusion matrix of a one-tag-per-ticket model, made readable for large
//! taxonomies (77 intents give 5,929 cells, nearly all zero): the most confused pairs with
//! their counts and shares, and an SVG heat-map trimmed to the tags that have errors.

use super::charts::escape;
use std::fmt::Write;

/// Pairs the compare page lists per version.
pub const PAIRS_SHOWN: usize = 15;
/// Tags the heat-map draws at most: the ones with the most errors. At 14 px a cell, 40 tags
/// still fit an 800 px screen beside their names.
pub const HEAT_MAP_TAGS: usize = 40;

/// Held-out tickets of one tag that the model gave another.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfusedPair {
    pub truth: String,
    pub predicted: String,
    pub count: usize,
    /// Share of the true tag's held-out tickets that went to `predicted`.
    pub share_of_truth: f64,
    /// Share of all the held-out errors.
    pub share_of_errors: f64,
}

/// A square matrix `confusion[truth][predicted]` as the trainer stores it; anything else
/// (a multi-label `[tp, fp, fn, tn]` table, a damaged record) is `None`.
pub fn square_matrix(value: &serde_json::Value) -> Option<Vec<Vec<usize>>> {
    let rows: Vec<Vec<usize>> = value
        .as_array()?
        .iter()
        .map(|row| {
            row.as_array()?
                .iter()
                .map(|cell| cell.as_u64().and_then(|c| usize::try_from(c).ok()))
                .collect()
        })
        .collect::<Option<_>>()?;
    (!rows.is_empty() && rows.iter().all(|row| row.len() == rows.len())).then_some(rows)
}

/// The tag of row `index`: the model's own name, or its number when the record lacks one.
fn name_of(names: &[String], index: usize) -> String {
    names
        .get(index)
        .cloned()
        .unwrap_or_else(|| format!("tag {index}"))
}

/// The `limit` largest off-diagonal cells, most tickets first (ties: the larger share of
/// the true tag, then by name, so the order is stable).
pub fn confused_pairs(matrix: &[Vec<usize>], names: &[String], limit: usize) -> Vec<ConfusedPair> {
    let errors: usize = off_diagonal(matrix).map(|(_, _, n)| n).sum();
    let mut pairs: Vec<ConfusedPair> = off_diagonal(matrix)
        .map(|(truth, predicted, count)| ConfusedPair {
            truth: name_of(names, truth),
            predicted: name_of(names, predicted),
            count,
            share_of_truth: count as f64 / matrix[truth].iter().sum::<usize>() as f64,
            share_of_errors: count as f64 / errors as f64,
        })
        .collect();
    pairs.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then(b.share_of_truth.total_cmp(&a.share_of_truth))
            .then_with(|| a.truth.cmp(&b.truth))
            .then_with(|| a.predicted.cmp(&b.predicted))
    });
    pairs.truncate(limit);
    pairs
}

/// Non-zero cells off the diagonal: (truth, predicted, tickets).
fn off_diagonal(matrix: &[Vec<usize>]) -> impl Iterator<Item = (usize, usize, usize)> + '_ {
    matrix.iter().enumerate().flat_map(|(truth, row)| {
        row.iter()
            .enumerate()
            .filter(move |(predicted, n)| *predicted != truth && **n > 0)
            .map(move |(predicted, n)| (truth, predicted, *n))
    })
}

/// The tags a heat-map draws: those with an error as truth or as prediction, most errors
/// first, at most `limit`; and how many tags with errors were left out.
pub fn tags_with_errors(matrix: &[Vec<usize>], limit: usize) -> (Vec<usize>, usize) {
    let mut errors = vec![0usize; matrix.len()];
    for (truth, predicted, n) in off_diagonal(matrix) {
        errors[truth] += n;
        errors[predicted] += n;
    }
    let mut tags: Vec<usize> = (0..matrix.len()).filter(|t| errors[*t] > 0).collect();
    tags.sort_by(|a, b| errors[*b].cmp(&errors[*a]).then(a.cmp(b)));
    let left_out = tags.len().saturating_sub(limit);
    tags.truncate(limit);
    (tags, left_out)
}

/// What the page shows of a heat-map.
#[derive(Debug, Clone, PartialEq)]
pub struct HeatMap {
    pub svg: String,
    pub tags: usize,
    /// Tags with errors not drawn (fewer errors than the ones drawn).
    pub left_out: usize,
}

const CELL: f64 = 14.0;
const NAME_WIDTH: f64 = 180.0;
const HEADER_HEIGHT: f64 = 120.0;
/// Characters of a tag name drawn beside the grid; the cell tooltips carry the whole name.
const NAME_CHARS: usize = 26;

fn short(name: &str) -> String {
    if name.chars().count() <= NAME_CHARS {
        name.to_string()
    } else {
        let mut cut: String = name.chars().take(NAME_CHARS - 1).collect();
        cut.push('…');
        cut
    }
}

/// Rows true tags, columns predicted tags, in the order of `tags_with_errors`: each cell a
/// square shaded by its share of the row (red off the diagonal, green on it) with a tooltip
/// saying what it counts. `None` when the model made no error.
pub fn heat_map(matrix: &[Vec<usize>], names: &[String], limit: usize) -> Option<HeatMap> {
    let (tags, left_out) = tags_with_errors(matrix, limit);
    if tags.is_empty() {
        return None;
    }
    let size = tags.len() as f64 * CELL;
    let width = NAME_WIDTH + size + 8.0;
    let height = HEADER_HEIGHT + size + 8.0;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="heatmap" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" aria-label="Confusion heat-map: rows true tag, columns predicted tag" xmlns="http://www.w3.org/2000/svg"><title>Rows: true tag; columns: predicted tag</title>"#
    );
    for (column, &tag) in tags.iter().enumerate() {
        let x = NAME_WIDTH + column as f64 * CELL + CELL * 0.7;
        let name = name_of(names, tag);
        let _ = write!(
            svg,
            r#"<text x="{x:.1}" y="{:.1}" class="label" transform="rotate(-60 {x:.1} {:.1})"><title>{}</title>{}</text>"#,
            HEADER_HEIGHT - 4.0,
            HEADER_HEIGHT - 4.0,
            escape(&name),
            escape(&short(&name))
        );
    }
    for (row, &truth) in tags.iter().enumerate() {
        let y = HEADER_HEIGHT + row as f64 * CELL;
        let truth_name = name_of(names, truth);
        let row_total: usize = matrix[truth].iter().sum();
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" class="label" text-anchor="end"><title>{}</title>{}</text>"#,
            NAME_WIDTH - 6.0,
            y + CELL * 0.78,
            escape(&truth_name),
            escape(&short(&truth_name))
        );
        for (column, &predicted) in tags.iter().enumerate() {
            let count = matrix[truth][predicted];
            let share = if row_total == 0 {
                0.0
            } else {
                count as f64 / row_total as f64
            };
            let (fill, opacity) = match (count, truth == predicted) {
                (0, _) => ("#f3f4f6", 1.0),
                // Even one ticket must show: never fainter than 0.15.
                (_, true) => ("#16a34a", 0.15 + 0.85 * share),
                (_, false) => ("#dc2626", 0.15 + 0.85 * share),
            };
            let _ = write!(
                svg,
                r##"<rect x="{:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{fill}" fill-opacity="{opacity:.2}" stroke="#fff" stroke-width="1"><title>{} → {}: {count} of {row_total} held-out tickets ({:.1}%)</title></rect>"##,
                NAME_WIDTH + column as f64 * CELL,
                CELL,
                CELL,
                escape(&truth_name),
                escape(&name_of(names, predicted)),
                share * 100.0
            );
        }
    }
    svg.push_str("</svg>");
    Some(HeatMap {
        svg,
        tags: tags.len(),
        left_out,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 77 tags, each with 10 held-out tickets, all right except: 6 of tag 3's went to tag
    /// 40, 4 of tag 76's to tag 0, 1 of tag 12's to tag 13.
    fn intents() -> (Vec<Vec<usize>>, Vec<String>) {
        let mut matrix = vec![vec![0usize; 77]; 77];
        for (i, row) in matrix.iter_mut().enumerate() {
            row[i] = 10;
        }
        for (truth, predicted, n) in [(3, 40, 6), (76, 0, 4), (12, 13, 1)] {
            matrix[truth][truth] -= n;
            matrix[truth][predicted] += n;
        }
        let names = (0..77).map(|i| format!("intent {i:02}")).collect();
        (matrix, names)
    }

    #[test]
    fn the_most_confused_pairs_of_77_tags_come_first_with_their_shares() {
        let (matrix, names) = intents();
        let pairs = confused_pairs(&matrix, &names, 2);
        assert_eq!(pairs.len(), 2);
        assert_eq!(
            (pairs[0].truth.as_str(), pairs[0].predicted.as_str()),
            ("intent 03", "intent 40")
        );
        assert_eq!(pairs[0].count, 6);
        assert!((pairs[0].share_of_truth - 0.6).abs() < 1e-12);
        assert!((pairs[0].share_of_errors - 6.0 / 11.0).abs() < 1e-12);
        assert_eq!(
            (
                pairs[1].truth.as_str(),
                pairs[1].predicted.as_str(),
                pairs[1].count
            ),
            ("intent 76", "intent 00", 4)
        );
        assert_eq!(confused_pairs(&matrix, &names, 100).len(), 3);
    }

    #[test]
    fn a_perfect_model_has_no_pairs_and_no_heat_map() {
        let matrix = vec![vec![5, 0], vec![0, 5]];
        assert!(confused_pairs(&matrix, &[], 10).is_empty());
        assert!(heat_map(&matrix, &[], 10).is_none());
    }

    #[test]
    fn the_heat_map_draws_only_tags_with_errors_most_errors_first() {
        let (matrix, names) = intents();
        let (tags, left_out) = tags_with_errors(&matrix, HEAT_MAP_TAGS);
        // 3 and 40 share 6 errors, 76 and 0 four, 12 and 13 one.
        assert_eq!(tags, [3, 40, 0, 76, 12, 13]);
        assert_eq!(left_out, 0);
        let map = heat_map(&matrix, &names, HEAT_MAP_TAGS).unwrap();
        assert_eq!(map.tags, 6);
        assert_eq!(map.svg.matches("<rect").count(), 36);
        assert!(
            map.svg
                .contains("intent 03 → intent 40: 6 of 10 held-out tickets (60.0%)"),
            "{}",
            map.svg
        );
        assert!(!map.svg.contains("intent 50"));
        let (tags, left_out) = tags_with_errors(&matrix, 4);
        assert_eq!((tags.len(), left_out), (4, 2));
    }

    #[test]
    fn long_and_hostile_tag_names_are_cut_and_escaped() {
        let matrix = vec![vec![1, 1], vec![0, 2]];
        let names = vec![
            "<script>alert(1)</script> and a very long tail".to_string(),
            "b".to_string(),
        ];
        let map = heat_map(&matrix, &names, 10).unwrap();
        assert!(!map.svg.contains("<script>"));
        assert!(
            map.svg
                .contains("&lt;script&gt;alert(1)&lt;/script&gt; and a very long tail")
        );
        assert!(map.svg.contains('…'));
    }

    #[test]
    fn only_square_matrices_are_read_as_confusion() {
        assert!(square_matrix(&serde_json::json!([[1, 0], [0, 1]])).is_some());
        assert!(square_matrix(&serde_json::json!([[1, 0, 0, 1], [0, 1, 1, 0]])).is_none());
        assert!(square_matrix(&serde_json::json!([[1, -1], [0, 1]])).is_none());
        assert!(square_matrix(&serde_json::json!(null)).is_none());
    }
}
