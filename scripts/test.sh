#!/usr/bin/env bash
# Provision the test host (idempotent) and run the whole test suite. Extra arguments go to pytest.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/bootstrap.sh" --browser
# shellcheck disable=SC1091
. "$ROOT/.host/env"
cd "$ROOT"
export COMFYUI_PATH
exec "$PYTHON" -m pytest "$@"
