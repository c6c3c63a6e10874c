#!/usr/bin/env bash
# The full benchmark run: every table of docs/benchmarks.md, then the analysis. Run it on a quiet
# machine (nothing else busy: the load average is printed in each section); it takes ~15-25 min
# on 2 cores, most of it fastai's fine_tune(3).
#   bash bench/run_all.sh [DATA]        (DATA defaults to ../shared/datasets/hymenoptera)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python
DATA=${1:-../shared/datasets/hymenoptera}
"$PY" bench/vs_fastai.py "$DATA" --train train --valid val
"$PY" bench/throughput.py "$DATA" --valid val
"$PY" bench/features.py "$DATA" --valid val
"$PY" bench/analysis.py
