"""Run the Partner API simulator standalone: `python -m pipelines.simulator --port 8787`."""

from __future__ import annotations

import argparse
import contextlib
import sys
from datetime import timedelta

from .faults import Faults
from .server import Simulator
from .world import World, WorldConfig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.simulator",
        description="Serve a simulated Zapier Partner API (GET /v2/zap-runs, POST /oauth/token/) "
                    "on 127.0.0.1 so the sync, curl or a browser can talk to it.")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8787, help="port (default 8787; 0 picks one)")
    parser.add_argument("--seed", type=int, default=7, help="world seed (default 7)")
    parser.add_argument("--zaps", type=int, default=25, help="number of zaps (default 25)")
    parser.add_argument("--runs-per-day", type=float, default=800.0, help="default 800")
    parser.add_argument("--days", type=float, default=35.0, help="days of history (default 35)")
    parser.add_argument("--rate-limit", type=int, default=60,
                        help="requests per minute per client; 0 turns limiting off (default 60)")
    parser.add_argument("--cooldown", type=float, default=60.0,
                        help="seconds refused after a 429 (default 60)")
    parser.add_argument("--max-limit", type=int, default=None,
                        help="silently cap the page size at this many runs")
    parser.add_argument("--body-shape", choices=["array", "object"], default="array")
    parser.add_argument("--error-rate", type=float, default=0.0, help="share of requests answered 500")
    parser.add_argument("--access-ttl", type=float, default=None,
                        help="lifetime of refreshed access tokens, in seconds")
    args = parser.parse_args(argv)

    world = World(WorldConfig(seed=args.seed, zaps=args.zaps, runs_per_day=args.runs_per_day,
                              history_days=args.days))
    faults = Faults(body_shape=args.body_shape, max_limit=args.max_limit, error_rate=args.error_rate)
    ttl = timedelta(seconds=args.access_ttl) if args.access_ttl else None
    try:
        sim = Simulator(world, faults=faults, rate_limit=args.rate_limit or None,
                        cooldown=args.cooldown, access_ttl=ttl, host=args.host, port=args.port)
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port} ({exc.strerror}); "
              "pick another --port", file=sys.stderr)
        return 2
    refresh = sim.tokens.issue_refresh()
    print(f"Zapier Partner API simulator on {sim.base_url} ({len(world.runs)} runs, "
          f"{len(world.zaps)} zaps)")
    print(f"  access token:  {sim.token}")
    print(f"  refresh token: {refresh} (client_id {sim.tokens.client_id}, "
          f"client_secret {sim.tokens.client_secret}, token_url {sim.base_url}/oauth/token/)")
    print(f"  try: curl -H 'Authorization: Bearer {sim.token}' '{sim.base_url}/v2/zap-runs?limit=2'")
    print(f"  sync: SOURCES__ZAP_RUNS__BASE_URL={sim.base_url} SOURCES__ZAP_RUNS__ACCESS_TOKEN={sim.token} "
          "python -m pipelines.zap_runs")
    sys.stdout.flush()
    with contextlib.suppress(KeyboardInterrupt):
        sim.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
