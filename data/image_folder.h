// data/image_folder.h — data sets stored as image files, one sub-folder per class.
//
// Two layouts:
//   DIR/train/<class>/*.png   with optional DIR/val/ (or validation/, valid/) and DIR/test/: used
//                             as given (a missing val/ is drawn from train/ as below);
//   DIR/<class>/*.png         everything in one pool; a deterministic stratified 90/10 train/val
//                             split is drawn from `seed`.
// Class folders named 0..6 or by FER's names (angry, disgust, fear, happy, sad, surprise, neutral;
// case-insensitive) take FER's indices and the class names are FER's seven. If any folder has
// another name, all class folders are sorted alphabetically (byte order) and numbered from 0, and
// their names are the class names. Images (.png .jpg .jpeg .bmp, any case) are decoded by stb_image
// and converted to `spec`; other files are ignored.
#pragma once

#include <cstdint>
#include <string>

#include "data/dataset.h"

namespace kiln::data {

// Throws kiln::Error for a missing directory, a directory with no class folders, a class folder
// with no images, and a file that does not decode (naming it).
Splits load_image_folder(const std::string& dir, const ImageSpec& spec, uint64_t seed = 0);

}  // namespace kiln::data
