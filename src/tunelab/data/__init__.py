"""Datasets: built-in sets, the user's own files, and the one split every run shares.

A recipe's ``data:`` section names a registered dataset and its parameters; ``load_data`` loads it
and splits it train / val / test once, by ``data.split_seed``, stratified for classification, with
preprocessing fit on train only.

    >>> from tunelab.data import load_data
    >>> from tunelab.spec import DataSpec
    >>> b = load_data(DataSpec(name="iris"))
    >>> b.summary()["sizes"], b.input_shape, b.num_classes
    ({'train': 96, 'val': 24, 'test': 30}, (4,), 3)

Add a dataset by registering a function that returns ``RawData``; its keyword parameters are the
recipe's parameters (see ``tunelab.registry``).
"""

from tunelab.data import builtin, files, image_folder, npz, text  # registers the datasets into DATASETS
from tunelab.data.bundle import DATASETS, DataBundle, RawData
from tunelab.data.splits import bundle_from_arrays, load_data, make_bundle

__all__ = [
    "DATASETS",
    "DataBundle",
    "RawData",
    "builtin",
    "bundle_from_arrays",
    "files",
    "image_folder",
    "load_data",
    "make_bundle",
    "npz",
    "text",
]
