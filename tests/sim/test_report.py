"""The ``fedem simulate`` report: the schema takes a realistic run and refuses broken ones
(one line naming the field, nothing written), every figure is a real picture, the HTML is
self-contained, and a headless Chromium shows every plot decoded and non-blank."""

from __future__ import annotations

import base64
import copy
import json
import shutil
import subprocess
from html.parser import HTMLParser

import numpy as np
import pytest
from jsonschema import Draft202012Validator
from matplotlib.image import imread

from fedem.errors import ConfigError
from fedem.sim.plots import FIGURES, render_all
from fedem.sim.report import metrics_schema, summary_lines, write_report

from ._metrics import build_metrics

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    return write_report(build_metrics(), tmp_path_factory.mktemp("report") / "out")


def _flat(image: np.ndarray) -> float:
    """Spread of gray levels: 0 for a single flat color, ~0.1+ for a chart on white."""
    rgb = image[..., :3].astype(float)
    return float(rgb.mean(axis=-1).std() / (255.0 if rgb.max() > 1 else 1.0))


class _Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.imgs: list[dict[str, str]] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        if tag == "img":
            self.imgs.append(dict(attrs))


def test_the_synthetic_run_matches_the_schema():
    schema = metrics_schema()
    Draft202012Validator.check_schema(schema)
    assert schema["$id"] == "https://fedem.invalid/schemas/sim-metrics-1.json"
    assert schema["properties"]["schema_version"]["const"] == 1
    validator = Draft202012Validator(schema)
    metrics = build_metrics()
    validator.validate(metrics)
    # Optional fields the engine may add: an adapter on two languages, the run's wall seconds.
    metrics["policies"][0]["adapters"][0]["language"] = "hi+te"
    metrics["seconds"] = 12.5
    validator.validate(metrics)
    metrics["policies"][0]["adapters"][0]["language"] = "hi te"
    assert not validator.is_valid(metrics)


def _set(path: list, value):
    def edit(m):
        obj = m
        for key in path[:-1]:
            obj = obj[key]
        if value is KeyError:
            del obj[path[-1]]
        else:
            obj[path[-1]] = value

    return edit


BROKEN = {
    "missing created": (_set(["created"], KeyError), "created: missing"),
    "missing tokens_pushed": (_set(["policies", 1, "tokens_pushed"], KeyError), "policies[1].tokens_pushed: missing"),
    "bpb not a number": (_set(["policies", 0, "rounds", 1, "bpb", "en"], "2.1"), "policies[0].rounds[1].bpb.en"),
    "negative tokens": (_set(["policies", 0, "tokens_trained"], -1), "policies[0].tokens_trained"),
    "unknown mode": (_set(["policies", 0, "mode"], "federated"), "policies[0].mode"),
    "schema_version 2": (_set(["schema_version"], 2), "schema_version"),
    "schema_version a string": (_set(["schema_version"], "1"), "schema_version"),
    "time without Z": (_set(["created"], "2026-12-04 04:00"), "created"),
    "extra field": (_set(["policies", 0, "extra"], 1), "policies[0].extra: unexpected"),
    "held lock with an end": (_set(["policies", 0, "locks", -1, "ended"], "2026-12-04T04:00:00Z"), "policies[0].locks[17].ended"),
    "reject without reason": (_set(["policies", 0, "gate", 3, "reason"], None), "policies[0].gate[3].reason"),
    "unknown reference": (_set(["reference"], "nope"), "reference"),
    "duplicate policy": (_set(["policies", 1, "name"], "relay"), "policies"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_metrics_are_refused_in_one_line_and_nothing_is_written(tmp_path, case):
    edit, where = BROKEN[case]
    metrics = build_metrics()
    edit(metrics)
    out = tmp_path / "out"
    with pytest.raises(ConfigError) as err:
        write_report(metrics, out)
    msg = str(err.value)
    assert "\n" not in msg and len(msg) < 240
    assert msg.startswith("metrics.json: ") and where in msg, msg
    assert not out.exists()


def test_the_report_writes_every_file_and_every_plot_is_a_picture(report):
    for path in (report.md, report.html, report.metrics):
        assert path.is_file() and path.stat().st_size > 0
    assert json.loads(report.metrics.read_text()) == build_metrics()
    assert list(report.plots) == list(FIGURES)  # the synthetic run has data for every figure
    for name, path in report.plots.items():
        assert path == report.md.parent / "plots" / f"{name}.png"
        data = path.read_bytes()
        assert data[:8] == PNG_MAGIC and len(data) > 5_000, name
        image = imread(path)
        assert image.shape[1] == 800 and 300 <= image.shape[0] <= 1400, (name, image.shape)
        assert _flat(image) > 0.05, name


def test_report_md_has_the_tables_and_links_every_plot(report):
    md = report.md.read_text()
    for heading in ("## Held-out bits/byte", "## Comparison with the reference (centralized)", "## Merged",
                    "## Rejected", "## Credit", "## Locks and dropouts"):  # fmt: skip
        assert heading in md
    assert "| relay | te | 1.3100 | 1.2710 | -0.0390 | -2.98% |" in md
    assert "| relay | en | 2.0490 | 1.8795 | 1.0902 |" in md
    assert "By reason: harmful 2, no-gain 2, invalid 1." in md
    assert (
        "| relay | seshu-hi | c06 | 2026-12-02T12:00:00Z | 2026-12-02T15:00:00Z |" in md
    )  # the expired lock
    for name in FIGURES:
        assert f"](plots/{name}.png)" in md


def test_report_html_is_self_contained(report):
    page = report.html.read_text()
    parsed = _Images()
    parsed.feed(page)
    assert not parsed.tags & {"script", "link", "iframe", "object", "embed"}
    assert "http://" not in page and "https://" not in page
    assert sorted(i["id"] for i in parsed.imgs) == sorted(f"plot-{n}" for n in report.plots)
    for img in parsed.imgs:
        name = img["data-plot"]
        assert img["alt"] and img["src"].startswith("data:image/png;base64,")
        assert base64.b64decode(img["src"].split(",", 1)[1]) == report.plots[name].read_bytes()


def test_figures_without_data_are_left_out_and_stale_ones_removed(tmp_path):
    folder = tmp_path / "out"
    write_report(build_metrics(), folder)
    metrics = build_metrics()
    metrics["policies"] = [p for p in metrics["policies"] if p["mode"] != "centralized"]
    metrics["reference"], metrics["comparison"] = None, []
    for p in metrics["policies"]:
        p["locks"], p["gate"], p["credit"] = [], [], []
    files = write_report(metrics, folder)
    assert list(files.plots) == ["bpb_per_round", "lineage"]
    assert sorted(x.name for x in (folder / "plots").iterdir()) == ["bpb_per_round.png", "lineage.png"]
    assert "compare.png" not in files.md.read_text() and "plot-compare" not in files.html.read_text()
    assert "The gate rejected nothing." in files.md.read_text()
    assert render_all(metrics, tmp_path / "again").keys() == {"bpb_per_round", "lineage"}


def test_a_reference_alone_gets_the_bpb_figure_and_a_short_summary(tmp_path):
    metrics = build_metrics()
    metrics["policies"], metrics["reference"], metrics["comparison"] = metrics["policies"][-1:], None, []
    files = write_report(metrics, tmp_path / "out")
    assert list(files.plots) == ["bpb_per_round"]
    assert "No checkpoint was published after the first base." in files.md.read_text()
    lines = summary_lines(metrics)
    assert len(lines) == 6 and "merged" not in "\n".join(lines)


def test_summary_fits_one_screen_and_says_what_happened():
    lines = summary_lines(build_metrics())
    text = "\n".join(lines)
    assert len(lines) <= 25
    assert "te  1.310 -> 1.271 -2.98%" in text
    assert "relay: merged 6 adapter revisions into 3 checkpoints (seshu-en x2" in text
    assert "rejected 2 (harmful 1, invalid 1)" in text
    assert "1 expired" in text and "dropouts: 1" in text
    assert "vs centralized: relay bpb ratio en 1.090 hi 1.076 te 1.084 (mean 1.083" in text
    # Many policies still fit: the tail is cut with a pointer to the report.
    big = build_metrics()
    big["policies"] += [dict(copy.deepcopy(big["policies"][0]), name=f"relay{i}") for i in range(12)]
    lines = summary_lines(big)
    assert len(lines) == 25 and lines[-1].endswith("more lines in the report")


# --- headless Chromium: the HTML as a browser shows it ---------------------------------------

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--hide-scrollbars",
]  # fmt: skip

# Appended to a copy of report.html (the report itself has no script): once the page has
# loaded, list each image's decode state, natural size and the spread of its pixels as drawn
# on a canvas (data: images do not taint it), so --dump-dom shows what the browser decoded.
PROBE = """<script>
window.addEventListener("load", () => {
  const out = [];
  for (const img of document.images) {
    const c = document.createElement("canvas");
    c.width = img.naturalWidth; c.height = img.naturalHeight;
    let spread = -1;
    if (c.width && c.height) {
      const g = c.getContext("2d"); g.drawImage(img, 0, 0);
      const d = g.getImageData(0, 0, c.width, c.height).data;
      let n = 0, s = 0, s2 = 0;
      for (let i = 0; i < d.length; i += 4) { const v = (d[i] + d[i + 1] + d[i + 2]) / 765; n++; s += v; s2 += v * v; }
      spread = Math.sqrt(Math.max(s2 / n - (s / n) ** 2, 0));
    }
    out.push([img.id, img.complete, img.naturalWidth, img.naturalHeight, spread.toFixed(4)].join(" "));
  }
  const pre = document.createElement("pre"); pre.id = "probe"; pre.textContent = out.join("\\n");
  document.body.appendChild(pre);
});
</script>"""


@pytest.fixture
def chromium(tmp_path):
    exe = shutil.which("chromium")
    if exe is None:
        pytest.skip("chromium is not installed (Debian package `chromium`; `make` installs it)")

    def run(*args: str) -> subprocess.CompletedProcess:
        profile = tmp_path / f"profile{len(list(tmp_path.glob('profile*')))}"
        cmd = [exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True, cwd=tmp_path)

    return run


def test_chromium_screenshot_of_the_report_is_not_blank(report, chromium, tmp_path):
    shot = tmp_path / "shot.png"
    chromium("--window-size=1200,4000", f"--screenshot={shot}", report.html.as_uri())
    assert shot.read_bytes()[:8] == PNG_MAGIC
    image = imread(shot)
    assert image.shape[:2] == (4000, 1200)
    assert _flat(image) > 0.05
    # Text and table rules are gray; the plots' lines, bars and points are saturated colors,
    # so enough colored pixels means the figures were painted, not broken-image icons.
    rgb = image[..., :3]
    colored = (rgb.max(axis=-1) - rgb.min(axis=-1)) > 0.3
    assert colored.mean() > 0.01


def test_chromium_decodes_every_plot_and_none_is_blank(report, chromium, tmp_path):
    probe = tmp_path / "probe.html"
    probe.write_text(report.html.read_text().replace("</body>", PROBE + "\n</body>"))
    dom = chromium("--virtual-time-budget=5000", "--dump-dom", probe.as_uri()).stdout
    assert '<pre id="probe">' in dom, dom[-2000:]
    body = dom.split('<pre id="probe">', 1)[1].split("</pre>", 1)[0]
    seen = {}
    for line in body.strip().splitlines():
        img_id, complete, width, height, spread = line.split()
        seen[img_id] = (complete, int(width), int(height), float(spread))
    assert set(seen) == {f"plot-{n}" for n in report.plots}
    for name, path in report.plots.items():
        complete, width, height, spread = seen[f"plot-{name}"]
        h, w = imread(path).shape[:2]
        assert complete == "true" and (width, height) == (w, h), name
        assert spread > 0.05, name
