// The table of open files: each FUSE file handle is an entry, found by its
// number. Bounded: open() fails with EMFILE past the limits, so the memory
// the daemon uses stays bounded whatever readers do.
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

namespace blksnapfs {

struct Handle : boost::intrusive::set_base_hook<> {
    enum class Kind { image, cbt_map, info, events };
    Kind kind = Kind::info;
    std::uint64_t id = 0;
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

struct HandleLimits {
    unsigned images = 64;   // open image.raw files (each holds its read buffers)
    unsigned events = 16;   // events readers (each may hold a thread while waiting)
    unsigned others = 1024; // cbt.map and info
};

class HandleTable {
public:
    explicit HandleTable(HandleLimits limits = {}) : limits_(limits) {}
    ~HandleTable();
    HandleTable(const HandleTable&) = delete;
    HandleTable& operator=(const HandleTable&) = delete;

    // Takes HANDLE and returns its number; Error(EMFILE) over the limit.
    std::uint64_t add(std::unique_ptr<Handle> handle);
    // The handle numbered ID, or nullptr. Valid until remove(ID): FUSE
    // sends release only once the file's other operations have ended.
    Handle* find(std::uint64_t id);
    void remove(std::uint64_t id);
    // Calls FN with an open handle of PATH, if there is one; returns whether.
    bool with_path(const std::string& path, const std::function<void(Handle&)>& fn);
    std::size_t size();

private:
    using Set = boost::intrusive::set<Handle, boost::intrusive::key_of_value<Handle::Key>>;
    unsigned& count(Handle::Kind kind);
    unsigned limit(Handle::Kind kind) const;

    HandleLimits limits_;
    std::mutex mutex_;
    Set set_;
    std::uint64_t next_id_ = 1;
    unsigned images_ = 0, events_ = 0, others_ = 0;
};

} // namespace blksnapfs
