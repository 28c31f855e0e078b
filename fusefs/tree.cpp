#include "tree.hpp"
#include "info.hpp"

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

Tree::Tree(Source& source, Clock::duration refresh_interval)
    : source_(source), interval_(refresh_interval) {}

std::shared_ptr<const View> Tree::view() {
    std::lock_guard lock(mutex_);
    const auto now = Clock::now();
    if (view_ && now - scanned_ < interval_)
        return view_;
    auto v = std::make_shared<View>();
    try {
        v->snapshots = source_.snapshots();
        std::sort(v->snapshots.begin(), v->snapshots.end());
        for (const auto& id : v->snapshots) {
            auto devs = source_.taken_devices(id);
            std::move(devs.begin(), devs.end(), std::back_inserter(v->devices));
        }
    } catch (const blksnap::Error&) {
        v = std::make_shared<View>(); // the module went away: an empty tree
    }
    view_ = std::move(v);
    scanned_ = now;
    return view_;
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
