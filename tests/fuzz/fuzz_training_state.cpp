// tests/fuzz/fuzz_training_state.cpp — the training-state loader (what --resume reads) on
// arbitrary bytes, into Adam and SGD with momentum over a fixed tiny fer_cnn. A kiln::Error is a
// refusal (fine); anything else is a bug.
#include "tests/fuzz/harness.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  kiln::Sequential& net = kiln::fuzz::tiny_fer_cnn();
  static kiln::Adam adam(net.flat_params(), net.flat_grads());
  static kiln::Sgd sgd(net.flat_params(), net.flat_grads(),
                       kiln::SgdOptions{.lr = 0.01f, .momentum = 0.9f});
  const std::optional<kiln::StFile> file = kiln::fuzz::read_or_refuse(data, size, "fuzz");
  if (!file) return 0;
  for (kiln::Optimizer* opt :
       {static_cast<kiln::Optimizer*>(&adam), static_cast<kiln::Optimizer*>(&sgd)}) {
    try {
      kiln::restore_training_state(*file, "fuzz", *opt, net);
    } catch (const kiln::Error&) {
    }
  }
  return 0;
}
