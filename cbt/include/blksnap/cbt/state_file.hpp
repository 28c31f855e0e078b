// The change-state file: where a backup product keeps its position (the
// generation and changes number of its last snapshot) and the change map of
// that moment, protected by an xxh64 checksum.
//
// Layout, all integers little-endian (see blksnap-cbt(5)):
//   offset  size  field
//        0     8  magic "BLKSNCBT"
//        8     4  version (1)
//       12    16  generation id
//       28     1  changes number
//       29     3  reserved, zero
//       32     4  block size in bytes
//       36     4  block count N
//       40     8  device capacity in bytes
//       48     N  change map, one byte per block
//     48+N     8  xxh64 (seed 0) of bytes [0, 48+N)
#pragma once

#include <blksnap/cbt/changes.hpp>

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

namespace blksnap::cbt {

// The name of a device's state files (blksnap backup's DIR/NAME.img and
// .state, cbtsave's NAME.cbt): the path without "/dev/" and with every
// other '/' turned into '-' ("vdb1" for /dev/vdb1, "mapper-vg-root" for
// /dev/mapper/vg-root, "disk-by-id-X" for /dev/disk/by-id/X: a symbolic
// link is not resolved, so a stable name gives a stable file). A path
// outside /dev gives its last component. Error(EINVAL) when nothing usable
// is left.
std::string device_file_name(const std::string& device);

struct CbtState {
    Position position;
    std::uint32_t block_size = 0;
    std::uint64_t device_capacity = 0;
    std::vector<std::uint8_t> map; // its size is the block count

    // The state of a device now: its tracker info and map.
    static CbtState of(const CbtInfo& info, std::vector<std::uint8_t> map);
};

inline constexpr char state_magic[8] = {'B', 'L', 'K', 'S', 'N', 'C', 'B', 'T'};
inline constexpr std::uint32_t state_version = 1;
inline constexpr std::size_t state_header_size = 48;
inline constexpr std::size_t state_checksum_size = 8;

std::vector<std::uint8_t> encode_state(const CbtState& state);
// Error(EBADMSG) naming WHAT for a damaged image: bad magic, unsupported
// version, wrong size, checksum mismatch.
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
