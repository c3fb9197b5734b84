// tests/data/test_loader.cpp — the Loader: batch contents, partial last batch, deterministic order,
// exact resume, augmentation, and the background thread (same batches, errors forwarded, shutdown).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <set>
#include <vector>

#include "core/error.h"
#include "data/loader.h"

using kiln::data::Batch;
using kiln::data::Dataset;
using kiln::data::ImageSpec;
using kiln::data::Loader;
using kiln::data::LoaderOptions;
using kiln::data::LoaderState;
using kiln::data::Padding;

namespace {

// n images of 1 x h x w whose pixel (y, x) = 10 * image + y * w + x (mod 256) and label image % 3:
// every pixel says which image and position it came from.
Dataset numbered(int n, int h = 4, int w = 4, int c = 1) {
  Dataset d = Dataset::with_spec(ImageSpec{c, h, w}, {"a", "b", "c"});
  std::vector<uint8_t> img(size_t(h * w * c));
  for (int i = 0; i < n; ++i) {
    for (int p = 0; p < h * w; ++p)
      for (int ch = 0; ch < c; ++ch)
        img[size_t(p * c + ch)] = uint8_t((10 * i + p + 100 * ch) % 256);
    d.push_back(img.data(), i % 3);
  }
  return d;
}

// The image index a batch entry came from (unaugmented): pixel 0 is 10 * image.
int source_of(const Batch& b, int i) {
  return int(std::lround(b.images[size_t(i) * b.height * b.width * b.channels] * 255.0f)) / 10;
}

std::vector<Batch> epoch_batches(Loader& loader, int64_t epoch) {
  std::vector<Batch> out;
  loader.start_epoch(epoch);
  Batch b;
  while (loader.next(b)) out.push_back(b);
  return out;
}

bool same(const Batch& a, const Batch& b) {
  return a.epoch == b.epoch && a.index == b.index && a.size == b.size && a.images == b.images &&
         a.labels == b.labels;
}

}  // namespace

TEST_CASE("loader: batches cover the epoch once, the last partial batch is kept", "[cpu][data]") {
  Dataset d = numbered(10);
  for (int prefetch : {0, 2}) {
    LoaderOptions o;
    o.batch_size = 4;
    o.seed = 5;
    o.prefetch = prefetch;
    Loader loader(d, o);
    CHECK(loader.batches_per_epoch() == 3);
    auto batches = epoch_batches(loader, 0);
    REQUIRE(batches.size() == 3);
    CHECK(batches[0].size == 4);
    CHECK(batches[1].size == 4);
    CHECK(batches[2].size == 2);
    std::multiset<int> seen;
    for (const Batch& b : batches) {
      REQUIRE(b.images.size() == size_t(b.size) * 16);
      CHECK((b.channels == 1 && b.height == 4 && b.width == 4));
      for (int i = 0; i < b.size; ++i) {
        int src = source_of(b, i);
        seen.insert(src);
        CHECK(b.labels[size_t(i)] == src % 3);
        for (int p = 0; p < 16; ++p)  // values are pixel / 255
          REQUIRE(b.images[size_t(i * 16 + p)] == Approx((10 * src + p) / 255.0).epsilon(1e-6));
      }
    }
    CHECK(seen == std::multiset<int>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
    CHECK(loader.state() == LoaderState{0, 3});
  }
}

TEST_CASE("loader: the order is a function of (seed, epoch)", "[cpu][data]") {
  Dataset d = numbered(50);
  LoaderOptions o;
  o.seed = 11;
  Loader a(d, o), b(d, o);
  CHECK(a.order(0) == b.order(0));
  CHECK(a.order(0) != a.order(1));
  o.seed = 12;
  Loader c(d, o);
  CHECK(c.order(0) != a.order(0));
  o.shuffle = false;
  Loader plain(d, o);
  auto id = plain.order(3);
  for (size_t i = 0; i < id.size(); ++i) CHECK(id[i] == i);
}

TEST_CASE("loader: background thread gives the same batches as the synchronous path",
          "[cpu][data]") {
  Dataset d = numbered(37, 6, 5, 3);
  LoaderOptions o;
  o.batch_size = 8;
  o.seed = 3;
  o.augment.hflip = true;
  o.augment.max_shift = 2;
  o.prefetch = 0;
  Loader sync(d, o);
  o.prefetch = 3;
  Loader async(d, o);
  for (int64_t e = 0; e < 3; ++e) {
    auto x = epoch_batches(sync, e), y = epoch_batches(async, e);
    REQUIRE(x.size() == y.size());
    for (size_t i = 0; i < x.size(); ++i) CHECK(same(x[i], y[i]));
    Batch direct;
    sync.make_batch(e, 2, direct);
    CHECK(same(direct, x[2]));
  }
}

TEST_CASE("loader: a resumed run sees exactly the same batches", "[cpu][data]") {
  Dataset d = numbered(23);
  LoaderOptions o;
  o.batch_size = 5;  // 5 batches per epoch, the last of 3
  o.seed = 99;
  o.augment.hflip = true;
  o.augment.max_shift = 1;
  Loader full(d, o);
  std::vector<Batch> reference;
  for (int64_t e = 0; e < 3; ++e)
    for (Batch& b : epoch_batches(full, e)) reference.push_back(b);
  REQUIRE(reference.size() == 15);

  // Interrupt after epoch 1 batch 2 (state {1, 2}), resume in a fresh loader.
  Loader first(d, o);
  first.start_epoch(1);
  Batch b;
  REQUIRE(first.next(b));
  REQUIRE(first.next(b));
  LoaderState saved = first.state();
  CHECK(saved == LoaderState{1, 2});

  Loader resumed(d, o);
  resumed.seek(saved);
  std::vector<Batch> rest;
  while (resumed.next(b)) rest.push_back(b);
  resumed.start_epoch(2);
  while (resumed.next(b)) rest.push_back(b);
  REQUIRE(rest.size() == 8);
  for (size_t i = 0; i < rest.size(); ++i) CHECK(same(rest[i], reference[7 + i]));

  // A state at the end of an epoch resumes with the next epoch.
  Loader end(d, o);
  end.seek(LoaderState{0, 5});
  CHECK(end.state() == LoaderState{1, 0});
  REQUIRE(end.next(b));
  CHECK(same(b, reference[5]));
  CHECK_THROWS_AS(end.start_epoch(0, 6), kiln::Error);
}

TEST_CASE("loader: augmentation flips and shifts, deterministically", "[cpu][data]") {
  const int H = 6, W = 7;
  Dataset d = numbered(40, H, W);
  LoaderOptions o;
  o.batch_size = 40;
  o.shuffle = false;
  o.seed = 4;

  SECTION("horizontal flip: each image is itself or its mirror, both occur") {
    o.augment.hflip = true;
    Loader loader(d, o);
    Batch b;
    loader.make_batch(0, 0, b);
    int flipped = 0;
    for (int i = 0; i < 40; ++i) {
      const float* img = &b.images[size_t(i * H * W)];
      const uint8_t* src = d.image(size_t(i));
      bool is_same = true, is_mirror = true;
      for (int y = 0; y < H; ++y)
        for (int x = 0; x < W; ++x) {
          float v = img[y * W + x] * 255.0f;
          is_same &= std::abs(v - src[y * W + x]) < 1e-3f;
          is_mirror &= std::abs(v - src[y * W + (W - 1 - x)]) < 1e-3f;
        }
      CHECK((is_same || is_mirror));
      flipped += is_mirror && !is_same;
    }
    CHECK(flipped > 5);
    CHECK(flipped < 35);
    Batch other;
    loader.make_batch(1, 0, other);  // another epoch, other draws
    CHECK(other.images != b.images);
  }
  SECTION("shift with zero padding moves content and fills zeros") {
    o.augment.max_shift = 2;
    Loader loader(d, o);
    Batch b;
    loader.make_batch(0, 0, b);
    std::set<std::pair<int, int>> shifts;
    for (int i = 0; i < 40; ++i) {
      const float* img = &b.images[size_t(i * H * W)];
      const uint8_t* src = d.image(size_t(i));
      // Find the (dy, dx) that explains the output exactly.
      bool found = false;
      for (int dy = -2; dy <= 2 && !found; ++dy)
        for (int dx = -2; dx <= 2 && !found; ++dx) {
          bool ok = true;
          for (int y = 0; y < H && ok; ++y)
            for (int x = 0; x < W && ok; ++x) {
              int sy = y - dy, sx = x - dx;
              float want = (sy < 0 || sy >= H || sx < 0 || sx >= W) ? 0.0f : src[sy * W + sx];
              ok = std::abs(img[y * W + x] * 255.0f - want) < 1e-3f;
            }
          if (ok) found = true, shifts.insert({dy, dx});
        }
      CHECK(found);
    }
    CHECK(shifts.size() > 8);  // many of the 25 shifts occur
  }
  SECTION("edge padding repeats the border") {
    o.augment.max_shift = 3;
    o.augment.padding = Padding::kEdge;
    Dataset white = Dataset::with_spec(ImageSpec{1, H, W}, {"a"});
    std::vector<uint8_t> img(size_t(H * W), 255);
    for (int i = 0; i < 10; ++i) white.push_back(img.data(), 0);
    o.batch_size = 10;
    Loader loader(white, o);
    Batch b;
    loader.make_batch(0, 0, b);
    for (float v : b.images) REQUIRE(v == 1.0f);
  }
}

TEST_CASE("loader: errors in the background thread reach the caller, shutdown is clean",
          "[cpu][data]") {
  Dataset d = numbered(100);
  LoaderOptions o;
  o.batch_size = 8;
  o.prefetch = 2;
  SECTION("a data set changed under the loader") {
    Loader loader(d, o);
    d.pixels.resize(16);  // before the first next(): the thread starts there
    Batch b;
    CHECK_THROWS_WITH(loader.next(b), Catch::Matchers::Contains("changed"));
  }
  SECTION("destroying a loader with a full queue, mid-epoch, does not hang") {
    for (int i = 0; i < 20; ++i) {
      Loader loader(d, o);
      loader.start_epoch(i);
      Batch b;
      REQUIRE(loader.next(b));
    }
  }
  SECTION("restarting an epoch discards prepared batches") {
    Loader loader(d, o);
    Batch first, b;
    loader.start_epoch(0);
    REQUIRE(loader.next(first));
    REQUIRE(loader.next(b));
    loader.start_epoch(0);
    REQUIRE(loader.next(b));
    CHECK(same(b, first));
  }
  SECTION("bad options") {
    o.batch_size = 0;
    CHECK_THROWS_AS(Loader(d, o), kiln::Error);
    Dataset empty = Dataset::with_spec(ImageSpec{}, {"a"});
    CHECK_THROWS_AS(Loader(empty, LoaderOptions{}), kiln::Error);
  }
}

TEST_CASE("loader: the default sampler is today's shuffled order, bit for bit", "[cpu][data]") {
  Dataset d = numbered(23);
  LoaderOptions plain;
  plain.batch_size = 4;
  plain.seed = 9;
  plain.augment = {.hflip = true, .max_shift = 1};
  LoaderOptions hooked = plain;
  hooked.sampler = [](int64_t epoch, size_t size) {
    return kiln::data::default_order(size, /*shuffle=*/true, 9, epoch);
  };
  Loader a(d, plain), b(d, hooked);
  CHECK(b.epoch_size() == 23);
  CHECK(b.batches_per_epoch() == a.batches_per_epoch());
  for (int64_t epoch : {0, 1, 4}) {
    const auto x = epoch_batches(a, epoch), y = epoch_batches(b, epoch);
    REQUIRE(x.size() == y.size());
    for (size_t i = 0; i < x.size(); ++i) CHECK(same(x[i], y[i]));
  }
  // The order is a shuffle (not the identity) and a permutation.
  const std::vector<uint32_t> o = a.order(0);
  std::vector<uint32_t> sorted = o;
  std::sort(sorted.begin(), sorted.end());
  for (size_t i = 0; i < sorted.size(); ++i) REQUIRE(sorted[i] == i);
  CHECK_FALSE(o == sorted);
}

TEST_CASE("loader: two shards of an epoch are disjoint and cover every sample once",
          "[cpu][data]") {
  Dataset d = numbered(11);  // odd: rank 0 gets 6, rank 1 gets 5
  for (int64_t epoch : {0, 3}) {
    std::multiset<int> seen;
    std::vector<size_t> sizes;
    for (int rank = 0; rank < 2; ++rank) {
      LoaderOptions o;
      o.batch_size = 4;
      o.seed = 7;
      o.sampler = kiln::data::shard_sampler(rank, 2, 7);
      Loader loader(d, o);
      sizes.push_back(loader.epoch_size());
      CHECK(loader.batches_per_epoch() == 2);
      for (const Batch& b : epoch_batches(loader, epoch))
        for (int i = 0; i < b.size; ++i) seen.insert(source_of(b, i));
    }
    CHECK(sizes == std::vector<size_t>{6, 5});
    REQUIRE(seen.size() == 11);
    for (int i = 0; i < 11; ++i) CHECK(seen.count(i) == 1);
    // Dealt from the shared shuffled order: rank 0 holds its even positions.
    LoaderOptions o;
    o.sampler = kiln::data::shard_sampler(0, 2, 7);
    const std::vector<uint32_t> all = kiln::data::default_order(11, true, 7, epoch);
    const std::vector<uint32_t> mine = Loader(d, o).order(epoch);
    for (size_t p = 0; p < mine.size(); ++p) CHECK(mine[p] == all[2 * p]);
  }
}

TEST_CASE("loader: a bad sampler is refused with a message", "[cpu][data]") {
  Dataset d = numbered(5);
  LoaderOptions o;
  o.sampler = [](int64_t, size_t) { return std::vector<uint32_t>{}; };
  CHECK_THROWS_WITH(Loader(d, o), Catch::Contains("no samples"));
  o.sampler = [](int64_t, size_t) { return std::vector<uint32_t>{0, 7}; };
  CHECK_THROWS_WITH(Loader(d, o), Catch::Contains("index 7") && Catch::Contains("5 samples"));
  o.sampler = [](int64_t epoch, size_t) { return std::vector<uint32_t>(size_t(epoch + 1), 0); };
  Loader growing(d, o);
  CHECK_THROWS_WITH(growing.start_epoch(1), Catch::Contains("same number every epoch"));
  CHECK_THROWS_WITH(kiln::data::shard_sampler(2, 2, 1), Catch::Contains("rank 2"));
  o.sampler = kiln::data::shard_sampler(0, 6, 1);
  CHECK_THROWS_WITH(Loader(d, o), Catch::Contains("cannot be dealt to 6 ranks"));
}
