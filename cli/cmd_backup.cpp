// backup: the options of `blksnap backup`, the backup engine
// (<blksnap/backup/job.hpp>) run with them, and what it reports printed; see
// blksnap(8).
#include "args.hpp"
#include "commands.hpp"
#include "progress.hpp"

#include <blksnap/backup/job.hpp>
#include <blksnap/error.hpp>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>

namespace blksnap::cli {

using backup::BackupFailed;
using backup::BackupHooks;
using backup::BackupOptions;
using backup::DeviceReport;
using backup::Verify;
using backup::WritePath;

namespace {

std::atomic<bool> stop_requested{false};

extern "C" void on_stop_signal(int) {
    stop_requested = true;
}

// SIGINT, SIGTERM and SIGHUP (the terminal or the session gone) end the
// backup cleanly (the snapshot destroyed, the
// state file as it was) while the object lives.
class StopSignals {
public:
    StopSignals() {
        stop_requested = false;
        struct sigaction sa {};
        sa.sa_handler = on_stop_signal;
        sigemptyset(&sa.sa_mask);
        sa.sa_flags = SA_RESTART;
        ::sigaction(SIGINT, &sa, &old_int_);
        ::sigaction(SIGTERM, &sa, &old_term_);
        ::sigaction(SIGHUP, &sa, &old_hup_);
        // Under nohup(1) SIGHUP stays ignored, as asked.
        if (old_hup_.sa_handler == SIG_IGN)
            ::sigaction(SIGHUP, &old_hup_, nullptr);
    }
    ~StopSignals() {
        ::sigaction(SIGINT, &old_int_, nullptr);
        ::sigaction(SIGTERM, &old_term_, nullptr);
        ::sigaction(SIGHUP, &old_hup_, nullptr);
    }
    StopSignals(const StopSignals&) = delete;
    StopSignals& operator=(const StopSignals&) = delete;

private:
    struct sigaction old_int_ {};
    struct sigaction old_term_ {};
    struct sigaction old_hup_ {};
};

std::string seconds_text(double s) {
    char text[32];
    std::snprintf(text, sizeof(text), "%.2f", s);
    return text;
}

// How the data went into the image, as the summary line tells it.
std::string write_path_text(const DeviceReport& r) {
    switch (r.write_path) {
    case WritePath::none:
    case WritePath::fresh:
        return "";
    case WritePath::reflink:
        return " into a reflink copy";
    case WritePath::in_place:
        return " in place (as " + backup::partial_path(r.image).filename().string() + " meanwhile)";
    }
    return "";
}

// The restore point made, and those --keep dropped.
std::string point_text(const DeviceReport& r) {
    if (!r.point)
        return "";
    std::string text = ", point " + std::to_string(r.point->meta.id) + " (" +
                       backup::point_format_name(r.point->meta.format) + ", stored " +
                       human_bytes(r.point->meta.bytes_stored) + ")";
    if (!r.dropped.empty()) {
        text += ", dropped point";
        text += r.dropped.size() > 1 ? "s" : "";
        for (std::size_t i = 0; i < r.dropped.size(); ++i)
            text += (i ? ", " : " ") + std::to_string(r.dropped[i]);
    }
    return text;
}

std::string summary(const DeviceReport& r) {
    std::string checked;
    if (r.incremental)
        checked = "checked " + std::to_string(r.checked_blocks) + " blocks of the image, ";
    return r.device + ": " + (r.incremental ? "incremental" : "full") + " (" + r.reason +
           "): " + checked + "read " + human_bytes(r.bytes_read) + " of " + human_bytes(r.size) +
           ", wrote " + human_bytes(r.bytes_written) + write_path_text(r) + " in " +
           seconds_text(r.seconds) + " s" + (r.verified ? ", verified" : "") + " -> " +
           r.image.string() + point_text(r);
}

nlohmann::ordered_json to_json(const DeviceReport& r) {
    return {{"device", r.device},
            {"image", r.image.string()},
            {"mode", r.incremental ? "incremental" : "full"},
            {"reason", r.reason},
            {"size", r.size},
            {"bytes_read", r.bytes_read},
            {"bytes_written", r.bytes_written},
            {"seconds", r.seconds},
            {"verified", r.verified},
            {"checked_blocks", r.checked_blocks},
            {"checked_bytes", r.checked_bytes},
            {"write_path", backup::write_path_name(r.write_path)},
            {"generation_id", r.generation_id.str()},
            {"changes_number", r.changes_number},
            {"point", r.point ? nlohmann::ordered_json(r.point->meta.id) : nullptr},
            {"point_path", r.point ? nlohmann::ordered_json(r.point->data.string()) : nullptr},
            {"format", r.point ? backup::point_format_name(r.point->meta.format) : "none"},
            {"bytes_stored", r.point ? r.point->meta.bytes_stored : 0},
            {"dropped", r.dropped}};
}

} // namespace

void add_backup_commands(CLI::App& app, Context& ctx) {
    auto* cmd = app.add_subcommand(
        "backup",
        "Back up devices into a directory: one snapshot of them all, each copied into "
        "DIR/NAME.img, fully the first time, then only the blocks changed since (DIR/NAME.state); "
        "each backup leaves a restore point (DIR/NAME.points)");
    auto o = std::make_shared<BackupOptions>();
    auto json = std::make_shared<bool>(false);
    add_devices(*cmd, o->devices);
    cmd->add_option("-o,--output", o->dir, "Backup directory (created when missing)")->required();
    cmd->add_option("-f,--file", o->storage,
                    "Difference storage while the backup runs, as for snapshot_create")
        ->required();
    cmd->add_option("-l,--limit", o->limit,
                    "Largest size of the difference storage, bytes with optional suffix K, M, G")
        ->required()
        ->transform(size_bytes());
    auto verify = std::make_shared<std::string>();
    cmd->add_flag("--verify{written}", *verify,
                  "Read the image back (O_DIRECT) and compare it with a second read of the "
                  "snapshot: what this backup wrote, or with --verify=full the whole image")
        ->check(CLI::IsMember({"written", "full"}));
    cmd->add_option("--check-blocks", o->check_blocks,
                    "Before an incremental backup, compare this many blocks of the image (spread "
                    "over those it will not rewrite) with their checksums in the state file; "
                    "default 64 (at most 64 MiB), 0 checks only the image file's identity");
    auto format = std::make_shared<std::string>("auto");
    cmd->add_option("--format", *format,
                    "Format of the restore points (DIR/NAME.points): raw (a reflink copy where "
                    "the file system has reflinks, else a sparse copy), qcow2 (an overlay on the "
                    "point before), or auto: the newest point's, else raw on a file system with "
                    "reflinks and qcow2 elsewhere")
        ->check(CLI::IsMember({"auto", "raw", "qcow2"}));
    cmd->add_option("--keep", o->keep,
                    "Keep the newest N restore points per device, dropping older ones "
                    "(default: all)")
        ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{999999}));
    cmd->add_flag("-j,--json", *json,
                  "Print one JSON object per device on standard output (the summary lines go "
                  "to standard error)");
    cmd->callback([&ctx, o, json, verify, format] {
        o->format = backup::parse_point_format(*format);
        o->verify = verify->empty()     ? Verify::none
                    : *verify == "full" ? Verify::full
                                        : Verify::written;
        StopSignals signals;
        ProgressBar bar(ctx.err(), ctx.err_is_tty());
        BackupHooks hooks;
        hooks.note = [&](const std::string& m) {
            bar.clear();
            ctx.err() << "blksnap: " << m << std::endl;
        };
        hooks.start = [&](const DeviceReport& r) {
            bar.start(r.device + (r.incremental ? " incremental" : " full"), r.to_read);
        };
        hooks.progress = [&](const DeviceReport& r) { bar.update(r.bytes_read); };
        hooks.done = [&](const DeviceReport& r) {
            bar.clear();
            if (*json) {
                ctx.print(to_json(r));
                ctx.err() << summary(r) << std::endl;
            } else {
                ctx.out() << summary(r) << std::endl;
            }
        };
        hooks.interrupted = [] { return stop_requested.load(); };
        try {
            backup::run_backup(ctx.kernel(), *o, hooks);
        } catch (const Error& e) {
            bar.clear();
            // A signal may have broken a wait of the reader: say what
            // happened rather than which call saw it.
            if (stop_requested) {
                const auto* failed = dynamic_cast<const BackupFailed*>(&e);
                const std::string after = failed ? failed->aftermath() : "";
                throw Error(EINTR, context("backup", o->dir.string()),
                            "interrupted by a signal; the snapshot is destroyed, and no state "
                            "file claims more than its image holds" +
                                (after.empty() ? "" : "; " + after));
            }
            throw;
        }
    });
}

} // namespace blksnap::cli
