#!/usr/bin/env bash
# Installs the Debian packages the tests start for real when they are missing: Prometheus and Alertmanager
# (end-to-end tests), the CrowdSec Local API and PostgreSQL 15 (integration tests), Chromium and its WebDriver
# (the web console's browser tests). Needs root; without it,
# says what to install and fails, since the suite would fail without them.
set -euo pipefail

packages=()
command -v prometheus >/dev/null || packages+=(prometheus)
command -v prometheus-alertmanager >/dev/null || packages+=(prometheus-alertmanager)
command -v crowdsec >/dev/null || packages+=(crowdsec)
# The server binaries live in /usr/lib/postgresql/15/bin, not on PATH: ask dpkg.
dpkg -s postgresql-15 >/dev/null 2>&1 || packages+=(postgresql-15)
command -v chromium >/dev/null || packages+=(chromium)
command -v chromedriver >/dev/null || packages+=(chromium-driver)
[ ${#packages[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "missing Debian packages for the tests: ${packages[*]}" >&2
  echo "install them with: sudo apt-get install -y --no-install-recommends ${packages[*]}" >&2
  exit 1
fi
echo "installing ${packages[*]} ..."
export DEBIAN_FRONTEND=noninteractive
if [[ " ${packages[*]} " == *" crowdsec "* ]]; then
  # crowdsec's postinst registers with the online Central API unless these credentials exist, and fails
  # without network. The tests run their own Local API and never go online.
  mkdir -p /etc/crowdsec
  [ -e /etc/crowdsec/online_api_credentials.yaml ] ||
    echo '# online API disabled' >/etc/crowdsec/online_api_credentials.yaml
fi
apt-get update -qq
# --no-install-recommends: without it apt pulls ~500 MB of recommends.
apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
