#include <blksnap/backup/plan.hpp>
#include <blksnap/error.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <sys/sysmacros.h>

namespace blksnap::backup {

namespace {

constexpr std::uint64_t sector_size = 512;

std::string bytes_text(std::uint64_t n) {
    return std::to_string(n) + " bytes";
}

std::string time_text(std::int64_t sec, std::uint32_t nsec) {
    char ns[16];
    std::snprintf(ns, sizeof(ns), ".%09u", nsec);
    return std::to_string(sec) + ns;
}

std::string dev_text(std::uint64_t dev) {
    return std::to_string(major(dev)) + ":" + std::to_string(minor(dev));
}

// Why the image file is not the one STATE was bound to, or empty.
std::string image_changed(const cbt::FileIdentity& was, const cbt::FileIdentity& now) {
    if (was.device != now.device || was.inode != now.inode)
        return "the image file is not the one the state file was written for: device " +
               dev_text(now.device) + " inode " + std::to_string(now.inode) + ", was device " +
               dev_text(was.device) + " inode " + std::to_string(was.inode);
    if (was.size != now.size)
        return "the image file changed since the last backup: " + bytes_text(now.size) + ", was " +
               bytes_text(was.size);
    std::string what;
    if (was.ctime_sec != now.ctime_sec || was.ctime_nsec != now.ctime_nsec)
        what = "ctime " + time_text(now.ctime_sec, now.ctime_nsec) + ", was " +
               time_text(was.ctime_sec, was.ctime_nsec);
    if (was.mtime_sec != now.mtime_sec || was.mtime_nsec != now.mtime_nsec)
        what += (what.empty() ? "" : "; ") + std::string("mtime ") +
                time_text(now.mtime_sec, now.mtime_nsec) + ", was " +
                time_text(was.mtime_sec, was.mtime_nsec);
    if (what.empty())
        return {};
    return "the image file changed since the last backup (written, or another copied over it): " +
           what;
}

} // namespace

Decision decide(const PreviousBackup& previous, const CbtInfo& info,
                std::span<const std::uint8_t> map, std::uint64_t source_size) {
    auto full = [](std::string reason) { return Decision{false, std::move(reason), {}}; };
    switch (previous.state) {
    case PreviousBackup::State::missing:
        return full(previous.image ? "no state file beside the image"
                                   : "first backup: no state file");
    case PreviousBackup::State::damaged:
        return full("state file unusable: " + previous.problem);
    case PreviousBackup::State::valid:
        break;
    }
    const cbt::CbtState& st = previous.cbt;
    if (st.incomplete)
        return full("the last backup did not finish writing the image (the state file says "
                    "incomplete)");
    if (st.device_capacity != info.device_capacity)
        return full("device size changed from " + bytes_text(st.device_capacity) + " to " +
                    bytes_text(info.device_capacity));
    if (st.block_size != info.block_size || st.map.size() != info.block_count)
        return full("tracking blocks changed from " + std::to_string(st.map.size()) + " of " +
                    bytes_text(st.block_size) + " to " + std::to_string(info.block_count) + " of " +
                    bytes_text(info.block_size));
    if (source_size != info.device_capacity)
        return full("the snapshot image is " + bytes_text(source_size) +
                    ", the change map covers " + bytes_text(info.device_capacity));
    if (!previous.image)
        return full("image file missing");
    if (previous.image_size != source_size)
        return full("image file is " + bytes_text(previous.image_size) + ", the device " +
                    bytes_text(source_size));
    if (!st.image)
        return full("the state file has no image binding (written by an older blksnap): the "
                    "image cannot be checked");
    if (auto why = image_changed(st.image->file, previous.image_file); !why.empty())
        return full(std::move(why));
    cbt::Changes changes = cbt::changed_since(info, map, st.position);
    if (auto* need = std::get_if<cbt::FullBackupNeeded>(&changes))
        return full(need->reason);
    return {true,
            "changes since take " + std::to_string(st.position.changes_number) + " of generation " +
                st.position.generation_id.str(),
            std::move(std::get<std::vector<cbt::Extent>>(changes))};
}

std::vector<CopyStep> copy_plan(std::span<const cbt::Extent> extents, std::uint64_t size,
                                std::uint64_t max_gap) {
    std::vector<CopyStep> plan;
    for (const auto& e : extents) {
        const std::uint64_t begin = e.sector * sector_size;
        if (begin >= size)
            break;
        const std::uint64_t end = std::min(size, (e.sector + e.count) * sector_size);
        if (end <= begin)
            continue;
        if (!plan.empty()) {
            CopyStep& last = plan.back();
            const std::uint64_t last_end = last.read.offset + last.read.length;
            if (begin <= last_end + max_gap) {
                last.read.length = std::max(last_end, end) - last.read.offset;
                ByteRange& w = last.write.back();
                if (begin <= w.offset + w.length)
                    w.length = std::max(w.offset + w.length, end) - w.offset;
                else
                    last.write.push_back({begin, end - begin});
                continue;
            }
        }
        plan.push_back({{begin, end - begin}, {{begin, end - begin}}});
    }
    return plan;
}

std::vector<std::uint64_t> sample_blocks(std::span<const CopyStep> plan, std::uint64_t blocks,
                                         std::uint32_t block_size, std::uint64_t count,
                                         double phase) {
    std::vector<bool> written(blocks);
    std::uint64_t n_written = 0;
    for (const auto& step : plan)
        for (const auto& w : step.write) {
            if (block_size == 0 || w.length == 0)
                continue;
            const std::uint64_t last = std::min(blocks, (w.offset + w.length - 1) / block_size + 1);
            for (std::uint64_t b = w.offset / block_size; b < last; ++b)
                if (!written[b]) {
                    written[b] = true;
                    ++n_written;
                }
        }
    const std::uint64_t left = blocks - n_written;
    std::vector<std::uint64_t> out;
    if (count == 0 || left == 0)
        return out;
    // The ranks (among the unwritten blocks) to take: one per stretch of
    // LEFT / COUNT, at PHASE within it.
    const bool all = count >= left;
    const double stretch = all ? 1.0 : double(left) / double(count);
    phase = std::clamp(phase, 0.0, 1.0);
    out.reserve(static_cast<std::size_t>(std::min(count, left)));
    std::uint64_t rank = 0, taken = 0;
    auto next_rank = [&] {
        return all ? taken
                   : std::min(left - 1,
                              static_cast<std::uint64_t>((double(taken) + phase) * stretch));
    };
    std::uint64_t want = next_rank();
    for (std::uint64_t b = 0; b < blocks && out.size() < std::min(count, left); ++b) {
        if (written[b])
            continue;
        if (rank == want) {
            out.push_back(b);
            ++taken;
            want = next_rank();
        }
        ++rank;
    }
    return out;
}

std::vector<CopyStep> full_plan(std::uint64_t size) {
    if (size == 0)
        return {};
    return {{{0, size}, {{0, size}}}};
}

std::uint64_t bytes_to_read(std::span<const CopyStep> plan) {
    std::uint64_t n = 0;
    for (const auto& s : plan)
        n += s.read.length;
    return n;
}

std::uint64_t bytes_to_write(std::span<const CopyStep> plan) {
    std::uint64_t n = 0;
    for (const auto& s : plan)
        for (const auto& w : s.write)
            n += w.length;
    return n;
}

} // namespace blksnap::backup
