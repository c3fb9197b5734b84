// Tensor: shapes, views, copies, errors that name the shapes.
#include <catch2/catch.hpp>

#include <utility>

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

TEST_CASE("views of a const tensor are read-only", "[cpu]") {
  Tensor t = Tensor::from_vector<float>({2, 3}, {1, 2, 3, 4, 5, 6});
  const Tensor& ct = t;
  // Bound to a non-const name, as guaranteed copy elision allows: still no write access.
  Tensor v = ct.view({3, 2});
  Tensor s = ct.slice(2, {2, 2});
  Tensor f = ct.flatten();
  for (Tensor* r : {&v, &s, &f}) {
    CHECK(r->read_only());
    CHECK_THROWS_WITH(r->data<float>(), Catch::Contains("read-only view") &&
                                            Catch::Contains("clone()") &&
                                            Catch::Contains(r->str()));
    CHECK_THROWS_WITH(r->raw(), Catch::Contains("read-only view"));
    CHECK_THROWS_WITH(r->fill(0.0), Catch::Contains("read-only view"));
    CHECK_THROWS_WITH(r->copy_from(Tensor::zeros(r->shape())), Catch::Contains("read-only view"));
    // A view of a read-only view is read-only too, even from a non-const object.
    CHECK(r->view(r->shape()).read_only());
    CHECK(r->slice(0, {1}).read_only());
  }
  CHECK(t.to_vector<float>() == std::vector<float>{1, 2, 3, 4, 5, 6});
  // Reading works, and copies are writable.
  CHECK(std::as_const(s).data<float>()[0] == 3);
  CHECK(s.to_vector<float>() == std::vector<float>{3, 4, 5, 6});
  Tensor c = v.clone();
  CHECK(!c.read_only());
  c.data<float>()[0] = 7;
  CHECK(t.data<float>()[0] == 1);
  // Views of a non-const tensor stay writable, and a view keeps the storage alive.
  Tensor w = t.view({6});
  CHECK(!w.read_only());
  CHECK(t.storage_users() == 5);  // t, v, s, f, w
  t = Tensor();
  w.data<float>()[5] = 60;
  CHECK(v.to_vector<float>()[5] == 60);
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
