#include <blksnap/align.hpp>
#include <blksnap/backup/batch_io.hpp>
#include <blksnap/backup/checksum.hpp>
#include <blksnap/backup/nbd_image.hpp>
#include <blksnap/backup/readback.hpp>
#include <blksnap/backup/restore.hpp>
#include <blksnap/backup/target.hpp>
#include <blksnap/cbt/changes.hpp>
#include <blksnap/cbt/map.hpp>
#include <blksnap/cbt/state_file.hpp>
#include <blksnap/error.hpp>
#include <blksnap/filter.hpp>
#include <blksnap/unique_fd.hpp>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fcntl.h>
#include <future>
#include <linux/fs.h>
#include <optional>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <utility>
#include <vector>
#include <xxhash.h>

namespace blksnap::backup {

namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;

// Where reads and writes with O_DIRECT must start and end.
constexpr std::uint64_t direct_align = 4096;

bool aligned(const void* p, std::uint64_t offset, std::size_t size) {
    return reinterpret_cast<std::uintptr_t>(p) % direct_align == 0 && offset % direct_align == 0 &&
           size % direct_align == 0;
}

// A raw point, read from the disk, not from what the page cache remembers:
// with O_DIRECT where the file system has it (no copy through the cache),
// else with the cache dropped first.
class RawReader : public PointReader {
public:
    explicit RawReader(const Point& p) : file_(p.data) {
        int fd = ::open(file_.c_str(), O_RDONLY | O_NOFOLLOW | O_DIRECT | O_CLOEXEC);
        if (fd >= 0)
            direct_ = UniqueFd(fd);
        else if (errno != EINVAL)
            throw_errno(context("open", file_.string()));
        buffered_ = open_fd(file_.string(), O_RDONLY | O_NOFOLLOW);
        struct ::stat st;
        if (::fstat(buffered_.get(), &st) != 0)
            throw_errno(context("stat", file_.string()));
        size_ = static_cast<std::uint64_t>(st.st_size);
        ::posix_fadvise(buffered_.get(), 0, 0, POSIX_FADV_DONTNEED);
    }
    std::uint64_t size() const override { return size_; }
    void read(std::uint64_t offset, std::span<std::byte> data) override {
        if (direct_ && aligned(data.data(), offset, data.size())) {
            try {
                pread_all(direct_.get(), data, offset, file_);
                return;
            } catch (const Error& e) {
                // A device whose blocks are larger than the alignment:
                // read through the page cache from now on.
                if (e.code() != EINVAL)
                    throw;
                direct_ = UniqueFd();
            }
        }
        pread_all(buffered_.get(), data, offset, file_);
    }
    // All in flight at once where they can be read with O_DIRECT.
    void read_all(std::span<const IoPiece> pieces) override {
        if (direct_ && std::ranges::all_of(pieces, [](const IoPiece& io) {
                return aligned(io.data.data(), io.offset, io.data.size());
            })) {
            try {
                transfer_all(direct_.get(), IoDirection::read, pieces, file_.string());
                return;
            } catch (const Error& e) {
                if (e.code() != EINVAL)
                    throw;
                direct_ = UniqueFd();
            }
        }
        PointReader::read_all(pieces);
    }

private:
    fs::path file_;
    UniqueFd direct_; // none where the file system refuses O_DIRECT
    UniqueFd buffered_;
    std::uint64_t size_ = 0;
};

class QcowReader : public PointReader {
public:
    explicit QcowReader(const Point& p) : image_(p.data, false) {}
    std::uint64_t size() const override { return image_.size(); }
    void read(std::uint64_t offset, std::span<std::byte> data) override {
        image_.read(offset, data);
    }

private:
    NbdImage image_;
};

// The size of the pieces read: 4 MiB, or a block where blocks are larger.
std::uint64_t piece_size(const PointMeta& m) {
    const std::uint64_t bs = m.block_size;
    return std::max<std::uint64_t>(bs, (std::uint64_t{4} << 20) / bs * bs);
}

// A buffer aligned for O_DIRECT.
class AlignedBuffer {
public:
    explicit AlignedBuffer(std::size_t size)
        : size_((size + direct_align - 1) / direct_align * direct_align),
          data_(static_cast<std::byte*>(std::aligned_alloc(direct_align, size_))) {
        if (!data_)
            throw Error(ENOMEM, "restore",
                        "no memory for a buffer of " + std::to_string(size_) + " bytes");
    }
    std::span<std::byte> all() { return {data_.get(), size_}; }

private:
    struct Free {
        void operator()(std::byte* p) const noexcept { std::free(p); }
    };
    std::size_t size_;
    std::unique_ptr<std::byte, Free> data_;
};

// What is read, checked and written together: one range of up to a
// piece's bytes, or many small ones (a rollback's scattered blocks), end to
// end in one buffer, each from a multiple of direct_align.
using Piece = std::vector<ByteRange>;

// RANGES in pieces of at most PIECE bytes of buffer, in order.
std::vector<Piece> pieces_of(const std::vector<ByteRange>& ranges, std::uint64_t piece) {
    std::vector<Piece> out;
    std::uint64_t used = piece; // of the buffer of out.back()
    for (const auto& rg : ranges)
        for (std::uint64_t at = rg.offset; at < rg.offset + rg.length; at += piece) {
            const ByteRange part{at, std::min(piece, rg.offset + rg.length - at)};
            const std::uint64_t room = align_up(part.length, direct_align);
            if (used + room > piece) {
                out.emplace_back();
                used = 0;
            }
            out.back().push_back(part);
            used += room;
        }
    return out;
}

// Where the ranges of PIECE lie in BUFFER.
std::vector<IoPiece> layout(const Piece& piece, std::span<std::byte> buffer) {
    std::vector<IoPiece> out;
    std::size_t at = 0;
    for (const auto& rg : piece) {
        const auto n = static_cast<std::size_t>(rg.length);
        out.push_back({rg.offset, buffer.subspan(at, n)});
        at += static_cast<std::size_t>(align_up(n, direct_align));
    }
    return out;
}

// Reads PIECES of a point in order, each in a thread while the caller works
// on the one before: next() hands out a piece and starts reading the one
// after it. Three buffers turn: the buffer of a piece is read into again by
// the read next() starts two calls later, so whatever the caller does with
// a piece (a write in flight) must end before then.
class ReadAhead {
public:
    ReadAhead(PointReader& reader, std::vector<Piece> pieces, std::uint64_t piece)
        : reader_(reader),
          pieces_(std::move(pieces)), bufs_{AlignedBuffer(static_cast<std::size_t>(piece)),
                                            AlignedBuffer(static_cast<std::size_t>(piece)),
                                            AlignedBuffer(static_cast<std::size_t>(piece))} {
        start(0);
    }
    ReadAhead(const ReadAhead&) = delete;
    ReadAhead& operator=(const ReadAhead&) = delete;
    ~ReadAhead() {
        if (reading_.valid())
            reading_.wait();
    }

    // The next piece's ranges, read; none after the last.
    std::optional<std::vector<IoPiece>> next() {
        if (next_ >= pieces_.size())
            return std::nullopt;
        reading_.get();
        const std::size_t k = next_++;
        start(next_);
        return ios(k);
    }

private:
    std::vector<IoPiece> ios(std::size_t k) {
        return layout(pieces_[k], bufs_[k % bufs_.size()].all());
    }
    void start(std::size_t k) {
        if (k >= pieces_.size())
            return;
        reading_ = std::async(std::launch::async, [this, ios = ios(k)] { reader_.read_all(ios); });
    }

    PointReader& reader_;
    std::vector<Piece> pieces_;
    std::array<AlignedBuffer, 3> bufs_;
    std::size_t next_ = 0;
    std::future<void> reading_;
};

// Checks DATA, the point's bytes from OFFSET (a block boundary), against
// its block checksums.
void check_sums(const Point& p, std::uint64_t offset, std::span<const std::byte> data) {
    const std::uint64_t bs = p.meta.block_size;
    for (std::uint64_t at = 0; at < data.size(); at += bs) {
        const std::uint64_t n = std::min<std::uint64_t>(bs, data.size() - at);
        const std::uint64_t block = (offset + at) / bs;
        const std::uint64_t sum = XXH64(data.data() + at, n, 0);
        if (block >= p.meta.sums.size() || sum != p.meta.sums[block])
            throw Error(
                EIO, context("read", p.data.string()),
                "block " + std::to_string(block) + " (bytes " + std::to_string(offset + at) +
                    " to " + std::to_string(offset + at + n - 1) +
                    ") does not match the point's checksum (xxh64 " + hex64(sum) + ", recorded " +
                    (block < p.meta.sums.size() ? hex64(p.meta.sums[block]) : "none") +
                    "): the point is damaged");
    }
}

void write_all_at(int fd, std::span<const std::byte> data, std::uint64_t offset,
                  const fs::path& target) {
    while (!data.empty()) {
        const ssize_t n = ::pwrite(fd, data.data(), data.size(), static_cast<off_t>(offset));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            throw_errno(context("write " + target.string() + " at", std::to_string(offset)));
        data = data.subspan(static_cast<std::size_t>(n));
        offset += static_cast<std::uint64_t>(n);
    }
}

struct Target {
    UniqueFd fd; // a block device: opened O_EXCL, and O_DIRECT where it can be
    bool block_device = false;
    bool direct = false;
    UniqueFd buffered; // a block device: for writes O_DIRECT cannot make
    std::uint64_t size = 0;
    dev_t rdev = 0;
    fs::path path;

    // Writes DATA at OFFSET: past the page cache where both are aligned.
    void write(std::span<const std::byte> data, std::uint64_t offset) {
        if (!direct || aligned(data.data(), offset, data.size())) {
            write_all_at(fd.get(), data, offset, path);
            return;
        }
        if (!buffered)
            buffered = open_fd(path.string(), O_WRONLY);
        write_all_at(buffered.get(), data, offset, path);
    }
    // Writes every piece: all in flight at once where they can be.
    void write_all(std::span<const IoPiece> pieces) {
        if (direct && pieces.size() > 1 && std::ranges::all_of(pieces, [](const IoPiece& io) {
                return aligned(io.data.data(), io.offset, io.data.size());
            })) {
            transfer_all(fd.get(), IoDirection::write, pieces, path.string());
            return;
        }
        for (const auto& io : pieces)
            write(io.data, io.offset);
    }
    void sync() {
        for (const UniqueFd* f : {&fd, &buffered})
            if (*f && ::fsync(f->get()) != 0)
                throw_errno(context("fsync", path.string()));
    }
};

Target open_target(const fs::path& path, const Point& p) {
    Target t;
    struct ::stat st;
    const std::string what = context("restore to", path.string());
    t.path = path;
    if (::stat(path.c_str(), &st) == 0 && S_ISBLK(st.st_mode)) {
        t.direct = true;
        int fd = ::open(path.c_str(), O_RDWR | O_EXCL | O_DIRECT | O_CLOEXEC);
        if (fd < 0 && errno == EINVAL) {
            t.direct = false;
            fd = ::open(path.c_str(), O_RDWR | O_EXCL | O_CLOEXEC);
        }
        if (fd < 0) {
            if (errno == EBUSY)
                throw Error(EBUSY, what, "the device is mounted or in use");
            throw_errno(what);
        }
        t.fd = UniqueFd(fd);
        t.block_device = true;
        t.rdev = st.st_rdev;
        if (::ioctl(t.fd.get(), BLKGETSIZE64, &t.size) != 0)
            throw_errno(context("size of", path.string()));
        if (t.size < p.meta.size)
            throw Error(ENOSPC, what,
                        "the device is smaller than the point (" + std::to_string(t.size) +
                            " bytes, the point " + std::to_string(p.meta.size) + ")");
        return t;
    }
    if (fs::exists(path) && !fs::is_regular_file(path))
        throw Error(EINVAL, what, "not a block device or a regular file");
    t.fd = open_fd(path.string(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, 0600);
    t.size = p.meta.size;
    if (::ftruncate(t.fd.get(), static_cast<off_t>(t.size)) != 0)
        throw_errno(context("set the size of", path.string()));
    return t;
}

// The byte ranges (whole blocks, clipped to the device) changed on the
// point's device since the point, from its tracker; Error(EINVAL) when the
// tracker cannot tell.
std::vector<ByteRange> changed_since_point(KernelBackend& kernel, const Point& p, const Target& t,
                                           const fs::path& target) {
    const std::string what = context("restore --changed-only to", target.string());
    struct ::stat st;
    if (!t.block_device)
        throw Error(EINVAL, what,
                    "a quick rollback writes to the device the point was taken of, "
                    "not to a file");
    if (::stat(p.meta.device.c_str(), &st) != 0 || !S_ISBLK(st.st_mode) || st.st_rdev != t.rdev)
        throw Error(EINVAL, what,
                    "it is not " + p.meta.device + ", the device point " +
                        std::to_string(p.meta.id) + " was taken of: restore it in full");
    DeviceFilter filter(kernel, p.meta.device);
    CbtInfo info;
    try {
        info = filter.cbt_info();
    } catch (const Error& e) {
        throw Error(EINVAL, what,
                    "the device's changes are not tracked (" + std::string(e.what()) +
                        "): restore it in full");
    }
    if (info.generation_id != p.meta.generation_id)
        throw Error(EINVAL, what,
                    "the device's tracker is in generation " + info.generation_id.str() +
                        ", the point was taken in " + p.meta.generation_id.str() +
                        ": what changed since cannot be told; restore it in full");
    if (info.device_capacity != p.meta.size)
        throw Error(EINVAL, what,
                    "the device has " + std::to_string(info.device_capacity) +
                        " bytes now, the point " + std::to_string(p.meta.size) +
                        ": restore it in full");
    const auto map = cbt::read_map(filter, info);
    const auto changes =
        cbt::changed_since(info, map, {p.meta.generation_id, p.meta.changes_number});
    if (const auto* full = std::get_if<cbt::FullBackupNeeded>(&changes))
        throw Error(EINVAL, what, full->reason + ": restore it in full");
    std::vector<ByteRange> ranges;
    for (const auto& e : std::get<std::vector<cbt::Extent>>(changes))
        ranges.push_back({e.sector * 512, e.count * 512});
    return ranges;
}

// Marks P verified in its meta file. A backup into the directory may be
// rewriting that file (retention merges a point into the next one): under
// the directory's lock, which backups hold, the file is read afresh and
// only the mark is added.
void mark_verified(Point& p) {
    const fs::path dir = p.meta_file.parent_path().parent_path();
    const UniqueFd lock = open_fd(dir.string(), O_RDONLY | O_DIRECTORY);
    while (::flock(lock.get(), LOCK_EX) != 0)
        if (errno != EINTR)
            throw_errno(context("lock", dir.string()));
    PointMeta now;
    try {
        now = read_point_meta(p.meta_file);
    } catch (const Error& e) {
        if (e.code() != ENOENT)
            throw;
        throw Error(ENOENT, context("mark verified", p.meta_file.string()),
                    "a backup's retention removed the point while it was verified");
    }
    now.verified = true;
    write_point_meta(p.meta_file, now);
    p.meta = std::move(now);
}

} // namespace

void PointReader::read_all(std::span<const IoPiece> pieces) {
    for (const auto& io : pieces)
        read(io.offset, io.data);
}

std::unique_ptr<PointReader> PointReader::open(const Point& point) {
    if (point.meta.format == PointFormat::qcow2)
        return std::make_unique<QcowReader>(point);
    return std::make_unique<RawReader>(point);
}

Point find_point(const fs::path& dir, const std::optional<std::string>& device,
                 const std::optional<std::uint64_t>& id) {
    fs::path pdir;
    if (device) {
        const std::string name =
            device->find('/') == std::string::npos ? *device : cbt::device_file_name(*device);
        pdir = points_dir(dir, name);
        if (!fs::is_directory(pdir))
            throw Error(ENOENT, context("find the points of", *device),
                        "there is no " + pdir.string());
    } else {
        const auto dirs = point_dirs(dir);
        if (dirs.empty())
            throw Error(ENOENT, context("find restore points in", dir.string()), "there are none");
        if (dirs.size() > 1) {
            std::string names;
            for (const auto& d : dirs)
                names += (names.empty() ? "" : ", ") + d.stem().string();
            throw Error(EINVAL, context("find restore points in", dir.string()),
                        "it holds the points of several devices (" + names + "): name one with -s");
        }
        pdir = dirs[0];
    }
    // Only the point's own meta file is read: the others' checksums are
    // not needed.
    const auto ids = point_ids(pdir);
    if (ids.empty())
        throw Error(ENOENT, context("find restore points in", pdir.string()), "there are none");
    if (auto p = find_point_in(pdir, id.value_or(ids.back())))
        return std::move(*p);
    if (!id)
        throw Error(ENOENT, context("find restore points in", pdir.string()),
                    "the newest was removed while it was looked for");
    throw Error(ENOENT, context("find restore point " + std::to_string(*id) + " in", pdir.string()),
                "there is no such point (points " + std::to_string(ids.front()) + " to " +
                    std::to_string(ids.back()) + " are kept)");
}

RestoreReport run_restore(KernelBackend& kernel, const RestoreOptions& o,
                          const RestoreHooks& hooks) {
    const auto t0 = Clock::now();
    RestoreReport r{find_point(o.dir, o.device, o.point), o.target.string(), o.changed_only};
    const Point& p = r.point;
    auto reader = PointReader::open(p);
    if (reader->size() != p.meta.size)
        throw Error(EIO, context("restore from", p.data.string()),
                    "the image has " + std::to_string(reader->size()) +
                        " bytes, its meta file says " + std::to_string(p.meta.size));
    struct ::stat st;
    if (o.changed_only && (::stat(o.target.c_str(), &st) != 0 || !S_ISBLK(st.st_mode)))
        throw Error(EINVAL, context("restore --changed-only to", o.target.string()),
                    "a quick rollback writes to the device the point was taken of, not to a "
                    "file");
    Target t = open_target(o.target, p);
    std::vector<ByteRange> ranges;
    if (o.changed_only)
        ranges = changed_since_point(kernel, p, t, o.target);
    else
        ranges.push_back({0, p.meta.size});
    for (const auto& rg : ranges)
        r.to_write += rg.length;
    if (hooks.start)
        hooks.start(r);
    // The seconds since the phase before ended.
    auto lap = [last = t0]() mutable {
        const auto now = Clock::now();
        return std::chrono::duration<double>(now - std::exchange(last, now)).count();
    };
    r.phases.prepare = lap();

    // Three stages at once: a piece is written while the next one is
    // checked and the one after it read.
    const std::uint64_t piece = piece_size(p.meta);
    ReadAhead pieces(*reader, pieces_of(ranges, piece), piece);
    std::future<void> writing; // the write of the piece before
    std::uint64_t landed = 0;  // bytes on the target, their writes ended
    std::uint64_t in_flight = 0;
    std::vector<std::uint64_t> written_blocks;
    try {
        while (auto ios = pieces.next()) {
            if (hooks.interrupted && hooks.interrupted())
                throw Error(EINTR, context("restore to", o.target.string()), "interrupted");
            std::uint64_t n = 0;
            for (const auto& io : *ios) {
                check_sums(p, io.offset, io.data);
                r.blocks_checked += (io.data.size() + p.meta.block_size - 1) / p.meta.block_size;
                n += io.data.size();
                if (o.changed_only)
                    for (std::uint64_t b = io.offset / p.meta.block_size;
                         b * p.meta.block_size < io.offset + io.data.size(); ++b)
                        written_blocks.push_back(b);
            }
            if (writing.valid()) {
                writing.get();
                landed += std::exchange(in_flight, 0);
            }
            // A file is left sparse where the point reads as zeros.
            if (!t.block_device)
                std::erase_if(*ios, [&](const IoPiece& io) {
                    if (!all_zero(io.data))
                        return false;
                    landed += io.data.size();
                    return true;
                });
            if (!ios->empty()) {
                in_flight = 0;
                for (const auto& io : *ios)
                    in_flight += io.data.size();
                writing = std::async(std::launch::async,
                                     [&t, ios = std::move(*ios)] { t.write_all(ios); });
            }
            r.bytes_written += n;
            if (hooks.progress)
                hooks.progress(r);
        }
        if (writing.valid())
            writing.get();
    } catch (const Error& e) {
        try {
            if (writing.valid()) {
                writing.get();
                landed += in_flight;
            }
        } catch (const Error&) {
            // The first error is the one told.
        }
        if (landed == 0)
            throw;
        // What the target holds now is no point at all: say so.
        throw Error(e.code(), "",
                    std::string(e.what()) + "; " + std::to_string(landed) + " bytes of " +
                        std::to_string(r.to_write) + " were already written to " +
                        o.target.string() + ", which now holds no complete point");
    }
    r.phases.copy = lap();
    t.sync();
    r.phases.sync = lap();
    if (o.changed_only && !written_blocks.empty()) {
        // Read back from the device, not from the page cache.
        const auto now = block_sums(fs::canonical(o.target), p.meta.block_size, written_blocks);
        for (std::size_t i = 0; i < written_blocks.size(); ++i)
            if (now[i] != p.meta.sums[written_blocks[i]])
                throw Error(EIO, context("restore to", o.target.string()),
                            "block " + std::to_string(written_blocks[i]) +
                                " read back from the device does not match the point (xxh64 " +
                                hex64(now[i]) + ", point " + hex64(p.meta.sums[written_blocks[i]]) +
                                ")");
        r.phases.readback = lap();
    }
    r.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    return r;
}

void verify_point(Point& p, const std::function<void(std::uint64_t, std::uint64_t)>& progress) {
    auto reader = PointReader::open(p);
    if (reader->size() != p.meta.size)
        throw Error(EIO, context("verify", p.data.string()),
                    "the image has " + std::to_string(reader->size()) +
                        " bytes, its meta file says " + std::to_string(p.meta.size));
    ReadAhead pieces(*reader, pieces_of({{0, p.meta.size}}, piece_size(p.meta)),
                     piece_size(p.meta));
    while (const auto ios = pieces.next())
        for (const auto& io : *ios) {
            check_sums(p, io.offset, io.data);
            if (progress)
                progress(io.offset + io.data.size(), p.meta.size);
        }
    mark_verified(p);
}

} // namespace blksnap::backup
