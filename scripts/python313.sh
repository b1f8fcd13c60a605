# Sourced by the scripts that need Lambda's python3.13 (sam-check.sh, lambda-runtime.sh,
# security-check.sh): is_python313 PATH, and find_python313, which prints a python3.13 that runs.
# pyenv keeps versions under ~/.pyenv/versions; a pyenv shim named python3.13 may be on PATH and
# still fail (when 3.13 is not the active version), so every candidate is run before it is trusted.

is_python313() {
    "$1" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 13) else 1)' >/dev/null 2>&1
}

find_python313() {
    local candidate
    while IFS= read -r candidate; do
        if [[ -x "$candidate" ]] && is_python313 "$candidate"; then
            printf '%s\n' "$candidate"
            return 0
        fi
    done < <(compgen -G "${PYENV_ROOT:-$HOME/.pyenv}/versions/3.13*/bin/python3.13" | sort -V -r)
    if command -v python3.13 >/dev/null 2>&1; then
        candidate="$(python3.13 -c 'import sys; print(sys.executable)' 2>/dev/null || true)"
        if [[ -n "$candidate" ]] && is_python313 "$candidate"; then
            printf '%s\n' "$candidate"
            return 0
        fi
    fi
    return 1
}
