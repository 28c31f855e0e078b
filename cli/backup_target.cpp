#include "backup_target.hpp"

#include <blksnap/error.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>
#include <vector>
#include <xxhash.h>

namespace blksnap::cli {

namespace fs = std::filesystem;

namespace {

// Every byte is zero: the first is, and each equals the next.
bool all_zero(std::span<const std::byte> data) {
    return data.empty() || (data[0] == std::byte{0} &&
                            std::memcmp(data.data(), data.data() + 1, data.size() - 1) == 0);
}

fs::path parent_of(const fs::path& path) {
    return path.parent_path().empty() ? fs::path(".") : path.parent_path();
}

} // namespace

void Xxh64::Free::operator()(XXH64_state_s* s) const noexcept {
    XXH64_freeState(s);
}

Xxh64::Xxh64() : state_(XXH64_createState()) {
    if (!state_)
        throw Error(ENOMEM, "xxh64 state");
    XXH64_reset(state_.get(), 0);
}

void Xxh64::update(std::span<const std::byte> data) {
    XXH64_update(state_.get(), data.data(), data.size());
}

std::uint64_t Xxh64::digest() const {
    return XXH64_digest(state_.get());
}

void fsync_dir(const fs::path& dir) {
    UniqueFd fd = open_fd(dir.string(), O_RDONLY | O_DIRECTORY);
    if (::fsync(fd.get()) != 0)
        throw_errno(context("fsync", dir.string()));
}

void remove_durably(const fs::path& path) {
    if (::unlink(path.c_str()) != 0) {
        if (errno == ENOENT)
            return;
        throw_errno(context("remove", path.string()));
    }
    fsync_dir(parent_of(path));
}

TargetImage::TargetImage(fs::path path, UniqueFd fd, bool fresh)
    : path_(std::move(path)), fd_(std::move(fd)), fresh_(fresh) {}

TargetImage TargetImage::create(const fs::path& path, std::uint64_t size) {
    UniqueFd fd = open_fd(path.string(), O_RDWR | O_CREAT | O_TRUNC | O_NOFOLLOW, 0600);
    if (::ftruncate(fd.get(), static_cast<off_t>(size)) != 0)
        throw_errno(context("set the size of", path.string()));
    return TargetImage(path, std::move(fd), true);
}

TargetImage TargetImage::open(const fs::path& path) {
    return TargetImage(path, open_fd(path.string(), O_RDWR | O_NOFOLLOW), false);
}

void TargetImage::put(std::uint64_t offset, std::span<const std::byte> data) {
    while (!data.empty()) {
        const ssize_t n = ::pwrite(fd_.get(), data.data(), data.size(), static_cast<off_t>(offset));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            throw_errno(context("write", path_.string()) + " at offset " + std::to_string(offset));
        }
        offset += static_cast<std::uint64_t>(n);
        data = data.subspan(static_cast<std::size_t>(n));
    }
}

void TargetImage::zero(std::uint64_t offset, std::uint64_t length) {
    if (fresh_)
        return; // a hole already
    if (can_punch_) {
        if (::fallocate(fd_.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                        static_cast<off_t>(offset), static_cast<off_t>(length)) == 0)
            return;
        if (errno != EOPNOTSUPP)
            throw_errno(context("punch a hole in", path_.string()) + " at offset " +
                        std::to_string(offset));
        can_punch_ = false;
    }
    static const std::vector<std::byte> zeros(1u << 20);
    while (length > 0) {
        const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(length, zeros.size()));
        put(offset, std::span(zeros.data(), n));
        offset += n;
        length -= n;
    }
}

void TargetImage::write(std::uint64_t offset, std::span<const std::byte> data) {
    // Pieces end on 4 KiB boundaries of the file; runs of data and runs of
    // zeros are written (or skipped) in one call each.
    std::size_t pos = 0, run_start = 0;
    bool run_zero = false;
    while (pos < data.size()) {
        const std::uint64_t at = offset + pos;
        const std::size_t len = static_cast<std::size_t>(
            std::min<std::uint64_t>(granule - at % granule, data.size() - pos));
        const bool zero_piece = all_zero(data.subspan(pos, len));
        if (pos > run_start && zero_piece != run_zero) {
            if (run_zero) {
                zero(offset + run_start, pos - run_start);
            } else {
                put(offset + run_start, data.subspan(run_start, pos - run_start));
                written_ += pos - run_start;
            }
            run_start = pos;
        }
        run_zero = zero_piece;
        pos += len;
    }
    if (pos > run_start) {
        if (run_zero) {
            zero(offset + run_start, pos - run_start);
        } else {
            put(offset + run_start, data.subspan(run_start, pos - run_start));
            written_ += pos - run_start;
        }
    }
}

void TargetImage::sync() {
    if (::fdatasync(fd_.get()) != 0)
        throw_errno(context("fsync", path_.string()));
    fsync_dir(parent_of(path_));
}

namespace {

struct FreeAligned {
    void operator()(std::byte* p) const noexcept { std::free(p); }
};
using AlignedBuffer = std::unique_ptr<std::byte[], FreeAligned>;

AlignedBuffer aligned_buffer(std::size_t size) {
    void* p = nullptr;
    if (::posix_memalign(&p, TargetImage::granule, size) != 0)
        throw Error(ENOMEM, "verify buffer");
    return AlignedBuffer(static_cast<std::byte*>(p));
}

// PATH for reading what its device holds: O_DIRECT, or, where the file
// system refuses it, buffered after dropping its cached pages.
UniqueFd open_uncached(const std::string& path, int flags) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC | flags);
    if (fd >= 0)
        return UniqueFd(fd);
    if (errno != EINVAL)
        throw_errno(context("open", path));
    UniqueFd f = open_fd(path, O_RDONLY | flags);
    ::posix_fadvise(f.get(), 0, 0, POSIX_FADV_DONTNEED);
    return f;
}

// Up to LENGTH bytes at OFFSET; fewer only at the end of the file.
std::size_t read_at(int fd, std::byte* buf, std::size_t length, std::uint64_t offset,
                    const std::string& path) {
    std::size_t done = 0;
    while (done < length) {
        const ssize_t n = ::pread(fd, buf + done, length - done, static_cast<off_t>(offset + done));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            throw_errno(context("read", path) + " at offset " + std::to_string(offset + done));
        }
        if (n == 0)
            break;
        done += static_cast<std::size_t>(n);
    }
    return done;
}

} // namespace

std::optional<std::uint64_t> first_difference(const fs::path& image, const std::string& source,
                                              std::span<const ByteRange> ranges) {
    constexpr std::size_t piece = 1u << 20;
    const std::string image_name = image.string();
    UniqueFd a = open_uncached(image_name, O_NOFOLLOW);
    UniqueFd b = open_uncached(source, 0);
    AlignedBuffer abuf = aligned_buffer(piece), bbuf = aligned_buffer(piece);
    for (const auto& r : ranges) {
        std::uint64_t pos = r.offset / TargetImage::granule * TargetImage::granule;
        const std::uint64_t end = r.offset + r.length;
        while (pos < end) {
            const auto want = static_cast<std::size_t>(
                std::min<std::uint64_t>(piece, (end - pos + TargetImage::granule - 1) /
                                                   TargetImage::granule * TargetImage::granule));
            const std::size_t na = read_at(a.get(), abuf.get(), want, pos, image_name);
            const std::size_t nb = read_at(b.get(), bbuf.get(), want, pos, source);
            const std::size_t n = std::min(na, nb);
            if (std::memcmp(abuf.get(), bbuf.get(), n) != 0) {
                std::size_t i = 0;
                while (abuf[i] == bbuf[i])
                    ++i;
                return pos + i;
            }
            if (na != nb)
                return pos + n; // one ends before the other
            if (n < want)
                break; // both end here
            pos += n;
        }
    }
    return std::nullopt;
}

} // namespace blksnap::cli
