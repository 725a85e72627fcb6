#include "trace/manifest.hpp"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/error.hpp"
#include "trace/atomic_file.hpp"
#include "trace/stages.hpp"

namespace apr::trace {

using json = nlohmann::ordered_json;

std::string stage_file_path(apr_stage stage, uint32_t layer) {
  std::string name = std::string(stage_name(stage)) + ".bin";
  if (layer == APR_LAYER_NONE) return name;
  return "layer-" + std::to_string(layer) + "/" + name;
}

std::string manifest_to_json(const Manifest& m) {
  json files = json::array();
  for (const auto& f : m.files) {
    json layer = f.layer == APR_LAYER_NONE ? json(nullptr) : json(f.layer);
    files.push_back({{"path", f.path},
                     {"stage", std::string(stage_name(f.stage))},
                     {"layer", layer},
                     {"shape", f.shape},
                     {"dtype", f.dtype}});
  }
  json j = {
      {"format", kManifestFormat},
      {"model",
       {{"path", m.model_path}, {"sha256", m.model_sha256}, {"architecture", m.architecture}}},
      {"backend", {{"name", m.backend}, {"plugin_version", m.plugin_version}}},
      {"prompt", m.prompt ? json(*m.prompt) : json(nullptr)},
      {"token_ids", m.token_ids},
      {"files", files}};
  // Invalid UTF-8 in a prompt is replaced rather than refused: the token ids are what count.
  return j.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

void write_manifest(const std::filesystem::path& dir, const Manifest& m) {
  const std::string text = manifest_to_json(m);
  write_file_atomically(dir / kManifestFileName,
                        std::as_bytes(std::span<const char>(text.data(), text.size())));
}

Manifest read_manifest(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw Error(file.string() + ": cannot open the trace manifest");
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string where = file.string();
  json j;
  try {
    j = json::parse(ss.str());
  } catch (const json::exception& e) {
    throw Error(where + ": not valid JSON: " + e.what());
  }
  std::string field = "format";
  try {
    if (!j.is_object() || j.value("format", "") != kManifestFormat)
      throw Error(where + ": not an apr trace manifest (\"format\" is not \"" +
                  std::string(kManifestFormat) + "\")");
    Manifest m;
    field = "model";
    const json& model = j.at("model");
    m.model_path = model.value("path", "");
    m.model_sha256 = model.value("sha256", "");
    m.architecture = model.value("architecture", "");
    field = "backend";
    const json& backend = j.at("backend");
    m.backend = backend.value("name", "");
    m.plugin_version = backend.value("plugin_version", "");
    field = "prompt";
    if (j.contains("prompt") && j["prompt"].is_string()) m.prompt = j["prompt"].get<std::string>();
    field = "token_ids";
    if (j.contains("token_ids")) m.token_ids = j["token_ids"].get<std::vector<int32_t>>();
    const json& files = j.at("files");
    if (!files.is_array()) throw Error(where + ": \"files\" is not an array");
    for (size_t i = 0; i < files.size(); ++i) {
      field = "files[" + std::to_string(i) + "]";
      const json& f = files[i];
      ManifestFile mf;
      mf.path = f.at("path").get<std::string>();
      const auto stage = stage_from_name(f.at("stage").get<std::string>());
      if (!stage) throw Error(where + ": " + field + ": unknown stage");
      mf.stage = *stage;
      mf.layer = f.at("layer").is_null() ? APR_LAYER_NONE : f.at("layer").get<uint32_t>();
      mf.shape = f.at("shape").get<std::vector<uint64_t>>();
      mf.dtype = f.value("dtype", "f32");
      // Only the canonical name is accepted, which also keeps every path inside the directory.
      if (mf.path != stage_file_path(mf.stage, mf.layer))
        throw Error(where + ": " + field + ": path \"" + mf.path + "\" does not match its stage " +
                    "and layer (expected \"" + stage_file_path(mf.stage, mf.layer) + "\")");
      m.files.push_back(std::move(mf));
    }
    return m;
  } catch (const json::exception& e) {
    throw Error(where + ": field \"" + field + "\": " + e.what());
  }
}

}  // namespace apr::trace
