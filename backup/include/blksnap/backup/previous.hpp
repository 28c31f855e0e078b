// What a backup directory holds of a device's last backup: its image file
// and its state file, as they are before this run.
#pragma once

#include <blksnap/cbt/state_file.hpp>

#include <cstdint>
#include <filesystem>
#include <string>

namespace blksnap::backup {

// What the backup directory holds for a device before this run.
struct PreviousBackup {
    enum class State { missing, damaged, valid };
    State state = State::missing;
    std::string problem; // damaged: what is wrong with the state file
    cbt::CbtState cbt;   // valid: the position and map of the last backup
    bool image = false;  // the image file exists
    std::uint64_t image_size = 0;
    cbt::FileIdentity image_file; // image: what identifies it now
};

// The previous backup of a device as its files tell it.
PreviousBackup load_previous(const std::filesystem::path& image,
                             const std::filesystem::path& state);

} // namespace blksnap::backup
