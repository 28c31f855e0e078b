#include "tree.hpp"
#include "info.hpp"
#include "log.hpp"

#include <blksnap/error.hpp>

#include <algorithm>
#include <iterator>

namespace blksnapfs {

bool View::has_snapshot(const std::string& id) const {
    return std::any_of(snapshots.begin(), snapshots.end(),
                       [&](const blksnap::Uuid& u) { return u.str() == id; });
}

const TakenDevice* View::device(const std::string& id, const std::string& name) const {
    for (const auto& d : devices)
        if (d.name == name && d.snapshot.str() == id)
            return &d;
    return nullptr;
}

Tree::Tree(Source& source, Clock::duration ttl, Clock::duration settle)
    : source_(source), ttl_(ttl), settle_(settle) {}

void Tree::note(std::uint64_t changes, Clock::time_point now) {
    if (changes != changes_) {
        changes_ = changes;
        changed_at_ = now;
    }
}

bool Tree::fresh(Clock::time_point now) const {
    return view_ && !invalid_ && scanned_changes_ == changes_ && now - scanned_ < ttl_ &&
           scanned_ - changed_at_ >= settle_;
}

std::shared_ptr<const View> Tree::view() {
    const auto entered = Clock::now();
    const std::uint64_t changes = source_.changes();
    {
        std::lock_guard lock(mutex_);
        note(changes, entered);
        if (fresh(entered))
            return view_;
    }
    return rescan(entered);
}

void Tree::invalidate() {
    std::lock_guard lock(mutex_);
    invalid_ = true;
}

std::shared_ptr<const View> Tree::rescan(Clock::time_point entered) {
    std::lock_guard scan(scan_mutex_);
    const auto began = Clock::now();
    std::shared_ptr<const View> before;
    std::uint64_t changes = 0;
    {
        std::lock_guard lock(mutex_);
        // Another lookup rescanned while this one waited: a scan that
        // began after this lookup did sees all it must.
        if (view_ && !invalid_ && scanned_ >= entered)
            return view_;
        if (fresh(began))
            return view_;
        before = view_;
        invalid_ = false; // an invalidate() from now on asks for another scan
    }
    // What changes after this point is for the next scan.
    changes = source_.changes();
    auto v = std::make_shared<View>();
    std::string error;
    try {
        v->snapshots = source_.snapshots();
        std::sort(v->snapshots.begin(), v->snapshots.end());
        for (const auto& id : v->snapshots) {
            auto devs = source_.taken_devices(id);
            std::move(devs.begin(), devs.end(), std::back_inserter(v->devices));
        }
    } catch (const std::exception& e) {
        error = e.what();
    }
    std::lock_guard lock(mutex_);
    note(changes, began);
    scanned_ = began;
    scanned_changes_ = changes;
    if (!error.empty()) {
        // Keep what was seen last (or nothing, at the start); the next
        // try comes after the time to live, so a lasting failure is not a
        // scan per lookup, and it is logged once.
        if (!failing_)
            log(LOG_ERR, "cannot read the snapshots from the kernel (showing the last ones "
                         "seen): " +
                             error);
        failing_ = true;
        if (!view_)
            view_ = std::make_shared<View>();
        return view_;
    }
    if (failing_)
        log(LOG_NOTICE, "reading the snapshots from the kernel works again");
    failing_ = false;
    log_changes(before.get(), *v);
    view_ = std::move(v);
    return view_;
}

void Tree::log_changes(const View* before, const View& after) const {
    static const View none;
    const View& old = before ? *before : none;
    for (const auto& id : old.snapshots)
        if (!after.has_snapshot(id.str()))
            log(LOG_INFO, "snapshot " + id.str() + " vanished");
    for (const auto& id : after.snapshots)
        if (!old.has_snapshot(id.str()))
            log(LOG_INFO, "snapshot " + id.str() + " appeared");
    for (const auto& d : after.devices) {
        const TakenDevice* was = old.device(d.snapshot.str(), d.name);
        if (!was)
            log(LOG_INFO,
                "snapshot " + d.snapshot.str() + ": " + d.name + " shown (" + d.image_path() + ")");
        if (d.error_code != 0 && (!was || was->error_code == 0))
            log(LOG_WARNING, "snapshot " + d.snapshot.str() + ": " + d.name +
                                 " is corrupted (error " + std::to_string(d.error_code) +
                                 "): its image.raw reads fail with EIO");
    }
}

TreeWatcher::TreeWatcher(Tree& tree) : tree_(tree) {
    tree_.view(); // the snapshots there are at the start, logged
    thread_ = std::thread([this] {
        const auto settle_ms = static_cast<int>(
            std::chrono::duration_cast<std::chrono::milliseconds>(tree_.settle()).count());
        int timeout = -1;
        for (;;) {
            const auto got = tree_.source().wait_change(timeout);
            if (stop_ || got == Source::Wait::woken)
                return;
            tree_.view();
            // Once the change has settled, look again (a take ends a
            // little after its image is told).
            timeout = got == Source::Wait::change ? settle_ms + 10 : -1;
        }
    });
}

TreeWatcher::~TreeWatcher() {
    stop_ = true;
    tree_.source().wake();
    thread_.join();
}

std::optional<Node> Tree::resolve(const std::string& path) {
    const auto ref = parse_path(path);
    if (!ref)
        return std::nullopt;
    const auto v = view();
    Node node;
    node.ref = *ref;
    switch (ref->kind) {
    case PathRef::Kind::root:
        node.directory = true;
        return node;
    case PathRef::Kind::snapshot:
    case PathRef::Kind::events:
        if (!v->has_snapshot(ref->snapshot))
            return std::nullopt;
        node.directory = ref->kind == PathRef::Kind::snapshot;
        node.snapshot = blksnap::Uuid::parse(ref->snapshot);
        return node;
    case PathRef::Kind::device:
    case PathRef::Kind::file: {
        const TakenDevice* dev = v->device(ref->snapshot, ref->device);
        if (!dev)
            return std::nullopt;
        node.device = *dev;
        if (ref->kind == PathRef::Kind::device) {
            node.directory = true;
            return node;
        }
        switch (ref->file) {
        case FileKind::image:
            node.size = dev->cbt.device_capacity;
            break;
        case FileKind::cbt_map:
            node.size = dev->cbt.block_count;
            break;
        case FileKind::info:
            node.size = info_text(*dev).size();
            break;
        }
        return node;
    }
    }
    return std::nullopt;
}

std::optional<std::vector<std::string>> Tree::list(const std::string& path) {
    const auto node = resolve(path);
    if (!node || !node->directory)
        return std::nullopt;
    const auto v = view();
    std::vector<std::string> names;
    switch (node->ref.kind) {
    case PathRef::Kind::root:
        for (const auto& id : v->snapshots)
            names.push_back(id.str());
        break;
    case PathRef::Kind::snapshot:
        names.emplace_back(events_name);
        for (const auto& d : v->devices)
            if (d.snapshot == *node->snapshot)
                names.push_back(d.name);
        break;
    case PathRef::Kind::device:
        for (auto kind : {FileKind::image, FileKind::cbt_map, FileKind::info})
            names.emplace_back(file_name(kind));
        break;
    default:
        return std::nullopt;
    }
    return names;
}

} // namespace blksnapfs
