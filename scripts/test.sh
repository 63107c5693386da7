#!/usr/bin/env bash
# Provision the test host (idempotent) and run the whole test suite. Extra arguments go to pytest.
# With the bundled ComfyUI 0.3.75 the Flux.2 tests run in a second pass, under the transformers
# that ComfyUI builds Flux.2's tokenizer with (README, Architectures); in the first they skip.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/bootstrap.sh" --browser || exit $?
# shellcheck disable=SC1091
. "$ROOT/.host/env"
cd "$ROOT"
export COMFYUI_PATH
"$PYTHON" -m pytest "$@"
status=$?
if [ -n "${FLUX2_OVERLAY:-}" ]; then
  echo "== the Flux.2 tests, with transformers 4.57.3 =="
  LOOKDEV_ONLY_FLUX2=1 PYTHONPATH="$FLUX2_OVERLAY${PYTHONPATH:+:$PYTHONPATH}" "$PYTHON" -m pytest "$@"
  second=$?
  # 5: nothing selected (a -k or -m that names no Flux.2 test)
  if [ "$second" != 0 ] && [ "$second" != 5 ] && [ "$status" = 0 ]; then status=$second; fi
fi
exit "$status"
