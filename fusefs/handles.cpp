#include "handles.hpp"

#include <blksnap/error.hpp>

#include <cerrno>

namespace blksnapfs {

HandleTable::~HandleTable() {
    set_.clear_and_dispose([](Handle* h) { delete h; });
}

unsigned& HandleTable::count(Handle::Kind kind) {
    switch (kind) {
    case Handle::Kind::image:
        return images_;
    case Handle::Kind::events:
        return events_;
    default:
        return others_;
    }
}

unsigned HandleTable::limit(Handle::Kind kind) const {
    switch (kind) {
    case Handle::Kind::image:
        return limits_.images;
    case Handle::Kind::events:
        return limits_.events;
    default:
        return limits_.others;
    }
}

std::uint64_t HandleTable::add(std::unique_ptr<Handle> handle) {
    std::lock_guard lock(mutex_);
    unsigned& n = count(handle->kind);
    if (n >= limit(handle->kind))
        throw blksnap::Error(EMFILE, "open", "too many open files of this kind");
    ++n;
    handle->id = next_id_++;
    const std::uint64_t id = handle->id;
    set_.insert(*handle.release());
    return id;
}

Handle* HandleTable::find(std::uint64_t id) {
    std::lock_guard lock(mutex_);
    auto it = set_.find(id);
    return it == set_.end() ? nullptr : &*it;
}

void HandleTable::remove(std::uint64_t id) {
    std::unique_ptr<Handle> owned;
    {
        std::lock_guard lock(mutex_);
        auto it = set_.find(id);
        if (it == set_.end())
            return;
        --count(it->kind);
        owned.reset(&*it);
        set_.erase(it);
    }
    // Destroyed unlocked: an image stream waits for its reads in flight.
}

bool HandleTable::with_path(const std::string& path, const std::function<void(Handle&)>& fn) {
    std::lock_guard lock(mutex_);
    for (auto& h : set_) {
        if (h.path == path) {
            fn(h);
            return true;
        }
    }
    return false;
}

std::size_t HandleTable::size() {
    std::lock_guard lock(mutex_);
    return set_.size();
}

} // namespace blksnapfs
