// tests/interop/make_reference.cpp — writes what tests/interop/check_torch.py compares with
// PyTorch: for two fer_cnn configurations (1x48x48, and 3x64x64 whose first linear layer sees 2x2
// pixels, so the CHW column permutation matters), a trained-a-little checkpoint (non-trivial
// running statistics), an input batch (NHWC) and Kiln's eval-mode logits for it.
//
//   kiln_interop_reference OUT_DIR     -> OUT_DIR/<name>.safetensors, OUT_DIR/<name>.io.safetensors
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "core/error.h"
#include "layers/fer_cnn.h"
#include "layers/loss.h"
#include "optim/checkpoint.h"
#include "optim/optimizer.h"

using namespace kiln;

namespace {
StTensor f32_entry(const std::string& name, const Tensor& t) {
  std::vector<float> v = t.to_vector<float>();
  StTensor e{name, "F32", t.shape().dims(), std::vector<uint8_t>(v.size() * 4)};
  std::memcpy(e.bytes.data(), v.data(), e.bytes.size());
  return e;
}

Tensor pseudo_random(Shape shape, uint32_t seed) {
  std::vector<float> v(shape.numel());
  uint32_t s = seed;
  for (float& x : v) {
    s = s * 1664525u + 1013904223u;
    x = static_cast<float>(s >> 8) / 16777216.0f;
  }
  return Tensor::from_vector(shape, v);
}

void make(const std::string& dir, const std::string& name, int c, int hw, double width) {
  auto net = make_fer_cnn(c, hw, hw, 7, width, 11);
  Adam opt(net->flat_params(), net->flat_grads(), {.lr = 1e-2f});
  SoftmaxCrossEntropy xent;
  for (int step = 0; step < 3; ++step) {
    Tensor x = pseudo_random({8, hw, hw, c}, 100 + step);
    Tensor y = Tensor::from_vector<int32_t>({8}, {0, 1, 2, 3, 4, 5, 6, 0});
    net->zero_grad();
    xent.forward(net->forward(x, Mode::train), y);
    net->backward(xent.backward(), {.need_dx = false});
    opt.step();
  }
  save_model(dir + "/" + name + ".safetensors", *net);
  Tensor x = pseudo_random({5, hw, hw, c}, 7);
  StFile io;
  io.tensors.push_back(f32_entry("input_nhwc", x));
  io.tensors.push_back(f32_entry("logits", net->forward(x, Mode::eval)));
  io.metadata = {{"channels", std::to_string(c)},
                 {"size", std::to_string(hw)},
                 {"widths", [&] {
                    std::string s;
                    for (int w : fer_cnn_widths(width)) {
                      if (!s.empty()) s += ',';
                      s += std::to_string(w);
                    }
                    return s;
                  }()}};
  write_safetensors(dir + "/" + name + ".io.safetensors", io);
  std::printf("wrote %s/%s.safetensors\n", dir.c_str(), name.c_str());
}
}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUT_DIR\n", argv[0]);
    return 2;
  }
  try {
    std::filesystem::create_directories(argv[1]);
    make(argv[1], "gray48", 1, 48, 0.125);
    make(argv[1], "rgb64", 3, 64, 0.125);
  } catch (const Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
