// The report's eigenvalue spectra (docs/report.md "Spectra"): reading spectra/step_N.safetensors
// and drawing each block's spectrum without inventing mass. Internal to io/report*.cpp.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "io/report_svg.h"

namespace cn::report {

// One block (kind, layer) at one checkpoint, as the spectra file holds it.
struct BlockSpectrum {
  std::vector<double> eigenvalues;               // dense: `<kind>.<i>.eigenvalues`
  std::vector<double> ritz_nodes, ritz_weights;  // iterative: Gauss quadrature, per probe
  std::vector<double> ritz_probe_steps;          // nodes per probe
  double tau = -1;                               // `<kind>.<i>.tau`; < 0 = absent
  std::vector<double> grid, density;             // older runs: a smoothed density
};

// (kind, layer or -1) → step → block
using Spectra = std::map<std::pair<std::string, int>, std::map<int64_t, BlockSpectrum>>;

// Eigenvalue spectra and, into `singular`, singular values (`weights.<i>.singular_values`,
// `grads.<i>.singular_values`, in `eigenvalues`) of a run: its spectra/ directory and its
// packed series file (io/spectra_series.h). Unreadable files are named in `problems`.
Spectra read_spectra(const std::string& run_dir, Spectra* singular, std::vector<std::string>* problems);

// The spectrum as point masses (value, weight; weights sum to 1) and its shares about τ.
struct SpectrumMass {
  std::vector<std::pair<double, double>> atoms;
  double tau = 0;
  std::string tau_source;  // "spectra file" | "diagnostics.jsonl" | "max|λ|·n·ε"
  std::string source;      // "eigenvalues" | "ritz"
  size_t n = 0;            // eigenvalues, or Ritz nodes
  size_t probes = 0;       // ritz: probes that carried a standard error
  double zero_share = 0, negative_share = 0, positive_share = 0;
  double zero_share_se = -1, negative_share_se = -1;  // probe standard errors; < 0 = none
};

// The masses of a block (eigenvalues, else Ritz nodes and weights); false when it has neither.
// `diag_tau` (< 0 = none) is the diagnostics row's τ, used when the spectra file has none.
bool spectrum_mass(const BlockSpectrum& b, double diag_tau, SpectrumMass* out);

// The block's figure: the mass at |λ| ≤ τ as its own bar with its share, the rest on a
// log10|λ| axis, λ > τ above and λ < −τ below (that panel only when there is negative mass).
// `last` is drawn as bars, `first` (may be null) as an outline.
std::string spectrum_figure(const std::string& name, const std::string& title, const SpectrumMass& last,
                            int64_t last_step, const SpectrumMass* first, int64_t first_step);

// An older run's smoothed density (density_grid/density) at the last checkpoint, captioned as
// an estimate; "" when unusable.
std::string density_fallback_figure(const std::string& name, const std::string& title, const BlockSpectrum& b,
                                    int64_t step);

// A heat map of values over checkpoints on a shared symlog axis (singular values).
std::string values_heatmap(const std::string& name, const std::string& title,
                           const std::map<int64_t, BlockSpectrum>& steps, const std::string& what);

// The spectra section: one figure per block, with its caption against diagnostics.jsonl.
std::string section_spectra(const Spectra& spectra, const std::vector<std::string>& problems,
                            const std::vector<json>& diag_rows);

}  // namespace cn::report
