#include "tree.hpp"
#include "info.hpp"

#include <blksnap/error.hpp>

#include <algorithm>

namespace blksnapfs {

bool View::has_snapshot(const std::string& id) const {
    return std::any_of(snapshots.begin(), snapshots.end(),
                       [&](const blksnap::Uuid& u) { return u.str() == id; });
}

const TakenDevice* View::device(const std::string& name) const {
    for (const auto& d : devices)
        if (d.name == name)
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
        if (!v->snapshots.empty())
            v->devices = source_.taken_devices();
    } catch (const blksnap::Error&) {
        v = std::make_shared<View>(); // the module went away: an empty tree
    }
    view_ = std::move(v);
    scanned_ = now;
    return view_;
}

namespace {

// The device a device or file path names, if it exists in view V.
const TakenDevice* find_device(const View& v, const PathRef& ref) {
    if (ref.under_devices() != v.shared_devices())
        return nullptr;
    if (!ref.under_devices() && !v.has_snapshot(ref.snapshot))
        return nullptr;
    return v.device(ref.device);
}

std::optional<blksnap::Uuid> single_snapshot(const View& v) {
    if (v.snapshots.size() == 1)
        return v.snapshots.front();
    return std::nullopt;
}

} // namespace

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
    case PathRef::Kind::devices:
        if (!v->shared_devices())
            return std::nullopt;
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
        const TakenDevice* dev = find_device(*v, *ref);
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
            node.size = info_text(*dev, single_snapshot(*v)).size();
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
    auto add_devices = [&] {
        for (const auto& d : v->devices)
            names.push_back(d.name);
    };
    switch (node->ref.kind) {
    case PathRef::Kind::root:
        for (const auto& id : v->snapshots)
            names.push_back(id.str());
        if (v->shared_devices())
            names.emplace_back(devices_dir_name);
        break;
    case PathRef::Kind::devices:
        add_devices();
        break;
    case PathRef::Kind::snapshot:
        names.emplace_back(events_name);
        if (!v->shared_devices())
            add_devices();
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
