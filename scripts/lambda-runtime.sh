#!/usr/bin/env bash
# Makes .venv-lambda: a python3.13 virtual environment that plays Lambda's python3.13 runtime for
# `python -m kvs_local.invoke --mode rie` (the Lambda Runtime Interface Emulator runs
# `.venv-lambda/bin/python -m awslambdaric app.lambda_handler`). It holds awslambdaric and its own
# requirements only (requirements/lambda-runtime.txt): the function's libraries come from the built
# layer, as on Lambda. Idempotent: reinstalls only when the requirements are newer than the stamp
# of the last successful install. Prints nothing but the venv's path on success; works from any
# directory; exits non-zero on failure.
#
# awslambdaric 4.2.2 publishes manylinux wheels for cp313 (x86_64 and aarch64), so pip needs no
# compiler. Where no wheel fits, pip builds the sdist, which compiles curl (./buildconf, i.e.
# autoreconf, then configure) and aws-lambda-cpp (cmake) with a C/C++ toolchain: the Debian
# packages below. They are installed only then, and only as root with apt-get available.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

VENV="$ROOT/.venv-lambda"
REQUIREMENTS="$ROOT/requirements/lambda-runtime.txt"
STAMP="$VENV/.installed"
LOG="$VENV/pip.log"
BUILD_PACKAGES=(build-essential cmake autoconf automake libtool)

die() { printf 'lambda-runtime: %s\n' "$*" >&2; exit 1; }

# shellcheck source=scripts/python313.sh
source "$ROOT/scripts/python313.sh"

pip_install() {
    # --prefer-binary: take the wheel even when a newer sdist exists (all pins are exact anyway).
    "$VENV/bin/python" -m pip install --disable-pip-version-check --prefer-binary \
        -r "$REQUIREMENTS" >>"$LOG" 2>&1
}

have_build_tools() {
    command -v cc >/dev/null && command -v c++ >/dev/null && command -v make >/dev/null \
        && command -v cmake >/dev/null && command -v autoreconf >/dev/null \
        && command -v automake >/dev/null \
        && command -v libtoolize >/dev/null
}

install_build_tools() {
    [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null \
        || die "awslambdaric has no wheel here and must be compiled: install the Debian packages \
${BUILD_PACKAGES[*]} (apt-get install) and run this again (log: $LOG)"
    {
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${BUILD_PACKAGES[@]}"
    } >>"$LOG" 2>&1 || die "apt-get install ${BUILD_PACKAGES[*]} failed (log: $LOG)"
}

if [[ -e "$VENV" ]] && ! is_python313 "$VENV/bin/python"; then
    rm -rf "$VENV"
fi
if [[ -f "$STAMP" && ! "$REQUIREMENTS" -nt "$STAMP" ]]; then
    printf '%s\n' "$VENV"
    exit 0
fi
if [[ ! -x "$VENV/bin/python" ]]; then
    PYTHON313="$(find_python313)" || die "no working python3.13 found (looked in \
${PYENV_ROOT:-$HOME/.pyenv}/versions/3.13*/bin and on PATH): install Python 3.13, e.g. \
'pyenv install 3.13', or put a python3.13 on PATH; Lambda's runtime is python3.13."
    "$PYTHON313" -m venv "$VENV"
fi
rm -f "$STAMP"
: >"$LOG"
if ! pip_install; then
    # Most likely no wheel for this platform and a source build without its tools.
    if ! have_build_tools; then
        install_build_tools
    fi
    pip_install || { tail -n 40 "$LOG" >&2; die "pip install -r requirements/lambda-runtime.txt \
failed (full log: $LOG)"; }
fi
"$VENV/bin/python" -c 'import awslambdaric.bootstrap' >>"$LOG" 2>&1 \
    || die "awslambdaric does not import in $VENV (log: $LOG)"
touch "$STAMP"
printf '%s\n' "$VENV"
