//! Intent corpora: the built-in voice-assistant templates and users' own files.
//!
//! The built-in data lives in `data/intents/*.tsv`, embedded at compile time:
//! one template per line, `intent<TAB>language<TAB>template`, where a template
//! may name slots such as `{room}` or `{contact}`; `slots.tsv` lists each
//! slot's values per language. A template is one *phrasing*; slot values are
//! drawn when an utterance is sampled, so one phrasing yields many utterances.
//!
//! **The train/test split is by phrasing.** Within each (intent, language)
//! group, in file order, every fifth template (indices 4, 9, 14, …) belongs to
//! the test split and the others to the train split. A test utterance is
//! therefore a way of saying the command that training never saw; only the
//! slot values (rooms, names, places) are shared between the splits.
//!
//! Users bring their own data as JSON lines (`{"text": ..., "intent": ...}`)
//! or CSV with a `text,intent` header; any label set works. Every malformed
//! line is an error naming the file and the line; nothing is skipped.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use rlhf_env::rng::{EnvRng, uniform_index};

/// The language of a built-in phrasing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    /// Simplified Chinese.
    Zh,
    /// English.
    En,
}

impl Language {
    /// Both languages of the built-in data.
    pub const ALL: [Language; 2] = [Language::Zh, Language::En];

    /// The language a user's text is taken to be in: Chinese when it has a
    /// CJK ideograph, else English (the built-in data's two languages).
    pub fn of_text(text: &str) -> Language {
        let cjk = |c: char| matches!(c, '\u{3400}'..='\u{4DBF}' | '\u{4E00}'..='\u{9FFF}' | '\u{F900}'..='\u{FAFF}');
        if text.chars().any(cjk) { Language::Zh } else { Language::En }
    }

    /// `"zh"` or `"en"`.
    pub fn code(self) -> &'static str {
        match self {
            Language::Zh => "zh",
            Language::En => "en",
        }
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl FromStr for Language {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "zh" => Ok(Language::Zh),
            "en" => Ok(Language::En),
            other => Err(format!("unknown language `{other}` (expected `zh` or `en`)")),
        }
    }
}

/// The five domains of the built-in assistant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Domain {
    /// Lights, volume, air conditioning, temperature, curtains.
    SmartHome,
    /// Calls, messages, alarms.
    Phone,
    /// Routes, parking, traffic.
    Navigation,
    /// Music playback.
    Media,
    /// Weather, time, search, translation.
    Info,
}

impl Domain {
    /// Every domain, in label order.
    pub const ALL: [Domain; 5] = [Domain::SmartHome, Domain::Phone, Domain::Navigation, Domain::Media, Domain::Info];

    /// The snake-case name, e.g. `"smart_home"`.
    pub fn name(self) -> &'static str {
        match self {
            Domain::SmartHome => "smart_home",
            Domain::Phone => "phone",
            Domain::Navigation => "navigation",
            Domain::Media => "media",
            Domain::Info => "info",
        }
    }

    /// The built-in intents of this domain, in label order.
    pub fn intents(self) -> impl Iterator<Item = &'static str> {
        BUILTIN_INTENTS.iter().filter(move |(_, d)| *d == self).map(|(name, _)| *name)
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Domain {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Domain::ALL.into_iter().find(|d| d.name() == s).ok_or_else(|| {
            let known: Vec<_> = Domain::ALL.iter().map(|d| d.name()).collect();
            format!("unknown domain `{s}` (known: {})", known.join(", "))
        })
    }
}

/// The 24 built-in intents and their domains, in label order.
pub const BUILTIN_INTENTS: [(&str, Domain); 24] = [
    ("light_on", Domain::SmartHome),
    ("light_off", Domain::SmartHome),
    ("volume_up", Domain::SmartHome),
    ("volume_down", Domain::SmartHome),
    ("ac_on", Domain::SmartHome),
    ("ac_off", Domain::SmartHome),
    ("temperature_up", Domain::SmartHome),
    ("temperature_down", Domain::SmartHome),
    ("curtain_open", Domain::SmartHome),
    ("curtain_close", Domain::SmartHome),
    ("call_contact", Domain::Phone),
    ("send_message", Domain::Phone),
    ("set_alarm", Domain::Phone),
    ("cancel_alarm", Domain::Phone),
    ("navigate_to", Domain::Navigation),
    ("find_parking", Domain::Navigation),
    ("query_traffic", Domain::Navigation),
    ("play_music", Domain::Media),
    ("pause_music", Domain::Media),
    ("next_track", Domain::Media),
    ("query_weather", Domain::Info),
    ("query_time", Domain::Info),
    ("web_search", Domain::Info),
    ("translate", Domain::Info),
];

/// How the assistant names each built-in intent when it asks which one was
/// meant: (intent, Chinese, English).
const INTENT_DESCRIPTIONS: [(&str, &str, &str); 24] = [
    ("light_on", "开灯", "turn the lights on"),
    ("light_off", "关灯", "turn the lights off"),
    ("volume_up", "调大音量", "turn the volume up"),
    ("volume_down", "调小音量", "turn the volume down"),
    ("ac_on", "开空调", "turn the air conditioning on"),
    ("ac_off", "关空调", "turn the air conditioning off"),
    ("temperature_up", "调高温度", "make it warmer"),
    ("temperature_down", "调低温度", "make it cooler"),
    ("curtain_open", "打开窗帘", "open the curtains"),
    ("curtain_close", "拉上窗帘", "close the curtains"),
    ("call_contact", "打电话", "make a call"),
    ("send_message", "发消息", "send a message"),
    ("set_alarm", "设闹钟", "set an alarm"),
    ("cancel_alarm", "取消闹钟", "cancel an alarm"),
    ("navigate_to", "导航", "get directions"),
    ("find_parking", "找停车位", "find parking"),
    ("query_traffic", "查路况", "check the traffic"),
    ("play_music", "放音乐", "play music"),
    ("pause_music", "暂停音乐", "pause the music"),
    ("next_track", "下一首", "skip to the next song"),
    ("query_weather", "查天气", "check the weather"),
    ("query_time", "查时间", "tell the time"),
    ("web_search", "搜索", "search the web"),
    ("translate", "翻译", "translate something"),
];

/// A built-in intent's name as the assistant says it in `language`
/// (`"关灯"`, `"turn the lights off"`); `None` for other labels.
pub fn describe_intent(label: &str, language: Language) -> Option<&'static str> {
    INTENT_DESCRIPTIONS.iter().find(|(name, _, _)| *name == label).map(|(_, zh, en)| match language {
        Language::Zh => *zh,
        Language::En => *en,
    })
}

/// The embedded template files: (name, contents).
const BUILTIN_TEMPLATES: [(&str, &str); 6] = [
    ("smart_home_devices.tsv", include_str!("../data/intents/smart_home_devices.tsv")),
    ("smart_home_climate.tsv", include_str!("../data/intents/smart_home_climate.tsv")),
    ("phone.tsv", include_str!("../data/intents/phone.tsv")),
    ("navigation.tsv", include_str!("../data/intents/navigation.tsv")),
    ("media.tsv", include_str!("../data/intents/media.tsv")),
    ("info.tsv", include_str!("../data/intents/info.tsv")),
];
const BUILTIN_SLOTS: &str = include_str!("../data/intents/slots.tsv");

/// Every fifth phrasing of an (intent, language) group is a test phrasing.
const TEST_EVERY: usize = 5;

/// Which part of the built-in data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// Four fifths of the phrasings of every intent and language.
    Train,
    /// The remaining fifth: phrasings training never sees.
    Test,
    /// Both.
    All,
}

/// One way of saying an intent: literal text, or a template with slots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phrase {
    /// Index into the corpus's labels.
    pub intent: usize,
    /// The language, for the built-in data.
    pub language: Option<Language>,
    /// The text; `{slot}` placeholders when `templated`.
    pub text: String,
    /// Whether `{slot}` placeholders are filled at sampling time.
    pub templated: bool,
    /// Where the phrase came from, for error messages: `file:line`.
    pub origin: String,
}

/// One labelled utterance.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Utterance {
    /// The words, as a speech recogniser would return them.
    pub text: String,
    /// Index into the corpus's labels.
    pub intent: usize,
}

/// Why a corpus could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DatasetError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// A line that does not parse or names something unknown.
    #[error("{file}:{line}: {reason}")]
    Line {
        /// The file (a path, or the name of an embedded file).
        file: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// A corpus that cannot be used as a whole (no examples, an unknown domain...).
    #[error("{what}: {reason}")]
    Invalid {
        /// The corpus or argument.
        what: String,
        /// What is wrong.
        reason: String,
    },
}

/// Slot values per (slot name, language).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct SlotTable {
    values: BTreeMap<(String, Language), Vec<String>>,
}

impl SlotTable {
    fn parse(file: &str, contents: &str) -> Result<Self, DatasetError> {
        let mut values: BTreeMap<(String, Language), Vec<String>> = BTreeMap::new();
        for (line, fields) in tsv_lines(file, contents, 3)? {
            let language = fields[1].parse().map_err(|reason| line_error(file, line, reason))?;
            values.entry((fields[0].to_owned(), language)).or_default().push(fields[2].to_owned());
        }
        Ok(Self { values })
    }

    fn values(&self, slot: &str, language: Language) -> Option<&[String]> {
        self.values.get(&(slot.to_owned(), language)).map(Vec::as_slice)
    }

    /// The slot names of `template`, each checked to exist for `language`.
    fn check(&self, template: &str, language: Language) -> Result<(), String> {
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            let Some(close) = rest[open..].find('}') else { return Err("a `{` without its `}`".into()) };
            let slot = &rest[open + 1..open + close];
            if self.values(slot, language).is_none_or(<[String]>::is_empty) {
                return Err(format!("unknown slot `{{{slot}}}` for language {language}"));
            }
            rest = &rest[open + close + 1..];
        }
        if rest.contains('}') { Err("a `}` without its `{`".into()) } else { Ok(()) }
    }

    /// `template` with every `{slot}` replaced by a value drawn from `rng`.
    fn fill(&self, template: &str, language: Option<Language>, rng: &mut EnvRng, out: &mut String) {
        out.clear();
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let close = rest[open..].find('}').map_or(rest.len(), |c| open + c);
            let slot = &rest[open + 1..close];
            match language.and_then(|l| self.values(slot, l)) {
                Some(values) if !values.is_empty() => out.push_str(&values[uniform_index(rng, values.len())]),
                // Checked at load time; a literal brace in user text stays as written.
                _ => out.push_str(&rest[open..(close + 1).min(rest.len())]),
            }
            rest = &rest[(close + 1).min(rest.len())..];
        }
        out.push_str(rest);
    }
}

/// `template` with each `{slot}` replaced by a space.
fn without_slots(template: &str) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        out.push(' ');
        rest = rest[open..].find('}').map_or("", |close| &rest[open + close + 1..]);
    }
    out.push_str(rest);
    out
}

fn line_error(file: &str, line: usize, reason: impl Into<String>) -> DatasetError {
    DatasetError::Line { file: file.to_owned(), line, reason: reason.into() }
}

/// The non-comment, non-blank lines of a TSV file with `fields` fields each.
fn tsv_lines<'a>(file: &str, contents: &'a str, fields: usize) -> Result<Vec<(usize, Vec<&'a str>)>, DatasetError> {
    let mut rows = Vec::new();
    for (i, line) in contents.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let parts: Vec<&str> = line.split('\t').collect();
        if parts.len() != fields || parts.iter().any(|p| p.trim().is_empty()) {
            return Err(line_error(file, i + 1, format!("expected {fields} non-empty tab-separated fields")));
        }
        rows.push((i + 1, parts));
    }
    Ok(rows)
}

/// A labelled set of phrasings to sample utterances from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntentCorpus {
    labels: Vec<String>,
    phrases: Vec<Phrase>,
    /// Indices of `phrases` per intent, for class-balanced sampling.
    by_intent: Vec<Vec<usize>>,
    /// The intents that have at least one phrase.
    spoken: Vec<usize>,
    slots: SlotTable,
}

impl IntentCorpus {
    /// The built-in corpus (all 24 intents, both languages), one split of it.
    pub fn builtin(split: Split) -> Result<Self, DatasetError> {
        let slots = SlotTable::parse("slots.tsv", BUILTIN_SLOTS)?;
        let labels: Vec<String> = BUILTIN_INTENTS.iter().map(|(name, _)| (*name).to_owned()).collect();
        let mut phrases = Vec::new();
        let mut group_sizes: BTreeMap<(usize, Language), usize> = BTreeMap::new();
        for (file, contents) in BUILTIN_TEMPLATES {
            for (line, fields) in tsv_lines(file, contents, 3)? {
                let intent = labels
                    .iter()
                    .position(|l| l == fields[0])
                    .ok_or_else(|| line_error(file, line, format!("unknown intent `{}`", fields[0])))?;
                let language: Language = fields[1].parse().map_err(|reason| line_error(file, line, reason))?;
                slots.check(fields[2], language).map_err(|reason| line_error(file, line, reason))?;
                let index = group_sizes.entry((intent, language)).or_default();
                let is_test = *index % TEST_EVERY == TEST_EVERY - 1;
                *index += 1;
                let keep = match split {
                    Split::Train => !is_test,
                    Split::Test => is_test,
                    Split::All => true,
                };
                if keep {
                    phrases.push(Phrase {
                        intent,
                        language: Some(language),
                        text: fields[2].to_owned(),
                        templated: true,
                        origin: format!("{file}:{line}"),
                    });
                }
            }
        }
        Self::new(labels, phrases, slots, "the built-in corpus")
    }

    /// The built-in corpus restricted to the intents of `domains`, relabelled
    /// `0..k` in built-in label order.
    pub fn builtin_domains(split: Split, domains: &[Domain]) -> Result<Self, DatasetError> {
        let labels: Vec<String> =
            BUILTIN_INTENTS.iter().filter(|(_, d)| domains.contains(d)).map(|(n, _)| (*n).to_owned()).collect();
        Self::builtin(split)?.restrict(&labels)
    }

    /// Reads a user's corpus: JSON lines (`.jsonl`, `.json`) with `text` and
    /// `intent` fields, or CSV (`.csv`) with a `text,intent` header. Labels are
    /// those of `labels` when given (an intent outside them is an error at its
    /// line), otherwise the file's own, sorted.
    pub fn from_path(path: &Path, labels: Option<&[String]>) -> Result<Self, DatasetError> {
        let contents =
            std::fs::read_to_string(path).map_err(|source| DatasetError::Io { path: path.to_owned(), source })?;
        let file = path.display().to_string();
        let is_csv = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv"));
        let rows = if is_csv { parse_csv(&file, &contents)? } else { parse_jsonl(&file, &contents)? };
        Self::from_rows(&file, rows, labels)
    }

    /// A corpus from `(line, text, intent)` rows of `file`.
    fn from_rows(
        file: &str,
        rows: Vec<(usize, String, String)>,
        labels: Option<&[String]>,
    ) -> Result<Self, DatasetError> {
        let labels: Vec<String> = match labels {
            Some(labels) => labels.to_vec(),
            None => {
                let mut names: Vec<String> = rows.iter().map(|(_, _, intent)| intent.clone()).collect();
                names.sort();
                names.dedup();
                names
            }
        };
        let mut phrases = Vec::with_capacity(rows.len());
        for (line, text, intent) in rows {
            let index = labels.iter().position(|l| *l == intent).ok_or_else(|| {
                line_error(file, line, format!("intent `{intent}` is not one of the model's {} labels", labels.len()))
            })?;
            phrases.push(Phrase {
                intent: index,
                language: Some(Language::of_text(&text)),
                text,
                templated: false,
                origin: format!("{file}:{line}"),
            });
        }
        Self::new(labels, phrases, SlotTable::default(), file)
    }

    fn new(labels: Vec<String>, phrases: Vec<Phrase>, slots: SlotTable, what: &str) -> Result<Self, DatasetError> {
        if phrases.is_empty() {
            return Err(DatasetError::Invalid { what: what.to_owned(), reason: "no examples".into() });
        }
        let mut by_intent = vec![Vec::new(); labels.len()];
        for (i, phrase) in phrases.iter().enumerate() {
            by_intent[phrase.intent].push(i);
        }
        let spoken = (0..labels.len()).filter(|&i| !by_intent[i].is_empty()).collect();
        Ok(Self { labels, phrases, by_intent, spoken, slots })
    }

    /// The same corpus over the labels `labels` (in that order), keeping only
    /// their phrases. Errors when a label is unknown.
    pub fn restrict(&self, labels: &[String]) -> Result<Self, DatasetError> {
        let mut map = vec![None; self.labels.len()];
        for (new, label) in labels.iter().enumerate() {
            let old = self.label_index(label).ok_or_else(|| DatasetError::Invalid {
                what: "labels".into(),
                reason: format!("`{label}` is not a label of this corpus ({})", self.labels.join(", ")),
            })?;
            map[old] = Some(new);
        }
        let phrases =
            self.phrases.iter().filter_map(|p| map[p.intent].map(|intent| Phrase { intent, ..p.clone() })).collect();
        Self::new(labels.to_vec(), phrases, self.slots.clone(), "the restricted corpus")
    }

    /// The corpus split as the built-in data is, by phrasing: within each
    /// (intent, language) group, in order, every fifth phrase goes to the
    /// test part. Returns (train, test); an error when either is empty.
    pub fn split_by_phrasing(&self) -> Result<(Self, Self), DatasetError> {
        let mut seen: BTreeMap<(usize, Option<Language>), usize> = BTreeMap::new();
        let (mut train, mut test) = (Vec::new(), Vec::new());
        for phrase in &self.phrases {
            let index = seen.entry((phrase.intent, phrase.language)).or_default();
            let part = if *index % TEST_EVERY == TEST_EVERY - 1 { &mut test } else { &mut train };
            part.push(phrase.clone());
            *index += 1;
        }
        let what = |part: &str| format!("the {part} part of the corpus (every fifth phrase of each intent is test)");
        Ok((
            Self::new(self.labels.clone(), train, self.slots.clone(), &what("training"))?,
            Self::new(self.labels.clone(), test, self.slots.clone(), &what("test"))?,
        ))
    }

    /// The same corpus with only the phrases of `language`.
    pub fn language(&self, language: Language) -> Result<Self, DatasetError> {
        let phrases = self.phrases.iter().filter(|p| p.language == Some(language)).cloned().collect();
        Self::new(self.labels.clone(), phrases, self.slots.clone(), &format!("the {language} corpus"))
    }

    /// Those of `labels` this corpus has, in their order.
    pub fn known_labels(&self, labels: &[String]) -> Vec<String> {
        labels.iter().filter(|l| self.label_index(l).is_some()).cloned().collect()
    }

    /// The intent labels; an intent is an index into them.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// The index of `label`.
    pub fn label_index(&self, label: &str) -> Option<usize> {
        self.labels.iter().position(|l| l == label)
    }

    /// Every phrasing.
    pub fn phrases(&self) -> &[Phrase] {
        &self.phrases
    }

    /// What the corpus says, word for word: every phrase (its slots left
    /// out) and every slot value.
    pub fn spoken_texts(&self) -> Vec<String> {
        let phrases = self.phrases.iter().map(|p| if p.templated { without_slots(&p.text) } else { p.text.clone() });
        phrases.chain(self.slots.values.values().flatten().cloned()).collect()
    }

    /// Draws an utterance of `intent` (uniformly over its phrases, slots
    /// filled) into `out`. `false` when the intent has no phrase.
    pub fn sample_text(&self, intent: usize, rng: &mut EnvRng, out: &mut String) -> bool {
        let Some(indices) = self.by_intent.get(intent).filter(|v| !v.is_empty()) else { return false };
        let phrase = &self.phrases[indices[uniform_index(rng, indices.len())]];
        self.render(phrase, rng, out);
        true
    }

    /// Draws an intent uniformly among those with phrases, then an utterance of it.
    pub fn sample(&self, rng: &mut EnvRng, out: &mut String) -> usize {
        let intent = self.spoken[uniform_index(rng, self.spoken.len())];
        self.sample_text(intent, rng, out);
        intent
    }

    /// `phrase` with its slots filled from `rng` (literal phrases unchanged).
    pub fn render(&self, phrase: &Phrase, rng: &mut EnvRng, out: &mut String) {
        if phrase.templated {
            self.slots.fill(&phrase.text, phrase.language, rng, out);
        } else {
            out.clear();
            out.push_str(&phrase.text);
        }
    }

    /// A fixed list of utterances: every phrase rendered `per_phrase` times
    /// (once for literal phrases), slots drawn from `seed`.
    pub fn utterances(&self, per_phrase: usize, seed: u64) -> Vec<Utterance> {
        let mut rng = rlhf_env::rng::seeded_rng(seed);
        let mut out = Vec::new();
        for phrase in &self.phrases {
            let copies = if phrase.templated { per_phrase.max(1) } else { 1 };
            for _ in 0..copies {
                let mut text = String::new();
                self.render(phrase, &mut rng, &mut text);
                out.push(Utterance { text, intent: phrase.intent });
            }
        }
        out
    }
}

fn parse_jsonl(file: &str, contents: &str) -> Result<Vec<(usize, String, String)>, DatasetError> {
    #[derive(serde::Deserialize)]
    struct Row {
        text: String,
        intent: String,
    }
    let mut rows = Vec::new();
    for (i, line) in contents.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let row: Row = serde_json::from_str(line).map_err(|e| line_error(file, i + 1, e.to_string()))?;
        rows.push((i + 1, row.text, check_label(file, i + 1, row.intent)?));
    }
    Ok(rows)
}

fn parse_csv(file: &str, contents: &str) -> Result<Vec<(usize, String, String)>, DatasetError> {
    let mut reader = csv::ReaderBuilder::new().has_headers(true).from_reader(contents.as_bytes());
    let headers = reader.headers().map_err(|e| line_error(file, 1, e.to_string()))?.clone();
    let column = |name: &str| {
        headers
            .iter()
            .position(|h| h.trim() == name)
            .ok_or_else(|| line_error(file, 1, format!("the header has no `{name}` column (expected `text,intent`)")))
    };
    let (text_col, intent_col) = (column("text")?, column("intent")?);
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line() as usize);
            line_error(file, line, e.to_string())
        })?;
        let line = record.position().map_or(0, |p| p.line() as usize);
        if record.len() != headers.len() {
            return Err(line_error(file, line, format!("{} fields, the header has {}", record.len(), headers.len())));
        }
        let text = record.get(text_col).unwrap_or_default().to_owned();
        let intent = record.get(intent_col).unwrap_or_default().trim().to_owned();
        rows.push((line, text, check_label(file, line, intent)?));
    }
    Ok(rows)
}

fn check_label(file: &str, line: usize, intent: String) -> Result<String, DatasetError> {
    if intent.trim().is_empty() { Err(line_error(file, line, "empty `intent`")) } else { Ok(intent) }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use tempfile::TempDir;

    use super::*;

    #[test]
    fn spoken_texts_leave_slots_out_and_list_their_values() {
        assert_eq!(without_slots("turn on the {room} light"), "turn on the   light");
        assert_eq!(without_slots("{device} on"), "  on");
        assert_eq!(without_slots("a {broken"), "a  ");
        let spoken = IntentCorpus::builtin(Split::Train).unwrap().spoken_texts();
        assert!(spoken.iter().all(|t| !t.contains('{')), "no placeholder is left");
        assert!(spoken.iter().any(|t| t == "turn on the light"));
        // A slot value (rooms are slot values, not phrases of their own).
        assert!(spoken.iter().any(|t| t == "living room"));
    }

    #[test]
    fn the_builtin_label_set_is_the_24_intents_in_five_domains() {
        let corpus = IntentCorpus::builtin(Split::All).unwrap();
        let labels: Vec<&str> = corpus.labels().iter().map(String::as_str).collect();
        assert_eq!(labels.len(), 24);
        assert_eq!(&labels[..4], ["light_on", "light_off", "volume_up", "volume_down"]);
        let per_domain: Vec<usize> = Domain::ALL.iter().map(|d| d.intents().count()).collect();
        assert_eq!(per_domain, vec![10, 4, 3, 3, 4]);
        assert_eq!(Domain::Navigation.intents().collect::<Vec<_>>(), ["navigate_to", "find_parking", "query_traffic"]);
    }

    #[test]
    fn every_intent_has_at_least_30_distinct_phrasings_per_language() {
        let corpus = IntentCorpus::builtin(Split::All).unwrap();
        let mut groups: BTreeMap<(usize, Language), BTreeSet<&str>> = BTreeMap::new();
        for phrase in corpus.phrases() {
            let fresh = groups.entry((phrase.intent, phrase.language.unwrap())).or_default().insert(&phrase.text);
            assert!(fresh, "{} repeats `{}`", phrase.origin, phrase.text);
        }
        for intent in 0..24 {
            for language in Language::ALL {
                let n = groups.get(&(intent, language)).map_or(0, BTreeSet::len);
                assert!(n >= 30, "{} in {language}: {n} phrasings", corpus.labels()[intent]);
            }
        }
    }

    #[test]
    fn the_seed_examples_are_in_the_data() {
        let corpus = IntentCorpus::builtin(Split::All).unwrap();
        for (text, intent) in
            [("打开灯", "light_on"), ("关闭灯", "light_off"), ("调高音量", "volume_up"), ("调低音量", "volume_down")]
        {
            let found = corpus.phrases().iter().any(|p| p.text == text && corpus.labels()[p.intent] == intent);
            assert!(found, "{text} → {intent}");
        }
    }

    #[test]
    fn train_and_test_split_the_phrasings_one_in_five_without_overlap() {
        let all = IntentCorpus::builtin(Split::All).unwrap();
        let train = IntentCorpus::builtin(Split::Train).unwrap();
        let test = IntentCorpus::builtin(Split::Test).unwrap();
        let key = |p: &Phrase| (p.intent, p.language, p.text.clone());
        let train_set: BTreeSet<_> = train.phrases().iter().map(key).collect();
        let test_set: BTreeSet<_> = test.phrases().iter().map(key).collect();
        assert!(train_set.is_disjoint(&test_set));
        assert_eq!(train_set.len() + test_set.len(), all.phrases().len());
        // Every (intent, language) group has test phrasings, a fifth of it rounded down.
        let mut sizes: BTreeMap<(usize, Option<Language>), (usize, usize)> = BTreeMap::new();
        for p in all.phrases() {
            sizes.entry((p.intent, p.language)).or_default().0 += 1;
        }
        for p in test.phrases() {
            sizes.entry((p.intent, p.language)).or_default().1 += 1;
        }
        for ((intent, language), (total, tests)) in sizes {
            assert_eq!(tests, total / 5, "intent {intent} {language:?}");
        }
    }

    #[test]
    fn slots_are_filled_from_the_table_of_the_phrase_language() {
        let corpus = IntentCorpus::builtin(Split::All).unwrap();
        let mut rng = rlhf_env::rng::seeded_rng(0);
        let mut out = String::new();
        let rooms_en = corpus.slots.values("room", Language::En).unwrap().to_vec();
        let phrase = Phrase {
            intent: 0,
            language: Some(Language::En),
            text: "lights in the {room} please".into(),
            templated: true,
            origin: "test".into(),
        };
        for _ in 0..20 {
            corpus.render(&phrase, &mut rng, &mut out);
            let room = out.strip_prefix("lights in the ").and_then(|s| s.strip_suffix(" please")).unwrap();
            assert!(rooms_en.iter().any(|r| r == room), "{out}");
        }
        assert!(corpus.utterances(3, 1).iter().all(|u| !u.text.contains('{')));
    }

    #[test]
    fn domains_restrict_and_relabel_in_builtin_order() {
        let corpus = IntentCorpus::builtin_domains(Split::Train, &[Domain::Media, Domain::Phone]).unwrap();
        let labels: Vec<&str> = corpus.labels().iter().map(String::as_str).collect();
        assert_eq!(
            labels,
            ["call_contact", "send_message", "set_alarm", "cancel_alarm", "play_music", "pause_music", "next_track"]
        );
        assert!(corpus.phrases().iter().all(|p| p.intent < 7));
        assert!("robotics".parse::<Domain>().unwrap_err().contains("smart_home"));
    }

    fn write(tmp: &TempDir, name: &str, contents: &str) -> PathBuf {
        let path = tmp.path().join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    #[test]
    fn user_jsonl_and_csv_files_load_with_their_own_labels() {
        let tmp = TempDir::new().unwrap();
        let jsonl = write(
            &tmp,
            "a.jsonl",
            "{\"text\": \"hello there\", \"intent\": \"greet\"}\n\n{\"text\": \"bye\", \"intent\": \"leave\"}\n",
        );
        let corpus = IntentCorpus::from_path(&jsonl, None).unwrap();
        assert_eq!(corpus.labels(), ["greet", "leave"]);
        assert_eq!(
            corpus.utterances(5, 0),
            vec![Utterance { text: "hello there".into(), intent: 0 }, Utterance { text: "bye".into(), intent: 1 }]
        );
        let csv = write(&tmp, "b.csv", "text,intent\n\"well, {hi}\",greet\nbye,leave\n");
        let corpus = IntentCorpus::from_path(&csv, None).unwrap();
        assert_eq!(corpus.utterances(1, 0)[0].text, "well, {hi}", "user text is literal, braces included");
    }

    #[test]
    fn malformed_lines_are_errors_naming_file_and_line() {
        let tmp = TempDir::new().unwrap();
        let cases = [
            ("bad.jsonl", "{\"text\": \"a\", \"intent\": \"x\"}\n{\"text\": \"b\"}\n", 2, "intent"),
            ("bad2.jsonl", "{\"text\": \"a\", \"intent\": \"x\"}\n\nnot json\n", 3, "expected"),
            ("empty.jsonl", "{\"text\": \"a\", \"intent\": \" \"}\n", 1, "empty `intent`"),
            ("bad.csv", "text,intent\na,x\nb,y,z\n", 3, "field"),
            ("header.csv", "utterance,label\na,x\n", 1, "no `text` column"),
        ];
        for (name, contents, line, needle) in cases {
            let path = write(&tmp, name, contents);
            let err = IntentCorpus::from_path(&path, None).unwrap_err();
            let message = err.to_string();
            assert!(matches!(err, DatasetError::Line { line: l, .. } if l == line), "{name}: {message}");
            assert!(message.contains(&path.display().to_string()) && message.contains(needle), "{name}: {message}");
        }
        let path = write(
            &tmp,
            "unknown.jsonl",
            "{\"text\": \"a\", \"intent\": \"x\"}\n{\"text\": \"b\", \"intent\": \"fly\"}\n",
        );
        let labels = vec!["x".to_owned()];
        let err = IntentCorpus::from_path(&path, Some(&labels)).unwrap_err().to_string();
        assert!(err.contains(":2:") && err.contains("`fly`"), "{err}");
        let err = IntentCorpus::from_path(&write(&tmp, "none.jsonl", "\n"), None).unwrap_err();
        assert!(matches!(err, DatasetError::Invalid { .. }), "{err}");
        assert!(matches!(IntentCorpus::from_path(Path::new("/no/such.jsonl"), None), Err(DatasetError::Io { .. })));
    }
}
