"""The Optuna side of a sweep: samplers, pruners, storage, and handing out trials to workers.

Several workers (processes on one machine, or machines sharing a database) run one sweep by
opening the same study. Trials are handed out by :func:`acquire_trial`, which counts the trials
already started and asks Optuna for a new one only while the sweep's budget is not spent, under a
lock: a file lock beside an SQLite database, a PostgreSQL advisory lock for a ``postgresql://``
URL. Optuna numbers trials atomically in the database and the grid sampler maps trial ``k`` to
grid point ``k``, so a grid sweep runs every point exactly once however many workers share it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import itertools
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from sitsformer.tuning.spec import ParamSpec, SweepSpec, SweepSpecError, mask_url, scrub

# User attribute marking a trial that was interrupted and queued again (it no longer counts).
RETRIED_ATTR = "retried_as"


class SweepGridSampler(optuna.samplers.GridSampler):
    """Optuna's grid sampler, visiting the grid in the sweep file's order.

    Grid point ``k`` is the ``k``-th of ``itertools.product`` over the parameters as the file
    lists them (the last one varies fastest), and trial ``k`` runs point ``k`` (Optuna's own
    order is a seeded shuffle). There is no ``study.stop()`` once the grid is used up: trials
    are handed out with ask/tell by :func:`acquire_trial`, whose budget (the grid size) ends
    the sweep, and ``study.stop()`` is only allowed inside ``study.optimize``.
    """

    def __init__(self, grid: dict[str, list[Any]], seed: int | None = None) -> None:
        super().__init__(grid, seed=seed)
        names = list(grid)
        order = [names.index(n) for n in self._param_names]  # file order -> sorted names
        self._all_grids = [tuple(point[i] for i in order)
                           for point in itertools.product(*grid.values())]

    def after_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial,
                    state: TrialState, values: Any) -> None:
        return None


def make_sampler(spec: SweepSpec) -> optuna.samplers.BaseSampler:
    """TPE for ``bayes``, the grid sampler for ``grid``, the random sampler for ``random``."""
    if spec.method == "grid":
        return SweepGridSampler(spec.grid(), seed=spec.seed)
    if spec.method == "random":
        return optuna.samplers.RandomSampler(seed=spec.seed)
    # constant_liar: running trials count as bad guesses, so parallel workers spread out
    return optuna.samplers.TPESampler(seed=spec.seed, constant_liar=True,
                                      n_startup_trials=min(10, max(2, (spec.trials or 10) // 4)))


def reseed_sampler(sampler: optuna.samplers.BaseSampler, seed: int) -> None:
    """Give the sampler's random state a new seed.

    :func:`acquire_trial` seeds it from the sweep's seed and the trial's position in the
    study, so a sweep run in one go, or stopped and continued, draws the same parameters, and
    workers sharing a study (each with its own sampler object) never repeat each other's draws.
    """
    if isinstance(sampler, optuna.samplers.TPESampler):
        sampler._rng.rng.seed(seed)
        sampler._random_sampler._rng.rng.seed(seed)
    elif isinstance(sampler, optuna.samplers.RandomSampler):
        sampler._rng.rng.seed(seed)


def make_pruner(spec: SweepSpec) -> optuna.pruners.BasePruner:
    """The pruner the sweep asks for (median by default; ``none`` never prunes)."""
    options = {k: v for k, v in spec.pruner.items() if k != "type"}
    kind = spec.pruner.get("type", "median")
    if kind == "none":
        return optuna.pruners.NopPruner()
    if kind == "hyperband":
        options.setdefault("max_resource", spec.epochs or "auto")
        return optuna.pruners.HyperbandPruner(**options)
    options.setdefault("n_startup_trials", 5)  # Optuna's defaults: compare with 5 finished trials
    options.setdefault("n_warmup_steps", 0)
    return optuna.pruners.MedianPruner(**options)


def make_storage(spec: SweepSpec) -> optuna.storages.BaseStorage:
    """The study's storage: the sweep's URL, by default an SQLite file in ``output_dir``.

    With ``heartbeat_interval`` set, a worker that dies leaves a trial that the next worker marks
    failed and queues again (same parameters) after twice that many seconds.
    """
    url = spec.resolved_storage()
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        # Several processes write to one file: wait for the lock instead of failing at once.
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 60}}
    if spec.heartbeat_interval:
        kwargs["heartbeat_interval"] = spec.heartbeat_interval
        kwargs["grace_period"] = 2 * spec.heartbeat_interval
        new_api = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            if new_api is not None:  # Optuna >= 4.9
                kwargs["heartbeat_stale_trial_callback"] = new_api(max_retry=1)
            else:
                kwargs["failed_trial_callback"] = optuna.storages.RetryFailedTrialCallback(
                    max_retry=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(url, **kwargs)


# Study user attribute holding the sweep definition (method, metric, parameters).
DEFINITION_ATTR = "sitsformer:definition"
SOURCE_ATTR = "sitsformer:source"


def open_study(spec: SweepSpec) -> optuna.Study:
    """Create the study, or load it when it exists (an interrupted sweep continues).

    Under the sweep's lock: workers starting at the same moment on a new SQLite file would
    otherwise race to create its tables. A new study records the sweep's definition; joining an
    existing one whose definition (search space, method or metric) differs is refused.

    Raises:
        SweepSpecError: the study exists with another definition (naming both sweeps and what
            differs), or the storage cannot be opened (the URL's password masked).
    """
    url = spec.resolved_storage()
    try:
        with study_lock(spec):
            study = optuna.create_study(
                study_name=spec.study_name, storage=make_storage(spec),
                sampler=make_sampler(spec), pruner=make_pruner(spec), direction=spec.direction,
                load_if_exists=True)
            check_definition(study, spec)
    except SweepSpecError as err:
        raise SweepSpecError(scrub(str(err), url)) from None
    except Exception as err:  # noqa: BLE001 - database errors: re-raised with the password out
        raise SweepSpecError(scrub(f"cannot open sweep study {spec.study_name!r} in storage "
                                   f"{mask_url(url)}: {type(err).__name__}: {err}", url)) from None
    return study


def check_definition(study: optuna.Study, spec: SweepSpec) -> None:
    """Record the sweep definition on a new study; refuse a study made by a different sweep."""
    import json

    ours = json.loads(json.dumps(spec.definition(), default=repr))
    attrs = study.user_attrs
    if DEFINITION_ATTR not in attrs:
        if study.get_trials(deepcopy=False):
            raise SweepSpecError(
                f"{spec.source}: study {spec.study_name!r} in {spec.masked_storage()} already "
                "has trials but no sweep definition (not made by sitsformer sweep); give "
                "another study_name")
        study.set_user_attr(DEFINITION_ATTR, ours)
        study.set_user_attr(SOURCE_ATTR, spec.source)
        return
    theirs = attrs[DEFINITION_ATTR]
    if theirs == ours:
        return
    diff = []
    for key in ("method", "metric"):
        if theirs.get(key) != ours.get(key):
            diff.append(f"{key}: {theirs.get(key)} vs {ours.get(key)}")
    tp, op = theirs.get("parameters", {}), ours.get("parameters", {})
    for key in sorted(set(tp) | set(op)):
        if tp.get(key) != op.get(key):
            diff.append(f"parameters.{key}: {_short_param(tp.get(key))} vs "
                        f"{_short_param(op.get(key))}")
    raise SweepSpecError(
        f"study {spec.study_name!r} in {spec.masked_storage()} belongs to another sweep: it was "
        f"made by {attrs.get(SOURCE_ATTR, '?')}, this is {spec.source}; they differ in "
        + "; ".join(diff) + ". Give this sweep its own study_name (or leave study_name unset: "
        "the default name is derived from the sweep definition)")


def _short_param(p: dict[str, Any] | None) -> str:
    if p is None:
        return "absent"
    if p.get("kind") in ("categorical", "constant"):
        return f"{p['kind']} {p.get('values')}"
    return f"{p.get('kind')} [{p.get('low')}, {p.get('high')}]" + (
        f" step {p['step']}" if p.get("step") else "")


@contextlib.contextmanager
def study_lock(spec: SweepSpec, study: optuna.Study | None = None) -> Iterator[None]:
    """A lock shared by every worker of this sweep.

    SQLite: an exclusive ``flock`` on ``<database>.lock`` (processes on one machine).
    PostgreSQL: ``pg_advisory_lock`` on a key derived from the study name (any machine).
    Other databases: no lock (budget may be overshot by up to workers - 1 trials).
    """
    url = spec.resolved_storage()
    if url.startswith("sqlite:///"):
        lock_path = Path(url[len("sqlite:///"):] + ".lock")
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(lock_path, "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        return
    if url.startswith("postgresql") and study is not None:  # pragma: no cover - needs a server
        import sqlalchemy

        key = int.from_bytes(hashlib.sha1(spec.study_name.encode()).digest()[:7], "big")
        storage = getattr(study._storage, "_backend", study._storage)  # unwrap the cache
        engine = storage.engine  # type: ignore[attr-defined]
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": key})
            try:
                yield
            finally:
                conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
        return
    yield


def superseded(trials: list[optuna.trial.FrozenTrial]) -> set[int]:
    """Numbers of trials queued again: interrupted ones, and stale ones Optuna's heartbeat
    check failed and copied (the copy names the original in ``failed_trial``)."""
    out = {t.number for t in trials if RETRIED_ATTR in t.user_attrs}
    out |= {t.system_attrs["failed_trial"] for t in trials if "failed_trial" in t.system_attrs}
    return out


def counted_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """Trials that use up the budget: started or finished, not queued, not superseded."""
    trials = study.get_trials(deepcopy=False)
    skip = superseded(trials)
    return [t for t in trials if t.state != TrialState.WAITING and t.number not in skip]


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` of this machine is alive (a zombie, killed but not yet reaped
    by its parent, is not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def reclaim_dead_trials(study: optuna.Study) -> list[int]:
    """Mark failed, and queue again with the same parameters, the RUNNING trials whose worker
    ran on this host and whose process is gone (``host`` and ``pid`` user attributes); call
    under the sweep's lock. Returns their numbers. Trials of other hosts are left to the
    heartbeat."""
    host = os.uname().nodename
    storage = study._storage
    out = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        pid = t.user_attrs.get("pid")
        if t.user_attrs.get("host") != host or not isinstance(pid, int) or process_alive(pid):
            continue
        storage.set_trial_user_attr(t._trial_id, "error", f"its worker (pid {pid} on host "
                                    f"{host}) is gone; queued again by pid {os.getpid()}")
        storage.set_trial_user_attr(t._trial_id, RETRIED_ATTR, "queued")
        storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL)
        study.enqueue_trial(dict(t.params), skip_if_exists=False)
        out.append(t.number)
    return out


def acquire_trial(study: optuna.Study, spec: SweepSpec) -> optuna.Trial | None:
    """A new trial for this worker, or None when the sweep's budget is spent. Trials whose
    worker process died on this host are queued again first (:func:`reclaim_dead_trials`)."""
    with study_lock(spec, study):
        reclaim_dead_trials(study)
        if spec.heartbeat_interval:
            # trials whose worker stopped beating are marked failed and queued again
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                optuna.storages.fail_stale_trials(study)
        if len(counted_trials(study)) >= spec.n_trials():
            return None
        position = len(study.get_trials(deepcopy=False))
        reseed_sampler(study.sampler, (spec.seed * 1_000_003 + position) % 2**32)
        with warnings.catch_warnings():
            # Optuna warns that heartbeats are meant for Study.optimize: we beat them ourselves
            warnings.filterwarnings("ignore", message="Heartbeat of storage")
            trial = study.ask()
        if spec.heartbeat_interval:
            study._storage.record_heartbeat(trial._trial_id)  # alive from the first moment
        trial.set_user_attr("host", os.uname().nodename)  # see reclaim_dead_trials
        trial.set_user_attr("pid", os.getpid())
        return trial


def heartbeat(study: optuna.Study, trial: optuna.Trial) -> contextlib.AbstractContextManager:
    """While a trial runs, beat its heartbeat (when the storage has one) so that other workers
    can tell a live trial from one whose worker died."""
    from optuna.storages._heartbeat import get_heartbeat_thread

    return get_heartbeat_thread(trial._trial_id, study._storage)


def suggest(trial: optuna.Trial, parameters: list[ParamSpec]) -> dict[str, Any]:
    """Sample every parameter for a trial: ``{dotted key: value}``.

    Optuna records the parameters under their dotted keys, so the table and the best config use
    the same names as the training config.
    """
    out: dict[str, Any] = {}
    for p in parameters:
        if p.kind == "constant":
            value = p.values[0] if p.values else None
            trial.set_user_attr(f"fixed:{p.key}", value)
            out[p.key] = value
        elif p.kind == "categorical":
            out[p.key] = trial.suggest_categorical(p.key, p.values)
        elif p.is_int:
            out[p.key] = trial.suggest_int(p.key, int(p.low), int(p.high),
                                           step=int(p.step or 1), log=p.log)
        else:
            out[p.key] = trial.suggest_float(p.key, p.low, p.high, step=p.step, log=p.log)
    return out


def requeue(study: optuna.Study, trial: optuna.Trial, params: dict[str, Any], why: str) -> None:
    """Mark an interrupted trial failed and queue a fresh one with the same parameters."""
    trial.set_user_attr("error", why)
    trial.set_user_attr(RETRIED_ATTR, "queued")
    study.tell(trial, state=TrialState.FAIL)
    sampled = {k: v for k, v in trial.params.items()}
    study.enqueue_trial(sampled or params, skip_if_exists=False)


def worker_id() -> str:
    """A label for this worker (host and process id), stored with each trial."""
    return f"{os.uname().nodename}:{os.getpid()}"
