"""text_augment: each operation's statistics (rates, lengths, padding), determinism, synonyms."""

from __future__ import annotations

import math

import pytest
import torch

from tunelab.methods.augment_text import TextAugment, TokenSpec, augment_tokens, synonym_table
from tunelab.wordnet import read_synonyms_file, wordnet_dir, wordnet_synonyms

V, B, L = 500, 400, 40
SPECIAL = torch.zeros(V, dtype=torch.bool)
SPECIAL[:4] = True  # [PAD]=0, [UNK]=1, [CLS]=2, [SEP]=3
WORDS = torch.arange(4, V)


def batch(seed: int = 0, cls_sep: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded documents of 10-30 distinct words (so every move is visible), and their lengths."""
    g = torch.Generator().manual_seed(seed)
    n = torch.randint(10, 31, (B,), generator=g)
    ids = torch.zeros(B, L, dtype=torch.long)
    for i in range(B):
        words = WORDS[torch.randperm(len(WORDS), generator=g)[: n[i]]]
        row = torch.cat([torch.tensor([2]), words, torch.tensor([3])]) if cls_sep else words
        ids[i, : len(row)] = row
    return ids, n


def spec(cls_sep: bool = False, table=None, counts=None) -> TokenSpec:
    return TokenSpec(0, SPECIAL, 2 if cls_sep else None, 3 if cls_sep else None, table, counts, WORDS)


def lengths(ids: torch.Tensor) -> torch.Tensor:
    return (ids != 0).sum(1)


def right_padded(ids: torch.Tensor) -> bool:
    n = lengths(ids)
    return bool(((torch.arange(ids.shape[1]) < n[:, None]) == (ids != 0)).all())


def within_binomial(k: int, n: int, p: float) -> bool:
    return abs(k - n * p) <= 4 * math.sqrt(n * p * (1 - p))  # ~4 standard deviations


def run(ids, s, seed=0, **rates):
    return augment_tokens(ids, s, generator=torch.Generator().manual_seed(seed), **rates)


def test_every_rate_zero_changes_nothing():
    ids, _ = batch()
    assert torch.equal(run(ids, spec()), ids)


def test_replace_changes_the_expected_fraction_of_words_and_keeps_lengths():
    ids, n = batch()
    out = run(ids, spec(), replace=0.2)
    changed = int((out != ids).sum())
    # A draw of the replacing word from the vocabulary equals the old one with chance 1/496.
    assert within_binomial(changed, int(n.sum()), 0.2 * (1 - 1 / len(WORDS)))
    assert torch.equal(lengths(out), n) and right_padded(out)


def test_delete_drops_the_expected_fraction_and_shortens_documents():
    ids, n = batch()
    out = run(ids, spec(), delete=0.3)
    removed = int((n - lengths(out)).sum())
    assert within_binomial(removed, int(n.sum()), 0.3) and right_padded(out)
    for i in range(20):  # the survivors keep their order
        kept = out[i, : lengths(out)[i]].tolist()
        original = ids[i, : n[i]].tolist()
        assert kept == [t for t in original if t in set(kept)]
    one = run(torch.tensor([[7, 8, 0, 0]]), spec(), delete=0.999)
    assert lengths(one).item() == 1  # a document keeps one word


def test_insert_adds_the_expected_number_of_words():
    ids, n = batch()
    out = run(ids, spec(), insert=0.1)
    added = int((lengths(out) - n).sum())
    assert within_binomial(added, int(n.sum()), 0.1) and right_padded(out)
    for i in range(20):  # the original words are still there, in order
        row = out[i, : lengths(out)[i]].tolist()
        it = iter(row)
        assert all(t in it for t in ids[i, : n[i]].tolist())


def test_swap_moves_the_picked_words_and_keeps_the_multiset():
    ids, n = batch()
    out = run(ids, spec(), swap=0.2)
    moved = int((out != ids).sum())
    # Every picked word moves when a document has two or more picked; with one picked, it stays.
    assert abs(moved - 0.2 * int(n.sum())) <= 4 * math.sqrt(int(n.sum()) * 0.2) + B * 0.1
    assert all(sorted(out[i].tolist()) == sorted(ids[i].tolist()) for i in range(B))


def test_crop_keeps_a_contiguous_window_of_the_right_length():
    ids, n = batch()
    out = run(ids, spec(), crop=0.25)
    assert torch.equal(lengths(out), (n.float() * 0.75).round().long()) and right_padded(out)
    for i in range(20):
        window, original = out[i, : lengths(out)[i]].tolist(), ids[i, : n[i]].tolist()
        start = original.index(window[0])
        assert original[start : start + len(window)] == window


def test_cls_and_sep_stay_around_the_document_and_are_never_picked():
    ids, _ = batch(cls_sep=True)
    out = run(ids, spec(cls_sep=True), replace=0.3, insert=0.3, swap=0.3, delete=0.3, crop=0.2)
    assert (out[:, 0] == 2).all() and right_padded(out)
    last = lengths(out) - 1
    assert (out[torch.arange(B), last] == 3).all()
    assert ((out == 2).sum(1) == 1).all() and ((out == 3).sum(1) == 1).all()


def test_same_seed_same_output_other_seed_differs():
    ids, _ = batch()
    rates = {"replace": 0.1, "insert": 0.1, "swap": 0.1, "delete": 0.1, "crop": 0.1}
    assert torch.equal(run(ids, spec(), 3, **rates), run(ids, spec(), 3, **rates))
    assert not torch.equal(run(ids, spec(), 3, **rates), run(ids, spec(), 4, **rates))


def test_synonyms_map_to_token_ids_once_and_replace_only_with_them(tmp_path):
    vocab = ["[PAD]", "[UNK]", "film", "movie", "picture", "cat"]
    special = torch.tensor([True, True, False, False, False, False])
    f = tmp_path / "syn.txt"
    f.write_text("film movie picture cinema\n")
    table, counts = synonym_table(vocab, read_synonyms_file(f), special)
    assert counts.tolist() == [0, 0, 2, 0, 0, 0] and table[2].tolist() == [3, 4]
    s = TokenSpec(0, special, table=table, counts=counts)
    ids = torch.tensor([[2, 5, 2, 5, 2, 0]] * 200)
    out = augment_tokens(ids, s, replace=0.5, generator=torch.Generator().manual_seed(0))
    assert set(out[:, [0, 2, 4]].flatten().tolist()) == {2, 3, 4}  # film, movie, picture
    assert (out[:, [1, 3]] == 5).all()  # "cat" has no synonym: left as it is


@pytest.mark.skipif(wordnet_dir() is None, reason="WordNet is not installed (apt-get install wordnet-base)")
def test_wordnet_synonyms_come_from_debians_files():
    syn = wordnet_synonyms(["film", "profit", "xyzzy"])
    assert {"movie", "picture"} <= set(syn["film"]) and "xyzzy" not in syn
    assert all("_" not in w for w in syn["film"])


def test_the_method_reports_its_synonyms_and_keeps_its_generator_state(text_csv):
    import tunelab

    recipe = {
        "data": {"name": "text_csv", "path": str(text_csv)},
        "preprocess": {"max_length": 24},
        "model": {"name": "embedding_bag", "embed_dim": 8},
        "train": {"epochs": 2, "efficiency": False},
        "methods": [{"name": "text_augment", "synonyms": "vocabulary", "crop": 0.1}],
    }
    a = tunelab.fit(recipe, save=False)
    b = tunelab.fit(recipe, save=False)
    assert a.val == b.val and [h["train"] for h in a.history] == [h["train"] for h in b.history]
    assert "random words of the training vocabulary" in a.info["text_augment"]["synonyms"]
    m = TextAugment()
    m.generator.manual_seed(9)
    state = m.state_dict()
    first = torch.rand(3, generator=m.generator)
    m.load_state_dict(state)
    assert torch.equal(torch.rand(3, generator=m.generator), first)


def test_augmentation_runs_on_training_batches_only(text_csv):
    import tunelab

    seen = []

    class Spy(tunelab.Method):
        name = "spy"

        def batch(self, state, x, y):
            seen.append(x.clone())
            return x, y

    recipe = {
        "data": {"name": "text_csv", "path": str(text_csv)},
        "preprocess": {"max_length": 24},
        "model": {"name": "embedding_bag", "embed_dim": 8},
        "train": {"epochs": 1, "efficiency": False, "batch_size": 1000},
        "methods": [{"name": "text_augment", "synonyms": "vocabulary", "delete": 0.5}],
    }
    r = tunelab.fit(recipe, save=False, methods=[Spy()])
    data = tunelab.data.load_data(r.recipe.data, r.recipe.preprocess)
    assert len(seen) == 1 and not torch.equal(seen[0].sort(0).values, data.x_train.sort(0).values)
    # Evaluation reads the clean splits: the final val figure is the model's on the unaugmented val.
    out = r.model.eval()(data.x_val)
    assert r.val["accuracy"] == pytest.approx(float((out.argmax(1) == data.y_val).float().mean()))


def test_a_recipe_where_it_would_do_nothing_or_see_no_tokens_is_refused(text_csv):
    from tunelab.errors import RecipeError
    from tunelab.recipe import load_recipe

    zero = {"name": "text_augment", "insert": 0, "delete": 0, "swap": 0, "replace": 0}
    with pytest.raises(RecipeError, match="every rate is 0"):
        load_recipe({"methods": [zero]})
    import tunelab

    with pytest.raises(RecipeError, match="works on text"):
        tunelab.fit(
            {"data": {"name": "iris"}, "methods": ["text_augment"], "train": {"epochs": 1}}, save=False
        )
