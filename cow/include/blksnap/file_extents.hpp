// Where a file's data lies on its block device (FIEMAP).
#pragma once

#include <blksnap/device.hpp>
#include <blksnap/filter.hpp>

#include <string>
#include <vector>

namespace blksnap {

struct FileExtents {
    DeviceId device; // the device of the file system holding the file
    std::vector<SectorRange> ranges;
};

// Syncs the file, then maps its extents to 512-byte sectors of its device.
// Refuses (Error EOPNOTSUPP) extents without a known place of their own:
// unknown, delayed allocation, inline or tail-packed data, encoded.
FileExtents file_extents(const std::string& path);

} // namespace blksnap
