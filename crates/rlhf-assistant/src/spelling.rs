//! Misheard words put back before an utterance is featurised.
//!
//! A recogniser's (or a typist's) slips turn "volume" into "vokume" or
//! "volme", and a sentence encoder trained on clean text splits such a word
//! into pieces it rarely saw. [`Lexicon`] holds the words of the training
//! phrasings, counted, and reads an unknown word as the known one a few
//! edits away (deletions, insertions, substitutions and swaps of adjacent
//! letters: one edit for words of up to five letters, two for longer ones;
//! the most frequent on a tie), or as two known words run together (a lost
//! space).
//!
//! A word the training phrasings never said may still be a real word
//! ("convert" is one edit from "connect"). So a correction is a noisy-channel
//! decision: it is made only when a language model's prior for the known
//! word beats its prior for the heard one by more than the edits cost,
//! [`EDIT_COST`] nats each (about the log-odds of a given slip at the noise
//! rates the assistant is trained for). The prior is the sentence encoder's
//! own tokenizer (SentencePiece's unigram model): it knows which strings are
//! words in the languages the encoder read. Chinese text passes through
//! unchanged: a misheard character is another real character.
//!
//! Candidates are found through deletions (the *symmetric delete* idea): two
//! words within `d` edits share a string reached from each by at most `d`
//! deletions, so a lookup hashes a few strings instead of comparing the
//! heard word with every known one.

use std::borrow::Cow;
use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// Words shorter than this are left alone: at one edit, most short strings
/// are near several words.
const MIN_CORRECTED_LEN: usize = 3;
/// Words longer than this may be two edits from the word meant.
const ONE_EDIT_MAX_LEN: usize = 5;
/// What one edit costs a correction, in nats of the prior: a correction is
/// made when `log p(known) − log p(heard) ≥ EDIT_COST · edits`. About
/// `−ln 0.05`, the odds of one particular slip (a character corrupted with
/// probability 0.1–0.2, in one of a handful of ways).
pub const EDIT_COST: f32 = 3.0;

/// The words a model was trained on, with how often each was said, and the
/// index that finds those near an unknown word.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Lexicon {
    words: Vec<String>,
    counts: Vec<u32>,
    ids: HashMap<String, u32>,
    /// Every string at most two deletions from a word (and the word
    /// itself), to the words it came from.
    deletions: HashMap<String, Vec<u32>>,
}

/// A [`Lexicon`] as saved: its words and their counts, in first-seen order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LexiconWords(pub Vec<(String, u32)>);

/// What a heard word is read as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Correction {
    /// Known word `id`, `edits` away.
    Word { id: u32, edits: usize },
    /// Two known words that lost the space between them (one edit).
    Split(u32, u32),
}

impl Lexicon {
    /// The words of `texts` (runs of ASCII letters, digits and apostrophes,
    /// lower-cased), counted.
    pub fn from_texts<'a>(texts: impl IntoIterator<Item = &'a str>) -> Self {
        let mut counted: Vec<(String, u32)> = Vec::new();
        let mut ids: HashMap<String, usize> = HashMap::new();
        for text in texts {
            for word in words(text) {
                let word = word.to_ascii_lowercase();
                match ids.get(&word) {
                    Some(&id) => counted[id].1 += 1,
                    None => {
                        ids.insert(word.clone(), counted.len());
                        counted.push((word, 1));
                    }
                }
            }
        }
        Self::from_words(LexiconWords(counted))
    }

    /// The lexicon of saved words (a repeated word keeps its first count).
    pub fn from_words(saved: LexiconWords) -> Self {
        let mut lexicon = Self::default();
        for (word, count) in saved.0 {
            let id = lexicon.words.len() as u32;
            if lexicon.ids.contains_key(&word) {
                continue;
            }
            lexicon.ids.insert(word.clone(), id);
            for deleted in deletions_within(&word, 2) {
                lexicon.deletions.entry(deleted).or_default().push(id);
            }
            lexicon.words.push(word);
            lexicon.counts.push(count);
        }
        lexicon
    }

    /// The words and counts, to save.
    pub fn to_words(&self) -> LexiconWords {
        LexiconWords(self.words.iter().cloned().zip(self.counts.iter().copied()).collect())
    }

    /// How many words it knows.
    pub fn len(&self) -> usize {
        self.words.len()
    }

    /// Whether it knows no word.
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// `text` with each misheard word replaced (see the module's doc),
    /// `prior` giving a string's log-probability; everything else, spacing,
    /// case and punctuation included, as it was. Borrowed (nothing copied)
    /// when no word changes, as with most of what is said.
    pub fn correct<'a>(&self, text: &'a str, prior: impl Fn(&str) -> f32) -> Cow<'a, str> {
        // Filled from the first correction on: text up to `copied` is in it.
        let (mut out, mut copied) = (None::<String>, 0);
        let mut at = 0;
        while let Some(start) = text[at..].find(is_word_char).map(|s| at + s) {
            let end = text[start..].find(|c: char| !is_word_char(c)).map_or(text.len(), |e| start + e);
            let word = &text[start..end];
            let lower = if word.bytes().any(|b| b.is_ascii_uppercase()) {
                Cow::Owned(word.to_ascii_lowercase())
            } else {
                Cow::Borrowed(word)
            };
            if let Some(correction) = self.correction(&lower, &prior) {
                let out = out.get_or_insert_with(|| String::with_capacity(text.len() + 8));
                out.push_str(&text[copied..start]);
                match correction {
                    Correction::Word { id, .. } => out.push_str(&self.words[id as usize]),
                    Correction::Split(left, right) => {
                        out.push_str(&self.words[left as usize]);
                        out.push(' ');
                        out.push_str(&self.words[right as usize]);
                    }
                }
                copied = end;
            }
            at = end;
        }
        match out {
            None => Cow::Borrowed(text),
            Some(mut out) => {
                out.push_str(&text[copied..]);
                Cow::Owned(out)
            }
        }
    }

    /// What `word` (lower-case) should be read as, if not itself.
    fn correction(&self, word: &str, prior: &impl Fn(&str) -> f32) -> Option<Correction> {
        if word.len() < MIN_CORRECTED_LEN || self.ids.contains_key(word) || word.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let found = self
            .nearest(word, 1)
            .or_else(|| self.split(word))
            .or_else(|| if word.len() > ONE_EDIT_MAX_LEN { self.nearest(word, 2) } else { None })?;
        let (meant, edits) = match found {
            Correction::Word { id, edits } => (self.words[id as usize].clone(), edits),
            Correction::Split(l, r) => (format!("{} {}", self.words[l as usize], self.words[r as usize]), 1),
        };
        (prior(&meant) - prior(word) >= EDIT_COST * edits as f32).then_some(found)
    }

    /// The known word within `edits` of `word` (at least [`MIN_CORRECTED_LEN`]
    /// letters): the most frequent, then the first seen.
    fn nearest(&self, word: &str, edits: usize) -> Option<Correction> {
        let mut best: Option<(u32, u32)> = None; // (count, id)
        for deleted in deletions_within(word, edits) {
            for &id in self.deletions.get(&deleted).into_iter().flatten() {
                let candidate = &self.words[id as usize];
                if candidate.len() < MIN_CORRECTED_LEN || edit_distance(word, candidate) > edits {
                    continue;
                }
                let count = self.counts[id as usize];
                if best.is_none_or(|(c, i)| count > c || (count == c && id < i)) {
                    best = Some((count, id));
                }
            }
        }
        best.map(|(_, id)| Correction::Word { id, edits })
    }

    /// Two known words run together, the pair whose rarer word is the most
    /// frequent (then the shorter first word).
    fn split(&self, word: &str) -> Option<Correction> {
        (1..word.len())
            .filter_map(|i| Some((*self.ids.get(&word[..i])?, *self.ids.get(&word[i..])?)))
            .max_by_key(|&(l, r)| (self.counts[l as usize].min(self.counts[r as usize]), std::cmp::Reverse(l)))
            .map(|(l, r)| Correction::Split(l, r))
    }
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '\''
}

fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !is_word_char(c)).filter(|w| !w.is_empty())
}

/// `word` and every string it gives with up to `edits` characters deleted.
fn deletions_within(word: &str, edits: usize) -> Vec<String> {
    let mut all = vec![word.to_owned()];
    let mut frontier = vec![word.to_owned()];
    for _ in 0..edits {
        let mut next: Vec<String> = Vec::new();
        for w in &frontier {
            for (i, _) in w.char_indices() {
                let mut shorter = w.clone();
                shorter.remove(i);
                if !all.contains(&shorter) && !next.contains(&shorter) {
                    next.push(shorter);
                }
            }
        }
        all.extend(next.iter().cloned());
        frontier = next;
    }
    all
}

/// Edits from `a` to `b`: deletions, insertions, substitutions and swaps of
/// two adjacent characters (the optimal-string-alignment distance).
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut rows = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in rows.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in rows[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (rows[i - 1][j] + 1).min(rows[i][j - 1] + 1).min(rows[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = d;
        }
    }
    rows[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A prior under which the lexicon's words are far likelier than any
    /// other string: every correction found is made.
    fn known_first(lexicon: &Lexicon) -> impl Fn(&str) -> f32 + '_ {
        |text| if text.split(' ').all(|w| lexicon.ids.contains_key(w)) { 0.0 } else { -100.0 }
    }

    fn corrected(lexicon: &Lexicon, text: &str, prior: impl Fn(&str) -> f32) -> String {
        lexicon.correct(text, prior).into_owned()
    }

    #[test]
    fn edit_distance_matches_hand_counted_values() {
        assert_eq!(edit_distance("turn", "turn"), 0);
        assert_eq!(edit_distance("tirn", "turn"), 1);
        assert_eq!(edit_distance("trn", "turn"), 1);
        assert_eq!(edit_distance("tuurn", "turn"), 1);
        assert_eq!(edit_distance("utrn", "turn"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
    }

    #[test]
    fn misheard_words_become_known_ones() {
        let lexicon = Lexicon::from_texts(["turn on the light", "turn the volume up", "the lights please"]);
        let fixed = |text| corrected(&lexicon, text, known_first(&lexicon));
        assert_eq!(fixed("tirn on the lihgt"), "turn on the light");
        assert_eq!(fixed("Turn the volumr up!"), "Turn the volume up!");
        assert_eq!(fixed("turn thevolume up"), "turn the volume up");
        assert_eq!(fixed("tuen the vlume up"), "turn the volume up");
        // Two edits only for words of six letters or more; short unknown words stay.
        assert_eq!(fixed("tx the vlumee up"), "tx the volume up");
        assert_eq!(fixed("the vlumr up"), "the vlumr up");
        // Chinese, numbers and far-off words pass through.
        assert_eq!(fixed("打开灯 at 7 pm, xyzzy"), "打开灯 at 7 pm, xyzzy");
    }

    #[test]
    fn a_likely_word_is_not_corrected_into_a_known_one() {
        let lexicon = Lexicon::from_texts(["connect the phone"]);
        // "convert" is as likely as "connect": no correction; "connwct" is 5 nats less likely than one edit's cost.
        let prior = |w: &str| match w {
            "connect" | "convert" => -8.0,
            "connwct" => -8.0 - EDIT_COST - 2.0,
            _ => -20.0,
        };
        assert_eq!(corrected(&lexicon, "convert the phone", prior), "convert the phone");
        assert_eq!(corrected(&lexicon, "connwct the phone", prior), "connect the phone");
        let barely = |w: &str| if w == "connwct" { -8.0 - EDIT_COST + 0.5 } else { prior(w) };
        assert_eq!(corrected(&lexicon, "connwct the phone", barely), "connwct the phone");
    }

    #[test]
    fn ties_go_to_the_more_frequent_word() {
        let lexicon = Lexicon::from_texts(["cat", "bat bat"]);
        assert_eq!(corrected(&lexicon, "hat", known_first(&lexicon)), "bat");
    }

    #[test]
    fn saved_words_give_the_same_lexicon() {
        let lexicon = Lexicon::from_texts(["turn on the light", "turn it up"]);
        let words = lexicon.to_words();
        assert_eq!(words.0[0], ("turn".to_owned(), 2));
        let again = Lexicon::from_words(serde_json::from_str(&serde_json::to_string(&words).unwrap()).unwrap());
        assert_eq!(again, lexicon);
        assert_eq!(corrected(&again, "tirn it up", known_first(&again)), "turn it up");
    }

    proptest! {
        /// Known words are never changed, and a known word with one letter
        /// dropped or doubled (at five letters or more, where one edit is
        /// unambiguous here) is put back.
        #[test]
        fn known_words_stay_and_one_slip_is_undone(pick in 0usize..6, at in 0usize..5, double in any::<bool>()) {
            let known = ["volume", "lights", "curtains", "temperature", "weather", "alarm"];
            let lexicon = Lexicon::from_texts(known);
            let word = known[pick];
            prop_assert_eq!(corrected(&lexicon, word, known_first(&lexicon)), word);
            let mut heard: String = word.to_owned();
            let c = heard.remove(at);
            if double {
                heard.insert(at, c);
                heard.insert(at, c);
            }
            prop_assert_eq!(corrected(&lexicon, &heard, known_first(&lexicon)), word);
        }
    }
}
