//! Model files on disk: a saved model loads back identical, and every way a file can be
//! wrong — missing, changed, truncated, inconsistent — is refused with a clear error.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use datasets::{LabelMode, TagId, TagName};
use inference::artifact::{CARD_FILE, FileHashes, WEIGHTS_FILE, sha256_hex};
use inference::card::{CARD_FORMAT, ModelCard, ModelKind, TagRef};
use inference::features::{Family, FeatureConfig};
use inference::model::Scorer;
use inference::ngram::{NgramModel, NgramShape};
use inference::{ModelError, TaggingModel};
use std::collections::HashMap;
use std::path::Path;

/// A tiny hand-made model: "refund" points to Billing, "crash" to Bug.
fn tiny_model(hidden: usize) -> TaggingModel {
    let features = FeatureConfig {
        hash_bits: 20,
        word_ngrams: 1,
        char_min: 0,
        char_max: 0,
    };
    let words = ["refund", "crash"];
    let buckets: Vec<u32> = words
        .iter()
        .map(|w| *features.extract(w).keys().next().unwrap())
        .collect();
    let width = if hidden == 0 { 2 } else { hidden };
    let mut table = vec![0.0; 2 * width];
    let mut projection = Vec::new();
    if hidden == 0 {
        table[0] = 4.0; // refund → Billing
        table[3] = 4.0; // crash → Bug
    } else {
        table[0] = 1.0;
        table[width + 1] = 1.0;
        projection = vec![0.0; hidden * 2];
        projection[0] = 4.0;
        projection[3] = 4.0;
    }
    let model = NgramModel {
        shape: NgramShape {
            features,
            hidden,
            outputs: 2,
        },
        rows: buckets
            .iter()
            .enumerate()
            .map(|(i, b)| (*b, i as u32))
            .collect::<HashMap<_, _>>(),
        buckets,
        families: vec![Family::Word, Family::Word],
        idf: vec![1.0, 1.0],
        table,
        projection,
        bias: vec![0.0, 0.0],
    };
    TaggingModel {
        card: ModelCard {
            format: CARD_FORMAT,
            kind: ModelKind::Ngram,
            label_mode: LabelMode::Single,
            tags: vec![
                TagRef {
                    id: TagId(1),
                    name: TagName::parse("Billing").unwrap(),
                },
                TagRef {
                    id: TagId(2),
                    name: TagName::parse("Bug").unwrap(),
                },
            ],
            temperature: 1.0,
            thresholds: vec![0.8, 0.8],
            params: serde_json::json!({}),
            training_fingerprint: "test".into(),
            ngram: Some(NgramShape {
                features,
                hidden,
                outputs: 2,
            }),
            encoder: None,
        },
        scorer: Scorer::Ngram(model),
    }
}

fn saved(model: &TaggingModel) -> (tempfile::TempDir, std::path::PathBuf, FileHashes) {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("v1");
    let hashes = model.save(&dir).unwrap();
    (root, dir, hashes)
}

#[test]
fn a_saved_model_loads_back_and_scores_the_same() {
    for hidden in [0, 3] {
        let model = tiny_model(hidden);
        let (_root, dir, hashes) = saved(&model);
        let loaded = TaggingModel::load(&dir, &hashes).unwrap();
        assert_eq!(loaded, model);
        let p = loaded.probabilities("I want a refund");
        assert!(p[0] > 0.9, "{p:?}");
        assert!(loaded.probabilities("the app will crash")[1] > 0.9);
    }
}

#[test]
fn a_changed_weights_file_is_refused() {
    let (_root, dir, hashes) = saved(&tiny_model(0));
    let path = dir.join(WEIGHTS_FILE);
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();
    let error = TaggingModel::load(&dir, &hashes).unwrap_err();
    assert!(
        matches!(error, ModelError::HashMismatch { ref file, .. } if file == WEIGHTS_FILE),
        "{error}"
    );
    assert!(error.to_string().contains("changed or damaged"));
}

#[test]
fn a_missing_file_is_named() {
    let (_root, dir, hashes) = saved(&tiny_model(0));
    std::fs::remove_file(dir.join(CARD_FILE)).unwrap();
    let error = TaggingModel::load(&dir, &hashes).unwrap_err();
    assert!(matches!(error, ModelError::Missing { .. }));
    assert!(error.to_string().contains("model.json"));
}

/// Rewrites a file and records its new hash, as if it had been written that way: the hash
/// check passes and the content itself must be judged.
fn replace_and_rehash(dir: &Path, hashes: &mut FileHashes, file: &str, bytes: &[u8]) {
    std::fs::write(dir.join(file), bytes).unwrap();
    hashes.insert(file.to_string(), sha256_hex(bytes));
}

#[test]
fn a_truncated_safetensors_file_is_corrupt() {
    let (_root, dir, mut hashes) = saved(&tiny_model(0));
    let bytes = std::fs::read(dir.join(WEIGHTS_FILE)).unwrap();
    replace_and_rehash(&dir, &mut hashes, WEIGHTS_FILE, &bytes[..bytes.len() / 2]);
    let error = TaggingModel::load(&dir, &hashes).unwrap_err();
    assert!(
        matches!(error, ModelError::Corrupt { ref file, .. } if file == WEIGHTS_FILE),
        "{error}"
    );
}

#[test]
fn a_card_that_disagrees_with_the_weights_is_corrupt() {
    let model = tiny_model(0);
    let (_root, dir, mut hashes) = saved(&model);
    let mut card = model.card.clone();
    card.thresholds.push(0.5);
    replace_and_rehash(
        &dir,
        &mut hashes,
        CARD_FILE,
        &serde_json::to_vec(&card).unwrap(),
    );
    let error = TaggingModel::load(&dir, &hashes).unwrap_err();
    assert!(
        error.to_string().contains("3 thresholds for 2 tags"),
        "{error}"
    );

    let mut card = model.card.clone();
    card.tags.push(TagRef {
        id: TagId(3),
        name: TagName::parse("Extra").unwrap(),
    });
    card.thresholds.push(0.5);
    replace_and_rehash(
        &dir,
        &mut hashes,
        CARD_FILE,
        &serde_json::to_vec(&card).unwrap(),
    );
    let error = TaggingModel::load(&dir, &hashes).unwrap_err();
    assert!(
        error.to_string().contains("2 outputs for 3 tags"),
        "{error}"
    );

    replace_and_rehash(&dir, &mut hashes, CARD_FILE, b"{ not json");
    assert!(matches!(
        TaggingModel::load(&dir, &hashes).unwrap_err(),
        ModelError::Corrupt { .. }
    ));
}

#[test]
fn saving_never_overwrites_an_existing_version() {
    let model = tiny_model(0);
    let (_root, dir, _) = saved(&model);
    assert!(model.save(&dir).is_err());
}
