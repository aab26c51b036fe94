#include "core/safetensors.h"

#include <sys/stat.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>

#include "core/atomic_file.h"
#include "core/views.h"

namespace selfsup {

// The data section is little-endian; reading and writing copy bytes as they are.
static_assert(std::endian::native == std::endian::little,
              "safetensors I/O assumes a little-endian host");

namespace {

// ordered_json keeps keys in insertion order: the header lists tensors in the order given.
using Json = nlohmann::ordered_json;

constexpr const char* kMetadataKey = "__metadata__";
// The reference implementation refuses headers over 100 MB; a larger one is a corrupt length.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

// ============================================================================================
// dtypes
// ============================================================================================

// A dtype as the file spells it, its size there, and the DType it loads as.
struct FileDType {
  const char* tag;
  size_t item_size;
  DType loads_as;
};

// F16 and BF16 (2 bytes) are widened to float32 on load; the others load byte for byte.
constexpr FileDType kFileDTypes[] = {{"F32", 4, kFloat32}, {"F64", 8, kFloat64},
                                     {"I64", 8, kInt64},   {"U8", 1, kUInt8},
                                     {"F16", 2, kFloat32}, {"BF16", 2, kFloat32}};

const FileDType* find_file_dtype(const std::string& tag) {
  for (const FileDType& d : kFileDTypes)
    if (tag == d.tag) return &d;
  return nullptr;
}

const char* file_tag(DType t) {
  switch (t) {
    case DType::Float32:
      return "F32";
    case DType::Float64:
      return "F64";
    case DType::Int64:
      return "I64";
    case DType::UInt8:
      return "U8";
  }
  return "?";
}

// IEEE half: 1 sign, 5 exponent (bias 15), 10 mantissa bits.
float half_to_float(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exponent = (h >> 10) & 0x1fu;
  uint32_t mantissa = h & 0x3ffu;
  if (exponent == 0x1f)  // inf or NaN: all-ones exponent, payload kept
    return std::bit_cast<float>(sign | 0x7f800000u | (mantissa << 13));
  if (exponent != 0)  // normal: re-bias the exponent from 15 to 127
    return std::bit_cast<float>(sign | ((exponent + 112) << 23) | (mantissa << 13));
  // zero or subnormal: mantissa * 2^-24, exact in float
  float magnitude = std::ldexp(static_cast<float>(mantissa), -24);
  return sign ? -magnitude : magnitude;
}

// bfloat16 is the top half of a float32.
float bfloat16_to_float(uint16_t b) {
  return std::bit_cast<float>(static_cast<uint32_t>(b) << 16);
}

// ============================================================================================
// helpers
// ============================================================================================

// A string as a JSON literal: quotes, newlines and bad UTF-8 escaped, so messages stay one line.
std::string json_quoted(const std::string& s) {
  return Json(s).dump(-1, ' ', false, Json::error_handler_t::replace);
}

bool is_valid_utf8(const std::string& s) {
  try {
    (void)Json(s).dump();
    return true;
  } catch (const Json::type_error&) {
    return false;
  }
}

[[noreturn]] void refuse(const std::string& path, const std::string& msg) {
  throw Error("load_safetensors: " + path + ": " + msg);
}

[[noreturn]] void refuse(const std::string& path, const std::string& tensor,
                         const std::string& msg) {
  refuse(path, "tensor " + json_quoted(tensor) + ": " + msg);
}

using File = std::unique_ptr<std::FILE, int (*)(std::FILE*)>;

void read_exact(std::FILE* f, void* dst, size_t nbytes, const std::string& path,
                const std::string& what) {
  if (std::fread(dst, 1, nbytes, f) != nbytes)
    refuse(path, "could not read " + what + " (" + std::to_string(nbytes) +
                     " bytes): the file is shorter than it said or changed while being read");
}

// ============================================================================================
// loading: header
// ============================================================================================

// One tensor as the header describes it, already checked against the data section.
struct Entry {
  std::string name;
  const FileDType* dtype = nullptr;
  Shape shape;
  uint64_t begin = 0, end = 0;  // byte range in the data section
};

// Parses the header text; a name given twice (JSON would silently keep the last) is refused.
Json parse_header(const std::string& text, const std::string& path) {
  std::string duplicate;
  std::set<std::string> names;
  auto note_top_level_keys = [&](int depth, Json::parse_event_t event, Json& parsed) {
    if (event == Json::parse_event_t::key && depth == 1 && duplicate.empty() &&
        !names.insert(parsed.get<std::string>()).second)
      duplicate = parsed.get<std::string>();
    return true;
  };
  Json header;
  try {
    header = Json::parse(text, note_top_level_keys);
  } catch (const Json::parse_error& e) {
    refuse(path, "header is not valid JSON (parse error at byte " + std::to_string(e.byte) + ")");
  }
  if (!header.is_object()) refuse(path, "header is not a JSON object");
  if (!duplicate.empty())
    refuse(path, "key " + json_quoted(duplicate) + " appears twice in the header");
  return header;
}

std::map<std::string, std::string> parse_metadata(const Json& value, const std::string& path) {
  if (!value.is_object()) refuse(path, "__metadata__ is not a JSON object");
  std::map<std::string, std::string> metadata;
  for (const auto& [key, v] : value.items()) {
    if (!v.is_string())
      refuse(path, "__metadata__ value of " + json_quoted(key) + " is not a string");
    metadata[key] = v.get<std::string>();
  }
  return metadata;
}

const Json& field(const Json& entry, const char* key, const std::string& path,
                  const std::string& name) {
  auto it = entry.find(key);
  if (it == entry.end()) refuse(path, name, std::string("missing \"") + key + "\"");
  return *it;
}

// A JSON integer in [0, INT64_MAX] (nlohmann stores non-negative integers as unsigned).
bool is_size(const Json& v) {
  return v.is_number_unsigned() &&
         v.get<uint64_t>() <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
}

const FileDType* parse_dtype(const Json& v, const std::string& path, const std::string& name) {
  if (!v.is_string()) refuse(path, name, "dtype is not a string");
  const FileDType* d = find_file_dtype(v.get<std::string>());
  if (!d)
    refuse(path, name,
           "dtype " + json_quoted(v.get<std::string>()) +
               " is not supported (selfsup reads F32, F64, I64, U8, and F16/BF16 as float32)");
  return d;
}

// The shape, refused unless every size is a non-negative integer and the element count (with
// zero sizes counted as one, as the strides are) fits in int64.
Shape parse_shape(const Json& v, const std::string& path, const std::string& name) {
  if (!v.is_array()) refuse(path, name, "shape is not a list");
  Shape shape;
  int64_t extent = 1;
  for (const Json& size : v) {
    if (!is_size(size))
      refuse(path, name, "shape " + v.dump() + " is not a list of non-negative integers");
    shape.push_back(size.get<int64_t>());
    if (__builtin_mul_overflow(extent, std::max<int64_t>(shape.back(), 1), &extent))
      refuse(path, name, "shape " + v.dump() + " has too many elements");
  }
  return shape;
}

Entry parse_entry(const std::string& name, const Json& value, uint64_t data_size,
                  const std::string& path) {
  if (!value.is_object()) refuse(path, name, "entry is not a JSON object");
  Entry e;
  e.name = name;
  e.dtype = parse_dtype(field(value, "dtype", path, name), path, name);
  e.shape = parse_shape(field(value, "shape", path, name), path, name);
  const Json& offsets = field(value, "data_offsets", path, name);
  if (!offsets.is_array() || offsets.size() != 2 || !is_size(offsets[0]) || !is_size(offsets[1]))
    refuse(path, name, "data_offsets " + offsets.dump() + " is not [begin, end]");
  e.begin = offsets[0].get<uint64_t>();
  e.end = offsets[1].get<uint64_t>();
  std::string range = "data_offsets " + offsets.dump();
  if (e.begin > e.end) refuse(path, name, range + " ends before it begins");
  if (e.end > data_size)
    refuse(path, name,
           range + " run past the end of the data section (" + std::to_string(data_size) +
               " bytes): the file is truncated or corrupt");
  uint64_t nbytes = 0;
  if (__builtin_mul_overflow(static_cast<uint64_t>(shape_numel(e.shape)), e.dtype->item_size,
                             &nbytes) ||
      nbytes != e.end - e.begin)
    refuse(path, name,
           range + " hold " + std::to_string(e.end - e.begin) + " bytes, but " + e.dtype->tag +
               " " + shape_str(e.shape) + " needs " + std::to_string(nbytes));
  return e;
}

// Sorts the entries into file order and refuses two tensors sharing a byte.
void sort_and_check_overlap(std::vector<Entry>& entries, const std::string& path) {
  std::stable_sort(entries.begin(), entries.end(),
                   [](const Entry& a, const Entry& b) { return a.begin < b.begin; });
  const Entry* furthest = nullptr;  // among the entries so far, the one that ends last
  for (const Entry& e : entries) {
    if (e.begin == e.end) continue;  // empty ranges hold no bytes to share
    if (furthest && e.begin < furthest->end)
      refuse(path, e.name,
             "data_offsets [" + std::to_string(e.begin) + ", " + std::to_string(e.end) +
                 "] overlap those of tensor " + json_quoted(furthest->name) + " [" +
                 std::to_string(furthest->begin) + ", " + std::to_string(furthest->end) + "]");
    if (!furthest || e.end > furthest->end) furthest = &e;
  }
}

// ============================================================================================
// loading: data
// ============================================================================================

// Reads 2-byte floats in chunks and widens them straight into the float32 tensor.
void read_widened(std::FILE* f, const Entry& e, float* dst, int64_t numel,
                  const std::string& path) {
  bool bf16 = std::strcmp(e.dtype->tag, "BF16") == 0;
  uint16_t chunk[4096];
  for (int64_t done = 0; done < numel;) {
    size_t n = static_cast<size_t>(std::min<int64_t>(numel - done, 4096));
    read_exact(f, chunk, n * sizeof(uint16_t), path, "the data of tensor " + json_quoted(e.name));
    for (size_t i = 0; i < n; ++i)
      dst[done + i] = bf16 ? bfloat16_to_float(chunk[i]) : half_to_float(chunk[i]);
    done += static_cast<int64_t>(n);
  }
}

// Reads one tensor straight into its storage. `position` tracks the file offset so that
// tensors stored back to back need no seek.
Tensor read_tensor(std::FILE* f, const Entry& e, uint64_t data_start, uint64_t& position,
                   const std::string& path) {
  Tensor t = empty(e.shape, e.dtype->loads_as);
  if (e.begin == e.end) return t;
  uint64_t at = data_start + e.begin;
  if (at != position && fseeko(f, static_cast<off_t>(at), SEEK_SET) != 0)
    refuse(path, e.name, std::string("cannot seek to its data: ") + std::strerror(errno));
  if (e.dtype->item_size == dtype_size(e.dtype->loads_as))
    read_exact(f, t.raw_data_ptr(), e.end - e.begin, path,
               "the data of tensor " + json_quoted(e.name));
  else
    read_widened(f, e, t.data_ptr<float>(), t.numel(), path);
  position = data_start + e.end;
  return t;
}

// ============================================================================================
// saving
// ============================================================================================

[[noreturn]] void refuse_save(const std::string& path, const std::string& msg) {
  throw Error("save_safetensors: " + path + ": " + msg);
}

void check_before_save(const std::string& path, const NamedTensors& tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::set<std::string> names;
  for (const auto& [name, t] : tensors) {
    if (!is_valid_utf8(name))
      refuse_save(path, "tensor name " + json_quoted(name) + " is not UTF-8");
    if (name == kMetadataKey) refuse_save(path, "\"__metadata__\" is reserved, not a tensor name");
    if (!names.insert(name).second)
      refuse_save(path, "tensor " + json_quoted(name) + " given twice");
    if (!t.defined()) refuse_save(path, "tensor " + json_quoted(name) + " is undefined");
  }
  for (const auto& [key, value] : metadata)
    if (!is_valid_utf8(key) || !is_valid_utf8(value))
      refuse_save(path, "__metadata__ entry " + json_quoted(key) + " is not UTF-8");
}

// The JSON header, space-padded to a multiple of 8 bytes; tensors packed in the given order.
std::string build_header(const NamedTensors& tensors,
                         const std::map<std::string, std::string>& metadata) {
  Json header = Json::object();
  if (!metadata.empty()) header[kMetadataKey] = Json(metadata);
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    uint64_t nbytes = static_cast<uint64_t>(t.numel()) * t.element_size();
    header[name] = Json{{"dtype", file_tag(t.dtype())},
                        {"shape", t.shape()},
                        {"data_offsets", Json::array({offset, offset + nbytes})}};
    offset += nbytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  return text;
}

void write_u64_le(AtomicFile& out, uint64_t v) {
  unsigned char bytes[8];
  for (int i = 0; i < 8; ++i)
    bytes[i] = static_cast<unsigned char>(v >> (8 * i));
  out.write(bytes, 8);
}

}  // namespace

const Tensor* SafetensorsFile::find(const std::string& name) const {
  for (const auto& [n, t] : tensors)
    if (n == name) return &t;
  return nullptr;
}

void save_safetensors(const std::string& path, const NamedTensors& tensors,
                      const std::map<std::string, std::string>& metadata) {
  check_before_save(path, tensors, metadata);
  std::string header = build_header(tensors, metadata);
  try {
    AtomicFile out(path);
    write_u64_le(out, header.size());
    out.write(header.data(), header.size());
    for (const auto& [name, t] : tensors) {
      // One tensor at a time, so at most one extra copy is alive.
      Tensor host = t.device().is_cpu() ? raw::contiguous(t) : raw::to_device(t, kCPU);
      out.write(host.raw_data_ptr(), static_cast<size_t>(host.numel()) * host.element_size());
    }
    out.commit();
  } catch (const Error& e) {
    throw Error(std::string("save_safetensors: ") + e.what());
  }
}

SafetensorsFile load_safetensors(const std::string& path) {
  File file(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!file) refuse(path, std::string("cannot open: ") + std::strerror(errno));
  struct stat st {};
  if (::fstat(::fileno(file.get()), &st) != 0 || !S_ISREG(st.st_mode))
    refuse(path, "not a regular file");
  uint64_t file_size = static_cast<uint64_t>(st.st_size);
  if (file_size < 8)
    refuse(path, "file is " + std::to_string(file_size) +
                     " bytes, shorter than the 8-byte header length");

  unsigned char length_bytes[8];
  read_exact(file.get(), length_bytes, 8, path, "the header length");
  uint64_t header_size = 0;
  for (int i = 7; i >= 0; --i)
    header_size = (header_size << 8) | length_bytes[i];
  if (header_size > kMaxHeaderBytes)
    refuse(path, "header length " + std::to_string(header_size) + " is over the " +
                     std::to_string(kMaxHeaderBytes) + "-byte limit: not a safetensors file?");
  if (header_size > file_size - 8)
    refuse(path, "header length " + std::to_string(header_size) +
                     " runs past the end of the file (" + std::to_string(file_size) + " bytes)");

  std::string text(header_size, '\0');
  read_exact(file.get(), text.data(), header_size, path, "the header");
  Json header = parse_header(text, path);
  uint64_t data_start = 8 + header_size;
  uint64_t data_size = file_size - data_start;

  SafetensorsFile result;
  std::vector<Entry> entries;
  for (const auto& [key, value] : header.items()) {
    if (key == kMetadataKey)
      result.metadata = parse_metadata(value, path);
    else
      entries.push_back(parse_entry(key, value, data_size, path));
  }
  sort_and_check_overlap(entries, path);

  uint64_t position = data_start;
  result.tensors.reserve(entries.size());
  for (const Entry& e : entries)
    result.tensors.emplace_back(e.name, read_tensor(file.get(), e, data_start, position, path));
  return result;
}

}  // namespace selfsup
