// io/safetensors.cpp — the safetensors reader and writer (format in safetensors.h).
#include "io/safetensors.h"

#include <algorithm>
#include <cstring>
#include <functional>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "core/error.h"
#include "io/file.h"

namespace kiln {

std::string shape_str(const std::vector<int64_t>& shape) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << shape[i];
  os << "]";
  return os.str();
}

size_t st_dtype_size(const std::string& dtype) {
  if (dtype == "F32" || dtype == "I32" || dtype == "U32") return 4;
  if (dtype == "F64" || dtype == "I64" || dtype == "U64") return 8;
  if (dtype == "F16" || dtype == "BF16" || dtype == "I16" || dtype == "U16") return 2;
  if (dtype == "U8" || dtype == "I8" || dtype == "BOOL" || dtype == "F8_E4M3" || dtype == "F8_E5M2")
    return 1;
  return 0;
}

int64_t shape_numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

namespace {

using ordered_json = nlohmann::ordered_json;

// ---- reading: the safetensors specification, checked before anything is trusted ----------------
// The header length is bounded by the file and by kMaxHeaderBytes (the specification's own limit
// of 100 MB), so a small file cannot make the reader allocate much; the header is JSON without
// duplicate keys; every entry is {"dtype": known string, "shape": [non-negative integers],
// "data_offsets": [begin, end]} with end - begin == product(shape) * dtype size (overflow-checked);
// the entries' byte ranges, sorted, are contiguous from 0 and cover the data exactly;
// "__metadata__" maps strings to strings. Tensor bytes are allocated only after all of that holds.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

const char* const kMissingCheckpointHint =
    "check the path; checkpoints are written by `fer_cnn train --out DIR`";

std::string not_safetensors(const std::string& path) {
  return "'" + path + "' is not a safetensors checkpoint: ";
}

// Where the bytes come from: a file (read in order, never seeking back) or memory.
using ReadBytes = std::function<void(void* dst, uint64_t bytes)>;

// Parses JSON, recording the first key that repeats within one object (nlohmann keeps the last
// value silently, so two files that differ only there would load alike).
ordered_json parse_json_unique_keys(const std::string& text, std::string* duplicate) {
  std::vector<std::set<std::string>> keys;  // the keys seen so far, per open object
  auto callback = [&](int /*depth*/, nlohmann::json::parse_event_t event, ordered_json& parsed) {
    using E = nlohmann::json::parse_event_t;
    if (event == E::object_start) keys.emplace_back();
    if (event == E::object_end && !keys.empty()) keys.pop_back();
    if (event == E::key && !keys.empty() && !keys.back().insert(parsed.get<std::string>()).second &&
        duplicate->empty())
      *duplicate = parsed.get<std::string>();
    return true;
  };
  return ordered_json::parse(text, callback);
}

// Reads and checks the header; returns the tensors without their bytes (data_offsets in
// `offsets`, in the header's order) and the metadata, and sets *data_size to the data's length.
StFile read_header(const ReadBytes& read, uint64_t size, const std::string& path,
                   std::vector<std::pair<uint64_t, uint64_t>>* offsets, uint64_t* data_size) {
  const std::string not_st = not_safetensors(path);
  KILN_CHECK(size >= 8, not_st, "the file has only ", size,
             " bytes, less than the 8-byte header length");
  uint8_t len[8];
  read(len, 8);
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= static_cast<uint64_t>(len[i]) << (8 * i);
  KILN_CHECK(n <= size - 8, not_st, "the header length ", n, " exceeds the file's ", size - 8,
             " remaining bytes (truncated file, or another format)");
  KILN_CHECK(n <= kMaxHeaderBytes, not_st, "the header length ", n,
             " exceeds the specification's limit of ", kMaxHeaderBytes, " bytes");
  std::string text(n, '\0');
  read(text.data(), n);
  ordered_json header;
  std::string duplicate;
  try {
    header = parse_json_unique_keys(text, &duplicate);
  } catch (const std::exception& e) {
    KILN_FAIL(not_st, "its header is not valid JSON (", e.what(), ")");
  }
  KILN_CHECK(header.is_object(), not_st, "its header is not a JSON object");
  KILN_CHECK(duplicate.empty(), not_st, "its header has the key '", duplicate,
             "' twice (a tensor or metadata name must be unique)");
  *data_size = size - 8 - n;
  StFile file;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const ordered_json& v = it.value();
    if (name == "__metadata__") {
      KILN_CHECK(v.is_object(), not_st, "__metadata__ is not a JSON object");
      for (auto m = v.begin(); m != v.end(); ++m) {
        KILN_CHECK(m.value().is_string(), not_st, "metadata '", m.key(),
                   "' is not a string (__metadata__ maps strings to strings)");
        file.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string entry = "tensor '" + name + "' ";
    KILN_CHECK(v.is_object() && v.size() == 3 && v.contains("dtype") && v.contains("shape") &&
                   v.contains("data_offsets"),
               not_st, entry, "must be an object with exactly dtype, shape and data_offsets");
    StTensor t;
    t.name = name;
    KILN_CHECK(v["dtype"].is_string(), not_st, entry, "has a dtype that is not a string");
    t.dtype = v["dtype"].get<std::string>();
    const uint64_t elem = st_dtype_size(t.dtype);
    KILN_CHECK(elem != 0, not_st, entry, "has the unknown dtype '", t.dtype, "'");
    const ordered_json& shape = v["shape"];
    KILN_CHECK(shape.is_array(), not_st, entry, "has a shape that is not an array");
    uint64_t bytes = elem;
    for (const ordered_json& d : shape) {
      KILN_CHECK(d.is_number_unsigned(), not_st, entry, "has a shape entry ", d.dump(),
                 " that is not a non-negative integer");
      const uint64_t dim = d.get<uint64_t>();
      KILN_CHECK(dim <= uint64_t(INT64_MAX) && !__builtin_mul_overflow(bytes, dim, &bytes), not_st,
                 entry, "has a shape whose size overflows 64 bits");
      t.shape.push_back(static_cast<int64_t>(dim));
    }
    const ordered_json& off = v["data_offsets"];
    KILN_CHECK(off.is_array() && off.size() == 2 && off[0].is_number_unsigned() &&
                   off[1].is_number_unsigned(),
               not_st, entry, "must have data_offsets [begin, end] of two non-negative integers");
    const uint64_t begin = off[0].get<uint64_t>(), end = off[1].get<uint64_t>();
    KILN_CHECK(begin <= end && end <= *data_size, not_st, entry, "has data_offsets [", begin, ", ",
               end, "] outside the file's ", *data_size, " data bytes (truncated file?)");
    KILN_CHECK(end - begin == bytes, not_st, entry, "has ", end - begin, " bytes but its dtype ",
               t.dtype, " and shape ", shape_str(t.shape), " need ", bytes);
    offsets->push_back({begin, end});
    file.tensors.push_back(std::move(t));
  }
  // The byte ranges, in order, must tile the data: no gap, no overlap, nothing left over.
  std::vector<size_t> order(offsets->size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return (*offsets)[a] < (*offsets)[b]; });
  uint64_t at = 0;
  for (size_t i : order) {
    const auto [begin, end] = (*offsets)[i];
    KILN_CHECK(begin == at, not_st, "tensor '", file.tensors[i].name, "' starts at byte ", begin,
               " of the data but the previous tensor ends at ", at,
               " (the tensors' bytes must be contiguous and must not overlap)");
    at = end;
  }
  KILN_CHECK(at == *data_size, not_st, "the tensors cover ", at, " of the file's ", *data_size,
             " data bytes (extra bytes after the last tensor)");
  return file;
}

StFile read_safetensors_from(const ReadBytes& read, uint64_t size, const std::string& path) {
  std::vector<std::pair<uint64_t, uint64_t>> offsets;
  uint64_t data_size = 0;
  StFile file = read_header(read, size, path, &offsets, &data_size);
  // The ranges tile the data, so reading the tensors in offset order reads the data in order.
  std::vector<size_t> order(offsets.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return offsets[a] < offsets[b]; });
  for (size_t i : order) {
    std::vector<uint8_t>& bytes = file.tensors[i].bytes;
    bytes.resize(offsets[i].second - offsets[i].first);
    read(bytes.data(), bytes.size());
  }
  return file;
}

ReadBytes file_reader(InputFile& in) {
  return [&in](void* dst, uint64_t bytes) { in.read(dst, bytes); };
}

}  // namespace

const StTensor* StFile::find(const std::string& name) const {
  for (const StTensor& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

void write_safetensors(const std::string& path, const StFile& file) {
  ordered_json header = ordered_json::object();
  if (!file.metadata.empty()) {
    ordered_json meta = ordered_json::object();
    for (const auto& [k, v] : file.metadata) meta[k] = v;
    header["__metadata__"] = meta;
  }
  size_t offset = 0;
  for (const StTensor& t : file.tensors) {
    const size_t size = st_dtype_size(t.dtype);
    KILN_CHECK(size != 0, "write_safetensors: unknown dtype '", t.dtype, "' of ", t.name);
    KILN_CHECK(t.bytes.size() == static_cast<size_t>(shape_numel(t.shape)) * size,
               "write_safetensors: ", t.name, " has ", t.bytes.size(), " bytes for shape ",
               shape_str(t.shape));
    header[t.name] = {{"dtype", t.dtype},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + t.bytes.size()}}};
    offset += t.bytes.size();
  }
  std::string json = header.dump();
  json.append((8 - json.size() % 8) % 8, ' ');  // the data starts 8-byte aligned
  std::string out;
  out.reserve(8 + json.size() + offset);
  uint64_t n = json.size();
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  out += json;
  for (const StTensor& t : file.tensors)
    out.append(reinterpret_cast<const char*>(t.bytes.data()), t.bytes.size());
  write_file_atomic(path, out);
}

StFile read_safetensors(const std::string& path) {
  InputFile in(path, "checkpoint", kMissingCheckpointHint);
  return read_safetensors_from(file_reader(in), in.size(), path);
}

StFile parse_safetensors(std::string_view bytes, const std::string& name) {
  uint64_t at = 0;
  auto read = [&](void* dst, uint64_t n) {
    KILN_CHECK(n <= bytes.size() - at, "'", name, "' ended early");
    if (n > 0) std::memcpy(dst, bytes.data() + at, n);  // dst may be null for an empty tensor
    at += n;
  };
  return read_safetensors_from(read, bytes.size(), name);
}

StFile read_safetensors_header(const std::string& path) {
  InputFile in(path, "checkpoint", kMissingCheckpointHint);
  std::vector<std::pair<uint64_t, uint64_t>> offsets;
  uint64_t data_size = 0;
  return read_header(file_reader(in), in.size(), path, &offsets, &data_size);
}

std::map<std::string, std::string> read_safetensors_metadata(const std::string& path) {
  return read_safetensors_header(path).metadata;
}

}  // namespace kiln
