#!/usr/bin/env bash
# Installs the Debian packages Voltpay needs, when any is missing.
#   system-deps.sh run   what `make run` needs: a CJK font for receipts
#   system-deps.sh test  what `make test` needs besides: influxdb, chromium, poppler, socat, PostgreSQL
set -euo pipefail
purpose=${1:-test}
missing=()
dpkg -s fonts-noto-cjk >/dev/null 2>&1 || missing+=(fonts-noto-cjk)
if [ "$purpose" = test ]; then
  command -v influxd >/dev/null || missing+=(influxdb)
  command -v chromium >/dev/null || missing+=(chromium)
  dpkg -s poppler-utils >/dev/null 2>&1 || missing+=(poppler-utils)
  command -v socat >/dev/null || missing+=(socat)
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
fi
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "Voltpay needs these Debian packages: ${missing[*]}" >&2
  echo "Install them as root: apt-get install ${missing[*]}" >&2
  exit 1
fi
echo "Installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
