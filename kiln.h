// kiln.h — the umbrella header: everything a program built on Kiln needs.
//   #include <kiln/kiln.h>            (installed tree; CMake: find_package(kiln), kiln::kiln)
// It names every public header, and only those: the install ships exactly the headers listed here
// (CMakeLists.txt reads this list). A public header includes nothing but the standard library and
// other headers of this list.
#pragma once

// Tensors, memory, streams, errors
#include "core/cost.h"
#include "core/error.h"
#include "core/host_device.h"
#include "core/memory.h"
#include "core/philox.h"
#include "core/precision.h"
#include "core/rounding.h"
#include "core/stream.h"
#include "core/tensor.h"

// Files: the reader of regular files, the atomic writer, CSV, the safetensors format
#include "io/csv.h"
#include "io/file.h"
#include "io/safetensors.h"

// Kernels: the forward and backward ops on tensors (CPU or CUDA by the tensors' device)
#include "kernels/activation.h"
#include "kernels/batchnorm.h"
#include "kernels/conv2d.h"
#include "kernels/dropout.h"
#include "kernels/elementwise.h"
#include "kernels/fused_block.h"
#include "kernels/linear.h"
#include "kernels/optimizer.h"
#include "kernels/pooling.h"
#include "kernels/precision.h"
#include "kernels/softmax_xent.h"

// Layers and networks
#include "layers/activation.h"
#include "layers/batchnorm.h"
#include "layers/conv2d.h"
#include "layers/dropout.h"
#include "layers/fer_cnn.h"
#include "layers/fused_block.h"
#include "layers/layer.h"
#include "layers/linear.h"
#include "layers/loss.h"
#include "layers/pooling.h"
#include "layers/sequential.h"

// Optimizers, learning-rate schedules, checkpoints
#include "optim/checkpoint.h"
#include "optim/fer_cnn_checkpoint.h"
#include "optim/optimizer.h"
#include "optim/schedule.h"

// Data: datasets, readers, the loader
#include "data/dataset.h"
#include "data/fer_csv.h"
#include "data/image.h"
#include "data/image_folder.h"
#include "data/loader.h"
#include "data/rng.h"
#include "data/synthetic.h"

// Training: the loop, the eager step, the progress line
#include "train/eager_step.h"
#include "train/progress.h"
#include "train/trainer.h"

// Analysis: metrics, figures, saliency, filters, the HTML report
#include "analysis/canvas.h"
#include "analysis/curves.h"
#include "analysis/filters.h"
#include "analysis/image.h"
#include "analysis/metrics.h"
#include "analysis/plot.h"
#include "analysis/report.h"
#include "analysis/saliency.h"
