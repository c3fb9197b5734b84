// optim/checkpoint.h — checkpoints: safetensors files with PyTorch's names and layouts.
//
// A model checkpoint (docs/design.md §6) is a safetensors file — 8-byte little-endian header
// length, a JSON header {name: {dtype, shape, data_offsets}, "__metadata__": {str: str}}, then the
// raw little-endian bytes — holding exactly PyTorch's state_dict of the equivalent nn.Sequential:
// conv weights OIHW, the linear layer after a Flatten with its columns in C*H*W order, BatchNorm's
// running statistics and num_batches_tracked (a 0-d int64). docs/checkpoints.md has the Python
// lines that load it into PyTorch. The training state a resumed run needs (optimizer moments and
// step, dropout RNG counters, plus whatever the caller adds: epoch, data order, ...) goes to a
// sibling file, so the model file stays a plain state_dict.
//
// Every file is written with write_file_atomic (io/file.h: temporary, fsync, rename, fsync of
// the folder): an interrupted save never destroys the previous file. Loading checks every name, dtype and shape and
// throws a kiln::Error naming the first mismatching tensor.
//
// This sits in optim/ because it sees the model only as lists of named tensors (Layer::params(),
// buffers(), counters()) and the optimizer as its state tensors; layers/ knows no file format.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "io/safetensors.h"
#include "layers/layer.h"
#include "optim/optimizer.h"

namespace kiln {

// ---- models ------------------------------------------------------------------------------------
// The model's state_dict in PyTorch's names, layouts and order (parameters, then buffers,
// per layer). Throws, naming the layer and the fix, for a Linear after a Flatten whose input
// shape is not known yet (TorchLayout::Kind::unknown: call Sequential::set_input_shape or run one
// forward first); saving and loading alike refuse it rather than guess the column order.
StFile model_state_dict(Layer& model);
// Copies a state_dict into the model (any device/dtype). Throws naming `source` and the first
// tensor that is missing, unexpected, or of another dtype or shape; everything is checked before
// anything is copied, so a failed load leaves the model as it was.
void load_model_state_dict(Layer& model, const StFile& file, const std::string& source);

void save_model(const std::string& path, Layer& model,
                const std::map<std::string, std::string>& metadata = {});
// Loads the model's tensors; returns the file's metadata.
std::map<std::string, std::string> load_model(const std::string& path, Layer& model);

// ---- training state ----------------------------------------------------------------------------
// Saves the optimizer's kind, steps, learning rate and state tensors, the model's counters()
// (dropout streams) and its state_dict (names prefixed "model."), with the caller's metadata.
void save_training_state(const std::string& path, Optimizer& optimizer, Layer& model,
                         const std::map<std::string, std::string>& metadata = {});
// Restores what save_training_state saved (the optimizer must be of the same kind and size):
// the optimizer's state tensors, steps and learning rate, the model's counters and its weights
// and buffers; returns the caller's metadata.
// Every value is checked (optimizer kind, steps, learning rate, counters, each state tensor's
// dtype, shape and bytes, then the model's state_dict as load_model_state_dict checks it) before
// anything changes, so a failed load leaves the optimizer and the model as they were.
std::map<std::string, std::string> load_training_state(const std::string& path,
                                                       Optimizer& optimizer, Layer& model);
// The same from a file already read; `path` names it in errors.
std::map<std::string, std::string> restore_training_state(StFile file, const std::string& path,
                                                          Optimizer& optimizer, Layer& model);

}  // namespace kiln
