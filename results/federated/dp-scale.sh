#!/usr/bin/env bash
# DP federated learning at scale (issue 27 item 5): SmolLM2-135M on the Ubuntu IRC users (the 4 who wrote most are
# kept out as the simulated wearers of docs/learning.md), z = 1.2 for 3 rounds (ε = 7.25 at δ = 1e-5, every client
# in every round, no amplification by sampling), at 200, 50, 20 and 10 clients per round, and the same run at
# 200 without noise. The same 20 clients' held-out replies evaluate every run.
set -euo pipefail
common=(--real --rounds 3 --local-steps 2 --personal-steps 0 --eval-examples 8 --clip 2.0
        --set min-messages=20 --set first-client=4 --set lora-top-layers=8 --set batch-size=2 --set lr=0.005
        --set eval-clients=20 --set eval-ranking=false)
run() {  # NAME CLIENTS NOISE
  local out=results/federated/$1
  mkdir -p "$out"
  echo "glassmate fl sim --clients $2 --noise $3 ${common[*]} --out $out" > "$out/command.txt"
  glassmate fl sim --clients "$2" --noise "$3" "${common[@]}" --out "$out"
}
run dp-200-z1.2 200 1.2
run dp-20-z1.2 20 1.2
run dp-10-z1.2 10 1.2
run dp-50-z1.2 50 1.2
run dp-200-z0 200 0
glassmate fl noise-budget results/federated/dp-200-z0 --noise 1.2
glassmate fl scale-curve results/federated/dp-* --budget results/federated/dp-200-z0/noise_budget.json --out results/federated/dp-scale.png
