from __future__ import annotations

import numpy as np

from tunelab.study.auto.near_text import JACCARD, near_pairs


def docs(*texts: str) -> np.ndarray:
    out = np.empty(len(texts), dtype=object)
    out[:] = texts
    return out


def test_an_edited_copy_is_near_and_a_document_on_the_same_topic_is_not():
    base = "the bank raised its interest rate by half a point on tuesday after strong figures"
    edited = base.replace("tuesday", "wednesday")  # 1 word of 16: 2 of 14 shingles differ -> J = 0.75
    retyped = base.upper() + "!"  # same words, case and punctuation changed -> J = 1
    other = "the bank kept its interest rate on hold on tuesday after weak figures from abroad"
    pairs = near_pairs(docs(base, edited, retyped, other), np.zeros(4, int))
    assert pairs == [(0, 2)]  # 0.75 < JACCARD: the one-word edit of a short text is not a copy
    assert JACCARD == 0.8


def test_a_near_copy_with_another_label_and_an_exact_copy_are_not_counted():
    base = "a long article about the match and the goal that won the cup for the home side"
    assert near_pairs(docs(base, base + "."), np.array([0, 1])) == []  # labels differ
    assert near_pairs(docs(base, base), np.array([0, 0])) == []  # exact: the exact count's


def test_documents_shorter_than_a_shingle_compare_by_their_words():
    assert near_pairs(docs("Hello world", "hello, world!", "goodbye"), np.zeros(3, int)) == [(0, 1)]


def test_blocks_find_pairs_across_block_edges(monkeypatch):
    import tunelab.study.auto.near_text as nt

    monkeypatch.setattr(nt, "_BLOCK", 2)
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(200)]
    texts = [" ".join(rng.choice(words, 12)) for _ in range(5)]
    texts.append(texts[0].upper())
    assert nt.near_pairs(docs(*texts), np.zeros(6, int)) == [(0, 5)]
