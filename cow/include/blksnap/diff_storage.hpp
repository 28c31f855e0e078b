// Difference storage provisioning: what to hand to IOCTL_BLKSNAP_SNAPSHOT_CREATE.
#pragma once

#include <blksnap/unique_fd.hpp>

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <sys/types.h>

namespace blksnap {

enum class StorageKind {
    tmpfile,      // unnamed file in a directory (O_TMPFILE): gone with the snapshot
    file,         // a regular file, created when missing
    block_device, // a whole block device, used exclusively
};

struct DiffStorage {
    UniqueFd fd;
    StorageKind kind;
};

// Opens PATH for the kernel: a directory gets an O_TMPFILE file, a regular
// file (created if missing) and a block device are opened O_RDWR|O_EXCL.
// Anything else is refused with Error(EINVAL) naming the path.
DiffStorage open_diff_storage(const std::filesystem::path& path);

// The block devices that the storage open as FD is written to: the device
// of its file system (or itself), the whole disk of a partition, and what
// those are stacked on (device-mapper and md members, loop devices' backing
// files), recursively. Each maps to the chain that leads to it
// ("loop0 -> vdb1 -> vdb"). A storage on a device being snapshotted would
// copy-on-write its own writes: Snapshot::create refuses that.
std::map<dev_t, std::string> storage_devices(int fd);

// The limit in 512-byte sectors, rounded up.
std::uint64_t bytes_to_sectors(std::uint64_t bytes);

} // namespace blksnap
