"""End-to-end fixtures: a throw-away copy of this repository on the tiny profile, and a command runner."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def project_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    for var in ("MLFLOW_TRACKING_URI", "DVC_ROOT", "DVC_EXP_NAME", "VIRTUAL_ENV_PROMPT"):
        env.pop(var, None)
    env.update(
        DVC_NO_ANALYTICS="1",
        GIT_AUTHOR_NAME="test",
        GIT_AUTHOR_EMAIL="test@example.org",
        GIT_COMMITTER_NAME="test",
        GIT_COMMITTER_EMAIL="test@example.org",
        PYTHONUNBUFFERED="1",
    )
    return env


def git_files(root: Path) -> list[str]:
    """Tracked and untracked-but-not-ignored files: the working tree as a clone of it would be."""
    out = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=root,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [f for f in out.split("\0") if f and (root / f).is_file()]


def make_project(dest: Path) -> Path:
    """Copy the working tree to ``dest``, apply the tiny profile, commit it as a fresh git repository."""
    for rel in git_files(ROOT):
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, dest / rel)
    template = ROOT / ".dvc" / "plots" / "offline.html"
    if template.exists():
        (dest / ".dvc" / "plots").mkdir(parents=True, exist_ok=True)
        shutil.copy2(template, dest / ".dvc" / "plots" / "offline.html")
    env = project_env()
    run = lambda *cmd: subprocess.run(cmd, cwd=dest, env=env, check=True, capture_output=True)  # noqa: E731
    run(sys.executable, "workflow/scripts/apply_profile.py", "tests/profiles/tiny.yaml")
    run("git", "init", "-q", "-b", "main")
    run("git", "add", "-A")
    run("git", "commit", "-q", "-m", "tiny profile")
    return dest


Runner = Callable[..., subprocess.CompletedProcess[str]]


def stage_command(project: Path, stage: str) -> list[str]:
    """The command of a DVC stage, as dvc.yaml declares it (so tests run exactly what `dvc repro` runs); a
    ``foreach`` stage by its generated name (``train@fold0``: the ``do`` body's command, for that item)."""
    import shlex

    import yaml

    name, _, item = stage.partition("@")
    body = yaml.safe_load((project / "dvc.yaml").read_text())["stages"][name]
    cmd = body["do"]["cmd"].replace("${item}", item) if item else body["cmd"]
    return shlex.split(cmd)


def runner(cwd: Path) -> Runner:
    def run(*cmd: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            cmd, cwd=cwd, env=project_env(), capture_output=True, text=True, timeout=timeout
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"{' '.join(cmd)} exited {proc.returncode}\n--- stdout\n{proc.stdout[-4000:]}\n"
                f"--- stderr\n{proc.stderr[-6000:]}"
            )
        return proc

    return run


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_project(tmp_path_factory.mktemp("project"))


@pytest.fixture(scope="module")
def run(project: Path) -> Runner:
    return runner(project)


@pytest.fixture(scope="module")
def train_cmd(project: Path) -> list[str]:
    return stage_command(project, "train@fold0")


@pytest.fixture(scope="module")
def env() -> dict[str, str]:
    return project_env()


# ---- one tiny project run through the whole pipeline, shared by several test files ----


def source_env(**extra: str) -> dict[str, str]:
    """:func:`project_env` with the package imported from ``src`` relative to each process's working
    directory: every process of a run (a DVC stage, a temporary experiment copy, a cluster job in a fresh
    folder) then runs the code of the tree it works in, not that of the checkout the tests started from."""
    env = project_env()
    env["PYTHONPATH"] = "src"
    env.update(extra)
    return env


def source_runner(cwd: Path, **extra_env: str) -> Runner:
    """:func:`runner` with :func:`source_env` (``extra_env`` added)."""

    def run(*cmd: str, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            cmd, cwd=cwd, env=source_env(**extra_env), capture_output=True, text=True, timeout=timeout
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"{' '.join(cmd)} exited {proc.returncode}\n--- stdout\n{proc.stdout[-4000:]}\n"
                f"--- stderr\n{proc.stderr[-6000:]}"
            )
        return proc

    return run


def copy_project(src: Path, dest: Path) -> Path:
    """A copy of a project folder (git history, DVC cache, outputs, ``.snakemake`` state), times kept."""
    shutil.copytree(src, dest, symlinks=True)
    return dest


def tree_digests(root: Path, *folders: str) -> dict[str, str]:
    """SHA-256 of every file under ``root/<folder>`` (DVC's ``.gitignore`` files left out), by path."""
    import hashlib

    out = {}
    for folder in folders:
        for f in sorted((root / folder).rglob("*")):
            if f.is_file() and f.name != ".gitignore":
                out[str(f.relative_to(root))] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="session")
def tiny_repro(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny project after one whole ``dvc repro``, results committed to its git repository.

    Shared by the test files of the cluster, sharing and MLflow-server tests as their reference local run:
    treat it as read-only (``copy_project`` it, or ``git clone`` it, before changing anything).
    """
    project = make_project(tmp_path_factory.mktemp("tiny-repro"))
    run = source_runner(project)
    run("dvc", "repro")
    run("git", "add", "-A")
    run("git", "commit", "-q", "-m", "results of dvc repro")
    return project


@pytest.fixture(scope="session")
def new_project() -> Callable[[Path], Path]:
    """:func:`make_project` (a fresh tiny project at the given folder, nothing run yet)."""
    return make_project


@pytest.fixture(scope="session")
def source_run() -> Callable[..., Runner]:
    """:func:`source_runner`: ``source_run(cwd, **extra_env)`` gives a command runner."""
    return source_runner


@pytest.fixture(scope="session")
def digests_of() -> Callable[..., dict[str, str]]:
    """:func:`tree_digests`: ``digests_of(root, *folders)``."""
    return tree_digests
