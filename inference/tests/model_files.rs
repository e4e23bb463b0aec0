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
            groups: Vec::new(),
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
            out_of_distribution: None,
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

/// Property tests: whatever bytes a model directory holds (a disk fault, a hand-edited card,
/// a file from another tool), loading refuses them with an error or gives a model that
/// scores any text into probabilities — it never panics, and never serves NaN.
mod properties {
    use super::*;
    use proptest::prelude::*;
    use safetensors::tensor::{Dtype, TensorView};

    fn cases() -> ProptestConfig {
        ProptestConfig {
            cases: 64,
            failure_persistence: None,
            ..ProptestConfig::default()
        }
    }

    /// The property itself: an error that says something, or a model whose every score is
    /// a probability.
    fn refused_or_working(dir: &Path, hashes: &FileHashes) -> Result<(), TestCaseError> {
        match TaggingModel::load(dir, hashes) {
            Err(error) => prop_assert!(!error.to_string().is_empty()),
            Ok(model) => {
                for text in [
                    "I want a refund",
                    "the app will crash",
                    "",
                    "ünïcödé 🙂 ????",
                ] {
                    let p = model.probabilities(text);
                    prop_assert_eq!(p.len(), model.card.tags.len());
                    prop_assert!(
                        p.iter().all(|p| p.is_finite() && (0.0..=1.0).contains(p)),
                        "{text:?} scored {p:?}"
                    );
                }
            }
        }
        Ok(())
    }

    fn card_json(model: &TaggingModel) -> serde_json::Value {
        serde_json::to_value(&model.card).unwrap()
    }

    /// Large values as well as plausible ones: a card is outside input too.
    fn size() -> impl Strategy<Value = u64> {
        prop_oneof![0u64..8, any::<u64>()]
    }

    proptest! {
        #![proptest_config(cases())]

        #[test]
        fn changed_bytes_are_refused_or_load_a_working_model(
            hidden in prop::sample::select(vec![0usize, 3]),
            card in any::<bool>(),
            edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
            cut in prop::option::of(any::<prop::sample::Index>()),
        ) {
            let (_root, dir, mut hashes) = saved(&tiny_model(hidden));
            let file = if card { CARD_FILE } else { WEIGHTS_FILE };
            let mut bytes = std::fs::read(dir.join(file)).unwrap();
            for (at, byte) in edits {
                let i = at.index(bytes.len());
                bytes[i] = byte;
            }
            if let Some(cut) = cut {
                bytes.truncate(cut.index(bytes.len()));
            }
            replace_and_rehash(&dir, &mut hashes, file, &bytes);
            refused_or_working(&dir, &hashes)?;
        }

        #[test]
        fn any_card_values_are_refused_or_load_a_working_model(
            hidden in prop::sample::select(vec![0usize, 3]),
            features in (any::<u8>(), any::<u8>(), any::<u8>(), any::<u8>()),
            card_hidden in size(),
            outputs in size(),
            thresholds in prop::collection::vec(-2.0f32..3.0, 0..4),
            temperature in prop_oneof![Just(1.0f32), -2.0f32..4.0, Just(0.0), Just(1e-30), Just(f32::MAX)],
            format in prop_oneof![Just(u64::from(inference::card::CARD_FORMAT)), any::<u64>()],
        ) {
            let model = tiny_model(hidden);
            let (_root, dir, mut hashes) = saved(&model);
            let mut card = card_json(&model);
            let (hash_bits, word_ngrams, char_min, char_max) = features;
            card["ngram"]["features"] = serde_json::json!({
                "hash_bits": hash_bits, "word_ngrams": word_ngrams,
                "char_min": char_min, "char_max": char_max,
            });
            card["ngram"]["hidden"] = card_hidden.into();
            card["ngram"]["outputs"] = outputs.into();
            card["thresholds"] = serde_json::json!(thresholds);
            card["temperature"] = serde_json::json!(temperature);
            card["format"] = format.into();
            replace_and_rehash(&dir, &mut hashes, CARD_FILE, &serde_json::to_vec(&card).unwrap());
            refused_or_working(&dir, &hashes)?;
        }

        #[test]
        fn any_tensors_in_a_well_formed_file_are_refused_or_load_a_working_model(
            tensors in prop::collection::vec(
                (
                    prop::sample::select(vec!["buckets", "families", "idf", "table", "bias", "projection", "other"]),
                    prop::sample::select(vec![Dtype::F32, Dtype::U32, Dtype::I64, Dtype::U8]),
                    prop::collection::vec(0usize..5, 0..3),
                    any::<u32>(),
                ),
                0..8,
            ),
        ) {
            let model = tiny_model(3);
            let (_root, dir, mut hashes) = saved(&model);
            // One tensor per name, as a file holds them.
            let mut names = std::collections::HashSet::new();
            let tensors: Vec<_> = tensors.into_iter().filter(|t| names.insert(t.0)).collect();
            let mut data = Vec::new();
            for (_, dtype, shape, fill) in &tensors {
                let count: usize = shape.iter().product();
                let bytes: Vec<u8> = (0..count * dtype.bitsize() / 8)
                    .map(|i| fill.to_le_bytes()[i % 4])
                    .collect();
                data.push((*dtype, shape.clone(), bytes));
            }
            let views: Vec<(String, TensorView<'_>)> = tensors
                .iter()
                .zip(&data)
                .map(|((name, ..), (dtype, shape, bytes))| {
                    (name.to_string(), TensorView::new(*dtype, shape.clone(), bytes).unwrap())
                })
                .collect();
            let bytes = safetensors::serialize(views, None).unwrap();
            replace_and_rehash(&dir, &mut hashes, WEIGHTS_FILE, &bytes);
            refused_or_working(&dir, &hashes)?;
        }
    }
}

/// Property tests of the encoder's outside inputs: any ticket text (every script, control
/// characters, emoji, very long) tokenizes within the budget and embeds to a finite unit
/// vector; any `config.json` values or damaged `tokenizer.json` are refused with a reason or
/// give an encoder that works — never a panic, never an index past the embedding table.
mod encoder_properties {
    use inference::encoder::hub::HubCache;
    use inference::encoder::testing::{TINY_REPO, TinyBert};
    use inference::encoder::{Encoder, EncoderFiles, EncoderOptions};
    use proptest::prelude::*;
    use std::sync::OnceLock;

    fn cases(cases: u32) -> ProptestConfig {
        ProptestConfig {
            cases,
            failure_persistence: None,
            ..ProptestConfig::default()
        }
    }

    fn options() -> EncoderOptions {
        EncoderOptions {
            threads: 1,
            ..EncoderOptions::default()
        }
    }

    /// The tiny encoder's files, read once for every case.
    fn files() -> &'static EncoderFiles {
        static FILES: OnceLock<(tempfile::TempDir, EncoderFiles)> = OnceLock::new();
        &FILES
            .get_or_init(|| {
                let root = tempfile::tempdir().unwrap();
                TinyBert::default().write(root.path(), TINY_REPO).unwrap();
                let snapshot = HubCache::at(root.path())
                    .encoder_snapshot(TINY_REPO, None)
                    .unwrap();
                let files = EncoderFiles::read(&snapshot, None).unwrap();
                (root, files)
            })
            .1
    }

    fn encoder() -> &'static Encoder {
        static ENCODER: OnceLock<Encoder> = OnceLock::new();
        ENCODER.get_or_init(|| Encoder::from_files(files(), &options()).unwrap())
    }

    /// An encoder built from these files either is refused, or embeds text into finite
    /// vectors of its width.
    fn refused_or_working(files: &EncoderFiles) -> Result<(), TestCaseError> {
        match Encoder::from_files(files, &options()) {
            Err(error) => prop_assert!(!error.to_string().is_empty()),
            Ok(encoder) => match encoder.embed(&["refund for a crash", "", "ünïcödé 🙂 [MASK]"])
            {
                Err(error) => prop_assert!(!error.to_string().is_empty()),
                Ok(vectors) => {
                    for vector in vectors {
                        prop_assert_eq!(vector.len(), encoder.dim());
                        prop_assert!(vector.iter().all(|v| v.is_finite()));
                    }
                }
            },
        }
        Ok(())
    }

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            "\\PC{0,400}",
            // Words, separators and markup that tickets are made of, many times over.
            prop::collection::vec(
                prop::sample::select(vec![
                    "refund", "crash", "[CLS]", "[SEP]", "[PAD]", "##ing", "\u{0}", "\u{200b}",
                    "\r\n", "\t", "🙂", "ß", "İ", "ﬁ", "漢字", "عربى", "<b>", "&amp;", "    ",
                ]),
                0..600,
            )
            .prop_map(|parts| parts.concat()),
        ]
    }

    proptest! {
        #![proptest_config(cases(96))]

        #[test]
        fn any_text_tokenizes_within_budget_and_embeds_to_a_unit_vector(text in text()) {
            let encoder = encoder();
            let tokens = encoder.tokenize(&text).unwrap();
            prop_assert!(tokens.len() >= 2, "[CLS] and [SEP] at least");
            prop_assert!(tokens.len() <= encoder.spec().max_tokens);
            prop_assert_eq!(tokens.ids.len(), tokens.type_ids.len());
            let vector = encoder.embed(&[text.as_str()]).unwrap().remove(0);
            let norm: f32 = vector.iter().map(|v| v * v).sum::<f32>().sqrt();
            prop_assert!((norm - 1.0).abs() < 1e-3, "norm {norm}");
        }
    }

    proptest! {
        #![proptest_config(cases(48))]

        #[test]
        fn any_config_values_are_refused_or_give_a_working_encoder(
            field in prop::sample::select(vec![
                "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                "intermediate_size", "max_position_embeddings", "type_vocab_size",
                "layer_norm_eps", "hidden_act", "position_embedding_type", "pad_token_id",
            ]),
            value in prop_oneof![
                (0u64..130).prop_map(serde_json::Value::from),
                any::<u64>().prop_map(serde_json::Value::from),
                any::<i64>().prop_map(serde_json::Value::from),
                Just(serde_json::Value::Null),
                Just(serde_json::json!("gelu_new")),
                Just(serde_json::json!(-1.5)),
            ],
        ) {
            let mut config: serde_json::Value = serde_json::from_slice(&files().config).unwrap();
            config[field] = value;
            let mut files = files().clone();
            files.config = serde_json::to_vec(&config).unwrap();
            refused_or_working(&files)?;
        }

        #[test]
        fn a_damaged_tokenizer_file_is_refused_or_gives_a_working_encoder(
            edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
            cut in prop::option::of(any::<prop::sample::Index>()),
        ) {
            let mut files = files().clone();
            for (at, byte) in edits {
                let i = at.index(files.tokenizer.len());
                files.tokenizer[i] = byte;
            }
            if let Some(cut) = cut {
                files.tokenizer.truncate(cut.index(files.tokenizer.len()));
            }
            refused_or_working(&files)?;
        }

        #[test]
        fn a_tokenizer_whose_ids_pass_the_embedding_table_is_refused(
            vocab_size in 1usize..100,
        ) {
            // The tokenizer knows ~150 pieces; weights and config that agree on a smaller
            // table must not let a token's id index past it.
            let mut files = files().clone();
            let mut tensors =
                candle_core::safetensors::load_buffer(&files.weights, &candle_core::Device::Cpu)
                    .unwrap();
            let name = "embeddings.word_embeddings.weight";
            let table = tensors[name].narrow(0, 0, vocab_size).unwrap();
            tensors.insert(name.to_string(), table);
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("weights.safetensors");
            candle_core::safetensors::save(&tensors, &path).unwrap();
            files.weights = std::fs::read(&path).unwrap();
            let mut config: serde_json::Value = serde_json::from_slice(&files.config).unwrap();
            config["vocab_size"] = vocab_size.into();
            files.config = serde_json::to_vec(&config).unwrap();
            let error = match Encoder::from_files(&files, &options()) {
                Err(error) => error.to_string(),
                Ok(encoder) => encoder
                    .embed(&["refund for a crash, xyz"])
                    .expect_err("an id past the table must not embed")
                    .to_string(),
            };
            prop_assert!(error.contains("vocab") || error.contains("token"), "{error}");
        }
    }
}
