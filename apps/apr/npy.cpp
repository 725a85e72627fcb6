// SPDX-License-Identifier: MIT
#include "npy.hpp"

#include <cstdint>
#include <fstream>

#include "common/error.hpp"

namespace apr::cli {

void write_npy_f32(const std::string& path, const std::vector<std::vector<float>>& rows) {
  const size_t cols = rows.empty() ? 0 : rows.front().size();
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" +
                       std::to_string(rows.size()) + ", " + std::to_string(cols) + "), }";
  // Magic (6) + version (2) + header length (2) + header, padded with spaces to a multiple of
  // 64 and ended by a newline, as the format asks.
  const size_t unpadded = 10 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header.push_back('\n');

  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw Error("cannot write '" + path + "'");
  const uint16_t len = static_cast<uint16_t>(header.size());
  out.write("\x93NUMPY\x01\x00", 8);
  const char len_le[2] = {static_cast<char>(len & 0xFF), static_cast<char>(len >> 8)};
  out.write(len_le, 2);
  out << header;
  for (const auto& r : rows) {
    if (r.size() != cols) throw Error("write_npy_f32: ragged rows");
    out.write(reinterpret_cast<const char*>(r.data()), std::streamsize(r.size() * sizeof(float)));
  }
  out.flush();
  if (!out) throw Error("writing '" + path + "' failed (disk full?)");
}

}  // namespace apr::cli
