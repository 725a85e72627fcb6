/* SPDX-License-Identifier: MIT */
/* A deliberately defective plugin. Each build picks one defect with a TEST_DEFECT_* macro, so the
 * host's refusal of every kind of broken plugin can be tested: bad answers, and also crashes,
 * hangs, exits and memory floods that the host must survive because it probes in a child
 * process. Written in C99 to prove the header works from plain C.
 * TEST_PARTIAL_1_3 builds a well-formed ABI 1.3 plugin that says, through device_caps, it has
 * every operation of 1.3 but soft-capped attention (and has the unary kernel): the host must
 * refuse exactly the models that need the soft-cap. */
#include <apr/plugin.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Dies the way a buggy plugin does: raise() gives the same signal at every optimisation level,
 * where a NULL store might be compiled into a trap instruction instead. */
#define CRASH() raise(SIGSEGV)

#ifdef TEST_DEFECT_CRASH_CONSTRUCTOR
__attribute__((constructor)) static void crash_on_load(void) {
  CRASH();
}
#endif
#ifdef TEST_DEFECT_ABORT_CONSTRUCTOR
/* Proves a plugin is never loaded into apr unless selected: apr would die with it. */
__attribute__((constructor)) static void abort_on_load(void) {
  abort();
}
#endif

#ifdef TEST_DEFECT_FLOOD_MEMORY
/* Allocates until malloc fails, touching one byte per block (so the machine's memory is not
 * really used), then gives up the way an xmalloc-style handler does. Bounded at 64 GiB in case no
 * limit is in force. */
static void flood(void) {
  for (int i = 0; i < 4096; ++i) {
    char* p = malloc((size_t)16 << 20);
    if (!p) abort();
    p[0] = 1;
  }
}
#endif

static const char* g_error = "";

static apr_status fail(const char* message) {
  g_error = message;
  return APR_ERR_UNSUPPORTED;
}

static apr_status init(const apr_host* host) {
  (void)host;
#ifdef TEST_DEFECT_CRASH_INIT
  CRASH();
#endif
#ifdef TEST_DEFECT_EXIT_INIT
  _exit(3);
#endif
#ifdef TEST_DEFECT_INIT_ERROR
  g_error = "license server unreachable";
  return APR_ERR_UNAVAILABLE;
#else
  return APR_OK;
#endif
}
static void shutdown_plugin(void) {
#ifdef TEST_DEFECT_CRASH_SHUTDOWN
  CRASH();
#endif
}
static apr_status probe(apr_probe_result* r) {
#ifdef TEST_DEFECT_CRASH_PROBE
  CRASH();
#endif
#ifdef TEST_DEFECT_ABORT_PROBE
  abort();
#endif
#ifdef TEST_DEFECT_HANG_PROBE
  for (;;) pause();
#endif
#ifdef TEST_DEFECT_EXIT_PROBE
  exit(0);
#endif
#ifdef TEST_DEFECT_FLOOD_MEMORY
  flood();
#endif
#ifdef TEST_DEFECT_PROBE_OVERRUN
  memset(r, 0, sizeof *r + 16); /* as a plugin built against a header with a bigger struct */
#endif
#if defined(TEST_DEFECT_UNTERMINATED_REASON)
  r->score = 1;
  memset(r->reason, 'x', sizeof r->reason);
#elif defined(TEST_DEFECT_PROBE_UNUSABLE)
  r->score = 0;
  strcpy(r->reason, "needs a flux capacitor");
#else
  r->score = 1;
  strcpy(r->reason, "test plugin");
#endif
  return APR_OK;
}
static const char* error_message(void) {
  return g_error;
}
static uint32_t device_count(void) {
#if defined(TEST_DEFECT_HUGE_DEVICE_COUNT)
  return UINT32_MAX;
#elif defined(TEST_DEFECT_NO_DEVICES)
  return 0;
#else
  return 1;
#endif
}
static apr_status device_info(uint32_t i, apr_device_info* info) {
  (void)i;
  info->kind = APR_DEVICE_KIND_OTHER;
  info->memory_bytes = 0;
  strcpy(info->name, "test device");
  info->description[0] = '\0';
#ifdef TEST_DEFECT_UNTERMINATED_DEVICE_NAME
  memset(info->name, 'd', sizeof info->name);
#endif
  return APR_OK;
}
static apr_status device_open(uint32_t i, const apr_device_options* o, apr_device** d) {
  (void)i, (void)o, (void)d;
  return fail("test plugin opens no device");
}
static void device_close(apr_device* d) {
  (void)d;
}
static apr_status set_trace_sink(apr_device* d, const apr_trace_sink* s) {
  (void)d, (void)s;
  return fail("unsupported");
}
static apr_status buffer_alloc(apr_device* d, uint64_t n, apr_buffer** b) {
  (void)d, (void)n, (void)b;
  return fail("unsupported");
}
static void buffer_free(apr_device* d, apr_buffer* b) {
  (void)d, (void)b;
}
static apr_status buffer_write(apr_device* d, apr_buffer* b, uint64_t o, const void* s,
                               uint64_t n) {
  (void)d, (void)b, (void)o, (void)s, (void)n;
  return fail("unsupported");
}
static apr_status buffer_read(apr_device* d, const apr_buffer* b, uint64_t o, void* s, uint64_t n) {
  (void)d, (void)b, (void)o, (void)s, (void)n;
  return fail("unsupported");
}
static apr_status synchronize(apr_device* d) {
  (void)d;
  return APR_OK;
}
static apr_status weight_create(apr_device* d, const apr_weight_desc* w, apr_weight** o) {
  (void)d, (void)w, (void)o;
  return fail("unsupported");
}
static void weight_free(apr_device* d, apr_weight* w) {
  (void)d, (void)w;
}

#define TEST_KERNEL(name, args_t)                          \
  static apr_status name(apr_device* d, const args_t* a) { \
    (void)d, (void)a;                                      \
    return fail("unsupported");                            \
  }
TEST_KERNEL(embed, apr_embed_args)
TEST_KERNEL(rms_norm, apr_rms_norm_args)
TEST_KERNEL(matmul, apr_matmul_args)
TEST_KERNEL(add, apr_add_args)
TEST_KERNEL(rope, apr_rope_args)
TEST_KERNEL(kv_store, apr_kv_store_args)
TEST_KERNEL(attention, apr_attention_args)
TEST_KERNEL(swiglu, apr_swiglu_args)
TEST_KERNEL(trace_emit, apr_trace_emit_args)

#ifdef TEST_PARTIAL_1_3
TEST_KERNEL(unary, apr_unary_args)
static apr_status device_caps(uint32_t index, apr_device_caps* caps) {
  if (index != 0 || !caps) return fail("device_caps: no such device");
  if (APR_STRUCT_HAS(caps, apr_device_caps, weight_types))
    caps->weight_types = (uint64_t)1 << APR_TYPE_F32;
  if (APR_STRUCT_HAS(caps, apr_device_caps, features))
    caps->features = APR_FEATURE_NORM_GROUPS | APR_FEATURE_ATTN_WINDOW | APR_FEATURE_GELU;
  if (APR_STRUCT_HAS(caps, apr_device_caps, max_buffer_bytes)) caps->max_buffer_bytes = 0;
  return APR_OK;
}
#endif

/* Strings without a terminator, longer than any bound the host reads within (C allows a string
 * literal to fill its array exactly, dropping the NUL). */
#if defined(TEST_DEFECT_UNTERMINATED_NAME) || defined(TEST_DEFECT_UNTERMINATED_DESCRIPTION)
#define X10 "xxxxxxxxxx"
#define X100 X10 X10 X10 X10 X10 X10 X10 X10 X10 X10
static const char g_unterminated[300] = X100 X100 X100;
#endif

#ifdef TEST_DEFECT_ALIASES_WITHOUT_NULL
/* An alias list with no NULL at its end, longer than the host's bound. */
static const char* const g_aliases_without_null[20] = {"a0", "a1", "a2", "a3", "a4", "a5", "a6",
                                                       "a7", "a8", "a9", "b0", "b1", "b2", "b3",
                                                       "b4", "b5", "b6", "b7", "b8", "b9"};
#endif

#if defined(TEST_DEFECT_UNTERMINATED_NAME)
#define TABLE_NAME g_unterminated
#elif defined(TEST_DEFECT_BAD_NAME)
#define TABLE_NAME "Bad Name!"
#else
#define TABLE_NAME TEST_PLUGIN_NAME
#endif
#ifdef TEST_DEFECT_UNTERMINATED_DESCRIPTION
#define TABLE_DESCRIPTION g_unterminated
#else
#define TABLE_DESCRIPTION "defective plugin for host tests"
#endif
#ifdef TEST_DEFECT_ALIASES_WITHOUT_NULL
#define TABLE_ALIASES g_aliases_without_null
#else
#define TABLE_ALIASES NULL
#endif

static const apr_plugin_api g_api = {
#ifdef TEST_DEFECT_STRUCT_TOO_SMALL
    offsetof(apr_plugin_api, device_count),
#else
    sizeof(apr_plugin_api),
#endif
#ifdef TEST_DEFECT_MAJOR_MISMATCH
    APR_ABI_MAJOR + 1,
#else
    APR_ABI_MAJOR,
#endif
#ifdef TEST_ABI_MINOR_0
    0, /* a plugin built against ABI 1.0: usable, but knows nothing of 1.1 members */
#else
    APR_ABI_MINOR,
#endif
    TABLE_NAME,
    "0.0.1",
    TABLE_DESCRIPTION,
    TABLE_ALIASES,
    init,
    shutdown_plugin,
    probe,
    error_message,
    device_count,
    device_info,
    device_open,
    device_close,
    set_trace_sink,
    buffer_alloc,
    buffer_free,
    buffer_write,
    buffer_read,
    synchronize,
    weight_create,
    weight_free,
    embed,
    rms_norm,
#ifdef TEST_DEFECT_NULL_MEMBER
    NULL,
#else
    matmul,
#endif
    add,
    rope,
    kv_store,
    attention,
    swiglu,
    trace_emit,
#ifdef TEST_PARTIAL_1_3
    device_caps,
    NULL,
    NULL,
    unary,
#endif
};

#ifndef TEST_DEFECT_NO_ENTRY
APR_PLUGIN_EXPORT const apr_plugin_api* apr_plugin_entry(uint32_t major, uint32_t minor) {
  (void)major, (void)minor;
#ifdef TEST_DEFECT_CRASH_ENTRY
  CRASH();
#endif
#ifdef TEST_DEFECT_NULL_TABLE
  return NULL;
#endif
  return &g_api;
}
#else
APR_PLUGIN_EXPORT int not_the_entry_point(void) {
  return 0;
}
#endif
