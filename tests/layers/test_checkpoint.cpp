// tests/layers/test_checkpoint.cpp — safetensors checkpoints: the PyTorch layout, round trips,
// another architecture refused with the tensor named, corrupt files refused, atomic replacement,
// and an exactly resumable training state.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>

#include "core/error.h"
#include "layers/activation.h"
#include "layers/conv2d.h"
#include "layers/fer_cnn.h"
#include "layers/linear.h"
#include "layers/loss.h"
#include "layers/pooling.h"
#include "layers/sequential.h"
#include "optim/checkpoint.h"
#include "tests/support/random.h"
#include "tests/support/tensors.h"
#include "tests/support/temp_dir.h"

using namespace kiln;
using namespace kiln::test;
namespace fs = std::filesystem;

namespace {

// One training step on fixed random data.
double train_step(Sequential& net, Optimizer& opt, uint64_t seed, int size = 32, int channels = 1) {
  SoftmaxCrossEntropy xent;
  Tensor x =
      kiln::test::random_tensor<float>({4, size, size, channels}, seed, Device::cpu, 0.0, 1.0);
  Tensor y = Tensor::from_vector<int32_t>({4}, {int32_t(seed % 7), 1, 2, 3});
  net.zero_grad();
  const double loss = xent.forward(net.forward(x, Mode::train), y);
  net.backward(xent.backward(), {.need_dx = false});
  opt.step();
  return loss;
}
}  // namespace

TEST_CASE("a checkpoint holds PyTorch's 41 tensors in PyTorch's layouts", "[cpu][checkpoint]") {
  auto net = make_fer_cnn(1, 48, 48, 7, 1.0 / 8, 3);
  StFile f = model_state_dict(*net);
  REQUIRE(f.tensors.size() == 41);
  CHECK(f.tensors[0].name == "0.weight");
  CHECK(f.tensors[0].shape == std::vector<int64_t>{8, 1, 3, 3});
  CHECK(f.tensors[1].name == "0.bias");
  CHECK(f.tensors[2].name == "1.weight");
  CHECK(f.tensors[4].name == "1.running_mean");
  CHECK(f.tensors[6].name == "1.num_batches_tracked");
  CHECK(f.tensors[6].dtype == "I64");
  CHECK(f.tensors[6].shape.empty());
  CHECK(f.tensors[7].name == "5.weight");
  CHECK(f.tensors[7].shape == std::vector<int64_t>{16, 8, 3, 3});
  CHECK(f.tensors.back().name == "30.bias");
  // Conv weights are OIHW: PyTorch's [o][i][kh][kw] is Kiln's [o][kh][kw][i].
  std::vector<double> w = values((*net)[5].params()[0].value->view({16, 3, 3, 8}));
  const StTensor& t = f.tensors[7];
  const float* tw = reinterpret_cast<const float*>(t.bytes.data());
  CHECK(tw[((3 * 8 + 5) * 3 + 2) * 3 + 1] == float(w[((3 * 3 + 2) * 3 + 1) * 8 + 5]));
}

TEST_CASE("the first linear layer's columns are in PyTorch's CHW order", "[cpu][checkpoint]") {
  // 3x64x64 input, width 1/8: the flatten sees 64 channels x 2 x 2.
  auto net = make_fer_cnn(3, 64, 64, 7, 1.0 / 8, 3);
  auto& lin = (*net)[26];
  std::vector<double> w = values(*lin.params()[0].value);  // [128][2*2*64] in HWC order
  const int C = 64, H = 2, W = 2, cols = C * H * W;
  StFile f = model_state_dict(*net);
  const StTensor* t = f.find("26.weight");
  REQUIRE(t != nullptr);
  const float* tw = reinterpret_cast<const float*>(t->bytes.data());
  for (int r : {0, 17})
    for (int c : {0, 5, 63})
      for (int h = 0; h < H; ++h)
        for (int x = 0; x < W; ++x)
          CHECK(tw[r * cols + (c * H + h) * W + x] == float(w[r * cols + (h * W + x) * C + c]));
}

TEST_CASE("a hand-built network needs no set_input_shape, and an unknown layout is refused",
          "[cpu][checkpoint]") {
  // Conv -> LeakyReLU -> MaxPool -> Flatten -> Linear: the Flatten sees 4 channels x 3 x 2.
  auto build = [] {
    auto net = std::make_unique<Sequential>();
    net->emplace<Conv2d>(3, 4, 3, 1, 1);
    net->emplace<LeakyReLU>(0.01);
    net->emplace<MaxPool2d>(2);
    net->emplace<Flatten>();
    net->emplace<Linear>(4 * 3 * 2, 5);
    net->init(7);
    return net;
  };
  const TempDir tmp("handbuilt");
  const fs::path& dir = tmp.path();
  const std::string shaped_path = (dir / "shaped.safetensors").string();
  const std::string forwarded_path = (dir / "forwarded.safetensors").string();
  const Tensor x = kiln::test::random_tensor<float>({2, 6, 4, 3}, 3);
  auto shaped = build();
  shaped->set_input_shape({1, 6, 4, 3});
  save_model(shaped_path, *shaped);
  auto forwarded = build();  // no set_input_shape: one forward tells the Flatten its shape
  forwarded->forward(x, Mode::eval);
  save_model(forwarded_path, *forwarded);
  CHECK(file_contents(forwarded_path) == file_contents(shaped_path));
  // And the columns really are in PyTorch's C*H*W order (here unlike Kiln's H*W*C).
  {
    const std::vector<double> w = values(*(*forwarded)[4].params()[0].value);
    const StFile f = model_state_dict(*forwarded);
    const StTensor* t = f.find("4.weight");
    REQUIRE(t != nullptr);
    const float* tw = reinterpret_cast<const float*>(t->bytes.data());
    const int C = 4, H = 3, W = 2, cols = C * H * W;
    bool permuted = false;
    for (int r = 0; r < 5; ++r)
      for (int c = 0; c < C; ++c)
        for (int h = 0; h < H; ++h)
          for (int q = 0; q < W; ++q) {
            CHECK(tw[r * cols + (c * H + h) * W + q] == float(w[r * cols + (h * W + q) * C + c]));
            permuted |=
                tw[r * cols + (c * H + h) * W + q] != float(w[r * cols + (c * H + h) * W + q]);
          }
    CHECK(permuted);
  }

  // Before any forward (and without set_input_shape) the order is not known: refused, naming
  // the layer and the fix, and nothing is written or changed.
  auto fresh = build();
  const std::vector<double> fresh_params = values(fresh->flat_params());
  auto refused = [](const std::function<void()>& f) {
    try {
      f();
      FAIL("no exception");
    } catch (const Error& e) {
      const std::string m = e.what();
      INFO(m);
      for (const char* part : {"'4.weight'", "layer 4", "Flatten", "set_input_shape", "forward"})
        CHECK(m.find(part) != std::string::npos);
    }
  };
  const std::string refused_path = (dir / "refused.safetensors").string();
  refused([&] { save_model(refused_path, *fresh); });
  refused([&] { model_state_dict(*fresh); });
  refused([&] { load_model(shaped_path, *fresh); });
  CHECK(values(fresh->flat_params()) == fresh_params);
  Adam opt(fresh->flat_params(), fresh->flat_grads());
  refused([&] { save_training_state(refused_path, opt, *fresh); });
  CHECK(!fs::exists(refused_path));
  for (OptimizerStateRef& s : opt.state()) CHECK(!s.tensor->defined());  // nothing allocated
  // After one forward a network of this shape loads the file and computes what the original does.
  auto other = build();
  other->init(8);
  other->forward(x, Mode::eval);
  load_model(shaped_path, *other);
  CHECK(values(other->flat_params()) == values(shaped->flat_params()));
  CHECK(values(other->forward(x, Mode::eval)) == values(shaped->forward(x, Mode::eval)));
  fs::remove_all(dir);
}

TEST_CASE("save and load round-trip exactly, another architecture is refused by name",
          "[cpu][checkpoint]") {
  const TempDir tmp("ckpt_roundtrip");
  const fs::path& dir = tmp.path();
  auto net = make_fer_cnn(3, 64, 64, 7, 1.0 / 8, 3);
  Adam opt(net->flat_params(), net->flat_grads());
  train_step(*net, opt, 1, 64, 3);  // running statistics and num_batches_tracked move
  save_model((dir / "m.safetensors").string(), *net, {{"kiln.note", "hello"}});
  auto other = make_fer_cnn(3, 64, 64, 7, 1.0 / 8, 99);
  auto meta = load_model((dir / "m.safetensors").string(), *other);
  CHECK(meta.at("kiln.note") == "hello");
  CHECK(values(other->flat_params()) == values(net->flat_params()));
  for (size_t i = 0; i < net->buffers().size(); ++i) {
    BufferRef a = net->buffers()[i], b = other->buffers()[i];
    if (a.tensor)
      CHECK(values(*a.tensor) == values(*b.tensor));
    else
      CHECK(*a.scalar == *b.scalar);
  }
  Tensor x = kiln::test::random_tensor<float>({2, 64, 64, 3}, 5);
  CHECK(values(net->forward(x, Mode::eval)) == values(other->forward(x, Mode::eval)));

  auto wider = make_fer_cnn(3, 64, 64, 7, 1.0 / 4, 3);
  std::vector<double> before = values(wider->flat_params());
  CHECK_THROWS_WITH(load_model((dir / "m.safetensors").string(), *wider),
                    Catch::Contains("'0.weight' has shape [8, 3, 3, 3] but the model expects "
                                    "[16, 3, 3, 3]") &&
                        Catch::Contains("another architecture"));
  CHECK(values(wider->flat_params()) == before);  // untouched by the failed load
  auto gray = make_fer_cnn(1, 64, 64, 7, 1.0 / 8, 3);
  CHECK_THROWS_WITH(load_model((dir / "m.safetensors").string(), *gray),
                    Catch::Contains("'0.weight'"));
  fs::remove_all(dir);
}

TEST_CASE("corrupt checkpoints are refused with the file named", "[cpu][checkpoint]") {
  const TempDir tmp("ckpt_corrupt");
  const fs::path& dir = tmp.path();
  auto net = make_fer_cnn(1, 32, 32, 7, 1.0 / 16, 3);
  const std::string path = (dir / "m.safetensors").string();
  save_model(path, *net);
  const std::string good = file_contents(path);
  { std::ofstream(path, std::ios::binary) << good.substr(0, good.size() / 2); }
  CHECK_THROWS_WITH(load_model(path, *net), Catch::Contains(path) && Catch::Contains("truncated"));
  { std::ofstream(path, std::ios::binary) << "not a checkpoint at all"; }
  CHECK_THROWS_WITH(load_model(path, *net), Catch::Contains("not a safetensors checkpoint"));
  CHECK_THROWS_WITH(load_model((dir / "missing.safetensors").string(), *net),
                    Catch::Contains("does not exist"));
  fs::remove_all(dir);
}

TEST_CASE("a failed save leaves the previous file intact", "[cpu][checkpoint]") {
  const TempDir tmp("ckpt_atomic");
  const fs::path& dir = tmp.path();
  auto net = make_fer_cnn(1, 32, 32, 7, 1.0 / 16, 3);
  const std::string path = (dir / "m.safetensors").string();
  save_model(path, *net);
  const std::string before = file_contents(path);
  // A tensor whose bytes do not match its shape fails inside write_safetensors, after nothing
  // was renamed.
  StFile bad = model_state_dict(*net);
  bad.tensors[0].bytes.pop_back();
  CHECK_THROWS(write_safetensors(path, bad));
  CHECK(file_contents(path) == before);
  // No temporary files are left behind.
  int files = 0;
  for (auto& e : fs::directory_iterator(dir)) files += e.is_regular_file();
  CHECK(files == 1);
  fs::remove_all(dir);
}

TEST_CASE("training state: a resumed run continues bit for bit", "[cpu][checkpoint]") {
  const TempDir tmp("ckpt_resume");
  const fs::path& dir = tmp.path();
  for (const std::string kind : {"adam", "sgd"}) {
    INFO(kind);
    auto make_opt = [&](Sequential& n) -> std::unique_ptr<Optimizer> {
      if (kind == "adam") return std::make_unique<Adam>(n.flat_params(), n.flat_grads());
      return std::make_unique<Sgd>(n.flat_params(), n.flat_grads(),
                                   SgdOptions{.lr = 0.01f, .momentum = 0.9f, .nesterov = true});
    };
    auto a = make_fer_cnn(1, 32, 32, 7, 1.0 / 16, 3);
    auto opt_a = make_opt(*a);
    for (uint64_t s = 1; s <= 4; ++s) train_step(*a, *opt_a, s);
    // The interrupted run: 2 steps, save, a fresh process loads and does the other 2.
    auto b = make_fer_cnn(1, 32, 32, 7, 1.0 / 16, 3);
    auto opt_b = make_opt(*b);
    for (uint64_t s = 1; s <= 2; ++s) train_step(*b, *opt_b, s);
    save_model((dir / "last.safetensors").string(), *b);
    save_training_state((dir / "last.train.safetensors").string(), *opt_b, *b, {{"epoch", "1"}});
    auto c = make_fer_cnn(1, 32, 32, 7, 1.0 / 16, 77);
    auto opt_c = make_opt(*c);
    load_model((dir / "last.safetensors").string(), *c);
    auto meta = load_training_state((dir / "last.train.safetensors").string(), *opt_c, *c);
    CHECK(meta.at("epoch") == "1");
    CHECK(opt_c->steps() == 2);
    for (uint64_t s = 3; s <= 4; ++s) train_step(*c, *opt_c, s);
    CHECK(values(c->flat_params()) == values(a->flat_params()));
  }
  // The optimizer kind must match.
  auto net = make_fer_cnn(1, 32, 32, 7, 1.0 / 16, 3);
  Sgd sgd(net->flat_params(), net->flat_grads());
  Adam adam(net->flat_params(), net->flat_grads());
  save_training_state((dir / "s.safetensors").string(), adam, *net);
  CHECK_THROWS_WITH(load_training_state((dir / "s.safetensors").string(), sgd, *net),
                    Catch::Contains("optimizer 'adam'") && Catch::Contains("--optimizer"));
  fs::remove_all(dir);
}
