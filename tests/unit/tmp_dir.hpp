// A fresh directory under /var/tmp (a real disk file system: O_DIRECT,
// O_TMPFILE and FIEMAP work there), removed with its contents afterwards.
#pragma once

#include <filesystem>
#include <stdexcept>
#include <string>

namespace blksnap::test {

class TmpDir {
public:
    TmpDir() {
        std::string tmpl = "/var/tmp/blksnap-test.XXXXXX";
        if (!::mkdtemp(tmpl.data()))
            throw std::runtime_error("mkdtemp failed");
        path_ = tmpl;
    }
    ~TmpDir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    TmpDir(const TmpDir&) = delete;
    TmpDir& operator=(const TmpDir&) = delete;

    const std::filesystem::path& path() const { return path_; }
    std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

private:
    std::filesystem::path path_;
};

} // namespace blksnap::test
