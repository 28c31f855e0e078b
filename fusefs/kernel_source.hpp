// Source on the loaded blksnap module.
#pragma once

#include "source.hpp"

#include <filesystem>
#include <memory>

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

private:
    std::filesystem::path sysfs_;
    std::unique_ptr<blksnap::KernelBackend> backend_;
};

} // namespace blksnapfs
