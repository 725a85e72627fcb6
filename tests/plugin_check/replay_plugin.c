/* SPDX-License-Identifier: MIT */
/*
 * A plugin that really uses step capture (ABI 1.2), to prove the protocol is enough to replay a
 * recorded step without re-instantiating it: the example plugin, plus
 *  - step_begin with a shape_key seen before: the kernel calls of the step are not executed, only
 *    counted; step_end replays the calls recorded the first time, taking pos0 and the token ids
 *    from the step's scalars buffer (APR_STEP_WORD_*) and nothing from the calls just made;
 *  - step_begin with a new key: calls run eagerly and are recorded.
 * If the host broke a promise of plugin.h (other arguments changing under one key), the replayed
 * results would differ from the eager ones, which plugin-check and capabilities_test.py compare.
 */
#define apr_plugin_entry example_plugin_entry
#include "../../plugins/example/example_plugin.c"
#undef apr_plugin_entry

enum call_kind {
  K_EMBED,
  K_RMS_NORM,
  K_MATMUL,
  K_ADD,
  K_ROPE,
  K_KV_STORE,
  K_ATTENTION,
  K_SWIGLU,
  K_EMIT
};

typedef struct {
  enum call_kind kind;
  union {
    apr_embed_args embed;
    apr_rms_norm_args rms_norm;
    apr_matmul_args matmul;
    apr_add_args add;
    apr_rope_args rope;
    apr_kv_store_args kv_store;
    apr_attention_args attention;
    apr_swiglu_args swiglu;
    apr_trace_emit_args emit;
  } a;
} recorded_call;

#define MAX_CALLS 8192
#define MAX_RECORDINGS 16

typedef struct {
  const apr_device* device;
  uint64_t key;
  int n_calls, complete;
  recorded_call* calls;
} recording;

static recording g_recordings[MAX_RECORDINGS];
static int g_n_recordings;
static recording* g_recording; /* the step being recorded, or NULL */
static recording* g_replaying; /* the step being skipped and replayed at step_end, or NULL */
static int g_skipped_calls;
static int g_replayed_steps;

static recording* find_recording(const apr_device* d, uint64_t key) {
  for (int i = 0; i < g_n_recordings; ++i)
    if (g_recordings[i].device == d && g_recordings[i].key == key && g_recordings[i].complete)
      return &g_recordings[i];
  return NULL;
}

/* Copies a host-filled struct into a zeroed full-size one (the caller's may be smaller). */
#define COPY_ARGS(dst, src)                                                                     \
  do {                                                                                          \
    memset(&(dst), 0, sizeof(dst));                                                             \
    memcpy(&(dst), (src), (src)->struct_size < sizeof(dst) ? (src)->struct_size : sizeof(dst)); \
    (dst).struct_size = sizeof(dst);                                                            \
  } while (0)

#define WRAP(name, Args, KIND, field)                                   \
  static apr_status replay_##name(apr_device* d, const Args* a) {       \
    if (g_replaying) {                                                  \
      ++g_skipped_calls;                                                \
      return APR_OK;                                                    \
    }                                                                   \
    const apr_status s = name(d, a);                                    \
    if (s == APR_OK && g_recording && a) {                              \
      if (g_recording->n_calls == MAX_CALLS) {                          \
        g_recording = NULL; /* too long: this key is never replayed */  \
      } else {                                                          \
        recorded_call* c = &g_recording->calls[g_recording->n_calls++]; \
        c->kind = KIND;                                                 \
        COPY_ARGS(c->a.field, a);                                       \
      }                                                                 \
    }                                                                   \
    return s;                                                           \
  }

WRAP(embed, apr_embed_args, K_EMBED, embed)
WRAP(rms_norm, apr_rms_norm_args, K_RMS_NORM, rms_norm)
WRAP(matmul, apr_matmul_args, K_MATMUL, matmul)
WRAP(add, apr_add_args, K_ADD, add)
WRAP(rope, apr_rope_args, K_ROPE, rope)
WRAP(kv_store, apr_kv_store_args, K_KV_STORE, kv_store)
WRAP(attention, apr_attention_args, K_ATTENTION, attention)
WRAP(swiglu, apr_swiglu_args, K_SWIGLU, swiglu)
WRAP(trace_emit, apr_trace_emit_args, K_EMIT, emit)

static apr_status replay_step_begin(apr_device* d, const apr_step_args* a) {
  if (!d || !a || a->struct_size < APR_STEP_ARGS_SIZE_V1_2)
    return fail(APR_ERR_INVALID_ARGUMENT, "step_begin: NULL or too small");
  g_skipped_calls = 0;
  g_replaying = find_recording(d, a->shape_key);
  g_recording = NULL;
  if (!g_replaying && g_n_recordings < MAX_RECORDINGS) {
    recording* r = &g_recordings[g_n_recordings];
    r->calls = r->calls ? r->calls : malloc(MAX_CALLS * sizeof *r->calls);
    if (!r->calls) return APR_OK; /* no recording: run eagerly */
    r->device = d;
    r->key = a->shape_key;
    r->n_calls = 0;
    r->complete = 0;
    g_recording = r;
  }
  return APR_OK;
}

/* The positions of a replayed step come from the scalars buffer. REPLAY_IGNORES_POSITION builds
 * a deliberately wrong twin that keeps the recorded ones, to show plugin-check catches it. */
#ifdef REPLAY_IGNORES_POSITION
#define PATCH_POS(field) (void)pos0
#else
#define PATCH_POS(field) (field) = pos0
#endif

static apr_status replay_step_end(apr_device* d, const apr_step_args* a) {
  if (!d || !a || a->struct_size < APR_STEP_ARGS_SIZE_V1_2)
    return fail(APR_ERR_INVALID_ARGUMENT, "step_end: NULL or too small");
  recording* replay = g_replaying;
  recording* rec = g_recording;
  g_replaying = NULL;
  g_recording = NULL;
  if (a->flags & APR_STEP_DISCARD) return APR_OK; /* a partial recording stays incomplete */
  if (rec) {
    rec->complete = 1;
    ++g_n_recordings;
    return APR_OK;
  }
  if (!replay) return APR_OK;
  if (g_skipped_calls != replay->n_calls)
    return fail(APR_ERR_INVALID_ARGUMENT, "step_end: the step's calls differ from its recording");
  /* Only the scalars buffer says where this step is and what it reads. */
  uint32_t head[APR_STEP_WORD_TOKENS];
  apr_status s = buffer_read(d, a->scalars, a->scalars_offset, head, sizeof head);
  if (s != APR_OK) return s;
  const uint32_t pos0 = head[APR_STEP_WORD_POS0], n_rows = head[APR_STEP_WORD_N_ROWS];
  int32_t* tokens = malloc((n_rows ? n_rows : 1) * sizeof *tokens);
  if (!tokens) return fail(APR_ERR_OUT_OF_MEMORY, "step_end: out of memory");
  s = buffer_read(d, a->scalars, a->scalars_offset + 4u * APR_STEP_WORD_TOKENS, tokens,
                  4u * (uint64_t)n_rows);
  for (int i = 0; s == APR_OK && i < replay->n_calls; ++i) {
    recorded_call c = replay->calls[i];
    switch (c.kind) {
      case K_EMBED:
        c.a.embed.token_ids = tokens;
        s = embed(d, &c.a.embed);
        break;
      case K_RMS_NORM:
        s = rms_norm(d, &c.a.rms_norm);
        break;
      case K_MATMUL:
        s = matmul(d, &c.a.matmul);
        break;
      case K_ADD:
        s = add(d, &c.a.add);
        break;
      case K_ROPE:
        PATCH_POS(c.a.rope.pos0);
        s = rope(d, &c.a.rope);
        break;
      case K_KV_STORE:
        PATCH_POS(c.a.kv_store.pos0);
        s = kv_store(d, &c.a.kv_store);
        break;
      case K_ATTENTION:
        PATCH_POS(c.a.attention.pos0);
        s = attention(d, &c.a.attention);
        break;
      case K_SWIGLU:
        s = swiglu(d, &c.a.swiglu);
        break;
      case K_EMIT:
        s = trace_emit(d, &c.a.emit);
        break;
    }
  }
  free(tokens);
  if (s == APR_OK) ++g_replayed_steps;
  return s;
}

static apr_status replay_device_caps(uint32_t index, apr_device_caps* caps) {
  const apr_status s = device_caps(index, caps);
  if (s == APR_OK && APR_STRUCT_HAS(caps, apr_device_caps, features))
    caps->features |= APR_FEATURE_STEP_CAPTURE;
  return s;
}

static void replay_device_close(apr_device* d) {
  for (int i = 0; i < g_n_recordings; ++i)
    if (g_recordings[i].device == d) g_recordings[i].complete = 0, g_recordings[i].device = NULL;
  device_close(d);
}

/* With APR_REPLAY_REPORT set, says on stderr how many steps were replayed (for the tests). */
static void replay_shutdown(void) {
  if (getenv("APR_REPLAY_REPORT")) fprintf(stderr, "replayed steps: %d\n", g_replayed_steps);
  for (int i = 0; i < MAX_RECORDINGS; ++i) {
    free(g_recordings[i].calls);
    g_recordings[i].calls = NULL;
  }
  g_n_recordings = 0;
  g_recording = g_replaying = NULL;
  shutdown_plugin();
}

static apr_plugin_api g_replay_api;

APR_PLUGIN_EXPORT const apr_plugin_api* apr_plugin_entry(uint32_t host_major, uint32_t host_minor) {
  const apr_plugin_api* base = example_plugin_entry(host_major, host_minor);
  if (!base) return NULL;
  g_replay_api = *base;
#ifdef REPLAY_NAME
  g_replay_api.name = REPLAY_NAME;
#else
  g_replay_api.name = "example-replay";
#endif
  g_replay_api.embed = replay_embed;
  g_replay_api.rms_norm = replay_rms_norm;
  g_replay_api.matmul = replay_matmul;
  g_replay_api.add = replay_add;
  g_replay_api.rope = replay_rope;
  g_replay_api.kv_store = replay_kv_store;
  g_replay_api.attention = replay_attention;
  g_replay_api.swiglu = replay_swiglu;
  g_replay_api.trace_emit = replay_trace_emit;
  g_replay_api.device_caps = replay_device_caps;
  g_replay_api.device_close = replay_device_close;
  g_replay_api.step_begin = replay_step_begin;
  g_replay_api.step_end = replay_step_end;
  g_replay_api.shutdown = replay_shutdown;
  return &g_replay_api;
}
