#pragma once
// Atomic file output (POSIX).
//
// atomic_write_file(path, writer) writes a whole file so that `path` always holds either
// its old contents or the complete new contents, never a partial file:
//   1. create a fresh temporary file in the same directory ("<path>.tmp.<pid>.<n>",
//      O_EXCL, mode 0666 & ~umask, or the old file's mode when it exists),
//   2. let `writer` write into it through a std::FILE*,
//   3. fflush, fsync, fclose,
//   4. rename() it onto `path` (atomic on POSIX file systems),
//   5. fsync the directory so the rename itself is durable.
// Any failure (including an exception thrown by `writer`) removes the temporary file and
// leaves `path` untouched. I/O failures throw disco::Error naming the path and
// strerror(errno); an exception thrown by `writer` is rethrown unchanged.
//
// Notes: a symlink at `path` is replaced by a regular file (the link target is not
// written). Not available on Windows.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>

#include "disco/core/error.hpp"

namespace disco {

namespace detail {

inline std::string errno_message(int err) { return std::strerror(err); }

// Directory part of a path: "a/b/c.txt" -> "a/b", "c.txt" -> ".", "/c.txt" -> "/".
inline std::string parent_directory(const std::string& path) {
  const auto pos = path.find_last_of('/');
  if (pos == std::string::npos) return ".";
  if (pos == 0) return "/";
  return path.substr(0, pos);
}

inline unsigned next_temp_counter() {
  static std::atomic<unsigned> counter{0};
  return counter.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace detail

// fwrite `size` bytes or throw disco::Error("<what>: write failed: <strerror>").
// For use inside atomic_write_file writers (a failed fwrite is also caught afterwards via
// ferror, but failing early gives a precise message and stops writing sooner).
inline void fwrite_all(std::FILE* f, const void* data, std::size_t size, const std::string& what) {
  if (size == 0) return;
  if (std::fwrite(data, 1, size, f) != size) {
    const int err = errno;
    fail(what, ": write failed: ", detail::errno_message(err));
  }
}

// Fsync the directory containing `path` so a rename/creation in it is durable.
// File systems that cannot fsync directories (EINVAL/ENOTSUP) are accepted silently.
inline void fsync_parent_directory(const std::string& path) {
  const std::string dir = detail::parent_directory(path);
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) {
    const int err = errno;
    fail("atomic write of '", path, "': cannot open directory '", dir,
         "' to fsync it: ", detail::errno_message(err));
  }
  if (::fsync(dfd) != 0) {
    const int err = errno;
    ::close(dfd);
    if (err == EINVAL || err == ENOTSUP) return;
    fail("atomic write of '", path, "': fsync of directory '", dir,
         "' failed: ", detail::errno_message(err));
  }
  ::close(dfd);
}

// Write the file at `path` atomically; `writer` receives the open temporary file.
inline void atomic_write_file(const std::string& path, const std::function<void(std::FILE*)>& writer) {
  DISCO_CHECK(!path.empty(), "atomic write: empty output path");
  DISCO_CHECK(path.back() != '/', "atomic write of '", path, "': path names a directory, expected a file");
  DISCO_CHECK(static_cast<bool>(writer), "atomic write of '", path, "': no writer function given");

  // 1. create the temporary file next to the target.
  std::string tmp;
  int fd = -1;
  for (int attempt = 0; attempt < 100 && fd < 0; ++attempt) {
    tmp = path + ".tmp." + std::to_string(static_cast<long>(::getpid())) + "." +
          std::to_string(detail::next_temp_counter());
    fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0 && errno != EEXIST) break;
  }
  if (fd < 0) {
    const int err = errno;
    fail("atomic write of '", path, "': cannot create temporary file '", tmp,
         "': ", detail::errno_message(err));
  }
  // Keep the permissions of a file we replace.
  struct stat old_st;
  if (::stat(path.c_str(), &old_st) == 0 && S_ISREG(old_st.st_mode)) {
    (void)::fchmod(fd, old_st.st_mode & 07777);
  }

  std::FILE* f = ::fdopen(fd, "wb");
  if (!f) {
    const int err = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    fail("atomic write of '", path, "': fdopen of temporary file '", tmp,
         "' failed: ", detail::errno_message(err));
  }
  auto abandon = [&](const char* step, int err) {
    std::fclose(f);
    ::unlink(tmp.c_str());
    fail("atomic write of '", path, "': ", step, " failed: ", detail::errno_message(err));
  };

  // 2. user data.
  try {
    writer(f);
  } catch (...) {
    std::fclose(f);
    ::unlink(tmp.c_str());
    throw;
  }
  // 3. flush to disk.
  if (std::ferror(f)) abandon("writing", errno ? errno : EIO);
  if (std::fflush(f) != 0) abandon("fflush", errno);
  if (::fsync(::fileno(f)) != 0) abandon("fsync", errno);
  if (std::fclose(f) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    fail("atomic write of '", path, "': close failed: ", detail::errno_message(err));
  }
  // 4. publish.
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    fail("atomic write of '", path, "': rename of '", tmp, "' onto it failed: ",
         detail::errno_message(err));
  }
  // 5. make the rename durable.
  fsync_parent_directory(path);
}

// Convenience forms.
inline void atomic_write_bytes(const std::string& path, const void* data, std::size_t size) {
  atomic_write_file(path, [&](std::FILE* f) { fwrite_all(f, data, size, "atomic write of '" + path + "'"); });
}
inline void atomic_write_text(const std::string& path, const std::string& text) {
  atomic_write_bytes(path, text.data(), text.size());
}

}  // namespace disco
