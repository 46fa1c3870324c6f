"""Builders of the report model, one module per source: a run, a search, an ablation, a
cross-validation, a compression, an lr-find. Each ``build_*`` reads the source's own typed
result or persisted files and returns a ``tunelab.report.model.Report``; none of them renders."""
