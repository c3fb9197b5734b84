// tests/fer_cnn/test_fer_cnn.cpp — the fer_cnn command line, end to end.
//
// Each test runs the real executable in a fresh temporary directory and checks its exit code, its
// messages and the files it leaves. Data are tiny (a few dozen rows, width 1/16) so a run takes
// seconds. FER_CNN_EMU_EXE, when set, is the same program linked against the emulated library:
// there --device cuda runs every kernel under the SIMT emulator.
#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "optim/checkpoint.h"

namespace fs = std::filesystem;

namespace {

struct Result {
  int code;
  std::string output;
};

Result run(const std::string& exe, const std::string& args) {
  const std::string cmd = exe + " " + args + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  REQUIRE(p != nullptr);
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int status = ::pclose(p);
  Result r{WIFEXITED(status) ? WEXITSTATUS(status) : 128, out};
  UNSCOPED_INFO("$ " << cmd << "\n" << out << "[exit " << r.code << "]");
  return r;
}

struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& name) {
    path = fs::temp_directory_path() / ("kiln_fer_" + name + "_" + std::to_string(::getpid()));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string operator/(const std::string& f) const { return (path / f).string(); }
};

std::string slurp(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
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
  CHECK_THAT(t.output, Catch::Contains("21 train / 21 val images"));
  CHECK_THAT(t.output, Catch::Contains("epoch 2/2"));
  for (const char* f : {"best.safetensors", "last.safetensors", "last.train.safetensors"})
    CHECK(fs::exists(dir.path / "run" / f));
  const std::string history = slurp(dir / "run/history.csv");
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
  const std::string history = slurp(dir / "b/history.csv");
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
    s.replace(s.find("\n3,") + 1, 1, "9");
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
    fs::create_directories(dir.path / "empty/happy");
    fs::create_directories(dir.path / "empty/sad");
    write(dir / "empty/happy/readme.txt", "no images here");
    Result r = train(dir / "empty");
    CHECK(r.code != 0);
    CHECK_THAT(r.output, Catch::Contains("empty") && Catch::Contains("image"));
  }
  SECTION("a corrupt image in a folder") {
    for (const char* c : {"happy", "sad"}) {
      fs::create_directories(dir.path / "faces" / c);
      for (int i = 0; i < 3; ++i)
        // std::string("f") first: g++ 12 -O2 warns falsely on "literal" + std::string (-Wrestrict).
        write_bmp(
            (dir.path / "faces" / c / (std::string("f") += std::to_string(i) + ".bmp")).string(),
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
  CHECK_FALSE(fs::exists(dir.path / "run" / "last.safetensors"));
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
    std::string bmp = slurp(dir / "huge.bmp");
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
  const std::string last = slurp(dir / "run/last.safetensors");
  const std::string best = slurp(dir / "run/best.safetensors");
  const std::string state = slurp(dir / "run/last.train.safetensors");
  const std::string history = slurp(dir / "run/history.csv");
  auto intact = [&] {
    CHECK(slurp(dir / "run/last.safetensors") == last);
    CHECK(slurp(dir / "run/best.safetensors") == best);
    CHECK(slurp(dir / "run/last.train.safetensors") == state);
    CHECK(slurp(dir / "run/history.csv") == history);
  };

  SECTION("resuming with another architecture names the tensor") {
    Result r = run(kExe, base + "--epochs 2 --width 0.125 --resume --out " + (dir / "run"));
    CHECK(r.code != 0);
    CHECK_THAT(r.output, Catch::Contains("0.weight") && Catch::Contains("another architecture"));
    intact();
  }
  SECTION("a non-finite loss stops with a message and keeps the saved files") {
    Result r = run(kExe, base + "--epochs 3 --lr 1e30 --resume --out " + (dir / "run"));
    CHECK(r.code != 0);
    CHECK_THAT(r.output, Catch::Contains("not finite") && Catch::Contains("--lr"));
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
      Result r =
          run(kExe, "train --data " + (dir / "fer.csv") + " --device cuda --out " + (dir / "x"));
      if (r.code != 0) CHECK_THAT(r.output, Catch::Contains("--device cpu"));
    }
  }
}
