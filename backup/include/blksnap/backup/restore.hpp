// Reading restore points back: a point written to a device or a file
// (restore), only the blocks changed since it written back to the device it
// came from (quick rollback), and a point checked against its checksums
// (verify).
#pragma once

#include <blksnap/backend.hpp>
#include <blksnap/backup/batch_io.hpp>
#include <blksnap/backup/points.hpp>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>

namespace blksnap::backup {

// The image of a point, as a tool sees it: the raw file, or the qcow2 chain
// through qemu-nbd.
class PointReader {
public:
    virtual ~PointReader() = default;
    virtual std::uint64_t size() const = 0;
    virtual void read(std::uint64_t offset, std::span<std::byte> data) = 0;
    // Reads every piece (scattered ranges of the image): by default one
    // after another.
    virtual void read_all(std::span<const IoPiece> pieces);
    static std::unique_ptr<PointReader> open(const Point& point);
};

// The point of a backup directory a command names: the device's (its file
// name or path; may be omitted when DIR holds one device's points) point
// ID, or its newest.
Point find_point(const std::filesystem::path& dir, const std::optional<std::string>& device,
                 const std::optional<std::uint64_t>& id);

struct RestoreOptions {
    std::filesystem::path dir;
    std::optional<std::string> device;
    std::optional<std::uint64_t> point;
    std::filesystem::path target; // a block device or a file
    bool changed_only = false;
};

struct RestoreReport {
    Point point;
    std::string target;
    bool changed_only = false;
    std::uint64_t to_write = 0;       // bytes
    std::uint64_t bytes_written = 0;  // so far
    std::uint64_t blocks_checked = 0; // against the point's checksums
    double seconds = 0;
    // Where the seconds went: finding and opening the point and the target
    // (and, for a quick rollback, reading the change map); reading,
    // checking and writing; the target's fsync; reading the written blocks
    // back from the device (a quick rollback only).
    struct Phases {
        double prepare = 0;
        double copy = 0;
        double sync = 0;
        double readback = 0;
    } phases{};
};

struct RestoreHooks {
    std::function<void(const RestoreReport&)> start;
    std::function<void(const RestoreReport&)> progress;
    std::function<bool()> interrupted;
};

// Writes the point to the target. A block device must not be mounted or
// held (it is opened O_EXCL) and not smaller than the point; a file is
// made sparse of the point's size. Every block read from the point is
// checked against its checksum first. With CHANGED_ONLY the target must be
// the point's device, tracked in the point's generation: only the blocks
// its change map marks since the point are written, then read back and
// checked; otherwise Error(EINVAL) says why not.
RestoreReport run_restore(KernelBackend& kernel, const RestoreOptions& options,
                          const RestoreHooks& hooks);

// Reads the whole point and checks each block against the point's checksum;
// Error(EIO) at the first that differs. A point that passes is marked
// verified in its meta file.
void verify_point(
    Point& point,
    const std::function<void(std::uint64_t done, std::uint64_t total)>& progress = {});

} // namespace blksnap::backup
