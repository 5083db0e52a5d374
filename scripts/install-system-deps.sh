#!/usr/bin/env bash
# Installs the Debian packages the end-to-end tests start (real Prometheus and Alertmanager) when they are
# missing. Needs root; without it, says what to install and fails, since the suite would fail without them.
set -euo pipefail

packages=()
command -v prometheus >/dev/null || packages+=(prometheus)
command -v prometheus-alertmanager >/dev/null || packages+=(prometheus-alertmanager)
[ ${#packages[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "missing Debian packages for the end-to-end tests: ${packages[*]}" >&2
  echo "install them with: sudo apt-get install -y --no-install-recommends ${packages[*]}" >&2
  exit 1
fi
echo "installing ${packages[*]} ..."
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# --no-install-recommends: without it apt pulls ~500 MB of recommends.
apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
