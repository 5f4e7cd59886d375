// CPU twin of the linear layer: a CPU BLAS when available, otherwise a plain blocked loop.
#include "kernels/linear.h"

#include "kernels/bias_add.h"

#include <cstdint>

#if defined(RAMI_HAVE_CBLAS)
#include <cblas.h>
#endif

namespace rami::kernels {

void LinearCpu(const LinearParams& p) {
#if defined(RAMI_HAVE_CBLAS)
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, p.m, p.n, p.k, 1.0f, p.x, p.k, p.w, p.k,
              0.0f, p.y, p.n);
#else
  for (int i = 0; i < p.m; ++i) {
    const float* xi = p.x + static_cast<int64_t>(i) * p.k;
    for (int j = 0; j < p.n; ++j) {
      const float* wj = p.w + static_cast<int64_t>(j) * p.k;
      float acc = 0.0f;
      for (int c = 0; c < p.k; ++c) acc += xi[c] * wj[c];
      p.y[static_cast<int64_t>(i) * p.n + j] = acc;
    }
  }
#endif
  if (p.bias != nullptr) BiasAddCpu({.y = p.y, .bias = p.bias, .rows = p.m, .cols = p.n});
}

}  // namespace rami::kernels
