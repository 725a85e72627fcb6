/* SPDX-License-Identifier: MIT */
/*
 * Defective plugins for the tests of `apr plugin-check`: the example plugin with exactly one
 * defect, chosen by BAD_KIND when compiling. plugin-check must fail each, naming the check:
 *   1 overrun   matmul writes one float past the end of its output view
 *   2 nan       rms_norm puts a NaN into its output
 *   3 matmul    matmul is wrong for F16 weights only (F32 stays right)
 *   4 nullcrash weight_create dereferences a NULL description (SIGSEGV)
 */
#define apr_plugin_entry example_plugin_entry
#include "../../plugins/example/example_plugin.c"
#undef apr_plugin_entry

#ifndef BAD_KIND
#error "define BAD_KIND"
#endif

static apr_plugin_api g_bad_api;

static apr_status bad_matmul(apr_device* d, const apr_matmul_args* a) {
  const apr_status s = matmul(d, a);
  if (s != APR_OK || a->n_rows == 0) return s;
  const apr_weight* w = a->weight;
  const uint64_t ys = a->y_row_stride ? a->y_row_stride : w->n_rows;
  float* y = (float*)(a->y->bytes + a->y_offset);
  if (BAD_KIND == 1) {
    const uint64_t end = (a->n_rows - 1) * ys + w->n_rows; /* one past the view */
    if (a->y_offset + 4 * (end + 1) <= a->y->size) y[end] = 12345.0f;
  } else if (BAD_KIND == 3 && w->type == APR_TYPE_F16) {
    y[0] += 0.5f;
  }
  return s;
}

static apr_status bad_rms_norm(apr_device* d, const apr_rms_norm_args* a) {
  const apr_status s = rms_norm(d, a);
  if (s == APR_OK && a->n_rows > 0 && a->n_cols > 0)
    ((float*)(a->out->bytes + a->out_offset))[a->n_cols / 2] = NAN;
  return s;
}

static apr_status bad_weight_create(apr_device* d, const apr_weight_desc* desc, apr_weight** out) {
  if (desc->type == 0xFFFFu) return APR_ERR_UNSUPPORTED; /* reads desc first: NULL crashes */
  return weight_create(d, desc, out);
}

APR_PLUGIN_EXPORT const apr_plugin_api* apr_plugin_entry(uint32_t host_major, uint32_t host_minor) {
  const apr_plugin_api* base = example_plugin_entry(host_major, host_minor);
  if (!base) return NULL;
  g_bad_api = *base;
  g_bad_api.name = BAD_NAME;
  if (BAD_KIND == 1 || BAD_KIND == 3) g_bad_api.matmul = bad_matmul;
  if (BAD_KIND == 2) g_bad_api.rms_norm = bad_rms_norm;
  if (BAD_KIND == 4) g_bad_api.weight_create = bad_weight_create;
  return &g_bad_api;
}
