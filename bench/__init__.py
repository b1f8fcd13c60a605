"""The relay's benchmark: ``python -m bench`` (``make bench``, ``make bench-quick``).

The relay (template.yaml's function, as ``sam build`` built it) and a naive sender
(``bench/naive_function``) run side by side under the Lambda Runtime Interface Emulator against
the local stack, whose KVS signaling emulator enforces the real quotas and adds a latency per
network round trip. Modules: :mod:`bench.workload` (the requests), :mod:`bench.functions` (the
functions under RIE, measured), :mod:`bench.scenarios`, :mod:`bench.footprint` (cold import,
layer size), :mod:`bench.report` (table, targets, JSON, Markdown), :mod:`bench.plot`,
:mod:`bench.machine`.
"""
