#!/usr/bin/env bash
# The LookDev demo in one command: provision the host (idempotent, see bootstrap.sh), then train a
# style LoRA on a sample noir dataset and render a storyboard with it, headless.
#
#   bash scripts/demo.sh [--checkpoint PATH] [--out DIR] [--steps N] [--quick] [--cpu]
#
# Without --checkpoint it runs tiny on the CPU in a few minutes. With --checkpoint it uses the GPU,
# or, where there is no usable one, the CPU by itself (it says so and estimates the run's time
# after the first training step). Run with --help for the options.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/bootstrap.sh"
# shellcheck disable=SC1091
. "$ROOT/.host/env"
export COMFYUI_PATH
exec "$PYTHON" "$ROOT/scripts/demo.py" "$@"
