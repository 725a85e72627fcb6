/* SPDX-License-Identifier: MIT */
/*
 * A complete, minimal apr backend plugin in plain C99: every ABI 1.2 entry point, scalar code,
 * F32 and F16 weights only (said through device_caps). It is the starting point for third-party
 * authors (see docs/PLUGIN-ABI.md), passes `apr plugin-check`, and, because it shares no code
 * with the cpu plugin, is a second opinion on the ABI's semantics in the test suite.
 *
 * The rules it follows everywhere: every pointer argument is checked, every host-filled struct
 * must be at least its ABI 1.0 size (APR_*_SIZE_V1_0, never sizeof), members added later are read
 * only after APR_STRUCT_HAS, and output structs are written only inside the host's struct_size.
 */
#include <apr/plugin.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- errors: one message per thread would be better; this plugin is single-threaded. ---- */
static char g_error[256] = "";

static apr_status fail(apr_status status, const char* message) {
  snprintf(g_error, sizeof g_error, "%s", message);
  return status;
}
static const char* error_message(void) {
  return g_error;
}

/* A host-filled struct is usable when it is not NULL and at least its ABI 1.0 size. */
#define ARGS_OK(ptr, min_size) ((ptr) != NULL && (ptr)->struct_size >= (min_size))
#define CHECK_ARGS(d, ptr, min_size, call)                                           \
  do {                                                                               \
    if (!(d)) return fail(APR_ERR_INVALID_ARGUMENT, call ": device is NULL");        \
    if (!ARGS_OK(ptr, min_size))                                                     \
      return fail(APR_ERR_INVALID_ARGUMENT, call ": args NULL or struct too small"); \
  } while (0)

/* ---- objects ---- */
struct apr_buffer {
  uint64_t size;
  unsigned char* bytes;
};
struct apr_weight {
  apr_type type;
  uint64_t n_cols, n_rows;
  void* data; /* owned copy */
};
struct apr_device {
  apr_trace_sink sink;
  int tracing;
};

/* Returns a pointer to `count` floats at byte `offset` of `b`, or NULL if out of range. */
static float* f32_at(const apr_buffer* b, uint64_t offset, uint64_t count) {
  if (!b || offset % 4 != 0 || offset > b->size || count > (b->size - offset) / 4) return NULL;
  return (float*)(b->bytes + offset);
}

static float half_to_float(uint16_t h) {
  const uint32_t sign = (uint32_t)(h >> 15) << 31;
  const uint32_t exp = (h >> 10) & 0x1F, mant = h & 0x3FF;
  float f;
  if (exp == 0) {
    f = ldexpf((float)mant, -24); /* zero and subnormals */
  } else if (exp == 31) {
    f = mant ? NAN : INFINITY;
  } else {
    f = ldexpf((float)(mant | 0x400), (int)exp - 25);
  }
  return sign ? -f : f;
}

static float weight_at(const apr_weight* w, uint64_t row, uint64_t col) {
  const uint64_t i = row * w->n_cols + col;
  if (w->type == APR_TYPE_F32) return ((const float*)w->data)[i];
  return half_to_float(((const uint16_t*)w->data)[i]);
}

/* ---- lifecycle and devices ---- */
static apr_status init(const apr_host* host) {
  if (!host || host->struct_size < APR_SIZE_THROUGH(apr_host, abi_minor))
    return fail(APR_ERR_INVALID_ARGUMENT, "init: host is NULL or too small");
  return host->abi_major == APR_ABI_MAJOR ? APR_OK
                                          : fail(APR_ERR_UNSUPPORTED, "init: other ABI major");
}
static void shutdown_plugin(void) {}
static apr_status probe(apr_probe_result* r) {
  if (!r) return fail(APR_ERR_INVALID_ARGUMENT, "probe: result is NULL");
#ifndef EXAMPLE_PROBE_SCORE
#define EXAMPLE_PROBE_SCORE 1 /* below the cpu plugin's 10: --backend=auto prefers cpu */
#endif
  if (APR_STRUCT_HAS(r, apr_probe_result, score)) r->score = EXAMPLE_PROBE_SCORE;
  if (APR_STRUCT_HAS(r, apr_probe_result, reason))
    snprintf(r->reason, sizeof r->reason, "portable C99 example backend (F32/F16 weights)");
  return APR_OK;
}
static uint32_t device_count(void) {
  return 1;
}
static apr_status device_info(uint32_t index, apr_device_info* info) {
  if (index != 0 || !info) return fail(APR_ERR_INVALID_ARGUMENT, "device_info: no such device");
  if (APR_STRUCT_HAS(info, apr_device_info, kind)) info->kind = APR_DEVICE_KIND_CPU;
  if (APR_STRUCT_HAS(info, apr_device_info, memory_bytes)) info->memory_bytes = 0;
  if (APR_STRUCT_HAS(info, apr_device_info, name))
    snprintf(info->name, sizeof info->name, "example scalar CPU");
  if (APR_STRUCT_HAS(info, apr_device_info, description))
    snprintf(info->description, sizeof info->description, "single-threaded reference code");
  return APR_OK;
}
#if APR_ABI_MINOR >= 2 /* this file also builds against older headers (tests/abi/frozen) */
/* ABI 1.2: what this device can do. The host refuses a model with other weight types before
 * loading it, and `--backend=auto` passes this plugin over for such a model. */
static apr_status device_caps(uint32_t index, apr_device_caps* caps) {
  if (index != 0 || !caps) return fail(APR_ERR_INVALID_ARGUMENT, "device_caps: no such device");
  if (APR_STRUCT_HAS(caps, apr_device_caps, weight_types))
    caps->weight_types = (1u << APR_TYPE_F32) | (1u << APR_TYPE_F16);
  if (APR_STRUCT_HAS(caps, apr_device_caps, features))
    caps->features = APR_FEATURE_ROPE_FREQ_FACTORS | APR_FEATURE_FUSED_TRACE;
  if (APR_STRUCT_HAS(caps, apr_device_caps, max_buffer_bytes)) caps->max_buffer_bytes = 0;
  return APR_OK;
}
#endif
static apr_status device_open(uint32_t index, const apr_device_options* o, apr_device** out) {
  if (index != 0 || !out) return fail(APR_ERR_INVALID_ARGUMENT, "device_open: no such device");
  if (o && o->struct_size < APR_DEVICE_OPTIONS_SIZE_V1_0)
    return fail(APR_ERR_INVALID_ARGUMENT, "device_open: options struct too small");
  *out = calloc(1, sizeof **out);
  return *out ? APR_OK : fail(APR_ERR_OUT_OF_MEMORY, "out of memory");
}
static void device_close(apr_device* d) { /* NULL is a no-op for free() too */
  free(d);
}
static apr_status set_trace_sink(apr_device* d, const apr_trace_sink* sink) {
  if (!d) return fail(APR_ERR_INVALID_ARGUMENT, "set_trace_sink: device is NULL");
  if (sink && (!ARGS_OK(sink, APR_TRACE_SINK_SIZE_V1_0) || !sink->wants || !sink->emit))
    return fail(APR_ERR_INVALID_ARGUMENT, "set_trace_sink: sink too small or callbacks NULL");
  d->tracing = sink != NULL;
  if (sink) d->sink = *sink;
  return APR_OK;
}

/* ---- memory ---- */
static apr_status buffer_alloc(apr_device* d, uint64_t n, apr_buffer** out) {
  if (!d || !out) return fail(APR_ERR_INVALID_ARGUMENT, "buffer_alloc: NULL argument");
  if (n > ((uint64_t)1 << 40)) return fail(APR_ERR_OUT_OF_MEMORY, "buffer_alloc: too large");
  apr_buffer* b = calloc(1, sizeof *b);
  if (!b || !(b->bytes = calloc(1, n ? n : 1))) {
    free(b);
    return fail(APR_ERR_OUT_OF_MEMORY, "buffer allocation failed");
  }
  b->size = n;
  *out = b;
  return APR_OK;
}
static void buffer_free(apr_device* d, apr_buffer* b) {
  (void)d;
  if (b) free(b->bytes);
  free(b);
}
static apr_status buffer_write(apr_device* d, apr_buffer* b, uint64_t off, const void* src,
                               uint64_t n) {
  if (!d || !b || off > b->size || n > b->size - off || (n && !src))
    return fail(APR_ERR_INVALID_ARGUMENT, "buffer_write: NULL argument or out of range");
  memcpy(b->bytes + off, src, n);
  return APR_OK;
}
static apr_status buffer_read(apr_device* d, const apr_buffer* b, uint64_t off, void* dst,
                              uint64_t n) {
  if (!d || !b || off > b->size || n > b->size - off || (n && !dst))
    return fail(APR_ERR_INVALID_ARGUMENT, "buffer_read: NULL argument or out of range");
  memcpy(dst, b->bytes + off, n);
  return APR_OK;
}
static apr_status synchronize(apr_device* d) {
  return d ? APR_OK : fail(APR_ERR_INVALID_ARGUMENT, "synchronize: device is NULL");
}
static apr_status weight_create(apr_device* d, const apr_weight_desc* desc, apr_weight** out) {
  CHECK_ARGS(d, desc, APR_WEIGHT_DESC_SIZE_V1_0, "weight_create");
  if (!out) return fail(APR_ERR_INVALID_ARGUMENT, "weight_create: out is NULL");
  *out = NULL;
  if (desc->type != APR_TYPE_F32 && desc->type != APR_TYPE_F16) {
    snprintf(g_error, sizeof g_error, "tensor '%s': type %u is not supported (F32, F16 only)",
             desc->name ? desc->name : "?", (unsigned)desc->type);
    return APR_ERR_UNSUPPORTED;
  }
  const uint64_t elem = desc->type == APR_TYPE_F32 ? 4 : 2;
  if (!desc->data || desc->n_rows == 0 || desc->n_cols == 0 || desc->n_cols > 0xFFFFFFFFu ||
      desc->n_rows > 0xFFFFFFFFu || desc->nbytes != desc->n_rows * desc->n_cols * elem)
    return fail(APR_ERR_INVALID_ARGUMENT, "weight byte size does not match its shape");
  apr_weight* w = calloc(1, sizeof *w);
  if (!w || !(w->data = malloc(desc->nbytes))) {
    free(w);
    return fail(APR_ERR_OUT_OF_MEMORY, "weight allocation failed");
  }
  memcpy(w->data, desc->data, desc->nbytes);
  w->type = desc->type;
  w->n_cols = desc->n_cols;
  w->n_rows = desc->n_rows;
  *out = w;
  return APR_OK;
}
static void weight_free(apr_device* d, apr_weight* w) {
  (void)d;
  if (w) free(w->data);
  free(w);
}

/* ---- tracing ---- */
/* The tracing rule (plugin.h): what is emitted is exactly what the next stage is computed from;
 * here the kernels emit the very arrays they go on to use. */
static int wants(const apr_device* d, apr_stage stage, uint32_t layer) {
  return d->tracing && d->sink.wants(d->sink.user_data, stage, layer);
}
static apr_status emit(apr_device* d, apr_stage stage, uint32_t layer, const float* data,
                       uint32_t ndim, uint64_t d0, uint64_t d1, uint64_t d2) {
  apr_trace_tensor t;
  memset(&t, 0, sizeof t);
  t.struct_size = sizeof t;
  t.stage = stage;
  t.layer = layer;
  t.dtype = APR_TYPE_F32;
  t.ndim = ndim;
  t.shape[0] = d0;
  t.shape[1] = d1;
  t.shape[2] = d2;
  t.shape[3] = 1;
  t.data = data;
  t.nbytes = d0 * d1 * d2 * 4;
  return d->sink.emit(d->sink.user_data, &t) == APR_OK
             ? APR_OK
             : fail(APR_ERR_ABORTED, "trace sink asked to stop");
}

/* ---- kernels ---- */
static apr_status embed(apr_device* d, const apr_embed_args* a) {
  CHECK_ARGS(d, a, APR_EMBED_ARGS_SIZE_V1_0, "embed");
  const apr_weight* w = a->table;
  if (!w || (a->n_rows && !a->token_ids))
    return fail(APR_ERR_INVALID_ARGUMENT, "embed: table or token_ids is NULL");
  float* out = f32_at(a->out, a->out_offset, (uint64_t)a->n_rows * w->n_cols);
  if (!out) return fail(APR_ERR_INVALID_ARGUMENT, "embed: output out of range");
  for (uint32_t r = 0; r < a->n_rows; ++r) {
    const int32_t id = a->token_ids[r];
    if (id < 0 || (uint64_t)id >= w->n_rows)
      return fail(APR_ERR_INVALID_ARGUMENT, "embed: token id out of range");
    for (uint64_t c = 0; c < w->n_cols; ++c) out[r * w->n_cols + c] = weight_at(w, id, c);
  }
  return APR_OK;
}

static apr_status rms_norm(apr_device* d, const apr_rms_norm_args* a) {
  CHECK_ARGS(d, a, APR_RMS_NORM_ARGS_SIZE_V1_0, "rms_norm");
  const uint64_t n = (uint64_t)a->n_rows * a->n_cols;
  const float* x = f32_at(a->x, a->x_offset, n);
  const float* w = f32_at(a->weight, a->weight_offset, a->n_cols);
  float* out = f32_at(a->out, a->out_offset, n);
  if (!x || !w || !out) return fail(APR_ERR_INVALID_ARGUMENT, "rms_norm: out of range");
  for (uint32_t r = 0; r < a->n_rows; ++r) {
    double ss = 0;
    for (uint32_t c = 0; c < a->n_cols; ++c)
      ss += (double)x[r * a->n_cols + c] * x[r * a->n_cols + c];
    const float scale = (float)(1.0 / sqrt(ss / a->n_cols + a->eps));
    for (uint32_t c = 0; c < a->n_cols; ++c)
      out[r * a->n_cols + c] = x[r * a->n_cols + c] * scale * w[c];
  }
  return APR_OK;
}

static apr_status matmul(apr_device* d, const apr_matmul_args* a) {
  CHECK_ARGS(d, a, APR_MATMUL_ARGS_SIZE_V1_0, "matmul");
  const apr_weight* w = a->weight;
  if (!w) return fail(APR_ERR_INVALID_ARGUMENT, "matmul: weight is NULL");
  const uint64_t xs = a->x_row_stride ? a->x_row_stride : w->n_cols;
  const uint64_t ys = a->y_row_stride ? a->y_row_stride : w->n_rows;
  if (xs < w->n_cols || ys < w->n_rows)
    return fail(APR_ERR_INVALID_ARGUMENT, "matmul: row stride shorter than a row");
  if (a->n_rows == 0) return APR_OK;
  const float* x = f32_at(a->x, a->x_offset, (a->n_rows - 1) * xs + w->n_cols);
  float* y = f32_at(a->y, a->y_offset, (a->n_rows - 1) * ys + w->n_rows);
  const float* bias = a->bias ? f32_at(a->bias, a->bias_offset, w->n_rows) : NULL;
  if (!x || !y || (a->bias && !bias)) return fail(APR_ERR_INVALID_ARGUMENT, "matmul: out of range");
  for (uint32_t r = 0; r < a->n_rows; ++r)
    for (uint64_t o = 0; o < w->n_rows; ++o) {
      double acc = 0;
      for (uint64_t i = 0; i < w->n_cols; ++i) acc += (double)weight_at(w, o, i) * x[r * xs + i];
      y[r * ys + o] = (float)acc + (bias ? bias[o] : 0.0f);
    }
  return APR_OK;
}

static apr_status add(apr_device* d, const apr_add_args* a) {
  CHECK_ARGS(d, a, APR_ADD_ARGS_SIZE_V1_0, "add");
  const uint64_t period = a->b_period ? a->b_period : a->n;
  const float* x = f32_at(a->a, a->a_offset, a->n);
  const float* b = f32_at(a->b, a->b_offset, period);
  float* out = f32_at(a->out, a->out_offset, a->n);
  if (!x || !b || !out) return fail(APR_ERR_INVALID_ARGUMENT, "add: out of range");
  for (uint64_t i = 0; i < a->n; ++i) out[i] = x[i] + b[i % period];
  return APR_OK;
}

static apr_status rope(apr_device* d, const apr_rope_args* a) {
  CHECK_ARGS(d, a, APR_ROPE_ARGS_SIZE_V1_0, "rope");
  const uint64_t width = (uint64_t)a->n_heads * a->head_dim;
  const uint64_t stride = a->x_row_stride ? a->x_row_stride : width;
  if (stride < width) return fail(APR_ERR_INVALID_ARGUMENT, "rope: row stride shorter than a row");
  if (a->n_rows == 0) return APR_OK;
  float* x = f32_at(a->x, a->x_offset, (a->n_rows - 1) * stride + width);
  if (!x || a->n_rot % 2 || a->n_rot > a->head_dim ||
      (a->mode != APR_ROPE_INTERLEAVED && a->mode != APR_ROPE_HALF))
    return fail(APR_ERR_INVALID_ARGUMENT, "rope: bad arguments");
  const uint32_t half = a->n_rot / 2;
  /* A member added in ABI 1.1: read only if the host's struct holds it. */
#if APR_ABI_MINOR >= 1
  const float* factors = APR_STRUCT_HAS(a, apr_rope_args, freq_factors) ? a->freq_factors : NULL;
#else
  const float* factors = NULL;
#endif
  for (uint32_t r = 0; r < a->n_rows; ++r)
    for (uint32_t h = 0; h < a->n_heads; ++h) {
      float* v = x + r * stride + (uint64_t)h * a->head_dim;
      for (uint32_t i = 0; i < half; ++i) {
        const double theta = (double)(a->pos0 + r) * a->freq_scale *
                             pow((double)a->freq_base, -2.0 * i / a->n_rot) /
                             (factors ? factors[i] : 1.0);
        const uint32_t i0 = a->mode == APR_ROPE_HALF ? i : 2 * i;
        const uint32_t i1 = a->mode == APR_ROPE_HALF ? i + half : 2 * i + 1;
        const double x0 = v[i0], x1 = v[i1];
        v[i0] = (float)(x0 * cos(theta) - x1 * sin(theta));
        v[i1] = (float)(x0 * sin(theta) + x1 * cos(theta));
      }
    }
  return APR_OK;
}

static apr_status kv_store(apr_device* d, const apr_kv_store_args* a) {
  CHECK_ARGS(d, a, APR_KV_STORE_ARGS_SIZE_V1_0, "kv_store");
  const uint64_t stride = a->src_row_stride ? a->src_row_stride : a->kv_dim;
  if (stride < a->kv_dim)
    return fail(APR_ERR_INVALID_ARGUMENT, "kv_store: row stride shorter than a row");
  if (a->n_rows == 0) return APR_OK;
  const uint64_t span = (a->n_rows - 1) * stride + a->kv_dim;
  const float* k = f32_at(a->k, a->k_offset, span);
  const float* v = f32_at(a->v, a->v_offset, span);
  float* kc = f32_at(a->k_cache, 0, ((uint64_t)a->pos0 + a->n_rows) * a->kv_dim);
  float* vc = f32_at(a->v_cache, 0, ((uint64_t)a->pos0 + a->n_rows) * a->kv_dim);
  if (!k || !v || !kc || !vc) return fail(APR_ERR_INVALID_ARGUMENT, "kv_store: out of range");
  for (uint32_t r = 0; r < a->n_rows; ++r) {
    memcpy(kc + ((uint64_t)a->pos0 + r) * a->kv_dim, k + r * stride, a->kv_dim * 4);
    memcpy(vc + ((uint64_t)a->pos0 + r) * a->kv_dim, v + r * stride, a->kv_dim * 4);
  }
  return APR_OK;
}

static apr_status attention(apr_device* d, const apr_attention_args* a) {
  CHECK_ARGS(d, a, APR_ATTENTION_ARGS_SIZE_V1_0, "attention");
  const uint64_t qdim = (uint64_t)a->n_heads * a->head_dim;
  const uint64_t kvdim = (uint64_t)a->n_kv_heads * a->head_dim;
  const uint64_t qs = a->q_row_stride ? a->q_row_stride : qdim;
  const uint64_t n_kv = (uint64_t)a->pos0 + a->n_rows;
  if (qs < qdim) return fail(APR_ERR_INVALID_ARGUMENT, "attention: row stride shorter than a row");
  if (a->n_rows == 0) return APR_OK;
  if (a->n_kv_heads == 0 || a->n_heads % a->n_kv_heads)
    return fail(APR_ERR_INVALID_ARGUMENT, "attention: heads not a multiple of KV heads");
  const float* q = f32_at(a->q, a->q_offset, (a->n_rows - 1) * qs + qdim);
  const float* kc = f32_at(a->k_cache, 0, n_kv * kvdim);
  const float* vc = f32_at(a->v_cache, 0, n_kv * kvdim);
  float* out = f32_at(a->out, a->out_offset, a->n_rows * qdim);
  if (!q || !kc || !vc || !out) return fail(APR_ERR_INVALID_ARGUMENT, "attention: out of range");
  const int keep_scores = wants(d, APR_STAGE_ATTN_SCORES, a->layer);
  const int keep_probs = wants(d, APR_STAGE_ATTN_SOFTMAX, a->layer);
  const uint64_t plane = (uint64_t)a->n_heads * a->n_rows * n_kv;
  float* scores = calloc(plane ? plane : 1, 4);
  float* probs = calloc(plane ? plane : 1, 4);
  if (!scores || !probs) {
    free(scores);
    free(probs);
    return fail(APR_ERR_OUT_OF_MEMORY, "attention: out of memory");
  }
  const uint32_t group = a->n_heads / a->n_kv_heads;
  for (uint32_t h = 0; h < a->n_heads; ++h)
    for (uint32_t r = 0; r < a->n_rows; ++r) {
      const float* qv = q + r * qs + (uint64_t)h * a->head_dim;
      const uint64_t last = a->pos0 + r;
      float* s = scores + ((uint64_t)h * a->n_rows + r) * n_kv;
      float* p = probs + ((uint64_t)h * a->n_rows + r) * n_kv;
      double max = -INFINITY, sum = 0;
      for (uint64_t t = 0; t <= last; ++t) {
        const float* kv = kc + t * kvdim + (uint64_t)(h / group) * a->head_dim;
        double dot = 0;
        for (uint32_t i = 0; i < a->head_dim; ++i) dot += (double)qv[i] * kv[i];
        s[t] = (float)(dot * a->scale);
        if (s[t] > max) max = s[t];
      }
      for (uint64_t t = 0; t <= last; ++t) sum += exp(s[t] - max);
      for (uint64_t t = 0; t <= last; ++t) p[t] = (float)(exp(s[t] - max) / sum);
      float* o = out + r * qdim + (uint64_t)h * a->head_dim;
      for (uint32_t i = 0; i < a->head_dim; ++i) {
        double acc = 0;
        for (uint64_t t = 0; t <= last; ++t)
          acc += (double)p[t] * vc[t * kvdim + (uint64_t)(h / group) * a->head_dim + i];
        o[i] = (float)acc;
      }
    }
  apr_status st = APR_OK;
  if (keep_scores)
    st = emit(d, APR_STAGE_ATTN_SCORES, a->layer, scores, 3, a->n_heads, a->n_rows, n_kv);
  if (st == APR_OK && keep_probs)
    st = emit(d, APR_STAGE_ATTN_SOFTMAX, a->layer, probs, 3, a->n_heads, a->n_rows, n_kv);
  free(scores);
  free(probs);
  return st;
}

static apr_status swiglu(apr_device* d, const apr_swiglu_args* a) {
  CHECK_ARGS(d, a, APR_SWIGLU_ARGS_SIZE_V1_0, "swiglu");
  const uint64_t n = (uint64_t)a->n_rows * a->n_cols;
  const float* g = f32_at(a->gate, a->gate_offset, n);
  const float* u = f32_at(a->up, a->up_offset, n);
  float* out = f32_at(a->out, a->out_offset, n);
  if (!g || !u || !out) return fail(APR_ERR_INVALID_ARGUMENT, "swiglu: out of range");
  float* silu = malloc((n ? n : 1) * 4);
  if (!silu) return fail(APR_ERR_OUT_OF_MEMORY, "swiglu: out of memory");
  for (uint64_t i = 0; i < n; ++i) silu[i] = (float)(g[i] / (1.0 + exp(-(double)g[i])));
  for (uint64_t i = 0; i < n; ++i) out[i] = silu[i] * u[i];
  apr_status st = APR_OK;
  if (wants(d, APR_STAGE_FFN_SILU, a->layer))
    st = emit(d, APR_STAGE_FFN_SILU, a->layer, silu, 2, a->n_rows, a->n_cols, 1);
  free(silu);
  return st;
}

static apr_status trace_emit(apr_device* d, const apr_trace_emit_args* a) {
  CHECK_ARGS(d, a, APR_TRACE_EMIT_ARGS_SIZE_V1_0, "trace_emit");
  const uint64_t stride = a->row_stride ? a->row_stride : a->n_cols;
  if (stride < a->n_cols)
    return fail(APR_ERR_INVALID_ARGUMENT, "trace_emit: row stride shorter than a row");
  if (!wants(d, a->stage, a->layer) || a->n_rows == 0) return APR_OK;
  const float* src = f32_at(a->buffer, a->offset, (a->n_rows - 1) * stride + a->n_cols);
  if (!src) return fail(APR_ERR_INVALID_ARGUMENT, "trace_emit: out of range");
  float* packed = malloc((uint64_t)a->n_rows * a->n_cols * 4);
  if (!packed) return fail(APR_ERR_OUT_OF_MEMORY, "trace_emit: out of memory");
  for (uint32_t r = 0; r < a->n_rows; ++r)
    memcpy(packed + (uint64_t)r * a->n_cols, src + r * stride, (uint64_t)a->n_cols * 4);
  const int flat = a->n_rows == 1 && a->stage == APR_STAGE_LM_HEAD;
  const apr_status st = flat ? emit(d, a->stage, a->layer, packed, 1, a->n_cols, 1, 1)
                             : emit(d, a->stage, a->layer, packed, 2, a->n_rows, a->n_cols, 1);
  free(packed);
  return st;
}

/* The step markers of ABI 1.2 are optional: this plugin runs every call eagerly, so it leaves
 * step_begin and step_end NULL and the host simply does not call them. */
static const apr_plugin_api g_api = {
    .struct_size = sizeof(apr_plugin_api), /* the plugin's own table: sizeof is right here */
    .abi_major = APR_ABI_MAJOR,
    .abi_minor = APR_ABI_MINOR,
#ifdef EXAMPLE_PLUGIN_NAME
    .name = EXAMPLE_PLUGIN_NAME,
#else
    .name = "example",
#endif
    .version = "1.2.0",
    .description = "minimal C99 reference backend: scalar, single-threaded, F32/F16 weights",
    .aliases = NULL,
    .init = init,
    .shutdown = shutdown_plugin,
    .probe = probe,
    .error_message = error_message,
    .device_count = device_count,
    .device_info = device_info,
    .device_open = device_open,
    .device_close = device_close,
    .set_trace_sink = set_trace_sink,
    .buffer_alloc = buffer_alloc,
    .buffer_free = buffer_free,
    .buffer_write = buffer_write,
    .buffer_read = buffer_read,
    .synchronize = synchronize,
    .weight_create = weight_create,
    .weight_free = weight_free,
    .embed = embed,
    .rms_norm = rms_norm,
    .matmul = matmul,
    .add = add,
    .rope = rope,
    .kv_store = kv_store,
    .attention = attention,
    .swiglu = swiglu,
    .trace_emit = trace_emit,
#if APR_ABI_MINOR >= 2
    .device_caps = device_caps,
    .step_begin = NULL,
    .step_end = NULL,
#endif
};

APR_PLUGIN_EXPORT const apr_plugin_api* apr_plugin_entry(uint32_t host_major, uint32_t host_minor) {
  (void)host_minor;
  return host_major == APR_ABI_MAJOR ? &g_api : NULL;
}
