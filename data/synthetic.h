// data/synthetic.h — the built-in synthetic facial-expression data set.
//
// Procedural faces for FER2013's seven expressions, so that Kiln trains with no download. Each
// class is a configuration of mouth, brows and eyes (docs/data.md has the table); every image has a
// random pose (shift, rotation, scale), face shape, lighting (gain, gradient, side shading),
// background, hair, occluding patches and noise. The class cues are small strokes that move with
// the pose, so a linear model on raw pixels stays well below a small CNN (measured figures in
// docs/data.md).
//
// Everything is a pure function of (seed, split, index): the same options give the same bytes on
// any machine and with any number of threads.
#pragma once

#include <cstdint>

#include "data/dataset.h"

namespace kiln::data {

struct SyntheticOptions {
  ImageSpec spec;  // images are drawn directly at this size; 3 channels adds colour
  int train_per_class = 1000;
  int val_per_class = 200;
  int test_per_class = 200;
  uint64_t seed = 1;
  // Threads generating the images (data/parallel.h); 0 or less: OpenMP's default (OMP_NUM_THREADS,
  // else one per core). The images do not depend on it.
  int threads = 0;
};

// Generates train/val/test. Labels cycle 0..6 within each split (exact class balance); the three
// splits draw from disjoint random streams.
Splits make_synthetic(const SyntheticOptions& options);

// Draws one face of class `label` (0..6) into `out` ([H][W][C] bytes of `spec`); `key` selects the
// random variation. make_synthetic uses key = hash(seed, split, index).
void render_synthetic_face(uint8_t* out, const ImageSpec& spec, int label, uint64_t key);

}  // namespace kiln::data
