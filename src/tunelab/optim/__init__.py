"""Optimizers and learning-rate schedules, built on ``torch.optim`` and ``torch.optim.lr_scheduler``.

Two registries back the recipe's ``optimizer:`` and ``schedule:`` sections; each entry's keyword
parameters (type hints and defaults) are the recipe schema::

    optimizer: {name: momentum, lr: 0.01, momentum: 0.9, weight_decay: 5.0e-4}
    schedule:  {name: cosine, warmup_epochs: 2, warmup: linear, eta_min: 0.0}

``build_optimizer`` splits the parameters into a decayed group (weight matrices and kernels) and a
non-decayed one (biases, norm scales; see ``tunelab.params``); with ``optimizer.layer_decay`` < 1
each of the model's blocks (``layer_blocks``) gets its own pair of groups and a learning rate
scaled by ``layer_decay ** depth`` (discriminative learning rates). ``build_schedule`` wraps the torch
scheduler in a ``Schedule`` that the loop steps once per batch (``onecycle``, ``cyclic``) or once per
epoch (all others; ``plateau`` reads the monitored validation metric), with an optional warmup
chained in front.

Epoch counts in a schedule's own parameters (``step_size``, ``milestones``, ``step_size_up``)
count from the end of warmup: the schedule's clock starts when warmup ends, as torch's
``SequentialLR`` restarts it, and cosine or onecycle span exactly the epochs after warmup.

    >>> import torch
    >>> from tunelab.spec import OptimizerSpec, ScheduleSpec
    >>> net = torch.nn.Linear(4, 2)
    >>> opt = build_optimizer(net, OptimizerSpec("sgd", params={"lr": 0.1}))
    >>> sched = build_schedule(opt, ScheduleSpec("step", params={"step_size": 2}), epochs=4,
    ...                        steps_per_epoch=10, mode="min")
    >>> lrs = []
    >>> for epoch in range(4):
    ...     lrs.append(round(sched.lr(), 6))
    ...     opt.step()  # the loop's training steps
    ...     sched.step_epoch(None)
    >>> lrs
    [0.1, 0.1, 0.01, 0.01]
"""

from tunelab.optim.optimizers import OPTIMIZERS, build_optimizer, layer_blocks, param_groups
from tunelab.optim.schedules import (
    SCHEDULES,
    WARMUP_START_FACTOR,
    WARMUPS,
    Horizon,
    Schedule,
    build_schedule,
    check_schedule,
)

__all__ = [
    "OPTIMIZERS",
    "SCHEDULES",
    "WARMUPS",
    "WARMUP_START_FACTOR",
    "Horizon",
    "Schedule",
    "build_optimizer",
    "build_schedule",
    "check_schedule",
    "layer_blocks",
    "param_groups",
]
