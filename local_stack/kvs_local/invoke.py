"""Invoke a function as template.yaml declares it, without Docker, against the local stack.

``python -m kvs_local.invoke -e events/master-answer.json`` reads the function's Handler, CodeUri,
Layers, Runtime, Timeout, MemorySize and Environment (Globals merged in, parameters and intrinsics
resolved: :mod:`kvs_local.template`), starts a :class:`~kvs_local.stack.LocalStack` (or reads a
running one's state with ``--stack-state``), invokes the handler with the event and prints the
response JSON on stdout; the function's logs, the invocation report and the outcomes published
on the stack's topics go to stderr.

Two modes:

* ``rie`` (the default, "runs what we deploy"): the ``sam build`` artifact under the real Lambda
  Runtime Interface Emulator (from aws-sam-cli in .venv-sam) with awslambdaric from .venv-lambda
  (scripts/lambda-runtime.sh) as the python3.13 runtime: :class:`RieFunction`.
* ``in-process``: the handler imported into this interpreter with the resolved environment
  applied and called with a :class:`~kvs_local.lambda_context.LambdaContext`, from the build
  artifact or (``--source``) the source tree: :class:`InProcessFunction`.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib
import json
import logging
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Final, Protocol, TextIO

from kvs_local.lambda_context import LambdaContext
from kvs_local.stack import (
    DEFAULT_FUNCTION,
    DEFAULT_TEMPLATE,
    REPO,
    SNS_TOPIC,
    LocalStack,
    StackState,
    TopicSubscriptionQueue,
)
from kvs_local.template import (
    FunctionConfig,
    TemplateError,
    function_config,
    load_template,
    parse_parameter_overrides,
    physical_name,
)

DEFAULT_BUILD_DIR: Final = REPO / ".aws-sam" / "build"
LAMBDA_RUNTIME_SCRIPT: Final = REPO / "scripts" / "lambda-runtime.sh"
RIE_INVOKE_PATH: Final = "/2015-03-31/functions/function/invocations"
_STARTUP_SECONDS: Final = 10.0
_REPORT_WAIT_SECONDS: Final = 5.0
_STOP_SECONDS: Final = 5.0
_CHANNEL_ARN_FIELD: Final = re.compile(
    r"arn:aws[a-z-]*:kinesisvideo:[a-z0-9-]+:[0-9]{12}:channel/[a-zA-Z0-9_.-]{1,256}/[0-9]+"
)


class InvokeError(RuntimeError):
    """The local invoke could not run the function (missing build, runtime, emulator ...)."""


# What an invocation returns.


@dataclass(frozen=True, slots=True)
class InvokeReport:
    """How an invocation went, as Lambda's REPORT line says it (fields None when unknown).

    Under RIE: ``duration_ms``, ``billed_duration_ms`` and ``max_memory_used_mb`` are RIE's REPORT
    fields (RIE's Duration includes the init on a cold start, and its "Max Memory Used" is only the
    configured memory size: RIE measures neither); ``init_duration_ms`` is RIE's
    ``INIT REPORT`` (its REPORT's Init Duration is not the init); ``runtime_duration_ms`` is the
    runtime's own time for the invocation (``INVOKE RTDONE``); ``peak_rss_mb`` is the runtime
    process's peak resident memory (VmHWM), the nearest local measure of Lambda's Max Memory Used;
    ``cpu_ms`` is the runtime process's CPU time (user + system, all its threads) from before the
    POST to the REPORT line: the handler's CPU, plus the init on a cold start.

    In-process: ``duration_ms`` is the handler call's wall time, ``init_duration_ms`` the import
    of the handler module (cold start only), ``cpu_ms`` this process's CPU time during the call
    and ``peak_rss_mb`` this process's peak: everything in the process counts, a LocalStack's moto
    server and emulator too when they run in it (use ``--stack-state`` with a stack in another
    process to measure the function alone).
    """

    mode: str
    request_id: str | None
    cold_start: bool
    memory_size_mb: int
    duration_ms: float | None = None
    billed_duration_ms: float | None = None
    init_duration_ms: float | None = None
    max_memory_used_mb: float | None = None
    runtime_duration_ms: float | None = None
    cpu_ms: float | None = None
    peak_rss_mb: float | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class InvokeResult:
    """The function's response (its JSON), the error type when it raised, and the report."""

    response: Any
    function_error: str | None
    report: InvokeReport


def _function_error(response: Any) -> str | None:
    # Lambda marks a failed invocation with X-Amz-Function-Error; RIE does not, so the error is
    # recognised by the runtime's error document {"errorMessage", "errorType", ...}.
    if isinstance(response, dict) and {"errorMessage", "errorType"} <= set(response):
        return str(response["errorType"])
    return None


class FunctionRunner(Protocol):
    """A function that can be invoked repeatedly between start() and stop()."""

    def start(self) -> FunctionRunner: ...

    def invoke(self, event: Any) -> InvokeResult: ...

    def stop(self) -> None: ...


# Where the code is.


@dataclass(frozen=True, slots=True)
class FunctionArtifact:
    """The function's code folder and its layers' Python folders (what Lambda mounts on
    /var/task and under /opt/python)."""

    code_dir: Path
    layer_dirs: tuple[Path, ...]

    @classmethod
    def built(cls, build_dir: Path, config: FunctionConfig) -> FunctionArtifact:
        """``sam build``'s output: ``<build>/<Function>`` and ``<build>/<Layer>/python``."""
        code_dir = build_dir / config.logical_id
        if not (code_dir / _handler_file(config)).exists():
            raise InvokeError(
                f"{code_dir} has no {_handler_file(config)}: run scripts/sam-check.sh "
                "(sam build) first, or use --mode in-process --source"
            )
        layer_dirs: list[Path] = []
        for layer in config.layers:
            if layer.logical_id is None:
                raise InvokeError(f"layer {layer.arn}: not from this template, cannot run locally")
            content = build_dir / layer.logical_id
            if not content.is_dir():
                raise InvokeError(f"{content} is missing: run scripts/sam-check.sh (sam build)")
            layer_dirs += _layer_python_dirs(content)
        return cls(code_dir, tuple(layer_dirs))

    @classmethod
    def source(cls, template_dir: Path, config: FunctionConfig) -> FunctionArtifact:
        """The source tree: CodeUri, and each layer's ContentUri as it is before ``sam build``
        (its own packages only; their requirements come from the running interpreter)."""
        layer_dirs: list[Path] = []
        for layer in config.layers:
            if layer.content_uri is None:
                raise InvokeError(f"layer {layer.arn}: not from this template, cannot run locally")
            layer_dirs.append((template_dir / layer.content_uri).resolve())
        return cls((template_dir / config.code_uri).resolve(), tuple(layer_dirs))


def _handler_file(config: FunctionConfig) -> str:
    module, _, _ = config.handler.rpartition(".")
    return module.replace(".", "/") + ".py"


def _layer_python_dirs(content: Path) -> list[Path]:
    # Lambda's python runtimes put /opt/python and /opt/python/lib/python3.X/site-packages on
    # sys.path; a layer is unpacked into /opt, so these are its python/ folders.
    found = [content / "python"]
    found += sorted((content / "python" / "lib").glob("python3*/site-packages"))
    return [path for path in found if path.is_dir()]


# The function's environment.


def function_name(config: FunctionConfig, state: StackState) -> str:
    """The function's name on the stack (its Ref), ``<stack>-<LogicalId>`` by default."""
    found = state.resources.get(config.logical_id)
    return found.ref if found is not None else physical_name(state.stack_name, config.logical_id)


def function_arn(config: FunctionConfig, state: StackState) -> str:
    found = state.resources.get(config.logical_id)
    if found is not None and "Arn" in found.attributes:
        return found.attributes["Arn"]
    return (
        f"arn:{state.pseudo.partition}:lambda:{state.region}:{state.account_id}:function:"
        f"{function_name(config, state)}"
    )


def log_group_name(config: FunctionConfig, state: StackState) -> str:
    """LoggingConfig.LogGroup when the template sets one, else Lambda's /aws/lambda/<name>."""
    return config.log_group_name or f"/aws/lambda/{function_name(config, state)}"


def function_environment(
    config: FunctionConfig, state: StackState, artifact: FunctionArtifact
) -> dict[str, str]:
    """The variables the function runs with: the template's resolved Environment, what Lambda
    sets itself, and the local stack's region, credentials, endpoints and CA bundle.

    The local stack's variables come last so nothing in the template can point the function at
    a real AWS endpoint. ``AWS_SAM_LOCAL`` is set as ``sam local invoke`` sets it: Powertools'
    Tracer then stays off, there being no X-Ray daemon here.
    """
    env = dict(config.environment)
    env.update(
        {
            "AWS_LAMBDA_FUNCTION_NAME": function_name(config, state),
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(config.memory_size_mb),
            "AWS_LAMBDA_FUNCTION_TIMEOUT": str(config.timeout_seconds),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_GROUP_NAME": log_group_name(config, state),
            "AWS_LAMBDA_LOG_STREAM_NAME": _log_stream_name(),
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{config.runtime}",
            "LAMBDA_TASK_ROOT": str(artifact.code_dir),
            "AWS_SAM_LOCAL": "true",
        }
    )
    env.update(state.service_environment())
    return env


def _log_stream_name() -> str:
    return f"{time.strftime('%Y/%m/%d')}/[$LATEST]{uuid.uuid4().hex}"


# rie mode.


def find_rie(architecture: str = "x86_64") -> Path:
    """The Lambda Runtime Interface Emulator that aws-sam-cli ships (in .venv-sam)."""
    candidates = sorted(
        (REPO / ".venv-sam" / "lib").glob(
            f"python3*/site-packages/samcli/local/rapid/aws-lambda-rie-{architecture}"
        )
    )
    if not candidates:
        raise InvokeError(
            f"no aws-lambda-rie-{architecture} under .venv-sam: run scripts/sam-check.sh, which "
            "installs aws-sam-cli (it ships the emulator)"
        )
    return candidates[-1]


def lambda_runtime_python() -> Path:
    """.venv-lambda's python (awslambdaric), made by scripts/lambda-runtime.sh when missing."""
    result = subprocess.run(  # noqa: S603 - our own script, no shell
        ["bash", str(LAMBDA_RUNTIME_SCRIPT)],  # noqa: S607 - bash from PATH, as make runs it
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise InvokeError(f"scripts/lambda-runtime.sh failed: {result.stderr.strip()}")
    python = Path(result.stdout.strip().splitlines()[-1]) / "bin" / "python"
    if not python.exists():
        raise InvokeError(f"scripts/lambda-runtime.sh made no {python}")
    return python


def free_loopback_port() -> int:
    """A loopback TCP port that was free a moment ago (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


_REPORT_FIELD: Final = re.compile(
    r"(Init Duration|Duration|Billed Duration|Memory Size|Max Memory Used): ([0-9.]+) (?:ms|MB)"
)
_INIT_REPORT: Final = re.compile(r"INIT REPORT\(durationMs: ([0-9.]+)\)")
_INVOKE_DONE: Final = re.compile(r"INVOKE RTDONE\(.*duration: ([0-9.]+)ms\)")
_START: Final = re.compile(r"START RequestId: (\S+)")


def parse_rie_report(
    lines: Sequence[str], memory_size_mb: int, peak_rss_mb: float | None
) -> InvokeReport:
    """The :class:`InvokeReport` of one RIE invocation from its log lines (START ... REPORT)."""
    fields: dict[str, float] = {}
    init_ms: float | None = None
    runtime_ms: float | None = None
    request_id: str | None = None
    for line in lines:
        if (start := _START.search(line)) is not None:
            request_id = start.group(1)
        if (init := _INIT_REPORT.search(line)) is not None:
            init_ms = float(init.group(1))
        if (done := _INVOKE_DONE.search(line)) is not None:
            runtime_ms = float(done.group(1))
        if line.startswith("REPORT RequestId:"):
            fields = {name: float(value) for name, value in _REPORT_FIELD.findall(line)}
    return InvokeReport(
        mode="rie",
        request_id=request_id,
        cold_start=init_ms is not None,
        memory_size_mb=int(fields.get("Memory Size", memory_size_mb)),
        duration_ms=fields.get("Duration"),
        billed_duration_ms=fields.get("Billed Duration"),
        init_duration_ms=init_ms,
        max_memory_used_mb=fields.get("Max Memory Used"),
        runtime_duration_ms=runtime_ms,
        peak_rss_mb=peak_rss_mb,
    )


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            found += [int(child) for child in task.read_text().split()]
    return found


def process_cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system) process ``pid`` has used so far, its ended threads included.

    Linux's per-process CPU clock (nanoseconds; ``clock_getcpuclockid`` computes the same id),
    else ``/proc/<pid>/stat``'s utime + stime (clock ticks, 10 ms); None when neither is readable.
    """
    with contextlib.suppress(OSError, OverflowError):
        return time.clock_gettime(((~pid) << 3) | 2)  # MAKE_PROCESS_CPUCLOCK(pid, CPUCLOCK_SCHED)
    with contextlib.suppress(OSError, ValueError, IndexError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return None


def _peak_rss_mb(pid: int) -> float | None:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return None


class RieFunction:
    """The built function under the Lambda Runtime Interface Emulator: a warm container.

    :meth:`start` runs ``aws-lambda-rie <runtime python> -m awslambdaric <Handler>`` in the built
    function folder with exactly :func:`function_environment`'s variables (nothing inherited from
    this process but PATH), :meth:`invoke` POSTs events to it (the first is the cold start),
    :meth:`stop` ends it. RIE's output (the function's logs included) is kept in :attr:`logs` and
    passed to ``log_sink`` line by line.
    """

    def __init__(
        self,
        config: FunctionConfig,
        artifact: FunctionArtifact,
        environment: Mapping[str, str],
        *,
        rie: Path | None = None,
        runtime_python: Path | None = None,
        log_sink: Callable[[str], None] | None = None,
    ) -> None:
        self.config = config
        self.artifact = artifact
        self.environment = dict(environment)
        self._rie = rie
        self._runtime_python = runtime_python
        self._log_sink = log_sink
        self._process: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self._lines: list[str] = []
        self._changed = threading.Condition()
        self._invoking = threading.Lock()
        self.port: int | None = None

    @property
    def logs(self) -> list[str]:
        """Every line RIE and the function wrote so far."""
        with self._changed:
            return list(self._lines)

    @property
    def runtime_pid(self) -> int | None:
        """The runtime process's id (RIE's child); None until RIE has started it (the first
        invocation) or after :meth:`stop`."""
        if self._process is None:
            return None
        children = _children(self._process.pid)
        return children[0] if children else None

    def start(self) -> RieFunction:
        if self._process is not None:
            return self
        rie = self._rie or find_rie(self.config.architectures[0])
        python = self._runtime_python or lambda_runtime_python()
        self.port = free_loopback_port()
        env = {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            # Lambda mounts layers under /opt and its runtime puts /opt/python on sys.path; /opt
            # is not ours to write here, so the built layers' python/ folders go on PYTHONPATH.
            "PYTHONPATH": os.pathsep.join(str(path) for path in self.artifact.layer_dirs),
            # Only the environment variables count: no profile, config file or instance role.
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
            **self.environment,
        }
        command = [
            str(rie),
            "--runtime-interface-emulator-address",
            f"127.0.0.1:{self.port}",
            # Its Runtime API defaults to 127.0.0.1:9001: a port of its own lets several run.
            "--runtime-api-address",
            f"127.0.0.1:{free_loopback_port()}",
            str(python),
            "-m",
            "awslambdaric",
            self.config.handler,
        ]
        self._process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            command,
            cwd=self.artifact.code_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            start_new_session=True,  # its own process group: stop() ends RIE and the runtime
        )
        self._reader = threading.Thread(target=self._read, name="rie-output", daemon=True)
        self._reader.start()
        try:
            self._wait_listening()
        except BaseException:
            self.stop()
            raise
        return self

    def _read(self) -> None:
        assert self._process is not None
        assert self._process.stdout is not None
        for raw in self._process.stdout:
            line = raw.rstrip("\n")
            with self._changed:
                self._lines.append(line)
                self._changed.notify_all()
            if self._log_sink is not None:
                self._log_sink(line)
        with self._changed:
            self._changed.notify_all()

    def _wait_listening(self) -> None:
        assert self._process is not None
        assert self.port is not None
        deadline = time.monotonic() + _STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                output = "\n".join(self.logs[-20:])
                raise InvokeError(
                    f"aws-lambda-rie exited with {self._process.returncode}:\n{output}"
                )
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2),
            ):
                return
            time.sleep(0.05)
        raise InvokeError(f"aws-lambda-rie did not listen on 127.0.0.1:{self.port}")

    def invoke(self, event: Any) -> InvokeResult:
        """POST ``event`` and return the response with the invocation's REPORT."""
        if self._process is None or self.port is None:
            raise InvokeError("RieFunction.invoke before start()")
        with self._invoking:
            with self._changed:
                first_line = len(self._lines)
            request = urllib.request.Request(
                f"http://127.0.0.1:{self.port}{RIE_INVOKE_PATH}",
                data=json.dumps(event).encode(),
                headers={"Content-Type": "application/json"},
                method="POST",
            )
            # RIE answers once the handler returned or the function's Timeout ended it; the
            # margin covers a cold start's init.
            wait = self.config.timeout_seconds + 30
            pid_before = self.runtime_pid
            cpu_before = None if pid_before is None else process_cpu_seconds(pid_before)
            try:
                # http://127.0.0.1 only.
                with urllib.request.urlopen(request, timeout=wait) as reply:  # noqa: S310
                    body = reply.read().decode()
            except urllib.error.URLError as problem:
                raise InvokeError(f"invoking through aws-lambda-rie failed: {problem}") from None
            lines = self._lines_until_report(first_line)
            response = json.loads(body) if body.strip() else None
            report = parse_rie_report(
                lines, self.config.memory_size_mb, self._runtime_peak_rss_mb()
            )
            cpu_ms = self._cpu_ms_since(pid_before, cpu_before)
            if cpu_ms is not None:
                report = dataclasses.replace(report, cpu_ms=cpu_ms)
            return InvokeResult(response, _function_error(response), report)

    def _cpu_ms_since(self, pid_before: int | None, cpu_before: float | None) -> float | None:
        # A runtime started during this invocation (the cold start, or a restart after a crash
        # or a timeout) counts from zero.
        pid = self.runtime_pid
        cpu = None if pid is None else process_cpu_seconds(pid)
        if cpu is None:
            return None
        start = cpu_before if pid == pid_before and cpu_before is not None else 0.0
        return round((cpu - start) * 1000, 3)

    def _lines_until_report(self, first_line: int) -> list[str]:
        # RIE writes the REPORT line right after it answers; wait for it, briefly.
        deadline = time.monotonic() + _REPORT_WAIT_SECONDS
        with self._changed:
            while True:
                lines = self._lines[first_line:]
                if any(line.startswith("REPORT RequestId:") for line in lines):
                    return lines
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (
                    self._process is not None and self._process.poll() is not None
                ):
                    return lines
                self._changed.wait(remaining)

    def _runtime_peak_rss_mb(self) -> float | None:
        if self._process is None:
            return None
        peaks = [_peak_rss_mb(child) for child in _children(self._process.pid)]
        known = [peak for peak in peaks if peak is not None]
        return max(known) if known else None

    def stop(self) -> None:
        """End RIE and the runtime process (SIGTERM, then SIGKILL to the process group)."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=_STOP_SECONDS)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=_STOP_SECONDS)
        # The runtime is RIE's child in the same group; make sure none outlives it.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        if self._reader is not None:
            self._reader.join(timeout=_STOP_SECONDS)
            self._reader = None
        if process.stdout is not None:
            process.stdout.close()

    def __enter__(self) -> RieFunction:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


# in-process mode.


def _layer_own_packages(layer_dir: Path) -> set[str]:
    """Top-level modules in ``layer_dir`` that no installed distribution there provides: the
    layer's own code (kvs_relay), as opposed to its pip-installed requirements."""
    names = {
        entry.stem if entry.suffix == ".py" else entry.name
        for entry in layer_dir.iterdir()
        if (entry.is_dir() and (entry / "__init__.py").exists()) or entry.suffix == ".py"
    }
    installed: set[str] = set()
    for record in layer_dir.glob("*.dist-info/RECORD"):
        for row in record.read_text(encoding="utf-8").splitlines():
            installed.add(Path(row.split(",", 1)[0]).parts[0].removesuffix(".py"))
    return names - installed


class InProcessFunction:
    """The handler imported into this interpreter, called with a Lambda-like context.

    :meth:`start` applies :func:`function_environment`'s variables to ``os.environ``, puts the
    code folder and the layers first on ``sys.path`` and imports the handler module fresh, with
    the layers' own packages (those no installed distribution provides: kvs_relay); third-party
    libraries this interpreter already imported are shared. :meth:`stop` restores ``os.environ``,
    ``sys.path`` and ``sys.modules``. The function's stdout (Powertools' logs and metrics) goes
    to ``stdout`` when given. Nothing enforces the Timeout or the memory size; the context's
    ``get_remaining_time_in_millis`` counts the Timeout down.
    """

    def __init__(
        self,
        config: FunctionConfig,
        artifact: FunctionArtifact,
        environment: Mapping[str, str],
        *,
        state: StackState,
        stdout: TextIO | None = None,
    ) -> None:
        self.config = config
        self.artifact = artifact
        self.environment = dict(environment)
        self.state = state
        self._stdout = stdout
        self._module: ModuleType | None = None
        self._saved_environ: dict[str, str] | None = None
        self._saved_path: list[str] | None = None
        self._saved_modules: dict[str, ModuleType] = {}
        self._fresh: set[str] = set()
        self._init_ms: float | None = None

    @contextlib.contextmanager
    def _output(self) -> Iterator[None]:
        if self._stdout is None:
            yield
        else:
            with contextlib.redirect_stdout(self._stdout):
                yield

    def _is_fresh(self, module_name: str) -> bool:
        return module_name.split(".", 1)[0] in self._fresh

    def start(self) -> InProcessFunction:
        if self._module is not None:
            return self
        module_name, _, _ = self.config.handler.rpartition(".")
        self._fresh = {module_name.split(".", 1)[0]}
        for layer_dir in self.artifact.layer_dirs:
            self._fresh |= _layer_own_packages(layer_dir)
        self._saved_environ = dict(os.environ)
        self._saved_path = list(sys.path)
        self._saved_modules = {
            name: module for name, module in sys.modules.items() if self._is_fresh(name)
        }
        for name in self._saved_modules:
            del sys.modules[name]
        for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
            os.environ.pop(name, None)
        os.environ.update(self.environment)
        sys.path[:0] = [str(self.artifact.code_dir), *map(str, self.artifact.layer_dirs)]
        started = time.perf_counter()
        try:
            with self._output():
                self._module = importlib.import_module(module_name)
        except BaseException:
            self.stop()
            raise
        self._init_ms = (time.perf_counter() - started) * 1000
        return self

    def context(self) -> LambdaContext:
        """A fresh context for one invocation (its Timeout starts counting now)."""
        return LambdaContext(
            function_name=function_name(self.config, self.state),
            memory_limit_in_mb=str(self.config.memory_size_mb),
            invoked_function_arn=function_arn(self.config, self.state),
            timeout_seconds=self.config.timeout_seconds,
            log_group_name=self.environment["AWS_LAMBDA_LOG_GROUP_NAME"],
            log_stream_name=self.environment["AWS_LAMBDA_LOG_STREAM_NAME"],
        )

    def invoke(self, event: Any) -> InvokeResult:
        """Call the handler with ``event``; an exception becomes Lambda's error document."""
        if self._module is None:
            raise InvokeError("InProcessFunction.invoke before start()")
        handler = getattr(self._module, self.config.handler.rpartition(".")[2])
        context = self.context()
        cold, self._init_ms = self._init_ms, None
        wall, cpu = time.perf_counter(), time.process_time()
        function_error: str | None = None
        try:
            with self._output():
                response = handler(json.loads(json.dumps(event)), context)
            # The runtime sends the response as JSON: what is not serialisable fails there.
            response = json.loads(json.dumps(response))
        except Exception as problem:
            function_error = type(problem).__name__
            response = {
                "errorMessage": str(problem),
                "errorType": function_error,
                "requestId": context.aws_request_id,
                "stackTrace": [],
            }
        duration = (time.perf_counter() - wall) * 1000
        report = InvokeReport(
            mode="in-process",
            request_id=context.aws_request_id,
            cold_start=cold is not None,
            memory_size_mb=self.config.memory_size_mb,
            duration_ms=round(duration, 2),
            init_duration_ms=None if cold is None else round(cold, 2),
            cpu_ms=round((time.process_time() - cpu) * 1000, 2),
            peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        )
        return InvokeResult(response, function_error, report)

    def stop(self) -> None:
        """Restore os.environ, sys.path and sys.modules as they were before :meth:`start`."""
        self._module = None
        for name in [name for name in sys.modules if self._is_fresh(name)]:
            del sys.modules[name]
        sys.modules.update(self._saved_modules)
        self._saved_modules = {}
        if self._saved_path is not None:
            sys.path[:] = self._saved_path
            self._saved_path = None
        if self._saved_environ is not None:
            os.environ.clear()
            os.environ.update(self._saved_environ)
            self._saved_environ = None

    def __enter__(self) -> InProcessFunction:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


# Putting it together.


@dataclass(frozen=True)
class LocalFunction:
    """A template function resolved against a stack: its config, code and environment."""

    config: FunctionConfig
    artifact: FunctionArtifact
    environment: dict[str, str]
    state: StackState

    def runner(
        self,
        mode: str,
        *,
        log_sink: Callable[[str], None] | None = None,
        stdout: TextIO | None = None,
    ) -> FunctionRunner:
        """A :class:`RieFunction` (``rie``) or an :class:`InProcessFunction` (``in-process``)."""
        if mode == "rie":
            return RieFunction(self.config, self.artifact, self.environment, log_sink=log_sink)
        if mode == "in-process":
            return InProcessFunction(
                self.config, self.artifact, self.environment, state=self.state, stdout=stdout
            )
        raise InvokeError(f"mode {mode!r}: use rie or in-process")


def local_function(
    state: StackState,
    *,
    template: str | Path | None = None,
    function: str = DEFAULT_FUNCTION,
    parameter_overrides: Mapping[str, str] | None = None,
    build_dir: Path | None = DEFAULT_BUILD_DIR,
) -> LocalFunction:
    """The function ``function`` of ``template`` (the stack's own by default) on ``state``.

    Parameters are the stack's, with ``parameter_overrides`` on top (they change the function's
    configuration, not the stack's queues). ``build_dir=None`` runs the source tree.
    """
    template_path = Path(template or state.template).resolve()
    document = load_template(template_path)
    resolver = state.resolver(document, parameter_overrides)
    config = function_config(document, resolver, function)
    artifact = (
        FunctionArtifact.source(template_path.parent, config)
        if build_dir is None
        else FunctionArtifact.built(build_dir, config)
    )
    return LocalFunction(config, artifact, function_environment(config, state, artifact), state)


def channels_in_event(event: Any) -> list[str]:
    """The channel ARNs and names the event's record bodies ask for (ARNs first)."""
    arns: list[str] = []
    names: list[str] = []
    for record in (event or {}).get("Records") or [] if isinstance(event, dict) else []:
        try:
            body = json.loads(record.get("body") or "")
        except ValueError:
            continue
        if not isinstance(body, dict):
            continue
        arn, name = body.get("channelArn"), body.get("channelName")
        if isinstance(arn, str) and _CHANNEL_ARN_FIELD.fullmatch(arn) and arn not in arns:
            arns.append(arn)
        if isinstance(name, str) and name and name not in names:
            names.append(name)
    return arns + names


def with_fresh_message_ids(event: Any) -> Any:
    """A copy of an SQS event whose records carry new message ids: the relay remembers the ids it
    delivered in a warm container (its ledger) and does not send them twice."""
    fresh = json.loads(json.dumps(event))
    for record in fresh.get("Records") or [] if isinstance(fresh, dict) else []:
        if isinstance(record, dict) and "messageId" in record:
            record["messageId"] = str(uuid.uuid4())
    return fresh


# The command line.


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m kvs_local.invoke",
        description="Invoke a template.yaml function with an event, without Docker, against the "
        "local stack (KVS emulator and moto). The response goes to stdout; logs, the report and "
        "the published outcomes to stderr.",
    )
    parser.add_argument("-e", "--event", required=True, type=Path, help="an events/ JSON file")
    parser.add_argument("--function", default=DEFAULT_FUNCTION, help="the function's logical id")
    parser.add_argument("--mode", choices=("rie", "in-process"), default="rie")
    parser.add_argument("--template", type=Path, default=DEFAULT_TEMPLATE)
    parser.add_argument("--config-env", default="default", help="samconfig.toml's config env")
    parser.add_argument(
        "--parameter-overrides",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="parameter values over the template's defaults and samconfig.toml's",
    )
    parser.add_argument("--build-dir", type=Path, default=DEFAULT_BUILD_DIR)
    parser.add_argument(
        "--source",
        action="store_true",
        help="in-process: run the source tree (CodeUri, layers/relay) instead of the build",
    )
    parser.add_argument(
        "--stack-state",
        type=Path,
        help="a running local stack's state() JSON; without it a stack is started for this run",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="invoke this many times in one warm container (the first is the cold start)",
    )
    parser.add_argument(
        "--fresh-message-ids",
        action="store_true",
        help="with --repeat: new message ids on each repeat (the relay skips ids it delivered)",
    )
    return parser


class LineWriter:
    """Whole lines to a stream from several threads (RIE's reader and the main thread)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def __call__(self, line: str) -> None:
        with self._lock:
            self._stream.write(line + "\n")
            self._stream.flush()


def _print_outcomes(inboxes: Sequence[TopicSubscriptionQueue], say: LineWriter) -> None:
    for inbox in inboxes:
        for notification in inbox.drain():
            message = notification["message"]
            if isinstance(message, dict) and "status" in message:
                reason = f" ({message['reason']})" if message.get("reason") else ""
                summary = f"{message.get('messageId')} {message['status']}{reason}"
            else:
                summary = json.dumps(message)
            say(f"outcome on {inbox.topic_arn.rsplit(':', 1)[-1]}: {summary}")


def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """The CLI: 0 when the function returned, 1 when it raised, 2 when it could not run."""
    event = json.loads(args.event.read_text(encoding="utf-8"))
    overrides = parse_parameter_overrides(args.parameter_overrides)
    build_dir = None if args.mode == "in-process" and args.source else args.build_dir.resolve()
    say = LineWriter(err)
    with contextlib.ExitStack() as cleanup:
        inboxes: list[TopicSubscriptionQueue] = []
        if args.stack_state is not None:
            state = StackState.read(args.stack_state)
            missing = [c for c in channels_in_event(event) if c not in state.channels]
            if missing:
                say(f"note: the stack has no channel {', '.join(missing)}")
        else:
            stack = cleanup.enter_context(
                LocalStack(
                    args.template,
                    function=args.function,
                    config_env=args.config_env,
                    parameter_overrides=overrides,
                    channels=channels_in_event(event),
                )
            )
            state = stack.snapshot()
            inboxes = [
                stack.subscribe_queue(logical_id)
                for logical_id, found in state.resources.items()
                if found.type == SNS_TOPIC
            ]
        function = local_function(
            state,
            template=args.template,
            function=args.function,
            parameter_overrides=overrides,
            build_dir=build_dir,
        )
        runner = function.runner(args.mode, log_sink=say, stdout=err)
        cleanup.callback(runner.stop)
        runner.start()
        result: InvokeResult | None = None
        for attempt in range(max(1, args.repeat)):
            fresh = args.fresh_message_ids and attempt > 0
            result = runner.invoke(with_fresh_message_ids(event) if fresh else event)
            say(f"report: {json.dumps(result.report.to_json())}")
        assert result is not None
        # SNS delivers to the subscribed queues as it publishes; the drain reads them now.
        _print_outcomes(inboxes, say)
        print(json.dumps(result.response), file=out)
        return 1 if result.function_error else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m kvs_local.invoke``."""
    args = _parser().parse_args(argv)
    # moto's server logs each request through werkzeug; keep stderr for the function's own logs.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    try:
        return run(args, sys.stdout, sys.stderr)
    except (InvokeError, TemplateError, OSError, ValueError) as problem:
        print(f"kvs_local.invoke: {problem}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
