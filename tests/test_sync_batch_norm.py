"""CPUSyncBatchNorm (tunelab.sync_batch_norm) against nn.BatchNorm*d on the whole batch, in 2 gloo
processes (tests/sync_batch_norm_worker.py), and its conversion and one-process behaviour here."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from tunelab.sync_batch_norm import CPUSyncBatchNorm, convert

WORKER = Path(__file__).with_name("sync_batch_norm_worker.py")


def test_two_processes_on_their_shards_match_batch_norm_on_the_whole_batch(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src"), "OMP_NUM_THREADS": "1"}
    init = tmp_path / "rendezvous"
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), str(rank), str(init)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for rank in range(2)
    ]
    outputs = []
    try:
        for proc in procs:
            outputs.append(proc.communicate(timeout=120)[0])
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    assert [p.returncode for p in procs] == [0, 0], "\n".join(o[-2000:] for o in outputs)


def test_convert_keeps_the_parameters_and_buffers_and_reaches_nested_layers():
    net = nn.Sequential(nn.Linear(3, 4), nn.Sequential(nn.BatchNorm1d(4), nn.ReLU()))
    bn = net[1][0]
    kept = [bn.weight, bn.bias, bn.running_mean, bn.running_var, bn.num_batches_tracked]
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    assert convert(net) is net
    synced = net[1][0]
    assert type(synced) is CPUSyncBatchNorm
    now = [synced.weight, synced.bias, synced.running_mean, synced.running_var, synced.num_batches_tracked]
    assert all(a is b for a, b in zip(kept, now, strict=True))
    assert synced.weight is optimizer.param_groups[0]["params"][2]  # the optimizer still trains it
    assert list(net.state_dict()) == list(
        nn.Sequential(nn.Linear(3, 4), nn.Sequential(nn.BatchNorm1d(4))).state_dict()
    )


def test_without_a_process_group_it_is_plain_batch_norm():
    torch.manual_seed(0)
    ref = nn.BatchNorm2d(3, momentum=None)
    mine = convert(nn.BatchNorm2d(3, momentum=None))
    for _ in range(2):
        x = torch.randn(4, 3, 5, 5)
        torch.testing.assert_close(mine(x), ref(x))
    torch.testing.assert_close(mine.running_var, ref.running_var)
    assert int(mine.num_batches_tracked) == 2
    with pytest.raises(ValueError, match="at least 2D"):
        mine(torch.randn(3))
