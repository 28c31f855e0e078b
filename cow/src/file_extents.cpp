#include <blksnap/error.hpp>
#include <blksnap/file_extents.hpp>
#include <blksnap/unique_fd.hpp>

#include <cerrno>
#include <charconv>
#include <fcntl.h>
#include <iterator>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

namespace blksnap {

namespace {

constexpr unsigned batch = 128;
constexpr std::uint32_t placeless = FIEMAP_EXTENT_UNKNOWN | FIEMAP_EXTENT_DELALLOC |
                                    FIEMAP_EXTENT_DATA_INLINE | FIEMAP_EXTENT_DATA_TAIL |
                                    FIEMAP_EXTENT_NOT_ALIGNED | FIEMAP_EXTENT_ENCODED;

std::string hex(std::uint32_t value) {
    char text[8];
    auto [end, ec] = std::to_chars(std::begin(text), std::end(text), value, 16);
    return std::string(text, end);
}

} // namespace

FileExtents file_extents(const std::string& path) {
    const std::string ctx = context("extents of", path);
    UniqueFd fd = open_fd(path, O_RDONLY);
    struct stat st;
    if (::fstat(fd.get(), &st) != 0)
        throw_errno(ctx);
    if (!S_ISREG(st.st_mode))
        throw Error(EINVAL, ctx, "not a regular file");
    if (::major(st.st_dev) == 0)
        throw Error(ENOTBLK, ctx, "its file system is not on a block device");
    if (::fsync(fd.get()) != 0)
        throw_errno(context("fsync", path));

    FileExtents result{{::major(st.st_dev), ::minor(st.st_dev)}, {}};
    // fiemap ends in a flexible array: keep it in 8-byte aligned storage.
    std::vector<std::uint64_t> storage((sizeof(fiemap) + batch * sizeof(fiemap_extent) + 7) /
                                       sizeof(std::uint64_t));
    auto* fm = reinterpret_cast<fiemap*>(storage.data());
    std::uint64_t start = 0;
    for (bool last = false; !last;) {
        std::fill(storage.begin(), storage.end(), 0);
        fm->fm_start = start;
        fm->fm_length = FIEMAP_MAX_OFFSET - start;
        fm->fm_flags = FIEMAP_FLAG_SYNC;
        fm->fm_extent_count = batch;
        if (::ioctl(fd.get(), FS_IOC_FIEMAP, fm) != 0)
            throw_errno(context("FIEMAP", path));
        if (fm->fm_mapped_extents == 0)
            break;
        for (unsigned i = 0; i < fm->fm_mapped_extents; ++i) {
            const fiemap_extent& fe = fm->fm_extents[i];
            if (fe.fe_flags & placeless)
                throw Error(EOPNOTSUPP, ctx,
                            "the extent at file offset " + std::to_string(fe.fe_logical) +
                                " has no place of its own on the device (flags 0x" +
                                hex(fe.fe_flags) + ")");
            const std::uint64_t first = fe.fe_physical / 512;
            const std::uint64_t end = (fe.fe_physical + fe.fe_length + 511) / 512;
            result.ranges.push_back({first, end - first});
            start = fe.fe_logical + fe.fe_length;
            last = fe.fe_flags & FIEMAP_EXTENT_LAST;
        }
    }
    return result;
}

} // namespace blksnap
