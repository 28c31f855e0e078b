// The image read engine: reads a block device (a snapshot image) or a file
// with io_uring, O_DIRECT, several reads of whole blocks in flight,
// submitted in batches, into buffers kept from one read to the next. Every
// program that reads an image uses it, two ways:
//  - read(): a range streamed to a sink in order (backups, copies);
//  - read_at() and take_block(): any offset and length, as a file system is
//    asked for them, served from the same few block buffers, with
//    read-ahead while the reads follow each other.
// Calls on one reader are serialised (it may be shared by threads).
#pragma once

#include <blksnap/align.hpp>
#include <blksnap/unique_fd.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

namespace blksnap {

struct ReadOptions {
    std::uint32_t block_size = 1u << 20; // bytes per read
    unsigned queue_depth = 8;            // reads in flight (and block buffers)
    bool direct = true;                  // O_DIRECT (offsets and lengths 512-aligned)
};

// Called with consecutive pieces: OFFSET is the position in the source.
using ReadSink = std::function<void(std::uint64_t offset, std::span<const std::byte> data)>;

class ImageReader {
public:
    struct FreeDeleter {
        void operator()(std::byte* p) const noexcept;
    };
    // A block buffer handed over by take_block(): from aligned_alloc, freed
    // with free() (so libfuse may free it).
    using Buffer = std::unique_ptr<std::byte[], FreeDeleter>;

    explicit ImageReader(const std::string& path, ReadOptions options = {});
    ImageReader(ImageReader&&) noexcept;
    ImageReader& operator=(ImageReader&&) noexcept;
    ~ImageReader(); // waits for the reads still in flight

    const std::string& path() const;
    std::uint64_t size() const;
    // What O_DIRECT offsets and lengths must be multiples of: the logical
    // block size of a block device, 512 for a file.
    std::uint32_t alignment() const;

    // Reads [OFFSET, OFFSET+LENGTH) and delivers it to SINK in order, in
    // pieces of at most block_size bytes starting at OFFSET.
    // Throws Error with the path and offset on a failed or short read; an
    // exception from SINK stops the read and is passed on.
    void read(std::uint64_t offset, std::uint64_t length, const ReadSink& sink);
    // The same for several RANGES (ascending, not overlapping), one after
    // another, with reads in flight across them (the changed blocks of an
    // incremental backup).
    void read(std::span<const BlockRange> ranges, const ReadSink& sink);

    // Random access: copies what lies at OFFSET into OUT, at any offset and
    // of any length; short only at the end of the source. Reads whole
    // blocks of the grid block_size * N, and reads ahead the next blocks
    // while the calls follow each other. Returns the bytes copied; throws
    // Error("read PATH at offset N") when a read fails.
    std::size_t read_at(std::span<std::byte> out, std::uint64_t offset);
    // When [OFFSET, OFFSET+LENGTH) is exactly one block of that grid (cut
    // at the end of the source), hands over that block's buffer in OUT
    // (no copy) and returns the bytes it holds; the block is read again if
    // asked for again. Returns 0 with OUT empty for any other range (use
    // read_at()). Throws as read_at().
    std::size_t take_block(std::uint64_t offset, std::size_t length, Buffer& out);
    // Forgets every block read so far: the source was written to.
    void invalidate();

    // Kept for callers of the first version: the O_DIRECT alignment of a
    // file, and of the buffers.
    static constexpr std::uint32_t direct_alignment = 512;
    static constexpr std::size_t buffer_alignment = 4096;

private:
    struct Engine;
    std::unique_ptr<Engine> engine_;
};

} // namespace blksnap
