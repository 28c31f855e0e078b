// The change-state file: where a backup product keeps its position (the
// generation and changes number of its last snapshot) and the change map of
// that moment, protected by an xxh64 checksum; version 2 also binds it to
// the image file the backup wrote (blksnap backup), so that an image
// changed since can be told.
//
// Layout, all integers little-endian (see blksnap-cbt(5)):
//   offset  size  field
//        0     8  magic "BLKSNCBT"
//        8     4  version (1, or 2 with an image binding)
//       12    16  generation id
//       28     1  changes number
//       29     1  flags (version 2; bit 0: incomplete), zero in version 1
//       30     2  reserved, zero
//       32     4  block size in bytes
//       36     4  block count N
//       40     8  device capacity in bytes
//       48     N  change map, one byte per block
//   version 2 only, the image binding at B = 48+N:
//      B+0     8  image file: st_dev
//      B+8     8  st_ino
//     B+16     8  size in bytes
//     B+24     8  mtime, seconds (signed)
//     B+32     8  ctime, seconds (signed)
//     B+40     4  mtime, nanoseconds
//     B+44     4  ctime, nanoseconds
//     B+48     4  block checksum count C (the image's size in blocks)
//     B+52     4  reserved, zero
//     B+56    8C  xxh64 (seed 0) of each block of the image
//   then       8  xxh64 (seed 0) of all the bytes before it
#pragma once

#include <blksnap/cbt/changes.hpp>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <vector>

struct stat;

namespace blksnap::cbt {

// The name of a device's state files (blksnap backup's DIR/NAME.img and
// .state, cbtsave's NAME.cbt): the path without "/dev/" and with every
// other '/' turned into '-' ("vdb1" for /dev/vdb1, "mapper-vg-root" for
// /dev/mapper/vg-root, "disk-by-id-X" for /dev/disk/by-id/X: a symbolic
// link is not resolved, so a stable name gives a stable file). A path
// outside /dev gives its last component. Error(EINVAL) when nothing usable
// is left.
std::string device_file_name(const std::string& device);

// What fstat(2) tells of a file that changes when anything writes it or
// puts another file in its place: the device and inode, the size, the
// modification time and the change time (which no user can set: a write, a
// copy back or a touch changes it), both to the nanosecond.
struct FileIdentity {
    std::uint64_t device = 0;
    std::uint64_t inode = 0;
    std::uint64_t size = 0;
    std::int64_t mtime_sec = 0;
    std::uint32_t mtime_nsec = 0;
    std::int64_t ctime_sec = 0;
    std::uint32_t ctime_nsec = 0;

    static FileIdentity of(const struct ::stat& st);
    bool operator==(const FileIdentity&) const = default;
};

// The image file a state was written for: its identity once it was synced,
// and the xxh64 of each of its blocks of the state's block size (the last
// one up to the image's size).
struct ImageBinding {
    FileIdentity file;
    std::vector<std::uint64_t> sums;
    bool operator==(const ImageBinding&) const = default;
};

struct CbtState {
    Position position;
    std::uint32_t block_size = 0;
    std::uint64_t device_capacity = 0;
    std::vector<std::uint8_t> map; // its size is the block count
    // Version 2: the image the state describes, and whether a backup is
    // writing it (the image cannot be trusted).
    std::optional<ImageBinding> image;
    bool incomplete = false;

    // The state of a device now: its tracker info and map.
    static CbtState of(const CbtInfo& info, std::vector<std::uint8_t> map);
};

inline constexpr char state_magic[8] = {'B', 'L', 'K', 'S', 'N', 'C', 'B', 'T'};
inline constexpr std::uint32_t state_version = 1;
inline constexpr std::uint32_t state_version_bound = 2;
inline constexpr std::size_t state_header_size = 48;
inline constexpr std::size_t state_binding_size = 56; // before the block checksums
inline constexpr std::size_t state_checksum_size = 8;
inline constexpr std::uint8_t state_flag_incomplete = 1;

// Version 1 without an image binding, 2 with one. Error(EINVAL) for a state
// that cannot be written: incomplete without a binding, or a binding whose
// checksum count is not the image's size in blocks.
std::vector<std::uint8_t> encode_state(const CbtState& state);
// Error(EBADMSG) naming WHAT for a damaged image: bad magic, unsupported
// version, wrong size, checksum mismatch, an inconsistent binding.
CbtState decode_state(std::span<const std::uint8_t> bytes, const std::string& what);

// Writes BYTES to PATH atomically (mode 0600): a temporary file beside
// PATH, fsync, rename, fsync of the directory.
void write_file_atomic(const std::filesystem::path& path, std::span<const std::uint8_t> bytes);
// write_file_atomic() of encode_state(STATE).
void write_state_file(const std::filesystem::path& path, const CbtState& state);
// Error(EBADMSG) for a damaged file (decode_state()); any other errno is
// the file's not being readable (a symbolic link is refused, ELOOP).
CbtState read_state_file(const std::filesystem::path& path);

// Error(EXDEV) when STATE was made for a device of another geometry than
// INFO (block size, capacity or block count); WHAT names the file.
void check_same_device(const CbtState& state, const CbtInfo& info, const std::string& what);

} // namespace blksnap::cbt
