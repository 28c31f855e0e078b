// The blksnap filter of one block device: attach/detach and the commands
// carried by BLKFILTER_CTL (or IOCTL_BLKSNAP_FILTER_CTL).
#pragma once

#include <blksnap/backend.hpp>

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

namespace blksnap {

struct CbtInfo {
    std::uint64_t device_capacity = 0; // bytes
    std::uint32_t block_size = 0;      // bytes
    std::uint32_t block_count = 0;
    Uuid generation_id;
    std::uint8_t changes_number = 0;
};

struct SectorRange {
    std::uint64_t offset = 0;
    std::uint64_t count = 0;
    auto operator<=>(const SectorRange&) const = default;
};

struct SnapshotInfo {
    std::int32_t error_code = 0; // 0 or a negative errno
    std::string image;           // image device name once taken, else empty

    std::string image_path() const; // "/dev/" + image, or "" before take
};

// The partitions of DEVICE when it is a whole disk ("vdb1", "vdb2"; sorted),
// from SYSFS; none for a partition or a disk without.
std::vector<std::string> partition_names(const std::string& device,
                                         const std::filesystem::path& sysfs = "/sys/class/block");

// Name of a filter command ("cbtinfo", ...), for error messages.
std::string ctl_command_name(unsigned cmd);

class DeviceFilter {
public:
    DeviceFilter(KernelBackend& backend, std::string device);

    const std::string& device() const { return device_; }
    KernelBackend& backend() const { return backend_; }

    // True when newly attached, false when it already was. A whole disk
    // with partitions is refused (Error(EBUSY)) naming them.
    bool attach();
    void detach();

    CbtInfo cbt_info();
    // Copies the map from byte OFFSET into OUT; returns the bytes copied.
    std::uint32_t read_cbt_map(std::uint32_t offset, std::span<std::uint8_t> out);
    void mark_dirty(std::span<const SectorRange> ranges);
    // Continues tracking from a saved map (blkfilter_ctl_blksnap_cbtload):
    // SAVED gives its geometry, generation and changes number. Error(EBUSY)
    // once a write, a mark or a take reached the tracker since its attach.
    void load_cbt(const CbtInfo& saved, std::span<const std::uint8_t> map);
    void snapshot_add(const Uuid& id);
    SnapshotInfo snapshot_info();

private:
    long ctl(unsigned cmd, void* opt, std::uint32_t optlen, std::uint32_t min_reply = 0);

    KernelBackend& backend_;
    std::string device_;
};

} // namespace blksnap
