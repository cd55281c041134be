"""scikit-learn peer of the intent classifier: the standard bag-of-n-grams
text classifiers on the built-in data and the same split by phrasing, as an
independent measure of what this data allows.

    python benches/peers/sklearn_intents.py [--json] [--domains source|target]

Reads `crates/rlhf-assistant/data/intents/*.tsv` the way `IntentCorpus::builtin`
does: in each (intent, language) group, in file order, every fifth phrasing
(indices 4, 9, 14, ...) is test-only; `{slot}`s are filled from `slots.tsv`.
Each train phrasing is rendered 10 times, each test phrasing 5 times (the
pipeline's `eval_per_phrase`), with seeded slot values. No recogniser noise:
accuracies here are at noise 0 (the noise model is not reimplemented here).

Models: TF-IDF of character 1-3-grams (within word boundaries) plus English words,
then logistic regression (C = 10) or a linear SVM (C = 1). The learning curve
keeps a random fraction of each group's train phrasings (3 draws each) and
reports logistic regression's test accuracy.
"""

import argparse
import collections
import json
import random
import re
import statistics
from pathlib import Path

import sklearn
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_union
from sklearn.svm import LinearSVC

DATA = Path(__file__).resolve().parents[2] / "crates" / "rlhf-assistant" / "data" / "intents"
TEST_EVERY = 5
TRAIN_RENDERS = 10
TEST_RENDERS = 5
# The pipeline's default source and target domains, by file-name prefix.
DOMAINS = {
    "source": ("smart_home", "media", "info"),
    "target": ("phone", "navigation"),
}


def rows(path: Path):
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            yield line.split("\t")


def load(prefixes):
    slots = collections.defaultdict(list)
    for slot, language, value in rows(DATA / "slots.tsv"):
        slots[(slot, language)].append(value)
    groups = collections.defaultdict(list)
    for path in sorted(DATA.glob("*.tsv")):
        if path.name != "slots.tsv" and path.name.startswith(prefixes):
            for intent, language, template in rows(path):
                groups[(intent, language)].append(template)
    return slots, groups


def render(template, language, slots, rng):
    return re.sub(r"\{(\w+)\}", lambda m: rng.choice(slots[(m.group(1), language)]), template)


def features():
    return make_union(
        TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3), sublinear_tf=True),
        # Whole words of Latin script only, as `HashedNgrams` takes words of
        # space-separated scripts (Chinese is covered by the character n-grams).
        TfidfVectorizer(analyzer="word", token_pattern=r"[a-z']+"),
    )


def accuracy(model, train, test):
    vectorizer = features()
    model.fit(vectorizer.fit_transform([t for t, _, _ in train]), [i for _, i, _ in train])
    predicted = model.predict(vectorizer.transform([t for t, _, _ in test]))
    hits = collections.defaultdict(list)
    for (_, intent, language), guess in zip(test, predicted):
        hits[language].append(guess == intent)
        hits["all"].append(guess == intent)
    return {key: sum(v) / len(v) for key, v in hits.items()}


def split(slots, groups, keep_fraction=1.0, draw=0):
    rng, pick = random.Random(0), random.Random(draw)
    train, test = [], []
    for (intent, language), templates in sorted(groups.items()):
        train_indices = [k for k in range(len(templates)) if k % TEST_EVERY != TEST_EVERY - 1]
        pick.shuffle(train_indices)
        kept = set(train_indices[: max(1, round(len(train_indices) * keep_fraction))])
        for k, template in enumerate(templates):
            if k % TEST_EVERY == TEST_EVERY - 1:
                test += [(render(template, language, slots, rng), intent, language) for _ in range(TEST_RENDERS)]
            elif k in kept:
                train += [(render(template, language, slots, rng), intent, language) for _ in range(TRAIN_RENDERS)]
    return train, test


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--domains", choices=sorted(DOMAINS), default="source")
    args = parser.parse_args()
    slots, groups = load(DOMAINS[args.domains])
    train, test = split(slots, groups)
    per_group = statistics.median(sum(1 for k in range(len(t)) if k % TEST_EVERY != TEST_EVERY - 1) for t in groups.values())
    results = {
        "sklearn": sklearn.__version__,
        "domains": args.domains,
        "noise": 0.0,
        "intents": len({intent for intent, _ in groups}),
        "test_utterances": len(test),
        "train_phrasings_per_group": per_group,
        "logistic_regression": accuracy(LogisticRegression(C=10.0, max_iter=5000), train, test),
        "linear_svc": accuracy(LinearSVC(C=1.0), train, test),
        "learning_curve": [],
    }
    for fraction in (0.25, 0.5, 0.75, 1.0):
        draws = [accuracy(LogisticRegression(C=10.0, max_iter=5000), *split(slots, groups, fraction, d))["all"] for d in range(3)]
        results["learning_curve"].append(
            {"train_phrasings_per_group": round(per_group * fraction), "accuracy": statistics.mean(draws)}
        )
    if args.json:
        print(json.dumps(results))
    else:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
