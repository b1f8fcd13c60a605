"""pytest fixtures for the emulator: ``pytest_plugins = ["kvs_local.emulator.pytest_plugin"]``.

* ``kvs_emulator``: one emulator for the session, ``wss://`` with its own CA, on free ports;
* ``kvs_emulator_factory``: start emulators with any :class:`EmulatorConfig` (stopped after the
  test), for quotas shrunk to test size, a fixed clock, or another second-master policy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from kvs_local.emulator import Emulator, EmulatorConfig

EmulatorFactory = Callable[[EmulatorConfig], Emulator]


@pytest.fixture(scope="session")
def kvs_emulator() -> Iterator[Emulator]:
    with Emulator(EmulatorConfig(wss_port=0, endpoint_scheme="wss")) as emulator:
        yield emulator


@pytest.fixture
def kvs_emulator_factory() -> Iterator[EmulatorFactory]:
    started: list[Emulator] = []

    def start(config: EmulatorConfig) -> Emulator:
        emulator = Emulator(config).start()
        started.append(emulator)
        return emulator

    yield start
    for emulator in started:
        emulator.stop()
