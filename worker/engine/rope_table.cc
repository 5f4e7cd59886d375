// RoPE inverse frequencies, following transformers' modeling_rope_utils (4.57) formula by
// formula; computed in double and rounded once to float32.
#include "worker/engine/rope_table.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace rami::engine {

using checkpoint::RopeConfig;
using checkpoint::RopeType;

namespace {

std::vector<double> DefaultInvFreq(double theta, int dim) {
  std::vector<double> inv(dim / 2);
  for (int i = 0; i < dim / 2; ++i) inv[i] = 1.0 / std::pow(theta, (2.0 * i) / dim);
  return inv;
}

// Llama 3.1: long wavelengths are divided by `factor`, short ones kept, the band between
// blended smoothly.
void ApplyLlama3(const RopeConfig& r, std::vector<double>& inv) {
  const double old_len = static_cast<double>(r.original_max_position_embeddings);
  const double low_wavelen = old_len / r.low_freq_factor;
  const double high_wavelen = old_len / r.high_freq_factor;
  for (double& f : inv) {
    const double wavelen = 2.0 * std::numbers::pi / f;
    if (wavelen < high_wavelen) continue;
    if (wavelen > low_wavelen) {
      f /= r.factor;
      continue;
    }
    const double smooth =
        (old_len / wavelen - r.low_freq_factor) / (r.high_freq_factor - r.low_freq_factor);
    f = (1.0 - smooth) * f / r.factor + smooth * f;
  }
}

double YarnMscale(double scale, double mscale) {
  return scale <= 1.0 ? 1.0 : 0.1 * mscale * std::log(scale) + 1.0;
}

// YaRN: interpolate low frequencies by `factor`, extrapolate high ones, linear ramp between
// the correction dimensions of beta_fast and beta_slow rotations.
float ApplyYarn(const RopeConfig& r, int dim, std::vector<double>& inv) {
  auto correction_dim = [&](double rotations) {
    return dim * std::log(r.original_max_position_embeddings / (rotations * 2 * std::numbers::pi)) /
           (2 * std::log(r.theta));
  };
  double low = correction_dim(r.beta_fast);
  double high = correction_dim(r.beta_slow);
  if (r.truncate) {
    low = std::floor(low);
    high = std::ceil(high);
  }
  low = std::max(low, 0.0);
  high = std::min(high, static_cast<double>(dim - 1));
  if (low == high) high += 0.001;  // prevent a zero-width ramp
  for (int i = 0; i < dim / 2; ++i) {
    const double ramp = std::clamp((i - low) / (high - low), 0.0, 1.0);
    const double extrapolation_weight = 1.0 - ramp;
    const double extrapolated = inv[i];
    const double interpolated = inv[i] / r.factor;
    inv[i] = interpolated * (1.0 - extrapolation_weight) + extrapolated * extrapolation_weight;
  }
  if (r.attention_factor != 0.0) return static_cast<float>(r.attention_factor);
  if (r.mscale != 0.0 && r.mscale_all_dim != 0.0) {
    return static_cast<float>(YarnMscale(r.factor, r.mscale) /
                              YarnMscale(r.factor, r.mscale_all_dim));
  }
  return static_cast<float>(YarnMscale(r.factor, 1.0));
}

}  // namespace

RopeTable MakeRopeTable(const RopeConfig& rope, int head_dim) {
  std::vector<double> inv = DefaultInvFreq(rope.theta, head_dim);
  RopeTable table;
  switch (rope.type) {
    case RopeType::kDefault:
      break;
    case RopeType::kLinear:
      for (double& f : inv) f /= rope.factor;
      break;
    case RopeType::kLlama3:
      ApplyLlama3(rope, inv);
      break;
    case RopeType::kYarn:
      table.attention_scale = ApplyYarn(rope, head_dim, inv);
      break;
  }
  table.inv_freq.assign(inv.begin(), inv.end());
  return table;
}

}  // namespace rami::engine
