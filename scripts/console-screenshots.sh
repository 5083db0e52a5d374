#!/usr/bin/env bash
# Refreshes the web console screenshots docs/console.md shows: runs the browser suite (headless Chromium) with
# AUTOREMEDY_CONSOLE_SCREENSHOTS set, so the pages it visits are also saved, light and dark, into docs/console/.
set -euo pipefail
cd "$(dirname "$0")/.."
AUTOREMEDY_CONSOLE_SCREENSHOTS="$PWD/docs/console" .venv/bin/pytest tests/browser -q
