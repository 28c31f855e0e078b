#include <blksnap/diff_storage.hpp>
#include <blksnap/error.hpp>

#include <cerrno>
#include <fcntl.h>
#include <sys/stat.h>

namespace blksnap {

namespace {

constexpr mode_t storage_mode = 0600;

StorageKind kind_of(mode_t mode, const std::string& path) {
    if (S_ISDIR(mode))
        return StorageKind::tmpfile;
    if (S_ISREG(mode))
        return StorageKind::file;
    if (S_ISBLK(mode))
        return StorageKind::block_device;
    throw Error(EINVAL, context("difference storage", path),
                "not a directory, a regular file or a block device");
}

} // namespace

DiffStorage open_diff_storage(const std::filesystem::path& path) {
    const std::string p = path.string();
    struct stat st;
    if (::stat(p.c_str(), &st) != 0) {
        if (errno != ENOENT)
            throw_errno(context("difference storage", p));
        // A new regular file: O_CREAT|O_EXCL makes sure it is ours.
        return {open_fd(p, O_RDWR | O_CREAT | O_EXCL, storage_mode), StorageKind::file};
    }
    const StorageKind kind = kind_of(st.st_mode, p); // before open: a FIFO would block
    UniqueFd fd = kind == StorageKind::tmpfile
                      ? open_fd(p, O_TMPFILE | O_RDWR | O_EXCL, storage_mode)
                      : open_fd(p, O_RDWR | O_EXCL);
    if (kind != StorageKind::tmpfile) {
        // The path may have been replaced between stat and open.
        struct stat opened;
        if (::fstat(fd.get(), &opened) != 0)
            throw_errno(context("difference storage", p));
        if (kind_of(opened.st_mode, p) != kind)
            throw Error(EAGAIN, context("difference storage", p), "changed while being opened");
    }
    return {std::move(fd), kind};
}

std::uint64_t bytes_to_sectors(std::uint64_t bytes) {
    return bytes / 512 + (bytes % 512 != 0);
}

} // namespace blksnap
