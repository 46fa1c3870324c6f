"""Synonyms for text augmentation: WordNet read offline, or the user's own file.

**WordNet** comes from Debian's ``wordnet-base`` package (the WordNet 3.0 database files in
``/usr/share/wordnet``; ``$TUNELAB_WORDNET`` names another directory), read with ``nltk``'s
WordNet reader. Two things stand between the two as shipped, and are bridged here:

* Debian leaves out ``lexnames`` (the names of WordNet's 45 lexicographer files, lexnames(5)),
  which nltk's reader opens first: the files are copied once into ``tunelab.io.cache_dir()/wordnet``
  with ``lexnames`` written beside them (the table below, from the lexnames(5) manual page);
* nltk only reads corpora from directories it trusts (``nltk.data.path``): that copy is added.

``make test`` installs ``wordnet-base`` as root (as it installs PostgreSQL); without it the tests
that need WordNet skip, saying why.

**A synonyms file**: one word per line followed by its synonyms, separated by spaces, tabs or
commas (``#`` starts a comment)::

    film movie picture
    profit gain earnings
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import warnings
from collections.abc import Iterable
from pathlib import Path

from tunelab.encoders import require
from tunelab.errors import DataError
from tunelab.io import cache_dir

__all__ = ["read_synonyms_file", "wordnet_dir", "wordnet_synonyms"]

# WordNet 3.0's lexicographer files in number order (lexnames(5)); the category is 1 noun,
# 2 verb, 3 adjective, 4 adverb.
LEXNAMES = (
    "adj.all adj.pert adv.all noun.Tops noun.act noun.animal noun.artifact noun.attribute noun.body "
    "noun.cognition noun.communication noun.event noun.feeling noun.food noun.group noun.location "
    "noun.motive noun.object noun.person noun.phenomenon noun.plant noun.possession noun.process "
    "noun.quantity noun.relation noun.shape noun.state noun.substance noun.time verb.body verb.change "
    "verb.cognition verb.communication verb.competition verb.consumption verb.contact verb.creation "
    "verb.emotion verb.motion verb.perception verb.possession verb.social verb.stative verb.weather adj.ppl"
).split()
_CATEGORY = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}
# The database files nltk's reader opens.
_FILES = [f"{kind}.{pos}" for kind in ("data", "index") for pos in ("noun", "verb", "adj", "adv")] + [
    f"{pos}.exc" for pos in ("noun", "verb", "adj", "adv")
]


def wordnet_dir() -> Path | None:
    """The directory of WordNet's database files (``$TUNELAB_WORDNET`` or ``/usr/share/wordnet``),
    or None when it holds none (``apt-get install wordnet-base``)."""
    d = Path(os.environ.get("TUNELAB_WORDNET") or "/usr/share/wordnet")
    return d if (d / "data.noun").is_file() and (d / "index.noun").is_file() else None


def _reader_copy(source: Path) -> Path:
    """A copy of the database files with ``lexnames`` beside them, made once (see the module)."""
    target = cache_dir() / "wordnet"
    if not (target / "lexnames").is_file():
        target.mkdir(parents=True, exist_ok=True)
        for name in _FILES:
            if (source / name).is_file():
                shutil.copyfile(source / name, target / name)
        lines = [f"{i:02d}\t{n}\t{_CATEGORY[n.split('.')[0]]}\n" for i, n in enumerate(LEXNAMES)]
        (target / "lexnames").write_text("".join(lines))  # last: its presence marks a full copy
    return target


@functools.lru_cache(maxsize=1)
def _reader() -> object:
    source = wordnet_dir()
    if source is None:
        raise DataError(
            "WordNet's files are not installed (Debian's wordnet-base in /usr/share/wordnet, or "
            "$TUNELAB_WORDNET): sudo apt-get install wordnet-base, or give a synonyms file"
        )
    require("nltk", "WordNet synonyms")
    import nltk.data
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    class _WordNet30(WordNetCorpusReader):  # type: ignore[misc]
        def map_wn(self, version: str = "wordnet") -> None:
            # These files are WordNet 3.0 itself: nothing to map to 3.0 (nltk would look for its
            # own downloaded copy to build the map).
            return None

    root = _reader_copy(source)
    if str(root) not in nltk.data.path:
        nltk.data.path.append(str(root))  # nltk reads only from the directories listed here
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "multilingual functions are not available": not needed
        return _WordNet30(str(root), None)


def wordnet_synonyms(words: Iterable[str]) -> dict[str, list[str]]:
    """Each word's WordNet synonyms: the lemma names of all its synsets, lower case, single words
    only (no ``_`` compounds), itself excluded, in WordNet's order. Words without any are left out.

    >>> wordnet_synonyms(["film"])["film"][:3]  # doctest: +SKIP
    ['movie', 'picture', 'moving_picture']
    """
    wn = _reader()
    out: dict[str, list[str]] = {}
    for w in words:
        if not w.isalpha():
            continue
        seen: dict[str, None] = {}
        for synset in wn.synsets(w):  # type: ignore[attr-defined]
            for lemma in synset.lemma_names():
                name = lemma.lower()
                if name != w and "_" not in name and name.isalpha():
                    seen[name] = None
        if seen:
            out[w] = list(seen)
    return out


def read_synonyms_file(path: str | Path) -> dict[str, list[str]]:
    """``{word: [synonyms]}`` from a synonyms file (see the module); words are lower-cased.

    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "syn.txt"
    >>> _ = p.write_text("# topics\\nfilm movie, picture\\nProfit gain\\n")
    >>> read_synonyms_file(p)
    {'film': ['movie', 'picture'], 'profit': ['gain']}
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise DataError(f"synonyms file not found: {p}; give a text file of lines 'word synonym synonym ...'")
    out: dict[str, list[str]] = {}
    for number, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        words = [w.lower() for w in re.split(r"[\s,]+", line.split("#", 1)[0].strip()) if w]
        if len(words) == 1:
            raise DataError(f"{p}:{number}: {words[0]!r} has no synonyms; write 'word synonym [synonym ...]'")
        if words:
            out.setdefault(words[0], []).extend(w for w in words[1:] if w != words[0])
    if not out:
        raise DataError(f"{p}: holds no synonyms; write lines 'word synonym [synonym ...]'")
    return out
