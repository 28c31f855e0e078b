// Difference storage provisioning on real files under /var/tmp.
#include "tmp_dir.hpp"

#include <blksnap/diff_storage.hpp>
#include <blksnap/error.hpp>

#include <cerrno>
#include <fstream>
#include <gtest/gtest.h>
#include <sys/stat.h>

namespace blksnap::test {
namespace {

struct stat stat_of(int fd) {
    struct stat st;
    EXPECT_EQ(::fstat(fd, &st), 0);
    return st;
}

TEST(DiffStorage, DirectoryGivesAnUnnamedFile) {
    TmpDir dir;
    DiffStorage ds = open_diff_storage(dir.path());
    EXPECT_EQ(ds.kind, StorageKind::tmpfile);
    const auto st = stat_of(ds.fd.get());
    EXPECT_TRUE(S_ISREG(st.st_mode));
    EXPECT_EQ(st.st_nlink, 0u);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    EXPECT_TRUE(std::filesystem::is_empty(dir.path())); // nothing visible
}

TEST(DiffStorage, MissingFileIsCreated) {
    TmpDir dir;
    DiffStorage ds = open_diff_storage(dir / "diff0");
    EXPECT_EQ(ds.kind, StorageKind::file);
    EXPECT_TRUE(std::filesystem::is_regular_file(dir / "diff0"));
    EXPECT_EQ(stat_of(ds.fd.get()).st_nlink, 1u);
}

TEST(DiffStorage, ExistingFileIsOpenedReadWrite) {
    TmpDir dir;
    std::ofstream(dir / "diff") << "old";
    DiffStorage ds = open_diff_storage(dir / "diff");
    EXPECT_EQ(ds.kind, StorageKind::file);
    EXPECT_EQ(::write(ds.fd.get(), "x", 1), 1);
}

void expect_refused(const std::filesystem::path& path, int code, const std::string& text) {
    try {
        open_diff_storage(path);
        ADD_FAILURE() << path;
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), code) << e.what();
        EXPECT_NE(std::string(e.what()).find(path.string()), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find(text), std::string::npos) << e.what();
    }
}

TEST(DiffStorage, RefusesCharDevicesAndFifos) {
    expect_refused("/dev/null", EINVAL, "not a directory, a regular file or a block device");
    TmpDir dir;
    ASSERT_EQ(::mkfifo((dir / "fifo").c_str(), 0600), 0);
    expect_refused(dir / "fifo", EINVAL, "not a directory, a regular file or a block device");
}

TEST(DiffStorage, MissingDirectoryIsAnError) {
    TmpDir dir;
    expect_refused(dir / "no" / "such", ENOENT, "No such file or directory");
}

TEST(DiffStorage, LimitRoundsUpToSectors) {
    EXPECT_EQ(bytes_to_sectors(0), 0u);
    EXPECT_EQ(bytes_to_sectors(1), 1u);
    EXPECT_EQ(bytes_to_sectors(512), 1u);
    EXPECT_EQ(bytes_to_sectors(513), 2u);
    EXPECT_EQ(bytes_to_sectors(1ull << 40), 1ull << 31);
}

} // namespace
} // namespace blksnap::test
