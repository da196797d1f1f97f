"""report.py RAW.tsv RESULTS.md: the table of tests/bench/run.sh from its raw numbers.

Per workload and thread count: the uninstrumented time (best of the runs) and peak RSS
(largest of the runs), then ThreadSanitizer's and ftsan's slowdown (best time / best
uninstrumented time) and memory ratio (peak RSS / uninstrumented peak RSS). Prints the
table and writes it, as markdown, to RESULTS.md, with the ftsan findings seen (should be 0)."""
import collections
import math
import sys

raw_path, md_path = sys.argv[1], sys.argv[2]
times = collections.defaultdict(list)
rss = collections.defaultdict(list)
findings = collections.defaultdict(int)
order = []
with open(raw_path) as f:
    next(f)
    for line in f:
        workload, threads, variant, rep, t, kb, fnd = line.split()
        key = (workload, int(threads))
        if key not in order:
            order.append(key)
        times[key, variant].append(float(t))
        rss[key, variant].append(int(kb))
        if fnd != "-":
            findings[key] += int(fnd)

header = ["workload", "threads", "native time (s)", "native RSS (MiB)", "TSan slowdown",
          "ftsan slowdown", "ftsan contention-mode slowdown", "TSan memory", "ftsan memory"]
rows = []
logs = collections.defaultdict(list)
for key in order:
    nt, nm = min(times[key, "native"]), max(rss[key, "native"])
    r = {}
    for v in ("tsan", "ftsan", "ftsan-contention"):
        r[v, "t"] = min(times[key, v]) / nt
        r[v, "m"] = max(rss[key, v]) / nm
        logs[v, "t"].append(math.log(r[v, "t"]))
        logs[v, "m"].append(math.log(r[v, "m"]))
    rows.append([key[0], str(key[1]), f"{nt:.3f}", f"{nm / 1024:.1f}",
                 f"{r['tsan', 't']:.1f}x", f"{r['ftsan', 't']:.1f}x",
                 f"{r['ftsan-contention', 't']:.2f}x",
                 f"{r['tsan', 'm']:.2f}x", f"{r['ftsan', 'm']:.2f}x"])
geo = lambda xs: math.exp(sum(xs) / len(xs))
rows.append(["geomean", "", "", "", f"{geo(logs['tsan', 't']):.1f}x",
             f"{geo(logs['ftsan', 't']):.1f}x", f"{geo(logs['ftsan-contention', 't']):.2f}x",
             f"{geo(logs['tsan', 'm']):.2f}x",
             f"{geo(logs['ftsan', 'm']):.2f}x"])

widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
fmt = lambda cells: "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                              for i, (c, w) in enumerate(zip(cells, widths)))
print(fmt(header))
print(fmt(["-" * w for w in widths]))
for r in rows:
    print(fmt(r))

total_findings = sum(findings.values())
bad = [f"{w}/{t} threads: {n}" for (w, t), n in findings.items() if n]
note = (f"ftsan findings on these race-free workloads: {total_findings}"
        + (f" ({', '.join(bad)})" if bad else ""))
print()
print(note)

reps = max(len(v) for v in times.values())
with open(md_path, "w") as f:
    f.write(f"Best of {reps} runs; slowdown = time / native time, memory = peak RSS / native "
            "peak RSS.\n\n")
    f.write("| " + " | ".join(header) + " |\n")
    f.write("|" + "|".join("---" if i < 2 else "--:" for i in range(len(header))) + "|\n")
    for r in rows:
        f.write("| " + " | ".join(r) + " |\n")
    f.write(f"\n{note}\n")
sys.exit(1 if total_findings else 0)
