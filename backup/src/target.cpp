#include <blksnap/backup/target.hpp>
#include <blksnap/error.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <linux/fs.h>
#include <optional>
#include <sys/ioctl.h>
#include <unistd.h>
#include <vector>

namespace blksnap::backup {

namespace fs = std::filesystem;

// Every byte is zero: the first is, and each equals the next.
bool all_zero(std::span<const std::byte> data) {
    return data.empty() || (data[0] == std::byte{0} &&
                            std::memcmp(data.data(), data.data() + 1, data.size() - 1) == 0);
}

void pread_all(int fd, std::span<std::byte> data, std::uint64_t offset, const fs::path& file) {
    while (!data.empty()) {
        const ssize_t n = ::pread(fd, data.data(), data.size(), static_cast<off_t>(offset));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            throw_errno(context("read " + file.string() + " at", std::to_string(offset)));
        if (n == 0)
            throw Error(EIO, context("read " + file.string() + " at", std::to_string(offset)),
                        "the file ends early");
        data = data.subspan(static_cast<std::size_t>(n));
        offset += static_cast<std::uint64_t>(n);
    }
}

namespace {

fs::path parent_of(const fs::path& path) {
    return path.parent_path().empty() ? fs::path(".") : path.parent_path();
}

} // namespace

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

const char* write_path_name(WritePath how) {
    switch (how) {
    case WritePath::none:
        return "none";
    case WritePath::fresh:
        return "new";
    case WritePath::reflink:
        return "reflink";
    case WritePath::in_place:
        return "in-place";
    }
    return "?";
}

fs::path partial_path(const fs::path& image) {
    return fs::path(image.string() + ".partial");
}

namespace {

constexpr const char* copy_infix = ".new-";
constexpr std::size_t copy_suffix_size = 6; // mkostemp's XXXXXX

// lstat(2), or nullopt when PATH does not exist.
std::optional<struct ::stat> lstat_of(const fs::path& path) {
    struct ::stat st;
    if (::lstat(path.c_str(), &st) == 0)
        return st;
    if (errno != ENOENT)
        throw_errno(context("stat", path.string()));
    return std::nullopt;
}

// Gives FD the mode and (where allowed) the owner of ST.
void take_mode_and_owner(int fd, const struct ::stat& st, const fs::path& path) {
    if (::fchmod(fd, st.st_mode & 07777) != 0)
        throw_errno(context("set the mode of", path.string()));
    if (::fchown(fd, st.st_uid, st.st_gid) != 0 && errno != EPERM)
        throw_errno(context("set the owner of", path.string()));
}

void rename_durably(const fs::path& from, const fs::path& to) {
    if (::rename(from.c_str(), to.c_str()) != 0)
        throw_errno(context("rename " + from.string() + " to", to.string()));
    fsync_dir(parent_of(to));
}

} // namespace

TargetImage::RemoveFile::~RemoveFile() {
    if (!path.empty())
        ::unlink(path.c_str());
}

TargetImage::TargetImage(fs::path image, fs::path path, UniqueFd fd, WritePath how)
    : image_(std::move(image)), path_(std::move(path)), fd_(std::move(fd)), how_(how) {}

TargetImage TargetImage::create(const fs::path& image, std::uint64_t size) {
    const auto old = lstat_of(image);
    remove_durably(image);
    const fs::path partial = partial_path(image);
    remove_durably(partial);
    UniqueFd fd = open_fd(partial.string(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW, 0600);
    if (old && S_ISREG(old->st_mode))
        take_mode_and_owner(fd.get(), *old, partial);
    if (::ftruncate(fd.get(), static_cast<off_t>(size)) != 0)
        throw_errno(context("set the size of", partial.string()));
    TargetImage t(image, partial, std::move(fd), WritePath::fresh);
    t.started_ = true;
    return t;
}

TargetImage TargetImage::update(const fs::path& image, std::function<void()> in_place,
                                bool reflink) {
    TargetImage t(image, image, open_fd(image.string(), O_RDWR | O_NOFOLLOW), WritePath::none);
    t.in_place_ = std::move(in_place);
    t.reflink_ = reflink;
    return t;
}

void TargetImage::begin() {
    started_ = true;
    if (reflink_) {
        std::string tmpl = image_.string() + copy_infix + "XXXXXX";
        const int fd = ::mkostemp(tmpl.data(), O_CLOEXEC);
        if (fd < 0)
            throw_errno(context("create a copy of", image_.string()));
        UniqueFd copy(fd);
        copy_.path = tmpl;
        if (::ioctl(copy.get(), FICLONE, fd_.get()) == 0) {
            struct ::stat st;
            if (::fstat(fd_.get(), &st) != 0)
                throw_errno(context("stat", image_.string()));
            take_mode_and_owner(copy.get(), st, copy_.path);
            fd_ = std::move(copy);
            path_ = copy_.path;
            how_ = WritePath::reflink;
            return;
        }
        const int err = errno;
        if (err != EOPNOTSUPP && err != EXDEV && err != EINVAL && err != ENOTTY)
            throw Error(err, context("clone", image_.string()) + " into " + copy_.path.string());
        ::unlink(copy_.path.c_str());
        copy_.path.clear();
    }
    // No reflink: the image changes in place, under a name that says so,
    // and the state says so first.
    if (in_place_)
        in_place_();
    how_ = WritePath::in_place;
    const fs::path partial = partial_path(image_);
    rename_durably(image_, partial);
    path_ = partial;
}

void TargetImage::sync() {
    if (how_ == WritePath::none)
        return;
    if (::fsync(fd_.get()) != 0)
        throw_errno(context("fsync", path_.string()));
}

void TargetImage::commit() {
    if (how_ != WritePath::none && !committed_) {
        rename_durably(path_, image_);
        copy_.path.clear();
        path_ = image_;
    }
    committed_ = true;
}

struct ::stat TargetImage::status() const {
    struct ::stat st;
    if (::fstat(fd_.get(), &st) != 0)
        throw_errno(context("stat", path_.string()));
    return st;
}

std::vector<std::string> remove_leftover_copies(const fs::path& image) {
    const fs::path dir = parent_of(image);
    const std::string prefix = image.filename().string() + copy_infix;
    std::vector<std::string> removed;
    std::error_code ec;
    fs::directory_iterator it(dir, ec);
    for (; !ec && it != fs::directory_iterator(); it.increment(ec)) {
        const auto& entry = *it;
        const std::string name = entry.path().filename().string();
        if (name.size() != prefix.size() + copy_suffix_size || !name.starts_with(prefix))
            continue;
        const auto st = lstat_of(entry.path());
        if (!st || !S_ISREG(st->st_mode))
            continue;
        if (::unlink(entry.path().c_str()) != 0 && errno != ENOENT)
            throw_errno(context("remove", entry.path().string()));
        removed.push_back(name);
    }
    if (ec)
        throw Error(ec.value(), context("list", dir.string()));
    if (!removed.empty())
        fsync_dir(dir);
    return removed;
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
    if (how_ == WritePath::fresh)
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
    if (!started_ && !data.empty())
        begin();
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

} // namespace blksnap::backup
