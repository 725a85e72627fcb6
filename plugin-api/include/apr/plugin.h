/* SPDX-License-Identifier: MIT */
/*
 * apr backend plugin ABI, version 1.3.
 *
 * This header is the whole contract between the apr host and a backend plugin. It is plain C99
 * and depends only on <stddef.h> and <stdint.h>, so a plugin may be written in any language that
 * can export a C function.
 *
 * Stability rules (see docs/PLUGIN-ABI.md):
 *  - A plugin exports exactly one symbol, APR_PLUGIN_ENTRY_SYMBOL. The host refuses a plugin whose
 *    abi_major differs from its own; the minor version in use is min(host minor, plugin minor).
 *  - Every struct that crosses the boundary starts with `size_t struct_size`, set by whoever fills
 *    the struct. Readers never touch a member that does not lie wholly inside struct_size, so
 *    members are only ever appended. Member offsets of each minor version are frozen by a test.
 *    A reader accepts any struct_size of at least the struct's APR_*_SIZE_V1_0 (never compare
 *    with sizeof) and tests later members with APR_STRUCT_HAS; an output struct is written only
 *    inside the caller's struct_size. The size constants are listed after the function table.
 *  - Function pointers added in a later minor version may be NULL when talking to an older peer.
 *  - No exceptions, no C++ types and no ownership transfer of host memory across the boundary.
 *
 * Execution model: every kernel call on one device is executed in issue order; a plugin may run
 * them asynchronously. buffer_read and synchronize wait for all earlier work. Calls on one device
 * come from one host thread at a time. The trace sink is called only from inside a plugin call, on
 * the calling thread, with host-visible memory.
 *
 * History: 1.0 the table, kernels and trace sink; 1.1 apr_rope_args.freq_factors; 1.2 the
 * capability query (device_caps) and step capture (step_begin, step_end); 1.3 the operations of
 * newer model families (qwen3, gemma2, gemma3, phi3): grouped and strided RMSNorm (QK-norm),
 * sliding-window and soft-capped attention, the GELU-gated FFN, the unary kernel (scale,
 * soft-cap) and six trace stages.
 */
#ifndef APR_PLUGIN_H
#define APR_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#define APR_ABI_MAJOR 1
#define APR_ABI_MINOR 3

/* The single exported entry point; see apr_plugin_entry_fn. */
#define APR_PLUGIN_ENTRY_SYMBOL "apr_plugin_entry"

#if defined(_WIN32)
#define APR_PLUGIN_EXPORT __declspec(dllexport)
#else
#define APR_PLUGIN_EXPORT __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Whether a struct filled by the other side is large enough to hold `member`: the test to make
 * before reading a member added in a later minor version. Never compare struct_size with sizeof:
 * sizeof grows with the header a plugin is built against, the caller's struct may not. */
#define APR_STRUCT_HAS(ptr, type, member) \
  ((ptr)->struct_size >= offsetof(type, member) + sizeof(((type*)0)->member))

/* ---------------------------------------------------------------------------------------------
 * Status codes. Every fallible call returns one; on failure the plugin's error_message() explains.
 * ------------------------------------------------------------------------------------------- */
typedef int32_t apr_status;
#define APR_OK 0
#define APR_ERR_INVALID_ARGUMENT 1 /* the call's arguments break this header's rules */
#define APR_ERR_UNSUPPORTED 2      /* valid, but this plugin cannot do it (e.g. a weight type) */
#define APR_ERR_OUT_OF_MEMORY 3    /* host or device allocation failed */
#define APR_ERR_DEVICE 4           /* the device or its driver reported a failure */
#define APR_ERR_UNAVAILABLE 5      /* no usable device, driver or runtime on this machine */
#define APR_ERR_INTERNAL 6         /* a bug in the plugin */
#define APR_ERR_ABORTED 7          /* the host's trace sink asked to stop */

/* ---------------------------------------------------------------------------------------------
 * Element types. The values are ggml's type ids, so a GGUF tensor's type passes through as is.
 * Block layouts are those of ggml (docs/PLUGIN-ABI.md links the definitions).
 * ------------------------------------------------------------------------------------------- */
typedef uint32_t apr_type;
#define APR_TYPE_F32 0
#define APR_TYPE_F16 1
#define APR_TYPE_Q4_0 2
#define APR_TYPE_Q4_1 3
#define APR_TYPE_Q5_0 6
#define APR_TYPE_Q5_1 7
#define APR_TYPE_Q8_0 8
#define APR_TYPE_Q2_K 10
#define APR_TYPE_Q3_K 11
#define APR_TYPE_Q4_K 12
#define APR_TYPE_Q5_K 13
#define APR_TYPE_Q6_K 14
#define APR_TYPE_BF16 30

/* ---------------------------------------------------------------------------------------------
 * Trace stages, in forward order. Values are append-only. Shapes are row-major, outermost first;
 * "rows" are prompt tokens of the current batch.
 * ------------------------------------------------------------------------------------------- */
typedef uint32_t apr_stage;
#define APR_STAGE_EMBEDDING 0    /* rows x hidden (layer 0 only) */
#define APR_STAGE_ATTN_NORM 1    /* rows x hidden */
#define APR_STAGE_QKV_MATMUL 2   /* rows x (q_dim + 2 kv_dim), each row [q|k|v], before bias */
#define APR_STAGE_QKV_BIAS 3     /* same, after bias (models with QKV biases only) */
#define APR_STAGE_Q_POST_ROPE 4  /* rows x q_dim */
#define APR_STAGE_K_POST_ROPE 5  /* rows x kv_dim */
#define APR_STAGE_ATTN_SCORES 6  /* heads x rows x n_kv, scaled, before softmax, masked = 0 */
#define APR_STAGE_ATTN_SOFTMAX 7 /* heads x rows x n_kv, masked = 0 */
#define APR_STAGE_ATTENTION 8    /* rows x q_dim, before the output projection */
#define APR_STAGE_ATTN_OUT 9     /* rows x hidden */
#define APR_STAGE_POST_ATTN_RESIDUAL 10 /* rows x hidden */
#define APR_STAGE_FFN_NORM 11           /* rows x hidden */
#define APR_STAGE_FFN_GATE 12           /* rows x ffn */
#define APR_STAGE_FFN_UP 13             /* rows x ffn */
#define APR_STAGE_FFN_SILU 14           /* rows x ffn: silu(gate) */
#define APR_STAGE_FFN_SWIGLU 15         /* rows x ffn: silu(gate) * up */
#define APR_STAGE_FFN_OUT 16            /* rows x hidden */
#define APR_STAGE_POST_FFN_RESIDUAL 17  /* rows x hidden */
#define APR_STAGE_FINAL_NORM 18         /* rows x hidden (whole model) */
#define APR_STAGE_LM_HEAD 19            /* vocab, last row only (whole model) */
#define APR_STAGE_COUNT_V1_0 20
/* ABI 1.3: stages of newer families; each comment gives its shape, its place in forward order
 * and the families that have it. */
/* rows x q_dim: per-head RMSNorm of Q, after QKV_MATMUL/QKV_BIAS (qwen3, gemma3) */
#define APR_STAGE_Q_NORM 20
/* rows x kv_dim: per-head RMSNorm of K, after Q_NORM, before Q_POST_ROPE (qwen3, gemma3) */
#define APR_STAGE_K_NORM 21
/* rows x hidden: RMSNorm of ATTN_OUT, before POST_ATTN_RESIDUAL (gemma2, gemma3) */
#define APR_STAGE_ATTN_POST_NORM 22
/* rows x ffn: gelu(gate), in place of FFN_SILU (gemma2, gemma3) */
#define APR_STAGE_FFN_GELU 23
/* rows x ffn: gelu(gate) * up, in place of FFN_SWIGLU (gemma2, gemma3) */
#define APR_STAGE_FFN_GEGLU 24
/* rows x hidden: RMSNorm of FFN_OUT, before POST_FFN_RESIDUAL (gemma2, gemma3) */
#define APR_STAGE_FFN_POST_NORM 25
#define APR_STAGE_COUNT_V1_3 26

/* Layer index of whole-model stages (matches the APRT file header). */
#define APR_LAYER_NONE 0xFFFFFFFFu

/* ---------------------------------------------------------------------------------------------
 * Trace sink: handed to the plugin by the host. A plugin that fuses several stages into one kernel
 * asks wants() for each stage it could emit and, only if asked, copies that tensor to host memory
 * and passes it to emit(). With no sink set, nothing is ever asked or copied.
 *
 * The tracing rule: an emitted stage is the value that the computation producing the next stage
 * used. A plugin may not recompute a stage by another path (another kernel, another precision,
 * another summation order) just to emit it; if the fast path never materialises the stage, then
 * while wants() says yes the plugin computes the following stages from the materialised tensor
 * it emits. A trace therefore always explains the output it sits beside.
 * ------------------------------------------------------------------------------------------- */
typedef struct apr_trace_tensor {
  size_t struct_size;
  apr_stage stage;
  uint32_t layer;    /* APR_LAYER_NONE for whole-model stages */
  apr_type dtype;    /* APR_TYPE_F32 in ABI 1.0 */
  uint32_t ndim;     /* 1..4 */
  uint64_t shape[4]; /* outermost first; unused entries are 1 */
  const void* data;  /* contiguous host memory, valid only during the emit call */
  uint64_t nbytes;
} apr_trace_tensor;

typedef struct apr_trace_sink {
  size_t struct_size;
  void* user_data;
  /* Nonzero when the host wants (stage, layer). Cheap and side-effect free. */
  int32_t (*wants)(void* user_data, apr_stage stage, uint32_t layer);
  /* Hands over one wanted tensor. A non-APR_OK return makes the plugin call fail with
   * APR_ERR_ABORTED. */
  apr_status (*emit)(void* user_data, const apr_trace_tensor* tensor);
} apr_trace_sink;

/* ---------------------------------------------------------------------------------------------
 * Host services, given to the plugin at init. Valid until shutdown.
 * ------------------------------------------------------------------------------------------- */
#define APR_LOG_DEBUG 0
#define APR_LOG_INFO 1
#define APR_LOG_WARN 2
#define APR_LOG_ERROR 3

typedef struct apr_host {
  size_t struct_size;
  uint32_t abi_major;
  uint32_t abi_minor;       /* the minor version negotiated for this plugin */
  const char* host_version; /* informational */
  void* user_data;
  void (*log)(void* user_data, int32_t level, const char* message); /* may be NULL */
} apr_host;

/* ---------------------------------------------------------------------------------------------
 * Output structs filled by the plugin: the host sets struct_size to the size it knows; the plugin
 * writes only members that lie wholly inside it. Strings are NUL-terminated and truncated to fit.
 * ------------------------------------------------------------------------------------------- */
typedef struct apr_probe_result {
  size_t struct_size;
  uint32_t score;   /* 0: not usable on this machine; higher is better */
  char reason[256]; /* why not usable, or what was found */
} apr_probe_result;

#define APR_DEVICE_KIND_CPU 0
#define APR_DEVICE_KIND_DISCRETE_GPU 1
#define APR_DEVICE_KIND_INTEGRATED_GPU 2
#define APR_DEVICE_KIND_VIRTUAL 3 /* e.g. a software rasteriser */
#define APR_DEVICE_KIND_OTHER 4

typedef struct apr_device_info {
  size_t struct_size;
  uint32_t kind;         /* APR_DEVICE_KIND_* */
  uint64_t memory_bytes; /* 0 when unknown */
  char name[128];
  char description[256]; /* driver, API version, features in use */
} apr_device_info;

typedef struct apr_device_options {
  size_t struct_size;
  uint32_t n_threads; /* host threads the plugin may use; 0 = plugin default */
} apr_device_options;

/* Opaque objects owned by the plugin. */
typedef struct apr_device apr_device;
typedef struct apr_buffer apr_buffer;
typedef struct apr_weight apr_weight;

/* ---------------------------------------------------------------------------------------------
 * Weights: a 2-D matrix in its GGUF encoding. Row r (one output feature, or one token of an
 * embedding table) is n_cols elements stored as n_cols / block_size blocks. The plugin may repack.
 * ------------------------------------------------------------------------------------------- */
#define APR_WEIGHT_DATA_PERSISTENT 1u /* data stays valid and unchanged until weight_free */

typedef struct apr_weight_desc {
  size_t struct_size;
  apr_type type;
  uint32_t flags;   /* APR_WEIGHT_* */
  uint64_t n_cols;  /* GGUF ne[0]: input features; a multiple of the type's block size */
  uint64_t n_rows;  /* GGUF ne[1]: output features or vocabulary size */
  const void* data; /* host memory, valid at least for the call */
  uint64_t nbytes;  /* n_rows * row bytes */
  const char* name; /* tensor name, for messages */
} apr_weight_desc;

/* ---------------------------------------------------------------------------------------------
 * Kernel arguments. All activations are f32. Offsets are in bytes and multiples of 4; strides are
 * in elements, 0 meaning "packed". Buffers passed as inputs and outputs of one call do not overlap
 * unless the call says so.
 * ------------------------------------------------------------------------------------------- */

/* out[r] = dequantized row token_ids[r] of table. */
typedef struct apr_embed_args {
  size_t struct_size;
  const apr_weight* table;
  const int32_t* token_ids; /* host memory, n_rows entries, valid for the call */
  uint32_t n_rows;
  apr_buffer* out;
  uint64_t out_offset;
} apr_embed_args;

/* out[r][c] = x[r][c] / sqrt(mean_c(x[r]^2) + eps) * weight[c]  (eps inside the root).
 * ABI 1.3 (APR_FEATURE_NORM_GROUPS): with n_groups = G > 1 each row of n_cols splits into G
 * groups of n_cols / G that are normalised on their own, all with the same weight of n_cols / G
 * entries (the per-head QK-norm of qwen3 and gemma3); rows lie row_stride elements apart in x and
 * in out. Zero (or a 1.2 struct) means one group and packed rows. */
typedef struct apr_rms_norm_args {
  size_t struct_size;
  const apr_buffer* x;
  uint64_t x_offset;
  const apr_buffer* weight; /* n_cols f32 */
  uint64_t weight_offset;
  apr_buffer* out; /* may equal x with the same offset */
  uint64_t out_offset;
  uint32_t n_rows;
  uint32_t n_cols;
  float eps;
  /* ABI 1.3. reserved0 fills 1.2's tail padding, so that a 1.2 peer's sizeof never covers a 1.3
   * member (it would read as present, holding whatever the padding held); set it to 0. */
  uint32_t reserved0;
  uint32_t row_stride; /* elements between rows of x and of out; 0 = n_cols */
  uint32_t n_groups;   /* 0 or 1: the row is one group; else divides n_cols */
} apr_rms_norm_args;

/* y[r][o] = sum_i W[o][i] * x[r][i] (+ bias[o]), for r < n_rows, o < W.n_rows, i < W.n_cols. */
typedef struct apr_matmul_args {
  size_t struct_size;
  const apr_weight* weight;
  const apr_buffer* x;
  uint64_t x_offset;
  uint32_t x_row_stride; /* elements between rows of x; 0 = W.n_cols */
  uint32_t n_rows;
  const apr_buffer* bias; /* NULL: no bias; else W.n_rows f32 */
  uint64_t bias_offset;
  apr_buffer* y;
  uint64_t y_offset;
  uint32_t y_row_stride; /* elements between rows of y; 0 = W.n_rows */
} apr_matmul_args;

/* out[i] = a[i] + b[i % b_period] for i < n (b_period 0 means n). out may equal a. */
typedef struct apr_add_args {
  size_t struct_size;
  const apr_buffer* a;
  uint64_t a_offset;
  const apr_buffer* b;
  uint64_t b_offset;
  apr_buffer* out;
  uint64_t out_offset;
  uint64_t n;
  uint64_t b_period;
} apr_add_args;

/* Rotary position embedding, in place, on n_heads heads of head_dim in each row of x.
 * Row r is at position p = pos0 + r; theta_i = p * freq_scale * freq_base^(-2i/n_rot),
 * i < n_rot/2; (x0, x1) -> (x0 cos - x1 sin, x0 sin + x1 cos). Dims >= n_rot are untouched. */
#define APR_ROPE_INTERLEAVED 0 /* pairs (2i, 2i+1): llama as GGUF stores it (ggml "NORM") */
#define APR_ROPE_HALF 1        /* pairs (i, i + n_rot/2): qwen2, HF rotate_half (ggml "NEOX") */

typedef struct apr_rope_args {
  size_t struct_size;
  apr_buffer* x;
  uint64_t x_offset;
  uint32_t x_row_stride; /* elements; 0 = n_heads * head_dim */
  uint32_t n_rows;
  uint32_t n_heads;
  uint32_t head_dim;
  uint32_t n_rot; /* even, <= head_dim */
  uint32_t mode;  /* APR_ROPE_* */
  uint32_t pos0;
  float freq_base;
  float freq_scale;
  /* ABI 1.1; read it only if APR_STRUCT_HAS(args, apr_rope_args, freq_factors). Per-pair
   * frequency divisors (GGUF "rope_freqs.weight", Llama 3.1+): theta_i is divided by
   * freq_factors[i]. Host memory, n_rot/2 entries, valid for the call; NULL: none. Small enough
   * for a GPU plugin to pass by value with the launch. */
  const float* freq_factors;
} apr_rope_args;

/* Copies n_rows rows of kv_dim from k and v into rows pos0.. of the caches. A cache is a buffer of
 * n_ctx rows x kv_dim f32, one row per position, allocated by the host. */
typedef struct apr_kv_store_args {
  size_t struct_size;
  const apr_buffer* k;
  uint64_t k_offset;
  const apr_buffer* v;
  uint64_t v_offset;
  uint32_t src_row_stride; /* elements; 0 = kv_dim */
  uint32_t n_rows;
  uint32_t kv_dim;
  uint32_t pos0;
  apr_buffer* k_cache;
  apr_buffer* v_cache;
} apr_kv_store_args;

/* Causal grouped-query attention over the cache. Query row r is at position p = pos0 + r and sees
 * cache rows 0..p. Query head h reads KV head h / (n_heads / n_kv_heads).
 * s = scale * q.k; a = softmax(s); out = sum a * v. Emits ATTN_SCORES and ATTN_SOFTMAX for
 * `layer` through the trace sink when asked, shaped n_heads x n_rows x (pos0 + n_rows).
 * ABI 1.3: window W > 0 (APR_FEATURE_ATTN_WINDOW) lets row p see only cache rows p - W + 1..p
 * (sliding-window layers of gemma2/gemma3); softcap c > 0 (APR_FEATURE_ATTN_SOFTCAP) replaces s
 * by c * tanh(s / c) before the softmax (gemma2). Masked scores are emitted as 0. */
typedef struct apr_attention_args {
  size_t struct_size;
  const apr_buffer* q;
  uint64_t q_offset;
  uint32_t q_row_stride; /* elements; 0 = n_heads * head_dim */
  uint32_t n_rows;
  uint32_t pos0;
  uint32_t n_heads;
  uint32_t n_kv_heads;
  uint32_t head_dim;
  float scale;
  uint32_t layer;
  const apr_buffer* k_cache;
  const apr_buffer* v_cache;
  apr_buffer* out; /* n_rows x (n_heads * head_dim), packed */
  uint64_t out_offset;
  /* ABI 1.3; zero (or a 1.2 struct) means off. */
  uint32_t window; /* keys a row sees, itself included; 0 = all earlier positions */
  float softcap;   /* > 0: scores become softcap * tanh(score / softcap) */
} apr_attention_args;

/* out = act(gate) * up elementwise; act is silu(z) = z / (1 + e^-z) and emits FFN_SILU for `layer`
 * when asked. ABI 1.3 (APR_FEATURE_GELU): activation APR_ACT_GELU_TANH makes act the tanh form of
 * GELU, 0.5 z (1 + tanh(sqrt(2/pi) (z + 0.044715 z^3))), emitted as FFN_GELU (gemma's GeGLU).
 * out may equal gate or up. */
#define APR_ACT_SILU 0
#define APR_ACT_GELU_TANH 1
typedef struct apr_swiglu_args {
  size_t struct_size;
  const apr_buffer* gate;
  uint64_t gate_offset;
  const apr_buffer* up;
  uint64_t up_offset;
  apr_buffer* out;
  uint64_t out_offset;
  uint32_t n_rows;
  uint32_t n_cols;
  uint32_t layer;
  /* ABI 1.3; reserved0 fills 1.2's tail padding (see apr_rms_norm_args); set it to 0. */
  uint32_t reserved0;
  uint32_t activation; /* APR_ACT_*; 0 (or a 1.2 struct) = silu */
} apr_swiglu_args;

/* ABI 1.3: an elementwise map of n floats, out[i] = f(x[i]). out may equal x.
 *   APR_UNARY_SCALE:   f(z) = alpha * z                 (gemma's embedding scale sqrt(hidden))
 *   APR_UNARY_SOFTCAP: f(z) = alpha * tanh(z / alpha)   (gemma2's final logit soft-cap; alpha > 0)
 * No stage of its own: the host emits the stage the result belongs to. */
#define APR_UNARY_SCALE 0
#define APR_UNARY_SOFTCAP 1

typedef struct apr_unary_args {
  size_t struct_size;
  uint32_t op; /* APR_UNARY_* */
  float alpha;
  const apr_buffer* x;
  uint64_t x_offset;
  apr_buffer* out;
  uint64_t out_offset;
  uint64_t n;
} apr_unary_args;

/* Copies an n_rows x n_cols f32 view to the host and emits it as (stage, layer), if the sink
 * wants it. The emitted tensor is 2-D, or 1-D when n_rows is 1 and the stage is LM_HEAD. */
typedef struct apr_trace_emit_args {
  size_t struct_size;
  apr_stage stage;
  uint32_t layer;
  const apr_buffer* buffer;
  uint64_t offset;
  uint32_t n_rows;
  uint32_t n_cols;
  uint32_t row_stride; /* elements; 0 = n_cols */
} apr_trace_emit_args;

/* ---------------------------------------------------------------------------------------------
 * ABI 1.2: capability query. An output struct (the host sets struct_size). The host calls it
 * before loading a model, refuses a model with an unsupported weight type with a message that
 * says so, and lets --backend=auto pass over such a backend.
 * ------------------------------------------------------------------------------------------- */
#define APR_FEATURE_ROPE_FREQ_FACTORS 1u /* honours apr_rope_args.freq_factors (ABI 1.1) */
#define APR_FEATURE_STEP_CAPTURE 2u      /* uses step_begin/step_end to capture and replay steps */
#define APR_FEATURE_FUSED_TRACE 4u       /* emits stages from inside fused kernels (see rule) */
/* ABI 1.3: the operations of newer families. The host refuses a model that needs one the device
 * lacks, naming it; the unary kernel is present when its table member is not NULL. */
#define APR_FEATURE_NORM_GROUPS 8u   /* rms_norm honours row_stride and n_groups */
#define APR_FEATURE_ATTN_WINDOW 16u  /* attention honours window */
#define APR_FEATURE_ATTN_SOFTCAP 32u /* attention honours softcap */
#define APR_FEATURE_GELU 64u         /* swiglu honours activation = APR_ACT_GELU_TANH */

typedef struct apr_device_caps {
  size_t struct_size;
  /* Bit t set: weight_create accepts apr_type t (t < 64). Activations are always f32. */
  uint64_t weight_types;
  uint64_t features;         /* APR_FEATURE_* */
  uint64_t max_buffer_bytes; /* largest buffer_alloc that can succeed; 0 = no fixed limit */
} apr_device_caps;

/* ---------------------------------------------------------------------------------------------
 * ABI 1.2: step capture. A step is the whole forward pass of one batch (a decode step: one token).
 * The host brackets it with step_begin and step_end so that a plugin can record the step's kernels
 * once (a CUDA graph, a Vulkan command buffer) and replay the recording for later steps.
 *
 * What the host promises between step_begin and step_end:
 *  - every call is a kernel call (embed ... trace_emit); no alloc, free, write, read or sync;
 *  - two steps with the same shape_key issue the same calls with the same arguments, except the
 *    per-step scalars: embed.token_ids, and pos0 of rope, kv_store and attention (and with it the
 *    attention length pos0 + n_rows);
 *  - the step's scalars are also in device memory, in the `scalars` buffer, written with
 *    buffer_write before step_begin, laid out as APR_STEP_WORD_* below (uint32 words, host byte
 *    order). A recorded kernel that reads them from there instead of from its argument struct
 *    replays correctly without re-instantiation;
 *  - no trace sink is set (the host does not bracket traced steps);
 *  - buffers and weights used inside a step outlive every later step with that shape_key.
 * What the plugin promises: after step_end returns, the step's work is issued exactly as if the
 * calls had run eagerly (buffer_read after it sees the results). A plugin may ignore the markers
 * (leave both NULL, or return APR_OK and run every call eagerly) and stays correct.
 * A failed call inside a step makes the host call step_end with APR_STEP_DISCARD: drop any partial
 * recording and issue nothing more for this step.
 * ------------------------------------------------------------------------------------------- */
#define APR_STEP_WORD_POS0 0   /* position of the step's first row */
#define APR_STEP_WORD_N_KV 1   /* attention length: pos0 + n_rows */
#define APR_STEP_WORD_N_ROWS 2 /* rows (tokens) in the step */
#define APR_STEP_WORD_TOKENS 4 /* n_rows int32 token ids start at this word */
#define APR_STEP_SCALARS_BYTES(n_rows) (4u * (APR_STEP_WORD_TOKENS + (uint64_t)(n_rows)))

#define APR_STEP_DISCARD 1u /* step_end only: a call failed, drop the step */

typedef struct apr_step_args {
  size_t struct_size;
  uint64_t shape_key;        /* equal keys: identical calls apart from the per-step scalars */
  const apr_buffer* scalars; /* device copy of the scalars, APR_STEP_SCALARS_BYTES(n_rows) */
  uint64_t scalars_offset;   /* bytes, a multiple of 4 */
  uint32_t n_rows;           /* the same values as in the scalars buffer, for convenience */
  uint32_t pos0;
  uint32_t flags; /* APR_STEP_* */
} apr_step_args;

/* ---------------------------------------------------------------------------------------------
 * The plugin's function table, returned by the entry point. Members are append-only; the host
 * reads a member only if it lies inside struct_size. Every member of ABI 1.0 is required.
 * ------------------------------------------------------------------------------------------- */
typedef struct apr_plugin_api {
  size_t struct_size;
  uint32_t abi_major;
  uint32_t abi_minor;
  const char* name;    /* backend name used by --backend: lowercase [a-z0-9_-] */
  const char* version; /* the plugin's own version */
  const char* description;
  const char* const* aliases; /* NULL-terminated list of other names, or NULL */

  /* Plugin lifecycle. init is called once before anything else but probe; shutdown last. */
  apr_status (*init)(const apr_host* host);
  void (*shutdown)(void);
  /* May be called before init. Reports whether this machine can run the plugin, and why not. */
  apr_status (*probe)(apr_probe_result* result);
  /* The message of the last failed call on the calling thread; never NULL. */
  const char* (*error_message)(void);

  /* Devices. */
  uint32_t (*device_count)(void);
  apr_status (*device_info)(uint32_t index, apr_device_info* info);
  apr_status (*device_open)(uint32_t index, const apr_device_options* options, apr_device** device);
  void (*device_close)(apr_device* device);
  /* NULL disables tracing. The sink struct is copied; user_data must outlive its use. */
  apr_status (*set_trace_sink)(apr_device* device, const apr_trace_sink* sink);

  /* Memory. Buffers are device memory of at least nbytes, 256-byte aligned. */
  apr_status (*buffer_alloc)(apr_device* device, uint64_t nbytes, apr_buffer** buffer);
  void (*buffer_free)(apr_device* device, apr_buffer* buffer);
  /* src is read before the call returns. */
  apr_status (*buffer_write)(apr_device* device, apr_buffer* buffer, uint64_t offset,
                             const void* src, uint64_t nbytes);
  /* Waits for earlier work, then copies. */
  apr_status (*buffer_read)(apr_device* device, const apr_buffer* buffer, uint64_t offset,
                            void* dst, uint64_t nbytes);
  apr_status (*synchronize)(apr_device* device);

  apr_status (*weight_create)(apr_device* device, const apr_weight_desc* desc, apr_weight** weight);
  void (*weight_free)(apr_device* device, apr_weight* weight);

  /* Kernels. */
  apr_status (*embed)(apr_device* device, const apr_embed_args* args);
  apr_status (*rms_norm)(apr_device* device, const apr_rms_norm_args* args);
  apr_status (*matmul)(apr_device* device, const apr_matmul_args* args);
  apr_status (*add)(apr_device* device, const apr_add_args* args);
  apr_status (*rope)(apr_device* device, const apr_rope_args* args);
  apr_status (*kv_store)(apr_device* device, const apr_kv_store_args* args);
  apr_status (*attention)(apr_device* device, const apr_attention_args* args);
  apr_status (*swiglu)(apr_device* device, const apr_swiglu_args* args);
  apr_status (*trace_emit)(apr_device* device, const apr_trace_emit_args* args);

  /* ABI 1.2; the host calls them only if the table's struct_size holds them and they are not
   * NULL. A plugin speaking 1.2 should set device_caps; the step markers stay optional. */
  apr_status (*device_caps)(uint32_t index, apr_device_caps* caps);
  apr_status (*step_begin)(apr_device* device, const apr_step_args* args);
  apr_status (*step_end)(apr_device* device, const apr_step_args* args);

  /* ABI 1.3; may be NULL (the host then refuses models that need it). */
  apr_status (*unary)(apr_device* device, const apr_unary_args* args);
} apr_plugin_api;

/* ---------------------------------------------------------------------------------------------
 * The least struct_size of every struct in each minor version: the bytes through its last member
 * of that version (trailing padding excluded). A reader accepts a struct_size of at least the
 * size of the oldest minor it serves (every 1.x peer sends at least the 1.0 size) and tests newer
 * members with APR_STRUCT_HAS. These are the only sizes to compare struct_size with.
 * ------------------------------------------------------------------------------------------- */
#define APR_SIZE_THROUGH(type, member) (offsetof(type, member) + sizeof(((type*)0)->member))

#define APR_TRACE_TENSOR_SIZE_V1_0 APR_SIZE_THROUGH(apr_trace_tensor, nbytes)
#define APR_TRACE_SINK_SIZE_V1_0 APR_SIZE_THROUGH(apr_trace_sink, emit)
#define APR_HOST_SIZE_V1_0 APR_SIZE_THROUGH(apr_host, log)
#define APR_PROBE_RESULT_SIZE_V1_0 APR_SIZE_THROUGH(apr_probe_result, reason)
#define APR_DEVICE_INFO_SIZE_V1_0 APR_SIZE_THROUGH(apr_device_info, description)
#define APR_DEVICE_OPTIONS_SIZE_V1_0 APR_SIZE_THROUGH(apr_device_options, n_threads)
#define APR_WEIGHT_DESC_SIZE_V1_0 APR_SIZE_THROUGH(apr_weight_desc, name)
#define APR_EMBED_ARGS_SIZE_V1_0 APR_SIZE_THROUGH(apr_embed_args, out_offset)
#define APR_RMS_NORM_ARGS_SIZE_V1_0 APR_SIZE_THROUGH(apr_rms_norm_args, eps)
#define APR_MATMUL_ARGS_SIZE_V1_0 APR_SIZE_THROUGH(apr_matmul_args, y_row_stride)
#define APR_ADD_ARGS_SIZE_V1_0 APR_SIZE_THROUGH(apr_add_args, b_period)
#define APR_ROPE_ARGS_SIZE_V1_0 APR_SIZE_THROUGH(apr_rope_args, freq_scale)
#define APR_KV_STORE_ARGS_SIZE_V1_0 APR_SIZE_THROUGH(apr_kv_store_args, v_cache)
#define APR_ATTENTION_ARGS_SIZE_V1_0 APR_SIZE_THROUGH(apr_attention_args, out_offset)
#define APR_SWIGLU_ARGS_SIZE_V1_0 APR_SIZE_THROUGH(apr_swiglu_args, layer)
#define APR_TRACE_EMIT_ARGS_SIZE_V1_0 APR_SIZE_THROUGH(apr_trace_emit_args, row_stride)
#define APR_PLUGIN_API_SIZE_V1_0 APR_SIZE_THROUGH(apr_plugin_api, trace_emit)

/* ABI 1.1 appended apr_rope_args.freq_factors; every other struct kept its 1.0 size. */
#define APR_TRACE_TENSOR_SIZE_V1_1 APR_TRACE_TENSOR_SIZE_V1_0
#define APR_TRACE_SINK_SIZE_V1_1 APR_TRACE_SINK_SIZE_V1_0
#define APR_HOST_SIZE_V1_1 APR_HOST_SIZE_V1_0
#define APR_PROBE_RESULT_SIZE_V1_1 APR_PROBE_RESULT_SIZE_V1_0
#define APR_DEVICE_INFO_SIZE_V1_1 APR_DEVICE_INFO_SIZE_V1_0
#define APR_DEVICE_OPTIONS_SIZE_V1_1 APR_DEVICE_OPTIONS_SIZE_V1_0
#define APR_WEIGHT_DESC_SIZE_V1_1 APR_WEIGHT_DESC_SIZE_V1_0
#define APR_EMBED_ARGS_SIZE_V1_1 APR_EMBED_ARGS_SIZE_V1_0
#define APR_RMS_NORM_ARGS_SIZE_V1_1 APR_RMS_NORM_ARGS_SIZE_V1_0
#define APR_MATMUL_ARGS_SIZE_V1_1 APR_MATMUL_ARGS_SIZE_V1_0
#define APR_ADD_ARGS_SIZE_V1_1 APR_ADD_ARGS_SIZE_V1_0
#define APR_ROPE_ARGS_SIZE_V1_1 APR_SIZE_THROUGH(apr_rope_args, freq_factors)
#define APR_KV_STORE_ARGS_SIZE_V1_1 APR_KV_STORE_ARGS_SIZE_V1_0
#define APR_ATTENTION_ARGS_SIZE_V1_1 APR_ATTENTION_ARGS_SIZE_V1_0
#define APR_SWIGLU_ARGS_SIZE_V1_1 APR_SWIGLU_ARGS_SIZE_V1_0
#define APR_TRACE_EMIT_ARGS_SIZE_V1_1 APR_TRACE_EMIT_ARGS_SIZE_V1_0
#define APR_PLUGIN_API_SIZE_V1_1 APR_PLUGIN_API_SIZE_V1_0

/* ABI 1.2 appended three members to apr_plugin_api and added two structs. */
#define APR_TRACE_TENSOR_SIZE_V1_2 APR_TRACE_TENSOR_SIZE_V1_1
#define APR_TRACE_SINK_SIZE_V1_2 APR_TRACE_SINK_SIZE_V1_1
#define APR_HOST_SIZE_V1_2 APR_HOST_SIZE_V1_1
#define APR_PROBE_RESULT_SIZE_V1_2 APR_PROBE_RESULT_SIZE_V1_1
#define APR_DEVICE_INFO_SIZE_V1_2 APR_DEVICE_INFO_SIZE_V1_1
#define APR_DEVICE_OPTIONS_SIZE_V1_2 APR_DEVICE_OPTIONS_SIZE_V1_1
#define APR_WEIGHT_DESC_SIZE_V1_2 APR_WEIGHT_DESC_SIZE_V1_1
#define APR_EMBED_ARGS_SIZE_V1_2 APR_EMBED_ARGS_SIZE_V1_1
#define APR_RMS_NORM_ARGS_SIZE_V1_2 APR_RMS_NORM_ARGS_SIZE_V1_1
#define APR_MATMUL_ARGS_SIZE_V1_2 APR_MATMUL_ARGS_SIZE_V1_1
#define APR_ADD_ARGS_SIZE_V1_2 APR_ADD_ARGS_SIZE_V1_1
#define APR_ROPE_ARGS_SIZE_V1_2 APR_ROPE_ARGS_SIZE_V1_1
#define APR_KV_STORE_ARGS_SIZE_V1_2 APR_KV_STORE_ARGS_SIZE_V1_1
#define APR_ATTENTION_ARGS_SIZE_V1_2 APR_ATTENTION_ARGS_SIZE_V1_1
#define APR_SWIGLU_ARGS_SIZE_V1_2 APR_SWIGLU_ARGS_SIZE_V1_1
#define APR_TRACE_EMIT_ARGS_SIZE_V1_2 APR_TRACE_EMIT_ARGS_SIZE_V1_1
#define APR_DEVICE_CAPS_SIZE_V1_2 APR_SIZE_THROUGH(apr_device_caps, max_buffer_bytes)
#define APR_STEP_ARGS_SIZE_V1_2 APR_SIZE_THROUGH(apr_step_args, flags)
#define APR_PLUGIN_API_SIZE_V1_2 APR_SIZE_THROUGH(apr_plugin_api, step_end)

/* ABI 1.3 appended row_stride and n_groups to apr_rms_norm_args, window and softcap to
 * apr_attention_args, activation to apr_swiglu_args and unary to apr_plugin_api, and added
 * apr_unary_args. */
#define APR_TRACE_TENSOR_SIZE_V1_3 APR_TRACE_TENSOR_SIZE_V1_2
#define APR_TRACE_SINK_SIZE_V1_3 APR_TRACE_SINK_SIZE_V1_2
#define APR_HOST_SIZE_V1_3 APR_HOST_SIZE_V1_2
#define APR_PROBE_RESULT_SIZE_V1_3 APR_PROBE_RESULT_SIZE_V1_2
#define APR_DEVICE_INFO_SIZE_V1_3 APR_DEVICE_INFO_SIZE_V1_2
#define APR_DEVICE_OPTIONS_SIZE_V1_3 APR_DEVICE_OPTIONS_SIZE_V1_2
#define APR_WEIGHT_DESC_SIZE_V1_3 APR_WEIGHT_DESC_SIZE_V1_2
#define APR_EMBED_ARGS_SIZE_V1_3 APR_EMBED_ARGS_SIZE_V1_2
#define APR_RMS_NORM_ARGS_SIZE_V1_3 APR_SIZE_THROUGH(apr_rms_norm_args, n_groups)
#define APR_MATMUL_ARGS_SIZE_V1_3 APR_MATMUL_ARGS_SIZE_V1_2
#define APR_ADD_ARGS_SIZE_V1_3 APR_ADD_ARGS_SIZE_V1_2
#define APR_ROPE_ARGS_SIZE_V1_3 APR_ROPE_ARGS_SIZE_V1_2
#define APR_KV_STORE_ARGS_SIZE_V1_3 APR_KV_STORE_ARGS_SIZE_V1_2
#define APR_ATTENTION_ARGS_SIZE_V1_3 APR_SIZE_THROUGH(apr_attention_args, softcap)
#define APR_SWIGLU_ARGS_SIZE_V1_3 APR_SIZE_THROUGH(apr_swiglu_args, activation)
#define APR_TRACE_EMIT_ARGS_SIZE_V1_3 APR_TRACE_EMIT_ARGS_SIZE_V1_2
#define APR_DEVICE_CAPS_SIZE_V1_3 APR_DEVICE_CAPS_SIZE_V1_2
#define APR_STEP_ARGS_SIZE_V1_3 APR_STEP_ARGS_SIZE_V1_2
#define APR_UNARY_ARGS_SIZE_V1_3 APR_SIZE_THROUGH(apr_unary_args, n)
#define APR_PLUGIN_API_SIZE_V1_3 APR_SIZE_THROUGH(apr_plugin_api, unary)

/* The entry point. The host passes the ABI version it speaks; the plugin returns its table
 * (static storage, valid until unload) or NULL if it cannot serve that host at all. */
typedef const apr_plugin_api* (*apr_plugin_entry_fn)(uint32_t host_abi_major,
                                                     uint32_t host_abi_minor);

#ifdef __cplusplus
}
#endif

#endif /* APR_PLUGIN_H */
