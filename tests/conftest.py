"""A table as users bring it, shared by the data, train, predict and command tests."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

# A suite started in the background by a non-interactive shell (`make test &`, `nohup ... &`)
# inherits SIGINT ignored, and so would every process the tests start: the tests that send Ctrl-C
# to a run would see it finish instead (exit 0, not 130). A handler in this process is reset to
# the default in its children at exec, where Python installs KeyboardInterrupt again.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One torch thread for the test, restored after: the suite's models and tensors are small, and
    on a shared machine intra-op threads bring stalls, not speed. Folders and modules that train
    take it in an autouse ``_one_thread`` fixture."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def write_mixed_csv(path: Path, n: int = 240, seed: int = 0) -> Path:
    """A CSV with an id column, text categories with missing cells, numbers with missing cells,
    a constant column, an exact duplicate row and two rows without a target. The label follows
    the colour and the first number, so a small MLP learns it well."""
    rng = np.random.default_rng(seed)
    lines = ["id,colour,size,x1,x2,site,label"]
    for i in range(n):
        colour = ["red", "green", "blue"][int(rng.integers(0, 3))]
        x1 = float(rng.normal(0, 1))
        size = ["S", "M", "L"][int(rng.integers(0, 3))]
        x2 = float(rng.normal(5, 2))
        label = "yes" if (colour == "red") != (x1 > 0.3) else "no"
        cells = [f"r{i:04d}", colour, size, f"{x1:.4f}", f"{x2:.4f}", "lab-1", label]
        if i % 9 == 4:
            cells[1] = ""  # a missing colour
        if i % 7 == 3:
            cells[3] = "NA"  # a missing number
        lines.append(",".join(cells))
    lines.append(lines[2])  # an exact copy of a row
    lines.append(f"r{n + 1:04d},red,S,0.1,5.0,lab-1,")  # rows without a target
    lines.append(f"r{n + 2:04d},blue,M,0.2,4.0,lab-1,NA")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="session")
def mixed_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_mixed_csv(tmp_path_factory.mktemp("mixed") / "customers.csv")


# --- text: a tiny corpus a model learns in a few epochs, and a tiny random BERT ---------------------

TOPICS = {
    "food": "bread cheese soup apple recipe oven dinner salad butter pasta".split(),
    "sport": "goal match team coach league player score season stadium referee".split(),
    "tech": "software chip laptop network code server phone robot data cloud".split(),
}
COMMON = "the a of and to in is it for on with was this that new".split()


def tiny_corpus(n_per_class: int = 40, seed: int = 0) -> list[tuple[str, str]]:
    """(document, label) pairs: single-line documents of 6-18 words, about half of them words of
    their topic (so a small model learns the label in a few epochs), plus one exact duplicate."""
    rng = np.random.default_rng(seed)
    docs = []
    for label, words in TOPICS.items():
        for _ in range(n_per_class):
            n = int(rng.integers(6, 19))
            picks = [
                str(rng.choice(words)) if rng.random() < 0.5 else str(rng.choice(COMMON)) for _ in range(n)
            ]
            docs.append((" ".join(picks).capitalize() + ".", label))
    docs.append(docs[0])  # an exact duplicate, which dedupe drops before the split
    return docs


def write_text_csv(path: Path, n_per_class: int = 40) -> Path:
    import csv

    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "text", "target"])
        for i, (doc, label) in enumerate(tiny_corpus(n_per_class)):
            w.writerow([f"d{i}", doc, label])
    return path


def write_text_folder(root: Path, n_per_class: int = 40) -> Path:
    for i, (doc, label) in enumerate(tiny_corpus(n_per_class)):
        (root / label).mkdir(parents=True, exist_ok=True)
        (root / label / f"{i:04d}.txt").write_text(doc)
    return root


@pytest.fixture(scope="session")
def text_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_text_csv(tmp_path_factory.mktemp("text") / "topics.csv")


@pytest.fixture(scope="session")
def text_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_text_folder(tmp_path_factory.mktemp("text_folder") / "topics")


def write_tiny_bert(root: Path) -> Path:
    """A BERT of 2 layers, 16 wide, with a WordPiece tokenizer trained on ``tiny_corpus``, saved in
    Hugging Face's layout (config.json, tokenizer.json, model.safetensors), as MiniLM's package
    ships it: the tests' stand-in for the 83 MB model."""
    import torch
    import transformers
    from safetensors.torch import save_file
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok.train_from_iterator(
        [d for d, _ in tiny_corpus()], trainers.WordPieceTrainer(vocab_size=120, special_tokens=specials)
    )
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    root.mkdir(parents=True, exist_ok=True)
    tok.save(str(root / "tokenizer.json"))
    config = transformers.BertConfig(
        vocab_size=tok.get_vocab_size(),
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
    )
    config.save_pretrained(str(root))
    torch.manual_seed(0)
    bert = transformers.BertModel(config, add_pooling_layer=False)
    save_file({k: v.contiguous() for k, v in bert.state_dict().items()}, str(root / "model.safetensors"))
    return root


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("transformers")
    return write_tiny_bert(tmp_path_factory.mktemp("encoder") / "tiny-bert")


@pytest.fixture(autouse=True, scope="session")
def _text_features_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Frozen features are cached under $TUNELAB_CACHE: the tests' own folder, never the user's."""
    import os

    os.environ.setdefault("TUNELAB_CACHE", str(tmp_path_factory.mktemp("cache")))
