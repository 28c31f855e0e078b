#include <blksnap/align.hpp>
#include <blksnap/backup/batch_io.hpp>
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
#include <linux/fs.h>
#include <memory>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

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

namespace {

// The sum of [START, END) of FD, read in PIECE-sized aligned reads into BUF
// (of PIECE bytes): the one block a batch cannot take, the file's last when
// it ends inside a granule.
std::uint64_t block_sum_alone(int fd, std::byte* buf, std::size_t piece, std::uint64_t start,
                              std::uint64_t end, const std::string& name) {
    Xxh64 hash;
    std::uint64_t pos = start / TargetImage::granule * TargetImage::granule;
    while (pos < end) {
        const auto want = static_cast<std::size_t>(
            std::min<std::uint64_t>(piece, (end - pos + TargetImage::granule - 1) /
                                               TargetImage::granule * TargetImage::granule));
        const std::size_t n = read_at(fd, buf, want, pos, name);
        const std::uint64_t from = std::max(pos, start);
        const std::uint64_t to = std::min(pos + n, end);
        if (to > from)
            hash.update(std::span<const std::byte>(buf + (from - pos),
                                                   static_cast<std::size_t>(to - from)));
        if (n < want)
            break; // the end of the file
        pos += n;
    }
    return hash.digest();
}

std::uint64_t size_of(int fd, const std::string& name) {
    struct ::stat st;
    if (::fstat(fd, &st) != 0)
        throw_errno(context("stat", name));
    std::uint64_t size = static_cast<std::uint64_t>(st.st_size);
    if (S_ISBLK(st.st_mode) && ::ioctl(fd, BLKGETSIZE64, &size) != 0)
        throw_errno(context("size of", name));
    return size;
}

} // namespace

std::vector<std::uint64_t> block_sums(const fs::path& file, std::uint32_t block_size,
                                      std::span<const std::uint64_t> blocks) {
    const std::string name = file.string();
    UniqueFd fd = open_uncached(name, O_NOFOLLOW);
    const std::uint64_t size = size_of(fd.get(), name);
    const std::uint64_t g = TargetImage::granule;
    // Blocks are read in batches, all of a batch's reads in flight at once
    // (a rollback reads back a few hundred scattered blocks).
    const auto piece = static_cast<std::size_t>(
        std::max<std::uint64_t>(std::uint64_t{4} << 20, align_up(block_size, g) + g));
    AlignedBuffer buf = aligned_buffer(piece);
    std::vector<std::uint64_t> out(blocks.size());
    std::vector<IoPiece> batch;
    std::vector<std::size_t> batch_blocks; // indexes into BLOCKS
    std::size_t used = 0;
    auto flush = [&] {
        transfer_all(fd.get(), IoDirection::read, batch, name);
        for (std::size_t k = 0; k < batch.size(); ++k) {
            const std::uint64_t start = blocks[batch_blocks[k]] * block_size;
            const std::uint64_t end = std::min<std::uint64_t>(start + block_size, size);
            out[batch_blocks[k]] =
                XXH64(batch[k].data.data() + (start - batch[k].offset), end - start, 0);
        }
        batch.clear();
        batch_blocks.clear();
        used = 0;
    };
    for (std::size_t i = 0; i < blocks.size(); ++i) {
        const std::uint64_t start = blocks[i] * block_size;
        const std::uint64_t end = std::min<std::uint64_t>(start + block_size, size);
        const std::uint64_t from = align_down(start, g), to = align_up(end, g);
        if (start >= end || to > size) {
            // Past the end (an empty block), or ending inside a granule: read
            // alone, into the buffer the batch is done with.
            if (!batch.empty())
                flush();
            out[i] = block_sum_alone(fd.get(), buf.get(), piece, start, end, name);
            continue;
        }
        const auto n = static_cast<std::size_t>(to - from);
        if (used + n > piece)
            flush();
        batch.push_back({from, std::span(buf.get() + used, n)});
        batch_blocks.push_back(i);
        used += n;
    }
    if (!batch.empty())
        flush();
    return out;
}

} // namespace blksnap::backup
