#include <blksnap/cbt/map.hpp>
#include <blksnap/cbt/persist.hpp>
#include <blksnap/error.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>
#include <unistd.h>

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

std::string device_identity(const std::string& device_path, const fs::path& sysfs) {
    const std::string name = device_name(device_path);
    const fs::path dir = block_dir(name, sysfs);
    fs::path disk = fs::canonical(dir);
    std::string part;
    if (fs::exists(dir / "partition")) {
        part = attribute(dir / "partition");
        disk = disk.parent_path();
    }
    std::string id;
    for (const char* attr : {"wwid", "serial", "device/wwid", "device/serial"}) {
        id = attribute(disk / attr);
        if (!id.empty()) {
            id = std::string(attr).substr(std::string(attr).rfind('/') + 1) + "=" + id;
            break;
        }
    }
    std::string out = id.empty() ? "name=" + disk.filename().string() : id;
    if (!part.empty())
        out += " partition=" + part;
    return out;
}

std::string boot_id() {
    std::string id = attribute("/proc/sys/kernel/random/boot_id");
    if (id.empty())
        throw Error(ENOENT, "/proc/sys/kernel/random/boot_id");
    return id;
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
    } else if (!now.counters.none()) {
        return "the device was written since boot, before the restore";
    }
    return std::nullopt;
}

PersistPaths persist_paths(const fs::path& dir, const std::string& device_path) {
    const std::string name = device_file_name(device_path);
    return {dir / (name + ".cbt"), dir / (name + ".saved"), dir / (name + ".chain")};
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
    refuse_if_in_snapshot(filter);
    for (int attempt = 0;; attempt++) {
        before = quiet_counters(device);
        info = filter.cbt_info();
        map = read_map(filter, info);
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
                              {"writes", counters_json(before)}});
    return info;
}

ChainRecord restore_tracking(DeviceFilter& filter, const fs::path& dir) {
    const std::string& device = filter.device();
    const PersistPaths paths = persist_paths(dir, device);
    Observed now;
    now.identity = device_identity(device);
    now.boot_id = boot_id();
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
        if (!fs::exists(paths.record))
            why = "no saved change map (the last shutdown or detach did not save one)";
        else {
            const json rec = read_json(paths.record);
            SaveRecord saved{rec.at("device").get<std::string>(),
                             rec.at("identity").get<std::string>(),
                             rec.at("boot_id").get<std::string>(), counters_from(rec.at("writes"))};
            const CbtState state = read_state_file(paths.state);
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
        why = paths.record.string() + ": " + e.what();
    }
    // A saved map is used once: a later boot must not load it again.
    remove_quietly(paths.record);
    remove_quietly(paths.state);
    const CbtInfo info = filter.cbt_info();
    chain.generation = info.generation_id;
    chain.continued = !why;
    chain.reason = why.value_or("");
    fs::create_directories(dir);
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
