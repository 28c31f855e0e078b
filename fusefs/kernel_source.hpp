// Source on the loaded blksnap module.
#pragma once

#include "source.hpp"

#include <blksnap/unique_fd.hpp>

#include <filesystem>
#include <memory>
#include <mutex>

namespace blksnapfs {

class KernelSource final : public Source {
public:
    // Throws blksnap::Error when the module is not loaded.
    explicit KernelSource(std::filesystem::path sysfs = "/sys");

    std::vector<blksnap::Uuid> snapshots() override;
    std::vector<TakenDevice> taken_devices(const blksnap::Uuid& id) override;
    std::uint32_t read_cbt_map(const TakenDevice& device, std::uint32_t offset,
                               std::span<std::uint8_t> out) override;
    std::optional<blksnap::Event> wait_event(const blksnap::Uuid& id,
                                             std::uint32_t timeout_ms) override;

    // Changes are the kernel's uevents of snapshot image devices (added at
    // a take, removed at a destroy), read from a netlink socket.
    std::uint64_t changes() override;
    Wait wait_change(int timeout_ms) override;
    void wake() override;

private:
    std::filesystem::path sysfs_;
    std::unique_ptr<blksnap::KernelBackend> backend_;
    blksnap::UniqueFd uevents_; // NETLINK_KOBJECT_UEVENT; closed: no uevents
    blksnap::UniqueFd wakeup_;  // eventfd that ends wait_change()
    std::mutex mutex_;          // reading uevents_
    std::uint64_t changes_ = 0;
};

// Whether a kernel uevent message (its "ACTION@DEVPATH" header first) is
// about a snapshot image device.
bool image_uevent(std::string_view message);

} // namespace blksnapfs
