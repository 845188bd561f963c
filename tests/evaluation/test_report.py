"""The HTML report: self-contained, complete, escaped, reproducible, with a sortable per-case table."""

from __future__ import annotations

import base64
import html
import io
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from bratseg.evaluation.figures import metric_distribution_figure
from bratseg.evaluation.report import render_report, write_report
from bratseg.evaluation.summary import METRICS, summarise
from bratseg.labels import BRATS_2021

REGIONS = BRATS_2021.region_names

EVIL_ID = '<img src=x onerror="alert(1)">&case'
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


def _png(width: int = 5, height: int = 3, value: int = 90) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (value, 30, 200)).save(buf, format="PNG")
    return buf.getvalue()


def _cases() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    ids = ["BraTS_003", "BraTS_001", EVIL_ID, "BraTS_010", "BraTS_002"]
    frame = pd.DataFrame({"case_id": ids})
    for region in REGIONS:
        frame[f"dice_{region}"] = rng.uniform(0.1, 1.0, len(ids))
        frame[f"iou_{region}"] = rng.uniform(0.1, 1.0, len(ids))
        frame[f"hd95_{region}"] = rng.uniform(1.0, 60.0, len(ids))
        frame[f"sensitivity_{region}"] = rng.uniform(0.5, 1.0, len(ids))
        frame[f"specificity_{region}"] = rng.uniform(0.99, 1.0, len(ids))
        frame[f"pred_ml_{region}"] = rng.uniform(0.0, 90.0, len(ids))
        frame[f"ref_ml_{region}"] = rng.uniform(0.0, 90.0, len(ids))
    frame.loc[3, "hd95_ET"] = np.nan  # undefined (empty masks under the "nan" convention)
    frame["dice_mean"] = frame[[f"dice_{r}" for r in REGIONS]].mean(axis=1)
    return frame


def _summary(cases: pd.DataFrame) -> dict[str, Any]:
    out = summarise(cases)
    out["iou"]["ET"]["median"] = None  # a statistic without any finite value
    return out


INFO = {"model": "unet", "MLflow run id": "0123abcd", "git commit": "deadbeef <dirty>", "params hash": "9f8e",
        "metrics.empty": "brats", "metrics.empty_hd95_mm": "373.13", "metrics.hd95": "pooled"}


@pytest.fixture(scope="module")
def cases() -> pd.DataFrame:
    return _cases()


@pytest.fixture(scope="module")
def page(cases: pd.DataFrame) -> str:
    figures = {EVIL_ID: _png(value=10), "BraTS_010": _png(value=20)}
    return render_report(_summary(cases), cases, case_figures=figures, curves_png=_png(value=30),
                         distribution_png=metric_distribution_figure(cases), info=INFO)


class _Structure(HTMLParser):
    """Collects open/close mismatches, scripts and external references while parsing."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.srcs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.srcs += [v or "" for k, v in attrs if k in ("src", "href", "srcset", "data", "poster")]
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()


def _rows(page: str) -> list[str]:
    """Case ids of the per-case table in page order (unescaped)."""
    body = page.split('id="case-table"', 1)[1].split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return [html.unescape(v) for v in re.findall(r'<tr><td data-value="([^"]*)"', body)]


def test_page_is_well_formed_and_self_contained(page: str) -> None:
    parser = _Structure()
    parser.feed(page)
    parser.close()
    assert parser.errors == [] and parser.stack == []
    assert all(s.startswith(("data:image/png;base64,", "#")) for s in parser.srcs), parser.srcs
    assert "http://" not in page and "https://" not in page
    assert "<link" not in page and "@import" not in page and "url(" not in page


def test_every_image_is_a_valid_inline_png(page: str) -> None:
    payloads = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(payloads) == 4  # curves, distribution, two case figures
    sizes = []
    for payload in payloads:
        image = Image.open(io.BytesIO(base64.b64decode(payload, validate=True)))
        image.load()
        sizes.append(image.size)
    assert sizes.count((5, 3)) == 3 and len(set(sizes)) == 2


def test_every_case_and_summary_number_is_shown(page: str, cases: pd.DataFrame) -> None:
    for case_id in cases["case_id"]:
        assert html.escape(case_id) in page
    summary = _summary(cases)
    for metric in METRICS:
        for region in REGIONS:
            for stat in ("mean", "median"):
                value = summary[metric][region][stat]
                text = "n/a" if value is None else (f"{value:.2f}" if metric == "hd95" else f"{value:.4f}")
                assert f'<td class="num">{text}</td>' in page, (metric, region, stat)
    assert f"{summary['dice']['mean']:.4f}" in page
    assert f"{cases['dice_WT'].iloc[0]:.3f}" in page  # per-case table


def test_text_is_escaped(page: str) -> None:
    assert EVIL_ID not in page and 'onerror="alert' not in page
    assert "deadbeef &lt;dirty&gt;" in page
    assert page.count("<script") == 1  # only the sorting script


def test_conventions_go_under_the_summary_not_into_the_info_table(page: str) -> None:
    info_table = page.split('<section id="run">', 1)[1].split("</section>", 1)[0]
    assert "MLflow run id" in info_table and "metrics.empty" not in info_table
    assert "Empty masks (BraTS convention)" in page and "373.13 mm" in page
    assert "pooled over both directions" in page


def test_case_table_starts_with_the_worst_mean_dice_and_sorts(page: str, cases: pd.DataFrame) -> None:
    expected = cases.sort_values("dice_mean")["case_id"].tolist()
    assert _rows(page) == expected
    assert 'id="case-table"' in page and 'addEventListener("click"' in page
    assert 'data-column="dice_mean" title="dice_mean" tabindex="0" aria-sort="ascending"' in page
    assert page.count('data-type="number"') == 1 + 7 * len(REGIONS)  # dice_mean + 7 metrics per region
    assert page.count('data-type="text"') == 1
    assert '<td class="num" data-value="">n/a</td>' in page  # the NaN HD95: empty sort key, shown n/a


def test_case_figures_have_headings_with_scores_and_anchors(page: str, cases: pd.DataFrame) -> None:
    row = cases.set_index("case_id").loc["BraTS_010"]
    assert '<figure id="case-2"><h3>BraTS_010 <span class="scores">' in page
    assert f"mean Dice {row['dice_mean']:.3f}" in page
    assert '<a href="#case-2">BraTS_010</a>' in page
    assert f'<a href="#case-1">{html.escape(EVIL_ID)}</a>' in page


def test_output_is_deterministic(cases: pd.DataFrame, page: str) -> None:
    figures = {EVIL_ID: _png(value=10), "BraTS_010": _png(value=20)}
    again = render_report(_summary(cases.copy()), cases.copy(), case_figures=figures,
                          distribution_png=metric_distribution_figure(cases), curves_png=_png(value=30),
                          info=dict(INFO))
    assert again == page


def test_optional_parts_may_be_missing() -> None:
    cases = _cases().iloc[:0]
    summary: dict[str, Any] = {"n_cases": 0, **{m: {r: {"mean": None, "median": None} for r in REGIONS}
                                                 for m in METRICS}}
    summary["dice"]["mean"] = None
    out = render_report(summary, cases, case_figures={}, distribution_png=_png(), curves_png=None, info={})
    assert "No training curves available." in out and "No cases." in out and "No case figures." in out
    assert "No run information given." in out


def test_write_report_is_atomic_utf8(tmp_path: Path, page: str) -> None:
    dest = tmp_path / "reports" / "report.html"
    write_report(dest, page)
    assert dest.read_text(encoding="utf-8") == page
    assert sorted(p.name for p in dest.parent.iterdir()) == ["report.html"]
