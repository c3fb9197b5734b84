// examples/fer_cnn/cmd_predict.cpp — `fer_cnn predict IMAGE`: the class probabilities of one
// image file (png/jpg/bmp, converted to the model's input like the training data).
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "core/error.h"
#include "data/image.h"
#include "examples/fer_cnn/fer_cnn.h"

namespace fer {
namespace {

struct Options {
  std::string checkpoint = "runs/fer_cnn/best.safetensors", image, device = "auto";
} opts;

int run_predict() {
  const kiln::Device device = select_device(opts.device);
  ModelInfo info;
  auto net = load_network(opts.checkpoint, device, &info);
  const kiln::data::ImageSpec spec = info.spec();
  std::vector<uint8_t> pixels;
  try {
    pixels = kiln::data::load_image(opts.image, spec);
  } catch (const kiln::Error& e) {
    throw UsageError(std::string(e.what()) + " (predict reads one png, jpg or bmp image)");
  }
  std::vector<float> x(pixels.begin(), pixels.end());
  for (float& v : x) v /= 255.0f;
  kiln::Tensor input =
      kiln::Tensor::from_vector<float>({1, spec.height, spec.width, spec.channels}, x, device);
  const std::vector<float> z = net->forward(input, kiln::Mode::eval).to_vector<float>();
  const float zmax = *std::max_element(z.begin(), z.end());
  std::vector<double> p(z.size());
  double sum = 0;
  for (size_t i = 0; i < z.size(); ++i) sum += p[i] = std::exp(double(z[i]) - zmax);
  for (double& v : p) v /= sum;
  const size_t best = std::max_element(p.begin(), p.end()) - p.begin();
  std::printf("%s:\n", opts.image.c_str());
  for (size_t i = 0; i < p.size(); ++i)
    std::printf("  %-10s %.4f%s\n", info.class_names[i].c_str(), p[i], i == best ? "  <" : "");
  std::printf("prediction: %s (%.1f%%)\n", info.class_names[best].c_str(), 100 * p[best]);
  return 0;
}

const Registration reg{{"predict", "Print the class probabilities of one image",
                        [](CLI::App& app) {
                          app.add_option("image", opts.image, "a png, jpg or bmp file")->required();
                          app.add_option("--checkpoint", opts.checkpoint, "a fer_cnn checkpoint")
                              ->capture_default_str();
                          add_device_option(app, opts.device);
                        },
                        run_predict}};

}  // namespace
}  // namespace fer
