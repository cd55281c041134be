//! Misheard words put back before an utterance is featurised.
//!
//! A recogniser's (or a typist's) slips turn "volume" into "vokume" or
//! "volme", run "could you turn" together into "couldyouturn", and a
//! sentence encoder trained on clean text splits such words into pieces it
//! rarely saw. [`Lexicon`] holds the words of the training phrasings,
//! counted, and which word followed which. It reads an unknown word as
//! known words: one a few edits away (deletions, insertions, substitutions
//! and swaps of adjacent letters: one edit for words of up to five letters,
//! two for longer ones), or several run together (each lost space an edit),
//! each heard exactly or with one slip. Among the readings it picks the
//! likeliest, as a noisy channel does: each edit costs [`EDIT_COST`] nats,
//! and each word its surprisal after the word before it (the pairs of the
//! training phrasings, interpolated with the word's own frequency), from the
//! known word said before to the one said after. So "ext" after "play" is
//! "next", and after "send a" "text".
//!
//! A word the training phrasings never said may still be a real word
//! ("convert" is one edit from "connect"). So a correction is a noisy-channel
//! decision too: it is made only when a language model's prior for the
//! known words beats its prior for the heard one by more than the edits cost,
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
/// At most this many slipped letters in the words of one run-together word.
const MAX_SLIPS: usize = 2;
/// How much a word's probability after the word before it leans on the
/// pairs the training phrasings said (the rest on the word's own frequency).
const PAIR_WEIGHT: f32 = 0.7;
/// What one edit costs a correction, in nats of the prior: a correction is
/// made when `log p(known) − log p(heard) ≥ EDIT_COST · edits`. About
/// `−ln 0.05`, the odds of one particular slip (a character corrupted with
/// probability 0.1–0.2, in one of a handful of ways).
pub const EDIT_COST: f32 = 3.0;

/// The words a model was trained on, with how often each was said and
/// which followed which, and the index that finds those near an unknown word.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Lexicon {
    words: Vec<String>,
    counts: Vec<u32>,
    /// How often word `.1` followed word `.0`.
    pairs: HashMap<(u32, u32), u32>,
    /// The sum of `counts`, and the length of the longest word.
    total: u64,
    longest: usize,
    ids: HashMap<String, u32>,
    /// Every string at most two deletions from a word (and the word
    /// itself), to the words it came from.
    deletions: HashMap<String, Vec<u32>>,
}

/// A [`Lexicon`] as saved: its words and their counts, in first-seen order,
/// and the counted pairs of neighbouring words (`[first, second, count]`,
/// by position in `words`). Models saved before pairs were kept have a bare
/// list of words, which still reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "SavedLexicon")]
pub struct LexiconWords {
    /// Each word and how often it was said.
    pub words: Vec<(String, u32)>,
    /// Neighbouring words and how often they were said so.
    pub pairs: Vec<[u32; 3]>,
}

/// The forms a saved lexicon has had.
#[derive(Deserialize)]
#[serde(untagged)]
enum SavedLexicon {
    WithPairs { words: Vec<(String, u32)>, pairs: Vec<[u32; 3]> },
    Words(Vec<(String, u32)>),
}

impl From<SavedLexicon> for LexiconWords {
    fn from(saved: SavedLexicon) -> Self {
        match saved {
            SavedLexicon::WithPairs { words, pairs } => Self { words, pairs },
            SavedLexicon::Words(words) => Self { words, pairs: Vec::new() },
        }
    }
}

/// What a heard word is read as: known words (more than one when spaces
/// were lost), `edits` away (each lost space one edit).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Correction {
    words: Vec<u32>,
    edits: usize,
}

/// A cell of [`Lexicon::segmentation`]'s table: the cheapest reading of a
/// prefix with a given number of slips.
#[derive(Debug, Clone, Copy)]
struct Cell {
    cost: f32,
    /// Where its last word starts, that word, and the slips before it.
    start: usize,
    word: u32,
    slips_before: usize,
}

impl Lexicon {
    /// The words of `texts` (runs of ASCII letters, digits and apostrophes,
    /// lower-cased), counted, and their neighbouring pairs.
    pub fn from_texts<'a>(texts: impl IntoIterator<Item = &'a str>) -> Self {
        let mut counted: Vec<(String, u32)> = Vec::new();
        let mut ids: HashMap<String, u32> = HashMap::new();
        let mut pairs: HashMap<(u32, u32), u32> = HashMap::new();
        for text in texts {
            let mut before = None;
            for word in words(text) {
                let word = word.to_ascii_lowercase();
                let id = match ids.get(&word) {
                    Some(&id) => {
                        counted[id as usize].1 += 1;
                        id
                    }
                    None => {
                        let id = counted.len() as u32;
                        ids.insert(word.clone(), id);
                        counted.push((word, 1));
                        id
                    }
                };
                if let Some(before) = before {
                    *pairs.entry((before, id)).or_default() += 1;
                }
                before = Some(id);
            }
        }
        let mut pairs: Vec<[u32; 3]> = pairs.into_iter().map(|((a, b), n)| [a, b, n]).collect();
        pairs.sort_unstable();
        Self::from_words(LexiconWords { words: counted, pairs })
    }

    /// The lexicon of saved words (a repeated word keeps its first count;
    /// a pair naming no saved word is skipped).
    pub fn from_words(saved: LexiconWords) -> Self {
        let mut lexicon = Self::default();
        // The id of each saved position (a repeat shares its first's).
        let mut id_of = Vec::with_capacity(saved.words.len());
        for (word, count) in saved.words {
            if let Some(&id) = lexicon.ids.get(&word) {
                id_of.push(id);
                continue;
            }
            let id = lexicon.words.len() as u32;
            id_of.push(id);
            lexicon.ids.insert(word.clone(), id);
            for deleted in deletions_within(&word, 2) {
                lexicon.deletions.entry(deleted).or_default().push(id);
            }
            lexicon.total += u64::from(count);
            lexicon.longest = lexicon.longest.max(word.len());
            lexicon.words.push(word);
            lexicon.counts.push(count);
        }
        for [first, second, count] in saved.pairs {
            if let (Some(&a), Some(&b)) = (id_of.get(first as usize), id_of.get(second as usize)) {
                *lexicon.pairs.entry((a, b)).or_default() += count;
            }
        }
        lexicon
    }

    /// The words, counts and pairs, to save.
    pub fn to_words(&self) -> LexiconWords {
        let mut pairs: Vec<[u32; 3]> = self.pairs.iter().map(|(&(a, b), &n)| [a, b, n]).collect();
        pairs.sort_unstable();
        LexiconWords { words: self.words.iter().cloned().zip(self.counts.iter().copied()).collect(), pairs }
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
        let spans = word_spans(text);
        let lower = |(start, end): (usize, usize)| {
            let word = &text[start..end];
            if word.bytes().any(|b| b.is_ascii_uppercase()) {
                Cow::Owned(word.to_ascii_lowercase())
            } else {
                Cow::Borrowed(word)
            }
        };
        // Filled from the first correction on: text up to `copied` is in it.
        let (mut out, mut copied) = (None::<String>, 0);
        // The word read before the current one, if known, as context.
        let mut before: Option<u32> = None;
        for (i, &(start, end)) in spans.iter().enumerate() {
            let word = lower((start, end));
            let after = spans.get(i + 1).and_then(|&next| self.ids.get(lower(next).as_ref()).copied());
            let Some(correction) = self.correction(&word, before, after, &prior) else {
                before = self.ids.get(word.as_ref()).copied();
                continue;
            };
            let out = out.get_or_insert_with(|| String::with_capacity(text.len() + 8));
            out.push_str(&text[copied..start]);
            for (k, &id) in correction.words.iter().enumerate() {
                if k > 0 {
                    out.push(' ');
                }
                out.push_str(&self.words[id as usize]);
            }
            copied = end;
            before = correction.words.last().copied();
        }
        match out {
            None => Cow::Borrowed(text),
            Some(mut out) => {
                out.push_str(&text[copied..]);
                Cow::Owned(out)
            }
        }
    }

    /// What `word` (lower-case), said between the known words `before` and
    /// `after` (if they are), should be read as, if not itself.
    fn correction(
        &self,
        word: &str,
        before: Option<u32>,
        after: Option<u32>,
        prior: &impl Fn(&str) -> f32,
    ) -> Option<Correction> {
        if word.len() < MIN_CORRECTED_LEN || self.ids.contains_key(word) || word.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let next_cost = |id: u32| after.map_or(0.0, |a| self.surprisal(a, Some(id)));
        let two_edits = (word.len() > ONE_EDIT_MAX_LEN)
            .then(|| {
                self.near(word, 2)
                    .filter(|&(_, edits)| edits == 2)
                    .map(|(id, _)| (2.0 * EDIT_COST + self.surprisal(id, before) + next_cost(id), id))
                    .min_by(|a, b| a.0.total_cmp(&b.0))
            })
            .flatten()
            .map(|(cost, id)| (cost, Correction { words: vec![id], edits: 2 }));
        let (_, found) = [self.segmentation(word, before, after), two_edits]
            .into_iter()
            .flatten()
            .min_by(|a, b| a.0.total_cmp(&b.0))?;
        let meant = found.words.iter().map(|&id| self.words[id as usize].as_str()).collect::<Vec<_>>().join(" ");
        (prior(&meant) - prior(word) >= EDIT_COST * found.edits as f32).then_some(found)
    }

    /// `−ln p(word | before)`: the pairs the training phrasings said,
    /// interpolated with the word's own frequency ([`PAIR_WEIGHT`]).
    fn surprisal(&self, word: u32, before: Option<u32>) -> f32 {
        // Counts of at least one: a saved count of zero makes no infinity.
        let count = |id: u32| self.counts[id as usize].max(1) as f32;
        let alone = count(word) / self.total.max(1) as f32;
        let p = match before {
            Some(b) => {
                let pair = self.pairs.get(&(b, word)).copied().unwrap_or(0) as f32;
                (PAIR_WEIGHT * pair / count(b)).min(PAIR_WEIGHT) + (1.0 - PAIR_WEIGHT) * alone
            }
            None => alone,
        };
        -p.ln()
    }

    /// The likeliest reading of `word` as known words run together, each
    /// heard exactly or (at [`MIN_CORRECTED_LEN`] letters or more) with one
    /// slip, at most [`MAX_SLIPS`] slips in all, with its cost: the edits'
    /// (each lost space one edit) plus each word's surprisal after the one
    /// before it, from the known word `before` to the known word `after`.
    /// One word with one slip is the one-piece case.
    fn segmentation(&self, word: &str, before: Option<u32>, after: Option<u32>) -> Option<(f32, Correction)> {
        let n = word.len();
        let mut best = vec![[None::<Cell>; MAX_SLIPS + 1]; n + 1];
        best[0][0] = Some(Cell { cost: 0.0, start: 0, word: 0, slips_before: 0 });
        let mut readings = Vec::new();
        for end in 1..=n {
            for start in end.saturating_sub(self.longest + 1)..end {
                let piece = &word[start..end];
                readings.clear();
                match self.ids.get(piece) {
                    Some(&id) => readings.push((id, 0)),
                    None if piece.len() >= MIN_CORRECTED_LEN => readings.extend(self.near(piece, 1)),
                    None => {}
                }
                for &(id, slip) in &readings {
                    let space = if start > 0 { EDIT_COST } else { 0.0 };
                    let next = if end == n { after.map_or(0.0, |a| self.surprisal(a, Some(id))) } else { 0.0 };
                    for slips_before in 0..=MAX_SLIPS - slip {
                        let Some(prefix) = best[start][slips_before] else { continue };
                        let context = if start > 0 { Some(prefix.word) } else { before };
                        let cost = prefix.cost + space + EDIT_COST * slip as f32 + self.surprisal(id, context) + next;
                        let cell = &mut best[end][slips_before + slip];
                        if cell.is_none_or(|c| cost < c.cost) {
                            *cell = Some(Cell { cost, start, word: id, slips_before });
                        }
                    }
                }
            }
        }
        let (mut slips, cost) =
            (0..=MAX_SLIPS).filter_map(|s| best[n][s].map(|cell| (s, cell.cost))).min_by(|a, b| a.1.total_cmp(&b.1))?;
        let (mut end, mut words, total_slips) = (n, Vec::new(), slips);
        while end > 0 {
            let cell = best[end][slips]?;
            words.push(cell.word);
            (end, slips) = (cell.start, cell.slips_before);
        }
        words.reverse();
        Some((cost, Correction { edits: total_slips + words.len() - 1, words }))
    }

    /// The known words (of at least [`MIN_CORRECTED_LEN`] letters) within
    /// `edits` of `word`, each once, with how many edits away.
    fn near<'a>(&'a self, word: &'a str, edits: usize) -> impl Iterator<Item = (u32, usize)> + 'a {
        let mut seen = Vec::new();
        deletions_within(word, edits)
            .into_iter()
            .flat_map(|deleted| self.deletions.get(&deleted).into_iter().flatten().copied())
            .filter_map(move |id| {
                let candidate = &self.words[id as usize];
                if seen.contains(&id) || candidate.len() < MIN_CORRECTED_LEN {
                    return None;
                }
                seen.push(id);
                let distance = edit_distance(word, candidate);
                (distance <= edits).then_some((id, distance))
            })
    }
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '\''
}

fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !is_word_char(c)).filter(|w| !w.is_empty())
}

/// The byte range of each word of `text`.
fn word_spans(text: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut at = 0;
    while let Some(start) = text[at..].find(is_word_char).map(|s| at + s) {
        let end = text[start..].find(|c: char| !is_word_char(c)).map_or(text.len(), |e| start + e);
        spans.push((start, end));
        at = end;
    }
    spans
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
    fn run_together_words_are_split_even_with_a_slip() {
        let lexicon = Lexicon::from_texts(["could you turn the volume up", "turn it off"]);
        let fixed = |text| corrected(&lexicon, text, known_first(&lexicon));
        assert_eq!(fixed("couldyouturn the volume up"), "could you turn the volume up");
        // Two lost spaces and a doubled letter: three edits.
        assert_eq!(fixed("couldyouturnn the volume up"), "could you turn the volume up");
        assert_eq!(fixed("turn theevolume up"), "turn the volume up");
    }

    #[test]
    fn the_words_around_choose_among_equally_near_readings() {
        // "ext" is one edit from "next" and from "text"; "tae" from "take" and "the".
        let lexicon = Lexicon::from_texts([
            "play the next song",
            "send a text",
            "send a text",
            "text her",
            "take me home",
            "the song",
            "the light",
        ]);
        let fixed = |text| corrected(&lexicon, text, known_first(&lexicon));
        assert_eq!(fixed("ext"), "text", "alone, the more frequent word");
        assert_eq!(fixed("play the ext song"), "play the next song");
        assert_eq!(fixed("send a ext"), "send a text");
        assert_eq!(fixed("tae"), "the");
        assert_eq!(fixed("tae me home"), "take me home", "the word after decides");
    }

    #[test]
    fn surprisal_interpolates_pairs_with_frequency() {
        // Hand-counted: "a" said 3 times, "b" 2, "c" 1 (6 words); "a b" twice, "b a" once.
        let lexicon = Lexicon::from_texts(["a b a", "a b c"]);
        let id = |w: &str| lexicon.ids[w];
        let close = |got: f32, want: f32| assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        close(lexicon.surprisal(id("b"), None), -(2.0f32 / 6.0).ln());
        close(
            lexicon.surprisal(id("b"), Some(id("a"))),
            -(PAIR_WEIGHT * 2.0 / 3.0 + (1.0 - PAIR_WEIGHT) * 2.0 / 6.0).ln(),
        );
        close(lexicon.surprisal(id("c"), Some(id("a"))), -((1.0 - PAIR_WEIGHT) / 6.0).ln());
    }

    #[test]
    fn a_bare_word_list_saved_by_earlier_models_still_reads() {
        let saved: LexiconWords = serde_json::from_str(r#"[["turn", 2], ["up", 1]]"#).unwrap();
        assert_eq!(saved, LexiconWords { words: vec![("turn".into(), 2), ("up".into(), 1)], pairs: Vec::new() });
        let lexicon = Lexicon::from_words(saved);
        assert_eq!(corrected(&lexicon, "tirn up", known_first(&lexicon)), "turn up");
        // A pair naming a word the list lacks is skipped, not a panic.
        let damaged = LexiconWords { words: vec![("turn".into(), 2)], pairs: vec![[0, 7, 1]] };
        assert!(Lexicon::from_words(damaged).pairs.is_empty());
        // A repeated word shares its first's id, in pairs too; zero counts give finite costs.
        let repeated = LexiconWords {
            words: vec![("turn".into(), 0), ("up".into(), 0), ("turn".into(), 5)],
            pairs: vec![[2, 1, 3]],
        };
        let lexicon = Lexicon::from_words(repeated);
        assert_eq!(lexicon.len(), 2);
        assert_eq!(lexicon.pairs.get(&(0, 1)), Some(&3));
        assert!(lexicon.surprisal(1, Some(0)).is_finite() && lexicon.surprisal(0, None).is_finite());
    }

    #[test]
    fn saved_words_give_the_same_lexicon() {
        let lexicon = Lexicon::from_texts(["turn on the light", "turn it up"]);
        let words = lexicon.to_words();
        assert_eq!(words.words[0], ("turn".to_owned(), 2));
        assert!(words.pairs.contains(&[0, 1, 1]), "\"turn on\" said once: {:?}", words.pairs);
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
