// examples/fer_cnn/cmd_train.cpp — `fer_cnn train`: trains the report's network, writing
// last.train.safetensors (the training state, the run's commit record), then last.safetensors,
// best.safetensors, history.csv and the curves to --out after every epoch, each file replaced
// atomically. Everything but the state is derived from the state, so a run interrupted at any
// instant resumes (--resume brings the derived files up to the state first). The protocol is in
// docs/checkpoints.md, "The run folder". The loop itself is the library's kiln::Trainer
// (train/trainer.h); this file is its client: options, defaults, data, model and the run folder.
// Started by mpirun or srun it is one rank of a data-parallel job (kiln::dist, docs/distributed.md):
// --batch-size is the job's batch, rank 0 alone prints and writes the run folder.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "analysis/curves.h"
#include "core/error.h"
#include "io/file.h"
#include "data/loader.h"
#include "dist/communicator.h"
#include "dist/data_parallel.h"
#include "examples/fer_cnn/fer_cnn.h"
#include "optim/checkpoint.h"
#include "optim/optimizer.h"
#include "optim/schedule.h"
#include "train/eager_step.h"
#include "train/graph_step.h"
#include "train/progress.h"
#include "train/trainer.h"

namespace fer {
namespace {

// The CPU defaults are chosen so that the README's first command trains to >= 90% validation
// accuracy on the synthetic faces in under 5 minutes on 2 cores (measured figures in
// docs/layers.md); on a GPU the report's full-width network is the default. Measured on 2 cores:
// 92.6% after epoch 3 of 5 (1000 images per class, no augmentation, constant LR); the first
// defaults (600 per class, flip + shift, cosine over 6 epochs) stopped at 63.7%.
constexpr double kCpuWidth = 0.25;
constexpr int kCpuEpochs = 5;
constexpr int kCpuTrainPerClass = 1000;
constexpr int kGpuEpochs = 30;

struct Options {
  std::string data = "synthetic", preset, optimizer = "adam", device = "auto", schedule, precision,
              step;
  std::string out = "runs/fer_cnn", init_from;
  int epochs = 0, batch_size = 64, train_per_class = 0, warmup = 0, stop_after = 0;
  double lr = 1e-3, width = 0, weight_decay = -1, momentum = 0.9, clip = 0;
  uint64_t seed = 1;
  bool resume = false, replace = false, no_augment = false, augment = false, tf32_linear = false,
       sync_bn = false;
} opts;

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

using History = std::vector<kiln::EpochRecord>;

std::string history_csv(const History& rows) {
  std::ostringstream os;
  os << "epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds\n";
  for (const kiln::EpochRecord& r : rows) {
    char buf[256];
    std::snprintf(buf, sizeof buf, "%lld,%.6f,%.6f,%.6f,%.6f,%.6g,%.2f\n",
                  static_cast<long long>(r.epoch), r.train_loss, r.train_acc, r.val_loss, r.val_acc,
                  r.lr, r.seconds);
    os << buf;
  }
  return os.str();
}

nlohmann::json history_json(const History& rows) {
  nlohmann::json a = nlohmann::json::array();
  for (const kiln::EpochRecord& r : rows)
    a.push_back({r.epoch, r.train_loss, r.train_acc, r.val_loss, r.val_acc, r.lr, r.seconds});
  return a;
}

// Every entry is checked: indexing a short entry was undefined behaviour (a crash on --resume).
History history_from_json(const nlohmann::json& a) {
  if (!a.is_array()) throw std::runtime_error("kiln.history is not a JSON array");
  History rows;
  for (const auto& r : a) {
    bool ok = r.is_array() && r.size() == 7 && r[0].is_number_integer();
    for (size_t i = 1; ok && i < 7; ++i) ok = r[i].is_number();
    if (!ok)
      throw std::runtime_error("kiln.history entry " + std::to_string(rows.size() + 1) + " is " +
                               r.dump().substr(0, 80) + ", not [epoch, 6 numbers]");
    rows.push_back({.epoch = r[0].get<int64_t>(),
                    .train_loss = r[1].get<double>(),
                    .train_acc = r[2].get<double>(),
                    .val_loss = r[3].get<double>(),
                    .val_acc = r[4].get<double>(),
                    .lr = r[5].get<double>(),
                    .seconds = r[6].get<double>()});
  }
  return rows;
}

// The files of a run folder. The training state is the commit record; the others are derived
// from it (write_derived).
struct RunFiles {
  std::string dir, state, last, best, history, curves;
  explicit RunFiles(const std::string& d)
      : dir(d),
        state(join_path(d, "last.train.safetensors")),
        last(join_path(d, "last.safetensors")),
        best(join_path(d, "best.safetensors")),
        history(join_path(d, "history.csv")),
        curves(join_path(d, "curves")) {}
  std::vector<std::string> run_files() const {
    return {state, last, best, history, curves + ".png", curves + ".svg"};
  }
  bool holds_run() const {
    for (const std::string& f : run_files())
      if (std::filesystem::exists(f)) return true;
    return false;
  }
};

// What a committed training state says about the run.
struct Committed {
  int64_t steps = 0, best_steps = -1;
  History history;
};

std::string steps_of(const std::string& path) {
  if (!std::filesystem::exists(path)) return "";
  const auto meta = kiln::read_safetensors_metadata(path);
  const auto it = meta.find("kiln.steps");
  return it == meta.end() ? "" : it->second;
}

// Writes last.safetensors, best.safetensors (when the committed epoch is the best), history.csv
// and the curves from the committed state. With `repair` (on --resume) a model file is rewritten
// only if it does not hold the state's step, and what was rewritten is printed.
void write_derived(const RunFiles& f, kiln::Sequential& net, const ModelInfo& info,
                   const Committed& c, bool repair) {
  auto meta = model_metadata(info);
  meta.merge(precision_metadata(net.precision()));
  meta["kiln.steps"] = std::to_string(c.steps);
  meta["kiln.epoch"] = std::to_string(c.history.back().epoch);
  meta["kiln.val_acc"] = fmt("%.6f", c.history.back().val_acc);
  const std::string steps = std::to_string(c.steps);
  auto model_file = [&](const std::string& path) {
    if (repair && steps_of(path) == steps) return;
    kiln::save_model(path, net, meta);
    if (repair)
      std::printf("resume: rewrote %s from the training state (it did not hold step %s)\n",
                  path.c_str(), steps.c_str());
  };
  model_file(f.last);
  if (c.best_steps == c.steps) {
    model_file(f.best);
  } else if (repair && steps_of(f.best) != std::to_string(c.best_steps)) {
    throw UsageError(f.best + " does not hold the best model that " + f.state + " records (step " +
                     std::to_string(c.best_steps) +
                     "): it was replaced or deleted outside fer_cnn; restore it, or start a new "
                     "run with --replace");
  }
  const std::string csv = history_csv(c.history);
  if (!repair || !std::filesystem::exists(f.history) || kiln::analysis::read_file(f.history) != csv)
    kiln::write_file_atomic(f.history, csv);
  kiln::analysis::update_training_curves(f.history, f.curves);
}

// A training state written by an older fer_cnn holds no "model.<name>" tensors: its run cannot
// be resumed (kiln::restore_training_state would name the first missing tensor; this says why).
void check_state_has_weights(const kiln::StFile& file, const std::string& path) {
  for (const kiln::StTensor& t : file.tensors)
    if (t.name.rfind("model.", 0) == 0) return;
  throw UsageError(path +
                   " holds no model weights: it was written by an older fer_cnn whose runs "
                   "cannot be resumed; start a new run (--replace)");
}

// --resume: the state is the commit record, read once. The weights, the optimizer and the
// history all come from it; the derived files are then brought up to it (by rank 0 of a
// data-parallel job, `lead`; every rank reads the state). A job of another size than the one
// that wrote the state continues the same global batches (they do not depend on the ranks), so
// only the rounding of the gradient average differs: allowed, with a note.
Committed resume_run(const RunFiles& files, kiln::Sequential& net, kiln::Optimizer& optimizer,
                     const ModelInfo& info, kiln::Trainer& trainer, int ranks, bool lead) {
  kiln::StFile state = kiln::read_safetensors(files.state);
  check_state_has_weights(state, files.state);
  // The weights, the optimizer's state and the counters, all checked before any is changed.
  const auto meta = kiln::restore_training_state(std::move(state), files.state, optimizer, net);
  check_model_values(net, files.state);
  Committed committed;
  int64_t epochs_done = 0;
  try {
    epochs_done = std::stoll(meta.at("kiln.epochs_done"));
    const double best_acc = std::stod(meta.at("kiln.best_val_acc"));
    committed.best_steps = std::stoll(meta.at("kiln.best_steps"));
    committed.history = history_from_json(nlohmann::json::parse(meta.at("kiln.history")));
    trainer.resume(committed.history, best_acc);
  } catch (const std::exception& e) {
    throw UsageError(files.state + ": malformed training state (" + e.what() + ")");
  }
  if (committed.history.empty() || int64_t(committed.history.size()) != epochs_done)
    throw UsageError(files.state + ": malformed training state (its history has " +
                     std::to_string(committed.history.size()) + " epochs, not " +
                     std::to_string(epochs_done) + ")");
  committed.steps = optimizer.steps();
  const auto written = meta.find("kiln.world_size");
  const std::string by = written == meta.end() ? "1" : written->second;
  if (by != std::to_string(ranks))
    std::printf(
        "resume: the state was written by a job of %s rank(s), this one has %d: the same "
        "global batches follow, the gradient average rounds differently\n",
        by.c_str(), ranks);
  if (lead) write_derived(files, net, info, committed, /*repair=*/true);
  return committed;
}

// The library's divergence error, with advice in this program's terms (its options and folder).
kiln::Error diverged_error(const kiln::Diverged& e) {
  const std::string lr = "the learning rate is probably too high (--lr " + fmt("%g", opts.lr) +
                         "); try --lr 1e-3 or --clip 5";
  const std::string intact = "Files saved before this epoch in " + opts.out + " are intact.";
  std::string message;
  switch (e.kind()) {
    case kiln::Diverged::Kind::batch_loss:
      message = e.fact() + ": " + lr + ". " + intact;
      break;
    case kiln::Diverged::Kind::gradient_norm:
      message = e.fact() + "; lower --lr. " + intact;
      break;
    case kiln::Diverged::Kind::epoch_loss:
      message = e.fact() + "; " + lr +
                ". Nothing of this epoch was saved; files saved before it in " + opts.out +
                " are intact.";
      break;
  }
  return kiln::Error("", __FILE__, __LINE__, message);
}

std::unique_ptr<kiln::Optimizer> make_optimizer(kiln::Sequential& net) {
  if (opts.optimizer == "adam")
    return std::make_unique<kiln::Adam>(
        net.flat_params(), net.flat_grads(),
        kiln::AdamOptions{.lr = float(opts.lr),
                          .weight_decay = float(opts.weight_decay < 0 ? 0 : opts.weight_decay)});
  if (opts.optimizer == "adamw")
    return std::make_unique<kiln::AdamW>(
        net.flat_params(), net.flat_grads(),
        kiln::AdamOptions{.lr = float(opts.lr),
                          .weight_decay = float(opts.weight_decay < 0 ? 0.01 : opts.weight_decay)});
  return std::make_unique<kiln::Sgd>(
      net.flat_params(), net.flat_grads(),
      kiln::SgdOptions{.lr = float(opts.lr),
                       .momentum = float(opts.momentum),
                       .weight_decay = float(opts.weight_decay < 0 ? 0 : opts.weight_decay),
                       .nesterov = opts.momentum > 0});
}

// --init-from: the new run starts from the weights of `source` (opts.init_from, loaded as
// `source_info` says). It must be the network this run builds: the same input, width and number of
// classes (a checkpoint of fer_cnn, or its ONNX export with BatchNormalization nodes; a
// batchnorm-folded ONNX model has no batchnorm to train and is refused).
void init_from(kiln::Sequential& net, kiln::Sequential& source, const ModelInfo& source_info,
               const ModelInfo& info) {
  const kiln::FerCnnConfig& a = source_info.config;
  const kiln::FerCnnConfig& b = info.config;
  if (a.classes != b.classes)
    throw UsageError("--init-from " + opts.init_from + " has " + std::to_string(a.classes) +
                     " classes but --data " + opts.data + " has " + std::to_string(b.classes) +
                     ": fine-tune on data with the checkpoint's classes");
  if (a.channels != b.channels || a.height != b.height || a.width != b.width ||
      a.width_multiplier != b.width_multiplier)
    throw UsageError("--init-from " + opts.init_from + " is a " + std::to_string(a.channels) + "x" +
                     std::to_string(a.height) + "x" + std::to_string(a.width) +
                     " network of width x" + fmt("%g", a.width_multiplier) +
                     ", not the one --preset/--width ask for: drop those options to train the "
                     "checkpoint's network");
  try {
    kiln::load_model_state_dict(net, kiln::model_state_dict(source), opts.init_from);
  } catch (const kiln::Error& e) {
    throw UsageError("--init-from " + opts.init_from + " is not a fer_cnn network (" + e.what() +
                     "); a batchnorm-folded ONNX model (fer_cnn export --fold-bn, or PyTorch's "
                     "eval-mode export) cannot be trained: export it with BatchNormalization "
                     "nodes");
  }
  std::printf("init: weights from %s\n", opts.init_from.c_str());
}

// The training step (--step): on the CUDA device the graph step by default (train/graph_step.h:
// the step captured as a CUDA graph, then one graph launch per step; the same weights as the eager
// step bit for bit), the eager step on the CPU and under mpirun (the data-parallel step
// all-reduces gradients from the host during the backward pass, which a graph cannot hold).
bool select_graph_step(const std::string& option, bool on_cpu, bool parallel) {
  if (option == "graph") {
    if (on_cpu)
      throw UsageError(
          "--step graph needs the CUDA device (a CUDA graph): pass --device cuda, or --step eager "
          "(the CPU's step)");
    if (parallel)
      throw UsageError(
          "--step graph cannot run under mpirun: the data-parallel step all-reduces gradients "
          "from the host during the backward pass, which a captured graph cannot hold; use --step "
          "eager (the default there)");
  }
  const bool graph = option == "graph" || (option.empty() && !on_cpu && !parallel);
  const char* why = !option.empty() ? (option == "graph" ? "--step graph" : "--step eager")
                    : on_cpu        ? "the CPU's"
                    : parallel      ? "the data-parallel default"
                                    : "the CUDA default";
  std::printf("step: %s (%s)\n", graph ? "graph" : "eager", why);
  return graph;
}

int run_train() {
  namespace fs = std::filesystem;
  // Alone this is the single-process communicator and nothing changes; under a launcher, one rank
  // of the job. The other ranks train silently: rank 0 prints and owns the files.
  const std::unique_ptr<kiln::dist::Communicator> comm = kiln::dist::connect();
  const bool lead = comm->rank() == 0, parallel = comm->size() > 1;
  if (!lead && std::freopen("/dev/null", "w", stdout) == nullptr)
    throw UsageError("rank " + std::to_string(comm->rank()) + ": cannot silence stdout");
  // The numeric options were range-checked by their validators (the Registration below).
  const RunFiles files(opts.out);
  const std::string& state_path = files.state;
  if (opts.resume && opts.replace)
    throw UsageError(
        "--resume and --replace contradict each other: --resume continues the run in " + opts.out +
        ", --replace deletes it and starts a new one");
  if (!opts.resume && !opts.replace && files.holds_run())
    throw UsageError(opts.out +
                     " already holds a training run (its best model would be replaced): pass "
                     "--resume to continue it, --replace to delete it and start anew, or another "
                     "--out DIR");

  const kiln::Device device = select_device(opts.device);
  const bool on_cpu = device == kiln::Device::cpu;
  const bool graph_step = select_graph_step(opts.step, on_cpu, parallel);

  if (opts.resume && !opts.init_from.empty())
    throw UsageError(
        "--resume and --init-from contradict each other: --resume continues the run "
        "in " +
        opts.out +
        " from its own weights, --init-from starts a new run from "
        "another checkpoint's");
  // On --resume (and with --init-from) the model's shape comes from the checkpoint unless given
  // again.
  ModelInfo resumed;
  std::unique_ptr<kiln::Sequential> initial;  // --init-from: the checkpoint's network
  if (opts.resume) {
    if (!fs::exists(state_path))
      throw UsageError("--resume: no " + state_path +
                       " to resume from; run without --resume to start a new run, or pass the "
                       "--out DIR of the run to continue");
    resumed = read_model_info(state_path, "model.");
  } else if (!opts.init_from.empty()) {
    if (!fs::exists(opts.init_from))
      throw UsageError("--init-from: no file " + opts.init_from +
                       " (a fer_cnn checkpoint, or an ONNX model with BatchNormalization nodes)");
    initial = load_network(opts.init_from, kiln::Device::cpu, &resumed);
  }
  const bool shaped = opts.resume || initial != nullptr;
  // A resumed run keeps its precision unless --precision is given again.
  const kiln::PrecisionPolicy precision =
      select_precision(opts.precision, opts.tf32_linear, device,
                       opts.resume ? kiln::read_safetensors_metadata(state_path)
                                   : std::map<std::string, std::string>{});
  const kiln::data::ImageSpec spec =
      !opts.preset.empty() || !shaped ? preset_spec(opts.preset.empty() ? "default" : opts.preset)
                                      : resumed.spec();
  const double width = opts.width > 0 ? opts.width
                       : shaped       ? resumed.config.width_multiplier
                       : on_cpu       ? kCpuWidth
                                      : 1.0;
  const int epochs = opts.epochs > 0 ? opts.epochs : on_cpu ? kCpuEpochs : kGpuEpochs;
  const int per_class = opts.train_per_class > 0 ? opts.train_per_class
                        : on_cpu                 ? kCpuTrainPerClass
                                                 : 0;

  const auto t_data = std::chrono::steady_clock::now();
  kiln::data::Splits data = load_data(opts.data, spec, opts.seed, per_class);
  if (data.train.empty()) throw UsageError("--data " + opts.data + ": no training images");
  if (data.val.empty())
    throw UsageError("--data " + opts.data +
                     ": no validation images (a FER2013 CSV needs "
                     "PublicTest rows, or no Usage column for an automatic split)");
  const double data_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t_data).count();

  ModelInfo info;
  info.config = {spec.channels, spec.height, spec.width, data.train.num_classes(), width, 0.25};
  info.class_names = data.train.class_names;
  auto net = kiln::make_fer_cnn(info.config, opts.seed);
  if (initial) init_from(*net, *initial, resumed, info);
  net->to(device);
  net->set_precision(precision);
  auto optimizer = make_optimizer(*net);

  kiln::data::LoaderOptions lo;
  lo.batch_size = kiln::dist::local_batch(opts.batch_size, *comm);
  lo.seed = opts.seed;
  lo.sampler = kiln::dist::batch_sampler(*comm, opts.batch_size, opts.seed);
  // Augmentation is on by default on the GPU; the short CPU default run learns faster without it.
  const bool augment = opts.augment || (!opts.no_augment && !on_cpu);
  if (augment) lo.augment = {.hflip = true, .max_shift = std::max(1, spec.width / 16)};
  kiln::data::Loader loader(data.train, lo);
  const int64_t batches = static_cast<int64_t>(loader.batches_per_epoch());

  kiln::LrSchedule schedule;
  schedule.kind = kiln::parse_schedule_kind(!opts.schedule.empty() ? opts.schedule
                                            : on_cpu               ? "constant"
                                                                   : "cosine");
  schedule.base_lr = opts.lr;
  schedule.warmup_steps = opts.warmup;
  schedule.total_steps = epochs * batches;
  schedule.step_size = std::max<int64_t>(1, batches * std::max(1, epochs / 3));

  if (lead) {
    fs::create_directories(opts.out);
    for (const std::string& t : kiln::remove_stale_temporaries(opts.out))
      std::printf("removed %s (a temporary file of an interrupted save)\n", t.c_str());
    if (opts.replace && files.holds_run()) {
      for (const std::string& f : files.run_files()) fs::remove(f);
      std::printf("--replace: deleted the previous run in %s\n", opts.out.c_str());
    }
  }
  comm->barrier();

  std::unique_ptr<kiln::Step> single;  // this process's step
  if (graph_step)
    single = std::make_unique<kiln::GraphStep>(*net, *optimizer, schedule,
                                               kiln::GraphStepOptions{.clip = opts.clip});
  else
    single = std::make_unique<kiln::EagerStep>(*net, *optimizer, schedule, device,
                                               kiln::EagerStepOptions{.clip = opts.clip});
  // A data-parallel job: rank 0's weights everywhere, gradients averaged in the backward pass.
  std::unique_ptr<kiln::dist::DataParallel> dp;
  std::unique_ptr<kiln::dist::DataParallelStep> dp_step;
  if (parallel) {
    dp = std::make_unique<kiln::dist::DataParallel>(
        *comm, *net, kiln::dist::DataParallelOptions{.sync_batchnorm = opts.sync_bn});
    dp_step = std::make_unique<kiln::dist::DataParallelStep>(*dp, *single);
  }
  kiln::Step& step = parallel ? static_cast<kiln::Step&>(*dp_step) : *single;
  kiln::Trainer trainer(loader, step,
                        {.epochs = epochs,
                         .classes = info.config.classes,
                         .stop_after = opts.stop_after,
                         .checkpoint_every = 1});
  Committed committed;
  if (opts.resume) {
    committed = resume_run(files, *net, *optimizer, info, trainer, comm->size(), lead);
    if (trainer.epochs_done() >= epochs) {
      std::printf(
          "--resume: the run in %s already trained %lld epochs, nothing to train (pass "
          "--epochs N with N > %lld to train further)\n",
          opts.out.c_str(), static_cast<long long>(trainer.epochs_done()),
          static_cast<long long>(trainer.epochs_done()));
      return 0;
    }
  }

  std::printf(
      "fer_cnn train: %s data, %zu train / %zu val images, %d classes, %dx%dx%d input (%s)\n",
      opts.data.c_str(), data.train.size(), data.val.size(), data.train.num_classes(),
      spec.channels, spec.height, spec.width, fmt("%.1fs to load", data_seconds).c_str());
  std::printf("model: fer_cnn width x%g (%lld parameters)%s\n", width,
              static_cast<long long>(net->num_params()),
              width == 1.0 ? ", the report's network" : ", --width 1 for the report's network");
  if (parallel)
    std::printf(
        "data-parallel: %d ranks (%s, collectives over %s), %d images per rank and batch, "
        "batchnorm %s\n",
        comm->size(), comm->launch().launcher.c_str(),
        kiln::dist::backend_name(on_cpu ? comm->backend() : comm->device_backend()), lo.batch_size,
        opts.sync_bn ? "synchronised" : "per replica");
  std::printf("training: %d epochs%s, batch %d, %s lr %g (%s), %s, seed %llu, out %s\n", epochs,
              opts.resume
                  ? (", resuming after epoch " + std::to_string(trainer.epochs_done())).c_str()
                  : "",
              opts.batch_size, opts.optimizer.c_str(), opts.lr, schedule.describe().c_str(),
              !augment ? "no augmentation" : "augmentation: flip + shift",
              static_cast<unsigned long long>(opts.seed), opts.out.c_str());

  // How this run trains, kept in the training state for `fer_cnn report`.
  const nlohmann::json training = {{"epochs", epochs},
                                   {"batch_size", opts.batch_size},
                                   {"optimizer", opts.optimizer},
                                   {"lr", opts.lr},
                                   {"schedule", schedule.describe()},
                                   {"augmentation", augment ? "flip + shift" : "none"},
                                   {"train_images", data.train.size()},
                                   {"val_images", data.val.size()},
                                   {"device", on_cpu ? "cpu" : "cuda"},
                                   {"precision", precision.describe()},
                                   {"ranks", comm->size()}};

  trainer.validate = [&] {
    const EvalResult val = evaluate(*net, data.val, opts.batch_size, device);
    return kiln::MetricValues{val.loss, val.accuracy, val.count};
  };
  // The commit: the training state, with everything a resume needs. Then the files derived from
  // it; a kill before they are all written is repaired by --resume.
  trainer.checkpoint = [&](const kiln::EpochRecord& r) {
    if (!lead) return;  // every rank holds the same model; rank 0 writes it
    if (r.best) committed.best_steps = optimizer->steps();
    committed.steps = optimizer->steps();
    committed.history = trainer.history();
    kiln::test_phase("before-save", state_path);
    std::map<std::string, std::string> state_meta = model_metadata(info);
    state_meta.merge(precision_metadata(precision));
    state_meta.insert({{"kiln.epochs_done", std::to_string(r.epoch)},
                       {"kiln.best_val_acc", fmt("%.17g", trainer.best_val_accuracy())},
                       {"kiln.best_steps", std::to_string(committed.best_steps)},
                       {"kiln.history", history_json(committed.history).dump()},
                       {"kiln.data", opts.data},
                       {"kiln.seed", std::to_string(opts.seed)},
                       {"kiln.world_size", std::to_string(comm->size())},
                       {"kiln.sampler", "epoch " + std::to_string(r.epoch) + ", batch 0"},
                       {"kiln.training", training.dump()}});
    kiln::save_training_state(state_path, *optimizer, *net, state_meta);
    write_derived(files, *net, info, committed, /*repair=*/false);
  };
  trainer.epoch_end = [&](const kiln::EpochRecord& h) {
    std::printf(
        "epoch %lld/%d  train loss %.4f acc %5.1f%%  val loss %.4f acc %5.1f%%  lr %.2e  %s%s\n",
        static_cast<long long>(h.epoch), epochs, h.train_loss, 100 * h.train_acc, h.val_loss,
        100 * h.val_acc, h.lr, kiln::format_seconds(h.seconds).c_str(), h.best ? "  (best)" : "");
  };

  kiln::TrainResult result;
  try {
    result = trainer.run();
  } catch (const kiln::Diverged& e) {
    throw diverged_error(e);
  }
  if (result.stopped_early) {
    std::printf("stopping after %d epochs as asked (--stop-after); continue with --resume\n",
                opts.stop_after);
    return 0;
  }
  std::printf("done: best val acc %.1f%%, %s of training, %.0f images/s; wrote %s, %s, %s\n",
              100 * result.best_val_accuracy, kiln::format_seconds(result.seconds).c_str(),
              result.images / result.seconds, files.best.c_str(), files.last.c_str(),
              files.history.c_str());
  return 0;
}

const Registration reg{
    {"train", "Train the network (synthetic faces by default)",
     [](CLI::App& app) {
       app.add_option("--data", opts.data, "synthetic, a FER2013 CSV file, or an image folder")
           ->capture_default_str();
       app.add_option("--preset", opts.preset, "default (1x48x48) or report (3x128x128)")
           ->check(CLI::IsMember({"default", "report"}));
       app.add_option("--epochs", opts.epochs, "epochs (CPU default 5, GPU 30)")
           ->check(integer_in(1, 100000));
       app.add_option("--batch-size", opts.batch_size,
                      "images per batch (at least 2: batch normalisation needs two)")
           ->check(integer_in(2, 65536))
           ->capture_default_str();
       app.add_option("--lr", opts.lr, "learning rate")
           ->check(real_in(0, 100, /*exclude_lo=*/true))
           ->capture_default_str();
       app.add_option("--optimizer", opts.optimizer, "adam, adamw or sgd")
           ->check(CLI::IsMember({"adam", "adamw", "sgd"}))
           ->capture_default_str();
       app.add_option("--schedule", opts.schedule,
                      "learning-rate schedule: constant, step or cosine")
           ->check(CLI::IsMember({"constant", "step", "cosine"}))
           ->capture_default_str();
       app.add_option("--warmup", opts.warmup, "linear warm-up steps")
           ->check(integer_in(0, 1000000000))
           ->capture_default_str();
       app.add_option("--weight-decay", opts.weight_decay,
                      "weight decay (default 0; 0.01 for adamw)")
           ->check(real_in(0, 10));
       app.add_option("--momentum", opts.momentum, "SGD momentum (Nesterov)")
           ->check(real_in(0, 1))
           ->capture_default_str();
       app.add_option("--clip", opts.clip, "clip gradients to this global L2 norm (0: off)")
           ->check(real_in(0, 1e9))
           ->capture_default_str();
       add_device_option(app, opts.device);
       app.add_option(
              "--step", opts.step,
              "the training step: graph (CUDA only: captured once as a CUDA graph, then one "
              "graph launch per step; the default on CUDA) or eager (one launch per op; "
              "the default on the CPU and under mpirun). Both give the same weights bit "
              "for bit")
           ->check(CLI::IsMember({"eager", "graph"}));
       add_precision_option(app, opts.precision, opts.tf32_linear);
       app.add_option("--seed", opts.seed, "seed of weights, data and dropout")
           ->check(integer_in(0, UINT64_MAX))
           ->capture_default_str();
       app.add_option("--out", opts.out, "output directory")->capture_default_str();
       app.add_option("--init-from", opts.init_from,
                      "start from this checkpoint's weights (a fer_cnn checkpoint or an ONNX model "
                      "with BatchNormalization nodes): fine-tuning; the network is the "
                      "checkpoint's");
       app.add_flag("--resume", opts.resume,
                    "continue the run in --out from its training state (last.train.safetensors)");
       app.add_flag("--replace", opts.replace,
                    "delete the run already in --out and start a new one (without --resume or "
                    "--replace, train refuses a folder that holds a run)");
       app.add_option("--width", opts.width,
                      "channel-width multiplier (CPU default 0.25; 1 = the "
                      "report's network)")
           ->check(real_in(0, 8, /*exclude_lo=*/true));
       app.add_option("--train-per-class", opts.train_per_class,
                      "synthetic training images per class (CPU default 1000, "
                      "GPU 1000)")
           ->check(integer_in(1, 1000000));
       app.add_flag("--no-augment", opts.no_augment, "no random flips and shifts");
       app.add_flag("--sync-bn", opts.sync_bn,
                    "under mpirun: batchnorm statistics of the global batch (SyncBatchNorm) "
                    "instead of each rank's own");
       app.add_flag("--augment", opts.augment,
                    "random flips and shifts (default on the GPU, off for the CPU default run)");
       app.add_option("--stop-after", opts.stop_after,
                      "stop after this many epochs of this invocation, as if "
                      "interrupted (continue with --resume)")
           ->check(integer_in(1, 100000));
     },
     run_train}};

}  // namespace
}  // namespace fer
