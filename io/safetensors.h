// io/safetensors.h — the safetensors file format: reading it from strangers, writing it atomically.
//
// A safetensors file is an 8-byte little-endian header length n, n bytes of JSON
// {name: {dtype, shape, data_offsets}, "__metadata__": {str: str}} (Kiln pads it with spaces so the
// data starts 8-byte aligned), then the tensors' raw little-endian bytes, offsets relative to the
// end of the header. This file knows the format only: names, dtypes, shapes and bytes. What the
// tensors mean — a model's state_dict in PyTorch's names and layouts, an optimizer's state — is
// optim/checkpoint.h's business (docs/checkpoints.md).
//
// Files are written with write_file_atomic (io/file.h) and read through InputFile (regular files
// only), so a save never tears the previous file and a FIFO or device is refused, not read.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace kiln {

struct StTensor {
  std::string name;
  std::string dtype;           // "F32", "F64", "I64", "I32", "U8"
  std::vector<int64_t> shape;  // empty: a 0-d scalar
  std::vector<uint8_t> bytes;  // little-endian, row-major
};

struct StFile {
  std::vector<StTensor> tensors;  // written in this order
  std::map<std::string, std::string> metadata;
  const StTensor* find(const std::string& name) const;
};

// "[2, 3]": a shape as error messages show it.
std::string shape_str(const std::vector<int64_t>& shape);
// Bytes per element of a dtype of the safetensors specification ("F32" 4, "BF16" 2, ...); 0 for a
// dtype the specification does not name.
size_t st_dtype_size(const std::string& dtype);
// The product of a shape's dimensions (1 for a 0-d scalar); the caller has checked it fits.
int64_t shape_numel(const std::vector<int64_t>& shape);

void write_safetensors(const std::string& path, const StFile& file);
// Reads a safetensors file, checked against the specification before anything is allocated or
// copied (header length bounded by the file and 100 MB; JSON without duplicate keys; every entry's
// dtype, integer shape and data_offsets; the tensors' bytes contiguous, non-overlapping and
// covering the data exactly; metadata strings only). Throws kiln::Error naming the file and the
// rule broken for a missing, truncated or malformed file, or one that is not a regular file.
StFile read_safetensors(const std::string& path);
// The same from the file's bytes in memory; `name` names it in errors.
StFile parse_safetensors(std::string_view bytes, const std::string& name);
// Only the header, checked as above: the tensors' names, dtypes and shapes (no bytes) and the
// metadata; the tensors' data is not read.
StFile read_safetensors_header(const std::string& path);
std::map<std::string, std::string> read_safetensors_metadata(const std::string& path);

}  // namespace kiln
