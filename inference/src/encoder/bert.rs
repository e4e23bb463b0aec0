//! A BERT-family encoder (embeddings → N transformer layers) written for this project rather
//! than taken from candle-transformers: every op has a backward pass when asked for one, so
//! fine-tuning trains the whole network, not silently only the head. Weights load by the
//! Hugging Face names, with or without the `bert.` prefix of task checkpoints.

use super::packed::{Matrix, Norm, PackedBert, PackedLayer};
use candle_core::{D, DType, Device, Module, Tensor};
use candle_nn::{Embedding, Init, Linear, VarBuilder, VarMap};
use serde::Deserialize;
use std::collections::HashMap;

/// The part of a Hugging Face `config.json` a BERT encoder needs.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    #[serde(default = "default_activation")]
    pub hidden_act: String,
    pub max_position_embeddings: usize,
    #[serde(default = "default_type_vocab_size")]
    pub type_vocab_size: usize,
    #[serde(default = "default_layer_norm_eps")]
    pub layer_norm_eps: f64,
    #[serde(default)]
    pub position_embedding_type: Option<String>,
}

fn default_activation() -> String {
    "gelu".into()
}

fn default_type_vocab_size() -> usize {
    2
}

fn default_layer_norm_eps() -> f64 {
    1e-12
}

impl BertConfig {
    /// Refuses configurations this encoder would compute wrongly rather than fail on.
    pub fn check(&self) -> Result<(), String> {
        if self.hidden_size == 0 || self.num_attention_heads == 0 {
            return Err("hidden_size and num_attention_heads must be positive".into());
        }
        // Room for [CLS] and [SEP] at least: the token budget is clamped to this table.
        if self.max_position_embeddings < 2 {
            return Err(format!(
                "max_position_embeddings {} leaves no room for a text",
                self.max_position_embeddings
            ));
        }
        // LayerNorm divides by sqrt(variance + eps): zero, negative or non-finite values
        // give NaN embeddings (real checkpoints use 1e-12 to 1e-5).
        if !(self.layer_norm_eps.is_finite()
            && self.layer_norm_eps > 0.0
            && self.layer_norm_eps <= 0.1)
        {
            return Err(format!(
                "layer_norm_eps {} is not a small positive number",
                self.layer_norm_eps
            ));
        }
        if !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return Err(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            ));
        }
        // BERT's "gelu" is the exact (erf) form; the tanh approximation differs by ~1e-3.
        if self.hidden_act != "gelu" {
            return Err(format!(
                "hidden_act {:?} is not supported (only \"gelu\")",
                self.hidden_act
            ));
        }
        if let Some(kind) = &self.position_embedding_type
            && kind != "absolute"
        {
            return Err(format!(
                "position_embedding_type {kind:?} is not supported (only \"absolute\")"
            ));
        }
        Ok(())
    }
}

/// Which implementation of LayerNorm and softmax to run. candle's fused kernels are faster
/// but have no backward pass; training must use the plain-op versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernels {
    /// Fused LayerNorm and softmax: inference only.
    Fused,
    /// Composed of differentiable ops: gradients reach every weight.
    Differentiable,
}

#[derive(Debug, Clone)]
struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
}

impl LayerNorm {
    fn load(size: usize, eps: f64, vb: VarBuilder) -> candle_core::Result<Self> {
        // Checkpoints converted from TensorFlow name the parameters gamma and beta.
        let (weight_name, bias_name) = if vb.contains_tensor("gamma") {
            ("gamma", "beta")
        } else {
            ("weight", "bias")
        };
        Ok(Self {
            weight: vb.get_with_hints(size, weight_name, Init::Const(1.0))?,
            bias: vb.get_with_hints(size, bias_name, Init::Const(0.0))?,
            eps,
        })
    }

    fn forward(&self, xs: &Tensor, kernels: Kernels) -> candle_core::Result<Tensor> {
        match kernels {
            Kernels::Fused => {
                candle_nn::ops::layer_norm(xs, &self.weight, &self.bias, self.eps as f32)
            }
            Kernels::Differentiable => {
                candle_nn::ops::layer_norm_slow(xs, &self.weight, &self.bias, self.eps as f32)
            }
        }
    }
}

#[derive(Debug, Clone)]
struct Embeddings {
    words: Embedding,
    positions: Embedding,
    token_types: Embedding,
    norm: LayerNorm,
}

impl Embeddings {
    fn load(config: &BertConfig, vb: VarBuilder) -> candle_core::Result<Self> {
        let size = config.hidden_size;
        Ok(Self {
            words: candle_nn::embedding(config.vocab_size, size, vb.pp("word_embeddings"))?,
            positions: candle_nn::embedding(
                config.max_position_embeddings,
                size,
                vb.pp("position_embeddings"),
            )?,
            token_types: candle_nn::embedding(
                config.type_vocab_size,
                size,
                vb.pp("token_type_embeddings"),
            )?,
            norm: LayerNorm::load(size, config.layer_norm_eps, vb.pp("LayerNorm"))?,
        })
    }

    fn forward(
        &self,
        ids: &Tensor,
        type_ids: &Tensor,
        kernels: Kernels,
        dropout: Option<f32>,
    ) -> candle_core::Result<Tensor> {
        let (_, length) = ids.dims2()?;
        let positions = Tensor::arange(0u32, length as u32, ids.device())?;
        let sum = (self.words.forward(ids)? + self.token_types.forward(type_ids)?)?
            .broadcast_add(&self.positions.forward(&positions)?)?;
        drop_out(self.norm.forward(&sum, kernels)?, dropout)
    }
}

#[derive(Debug, Clone)]
struct Layer {
    query: Linear,
    key: Linear,
    value: Linear,
    attention_output: Linear,
    attention_norm: LayerNorm,
    intermediate: Linear,
    output: Linear,
    output_norm: LayerNorm,
    heads: usize,
    head_size: usize,
}

impl Layer {
    fn load(config: &BertConfig, vb: VarBuilder) -> candle_core::Result<Self> {
        let size = config.hidden_size;
        let eps = config.layer_norm_eps;
        let attention = vb.pp("attention");
        let own = attention.pp("self");
        Ok(Self {
            query: candle_nn::linear(size, size, own.pp("query"))?,
            key: candle_nn::linear(size, size, own.pp("key"))?,
            value: candle_nn::linear(size, size, own.pp("value"))?,
            attention_output: candle_nn::linear(size, size, attention.pp("output").pp("dense"))?,
            attention_norm: LayerNorm::load(size, eps, attention.pp("output").pp("LayerNorm"))?,
            intermediate: candle_nn::linear(
                size,
                config.intermediate_size,
                vb.pp("intermediate").pp("dense"),
            )?,
            output: candle_nn::linear(config.intermediate_size, size, vb.pp("output").pp("dense"))?,
            output_norm: LayerNorm::load(size, eps, vb.pp("output").pp("LayerNorm"))?,
            heads: config.num_attention_heads,
            head_size: size / config.num_attention_heads,
        })
    }

    /// `[batch, length, hidden]` → per head `[batch, heads, length, head_size]`.
    fn split_heads(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        let (batch, length, _) = xs.dims3()?;
        xs.reshape((batch, length, self.heads, self.head_size))?
            .transpose(1, 2)?
            .contiguous()
    }

    fn forward(
        &self,
        hidden: &Tensor,
        additive_mask: &Tensor,
        kernels: Kernels,
        dropout: Option<f32>,
    ) -> candle_core::Result<Tensor> {
        let (batch, length, size) = hidden.dims3()?;
        let query = self.split_heads(&self.query.forward(hidden)?)?;
        let key = self.split_heads(&self.key.forward(hidden)?)?;
        let value = self.split_heads(&self.value.forward(hidden)?)?;
        let scores = (query.matmul(&key.t()?)? / (self.head_size as f64).sqrt())?
            .broadcast_add(additive_mask)?;
        let weights = match kernels {
            Kernels::Fused => candle_nn::ops::softmax_last_dim(&scores)?,
            Kernels::Differentiable => candle_nn::ops::softmax(&scores, D::Minus1)?,
        };
        let context = drop_out(weights, dropout)?
            .matmul(&value)?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((batch, length, size))?;
        let attended = self.attention_norm.forward(
            &(drop_out(self.attention_output.forward(&context)?, dropout)? + hidden)?,
            kernels,
        )?;
        let expanded = self.intermediate.forward(&attended)?.gelu_erf()?;
        self.output_norm.forward(
            &(drop_out(self.output.forward(&expanded)?, dropout)? + attended)?,
            kernels,
        )
    }
}

/// A BERT encoder's weights.
#[derive(Debug, Clone)]
pub struct Bert {
    embeddings: Embeddings,
    layers: Vec<Layer>,
    config: BertConfig,
}

/// The prefix task checkpoints put before the encoder's own names.
const TASK_PREFIX: &str = "bert";

impl Bert {
    /// Builds the encoder from a `VarBuilder`: tensors loaded from a checkpoint, or a
    /// `VarMap` whose variables a training loop will update.
    pub fn load(config: &BertConfig, vb: VarBuilder) -> candle_core::Result<Self> {
        let vb = if vb.contains_tensor(&format!("{TASK_PREFIX}.embeddings.word_embeddings.weight"))
        {
            vb.pp(TASK_PREFIX)
        } else {
            vb
        };
        let embeddings = Embeddings::load(config, vb.pp("embeddings"))?;
        let layers = (0..config.num_hidden_layers)
            .map(|index| Layer::load(config, vb.pp("encoder").pp("layer").pp(index)))
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Self {
            embeddings,
            layers,
            config: config.clone(),
        })
    }

    /// A trainable copy of a checkpoint: every weight becomes a variable of the returned
    /// `VarMap` (names without any `bert.` prefix), for an optimizer to update.
    pub fn trainable(
        config: &BertConfig,
        tensors: HashMap<String, Tensor>,
        device: &Device,
    ) -> candle_core::Result<(VarMap, Self)> {
        let varmap = VarMap::new();
        {
            let mut variables = varmap
                .data()
                .lock()
                .map_err(|_| candle_core::Error::Msg("the variable map lock is poisoned".into()))?;
            let prefix = format!("{TASK_PREFIX}.");
            for (name, tensor) in tensors {
                // Integer buffers such as `position_ids` are not parameters.
                if !tensor.dtype().is_float() {
                    continue;
                }
                let name = name
                    .strip_prefix(&prefix)
                    .map_or(name.clone(), str::to_string);
                let tensor = tensor.to_device(device)?.to_dtype(DType::F32)?;
                variables.insert(name, candle_core::Var::from_tensor(&tensor)?);
            }
        }
        let loaded = varmap.all_vars().len();
        let model = Self::load(config, VarBuilder::from_varmap(&varmap, DType::F32, device))?;
        // A VarMap invents a random variable for any name it lacks: a checkpoint missing a
        // weight must fail here, not train from noise.
        let missing = varmap.all_vars().len().saturating_sub(loaded);
        if missing > 0 {
            candle_core::bail!("the checkpoint lacks {missing} of the encoder's weights");
        }
        Ok((varmap, model))
    }

    pub fn config(&self) -> &BertConfig {
        &self.config
    }

    /// The same weights laid out for the packed CPU forward pass (inference only): query,
    /// key and value joined into one matrix, every matrix also kept in panels.
    pub(crate) fn packed(&self) -> candle_core::Result<PackedBert> {
        let values = |tensor: &Tensor| tensor.to_dtype(DType::F32)?.to_vec1::<f32>();
        let bias = |linear: &Linear| match linear.bias() {
            Some(bias) => values(bias),
            None => Ok(vec![0.0; linear.weight().dim(0)?]),
        };
        let norm = |norm: &LayerNorm| -> candle_core::Result<Norm> {
            Ok(Norm {
                weight: values(&norm.weight)?,
                bias: values(&norm.bias)?,
                eps: norm.eps as f32,
            })
        };
        let layers = self
            .layers
            .iter()
            .map(|layer| {
                let qkv = Tensor::cat(
                    &[
                        layer.query.weight(),
                        layer.key.weight(),
                        layer.value.weight(),
                    ],
                    0,
                )?;
                let mut qkv_bias = bias(&layer.query)?;
                qkv_bias.extend(bias(&layer.key)?);
                qkv_bias.extend(bias(&layer.value)?);
                Ok(PackedLayer {
                    qkv: Matrix::new(&qkv)?,
                    qkv_bias,
                    attention_output: Matrix::new(layer.attention_output.weight())?,
                    attention_output_bias: bias(&layer.attention_output)?,
                    attention_norm: norm(&layer.attention_norm)?,
                    intermediate: Matrix::new(layer.intermediate.weight())?,
                    intermediate_bias: bias(&layer.intermediate)?,
                    output: Matrix::new(layer.output.weight())?,
                    output_bias: bias(&layer.output)?,
                    output_norm: norm(&layer.output_norm)?,
                })
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(PackedBert {
            words: self.embeddings.words.embeddings().clone(),
            positions: self.embeddings.positions.embeddings().clone(),
            token_types: self.embeddings.token_types.embeddings().clone(),
            embedding_norm: norm(&self.embeddings.norm)?,
            layers,
            heads: self.config.num_attention_heads,
            head_size: self.config.hidden_size / self.config.num_attention_heads,
        })
    }

    /// Token states `[batch, length, hidden]` for token ids and token type ids
    /// `[batch, length]` (u32) and an attention mask `[batch, length]` (f32, 1 for tokens,
    /// 0 for padding).
    pub fn forward(
        &self,
        ids: &Tensor,
        type_ids: &Tensor,
        mask: &Tensor,
        kernels: Kernels,
    ) -> candle_core::Result<Tensor> {
        self.forward_with(ids, type_ids, mask, kernels, None)
    }

    /// Token states for training: differentiable kernels, and dropout with probability
    /// `dropout` where BERT applies it (after the embeddings, on the attention weights, on
    /// each sub-layer's output before its residual sum).
    pub fn forward_train(
        &self,
        ids: &Tensor,
        type_ids: &Tensor,
        mask: &Tensor,
        dropout: f32,
    ) -> candle_core::Result<Tensor> {
        let dropout = (dropout > 0.0).then_some(dropout);
        self.forward_with(ids, type_ids, mask, Kernels::Differentiable, dropout)
    }

    fn forward_with(
        &self,
        ids: &Tensor,
        type_ids: &Tensor,
        mask: &Tensor,
        kernels: Kernels,
        dropout: Option<f32>,
    ) -> candle_core::Result<Tensor> {
        let (batch, length) = mask.dims2()?;
        // Padding gets a score so low that softmax gives it exactly zero weight, so a text
        // embeds the same alone or padded in a batch.
        let additive =
            ((mask.ones_like()? - mask)? * f64::from(f32::MIN))?.reshape((batch, 1, 1, length))?;
        let mut hidden = self.embeddings.forward(ids, type_ids, kernels, dropout)?;
        for layer in &self.layers {
            hidden = layer.forward(&hidden, &additive, kernels, dropout)?;
        }
        Ok(hidden)
    }
}

/// Dropout when training asks for it; the identity otherwise.
fn drop_out(xs: Tensor, dropout: Option<f32>) -> candle_core::Result<Tensor> {
    match dropout {
        Some(probability) => candle_nn::ops::dropout(&xs, probability),
        None => Ok(xs),
    }
}

/// The average of the token states over the tokens the mask keeps: `[batch, hidden]`.
pub fn mean_pool(hidden: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
    let weights = mask.unsqueeze(2)?;
    let sums = hidden.broadcast_mul(&weights)?.sum(1)?;
    let counts = weights.sum(1)?.maximum(1e-9)?;
    sums.broadcast_div(&counts)
}

/// Rows scaled to unit length, as sentence-transformers' `Normalize` module does.
pub fn l2_normalize(embeddings: &Tensor) -> candle_core::Result<Tensor> {
    let norms = embeddings.sqr()?.sum_keepdim(1)?.sqrt()?.maximum(1e-12)?;
    embeddings.broadcast_div(&norms)
}
