// Reads a range of a block device or file with io_uring: several reads in
// flight, data handed to a sink strictly in order.
#pragma once

#include <blksnap/unique_fd.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

struct io_uring;

namespace blksnap {

struct ReadOptions {
    std::uint32_t block_size = 1u << 20; // bytes per read
    unsigned queue_depth = 8;            // reads in flight
    bool direct = true;                  // O_DIRECT (offsets and lengths 512-aligned)
};

// Called with consecutive pieces: OFFSET is the position in the source.
using ReadSink = std::function<void(std::uint64_t offset, std::span<const std::byte> data)>;

class ImageReader {
public:
    explicit ImageReader(const std::string& path, ReadOptions options = {});
    ImageReader(ImageReader&&) noexcept;
    ImageReader& operator=(ImageReader&&) noexcept;
    ~ImageReader();

    const std::string& path() const { return path_; }
    std::uint64_t size() const { return size_; }

    // Reads [OFFSET, OFFSET+LENGTH) and delivers it to SINK in order.
    // Throws Error with the path and offset on a failed or short read; an
    // exception from SINK stops the read and is passed on.
    void read(std::uint64_t offset, std::uint64_t length, const ReadSink& sink);

    static constexpr std::uint32_t direct_alignment = 512;
    static constexpr std::size_t buffer_alignment = 4096;

private:
    struct Ring;
    std::string path_;
    ReadOptions options_;
    UniqueFd fd_;
    std::uint64_t size_ = 0;
    std::unique_ptr<Ring> ring_;
};

} // namespace blksnap
