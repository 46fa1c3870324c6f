"""``tunelab auto``: the tuning playbook in one command, under a wall-time budget (``run.run_auto``).

One module per stage (``profile``, ``baseline``, ``lr_range``, ``search``, ``ablation``,
``final``, ``compress``), the budget (``budget``), the search space (``space``), the stored stage
records (``state``) and the orchestration (``run``).
"""
