"""The image_folder dataset: decoding, caching, and the errors a user can fix."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tests.data.conftest import noise_images

import tunelab
from tunelab.data import DATASETS, load_data
from tunelab.data import image_folder as module
from tunelab.data.image_folder import find_images, image_folder
from tunelab.errors import DataError, RecipeError
from tunelab.recipe import load_recipe

COLOURS = {"blue": (0, 0, 255), "red": (255, 0, 0)}


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Every test here on one torch thread (``one_thread``, tests/conftest.py)."""


def _folder(root: Path, n: int = 4, size: tuple[int, int] = (10, 12)) -> Path:
    """red/*.png and blue/*.jpg: solid colours, width x height = size, plus a file to ignore."""
    for name, rgb in COLOURS.items():
        (root / name).mkdir(parents=True)
        for i in range(n):
            img = Image.new("RGB", size, rgb)
            img.save(root / name / (f"{i}.png" if name == "red" else f"{i}.jpg"), quality=95)
    (root / "red" / "notes.txt").write_text("not an image")
    (root / "red" / ".hidden.png").write_bytes(b"junk")  # hidden: skipped, so not reported
    return root


def test_happy_path_png_and_jpeg(tmp_path):
    root = _folder(tmp_path / "imgs")
    raw = image_folder(path=str(root), size=[6, 8])
    assert raw.x.shape == (8, 3, 6, 8) and raw.x.dtype == np.float32
    assert raw.class_names == ["blue", "red"] and raw.y.tolist() == [0] * 4 + [1] * 4
    assert raw.task == "classification" and raw.name == "imgs"
    assert 0.0 <= raw.x.min() and raw.x.max() <= 1.0
    blue, red = raw.x[0].mean(axis=(1, 2)), raw.x[-1].mean(axis=(1, 2))  # per channel
    np.testing.assert_allclose(red, [1, 0, 0], atol=0.02)  # PNG: lossless
    np.testing.assert_allclose(blue, [0, 0, 1], atol=0.05)  # JPEG: nearly
    gray = image_folder(path=str(root), size=[6, 8], grayscale=True)
    assert gray.x.shape == (8, 1, 6, 8)
    # Pillow's L = 0.299 R + 0.587 G + 0.114 B.
    np.testing.assert_allclose(gray.x[-1].mean(), 0.299, atol=0.01)


def test_original_size_is_kept_when_size_is_null(tmp_path):
    raw = image_folder(path=str(_folder(tmp_path / "imgs", size=(10, 12))))
    assert raw.x.shape == (8, 3, 12, 10)  # PIL sizes are (width, height)


def test_decoded_once_then_read_from_the_cache_until_the_folder_changes(tmp_path, monkeypatch):
    root = _folder(tmp_path / "imgs")
    first = image_folder(path=str(root), size=[4, 4])
    cached = list(tunelab.data.builtin.cache_dir().glob("image_folder_*.npz"))
    assert cached

    def fail(*args, **kwargs):
        raise AssertionError("decoded again although nothing changed")

    monkeypatch.setattr(module, "_decode", fail)
    again = image_folder(path=str(root), size=[4, 4])
    np.testing.assert_array_equal(first.x, again.x)
    np.testing.assert_array_equal(first.y, again.y)
    monkeypatch.undo()
    # A changed file (new content and time) and a new size are decoded afresh.
    Image.new("RGB", (10, 12), (0, 255, 0)).save(root / "red" / "0.png")
    st = (root / "red" / "0.png").stat()
    os.utime(root / "red" / "0.png", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    changed = image_folder(path=str(root), size=[4, 4])
    np.testing.assert_allclose(changed.x[4].mean(axis=(1, 2)), [0, 1, 0], atol=0.02)
    assert image_folder(path=str(root), size=[2, 2]).x.shape == (8, 3, 2, 2)


def test_unreadable_files_are_reported_by_name(tmp_path):
    root = _folder(tmp_path / "imgs")
    (root / "red" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    good = (root / "blue" / "0.jpg").read_bytes()
    (root / "blue" / "cut.jpg").write_bytes(good[: len(good) // 2])  # truncated JPEG
    with pytest.raises(DataError) as e:
        image_folder(path=str(root), size=[4, 4])
    msg = str(e.value)
    assert "2 of 10 image file(s) could not be read" in msg
    assert str(Path("red") / "broken.png") in msg and str(Path("blue") / "cut.jpg") in msg
    assert "Replace or delete them" in msg


def test_empty_class_folder_is_named(tmp_path):
    root = _folder(tmp_path / "imgs")
    (root / "green").mkdir()
    (root / "green" / "readme.md").write_text("todo")
    with pytest.raises(DataError) as e:
        image_folder(path=str(root))
    assert "['green']" in str(e.value) and "no PNG or JPEG" in str(e.value) and ".md" in str(e.value)


@pytest.mark.parametrize(
    ("layout", "match"),
    [
        ("missing", "does not exist"),
        ("file", "is a file, not a folder"),
        ("flat", "no class subfolders"),
        ("one_class", "at least two"),
    ],
)
def test_folder_layout_errors(tmp_path, layout, match):
    root = tmp_path / "imgs"
    if layout == "file":
        root.write_text("x")
    elif layout == "flat":
        root.mkdir()
        Image.new("RGB", (4, 4)).save(root / "a.png")
    elif layout == "one_class":
        (root / "cat").mkdir(parents=True)
        Image.new("RGB", (4, 4)).save(root / "cat" / "a.png")
    with pytest.raises(DataError, match=match):
        find_images(root)


def test_mixed_sizes_need_a_size(tmp_path):
    root = _folder(tmp_path / "imgs", size=(10, 12))
    Image.new("RGB", (7, 5)).save(root / "red" / "small.png")
    with pytest.raises(DataError, match=r"2 different sizes.*data.size"):
        image_folder(path=str(root))
    assert image_folder(path=str(root), size=[5, 5]).x.shape == (9, 3, 5, 5)


def test_recipe_validation_of_size():
    with pytest.raises(RecipeError) as e:
        load_recipe({"data": {"name": "image_folder", "path": "x", "size": [8]}})
    assert e.value.path == "data.size"
    with pytest.raises(RecipeError):
        load_recipe({"data": {"name": "image_folder", "path": "x", "size": [0, 8]}})
    with pytest.raises(RecipeError):
        load_recipe({"data": {"name": "image_folder"}})  # path is required
    assert DATASETS.get("image_folder").tags["source"] == "file"


def test_trains_through_a_recipe_with_augmentation(tmp_path):
    root = _folder(tmp_path / "imgs", n=10)
    recipe = {
        "data": {"name": "image_folder", "path": str(root), "size": [8, 8]},
        "model": {"name": "cnn2d", "channels": [4], "hidden": [8]},
        "optimizer": {"name": "adam", "lr": 0.01},
        "train": {"epochs": 10, "batch_size": 8, "efficiency": False},
        "methods": [{"name": "image_augment", "hflip": True}, {"name": "tta"}],
    }
    bundle = load_data(load_recipe(recipe).data)
    assert bundle.input_shape == (3, 8, 8) and bundle.class_names == ["blue", "red"]
    r = tunelab.fit(recipe, save=False)
    assert r.status == "completed" and r.val["accuracy"] == 1.0  # red vs blue is trivial


PEAK = """
import json, sys
import PIL.Image  # imported before the baseline: the load imports it on first use
from tunelab.data import load_data
from tunelab.spec import DataSpec

def peak():  # VmHWM, not ru_maxrss: Linux keeps ru_maxrss across exec (pytest's size)
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) * 1024

imports = peak()
b = load_data(DataSpec(name="image_folder", params={"path": sys.argv[1], "size": [64, 64]}))
print(json.dumps({"imports": imports, "peak": peak(), "train": len(b.x_train)}))
"""


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="reads the peak RSS from /proc (Linux)")
def test_in_memory_peak_stays_near_twice_the_decoded_size(tmp_path):
    # Decoding (cold cache) and loading hold the float32 set about twice: the loader's array and
    # the splits' copies (scaled in place). Measured on 3,000 PNGs of 64x64 (141 MiB of float32):
    # 2.1x over the imports; before the decode, split and scaling copies were removed, 4.6x.
    n, side = 3000, 64
    root = noise_images(Path(tempfile.gettempdir()) / f"tunelab-test-images-{n}-{side}", n, side, 10)
    env = {**os.environ, "TUNELAB_CACHE": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, "-c", PEAK, str(root)], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    decoded = n * 3 * side * side * 4
    assert got["train"] > 0
    assert got["peak"] - got["imports"] < 2.5 * decoded, (got, decoded)
