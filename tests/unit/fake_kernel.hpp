// A kernel stand-in for unit tests: devices with change trackers, snapshots
// and events, decoding the same ctl payloads the module does.
#pragma once

#include <blksnap/backend.hpp>
#include <blksnap/filter.hpp>

#include <deque>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace blksnap::test {

class FakeKernel final : public KernelBackend {
public:
    struct Device {
        DeviceId id;
        bool attached = false;
        CbtInfo info;
        std::vector<std::uint8_t> map;
        std::vector<SectorRange> dirty;
        std::optional<Uuid> snapshot;
        std::int32_t error_code = 0;
        std::string image;
    };
    struct Snap {
        std::uint64_t limit_sectors = 0;
        bool storage_unnamed = false; // st_nlink of the storage fd was 0
        std::set<std::string> devices;
        bool taken = false;
        std::deque<Event> events;
        bool vanish_when_drained = false; // gone once its events are read
    };

    // A device of CAPACITY bytes tracked in blocks of BLOCK_SIZE.
    Device& add_device(const std::string& path, std::uint64_t capacity, std::uint32_t block_size);
    // A write to block B: the map records the snapshot number being built.
    void write_block(const std::string& path, std::uint32_t block);
    // Makes the next operation OP on OBJECT ("attach", "/dev/vdb") fail.
    void fail_next(const std::string& op, const std::string& object, int err);

    Version version() override;
    AttachResult attach(const std::string& device) override;
    void detach(const std::string& device) override;
    long ctl(const std::string& device, unsigned cmd, void* opt, std::uint32_t& optlen) override;
    Uuid snapshot_create(int diff_storage_fd, std::uint64_t limit_sectors) override;
    void snapshot_destroy(const Uuid& id) override;
    void snapshot_take(const Uuid& id) override;
    std::vector<Uuid> snapshot_collect() override;
    std::vector<DeviceId> snapshot_devices(const Uuid& id) override;
    DeviceId device_id(const std::string& device) override;
    std::optional<Event> snapshot_wait_event(const Uuid& id, std::uint32_t timeout_ms) override;

    Version version_value{1, 2, 3, 0};
    std::uint32_t max_map_piece = 4096; // bytes one cbtmap call copies at most
    bool short_optlen = false;          // reply with optlen 0 (a broken module)
    std::map<std::string, Device> devices;
    std::map<Uuid, Snap> snapshots;
    std::vector<std::string> calls; // "attach /dev/vdb", ...

private:
    void enter(const std::string& op, const std::string& object);
    Device& device(const std::string& op, const std::string& path);
    Snap& snapshot(const std::string& op, const Uuid& id);

    std::map<std::string, int> failures_;
    unsigned next_id_ = 1;
    unsigned next_minor_ = 0;
};

} // namespace blksnap::test
