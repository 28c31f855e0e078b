// The backup job (what `blksnap backup` runs): one snapshot of all the
// devices, each copied into its image file in the backup directory, fully or
// only what changed since the state file's position; a restore point of the
// image (points.hpp); then the new state, and older points dropped. It
// prints nothing: what it does and how far it is reach the caller through
// BackupHooks, and a failure as an Error.
#pragma once

#include <blksnap/backend.hpp>
#include <blksnap/backup/plan.hpp>
#include <blksnap/backup/points.hpp>
#include <blksnap/backup/target.hpp>
#include <blksnap/error.hpp>
#include <blksnap/image_reader.hpp>

#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace blksnap::backup {

// What --verify compares, after the image is synced, with a second read of
// the snapshot: nothing, what this backup wrote, or the whole image.
enum class Verify { none, written, full };

struct BackupOptions {
    std::vector<std::string> devices;
    std::filesystem::path dir;     // DIR/<name>.img and DIR/<name>.state
    std::filesystem::path storage; // difference storage, as snapshot_create -f
    std::uint64_t limit = 0;       // its limit in bytes
    Verify verify = Verify::none;
    ReadOptions read{1u << 20, 8, true};
    std::uint64_t max_gap = 256u << 10; // see copy_plan
    // Blocks of the image compared with their checksums in the state file
    // before an incremental backup; by default up to 64 (and 64 MiB).
    std::optional<std::uint64_t> check_blocks;
    bool reflink = true; // false: never clone the image (tests)
    // The format of the restore points (DIR/NAME.points): by default the
    // newest point's, else raw where DIR's file system has reflinks,
    // else qcow2.
    std::optional<PointFormat> format;
    std::uint64_t keep = 0; // the newest points kept per device; 0: all
};

// The blocks checked when BackupOptions::check_blocks is not given: 64,
// fewer where they exceed 64 MiB, at least one.
std::uint64_t default_check_blocks(std::uint32_t block_size);

struct DeviceReport {
    std::string device;
    std::filesystem::path image;
    bool incremental = false;
    std::string reason;
    std::uint64_t size = 0;          // bytes of the device
    std::uint64_t to_read = 0;       // bytes the plan reads
    std::uint64_t bytes_read = 0;    // so far
    std::uint64_t bytes_written = 0; // so far, zeros excluded
    double seconds = 0;
    bool verified = false;
    std::uint64_t checked_blocks = 0; // of the image, against the state file
    std::uint64_t checked_bytes = 0;
    WritePath write_path = WritePath::none;
    Uuid generation_id;
    std::uint8_t changes_number = 0;
    std::optional<Point> point;         // the restore point it made
    std::vector<std::uint64_t> dropped; // older points removed (--keep)
};

struct BackupHooks {
    // The snapshot image of a device from its snapshot info; by default
    // the image's /dev path.
    std::function<std::string(const std::string& device, const SnapshotInfo& info)> image_path;
    std::function<void(const std::string& message)> note;  // what the job does on its own
    std::function<void(const DeviceReport& report)> start; // the decision is made
    std::function<void(const DeviceReport& report)> progress;
    std::function<void(const DeviceReport& report)> done; // the state is written
    std::function<bool()> interrupted;                    // stop (SIGINT, SIGTERM)
};

// The file that remembers the snapshot a running backup holds, so that the
// next run destroys it if the process was killed.
inline constexpr const char* snapshot_id_file = ".blksnap-snapshot";

// A failed backup of a device: the error, and what it left of the device's
// files (AFTERMATH, also at the end of what()).
class BackupFailed : public Error {
public:
    BackupFailed(const Error& e, std::string aftermath);
    const std::string& aftermath() const { return aftermath_; }

private:
    std::string aftermath_;
};

// Runs the backup; throws Error (BackupFailed once a device's files were
// touched) on the first failure, having destroyed the snapshot. A device
// done before the failure keeps its new state.
void run_backup(KernelBackend& kernel, const BackupOptions& options, const BackupHooks& hooks);

} // namespace blksnap::backup
