//! The knowledge base: question–answer entries, each with phrasings of its
//! question in Chinese and English, split into train and test by phrasing.

use std::path::Path;

use serde::Deserialize;

use crate::corpus::{DatasetError, Language, Split};

/// One entry: an answer and the ways people ask for it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QaEntry {
    /// A stable name (`ac_dehumidify`).
    pub id: String,
    /// Its domain (`smart_home`, `car`, ...; `user` for a user's file).
    pub domain: String,
    /// The answer in Chinese, if any.
    pub answer_zh: Option<String>,
    /// The answer in English, if any.
    pub answer_en: Option<String>,
    /// Phrasings of the question in Chinese, in file order.
    pub questions_zh: Vec<String>,
    /// Phrasings of the question in English, in file order.
    pub questions_en: Vec<String>,
}

impl QaEntry {
    /// The answer in `language`, else in the other one.
    pub fn answer(&self, language: Language) -> &str {
        let (first, second) = match language {
            Language::Zh => (&self.answer_zh, &self.answer_en),
            Language::En => (&self.answer_en, &self.answer_zh),
        };
        first.as_deref().or(second.as_deref()).unwrap_or_default()
    }

    /// The phrasings in `language`.
    pub fn questions(&self, language: Language) -> &[String] {
        match language {
            Language::Zh => &self.questions_zh,
            Language::En => &self.questions_en,
        }
    }
}

/// Which phrasing of the knowledge base a question is: (entry, language, position).
pub type PhrasingId = (usize, Language, usize);

/// A question of the knowledge base: its text, the entry that answers it, its language.
#[derive(Debug, Clone, PartialEq)]
pub struct Question {
    /// What is asked.
    pub text: String,
    /// Index of the entry that answers it.
    pub entry: usize,
    /// Its language.
    pub language: Language,
    /// Its position among the entry's phrasings in that language: with
    /// `entry` and `language`, which phrasing it is.
    pub position: usize,
}

impl Question {
    /// Which phrasing it is.
    pub fn id(&self) -> PhrasingId {
        (self.entry, self.language, self.position)
    }
}

/// A set of entries.
#[derive(Debug, Clone, PartialEq)]
pub struct KnowledgeBase {
    entries: Vec<QaEntry>,
}

/// The built-in files, embedded: the main knowledge base, then the second
/// set for fine-tuning to a new kind of questions.
const BUILTIN: [(&str, &str); 2] = [
    ("data/qa/builtin_home.jsonl", include_str!("../../data/qa/builtin_home.jsonl")),
    ("data/qa/builtin_personal.jsonl", include_str!("../../data/qa/builtin_personal.jsonl")),
];
const CAR_MANUAL: (&str, &str) = ("data/qa/car_manual.jsonl", include_str!("../../data/qa/car_manual.jsonl"));

/// A line of the built-in files.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BuiltinLine {
    id: String,
    domain: String,
    answer: Bilingual<String>,
    questions: Bilingual<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Bilingual<T> {
    en: T,
    zh: T,
}

/// A line of a user's file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserLine {
    id: String,
    question: String,
    answer: String,
    #[serde(default)]
    phrasings: Vec<String>,
}

/// Every fifth phrasing (indices 4, 9, ...) of an (entry, language) is a test phrasing.
fn in_split(index: usize, split: Split) -> bool {
    match split {
        Split::Train => index % 5 != 4,
        Split::Test => index % 5 == 4,
        Split::All => true,
    }
}

impl KnowledgeBase {
    /// Entries as given; ids must be unique and every entry must have an answer and a question.
    pub fn new(entries: Vec<QaEntry>, what: &str) -> Result<Self, DatasetError> {
        let invalid = |reason: String| DatasetError::Invalid { what: what.into(), reason };
        if entries.is_empty() {
            return Err(invalid("no entries".into()));
        }
        let mut seen = std::collections::HashSet::new();
        for entry in &entries {
            if !seen.insert(entry.id.as_str()) {
                return Err(invalid(format!("entry `{}` appears twice", entry.id)));
            }
            if entry.answer_zh.is_none() && entry.answer_en.is_none() {
                return Err(invalid(format!("entry `{}` has no answer", entry.id)));
            }
            if entry.questions_zh.is_empty() && entry.questions_en.is_empty() {
                return Err(invalid(format!("entry `{}` has no question", entry.id)));
            }
        }
        Ok(Self { entries })
    }

    fn parse_builtin(files: &[(&str, &str)], what: &str) -> Result<Self, DatasetError> {
        let mut entries = Vec::new();
        for (file, text) in files {
            for (number, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
                let bad = |reason: String| DatasetError::Line { file: (*file).into(), line: number + 1, reason };
                let parsed: BuiltinLine = serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
                entries.push(QaEntry {
                    id: parsed.id,
                    domain: parsed.domain,
                    answer_zh: Some(parsed.answer.zh),
                    answer_en: Some(parsed.answer.en),
                    questions_zh: parsed.questions.zh,
                    questions_en: parsed.questions.en,
                });
            }
        }
        Self::new(entries, what)
    }

    /// The built-in knowledge base about the assistant's own domains (smart
    /// home, weather and time, phone and alarms, navigation and parking,
    /// media, the assistant's privacy and settings).
    pub fn builtin() -> Result<Self, DatasetError> {
        Self::parse_builtin(&BUILTIN, "the built-in knowledge base")
    }

    /// The second built-in set, a car owner's manual: new kinds of questions to fine-tune to.
    pub fn car_manual() -> Result<Self, DatasetError> {
        Self::parse_builtin(&[CAR_MANUAL], "the built-in car manual")
    }

    /// A user's JSON-lines file: `{"id", "question", "answer", "phrasings"?}`
    /// per line (the question and its phrasings, in Chinese or English, each
    /// placed by its script). A malformed line is an error naming the file and line.
    pub fn from_path(path: &Path) -> Result<Self, DatasetError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| DatasetError::Io { path: path.to_owned(), source })?;
        let file = path.display().to_string();
        let mut entries = Vec::new();
        for (number, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let bad = |reason: String| DatasetError::Line { file: file.clone(), line: number + 1, reason };
            let parsed: UserLine = serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
            if parsed.id.trim().is_empty() || parsed.question.trim().is_empty() || parsed.answer.trim().is_empty() {
                return Err(bad("`id`, `question` and `answer` must not be empty".into()));
            }
            let mut entry = QaEntry {
                id: parsed.id,
                domain: "user".into(),
                answer_zh: None,
                answer_en: None,
                questions_zh: Vec::new(),
                questions_en: Vec::new(),
            };
            match Language::of_text(&parsed.answer) {
                Language::Zh => entry.answer_zh = Some(parsed.answer),
                Language::En => entry.answer_en = Some(parsed.answer),
            }
            for question in std::iter::once(parsed.question).chain(parsed.phrasings) {
                match Language::of_text(&question) {
                    Language::Zh => entry.questions_zh.push(question),
                    Language::En => entry.questions_en.push(question),
                }
            }
            entries.push(entry);
        }
        Self::new(entries, &file)
    }

    /// This knowledge base with `more`'s entries after its own (so its
    /// entries keep their indices); ids must stay unique.
    pub fn extended(&self, more: &KnowledgeBase) -> Result<Self, DatasetError> {
        Self::new(self.entries.iter().chain(&more.entries).cloned().collect(), "the extended knowledge base")
    }

    /// Every text known of each entry, in entry order: its training
    /// phrasings (with their ids) and its answers (without). What retrieval
    /// indexes; test phrasings are never among them.
    pub fn indexed_texts(&self) -> Vec<(usize, &str, Option<PhrasingId>)> {
        let mut out: Vec<(usize, &str, Option<PhrasingId>)> = Vec::new();
        for (index, entry) in self.entries.iter().enumerate() {
            for language in Language::ALL {
                let phrasings =
                    entry.questions(language).iter().enumerate().filter(|(k, _)| in_split(*k, Split::Train));
                out.extend(phrasings.map(|(k, text)| (index, text.as_str(), Some((index, language, k)))));
            }
            out.extend(Language::ALL.map(|l| (index, entry.answer(l), None)));
        }
        out
    }

    /// Each entry's indexed texts ([`KnowledgeBase::indexed_texts`]) as one document, one text per line.
    pub fn documents(&self) -> Vec<String> {
        let mut documents = vec![String::new(); self.len()];
        for (entry, text, _) in self.indexed_texts() {
            if !documents[entry].is_empty() {
                documents[entry].push('\n');
            }
            documents[entry].push_str(text);
        }
        documents
    }

    /// The entries.
    pub fn entries(&self) -> &[QaEntry] {
        &self.entries
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The questions of `split`, entry by entry, Chinese then English.
    pub fn questions(&self, split: Split) -> Vec<Question> {
        let mut out = Vec::new();
        for (index, entry) in self.entries.iter().enumerate() {
            for language in Language::ALL {
                for (k, text) in entry.questions(language).iter().enumerate() {
                    if in_split(k, split) {
                        out.push(Question { text: text.clone(), entry: index, language, position: k });
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_sets_are_as_large_as_promised_and_split_by_phrasing() {
        let kb = KnowledgeBase::builtin().unwrap();
        assert!(kb.len() >= 80, "{} entries", kb.len());
        let car = KnowledgeBase::car_manual().unwrap();
        assert!(car.len() >= 30, "{} entries", car.len());
        for entry in kb.entries().iter().chain(car.entries()) {
            for language in Language::ALL {
                assert!(entry.questions(language).len() >= 6, "{} {language:?}", entry.id);
                assert!(!entry.answer(language).is_empty());
            }
        }
        // Every (entry, language) keeps a test phrasing, and no phrasing is in both halves.
        let train = kb.questions(Split::Train);
        let test = kb.questions(Split::Test);
        assert_eq!(test.len(), kb.len() * 8, "four test phrasings of 20 per entry and language");
        assert_eq!(train.len() + test.len(), kb.questions(Split::All).len());
        let train_texts: std::collections::HashSet<&str> = train.iter().map(|q| q.text.as_str()).collect();
        assert!(test.iter().all(|q| !train_texts.contains(q.text.as_str())));
        // No entry id is shared with the second set: fine-tuning meets new answers.
        assert!(car.entries().iter().all(|c| kb.entries().iter().all(|e| e.id != c.id)));
    }

    #[test]
    fn a_users_file_is_read_and_a_bad_line_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("faq.jsonl");
        std::fs::write(
            &path,
            "{\"id\": \"wifi\", \"question\": \"What is the wifi password?\", \"answer\": \"It is on the router.\", \"phrasings\": [\"wifi密码是多少\"]}\n\n",
        )
        .unwrap();
        let kb = KnowledgeBase::from_path(&path).unwrap();
        assert_eq!(kb.entries()[0].questions_en, ["What is the wifi password?"]);
        assert_eq!(kb.entries()[0].questions_zh, ["wifi密码是多少"]);
        assert_eq!(kb.entries()[0].answer(Language::Zh), "It is on the router.", "the other language stands in");
        std::fs::write(
            &path,
            "{\"id\": \"a\", \"question\": \"q\", \"answer\": \"x\"}\n{\"id\": \"b\", \"question\": 3}\n",
        )
        .unwrap();
        let error = KnowledgeBase::from_path(&path).unwrap_err().to_string();
        assert!(error.contains("faq.jsonl:2:"), "{error}");
    }
}
