/*
 * xstrain XS host for Linux: the platform header the XS engine includes.
 *
 * The engine is compiled with -DINCLUDE_XSPLATFORM
 * -DXSPLATFORM="xs_host_platform.h"; xsPlatform.h includes this file before
 * it fills in its defaults, so everything here overrides the defaults.
 *
 * What this host is: one machine, one thread, ES modules read from disk,
 * promise jobs run to completion, no timers, no debugger, no console (the
 * host provides trace() instead). See native/xs/host/xs_host_platform.c.
 *
 * This header is also seen by code that includes only xs.h / xsmc.h (the
 * natives), so it declares no engine types.
 */
#ifndef XS_HOST_PLATFORM_H
#define XS_HOST_PLATFORM_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1 /* pthread_getattr_np, used by the engine's C stack check */
#endif

#if !defined(__GNUC__) || !defined(__linux__)
#error "xs_host_platform.h: this host is for GCC/Clang on Linux"
#endif
#if defined(__BYTE_ORDER__) && (__BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__)
#error "xs_host_platform.h: XS is configured little-endian here"
#endif

#undef mxLinux
#define mxLinux 1
#undef mxLittleEndian
#define mxLittleEndian 1
#undef mxBigEndian
#define mxBigEndian 0

#define mxExport extern
#define mxImport extern
#define XS_FUNCTION_NORETURN __attribute__((noreturn))

#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

/* Atomics.wait/notify use POSIX threads and GCC builtins. */
#define mxUseGCCAtomics 1
#define mxUsePOSIXThreads 1

/* Taken from the engine's xsPlatforms.c; everything else is in
 * xs_host_platform.c: machine platform, chunk and slot allocation, module
 * resolution and loading, promise job queue, abort. */
#define mxUseDefaultBuildKeys 1
#define mxUseDefaultParseScript 1
#define mxUseDefaultSharedChunks 1

/* Fields this host adds to every txMachine. */
#define mxMachinePlatform \
	void* waiterCondition;   /* Atomics.wait (engine)                     */ \
	void* waiterData;                                                         \
	void* waiterLink;                                                         \
	int promiseJobs;         /* set by fxQueuePromiseJobs                 */ \
	size_t allocationLimit;  /* bytes of chunks + slots the machine may use */ \
	size_t allocatedSpace;   /* bytes of chunks + slots allocated so far    */

/* Engine reports (fxReport, fxReportError, ...) go to stderr: stdout belongs
 * to the program (trace). */
#define c_printf(...) fprintf(stderr, __VA_ARGS__)
#define c_vprintf(format, arguments) vfprintf(stderr, format, arguments)

/* ---- between the host's own files (no engine types here) --------------- */

/* The string arguments after the entry module (argv of xst-xs from 2 on). */
extern int xs_host_argc;
extern char** xs_host_argv;

/* Flush stdout, then exit with status. Natives and the host exit this way. */
extern void xs_host_exit_now(int status) __attribute__((noreturn));

#endif /* XS_HOST_PLATFORM_H */
