// The kernel operations blksnap needs, as an interface: LinuxBackend talks
// to the module, tests substitute a fake.
#pragma once

#include <blksnap/device.hpp>
#include <blksnap/uuid.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace blksnap {

struct Version {
    std::uint16_t major = 0;
    std::uint16_t minor = 0;
    std::uint16_t revision = 0;
    std::uint16_t build = 0;

    std::string str() const; // "MAJOR.MINOR.REVISION.BUILD"
};

// A snapshot event. For blksnap_event_code_corrupted, device and error_code
// come from the event body; other codes leave them zero.
struct Event {
    std::uint32_t code = 0;
    std::int64_t time_label = 0;
    DeviceId device;
    std::int32_t error_code = 0;

    std::string name() const; // "corrupted", or "unknown-CODE"
};

enum class AttachResult { attached, already_attached };

// Every method throws blksnap::Error naming the operation and its object.
class KernelBackend {
public:
    virtual ~KernelBackend() = default;

    virtual Version version() = 0;

    // Filter of one block device, named by its path.
    virtual AttachResult attach(const std::string& device) = 0;
    virtual void detach(const std::string& device) = 0;
    // Sends filter command CMD (enum blkfilter_ctl_blksnap) with the buffer
    // OPT of OPTLEN bytes. Returns the command's non-negative result; OPTLEN
    // receives what the kernel wrote back.
    virtual long ctl(const std::string& device, unsigned cmd, void* opt, std::uint32_t& optlen) = 0;

    // Snapshots, through the control device.
    virtual Uuid snapshot_create(int diff_storage_fd, std::uint64_t limit_sectors) = 0;
    virtual void snapshot_destroy(const Uuid& id) = 0;
    virtual void snapshot_take(const Uuid& id) = 0;
    virtual std::vector<Uuid> snapshot_collect() = 0;
    // The devices added to snapshot ID, in the order they were added.
    // Error(ENOENT) when the snapshot does not exist.
    virtual std::vector<DeviceId> snapshot_devices(const Uuid& id) = 0;
    // The device number of the block device at DEVICE (stat(2)).
    virtual DeviceId device_id(const std::string& device);
    // The next event, or nullopt when TIMEOUT_MS passed without one.
    // Error(ENOENT) when the snapshot does not exist (any more).
    virtual std::optional<Event> snapshot_wait_event(const Uuid& id, std::uint32_t timeout_ms) = 0;
};

} // namespace blksnap
