#include "image_stream.hpp"
#include "align.hpp"

#include <blksnap/error.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <liburing.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <unistd.h>

namespace blksnapfs {

namespace {

constexpr std::size_t buffer_alignment = 4096;

} // namespace

void ImageStream::FreeDeleter::operator()(std::byte* p) const noexcept {
    std::free(p);
}

std::atomic<std::uint64_t>& write_epoch() {
    static std::atomic<std::uint64_t> epoch{0};
    return epoch;
}

struct ImageStream::Ring {
    io_uring ring;
    explicit Ring(unsigned depth) {
        if (int ret = io_uring_queue_init(depth, &ring, 0); ret < 0)
            throw blksnap::Error(-ret, "io_uring_queue_init");
    }
    ~Ring() { io_uring_queue_exit(&ring); }
    Ring(const Ring&) = delete;
    Ring& operator=(const Ring&) = delete;
};

ImageStream::ImageStream(const std::string& path, std::uint64_t size, StreamOptions options)
    : path_(path), size_(size), options_(options),
      fd_(blksnap::open_fd(path, O_RDONLY | O_DIRECT | O_CLOEXEC)) {
    if (options_.depth < 2 || options_.chunk % buffer_alignment != 0)
        throw blksnap::Error(EINVAL, blksnap::context("read", path_), "bad chunk size or depth");
    int lbs = 512;
    if (::ioctl(fd_.get(), BLKSSZGET, &lbs) != 0)
        lbs = 512; // a regular file (tests): 512 is what O_DIRECT needs at most here
    alignment_ = static_cast<std::uint32_t>(lbs);
    if (options_.writable)
        write_fd_ = blksnap::open_fd(path, O_WRONLY | O_CLOEXEC);
    ring_ = std::make_unique<Ring>(options_.depth);
    for (unsigned i = 0; i < options_.depth; ++i) {
        slots_.push_back(std::make_unique<Slot>());
        lru_.push_back(*slots_.back());
    }
    epoch_seen_ = write_epoch().load();
}

ImageStream::~ImageStream() {
    // The kernel may still write into the buffers of reads in flight.
    std::lock_guard lock(mutex_);
    while (in_flight_ > 0 && wait_one() == 0) {
    }
    lru_.clear();
}

ImageStream::Slot* ImageStream::find(std::uint64_t index) {
    for (auto& s : slots_)
        if (s->state != Slot::State::empty && s->index == index)
            return s.get();
    return nullptr;
}

ImageStream::Slot* ImageStream::take_free() {
    if (lru_.empty())
        return nullptr;
    Slot& s = lru_.front();
    lru_.pop_front();
    return &s;
}

void ImageStream::submit(Slot& slot, std::uint64_t index) {
    const ChunkRange r = chunk_range(index, options_.chunk, size_, alignment_);
    if (!slot.buffer) {
        auto* p = static_cast<std::byte*>(std::aligned_alloc(buffer_alignment, options_.chunk));
        if (!p)
            throw blksnap::Error(ENOMEM, "image read buffer");
        slot.buffer.reset(p);
    }
    slot.index = index;
    slot.offset = r.offset;
    slot.length = static_cast<std::uint32_t>(r.length);
    slot.done = 0;
    slot.error = 0;
    slot.epoch = write_epoch().load();
    slot.state = Slot::State::in_flight;
    submit_tail(slot);
}

void ImageStream::submit_tail(Slot& slot) {
    io_uring* ring = &ring_->ring;
    io_uring_sqe* sqe = io_uring_get_sqe(ring);
    if (!sqe) { // cannot happen: one entry per slot
        slot.state = Slot::State::failed;
        slot.error = -EBUSY;
        lru_.push_back(slot);
        return;
    }
    io_uring_prep_read(sqe, fd_.get(), slot.buffer.get() + slot.done, slot.length - slot.done,
                       slot.offset + slot.done);
    io_uring_sqe_set_data(sqe, &slot);
    ++in_flight_;
    if (int ret = io_uring_submit(ring); ret < 0) {
        // Not queued: report it on the slot.
        --in_flight_;
        slot.state = Slot::State::failed;
        slot.error = ret;
        lru_.push_back(slot);
    }
}

int ImageStream::wait_one() {
    io_uring_cqe* cqe = nullptr;
    int ret;
    do {
        ret = io_uring_wait_cqe(&ring_->ring, &cqe);
    } while (ret == -EINTR);
    if (ret < 0)
        return ret == -EBADF ? -EBADF : ret;
    auto* slot = static_cast<Slot*>(io_uring_cqe_get_data(cqe));
    const int res = cqe->res;
    io_uring_cqe_seen(&ring_->ring, cqe);
    --in_flight_;
    if (res < 0 || res == 0) {
        slot->state = Slot::State::failed;
        slot->error = res < 0 ? res : -EIO;
        lru_.push_back(*slot);
        return 0;
    }
    slot->done += static_cast<std::uint32_t>(res);
    if (slot->done < slot->length) {
        submit_tail(*slot);
        return 0;
    }
    slot->state = Slot::State::ready;
    lru_.push_back(*slot);
    return 0;
}

int ImageStream::wait_ready(Slot& slot) {
    while (slot.state == Slot::State::in_flight) {
        if (int ret = wait_one(); ret < 0)
            return ret;
    }
    return slot.state == Slot::State::ready ? 0 : slot.error;
}

ImageStream::Slot* ImageStream::ensure(std::uint64_t index) {
    if (Slot* s = find(index))
        return s;
    Slot* s = take_free();
    if (!s)
        return nullptr;
    submit(*s, index);
    return s;
}

void ImageStream::prefetch(std::uint64_t from) {
    const std::uint64_t chunks = (size_ + options_.chunk - 1) / options_.chunk;
    for (std::uint64_t i = from; i < chunks && i < from + options_.depth - 1; ++i) {
        if (find(i))
            continue;
        // Only recycle a slot that holds nothing the reader still needs:
        // empty, failed, or a chunk behind the reader.
        if (lru_.empty())
            return;
        Slot& s = lru_.front();
        if (s.state == Slot::State::ready && s.index >= from - 1)
            return;
        lru_.pop_front();
        submit(s, i);
    }
}

void ImageStream::drop_stale() {
    const std::uint64_t now = write_epoch().load();
    if (now == epoch_seen_)
        return;
    for (auto& s : slots_) {
        if (s->state == Slot::State::in_flight)
            wait_ready(*s);
        if (s->epoch != now)
            s->state = Slot::State::empty;
    }
    epoch_seen_ = now;
}

int ImageStream::ready_chunk(std::uint64_t index, bool sequential, Slot*& out) {
    Slot* s = ensure(index);
    while (!s) { // every slot is busy: let one finish
        if (int ret = wait_one(); ret < 0)
            return ret;
        s = ensure(index);
    }
    if (sequential)
        prefetch(index + 1);
    if (int ret = wait_ready(*s); ret < 0) {
        s->state = Slot::State::empty; // try again next time
        // A failed image (corrupted: ENOSPC, destroyed: ENXIO...) reads as
        // an I/O error, as any failed read does.
        return ret == -ENOMEM || ret == -EINTR ? ret : -EIO;
    }
    // Move it to the back of the LRU list: most recently used.
    lru_.erase(lru_.iterator_to(*s));
    lru_.push_back(*s);
    out = s;
    return 0;
}

// Reads of a sequential reader may arrive a little out of order.
bool ImageStream::sequential(std::uint64_t offset) const {
    return offset == 0 || (offset + options_.chunk >= next_expected_ &&
                           offset <= next_expected_ + 2ull * options_.chunk);
}

void ImageStream::note_read(std::uint64_t offset, std::uint64_t length, bool sequential) {
    next_expected_ =
        (offset == 0 || !sequential) ? offset + length : std::max(next_expected_, offset + length);
}

long ImageStream::read(std::span<std::byte> out, std::uint64_t offset) {
    std::lock_guard lock(mutex_);
    const std::uint64_t length = clamp_length(offset, out.size(), size_);
    if (length == 0)
        return 0;
    try {
        drop_stale();
        const ChunkSpan span = chunks_covering(offset, length, options_.chunk);
        const bool seq = sequential(offset);
        std::uint64_t copied = 0;
        for (std::uint64_t i = span.first; i <= span.last; ++i) {
            Slot* s = nullptr;
            if (int ret = ready_chunk(i, seq, s); ret < 0)
                return ret;
            const std::uint64_t from = std::max(offset, s->offset);
            const std::uint64_t to = std::min(offset + length, s->offset + s->length);
            std::memcpy(out.data() + (from - offset), s->buffer.get() + (from - s->offset),
                        to - from);
            copied += to - from;
        }
        note_read(offset, length, seq);
        return static_cast<long>(copied);
    } catch (const blksnap::Error& e) {
        return -e.code();
    }
}

long ImageStream::take_chunk(std::uint64_t offset, std::size_t size, Buffer& out) {
    out.reset();
    std::lock_guard lock(mutex_);
    const std::uint64_t length = clamp_length(offset, size, size_);
    const std::uint64_t index = offset / options_.chunk;
    const ChunkRange r = chunk_range(index, options_.chunk, size_, alignment_);
    if (length == 0 || offset != r.offset || length != std::min(r.length, size_ - r.offset))
        return 0;
    try {
        drop_stale();
        const bool seq = sequential(offset);
        Slot* s = nullptr;
        if (int ret = ready_chunk(index, seq, s); ret < 0)
            return ret;
        out = std::move(s->buffer); // the next read into this slot allocates anew
        s->state = Slot::State::empty;
        lru_.erase(lru_.iterator_to(*s));
        lru_.push_front(*s); // the first to reuse
        note_read(offset, length, seq);
        return static_cast<long>(length);
    } catch (const blksnap::Error& e) {
        return -e.code();
    }
}

long ImageStream::write(std::span<const std::byte> data, std::uint64_t offset) {
    if (!write_fd_)
        return -EROFS;
    const std::uint64_t length = clamp_length(offset, data.size(), size_);
    if (length == 0)
        return data.empty() ? 0 : -ENOSPC;
    std::uint64_t done = 0;
    while (done < length) {
        const ssize_t n = ::pwrite(write_fd_.get(), data.data() + done, length - done,
                                   static_cast<off_t>(offset + done));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        done += static_cast<std::uint64_t>(n);
    }
    ++write_epoch();
    return static_cast<long>(done);
}

int ImageStream::sync() {
    if (write_fd_ && ::fdatasync(write_fd_.get()) != 0)
        return -errno;
    return 0;
}

} // namespace blksnapfs
