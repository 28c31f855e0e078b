// The io_uring reader on a real file under /var/tmp (O_DIRECT works there).
#include "tmp_dir.hpp"

#include <blksnap/error.hpp>
#include <blksnap/image_reader.hpp>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <gtest/gtest.h>
#include <random>

namespace blksnap::test {
namespace {

class ImageReaderTest : public ::testing::Test {
protected:
    TmpDir dir;
    std::string path = (dir / "image").string();
    std::vector<char> data;

    void SetUp() override {
        data.resize(3 * 1024 * 1024 + 5 * 512); // not a whole number of blocks
        std::mt19937 gen(42);
        for (auto& c : data)
            c = static_cast<char>(gen());
        std::ofstream(path, std::ios::binary).write(data.data(), std::streamsize(data.size()));
    }

    // Reads and checks that pieces come in order and match the file.
    std::size_t read_and_check(ReadOptions opt, std::uint64_t offset, std::uint64_t length) {
        ImageReader reader(path, opt);
        EXPECT_EQ(reader.size(), data.size());
        std::uint64_t expect = offset;
        std::size_t pieces = 0;
        reader.read(offset, length, [&](std::uint64_t at, std::span<const std::byte> piece) {
            EXPECT_EQ(at, expect);
            EXPECT_LE(piece.size(), opt.block_size);
            EXPECT_EQ(std::memcmp(piece.data(), data.data() + at, piece.size()), 0) << at;
            expect += piece.size();
            ++pieces;
        });
        EXPECT_EQ(expect, offset + length);
        return pieces;
    }
};

TEST_F(ImageReaderTest, DirectReadsEverythingInOrder) {
    EXPECT_EQ(read_and_check({65536, 4, true}, 0, data.size()), 49u);
}

TEST_F(ImageReaderTest, QueueDepthOneAndLarge) {
    read_and_check({4096, 1, true}, 512, data.size() - 1024);
    read_and_check({1 << 20, 64, true}, 0, data.size());
}

TEST_F(ImageReaderTest, BufferedReadsAllowAnyRange) {
    EXPECT_EQ(read_and_check({1000, 3, false}, 7, 10001), 11u);
    EXPECT_EQ(read_and_check({1000, 3, false}, 0, 0), 0u);
}

TEST_F(ImageReaderTest, DirectRefusesUnalignedRanges) {
    ImageReader reader(path, {4096, 2, true});
    try {
        reader.read(100, 4096, [](auto, auto) {});
        FAIL();
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), EINVAL);
        EXPECT_NE(std::string(e.what()).find("read " + path), std::string::npos) << e.what();
    }
    EXPECT_THROW(ImageReader(path, {1000, 2, true}), Error);
}

TEST_F(ImageReaderTest, RefusesRangesBeyondTheEnd) {
    ImageReader reader(path, {4096, 2, false});
    EXPECT_THROW(reader.read(data.size() - 10, 11, [](auto, auto) {}), Error);
    EXPECT_THROW(reader.read(data.size() + 1, 0, [](auto, auto) {}), Error);
}

TEST_F(ImageReaderTest, SinkExceptionStopsTheRead) {
    ImageReader reader(path, {4096, 8, true});
    int calls = 0;
    EXPECT_THROW(reader.read(0, data.size(),
                             [&](auto, auto) {
                                 if (++calls == 3)
                                     throw std::runtime_error("stop");
                             }),
                 std::runtime_error);
    EXPECT_EQ(calls, 3);
    // The reader is still usable after an aborted read.
    std::uint64_t total = 0;
    reader.read(0, 8192, [&](auto, auto piece) { total += piece.size(); });
    EXPECT_EQ(total, 8192u);
}

TEST(ImageReader, MissingFileNamesThePath) {
    try {
        ImageReader("/var/tmp/blksnap-no-such-image", {});
        FAIL();
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), ENOENT);
        EXPECT_STREQ(e.what(), "open /var/tmp/blksnap-no-such-image: No such file or directory");
    }
}

} // namespace
} // namespace blksnap::test
