#include "kernel_source.hpp"

#include <blksnap/error.hpp>
#include <blksnap/linux_backend.hpp>

#include <algorithm>
#include <charconv>
#include <fstream>

namespace blksnapfs {

namespace {

std::optional<blksnap::DeviceId> parse_dev(std::string_view text) {
    blksnap::DeviceId id;
    const auto colon = text.find(':');
    if (colon == std::string_view::npos)
        return std::nullopt;
    const char* end = text.data() + text.size();
    auto r1 = std::from_chars(text.data(), text.data() + colon, id.major);
    auto r2 = std::from_chars(text.data() + colon + 1, end, id.minor);
    if (r1.ec != std::errc() || r1.ptr != text.data() + colon || r2.ec != std::errc() ||
        r2.ptr != end)
        return std::nullopt;
    return id;
}

} // namespace

KernelSource::KernelSource(std::filesystem::path sysfs)
    : sysfs_(std::move(sysfs)), backend_(blksnap::open_kernel_backend()) {
    // Opens the control device now: later calls come from several threads.
    backend_->snapshot_collect();
}

std::vector<blksnap::Uuid> KernelSource::snapshots() {
    return backend_->snapshot_collect();
}

std::vector<TakenDevice> KernelSource::taken_devices() {
    std::vector<TakenDevice> out;
    std::ifstream attached(sysfs_ / "class/misc/blksnap-control/attached");
    for (std::string line; std::getline(attached, line);) {
        const auto id = parse_dev(line);
        if (!id)
            continue;
        TakenDevice dev;
        dev.original = *id;
        dev.path = blksnap::block_device_path(*id, sysfs_.string());
        dev.name = std::filesystem::path(dev.path).filename().string();
        try {
            blksnap::DeviceFilter filter(*backend_, dev.path);
            const auto info = filter.snapshot_info();
            if (info.image.empty())
                continue;
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
