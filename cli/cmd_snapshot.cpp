// snapshot_create, snapshot_add, snapshot_info, snapshot_take,
// snapshot_destroy, snapshot_collect, snapshot_devices, snapshot_waitevent,
// snapshot_watcher.
#include "args.hpp"
#include "commands.hpp"

#include <blksnap/error.hpp>
#include <blksnap/events.hpp>
#include <blksnap/snapshot.hpp>

#include <algorithm>
#include <cerrno>
#include <system_error>

namespace blksnap::cli {

namespace {

struct Args {
    std::vector<std::string> devices;
    std::string device;
    std::string id;
    std::string file;
    std::string field;
    std::uint64_t limit = 0;
    std::uint32_t timeout = 0;
    bool json = false;
};

void add_create(CLI::App& app, Context& ctx) {
    auto* cmd = app.add_subcommand(
        "snapshot_create",
        "Create a snapshot; print its UUID. Devices given are attached and added");
    auto a = std::make_shared<Args>();
    cmd->add_option("-d,--device", a->devices, "Block device(s) to add to the snapshot");
    cmd->add_option("-f,--file", a->file,
                    "Difference storage: a directory (unnamed temporary file), a regular file "
                    "(created if missing) or a block device")
        ->required();
    cmd->add_option("-l,--limit", a->limit,
                    "Largest size of the difference storage, bytes with optional suffix K, M, G")
        ->required()
        ->transform(size_bytes());
    add_json(*cmd, a->json);
    cmd->callback([&ctx, a] {
        Snapshot snap = Snapshot::create(ctx.kernel(), a->file, a->limit, a->devices);
        const Uuid id = snap.release();
        if (a->json)
            ctx.print({{"id", id.str()}});
        else
            ctx.out() << id.str() << std::endl;
    });
}

void add_add(CLI::App& app, Context& ctx) {
    auto* cmd = app.add_subcommand(
        "snapshot_add", "Add devices to a snapshot, attaching the filter first when needed");
    auto a = std::make_shared<Args>();
    add_devices(*cmd, a->devices);
    add_id(*cmd, a->id);
    cmd->callback([&ctx, a] {
        Snapshot snap = Snapshot::open(ctx.kernel(), Uuid::parse(a->id));
        for (const auto& dev : a->devices)
            snap.add_device(dev);
    });
}

void add_info(CLI::App& app, Context& ctx) {
    auto* cmd = app.add_subcommand("snapshot_info",
                                   "Print the snapshot state of a device: error code and image");
    auto a = std::make_shared<Args>();
    add_device(*cmd, a->device);
    cmd->add_option("-f,--field", a->field, "Print only this field's value")
        ->check(CLI::IsMember({"image", "error_code"}));
    add_json(*cmd, a->json);
    cmd->callback([&ctx, a] {
        const SnapshotInfo info = DeviceFilter(ctx.kernel(), a->device).snapshot_info();
        nlohmann::ordered_json doc{{"error_code", info.error_code}, {"image", info.image_path()}};
        if (a->json) {
            ctx.print(a->field.empty() ? doc : nlohmann::ordered_json{{a->field, doc[a->field]}});
        } else if (!a->field.empty()) {
            ctx.out() << (a->field == "image" ? info.image_path() : std::to_string(info.error_code))
                      << std::endl;
        } else {
            ctx.out() << "error_code=" << info.error_code << '\n'
                      << "image=" << info.image_path() << std::endl;
        }
    });
}

void add_by_id(CLI::App& app, Context& ctx, const std::string& name, const std::string& help,
               void (KernelBackend::*op)(const Uuid&)) {
    auto* cmd = app.add_subcommand(name, help);
    auto a = std::make_shared<Args>();
    add_id(*cmd, a->id);
    cmd->callback([&ctx, a, op] { (ctx.kernel().*op)(Uuid::parse(a->id)); });
}

void add_collect(CLI::App& app, Context& ctx) {
    auto* cmd = app.add_subcommand("snapshot_collect", "Print the UUIDs of all snapshots");
    auto a = std::make_shared<Args>();
    add_json(*cmd, a->json);
    cmd->callback([&ctx, a] {
        const auto ids = ctx.kernel().snapshot_collect();
        if (a->json) {
            auto list = nlohmann::ordered_json::array();
            for (const auto& id : ids)
                list.push_back(id.str());
            ctx.print({{"snapshots", list}});
            return;
        }
        for (const auto& id : ids)
            ctx.out() << id.str() << '\n';
        ctx.out().flush();
    });
}

void add_devices_list(CLI::App& app, Context& ctx) {
    auto* cmd = app.add_subcommand("snapshot_devices",
                                   "Print the devices of a snapshot, one /dev path per line");
    auto a = std::make_shared<Args>();
    add_id(*cmd, a->id);
    add_json(*cmd, a->json);
    cmd->callback([&ctx, a] {
        const auto devs = ctx.kernel().snapshot_devices(Uuid::parse(a->id));
        if (a->json) {
            auto list = nlohmann::ordered_json::array();
            for (const auto& d : devs)
                list.push_back({{"device", block_device_path(d)}, {"dev_id", d.str()}});
            ctx.print({{"devices", list}});
            return;
        }
        for (const auto& d : devs)
            ctx.out() << block_device_path(d) << '\n';
        ctx.out().flush();
    });
}

// The upstream tool's event name: "corrupted", or the code's number.
std::string event_name(const Event& ev) {
    return ev.code == blksnap_event_code_corrupted ? "corrupted" : std::to_string(ev.code);
}

// The outcome of one wait as key=value lines, "result" first (the upstream
// tool's words: ok, timeout, interrupted, not found), or as one JSON line.
// The device and error of a corruption follow as our extension.
void print_wait(Context& ctx, bool json, const std::string& result, const Event* ev) {
    nlohmann::ordered_json doc{{"result", result}};
    if (ev) {
        doc["time"] = ev->time_label;
        doc["event"] = event_name(*ev);
        if (ev->code == blksnap_event_code_corrupted) {
            doc["dev_id"] = ev->device.str();
            doc["err_code"] = ev->error_code;
        }
    }
    if (json) {
        ctx.print(doc);
        return;
    }
    for (const auto& [key, value] : doc.items())
        ctx.out() << key << '=' << (value.is_string() ? value.get<std::string>() : value.dump())
                  << '\n';
    ctx.out().flush();
}

void add_waitevent(CLI::App& app, Context& ctx) {
    auto* cmd = app.add_subcommand(
        "snapshot_waitevent",
        "Wait for the next event of a snapshot; print result=ok and the event, or result=timeout, "
        "result=interrupted, result=not found");
    auto a = std::make_shared<Args>();
    add_id(*cmd, a->id);
    cmd->add_option("-t,--timeout", a->timeout, "How long to wait, in milliseconds")->required();
    add_json(*cmd, a->json);
    cmd->callback([&ctx, a] {
        std::optional<Event> ev;
        try {
            ev = ctx.kernel().snapshot_wait_event(Uuid::parse(a->id), a->timeout);
        } catch (const Error& e) {
            if (e.code() == ENOENT)
                return print_wait(ctx, a->json, "not found", nullptr);
            if (e.code() == EINTR)
                return print_wait(ctx, a->json, "interrupted", nullptr);
            throw;
        }
        print_wait(ctx, a->json, ev ? "ok" : "timeout", ev ? &*ev : nullptr);
    });
}

// One corruption as the upstream watcher tells it.
void print_corruption(Context& ctx, const Event& ev) {
    ctx.out() << ev.time_label << " - The snapshot was corrupted for device [" << ev.device.major
              << ':' << ev.device.minor << "] with error \""
              << std::generic_category().message(-ev.error_code) << "\"." << std::endl;
}

// As the upstream tool: "Start snapshot watcher.", then a line per event
// until the first corruption ("unsupported event" for a code it does not
// know), or "The snapshot no longer exists." when it is destroyed (or was
// never there), then "Snapshot watcher finished."; exit 0 in each case.
void add_watcher(CLI::App& app, Context& ctx) {
    auto* cmd = app.add_subcommand(
        "snapshot_watcher",
        "Watch a snapshot until its first corruption or its end; with --json, print every event "
        "until the snapshot is destroyed");
    auto a = std::make_shared<Args>();
    add_id(*cmd, a->id);
    add_json(*cmd, a->json);
    cmd->callback([&ctx, a] {
        const Uuid id = Uuid::parse(a->id);
        if (a->json) {
            follow_events(ctx.kernel(), id, [&](const Event& ev) {
                print_wait(ctx, true, "ok", &ev);
                return true;
            });
            return;
        }
        ctx.out() << "Start snapshot watcher." << std::endl;
        bool corrupted = false;
        follow_events(ctx.kernel(), id, [&](const Event& ev) {
            if (ev.code != blksnap_event_code_corrupted) {
                ctx.out() << ev.time_label << " - unsupported event #" << ev.code << '.'
                          << std::endl;
                return true;
            }
            print_corruption(ctx, ev);
            corrupted = true;
            return false;
        });
        if (!corrupted)
            ctx.out() << "The snapshot no longer exists." << std::endl;
        ctx.out() << "Snapshot watcher finished." << std::endl;
    });
}

} // namespace

void add_snapshot_commands(CLI::App& app, Context& ctx) {
    add_create(app, ctx);
    add_add(app, ctx);
    add_info(app, ctx);
    add_by_id(app, ctx, "snapshot_take",
              "Take the snapshot: all its devices at one instant; creates the images",
              &KernelBackend::snapshot_take);
    add_by_id(app, ctx, "snapshot_destroy", "Destroy the snapshot and release its storage",
              &KernelBackend::snapshot_destroy);
    add_collect(app, ctx);
    add_devices_list(app, ctx);
    add_waitevent(app, ctx);
    add_watcher(app, ctx);
}

} // namespace blksnap::cli
