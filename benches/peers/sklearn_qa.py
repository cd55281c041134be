"""scikit-learn peer of question answering: lexical rankers on exactly the
questions `cargo xtask qa --peer-python PYTHON` asks, side by side.

    python benches/peers/sklearn_qa.py INPUT.json

INPUT.json (written by `cargo xtask qa`): `documents` (one text per entry:
its training phrasings and answers), `train` (`[text, entry]` pairs: the
training phrasings), and `clean` / `noisy` (the test questions as heard, at
noise 0 and 0.1). Prints one JSON line: for each ranker, the top 10 entries
of every clean and noisy question, best first.

Rankers:
- `tfidf_cosine`: TfidfVectorizer over character 1-4-grams within word
  boundaries (sublinear tf), cosine between a question and each document;
- `logistic_regression`: a supervised classifier over the training
  phrasings (same features, C = 10), entries ranked by probability: what a
  bag-of-n-grams model learns from this data.
"""

import json
import sys

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics.pairwise import linear_kernel


def top10(scores):
    return [[int(i) for i in np.argsort(-row, kind="stable")[:10]] for row in scores]


def main():
    data = json.load(open(sys.argv[1], encoding="utf-8"))
    vectorizer = lambda: TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 4), sublinear_tf=True)
    docs = vectorizer().fit(data["documents"])
    doc_matrix = docs.transform(data["documents"])
    texts, labels = zip(*data["train"])
    phrasings = vectorizer().fit(texts)
    classifier = LogisticRegression(C=10, max_iter=5000).fit(phrasings.transform(texts), labels)
    out = {}
    for split in ("clean", "noisy"):
        questions = data[split]
        cosine = linear_kernel(docs.transform(questions), doc_matrix)
        out.setdefault("tfidf_cosine", {})[split] = top10(cosine)
        probabilities = np.zeros((len(questions), len(data["documents"])))
        probabilities[:, classifier.classes_] = classifier.predict_proba(phrasings.transform(questions))
        out.setdefault("logistic_regression", {})[split] = top10(probabilities)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
