#include <blksnap/cbt/state_file.hpp>
#include <blksnap/error.hpp>
#include <blksnap/unique_fd.hpp>

#include <algorithm>
#include <boost/endian/conversion.hpp>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <string_view>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

namespace blksnap::cbt {

namespace endian = boost::endian;

namespace {

enum Offset : std::size_t {
    off_magic = 0,
    off_version = 8,
    off_generation = 12,
    off_changes = 28,
    off_block_size = 32,
    off_block_count = 36,
    off_flags = 29,
    off_capacity = 40,
};

// The image binding, from the end of the map.
enum BindingOffset : std::size_t {
    bind_device = 0,
    bind_inode = 8,
    bind_size = 16,
    bind_mtime = 24,
    bind_ctime = 32,
    bind_mtime_nsec = 40,
    bind_ctime_nsec = 44,
    bind_count = 48,
    bind_reserved = 52,
};

// The number of BLOCK_SIZE-byte blocks in SIZE bytes.
std::uint64_t blocks_in(std::uint64_t size, std::uint32_t block_size) {
    return block_size ? (size + block_size - 1) / block_size : 0;
}

std::uint64_t checksum(const std::uint8_t* data, std::size_t size) {
    return XXH64(data, size, 0);
}

[[noreturn]] void damaged(const std::string& what, const std::string& reason) {
    throw Error(EBADMSG, what, reason);
}

// Removes the temporary file unless the rename happened.
struct TempFile {
    std::string path;
    UniqueFd fd;
    bool keep = false;
    ~TempFile() {
        if (!keep)
            ::unlink(path.c_str());
    }
};

void fsync_or_throw(int fd, const std::string& what) {
    if (::fsync(fd) != 0)
        throw_errno(context("fsync", what));
}

} // namespace

std::string device_file_name(const std::string& device) {
    std::string name;
    constexpr std::string_view dev = "/dev/";
    if (device.starts_with(dev)) {
        name = device.substr(dev.size());
    } else {
        const auto slash = device.find_last_of('/');
        name = slash == std::string::npos ? device : device.substr(slash + 1);
    }
    // "/dev//vdb" and "/dev/mapper/" name the same things as without the
    // extra slashes.
    std::string out;
    for (char c : name) {
        if (c == '/') {
            if (!out.empty() && out.back() != '-')
                out += '-';
            continue;
        }
        out += c;
    }
    while (!out.empty() && out.back() == '-')
        out.pop_back();
    if (out.empty() || out == "." || out == ".." || out.starts_with('.'))
        throw Error(EINVAL, context("name a file after", device),
                    "no file name can be made of this path");
    return out;
}

FileIdentity FileIdentity::of(const struct ::stat& st) {
    return {static_cast<std::uint64_t>(st.st_dev),
            static_cast<std::uint64_t>(st.st_ino),
            static_cast<std::uint64_t>(st.st_size),
            static_cast<std::int64_t>(st.st_mtim.tv_sec),
            static_cast<std::uint32_t>(st.st_mtim.tv_nsec),
            static_cast<std::int64_t>(st.st_ctim.tv_sec),
            static_cast<std::uint32_t>(st.st_ctim.tv_nsec)};
}

CbtState CbtState::of(const CbtInfo& info, std::vector<std::uint8_t> map) {
    CbtState state;
    state.position = {info.generation_id, info.changes_number};
    state.block_size = info.block_size;
    state.device_capacity = info.device_capacity;
    state.map = std::move(map);
    return state;
}

std::vector<std::uint8_t> encode_state(const CbtState& state) {
    const std::size_t n = state.map.size();
    if (n > UINT32_MAX)
        throw Error(EINVAL, "cbt state", "map too large");
    if (state.incomplete && !state.image)
        throw Error(EINVAL, "cbt state", "incomplete without an image binding");
    std::size_t binding = 0;
    if (state.image) {
        const auto& sums = state.image->sums;
        if (sums.size() != blocks_in(state.image->file.size, state.block_size) ||
            sums.size() > UINT32_MAX)
            throw Error(EINVAL, "cbt state",
                        std::to_string(sums.size()) + " block checksums for an image of " +
                            std::to_string(state.image->file.size) + " bytes");
        binding = state_binding_size + 8 * sums.size();
    }
    std::vector<std::uint8_t> out(state_header_size + n + binding + state_checksum_size, 0);
    std::uint8_t* p = out.data();
    std::memcpy(p + off_magic, state_magic, sizeof(state_magic));
    endian::store_little_u32(p + off_version, state.image ? state_version_bound : state_version);
    const auto& gen = state.position.generation_id.bytes();
    std::copy(gen.begin(), gen.end(), p + off_generation);
    p[off_changes] = state.position.changes_number;
    p[off_flags] = state.incomplete ? state_flag_incomplete : 0;
    endian::store_little_u32(p + off_block_size, state.block_size);
    endian::store_little_u32(p + off_block_count, static_cast<std::uint32_t>(n));
    endian::store_little_u64(p + off_capacity, state.device_capacity);
    std::copy(state.map.begin(), state.map.end(), p + state_header_size);
    if (state.image) {
        std::uint8_t* b = p + state_header_size + n;
        const FileIdentity& f = state.image->file;
        endian::store_little_u64(b + bind_device, f.device);
        endian::store_little_u64(b + bind_inode, f.inode);
        endian::store_little_u64(b + bind_size, f.size);
        endian::store_little_u64(b + bind_mtime, static_cast<std::uint64_t>(f.mtime_sec));
        endian::store_little_u64(b + bind_ctime, static_cast<std::uint64_t>(f.ctime_sec));
        endian::store_little_u32(b + bind_mtime_nsec, f.mtime_nsec);
        endian::store_little_u32(b + bind_ctime_nsec, f.ctime_nsec);
        endian::store_little_u32(b + bind_count,
                                 static_cast<std::uint32_t>(state.image->sums.size()));
        b += state_binding_size;
        for (const std::uint64_t sum : state.image->sums) {
            endian::store_little_u64(b, sum);
            b += 8;
        }
    }
    const std::size_t body = out.size() - state_checksum_size;
    endian::store_little_u64(p + body, checksum(p, body));
    return out;
}

CbtState decode_state(std::span<const std::uint8_t> bytes, const std::string& what) {
    const std::uint8_t* p = bytes.data();
    if (bytes.size() < state_header_size + state_checksum_size)
        damaged(what, "truncated: " + std::to_string(bytes.size()) + " bytes");
    if (std::memcmp(p + off_magic, state_magic, sizeof(state_magic)) != 0)
        damaged(what, "not a blksnap change-state file (bad magic)");
    const std::uint32_t version = endian::load_little_u32(p + off_version);
    if (version != state_version && version != state_version_bound)
        damaged(what, "unsupported version " + std::to_string(version));
    const bool bound = version == state_version_bound;
    const std::uint32_t n = endian::load_little_u32(p + off_block_count);
    std::uint64_t expected = state_header_size + std::uint64_t(n) + state_checksum_size;
    std::uint32_t count = 0; // block checksums
    if (bound) {
        expected += state_binding_size;
        if (bytes.size() >= expected)
            count = endian::load_little_u32(p + state_header_size + n + bind_count);
        expected += 8 * std::uint64_t(count);
    }
    if (bytes.size() != expected)
        damaged(what, (bytes.size() < expected ? "truncated: " : "wrong size: ") +
                          std::to_string(bytes.size()) + " bytes, " + std::to_string(n) +
                          " blocks need " + std::to_string(expected));
    const std::size_t body = bytes.size() - state_checksum_size;
    if (endian::load_little_u64(p + body) != checksum(p, body))
        damaged(what, "checksum mismatch");
    if ((bound ? p[off_flags] & ~state_flag_incomplete : p[off_flags]) || p[30] || p[31])
        damaged(what, "reserved bytes are not zero");

    CbtState state;
    blksnap_uuid gen;
    std::copy(p + off_generation, p + off_generation + UUID_SIZE, gen.b);
    state.position = {Uuid(gen), p[off_changes]};
    state.block_size = endian::load_little_u32(p + off_block_size);
    state.device_capacity = endian::load_little_u64(p + off_capacity);
    state.map.assign(p + state_header_size, p + state_header_size + n);
    if (bound) {
        const std::uint8_t* b = p + state_header_size + n;
        ImageBinding image;
        FileIdentity& f = image.file;
        f.device = endian::load_little_u64(b + bind_device);
        f.inode = endian::load_little_u64(b + bind_inode);
        f.size = endian::load_little_u64(b + bind_size);
        f.mtime_sec = static_cast<std::int64_t>(endian::load_little_u64(b + bind_mtime));
        f.ctime_sec = static_cast<std::int64_t>(endian::load_little_u64(b + bind_ctime));
        f.mtime_nsec = endian::load_little_u32(b + bind_mtime_nsec);
        f.ctime_nsec = endian::load_little_u32(b + bind_ctime_nsec);
        if (endian::load_little_u32(b + bind_reserved))
            damaged(what, "reserved bytes are not zero");
        if (f.mtime_nsec >= 1000000000 || f.ctime_nsec >= 1000000000)
            damaged(what, "image binding: nanoseconds out of range");
        if (count != blocks_in(f.size, state.block_size))
            damaged(what, "image binding: " + std::to_string(count) +
                              " block checksums for an image of " + std::to_string(f.size) +
                              " bytes in blocks of " + std::to_string(state.block_size));
        b += state_binding_size;
        image.sums.resize(count);
        for (auto& sum : image.sums) {
            sum = endian::load_little_u64(b);
            b += 8;
        }
        state.image = std::move(image);
        state.incomplete = p[off_flags] & state_flag_incomplete;
    }
    return state;
}

void write_file_atomic(const std::filesystem::path& path, std::span<const std::uint8_t> bytes) {
    const std::string target = path.string();
    std::string tmpl = target + ".XXXXXX";
    int fd = ::mkostemp(tmpl.data(), O_CLOEXEC);
    if (fd < 0)
        throw_errno(context("create temporary file for", target));
    TempFile tmp{tmpl, UniqueFd(fd)};
    write_all(tmp.fd.get(), bytes.data(), bytes.size(), context("write", tmp.path));
    fsync_or_throw(tmp.fd.get(), tmp.path);
    if (::rename(tmp.path.c_str(), target.c_str()) != 0)
        throw_errno(context("rename " + tmp.path + " to", target));
    tmp.keep = true;
    const auto parent =
        path.parent_path().empty() ? std::filesystem::path(".") : path.parent_path();
    UniqueFd dir = open_fd(parent.string(), O_RDONLY | O_DIRECTORY);
    fsync_or_throw(dir.get(), parent.string());
}

void write_state_file(const std::filesystem::path& path, const CbtState& state) {
    write_file_atomic(path, encode_state(state));
}

CbtState read_state_file(const std::filesystem::path& path) {
    const std::string name = path.string();
    // The file itself, not what a link of that name points to (ELOOP).
    UniqueFd fd = open_fd(name, O_RDONLY | O_NOFOLLOW);
    std::vector<std::uint8_t> bytes;
    std::uint8_t chunk[1 << 16];
    for (;;) {
        ssize_t n = ::read(fd.get(), chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            throw_errno(context("read", name));
        if (n == 0)
            break;
        bytes.insert(bytes.end(), chunk, chunk + n);
    }
    return decode_state(bytes, name);
}

void check_same_device(const CbtState& state, const CbtInfo& info, const std::string& what) {
    if (state.block_size == info.block_size && state.device_capacity == info.device_capacity &&
        state.map.size() == info.block_count)
        return;
    throw Error(
        EXDEV, what,
        "made for a device of " + std::to_string(state.device_capacity) + " bytes in " +
            std::to_string(state.map.size()) + " blocks of " + std::to_string(state.block_size) +
            ", this one has " + std::to_string(info.device_capacity) + " bytes in " +
            std::to_string(info.block_count) + " blocks of " + std::to_string(info.block_size));
}

} // namespace blksnap::cbt
