#!/usr/bin/env bash
# The CUDA table of `convnlp bench` in one command, on a machine with an NVIDIA GPU (not run on
# the development machine, which has none): UD English-EWT tagging, every encoder, bf16 autocast,
# inputs of 64 to 4096 symbols. Results in outputs/bench/<run>/ (bench.json, bench.md, PNGs).
#   scripts/bench_cuda.sh                      # then compare the bilstm ratios at T >= 512 (the claim: 10x)
#   scripts/bench_cuda.sh bench.repetitions=10 # any bench override
set -euo pipefail
cd "$(dirname "$0")/.."
python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device: this script is for a GPU machine')"
CONVNLP_DATA_DIR="${CONVNLP_DATA_DIR:-../shared/datasets}" convnlp bench task=tagging data=ud_ewt \
    bench.device=cuda bench.threads=[1] bench.neighbours=[0] bench.lengths=[64,256,512,1024,4096] bench.length_tokens=65536 "$@"
