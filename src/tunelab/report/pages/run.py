"""The report of one run, from its run directory (or a ``RunResult`` that was not saved).

Every number comes from the run's own files: ``result.json`` (status, history, final val/test
reports with the confusion matrix, efficiency, method facts), ``recipe.yaml``, ``env.json`` and,
when an lr-find wrote one there, ``lr_find.json``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from tunelab.errors import TunelabError
from tunelab.redact import redact_text
from tunelab.report.model import Code, Figure, Heatmap, Item, Marker, Note, Report, Section, Series, Table
from tunelab.report.pages.common import num, plural

if TYPE_CHECKING:
    from tunelab.runs import RunResult

# Keys of an epoch record that the loop writes; any other key holding numbers is a method's figure.
LOOP_KEYS = frozenset({"epoch", "train", "val", "lr", "lr_steps", "steps", "seconds"})
QUALITY_ORDER = ("loss", "accuracy", "precision", "recall", "f1", "mse", "rmse", "mae", "r2")
# A confusion matrix with more classes than this is drawn without a number in each cell.
ANNOTATE_CLASSES = 20


@dataclass
class RunFiles:
    """What a run report reads: result.json's data, the recipe, the environment, an lr-find."""

    result: dict[str, Any]  # RunResult.to_dict(), history included
    recipe_yaml: str
    env: dict[str, Any]
    run_dir: str | None = None
    lr_find: dict[str, Any] | None = None  # LRFindResult.to_dict() from lr_find.json


def is_run_dir(path: Path) -> bool:
    return (path / "recipe.yaml").is_file() and (path / "result.json").is_file()


def read_run_dir(path: str | Path) -> RunFiles:
    """The files of a finished (or interrupted) run directory."""
    path = Path(path)
    if not is_run_dir(path):
        raise TunelabError(
            f"{path}: not a run directory (it needs recipe.yaml and result.json, written by `tunelab train`)"
        )
    result = json.loads((path / "result.json").read_text())
    if not result.get("history") and (path / "metrics.jsonl").is_file():
        lines = (path / "metrics.jsonl").read_text().splitlines()
        result["history"] = [json.loads(line) for line in lines if line.strip()]
    env_path = path / "env.json"
    lr_path = path / "lr_find.json"
    return RunFiles(
        result=result,
        recipe_yaml=(path / "recipe.yaml").read_text(),
        env=json.loads(env_path.read_text()) if env_path.is_file() else {},
        run_dir=str(path),
        lr_find=json.loads(lr_path.read_text()) if lr_path.is_file() else None,
    )


def run_files(result: RunResult) -> RunFiles:
    """A RunResult's files: read from its run directory, or taken from memory when unsaved."""
    if result.run_dir is not None and is_run_dir(Path(result.run_dir)):
        return read_run_dir(result.run_dir)
    return RunFiles(result=result.to_dict(), recipe_yaml=result.recipe.to_yaml(), env={})


def build_run_report(files: RunFiles) -> Report:
    """The report of a run: curves, learning rate, confusion matrices, per-class scores, costs,
    the methods' per-epoch figures, the recipe and the environment."""
    r = files.result
    history = r.get("history") or []
    recipe = yaml.safe_load(files.recipe_yaml) or {}
    seed = r.get("seed", recipe.get("train", {}).get("seed"))
    where = files.run_dir or "(not saved)"
    report = Report(
        kind="run",
        title=f"run {Path(files.run_dir).name if files.run_dir else ''}".strip(),
        summary=headline(r),
        source={"kind": "run", "run_dir": files.run_dir},
    )
    curves = Section("training curves")
    if history:
        curves.items += curve_figures(r, history, seed)
        curves.items.append(lr_figure(history, recipe, seed))
    else:
        curves.items.append(Note("no epoch finished, so there is no curve to draw"))
    report.sections.append(curves)
    report.sections.append(quality_section(r))
    report.sections.append(cost_section(r.get("efficiency") or {}))
    info = dict(r.get("info") or {})
    report.sections.append(data_section(info.pop("preprocess", None)))
    methods = method_section(history, info)
    if methods.items:
        report.sections.append(methods)
    if files.lr_find:
        from tunelab.report.pages.lr_find import lr_find_figure

        report.sections.append(Section("learning-rate range test", [lr_find_figure(files.lr_find)]))
    report.sections.append(provenance_section(files, where))
    return report


def headline(r: Mapping[str, Any]) -> str:
    """status · epochs · the best epoch of the monitor, as ``tunelab train`` prints it."""
    text = f"{r.get('status')} · {plural(int(r.get('epochs') or 0), 'epoch')}"
    if r.get("best_epoch") is not None:
        text += f" · best {r.get('monitor')} {num(r.get('best_value'))} at epoch {r['best_epoch']}"
    if r.get("message"):
        text += f" · {redact_text(str(r['message']))}"
    return text


def _markers(r: Mapping[str, Any]) -> list[Marker]:
    out = []
    if r.get("best_epoch") is not None:
        out.append(Marker("x", float(r["best_epoch"]), f"best epoch {r['best_epoch']} ({r.get('monitor')})"))
    stopped = ((r.get("info") or {}).get("early_stopping") or {}).get("stopped_epoch")
    if stopped is not None:
        out.append(Marker("x", float(stopped), f"early stopping after epoch {stopped}", role="stop"))
    return out


def _marker_text(r: Mapping[str, Any]) -> str:
    text = ""
    if r.get("best_epoch") is not None:
        text += f" The dashed line marks the best epoch ({r['best_epoch']}) of {r.get('monitor')}"
        stopped = ((r.get("info") or {}).get("early_stopping") or {}).get("stopped_epoch")
        text += (
            f"; the dotted line, where early stopping ended training (epoch {stopped})." if stopped else "."
        )
    return text


def curve_figures(r: Mapping[str, Any], history: list[dict[str, Any]], seed: Any) -> list[Item]:
    """Train and val loss per epoch; the monitored metric (or accuracy / R²) per epoch."""
    epochs = [int(h["epoch"]) for h in history]
    one = f"One run (seed {seed}), so no intervals."
    loss = Figure(
        "loss",
        "xy",
        "loss per epoch",
        "Train loss (mean over the epoch's batches, as optimized: with the recipe's penalties and "
        "label smoothing) and val loss of the evaluated weights after each epoch. " + one + _marker_text(r),
        x_label="epoch",
        y_label="loss",
        series=[
            Series("train loss", epochs, [h["train"].get("loss") for h in history], role="train"),
            Series("val loss", epochs, [h["val"].get("loss") for h in history], role="val"),
        ],
        markers=_markers(r),
        half=True,
    )
    monitor = str(r.get("monitor") or "val.loss")
    split, _, metric = monitor.partition(".")
    if metric == "loss":  # the loss figure shows the monitor: show the main score beside it
        keys = history[-1].get("val", {})
        metric = next((m for m in ("accuracy", "r2", "mae") if m in keys), "")
        split = "val"
    if not metric:
        return [loss]
    values = [h.get(split, {}).get(metric) for h in history]
    score = Figure(
        "metric",
        "xy",
        f"{split}.{metric} per epoch",
        f"{split}.{metric} of the evaluated weights after each epoch"
        + (
            " (the monitored metric, which picks the best epoch). "
            if f"{split}.{metric}" == monitor
            else ". "
        )
        + one
        + _marker_text(r),
        x_label="epoch",
        y_label=f"{split}.{metric}",
        series=[Series(f"{split}.{metric}", epochs, values, role="val")],
        markers=_markers(r),
        half=True,
    )
    return [loss, score]


def lr_figure(history: list[dict[str, Any]], recipe: Mapping[str, Any], seed: Any) -> Item:
    """The learning rate of every optimizer step (of the first parameter group)."""
    schedule = (recipe.get("schedule") or {}).get("name", "constant")
    if any("lr_steps" in h for h in history):  # a per-batch schedule recorded each step's lr
        lrs = [lr for h in history for lr in h.get("lr_steps", [])]
        xs: list[Any] = list(range(1, len(lrs) + 1))
        kind, x_label = "line", "optimizer step"
    elif all("steps" in h for h in history):  # an epoch schedule: constant within each epoch
        starts = [1] + [h["steps"] + 1 for h in history[:-1]]  # each epoch's first step
        xs = [*starts, history[-1]["steps"]]
        lrs = [h["lr"] for h in history] + [history[-1]["lr"]]
        kind, x_label = "step", "optimizer step"
    else:  # a run directory written before steps were recorded: one value per epoch
        xs, lrs = [h["epoch"] for h in history], [h["lr"] for h in history]
        kind, x_label = "step", "epoch"
    if not lrs:
        return Note("the learning rate was not recorded for this run")
    positive = all(v is not None and v > 0 for v in lrs)
    spread = positive and max(lrs) / min(lrs) > 100
    return Figure(
        "lr",
        "xy",
        "learning rate per step",
        f"Learning rate of each optimizer step ({schedule} schedule"
        + (
            f", {recipe['schedule']['warmup_epochs']} warmup epochs"
            if (recipe.get("schedule") or {}).get("warmup_epochs")
            else ""
        )
        + f"), first parameter group; seed {seed}."
        + (" Log scale: the rate spans more than two decades." if spread else ""),
        x_label=x_label,
        y_label="learning rate",
        y_log=spread,
        series=[Series("lr", xs, lrs, kind=kind, role="train")],  # type: ignore[arg-type]
    )


def quality_section(r: Mapping[str, Any]) -> Section:
    """The final quality table; confusion matrices and per-class scores (classification)."""
    val, test = r.get("val") or {}, r.get("test") or {}
    section = Section("quality of the evaluated weights")
    if not val:
        section.items.append(Note(f"the run ended {r.get('status')}: no final evaluation"))
        return section
    rows = [[k, val.get(k), test.get(k)] for k in QUALITY_ORDER if k in val or k in test]
    section.items.append(
        Table(
            "val and test",
            ["metric", f"val (n={val.get('n', '?')})", f"test (n={test['n']})" if test else "test"],
            rows,
            "Macro averages over classes. The test split is read once, after every choice was made on val."
            if test
            else "The test split was not read by this run (a search trial or a selection run reads "
            "val only).",
        )
    )
    if "confusion_matrix" not in val:
        section.items.append(Note("regression: no confusion matrix or per-class scores"))
        return section
    section.items.append(confusion_figure("confusion-val", val, "val"))
    if test.get("confusion_matrix") is not None:
        section.items.append(confusion_figure("confusion-test", test, "test"))
    else:
        section.items.append(Note("no test confusion matrix: this run did not read the test split"))
    section.items.append(per_class_figure(val))
    per = val["per_class"]
    rows = [[c, s["precision"], s["recall"], s["f1"], s["support"]] for c, s in per.items()]
    section.items.append(
        Table(
            "per class (val)",
            ["class", "precision", "recall", "F1", "support"],
            rows,
            collapsed=len(rows) > 12,
        )
    )
    return section


def confusion_figure(id_: str, split: Mapping[str, Any], name: str) -> Figure:
    labels = [str(x) for x in split.get("labels") or range(len(split["confusion_matrix"]))]
    n = sum(map(sum, split["confusion_matrix"]))
    when = ", read once at the end" if name == "test" else ""
    return Figure(
        id_,
        "heatmap",
        f"confusion matrix ({name})",
        f"Counts of the evaluated weights' predictions on the {name} split ({n} samples{when}): rows are "
        "the true class, columns the predicted one; the diagonal is correct. One run, no intervals.",
        x_label="predicted",
        y_label="true",
        heatmap=Heatmap(split["confusion_matrix"], labels, labels),
        half=True,
    )


def per_class_figure(val: Mapping[str, Any]) -> Figure:
    per = val["per_class"]
    names = list(per)
    return Figure(
        "per-class",
        "bars",
        "precision, recall and F1 per class (val)",
        f"Per-class scores on the val split ({val.get('n')} samples; the table below gives each class's "
        "support); one run, no intervals.",
        x_label="class",
        y_label="score",
        series=[
            Series(m, names, [per[c][m] for c in names], role=role)  # type: ignore[arg-type]
            for m, role in (("precision", "train"), ("recall", "val"), ("f1", "best"))
        ],
    )


def cost_section(eff: Mapping[str, Any]) -> Section:
    section = Section("cost")
    rows = [
        ("parameters", eff.get("params")),
        ("nonzero parameters", eff.get("nonzero")),
        ("size of the saved weights (bytes)", eff.get("size_bytes")),
        ("FLOPs per sample", eff.get("flops")),
        ("train seconds", eff.get("train_seconds")),
        ("seconds per epoch", eff.get("seconds_per_epoch")),
        ("latency ms (batch 1, median)", eff.get("latency_ms")),
        ("latency ms (batch 1, p95)", eff.get("latency_p95_ms")),
        (f"throughput samples/s (batch {eff.get('throughput_batch', '?')})", eff.get("throughput")),
    ]
    shown = [[k, v] for k, v in rows if v is not None]
    if not shown:
        section.items.append(Note("no cost was measured (train.efficiency: false or the run did not finish)"))
        return section
    if "params" not in eff:
        section.items.append(
            Note("counts, latency and throughput were not measured (train.efficiency: false)")
        )
        caption = "Training wall time on this machine."
    else:
        where = f"{eff.get('device')}, {eff.get('threads')} thread(s), {eff.get('precision', 'fp32')}"
        caption = f"Counts are exact; timings are medians after warm-up on this machine ({where})."
    section.items.append(Table("cost", ["measure", "value"], shown, caption))
    return section


def data_section(prep: Mapping[str, Any] | None) -> Section:
    """What cleaning and preprocessing did to the data (``info["preprocess"]``): rows dropped,
    duplicate rows within and across the splits, and the columns dropped, imputed and encoded."""
    section = Section("data: cleaning and preprocessing")
    if prep is None:
        section.items.append(Note("this run recorded no cleaning or preprocessing report"))
        return section
    rows: list[list[Any]] = []
    counts = prep.get("rows") or {}
    if counts.get("read") is not None:
        rows.append(["rows read", "", counts["read"]])
    if counts.get("dropped_missing_target"):
        rows.append(
            ["rows dropped", f"target {counts.get('target')} missing", counts["dropped_missing_target"]]
        )
    dup = prep.get("duplicates") or {}
    for split, n in (dup.get("within") or {}).items():
        rows.append(["duplicate rows", f"within {split}", n])
    for pair, n in (dup.get("across") or {}).items():
        rows.append(["duplicate rows", f"{pair} (across splits: leakage)", n])
    near = dup.get("near") or {}
    near_what = "near-duplicate documents" if near.get("measure") else "near-duplicate rows"
    for split, n in (near.get("within") or {}).items():
        rows.append([near_what, f"within {split}", n])
    for pair, n in (near.get("across") or {}).items():
        rows.append([near_what, f"{pair} (across splits: leakage)", n])
    for key, what in (("dropped_columns", "dropped column"), ("imputed", "imputed"), ("encoded", "encoded")):
        rows += [[what, column, why] for column, why in (prep.get(key) or {}).items()]
    rows += _text_rows(prep)
    if prep.get("fit"):  # a streamed set's fit: over which rows (a sample, when memory is short)
        rows.append(["fit on", "train", prep["fit"]])
    if not rows:
        section.items.append(
            Note("nothing was dropped, imputed or encoded, and no duplicates were looked for")
        )
        return section
    caption = (
        f"Duplicates are counted before training: {dup.get('action', 'not looked for')}. The "
        "preprocessing is fit on the train split only and saved in preprocess.json (docs/preprocessing.md)."
    )
    section.items.append(
        Table("what cleaning and preprocessing did", ["what", "where", "count or how"], rows, caption)
    )
    return section


def _text_rows(prep: Mapping[str, Any]) -> list[list[Any]]:
    """A text run's rows: documents read and dropped before the split (tunelab.data.text), and what
    the tokenizer made of the train split (tunelab.data.tokenize)."""
    rows: list[list[Any]] = []
    docs = prep.get("documents") or {}
    if docs.get("read") is not None:
        rows.append(["documents read", "", docs["read"]])
    if docs.get("duplicates") is not None:
        rows.append(["exact duplicate documents", docs.get("action", ""), docs["duplicates"]])
    if docs.get("dropped_missing_text_or_label"):
        rows.append(["documents dropped", "text or label missing", docs["dropped_missing_text_or_label"]])
    text = prep.get("text") or {}
    if text:
        rows.append(
            [
                "tokenizer",
                "fit on train" if text.get("tokenizer") == "word" else "pretrained",
                f"{text.get('tokenizer')}, vocabulary of {text.get('vocab_size')}",
            ]
        )
        rows.append(
            [
                "truncated documents",
                f"train, longer than {text.get('max_length')} tokens",
                text.get("truncated_documents"),
            ]
        )
        rows.append(["tokens per document", "train, mean", text.get("mean_tokens")])
        rows.append(["unknown token rate", "train", text.get("unknown_token_rate")])
    if text.get("features"):
        feats = text["features"]
        rows.append(
            [
                "frozen features",
                f"encoder {feats.get('encoder')}, computed once and cached",
                feats.get("size"),
            ]
        )
    return rows


def method_section(history: list[dict[str, Any]], info: Mapping[str, Any]) -> Section:
    """Each method's per-epoch figures (gradient norms, sparsity, ...) and the facts it reported."""
    section = Section("methods")
    epochs = [h.get("epoch") for h in history]
    keys: list[str] = []
    for h in history:
        keys += [k for k in h if k not in LOOP_KEYS and k not in keys]
    for key in keys:
        values = [h.get(key) for h in history]
        if all(isinstance(v, (int, float)) or v is None for v in values):
            values = [{"value": v} for v in values]
        if not all(isinstance(v, Mapping) or v is None for v in values):
            continue
        names: list[str] = []
        for v in values:
            names += [n for n, x in (v or {}).items() if isinstance(x, (int, float)) and n not in names]
        if not names:
            continue
        section.items.append(
            Figure(
                f"method-{key}",
                "slices",
                f"{key} per epoch",
                f"{key}: the per-epoch figures the method recorded ({', '.join(names)}), one panel each; "
                "one run, no intervals.",
                x_label="epoch",
                series=[Series(n, epochs, [(v or {}).get(n) for v in values], role="train") for n in names],
            )
        )
    facts = [[name, _fact(v)] for name, v in info.items()]
    if facts:
        section.items.append(Table("what the methods reported", ["method", "facts"], facts))
    return section


def _fact(v: Any) -> str:
    if isinstance(v, Mapping):
        return ", ".join(f"{k} {_fact(x)}" for k, x in v.items())
    if isinstance(v, (list, tuple)) and len(v) > 4:
        return f"{len(v)} items"
    return num(v)


def provenance_section(files: RunFiles, where: str) -> Section:
    section = Section("recipe and environment")
    section.items.append(
        Code(
            "recipe.yaml (fully resolved: `tunelab train recipe.yaml` repeats the run)",
            files.recipe_yaml,
            "yaml",
        )
    )
    env = dict(files.env)
    command = env.pop("command", None)
    if command:
        # Masked again: env.json written before tunelab masked its command may hold a password.
        section.items.append(Code("command", redact_text(" ".join(str(c) for c in command)), "shell"))
    rows = [["run directory", where]] + [[k, redact_text(str(v))] for k, v in env.items()]
    section.items.append(Table("environment", ["", "value"], rows))
    return section
