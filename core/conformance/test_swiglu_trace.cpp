// SPDX-License-Identifier: MIT
// swiglu (+ the FFN_SILU it emits), trace_emit of strided views, and the sink's wants() being
// honoured by every emitting kernel.
#include <random>

#include "plugin_fixture.hpp"
#include "reference_ops.hpp"

using namespace kernel_tests;

TEST_CASE("swiglu matches a float64 reference and emits silu when asked", "[swiglu]") {
  KERNEL_TEST_PLUGIN_OR_SKIP(p);
  std::mt19937_64 rng(41);
  const uint32_t n_rows = 3, n_cols = 50, layer = 2;
  for (int out_alias = 0; out_alias < 3; ++out_alias) {  // separate, out = gate, out = up
    INFO("output alias " << out_alias);
    const std::vector<float> gate = random_floats(rng, n_rows * n_cols, -6.0f, 6.0f);
    const std::vector<float> up = random_floats(rng, n_rows * n_cols, -2.0f, 2.0f);
    GuardedBuffer bg(p, gate.size()), bu(p, up.size()), bo(p, gate.size());
    bg.write(gate);
    bu.write(up);
    GuardedBuffer& out = out_alias == 0 ? bo : (out_alias == 1 ? bg : bu);
    SinkRecorder recorder;
    recorder.wanted = {{APR_STAGE_FFN_SILU, layer}};
    {
      ScopedSink sink(p, recorder);
      apr_swiglu_args args{sizeof args, bg.get(),     bg.offset(), bu.get(), bu.offset(),
                           out.get(),   out.offset(), n_rows,      n_cols,   layer};
      REQUIRE_APR_OK(p, p.api().swiglu(p.device(), &args));
    }
    std::vector<double> silu(gate.size()), want(gate.size());
    for (size_t i = 0; i < gate.size(); ++i) {
      silu[i] = ref_silu(gate[i]);
      want[i] = silu[i] * up[i];
    }
    check_close(out.read(), want, 1e-12, "swiglu");
    REQUIRE(recorder.bad_emits == 0);
    REQUIRE(recorder.emitted.size() == 1);
    const SinkRecorder::Tensor* t = recorder.find(APR_STAGE_FFN_SILU, layer);
    REQUIRE(t != nullptr);
    REQUIRE(t->shape == std::vector<uint64_t>{n_rows, n_cols});
    check_close(t->data, silu, 1e-12, "FFN_SILU");
    bg.check_guards();
    bu.check_guards();
    bo.check_guards();
  }
}

TEST_CASE("trace_emit copies a strided view contiguously", "[trace]") {
  KERNEL_TEST_PLUGIN_OR_SKIP(p);
  std::mt19937_64 rng(42);
  const uint32_t n_rows = 4, n_cols = 10, stride = 13;
  const std::vector<float> data = random_floats(rng, n_rows * stride);
  GuardedBuffer b(p, data.size());
  b.write(data);
  SinkRecorder recorder;
  recorder.wanted = {{APR_STAGE_ATTN_NORM, 5}, {APR_STAGE_LM_HEAD, APR_LAYER_NONE}};
  {
    ScopedSink sink(p, recorder);
    apr_trace_emit_args args{
        sizeof args, APR_STAGE_ATTN_NORM, 5, b.get(), b.offset(), n_rows, n_cols, stride};
    REQUIRE_APR_OK(p, p.api().trace_emit(p.device(), &args));
    // The last row only, as the lm head is traced: a 1-D tensor.
    apr_trace_emit_args lm{sizeof lm,
                           APR_STAGE_LM_HEAD,
                           APR_LAYER_NONE,
                           b.get(),
                           b.offset() + 3 * stride * 4,
                           1,
                           n_cols,
                           0};
    REQUIRE_APR_OK(p, p.api().trace_emit(p.device(), &lm));
    // Not wanted: nothing is emitted.
    apr_trace_emit_args other{
        sizeof other, APR_STAGE_ATTN_NORM, 6, b.get(), b.offset(), n_rows, n_cols, stride};
    REQUIRE_APR_OK(p, p.api().trace_emit(p.device(), &other));
  }
  REQUIRE(recorder.bad_emits == 0);
  REQUIRE(recorder.emitted.size() == 2);
  const SinkRecorder::Tensor* t = recorder.find(APR_STAGE_ATTN_NORM, 5);
  REQUIRE(t != nullptr);
  REQUIRE(t->shape == std::vector<uint64_t>{n_rows, n_cols});
  uint64_t wrong = 0;
  for (uint32_t r = 0; r < n_rows; ++r)
    for (uint32_t c = 0; c < n_cols; ++c) wrong += t->data[r * n_cols + c] != data[r * stride + c];
  REQUIRE(wrong == 0);
  const SinkRecorder::Tensor* head = recorder.find(APR_STAGE_LM_HEAD, APR_LAYER_NONE);
  REQUIRE(head != nullptr);
  REQUIRE(head->shape == std::vector<uint64_t>{n_cols});
  for (uint32_t c = 0; c < n_cols; ++c) wrong += head->data[c] != data[3 * stride + c];
  REQUIRE(wrong == 0);
  // trace_emit must not modify the traced tensor.
  const std::vector<float> after = b.read();
  REQUIRE(std::memcmp(after.data(), data.data(), data.size() * 4) == 0);
  b.check_guards();
}

TEST_CASE("trace_emit reports a refusing sink as ABORTED", "[trace]") {
  KERNEL_TEST_PLUGIN_OR_SKIP(p);
  GuardedBuffer b(p, 8, 1.0f);
  SinkRecorder recorder;
  recorder.wanted = {{APR_STAGE_FFN_OUT, 0}};
  recorder.emit_status = APR_ERR_INTERNAL;
  ScopedSink sink(p, recorder);
  apr_trace_emit_args args{sizeof args, APR_STAGE_FFN_OUT, 0, b.get(), b.offset(), 2, 4, 0};
  REQUIRE(p.api().trace_emit(p.device(), &args) == APR_ERR_ABORTED);
  REQUIRE(std::strlen(p.api().error_message()) > 0);
}

TEST_CASE("nothing is emitted when the sink wants nothing", "[trace]") {
  KERNEL_TEST_PLUGIN_OR_SKIP(p);
  std::mt19937_64 rng(43);
  SinkRecorder recorder;  // wants nothing
  ScopedSink sink(p, recorder);
  const uint32_t n = 16;
  GuardedBuffer a(p, n), b(p, n), o(p, n);
  a.write(random_floats(rng, n));
  b.write(random_floats(rng, n));
  for (apr_stage stage = 0; stage < APR_STAGE_COUNT_V1_0; ++stage) {
    apr_trace_emit_args args{sizeof args, stage, 0, a.get(), a.offset(), 2, 8, 0};
    REQUIRE_APR_OK(p, p.api().trace_emit(p.device(), &args));
  }
  apr_swiglu_args sw{sizeof sw, a.get(),    a.offset(), b.get(), b.offset(),
                     o.get(),   o.offset(), 2,          8,       0};
  REQUIRE_APR_OK(p, p.api().swiglu(p.device(), &sw));
  REQUIRE(recorder.emitted.empty());
  REQUIRE(recorder.bad_emits == 0);
}
