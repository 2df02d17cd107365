#include "train/ablation.h"

#include <cmath>
#include <iomanip>
#include <sstream>

#include "core/error.h"
#include "io/run_layout.h"
#include "train/capacity_stats.h"
#include "train/engine.h"

namespace cn {

using json = nlohmann::json;

void fit_affine(const std::vector<double>& x, const std::vector<double>& y, int64_t N, int64_t a, int64_t b,
                std::vector<double>* B, std::vector<double>* c) {
  const int64_t m = a + 1;  // the inputs and a constant column
  std::vector<double> G(static_cast<size_t>(m * m), 0.0), R(static_cast<size_t>(m * b), 0.0), row(m);
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t i = 0; i < a; ++i) row[i] = x[n * a + i];
    row[a] = 1.0;
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t j = 0; j <= i; ++j) G[i * m + j] += row[i] * row[j];
      for (int64_t j = 0; j < b; ++j) R[i * b + j] += row[i] * y[n * b + j];
    }
  }
  double diag = 0;
  for (int64_t i = 0; i < m; ++i) diag += G[i * m + i] / static_cast<double>(m);
  const double ridge = 1e-10 * (diag > 0 ? diag : 1.0);
  // Cholesky G = L Lᵀ in the lower triangle, then two triangular solves per column of R.
  for (int64_t j = 0; j < m; ++j) {
    double d = G[j * m + j] + ridge;
    for (int64_t k = 0; k < j; ++k) d -= G[j * m + k] * G[j * m + k];
    CN_CHECK_MSG(d > 0, "fit_affine: the normal equations are not positive definite");
    G[j * m + j] = std::sqrt(d);
    for (int64_t i = j + 1; i < m; ++i) {
      double s = G[i * m + j];
      for (int64_t k = 0; k < j; ++k) s -= G[i * m + k] * G[j * m + k];
      G[i * m + j] = s / G[j * m + j];
    }
  }
  std::vector<double> z(static_cast<size_t>(m));
  B->assign(static_cast<size_t>(b * a), 0.0);
  c->assign(static_cast<size_t>(b), 0.0);
  for (int64_t col = 0; col < b; ++col) {
    for (int64_t i = 0; i < m; ++i) {
      double s = R[i * b + col];
      for (int64_t k = 0; k < i; ++k) s -= G[i * m + k] * z[k];
      z[i] = s / G[i * m + i];
    }
    for (int64_t i = m - 1; i >= 0; --i) {
      double s = z[i];
      for (int64_t k = i + 1; k < m; ++k) s -= G[k * m + i] * z[k];
      z[i] = s / G[i * m + i];
    }
    for (int64_t i = 0; i < a; ++i) (*B)[col * a + i] = z[i];
    (*c)[col] = z[a];
  }
}

template <class T>
std::vector<LayerSpec> ablated_specs(const Sequential<T>& model, size_t li, size_t lj) {
  std::vector<LayerSpec> out;
  for (size_t i = 0; i < model.size(); ++i)
    if (i < li || i >= lj) out.push_back(model.specs()[i]);
  return out;
}

namespace {

template <class T>
std::vector<double> host(const Buffer<T>& b, Device d, int64_t n) {
  std::vector<T> h(static_cast<size_t>(n));
  device_copy(Device::cpu, h.data(), d, b.data(), h.size() * sizeof(T));
  return std::vector<double>(h.begin(), h.end());
}

size_t next_linear_after(const std::vector<LayerSpec>& specs, size_t li) {
  for (size_t j = li + 1; j < specs.size(); ++j)
    if (specs[j].type == LayerKind::linear) return j;
  return specs.size();
}

const Dataset& split_of(const Splits& s, const std::string& split) {
  const Dataset* d = split == "train" ? &s.train : split == "val" ? &s.val : split == "test" ? &s.test : nullptr;
  if (!d) throw InputError("--split " + split + ": expected train, val or test");
  if (d->n == 0) throw InputError("--split " + split + ": the split is empty for data set " + s.train.name);
  return *d;
}

template <class T>
double loss_on(Engine<T>& e, const std::string& split) {
  return e.evaluate(split_of(e.data, split), split)["loss"].template get<double>();
}

// `steps` updates of the engine's own optimiser from fresh state (the first epoch's order).
template <class T>
void finetune(Engine<T>& e, int64_t steps) {
  e.st.step = 0;
  e.st.epoch = 0;
  for (int64_t s = 0; s < steps && !e.halted; ++s) e.step(true);
}

// The engine of the model without block [li, lj): Linear lj becomes x ↦ W_lj (B x + c) + b_lj.
template <class T>
std::unique_ptr<Engine<T>> without_block(Engine<T>& base, const Config& config, size_t li, size_t lj,
                                         const std::vector<double>& B, const std::vector<double>& c) {
  const Sequential<T>& m = *base.model;
  Config ca = config;
  ca.model.layers = ablated_specs(m, li, lj);
  auto e = std::make_unique<Engine<T>>(ca, Device::cpu);
  const std::vector<double> p = host(m.params(), m.device(), m.layout().total);
  std::vector<double> q(static_cast<size_t>(e->model->layout().total), 0.0);
  const size_t gap = lj - li;
  for (size_t k = 0; k < e->model->size(); ++k) {
    const size_t o = k < li ? k : k + gap;
    const int64_t np = m.layer(o).num_params(), to = e->model->layer_offset(k), from = m.layer_offset(o);
    if (o != lj) {
      for (int64_t i = 0; i < np; ++i) q[to + i] = p[from + i];
    } else {
      const int64_t Q = m.layer(lj).out_features(), b = m.layer(lj).in_features(), a = m.layer(li).in_features();
      for (int64_t r = 0; r < Q; ++r) {
        double bias = p[from + Q * b + r];
        for (int64_t j = 0; j < b; ++j) {
          const double w = p[from + r * b + j];
          bias += w * c[j];
          for (int64_t i = 0; i < a; ++i) q[to + r * a + i] += w * B[j * a + i];
        }
        q[to + Q * a + r] = bias;
      }
    }
    auto dst = e->model->layer(k).state();
    auto src = base.model->layer(o).state();
    for (size_t s = 0; s < dst.size() && s < src.size(); ++s)
      device_copy(dst[s].device, dst[s].data, src[s].device, src[s].data, static_cast<size_t>(dst[s].size) * sizeof(T));
  }
  std::vector<T> cast(q.begin(), q.end());
  device_copy(Device::cpu, e->model->params().data(), Device::cpu, cast.data(), cast.size() * sizeof(T));
  return e;
}

template <class T>
std::vector<json> ablate(const std::string& ckpt, Config config, const AblationOptions& o) {
  config.schedule = ScheduleConfig{};  // fine-tuning runs at optim.lr
  config.train.device = DeviceChoice::cpu;
  auto base = load_checkpoint_engine<T>(ckpt, config);
  const double L0 = loss_on(*base, o.split);
  double L0_ft = std::nan("");
  if (o.finetune > 0) {
    auto ft = load_checkpoint_engine<T>(ckpt, config);
    finetune(*ft, o.finetune);
    L0_ft = loss_on(*ft, o.split);
  }
  const BatchView v = view_batch(*base, base->data.train, o.fit_samples, false);
  const std::vector<LayerSpec> specs = base->model->specs();
  std::vector<json> rows;
  auto rel = [](double d, double ref) { return ref != 0 ? d / std::abs(ref) : std::nan(""); };
  for (size_t li = 0; li < specs.size(); ++li) {
    const size_t lj = next_linear_after(specs, li);
    if (!o.whole_layers || specs[li].type != LayerKind::linear || lj >= specs.size()) continue;
    const int64_t a = base->model->layer(li).in_features(), b = base->model->layer(li).out_features();
    std::vector<double> B(static_cast<size_t>(b * a), 0.0), c(static_cast<size_t>(b), 0.0);
    const bool identity = a == b;
    if (identity)
      for (int64_t i = 0; i < a; ++i) B[i * a + i] = 1.0;
    else
      fit_affine(li == 0 ? v.input : v.outputs[li - 1], v.outputs[lj - 1], v.n, a, b, &B, &c);
    auto e = without_block(*base, config, li, lj, B, c);
    const double L = loss_on(*e, o.split);
    json block = json::array();
    for (size_t k = li; k < lj; ++k) block.push_back(k);
    json row = {{"kind", "layer"},
                {"layer", li},
                {"block", block},
                {"in", a},
                {"out", b},
                {"method", identity ? "identity" : "bridge"},
                {"split", o.split},
                {"step", base->st.step},
                {"base_loss", L0},
                {"removed_loss", L},
                {"delta_remove", L - L0},
                {"rel_delta_remove", rel(L - L0, L0)},
                {"finetune_steps", o.finetune}};
    if (o.finetune > 0) {
      finetune(*e, o.finetune);
      const double Lf = loss_on(*e, o.split);
      row.update({{"base_finetuned_loss", L0_ft},
                  {"finetuned_loss", Lf},
                  {"delta_finetuned", Lf - L0_ft},
                  {"rel_delta_finetuned", rel(Lf - L0_ft, L0_ft)}});
    }
    rows.push_back(row);
  }
  if (o.layer) {
    const size_t li = static_cast<size_t>(*o.layer);
    const size_t lj = li < specs.size() ? next_linear_after(specs, li) : specs.size();
    if (li >= specs.size() || specs[li].type != LayerKind::linear || lj >= specs.size())
      throw InputError("--layer " + std::to_string(li) + ": expected a hidden Linear layer (one followed by another)");
    Sequential<T>& m = *base->model;
    const int64_t U = m.layer(li).out_features(), Q = m.layer(lj).out_features(), off = m.layer_offset(lj);
    std::vector<T> p(static_cast<size_t>(m.layout().total));
    device_copy(Device::cpu, p.data(), m.device(), m.params().data(), p.size() * sizeof(T));
    for (int64_t u = 0; u < U; ++u) {
      std::vector<T> cut = p;  // the unit's outgoing weights cut: its output reaches nothing
      double out_norm = 0;
      for (int64_t r = 0; r < Q; ++r) {
        out_norm += static_cast<double>(cut[off + r * U + u]) * static_cast<double>(cut[off + r * U + u]);
        cut[off + r * U + u] = T(0);
      }
      device_copy(m.device(), m.params().data(), Device::cpu, cut.data(), cut.size() * sizeof(T));
      const double L = loss_on(*base, o.split);
      rows.push_back({{"kind", "unit"},
                      {"layer", li},
                      {"unit", u},
                      {"split", o.split},
                      {"base_loss", L0},
                      {"removed_loss", L},
                      {"delta_remove", L - L0},
                      {"rel_delta_remove", rel(L - L0, L0)},
                      {"out_norm", std::sqrt(out_norm)}});
    }
    device_copy(m.device(), m.params().data(), Device::cpu, p.data(), p.size() * sizeof(T));
  }
  return rows;
}

}  // namespace

std::vector<json> ablate_run(const std::string& path, const AblationOptions& o) {
  const std::string ckpt = resolve_checkpoint(path);
  const Config config = load_config(RunLayout(checkpoint_run_dir(ckpt)).config());
  return config.train.dtype == DType::float64 ? ablate<double>(ckpt, config, o) : ablate<float>(ckpt, config, o);
}

std::string ablation_table(const std::vector<json>& rows) {
  std::ostringstream os;
  auto num = [](const json& r, const char* k) -> std::string {
    if (!r.contains(k) || !r[k].is_number()) return "-";
    std::ostringstream s;
    s << std::setprecision(4) << r[k].get<double>();
    return s.str();
  };
  bool header = false, unit_header = false;
  for (const json& r : rows) {
    if (r["kind"] == "layer") {
      if (!header)
        os << std::left << std::setw(7) << "layer" << std::setw(10) << "method" << std::setw(10) << "in->out"
           << std::setw(13) << "base" << std::setw(13) << "removed" << std::setw(13) << "dL_remove" << std::setw(11)
           << "rel" << std::setw(13) << "dL_finetuned"
           << "rel_finetuned\n";
      header = true;
      os << std::left << std::setw(7) << r["layer"].get<int64_t>() << std::setw(10) << r["method"].get<std::string>()
         << std::setw(10) << (std::to_string(r["in"].get<int64_t>()) + "->" + std::to_string(r["out"].get<int64_t>()))
         << std::setw(13) << num(r, "base_loss") << std::setw(13) << num(r, "removed_loss") << std::setw(13)
         << num(r, "delta_remove") << std::setw(11) << num(r, "rel_delta_remove") << std::setw(13)
         << num(r, "delta_finetuned") << num(r, "rel_delta_finetuned") << "\n";
    } else {
      if (!unit_header)
        os << "\nlayer " << r["layer"].get<int64_t>() << " units\n"
           << std::left << std::setw(7) << "unit" << std::setw(13) << "dL_remove" << std::setw(11) << "rel"
           << "out_norm\n";
      unit_header = true;
      os << std::left << std::setw(7) << r["unit"].get<int64_t>() << std::setw(13) << num(r, "delta_remove")
         << std::setw(11) << num(r, "rel_delta_remove") << num(r, "out_norm") << "\n";
    }
  }
  return os.str();
}

template std::vector<LayerSpec> ablated_specs<float>(const Sequential<float>&, size_t, size_t);
template std::vector<LayerSpec> ablated_specs<double>(const Sequential<double>&, size_t, size_t);

}  // namespace cn
