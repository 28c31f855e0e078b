#include "backup_plan.hpp"

#include <blksnap/error.hpp>

#include <algorithm>
#include <cerrno>

namespace blksnap::cli {

namespace {

constexpr std::uint64_t sector_size = 512;

std::string bytes_text(std::uint64_t n) {
    return std::to_string(n) + " bytes";
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

} // namespace blksnap::cli
