// The files of a device's backup: its image, written sparsely, made durable
// and read back for verification.
#pragma once

#include <blksnap/backup/plan.hpp>
#include <blksnap/unique_fd.hpp>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <sys/stat.h>
#include <utility>
#include <vector>

struct XXH64_state_s;

namespace blksnap::backup {

// Streaming xxh64 (seed 0).
class Xxh64 {
public:
    Xxh64();
    void reset();
    void update(std::span<const std::byte> data);
    std::uint64_t digest() const;

private:
    struct Free {
        void operator()(XXH64_state_s* s) const noexcept;
    };
    std::unique_ptr<XXH64_state_s, Free> state_;
};

// fsync of a directory: makes the entries created, renamed or removed in it
// durable.
void fsync_dir(const std::filesystem::path& dir);

// Removes PATH if it exists and makes the removal durable.
void remove_durably(const std::filesystem::path& path);

// The first byte in RANGES (ascending) where the image file IMAGE (opened
// without following a symbolic link) and SOURCE (the snapshot image) differ,
// or nullopt when they are equal there. Both are read from their devices:
// with O_DIRECT, or where the file system refuses it (tmpfs before Linux
// 6.6) buffered after their cached pages are dropped; in 1 MiB pieces
// aligned to 4 KiB (a range is widened to 4 KiB boundaries).
std::optional<std::uint64_t> first_difference(const std::filesystem::path& image,
                                              const std::string& source,
                                              std::span<const ByteRange> ranges);

// How a backup puts its data into the image file.
enum class WritePath {
    none,     // an incremental backup that wrote nothing: the image as it was
    fresh,    // a full backup: a new file IMAGE.partial, renamed to IMAGE
    reflink,  // a reflink copy of the image (FICLONE), changed, renamed over it
    in_place, // the image itself, renamed to IMAGE.partial while it is changed
};
const char* write_path_name(WritePath how); // "none", "new", "reflink", "in-place"

// The image file of a device's backup while a backup writes it. Under the
// image's name there is only ever a complete image: the data goes to
// another name, and commit() renames it to the image's.
class TargetImage {
public:
    // A full backup: removes IMAGE and IMAGE.partial, and makes a new
    // IMAGE.partial of SIZE bytes, all holes (with the old image's mode).
    static TargetImage create(const std::filesystem::path& image, std::uint64_t size);
    // An incremental backup of the existing IMAGE. Its first write makes a
    // reflink copy of the image (IMAGE.new-XXXXXX, with its mode and owner)
    // and writes there; where the file system cannot clone (EOPNOTSUPP,
    // EXDEV, EINVAL, ENOTTY), or REFLINK is false, it calls IN_PLACE (which
    // marks the state incomplete) and renames IMAGE to IMAGE.partial, then
    // writes into it.
    static TargetImage update(const std::filesystem::path& image, std::function<void()> in_place,
                              bool reflink = true);

    // Destroyed uncommitted, a reflink copy is removed, an IMAGE.partial
    // left.

    // Writes DATA at OFFSET. All-zero 4 KiB pieces are not written: a new
    // image leaves them as holes, an existing one has them punched out (or
    // written as zeros where the file system cannot punch).
    void write(std::uint64_t offset, std::span<const std::byte> data);
    // Bytes written with data (zeros skipped or punched do not count).
    std::uint64_t bytes_written() const { return written_; }

    // Makes the data written durable (fsync).
    void sync();
    // Renames what was written to the image's name and makes that durable
    // (fsync of the directory); nothing when nothing was written.
    void commit();
    // fstat(2) of the file written (the image after commit()).
    struct ::stat status() const;

    // The file that holds the data now: the image, its copy or
    // IMAGE.partial.
    const std::filesystem::path& path() const { return path_; }
    const std::filesystem::path& image() const { return image_; }
    WritePath how() const { return how_; }
    bool committed() const { return committed_; }

    static constexpr std::size_t granule = 4096;

private:
    TargetImage(std::filesystem::path image, std::filesystem::path path, UniqueFd fd,
                WritePath how);
    void begin(); // the first write: choose where it goes
    void put(std::uint64_t offset, std::span<const std::byte> data);
    void zero(std::uint64_t offset, std::uint64_t length);

    std::filesystem::path image_;
    std::filesystem::path path_;
    UniqueFd fd_;
    WritePath how_;
    bool started_ = false; // update(): the first write came
    bool committed_ = false;
    bool reflink_ = true;
    std::function<void()> in_place_;
    bool can_punch_ = true;
    std::uint64_t written_ = 0;
    struct RemoveFile {
        std::filesystem::path path; // empty: nothing to remove
        RemoveFile() = default;
        RemoveFile(RemoveFile&& o) noexcept : path(std::exchange(o.path, {})) {}
        RemoveFile& operator=(RemoveFile&& o) noexcept {
            std::swap(path, o.path);
            return *this;
        }
        ~RemoveFile();
    } copy_; // the reflink copy until it is committed
};

// IMAGE.partial: where a full backup writes, and the image while an
// incremental one that cannot clone it changes it.
std::filesystem::path partial_path(const std::filesystem::path& image);

// Removes the reflink copies (IMAGE.new-XXXXXX, regular files) a killed
// backup left beside IMAGE; returns their names.
std::vector<std::string> remove_leftover_copies(const std::filesystem::path& image);

// The xxh64 of each BLOCK_SIZE-byte block of an image of SIZE bytes (the
// last block up to SIZE), kept up to date from what a backup writes: a
// block's sum is replaced once it has been written whole, in order.
class BlockSums {
public:
    BlockSums(std::vector<std::uint64_t> sums, std::uint32_t block_size, std::uint64_t size);
    void written(std::uint64_t offset, std::span<const std::byte> data);
    // The sums; a block written only in part (never, for plans of whole
    // blocks) has its sum read from FILE.
    std::vector<std::uint64_t> finish(const std::filesystem::path& file);

private:
    std::vector<std::uint64_t> sums_;
    std::uint32_t block_size_;
    std::uint64_t size_;
    std::optional<std::uint64_t> block_; // the block being written
    std::uint64_t fed_ = 0;              // of it
    Xxh64 hash_;
    std::vector<std::uint64_t> reread_;
};

// The xxh64 of each of BLOCKS (of BLOCK_SIZE bytes, the last one of the
// file shorter) of FILE, read from its device as first_difference() reads.
std::vector<std::uint64_t> block_sums(const std::filesystem::path& file, std::uint32_t block_size,
                                      std::span<const std::uint64_t> blocks);

} // namespace blksnap::backup
