"""Offline pages in a real browser: the report and ``dvc plots show`` with the offline template.

The template itself is checked without a browser. The browser checks run ``scripts/check_browser.sh`` (and,
for the table sorting, headless Chromium directly); they are skipped only when no Chromium binary is found.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from bratseg.evaluation.figures import case_figure, metric_distribution_figure
from bratseg.evaluation.report import render_report, write_report
from bratseg.labels import BRATS_2021, EDEMA, ENHANCING, NECROSIS

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from plots_template import main as template_main  # a build helper, not package code
from plots_template import vega_lite_version

REGIONS = BRATS_2021.region_names

ROOT = Path(__file__).resolve().parents[2]
CHECK = ROOT / "scripts" / "check_browser.sh"
BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def _find_browser() -> str | None:
    if os.environ.get("CHROMIUM"):
        return shutil.which(os.environ["CHROMIUM"])
    return next((found for name in BROWSER_NAMES if (found := shutil.which(name))), None)


BROWSER = _find_browser()
needs_browser = pytest.mark.skipif(
    BROWSER is None, reason="no Chromium binary found (apt-get install chromium, or set CHROMIUM=/path/to/it)"
)
needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is needed for a scratch DVC repo")


def _check(*pages: Path, shots: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CHROMIUM": BROWSER or ""}
    return subprocess.run(["bash", str(CHECK), "-o", str(shots), *map(str, pages)], capture_output=True,
                          text=True, env=env, timeout=600, check=False)


# --- pages --------------------------------------------------------------------------------------------------
def _report_inputs() -> tuple[dict[str, object], pd.DataFrame, dict[str, bytes]]:
    rng = np.random.default_rng(5)
    shape, spacing = (17, 15, 11), (1.0, 1.0, 2.0)
    images = {m: np.where(np.ones(shape, bool), s * (1 + 0.1 * rng.standard_normal(shape)), 0.0)
              for m, s in {"t1": 500.0, "t1ce": 600.0, "t2": 200.0, "flair": 80.0}.items()}
    ref = np.zeros(shape, dtype=np.uint8)
    ref[5:12, 4:11, 3:8] = EDEMA
    ref[7:10, 6:9, 4:7] = ENHANCING
    ref[8, 7, 5] = NECROSIS
    ids = [f"case_{n:02d}" for n in range(6)] + ["<b>bold & 'quoted'</b>"]
    cases = pd.DataFrame({"case_id": ids})
    ranges = {"dice": (0.2, 1.0), "iou": (0.1, 1.0), "hd95": (1.0, 40.0), "sensitivity": (0.5, 1.0),
              "specificity": (0.99, 1.0), "pred_ml": (0.0, 50.0), "ref_ml": (0.0, 50.0)}
    for metric, (lo, hi) in ranges.items():
        for region in REGIONS:
            cases[f"{metric}_{region}"] = rng.uniform(lo, hi, len(ids))
    cases.loc[2, "hd95_ET"] = np.nan
    cases["dice_mean"] = cases[[f"dice_{r}" for r in REGIONS]].mean(axis=1)
    summary: dict[str, object] = {"n_cases": len(ids)}
    for metric in ("dice", "iou", "hd95", "sensitivity", "specificity"):
        summary[metric] = {r: {"mean": float(cases[f"{metric}_{r}"].mean()),
                               "median": float(cases[f"{metric}_{r}"].median())} for r in REGIONS}
    figures = {cid: case_figure(images, ref, np.roll(ref, n, axis=0), spacing, cid)
               for n, cid in enumerate(ids[:2])}
    return summary, cases, figures


@pytest.fixture(scope="module")
def report_page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    summary, cases, figures = _report_inputs()
    distribution = metric_distribution_figure(cases)
    page = render_report(summary, cases, case_figures=figures, distribution_png=distribution,
                         curves_png=distribution, info={"model": "unet", "git commit": "abc"})
    path = tmp_path_factory.mktemp("report") / "report.html"
    write_report(path, page)
    return path


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "plots" / "offline.html"
    assert template_main([str(path)]) == 0
    return path


@pytest.fixture(scope="module")
def dvc_page(tmp_path_factory: pytest.TempPathFactory, template: Path) -> Path:
    """``dvc plots show`` in a scratch repository whose ``plots.html_template`` is the offline template."""
    if shutil.which("git") is None:
        pytest.skip("git is needed for a scratch DVC repository")
    repo = tmp_path_factory.mktemp("dvcrepo")
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "GIT_CONFIG_NOSYSTEM": "1"}

    def run(*cmd: str) -> None:
        subprocess.run(cmd, cwd=repo, env=env, check=True, capture_output=True, timeout=300)

    run("git", "init", "-q")
    run(sys.executable, "-m", "dvc", "init", "-q")
    shutil.copy(template, repo / ".dvc" / "plots-offline.html")
    run(sys.executable, "-m", "dvc", "config", "plots.html_template", "plots-offline.html")
    train = repo / "reports" / "train"
    train.mkdir(parents=True)
    (train / "loss.csv").write_text("epoch,train_loss,lr\n1,0.9,0.003\n2,0.7,0.002\n3,0.6,0.001\n")
    (train / "val_dice.csv").write_text("epoch,val_dice_WT,val_dice_TC,val_dice_ET,val_dice_mean\n"
                                        "1,0.5,0.4,0.3,0.4\n3,0.8,0.7,0.6,0.7\n")
    (repo / "dvc.yaml").write_text(
        "plots:\n  - reports/train/loss.csv:\n      x: epoch\n      y: train_loss\n"
        "  - validation Dice:\n      x: epoch\n      y:\n"
        "        reports/train/val_dice.csv: [val_dice_WT, val_dice_TC, val_dice_ET, val_dice_mean]\n")
    run(sys.executable, "-m", "dvc", "plots", "show", "-o", "dvc_plots")
    return repo / "dvc_plots" / "index.html"


# --- the template (no browser needed) -----------------------------------------------------------------------
def test_template_inlines_vega_without_scripts_placeholder(template: Path) -> None:
    text = template.read_text(encoding="utf-8")
    assert "{plot_divs}" in text and "{refresh_tag}" in text and "{scripts}" not in text
    assert "window.vegaEmbed" in text and "vegaEmbed" in text
    assert not re.search(r"<script[^>]*\bsrc\s*=", text) and "<link" not in text
    assert vega_lite_version().split(".")[0] == "5"  # DVC's plot templates are Vega-Lite v5 specs


def test_dvc_plots_show_uses_the_offline_template(dvc_page: Path) -> None:
    text = dvc_page.read_text(encoding="utf-8")
    assert "cdn.jsdelivr.net" not in text
    assert not re.search(r"<script[^>]*\bsrc\s*=", text)
    assert text.count("vegaEmbed('#") == 2 and "window.vegaEmbed" in text


# --- in the browser -----------------------------------------------------------------------------------------
@needs_browser
def test_report_renders_offline_with_all_images(report_page: Path, tmp_path: Path) -> None:
    result = _check(report_page, shots=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok" in result.stdout and "4 image(s)" in result.stdout
    shot = Image.open(tmp_path / "report.png")
    assert shot.size[0] > 0 and np.asarray(shot.convert("L")).std() > 5


@needs_browser
@needs_git
def test_dvc_plots_render_offline(dvc_page: Path, tmp_path: Path) -> None:
    result = _check(dvc_page, shots=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 chart(s)" in result.stdout


@needs_browser
def test_check_fails_on_remote_broken_and_empty_pages(tmp_path: Path) -> None:
    buf = io.BytesIO()
    Image.new("RGB", (4, 4), (200, 0, 0)).save(buf, format="PNG")
    good_img = '<img src="data:image/png;base64,' + base64.b64encode(buf.getvalue()).decode() + '">'
    pages = {
        "cdn.html": f'<html><head><script src="https://cdn.jsdelivr.net/npm/vega@5"></script></head>'
                    f"<body>{good_img}</body></html>",
        "broken.html": '<html><body><img src="data:image/png;base64,AAAA"></body></html>',
        "empty.html": "<html><body><p>nothing to see</p></body></html>",
    }
    for name, text in pages.items():
        (tmp_path / name).write_text(text)
    result = _check(*(tmp_path / n for n in pages), shots=tmp_path / "shots")
    assert result.returncode == 1
    assert re.search(r"FAIL \S*cdn.html: references remote resources", result.stdout), result.stdout
    assert re.search(r"FAIL \S*broken.html: 1 of 1 image\(s\) not decoded", result.stdout), result.stdout
    assert re.search(r"FAIL \S*empty.html: nothing rendered", result.stdout), result.stdout


def numbers(values: list[str]) -> list[float]:
    """The numeric sort keys of a column, missing values left out."""
    return [float(v) for v in values if v != ""]


SORT_PROBE = """<script>
window.addEventListener("load", function () {
  var table = document.getElementById("case-table"), heads = table.tHead.rows[0].cells, out = {};
  function index(name) {
    for (var i = 0; i < heads.length; i++) {
      if (heads[i].getAttribute("data-column") === name) { return i; }
    }
  }
  function values(c) {
    return Array.prototype.map.call(table.tBodies[0].rows,
                                    function (r) { return r.cells[c].getAttribute("data-value"); });
  }
  out.initial = values(index("dice_mean"));
  heads[index("dice_WT")].click(); out.dice_up = values(index("dice_WT"));
  heads[index("dice_WT")].click(); out.dice_down = values(index("dice_WT"));
  heads[index("hd95_ET")].click(); out.hd95_up = values(index("hd95_ET"));
  heads[index("hd95_ET")].click(); out.hd95_down = values(index("hd95_ET"));
  heads[index("case_id")].click(); out.ids = values(index("case_id"));
  out.arrow = heads[index("case_id")].getAttribute("aria-sort");
  document.documentElement.setAttribute("data-sorted", JSON.stringify(out));
});
</script>"""


@needs_browser
def test_case_table_sorts_by_clicked_column_in_browser(report_page: Path, tmp_path: Path) -> None:
    probed = tmp_path / "probed.html"
    probed.write_text(report_page.read_text(encoding="utf-8") + SORT_PROBE, encoding="utf-8")
    cmd = [str(BROWSER), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000", "--dump-dom",
           probed.as_uri()]
    dom = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False).stdout
    match = re.search(r'data-sorted="([^"]*)"', dom)
    assert match, dom[:2000]
    out = json.loads(html.unescape(match.group(1)))
    assert numbers(out["initial"]) == sorted(numbers(out["initial"]))  # default: worst mean Dice first
    assert numbers(out["dice_up"]) == sorted(numbers(out["dice_up"]))
    assert numbers(out["dice_down"]) == sorted(numbers(out["dice_down"]), reverse=True)
    for key in ("hd95_up", "hd95_down"):  # the missing value sorts last both ways
        assert out[key][-1] == "" and "" not in out[key][:-1]
    assert numbers(out["hd95_up"]) == sorted(numbers(out["hd95_up"]))
    assert numbers(out["hd95_down"]) == sorted(numbers(out["hd95_down"]), reverse=True)
    assert out["ids"] == sorted(out["ids"]) and "<b>bold & 'quoted'</b>" in out["ids"]
    assert out["arrow"] == "ascending"
