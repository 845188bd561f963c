"""The evaluation report: one self-contained HTML page.

The page opens offline: no external resource of any kind (no CDN, no web font), every image is inlined as a
base64 ``data:`` URI, and the only script is a short inline one that sorts the per-case table. The same input
gives the same bytes (no timestamps, a fixed order everywhere). All text coming from the input is escaped.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from bratseg.evaluation.summary import regions_of
from bratseg.io import atomic_path
from bratseg.labels import region_descriptions

SUMMARY_METRICS: dict[str, str] = {"dice": "Dice", "iou": "IoU", "hd95": "HD95 (mm)",
                                   "sensitivity": "Sensitivity", "specificity": "Specificity",
                                   "nsd": "NSD", "lesion_dice": "Lesion-wise Dice",
                                   "lesion_hd95": "Lesion-wise HD95 (mm)", "lesion_nsd": "Lesion-wise NSD",
                                   "tp": "Lesions detected (TP)", "fp": "False-positive lesions (FP)",
                                   "fn": "Missed lesions (FN)", "f1": "Lesion F1"}
#: Per-case column prefixes, in table order, with their header label (the region is appended).
CASE_METRICS: dict[str, str] = {"dice": "Dice", "iou": "IoU", "hd95": "HD95 mm", "sensitivity": "Sens.",
                                "specificity": "Spec.", "pred_ml": "Pred. ml", "ref_ml": "Ref. ml",
                                "nsd": "NSD", "lesion_dice": "LW Dice", "lesion_hd95": "LW HD95",
                                "lesion_nsd": "LW NSD", "tp": "TP", "fp": "FP", "fn": "FN", "f1": "F1"}
#: ``info`` keys with this prefix describe metric conventions, shown under the summary table.
CONVENTION_PREFIX = "metrics."
#: Case table cells with a Dice below this are highlighted.
LOW_DICE = 0.5
MISSING = "n/a"
CSS = """
:root { --fg: #1d2330; --muted: #5b6475; --line: #d9dee7; --band: #f5f7fa; --accent: #2458a6;
  --low: #b42318; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--fg); background: #fff; line-height: 1.45;
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1360px; margin: 0 auto; padding: 24px 28px 64px; }
h1 { font-size: 1.7rem; margin: 0 0 4px; }
h2 { font-size: 1.25rem; margin: 36px 0 10px; padding-bottom: 4px; border-bottom: 2px solid var(--line); }
h3 { font-size: 1.02rem; margin: 26px 0 8px; }
.lead { color: var(--muted); margin: 0 0 12px; }
nav a { margin-right: 14px; color: var(--accent); text-decoration: none; }
nav a:hover, td a:hover { text-decoration: underline; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { padding: 5px 10px; border-bottom: 1px solid var(--line); text-align: left; }
th { background: var(--band); font-weight: 600; }
td.num, th.num { text-align: right; }
tbody tr:nth-child(even) td { background: #fafbfc; }
table.info th { width: 14em; }
table.info td { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
  word-break: break-all; }
.note { color: var(--muted); font-size: 0.92rem; max-width: 80em; }
.scroll { overflow-x: auto; max-width: 100%; border: 1px solid var(--line); }
table.sortable th { cursor: pointer; user-select: none; white-space: nowrap; position: sticky; top: 0; }
table.sortable th:hover { background: #e8edf5; }
table.sortable th[aria-sort="ascending"]::after { content: " \\25B2"; font-size: 0.7em; }
table.sortable th[aria-sort="descending"]::after { content: " \\25BC"; font-size: 0.7em; }
td.low { color: var(--low); font-weight: 600; }
td a { color: var(--accent); text-decoration: none; }
img { max-width: 100%; height: auto; display: block; border: 1px solid var(--line); }
figure { margin: 0 0 12px; }
.scores { color: var(--muted); font-weight: normal; font-size: 0.92rem; }
"""
SORT_SCRIPT = """
(function () {
  "use strict";
  var table = document.getElementById("case-table");
  if (!table || !table.tHead || !table.tBodies.length) { return; }
  var headers = Array.prototype.slice.call(table.tHead.rows[0].cells);
  function value(row, col) { return row.cells[col].getAttribute("data-value") || ""; }
  function sortBy(col) {
    var th = headers[col];
    var numeric = th.getAttribute("data-type") === "number";
    var ascending = th.getAttribute("aria-sort") !== "ascending";
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var order = rows.map(function (row, i) { return { row: row, i: i }; });
    order.sort(function (a, b) {
      var x = value(a.row, col), y = value(b.row, col), c = 0;
      if (numeric) {
        var xn = x === "" ? NaN : Number(x), yn = y === "" ? NaN : Number(y);
        if (isNaN(xn) || isNaN(yn)) {  /* missing values always last */
          c = isNaN(xn) === isNaN(yn) ? 0 : (isNaN(xn) ? 1 : -1);
          return c || a.i - b.i;
        }
        c = xn - yn;
      } else {
        c = x < y ? -1 : (x > y ? 1 : 0);
      }
      return (ascending ? c : -c) || a.i - b.i;
    });
    order.forEach(function (o) { body.appendChild(o.row); });
    headers.forEach(function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
  }
  headers.forEach(function (th, col) {
    th.addEventListener("click", function () { sortBy(col); });
    th.addEventListener("keydown", function (e) {
      if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sortBy(col); }
    });
  });
}());
"""


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def _number(value: Any) -> float | None:
    """``value`` as a finite float, or ``None`` when it is missing, NaN or not a number."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _fmt(value: Any, metric: str, digits: int = 3) -> str:
    """Format one metric value: distances and volumes with 2 decimals, ratios with ``digits``."""
    number = _number(value)
    if number is None:
        return MISSING
    if metric.startswith(("hd95", "pred_ml", "ref_ml")):
        return f"{number:.2f}"
    return f"{number:.{digits}f}"


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{_esc(alt)}">'


def _info_table(info: Mapping[str, str]) -> str:
    rows = [(k, v) for k, v in info.items() if not k.startswith(CONVENTION_PREFIX)]
    if not rows:
        return '<p class="note">No run information given.</p>'
    body = "".join(f"<tr><th>{_esc(k)}</th><td>{_esc(v)}</td></tr>" for k, v in rows)
    return f'<table class="info"><tbody>{body}</tbody></table>'


def _conventions(info: Mapping[str, str]) -> list[str]:
    """Plain-text notes on the metric conventions, from the ``metrics.*`` keys of ``info``."""
    notes = []
    conv = {k[len(CONVENTION_PREFIX):]: v for k, v in info.items() if k.startswith(CONVENTION_PREFIX)}
    empty = conv.pop("empty", None)
    penalty = conv.pop("empty_hd95_mm", None)
    if empty == "brats":
        notes.append("Empty masks (BraTS convention): reference and prediction both empty give Dice 1 and "
                     "HD95 0 mm; only one empty gives Dice 0 and HD95 "
                     f"{penalty + ' mm' if penalty else 'the empty-mask penalty'}.")
    elif empty == "nan":
        notes.append("Empty masks: a metric that is undefined for a case (an empty reference or prediction) "
                     f"is NaN, shown as {MISSING}, and left out of the means and medians.")
    elif empty is not None:
        notes.append(f"Empty masks: {empty}.")
    if empty != "brats" and penalty is not None:
        notes.append(f"HD95 for an empty mask: {penalty} mm.")
    hd95 = conv.pop("hd95", None)
    if hd95 == "pooled":
        notes.append("HD95: 95th percentile of the surface distances pooled over both directions "
                     "(medpy, BraTS toolkit).")
    elif hd95 == "max_directed":
        notes.append("HD95: the larger of the two directed 95th percentiles (surface-distance, MONAI).")
    elif hd95 is not None:
        notes.append(f"HD95: {hd95}.")
    notes.extend(f"{key}: {value}." for key, value in conv.items())
    return notes


def _summary_table(summary: Mapping[str, Any], info: Mapping[str, str], regions: tuple[str, ...]) -> str:
    titles = region_descriptions()
    head = "".join(f'<th class="num" colspan="2" title="{_esc(titles.get(r, r))}">{r}</th>' for r in regions)
    sub = "".join('<th class="num">mean</th><th class="num">median</th>' for _ in regions)
    rows = []
    for metric, label in SUMMARY_METRICS.items():
        if metric not in summary:
            continue
        stats = summary.get(metric) or {}
        cells = "".join(
            f'<td class="num">{_fmt((stats.get(r) or {}).get(stat), metric, 4)}</td>'
            for r in regions for stat in ("mean", "median")
        )
        rows.append(f"<tr><th>{_esc(label)}</th>{cells}</tr>")
    table = (f'<table class="summary"><thead><tr><th rowspan="2">metric</th>{head}</tr><tr>{sub}</tr></thead>'
             f"<tbody>{''.join(rows)}</tbody></table>")
    mean_dice = _fmt((summary.get("dice") or {}).get("mean"), "dice", 4)
    notes = [f"Mean Dice over the {len(regions)} regions: {mean_dice}."]
    notes.append(f"{MISSING}: undefined (no finite value).")
    notes += _conventions(info)
    return table + "".join(f'<p class="note">{_esc(n)}</p>' for n in notes)


def _case_columns(cases: pd.DataFrame) -> list[str]:
    """``case_id``, ``dice_mean``, the known metric columns per region, then any other column."""
    known = ["case_id", "dice_mean", *[f"{m}_{r}" for m in CASE_METRICS for r in regions_of(cases)]]
    return [c for c in known if c in cases.columns] + [c for c in cases.columns if c not in known]


def _header(column: str, regions: tuple[str, ...]) -> str:
    if column == "case_id":
        return "case"
    if column == "dice_mean":
        return "Dice mean"
    metric, _, region = column.rpartition("_")
    return f"{CASE_METRICS[metric]} {region}" if metric in CASE_METRICS and region in regions else column


def _is_numeric(series: pd.Series) -> bool:
    return bool(pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series))


def _default_order(cases: pd.DataFrame) -> pd.DataFrame:
    """Worst mean Dice first (missing values last), ties by case id."""
    if "dice_mean" not in cases.columns:
        return cases.sort_values("case_id", kind="stable") if "case_id" in cases.columns else cases
    key = pd.to_numeric(cases["dice_mean"], errors="coerce")
    frame = cases.assign(_key=key, _id=cases["case_id"].astype(str) if "case_id" in cases else "")
    frame = frame.sort_values(["_key", "_id"], kind="stable", na_position="last")
    return frame.drop(columns=["_key", "_id"])


def _case_table(cases: pd.DataFrame, anchors: Mapping[str, str]) -> str:
    columns = _case_columns(cases)
    regions = regions_of(cases)
    numeric = {c: _is_numeric(cases[c]) for c in columns}
    heads = []
    for c in columns:
        kind = "number" if numeric[c] else "text"
        sort = ' aria-sort="ascending"' if c == "dice_mean" else ""
        cls = ' class="num"' if numeric[c] else ""
        heads.append(f'<th{cls} data-type="{kind}" data-column="{_esc(c)}" title="{_esc(c)}" tabindex="0"'
                     f"{sort}>{_esc(_header(c, regions))}</th>")
    rows = []
    for record in _default_order(cases).to_dict("records"):
        cells = []
        for c in columns:
            value = record[c]
            if numeric[c]:
                number = _number(value)
                low = number is not None and c.startswith("dice") and number < LOW_DICE
                cls = "num low" if low else "num"
                raw = "" if number is None else repr(number)
                cells.append(f'<td class="{cls}" data-value="{raw}">{_fmt(value, c)}</td>')
            elif c == "case_id" and str(value) in anchors:
                link = f'<a href="#{anchors[str(value)]}">{_esc(value)}</a>'
                cells.append(f'<td data-value="{_esc(value)}">{link}</td>')
            else:
                text = "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)
                cells.append(f'<td data-value="{_esc(text)}">{_esc(text)}</td>')
        rows.append(f"<tr>{''.join(cells)}</tr>")
    if not rows:
        rows.append(f'<tr><td colspan="{max(len(columns), 1)}">No cases.</td></tr>')
    return (f'<div class="scroll"><table id="case-table" class="sortable"><thead><tr>{"".join(heads)}</tr>'
            f"</thead><tbody>{''.join(rows)}</tbody></table></div>")


def _scores_line(cases: pd.DataFrame, case_id: str) -> str:
    """``Dice WT/TC/ET … · HD95 WT/TC/ET … mm`` for one case, or an empty string if it is not in the table."""
    if "case_id" not in cases.columns:
        return ""
    match = cases[cases["case_id"].astype(str) == case_id]
    if match.empty:
        return ""
    row = match.iloc[0]
    regions = regions_of(cases)
    parts = []
    for metric, unit in (("dice", ""), ("hd95", " mm")):
        if all(f"{metric}_{r}" in row for r in regions):
            values = " / ".join(_fmt(row[f"{metric}_{r}"], metric) for r in regions)
            parts.append(f"{SUMMARY_METRICS[metric].split()[0]} {'/'.join(regions)} {values}{unit}")
    if "dice_mean" in row:
        parts.insert(0, f"mean Dice {_fmt(row['dice_mean'], 'dice')}")
    return " · ".join(parts)


def _figures(case_figures: Mapping[str, bytes], cases: pd.DataFrame, anchors: Mapping[str, str]) -> str:
    if not case_figures:
        return '<p class="note">No case figures.</p>'
    out = []
    for case_id, png in case_figures.items():
        scores = _scores_line(cases, case_id)
        extra = f' <span class="scores">{_esc(scores)}</span>' if scores else ""
        out.append(f'<figure id="{anchors[case_id]}"><h3>{_esc(case_id)}{extra}</h3>'
                   f"{_img(png, f'Slices of case {case_id}')}</figure>")
    return "".join(out)


def _fingerprint_table(fingerprint: Mapping[str, Any] | None) -> str:
    """The cohort summary of the dataset fingerprint (``fingerprint.json``)."""
    if not fingerprint:
        return '<p class="note">No dataset fingerprint given.</p>'
    labels = fingerprint.get("labels") or {}

    def vec(value: Any) -> str:
        return " x ".join(f"{float(v):.4g}" for v in value) if value else MISSING

    rows = [
        ("cases (labelled)", f"{fingerprint.get('n_cases')} ({fingerprint.get('n_labelled')})"),
        ("label set", f"{labels.get('name', MISSING)}: {labels.get('description', '')}"),
        ("classes", ", ".join(f"{k} ({v})" for k, v in (labels.get("classes") or {}).items())),
        ("median spacing (mm)", vec(fingerprint.get("median_spacing_mm"))),
        ("resampled to (mm)", vec(fingerprint["target_spacing_mm"]) if fingerprint.get("target_spacing_mm")
         else "native grid"),
        ("shape min / median / max", " / ".join(vec(fingerprint.get(k)) for k in
                                                 ("shape_min", "shape_median", "shape_max"))),
        ("orientations", ", ".join(f"{k}: {v}" for k, v in (fingerprint.get("orientations") or {}).items())),
        ("class frequency", ", ".join(f"{k} {100 * float(v):.1f}%" for k, v in
                                      (fingerprint.get("class_frequency") or {}).items())),
    ]
    body = "".join(f"<tr><th>{_esc(k)}</th><td>{_esc(v)}</td></tr>" for k, v in rows)
    return f'<table class="info"><tbody>{body}</tbody></table>'


def render_report(summary: dict[str, Any], cases: pd.DataFrame, *, case_figures: dict[str, bytes],
                  distribution_png: bytes, curves_png: bytes | None, info: dict[str, str],
                  fingerprint: Mapping[str, Any] | None = None) -> str:
    """The report as one HTML document (a string).

    Args:
        summary: the content of ``metrics.json``: ``n_cases``, then per metric and region mean and median.
        cases: one row per test case (``case_id``, ``dice_WT`` …, ``dice_mean``); the per-case table shows
            every column, the known metric columns first, worst mean Dice first.
        case_figures: PNG of each case to show, by case id, in the order to show them.
        distribution_png: the Dice / HD95 distribution figure.
        curves_png: the training curves, or ``None`` when there are none.
        info: key/value text for the info table, in order. Keys starting with ``metrics.`` (``metrics.empty``,
            ``metrics.empty_hd95_mm``, ``metrics.hd95``) are explained under the summary table instead.
        fingerprint: the dataset fingerprint (``fingerprint.json``), shown as the cohort summary.
    """
    anchors = {case_id: f"case-{n}" for n, case_id in enumerate(case_figures, start=1)}
    regions = regions_of(cases) or ("WT", "TC", "ET")
    n_cases = summary.get("n_cases", len(cases))
    mean_dice = _fmt((summary.get("dice") or {}).get("mean"), "dice", 4)
    curves = (_img(curves_png, "Training loss and validation Dice per epoch") if curves_png is not None
              else '<p class="note">No training curves available.</p>')
    sections = [
        ("run", "Run", _info_table(info)),
        ("cohort", "Dataset fingerprint", _fingerprint_table(fingerprint)),
        ("summary", "Summary", _summary_table(summary, info, regions)),
        ("training", "Training curves", curves),
        ("distribution", "Metric distribution",
         _img(distribution_png, "Dice and HD95 per region over the cases")),
        ("cases", "Per-case results",
         '<p class="note">Click a column header to sort by it (again to reverse); initially the worst mean '
         f"Dice comes first. Dice below {LOW_DICE} is highlighted.</p>" + _case_table(cases, anchors)),
        ("figures", "Case figures",
         '<p class="note">Slices through the centre of the reference tumour. Columns: T1, T1ce, T2, FLAIR, '
         "and FLAIR with the reference (filled, solid outline) and the prediction (dashed) per region.</p>"
         + _figures(case_figures, cases, anchors)),
    ]
    nav = "".join(f'<a href="#{sid}">{_esc(title)}</a>' for sid, title, _ in sections)
    body = "\n".join(f'<section id="{sid}"><h2>{_esc(title)}</h2>\n{content}</section>'
                     for sid, title, content in sections)
    title = "Brain-tumour segmentation: test report"
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_esc(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n"
        f"<h1>{_esc(title)}</h1>\n"
        f'<p class="lead">{_esc(n_cases)} test case(s) · mean Dice over {_esc(", ".join(regions))}: '
        f"{mean_dice}</p>\n"
        f"<nav>{nav}</nav>\n{body}\n</main>\n<script>{SORT_SCRIPT}</script>\n</body>\n</html>\n"
    )


def write_report(path: Path, html: str) -> None:
    """Write the report atomically (UTF-8): readers see the old file or the complete new one."""
    with atomic_path(path) as tmp:
        tmp.write_text(html, encoding="utf-8")
