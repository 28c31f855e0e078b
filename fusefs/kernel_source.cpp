#include "kernel_source.hpp"
#include "log.hpp"

#include <blksnap/error.hpp>
#include <blksnap/linux_backend.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <linux/netlink.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

namespace blksnapfs {

bool image_uevent(std::string_view message) {
    const auto header = message.substr(0, message.find('\0'));
    return header.find('@') != std::string_view::npos &&
           header.find("/blksnap-image") != std::string_view::npos;
}

KernelSource::KernelSource(std::filesystem::path sysfs)
    : sysfs_(std::move(sysfs)), backend_(blksnap::open_kernel_backend()) {
    // Opens the control device now: later calls come from several threads.
    backend_->snapshot_collect();
    const int wake = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (wake < 0)
        blksnap::throw_errno("eventfd");
    wakeup_.reset(wake);
    const int fd =
        ::socket(AF_NETLINK, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_KOBJECT_UEVENT);
    sockaddr_nl addr{};
    addr.nl_family = AF_NETLINK;
    addr.nl_groups = 1; // the kernel's uevents
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
        const int err = errno;
        if (fd >= 0)
            ::close(fd);
        log(LOG_WARNING, std::string("no kernel uevents (") + std::strerror(err) +
                             "): snapshots are looked for again every second only");
        return;
    }
    uevents_.reset(fd);
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

std::uint64_t KernelSource::changes() {
    std::lock_guard lock(mutex_);
    if (!uevents_)
        return changes_;
    char buf[8192];
    for (;;) {
        const ssize_t n = ::recv(uevents_.get(), buf, sizeof(buf), MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == ENOBUFS) // some were lost: any may have been ours
                ++changes_;
            break;
        }
        if (image_uevent(std::string_view(buf, static_cast<std::size_t>(n))))
            ++changes_;
    }
    return changes_;
}

Source::Wait KernelSource::wait_change(int timeout_ms) {
    if (!uevents_)
        return Wait::woken;
    pollfd fds[2] = {{uevents_.get(), POLLIN, 0}, {wakeup_.get(), POLLIN, 0}};
    for (;;) {
        const int n = ::poll(fds, 2, timeout_ms);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 || (fds[1].revents & POLLIN))
            return Wait::woken;
        return n == 0 ? Wait::timeout : Wait::change;
    }
}

void KernelSource::wake() {
    const std::uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(wakeup_.get(), &one, sizeof(one));
}

} // namespace blksnapfs
