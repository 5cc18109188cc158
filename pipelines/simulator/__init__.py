"""A faithful local stand-in for Zapier's Partner API endpoint GET /v2/zap-runs."""

from .clock import ManualClock, RealClock
from .faults import Faults
from .server import Simulator
from .world import World, WorldConfig

__all__ = ["Faults", "ManualClock", "RealClock", "Simulator", "World", "WorldConfig"]
