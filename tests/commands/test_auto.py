"""`tunelab auto`: the command, its errors, and Ctrl-C then resume."""

from __future__ import annotations

import json
import subprocess
import sys

import optuna
import pytest
from tests.commands.conftest import ctrl_c_script

# `tunelab auto ARGS` in its own process, with a Ctrl-C at the end of the first epoch of the second
# final run (a fit with a run directory): every stage before the final one and one final seed have
# finished, however fast or loaded the machine.
CTRL_C_IN_SECOND_FINAL_RUN = ctrl_c_script(2, counted='kwargs.get("out") is not None')


def test_bad_options_fail_in_one_line(cli, tmp_path):
    for args, expected in [
        (["--data", "iris", "--budget", "soon"], "--budget: got 'soon'"),
        (["--data", "iris", "--final-seeds", "1"], "--final-seeds: got 1"),
        (["--budget", "10m"], "--data"),
        (["--data", "irsi"], "irsi"),
    ]:
        code, _, err = cli(["auto", *args, "--out", tmp_path / "x"])
        assert code == 2 and err.startswith("error: ") and expected in err, err
        assert "Traceback" not in err and err.count("\n") == 1


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_and_a_rerun_resumes(tmp_path, cli):
    out = tmp_path / "auto"
    args = ["auto", "--data", "iris", "--budget", "20s", "--final-seeds", "3", "--out", str(out)]
    script = tmp_path / "ctrl_c.py"
    script.write_text(CTRL_C_IN_SECOND_FINAL_RUN)
    proc = subprocess.run(
        [sys.executable, str(script), *args, "--quiet", "--no-report"], capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert proc.returncode == 130, proc.stderr
    assert "interrupted" in proc.stderr and "resume" in proc.stderr and "Traceback" not in proc.stderr
    storage = f"sqlite:///{out / 'auto.db'}"
    state = optuna.load_study(study_name="auto", storage=storage).user_attrs
    assert {"stage:search", "stage:ablation"} <= set(state) and "stage:final" not in state
    first_seed = state["stage:final_runs"]
    assert len(first_seed) == 1  # one final seed finished before the interrupt
    trials = len(optuna.load_study(study_name="auto-search", storage=storage).trials)

    code, stdout, _ = cli([*args, "--json"])
    assert code == 0
    result = json.loads(stdout)
    assert len(optuna.load_study(study_name="auto-search", storage=storage).trials) == trials  # no new trial
    runs = {str(r["seed"]): r for r in result["final"]["runs"]}
    assert len(runs) == 3 and all(runs[s] == r for s, r in first_seed.items())  # kept, not retrained
    assert (
        result["final"]["test"]["n"] == 3
        and (out / "best.yaml").is_file()
        and (out / "report.html").is_file()
    )
    budget = result["budget"]
    assert budget["total_s"] == 20.0 and budget["stages"]["final"]["spent_s"] > 0
