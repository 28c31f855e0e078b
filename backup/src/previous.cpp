#include <blksnap/backup/previous.hpp>
#include <blksnap/error.hpp>

#include <cerrno>
#include <sys/stat.h>

namespace blksnap::backup {

namespace fs = std::filesystem;

PreviousBackup load_previous(const fs::path& image, const fs::path& state) {
    PreviousBackup p;
    // What the directory holds, never what a link in it points to.
    auto kind_of = [](const fs::path& path, struct stat& st) {
        if (::lstat(path.c_str(), &st) == 0) {
            if (S_ISLNK(st.st_mode))
                throw Error(ELOOP, context("open", path.string()),
                            "a symbolic link; blksnap backup reads and writes only the files "
                            "themselves in the backup directory");
            return true;
        }
        if (errno != ENOENT)
            throw_errno(context("stat", path.string()));
        return false;
    };
    struct stat st;
    if (kind_of(image, st) && S_ISREG(st.st_mode)) {
        p.image = true;
        p.image_size = static_cast<std::uint64_t>(st.st_size);
        p.image_file = cbt::FileIdentity::of(st);
    }
    if (!kind_of(state, st))
        return p;
    try {
        p.cbt = cbt::read_state_file(state);
        p.state = PreviousBackup::State::valid;
    } catch (const Error& e) {
        // A file that cannot be read (EACCES, EIO, ...) says nothing of the
        // chain: an error, never a silent full backup.
        if (e.code() != EBADMSG)
            throw Error(e.code(), context("read the state file", state.string()),
                        std::string(e.what()) +
                            "; nothing was backed up: fix that, or remove the file to make a "
                            "full backup");
        p.state = PreviousBackup::State::damaged;
        p.problem = e.what();
    }
    return p;
}

} // namespace blksnap::backup
