#!/usr/bin/env bash
# Draws the charts of a scripts/load run: chart.sh DIR OUT.png — latency and request
# rate over time (a full or ci run), or per stage (a stress run); see chart.py.
# matplotlib from PyPI, in a venv under target/load-venv, made on first use.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/../../target/load-venv"
if ! "$venv/bin/python" -c 'import matplotlib' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q matplotlib
fi
"$venv/bin/python" "$here/chart.py" "$@"
