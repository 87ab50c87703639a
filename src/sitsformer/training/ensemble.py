"""``train.ensemble=K``: train K models with seeds ``seed*K .. seed*K+K-1``, keep one checkpoint.

The member seeds of two ensembles with different ``train.seed`` never overlap, so ensembles
compared over several seeds (``sitsformer benchmark``) are independent of each other.

Every member is an ordinary run (same data, split and statistics; only ``train.seed``
differs) in ``<run>/member<k>/``. Their test checkpoints (``train.test_checkpoint``) are joined
into a :class:`~sitsformer.models.ensemble.SITSEnsemble`, written as ``<run>/best.pt`` and
``<run>/last.pt`` (the same model; ``data_meta.json`` beside them) and scored on the test
split (``<run>/test_metrics.json``, with each member's scores beside it). ``sitsformer
evaluate`` and ``predict`` read the ensemble checkpoint like any other.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from sitsformer.models import load_checkpoint, model_from_checkpoint, save_checkpoint
from sitsformer.models.ensemble import SITSEnsemble
from sitsformer.training.config import ExperimentConfig, save_config
from sitsformer.training.distributed import is_main_process

__all__ = ["member_seed", "run_ensemble"]


def member_seed(seed: int, k: int, i: int) -> int:
    """``train.seed`` of member ``i`` of a ``k``-model ensemble run with ``train.seed=seed``:
    ``seed*k + i`` (within the seed range 0 .. 2**32 - 1)."""
    return (seed * k + i) % 2**32


def run_ensemble(cfg: ExperimentConfig, recipe: Any, run_dir: str | Path | None = None,
                 callbacks: Sequence[Any] = (), resume: str | None = None) -> dict[str, Any]:
    """Train the ``cfg.train.ensemble`` members of ``recipe`` and write the ensemble checkpoint;
    returns the run summary of :func:`~sitsformer.training.run.run` (``test`` = the ensemble's
    test scores) plus ``members`` (each member's summary without its trainer)."""
    from sitsformer.training.run import resolve_run_dir, run_folder_lock

    k = cfg.train.ensemble
    if resume is not None:
        raise ValueError("train.ensemble > 1 cannot resume; resume a member run "
                         "(<run>/member<k>/last.pt) with train.ensemble=1 instead")
    if recipe.name != "train":
        raise ValueError(f"train.ensemble > 1 is for supervised training, not {recipe.name!r}")
    run_path = Path(run_dir) if run_dir is not None else resolve_run_dir(cfg, None)
    with run_folder_lock(run_path):
        return _run_members(cfg, recipe, run_path, callbacks)


def _run_members(cfg: ExperimentConfig, recipe: Any, run_path: Path,
                 callbacks: Sequence[Any]) -> dict[str, Any]:
    """:func:`run_ensemble` once the run folder is resolved and locked."""
    from sitsformer.training.run import SITSFormerTrainer, classification_task, setup_run
    from sitsformer.training.run import run as run_one

    k = cfg.train.ensemble
    members, states = [], []
    for i in range(k):
        train = dataclasses.replace(cfg.train, seed=member_seed(cfg.train.seed, k, i), ensemble=1)
        out = run_one(dataclasses.replace(cfg, train=train), recipe,
                      run_dir=run_path / f"member{i}", callbacks=callbacks)
        trainer = out.pop("trainer", None)
        members.append(out)
        if out["status"] == "interrupted":
            return {**out, "run_dir": str(run_path), "members": members, "trainer": trainer,
                    "member": i}
        states.append(load_checkpoint(Path(out["run_dir"]) / f"{cfg.train.test_checkpoint}.pt"))
    specs = [json.dumps(s["input_spec"], sort_keys=True, default=str) for s in states]
    if len(set(specs)) != 1:
        raise RuntimeError("ensemble members were trained on differently prepared inputs")
    nets = []
    for s in states:
        net = model_from_checkpoint(s)
        net.load_state_dict(s["model_state_dict"])
        nets.append(net)
    ensemble = SITSEnsemble(nets)
    device, _ = setup_run(cfg, None, run_path)
    first = members[0]
    state = {"model_config": ensemble.config_dict(), "model_state_dict": ensemble.state_dict(),
             "epoch": sum(int(m["epochs"]) for m in members),
             "global_step": sum(int(m["global_step"]) for m in members),
             "config": cfg.to_dict(), "data_meta": first["data"],
             "input_spec": states[0]["input_spec"], "task": "classification",
             "members": [str(Path(m["run_dir"]) / f"{cfg.train.test_checkpoint}.pt")
                         for m in members]}
    best, last = run_path / "best.pt", run_path / "last.pt"
    if is_main_process():
        run_path.mkdir(parents=True, exist_ok=True)
        save_config(cfg, run_path / "config.yaml")
        # every member read the same data and split: the run folder says so like any run's
        shutil.copyfile(Path(first["run_dir"]) / "data_meta.json", run_path / "data_meta.json")
        save_checkpoint(best, state)
        save_checkpoint(last, state)
    out: dict[str, Any] = {
        "run_dir": str(run_path), "status": "completed", "epochs": state["epoch"],
        "global_step": state["global_step"], "best_epoch": None, "best_metric": None,
        "metric_name": first["metric_name"], "best_checkpoint": str(best),
        "last_checkpoint": str(last), "metrics_file": first["metrics_file"],
        "plots": first["plots"], "history": [], "data": first["data"],
        "input_spec": first["input_spec"], "members": members,
    }
    dm = recipe.data(cfg)
    test_loader = dm.test_loader()
    if test_loader is not None:
        trainer = SITSFormerTrainer(ensemble, torch.optim.SGD(ensemble.parameters(), lr=0.0),
                                    task=classification_task(cfg, dm), device=device,
                                    progress=False, handle_signals=False)
        test = trainer.evaluate(test_loader, prefix="test")
        out["test"] = test
        out["test_metrics_file"] = str(run_path / "test_metrics.json")
        if is_main_process():
            (run_path / "test_metrics.json").write_text(json.dumps(
                {"checkpoint": str(best), "ensemble": k, **test,
                 "members": [m.get("test") for m in members]}, indent=2))
    return out
