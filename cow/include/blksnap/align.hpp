// Alignment arithmetic for reading a source in aligned blocks.
#pragma once

#include <algorithm>
#include <cstdint>

namespace blksnap {

constexpr std::uint64_t align_down(std::uint64_t value, std::uint64_t alignment) {
    return value / alignment * alignment;
}

constexpr std::uint64_t align_up(std::uint64_t value, std::uint64_t alignment) {
    return (value + alignment - 1) / alignment * alignment;
}

// The blocks of BLOCK bytes that cover [OFFSET, OFFSET+LENGTH): indexes
// FIRST..LAST inclusive. LENGTH must be positive.
struct BlockSpan {
    std::uint64_t first = 0;
    std::uint64_t last = 0;
};

constexpr BlockSpan blocks_covering(std::uint64_t offset, std::uint64_t length,
                                    std::uint64_t block) {
    return {offset / block, (offset + length - 1) / block};
}

// The bytes block INDEX holds of a source of SIZE bytes: [offset, offset+length).
// LENGTH is zero past the end; the last block is cut at SIZE rounded up to
// ALIGNMENT (O_DIRECT needs whole logical blocks).
struct BlockRange {
    std::uint64_t offset = 0;
    std::uint64_t length = 0;
};

constexpr BlockRange block_range(std::uint64_t index, std::uint64_t block, std::uint64_t size,
                                 std::uint64_t alignment) {
    const std::uint64_t begin = index * block;
    if (begin >= size)
        return {begin, 0};
    const std::uint64_t end = std::min(begin + block, align_up(size, alignment));
    return {begin, end - begin};
}

// How much of a read of LENGTH bytes at OFFSET lies before SIZE.
constexpr std::uint64_t clamp_length(std::uint64_t offset, std::uint64_t length,
                                     std::uint64_t size) {
    return offset >= size ? 0 : std::min(length, size - offset);
}

} // namespace blksnap
