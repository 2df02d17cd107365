#include "train/capacity_stats.h"

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "diagnostics/eigen.h"
#include "io/files.h"
#include "train/growth.h"

namespace cn {

double activation_effective_rank(const std::vector<double>& a, int64_t N, int64_t U) {
  if (N < 2 || U < 1) return 0.0;
  std::vector<double> mean(static_cast<size_t>(U), 0.0), cov(static_cast<size_t>(U * U), 0.0);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t u = 0; u < U; ++u) mean[u] += a[n * U + u] / static_cast<double>(N);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t u = 0; u < U; ++u) {
      const double du = a[n * U + u] - mean[u];
      for (int64_t v = 0; v <= u; ++v) cov[u * U + v] += du * (a[n * U + v] - mean[v]);
    }
  for (int64_t u = 0; u < U; ++u)
    for (int64_t v = 0; v <= u; ++v) cov[v * U + u] = cov[u * U + v];
  const EigResult<double> eig = eigh(cov.data(), U);
  double total = 0;
  for (double l : eig.values) total += std::max(l, 0.0);
  if (!(total > 0)) return 0.0;
  double entropy = 0;
  for (double l : eig.values) {
    const double p = std::max(l, 0.0) / total;
    if (p > 0) entropy -= p * std::log(p);
  }
  return std::exp(entropy);
}

std::vector<double> per_sample_loss(LossKind kind, const std::vector<double>& z, const std::vector<double>& t,
                                    int64_t N, int64_t C, int64_t target_width) {
  std::vector<double> out(static_cast<size_t>(N), 0.0);
  for (int64_t n = 0; n < N; ++n) {
    const double* zn = z.data() + n * C;
    const double* tn = t.data() + n * target_width;
    double l = 0;
    if (kind == LossKind::cross_entropy) {
      double mx = zn[0];
      for (int64_t c = 1; c < C; ++c) mx = std::max(mx, zn[c]);
      double s = 0;
      for (int64_t c = 0; c < C; ++c) s += std::exp(zn[c] - mx);
      l = mx + std::log(s) - zn[static_cast<int64_t>(tn[0])];
    } else if (kind == LossKind::mse) {
      for (int64_t c = 0; c < C; ++c) l += (zn[c] - tn[c]) * (zn[c] - tn[c]) / static_cast<double>(C);
    } else {  // bce_logits: max(z, 0) − z t + log(1 + e^−|z|)
      for (int64_t c = 0; c < C; ++c)
        l += (std::max(zn[c], 0.0) - zn[c] * tn[c] + std::log1p(std::exp(-std::abs(zn[c])))) / static_cast<double>(C);
    }
    out[static_cast<size_t>(n)] = l;
  }
  return out;
}

template <class T>
BatchView view_batch(Engine<T>& e, const Dataset& d, int64_t n, bool backward) {
  BatchView v;
  v.n = std::min({n, d.n, e.eval_chunk()});
  const std::vector<double> targets = loss_targets(d, e.shape);
  e.gather(d, targets, nullptr, 0, v.n);
  v.input.assign(d.x.begin(), d.x.begin() + v.n * d.d);
  PassCtx c;
  c.device = e.device;
  c.training = false;
  Sequential<T>& m = *e.model;
  const T* z = m.forward(c, e.xb.data(), v.n);
  const int64_t C = e.shape.n_outputs;
  if (backward) {
    e.loss->forward_backward(c, z, e.yb.data(), v.n, C);
    m.backward(c, e.loss->dz(), v.n);
  }
  auto host = [&](const T* p, int64_t count) {
    std::vector<T> h(static_cast<size_t>(count));
    device_copy(Device::cpu, h.data(), e.device, p, h.size() * sizeof(T));
    return std::vector<double>(h.begin(), h.end());
  };
  for (size_t i = 0; i < m.size(); ++i) {
    const int64_t w = m.layer(i).out_features();
    v.outputs.push_back(host(m.layer_output(i), v.n * w));
    if (backward) v.grads.push_back(host(m.output_grad(i), v.n * w));
  }
  const std::vector<double> t(targets.begin(), targets.begin() + v.n * e.shape.target_width);
  v.sample_loss = per_sample_loss(e.config.loss.kind, v.outputs.back(), t, v.n, C, e.shape.target_width);
  for (double l : v.sample_loss) v.mean_loss += l / static_cast<double>(v.n);
  return v;
}

template <class T>
std::unique_ptr<Engine<T>> load_checkpoint_engine(const std::string& ckpt, const Config& config) {
  auto e = std::make_unique<Engine<T>>(config, Device::cpu);
  widen_to_checkpoint(*e, config, ckpt);
  load_model(*e->model, ckpt + "/" + RunLayout::kModelFile);
  e->st.step = checkpoint_step(ckpt);
  return e;
}

template std::unique_ptr<Engine<float>> load_checkpoint_engine<float>(const std::string&, const Config&);
template std::unique_ptr<Engine<double>> load_checkpoint_engine<double>(const std::string&, const Config&);
template BatchView view_batch<float>(Engine<float>&, const Dataset&, int64_t, bool);
template BatchView view_batch<double>(Engine<double>&, const Dataset&, int64_t, bool);

}  // namespace cn
