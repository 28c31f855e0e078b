// The command groups; each adds its subcommands to the application.
#pragma once

#include "context.hpp"

#include <CLI/CLI.hpp>

namespace blksnap::cli {

void add_filter_commands(CLI::App& app, Context& ctx);   // version, attach, detach
void add_cbt_commands(CLI::App& app, Context& ctx);      // cbtinfo, readcbtmap, markdirtyblock
void add_snapshot_commands(CLI::App& app, Context& ctx); // snapshot_*
void add_backup_commands(CLI::App& app, Context& ctx);   // backup
void add_points_commands(CLI::App& app, Context& ctx);   // points, restore, verify

} // namespace blksnap::cli
