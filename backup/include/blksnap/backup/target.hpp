// The image file of a device's backup while a backup writes it: written
// sparsely under another name, made durable, then renamed to the image's.
#pragma once

#include <blksnap/unique_fd.hpp>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <span>
#include <string>
#include <sys/stat.h>
#include <utility>
#include <vector>

namespace blksnap::backup {

// Every byte of DATA is zero.
bool all_zero(std::span<const std::byte> data);

// pread(2) of all of DATA from FD at OFFSET, or Error naming FILE (EIO
// when the file ends first).
void pread_all(int fd, std::span<std::byte> data, std::uint64_t offset,
               const std::filesystem::path& file);

// fsync of a directory: makes the entries created, renamed or removed in it
// durable.
void fsync_dir(const std::filesystem::path& dir);

// Removes PATH if it exists and makes the removal durable.
void remove_durably(const std::filesystem::path& path);

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

} // namespace blksnap::backup
