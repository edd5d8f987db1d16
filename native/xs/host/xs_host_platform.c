/*
 * xstrain XS host for Linux: the platform functions the XS engine calls.
 *
 *  - machine platform, chunk and slot allocation (malloc, with a cap on the
 *    total so a runaway program fails cleanly instead of swapping);
 *  - ES module resolution and loading from disk: "./x.js" and "../y.js"
 *    resolve against the importing module's file, absolute paths are taken
 *    as they are, bare specifiers are an error; a missing ".js" is added;
 *  - the promise job queue (a flag; xs_host_main.c runs the jobs);
 *  - abort: print what happened to stderr and exit with status 1.
 *
 * Written for this project against the engine's internal API (xsAll.h),
 * as every XS platform layer is.
 */
#include "xsAll.h"
#include "xsScript.h"

/* Chunks + slots one machine may allocate in total. */
#define XS_HOST_ALLOCATION_LIMIT ((size_t)4 << 30)

/* Longest message of an error thrown by the host (paths included). */
#define XS_HOST_MESSAGE_SIZE (2 * C_PATH_MAX + 256)

void xs_host_print_exception(txMachine* the, txSlot* exception, txString prefix);
void xs_host_throw(void* machine, int which, const char* format, ...) __attribute__((noreturn, format(printf, 3, 4)));

/* The last module that failed to resolve, read or parse. XS 13 may reject
 * an import of a module whose dependency failed with "import x not found"
 * instead of the dependency's error, so the cause is printed too. */
static char gxLoadError[XS_HOST_MESSAGE_SIZE];

/* ---- machine, memory ---------------------------------------------------- */

void fxCreateMachinePlatform(txMachine* the)
{
	the->waiterCondition = C_NULL;
	the->waiterData = C_NULL;
	the->waiterLink = C_NULL;
	the->promiseJobs = 0;
	the->allocationLimit = XS_HOST_ALLOCATION_LIMIT;
	the->allocatedSpace = 0;
}

void fxDeleteMachinePlatform(txMachine* the)
{
	(void)the;
}

/* The engine frees chunks and slots only when the machine is deleted, so
 * counting up is enough. */
static void xs_host_count_allocation(txMachine* the, size_t size)
{
	if (size > the->allocationLimit - the->allocatedSpace)
		fxAbort(the, XS_NOT_ENOUGH_MEMORY_EXIT);
	the->allocatedSpace += size;
}

void* fxAllocateChunks(txMachine* the, txSize size)
{
	if (size <= 0)
		return C_NULL;
	xs_host_count_allocation(the, (size_t)size);
	return c_malloc((size_t)size);
}

void fxFreeChunks(txMachine* the, void* chunks)
{
	(void)the;
	c_free(chunks);
}

txSlot* fxAllocateSlots(txMachine* the, txSize count)
{
	size_t size;
	if (count <= 0)
		return C_NULL;
	size = (size_t)count * sizeof(txSlot);
	xs_host_count_allocation(the, size);
	return (txSlot*)c_malloc(size);
}

void fxFreeSlots(txMachine* the, void* slots)
{
	(void)the;
	c_free(slots);
}

/* ---- promise jobs -------------------------------------------------------- */

void fxQueuePromiseJobs(txMachine* the)
{
	the->promiseJobs = 1;
}

/* ---- abort ---------------------------------------------------------------- */

void fxAbort(txMachine* the, int status)
{
	switch (status) {
	case XS_UNHANDLED_EXCEPTION_EXIT:
		xs_host_print_exception(the, &mxException, C_NULL);
		break;
	case XS_UNHANDLED_REJECTION_EXIT:
		xs_host_print_exception(the, &mxException, "Unhandled promise rejection: ");
		break;
	case XS_STACK_OVERFLOW_EXIT:
		fflush(stdout);
		fprintf(stderr, "xst-xs: fatal: stack overflow (JavaScript or C stack)\n");
		break;
	case XS_NOT_ENOUGH_MEMORY_EXIT:
		fflush(stdout);
		fprintf(stderr, "xst-xs: fatal: out of memory (%zu bytes allocated by the XS heap, limit %zu)\n",
			the->allocatedSpace, the->allocationLimit);
		break;
	case XS_NO_MORE_KEYS_EXIT:
		fflush(stdout);
		fprintf(stderr, "xst-xs: fatal: too many property names (XS key table full)\n");
		break;
	case XS_FATAL_CHECK_EXIT:
		fflush(stdout);
		fprintf(stderr, "xst-xs: fatal: XS internal check failed\n");
		break;
	default:
		fflush(stdout);
		fprintf(stderr, "xst-xs: fatal: XS aborted (status %d)\n", status);
		break;
	}
	xs_host_exit_now(1);
}

/* Prints an exception to stderr: the stack of an Error (which starts with
 * "Name: message"), or the value as a string. Never throws. */
void xs_host_print_exception(txMachine* the, txSlot* exception, txString prefix)
{
	const char* volatile label = prefix ? prefix : "";
	txSlot* value;
	fflush(stdout);
	mxPushSlot(exception);
	value = the->stack;
	{
		mxTry(the) {
			txBoolean printed = 0;
			if (mxIsReference(value)) {
				mxPushSlot(value);
				mxGetID(mxID(_stack));
				if (((the->stack->kind == XS_STRING_KIND) || (the->stack->kind == XS_STRING_X_KIND))
						&& the->stack->value.string[0]) {
					fprintf(stderr, "%s%s\n", label, the->stack->value.string);
					printed = 1;
				}
				mxPop();
			}
			if (!printed) {
				mxPushSlot(value);
				fxToString(the, the->stack);
				if (mxIsReference(value))
					fprintf(stderr, "%s%s\n", label, the->stack->value.string);
				else
					fprintf(stderr, "%sUncaught %s\n", label, the->stack->value.string);
				mxPop();
			}
			if (gxLoadError[0]) {
				mxPushSlot(value);
				fxToString(the, the->stack);
				if (!c_strstr(the->stack->value.string, gxLoadError))
					fprintf(stderr, "xst-xs: note: a module failed to load earlier: %s\n", gxLoadError);
				mxPop();
			}
		}
		mxCatch(the) {
			fprintf(stderr, "%sUncaught exception (it cannot be converted to a string)\n", label);
		}
	}
	mxPop();
	fflush(stderr);
}

/* Throws a new error of class `which` (XS_UNKNOWN_ERROR: Error,
 * XS_TYPE_ERROR, XS_RANGE_ERROR, XS_SYNTAX_ERROR, ...) whose message may be
 * longer than the 128 bytes xsUnknownError and friends allow. */
void xs_host_throw(void* machine, int which, const char* format, ...)
{
	txMachine* the = machine;
	char message[XS_HOST_MESSAGE_SIZE];
	va_list arguments;
	txSlot* instance;
	txSlot* slot;
	va_start(arguments, format);
	vsnprintf(message, sizeof(message), format, arguments);
	va_end(arguments);
	if ((which <= XS_NO_ERROR) || (which >= XS_ERROR_COUNT))
		which = XS_UNKNOWN_ERROR;
	/* An error instance the way the engine builds one: prototype, internal
	 * error slot with the captured stack, then the message property. */
	instance = fxNewSlot(the);
	instance->kind = XS_INSTANCE_KIND;
	instance->value.instance.garbage = C_NULL;
	instance->value.instance.prototype = mxErrorPrototypes(which).value.reference;
	mxException.kind = XS_REFERENCE_KIND;
	mxException.value.reference = instance;
	slot = instance->next = fxNewSlot(the);
	slot->flag = XS_INTERNAL_FLAG;
	slot->kind = XS_ERROR_KIND;
	slot->value.error.info = C_NULL;
	slot->value.error.which = (txError)which;
	if (gxDefaults.captureErrorStack)
		gxDefaults.captureErrorStack(the, slot, the->frame);
	fxNextStringProperty(the, slot, message, mxID(_message), XS_DONT_ENUM_FLAG);
	fxJump(the);
}

/* ---- modules --------------------------------------------------------------- */

/* Records the message as gxLoadError, then throws it. */
static void xs_host_load_failed(txMachine* the, int which, const char* format, ...) __attribute__((noreturn, format(printf, 3, 4)));
static void xs_host_load_failed(txMachine* the, int which, const char* format, ...)
{
	va_list arguments;
	va_start(arguments, format);
	vsnprintf(gxLoadError, sizeof(gxLoadError), format, arguments);
	va_end(arguments);
	xs_host_throw(the, which, "%s", gxLoadError);
}

/* Collapses "//", "/./" and "/../" in an absolute path, in place. */
static void xs_host_normalize_path(char* path)
{
	char* out = path;
	const char* in = path;
	while (*in) {
		const char* end;
		size_t length;
		while (*in == '/')
			in++;
		if (!*in)
			break;
		end = in;
		while (*end && (*end != '/'))
			end++;
		length = (size_t)(end - in);
		if ((length == 1) && (in[0] == '.')) {
			/* skip */
		}
		else if ((length == 2) && (in[0] == '.') && (in[1] == '.')) {
			while ((out > path) && (*(out - 1) != '/'))
				out--;
			if (out > path)
				out--;
		}
		else {
			*out++ = '/';
			c_memmove(out, in, length);
			out += length;
		}
		in = end;
	}
	if (out == path)
		*out++ = '/';
	*out = 0;
}

static txBoolean xs_host_is_file(const char* path, char* real)
{
	struct stat status;
	if (!c_realpath(path, real))
		return 0;
	return (stat(real, &status) == 0) && S_ISREG(status.st_mode);
}

txID fxFindModule(txMachine* the, txSlot* realm, txID moduleID, txSlot* slot)
{
	char name[C_PATH_MAX];
	char path[C_PATH_MAX];
	char real[C_PATH_MAX];
	char referrer[C_PATH_MAX];
	txString string;
	size_t length;
	(void)realm;

	referrer[0] = 0;
	if (moduleID != XS_NO_ID) {
		txString key = fxGetKeyName(the, moduleID);
		if (key && (c_strlen(key) < sizeof(referrer)))
			c_strcpy(referrer, key);
	}
	string = fxToString(the, slot);
	length = c_strlen(string);
	if (length >= sizeof(name))
		xs_host_load_failed(the, XS_RANGE_ERROR, "module specifier too long (%zu bytes)", length);
	c_memcpy(name, string, length + 1);

	if (name[0] == '/') {
		c_strcpy(path, name);
	}
	else if (!c_strncmp(name, "./", 2) || !c_strncmp(name, "../", 3)) {
		char base[C_PATH_MAX];
		char* slash;
		if (referrer[0]) {
			c_strcpy(base, referrer);
			slash = c_strrchr(base, '/');
			if (slash)
				*slash = 0;
		}
		else if (!getcwd(base, sizeof(base)))
			xs_host_load_failed(the, XS_UNKNOWN_ERROR, "cannot resolve \"%s\": no current directory: %s", name, strerror(errno));
		if ((size_t)snprintf(path, sizeof(path), "%s/%s", base, name) >= sizeof(path))
			xs_host_load_failed(the, XS_RANGE_ERROR, "path too long: %s/%s", base, name);
	}
	else {
		xs_host_load_failed(the, XS_TYPE_ERROR,
			"cannot import \"%s\"%s%s: xst-xs loads only relative (\"./\", \"../\") or absolute module paths, not bare specifiers",
			name, referrer[0] ? " from " : "", referrer);
	}
	xs_host_normalize_path(path);
	if (!xs_host_is_file(path, real)) {
		length = c_strlen(path);
		if ((length < 3) || c_strcmp(path + length - 3, ".js")) {
			char withExtension[C_PATH_MAX];
			if ((length + 3 < sizeof(withExtension))) {
				c_memcpy(withExtension, path, length);
				c_memcpy(withExtension + length, ".js", 4);
				if (xs_host_is_file(withExtension, real))
					return fxNewNameC(the, real);
			}
		}
		xs_host_load_failed(the, XS_UNKNOWN_ERROR, "cannot find module \"%s\" (%s)%s%s",
			name, path, referrer[0] ? " imported from " : "", referrer);
	}
	return fxNewNameC(the, real);
}

typedef struct {
	const unsigned char* current;
	const unsigned char* limit;
} xs_host_stream;

static int xs_host_stream_get(void* it)
{
	xs_host_stream* stream = it;
	if (stream->current < stream->limit)
		return *(stream->current++);
	return C_EOF;
}

/* The first error the parser reports, as "path:line: message". */
static char gxParserError[XS_HOST_MESSAGE_SIZE];

static void xs_host_parser_report(void* console, txString path, txInteger line, txString format, c_va_list arguments)
{
	int length = 0;
	(void)console;
	if (gxParserError[0])
		return;
	if (path)
		length = snprintf(gxParserError, sizeof(gxParserError), "%s:%d: ", path, (int)line);
	if ((length >= 0) && ((size_t)length < sizeof(gxParserError)))
		vsnprintf(gxParserError + length, sizeof(gxParserError) - (size_t)length, format, arguments);
}

/* Reads the whole file; returns a malloc'ed buffer or NULL with errno set. */
static unsigned char* xs_host_read_file(const char* path, size_t* size)
{
	FILE* file = fopen(path, "rb");
	unsigned char* buffer = C_NULL;
	long length;
	int error;
	if (!file)
		return C_NULL;
	if ((fseek(file, 0, SEEK_END) != 0) || ((length = ftell(file)) < 0) || (fseek(file, 0, SEEK_SET) != 0))
		goto bail;
	buffer = c_malloc((size_t)length + 1);
	if (!buffer) {
		errno = ENOMEM;
		goto bail;
	}
	if (fread(buffer, 1, (size_t)length, file) != (size_t)length) {
		if (!ferror(file))
			errno = EIO;
		goto bail;
	}
	fclose(file);
	*size = (size_t)length;
	return buffer;
bail:
	error = errno;
	c_free(buffer);
	fclose(file);
	errno = error;
	return C_NULL;
}

/* Parses a module; NULL after a syntax error (see gxParserError). */
static txScript* xs_host_parse_module(txMachine* the, txString path, xs_host_stream* stream)
{
	txParser _parser;
	txParser* parser = &_parser;
	txParserJump jump;
	txScript* volatile script = C_NULL;
	gxParserError[0] = 0;
	fxInitializeParser(parser, the, the->parserBufferSize, the->parserTableModulo);
	parser->firstJump = &jump;
	parser->reportError = xs_host_parser_report;
	if (c_setjmp(jump.jmp_buf) == 0) {
		parser->path = fxNewParserSymbol(parser, path);
		/* A module: no mxProgramFlag. No mxDebugFlag either: without
		 * mxDebug the engine ignores file and line opcodes. */
		fxParserTree(parser, stream, xs_host_stream_get, 0, C_NULL);
		/* On a syntax error the parser would compile a module that throws
		 * the message without its place; report "path:line: message". */
		if (parser->errorCount == 0) {
			fxParserHoist(parser);
			fxParserBind(parser);
		}
		if (parser->errorCount == 0)
			script = fxParserCode(parser);
		if (script && parser->errorCount) {
			fxDeleteScript(script);
			script = C_NULL;
		}
	}
	fxTerminateParser(parser);
	return script;
}

void fxLoadModule(txMachine* the, txSlot* module, txID moduleID)
{
	char path[C_PATH_MAX];
	txString key = fxGetKeyName(the, moduleID);
	unsigned char* source;
	size_t size = 0;
	xs_host_stream stream;
	txScript* script;

	if (!key || (c_strlen(key) >= sizeof(path)))
		xs_host_load_failed(the, XS_RANGE_ERROR, "module path too long");
	c_strcpy(path, key);
	source = xs_host_read_file(path, &size);
	if (!source)
		xs_host_load_failed(the, XS_UNKNOWN_ERROR, "cannot read module %s: %s", path, strerror(errno));
	stream.current = source;
	stream.limit = source + size;
	script = xs_host_parse_module(the, path, &stream);
	c_free(source);
	if (!script) {
		if (gxParserError[0])
			xs_host_load_failed(the, XS_SYNTAX_ERROR, "%s", gxParserError);
		xs_host_load_failed(the, XS_SYNTAX_ERROR, "%s: cannot parse module", path);
	}
	fxResolveModule(the, module, moduleID, script, C_NULL, C_NULL);
}
