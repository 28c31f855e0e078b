#include "app.hpp"
#include "commands.hpp"

#include <blksnap/error.hpp>

#include <algorithm>
#include <string_view>

namespace blksnap::cli {

int run(int argc, const char* const* argv, const BackendFactory& factory, std::ostream& out,
        std::ostream& err, bool err_is_tty) {
    Context ctx(factory, out, err, err_is_tty);
    CLI::App app("Control the blksnap module: change tracking and snapshots of block devices.",
                 "blksnap");
    app.require_subcommand(1);
    add_filter_commands(app, ctx);
    add_cbt_commands(app, ctx);
    add_snapshot_commands(app, ctx);
    add_backup_commands(app, ctx);
    add_points_commands(app, ctx);
    // As the upstream tool: no command at all is "Command not found.", and
    // "help" prints the usage (a usage error here, exit 2, where it exits 1).
    if (argc < 2) {
        err << "Command not found." << std::endl;
        return exit_usage;
    }
    if (std::string_view(argv[1]) == "help") {
        out << app.help();
        return exit_ok;
    }
    // CLI11 reports a mistyped command only as "A subcommand is required";
    // name it.
    if (argv[1][0] != '-') {
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
    } catch (const CLI::Success& e) { // --help
        app.exit(e, out, err);
        return exit_ok;
    } catch (const CLI::ParseError& e) {
        // Every other parse or validation error is usage, told like every
        // other error of the command.
        err << "blksnap: " << e.what() << "\nRun with --help for more information." << std::endl;
        return exit_usage;
    } catch (const std::exception& e) {
        err << "blksnap: " << e.what() << std::endl;
        return exit_failure;
    }
}

} // namespace blksnap::cli
