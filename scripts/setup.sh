#!/usr/bin/env bash
# Installs what xstrain needs on a fresh Debian machine with Node 20 and
# builds everything: npm packages, Debian packages (cross compilers, QEMU),
# the compiled TypeScript, the Node-API addon, the XS host and the bare-metal
# images. Idempotent: a second run only rebuilds what changed.
#   scripts/setup.sh             everything (what `npm test` needs)
#   scripts/setup.sh --no-cross  no cross compilers/QEMU (what `npm start` needs)
set -euo pipefail
cd "$(dirname "$0")/.."

cross=1
[[ "${1:-}" == "--no-cross" ]] && cross=0

log() { printf 'setup: %s\n' "$*" >&2; }

# --- Debian packages ---------------------------------------------------------
# dataset-fashion-mnist: the main job's data (npm start; its tests use MNIST).
# python3-sklearn: only for the file sklearn ships its 8x8 digits in
# (datasets/data/digits.csv.gz), task B of npm run bench:transfer; nothing
# runs Python.
pkgs=(gcc g++ make python3 openssl flatbuffers-compiler dataset-fashion-mnist python3-sklearn)
if ((cross)); then
  pkgs+=(gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm qemu-system-misc
         gcc-riscv64-unknown-elf picolibc-riscv64-unknown-elf)
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=()
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || { log "need root to install: ${missing[*]}"; exit 1; }
    sudo=(sudo)
  fi
  log "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- npm packages ------------------------------------------------------------
if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
  # npm install, not npm ci: npm 11 writes only this platform's optional
  # packages (rollup's native builds) into the lock, then npm ci refuses its
  # own lock. npm install keeps the locked versions.
  log "installing npm packages"
  npm install --no-audit --no-fund --loglevel=error </dev/null
fi

# --- Node headers for the addon: never let node-gyp download them -------------
if [[ -z "${npm_config_nodedir:-}" ]]; then
  prefix=$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")
  for d in "$prefix" /usr /usr/local; do
    if [[ -f "$d/include/node/node_api.h" ]]; then export npm_config_nodedir="$d"; break; fi
  done
fi
[[ -n "${npm_config_nodedir:-}" ]] || { log "Node's headers (include/node/node_api.h) not found next to node"; exit 1; }

# --- builds --------------------------------------------------------------------
log "compiling TypeScript for XS (tsconfig.xs.json)"
npx --no-install tsc -p tsconfig.xs.json
log "building the Node-API addon"
if [[ -f build/Makefile ]]; then npx --no-install node-gyp build --loglevel=error >/dev/null
else npx --no-install node-gyp rebuild --loglevel=error >/dev/null; fi
log "building the XS host"
bash native/xs/build.sh
if ((cross)); then
  log "building the bare-metal images (Cortex-M4F, RV32IMC)"
  make -s -C native/baremetal
fi
log "ready"
