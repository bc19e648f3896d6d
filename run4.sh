#!/usr/bin/env bash
set -uo pipefail
out=${OUT:-gpu-out}; mkdir -p $out
export SAGEJIT_CACHE_DIR=$(mktemp -d)/c
nvidia-smi --query-gpu=name --format=csv,noheader
./build/sagejit_gpu_tests -tc="hopper*,attn_wgmma: the sm_90a*,attn_wgmma: small*,*attention*" > $out/t.log 2>&1; grep -E "D=96" $out/t.log | sed 's/.*MESSAGE: //' | cut -c1-170; grep -E "^\[doctest\] (test cases|assertions)" $out/t.log; grep -E "ERROR" -A4 $out/t.log | head -30
for s in "d=96 sq=4096" "d=96 sq=4096 mask=causal" "d=96 sq=1024"; do
  f=$out/tune_96_$(echo $s|tr ' =' '__').json
  timeout 150 ./build/sagejit tune --shape "b=4 hq=32 $s" --json > $f 2>>$out/tune_err.txt
  python3 - $f <<'PY'
import json,sys
d=json.load(open(sys.argv[1]))
def walk(x):
    if isinstance(x,dict):
        if 'median_ms' in x and 'tile' in x: yield x
        for v in x.values(): yield from walk(v)
    elif isinstance(x,list):
        for v in x: yield from walk(v)
rows=sorted(walk(d), key=lambda r: r.get('median_ms') or 1e9)
print(sys.argv[1].split('/')[-1]); [print(' ', r['family'], r['tile'], round(r['median_ms'],4)) for r in rows[:8]]
PY
done
