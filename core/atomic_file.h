// AtomicFile: writes a file so that a reader sees either the old file or the complete new one,
// never a half-written mix, even if the process dies or the machine loses power mid-write.
//
// The bytes go to a temporary file in the same folder as the target (rename is atomic only
// within one file system). commit() flushes and fsyncs it, renames it over the target, then
// fsyncs the folder so that the rename itself survives a crash. On any failure, and when an
// AtomicFile is destroyed without a successful commit(), the temporary file is removed and the
// target is left as it was. Failures throw a one-line selfsup::Error naming the target file.
//
//   AtomicFile out("run/ckpt.safetensors");   // creates run/ckpt.safetensors.tmp.<pid>.<n>
//   out.write(bytes, nbytes);                 // as often as needed
//   out.commit();                             // run/ckpt.safetensors now holds the new bytes
#pragma once

#include <cstddef>
#include <cstdio>
#include <string>

namespace selfsup {

class AtomicFile {
 public:
  // Creates the temporary file next to `path` (the folder must exist and be writable).
  explicit AtomicFile(std::string path);
  // Without a successful commit(): closes and removes the temporary file. Never throws.
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  // Appends nbytes. A failed write (disk full, I/O error) removes the temporary file and throws.
  void write(const void* data, size_t nbytes);
  // Makes the written bytes the content of path: flush, fsync, rename, fsync the folder.
  void commit();

  const std::string& path() const { return path_; }
  const std::string& temp_path() const { return temp_path_; }

 private:
  // Removes the temporary file, then throws "atomic write PATH: what: strerror(err)".
  [[noreturn]] void fail(const std::string& what, int err);
  void discard() noexcept;

  std::string path_;
  std::string temp_path_;
  std::FILE* file_ = nullptr;  // open from construction until commit() or a failure
  bool committed_ = false;
};

}  // namespace selfsup
