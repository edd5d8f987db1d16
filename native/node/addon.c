/*
 * Node-API binding of the C core (host adapter). Two functions:
 *   call(op: number, args: Int32Array, arena: ArrayBuffer, flash?: ArrayBuffer): void
 *     -> xst_dispatch_memory (flash: the read-only region, offsets from
 *        XST_FLASH_BASE); a nonzero status throws an Error naming the op and
 *        the status (the TypeScript layer has already named the tensors).
 *   crc32(arena: ArrayBuffer, offset: number, length: number): number
 *   validatePlan(blob: Uint8Array, arenaCapacity: number): [status, section, index]
 *     -> xst_plan_validate (native/core/plan.c): 0 or the status, with where
 *        it failed (section kind, record index; -1 when not applicable).
 */
#include <node_api.h>
#include <stdio.h>

#include "../core/xst.h"

#define CHECK(env, call)                                                  \
  do {                                                                    \
    if ((call) != napi_ok) {                                              \
      napi_throw_error((env), NULL, "xstrain addon: Node-API call failed"); \
      return NULL;                                                        \
    }                                                                     \
  } while (0)

static napi_value throw_type(napi_env env, const char *msg) {
  napi_throw_type_error(env, NULL, msg);
  return NULL;
}

static int get_arena(napi_env env, napi_value v, uint8_t **data, uint32_t *len) {
  bool is_ab = false;
  void *p = NULL;
  size_t n = 0;
  if (napi_is_arraybuffer(env, v, &is_ab) != napi_ok || !is_ab) return 0;
  if (napi_get_arraybuffer_info(env, v, &p, &n) != napi_ok) return 0;
  if (n > 0xFFFFFFFFu) return 0;
  *data = (uint8_t *)p;
  *len = (uint32_t)n;
  return 1;
}

static napi_value Call(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 3 && argc != 4)
    return throw_type(env, "xstrain call(op, args: Int32Array, arena: ArrayBuffer, flash?: ArrayBuffer): 3 or 4 arguments expected");
  int32_t op = 0;
  if (napi_get_value_int32(env, argv[0], &op) != napi_ok) return throw_type(env, "xstrain call: op must be a number");
  bool is_ta = false;
  CHECK(env, napi_is_typedarray(env, argv[1], &is_ta));
  if (!is_ta) return throw_type(env, "xstrain call: args must be an Int32Array");
  napi_typedarray_type type;
  size_t nargs = 0;
  void *args = NULL;
  CHECK(env, napi_get_typedarray_info(env, argv[1], &type, &nargs, &args, NULL, NULL));
  if (type != napi_int32_array) return throw_type(env, "xstrain call: args must be an Int32Array");
  uint8_t *arena = NULL;
  uint32_t len = 0;
  if (!get_arena(env, argv[2], &arena, &len)) return throw_type(env, "xstrain call: arena must be an ArrayBuffer");
  xst_memory mem = {arena, len, NULL, 0};
  if (argc == 4) {
    uint8_t *flash = NULL;
    if (!get_arena(env, argv[3], &flash, &mem.flash_len)) return throw_type(env, "xstrain call: flash must be an ArrayBuffer");
    mem.flash = flash;
  }
  int st = xst_dispatch_memory(op, (const int32_t *)args, (int32_t)nargs, &mem);
  if (st != XST_OK) {
    char msg[160];
    snprintf(msg, sizeof msg, "xstrain op %d: %s (status %d)", (int)op, xst_status_name(st), st);
    napi_throw_error(env, "XST_STATUS", msg);
  }
  return NULL;
}

static napi_value Crc32(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  uint8_t *arena = NULL;
  uint32_t len = 0;
  int64_t off = 0, n = 0;
  if (argc != 3 || !get_arena(env, argv[0], &arena, &len) || napi_get_value_int64(env, argv[1], &off) != napi_ok ||
      napi_get_value_int64(env, argv[2], &n) != napi_ok)
    return throw_type(env, "xstrain crc32(arena: ArrayBuffer, offset: number, length: number)");
  if (off < 0 || n < 0 || off + n > (int64_t)len) {
    napi_throw_range_error(env, NULL, "xstrain crc32: region outside the arena");
    return NULL;
  }
  napi_value out;
  CHECK(env, napi_create_uint32(env, xst_crc32(0, arena + off, (size_t)n), &out));
  return out;
}

static napi_value ValidatePlan(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  const char *usage = "xstrain validatePlan(blob: Uint8Array, arenaCapacity: number)";
  bool is_ta = false;
  if (argc != 2 || napi_is_typedarray(env, argv[0], &is_ta) != napi_ok || !is_ta) return throw_type(env, usage);
  napi_typedarray_type type;
  size_t n = 0;
  void *data = NULL;
  CHECK(env, napi_get_typedarray_info(env, argv[0], &type, &n, &data, NULL, NULL));
  int64_t cap = 0;
  if (type != napi_uint8_array || n > 0xFFFFFFFFu || napi_get_value_int64(env, argv[1], &cap) != napi_ok || cap < 0 ||
      cap > 0xFFFFFFFF)
    return throw_type(env, usage);
  xst_plan plan;
  int st = xst_plan_validate((const uint8_t *)data, (uint32_t)n, (uint32_t)cap, &plan);
  napi_value out, v;
  CHECK(env, napi_create_array_with_length(env, 3, &out));
  const int32_t vals[3] = {st, st ? plan.error_section : -1, st ? plan.error_index : -1};
  for (uint32_t i = 0; i < 3; i++) {
    CHECK(env, napi_create_int32(env, vals[i], &v));
    CHECK(env, napi_set_element(env, out, i, v));
  }
  return out;
}

static napi_value Init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    {"call", NULL, Call, NULL, NULL, NULL, napi_default, NULL},
    {"crc32", NULL, Crc32, NULL, NULL, NULL, napi_default, NULL},
    {"validatePlan", NULL, ValidatePlan, NULL, NULL, NULL, napi_default, NULL},
  };
  if (napi_define_properties(env, exports, 3, props) != napi_ok) return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
