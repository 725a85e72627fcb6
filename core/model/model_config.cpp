// SPDX-License-Identifier: MIT
#include "model/model_config.hpp"

#include <apr/plugin.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <optional>

#include "common/error.hpp"
#include "gguf/gguf_file.hpp"

namespace apr {
namespace {

class MetadataReader {
 public:
  MetadataReader(const gguf::File& f, std::string prefix) : f_(f), prefix_(std::move(prefix)) {}

  // Reads a u32-like count that may also be stored as a per-layer array of equal values.
  uint32_t count(const std::string& key, std::optional<uint32_t> fallback = std::nullopt) const {
    const std::string full = prefix_ + key;
    if (auto t = f_.type_of(full); t && *t == gguf::ValueType::ARRAY) {
      auto values = f_.get_int_array(full).value();
      if (values.empty()) throw Error(where(full) + ": empty per-layer array");
      for (auto v : values)
        if (v != values.front())
          throw Error(where(full) + ": per-layer values differ; apr supports uniform layers only");
      return checked_u32(full, values.front());
    }
    if (auto v = f_.get_uint(full)) return checked_u32(full, static_cast<int64_t>(*v));
    if (fallback) return *fallback;
    throw Error(where(full) + ": required key is missing");
  }

  std::optional<double> number(const std::string& key) const { return f_.get_float(prefix_ + key); }

  std::string where(const std::string& key) const {
    return f_.path().filename().string() + ": metadata '" + key + "'";
  }

 private:
  uint32_t checked_u32(const std::string& key, int64_t v) const {
    if (v <= 0 || v > std::numeric_limits<int32_t>::max())
      throw Error(where(key) + ": value " + std::to_string(v) + " is out of range");
    return static_cast<uint32_t>(v);
  }

  const gguf::File& f_;
  std::string prefix_;
};

// "1e+39", "nan", "1e-06": short and exact enough for a message.
std::string number_text(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

struct Family {
  const char* name;
  Architecture arch;
  uint32_t rope_mode;
};

// The GGUF architectures apr runs, with the RoPE pairing llama.cpp uses for each.
constexpr Family kFamilies[] = {
    {"llama", Architecture::kLlama, APR_ROPE_INTERLEAVED},
    {"qwen2", Architecture::kQwen2, APR_ROPE_HALF},
    {"qwen3", Architecture::kQwen3, APR_ROPE_HALF},
    {"gemma2", Architecture::kGemma2, APR_ROPE_HALF},
    {"gemma3", Architecture::kGemma3, APR_ROPE_HALF},
    {"phi3", Architecture::kPhi3, APR_ROPE_HALF},
};

// A positive finite float from the metadata, or nullopt when the key is absent.
std::optional<float> positive(const MetadataReader& md, const std::string& arch,
                              const std::string& key) {
  auto v = md.number(key);
  if (!v) return std::nullopt;
  if (!(*v > 0) || !(*v <= std::numeric_limits<float>::max()))
    throw Error(md.where(arch + "." + key) + ": " + number_text(*v) +
                " is not a finite positive number");
  return static_cast<float>(*v);
}

// Which layers slide, as llama.cpp lays them out: in every run of `pattern` layers all but the
// last (gemma3: 5 local, 1 global; gemma2: alternating, starting local). The file may override
// the pattern with <arch>.attention.sliding_window_pattern.
void set_swa_layers(ModelConfig& c, const gguf::File& file, const MetadataReader& md,
                    uint32_t pattern) {
  const std::string key = c.arch_name + ".attention.sliding_window_pattern";
  if (auto t = file.type_of(key); t && *t == gguf::ValueType::ARRAY)
    throw Error(md.where(key) + ": a per-layer array is not supported (a period is)");
  if (file.has(key)) pattern = md.count("attention.sliding_window_pattern");
  c.layer_is_swa.assign(c.n_layer, false);
  for (uint32_t l = 0; l < c.n_layer; ++l) c.layer_is_swa[l] = l % pattern < pattern - 1;
  // A period of 1 makes every layer global: no window to ask of the plugin.
  if (std::find(c.layer_is_swa.begin(), c.layer_is_swa.end(), true) == c.layer_is_swa.end())
    c.layer_is_swa.clear();
}

// What each newer family adds to the llama layout (llama.cpp's src/models/<arch>.cpp and the
// transformers implementation agree on these).
void read_family(ModelConfig& c, const gguf::File& file, const MetadataReader& md) {
  const std::string& a = c.arch_name;
  c.attn_scale = c.query_scale();
  const bool gemma = c.arch == Architecture::kGemma2 || c.arch == Architecture::kGemma3;
  if (c.arch == Architecture::kQwen3 || c.arch == Architecture::kGemma3) c.has_qk_norm = true;
  if (gemma) {
    c.has_post_norms = true;
    c.ffn_activation = APR_ACT_GELU_TANH;
    c.embd_scale = std::sqrt(static_cast<float>(c.n_embd));
    // Gemma's largest models scale queries by 1/sqrt(hidden / heads) (query_pre_attn_scalar),
    // which GGUF does not record; llama.cpp recognises them by their layer count, as apr does.
    const uint32_t layers_27b = c.arch == Architecture::kGemma2 ? 46 : 62;
    if (c.n_layer == layers_27b)
      c.attn_scale = static_cast<float>(1.0 / std::sqrt(double(c.n_embd / c.n_head)));
    if (auto cap = positive(md, a, "final_logit_softcapping")) c.final_softcap = *cap;
  }
  if (c.arch == Architecture::kGemma2) {
    if (auto cap = positive(md, a, "attn_logit_softcapping")) c.attn_softcap = *cap;
    c.sliding_window = md.count("attention.sliding_window", 4096);  // Gemma 2's own default
    c.rope_freq_base_swa = c.rope_freq_base;
    c.rope_freq_scale_swa = c.rope_freq_scale;
    set_swa_layers(c, file, md, 2);
  }
  // Gemma 3 slides only when the file gives a window (0 or absent: every layer global, as in
  // llama.cpp).
  if (auto w = file.get_uint(a + ".attention.sliding_window");
      c.arch == Architecture::kGemma3 && w && *w > 0) {
    c.sliding_window = md.count("attention.sliding_window");
    set_swa_layers(c, file, md, 6);
  }
  if (gemma)
    if (auto base = positive(md, a, "rope.freq_base_swa")) c.rope_freq_base_swa = *base;
  if (c.arch == Architecture::kPhi3) {
    // llama.cpp runs Phi-3 without its sliding window (its converters do not write the layer
    // pattern), and so does apr, to give the same tokens.
    if (auto f = positive(md, a, "rope.scaling.attn_factor")) c.rope_attn_factor = *f;
    c.n_ctx_orig = md.count("rope.scaling.original_context_length", c.n_ctx_train);
    c.attn_scale *= c.rope_attn_factor * c.rope_attn_factor;
  }
}

}  // namespace

const char* supported_architectures() {
  return "llama, qwen2, qwen3, gemma2, gemma3, phi3";
}

float ModelConfig::default_query_scale(uint32_t head_dim) {
  return static_cast<float>(1.0 / std::sqrt(double(head_dim)));
}

float ModelConfig::query_scale() const {
  return attn_scale > 0 ? attn_scale : default_query_scale(head_dim);
}

ModelConfig ModelConfig::from_gguf(const gguf::File& file) {
  ModelConfig c;
  const std::string fname = file.path().filename().string();
  auto arch = file.get_string("general.architecture");
  if (!arch) throw Error(fname + ": metadata 'general.architecture' is missing");
  c.arch_name = std::string(*arch);
  const Family* family = nullptr;
  for (const Family& f : kFamilies)
    if (c.arch_name == f.name) family = &f;
  if (!family)
    throw Error(fname + ": architecture '" + c.arch_name + "' is not supported (apr runs " +
                supported_architectures() + ")");
  c.arch = family->arch;
  c.rope_mode = family->rope_mode;
  if (auto n = file.get_string("general.name")) c.name = std::string(*n);

  const MetadataReader md(file, c.arch_name + ".");
  c.n_embd = md.count("embedding_length");
  c.n_layer = md.count("block_count");
  c.n_ctx_train = md.count("context_length");
  c.n_ff = md.count("feed_forward_length");
  c.n_head = md.count("attention.head_count");
  c.n_head_kv = md.count("attention.head_count_kv", c.n_head);
  if (c.n_head % c.n_head_kv != 0)
    throw Error(md.where(c.arch_name + ".attention.head_count_kv") + ": " +
                std::to_string(c.n_head) + " heads are not a multiple of " +
                std::to_string(c.n_head_kv) + " KV heads");
  if (c.n_embd % c.n_head != 0 && !file.has(c.arch_name + ".attention.key_length"))
    throw Error(md.where(c.arch_name + ".embedding_length") + ": " + std::to_string(c.n_embd) +
                " is not divisible by " + std::to_string(c.n_head) + " heads");
  c.head_dim = md.count("attention.key_length", c.n_embd / c.n_head);
  if (md.count("attention.value_length", c.head_dim) != c.head_dim)
    throw Error(md.where(c.arch_name + ".attention.value_length") +
                ": differs from key_length, which apr does not support");
  c.n_rot = md.count("rope.dimension_count", c.head_dim);
  if (c.n_rot > c.head_dim || c.n_rot % 2 != 0)
    throw Error(md.where(c.arch_name + ".rope.dimension_count") + ": " + std::to_string(c.n_rot) +
                " must be even and at most head_dim " + std::to_string(c.head_dim));

  auto eps = md.number("attention.layer_norm_rms_epsilon");
  if (!eps)
    throw Error(md.where(c.arch_name + ".attention.layer_norm_rms_epsilon") +
                ": required key is missing");
  if (!(*eps > 0 && *eps < 1))
    throw Error(md.where(c.arch_name + ".attention.layer_norm_rms_epsilon") + ": " +
                number_text(*eps) + " is not in (0, 1)");
  c.rms_eps = static_cast<float>(*eps);
  if (auto base = md.number("rope.freq_base")) {
    // A float must hold it too: 1e39 would become infinity.
    if (!(*base > 1) || !(*base <= std::numeric_limits<float>::max()))
      throw Error(md.where(c.arch_name + ".rope.freq_base") + ": " + number_text(*base) +
                  " is not a finite number > 1 that a float can hold");
    c.rope_freq_base = static_cast<float>(*base);
  }
  if (auto type = file.get_string(c.arch_name + ".rope.scaling.type")) {
    if (*type != "none" && *type != "linear")
      throw Error(md.where(c.arch_name + ".rope.scaling.type") + ": '" + std::string(*type) +
                  "' RoPE scaling is not supported (none and linear are)");
  }
  auto factor = md.number("rope.scaling.factor");
  if (!factor) factor = md.number("rope.scale_linear");
  if (factor && *factor != 0) {
    if (!(*factor > 0) || !(*factor <= std::numeric_limits<float>::max()))
      throw Error(md.where(c.arch_name + ".rope.scaling.factor") + ": " + number_text(*factor) +
                  " is not a finite positive number");
    c.rope_freq_scale = static_cast<float>(1.0 / *factor);
  }
  read_family(c, file, md);
  return c;
}

}  // namespace apr
