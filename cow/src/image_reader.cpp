// The image read engine (see image_reader.hpp). Its state is a ring and a
// fixed set of slots, one block buffer each: a slot is empty, in flight,
// ready (holding a block) or failed. read() streams through the slots;
// read_at() keeps them as a small cache, least recently used reused first.
// SQEs are queued and submitted together, and completions reaped in batches.
#include <blksnap/align.hpp>
#include <blksnap/device.hpp>
#include <blksnap/error.hpp>
#include <blksnap/image_reader.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fcntl.h>
#include <liburing.h>
#include <linux/fs.h>
#include <mutex>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <vector>

namespace blksnap {

void ImageReader::FreeDeleter::operator()(std::byte* p) const noexcept {
    std::free(p);
}

namespace {

ImageReader::Buffer aligned_buffer(std::size_t size) {
    size = align_up(size, ImageReader::buffer_alignment);
    auto* p = static_cast<std::byte*>(std::aligned_alloc(ImageReader::buffer_alignment, size));
    if (!p)
        throw Error(ENOMEM, "image read buffer");
    return ImageReader::Buffer(p);
}

std::uint32_t logical_block_size(int fd) {
    struct stat st;
    int lbs = 0;
    if (::fstat(fd, &st) == 0 && S_ISBLK(st.st_mode) && ::ioctl(fd, BLKSSZGET, &lbs) == 0 &&
        lbs > 0)
        return static_cast<std::uint32_t>(lbs);
    return ImageReader::direct_alignment;
}

} // namespace

struct ImageReader::Engine {
    struct Slot {
        enum class State { empty, in_flight, ready, failed };
        ImageReader::Buffer buffer;
        State state = State::empty;
        std::uint64_t offset = 0; // of the block in the source
        std::uint32_t length = 0; // bytes asked for
        std::uint32_t done = 0;   // bytes arrived so far
        int error = 0;            // errno when failed
        bool pinned = false;      // needed by the call in progress: not to be reused
        std::uint64_t used = 0;   // when last used, for least-recently-used reuse
    };

    std::string path;
    ReadOptions options;
    UniqueFd fd;
    std::uint64_t size = 0;
    std::uint32_t alignment = 1;
    io_uring ring{};
    bool ring_ready = false;
    std::vector<Slot> slots; // never resized: SQEs point at its elements
    unsigned in_flight = 0;
    unsigned queued = 0;             // SQEs not submitted yet
    std::uint64_t tick = 0;          // for Slot::used
    std::uint64_t next_expected = 0; // where a sequential reader of read_at() reads next
    std::mutex mutex;

    Engine(const std::string& p, ReadOptions o)
        : path(p), options(o), fd(open_fd(p, O_RDONLY | (o.direct ? O_DIRECT : 0))),
          size(size_of(fd.get(), p)) {
        const std::string ctx = context("read", path);
        if (options.block_size == 0 || options.queue_depth == 0)
            throw Error(EINVAL, ctx, "block size and queue depth must be positive");
        if (options.direct) {
            alignment = logical_block_size(fd.get());
            if (options.block_size % alignment != 0)
                throw Error(EINVAL, ctx,
                            "block size must be a multiple of " + std::to_string(alignment) +
                                " with O_DIRECT");
        }
        if (int ret = io_uring_queue_init(options.queue_depth, &ring, 0); ret < 0)
            throw Error(-ret, "io_uring_queue_init");
        ring_ready = true;
        slots.resize(options.queue_depth);
    }

    ~Engine() {
        // The kernel may still write into the buffers of reads in flight.
        try {
            while (in_flight > 0)
                reap(true);
        } catch (const Error&) {
        }
        if (ring_ready)
            io_uring_queue_exit(&ring);
    }
    Engine(const Engine&) = delete;
    Engine& operator=(const Engine&) = delete;

    std::string where(std::uint64_t offset) const {
        return context("read", path) + " at offset " + std::to_string(offset);
    }

    // --- the ring -------------------------------------------------------

    void queue_tail(Slot& s) {
        io_uring_sqe* sqe = io_uring_get_sqe(&ring);
        if (!sqe) { // every slot has at most one SQE: flush and retry
            submit();
            sqe = io_uring_get_sqe(&ring);
            if (!sqe)
                throw Error(EBUSY, where(s.offset), "io_uring submission queue full");
        }
        io_uring_prep_read(sqe, fd.get(), s.buffer.get() + s.done, s.length - s.done,
                           s.offset + s.done);
        io_uring_sqe_set_data(sqe, &s);
        s.state = Slot::State::in_flight;
        ++in_flight;
        ++queued;
    }

    void queue(Slot& s, std::uint64_t offset, std::uint32_t length) {
        if (!s.buffer)
            s.buffer = aligned_buffer(options.block_size);
        s.offset = offset;
        s.length = length;
        s.done = 0;
        s.error = 0;
        queue_tail(s);
    }

    void submit() {
        if (queued == 0)
            return;
        int ret = io_uring_submit(&ring);
        if (ret < 0)
            throw Error(-ret, context("read", path), "io_uring_submit failed");
        queued = 0;
    }

    void complete(Slot& s, int res) {
        --in_flight;
        if (res < 0) {
            s.state = Slot::State::failed;
            s.error = -res;
            return;
        }
        s.done += static_cast<std::uint32_t>(res);
        // A file may end inside its last aligned block: that is its end.
        const bool at_end = s.offset + s.done >= size;
        if (s.done >= s.length || at_end) {
            s.state = Slot::State::ready;
            return;
        }
        if (res == 0) {
            s.state = Slot::State::failed;
            s.error = EIO; // the source shrank under us
            return;
        }
        queue_tail(s); // a short read: ask for the rest
    }

    // Reaps the completions there are; with WAIT, at least one.
    void reap(bool wait) {
        if (wait) {
            io_uring_cqe* cqe = nullptr;
            int ret;
            do {
                ret = queued ? io_uring_submit_and_wait(&ring, 1) : io_uring_wait_cqe(&ring, &cqe);
            } while (ret == -EINTR);
            if (ret < 0)
                throw Error(-ret, context("read", path), "io_uring wait failed");
            queued = 0;
        }
        io_uring_cqe* cqes[16];
        for (;;) {
            const unsigned n = io_uring_peek_batch_cqe(&ring, cqes, 16);
            if (n == 0)
                break;
            for (unsigned i = 0; i < n; ++i) {
                auto* s = static_cast<Slot*>(io_uring_cqe_get_data(cqes[i]));
                const int res = cqes[i]->res;
                io_uring_cqe_seen(&ring, cqes[i]);
                complete(*s, res);
            }
        }
    }

    // Waits until S is ready; throws its error (and forgets it) when it failed.
    void wait_ready(Slot& s) {
        submit();
        while (s.state == Slot::State::in_flight)
            reap(true);
        if (s.state == Slot::State::failed) {
            s.state = Slot::State::empty; // read again when asked again
            throw Error(s.error, where(s.offset + s.done));
        }
    }

    // --- the slots ------------------------------------------------------

    // The slot of the block at OFFSET of LENGTH bytes: in flight, ready or
    // failed (its read not waited for yet).
    Slot* find(std::uint64_t offset, std::uint32_t length) {
        for (auto& s : slots)
            if (s.state != Slot::State::empty && s.offset == offset && s.length == length)
                return &s;
        return nullptr;
    }

    // The block at OFFSET of LENGTH bytes, there or queued now (a failed
    // one queued again); nullptr when no slot is free for it.
    Slot* obtain(std::uint64_t offset, std::uint32_t length) {
        Slot* s = find(offset, length);
        if (s && s->state == Slot::State::failed)
            queue(*s, offset, length);
        if (!s) {
            s = reusable();
            if (s)
                queue(*s, offset, length);
        }
        return s;
    }

    // A slot that may be reused: not in flight, not pinned; empty or failed
    // first, then the least recently used. With KEEP_FROM, a ready block at
    // or after that offset is kept (read-ahead must not evict what the
    // reader will want next).
    Slot* reusable(std::uint64_t keep_from = UINT64_MAX) {
        Slot* best = nullptr;
        for (auto& s : slots) {
            if (s.pinned || s.state == Slot::State::in_flight)
                continue;
            if (s.state != Slot::State::ready)
                return &s;
            if (s.offset >= keep_from)
                continue;
            if (!best || s.used < best->used)
                best = &s;
        }
        return best;
    }

    struct Unpin {
        std::vector<Slot>& slots;
        ~Unpin() {
            for (auto& s : slots)
                s.pinned = false;
        }
    };

    // --- random access --------------------------------------------------

    BlockRange grid_block(std::uint64_t index) const {
        return block_range(index, options.block_size, size, alignment);
    }

    std::uint64_t grid_blocks() const {
        return (size + options.block_size - 1) / options.block_size;
    }

    // Reads of a sequential reader may arrive a little out of order.
    bool sequential(std::uint64_t offset) const {
        const std::uint64_t bs = options.block_size;
        return offset == 0 || (offset + bs >= next_expected && offset <= next_expected + 2 * bs);
    }

    void note_read(std::uint64_t offset, std::uint64_t length, bool seq) {
        next_expected =
            (offset == 0 || !seq) ? offset + length : std::max(next_expected, offset + length);
    }

    // Queues the blocks after INDEX not yet there, as far as slots allow.
    void read_ahead(std::uint64_t index) {
        const std::uint64_t end = std::min(grid_blocks(), index + options.queue_depth);
        const std::uint64_t keep_from = grid_block(index).offset;
        for (std::uint64_t i = index + 1; i < end; ++i) {
            const BlockRange r = grid_block(i);
            const auto len = static_cast<std::uint32_t>(r.length);
            if (find(r.offset, len))
                continue;
            Slot* s = reusable(keep_from);
            if (!s)
                return;
            queue(*s, r.offset, len);
        }
    }

    // Block INDEX of the grid, ready; pinned until the call ends.
    Slot& ready_block(std::uint64_t index, bool seq) {
        const BlockRange r = grid_block(index);
        const auto len = static_cast<std::uint32_t>(r.length);
        Slot* s = obtain(r.offset, len);
        while (!s) { // every slot is in flight: let one finish
            reap(true);
            s = obtain(r.offset, len);
        }
        s->pinned = true;
        if (seq)
            read_ahead(index);
        wait_ready(*s);
        s->used = ++tick;
        return *s;
    }

    std::size_t read_at(std::span<std::byte> out, std::uint64_t offset) {
        std::lock_guard lock(mutex);
        Unpin unpin{slots};
        const std::uint64_t length = clamp_length(offset, out.size(), size);
        if (length == 0)
            return 0;
        const bool seq = sequential(offset);
        const BlockSpan span = blocks_covering(offset, length, options.block_size);
        std::uint64_t copied = 0;
        for (std::uint64_t i = span.first; i <= span.last; ++i) {
            Slot& s = ready_block(i, seq);
            const std::uint64_t from = std::max(offset, s.offset);
            const std::uint64_t to = std::min(offset + length, s.offset + s.length);
            std::memcpy(out.data() + (from - offset), s.buffer.get() + (from - s.offset),
                        to - from);
            copied += to - from;
            s.pinned = false;
        }
        note_read(offset, length, seq);
        return static_cast<std::size_t>(copied);
    }

    std::size_t take_block(std::uint64_t offset, std::size_t want, Buffer& out) {
        out.reset();
        std::lock_guard lock(mutex);
        Unpin unpin{slots};
        const std::uint64_t length = clamp_length(offset, want, size);
        const std::uint64_t index = offset / options.block_size;
        const BlockRange r = grid_block(index);
        if (length == 0 || offset != r.offset || length != std::min(r.length, size - r.offset))
            return 0;
        const bool seq = sequential(offset);
        Slot& s = ready_block(index, seq);
        out = std::move(s.buffer); // the next read into this slot allocates anew
        s.state = Slot::State::empty;
        s.used = 0; // the first to reuse
        note_read(offset, length, seq);
        return static_cast<std::size_t>(length);
    }

    void invalidate() {
        std::lock_guard lock(mutex);
        submit();
        while (in_flight > 0)
            reap(true);
        for (auto& s : slots)
            s.state = Slot::State::empty;
    }

    // --- streaming ------------------------------------------------------

    // The ranges' blocks in order: range by range, each cut in pieces of
    // at most block_size from its start.
    struct Pieces {
        std::span<const BlockRange> ranges;
        std::uint64_t block_size;
        std::size_t range = 0;    // of the next piece
        std::uint64_t inside = 0; // its offset in that range

        bool done() const { return range == ranges.size(); }
        BlockRange next() {
            const BlockRange& r = ranges[range];
            const BlockRange piece{r.offset + inside, std::min(block_size, r.length - inside)};
            inside += piece.length;
            if (inside == r.length) {
                ++range;
                inside = 0;
                skip_empty();
            }
            return piece;
        }
        void skip_empty() {
            while (range < ranges.size() && ranges[range].length == 0)
                ++range;
        }
    };

    void check_range(const BlockRange& r) const {
        const std::string ctx = context("read", path);
        if (r.offset > size || r.length > size - r.offset)
            throw Error(EINVAL, ctx,
                        "range " + std::to_string(r.offset) + "+" + std::to_string(r.length) +
                            " is beyond the end (" + std::to_string(size) + " bytes)");
        if (options.direct && (r.offset % alignment || r.length % alignment))
            throw Error(EINVAL, ctx,
                        "offset and length must be multiples of " + std::to_string(alignment) +
                            " with O_DIRECT");
    }

    // Reads stay queue_depth pieces ahead of the sink, across the ranges:
    // many small ranges are read as fast as one large one.
    void read(std::span<const BlockRange> ranges, const ReadSink& sink) {
        std::uint64_t end = 0;
        for (const auto& r : ranges) {
            check_range(r);
            if (r.offset < end)
                throw Error(EINVAL, context("read", path),
                            "range " + std::to_string(r.offset) +
                                " overlaps or precedes the one before");
            end = r.offset + r.length;
        }
        std::lock_guard lock(mutex);
        Unpin unpin{slots};
        Pieces queued_to{ranges, options.block_size};
        Pieces delivered{ranges, options.block_size};
        queued_to.skip_empty();
        delivered.skip_empty();
        std::deque<BlockRange> ahead; // queued, not yet delivered, in order
        while (!delivered.done()) {
            // Queue what free slots allow, then submit them together.
            for (;;) {
                while (!queued_to.done() && ahead.size() < options.queue_depth) {
                    const std::size_t range = queued_to.range;
                    const std::uint64_t inside = queued_to.inside;
                    const BlockRange r = queued_to.next();
                    Slot* s = obtain(r.offset, static_cast<std::uint32_t>(r.length));
                    if (!s) { // no free slot: take this piece again later
                        queued_to.range = range;
                        queued_to.inside = inside;
                        break;
                    }
                    s->pinned = true;
                    ahead.push_back(r);
                }
                if (!ahead.empty())
                    break;
                reap(true); // every slot in flight (an aborted call's): let one finish
            }
            const BlockRange r = delivered.next();
            ahead.pop_front();
            Slot* head = find(r.offset, static_cast<std::uint32_t>(r.length));
            wait_ready(*head);
            head->used = ++tick;
            sink(head->offset, std::span<const std::byte>(head->buffer.get(), head->length));
            head->pinned = false;
        }
    }
};

ImageReader::ImageReader(const std::string& path, ReadOptions options)
    : engine_(std::make_unique<Engine>(path, options)) {}

ImageReader::ImageReader(ImageReader&&) noexcept = default;
ImageReader& ImageReader::operator=(ImageReader&&) noexcept = default;
ImageReader::~ImageReader() = default;

const std::string& ImageReader::path() const {
    return engine_->path;
}

std::uint64_t ImageReader::size() const {
    return engine_->size;
}

std::uint32_t ImageReader::alignment() const {
    return engine_->alignment;
}

void ImageReader::read(std::uint64_t offset, std::uint64_t length, const ReadSink& sink) {
    const BlockRange range{offset, length};
    engine_->read(std::span(&range, 1), sink);
}

void ImageReader::read(std::span<const BlockRange> ranges, const ReadSink& sink) {
    engine_->read(ranges, sink);
}

std::size_t ImageReader::read_at(std::span<std::byte> out, std::uint64_t offset) {
    return engine_->read_at(out, offset);
}

std::size_t ImageReader::take_block(std::uint64_t offset, std::size_t length, Buffer& out) {
    return engine_->take_block(offset, length, out);
}

void ImageReader::invalidate() {
    engine_->invalidate();
}

} // namespace blksnap
