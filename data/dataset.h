// data/dataset.h — the in-memory data set every Kiln data source produces.
//
// Images are plain host bytes, [N][H][W][C] (NHWC, like Kiln's activations), one uint8 per channel;
// labels are int32 class indices into class_names. data/ knows no Tensor: the Loader
// (data/loader.h) turns a Dataset into float batches, and the caller copies those wherever
// it computes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace kiln::data {

// FER2013's seven expressions, in FER's index order: 0 angry, 1 disgust, 2 fear, 3 happy, 4 sad,
// 5 surprise, 6 neutral.
inline constexpr int kFerClasses = 7;
const std::vector<std::string>& fer_class_names();

// The shape every image of a data set is converted to (the model's input).
struct ImageSpec {
  int channels = 1;  // 1 (gray) or 3 (RGB)
  int height = 48;
  int width = 48;
  size_t pixels() const { return size_t(channels) * size_t(height) * size_t(width); }
  bool operator==(const ImageSpec&) const = default;
};

struct Dataset {
  int channels = 0, height = 0, width = 0;
  std::vector<uint8_t> pixels;  // [N][H][W][C]
  std::vector<int32_t> labels;  // [N], each in [0, class_names.size())
  std::vector<std::string> class_names;

  size_t size() const { return labels.size(); }
  bool empty() const { return labels.empty(); }
  int num_classes() const { return int(class_names.size()); }
  ImageSpec spec() const { return {channels, height, width}; }
  size_t image_bytes() const { return spec().pixels(); }
  const uint8_t* image(size_t i) const { return pixels.data() + i * image_bytes(); }
  uint8_t* image(size_t i) { return pixels.data() + i * image_bytes(); }

  // An empty data set of the given shape and classes.
  static Dataset with_spec(const ImageSpec& spec, std::vector<std::string> class_names);
  // Appends one image (spec().pixels() bytes) and its label.
  void push_back(const uint8_t* image, int32_t label);
  // Number of images of each class, [num_classes()].
  std::vector<size_t> class_counts() const;
};

// Train / validation / test. test may be empty (image folders without test/, synthetic always has
// one). All three share the same spec and class_names.
struct Splits {
  Dataset train, val, test;
};

// A stratified split of `all` into train and val: in each class, round(count * val_fraction) images
// (at least one when the class has two or more) chosen by a shuffle seeded from (seed, class) go to
// val; both keep the images' original order. test is left empty.
Splits split_train_val(const Dataset& all, double val_fraction, uint64_t seed);

// For a source without validation images: when s.val is empty, s.train becomes split_train_val(
// s.train, 0.1, seed)'s train and val (a stratified 10% held out); s.test is kept. Otherwise
// nothing changes.
void hold_out_val_if_missing(Splits& s, uint64_t seed);

// Loads `source` converted to `spec`:
//   "synthetic"   the built-in generated faces (data/synthetic.h) with default sizes and `seed`;
//   a file        a FER2013-format CSV (data/fer_csv.h);
//   a directory   an image folder (data/image_folder.h); `seed` drives the 90/10 split when the
//                 folder has no train/ and val/ of its own.
// Throws kiln::Error naming the source and the problem.
Splits load_dataset(const std::string& source, const ImageSpec& spec, uint64_t seed);

}  // namespace kiln::data
