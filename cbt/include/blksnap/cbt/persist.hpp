// Keeping a device's change map across a module reload or a clean reboot.
//
// Saving writes, in a state directory (default /var/lib/blksnap):
//   NAME.cbt     the change-state file (state_file.hpp): map, generation,
//                changes number, geometry, xxh64
//   NAME.saved   a JSON record: device, identity, boot id and the block
//                layer's write counters at the save
// Restoring loads the map into a freshly attached tracker only if nothing
// wrote to the device since the save could be observed, and consumes both
// files either way; NAME.chain (JSON) then tells whether the generation
// continues or why a new one started.
#pragma once

#include <blksnap/cbt/state_file.hpp>
#include <blksnap/filter.hpp>

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>

namespace blksnap::cbt {

// Writes the block layer counted for a device and, for a whole disk, its
// partitions: name -> (writes completed, sectors written); plus the writes
// in flight now.
struct WriteCounters {
    std::map<std::string, std::pair<std::uint64_t, std::uint64_t>> completed;
    std::uint64_t in_flight = 0;
    bool operator==(const WriteCounters&) const = default;
    bool none() const; // no write completed, none in flight
};

// From /sys/class/block (SYSFS for tests).
WriteCounters write_counters(const std::string& device_path,
                             const std::filesystem::path& sysfs = "/sys/class/block");

// What identifies the device: its serial number or WWID when the driver
// gives one, else its disk's name; for a partition, with its number. (Its
// size is checked apart, with the tracking geometry.)
std::string device_identity(const std::string& device_path,
                            const std::filesystem::path& sysfs = "/sys/class/block");

// /proc/sys/kernel/random/boot_id.
std::string boot_id();

struct SaveRecord {
    std::string device;
    std::string identity;
    std::string boot_id;
    WriteCounters counters;
};

// The device as observed at restore.
struct Observed {
    std::string identity;
    std::string boot_id;
    WriteCounters counters;
    CbtInfo info; // of the freshly attached tracker
};

// Why the saved map may not be loaded, or nullopt when it may: in the boot
// of the save the counters must not have moved; after a reboot the device
// must not have been written since boot. Identity and geometry must match.
std::optional<std::string> why_not_restorable(const SaveRecord& saved, const CbtState& state,
                                              const Observed& now);

struct PersistPaths {
    std::filesystem::path state;  // NAME.cbt
    std::filesystem::path record; // NAME.saved
    std::filesystem::path chain;  // NAME.chain
};
// NAME is device_file_name() of the device ("vdb1", "mapper-vg-lv").
PersistPaths persist_paths(const std::filesystem::path& dir, const std::string& device_path);

// Saves the map of an attached device and detaches it. The map is read
// between two identical readings of the write counters with nothing in
// flight, and the counters must still be the same after the detach:
// Error(EBUSY) otherwise, and nothing is saved.
CbtInfo save_tracking(DeviceFilter& filter, const std::filesystem::path& dir);

struct ChainRecord {
    Uuid generation; // the generation this record speaks of
    bool continued = false;
    std::string reason; // why a new generation started
};

// Attaches the device if needed and loads its saved map when
// why_not_restorable() allows; consumes the saved files; writes and
// returns the chain record.
ChainRecord restore_tracking(DeviceFilter& filter, const std::filesystem::path& dir);

// The chain record of DEVICE if it speaks of generation GENERATION.
std::optional<ChainRecord> read_chain(const std::filesystem::path& dir,
                                      const std::string& device_path, const Uuid& generation);

} // namespace blksnap::cbt
