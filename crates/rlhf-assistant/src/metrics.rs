//! Classification metrics: accuracy, macro recall and F1, per-intent
//! precision and recall, the confusion matrix, and accuracy per language.

use std::fmt::Write as _;

use serde::Serialize;

use crate::{Language, Utterance};

/// Accuracy over the utterances said in `language` (by
/// [`Language::of_text`] of what was said, before any noise), `predicted`
/// giving each utterance's answer; `None` when none was said in it.
pub fn language_accuracy(utterances: &[Utterance], predicted: &[usize], language: Language) -> Option<f64> {
    let (right, total) = utterances
        .iter()
        .zip(predicted)
        .filter(|(u, _)| Language::of_text(&u.text) == language)
        .fold((0usize, 0usize), |(right, total), (u, &p)| (right + usize::from(p == u.intent), total + 1));
    (total > 0).then(|| right as f64 / total as f64)
}

/// Precision, recall and F1 of one intent.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IntentScore {
    /// The intent's label.
    pub label: String,
    /// Of the utterances predicted as this intent, the share that were it
    /// (0 when it was never predicted).
    pub precision: f64,
    /// Of the utterances of this intent, the share predicted as it.
    pub recall: f64,
    /// Harmonic mean of precision and recall (0 when both are 0).
    pub f1: f64,
    /// Utterances of this intent in the evaluation set.
    pub support: u64,
}

/// How well predictions match labels.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassificationReport {
    /// Share of utterances predicted right.
    pub accuracy: f64,
    /// Mean recall over intents with support (balanced accuracy).
    pub macro_recall: f64,
    /// Mean F1 over intents with support.
    pub macro_f1: f64,
    /// Number of utterances.
    pub total: u64,
    /// Per intent, in label order.
    pub per_intent: Vec<IntentScore>,
    /// `confusion[true][predicted]` counts.
    pub confusion: Vec<Vec<u64>>,
}

impl ClassificationReport {
    /// The report for `(true, predicted)` pairs over `labels`; indices out of
    /// range are ignored by the caller's contract (they cannot be built here).
    pub fn new(labels: &[String], pairs: impl IntoIterator<Item = (usize, usize)>) -> Self {
        let n = labels.len();
        let mut confusion = vec![vec![0u64; n]; n];
        for (truth, predicted) in pairs {
            if truth < n && predicted < n {
                confusion[truth][predicted] += 1;
            }
        }
        let total: u64 = confusion.iter().flatten().sum();
        let correct: u64 = (0..n).map(|i| confusion[i][i]).sum();
        let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        let per_intent: Vec<IntentScore> = (0..n)
            .map(|i| {
                let support: u64 = confusion[i].iter().sum();
                let predicted: u64 = confusion.iter().map(|row| row[i]).sum();
                let precision = ratio(confusion[i][i], predicted);
                let recall = ratio(confusion[i][i], support);
                let f1 = if precision + recall > 0.0 { 2.0 * precision * recall / (precision + recall) } else { 0.0 };
                IntentScore { label: labels[i].clone(), precision, recall, f1, support }
            })
            .collect();
        let present: Vec<&IntentScore> = per_intent.iter().filter(|s| s.support > 0).collect();
        let mean = |f: fn(&IntentScore) -> f64| {
            if present.is_empty() { 0.0 } else { present.iter().map(|s| f(s)).sum::<f64>() / present.len() as f64 }
        };
        Self {
            accuracy: ratio(correct, total),
            macro_recall: mean(|s| s.recall),
            macro_f1: mean(|s| s.f1),
            total,
            per_intent,
            confusion,
        }
    }

    /// The per-intent table as Markdown.
    pub fn table(&self) -> String {
        let mut out = String::from("| intent | precision | recall | F1 | support |\n|---|---:|---:|---:|---:|\n");
        for s in &self.per_intent {
            let _ =
                writeln!(out, "| {} | {:.3} | {:.3} | {:.3} | {} |", s.label, s.precision, s.recall, s.f1, s.support);
        }
        let _ = writeln!(
            out,
            "| **all** | | macro recall {:.3} | macro F1 {:.3} | {} (accuracy {:.3}) |",
            self.macro_recall, self.macro_f1, self.total, self.accuracy
        );
        out
    }

    /// The confusion matrix as text: rows are true intents, columns predicted,
    /// labelled by their index (the legend lists the labels).
    pub fn confusion_text(&self) -> String {
        let n = self.per_intent.len();
        let width = self.confusion.iter().flatten().max().map_or(1, |m| m.to_string().len()).max(n.to_string().len());
        let mut out = format!("{:>w$} |", "t\\p", w = width.max(3));
        for j in 0..n {
            let _ = write!(out, " {j:>width$}");
        }
        out.push('\n');
        for (i, row) in self.confusion.iter().enumerate() {
            let _ = write!(out, "{i:>w$} |", w = width.max(3));
            for v in row {
                let _ = write!(out, " {v:>width$}");
            }
            let _ = writeln!(out, "  {}", self.per_intent[i].label);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("i{i}")).collect()
    }

    #[test]
    fn metrics_match_a_hand_computed_example() {
        // Truth/prediction pairs over three classes:
        //   class 0: 3 utterances, predicted 0, 0, 1
        //   class 1: 2 utterances, predicted 1, 1
        //   class 2: 1 utterance,  predicted 0
        let pairs = [(0, 0), (0, 0), (0, 1), (1, 1), (1, 1), (2, 0)];
        let report = ClassificationReport::new(&labels(3), pairs);
        assert_eq!(report.confusion, vec![vec![2, 1, 0], vec![0, 2, 0], vec![1, 0, 0]]);
        assert!((report.accuracy - 4.0 / 6.0).abs() < 1e-12);
        // Precision: 0 → 2/3, 1 → 2/3, 2 → never predicted: 0.
        // Recall: 0 → 2/3, 1 → 1, 2 → 0.
        let p: Vec<f64> = report.per_intent.iter().map(|s| s.precision).collect();
        let r: Vec<f64> = report.per_intent.iter().map(|s| s.recall).collect();
        assert_eq!(p, vec![2.0 / 3.0, 2.0 / 3.0, 0.0]);
        assert_eq!(r, vec![2.0 / 3.0, 1.0, 0.0]);
        // F1: 2/3, 2·(2/3)·1/(5/3) = 0.8, 0.
        assert!((report.per_intent[1].f1 - 0.8).abs() < 1e-12);
        assert!((report.macro_recall - (2.0 / 3.0 + 1.0) / 3.0).abs() < 1e-12);
        assert!((report.macro_f1 - (2.0 / 3.0 + 0.8) / 3.0).abs() < 1e-12);
        assert!(report.table().contains("| i1 | 0.667 | 1.000 | 0.800 | 2 |"));
        assert!(report.confusion_text().lines().nth(3).unwrap().ends_with("i2"));
    }

    #[test]
    fn accuracy_per_language_counts_what_was_said_in_it() {
        let said = |text: &str, intent| Utterance { text: text.into(), intent };
        let utterances = [said("打开灯", 0), said("turn it up", 1), said("关灯", 2), said("lights off", 2)];
        // Chinese: 打开灯 right, 关灯 wrong; English: both right.
        let predicted = [0, 1, 0, 2];
        assert_eq!(language_accuracy(&utterances, &predicted, Language::Zh), Some(0.5));
        assert_eq!(language_accuracy(&utterances, &predicted, Language::En), Some(1.0));
        assert_eq!(language_accuracy(&utterances[1..2], &predicted[1..2], Language::Zh), None);
    }

    #[test]
    fn classes_without_support_do_not_count_in_macro_means() {
        let report = ClassificationReport::new(&labels(4), [(0, 0), (1, 1)]);
        assert_eq!((report.macro_recall, report.accuracy), (1.0, 1.0));
        let empty = ClassificationReport::new(&labels(2), []);
        assert_eq!((empty.accuracy, empty.macro_f1, empty.total), (0.0, 0.0, 0));
    }
}
