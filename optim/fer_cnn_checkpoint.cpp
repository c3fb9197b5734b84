// optim/fer_cnn_checkpoint.cpp — see fer_cnn_checkpoint.h.
#include "optim/fer_cnn_checkpoint.h"

#include <cmath>
#include <nlohmann/json.hpp>

#include "core/error.h"

namespace kiln {
namespace {

int int_in(const nlohmann::json& m, const char* key, int lo, int hi, const std::string& where) {
  KILN_CHECK(m.contains(key) && m[key].is_number_integer(), where, "'", key,
             "' must be an integer");
  const int64_t v = m[key].get<int64_t>();
  KILN_CHECK(v >= lo && v <= hi, where, key, " ", v, " is outside the allowed range ", lo, "..",
             hi);
  return static_cast<int>(v);
}

}  // namespace

FerCnnCheckpointInfo fer_cnn_info_from_header(const StFile& header, const std::string& source,
                                              const std::string& tensor_prefix) {
  auto it = header.metadata.find("kiln.model");
  KILN_CHECK(it != header.metadata.end(), "checkpoint '", source,
             "' has no fer_cnn model description (kiln.model metadata): it was not written by "
             "fer_cnn train");
  const std::string where =
      "checkpoint '" + source + "' has a malformed model description (kiln.model): ";
  nlohmann::json m;
  try {
    m = nlohmann::json::parse(it->second);
  } catch (const nlohmann::json::exception& e) {
    KILN_FAIL(where, "not valid JSON (", e.what(), ")");
  }
  KILN_CHECK(m.is_object(), where, "not a JSON object");
  KILN_CHECK(m.contains("architecture") && m["architecture"].is_string(), where, "no architecture");
  const std::string arch = m["architecture"].get<std::string>();
  KILN_CHECK(arch == "fer_cnn", "checkpoint '", source, "' holds a '", arch,
             "' model, not fer_cnn");
  FerCnnCheckpointInfo info;
  FerCnnConfig& c = info.config;
  c.channels = int_in(m, "channels", 1, 3, where);
  KILN_CHECK(c.channels != 2, where, "channels 2 is not an image format (1 gray or 3 RGB)");
  c.height = int_in(m, "height", FerCnnLimits::kMinSide, FerCnnLimits::kMaxSide, where);
  c.width = int_in(m, "width", FerCnnLimits::kMinSide, FerCnnLimits::kMaxSide, where);
  c.classes = int_in(m, "classes", 2, FerCnnLimits::kMaxClasses, where);
  KILN_CHECK(m.contains("width_multiplier") && m["width_multiplier"].is_number(), where,
             "'width_multiplier' must be a number");
  c.width_multiplier = m["width_multiplier"].get<double>();
  KILN_CHECK(c.width_multiplier > 0 && c.width_multiplier <= FerCnnLimits::kMaxWidthMultiplier,
             where, "width_multiplier ", c.width_multiplier, " is outside the allowed range (0, ",
             FerCnnLimits::kMaxWidthMultiplier, "]");
  KILN_CHECK(m.contains("dropout") && m["dropout"].is_number(), where,
             "'dropout' must be a number");
  c.dropout = m["dropout"].get<double>();
  KILN_CHECK(c.dropout >= 0 && c.dropout < 1, where, "dropout ", c.dropout,
             " is outside the allowed range [0, 1)");
  // The network the description asks for must be the one whose weights the file holds.
  for (const auto& [name, shape] : fer_cnn_weight_shapes(c)) {
    const StTensor* t = header.find(tensor_prefix + name);
    KILN_CHECK(t != nullptr, "checkpoint '", source, "' has no tensor '", tensor_prefix + name,
               "' that its model description (kiln.model) needs");
    KILN_CHECK(t->shape == shape, "checkpoint '", source, "': tensor '", t->name, "' has shape ",
               shape_str(t->shape), " but its model description (kiln.model) makes it ",
               shape_str(shape), ": the description does not match the weights");
  }
  auto names = header.metadata.find("kiln.class_names");
  if (names != header.metadata.end()) {
    nlohmann::json n;
    try {
      n = nlohmann::json::parse(names->second);
    } catch (const nlohmann::json::exception& e) {
      KILN_FAIL("checkpoint '", source, "': kiln.class_names is not valid JSON (", e.what(), ")");
    }
    if (n.is_array() && n.size() == size_t(c.classes))
      for (const auto& v : n) {
        KILN_CHECK(v.is_string(), "checkpoint '", source,
                   "': kiln.class_names must be an array of strings");
        info.class_names.push_back(v.get<std::string>());
      }
  }
  if (info.class_names.empty())
    for (int k = 0; k < c.classes; ++k) info.class_names.push_back(std::to_string(k));
  return info;
}

}  // namespace kiln
