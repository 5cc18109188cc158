"""A faithful local stand-in for Zapier's Partner API endpoint GET /v2/zap-runs."""

from .accounts import Account, account_mix, heavy_mix
from .clock import ManualClock, RealClock, VirtualClock
from .faults import Faults
from .server import Simulator
from .sharedclock import SharedClock
from .world import Episode, World, WorldConfig

__all__ = ["Account", "Episode", "Faults", "ManualClock", "RealClock", "SharedClock", "Simulator",
           "VirtualClock", "World", "WorldConfig", "account_mix", "heavy_mix"]
