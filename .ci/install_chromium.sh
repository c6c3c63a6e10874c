#!/usr/bin/env bash
# Install Debian's headless-capable Chromium for the report's browser test (idempotent, quiet).
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq chromium >/dev/null
$SUDO apt-get clean
command -v chromium >/dev/null
