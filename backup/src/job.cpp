#include <blksnap/backup/checksum.hpp>
#include <blksnap/backup/job.hpp>
#include <blksnap/backup/readback.hpp>
#include <blksnap/backup/target.hpp>
#include <blksnap/cbt/map.hpp>
#include <blksnap/cbt/state_file.hpp>
#include <blksnap/error.hpp>
#include <blksnap/snapshot.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <fcntl.h>
#include <fstream>
#include <random>
#include <set>
#include <sys/file.h>
#include <sys/stat.h>
#include <system_error>
#include <unistd.h>

namespace blksnap::backup {

namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;

void call(const std::function<void(const DeviceReport&)>& f, const DeviceReport& r) {
    if (f)
        f(r);
}

// Holds DIR against a second backup into it for the life of the object.
UniqueFd lock_dir(const fs::path& dir) {
    UniqueFd fd = open_fd(dir.string(), O_RDONLY | O_DIRECTORY);
    if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
        if (errno == EWOULDBLOCK)
            throw Error(EBUSY, context("backup", dir.string()),
                        "another backup into this directory is running");
        throw_errno(context("lock", dir.string()));
    }
    return fd;
}

// Destroys the snapshot a killed backup into DIR left behind.
void destroy_leftover(KernelBackend& kernel, const fs::path& file, const BackupHooks& hooks) {
    const int fd = ::open(file.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return;
        throw_errno(context("open", file.string()));
    }
    UniqueFd in(fd);
    char buf[64] = {};
    ssize_t n;
    while ((n = ::read(in.get(), buf, sizeof(buf) - 1)) < 0 && errno == EINTR) {
    }
    if (n < 0)
        throw_errno(context("read", file.string()));
    std::string text(buf, static_cast<std::size_t>(n));
    text = text.substr(0, text.find('\n'));
    const auto id = Uuid::try_parse(text);
    if (id) {
        // Gone already (a reboot, a module reload, the user): ENOENT. No
        // list first: it could be destroyed between the list and the call.
        try {
            kernel.snapshot_destroy(*id);
            if (hooks.note)
                hooks.note("destroyed snapshot " + id->str() +
                           ", left by an interrupted backup into this directory");
        } catch (const Error& e) {
            if (e.code() != ENOENT)
                throw;
        }
    }
    remove_durably(file);
}

// The error of a device's snapshot once corrupted, else 0.
int corruption(Snapshot& snap, const std::string& device) {
    return snap.info(device).error_code;
}

[[noreturn]] void corrupted(const std::string& device, int error_code, std::uint64_t limit,
                            const std::string& aftermath) {
    const int err = -error_code;
    std::string why = "the snapshot was corrupted during the backup (" +
                      std::generic_category().message(err) + ")";
    if (err == ENOSPC)
        why += ": its difference storage reached the limit of " + std::to_string(limit) +
               " bytes; give a larger -l";
    throw BackupFailed(Error(err, context("backup", device), why), aftermath);
}

struct DeviceJob {
    KernelBackend& kernel;
    const BackupOptions& options;
    const BackupHooks& hooks;
    Snapshot& snap;
    const std::string& device;
    std::string name;
    std::int64_t take_time = 0;
    std::uint32_t info_block_size = 0;

    bool state_removed = false;
    std::optional<TargetImage> target;

    // What a failure now leaves of the image and the state file; empty
    // while nothing was changed.
    std::string aftermath() const {
        const std::string unchanged = "the image and the state file are unchanged";
        if (!target)
            return state_removed ? "the state file was removed when the full backup began" : "";
        const std::string partial = partial_path(target->image()).filename().string();
        if (target->committed())
            return target->how() == WritePath::none
                       ? ""
                       : "the image is complete, but the state file is the last backup's: "
                         "the next backup is full";
        switch (target->how()) {
        case WritePath::none:
            return "";
        case WritePath::fresh:
            return "the state file and the old image were removed when the full backup "
                   "began; what it wrote is left as " +
                   partial + ", incomplete";
        case WritePath::reflink:
            return unchanged + " (the changes went to a reflink copy of the image, removed)";
        case WritePath::in_place:
            return "the image is left as " + partial + ", incomplete, and the state file says " +
                   "so: the next backup is full";
        }
        return "";
    }

    // Any failure once the snapshot is corrupted (a read of its image
    // fails) is told as the corruption.
    void run() {
        try {
            copy_device();
        } catch (...) {
            int err = 0;
            try {
                err = corruption(snap, device);
            } catch (const Error&) {
                // the first error is the one to tell
            }
            std::string after = aftermath();
            if (err)
                corrupted(device, err, options.limit,
                          after.empty() ? "the image and the state file are unchanged" : after);
            try {
                throw;
            } catch (const BackupFailed&) {
                throw;
            } catch (const Error& e) {
                throw BackupFailed(e, std::move(after));
            }
        }
    }

    void copy_device() {
        const auto t0 = Clock::now();
        DeviceReport r;
        r.device = device;
        r.image = options.dir / (name + ".img");
        const fs::path state_path = options.dir / (name + ".state");

        DeviceFilter filter(kernel, device);
        const CbtInfo info = filter.cbt_info();
        std::vector<std::uint8_t> map = cbt::read_map(filter, info);
        r.generation_id = info.generation_id;
        r.changes_number = info.changes_number;

        const SnapshotInfo si = snap.info(device);
        const std::string source =
            hooks.image_path ? hooks.image_path(device, si) : si.image_path();
        if (source.empty())
            throw Error(ENODEV, context("backup", device), "the snapshot has no image");
        ImageReader reader(source, options.read);
        r.size = reader.size();

        for (const auto& left : remove_leftover_copies(r.image))
            if (hooks.note)
                hooks.note("removed " + (options.dir / left).string() +
                           ", a copy of the image left by an interrupted backup");

        const fs::path pdir = points_dir(options.dir, name);
        tidy_points(pdir, hooks.note);
        PreviousBackup previous = load_previous(r.image, state_path);
        Decision d = decide(previous, info, map, r.size);
        std::vector<CopyStep> plan;
        const std::uint32_t bs = info.block_size;
        info_block_size = bs;
        const std::uint64_t blocks = bs ? (r.size + bs - 1) / bs : 0;
        if (d.incremental) {
            plan = copy_plan(d.extents, r.size, options.max_gap);
            check_image(previous, plan, blocks, bs, d, r);
        }
        if (!d.incremental)
            plan = full_plan(r.size);
        r.incremental = d.incremental;
        r.reason = d.reason;
        r.to_read = bytes_to_read(plan);
        call(hooks.start, r);

        // A full backup rewrites the image: the old state must not outlive
        // the old image.
        if (!d.incremental) {
            remove_durably(state_path);
            state_removed = true;
            target.emplace(TargetImage::create(r.image, r.size));
        } else {
            // Where the image is changed in place, the state says so
            // before the first write.
            target.emplace(TargetImage::update(
                r.image,
                [&] {
                    cbt::CbtState marked = previous.cbt;
                    marked.incomplete = true;
                    cbt::write_state_file(state_path, marked);
                },
                options.reflink));
        }
        BlockSums sums(d.incremental ? previous.cbt.image->sums
                                     : std::vector<std::uint64_t>(blocks),
                       bs, r.size);
        copy(reader, *target, plan, r, sums);
        r.write_path = target->how();
        target->sync();
        // Reads that succeeded before a corruption gave the right data, but
        // tell it anyway: the storage was too small for this backup.
        if (const int err = corruption(snap, device))
            corrupted(device, err, options.limit, aftermath());

        if (options.verify != Verify::none) {
            // Read back from the file's device and compared with the
            // snapshot read again: not the buffers this run wrote.
            std::vector<ByteRange> ranges;
            if (options.verify == Verify::full)
                ranges.push_back({0, r.size});
            else
                for (const auto& step : plan)
                    ranges.insert(ranges.end(), step.write.begin(), step.write.end());
            if (const auto at = first_difference(target->path(), source, ranges))
                throw Error(
                    EIO, context("verify", r.image.string()),
                    "the image differs from a second read of the snapshot at byte " +
                        std::to_string(*at) +
                        (options.verify == Verify::full ? "" : " (of what this backup wrote)") +
                        "; no new state is written");
            r.verified = true;
        }

        std::vector<std::uint64_t> block_sums = sums.finish(target->path());
        target->commit();
        // The point before the state: a state file is only ever newer
        // than the newest point when the point could not be made.
        r.point = make_point(r, d, plan, previous, block_sums, pdir);
        cbt::CbtState state = cbt::CbtState::of(info, std::move(map));
        state.image =
            cbt::ImageBinding{cbt::FileIdentity::of(target->status()), std::move(block_sums)};
        cbt::write_state_file(state_path, state);
        target.reset();
        if (options.keep) {
            // The backup is complete: a point that cannot be dropped now
            // (a restore reading its chain holds it) is dropped next time.
            try {
                r.dropped = keep_newest(pdir, options.keep);
            } catch (const Error& e) {
                if (hooks.note)
                    hooks.note(std::string("could not drop the points beyond the newest ") +
                               std::to_string(options.keep) + ": " + e.what() +
                               "; the next backup will");
            }
        }
        r.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
        call(hooks.done, r);
    }

    // The restore point of the image just committed.
    Point make_point(const DeviceReport& r, const Decision& d, const std::vector<CopyStep>& plan,
                     const PreviousBackup& previous, const std::vector<std::uint64_t>& sums,
                     const fs::path& pdir) {
        const auto points = list_points(pdir);
        const std::optional<Point> newest =
            points.empty() ? std::nullopt : std::optional<Point>(points.back());
        PointFormat format = PointFormat::raw;
        if (options.format)
            format = *options.format;
        else if (newest)
            format = newest->meta.format;
        else
            format = can_reflink(options.dir) ? PointFormat::raw : PointFormat::qcow2;

        NewPoint np;
        np.head = r.image;
        PointMeta& m = np.meta;
        m.device = device;
        m.time = take_time;
        m.generation_id = r.generation_id;
        m.changes_number = r.changes_number;
        m.incremental = d.incremental;
        m.reason = d.reason;
        m.size = r.size;
        m.block_size = info_block_size;
        m.bytes_changed = d.incremental ? bytes_to_write(plan) : r.size;
        m.verified = options.verify == Verify::full;
        m.sums = sums;
        for (const auto& step : plan)
            np.changed.insert(np.changed.end(), step.write.begin(), step.write.end());
        // The newest point is the image this incremental backup started
        // from: made at the state's position, with its checksums.
        if (d.incremental && newest && previous.cbt.image &&
            newest->meta.generation_id == previous.cbt.position.generation_id &&
            newest->meta.changes_number == previous.cbt.position.changes_number &&
            newest->meta.sums == previous.cbt.image->sums)
            np.continues = newest;
        return publish_point(pdir, format, std::move(np));
    }

    // The image file against the checksums the state file keeps of its
    // blocks, for a sample of those this incremental backup will not
    // rewrite: a block that differs makes the backup full.
    void check_image(const PreviousBackup& previous, const std::vector<CopyStep>& plan,
                     std::uint64_t blocks, std::uint32_t bs, Decision& d, DeviceReport& r) {
        const auto& sums = previous.cbt.image->sums;
        const std::uint64_t count =
            options.check_blocks ? *options.check_blocks : default_check_blocks(bs);
        thread_local std::mt19937_64 random{std::random_device{}()};
        const double phase = std::uniform_real_distribution<double>(0.0, 1.0)(random);
        const auto sample = sample_blocks(plan, blocks, bs, count, phase);
        const auto now = block_sums(r.image, bs, sample);
        for (std::size_t i = 0; i < sample.size(); ++i) {
            const std::uint64_t b = sample[i];
            const std::uint64_t start = b * bs, end = std::min(start + bs, r.size);
            r.checked_blocks = i + 1;
            r.checked_bytes += end - start;
            if (now[i] != sums[b]) {
                d = {false,
                     "block " + std::to_string(b) + " of the image (bytes " +
                         std::to_string(start) + " to " + std::to_string(end - 1) +
                         ") is not what the last backup wrote there (xxh64 " + hex64(now[i]) +
                         ", was " + hex64(sums[b]) + "; " + std::to_string(i + 1) + " of " +
                         std::to_string(sample.size()) + " blocks checked)",
                     {}};
                return;
            }
        }
    }

    // Reads the PLAN's steps, several reads in flight across them, and
    // writes the parts of each to be written.
    void copy(ImageReader& reader, TargetImage& target, const std::vector<CopyStep>& plan,
              DeviceReport& r, BlockSums& sums) {
        std::vector<BlockRange> reads;
        reads.reserve(plan.size());
        for (const auto& step : plan)
            reads.push_back({step.read.offset, step.read.length});
        auto step = plan.begin();
        auto w =
            step == plan.end() ? std::vector<ByteRange>::const_iterator{} : step->write.begin();
        reader.read(reads, [&](std::uint64_t offset, std::span<const std::byte> data) {
            if (hooks.interrupted && hooks.interrupted())
                throw Error(EINTR, context("backup", device), "interrupted");
            while (offset >= step->read.offset + step->read.length) {
                ++step; // pieces come in order: this one is in a later step
                w = step->write.begin();
            }
            const std::uint64_t end = offset + data.size();
            for (; w != step->write.end() && w->offset < end; ++w) {
                const std::uint64_t from = std::max(offset, w->offset);
                const std::uint64_t to = std::min(end, w->offset + w->length);
                const auto part = data.subspan(static_cast<std::size_t>(from - offset),
                                               static_cast<std::size_t>(to - from));
                target.write(from, part);
                sums.written(from, part);
                if (to < w->offset + w->length)
                    break; // the rest of this range comes in the next piece
            }
            r.bytes_read += data.size();
            r.bytes_written = target.bytes_written();
            r.write_path = target.how();
            call(hooks.progress, r);
        });
    }
};

} // namespace

BackupFailed::BackupFailed(const Error& e, std::string aftermath)
    : Error(e.code(), "", aftermath.empty() ? e.what() : std::string(e.what()) + "; " + aftermath),
      aftermath_(std::move(aftermath)) {}

std::uint64_t default_check_blocks(std::uint32_t block_size) {
    constexpr std::uint64_t most = 64, budget = 64u << 20;
    return block_size ? std::clamp<std::uint64_t>(budget / block_size, 1, most) : most;
}

void run_backup(KernelBackend& kernel, const BackupOptions& options, const BackupHooks& hooks) {
    std::vector<std::string> names;
    std::set<std::string> seen;
    for (const auto& dev : options.devices) {
        names.push_back(cbt::device_file_name(dev));
        if (!seen.insert(names.back()).second)
            throw Error(EINVAL, context("backup", dev),
                        "another device given has the same file name '" + names.back() + "'");
    }
    fs::create_directories(options.dir);
    const UniqueFd lock = lock_dir(options.dir);
    const fs::path id_file = options.dir / snapshot_id_file;
    destroy_leftover(kernel, id_file, hooks);

    // Removed after the snapshot is destroyed, on every way out but a kill.
    struct IdFile {
        fs::path path;
        ~IdFile() { ::unlink(path.c_str()); }
    } id_guard{id_file};
    Snapshot snap = Snapshot::create(kernel, options.storage, options.limit, options.devices);
    {
        UniqueFd out = open_fd(id_file.string(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, 0600);
        const std::string text = snap.id().str() + '\n';
        write_all(out.get(), text.data(), text.size(), context("write", id_file.string()));
    }
    snap.take();
    const std::int64_t take_time = ::time(nullptr);
    for (std::size_t i = 0; i < options.devices.size(); ++i)
        DeviceJob{kernel, options, hooks, snap, options.devices[i], names[i], take_time, 0, {}, {}}
            .run();
    snap.destroy();
}

} // namespace blksnap::backup
