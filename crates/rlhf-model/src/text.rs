//! Text to a fixed-size vector, without a tokenizer model.
//!
//! [`HashedNgrams`] normalises the text (Unicode NFKC, which also folds
//! full-width forms to half-width; lower case; every character that is not a
//! letter, digit or apostrophe becomes a space; runs of spaces collapse), then
//! counts
//!
//! - character n-grams for `n` in `min_n..=max_n` over the normalised text
//!   with a space at each end (so word boundaries count, and Chinese, which
//!   has no spaces, is covered by its character uni-, bi- and trigrams), and
//! - word unigrams: the space-separated tokens that hold no CJK character
//!   (for English and other space-separated scripts).
//!
//! Each feature is hashed (64-bit FNV-1a over a kind tag and its UTF-8 bytes)
//! to a bucket in `0..dim` and a sign (the hash's top bit), the "hashing trick"
//! with signed buckets so collisions cancel on average instead of piling up.
//! The vector is L2-normalised, so utterances of any length are on one scale.
//! Everything is integer and byte arithmetic on the text: the same text gives
//! the same vector on every run and machine. Input beyond
//! [`FeaturizerConfig::max_chars`] characters is ignored.

use std::cell::RefCell;

use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;

use crate::error::ModelError;
use crate::hash::{FNV_OFFSET, fnv1a};

/// Turns text into a fixed-size vector of floats: what text environments
/// observe and text models read.
pub trait TextFeaturizer {
    /// Length of every vector written.
    fn dim(&self) -> usize;

    /// Writes the features of `text` into `out`, replacing its contents with
    /// exactly [`TextFeaturizer::dim`] values, each in `[-1, 1]`.
    fn featurize(&self, text: &str, out: &mut Vec<f32>);
}

/// Configuration of [`HashedNgrams`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FeaturizerConfig {
    /// Number of hash buckets: the vector's length.
    pub dim: usize,
    /// Shortest character n-gram.
    pub min_n: usize,
    /// Longest character n-gram.
    pub max_n: usize,
    /// Whether space-separated words count as features too.
    pub word_unigrams: bool,
    /// Characters of input read at most (after normalisation).
    pub max_chars: usize,
}

impl Default for FeaturizerConfig {
    fn default() -> Self {
        Self { dim: 2048, min_n: 1, max_n: 3, word_unigrams: true, max_chars: 512 }
    }
}

/// A sparse feature vector: bucket indices (ascending, distinct) and their values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SparseFeatures {
    /// Bucket indices, ascending.
    pub indices: Vec<u32>,
    /// The value of each index.
    pub values: Vec<f32>,
}

impl SparseFeatures {
    /// A 64-bit fingerprint of the vector (its indices and the bits of its
    /// values): equal for texts the network cannot tell apart.
    pub fn fingerprint(&self) -> u64 {
        let hash = self.indices.iter().fold(FNV_OFFSET, |h, i| fnv1a(h, &i.to_le_bytes()));
        self.values.iter().fold(hash, |h, v| fnv1a(h, &v.to_bits().to_le_bytes()))
    }
}

/// Hashed character n-grams plus word unigrams (see the module docs).
#[derive(Debug, Clone)]
pub struct HashedNgrams {
    config: FeaturizerConfig,
}

thread_local! {
    /// Per-thread scratch (normalised chars, dense accumulator), reused so a
    /// call allocates nothing once warm, and a featuriser can be shared
    /// between threads (an index serving every request).
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

#[derive(Debug, Clone, Default)]
struct Scratch {
    chars: Vec<char>,
    dense: Vec<f32>,
    touched: Vec<u32>,
    word: String,
}

impl HashedNgrams {
    /// A featuriser; errors name the field out of range.
    pub fn new(config: FeaturizerConfig) -> Result<Self, ModelError> {
        let invalid =
            |field: &'static str, reason: &str| Err(ModelError::InvalidConfig { field, reason: reason.into() });
        if config.dim == 0 || config.dim > 1 << 24 {
            return invalid("dim", "must be in 1..=16777216");
        }
        if config.min_n == 0 || config.min_n > config.max_n || config.max_n > 8 {
            return invalid("min_n/max_n", "need 1 <= min_n <= max_n <= 8");
        }
        if config.max_chars == 0 {
            return invalid("max_chars", "must be at least 1");
        }
        Ok(Self { config })
    }

    /// The configuration.
    pub fn config(&self) -> &FeaturizerConfig {
        &self.config
    }

    /// The features of `text` as a sparse vector (what a first network layer needs).
    pub fn sparse(&self, text: &str, out: &mut SparseFeatures) {
        out.indices.clear();
        out.values.clear();
        self.emit(text, |i, v| {
            out.indices.push(i);
            out.values.push(v);
        });
    }

    /// Accumulates the signed feature counts of `text` and calls `emit(bucket,
    /// value)` for each non-zero bucket, in ascending order, L2-normalised.
    fn emit(&self, text: &str, emit: impl FnMut(u32, f32)) {
        SCRATCH.with_borrow_mut(|scratch| self.emit_with(scratch, text, emit));
    }

    fn emit_with(&self, scratch: &mut Scratch, text: &str, mut emit: impl FnMut(u32, f32)) {
        let Scratch { chars, dense, touched, word } = scratch;
        // Shared by every featuriser of the thread: as long as the largest,
        // and all zeros between calls.
        if dense.len() < self.config.dim {
            dense.resize(self.config.dim, 0.0);
        }
        normalize_into(text, self.config.max_chars, chars);
        self.for_each_feature(chars, word, |hash| {
            let bucket = (hash % self.config.dim as u64) as u32;
            dense[bucket as usize] += if hash >> 63 == 1 { -1.0 } else { 1.0 };
            touched.push(bucket);
        });
        touched.sort_unstable();
        touched.dedup();
        let norm = touched.iter().map(|&i| dense[i as usize].powi(2)).sum::<f32>().sqrt();
        for &i in touched.iter() {
            // Taking the value also leaves the accumulator zeroed for the next call.
            let v = std::mem::take(&mut dense[i as usize]);
            if v != 0.0 {
                emit(i, v / norm);
            }
        }
        touched.clear();
    }

    /// Calls `add` with the hash of every feature of the normalised `chars`.
    fn for_each_feature(&self, chars: &[char], word: &mut String, mut add: impl FnMut(u64)) {
        // Character n-grams over " text ".
        let padded = chars.len() + 2;
        let at = |i: usize| if i == 0 || i == padded - 1 { ' ' } else { chars[i - 1] };
        for n in self.config.min_n..=self.config.max_n {
            for start in 0..padded.saturating_sub(n - 1) {
                if n == 1 && at(start) == ' ' {
                    continue;
                }
                let mut hash = fnv1a(FNV_OFFSET, &[b'c', n as u8]);
                for i in start..start + n {
                    let mut buf = [0u8; 4];
                    hash = fnv1a(hash, at(i).encode_utf8(&mut buf).as_bytes());
                }
                add(hash);
            }
        }
        if self.config.word_unigrams {
            for token in chars.split(|c| *c == ' ').filter(|t| !t.is_empty() && !t.iter().any(|c| is_cjk(*c))) {
                word.clear();
                word.extend(token.iter());
                add(fnv1a(fnv1a(FNV_OFFSET, b"w"), word.as_bytes()));
            }
        }
    }
}

impl TextFeaturizer for HashedNgrams {
    fn dim(&self) -> usize {
        self.config.dim
    }

    fn featurize(&self, text: &str, out: &mut Vec<f32>) {
        out.clear();
        out.resize(self.config.dim, 0.0);
        self.emit(text, |i, v| out[i as usize] = v);
    }
}

/// The normalised text (see the module docs), at most `max_chars` characters, into `out`.
fn normalize_into(text: &str, max_chars: usize, out: &mut Vec<char>) {
    out.clear();
    let mut last_space = true;
    for c in text.nfkc().flat_map(char::to_lowercase) {
        if out.len() >= max_chars {
            break;
        }
        if c.is_alphanumeric() || c == '\'' {
            out.push(c);
            last_space = false;
        } else if !last_space {
            out.push(' ');
            last_space = true;
        }
    }
    if out.last() == Some(&' ') {
        out.pop();
    }
}

/// The normalised form of `text`: NFKC, lower case, separators collapsed to single spaces.
pub fn normalize(text: &str) -> String {
    let mut chars = Vec::new();
    normalize_into(text, usize::MAX, &mut chars);
    chars.into_iter().collect()
}

/// CJK ideographs and kana, scripts written without spaces between words.
pub fn is_cjk(c: char) -> bool {
    matches!(c as u32, 0x3040..=0x30FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2FA1F)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn featurizer() -> HashedNgrams {
        HashedNgrams::new(FeaturizerConfig::default()).unwrap()
    }

    fn dense(text: &str) -> Vec<f32> {
        let mut out = Vec::new();
        featurizer().featurize(text, &mut out);
        out
    }

    #[test]
    fn normalisation_folds_width_case_and_separators() {
        assert_eq!(normalize("ＴＵＲＮ　ｏｎ，the Light!!"), "turn on the light");
        assert_eq!(normalize("  打开，灯。 "), "打开 灯");
        assert_eq!(normalize("I'll  call MOM 😀"), "i'll call mom");
        assert_eq!(normalize(""), "");
    }

    #[test]
    fn full_width_and_half_width_text_featurise_alike() {
        assert_eq!(dense("ｌｉｇｈｔｓ ＯＮ"), dense("lights on"));
        assert_eq!(dense("打开灯！"), dense("打开灯"));
    }

    #[test]
    fn features_count_the_ngrams_computed_by_hand() {
        // "灯" padded is " 灯 ": unigram 灯; bigrams " 灯", "灯 "; trigram " 灯 ".
        // No word unigram (CJK). Four features, distinct buckets (with 2048
        // buckets a collision here would be a one-in-hundreds chance; the
        // assertion states it). Each has |value| 1/2 after L2 normalisation.
        let mut sparse = SparseFeatures::default();
        featurizer().sparse("灯", &mut sparse);
        assert_eq!(sparse.indices.len(), 4, "{sparse:?}");
        assert!(sparse.values.iter().all(|v| (v.abs() - 0.5).abs() < 1e-6));
        // "ab": unigrams a, b; bigrams " a", "ab", "b "; trigrams " ab", "ab ";
        // word "ab": 8 features.
        featurizer().sparse("ab", &mut sparse);
        assert_eq!(sparse.indices.len(), 8);
        assert!(sparse.indices.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn the_same_text_gives_the_same_vector_across_instances_and_calls() {
        let (a, b) = (featurizer(), featurizer());
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for text in ["打开客厅的灯", "turn the volume up a bit", "把 volume 调高"] {
            a.featurize(text, &mut x);
            a.featurize("something else first", &mut y);
            b.featurize(text, &mut y);
            assert_eq!(x, y);
        }
        // Pinned bucket of one feature, so a change of hash is noticed.
        let mut sparse = SparseFeatures::default();
        a.sparse("a", &mut sparse);
        let unigram = fnv1a(fnv1a(FNV_OFFSET, &[b'c', 1]), b"a");
        assert!(sparse.indices.contains(&((unigram % 2048) as u32)));
    }

    #[test]
    fn similar_commands_are_closer_than_unrelated_ones() {
        let cos = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
        let (on, on2, weather) = (dense("打开客厅的灯"), dense("把客厅灯打开"), dense("明天天气怎么样"));
        assert!(cos(&on, &on2) > 0.3 && cos(&on, &weather) < 0.1, "{} {}", cos(&on, &on2), cos(&on, &weather));
    }

    #[test]
    fn bad_configs_are_errors() {
        for config in [
            FeaturizerConfig { dim: 0, ..Default::default() },
            FeaturizerConfig { min_n: 0, ..Default::default() },
            FeaturizerConfig { min_n: 3, max_n: 2, ..Default::default() },
            FeaturizerConfig { max_chars: 0, ..Default::default() },
        ] {
            assert!(HashedNgrams::new(config).is_err(), "{config:?}");
        }
    }

    proptest! {
        #[test]
        fn any_text_gives_a_unit_or_zero_vector_of_the_right_size(text in ".{0,300}") {
            let v = dense(&text);
            prop_assert_eq!(v.len(), 2048);
            let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            prop_assert!(norm == 0.0 || (norm - 1.0).abs() < 1e-4, "norm {}", norm);
            prop_assert!(v.iter().all(|x| x.is_finite() && x.abs() <= 1.0));
        }

        #[test]
        fn long_input_is_cut_at_max_chars(text in "[a-z灯开]{600,900}") {
            let cut: String = text.chars().take(512).collect();
            prop_assert_eq!(dense(&text), dense(&cut));
            prop_assert_eq!(dense(&text).len(), 2048);
        }
    }
}
