// A snapshot session: create, add devices, take, events; destroyed on scope
// exit unless released.
#pragma once

#include <blksnap/backend.hpp>
#include <blksnap/filter.hpp>

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace blksnap {

class Snapshot {
public:
    // Creates a snapshot whose difference storage is at STORAGE (see
    // open_diff_storage) and may grow to LIMIT_BYTES, then adds DEVICES.
    static Snapshot create(KernelBackend& backend, const std::filesystem::path& storage,
                           std::uint64_t limit_bytes, const std::vector<std::string>& devices = {});
    // An existing snapshot; not destroyed by this object unless OWN.
    static Snapshot open(KernelBackend& backend, const Uuid& id, bool own = false);

    Snapshot(Snapshot&& other) noexcept;
    Snapshot& operator=(Snapshot&&) = delete;
    Snapshot(const Snapshot&) = delete;
    Snapshot& operator=(const Snapshot&) = delete;
    ~Snapshot();

    const Uuid& id() const { return id_; }

    // Attaches the filter when needed and adds the device to the snapshot.
    void add_device(const std::string& device);
    void take();
    std::optional<Event> wait_event(std::chrono::milliseconds timeout);
    // Snapshot info of one of its devices (the image name after take()).
    SnapshotInfo info(const std::string& device);

    // Destroys the snapshot now.
    void destroy();
    // Keeps the snapshot alive past this object; returns its id.
    Uuid release() noexcept;

private:
    Snapshot(KernelBackend& backend, const Uuid& id, bool own);

    KernelBackend& backend_;
    Uuid id_;
    bool own_;
};

} // namespace blksnap
