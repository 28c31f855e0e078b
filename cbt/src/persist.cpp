#include <blksnap/cbt/map.hpp>
#include <blksnap/cbt/persist.hpp>
#include <blksnap/error.hpp>

#include <blksnap/unique_fd.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fcntl.h>
#include <fstream>
#include <libudev.h>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <thread>
#include <unistd.h>
#include <xxhash.h>

namespace blksnap::cbt {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// The first line of a sysfs attribute, or "" when it does not exist.
std::string attribute(const fs::path& path) {
    std::ifstream in(path);
    std::string line;
    if (in)
        std::getline(in, line);
    while (!line.empty() && (line.back() == ' ' || line.back() == '\n'))
        line.pop_back();
    return line;
}

std::string device_name(const std::string& device_path) {
    std::error_code ec;
    fs::path p = fs::canonical(device_path, ec);
    if (ec)
        throw Error(ec.value(), device_path);
    return p.filename().string();
}

fs::path block_dir(const std::string& name, const fs::path& sysfs) {
    const fs::path dir = sysfs / name;
    if (!fs::exists(dir / "stat"))
        throw Error(ENODEV, context("find the block device", name), "not in " + sysfs.string());
    return dir;
}

// Writes and discards completed and their sectors: fields 5, 7, 12 and 14
// of the stat file (the discard fields since Linux 4.19).
WriteCount completed_writes(const fs::path& dir) {
    std::istringstream in(attribute(dir / "stat"));
    std::uint64_t f[14] = {};
    for (auto& v : f)
        if (!(in >> v))
            throw Error(EPROTO, (dir / "stat").string(),
                        "unexpected format (fewer than 14 fields: no discard counts)");
    return {f[4], f[6], f[11], f[13]};
}

std::uint64_t writes_in_flight(const fs::path& dir) {
    std::istringstream in(attribute(dir / "inflight"));
    std::uint64_t reads = 0, writes = 0;
    if (!(in >> reads >> writes))
        throw Error(EPROTO, (dir / "inflight").string(), "unexpected format");
    return writes;
}

std::uint64_t less(std::uint64_t a, std::uint64_t b) {
    return a > b ? a - b : 0;
}

// The partitions of the whole disk at DIR: name -> sysfs directory.
std::map<std::string, fs::path> partitions_of(const fs::path& dir) {
    std::map<std::string, fs::path> parts;
    // A whole disk's partitions are directories of its own with a
    // "partition" attribute.
    for (const auto& entry : fs::directory_iterator(fs::canonical(dir)))
        if (fs::exists(entry.path() / "partition"))
            parts[entry.path().filename().string()] = entry.path();
    return parts;
}

json counters_json(const WriteCounters& c) {
    json j = json::object();
    for (const auto& [name, v] : c.completed)
        j[name] = {v.writes, v.sectors, v.discards, v.discard_sectors};
    return j;
}

WriteCounters counters_from(const json& j) {
    WriteCounters c;
    for (const auto& [name, v] : j.items()) {
        if (v.size() != 4) // saved by a version that did not count discards
            throw Error(EBADMSG, "the saved write counters",
                        "not the four counts of writes and discards");
        c.completed[name] = {v.at(0).get<std::uint64_t>(), v.at(1).get<std::uint64_t>(),
                             v.at(2).get<std::uint64_t>(), v.at(3).get<std::uint64_t>()};
    }
    return c;
}

void write_json(const fs::path& path, const json& doc) {
    const std::string text = doc.dump(1) + "\n";
    write_file_atomic(path,
                      std::span(reinterpret_cast<const std::uint8_t*>(text.data()), text.size()));
}

json read_json(const fs::path& path) {
    std::ifstream in(path);
    if (!in)
        throw Error(errno ? errno : ENOENT, context("open", path.string()));
    try {
        return json::parse(in);
    } catch (const json::exception& e) {
        throw Error(EBADMSG, path.string(), e.what());
    }
}

void remove_quietly(const fs::path& path) {
    std::error_code ec;
    fs::remove(path, ec);
}

// Counters read twice, equal, with nothing in flight: a moment when the
// device was idle.
WriteCounters quiet_counters(const std::string& device) {
    for (int attempt = 0; attempt < 50; attempt++) {
        WriteCounters c = write_counters(device);
        if (c.in_flight == 0)
            return c;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    throw Error(EBUSY, context("save the change map of", device),
                "writes stay in flight; stop the writers first");
}

} // namespace

bool WriteCounters::none() const {
    if (in_flight)
        return false;
    for (const auto& [name, v] : completed)
        if (!v.none())
            return false;
    return true;
}

WriteCounters write_counters(const std::string& device_path, const fs::path& sysfs) {
    const std::string name = device_name(device_path);
    const fs::path dir = block_dir(name, sysfs);
    WriteCounters c;
    c.completed[name] = completed_writes(dir);
    c.in_flight = writes_in_flight(dir);
    if (!fs::exists(dir / "partition")) {
        for (const auto& [part, pdir] : partitions_of(dir)) {
            c.completed[part] = completed_writes(pdir);
            c.in_flight += writes_in_flight(pdir);
        }
        return c;
    }
    // A partition: the block layer adds each write through a partition to
    // its whole disk's counts too; what the disk counted beyond all its
    // partitions was written through the whole disk, maybe onto this one.
    const fs::path disk = fs::canonical(dir).parent_path();
    WriteCount direct = completed_writes(disk);
    std::uint64_t disk_in_flight = writes_in_flight(disk);
    for (const auto& [part, pdir] : partitions_of(disk)) {
        const WriteCount p = completed_writes(pdir);
        direct.writes = less(direct.writes, p.writes);
        direct.sectors = less(direct.sectors, p.sectors);
        direct.discards = less(direct.discards, p.discards);
        direct.discard_sectors = less(direct.discard_sectors, p.discard_sectors);
        disk_in_flight = less(disk_in_flight, writes_in_flight(pdir));
    }
    c.completed[disk.filename().string()] = direct;
    c.in_flight += disk_in_flight;
    return c;
}

bool counts_writes(const std::string& device_path, const fs::path& sysfs) {
    const std::string name = device_name(device_path);
    const fs::path dir = block_dir(name, sysfs);
    const fs::path disk = fs::exists(dir / "partition") ? fs::canonical(dir).parent_path() : dir;
    return attribute(disk / "queue" / "iostats") == "1";
}

UdevProperties udev_properties(DeviceId id) {
    UdevProperties props;
    std::unique_ptr<udev, decltype(&udev_unref)> u(udev_new(), udev_unref);
    if (!u)
        return props;
    std::unique_ptr<udev_device, decltype(&udev_device_unref)> dev(
        udev_device_new_from_devnum(u.get(), 'b', makedev(id.major, id.minor)), udev_device_unref);
    // Not initialized: udev has no record of it (none runs, or it has not
    // processed the device yet); what libudev gives then is the kernel's
    // uevent, which identifies nothing.
    if (!dev || udev_device_get_is_initialized(dev.get()) <= 0)
        return props;
    for (udev_list_entry* e = udev_device_get_properties_list_entry(dev.get()); e;
         e = udev_list_entry_get_next(e)) {
        const char* value = udev_list_entry_get_value(e);
        props[udev_list_entry_get_name(e)] = value ? value : "";
    }
    return props;
}

namespace {

// The numbers in the sysfs "dev" attribute of DIR ("252:16").
std::optional<DeviceId> sysfs_numbers(const fs::path& dir) {
    std::istringstream in(attribute(dir / "dev"));
    unsigned major = 0, minor = 0;
    char colon = 0;
    if (in >> major >> colon >> minor && colon == ':')
        return DeviceId{major, minor};
    return std::nullopt;
}

UdevProperties udev_of(const fs::path& dir, const UdevLookup& udev) {
    const auto id = sysfs_numbers(dir);
    return id && udev ? udev(*id) : UdevProperties{};
}

// The first of KEYS that udev gives a value, as KEY=VALUE; "" when none.
std::string udev_word(const UdevProperties& props, std::initializer_list<const char*> keys) {
    for (const char* key : keys)
        if (const auto it = props.find(key); it != props.end() && !it->second.empty())
            return std::string(key) + "=" + it->second;
    return "";
}

// What identifies the whole disk at DISK (a sysfs directory).
std::string disk_identity(const fs::path& disk, const UdevProperties& udev) {
    std::string id =
        udev_word(udev, {"ID_WWN_WITH_EXTENSION", "ID_WWN", "ID_SERIAL", "DM_UUID", "MD_UUID"});
    if (!id.empty())
        return id;
    // No udev record: what sysfs tells that outlives a reboot.
    for (const char* attr : {"dm/uuid", "dm/name"})
        if (const std::string v = attribute(disk / attr); !v.empty())
            return std::string(attr) + "=" + v;
    if (const std::string file = attribute(disk / "loop" / "backing_file"); !file.empty()) {
        id = "loop/backing_file=" + file;
        // The same path may hold another file (a copy moved over it).
        struct stat st;
        if (::stat(file.c_str(), &st) == 0)
            id += " inode=" + std::to_string(st.st_ino);
        return id + " loop/offset=" + attribute(disk / "loop" / "offset");
    }
    for (const char* attr : {"wwid", "serial", "device/wwid", "device/serial"})
        if (const std::string v = attribute(disk / attr); !v.empty())
            return std::string(attr) + "=" + v;
    return "name=" + disk.filename().string();
}

} // namespace

std::string device_identity(const std::string& device_path, const fs::path& sysfs,
                            const UdevLookup& udev) {
    const std::string name = device_name(device_path);
    const fs::path dir = block_dir(name, sysfs);
    if (!fs::exists(dir / "partition"))
        return disk_identity(fs::canonical(dir), udev_of(dir, udev));
    const fs::path disk = fs::canonical(dir).parent_path();
    std::string id = disk_identity(disk, udev_of(disk, udev)) +
                     " partition=" + attribute(dir / "partition") +
                     " start=" + attribute(dir / "start");
    const std::string uuid = udev_word(udev_of(dir, udev), {"ID_PART_ENTRY_UUID"});
    return uuid.empty() ? id : id + " " + uuid;
}

namespace {

// Reads LEN bytes at OFFSET, all of them.
void read_at(int fd, void* buf, std::size_t len, std::uint64_t offset, const std::string& device) {
    auto* p = static_cast<std::uint8_t*>(buf);
    while (len) {
        const ssize_t n = ::pread(fd, p, len, static_cast<off_t>(offset));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            throw_errno(context("read the content of", device));
        if (n == 0)
            throw Error(EIO, context("read the content of", device), "short read");
        p += n;
        len -= static_cast<std::size_t>(n);
        offset += static_cast<std::uint64_t>(n);
    }
}

} // namespace

std::string content_fingerprint(int fd, std::uint64_t size, const std::string& device) {
    constexpr std::size_t block = 4096, head = 65536;
    constexpr std::uint64_t samples = 64;
    std::unique_ptr<void, decltype(&std::free)> buf(std::aligned_alloc(block, head), std::free);
    std::unique_ptr<XXH64_state_t, decltype(&XXH64_freeState)> hash(XXH64_createState(),
                                                                    XXH64_freeState);
    if (!buf || !hash)
        throw Error(ENOMEM, context("fingerprint the content of", device));
    XXH64_reset(hash.get(), 0);
    auto sample = [&](std::uint64_t offset, std::size_t len) {
        if (offset >= size)
            return;
        // Whole sectors (O_DIRECT): a device's size is a multiple of its
        // logical block, and OFFSET of 4 KiB.
        len = static_cast<std::size_t>(std::min<std::uint64_t>(len, size - offset)) &
              ~std::size_t(511);
        if (!len)
            return;
        read_at(fd, buf.get(), len, offset, device);
        XXH64_update(hash.get(), &offset, sizeof offset);
        XXH64_update(hash.get(), buf.get(), len);
    };
    sample(0, head);
    // The middles of 64 equal slices.
    for (std::uint64_t i = 0; i < samples; i++)
        sample(size / (2 * samples) * (2 * i + 1) / block * block, block);
    char hex[17];
    std::snprintf(hex, sizeof hex, "%016llx",
                  static_cast<unsigned long long>(XXH64_digest(hash.get())));
    return "xxh64:64x4096+65536:" + std::string(hex);
}

namespace {

// The device open for reading its content: with O_DIRECT (the medium, not a
// page cache that a write beside the block layer never updated) where the
// device allows it; FLAGS added.
UniqueFd open_content(const std::string& device, int flags) {
    int fd = ::open(device.c_str(), O_RDONLY | O_CLOEXEC | O_DIRECT | flags);
    if (fd < 0 && errno == EINVAL)
        fd = ::open(device.c_str(), O_RDONLY | O_CLOEXEC | flags);
    if (fd < 0)
        throw_errno(context("open", device));
    return UniqueFd(fd);
}

std::string fingerprint_of(const std::string& device) {
    UniqueFd fd = open_content(device, 0);
    return content_fingerprint(fd.get(), size_of(fd.get(), device), device);
}

} // namespace

std::string boot_id() {
    std::string id = attribute("/proc/sys/kernel/random/boot_id");
    if (id.empty())
        throw Error(ENOENT, "/proc/sys/kernel/random/boot_id");
    return id;
}

BootRecord note_boot(const fs::path& dir, const std::string& now) {
    const fs::path path = dir / "boots";
    BootRecord rec;
    try {
        if (fs::exists(path)) {
            const json j = read_json(path);
            rec = {j.at("boot_id").get<std::string>(), j.at("previous").get<std::string>()};
        }
    } catch (const std::exception&) {
        rec = {}; // damaged: which boot came before is unknown
    }
    if (rec.boot_id == now)
        return rec;
    rec = {now, rec.boot_id};
    fs::create_directories(dir);
    write_json(path, {{"boot_id", rec.boot_id}, {"previous", rec.previous}});
    return rec;
}

std::optional<std::string> why_not_restorable(const SaveRecord& saved, const CbtState& state,
                                              const Observed& now) {
    if (!now.counts_writes)
        return "the block layer does not count the device's writes (queue/iostats is 0), so "
               "nothing proves it was not written since the save";
    if (saved.identity != now.identity)
        return "the device is not the one saved (" + saved.identity + ", now " + now.identity + ")";
    if (state.device_capacity != now.info.device_capacity ||
        state.block_size != now.info.block_size || state.map.size() != now.info.block_count)
        return "the device's size or tracking geometry changed since the save";
    if (saved.boot_id == now.boot_id) {
        if (saved.counters.completed != now.counters.completed || now.counters.in_flight)
            return "the device was written after the save";
    } else {
        if (now.previous_boot.empty())
            return "the map was saved in boot " + saved.boot_id +
                   ", and no record tells which boot came before this one";
        if (saved.boot_id != now.previous_boot)
            return "the map was saved in boot " + saved.boot_id +
                   ", not in the boot before this one (" + now.previous_boot +
                   "): the device went a boot untracked";
        if (!now.counters.none())
            return "the device was written since boot, before the restore";
    }
    if (saved.fingerprint.empty())
        return "the save has no fingerprint of the device's content (an older blksnap made it)";
    if (saved.fingerprint != now.fingerprint)
        return "the device's content is not what it was at the save (its fingerprint of "
               "sampled blocks differs): it was written where the write counters do not see";
    return std::nullopt;
}

PersistPaths persist_paths(const fs::path& dir, const std::string& device_path) {
    const std::string name = device_file_name(device_path);
    return {dir / (name + ".cbt"), dir / (name + ".saved"), dir / (name + ".chain")};
}

PersistPaths taken_paths(const fs::path& dir, const std::string& device_path,
                         const std::string& boot) {
    PersistPaths p = persist_paths(dir / "taken" / boot, device_path);
    p.chain = persist_paths(dir, device_path).chain; // not taken: it stays
    return p;
}

bool take_saved(const fs::path& dir, const std::string& device_path, const std::string& now) {
    note_boot(dir, now);
    const PersistPaths from = persist_paths(dir, device_path);
    const PersistPaths to = taken_paths(dir, device_path, now);
    const bool saved = fs::exists(from.record);
    if (!saved && !fs::exists(from.state))
        return false;
    fs::create_directories(to.record.parent_path());
    // The record first: without it the map is never loaded. (A state file
    // alone is what a save that failed before its record left.)
    if (saved)
        fs::rename(from.record, to.record);
    if (fs::exists(from.state))
        fs::rename(from.state, to.state);
    const UniqueFd d = open_fd(to.record.parent_path().string(), O_RDONLY | O_DIRECTORY);
    ::fsync(d.get());
    const UniqueFd top = open_fd(dir.string(), O_RDONLY | O_DIRECTORY);
    ::fsync(top.get());
    return saved;
}

std::optional<Uuid> snapshot_holding(KernelBackend& kernel, const std::string& device_path) {
    const DeviceId id = block_device_id(device_path);
    for (const Uuid& snap : kernel.snapshot_collect()) {
        std::vector<DeviceId> devices;
        try {
            devices = kernel.snapshot_devices(snap);
        } catch (const Error& e) {
            if (e.code() == ENOENT)
                continue; // destroyed meanwhile
            throw;
        }
        if (std::find(devices.begin(), devices.end(), id) != devices.end())
            return snap;
    }
    return std::nullopt;
}

namespace {

// A snapshot holding the device freezes what its change map reads at the
// take: a save then would miss every write since. Refused, still tracking.
void refuse_if_in_snapshot(DeviceFilter& filter) {
    const auto snap = snapshot_holding(filter.backend(), filter.device());
    if (!snap)
        return;
    throw Error(EBUSY, context("save the change map of", filter.device()),
                "it is in snapshot " + snap->str() +
                    ", and its change map reads as it was at that snapshot's take (a backup "
                    "killed before it destroyed its snapshot leaves one); destroy the snapshot "
                    "(blksnap snapshot_destroy -i " +
                    snap->str() + ") and save again; nothing saved, still tracking");
}

} // namespace

CbtInfo save_tracking(DeviceFilter& filter, const fs::path& dir) {
    const std::string& device = filter.device();
    const PersistPaths paths = persist_paths(dir, device);
    CbtInfo info;
    std::vector<std::uint8_t> map;
    std::string fingerprint;
    WriteCounters before;
    // Nowhere to save: say so while the device is still tracked (a detach
    // first would lose the map for nothing).
    fs::create_directories(dir);
    if (::access(dir.c_str(), W_OK) != 0)
        throw Error(errno, context("save the change map of", device),
                    "cannot write to " + dir.string() + "; nothing saved, still tracking");
    if (!counts_writes(device))
        throw Error(EOPNOTSUPP, context("save the change map of", device),
                    "the block layer does not count its writes (queue/iostats of its disk is "
                    "0), so a write after the save could never be seen; turn it on (echo 1 > "
                    "/sys/block/DISK/queue/iostats) and save again; nothing saved, still "
                    "tracking");
    // Held exclusively until the save is written: no file system can mount
    // it, no device be built on it meanwhile; and one that is already
    // (whose writes may go on after the save) is refused.
    UniqueFd excl;
    try {
        excl = open_content(device, O_EXCL);
    } catch (const Error& e) {
        if (e.code() != EBUSY)
            throw;
        throw Error(EBUSY, context("save the change map of", device),
                    "it is in use: mounted, or held open exclusively by a program or by a "
                    "device built on it (device-mapper, md, a partition's disk); unmount or "
                    "release it and save again; nothing saved, still tracking");
    }
    // Written but still in the page cache: out to the device while tracked.
    if (::fsync(excl.get()) != 0)
        throw_errno(context("flush", device));
    const std::uint64_t size = size_of(excl.get(), device);
    refuse_if_in_snapshot(filter);
    note_boot(dir);
    for (int attempt = 0;; attempt++) {
        before = quiet_counters(device);
        info = filter.cbt_info();
        map = read_map(filter, info);
        fingerprint = content_fingerprint(excl.get(), size, device);
        if (write_counters(device) == before)
            break;
        if (attempt == 20)
            throw Error(EBUSY, context("save the change map of", device),
                        "the device keeps being written; stop the writers first");
    }
    // A take between the first look and the read.
    refuse_if_in_snapshot(filter);
    filter.detach();
    if (write_counters(device) != before)
        throw Error(EBUSY, context("save the change map of", device),
                    "written while it was being detached; nothing saved, the chain is broken");
    // The record last: without it the map is never loaded.
    remove_quietly(paths.record);
    write_state_file(paths.state, CbtState::of(info, std::move(map)));
    write_json(paths.record, {{"device", device},
                              {"identity", device_identity(device)},
                              {"boot_id", boot_id()},
                              {"writes", counters_json(before)},
                              {"fingerprint", fingerprint}});
    return info;
}

namespace {

// Why a map taken in another boot than NOW, which did not restore it, is
// refused; nullopt when there is none.
std::optional<std::string> taken_elsewhere(const fs::path& dir, const std::string& device,
                                           const std::string& now) {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(dir / "taken", ec)) {
        const std::string boot = entry.path().filename().string();
        const PersistPaths p = taken_paths(dir, device, boot);
        if (boot == now || !fs::exists(p.record))
            continue;
        std::string saved_in = "unknown";
        try {
            saved_in = read_json(p.record).at("boot_id").get<std::string>();
        } catch (const std::exception&) {
        }
        return "the map saved in boot " + saved_in + " was taken at boot " + boot +
               ", which did not restore it (no module, or cbtrestore failed): the device "
               "went a boot untracked";
    }
    return std::nullopt;
}

// Removes the taken files of DEVICE, of every boot, and the directories of
// other boots than NOW left empty. (This boot's stays: the unit of another
// device may be taking into it now.)
void remove_taken(const fs::path& dir, const std::string& device, const std::string& now) {
    std::error_code ec;
    std::vector<fs::path> boots;
    for (const auto& entry : fs::directory_iterator(dir / "taken", ec))
        boots.push_back(entry.path());
    for (const fs::path& b : boots) {
        const PersistPaths p = taken_paths(dir, device, b.filename().string());
        remove_quietly(p.record);
        remove_quietly(p.state);
        if (b.filename() != now)
            fs::remove(b, ec); // only when empty
    }
}

} // namespace

ChainRecord restore_tracking(DeviceFilter& filter, const fs::path& dir) {
    const std::string& device = filter.device();
    const std::string this_boot = boot_id();
    take_saved(dir, device, this_boot);
    const PersistPaths paths = persist_paths(dir, device);
    const PersistPaths taken = taken_paths(dir, device, this_boot);
    Observed now;
    now.identity = device_identity(device);
    now.boot_id = this_boot;
    now.previous_boot = note_boot(dir, this_boot).previous;
    filter.attach();
    // After the attach: a write that completed before it moved the
    // counters, one still in flight shows, and one after it is tracked.
    // (Read before the attach, a write between the two would be neither.)
    now.counters = write_counters(device);
    now.counts_writes = counts_writes(device);
    now.info = filter.cbt_info();

    ChainRecord chain;
    std::optional<std::string> why;
    try {
        if (!fs::exists(taken.record)) {
            why = taken_elsewhere(dir, device, this_boot);
            if (!why)
                why = "no saved change map (the last shutdown or detach did not save one)";
        } else {
            const json rec = read_json(taken.record);
            SaveRecord saved{rec.at("device").get<std::string>(),
                             rec.at("identity").get<std::string>(),
                             rec.at("boot_id").get<std::string>(), counters_from(rec.at("writes")),
                             rec.value("fingerprint", std::string())};
            const CbtState state = read_state_file(taken.state);
            now.fingerprint = fingerprint_of(device);
            why = why_not_restorable(saved, state, now);
            if (!why) {
                CbtInfo saved_info = now.info;
                saved_info.generation_id = state.position.generation_id;
                saved_info.changes_number = state.position.changes_number;
                filter.load_cbt(saved_info, state.map);
            }
        }
    } catch (const Error& e) {
        why = std::string(e.what());
    } catch (const json::exception& e) {
        why = taken.record.string() + ": " + e.what();
    }
    // A saved map is used once: a later boot must not load it again.
    remove_taken(dir, device, this_boot);
    const CbtInfo info = filter.cbt_info();
    chain.generation = info.generation_id;
    chain.continued = !why;
    chain.reason = why.value_or("");
    write_json(paths.chain, {{"generation_id", chain.generation.str()},
                             {"continued", chain.continued},
                             {"reason", chain.reason}});
    return chain;
}

std::optional<ChainRecord> read_chain(const fs::path& dir, const std::string& device_path,
                                      const Uuid& generation) {
    const fs::path path = persist_paths(dir, device_path).chain;
    if (!fs::exists(path))
        return std::nullopt;
    try {
        const json j = read_json(path);
        ChainRecord c{Uuid::parse(j.at("generation_id").get<std::string>()),
                      j.at("continued").get<bool>(), j.at("reason").get<std::string>()};
        if (c.generation != generation)
            return std::nullopt;
        return c;
    } catch (const std::exception&) {
        return std::nullopt;
    }
}

} // namespace blksnap::cbt
