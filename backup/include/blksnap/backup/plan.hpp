// The pure decisions of a backup: full or incremental and why, and which
// byte ranges to read and write.
#pragma once

#include <blksnap/backup/previous.hpp>
#include <blksnap/cbt/changes.hpp>
#include <blksnap/filter.hpp>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace blksnap::backup {

struct ByteRange {
    std::uint64_t offset = 0;
    std::uint64_t length = 0;
    auto operator<=>(const ByteRange&) const = default;
};

struct Decision {
    bool incremental = false;
    std::string reason;
    std::vector<cbt::Extent> extents; // incremental: what changed
};

// Full or incremental, for a device whose tracker reads INFO and MAP now
// (while the snapshot is held) and whose snapshot image is SOURCE_SIZE
// bytes. Incremental only when the state file is valid and not marked
// incomplete, made for the same geometry, the image file has the device's
// size and is the file the state was bound to (device, inode, size, mtime
// and ctime as recorded), and the tracker is in the same generation;
// otherwise the reason says why not. The block checksums of the binding are
// checked apart (sample_blocks).
Decision decide(const PreviousBackup& previous, const CbtInfo& info,
                std::span<const std::uint8_t> map, std::uint64_t source_size);

// One read of the snapshot image and the parts of it to write.
struct CopyStep {
    ByteRange read;
    std::vector<ByteRange> write; // inside READ, ascending
};

// Reads for the changed EXTENTS (ascending, as cbt::changed_since gives
// them), clipped to SIZE bytes. Extents closer than MAX_GAP bytes share one
// read (one request instead of two: the reader keeps several in flight
// across reads anyway); the gap is read but not written.
std::vector<CopyStep> copy_plan(std::span<const cbt::Extent> extents, std::uint64_t size,
                                std::uint64_t max_gap);

// Up to COUNT of the BLOCKS blocks of BLOCK_SIZE bytes that PLAN does not
// write (a block written in part counts as written), ascending, spread
// evenly over them: all of them when there are no more than COUNT. PHASE,
// in [0, 1), shifts the choice within each stretch (a random one checks
// other blocks on each run).
std::vector<std::uint64_t> sample_blocks(std::span<const CopyStep> plan, std::uint64_t blocks,
                                         std::uint32_t block_size, std::uint64_t count,
                                         double phase);

// The whole device: one read, all written.
std::vector<CopyStep> full_plan(std::uint64_t size);

// Bytes that a plan reads and writes.
std::uint64_t bytes_to_read(std::span<const CopyStep> plan);
std::uint64_t bytes_to_write(std::span<const CopyStep> plan);

} // namespace blksnap::backup
