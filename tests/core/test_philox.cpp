#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "core/philox.h"

using namespace cn;

// Known-answer vectors of Philox4x32-10 from the Random123 distribution (kat_vectors).
TEST(Philox, KnownAnswers) {
  {
    const Philox4 r = philox4x32_10(Philox4{{0, 0, 0, 0}}, 0, 0);
    EXPECT_EQ(r.v[0], 0x6627e8d5u);
    EXPECT_EQ(r.v[1], 0xe169c58du);
    EXPECT_EQ(r.v[2], 0xbc57ac4cu);
    EXPECT_EQ(r.v[3], 0x9b00dbd8u);
  }
  {
    const Philox4 r =
        philox4x32_10(Philox4{{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}}, 0xffffffffu, 0xffffffffu);
    EXPECT_EQ(r.v[0], 0x408f276du);
    EXPECT_EQ(r.v[1], 0x41c83b0eu);
    EXPECT_EQ(r.v[2], 0xa20bc7c6u);
    EXPECT_EQ(r.v[3], 0x6d5451fdu);
  }
  {
    const Philox4 r =
        philox4x32_10(Philox4{{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}}, 0xa4093822u, 0x299f31d0u);
    EXPECT_EQ(r.v[0], 0xd16cfe09u);
    EXPECT_EQ(r.v[1], 0x94fdccebu);
    EXPECT_EQ(r.v[2], 0x5001e420u);
    EXPECT_EQ(r.v[3], 0x24126ea1u);
  }
}

TEST(Philox, NormalMomentsAndStreamsDiffer) {
  PhiloxDraw a(7, RngStream::init, 0, 0), b(7, RngStream::dropout, 0, 0);
  double s = 0, s2 = 0;
  const int n = 200000;
  int same = 0;
  for (int i = 0; i < n; ++i) {
    const double x = a.normal();
    s += x;
    s2 += x * x;
    if (x == b.normal()) ++same;
  }
  EXPECT_NEAR(s / n, 0.0, 5.0 / std::sqrt(n));
  EXPECT_NEAR(s2 / n, 1.0, 0.02);
  EXPECT_EQ(same, 0);
}

TEST(Philox, UniformInUnitInterval) {
  PhiloxDraw a(1, RngStream::shuffle, 3, 9);
  double lo = 1, hi = 0, s = 0;
  for (int i = 0; i < 100000; ++i) {
    const double u = a.uniform();
    lo = std::min(lo, u);
    hi = std::max(hi, u);
    s += u;
  }
  EXPECT_GT(lo, 0.0);
  EXPECT_LE(hi, 1.0);
  EXPECT_NEAR(s / 100000, 0.5, 0.005);
}
