#include <blksnap/backup/batch_io.hpp>
#include <blksnap/error.hpp>

#include <algorithm>
#include <cerrno>
#include <deque>
#include <liburing.h>
#include <unistd.h>
#include <utility>
#include <vector>

namespace blksnap::backup {

namespace {

constexpr unsigned most_in_flight = 64;

Error failed(IoDirection direction, const std::string& path, std::uint64_t offset, int error) {
    return Error(error, context(direction == IoDirection::read ? "read" : "write",
                                path + " at offset " + std::to_string(offset)));
}

// What is left of a piece: it moves on as parts of it are done.
struct Left {
    std::uint64_t offset;
    std::byte* data;
    std::size_t length;
};

// Moves as much of L as one call does; returns the bytes or -errno.
ssize_t transfer_once(int fd, IoDirection direction, const Left& l) {
    const auto at = static_cast<off_t>(l.offset);
    const ssize_t n = direction == IoDirection::read ? ::pread(fd, l.data, l.length, at)
                                                     : ::pwrite(fd, l.data, l.length, at);
    return n < 0 ? -errno : n;
}

// Accounts for N bytes (or -errno) done of L: true when L is done.
bool advance(Left& l, ssize_t n, IoDirection direction, const std::string& path) {
    if (n == -EINTR || n == -EAGAIN)
        return false; // again
    if (n < 0)
        throw failed(direction, path, l.offset, static_cast<int>(-n));
    if (n == 0)
        throw failed(direction, path, l.offset, EIO); // the end of the file
    l.offset += static_cast<std::uint64_t>(n);
    l.data += n;
    l.length -= static_cast<std::size_t>(n);
    return l.length == 0;
}

void one_by_one(int fd, IoDirection direction, std::vector<Left>& left, const std::string& path) {
    for (auto& l : left)
        while (!advance(l, transfer_once(fd, direction, l), direction, path)) {
        }
}

class Ring {
public:
    explicit Ring(unsigned entries) : ok_(::io_uring_queue_init(entries, &ring_, 0) == 0) {}
    Ring(const Ring&) = delete;
    Ring& operator=(const Ring&) = delete;
    ~Ring() {
        if (ok_)
            ::io_uring_queue_exit(&ring_);
    }
    bool ok() const { return ok_; }
    io_uring* get() { return &ring_; }

private:
    io_uring ring_{};
    bool ok_;
};

} // namespace

void transfer_all(int fd, IoDirection direction, std::span<const IoPiece> pieces,
                  const std::string& path) {
    std::vector<Left> left;
    left.reserve(pieces.size());
    for (const auto& p : pieces)
        if (!p.data.empty())
            left.push_back({p.offset, p.data.data(), p.data.size()});
    if (left.empty())
        return;
    if (left.size() == 1) {
        one_by_one(fd, direction, left, path);
        return;
    }
    Ring ring(std::min<unsigned>(most_in_flight, static_cast<unsigned>(left.size())));
    if (!ring.ok()) {
        one_by_one(fd, direction, left, path);
        return;
    }
    std::deque<std::size_t> waiting; // pieces (indexes into LEFT) not in flight
    for (std::size_t i = 0; i < left.size(); ++i)
        waiting.push_back(i);
    unsigned in_flight = 0;
    std::vector<std::pair<std::size_t, int>> done; // completions: piece, result
    // On an error, the reads and writes still in flight use LEFT's buffers:
    // they are waited for before the error leaves.
    auto drain = [&] {
        io_uring_cqe* cqe = nullptr;
        while (in_flight > 0) {
            const int r = ::io_uring_wait_cqe(ring.get(), &cqe);
            if (r == -EINTR)
                continue;
            if (r < 0)
                break; // the ring is gone: nothing more will complete
            ::io_uring_cqe_seen(ring.get(), cqe);
            --in_flight;
        }
    };
    try {
        while (!waiting.empty() || in_flight > 0) {
            while (!waiting.empty() && in_flight < most_in_flight) {
                io_uring_sqe* sqe = ::io_uring_get_sqe(ring.get());
                if (!sqe)
                    break;
                const std::size_t i = waiting.front();
                waiting.pop_front();
                const Left& l = left[i];
                const auto n = static_cast<unsigned>(std::min<std::size_t>(l.length, 1u << 30));
                if (direction == IoDirection::read)
                    ::io_uring_prep_read(sqe, fd, l.data, n, l.offset);
                else
                    ::io_uring_prep_write(sqe, fd, l.data, n, l.offset);
                ::io_uring_sqe_set_data64(sqe, i);
                ++in_flight;
            }
            int r = ::io_uring_submit_and_wait(ring.get(), 1);
            if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY)
                throw Error(-r, context("io_uring_submit", path));
            // Every completion is taken off the ring before any is looked at,
            // so that one that fails leaves none behind for drain().
            done.clear();
            io_uring_cqe* cqe = nullptr;
            unsigned head = 0;
            io_uring_for_each_cqe(ring.get(), head, cqe) {
                done.emplace_back(static_cast<std::size_t>(::io_uring_cqe_get_data64(cqe)),
                                  cqe->res);
            }
            ::io_uring_cq_advance(ring.get(), static_cast<unsigned>(done.size()));
            in_flight -= static_cast<unsigned>(done.size());
            for (const auto& [i, res] : done)
                if (!advance(left[i], res, direction, path))
                    waiting.push_back(i); // the rest of it
        }
    } catch (...) {
        drain();
        throw;
    }
}

} // namespace blksnap::backup
