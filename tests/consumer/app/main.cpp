// Uses the installed library through <kiln/kiln.h> alone, as a program would: a kernel, layers, a
// loss and an optimizer, a data set, and a checkpoint round trip. Each result is checked; any
// mismatch prints what differs and exits 1.
#include <kiln/kiln.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

namespace {

int failures = 0;

void check(bool ok, const std::string& what) {
  if (!ok) {
    std::printf("consumer: FAILED: %s\n", what.c_str());
    ++failures;
  }
}

}  // namespace

int main() {
  // A kernel on CPU tensors.
  kiln::Tensor x = kiln::Tensor::from_vector<float>({1, 4}, {-2.f, -0.5f, 0.f, 3.f});
  kiln::Tensor y({1, 4});
  kiln::leaky_relu_forward(y, x, 0.1);
  const std::vector<float> got = y.to_vector<float>();
  const float expected[4] = {-0.2f, -0.05f, 0.f, 3.f};
  for (int i = 0; i < 4; ++i) {
    check(got[i] == expected[i], "leaky_relu_forward y[" + std::to_string(i) +
                                     "] = " + std::to_string(got[i]) + ", expected " +
                                     std::to_string(expected[i]));
  }

  // Data: a data set of two 2x2 gray images, one per class.
  kiln::data::Dataset faces = kiln::data::Dataset::with_spec({1, 2, 2}, {"dark", "light"});
  const uint8_t dark[4] = {10, 20, 30, 40}, light[4] = {200, 210, 220, 230};
  faces.push_back(dark, 0);
  faces.push_back(light, 1);
  check(faces.size() == 2 && faces.class_counts() == std::vector<size_t>{1, 1},
        "Dataset holds one image of each class");

  // Layers, loss and optimizer: SGD steps on the two images lower the loss.
  kiln::Sequential net;
  net.emplace<kiln::Linear>(4, 2);
  net.init(7);
  kiln::Tensor batch =
      kiln::Tensor::from_vector<float>({2, 4}, {0.1f, 0.2f, 0.3f, 0.4f, 0.8f, 0.85f, 0.9f, 0.95f});
  kiln::Tensor labels = kiln::Tensor::from_vector<int32_t>({2}, {0, 1});
  kiln::SoftmaxCrossEntropy criterion;
  kiln::Sgd sgd(net.flat_params(), net.flat_grads(), {.lr = 0.5f});
  double first = 0, last = 0;
  for (int step = 0; step < 20; ++step) {
    net.zero_grad();
    last = criterion.forward(net.forward(batch, kiln::Mode::train), labels);
    if (step == 0) first = last;
    net.backward(criterion.backward());
    sgd.step();
  }
  check(last < first, "20 SGD steps lower the loss (" + std::to_string(first) + " -> " +
                          std::to_string(last) + ")");

  // Checkpoint: a saved model loads into a fresh one, which then predicts the same logits.
  const std::string path =
      (std::filesystem::temp_directory_path() / "kiln_consumer_model.safetensors").string();
  kiln::save_model(path, net, {{"note", "consumer"}});
  kiln::Sequential other;
  other.emplace<kiln::Linear>(4, 2);
  other.init(8);
  const auto metadata = kiln::load_model(path, other);
  std::filesystem::remove(path);
  check(metadata.count("note") == 1 && metadata.at("note") == "consumer",
        "the checkpoint's metadata comes back");
  check(other.forward(batch, kiln::Mode::eval).to_vector<float>() ==
            net.forward(batch, kiln::Mode::eval).to_vector<float>(),
        "the loaded model predicts the saved model's logits");

  if (failures != 0) return 1;
  std::printf(
      "consumer: a kernel, layers, SGD, a data set and a checkpoint through the installed "
      "kiln::kiln: ok\n");
  return 0;
}
