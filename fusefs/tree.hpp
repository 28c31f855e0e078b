// The tree shown under the mount point, rebuilt from the Source on demand
// (at most once per refresh interval, so that a burst of lookups costs one
// scan).
#pragma once

#include "path.hpp"
#include "source.hpp"

#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace blksnapfs {

// One scan of the kernel's state.
struct View {
    std::vector<blksnap::Uuid> snapshots; // sorted
    std::vector<TakenDevice> devices;     // sorted by snapshot, then name

    bool has_snapshot(const std::string& id) const;
    // The device NAME of snapshot ID (its text), or nullptr.
    const TakenDevice* device(const std::string& id, const std::string& name) const;
};

// What a path names, with what getattr needs.
struct Node {
    PathRef ref;
    bool directory = false;
    std::uint64_t size = 0;
    std::optional<blksnap::Uuid> snapshot; // snapshot dirs and events files
    std::optional<TakenDevice> device;     // device dirs and their files
};

class Tree {
public:
    using Clock = std::chrono::steady_clock;

    explicit Tree(Source& source, Clock::duration refresh_interval = std::chrono::milliseconds(20));

    // The current view, rescanned when older than the refresh interval.
    std::shared_ptr<const View> view();

    // nullopt when PATH does not exist now.
    std::optional<Node> resolve(const std::string& path);
    // Names in directory PATH (without "." and ".."); nullopt when PATH is
    // not a directory of the tree.
    std::optional<std::vector<std::string>> list(const std::string& path);

    Source& source() { return source_; }

private:
    Source& source_;
    Clock::duration interval_;
    std::mutex mutex_;
    std::shared_ptr<const View> view_;
    Clock::time_point scanned_;
};

} // namespace blksnapfs
