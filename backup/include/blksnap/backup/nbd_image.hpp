// A qcow2 file read and written through qemu-nbd (started by libnbd with
// socket activation, one server per object): what a qcow2 restore point is
// made and read with.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>

struct nbd_handle;

namespace blksnap::backup {

class NbdImage {
public:
    // Serves FILE (format qcow2) read-only, or writable.
    NbdImage(const std::filesystem::path& file, bool writable);
    ~NbdImage();
    NbdImage(NbdImage&&) noexcept;
    NbdImage& operator=(NbdImage&&) noexcept;

    std::uint64_t size() const { return size_; }
    void read(std::uint64_t offset, std::span<std::byte> data);
    void write(std::uint64_t offset, std::span<const std::byte> data);
    // Makes the range read as zeros (a zero cluster, no data stored).
    void zero(std::uint64_t offset, std::uint64_t length);
    // Flushes and stops the server: the file is complete on return.
    void close();

private:
    struct Close {
        void operator()(nbd_handle* h) const noexcept;
    };
    std::unique_ptr<nbd_handle, Close> h_;
    std::filesystem::path file_;
    std::uint64_t size_ = 0;
};

} // namespace blksnap::backup
