"""What a function costs before it handles anything: cold import time and the layer's size.

Cold import: a fresh interpreter of the Lambda runtime (.venv-lambda's python3.13) with the
built layer on PYTHONPATH, the function's folder as the working directory and the function's
environment, times ``import app`` (the handler module and everything it imports); the median of
several fresh interpreters. Two conditions:

* ``deployed``: copies of the built function and layer as they are (``make build`` compiles
  their bytecode into the build, which ``sam deploy`` ships), with ``PYTHONDONTWRITEBYTECODE=1``
  because ``/opt`` and ``/var/task`` are read-only on Lambda;
* ``source``: the same copies without ``__pycache__``: every module compiled at import, as a
  plain ``sam build`` (no bytecode) would deploy it.

Layer size: the bytes of the built layer folder (bytecode included, as ``make build`` leaves it)
and of a deflated zip of it, which is what a deployment uploads.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

from kvs_local.invoke import LocalFunction, lambda_runtime_python

_IMPORT_PROBE: Final = (
    "import time\nstarted = time.perf_counter()\nimport app\nprint(time.perf_counter() - started)\n"
)
_IGNORE: Final = shutil.ignore_patterns("__pycache__", "*.pyc")


@dataclass(frozen=True, slots=True)
class ColdImport:
    """Seconds of ``import app`` in fresh interpreters, in both conditions."""

    deployed_seconds: list[float]
    source_seconds: list[float]

    @property
    def deployed_median(self) -> float:
        return statistics.median(self.deployed_seconds)

    @property
    def source_median(self) -> float:
        return statistics.median(self.source_seconds)

    def to_json(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "deployedMedianSeconds": self.deployed_median,
            "sourceMedianSeconds": self.source_median,
        }


@dataclass(frozen=True, slots=True)
class LayerSize:
    """The built layer: files, bytes on disk (no __pycache__) and the zip's bytes."""

    path: str
    files: int
    bytes: int
    zip_bytes: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _import_once(
    python: Path,
    code_dir: Path,
    layer_dirs: Sequence[Path],
    environment: Mapping[str, str],
    *,
    write_bytecode: bool,
) -> float:
    env = {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "PYTHONPATH": os.pathsep.join(str(path) for path in layer_dirs),
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
        **environment,
        "LAMBDA_TASK_ROOT": str(code_dir),
    }
    if not write_bytecode:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    result = subprocess.run(
        [str(python), "-c", _IMPORT_PROBE],
        cwd=code_dir,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if result.returncode != 0:
        raise RuntimeError(f"import app failed in {code_dir}: {result.stderr.strip()[-2000:]}")
    return float(result.stdout.strip().splitlines()[-1])


def cold_import(function: LocalFunction, runs: int = 5) -> ColdImport:
    """Time ``import app`` for ``function`` in ``runs`` fresh interpreters per condition."""
    python = lambda_runtime_python()
    with tempfile.TemporaryDirectory(prefix="bench-cold-import-") as scratch:
        root = Path(scratch)
        timings: dict[bool, list[float]] = {}
        for as_built in (True, False):
            code_dir = root / f"task-{as_built}"
            shutil.copytree(
                function.artifact.code_dir, code_dir, ignore=None if as_built else _IGNORE
            )
            layer_dirs: list[Path] = []
            for index, layer in enumerate(function.artifact.layer_dirs):
                copy = root / f"layer{index}-{as_built}"
                shutil.copytree(layer, copy, ignore=None if as_built else _IGNORE)
                layer_dirs.append(copy)
            timings[as_built] = [
                _import_once(
                    python, code_dir, layer_dirs, function.environment, write_bytecode=False
                )
                for _ in range(runs)
            ]
    return ColdImport(timings[True], timings[False])


def layer_size(layer_root: Path) -> LayerSize:
    """Size of a built layer folder (e.g. .aws-sam/build/RelayLayer), as it is deployed."""
    files = [path for path in sorted(layer_root.rglob("*")) if path.is_file()]
    total = sum(path.stat().st_size for path in files)
    with tempfile.TemporaryDirectory(prefix="bench-layer-zip-") as scratch:
        archive = Path(scratch) / "layer.zip"
        with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
            for path in files:
                bundle.write(path, path.relative_to(layer_root))
        zipped = archive.stat().st_size
    return LayerSize(str(layer_root), len(files), total, zipped)
