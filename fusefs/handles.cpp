#include "handles.hpp"

#include <blksnap/error.hpp>

#include <cerrno>
#include <string>

namespace blksnapfs {

HandleTable::~HandleTable() {
    set_.clear_and_dispose([](Handle* h) { delete h; });
}

unsigned& HandleTable::Counts::of(Handle::Kind kind) {
    switch (kind) {
    case Handle::Kind::image:
        return images;
    case Handle::Kind::events:
        return events;
    default:
        return others;
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

std::uint64_t HandleTable::add(std::unique_ptr<Handle> handle, uid_t owner) {
    std::lock_guard lock(mutex_);
    handle->owner = owner;
    if (owner != 0) {
        const Handle::Kind kind = handle->kind;
        auto found = users_.find(owner);
        const unsigned n = found == users_.end() ? 0 : found->second.of(kind);
        if (n >= limit(kind))
            throw blksnap::Error(EMFILE, "open",
                                 "user " + std::to_string(owner) +
                                     " has too many open files of this kind");
        if (kind == Handle::Kind::events && events_all_ >= limits_.events_all)
            throw blksnap::Error(EMFILE, "open", "too many events files open by users but root");
        ++users_[owner].of(kind);
        if (kind == Handle::Kind::events)
            ++events_all_;
    }
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
        if (it->owner != 0) {
            auto user = users_.find(it->owner);
            --user->second.of(it->kind);
            if (user->second.empty())
                users_.erase(user);
            if (it->kind == Handle::Kind::events)
                --events_all_;
        }
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

unsigned HandleTable::count(uid_t owner, Handle::Kind kind) {
    std::lock_guard lock(mutex_);
    auto found = users_.find(owner);
    return found == users_.end() ? 0 : found->second.of(kind);
}

} // namespace blksnapfs
