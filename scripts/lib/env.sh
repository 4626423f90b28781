# The environment the limb and its tests read to find their parts
# (crates/heiwa-config). Source it to run `heiwa` or `cargo test` by hand.
# shellcheck disable=SC2153 # SPACETIMEDB_BIN and the others come from the files sourced below
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
source "$(dirname "${BASH_SOURCE[0]}")/clients.sh"
source "$(dirname "${BASH_SOURCE[0]}")/hub.sh"
source "$(dirname "${BASH_SOURCE[0]}")/models.sh"
source "$(dirname "${BASH_SOURCE[0]}")/nginx.sh"
source "$(dirname "${BASH_SOURCE[0]}")/postgres.sh"
source "$(dirname "${BASH_SOURCE[0]}")/sandbox.sh"
source "$(dirname "${BASH_SOURCE[0]}")/vulkan.sh"

export HEIWA_SPACETIMEDB_BIN=$SPACETIMEDB_BIN
export HEIWA_HUB_WASM=$HUB_WASM
export HEIWA_PG_DIR=$PG_DIR
export HEIWA_CHAT_MODEL=$CHAT_MODEL
export HEIWA_BASE_MODEL=$BASE_MODEL
export HEIWA_EMBED_MODEL=$EMBED_MODEL
export HEIWA_SANDBOX_IMAGE=$SANDBOX_IMAGE
export HEIWA_FACE_DIR=$HEIWA_ROOT/ui/build-face   # the web dashboard (`npm run build:face`), served by `heiwa dashboard`
export HEIWA_TEST_PYTHON=$TEST_CLIENTS_VENV/bin/python
export HEIWA_MIGRATE_PYTHON=$TEST_CLIENTS_VENV/bin/python
export DOCKER_HOST=${DOCKER_HOST:-unix://$DOCKER_SOCK}
