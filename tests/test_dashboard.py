"""The HTML dashboard: self-contained, escaped, sane at any size, and it renders in Chromium; one
account's page, and the partner-wide page with the accounts that need attention and when each
account was read and is next due."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pipelines.simulator import ManualClock, World, WorldConfig
from pipelines.simulator.lifecycle import Run
from pipelines.zap_runs.cli import main
from pipelines.zap_runs.models import build_models
from pipelines.zap_runs.output.dashboard import read_data, unknown_account, write_report
from pipelines.zap_runs.output.report import print_report

from .conftest import small_world
from .raw_tables import colliding_truths, error_rate_truths, write_raw_tables
from .scheduled import scheduled_passes
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


def rendered(flags: list[str], report: Path) -> str:
    """The page's DOM once Chromium ran its scripts; no script failed."""
    dom = subprocess.run([*flags, "--dump-dom", report.as_uri()], capture_output=True,
                         text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert dom.stdout.count('class="main-svg"') >= 8, "plotly drew its SVG for every chart"
    assert len(re.findall(r'class="(?:point|trace|bars)', dom.stdout)) > 0
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert not [line for line in console if "rror" in line], console
    return dom.stdout


@needs_chromium
def test_charts_render_in_headless_chromium_offline(make_simulator, past_clock, tmp_path):
    flags = headless(tmp_path)
    report = built(make_simulator, tmp_path, nasty_world(past_clock))
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "dashboard.png"
    shot.unlink(missing_ok=True)
    rendered(flags, report)
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
    needing = [a["account_id"] for a in read_data(pipeline).accounts if a["needs_attention"]]
    assert "acme" in needing  # globex too when a zap of its random world fails now
    assert "All 2 accounts." in page
    assert tile(page, "accounts") == "2" and tile(page, "accounts need attention") == str(len(needing))
    assert tile(page, "runs") == f"{started(truths['acme']) + started(truths['globex']):,}"
    accounts = page[page.index("<table id='accounts'>"):]
    accounts = accounts[:accounts.index("</table>")]
    assert re.findall(r"<tr><td>([^<]*)</td>", accounts) == needing
    assert "last sync failed: 401 &lt;Unauthorized&gt;: the token was revoked" in accounts
    assert "<th>account</th>" in page, "zaps are told apart by their account"
    assert page.count('class="plotly-graph-div"') == 4
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
    assert "<h2>Freshness: when each account was read, and when it is next due</h2>" in page
    assert "3 accounts: 1 overdue (due before the last pass, which did not read them), 1 beyond " \
           "max_staleness." in page
    assert freshness_rows(page) == [("overdue", passes.overdue, "overdue, beyond max_staleness"),
                                    ("", "a", ""), ("", passes.read, "")]


@needs_chromium
def test_partner_page_with_freshness_renders_in_headless_chromium(tmp_path):
    flags = headless(tmp_path, height=3200)
    report, passes = freshness_page(tmp_path)
    dom = rendered(flags, report)
    assert freshness_rows(dom) == [("overdue", passes.overdue, "overdue, beyond max_staleness"),
                                   ("", "a", ""), ("", passes.read, "")]
