/*
 * xstrain: the device arena, one static buffer sized at build time.
 *
 * The arena (DESIGN.md "Memory") is the single fixed block every plan
 * tensor lives in. On a board it is a static array in .bss, not memory in
 * the XS heap and never malloc'd: its size is a build-time constant, so the
 * linker places it beside the XS heap and the SDK, and an arena too large
 * for the board's RAM fails the link instead of the first allocation.
 *
 * Its size comes from the app manifest's per-board "defines"
 *   "defines": { "xstrain": { "arena_bytes": 131072 } }
 * which mcconfig turns into MODDEF_XSTRAIN_ARENA_BYTES in mc.defines.h
 * (boards/<board>.json says how each size was chosen). A build for a
 * platform whose manifest section sets no size stops here with a message.
 * A compiler -DXST_ARENA_BYTES=<n> overrides it (native tests).
 *
 * TypeScript binds it Moddable's way:
 *   const xstArena = native("xs_xst_arena") as () => ArrayBuffer;
 * It returns a host buffer over the array (an ArrayBuffer-like object that
 * Uint8Array and the xsmc buffer calls accept, as the flash module's map()
 * returns); every call returns a view of the same bytes.
 */
#include "xsmc.h"

#ifndef XST_ARENA_BYTES
#include "mc.defines.h"
#ifdef MODDEF_XSTRAIN_ARENA_BYTES
#define XST_ARENA_BYTES (MODDEF_XSTRAIN_ARENA_BYTES)
#else
#error "xstrain: no arena size for this board: set defines.xstrain.arena_bytes in the manifest's platforms section for it (see boards/)"
#endif
#endif

/* At most 256 KB (DESIGN.md) and a whole number of 16-byte units, so every
 * tensor offset the planner aligns stays aligned. C99: a negative array size
 * is the compile-time assertion. */
typedef char xst_arena_size_is_valid[((XST_ARENA_BYTES) > 0 && (XST_ARENA_BYTES) <= 262144
                                      && (XST_ARENA_BYTES) % 16 == 0) ? 1 : -1];

/* uint32_t elements: word-aligned for the int32 tensors. */
static uint32_t xst_arena_words[(XST_ARENA_BYTES) / 4];

void xs_xst_arena(xsMachine *the)
{
	xsResult = xsNewHostObject(NULL);
	xsmcSetHostBuffer(xsResult, xst_arena_words, (xsIntegerValue)(XST_ARENA_BYTES));
}
