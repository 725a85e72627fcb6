// SPDX-License-Identifier: MIT
// A host that speaks only an older ABI: built against a frozen header (frozen/v1_0, v1_1 or
// v1_2), it loads a current plugin by path and drives it the way a 1.0/1.1/1.2 host does, with
// argument structs of the old sizes. The plugin must accept them, ignore what it cannot see, and
// compute the right results (checked against float64 references here). The structs that later
// versions grew (rms_norm and attention in 1.3) are followed by 0xFF bytes, so a plugin that reads
// a member past the old struct_size sees garbage (a NaN soft-cap, 2^32 - 1 groups) and fails.
//   frozen_host_v1_X PLUGIN.so   -> exit 0 on success, 1 with a message on the first failure,
//                                   77 when the plugin is not usable on this machine
#include <apr/plugin.h>
#include <dlfcn.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace {

const apr_plugin_api* g_api = nullptr;
apr_device* g_dev = nullptr;

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "frozen host 1.%d: %s%s%s\n", APR_ABI_MINOR, what.c_str(), g_api ? ": " : "",
               g_api ? g_api->error_message() : "");
  std::exit(1);
}
void ok(apr_status s, const char* what) {
  if (s != APR_OK) die(std::string(what) + " failed with status " + std::to_string(s));
}

apr_buffer* upload(const std::vector<float>& v) {
  apr_buffer* b = nullptr;
  ok(g_api->buffer_alloc(g_dev, v.size() * 4, &b), "buffer_alloc");
  ok(g_api->buffer_write(g_dev, b, 0, v.data(), v.size() * 4), "buffer_write");
  return b;
}
std::vector<float> download(apr_buffer* b, size_t n) {
  std::vector<float> v(n);
  ok(g_api->buffer_read(g_dev, b, 0, v.data(), n * 4), "buffer_read");
  return v;
}
void close_to(const std::vector<float>& got, const std::vector<double>& want, const char* what) {
  double num = 0, den = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    if (std::isnan(got[i])) die(std::string(what) + ": NaN in the output");
    num += (got[i] - want[i]) * (got[i] - want[i]);
    den += want[i] * want[i];
  }
  if (!(den > 0) || num / den > 1e-10)
    die(std::string(what) + ": normalised error " + std::to_string(num / den) + " > 1e-10");
}

int32_t sink_wants(void*, apr_stage stage, uint32_t) {
  return stage == APR_STAGE_FFN_SILU;
}
apr_status sink_emit(void* user, const apr_trace_tensor* t) {
  auto* seen = static_cast<int*>(user);
  if (t->stage == APR_STAGE_FFN_SILU && t->ndim == 2 && t->layer == 3) ++*seen;
  return APR_OK;
}

// An argument struct as an older host lays it out, with bytes of a newer member's garbage after it.
template <typename T>
struct Padded {
  T args;
  unsigned char tail[32];
  Padded() {
    std::memset(&args, 0, sizeof args);
    std::memset(tail, 0xFF, sizeof tail);
    args.struct_size = sizeof args;
  }
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s PLUGIN.so\n", argv[0]);
    return 2;
  }
  void* lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (!lib) die(std::string("cannot load: ") + dlerror());
  auto entry = reinterpret_cast<apr_plugin_entry_fn>(dlsym(lib, APR_PLUGIN_ENTRY_SYMBOL));
  if (!entry) die("no entry point");
  g_api = entry(APR_ABI_MAJOR, APR_ABI_MINOR);
  if (!g_api) die("the plugin refused this host's ABI version");
  // What a 1.0/1.1 host checks: the major, and that the table holds every 1.0 member.
  if (g_api->abi_major != APR_ABI_MAJOR) die("ABI major differs");
  if (g_api->struct_size < APR_PLUGIN_API_SIZE_V1_0) die("table smaller than ABI 1.0");

  apr_probe_result probe;
  std::memset(&probe, 0, sizeof probe);
  probe.struct_size = sizeof probe;
  ok(g_api->probe(&probe), "probe");
  if (probe.score == 0) {
    std::printf("SKIPPED: plugin not usable here: %s\n", probe.reason);
    return 77;  // CTest's SKIP_RETURN_CODE
  }
  apr_host host;
  std::memset(&host, 0, sizeof host);
  host.struct_size = sizeof host;
  host.abi_major = APR_ABI_MAJOR;
  host.abi_minor = APR_ABI_MINOR < g_api->abi_minor ? APR_ABI_MINOR : g_api->abi_minor;
  host.host_version = "frozen host";
  ok(g_api->init(&host), "init");
  apr_device_info info;
  std::memset(&info, 0, sizeof info);
  info.struct_size = sizeof info;
  ok(g_api->device_info(0, &info), "device_info");
  apr_device_options options;
  std::memset(&options, 0, sizeof options);
  options.struct_size = sizeof options;
  ok(g_api->device_open(0, &options, &g_dev), "device_open");

  std::mt19937_64 rng(11);
  std::uniform_real_distribution<float> u(-1, 1);
  auto random = [&](size_t n) {
    std::vector<float> v(n);
    for (float& x : v) x = u(rng);
    return v;
  };

  // matmul, F32 weights, with the old header's struct.
  const uint32_t n_out = 24, n_in = 40, rows = 3;
  std::vector<float> w = random(n_out * n_in), x = random(rows * n_in);
  apr_weight_desc desc;
  std::memset(&desc, 0, sizeof desc);
  desc.struct_size = sizeof desc;
  desc.type = APR_TYPE_F32;
  desc.n_cols = n_in;
  desc.n_rows = n_out;
  desc.data = w.data();
  desc.nbytes = w.size() * 4;
  desc.name = "frozen.weight";
  apr_weight* weight = nullptr;
  ok(g_api->weight_create(g_dev, &desc, &weight), "weight_create");
  apr_buffer* bx = upload(x);
  apr_buffer* by = upload(std::vector<float>(rows * n_out, NAN));
  apr_matmul_args mm;
  std::memset(&mm, 0, sizeof mm);
  mm.struct_size = sizeof mm;
  mm.weight = weight;
  mm.x = bx;
  mm.n_rows = rows;
  mm.y = by;
  ok(g_api->matmul(g_dev, &mm), "matmul");
  std::vector<double> want(rows * n_out);
  for (uint32_t r = 0; r < rows; ++r)
    for (uint32_t o = 0; o < n_out; ++o)
      for (uint32_t i = 0; i < n_in; ++i)
        want[r * n_out + o] += double(w[o * n_in + i]) * x[r * n_in + i];
  close_to(download(by, rows * n_out), want, "matmul");

  // rope with the old struct: the plugin must not read past it (a 1.0 struct has no factors).
  const uint32_t heads = 2, head_dim = 8, pos0 = 5;
  std::vector<float> q = random(rows * heads * head_dim);
  apr_buffer* bq = upload(q);
  apr_rope_args rope;
  std::memset(&rope, 0, sizeof rope);
  rope.struct_size = sizeof rope;
  rope.x = bq;
  rope.n_rows = rows;
  rope.n_heads = heads;
  rope.head_dim = head_dim;
  rope.n_rot = head_dim;
  rope.mode = APR_ROPE_HALF;
  rope.pos0 = pos0;
  rope.freq_base = 10000.0f;
  rope.freq_scale = 1.0f;
  ok(g_api->rope(g_dev, &rope), "rope");
  std::vector<double> rq(q.begin(), q.end());
  for (uint32_t r = 0; r < rows; ++r)
    for (uint32_t h = 0; h < heads; ++h)
      for (uint32_t i = 0; i < head_dim / 2; ++i) {
        const double th = (pos0 + r) * std::pow(10000.0, -2.0 * i / head_dim);
        double* v = rq.data() + (r * heads + h) * head_dim;
        const double x0 = v[i], x1 = v[i + head_dim / 2];
        v[i] = x0 * std::cos(th) - x1 * std::sin(th);
        v[i + head_dim / 2] = x0 * std::sin(th) + x1 * std::cos(th);
      }
  close_to(download(bq, q.size()), rq, "rope");

  // swiglu with a 1.0 trace sink: the plugin emits FFN_SILU through it.
  int seen = 0;
  apr_trace_sink sink;
  std::memset(&sink, 0, sizeof sink);
  sink.struct_size = sizeof sink;
  sink.user_data = &seen;
  sink.wants = sink_wants;
  sink.emit = sink_emit;
  ok(g_api->set_trace_sink(g_dev, &sink), "set_trace_sink");
  std::vector<float> gate = random(rows * n_out), up = random(rows * n_out);
  apr_buffer* bg = upload(gate);
  apr_buffer* bu = upload(up);
  apr_swiglu_args sw;
  std::memset(&sw, 0, sizeof sw);
  sw.struct_size = sizeof sw;
  sw.gate = bg;
  sw.up = bu;
  sw.out = bg;
  sw.n_rows = rows;
  sw.n_cols = n_out;
  sw.layer = 3;
  ok(g_api->swiglu(g_dev, &sw), "swiglu");
  ok(g_api->set_trace_sink(g_dev, nullptr), "set_trace_sink(NULL)");
  std::vector<double> sg(gate.size());
  for (size_t i = 0; i < gate.size(); ++i)
    sg[i] = gate[i] / (1.0 + std::exp(-double(gate[i]))) * up[i];
  close_to(download(bg, gate.size()), sg, "swiglu");
  if (seen != 1)
    die("FFN_SILU of layer 3 was emitted " + std::to_string(seen) + " times, not once");

  // rms_norm with the old struct: a 1.3 plugin must not see groups or a stride in what follows.
  const uint32_t cols = 24;
  std::vector<float> nx = random(rows * cols), nw = random(cols);
  apr_buffer* bnx = upload(nx);
  apr_buffer* bnw = upload(nw);
  apr_buffer* bno = upload(std::vector<float>(rows * cols, NAN));
  Padded<apr_rms_norm_args> rn;
  rn.args.x = bnx;
  rn.args.weight = bnw;
  rn.args.out = bno;
  rn.args.n_rows = rows;
  rn.args.n_cols = cols;
  rn.args.eps = 1e-5f;
  ok(g_api->rms_norm(g_dev, &rn.args), "rms_norm");
  std::vector<double> rr(rows * cols);
  for (uint32_t r = 0; r < rows; ++r) {
    double ss = 0;
    for (uint32_t c = 0; c < cols; ++c) ss += double(nx[r * cols + c]) * nx[r * cols + c];
    const double inv = 1.0 / std::sqrt(ss / cols + 1e-5);
    for (uint32_t c = 0; c < cols; ++c) rr[r * cols + c] = nx[r * cols + c] * inv * nw[c];
  }
  close_to(download(bno, rows * cols), rr, "rms_norm");

  // attention with the old struct over caches written directly: causal, grouped (2 query heads
  // per KV head), no window and no soft-cap whatever follows the struct.
  const uint32_t a_heads = 4, a_kv = 2, a_pos0 = 2, n_kv = a_pos0 + rows;
  const uint32_t q_width = a_heads * head_dim, kv_dim = a_kv * head_dim;
  std::vector<float> aq = random(rows * q_width), kc = random(n_kv * kv_dim),
                     vc = random(n_kv * kv_dim);
  apr_buffer* baq = upload(aq);
  apr_buffer* bkc = upload(kc);
  apr_buffer* bvc = upload(vc);
  apr_buffer* bao = upload(std::vector<float>(rows * q_width, NAN));
  Padded<apr_attention_args> at;
  at.args.q = baq;
  at.args.n_rows = rows;
  at.args.pos0 = a_pos0;
  at.args.n_heads = a_heads;
  at.args.n_kv_heads = a_kv;
  at.args.head_dim = head_dim;
  at.args.scale = 0.35f;
  at.args.k_cache = bkc;
  at.args.v_cache = bvc;
  at.args.out = bao;
  ok(g_api->attention(g_dev, &at.args), "attention");
  std::vector<double> ra(rows * q_width);
  for (uint32_t r = 0; r < rows; ++r)
    for (uint32_t h = 0; h < a_heads; ++h) {
      const uint32_t kvh = h / (a_heads / a_kv);
      std::vector<double> s(a_pos0 + r + 1);
      double top = -INFINITY, sum = 0;
      for (uint32_t j = 0; j < s.size(); ++j) {
        double dot = 0;
        for (uint32_t d = 0; d < head_dim; ++d)
          dot += double(aq[r * q_width + h * head_dim + d]) * kc[j * kv_dim + kvh * head_dim + d];
        s[j] = double(0.35f) * dot;
        top = std::max(top, s[j]);
      }
      for (double& x : s) sum += (x = std::exp(x - top));
      for (uint32_t j = 0; j < s.size(); ++j)
        for (uint32_t d = 0; d < head_dim; ++d)
          ra[r * q_width + h * head_dim + d] += s[j] / sum * vc[j * kv_dim + kvh * head_dim + d];
    }
  close_to(download(bao, rows * q_width), ra, "attention");

#if APR_ABI_MINOR >= 2
  // The capability query with this host's struct.
  if (g_api->struct_size >= APR_PLUGIN_API_SIZE_V1_2 && g_api->device_caps) {
    apr_device_caps caps;
    std::memset(&caps, 0, sizeof caps);
    caps.struct_size = sizeof caps;
    ok(g_api->device_caps(0, &caps), "device_caps");
    if (!(caps.weight_types & (uint64_t{1} << APR_TYPE_F32))) die("device_caps: no F32 weights");
  }
#endif

  for (apr_buffer* b : {bnx, bnw, bno, baq, bkc, bvc, bao}) g_api->buffer_free(g_dev, b);
  for (apr_buffer* b : {bx, by, bq, bg, bu}) g_api->buffer_free(g_dev, b);
  g_api->weight_free(g_dev, weight);
  g_api->device_close(g_dev);
  g_api->shutdown();
  std::printf("frozen host 1.%d: plugin '%s' (ABI %u.%u) passed\n", APR_ABI_MINOR, g_api->name,
              g_api->abi_major, g_api->abi_minor);
  return 0;
}
