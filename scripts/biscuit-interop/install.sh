#!/usr/bin/env bash
# Creates the Python venv used by the Biscuit interop check (attenuate.py, selfcheck.py)
# and installs requirements.txt into it. Idempotent: does nothing when the venv already
# has the pinned biscuit-python. Usage: install.sh [VENV_DIR]
#   (default: target/biscuit-interop-venv under the repo root; PYTHON overrides python3)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${1:-$root/target/biscuit-interop-venv}"
want="$(sed -n 's/^biscuit-python==//p' "$here/requirements.txt")"

if [ -x "$venv/bin/python" ] &&
  [ "$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("biscuit-python"))' 2>/dev/null)" = "$want" ]; then
  exit 0
fi
"${PYTHON:-python3}" -m venv "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check --only-binary=:all: -r "$here/requirements.txt"
