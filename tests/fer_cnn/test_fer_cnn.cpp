// tests/fer_cnn/test_fer_cnn.cpp — the fer_cnn command line, end to end.
//
// Each test runs the real executable in a fresh temporary directory and checks its exit code, its
// messages and the files it leaves. Data are tiny (a few dozen rows, width 1/16) so a run takes
// seconds. FER_CNN_EMU_EXE, when set, is the same program linked against the emulated library:
// there --device cuda runs every kernel under the SIMT emulator.
//
// The run folder's crash consistency is tested through the writer's test hook
// (KILN_TEST_STOP_AT kills the process at a named write phase, KILN_TEST_PHASE_LOG records the
// order of the phases; io/file.h): a run killed at every phase of every file resumes to the
// uninterrupted run's weights, bit for bit.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "io/file.h"
#include "optim/checkpoint.h"
#include "tests/support/temp_dir.h"

namespace fs = std::filesystem;
using namespace kiln::test;

namespace {

struct Result {
  int code;
  std::string output;
};

// Runs the command lines (each "exe args") at the same time; their results in order. A process
// killed by a signal gets code 128.
std::vector<Result> run_all(const std::vector<std::string>& commands) {
  // Idle OpenMP threads sleep instead of spinning: on a busy machine (tests run side by side)
  // spinning makes a tiny run 4x slower. The results do not depend on it.
  ::setenv("OMP_WAIT_POLICY", "passive", /*overwrite=*/0);
  std::vector<FILE*> pipes;
  for (const std::string& c : commands) {
    pipes.push_back(::popen((c + " 2>&1").c_str(), "r"));
    REQUIRE(pipes.back() != nullptr);
  }
  std::vector<Result> results;
  for (size_t i = 0; i < pipes.size(); ++i) {
    std::string out;
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, pipes[i])) > 0) out.append(buf, n);
    const int status = ::pclose(pipes[i]);
    results.push_back({WIFEXITED(status) ? WEXITSTATUS(status) : 128, out});
    UNSCOPED_INFO("$ " << commands[i] << "\n" << out << "[exit " << results.back().code << "]");
  }
  return results;
}

Result run(const std::string& exe, const std::string& args) {
  return run_all({exe + " " + args})[0];
}

void write(const std::string& p, const std::string& s) {
  std::ofstream(p, std::ios::binary) << s;
}

// A FER2013-format CSV: `per_class` rows per class and split, side x side pixels. The class is
// drawn into the image (a bright bar whose row depends on the label) so the data are learnable.
std::string fer_csv(int per_class, int side = 48) {
  std::ostringstream os;
  os << "emotion,pixels,Usage\n";
  int k = 0;
  for (const char* usage : {"Training", "PublicTest", "PrivateTest"})
    for (int i = 0; i < per_class; ++i)
      for (int c = 0; c < 7; ++c, ++k) {
        os << c << ",";
        for (int p = 0; p < side * side; ++p) {
          const int row = p / side;
          const bool bar = row >= c * side / 7 && row < c * side / 7 + 4;
          os << (p ? " " : "") << (bar ? 220 : 40 + (k * 7 + p * 13) % 30);
        }
        os << "," << usage << "\n";
      }
  return os.str();
}

// An uncompressed 24-bit BMP of a gray image.
void write_bmp(const std::string& path, int w, int h, int value) {
  const int row = (w * 3 + 3) / 4 * 4, size = 54 + row * h;
  std::string b(size, '\0');
  auto put32 = [&](int at, uint32_t v) {
    for (int i = 0; i < 4; ++i) b[at + i] = char((v >> (8 * i)) & 0xff);
  };
  b[0] = 'B';
  b[1] = 'M';
  put32(2, size);
  put32(10, 54);
  put32(14, 40);
  put32(18, w);
  put32(22, h);
  b[26] = 1;
  b[28] = 24;
  put32(34, row * h);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w * 3; ++x) b[54 + y * row + x] = char(value);
  write(path, b);
}

const std::string kExe = FER_CNN_EXE;

// Trains one epoch of a tiny network on dir/fer.csv into dir/run; returns the train command's
// data options, for more runs on the same data.
std::string train_tiny_run(const TempDir& dir) {
  write(dir / "fer.csv", fer_csv(2));
  const std::string base = "train --data " + (dir / "fer.csv") + " --device cpu --batch-size 8 ";
  REQUIRE(run(kExe, base + "--epochs 1 --width 0.0625 --out " + (dir / "run")).code == 0);
  return base;
}
const std::string kEmuExe = FER_CNN_EMU_EXE;
const std::string kTiny = " --width 0.0625 --batch-size 8 --no-augment";

void train_eval_predict(const std::string& exe, const std::string& device) {
  TempDir dir("csv_" + device);
  write(dir / "fer.csv", fer_csv(3));
  write_bmp(dir / "face.bmp", 40, 52, 128);
  Result t = run(exe, "train --data " + (dir / "fer.csv") + " --epochs 2 --device " + device +
                          " --out " + (dir / "run") + kTiny);
  REQUIRE(t.code == 0);
  // The CUDA default is tf32 (PyTorch's for convolutions); the CPU's fp32.
  CHECK_THAT(t.output,
             Catch::Contains(device == "cuda" ? "precision: tf32 (the CUDA default, as PyTorch's)"
                                              : "precision: fp32 (the CPU default)"));
  CHECK_THAT(t.output, Catch::Contains("21 train / 21 val images"));
  CHECK_THAT(t.output, Catch::Contains("epoch 2/2"));
  for (const char* f : {"best.safetensors", "last.safetensors", "last.train.safetensors"})
    CHECK(fs::exists(dir.path() / "run" / f));
  const std::string history = file_contents(dir / "run/history.csv");
  CHECK_THAT(history,
             Catch::StartsWith("epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds\n1,"));
  CHECK(std::count(history.begin(), history.end(), '\n') == 3);

  Result e = run(exe, "eval --data " + (dir / "fer.csv") + " --split test --device " + device +
                          " --checkpoint " + (dir / "run/best.safetensors"));
  REQUIRE(e.code == 0);
  CHECK_THAT(e.output, Catch::Contains("test split, 21 images") && Catch::Contains("accuracy"));
  CHECK_THAT(e.output, Catch::Contains("confusion matrix") && Catch::Contains("surprise"));

  Result p = run(exe, "predict " + (dir / "face.bmp") + " --device " + device + " --checkpoint " +
                          (dir / "run/best.safetensors"));
  REQUIRE(p.code == 0);
  double sum = 0;
  for (const char* name : {"angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"}) {
    const size_t at = p.output.find(std::string("  ") + name + " ");
    REQUIRE(at != std::string::npos);
    sum += std::stod(p.output.substr(p.output.find_first_of("0123456789", at)));
  }
  CHECK(sum == Approx(1.0).epsilon(1e-3));
  CHECK_THAT(p.output, Catch::Contains("prediction: "));
}

}  // namespace

TEST_CASE("a FER2013 CSV trains, evaluates and predicts on the CPU", "[cpu][fer_cnn]") {
  train_eval_predict(kExe, "cpu");
}

TEST_CASE("a FER2013 CSV trains, evaluates and predicts on the emulated CUDA device",
          "[simt][fer_cnn]") {
  if (kEmuExe.empty()) {
    WARN("fer_cnn_emu was not built (no CUDA device in this build): test not run");
    return;
  }
  train_eval_predict(kEmuExe, "cuda");
}

// The probability `predict` prints for class `name` (4 decimals).
double predicted_probability(const std::string& output, const std::string& name) {
  const size_t at = output.find("  " + name + " ");
  REQUIRE(at != std::string::npos);
  return std::stod(output.substr(output.find_first_of("0123456789", at + name.size() + 2)));
}

TEST_CASE("report and filters work for any class names the checkpoint carries", "[cpu][fer_cnn]") {
  // An image folder of three classes that are not FER's: train/ and test/ (one image per class,
  // so the first test image of each class is known).
  TempDir dir("classes");
  const std::vector<std::string> names = {"cat", "dog", "owl"};
  for (size_t c = 0; c < names.size(); ++c) {
    fs::create_directories(dir.path() / "img/train" / names[c]);
    fs::create_directories(dir.path() / "img/test" / names[c]);
    for (int i = 0; i < 6; ++i)
      write_bmp(dir / ("img/train/" + names[c] + "/" + std::to_string(i) + ".bmp"), 24, 24,
                int(60 * c) + 10 * i);
    write_bmp(dir / ("img/test/" + names[c] + "/a.bmp"), 24, 24, int(60 * c) + 25);
  }
  REQUIRE(run(kExe, "train --data " + (dir / "img") + " --epochs 2 --device cpu --out " +
                        (dir / "run") + kTiny)
              .code == 0);
  const Result r = run(
      kExe, "report --run " + (dir / "run") + " --steps 2 --filters 1 --per-class 1 --device cpu");
  REQUIRE(r.code == 0);
  const std::string html = file_contents(dir / "run/report.html");
  for (const std::string& n : names) CHECK_THAT(html, Catch::Contains(n));
  // No FER class name and no comparison with the FER2013 run, which concern FER's classes only.
  for (const char* fer : {"happy", "angry", "neutral", "FER2013"})
    CHECK_THAT(html, !Catch::Contains(fer));
  CHECK(fs::exists(dir.path() / "run/analysis/saliency.png"));

  // The feature maps show the test image the model is surest of: the largest probability of
  // its true class, as `predict` prints it (4 decimals, so a near tie may go either way).
  std::vector<double> p;
  for (const std::string& n : names) {
    const Result pr = run(kExe, "predict " + (dir / ("img/test/" + n + "/a.bmp")) +
                                    " --device cpu --checkpoint " + (dir / "run/best.safetensors"));
    REQUIRE(pr.code == 0);
    p.push_back(predicted_probability(pr.output, n));
  }
  const double best = *std::max_element(p.begin(), p.end());
  std::vector<std::string> candidates;
  for (size_t c = 0; c < names.size(); ++c)
    if (p[c] >= best - 2e-4) candidates.push_back(names[c]);
  bool shown = false;
  for (const std::string& n : candidates)  // the page escapes ' as &#39;
    shown = shown || html.find("image of class &#39;" + n + "&#39;") != std::string::npos;
  INFO("probabilities of the true class: " << p[0] << " " << p[1] << " " << p[2]);
  CHECK(shown);

  // `filters` needs no --image-class either.
  const Result f = run(kExe, "filters --checkpoint " + (dir / "run/best.safetensors") + " --data " +
                                 (dir / "img") + " --steps 2 --filters 1 --device cpu");
  REQUIRE(f.code == 0);
  CHECK_THAT(f.output, Catch::Contains("feature_maps_layer_"));
  const Result bad =
      run(kExe, "filters --checkpoint " + (dir / "run/best.safetensors") + " --data " +
                    (dir / "img") + " --steps 2 --filters 1 --device cpu --image-class happy");
  CHECK(bad.code == 2);
  CHECK_THAT(bad.output, Catch::Contains("--image-class 'happy' is not a class of this model"));
}

TEST_CASE("fer_cnn train --resume continues a run bit for bit", "[cpu][fer_cnn]") {
  TempDir dir("resume");
  write(dir / "fer.csv", fer_csv(3));
  const std::string common = "train --data " + (dir / "fer.csv") + " --epochs 3 --device cpu " +
                             "--width 0.0625 --batch-size 8 --augment";  // its RNG resumes too
  REQUIRE(run(kExe, common + " --out " + (dir / "a")).code == 0);
  Result first = run(kExe, common + " --out " + (dir / "b") + " --stop-after 1");
  REQUIRE(first.code == 0);
  CHECK_THAT(first.output, Catch::Contains("continue with --resume"));
  Result rest = run(kExe, common + " --out " + (dir / "b") + " --resume");
  REQUIRE(rest.code == 0);
  CHECK_THAT(rest.output, Catch::Contains("resuming after epoch 1"));
  const kiln::StFile a = kiln::read_safetensors(dir / "a/last.safetensors");
  const kiln::StFile b = kiln::read_safetensors(dir / "b/last.safetensors");
  REQUIRE(a.tensors.size() == 41);
  REQUIRE(b.tensors.size() == 41);
  for (size_t i = 0; i < a.tensors.size(); ++i) {
    INFO(a.tensors[i].name);
    CHECK(a.tensors[i].bytes == b.tensors[i].bytes);
  }
  // history.csv of the resumed run has all three epochs.
  const std::string history = file_contents(dir / "b/history.csv");
  CHECK(std::count(history.begin(), history.end(), '\n') == 4);
}

TEST_CASE("bad data: a clear message, a non-zero exit", "[cpu][fer_cnn]") {
  TempDir dir("bad_data");
  const std::string good = fer_csv(1);
  auto train = [&](const std::string& data) {
    return run(kExe,
               "train --epochs 1 --device cpu --out " + (dir / "run") + kTiny + " --data " + data);
  };
  SECTION("a truncated row") {
    std::string s = good;
    s.resize(s.size() * 2 / 3);  // cuts a row short
    write(dir / "t.csv", s);
    Result r = train(dir / "t.csv");
    CHECK(r.code != 0);
    CHECK_THAT(r.output, Catch::Contains("t.csv") && Catch::Contains("line"));
  }
  SECTION("a malformed pixel") {
    std::string s = good;
    s.replace(s.find(" 4", 30), 2, " x");
    write(dir / "m.csv", s);
    Result r = train(dir / "m.csv");
    CHECK(r.code != 0);
    CHECK_THAT(r.output, Catch::Contains("m.csv:2") && Catch::Contains("not an integer"));
  }
  SECTION("a label outside 0-6") {
    std::string s = good;
    s[s.find("\n3,") + 1] = '9';
    write(dir / "l.csv", s);
    Result r = train(dir / "l.csv");
    CHECK(r.code != 0);
    CHECK_THAT(r.output, Catch::Contains("l.csv") && Catch::Contains("9"));
  }
  SECTION("a pixel count that is not a square") {
    std::ostringstream os;
    os << "emotion,pixels,Usage\n";
    for (int i = 0; i < 14; ++i) {
      os << i % 7 << ",";
      for (int p = 0; p < 50; ++p) os << (p ? " " : "") << 100;
      os << (i < 7 ? ",Training\n" : ",PublicTest\n");
    }
    write(dir / "s.csv", os.str());
    Result r = train(dir / "s.csv");
    CHECK(r.code != 0);
    CHECK_THAT(r.output, Catch::Contains("s.csv") && Catch::Contains("50"));
  }
  SECTION("a folder with no images") {
    fs::create_directories(dir.path() / "empty/happy");
    fs::create_directories(dir.path() / "empty/sad");
    write(dir / "empty/happy/readme.txt", "no images here");
    Result r = train(dir / "empty");
    CHECK(r.code != 0);
    CHECK_THAT(r.output, Catch::Contains("empty") && Catch::Contains("image"));
  }
  SECTION("a corrupt image in a folder") {
    for (const char* c : {"happy", "sad"}) {
      fs::create_directories(dir.path() / "faces" / c);
      for (int i = 0; i < 3; ++i)
        // std::string("f") first: g++ 12 -O2 warns falsely on "literal" + std::string (-Wrestrict).
        write_bmp(
            (dir.path() / "faces" / c / (std::string("f") += std::to_string(i) + ".bmp")).string(),
            48, 48, 60 + 40 * i);
    }
    write(dir / "faces/sad/broken.png", "\x89PNG\r\n\x1a\n this is not really a png");
    Result r = train(dir / "faces");
    CHECK(r.code != 0);
    CHECK_THAT(r.output, Catch::Contains("broken.png"));
  }
  SECTION("a missing file") {
    Result r = train(dir / "nope.csv");
    CHECK(r.code != 0);
    CHECK_THAT(r.output, Catch::Contains("nope.csv"));
  }
  CHECK_FALSE(fs::exists(dir.path() / "run" / "last.safetensors"));
}

TEST_CASE("hostile checkpoints and inputs: refused with a clear message, never a crash or a hang",
          "[cpu][fer_cnn]") {
  TempDir dir("hostile");
  const std::string base = train_tiny_run(dir);
  const std::string best = dir / "run/best.safetensors";
  SECTION("a kiln.history entry shorter than expected") {
    // Regression: indexing the short entry crashed --resume with SIGSEGV.
    const std::string state = dir / "run/last.train.safetensors";
    kiln::StFile f = kiln::read_safetensors(state);
    f.metadata.at("kiln.history") = "[[1, 0.5]]";
    kiln::write_safetensors(state, f);
    Result r = run(kExe, base + "--epochs 2 --width 0.0625 --resume --out " + (dir / "run"));
    CHECK(r.code == 2);
    CHECK_THAT(r.output, Catch::Contains("kiln.history entry 1") && Catch::Contains(state));
  }
  SECTION("a model description that does not match the weights") {
    // Regression: a crafted kiln.model built a network of gigabytes before any check.
    kiln::StFile f = kiln::read_safetensors(best);
    std::string& m = f.metadata.at("kiln.model");
    const std::string from = "\"width_multiplier\":0.0625";
    REQUIRE(m.find(from) != std::string::npos);
    m.replace(m.find(from), from.size(), "\"width_multiplier\":16");
    kiln::write_safetensors(dir / "crafted.safetensors", f);
    Result r = run(kExe, "eval --device cpu --checkpoint " + (dir / "crafted.safetensors") +
                             " --data " + (dir / "fer.csv"));
    CHECK(r.code == 2);
    CHECK_THAT(r.output, Catch::Contains("crafted.safetensors") &&
                             Catch::Contains("does not match the weights"));
  }
  SECTION("a FIFO as the checkpoint, the data or the image") {
    // Regression: a FIFO passed as a checkpoint blocked for ever (timeout bounds the test).
    const std::string fifo = dir / "fifo";
    REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
    Result r = run("timeout 60 " + kExe, "eval --device cpu --checkpoint " + fifo);
    CHECK(r.code == 2);
    CHECK_THAT(r.output, Catch::Contains("FIFO") && Catch::Contains("not a regular file"));
    r = run("timeout 60 " + kExe, "train --device cpu --data " + fifo + " --out " + (dir / "x"));
    CHECK(r.code != 0);
    CHECK_THAT(r.output, Catch::Contains("FIFO"));
    r = run("timeout 60 " + kExe, "predict " + fifo + " --device cpu --checkpoint " + best);
    CHECK(r.code != 0);
    CHECK_THAT(r.output, Catch::Contains("FIFO"));
  }
  SECTION("an image declaring more pixels than the cap") {
    // A 4x4 BMP whose header is made to claim 20000x20000 (its data stays 48 bytes).
    write_bmp(dir / "huge.bmp", 4, 4, 90);
    std::string bmp = file_contents(dir / "huge.bmp");
    for (int at : {18, 22})
      for (int i = 0; i < 4; ++i) bmp[size_t(at + i)] = char((20000u >> (8 * i)) & 0xff);
    write(dir / "huge.bmp", bmp);
    Result r = run(kExe, "predict " + (dir / "huge.bmp") + " --device cpu --checkpoint " + best);
    CHECK(r.code != 0);
    CHECK_THAT(r.output, Catch::Contains("huge.bmp") && Catch::Contains("20000x20000") &&
                             Catch::Contains("KILN_MAX_IMAGE_PIXELS"));
  }
}

TEST_CASE("bad checkpoints and images, non-finite loss: clear messages, saved files intact",
          "[cpu][fer_cnn]") {
  TempDir dir("bad_ckpt");
  const std::string base = train_tiny_run(dir);
  const std::string last = file_contents(dir / "run/last.safetensors");
  const std::string best = file_contents(dir / "run/best.safetensors");
  const std::string state = file_contents(dir / "run/last.train.safetensors");
  const std::string history = file_contents(dir / "run/history.csv");
  auto intact = [&] {
    CHECK(file_contents(dir / "run/last.safetensors") == last);
    CHECK(file_contents(dir / "run/best.safetensors") == best);
    CHECK(file_contents(dir / "run/last.train.safetensors") == state);
    CHECK(file_contents(dir / "run/history.csv") == history);
  };

  SECTION("resuming with another architecture names the tensor") {
    Result r = run(kExe, base + "--epochs 2 --width 0.125 --resume --out " + (dir / "run"));
    CHECK(r.code != 0);
    CHECK_THAT(r.output, Catch::Contains("0.weight") && Catch::Contains("another architecture"));
    intact();
  }
  SECTION("a non-finite loss stops with a message and keeps the saved files") {
    Result r = run(kExe, base + "--epochs 3 --lr 100 --resume --out " + (dir / "run"));
    CHECK(r.code != 0);
    CHECK_THAT(r.output, (Catch::Contains("not finite") || Catch::Contains("diverged")) &&
                             Catch::Contains("--lr"));
    intact();
  }
  SECTION("a corrupt image to predict") {
    write(dir / "bad.png", "definitely not an image");
    Result r = run(kExe, "predict " + (dir / "bad.png") + " --device cpu --checkpoint " +
                             (dir / "run/best.safetensors"));
    CHECK(r.code != 0);
    CHECK_THAT(r.output, Catch::Contains("bad.png"));
  }
  SECTION("a file that is not a checkpoint") {
    write_bmp(dir / "face.bmp", 48, 48, 100);
    Result r = run(
        kExe, "predict " + (dir / "face.bmp") + " --device cpu --checkpoint " + (dir / "fer.csv"));
    CHECK(r.code != 0);
    CHECK_THAT(r.output, Catch::Contains("fer.csv") && Catch::Contains("not a safetensors"));
  }
  SECTION("a missing checkpoint") {
    Result r = run(kExe, "eval --device cpu --checkpoint " + (dir / "none.safetensors"));
    CHECK(r.code != 0);
    CHECK_THAT(r.output, Catch::Contains("does not exist") && Catch::Contains("fer_cnn train"));
  }
  SECTION("a training state whose history rows are short") {
    for (const char* history : {"[[1, 2.0]]", "{\"a\": 1}", "[[1,2,3,4,5,6,\"x\"]]"}) {
      kiln::StFile f = kiln::read_safetensors(dir / "run/last.train.safetensors");
      f.metadata["kiln.history"] = history;
      kiln::write_safetensors(dir / "run/last.train.safetensors", f);
      Result r = run(kExe, base + "--epochs 2 --width 0.0625 --resume --out " + (dir / "run"));
      CHECK(r.code == 2);
      CHECK_THAT(r.output, Catch::Contains("malformed training state"));
    }
  }
  SECTION("--resume without a run") {
    Result r = run(kExe, base + "--resume --out " + (dir / "other"));
    CHECK(r.code != 0);
    CHECK_THAT(r.output, Catch::Contains("run without --resume"));
  }
  SECTION("bad options") {
    CHECK(run(kExe, "train --optimizer rmsprop").code != 0);
    CHECK(run(kExe, "train --batch-size 1 --out " + (dir / "x")).code != 0);
    CHECK(run(kExe, "frobnicate").code != 0);
    if (!std::getenv("KILN_TEST_GPU")) {
      // Tiny, so that where a CUDA device does answer (the emulated library is one) this trains
      // in seconds instead of the GPU defaults' 30 epochs of the full network.
      Result r = run(kExe, "train --data " + (dir / "fer.csv") + " --device cuda --out " +
                               (dir / "x") + " --epochs 1" + kTiny);
      if (r.code != 0) CHECK_THAT(r.output, Catch::Contains("--device cpu"));
    }
  }
}

namespace {

// Runs `args` with the environment `env` ("NAME=value ...") prepended to the command line.
Result run_env(const std::string& env, const std::string& args) {
  return run("env " + env + " " + kExe, args);
}

// Every file of a run folder that exists loads: the safetensors files parse, history.csv has its
// header and seven fields a row.
void check_files_load(const fs::path& dir) {
  for (const char* f : {"last.train.safetensors", "last.safetensors", "best.safetensors"}) {
    if (!fs::exists(dir / f)) continue;
    INFO(f);
    CHECK_NOTHROW(kiln::read_safetensors((dir / f).string()));
  }
  if (fs::exists(dir / "history.csv")) {
    std::istringstream in(file_contents((dir / "history.csv").string()));
    std::string line;
    REQUIRE(std::getline(in, line));
    CHECK(line == "epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds");
    while (std::getline(in, line)) CHECK(std::count(line.begin(), line.end(), ',') == 6);
  }
}

// The tensors of two safetensors files, byte for byte.
void check_same_tensors(const std::string& a_path, const std::string& b_path) {
  const kiln::StFile a = kiln::read_safetensors(a_path);
  const kiln::StFile b = kiln::read_safetensors(b_path);
  REQUIRE(a.tensors.size() == b.tensors.size());
  for (size_t i = 0; i < a.tensors.size(); ++i) {
    INFO(b_path << ": " << a.tensors[i].name);
    CHECK(a.tensors[i].name == b.tensors[i].name);
    CHECK(a.tensors[i].bytes == b.tensors[i].bytes);
  }
  if (a.metadata.count("kiln.steps"))
    CHECK(a.metadata.at("kiln.steps") == b.metadata.at("kiln.steps"));
}

// history.csv without its last column (the seconds an epoch took).
std::string history_without_seconds(const std::string& path) {
  std::istringstream in(file_contents(path));
  std::string line, out;
  while (std::getline(in, line)) out += line.substr(0, line.rfind(',')) + "\n";
  return out;
}

}  // namespace

TEST_CASE("train --device cuda: the graph step's checkpoints equal the eager step's, byte for byte",
          "[simt][fer_cnn]") {
  if (kEmuExe.empty()) {
    WARN("fer_cnn_emu was not built (no CUDA device in this build): test not run");
    return;
  }
  TempDir dir("step");
  write(dir / "fer.csv", fer_csv(5));  // 35 training images: 4 batches of 8, a last one of 3
  // Dropout on (the network's five), augmentation, a cosine schedule with warm-up.
  const std::string common = "train --data " + (dir / "fer.csv") +
                             " --epochs 2 --device cuda --width 0.0625 --batch-size 8 --augment "
                             "--warmup 2 --schedule cosine";
  Result eager = run(kEmuExe, common + " --step eager --out " + (dir / "eager"));
  REQUIRE(eager.code == 0);
  CHECK_THAT(eager.output, Catch::Contains("step: eager (--step eager)"));
  Result graph = run(kEmuExe, common + " --out " + (dir / "graph"));
  REQUIRE(graph.code == 0);
  CHECK_THAT(graph.output, Catch::Contains("step: graph (the CUDA default)"));
  // Interrupted after epoch 1 and resumed, the graph step both times: the dropout offsets and the
  // optimizer's steps come back from the training state.
  Result first = run(kEmuExe, common + " --step graph --stop-after 1 --out " + (dir / "resumed"));
  REQUIRE(first.code == 0);
  Result rest = run(kEmuExe, common + " --step graph --resume --out " + (dir / "resumed"));
  REQUIRE(rest.code == 0);
  for (const char* run_dir : {"graph", "resumed"}) {
    for (const char* f : {"last.train.safetensors", "last.safetensors", "best.safetensors"})
      check_same_tensors(dir / ("eager/" + std::string(f)), dir / (std::string(run_dir) + "/" + f));
    CHECK(history_without_seconds(dir / (std::string(run_dir) + "/history.csv")) ==
          history_without_seconds(dir / "eager/history.csv"));
  }
  // The counters the training state records (the dropout offsets among them) are the eager run's.
  const auto counters = [&](const char* run_dir) {
    const std::string training =
        kiln::read_safetensors_metadata(dir / (std::string(run_dir) + "/last.train.safetensors"))
            .at("kiln.optimizer_state");
    return training.substr(training.find("\"counters\""));
  };
  CHECK(counters("graph") == counters("eager"));
  CHECK(counters("resumed") == counters("eager"));
  CHECK_THAT(counters("eager"), Catch::Contains("\"4.dropout_offset\":10"));
  // --step graph where no graph can run: refused before anything is written.
  Result cpu = run(kEmuExe, "train --data " + (dir / "fer.csv") +
                                " --device cpu --step graph --out " + (dir / "cpu") + kTiny);
  CHECK(cpu.code == 2);
  CHECK_THAT(cpu.output, Catch::Contains("--step graph needs the CUDA device") &&
                             Catch::Contains("--step eager"));
  CHECK_FALSE(fs::exists(dir / "cpu"));
}

TEST_CASE("a save writes, fsyncs, renames and syncs the folder, the training state first",
          "[cpu][fer_cnn]") {
  TempDir dir("phases");
  write(dir / "fer.csv", fer_csv(3));
  Result r = run_env("KILN_TEST_PHASE_LOG=" + (dir / "log"), "train --data " + (dir / "fer.csv") +
                                                                 " --epochs 1 --device cpu --out " +
                                                                 (dir / "run") + kTiny);
  REQUIRE(r.code == 0);
  std::vector<std::string> expected = {"before-save last.train.safetensors"};
  for (const char* f : {"last.train.safetensors", "last.safetensors", "best.safetensors",
                        "history.csv", "curves.png", "curves.svg"})
    for (const char* phase : {"after-write", "after-fsync", "after-rename", "after-dirsync"})
      expected.push_back(std::string(phase) + " " + f);
  std::istringstream in(file_contents(dir / "log"));
  std::vector<std::string> got;
  for (std::string line; std::getline(in, line);)
    got.push_back(line.substr(0, line.find(' ') + 1) +
                  fs::path(line.substr(line.find(' ') + 1)).filename().string());
  CHECK(got == expected);
}

TEST_CASE("train --precision: recorded in every file of the run, kept on resume, taken by eval",
          "[cpu][fer_cnn]") {
  TempDir dir("precision");
  write(dir / "fer.csv", fer_csv(2));
  const std::string data = " --data " + (dir / "fer.csv") + " --device cpu";
  const std::string train = "train" + data + " --epochs 2" + kTiny;
  Result fp32 = run(kExe, train + " --out " + (dir / "fp32"));
  REQUIRE(fp32.code == 0);
  CHECK_THAT(fp32.output, Catch::Contains("precision: fp32 (the CPU default)"));

  Result first = run(kExe, train + " --out " + (dir / "run") + " --precision bf16 --stop-after 1");
  REQUIRE(first.code == 0);
  CHECK_THAT(first.output, Catch::Contains("precision: bf16 (--precision bf16)"));
  Result rest = run(kExe, train + " --out " + (dir / "run") + " --resume");
  REQUIRE(rest.code == 0);
  CHECK_THAT(rest.output, Catch::Contains("precision: bf16 (the resumed run's)"));
  for (const char* f : {"last.train.safetensors", "last.safetensors", "best.safetensors"}) {
    INFO(f);
    const auto meta = kiln::read_safetensors_metadata(dir / ("run/" + std::string(f)));
    CHECK(meta.at("kiln.precision") == "bf16");
    CHECK(meta.at("kiln.tf32_linear") == "false");
  }
  CHECK_THAT(
      kiln::read_safetensors_metadata(dir / "run/last.train.safetensors").at("kiln.training"),
      Catch::Contains("\"precision\":\"bf16\""));
  // The master weights are saved in fp32, and bf16 trained them differently from fp32.
  const kiln::StFile a = kiln::read_safetensors(dir / "fp32/last.safetensors");
  const kiln::StFile b = kiln::read_safetensors(dir / "run/last.safetensors");
  REQUIRE(a.tensors.size() == b.tensors.size());
  bool differ = false;
  for (size_t i = 0; i < b.tensors.size(); ++i) {
    if (b.tensors[i].name.find("num_batches_tracked") == std::string::npos)
      CHECK(b.tensors[i].dtype == "F32");
    differ = differ || a.tensors[i].bytes != b.tensors[i].bytes;
  }
  CHECK(differ);

  Result e = run(kExe, "eval" + data + " --checkpoint " + (dir / "run/best.safetensors") +
                           " --precision tf32 --tf32-linear");
  REQUIRE(e.code == 0);
  CHECK_THAT(e.output, Catch::Contains("precision: tf32 (linear tf32 too) (--precision tf32)") &&
                           Catch::Contains("accuracy"));
  Result bad = run(kExe, train + " --out " + (dir / "bad") + " --precision bf16 --tf32-linear");
  CHECK(bad.code == 2);
  CHECK_THAT(bad.output, Catch::Contains("--tf32-linear needs --precision tf32"));
  CHECK_FALSE(fs::exists(dir / "bad"));
}

TEST_CASE("train refuses to replace a run unless told to resume or replace it", "[cpu][fer_cnn]") {
  TempDir dir("overwrite");
  write(dir / "fer.csv", fer_csv(2));
  const std::string train = "train --data " + (dir / "fer.csv") + " --epochs 1 --device cpu " +
                            "--out " + (dir / "run") + kTiny;
  REQUIRE(run(kExe, train).code == 0);
  const std::string best = file_contents(dir / "run/best.safetensors");
  Result again = run(kExe, train + " --seed 2");
  CHECK(again.code == 2);
  CHECK_THAT(again.output, Catch::Contains("already holds a training run") &&
                               Catch::Contains("--resume") && Catch::Contains("--replace"));
  CHECK(file_contents(dir / "run/best.safetensors") == best);
  CHECK(run(kExe, train + " --resume --replace").code == 2);
  CHECK(file_contents(dir / "run/best.safetensors") == best);
  Result replaced = run(kExe, train + " --seed 2 --replace");
  CHECK(replaced.code == 0);
  CHECK_THAT(replaced.output, Catch::Contains("deleted the previous run"));
  CHECK(file_contents(dir / "run/best.safetensors") != best);
}

TEST_CASE("a run killed at any write phase resumes to the uninterrupted run's weights",
          "[cpu][fer_cnn]") {
  TempDir dir("kill");
  write(dir / "fer.csv", fer_csv(3));
  const std::string common = "train --data " + (dir / "fer.csv") + " --epochs 2 --device cpu" +
                             " --width 0.0625 --batch-size 8 --augment --lr 3e-3";
  REQUIRE(run(kExe, common + " --out " + (dir / "ref")).code == 0);

  // Each kill point in a fresh folder: every phase of every file once, alternately in the first
  // epoch (#1) and the second (#2). best.safetensors is
  // written in epoch 1 for sure (any accuracy beats none), so its kills are all there.
  std::vector<std::string> points = {"before-save:*#1", "before-save:*#2",
                                     "after-rename:curves.png#1"};
  const char* phases[] = {"after-write", "after-fsync", "after-rename", "after-dirsync"};
  for (int p = 0; p < 4; ++p) {
    const std::string phase = phases[p], alternate = p % 2 ? "#2" : "#1";
    points.push_back(phase + ":last.train.safetensors" + alternate);
    points.push_back(phase + ":last.safetensors" + alternate);
    points.push_back(phase + ":history.csv" + (p % 2 ? "#1" : "#2"));
    points.push_back(phase + ":best.safetensors#1");
  }
  // Four kill points at a time: the runs spend much of their time waiting for fsync.
  int killed = 0;
  const std::string env = "env KILN_TEST_STOP_AT=";
  for (size_t first = 0; first < points.size(); first += 4) {
    const size_t last = std::min(points.size(), first + 4);
    auto out = [&](size_t i) { return dir.path() / (std::string("k") += std::to_string(i)); };
    std::vector<std::string> kills, resumes;
    for (size_t i = first; i < last; ++i)
      kills.push_back(env + points[i] + " " + kExe + " " + common + " --out " + out(i).string());
    const std::vector<Result> k = run_all(kills);
    std::vector<bool> temporaries;
    for (size_t i = first; i < last; ++i) {
      INFO("kill point " << points[i]);
      // Killed by the hook (directly, or through the shell: 128 + 9), not finished.
      REQUIRE((k[i - first].code == 128 || k[i - first].code == 128 + SIGKILL));
      ++killed;
      check_files_load(out(i));
      bool any = false;
      for (const fs::directory_entry& e : fs::directory_iterator(out(i)))
        any = any || kiln::is_atomic_temporary(e.path().filename().string());
      temporaries.push_back(any);
      // Resume, or start again if nothing was committed.
      const bool committed = fs::exists(out(i) / "last.train.safetensors");
      resumes.push_back(kExe + " " + common + " --out " + out(i).string() +
                        (committed ? " --resume" : ""));
    }
    const std::vector<Result> r = run_all(resumes);
    for (size_t i = first; i < last; ++i) {
      INFO("kill point " << points[i]);
      REQUIRE(r[i - first].code == 0);
      if (temporaries[i - first])
        CHECK_THAT(r[i - first].output, Catch::Contains("a temporary file of an interrupted save"));
      // The folder now equals the uninterrupted run's, bit for bit.
      for (const char* f : {"last.safetensors", "best.safetensors", "last.train.safetensors"})
        check_same_tensors(dir / ("ref/" + std::string(f)), (out(i) / f).string());
      CHECK(history_without_seconds((out(i) / "history.csv").string()) ==
            history_without_seconds(dir / "ref/history.csv"));
      for (const fs::directory_entry& e : fs::directory_iterator(out(i)))
        CHECK_FALSE(kiln::is_atomic_temporary(e.path().filename().string()));
    }
  }
  CHECK(killed == int(points.size()));
}

TEST_CASE("non-finite or negative-variance checkpoints are refused with the tensor's name",
          "[cpu][fer_cnn]") {
  TempDir dir("nan");
  write(dir / "fer.csv", fer_csv(2));
  write_bmp(dir / "face.bmp", 48, 48, 100);
  REQUIRE(run(kExe, "train --data " + (dir / "fer.csv") + " --epochs 1 --device cpu --out " +
                        (dir / "run") + kTiny)
              .code == 0);
  auto poisoned = [&](const std::string& tensor, float value) {
    kiln::StFile f = kiln::read_safetensors(dir / "run/best.safetensors");
    for (kiln::StTensor& t : f.tensors)
      if (t.name == tensor) std::memcpy(t.bytes.data() + 4, &value, 4);  // element 1
    const std::string path = dir / ("bad_" + tensor + ".safetensors");
    kiln::write_safetensors(path, f);
    return path;
  };
  const std::string data = " --device cpu --data " + (dir / "fer.csv");
  for (const auto& [tensor, value, what] :
       {std::tuple<std::string, float, std::string>{"0.weight", NAN, "non-finite"},
        {"26.bias", INFINITY, "non-finite"},
        {"1.running_var", -1.0f, "is a variance"}}) {
    const std::string ckpt = " --checkpoint " + poisoned(tensor, value);
    for (const std::string& cmd :
         {"eval" + data + ckpt, "predict " + (dir / "face.bmp") + " --device cpu" + ckpt,
          "saliency --split val" + data + ckpt, "filters --steps 2 --filters 1" + data + ckpt,
          "report --run " + (dir / "run") + " --split val --steps 2" + data + ckpt}) {
      Result r = run(kExe, cmd);
      CHECK(r.code == 2);
      CHECK_THAT(r.output, Catch::Contains("'" + tensor + "'") && Catch::Contains(what));
    }
  }
}

TEST_CASE("a diverging run stops with a message and saves nothing after it", "[cpu][fer_cnn]") {
  TempDir dir("diverge");
  write(dir / "fer.csv", fer_csv(2));
  const std::string base = "train --data " + (dir / "fer.csv") + " --device cpu" + kTiny;
  SECTION("from the first epoch: nothing is saved") {
    // SGD at lr 100: a training loss of ~1e22 whose batches all stay finite.
    Result r = run(kExe, base + " --optimizer sgd --lr 100 --epochs 2 --out " + (dir / "run"));
    CHECK(r.code == 1);
    CHECK_THAT(r.output, Catch::Contains("diverged") && Catch::Contains("--lr 100") &&
                             Catch::Contains("divergence limit"));
    CHECK_FALSE(fs::exists(dir.path() / "run/best.safetensors"));
    CHECK_FALSE(fs::exists(dir.path() / "run/last.train.safetensors"));
  }
  SECTION("after a good epoch: the saved files stay as they were") {
    REQUIRE(run(kExe, base + " --epochs 1 --out " + (dir / "run")).code == 0);
    const std::string best = file_contents(dir / "run/best.safetensors");
    const std::string state = file_contents(dir / "run/last.train.safetensors");
    Result r = run(kExe, base + " --epochs 2 --lr 50 --resume --out " + (dir / "run"));
    CHECK(r.code == 1);
    CHECK_THAT(r.output, Catch::Contains("diverged") || Catch::Contains("not finite"));
    CHECK(file_contents(dir / "run/best.safetensors") == best);
    CHECK(file_contents(dir / "run/last.train.safetensors") == state);
  }
}

TEST_CASE("every numeric option is range-checked, naming the allowed range", "[cpu][fer_cnn]") {
  // Each is refused before anything runs: no data is read, nothing is written.
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"train --epochs 0", "[1, 100000]"},
      {"train --epochs -3", "[1, 100000]"},
      {"train --epochs 2.5", "[1, 100000]"},
      {"train --batch-size 0", "[2, 65536]"},
      {"train --batch-size 1", "[2, 65536]"},
      {"train --lr 0", "(0, 100]"},
      {"train --lr -1e-3", "(0, 100]"},
      {"train --lr nan", "(0, 100]"},
      {"train --lr inf", "(0, 100]"},
      {"train --clip -1", "[0, 1e+09]"},
      {"train --clip nan", "[0, 1e+09]"},
      {"train --warmup -5", "[0, 1000000000]"},
      {"train --momentum -0.5", "[0, 1]"},
      {"train --momentum 1.5", "[0, 1]"},
      {"train --weight-decay -1", "[0, 10]"},
      {"train --weight-decay nan", "[0, 10]"},
      {"train --width 0", "(0, 8]"},
      {"train --width -1", "(0, 8]"},
      {"train --width nan", "(0, 8]"},
      {"train --train-per-class -1", "[1, 1000000]"},
      {"train --train-per-class 0", "[1, 1000000]"},
      {"train --seed -1", "[0, 18446744073709551615]"},
      {"train --seed 18446744073709551616", "[0, 18446744073709551615]"},
      {"train --stop-after 0", "[1, 100000]"},
      {"eval --batch-size 0", "[1, 65536]"},
      {"eval --seed -2", "[0, 18446744073709551615]"},
      {"eval --train-per-class -4", "[1, 1000000]"},
      {"saliency --per-class 0", "[1, 8]"},
      {"saliency --per-class 9", "[1, 8]"},
      {"filters --filters 0", "[1, 4096]"},
      {"filters --steps -1", "[1, 1000000]"},
      {"filters --feature-layer -2", "[0, 100000]"},
      {"filters --layers -1", "[0, 100000]"},
      {"report --per-class 0", "[1, 8]"},
      {"report --steps 0", "[1, 1000000]"},
      {"report --seed -1", "[0, 9223372036854775807]"},
  };
  for (const auto& [args, range] : cases) {
    INFO(args);
    Result r = run(kExe, args + " --out /nonexistent/kiln_must_not_write");
    CHECK(r.code != 0);
    const std::string option =
        args.substr(args.find("--"), args.find(' ', args.find("--")) - args.find("--"));
    CHECK_THAT(r.output, Catch::Contains(option) && Catch::Contains(range));
  }
}

namespace {

// The (train_loss, val_loss) of every epoch of a run's history.csv.
std::vector<std::pair<double, double>> history_losses(const std::string& path) {
  std::istringstream in(file_contents(path));
  std::string line;
  std::getline(in, line);  // header: epoch,train_loss,train_acc,val_loss,...
  std::vector<std::pair<double, double>> out;
  while (std::getline(in, line)) {
    std::vector<std::string> f;
    std::istringstream row(line);
    for (std::string x; std::getline(row, x, ',');) f.push_back(x);
    REQUIRE(f.size() >= 4);
    out.emplace_back(std::stod(f[1]), std::stod(f[3]));
  }
  return out;
}

}  // namespace

TEST_CASE("emulated CUDA bf16 and tf32 training steps match the CPU path's losses",
          "[simt][fer_cnn][precision]") {
  if (kEmuExe.empty()) {
    WARN("fer_cnn_emu was not built (no CUDA device in this build): test not run");
    return;
  }
  // Three steps (one batch of all 14 training images per epoch, 3 epochs) of the flagship at
  // width 1/16 on 48x48 synthetic faces, on the CPU and on the emulated CUDA device (the
  // tensor-core kernels, bf16 copies and first-layer path of kernels/precision.h), at each
  // precision. history.csv gives each step's training loss (the batch's, before its update) and
  // the validation loss after it, to 6 decimals.
  //
  // The tolerance. The two paths round at the same points, so they differ only in the order of
  // fp32 additions: per op, by at most 2(T + 10)·2⁻²⁴ of Σ|a·b| (T the reduction length; the
  // parity bound of tests/parity/test_precision_dispatch_parity.cpp), typically by a random walk
  // of about √T·2⁻²⁴ ≈ 2⁻²⁰ relative. A bf16 output tipped across a rounding boundary by such a
  // difference moves by one bf16 ulp (2⁻⁸), with probability about that difference over the ulp,
  // so on average again about 2⁻²⁰. The loss (softmax cross-entropy, whose gradient in the
  // logits has 1-norm ≤ 2) inherits such relative changes from each of the 8 GEMM layers,
  // forward and backward, and SGD's update (linear in the gradient) carries them to the next step:
  // over 3 steps at most about 2 · 8 · 3 · 2⁻²⁰ < 2⁻¹⁵ relative. So |CUDA − CPU| ≤ 2⁻¹⁵·|loss|
  // (6·10⁻⁵ absolute here; measured: at most 3·10⁻⁶). SGD, not Adam: Adam's first steps move
  // each weight by about lr·sign(g), which a difference in the last bits of a near-zero gradient
  // element can flip, so no rounding argument bounds Adam's trajectory over a few steps (measured
  // with Adam: bf16 CPU and CUDA 1.3·10⁻⁴ apart by step 2).
  // Control: bf16's losses differ from fp32's by more than the tolerance (by 2.4·10⁻⁴ at the
  // first step), so the check tells the precisions apart. tf32 on this tiny network is within
  // 10⁻⁵ of fp32 (its reductions are short): its check shows it runs and matches, bf16's control
  // shows the tolerance is tight enough to see a rounding point missing.
  TempDir dir("precision_steps");
  const std::string common =
      "train --data synthetic --train-per-class 2 --epochs 3 --width "
      "0.0625 --batch-size 14 --no-augment --schedule constant "
      "--optimizer sgd";
  auto cmd = [&](const std::string& exe, const std::string& device, const std::string& p) {
    return exe + " " + common + " --device " + device + " --precision " + p + " --out " +
           (dir / (device + "_" + p));
  };
  const std::vector<Result> r =
      run_all({cmd(kEmuExe, "cuda", "bf16"), cmd(kEmuExe, "cuda", "tf32"), cmd(kExe, "cpu", "bf16"),
               cmd(kExe, "cpu", "tf32"), cmd(kExe, "cpu", "fp32")});
  for (const Result& x : r) REQUIRE(x.code == 0);
  auto losses = [&](const std::string& run) {
    return history_losses(dir / (run + "/history.csv"));
  };
  auto within = [](double a, double b) {
    return std::fabs(a - b) <= std::ldexp(std::fabs(b), -15);
  };
  const auto cpu_fp32 = losses("cpu_fp32");
  REQUIRE(cpu_fp32.size() == 3);
  for (const std::string p : {"bf16", "tf32"}) {
    const auto gpu = losses("cuda_" + p), cpu = losses("cpu_" + p);
    REQUIRE(gpu.size() == 3);
    REQUIRE(cpu.size() == 3);
    for (size_t k = 0; k < 3; ++k) {
      INFO(p << " step " << k + 1 << ": train " << gpu[k].first << " (CUDA) vs " << cpu[k].first
             << " (CPU), val " << gpu[k].second << " vs " << cpu[k].second);
      CHECK(within(gpu[k].first, cpu[k].first));
      CHECK(within(gpu[k].second, cpu[k].second));
    }
  }
  const auto cpu_bf16 = losses("cpu_bf16");
  int apart = 0;
  for (size_t k = 0; k < 3; ++k) apart += !within(cpu_bf16[k].first, cpu_fp32[k].first);
  CHECK(apart == 3);  // the control: bf16 is told from fp32 at every step
}
