"""The HTML dashboard: self-contained, escaped, sane at any size, and it renders in Chromium."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest

from pipelines.simulator import World, WorldConfig
from pipelines.simulator.lifecycle import Run
from pipelines.zap_runs.models import build_models
from pipelines.zap_runs.output.dashboard import write_report

from .conftest import small_world
from .warehouse import duckdb_pipeline, run_sync

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
NASTY = "<b>Leads</b> </script><script>x()</script> Zoë 🚀"


def built(make_simulator, tmp_path, world):
    tmp_path.mkdir(parents=True, exist_ok=True)
    sim = make_simulator(world)
    pipeline = duckdb_pipeline(tmp_path / "d.duckdb")
    run_sync(sim, pipeline)
    build_models(pipeline)
    return write_report(pipeline, tmp_path / "report.html")


def nasty_world(clock):
    world = small_world(seed=71, clock=clock)
    now = clock.now()
    for i in range(5):
        world.add(Run(id=f"00000000-0000-4000-8000-00000000000{i}", zap_id=4242, zap_title=NASTY,
                      occurred_at=now - timedelta(hours=i + 1), status="error",
                      start_time=now - timedelta(hours=i + 1), end_time=now - timedelta(hours=i),
                      steps=[{"status": "error", "start_time": None}], data_in=None, data_out=None))
    return world


def test_report_is_self_contained_and_escaped(make_simulator, past_clock, tmp_path):
    page = built(make_simulator, tmp_path, nasty_world(past_clock)).read_text(encoding="utf-8")
    assert not re.search(r"<(script|link)[^>]+(src|href)=[\"']?https?:", page), "no CDN"
    assert "&lt;b&gt;Leads&lt;/b&gt;" in page
    assert "<script>x()</script>" not in page
    assert "Zoë 🚀" in page or "Zo\\u00eb" in page
    assert page.count('class="plotly-graph-div"') == 4


def test_empty_warehouse_says_so(make_simulator, past_clock, tmp_path):
    world = World(WorldConfig(seed=1, zaps=1, runs_per_day=0, history_days=1), past_clock)
    page = built(make_simulator, tmp_path, world).read_text(encoding="utf-8")
    assert "Nothing synced yet" in page


def test_one_zap_and_five_hundred_zaps(make_simulator, past_clock, tmp_path):
    one = built(make_simulator, tmp_path / "one", World(WorldConfig(
        seed=2, zaps=1, runs_per_day=100, history_days=3), past_clock))
    assert one.read_text(encoding="utf-8").count('class="plotly-graph-div"') == 4
    many = built(make_simulator, tmp_path / "many", World(WorldConfig(
        seed=3, zaps=500, runs_per_day=3000, history_days=3), past_clock)).read_text(encoding="utf-8")
    assert many.count("<tr") <= 26, "the attention table stays at 25 rows"
    assert len(many) < 8_000_000


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(chromium() is None and os.environ.get("CI") != "true",
                    reason="Chromium is not installed (apt-get install chromium); CI installs it")
def test_charts_render_in_headless_chromium_offline(make_simulator, past_clock, tmp_path):
    assert chromium(), "CI=true but Chromium is missing: .ci/run must install it"
    report = built(make_simulator, tmp_path, nasty_world(past_clock))
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "dashboard.png"
    shot.unlink(missing_ok=True)
    flags = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--disable-background-networking", "--disable-component-update", "--no-first-run",
             "--disable-sync", f"--user-data-dir={tmp_path / 'chrome'}",
             # The network is off: any request the page tried would fail.
             "--proxy-server=http://127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND",
             "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000",
             "--window-size=1280,2400"]
    dom = subprocess.run([*flags, "--dump-dom", report.as_uri()], capture_output=True,
                         text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert dom.stdout.count('class="main-svg"') >= 8, "plotly drew its SVG for every chart"
    assert len(re.findall(r'class="(?:point|trace|bars)', dom.stdout)) > 0
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert not [line for line in console if "rror" in line], console
    pic = subprocess.run([*flags, f"--screenshot={shot}", report.as_uri()], capture_output=True,
                         text=True, timeout=120)
    assert pic.returncode == 0 and shot.stat().st_size > 50_000
