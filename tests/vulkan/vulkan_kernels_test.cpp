// SPDX-License-Identifier: MIT
// Every kernel of the Vulkan plugin against float64 references on random data, run on lavapipe.
// Tolerances: weight decoding is exact in f32 (GGUF-FACTS.md 2.5), so embed allows 1e-6
// relative; sums allow 4e-6 of the sum of absolute terms, far above f32 accumulation error and
// far below any decoding or indexing mistake.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "conformance/ref_dequant.hpp"
#include "vk_test_plugin.hpp"

using vk_test::Buffer;
using vk_test::check;
using vk_test::device;
using vk_test::plugin;
using vk_test::random_floats;
using vk_test::Weight;

namespace {

std::vector<double> ref_row(uint32_t type, const std::vector<uint8_t>& blocks, uint64_t n_cols,
                            uint64_t row) {
  const uint64_t row_bytes = n_cols / apr_test::block_size(type) * apr_test::type_size(type);
  std::vector<double> out(n_cols);
  for (uint64_t c = 0; c < n_cols; ++c) {
    out[c] = apr_test::ref_element(type, blocks.data() + row * row_bytes, c);
  }
  return out;
}

// Records every emitted tensor; wants() answers from a stage mask.
struct CapturingSink {
  struct Tensor {
    apr_stage stage;
    uint32_t layer;
    std::vector<uint64_t> shape;
    std::vector<float> data;
  };
  uint64_t wanted_mask = 0;
  apr_status answer = APR_OK;
  std::vector<Tensor> tensors;

  apr_trace_sink sink() {
    apr_trace_sink s{};
    s.struct_size = sizeof s;
    s.user_data = this;
    s.wants = [](void* self, apr_stage stage, uint32_t) -> int32_t {
      return (static_cast<CapturingSink*>(self)->wanted_mask >> stage) & 1;
    };
    s.emit = [](void* self, const apr_trace_tensor* t) -> apr_status {
      auto* me = static_cast<CapturingSink*>(self);
      Tensor copy{t->stage, t->layer, {}, {}};
      for (uint32_t i = 0; i < t->ndim; ++i) copy.shape.push_back(t->shape[i]);
      copy.data.resize(t->nbytes / 4);
      std::memcpy(copy.data.data(), t->data, t->nbytes);
      me->tensors.push_back(std::move(copy));
      return me->answer;
    };
    return s;
  }
};

// Installs a sink for the lifetime of the scope.
struct ScopedSink {
  explicit ScopedSink(CapturingSink& capture) {
    const apr_trace_sink s = capture.sink();
    check(plugin().set_trace_sink(device(), &s), "set_trace_sink");
  }
  ~ScopedSink() { plugin().set_trace_sink(device(), nullptr); }
};

}  // namespace

TEST_CASE("vulkan matmul matches a float64 reference for every weight type") {
  for (uint32_t type : apr_test::ref_types()) {
    const uint64_t n_cols = 512, n_out = 19, n_rows = 6;
    const uint64_t x_stride = n_cols + 8, y_stride = n_out + 3;
    const uint64_t x_lead = 3, y_lead = 5, b_lead = 1;  // offsets in floats, deliberately odd
    INFO("type " << apr_test::ref_type_name(type));
    std::mt19937_64 rng(1000 + type);
    const std::vector<uint8_t> blocks = apr_test::random_blocks(type, n_cols * n_out, rng);
    const std::vector<float> x = random_floats(x_lead + n_rows * x_stride, 7 + type);
    const std::vector<float> bias = random_floats(b_lead + n_out, 9 + type);
    Weight w(type, n_cols, n_out, blocks);
    Buffer xb(x), bb(bias), yb(std::vector<float>(y_lead + n_rows * y_stride, -7.0f));

    apr_matmul_args a{};
    a.struct_size = sizeof a;
    a.weight = w.get();
    a.x = xb.get();
    a.x_offset = x_lead * 4;
    a.x_row_stride = uint32_t(x_stride);
    a.n_rows = uint32_t(n_rows);
    a.bias = bb.get();
    a.bias_offset = b_lead * 4;
    a.y = yb.get();
    a.y_offset = y_lead * 4;
    a.y_row_stride = uint32_t(y_stride);
    check(plugin().matmul(device(), &a), "matmul");
    const std::vector<float> y = yb.read();

    for (uint64_t o = 0; o < n_out; ++o) {
      const std::vector<double> wrow = ref_row(type, blocks, n_cols, o);
      for (uint64_t r = 0; r < n_rows; ++r) {
        double ref = bias[b_lead + o], magnitude = std::fabs(ref);
        for (uint64_t c = 0; c < n_cols; ++c) {
          const double term = wrow[c] * double(x[x_lead + r * x_stride + c]);
          ref += term;
          magnitude += std::fabs(term);
        }
        const double got = y[y_lead + r * y_stride + o];
        INFO("row " << r << " out " << o << " got " << got << " ref " << ref);
        REQUIRE(std::fabs(got - ref) <= 4e-6 * magnitude + 1e-30);
      }
    }
    // The stride gaps and the lead of y are untouched.
    CHECK(y[0] == -7.0f);
    CHECK(y[y_lead + n_out] == -7.0f);
  }
}

TEST_CASE("vulkan matmul handles odd widths, no bias and packed strides") {
  const uint64_t n_cols = 37, n_out = 130, n_rows = 1;
  std::mt19937_64 rng(77);
  const std::vector<uint8_t> blocks = apr_test::random_blocks(apr_test::kF32, n_cols * n_out, rng);
  const std::vector<float> x = random_floats(n_cols, 78);
  Weight w(APR_TYPE_F32, n_cols, n_out, blocks);
  Buffer xb(x), yb(n_out);
  apr_matmul_args a{};
  a.struct_size = sizeof a;
  a.weight = w.get();
  a.x = xb.get();
  a.n_rows = 1;
  a.y = yb.get();
  check(plugin().matmul(device(), &a), "matmul");
  const std::vector<float> y = yb.read();
  for (uint64_t o = 0; o < n_out; ++o) {
    const std::vector<double> wrow = ref_row(apr_test::kF32, blocks, n_cols, o);
    double ref = 0, magnitude = 0;
    for (uint64_t c = 0; c < n_cols; ++c) {
      ref += wrow[c] * x[c];
      magnitude += std::fabs(wrow[c] * x[c]);
    }
    REQUIRE(std::fabs(y[o] - ref) <= 4e-6 * magnitude);
  }
  (void)n_rows;
}

TEST_CASE("vulkan embed decodes table rows exactly for every weight type") {
  for (uint32_t type : apr_test::ref_types()) {
    // 45 columns make F16/BF16 rows 90 bytes: rows then start 2 bytes past a word boundary.
    const uint64_t n_cols = apr_test::block_size(type) == 1 ? 45 : 512, n_vocab = 7;
    INFO("type " << apr_test::ref_type_name(type));
    std::mt19937_64 rng(2000 + type);
    const std::vector<uint8_t> blocks = apr_test::random_blocks(type, n_cols * n_vocab, rng);
    Weight table(type, n_cols, n_vocab, blocks);
    const std::vector<int32_t> ids = {3, 0, 6, 3};
    Buffer out(2 + ids.size() * n_cols);
    apr_embed_args a{};
    a.struct_size = sizeof a;
    a.table = table.get();
    a.token_ids = ids.data();
    a.n_rows = uint32_t(ids.size());
    a.out = out.get();
    a.out_offset = 8;
    check(plugin().embed(device(), &a), "embed");
    const std::vector<float> got = out.read();
    for (size_t r = 0; r < ids.size(); ++r) {
      const std::vector<double> ref = ref_row(type, blocks, n_cols, uint64_t(ids[r]));
      for (uint64_t c = 0; c < n_cols; ++c) {
        INFO("row " << r << " col " << c);
        REQUIRE(std::fabs(got[2 + r * n_cols + c] - ref[c]) <= 1e-6 * std::fabs(ref[c]));
      }
    }
  }
}

TEST_CASE("vulkan weight and embed refuse bad input with a clear message") {
  std::mt19937_64 rng(5);
  const std::vector<uint8_t> blocks = apr_test::random_blocks(apr_test::kQ8_0, 64 * 2, rng);
  apr_weight_desc desc{};
  desc.struct_size = sizeof desc;
  desc.type = 9;  // Q8_1 is an activation type, never a weight
  desc.n_cols = 64;
  desc.n_rows = 2;
  desc.data = blocks.data();
  desc.nbytes = blocks.size();
  desc.name = "blk.0.bad.weight";
  apr_weight* w = nullptr;
  CHECK(plugin().weight_create(device(), &desc, &w) == APR_ERR_UNSUPPORTED);
  CHECK(std::string(plugin().error_message()).find("blk.0.bad.weight") != std::string::npos);
  desc.type = APR_TYPE_Q8_0;
  desc.nbytes -= 1;
  CHECK(plugin().weight_create(device(), &desc, &w) == APR_ERR_INVALID_ARGUMENT);
  desc.nbytes += 1;
  desc.n_cols = 48;  // not a multiple of 32
  CHECK(plugin().weight_create(device(), &desc, &w) == APR_ERR_INVALID_ARGUMENT);

  Weight table(APR_TYPE_Q8_0, 64, 2, blocks);
  Buffer out(64 * 2);
  const int32_t ids[] = {1, 2};
  apr_embed_args a{};
  a.struct_size = sizeof a;
  a.table = table.get();
  a.token_ids = ids;
  a.n_rows = 2;
  a.out = out.get();
  CHECK(plugin().embed(device(), &a) == APR_ERR_INVALID_ARGUMENT);
  CHECK(std::string(plugin().error_message()).find("token id 2") != std::string::npos);
  a.n_rows = 1;
  a.out_offset = 64 * 4 + 4;  // the row would run past the end
  CHECK(plugin().embed(device(), &a) == APR_ERR_INVALID_ARGUMENT);
  CHECK(std::string(plugin().error_message()).find("outside the buffer") != std::string::npos);
  a.struct_size = 8;
  CHECK(plugin().embed(device(), &a) == APR_ERR_INVALID_ARGUMENT);
}

TEST_CASE("vulkan rms_norm matches a float64 reference, also in place") {
  const uint32_t n_rows = 3, n_cols = 300;
  const float eps = 1e-5f;
  const std::vector<float> x = random_floats(n_rows * n_cols, 31, 3.0f);
  const std::vector<float> g = random_floats(n_cols, 32);
  for (bool in_place : {false, true}) {
    INFO("in place: " << in_place);
    Buffer xb(x), gb(g), ob(n_rows * n_cols);
    apr_rms_norm_args a{};
    a.struct_size = sizeof a;
    a.x = xb.get();
    a.weight = gb.get();
    a.out = in_place ? xb.get() : ob.get();
    a.n_rows = n_rows;
    a.n_cols = n_cols;
    a.eps = eps;
    check(plugin().rms_norm(device(), &a), "rms_norm");
    const std::vector<float> got = in_place ? xb.read() : ob.read();
    for (uint32_t r = 0; r < n_rows; ++r) {
      double ss = 0;
      for (uint32_t c = 0; c < n_cols; ++c) ss += double(x[r * n_cols + c]) * x[r * n_cols + c];
      const double scale = 1.0 / std::sqrt(ss / n_cols + double(eps));
      for (uint32_t c = 0; c < n_cols; ++c) {
        const double ref = double(x[r * n_cols + c]) * scale * g[c];
        REQUIRE(std::fabs(got[r * n_cols + c] - ref) <= 2e-6 * std::fabs(ref) + 1e-7);
      }
    }
  }
}

TEST_CASE("vulkan add broadcasts b with its period, also in place") {
  const uint64_t n = 1000;
  const std::vector<float> a = random_floats(n, 41), b = random_floats(n, 42);
  for (uint64_t period : {uint64_t(0), uint64_t(100)}) {
    Buffer ab(a), bb(b), ob(n);
    apr_add_args args{};
    args.struct_size = sizeof args;
    args.a = ab.get();
    args.b = bb.get();
    args.out = period ? ab.get() : ob.get();
    args.n = n;
    args.b_period = period;
    check(plugin().add(device(), &args), "add");
    const std::vector<float> got = period ? ab.read() : ob.read();
    for (uint64_t i = 0; i < n; ++i) {
      const double ref = double(a[i]) + b[period ? i % period : i];
      REQUIRE(std::fabs(got[i] - ref) <= 1e-7 * std::fabs(ref) + 1e-7);
    }
  }
}

TEST_CASE("vulkan rope matches a float64 reference in both pairings") {
  const uint32_t n_rows = 5, n_heads = 3, head_dim = 16, n_rot = 12, pos0 = 7;
  const uint32_t stride = n_heads * head_dim + 4;
  const float base = 10000.0f, freq_scale = 0.5f;
  const std::vector<float> x = random_floats(n_rows * stride, 51);
  for (uint32_t mode : {uint32_t(APR_ROPE_INTERLEAVED), uint32_t(APR_ROPE_HALF)}) {
    INFO("mode " << mode);
    Buffer xb(x);
    apr_rope_args a{};
    a.struct_size = sizeof a;
    a.x = xb.get();
    a.x_row_stride = stride;
    a.n_rows = n_rows;
    a.n_heads = n_heads;
    a.head_dim = head_dim;
    a.n_rot = n_rot;
    a.mode = mode;
    a.pos0 = pos0;
    a.freq_base = base;
    a.freq_scale = freq_scale;
    check(plugin().rope(device(), &a), "rope");
    const std::vector<float> got = xb.read();
    std::vector<double> ref(x.begin(), x.end());
    for (uint32_t r = 0; r < n_rows; ++r) {
      for (uint32_t h = 0; h < n_heads; ++h) {
        for (uint32_t i = 0; i < n_rot / 2; ++i) {
          const double theta =
              double(pos0 + r) * freq_scale * std::pow(double(base), -2.0 * i / n_rot);
          const uint32_t base_idx = r * stride + h * head_dim;
          const uint32_t i0 = mode == APR_ROPE_HALF ? i : 2 * i;
          const uint32_t i1 = mode == APR_ROPE_HALF ? i + n_rot / 2 : 2 * i + 1;
          const double x0 = x[base_idx + i0], x1 = x[base_idx + i1];
          ref[base_idx + i0] = x0 * std::cos(theta) - x1 * std::sin(theta);
          ref[base_idx + i1] = x0 * std::sin(theta) + x1 * std::cos(theta);
        }
      }
    }
    for (size_t i = 0; i < x.size(); ++i) {
      INFO("element " << i);
      REQUIRE(std::fabs(got[i] - ref[i]) <= 1e-6);
    }
  }
}

TEST_CASE("vulkan kv_store and attention match a float64 causal GQA reference, with traces") {
  const uint32_t n_heads = 4, n_kv_heads = 2, head_dim = 32, pos0 = 70, n_rows = 3;
  const uint32_t kv_dim = n_kv_heads * head_dim, n_ctx = 80, n_kv = pos0 + n_rows;
  const uint32_t src_stride = kv_dim + 2, q_stride = n_heads * head_dim + 6;
  const float scale = 1.0f / std::sqrt(float(head_dim));
  const std::vector<float> k_all = random_floats(n_kv * src_stride, 61);
  const std::vector<float> v_all = random_floats(n_kv * src_stride, 62);
  const std::vector<float> q = random_floats(n_rows * q_stride, 63, 2.0f);
  Buffer kb(k_all), vb(v_all), kc(n_ctx * kv_dim), vc(n_ctx * kv_dim), qb(q);
  Buffer out(n_rows * n_heads * head_dim);

  // The history rows in one call, then the current rows in a second, as a session would.
  for (auto [first, count] : {std::pair<uint32_t, uint32_t>{0, pos0}, {pos0, n_rows}}) {
    apr_kv_store_args s{};
    s.struct_size = sizeof s;
    s.k = kb.get();
    s.v = vb.get();
    s.k_offset = s.v_offset = uint64_t(first) * src_stride * 4;
    s.src_row_stride = src_stride;
    s.n_rows = count;
    s.kv_dim = kv_dim;
    s.pos0 = first;
    s.k_cache = kc.get();
    s.v_cache = vc.get();
    check(plugin().kv_store(device(), &s), "kv_store");
  }

  CapturingSink capture;
  capture.wanted_mask = (1u << APR_STAGE_ATTN_SCORES) | (1u << APR_STAGE_ATTN_SOFTMAX);
  {
    ScopedSink scoped(capture);
    apr_attention_args a{};
    a.struct_size = sizeof a;
    a.q = qb.get();
    a.q_row_stride = q_stride;
    a.n_rows = n_rows;
    a.pos0 = pos0;
    a.n_heads = n_heads;
    a.n_kv_heads = n_kv_heads;
    a.head_dim = head_dim;
    a.scale = scale;
    a.layer = 4;
    a.k_cache = kc.get();
    a.v_cache = vc.get();
    a.out = out.get();
    check(plugin().attention(device(), &a), "attention");
  }
  const std::vector<float> got = out.read();
  REQUIRE(capture.tensors.size() == 2);
  for (const auto& t : capture.tensors) {
    CHECK(t.layer == 4u);
    CHECK(t.shape == std::vector<uint64_t>{n_heads, n_rows, n_kv});
  }

  for (uint32_t r = 0; r < n_rows; ++r) {
    for (uint32_t h = 0; h < n_heads; ++h) {
      const uint32_t g = h / (n_heads / n_kv_heads);
      const uint32_t visible = pos0 + r + 1;
      std::vector<double> s(visible);
      double max_s = -1e300;
      for (uint32_t t = 0; t < visible; ++t) {
        double dot = 0;
        for (uint32_t d = 0; d < head_dim; ++d) {
          dot +=
              double(q[r * q_stride + h * head_dim + d]) * k_all[t * src_stride + g * head_dim + d];
        }
        s[t] = double(scale) * dot;
        max_s = std::max(max_s, s[t]);
      }
      double sum = 0;
      for (double v : s) sum += std::exp(v - max_s);
      for (uint32_t t = 0; t < n_kv; ++t) {
        const size_t at = (size_t(h) * n_rows + r) * n_kv + t;
        const double ref_s = t < visible ? s[t] : 0.0;
        const double ref_p = t < visible ? std::exp(s[t] - max_s) / sum : 0.0;
        INFO("head " << h << " row " << r << " key " << t);
        REQUIRE(std::fabs(capture.tensors[0].data[at] - ref_s) <= 2e-6 * (1 + std::fabs(ref_s)));
        REQUIRE(std::fabs(capture.tensors[1].data[at] - ref_p) <= 2e-6 * ref_p + 1e-9);
      }
      for (uint32_t d = 0; d < head_dim; ++d) {
        double ref = 0, magnitude = 0;
        for (uint32_t t = 0; t < visible; ++t) {
          const double term =
              std::exp(s[t] - max_s) / sum * v_all[t * src_stride + g * head_dim + d];
          ref += term;
          magnitude += std::fabs(term);
        }
        INFO("head " << h << " row " << r << " dim " << d);
        REQUIRE(std::fabs(got[(r * n_heads + h) * head_dim + d] - ref) <= 4e-6 * magnitude + 1e-9);
      }
    }
  }
}

TEST_CASE("vulkan swiglu matches a float64 reference and emits FFN_SILU only when asked") {
  const uint32_t n_rows = 4, n_cols = 333;
  const std::vector<float> gate = random_floats(n_rows * n_cols, 71, 6.0f);
  const std::vector<float> up = random_floats(n_rows * n_cols, 72, 2.0f);
  for (bool traced : {false, true}) {
    INFO("traced: " << traced);
    CapturingSink capture;
    capture.wanted_mask = traced ? (1u << APR_STAGE_FFN_SILU) : 0;
    Buffer gb(gate), ub(up);
    {
      ScopedSink scoped(capture);
      apr_swiglu_args a{};
      a.struct_size = sizeof a;
      a.gate = gb.get();
      a.up = ub.get();
      a.out = gb.get();  // in place over gate
      a.n_rows = n_rows;
      a.n_cols = n_cols;
      a.layer = 2;
      check(plugin().swiglu(device(), &a), "swiglu");
    }
    const std::vector<float> got = gb.read();
    REQUIRE(capture.tensors.size() == (traced ? 1u : 0u));
    for (size_t i = 0; i < gate.size(); ++i) {
      const double silu = double(gate[i]) / (1.0 + std::exp(-double(gate[i])));
      REQUIRE(std::fabs(got[i] - silu * up[i]) <= 2e-6 * std::fabs(silu * up[i]) + 1e-7);
      if (traced)
        REQUIRE(std::fabs(capture.tensors[0].data[i] - silu) <= 2e-6 * std::fabs(silu) + 1e-7);
    }
    if (traced) {
      CHECK(capture.tensors[0].stage == uint32_t(APR_STAGE_FFN_SILU));
      CHECK(capture.tensors[0].shape == std::vector<uint64_t>{n_rows, n_cols});
    }
  }
}

TEST_CASE("vulkan trace_emit copies only the requested view, and a refusing sink aborts") {
  const uint32_t n_rows = 3, n_cols = 5, stride = 8;
  const std::vector<float> data = random_floats(2 + n_rows * stride, 81);
  Buffer b(data);
  CapturingSink capture;
  capture.wanted_mask = (1u << APR_STAGE_FFN_OUT) | (1u << APR_STAGE_LM_HEAD);
  ScopedSink scoped(capture);
  apr_trace_emit_args a{};
  a.struct_size = sizeof a;
  a.stage = APR_STAGE_FFN_OUT;
  a.layer = 1;
  a.buffer = b.get();
  a.offset = 8;
  a.n_rows = n_rows;
  a.n_cols = n_cols;
  a.row_stride = stride;
  check(plugin().trace_emit(device(), &a), "trace_emit");
  REQUIRE(capture.tensors.size() == 1);
  CHECK(capture.tensors[0].shape == std::vector<uint64_t>{n_rows, n_cols});
  for (uint32_t r = 0; r < n_rows; ++r) {
    for (uint32_t c = 0; c < n_cols; ++c) {
      REQUIRE(capture.tensors[0].data[r * n_cols + c] == data[2 + r * stride + c]);
    }
  }
  a.stage = APR_STAGE_ATTN_OUT;  // not wanted: nothing emitted
  check(plugin().trace_emit(device(), &a), "trace_emit");
  CHECK(capture.tensors.size() == 1);
  a.stage = APR_STAGE_LM_HEAD;
  a.layer = APR_LAYER_NONE;
  a.n_rows = 1;
  check(plugin().trace_emit(device(), &a), "trace_emit");
  REQUIRE(capture.tensors.size() == 2);
  CHECK(capture.tensors[1].shape == std::vector<uint64_t>{n_cols});
  capture.answer = APR_ERR_INTERNAL;
  CHECK(plugin().trace_emit(device(), &a) == APR_ERR_ABORTED);
  a.offset = data.size() * 4;  // past the end
  capture.answer = APR_OK;
  CHECK(plugin().trace_emit(device(), &a) == APR_ERR_INVALID_ARGUMENT);
}

TEST_CASE("vulkan runs a long chain of kernels batched, with one read at the end") {
  // 300 dependent adds: each must see the previous one's result through the barriers.
  const uint64_t n = 257;
  const std::vector<float> one = random_floats(n, 91);
  Buffer acc(std::vector<float>(n, 0.0f)), inc(one);
  apr_add_args a{};
  a.struct_size = sizeof a;
  a.a = acc.get();
  a.b = inc.get();
  a.out = acc.get();
  a.n = n;
  for (int i = 0; i < 300; ++i) check(plugin().add(device(), &a), "add");
  const std::vector<float> got = acc.read();
  for (uint64_t i = 0; i < n; ++i)
    REQUIRE(std::fabs(got[i] - 300.0 * one[i]) <= 1e-4 * std::fabs(one[i]) * 300);
}

TEST_CASE("vulkan matmul and add cover grids wider than one dispatch dimension") {
  // 70000 outputs need more workgroups than the 65535 one grid dimension is guaranteed to hold.
  const uint64_t n_cols = 32, n_out = 70000;
  std::mt19937_64 rng(101);
  const std::vector<uint8_t> blocks = apr_test::random_blocks(apr_test::kQ4_0, n_cols * n_out, rng);
  const std::vector<float> x = random_floats(n_cols, 102);
  Weight w(APR_TYPE_Q4_0, n_cols, n_out, blocks);
  Buffer xb(x), yb(n_out);
  apr_matmul_args a{};
  a.struct_size = sizeof a;
  a.weight = w.get();
  a.x = xb.get();
  a.n_rows = 1;
  a.y = yb.get();
  check(plugin().matmul(device(), &a), "matmul");
  const std::vector<float> y = yb.read();
  for (uint64_t o = 0; o < n_out; ++o) {
    const std::vector<double> wrow = ref_row(apr_test::kQ4_0, blocks, n_cols, o);
    double ref = 0, magnitude = 0;
    for (uint64_t c = 0; c < n_cols; ++c) {
      ref += wrow[c] * x[c];
      magnitude += std::fabs(wrow[c] * x[c]);
    }
    INFO("out " << o);
    REQUIRE(std::fabs(y[o] - ref) <= 4e-6 * magnitude + 1e-30);
  }

  // 2^24 + 300 elements: 65537 workgroups of 256.
  const uint64_t n = (uint64_t(1) << 24) + 300;
  std::vector<float> av(n), bv(n);
  for (uint64_t i = 0; i < n; ++i) {
    av[i] = float(i % 1000);
    bv[i] = float(i / 1000);
  }
  Buffer ab(av), bb(bv);
  apr_add_args add{};
  add.struct_size = sizeof add;
  add.a = ab.get();
  add.b = bb.get();
  add.out = ab.get();
  add.n = n;
  check(plugin().add(device(), &add), "add");
  const std::vector<float> sum = ab.read();
  uint64_t wrong = 0;
  for (uint64_t i = 0; i < n; ++i) wrong += sum[i] != float(i % 1000) + float(i / 1000);
  CHECK(wrong == 0u);
}

TEST_CASE("vulkan matmul stays accurate over long rows") {
  // Qwen2.5-0.5B's ffn_down width: 4864 terms per output.
  const uint64_t n_cols = 4864, n_out = 9, n_rows = 5;
  std::mt19937_64 rng(111);
  const std::vector<uint8_t> blocks = apr_test::random_blocks(apr_test::kQ6_K, n_cols * n_out, rng);
  const std::vector<float> x = random_floats(n_rows * n_cols, 112);
  Weight w(APR_TYPE_Q6_K, n_cols, n_out, blocks);
  Buffer xb(x), yb(n_rows * n_out);
  apr_matmul_args a{};
  a.struct_size = sizeof a;
  a.weight = w.get();
  a.x = xb.get();
  a.n_rows = uint32_t(n_rows);
  a.y = yb.get();
  check(plugin().matmul(device(), &a), "matmul");
  const std::vector<float> y = yb.read();
  for (uint64_t o = 0; o < n_out; ++o) {
    const std::vector<double> wrow = ref_row(apr_test::kQ6_K, blocks, n_cols, o);
    for (uint64_t r = 0; r < n_rows; ++r) {
      double ref = 0, magnitude = 0;
      for (uint64_t c = 0; c < n_cols; ++c) {
        ref += wrow[c] * x[r * n_cols + c];
        magnitude += std::fabs(wrow[c] * x[r * n_cols + c]);
      }
      INFO("row " << r << " out " << o << " got " << y[r * n_out + o] << " ref " << ref);
      REQUIRE(std::fabs(y[r * n_out + o] - ref) <= 4e-6 * magnitude);
    }
  }
}
