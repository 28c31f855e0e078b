// Restore points: each successful backup of a device leaves one in
// DIR/NAME.points/, a complete image of the device at the take that
// standard tools open: NNNNNN.raw (a reflink copy of the backup's image,
// sharing its unchanged extents with the other points) or NNNNNN.qcow2 (an
// overlay on the point before it holding only what changed, or a base),
// each with NNNNNN.meta (blksnap-point(5)). A point appears only complete:
// both files are written under a .partial name, synced and renamed, the
// data file last.
#pragma once

#include <blksnap/backup/plan.hpp>
#include <blksnap/uuid.hpp>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace blksnap::backup {

enum class PointFormat { raw, qcow2 };
const char* point_format_name(PointFormat f); // "raw", "qcow2"
std::optional<PointFormat> parse_point_format(const std::string& text);

// What NNNNNN.meta says of a point.
struct PointMeta {
    std::string device;
    std::uint64_t id = 0;
    PointFormat format = PointFormat::raw;
    std::int64_t time = 0; // of the take, seconds since the epoch
    Uuid generation_id;
    std::uint8_t changes_number = 0;
    bool incremental = false;
    std::string reason;
    std::uint64_t size = 0; // bytes of the device
    std::uint32_t block_size = 0;
    std::uint64_t bytes_changed = 0;      // since the point before (the whole device when full)
    std::uint64_t bytes_stored = 0;       // bytes this point added to the directory
    bool verified = false;                // by backup --verify=full or blksnap verify
    std::optional<std::uint64_t> backing; // qcow2: the point it is an overlay on
    std::vector<std::uint64_t> sums;      // xxh64 of each block of the image
};

void write_point_meta(const std::filesystem::path& file, const PointMeta& meta);
// Error(EBADMSG) when FILE is not a valid point meta file.
PointMeta read_point_meta(const std::filesystem::path& file);

struct Point {
    PointMeta meta;
    std::filesystem::path data; // the image file a tool opens
    std::filesystem::path meta_file;
};

// DIR/NAME.points for the device's file name NAME.
std::filesystem::path points_dir(const std::filesystem::path& dir, const std::string& name);
std::string point_file_name(std::uint64_t id, const char* ext); // "000012.raw"

// The complete points in PDIR, oldest first; a point whose meta file is
// damaged is an Error(EBADMSG).
std::vector<Point> list_points(const std::filesystem::path& pdir);
// The ids of the complete points in PDIR, oldest first (no meta file read).
std::vector<std::uint64_t> point_ids(const std::filesystem::path& pdir);
// Point ID of PDIR, its meta file alone read; none when it is not there.
std::optional<Point> find_point_in(const std::filesystem::path& pdir, std::uint64_t id);

// The point directories under DIR (one per device backed up), by name.
std::vector<std::filesystem::path> point_dirs(const std::filesystem::path& dir);

// Whether a file in DIR can be cloned with FICLONE (a file system with
// reflinks): raw points then cost only what changes.
bool can_reflink(const std::filesystem::path& dir);

// What a backup gives to make a point of its image HEAD.
struct NewPoint {
    std::filesystem::path head;
    PointMeta meta;                 // all but id, format, backing, bytes_stored
    std::vector<ByteRange> changed; // incremental: what the backup wrote
    // The newest point in PDIR, when it is HEAD as it was before this
    // backup: an incremental qcow2 point can be an overlay on it.
    std::optional<Point> continues;
};

// Makes the point in PDIR (created when missing) in FORMAT and returns it.
Point publish_point(const std::filesystem::path& pdir, PointFormat format, NewPoint point);

// Removes what an interrupted run left in PDIR: .partial files; a qcow2
// file whose meta file is gone, which a merge (retention) was folding into
// the next point, has that merge finished. NOTE is told what was done.
void tidy_points(const std::filesystem::path& pdir,
                 const std::function<void(const std::string&)>& note);

// Keeps the newest KEEP (at least 1) points in PDIR: older raw points are
// removed; an older qcow2 point that the next point is an overlay on takes
// that overlay in (qemu-img commit) and replaces it, so every kept point
// still opens. Returns the ids dropped.
std::vector<std::uint64_t> keep_newest(const std::filesystem::path& pdir, std::uint64_t keep);

} // namespace blksnap::backup
