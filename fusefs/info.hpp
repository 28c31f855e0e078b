// The text of a device's info file.
#pragma once

#include "source.hpp"

#include <string>

namespace blksnapfs {

// JSON: device, name, major, minor, snapshot, image, capacity, block_size,
// block_count, generation_id, changes_number, error_code, corrupted; ends
// with a newline.
std::string info_text(const TakenDevice& device);

} // namespace blksnapfs
