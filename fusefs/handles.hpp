// The table of open files: each FUSE file handle is an entry, found by its
// number. Bounded per user: open() fails with EMFILE past a user's limits,
// so what each user other than root makes the daemon hold stays bounded
// whatever it does, and no user takes anything from another or from root
// (the backup agent: its opens are not counted).
#pragma once

#include "image_file.hpp"
#include "source.hpp"

#include <blksnap/uuid.hpp>

#include <boost/intrusive/set.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <sys/types.h>
#include <unordered_map>

namespace blksnapfs {

struct Handle : boost::intrusive::set_base_hook<> {
    enum class Kind { image, cbt_map, info, events };
    Kind kind = Kind::info;
    std::uint64_t id = 0;
    uid_t owner = 0;                       // who opened it (counted against)
    std::string path;                      // where it was opened
    std::optional<TakenDevice> device;     // image, cbt_map, info
    std::optional<blksnap::Uuid> snapshot; // events
    std::unique_ptr<ImageFile> image;      // image
    std::string text;                      // info: the content; events: unread text
    bool ended = false;                    // events: the snapshot is gone
    std::mutex mutex;                      // events: one reader at a time

    struct Key {
        using type = std::uint64_t;
        type operator()(const Handle& h) const { return h.id; }
    };
};

// What each user other than root may have open at once; root's opens are
// not counted.
struct HandleLimits {
    unsigned images = 64;   // open image.raw files (each holds its read buffers)
    unsigned events = 16;   // events readers (each may hold a thread while waiting)
    unsigned others = 1024; // cbt.map and info
    // events files of all users but root together: a waiting read holds one
    // of the daemon's request threads (32), so the others' readers leave
    // root at least 16.
    unsigned events_all = 16;
};

class HandleTable {
public:
    explicit HandleTable(HandleLimits limits = {}) : limits_(limits) {}
    ~HandleTable();
    HandleTable(const HandleTable&) = delete;
    HandleTable& operator=(const HandleTable&) = delete;

    // Takes HANDLE, opened by user OWNER, and returns its number;
    // Error(EMFILE) when OWNER (not root) is at its limit for the kind.
    std::uint64_t add(std::unique_ptr<Handle> handle, uid_t owner);
    // The handle numbered ID, or nullptr. Valid until remove(ID): FUSE
    // sends release only once the file's other operations have ended.
    Handle* find(std::uint64_t id);
    void remove(std::uint64_t id);
    // Calls FN with an open handle of PATH, if there is one; returns whether.
    bool with_path(const std::string& path, const std::function<void(Handle&)>& fn);
    std::size_t size();
    // How many handles of KIND user OWNER has open (0 for root: not counted).
    unsigned count(uid_t owner, Handle::Kind kind);

private:
    using Set = boost::intrusive::set<Handle, boost::intrusive::key_of_value<Handle::Key>>;
    struct Counts {
        unsigned images = 0, events = 0, others = 0;
        unsigned& of(Handle::Kind kind);
        bool empty() const { return images == 0 && events == 0 && others == 0; }
    };
    unsigned limit(Handle::Kind kind) const;

    HandleLimits limits_;
    std::mutex mutex_;
    Set set_;
    std::uint64_t next_id_ = 1;
    // Users other than root with something open; an entry goes with their
    // last handle, so the map is no bigger than the table.
    std::unordered_map<uid_t, Counts> users_;
    unsigned events_all_ = 0; // events handles in users_
};

} // namespace blksnapfs
