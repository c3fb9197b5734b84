// Tensor: shapes, views, copies, errors that name the shapes.
#include <catch2/catch.hpp>

#include "core/error.h"
#include "core/memory.h"
#include "core/tensor.h"

using kiln::Device;
using kiln::DType;
using kiln::Tensor;

TEST_CASE("tensor shape, dtype and printing", "[cpu]") {
  Tensor t({2, 48, 48, 1});
  CHECK(t.numel() == 2 * 48 * 48);
  CHECK(t.rank() == 4);
  CHECK(t.str() == "[2, 48, 48, 1] f32 cpu");
  CHECK(Tensor({3}, DType::f64).bytes() == 24);
  CHECK_THROWS_WITH(Tensor({2, 0}), Catch::Contains("positive") && Catch::Contains("[2, 0]"));
  CHECK_THROWS_AS(Tensor({1, 1, 1, 1, 1}), kiln::Error);
  CHECK_THROWS_WITH(t.data<double>(), Catch::Contains("[2, 48, 48, 1] f32 cpu"));
}

TEST_CASE("tensor views share the buffer, clone copies", "[cpu]") {
  Tensor t = Tensor::from_vector<float>({2, 3}, {1, 2, 3, 4, 5, 6});
  Tensor v = t.view({3, 2});
  v.data<float>()[0] = 10;
  CHECK(t.data<float>()[0] == 10);
  Tensor s = t.slice(2, {2, 2});
  CHECK(s.to_vector<float>() == std::vector<float>{3, 4, 5, 6});
  Tensor c = t.clone();
  c.data<float>()[1] = -1;
  CHECK(t.data<float>()[1] == 2);
  CHECK(t.flatten().shape() == kiln::Shape({2, 3}));
  CHECK_THROWS_WITH(t.view({4, 2}), Catch::Contains("[2, 3]") && Catch::Contains("[4, 2]"));
  CHECK_THROWS_AS(t.slice(5, {2}), kiln::Error);
}

TEST_CASE("tensor fill, copy_from and device round trip", "[cpu]") {
  Tensor t = Tensor::full({5}, 2.5, DType::f64);
  CHECK(t.to_vector<double>() == std::vector<double>(5, 2.5));
  Tensor u({5}, DType::f64);
  u.copy_from(t);
  CHECK(u.to_vector<double>() == t.to_vector<double>());
  CHECK_THROWS_WITH(u.copy_from(Tensor({5})), Catch::Contains("f32") && Catch::Contains("f64"));
  if (kiln::cuda_available()) {
    Tensor d = t.to(Device::cuda);
    CHECK(d.is_cuda());
    Tensor back = d.to(Device::cpu);
    CHECK(back.to_vector<double>() == t.to_vector<double>());
    Tensor z = Tensor::zeros({7}, DType::f32, Device::cuda);
    CHECK(z.to_vector<float>() == std::vector<float>(7, 0.f));
  } else {
    CHECK_THROWS_WITH(Tensor({2}, DType::f32, Device::cuda), Catch::Contains("CPU"));
  }
}

TEST_CASE("an allocation that fails says how much and for what", "[cpu]") {
  // 2^62 bytes: no machine has them, and the size is representable.
  try {
    Tensor t({int64_t{1} << 40, int64_t{1} << 20}, DType::f32);
    FAIL("a 4 EB tensor was allocated");
  } catch (const kiln::Error& e) {
    const std::string msg = e.what();
    INFO(msg);
    CHECK(msg.find("out of host memory allocating") != std::string::npos);
    CHECK(msg.find("4611686018427387904 bytes") != std::string::npos);
    CHECK(msg.find("[1099511627776, 1048576] f32 tensor") != std::string::npos);
  }
  CHECK_THROWS_WITH(Tensor({int64_t{1} << 61, 2}, DType::f64),
                    Catch::Contains("more bytes than 64 bits count"));
}
