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

OptimKind parse_kind(const std::string& name) {
  if (name == "sgd") return OptimKind::sgd;
  if (name == "momentum") return OptimKind::momentum;
  if (name == "nesterov") return OptimKind::nesterov;
  if (name == "adagrad") return OptimKind::adagrad;
  if (name == "rmsprop") return OptimKind::rmsprop;
  if (name == "adam") return OptimKind::adam;
  if (name == "adamw") return OptimKind::adamw;
  if (name == "nadam") return OptimKind::nadam;
  if (name == "amsgrad") return OptimKind::amsgrad;
  throw InputError("optim.name: unknown optimiser '" + name +
                   "' (expected sgd, momentum, nesterov, adagrad, rmsprop, adam, adamw, nadam or amsgrad)");
}

// torch.optim's state names, in the order of the kernel's s0, s1, s2.
const char* state_name(OptimKind k, int j) {
  switch (k) {
    case OptimKind::momentum:
    case OptimKind::nesterov: return "momentum_buffer";
    case OptimKind::adagrad: return "sum";
    case OptimKind::rmsprop: return "square_avg";
    case OptimKind::adam:
    case OptimKind::adamw:
    case OptimKind::nadam:
    case OptimKind::amsgrad: return j == 0 ? "exp_avg" : (j == 1 ? "exp_avg_sq" : "max_exp_avg_sq");
    case OptimKind::sgd: break;
  }
  return "";
}

// NAdam's momentum schedule (torch momentum_decay = 4e-3): mu_t = beta1 (1 - 0.5 0.96^(t psi)).
double nadam_mu(double beta1, double t) { return beta1 * (1.0 - 0.5 * std::pow(0.96, t * 4e-3)); }

template <OptimKind K, class T>
void run_segment(const OptimScalars<T>& s, T* p, const T* g, T* s0, T* s1, T* s2, int64_t begin, int64_t end) {
#pragma omp parallel for simd schedule(static) if (end - begin >= kParallelMin)
  for (int64_t i = begin; i < end; ++i) optim_element<K, T>(s, p, g, s0, s1, s2, i);
}

template <class T>
class FlatOptimizer final : public Optimizer<T> {
 public:
  FlatOptimizer(const OptimConfig& config, const ParamLayout& layout)
      : config_(config), kind_(parse_kind(config.name)), layout_(layout),
        coeffs_(resolve_segment_coeffs(config, layout)) {
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

    // Step-dependent scalars shared by all segments (torch's t = step + 1).
    const double t = static_cast<double>(step) + 1.0;
    const double b1 = config_.beta1, b2 = config_.beta2;
    const double bc1 = 1.0 - std::pow(b1, t);
    const double bc2 = 1.0 - std::pow(b2, t);
    double mu = 0, mu_next = 0, mu_prod = 0, mu_prod_next = 0;
    if (kind_ == OptimKind::nadam) {
      if (step == 0) mu_product_[0] = T(1);
      mu = nadam_mu(b1, t);
      mu_next = nadam_mu(b1, t + 1.0);
      mu_prod = static_cast<double>(mu_product_[0]) * mu;
      mu_product_[0] = static_cast<T>(mu_prod);
      mu_prod = static_cast<double>(mu_product_[0]);  // as stored (float: rounded like torch's tensor)
      mu_prod_next = mu_prod * mu_next;
    }

    for (size_t si = 0; si < layout_.segments.size(); ++si) {
      const ParamSegment& seg = layout_.segments[si];
      const SegmentCoeffs& c = coeffs_[si];
      const double seg_lr = lr * c.lr_scale;
      OptimScalars<T> s;
      s.lr = static_cast<T>(seg_lr);
      s.weight_decay = static_cast<T>(c.weight_decay);
      s.l1 = static_cast<T>(c.l1);
      s.momentum = static_cast<T>(config_.momentum);
      s.alpha = static_cast<T>(config_.alpha);
      s.one_minus_alpha = static_cast<T>(1.0 - config_.alpha);
      s.eps = static_cast<T>(config_.eps);
      s.beta1 = static_cast<T>(b1);
      s.beta2 = static_cast<T>(b2);
      s.one_minus_beta1 = static_cast<T>(1.0 - b1);
      s.one_minus_beta2 = static_cast<T>(1.0 - b2);
      s.step_size = static_cast<T>(seg_lr / bc1);
      s.bc2_sqrt = static_cast<T>(std::sqrt(bc2));
      s.bc2 = static_cast<T>(bc2);
      if (kind_ == OptimKind::nadam) {
        s.nadam_c_grad = static_cast<T>(-seg_lr * (1.0 - mu) / (1.0 - mu_prod));
        s.nadam_c_avg = static_cast<T>(-seg_lr * mu_next / (1.0 - mu_prod_next));
      }
      s.decay = static_cast<T>(1.0 - seg_lr * c.weight_decay);
      s.first = (step == 0);
      const int64_t b = seg.offset, e = seg.offset + seg.size();
      switch (kind_) {
        case OptimKind::sgd: run_segment<OptimKind::sgd>(s, params, grads, s0, s1, s2, b, e); break;
        case OptimKind::momentum: run_segment<OptimKind::momentum>(s, params, grads, s0, s1, s2, b, e); break;
        case OptimKind::nesterov: run_segment<OptimKind::nesterov>(s, params, grads, s0, s1, s2, b, e); break;
        case OptimKind::adagrad: run_segment<OptimKind::adagrad>(s, params, grads, s0, s1, s2, b, e); break;
        case OptimKind::rmsprop: run_segment<OptimKind::rmsprop>(s, params, grads, s0, s1, s2, b, e); break;
        case OptimKind::adam: run_segment<OptimKind::adam>(s, params, grads, s0, s1, s2, b, e); break;
        case OptimKind::adamw: run_segment<OptimKind::adamw>(s, params, grads, s0, s1, s2, b, e); break;
        case OptimKind::nadam: run_segment<OptimKind::nadam>(s, params, grads, s0, s1, s2, b, e); break;
        case OptimKind::amsgrad: run_segment<OptimKind::amsgrad>(s, params, grads, s0, s1, s2, b, e); break;
      }
    }
  }

  std::vector<std::pair<std::string, std::vector<T>*>> state() override {
    std::vector<std::pair<std::string, std::vector<T>*>> out;
    for (size_t j = 0; j < states_.size(); ++j) out.emplace_back(state_name(kind_, static_cast<int>(j)), &states_[j]);
    if (kind_ == OptimKind::nadam) out.emplace_back("mu_product", &mu_product_);
    return out;
  }

 private:
  OptimConfig config_;
  OptimKind kind_;
  ParamLayout layout_;
  std::vector<SegmentCoeffs> coeffs_;
  std::vector<std::vector<T>> states_;
  std::vector<T> mu_product_;
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
std::unique_ptr<Optimizer<T>> make_optimizer(const OptimConfig& config, const ParamLayout& layout) {
  for (const ParamSegment& seg : layout.segments)
    CN_CHECK_MSG(seg.offset >= 0 && seg.offset + seg.size() <= layout.total,
                 "segment " << seg.name << " lies outside the flat buffer");
  return std::make_unique<FlatOptimizer<T>>(config, layout);
}

template std::unique_ptr<Optimizer<float>> make_optimizer<float>(const OptimConfig&, const ParamLayout&);
template std::unique_ptr<Optimizer<double>> make_optimizer<double>(const OptimConfig&, const ParamLayout&);

}  // namespace cn
