#!/usr/bin/env bash
# Builds the XS engine host for Linux: out/xs/xst-xs (or, with --asan,
# out/xs/xst-xs-asan, built with -fsanitize=address,undefined).
#
#   bash native/xs/build.sh [--asan]        (npm run build:xs)
#
# The XS sources come from the npm package @agoric/xsnap (pinned version and
# integrity below; the npm registry is the only network this uses). The
# binary is the engine (package/moddable/xs/sources, the list of xsnap's
# makefile without xsnap's own files) + this project's host
# (native/xs/host) + the xsmc glue (native/xs/xst_xs.c, and the device
# arena native/xs/xst_arena.c at 256 KB) + the C core
# (native/core/*.c). Writes only under out/xs/. Incremental: objects live in
# out/xs/obj (out/xs/obj-asan) and are rebuilt when a source, a header or
# the flags change. Quiet on success.
set -euo pipefail

XSNAP_VERSION=0.15.0
XSNAP_INTEGRITY='sha512-ZBm4DZxbtfacxMHVVdJjZi0Y8zOxN77vpu1WwI5RWfPkaRh0aHkz/dVdTGKXalDNzWfz183lljKxlxl3/h0n+A=='

# The engine's C files, as listed in
# package/xsnap-native/xsnap/makefiles/lin/xsnap.mk, without xsnap's own
# (xsnap.c, xsnapPlatform.c) and without the Moddable modules it adds
# (TextDecoder, TextEncoder, base64: not part of the engine, not on devices).
ENGINE_SOURCES=(
	xsAll.c xsAPI.c xsArguments.c xsArray.c xsAtomics.c xsBigInt.c
	xsBoolean.c xsCode.c xsCommon.c xsDataView.c xsDate.c xsDebug.c
	xsDefaults.c xsError.c xsFunction.c xsGenerator.c xsGlobal.c xsJSON.c
	xsLexical.c xsLockdown.c xsMapSet.c xsMarshall.c xsMath.c xsMemory.c
	xsModule.c xsNumber.c xsObject.c xsPlatforms.c xsProfile.c xsPromise.c
	xsProperty.c xsProxy.c xsRegExp.c xsRun.c xsScope.c xsScript.c
	xsSnapshot.c xsSourceMap.c xsString.c xsSymbol.c xsSyntaxical.c
	xsTree.c xsType.c xsdtoa.c xsre.c xsmc.c
)

# XS configuration: the parser (modules are compiled from source at load
# time), the interpreter, and bounds checks (JS stack overflow and
# xsArg/xsVar indices fail cleanly instead of corrupting memory). No
# debugger, snapshots, metering, lockdown or profiler.
XS_DEFINES=(
	-DINCLUDE_XSPLATFORM
	'-DXSPLATFORM=\"xs_host_platform.h\"'
	-DmxParse=1
	-DmxRun=1
	-DmxBoundsCheck=1
)

die() { echo "native/xs/build.sh: $*" >&2; exit 1; }

usage() {
	echo "usage: bash native/xs/build.sh [--asan]" >&2
	exit 2
}

variant=release
case "${1:-}" in
	"") ;;
	--asan) variant=asan ;;
	-h|--help) usage ;;
	*) usage ;;
esac
[ $# -le 1 ] || usage

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
OUT=out/xs

for tool in npm tar gcc make; do
	command -v "$tool" >/dev/null 2>&1 || die "$tool is required"
done

integrity_of() {
	if command -v openssl >/dev/null 2>&1; then
		printf 'sha512-%s' "$(openssl dgst -sha512 -binary "$1" | openssl base64 -A)"
	else
		node -e 'const c=require("crypto"),f=require("fs");process.stdout.write("sha512-"+c.createHash("sha512").update(f.readFileSync(process.argv[1])).digest("base64"))' "$1"
	fi
}

# ---- 1. the pinned package -------------------------------------------------
TGZ="$OUT/pkg/agoric-xsnap-$XSNAP_VERSION.tgz"
if [ ! -f "$TGZ" ] || [ "$(integrity_of "$TGZ")" != "$XSNAP_INTEGRITY" ]; then
	rm -f "$TGZ"
	mkdir -p "$OUT/pkg"
	if ! npm pack "@agoric/xsnap@$XSNAP_VERSION" --pack-destination "$OUT/pkg" >"$OUT/pkg/npm-pack.log" 2>&1; then
		cat "$OUT/pkg/npm-pack.log" >&2
		die "npm pack @agoric/xsnap@$XSNAP_VERSION failed (the npm registry must be reachable)"
	fi
	[ -f "$TGZ" ] || die "npm pack did not produce $TGZ"
	got="$(integrity_of "$TGZ")"
	if [ "$got" != "$XSNAP_INTEGRITY" ]; then
		mv -f "$TGZ" "$TGZ.rejected"
		die "integrity mismatch for @agoric/xsnap@$XSNAP_VERSION: expected $XSNAP_INTEGRITY, got $got (kept as $TGZ.rejected; not building)"
	fi
fi

# ---- 2. the XS sources -------------------------------------------------------
SRC="$OUT/xsnap-$XSNAP_VERSION"
XS_DIR="$SRC/package/moddable/xs"
if [ ! -f "$SRC/.extracted" ] || [ "$(cat "$SRC/.extracted")" != "$XSNAP_INTEGRITY" ]; then
	rm -rf "$SRC"
	mkdir -p "$SRC"
	tar -xzf "$TGZ" -C "$SRC" \
		package/moddable/xs/sources package/moddable/xs/includes package/moddable/xs/platforms \
		|| die "cannot extract $TGZ"
	printf '%s' "$XSNAP_INTEGRITY" >"$SRC/.extracted"
fi
for f in "${ENGINE_SOURCES[@]}"; do
	[ -f "$XS_DIR/sources/$f" ] || die "missing engine source $XS_DIR/sources/$f"
done

# ---- 3. compile and link ---------------------------------------------------------
if [ "$variant" = asan ]; then
	OBJ="$OUT/obj-asan"
	BIN="$OUT/xst-xs-asan"
	# The engine's C stack limit leaves 128 KB of the main thread's stack; ASan
	# frames are larger, so keep more in reserve.
	OPT=(-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -DmxASANStackMargin=1048576)
	LDOPT=(-fsanitize=address,undefined)
	# The engine reads its bytecode and dtoa's Bigints at misaligned
	# addresses (harmless on x86, reported by UBSan in xsRun.c and xsdtoa.c):
	# that check is off for the engine only. Any other report continues.
	ENGINE_OPT=(-fno-sanitize=alignment)
	# In the host, the glue and the core, undefined behaviour aborts.
	OWN_OPT=(-fno-sanitize-recover=all)
else
	OBJ="$OUT/obj"
	BIN="$OUT/xst-xs"
	OPT=(-O2)
	LDOPT=()
	ENGINE_OPT=()
	OWN_OPT=()
fi
mkdir -p "$OBJ"

shopt -s nullglob
CORE_SOURCES=(native/core/*.c)
shopt -u nullglob
HOST_SOURCES=(native/xs/xst_xs.c native/xs/xst_arena.c native/xs/host/xs_host_platform.c native/xs/host/xs_host_main.c native/xs/host/xs_host_io.c)
for f in "${HOST_SOURCES[@]}"; do
	[ -f "$f" ] || die "missing $f"
done

XS_INCLUDES=(-Inative/xs/host "-I$XS_DIR/includes" "-I$XS_DIR/platforms" "-I$XS_DIR/sources")
ENGINE_CFLAGS="${OPT[*]} ${ENGINE_OPT[*]:-} ${XS_DEFINES[*]} ${XS_INCLUDES[*]} -w"
# The device arena (native/xs/xst_arena.c) at the largest size a board may have.
HOST_CFLAGS="${OPT[*]} ${OWN_OPT[*]:-} ${XS_DEFINES[*]} ${XS_INCLUDES[*]} -DXST_ARENA_BYTES=262144 -Inative/core -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers -Werror"
CORE_CFLAGS="${OPT[*]} ${OWN_OPT[*]:-} -std=c99 -Inative/core -Wall -Wextra"
LDFLAGS="${LDOPT[*]}"

# Rewritten only when they change, so make sees a change as a newer file.
update() { # file content
	printf '%s\n' "$2" >"$1.new"
	if cmp -s "$1.new" "$1"; then rm -f "$1.new"; else mv -f "$1.new" "$1"; fi
}
update "$OBJ/flags" "$ENGINE_CFLAGS
$HOST_CFLAGS
$CORE_CFLAGS
$LDFLAGS"
update "$OBJ/sources" "${ENGINE_SOURCES[*]}
${HOST_SOURCES[*]}
${CORE_SOURCES[*]:-}"

cat >"$OBJ/build.mk" <<'MAKEFILE'
# Generated by native/xs/build.sh; variables come from its command line.
.SUFFIXES:
.DELETE_ON_ERROR:
ENGINE_OBJS := $(patsubst %.c,$(OBJ)/engine/%.o,$(ENGINE_SOURCES))
HOST_OBJS := $(patsubst native/xs/%.c,$(OBJ)/xs/%.o,$(HOST_SOURCES))
CORE_OBJS := $(patsubst native/core/%.c,$(OBJ)/core/%.o,$(CORE_SOURCES))
OBJS := $(ENGINE_OBJS) $(HOST_OBJS) $(CORE_OBJS)

$(BIN): $(OBJS) $(OBJ)/sources $(OBJ)/flags
	$(CC) $(LDFLAGS) -o $@ $(OBJS) -lm -lpthread

$(OBJ)/engine/%.o: $(XS_DIR)/sources/%.c $(OBJ)/flags
	@mkdir -p $(@D)
	$(CC) $(ENGINE_CFLAGS) -MMD -MP -c $< -o $@

$(OBJ)/xs/%.o: native/xs/%.c $(OBJ)/flags
	@mkdir -p $(@D)
	$(CC) $(HOST_CFLAGS) -MMD -MP -c $< -o $@

$(OBJ)/core/%.o: native/core/%.c $(OBJ)/flags
	@mkdir -p $(@D)
	$(CC) $(CORE_CFLAGS) -MMD -MP -c $< -o $@

-include $(OBJS:.o=.d)
MAKEFILE

JOBS="$(nproc 2>/dev/null || echo 2)"
LOG="$OBJ/build.log"
if ! make --no-print-directory -s -j"$JOBS" -f "$OBJ/build.mk" \
	CC=gcc OBJ="$OBJ" BIN="$BIN" XS_DIR="$XS_DIR" \
	ENGINE_SOURCES="${ENGINE_SOURCES[*]}" HOST_SOURCES="${HOST_SOURCES[*]}" CORE_SOURCES="${CORE_SOURCES[*]:-}" \
	ENGINE_CFLAGS="$ENGINE_CFLAGS" HOST_CFLAGS="$HOST_CFLAGS" CORE_CFLAGS="$CORE_CFLAGS" LDFLAGS="$LDFLAGS" \
	>"$LOG" 2>&1; then
	cat "$LOG" >&2
	die "build of $BIN failed"
fi
# Warnings (from the host, glue or core; the engine's are silenced) are shown.
if grep -q 'warning:' "$LOG"; then
	cat "$LOG" >&2
fi
