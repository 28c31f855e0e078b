// What the daemon asks the kernel, as an interface: KernelSource talks to the
// module, unit tests use a fake.
#pragma once

#include <blksnap/backend.hpp>
#include <blksnap/filter.hpp>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace blksnapfs {

// A device of a taken snapshot: one with an image.
struct TakenDevice {
    blksnap::Uuid snapshot; // the snapshot it belongs to
    blksnap::DeviceId original;
    std::string name;  // the original's kernel name: "vda", "loop0"
    std::string path;  // "/dev/vda"
    std::string image; // image device name: "blksnap-image_253:0"
    std::int32_t error_code = 0;
    blksnap::CbtInfo cbt;

    std::string image_path() const { return "/dev/" + image; }
};

class Source {
public:
    virtual ~Source() = default;

    virtual std::vector<blksnap::Uuid> snapshots() = 0;
    // The devices of snapshot ID that have an image, sorted by name; empty
    // when the snapshot is not taken or no longer exists.
    virtual std::vector<TakenDevice> taken_devices(const blksnap::Uuid& id) = 0;
    // Part of the change map of DEVICE from byte OFFSET; bytes copied.
    virtual std::uint32_t read_cbt_map(const TakenDevice& device, std::uint32_t offset,
                                       std::span<std::uint8_t> out) = 0;
    // As blksnap::KernelBackend::snapshot_wait_event.
    virtual std::optional<blksnap::Event> wait_event(const blksnap::Uuid& id,
                                                     std::uint32_t timeout_ms) = 0;

    // How many changes of the kernel's state (a take, a destroy) the source
    // has seen so far: when it grows, what was read before is stale. A
    // source that cannot tell stays at 0.
    virtual std::uint64_t changes() { return 0; }
    // Waits up to TIMEOUT_MS (-1: no limit) until changes() may have grown:
    // change; timeout; woken by wake(), or at once when the source cannot
    // tell.
    enum class Wait { change, timeout, woken };
    virtual Wait wait_change(int /*timeout_ms*/) { return Wait::woken; }
    // Ends a wait_change() in progress, and every later one.
    virtual void wake() {}
};

} // namespace blksnapfs
