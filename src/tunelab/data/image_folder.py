"""An image folder: one subfolder per class, PNG or JPEG files, decoded once and cached as arrays.

::

    data:
      name: image_folder
      path: photos/          # photos/cat/*.jpg, photos/dog/*.png, ...
      size: [32, 32]         # every image resized to height x width (null: all must share one size)
      grayscale: false       # true: one channel (L), false: three (RGB)

Class names are the subfolder names, sorted; files are found at any depth below a class folder,
and hidden files and folders (``.DS_Store``, ``.ipynb_checkpoints``) are skipped. Files whose
extension is not PNG or JPEG are ignored, and counted in the error when a class ends up empty.

Decoding happens once: the images are stored as ``uint8 [N, C, H, W]`` under
``tunelab.data.builtin.cache_dir()``, keyed by the folder, every file's name, size and
modification time, the target size and the colour mode; any change to the folder decodes it
again. Pixel values reach the model as float32 in [0, 1] (then standardized per channel on train,
as every dataset is, unless ``preprocess.scaling`` says otherwise: minmax or none).

Files that Pillow cannot read are reported together, by name, in one ``DataError``. Pillow is
imported when the dataset is loaded, not before.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import numpy as np

from tunelab.data.builtin import _write_cache, cache_dir
from tunelab.data.bundle import DATASETS, RawData
from tunelab.errors import DataError, RecipeError
from tunelab.schema import Doc, Range

__all__ = ["find_images", "image_folder", "read_images"]

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg"})
# Bumped when the decoding changes, so caches written by an older version are not reused.
_CACHE_VERSION = 1
# How many file names an error lists before "and N more".
_SHOW = 10

Side = Annotated[int, Range(ge=1)]


def _hidden(p: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in p.relative_to(root).parts)


def find_images(root: Path) -> tuple[list[str], list[tuple[Path, int]]]:
    """Class names (sorted subfolder names) and ``(file, class index)`` of every PNG/JPEG below them.

    Raises DataError when the folder is missing, has no class subfolders, has fewer than two
    classes, or has a class folder without images.

    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> for c in ("cat", "dog"):
    ...     (root / c).mkdir(); _ = (root / c / "a.png").write_bytes(b"")
    >>> names, files = find_images(root)
    >>> names, [(f.name, y) for f, y in files]
    (['cat', 'dog'], [('a.png', 0), ('a.png', 1)])
    """
    if not root.is_dir():
        what = "does not exist" if not root.exists() else "is a file, not a folder"
        raise DataError(f"{root}: {what}; data.path must be a folder holding one subfolder per class")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        loose = sum(1 for f in root.iterdir() if f.is_file())
        raise DataError(
            f"{root}: no class subfolders (found {loose} file(s) at the top level); put each class's "
            "images in its own subfolder, e.g. path/cat/*.png and path/dog/*.png"
        )
    files: list[tuple[Path, int]] = []
    empty: list[str] = []
    others: dict[str, int] = {}
    for y, name in enumerate(classes):
        found = []
        for f in sorted((root / name).rglob("*")):
            if not f.is_file() or _hidden(f, root):
                continue
            if f.suffix.lower() in IMAGE_SUFFIXES:
                found.append((f, y))
            else:
                others[f.suffix.lower() or "(none)"] = others.get(f.suffix.lower() or "(none)", 0) + 1
        if not found:
            empty.append(name)
        files += found
    if empty:
        skipped = (
            " (skipped files with other extensions: "
            + ", ".join(f"{n} {ext}" for ext, n in sorted(others.items()))
            + ")"
            if others
            else ""
        )
        raise DataError(
            f"{root}: the class folder(s) {empty[:_SHOW]} hold no PNG or JPEG images{skipped}; add images "
            "or remove the folder(s)"
        )
    if len(classes) < 2:
        raise DataError(
            f"{root}: only one class folder ({classes[0]!r}); classification needs at least two subfolders"
        )
    return classes, files


def _fingerprint(root: Path, files: list[tuple[Path, int]], size: Any, grayscale: bool) -> str:
    """A hash of everything that shapes the decoded arrays: any edit to the folder changes it."""
    entries = []
    for f, _ in files:
        st = f.stat()
        entries.append([str(f.relative_to(root)), st.st_size, st.st_mtime_ns])
    text = json.dumps(
        {
            "version": _CACHE_VERSION,
            "root": str(root.resolve()),
            "size": list(size) if size is not None else None,
            "grayscale": grayscale,
            "files": entries,
        }
    )
    return hashlib.sha256(text.encode()).hexdigest()


def _read(path: Path, key: str, n: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The cached (x uint8, y int64), or None when missing, stale or damaged."""
    try:
        with np.load(path, allow_pickle=False) as f:
            if str(f["key"]) != key:
                return None
            x, y = f["x"], f["y"]
    except (OSError, KeyError, ValueError, EOFError):
        return None
    if x.dtype != np.uint8 or x.ndim != 4 or len(x) != n or y.shape != (n,):
        return None
    return x, y.astype(np.int64)


def _decode_one(f: Path, size: Any, mode: str) -> np.ndarray:
    """One file as ``uint8 [C, H, W]``; Pillow's errors pass through (``_decode`` collects them)."""
    from PIL import Image

    with Image.open(f) as opened:
        if size is not None:
            # JPEG only: decode at a reduced scale (1/2 .. 1/8) that is still >= size, much
            # faster on large photos; the resize below then sets the exact size.
            opened.draft(mode, (size[1], size[0]))
        img = opened.convert(mode)  # also loads the pixels, so a truncated file fails here
    if size is not None and img.size != (size[1], size[0]):
        img = img.resize((size[1], size[0]), Image.Resampling.BILINEAR)  # PIL sizes are (W, H)
    a = np.asarray(img, dtype=np.uint8)
    return a[None] if a.ndim == 2 else a.transpose(2, 0, 1)  # [H, W(, C)] -> [C, H, W]


def _decode(root: Path, files: list[tuple[Path, int]], size: Any, grayscale: bool) -> np.ndarray:
    """Decode every file to ``uint8 [N, C, H, W]``; one DataError lists every file that failed.

    The result is allocated once, at the first image's shape, and filled in place: the decoded set
    is in memory once (a list of images then ``np.stack`` held it twice)."""
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow ships with the dependencies
        raise DataError("the image_folder dataset needs Pillow: pip install pillow") from None
    mode = "L" if grayscale else "RGB"
    out: np.ndarray | None = None
    bad: list[str] = []
    shapes: dict[tuple[int, ...], Path] = {}  # each size met -> its first file
    for i, (f, _) in enumerate(files):
        try:
            a = _decode_one(f, size, mode)
        # Pillow reports a damaged file with OSError (unknown format, truncated data), SyntaxError
        # (broken PNG chunks) or ValueError; a decompression bomb has its own class.
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
            bad.append(f"{f.relative_to(root)} ({type(e).__name__}: {e})")
            continue
        shapes.setdefault(a.shape[1:], f)
        if out is None:
            out = np.empty((len(files), *a.shape), dtype=np.uint8)
        if a.shape == out.shape[1:]:
            out[i] = a
    if bad:
        more = f" and {len(bad) - _SHOW} more" if len(bad) > _SHOW else ""
        raise DataError(
            f"{root}: {len(bad)} of {len(files)} image file(s) could not be read: "
            + "; ".join(bad[:_SHOW])
            + more
            + ". Replace or delete them"
        )
    if len(shapes) > 1:
        examples = [f"{s[0]}x{s[1]} ({shapes[s].relative_to(root)})" for s in sorted(shapes)[:3]]
        raise DataError(
            f"{root}: the images have {len(shapes)} different sizes, e.g. {', '.join(examples)}; "
            "set data.size: [height, width] to resize them all"
        )
    assert out is not None  # find_images returned at least one file, and none failed
    return out


def _check_params(params: Mapping[str, Any], path: str) -> None:
    size = params.get("size")
    if size is not None and len(size) != 2:
        raise RecipeError(f"{path}.size", list(size), "must be [height, width], two positive integers")


@DATASETS.register(
    "image_folder",
    "Images in one subfolder per class (PNG/JPEG), resized, decoded once and cached as arrays.",
    source="file",
    task="classification",
    validate=_check_params,
)
def image_folder(
    *,
    path: Annotated[str, Doc("folder with one subfolder of PNG/JPEG images per class")],
    size: Annotated[
        tuple[Side, Side] | None,
        Doc("resize every image to height x width, e.g. [32, 32]; null: all share one size"),
    ] = None,
    grayscale: Annotated[bool, Doc("one channel (L) instead of three (RGB)")] = False,
) -> RawData:
    """Load an image folder as ``x`` float32 ``[N, C, H, W]`` in [0, 1] and labels by subfolder.

    >>> import tempfile
    >>> from PIL import Image
    >>> root = Path(tempfile.mkdtemp())
    >>> for c, shade in (("dark", 20), ("light", 230)):
    ...     (root / c).mkdir()
    ...     for i in range(3):
    ...         Image.new("RGB", (12, 10), (shade, shade, shade)).save(root / c / f"{i}.png")
    >>> raw = image_folder(path=str(root), size=[8, 8])
    >>> raw.x.shape, raw.class_names, raw.y.tolist()
    ((6, 3, 8, 8), ['dark', 'light'], [0, 0, 0, 1, 1, 1])
    """
    _check_params({"size": size}, "data")
    root = Path(path).expanduser()
    classes, files = find_images(root)
    y = np.array([label for _, label in files], dtype=np.int64)
    key = _fingerprint(root, files, size, grayscale)
    cache = cache_dir() / f"image_folder_{key[:16]}.npz"
    cached = _read(cache, key, len(files))
    if cached is not None:
        x, y = cached
    else:
        x = _decode(root, files, size, grayscale)
        _write_cache(cache, key, {"x": x, "y": y})
    return RawData(
        _to_float(x),
        y,
        "classification",
        class_names=classes,
        name=root.name,
        meta={"image": {"size": list(size) if size is not None else None, "grayscale": bool(grayscale)}},
    )


def _to_float(x: np.ndarray) -> np.ndarray:
    """uint8 -> float32 in [0, 1], divided in place (one float32 array, not two)."""
    out = x.astype(np.float32)
    np.divide(out, np.float32(255), out=out)
    return out


def read_images(path: str | Path, size: Any = None, grayscale: bool = False) -> tuple[np.ndarray, list[str]]:
    """Decode one image file, or every PNG/JPEG below a folder (sorted, hidden files skipped), exactly
    as ``image_folder`` decodes training images: float32 ``[N, C, H, W]`` in [0, 1], and each file's
    path relative to the folder (its name for a single file). Nothing is cached.

    >>> import tempfile
    >>> from PIL import Image
    >>> root = Path(tempfile.mkdtemp())
    >>> Image.new("RGB", (12, 10), (255, 0, 0)).save(root / "red.png")
    >>> x, names = read_images(root, size=[4, 4])
    >>> x.shape, names, float(x[0, 0].max())
    ((1, 3, 4, 4), ['red.png'], 1.0)
    """
    p = Path(path).expanduser()
    if p.is_file():
        if p.suffix.lower() not in IMAGE_SUFFIXES:
            raise DataError(f"{p}: not a PNG or JPEG file (by its extension); give images, a folder of them")
        root, files = p.parent, [(p, 0)]
    elif p.is_dir():
        root = p
        files = [
            (f, 0)
            for f in sorted(p.rglob("*"))
            if f.is_file() and not _hidden(f, p) and f.suffix.lower() in IMAGE_SUFFIXES
        ]
        if not files:
            raise DataError(f"{p}: holds no PNG or JPEG images (at any depth); give a folder of images")
    else:
        raise DataError(f"{p}: no such file or folder; give an image file or a folder of images")
    x = _decode(root, files, size, grayscale)
    return _to_float(x), [str(f.relative_to(root)) for f, _ in files]
