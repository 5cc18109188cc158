"""The dashboard page: its sections in order (open incidents first), its styles, one HTML string."""

from __future__ import annotations

import html
import json
from typing import TYPE_CHECKING

from .cells import NONE, rate
from .charts import charts
from .partner import accounts_table, freshness_table, shared_steps_table
from .tables import attention_table, incidents_table
from .text import pct

if TYPE_CHECKING:
    from .data import Data

# Emoji and CJK in zap titles render wherever the system has any font for them.
FONTS = ('system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", "Helvetica Neue", Arial, '
         '"Apple Color Emoji", "Segoe UI Emoji", "Noto Color Emoji", "Noto Sans CJK SC", '
         '"Noto Sans CJK JP", "PingFang SC", "Hiragino Sans", "Microsoft YaHei", sans-serif')


def _tile(value: object, name: str) -> str:
    return f"<div class='tile'><b>{value}</b><span>{name}</span></div>"


def _scope(data: Data) -> str:
    if data.account is not None:
        scope = f"Account {html.escape(data.account)}. "
        reason = data.accounts[0]["attention_reason"] if data.accounts else None
        return scope + (f"Needs attention: {html.escape(reason)}. " if reason else "")
    return f"All {len(data.accounts)} accounts. " if data.is_partner_view else ""


def _tiles(data: Data) -> str:
    finished = sum(r["count_finished"] for r in data.daily)
    failed = sum(r["count_failed"] for r in data.daily)
    tiles = [_tile(len(data.accounts), "accounts"),
             _tile(sum(1 for a in data.accounts if a["needs_attention"]), "accounts need attention")
             ] if data.is_partner_view else []
    tiles += [_tile(f"{sum(r['count_runs'] for r in data.daily):,}", "runs"),
              _tile(pct(rate(failed, finished), NONE), "error rate"),
              _tile(sum(1 for z in data.health if z["current_failure_streak"] > 0), "zaps failing now"),
              _tile(sum(1 for z in data.health if z["is_spiking"]), "zaps spiking"),
              _tile(len(data.health), "zaps")]
    return f"<section class='tiles'>{''.join(tiles)}</section>"


def render(data: Data) -> str:
    """The whole page as one string: styles and data inlined, no script, nothing to fetch."""
    partner = data.is_partner_view
    accounts = ("<h2>Accounts that need attention</h2>" + accounts_table(data)
                + "<h2>Accounts: open incidents first, then when each was read and is next due</h2>"
                + freshness_table(data) if partner else "")
    if not data.health:
        content = "<p class='empty'>Nothing synced yet: the warehouse holds no zap runs.</p>" + accounts
    else:
        content = (
            f"<h2>Open incidents</h2>{incidents_table(data)}"
            + _tiles(data) + accounts
            + f"<h2>Zaps that need attention</h2>{attention_table(data)}"
            + (f"<h2>Steps failing for several accounts</h2>{shared_steps_table(data)}"
               if partner else "")
            + "".join(f"<h2>{heading}</h2><figure class='chart' id='{name}'>{chart}</figure>"
                      for name, heading, chart in charts(data)))
    return PAGE.format(built=data.built_at.strftime("%Y-%m-%d %H:%M UTC"), content=content,
                       marker=json.dumps("zap-runs-report"), scope=_scope(data), fonts=FONTS)


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Zap runs: error rates</title>
<style>
body, svg {{ font-family: {fonts}; }}
body {{ margin: 0 auto; max-width: 1200px; padding: 16px 24px; color: #212121; }}
h1 {{ font-size: 1.5rem; margin-bottom: 0; }} h2 {{ font-size: 1.1rem; margin-top: 28px; }}
.sub {{ color: #616161; margin-top: 4px; }}
.ok {{ color: #2e7d32; font-weight: 600; }}
.tiles {{ display: flex; gap: 12px; flex-wrap: wrap; margin-top: 16px; }}
.tile {{ border: 1px solid #e0e0e0; border-radius: 8px; padding: 10px 16px; min-width: 130px; }}
.tile b {{ display: block; font-size: 1.6rem; }} .tile span {{ color: #616161; }}
table {{ border-collapse: collapse; width: 100%; font-size: 0.9rem; }}
th, td {{ border-bottom: 1px solid #eee; padding: 4px 8px; text-align: left; }}
td.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
td.inc {{ color: #c62828; font-weight: 600; }}
#incidents td {{ background: #ffebee; }} #incidents td + td {{ white-space: nowrap; }}
tr.spike td {{ background: #ffebee; }}
tr.overdue td {{ background: #fff3e0; }}
.empty {{ font-size: 1.2rem; padding: 40px 0; }}
figure.chart {{ margin: 0; }}
.scroll {{ overflow-x: auto; }}
.heat {{ table-layout: fixed; min-width: 640px; font-size: 0.75rem; }}
.heat col.zap {{ width: 17rem; }}
.heat th, .heat td {{ padding: 0; border: 1px solid #fff; height: 18px; text-align: center;
  font-weight: normal; color: #616161; overflow: hidden; white-space: nowrap; }}
.heat th.zap {{ text-align: left; padding-right: 6px; color: #212121; text-overflow: ellipsis; }}
.heat th.m {{ text-align: left; padding-left: 2px; }}
.badge {{ background: #c62828; color: #fff; border-radius: 3px; padding: 0 4px; font-size: 0.7rem; }}
.h0 {{ background: #e8f5e9; }} .h1 {{ background: #ffcdd2; }} .h2 {{ background: #ef9a9a; }}
.h3 {{ background: #e57373; }} .h4 {{ background: #e53935; }} .h5 {{ background: #b71c1c; }}
.hn {{ background: #e0e0e0; }}
.legend {{ display: flex; flex-wrap: wrap; gap: 4px 14px; font-size: 0.8rem; color: #616161; }}
.legend i {{ display: inline-block; width: 12px; height: 12px; margin-right: 4px;
  vertical-align: -1px; border: 1px solid #e0e0e0; }}
svg.plot {{ width: 100%; height: auto; display: block; }}
svg .grid {{ stroke: #eee; }} svg .line {{ fill: none; stroke-width: 2; }}
svg text {{ font-size: 12px; fill: #616161; }} svg .yl {{ text-anchor: end; }}
svg .xl {{ text-anchor: middle; }}
.bars td.bar {{ width: 40%; }} .bars td.bar i {{ display: block; height: 12px; background: #c62828; }}
</style>
</head><body data-report={marker}>
<h1>Zap runs: error rates</h1>
<p class="sub">{scope}Built {built} from the zap-runs warehouse. error rate = failed / finished runs.</p>
{content}
</body></html>
"""
