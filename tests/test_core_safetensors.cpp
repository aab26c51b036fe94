// core/safetensors and core/atomic_file: round trips, the exact bytes of the format, refusal of
// corrupt files with one-line messages, atomic replacement, and a cross-check against the
// Python `safetensors` package in both directions (skipped when it is not installed).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/random.h"
#include "core/safetensors.h"
#include "core/views.h"

using namespace selfsup;
namespace fs = std::filesystem;

namespace {

// ---- files ----

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string u64_le(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i)
    s[i] = static_cast<char>(v >> (8 * i));
  return s;
}

// A safetensors file built by hand: length prefix, header text, data bytes.
std::string file_bytes(const std::string& header, const std::string& data) {
  return u64_le(header.size()) + header + data;
}

template <typename T>
std::string raw_bytes(const std::vector<T>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

std::vector<std::string> folder_listing(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir))
    names.push_back(entry.path().filename());
  std::sort(names.begin(), names.end());
  return names;
}

// Each test gets a fresh folder of its own.
class TempFolder : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::path(::testing::TempDir()) / ("selfsup_safetensors_" + std::to_string(::getpid()) +
                                             "_" + info->test_suite_name() + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  fs::path dir_;
};

// ---- tensors ----

// Same dtype, shape and bits (so NaN payloads, -0 and denormals must survive too).
void expect_bitwise_equal(const Tensor& got, const Tensor& want, const std::string& name) {
  ASSERT_TRUE(got.defined()) << name;
  ASSERT_EQ(got.dtype(), want.dtype()) << name;
  ASSERT_EQ(got.shape(), want.shape()) << name;
  dispatch_dtype(want.dtype(), [&](auto tag) {
    using T = decltype(tag);
    std::vector<T> g = got.to_vector<T>(), w = want.to_vector<T>();
    EXPECT_EQ(0, std::memcmp(g.data(), w.data(), g.size() * sizeof(T))) << name;
  });
}

std::vector<float> awkward_floats() {
  const float inf = std::numeric_limits<float>::infinity();
  return {std::numeric_limits<float>::quiet_NaN(),
          inf,
          -inf,
          -0.0f,
          std::numeric_limits<float>::denorm_min(),
          std::numeric_limits<float>::max(),
          std::numeric_limits<float>::lowest(),
          1.0f / 3.0f};
}

// A mix of every dtype, odd sizes, special values and views, used by several tests.
NamedTensors sample_tensors() {
  Generator gen(1234);
  Tensor features = randn({7, 13}, kFloat32, &gen);
  std::vector<float> special = awkward_floats();
  std::copy(special.begin(), special.end(), features.data_ptr<float>());
  Tensor big = randn({3, 9, 2}, kFloat64, &gen);
  Tensor labels = randint(-1000, 1000, {11}, kInt64, &gen);
  labels.data_ptr<int64_t>()[0] = std::numeric_limits<int64_t>::min();
  labels.data_ptr<int64_t>()[10] = std::numeric_limits<int64_t>::max();
  return {{"features_t", raw::transpose(features, 0, 1)},  // non-contiguous [13, 7]
          {"weights", raw::slice(big, 1, 1, 9, 3)},        // stepped view [3, 3, 2]
          {"labels", labels},
          {"mask", randint(0, 256, {5, 3}, kUInt8, &gen)},
          {"scalar", scalar_tensor(-2.5, kFloat32)},  // 0-d
          {"nothing", zeros({0, 4}, kFloat64)},       // empty
          {"bias", full({1}, 0.125, kFloat64)}};
}

// ---- messages ----

// The load must throw one line naming the file and containing every fragment.
void expect_load_error(const std::string& path, const std::vector<std::string>& fragments) {
  try {
    load_safetensors(path);
    ADD_FAILURE() << "loaded without error; expected: " << fragments.front();
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    EXPECT_NE(msg.find("load_safetensors: " + path + ": "), std::string::npos) << msg;
    for (const std::string& f : fragments)
      EXPECT_NE(msg.find(f), std::string::npos) << msg;
  }
}

void expect_save_error(const std::string& path, const NamedTensors& tensors,
                       const std::string& fragment) {
  try {
    save_safetensors(path, tensors);
    ADD_FAILURE() << "saved without error; expected: " << fragment;
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_EQ(msg.rfind("save_safetensors: ", 0), 0u) << msg;
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    EXPECT_NE(msg.find(fragment), std::string::npos) << msg;
  }
}

}  // namespace

// ============================================================================================
// round trips
// ============================================================================================

class SafetensorsRoundTrip : public TempFolder {};

TEST_F(SafetensorsRoundTrip, EveryDTypeShapeAndViewComesBackBitForBit) {
  NamedTensors tensors = sample_tensors();
  save_safetensors(path("a.safetensors"), tensors);
  SafetensorsFile loaded = load_safetensors(path("a.safetensors"));
  ASSERT_EQ(loaded.tensors.size(), tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    EXPECT_EQ(loaded.tensors[i].first, tensors[i].first) << "written order is file order";
    expect_bitwise_equal(loaded.tensors[i].second, tensors[i].second, tensors[i].first);
    EXPECT_TRUE(loaded.tensors[i].second.is_contiguous());
  }
  EXPECT_TRUE(loaded.metadata.empty());
  EXPECT_EQ(loaded.find("scalar")->dim(), 0);
  EXPECT_EQ(loaded.find("nothing")->shape(), (Shape{0, 4}));
  EXPECT_EQ(loaded.find("missing"), nullptr);
}

TEST_F(SafetensorsRoundTrip, NonContiguousViewsAreWrittenInRowMajorOrder) {
  // Checked against a hand loop over the source values, not against our own copy code.
  std::vector<double> v(5 * 8);
  for (size_t i = 0; i < v.size(); ++i)
    v[i] = 0.5 * static_cast<double>(i) - 3.0;
  Tensor a = from_vector(v, {5, 8});
  Tensor t = raw::transpose(a, 0, 1);                        // [8, 5]: t[i][j] = v[j * 8 + i]
  Tensor n = raw::narrow(raw::narrow(a, 1, 2, 5), 0, 1, 3);  // [3, 5]: v[(i + 1) * 8 + j + 2]
  Tensor e = raw::expand(from_vector<double>({7, -1}, {2, 1}), {2, 3});  // stride-0 dim
  ASSERT_FALSE(t.is_contiguous());
  ASSERT_FALSE(n.is_contiguous());
  save_safetensors(path("v.safetensors"), {{"t", t}, {"n", n}, {"e", e}});
  SafetensorsFile f = load_safetensors(path("v.safetensors"));
  std::vector<double> want_t, want_n;
  for (int i = 0; i < 8; ++i)
    for (int j = 0; j < 5; ++j)
      want_t.push_back(v[j * 8 + i]);
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 5; ++j)
      want_n.push_back(v[(i + 1) * 8 + j + 2]);
  const double* pt = f.find("t")->data_ptr<double>();
  const double* pn = f.find("n")->data_ptr<double>();
  const double* pe = f.find("e")->data_ptr<double>();
  EXPECT_EQ(std::vector<double>(pt, pt + 40), want_t);
  EXPECT_EQ(std::vector<double>(pn, pn + 15), want_n);
  EXPECT_EQ(std::vector<double>(pe, pe + 6), (std::vector<double>{7, 7, 7, -1, -1, -1}));
}

TEST_F(SafetensorsRoundTrip, MetadataComesBack) {
  std::map<std::string, std::string> meta = {
      {"epoch", "17"},
      {"method", "simclr"},
      {"empty", ""},
      {"quotes \" and\nnewline", "caf\xc3\xa9 \xe2\x9c\x93"}};
  save_safetensors(path("m.safetensors"), {{"x", ones({2}, kFloat32)}}, meta);
  EXPECT_EQ(load_safetensors(path("m.safetensors")).metadata, meta);
  // Metadata alone, with no tensors, is a valid file too.
  save_safetensors(path("only.safetensors"), {}, meta);
  SafetensorsFile only = load_safetensors(path("only.safetensors"));
  EXPECT_TRUE(only.tensors.empty());
  EXPECT_EQ(only.metadata, meta);
}

TEST_F(SafetensorsRoundTrip, HeaderIsPaddedSoDataStartsOnEightBytes) {
  // Names of every length 1..9 shift the header length through all residues mod 8.
  size_t most_spaces = 0;
  for (int len = 1; len <= 9; ++len) {
    std::string p = path("pad" + std::to_string(len) + ".safetensors");
    save_safetensors(p, {{std::string(len, 'n'), full({3}, 1.5, kFloat64)}});
    std::string bytes = read_bytes(p);
    uint64_t header_size = 0;
    for (int i = 7; i >= 0; --i)
      header_size = (header_size << 8) | static_cast<unsigned char>(bytes[i]);
    EXPECT_EQ(header_size % 8, 0u) << "name length " << len;
    ASSERT_EQ(bytes.size(), 8 + header_size + 24);
    std::string header = bytes.substr(8, header_size);
    size_t json_end = header.find_last_not_of(' ') + 1;
    EXPECT_EQ(header[json_end - 1], '}');
    EXPECT_LT(header.size() - json_end, 8u) << "at most 7 spaces of padding";
    most_spaces = std::max(most_spaces, header.size() - json_end);
    expect_bitwise_equal(*load_safetensors(p).find(std::string(len, 'n')), full({3}, 1.5, kFloat64),
                         p);
  }
  EXPECT_EQ(most_spaces, 7u) << "some name length needs the full 7 spaces";
}

// ============================================================================================
// the exact bytes
// ============================================================================================

class SafetensorsFormat : public TempFolder {};

TEST_F(SafetensorsFormat, TinyFileMatchesHandWrittenBytes) {
  save_safetensors(path("tiny.safetensors"),
                   {{"w", from_vector<float>({1.0f, -2.0f}, {2})}, {"b", scalar_tensor(7, kUInt8)}},
                   {{"k", "v"}});
  std::string header = R"({"__metadata__":{"k":"v"},)"
                       R"("w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                       R"("b":{"dtype":"U8","shape":[],"data_offsets":[8,9]}})"
                       "      ";  // 130 bytes of JSON + 6 spaces = 136
  std::string expected = std::string("\x88\0\0\0\0\0\0\0", 8) + header +
                         std::string(
                             "\x00\x00\x80\x3f"
                             "\x00\x00\x00\xc0"
                             "\x07",
                             9);
  EXPECT_EQ(read_bytes(path("tiny.safetensors")), expected);
}

TEST_F(SafetensorsFormat, ReadsHalfAndBFloat16AsFloat32) {
  // Half: 1, -2, 65504 (max), 2^-24 (min subnormal), 1023 * 2^-24 (max subnormal), -0, +inf, NaN
  std::vector<uint16_t> half = {0x3C00, 0xC000, 0x7BFF, 0x0001, 0x03FF, 0x8000, 0x7C00, 0x7E00};
  // BFloat16: the top halves of 1.0f, -3.0f, 1.0e-40f-ish subnormal, -inf
  std::vector<uint16_t> bf16 = {0x3F80, 0xC040, 0x0001, 0xFF80};
  std::string header = R"({"h":{"dtype":"F16","shape":[2,4],"data_offsets":[0,16]},)"
                       R"("b":{"dtype":"BF16","shape":[4],"data_offsets":[16,24]}})";
  write_bytes(path("half.safetensors"), file_bytes(header, raw_bytes(half) + raw_bytes(bf16)));
  SafetensorsFile f = load_safetensors(path("half.safetensors"));
  const float inf = std::numeric_limits<float>::infinity();
  ASSERT_EQ(f.find("h")->dtype(), kFloat32);
  ASSERT_EQ(f.find("h")->shape(), (Shape{2, 4}));
  std::vector<float> h = f.find("h")->to_vector<float>();
  std::vector<float> want = {
      1.0f, -2.0f, 65504.0f, std::ldexp(1.0f, -24), std::ldexp(1023.0f, -24), -0.0f, inf};
  for (size_t i = 0; i < want.size(); ++i)
    EXPECT_EQ(h[i], want[i]) << i;
  EXPECT_TRUE(std::signbit(h[5]));
  EXPECT_TRUE(std::isnan(h[7]));
  std::vector<float> b = f.find("b")->to_vector<float>();
  EXPECT_EQ(b[0], 1.0f);
  EXPECT_EQ(b[1], -3.0f);
  EXPECT_EQ(b[2], std::ldexp(1.0f, -133));  // bits 0x00010000: the 2^-133 subnormal
  EXPECT_EQ(b[3], -inf);
}

TEST_F(SafetensorsFormat, TensorsComeBackInDataOrderWhateverTheHeaderOrder) {
  std::string header = R"({"second":{"dtype":"U8","shape":[2],"data_offsets":[2,4]},)"
                       R"("__metadata__":{"a":"b"},)"
                       R"("first":{"dtype":"U8","shape":[1,2],"data_offsets":[0,2]}})";
  write_bytes(path("order.safetensors"), file_bytes(header, "\x01\x02\x03\x04"));
  SafetensorsFile f = load_safetensors(path("order.safetensors"));
  ASSERT_EQ(f.tensors.size(), 2u);
  EXPECT_EQ(f.tensors[0].first, "first");
  EXPECT_EQ(f.tensors[1].first, "second");
  EXPECT_EQ(f.tensors[0].second.to_vector<uint8_t>(), (std::vector<uint8_t>{1, 2}));
  EXPECT_EQ(f.tensors[1].second.to_vector<uint8_t>(), (std::vector<uint8_t>{3, 4}));
  EXPECT_EQ(f.metadata.at("a"), "b");
}

// ============================================================================================
// corrupt files
// ============================================================================================

class SafetensorsCorrupt : public TempFolder {
 protected:
  // Writes header + data by hand and checks the load is refused with these fragments.
  void expect_refused(const std::string& header, const std::string& data,
                      const std::vector<std::string>& fragments) {
    std::string p = path("bad.safetensors");
    write_bytes(p, file_bytes(header, data));
    expect_load_error(p, fragments);
  }
  static std::string one(const std::string& entry) { return R"({"t":)" + entry + "}"; }
};

TEST_F(SafetensorsCorrupt, FileShorterThanTheLengthField) {
  write_bytes(path("short.safetensors"), std::string("\x10\0\0", 3));
  expect_load_error(path("short.safetensors"), {"file is 3 bytes, shorter than the 8-byte"});
  expect_load_error(path("absent.safetensors"), {"cannot open"});
  expect_load_error(dir_.string(), {"not a regular file"});
}

TEST_F(SafetensorsCorrupt, HeaderLengthPastTheEndOrAbsurd) {
  write_bytes(path("a.safetensors"), u64_le(100) + "{}");
  expect_load_error(path("a.safetensors"),
                    {"header length 100 runs past the end of the file (10 bytes)"});
  write_bytes(path("b.safetensors"), u64_le(~0ull) + "{}");
  expect_load_error(path("b.safetensors"), {"header length 18446744073709551615 is over the"});
}

TEST_F(SafetensorsCorrupt, HeaderNotJsonOrNotAnObject) {
  expect_refused(R"({"t": {"dtype": "F32",)", "",
                 {"header is not valid JSON (parse error at byte"});
  expect_refused("\n{\"a\"\n: oops}", "", {"not valid JSON"});
  expect_refused("{\"\xff\": {}}", "", {"not valid JSON"});  // not UTF-8
  expect_refused("[1, 2]", "", {"header is not a JSON object"});
  expect_refused(R"({"t": [1]})", "", {"tensor \"t\": entry is not a JSON object"});
}

TEST_F(SafetensorsCorrupt, UnknownOrMissingDType) {
  expect_refused(one(R"({"dtype":"I32","shape":[1],"data_offsets":[0,4]})"), "abcd",
                 {"tensor \"t\": dtype \"I32\" is not supported"});
  expect_refused(one(R"({"dtype":"F8_E4M3","shape":[1],"data_offsets":[0,1]})"), "a",
                 {"dtype \"F8_E4M3\" is not supported"});
  expect_refused(one(R"({"dtype":32,"shape":[1],"data_offsets":[0,4]})"), "abcd",
                 {"dtype is not a string"});
  expect_refused(one(R"({"shape":[1],"data_offsets":[0,4]})"), "abcd",
                 {"tensor \"t\": missing \"dtype\""});
}

TEST_F(SafetensorsCorrupt, BadShape) {
  const std::string tail = R"(,"data_offsets":[0,4]})";
  expect_refused(one(R"({"dtype":"F32","shape":[-1])" + tail), "abcd",
                 {"tensor \"t\": shape [-1] is not a list of non-negative integers"});
  expect_refused(one(R"({"dtype":"F32","shape":[1.0])" + tail), "abcd", {"non-negative integers"});
  expect_refused(one(R"({"dtype":"F32","shape":["1"])" + tail), "abcd", {"non-negative integers"});
  expect_refused(one(R"({"dtype":"F32","shape":[9223372036854775808])" + tail), "abcd",
                 {"non-negative integers"});
  expect_refused(one(R"({"dtype":"F32","shape":4)" + tail), "abcd", {"shape is not a list"});
  expect_refused(one(R"({"dtype":"F32","shape":[4294967296,4294967296])" + tail), "abcd",
                 {"has too many elements"});
  // A zero size does not hide an overflowing extent (the strides would overflow).
  expect_refused(one(R"({"dtype":"F32","shape":[0,4294967296,4294967296])" + tail), "abcd",
                 {"has too many elements"});
  expect_refused(one(R"({"dtype":"F32","data_offsets":[0,4]})"), "abcd", {"missing \"shape\""});
}

TEST_F(SafetensorsCorrupt, WrongSizeOrMalformedOffsets) {
  expect_refused(one(R"({"dtype":"F32","shape":[2],"data_offsets":[0,4]})"), "abcd",
                 {"tensor \"t\": data_offsets [0,4] hold 4 bytes, but F32 [2] needs 8"});
  expect_refused(one(R"({"dtype":"I64","shape":[2305843009213693952],"data_offsets":[0,8]})"),
                 "abcdefgh", {"hold 8 bytes, but I64"});  // numel * 8 overflows uint64
  expect_refused(one(R"({"dtype":"U8","shape":[1],"data_offsets":[1,0]})"), "ab",
                 {"data_offsets [1,0] ends before it begins"});
  expect_refused(one(R"({"dtype":"U8","shape":[1],"data_offsets":[0]})"), "ab",
                 {"data_offsets [0] is not [begin, end]"});
  expect_refused(one(R"({"dtype":"U8","shape":[1],"data_offsets":[-1,0]})"), "ab",
                 {"is not [begin, end]"});
  expect_refused(one(R"({"dtype":"U8","shape":[1]})"), "ab", {"missing \"data_offsets\""});
}

TEST_F(SafetensorsCorrupt, TruncatedData) {
  save_safetensors(path("good.safetensors"), {{"w", randn({3, 5}, kFloat32)}});
  std::string bytes = read_bytes(path("good.safetensors"));
  write_bytes(path("bad.safetensors"), bytes.substr(0, bytes.size() - 1));
  expect_load_error(path("bad.safetensors"),
                    {"tensor \"w\": data_offsets [0,60] run past the end of the data section (59 "
                     "bytes): the file is truncated"});
}

TEST_F(SafetensorsCorrupt, OverlappingOffsets) {
  expect_refused(R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},)"
                 R"("b":{"dtype":"U8","shape":[2],"data_offsets":[3,5]}})",
                 "abcdef",
                 {"tensor \"b\": data_offsets [3, 5] overlap those of tensor \"a\" [0, 4]"});
  // Contained inside a longer range, listed first in the header.
  expect_refused(R"({"in":{"dtype":"U8","shape":[1],"data_offsets":[2,3]},)"
                 R"("out":{"dtype":"U8","shape":[6],"data_offsets":[0,6]}})",
                 "abcdef", {"tensor \"in\"", "overlap those of tensor \"out\""});
}

TEST_F(SafetensorsCorrupt, DuplicateNamesAndBadMetadata) {
  expect_refused(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                 R"("a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}})",
                 "ab", {"key \"a\" appears twice in the header"});
  expect_refused(R"({"__metadata__":{"epoch":3}})", "",
                 {"__metadata__ value of \"epoch\" is not a string"});
  expect_refused(R"({"__metadata__":["x"]})", "", {"__metadata__ is not a JSON object"});
}

TEST_F(SafetensorsCorrupt, NamesInMessagesStayOnOneLine) {
  expect_refused(one(R"({"dtype":"Q4","shape":[1],"data_offsets":[0,1]})").replace(2, 1, "a\\nb"),
                 "x", {"tensor \"a\\nb\": dtype \"Q4\""});
}

TEST_F(SafetensorsCorrupt, EveryTruncationAndEveryByteFlipIsRefusedOrLoadedNeverACrash) {
  save_safetensors(path("good.safetensors"),
                   {{"a", randn({3, 2}, kFloat32)}, {"b", arange(5, kInt64)}}, {{"k", "v"}});
  std::string good = read_bytes(path("good.safetensors"));
  std::string p = path("mut.safetensors");
  for (size_t len = 0; len < good.size(); ++len) {
    write_bytes(p, good.substr(0, len));
    EXPECT_THROW(load_safetensors(p), Error) << "truncated to " << len << " bytes";
  }
  int refused = 0;
  for (size_t i = 0; i < good.size(); ++i) {
    std::string bad = good;
    bad[i] = static_cast<char>(bad[i] ^ 0x5a);
    write_bytes(p, bad);
    try {
      load_safetensors(p);
    } catch (const Error&) {
      ++refused;
    }
  }
  EXPECT_GT(refused, 0);
}

// ============================================================================================
// saving: refusals and atomicity
// ============================================================================================

class SafetensorsSave : public TempFolder {};

TEST_F(SafetensorsSave, RefusesBadInputBeforeTouchingTheFile) {
  std::string p = path("keep.safetensors");
  save_safetensors(p, {{"old", ones({2}, kFloat32)}});
  std::string before = read_bytes(p);
  expect_save_error(p, {{"x", ones({1})}, {"x", zeros({1})}}, "tensor \"x\" given twice");
  expect_save_error(p, {{"__metadata__", ones({1})}}, "\"__metadata__\" is reserved");
  expect_save_error(p, {{"u", Tensor()}}, "tensor \"u\" is undefined");
  expect_save_error(p, {{"bad\xff", ones({1})}}, "is not UTF-8");
  EXPECT_THROW(save_safetensors(p, {{"x", ones({1})}}, {{"k", "\xc3"}}), Error);
  EXPECT_EQ(read_bytes(p), before);
  EXPECT_EQ(folder_listing(dir_), (std::vector<std::string>{"keep.safetensors"}));
}

TEST_F(SafetensorsSave, OverwriteReplacesTheFileAndLeavesNoTempFile) {
  std::string p = path("ckpt.safetensors");
  save_safetensors(p, {{"step", full({1}, 1, kInt64)}, {"big", randn({50, 7}, kFloat32)}});
  save_safetensors(p, {{"step", full({1}, 2, kInt64)}});
  SafetensorsFile f = load_safetensors(p);
  ASSERT_EQ(f.tensors.size(), 1u);
  EXPECT_EQ(f.find("step")->item<int64_t>(), 2);
  EXPECT_EQ(folder_listing(dir_), (std::vector<std::string>{"ckpt.safetensors"}));
}

TEST_F(SafetensorsSave, FailedWriteThrowsAndKeepsTheOldFile) {
  std::string p = path("ckpt.safetensors");
  save_safetensors(p, {{"w", full({4}, 3.0, kFloat64)}});
  std::string before = read_bytes(p);
  // A folder that does not exist: the temp file cannot even be created.
  expect_save_error(path("no/such/dir/ckpt.safetensors"), {{"w", ones({1})}},
                    "No such file or directory");
  // The target is a folder: everything is written, then the rename fails.
  fs::create_directory(path("is_a_dir"));
  expect_save_error(path("is_a_dir"), {{"w", ones({1})}}, "cannot rename");
  EXPECT_TRUE(fs::is_directory(path("is_a_dir")));
  EXPECT_EQ(read_bytes(p), before);
  EXPECT_EQ(folder_listing(dir_), (std::vector<std::string>{"ckpt.safetensors", "is_a_dir"}));
}

class AtomicFileTest : public TempFolder {};

TEST_F(AtomicFileTest, AbandonedWriteRemovesTheTempFileAndKeepsTheOld) {
  std::string p = path("data.bin");
  write_bytes(p, "old");
  {
    AtomicFile out(p);
    out.write("new bytes", 9);
    EXPECT_TRUE(fs::exists(out.temp_path()));
    EXPECT_EQ(fs::path(out.temp_path()).parent_path(), dir_) << "temp file in the same folder";
  }  // destroyed without commit, as when an exception unwinds past it
  EXPECT_EQ(read_bytes(p), "old");
  EXPECT_EQ(folder_listing(dir_), (std::vector<std::string>{"data.bin"}));
}

TEST_F(AtomicFileTest, CommitReplacesAndRefusesReuse) {
  std::string p = path("data.bin");
  write_bytes(p, "old");
  AtomicFile out(p);
  out.write("new", 3);
  out.write("", 0);
  out.commit();
  EXPECT_EQ(read_bytes(p), "new");
  EXPECT_EQ(folder_listing(dir_), (std::vector<std::string>{"data.bin"}));
  EXPECT_THROW(out.write("x", 1), Error);
  EXPECT_THROW(out.commit(), Error);
}

TEST_F(AtomicFileTest, TwoWritersAtOnceUseDifferentTempFiles) {
  std::string p = path("data.bin");
  AtomicFile a(p), b(p);
  EXPECT_NE(a.temp_path(), b.temp_path());
  a.write("a", 1);
  b.write("b", 1);
  a.commit();
  b.commit();
  EXPECT_EQ(read_bytes(p), "b");  // the last commit wins, whole
}

// ============================================================================================
// cross-check with the Python safetensors package
// ============================================================================================

namespace {

std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s)
    q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// tests/safetensors_check.py: found through SELFSUP_SOURCE_DIR (CTest sets it), else next to
// this source file.
std::string check_script() {
  if (const char* dir = std::getenv("SELFSUP_SOURCE_DIR"))
    return (fs::path(dir) / "tests" / "safetensors_check.py").string();
  return (fs::path(__FILE__).parent_path() / "safetensors_check.py").string();
}

// Why the Python check cannot run here, or "" when it can.
std::string python_unavailable_reason() {
  if (!fs::exists(check_script())) return "check script not found at " + check_script();
  if (std::system("python3 --version > /dev/null 2>&1") != 0) return "python3 not found";
  if (std::system("python3 -c 'import safetensors, numpy' > /dev/null 2>&1") != 0)
    return "python3 lacks the safetensors or numpy package (pip install safetensors numpy)";
  return "";
}

// Runs the script with these arguments; returns its exit status and fills `output`.
int run_check_script(const std::string& args, const std::string& log, std::string& output) {
  std::string cmd =
      "python3 " + shell_quote(check_script()) + " " + args + " > " + shell_quote(log) + " 2>&1";
  int status = std::system(cmd.c_str());
  output = read_bytes(log);
  return status;
}

// NaN and infinities as strings: JSON has no literal for them.
nlohmann::json value_json(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  return v;
}

// The description safetensors_check.py compares the file against.
nlohmann::json describe(const NamedTensors& tensors,
                        const std::map<std::string, std::string>& metadata) {
  nlohmann::json d = {{"tensors", nlohmann::json::object()}, {"metadata", metadata}};
  for (const auto& [name, t] : tensors) {
    nlohmann::json values = nlohmann::json::array();
    if (t.dtype() == kInt64)
      for (int64_t v : t.to_vector<int64_t>())
        values.push_back(v);
    else
      for (double v : t.to_vector<double>())
        values.push_back(value_json(v));
    d["tensors"][name] = {
        {"dtype", dtype_name(t.dtype())}, {"shape", t.shape()}, {"values", values}};
  }
  return d;
}

}  // namespace

class SafetensorsPython : public TempFolder {};

TEST_F(SafetensorsPython, PythonReadsWhatWeWrite) {
  std::string why = python_unavailable_reason();
  if (!why.empty()) GTEST_SKIP() << why;
  NamedTensors tensors = sample_tensors();
  std::map<std::string, std::string> meta = {{"epoch", "3"}, {"note", "caf\xc3\xa9 \xe2\x9c\x93"}};
  std::string file = path("ours.safetensors");
  save_safetensors(file, tensors, meta);
  write_bytes(file + ".json", describe(tensors, meta).dump());
  std::string output;
  int status = run_check_script(shell_quote(file) + " " + shell_quote(file + ".json"),
                                path("log.txt"), output);
  EXPECT_EQ(status, 0) << output;
  EXPECT_NE(output.find("OK: 7 tensors"), std::string::npos) << output;
}

TEST_F(SafetensorsPython, WeReadWhatPythonWrites) {
  std::string why = python_unavailable_reason();
  if (!why.empty()) GTEST_SKIP() << why;
  std::string file = path("theirs.safetensors"), output;
  ASSERT_EQ(run_check_script("--write " + shell_quote(file), path("log.txt"), output), 0) << output;
  SafetensorsFile f = load_safetensors(file);
  // The values safetensors_check.py --write uses, written out by hand.
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(f.tensors.size(), 6u);
  expect_bitwise_equal(*f.find("f16"),
                       from_vector<float>({1, -2, 0.5f, 65504, std::ldexp(1.0f, -24), inf}, {2, 3}),
                       "f16");
  std::vector<float> f32(15);
  for (int i = 0; i < 15; ++i)
    f32[i] = 0.25f * static_cast<float>(i) - 1.0f;
  expect_bitwise_equal(*f.find("f32"), from_vector(f32, {3, 5}), "f32");
  expect_bitwise_equal(*f.find("f64"), scalar_tensor(3.141592653589793, kFloat64), "f64");
  expect_bitwise_equal(*f.find("i64"),
                       from_vector<int64_t>({std::numeric_limits<int64_t>::min(),
                                             std::numeric_limits<int64_t>::max(), 0, -7},
                                            {2, 2}),
                       "i64");
  expect_bitwise_equal(*f.find("u8"), from_vector<uint8_t>({0, 1, 128, 255}, {4}), "u8");
  expect_bitwise_equal(*f.find("empty"), zeros({0, 3}, kFloat32), "empty");
  EXPECT_EQ(f.metadata, (std::map<std::string, std::string>{{"producer", "numpy"},
                                                            {"note", "caf\xc3\xa9 \xe2\x9c\x93"}}));
}
