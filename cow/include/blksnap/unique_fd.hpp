// An owned file descriptor, closed on destruction.
#pragma once

#include <string>
#include <sys/types.h>

namespace blksnap {

class UniqueFd {
public:
    UniqueFd() = default;
    explicit UniqueFd(int fd) noexcept : fd_(fd) {}
    UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
    UniqueFd& operator=(UniqueFd&& other) noexcept;
    UniqueFd(const UniqueFd&) = delete;
    UniqueFd& operator=(const UniqueFd&) = delete;
    ~UniqueFd() { reset(); }

    int get() const noexcept { return fd_; }
    explicit operator bool() const noexcept { return fd_ >= 0; }
    int release() noexcept;
    void reset(int fd = -1) noexcept;

private:
    int fd_ = -1;
};

// open(2) that throws Error("open PATH: ...") on failure.
UniqueFd open_fd(const std::string& path, int flags, mode_t mode = 0);

// Writes all of the buffer or throws Error(context).
void write_all(int fd, const void* data, size_t size, const std::string& context);

} // namespace blksnap
