#include "app.hpp"
#include "commands.hpp"

#include <blksnap/error.hpp>

#include <algorithm>

namespace blksnap::cli {

int run(int argc, const char* const* argv, const BackendFactory& factory, std::ostream& out,
        std::ostream& err) {
    Context ctx(factory, out);
    CLI::App app("Control the blksnap module: change tracking and snapshots of block devices.",
                 "blksnap");
    app.require_subcommand(1);
    add_filter_commands(app, ctx);
    add_cbt_commands(app, ctx);
    add_snapshot_commands(app, ctx);
    // CLI11 reports a mistyped command only as "A subcommand is required";
    // name it.
    if (argc > 1 && argv[1][0] != '-') {
        const auto subs = app.get_subcommands([](const CLI::App*) { return true; });
        if (std::none_of(subs.begin(), subs.end(),
                         [&](const CLI::App* s) { return s->check_name(argv[1]); })) {
            err << "blksnap: unknown command '" << argv[1] << "'\n"
                << "Run with --help for the list of commands." << std::endl;
            return exit_usage;
        }
    }
    try {
        app.parse(argc, argv);
        return exit_ok;
    } catch (const CLI::ParseError& e) {
        // Help requests exit 0; every other parse or validation error is usage.
        return app.exit(e, out, err) == 0 ? exit_ok : exit_usage;
    } catch (const std::exception& e) {
        err << "blksnap: " << e.what() << std::endl;
        return exit_failure;
    }
}

} // namespace blksnap::cli
