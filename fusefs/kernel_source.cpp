#include "kernel_source.hpp"

#include <blksnap/error.hpp>
#include <blksnap/linux_backend.hpp>

#include <algorithm>
#include <cerrno>

namespace blksnapfs {

KernelSource::KernelSource(std::filesystem::path sysfs)
    : sysfs_(std::move(sysfs)), backend_(blksnap::open_kernel_backend()) {
    // Opens the control device now: later calls come from several threads.
    backend_->snapshot_collect();
}

std::vector<blksnap::Uuid> KernelSource::snapshots() {
    return backend_->snapshot_collect();
}

std::vector<TakenDevice> KernelSource::taken_devices(const blksnap::Uuid& snapshot) {
    std::vector<blksnap::DeviceId> ids;
    try {
        ids = backend_->snapshot_devices(snapshot);
    } catch (const blksnap::Error& e) {
        if (e.code() == ENOENT)
            return {}; // destroyed meanwhile
        throw;
    }
    std::vector<TakenDevice> out;
    for (const auto& id : ids) {
        TakenDevice dev;
        dev.snapshot = snapshot;
        dev.original = id;
        dev.path = blksnap::block_device_path(id, sysfs_.string());
        dev.name = std::filesystem::path(dev.path).filename().string();
        try {
            blksnap::DeviceFilter filter(*backend_, dev.path);
            const auto info = filter.snapshot_info();
            if (info.image.empty())
                continue; // not taken (yet)
            dev.image = info.image;
            dev.error_code = info.error_code;
            dev.cbt = filter.cbt_info();
        } catch (const blksnap::Error&) {
            continue; // detached or removed meanwhile
        }
        out.push_back(std::move(dev));
    }
    std::sort(out.begin(), out.end(),
              [](const TakenDevice& a, const TakenDevice& b) { return a.name < b.name; });
    return out;
}

std::uint32_t KernelSource::read_cbt_map(const TakenDevice& device, std::uint32_t offset,
                                         std::span<std::uint8_t> out) {
    blksnap::DeviceFilter filter(*backend_, device.path);
    return filter.read_cbt_map(offset, out);
}

std::optional<blksnap::Event> KernelSource::wait_event(const blksnap::Uuid& id,
                                                       std::uint32_t timeout_ms) {
    return backend_->snapshot_wait_event(id, timeout_ms);
}

} // namespace blksnapfs
