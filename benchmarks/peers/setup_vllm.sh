#!/usr/bin/env bash
# Set up vLLM 0.33.0's tool parsers beside toolgram, in a virtual environment OUTSIDE the project.
#
#   bash benchmarks/peers/setup_vllm.sh            # venv at $HOME/.cache/toolgram-peers/vllm-venv
#   VLLM_VENV=/some/dir bash benchmarks/peers/setup_vllm.sh
#
# vLLM's PyPI wheel is CUDA-only and asks for torch==2.14.0 plus several GB of GPU kernels. Its parser
# modules (vllm.tool_parsers, vllm.parser) need none of that: this script installs the wheel with
# --no-deps, a CPU torch (the 2.13.0 wheel that lies on this machine's disk; pip takes it from the local
# find-links), and only the light dependencies that importing the parsers actually touches, pinned as
# vLLM 0.33.0's metadata pins them. Then matplotlib (for the plots) and toolgram itself, editable, from
# this checkout, so that one process imports both.
#
# Idempotent: a second run checks the imports and only installs what is missing.
# Measured on the 2-core dev machine: a fresh venv in 67 s (pip cache warm), 2.3 GB (vllm 877 MB, CPU torch
# 754 MB, transformers 122 MB); a rerun that finds everything importable takes 14 s. See README.md ("Setup").
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
VENV="${VLLM_VENV:-$HOME/.cache/toolgram-peers/vllm-venv}"
PY="${PYTHON:-python3}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"   # CPU build on local disk here; any torch that imports will do

case "$VENV" in
  "$REPO"|"$REPO"/*) echo "refusing: the venv must lie outside the project ($VENV)" >&2; exit 2;;
esac

# The dependencies that importing vllm.tool_parsers.* and vllm.parser.* needs on CPU (found by importing
# every parser module in a --no-deps install and adding what was missing), with vLLM 0.33.0's own pins.
LIGHT_DEPS=(
  "numpy" "regex" "cachetools" "psutil" "tqdm" "pyyaml" "filelock" "packaging"
  "typing_extensions>=4.10" "pydantic>=2.12.0" "msgspec" "cbor2" "pyzmq>=25.0.0" "orjson>=3.11.6"
  "requests>=2.33.0" "aiohttp>=3.14.4" "openai>=2.25.0" "fastapi<0.137.0,>=0.133.0" "starlette>=1.0.1"
  "transformers<5.21.0,>=5.16.1" "huggingface_hub>=1.31.0" "tokenizers>=0.23.2" "safetensors>=0.6.2"
  "partial-json-parser" "jsonschema>=4.23.0" "apache-tvm-ffi==0.1.11" "uvloop"
  "openai-harmony" "mistral_common>=1.11.6" "sentencepiece" "tiktoken>=0.6.0" "pillow"
  "prometheus_client>=0.18.0" "cloudpickle" "pybase64" "ijson" "py-cpuinfo"
)
# xgrammar (imported by vllm.parser) declares triton (1 GB), which nothing here imports: --no-deps.
MODULES=(
  vllm.tool_parsers.hermes_tool_parser vllm.tool_parsers.mistral_tool_parser vllm.tool_parsers.llama_tool_parser
  vllm.tool_parsers.pythonic_tool_parser vllm.tool_parsers.llama4_pythonic_tool_parser
  vllm.tool_parsers.jamba_tool_parser vllm.tool_parsers.kimi_k2_tool_parser vllm.tool_parsers.glm47_moe_tool_parser
  vllm.tool_parsers.deepseekv3_tool_parser vllm.tool_parsers.deepseekv31_tool_parser
  vllm.tool_parsers.phi4mini_tool_parser vllm.tool_parsers.qwen3_engine_tool_parser
  vllm.parser.parser_manager vllm.parser.abstract_parser
)

step() { echo "== $*"; }
t0=$(date +%s)

if [ ! -x "$VENV/bin/python" ]; then
  step "creating venv $VENV"
  mkdir -p "$(dirname "$VENV")"
  "$PY" -m venv "$VENV"
else
  step "venv exists: $VENV"
fi
PIP=("$VENV/bin/python" -m pip -q --disable-pip-version-check)

imports_ok() {
  "$VENV/bin/python" - "${MODULES[@]}" <<'PYEOF' 2>/dev/null
import importlib, sys, warnings
warnings.simplefilter("ignore")
for m in sys.argv[1:]:
    importlib.import_module(m)
import toolgram, matplotlib  # noqa: F401
PYEOF
}

if "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('vllm') != '0.33.0')" 2>/dev/null \
   && imports_ok; then
  step "vllm 0.33.0, its parser modules, toolgram and matplotlib already import: nothing to do"
else
  if ! "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('vllm') != '0.33.0')" 2>/dev/null; then
    step "pip install --no-deps vllm==0.33.0"
    "${PIP[@]}" install --no-deps "vllm==0.33.0"
  fi
  step "pip install --no-deps xgrammar==0.2.8"
  "${PIP[@]}" install --no-deps "xgrammar==0.2.8"
  if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
    step "pip install $TORCH_SPEC (CPU)"
    "${PIP[@]}" install "$TORCH_SPEC"
  fi
  step "pip install the light dependencies (${#LIGHT_DEPS[@]} packages and what they pull)"
  # pip's resolver then lists vLLM's unmet GPU requirements (flashinfer, torch==2.14.0, ...): expected, filtered.
  "${PIP[@]}" install "${LIGHT_DEPS[@]}" matplotlib 2>&1 | grep -v -e "^vllm 0.33.0 requires" -e "is ignored" \
    -e "dependency conflicts" -e "^xgrammar .* requires triton" || true
  step "pip install -e $REPO (toolgram, editable)"
  "${PIP[@]}" install -e "$REPO" 2>&1 | grep -v -e "^vllm 0.33.0 requires" -e "is ignored" \
    -e "dependency conflicts" -e "^xgrammar .* requires triton" || true
fi

step "checking imports"
if imports_ok; then
  echo "ok: every parser module imports"
else
  echo "FAILED: an import still fails; details:" >&2
  "$VENV/bin/python" -c "
import importlib, sys
for m in sys.argv[1:]:
    try: importlib.import_module(m)
    except Exception as e: print(m, '->', type(e).__name__, e)
" "${MODULES[@]}" >&2
  exit 1
fi
"$VENV/bin/python" -c "
import importlib.metadata as m
print('vllm', m.version('vllm'), '| torch', m.version('torch'), '| transformers', m.version('transformers'),
      '| tokenizers', m.version('tokenizers'), '| toolgram', m.version('toolgram'))"
echo "venv size: $(du -sh "$VENV" | cut -f1)   time: $(( $(date +%s) - t0 )) s"
echo "run: $VENV/bin/python $HERE/compare.py --quick"
