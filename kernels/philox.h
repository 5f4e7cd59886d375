// Philox4x32-10, the counter-based RNG of Random123 (Salmon et al., "Parallel random numbers:
// as easy as 1, 2, 3", SC'11): a pure function (counter, key) → 128 random bits. There is no
// state to carry between calls, so any (sequence, token) can draw its numbers on any rank,
// host or device, in any order, and get the same bits. Header-only and usable from CUDA
// device code (no Abseil, no std containers).
#pragma once

#include <cstdint>

#ifndef RAMI_HOST_DEVICE
#if defined(__CUDACC__)
#define RAMI_HOST_DEVICE __host__ __device__
#else
#define RAMI_HOST_DEVICE
#endif
#endif

namespace rami::kernels {

// 128-bit counter, v[0] the least significant word (Random123's ctr[0]).
struct PhiloxCounter {
  uint32_t v[4];
};

// 64-bit key, v[0] the least significant word (Random123's key[0]).
struct PhiloxKey {
  uint32_t v[2];
};

// Constants of Philox4x32 (Random123 philox.h): the round multipliers and the Weyl sequence
// that bumps the key between rounds (golden ratio and sqrt(3) - 1 in 0.32 fixed point).
inline constexpr uint32_t kPhiloxM0 = 0xD2511F53u;
inline constexpr uint32_t kPhiloxM1 = 0xCD9E8D57u;
inline constexpr uint32_t kPhiloxW0 = 0x9E3779B9u;
inline constexpr uint32_t kPhiloxW1 = 0xBB67AE85u;
inline constexpr int kPhiloxRounds = 10;

// High and low 32 bits of a 32×32-bit product.
RAMI_HOST_DEVICE inline void PhiloxMulHiLo(uint32_t a, uint32_t b, uint32_t& hi, uint32_t& lo) {
#if defined(__CUDA_ARCH__)
  hi = __umulhi(a, b);
  lo = a * b;
#else
  const uint64_t product = static_cast<uint64_t>(a) * b;
  hi = static_cast<uint32_t>(product >> 32);
  lo = static_cast<uint32_t>(product);
#endif
}

// Philox4x32 with kPhiloxRounds (10) rounds; the key is bumped after every round but the last.
RAMI_HOST_DEVICE inline PhiloxCounter Philox4x32(PhiloxCounter ctr, PhiloxKey key) {
  for (int round = 0; round < kPhiloxRounds; ++round) {
    if (round > 0) {
      key.v[0] += kPhiloxW0;
      key.v[1] += kPhiloxW1;
    }
    uint32_t hi0, lo0, hi1, lo1;
    PhiloxMulHiLo(kPhiloxM0, ctr.v[0], hi0, lo0);
    PhiloxMulHiLo(kPhiloxM1, ctr.v[2], hi1, lo1);
    ctr = PhiloxCounter{{hi1 ^ ctr.v[1] ^ key.v[0], lo1, hi0 ^ ctr.v[3] ^ key.v[1], lo0}};
  }
  return ctr;
}

// Uniform double in [0, 1) from 53 random bits: the top 53 bits of (hi:lo), times 2^-53.
// Exact in double, so host and device get the same value from the same bits.
RAMI_HOST_DEVICE inline double PhiloxUnitDouble(uint32_t lo, uint32_t hi) {
  const uint64_t bits = (static_cast<uint64_t>(hi) << 32) | lo;
  return static_cast<double>(bits >> 11) * 0x1.0p-53;
}

// Uniform float in [0, 1) from the top 24 bits of one word (exact in float).
RAMI_HOST_DEVICE inline float PhiloxUnitFloat(uint32_t word) {
  return static_cast<float>(word >> 8) * 0x1.0p-24f;
}

}  // namespace rami::kernels
