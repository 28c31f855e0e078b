#include <blksnap/cbt/changes.hpp>
#include <blksnap/error.hpp>

#include <algorithm>
#include <cerrno>

namespace blksnap::cbt {

namespace {

constexpr std::uint64_t sector_size = 512;

void check(const CbtInfo& info, std::span<const std::uint8_t> map) {
    if (map.size() != info.block_count)
        throw Error(EINVAL, "changed extents",
                    "the map has " + std::to_string(map.size()) + " bytes but the tracker " +
                        std::to_string(info.block_count) + " blocks");
    if (info.block_size == 0 || info.block_size % sector_size != 0)
        throw Error(EINVAL, "changed extents",
                    "block size " + std::to_string(info.block_size) + " is not a multiple of 512");
}

} // namespace

Changes changed_since(const CbtInfo& info, std::span<const std::uint8_t> map,
                      const Position& since) {
    check(info, map);
    if (since.generation_id != info.generation_id)
        return FullBackupNeeded{"change tracking generation changed from " +
                                since.generation_id.str() + " to " + info.generation_id.str()};
    if (since.changes_number > info.changes_number)
        return FullBackupNeeded{"changes number " + std::to_string(since.changes_number) +
                                " is ahead of the tracker's " +
                                std::to_string(info.changes_number)};

    const std::uint64_t capacity_sectors = info.device_capacity / sector_size;
    const std::uint64_t block_sectors = info.block_size / sector_size;
    std::vector<Extent> extents;
    for (std::uint64_t b = 0; b < map.size();) {
        if (map[b] <= since.changes_number) {
            ++b;
            continue;
        }
        const std::uint64_t first = b;
        while (b < map.size() && map[b] > since.changes_number)
            ++b;
        const std::uint64_t start = first * block_sectors;
        const std::uint64_t end = std::min(b * block_sectors, capacity_sectors);
        if (end > start)
            extents.push_back({start, end - start});
    }
    return extents;
}

} // namespace blksnap::cbt
