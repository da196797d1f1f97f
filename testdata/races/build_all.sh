#!/bin/sh
# build_all.sh OUTDIR [CC] -- compile every race-corpus extension (testdata/races/*/*.c)
# into OUTDIR as <module><EXT_SUFFIX>. Python comes from $FTSAN_PYTHON; extra compiler
# flags (e.g. -fsanitize=thread, -Werror) from $CFLAGS.
set -eu
if [ $# -lt 1 ]; then
    echo "usage: $0 OUTDIR [CC]" >&2
    exit 2
fi
OUTDIR=$1
CC=${2:-${CC:-cc}}
PY=${FTSAN_PYTHON:-/root/.cache/ftsan/python3.13t/bin/python3.13t}
HERE=$(cd "$(dirname "$0")" && pwd)
INCLUDES=$("$PY-config" --includes)
SUFFIX=$("$PY" -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')
mkdir -p "$OUTDIR"
for src in "$HERE"/*/*.c; do
    module=$(basename "$src" .c)
    # shellcheck disable=SC2086 # INCLUDES and CFLAGS are word lists
    "$CC" -std=c11 -Wall -Wextra -shared -fPIC -g -O1 $INCLUDES ${CFLAGS:-} \
        "$src" -o "$OUTDIR/$module$SUFFIX"
done
