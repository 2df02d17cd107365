// The optimisers over the flat parameter buffer: one class, the update math of each kind
// in kernels/optim.h, the scalars of a step computed here once per segment.
#include "optim/optimizer.h"

#include <cmath>

#include "core/error.h"
#include "kernels/optim.h"

namespace cn {

namespace {

// Below this many elements a segment's loop runs on one thread (fork/join costs more).
constexpr int64_t kParallelMin = 1 << 14;

template <OptimKind K, class T>
void run_segment(const OptimScalars<T>& s, T* p, const T* g, T* s0, T* s1, T* s2, int64_t begin, int64_t end) {
#pragma omp parallel for simd schedule(static) if (end - begin >= kParallelMin)
  for (int64_t i = begin; i < end; ++i) optim_element<K, T>(s, p, g, s0, s1, s2, i);
}

template <class T>
class FlatOptimizer final : public Optimizer<T> {
 public:
  FlatOptimizer(const OptimConfig& config, const ParamLayout& layout)
      : config_(config), kind_(config.name), layout_(layout), coeffs_(resolve_segment_coeffs(config, layout)) {
    const int n_states = optim_state_count(kind_);
    states_.resize(static_cast<size_t>(n_states));
    for (auto& s : states_) s.assign(static_cast<size_t>(layout.total), T(0));
    if (kind_ == OptimKind::nadam) mu_product_.assign(1, T(1));
  }

  void step(T* params, const T* grads, double lr, int64_t step) override {
    CN_CHECK(step >= 0);
    T* s0 = states_.size() > 0 ? states_[0].data() : nullptr;
    T* s1 = states_.size() > 1 ? states_[1].data() : nullptr;
    T* s2 = states_.size() > 2 ? states_[2].data() : nullptr;

    // Step-dependent scalars shared by all segments (torch's t = step + 1), then each
    // segment's: the same host math as the CUDA optimiser (kernels/optim.h).
    const OptimStepValues v = optim_step_values(kind_, config_.beta1, config_.beta2, step,
                                                mu_product_.empty() ? nullptr : mu_product_.data());
    for (size_t si = 0; si < layout_.segments.size(); ++si) {
      const ParamSegment& seg = layout_.segments[si];
      const SegmentCoeffs& c = coeffs_[si];
      const OptimScalars<T> s =
          optim_segment_scalars<T>(kind_, v, step, lr * c.lr_scale, c.weight_decay, c.l1, config_.momentum,
                                   config_.alpha, config_.eps, config_.beta1, config_.beta2);
      const int64_t b = seg.offset, e = seg.offset + seg.size();
      if (!birth_.empty()) {
        step_by_birth(params, grads, s0, s1, s2, lr * c.lr_scale, c, step, b, e);
        continue;
      }
      switch (kind_) {
        case OptimKind::sgd:
          run_segment<OptimKind::sgd>(s, params, grads, s0, s1, s2, b, e);
          break;
        case OptimKind::momentum:
          run_segment<OptimKind::momentum>(s, params, grads, s0, s1, s2, b, e);
          break;
        case OptimKind::nesterov:
          run_segment<OptimKind::nesterov>(s, params, grads, s0, s1, s2, b, e);
          break;
        case OptimKind::adagrad:
          run_segment<OptimKind::adagrad>(s, params, grads, s0, s1, s2, b, e);
          break;
        case OptimKind::rmsprop:
          run_segment<OptimKind::rmsprop>(s, params, grads, s0, s1, s2, b, e);
          break;
        case OptimKind::adam:
          run_segment<OptimKind::adam>(s, params, grads, s0, s1, s2, b, e);
          break;
        case OptimKind::adamw:
          run_segment<OptimKind::adamw>(s, params, grads, s0, s1, s2, b, e);
          break;
        case OptimKind::nadam:
          run_segment<OptimKind::nadam>(s, params, grads, s0, s1, s2, b, e);
          break;
        case OptimKind::amsgrad:
          run_segment<OptimKind::amsgrad>(s, params, grads, s0, s1, s2, b, e);
          break;
      }
    }
  }

  std::vector<std::pair<std::string, std::vector<T>*>> state() override {
    std::vector<std::pair<std::string, std::vector<T>*>> out;
    for (size_t j = 0; j < states_.size(); ++j)
      out.emplace_back(optim_state_name(kind_, static_cast<int>(j)), &states_[j]);
    if (kind_ == OptimKind::nadam) out.emplace_back("mu_product", &mu_product_);
    if (!birth_.empty()) out.emplace_back("step_birth", &birth_);
    return out;
  }

  void relayout(const ParamLayout& layout, const std::vector<int64_t>& source, int64_t step) override {
    CN_CHECK(static_cast<int64_t>(source.size()) == layout.total);
    if (kind_ == OptimKind::nadam)
      throw InputError(
          "growth: optim.name = \"nadam\" keeps one momentum-schedule product for all parameters and "
          "cannot give new units their own step count; expected adam, adamw, amsgrad, sgd, momentum, "
          "nesterov, adagrad or rmsprop");
    for (auto& st : states_) st = moved(st, source, T(0));
    // Only the Adam family's bias correction depends on the step; the others need no count.
    if (bias_corrected()) {
      if (birth_.empty()) birth_.assign(static_cast<size_t>(layout_.total), T(0));
      birth_ = moved(birth_, source, static_cast<T>(step));
    }
    layout_ = layout;
    coeffs_ = resolve_segment_coeffs(config_, layout);
  }

  // The Adam family's.
  std::vector<double> preconditioner(int64_t step) override {
    return adam_family_preconditioner<T>(*this, config_, step);
  }

 private:
  OptimConfig config_;
  OptimKind kind_;
  ParamLayout layout_;
  std::vector<SegmentCoeffs> coeffs_;
  std::vector<std::vector<T>> states_;
  std::vector<T> mu_product_;
  // Per element: the step at which it joined the model (growth), empty when none ever did.
  // Stored in T (exact for steps below 2^24 in float32) so checkpoints carry it as state.
  std::vector<T> birth_;

  bool bias_corrected() const {
    return kind_ == OptimKind::adam || kind_ == OptimKind::adamw || kind_ == OptimKind::amsgrad;
  }

  static std::vector<T> moved(const std::vector<T>& old, const std::vector<int64_t>& source, T fill) {
    std::vector<T> out(source.size(), fill);
    for (size_t i = 0; i < source.size(); ++i)
      if (source[i] >= 0) out[i] = old[static_cast<size_t>(source[i])];
    return out;
  }

  // One segment's update when elements have their own step counts: each element takes
  // the scalars of its own step, step - birth (the scalars of each distinct birth computed
  // once; a run has as many as it had growth events).
  void step_by_birth(T* params, const T* grads, T* s0, T* s1, T* s2, double seg_lr, const SegmentCoeffs& c,
                     int64_t step, int64_t b, int64_t e) {
    std::vector<std::pair<T, OptimScalars<T>>> table;
    auto scalars_for = [&](T birth) -> const OptimScalars<T>& {
      for (const auto& [bt, sc] : table)
        if (bt == birth) return sc;
      const int64_t local = step - static_cast<int64_t>(birth);
      CN_CHECK_MSG(local >= 0, "optimiser state: element born at step " << birth << " after step " << step);
      const OptimStepValues v = optim_step_values<T>(kind_, config_.beta1, config_.beta2, local, nullptr);
      table.emplace_back(birth,
                         optim_segment_scalars<T>(kind_, v, local, seg_lr, c.weight_decay, c.l1, config_.momentum,
                                                  config_.alpha, config_.eps, config_.beta1, config_.beta2));
      return table.back().second;
    };
    for (int64_t i = b; i < e; ++i) {
      const OptimScalars<T>& s = scalars_for(birth_[static_cast<size_t>(i)]);
      switch (kind_) {
        case OptimKind::adam:
          optim_element<OptimKind::adam, T>(s, params, grads, s0, s1, s2, i);
          break;
        case OptimKind::adamw:
          optim_element<OptimKind::adamw, T>(s, params, grads, s0, s1, s2, i);
          break;
        case OptimKind::amsgrad:
          optim_element<OptimKind::amsgrad, T>(s, params, grads, s0, s1, s2, i);
          break;
        default:
          CN_CHECK_MSG(false, "per-element step counts apply to the Adam family only");
      }
    }
  }
};

}  // namespace

std::vector<SegmentCoeffs> resolve_segment_coeffs(const OptimConfig& config, const ParamLayout& layout) {
  for (const PerLayerOptim& pl : config.per_layer) {
    bool found = false;
    for (const ParamSegment& seg : layout.segments) found = found || seg.layer == pl.layer;
    if (!found)
      throw InputError("optim.per_layer: layer " + std::to_string(pl.layer) +
                       " has no parameters (per-layer settings apply to Linear and BatchNorm layers)");
  }
  std::vector<SegmentCoeffs> out(layout.segments.size());
  for (size_t i = 0; i < layout.segments.size(); ++i) {
    SegmentCoeffs c;
    c.weight_decay = config.weight_decay;
    c.l1 = config.l1;
    c.lr_scale = 1.0;
    for (const PerLayerOptim& pl : config.per_layer) {  // a later entry for the same layer wins
      if (pl.layer != layout.segments[i].layer) continue;
      if (pl.weight_decay) c.weight_decay = *pl.weight_decay;
      if (pl.l1) c.l1 = *pl.l1;
      c.lr_scale = pl.lr_scale;
    }
    out[i] = c;
  }
  return out;
}

template <class T>
std::vector<double> adam_family_preconditioner(Optimizer<T>& optimizer, const OptimConfig& config, int64_t step) {
  const OptimKind k = config.name;
  std::vector<double> p;
  if (k != OptimKind::adam && k != OptimKind::adamw && k != OptimKind::nadam && k != OptimKind::amsgrad) return p;
  if (step <= 0) return p;
  const std::string state_name = k == OptimKind::amsgrad ? "max_exp_avg_sq" : "exp_avg_sq";
  for (auto& [name, buf] : optimizer.state()) {
    if (name != state_name) continue;
    const double corr = 1.0 - std::pow(config.beta2, static_cast<double>(step));
    p.resize(buf->size());
    for (size_t i = 0; i < buf->size(); ++i)
      p[i] = adam_preconditioner<double>(static_cast<double>((*buf)[i]), corr, config.eps);
  }
  return p;
}

template <class T>
std::unique_ptr<Optimizer<T>> make_optimizer(const OptimConfig& config, const ParamLayout& layout) {
  for (const ParamSegment& seg : layout.segments)
    CN_CHECK_MSG(seg.offset >= 0 && seg.offset + seg.size() <= layout.total,
                 "segment " << seg.name << " lies outside the flat buffer");
  return std::make_unique<FlatOptimizer<T>>(config, layout);
}

template std::vector<double> adam_family_preconditioner<float>(Optimizer<float>&, const OptimConfig&, int64_t);
template std::vector<double> adam_family_preconditioner<double>(Optimizer<double>&, const OptimConfig&, int64_t);
template std::unique_ptr<Optimizer<float>> make_optimizer<float>(const OptimConfig&, const ParamLayout&);
template std::unique_ptr<Optimizer<double>> make_optimizer<double>(const OptimConfig&, const ParamLayout&);

}  // namespace cn
