"""Data larger than memory: splits read through a ``torch.utils.data.DataLoader``, not held as tensors.

::

    data:
      name: image_folder
      params: {path: photos/, size: [64, 64]}
      stream: true          # or automatic when the decoded set would exceed data.memory_limit
      num_workers: 4        # DataLoader worker processes that read and decode

What streams, and how:

* ``image_folder``: the workers decode each file (Pillow) to ``uint8 [C, H, W]``; the batch is
  moved to the device, scaled to [0, 1] and standardized there, where augmentation then runs.
* ``npz``: each array is written once as a ``.npy`` file in the cache (keyed by the archive's
  size and time) and read through ``numpy.memmap``: only the pages of a batch are touched.
* ``csv``: read in chunks, split, cleaned and preprocessed as in memory (the same functions and
  ``Preprocessing`` object, fit on train rows only, or on a seeded sample of them when they would
  not fit under ``data.memory_limit``) into a cached float32 ``.npy`` file, then read through
  ``numpy.memmap`` as npz is: ``tunelab.data.stream_csv``. Classification or regression.
* any other dataset (``stream: true``): its tensors go through the same DataLoader path.
* the Python API: ``fit(data=dataset)`` or ``fit(data=(train, val[, test]))`` with
  ``torch.utils.data.Dataset``s of ``(x, y)`` pairs.

The split is the in-memory path's (``tunelab.data.splits.split_index``: ``data.split_seed``,
stratified), and so is ``data.train_fraction``'s seeded subsample of train. The preprocessing of
images and arrays is still fit on train only: one pass over the train split accumulates each
channel's sum and sum of squares (float64) into the same ``Standardize`` step the in-memory path
fits with NumPy. The order of samples is the in-memory path's (one seeded permutation per epoch,
see ``tunelab.train``), so a resumed run continues exactly where it stopped, mid-epoch included;
``tunelab lr-find`` reads the same way. ``tunelab cv`` refuses streamed data: it refits the
preprocessing on each fold's raw samples, in memory.
"""

from __future__ import annotations

import hashlib
import math
import mmap
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from tunelab.cache import build_folder
from tunelab.data.bundle import SPLITS, DataBundle
from tunelab.data.preprocess import CONSTANT_STD, Preprocessing, Standardize
from tunelab.data.splits import split_index, subsample_train
from tunelab.data.stream_csv import csv_decoded_bytes, csv_table
from tunelab.errors import DataError, RecipeError
from tunelab.io import cache_dir
from tunelab.spec import DataSpec, PreprocessSpec

__all__ = [
    "StreamBundle",
    "StreamSplit",
    "as_stream",
    "decoded_bytes",
    "load_stream",
    "stream_bundle",
    "wants_stream",
]


class FileImages(Dataset):
    """Image files decoded one by one (in the DataLoader's workers) to ``uint8 [C, H, W]``."""

    def __init__(self, files: Sequence[Path], labels: np.ndarray, size: Any, grayscale: bool) -> None:
        self.files, self.labels = [str(f) for f in files], torch.as_tensor(labels)
        self.size, self.mode = size, "L" if grayscale else "RGB"

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        from PIL import Image

        with Image.open(self.files[i]) as opened:
            img = opened.convert(self.mode)
        if self.size is not None and img.size != (self.size[1], self.size[0]):
            img = img.resize((self.size[1], self.size[0]), Image.Resampling.BILINEAR)
        a = np.asarray(img, dtype=np.uint8)
        a = a[None] if a.ndim == 2 else a.transpose(2, 0, 1)  # [H, W(, C)] -> [C, H, W]
        return torch.from_numpy(np.ascontiguousarray(a)), self.labels[i]


_FAULT_AROUND = 64 * 1024


class MemmapArrays(Dataset):
    """Rows of ``.npy`` arrays read through ``numpy.memmap`` (opened lazily: once per worker).

    The pages a memmap has read count in the process's resident set until it is unmapped (they
    are file pages the kernel may drop, but a peak-RSS bound sees them), so the map is dropped
    and made again after every ``REMAP_BYTES`` (32 MiB) of rows: the rows read stay in the page cache,
    not in this process.
    """

    REMAP_BYTES = 32 * 2**20

    def __init__(self, x_path: Path, y: np.ndarray, rows: np.ndarray) -> None:
        self.x_path, self.y, self.rows = x_path, torch.as_tensor(y), rows
        self._x: np.ndarray | None = None
        self._left = 0  # rows to read before the map is made again

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        if self._x is None or self._left <= 0:
            self._x = None  # unmapped before the next map is made
            self._x = np.load(self.x_path, mmap_mode="r")
            # A read maps the row's pages, and Linux maps up to 64 KiB of cached pages around
            # each fault (fault_around_bytes): a row read in random order costs that much.
            row_pages = self._x[0].nbytes + mmap.PAGESIZE + _FAULT_AROUND
            self._left = max(1, self.REMAP_BYTES // row_pages)
        self._left -= 1
        row = int(self.rows[i])
        return torch.from_numpy(np.array(self._x[row], dtype=np.float32)), self.y[row]

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_x": None, "_left": 0}  # a worker maps the file itself


class Subset(Dataset):
    """``dataset`` restricted to ``index`` (a split of it)."""

    def __init__(self, dataset: Dataset, index: np.ndarray) -> None:
        self.dataset, self.index = dataset, index

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> Any:
        return self.dataset[int(self.index[i])]


def _return_freed_batches() -> None:
    """Ask glibc to give every freed buffer over 128 KiB back to the system at once.

    Hand-written (no library does it): glibc raises its mmap threshold each time a large buffer is
    freed, so after a few batches their buffers come from the heap and stay there when freed. On a
    20k-image folder that was +600 MB of peak RSS in the first epoch (1.08 GB instead of 0.6 GB);
    with the threshold fixed the streaming process stays at its working set. No-op off glibc.
    """
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD (glibc malloc.h): fixed, so not dynamic
    except (OSError, AttributeError):
        pass


class _Batches:
    """A DataLoader's batch sampler whose batches are set before each pass (one loader, reused
    with its persistent workers, for every epoch's different order)."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


class StreamSplit:
    """One split of a ``StreamBundle``, in the place of its ``x`` tensor: ``len``, ``shape``, a
    slice ``[a:b]`` (decoded and preprocessed, for a few examples) and the loader's batches."""

    def __init__(self, dataset: Dataset, owner: StreamBundle) -> None:
        self.dataset, self.owner = dataset, owner
        self.sampler = _Batches()
        self._loader: DataLoader | None = None

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self), *self.owner.input_shape)

    def __getitem__(self, key: slice) -> Tensor:
        if not isinstance(key, slice):  # indexing by a tensor of indices: a loop that wants tensors
            raise DataError(
                "this command reads the data as tensors in memory; data.stream is for train and search: "
                "set data.stream: false (or a larger data.memory_limit)"
            )
        rows = [self.dataset[i] for i in range(*key.indices(len(self)))]
        return self.owner.transform(torch.stack([r[0] for r in rows]).to(self.owner.device))

    def loader(self) -> DataLoader:
        if self._loader is None:
            _return_freed_batches()
            spec, workers = self.owner.spec, self.owner.spec.num_workers
            self._loader = DataLoader(
                self.dataset,
                batch_sampler=self.sampler,
                num_workers=workers,
                pin_memory=self.owner.device.type == "cuda",
                persistent_workers=workers > 0,
                prefetch_factor=spec.prefetch if workers > 0 else None,
                # Its own generator: each pass draws its workers' base seed from it, which would
                # otherwise shift the global stream that dropout and augmentation draw from.
                generator=torch.Generator().manual_seed(0),
            )
        return self._loader

    def read(self, batches: list[list[int]]) -> Iterator[tuple[Tensor, Tensor]]:
        """``(x, y)`` of each list of indices, on the device and preprocessed."""
        self.sampler.batches = batches
        device = self.owner.device
        for x, y in self.loader():
            yield self.owner.transform(x.to(device, non_blocking=True)), y.to(device, non_blocking=True)

    def batches(self, size: int) -> Iterator[Tensor]:
        """The split's inputs in order, ``size`` at a time (evaluation)."""
        n = len(self)
        for x, _ in self.read([list(range(i, min(n, i + size))) for i in range(0, n, size)]):
            yield x

    def fingerprint(self) -> str:
        """The split's identity for resume checks: its files or rows (hashing the data would read it)."""
        ds = self.dataset
        inner = ds.dataset if isinstance(ds, Subset) else ds
        parts = [type(inner).__name__, str(len(self))]
        if isinstance(inner, FileImages):
            idx = ds.index if isinstance(ds, Subset) else range(len(inner))
            parts += [inner.files[i] for i in idx]
        elif isinstance(inner, MemmapArrays):
            parts += [str(inner.x_path), inner.rows.tobytes().hex()]
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()


@dataclass
class StreamBundle(DataBundle):
    """A DataBundle whose ``x_*`` are ``StreamSplit``s read through DataLoaders (labels stay tensors).

    ``scale``: what raw inputs are multiplied by first (1/255 for uint8 images); ``applied``: the
    steps ``transform`` applies on the device (None: ``preprocessing``; the identity for tensors
    that were preprocessed already).
    """

    spec: DataSpec = field(default_factory=DataSpec)
    scale: float = 1.0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    applied: Preprocessing | None = None
    _layers: nn.Module | None = None

    def to(self, device: torch.device | str) -> StreamBundle:
        self.device = torch.device(device)
        for name in ("y_train", "y_val", "y_test"):
            setattr(self, name, getattr(self, name).to(self.device))
        steps = self.applied if self.applied is not None else self.preprocessing
        self._layers = steps.layers(len(self.input_shape) + 1).to(self.device)
        return self

    def example_inputs(self, n: int) -> Tensor | None:
        return None  # streamed inputs are floats (images, arrays), which random ones stand in for

    def channels_last(self) -> DataBundle:
        raise RecipeError(
            "train.channels_last", True, "is for in-memory data; set it to false with data.stream"
        )

    def transform(self, x: Tensor) -> Tensor:
        """Raw batch -> the model's input: float, scaled, preprocessed (on ``x``'s device)."""
        x = x.float()
        if self.scale != 1.0:
            x = x * self.scale
        if self._layers is None:
            self.to(x.device)
        return self._layers(x)  # type: ignore[misc]


def decoded_bytes(spec: DataSpec) -> int | None:
    """The size the decoded float32 set would have in memory, when known before reading it (for a
    CSV: its cells as the in-memory path holds them, text; ``stream_csv.csv_decoded_bytes``)."""
    if spec.name == "image_folder":
        files = _image_files(spec)[1]
        shape = _image_shape(spec, files)
        return len(files) * math.prod(shape) * 4
    if spec.name == "npz":
        total = 0
        with np.load(Path(spec.params["path"]).expanduser(), mmap_mode="r") as f:
            for key in f.files:
                total += int(np.prod(f[key].shape)) * 4
        return total
    if spec.name == "csv":
        return csv_decoded_bytes(spec)
    return None


def wants_stream(spec: DataSpec) -> bool:
    """``data.stream``, or the decoded set would exceed ``data.memory_limit`` (GiB)."""
    if spec.stream:
        return True
    if spec.memory_limit is None or spec.name not in ("image_folder", "npz", "csv"):
        return False
    size = decoded_bytes(spec)
    return size is not None and size > spec.memory_limit * 2**30


def _image_files(spec: DataSpec) -> tuple[list[str], list[tuple[Path, int]]]:
    from tunelab.data.image_folder import find_images

    return find_images(Path(spec.params["path"]).expanduser())


def _image_shape(spec: DataSpec, files: list[tuple[Path, int]]) -> tuple[int, int, int]:
    from PIL import Image

    channels = 1 if spec.params.get("grayscale") else 3
    size = spec.params.get("size")
    if size is not None:
        return channels, int(size[0]), int(size[1])
    with Image.open(files[0][0]) as img:  # without a size, every image must share the first's
        return channels, img.size[1], img.size[0]


def _npz_cache(path: Path) -> tuple[Path, dict[str, Path]]:
    """Each array of the archive as a .npy file in the cache (written once, into a temporary folder
    renamed into place: ``tunelab.cache.build_folder``), for memmap reads."""
    st = path.stat()
    key = hashlib.sha256(f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:16]
    folder = cache_dir() / f"npz_stream_{key}"
    with np.load(path, allow_pickle=False) as f:
        names = list(f.files)

        def build(tmp: Path) -> None:
            for name in names:  # one array in memory at a time
                np.save(tmp / f"{name}.npy", f[name])

        build_folder(folder, build)
    return folder, {name: folder / f"{name}.npy" for name in names}


def _split_index(y: np.ndarray, spec: DataSpec, classes: list[str], has_test: bool) -> dict[str, np.ndarray]:
    """Index arrays of train / val (/ test) as the in-memory path cuts them (``data.split_seed``,
    stratified by label), and ``data.train_fraction``'s seeded subsample of train."""
    index = split_index(y, spec, True, classes, "data", has_test=has_test)
    if spec.train_fraction < 1.0:  # after val and test are cut: they stay the full-data run's
        keep = subsample_train(y[index["train"]], spec.train_fraction, spec.split_seed, True, classes)
        index["train"] = index["train"][keep]
    return index


def _fit_preprocessing(train: Dataset, scale: float, spec: PreprocessSpec, workers: int) -> Preprocessing:
    """Per-channel standardization from one pass over the train split (running float64 sums)."""
    if spec.scaling == "none":
        return Preprocessing()
    if spec.scaling != "standard":
        raise RecipeError("preprocess.scaling", spec.scaling, "with data.stream use standard or none")
    loader = DataLoader(train, batch_size=256, num_workers=workers)
    total = squares = None
    count = 0
    for x, _ in loader:
        x = x.double() * scale  # [B, C, ...] or a table's [B, F]
        dims = (0, *range(2, x.ndim))  # per channel, or per feature
        s, q = x.sum(dims), (x * x).sum(dims)
        total, squares = (s, q) if total is None else (total + s, squares + q)
        count += x.numel() // x.shape[1]
    mean = total / count  # type: ignore[operator]
    std = (squares / count - mean * mean).clamp_min(0).sqrt()  # type: ignore[operator]
    std = torch.where(std < CONSTANT_STD, torch.ones_like(std), std)  # as Standardize.fit does
    scope = "per_feature" if x.ndim == 2 else "per_channel"
    step = Standardize(scope, tuple(mean.tolist()), tuple(std.tolist()))
    return Preprocessing((step,), None, {"fit": "streamed: running per-channel moments over train"})


def _sources(spec: DataSpec) -> tuple[dict[str, Dataset], np.ndarray, list[str], float, tuple[int, ...]]:
    """The whole set as Datasets (before the split), all labels, class names, scale, input shape."""
    if spec.name == "image_folder":
        classes, files = _image_files(spec)
        labels = np.array([label for _, label in files], dtype=np.int64)
        shape = _image_shape(spec, files)
        images = FileImages(
            [f for f, _ in files], labels, spec.params.get("size"), bool(spec.params.get("grayscale"))
        )
        return {"all": images}, labels, classes, 1 / 255, shape
    if spec.name == "npz":
        _, paths = _npz_cache(Path(spec.params["path"]).expanduser())
        y = np.load(paths["y"]).astype(np.int64)
        x = np.load(paths["x"], mmap_mode="r")
        classes = [str(c) for c in range(int(y.max()) + 1)]
        sets: dict[str, Dataset] = {"all": MemmapArrays(paths["x"], y, np.arange(len(y)))}
        if "x_test" in paths:
            yt = np.load(paths["y_test"]).astype(np.int64)
            sets["test"] = MemmapArrays(paths["x_test"], yt, np.arange(len(yt)))
        return sets, y, classes, 1.0, tuple(x.shape[1:])
    raise RecipeError(
        "data.stream",
        True,
        f"streams image_folder, npz and csv files, and any dataset given as tensors or a torch Dataset; "
        f"{spec.name} is none of them",
    )


def stream_bundle(spec: DataSpec, preprocess: PreprocessSpec) -> StreamBundle:
    """An image folder or npz as a StreamBundle (classification; split by seed, stratified)."""
    sets, labels, classes, scale, shape = _sources(spec)
    index = _split_index(labels, spec, classes, has_test="test" in sets)
    parts = {s: Subset(sets["all"], index[s]) for s in index}
    if "test" in sets:
        parts["test"] = sets["test"]
    y = {s: torch.as_tensor(_labels_of(parts[s])) for s in SPLITS}
    pre = _fit_preprocessing(parts["train"], scale, preprocess, spec.num_workers)
    return _assemble(parts, y, spec, pre, scale, shape, classes, spec.name)


def _labels_of(ds: Dataset) -> np.ndarray:
    if isinstance(ds, Subset):
        return _labels_of(ds.dataset)[ds.index]
    if isinstance(ds, (FileImages, MemmapArrays)):
        return np.asarray(ds.labels if isinstance(ds, FileImages) else ds.y)
    return np.asarray([int(ds[i][1]) for i in range(len(ds))])  # type: ignore[arg-type]


def _assemble(
    parts: dict[str, Dataset],
    y: dict[str, Tensor],
    spec: DataSpec,
    pre: Preprocessing,
    scale: float,
    shape: tuple[int, ...],
    classes: list[str],
    name: str,
) -> StreamBundle:
    n = len(classes)
    bundle = StreamBundle(
        *(None, y["train"], None, y["val"], None, y["test"]),  # type: ignore[arg-type]
        task="classification",
        input_shape=tuple(shape),
        num_outputs=n,
        num_classes=n,
        name=name,
        class_names=classes,
        preprocessing=pre,
        label_values=list(classes),
        meta={"loader": spec.name, "source": "stream"},
        spec=spec,
        scale=scale,
    )
    for s in SPLITS:
        setattr(bundle, f"x_{s}", StreamSplit(parts[s], bundle))
    return bundle


def csv_bundle(spec: DataSpec, preprocess: PreprocessSpec) -> StreamBundle:
    """A CSV file, preprocessed as in memory into a cached float32 ``.npy`` file
    (``tunelab.data.stream_csv``) and read through memmaps: classification or regression."""
    table = csv_table(spec, preprocess)
    rows = MemmapArrays(table.x_path, table.y, np.arange(len(table.y)))
    parts: dict[str, Dataset] = {s: Subset(rows, table.index[s]) for s in SPLITS}
    y = {s: torch.as_tensor(table.y[table.index[s]]) for s in SPLITS}
    pre = table.preprocessing
    bundle = _assemble(parts, y, spec, pre, 1.0, table.shape, table.class_names or [], table.name)
    bundle.applied = Preprocessing()  # the rows on disk are preprocessed already
    if table.task == "regression":
        bundle.task, bundle.num_outputs, bundle.num_classes = "regression", table.y.shape[1], None
        bundle.class_names = None
        bundle.y_mean, bundle.y_std = pre.y_tensors()
    bundle.label_values, bundle.feature_names = table.label_values, table.feature_names
    bundle.meta, bundle.report = {**table.meta, "stream": True}, table.report
    return bundle


def from_bundle(data: DataBundle, spec: DataSpec) -> StreamBundle:
    """An in-memory bundle's (already preprocessed) tensors, read through the streaming path."""
    from torch.utils.data import TensorDataset

    parts: dict[str, Dataset] = {}
    for s in SPLITS:
        x, y = data.split(s)
        parts[s] = TensorDataset(x.cpu(), y.cpu())
    labels = {s: data.split(s)[1] for s in SPLITS}
    classes = data.class_names or []
    bundle = _assemble(parts, labels, spec, data.preprocessing, 1.0, data.input_shape, classes, data.name)
    bundle.applied = Preprocessing()  # the tensors are preprocessed already
    bundle.task, bundle.num_outputs, bundle.num_classes = data.task, data.num_outputs, data.num_classes
    bundle.meta, bundle.report = {**data.meta, "stream": True}, data.report
    bundle.y_mean, bundle.y_std, bundle.feature_names = data.y_mean, data.y_std, data.feature_names
    bundle.label_values = data.label_values
    return bundle


def from_datasets(datasets: Sequence[Dataset], spec: DataSpec, preprocess: PreprocessSpec) -> StreamBundle:
    """``fit(data=...)`` given torch Datasets of ``(x, y)``: train, val and optionally test.

    One Dataset is split as the recipe says; with (train, val) the test split is val's twin left
    empty of choices: it is read once, at the end (pass a third Dataset to hold one out).
    """
    if len(datasets) == 1:
        whole = datasets[0]
        labels = _labels_of(whole)
        classes = [str(c) for c in range(int(labels.max()) + 1)]
        index = _split_index(labels, spec, classes, has_test=False)
        parts = {s: Subset(whole, index[s]) for s in SPLITS}
    else:
        train, val, *test = datasets
        parts = {"train": train, "val": val, "test": test[0] if test else val}
        classes = [str(c) for c in range(int(_labels_of(train).max()) + 1)]
    y = {s: torch.as_tensor(_labels_of(parts[s])) for s in SPLITS}
    x0 = parts["train"][0][0]
    pre = _fit_preprocessing(parts["train"], 1.0, preprocess, spec.num_workers)
    return _assemble(parts, y, spec, pre, 1.0, tuple(x0.shape), classes, "dataset")


def load_stream(spec: DataSpec, preprocess: PreprocessSpec) -> StreamBundle:
    """The recipe's data, streamed: files read as they are needed, any other dataset's tensors
    through the same loader."""
    if spec.name in ("image_folder", "npz"):
        return stream_bundle(spec, preprocess)
    if spec.name == "csv":
        return csv_bundle(spec, preprocess)
    from tunelab.data.splits import load_data

    return from_bundle(load_data(spec, preprocess), spec)


def as_stream(data: Any, spec: DataSpec, preprocess: PreprocessSpec) -> StreamBundle | None:
    """``fit(data=...)`` as a StreamBundle when it is one or more torch Datasets (else None)."""
    if isinstance(data, Dataset):
        return from_datasets([data], spec, preprocess)
    if isinstance(data, (tuple, list)) and data and all(isinstance(d, Dataset) for d in data):
        if len(data) not in (2, 3):
            raise RecipeError("data", f"{len(data)} Datasets", "pass one Dataset, or (train, val[, test])")
        return from_datasets(list(data), spec, preprocess)
    if isinstance(data, DataBundle) and spec.stream and not isinstance(data, StreamBundle):
        return from_bundle(data, spec)
    return None
