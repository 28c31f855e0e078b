#include <blksnap/backup/nbd_image.hpp>
#include <blksnap/error.hpp>

#include <algorithm>
#include <cerrno>
#include <libnbd.h>
#include <string>
#include <vector>

namespace blksnap::backup {

namespace {

// Requests no larger than this (qemu-nbd takes up to 32 MiB).
constexpr std::uint64_t max_request = 8u << 20;

[[noreturn]] void nbd_failed(const std::string& op, const std::filesystem::path& file) {
    const int err = ::nbd_get_errno() ? ::nbd_get_errno() : EIO;
    const char* why = ::nbd_get_error();
    throw Error(err, context(op, file.string()), why ? why : "libnbd failed");
}

} // namespace

void NbdImage::Close::operator()(nbd_handle* h) const noexcept {
    ::nbd_close(h); // kills the server if it still runs
}

NbdImage::NbdImage(const std::filesystem::path& file, bool writable) : file_(file) {
    h_.reset(::nbd_create());
    if (!h_)
        nbd_failed("open", file);
    std::vector<std::string> argv{"qemu-nbd", "--format=qcow2", "--cache=writeback"};
    if (!writable)
        argv.push_back("--read-only");
    argv.push_back(file.string());
    std::vector<char*> args;
    for (auto& a : argv)
        args.push_back(a.data());
    args.push_back(nullptr);
    if (::nbd_connect_systemd_socket_activation(h_.get(), args.data()) != 0)
        nbd_failed("serve with qemu-nbd", file);
    const int64_t size = ::nbd_get_size(h_.get());
    if (size < 0)
        nbd_failed("size of", file);
    size_ = static_cast<std::uint64_t>(size);
}

NbdImage::~NbdImage() = default;
NbdImage::NbdImage(NbdImage&&) noexcept = default;
NbdImage& NbdImage::operator=(NbdImage&&) noexcept = default;

void NbdImage::read(std::uint64_t offset, std::span<std::byte> data) {
    while (!data.empty()) {
        const std::size_t n =
            static_cast<std::size_t>(std::min<std::uint64_t>(data.size(), max_request));
        if (::nbd_pread(h_.get(), data.data(), n, offset, 0) != 0)
            nbd_failed("read " + std::to_string(n) + " bytes at " + std::to_string(offset) + " of",
                       file_);
        data = data.subspan(n);
        offset += n;
    }
}

void NbdImage::write(std::uint64_t offset, std::span<const std::byte> data) {
    while (!data.empty()) {
        const std::size_t n =
            static_cast<std::size_t>(std::min<std::uint64_t>(data.size(), max_request));
        if (::nbd_pwrite(h_.get(), data.data(), n, offset, 0) != 0)
            nbd_failed("write " + std::to_string(n) + " bytes at " + std::to_string(offset) + " of",
                       file_);
        data = data.subspan(n);
        offset += n;
    }
}

void NbdImage::zero(std::uint64_t offset, std::uint64_t length) {
    while (length) {
        const std::uint64_t n = std::min(length, max_request);
        if (::nbd_zero(h_.get(), n, offset, 0) != 0)
            nbd_failed("zero " + std::to_string(n) + " bytes at " + std::to_string(offset) + " of",
                       file_);
        length -= n;
        offset += n;
    }
}

void NbdImage::close() {
    if (::nbd_flush(h_.get(), 0) != 0)
        nbd_failed("flush", file_);
    if (::nbd_shutdown(h_.get(), 0) != 0)
        nbd_failed("close", file_);
    h_.reset(); // waits for qemu-nbd to exit
}

} // namespace blksnap::backup
