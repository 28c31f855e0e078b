// Reads or writes at many scattered offsets of one file, all in flight at
// once (io_uring): what a quick rollback moves is a few hundred small
// blocks, and one after another each pays a whole round trip to the device.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace blksnap::backup {

// DATA at OFFSET of the file.
struct IoPiece {
    std::uint64_t offset = 0;
    std::span<std::byte> data;
};

enum class IoDirection { read, write };

// Reads (or writes) every piece whole through FD, up to 64 in flight;
// where io_uring is not available, one after another. Throws Error naming
// PATH and the offset of a piece that fails; a read that ends before its
// piece does (the end of the file) is Error(EIO).
void transfer_all(int fd, IoDirection direction, std::span<const IoPiece> pieces,
                  const std::string& path);

} // namespace blksnap::backup
