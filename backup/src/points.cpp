#include <blksnap/backup/checksum.hpp>
#include <blksnap/backup/nbd_image.hpp>
#include <blksnap/backup/points.hpp>
#include <blksnap/backup/program.hpp>
#include <blksnap/backup/target.hpp>
#include <blksnap/error.hpp>
#include <blksnap/unique_fd.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <fcntl.h>
#include <linux/fs.h>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace blksnap::backup {

namespace fs = std::filesystem;
using nlohmann::ordered_json;

namespace {

// Version 2 holds the checksums in one string (version 1: a string each,
// which takes a reader tens of times longer to parse); both are read.
constexpr int meta_version = 2;
constexpr std::size_t chunk = 1u << 20;

std::uint64_t unhex(const std::string& text) {
    if (text.size() != 16 || text.find_first_not_of("0123456789abcdef") != std::string::npos)
        throw std::invalid_argument("not 16 hex digits: " + text);
    return std::strtoull(text.c_str(), nullptr, 16);
}

// The checksums of a version 2 meta file: 16 hex digits each, end to end.
std::vector<std::uint64_t> unhex_all(const std::string& text) {
    if (text.size() % 16 != 0)
        throw std::invalid_argument("the checksums are " + std::to_string(text.size()) +
                                    " hex digits, not a multiple of 16");
    std::vector<std::uint64_t> out;
    out.reserve(text.size() / 16);
    for (std::size_t at = 0; at < text.size(); at += 16) {
        std::uint64_t v = 0;
        for (std::size_t i = at; i < at + 16; ++i) {
            const char c = text[i];
            if (c >= '0' && c <= '9')
                v = v << 4 | static_cast<std::uint64_t>(c - '0');
            else if (c >= 'a' && c <= 'f')
                v = v << 4 | static_cast<std::uint64_t>(c - 'a' + 10);
            else
                throw std::invalid_argument("checksum " + std::to_string(at / 16) +
                                            " is not 16 hex digits: " + text.substr(at, 16));
        }
        out.push_back(v);
    }
    return out;
}

std::string partial(const fs::path& path) {
    return path.string() + ".partial";
}

// Writes TEXT to FILE.partial, syncs it and renames it to FILE.
void write_file_durably(const fs::path& file, const std::string& text) {
    const fs::path tmp = partial(file);
    {
        UniqueFd out = open_fd(tmp.string(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, 0644);
        write_all(out.get(), text.data(), text.size(), context("write", tmp.string()));
        if (::fsync(out.get()) != 0)
            throw_errno(context("fsync", tmp.string()));
    }
    if (::rename(tmp.c_str(), file.c_str()) != 0)
        throw_errno(context("rename " + tmp.string() + " to", file.string()));
    fsync_dir(file.parent_path());
}

void fsync_file(const fs::path& file) {
    UniqueFd fd = open_fd(file.string(), O_RDONLY | O_NOFOLLOW);
    if (::fsync(fd.get()) != 0)
        throw_errno(context("fsync", file.string()));
}

std::uint64_t allocated_bytes(const fs::path& file) {
    struct ::stat st;
    if (::stat(file.c_str(), &st) != 0)
        throw_errno(context("stat", file.string()));
    return static_cast<std::uint64_t>(st.st_blocks) * 512;
}

// The ranges of FD (SIZE bytes) that hold data, as SEEK_DATA and SEEK_HOLE
// tell them (all of it where the file system cannot tell).
std::vector<ByteRange> data_ranges(int fd, std::uint64_t size) {
    std::vector<ByteRange> out;
    std::uint64_t at = 0;
    while (at < size) {
        const off_t data = ::lseek(fd, static_cast<off_t>(at), SEEK_DATA);
        if (data < 0) {
            if (errno == ENXIO)
                break;
            return {{at, size - at}};
        }
        off_t hole = ::lseek(fd, data, SEEK_HOLE);
        if (hole < 0)
            hole = static_cast<off_t>(size);
        const auto from = static_cast<std::uint64_t>(data);
        const auto to = std::min<std::uint64_t>(static_cast<std::uint64_t>(hole), size);
        if (to > from)
            out.push_back({from, to - from});
        at = to;
    }
    return out;
}

const std::regex data_name(R"((\d{6})\.(raw|qcow2))");
const std::regex meta_name(R"((\d{6})\.meta)");

// The files of PDIR by point id: data (by format) and meta.
struct Files {
    std::optional<fs::path> data;
    std::optional<fs::path> meta;
};

std::map<std::uint64_t, Files> scan(const fs::path& pdir) {
    std::map<std::uint64_t, Files> files;
    std::error_code ec;
    if (!fs::is_directory(pdir, ec))
        return files;
    for (const auto& entry : fs::directory_iterator(pdir)) {
        const std::string name = entry.path().filename().string();
        std::smatch m;
        if (std::regex_match(name, m, data_name))
            files[std::stoull(m[1])].data = entry.path();
        else if (std::regex_match(name, m, meta_name))
            files[std::stoull(m[1])].meta = entry.path();
    }
    return files;
}

void remove_file(const fs::path& file) {
    if (::unlink(file.c_str()) != 0 && errno != ENOENT)
        throw_errno(context("remove", file.string()));
}

// Folds the qcow2 overlay NEXT into the file OLDER it is an overlay on, and
// puts OLDER in NEXT's place: NEXT reads as before at every step.
void merge_into_older(const fs::path& older, const fs::path& next) {
    run_program({"qemu-img", "commit", "-q", "-d", "-f", "qcow2", next.string()});
    fsync_file(older);
    if (::rename(older.c_str(), next.c_str()) != 0)
        throw_errno(context("rename " + older.string() + " to", next.string()));
    fsync_dir(next.parent_path());
}

} // namespace

const char* point_format_name(PointFormat f) {
    return f == PointFormat::qcow2 ? "qcow2" : "raw";
}

std::optional<PointFormat> parse_point_format(const std::string& text) {
    if (text == "raw")
        return PointFormat::raw;
    if (text == "qcow2")
        return PointFormat::qcow2;
    return std::nullopt;
}

void write_point_meta(const fs::path& file, const PointMeta& m) {
    ordered_json j{{"version", meta_version},
                   {"device", m.device},
                   {"point", m.id},
                   {"format", point_format_name(m.format)},
                   {"time", m.time},
                   {"generation_id", m.generation_id.str()},
                   {"changes_number", m.changes_number},
                   {"mode", m.incremental ? "incremental" : "full"},
                   {"reason", m.reason},
                   {"size", m.size},
                   {"block_size", m.block_size},
                   {"bytes_changed", m.bytes_changed},
                   {"bytes_stored", m.bytes_stored},
                   {"verified", m.verified}};
    j["backing"] = m.backing ? ordered_json(*m.backing) : ordered_json(nullptr);
    std::string sums;
    sums.reserve(m.sums.size() * 16);
    for (auto s : m.sums)
        sums += hex64(s);
    j["sums"] = std::move(sums);
    write_file_durably(file, j.dump() + "\n");
}

PointMeta read_point_meta(const fs::path& file) {
    UniqueFd in = open_fd(file.string(), O_RDONLY | O_NOFOLLOW);
    std::string text;
    char buf[65536];
    for (;;) {
        const ssize_t n = ::read(in.get(), buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            throw_errno(context("read", file.string()));
        if (n == 0)
            break;
        text.append(buf, static_cast<std::size_t>(n));
    }
    try {
        const auto j = nlohmann::json::parse(text);
        const int version = j.at("version").get<int>();
        if (version != 1 && version != meta_version)
            throw std::invalid_argument("version " + j.at("version").dump() + " is not known");
        PointMeta m;
        m.device = j.at("device").get<std::string>();
        m.id = j.at("point").get<std::uint64_t>();
        const auto format = parse_point_format(j.at("format").get<std::string>());
        if (!format)
            throw std::invalid_argument("unknown format " + j.at("format").dump());
        m.format = *format;
        m.time = j.at("time").get<std::int64_t>();
        m.generation_id = Uuid::parse(j.at("generation_id").get<std::string>());
        m.changes_number = j.at("changes_number").get<std::uint8_t>();
        const std::string mode = j.at("mode").get<std::string>();
        if (mode != "full" && mode != "incremental")
            throw std::invalid_argument("unknown mode " + mode);
        m.incremental = mode == "incremental";
        m.reason = j.at("reason").get<std::string>();
        m.size = j.at("size").get<std::uint64_t>();
        m.block_size = j.at("block_size").get<std::uint32_t>();
        m.bytes_changed = j.at("bytes_changed").get<std::uint64_t>();
        m.bytes_stored = j.at("bytes_stored").get<std::uint64_t>();
        m.verified = j.at("verified").get<bool>();
        if (!j.at("backing").is_null())
            m.backing = j.at("backing").get<std::uint64_t>();
        if (version == 1)
            for (const auto& s : j.at("sums"))
                m.sums.push_back(unhex(s.get<std::string>()));
        else
            m.sums = unhex_all(j.at("sums").get<std::string>());
        if (m.block_size == 0 || m.sums.size() != (m.size + m.block_size - 1) / m.block_size)
            throw std::invalid_argument(std::to_string(m.sums.size()) + " block checksums for " +
                                        std::to_string(m.size) + " bytes in blocks of " +
                                        std::to_string(m.block_size));
        return m;
    } catch (const Error&) {
        throw;
    } catch (const std::exception& e) {
        throw Error(EBADMSG, context("read", file.string()),
                    std::string("not a valid restore point meta file: ") + e.what());
    }
}

fs::path points_dir(const fs::path& dir, const std::string& name) {
    return dir / (name + ".points");
}

std::string point_file_name(std::uint64_t id, const char* ext) {
    char text[32];
    std::snprintf(text, sizeof(text), "%06llu.%s", static_cast<unsigned long long>(id), ext);
    return text;
}

namespace {

// Point ID of PDIR from its files, its meta file checked against them.
Point read_point(std::uint64_t id, const fs::path& data, const fs::path& meta) {
    Point p{read_point_meta(meta), data, meta};
    if (p.meta.id != id)
        throw Error(EBADMSG, context("read", meta.string()),
                    "it describes point " + std::to_string(p.meta.id));
    if (data.extension() != std::string(".") + point_format_name(p.meta.format))
        throw Error(EBADMSG, context("read", meta.string()),
                    std::string("it describes a ") + point_format_name(p.meta.format) +
                        " point, but the file is " + data.filename().string());
    return p;
}

} // namespace

std::vector<Point> list_points(const fs::path& pdir) {
    std::vector<Point> points;
    for (const auto& [id, f] : scan(pdir))
        if (f.data && f.meta) // else not complete, or being dropped
            points.push_back(read_point(id, *f.data, *f.meta));
    return points;
}

std::vector<std::uint64_t> point_ids(const fs::path& pdir) {
    std::vector<std::uint64_t> ids;
    for (const auto& [id, f] : scan(pdir))
        if (f.data && f.meta)
            ids.push_back(id);
    return ids;
}

std::optional<Point> find_point_in(const fs::path& pdir, std::uint64_t id) {
    const auto files = scan(pdir);
    const auto it = files.find(id);
    if (it == files.end() || !it->second.data || !it->second.meta)
        return std::nullopt;
    return read_point(id, *it->second.data, *it->second.meta);
}

std::vector<fs::path> point_dirs(const fs::path& dir) {
    std::vector<fs::path> dirs;
    std::error_code ec;
    if (!fs::is_directory(dir, ec))
        return dirs;
    for (const auto& entry : fs::directory_iterator(dir)) {
        const std::string name = entry.path().filename().string();
        if (name.size() > 7 && name.ends_with(".points") && entry.is_directory())
            dirs.push_back(entry.path());
    }
    std::sort(dirs.begin(), dirs.end());
    return dirs;
}

bool can_reflink(const fs::path& dir) {
    const auto make = [&] {
        const int fd = ::open(dir.c_str(), O_RDWR | O_TMPFILE | O_CLOEXEC, 0600);
        if (fd < 0)
            throw_errno(context("create a file in", dir.string()));
        return UniqueFd(fd);
    };
    UniqueFd from = make(), to = make();
    const std::vector<char> block(4096, 'b');
    write_all(from.get(), block.data(), block.size(), context("write a file in", dir.string()));
    return ::ioctl(to.get(), FICLONE, from.get()) == 0;
}

Point publish_point(const fs::path& pdir, PointFormat format, NewPoint np) {
    if (!fs::is_directory(pdir)) {
        fs::create_directories(pdir);
        fsync_dir(pdir.parent_path());
    }
    const auto files = scan(pdir);
    const std::uint64_t id = files.empty() ? 1 : files.rbegin()->first + 1;
    PointMeta& m = np.meta;
    m.id = id;
    m.format = format;
    const fs::path data = pdir / point_file_name(id, point_format_name(format));
    const fs::path tmp = partial(data);
    remove_file(tmp);
    UniqueFd head = open_fd(np.head.string(), O_RDONLY | O_NOFOLLOW);

    if (format == PointFormat::raw) {
        UniqueFd out = open_fd(tmp.string(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW, 0600);
        if (::ioctl(out.get(), FICLONE, head.get()) == 0) {
            m.bytes_stored = m.incremental ? m.bytes_changed : allocated_bytes(np.head);
        } else if (errno == EOPNOTSUPP || errno == EXDEV || errno == EINVAL || errno == ENOTTY) {
            // No reflinks here: a sparse copy.
            if (::ftruncate(out.get(), static_cast<off_t>(m.size)) != 0)
                throw_errno(context("set the size of", tmp.string()));
            for (const auto& r : data_ranges(head.get(), m.size)) {
                loff_t in_off = static_cast<loff_t>(r.offset), out_off = in_off;
                std::uint64_t left = r.length;
                while (left) {
                    const ssize_t n =
                        ::copy_file_range(head.get(), &in_off, out.get(), &out_off, left, 0);
                    if (n < 0 && errno == EINTR)
                        continue;
                    if (n <= 0)
                        throw_errno(context("copy " + np.head.string() + " to", tmp.string()));
                    left -= static_cast<std::uint64_t>(n);
                }
            }
            m.bytes_stored = allocated_bytes(tmp);
        } else {
            throw_errno(context("clone " + np.head.string() + " to", tmp.string()));
        }
        if (::fsync(out.get()) != 0)
            throw_errno(context("fsync", tmp.string()));
    } else {
        const std::optional<Point>& newest = np.continues;
        const bool overlay = m.incremental && newest && newest->meta.format == PointFormat::qcow2;
        if (overlay) {
            m.backing = newest->meta.id;
            run_program({"qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b",
                         newest->data.filename().string(), tmp.string(), std::to_string(m.size)});
        } else {
            // A base: the whole image, zeros left out, in one pass.
            run_program({"qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", np.head.string(),
                         tmp.string()});
        }
        if (overlay) {
            NbdImage image(tmp, true);
            std::vector<std::byte> buf(chunk);
            for (const auto& r : np.changed) {
                for (std::uint64_t at = r.offset; at < r.offset + r.length;) {
                    const std::size_t n = static_cast<std::size_t>(
                        std::min<std::uint64_t>(chunk, r.offset + r.length - at));
                    const std::span<std::byte> piece(buf.data(), n);
                    pread_all(head.get(), piece, at, np.head);
                    if (all_zero(piece))
                        image.zero(at, n); // over the backing file's data
                    else
                        image.write(at, piece);
                    at += n;
                }
            }
            image.close();
        }
        fsync_file(tmp);
        m.bytes_stored = allocated_bytes(tmp);
    }

    const fs::path meta_file = pdir / point_file_name(id, "meta");
    write_point_meta(meta_file, m);
    if (::rename(tmp.c_str(), data.c_str()) != 0)
        throw_errno(context("rename " + tmp.string() + " to", data.string()));
    fsync_dir(pdir);
    return Point{m, data, meta_file};
}

void tidy_points(const fs::path& pdir, const std::function<void(const std::string&)>& note) {
    std::error_code ec;
    if (!fs::is_directory(pdir, ec))
        return;
    bool removed = false;
    for (const auto& entry : fs::directory_iterator(pdir)) {
        if (entry.path().extension() == ".partial") {
            remove_file(entry.path());
            removed = true;
            if (note)
                note("removed " + entry.path().string() + ", left by an interrupted backup");
        }
    }
    const auto files = scan(pdir);
    for (auto it = files.begin(); it != files.end(); ++it) {
        const auto& [id, f] = *it;
        if (f.meta && !f.data) {
            // Killed between the renames of a new point's two files.
            remove_file(*f.meta);
            removed = true;
            if (note)
                note("removed " + f.meta->string() + ", the meta file of a point never completed");
            continue;
        }
        if (!f.data || f.meta)
            continue;
        // A data file without its meta: a point being dropped.
        const auto next = std::next(it);
        std::optional<PointMeta> next_meta;
        if (next != files.end() && next->second.data && next->second.meta)
            next_meta = read_point_meta(*next->second.meta);
        if (next_meta && next_meta->backing == id) {
            merge_into_older(*f.data, *next->second.data);
            next_meta->backing.reset();
            write_point_meta(*next->second.meta, *next_meta);
            if (note)
                note("finished folding point " + std::to_string(id) + " into point " +
                     std::to_string(next->first) + ", left by an interrupted backup");
        } else {
            remove_file(*f.data);
            removed = true;
            if (note)
                note("removed " + f.data->string() + ", a point without its meta file");
        }
    }
    if (removed)
        fsync_dir(pdir);
}

std::vector<std::uint64_t> keep_newest(const fs::path& pdir, std::uint64_t keep) {
    keep = std::max<std::uint64_t>(keep, 1);
    std::vector<std::uint64_t> dropped;
    auto points = list_points(pdir);
    while (points.size() > keep) {
        const Point& old = points[0];
        Point& next = points[1];
        // First the meta file: the point is not listed any more.
        remove_file(old.meta_file);
        fsync_dir(pdir);
        if (next.meta.backing == old.meta.id) {
            merge_into_older(old.data, next.data);
            next.meta.backing = old.meta.backing;
            write_point_meta(next.meta_file, next.meta);
        } else {
            remove_file(old.data);
            fsync_dir(pdir);
        }
        dropped.push_back(old.meta.id);
        points.erase(points.begin());
    }
    return dropped;
}

} // namespace blksnap::backup
