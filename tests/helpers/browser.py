"""Looking at a page `dvc plots` wrote, in headless Chromium with the network shut off.

:func:`look_at` opens a copy of the page with a small probe appended, lets Chromium run its
scripts, and reads back what the probe saw in the DOM: for each Vega chart the marks it drew, its
title, axis titles and legend; for each picture whether it loaded and where it sits; the page's
width against the window's; and every resource the page asked for. Every host name resolves to
nothing, so a page that needs the network draws nothing here.
"""

from __future__ import annotations

import html as html_module
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

WINDOW = (1280, 2000)  # a laptop's window, in CSS pixels

CHROMIUM = next(
    (found for name in ("chromium", "chromium-browser", "google-chrome")
     if (found := shutil.which(name))),
    None,
)

# Chromium's flags for a closed machine (no sandbox as root, no GPU, none of its own background
# connections) and for this test: every host name fails to resolve. Virtual time: timers run as
# fast as they can, and the DOM is read (or the picture taken) once all have run.
_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9",
    "--virtual-time-budget=15000",
)
# Set by .ci/run once it has installed Chromium: then a missing Chromium fails the test.
REQUIRED = "NUMPYNET_REQUIRE_CHROMIUM"

_PROBE = """
<script>
setTimeout(function () {
    function texts(root, selector) {
        return Array.from(root.querySelectorAll(selector)).map(function (e) {
            return e.textContent;
        });
    }
    var charts = {}, pictures = [];
    document.querySelectorAll("body > div[id]").forEach(function (div) {
        charts[div.id] = {
            embedded: div.classList.contains("vega-embed"),
            no_data: div.classList.contains("no-data"),
            text: div.classList.contains("no-data") ? div.textContent : "",
            lines: Array.from(div.querySelectorAll("svg .mark-line path")).filter(function (p) {
                return (p.getAttribute("d") || "").length > 10;
            }).length,
            marks: div.querySelectorAll("svg .role-mark > *").length,
            title: texts(div, "svg .role-title-text"),
            axis_titles: texts(div, "svg .role-axis-title text"),
            legend: texts(div, "svg .role-legend-label text")
        };
    });
    document.querySelectorAll("img").forEach(function (img) {
        var box = img.getBoundingClientRect();
        pictures.push({src: img.getAttribute("src"), loaded: img.complete && img.naturalWidth > 0,
                       right: box.right, width: box.width, natural_width: img.naturalWidth});
    });
    var report = {
        charts: charts, pictures: pictures,
        // clientWidth: the window without its scroll bar.
        page_width: document.documentElement.scrollWidth,
        window_width: document.documentElement.clientWidth,
        resources: performance.getEntriesByType("resource").map(function (r) { return r.name; })
    };
    var out = document.createElement("pre");
    out.id = "numpynet-probe";
    out.textContent = JSON.stringify(report);
    document.body.appendChild(out);
}, 5000);
</script>
"""


@dataclass(frozen=True)
class Chart:
    """What one Vega chart put in the page."""

    embedded: bool  # Vega-Embed ran on its element
    no_data: bool  # the page said it had nothing to draw
    text: str
    lines: int  # line marks with a path
    marks: int  # every mark element
    title: list[str]
    axis_titles: list[str]
    legend: list[str]


@dataclass(frozen=True)
class PageReport:
    """What Chromium showed of a page: its charts by element id, its pictures, its layout."""

    charts: dict[str, Chart]
    pictures: list[dict]
    page_width: int
    window_width: int
    resources: list[str]


def require_chromium() -> str:
    """Chromium's path, or a skip that says how to install it (a failure where .ci/run has
    installed it)."""
    if CHROMIUM is None:
        message = "Chromium is not installed (apt-get install chromium; .ci/run installs it)"
        if os.environ.get(REQUIRED):
            pytest.fail(f"{message}, though {REQUIRED} is set")
        pytest.skip(message)
    return CHROMIUM


def chart_ids(page: Path) -> list[str]:
    """The element ids of the Vega charts DVC wrote into ``page``."""
    return re.findall(r"vegaEmbed\('#([^']+)'", page.read_text(encoding="utf-8"))


def look_at(page: Path, profile: Path) -> PageReport:
    """Open ``page`` (an index.html of `dvc plots`) offline in Chromium and report what it drew.

    The probe goes into a copy beside the page, so the page's relative picture paths still hold;
    ``profile`` is an empty folder for Chromium's profile.
    """
    html = page.read_text(encoding="utf-8")
    if "</body>" not in html:
        pytest.fail(f"{page} has no </body>")
    probe = page.with_name("probed-" + page.name)
    # Before the last </body>: the page's own, after any a script may hold in its text.
    head, _, tail = html.rpartition("</body>")
    probe.write_text(head + _PROBE + "</body>" + tail, encoding="utf-8")
    result = subprocess.run(
        [require_chromium(), *_FLAGS, f"--window-size={WINDOW[0]},{WINDOW[1]}",
         f"--user-data-dir={profile}", "--dump-dom",
         probe.as_uri()],
        capture_output=True, text=True, timeout=180,
    )
    found = re.search(r'<pre id="numpynet-probe">(.*?)</pre>', result.stdout, flags=re.DOTALL)
    if found is None:
        pytest.fail(f"Chromium showed no report for {page} (exit {result.returncode}):\n"
                    f"{result.stderr[-3000:]}")
    raw = json.loads(html_module.unescape(found.group(1)))
    charts = {name: Chart(**fields) for name, fields in raw.pop("charts").items()}
    return PageReport(charts=charts, **raw)


def screenshot(page: Path, profile: Path, out: Path, height: int = WINDOW[1]) -> Path:
    """A PNG of ``page`` as Chromium draws it offline, ``WINDOW`` wide and ``height`` tall."""
    subprocess.run(
        [require_chromium(), *_FLAGS, f"--window-size={WINDOW[0]},{height}",
         f"--user-data-dir={profile}", f"--screenshot={out}",
         page.as_uri()],
        capture_output=True, text=True, timeout=180, check=True,
    )
    return out
