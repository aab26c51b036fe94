// Image-folder reader: directory walk, stb_image decoding with the header checked first, and an
// anti-aliased bilinear resize.
#include "ssl/data/image_folder.h"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>

#define STBI_NO_STDIO
#include <stb_image.h>

namespace selfsup::data {

namespace fs = std::filesystem;

// ---------------------------------------------------------------------------------------------
// Resize
// ---------------------------------------------------------------------------------------------

namespace {

// For each output position along one axis: the first source index and the normalised weights
// of the source pixels under its triangle. Pixel i's centre is at i + 0.5.
struct AxisFilter {
  int64_t taps = 0;            // weights per output position (the widest support)
  std::vector<int64_t> first;  // [out]
  std::vector<float> weights;  // [out, taps], zero-padded
};

AxisFilter make_axis_filter(int64_t in, int64_t out) {
  const double scale = static_cast<double>(in) / out;
  const double radius = std::max(scale, 1.0);  // half-width of the triangle, in source pixels
  AxisFilter f;
  f.taps = static_cast<int64_t>(std::ceil(radius)) * 2 + 1;
  f.first.resize(out);
  f.weights.assign(out * f.taps, 0.0f);
  for (int64_t o = 0; o < out; ++o) {
    const double centre = (o + 0.5) * scale;
    const int64_t lo = std::max<int64_t>(0, static_cast<int64_t>(std::floor(centre - radius)));
    const int64_t hi = std::min<int64_t>(in, static_cast<int64_t>(std::ceil(centre + radius)));
    double total = 0.0;
    std::vector<double> w;
    for (int64_t i = lo; i < hi && i - lo < f.taps; ++i) {
      w.push_back(std::max(0.0, 1.0 - std::abs((i + 0.5 - centre) / radius)));
      total += w.back();
    }
    f.first[o] = lo;
    for (size_t k = 0; k < w.size(); ++k)
      f.weights[o * f.taps + k] = static_cast<float>(w[k] / total);
  }
  return f;
}

}  // namespace

void resize_bilinear(const uint8_t* src, int64_t h, int64_t w, int64_t c, uint8_t* dst,
                     int64_t out_h, int64_t out_w) {
  SELFSUP_CHECK(h > 0 && w > 0 && c > 0 && out_h > 0 && out_w > 0, "resize_bilinear: bad sizes [",
                h, ", ", w, ", ", c, "] -> ", out_h, "x", out_w);
  const AxisFilter fx = make_axis_filter(w, out_w);
  const AxisFilter fy = make_axis_filter(h, out_h);
  // Horizontal pass: [h, w, c] uint8 -> [h, out_w, c] float.
  std::vector<float> rows(static_cast<size_t>(h * out_w * c), 0.0f);
  for (int64_t y = 0; y < h; ++y) {
    for (int64_t x = 0; x < out_w; ++x) {
      const float* wt = &fx.weights[x * fx.taps];
      for (int64_t k = 0; k < fx.taps && fx.first[x] + k < w; ++k) {
        const uint8_t* s = src + (y * w + fx.first[x] + k) * c;
        float* r = &rows[(y * out_w + x) * c];
        for (int64_t ch = 0; ch < c; ++ch)
          r[ch] += wt[k] * s[ch];
      }
    }
  }
  // Vertical pass: [h, out_w, c] float -> [c, out_h, out_w] uint8, rounded.
  for (int64_t y = 0; y < out_h; ++y) {
    const float* wt = &fy.weights[y * fy.taps];
    for (int64_t x = 0; x < out_w; ++x) {
      for (int64_t ch = 0; ch < c; ++ch) {
        float acc = 0.0f;
        for (int64_t k = 0; k < fy.taps && fy.first[y] + k < h; ++k) {
          acc += wt[k] * rows[((fy.first[y] + k) * out_w + x) * c + ch];
        }
        dst[(ch * out_h + y) * out_w + x] =
            static_cast<uint8_t>(std::clamp(std::lround(acc), 0L, 255L));
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------------------------

namespace {

constexpr size_t kMaxImageFileBytes = size_t{256} << 20;

std::vector<uint8_t> read_image_file_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  SELFSUP_CHECK(f.is_open(), path, ": cannot open (", std::strerror(errno), ")");
  const std::streamoff size = f.tellg();
  SELFSUP_CHECK(size >= 0 && static_cast<size_t>(size) <= kMaxImageFileBytes, path, ": ", size,
                " bytes is not a plausible image file size");
  std::vector<uint8_t> bytes(static_cast<size_t>(size));
  f.seekg(0);
  f.read(reinterpret_cast<char*>(bytes.data()), size);
  SELFSUP_CHECK(f.gcount() == size, path, ": read ", f.gcount(), " of ", size, " bytes");
  return bytes;
}

// stb_image 2.27 (Debian's) trusts the code counts of a JPEG Huffman table (DHT): a table that
// declares more than 256 codes makes stbi__build_huffman and the loop reading its values write
// past their arrays (found by this project's mutation test under UBSan; later stb versions
// check it). So before stb sees a JPEG, every DHT it could parse is read here the way stb reads
// it, and a table of more than 256 codes is refused. stb finds a DHT only at the bytes FF C4,
// so checking every FF C4 of the file covers them all (at worst it also checks look-alike
// bytes inside another segment's payload).
void check_jpeg_huffman_tables(const std::vector<uint8_t>& b, const std::string& path) {
  auto get8 = [&](size_t at) -> int {
    return at < b.size() ? b[at] : 0;
  };  // 0 past the end, as stb
  for (size_t m = 0; m + 1 < b.size(); ++m) {
    if (b[m] != 0xFF || b[m + 1] != 0xC4) continue;
    int64_t left = (get8(m + 2) << 8 | get8(m + 3)) - 2;
    size_t at = m + 4;
    while (left > 0 && at < b.size()) {
      int codes = 0;
      for (int i = 1; i <= 16; ++i)
        codes += get8(at + i);
      SELFSUP_CHECK(codes <= 256, path, ": corrupt JPEG (a Huffman table declares ", codes,
                    " codes, more than 256)");
      at += 17 + static_cast<size_t>(codes);
      left -= 17 + codes;
    }
  }
}

bool is_jpeg(const std::vector<uint8_t>& b) {
  return b.size() >= 2 && b[0] == 0xFF && b[1] == 0xD8;
}

struct StbiPixels {
  uint8_t* data;
  ~StbiPixels() { stbi_image_free(data); }
};

}  // namespace

void decode_image_file(const std::string& path, int64_t channels, int64_t size, uint8_t* dst) {
  SELFSUP_CHECK(channels == 1 || channels == 3, "decode_image_file: channels must be 1 or 3, got ",
                channels);
  const std::vector<uint8_t> bytes = read_image_file_bytes(path);
  if (is_jpeg(bytes)) check_jpeg_huffman_tables(bytes, path);
  const int len = static_cast<int>(bytes.size());
  int w = 0, h = 0, comp = 0;
  SELFSUP_CHECK(stbi_info_from_memory(bytes.data(), len, &w, &h, &comp), path,
                ": not a readable PNG, JPEG or BMP image (", stbi_failure_reason(), ")");
  SELFSUP_CHECK(w > 0 && h > 0 && w <= kMaxImageDimension && h <= kMaxImageDimension, path,
                ": image is ", w, "x", h, ", outside the limit of 1..", kMaxImageDimension,
                " pixels per side");
  const int req = static_cast<int>(channels);
  StbiPixels pixels{stbi_load_from_memory(bytes.data(), len, &w, &h, &comp, req)};
  SELFSUP_CHECK(pixels.data, path, ": cannot decode the image (", stbi_failure_reason(), ")");
  resize_bilinear(pixels.data, h, w, channels, dst, size, size);
}

// ---------------------------------------------------------------------------------------------
// The folder walk
// ---------------------------------------------------------------------------------------------

namespace {

bool is_hidden(const fs::path& p) {
  return p.filename().string().rfind('.', 0) == 0;
}

bool has_image_extension(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char ch) { return std::tolower(ch); });
  return ext == ".png" || ext == ".jpg" || ext == ".jpeg" || ext == ".bmp";
}

bool is_dir(const fs::path& p) {
  std::error_code ec;
  return fs::is_directory(p, ec);
}

// The sorted image files of one class folder.
std::vector<std::string> list_images(const fs::path& dir) {
  std::vector<std::string> files;
  for (const fs::directory_entry& e : fs::directory_iterator(dir)) {
    if (!is_hidden(e.path()) && e.is_regular_file() && has_image_extension(e.path())) {
      files.push_back(e.path().string());
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

// ROOT/train or ROOT for training; ROOT/test or ROOT/val for testing.
fs::path split_folder(const fs::path& root, const std::string& split) {
  if (split == "train") return is_dir(root / "train") ? root / "train" : root;
  if (is_dir(root / "test")) return root / "test";
  if (is_dir(root / "val")) return root / "val";
  throw Error("folder:" + root.string() + ": no test/ or val/ sub-folder for the test split");
}

}  // namespace

std::vector<std::string> list_class_folders(const std::string& dir) {
  std::vector<std::string> names;
  for (const fs::directory_entry& e : fs::directory_iterator(dir)) {
    if (!is_hidden(e.path()) && e.is_directory()) names.push_back(e.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

Dataset load_image_folder(const std::string& root_name, const std::string& split,
                          const FolderOptions& options) {
  const fs::path root(root_name);
  const std::string name = "folder:" + root_name;
  SELFSUP_CHECK(is_dir(root), name, ": not a directory");
  SELFSUP_CHECK(options.image_size > 0 && options.image_size <= kMaxImageDimension, name,
                ": image size ", options.image_size, " is outside 1..", kMaxImageDimension);
  const fs::path dir = split_folder(root, split);
  const fs::path class_root = is_dir(root / "train") ? root / "train" : root;
  std::vector<std::string> classes = list_class_folders(class_root.string());
  SELFSUP_CHECK(!classes.empty(), name, ": no class sub-folders in ", class_root.string());
  for (const std::string& c : list_class_folders(dir.string())) {
    SELFSUP_CHECK(std::binary_search(classes.begin(), classes.end(), c), name, ": class folder ",
                  (dir / c).string(), " has no counterpart in ", class_root.string());
  }
  std::vector<std::string> files;
  std::vector<int64_t> file_labels;
  for (size_t k = 0; k < classes.size(); ++k) {
    if (!is_dir(dir / classes[k])) continue;
    for (std::string& f : list_images(dir / classes[k])) {
      files.push_back(std::move(f));
      file_labels.push_back(static_cast<int64_t>(k));
    }
  }
  SELFSUP_CHECK(!files.empty(), name, ": no PNG, JPEG or BMP files in the class folders of ",
                dir.string());

  const int64_t n = static_cast<int64_t>(files.size()), c = options.channels,
                s = options.image_size;
  Tensor images = empty({n, c, s, s}, kUInt8);
  uint8_t* out = images.data_ptr<uint8_t>();
  // Decode in parallel; the error of the lowest-numbered bad file is the one reported, so the
  // message does not depend on thread timing.
  std::vector<std::exception_ptr> errors(files.size());
#pragma omp parallel for schedule(dynamic, 4) if (n > 8)
  for (int64_t i = 0; i < n; ++i) {
    try {
      decode_image_file(files[i], c, s, out + i * c * s * s);
    } catch (...) {
      errors[i] = std::current_exception();
    }
  }
  for (const std::exception_ptr& e : errors) {
    if (e) std::rethrow_exception(e);
  }
  Dataset ds;
  ds.name = name + "/" + split;
  ds.images = images;
  ds.labels = from_vector(file_labels, {n}, kInt64);
  ds.num_classes = static_cast<int64_t>(classes.size());
  ds.class_names = classes;
  validate_dataset(ds, name);
  return ds;
}

}  // namespace selfsup::data
