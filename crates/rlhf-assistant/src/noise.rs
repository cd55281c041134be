//! Speech-recognition noise, applied when an utterance is sampled.
//!
//! A recogniser's errors are mostly local: a character lost, one heard twice,
//! a word replaced by one that sounds alike; and sometimes the end of a
//! command is cut off. [`AsrNoise`] models these with one rate `r`:
//!
//! - each character is, with probability `r`, corrupted: dropped (30% of
//!   corruptions), repeated (15%), or substituted (55%) by a homophone
//!   (Chinese, from a small built-in table) or a neighbouring key (ASCII
//!   letters, QWERTY); a character with no substitute is dropped instead;
//! - with probability `r / 2` per utterance, a tail of 20–50% of its
//!   characters is cut off, as when the speaker is interrupted.
//!
//! At `r = 0` text passes through unchanged. [`Cuts`] can turn the cut-off
//! tails off or on for every utterance, to measure what they cost apart from
//! the characters' noise.

use rlhf_env::rng::{EnvRng, uniform_f64, uniform_index};

/// Groups of Chinese characters that a recogniser confuses (same or similar
/// pinyin). A character is replaced by another of its group.
const HOMOPHONES: &[&str] = &[
    "灯等登邓",
    "开看凯",
    "关观官",
    "调掉吊",
    "高搞告",
    "低滴底",
    "音因阴",
    "量亮凉",
    "空孔控",
    "温问文",
    "度渡读",
    "窗床创",
    "帘连莲",
    "打大达",
    "电点店",
    "话画化",
    "发法罚",
    "信心新",
    "闹脑",
    "钟中终",
    "导到倒",
    "航行杭",
    "停听亭",
    "车扯",
    "路录鹿",
    "况矿",
    "放房访",
    "歌哥个",
    "曲去区",
    "暂站赞",
    "首手守",
    "天添田",
    "气汽起",
    "时是十",
    "间见件",
    "搜艘",
    "索所锁",
    "翻番帆",
    "译意义",
    "播拨波",
    "消小销",
    "息西希",
    "明名鸣",
    "暗按岸",
    "吵炒超",
    "声生升",
    "下夏吓",
    "些写鞋",
    "闭必毕",
    "热惹",
];

/// QWERTY rows; a letter's neighbours are the keys left and right of it.
const KEY_ROWS: [&str; 3] = ["qwertyuiop", "asdfghjkl", "zxcvbnm"];

/// The share of corruptions that drop a character, and that repeat one; the rest substitute.
const DROP_SHARE: f64 = 0.30;
const REPEAT_SHARE: f64 = 0.15;

/// Which utterances lose their tail.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cuts {
    /// With probability `rate / 2`, as a recogniser does.
    #[default]
    Sometimes,
    /// None: the characters' noise alone.
    Never,
    /// Every one of at least two characters.
    Always,
}

impl std::str::FromStr for Cuts {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "sometimes" => Ok(Self::Sometimes),
            "never" => Ok(Self::Never),
            "always" => Ok(Self::Always),
            other => Err(format!("`{other}` is not one of sometimes, never, always")),
        }
    }
}

/// Character-level recogniser noise at a configurable rate.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AsrNoise {
    /// Probability that a character is corrupted (and, halved, that the
    /// utterance's tail is cut off); in `[0, 1]`.
    pub rate: f64,
    /// Which utterances lose their tail (when `rate > 0`).
    #[serde(default)]
    pub cuts: Cuts,
}

impl AsrNoise {
    /// Noise at `rate`, clamped into `[0, 1]` (NaN counts as 0).
    pub fn new(rate: f64) -> Self {
        Self { rate: if rate.is_nan() { 0.0 } else { rate.clamp(0.0, 1.0) }, cuts: Cuts::Sometimes }
    }

    /// The same noise, cutting tails as `cuts` says.
    pub fn with_cuts(self, cuts: Cuts) -> Self {
        Self { cuts, ..self }
    }

    /// Each of `texts` as heard, one after another from `seed`'s draws.
    pub fn hear_all<'a>(&self, texts: impl IntoIterator<Item = &'a str>, seed: u64) -> Vec<String> {
        let mut rng = rlhf_env::rng::seeded_rng(seed);
        let mut heard = String::new();
        texts
            .into_iter()
            .map(|text| {
                self.apply(text, &mut rng, &mut heard);
                heard.clone()
            })
            .collect()
    }

    /// `text` as a noisy recogniser might return it, into `out`.
    pub fn apply(&self, text: &str, rng: &mut EnvRng, out: &mut String) {
        out.clear();
        if self.rate <= 0.0 {
            out.push_str(text);
            return;
        }
        let chars = text.chars().count();
        // Drawn whatever `cuts` says: from one state, an utterance left whole
        // meets the same character noise under every setting.
        let drawn = uniform_f64(rng, 0.0, 1.0);
        let cut = match self.cuts {
            Cuts::Sometimes => drawn < self.rate / 2.0,
            Cuts::Never => false,
            Cuts::Always => true,
        };
        let kept = if cut && chars >= 2 {
            let cut = uniform_f64(rng, 0.2, 0.5);
            chars - ((chars as f64 * cut).round() as usize).clamp(1, chars - 1)
        } else {
            chars
        };
        for c in text.chars().take(kept) {
            if uniform_f64(rng, 0.0, 1.0) >= self.rate {
                out.push(c);
                continue;
            }
            let op = uniform_f64(rng, 0.0, 1.0);
            if op < DROP_SHARE {
                // Dropped.
            } else if op < DROP_SHARE + REPEAT_SHARE {
                out.push(c);
                out.push(c);
            } else if let Some(sub) = substitute(c, rng) {
                out.push(sub);
            }
        }
    }
}

/// A character that sounds or types like `c`, if the tables know one.
fn substitute(c: char, rng: &mut EnvRng) -> Option<char> {
    if let Some(group) = HOMOPHONES.iter().find(|g| g.contains(c)) {
        let others = group.chars().filter(|&o| o != c);
        return others.clone().nth(uniform_index(rng, others.count()));
    }
    let lower = c.to_ascii_lowercase();
    let row = KEY_ROWS.iter().find(|row| row.contains(lower))?.as_bytes();
    let i = row.iter().position(|&b| char::from(b) == lower)?;
    let neighbours = [i.checked_sub(1), (i + 1 < row.len()).then_some(i + 1)];
    let neighbours = neighbours.iter().flatten();
    let pick = char::from(row[*neighbours.clone().nth(uniform_index(rng, neighbours.count()))?]);
    Some(if c.is_ascii_uppercase() { pick.to_ascii_uppercase() } else { pick })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rlhf_env::rng::seeded_rng;

    #[test]
    fn zero_rate_is_the_identity() {
        let mut out = String::new();
        AsrNoise::new(0.0).apply("打开客厅的灯 please", &mut seeded_rng(0), &mut out);
        assert_eq!(out, "打开客厅的灯 please");
    }

    #[test]
    fn homophone_groups_hold_distinct_characters_and_no_character_twice() {
        let mut seen = std::collections::HashSet::new();
        for group in HOMOPHONES {
            assert!(group.chars().count() >= 2, "{group}");
            for c in group.chars() {
                assert!(seen.insert(c), "{c} appears in two groups");
            }
        }
    }

    #[test]
    fn substitutes_are_homophones_or_neighbouring_keys() {
        let mut rng = seeded_rng(3);
        for _ in 0..50 {
            assert!("等登邓".contains(substitute('灯', &mut rng).unwrap()));
            assert!("ry".contains(substitute('t', &mut rng).unwrap()));
            assert!("W".contains(substitute('Q', &mut rng).unwrap()));
        }
        assert_eq!(substitute('的', &mut rng), None);
        assert_eq!(substitute('1', &mut rng), None);
    }

    #[test]
    fn the_mean_length_matches_the_noise_model() {
        // Ten-letter utterances at r = 0.1. Per character the expected output
        // length is (1 - r) + r·(2·repeat + substitute) = 0.9 + 0.1·0.85; the
        // cut-off (probability r/2) keeps 10 - round(10·u), u ~ U[0.2, 0.5],
        // i.e. 5..=8 characters, 6.5 on average.
        let mut out = String::new();
        let mut rng = seeded_rng(9);
        let n = 40_000;
        let mut total = 0usize;
        for _ in 0..n {
            AsrNoise::new(0.1).apply("qwertyuiop", &mut rng, &mut out);
            total += out.chars().count();
        }
        let per_char = 0.9 + 0.1 * (2.0 * REPEAT_SHARE + (1.0 - DROP_SHARE - REPEAT_SHARE));
        let kept = 0.95 * 10.0 + 0.05 * 6.5;
        let expected = kept * per_char;
        let mean = total as f64 / n as f64;
        assert!((mean - expected).abs() < 0.02 * expected, "mean length {mean}, expected {expected}");
    }

    #[test]
    fn cuts_never_and_always_set_the_mean_length_and_keep_the_characters_noise() {
        // The same ten letters as above: without cuts 10·per_char on average,
        // always cut 6.5·per_char. Utterances that `sometimes` left whole meet
        // the same character noise under `never`.
        let per_char = 0.9 + 0.1 * (2.0 * REPEAT_SHARE + (1.0 - DROP_SHARE - REPEAT_SHARE));
        let n = 40_000;
        for (cuts, kept) in [(Cuts::Never, 10.0), (Cuts::Always, 6.5)] {
            let (mut out, mut rng) = (String::new(), seeded_rng(9));
            let noise = AsrNoise::new(0.1).with_cuts(cuts);
            let total: usize = (0..n)
                .map(|_| {
                    noise.apply("qwertyuiop", &mut rng, &mut out);
                    out.chars().count()
                })
                .sum();
            let (mean, expected) = (total as f64 / n as f64, kept * per_char);
            assert!((mean - expected).abs() < 0.02 * expected, "{cuts:?}: mean length {mean}, expected {expected}");
        }
        // From the same state, `sometimes` and `never` hear alike unless the
        // former cut the tail: about r/2 = 5% of utterances.
        let (mut sometimes, mut never) = (String::new(), String::new());
        let differ = (0..2_000u64)
            .filter(|&seed| {
                AsrNoise::new(0.1).apply("turn the volume up", &mut seeded_rng(seed), &mut sometimes);
                AsrNoise::new(0.1).with_cuts(Cuts::Never).apply(
                    "turn the volume up",
                    &mut seeded_rng(seed),
                    &mut never,
                );
                sometimes != never
            })
            .count();
        assert!((60..=140).contains(&differ), "{differ} of 2,000 differ; about 100 expected");
    }

    #[test]
    fn cuts_parse_from_their_names() {
        assert_eq!("never".parse::<Cuts>(), Ok(Cuts::Never));
        assert_eq!("always".parse::<Cuts>(), Ok(Cuts::Always));
        assert_eq!("sometimes".parse::<Cuts>(), Ok(Cuts::Sometimes));
        assert!("often".parse::<Cuts>().unwrap_err().contains("often"));
    }

    #[test]
    fn any_text_and_rate_are_handled() {
        let mut out = String::new();
        let mut rng = seeded_rng(1);
        for rate in [0.0, 0.3, 1.0, f64::NAN, -2.0, 7.0] {
            let noise = AsrNoise::new(rate);
            assert!((0.0..=1.0).contains(&noise.rate), "{rate} → {}", noise.rate);
            for text in ["", "灯", "😀🎉 ok", "\u{0}\u{FFFF}"] {
                noise.apply(text, &mut rng, &mut out);
                // Each character becomes at most two.
                assert!(out.chars().count() <= 2 * text.chars().count(), "{text:?} → {out:?}");
            }
        }
    }
}
