// The files of a device's backup: its image, written sparsely, made durable
// and read back for verification.
#pragma once

#include "backup_plan.hpp"

#include <blksnap/unique_fd.hpp>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>

struct XXH64_state_s;

namespace blksnap::cli {

// Streaming xxh64 (seed 0).
class Xxh64 {
public:
    Xxh64();
    void update(std::span<const std::byte> data);
    std::uint64_t digest() const;

private:
    struct Free {
        void operator()(XXH64_state_s* s) const noexcept;
    };
    std::unique_ptr<XXH64_state_s, Free> state_;
};

// fsync of a directory: makes the entries created, renamed or removed in it
// durable.
void fsync_dir(const std::filesystem::path& dir);

// Removes PATH if it exists and makes the removal durable.
void remove_durably(const std::filesystem::path& path);

// The first byte in RANGES (ascending) where the image file IMAGE (opened
// without following a symbolic link) and SOURCE (the snapshot image) differ,
// or nullopt when they are equal there. Both are read from their devices:
// with O_DIRECT, or where the file system refuses it (tmpfs before Linux
// 6.6) buffered after their cached pages are dropped; in 1 MiB pieces
// aligned to 4 KiB (a range is widened to 4 KiB boundaries).
std::optional<std::uint64_t> first_difference(const std::filesystem::path& image,
                                              const std::string& source,
                                              std::span<const ByteRange> ranges);

class TargetImage {
public:
    // A new image of SIZE bytes, all holes (an existing file is truncated).
    static TargetImage create(const std::filesystem::path& path, std::uint64_t size);
    // The existing image, updated in place.
    static TargetImage open(const std::filesystem::path& path);

    // Writes DATA at OFFSET. All-zero 4 KiB pieces are not written: a new
    // image leaves them as holes, an existing one has them punched out (or
    // written as zeros where the file system cannot punch).
    void write(std::uint64_t offset, std::span<const std::byte> data);
    // Bytes written with data (zeros skipped or punched do not count).
    std::uint64_t bytes_written() const { return written_; }

    // Makes the data and the file's directory entry durable.
    void sync();

    const std::filesystem::path& path() const { return path_; }

    static constexpr std::size_t granule = 4096;

private:
    TargetImage(std::filesystem::path path, UniqueFd fd, bool fresh);
    void put(std::uint64_t offset, std::span<const std::byte> data);
    void zero(std::uint64_t offset, std::uint64_t length);

    std::filesystem::path path_;
    UniqueFd fd_;
    bool fresh_;
    bool can_punch_ = true;
    std::uint64_t written_ = 0;
};

} // namespace blksnap::cli
