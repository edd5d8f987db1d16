/*
 * xstrain XS host for Linux: host-only natives (files, arguments, exit).
 * Bound from TypeScript with native("name"); Linux host only, never in
 * firmware.
 *
 *   xs_host_args(): string[]
 *       the command-line arguments after the entry module.
 *   xs_host_file_size(path: string): number
 *   xs_host_read(path: string, offset: number, length: number): ArrayBuffer
 *       exactly `length` bytes from `offset`; an Error naming the path and
 *       the reason (errno text, or end of file) otherwise.
 *   xs_host_write(path: string, data: ArrayBuffer | Uint8Array | DataView
 *                 | string, append: boolean): undefined
 *       a string is written as UTF-8; the file is created or truncated
 *       unless append is true.
 *   xs_host_rename(from: string, to: string): undefined
 *       rename(2): replaces `to` at once (same file system), so a reader
 *       sees the old file or the new one, never part of either.
 *   xs_host_exit(code: number): never
 *       flushes stdout and exits the process with code (0..255).
 *   xs_host_heap(): [inUse, peak, chunks, slots]
 *       bytes of the XS machine's heap after a garbage collection (chunks +
 *       slots as the machine counts them; the C arena is not in it): in use
 *       (live chunks and slots only: the free space the machine has
 *       allocated is not counted), at the peak, then the live chunk bytes
 *       and the live slot count (sizeof(txSlot) is 32 B here, 16 B on a
 *       32-bit device).
 */
#include "xsmc.h"

/* from xs_host_platform.c: throw an error whose message may exceed the 128
 * bytes of xsUnknownError; which is XS_UNKNOWN_ERROR, XS_TYPE_ERROR, ... */
extern void xs_host_throw(void* machine, int which, const char* format, ...) __attribute__((noreturn, format(printf, 3, 4)));

#define XS_HOST_MAX_SAFE_INTEGER 9007199254740991.0

static void xs_host_path_arg(xsMachine* the, xsIntegerValue index, const char* fn, char* path)
{
	xsType type = xsmcTypeOf(xsArg(index));
	xsStringValue string;
	size_t length;
	if ((type != xsStringType) && (type != xsStringXType))
		xsTypeError("%s: path must be a string", fn);
	string = xsmcToString(xsArg(index));
	length = strlen(string);
	if (length == 0)
		xsTypeError("%s: path is empty", fn);
	if (length >= C_PATH_MAX)
		xsRangeError("%s: path too long", fn);
	memcpy(path, string, length + 1);
}

/* A non-negative integer Number (up to 2^53 - 1), without coercion. */
static double xs_host_count_arg(xsMachine* the, xsIntegerValue index, const char* fn, const char* what)
{
	xsType type = xsmcTypeOf(xsArg(index));
	double value;
	if (type == xsIntegerType)
		value = xsmcToInteger(xsArg(index));
	else if (type == xsNumberType)
		value = xsmcToNumber(xsArg(index));
	else
		xsTypeError("%s: %s must be a number", fn, what);
	if (!((value >= 0) && (value <= XS_HOST_MAX_SAFE_INTEGER) && ((double)(int64_t)value == value)))
		xsRangeError("%s: %s must be a non-negative integer", fn, what);
	return value;
}

static void xs_host_check_argc(xsMachine* the, xsIntegerValue count, const char* usage)
{
	if (xsmcArgc != count)
		xsTypeError("%s: expected %d argument(s), got %d", usage, (int)count, (int)xsmcArgc);
}

void xs_host_args(xsMachine* the)
{
	int i;
	xsmcVars(1);
	xsmcSetNewArray(xsResult, xs_host_argc);
	for (i = 0; i < xs_host_argc; i++) {
		xsmcSetString(xsVar(0), xs_host_argv[i]);
		xsmcSetIndex(xsResult, i, xsVar(0));
	}
}

void xs_host_file_size(xsMachine* the)
{
	char path[C_PATH_MAX];
	struct stat status;
	xs_host_check_argc(the, 1, "xs_host_file_size(path)");
	xs_host_path_arg(the, 0, "xs_host_file_size", path);
	if (stat(path, &status) != 0)
		xs_host_throw(the, XS_UNKNOWN_ERROR, "xs_host_file_size: %s: %s", path, strerror(errno));
	if (!S_ISREG(status.st_mode))
		xs_host_throw(the, XS_UNKNOWN_ERROR, "xs_host_file_size: %s: not a regular file", path);
	xsmcSetNumber(xsResult, (xsNumberValue)status.st_size);
}

void xs_host_read(xsMachine* the)
{
	char path[C_PATH_MAX];
	double offset, length;
	FILE* file;
	size_t count;
	int error = 0;
	xs_host_check_argc(the, 3, "xs_host_read(path, offset, length)");
	xs_host_path_arg(the, 0, "xs_host_read", path);
	offset = xs_host_count_arg(the, 1, "xs_host_read", "offset");
	length = xs_host_count_arg(the, 2, "xs_host_read", "length");
	if (length > 2147483647.0)
		xsRangeError("xs_host_read: length must be below 2 GiB");
	/* Allocate first: if it throws, no file is open. */
	xsmcSetArrayBuffer(xsResult, NULL, (xsIntegerValue)length);
	file = fopen(path, "rb");
	if (!file)
		xs_host_throw(the, XS_UNKNOWN_ERROR, "xs_host_read: cannot open %s: %s", path, strerror(errno));
	if (fseeko(file, (off_t)offset, SEEK_SET) != 0) {
		error = errno;
		fclose(file);
		xs_host_throw(the, XS_UNKNOWN_ERROR, "xs_host_read: cannot seek to %.0f in %s: %s", offset, path, strerror(error));
	}
	/* Nothing runs JavaScript or allocates between here and fread. */
	count = fread(xsmcToArrayBuffer(xsResult), 1, (size_t)length, file);
	if (count != (size_t)length)
		error = ferror(file) ? errno : 0;
	fclose(file);
	if (count != (size_t)length) {
		if (error)
			xs_host_throw(the, XS_UNKNOWN_ERROR, "xs_host_read: %s: %s", path, strerror(error));
		xs_host_throw(the, XS_UNKNOWN_ERROR, "xs_host_read: %s: end of file after %zu of %.0f bytes at offset %.0f",
			path, count, length, offset);
	}
}

void xs_host_write(xsMachine* the)
{
	char path[C_PATH_MAX];
	xsBooleanValue append;
	xsType type;
	void* data;
	xsUnsignedValue size;
	FILE* file;
	size_t count;
	int error = 0;
	xs_host_check_argc(the, 3, "xs_host_write(path, data, append)");
	xs_host_path_arg(the, 0, "xs_host_write", path);
	if (xsmcTypeOf(xsArg(2)) != xsBooleanType)
		xsTypeError("xs_host_write: append must be a boolean");
	append = xsmcToBoolean(xsArg(2));
	type = xsmcTypeOf(xsArg(1));
	if ((type != xsStringType) && (type != xsStringXType) && (type != xsReferenceType))
		xsTypeError("xs_host_write: data must be an ArrayBuffer or a string");
	/* The data pointer is taken last (a non-buffer object throws TypeError
	 * here): nothing between here and fwrite runs JavaScript or allocates. */
	if (type == xsReferenceType)
		xsmcGetBufferReadable(xsArg(1), &data, &size);
	else {
		data = xsmcToString(xsArg(1));
		size = (xsUnsignedValue)strlen((const char*)data);
	}
	file = fopen(path, append ? "ab" : "wb");
	if (!file)
		xs_host_throw(the, XS_UNKNOWN_ERROR, "xs_host_write: cannot open %s: %s", path, strerror(errno));
	count = fwrite(data, 1, size, file);
	if (count != size)
		error = errno;
	if ((fclose(file) != 0) && !error)
		error = errno;
	if (error)
		xs_host_throw(the, XS_UNKNOWN_ERROR, "xs_host_write: %s: %s", path, strerror(error));
}

void xs_host_rename(xsMachine* the)
{
	char from[C_PATH_MAX], to[C_PATH_MAX];
	xs_host_check_argc(the, 2, "xs_host_rename(from, to)");
	xs_host_path_arg(the, 0, "xs_host_rename", from);
	xs_host_path_arg(the, 1, "xs_host_rename", to);
	if (rename(from, to) != 0)
		xs_host_throw(the, XS_UNKNOWN_ERROR, "xs_host_rename: %s -> %s: %s", from, to, strerror(errno));
}

void xs_host_exit(xsMachine* the)
{
	double code;
	xs_host_check_argc(the, 1, "xs_host_exit(code)");
	code = xs_host_count_arg(the, 0, "xs_host_exit", "code");
	if (code > 255)
		xsRangeError("xs_host_exit: code must be in 0..255");
	xs_host_exit_now((int)code);
}

extern void xs_host_heap_bytes(void* machine, double* inUse, double* peak, double* chunks, double* slots);

void xs_host_heap(xsMachine* the)
{
	double inUse, peak, chunks, slots;
	xsmcVars(1);
	xs_host_check_argc(the, 0, "xs_host_heap()");
	xsCollectGarbage();
	xs_host_heap_bytes(the, &inUse, &peak, &chunks, &slots);
	xsmcSetNewArray(xsResult, 4);
	xsmcSetNumber(xsVar(0), inUse);
	xsmcSetIndex(xsResult, 0, xsVar(0));
	xsmcSetNumber(xsVar(0), peak);
	xsmcSetIndex(xsResult, 1, xsVar(0));
	xsmcSetNumber(xsVar(0), chunks);
	xsmcSetIndex(xsResult, 2, xsVar(0));
	xsmcSetNumber(xsVar(0), slots);
	xsmcSetIndex(xsResult, 3, xsVar(0));
}

/* C stack high-water mark (xs_host_stack_paint / xs_host_stack_used):
 * paint fills XS_HOST_STACK_REGION bytes below its own frame with a pattern
 * and keeps that frame's address as the top; used returns how many bytes
 * below the top were written since (the deepest byte that lost the
 * pattern). Natives called from JavaScript at the same depth as paint (the
 * kernel calls of a step) then show what they and the engine's native-call
 * frames take below the JavaScript frame: the C stack of a step on this
 * host (x86-64 build), not a device's. */
#define XS_HOST_STACK_REGION (256 * 1024)
#define XS_HOST_STACK_GAP 512
static unsigned char* gxStackTop = NULL;

static unsigned char* xs_host_stack_here(void) __attribute__((noinline));
static unsigned char* xs_host_stack_here(void)
{
	return (unsigned char*)__builtin_frame_address(0);
}

void xs_host_stack_paint(xsMachine* the)
{
	unsigned char* p;
	size_t i;
	xs_host_check_argc(the, 0, "xs_host_stack_paint()");
	gxStackTop = xs_host_stack_here();
	p = gxStackTop - XS_HOST_STACK_GAP;
	for (i = 0; i < XS_HOST_STACK_REGION; i++)
		((volatile unsigned char*)p)[-(long)i - 1] = (unsigned char)(0xA5 ^ (i & 0xFF));
}

void xs_host_stack_used(xsMachine* the)
{
	unsigned char* p;
	size_t i, deepest = 0;
	xs_host_check_argc(the, 0, "xs_host_stack_used()");
	if (!gxStackTop)
		xsUnknownError("xs_host_stack_used: xs_host_stack_paint was not called");
	p = gxStackTop - XS_HOST_STACK_GAP;
	for (i = XS_HOST_STACK_REGION; i > 0; i--) {
		if (((volatile unsigned char*)p)[-(long)i] != (unsigned char)(0xA5 ^ ((i - 1) & 0xFF))) {
			deepest = i;
			break;
		}
	}
	xsmcSetInteger(xsResult, (xsIntegerValue)(deepest ? deepest + XS_HOST_STACK_GAP : 0));
}
