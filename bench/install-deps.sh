#!/usr/bin/env bash
# What `make bench` needs besides the Python packages: wrk (Debian) as the load generator, PostgreSQL 15 for the
# PostgreSQL rows, and py-spy (PyPI, into the venv given as $1) for the profiles. Installs what is missing; the
# Debian packages need root - without it, says what to install and fails.
set -euo pipefail
venv_python=${1:?usage: bench/install-deps.sh VENV_PYTHON}

packages=()
command -v wrk >/dev/null || packages+=(wrk)
# The server binaries live in /usr/lib/postgresql/15/bin, not on PATH: ask dpkg.
dpkg -s postgresql-15 >/dev/null 2>&1 || packages+=(postgresql-15)
if [ ${#packages[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing Debian packages for the benchmark: ${packages[*]}" >&2
    echo "install them with: sudo apt-get install -y --no-install-recommends ${packages[*]}" >&2
    exit 1
  fi
  echo "installing ${packages[*]} ..."
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
fi

"$venv_python" -c 'import sys, pathlib; sys.exit(0 if (pathlib.Path(sys.executable).parent / "py-spy").exists() else 1)' ||
  "$venv_python" -m pip install -q py-spy
