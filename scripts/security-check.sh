#!/usr/bin/env bash
# checkov on template.yaml (cfn-lint runs in scripts/sam-check.sh): exits non-zero on any failed
# check. Skipped checks carry their reason in the resource's Metadata.checkov.skip (a test makes
# sure none is unexplained). checkov lives in .venv-checkov (requirements/checkov.txt): it pins a
# boto3 the SAM CLI's differs from. Offline: --skip-download keeps it from calling Prisma Cloud.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv-checkov"
REQUIREMENTS="$ROOT/requirements/checkov.txt"
STAMP="$VENV/.installed"

# shellcheck source=scripts/python313.sh
source "$ROOT/scripts/python313.sh"

if [[ ! -x "$VENV/bin/python" ]]; then
    PYTHON="$(find_python313)" || { echo "security-check: no python3.13 found" >&2; exit 1; }
    "$PYTHON" -m venv "$VENV"
    rm -f "$STAMP"
fi
if [[ ! -f "$STAMP" || "$REQUIREMENTS" -nt "$STAMP" ]]; then
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$REQUIREMENTS" \
        >"$VENV/pip.log" 2>&1 || { tail -n 30 "$VENV/pip.log" >&2; exit 1; }
    touch "$STAMP"
fi
echo "==> checkov template.yaml"
"$VENV/bin/checkov" -f template.yaml --framework cloudformation --skip-download --compact \
    --quiet
echo "==> checkov passed"
