#!/usr/bin/env bash
# Installs what the console's browser test (run.py) needs: Debian's chromium and
# chromium-driver (/usr/bin/chromium, /usr/bin/chromedriver: the test never lets Selenium
# Manager download a browser or a driver), ffmpeg when missing, and a venv with the pinned
# selenium of requirements.txt. Idempotent: does nothing when all are there. Usage:
# install.sh [VENV_DIR] (default: target/console-test-venv under the repo root; PYTHON
# overrides python3); prints the venv's python.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${1:-$root/target/console-test-venv}"
want="$(sed -n 's/^selenium==//p' "$here/requirements.txt")"

sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >&2
fi
# ffmpeg: the test makes its clip with it, and Aurora runs it (scripts/test installs it too).
if ! command -v ffmpeg >/dev/null 2>&1 || ! command -v ffprobe >/dev/null 2>&1; then
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ffmpeg >&2
fi
[ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] ||
  { echo "install.sh: chromium or chromedriver is still missing from /usr/bin" >&2; exit 1; }

if ! [ -x "$venv/bin/python" ] ||
  [ "$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("selenium"))' 2>/dev/null)" != "$want" ]; then
  "${PYTHON:-python3}" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check --only-binary=:all: -r "$here/requirements.txt" >&2
fi
echo "$venv/bin/python"
