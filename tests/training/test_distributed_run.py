"""Training on two CPU processes, launched as the DVC stage launches it (``workflow/scripts/train.py`` with
``train.nproc: 2`` starts torchrun): repeatable to the byte, within a measured tolerance of one process on
the same global batch, resumable after a kill. The tiny profile's network and patches, on tiny cached cases.

Tolerance, measured on this profile (AdamW, 12 steps; printed with ``-s``): the weights differ by 1.4e-2
relative (L2 over the network; channels-last 3D, the default, on an Intel Xeon with AVX-512 and under the
AVX2 proxy alike; 3.6e-3 channels-first), by about 4 lr at most in one element, the validation Dice by
< 1e-3. The ranks sum the gradient in another order, and the convolution kernels of one sample differ from
those of two; Adam turns such rounding-level differences into lr-sized steps where a gradient is near zero.
The first step's gradients agree to 2e-5. With SGD the same runs differ by ~1e-8 (measured channels-first).
"""

import json
import os
import runpy
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch
import yaml

from bratseg.config import deep_merge
from bratseg.training.distributed import SINGLE

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "workflow" / "scripts" / "train.py"
EPOCHS = 4
OUTPUTS = ("models/best.pt", "models/last.pt", "curves/loss.csv", "curves/val_dice.csv")


def env(store: Path | None = None) -> dict[str, str]:
    """The test's environment; ``store``: an MLflow sqlite file shared by runs (its tables are made once),
    else each run's own, in its folder (as the DVC stage keeps it)."""
    out = {
        k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "DVC_ROOT", "DVC_EXP_NAME")
    }
    out["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), *filter(None, [os.environ.get("PYTHONPATH")])])
    out["PYTHONUNBUFFERED"] = "1"
    if store is not None:
        out["MLFLOW_TRACKING_URI"] = f"sqlite:///{store}"
    return out


@pytest.fixture(scope="module")
def cohort(tmp_path_factory, make_case, raw_params, schema) -> Path:
    """Tiny cached cases, their split and manifest, and the tiny profile's params for 1 and 2 processes."""
    root = tmp_path_factory.mktemp("ddp")
    shapes = [(23, 27, 19), (25, 21, 29), (17, 31, 23)]
    ids = [make_case(root / "cases", f"BraTS2021_{i:05d}", s, i).case_id for i, s in enumerate(shapes)]
    (root / "splits.json").write_text(json.dumps({"train": ids[:2], "val": ids[2:]}))
    (root / "manifest.csv").write_text("case_id\n" + "\n".join(ids) + "\n")
    fingerprint = {"labels": {"name": "brats2021"}, "target_spacing_mm": None}
    (root / "fingerprint.json").write_text(json.dumps(fingerprint))
    tiny = yaml.safe_load((ROOT / "tests" / "profiles" / "tiny.yaml").read_text())
    base = deep_merge(raw_params, tiny)
    for nproc in (1, 2):
        train = {"epochs": EPOCHS, "num_threads": 1, "nproc": nproc}
        (root / f"params{nproc}.yaml").write_text(yaml.safe_dump(deep_merge(base, {"train": train})))
    return root


def command(cohort: Path, nproc: int) -> list[str]:
    return [
        sys.executable,
        str(SCRIPT),
        "--params",
        str(cohort / f"params{nproc}.yaml"),
        "--cases",
        str(cohort / "cases"),
        "--split",
        str(cohort / "splits.json"),
        "--manifest",
        str(cohort / "manifest.csv"),
        "--fingerprint",
        str(cohort / "fingerprint.json"),
        "--models",
        "models",
        "--curves",
        "curves",
        "--log",
        "logs/train.log",
    ]


def train(
    cohort: Path, name: str, nproc: int, check: bool = True, own_store: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run the stage script in ``cohort/name`` (its own models, curves and logs)."""
    cwd = cohort / name
    cwd.mkdir(exist_ok=True)
    run_env = env(None if own_store else cohort / "mlflow.db")
    proc = subprocess.run(
        command(cohort, nproc), cwd=cwd, env=run_env, capture_output=True, text=True, timeout=900
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return proc


def outputs(run: Path) -> dict[str, bytes]:
    return {name: (run / name).read_bytes() for name in OUTPUTS}


def weights(path: Path) -> dict[str, torch.Tensor]:
    return {k: v.double() for k, v in torch.load(path, weights_only=True)["model"].items()}


@pytest.fixture(scope="module")
def two(cohort) -> subprocess.CompletedProcess[str]:
    return train(cohort, "two", 2, own_store=True)


def test_two_processes_log_and_track_once(cohort, two):
    run = cohort / "two"
    for epoch in range(1, EPOCHS + 1):
        assert two.stderr.count(f"epoch {epoch}/{EPOCHS} ") == 1  # console progress from rank 0 only
    assert "launching torchrun --standalone --nproc_per_node 2" in two.stderr
    assert "x 2 processes" in (run / "logs/train.log").read_text()
    assert "epoch" not in (run / "logs/train.rank1.log").read_text()
    con = sqlite3.connect(run / "mlflow.db")
    try:
        runs = con.execute("SELECT run_uuid, status FROM runs").fetchall()
        nproc = con.execute("SELECT value FROM params WHERE key = 'train.nproc'").fetchall()
    finally:
        con.close()
    assert len(runs) == 1 and runs[0][1] == "FINISHED" and nproc == [("2",)]
    assert json.loads((run / "models/run.json").read_text())["run_id"] == runs[0][0]


def test_two_processes_repeated_give_the_same_bytes(cohort, two):
    train(cohort, "two-again", 2)
    assert outputs(cohort / "two-again") == outputs(cohort / "two")


def test_two_processes_match_one_process_of_the_same_global_batch(cohort, two):
    train(cohort, "one", 1)
    one, both = weights(cohort / "one/models/last.pt"), weights(cohort / "two/models/last.pt")
    assert one.keys() == both.keys()
    diff = torch.cat([(one[k] - both[k]).flatten() for k in one])
    relative = float(diff.norm() / torch.cat([one[k].flatten() for k in one]).norm())
    print(f"\n1 vs 2 processes: weights max abs {float(diff.abs().max()):.3g}, relative L2 {relative:.3g}")
    assert 0 < relative < 3e-2
    assert diff.abs().max() < 2e-2
    lowest = [k for k in one if k.startswith("heads.1.")]  # loss weight 0: no gradient in either run
    assert lowest and all(torch.equal(one[k], both[k]) for k in lowest)
    history = [
        json.loads(torch.load(cohort / r / "models/last.pt", weights_only=True)["history"])
        for r in ("one", "two")
    ]
    for a, b in zip(*history, strict=True):
        dice = max(abs(a[k] - b[k]) for k in a if k.startswith("val_dice_"))
        loss = a["train_loss"] - b["train_loss"]
        print(f"epoch {a['epoch']:.0f}: train loss {loss:+.2g}, val Dice (max over regions) {dice:.2g}")
        assert abs(loss) < 1e-3
        assert dice < 1e-2


GRADIENT = """
import sys
from pathlib import Path
import torch
from bratseg.cache import PreprocessedCohort
from bratseg.labels import BRATS_2021
from bratseg.models.registry import build_model
from bratseg.paramsfile import load_params
from bratseg.runtime import configure_determinism, seed_everything
from bratseg.training import distributed
from bratseg.training.distributed import World
from bratseg.training.loop import ModelLoss
from bratseg.training.losses import build_loss
from bratseg.training.sampler import PatchDataset, rank_indices


def first_step_gradient(root, world):
    \"\"\"The gradient of the first global batch of the tiny profile, as ``world`` computes it.\"\"\"
    params = load_params(root / "params2.yaml")
    tp = params.train
    device = distributed.init(world, torch.device("cpu"))
    configure_determinism(1)
    seed_everything(tp.seed)
    model = build_model(params.model, 4, BRATS_2021.n_outputs(tp.target), params.net)
    files = [root / f for f in ("cases", "splits.json", "manifest.csv", "fingerprint.json")]
    cohort = PreprocessedCohort(*files)
    data = PatchDataset(
        cohort.load_split()["train"], patch_size=tp.patch_size, samples_per_epoch=tp.batch_size,
        foreground_fraction=tp.foreground_fraction, target=tp.target, seed=tp.seed, augment_params=tp.augment,
    )
    items = [data[i] for i in rank_indices(tp.batch_size, tp.batch_size, world.rank, world.size)]
    loss = build_loss(tp.target, tp.loss, tp.focal_gamma, model.n_outputs, distributed.global_sums(world))
    step = distributed.wrap_model(ModelLoss(model, loss, "cpu", None), world, device)
    step(torch.stack([x for x, _ in items]), torch.stack([y for _, y in items])).backward()
    return {k: p.grad for k, p in model.named_parameters() if p.grad is not None}


if __name__ == "__main__":
    import os
    world = World.from_env(os.environ)
    grads = first_step_gradient(Path(sys.argv[1]), world)
    if world.main:
        torch.save(grads, sys.argv[2])
    distributed.shutdown(world)
"""


def test_two_processes_give_the_one_process_gradient(cohort, tmp_path):
    """Real collectives: the first step's gradient on 2 x 1 patches is that of one process on 2 patches, up to
    rounding (the loss's batch Dice over the global batch, DDP's average of the rest)."""
    script = tmp_path / "gradient.py"
    script.write_text(GRADIENT)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    out = subprocess.run(
        [*cmd, str(script), str(cohort), str(tmp_path / "two.pt")], env=env(), capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-4000:]
    two = torch.load(tmp_path / "two.pt", weights_only=True)
    one = runpy.run_path(str(script))["first_step_gradient"](cohort, SINGLE)
    assert one.keys() == two.keys() and not any(k.startswith("heads.1.") for k in one)
    error = max(float((one[k] - two[k]).abs().max() / one[k].abs().max()) for k in one)
    print(f"\nfirst-step gradient, 1 vs 2 processes: max |difference| / max |gradient| = {error:.2g}")
    assert error < 1e-4


def test_a_killed_run_resumes_to_the_uninterrupted_bytes(cohort, two):
    run = cohort / "killed"
    run.mkdir()
    launcher = subprocess.Popen(
        command(cohort, 2),
        cwd=run,
        env=env(cohort / "mlflow.db"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    last = run / "models/last.pt"
    workers: list[psutil.Process] = []
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and launcher.poll() is None:
        if len(workers) < 2:  # the workers start one after the other; their own data-loading processes
            workers = psutil.Process(launcher.pid).children()  # (train.num_workers) are not counted
        if last.exists() and torch.load(last, weights_only=True)["epoch"] >= 1:
            break  # as early as possible: the workers notice the launcher's end within half a second
            # (distributed.exit_with_parent), and on a loaded machine they may finish an epoch or two before
        time.sleep(0.02)
    assert launcher.poll() is None, "training finished before it could be killed"
    launcher.send_signal(signal.SIGKILL)  # the launcher only: its workers must not train on
    launcher.wait()
    _, alive = psutil.wait_procs(workers, timeout=20)
    assert len(workers) == 2 and not alive
    killed_at = torch.load(last, weights_only=True)["epoch"]
    assert 1 <= killed_at < EPOCHS
    resumed = train(cohort, "killed", 2)
    assert f"resuming after epoch {killed_at} of {EPOCHS}" in resumed.stderr
    assert outputs(run) == outputs(cohort / "two")


def test_settings_two_cpu_processes_cannot_run_fail_in_one_line_before_launching(cohort):
    params = yaml.safe_load((cohort / "params2.yaml").read_text())
    params["unet"]["norm"] = "batch"
    (cohort / "params2.yaml").rename(cohort / "params2.keep")
    try:
        (cohort / "params2.yaml").write_text(yaml.safe_dump(params))
        failed = train(cohort, "batchnorm", 2, check=False)
    finally:
        (cohort / "params2.keep").replace(cohort / "params2.yaml")
    assert failed.returncode == 1
    assert failed.stderr.strip().splitlines() == [
        "error: train.nproc: 2 CPU processes with batch norm: torch syncs batch statistics on GPUs only "
        "(SyncBatchNorm); use norm: instance, nproc: 1, or CUDA"
    ]


def test_a_failed_rank_is_reported_in_one_line(tmp_path):
    script = tmp_path / "fail.py"
    script.write_text("import os, sys\nsys.exit(3 if os.environ['RANK'] == '1' else 0)\n")
    code = (
        "import sys\nfrom pathlib import Path\nfrom bratseg.training.distributed import LaunchError, launch\n"
        f"try:\n    launch(Path({str(script)!r}), [], 2)\nexcept LaunchError as exc:\n    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env(), capture_output=True, text=True, timeout=300)
    assert out.stdout.strip() == "training process 1 of 2 exited with status 3", out.stderr
