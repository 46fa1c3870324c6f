"""Studies: many fits, persisted in an Optuna storage (search, ablation, cross-validation)."""
