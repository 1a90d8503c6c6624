#!/usr/bin/env bash
# Installs the Debian packages the project needs, only those missing.
# Used by `make run` / `make test` so a fresh Debian machine with python3, make
# and root gets everything: venv support, iproute2 (the two-host test runs each
# array daemon in its own network namespace), the Qt runtime libraries, the real NBD
# clients the tests drive (qemu-img/qemu-io, nbdcopy, fio), rsync and cp peers for
# the benchmarks, and Xvfb for screenshots.
set -eu
want="python3-venv iproute2 qemu-utils libnbd-bin fio rsync xvfb libegl1 libgl1 libxkbcommon0 libxkbcommon-x11-0 libfontconfig1 libdbus-1-3 libglib2.0-0 libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-shape0 libxcb-xinerama0 libxcb-randr0 libxcb-render-util0 libxcb-image0"
missing=""
for p in $want; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "missing Debian packages:$missing -- run 'sudo apt-get install$missing' (or make as root)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends $missing >/dev/null
