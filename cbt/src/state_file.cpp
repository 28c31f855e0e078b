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
    off_capacity = 40,
};

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

CbtState CbtState::of(const CbtInfo& info, std::vector<std::uint8_t> map) {
    return {{info.generation_id, info.changes_number},
            info.block_size,
            info.device_capacity,
            std::move(map)};
}

std::vector<std::uint8_t> encode_state(const CbtState& state) {
    const std::size_t n = state.map.size();
    if (n > UINT32_MAX)
        throw Error(EINVAL, "cbt state", "map too large");
    std::vector<std::uint8_t> out(state_header_size + n + state_checksum_size, 0);
    std::uint8_t* p = out.data();
    std::memcpy(p + off_magic, state_magic, sizeof(state_magic));
    endian::store_little_u32(p + off_version, state_version);
    const auto& gen = state.position.generation_id.bytes();
    std::copy(gen.begin(), gen.end(), p + off_generation);
    p[off_changes] = state.position.changes_number;
    endian::store_little_u32(p + off_block_size, state.block_size);
    endian::store_little_u32(p + off_block_count, static_cast<std::uint32_t>(n));
    endian::store_little_u64(p + off_capacity, state.device_capacity);
    std::copy(state.map.begin(), state.map.end(), p + state_header_size);
    endian::store_little_u64(p + state_header_size + n, checksum(p, state_header_size + n));
    return out;
}

CbtState decode_state(std::span<const std::uint8_t> bytes, const std::string& what) {
    const std::uint8_t* p = bytes.data();
    if (bytes.size() < state_header_size + state_checksum_size)
        damaged(what, "truncated: " + std::to_string(bytes.size()) + " bytes");
    if (std::memcmp(p + off_magic, state_magic, sizeof(state_magic)) != 0)
        damaged(what, "not a blksnap change-state file (bad magic)");
    const std::uint32_t version = endian::load_little_u32(p + off_version);
    if (version != state_version)
        damaged(what, "unsupported version " + std::to_string(version));
    const std::uint32_t n = endian::load_little_u32(p + off_block_count);
    const std::uint64_t expected = state_header_size + std::uint64_t(n) + state_checksum_size;
    if (bytes.size() != expected)
        damaged(what, (bytes.size() < expected ? "truncated: " : "wrong size: ") +
                          std::to_string(bytes.size()) + " bytes, " + std::to_string(n) +
                          " blocks need " + std::to_string(expected));
    if (endian::load_little_u64(p + state_header_size + n) != checksum(p, state_header_size + n))
        damaged(what, "checksum mismatch");
    if (p[29] || p[30] || p[31])
        damaged(what, "reserved bytes are not zero");

    CbtState state;
    blksnap_uuid gen;
    std::copy(p + off_generation, p + off_generation + UUID_SIZE, gen.b);
    state.position = {Uuid(gen), p[off_changes]};
    state.block_size = endian::load_little_u32(p + off_block_size);
    state.device_capacity = endian::load_little_u64(p + off_capacity);
    state.map.assign(p + state_header_size, p + state_header_size + n);
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
