"""The recipe's sections as typed dataclasses: the one place where each common field gets its default.

Every field has exactly one default and a comment saying why. An entry's own parameters (such as
``mlp.hidden``) are not here: they live in the signature of the registry entry they belong to. This
module is data only; ``tunelab.recipe`` validates, loads, overrides and dumps recipes.

    >>> from tunelab.spec import TrainSpec, monitor_mode
    >>> TrainSpec().epochs, monitor_mode("val.loss")
    (20, 'min')
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, get_args

from tunelab.errors import RecipeError
from tunelab.schema import Range

InitScheme = Literal[
    "default",
    "uniform",
    "normal",
    "xavier_uniform",
    "xavier_normal",
    "kaiming_uniform",
    "kaiming_normal",
    "he_uniform",
    "he_normal",
]
INIT_SCHEMES: tuple[str, ...] = get_args(InitScheme)  # the one list, read from the type

# Metrics a monitor may name; "val.<m>" or "train.loss". Direction is inferred from the name.
MINIMIZED = {"loss", "mse", "mae", "rmse"}
MONITOR_METRICS = {"loss", "accuracy", "precision", "recall", "f1", "mse", "mae", "rmse", "r2"}


def check_monitor(monitor: str, path: str) -> None:
    """Raise RecipeError unless ``monitor`` is ``train.loss`` or ``val.<metric>``.

    >>> check_monitor("val.f1", "train.monitor")
    """
    split, _, metric = monitor.partition(".")
    if not ((split == "val" and metric in MONITOR_METRICS) or (split == "train" and metric == "loss")):
        raise RecipeError(
            path,
            monitor,
            "must be train.loss or val.<metric> with metric one of " + ", ".join(sorted(MONITOR_METRICS)),
        )


def resolve_auto_monitor(monitor: str, task: str) -> str:
    """``train.monitor`` with ``auto`` resolved for the data's task: val.accuracy or val.loss.

    >>> resolve_auto_monitor("auto", "regression"), resolve_auto_monitor("val.f1", "classification")
    ('val.loss', 'val.f1')
    """
    if monitor != "auto":
        return monitor
    return "val.accuracy" if task == "classification" else "val.loss"


def monitor_mode(monitor: str) -> Literal["min", "max"]:
    """'min' for losses and errors, 'max' for scores: ``monitor_mode("val.loss") == "min"``."""
    return "min" if monitor.split(".")[-1] in MINIMIZED else "max"


@dataclass
class DataSpec:
    name: str = "mnist1d"  # a registered dataset (see `tunelab datasets`), or csv / npz
    # 20% of train is the usual hold-out for early stopping and selection on small data.
    val_fraction: Annotated[float, Range(gt=0, lt=1)] = 0.2
    # Used only by datasets without a published test split (mnist1d keeps its own 1000 samples).
    test_fraction: Annotated[float, Range(gt=0, lt=1)] = 0.2
    # The split does not follow train.seed, so runs on different seeds are paired on one split.
    split_seed: int = 0
    # Keep this stratified fraction of the train split (few-label experiments, fine-tuning);
    # val and test are unchanged, so results stay comparable with the full-data run.
    train_fraction: Annotated[float, Range(gt=0, le=1)] = 1.0
    params: dict[str, Any] = field(default_factory=dict)  # the dataset entry's own parameters
    # Read the data through a DataLoader instead of holding it as tensors (tunelab.data.stream):
    # for data larger than memory. Off by default: in-memory batching is what keeps the loop fast.
    stream: bool = False
    # GiB: an image folder or npz whose decoded float32 set would exceed this streams on its own, and
    # so does a CSV whose cells would (held as text in memory: ~64 bytes a cell); a streamed CSV fits
    # its preprocessing on a sample of train rows when all of them would not fit under it.
    # 4 GiB leaves room for the model and a second copy on a 16 GiB machine; null: never on its own.
    memory_limit: Annotated[float, Range(gt=0)] | None = 4.0
    # Streaming: DataLoader worker processes reading and decoding ahead of the loop (0: in the loop's
    # own process). 2 overlaps decoding with a step on small machines; raise it for JPEG-heavy sets.
    num_workers: Annotated[int, Range(ge=0)] = 2
    prefetch: Annotated[int, Range(ge=1)] = 2  # streaming: batches each worker reads ahead


Quantiles = tuple[Annotated[float, Range(ge=0, le=1)], Annotated[float, Range(ge=0, le=1)]]


@dataclass
class PreprocessSpec:
    """The ``preprocess:`` section: cleaning, imputation, encoding and scaling, all fit on train only.

    Table columns (a CSV file, penguins, the columns of a 2-D array) are numeric or categorical;
    signals and images ``[N, C, ...]`` are scaled per channel (``scaling`` only).
    """

    # --- scaling: every kind of input (numeric columns of a table; channels of a signal or image)
    # Standardization is what gradient descent on a small MLP or CNN needs most often: it puts
    # every input on one scale, so one learning rate fits all of them.
    scaling: Literal["standard", "minmax", "robust", "none"] = "standard"
    minmax_range: tuple[float, float] = (0.0, 1.0)  # [0, 1]: the usual meaning of "normalized"
    # --- numeric columns of a table
    # The median is not pulled by the outliers that real tables have; the mean is.
    impute: Literal["mean", "median", "constant"] = "median"
    impute_value: float = 0.0  # the fill of impute: constant
    # Off: a missing value is filled and forgotten. On adds a 0/1 column per column that had
    # missing values in train (useful when being missing says something).
    missing_indicator: bool = False
    # No clipping by default: it changes the data, and on clean data it only costs information.
    outliers: Literal["none", "quantile", "zscore"] = "none"
    outlier_quantiles: Quantiles = (0.01, 0.99)  # outliers: quantile clips to these train quantiles
    outlier_z: Annotated[float, Range(gt=0)] = 3.0  # outliers: zscore clips to mean +- z * std
    # --- categorical columns of a table
    # A missing category becomes a category of its own ("missing"): it keeps the fact that it was
    # missing, which the most frequent category would hide.
    categorical_impute: Literal["most_frequent", "constant"] = "constant"
    categorical_fill: str = "missing"  # the category of categorical_impute: constant
    # One-hot is the safe default for the few categories of most tables: no order is invented.
    # ordinal: one integer code per category; embedding: codes for an embedding per column (mlp).
    encoding: Literal["onehot", "ordinal", "embedding"] = "onehot"
    # --- column types: detected, unless listed here (names of the table's columns)
    categorical: list[str] = field(default_factory=list)
    numeric: list[str] = field(default_factory=list)
    drop: list[str] = field(default_factory=list)
    # Integers with at most this many distinct values (each seen twice on average) are codes
    # (grades, years, categories stored as numbers); 0 reads every integer column as a number.
    max_int_categories: Annotated[int, Range(ge=0)] = 10
    # --- cleaning
    # auto: drop exact duplicate rows of tables read from text (CSV files, penguins), where they
    # are usually copies; keep (and report) those of arrays, signals and images, whose published
    # benchmarks keep them. Either way the counts within and across splits are reported.
    duplicates: Literal["auto", "drop", "keep"] = "auto"
    # Off by default: comparing every pair of samples costs O(N^2) and the published benchmarks
    # keep their near copies. A number is "how different at most": it drops (as duplicates says)
    # or counts the samples that close to an earlier one of the same class. Arrays: the RMS
    # difference per standardized feature (tunelab.data.cleaning.find_near_duplicates; 0.05 = 5%
    # of a feature's spread). Documents: 1 - Jaccard of their word 3-grams, in (0, 1)
    # (tunelab.data.near_text; 0.2 = 80% of the shingles shared). Tables with text cells: unused.
    near_duplicates: Annotated[float, Range(gt=0)] | None = None
    # Regression targets standardized on train: one loss scale whatever the targets' units.
    target_scaling: Literal["standard", "none"] = "standard"
    # --- text documents (text_csv, text_folder, bbc_news; tunelab.data.tokenize)
    # word: a word-level vocabulary fit on the train split (HF tokenizers). Or a pretrained
    # encoder's own tokenizer (minilm, or a directory), which its transformer model and its
    # frozen features (below) read.
    tokenizer: str = "word"
    # 20,000 words hold ~97% of BBC News' train tokens; rarer words read as [UNK].
    max_vocab: Annotated[int, Range(ge=3)] = 20000
    # A word seen once in train gives one example to learn its embedding from: it reads as [UNK].
    min_freq: Annotated[int, Range(ge=1)] = 2
    # 256 tokens hold a news article's headline and first paragraphs, where its topic is; also the
    # length MiniLM was trained at (its max_seq_length). Longer documents are truncated.
    max_length: Annotated[int, Range(ge=1, le=4096)] = 256
    lowercase: bool = True  # word tokenizer only: a pretrained one normalizes as it was trained
    # A frozen encoder (minilm, or a directory) whose mean-pooled features replace the token ids:
    # computed once and cached, so a head (mlp, linear) trains in seconds. null: token ids.
    features: str | None = None


@dataclass
class ModelSpec:
    name: str = "mlp"  # a registered model family (see `tunelab models`), or custom
    init: InitScheme = "default"  # "default" keeps PyTorch's own per-layer initialization
    # Weights to start from: a tunelab run directory, a checkpoint file (state_dict), or a hub
    # name ("timm:NAME", "hf:REPO"); tensors whose shape differs (a new head) are re-initialized.
    pretrained: str | None = None
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class OptimizerSpec:
    name: str = "adam"  # Adam is the robust default for small models with little tuning
    # Decay (L2 penalty or decoupled weight decay) on biases and norm scales only shifts
    # activations; the usual practice (and the default) excludes them.
    decay_bias_and_norm: bool = False
    # Discriminative learning rates: each block closer to the input gets lr x layer_decay^depth
    # (1.0 = one lr for all). Used when fine-tuning, where early layers need smaller steps.
    layer_decay: Annotated[float, Range(gt=0, le=1)] = 1.0
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class ScheduleSpec:
    name: str = "constant"
    # Warmup composes with any schedule: the LR grows over these epochs, then the schedule runs.
    warmup_epochs: Annotated[int, Range(ge=0)] = 0
    warmup: Literal["linear", "exponential"] = "linear"
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainSpec:
    epochs: Annotated[int, Range(ge=1)] = 20
    batch_size: Annotated[int, Range(ge=1)] = 64
    # Micro-batches of batch_size per optimizer step: a batch of grad_accum x batch_size in the
    # memory of one micro-batch (gradients accumulate; the loss is weighted by sample counts).
    grad_accum: Annotated[int, Range(ge=1)] = 1
    seed: int = 0
    device: str = "auto"  # auto: CUDA when present, else CPU
    # Autocast precision of the forward pass. bf16 keeps fp32's range (no loss scaling); fp16
    # runs with a GradScaler so small gradients do not underflow.
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    # NHWC memory layout for image models: faster convolutions on many CPUs and GPUs.
    channels_last: bool = False
    compile: bool = False  # torch.compile: pays a compile time up front for faster steps
    # Metric that selects the best epoch (checkpoint, early stopping, plateau schedules).
    # auto: val.accuracy for classification, val.loss for regression.
    monitor: str = "auto"
    loss: Literal["auto", "cross_entropy", "mse", "mae", "huber"] = "auto"
    eval_batch_size: Annotated[int, Range(ge=1)] = 1024
    threads: Annotated[int, Range(ge=1)] | None = None  # torch.set_num_threads; None keeps torch's
    tensorboard: bool = True
    # last.pt (what a killed run resumes from) is written at every epoch end; for long epochs,
    # also every this many optimizer steps. null: epoch ends only (a small epoch is cheap to redo).
    checkpoint_every: Annotated[int, Range(ge=1)] | None = None
    # Measure inference latency and throughput at the end (a few seconds on a small model).
    efficiency: bool = True
    # Experiment trackers that also receive what the run directory gets (params, per-epoch
    # metrics, the model, the directory as artifacts): none by default, it is an optional extra.
    loggers: list[Literal["mlflow"]] = field(default_factory=list)
    # Under DDP (several processes): batch norm over the whole global batch instead of each
    # process's share (nn.SyncBatchNorm on GPUs, tunelab.sync_batch_norm on the CPU). False:
    # per-process statistics, as PyTorch's DDP does by default (cheaper; see docs/scale.md for the
    # measured cost and gain). No effect in one process.
    sync_batch_norm: bool = False


@dataclass
class MethodSpec:
    name: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class SearchParam:
    """One dimension of the search space (`search:` maps dotted recipe paths to these)."""

    type: Literal["uniform", "loguniform", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    step: float | None = None  # int (and uniform): grid step
    log: bool = False  # int: sample on a log scale
    choices: list[Any] | None = None  # categorical


@dataclass
class AblationSpec:
    """Candidate variants of an ablation study beyond "each method removed"."""

    add: list[dict[str, Any]] = field(default_factory=list)  # methods to add, e.g. [{name: ema}]
    values: dict[str, list[Any]] = field(default_factory=dict)  # dotted path -> values to try
    remove_methods: bool = True  # a variant without each method of the recipe
    remove_regularizers: bool = True  # a variant with dropout = 0 / batch_norm = false
