#include <blksnap/cbt/map.hpp>
#include <blksnap/error.hpp>

#include <algorithm>
#include <cerrno>

namespace blksnap::cbt {

std::vector<std::uint8_t> read_map(DeviceFilter& filter, const CbtInfo& info, std::uint32_t piece) {
    std::vector<std::uint8_t> map(info.block_count);
    std::uint32_t offset = 0;
    while (offset < info.block_count) {
        const std::uint32_t want = std::min(piece, info.block_count - offset);
        const std::uint32_t got =
            filter.read_cbt_map(offset, std::span<std::uint8_t>(map.data() + offset, want));
        if (got == 0)
            throw Error(EPROTO, context("cbtmap", filter.device()),
                        "the map ended at byte " + std::to_string(offset) + " of " +
                            std::to_string(info.block_count));
        offset += got;
    }
    return map;
}

} // namespace blksnap::cbt
