// Reading back what a backup wrote, from the devices rather than the page
// cache: the image compared with the snapshot (--verify), and the checksums
// of the image's blocks.
#pragma once

#include <blksnap/backup/plan.hpp>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace blksnap::backup {

// The first byte in RANGES (ascending) where the image file IMAGE (opened
// without following a symbolic link) and SOURCE (the snapshot image) differ,
// or nullopt when they are equal there. Both are read from their devices:
// with O_DIRECT, or where the file system refuses it (tmpfs before Linux
// 6.6) buffered after their cached pages are dropped; in 1 MiB pieces
// aligned to 4 KiB (a range is widened to 4 KiB boundaries).
std::optional<std::uint64_t> first_difference(const std::filesystem::path& image,
                                              const std::string& source,
                                              std::span<const ByteRange> ranges);

// The xxh64 of each of BLOCKS (of BLOCK_SIZE bytes, the last one of the
// file shorter) of FILE, read from its device as first_difference() reads.
std::vector<std::uint64_t> block_sums(const std::filesystem::path& file, std::uint32_t block_size,
                                      std::span<const std::uint64_t> blocks);

} // namespace blksnap::backup
