// kiln.h — the umbrella header: everything a program built on Kiln needs.
//   #include <kiln/kiln.h>            (installed tree; CMake: find_package(kiln), kiln::kiln)
#pragma once

#include "core/error.h"
#include "core/memory.h"
#include "core/philox.h"
#include "core/stream.h"
#include "core/tensor.h"
#include "kernels/activation.h"
#include "kernels/batchnorm.h"
#include "kernels/conv2d.h"
#include "kernels/dropout.h"
#include "kernels/elementwise.h"
#include "kernels/linear.h"
#include "kernels/optimizer.h"
#include "kernels/pooling.h"
#include "kernels/softmax_xent.h"
