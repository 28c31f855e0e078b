// Larger read-ahead for the mount: fewer, bigger FUSE reads of image.raw.
#pragma once

#include <istream>
#include <optional>
#include <string>

namespace blksnapfs {

// The "MAJ:MIN" of the file system mounted at MOUNTPOINT (an absolute path)
// in /proc/self/mountinfo text, the last mount there winning.
std::optional<std::string> mount_device(std::istream& mountinfo, const std::string& mountpoint);

// Sets /sys/class/bdi/MAJ:MIN/read_ahead_kb of the mount at MOUNTPOINT to KB.
// Best effort: false when it could not.
bool set_readahead(const std::string& mountpoint, unsigned kb);

} // namespace blksnapfs
