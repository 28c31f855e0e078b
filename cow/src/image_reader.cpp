#include <blksnap/device.hpp>
#include <blksnap/error.hpp>
#include <blksnap/image_reader.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <fcntl.h>
#include <liburing.h>
#include <vector>

namespace blksnap {

namespace {

struct FreeDeleter {
    void operator()(std::byte* p) const noexcept { std::free(p); }
};
using AlignedBuffer = std::unique_ptr<std::byte[], FreeDeleter>;

AlignedBuffer aligned_buffer(std::size_t size) {
    size = (size + ImageReader::buffer_alignment - 1) / ImageReader::buffer_alignment *
           ImageReader::buffer_alignment;
    auto* p = static_cast<std::byte*>(std::aligned_alloc(ImageReader::buffer_alignment, size));
    if (!p)
        throw Error(ENOMEM, "read buffer");
    return AlignedBuffer(p);
}

// One read in flight: the block it reads and how much has arrived.
struct Slot {
    AlignedBuffer buffer;
    std::uint64_t offset = 0;
    std::uint32_t length = 0;
    std::uint32_t done = 0;
    bool complete = false;
};

} // namespace

struct ImageReader::Ring {
    io_uring ring;
    explicit Ring(unsigned depth) {
        int ret = io_uring_queue_init(depth, &ring, 0);
        if (ret < 0)
            throw Error(-ret, "io_uring_queue_init");
    }
    ~Ring() { io_uring_queue_exit(&ring); }
    Ring(const Ring&) = delete;
    Ring& operator=(const Ring&) = delete;
};

ImageReader::ImageReader(const std::string& path, ReadOptions options)
    : path_(path), options_(options),
      fd_(open_fd(path, O_RDONLY | (options.direct ? O_DIRECT : 0))),
      size_(size_of(fd_.get(), path)) {
    if (options_.block_size == 0 || options_.queue_depth == 0)
        throw Error(EINVAL, context("read", path_), "block size and queue depth must be positive");
    if (options_.direct && options_.block_size % direct_alignment != 0)
        throw Error(EINVAL, context("read", path_),
                    "block size must be a multiple of 512 with O_DIRECT");
    ring_ = std::make_unique<Ring>(options_.queue_depth);
}

ImageReader::ImageReader(ImageReader&&) noexcept = default;
ImageReader& ImageReader::operator=(ImageReader&&) noexcept = default;
ImageReader::~ImageReader() = default;

void ImageReader::read(std::uint64_t offset, std::uint64_t length, const ReadSink& sink) {
    const std::string ctx = context("read", path_);
    if (offset > size_ || length > size_ - offset)
        throw Error(EINVAL, ctx,
                    "range " + std::to_string(offset) + "+" + std::to_string(length) +
                        " is beyond the end (" + std::to_string(size_) + " bytes)");
    if (options_.direct && (offset % direct_alignment || length % direct_alignment))
        throw Error(EINVAL, ctx, "offset and length must be multiples of 512 with O_DIRECT");

    const std::uint64_t bs = options_.block_size;
    const std::uint64_t blocks = (length + bs - 1) / bs;
    const unsigned depth = options_.queue_depth;
    std::vector<Slot> slots(static_cast<std::size_t>(std::min<std::uint64_t>(depth, blocks)));
    for (auto& s : slots)
        s.buffer = aligned_buffer(options_.block_size);

    io_uring* ring = &ring_->ring;
    auto queue = [&](std::size_t index) {
        Slot& s = slots[index];
        io_uring_sqe* sqe = io_uring_get_sqe(ring);
        if (!sqe)
            throw Error(EBUSY, ctx, "io_uring submission queue full");
        io_uring_prep_read(sqe, fd_.get(), s.buffer.get() + s.done, s.length - s.done,
                           s.offset + s.done);
        io_uring_sqe_set_data64(sqe, index);
    };
    // Waits for every read still in flight: their buffers must outlive them.
    std::size_t in_flight = 0;
    auto drain = [&] {
        for (; in_flight > 0; --in_flight) {
            io_uring_cqe* cqe;
            if (io_uring_wait_cqe(ring, &cqe) != 0)
                break;
            io_uring_cqe_seen(ring, cqe);
        }
    };

    try {
        std::uint64_t next_submit = 0, next_deliver = 0;
        while (next_deliver < blocks) {
            // Block i always uses slot i % depth: it is free once block
            // i - depth has been delivered.
            for (; next_submit < blocks && next_submit < next_deliver + slots.size();
                 ++next_submit) {
                Slot& s = slots[next_submit % slots.size()];
                s.offset = offset + next_submit * bs;
                s.length = static_cast<std::uint32_t>(std::min(bs, offset + length - s.offset));
                s.done = 0;
                s.complete = false;
                queue(next_submit % slots.size());
                ++in_flight;
            }
            int ret = io_uring_submit(ring);
            if (ret < 0)
                throw Error(-ret, ctx, "io_uring_submit failed");

            Slot& head = slots[next_deliver % slots.size()];
            if (head.complete) {
                sink(head.offset, std::span<const std::byte>(head.buffer.get(), head.length));
                ++next_deliver;
                continue;
            }
            io_uring_cqe* cqe;
            ret = io_uring_wait_cqe(ring, &cqe);
            if (ret < 0)
                throw Error(-ret, ctx, "io_uring_wait_cqe failed");
            const auto index = static_cast<std::size_t>(io_uring_cqe_get_data64(cqe));
            const int res = cqe->res;
            io_uring_cqe_seen(ring, cqe);
            --in_flight;
            Slot& s = slots[index];
            const std::string where = ctx + " at offset " + std::to_string(s.offset + s.done);
            if (res < 0)
                throw Error(-res, where);
            if (res == 0)
                throw Error(EIO, where, "unexpected end of data");
            s.done += static_cast<std::uint32_t>(res);
            if (s.done < s.length) {
                queue(index); // a short read: ask for the rest
                ++in_flight;
            } else {
                s.complete = true;
            }
        }
    } catch (...) {
        io_uring_submit(ring);
        drain();
        throw;
    }
}

} // namespace blksnap
