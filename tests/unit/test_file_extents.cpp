// FIEMAP extents of real files under /var/tmp.
#include "tmp_dir.hpp"

#include <blksnap/error.hpp>
#include <blksnap/file_extents.hpp>

#include <cerrno>
#include <fstream>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

namespace blksnap::test {
namespace {

TEST(FileExtents, CoverTheFileOnItsDevice) {
    TmpDir dir;
    const auto path = (dir / "data").string();
    std::string block(1 << 20, 'x');
    {
        std::ofstream out(path, std::ios::binary);
        for (int i = 0; i < 3; ++i)
            out << block;
    }
    struct stat st;
    ASSERT_EQ(::stat(path.c_str(), &st), 0);
    if (::major(st.st_dev) == 0)
        GTEST_SKIP() << "/var/tmp is not on a block device";
    const FileExtents fe = file_extents(path);
    EXPECT_EQ(fe.device, (DeviceId{::major(st.st_dev), ::minor(st.st_dev)}));
    ASSERT_FALSE(fe.ranges.empty());
    std::uint64_t sectors = 0;
    for (const auto& r : fe.ranges) {
        EXPECT_GT(r.count, 0u);
        sectors += r.count;
    }
    EXPECT_EQ(sectors, 3u * 2048); // 3 MiB of 512-byte sectors, no more, no less
}

TEST(FileExtents, EmptyFileHasNone) {
    TmpDir dir;
    std::ofstream(dir / "empty").flush();
    EXPECT_TRUE(file_extents((dir / "empty").string()).ranges.empty());
}

TEST(FileExtents, RefusesWhatIsNotARegularFile) {
    TmpDir dir;
    try {
        file_extents(dir.path().string());
        FAIL();
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), EINVAL);
        EXPECT_NE(std::string(e.what()).find(dir.path().string()), std::string::npos);
    }
    EXPECT_THROW(file_extents((dir / "missing").string()), Error);
}

} // namespace
} // namespace blksnap::test
