"""Experiment tracking: CSV + JSON-lines metrics, TensorBoard, Weights & Biases, PNG plots.

:class:`RunLogger` is used by the trainer on rank 0 only. Per epoch it appends one row to
``metrics.csv`` and one line to ``metrics.jsonl`` (always), writes TensorBoard scalars under
``tensorboard/`` (when ``tensorboard=True``), logs to W&B (``wandb=True``; needs the ``wandb``
package, and ``WANDB_MODE=offline`` works without an account) and redraws ``curves.png`` (loss,
accuracy and learning rate per epoch; after the first epoch, then at most every 30 s, and when
the run ends).

Per optimizer update it also writes ``step/train_loss`` and ``step/lr`` (TensorBoard: under
``tensorboard/steps/``, a second run in TensorBoard's list, at step = the number of updates so
far; W&B: against ``global_step``), and the test metrics of the best checkpoint go to both
under ``test/*`` (:meth:`RunLogger.log_test`). The W&B run id is kept in ``wandb_run_id.txt``
in the run folder (and in the trainer's checkpoints): a resumed run continues the same W&B run
(``wandb.init(id=..., resume="allow")``), and resumed TensorBoard logs drop what was written
after the checkpoint (``purge_step``: later epochs, later updates).

The metrics files are replaced whole (written to ``.<name>.tmp`` then renamed), so a kill at
any instant leaves either the old or the new file, never a cut line; on resume they are
rewritten from the checkpoint's ``history``, so no epoch's row is lost.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import time
from pathlib import Path
from typing import Any

from sitsformer.models.checkpoint import fault_point, write_error


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """The per-epoch records of a run (``metrics.jsonl``)."""
    path = Path(run_dir) / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


PLOT_INTERVAL_S = 30.0


class RunLogger:
    """Write per-epoch metrics of one run to ``run_dir``.

    Args:
        run_dir: the run folder (created).
        tensorboard: also write TensorBoard event files.
        wandb: also log to Weights & Biases (raises ImportError naming the package if missing).
        wandb_project: W&B project name.
        config: the resolved config, given to W&B.
        plots: draw ``curves.png``: after the first epoch, then at most every
            ``plot_interval_s`` seconds, and at :meth:`close` (a redraw costs about 0.3 s
            on a CPU, which was two thirds of a 250-epoch run on 112 pixels).
        plot_interval_s: least seconds between two redraws (0: after every epoch).
        resume_epoch: keep the existing metrics files, dropping records after this many
            epochs (a resumed run); also continues the W&B run of ``wandb_run_id.txt``.
        resume_step: the resumed run's optimizer updates so far: TensorBoard step scalars of
            later updates (written after the checkpoint) are dropped.
        wandb_id: the W&B run to continue (default: from ``wandb_run_id.txt`` when resuming,
            else a new one).
        history: the records to start from (a checkpoint's ``history``; wins over the files).
    """

    WANDB_ID_FILE = "wandb_run_id.txt"

    def __init__(self, run_dir: str | Path, tensorboard: bool = True, wandb: bool = False,
                 wandb_project: str = "sitsformer", config: dict[str, Any] | None = None,
                 plots: bool = True, resume_epoch: int | None = None,
                 resume_step: int | None = None, wandb_id: str | None = None,
                 history: list[dict[str, Any]] | None = None,
                 plot_interval_s: float = PLOT_INTERVAL_S, wandb_run: Any = None):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.jsonl = self.run_dir / "metrics.jsonl"
        self.csv = self.run_dir / "metrics.csv"
        self.records: list[dict[str, Any]] = []
        if history is not None:
            self.records = [self._plain(r) for r in history]
        elif resume_epoch is not None and self.jsonl.exists():
            self.records = [r for r in read_metrics(self.run_dir) if r["epoch"] <= resume_epoch]
        self._rewrite()
        self.plots = plots
        self.plot_interval_s = float(plot_interval_s)
        self._plotted_at: float | None = None  # time.monotonic() of the last redraw
        self._plot_pending = False  # records logged since the last redraw
        self.tb = None
        self.tb_steps = None  # per-update scalars, opened at the first update
        self._steps_purge = resume_step + 1 if resume_step is not None else None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            purge = resume_epoch + 1 if resume_epoch is not None else None
            self.tb = SummaryWriter(log_dir=str(self.run_dir / "tensorboard"), purge_step=purge)
        self.wandb_run = None
        self.wandb_run_id: str | None = None
        self._wandb_defined: set[str] = set()
        if wandb and wandb_run is not None:  # a run this process still has open: go on in it
            self.wandb_run = wandb_run
            self.wandb_run_id = wandb_run.id
            self._wandb_defined = set()
        elif wandb:
            try:
                import wandb as wandb_lib
            except ImportError as err:
                raise ImportError(
                    "logging.wandb=true needs the 'wandb' package (pip install wandb); "
                    "set WANDB_MODE=offline to log without an account"
                ) from err
            id_file = self.run_dir / self.WANDB_ID_FILE
            if wandb_id is None and resume_epoch is not None and id_file.is_file():
                wandb_id = id_file.read_text().strip() or None
            if wandb_lib.run is not None:
                # a run another logger left open (see close): finish it, or W&B's default
                # in scripts would hand it back instead of starting this run
                wandb_lib.run.finish()
            # the run's files go under the run folder unless WANDB_DIR says where
            self.wandb_run = wandb_lib.init(project=wandb_project, config=config or {},
                                            dir=os.environ.get("WANDB_DIR") or str(self.run_dir),
                                            name=self.run_dir.name,
                                            id=wandb_id, resume="allow" if wandb_id else None)
            self.wandb_run_id = self.wandb_run.id
            id_file.write_text(self.wandb_run_id + "\n")
            # Epoch records are plotted against "epoch", update records against "global_step".
            self.wandb_run.define_metric("global_step")
            self.wandb_run.define_metric("step/*", step_metric="global_step")
            self.wandb_run.define_metric("epoch")

    def _wandb_log(self, record: dict[str, Any], axis: str) -> None:
        for key in record:
            if key not in self._wandb_defined and key not in ("epoch", "global_step") \
                    and not key.startswith("step/"):
                self.wandb_run.define_metric(key, step_metric=axis)
                self._wandb_defined.add(key)
        self.wandb_run.log(record)

    @staticmethod
    def _plain(record: dict[str, Any]) -> dict[str, Any]:
        return {k: (float(v) if isinstance(v, float) else v) for k, v in record.items()}

    @staticmethod
    def _replace(path: Path, text: str) -> None:
        """Write ``text`` to ``path`` atomically (temporary file + rename)."""
        tmp = path.with_name(f".{path.name}.tmp")
        try:
            with tmp.open("w", newline="") as fh:
                fh.write(text)
            fault_point(f"metrics.written:{path.name}")
            os.replace(tmp, path)
        except OSError as err:
            tmp.unlink(missing_ok=True)
            raise write_error(path, err) from err

    def _rewrite(self) -> None:
        self._replace(self.jsonl, "".join(json.dumps(r) + "\n" for r in self.records))
        keys: list[str] = []
        for r in self.records:
            keys += [k for k in r if k not in keys]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=keys)
        writer.writeheader()
        writer.writerows(self.records)
        self._replace(self.csv, buf.getvalue())

    def log_epoch(self, record: dict[str, Any]) -> None:
        """Add one epoch's numbers (must include ``"epoch"``); both files are replaced whole
        (CSV columns may grow, e.g. metrics appearing later)."""
        record = self._plain(record)
        self.records.append(record)
        self._rewrite()
        step = int(record["epoch"])
        if self.tb is not None:
            for k, v in record.items():
                if k != "epoch" and isinstance(v, (int, float)) and math.isfinite(v):
                    self.tb.add_scalar(k.replace("_", "/", 1), v, step)
            self.tb.flush()
        if self.tb_steps is not None:
            self.tb_steps.flush()
        if self.wandb_run is not None:
            self._wandb_log(record, "epoch")
        if self.plots:
            now = time.monotonic()
            if self._plotted_at is None or now - self._plotted_at >= self.plot_interval_s:
                self.plot()
                self._plotted_at = now
                self._plot_pending = False
            else:
                self._plot_pending = True

    def log_step(self, step: int, loss: float, lr: float) -> None:
        """One optimizer update: its training loss and the learning rate it used, at
        ``step`` = the number of updates so far (1, 2, ...). TensorBoard tags
        ``step/train_loss`` and ``step/lr``; W&B the same keys against ``global_step``."""
        values = {"step/train_loss": float(loss), "step/lr": float(lr)}
        if self.tb is not None:
            if self.tb_steps is None:
                from torch.utils.tensorboard import SummaryWriter

                self.tb_steps = SummaryWriter(log_dir=str(self.run_dir / "tensorboard" / "steps"),
                                              purge_step=self._steps_purge)
            for k, v in values.items():
                if math.isfinite(v):
                    self.tb_steps.add_scalar(k, v, step)
        if self.wandb_run is not None:
            self.wandb_run.log({**values, "global_step": int(step)})

    def log_test(self, metrics: dict[str, Any], epoch: int | None = None) -> None:
        """The test metrics (keys ``test_*``) of the checkpoint chosen at ``epoch``: TensorBoard
        tags ``test/*`` at that epoch, W&B keys ``test_*`` (logged and in the run summary)."""
        values = {k: float(v) for k, v in metrics.items()
                  if isinstance(v, (int, float)) and not isinstance(v, bool)}
        step = int(epoch or 0)
        if self.tb is not None:
            for k, v in values.items():
                if math.isfinite(v):
                    self.tb.add_scalar(k.replace("_", "/", 1), v, step)
            self.tb.flush()
        if self.wandb_run is not None:
            self._wandb_log({**values, "epoch": step}, "epoch")
            self.wandb_run.summary.update(values)

    def plot(self) -> Path | None:
        """Draw loss, accuracy and learning rate per epoch to ``curves.png``."""
        if not self.records:
            return None
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        epochs = [r["epoch"] for r in self.records]
        fig, axes = plt.subplots(1, 3, figsize=(15, 4))
        for ax, (title, keys) in zip(axes, [
            ("loss", ("train_loss", "val_loss")),
            ("accuracy", ("train_acc", "val_oa")),
            ("learning rate", ("lr",)),
        ]):
            for key in keys:
                ys = [r.get(key) for r in self.records]
                if any(y is not None for y in ys):
                    ax.plot(epochs, [float("nan") if y is None else y for y in ys], marker="o",
                            label=key)
            ax.set_title(title)
            ax.set_xlabel("epoch")
            ax.grid(True, alpha=0.3)
            ax.legend()
            if title == "learning rate" and all((r.get("lr") or 0) > 0 for r in self.records):
                ax.set_yscale("log")
        fig.tight_layout()
        path = self.run_dir / "curves.png"
        tmp = self.run_dir / ".curves.png.tmp"
        try:
            fig.savefig(tmp, dpi=80, format="png")
            tmp.replace(path)
        except OSError as err:
            tmp.unlink(missing_ok=True)
            raise write_error(path, err) from err
        finally:
            plt.close(fig)
        return path

    def close(self, finish_wandb: bool = True) -> None:
        """Write what is pending and close the writers; ``finish_wandb=False`` leaves the W&B
        run open for another logger of this process (``wandb_run=``; W&B finishes it at exit
        otherwise), so the test metrics go to the same run without a second offline folder."""
        if self.plots and self._plot_pending:
            self.plot()
            self._plot_pending = False
        if self.tb is not None:
            self.tb.close()
        if self.tb_steps is not None:
            self.tb_steps.close()
        if self.wandb_run is not None and finish_wandb:
            self.wandb_run.finish()
