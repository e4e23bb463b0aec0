//! The encoder on a tiny random BERT written into a temporary hub cache (no download), and
//! on the real all-MiniLM-L6-v2 when it is in the Hugging Face cache.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use super::bert::{Bert, BertConfig, Kernels};
use super::hub::HubCache;
use super::testing::{TINY_REPO, TINY_REVISION, TinyBert};
use super::*;
use candle_nn::Optimizer;

fn tiny_cache(model: TinyBert) -> (tempfile::TempDir, HubCache) {
    let root = tempfile::tempdir().unwrap();
    model.write(root.path(), TINY_REPO).unwrap();
    let cache = HubCache::at(root.path());
    (root, cache)
}

fn options() -> EncoderOptions {
    EncoderOptions {
        threads: 1,
        ..EncoderOptions::default()
    }
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (norm(a) * norm(b))
}

const TEXTS: [&str; 5] = [
    "I was charged twice for my subscription, please refund",
    "login fails",
    "The mobile app crashes when I export a report to email, since the upgrade to the new plan",
    "",
    "Dark mode?",
];

#[test]
fn a_tiny_bert_loads_from_the_cache_and_embeds_unit_vectors() {
    let (_root, cache) = tiny_cache(TinyBert::default());
    let encoder = Encoder::load(&cache, TINY_REPO, &options()).unwrap();
    assert_eq!(encoder.dim(), 32);
    assert_eq!(encoder.spec().revision, TINY_REVISION);
    assert_eq!(
        encoder.spec().max_tokens,
        64,
        "capped at the position table"
    );
    assert_eq!(
        encoder.spec().files.keys().collect::<Vec<_>>(),
        [CONFIG_FILE, WEIGHTS_FILE, TOKENIZER_FILE]
    );
    let embeddings = encoder.embed(&TEXTS).unwrap();
    assert_eq!(embeddings.len(), TEXTS.len());
    for embedding in &embeddings {
        assert_eq!(embedding.len(), 32);
        let norm: f32 = embedding.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "norm {norm}");
    }
    assert!(max_abs_diff(&embeddings[0], &embeddings[1]) > 1e-3);
}

#[test]
fn the_fixed_padding_of_tokenizer_json_is_dropped() {
    let (_root, cache) = tiny_cache(TinyBert::default());
    let encoder = Encoder::load(&cache, TINY_REPO, &options()).unwrap();
    // [CLS] login fails [SEP]
    assert_eq!(encoder.tokenize("login fails").unwrap().len(), 4);
    let long = "refund ".repeat(200);
    assert_eq!(encoder.tokenize(&long).unwrap().len(), 64);
}

#[test]
fn a_text_embeds_the_same_alone_and_padded_in_a_batch() {
    let (_root, cache) = tiny_cache(TinyBert::default());
    let encoder = Encoder::load(&cache, TINY_REPO, &options()).unwrap();
    let batch = encoder.embed(&TEXTS).unwrap();
    for (text, batched) in TEXTS.iter().zip(&batch) {
        let alone = encoder.embed(&[text]).unwrap().remove(0);
        let diff = max_abs_diff(&alone, batched);
        assert!(diff < 1e-5, "{text:?}: max abs diff {diff}");
    }
}

#[test]
fn fused_and_differentiable_kernels_compute_the_same() {
    let (_root, cache) = tiny_cache(TinyBert::default());
    let encoder = Encoder::load(&cache, TINY_REPO, &options()).unwrap();
    let tokens: Vec<_> = TEXTS.iter().map(|t| encoder.tokenize(t).unwrap()).collect();
    let batch = encoder
        .tokenizer()
        .pad(&tokens.iter().collect::<Vec<_>>(), encoder.device())
        .unwrap();
    let fused = encoder.forward(&batch, Kernels::Fused).unwrap();
    let plain = encoder.forward(&batch, Kernels::Differentiable).unwrap();
    let diff = (fused - plain)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(diff < 1e-5, "max abs diff {diff}");
}

#[test]
fn weights_named_with_a_bert_prefix_load_the_same() {
    let plain = TinyBert::default();
    let prefixed = TinyBert {
        prefixed: true,
        ..plain
    };
    let (_a, plain_cache) = tiny_cache(plain);
    let (_b, prefixed_cache) = tiny_cache(prefixed);
    let a = Encoder::load(&plain_cache, TINY_REPO, &options()).unwrap();
    let b = Encoder::load(&prefixed_cache, TINY_REPO, &options()).unwrap();
    let (x, y) = (a.embed(&TEXTS).unwrap(), b.embed(&TEXTS).unwrap());
    for (x, y) in x.iter().zip(&y) {
        assert!(max_abs_diff(x, y) < 1e-6);
    }
}

#[test]
fn a_model_missing_from_the_cache_says_how_to_get_it() {
    let root = tempfile::tempdir().unwrap();
    let error = Encoder::load(
        &HubCache::at(root.path()),
        "sentence-transformers/all-MiniLM-L6-v2",
        &options(),
    )
    .unwrap_err();
    assert!(matches!(error, EncoderError::NotInCache { .. }), "{error}");
    let message = error.to_string();
    assert!(
        message.contains("`tagger models pull sentence-transformers/all-MiniLM-L6-v2`"),
        "{message}"
    );
    // And how to fill an offline machine's cache.
    assert!(
        message.contains("copy the folder models--sentence-transformers--all-MiniLM-L6-v2"),
        "{message}"
    );
}

#[test]
fn a_revision_missing_from_the_cache_is_named() {
    let (_root, cache) = tiny_cache(TinyBert::default());
    let error = cache
        .snapshot(TINY_REPO, Some("ffffffffffffffffffffffffffffffffffffffff"))
        .unwrap_err();
    assert!(
        matches!(error, EncoderError::RevisionNotCached { .. }),
        "{error}"
    );
}

#[test]
fn repository_ids_cannot_leave_the_cache() {
    let cache = HubCache::at("/nonexistent");
    for bad in ["../etc", "a/../../b", "noslash", "a/b/c", "./x"] {
        assert!(
            matches!(cache.repo_dir(bad), Err(EncoderError::InvalidRepo(_))),
            "{bad}"
        );
    }
    assert!(
        cache
            .repo_dir("sentence-transformers/all-MiniLM-L6-v2")
            .is_ok()
    );
}

#[test]
fn a_missing_tokenizer_is_a_clear_error() {
    let root = tempfile::tempdir().unwrap();
    let snapshot = TinyBert::default().write(root.path(), TINY_REPO).unwrap();
    std::fs::remove_file(snapshot.join(TOKENIZER_FILE)).unwrap();
    let error = Encoder::load(&HubCache::at(root.path()), TINY_REPO, &options()).unwrap_err();
    assert!(matches!(error, EncoderError::MissingFile { .. }), "{error}");
    assert!(error.to_string().contains("tokenizer.json"), "{error}");
}

#[test]
fn truncated_weights_are_a_clear_error() {
    let root = tempfile::tempdir().unwrap();
    let snapshot = TinyBert::default().write(root.path(), TINY_REPO).unwrap();
    let path = snapshot.join(WEIGHTS_FILE);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let error = Encoder::load(&HubCache::at(root.path()), TINY_REPO, &options()).unwrap_err();
    assert!(matches!(error, EncoderError::Weights { .. }), "{error}");
    assert!(
        error.to_string().contains("corrupt or truncated"),
        "{error}"
    );
}

#[test]
fn a_config_that_does_not_match_the_weights_is_a_clear_error() {
    let root = tempfile::tempdir().unwrap();
    let model = TinyBert::default();
    let snapshot = model.write(root.path(), TINY_REPO).unwrap();
    let mut config = model.config();
    config["hidden_size"] = 48.into();
    std::fs::write(
        snapshot.join(CONFIG_FILE),
        serde_json::to_vec(&config).unwrap(),
    )
    .unwrap();
    let error = Encoder::load(&HubCache::at(root.path()), TINY_REPO, &options()).unwrap_err();
    assert!(matches!(error, EncoderError::Shape { .. }), "{error}");
    assert!(error.to_string().contains("shape mismatch"), "{error}");
}

#[test]
fn an_encoder_file_changed_since_training_is_refused() {
    let (root, cache) = tiny_cache(TinyBert::default());
    let spec = Encoder::load(&cache, TINY_REPO, &options())
        .unwrap()
        .spec()
        .clone();
    // Another model under the same name and revision: same layout, different weights.
    TinyBert {
        seed: 2,
        ..TinyBert::default()
    }
    .write(root.path(), TINY_REPO)
    .unwrap();
    let error = Encoder::load_spec(&cache, &spec, &options()).unwrap_err();
    assert!(
        matches!(error, EncoderError::FileChanged { ref file, .. } if file == WEIGHTS_FILE),
        "{error}"
    );
}

/// The groundwork for `finetune`: a gradient step through the encoder changes its weights,
/// which candle's stock BERT (LayerNorm without a backward pass) would not do below it.
#[test]
fn one_adamw_step_on_a_classification_loss_changes_the_encoder_weights() {
    let model = TinyBert::default();
    let config: BertConfig = serde_json::from_value(model.config()).unwrap();
    let device = Device::Cpu;
    let (varmap, bert) = Bert::trainable(&config, model.weights().unwrap(), &device).unwrap();
    let tokenizer = testing::tokenizer().unwrap();
    let tokenizer =
        tokenize::TextTokenizer::from_bytes(tokenizer.to_string(false).unwrap().as_bytes(), 64)
            .unwrap();
    let tokens: Vec<_> = [
        "refund my payment",
        "login fails",
        "app crashes",
        "dark mode",
    ]
    .iter()
    .map(|t| tokenizer.encode(t).unwrap())
    .collect();
    let batch = tokenizer
        .pad(&tokens.iter().collect::<Vec<_>>(), &device)
        .unwrap();
    let head = candle_nn::linear(
        config.hidden_size,
        2,
        candle_nn::VarBuilder::from_varmap(&varmap, DType::F32, &device).pp("head"),
    )
    .unwrap();
    let query_name = "encoder.layer.0.attention.self.query.weight";
    let embedding_name = "embeddings.LayerNorm.weight";
    let before = |name: &str| {
        varmap.data().lock().unwrap()[name]
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    };
    let (query_before, norm_before) = (before(query_name), before(embedding_name));
    let mut optimizer =
        candle_nn::AdamW::new(varmap.all_vars(), candle_nn::ParamsAdamW::default()).unwrap();
    let states = bert
        .forward(
            &batch.ids,
            &batch.type_ids,
            &batch.mask,
            Kernels::Differentiable,
        )
        .unwrap();
    let pooled = bert::mean_pool(&states, &batch.mask).unwrap();
    let logits = candle_core::Module::forward(&head, &pooled).unwrap();
    let targets = Tensor::new(&[0u32, 1, 1, 0], &device).unwrap();
    let loss = candle_nn::loss::cross_entropy(&logits, &targets).unwrap();
    optimizer.backward_step(&loss).unwrap();
    let changed = |name: &str, old: &[f32]| max_abs_diff(&before(name), old);
    assert!(
        changed(query_name, &query_before) > 1e-5,
        "query weight unchanged"
    );
    assert!(
        changed(embedding_name, &norm_before) > 1e-5,
        "LayerNorm weight unchanged"
    );
}

#[test]
fn a_checkpoint_missing_a_weight_cannot_become_trainable() {
    let model = TinyBert::default();
    let config: BertConfig = serde_json::from_value(model.config()).unwrap();
    let mut weights = model.weights().unwrap();
    weights.remove("encoder.layer.1.output.dense.weight");
    let Err(error) = Bert::trainable(&config, weights, &Device::Cpu) else {
        panic!("a checkpoint missing a weight became trainable");
    };
    assert!(error.to_string().contains("lacks 1"), "{error}");
}

/// The real encoder, when it is in the cache: paraphrases are closer than unrelated texts,
/// and values match a NumPy re-implementation of BERT run on the same token ids.
#[test]
fn minilm_embeddings_match_the_reference_when_it_is_cached() {
    // Only what is there: a test never downloads.
    let cache = HubCache::from_env().offline();
    let Ok(encoder) = Encoder::load(&cache, hub::DEFAULT_ENCODER_REPO, &options()) else {
        println!("skipped: MiniLM not in the HF cache");
        return;
    };
    assert_eq!(encoder.dim(), 384);
    let texts = [
        "How do I reset my password?",
        "I forgot my password and need to change it",
        "The weather is lovely at the beach today",
    ];
    let embeddings = encoder.embed(&texts).unwrap();
    let paraphrase = cosine(&embeddings[0], &embeddings[1]);
    let unrelated = cosine(&embeddings[0], &embeddings[2]);
    assert!(
        paraphrase > unrelated + 0.3,
        "paraphrase {paraphrase}, unrelated {unrelated}"
    );
    assert_eq!(
        encoder.tokenize("hello world").unwrap().ids,
        [101, 7592, 2088, 102]
    );
    let hello = encoder.embed(&["hello world"]).unwrap().remove(0);
    // f32 through six layers against a float64 reference: the SIMD level (16, 8 or 1
    // lanes) changes the order of every sum, so the last bits differ by CPU. 1e-5 is ten
    // times the differences measured between the levels, and far below any that matters.
    for (index, expected) in REFERENCE_HELLO_WORLD {
        assert!(
            (hello[index] - expected).abs() < 1e-5,
            "dimension {index}: {} vs {expected}",
            hello[index]
        );
    }
}

/// all-MiniLM-L6-v2's normalised mean-pooled embedding of "hello world" at a few dimensions,
/// computed independently of candle (NumPy, float64, from model.safetensors); the first
/// three agree with the values sentence-transformers is widely shown to print.
const REFERENCE_HELLO_WORLD: [(usize, f32); 6] = [
    (0, -0.034_477_3),
    (1, 0.031_023_2),
    (2, 0.006_735_0),
    (100, 0.027_731_1),
    (200, 0.016_573_4),
    (383, 0.030_206_8),
];

#[test]
fn packed_texts_embed_as_the_padded_differentiable_forward_does() {
    // Hidden 32: only the 64-wide feed-forward matrix is read in panels, the others go
    // through gemm; hidden 64: every matrix is read in panels.
    for tiny in [
        TinyBert::default(),
        TinyBert {
            hidden: 64,
            intermediate: 128,
            ..TinyBert::default()
        },
    ] {
        packed_embeddings_match_padded_ones(tiny);
    }
}

fn packed_embeddings_match_padded_ones(tiny: TinyBert) {
    let (_root, cache) = tiny_cache(tiny);
    let texts: Vec<&str> = TEXTS
        .iter()
        .cycle()
        .take(4 * TEXTS.len())
        .copied()
        .collect();
    // Batches of 3 short texts and one batch of all of them; 1 and 2 threads split the
    // work differently.
    for (threads, batch_size) in [(1, 3), (2, 3), (1, 64), (2, 64)] {
        let encoder = Encoder::load(
            &cache,
            TINY_REPO,
            &EncoderOptions {
                threads,
                batch_size,
                ..EncoderOptions::default()
            },
        )
        .unwrap();
        let tokens: Vec<_> = texts.iter().map(|t| encoder.tokenize(t).unwrap()).collect();
        let batch = encoder
            .tokenizer()
            .pad(&tokens.iter().collect::<Vec<_>>(), encoder.device())
            .unwrap();
        let padded = encoder
            .forward(&batch, Kernels::Differentiable)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        let packed = encoder.embed(&texts).unwrap();
        for ((text, a), b) in texts.iter().zip(&padded).zip(&packed) {
            let diff = max_abs_diff(a, b);
            assert!(
                diff < 1e-5,
                "{threads} threads, batches of {batch_size}, {text:?}: max abs diff {diff}"
            );
        }
    }
}

/// A ticket of `words` words of the tiny vocabulary.
fn long_text(words: usize) -> String {
    let vocabulary = [
        "charged", "twice", "refund", "login", "fails", "app", "crashes",
    ];
    (0..words)
        .map(|i| vocabulary[(i * 7 + i / 3) % vocabulary.len()])
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn a_long_text_is_cut_into_windows_each_wrapped_in_the_special_tokens() {
    let (_root, cache) = tiny_cache(TinyBert::default());
    let encoder = Encoder::load(&cache, TINY_REPO, &options()).unwrap();
    let tokenizer = encoder.tokenizer();
    let max = tokenizer.max_tokens();
    // A short text: one window, exactly what plain encoding gives.
    let short = "login fails";
    assert_eq!(
        tokenizer.encode_windows(short, 4).unwrap(),
        vec![tokenizer.encode(short).unwrap()]
    );
    // A long one: consecutive pieces, each within the budget and framed like a whole text.
    let text = long_text(1000);
    let one = tokenizer.encode(&text).unwrap();
    assert_eq!(one.len(), max);
    let (first, last) = (one.ids[0], one.ids[max - 1]);
    let windows = tokenizer.encode_windows(&text, 3).unwrap();
    assert_eq!(windows.len(), 3);
    for window in &windows {
        assert_eq!(window.len(), max);
        assert_eq!(window.ids[0], first);
        assert_eq!(window.ids[max - 1], last);
        assert!(window.type_ids.iter().all(|&t| t == 0));
    }
    // The first window is the plain encoding; the next ones go on where it stopped.
    assert_eq!(windows[0], one);
    let content = |t: &Tokens| t.ids[1..t.len() - 1].to_vec();
    let whole: Vec<u32> = windows.iter().flat_map(content).collect();
    let plain = tokenizer.encode_windows(&text, 1).unwrap();
    assert_eq!(plain, vec![one.clone()]);
    assert_eq!(&whole[..max - 2], &content(&one)[..]);
    assert_ne!(windows[1], windows[0]);
}

#[test]
fn windows_change_a_long_texts_embedding_only() {
    let (_root, cache) = tiny_cache(TinyBert::default());
    let one = Encoder::load(&cache, TINY_REPO, &options()).unwrap();
    let three = Encoder::load(
        &cache,
        TINY_REPO,
        &EncoderOptions {
            windows: 3,
            ..options()
        },
    )
    .unwrap();
    assert_eq!((one.spec().windows, three.spec().windows), (1, 3));
    // Its second half differs: read in windows, the whole text counts.
    let long = format!("{} {}", long_text(60), "refund ".repeat(200));
    let texts = ["login fails", long.as_str()];
    let (a, b) = (one.embed(&texts).unwrap(), three.embed(&texts).unwrap());
    assert!(
        max_abs_diff(&a[0], &b[0]) < 1e-6,
        "a short text is unchanged"
    );
    assert!(
        max_abs_diff(&a[1], &b[1]) > 1e-3,
        "a long text reads further"
    );
    let norm: f32 = b[1].iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-5);
    // The pooled embedding is the windows' token-weighted mean, scaled to unit length.
    let windows = three.tokenizer().encode_windows(&long, 3).unwrap();
    let rows: Vec<Vec<f32>> = match &three.packed {
        Some(packed) => {
            let refs: Vec<&Tokens> = windows.iter().collect();
            three.install(|| packed.embed(&refs, true)).unwrap()
        }
        None => return,
    };
    let owner = vec![0; windows.len()];
    let expected = pool_windows(&rows, &windows, &owner, 1, true);
    assert!(max_abs_diff(&expected[0], &b[1]) < 1e-5);
    // A card written before windows existed reads as one window.
    let mut card = serde_json::to_value(three.spec()).unwrap();
    card.as_object_mut().unwrap().remove("windows");
    let old: EncoderSpec = serde_json::from_value(card).unwrap();
    assert_eq!(old.windows, 1);
}
