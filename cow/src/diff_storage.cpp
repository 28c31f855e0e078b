#include <blksnap/diff_storage.hpp>
#include <blksnap/error.hpp>

#include <cerrno>
#include <cstdio>
#include <fcntl.h>
#include <fstream>
#include <linux/btrfs.h>
#include <linux/magic.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <uuid/uuid.h>

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

namespace fs = std::filesystem;

// The first line of a sysfs attribute, or "" if it cannot be read.
std::string read_line(const fs::path& path) {
    std::ifstream in(path);
    std::string line;
    std::getline(in, line);
    return line;
}

// "MAJ:MIN" as read from a sysfs "dev" attribute.
bool parse_dev(const std::string& text, dev_t& dev) {
    unsigned maj = 0, min = 0;
    if (std::sscanf(text.c_str(), "%u:%u", &maj, &min) != 2)
        return false;
    dev = makedev(maj, min);
    return true;
}

// Deep enough for any real stack (loop on dm on md on a partition...), and
// a bound on a loop of backing files.
constexpr int max_stack_depth = 16;

void add_stack(dev_t dev, const std::string& chain, std::map<dev_t, std::string>& out, int depth) {
    if (depth > max_stack_depth || out.count(dev))
        return;
    std::error_code ec;
    const fs::path sys = fs::canonical(
        "/sys/dev/block/" + std::to_string(major(dev)) + ":" + std::to_string(minor(dev)), ec);
    if (ec) // not a block device (tmpfs, btrfs' anonymous devices...)
        return;
    const std::string here =
        chain.empty() ? sys.filename().string() : chain + " -> " + sys.filename().string();
    out.emplace(dev, here);
    dev_t next;
    if (fs::exists(sys / "partition") && parse_dev(read_line(sys.parent_path() / "dev"), next))
        add_stack(next, here, out, depth + 1);
    for (const auto& slave : fs::directory_iterator(sys / "slaves", ec))
        if (parse_dev(read_line(slave.path() / "dev"), next))
            add_stack(next, here, out, depth + 1);
    const std::string backing = read_line(sys / "loop" / "backing_file");
    struct stat st;
    if (!backing.empty() && ::stat(backing.c_str(), &st) == 0)
        add_stack(S_ISBLK(st.st_mode) ? st.st_rdev : st.st_dev, here, out, depth + 1);
}

// A btrfs file system has an anonymous st_dev and may span several
// devices: its files are written through each of them. The members are
// listed under /sys/fs/btrfs/FSID/devices/.
void add_btrfs_members(int fd, std::map<dev_t, std::string>& out) {
    struct statfs sfs;
    if (::fstatfs(fd, &sfs) != 0 || sfs.f_type != BTRFS_SUPER_MAGIC)
        return;
    btrfs_ioctl_fs_info_args info{};
    if (::ioctl(fd, BTRFS_IOC_FS_INFO, &info) != 0)
        throw_errno("difference storage: the devices of its btrfs file system");
    char fsid[37];
    uuid_unparse_lower(info.fsid, fsid);
    std::error_code ec;
    for (const auto& member :
         fs::directory_iterator(fs::path("/sys/fs/btrfs") / fsid / "devices", ec)) {
        dev_t dev;
        if (parse_dev(read_line(member.path() / "dev"), dev))
            add_stack(dev, "btrfs " + std::string(fsid, 8), out, 1);
    }
    if (ec)
        throw Error(ec.value(), "difference storage",
                    "cannot list the devices of its btrfs file system " + std::string(fsid));
}

} // namespace

std::map<dev_t, std::string> storage_devices(int fd) {
    struct stat st;
    if (::fstat(fd, &st) != 0)
        throw_errno("difference storage");
    std::map<dev_t, std::string> out;
    add_stack(S_ISBLK(st.st_mode) ? st.st_rdev : st.st_dev, "", out, 0);
    if (!S_ISBLK(st.st_mode))
        add_btrfs_members(fd, out);
    return out;
}

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
