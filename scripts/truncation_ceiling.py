#!/usr/bin/env python3
"""How much of a cut-off command any model could still understand.

The recogniser noise (`crates/rlhf-assistant/src/noise.rs`) cuts 20-50% of an
utterance's characters off its end with probability rate/2. When what is left
is also how a phrasing of another intent begins ("turn the volume" before "up"
or "down"), no model can know which was meant; the best it can do among k
intents sharing that beginning is right 1/k of the time (an upper bound that
assumes it guesses among them evenly).

This renders every test phrasing of the built-in corpus with its slots filled,
cuts it as the noise does (without the characters' noise), and reports per
language the share of cut utterances whose remainder begins a phrasing (any
split, any slot value) of another intent, and the bound on their accuracy.
Compare with `cargo xtask eval-intents --noise 0.1 --cuts always`.

    python3 scripts/truncation_ceiling.py [--draws 20] [--seed 0]
"""

import argparse
import collections
import pathlib
import random
import re

DATA = pathlib.Path(__file__).resolve().parent.parent / "crates/rlhf-assistant/data/intents"
# The order of the built-in corpus (corpus.rs, BUILTIN_TEMPLATES): the test
# split is every fifth phrasing of each (intent, language), in this order.
FILES = [
    "smart_home_devices.tsv",
    "smart_home_climate.tsv",
    "phone.tsv",
    "navigation.tsv",
    "media.tsv",
    "info.tsv",
]
TEST_EVERY = 5


def rows(path):
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            yield line.split("\t")


def renderings(template, language, slots):
    """Every way of filling the template's slots."""
    out = [template]
    for name in dict.fromkeys(re.findall(r"\{(\w+)\}", template)):
        out = [o.replace("{" + name + "}", value) for o in out for value in slots[(name, language)]]
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=20, help="cuts drawn per test phrasing")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    slots = collections.defaultdict(list)
    for name, language, value in rows(DATA / "slots.tsv"):
        slots[(name, language)].append(value)
    phrasings, seen = [], collections.Counter()
    for file in FILES:
        for intent, language, template in rows(DATA / file):
            is_test = seen[(intent, language)] % TEST_EVERY == TEST_EVERY - 1
            seen[(intent, language)] += 1
            phrasings.append((intent, language, template, is_test))

    rng = random.Random(args.seed)
    for language in ("zh", "en"):
        # Every beginning of every rendering, with the intents it can start.
        starts = collections.defaultdict(set)
        for intent, lang, template, _ in phrasings:
            if lang == language:
                for text in renderings(template, language, slots):
                    for end in range(1, len(text) + 1):
                        starts[text[:end]].add(intent)
        cut = shared = 0
        bound = 0.0
        for intent, lang, template, is_test in phrasings:
            if lang != language or not is_test:
                continue
            texts = renderings(template, language, slots)
            for _ in range(args.draws):
                text = rng.choice(texts)
                chars = len(text)
                if chars < 2:
                    continue
                dropped = min(max(round(chars * rng.uniform(0.2, 0.5)), 1), chars - 1)
                intents = starts[text[: chars - dropped]]
                cut += 1
                if len(intents) > 1:
                    shared += 1
                bound += 1.0 / len(intents)
        print(
            f"{language}: {cut} cut utterances; the rest begins another intent's phrasing in "
            f"{shared / cut:.3f} of them; accuracy on them at most {bound / cut:.3f}"
        )


if __name__ == "__main__":
    main()
