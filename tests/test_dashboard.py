"""The HTML dashboard: self-contained (no script, nothing fetched) and small, escaped, sane at
any size, and it lays out in Chromium; it opens with the open incidents, draws a zap-by-day
heatmap of error rates; one account's page, and the partner-wide page with the accounts that
need attention, their open incidents and when each account was read and is next due."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pipelines.simulator import Episode, ManualClock, Simulator, World, WorldConfig
from pipelines.simulator.lifecycle import Run
from pipelines.zap_runs.cli.main import main
from pipelines.zap_runs.output import heatmap
from pipelines.zap_runs.output.dashboard import Data, read_data, unknown_account, write_report
from pipelines.zap_runs.output.page import FONTS, render
from pipelines.zap_runs.output.report import print_report
from pipelines.zap_runs.warehouse.models import build_models
from pipelines.zap_runs.warehouse.pipeline import logged_sync

from .conftest import small_world
from .raw_tables import colliding_truths, error_rate_truths, write_raw_tables
from .scheduled import scheduled_passes
from .warehouse import FAST, duckdb_pipeline, run_sync

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
NASTY = "<b>Leads</b> </script><script>x()</script> Zoë 🚀 注文を処理"
CHARTS = 4  # the heatmap, the status mix, the failing steps, the durations


def built(make_simulator, tmp_path, world):
    tmp_path.mkdir(parents=True, exist_ok=True)
    sim = make_simulator(world)
    pipeline = duckdb_pipeline(tmp_path / "d.duckdb")
    run_sync(sim, pipeline)
    build_models(pipeline)
    return write_report(pipeline, tmp_path / "report.html")


def nasty_world(clock):
    """A small world and a zap titled NASTY whose five runs, the last five hours, all failed: an
    open incident."""
    world = small_world(seed=71, clock=clock)
    now = clock.now()
    for i in range(5):
        world.add(Run(id=f"00000000-0000-4000-8000-00000000000{i}", zap_id=4242, zap_title=NASTY,
                      occurred_at=now - timedelta(hours=i + 1), status="error",
                      start_time=now - timedelta(hours=i + 1), end_time=now - timedelta(hours=i),
                      steps=[{"status": "error", "start_time": None}], data_in=None, data_out=None))
    return world


def section(page: str, start: str, end: str = "</table>") -> str:
    """The page from `start` (a regex) to the next `end`."""
    begin = re.search(start, page).start()
    return page[begin:page.index(end, begin)]


def charts_of(page: str) -> int:
    return len(re.findall(r"<figure class=[\"']chart[\"']", page))


def test_report_is_self_contained_and_escaped(make_simulator, past_clock, tmp_path):
    page = built(make_simulator, tmp_path, nasty_world(past_clock)).read_text(encoding="utf-8")
    assert not re.search(r"https?:|<script|<link|<img|<iframe|@import|url\(", page), \
        "nothing is fetched, and no script runs"
    escaped = "&lt;b&gt;Leads&lt;/b&gt; &lt;/script&gt;&lt;script&gt;x()&lt;/script&gt; Zoë 🚀 注文を処理"
    assert "<script>x()</script>" not in page and "<b>Leads" not in page
    incidents = section(page, "<table id='incidents'>")
    assert f"<td>{escaped}</td><td class='num'>4242</td>" in incidents, "emoji and CJK kept, tags escaped"
    row = section(page, "<tr data-zap='4242'>", "</tr>")
    assert f"title='{escaped}'><span class='badge'" in row and f"</span> {escaped}</th>" in row
    assert charts_of(page) == CHARTS


def test_the_page_falls_back_to_fonts_with_emoji_and_cjk(make_simulator, past_clock, tmp_path):
    page = built(make_simulator, tmp_path, nasty_world(past_clock)).read_text(encoding="utf-8")
    fonts = re.search(r"body, svg \{ font-family: ([^;]+); \}", page).group(1)
    assert fonts == FONTS, "the page's text and the charts' SVG text alike"
    names = [name.strip().strip('"') for name in fonts.split(",")]
    for fallback in ("Apple Color Emoji", "Segoe UI Emoji", "Noto Color Emoji", "Noto Sans CJK SC",
                     "Noto Sans CJK JP", "PingFang SC", "Hiragino Sans", "Microsoft YaHei"):
        assert fallback in names
    assert names[0] == "system-ui" and names[-1] == "sans-serif"
    assert "<svg class='plot'" in page and "xmlns" not in page, "inline SVG: it inherits the fonts"


def test_empty_warehouse_says_so(make_simulator, past_clock, tmp_path):
    world = World(WorldConfig(seed=1, zaps=1, runs_per_day=0, history_days=1), past_clock)
    page = built(make_simulator, tmp_path, world).read_text(encoding="utf-8")
    assert "Nothing synced yet" in page


def test_no_open_incident_is_said_plainly_first():
    day = datetime(2026, 12, 1).date()
    daily = {"account_id": "a", "zap_id": 1, "day": day, "count_runs": 10, "count_finished": 10,
             "count_failed": 0, **{f"count_{c}": 0 for c in ("succeeded", "handled", "halted",
                                                            "filtered", "in_progress", "blocked",
                                                            "unknown")}}
    zap = {"account_id": "a", "zap_id": 1, "zap_title": "quiet", "current_failure_streak": 0,
           "is_spiking": False, "error_rate_24h": 0.0, "error_rate_7d": 0.0, "error_rate_30d": 0.0,
           "last_success_at": None}
    page = render(Data(daily=[daily], health=[zap], steps=[], durations=[],
                       built_at=datetime.now(UTC), incident_rules=(3, 2)))
    first = re.search(r"<h2>([^<]*)</h2>(<[^>]*>[^<]*)", page)
    assert first.groups() == ("Open incidents", "<p id='incidents' class='ok'>No open incidents.")
    assert "opens after 3 failed runs in a row and resolves after 2 runs in a row" in page
    assert "No zap failed in these 1 days." in page


def test_one_zap_and_five_hundred_zaps(make_simulator, past_clock, tmp_path):
    one = built(make_simulator, tmp_path / "one", World(WorldConfig(
        seed=2, zaps=1, runs_per_day=100, history_days=3), past_clock))
    assert charts_of(one.read_text(encoding="utf-8")) == CHARTS
    report = built(make_simulator, tmp_path / "many", World(WorldConfig(
        seed=3, zaps=500, runs_per_day=3000, history_days=3), past_clock))
    many = report.read_text(encoding="utf-8")
    attention = section(many, r"<h2>Zaps that need attention</h2>")
    assert attention.count("<tr") == 26, "the attention table stays at 25 rows"
    failing = {r["zap_id"] for r in read_data(duckdb_pipeline(report.parent / "d.duckdb")).daily
               if r["count_failed"]}
    assert len(failing) > heatmap.ROWS
    assert len(re.findall("<tr data-zap=", many)) == heatmap.ROWS, "the heatmap stays at 20 zaps"
    assert f"{heatmap.ROWS} of {len(failing)} zaps that failed in these 4 days, most failed runs " \
           f"first; {len(failing) - heatmap.ROWS} more not shown" in many
    assert len(many.encode()) < 300_000


# --- open incidents and the heatmap: a world whose busiest zap has been failing for hours -------

def daytime_clock() -> ManualClock:
    """18:00 UTC three days ago: the six hours before are busy (at night a zap may not run three
    times in six hours, and open no incident)."""
    return ManualClock((datetime.now(UTC) - timedelta(days=3)).replace(
        hour=18, minute=0, second=0, microsecond=0))


def episode_page(make_simulator, tmp_path):
    """Four days of eight zaps; the busiest fails every run from six hours ago on: the page, and
    the marts' rows it was made from. The clock stands at 18:00 UTC three days ago: six busy
    hours (at night a zap may not run three times in six hours)."""
    clock = daytime_clock()
    world = small_world(seed=23, days=4, clock=clock, episodes=(
        Episode(None, clock.now() - timedelta(hours=6), 24),))
    sim = make_simulator(world)
    pipeline = duckdb_pipeline(tmp_path / "episode.duckdb")
    run_sync(sim, pipeline)
    build_models(pipeline)
    busiest = max(world.zaps, key=lambda zap: zap.runs_per_hour).id
    return write_report(pipeline, tmp_path / "episode.html").read_text(encoding="utf-8"), \
        read_data(pipeline), busiest, clock


def test_the_page_opens_with_the_open_incidents(make_simulator, tmp_path):
    page, data, busiest, clock = episode_page(make_simulator, tmp_path)
    assert busiest in [i["zap_id"] for i in data.incidents]
    headings = re.findall(r"<h2>([^<]*)</h2>", page)
    assert headings[0] == "Open incidents"
    assert page.index("<table id='incidents'>") < page.index("<section class='tiles'>")
    rows = re.findall(r"<tr><td>([^<]*)</td><td class='num'>(\d+)</td><td>([^<]*)</td><td>([^<]*)"
                      r"</td><td>[^<]*</td><td class='num'>(\d+)</td><td class='num'>([^<]*)</td>"
                      r"<td>([^<]*)</td></tr>", section(page, "<table id='incidents'>"))
    assert rows == [(html.escape(i["zap_title"]), str(i["zap_id"]), f"{i['first_failed_at']:%Y-%m-%d %H:%M}",
                     f"{i['opened_at']:%Y-%m-%d %H:%M}", str(i["failed_runs"]),
                     str(i["first_failed_step"]), i["first_failed_status"]) for i in data.incidents]
    (episode,) = [r for r in rows if r[1] == str(busiest)]
    assert int(episode[4]) >= 3 and episode[6] == "error", "opened at the third failure in a row"
    assert datetime.fromisoformat(episode[2]) >= (clock.now() - timedelta(hours=6, minutes=1)).replace(
        tzinfo=None)


def heat_rows(page: str) -> dict[int, list[tuple[str, str]]]:
    """zap id -> its heatmap cells, left to right: (class, hover text)."""
    table = section(page, "<table id='heatmap'")
    return {int(zap): re.findall(r"<td(?: class='(\w+)' title='([^']*)')?></td>", cells)
            for zap, cells in re.findall(r"<tr data-zap='(\d+)'>(.*?)</tr>", table)}


def test_the_heatmap_has_a_row_per_failing_zap_and_marks_the_days_they_failed(
        make_simulator, tmp_path):
    page, data, busiest, clock = episode_page(make_simulator, tmp_path)
    days = heatmap.shown_days(data.daily)
    failed: dict[int, int] = {}
    for r in data.daily:
        failed[r["zap_id"]] = failed.get(r["zap_id"], 0) + r["count_failed"]
    failing = sorted((z for z, n in failed.items() if n), key=lambda z: (-failed[z], z))
    rows = heat_rows(page)
    assert list(rows) == failing[:heatmap.ROWS], "one row per failing zap, most failed runs first"
    for zap, cells in rows.items():
        assert len(cells) == len(days)
        mart = {r["day"]: r for r in data.daily if r["zap_id"] == zap}
        for day, (name, hover) in zip(days, cells, strict=True):
            r = mart.get(day)
            if r is None or not r["count_runs"]:
                assert name == ""
                continue
            assert hover.startswith(f"{day:%Y-%m-%d}: {r['count_runs']:,} runs, {r['count_failed']:,} failed")
            if r["count_failed"]:
                assert name in ("h1", "h2", "h3", "h4", "h5"), "a failing day is red"
            else:
                assert name in ("h0", "hn")
    (incident,) = [i for i in data.incidents if i["zap_id"] == busiest]
    episode_day = days.index(incident["last_failed_at"].date())
    shades = [cell[0] for cell in rows[busiest]]
    assert shades[episode_day] in ("h3", "h4", "h5") and shades[episode_day] == max(
        shades, key=lambda name: name if name.startswith("h") and name != "hn" else ""), \
        "the episode's day: the zap's reddest, a third of its runs or more failed"
    assert "<span class='badge' title='open incident, failing since " in section(
        page, f"<tr data-zap='{busiest}'>", "</tr>")


def test_the_demo_page_is_small_and_opens_with_its_open_incident(demo_run):
    done, folder = demo_run
    assert done.returncode == 0, done.stderr[-2000:]
    page = (folder / "zap_runs_report.html").read_text(encoding="utf-8")
    assert 20_000 < len(page.encode()) < 600_000, "the demo's page was 4.8 MB with plotly inlined"
    (incident,) = re.findall(r"^  (.+) \((\d+)\): failing since", done.stdout, re.M)
    assert re.findall(r"<h2>([^<]*)</h2>", page)[0] == "Open incidents"
    assert f"<tr><td>{html.escape(incident[0])}</td><td class='num'>{incident[1]}</td>" in section(
        page, "<table id='incidents'>")
    assert len(heat_rows(page)) == heatmap.ROWS and "more not shown" in page


# --- Chromium: the page as a browser lays it out, with no network ------------------------------

def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


needs_chromium = pytest.mark.skipif(
    chromium() is None and os.environ.get("CI") != "true",
    reason="Chromium is not installed (apt-get install chromium); CI installs it")


def headless(tmp_path, height: int = 2400) -> list[str]:
    assert chromium(), "CI=true but Chromium is missing: .ci/run must install it"
    return [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--disable-background-networking", "--disable-component-update", "--no-first-run",
            "--disable-sync", f"--user-data-dir={tmp_path / 'chrome'}",
            # The network is off: any request the page tried would fail.
            "--proxy-server=http://127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND",
            "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000",
            f"--window-size=1280,{height}"]


# Appended to a copy of the page by the test (the page has no script): where the browser laid
# out the sections, what it drew, which fonts it asked for; into the DOM, read by --dump-dom.
PROBE = """<script>(() => {
  const box = (s) => { const e = document.querySelector(s); if (!e) return null;
    const r = e.getBoundingClientRect(); return {top: r.top + scrollY, width: r.width, height: r.height}; };
  const sized = (s) => [...document.querySelectorAll(s)].filter((e) => {
    const r = e.getBoundingClientRect(); return r.width >= 4 && r.height >= 4; }).length;
  document.body.setAttribute("data-probe", JSON.stringify({
    incidents: box("#incidents"), tiles: box(".tiles"), heatmap: box("#heatmap"),
    heat_cells: document.querySelectorAll("#heatmap td").length, heat_drawn: sized("#heatmap td"),
    plots: [...document.querySelectorAll("svg.plot")].map((s) => s.getBoundingClientRect().width),
    marks: sized("svg.plot rect, svg.plot circle"),
    fonts: [document.body, document.querySelector("svg text")].filter(Boolean).map(
      (e) => getComputedStyle(e).fontFamily),
    overflow: document.documentElement.scrollWidth - innerWidth}));
})();</script>"""


def rendered(flags: list[str], report: Path) -> tuple[str, dict]:
    """The page's DOM once Chromium laid it out, and what PROBE saw there; no script failed."""
    probed = report.with_name(f"probed-{report.name}")
    probed.write_text(report.read_text(encoding="utf-8").replace("</body>", f"{PROBE}</body>"),
                      encoding="utf-8")
    dom = subprocess.run([*flags, "--dump-dom", probed.as_uri()], capture_output=True,
                         text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert not [line for line in console if "rror" in line], console
    probe = json.loads(html.unescape(re.search(r'data-probe="([^"]*)"', dom.stdout).group(1)))
    assert probe["overflow"] <= 0, "nothing wider than the window"
    for fonts in probe["fonts"]:
        assert "Noto Color Emoji" in fonts and "Noto Sans CJK SC" in fonts, fonts
    return dom.stdout, probe


@needs_chromium
def test_charts_render_in_headless_chromium_offline(make_simulator, past_clock, tmp_path):
    flags = headless(tmp_path)
    report = built(make_simulator, tmp_path, nasty_world(past_clock))
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "dashboard.png"
    shot.unlink(missing_ok=True)
    dom, probe = rendered(flags, report)
    assert probe["incidents"]["height"] > 0 and probe["incidents"]["top"] < probe["tiles"]["top"], \
        "the open incidents come first"
    assert 'id="incidents"' in dom and NASTY.split()[-1] in dom
    assert probe["heatmap"]["width"] > 900 and probe["heatmap"]["top"] > probe["tiles"]["top"]
    assert probe["heat_cells"] > 0 and probe["heat_drawn"] == probe["heat_cells"], "every day a cell"
    assert len(probe["plots"]) == 2 and min(probe["plots"]) > 900, "the SVG charts fill the width"
    # Six days of stacked status bars and p95 points: 47 to 60 drawn, by the hour the clock is at.
    assert probe["marks"] > 30, "bars and points drawn"
    pic = subprocess.run([*flags, f"--screenshot={shot}", report.as_uri()], capture_output=True,
                         text=True, timeout=120)
    assert pic.returncode == 0 and shot.stat().st_size > 50_000


# --- accounts: raw tables written as the multi-account sync lays them out -------------------

def two_accounts(tmp_path, name="zap_runs.duckdb"):
    """acme and globex (the same zap and run ids) built into models; acme's token was revoked."""
    now = datetime.now(UTC).replace(microsecond=0)
    truths = colliding_truths(ManualClock(now - timedelta(minutes=5)), days=4)
    log = [{"account_id": "acme", "sync_id": "s1", "started_at": now - timedelta(hours=1),
            "ended_at": now - timedelta(hours=1), "result": "failed",
            "error": "401 <Unauthorized>: the token was revoked"},
           {"account_id": "globex", "sync_id": "s1", "started_at": now - timedelta(hours=1),
            "ended_at": now - timedelta(minutes=59), "result": "success"}]
    pipeline = duckdb_pipeline(tmp_path / name)
    write_raw_tables(pipeline, truths, log)
    build_models(pipeline)
    return pipeline, truths


def started(truth):
    return sum(1 for run in truth.values() if run["start_time"] is not None)


def tile(page, label):
    return re.search(rf"<b>([^<]*)</b><span>{label}</span>", page).group(1)


def test_partner_page_shows_every_account_and_those_that_need_attention(tmp_path):
    pipeline, truths = two_accounts(tmp_path)
    page = write_report(pipeline, tmp_path / "all.html").read_text(encoding="utf-8")
    data = read_data(pipeline)
    incidents = {a["account_id"]: sum(1 for i in data.incidents if i["account_id"] == a["account_id"])
                 for a in data.accounts}
    needing = sorted((a["account_id"] for a in data.accounts if a["needs_attention"]),
                     key=lambda name: -incidents[name])  # the mart's order within
    assert "acme" in needing  # globex too when a zap of its random world fails now
    assert "All 2 accounts." in page
    assert tile(page, "accounts") == "2" and tile(page, "accounts need attention") == str(len(needing))
    assert tile(page, "runs") == f"{started(truths['acme']) + started(truths['globex']):,}"
    accounts = page[page.index("<table id='accounts'>"):]
    accounts = accounts[:accounts.index("</table>")]
    assert re.findall(r"<tr><td>([^<]*)</td><td>[^<]*</td><td class='num[ inc]*'>(\d+)</td>",
                      accounts) == [(name, str(incidents[name])) for name in needing]
    assert "last sync failed: 401 &lt;Unauthorized&gt;: the token was revoked" in accounts
    assert "<th>account</th>" in page, "zaps are told apart by their account"
    assert charts_of(page) == CHARTS
    assert "Steps failing for several accounts" in page


def test_accounts_whose_error_rate_is_high_say_so_on_the_page_and_in_the_terminal(tmp_path, capsys):
    pipeline = duckdb_pipeline(tmp_path / "rates.duckdb")
    write_raw_tables(pipeline, error_rate_truths(datetime.now(UTC).replace(microsecond=0)))
    build_models(pipeline)
    page = write_report(pipeline, tmp_path / "all.html").read_text(encoding="utf-8")
    accounts = page[page.index("<table id='accounts'>"):]
    accounts = accounts[:accounts.index("</table>")]
    assert re.findall(r"<tr><td>([^<]*)</td><td>([^<]*)</td>", accounts) == [
        ("crept", "error rate 7% in 24 h (1% in the 6 days before)"),
        ("jumped", "error rate 18% in 24 h (1% in the 6 days before)")]
    assert tile(page, "accounts need attention") == "2"
    print_report(pipeline)
    out = capsys.readouterr().out
    lines = out.splitlines()
    start = lines.index("5 accounts, 2 need attention:") + 1
    assert lines[start:start + 3] == ["  crept: error rate 7% in 24 h (1% in the 6 days before)",
                                      "  jumped: error rate 18% in 24 h (1% in the 6 days before)",
                                      f"  {'streak':>6}  {'24h':>6}  {'7d':>6}  zap"]


def test_one_account_page_holds_only_that_account(tmp_path):
    pipeline, truths = two_accounts(tmp_path)
    data = read_data(pipeline, "globex")
    assert {r["account_id"] for rows in (data.daily, data.health, data.steps, data.durations)
            for r in rows} == {"globex"}
    assert sum(r["count_runs"] for r in data.daily) == started(truths["globex"])
    page = write_report(pipeline, tmp_path / "g.html", account="globex").read_text(encoding="utf-8")
    assert "Account globex." in page and "acme" not in page
    assert tile(page, "runs") == f"{started(truths['globex']):,}"
    assert "Accounts that need attention" not in page and "<th>account</th>" not in page
    acme = write_report(pipeline, tmp_path / "a.html", account="acme").read_text(encoding="utf-8")
    assert "Needs attention: last sync failed: 401 &lt;Unauthorized&gt;" in acme


def test_one_account_warehouse_looks_as_before_accounts(make_simulator, past_clock, tmp_path):
    page = built(make_simulator, tmp_path, small_world(seed=5, clock=past_clock)).read_text(
        encoding="utf-8")
    assert '<p class="sub">Built ' in page, "no account named"
    for partner_only in ("accounts need attention", "Accounts that need attention", "<th>account</th>",
                         "Steps failing for several accounts"):
        assert partner_only not in page


def test_an_unknown_account_is_one_line_naming_known_ones(tmp_path, capsys):
    two_accounts(tmp_path)  # ./zap_runs.duckdb, where `report` looks by default
    assert main(["report", "--account", "acne", "--output", "r.html"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == ["error: no account 'acne' in the warehouse (known: 'acme', 'globex'); pass one "
                     "of them to --account, or leave --account out for every account."]
    assert not (tmp_path / "r.html").exists()
    assert main(["report", "--account", "acme", "--output", "r.html"]) == 0
    assert "Account acme." in (tmp_path / "r.html").read_text(encoding="utf-8")


def test_an_unknown_account_among_many_names_a_few():
    message = str(unknown_account("x", [f"user-{i}" for i in range(8)]))
    assert "(known: 'user-0', 'user-1', 'user-2', 'user-3', 'user-4' and 3 more)" in message
    assert str(unknown_account("x", [])).endswith("holds no account yet; run a sync first.")


# --- freshness: real scheduled passes (tests/scheduled.py) ----------------------------------

def freshness_page(tmp_path):
    """The partner page after passes that left one account overdue, one not due, one just read."""
    pipeline = duckdb_pipeline(tmp_path / "fresh.duckdb")
    passes = scheduled_passes(pipeline, tmp_path)
    build_models(pipeline)
    return write_report(pipeline, tmp_path / "fresh.html"), passes


def test_partner_page_lists_accounts_with_open_incidents_first(tmp_path):
    """alpha was read first and is overdue (due at once, and zeta's pass did not read it), so by
    freshness alone it would lead; zeta's busiest zap has failed every run for six hours: an
    open incident puts zeta first."""
    past_clock = daytime_clock()
    worlds = {"alpha": small_world(seed=5, days=2, clock=past_clock, runs_per_day=150),
              "zeta": small_world(seed=23, days=2, clock=past_clock, runs_per_day=600, episodes=(
                  Episode(None, past_clock.now() - timedelta(hours=6), 24),))}
    sim = Simulator(accounts=list(worlds.items()), clock=past_clock, rate_limit=None).start()
    pipeline = duckdb_pipeline(tmp_path / "partner.duckdb")
    try:
        for name in worlds:  # one pass each: alpha is read first
            logged_sync(pipeline, base_url=sim.base_url, **FAST,
                        accounts=[{"name": name, "access_token": sim.accounts[name].token}])
    finally:
        sim.stop()
    build_models(pipeline)
    data = read_data(pipeline)
    assert {i["account_id"] for i in data.incidents} == {"zeta"}
    opened = sum(1 for i in data.incidents)
    page = write_report(pipeline, tmp_path / "partner.html").read_text(encoding="utf-8")
    assert [r[1] for r in freshness_rows(page)] == ["zeta", "alpha"]
    table = section(page, "<table id='freshness'>")
    assert re.findall(r"<td>(\w+)</td><td class='num[ inc]*'>(\d+)</td>", table) == [
        ("zeta", str(opened)), ("alpha", "0")]
    assert "2 accounts: 1 with open incidents, 1 overdue" in page
    assert [r[0] for r in freshness_rows(page)] == ["", "overdue"]
    assert "<th>account</th><th>id</th><th>failing since (UTC)</th>" in section(
        page, "<table id='incidents'>"), "the incidents say their account"
    assert re.search(r"<tr><td>[^<]*</td><td>zeta</td>", section(page, "<table id='incidents'>"))


def freshness_rows(page: str) -> list[tuple[str, str, str]]:
    """(row class, account, flags) of the freshness table, top down (quotes as written or as
    Chromium serialises them)."""
    start = re.search(r"<table id=[\"']freshness[\"']>", page).start()
    table = page[start:page.index("</table>", start)]
    return re.findall(r"<tr class=[\"']([^\"']*)[\"']><td>([^<]*)</td>.*?<td>([^<]*)</td></tr>",
                      table)


def test_partner_page_shows_when_each_account_was_read_overdue_first(tmp_path):
    report, passes = freshness_page(tmp_path)
    page = report.read_text(encoding="utf-8")
    assert "<h2>Accounts: open incidents first, then when each was read and is next due</h2>" in page
    assert "3 accounts: 0 with open incidents, 1 overdue (due before the last pass, which did not read " \
           "them), 1 beyond max_staleness." in page
    assert freshness_rows(page) == [("overdue", passes.overdue, "overdue, beyond max_staleness"),
                                    ("", "a", ""), ("", passes.read, "")]


@needs_chromium
def test_partner_page_with_freshness_renders_in_headless_chromium(tmp_path):
    flags = headless(tmp_path, height=3200)
    report, passes = freshness_page(tmp_path)
    dom, probe = rendered(flags, report)
    assert probe["incidents"]["top"] < probe["tiles"]["top"] < probe["heatmap"]["top"]
    assert freshness_rows(dom) == [("overdue", passes.overdue, "overdue, beyond max_staleness"),
                                   ("", "a", ""), ("", passes.read, "")]
