// SPDX-License-Identifier: MIT
// apr info: what a GGUF file holds and whether apr can run it.
#include <nlohmann/json.hpp>

#include <iostream>
#include <map>

#include "cli.hpp"
#include "common/error.hpp"
#include "gguf/gguf_file.hpp"
#include "quant/quant.hpp"

namespace apr::cli {
namespace {

constexpr const char* kUsage = R"(Usage: apr info MODEL [--json] [--tensors]

Prints a GGUF model's architecture, hyper-parameters, tensor types and tokenizer, and whether
apr can run it (and if not, why). A file that is not valid GGUF is an error (exit 2).)";

const char* rope_name(uint32_t mode) {
  return mode == APR_ROPE_HALF ? "rotate-half (neox)" : "interleaved pairs (norm)";
}

}  // namespace

int cmd_info(Context&, const std::vector<std::string>& args) {
  std::string path;
  bool json = false, list_tensors = false;
  po::options_description desc("Options");
  desc.add_options()("model", po::value(&path), "GGUF model file")(
      "json", po::bool_switch(&json), "print JSON")("tensors", po::bool_switch(&list_tensors),
                                                    "list every tensor");
  po::variables_map vm;
  if (!parse_verb_args(args, desc, {"model"}, kUsage, vm)) return kExitOk;

  std::unique_ptr<Model> model;
  std::string problem;
  try {
    model = load_model(path);
  } catch (const Error& e) {
    problem = e.what();
  }
  // A file that is not even GGUF is an error; a GGUF apr cannot run is still described.
  std::unique_ptr<gguf::File> own_file;
  const gguf::File* file = nullptr;
  if (model) {
    file = &model->file();
  } else {
    own_file = gguf::File::open(path);
    file = own_file.get();
  }

  std::map<std::string, uint64_t> type_counts;
  uint64_t params = 0;
  for (const auto& t : file->tensors()) {
    ++type_counts[quant::type_name(t.type)];
    params += t.n_elements;
  }

  nlohmann::json j;
  j["path"] = path;
  j["gguf_version"] = file->version();
  j["file_size"] = file->file_size();
  j["alignment"] = file->alignment();
  j["tensor_count"] = file->tensors().size();
  j["parameters"] = params;
  j["tensor_types"] = type_counts;
  j["runnable"] = model != nullptr;
  if (!problem.empty()) j["problem"] = problem;
  if (model) {
    const ModelConfig& c = model->config();
    j["architecture"] = c.arch_name;
    j["name"] = c.name;
    j["hyperparameters"] = {{"n_embd", c.n_embd},
                            {"n_layer", c.n_layer},
                            {"n_head", c.n_head},
                            {"n_head_kv", c.n_head_kv},
                            {"head_dim", c.head_dim},
                            {"n_ff", c.n_ff},
                            {"n_vocab", c.n_vocab},
                            {"n_ctx_train", c.n_ctx_train},
                            {"n_rot", c.n_rot},
                            {"rms_eps", c.rms_eps},
                            {"rope_freq_base", c.rope_freq_base},
                            {"rope_freq_scale", c.rope_freq_scale},
                            {"rope", rope_name(c.rope_mode)},
                            {"tied_output", c.tied_output},
                            {"qkv_bias", c.has_qkv_bias}};
    // What the newer families add (listed only when the model has it).
    nlohmann::json f = nlohmann::json::object();
    if (c.has_qk_norm) f["qk_norm"] = true;
    if (c.has_post_norms) f["post_norms"] = true;
    if (c.ffn_activation == APR_ACT_GELU_TANH) f["ffn_activation"] = "gelu_tanh";
    if (c.embd_scale > 0) f["embedding_scale"] = c.embd_scale;
    if (c.attn_scale > 0 && c.attn_scale != ModelConfig::default_query_scale(c.head_dim))
      f["attention_scale"] = c.attn_scale;
    if (c.attn_softcap > 0) f["attention_softcap"] = c.attn_softcap;
    if (c.final_softcap > 0) f["final_logit_softcap"] = c.final_softcap;
    if (!c.layer_is_swa.empty()) {
      f["sliding_window"] = c.sliding_window;
      std::string layers;
      for (uint32_t l = 0; l < c.n_layer; ++l)
        if (!c.is_swa(l)) layers += (layers.empty() ? "" : ",") + std::to_string(l);
      f["global_layers"] = layers;
      f["rope_freq_base_swa"] = c.rope_freq_base_swa;
    }
    if (c.fused_qkv) f["fused_qkv"] = true;
    if (c.fused_gate_up) f["fused_gate_up"] = true;
    if (!f.empty()) j["family_features"] = f;
    const Tokenizer& t = model->tokenizer();
    j["tokenizer"] = {{"model", std::string(t.model())},
                      {"pre", std::string(t.pre())},
                      {"vocab_size", t.vocab_size()},
                      {"bos_id", t.bos_id()},
                      {"eos_id", t.eos_id()}};
  } else if (auto arch = file->get_string("general.architecture")) {
    j["architecture"] = std::string(*arch);
  }
  if (list_tensors) {
    j["tensors"] = nlohmann::json::array();
    for (const auto& t : file->tensors())
      j["tensors"].push_back({{"name", t.name},
                              {"type", quant::type_name(t.type)},
                              {"shape", gguf::shape_string(t)},
                              {"bytes", t.nbytes}});
  }

  if (json) {
    std::cout << j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    return kExitOk;
  }
  std::cout << path << ": GGUF v" << file->version() << ", " << file->tensors().size()
            << " tensors, " << params << " parameters, " << file->file_size() << " bytes\n";
  if (j.contains("architecture"))
    std::cout << "architecture: " << j["architecture"].get<std::string>() << "\n";
  if (model) {
    for (auto& [k, v] : j["hyperparameters"].items()) std::cout << "  " << k << ": " << v << "\n";
    if (j.contains("family_features"))
      for (auto& [k, v] : j["family_features"].items()) std::cout << "  " << k << ": " << v << "\n";
    std::cout << "tokenizer:\n";
    for (auto& [k, v] : j["tokenizer"].items()) std::cout << "  " << k << ": " << v << "\n";
  }
  std::cout << "tensor types:";
  for (const auto& [name, n] : type_counts) std::cout << " " << name << " x" << n;
  std::cout << "\n";
  if (list_tensors)
    for (const auto& t : file->tensors())
      std::cout << "  " << t.name << "  " << quant::type_name(t.type) << "  "
                << gguf::shape_string(t) << "\n";
  std::cout << "runnable by apr: " << (model ? "yes" : "no: " + problem) << "\n";
  return kExitOk;
}

}  // namespace apr::cli
