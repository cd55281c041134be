//! Lexical baselines to compare the pair model with, side by side on the
//! same questions: BM25 (the `bm25` crate: Okapi BM25 with its English
//! stemmer and stop words) over the same documents the TF-IDF retriever
//! indexes, each entry's training phrasings and answers.
//!
//! The crate's tokenizer splits words; Chinese has no spaces, so runs of
//! CJK characters are cut into character unigrams and bigrams (the usual
//! tokenisation of Chinese for BM25), and everything else goes to the
//! crate's English tokenizer.

use bm25::{DefaultTokenizer, Language as Bm25Language, SearchEngine, SearchEngineBuilder, Tokenizer};

use super::kb::KnowledgeBase;
use rlhf_model::text::is_cjk;

/// The tokenizer of [`Bm25Ranker`]: CJK character unigrams and bigrams,
/// English words stemmed without stop words.
#[derive(Debug)]
pub struct MixedTokenizer {
    english: DefaultTokenizer,
}

impl Default for MixedTokenizer {
    fn default() -> Self {
        Self { english: DefaultTokenizer::new(Bm25Language::English) }
    }
}

impl Tokenizer for MixedTokenizer {
    fn tokenize(&self, input_text: &str) -> Vec<String> {
        let mut tokens = Vec::new();
        let mut latin = String::new();
        let mut run: Vec<char> = Vec::new();
        let flush_run = |run: &mut Vec<char>, tokens: &mut Vec<String>| {
            tokens.extend(run.iter().map(|c| c.to_string()));
            tokens.extend(run.windows(2).map(|w| w.iter().collect::<String>()));
            run.clear();
        };
        for c in input_text.chars() {
            if is_cjk(c) {
                run.push(c);
                latin.push(' ');
            } else {
                flush_run(&mut run, &mut tokens);
                latin.push(c);
            }
        }
        flush_run(&mut run, &mut tokens);
        tokens.extend(self.english.tokenize(&latin));
        tokens
    }
}

/// BM25 over a knowledge base's entries (see the module docs).
pub struct Bm25Ranker {
    engine: SearchEngine<u32, u32, MixedTokenizer>,
}

impl Bm25Ranker {
    /// Indexes `kb`: one document per entry, its training phrasings and answers.
    pub fn new(kb: &KnowledgeBase) -> Self {
        let documents = kb.documents();
        let engine = SearchEngineBuilder::<u32, u32, MixedTokenizer>::with_tokenizer_and_corpus(
            MixedTokenizer::default(),
            documents,
        )
        .build();
        Self { engine }
    }

    /// The `limit` best entries for `text`, best first (entries sharing no
    /// token with it are left out).
    pub fn rank(&self, text: &str, limit: usize) -> Vec<usize> {
        self.engine.search(text, limit).into_iter().map(|r| r.document.id as usize).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chinese_is_cut_into_characters_and_pairs_and_english_is_stemmed() {
        let tokens = MixedTokenizer::default().tokenize("打开灯 for the lights");
        for expected in ["打", "开", "灯", "打开", "开灯", "light"] {
            assert!(tokens.iter().any(|t| t == expected), "{expected} in {tokens:?}");
        }
        assert!(!tokens.iter().any(|t| t == "the"), "stop words go: {tokens:?}");
    }

    #[test]
    fn bm25_ranks_the_entry_sharing_the_rare_words_first() {
        let kb = KnowledgeBase::builtin().unwrap();
        let ranker = Bm25Ranker::new(&kb);
        let first = kb.entries().iter().position(|e| e.id == "phone_bluetooth_pairing").unwrap();
        assert_eq!(ranker.rank("How do I pair my phone over Bluetooth?", 3)[0], first);
        assert!(ranker.rank("xyzzy", 10).is_empty());
    }
}
