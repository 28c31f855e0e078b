#include "image_file.hpp"
#include "log.hpp"

#include <blksnap/align.hpp>
#include <blksnap/error.hpp>

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>

namespace blksnapfs {

namespace {

// Read errors logged one by one per open file; the rest are counted.
constexpr unsigned logged_errors = 5;

} // namespace

std::atomic<std::uint64_t>& write_epoch() {
    static std::atomic<std::uint64_t> epoch{0};
    return epoch;
}

ImageFile::ImageFile(const std::string& path, ImageFileOptions options)
    : reader_(path, blksnap::ReadOptions{.block_size = options.block,
                                         .queue_depth = options.depth,
                                         .direct = true}),
      epoch_seen_(write_epoch().load()) {
    if (options.writable)
        write_fd_ = blksnap::open_fd(path, O_WRONLY);
}

ImageFile::~ImageFile() {
    if (errors_ > logged_errors)
        log(LOG_ERR, reader_.path() + ": " + std::to_string(errors_.load()) +
                         " failed reads in all (EIO), the first " + std::to_string(logged_errors) +
                         " logged");
}

long ImageFile::failed(const std::exception& e, std::uint64_t offset) {
    int code = EIO;
    if (const auto* be = dynamic_cast<const blksnap::Error*>(&e))
        code = be->code();
    if (code == ENOMEM || code == EINTR)
        return -code;
    // A failed image (corrupted: ENOSPC, destroyed: ENXIO...) reads as an
    // I/O error, as any failed read does.
    if (++errors_ <= logged_errors)
        log(LOG_ERR, "read of " + reader_.path() + " at " + std::to_string(offset) +
                         " failed, EIO to the reader: " + e.what());
    return -EIO;
}

void ImageFile::drop_stale() {
    const std::uint64_t now = write_epoch().load();
    if (epoch_seen_.exchange(now) != now)
        reader_.invalidate();
}

long ImageFile::read(std::span<std::byte> out, std::uint64_t offset) {
    try {
        drop_stale();
        return static_cast<long>(reader_.read_at(out, offset));
    } catch (const std::bad_alloc&) {
        return -ENOMEM;
    } catch (const std::exception& e) {
        return failed(e, offset);
    }
}

long ImageFile::take_block(std::uint64_t offset, std::size_t size, Buffer& out) {
    try {
        drop_stale();
        return static_cast<long>(reader_.take_block(offset, size, out));
    } catch (const std::bad_alloc&) {
        return -ENOMEM;
    } catch (const std::exception& e) {
        return failed(e, offset);
    }
}

long ImageFile::write(std::span<const std::byte> data, std::uint64_t offset) {
    if (!write_fd_)
        return -EROFS;
    const std::uint64_t length = blksnap::clamp_length(offset, data.size(), size());
    if (length == 0)
        return data.empty() ? 0 : -ENOSPC;
    std::uint64_t done = 0;
    while (done < length) {
        const ssize_t n = ::pwrite(write_fd_.get(), data.data() + done, length - done,
                                   static_cast<off_t>(offset + done));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            const int err = errno;
            log(LOG_ERR, "write of " + reader_.path() + " at " + std::to_string(offset + done) +
                             " failed: " + blksnap::Error(err, "pwrite").what());
            return -err;
        }
        done += static_cast<std::uint64_t>(n);
    }
    ++write_epoch();
    return static_cast<long>(done);
}

int ImageFile::sync() {
    if (write_fd_ && ::fdatasync(write_fd_.get()) != 0) {
        const int err = errno;
        log(LOG_ERR, "fdatasync of " + reader_.path() + " failed: " + std::strerror(err));
        return -err;
    }
    return 0;
}

} // namespace blksnapfs
