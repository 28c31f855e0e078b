#include <blksnap/diff_storage.hpp>
#include <blksnap/error.hpp>
#include <blksnap/snapshot.hpp>

#include <algorithm>
#include <cerrno>
#include <optional>
#include <sys/stat.h>
#include <system_error>

namespace blksnap {

namespace {

// A storage written through one of DEVICES (a file on a loop device or a
// logical volume whose backing is the device) would copy-on-write its own
// writes and deadlock; the kernel sees only the disk the storage is on.
void refuse_stacked(const DiffStorage& ds, const std::filesystem::path& storage,
                    const std::vector<std::string>& devices) {
    if (devices.empty())
        return;
    const auto under = storage_devices(ds.fd.get());
    for (const auto& dev : devices) {
        struct stat st;
        if (::stat(dev.c_str(), &st) != 0 || !S_ISBLK(st.st_mode))
            continue; // adding it reports what is wrong with it
        const auto it = under.find(st.st_rdev);
        if (it != under.end())
            throw Error(EINVAL, context("difference storage", storage.string()),
                        std::generic_category().message(EINVAL) + ": it is written through " + dev +
                            " (" + it->second + "), which is to be snapshotted");
    }
}

} // namespace

Snapshot::Snapshot(KernelBackend& backend, const Uuid& id, bool own)
    : backend_(backend), id_(id), own_(own) {}

Snapshot::Snapshot(Snapshot&& other) noexcept
    : backend_(other.backend_), id_(other.id_), own_(other.own_) {
    other.own_ = false;
}

Snapshot::~Snapshot() {
    if (!own_)
        return;
    try {
        backend_.snapshot_destroy(id_);
    } catch (...) {
        // Nothing sensible to do in a destructor; the kernel frees the
        // snapshot when the module unloads.
    }
}

Snapshot Snapshot::create(KernelBackend& backend, const std::filesystem::path& storage,
                          std::uint64_t limit_bytes, const std::vector<std::string>& devices) {
    Uuid id;
    {
        DiffStorage ds = open_diff_storage(storage);
        refuse_stacked(ds, storage, devices);
        id = backend.snapshot_create(ds.fd.get(), bytes_to_sectors(limit_bytes));
    } // the kernel holds its own reference to the storage file now
    Snapshot snap(backend, id, true);
    for (const auto& dev : devices)
        snap.add_device(dev);
    return snap;
}

Snapshot Snapshot::open(KernelBackend& backend, const Uuid& id, bool own) {
    return Snapshot(backend, id, own);
}

namespace {

// The snapshot that holds DEVICE, if any.
std::optional<Uuid> holder_of(KernelBackend& backend, const std::string& device) {
    const DeviceId dev = backend.device_id(device);
    for (const auto& id : backend.snapshot_collect()) {
        try {
            const auto devs = backend.snapshot_devices(id);
            if (std::find(devs.begin(), devs.end(), dev) != devs.end())
                return id;
        } catch (const Error& e) {
            if (e.code() != ENOENT) // destroyed since the list: not the holder
                throw;
        }
    }
    return std::nullopt;
}

} // namespace

void Snapshot::add_device(const std::string& device) {
    DeviceFilter filter(backend_, device);
    filter.attach();
    try {
        filter.snapshot_add(id_);
    } catch (const Error& e) {
        // The kernel's EBUSY does not say who holds the device: name the
        // snapshot, the user's next step is to destroy it (or not).
        if (e.code() == EBUSY) {
            std::optional<Uuid> holder;
            try {
                holder = holder_of(backend_, device);
            } catch (const Error&) {
                throw e; // the lookup failing says nothing: the first error
            }
            if (!holder)
                throw;
            throw Error(EBUSY, context("snapshotadd", device),
                        *holder == id_ ? "already in this snapshot (" + id_.str() + ")"
                                       : "held by snapshot " + holder->str() +
                                             " (destroy it first, or wait for it)");
        }
        // The kernel's ENOENT says only "no such file" about a device that
        // exists: name the snapshot that is missing.
        if (e.code() != ENOENT)
            throw;
        const auto ids = backend_.snapshot_collect();
        if (std::find(ids.begin(), ids.end(), id_) != ids.end())
            throw;
        throw Error(ENOENT, context("snapshotadd", device),
                    "snapshot " + id_.str() + ": " + std::generic_category().message(ENOENT));
    }
}

void Snapshot::take() {
    backend_.snapshot_take(id_);
}

std::optional<Event> Snapshot::wait_event(std::chrono::milliseconds timeout) {
    return backend_.snapshot_wait_event(id_, static_cast<std::uint32_t>(timeout.count()));
}

SnapshotInfo Snapshot::info(const std::string& device) {
    return DeviceFilter(backend_, device).snapshot_info();
}

void Snapshot::destroy() {
    own_ = false;
    backend_.snapshot_destroy(id_);
}

Uuid Snapshot::release() noexcept {
    own_ = false;
    return id_;
}

} // namespace blksnap
