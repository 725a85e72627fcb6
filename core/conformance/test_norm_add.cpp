// SPDX-License-Identifier: MIT
// rms_norm (separate and in place) and add (full, periodic, in place).
#include <random>

#include "plugin_fixture.hpp"
#include "reference_ops.hpp"

using namespace kernel_tests;

TEST_CASE("rms_norm matches a float64 reference", "[rms_norm]") {
  KERNEL_TEST_PLUGIN_OR_SKIP(p);
  std::mt19937_64 rng(11);
  const uint32_t n_rows = 5, n_cols = 300;
  const float eps = 1e-5f;
  for (bool in_place : {false, true}) {
    INFO((in_place ? "in place" : "separate output"));
    std::vector<float> x = random_floats(rng, n_rows * n_cols, -2.0f, 2.0f);
    for (uint32_t c = 0; c < n_cols; ++c) x[c] *= 1e-3f;  // a small-norm row: eps matters
    const std::vector<float> w = random_floats(rng, n_cols, 0.5f, 1.5f);
    GuardedBuffer bx(p, x.size()), bw(p, w.size()), bo(p, x.size());
    bx.write(x);
    bw.write(w);
    GuardedBuffer& out = in_place ? bx : bo;
    apr_rms_norm_args args{sizeof args, bx.get(),     bx.offset(), bw.get(), bw.offset(),
                           out.get(),   out.offset(), n_rows,      n_cols,   eps};
    REQUIRE_APR_OK(p, p.api().rms_norm(p.device(), &args));
    std::vector<double> want;
    for (uint32_t r = 0; r < n_rows; ++r) {
      double ss = 0;
      for (uint32_t c = 0; c < n_cols; ++c) ss += double(x[r * n_cols + c]) * x[r * n_cols + c];
      const double scale = 1.0 / std::sqrt(ss / n_cols + eps);
      for (uint32_t c = 0; c < n_cols; ++c) want.push_back(x[r * n_cols + c] * scale * w[c]);
    }
    // A handful of f32 roundings per element: relative error ~1e-7, squared ~1e-14.
    check_close(out.read(), want, 1e-12, "rms_norm");
    bx.check_guards();
    bw.check_guards();
    bo.check_guards();
  }
}

TEST_CASE("add matches a float64 reference, with and without period", "[add]") {
  KERNEL_TEST_PLUGIN_OR_SKIP(p);
  std::mt19937_64 rng(12);
  const uint64_t n = 1000;
  for (uint64_t period : {uint64_t{0}, uint64_t{100}, uint64_t{7}, n})
    for (bool in_place : {false, true}) {
      INFO("period " << period << (in_place ? ", in place" : ""));
      const uint64_t nb = period ? period : n;
      const std::vector<float> a = random_floats(rng, n), b = random_floats(rng, nb);
      GuardedBuffer ba(p, n), bb(p, nb), bo(p, n);
      ba.write(a);
      bb.write(b);
      GuardedBuffer& out = in_place ? ba : bo;
      apr_add_args args{sizeof args, ba.get(),     ba.offset(), bb.get(), bb.offset(),
                        out.get(),   out.offset(), n,           period};
      REQUIRE_APR_OK(p, p.api().add(p.device(), &args));
      std::vector<double> want(n);
      for (uint64_t i = 0; i < n; ++i) want[i] = double(a[i]) + b[i % nb];
      check_close(out.read(), want, 1e-13, "add");
      ba.check_guards();
      bb.check_guards();
      bo.check_guards();
    }
}
