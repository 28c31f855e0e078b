#include <blksnap/error.hpp>
#include <blksnap/filter.hpp>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <filesystem>

namespace blksnap {

std::string SnapshotInfo::image_path() const {
    return image.empty() ? "" : "/dev/" + image;
}

std::string ctl_command_name(unsigned cmd) {
    switch (cmd) {
    case blkfilter_ctl_blksnap_cbtinfo:
        return "cbtinfo";
    case blkfilter_ctl_blksnap_cbtmap:
        return "cbtmap";
    case blkfilter_ctl_blksnap_cbtdirty:
        return "cbtdirty";
    case blkfilter_ctl_blksnap_snapshotadd:
        return "snapshotadd";
    case blkfilter_ctl_blksnap_snapshotinfo:
        return "snapshotinfo";
    case blkfilter_ctl_blksnap_cbtload:
        return "cbtload";
    }
    return "ctl#" + std::to_string(cmd);
}

DeviceFilter::DeviceFilter(KernelBackend& backend, std::string device)
    : backend_(backend), device_(std::move(device)) {}

std::vector<std::string> partition_names(const std::string& device,
                                         const std::filesystem::path& sysfs) {
    namespace fs = std::filesystem;
    std::error_code ec;
    const fs::path dir = sysfs / fs::canonical(device, ec).filename();
    std::vector<std::string> names;
    if (ec || fs::exists(dir / "partition", ec))
        return names;
    for (const auto& entry : fs::directory_iterator(dir, ec))
        if (fs::exists(entry.path() / "partition", ec))
            names.push_back(entry.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
}

bool DeviceFilter::attach() {
    try {
        return backend_.attach(device_) == AttachResult::attached;
    } catch (const Error& e) {
        // The module's EBUSY for a whole disk with partitions says nothing
        // of why: name them, and what to do.
        if (e.code() != EBUSY)
            throw;
        const auto parts = partition_names(device_);
        if (parts.empty())
            throw;
        std::string list, paths;
        for (const auto& p : parts) {
            list += (list.empty() ? "" : ", ") + p;
            paths += " /dev/" + p;
        }
        throw Error(EBUSY, context("attach", device_),
                    "a whole disk with partitions (" + list +
                        ") cannot be tracked: a snapshot freezes the file system of the device "
                        "it takes, not those on its partitions; attach the partitions instead "
                        "(blksnap attach -d" +
                        paths + ")");
    }
}

void DeviceFilter::detach() {
    backend_.detach(device_);
}

long DeviceFilter::ctl(unsigned cmd, void* opt, std::uint32_t optlen, std::uint32_t min_reply) {
    std::uint32_t len = optlen;
    long ret = backend_.ctl(device_, cmd, opt, len);
    if (len < min_reply)
        throw Error(EPROTO, context(ctl_command_name(cmd), device_),
                    "the module returned " + std::to_string(len) + " bytes, expected " +
                        std::to_string(min_reply));
    return ret;
}

CbtInfo DeviceFilter::cbt_info() {
    blksnap_cbtinfo raw{};
    ctl(blkfilter_ctl_blksnap_cbtinfo, &raw, sizeof(raw),
        offsetof(blksnap_cbtinfo, changes_number) + 1);
    return {raw.device_capacity, raw.block_size, raw.block_count, Uuid(raw.generation_id),
            raw.changes_number};
}

std::uint32_t DeviceFilter::read_cbt_map(std::uint32_t offset, std::span<std::uint8_t> out) {
    blksnap_cbtmap arg{};
    arg.offset = offset;
    arg.length = static_cast<std::uint32_t>(std::min<std::size_t>(out.size(), UINT32_MAX));
    arg.buffer = reinterpret_cast<std::uintptr_t>(out.data());
    long copied = ctl(blkfilter_ctl_blksnap_cbtmap, &arg, sizeof(arg));
    if (copied < 0 || static_cast<std::uint64_t>(copied) > arg.length)
        throw Error(EPROTO, context("cbtmap", device_),
                    "the module reported " + std::to_string(copied) + " bytes copied");
    return static_cast<std::uint32_t>(copied);
}

void DeviceFilter::load_cbt(const CbtInfo& saved, std::span<const std::uint8_t> map) {
    if (map.size() != saved.block_count)
        throw Error(EINVAL, context("cbtload", device_),
                    "the map has " + std::to_string(map.size()) + " bytes, not " +
                        std::to_string(saved.block_count));
    blksnap_cbtload arg{};
    arg.device_capacity = saved.device_capacity;
    arg.block_size = saved.block_size;
    arg.block_count = saved.block_count;
    arg.generation_id = saved.generation_id.raw();
    arg.changes_number = saved.changes_number;
    arg.map = reinterpret_cast<std::uintptr_t>(map.data());
    ctl(blkfilter_ctl_blksnap_cbtload, &arg, sizeof(arg));
}

void DeviceFilter::mark_dirty(std::span<const SectorRange> ranges) {
    std::vector<blksnap_sectors> raw;
    raw.reserve(ranges.size());
    for (const auto& r : ranges)
        raw.push_back({r.offset, r.count});
    blksnap_cbtdirty arg{};
    arg.count = static_cast<std::uint32_t>(raw.size());
    arg.dirty_sectors = reinterpret_cast<std::uintptr_t>(raw.data());
    ctl(blkfilter_ctl_blksnap_cbtdirty, &arg, sizeof(arg));
}

void DeviceFilter::snapshot_add(const Uuid& id) {
    blksnap_snapshotadd arg{id.raw()};
    ctl(blkfilter_ctl_blksnap_snapshotadd, &arg, sizeof(arg));
}

SnapshotInfo DeviceFilter::snapshot_info() {
    blksnap_snapshotinfo raw{};
    ctl(blkfilter_ctl_blksnap_snapshotinfo, &raw, sizeof(raw), sizeof(raw));
    auto* name = reinterpret_cast<const char*>(raw.image);
    return {raw.error_code, std::string(name, strnlen(name, sizeof(raw.image)))};
}

} // namespace blksnap
