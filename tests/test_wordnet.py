"""Synonyms: a user's file, and WordNet read from Debian's files with nltk."""

from __future__ import annotations

import pytest

from tunelab.errors import DataError
from tunelab.wordnet import LEXNAMES, read_synonyms_file, wordnet_dir, wordnet_synonyms


def test_a_synonyms_file_with_comments_commas_and_case(tmp_path):
    p = tmp_path / "s.txt"
    p.write_text("# words\nFilm movie, Picture\n\nprofit gain # money\nfilm cinema\n")
    assert read_synonyms_file(p) == {"film": ["movie", "picture", "cinema"], "profit": ["gain"]}


def test_a_bad_synonyms_file_is_named_with_its_line(tmp_path):
    p = tmp_path / "s.txt"
    p.write_text("film movie\nlonely\n")
    with pytest.raises(DataError, match=r"s\.txt:2: 'lonely' has no synonyms"):
        read_synonyms_file(p)
    with pytest.raises(DataError, match="not found"):
        read_synonyms_file(tmp_path / "missing.txt")


def test_lexnames_are_wordnet_30s_45_files():
    assert len(LEXNAMES) == 45 and LEXNAMES[3] == "noun.Tops" and LEXNAMES[-1] == "adj.ppl"


def test_without_wordnet_the_error_says_how_to_install_it(monkeypatch, tmp_path):
    import tunelab.wordnet as wn

    monkeypatch.setenv("TUNELAB_WORDNET", str(tmp_path))
    wn._reader.cache_clear()
    try:
        with pytest.raises(DataError, match="apt-get install wordnet-base"):
            wordnet_synonyms(["film"])
    finally:
        wn._reader.cache_clear()


@pytest.mark.skipif(wordnet_dir() is None, reason="WordNet is not installed (apt-get install wordnet-base)")
def test_wordnet_gives_single_word_synonyms_only():
    syn = wordnet_synonyms(["good", "car", "42"])
    assert "car" in syn and "auto" in syn["car"] and "42" not in syn
    assert all(w.isalpha() and w != "good" for w in syn["good"])
