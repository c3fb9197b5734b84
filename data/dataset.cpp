// data/dataset.cpp — Dataset helpers and the one entry point that picks a data source by name.
#include "data/dataset.h"

#include <cmath>
#include <filesystem>

#include "core/error.h"
#include "data/fer_csv.h"
#include "data/image_folder.h"
#include "data/rng.h"
#include "data/synthetic.h"

namespace kiln::data {

const std::vector<std::string>& fer_class_names() {
  static const std::vector<std::string> names = {"angry", "disgust",  "fear",   "happy",
                                                 "sad",   "surprise", "neutral"};
  return names;
}

Dataset Dataset::with_spec(const ImageSpec& spec, std::vector<std::string> class_names) {
  Dataset d;
  d.channels = spec.channels;
  d.height = spec.height;
  d.width = spec.width;
  d.class_names = std::move(class_names);
  return d;
}

void Dataset::push_back(const uint8_t* image, int32_t label) {
  pixels.insert(pixels.end(), image, image + image_bytes());
  labels.push_back(label);
}

std::vector<size_t> Dataset::class_counts() const {
  std::vector<size_t> counts(class_names.size(), 0);
  for (int32_t l : labels)
    if (l >= 0 && size_t(l) < counts.size()) ++counts[size_t(l)];
  return counts;
}

Splits split_train_val(const Dataset& all, double val_fraction, uint64_t seed) {
  KILN_CHECK(val_fraction >= 0 && val_fraction < 1, "val_fraction must be in [0, 1), got ",
             val_fraction);
  std::vector<std::vector<size_t>> by_class(all.class_names.size());
  for (size_t i = 0; i < all.size(); ++i) {
    KILN_CHECK(all.labels[i] >= 0 && size_t(all.labels[i]) < by_class.size(), "label ",
               all.labels[i], " of image ", i, " is outside the data set's ", by_class.size(),
               " classes");
    by_class[size_t(all.labels[i])].push_back(i);
  }
  std::vector<char> to_val(all.size(), 0);
  for (size_t c = 0; c < by_class.size(); ++c) {
    std::vector<size_t>& idx = by_class[c];
    size_t k = size_t(std::llround(double(idx.size()) * val_fraction));
    if (k == 0 && idx.size() >= 2 && val_fraction > 0) k = 1;
    detail::Rng rng(detail::hash_keys(seed, 0x73706c6974ULL, c));
    for (size_t i = idx.size(); i > 1; --i)
      std::swap(idx[i - 1], idx[rng.below(i)]);  // Fisher-Yates
    for (size_t i = 0; i < k; ++i) to_val[idx[i]] = 1;
  }
  Splits s;
  s.train = Dataset::with_spec(all.spec(), all.class_names);
  s.val = Dataset::with_spec(all.spec(), all.class_names);
  s.test = Dataset::with_spec(all.spec(), all.class_names);
  for (size_t i = 0; i < all.size(); ++i)
    (to_val[i] ? s.val : s.train).push_back(all.image(i), all.labels[i]);
  return s;
}

void hold_out_val_if_missing(Splits& s, uint64_t seed) {
  if (!s.val.empty()) return;
  Splits held = split_train_val(s.train, 0.1, seed);
  s.train = std::move(held.train);
  s.val = std::move(held.val);
}

Splits load_dataset(const std::string& source, const ImageSpec& spec, uint64_t seed) {
  namespace fs = std::filesystem;
  if (source == "synthetic") {
    SyntheticOptions o;
    o.spec = spec;
    o.seed = seed;
    return make_synthetic(o);
  }
  std::error_code ec;
  if (fs::is_directory(source, ec)) return load_image_folder(source, spec, seed);
  // Anything else that exists goes to the CSV reader, which refuses what is not a regular file
  // (a FIFO, a device) with that said, rather than "does not exist".
  if (fs::exists(source, ec)) return load_fer_csv(source, spec, seed);
  KILN_FAIL("data source '", source,
            "' does not exist: pass 'synthetic', a FER2013 CSV file or an image folder");
}

}  // namespace kiln::data
