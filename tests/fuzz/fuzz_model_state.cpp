// tests/fuzz/fuzz_model_state.cpp — the model loaders on arbitrary bytes: the safetensors reader,
// then (1) the state dict into a fixed tiny fer_cnn, and (2) what fer_cnn eval/predict do with a
// checkpoint: the model description checked against the file, the network it describes built and
// loaded. A kiln::Error is a refusal (fine); anything else is a bug.
#include "optim/fer_cnn_checkpoint.h"
#include "tests/fuzz/harness.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::optional<kiln::StFile> file = kiln::fuzz::read_or_refuse(data, size, "fuzz");
  if (!file) return 0;
  try {
    kiln::load_model_state_dict(kiln::fuzz::tiny_fer_cnn(), *file, "fuzz");
  } catch (const kiln::Error&) {
  }
  try {
    const kiln::FerCnnCheckpointInfo info = kiln::fer_cnn_info_from_header(*file, "fuzz");
    auto net = kiln::make_fer_cnn(info.config);
    kiln::load_model_state_dict(*net, *file, "fuzz");
  } catch (const kiln::Error&) {
  }
  return 0;
}
