#include "fake_kernel.hpp"

#include <blksnap/error.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <sys/stat.h>

namespace blksnap::test {

FakeKernel::Device& FakeKernel::add_device(const std::string& path, std::uint64_t capacity,
                                           std::uint32_t block_size) {
    Device& d = devices[path];
    d.id = {252, next_minor_++};
    d.info.device_capacity = capacity;
    d.info.block_size = block_size;
    d.info.block_count = static_cast<std::uint32_t>((capacity + block_size - 1) / block_size);
    d.info.generation_id = Uuid::parse("11111111-2222-3333-4444-" + std::string(11, '5') +
                                       std::to_string(next_minor_ % 10));
    d.map.assign(d.info.block_count, 0);
    return d;
}

void FakeKernel::write_block(const std::string& path, std::uint32_t block) {
    Device& d = devices.at(path);
    d.map.at(block) = static_cast<std::uint8_t>(d.info.changes_number + 1);
}

void FakeKernel::fail_next(const std::string& op, const std::string& object, int err) {
    failures_[context(op, object)] = err;
}

void FakeKernel::enter(const std::string& op, const std::string& object) {
    const std::string what = context(op, object);
    calls.push_back(what);
    if (auto it = failures_.find(what); it != failures_.end()) {
        int err = it->second;
        failures_.erase(it);
        throw Error(err, what);
    }
}

FakeKernel::Device& FakeKernel::device(const std::string& op, const std::string& path) {
    auto it = devices.find(path);
    if (it == devices.end())
        throw Error(ENODEV, context(op, path));
    return it->second;
}

FakeKernel::Snap& FakeKernel::snapshot(const std::string& op, const Uuid& id) {
    auto it = snapshots.find(id);
    if (it == snapshots.end())
        throw Error(ENOENT, context(op, id.str()));
    return it->second;
}

Version FakeKernel::version() {
    enter("version", "");
    return version_value;
}

AttachResult FakeKernel::attach(const std::string& path) {
    enter("attach", path);
    Device& d = device("attach", path);
    if (d.attached)
        return AttachResult::already_attached;
    d.attached = true;
    return AttachResult::attached;
}

void FakeKernel::detach(const std::string& path) {
    enter("detach", path);
    Device& d = device("detach", path);
    if (!d.attached)
        throw Error(ENOENT, context("detach", path));
    d.attached = false;
}

long FakeKernel::ctl(const std::string& path, unsigned cmd, void* opt, std::uint32_t& optlen) {
    const std::string op = ctl_command_name(cmd);
    enter(op, path);
    Device& d = device(op, path);
    if (!d.attached)
        throw Error(ENOENT, context(op, path));
    auto need = [&](std::size_t size) {
        if (optlen < size)
            throw Error(EINVAL, context(op, path));
    };
    long ret = 0;
    switch (cmd) {
    case blkfilter_ctl_blksnap_cbtinfo: {
        need(sizeof(blksnap_cbtinfo));
        blksnap_cbtinfo raw{};
        raw.device_capacity = d.info.device_capacity;
        raw.block_size = d.info.block_size;
        raw.block_count = d.info.block_count;
        raw.generation_id = d.info.generation_id.raw();
        raw.changes_number = d.info.changes_number;
        std::memcpy(opt, &raw, sizeof(raw));
        optlen = sizeof(raw);
        break;
    }
    case blkfilter_ctl_blksnap_cbtmap: {
        need(sizeof(blksnap_cbtmap));
        blksnap_cbtmap arg;
        std::memcpy(&arg, opt, sizeof(arg));
        if (arg.offset > d.map.size())
            throw Error(EINVAL, context(op, path));
        const auto n =
            std::min<std::size_t>({arg.length, max_map_piece, d.map.size() - arg.offset});
        std::memcpy(reinterpret_cast<void*>(arg.buffer), d.map.data() + arg.offset, n);
        ret = static_cast<long>(n);
        break;
    }
    case blkfilter_ctl_blksnap_cbtdirty: {
        need(sizeof(blksnap_cbtdirty));
        blksnap_cbtdirty arg;
        std::memcpy(&arg, opt, sizeof(arg));
        const auto* ranges = reinterpret_cast<const blksnap_sectors*>(arg.dirty_sectors);
        for (std::uint32_t i = 0; i < arg.count; ++i) {
            if (ranges[i].offset + ranges[i].count > d.info.device_capacity / 512)
                throw Error(EINVAL, context(op, path));
            d.dirty.push_back({ranges[i].offset, ranges[i].count});
        }
        break;
    }
    case blkfilter_ctl_blksnap_snapshotadd: {
        need(sizeof(blksnap_snapshotadd));
        blksnap_snapshotadd arg;
        std::memcpy(&arg, opt, sizeof(arg));
        Snap& s = snapshot(op, Uuid(arg.id));
        if (d.snapshot)
            throw Error(EBUSY, context(op, path));
        d.snapshot = Uuid(arg.id);
        d.error_code = 0;
        s.devices.insert(path);
        break;
    }
    case blkfilter_ctl_blksnap_snapshotinfo: {
        need(sizeof(blksnap_snapshotinfo));
        blksnap_snapshotinfo raw{};
        raw.error_code = d.error_code;
        std::memcpy(raw.image, d.image.data(), std::min(d.image.size(), sizeof(raw.image)));
        std::memcpy(opt, &raw, sizeof(raw));
        optlen = sizeof(raw);
        break;
    }
    default:
        throw Error(ENOTTY, context(op, path));
    }
    if (short_optlen)
        optlen = 0;
    return ret;
}

Uuid FakeKernel::snapshot_create(int diff_storage_fd, std::uint64_t limit_sectors) {
    enter("snapshot_create", "");
    struct stat st;
    if (::fstat(diff_storage_fd, &st) != 0)
        throw Error(EBADF, "snapshot_create");
    char text[40];
    std::snprintf(text, sizeof(text), "aaaaaaaa-0000-4000-8000-%012u", next_id_++);
    const Uuid id = Uuid::parse(text);
    snapshots[id] = Snap{limit_sectors, st.st_nlink == 0, {}, false, {}, false};
    return id;
}

void FakeKernel::snapshot_destroy(const Uuid& id) {
    enter("snapshot_destroy", id.str());
    Snap& s = snapshot("snapshot_destroy", id);
    for (const auto& path : s.devices) {
        devices.at(path).snapshot.reset();
        devices.at(path).image.clear();
    }
    snapshots.erase(id);
}

void FakeKernel::snapshot_take(const Uuid& id) {
    enter("snapshot_take", id.str());
    Snap& s = snapshot("snapshot_take", id);
    if (s.taken || s.devices.empty())
        throw Error(s.taken ? EALREADY : ENODEV, context("snapshot_take", id.str()));
    s.taken = true;
    for (const auto& path : s.devices) {
        Device& d = devices.at(path);
        d.image = "blksnap-image_" + d.id.str();
        ++d.info.changes_number;
    }
}

std::vector<Uuid> FakeKernel::snapshot_collect() {
    enter("snapshot_collect", "");
    std::vector<Uuid> ids;
    for (const auto& [id, s] : snapshots)
        ids.push_back(id);
    return ids;
}

std::vector<DeviceId> FakeKernel::snapshot_devices(const Uuid& id) {
    enter("snapshot_devices", id.str());
    std::vector<DeviceId> out;
    for (const auto& path : snapshot("snapshot_devices", id).devices)
        out.push_back(devices.at(path).id);
    return out;
}

DeviceId FakeKernel::device_id(const std::string& device) {
    const auto it = devices.find(device);
    if (it == devices.end())
        throw Error(ENOENT, context("stat", device));
    return it->second.id;
}

std::optional<Event> FakeKernel::snapshot_wait_event(const Uuid& id, std::uint32_t) {
    enter("snapshot_waitevent", id.str());
    Snap& s = snapshot("snapshot_waitevent", id);
    if (s.events.empty()) {
        if (s.vanish_when_drained) {
            snapshot_destroy(id);
            throw Error(ENOENT, context("snapshot_waitevent", id.str()));
        }
        return std::nullopt;
    }
    Event ev = s.events.front();
    s.events.pop_front();
    return ev;
}

} // namespace blksnap::test
