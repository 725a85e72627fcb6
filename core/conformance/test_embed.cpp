// SPDX-License-Identifier: MIT
// embed for every weight type: rows come out exactly as the reference decoder gives them (ggml's
// dequantization has at most one rounding, so any correct f32 evaluation is exact to 1 ulp).
#include <random>

#include "plugin_fixture.hpp"
#include "reference_ops.hpp"

using namespace kernel_tests;

TEST_CASE("embed dequantizes the selected rows for every weight type", "[embed]") {
  KERNEL_TEST_PLUGIN_OR_SKIP(p);
  std::mt19937_64 rng(55);
  const uint64_t n_vocab = 11;
  const std::vector<int32_t> tokens = {3, 0, 10, 3, 7};
  for (uint32_t type : p.claimed(apr_test::ref_types())) {
    const uint64_t blk = apr_test::block_size(type);
    const uint64_t n_cols = blk == 1 ? 45 : (blk == 32 ? 96 : 256);
    INFO("type " << apr_test::ref_type_name(type));
    std::vector<uint8_t> bytes = apr_test::random_blocks(type, n_vocab * n_cols, rng);
    const std::vector<double> table = ref_weight(type, bytes, n_vocab, n_cols);
    Weight weight(p, type, n_vocab, n_cols, bytes, type % 2 == 0, "token_embd.weight");
    GuardedBuffer out(p, tokens.size() * n_cols);
    apr_embed_args args{sizeof args,   weight.get(),
                        tokens.data(), static_cast<uint32_t>(tokens.size()),
                        out.get(),     out.offset()};
    REQUIRE_APR_OK(p, p.api().embed(p.device(), &args));
    const std::vector<float> got = out.read();
    std::vector<double> want;
    uint64_t off_by_more_than_ulp = 0;
    for (size_t r = 0; r < tokens.size(); ++r)
      for (uint64_t c = 0; c < n_cols; ++c) {
        const double ref = table[static_cast<uint64_t>(tokens[r]) * n_cols + c];
        want.push_back(ref);
        const double diff = std::fabs(got[r * n_cols + c] - ref);
        off_by_more_than_ulp += diff > std::fabs(ref) * 0x1p-23 + 1e-30;
      }
    check_close(got, want, 1e-13, "embed");
    REQUIRE(off_by_more_than_ulp == 0);
    out.check_guards();
  }
}

TEST_CASE("embed rejects token ids outside the table", "[embed][invalid]") {
  KERNEL_TEST_PLUGIN_OR_SKIP(p);
  std::mt19937_64 rng(56);
  const uint32_t type = any_claimed_type(p);
  Weight weight(p, type, 4, 32, apr_test::random_blocks(type, 128, rng), false,
                "token_embd.weight");
  GuardedBuffer out(p, 2 * 32, 0.5f);
  for (int32_t bad : {4, -1, 1 << 30}) {
    const int32_t tokens[2] = {1, bad};
    apr_embed_args args{sizeof args, weight.get(), tokens, 2, out.get(), out.offset()};
    INFO("token " << bad);
    REQUIRE(p.api().embed(p.device(), &args) != APR_OK);
    REQUIRE(std::strlen(p.api().error_message()) > 0);
  }
  out.check_guards();
}
