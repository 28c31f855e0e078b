// Reads (and, when writable, writes) one image device for one open
// image.raw: O_DIRECT reads of whole aligned chunks through io_uring, several
// in flight, with read-ahead when the access is sequential. FUSE reads at any
// offset are served from these chunks (aligned bounce reads). Memory is
// bounded: at most `depth` chunk buffers per stream.
#pragma once

#include <blksnap/unique_fd.hpp>

#include <boost/intrusive/list.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

struct io_uring;

namespace blksnapfs {

struct StreamOptions {
    std::uint32_t chunk = 1u << 20; // bytes per device read
    unsigned depth = 4;             // chunk buffers, hence reads in flight
    bool writable = false;
};

class ImageStream {
public:
    struct FreeDeleter {
        void operator()(std::byte* p) const noexcept;
    };
    // A buffer from malloc or aligned_alloc: what libfuse frees with free().
    using Buffer = std::unique_ptr<std::byte[], FreeDeleter>;

    // Opens the image device PATH of SIZE bytes. Throws blksnap::Error.
    ImageStream(const std::string& path, std::uint64_t size, StreamOptions options = {});
    ~ImageStream();
    ImageStream(const ImageStream&) = delete;
    ImageStream& operator=(const ImageStream&) = delete;

    // Bytes read into OUT from OFFSET (short only at the end), or -errno.
    long read(std::span<std::byte> out, std::uint64_t offset);
    // A read of SIZE bytes at OFFSET that is exactly one whole chunk (cut at
    // the end of the image) takes that chunk's buffer: OUT receives it, the
    // reply needs no copy, and the chunk is read again if asked for again.
    // Returns the bytes OUT holds; 0 with OUT empty for any other read (use
    // read()); or -errno.
    long take_chunk(std::uint64_t offset, std::size_t size, Buffer& out);
    // Bytes written from DATA at OFFSET, or -errno (-EROFS when not writable).
    long write(std::span<const std::byte> data, std::uint64_t offset);
    // fdatasync of what write() wrote; 0 or -errno.
    int sync();

    std::uint64_t size() const { return size_; }

private:
    // One chunk buffer: idle slots sit in the LRU list.
    struct Slot : boost::intrusive::list_base_hook<> {
        enum class State { empty, in_flight, ready, failed };
        Buffer buffer;
        State state = State::empty;
        std::uint64_t index = 0;  // chunk number
        std::uint64_t offset = 0; // device offset of the chunk
        std::uint32_t length = 0; // bytes the chunk holds
        std::uint32_t done = 0;   // bytes arrived so far
        int error = 0;            // -errno when failed
        std::uint64_t epoch = 0;  // write_epoch() when submitted
    };
    struct Ring;
    using Lru = boost::intrusive::list<Slot>;

    Slot* find(std::uint64_t index);
    Slot* ensure(std::uint64_t index); // submitted or ready; nullptr: no free slot
    Slot* take_free();                 // an idle slot, least recently used first
    void submit(Slot& slot, std::uint64_t index);
    void submit_tail(Slot& slot); // the rest of a short read
    int wait_one();               // reaps one completion; 0 or -errno
    int wait_ready(Slot& slot);   // 0 or the slot's -errno
    // Chunk INDEX read and ready in OUT, most recently used; read-ahead after
    // it when SEQUENTIAL. 0 or -errno.
    int ready_chunk(std::uint64_t index, bool sequential, Slot*& out);
    bool sequential(std::uint64_t offset) const;
    void note_read(std::uint64_t offset, std::uint64_t length, bool sequential);
    void prefetch(std::uint64_t from);
    void drop_stale();

    std::string path_;
    std::uint64_t size_;
    StreamOptions options_;
    std::uint32_t alignment_;
    blksnap::UniqueFd fd_;       // O_DIRECT reads
    blksnap::UniqueFd write_fd_; // buffered writes, when writable
    std::unique_ptr<Ring> ring_;
    std::vector<std::unique_ptr<Slot>> slots_;
    Lru lru_; // idle slots (ready, failed or empty), least recently used first
    unsigned in_flight_ = 0;
    std::uint64_t next_expected_ = 0; // where a sequential reader reads next
    std::uint64_t epoch_seen_ = 0;
    std::mutex mutex_;
};

// Bumped by every write through any stream: cached chunks older than the
// last write are read again.
std::atomic<std::uint64_t>& write_epoch();

} // namespace blksnapfs
