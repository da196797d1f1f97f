"""Scaling demonstration for docs/scaling.md: a workload whose threaded speedup is poor
because every thread takes references to one shared object, what 'ftsan top' says about it,
and the speedup after the obvious fix (per-thread copies).

usage: python3.13t scaling_demo.py BUILD_DIR   (run by tests/bench/scaling_demo.sh)"""
import os
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time

SRC = os.path.join(os.path.dirname(__file__), "..", "..", "testdata", "contention", "contention_ext.c")
WORK = int(os.environ.get("SCALING_WORK", "4000000"))  # touch() calls in total, split across the threads


def build(outdir):
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    include = sysconfig.get_paths()["include"]
    subprocess.run(["clang-19", "-O2", "-shared", "-fPIC", "-I" + include, SRC,
                    "-o", os.path.join(outdir, "contention_ext" + suffix)], check=True)


def run(nthreads, shared):
    import contention_ext
    obj = [1, 2, 3]
    objs = [obj if shared else list(obj) for _ in range(nthreads)]
    per = WORK // nthreads
    start = threading.Barrier(nthreads + 1)

    def worker(mine):
        if not shared:
            mine = list(mine)  # created by this thread: its owner
        touch = contention_ext.touch
        start.wait()
        for _ in range(per):
            touch(mine)

    threads = [threading.Thread(target=worker, args=(o,)) for o in objs]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    return time.perf_counter() - t0


def main():
    if len(sys.argv) > 2:  # child: one measurement
        sys.path.insert(0, sys.argv[2])
        print(run(int(sys.argv[3]), sys.argv[4] == "shared"))
        return
    build_dir = sys.argv[1]
    tmp = tempfile.mkdtemp(prefix="ftsan-scaling-")
    build(tmp)
    counts = sorted({1, 2, 4, os.cpu_count() or 1})
    results = {}
    for variant in ("shared", "per-thread"):
        for n in counts:
            best = min(float(subprocess.run([sys.executable, __file__, "-", tmp, str(n),
                                             "shared" if variant == "shared" else "own"],
                                            check=True, capture_output=True, text=True).stdout)
                       for _ in range(3))
            results[(variant, n)] = best
    model = open("/proc/cpuinfo").read().split("model name")[1].split("\n")[0].split(":", 1)[1].strip()
    print("machine: %d cores (%s)" % (os.cpu_count(), model))
    print("\n| threads | shared object: time (s) | speedup | per-thread copies: time (s) | speedup |")
    print("|---|---|---|---|---|")
    for n in counts:
        s1, sn = results[("shared", 1)], results[("shared", n)]
        p1, pn = results[("per-thread", 1)], results[("per-thread", n)]
        print("| %d | %.3f | %.2fx | %.3f | %.2fx |" % (n, sn, s1 / sn, pn, p1 / pn))
    # what ftsan top says about the slow variant
    ext = os.path.join(build_dir, "scaling-ext")
    os.makedirs(ext, exist_ok=True)
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    subprocess.run([os.path.join(build_dir, "bin", "ftsan-cc"), "-O2", "-shared", "-fPIC",
                    "-I" + sysconfig.get_paths()["include"], SRC,
                    "-o", os.path.join(ext, "contention_ext" + suffix)], check=True)
    out = os.path.join(build_dir, "scaling-out")
    subprocess.run([os.path.join(build_dir, "bin", "ftsan"), "run", "-q", "--options", "mode=contention",
                    "--out", out, "--", sys.executable, __file__, "-", ext, "2", "shared"],
                   check=True, env=dict(os.environ, SCALING_WORK="200000"), capture_output=True)
    top = subprocess.run([os.path.join(build_dir, "bin", "ftsan"), "top", "--limit", "2", out],
                         check=True, capture_output=True, text=True).stdout
    print("\n$ ftsan top (the shared variant, 2 threads, under ftsan run --options mode=contention)\n")
    print("```\n" + top.rstrip() + "\n```")


if __name__ == "__main__":
    main()
