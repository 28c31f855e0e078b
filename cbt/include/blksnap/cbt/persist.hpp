// Keeping a device's change map across a module reload or a clean reboot.
//
// Saving writes, in a state directory (default /var/lib/blksnap):
//   NAME.cbt     the change-state file (state_file.hpp): map, generation,
//                changes number, geometry, xxh64
//   NAME.saved   a JSON record: device, identity, boot id, the block
//                layer's write counters at the save and a fingerprint of
//                the device's content
//   boots        a JSON record of this boot and the one before it, noted by
//                every save and take (the unit takes at every boot)
// Taking (the first step at boot, no module needed) moves NAME.saved and
// NAME.cbt into taken/BOOT_ID/ (this boot's): a map taken in a boot that
// did not restore it is never loaded. Restoring loads the map into a
// freshly attached tracker only if nothing wrote to the device since the
// save could be observed, and consumes the files either way; NAME.chain
// (JSON) then tells whether the generation continues or why a new one
// started.
#pragma once

#include <blksnap/cbt/state_file.hpp>
#include <blksnap/filter.hpp>

#include <blksnap/device.hpp>

#include <cstdint>
#include <filesystem>
#include <functional>
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

// What udev recorded of a block device (its database, /run/udev/data):
// ID_SERIAL, ID_WWN, ID_PART_ENTRY_UUID, DM_UUID...; empty when udev has
// not processed the device or does not run (an initramfs, a rescue shell,
// a container).
using UdevProperties = std::map<std::string, std::string>;
UdevProperties udev_properties(DeviceId id); // through libudev
using UdevLookup = std::function<UdevProperties(DeviceId)>;

// What identifies the device, as KEY=VALUE words. Its disk: the first of
// udev's ID_WWN_WITH_EXTENSION, ID_WWN, ID_SERIAL, DM_UUID, MD_UUID; else,
// from sysfs, a device-mapper device's dm/uuid (or dm/name), a loop
// device's loop/backing_file with the file's inode and loop/offset, a
// wwid or serial attribute of the disk or its device; only when none of
// these exists, its kernel name (name=vdb). A partition adds its number
// and start sector, and udev's ID_PART_ENTRY_UUID when udev has it. (Its
// size is checked apart, with the tracking geometry.) UDEV is asked with
// the numbers of the sysfs "dev" attribute.
std::string device_identity(const std::string& device_path,
                            const std::filesystem::path& sysfs = "/sys/class/block",
                            const UdevLookup& udev = udev_properties);

// A fingerprint of the content of the block device open on FD, of SIZE
// bytes: "xxh64:64x4096+65536:HEX", an xxh64 of its first 64 KiB (where
// file systems keep their superblocks) and of 64 blocks of 4 KiB spread
// evenly over it, with their offsets. Read with O_DIRECT when FD has it:
// what the medium holds, not the page cache.
std::string content_fingerprint(int fd, std::uint64_t size, const std::string& device);

// /proc/sys/kernel/random/boot_id.
std::string boot_id();

// DIR/boots: this boot and the one before it, as far as the state
// directory saw them.
struct BootRecord {
    std::string boot_id;
    std::string previous; // "" when unknown
};
// Notes boot NOW in DIR/boots (when it is not the one recorded, the
// recorded one becomes the previous) and returns the record. Idempotent
// within a boot; concurrent callers write the same record.
BootRecord note_boot(const std::filesystem::path& dir, const std::string& now = boot_id());

struct SaveRecord {
    std::string device;
    std::string identity;
    std::string boot_id;
    WriteCounters counters;
    std::string fingerprint; // content_fingerprint() at the save
};

// The device as observed at restore.
struct Observed {
    std::string identity;
    std::string boot_id;
    std::string previous_boot; // note_boot()'s previous
    bool counts_writes = true; // counts_writes()
    WriteCounters counters;    // read once the tracker is attached
    CbtInfo info;              // of the freshly attached tracker
    std::string fingerprint;   // content_fingerprint(), after the attach
};

// Why the saved map may not be loaded, or nullopt when it may: in the boot
// of the save the counters must not have moved; in another boot, the save
// must be of the boot just before this one and the device must not have
// been written since boot. Identity and geometry must match, the block
// layer must count the device's writes, and the content's fingerprint must
// be the one saved.
std::optional<std::string> why_not_restorable(const SaveRecord& saved, const CbtState& state,
                                              const Observed& now);

struct PersistPaths {
    std::filesystem::path state;  // NAME.cbt
    std::filesystem::path record; // NAME.saved
    std::filesystem::path chain;  // NAME.chain
};
// NAME is device_file_name() of the device ("vdb1", "mapper-vg-lv").
PersistPaths persist_paths(const std::filesystem::path& dir, const std::string& device_path);
// Where take_saved() moves them in boot BOOT: DIR/taken/BOOT/NAME.*.
PersistPaths taken_paths(const std::filesystem::path& dir, const std::string& device_path,
                         const std::string& boot);

// The first step at boot, which needs no module: notes this boot
// (note_boot) and moves the device's saved files, if any, into
// taken_paths() of this boot, the record first. Whatever happens after, the
// save is consumed: taken in a boot that does not restore it (the module
// missing, cbtrestore failing), it is never loaded (restore_tracking says
// why). Returns whether it moved a save.
bool take_saved(const std::filesystem::path& dir, const std::string& device_path,
                const std::string& now = boot_id());

// Saves the map of an attached device and detaches it, holding the device
// open with O_EXCL throughout (its page cache flushed first). The map and
// the content's fingerprint are read between two identical readings of the
// write counters with nothing in flight, and the counters must still be the
// same after the detach: Error(EBUSY) otherwise, and nothing is saved.
// Refused, with the device still tracked: a device mounted or held by
// another (Error(EBUSY): the O_EXCL open failed), a device in a snapshot
// (Error(EBUSY) naming it: the map read then is the snapshot's, frozen at
// its take), a device whose writes the block layer does not count
// (Error(EOPNOTSUPP)).
CbtInfo save_tracking(DeviceFilter& filter, const std::filesystem::path& dir);

struct ChainRecord {
    Uuid generation; // the generation this record speaks of
    bool continued = false;
    std::string reason; // why a new generation started
};

// The snapshot DEVICE is in, if any.
std::optional<Uuid> snapshot_holding(KernelBackend& kernel, const std::string& device_path);

// take_saved(), then attaches the device if needed and loads the map this
// boot took when why_not_restorable() allows; a map taken in another boot
// is refused (it went a boot untracked). Consumes the taken files; writes
// and returns the chain record. The counters are read after the attach: a
// write before it is counted, one after it is tracked.
ChainRecord restore_tracking(DeviceFilter& filter, const std::filesystem::path& dir);

// The chain record of DEVICE if it speaks of generation GENERATION.
std::optional<ChainRecord> read_chain(const std::filesystem::path& dir,
                                      const std::string& device_path, const Uuid& generation);

} // namespace blksnap::cbt
