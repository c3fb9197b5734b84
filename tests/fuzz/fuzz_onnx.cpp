// tests/fuzz/fuzz_onnx.cpp — the ONNX importer (onnx/kiln_onnx.h) on arbitrary bytes: either a
// kiln::Error or a network whose weights the file bounds; a network small enough to run
// (every activation of one image at most 64 K values) then runs one forward in eval mode, which
// proves that the layers accept what the importer built from the file's claims.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "onnx/kiln_onnx.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  try {
    kiln::OnnxModel m = kiln::import_onnx(bytes, "fuzz.onnx");
    // The importer bounds the weights by the file: at most 4x its size plus 1 MB (shared
    // initializers may be read by several nodes).
    if (m.net->num_params() * 4 > 4 * int64_t(size) + (int64_t(1) << 20)) std::abort();
    kiln::Shape s{1, m.height, m.width, m.channels};
    bool small = s.numel() <= 65536;
    for (int i = 0; i < m.net->size() && small; ++i) {
      s = (*m.net)[i].output_shape(s);
      small = s.numel() <= 65536;
    }
    if (small) {
      const kiln::Shape in{1, m.height, m.width, m.channels};
      const kiln::Tensor x =
          kiln::Tensor::from_vector<float>(in, std::vector<float>(size_t(in.numel()), 0.5f));
      const kiln::Tensor& y = m.net->forward(x, kiln::Mode::eval);
      if (y.shape() != kiln::Shape({1, m.classes})) std::abort();
    }
  } catch (const kiln::Error&) {
  }
  return 0;
}
