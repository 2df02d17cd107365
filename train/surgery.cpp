#include "train/surgery.h"

#include <algorithm>
#include <set>

#include "core/error.h"

namespace cn {

std::vector<int64_t> input_group(const std::vector<LayerSpec>& specs) {
  std::vector<int64_t> group(specs.size(), -1);
  int64_t producer = -1;
  for (size_t i = 0; i < specs.size(); ++i) {
    group[i] = producer;
    if (specs[i].type == LayerKind::linear) producer = static_cast<int64_t>(i);
  }
  return group;
}

namespace {

// Per unit group: the old index of each new unit (identity for groups not in the map).
struct GroupMaps {
  std::map<int64_t, std::vector<int64_t>> of;  // key: producing Linear (-1: the input)
  const std::vector<int64_t>* get(int64_t g) const {
    const auto it = of.find(g);
    return it == of.end() ? nullptr : &it->second;
  }
};

int64_t mapped(const std::vector<int64_t>* m, int64_t j) { return m ? (*m)[j] : j; }

}  // namespace

Relayout plan_relayout(const std::vector<LayerSpec>& specs, int64_t n_inputs, const UnitMap& map) {
  int64_t last_linear = -1;
  for (size_t i = 0; i < specs.size(); ++i)
    if (specs[i].type == LayerKind::linear) last_linear = static_cast<int64_t>(i);
  Relayout r;
  r.specs = specs;
  GroupMaps groups;
  for (const auto& [layer, units] : map) {
    if (layer < 0 || layer >= static_cast<int64_t>(specs.size()) || specs[layer].type != LayerKind::linear ||
        layer == last_linear)
      throw InputError("re-layout: layer " + std::to_string(layer) +
                       " is not a hidden linear layer (the last linear layer's outputs are the task's)");
    if (units.empty()) throw InputError("re-layout: layer " + std::to_string(layer) + " would keep no unit");
    std::set<int64_t> seen;
    for (int64_t u : units) {
      if (u < -1 || u >= specs[layer].out)
        throw InputError("re-layout: layer " + std::to_string(layer) + ": unit " + std::to_string(u) +
                         " is outside [0, " + std::to_string(specs[layer].out) + ")");
      if (u >= 0 && !seen.insert(u).second)
        throw InputError("re-layout: layer " + std::to_string(layer) + ": unit " + std::to_string(u) + " repeated");
    }
    r.specs[layer].out = static_cast<int64_t>(units.size());
    groups.of[layer] = units;
  }
  // Old and new layouts: the same walk as Sequential's constructor over each stack.
  const std::vector<int64_t> in_group = input_group(specs);
  int64_t old_off = 0, new_off = 0, width_old = n_inputs, width_new = n_inputs;
  for (size_t i = 0; i < specs.size(); ++i) {
    const int64_t g = in_group[i];
    const std::vector<int64_t>* in_map = groups.get(g);
    if (specs[i].type == LayerKind::linear) {
      const int64_t self = static_cast<int64_t>(i);
      const std::vector<int64_t>* out_map = groups.get(self);
      const int64_t Oo = specs[i].out, On = r.specs[i].out, Io = width_old, In = width_new;
      for (int64_t o = 0; o < On; ++o) {
        const int64_t so = mapped(out_map, o);
        for (int64_t c = 0; c < In; ++c) {
          const int64_t sc = mapped(in_map, c);
          r.source.push_back(so < 0 || sc < 0 ? -1 : old_off + so * Io + sc);
          r.fill.push_back(0);
        }
      }
      for (int64_t o = 0; o < On; ++o) {
        const int64_t so = mapped(out_map, o);
        r.source.push_back(so < 0 ? -1 : old_off + Oo * Io + so);
        r.fill.push_back(0);
      }
      old_off += Oo * Io + Oo;
      new_off += On * In + On;
      width_old = Oo;
      width_new = On;
    } else if (specs[i].type == LayerKind::batchnorm) {
      std::vector<int64_t> feats(static_cast<size_t>(width_new));
      for (int64_t f = 0; f < width_new; ++f) feats[f] = mapped(in_map, f);
      for (int part = 0; part < 2; ++part)  // weight (new: 1), bias (new: 0)
        for (int64_t f = 0; f < width_new; ++f) {
          r.source.push_back(feats[f] < 0 ? -1 : old_off + part * width_old + feats[f]);
          r.fill.push_back(part == 0 ? 1 : 0);
        }
      old_off += 2 * width_old;
      new_off += 2 * width_new;
      r.features[static_cast<int64_t>(i)] = feats;
    }
  }
  r.old_total = old_off;
  r.new_total = new_off;
  return r;
}

HostModel relayout(const HostModel& m, const UnitMap& map) {
  const Relayout r = plan_relayout(m.specs, m.n_inputs, map);
  CN_CHECK_MSG(static_cast<int64_t>(m.params.size()) == r.old_total,
               "re-layout: " << m.params.size() << " parameters, the stack has " << r.old_total);
  auto gather = [&](const std::vector<double>& old, bool fill_ones) {
    std::vector<double> out(static_cast<size_t>(r.new_total));
    for (int64_t j = 0; j < r.new_total; ++j)
      out[j] = r.source[j] >= 0 ? old[r.source[j]] : (fill_ones && r.fill[j] ? 1.0 : 0.0);
    return out;
  };
  HostModel n;
  n.specs = r.specs;
  n.n_inputs = m.n_inputs;
  n.params = gather(m.params, true);
  for (const auto& [name, buf] : m.optim)
    n.optim.emplace_back(name, static_cast<int64_t>(buf.size()) == r.old_total ? gather(buf, false) : buf);
  if (!m.mask.empty()) {
    n.mask = gather(m.mask, false);
    for (int64_t j = 0; j < r.new_total; ++j)
      if (r.source[j] < 0) n.mask[j] = 1.0;  // a new unit's parameters are free
  }
  for (const auto& [name, buf] : m.buffers) {
    const size_t dot = name.find('.');
    const int64_t layer = std::stoll(name.substr(0, dot));
    const std::string what = name.substr(dot + 1);
    const auto it = r.features.find(layer);
    if (it == r.features.end() || what == "num_batches_tracked") {
      n.buffers[name] = buf;
      continue;
    }
    std::vector<double> out(it->second.size());
    for (size_t f = 0; f < out.size(); ++f)
      out[f] = it->second[f] >= 0 ? buf[it->second[f]] : (what == "running_var" ? 1.0 : 0.0);
    n.buffers[name] = out;
  }
  return n;
}

Config config_with_specs(const Config& config, const std::vector<LayerSpec>& specs) {
  Config c = config;
  if (!c.model.layers.empty()) {
    for (size_t i = 0; i < specs.size(); ++i) c.model.layers[i].out = specs[i].out;
    return c;
  }
  std::vector<int64_t> linear_outs;
  for (const LayerSpec& s : specs)
    if (s.type == LayerKind::linear) linear_outs.push_back(s.out);
  linear_outs.pop_back();  // the head's width is the task's
  CN_CHECK(linear_outs.size() == c.model.hidden.size());
  c.model.hidden = linear_outs;
  return c;
}

template <class T>
HostModel read_host_model(Engine<T>& e) {
  HostModel m;
  m.specs = e.model->specs();
  m.n_inputs = e.model->n_inputs();
  const ModelSnapshot snap = e.snapshot();
  m.params = snap.params;
  m.buffers = snap.buffers;
  for (auto& [name, buf] : e.optimizer->state())
    m.optim.emplace_back(name, std::vector<double>(buf->begin(), buf->end()));
  m.mask = e.st.param_mask;
  return m;
}

template <class T>
void write_host_model(Engine<T>& e, const HostModel& m) {
  Sequential<T>& net = *e.model;
  CN_CHECK_MSG(static_cast<int64_t>(m.params.size()) == net.layout().total,
               "write_host_model: " << m.params.size() << " values for " << net.layout().total << " parameters");
  const std::vector<T> p(m.params.begin(), m.params.end());
  device_copy(net.device(), net.params().data(), Device::cpu, p.data(), p.size() * sizeof(T));
  for (size_t i = 0; i < net.size(); ++i)
    for (const StateView<T>& s : net.layer(i).state()) {
      const auto it = m.buffers.find(std::to_string(i) + "." + s.name);
      CN_CHECK_MSG(it != m.buffers.end() && static_cast<int64_t>(it->second.size()) == s.size,
                   "write_host_model: buffer " << i << "." << s.name);
      const std::vector<T> v(it->second.begin(), it->second.end());
      device_copy(s.device, s.data, Device::cpu, v.data(), v.size() * sizeof(T));
    }
  auto state = e.optimizer->state();
  CN_CHECK(state.size() == m.optim.size());
  for (size_t k = 0; k < state.size(); ++k) {
    CN_CHECK(state[k].first == m.optim[k].first && state[k].second->size() == m.optim[k].second.size());
    std::copy(m.optim[k].second.begin(), m.optim[k].second.end(), state[k].second->begin());
  }
  e.set_param_mask(m.mask);
}

template HostModel read_host_model<float>(Engine<float>&);
template HostModel read_host_model<double>(Engine<double>&);
template void write_host_model<float>(Engine<float>&, const HostModel&);
template void write_host_model<double>(Engine<double>&, const HostModel&);

}  // namespace cn
