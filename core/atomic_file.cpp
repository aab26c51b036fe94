#include "core/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "core/error.h"

namespace selfsup {

namespace {

// Tells apart the temporary files of several AtomicFiles alive at once in one process.
std::atomic<uint64_t> g_temp_counter{0};

// Opens a fresh "<path>.tmp.<pid>.<n>" with O_EXCL, so it never reuses another writer's file.
// Mode 0666 lets the umask decide the permissions, as for any newly created file.
int create_temp_file(const std::string& path, std::string& temp_path) {
  for (int attempt = 0; attempt < 100; ++attempt) {
    temp_path = path + ".tmp." + std::to_string(::getpid()) + "." +
                std::to_string(g_temp_counter.fetch_add(1));
    int fd = ::open(temp_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd >= 0 || errno != EEXIST) return fd;
  }
  errno = EEXIST;
  return -1;
}

// fsync on the folder makes the rename (a change to the folder) durable.
int sync_folder_of(const std::string& path) {
  std::filesystem::path folder = std::filesystem::path(path).parent_path();
  if (folder.empty()) folder = std::filesystem::path(".");  // a bare file name: the working folder
  int fd = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return errno;
  int err = ::fsync(fd) == 0 ? 0 : errno;
  ::close(fd);
  // Some file systems cannot sync a folder at all; that is not a failure of this write.
  return err == EINVAL ? 0 : err;
}

std::string error_text(const std::string& path, const std::string& what, int err) {
  return "atomic write " + path + ": " + what + ": " + std::strerror(err);
}

}  // namespace

AtomicFile::AtomicFile(std::string path) : path_(std::move(path)) {
  int fd = create_temp_file(path_, temp_path_);
  if (fd < 0) throw Error(error_text(path_, "cannot create " + temp_path_, errno));
  file_ = ::fdopen(fd, "wb");
  if (!file_) {
    int err = errno;
    ::close(fd);
    ::unlink(temp_path_.c_str());
    throw Error(error_text(path_, "cannot open " + temp_path_, err));
  }
}

AtomicFile::~AtomicFile() {
  discard();
}

void AtomicFile::discard() noexcept {
  if (file_) std::fclose(file_);
  file_ = nullptr;
  if (!committed_ && !temp_path_.empty()) ::unlink(temp_path_.c_str());
  temp_path_.clear();
}

void AtomicFile::fail(const std::string& what, int err) {
  discard();
  throw Error(error_text(path_, what, err));
}

void AtomicFile::write(const void* data, size_t nbytes) {
  SELFSUP_CHECK(file_, "atomic write ", path_, ": write after commit or after a failure");
  if (nbytes == 0) return;
  errno = 0;
  if (std::fwrite(data, 1, nbytes, file_) != nbytes) fail("write failed", errno ? errno : EIO);
}

void AtomicFile::commit() {
  SELFSUP_CHECK(file_, "atomic write ", path_, ": commit after commit or after a failure");
  if (std::fflush(file_) != 0) fail("flush failed", errno);
  if (::fsync(::fileno(file_)) != 0) fail("fsync failed", errno);
  int closed = std::fclose(file_);
  file_ = nullptr;
  if (closed != 0) fail("close failed", errno);
  if (std::rename(temp_path_.c_str(), path_.c_str()) != 0)
    fail("cannot rename " + temp_path_ + " over it", errno);
  committed_ = true;
  temp_path_.clear();
  if (int err = sync_folder_of(path_))
    throw Error(error_text(path_, "new file in place, but syncing its folder failed", err));
}

}  // namespace selfsup
