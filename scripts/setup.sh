#!/bin/bash
# Installs what ftsan needs on a Debian machine (only what is missing) and finds or builds a
# free-threaded python. Idempotent and quick when everything is there.
# Prints the free-threaded interpreter's path as its last line on stdout.
set -euo pipefail

die() { echo "ftsan-setup: $*" >&2; exit 1; }
here=$(cd "$(dirname "$0")" && pwd)

# What the build and the tests need. clang-19 is the preferred LLVM (majors 15-22 work).
packages=(clang-19 llvm-19-dev libclang-rt-19-dev libunwind-dev libdwarf-dev libcapstone-dev
          libelf-dev cmake make pkg-config gcc g++ python3-pytest)
# What building python3.13t from source needs (only when no free-threaded python exists).
python_build_packages=(dpkg-dev build-essential libssl-dev zlib1g-dev libffi-dev libbz2-dev
                       liblzma-dev libsqlite3-dev uuid-dev libexpat1-dev)

missing_packages() {
  local p missing=()
  for p in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
      missing+=("$p")
    fi
  done
  echo "${missing[@]:-}"
}

apt_updated=0
install_packages() {
  local missing
  missing=$(missing_packages "$@")
  [ -z "$missing" ] && return 0
  if ! command -v apt-get >/dev/null || ! command -v dpkg-query >/dev/null; then
    die "missing packages ($missing) and no apt-get: install them with your package manager"
  fi
  if [ "$(id -u)" != 0 ]; then
    die "missing packages; run as root: apt-get update && apt-get install -y --no-install-recommends $missing"
  fi
  echo "ftsan-setup: installing $missing" >&2
  if [ $apt_updated = 0 ]; then
    apt-get update -qq >&2 || die "apt-get update failed"
    apt_updated=1
  fi
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >&2 \
    || die "apt-get install $missing failed"
}

if command -v dpkg-query >/dev/null; then
  install_packages "${packages[@]}"
else
  echo "ftsan-setup: not a Debian system; assuming clang-19, llvm-19-dev, libunwind, libdwarf, capstone, libelf, cmake are installed" >&2
fi

is_free_threaded() {
  "$1" -c 'import sys, sysconfig
sys.exit(0 if sysconfig.get_config_var("Py_GIL_DISABLED") and not sys._is_gil_enabled() else 1)' 2>/dev/null
}

py=""
if [ -n "${FTSAN_PYTHON:-}" ]; then
  cand=$(command -v "$FTSAN_PYTHON" || true)
  [ -n "$cand" ] || die "FTSAN_PYTHON=$FTSAN_PYTHON: no such program"
  is_free_threaded "$cand" || die "FTSAN_PYTHON=$FTSAN_PYTHON is not a free-threaded python (Py_GIL_DISABLED build with the GIL off at start)"
  py=$cand
else
  for name in python3.14t python3.13t; do
    cand=$(command -v "$name" || true)
    if [ -n "$cand" ] && is_free_threaded "$cand"; then py=$cand; break; fi
  done
fi
if [ -z "$py" ]; then
  cache="${FTSAN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ftsan}"
  if [ -x "$cache/python3.13t/bin/python3.13t" ] && is_free_threaded "$cache/python3.13t/bin/python3.13t"; then
    py="$cache/python3.13t/bin/python3.13t"
  else
    command -v dpkg-query >/dev/null || die "no free-threaded python found: set FTSAN_PYTHON to a python3.13t or python3.14t"
    install_packages "${python_build_packages[@]}"
    py=$("$here/build-python.sh" | tail -1)
  fi
fi
echo "$py"
