// One open image.raw: reads through the image read engine
// (blksnap::ImageReader: io_uring, O_DIRECT, 1 MiB blocks, read-ahead while
// the reads follow each other); writes, with --writable, through a plain
// descriptor. Errors are logged and given to the reader as -errno.
#pragma once

#include <blksnap/image_reader.hpp>
#include <blksnap/unique_fd.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace blksnapfs {

struct ImageFileOptions {
    std::uint32_t block = 1u << 20; // bytes per device read
    unsigned depth = 4;             // block buffers, hence reads in flight
    bool writable = false;
};

class ImageFile {
public:
    using Buffer = blksnap::ImageReader::Buffer;

    // Opens the image device PATH. Throws blksnap::Error.
    explicit ImageFile(const std::string& path, ImageFileOptions options = {});
    ~ImageFile();
    ImageFile(const ImageFile&) = delete;
    ImageFile& operator=(const ImageFile&) = delete;

    // Bytes read into OUT from OFFSET (short only at the end), or -errno:
    // a failed device read (a corrupted or destroyed snapshot) is -EIO.
    long read(std::span<std::byte> out, std::uint64_t offset);
    // A read of exactly one whole block: OUT receives the block's buffer
    // (no copy) and the bytes it holds are returned; 0 with OUT empty for
    // any other read (use read()); or -errno.
    long take_block(std::uint64_t offset, std::size_t size, Buffer& out);
    // Bytes written from DATA at OFFSET, or -errno (-EROFS when not writable).
    long write(std::span<const std::byte> data, std::uint64_t offset);
    // fdatasync of what write() wrote; 0 or -errno.
    int sync();

    std::uint64_t size() const { return reader_.size(); }

private:
    long failed(const std::exception& e, std::uint64_t offset);
    void drop_stale();

    blksnap::ImageReader reader_;
    blksnap::UniqueFd write_fd_; // buffered writes, when writable
    std::atomic<std::uint64_t> epoch_seen_;
    std::atomic<unsigned> errors_{0};
};

// Bumped by every write through any image file: blocks read before the
// last write are read again.
std::atomic<std::uint64_t>& write_epoch();

} // namespace blksnapfs
