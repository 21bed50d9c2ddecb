"""The training core every trainer shares (pretrain/, finetune/, llava/, contrastive/).

* :mod:`.dist` — torchrun set-up: :class:`DistEnv`, :func:`setup_distributed`, :func:`teardown_distributed`
* :mod:`.schedule` — :func:`warmup_cosine_lr` (its warm-up convention is stated there, once), :func:`set_lr`
* :mod:`.state` — :func:`save_training_state` / :func:`load_training_state`: one atomic file with model,
  optimizer, scaler, step, data position, RNG states and extras
* :mod:`.precision` — :func:`autocast`, :func:`grad_scaler` for "fp32" / "bf16" / "fp16"; :func:`backward`
  and :func:`optimizer_step` (scaler, unscale, clip, step)
* :mod:`.log` — :class:`TrainLogger`: ``train_log.jsonl`` + TensorBoard scalars when installed

A loop built on it reads: ``env = setup_distributed(device)`` -> model, optimizer, ``scaler =
grad_scaler(...)`` -> ``load_training_state`` when resuming -> per step ``set_lr(opt,
warmup_cosine_lr(step, ...))``, forward under ``autocast(...)``, backward, step, ``logger.log(...)``,
``save_training_state(...)`` every so often on the main rank.
"""
from uta_bench.training.dist import DistEnv, setup_distributed, teardown_distributed
from uta_bench.training.log import TrainLogger
from uta_bench.training.precision import autocast, backward, grad_scaler, optimizer_step
from uta_bench.training.schedule import set_lr, warmup_cosine_lr
from uta_bench.training.state import TrainingState, load_training_state, save_training_state

__all__ = ["DistEnv", "setup_distributed", "teardown_distributed", "warmup_cosine_lr", "set_lr",
           "save_training_state", "load_training_state", "TrainingState", "autocast", "grad_scaler", "backward",
           "optimizer_step",
           "TrainLogger"]
