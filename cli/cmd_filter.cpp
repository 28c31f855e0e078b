// version, attach, detach.
#include "args.hpp"
#include "commands.hpp"

#include <blksnap/filter.hpp>

namespace blksnap::cli {

namespace {

void add_version(CLI::App& app, Context& ctx) {
    auto* cmd = app.add_subcommand("version", "Print the module version");
    auto json = std::make_shared<bool>(false);
    add_json(*cmd, *json);
    cmd->callback([&ctx, json] {
        const Version v = ctx.kernel().version();
        if (*json)
            ctx.print({{"version", v.str()},
                       {"major", v.major},
                       {"minor", v.minor},
                       {"revision", v.revision},
                       {"build", v.build}});
        else
            ctx.out() << v.str() << std::endl;
    });
}

void add_attach(CLI::App& app, Context& ctx) {
    auto* cmd = app.add_subcommand(
        "attach", "Attach the blksnap filter to devices and start tracking their changes");
    auto devices = std::make_shared<std::vector<std::string>>();
    add_devices(*cmd, *devices);
    cmd->callback([&ctx, devices] {
        // The upstream tool's words, one line per device.
        for (const auto& dev : *devices)
            ctx.out() << (DeviceFilter(ctx.kernel(), dev).attach() ? "Attached successfully"
                                                                   : "Already was attached")
                      << std::endl;
    });
}

void add_detach(CLI::App& app, Context& ctx) {
    auto* cmd = app.add_subcommand(
        "detach", "Detach the blksnap filter from devices; their change tracking ends");
    auto devices = std::make_shared<std::vector<std::string>>();
    add_devices(*cmd, *devices);
    cmd->callback([&ctx, devices] {
        for (const auto& dev : *devices)
            DeviceFilter(ctx.kernel(), dev).detach();
    });
}

} // namespace

void add_filter_commands(CLI::App& app, Context& ctx) {
    add_version(app, ctx);
    add_attach(app, ctx);
    add_detach(app, ctx);
}

} // namespace blksnap::cli
