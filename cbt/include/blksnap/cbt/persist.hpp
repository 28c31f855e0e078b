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

// What the block layer counted for one device: writes and discards
// completed and the sectors of each (fields 5, 7, 12 and 14 of its stat
// file; write-zeroes count as writes).
struct WriteCount {
    std::uint64_t writes = 0;
    std::uint64_t sectors = 0;
    std::uint64_t discards = 0;
    std::uint64_t discard_sectors = 0;
    bool operator==(const WriteCount&) const = default;
    bool none() const { return !writes && !sectors && !discards && !discard_sectors; }
};

// Writes the block layer counted for a device: name -> counts. For a whole
// disk, its own and each partition's; for a partition, its own and, under
// the whole disk's name, what was written through the whole disk and not
// through any partition (the disk's counts less its partitions'), since such
// a write can reach the partition's sectors without passing its filter.
// Plus the writes in flight now (through the whole disk, for a partition).
struct WriteCounters {
    std::map<std::string, WriteCount> completed;
    std::uint64_t in_flight = 0;
    bool operator==(const WriteCounters&) const = default;
    bool none() const; // no write completed, none in flight
};

// From /sys/class/block (SYSFS for tests).
WriteCounters write_counters(const std::string& device_path,
                             const std::filesystem::path& sysfs = "/sys/class/block");

// Whether the block layer counts the I/O of the device (its disk's
// queue/iostats is 1). Off, writes leave the counters as they are: a saved
// map could never be proven current.
bool counts_writes(const std::string& device_path,
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
    bool counts_writes = true; // counts_writes()
    WriteCounters counters;    // read once the tracker is attached
    CbtInfo info;              // of the freshly attached tracker
};

// Why the saved map may not be loaded, or nullopt when it may: in the boot
// of the save the counters must not have moved; after a reboot the device
// must not have been written since boot. Identity and geometry must match,
// and the block layer must count the device's writes.
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
// Error(EBUSY) otherwise, and nothing is saved. Refused, with the device
// still tracked: a device in a snapshot (Error(EBUSY) naming it: the map
// read then is the snapshot's, frozen at its take), a device whose writes
// the block layer does not count (Error(EOPNOTSUPP)).
CbtInfo save_tracking(DeviceFilter& filter, const std::filesystem::path& dir);

struct ChainRecord {
    Uuid generation; // the generation this record speaks of
    bool continued = false;
    std::string reason; // why a new generation started
};

// The snapshot DEVICE is in, if any.
std::optional<Uuid> snapshot_holding(KernelBackend& kernel, const std::string& device_path);

// Attaches the device if needed and loads its saved map when
// why_not_restorable() allows; consumes the saved files; writes and
// returns the chain record. The counters are read after the attach: a
// write before it is counted, one after it is tracked.
ChainRecord restore_tracking(DeviceFilter& filter, const std::filesystem::path& dir);

// The chain record of DEVICE if it speaks of generation GENERATION.
std::optional<ChainRecord> read_chain(const std::filesystem::path& dir,
                                      const std::string& device_path, const Uuid& generation);

} // namespace blksnap::cbt
