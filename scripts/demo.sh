#!/bin/bash
# The demo: builds the bundled hitcounter extension with ftsan-cc, runs a four-thread driver
# under 'ftsan run' in the free-threaded python, and prints what ftsan found.
set -euo pipefail
build=$(cd "$1" && pwd)
py=$2
src=$(cd "$(dirname "$0")/../testdata/demo" && pwd)
work="$build/demo"
mkdir -p "$work"
suffix=$("$py" -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')
includes=$("$py" -c 'import sysconfig; print("-I" + sysconfig.get_paths()["include"])')

echo "\$ CC=ftsan-cc: building testdata/demo/hitcounter.c"
"$build/bin/ftsan-cc" -shared -fPIC -O1 $includes "$src/hitcounter.c" -o "$work/hitcounter$suffix"
echo "\$ ftsan run --out $work/ftsan-out -- $(basename "$py") demo.py"
status=0
PYTHONPATH="$work" "$build/bin/ftsan" run --out "$work/ftsan-out" -- "$py" "$src/demo.py" || status=$?
echo "\$ ftsan report $work/ftsan-out"
"$build/bin/ftsan" report "$work/ftsan-out"
echo "(ftsan run exited with status $status)"
