// The CUDA optimiser and clipper of optim/cuda/optimizer_cuda.h: host-side bookkeeping (tile
// tables, per-step scalars from kernels/optim.h, the state mirrors, the record ring); the
// kernels are in kernels/cuda/optim.cu.
#include "optim/cuda/optimizer_cuda.h"

#include <algorithm>
#include <map>
#include <numeric>
#include <tuple>

#include "core/error.h"
#include "core/memory.h"
#include "kernels/cuda/optim_launch.cuh"
#include "kernels/optim.h"

namespace cn {

namespace {

using cuda::ClipRecord;
using cuda::Tile;
using cuda::UnitRow;

void check_layout(const ParamLayout& layout) {
  for (const ParamSegment& seg : layout.segments)
    CN_CHECK_MSG(seg.offset >= 0 && seg.offset + seg.size() <= layout.total,
                 "segment " << seg.name << " lies outside the flat buffer");
}

// Tiles of every segment, ordered by slot and then by segment; slot_begin[s] is the first
// tile of slot s (n_slots + 1 entries).
std::vector<Tile> make_tiles(const ParamLayout& layout, const std::vector<int32_t>& seg_slot, int32_t n_slots,
                             std::vector<int64_t>* slot_begin) {
  std::vector<size_t> order(layout.segments.size());
  std::iota(order.begin(), order.end(), size_t(0));
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return seg_slot[a] < seg_slot[b]; });
  std::vector<Tile> tiles;
  slot_begin->assign(static_cast<size_t>(n_slots) + 1, 0);
  for (size_t j : order) {
    const ParamSegment& seg = layout.segments[j];
    for (int64_t b = seg.offset; b < seg.offset + seg.size(); b += cuda::kTileElems) {
      Tile t;
      t.begin = b;
      t.end = std::min(b + cuda::kTileElems, seg.offset + seg.size());
      t.slot = seg_slot[j];
      tiles.push_back(t);
    }
  }
  for (int32_t s = 0; s <= n_slots; ++s) {
    int64_t first = 0;
    while (first < static_cast<int64_t>(tiles.size()) && tiles[static_cast<size_t>(first)].slot < s) ++first;
    (*slot_begin)[static_cast<size_t>(s)] = first;
  }
  return tiles;
}

template <class X>
void upload(Buffer<X>& dst, const std::vector<X>& src) {
  dst.set_device(Device::cuda);
  dst.resize(std::max<int64_t>(1, static_cast<int64_t>(src.size())));
  if (!src.empty()) device_copy(Device::cuda, dst.data(), Device::cpu, src.data(), src.size() * sizeof(X));
}

// ---- the optimiser -----------------------------------------------------------------------

template <class T>
class CudaFlatOptimizer final : public Optimizer<T> {
 public:
  CudaFlatOptimizer(const OptimConfig& config, const ParamLayout& layout)
      : config_(config),
        kind_(config.name),
        total_(layout.total),
        stride_((layout.total + kStateAlign - 1) / kStateAlign * kStateAlign) {
    check_layout(layout);
    // Segments with equal coefficients share one group, so one launch covers them all.
    const std::vector<SegmentCoeffs> coeffs = resolve_segment_coeffs(config, layout);
    std::map<std::tuple<double, double, double>, int32_t> ids;
    std::vector<int32_t> seg_group;
    for (const SegmentCoeffs& c : coeffs) {
      const auto key = std::make_tuple(c.weight_decay, c.l1, c.lr_scale);
      auto it = ids.find(key);
      if (it == ids.end()) {
        it = ids.emplace(key, static_cast<int32_t>(groups_.size())).first;
        groups_.push_back(c);
      }
      seg_group.push_back(it->second);
    }
    upload(tiles_, make_tiles(layout, seg_group, static_cast<int32_t>(groups_.size()), &group_tile_begin_));

    const int n_states = optim_state_count(kind_);
    states_.set_device(Device::cuda);
    states_.resize(std::max<int64_t>(1, n_states * stride_));
    states_.zero();
    mirrors_.resize(static_cast<size_t>(n_states));
    if (kind_ == OptimKind::nadam) mu_product_.assign(1, T(1));
  }

  void step(T* params, const T* grads, double lr, int64_t step) override {
    CN_CHECK(step >= 0);
    if (mirrors_live_) upload_mirrors();
    T* s[3] = {nullptr, nullptr, nullptr};
    for (size_t j = 0; j < mirrors_.size(); ++j) s[j] = states_.data() + static_cast<int64_t>(j) * stride_;

    T unused_mu = T(1);
    const OptimStepValues v = optim_step_values<T>(kind_, config_.beta1, config_.beta2, step,
                                                   mu_product_.empty() ? &unused_mu : mu_product_.data());
    for (size_t g = 0; g < groups_.size(); ++g) {
      const SegmentCoeffs& c = groups_[g];
      const OptimScalars<T> sc =
          optim_segment_scalars<T>(kind_, v, step, lr * c.lr_scale, c.weight_decay, c.l1, config_.momentum,
                                   config_.alpha, config_.eps, config_.beta1, config_.beta2);
      const int64_t b = group_tile_begin_[g], e = group_tile_begin_[g + 1];
      cuda::optim_tiles<T>(kind_, sc, tiles_.data() + b, e - b, params, grads, s[0], s[1], s[2]);
    }
  }

  std::vector<std::pair<std::string, std::vector<T>*>> state() override {
    if (!mirrors_live_) {
      for (size_t j = 0; j < mirrors_.size(); ++j) {
        mirrors_[j].resize(static_cast<size_t>(total_));
        device_copy(Device::cpu, mirrors_[j].data(), Device::cuda, states_.data() + static_cast<int64_t>(j) * stride_,
                    static_cast<size_t>(total_) * sizeof(T));
      }
      mirrors_live_ = true;
    }
    std::vector<std::pair<std::string, std::vector<T>*>> out;
    for (size_t j = 0; j < mirrors_.size(); ++j)
      out.emplace_back(optim_state_name(kind_, static_cast<int>(j)), &mirrors_[j]);
    if (kind_ == OptimKind::nadam) out.emplace_back("mu_product", &mu_product_);
    return out;
  }

  // The Adam family's (on the CUDA optimiser from the host mirrors state() fills).
  std::vector<double> preconditioner(int64_t step) override {
    return adam_family_preconditioner<T>(*this, config_, step);
  }

 private:
  void upload_mirrors() {
    for (size_t j = 0; j < mirrors_.size(); ++j) {
      CN_CHECK_MSG(static_cast<int64_t>(mirrors_[j].size()) == total_,
                   "optimiser state " << optim_state_name(kind_, static_cast<int>(j)) << " has " << mirrors_[j].size()
                                      << " values, expected " << total_);
      device_copy(Device::cuda, states_.data() + static_cast<int64_t>(j) * stride_, Device::cpu, mirrors_[j].data(),
                  static_cast<size_t>(total_) * sizeof(T));
    }
    mirrors_live_ = false;
  }

  OptimConfig config_;
  OptimKind kind_;
  int64_t total_ = 0;
  // State j starts at j * stride_: every state buffer as aligned as the first, so the
  // update kernel can use 16-byte loads on all of them.
  static constexpr int64_t kStateAlign = 64;
  int64_t stride_ = 0;
  std::vector<SegmentCoeffs> groups_;
  Buffer<Tile> tiles_;
  std::vector<int64_t> group_tile_begin_;
  Buffer<T> states_;                     // n_states x stride_ on the device
  std::vector<std::vector<T>> mirrors_;  // host copies handed out by state()
  bool mirrors_live_ = false;            // the mirrors hold the truth until the next step()
  std::vector<T> mu_product_;            // nadam: host scalar, as the CPU optimiser keeps it
};

}  // namespace

template <class T>
std::unique_ptr<Optimizer<T>> make_optimizer_cuda(const OptimConfig& config, const ParamLayout& layout) {
  return std::make_unique<CudaFlatOptimizer<T>>(config, layout);
}

// ---- the clipper -------------------------------------------------------------------------

template <class T>
struct CudaGradClipper<T>::Impl {
  ClipConfig config;
  ClipMode mode = ClipMode::none;
  int32_t n_layers = 0;
  int64_t n_tiles = 0, n_units = 0;
  Buffer<Tile> tiles;
  Buffer<int64_t> layer_tile_begin;
  Buffer<UnitRow> units;
  Buffer<double> partial_g, partial_p, coef;
  Buffer<int32_t> flag;
  Buffer<ClipRecord> ring;
  std::vector<int64_t> ring_step;   // the step each slot holds, -1 when empty
  std::vector<ClipRecord> fetched;  // the ring as of the last fetch()
};

template <class T>
CudaGradClipper<T>::CudaGradClipper(const ClipConfig& config, const ParamLayout& layout, int64_t ring_size)
    : impl_(std::make_unique<Impl>()) {
  CN_CHECK(ring_size > 0);
  check_layout(layout);
  Impl& m = *impl_;
  m.config = config;
  m.mode = config.mode;

  // Layers in order of first appearance; tiles grouped by layer.
  std::map<int64_t, int32_t> layer_slot;
  std::vector<int32_t> seg_slot;
  for (const ParamSegment& seg : layout.segments) {
    auto it = layer_slot.find(seg.layer);
    if (it == layer_slot.end()) it = layer_slot.emplace(seg.layer, static_cast<int32_t>(layer_slot.size())).first;
    seg_slot.push_back(it->second);
  }
  m.n_layers = static_cast<int32_t>(layer_slot.size());
  std::vector<int64_t> begin;
  const std::vector<Tile> tiles = make_tiles(layout, seg_slot, m.n_layers, &begin);
  m.n_tiles = static_cast<int64_t>(tiles.size());
  upload(m.tiles, tiles);
  upload(m.layer_tile_begin, begin);

  if (m.mode == ClipMode::agc_unit) {  // units: the rows of each segment
    std::vector<UnitRow> units;
    for (const ParamSegment& seg : layout.segments)
      for (int64_t r = 0; r < seg.rows; ++r) units.push_back(UnitRow{seg.offset + r * seg.cols, seg.cols});
    m.n_units = static_cast<int64_t>(units.size());
    upload(m.units, units);
  }
  for (Buffer<double>* b : {&m.partial_g, &m.partial_p}) {
    b->set_device(Device::cuda);
    b->resize(std::max<int64_t>(1, m.n_tiles));
  }
  m.coef.set_device(Device::cuda);
  m.coef.resize(std::max<int32_t>(1, m.n_layers));
  m.flag.set_device(Device::cuda);
  m.flag.resize(1);
  m.ring.set_device(Device::cuda);
  m.ring.resize(ring_size);
  m.ring.zero();
  m.ring_step.assign(static_cast<size_t>(ring_size), -1);
  m.fetched.resize(static_cast<size_t>(ring_size));
}

template <class T>
CudaGradClipper<T>::~CudaGradClipper() = default;

template <class T>
int64_t CudaGradClipper<T>::ring_size() const {
  return static_cast<int64_t>(impl_->ring_step.size());
}

template <class T>
void CudaGradClipper<T>::clip(const T* params, T* grads, int64_t step) {
  CN_CHECK(step >= 0);
  Impl& m = *impl_;
  const int64_t slot = step % ring_size();
  m.ring_step[static_cast<size_t>(slot)] = step;
  ClipRecord* rec = m.ring.data() + slot;
  const ClipConfig& c = m.config;

  cuda::tiles_sum_sq<T>(grads, m.tiles.data(), m.n_tiles, m.partial_g.data());
  if (m.mode == ClipMode::agc) cuda::tiles_sum_sq<T>(params, m.tiles.data(), m.n_tiles, m.partial_p.data());
  cuda::clip_before(m.mode, m.partial_g.data(), m.partial_p.data(), m.n_tiles, m.layer_tile_begin.data(), m.n_layers,
                    c.max_norm, c.agc_lambda, c.agc_eps, m.coef.data(), m.flag.data(), rec);
  switch (m.mode) {
    case ClipMode::none:
      break;
    case ClipMode::norm:
    case ClipMode::layer_norm:
    case ClipMode::agc:
      cuda::tiles_scale_sum_sq<T>(grads, m.tiles.data(), m.n_tiles, m.coef.data(), m.partial_g.data());
      break;
    case ClipMode::value:
      cuda::tiles_clamp_sum_sq<T>(grads, m.tiles.data(), m.n_tiles, static_cast<T>(c.value), m.flag.data(),
                                  m.partial_g.data());
      break;
    case ClipMode::agc_unit:
      cuda::units_agc<T>(params, grads, m.units.data(), m.n_units, c.agc_lambda, c.agc_eps, m.flag.data());
      cuda::tiles_sum_sq<T>(grads, m.tiles.data(), m.n_tiles, m.partial_g.data());
      break;
  }
  cuda::clip_after(m.partial_g.data(), m.n_tiles, m.mode != ClipMode::none, m.flag.data(), rec);
}

namespace {
ClipResult to_result(const ClipRecord& r) {
  ClipResult out;
  out.norm_before = r.norm_before;
  out.norm_after = r.norm_after;
  out.clipped = r.clipped != 0;
  return out;
}
}  // namespace

namespace {
// The slot of `step`, or an Error when the ring does not hold it.
size_t ring_slot(const std::vector<int64_t>& ring_step, int64_t step) {
  const int64_t size = static_cast<int64_t>(ring_step.size());
  const int64_t slot = step >= 0 ? step % size : 0;
  if (step < 0 || ring_step[static_cast<size_t>(slot)] != step)
    throw Error("clip record of step " + std::to_string(step) + " is not in the ring (" + std::to_string(size) +
                " records, slot holds step " + std::to_string(ring_step[static_cast<size_t>(slot)]) + ")");
  return static_cast<size_t>(slot);
}
}  // namespace

template <class T>
ClipResult CudaGradClipper<T>::read(int64_t step) const {
  const Impl& m = *impl_;
  const size_t slot = ring_slot(m.ring_step, step);
  ClipRecord r;
  device_copy(Device::cpu, &r, Device::cuda, m.ring.data() + slot, sizeof(ClipRecord));
  return to_result(r);
}

template <class T>
void CudaGradClipper<T>::fetch() {
  Impl& m = *impl_;
  device_copy(Device::cpu, m.fetched.data(), Device::cuda, m.ring.data(), m.fetched.size() * sizeof(ClipRecord));
}

template <class T>
ClipResult CudaGradClipper<T>::fetched(int64_t step) const {
  const Impl& m = *impl_;
  return to_result(m.fetched[ring_slot(m.ring_step, step)]);
}

template <class T>
std::vector<std::pair<int64_t, ClipResult>> CudaGradClipper<T>::read_all() const {
  const Impl& m = *impl_;
  std::vector<ClipRecord> all(static_cast<size_t>(ring_size()));
  device_copy(Device::cpu, all.data(), Device::cuda, m.ring.data(), all.size() * sizeof(ClipRecord));
  std::vector<std::pair<int64_t, ClipResult>> out;
  for (size_t s = 0; s < all.size(); ++s)
    if (m.ring_step[s] >= 0) out.emplace_back(m.ring_step[s], to_result(all[s]));
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  return out;
}

template <class T>
void add_gradient_noise_cuda(const OptimConfig& config, uint64_t seed, int64_t step, T* grads, int64_t n) {
  if (config.grad_noise_eta == 0.0) return;
  const double sigma = grad_noise_sigma(config.grad_noise_eta, config.grad_noise_gamma, step);
  cuda::grad_noise<T>(grads, n, philox_key(seed, RngStream::grad_noise), step, sigma);
}

template std::unique_ptr<Optimizer<float>> make_optimizer_cuda<float>(const OptimConfig&, const ParamLayout&);
template std::unique_ptr<Optimizer<double>> make_optimizer_cuda<double>(const OptimConfig&, const ParamLayout&);
template class CudaGradClipper<float>;
template class CudaGradClipper<double>;
template void add_gradient_noise_cuda<float>(const OptimConfig&, uint64_t, int64_t, float*, int64_t);
template void add_gradient_noise_cuda<double>(const OptimConfig&, uint64_t, int64_t, double*, int64_t);

}  // namespace cn
