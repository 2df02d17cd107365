// Launchers of the optimiser, clipping and gradient-noise kernels (kernels/cuda/optim.cu),
// called by the CUDA optimiser and clipper (optim/cuda/optimizer_cuda.cpp). Plain C++.
//
// The flat buffer is cut into tiles that never cross a parameter segment (at most
// kTileElems elements each); one block serves one tile, and each tile carries a slot: the
// coefficient group (optimiser) or the layer (clipping) its segment belongs to. Sums of
// squares are taken per tile into double partials, then added in table order, so every
// norm is reproducible from run to run.
#pragma once
#include <cstdint>

#include "core/philox.h"
#include "kernels/optim.h"

namespace cn::cuda {

constexpr int64_t kTileElems = 8192;

struct Tile {
  int64_t begin = 0, end = 0;  // [begin, end) in the flat buffer
  int32_t slot = 0;            // coefficient group or layer
  int32_t unused = 0;
};

// One output unit for agc_unit: a row of a weight segment, or one element of a vector.
struct UnitRow {
  int64_t offset = 0;
  int64_t cols = 1;
};

// What one clip() leaves on the device for the host to read later.
struct ClipRecord {
  double norm_before = 0, norm_after = 0;
  int32_t clipped = 0;
  int32_t unused = 0;
};

// One update of the tiles [tiles, tiles + n_tiles), all of one coefficient group.
template <class T>
void optim_tiles(OptimKind kind, const OptimScalars<T>& s, const Tile* tiles, int64_t n_tiles, T* p, const T* g, T* s0,
                 T* s1, T* s2);

// partial[t] = sum of x^2 over tile t (double).
template <class T>
void tiles_sum_sq(const T* x, const Tile* tiles, int64_t n_tiles, double* partial);
// Per tile t: x *= coef[slot] where coef[slot] < 1; then partial[t] = sum of the new x^2.
template <class T>
void tiles_scale_sum_sq(T* x, const Tile* tiles, int64_t n_tiles, const double* coef, double* partial);
// Per tile t: x = clamp(x, -value, value), *flag |= any change; partial[t] = sum of the new x^2.
template <class T>
void tiles_clamp_sum_sq(T* x, const Tile* tiles, int64_t n_tiles, T value, int32_t* flag, double* partial);
// agc_unit: each unit's gradient scaled by agc_coef of its own norms; *flag |= any scaling.
template <class T>
void units_agc(const T* p, T* g, const UnitRow* units, int64_t n_units, double lambda, double nu, int32_t* flag);

// From the gradient (and for agc the parameter) partials: rec->norm_before, *flag = 0 (or
// 1 for a coefficient below 1) and coef[layer] for the modes that scale. Layer l owns the
// tiles [layer_tile_begin[l], layer_tile_begin[l + 1]).
void clip_before(ClipMode mode, const double* partial_g, const double* partial_p, int64_t n_tiles,
                 const int64_t* layer_tile_begin, int32_t n_layers, double max_norm, double lambda, double nu,
                 double* coef, int32_t* flag, ClipRecord* rec);
// rec->norm_after (from the partials, or norm_before when nothing could change) and
// rec->clipped = *flag.
void clip_after(const double* partial, int64_t n_tiles, bool recompute, const int32_t* flag, ClipRecord* rec);

// g[i] += grad_noise_value(key, i, step, sigma) (kernels/optim.h).
template <class T>
void grad_noise(T* g, int64_t n, PhiloxKey key, int64_t step, double sigma);

}  // namespace cn::cuda
