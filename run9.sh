#!/usr/bin/env bash
set -uo pipefail
out=${OUT:-gpu-out}; mkdir -p $out
export SAGEJIT_CACHE_DIR=$(mktemp -d)/c
nvidia-smi --query-gpu=name --format=csv,noheader
./build/sagejit_gpu_tests -tc="attn_wgmma: 64-key*,attn_wgmma: small*,*attention*" > $out/t.log 2>&1; grep -E "D=256" $out/t.log | grep -v "pv=f16" | sed 's/.*MESSAGE: //' | cut -c1-190; grep -E "^\[doctest\] (test cases|assertions)" $out/t.log; grep -E "ERROR" -A4 $out/t.log | head -30
for s in "hq=16 d=256 sq=4096" "hq=16 d=256 sq=4096 mask=causal" "hq=16 d=256 sq=1024"; do
  f=$out/tune_$(echo $s|tr ' =' '__').json
  timeout 120 ./build/sagejit tune --shape "b=4 $s" --json > $f 2>>$out/tune_err.txt
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
m=[r for r in rows if r['family']=='mma']
print(sys.argv[1].split('/')[-1]); [print(' ', r['family'], r['tile'], round(r['median_ms'],4)) for r in rows[:5]]
if m: print('  best mma', m[0]['tile'], round(m[0]['median_ms'],4))
PY
done
OUT=$out bash scripts/sanitize.sh 2>&1 | tail -6
