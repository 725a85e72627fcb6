// SPDX-License-Identifier: MIT
// The cpu-fault plugin's APR_CPU_FAULT conditions and modes (plugins/cpu/src/fault_injection.hpp):
// rows=, pos>=, split, scale, kernel, the k_cache/v_cache targets, the position rule and the
// refusal of malformed values. Unlike core/conformance/test_fault_injection.cpp, which checks the
// one spec CTest puts in the environment, each check here opens devices under specs of its own
// (the plugin reads APR_CPU_FAULT at device_open; every check runs in its own child process), so
// they run where APR_CPU_FAULT is unset or empty: CTest's kernels_cpu_fault_modes.
//
// The expectations are independent of the plugin's fault code: every touched value must equal the
// same kernel's unperturbed result (a run under a weight name, layer or position the fault does
// not name) plus +-m or times m exactly, every other value must be that result bit for bit, and
// the unperturbed results themselves are checked against float64 references (or are exact copies
// of the inputs, for embed and kv_store).
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "plugin_fixture.hpp"
#include "plugin_handle/device.hpp"

using namespace kernel_tests;

namespace {

constexpr uint64_t kF32Bytes = sizeof(float);

// Whether these checks apply: the cpu-fault plugin, with no APR_CPU_FAULT of CTest's own (the
// entries that set one check that one; these checks are skipped there).
bool modes_under_test(Plugin& p) {
  if (std::string(p.api().name) != "cpu-fault") return false;
  const char* env = std::getenv("APR_CPU_FAULT");
  if (env && *env)
    throw conformance::CheckSkipped{"APR_CPU_FAULT is set; these checks set their own"};
  return true;
}

// Opens a device of the plugin under test with APR_CPU_FAULT=spec (the variable is restored
// afterwards; the plugin keeps the fault it parsed).
std::unique_ptr<apr::Device> open_under(Plugin& p, const std::string& spec) {
  const char* old = std::getenv("APR_CPU_FAULT");
  const std::string saved = old ? old : "";
  setenv("APR_CPU_FAULT", spec.c_str(), 1);
  std::unique_ptr<apr::Device> d;
  std::string error;
  try {
    d = std::make_unique<apr::Device>(p.api(), std::min<uint32_t>(APR_ABI_MINOR, p.api().abi_minor),
                                      "cpu-fault", p.device_index(), 2);
  } catch (const std::exception& e) {
    error = e.what();
  }
  if (old)
    setenv("APR_CPU_FAULT", saved.c_str(), 1);
  else
    unsetenv("APR_CPU_FAULT");
  INFO("APR_CPU_FAULT=" << spec << ": " << error);
  REQUIRE(d != nullptr);
  return d;
}

// Random values of magnitude in [0.25, 1) with random signs: none is zero, so x * m != x.
std::vector<float> nonzero(std::mt19937_64& rng, size_t n) {
  std::vector<float> v = random_floats(rng, n, 0.25f, 1.0f);
  std::bernoulli_distribution sign(0.5);
  for (float& x : v)
    if (sign(rng)) x = -x;
  return v;
}

apr::Buffer upload(apr::Device& d, const std::vector<float>& v) {
  apr::Buffer b = d.alloc(v.size() * kF32Bytes);
  d.write(b, 0, v.data(), v.size() * kF32Bytes);
  return b;
}

std::vector<float> download(apr::Device& d, const apr::Buffer& b, size_t n, size_t first = 0) {
  std::vector<float> out(n);
  d.read(b, first * kF32Bytes, out.data(), n * kF32Bytes);
  return out;
}

apr::Weight f32_weight(apr::Device& d, const std::vector<float>& data, uint64_t n_rows,
                       uint64_t n_cols, const std::string& name) {
  auto desc = apr::abi_struct<apr_weight_desc>();
  desc.type = APR_TYPE_F32;
  desc.n_cols = n_cols;
  desc.n_rows = n_rows;
  desc.data = data.data();
  desc.nbytes = data.size() * kF32Bytes;
  desc.name = name.c_str();
  return d.create_weight(desc);
}

void embed(apr::Device& d, const apr::Weight& table, const std::vector<int32_t>& tokens,
           apr::Buffer& out) {
  auto a = apr::abi_struct<apr_embed_args>();
  a.table = table.get();
  a.token_ids = tokens.data();
  a.n_rows = static_cast<uint32_t>(tokens.size());
  a.out = out.get();
  d.embed(a);
}

void matmul(apr::Device& d, const apr::Weight& w, const apr::Buffer& x, uint32_t n_rows,
            apr::Buffer& y, uint64_t y_col = 0, uint32_t y_stride = 0) {
  auto a = apr::abi_struct<apr_matmul_args>();
  a.weight = w.get();
  a.x = x.get();
  a.n_rows = n_rows;
  a.y = y.get();
  a.y_offset = y_col * kF32Bytes;
  a.y_row_stride = y_stride;
  d.matmul(a);
}

void rope(apr::Device& d, apr::Buffer& x, uint32_t n_rows, uint32_t pos0) {
  auto a = apr::abi_struct<apr_rope_args>();
  a.x = x.get();
  a.n_rows = n_rows;
  a.n_heads = 1;
  a.head_dim = 2;
  a.n_rot = 2;
  a.mode = APR_ROPE_INTERLEAVED;
  a.pos0 = pos0;
  a.freq_base = 10000.0f;
  a.freq_scale = 1.0f;
  d.rope(a);
}

// K and V rows side by side in src ([k | v], kv_dim each) stored at positions pos0.. of the caches.
void kv_store(apr::Device& d, const apr::Buffer& src, uint32_t n_rows, uint32_t kv_dim,
              uint32_t pos0, apr::Buffer& k_cache, apr::Buffer& v_cache) {
  auto a = apr::abi_struct<apr_kv_store_args>();
  a.k = src.get();
  a.v = src.get();
  a.v_offset = kv_dim * kF32Bytes;
  a.src_row_stride = 2 * kv_dim;
  a.n_rows = n_rows;
  a.kv_dim = kv_dim;
  a.pos0 = pos0;
  a.k_cache = k_cache.get();
  a.v_cache = v_cache.get();
  d.kv_store(a);
}

struct AttentionShape {
  uint32_t n_heads = 2, n_kv_heads = 1, head_dim = 4;
  uint32_t q_width() const { return n_heads * head_dim; }
  uint32_t kv_dim() const { return n_kv_heads * head_dim; }
  float scale() const { return 0.5f; }
};

void attention(apr::Device& d, const AttentionShape& s, const apr::Buffer& q, uint32_t n_rows,
               uint32_t pos0, uint32_t layer, const apr::Buffer& kc, const apr::Buffer& vc,
               apr::Buffer& out) {
  auto a = apr::abi_struct<apr_attention_args>();
  a.q = q.get();
  a.n_rows = n_rows;
  a.pos0 = pos0;
  a.n_heads = s.n_heads;
  a.n_kv_heads = s.n_kv_heads;
  a.head_dim = s.head_dim;
  a.scale = s.scale();
  a.layer = layer;
  a.k_cache = kc.get();
  a.v_cache = vc.get();
  a.out = out.get();
  d.attention(a);
}

void swiglu(apr::Device& d, const apr::Buffer& gate, const apr::Buffer& up, uint32_t n_rows,
            uint32_t n_cols, uint32_t layer, apr::Buffer& out) {
  auto a = apr::abi_struct<apr_swiglu_args>();
  a.gate = gate.get();
  a.up = up.get();
  a.out = out.get();
  a.n_rows = n_rows;
  a.n_cols = n_cols;
  a.layer = layer;
  d.swiglu(a);
}

void trace_emit(apr::Device& d, apr_stage stage, uint32_t layer, const apr::Buffer& b,
                uint32_t n_rows, uint32_t n_cols) {
  auto a = apr::abi_struct<apr_trace_emit_args>();
  a.stage = stage;
  a.layer = layer;
  a.buffer = b.get();
  a.n_rows = n_rows;
  a.n_cols = n_cols;
  d.trace_emit(a);
}

// float64 references.
std::vector<double> ref_matmul(const std::vector<float>& w, const std::vector<float>& x,
                               uint64_t n_out, uint64_t n_in, uint64_t n_rows) {
  std::vector<double> y(n_rows * n_out, 0.0);
  for (uint64_t r = 0; r < n_rows; ++r)
    for (uint64_t o = 0; o < n_out; ++o)
      for (uint64_t i = 0; i < n_in; ++i)
        y[r * n_out + o] += double(w[o * n_in + i]) * x[r * n_in + i];
  return y;
}

std::vector<double> ref_attention(const AttentionShape& s, const std::vector<float>& q,
                                  const std::vector<float>& kc, const std::vector<float>& vc,
                                  uint32_t n_rows, uint32_t pos0) {
  std::vector<double> out(uint64_t(n_rows) * s.q_width(), 0.0);
  const uint32_t group = s.n_heads / s.n_kv_heads;
  for (uint32_t r = 0; r < n_rows; ++r)
    for (uint32_t h = 0; h < s.n_heads; ++h) {
      const uint32_t n_valid = pos0 + r + 1, kv_col = (h / group) * s.head_dim;
      std::vector<double> p(n_valid);
      double max_s = -1e300, sum = 0.0;
      for (uint32_t t = 0; t < n_valid; ++t) {
        double dot = 0.0;
        for (uint32_t i = 0; i < s.head_dim; ++i)
          dot += double(q[r * s.q_width() + h * s.head_dim + i]) * kc[t * s.kv_dim() + kv_col + i];
        p[t] = s.scale() * dot;
        max_s = std::max(max_s, p[t]);
      }
      for (double& v : p) sum += (v = std::exp(v - max_s));
      for (uint32_t t = 0; t < n_valid; ++t)
        for (uint32_t i = 0; i < s.head_dim; ++i)
          out[r * s.q_width() + h * s.head_dim + i] += p[t] / sum * vc[t * s.kv_dim() + kv_col + i];
    }
  return out;
}

void require_close(const std::vector<float>& actual, const std::vector<double>& expected,
                   const std::string& what) {
  REQUIRE(actual.size() == expected.size());
  for (size_t i = 0; i < actual.size(); ++i) {
    INFO(what << ": element " << i << " is " << actual[i] << ", float64 reference " << expected[i]);
    REQUIRE(std::fabs(actual[i] - expected[i]) <= 1e-4 * (1.0 + std::fabs(expected[i])));
  }
}

// What a fault does to a value in column col: +m/-m by column parity, or times m.
float faulty(float x, uint64_t col, float m, bool scale) {
  if (scale) return x * m;
  return x + (col % 2 == 0 ? m : -m);
}

// REQUIREs `after` (rows of n_cols) to be `base` exactly, except rows r with touched[r], which
// must be `faulty` of it in every column. col0: the column index of each row's first value.
void require_rows(const std::vector<float>& after, const std::vector<float>& base, uint64_t n_cols,
                  const std::vector<bool>& touched, float m, bool scale, const std::string& what,
                  uint64_t col0 = 0) {
  REQUIRE(after.size() == base.size());
  REQUIRE(after.size() == touched.size() * n_cols);
  for (size_t r = 0; r < touched.size(); ++r)
    for (uint64_t c = 0; c < n_cols; ++c) {
      const size_t i = r * n_cols + c;
      const float want = touched[r] ? faulty(base[i], col0 + c, m, scale) : base[i];
      INFO(what << ": row " << r << (touched[r] ? " (faulty)" : " (untouched)") << " column " << c
                << " is " << after[i] << ", want " << want);
      REQUIRE(std::memcmp(&after[i], &want, sizeof(float)) == 0);
    }
}

}  // namespace

TEST_CASE("fault rows=N / rows>N: only batches of that many rows are perturbed", "[fault]") {
  KERNEL_TEST_PLUGIN_OR_SKIP(p);
  if (!modes_under_test(p)) return;
  std::mt19937_64 rng(101);
  const uint32_t n_cols = 6;
  const std::vector<float> three = nonzero(rng, 3 * n_cols), one = nonzero(rng, n_cols);
  // At trace emission (attn_norm is emitted by the host): rows=1 is a decode step only.
  for (const bool decode_only : {true, false}) {
    auto d = open_under(p, decode_only ? "2:attn_norm:0.5@rows=1" : "2:attn_norm:0.5@rows>1");
    apr::Buffer b3 = upload(*d, three), b1 = upload(*d, one);
    trace_emit(*d, APR_STAGE_ATTN_NORM, 2, b3, 3, n_cols);
    trace_emit(*d, APR_STAGE_ATTN_NORM, 2, b1, 1, n_cols);
    require_rows(download(*d, b3, three.size()), three, n_cols, std::vector<bool>(3, !decode_only),
                 0.5f, false, "3-row batch");
    require_rows(download(*d, b1, one.size()), one, n_cols, {decode_only}, 0.5f, false,
                 "1-row batch");
  }
  // Inside a matmul (kernel): one-row calls only.
  const uint32_t n_in = 8, n_out = 6;
  const std::vector<float> w = nonzero(rng, n_out * n_in), x = nonzero(rng, 3 * n_in);
  auto d = open_under(p, "1:ffn_gate:0.25@rows=1,kernel");
  apr::Weight faulty_w = f32_weight(*d, w, n_out, n_in, "blk.1.ffn_gate.weight");
  apr::Weight clean_w = f32_weight(*d, w, n_out, n_in, "blk.2.ffn_gate.weight");
  apr::Buffer bx = upload(*d, x), y = d->alloc(3 * n_out * kF32Bytes);
  for (const uint32_t rows : {3u, 1u}) {
    matmul(*d, clean_w, bx, rows, y);
    const std::vector<float> base = download(*d, y, rows * n_out);
    require_close(base, ref_matmul(w, x, n_out, n_in, rows), "unperturbed matmul");
    matmul(*d, faulty_w, bx, rows, y);
    require_rows(download(*d, y, rows * n_out), base, n_out, std::vector<bool>(rows, rows == 1),
                 0.25f, false, std::to_string(rows) + "-row matmul");
  }
}

TEST_CASE("fault pos>=K and split inside attention: rows placed by the kernel's pos0", "[fault]") {
  KERNEL_TEST_PLUGIN_OR_SKIP(p);
  if (!modes_under_test(p)) return;
  std::mt19937_64 rng(102);
  const AttentionShape s;
  const uint32_t n_ctx = 8;
  const std::vector<float> q = nonzero(rng, 4 * s.q_width());
  const std::vector<float> kc = nonzero(rng, n_ctx * s.kv_dim()),
                           vc = nonzero(rng, n_ctx * s.kv_dim());
  struct Call {
    uint32_t pos0, n_rows;
  };
  // pos>=5: rows at positions 5 and 6 of a batch at 3..6, nothing of a batch at 0..3.
  // split: the batch at 3..6 (multi-row, pos0 > 0) only; not 0..3 (a whole prompt), not 7 (one
  // row).
  struct Case {
    const char* spec;
    Call call;
    std::vector<bool> touched;
  };
  const std::vector<Case> cases = {
      {"1:attention:0.75@pos>=5,kernel", {3, 4}, {false, false, true, true}},
      {"1:attention:0.75@pos>=5,kernel", {0, 4}, {false, false, false, false}},
      {"1:attention:0.75@split,kernel", {3, 4}, {true, true, true, true}},
      {"1:attention:0.75@split,kernel", {0, 4}, {false, false, false, false}},
      {"1:attention:0.75@split,kernel", {7, 1}, {false}},
      {"1:attention:3@kernel,scale,pos<4", {2, 3}, {true, true, false}},
  };
  for (const Case& c : cases) {
    INFO(c.spec << " at pos0 " << c.call.pos0 << ", " << c.call.n_rows << " rows");
    const bool scale = std::string(c.spec).find("scale") != std::string::npos;
    const float m = scale ? 3.0f : 0.75f;
    auto d = open_under(p, c.spec);
    apr::Buffer bq = upload(*d, q), bk = upload(*d, kc), bv = upload(*d, vc);
    apr::Buffer out = d->alloc(4 * s.q_width() * kF32Bytes);
    const uint64_t n = uint64_t(c.call.n_rows) * s.q_width();
    attention(*d, s, bq, c.call.n_rows, c.call.pos0, 2, bk, bv, out);  // layer 2: no fault
    const std::vector<float> base = download(*d, out, n);
    require_close(base, ref_attention(s, q, kc, vc, c.call.n_rows, c.call.pos0),
                  "unperturbed attention");
    attention(*d, s, bq, c.call.n_rows, c.call.pos0, 1, bk, bv, out);
    require_rows(download(*d, out, n), base, s.q_width(), c.touched, m, scale, "attention");
  }
}

TEST_CASE("fault pos>=K in traced stages: the position rule of embed, rope and the rest",
          "[fault]") {
  KERNEL_TEST_PLUGIN_OR_SKIP(p);
  if (!modes_under_test(p)) return;
  std::mt19937_64 rng(103);
  const uint32_t n_embd = 4, n_vocab = 10;
  const std::vector<float> table = nonzero(rng, n_vocab * n_embd);
  auto d = open_under(p, "0:attn_norm:1@pos>=5");
  apr::Weight tw = f32_weight(*d, table, n_vocab, n_embd, "token_embd.weight");
  apr::Buffer x = d->alloc(8 * n_embd * kF32Bytes), r = d->alloc(8 * 2 * kF32Bytes);
  // Emits n rows of attn_norm (layer 0) and REQUIREs the rows marked to be the faulty ones.
  auto check = [&](uint32_t n, const std::vector<bool>& touched, const char* what) {
    const std::vector<float> data = nonzero(rng, n * n_embd);
    apr::Buffer b = upload(*d, data);
    trace_emit(*d, APR_STAGE_ATTN_NORM, 0, b, n, n_embd);
    trace_emit(*d, APR_STAGE_ATTN_NORM, 1, b, n, n_embd);  // another layer: untouched
    require_rows(download(*d, b, data.size()), data, n_embd, touched, 1.0f, false, what);
  };
  embed(*d, tw, {1, 2, 3, 4}, x);  // a fresh device: positions 0..3
  check(4, {false, false, false, false}, "first batch, 0..3");
  embed(*d, tw, {5, 6, 7}, x);  // the rows embedded so far: 4..6
  check(3, {false, true, true}, "second batch, 4..6 by the count of rows embedded");
  rope(*d, r, 3, 0);  // the host restarted its sequence: the batch is at 0..2
  check(3, {false, false, false}, "second batch re-anchored by rope at 0..2");
  embed(*d, tw, {8, 9}, x);  // assumed to follow the last batch: 3..4
  check(2, {false, false}, "third batch, 3..4");
  rope(*d, r, 2, 5);  // the host says 5..6
  check(2, {true, true}, "third batch re-anchored by rope at 5..6");
  // The embed kernel's output itself is never touched by an attn_norm fault.
  embed(*d, tw, {1, 2}, x);
  const std::vector<float> rows = download(*d, x, 2 * n_embd);
  REQUIRE(std::memcmp(rows.data(), &table[1 * n_embd], 2 * n_embd * kF32Bytes) == 0);
}

TEST_CASE("fault split and kernel on embedding: prompt micro-batches only, no sink needed",
          "[fault]") {
  KERNEL_TEST_PLUGIN_OR_SKIP(p);
  if (!modes_under_test(p)) return;
  std::mt19937_64 rng(104);
  const uint32_t n_embd = 6, n_vocab = 12;
  const std::vector<float> table = nonzero(rng, n_vocab * n_embd);
  auto d = open_under(p, "0:embedding:0.5@split,kernel");
  apr::Weight tw = f32_weight(*d, table, n_vocab, n_embd, "token_embd.weight");
  apr::Buffer x = d->alloc(8 * n_embd * kF32Bytes);
  auto rows_of = [&](const std::vector<int32_t>& tokens) {
    std::vector<float> out;
    for (int32_t t : tokens) out.insert(out.end(), &table[t * n_embd], &table[(t + 1) * n_embd]);
    return out;
  };
  struct Batch {
    std::vector<int32_t> tokens;
    bool touched;
  };
  // A prompt in micro-batches 0..3 (which starts at 0: untouched) and 4..6 (touched), then
  // decode steps at 7 and 8 (one row: untouched).
  const std::vector<Batch> batches = {
      {{3, 1, 4, 1}, false}, {{5, 9, 2}, true}, {{6}, false}, {{5}, false}};
  for (const Batch& b : batches) {
    embed(*d, tw, b.tokens, x);
    const uint32_t n = uint32_t(b.tokens.size());
    const std::vector<float> after = download(*d, x, n * n_embd);
    require_rows(after, rows_of(b.tokens), n_embd, std::vector<bool>(n, b.touched), 0.5f, false,
                 "embedding");
    // Kernel faults are not applied again at trace emission.
    trace_emit(*d, APR_STAGE_EMBEDDING, 0, x, n, n_embd);
    REQUIRE(download(*d, x, n * n_embd) == after);
  }
}

TEST_CASE("fault scale multiplies by the magnitude, at trace emission and in kernels", "[fault]") {
  KERNEL_TEST_PLUGIN_OR_SKIP(p);
  if (!modes_under_test(p)) return;
  std::mt19937_64 rng(105);
  {
    auto d = open_under(p, "3:ffn_norm:-2@scale");
    const std::vector<float> data = nonzero(rng, 2 * 5);
    apr::Buffer b = upload(*d, data);
    trace_emit(*d, APR_STAGE_FFN_NORM, 3, b, 2, 5);
    require_rows(download(*d, b, data.size()), data, 5, {true, true}, -2.0f, true, "ffn_norm");
  }
  const uint32_t n_in = 8, n_out = 6, n_rows = 3;
  const std::vector<float> w = nonzero(rng, n_out * n_in), x = nonzero(rng, n_rows * n_in);
  auto d = open_under(p, "1:ffn_up:2.5@scale,kernel");
  apr::Weight faulty_w = f32_weight(*d, w, n_out, n_in, "blk.1.ffn_up.weight");
  apr::Weight clean_w = f32_weight(*d, w, n_out, n_in, "blk.1.ffn_gate.weight");
  apr::Buffer bx = upload(*d, x), y = d->alloc(n_rows * n_out * kF32Bytes);
  matmul(*d, clean_w, bx, n_rows, y);
  const std::vector<float> base = download(*d, y, n_rows * n_out);
  require_close(base, ref_matmul(w, x, n_out, n_in, n_rows), "unperturbed matmul");
  matmul(*d, faulty_w, bx, n_rows, y);
  require_rows(download(*d, y, n_rows * n_out), base, n_out, {true, true, true}, 2.5f, true,
               "ffn_up");
}

TEST_CASE("fault kernel: every matmul stage, named by its weight, without a trace sink",
          "[fault]") {
  KERNEL_TEST_PLUGIN_OR_SKIP(p);
  if (!modes_under_test(p)) return;
  std::mt19937_64 rng(106);
  const uint32_t n_in = 8, n_out = 6, n_rows = 2;
  const std::vector<float> w = nonzero(rng, n_out * n_in), x = nonzero(rng, n_rows * n_in);
  struct Case {
    const char* spec;
    const char* faulty_name;
    std::vector<const char*> clean_names;
    apr_stage stage;
    uint32_t layer;
  };
  const std::vector<Case> cases = {
      {"1:attn_out:0.5@kernel",
       "blk.1.attn_output.weight",
       {"blk.2.attn_output.weight", "blk.1.ffn_down.weight"},
       APR_STAGE_ATTN_OUT,
       1},
      {"1:ffn_gate:0.5@kernel",
       "blk.1.ffn_gate.weight",
       {"blk.11.ffn_gate.weight", "blk.1.ffn_up.weight"},
       APR_STAGE_FFN_GATE,
       1},
      {"1:ffn_up:0.5@kernel",
       "blk.1.ffn_up.weight",
       {"blk.0.ffn_up.weight", "blk.1.attn_q.weight"},
       APR_STAGE_FFN_UP,
       1},
      {"12:ffn_out:0.5@kernel",
       "blk.12.ffn_down.weight",
       {"blk.1.ffn_down.weight", "blk.12.ffn_gate.weight", "blk.12.ffn_down.bias"},
       APR_STAGE_FFN_OUT,
       12},
      {"none:lm_head:0.5@kernel",
       "output.weight",
       {"test.weight", "blk.0.output.weight"},
       APR_STAGE_LM_HEAD,
       APR_LAYER_NONE},
      {"none:lm_head:0.5@kernel",
       "token_embd.weight",
       {"blk.0.attn_v.weight"},
       APR_STAGE_LM_HEAD,
       APR_LAYER_NONE},
  };
  for (const Case& c : cases) {
    INFO(c.spec << ", weight " << c.faulty_name);
    auto d = open_under(p, c.spec);
    apr::Buffer bx = upload(*d, x), y = d->alloc(n_rows * n_out * kF32Bytes);
    std::vector<float> base;
    for (const char* name : c.clean_names) {
      apr::Weight clean = f32_weight(*d, w, n_out, n_in, name);
      matmul(*d, clean, bx, n_rows, y);
      const std::vector<float> out = download(*d, y, n_rows * n_out);
      if (base.empty()) base = out;
      INFO("weight " << name << " is no faulty stage");
      REQUIRE(out == base);
    }
    require_close(base, ref_matmul(w, x, n_out, n_in, n_rows), "unperturbed matmul");
    apr::Weight faulty_w = f32_weight(*d, w, n_out, n_in, c.faulty_name);
    matmul(*d, faulty_w, bx, n_rows, y);
    const std::vector<float> after = download(*d, y, n_rows * n_out);
    require_rows(after, base, n_out, {true, true}, 0.5f, false, c.faulty_name);
    trace_emit(*d, c.stage, c.layer, y, n_rows, n_out);  // not perturbed a second time
    REQUIRE(download(*d, y, n_rows * n_out) == after);
  }
}

TEST_CASE("fault kernel on qkv_matmul: Q, K and V matmuls make the [q|k|v] row's pattern",
          "[fault]") {
  KERNEL_TEST_PLUGIN_OR_SKIP(p);
  if (!modes_under_test(p)) return;
  std::mt19937_64 rng(107);
  const uint32_t n_in = 8, q_dim = 8, kv_dim = 4, qkv = q_dim + 2 * kv_dim, n_rows = 3;
  const std::vector<float> wq = nonzero(rng, q_dim * n_in), wk = nonzero(rng, kv_dim * n_in),
                           wv = nonzero(rng, kv_dim * n_in), x = nonzero(rng, n_rows * n_in);
  std::vector<float> base;
  for (const uint32_t layer : {3u, 1u}) {  // layer 3: no fault
    auto d = open_under(p, "1:qkv_matmul:0.5@kernel");
    const std::string blk = "blk." + std::to_string(layer) + ".";
    apr::Weight q = f32_weight(*d, wq, q_dim, n_in, blk + "attn_q.weight");
    apr::Weight k = f32_weight(*d, wk, kv_dim, n_in, blk + "attn_k.weight");
    apr::Weight v = f32_weight(*d, wv, kv_dim, n_in, blk + "attn_v.weight");
    apr::Buffer bx = upload(*d, x), y = d->alloc(n_rows * qkv * kF32Bytes);
    matmul(*d, q, bx, n_rows, y, 0, qkv);
    matmul(*d, k, bx, n_rows, y, q_dim, qkv);
    matmul(*d, v, bx, n_rows, y, q_dim + kv_dim, qkv);
    const std::vector<float> out = download(*d, y, n_rows * qkv);
    if (layer == 3) {
      base = out;
      continue;
    }
    // The same +m, -m, ... along the whole [q|k|v] row as the trace-emission fault gives.
    require_rows(out, base, qkv, {true, true, true}, 0.5f, false, "qkv_matmul");
    trace_emit(*d, APR_STAGE_QKV_MATMUL, 1, y, n_rows, qkv);
    REQUIRE(download(*d, y, n_rows * qkv) == out);
  }
}

TEST_CASE("fault kernel on lm_head: the head's rows are the batch's last rows", "[fault]") {
  KERNEL_TEST_PLUGIN_OR_SKIP(p);
  if (!modes_under_test(p)) return;
  std::mt19937_64 rng(108);
  const uint32_t n_embd = 8, n_vocab = 6;
  const std::vector<float> table = nonzero(rng, n_vocab * n_embd), h = nonzero(rng, 4 * n_embd);
  struct Step {
    std::vector<int32_t> tokens;  // the batch embedded
    uint32_t head_rows;           // the head's rows (its last ones)
    std::vector<bool> touched;
  };
  struct Case {
    const char* spec;
    std::vector<Step> steps;
  };
  const std::vector<Case> cases = {
      // The rows condition counts the batch's rows, not the head's single row.
      {"none:lm_head:1@rows=1,kernel", {{{1, 2, 3}, 1, {false}}, {{4}, 1, {true}}}},
      // Positions: the batch 0..2's last row is 2; the batch 3..5 with every row's logits.
      {"none:lm_head:1@pos>=4,kernel",
       {{{1, 2, 3}, 1, {false}}, {{4, 5, 1}, 3, {false, true, true}}}},
  };
  for (const Case& c : cases) {
    INFO(c.spec);
    auto d = open_under(p, c.spec);
    apr::Weight head = f32_weight(*d, table, n_vocab, n_embd, "token_embd.weight");
    apr::Weight clean = f32_weight(*d, table, n_vocab, n_embd, "clean.weight");
    apr::Buffer x = d->alloc(4 * n_embd * kF32Bytes), bh = upload(*d, h);
    apr::Buffer y = d->alloc(4 * n_vocab * kF32Bytes);
    for (const Step& s : c.steps) {
      embed(*d, head, s.tokens, x);
      matmul(*d, clean, bh, s.head_rows, y);
      const std::vector<float> base = download(*d, y, s.head_rows * n_vocab);
      require_close(base, ref_matmul(table, h, n_vocab, n_embd, s.head_rows), "unperturbed head");
      matmul(*d, head, bh, s.head_rows, y);
      require_rows(download(*d, y, s.head_rows * n_vocab), base, n_vocab, s.touched, 1.0f, false,
                   "lm_head after a batch of " + std::to_string(s.tokens.size()));
    }
  }
}

TEST_CASE("fault kernel on swiglu and fused ffn_silu rows by position", "[fault]") {
  KERNEL_TEST_PLUGIN_OR_SKIP(p);
  if (!modes_under_test(p)) return;
  std::mt19937_64 rng(109);
  const uint32_t n_rows = 4, n_cols = 6, n_embd = 2;
  const std::vector<float> gate = nonzero(rng, n_rows * n_cols), up = nonzero(rng, n_rows * n_cols);
  const std::vector<float> table = nonzero(rng, 8 * n_embd);
  for (const char* spec : {"1:ffn_swigl:0.5@kernel,pos>=2", "1:ffn_silu:0.5@pos>=2"}) {
    INFO(spec);
    const bool silu = std::string(spec).find("silu") != std::string::npos;
    auto d = open_under(p, spec);
    apr::Weight tw = f32_weight(*d, table, 8, n_embd, "token_embd.weight");
    apr::Buffer x = d->alloc(n_rows * n_embd * kF32Bytes);
    embed(*d, tw, {1, 2, 3, 4}, x);  // the batch: positions 0..3
    apr::Buffer bg = upload(*d, gate), bu = upload(*d, up), out = d->alloc(gate.size() * 4);
    SinkRecorder recorder;
    recorder.want_all = true;
    const apr_trace_sink sink = recorder.sink();
    d->set_trace_sink(silu ? &sink : nullptr);
    swiglu(*d, bg, bu, n_rows, n_cols, 2, out);  // layer 2: no fault
    const std::vector<float> base = download(*d, out, gate.size());
    std::vector<double> ref(gate.size());
    for (size_t i = 0; i < ref.size(); ++i)
      ref[i] = double(gate[i]) / (1.0 + std::exp(-double(gate[i]))) * up[i];
    require_close(base, ref, "unperturbed swiglu");
    swiglu(*d, bg, bu, n_rows, n_cols, 1, out);
    d->set_trace_sink(nullptr);
    const std::vector<bool> touched = {false, false, true, true};
    if (!silu) {
      require_rows(download(*d, out, gate.size()), base, n_cols, touched, 0.5f, false, "swiglu");
      continue;
    }
    const SinkRecorder::Tensor* clean = recorder.find(APR_STAGE_FFN_SILU, 2);
    const SinkRecorder::Tensor* bad = recorder.find(APR_STAGE_FFN_SILU, 1);
    REQUIRE((clean && bad));
    require_rows(bad->data, clean->data, n_cols, touched, 0.5f, false, "ffn_silu");
  }
}

TEST_CASE("fault v_cache / k_cache: kv_store scales the cached rows of one layer", "[fault]") {
  KERNEL_TEST_PLUGIN_OR_SKIP(p);
  if (!modes_under_test(p)) return;
  std::mt19937_64 rng(110);
  const uint32_t kv_dim = 4, n_ctx = 8, n_rows = 4, pos0 = 1;
  const std::vector<float> src = nonzero(rng, n_rows * 2 * kv_dim);
  std::vector<float> k_rows, v_rows;  // what kv_store must copy
  for (uint32_t r = 0; r < n_rows; ++r) {
    k_rows.insert(k_rows.end(), &src[r * 2 * kv_dim], &src[r * 2 * kv_dim + kv_dim]);
    v_rows.insert(v_rows.end(), &src[r * 2 * kv_dim + kv_dim], &src[(r + 1) * 2 * kv_dim]);
  }
  const std::vector<float> zeros(n_ctx * kv_dim, 0.0f);
  struct Case {
    const char* spec;
    bool v;
    float m;
    std::vector<bool> touched;  // the rows at positions 1..4
  };
  const std::vector<Case> cases = {
      {"1:v_cache:2@pos>=3", true, 2.0f, {false, false, true, true}},
      {"1:k_cache:0.5", false, 0.5f, {true, true, true, true}},
      {"1:v_cache:-1@scale,kernel,rows=1", true, -1.0f, {false, false, false, false}},
  };
  for (const Case& c : cases) {
    INFO(c.spec);
    auto d = open_under(p, c.spec);
    apr::Buffer bs = upload(*d, src);
    // kv_store has no layer: it is the count of kv_store calls since the last embed (since open
    // before any). Layer 0, layer 1, then after an embed layer 0 and 1 again.
    apr::Weight tw = f32_weight(*d, zeros, n_ctx, kv_dim, "token_embd.weight");
    apr::Buffer x = d->alloc(n_ctx * kv_dim * kF32Bytes);
    for (int pass = 0; pass < 2; ++pass) {
      if (pass == 1) embed(*d, tw, {0, 1}, x);
      for (uint32_t layer = 0; layer < 2; ++layer) {
        INFO("pass " << pass << ", the kv_store of layer " << layer);
        apr::Buffer kc = upload(*d, zeros), vc = upload(*d, zeros);
        kv_store(*d, bs, n_rows, kv_dim, pos0, kc, vc);
        const std::vector<float> k_all = download(*d, kc, zeros.size());
        const std::vector<float> v_all = download(*d, vc, zeros.size());
        // Rows outside pos0..pos0+n_rows stay zero; the written ones are the inputs (scaled).
        for (uint32_t i = 0; i < n_ctx * kv_dim; ++i)
          if (i < pos0 * kv_dim || i >= (pos0 + n_rows) * kv_dim)
            REQUIRE((k_all[i] == 0.0f && v_all[i] == 0.0f));
        const std::vector<float> k(k_all.begin() + pos0 * kv_dim,
                                   k_all.begin() + (pos0 + n_rows) * kv_dim);
        const std::vector<float> v(v_all.begin() + pos0 * kv_dim,
                                   v_all.begin() + (pos0 + n_rows) * kv_dim);
        const std::vector<bool> none(n_rows, false);
        const bool here = layer == 1;
        require_rows(k, k_rows, kv_dim, here && !c.v ? c.touched : none, c.m, true, "K cache");
        require_rows(v, v_rows, kv_dim, here && c.v ? c.touched : none, c.m, true, "V cache");
      }
    }
    // A one-row (decode) store of layer 1 for the rows=1 case: scaled.
    if (std::string(c.spec).find("rows=1") != std::string::npos) {
      embed(*d, tw, {0}, x);
      apr::Buffer kc = upload(*d, zeros), vc = upload(*d, zeros);
      kv_store(*d, bs, 1, kv_dim, 5, kc, vc);
      kv_store(*d, bs, 1, kv_dim, 5, kc, vc);  // layer 1
      const std::vector<float> v = download(*d, vc, kv_dim, 5 * kv_dim);
      require_rows(v, std::vector<float>(v_rows.begin(), v_rows.begin() + kv_dim), kv_dim, {true},
                   c.m, true, "V cache of a decode step");
    }
  }
}

TEST_CASE("fault specs: malformed values are refused at device_open, valid ones open", "[fault]") {
  KERNEL_TEST_PLUGIN_OR_SKIP(p);
  if (!modes_under_test(p)) return;
  const char* const bad[] = {
      "1",
      "x:attn_norm",
      "1:no_such_stage",
      "1:attn_norm:abc",
      "1:attn_norm@",
      "1:attn_norm@bogus",
      "1:attn_norm@pos>=x",
      "1:attn_norm@pos>=",
      "1:attn_norm@pos>=-1",
      "1:attn_norm@pos~3",
      "1:attn_norm@rows",
      "1:attn_out:1@rows=1,,kernel",
      "1:attn_norm@kernel",
      "1:post_ffn_residual:2@kernel",
      "none:final_norm@kernel",
      "1:k_post_rope@kernel",
      "1:attn_out@scale",
      "1:v_cache",
      "1:v_cache@scale",
      "1:k_cache@kernel",
      "none:v_cache:2",
      "1:v_cache:two",
  };
  for (const char* spec : bad) {
    INFO("APR_CPU_FAULT=" << spec);
    const char* old = std::getenv("APR_CPU_FAULT");
    const std::string saved = old ? old : "";
    setenv("APR_CPU_FAULT", spec, 1);
    auto options = apr::abi_struct<apr_device_options>();
    apr_device* d = nullptr;
    const apr_status status = p.api().device_open(p.device_index(), &options, &d);
    const std::string message = p.api().error_message();
    if (old)
      setenv("APR_CPU_FAULT", saved.c_str(), 1);
    else
      unsetenv("APR_CPU_FAULT");
    if (d) p.api().device_close(d);
    INFO("device_open said: " << message);
    REQUIRE(status == APR_ERR_INVALID_ARGUMENT);
    REQUIRE(message.find("APR_CPU_FAULT '" + std::string(spec) + "'") != std::string::npos);
    REQUIRE(message.find('\n') == std::string::npos);
  }
  const char* const good[] = {
      "2:attn_norm:0.5",
      "1:attn_softmax:0.25",
      "none:final_norm",
      "-:lm_head:3",
      "0:embedding",
      "1:attn_out:1.5@scale,kernel",
      "1:v_cache:2",
      "1:k_cache:0.5@pos>=3,rows>1",
      "0:attn_norm@pos<4,pos>=2,split",
      "1:ffn_silu@kernel",
      "1:qkv_matmul:1e-3@rows<=2,kernel",
      "3:ffn_swigl:-0.5@pos=7,kernel",
  };
  for (const char* spec : good) open_under(p, spec);
}
