// Block device identity: paths, major:minor numbers, sizes.
#pragma once

#include <compare>
#include <cstdint>
#include <string>

namespace blksnap {

struct DeviceId {
    unsigned major = 0;
    unsigned minor = 0;

    std::string str() const; // "MAJ:MIN"
    auto operator<=>(const DeviceId&) const = default;
};

// The numbers of the block device at PATH; Error(ENOTBLK) for anything else.
DeviceId block_device_id(const std::string& path);

// A /dev path for the block device: /dev/NAME from sysfs, else
// /dev/block/MAJ:MIN.
std::string block_device_path(DeviceId id, const std::string& sysfs = "/sys");

// Size in bytes of an open block device or regular file.
std::uint64_t size_of(int fd, const std::string& path);

} // namespace blksnap
