"""A local Kinesis Video Streams signaling service: control plane, WebSocket data plane, faults.

``with Emulator(EmulatorConfig(...)) as emu:`` runs it in-process on free loopback ports;
``python -m kvs_local.emulator`` runs it on its own (see the README's emulator section).
"""

from kvs_local.emulator.config import (
    ControlPlaneQuotas,
    EmulatorConfig,
    Faults,
    SecondMasterPolicy,
)
from kvs_local.emulator.server import Emulator

__all__ = ["ControlPlaneQuotas", "Emulator", "EmulatorConfig", "Faults", "SecondMasterPolicy"]
