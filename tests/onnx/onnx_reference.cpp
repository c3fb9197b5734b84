// tests/onnx/onnx_reference.cpp — Kiln's side of the ONNX tests that run Python
// (tests/onnx/torch_onnx.py, tests/onnx/ort_onnx.py).
//
//   kiln_onnx_reference write DIR
//       DIR/model.safetensors (the test model of tests/onnx/test_model.h, PyTorch's state dict),
//       DIR/io.safetensors (input_nhwc, input_nchw: 28 synthetic test faces; Kiln's eval logits;
//       metadata: widths and the logits' eps of the derived tolerance), DIR/kiln.onnx and
//       DIR/kiln_folded.onnx.
//   kiln_onnx_reference compare MODEL.onnx IO.safetensors BATCHNORM_LAYERS
//       imports MODEL.onnx, checks that it has BATCHNORM_LAYERS BatchNorm2d layers, runs it on
//       input_nhwc and compares with IO's "logits": |a - b| <= 2·eps·max|b| + 2·eps·|b| and the
//       same predicted class for every image. Exit 0 when both hold.
//   kiln_onnx_reference split C H W OUT.safetensors
//       the test split of the built-in synthetic data set at C x H x W, as fer_cnn's commands
//       load it with their defaults (--data synthetic, --seed 1): "images" [N, C, H, W] in [0, 1]
//       (NCHW, what an ONNX export reads) and "labels" [N] (as float32), for
//       tests/onnx/ort_accuracy.py.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "core/error.h"
#include "data/synthetic.h"
#include "onnx/kiln_onnx.h"
#include "optim/checkpoint.h"
#include "tests/onnx/test_model.h"

using namespace kiln;

namespace {

StTensor f32_entry(const std::string& name, std::vector<int64_t> shape,
                   const std::vector<float>& v) {
  StTensor e{name, "F32", std::move(shape), std::vector<uint8_t>(v.size() * 4)};
  std::memcpy(e.bytes.data(), v.data(), e.bytes.size());
  return e;
}

std::vector<float> floats(const StTensor& t) {
  KILN_CHECK(t.dtype == "F32", "tensor '", t.name, "' is not F32");
  std::vector<float> v(t.bytes.size() / 4);
  std::memcpy(v.data(), t.bytes.data(), t.bytes.size());
  return v;
}

int write(const std::string& dir) {
  std::filesystem::create_directories(dir);
  auto net = test::make_onnx_test_net();
  save_model(dir + "/model.safetensors", *net);
  using test::kOnnxC, test::kOnnxH, test::kOnnxW;
  // The input: a test split of the built-in synthetic faces at the model's 3x64x64, four images
  // per class (28), as pixels / 255 — what fer_cnn and an ONNX runtime are given.
  data::SyntheticOptions so;
  so.spec = {kOnnxC, kOnnxH, kOnnxW};
  so.train_per_class = so.val_per_class = 1;
  so.test_per_class = 4;
  const data::Dataset faces = data::make_synthetic(so).test;
  const int n = int(faces.size());
  std::vector<float> xv(faces.pixels.begin(), faces.pixels.end());
  for (float& v : xv) v /= 255.0f;
  const Tensor x = Tensor::from_vector<float>({n, kOnnxH, kOnnxW, kOnnxC}, xv);
  const std::vector<float> z = net->forward(x, Mode::eval).to_vector<float>();
  StFile io;
  io.tensors.push_back(f32_entry("input_nhwc", {n, kOnnxH, kOnnxW, kOnnxC}, xv));
  io.tensors.push_back(f32_entry("input_nchw", {n, kOnnxC, kOnnxH, kOnnxW},
                                 test::nhwc_to_nchw(xv, n, kOnnxH, kOnnxW, kOnnxC)));
  io.tensors.push_back(f32_entry("logits", {n, test::kOnnxClasses}, z));
  std::string widths;
  for (int w : fer_cnn_widths(0.125)) {
    if (!widths.empty()) widths += ',';
    widths += std::to_string(w);
  }
  char eps[32];
  std::snprintf(eps, sizeof eps, "%.6g", test::logit_eps(*net));
  io.metadata = {{"channels", std::to_string(kOnnxC)},
                 {"size", std::to_string(kOnnxH)},
                 {"widths", widths},
                 {"eps", eps}};
  write_safetensors(dir + "/io.safetensors", io);
  OnnxExportOptions o;
  o.channels = kOnnxC;
  o.height = kOnnxH;
  o.width = kOnnxW;
  save_onnx(dir + "/kiln.onnx", *net, o);
  o.fold_batchnorm = true;
  save_onnx(dir + "/kiln_folded.onnx", *net, o);
  std::printf("wrote %s/{model.safetensors,io.safetensors,kiln.onnx,kiln_folded.onnx}\n",
              dir.c_str());
  return 0;
}

int compare(const std::string& model, const std::string& io_path, int batchnorms) {
  OnnxModel m = load_onnx(model);
  const StFile io = read_safetensors(io_path);
  int bn = 0;
  for (int i = 0; i < m.net->size(); ++i) bn += (*m.net)[i].kind() == "BatchNorm2d";
  const StTensor* x = io.find("input_nhwc");
  const StTensor* ref = io.find("logits");
  KILN_CHECK(x && ref && io.metadata.count("eps"), io_path, " lacks input_nhwc, logits or eps");
  const std::vector<float> want = floats(*ref);
  const std::vector<float> got =
      m.net->forward(Tensor::from_vector<float>(Shape(x->shape), floats(*x)), Mode::eval)
          .to_vector<float>();
  KILN_CHECK(got.size() == want.size(), "logits of ", got.size(), " values, expected ",
             want.size());
  const double eps = std::stod(io.metadata.at("eps"));
  double max_ref = 0, max_diff = 0;
  for (float v : want) max_ref = std::max(max_ref, double(std::fabs(v)));
  int bad = 0, same_class = 0;
  const int classes = m.classes, n = int(want.size()) / classes;
  for (size_t i = 0; i < want.size(); ++i) {
    const double d = std::fabs(double(got[i]) - want[i]);
    max_diff = std::max(max_diff, d);
    bad += !(d <= 2 * eps * max_ref + 2 * eps * std::fabs(want[i]));
  }
  for (int i = 0; i < n; ++i) {
    const float* g = got.data() + i * classes;
    const float* w = want.data() + i * classes;
    same_class += std::max_element(g, g + classes) - g == std::max_element(w, w + classes) - w;
  }
  std::printf(
      "%s (%s, opset %d, %d layers, %d BatchNorm2d): max |kiln - reference| = %.3g "
      "(tolerance %.3g + %.3g|ref|), %d/%d same predictions\n",
      model.c_str(), m.producer.c_str(), m.opset, m.net->size(), bn, max_diff, 2 * eps * max_ref,
      2 * eps, same_class, n);
  if (bn != batchnorms) std::printf("  expected %d BatchNorm2d layers, got %d\n", batchnorms, bn);
  return bad == 0 && same_class == n && bn == batchnorms ? 0 : 1;
}

int split(int c, int h, int w, const std::string& path) {
  data::SyntheticOptions o;
  o.spec = {c, h, w};
  const data::Dataset test = data::make_synthetic(o).test;
  const int n = int(test.size());
  std::vector<float> x(test.pixels.begin(), test.pixels.end());
  for (float& v : x) v /= 255.0f;
  StFile file;
  file.tensors.push_back(f32_entry("images", {n, c, h, w}, test::nhwc_to_nchw(x, n, h, w, c)));
  file.tensors.push_back(
      f32_entry("labels", {n}, std::vector<float>(test.labels.begin(), test.labels.end())));
  write_safetensors(path, file);
  std::printf("wrote %s: %d test images %dx%dx%d\n", path.c_str(), n, c, h, w);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const std::string cmd = argc > 1 ? argv[1] : "";
    if (cmd == "write" && argc == 3) return write(argv[2]);
    if (cmd == "compare" && argc == 5) return compare(argv[2], argv[3], std::stoi(argv[4]));
    if (cmd == "split" && argc == 6)
      return split(std::stoi(argv[2]), std::stoi(argv[3]), std::stoi(argv[4]), argv[5]);
  } catch (const Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  std::fprintf(stderr,
               "usage: %s write DIR | compare MODEL.onnx IO.safetensors BATCHNORM_LAYERS | split C "
               "H W OUT.safetensors\n",
               argv[0]);
  return 2;
}
