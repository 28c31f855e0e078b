// The tree shown under the mount point: a view of the kernel's state, read
// again only when it may be stale: the source saw a change (a take, a
// destroy), someone called invalidate() (an event came), or the view is
// older than its time to live. A take is told (by its image's uevent) a
// little before it ends: views read less than SETTLE after a change are
// stale too. Lookups share the current view; when it is stale one of them
// rescans and the others wait for that scan rather than scan again. A
// failed scan is logged and the last good view is kept.
#pragma once

#include "path.hpp"
#include "source.hpp"

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
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

    explicit Tree(Source& source, Clock::duration ttl = std::chrono::seconds(1),
                  Clock::duration settle = std::chrono::milliseconds(500));

    // The current view, rescanned first when stale.
    std::shared_ptr<const View> view();
    // The next view() rescans.
    void invalidate();

    // nullopt when PATH does not exist now.
    std::optional<Node> resolve(const std::string& path);
    // Names in directory PATH (without "." and ".."); nullopt when PATH is
    // not a directory of the tree.
    std::optional<std::vector<std::string>> list(const std::string& path);

    Source& source() { return source_; }
    Clock::duration settle() const { return settle_; }

private:
    // Under mutex_: notes the source's CHANGES (seen at NOW); whether the
    // view may be used at NOW.
    void note(std::uint64_t changes, Clock::time_point now);
    bool fresh(Clock::time_point now) const;
    std::shared_ptr<const View> rescan(Clock::time_point entered);
    void log_changes(const View* before, const View& after) const;

    Source& source_;
    Clock::duration ttl_;
    Clock::duration settle_;
    std::mutex scan_mutex_; // one scan at a time
    std::mutex mutex_;      // the fields below
    std::shared_ptr<const View> view_;
    Clock::time_point scanned_;         // when the scan of view_ began
    std::uint64_t scanned_changes_ = 0; // the source's changes() then
    std::uint64_t changes_ = 0;         // the source's changes() last seen
    Clock::time_point changed_at_;      // when they were seen to grow last
    bool invalid_ = true;               // invalidate() since the scan began
    bool failing_ = false;              // the last scan failed
};

// Refreshes a tree on its own thread whenever its source tells of a change,
// so that snapshots appearing and vanishing are logged as they do; ends
// when destroyed (or at once, when the source cannot tell).
class TreeWatcher {
public:
    explicit TreeWatcher(Tree& tree);
    ~TreeWatcher();
    TreeWatcher(const TreeWatcher&) = delete;
    TreeWatcher& operator=(const TreeWatcher&) = delete;

private:
    Tree& tree_;
    std::atomic<bool> stop_{false};
    std::thread thread_;
};

} // namespace blksnapfs
