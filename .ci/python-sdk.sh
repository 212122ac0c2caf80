#!/usr/bin/env bash
# The Python SDK's CI: installs clients/python into a fresh virtualenv the way a user does (`pip install`, which
# generates the gRPC code from proto/ at build time) and runs its tests against a real hookwired.
#
# Run from anywhere: `bash .ci/python-sdk.sh`. The kernel is $HOOKWIRE_BIN, or else target/debug/hookwired (under
# $CARGO_TARGET_DIR when set), built here when missing (the Rust tests build it). $PYTHON picks the interpreter
# (default python3). Exits non-zero when the install or any test fails.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"

echo "== hookwired for the Python SDK tests"
if [ -z "${HOOKWIRE_BIN:-}" ]; then
    HOOKWIRE_BIN="$(realpath -m "${CARGO_TARGET_DIR:-target}")/debug/hookwired"
    if [ ! -x "$HOOKWIRE_BIN" ]; then
        cargo build --locked -p hookwire-kernel --bin hookwired
    fi
fi
export HOOKWIRE_BIN
echo "$HOOKWIRE_BIN"

VENV_DIR="$(mktemp -d /tmp/hookwire-ci-python.XXXXXX)"
remove_venv() {
    rm -rf "$VENV_DIR"
}
trap remove_venv EXIT

echo "== install clients/python into a fresh virtualenv"
"$PYTHON" --version
"$PYTHON" -m venv "$VENV_DIR"
"$VENV_DIR/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$VENV_DIR/bin/python" -m pip install --quiet --disable-pip-version-check ./clients/python pytest

echo "== Python SDK tests"
# From the repository root, so that `import hookwire` is the installed package (with its generated code), not
# the source folder. pytest exits non-zero on a failure, and with 5 when it collected no test.
"$VENV_DIR/bin/python" -m pytest -q -p no:cacheprovider clients/python/tests
