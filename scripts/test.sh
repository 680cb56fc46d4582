#!/usr/bin/env bash
# The project's one test command (README, CI): formatting, lints, unit and integration tests,
# then the end-to-end suite (tests/e2e) against the real `meshtrace` binary.
#
# Works on a fresh Debian machine as root with Rust and Python 3 (+pip): it installs what is
# missing (curl, openssl, python3-venv) and keeps the Python dependencies in .venv.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$(pwd)"
VENV="$ROOT/.venv"
REQUIREMENTS="$ROOT/tests/e2e/requirements.txt"
export PYTHONDONTWRITEBYTECODE=1
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

step() {
    printf '\n==== %s ====\n' "$*"
}

# shellcheck source=lib/apt.sh
source "$ROOT/scripts/lib/apt.sh"

step "system packages"
if ! command -v curl >/dev/null 2>&1; then
    apt_install curl
fi
# The HTTPS egress test makes its own certificate.
if ! command -v openssl >/dev/null 2>&1; then
    apt_install openssl
fi
PYTHON="$(command -v python3 || true)"
if [ -z "$PYTHON" ]; then
    apt_install python3 python3-venv python3-pip
    PYTHON="$(command -v python3)"
fi
echo "curl: $(command -v curl); python: $PYTHON ($("$PYTHON" --version 2>&1))"

step "python venv (.venv) and tests/e2e/requirements.txt"
if ! "$VENV/bin/python" -m pip --version >/dev/null 2>&1; then
    rm -rf "$VENV"
    if ! "$PYTHON" -m venv "$VENV"; then
        # Debian's python3 needs python3-venv (ensurepip) to create a venv.
        rm -rf "$VENV"
        apt_install python3-venv
        "$PYTHON" -m venv "$VENV"
    fi
fi
wanted="$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1)"
installed="$(cat "$VENV/.requirements.sha256" 2>/dev/null || true)"
if [ "$wanted" != "$installed" ]; then
    "$VENV/bin/python" -m pip install --disable-pip-version-check -q -r "$REQUIREMENTS"
    echo "$wanted" >"$VENV/.requirements.sha256"
else
    echo "requirements already installed"
fi

step "cargo fmt --all -- --check"
cargo fmt --all -- --check

step "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo test --workspace"
cargo test --workspace

step "cargo build -p meshtrace"
cargo build -p meshtrace
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR="$ROOT/$TARGET_DIR" ;; esac
export MESHTRACE_BIN="$TARGET_DIR/debug/meshtrace"
"$MESHTRACE_BIN" components >/dev/null

step "pytest tests/e2e (MESHTRACE_BIN=$MESHTRACE_BIN)"
"$VENV/bin/python" -m pytest tests/e2e -q

step "all tests passed"
