// Counter-based Philox4x32-10 (Salmon et al., SC'11). Every random number in curvnet is a
// pure function of (seed, stream, counter), so the CPU and CUDA backends draw the same
// values and a resumed run needs only the step to continue its streams.
#pragma once
#include <cmath>
#include <cstdint>

#include "core/hd.h"

namespace cn {

// Independent streams: each purpose has its own key, so turning one on or off never
// shifts another (diagnostics never disturb training).
enum class RngStream : uint32_t {
  init = 1,
  dropout = 2,
  shuffle = 3,
  grad_noise = 4,
  curvature = 5,
  data = 6,
  growth = 7
};

struct Philox4 {
  uint32_t v[4];
};

CN_HD uint32_t philox_mulhilo(uint32_t a, uint32_t b, uint32_t* hi) {
  const uint64_t p = static_cast<uint64_t>(a) * b;
  *hi = static_cast<uint32_t>(p >> 32);
  return static_cast<uint32_t>(p);
}

// One block of four 32-bit words for counter c under key k.
CN_HD Philox4 philox4x32_10(Philox4 c, uint32_t k0, uint32_t k1) {
  for (int r = 0; r < 10; ++r) {
    uint32_t hi0, hi1;
    const uint32_t lo0 = philox_mulhilo(0xD2511F53u, c.v[0], &hi0);
    const uint32_t lo1 = philox_mulhilo(0xCD9E8D57u, c.v[2], &hi1);
    c = Philox4{{hi1 ^ c.v[1] ^ k0, lo1, hi0 ^ c.v[3] ^ k1, lo0}};
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return c;
}

// A key for (seed, stream): the stream id is mixed into the high word.
struct PhiloxKey {
  uint32_t k0, k1;
};
CN_HD PhiloxKey philox_key(uint64_t seed, RngStream stream) {
  return PhiloxKey{static_cast<uint32_t>(seed),
                   static_cast<uint32_t>(seed >> 32) ^ (static_cast<uint32_t>(stream) * 0x9E3779B9u)};
}

// The i-th 32-bit word of the sequence addressed by (a, b): a and b name the draw (layer,
// step, epoch...), i indexes inside it. Four consecutive i share one Philox block.
CN_HD uint32_t philox_word(PhiloxKey key, uint64_t i, uint32_t a, uint64_t b) {
  const Philox4 c{{static_cast<uint32_t>(i >> 2), a, static_cast<uint32_t>(b), static_cast<uint32_t>(b >> 32)}};
  return philox4x32_10(c, key.k0, key.k1).v[i & 3u];
}

// Uniform in (0, 1]: never 0, so log() in Box-Muller is finite. 32 bits of resolution
// for float and 53 (from two words) for double.
CN_HD float u32_to_unit_float(uint32_t x) { return (static_cast<float>(x >> 8) + 1.0f) * (1.0f / 16777216.0f); }
CN_HD double u64_to_unit_double(uint32_t hi, uint32_t lo) {
  const uint64_t x = ((static_cast<uint64_t>(hi) << 32) | lo) >> 11;
  return (static_cast<double>(x) + 1.0) * (1.0 / 9007199254740992.0);
}

// Uniform double in (0,1] for element i of draw (a, b): uses words 2i and 2i+1.
CN_HD double philox_uniform(PhiloxKey key, uint64_t i, uint32_t a, uint64_t b) {
  return u64_to_unit_double(philox_word(key, 2 * i, a, b), philox_word(key, 2 * i + 1, a, b));
}

// Standard normal for element i (Box-Muller on words 4i..4i+3, cosine branch).
CN_HD double philox_normal(PhiloxKey key, uint64_t i, uint32_t a, uint64_t b) {
  const double u1 = u64_to_unit_double(philox_word(key, 4 * i, a, b), philox_word(key, 4 * i + 1, a, b));
  const double u2 = u64_to_unit_double(philox_word(key, 4 * i + 2, a, b), philox_word(key, 4 * i + 3, a, b));
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586476925 * u2);
}

// Host-side convenience: a stream bound to one draw (a, b) that hands out consecutive
// elements. It holds no state worth saving: (seed, stream, a, b, next) say everything.
class PhiloxDraw {
 public:
  PhiloxDraw(uint64_t seed, RngStream stream, uint32_t a, uint64_t b) : key_(philox_key(seed, stream)), a_(a), b_(b) {}
  double uniform() { return philox_uniform(key_, next_++, a_, b_); }
  double normal() { return philox_normal(key_, next_++, a_, b_); }
  // Uniform integer in [0, n) (n < 2^32; the bias of the modulo is below 2^-20 for n < 2^12
  // and irrelevant for shuffling).
  uint64_t below(uint64_t n) { return static_cast<uint64_t>(uniform() * static_cast<double>(n)) % n; }

 private:
  PhiloxKey key_;
  uint32_t a_;
  uint64_t b_;
  uint64_t next_ = 0;
};

}  // namespace cn
