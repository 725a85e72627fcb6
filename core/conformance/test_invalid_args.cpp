// SPDX-License-Identifier: MIT
// Bad arguments come back as an error status with a message; nothing crashes and no buffer is
// written outside its bounds.
#include <random>

#include "plugin_fixture.hpp"
#include "reference_ops.hpp"

using namespace kernel_tests;

namespace {

void require_error(Plugin& p, apr_status status, const char* what) {
  INFO(what << ": status " << status << ", message '" << p.api().error_message() << "'");
  REQUIRE(status != APR_OK);
  REQUIRE(p.api().error_message() != nullptr);
  REQUIRE(std::strlen(p.api().error_message()) > 0);
}

}  // namespace

TEST_CASE("weight_create rejects bad descriptions", "[invalid]") {
  KERNEL_TEST_PLUGIN_OR_SKIP(p);
  std::vector<uint8_t> bytes(4 * 34, 0);
  apr_weight* w = nullptr;
  apr_weight_desc desc{sizeof desc, 16 /* IQ2_XXS */, 0,  256,
                       1,           bytes.data(),     66, "blk.0.attn_q.weight"};
  const apr_status unsupported = p.api().weight_create(p.device(), &desc, &w);
  require_error(p, unsupported, "unsupported type");
  REQUIRE(unsupported == APR_ERR_UNSUPPORTED);
  REQUIRE(std::string(p.api().error_message()).find("blk.0.attn_q.weight") != std::string::npos);
  REQUIRE(w == nullptr);

  desc = {sizeof desc, APR_TYPE_Q8_0, 0, 48, 1, bytes.data(), 34, "t"};  // 48 % 32 != 0
  require_error(p, p.api().weight_create(p.device(), &desc, &w), "n_cols not a block multiple");
  desc = {sizeof desc, APR_TYPE_Q8_0, 0, 64, 2, bytes.data(), 100, "t"};  // nbytes should be 136
  require_error(p, p.api().weight_create(p.device(), &desc, &w), "nbytes mismatch");
  desc = {sizeof desc, APR_TYPE_Q8_0, 0, 64, 2, nullptr, 136, "t"};
  require_error(p, p.api().weight_create(p.device(), &desc, &w), "NULL data");
  desc = {sizeof desc, APR_TYPE_Q8_0, 0, 64, uint64_t{1} << 62, bytes.data(), 136, "t"};
  require_error(p, p.api().weight_create(p.device(), &desc, &w), "overflowing size");
  desc = {4, APR_TYPE_Q8_0, 0, 64, 2, bytes.data(), 136, "t"};
  require_error(p, p.api().weight_create(p.device(), &desc, &w), "struct_size too small");
  require_error(p, p.api().weight_create(p.device(), nullptr, &w), "NULL desc");
}

TEST_CASE("kernels reject NULL, undersized and out-of-bounds arguments", "[invalid]") {
  KERNEL_TEST_PLUGIN_OR_SKIP(p);
  std::mt19937_64 rng(61);
  const uint64_t n_out = 8, n_cols = 64;
  const uint32_t type = any_claimed_type(p);
  Weight weight(p, type, n_out, n_cols, apr_test::random_blocks(type, n_out * n_cols, rng), false);
  GuardedBuffer x(p, n_cols, 1.0f), y(p, n_out, 2.0f);
  const apr_matmul_args good{sizeof(apr_matmul_args),
                             weight.get(),
                             x.get(),
                             x.offset(),
                             0,
                             1,
                             nullptr,
                             0,
                             y.get(),
                             y.offset(),
                             0};

  require_error(p, p.api().matmul(p.device(), nullptr), "NULL args");
  apr_matmul_args a = good;
  a.struct_size = sizeof(size_t);
  require_error(p, p.api().matmul(p.device(), &a), "struct_size too small");
  a = good;
  a.weight = nullptr;
  require_error(p, p.api().matmul(p.device(), &a), "NULL weight");
  a = good;
  a.x = nullptr;
  require_error(p, p.api().matmul(p.device(), &a), "NULL x");
  a = good;
  a.n_rows = 4;  // even counting the guards, x's buffer holds under 3 rows
  require_error(p, p.api().matmul(p.device(), &a), "x too small");
  a = good;
  a.y_offset = GuardedBuffer::kFrontGuard + n_out * 4 + GuardedBuffer::kBackGuard - 4;
  require_error(p, p.api().matmul(p.device(), &a), "y past the end");
  a = good;
  a.x_offset = 2;
  require_error(p, p.api().matmul(p.device(), &a), "unaligned offset");
  a = good;
  a.x_offset = UINT64_MAX - 3;
  require_error(p, p.api().matmul(p.device(), &a), "overflowing offset");
  a = good;
  a.x_row_stride = 3;
  a.n_rows = 1;
  require_error(p, p.api().matmul(p.device(), &a), "stride below n_cols");
  require_error(p, p.api().matmul(nullptr, &good), "NULL device");

  apr_rope_args rope{sizeof rope, x.get(), x.offset(),    0, 1,        4,
                     16,          15,      APR_ROPE_HALF, 0, 10000.0f, 1.0f};
  require_error(p, p.api().rope(p.device(), &rope), "odd n_rot");
  rope.n_rot = 16;
  rope.mode = 7;
  require_error(p, p.api().rope(p.device(), &rope), "unknown rope mode");

  apr_attention_args att{sizeof att, x.get(), x.offset(), 0,       1,       0,       3,         2,
                         8,          0.3f,    0,          x.get(), x.get(), y.get(), y.offset()};
  require_error(p, p.api().attention(p.device(), &att), "n_heads not a multiple of n_kv_heads");

  // An exact 8-float buffer (no guards) for operands that must be n_cols long.
  apr_buffer* small = nullptr;
  REQUIRE_APR_OK(p, p.api().buffer_alloc(p.device(), 8 * 4, &small));
  apr_add_args add{sizeof add, x.get(), x.offset(), small, 0, x.get(), x.offset(), n_cols, 0};
  require_error(p, p.api().add(p.device(), &add), "add past the end of b");
  add.b_period = 8;
  REQUIRE_APR_OK(p, p.api().add(p.device(), &add));  // the same b, read periodically, fits

  apr_rms_norm_args norm{sizeof norm, x.get(),    x.offset(), small,  0,
                         x.get(),     x.offset(), 1,          n_cols, 1e-5f};
  require_error(p, p.api().rms_norm(p.device(), &norm), "weight shorter than n_cols");
  p.api().buffer_free(p.device(), small);

  apr_trace_emit_args te{sizeof te, APR_STAGE_COUNT_V1_0 + 5, 0, x.get(), x.offset(), 1, 4, 0};
  SinkRecorder recorder;
  recorder.wanted = {{APR_STAGE_COUNT_V1_0 + 5, 0}};
  {
    ScopedSink sink(p, recorder);
    const apr_status s = p.api().trace_emit(p.device(), &te);
    // A backend may refuse an unknown stage or pass it through; it must not crash.
    (void)s;
  }

  std::vector<float> host(4);
  require_error(
      p,
      p.api().buffer_read(p.device(), x.get(), x.offset() + n_cols * 4 + GuardedBuffer::kBackGuard,
                          host.data(), 16),
      "buffer_read past the end");
  require_error(p, p.api().buffer_write(p.device(), x.get(), UINT64_MAX - 7, host.data(), 16),
                "buffer_write with overflowing range");

  apr_device* d = nullptr;
  apr_device_options options{sizeof options, 1};
  require_error(p, p.api().device_open(p.api().device_count(), &options, &d), "bad device index");
  require_error(p, p.api().device_info(p.api().device_count(), nullptr), "NULL info");
  const apr_trace_sink bad_sink{sizeof(apr_trace_sink), nullptr, nullptr, nullptr};
  require_error(p, p.api().set_trace_sink(p.device(), &bad_sink), "sink without callbacks");

  // After all that, the buffers are intact and the device still works.
  x.check_guards();
  y.check_guards();
  const std::vector<float> before = y.read();
  REQUIRE_APR_OK(p, p.api().matmul(p.device(), &good));
  const std::vector<float> after = y.read();
  for (float v : after) REQUIRE(std::isfinite(v));
  (void)before;
}

TEST_CASE("the kernels of ABI 1.3 reject bad arguments", "[invalid][family]") {
  KERNEL_TEST_PLUGIN_OR_SKIP(p);
  const bool groups = p.has_feature(APR_FEATURE_NORM_GROUPS);
  const bool softcap = p.has_feature(APR_FEATURE_ATTN_SOFTCAP);
  const bool gelu = p.has_feature(APR_FEATURE_GELU);
  const bool unary = p.has_unary();
  if (!groups && !softcap && !gelu && !unary)
    throw conformance::CheckSkipped{"the plugin has none of the operations of ABI 1.3"};
  std::mt19937_64 rng(62);
  const uint32_t n_rows = 2, n_cols = 64;
  const std::vector<float> data = random_floats(rng, n_rows * n_cols);
  GuardedBuffer x(p, n_rows * n_cols), w(p, n_cols, 1.0f), y(p, n_rows * n_cols, 2.0f);
  x.write(data);
  // Every refusal is INVALID_ARGUMENT, with a message, and writes nothing.
  auto require_invalid = [&](apr_status status, const char* what) {
    require_error(p, status, what);
    INFO(what);
    REQUIRE(status == APR_ERR_INVALID_ARGUMENT);
    REQUIRE(std::memcmp(x.read().data(), data.data(), data.size() * 4) == 0);
    for (float v : y.read()) REQUIRE(v == 2.0f);
  };
  // The call made valid again succeeds: the refusals were for the one bad member.
  auto require_valid = [&](apr_status status, const char* what) {
    INFO(what);
    REQUIRE_APR_OK(p, status);
    y.write(std::vector<float>(n_rows * n_cols, 2.0f));
  };

  if (groups) {
    apr_rms_norm_args norm{.struct_size = sizeof norm,
                           .x = x.get(),
                           .x_offset = x.offset(),
                           .weight = w.get(),
                           .weight_offset = w.offset(),
                           .out = y.get(),
                           .out_offset = y.offset(),
                           .n_rows = n_rows,
                           .n_cols = n_cols,
                           .eps = 1e-5f,
                           .reserved0 = 0,
                           .row_stride = 0,
                           .n_groups = 5};  // does not divide 64
    require_invalid(p.api().rms_norm(p.device(), &norm), "n_groups does not divide n_cols");
    norm.n_groups = 4;
    norm.row_stride = n_cols / 2;
    require_invalid(p.api().rms_norm(p.device(), &norm), "row_stride < n_cols");
    norm.row_stride = n_cols;
    require_valid(p.api().rms_norm(p.device(), &norm), "4 groups of 16");
  }
  if (softcap) {
    // One row of 4 heads of 16 against a one-row cache of 2 KV heads (x doubles as the cache).
    apr_attention_args att{.struct_size = sizeof att,
                           .q = x.get(),
                           .q_offset = x.offset(),
                           .q_row_stride = 0,
                           .n_rows = 1,
                           .pos0 = 0,
                           .n_heads = 4,
                           .n_kv_heads = 2,
                           .head_dim = 16,
                           .scale = 0.25f,
                           .layer = 0,
                           .k_cache = x.get(),
                           .v_cache = x.get(),
                           .out = y.get(),
                           .out_offset = y.offset(),
                           .window = 0,
                           .softcap = -1.0f};
    require_invalid(p.api().attention(p.device(), &att), "negative softcap");
    att.softcap = INFINITY;
    require_invalid(p.api().attention(p.device(), &att), "infinite softcap");
    att.softcap = 2.0f;
    require_valid(p.api().attention(p.device(), &att), "softcap 2");
  }
  if (gelu) {
    apr_swiglu_args sw{.struct_size = sizeof sw,
                       .gate = x.get(),
                       .gate_offset = x.offset(),
                       .up = x.get(),
                       .up_offset = x.offset(),
                       .out = y.get(),
                       .out_offset = y.offset(),
                       .n_rows = n_rows,
                       .n_cols = n_cols,
                       .layer = 0,
                       .reserved0 = 0,
                       .activation = 2};  // no such activation
    require_invalid(p.api().swiglu(p.device(), &sw), "unknown activation");
    sw.activation = APR_ACT_GELU_TANH;
    require_valid(p.api().swiglu(p.device(), &sw), "gelu");
  }
  if (unary) {
    apr_unary_args un{.struct_size = sizeof un,
                      .op = 7,  // no such op
                      .alpha = 1.0f,
                      .x = x.get(),
                      .x_offset = x.offset(),
                      .out = y.get(),
                      .out_offset = y.offset(),
                      .n = n_cols};
    require_invalid(p.api().unary(p.device(), &un), "unknown unary op");
    un.op = APR_UNARY_SOFTCAP;
    un.alpha = 0.0f;
    require_invalid(p.api().unary(p.device(), &un), "soft-cap of alpha 0");
    un.alpha = -3.0f;
    require_invalid(p.api().unary(p.device(), &un), "soft-cap of negative alpha");
    un.op = APR_UNARY_SCALE;
    un.alpha = NAN;
    require_invalid(p.api().unary(p.device(), &un), "scale by NaN");
    un.struct_size = APR_UNARY_ARGS_SIZE_V1_3 - 4;
    un.alpha = 1.0f;
    require_invalid(p.api().unary(p.device(), &un), "struct_size too small");
    un.struct_size = sizeof un;
    require_valid(p.api().unary(p.device(), &un), "scale by 1");
  }
  x.check_guards();
  y.check_guards();
}

TEST_CASE("the error message is never NULL", "[invalid]") {
  KERNEL_TEST_PLUGIN_OR_SKIP(p);
  REQUIRE(p.api().error_message() != nullptr);
}
