// Runs one CPU op through the installed library and checks its result.
#include <kiln/kiln.h>

#include <cstdio>

int main() {
  kiln::Tensor x = kiln::Tensor::from_vector<float>({1, 4}, {-2.f, -0.5f, 0.f, 3.f});
  kiln::Tensor y({1, 4});
  kiln::leaky_relu_forward(y, x, 0.1);
  const std::vector<float> got = y.to_vector<float>();
  const float expected[4] = {-0.2f, -0.05f, 0.f, 3.f};
  for (int i = 0; i < 4; ++i) {
    if (got[i] != expected[i]) {
      std::printf("consumer: y[%d] = %g, expected %g\n", i, got[i], expected[i]);
      return 1;
    }
  }
  std::printf("consumer: kiln::leaky_relu_forward through the installed kiln::kiln: ok\n");
  return 0;
}
