// SPDX-License-Identifier: MIT
// Numerical checks of every CUDA kernel against float64 references written here (weights decoded
// by core/conformance/ref_dequant.hpp). They need a GPU: without one (and none expected) each test
// says so and returns; with APR_EXPECT_CUDA_GPU=1 a missing device is a failure.
//
// Tolerances: matmul and attention sum many f32 products, so their error bound is relative to
// the sum of absolute terms: |got - ref| <= 1e-5 * sum|terms| + 1e-6. Embedding lookups decode
// exactly (GGUF-FACTS §2.5), so they must equal the f64 value rounded to f32.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <cstdio>

#include "common/test_skip.hpp"
#include "conformance/ref_dequant.hpp"
#include "cuda/plugin_handle.hpp"

namespace {

using cuda_test::check;
using cuda_test::plugin;

apr_device* gpu() {
  apr_device* dev = cuda_test::device();
  if (!dev && cuda_test::gpu_expected())
    FAIL("a GPU is expected but probe says: " << cuda_test::probe().reason);
  if (!dev) {
    // The test program then exits 77 unless a test failed; CTest reports that as SKIPPED.
    apr_test::skip(std::string("no CUDA device: ") + cuda_test::probe().reason);
    WARN("SKIPPED: no CUDA device: " << cuda_test::probe().reason);
  }
  return dev;
}

// A device buffer that frees itself.
struct Buffer {
  apr_device* dev;
  apr_buffer* buf = nullptr;
  uint64_t bytes;
  Buffer(apr_device* d, uint64_t n_floats) : dev(d), bytes(n_floats * 4) {
    check(plugin().buffer_alloc(dev, bytes, &buf), "buffer_alloc");
  }
  Buffer(apr_device* d, const std::vector<float>& v) : Buffer(d, v.size()) { write(v); }
  ~Buffer() { plugin().buffer_free(dev, buf); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  void write(const std::vector<float>& v) {
    check(plugin().buffer_write(dev, buf, 0, v.data(), v.size() * 4), "buffer_write");
  }
  std::vector<float> read() const {
    std::vector<float> v(bytes / 4);
    check(plugin().buffer_read(dev, buf, 0, v.data(), bytes), "buffer_read");
    return v;
  }
};

struct Weight {
  apr_device* dev;
  apr_weight* w = nullptr;
  Weight(apr_device* d, uint32_t type, uint64_t n_rows, uint64_t n_cols,
         const std::vector<uint8_t>& data)
      : dev(d) {
    apr_weight_desc desc{};
    desc.struct_size = sizeof(desc);
    desc.type = type;
    desc.n_cols = n_cols;
    desc.n_rows = n_rows;
    desc.data = data.data();
    desc.nbytes = data.size();
    desc.name = "test.weight";
    check(plugin().weight_create(dev, &desc, &w), "weight_create");
  }
  ~Weight() { plugin().weight_free(dev, w); }
  Weight(const Weight&) = delete;
  Weight& operator=(const Weight&) = delete;
};

std::vector<float> random_floats(size_t n, std::mt19937_64& rng, float lo = -1.0f,
                                 float hi = 1.0f) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

constexpr float kSentinel = -12345.5f;

// Records what the plugin emits through the trace sink.
struct Recorder {
  std::vector<uint32_t> wanted_stages;
  struct Tensor {
    apr_stage stage;
    uint32_t layer;
    uint32_t ndim;
    uint64_t shape[4];
    std::vector<float> data;
  };
  std::vector<Tensor> got;
  static int32_t wants(void* self, apr_stage stage, uint32_t) {
    for (uint32_t s : static_cast<Recorder*>(self)->wanted_stages)
      if (s == stage) return 1;
    return 0;
  }
  static apr_status emit(void* self, const apr_trace_tensor* t) {
    Tensor copy{t->stage, t->layer, t->ndim, {}, {}};
    std::memcpy(copy.shape, t->shape, sizeof(copy.shape));
    copy.data.resize(t->nbytes / 4);
    std::memcpy(copy.data.data(), t->data, t->nbytes);
    static_cast<Recorder*>(self)->got.push_back(std::move(copy));
    return APR_OK;
  }
  apr_trace_sink sink() {
    apr_trace_sink s{};
    s.struct_size = sizeof(s);
    s.user_data = this;
    s.wants = &Recorder::wants;
    s.emit = &Recorder::emit;
    return s;
  }
};

}  // namespace

TEST_CASE("cuda matmul matches a float64 reference for every weight type and both paths") {
  apr_device* dev = gpu();
  if (!dev) return;
  std::mt19937_64 rng(20261125);
  const uint64_t n_out = 70;  // crosses the 64-wide tile and the 4-row warp groups
  for (uint32_t type : apr_test::ref_types()) {
    // Float types get a width that is not a multiple of 16 to exercise the partial chunk.
    const uint64_t k = apr_test::block_size(type) == 1 ? 77 : 512;
    const std::vector<uint8_t> blocks = apr_test::random_blocks(type, n_out * k, rng);
    const uint64_t row_bytes = blocks.size() / n_out;
    Weight w(dev, type, n_out, k, blocks);
    std::vector<double> dense(n_out * k);
    for (uint64_t o = 0; o < n_out; ++o)
      for (uint64_t i = 0; i < k; ++i)
        dense[o * k + i] = apr_test::ref_element(type, blocks.data() + o * row_bytes, i);
    const std::vector<float> bias = random_floats(n_out, rng);
    Buffer bias_buf(dev, bias);
    for (uint32_t n_rows : {1u, 3u, 6u, 9u, 70u}) {
      for (bool strided : {false, true}) {
        INFO(apr_test::ref_type_name(type) << " rows " << n_rows << (strided ? " strided" : ""));
        const uint32_t xs = strided ? uint32_t(k + 3) : 0, ys = strided ? uint32_t(n_out + 5) : 0;
        const uint64_t x_stride = xs ? xs : k, y_stride = ys ? ys : n_out;
        const std::vector<float> x = random_floats(n_rows * x_stride, rng);
        Buffer xb(dev, x);
        Buffer yb(dev, std::vector<float>(n_rows * y_stride, kSentinel));
        apr_matmul_args a{};
        a.struct_size = sizeof(a);
        a.weight = w.w;
        a.x = xb.buf;
        a.x_row_stride = xs;
        a.n_rows = n_rows;
        a.bias = strided ? bias_buf.buf : nullptr;
        a.y = yb.buf;
        a.y_row_stride = ys;
        check(plugin().matmul(dev, &a), "matmul");
        const std::vector<float> y = yb.read();
        for (uint32_t r = 0; r < n_rows; ++r) {
          for (uint64_t o = 0; o < y_stride; ++o) {
            const float got = y[r * y_stride + o];
            if (o >= n_out) {
              REQUIRE(got == kSentinel);  // the stride gap is not written
              continue;
            }
            double ref = strided ? bias[o] : 0.0, mag = std::fabs(ref);
            for (uint64_t i = 0; i < k; ++i) {
              ref += dense[o * k + i] * x[r * x_stride + i];
              mag += std::fabs(dense[o * k + i] * x[r * x_stride + i]);
            }
            INFO("row " << r << " out " << o << " ref " << ref << " got " << got);
            REQUIRE(std::fabs(got - ref) <= 1e-5 * mag + 1e-6);
          }
        }
      }
    }
  }
}

TEST_CASE("cuda embed decodes rows exactly for every weight type") {
  apr_device* dev = gpu();
  if (!dev) return;
  std::mt19937_64 rng(7);
  const uint64_t vocab = 41;
  for (uint32_t type : apr_test::ref_types()) {
    INFO(apr_test::ref_type_name(type));
    const uint64_t k = apr_test::block_size(type) == 1 ? 45 : 768;
    const std::vector<uint8_t> blocks = apr_test::random_blocks(type, vocab * k, rng);
    const uint64_t row_bytes = blocks.size() / vocab;
    Weight w(dev, type, vocab, k, blocks);
    const std::vector<int32_t> ids = {0, 40, 7, 7, 19};
    Buffer out(dev, ids.size() * k + 1);
    apr_embed_args a{};
    a.struct_size = sizeof(a);
    a.table = w.w;
    a.token_ids = ids.data();
    a.n_rows = uint32_t(ids.size());
    a.out = out.buf;
    a.out_offset = 4;  // an unaligned-to-16 offset
    check(plugin().embed(dev, &a), "embed");
    const std::vector<float> got = out.read();
    for (size_t r = 0; r < ids.size(); ++r)
      for (uint64_t i = 0; i < k; ++i) {
        const double ref = apr_test::ref_element(type, blocks.data() + ids[r] * row_bytes, i);
        INFO("row " << r << " col " << i);
        REQUIRE(got[1 + r * k + i] == static_cast<float>(ref));
      }
    const int32_t bad = int32_t(vocab);
    a.token_ids = &bad;
    a.n_rows = 1;
    CHECK(plugin().embed(dev, &a) == APR_ERR_INVALID_ARGUMENT);
    CHECK(std::string(plugin().error_message()).find("token id 41") != std::string::npos);
  }
}

TEST_CASE("cuda rms_norm, add and swiglu match float64 references") {
  apr_device* dev = gpu();
  if (!dev) return;
  std::mt19937_64 rng(11);
  const uint32_t rows = 5, cols = 1000;
  const std::vector<float> x = random_floats(rows * cols, rng, -3, 3);
  const std::vector<float> wt = random_floats(cols, rng, 0.5f, 1.5f);
  Buffer xb(dev, x), wb(dev, wt), ob(dev, rows * cols);
  apr_rms_norm_args n{};
  n.struct_size = sizeof(n);
  n.x = xb.buf;
  n.weight = wb.buf;
  n.out = ob.buf;
  n.n_rows = rows;
  n.n_cols = cols;
  n.eps = 1e-5f;
  check(plugin().rms_norm(dev, &n), "rms_norm");
  n.out = xb.buf;  // in place
  check(plugin().rms_norm(dev, &n), "rms_norm in place");
  const std::vector<float> out = ob.read(), in_place = xb.read();
  for (uint32_t r = 0; r < rows; ++r) {
    double ss = 0;
    for (uint32_t c = 0; c < cols; ++c) ss += double(x[r * cols + c]) * x[r * cols + c];
    const double scale = 1.0 / std::sqrt(ss / cols + 1e-5);
    for (uint32_t c = 0; c < cols; ++c) {
      const double ref = x[r * cols + c] * scale * wt[c];
      REQUIRE(std::fabs(out[r * cols + c] - ref) <= 1e-5 * std::fabs(ref) + 1e-6);
      REQUIRE(in_place[r * cols + c] == out[r * cols + c]);
    }
  }

  const std::vector<float> a = random_floats(3000, rng), b = random_floats(300, rng);
  Buffer ab(dev, a), bb(dev, b), sb(dev, 3000);
  apr_add_args ad{};
  ad.struct_size = sizeof(ad);
  ad.a = ab.buf;
  ad.b = bb.buf;
  ad.out = sb.buf;
  ad.n = 3000;
  ad.b_period = 300;
  check(plugin().add(dev, &ad), "add");
  const std::vector<float> sum = sb.read();
  for (size_t i = 0; i < sum.size(); ++i) REQUIRE(sum[i] == a[i] + b[i % 300]);

  const std::vector<float> g = random_floats(rows * cols, rng, -6, 6),
                           u = random_floats(rows * cols, rng);
  Buffer gb(dev, g), ub(dev, u);
  Recorder rec;
  rec.wanted_stages = {APR_STAGE_FFN_SILU};
  const apr_trace_sink sink = rec.sink();
  check(plugin().set_trace_sink(dev, &sink), "set_trace_sink");
  apr_swiglu_args sw{};
  sw.struct_size = sizeof(sw);
  sw.gate = gb.buf;
  sw.up = ub.buf;
  sw.out = gb.buf;  // out may equal gate
  sw.n_rows = rows;
  sw.n_cols = cols;
  sw.layer = 3;
  const apr_status st = plugin().swiglu(dev, &sw);
  check(plugin().set_trace_sink(dev, nullptr), "set_trace_sink");
  check(st, "swiglu");
  const std::vector<float> sg = gb.read();
  REQUIRE(rec.got.size() == 1);
  CHECK(rec.got[0].layer == 3);
  CHECK(rec.got[0].ndim == 2);
  CHECK(rec.got[0].shape[0] == rows);
  CHECK(rec.got[0].shape[1] == cols);
  for (size_t i = 0; i < sg.size(); ++i) {
    const double silu = g[i] / (1.0 + std::exp(-double(g[i])));
    REQUIRE(std::fabs(rec.got[0].data[i] - silu) <= 1e-5 * std::fabs(silu) + 1e-6);
    REQUIRE(std::fabs(sg[i] - silu * u[i]) <= 1e-5 * std::fabs(silu * u[i]) + 1e-6);
  }
}

TEST_CASE("cuda rope matches a float64 reference in both pairings") {
  apr_device* dev = gpu();
  if (!dev) return;
  std::mt19937_64 rng(5);
  const uint32_t rows = 3, heads = 4, hd = 64, n_rot = 48, stride = heads * hd + 8, pos0 = 3000;
  for (uint32_t mode : {uint32_t(APR_ROPE_INTERLEAVED), uint32_t(APR_ROPE_HALF)}) {
    INFO("mode " << mode);
    const std::vector<float> x = random_floats(rows * stride, rng);
    Buffer xb(dev, x);
    apr_rope_args a{};
    a.struct_size = sizeof(a);
    a.x = xb.buf;
    a.x_row_stride = stride;
    a.n_rows = rows;
    a.n_heads = heads;
    a.head_dim = hd;
    a.n_rot = n_rot;
    a.mode = mode;
    a.pos0 = pos0;
    a.freq_base = 1e6f;
    a.freq_scale = 0.5f;
    check(plugin().rope(dev, &a), "rope");
    const std::vector<float> got = xb.read();
    std::vector<double> ref(x.begin(), x.end());
    for (uint32_t r = 0; r < rows; ++r)
      for (uint32_t h = 0; h < heads; ++h)
        for (uint32_t i = 0; i < n_rot / 2; ++i) {
          const double theta = double(pos0 + r) * 0.5 * std::pow(1e6, -2.0 * i / n_rot);
          const size_t base = size_t(r) * stride + size_t(h) * hd;
          const size_t i0 = base + (mode == APR_ROPE_INTERLEAVED ? 2 * i : i);
          const size_t i1 = base + (mode == APR_ROPE_INTERLEAVED ? 2 * i + 1 : i + n_rot / 2);
          ref[i0] = x[i0] * std::cos(theta) - x[i1] * std::sin(theta);
          ref[i1] = x[i0] * std::sin(theta) + x[i1] * std::cos(theta);
        }
    for (size_t i = 0; i < got.size(); ++i) REQUIRE(std::fabs(got[i] - ref[i]) <= 2e-6);
  }
}

TEST_CASE("cuda kv_store and attention match a float64 causal GQA reference") {
  apr_device* dev = gpu();
  if (!dev) return;
  std::mt19937_64 rng(9);
  const uint32_t heads = 4, kv_heads = 2, hd = 80, kv_dim = kv_heads * hd, n_ctx = 300;
  const uint32_t pos0 = 150, rows = 3;  // 153 keys: more than one 128-key pass
  const float scale = 1.0f / std::sqrt(float(hd));
  const std::vector<float> k_hist = random_floats(size_t(n_ctx) * kv_dim, rng);
  const std::vector<float> v_hist = random_floats(size_t(n_ctx) * kv_dim, rng);
  Buffer kc(dev, n_ctx * kv_dim), vc(dev, n_ctx * kv_dim);
  // Fill the first pos0 rows in one call, then the new rows from a strided source.
  Buffer ks(dev, k_hist), vs(dev, v_hist);
  apr_kv_store_args st{};
  st.struct_size = sizeof(st);
  st.k = ks.buf;
  st.v = vs.buf;
  st.n_rows = pos0;
  st.kv_dim = kv_dim;
  st.k_cache = kc.buf;
  st.v_cache = vc.buf;
  check(plugin().kv_store(dev, &st), "kv_store history");
  const uint32_t src_stride = 2 * kv_dim;
  std::vector<float> k_new(rows * src_stride), v_new(rows * src_stride);
  for (uint32_t r = 0; r < rows; ++r)
    for (uint32_t c = 0; c < kv_dim; ++c) {
      k_new[r * src_stride + c] = k_hist[(pos0 + r) * kv_dim + c];
      v_new[r * src_stride + c] = v_hist[(pos0 + r) * kv_dim + c];
    }
  Buffer kn(dev, k_new), vn(dev, v_new);
  st.k = kn.buf;
  st.v = vn.buf;
  st.src_row_stride = src_stride;
  st.n_rows = rows;
  st.pos0 = pos0;
  check(plugin().kv_store(dev, &st), "kv_store new rows");
  st.pos0 = n_ctx - 1;  // two rows past the end of the cache
  st.n_rows = 2;
  CHECK(plugin().kv_store(dev, &st) == APR_ERR_INVALID_ARGUMENT);

  const std::vector<float> q = random_floats(rows * heads * hd, rng, -2, 2);
  Buffer qb(dev, q), ob(dev, rows * heads * hd);
  Recorder rec;
  rec.wanted_stages = {APR_STAGE_ATTN_SCORES, APR_STAGE_ATTN_SOFTMAX};
  const apr_trace_sink sink = rec.sink();
  check(plugin().set_trace_sink(dev, &sink), "set_trace_sink");
  apr_attention_args a{};
  a.struct_size = sizeof(a);
  a.q = qb.buf;
  a.n_rows = rows;
  a.pos0 = pos0;
  a.n_heads = heads;
  a.n_kv_heads = kv_heads;
  a.head_dim = hd;
  a.scale = scale;
  a.layer = 1;
  a.k_cache = kc.buf;
  a.v_cache = vc.buf;
  a.out = ob.buf;
  const apr_status status = plugin().attention(dev, &a);
  check(plugin().set_trace_sink(dev, nullptr), "set_trace_sink");
  check(status, "attention");
  const std::vector<float> out = ob.read();
  REQUIRE(rec.got.size() == 2);
  const uint32_t n_kv = pos0 + rows;
  for (const auto& t : rec.got) {
    CHECK(t.ndim == 3);
    CHECK(t.shape[0] == heads);
    CHECK(t.shape[1] == rows);
    CHECK(t.shape[2] == n_kv);
    REQUIRE(t.data.size() == size_t(heads) * rows * n_kv);
  }
  const auto& scores = rec.got[0].stage == APR_STAGE_ATTN_SCORES ? rec.got[0] : rec.got[1];
  const auto& probs = rec.got[0].stage == APR_STAGE_ATTN_SCORES ? rec.got[1] : rec.got[0];
  for (uint32_t h = 0; h < heads; ++h) {
    const uint32_t g = h / (heads / kv_heads);
    for (uint32_t r = 0; r < rows; ++r) {
      const uint32_t visible = pos0 + r + 1;
      std::vector<double> s(visible);
      double mx = -1e300;
      for (uint32_t t = 0; t < visible; ++t) {
        double dot = 0;
        for (uint32_t d = 0; d < hd; ++d)
          dot += double(q[(r * heads + h) * hd + d]) * k_hist[t * kv_dim + g * hd + d];
        s[t] = dot * scale;
        mx = std::max(mx, s[t]);
      }
      double sum = 0;
      for (double& v : s) sum += (v = std::exp(v - mx));
      const size_t row = (size_t(h) * rows + r) * n_kv;
      for (uint32_t t = 0; t < n_kv; ++t) {
        INFO("head " << h << " row " << r << " key " << t);
        if (t >= visible) {
          REQUIRE(scores.data[row + t] == 0.0f);
          REQUIRE(probs.data[row + t] == 0.0f);
          continue;
        }
        REQUIRE(std::fabs(probs.data[row + t] - s[t] / sum) <= 1e-5 * (s[t] / sum) + 1e-7);
        REQUIRE(std::fabs(scores.data[row + t] - (std::log(s[t]) + mx)) <= 1e-4);
      }
      for (uint32_t d = 0; d < hd; ++d) {
        double ref = 0, mag = 0;
        for (uint32_t t = 0; t < visible; ++t) {
          ref += s[t] / sum * v_hist[t * kv_dim + g * hd + d];
          mag += s[t] / sum * std::fabs(v_hist[t * kv_dim + g * hd + d]);
        }
        INFO("head " << h << " row " << r << " dim " << d);
        REQUIRE(std::fabs(out[(r * heads + h) * hd + d] - ref) <= 1e-5 * mag + 1e-6);
      }
    }
  }
}

TEST_CASE("cuda trace_emit copies only the requested view, and bad arguments are refused") {
  apr_device* dev = gpu();
  if (!dev) return;
  std::mt19937_64 rng(3);
  const std::vector<float> data = random_floats(4 * 10, rng);
  Buffer b(dev, data);
  Recorder rec;
  rec.wanted_stages = {APR_STAGE_LM_HEAD, APR_STAGE_ATTN_OUT};
  const apr_trace_sink sink = rec.sink();
  check(plugin().set_trace_sink(dev, &sink), "set_trace_sink");
  apr_trace_emit_args a{};
  a.struct_size = sizeof(a);
  a.stage = APR_STAGE_ATTN_OUT;
  a.layer = 2;
  a.buffer = b.buf;
  a.offset = 8;
  a.n_rows = 3;
  a.n_cols = 6;
  a.row_stride = 10;
  check(plugin().trace_emit(dev, &a), "trace_emit");
  a.stage = APR_STAGE_LM_HEAD;
  a.layer = APR_LAYER_NONE;
  a.n_rows = 1;
  check(plugin().trace_emit(dev, &a), "trace_emit lm head");
  a.stage = APR_STAGE_FFN_OUT;  // not wanted: nothing emitted
  check(plugin().trace_emit(dev, &a), "trace_emit unwanted");
  a.stage = APR_STAGE_ATTN_OUT;
  a.n_rows = 5;  // past the end of the buffer
  CHECK(plugin().trace_emit(dev, &a) == APR_ERR_INVALID_ARGUMENT);
  check(plugin().set_trace_sink(dev, nullptr), "set_trace_sink");
  REQUIRE(rec.got.size() == 2);
  CHECK(rec.got[0].ndim == 2);
  CHECK(rec.got[0].shape[0] == 3);
  CHECK(rec.got[0].shape[1] == 6);
  for (uint32_t r = 0; r < 3; ++r)
    for (uint32_t c = 0; c < 6; ++c) REQUIRE(rec.got[0].data[r * 6 + c] == data[2 + r * 10 + c]);
  CHECK(rec.got[1].ndim == 1);
  CHECK(rec.got[1].shape[0] == 6);
  CHECK(rec.got[1].data.size() == 6);

  std::vector<uint8_t> bytes(18 * 2);
  apr_weight_desc desc{};
  desc.struct_size = sizeof(desc);
  desc.type = APR_TYPE_Q4_0;
  desc.n_cols = 32;
  desc.n_rows = 2;
  desc.data = bytes.data();
  desc.nbytes = bytes.size() - 1;
  desc.name = "blk.0.attn_q.weight";
  apr_weight* w = nullptr;
  CHECK(plugin().weight_create(dev, &desc, &w) == APR_ERR_INVALID_ARGUMENT);
  CHECK(std::string(plugin().error_message()).find("blk.0.attn_q.weight") != std::string::npos);
  desc.type = 15;  // Q8_K never appears in model files
  CHECK(plugin().weight_create(dev, &desc, &w) == APR_ERR_UNSUPPORTED);
  CHECK(w == nullptr);
}
