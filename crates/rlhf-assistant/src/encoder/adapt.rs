//! Teaching the encoder to read misheard text: its last layer fine-tuned so
//! that a noisy utterance's vector comes close to the vector the frozen
//! encoder gives its clean text.
//!
//! e5 read clean text. A misheard letter splits a word into pieces it rarely
//! saw, and the mean of the last layer's token vectors drifts away from what
//! the clean utterance means. The layers below stay frozen; their output for
//! each training utterance is computed once, and only the last layer (1.8 M
//! weights) learns, with Adam on `1 − cos(student(heard), teacher(clean))`,
//! over pairs of (heard, clean) and (clean, clean), so clean text keeps its
//! vector. No labels are read: the adapted encoder is still a general
//! sentence encoder, only a more tolerant reader.

use std::path::Path;

use burn::module::{AutodiffModule, Module, Param};
use burn::nn::{LayerNorm, LayerNormConfig, Linear};
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::tensor::activation::{gelu, softmax};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{ElementConversion, Tensor, TensorData};
use rayon::prelude::*;
use rlhf_env::rng::{seeded_rng, uniform_index};
use serde::{Deserialize, Serialize};

use super::bert::{DenseWeights, LayerWeights, Matrix, NormWeights, TransformerEncoder};
use super::hub;
use super::{EncoderError, SentenceEncoder, sha256_hex};

/// Settings of the adaptation (`[encoder.adapt]` in the pipeline's config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdaptConfig {
    /// Noisy utterances to adapt on: the pipeline draws them from the
    /// built-in training phrasings, each with its spoken text.
    pub draws: usize,
    /// Passes over the pairs.
    pub epochs: usize,
    /// Adam's step size (small: the layer starts where e5's training left it).
    pub learning_rate: f64,
    /// Pairs per step.
    pub batch_size: usize,
    /// Seed of the pairs' order.
    pub seed: u64,
}

impl Default for AdaptConfig {
    fn default() -> Self {
        Self { draws: 16_384, epochs: 1, learning_rate: 5e-5, batch_size: 64, seed: 0 }
    }
}

impl AdaptConfig {
    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), EncoderError> {
        let bad = |field, reason| Err(EncoderError::Config { field, reason });
        if self.draws == 0 {
            return bad("encoder.adapt.draws", "must be at least 1");
        }
        if self.epochs == 0 {
            return bad("encoder.adapt.epochs", "must be at least 1");
        }
        if !(self.learning_rate > 0.0 && self.learning_rate.is_finite()) {
            return bad("encoder.adapt.learning_rate", "must be positive and finite");
        }
        if self.batch_size == 0 {
            return bad("encoder.adapt.batch_size", "must be at least 1");
        }
        Ok(())
    }
}

/// One post-norm transformer layer in burn, to train.
#[derive(Module, Debug)]
pub struct TrainableLayer<B: Backend> {
    query: Linear<B>,
    key: Linear<B>,
    value: Linear<B>,
    attention_out: Linear<B>,
    attention_norm: LayerNorm<B>,
    feed_in: Linear<B>,
    feed_out: Linear<B>,
    output_norm: LayerNorm<B>,
    heads: usize,
}

fn linear<B: Backend>(
    dense: &DenseWeights,
    d_in: usize,
    d_out: usize,
    device: &B::Device,
) -> Result<Linear<B>, EncoderError> {
    let Matrix::F32(weight) = &dense.weight else {
        return Err(EncoderError::Unsupported("a 4-bit matrix to train (dequantise it first)".into()));
    };
    if weight.len() != d_in * d_out || dense.bias.len() != d_out {
        return Err(EncoderError::Weights(format!("a {d_in} → {d_out} layer with {} weights", weight.len())));
    }
    // PyTorch's `[d_out, d_in]`; burn's `Linear` holds `[d_in, d_out]`.
    let weight = Tensor::<B, 2>::from_data(TensorData::new(weight.clone(), [d_out, d_in]), device).transpose();
    let bias = Tensor::from_data(TensorData::new(dense.bias.clone(), [d_out]), device);
    Ok(Linear { weight: Param::from_tensor(weight), bias: Some(Param::from_tensor(bias)) })
}

fn norm<B: Backend>(weights: &NormWeights, eps: f64, device: &B::Device) -> LayerNorm<B> {
    let dim = weights.scale.len();
    let mut norm = LayerNormConfig::new(dim).with_epsilon(eps).init(device);
    norm.gamma = Param::from_tensor(Tensor::from_data(TensorData::new(weights.scale.clone(), [dim]), device));
    norm.beta = Some(Param::from_tensor(Tensor::from_data(TensorData::new(weights.shift.clone(), [dim]), device)));
    norm
}

fn values<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> Vec<f32> {
    tensor.into_data().convert::<f32>().into_vec().unwrap_or_default()
}

fn dense_of<B: Backend>(linear: &Linear<B>) -> DenseWeights {
    DenseWeights {
        weight: Matrix::F32(values(linear.weight.val().transpose())),
        bias: linear.bias.as_ref().map(|b| values(b.val())).unwrap_or_default(),
    }
}

fn norm_of<B: Backend>(norm: &LayerNorm<B>) -> NormWeights {
    NormWeights {
        scale: values(norm.gamma.val()),
        shift: norm.beta.as_ref().map(|b| values(b.val())).unwrap_or_default(),
    }
}

impl<B: Backend> TrainableLayer<B> {
    /// The layer of `weights` (f32 matrices), with `heads` attention heads.
    pub fn new(
        weights: &LayerWeights,
        heads: usize,
        layer_norm_eps: f64,
        device: &B::Device,
    ) -> Result<Self, EncoderError> {
        let h = weights.attention_norm.scale.len();
        let ff = weights.feed_in.bias.len();
        if heads == 0 || !h.is_multiple_of(heads) {
            return Err(EncoderError::Weights(format!("hidden {h} is not a multiple of heads {heads}")));
        }
        Ok(Self {
            query: linear(&weights.query, h, h, device)?,
            key: linear(&weights.key, h, h, device)?,
            value: linear(&weights.value, h, h, device)?,
            attention_out: linear(&weights.attention_out, h, h, device)?,
            attention_norm: norm(&weights.attention_norm, layer_norm_eps, device),
            feed_in: linear(&weights.feed_in, h, ff, device)?,
            feed_out: linear(&weights.feed_out, ff, h, device)?,
            output_norm: norm(&weights.output_norm, layer_norm_eps, device),
            heads,
        })
    }

    /// The weights, as [`TransformerEncoder::with_layer`] takes them.
    pub fn weights(&self) -> LayerWeights {
        LayerWeights {
            query: dense_of(&self.query),
            key: dense_of(&self.key),
            value: dense_of(&self.value),
            attention_out: dense_of(&self.attention_out),
            attention_norm: norm_of(&self.attention_norm),
            feed_in: dense_of(&self.feed_in),
            feed_out: dense_of(&self.feed_out),
            output_norm: norm_of(&self.output_norm),
        }
    }

    /// Token vectors `x` `[batch, tokens, hidden]` through the layer; `mask`
    /// `[batch, tokens]` is 1 for a token and 0 for padding.
    pub fn forward(&self, x: Tensor<B, 3>, mask: Tensor<B, 2>) -> Tensor<B, 3> {
        let [batch, tokens, hidden] = x.dims();
        let d = hidden / self.heads;
        let by_head = |y: Tensor<B, 3>| y.reshape([batch, tokens, self.heads, d]).swap_dims(1, 2);
        let q = by_head(self.query.forward(x.clone()));
        let k = by_head(self.key.forward(x.clone()));
        let v = by_head(self.value.forward(x.clone()));
        // Padding gets a score far below any real one: e^-1e4 is 0 in f32.
        let padding = (mask - 1.0).mul_scalar(1e4).reshape([batch, 1, 1, tokens]);
        let scores = q.matmul(k.swap_dims(2, 3)).mul_scalar(1.0 / (d as f64).sqrt()) + padding;
        let context = softmax(scores, 3).matmul(v).swap_dims(1, 2).reshape([batch, tokens, hidden]);
        let x = self.attention_norm.forward(x + self.attention_out.forward(context));
        let feed = self.feed_out.forward(gelu(self.feed_in.forward(x.clone())));
        self.output_norm.forward(x + feed)
    }

    /// The sentence vectors: the mean of the layer's token vectors over each
    /// text's tokens, L2-normalised, `[batch, hidden]`.
    pub fn pooled(&self, x: Tensor<B, 3>, mask: Tensor<B, 2>) -> Tensor<B, 2> {
        let [batch, tokens, hidden] = x.dims();
        let mask = mask.reshape([batch, tokens, 1]);
        let y = self.forward(x, mask.clone().reshape([batch, tokens]));
        let mean = (y * mask.clone()).sum_dim(1).reshape([batch, hidden]) / mask.sum_dim(1).reshape([batch, 1]);
        let norm = mean.clone().powf_scalar(2.0).sum_dim(1).sqrt().clamp_min(1e-6);
        mean / norm
    }
}

/// Texts' token vectors, padded into one batch: `[batch, tokens, hidden]` and the mask.
fn batch<B: Backend>(states: &[&[f32]], hidden: usize, device: &B::Device) -> (Tensor<B, 3>, Tensor<B, 2>) {
    let tokens = states.iter().map(|s| s.len() / hidden).max().unwrap_or(1).max(1);
    let mut x = vec![0.0f32; states.len() * tokens * hidden];
    let mut mask = vec![0.0f32; states.len() * tokens];
    for (i, s) in states.iter().enumerate() {
        x[i * tokens * hidden..][..s.len()].copy_from_slice(s);
        mask[i * tokens..][..s.len() / hidden].fill(1.0);
    }
    (
        Tensor::from_data(TensorData::new(x, [states.len(), tokens, hidden]), device),
        Tensor::from_data(TensorData::new(mask, [states.len(), tokens]), device),
    )
}

/// `encoder`'s last layer fine-tuned on `pairs` of (heard, clean) text (see
/// the module docs); `observer(step, loss)` after every step. Returns the
/// layer's new weights, for [`TransformerEncoder::with_layer`].
pub fn adapt_last_layer<B: AutodiffBackend>(
    encoder: &TransformerEncoder,
    pairs: &[(String, String)],
    config: &AdaptConfig,
    device: &B::Device,
    mut observer: impl FnMut(usize, f64),
) -> Result<LayerWeights, EncoderError> {
    config.validate()?;
    let sizes = *encoder.sizes();
    let hidden = sizes.hidden;
    let last = encoder.last_layer()?;
    let below = |text: &String| encoder.token_states(text, last);
    let heard: Vec<Vec<f32>> = pairs.par_iter().map(|(heard, _)| below(heard)).collect::<Result<_, _>>()?;
    let clean: Vec<Vec<f32>> = pairs.par_iter().map(|(_, clean)| below(clean)).collect::<Result<_, _>>()?;
    // What the frozen encoder says the clean text means.
    let teacher: Vec<Vec<f32>> = pairs
        .par_iter()
        .map(|(_, text)| {
            let mut vector = Vec::with_capacity(hidden);
            encoder.encode_into(text, &mut vector).map(|()| vector)
        })
        .collect::<Result<_, _>>()?;
    let weights = encoder.layer_weights(last).ok_or_else(|| EncoderError::Weights("no last layer".into()))?;
    let mut layer = TrainableLayer::<B>::new(&weights, sizes.heads, f64::from(sizes.layer_norm_eps), device)?;
    let mut optimizer = AdamConfig::new().init::<B, TrainableLayer<B>>();
    // Every pair twice: heard and clean, both toward the clean text's vector.
    let examples = 2 * pairs.len();
    let mut order: Vec<usize> = (0..examples).collect();
    let mut rng = seeded_rng(config.seed ^ 0xada9);
    let mut step = 0;
    for _ in 0..config.epochs {
        for i in (1..order.len()).rev() {
            order.swap(i, uniform_index(&mut rng, i + 1));
        }
        for chunk in order.chunks(config.batch_size) {
            let states: Vec<&[f32]> =
                chunk.iter().map(|&i| if i % 2 == 0 { &heard[i / 2][..] } else { &clean[i / 2][..] }).collect();
            let (x, mask) = batch::<B>(&states, hidden, device);
            let target: Vec<f32> = chunk.iter().flat_map(|&i| teacher[i / 2].iter().copied()).collect();
            let target = Tensor::<B, 2>::from_data(TensorData::new(target, [chunk.len(), hidden]), device);
            let loss = (layer.pooled(x, mask) * target).sum_dim(1).neg().add_scalar(1.0).mean();
            let value = loss.clone().into_scalar().elem::<f64>();
            let grads = GradientsParams::from_grads(loss.backward(), &layer);
            layer = optimizer.step(config.learning_rate, layer, grads);
            step += 1;
            observer(step, value);
        }
    }
    Ok(layer.valid().weights())
}

/// Writes layer `l`'s `weights` to a safetensors file at `path` (atomically),
/// under the names a model hub's BERT uses; returns its SHA-256.
pub fn save_layer(path: &Path, l: usize, weights: &LayerWeights) -> Result<String, EncoderError> {
    let bytes = hub::layer_safetensors(l, weights)?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| EncoderError::Write { path: dir.to_owned(), source })?;
    }
    rlhf_env::atomic::write_atomically(path, &bytes)
        .map_err(|source| EncoderError::Write { path: path.to_owned(), source })?;
    Ok(sha256_hex(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_errors_name_the_field() {
        assert!(AdaptConfig::default().validate().is_ok());
        for (bad, field) in [
            (AdaptConfig { draws: 0, ..AdaptConfig::default() }, "encoder.adapt.draws"),
            (AdaptConfig { epochs: 0, ..AdaptConfig::default() }, "encoder.adapt.epochs"),
            (AdaptConfig { learning_rate: f64::NAN, ..AdaptConfig::default() }, "encoder.adapt.learning_rate"),
            (AdaptConfig { batch_size: 0, ..AdaptConfig::default() }, "encoder.adapt.batch_size"),
        ] {
            assert!(matches!(bad.validate(), Err(EncoderError::Config { field: f, .. }) if f == field), "{field}");
        }
    }
}
