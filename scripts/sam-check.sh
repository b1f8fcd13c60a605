#!/usr/bin/env bash
# Checks the SAM application offline: cfn-lint, the SAM translator (`sam validate`), cfn-lint through
# SAM (`sam validate --lint`) and `sam build` (into .aws-sam/build), then looks inside the build.
# Needs no AWS account or credentials and calls no AWS endpoint; `sam build` fetches the layer's
# requirements from the package registry. Works from any directory; exits non-zero on any failure.
#
# The tools live in .venv-sam (git-ignored), made from requirements/sam.txt with python3.13, the
# Lambda runtime's version, which `sam build` also needs on PATH.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

VENV="$ROOT/.venv-sam"
REQUIREMENTS="$ROOT/requirements/sam.txt"
STAMP="$VENV/.installed"

say() { printf '==> %s\n' "$*"; }
die() { printf 'sam-check: %s\n' "$*" >&2; exit 1; }

# shellcheck source=scripts/python313.sh
source "$ROOT/scripts/python313.sh"

PYTHON313="$(find_python313)" || die "no working python3.13 found (looked in \
${PYENV_ROOT:-$HOME/.pyenv}/versions/3.13*/bin and on PATH). Install Python 3.13, e.g. \
'pyenv install 3.13', or put a python3.13 on PATH: sam build needs it for the python3.13 runtime."
say "python3.13: $PYTHON313"

# .venv-sam: (re)made when missing or not 3.13; reinstalled when requirements/sam.txt is newer than
# the stamp of the last successful install.
if [[ -e "$VENV" ]] && ! is_python313 "$VENV/bin/python"; then
    say "recreating $VENV (not a working python3.13 venv)"
    rm -rf "$VENV"
fi
if [[ ! -x "$VENV/bin/python" ]]; then
    say "creating $VENV"
    "$PYTHON313" -m venv "$VENV"
    rm -f "$STAMP"
fi
if [[ ! -f "$STAMP" || "$REQUIREMENTS" -nt "$STAMP" ]]; then
    say "installing $REQUIREMENTS into $VENV (log: $VENV/pip.log)"
    if ! "$VENV/bin/python" -m pip install --disable-pip-version-check -r "$REQUIREMENTS" \
        >"$VENV/pip.log" 2>&1; then
        tail -n 40 "$VENV/pip.log" >&2
        die "pip install -r requirements/sam.txt failed (full log: $VENV/pip.log)"
    fi
    touch "$STAMP"
else
    say "$VENV is up to date"
fi

# python3.13 (and its pip) first on PATH for sam build's python workflow; the venv's tools by path.
PYTHON313_BIN="$(dirname "$PYTHON313")"
export PATH="$PYTHON313_BIN:$VENV/bin:$PATH"
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-west-2}"
export SAM_CLI_TELEMETRY=0          # no usage reports
export AWS_EC2_METADATA_DISABLED=true  # never look for instance credentials

SAM="$VENV/bin/sam"
CFN_LINT="$VENV/bin/cfn-lint"

say "cfn-lint template.yaml"
"$CFN_LINT" template.yaml

# samconfig.toml sets lint = true for validate, which makes plain `sam validate` run cfn-lint only;
# its `translator` environment turns that off, so this is the SAM translator's own validation.
say "sam validate (SAM translator)"
"$SAM" validate --template-file template.yaml --config-env translator

say "sam validate --lint"
"$SAM" validate --template-file template.yaml --lint

# --cached: SAM rebuilds a function or layer whenever its source directory or its
# requirements.txt changes (hashes kept in .aws-sam/cache), so a warm run reuses the layer's pip
# install safely. --parallel builds the function and the layer at once.
say "sam build"
"$SAM" build --template-file template.yaml --build-dir .aws-sam/build --cache-dir .aws-sam/cache \
    --cached --parallel

# The layer must carry the package and its requirements under python/, the function its handler.
BUILD="$ROOT/.aws-sam/build"
for expected in \
    "$BUILD/template.yaml" \
    "$BUILD/SendSignalingFunction/app.py" \
    "$BUILD/RelayLayer/python/kvs_relay/relay.py" \
    "$BUILD/RelayLayer/python/kvs_relay/py.typed" \
    "$BUILD/RelayLayer/python/aws_lambda_powertools/__init__.py" \
    "$BUILD/RelayLayer/python/websocket/__init__.py"; do
    [[ -e "$expected" ]] || die "sam build output is missing ${expected#"$ROOT"/}"
done

# Bytecode in the build: Lambda's /opt and /var/task are read-only, so without it every cold
# start compiles the layer again (bench: 698 ms -> 228 ms of import). unchecked-hash: the .pyc
# stay valid whatever timestamps the zip gives the sources. `sam deploy` ships .aws-sam/build.
say "compile bytecode into the build"
"$PYTHON313" -m compileall -q -j 0 --invalidation-mode unchecked-hash \
    "$BUILD/RelayLayer/python" "$BUILD/SendSignalingFunction" >/dev/null
say "sam-check passed"
