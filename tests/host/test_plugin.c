/* A deliberately defective plugin. Each build picks one defect with a TEST_DEFECT_* macro, so the
 * host's refusal of every kind of broken plugin can be tested. Written in C99 to prove the header
 * works from plain C. */
#include <apr/plugin.h>
#include <string.h>

static const char* g_error = "";

static apr_status fail(const char* message) {
  g_error = message;
  return APR_ERR_UNSUPPORTED;
}

static apr_status init(const apr_host* host) {
  (void)host;
#ifdef TEST_DEFECT_INIT_ERROR
  g_error = "license server unreachable";
  return APR_ERR_UNAVAILABLE;
#else
  return APR_OK;
#endif
}
static void shutdown_plugin(void) {}
static apr_status probe(apr_probe_result* r) {
#ifdef TEST_DEFECT_PROBE_UNUSABLE
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
  return 1;
}
static apr_status device_info(uint32_t i, apr_device_info* info) {
  (void)i;
  info->kind = APR_DEVICE_KIND_OTHER;
  info->memory_bytes = 0;
  strcpy(info->name, "test device");
  info->description[0] = '\0';
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
    TEST_PLUGIN_NAME,
    "0.0.1",
    "defective plugin for host tests",
    NULL,
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
    trace_emit};

#ifndef TEST_DEFECT_NO_ENTRY
APR_PLUGIN_EXPORT const apr_plugin_api* apr_plugin_entry(uint32_t major, uint32_t minor) {
  (void)major, (void)minor;
  return &g_api;
}
#else
APR_PLUGIN_EXPORT int not_the_entry_point(void) {
  return 0;
}
#endif
