// The block checksums (xxh64) a backup keeps of its image in the state
// file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

struct XXH64_state_s;

namespace blksnap::backup {

// A checksum as 16 lower-case hex digits.
std::string hex64(std::uint64_t v);

// Streaming xxh64 (seed 0).
class Xxh64 {
public:
    Xxh64();
    void reset();
    void update(std::span<const std::byte> data);
    std::uint64_t digest() const;

private:
    struct Free {
        void operator()(XXH64_state_s* s) const noexcept;
    };
    std::unique_ptr<XXH64_state_s, Free> state_;
};

// The xxh64 of each BLOCK_SIZE-byte block of an image of SIZE bytes (the
// last block up to SIZE), kept up to date from what a backup writes: a
// block's sum is replaced once it has been written whole, in order.
class BlockSums {
public:
    BlockSums(std::vector<std::uint64_t> sums, std::uint32_t block_size, std::uint64_t size);
    void written(std::uint64_t offset, std::span<const std::byte> data);
    // The sums; a block written only in part (never, for plans of whole
    // blocks) has its sum read from FILE.
    std::vector<std::uint64_t> finish(const std::filesystem::path& file);

private:
    std::vector<std::uint64_t> sums_;
    std::uint32_t block_size_;
    std::uint64_t size_;
    std::optional<std::uint64_t> block_; // the block being written
    std::uint64_t fed_ = 0;              // of it
    Xxh64 hash_;
    std::vector<std::uint64_t> reread_;
};

} // namespace blksnap::backup
