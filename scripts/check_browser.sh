#!/usr/bin/env bash
# Render HTML pages offline in headless Chromium and check that they are complete and self-contained.
#
# Usage: scripts/check_browser.sh [-o SCREENSHOT_DIR] PAGE.html...
#
# For each page:
#   1. the source must not reference any remote resource: no http(s):// or protocol-relative URL in a
#      src/href/srcset/poster/data attribute (plain <a> links excepted), in a CSS url() or an @import;
#   2. the page is rendered with name resolution disabled (so nothing remote could load) and --dump-dom,
#      after a probe script appended to a temporary copy has recorded, once the page has loaded:
#        - the images, and those not decoded (naturalWidth == 0): there must be none;
#        - the vega-embed charts (one per vegaEmbed('#...') call of the page) and those without an <svg> or
#          <canvas>: every call must have produced a chart, and none may be empty;
#        - the resources the page fetched over http(s): there must be none;
#      and the page must show something (at least one image or chart), with no uncaught script error;
#   3. a screenshot of the page is written to SCREENSHOT_DIR/<page name>.png (a temporary folder by default).
#
# Environment: CHROMIUM (the browser binary; default: the first of chromium, chromium-browser,
# google-chrome, google-chrome-stable found on PATH), CHECK_BROWSER_BUDGET_MS (virtual time given to the page's
# scripts, default 15000), CHECK_BROWSER_SIZE (window size for the screenshot, default 1400,4000).
# Exit status: 0 all pages pass, 1 a page fails, 2 usage error or no browser.
set -euo pipefail

usage() { echo "usage: $0 [-o SCREENSHOT_DIR] PAGE.html..." >&2; exit 2; }

shot_dir=""
while getopts "o:h" opt; do
    case "$opt" in
        o) shot_dir="$OPTARG" ;;
        *) usage ;;
    esac
done
shift $((OPTIND - 1))
[ "$#" -ge 1 ] || usage

browser="${CHROMIUM:-}"
if [ -z "$browser" ]; then
    for name in chromium chromium-browser google-chrome google-chrome-stable; do
        if command -v "$name" >/dev/null 2>&1; then browser="$(command -v "$name")"; break; fi
    done
fi
if [ -z "$browser" ] || ! command -v "$browser" >/dev/null 2>&1; then
    echo "check_browser: no Chromium found (install it, e.g. apt-get install chromium, or set CHROMIUM)" >&2
    exit 2
fi
budget="${CHECK_BROWSER_BUDGET_MS:-15000}"
size="${CHECK_BROWSER_SIZE:-1400,4000}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
if [ -z "$shot_dir" ]; then shot_dir="$work/screenshots"; keep_note=0; else keep_note=1; fi
mkdir -p "$shot_dir"

# Appended to a copy of the page: records what was rendered as attributes of <html>, read from --dump-dom.
probe='<script>
window.addEventListener("load", function () {
  setTimeout(function () {
    var root = document.documentElement, images = Array.prototype.slice.call(document.images);
    var broken = images.filter(function (i) { return !(i.complete && i.naturalWidth > 0); });
    var charts = Array.prototype.slice.call(document.querySelectorAll(".vega-embed"));
    var empty = charts.filter(function (c) { return !c.querySelector("svg, canvas"); });
    var remote = performance.getEntriesByType("resource").filter(function (e) { return /^https?:/i.test(e.name); });
    root.setAttribute("data-check-images", String(images.length));
    root.setAttribute("data-check-broken-images", String(broken.length));
    root.setAttribute("data-check-charts", String(charts.length));
    root.setAttribute("data-check-empty-charts", String(empty.length));
    root.setAttribute("data-check-remote", String(remote.length));
    root.setAttribute("data-check-done", "yes");
  }, 2000);
});
</script>'

run_browser() {  # run_browser USER_DATA_DIR ARGS... : headless and offline (every host name fails to resolve)
    local profile="$1"; shift
    timeout 120 "$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
        --disable-background-networking --disable-component-update --disable-sync \
        --host-resolver-rules="MAP * ~NOTFOUND" --user-data-dir="$profile" \
        --virtual-time-budget="$budget" --hide-scrollbars --enable-logging=stderr --v=0 "$@"
}

attr() {  # attr NAME DOM_FILE : value of data-check-NAME on <html>
    { grep -o "data-check-$1=\"[^\"]*\"" "$2" || true; } | head -n 1 | sed 's/.*="\(.*\)"/\1/'
}

status=0
index=0
used_names=""
for page in "$@"; do
    index=$((index + 1))
    failures=()
    if [ ! -f "$page" ]; then
        echo "FAIL $page: no such file"; status=1; continue
    fi
    page_abs="$(cd "$(dirname "$page")" && pwd)/$(basename "$page")"

    # 1. remote references in the source
    refs="$( { grep -Eio "<[a-z][a-z0-9]*[^>]*[[:space:]](src|href|srcset|poster|data)[[:space:]]*=[[:space:]]*[\"']?[[:space:]]*(https?:)?//[^\"' >]*" "$page" \
                 | grep -Eiv '^<a[[:space:]]' || true
               grep -Eio "url\\([[:space:]]*[\"']?[[:space:]]*(https?:)?//[^)]*\\)|@import[^;]*" "$page" || true; } \
             | cut -c1-200 | sort -u)"
    if [ -n "$refs" ]; then
        failures+=("references remote resources: $(echo "$refs" | tr '\n' ' ')")
    fi

    # 2. render a probed copy (beside the page, so relative references still resolve) and read the DOM
    probed="$(dirname "$page_abs")/.check-browser-$$-$index.html"
    { cat "$page_abs"; printf '\n%s\n' "$probe"; } > "$probed"
    dom="$work/dom-$index.html"
    run_browser "$work/profile-dom-$index" --dump-dom "file://$probed" > "$dom" 2> "$work/log-dom-$index" || true
    rm -f "$probed"
    expected_charts="$({ grep -o "vegaEmbed('#" "$page" || true; } | wc -l | tr -d ' ')"
    errors="$(grep -E 'CONSOLE.*"Uncaught' "$work/log-dom-$index" | cut -c1-300 || true)"
    [ -z "$errors" ] || failures+=("script error(s): $errors")
    if [ "$(attr "done" "$dom")" != "yes" ]; then
        failures+=("the page did not finish loading: $(grep -Ev 'dbus|D-Bus|vaapi|sandbox' "$work/log-dom-$index" | tail -n 3)")
    else
        images="$(attr images "$dom")"; broken="$(attr broken-images "$dom")"
        charts="$(attr charts "$dom")"; empty="$(attr empty-charts "$dom")"; remote="$(attr remote "$dom")"
        [ "$broken" = "0" ] || failures+=("$broken of $images image(s) not decoded")
        [ "$empty" = "0" ] || failures+=("$empty of $charts chart(s) without <svg> or <canvas>")
        [ "$charts" -ge "$expected_charts" ] || failures+=("$charts chart(s) rendered, $expected_charts expected")
        [ "$remote" = "0" ] || failures+=("fetched $remote remote resource(s)")
        [ $((images + charts)) -gt 0 ] || failures+=("nothing rendered: no image and no chart")
    fi

    # 3. screenshot of the page itself
    name="$(basename "${page%.*}")"
    case " $used_names " in *" $name "*) name="$name-$index" ;; esac
    used_names="$used_names $name"
    shot="$shot_dir/$name.png"
    rm -f "$shot"
    run_browser "$work/profile-shot-$index" --window-size="$size" --screenshot="$shot" "file://$page_abs" \
        > /dev/null 2> "$work/log-shot-$index" || true
    [ -s "$shot" ] || failures+=("no screenshot written")

    if [ "${#failures[@]}" -eq 0 ]; then
        echo "ok   $page: ${images} image(s), ${charts} chart(s), no remote resource; screenshot $shot"
    else
        status=1
        for f in "${failures[@]}"; do echo "FAIL $page: $f"; done
    fi
done
if [ "$keep_note" -eq 0 ]; then
    echo "(screenshots are removed on exit; pass -o DIR to keep them)"
fi
exit "$status"
