#!/bin/bash
# Fetches CPython 3.14 as Debian's unstable suite builds it, with the C library it needs,
# into a cache directory outside the clone: for the test that runs the runtime's 3.14 frame
# layout against a real 3.14 interpreter. Debian builds no free-threaded 3.14 and serves
# its 3.14 source here only as an index, so this is the GIL build; what is specific to the
# free-threaded build (per-thread bytecode) is covered by unit tests. Nothing is
# installed: the packages are unpacked, and the interpreter runs through the unpacked C
# library's own loader:
#   DIR/root/usr/lib64/ld-linux-x86-64.so.2 --library-path "$(cat DIR/library-path)" \
#       DIR/root/usr/bin/python3.14      (with PYTHONHOME=DIR/root/usr)
# Headers are in DIR/root/usr/include/python3.14. Prints DIR as its last line.
set -euo pipefail

cache="${FTSAN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ftsan}"
dir="$cache/python3.14-sid"
die() { echo "ftsan-setup: $*" >&2; exit 1; }

if [ -f "$dir/ready" ]; then echo "$dir"; exit 0; fi
command -v apt-get >/dev/null || die "apt-get is needed to fetch python3.14"
rm -rf "$dir"; mkdir -p "$dir/debs" "$dir/root"
. "$(dirname "$0")/private-apt.sh"
echo "ftsan-setup: fetching python3.14 and its C library (Debian unstable)" >&2
private_apt_setup "$dir" deb sid || die "apt-get update of the private list (sid) failed"
( cd "$dir/debs" && apt-get "${aptopts[@]}" download -qq python3.14-minimal libpython3.14-minimal \
    libpython3.14-stdlib libpython3.14-dev libc6 zlib1g libexpat1 libffi8 >&2 ) \
  || die "downloading python3.14 from Debian unstable failed"
for deb in "$dir"/debs/*.deb; do dpkg-deb -x "$deb" "$dir/root"; done
loader="$dir/root/usr/lib64/ld-linux-x86-64.so.2"
[ -x "$loader" ] && [ -x "$dir/root/usr/bin/python3.14" ] || die "python3.14 or its loader did not unpack"
arch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo x86_64-linux-gnu)
echo "$dir/root/usr/lib/$arch:/usr/lib/$arch:/lib/$arch" > "$dir/library-path"
PYTHONHOME="$dir/root/usr" "$loader" --library-path "$(cat "$dir/library-path")" "$dir/root/usr/bin/python3.14" \
  -c 'import sys, threading; assert sys.version_info[:2] == (3, 14)' || die "the unpacked python3.14 does not run"
rm -rf "$dir/debs" "$dir/apt"
touch "$dir/ready"
echo "$dir"
