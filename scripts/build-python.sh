#!/bin/bash
# Builds a free-threaded python3.13t or python3.14t (argument: 3.13 or 3.14, default 3.13)
# from Debian's python3.X source package into a cache directory outside the clone, reusing
# it when it is already there.
#
# Debian serves no free-threaded binary, so the source comes from a suite that carries the
# source package: python3.13 from trixie, python3.14 from forky (testing) or sid. The
# deb-src entries are derived from this machine's own apt configuration (its URIs, with
# type and suite changed), and apt runs with private list/state/cache directories so the
# system's apt state is not touched. Prints the interpreter's path on stdout as its last line.
set -euo pipefail

ver="${1:-3.13}"
case "$ver" in
  3.13) default_suites="trixie" ;;
  3.14) default_suites="forky sid" ;;
  *) echo "ftsan-setup: unsupported python version '$ver' (3.13 or 3.14)" >&2; exit 1 ;;
esac
cache="${FTSAN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ftsan}"
prefix="$cache/python${ver}t"
suites="${FTSAN_PY_SUITE:-$default_suites}"
py="$prefix/bin/python${ver}t"

die() { echo "ftsan-setup: $*" >&2; exit 1; }

if [ -x "$py" ] && "$py" -c 'import sys,sysconfig; sys.exit(0 if sysconfig.get_config_var("Py_GIL_DISABLED") and not sys._is_gil_enabled() else 1)' 2>/dev/null; then
  echo "$py"; exit 0
fi

command -v apt-get >/dev/null || die "no free-threaded python found and no apt-get to build one; set FTSAN_PYTHON to a python3.13t or python3.14t"

work="$cache/build-$ver"
rm -rf "$work"; mkdir -p "$work/src"
. "$(dirname "$0")/private-apt.sh"
echo "ftsan-setup: fetching the python$ver source package ($suites)" >&2
private_apt_setup "$work" deb-src "$suites" || die "apt-get update of the private deb-src list failed"
( cd "$work/src" && apt-get "${aptopts[@]}" source -qq "python$ver" >&2 ) || die "apt-get source python$ver failed (is dpkg-dev installed?)"
srcdir=$(find "$work/src" -maxdepth 1 -mindepth 1 -type d -name "python$ver*" | head -1)
[ -n "$srcdir" ] || die "python$ver source did not unpack"

echo "ftsan-setup: building python${ver}t in $prefix (a few minutes)" >&2
cd "$srcdir"
./configure --disable-gil --prefix="$prefix" --without-ensurepip --with-lto=no >"$work/configure.log" 2>&1 || die "configure failed, see $work/configure.log"
make -j"$(nproc)" >"$work/make.log" 2>&1 || die "build failed, see $work/make.log"
make install >"$work/install.log" 2>&1 || die "install failed, see $work/install.log"
"$py" -c 'import sys,sysconfig; assert sysconfig.get_config_var("Py_GIL_DISABLED"); assert not sys._is_gil_enabled()' \
  || die "the built interpreter is not free-threaded"
rm -rf "$work"
echo "$py"
