// Which parts of a device changed since an earlier snapshot.
#pragma once

#include <blksnap/filter.hpp>

#include <cstdint>
#include <span>
#include <string>
#include <variant>
#include <vector>

namespace blksnap::cbt {

// Where a backup stands: the tracker generation and the changes number of
// the snapshot it was read from.
struct Position {
    Uuid generation_id;
    std::uint8_t changes_number = 0;
    auto operator<=>(const Position&) const = default;
};

// Changed data as 512-byte sectors.
struct Extent {
    std::uint64_t sector = 0;
    std::uint64_t count = 0;
    auto operator<=>(const Extent&) const = default;
};

// The tracker cannot tell what changed since the position: copy everything.
struct FullBackupNeeded {
    std::string reason;
};

using Changes = std::variant<FullBackupNeeded, std::vector<Extent>>;

// The blocks of MAP (as read with INFO) that changed after the snapshot at
// SINCE: block b changed iff map[b] > since.changes_number within the same
// generation. Adjacent blocks merge into one extent; the last block is
// clipped to the device capacity. Error(EINVAL) if MAP and INFO disagree.
Changes changed_since(const CbtInfo& info, std::span<const std::uint8_t> map,
                      const Position& since);

} // namespace blksnap::cbt
