// data/image_folder.cpp — image-folder data sets (layouts and class mapping in
// data/image_folder.h).
//
// Files are listed and sorted first, so the data set's order never depends on the file system; then
// decoded on all cores, each file into its own slot.
#include "data/image_folder.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <map>
#include <optional>

#include "core/error.h"
#include "data/image.h"
#include "data/parallel.h"

namespace kiln::data {
namespace {

namespace fs = std::filesystem;

std::string lower(std::string s) {
  for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool is_image_file(const fs::path& p) {
  std::string ext = lower(p.extension().string());
  return ext == ".png" || ext == ".jpg" || ext == ".jpeg" || ext == ".bmp";
}

bool hidden(const fs::path& p) {
  std::string name = p.filename().string();
  return !name.empty() && name[0] == '.';
}

// FER's index for a folder named 0..6 or by a FER class name (any case), else nullopt.
std::optional<int> fer_index(const std::string& folder) {
  if (folder.size() == 1 && folder[0] >= '0' && folder[0] <= '6') return folder[0] - '0';
  const auto& names = fer_class_names();
  auto it = std::find(names.begin(), names.end(), lower(folder));
  if (it == names.end()) return std::nullopt;
  return int(it - names.begin());
}

// Sub-directories of `dir` (not hidden), sorted by name.
std::vector<fs::path> subdirectories(const fs::path& dir) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_directory() && !hidden(e.path())) out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

// A child directory of `dir` whose name is one of `names` (case-insensitive).
std::optional<fs::path> find_child(const fs::path& dir, std::initializer_list<const char*> names) {
  for (const fs::path& sub : subdirectories(dir)) {
    std::string n = lower(sub.filename().string());
    for (const char* want : names)
      if (n == want) return sub;
  }
  return std::nullopt;
}

struct Item {
  fs::path file;
  std::string class_folder;
};

// The images of one split root (a folder of class folders), sorted by class folder then file name.
std::vector<Item> list_split(const fs::path& root) {
  std::vector<fs::path> classes = subdirectories(root);
  KILN_CHECK(!classes.empty(), "image folder '", root.string(),
             "' has no class sub-folders: put the images of each class in their own sub-folder "
             "(e.g. ",
             root.string(), "/happy/*.png or ", root.string(), "/3/*.png)");
  std::vector<Item> items;
  for (const fs::path& c : classes) {
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(c))
      if (e.is_regular_file() && !hidden(e.path()) && is_image_file(e.path()))
        files.push_back(e.path());
    KILN_CHECK(!files.empty(), "class folder '", c.string(),
               "' contains no images (.png, .jpg, .jpeg or .bmp): add images or remove the folder");
    std::sort(files.begin(), files.end());
    for (auto& f : files) items.push_back({f, c.filename().string()});
  }
  return items;
}

Dataset decode(const std::vector<Item>& items, const ImageSpec& spec,
               const std::map<std::string, int>& index_of, const std::vector<std::string>& names) {
  Dataset d = Dataset::with_spec(spec, names);
  d.pixels.resize(items.size() * spec.pixels());
  d.labels.resize(items.size());
  // The first bad file in sorted order is reported, whatever the timing (data/parallel.h).
  detail::parallel_for(items.size(), [&](size_t i) {
    const std::vector<uint8_t> img = load_image(items[i].file.string(), spec);
    std::copy(img.begin(), img.end(), d.image(i));
    d.labels[i] = index_of.at(items[i].class_folder);
  });
  return d;
}

}  // namespace

Splits load_image_folder(const std::string& dir_name, const ImageSpec& spec, uint64_t seed) {
  KILN_CHECK(spec.channels == 1 || spec.channels == 3,
             "image folder: target channels must be 1 or 3, got ", spec.channels);
  const fs::path dir(dir_name);
  std::error_code ec;
  KILN_CHECK(fs::is_directory(dir, ec), "image folder '", dir_name,
             "' does not exist or is not a directory");

  std::optional<fs::path> train = find_child(dir, {"train", "training"});
  std::optional<fs::path> val = find_child(dir, {"val", "validation", "valid"});
  std::optional<fs::path> test = find_child(dir, {"test"});
  std::vector<Item> train_items, val_items, test_items;
  if (train) {
    train_items = list_split(*train);
    if (val) val_items = list_split(*val);
    if (test) test_items = list_split(*test);
  } else {
    train_items = list_split(dir);
  }

  // Class mapping over the folders of every split, so all splits agree.
  std::vector<std::string> folders;
  for (const auto* items : {&train_items, &val_items, &test_items})
    for (const Item& it : *items) folders.push_back(it.class_folder);
  std::sort(folders.begin(), folders.end());
  folders.erase(std::unique(folders.begin(), folders.end()), folders.end());
  const bool all_fer = std::all_of(folders.begin(), folders.end(),
                                   [](const std::string& f) { return fer_index(f).has_value(); });
  std::map<std::string, int> index_of;
  std::vector<std::string> names;
  if (all_fer) {
    names = fer_class_names();
    for (const std::string& f : folders) index_of[f] = *fer_index(f);
  } else {
    names = folders;  // already sorted
    for (size_t i = 0; i < folders.size(); ++i) index_of[folders[i]] = int(i);
  }

  Splits s;
  s.train = decode(train_items, spec, index_of, names);
  s.val = decode(val_items, spec, index_of, names);
  s.test = decode(test_items, spec, index_of, names);
  hold_out_val_if_missing(s, seed);
  return s;
}

}  // namespace kiln::data
