// SPDX-License-Identifier: MIT
#include "trace_format/manifest.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

#include "common/error.hpp"
#include "trace_format/atomic_file.hpp"
#include "trace_format/stages.hpp"

namespace apr::trace {

using json = nlohmann::ordered_json;

std::string stage_file_path(apr_stage stage, uint32_t layer, uint32_t step) {
  std::string name = std::string(stage_name(stage)) + ".bin";
  if (layer != APR_LAYER_NONE) name = "layer-" + std::to_string(layer) + "/" + name;
  return step == 0 ? name : "step-" + std::to_string(step) + "/" + name;
}

std::string manifest_to_json(const Manifest& m) {
  const bool v2 = m.has_steps();
  json files = json::array();
  for (const auto& f : m.files) {
    json layer = f.layer == APR_LAYER_NONE ? json(nullptr) : json(f.layer);
    json entry = {{"path", f.path}};
    if (v2) entry["step"] = f.step;
    entry["stage"] = std::string(stage_name(f.stage));
    entry["layer"] = layer;
    entry["shape"] = f.shape;
    entry["dtype"] = f.dtype;
    entry["nbytes"] = element_count(f) * sizeof(float);
    files.push_back(std::move(entry));
  }
  json j = {
      {"format", v2 ? kManifestFormatSteps : kManifestFormat},
      {"model",
       {{"path", m.model_path}, {"sha256", m.model_sha256}, {"architecture", m.architecture}}},
      {"backend", {{"name", m.backend}, {"plugin_version", m.plugin_version}}},
      {"prompt", m.prompt ? json(*m.prompt) : json(nullptr)},
      {"token_ids", m.token_ids}};
  if (v2) {
    json steps = json::array();
    for (const auto& st : m.steps)
      steps.push_back({{"step", st.step},
                       {"pos0", st.pos0},
                       {"tokens", st.tokens},
                       {"next_token", st.next_token ? json(*st.next_token) : json(nullptr)}});
    j["ubatch"] = m.ubatch;
    j["steps"] = std::move(steps);
  }
  j["files"] = std::move(files);
  // Invalid UTF-8 in a prompt is replaced rather than refused: the token ids are what count.
  return j.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

void write_manifest(const std::filesystem::path& dir, const Manifest& m) {
  const std::string text = manifest_to_json(m);
  write_file_atomically(dir / kManifestFileName,
                        std::as_bytes(std::span<const char>(text.data(), text.size())));
}

namespace {

// Reads a small regular file whole; a FIFO or device is refused without blocking.
std::string read_small_file(const std::filesystem::path& file, uint64_t limit) {
  const std::string where = file.string();
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) throw Error(where + ": cannot open the trace manifest: " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw Error(where + ": the trace manifest is not a regular file");
  }
  if (static_cast<uint64_t>(st.st_size) > limit) {
    ::close(fd);
    throw Error(where + ": the trace manifest is " + std::to_string(st.st_size) +
                " bytes, more than the " + std::to_string(limit) + " a manifest may have");
  }
  std::string text(static_cast<size_t>(st.st_size), '\0');
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t got = ::read(fd, text.data() + done, text.size() - done);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;
    done += static_cast<size_t>(got);
  }
  ::close(fd);
  text.resize(done);
  return text;
}

// Validates one field at a time so every message names the field, never a library's type.
class FieldReader {
 public:
  explicit FieldReader(std::string where) : where_(std::move(where)) {}

  [[noreturn]] void fail(const std::string& field, const std::string& what) const {
    throw Error(where_ + ": " + field + ": " + what);
  }

  const json& member(const json& obj, const char* key, const std::string& field) const {
    const auto it = obj.find(key);
    if (it == obj.end()) fail(field, "missing");
    return *it;
  }

  std::string string(const json& obj, const char* key, const std::string& field,
                     bool required) const {
    const auto it = obj.find(key);
    if (it == obj.end()) {
      if (required) fail(field, "missing");
      return {};
    }
    if (!it->is_string()) fail(field, "is not a string");
    return it->get<std::string>();
  }

  const json& object(const json& obj, const char* key, const std::string& field) const {
    const json& v = member(obj, key, field);
    if (!v.is_object()) fail(field, "is not an object");
    return v;
  }

  // An integer in [0, max]; a float such as 6.7e25 or a negative number is refused before any
  // conversion.
  uint64_t count(const json& v, uint64_t max, const std::string& field) const {
    if (!v.is_number_integer()) fail(field, std::string("is not an integer (") + v.dump() + ")");
    if (v.is_number_integer() && !v.is_number_unsigned()) fail(field, "is negative");
    const uint64_t n = v.get<uint64_t>();
    if (n > max)
      fail(field, std::to_string(n) + " is out of range (at most " + std::to_string(max) + ")");
    return n;
  }

 private:
  std::string where_;
};

bool is_hex64(const std::string& s) {
  if (s.size() != 64) return false;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) return false;
  return true;
}

// "steps" and "ubatch" of a v2 manifest: steps numbered 0, 1, 2, ... in order, each with the
// tokens it fed.
void read_steps(const FieldReader& r, const json& j, Manifest& m) {
  m.ubatch =
      static_cast<uint32_t>(r.count(r.member(j, "ubatch", "\"ubatch\""), UINT32_MAX, "\"ubatch\""));
  const json& steps = r.member(j, "steps", "\"steps\"");
  if (!steps.is_array() || steps.empty()) r.fail("\"steps\"", "is not a non-empty array");
  for (size_t i = 0; i < steps.size(); ++i) {
    const std::string field = "steps[" + std::to_string(i) + "]";
    const json& s = steps[i];
    if (!s.is_object()) r.fail(field, "is not an object");
    ManifestStep st;
    st.step = static_cast<uint32_t>(
        r.count(r.member(s, "step", field + ".step"), UINT32_MAX, field + ".step"));
    if (st.step != i)
      r.fail(field + ".step", "is " + std::to_string(st.step) + ", not " + std::to_string(i) +
                                  " (steps are numbered in order)");
    st.pos0 = static_cast<uint32_t>(
        r.count(r.member(s, "pos0", field + ".pos0"), UINT32_MAX, field + ".pos0"));
    const json& tokens = r.member(s, "tokens", field + ".tokens");
    if (!tokens.is_array() || tokens.empty()) r.fail(field + ".tokens", "is not a non-empty array");
    for (size_t t = 0; t < tokens.size(); ++t)
      st.tokens.push_back(static_cast<int32_t>(
          r.count(tokens[t], INT32_MAX, field + ".tokens[" + std::to_string(t) + "]")));
    if (s.contains("next_token") && !s["next_token"].is_null())
      st.next_token =
          static_cast<int32_t>(r.count(s["next_token"], INT32_MAX, field + ".next_token"));
    m.steps.push_back(std::move(st));
  }
}

}  // namespace

Manifest read_manifest(const std::filesystem::path& file) {
  const std::string where = file.string();
  const std::string text = read_small_file(file, kMaxManifestBytes);
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    throw Error(where + ": not valid JSON: " + e.what());
  }
  const FieldReader r(where);
  if (!j.is_object()) throw Error(where + ": not an apr trace manifest (not a JSON object)");
  const bool v2 = j.contains("format") && j["format"] == kManifestFormatSteps;
  if (!v2 && (!j.contains("format") || !j["format"].is_string() || j["format"] != kManifestFormat))
    throw Error(where + ": not an apr trace manifest (\"format\" is not \"" +
                std::string(kManifestFormat) + "\" or \"" + kManifestFormatSteps + "\")");
  Manifest m;
  const json& model = r.object(j, "model", "\"model\"");
  m.model_path = r.string(model, "path", "\"model.path\"", false);
  m.model_sha256 = r.string(model, "sha256", "\"model.sha256\"", false);
  if (!m.model_sha256.empty() && !is_hex64(m.model_sha256))
    r.fail("\"model.sha256\"", "is not 64 hexadecimal digits");
  m.architecture = r.string(model, "architecture", "\"model.architecture\"", false);
  const json& backend = r.object(j, "backend", "\"backend\"");
  m.backend = r.string(backend, "name", "\"backend.name\"", false);
  m.plugin_version = r.string(backend, "plugin_version", "\"backend.plugin_version\"", false);
  if (j.contains("prompt") && !j["prompt"].is_null()) {
    if (!j["prompt"].is_string()) r.fail("\"prompt\"", "is neither a string nor null");
    m.prompt = j["prompt"].get<std::string>();
  }
  if (j.contains("token_ids")) {
    const json& ids = j["token_ids"];
    if (!ids.is_array()) r.fail("\"token_ids\"", "is not an array");
    m.token_ids.reserve(ids.size());
    for (size_t i = 0; i < ids.size(); ++i)
      m.token_ids.push_back(static_cast<int32_t>(
          r.count(ids[i], INT32_MAX, "\"token_ids\"[" + std::to_string(i) + "]")));
  }
  if (v2) read_steps(r, j, m);
  const json& files = r.member(j, "files", "\"files\"");
  if (!files.is_array()) r.fail("\"files\"", "is not an array");
  for (size_t i = 0; i < files.size(); ++i) {
    const std::string field = "files[" + std::to_string(i) + "]";
    const json& f = files[i];
    if (!f.is_object()) r.fail(field, "is not an object");
    ManifestFile mf;
    mf.path = r.string(f, "path", field + ".path", true);
    if (v2) {
      mf.step = static_cast<uint32_t>(
          r.count(r.member(f, "step", field + ".step"), m.steps.size() - 1, field + ".step"));
    }
    const std::string stage_text = r.string(f, "stage", field + ".stage", true);
    const auto stage = stage_from_name(stage_text);
    if (!stage) r.fail(field + ".stage", "unknown stage \"" + stage_text + "\"");
    mf.stage = *stage;
    const json& layer = r.member(f, "layer", field + ".layer");
    if (layer.is_null()) {
      if (!is_whole_model_stage(mf.stage))
        r.fail(field + ".layer", "is null but " + stage_text + " belongs to a layer");
      mf.layer = APR_LAYER_NONE;
    } else {
      mf.layer = static_cast<uint32_t>(r.count(layer, APR_LAYER_NONE - 1, field + ".layer"));
      if (!stage_exists_in_layer(mf.stage, mf.layer))
        r.fail(field + ".layer", stage_text + " has no layer " + std::to_string(mf.layer));
    }
    // Only the canonical name is accepted, which also keeps every path inside the directory.
    const std::string expected = stage_file_path(mf.stage, mf.layer, mf.step);
    if (mf.path != expected)
      r.fail(field + ".path", "\"" + mf.path + "\" does not match its " +
                                  (v2 ? "step, stage and layer" : "stage and layer") +
                                  " (expected \"" + expected + "\")");
    const json& shape = r.member(f, "shape", field + ".shape");
    if (!shape.is_array() || shape.empty() || shape.size() > 4)
      r.fail(field + ".shape", "is not an array of 1 to 4 dimensions");
    uint64_t count = 1;
    for (size_t d = 0; d < shape.size(); ++d) {
      const uint64_t n = r.count(shape[d], UINT32_MAX, field + ".shape[" + std::to_string(d) + "]");
      // An APRT file holds at most 2^32-1 elements, so a larger product is not a real file.
      if (n != 0 && count > UINT32_MAX / n)
        r.fail(field + ".shape", "the element count overflows an APRT file's u32 count");
      count *= n;
      mf.shape.push_back(n);
    }
    mf.dtype = r.string(f, "dtype", field + ".dtype", false);
    if (mf.dtype.empty()) mf.dtype = "f32";
    if (mf.dtype != "f32")
      r.fail(field + ".dtype", "\"" + mf.dtype + "\" is not f32, the only APRT type");
    if (f.contains("nbytes") &&
        r.count(f["nbytes"], UINT64_MAX, field + ".nbytes") != count * sizeof(float))
      r.fail(field + ".nbytes", std::to_string(f["nbytes"].get<uint64_t>()) +
                                    " disagrees with the shape (" + std::to_string(count) +
                                    " f32 elements)");
    for (const auto& other : m.files)
      if (other.stage == mf.stage && other.layer == mf.layer && other.step == mf.step)
        r.fail(field, "\"" + mf.path + "\" is listed twice");
    m.files.push_back(std::move(mf));
  }
  return m;
}

uint64_t element_count(const ManifestFile& f) {
  uint64_t n = 1;
  for (uint64_t d : f.shape) n *= d;
  return n;
}

}  // namespace apr::trace
