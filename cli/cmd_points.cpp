// points, restore, verify: the restore points a backup directory holds
// (<blksnap/backup/points.hpp>), listed, written back and checked; see
// blksnap(8) and blksnap-point(5).
#include "commands.hpp"
#include "progress.hpp"

#include <blksnap/backup/points.hpp>
#include <blksnap/backup/restore.hpp>
#include <blksnap/error.hpp>

#include <charconv>
#include <cstdio>
#include <ctime>

namespace blksnap::cli {

using backup::Point;

namespace {

std::string time_text(std::int64_t t) {
    const std::time_t tt = static_cast<std::time_t>(t);
    std::tm tm{};
    ::gmtime_r(&tt, &tm);
    char text[32];
    std::strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%SZ", &tm);
    return text;
}

nlohmann::ordered_json point_json(const Point& p) {
    const auto& m = p.meta;
    return {{"device", m.device},
            {"point", m.id},
            {"path", p.data.string()},
            {"format", backup::point_format_name(m.format)},
            {"time", time_text(m.time)},
            {"generation_id", m.generation_id.str()},
            {"changes_number", m.changes_number},
            {"mode", m.incremental ? "incremental" : "full"},
            {"bytes_changed", m.bytes_changed},
            {"bytes_stored", m.bytes_stored},
            {"verified", m.verified},
            {"size", m.size},
            {"backing", m.backing ? nlohmann::ordered_json(*m.backing) : nullptr}};
}

std::string point_line(const Point& p) {
    const auto& m = p.meta;
    char id[16];
    std::snprintf(id, sizeof(id), "%6llu", static_cast<unsigned long long>(m.id));
    return m.device + " " + id + "  " + time_text(m.time) + "  " +
           (m.incremental ? "incremental" : "full       ") + "  " + m.generation_id.str() + "/" +
           std::to_string(m.changes_number) + "  changed " + human_bytes(m.bytes_changed) +
           ", stored " + human_bytes(m.bytes_stored) + (m.verified ? ", verified" : "") + "  " +
           p.data.string();
}

// -p/--point: a point's number in decimal, leading zeros allowed as in its
// file name (000012 is point 12, never octal).
CLI::Option* add_point(CLI::App& cmd, std::optional<std::uint64_t>& point,
                       const std::string& help) {
    return cmd
        .add_option_function<std::string>(
            "-p,--point",
            [&point](const std::string& text) {
                std::uint64_t v = 0;
                const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
                if (text.empty() || ec != std::errc() || end != text.data() + text.size())
                    throw CLI::ValidationError("--point", "not a point number: " + text);
                point = v;
            },
            help)
        ->type_name("POINT");
}

void add_points(CLI::App& app, Context& ctx) {
    auto* cmd = app.add_subcommand(
        "points", "List the restore points of a backup directory, per device, oldest first");
    auto dir = std::make_shared<std::filesystem::path>();
    auto json = std::make_shared<bool>(false);
    cmd->add_option("-o,--output", *dir, "Backup directory")->required();
    cmd->add_flag("-j,--json", *json, "Print one JSON object per point");
    cmd->callback([&ctx, dir, json] {
        const auto dirs = backup::point_dirs(*dir);
        if (dirs.empty() && !std::filesystem::is_directory(*dir))
            throw Error(ENOENT, context("list the points in", dir->string()));
        for (const auto& pdir : dirs)
            for (const auto& p : backup::list_points(pdir)) {
                if (*json)
                    ctx.print(point_json(p));
                else
                    ctx.out() << point_line(p) << std::endl;
            }
    });
}

void add_restore(CLI::App& app, Context& ctx) {
    auto* cmd = app.add_subcommand(
        "restore", "Write a restore point to a block device or a file; with --changed-only, "
                   "only what changed on the device since the point");
    auto o = std::make_shared<backup::RestoreOptions>();
    auto json = std::make_shared<bool>(false);
    cmd->add_option("-o,--output", o->dir, "Backup directory")->required();
    cmd->add_option("-d,--device", o->target,
                    "Where to write: a block device (not mounted, not smaller) or a file")
        ->required();
    cmd->add_option("-s,--source", o->device,
                    "The device whose point to restore (its path or file name); needed when "
                    "the directory holds several devices' points");
    add_point(*cmd, o->point, "The point (as blksnap points lists it); the newest by default");
    cmd->add_flag("--changed-only", o->changed_only,
                  "Quick rollback: the target is the point's own device, tracked in the same "
                  "generation; write only the blocks changed since the point, then read them "
                  "back and check them");
    cmd->add_flag("-j,--json", *json, "Print one JSON object on standard output");
    cmd->callback([&ctx, o, json] {
        ProgressBar bar(ctx.err(), ctx.err_is_tty());
        backup::RestoreHooks hooks;
        hooks.start = [&](const backup::RestoreReport& r) {
            bar.start("restore point " + std::to_string(r.point.meta.id), r.to_write);
        };
        hooks.progress = [&](const backup::RestoreReport& r) { bar.update(r.bytes_written); };
        const auto r = backup::run_restore(ctx.kernel(), *o, hooks);
        bar.clear();
        const std::string line =
            r.point.meta.device + ": point " + std::to_string(r.point.meta.id) + " " +
            (r.changed_only ? "rolled back onto " : "restored to ") + r.target + ": wrote " +
            human_bytes(r.bytes_written) + " of " + human_bytes(r.point.meta.size) + ", " +
            std::to_string(r.blocks_checked) + " blocks checked";
        if (*json) {
            nlohmann::ordered_json j = point_json(r.point);
            j["target"] = r.target;
            j["changed_only"] = r.changed_only;
            j["bytes_written"] = r.bytes_written;
            j["blocks_checked"] = r.blocks_checked;
            j["seconds"] = r.seconds;
            j["phases"] = {{"prepare", r.phases.prepare},
                           {"copy", r.phases.copy},
                           {"sync", r.phases.sync},
                           {"readback", r.phases.readback}};
            ctx.print(j);
            ctx.err() << line << std::endl;
        } else {
            ctx.out() << line << std::endl;
        }
    });
}

void add_verify(CLI::App& app, Context& ctx) {
    auto* cmd = app.add_subcommand(
        "verify", "Read restore points back and check every block against its checksum");
    auto dir = std::make_shared<std::filesystem::path>();
    auto device = std::make_shared<std::optional<std::string>>();
    auto point = std::make_shared<std::optional<std::uint64_t>>();
    auto json = std::make_shared<bool>(false);
    cmd->add_option("-o,--output", *dir, "Backup directory")->required();
    cmd->add_option("-s,--source", *device, "Only this device's points (path or file name)");
    add_point(*cmd, *point, "Only this point (needs -s when several devices)");
    cmd->add_flag("-j,--json", *json, "Print one JSON object per point");
    cmd->callback([&ctx, dir, device, point, json] {
        std::vector<Point> points;
        if (*point) {
            points.push_back(backup::find_point(*dir, *device, *point));
        } else if (*device) {
            const auto p = backup::find_point(*dir, *device, std::nullopt);
            points = backup::list_points(p.data.parent_path());
        } else {
            for (const auto& pdir : backup::point_dirs(*dir))
                for (auto& p : backup::list_points(pdir))
                    points.push_back(std::move(p));
            if (points.empty())
                throw Error(ENOENT, context("verify the points in", dir->string()),
                            "there are none");
        }
        ProgressBar bar(ctx.err(), ctx.err_is_tty());
        for (auto& p : points) {
            bar.start("verify point " + std::to_string(p.meta.id), p.meta.size);
            backup::verify_point(p, [&](std::uint64_t done, std::uint64_t) { bar.update(done); });
            bar.clear();
            const std::string line = p.meta.device + ": point " + std::to_string(p.meta.id) +
                                     " verified: " + std::to_string(p.meta.sums.size()) +
                                     " blocks match their checksums";
            if (*json) {
                ctx.print(point_json(p));
                ctx.err() << line << std::endl;
            } else {
                ctx.out() << line << std::endl;
            }
        }
    });
}

} // namespace

void add_points_commands(CLI::App& app, Context& ctx) {
    add_points(app, ctx);
    add_restore(app, ctx);
    add_verify(app, ctx);
}

} // namespace blksnap::cli
