#!/bin/bash
# run.sh BUILD_DIR PYTHON: the overhead benchmark ('make bench'). Builds tests/bench/bench_ext.c
# three ways (uninstrumented, ThreadSanitizer, ftsan) into BUILD_DIR/bench, runs
# tests/bench/driver.py on each workload at 1, 2 and 4 threads under each variant (best of
# BENCH_REPS runs, default 3, the variants interleaved), and prints the time and peak-RSS
# ratios against the uninstrumented build; the same table goes to BUILD_DIR/bench/results.md.
# It also checks that ftsan reported nothing: the workloads are race-free.
#
# Environment: BENCH_WORKLOADS (default "private locked pysync refcount"), BENCH_THREADS
# (default "1 2 4"), BENCH_REPS (default 3), BENCH_SCALE (work multiplier, default 1).
# BENCH_NO_BUILD=1 reuses the four builds of an earlier run (on a machine without clang-19:
# copy BUILD_DIR along), with the ThreadSanitizer runtime at BENCH_TSAN_RT.
set -euo pipefail
if [ $# -ne 2 ]; then
  echo "usage: $0 BUILD_DIR PYTHON" >&2
  exit 2
fi
build=$(cd "$1" && pwd)
py=$2
here=$(cd "$(dirname "$0")" && pwd)
work="$build/bench"
workloads=${BENCH_WORKLOADS:-private locked pysync refcount}
threads_list=${BENCH_THREADS:-1 2 4}
reps=${BENCH_REPS:-3}
cc=clang-19

no_build=${BENCH_NO_BUILD:-0}
for tool in "$build/bin/ftsan" "$build/bin/ftsan-cc"; do
  [ -x "$tool" ] || { echo "bench: $tool missing (run 'make build')" >&2; exit 1; }
done
if [ "$no_build" = 1 ]; then
  tsan_rt=${BENCH_TSAN_RT:-}
else
  tsan_rt=$($cc -print-file-name=libclang_rt.tsan-x86_64.so)
fi
[ -f "$tsan_rt" ] || { echo "bench: ThreadSanitizer runtime not found ($tsan_rt)" >&2; exit 1; }

# Only this script's own scratch paths: BUILD_DIR/bench may hold other tools' files.
rm -rf "$work/out" "$work/logs" "$work/raw.tsv" "$work/results.md"
[ "$no_build" = 1 ] || rm -rf "$work/native" "$work/tsan" "$work/ftsan" "$work/ftsan-contention"
mkdir -p "$work/native" "$work/tsan" "$work/ftsan" "$work/out" "$work/logs"
suffix=$("$py" -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')
includes=$("$py" -c 'import sysconfig; print("-I" + sysconfig.get_paths()["include"])')
src="$here/bench_ext.c"
mod="bench_ext$suffix"
start=$SECONDS

if [ "$no_build" = 1 ]; then
  for v in native tsan ftsan ftsan-contention; do
    [ -f "$work/$v/$mod" ] || { echo "bench: BENCH_NO_BUILD=1 but $work/$v/$mod is missing" >&2; exit 1; }
  done
else
  echo "bench: building $src three ways into $work/{native,tsan,ftsan}"
  $cc -std=c11 -O2 -g -shared -fPIC $includes "$src" -o "$work/native/$mod"
  $cc -std=c11 -O2 -g -fsanitize=thread -shared -fPIC $includes "$src" -o "$work/tsan/$mod"
  "$build/bin/ftsan-cc" -std=c11 -O2 -shared -fPIC $includes "$src" -o "$work/ftsan/$mod"
  # The contention-only build (refcount events and C-API redirections, no per-access calls).
  mkdir -p "$work/ftsan-contention"
  FTSAN_INSTRUMENT=contention "$build/bin/ftsan-cc" -std=c11 -O2 -shared -fPIC $includes "$src" \
    -o "$work/ftsan-contention/$mod"
fi

# One run: prints "TIME RSS_KB FINDINGS" (FINDINGS is - for native and TSan).
run_one() {
  local variant=$1 workload=$2 threads=$3 rep=$4
  local log="$work/logs/$workload-$threads-$variant-$rep.log"
  local cmd=("$py" "$here/measure.py" "$here/driver.py" "$workload" "$threads")
  local out="$work/out/$workload-$threads"
  local status=0
  case $variant in
    native) PYTHONPATH="$work/native" "${cmd[@]}" > "$log" 2>&1 || status=$? ;;
    tsan) PYTHONPATH="$work/tsan" LD_PRELOAD="$tsan_rt" TSAN_OPTIONS="report_bugs=0 exitcode=0" \
            "${cmd[@]}" > "$log" 2>&1 || status=$? ;;
    ftsan) PYTHONPATH="$work/ftsan" "$build/bin/ftsan" run -q --out "$out" --exitcode 0 -- \
             "${cmd[@]}" > "$log" 2>&1 || status=$? ;;
    ftsan-contention)
      PYTHONPATH="$work/ftsan-contention" "$build/bin/ftsan" run -q --mode contention --out "$out-contention" \
        --exitcode 0 -- "${cmd[@]}" > "$log" 2>&1 || status=$? ;;
  esac
  local time rss findings=-
  time=$(awk '$1 == "time" {print $2}' "$log")
  rss=$(awk '$1 == "maxrss_kb" {print $2}' "$log")
  if [ $status -ne 0 ] || [ -z "$time" ] || [ -z "$rss" ]; then
    echo "bench: $variant $workload $threads threads failed (status $status); log $log:" >&2
    tail -20 "$log" >&2
    return 1
  fi
  if grep -q "the GIL is enabled" "$log"; then
    echo "bench: $variant $workload $threads threads ran with the GIL enabled; log $log" >&2
    return 1
  fi
  if [ "$variant" = ftsan ]; then
    # Prints the number of findings; complains on stderr about anything that would make the
    # run not count (GIL on, trace cut short, runtime warnings, extension not instrumented).
    findings=$("$build/bin/ftsan" report --format json "$out" | "$py" -c '
import json, sys
j, where = json.load(sys.stdin), sys.argv[1]
for p in j["processes"]:
    gil, complete, warnings = p.get("gil_enabled"), p.get("complete", True), p.get("warnings")
    if gil or not complete or warnings:
        print(f"bench: {where}: gil_enabled={gil} complete={complete} warnings={warnings}",
              file=sys.stderr)
    if not any("bench_ext" in m for m in p.get("instrumented_modules", [])):
        print(f"bench: {where}: bench_ext is not among the instrumented modules", file=sys.stderr)
print(len(j["findings"]))' "ftsan $workload $threads threads")
    # Keep the traces of a run with findings for 'ftsan report'.
    if [ "$findings" != 0 ]; then mv "$out" "$out-rep$rep"; fi
  fi
  echo "$time $rss $findings"
}

raw="$work/raw.tsv"
printf 'workload\tthreads\tvariant\trep\ttime_s\tmaxrss_kb\tfindings\n' > "$raw"
for workload in $workloads; do
  for threads in $threads_list; do
    printf 'bench: %-8s %s thread(s):' "$workload" "$threads"
    for rep in $(seq 1 "$reps"); do
      for variant in native tsan ftsan ftsan-contention; do
        read -r time rss findings < <(run_one "$variant" "$workload" "$threads" "$rep") || exit 1
        [ -n "${time:-}" ] || exit 1
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$workload" "$threads" "$variant" "$rep" \
          "$time" "$rss" "$findings" >> "$raw"
        printf ' %s=%.2fs' "$variant" "$time"
      done
    done
    echo
  done
done

echo
"$py" "$here/report.py" "$raw" "$work/results.md"
echo
echo "bench: raw numbers in $raw, table in $work/results.md ($((SECONDS - start)) s in all)"
