// The tree shown under the mount point: a view of the kernel's state, read
// again only when it may be stale: the source saw a change (a take, a
// destroy), someone called invalidate() (an event came), or the view is
// older than its time to live. Lookups share the current view; one of them
// rescans when it is stale while the others wait for that scan, not scan
// again. A failed scan is logged and the last good view is kept.
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

    explicit Tree(Source& source, Clock::duration ttl = std::chrono::seconds(1));

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

private:
    bool fresh(std::uint64_t changes, Clock::time_point now) const; // under mutex_
    std::shared_ptr<const View> rescan(std::uint64_t changes);
    void log_changes(const View* before, const View& after) const;

    Source& source_;
    Clock::duration ttl_;
    std::mutex scan_mutex_; // one scan at a time
    std::mutex mutex_;      // the fields below
    std::shared_ptr<const View> view_;
    Clock::time_point scanned_; // when the scan of view_ began
    std::uint64_t changes_ = 0; // the source's changes() then
    bool invalid_ = true;       // invalidate() since
    bool failing_ = false;      // the last scan failed
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
