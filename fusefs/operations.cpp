// FUSE operations (high-level API): each maps a path to the Tree and an open
// file to its Handle.
#include "daemon.hpp"
#include "events_file.hpp"
#include "info.hpp"
#include "log.hpp"
#include "readahead.hpp"

#include <blksnap/error.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <memory>
#include <sys/stat.h>

namespace blksnapfs {

namespace {

Daemon& daemon() {
    return *static_cast<Daemon*>(fuse_get_context()->private_data);
}

// Runs FN, turning exceptions into -errno; an error that reaches the
// caller as EIO is logged with what caused it.
template <typename Fn> int guarded(const char* op, const char* path, Fn&& fn) {
    try {
        return fn();
    } catch (const blksnap::Error& e) {
        if (e.code() == EIO)
            log(LOG_ERR, std::string(op) + " " + (path ? path : "?") + ": " + e.what());
        return -e.code();
    } catch (const std::bad_alloc&) {
        return -ENOMEM;
    } catch (const std::exception& e) {
        log(LOG_ERR, std::string(op) + " " + (path ? path : "?") + " failed, EIO: " + e.what());
        return -EIO;
    }
}

Handle::Kind handle_kind(const Node& node) {
    if (node.ref.kind == PathRef::Kind::events)
        return Handle::Kind::events;
    switch (node.ref.file) {
    case FileKind::image:
        return Handle::Kind::image;
    case FileKind::cbt_map:
        return Handle::Kind::cbt_map;
    case FileKind::info:
        return Handle::Kind::info;
    }
    return Handle::Kind::info;
}

// Who may do what, checked by the kernel (default_permissions): the whole
// disk in image.raw, which blocks changed in cbt.map, and events (a read
// consumes them: another reader would take the corruption event from the
// backup agent) are root's, and with --group that group's too (write:
// --writable, image.raw only); info says nothing of the data and is
// everybody's.
mode_t file_mode(const Daemon& d, const Node& node) {
    if (node.ref.kind == PathRef::Kind::file && node.ref.file == FileKind::info)
        return 0444;
    mode_t mode = 0400;
    if (node.ref.file == FileKind::image && d.options.writable)
        mode |= 0200;
    if (!d.options.group.empty())
        mode |= (mode & 0700) >> 3;
    return mode;
}

void fill_stat(const Daemon& d, const Node& node, struct stat* st) {
    std::memset(st, 0, sizeof(*st));
    st->st_atime = st->st_mtime = st->st_ctime = d.started;
    if (node.directory) {
        st->st_mode = S_IFDIR | 0555;
        st->st_nlink = 2;
        return;
    }
    st->st_mode = S_IFREG | file_mode(d, node);
    st->st_gid = d.gid;
    st->st_nlink = 1;
    st->st_size = static_cast<off_t>(node.size);
    st->st_blocks = static_cast<blkcnt_t>((node.size + 511) / 512);
    if (node.ref.kind == PathRef::Kind::file && node.ref.file == FileKind::image)
        st->st_blksize = 1 << 20; // cp and friends read in pieces this big
}

void* op_init(fuse_conn_info* conn, fuse_config* cfg) {
    // Snapshots come and go: no caching of names or attributes.
    cfg->entry_timeout = 0;
    cfg->negative_timeout = 0;
    cfg->attr_timeout = 0;
    cfg->kernel_cache = 0;
    conn->max_readahead = UINT32_MAX; // what the kernel offers
    return fuse_get_context()->private_data;
}

// What an open file was at open: fstat keeps working once its snapshot is gone.
std::optional<Node> node_of(Handle& h) {
    Node node;
    node.device = h.device;
    node.snapshot = h.snapshot;
    switch (h.kind) {
    case Handle::Kind::image:
        node.ref.kind = PathRef::Kind::file;
        node.ref.file = FileKind::image;
        node.size = h.image->size();
        break;
    case Handle::Kind::cbt_map:
        node.ref.kind = PathRef::Kind::file;
        node.ref.file = FileKind::cbt_map;
        node.size = h.device->cbt.block_count;
        break;
    case Handle::Kind::info:
        node.ref.kind = PathRef::Kind::file;
        node.ref.file = FileKind::info;
        node.size = h.text.size();
        break;
    case Handle::Kind::events:
        node.ref.kind = PathRef::Kind::events;
        break;
    }
    return node;
}

int op_getattr(const char* path, struct stat* st, fuse_file_info* fi) {
    return guarded("getattr", path, [&] {
        auto& d = daemon();
        Handle* h = fi ? d.handles.find(fi->fh) : nullptr;
        auto node = h ? node_of(*h) : d.tree.resolve(path);
        if (!node) // gone from the tree, but still open: fstat works
            d.handles.with_path(path, [&](Handle& open) { node = node_of(open); });
        if (!node)
            return -ENOENT;
        fill_stat(d, *node, st);
        return 0;
    });
}

int op_readdir(const char* path, void* buf, fuse_fill_dir_t filler, off_t, fuse_file_info*,
               fuse_readdir_flags) {
    return guarded("readdir", path, [&] {
        const auto names = daemon().tree.list(path);
        if (!names)
            return -ENOENT;
        filler(buf, ".", nullptr, 0, fuse_fill_dir_flags{});
        filler(buf, "..", nullptr, 0, fuse_fill_dir_flags{});
        for (const auto& n : *names)
            filler(buf, n.c_str(), nullptr, 0, fuse_fill_dir_flags{});
        return 0;
    });
}

int op_open(const char* path, fuse_file_info* fi) {
    return guarded("open", path, [&] {
        auto& d = daemon();
        const auto node = d.tree.resolve(path);
        if (!node)
            return -ENOENT;
        if (node->directory)
            return -EISDIR;
        auto h = std::make_unique<Handle>();
        h->kind = handle_kind(*node);
        h->path = path;
        const bool wants_write = (fi->flags & O_ACCMODE) != O_RDONLY;
        if (wants_write && !(h->kind == Handle::Kind::image && d.options.writable))
            return -EROFS;
        h->device = node->device;
        h->snapshot = node->snapshot;
        switch (h->kind) {
        case Handle::Kind::image:
            std::call_once(d.readahead_set, [&] {
                if (d.options.page_cache && d.options.readahead_kb)
                    set_readahead(d.options.mountpoint, d.options.readahead_kb);
            });
            h->image = std::make_unique<ImageFile>(
                node->device->image_path(),
                ImageFileOptions{.writable = wants_write && d.options.writable});
            // Straight to the daemon, which reads large aligned chunks ahead:
            // no second copy of the image in the page cache, no per-page work.
            fi->direct_io = !d.options.page_cache;
            break;
        case Handle::Kind::info:
            h->text = info_text(*node->device);
            fi->direct_io = 1; // the content is what was read at open, whatever its size
            break;
        case Handle::Kind::events:
            fi->direct_io = 1;
            fi->nonseekable = 1;
            break;
        case Handle::Kind::cbt_map:
            // Every read reaches the daemon, which fails it once the
            // snapshot is gone (no page kept from before).
            fi->direct_io = 1;
            break;
        }
        // Counted against the caller (root's opens are not: a user at
        // the limits leaves root's backup agent its files).
        fi->fh = d.handles.add(std::move(h), fuse_get_context()->uid);
        return 0;
    });
}

std::string context_of(const Handle& h) {
    return blksnap::context("read", h.path);
}

int read_cbt_map(Handle& h, char* buf, size_t size, off_t offset) {
    const std::uint64_t count = h.device->cbt.block_count;
    if (static_cast<std::uint64_t>(offset) >= count)
        return 0;
    const auto want = static_cast<std::uint32_t>(std::min<std::uint64_t>(size, count - offset));
    std::uint32_t done = 0;
    auto& source = daemon().tree.source();
    while (done < want) {
        const std::uint32_t got = source.read_cbt_map(
            *h.device, static_cast<std::uint32_t>(offset) + done,
            std::span(reinterpret_cast<std::uint8_t*>(buf) + done, want - done));
        if (got == 0)
            break;
        done += got;
    }
    // The module reads the snapshot's map (frozen at its take) only while
    // the snapshot lives; once it is destroyed the device's live map, later
    // another snapshot's, would be read. A snapshot listed after the read
    // was there during it (it leaves the list before it lets go of the map,
    // and an identifier is never reused).
    const auto ids = source.snapshots();
    if (std::find(ids.begin(), ids.end(), h.device->snapshot) == ids.end())
        throw blksnap::Error(EIO, context_of(h),
                             "snapshot " + h.device->snapshot.str() +
                                 " was destroyed: its change map is gone");
    return static_cast<int>(done);
}

int read_events(Handle& h, char* buf, size_t size) {
    std::lock_guard lock(h.mutex);
    if (h.text.empty() && !h.ended) {
        auto* session = fuse_get_session(fuse_get_context()->fuse);
        auto line = next_event_line(daemon().tree.source(), *h.snapshot, [session] {
            return fuse_interrupted() != 0 || fuse_session_exited(session) != 0;
        });
        // The event (a corruption) or the end (a destroy) changed what the
        // tree shows.
        daemon().tree.invalidate();
        if (line) {
            log(LOG_WARNING,
                "snapshot " + h.snapshot->str() + ": event " + line->substr(0, line->size() - 1));
            h.text = std::move(*line);
        } else {
            h.ended = true;
        }
    }
    const size_t n = std::min(size, h.text.size());
    std::memcpy(buf, h.text.data(), n);
    h.text.erase(0, n);
    return static_cast<int>(n);
}

// Bytes of H read into BUF (SIZE bytes) from OFFSET, or -errno.
long read_copy(Handle& h, char* buf, size_t size, off_t offset) {
    switch (h.kind) {
    case Handle::Kind::image:
        return h.image->read(std::span(reinterpret_cast<std::byte*>(buf), size), offset);
    case Handle::Kind::cbt_map:
        return read_cbt_map(h, buf, size, offset);
    case Handle::Kind::info: {
        if (static_cast<std::uint64_t>(offset) >= h.text.size())
            return 0;
        const size_t n = std::min(size, h.text.size() - offset);
        std::memcpy(buf, h.text.data() + offset, n);
        return static_cast<long>(n);
    }
    case Handle::Kind::events:
        return read_events(h, buf, size);
    }
    return -EIO;
}

struct FreeBufvec {
    void operator()(fuse_bufvec* v) const noexcept { std::free(v); }
};

// Reads reply from a buffer libfuse frees: a whole chunk of image.raw is
// the chunk's own buffer, read from the image device (no copy here; the
// kernel copies it once, into the reader's pages). Other reads are copied
// into a new buffer.
int op_read_buf(const char* path, fuse_bufvec** bufp, size_t size, off_t offset,
                fuse_file_info* fi) {
    return guarded("read", path, [&] {
        Handle* h = daemon().handles.find(fi->fh);
        if (!h)
            return -EBADF;
        std::unique_ptr<fuse_bufvec, FreeBufvec> vec(
            static_cast<fuse_bufvec*>(std::malloc(sizeof(fuse_bufvec))));
        if (!vec)
            return -ENOMEM;
        ImageFile::Buffer data;
        long n = 0;
        if (h->kind == Handle::Kind::image)
            n = h->image->take_block(offset, size, data);
        if (!data && n >= 0) {
            data.reset(static_cast<std::byte*>(std::malloc(std::max<size_t>(size, 1))));
            if (!data)
                return -ENOMEM;
            n = read_copy(*h, reinterpret_cast<char*>(data.get()), size, offset);
        }
        if (n < 0)
            return static_cast<int>(n);
        *vec = fuse_bufvec{};
        vec->count = 1;
        vec->buf[0].size = static_cast<size_t>(n);
        vec->buf[0].mem = data.release();
        vec->buf[0].fd = -1;
        *bufp = vec.release();
        return 0;
    });
}

int op_write(const char* path, const char* buf, size_t size, off_t offset, fuse_file_info* fi) {
    return guarded("write", path, [&] {
        Handle* h = daemon().handles.find(fi->fh);
        if (!h || h->kind != Handle::Kind::image)
            return -EBADF;
        return static_cast<int>(
            h->image->write(std::span(reinterpret_cast<const std::byte*>(buf), size), offset));
    });
}

int op_truncate(const char* path, off_t size, fuse_file_info*) {
    return guarded("truncate", path, [&] {
        auto& d = daemon();
        const auto node = d.tree.resolve(path ? path : "");
        if (node && !node->directory && static_cast<std::uint64_t>(size) == node->size &&
            node->ref.file == FileKind::image && d.options.writable)
            return 0; // `dd conv=notrunc` and the like: nothing to do
        return d.options.writable ? -EINVAL : -EROFS;
    });
}

int op_fsync(const char* path, int, fuse_file_info* fi) {
    return guarded("fsync", path, [&] {
        Handle* h = daemon().handles.find(fi->fh);
        return h && h->image ? h->image->sync() : 0;
    });
}

int op_flush(const char* path, fuse_file_info* fi) {
    return op_fsync(path, 1, fi);
}

int op_release(const char*, fuse_file_info* fi) {
    daemon().handles.remove(fi->fh);
    return 0;
}

int op_statfs(const char*, struct statvfs* st) {
    std::memset(st, 0, sizeof(*st));
    st->f_bsize = 4096;
    st->f_frsize = 4096;
    st->f_namemax = 255;
    return 0;
}

fuse_operations make_operations() {
    fuse_operations ops{};
    ops.init = op_init;
    ops.getattr = op_getattr;
    ops.readdir = op_readdir;
    ops.open = op_open;
    ops.read_buf = op_read_buf;
    ops.write = op_write;
    ops.truncate = op_truncate;
    ops.flush = op_flush;
    ops.fsync = op_fsync;
    ops.release = op_release;
    ops.statfs = op_statfs;
    return ops;
}

} // namespace

const fuse_operations& operations() {
    static const fuse_operations ops = make_operations();
    return ops;
}

} // namespace blksnapfs
