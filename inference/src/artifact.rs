//! A model version on disk: `model.json` (the card: kind, taxonomy snapshot, calibration,
//! thresholds, hyper-parameters) and `weights.safetensors`, each with a SHA-256 that the
//! store records. Loading recomputes every hash and refuses a mismatch, so a truncated copy
//! or a hand-edited file is never served.

use crate::card::ModelCard;
use crate::error::ModelError;
use safetensors::tensor::{Dtype, TensorView};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

pub const CARD_FILE: &str = "model.json";
pub const WEIGHTS_FILE: &str = "weights.safetensors";

/// File name → hex SHA-256.
pub type FileHashes = BTreeMap<String, String>;

/// Named tensors as plain vectors, the way our models hold them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tensors {
    pub f32s: BTreeMap<String, (Vec<usize>, Vec<f32>)>,
    pub u32s: BTreeMap<String, (Vec<usize>, Vec<u32>)>,
}

impl Tensors {
    pub fn f32(&self, name: &str) -> Result<&(Vec<usize>, Vec<f32>), ModelError> {
        self.f32s
            .get(name)
            .ok_or_else(|| ModelError::corrupt(WEIGHTS_FILE, format!("tensor {name:?} is missing")))
    }

    pub fn u32(&self, name: &str) -> Result<&(Vec<usize>, Vec<u32>), ModelError> {
        self.u32s
            .get(name)
            .ok_or_else(|| ModelError::corrupt(WEIGHTS_FILE, format!("tensor {name:?} is missing")))
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Writes a model into `dir` (which must not exist yet) atomically: into a temporary
/// sibling first, renamed when complete. Returns the hashes to record.
pub fn save(dir: &Path, card: &ModelCard, tensors: &Tensors) -> Result<FileHashes, ModelError> {
    save_with_files(dir, card, tensors, &[])
}

/// `save` with more files beside the card and weights (a fine-tuned encoder's own files),
/// each hashed and written atomically with the rest.
pub fn save_with_files(
    dir: &Path,
    card: &ModelCard,
    tensors: &Tensors,
    extra: &[(&str, &[u8])],
) -> Result<FileHashes, ModelError> {
    let card_bytes =
        serde_json::to_vec_pretty(card).map_err(|e| ModelError::corrupt(CARD_FILE, e))?;
    let weights = to_safetensors(tensors)?;
    for (name, _) in extra {
        // Plain names only: the files live in this directory and must not replace ours.
        let plain = !name.is_empty()
            && !name.starts_with('.')
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !plain || *name == CARD_FILE || *name == WEIGHTS_FILE {
            return Err(ModelError::corrupt(
                name,
                "is not a file name a model directory can hold",
            ));
        }
    }
    let staging = staging_dir(dir);
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ModelError::Io { path, source }
    };
    let written = (|| {
        std::fs::create_dir_all(&staging).map_err(io(&staging))?;
        std::fs::write(staging.join(CARD_FILE), &card_bytes).map_err(io(&staging))?;
        std::fs::write(staging.join(WEIGHTS_FILE), &weights).map_err(io(&staging))?;
        let mut hashes = FileHashes::from([
            (CARD_FILE.to_string(), sha256_hex(&card_bytes)),
            (WEIGHTS_FILE.to_string(), sha256_hex(&weights)),
        ]);
        for (name, bytes) in extra {
            std::fs::write(staging.join(name), bytes).map_err(io(&staging))?;
            hashes.insert(name.to_string(), sha256_hex(bytes));
        }
        std::fs::rename(&staging, dir).map_err(io(dir))?;
        Ok(hashes)
    })();
    if written.is_err() {
        // A full disk or a failed rename must not leave a hidden half-written model behind
        // (it would fill the disk further with every retry).
        let _ = std::fs::remove_dir_all(&staging);
    }
    written
}

fn staging_dir(dir: &Path) -> PathBuf {
    let name = dir
        .file_name()
        .map_or_else(|| "model".into(), |n| n.to_string_lossy().into_owned());
    dir.with_file_name(format!(".{name}.partial-{}", std::process::id()))
}

/// Tensors as the bytes of a safetensors file.
pub fn to_safetensors(tensors: &Tensors) -> Result<Vec<u8>, ModelError> {
    let mut buffers: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, (shape, values)) in &tensors.f32s {
        buffers.push((
            name.clone(),
            Dtype::F32,
            shape.clone(),
            values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ));
    }
    for (name, (shape, values)) in &tensors.u32s {
        buffers.push((
            name.clone(),
            Dtype::U32,
            shape.clone(),
            values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ));
    }
    let views = buffers
        .iter()
        .map(|(name, dtype, shape, bytes)| {
            TensorView::new(*dtype, shape.clone(), bytes)
                .map(|view| (name.clone(), view))
                .map_err(|e| ModelError::corrupt(WEIGHTS_FILE, e))
        })
        .collect::<Result<Vec<_>, _>>()?;
    safetensors::serialize(views, None).map_err(|e| ModelError::corrupt(WEIGHTS_FILE, e))
}

/// Reads a model directory, checking each file against the recorded hashes.
pub fn load(dir: &Path, expected: &FileHashes) -> Result<(ModelCard, Tensors), ModelError> {
    let card_bytes = read_verified(dir, CARD_FILE, expected)?;
    let weights = read_verified(dir, WEIGHTS_FILE, expected)?;
    let card: ModelCard =
        serde_json::from_slice(&card_bytes).map_err(|e| ModelError::corrupt(CARD_FILE, e))?;
    Ok((card, deserialize(&weights)?))
}

fn read_verified(dir: &Path, file: &str, expected: &FileHashes) -> Result<Vec<u8>, ModelError> {
    let path = dir.join(file);
    if !path.exists() {
        return Err(ModelError::Missing { path });
    }
    let bytes = std::fs::read(&path).map_err(|source| ModelError::Io {
        path: path.clone(),
        source,
    })?;
    let want = expected.get(file).ok_or_else(|| ModelError::HashMismatch {
        file: file.to_string(),
        expected: "(none recorded)".into(),
        actual: sha256_hex(&bytes),
    })?;
    let actual = sha256_hex(&bytes);
    if &actual != want {
        return Err(ModelError::HashMismatch {
            file: file.to_string(),
            expected: want.clone(),
            actual,
        });
    }
    Ok(bytes)
}

fn deserialize(bytes: &[u8]) -> Result<Tensors, ModelError> {
    let file = safetensors::SafeTensors::deserialize(bytes)
        .map_err(|e| ModelError::corrupt(WEIGHTS_FILE, e))?;
    let mut tensors = Tensors::default();
    let mut seen: HashMap<String, ()> = HashMap::new();
    for (name, view) in file.tensors() {
        seen.insert(name.clone(), ());
        let shape = view.shape().to_vec();
        let data = view.data();
        match view.dtype() {
            Dtype::F32 => {
                let values = data
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect();
                tensors.f32s.insert(name, (shape, values));
            }
            Dtype::U32 => {
                let values = data
                    .chunks_exact(4)
                    .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect();
                tensors.u32s.insert(name, (shape, values));
            }
            other => {
                return Err(ModelError::corrupt(
                    WEIGHTS_FILE,
                    format!("tensor {name:?} has unsupported type {other:?}"),
                ));
            }
        }
    }
    Ok(tensors)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // a failed unwrap is a failed test
    use super::*;
    use crate::card::ModelKind;
    use datasets::LabelMode;

    fn card() -> ModelCard {
        ModelCard {
            format: 1,
            kind: ModelKind::Ngram,
            label_mode: LabelMode::Single,
            groups: Vec::new(),
            tags: Vec::new(),
            temperature: 1.0,
            thresholds: Vec::new(),
            params: serde_json::json!({}),
            training_fingerprint: String::new(),
            ngram: None,
            encoder: None,
            out_of_distribution: None,
        }
    }

    fn tensors() -> Tensors {
        let mut tensors = Tensors::default();
        tensors
            .f32s
            .insert("w".into(), (vec![2, 2], vec![1.0, 2.0, 3.0, 4.0]));
        tensors
    }

    fn hidden_entries(parent: &Path) -> Vec<String> {
        std::fs::read_dir(parent)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with('.'))
            .collect()
    }

    #[test]
    fn a_saved_model_loads_back_with_its_hashes() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("v1");
        let hashes = save(&dir, &card(), &tensors()).unwrap();
        let (loaded, weights) = load(&dir, &hashes).unwrap();
        assert_eq!(loaded, card());
        assert_eq!(weights, tensors());
        assert!(hidden_entries(parent.path()).is_empty());
    }

    #[test]
    fn a_failed_save_leaves_no_half_written_directory_behind() {
        let parent = tempfile::tempdir().unwrap();
        // The final rename fails: a non-empty directory is already where the model goes.
        let dir = parent.path().join("v1");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("someone-else"), b"x").unwrap();
        let error = save(&dir, &card(), &tensors()).unwrap_err();
        assert!(matches!(error, ModelError::Io { .. }), "{error}");
        assert!(
            hidden_entries(parent.path()).is_empty(),
            "left behind: {:?}",
            hidden_entries(parent.path())
        );
        assert!(dir.join("someone-else").exists(), "what was there is kept");
    }
}
