#!/usr/bin/env bash
# A/B of two flashjit builds on the GPU host: bench_attention.py runs with
# library A, then B, ROUNDS times (default 2), each library with its own
# kernel cache, so drift between runs (clocks, another machine) lands on both;
# then per cell the median TFLOP/s of each and B over A, next to cuDNN's in
# the same runs. Usage: ab_libraries.sh LIB_A LIB_B [bench_attention.py args]
# Output: $OUT/ab-runs.json (every run's rows) and $OUT/ab-summary.md; the
# runs' logs stay in /tmp/ab-runs.
set -u
OUT=${OUT:-/tmp/flashjit-out}
a=$1 b=$2
shift 2
runs=/tmp/ab-runs
mkdir -p "$OUT" "$runs"
for round in $(seq 1 "${ROUNDS:-2}"); do
  for side in a b; do
    lib=$a
    [ "$side" = b ] && lib=$b
    FLASHJIT_LIBRARY=$lib FLASHJIT_CACHE_DIR=/tmp/ab-cache-$side \
      python3 bench/bench_attention.py --out "$runs/ab-$side-$round" "$@" > "$runs/ab-$side-$round.log" 2>&1 \
      || { echo "bench with $side ($lib) failed:"; tail -5 "$runs/ab-$side-$round.log"; exit 1; }
  done
done
python3 - "$runs" "$OUT" "$a" "$b" <<'PY' | tee "$OUT/ab-summary.md"
import glob, json, statistics, sys
runs, out, lib_a, lib_b = sys.argv[1:]
cells, everything = {}, {"a": lib_a, "b": lib_b, "runs": {}}
for path in sorted(glob.glob(f"{runs}/ab-[ab]-*.json")):
    name = path.split("/")[-1][:-len(".json")]
    side = name.split("-")[1]
    data = json.load(open(path))
    everything["runs"][name] = data
    for r in data["rows"]:
        for name, x in r.items():
            if isinstance(x, dict) and "tflops" in x:
                key = (r["d"], r["s"], r["causal"], name)
                cells.setdefault(key, {"a": [], "b": []})[side].append(x["tflops"])
print("| d | s | causal | kernel | A TFLOP/s | B TFLOP/s | B / A | runs |")
print("| --- | --- | --- | --- | --- | --- | --- | --- |")
for (d, s, causal, name), v in sorted(cells.items()):
    ma, mb = statistics.median(v["a"]), statistics.median(v["b"])
    print(f"| {d} | {s} | {'yes' if causal else 'no'} | {name} | {ma:.0f} | {mb:.0f} | "
          f"{mb / ma:.3f} | {len(v['a'])}+{len(v['b'])} |")
json.dump(everything, open(f"{out}/ab-runs.json", "w"), indent=1)
PY
