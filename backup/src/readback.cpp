#include <blksnap/backup/checksum.hpp>
#include <blksnap/backup/readback.hpp>
#include <blksnap/backup/target.hpp>
#include <blksnap/error.hpp>
#include <blksnap/unique_fd.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <memory>
#include <unistd.h>

namespace blksnap::backup {

namespace fs = std::filesystem;

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

std::vector<std::uint64_t> block_sums(const fs::path& file, std::uint32_t block_size,
                                      std::span<const std::uint64_t> blocks) {
    constexpr std::size_t piece = 1u << 20;
    const std::string name = file.string();
    UniqueFd fd = open_uncached(name, O_NOFOLLOW);
    AlignedBuffer buf = aligned_buffer(piece);
    std::vector<std::uint64_t> out;
    out.reserve(blocks.size());
    Xxh64 hash;
    for (const std::uint64_t b : blocks) {
        hash.reset();
        const std::uint64_t start = b * block_size, end = start + block_size;
        // Aligned reads (O_DIRECT) from the granule the block starts in.
        std::uint64_t pos = start / TargetImage::granule * TargetImage::granule;
        while (pos < end) {
            const auto want = static_cast<std::size_t>(
                std::min<std::uint64_t>(piece, (end - pos + TargetImage::granule - 1) /
                                                   TargetImage::granule * TargetImage::granule));
            const std::size_t n = read_at(fd.get(), buf.get(), want, pos, name);
            const std::uint64_t from = std::max(pos, start);
            const std::uint64_t to = std::min(pos + n, end);
            if (to > from)
                hash.update(std::span<const std::byte>(buf.get() + (from - pos),
                                                       static_cast<std::size_t>(to - from)));
            if (n < want)
                break; // the end of the file
            pos += n;
        }
        out.push_back(hash.digest());
    }
    return out;
}

} // namespace blksnap::backup
