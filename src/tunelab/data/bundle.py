"""The two data containers: ``RawData`` (what a loader returns) and ``DataBundle`` (what ``fit`` reads).

A loader returns arrays before any split; ``tunelab.data.make_bundle`` splits them once, by seed,
fits preprocessing on train only and returns a ``DataBundle`` of tensors:

    >>> import numpy as np
    >>> from tunelab.data import RawData, make_bundle
    >>> from tunelab.spec import DataSpec
    >>> rng = np.random.default_rng(0)
    >>> raw = RawData(rng.normal(size=(100, 3)).astype("float32"), np.arange(100) % 2, "classification")
    >>> b = make_bundle(raw, DataSpec())
    >>> b.summary()["sizes"]
    {'train': 64, 'val': 16, 'test': 20}
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from tunelab.data.preprocess import Preprocessing
from tunelab.errors import DataError, did_you_mean
from tunelab.registry import Registry
from tunelab.spec import PreprocessSpec

# Every dataset a recipe can name; each loader module registers its functions here on import.
DATASETS = Registry("dataset")

Task = Literal["classification", "regression"]
SPLITS = ("train", "val", "test")


@dataclass
class RawData:
    """What a dataset loader returns, before splitting.

    ``x``: float32 ``[N, *input_shape]``, or a table's text cells: an object array ``[N, F]`` of
    str (None for a missing cell) whose columns ``feature_names`` names. ``y``: int64 ``[N]`` with
    labels ``0..C-1`` for
    classification; float32 ``[N]`` or ``[N, T]`` for regression. A published test split
    (``x_test``, ``y_test``) is kept as the test split when present.

    ``label_values``: the original label of each class index (a string from a CSV, a number from
    an array), JSON-able; ``class_names`` is its text. ``meta``: what a predictor needs to read new
    raw inputs as this loader read the training data (see ``META_KEYS``).
    """

    x: np.ndarray
    y: np.ndarray
    task: Task
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    class_names: list[str] | None = None
    feature_names: list[str] | None = None
    name: str = ""
    label_values: list[Any] | None = None
    meta: dict[str, Any] = field(default_factory=dict)


# The keys a loader may set in ``RawData.meta`` (they reach a run's data.json):
META_KEYS = {
    "loader": "the registered dataset that loaded the data (csv, image_folder, mnist1d, ...)",
    "source": "its kind: builtin, file, or arrays",
    "target_column": "the CSV column that was predicted",
    "id_column": "the CSV column that names each row (not a feature)",
    "delimiter": "the CSV field separator",
    "targets": "names of the regression targets, in output order",
    "image": "{size: [height, width] or null, grayscale: bool}: how image files were decoded",
    "cleaning": "what the loader dropped before the split: {rows: {missing target: n}}",
    "embeddings": "{numeric: n, cardinalities: [...]}: the model's inputs after n numbers are "
    "category codes for embeddings (set by make_bundle, read by the mlp)",
    "text_column": "the CSV column holding each document (text datasets)",
    "text": "{vocab_size, pad_id, special_ids, start_id, end_id, max_length, tokenizer}: the token ids "
    "a text model reads (set by make_bundle, read by the text models and text_augment)",
}


@dataclass
class RawPool:
    """The cleaned train + val samples before preprocessing (train first: ``n_train`` of them),
    and the ``preprocess`` section to fit on any part of them: what a cross-validation fold
    refits (``tunelab.data.splits.refit_fold``). ``x_test``/``y_test``: the test split as raw
    rows, as a user would hand them to the run's predictor (y: class codes, or raw targets)."""

    x: np.ndarray
    y: np.ndarray
    n_train: int
    spec: PreprocessSpec
    text: bool
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None


@dataclass
class DataBundle:
    """Train / val / test tensors plus what a model and a report need to know about them.

    ``x_*`` are float32 ``[N, *input_shape]`` (int64 token ids ``[N, max_length]`` for text);
    ``y_*`` are int64 ``[N]`` for classification and float32 ``[N, T]`` (always 2-D) for regression.
    ``preprocessing`` is what was fit on train and applied to every split
    (``tunelab.data.preprocess``); ``label_values`` and ``meta`` come from the loader (see ``RawData``).

    >>> import torch
    >>> b = DataBundle(*(torch.zeros(4, 2), torch.zeros(4, dtype=torch.long)) * 3,
    ...                task="classification", input_shape=(2,), num_outputs=2, num_classes=2)
    >>> b.split("val")[0].shape
    torch.Size([4, 2])
    """

    x_train: Tensor
    y_train: Tensor
    x_val: Tensor
    y_val: Tensor
    x_test: Tensor
    y_test: Tensor
    task: Task
    input_shape: tuple[int, ...]  # per sample, e.g. (1, 40) mnist1d, (1, 8, 8) digits, (4,) iris
    num_outputs: int  # number of classes, or number T of regression targets
    num_classes: int | None  # None for regression
    name: str = ""
    class_names: list[str] | None = None
    feature_names: list[str] | None = None
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    y_mean: Tensor | None = None  # [T] regression target scaling fit on train; None if not scaled
    y_std: Tensor | None = None  # [T]
    label_values: list[Any] | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    # What cleaning and preprocessing did (rows and columns dropped, imputed, encoded): the
    # run's info["preprocess"].
    report: dict[str, Any] = field(default_factory=dict)
    raw: RawPool | None = field(default=None, repr=False)  # with load_data(keep_raw=True) only

    def to(self, device: torch.device | str) -> DataBundle:
        """A new bundle with every tensor on ``device`` (this one is left as it is).

        >>> b = DataBundle(*(torch.zeros(2, 1), torch.zeros(2, dtype=torch.long)) * 3,
        ...                task="classification", input_shape=(1,), num_outputs=2, num_classes=2)
        >>> b.to("cpu").x_train.device.type
        'cpu'
        """
        moved = {
            f.name: getattr(self, f.name).to(device)
            for f in dataclasses.fields(self)
            if isinstance(getattr(self, f.name), Tensor)
        }
        return dataclasses.replace(self, **moved)

    def example_inputs(self, n: int) -> Tensor | None:
        """``n`` train inputs (repeated if fewer) to time a model on, where random numbers cannot
        stand in for real inputs (token ids); None for float inputs, which random ones can.

        >>> ids = torch.tensor([[5, 2, 0]])
        >>> b = DataBundle(*(ids, torch.tensor([0])) * 3, task="classification", input_shape=(3,),
        ...                num_outputs=2, num_classes=2)
        >>> b.example_inputs(2).tolist()
        [[5, 2, 0], [5, 2, 0]]
        """
        if self.x_train.is_floating_point():
            return None
        reps = -(-n // len(self.x_train))
        return self.x_train.repeat(reps, *[1] * (self.x_train.dim() - 1))[:n]

    def channels_last(self) -> DataBundle:
        """A new bundle whose image inputs [N, C, H, W] use the NHWC (channels_last) layout."""
        fmt = torch.channels_last
        return dataclasses.replace(
            self,
            x_train=self.x_train.contiguous(memory_format=fmt),
            x_val=self.x_val.contiguous(memory_format=fmt),
            x_test=self.x_test.contiguous(memory_format=fmt),
        )

    def split(self, name: Literal["train", "val", "test"]) -> tuple[Tensor, Tensor]:
        """``(x, y)`` of the split ``name``: "train", "val" or "test".

        >>> b = DataBundle(*(torch.zeros(3, 1), torch.zeros(3, dtype=torch.long)) * 3,
        ...                task="classification", input_shape=(1,), num_outputs=2, num_classes=2)
        >>> len(b.split("test")[1])
        3
        """
        if name not in SPLITS:
            hint = did_you_mean(str(name), SPLITS)
            suffix = f" ({hint})" if hint else ""
            raise DataError(f"unknown split {name!r}; use train, val or test{suffix}")
        return getattr(self, f"x_{name}"), getattr(self, f"y_{name}")

    def unscale_y(self, t: Tensor) -> Tensor:
        """Regression predictions ``[N, T]`` back to the targets' original units.

        The identity when targets were not standardized (classification, or
        ``preprocess.target_scaling: none``).

        >>> b = DataBundle(*(torch.zeros(2, 1), torch.zeros(2, 1)) * 3, task="regression",
        ...                input_shape=(1,), num_outputs=1, num_classes=None,
        ...                y_mean=torch.tensor([10.0]), y_std=torch.tensor([2.0]))
        >>> b.unscale_y(torch.tensor([[1.0]])).item()
        12.0
        """
        if self.y_mean is None or self.y_std is None:
            return t
        return t * self.y_std.to(t.device, t.dtype) + self.y_mean.to(t.device, t.dtype)

    def summary(self) -> dict[str, Any]:
        """JSON-able description: name, task, split sizes, shapes and class counts per split.

        >>> b = DataBundle(*(torch.zeros(2, 1), torch.tensor([0, 1])) * 3, task="classification",
        ...                input_shape=(1,), num_outputs=2, num_classes=2, class_names=["a", "b"])
        >>> b.summary()["class_counts"]["val"]
        {'a': 1, 'b': 1}
        """
        out: dict[str, Any] = {
            "name": self.name,
            "task": self.task,
            "sizes": {s: len(self.split(s)[0]) for s in SPLITS},
            "input_shape": list(self.input_shape),
            "num_outputs": int(self.num_outputs),
            "num_classes": self.num_classes,
        }
        if self.task == "classification" and self.num_classes is not None:
            names = self.class_names or [str(i) for i in range(self.num_classes)]
            counts = {}
            for s in SPLITS:
                c = torch.bincount(self.split(s)[1].cpu(), minlength=self.num_classes).tolist()
                counts[s] = dict(zip(names, c, strict=True))
            out["class_counts"] = counts
        return out

    def card(self) -> dict[str, Any]:
        """What a predictor needs to know about the inputs and outputs (a run's ``data.json``).

        >>> b = DataBundle(*(torch.zeros(2, 3), torch.tensor([0, 1])) * 3, task="classification",
        ...                input_shape=(3,), num_outputs=2, num_classes=2, class_names=["a", "b"])
        >>> c = b.card()
        >>> c["input_shape"], c["classes"], c["label_values"], c["feature_names"]
        ([3], ['a', 'b'], ['a', 'b'], None)
        """
        classes = self.class_names
        if self.task == "classification" and classes is None and self.num_classes is not None:
            classes = [str(i) for i in range(self.num_classes)]
        targets = None
        if self.task == "regression":
            targets = self.meta.get("targets") or (
                ["y"] if self.num_outputs == 1 else [f"y{i}" for i in range(self.num_outputs)]
            )
        return {
            "dataset": {
                "name": self.name,
                "loader": self.meta.get("loader"),
                "source": self.meta.get("source"),
            },
            "task": self.task,
            "input_shape": list(self.input_shape),
            "num_outputs": int(self.num_outputs),
            "classes": classes,
            "label_values": self.label_values if self.label_values is not None else classes,
            "targets": targets,
            "feature_names": self.feature_names,
            "target_column": self.meta.get("target_column"),
            "id_column": self.meta.get("id_column"),
            "delimiter": self.meta.get("delimiter"),
            "image": self.meta.get("image"),
            # Rows are read as a table of cells (text or numbers, missing allowed) and the
            # preprocessing's table step turns them into the model's inputs.
            "table": self.preprocessing.table is not None,
            "embeddings": self.meta.get("embeddings"),
            # Text runs read documents: a list of strings, a .txt file (one per line), or a CSV
            # with the text column; "text" is what the text models read (None for features).
            "documents": self.preprocessing.text is not None,
            "text_column": self.meta.get("text_column"),
            "text": self.meta.get("text"),
        }
