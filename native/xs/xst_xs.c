/*
 * xstrain: XS glue for the C core (xsmc API, as a Moddable native module).
 *
 * The same file builds under mcconfig (ESP32, nRF52; listed in the app
 * manifest's "modules"/"preload" with the C core) and into the Linux XS host
 * (native/xs/build.sh). TypeScript binds the natives Moddable's way:
 *
 *   const xstCall = native("xs_xst_call") as
 *     (op: number, args: Int32Array, arena: ArrayBuffer, flash?: ArrayBuffer) => void;
 *   const xstCrc32 = native("xs_xst_crc32") as
 *     (arena: ArrayBuffer, offset: number, length: number) => number;
 *
 * Contract
 *  - xs_xst_call(op, args, arena): op is an integer Number; args an
 *    Int32Array (any byteOffset; at most XST_XS_MAX_ARGS elements), copied
 *    before the call, so it may even be a view into the arena; arena an
 *    ArrayBuffer (a Uint8Array or DataView is accepted too: offsets are then
 *    relative to the view) that is not detached and not read-only. Calls
 *    xst_dispatch(), which checks every offset and size against the arena.
 *    An optional fourth argument is the read-only region (frozen weights;
 *    offsets from XST_FLASH_BASE): an ArrayBuffer, a view, or a read-only
 *    host buffer in flash.
 *    Returns undefined. A nonzero status throws "xstrain op <op>: <status>":
 *    RangeError for dims/range/bounds/align/param, Error otherwise.
 *  - xs_xst_crc32(buffer, offset, length): CRC-32 (IEEE) of
 *    buffer[offset, offset + length) as an unsigned Number; RangeError when
 *    the range is not inside the buffer.
 *  - xs_xst_plan_validate(blob, arenaCapacity): xst_plan_validate() on the
 *    bytes of blob (ArrayBuffer, view or read-only host buffer, e.g. a plan
 *    in flash) for an arena of arenaCapacity bytes; returns
 *    [status, section, index] (0, -1, -1 when valid). Nothing is kept: the
 *    plan's views into the blob die with the call.
 *  - Wrong argument types or counts throw TypeError; nothing here reads or
 *    writes outside a buffer, whatever the arguments are.
 *
 * No pointer into the XS heap is held across anything that can run
 * JavaScript or allocate (the chunk heap moves on GC): numbers are checked
 * without coercion, args are copied out first, the arena pointer is taken
 * last, right before xst_dispatch().
 */
#include "xsmc.h"
#include "xst.h"

/* The longest argument list of any op is 15 (FC_BACKWARD_WEIGHT_SGD). */
#define XST_XS_MAX_ARGS 32

/* A Number that is an integer in int32 range, without calling valueOf. */
static int32_t xst_xs_int32_arg(xsMachine *the, xsIntegerValue index,
                                const char *fn, const char *what)
{
	xsType type = xsmcTypeOf(xsArg(index));
	if (type == xsIntegerType)
		return (int32_t)xsmcToInteger(xsArg(index));
	if (type == xsNumberType) {
		double value = xsmcToNumber(xsArg(index));
		/* NaN fails both comparisons. */
		if ((value >= -2147483648.0) && (value <= 2147483647.0)
		    && ((double)(int32_t)value == value))
			return (int32_t)value;
		xsRangeError("%s: %s must be an integer in int32 range", fn, what);
	}
	xsTypeError("%s: %s must be a number", fn, what);
	return 0;
}

/* Copies an Int32Array's elements into args[]; returns how many. */
static int32_t xst_xs_copy_args(xsMachine *the, xsIntegerValue index,
                                int32_t *args)
{
	xsIntegerValue byteOffset, byteLength, bufferLength;
	/* xsVar(0): Int32Array.prototype, then the backing ArrayBuffer.
	 * xsVar(1): byteOffset, then byteLength. */
	xsmcGet(xsVar(0), xsGlobal, xsID("Int32Array"));
	xsmcGet(xsVar(0), xsVar(0), xsID("prototype"));
	if ((xsmcTypeOf(xsArg(index)) != xsReferenceType)
	    || !xsmcIsInstanceOf(xsArg(index), xsVar(0)))
		xsTypeError("xs_xst_call: args must be an Int32Array");
	xsmcGet(xsVar(1), xsArg(index), xsID("byteOffset"));
	if (xsmcTypeOf(xsVar(1)) != xsIntegerType)
		xsTypeError("xs_xst_call: args has no valid byteOffset");
	byteOffset = xsmcToInteger(xsVar(1));
	xsmcGet(xsVar(1), xsArg(index), xsID("byteLength"));
	if (xsmcTypeOf(xsVar(1)) != xsIntegerType)
		xsTypeError("xs_xst_call: args has no valid byteLength");
	byteLength = xsmcToInteger(xsVar(1));
	xsmcGet(xsVar(0), xsArg(index), xsID("buffer"));
	if (xsmcTypeOf(xsVar(0)) != xsReferenceType
	    || !xsmcIsInstanceOf(xsVar(0), xsArrayBufferPrototype))
		xsTypeError("xs_xst_call: args must be backed by an ArrayBuffer");
	bufferLength = xsmcGetArrayBufferLength(xsVar(0));
	if ((byteOffset < 0) || (byteLength < 0) || (byteLength % 4 != 0)
	    || (byteOffset > bufferLength) || (byteLength > bufferLength - byteOffset))
		xsRangeError("xs_xst_call: args lies outside its buffer");
	if (byteLength > XST_XS_MAX_ARGS * 4)
		xsRangeError("xs_xst_call: %d args, at most %d", (int)(byteLength / 4),
		             XST_XS_MAX_ARGS);
	/* Bounds-checked copy (throws on a detached buffer); native byte order,
	 * as the Int32Array itself. */
	if (byteLength > 0)
		xsmcGetArrayBufferData(xsVar(0), byteOffset, args, byteLength);
	return (int32_t)(byteLength / 4);
}

void xs_xst_call(xsMachine *the)
{
	int32_t args[XST_XS_MAX_ARGS];
	int32_t op, nargs;
	void *arena;
	xst_memory mem = {0, 0, 0, 0};
	xsUnsignedValue arenaLength;
	int status;

	if ((xsmcArgc != 3) && (xsmcArgc != 4))
		xsTypeError("xs_xst_call(op, args, arena[, flash]): expected 3 or 4 arguments, got %d",
		            (int)xsmcArgc);
	xsmcVars(2);
	op = xst_xs_int32_arg(the, 0, "xs_xst_call", "op");
	nargs = xst_xs_copy_args(the, 1, args);
	if (xsmcTypeOf(xsArg(2)) != xsReferenceType)
		xsTypeError("xs_xst_call: arena must be an ArrayBuffer");
	/* Throws TypeError unless ArrayBuffer, Uint8Array, DataView or host
	 * buffer; also on detached or read-only (e.g. flash-resident) buffers. */
	if ((xsmcArgc == 4) && (xsmcTypeOf(xsArg(3)) != xsReferenceType))
		xsTypeError("xs_xst_call: flash must be an ArrayBuffer");
	/* Neither call allocates, so both pointers stay valid until the kernel
	 * returns. */
	if (xsmcArgc == 4) {
		void *flash;
		xsUnsignedValue flashLength;
		xsmcGetBufferReadable(xsArg(3), &flash, &flashLength);
		mem.flash = (const uint8_t *)flash;
		mem.flash_len = (uint32_t)flashLength;
	}
	xsmcGetBufferWritable(xsArg(2), &arena, &arenaLength);
	mem.arena = (uint8_t *)arena;
	mem.arena_len = (uint32_t)arenaLength;
	status = xst_dispatch_memory(op, args, nargs, &mem);
	if (status != XST_OK) {
		const char *name = xst_status_name(status);
		if (!name)
			name = "unknown status";
		switch (status) {
		case XST_ERR_DIMS:
		case XST_ERR_RANGE:
		case XST_ERR_BOUNDS:
		case XST_ERR_ALIGN:
		case XST_ERR_PARAM:
			xsRangeError("xstrain op %d: %s", (int)op, name);
			break;
		default:
			xsUnknownError("xstrain op %d: %s", (int)op, name);
			break;
		}
	}
}

void xs_xst_crc32(xsMachine *the)
{
	int32_t offset, length;
	void *data;
	xsUnsignedValue size;

	if (xsmcArgc != 3)
		xsTypeError("xs_xst_crc32(buffer, offset, length): expected 3 arguments, got %d",
		            (int)xsmcArgc);
	offset = xst_xs_int32_arg(the, 1, "xs_xst_crc32", "offset");
	length = xst_xs_int32_arg(the, 2, "xs_xst_crc32", "length");
	if (xsmcTypeOf(xsArg(0)) != xsReferenceType)
		xsTypeError("xs_xst_crc32: buffer must be an ArrayBuffer");
	xsmcGetBufferReadable(xsArg(0), &data, &size);
	if ((offset < 0) || (length < 0) || ((xsUnsignedValue)offset > size)
	    || ((xsUnsignedValue)length > size - (xsUnsignedValue)offset))
		xsRangeError("xs_xst_crc32: [%d, %d + %d) is outside the buffer (%u bytes)",
		             (int)offset, (int)offset, (int)length, (unsigned)size);
	xsmcSetNumber(xsResult, (xsNumberValue)xst_crc32(0, (const uint8_t *)data + offset,
	                                                 (size_t)length));
}


/*
 * Running a plan in C (xst_plan_run) instead of one xs_xst_call per op: the
 * JavaScript side then keeps no decoded op list (about 100 KB of XS heap
 * for person_detect's plan, README "Memory").
 *
 *  - xs_xst_plan_bind(blob, arenaCapacity, desc): xst_plan_validate() as
 *    xs_xst_plan_validate, returning [status, section, index]; when valid it
 *    also fills desc (an Int32Array of XST_XS_PLAN_DESC words) with where
 *    the blob's ops and flash section are, as offsets into the blob (the
 *    blob may move in the XS heap between calls: no pointer is kept).
 *  - xs_xst_plan_run(desc, blob, which, arena): runs the TRAIN (0) or
 *    INFER (1) ops of blob on arena (ArrayBuffer, view or host buffer, at
 *    least the plan's arena bytes). Returns the index of the op that failed
 *    and stores its status in desc[XST_XS_PLAN_STATUS], or returns -1 when
 *    every op ran. desc and blob are JavaScript-writable, so nothing is
 *    trusted: the header words in desc must match the blob's, every range
 *    is checked against the blob, the flash section must stay 4-aligned,
 *    and each op goes through xst_dispatch_memory (its own checks) as it
 *    runs.
 */
enum {
	XST_XS_PLAN_LENGTH, XST_XS_PLAN_CRC, XST_XS_PLAN_ARENA,
	XST_XS_PLAN_FLASH_OFF, XST_XS_PLAN_FLASH_LEN,
	XST_XS_PLAN_TRAIN_OFF, XST_XS_PLAN_TRAIN_BYTES, XST_XS_PLAN_TRAIN_COUNT,
	XST_XS_PLAN_INFER_OFF, XST_XS_PLAN_INFER_BYTES, XST_XS_PLAN_INFER_COUNT,
	XST_XS_PLAN_STATUS,
	XST_XS_PLAN_DESC
};

static uint32_t xst_xs_rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

/* desc as a writable int32 array of XST_XS_PLAN_DESC words (copied in or
 * out with bounds-checked copies). */
static void xst_xs_desc(xsMachine *the, xsIntegerValue index, int32_t *words, int out)
{
	xsIntegerValue byteOffset, byteLength;
	xsmcGet(xsVar(0), xsGlobal, xsID("Int32Array"));
	xsmcGet(xsVar(0), xsVar(0), xsID("prototype"));
	if ((xsmcTypeOf(xsArg(index)) != xsReferenceType) || !xsmcIsInstanceOf(xsArg(index), xsVar(0)))
		xsTypeError("xstrain plan: desc must be an Int32Array");
	xsmcGet(xsVar(1), xsArg(index), xsID("byteOffset"));
	byteOffset = xsmcToInteger(xsVar(1));
	xsmcGet(xsVar(1), xsArg(index), xsID("byteLength"));
	byteLength = xsmcToInteger(xsVar(1));
	if (byteLength != XST_XS_PLAN_DESC * 4)
		xsRangeError("xstrain plan: desc must have %d elements", (int)XST_XS_PLAN_DESC);
	xsmcGet(xsVar(0), xsArg(index), xsID("buffer"));
	/* Both copies check the range against the buffer (and throw on a
	 * detached one). */
	if (out)
		xsmcSetArrayBufferData(xsVar(0), byteOffset, words, byteLength);
	else
		xsmcGetArrayBufferData(xsVar(0), byteOffset, words, byteLength);
}

/* xs_xst_plan_validate and xs_xst_plan_bind: validates xsArg(0) for an
 * arena of xsArg(1) bytes; the result is [status, section, index]. With
 * bind, the Int32Array xsArg(2) receives the bound plan's description when
 * the plan is valid. */
static void xst_xs_plan_check(xsMachine *the, const char *fn, int bind)
{
	void *data;
	xsUnsignedValue size;
	int32_t capacity, out[3], desc[XST_XS_PLAN_DESC];
	xst_plan plan;
	int status, i;

	xsmcVars(2);
	capacity = xst_xs_int32_arg(the, 1, fn, "arenaCapacity");
	if (capacity < 0)
		xsRangeError("%s: arenaCapacity must be >= 0", fn);
	if (xsmcTypeOf(xsArg(0)) != xsReferenceType)
		xsTypeError("%s: blob must be an ArrayBuffer or a view", fn);
	if (bind)
		xst_xs_desc(the, 2, desc, 0); /* checks desc before the blob's pointer is taken */
	xsmcGetBufferReadable(xsArg(0), &data, &size);
	if (size > 0xFFFFFFFFu)
		xsRangeError("%s: blob larger than 4 GB", fn);
	/* No allocation between taking the pointer and the end of validation. */
	status = xst_plan_validate((const uint8_t *)data, (uint32_t)size, (uint32_t)capacity, &plan);
	out[0] = status;
	out[1] = status ? plan.error_section : -1;
	out[2] = status ? plan.error_index : -1;
	if (bind && status == XST_OK) {
		/* Differences of pointers into the same blob. */
		desc[XST_XS_PLAN_LENGTH] = (int32_t)plan.length;
		desc[XST_XS_PLAN_CRC] = (int32_t)xst_xs_rd32(plan.blob + 12);
		desc[XST_XS_PLAN_ARENA] = (int32_t)plan.arena_bytes;
		desc[XST_XS_PLAN_FLASH_OFF] = (int32_t)(plan.flash - plan.blob);
		desc[XST_XS_PLAN_FLASH_LEN] = (int32_t)plan.flash_len;
		desc[XST_XS_PLAN_TRAIN_OFF] = (int32_t)(plan.ops[XST_PLAN_TRAIN] - plan.blob);
		desc[XST_XS_PLAN_TRAIN_BYTES] = (int32_t)plan.op_bytes[XST_PLAN_TRAIN];
		desc[XST_XS_PLAN_TRAIN_COUNT] = (int32_t)plan.op_count[XST_PLAN_TRAIN];
		desc[XST_XS_PLAN_INFER_OFF] = (int32_t)(plan.ops[XST_PLAN_INFER] - plan.blob);
		desc[XST_XS_PLAN_INFER_BYTES] = (int32_t)plan.op_bytes[XST_PLAN_INFER];
		desc[XST_XS_PLAN_INFER_COUNT] = (int32_t)plan.op_count[XST_PLAN_INFER];
		desc[XST_XS_PLAN_STATUS] = 0;
		xst_xs_desc(the, 2, desc, 1);
	}
	xsmcSetNewArray(xsResult, 3);
	for (i = 0; i < 3; i++) {
		xsmcSetInteger(xsVar(0), out[i]);
		xsmcSetIndex(xsResult, i, xsVar(0));
	}
}

void xs_xst_plan_validate(xsMachine *the)
{
	if (xsmcArgc != 2)
		xsTypeError("xs_xst_plan_validate(blob, arenaCapacity): expected 2 arguments, got %d",
		            (int)xsmcArgc);
	xst_xs_plan_check(the, "xs_xst_plan_validate", 0);
}

void xs_xst_plan_bind(xsMachine *the)
{
	if (xsmcArgc != 3)
		xsTypeError("xs_xst_plan_bind(blob, arenaCapacity, desc): expected 3 arguments, got %d",
		            (int)xsmcArgc);
	xst_xs_plan_check(the, "xs_xst_plan_bind", 1);
}

/* [off, off + n) inside [0, limit), without overflow. */
static int xst_xs_inside(int32_t off, int32_t n, uint32_t limit)
{
	return off >= 0 && n >= 0 && (uint32_t)off <= limit && (uint32_t)n <= limit - (uint32_t)off;
}

void xs_xst_plan_run(xsMachine *the)
{
	int32_t desc[XST_XS_PLAN_DESC], which, failed = -1;
	void *data, *arena;
	xsUnsignedValue size, arenaLength;
	xst_plan plan;
	int status;

	if (xsmcArgc != 4)
		xsTypeError("xs_xst_plan_run(desc, blob, which, arena): expected 4 arguments, got %d",
		            (int)xsmcArgc);
	xsmcVars(2);
	xst_xs_desc(the, 0, desc, 0);
	which = xst_xs_int32_arg(the, 2, "xs_xst_plan_run", "which");
	if (which != XST_PLAN_TRAIN && which != XST_PLAN_INFER)
		xsRangeError("xs_xst_plan_run: which must be 0 (TRAIN) or 1 (INFER)");
	if ((xsmcTypeOf(xsArg(1)) != xsReferenceType) || (xsmcTypeOf(xsArg(3)) != xsReferenceType))
		xsTypeError("xs_xst_plan_run: blob and arena must be ArrayBuffers, views or host buffers");
	/* Neither call allocates: both pointers stay valid until the ops end,
	 * and no JavaScript runs in between. */
	xsmcGetBufferReadable(xsArg(1), &data, &size);
	xsmcGetBufferWritable(xsArg(3), &arena, &arenaLength);
	{
		const uint8_t *blob = (const uint8_t *)data;
		const int32_t off = desc[which == XST_PLAN_TRAIN ? XST_XS_PLAN_TRAIN_OFF : XST_XS_PLAN_INFER_OFF];
		const int32_t bytes = desc[which == XST_PLAN_TRAIN ? XST_XS_PLAN_TRAIN_BYTES : XST_XS_PLAN_INFER_BYTES];
		const int32_t count = desc[which == XST_PLAN_TRAIN ? XST_XS_PLAN_TRAIN_COUNT : XST_XS_PLAN_INFER_COUNT];
		const uint32_t length = (uint32_t)desc[XST_XS_PLAN_LENGTH];
		if (size > 0xFFFFFFFFu || desc[XST_XS_PLAN_LENGTH] < (int32_t)XST_PLAN_HEADER_BYTES
		    || length > (uint32_t)size || xst_xs_rd32(blob + 8) != length
		    || xst_xs_rd32(blob + 12) != (uint32_t)desc[XST_XS_PLAN_CRC]
		    || xst_xs_rd32(blob + 16) != (uint32_t)desc[XST_XS_PLAN_ARENA]
		    || !xst_xs_inside(off, bytes, length) || count < 0
		    || !xst_xs_inside(desc[XST_XS_PLAN_FLASH_OFF], desc[XST_XS_PLAN_FLASH_LEN], length))
			xsRangeError("xs_xst_plan_run: desc does not describe this blob (bind the plan again)");
		if (((uintptr_t)(blob + desc[XST_XS_PLAN_FLASH_OFF])) % 4u)
			xsRangeError("xs_xst_plan_run: the blob's flash section is not 4-aligned in memory");
		plan = (xst_plan){0};
		plan.blob = blob;
		plan.length = length;
		plan.arena_bytes = (uint32_t)desc[XST_XS_PLAN_ARENA];
		plan.flash = blob + desc[XST_XS_PLAN_FLASH_OFF];
		plan.flash_len = (uint32_t)desc[XST_XS_PLAN_FLASH_LEN];
		plan.ops[which] = blob + off;
		plan.op_bytes[which] = (uint32_t)bytes;
		plan.op_count[which] = (uint32_t)count;
	}
	if (arenaLength > 0xFFFFFFFFu)
		xsRangeError("xs_xst_plan_run: arena larger than 4 GB");
	status = xst_plan_run(&plan, which, (uint8_t *)arena, (uint32_t)arenaLength, &failed);
	if (status == XST_ERR_PLAN_ARENA)
		xsRangeError("xs_xst_plan_run: the arena is %u bytes, the plan needs %u", (unsigned)arenaLength,
		             (unsigned)plan.arena_bytes);
	if (status != XST_OK) {
		desc[XST_XS_PLAN_STATUS] = status;
		xst_xs_desc(the, 0, desc, 1);
	}
	xsmcSetInteger(xsResult, status == XST_OK ? -1 : failed);
}
