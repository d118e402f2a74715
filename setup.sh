#!/usr/bin/env bash
# Set-up, everything the project and its tests need, on a fresh machine (README: Quick start):
#   1. the package and its test tools (pip, into the active Python or venv);
#   2. a headless Chromium for the report and demo page tests (Debian's package, when missing);
#   3. MNIST, fetched and verified once (data/MNIST/raw).
set -euo pipefail
cd "$(dirname "$0")"

python -m pip install -e ".[dev]"

if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
      echo "setup: Chromium is missing and this user cannot install Debian packages; install 'chromium' (or set MNIST_GEN_CHROMIUM) for the page tests." >&2
      exit 1
    fi
  fi
  $sudo apt-get update -qq && $sudo apt-get install -y -qq chromium >/dev/null
fi

python -m mnist_gen.data
