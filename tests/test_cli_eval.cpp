// `selfsup eval` and `selfsup embed` end to end: a tiny synthetic Fashion-MNIST-format dataset
// written here, a one-epoch SimCLR checkpoint trained in-process, then the built `selfsup`
// binary (next to this test in the build folder) run on it. Skips when the binary is not built.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "core/safetensors.h"
#include "ssl/train/trainer.h"
#include "tests/cli_test_util.h"

namespace selfsup {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kSide = 12;
constexpr int64_t kTrain = 120, kTest = 40;

void put_u32(std::ofstream& f, uint32_t v) {
  const char b[4] = {static_cast<char>(v >> 24), static_cast<char>(v >> 16),
                     static_cast<char>(v >> 8), static_cast<char>(v)};
  f.write(b, 4);
}

// Class k: a bright band on row k of a dark image, with a little per-image variation.
void write_idx_split(const fs::path& dir, const std::string& prefix, int64_t n) {
  std::ofstream images(dir / (prefix + "-images-idx3-ubyte"), std::ios::binary);
  std::ofstream labels(dir / (prefix + "-labels-idx1-ubyte"), std::ios::binary);
  put_u32(images, 0x00000803);
  put_u32(images, static_cast<uint32_t>(n));
  put_u32(images, kSide);
  put_u32(images, kSide);
  put_u32(labels, 0x00000801);
  put_u32(labels, static_cast<uint32_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const int64_t k = i % 10;
    for (int64_t y = 0; y < kSide; ++y)
      for (int64_t x = 0; x < kSide; ++x)
        images.put(static_cast<char>(y == k ? 200 + (i * 7 + x) % 50 : (i * 13 + x * y) % 40));
    labels.put(static_cast<char>(k));
  }
}

using test::CliResult;
using test::slurp;

class CliEval : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = fs::temp_directory_path() / ("selfsup_cli_eval_" + std::to_string(::getpid()));
    fs::create_directories(dir_ / "data");
    write_idx_split(dir_ / "data", "train", kTrain);
    write_idx_split(dir_ / "data", "t10k", kTest);
    ssl::TrainConfig c;
    c.method = "simclr";
    c.dataset = "fashion-mnist";
    c.data_dir = (dir_ / "data").string();
    c.out = (dir_ / "run").string();
    c.epochs = 1;
    c.batch_size = 32;
    c.num_workers = 0;
    c.warmup_epochs = 0;
    c.knn_train = 60;
    c.knn_test = 20;
    c.knn_k = 5;
    c.method_options.width = 0.125;
    c.method_options.proj_hidden = 32;
    c.method_options.proj_dim = 16;
    checkpoint_ = ssl::train(c).checkpoint;
  }
  static void TearDownTestSuite() {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  void SetUp() override {
    binary_ = test::selfsup_beside_test();
    if (!fs::exists(binary_)) GTEST_SKIP() << "the selfsup binary is not built at " << binary_;
  }

  CliResult selfsup(const std::string& args) { return test::run_cli(binary_, args, dir_); }

  static inline fs::path dir_;
  static inline std::string checkpoint_;
  fs::path binary_;
};

// Fails (and prints everything) unless the command succeeded.
void expect_ok(const CliResult& r) {
  EXPECT_EQ(r.status, 0) << "stdout: " << r.out << "\nstderr: " << r.err;
}

// A failure is one line on stderr that names the bad value, and a non-zero exit.
void expect_one_line_error(const CliResult& r, const std::string& fragment) {
  EXPECT_NE(r.status, 0);
  EXPECT_TRUE(r.out.empty()) << r.out;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find(fragment), std::string::npos) << r.err;
}

TEST_F(CliEval, LinearProbePrintsOneResultLine) {
  CliResult r = selfsup("eval --checkpoint " + checkpoint_ + " --protocol linear --epochs 20");
  expect_ok(r);
  std::smatch m;
  ASSERT_TRUE(std::regex_match(
      r.out, m, std::regex(R"(linear probe top-1: (\d+\.\d\d)% \(test 40 images, train 120\)\n)")))
      << r.out;
  EXPECT_GE(std::stod(m[1]), 50.0);  // ten bands on distinct rows: easy for any encoder
}

TEST_F(CliEval, KnnAndRandomInitBaseline) {
  CliResult r =
      selfsup("eval --checkpoint " + checkpoint_ +
              " --protocol knn --knn-k 5 --train-limit 100 --test-limit 30 --from-scratch");
  expect_ok(r);
  EXPECT_TRUE(std::regex_match(
      r.out, std::regex(R"(kNN top-1 \(k=5\): \d+\.\d\d% \(test 30 images, train 100\)
kNN top-1 \(k=5\), random-init encoder: \d+\.\d\d% \(test 30 images, train 100\)
)"))) << r.out;
}

TEST_F(CliEval, FinetuneWithFewLabelsAndFromScratch) {
  CliResult r = selfsup("eval --checkpoint " + checkpoint_ +
                        " --protocol finetune --labels 50% --epochs 1 --batch-size 20 --workers 0 "
                        "--from-scratch");
  expect_ok(r);
  EXPECT_TRUE(std::regex_match(
      r.out,
      std::regex(
          R"(fine-tune top-1 \(50% labels: 60 images, 1 epochs\): \d+\.\d\d% \(test 40 images\)
fine-tune top-1, from scratch \(50% labels: 60 images, 1 epochs\): \d+\.\d\d% \(test 40 images\)
)"))) << r.out;
}

TEST_F(CliEval, EmbedWritesFeaturesAndLabels) {
  const std::string file = (dir_ / "feats.safetensors").string();
  CliResult r =
      selfsup("embed --checkpoint " + checkpoint_ + " --split test --limit 25 --out " + file);
  expect_ok(r);
  EXPECT_NE(r.out.find("wrote 25 x 16 features of fashion-mnist/test"), std::string::npos) << r.out;
  SafetensorsFile f = load_safetensors(file);
  const Tensor* features = f.find("features");
  const Tensor* labels = f.find("labels");
  ASSERT_NE(features, nullptr);
  ASSERT_NE(labels, nullptr);
  EXPECT_EQ(features->shape(), (Shape{25, 16}));  // resnet-small at width 1/8: 128 / 8
  EXPECT_EQ(features->dtype(), kFloat32);
  EXPECT_EQ(labels->dtype(), kInt64);
  std::vector<int64_t> y = labels->to_vector<int64_t>();
  for (int64_t i = 0; i < 25; ++i)
    EXPECT_EQ(y[i], i % 10);
  EXPECT_EQ(f.metadata.at("split"), "test");
  EXPECT_EQ(f.metadata.at("dataset"), "fashion-mnist");
  EXPECT_EQ(f.metadata.at("method"), "simclr");
  EXPECT_EQ(f.metadata.at("model"), "resnet-small");
  EXPECT_EQ(f.metadata.at("checkpoint"), checkpoint_);
}

TEST_F(CliEval, BadInputIsOneLineNamingTheValue) {
  expect_one_line_error(selfsup("eval --checkpoint " + checkpoint_ + " --protocol svm"), "'svm'");
  expect_one_line_error(
      selfsup("eval --checkpoint " + checkpoint_ + " --protocol finetune --labels 150%"), "'150%'");
  expect_one_line_error(selfsup("eval --checkpoint " + checkpoint_ + " --labels ten"), "'ten'");
  const std::string missing = (dir_ / "nope.safetensors").string();
  expect_one_line_error(selfsup("eval --checkpoint " + missing), missing);
  expect_one_line_error(selfsup("eval --protocol knn"), "--checkpoint");
  expect_one_line_error(
      selfsup("embed --checkpoint " + checkpoint_ + " --split val --out x.safetensors"), "'val'");
  expect_one_line_error(selfsup("embed --checkpoint " + checkpoint_), "--out");
}

}  // namespace
}  // namespace selfsup
