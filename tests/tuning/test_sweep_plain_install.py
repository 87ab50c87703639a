"""A sweep in a plain install (no scikit-learn) and in a user's matplotlib session."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

HERE = Path(__file__).resolve().parent

# A meta-path blocker installed before anything else: `import sklearn` fails as it does in an
# install without scikit-learn (it stays installed for the other tests).
BLOCK_SKLEARN = textwrap.dedent("""
    import sys
    class _NoSklearn:
        def find_spec(self, name, path=None, target=None):
            if name == "sklearn" or name.startswith("sklearn."):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None
    sys.meta_path.insert(0, _NoSklearn())
""")

SWEEP = {"method": "random", "metric": {"name": "val_oa", "goal": "maximize"}, "trials": 6,
         "epochs": 2, "seed": 0, "pruner": "none",
         "parameters": {"lr": {"distribution": "uniform", "min": 0.0, "max": 1.0},
                        "num_layers": {"values": [1, 2, 3]}}}


def _run(code: str, tmp_path: Path, block_sklearn: bool) -> subprocess.CompletedProcess:
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    if block_sklearn:
        (site / "sitecustomize.py").write_text(BLOCK_SKLEARN)
    env = dict(os.environ, OMP_NUM_THREADS="1", MPLBACKEND="")
    env.pop("MPLBACKEND")
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(HERE), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=300)


def test_blocker_really_hides_sklearn(tmp_path):
    r = _run("import sklearn", tmp_path, block_sklearn=True)
    assert r.returncode == 1 and "No module named 'sklearn'" in r.stderr


def test_sweep_without_sklearn_writes_every_plot(tmp_path):
    code = textwrap.dedent(f"""
        import json, sys
        from toy_runner import ToyRunner
        from sitsformer.tuning import run_sweep
        r = run_sweep({dict(SWEEP, output_dir=str(tmp_path / "out"))!r}, runner=ToyRunner(),
                      progress=False)
        assert "sklearn" not in sys.modules
        print(json.dumps(sorted(r.plots)))
    """)
    r = _run(code, tmp_path, block_sklearn=True)
    assert r.returncode == 0, r.stderr[-3000:]
    plots = json.loads(r.stdout.strip().splitlines()[-1])
    assert plots == ["intermediate_values", "optimization_history", "param_importances"]
    png = (tmp_path / "out" / "plots" / "param_importances.png").read_bytes()
    assert png.startswith(b"\x89PNG")


def test_sweep_leaves_matplotlib_style_and_backend_alone(tmp_path):
    code = textwrap.dedent(f"""
        import matplotlib
        matplotlib.use("svg")             # the user's choice
        import matplotlib.pyplot as plt
        plt.rcParams["lines.linewidth"] = 3.25
        before = {{k: repr(v) for k, v in matplotlib.rcParams.items()}}
        from toy_runner import ToyRunner
        from sitsformer.tuning import run_sweep
        r = run_sweep({dict(SWEEP, output_dir=str(tmp_path / "out"))!r}, runner=ToyRunner(),
                      progress=False)
        assert len(r.plots) == 3, r.plots
        after = {{k: repr(v) for k, v in matplotlib.rcParams.items()}}
        changed = sorted(k for k in before if before[k] != after[k])
        assert not changed, changed
        assert matplotlib.get_backend().lower() == "svg", matplotlib.get_backend()
        print("ok")
    """)
    r = _run(code, tmp_path, block_sklearn=False)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip().endswith("ok")
