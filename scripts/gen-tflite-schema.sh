#!/usr/bin/env bash
# Regenerates src/compiler/tflite/generated/ from schema/tflite_subset.fbs with
# Debian's flatc (flatbuffers-compiler 2.0.8; scripts/setup.sh installs it).
# The output is committed; host-tests/tflite-schema.test.ts checks that this
# command reproduces it byte for byte.
#   scripts/gen-tflite-schema.sh [OUTDIR]   (default src/compiler/tflite/generated)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-src/compiler/tflite/generated}"
command -v flatc >/dev/null || { echo "gen-tflite-schema: flatc not found (apt-get install flatbuffers-compiler)" >&2; exit 1; }
mkdir -p "$out"
# One flat file: no relative imports between generated files, only 'flatbuffers'.
flatc --ts --ts-flat-files -o "$out" schema/tflite_subset.fbs
