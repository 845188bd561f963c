"""Build helper: an HTML template for ``dvc plots show`` that works offline (run by ``make setup``).

DVC's default page loads Vega, Vega-Lite and Vega-Embed from cdn.jsdelivr.net through the ``{scripts}``
placeholder of its template. The template written here has no ``{scripts}`` placeholder (DVC then drops those
tags) and instead inlines the JavaScript bundle of ``vl-convert``, which defines ``window.vega``,
``window.vegaLite`` and ``window.vegaEmbed``. DVC's plot templates are Vega-Lite v5 specs, so the bundle is
built with the newest Vega-Lite 5 that ``vl-convert`` ships.

Set up with ``dvc config plots.html_template plots/offline.html`` (relative to ``.dvc/``) and::

    python scripts/plots_template.py .dvc/plots/offline.html
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from bratseg.io import atomic_path

#: Vega-Lite major version of DVC's plot templates (their ``$schema`` is ``.../vega-lite/v5.json``).
VEGA_LITE_MAJOR = 5
DEFAULT_PATH = Path(".dvc/plots/offline.html")
PLACEHOLDERS = ("{plot_divs}", "{refresh_tag}")
#: Exposes the libraries as the globals that DVC's plot ``<div>`` scripts call (``vegaEmbed``).
GLOBALS_SNIPPET = "window.vegaEmbed = vegaEmbed; window.vega = vega; window.vegaLite = vegaLite;"

TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
{refresh_tag}
<title>DVC plots</title>
<script type="text/javascript">
__BUNDLE__
</script>
<style>
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif; margin: 16px; }
table { border-spacing: 15px; }
</style>
</head>
<body>
{plot_divs}
</body>
</html>
"""


class TemplateError(RuntimeError):
    """The JavaScript bundle cannot be used in an offline template."""


def vega_lite_version() -> str:
    """The newest ``MAJOR.MINOR`` of Vega-Lite :data:`VEGA_LITE_MAJOR` that the installed vl-convert ships."""
    import vl_convert

    versions = [v.lstrip("v") for v in vl_convert.get_vegalite_versions()]
    matching = [v for v in versions if v.split(".")[0] == str(VEGA_LITE_MAJOR)]
    if not matching:
        raise TemplateError(f"vl-convert ships no Vega-Lite {VEGA_LITE_MAJOR}.x (it has {versions})")
    return max(matching, key=lambda v: tuple(int(p) for p in v.split(".")))


def javascript_bundle(vl_version: str) -> str:
    """vl-convert's bundle of Vega, Vega-Lite ``vl_version`` and Vega-Embed, checked for safe inlining.

    Raises:
        TemplateError: if the bundle could end the inline ``<script>`` early, would be altered by DVC's
            placeholder substitution, lacks a global, or is built on another Vega-Lite major version.
    """
    import vl_convert

    bundle: str = vl_convert.javascript_bundle(GLOBALS_SNIPPET, vl_version=f"v{vl_version}")
    if re.search(r"</script|<!--", bundle, flags=re.IGNORECASE):
        raise TemplateError("the bundle contains '</script' or '<!--' and cannot be inlined")
    found = [p for p in (*PLACEHOLDERS, "{scripts}") if p in bundle]
    if found:
        raise TemplateError(f"the bundle contains DVC placeholder(s) {found}")
    missing = [g for g in ("window.vega=", "window.vegaLite=", "window.vegaEmbed=") if g not in bundle]
    if missing:
        raise TemplateError(f"the bundle does not define {missing}")
    if f'"{vl_version}.' not in bundle:
        raise TemplateError(f"the bundle does not carry Vega-Lite version {vl_version}")
    return bundle


def render_template(vl_version: str | None = None) -> str:
    """The template text: ``{refresh_tag}`` and ``{plot_divs}`` placeholders, the bundle inline."""
    bundle = javascript_bundle(vl_version or vega_lite_version())
    return TEMPLATE.replace("__BUNDLE__", bundle)


def build_offline_template(path: Path) -> None:
    """Write the offline ``dvc plots show`` template to ``path`` (atomically; parent folders are created)."""
    text = render_template()
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python scripts/plots_template.py [PATH]`` (default ``.dvc/plots/offline.html``)."""
    parser = argparse.ArgumentParser(prog="scripts/plots_template.py",
                                     description="Write an offline HTML template for `dvc plots show`.")
    parser.add_argument("path", nargs="?", type=Path, default=DEFAULT_PATH,
                        help=f"file to write (default: {DEFAULT_PATH})")
    args = parser.parse_args(argv)
    try:
        build_offline_template(args.path)
    except TemplateError as exc:
        print(f"plots_template: {exc}")
        return 1
    print(f"wrote {args.path} (Vega-Lite {vega_lite_version()}, no external scripts)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
