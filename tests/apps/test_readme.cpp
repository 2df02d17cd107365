// The README's recipes, run as written: the Python one rebuilds the test split from the raw
// Fashion-MNIST files and the run's data.safetensors and must reproduce eval.jsonl's test
// accuracy exactly.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "data/dataset.h"
#include "io/files.h"
#include "test_util.h"

using namespace cn;

namespace {

// The README's ```python block that mentions `needle`.
std::string readme_python_block(const std::string& needle) {
  std::ifstream in(std::string(CURVNET_SOURCE_DIR) + "/README.md");
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  for (size_t at = text.find("```python\n"); at != std::string::npos; at = text.find("```python\n", at + 1)) {
    const size_t begin = at + 10, end = text.find("```", begin);
    const std::string block = text.substr(begin, end - begin);
    if (block.find(needle) != std::string::npos) return block;
  }
  return "";
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size()))
    s.replace(at, from.size(), to);
  return s;
}

}  // namespace

TEST(Readme, PythonRecipeReproducesTheTestAccuracy) {
  if (!test::python_has("torch, safetensors, pandas"))
    GTEST_SKIP() << test::python_exe() << " lacks torch, safetensors or pandas";
  if (!std::filesystem::exists(std::string(kFashionMnistDir) + "/t10k-images-idx3-ubyte.gz"))
    GTEST_SKIP() << "Fashion-MNIST is not installed (" << kFashionMnistDir << ")";
  std::string script = readme_python_block("data.safetensors");
  ASSERT_FALSE(script.empty()) << "README.md has no Python recipe reading data.safetensors";

  test::TempDir tmp;
  const std::string run = tmp.file("run");
  std::string out;
  ASSERT_EQ(test::run_command(test::curvnet_exe() + " train " + CURVNET_SOURCE_DIR +
                                  "/examples/fashion_mnist.toml --device cpu --set train.steps=40 "
                                  "--set diagnostics.every=0 --out " +
                                  run,
                              &out),
            0)
      << out;
  // The recipe's own run directory and last checkpoint, swapped for this run's.
  script = std::regex_replace(script, std::regex("run = \"[^\"]*\""), "run = \"" + run + "\"");
  script = replace_all(script, "step_1266", "step_40");
  const std::string path = tmp.file("recipe.py");
  test::write_text(path, script);
  ASSERT_EQ(test::run_command(test::python_exe() + " " + path, &out), 0) << out;

  std::smatch m;
  ASSERT_TRUE(std::regex_search(out, m, std::regex("test accuracy ([0-9.eE+-]+) as in eval.jsonl: ([0-9.eE+-]+)")))
      << out;
  double eval_accuracy = -1;
  for (const auto& row : read_jsonl(run + "/eval.jsonl"))
    if (row.at("split") == "test") eval_accuracy = row.at("accuracy").get<double>();
  EXPECT_EQ(std::stod(m[1]), eval_accuracy) << out;
  EXPECT_EQ(std::stod(m[2]), eval_accuracy) << out;
}
