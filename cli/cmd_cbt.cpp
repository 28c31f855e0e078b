// cbtinfo, readcbtmap, markdirtyblock; cbtsave, cbttake and cbtrestore (a
// change map kept across a module reload or a reboot).
#include "args.hpp"
#include "commands.hpp"

#include <blksnap/cbt/map.hpp>
#include <blksnap/cbt/persist.hpp>
#include <blksnap/error.hpp>
#include <blksnap/file_extents.hpp>
#include <blksnap/unique_fd.hpp>

#include <fcntl.h>

namespace blksnap::cli {

namespace {

constexpr const char* default_state_dir = "/var/lib/blksnap";

struct DeviceArgs {
    std::string device;
    std::string file;
    std::string state_dir = default_state_dir;
    bool json = false;
};

// TEXT in single quotes for a POSIX shell (each ' becomes '\''), on one
// line (a line break becomes a space).
std::string shell_quote(const std::string& text) {
    std::string out = "'";
    for (char c : text) {
        if (c == '\'')
            out += "'\\''";
        else if (c == '\n' || c == '\r')
            out += ' ';
        else
            out += c;
    }
    return out + "'";
}

CLI::Option* add_state_dir(CLI::App& cmd, std::string& dir) {
    return cmd.add_option("--state-dir", dir, "Where saved change maps are kept")
        ->capture_default_str();
}

void add_cbtinfo(CLI::App& app, Context& ctx) {
    auto* cmd = app.add_subcommand("cbtinfo", "Print the change tracker state of a device");
    auto args = std::make_shared<DeviceArgs>();
    add_device(*cmd, args->device);
    add_json(*cmd, args->json);
    add_state_dir(*cmd, args->state_dir);
    cmd->callback([&ctx, args] {
        const CbtInfo info = DeviceFilter(ctx.kernel(), args->device).cbt_info();
        // How this generation began, when a restore at boot or reload
        // recorded it: continued from a saved map, or why a new one started.
        const auto chain = cbt::read_chain(args->state_dir, args->device, info.generation_id);
        if (args->json) {
            nlohmann::ordered_json doc = {{"block_size", info.block_size},
                                          {"device_capacity", info.device_capacity},
                                          {"block_count", info.block_count},
                                          {"generation_id", info.generation_id.str()},
                                          {"changes_number", info.changes_number}};
            if (chain) {
                doc["chain"] = chain->continued ? "continued" : "broken";
                if (!chain->continued)
                    doc["chain_reason"] = chain->reason;
            }
            ctx.print(doc);
            return;
        }
        // Every line is KEY=VALUE that a shell's eval takes as it is: the
        // reason, free text, in single quotes.
        ctx.out() << "block_size=" << info.block_size << '\n'
                  << "device_capacity=" << info.device_capacity << '\n'
                  << "block_count=" << info.block_count << '\n'
                  << "generation_id=" << info.generation_id.str() << '\n'
                  << "changes_number=" << unsigned(info.changes_number) << '\n';
        if (chain) {
            ctx.out() << "chain=" << (chain->continued ? "continued" : "broken") << '\n';
            if (!chain->continued)
                ctx.out() << "chain_reason=" << shell_quote(chain->reason) << '\n';
        }
        ctx.out().flush();
    });
}

void add_readcbtmap(CLI::App& app, Context& ctx) {
    auto* cmd = app.add_subcommand(
        "readcbtmap", "Write the change map of a device to a file, one byte per block");
    auto args = std::make_shared<DeviceArgs>();
    add_device(*cmd, args->device);
    cmd->add_option("-f,--file", args->file, "Output file")->required();
    cmd->callback([&ctx, args] {
        DeviceFilter filter(ctx.kernel(), args->device);
        const auto map = cbt::read_map(filter, filter.cbt_info());
        UniqueFd out = open_fd(args->file, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        write_all(out.get(), map.data(), map.size(), context("write", args->file));
    });
}

void add_markdirtyblock(CLI::App& app, Context& ctx) {
    auto* cmd = app.add_subcommand("markdirtyblock", "Mark sectors of a device as changed");
    struct Args {
        std::string device;
        std::vector<std::string> ranges;
        std::string file;
    };
    auto args = std::make_shared<Args>();
    auto* dev = cmd->add_option("-d,--device", args->device, "Block device, e.g. /dev/vdb");
    auto* ranges =
        cmd->add_option("-r,--ranges,--range", args->ranges, "Sector ranges SECTOR:COUNT")
            ->check(range_text());
    auto* file = cmd->add_option("-f,--file", args->file,
                                 "Mark the blocks of this file on the device that holds it");
    dev->needs(ranges);
    ranges->needs(dev);
    file->excludes(dev)->excludes(ranges);
    cmd->callback([&ctx, args] {
        std::string device = args->device;
        std::vector<SectorRange> sectors;
        if (args->file.empty() && args->ranges.empty())
            throw CLI::RequiredError("--device with --ranges, or --file,");
        if (!args->file.empty()) {
            FileExtents fe = file_extents(args->file);
            device = block_device_path(fe.device);
            sectors = std::move(fe.ranges);
            // What the upstream tool prints for a file.
            ctx.out() << "device path: '" << device << "'\n";
            for (const auto& r : sectors)
                ctx.out() << "allocate range: ofs=" << r.offset << " cnt=" << r.count << '\n';
            ctx.out().flush();
            if (sectors.empty())
                return; // an empty or sparse file has no blocks to mark
        } else {
            for (const auto& r : args->ranges)
                sectors.push_back(*parse_range(r));
        }
        DeviceFilter(ctx.kernel(), device).mark_dirty(sectors);
    });
}

// -d DEVICE, --state-dir DIR and -j of cbtsave, cbttake and cbtrestore.
std::shared_ptr<DeviceArgs> add_state_args(CLI::App& cmd) {
    auto args = std::make_shared<DeviceArgs>();
    add_device(cmd, args->device);
    add_state_dir(cmd, args->state_dir);
    add_json(cmd, args->json);
    return args;
}

void add_cbtsave(CLI::App& app, Context& ctx) {
    auto* cmd = app.add_subcommand(
        "cbtsave", "Save the change map of a device to the state directory and detach it");
    auto args = add_state_args(*cmd);
    cmd->callback([&ctx, args] {
        DeviceFilter filter(ctx.kernel(), args->device);
        const CbtInfo info = cbt::save_tracking(filter, args->state_dir);
        const auto path = cbt::persist_paths(args->state_dir, args->device).state.string();
        if (args->json) {
            ctx.print({{"device", args->device},
                       {"file", path},
                       {"generation_id", info.generation_id.str()},
                       {"changes_number", info.changes_number}});
            return;
        }
        ctx.out() << "saved " << args->device << " to " << path
                  << ": generation_id=" << info.generation_id.str()
                  << " changes_number=" << unsigned(info.changes_number) << std::endl;
    });
}

// The first step at boot: no module needed (the kernel is never asked).
void add_cbttake(CLI::App& app, Context& ctx) {
    auto* cmd = app.add_subcommand(
        "cbttake", "Note this boot and take the saved change map of a device aside for "
                   "cbtrestore, without the module: a map not restored in the boot that took "
                   "it is never loaded");
    auto args = add_state_args(*cmd);
    cmd->callback([&ctx, args] {
        const std::string boot = cbt::boot_id();
        const bool took = cbt::take_saved(args->state_dir, args->device, boot);
        const auto dir =
            cbt::taken_paths(args->state_dir, args->device, boot).record.parent_path().string();
        if (args->json) {
            ctx.print({{"device", args->device}, {"taken", took}, {"boot_id", boot}});
            return;
        }
        if (took)
            ctx.out() << "took the saved change map of " << args->device << " to " << dir
                      << std::endl;
        else
            ctx.out() << "no saved change map of " << args->device << " to take" << std::endl;
    });
}

void add_cbtrestore(CLI::App& app, Context& ctx) {
    auto* cmd = app.add_subcommand(
        "cbtrestore", "Attach a device and continue its saved change map if nothing wrote to "
                      "it since the save; otherwise start a new generation and say why");
    auto args = add_state_args(*cmd);
    cmd->callback([&ctx, args] {
        // Before anything needs the module: a restore that fails for want
        // of it still consumes the save.
        cbt::take_saved(args->state_dir, args->device);
        DeviceFilter filter(ctx.kernel(), args->device);
        const cbt::ChainRecord chain = cbt::restore_tracking(filter, args->state_dir);
        const CbtInfo info = filter.cbt_info();
        if (args->json) {
            ctx.print({{"device", args->device},
                       {"continued", chain.continued},
                       {"reason", chain.reason},
                       {"generation_id", info.generation_id.str()},
                       {"changes_number", info.changes_number}});
            return;
        }
        if (chain.continued)
            ctx.out() << "restored " << args->device
                      << ": generation_id=" << info.generation_id.str()
                      << " changes_number=" << unsigned(info.changes_number) << std::endl;
        else
            ctx.out() << "chain broken for " << args->device
                      << ", a new generation starts: " << chain.reason << std::endl;
    });
}

} // namespace

void add_cbt_commands(CLI::App& app, Context& ctx) {
    add_cbtinfo(app, ctx);
    add_readcbtmap(app, ctx);
    add_markdirtyblock(app, ctx);
    add_cbtsave(app, ctx);
    add_cbttake(app, ctx);
    add_cbtrestore(app, ctx);
}

} // namespace blksnap::cli
