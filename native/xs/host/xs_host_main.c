/*
 * xstrain XS host for Linux: main.
 *
 *   xst-xs <entry-module.js> [args...]
 *
 * Creates one XS machine, installs the globals `trace` and `native`, imports
 * the entry as an ES module (compiled TypeScript: tsc output under out/ts),
 * then runs promise jobs until none is left. Exit status: 0 when the entry
 * module (including any top-level await) finished and no promise rejection
 * went unhandled; 1 after an uncaught exception or rejection (printed to
 * stderr as "Name: message" plus the stack), or when the entry never
 * finished; 2 for a usage error; xs_host_exit(code) exits with code.
 *
 * Globals
 *   trace(...values)  writes String(value) of each argument to stdout, no
 *                     separator and no newline added (Moddable's trace).
 *   native(name)      returns a new host function bound to the C callback
 *                     registered under `name` in gxNatives below; throws
 *                     an Error naming it when there is none.
 */
#include "xsAll.h"

/* natives: native/xs/xst_xs.c */
extern void xs_xst_call(txMachine* the);
extern void xs_xst_crc32(txMachine* the);
extern void xs_xst_plan_validate(txMachine* the);
extern void xs_xst_plan_bind(txMachine* the);
extern void xs_xst_plan_run(txMachine* the);
/* natives: native/xs/xst_arena.c (the device arena, as on a board) */
extern void xs_xst_arena(txMachine* the);
/* natives: native/xs/host/xs_host_io.c */
extern void xs_host_args(txMachine* the);
extern void xs_host_file_size(txMachine* the);
extern void xs_host_read(txMachine* the);
extern void xs_host_write(txMachine* the);
extern void xs_host_rename(txMachine* the);
extern void xs_host_exit(txMachine* the);
extern void xs_host_heap(txMachine* the);
extern void xs_host_stack_paint(txMachine* the);
extern void xs_host_stack_used(txMachine* the);

/* xs_host_platform.c */
extern void xs_host_print_exception(txMachine* the, txSlot* exception, txString prefix);
extern void xs_host_throw(void* machine, int which, const char* format, ...) __attribute__((noreturn, format(printf, 3, 4)));

typedef struct {
	const char* name;
	txCallback callback;
	txInteger length;
} xs_host_native_entry;

/* Every native the programs may bind with native("name"). */
static const xs_host_native_entry gxNatives[] = {
	{ "xs_xst_call", xs_xst_call, 3 },
	{ "xs_xst_crc32", xs_xst_crc32, 3 },
	{ "xs_xst_plan_validate", xs_xst_plan_validate, 2 },
	{ "xs_xst_plan_bind", xs_xst_plan_bind, 3 },
	{ "xs_xst_plan_run", xs_xst_plan_run, 4 },
	{ "xs_xst_arena", xs_xst_arena, 0 },
	{ "xs_host_args", xs_host_args, 0 },
	{ "xs_host_file_size", xs_host_file_size, 1 },
	{ "xs_host_read", xs_host_read, 3 },
	{ "xs_host_write", xs_host_write, 3 },
	{ "xs_host_rename", xs_host_rename, 2 },
	{ "xs_host_exit", xs_host_exit, 1 },
	{ "xs_host_heap", xs_host_heap, 0 },
	{ "xs_host_stack_paint", xs_host_stack_paint, 0 },
	{ "xs_host_stack_used", xs_host_stack_used, 0 },
};

int xs_host_argc = 0;
char** xs_host_argv = C_NULL;

/* Reachable from a global so that leak checkers do not count the machine
 * when a program exits from inside it. */
static txMachine* gxMachine = C_NULL;

/* Entry module outcome, set by the handlers of its import promise. */
enum { XS_HOST_ENTRY_PENDING, XS_HOST_ENTRY_FULFILLED };
static int gxEntryState = XS_HOST_ENTRY_PENDING;

void xs_host_exit_now(int status)
{
	fflush(stdout);
	fflush(stderr);
	exit(status);
}

/* The machine's heap as it counts it (for xs_host_heap, xs_host_io.c):
 * chunks (strings, array buffers, ...) plus slots (sizeof(txSlot) each), now
 * and at the peak (the largest chunk total plus the largest slot count),
 * and the live chunk bytes and slot count apart. */
void xs_host_heap_bytes(txMachine* the, double* inUse, double* peak, double* chunks, double* slots)
{
	*chunks = (double)the->currentChunksSize;
	*slots = (double)the->currentHeapCount;
	*inUse = (double)the->currentChunksSize + (double)the->currentHeapCount * sizeof(txSlot);
	*peak = (double)the->peakChunksSize + (double)the->peakHeapCount * sizeof(txSlot);
}

static void xs_host_trace(txMachine* the)
{
	txInteger argc = mxArgc, i;
	for (i = 0; i < argc; i++) {
		txString string = fxToString(the, mxArgv(i));
		fputs(string, stdout);
	}
}

static void xs_host_native(txMachine* the)
{
	txString name;
	size_t i;
	if ((mxArgc < 1) || ((mxArgv(0)->kind != XS_STRING_KIND) && (mxArgv(0)->kind != XS_STRING_X_KIND)))
		mxTypeError("native(name): name must be a string");
	name = mxArgv(0)->value.string;
	for (i = 0; i < sizeof(gxNatives) / sizeof(gxNatives[0]); i++) {
		if (!c_strcmp(name, gxNatives[i].name)) {
			fxNewHostFunction(the, gxNatives[i].callback, gxNatives[i].length, fxID(the, (txString)gxNatives[i].name), XS_NO_ID);
			mxPullSlot(mxResult);
			return;
		}
	}
	xs_host_throw(the, XS_UNKNOWN_ERROR, "native(\"%s\"): no such native function in this host (xst-xs)", name);
}

static void xs_host_entry_fulfilled(txMachine* the)
{
	(void)the;
	gxEntryState = XS_HOST_ENTRY_FULFILLED;
}

static void xs_host_entry_rejected(txMachine* the)
{
	if (mxArgc > 0)
		xs_host_print_exception(the, mxArgv(0), C_NULL);
	else
		fprintf(stderr, "xst-xs: the entry module failed\n");
	xs_host_exit_now(1);
}

/* globalThis[name] = host function; writable, configurable, not enumerable. */
static void xs_host_define_function(txMachine* the, txString name, txCallback callback, txInteger length)
{
	txID id = fxID(the, name);
	fxNewHostFunction(the, callback, length, id, XS_NO_ID);
	mxPush(mxGlobal);
	mxDefineID(id, XS_DONT_ENUM_FLAG, XS_DONT_ENUM_FLAG | XS_DONT_DELETE_FLAG | XS_DONT_SET_FLAG);
	mxPop();
}

/* Imports the entry module, then runs promise jobs until there are none
 * (no timers, no I/O events). */
static void xs_host_run(txMachine* the, txString entry)
{
	mxTry(the) {
		txSlot* realm;
		fxBeginHost(the);
		xs_host_define_function(the, "trace", xs_host_trace, 1);
		xs_host_define_function(the, "native", xs_host_native, 1);

		/* import(entry).then(fulfilled, rejected) */
		realm = mxModuleInstanceInternal(mxProgram.value.reference)->value.module.realm;
		mxPushStringC(entry);
		fxRunImport(the, realm, XS_NO_ID);
		mxDub();
		mxGetID(mxID(_then));
		mxCall();
		fxNewHostFunction(the, xs_host_entry_fulfilled, 1, XS_NO_ID, XS_NO_ID);
		fxNewHostFunction(the, xs_host_entry_rejected, 1, XS_NO_ID, XS_NO_ID);
		mxRunCount(2);
		mxPop();

		for (;;) {
			while (the->promiseJobs) {
				the->promiseJobs = 0;
				fxRunPromiseJobs(the);
			}
			fxEndJob(the);
			if (!the->promiseJobs)
				break;
		}
		/* Exits with status 1 if a rejection is still unhandled. */
		fxCheckUnhandledRejections(the, 1);
		fxEndHost(the);
	}
	mxCatch(the) {
		fxAbort(the, XS_UNHANDLED_EXCEPTION_EXIT);
	}
}

static void xs_host_usage(void)
{
	fprintf(stderr,
		"usage: xst-xs <entry-module.js> [args...]\n"
		"Runs an ES module on the XS engine (XS %d.%d.%d). Relative imports resolve\n"
		"against the importing file; args are available through native(\"xs_host_args\").\n",
		XS_MAJOR_VERSION, XS_MINOR_VERSION, XS_PATCH_VERSION);
}

int main(int argc, char* argv[])
{
	char entry[C_PATH_MAX];
	txCreation creation = {
		8 * 1024 * 1024,   /* initialChunkSize: bytes; grows as needed    */
		8 * 1024 * 1024,   /* incrementalChunkSize (a 47 MB ArrayBuffer
		                      gets a block of its own size)               */
		256 * 1024,        /* initialHeapCount: slots                     */
		64 * 1024,         /* incrementalHeapCount                        */
		16 * 1024,         /* stackCount: slots                           */
		4 * 1024,          /* initialKeyCount                             */
		4 * 1024,          /* incrementalKeyCount                         */
		1993,              /* nameModulo                                  */
		127,               /* symbolModulo                                */
		1024 * 1024,       /* parserBufferSize: longest token             */
		1993,              /* parserTableModulo                           */
		0,                 /* staticSize: 0 = heap grows                  */
	};
	txMachine* the;

	/* Line-buffered even into a pipe: a progress line reaches the reader
	 * when it is printed (the main job is watched, and may be killed). */
	setvbuf(stdout, C_NULL, _IOLBF, 0);

	if ((argc < 2) || !c_strcmp(argv[1], "-h") || !c_strcmp(argv[1], "--help")) {
		xs_host_usage();
		return (argc < 2) ? 2 : 0;
	}
	if (!c_realpath(argv[1], entry)) {
		fprintf(stderr, "xst-xs: cannot open entry module %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	xs_host_argc = argc - 2;
	xs_host_argv = argv + 2;
	/* XST_XS_STACK_SLOTS: the machine's JavaScript stack in slots, as a
	 * board's manifest creation.stack sets it (scripts/memory-report.ts
	 * finds the smallest the main job runs with). */
	{
		const char* slots = getenv("XST_XS_STACK_SLOTS");
		if (slots) {
			char* end;
			long n = strtol(slots, &end, 10);
			if (*slots == 0 || *end != 0 || n < 64 || n > 1024 * 1024) {
				fprintf(stderr, "xst-xs: XST_XS_STACK_SLOTS=%s is not a slot count in [64, 1048576]\n", slots);
				return 2;
			}
			creation.stackCount = (txSize)n;
		}
	}

	the = gxMachine = fxCreateMachine(&creation, "xst-xs", C_NULL, XS_NO_ID);
	if (!the) {
		fprintf(stderr, "xst-xs: cannot create the XS machine\n");
		return 1;
	}
	xs_host_run(the, entry);
	if (gxEntryState != XS_HOST_ENTRY_FULFILLED) {
		fflush(stdout);
		fprintf(stderr, "xst-xs: %s did not finish: its top-level await waits on a promise that nothing settles "
			"(this host has no timers or I/O events)\n", entry);
		xs_host_exit_now(1);
	}
	fflush(stdout);
	gxMachine = C_NULL;
	fxDeleteMachine(the);
	return ferror(stdout) ? 1 : 0;
}
