// The change map of a device: one byte per tracking block, holding the
// number of the snapshot since which the block changed.
#pragma once

#include <blksnap/filter.hpp>

#include <cstdint>
#include <vector>

namespace blksnap::cbt {

// Reads the whole map (info.block_count bytes) in pieces of PIECE bytes.
// Error(EPROTO) when the module delivers less than block_count.
std::vector<std::uint8_t> read_map(DeviceFilter& filter, const CbtInfo& info,
                                   std::uint32_t piece = 1u << 20);

} // namespace blksnap::cbt
